//! A local stand-in for CloudTrail's `LookupEvents` (moto 5.2 implements trails but not
//! `LookupEvents`), on 127.0.0.1. The SDK reaches it through its endpoint URL.
//!
//! Protocol awsJson1_1: `POST /` with `X-Amz-Target: CloudTrail_20131101.LookupEvents` (what
//! aws-sdk-rust sends) or `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`
//! (botocore's form; see [`TARGET_PREFIXES`]) is served here; any other CloudTrail target is a
//! 400 `UnknownOperationException`; anything else is a 404 ([`Standin::start_alone`]) or is
//! passed on to moto ([`Standin::start_before_moto`], for end-to-end tests where one endpoint
//! serves every AWS service, as `aws.endpoint_url` does). Every lookup is recorded ([`Lookup`]) with the
//! SigV4 signer key and region of its `Authorization` header.
//!
//! Behaviour, each rule from the API reference
//! (<https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html>,
//! "LookupEvents"; <https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_Event.html>,
//! "Event"), quoted where it is checked below:
//! * events are added per region ([`Standin::add`]) as CloudTrail records (the [`events`]
//!   builders) and served in the API's `Event` shape: `ReadOnly` a string, `EventTime` epoch
//!   seconds (awsJson1_1 timestamps), `CloudTrailEvent` the record as a JSON string;
//! * filtered by the one `AccessKeyId` lookup attribute and the time range, newest first,
//!   `MaxResults` per page, `NextToken` only when more remain and only valid with the same
//!   parameters;
//! * errors are 400 with `x-amzn-ErrorType` and `{"__type": code, "message": ...}`:
//!   `InvalidLookupAttributesException`, `InvalidMaxResultsException`,
//!   `InvalidTimeRangeException`, `InvalidNextTokenException`; `ThrottlingException` when a
//!   third request for the same (signer key, region) arrives within one second (counted in
//!   [`Standin::rate_violations`]) or while [`Standin::throttle_next`] lasts;
//!   `AccessDeniedException` while [`Standin::deny`] is on. [`Standin::delay`] holds every
//!   answer back.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::DateTime;
use serde_json::{json, Value};

/// The `X-Amz-Target` prefixes of CloudTrail's operations: the Smithy service shape's name, as
/// aws-sdk-rust sends it (`aws-sdk-cloudtrail` 1.130.0, `src/operation/lookup_events.rs`:
/// `"CloudTrail_20131101.LookupEvents"`), and the fully qualified form botocore sends
/// (`targetPrefix` `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101` in its
/// `service-2.json`). CloudTrail answers both.
pub const TARGET_PREFIXES: [&str; 2] = [
    "CloudTrail_20131101.",
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
];
/// The operation served.
pub const LOOKUP_EVENTS: &str = "LookupEvents";
/// "The rate of lookup requests is limited to two per second, per account, per Region."
pub const PER_SECOND: usize = 2;
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// One recorded `LookupEvents` request.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// When it arrived.
    pub at: Instant,
    /// The access key id of its SigV4 credential scope.
    pub signer_key: String,
    /// The region of its SigV4 credential scope.
    pub region: String,
    pub body: Value,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code answered, if any.
    pub error: Option<String>,
}

/// What a `NextToken` was issued for.
struct Issued {
    /// The request's parameters but the token: a token is only valid with the same ones.
    params: Value,
    region: String,
    /// The index of the next event to serve.
    offset: usize,
}

#[derive(Default)]
struct Inner {
    /// CloudTrail records by region, in the order added.
    records: BTreeMap<String, Vec<Value>>,
    lookups: Vec<Lookup>,
    /// Arrival times per (signer key, region), for the rate limit.
    arrivals: HashMap<(String, String), Vec<Instant>>,
    rate_violations: u32,
    throttle_next: u32,
    deny: bool,
    delay: Duration,
    tokens: HashMap<String, Issued>,
    next_token: u64,
    /// Where requests that are not CloudTrail's go ([`Standin::start_before_moto`]).
    moto_port: Option<u16>,
}

type Shared = Arc<Mutex<Inner>>;

/// The running stand-in; the server stops when this is dropped.
pub struct Standin {
    pub addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Standin {
    /// Starts on 127.0.0.1:0, answering CloudTrail only.
    pub async fn start_alone() -> Standin {
        Self::start_with(None).await
    }

    /// Starts on 127.0.0.1:0 in front of the moto server on `moto_port`: CloudTrail's
    /// `LookupEvents` is answered here, every other request is passed on to moto unchanged.
    pub async fn start_before_moto(moto_port: u16) -> Standin {
        Self::start_with(Some(moto_port)).await
    }

    async fn start_with(moto_port: Option<u16>) -> Standin {
        let state: Shared = Arc::new(Mutex::new(Inner {
            moto_port,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/", post(dispatch))
            .fallback(unknown)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the CloudTrail stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the CloudTrail stand-in stopped");
        });
        Standin { addr, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `conf` (credentials, region) with this stand-in as the endpoint of every service.
    pub fn sdk_config(&self, conf: &aws_config::SdkConfig, region: &str) -> aws_config::SdkConfig {
        conf.to_builder()
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(region.to_string()))
            .build()
    }

    /// Adds CloudTrail records (see [`events`]) to `region`.
    pub fn add(&self, region: &str, records: impl IntoIterator<Item = Value>) {
        self.state
            .lock()
            .unwrap()
            .records
            .entry(region.to_string())
            .or_default()
            .extend(records);
    }

    /// The next `n` lookups are answered `ThrottlingException`.
    pub fn throttle_next(&self, n: u32) {
        self.state.lock().unwrap().throttle_next = n;
    }

    /// While on, every lookup is answered `AccessDeniedException`.
    pub fn deny(&self, on: bool) {
        self.state.lock().unwrap().deny = on;
    }

    /// Every answer waits this long.
    pub fn delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Every lookup so far, in arrival order.
    pub fn lookups(&self) -> Vec<Lookup> {
        self.state.lock().unwrap().lookups.clone()
    }

    /// Lookups that arrived while two others for the same (signer key, region) had arrived
    /// within the second before.
    pub fn rate_violations(&self) -> u32 {
        self.state.lock().unwrap().rate_violations
    }

    pub fn clear_lookups(&self) {
        let mut s = self.state.lock().unwrap();
        s.lookups.clear();
        s.arrivals.clear();
        s.rate_violations = 0;
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", code.to_string()),
            ("Content-Type", CONTENT_TYPE.to_string()),
        ],
        json!({"__type": code, "message": message.into()}).to_string(),
    )
        .into_response()
}

fn client_error(code: &str, message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, code, message)
}

async fn unknown(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let moto_port = state.lock().unwrap().moto_port;
    if let Some(port) = moto_port {
        return to_moto(port, method, uri, headers, body).await;
    }
    (
        StatusCode::NOT_FOUND,
        format!("the CloudTrail stand-in has no route {method} {uri}"),
    )
        .into_response()
}

/// (access key id, region) of a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...`.
fn signer(headers: &HeaderMap) -> (String, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let scope = auth
        .split("Credential=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("");
    let parts: Vec<&str> = scope.split('/').collect();
    match parts[..] {
        [key, _date, region, ..] => (key.to_string(), region.to_string()),
        _ => (String::new(), String::new()),
    }
}

/// Passes a request on to moto and its answer back (hop-by-hop headers left out).
pub async fn to_moto(
    port: u16,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use super::securityhub_standin::{http, passed_on};
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let pass: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| passed_on(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let pass: Vec<(&str, &str)> = pass.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    match http(port, None, method.as_str(), &path, &pass, &body).await {
        Ok((status, answer_headers, answer)) => {
            let mut resp = Response::new(axum::body::Body::from(answer));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (n, v) in answer_headers.iter().filter(|(n, _)| passed_on(n)) {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(n.as_bytes()),
                    axum::http::HeaderValue::from_str(v),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

async fn dispatch(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let operation = TARGET_PREFIXES.iter().find_map(|p| target.strip_prefix(p));
    match operation {
        Some(LOOKUP_EVENTS) => {}
        Some(op) => {
            return client_error(
                "UnknownOperationException",
                format!("the stand-in serves LookupEvents only, not {op}"),
            )
        }
        None => {
            let moto_port = state.lock().unwrap().moto_port;
            if let Some(port) = moto_port {
                return to_moto(port, method, uri, headers, body).await;
            }
            return (
                StatusCode::NOT_FOUND,
                format!("the CloudTrail stand-in does not serve target {target:?}"),
            )
                .into_response();
        }
    }
    let at = Instant::now();
    let (signer_key, region) = signer(&headers);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (answer, delay) = {
        let mut s = state.lock().unwrap();
        let answer = lookup(&mut s, at, &signer_key, &region, &req);
        let (status, code) = answer
            .as_ref()
            .map_or_else(|(c, _)| (400, Some(c.clone())), |_| (200, None));
        s.lookups.push(Lookup {
            at,
            signer_key,
            region,
            body: req,
            status,
            error: code,
        });
        (answer, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match answer {
        Ok(out) => (
            StatusCode::OK,
            [("Content-Type", CONTENT_TYPE)],
            out.to_string(),
        )
            .into_response(),
        Err((code, message)) => client_error(&code, message),
    }
}

type Answer = Result<Value, (String, String)>;

fn fail(code: &str, message: impl Into<String>) -> Answer {
    Err((code.to_string(), message.into()))
}

/// A request time: awsJson1_1 sends timestamps as epoch seconds (a number, maybe fractional).
fn time_param(req: &Value, name: &str) -> Result<Option<f64>, (String, String)> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            (
                "ValidationException".to_string(),
                format!("{name} is not epoch seconds: {v}"),
            )
        }),
    }
}

fn lookup(s: &mut Inner, at: Instant, signer_key: &str, region: &str, req: &Value) -> Answer {
    // "The rate of lookup requests is limited to two per second, per account, per Region. If
    // this limit is exceeded, a throttling error occurs." Every arrival counts.
    let arrivals = s
        .arrivals
        .entry((signer_key.to_string(), region.to_string()))
        .or_default();
    let recent = arrivals
        .iter()
        .filter(|t| at.duration_since(**t) < Duration::from_secs(1))
        .count();
    arrivals.push(at);
    if recent >= PER_SECOND {
        s.rate_violations += 1;
        return fail("ThrottlingException", "Rate exceeded");
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        return fail("ThrottlingException", "Rate exceeded");
    }
    if s.deny {
        return fail(
            "AccessDeniedException",
            format!(
                "User: arn:aws:iam::123456789012:user/hanko is not authorized to perform: \
                 cloudtrail:LookupEvents because no identity-based policy allows the \
                 cloudtrail:LookupEvents action (signed by {signer_key})"
            ),
        );
    }
    // LookupAttributes: "Contains a list of lookup attributes. Currently the list can contain
    // only one item." The stand-in knows AccessKeyId only and fails loudly on the others.
    let attributes = req
        .get("LookupAttributes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if attributes.len() > 1 {
        return fail(
            "InvalidLookupAttributesException",
            "LookupAttributes can contain only one item",
        );
    }
    let key = match attributes.first() {
        None => None,
        Some(a) => {
            let (Some(k), Some(v)) = (
                a.get("AttributeKey").and_then(Value::as_str),
                a.get("AttributeValue").and_then(Value::as_str),
            ) else {
                return fail(
                    "InvalidLookupAttributesException",
                    "AttributeKey and AttributeValue are required",
                );
            };
            if k != "AccessKeyId" {
                return fail(
                    "InvalidLookupAttributesException",
                    format!("the stand-in looks up by AccessKeyId only, not {k}"),
                );
            }
            Some(v.to_string())
        }
    };
    // MaxResults: "The number of events to return. Possible values are 1 through 50. The
    // default is 50."
    let max = match req.get("MaxResults") {
        None | Some(Value::Null) => 50,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=50).contains(&n) => n as usize,
            _ => {
                return fail(
                    "InvalidMaxResultsException",
                    format!("MaxResults must be 1 to 50, not {v}"),
                )
            }
        },
    };
    // StartTime / EndTime: "If the specified start time is after the specified end time, an
    // error is returned."
    let start = time_param(req, "StartTime")?;
    let end = time_param(req, "EndTime")?;
    if let (Some(a), Some(b)) = (start, end) {
        if a > b {
            return fail("InvalidTimeRangeException", "StartTime is after EndTime");
        }
    }
    // NextToken: "The token to use to get the next page of results after a previous API call.
    // ... Note that the token must be passed in with the same parameters that were specified
    // in the original call."
    let mut params = req.clone();
    if let Some(m) = params.as_object_mut() {
        m.remove("NextToken");
    }
    let offset = match req.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => match s.tokens.get(t) {
            Some(issued) if issued.params == params && issued.region == region => issued.offset,
            Some(_) => {
                return fail(
                    "InvalidNextTokenException",
                    "the token must be passed in with the same parameters as the original call",
                )
            }
            None => return fail("InvalidNextTokenException", format!("unknown token {t:?}")),
        },
    };
    let records = s.records.get(region).map(Vec::as_slice).unwrap_or(&[]);
    let mut hits: Vec<(f64, &Value)> = records
        .iter()
        .filter(|r| {
            key.as_deref().map_or(true, |k| {
                r.pointer("/userIdentity/accessKeyId")
                    .and_then(Value::as_str)
                    == Some(k)
            })
        })
        .filter_map(|r| Some((record_time(r)?, r)))
        // "only events that occur after or at the specified time" / "before or at".
        .filter(|(t, _)| start.map_or(true, |s| *t >= s) && end.map_or(true, |e| *t <= e))
        .collect();
    // Events: "The events list is sorted by time. The most recent event is listed first." Ties
    // keep the order they were added in.
    hits.sort_by(|a, b| b.0.total_cmp(&a.0));
    let page: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(max)
        .map(|(t, r)| api_event(r, *t))
        .collect();
    let mut out = json!({ "Events": page });
    // NextToken (response): "If the token does not appear, there are no more results to
    // return." It is issued only when more remain.
    if offset + max < hits.len() {
        s.next_token += 1;
        let token = format!("ct-{:06}", s.next_token);
        s.tokens.insert(
            token.clone(),
            Issued {
                params,
                region: region.to_string(),
                offset: offset + max,
            },
        );
        out["NextToken"] = json!(token);
    }
    Ok(out)
}

/// A record's `eventTime` in epoch seconds.
fn record_time(r: &Value) -> Option<f64> {
    let t = DateTime::parse_from_rfc3339(r.get("eventTime")?.as_str()?).ok()?;
    Some(t.timestamp() as f64)
}

/// The API's `Event` for a record: `EventId`, `EventName`, `ReadOnly` ("true"/"false", a
/// string), `AccessKeyId`, `EventTime` (epoch seconds), `EventSource`, `Username`,
/// `Resources[]` (`ResourceType`, `ResourceName`) and `CloudTrailEvent` (the record, as a
/// JSON string).
fn api_event(r: &Value, time: f64) -> Value {
    let mut e = serde_json::Map::new();
    let mut put = |name: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            e.insert(name.to_string(), v);
        }
    };
    put("EventId", r.get("eventID").cloned());
    put("EventName", r.get("eventName").cloned());
    put(
        "ReadOnly",
        r.get("readOnly")
            .and_then(Value::as_bool)
            .map(|b| json!(b.to_string())),
    );
    put(
        "AccessKeyId",
        r.pointer("/userIdentity/accessKeyId").cloned(),
    );
    put("EventTime", Some(json!(time)));
    put("EventSource", r.get("eventSource").cloned());
    put("Username", r.pointer("/userIdentity/userName").cloned());
    let resources: Vec<Value> = r
        .get("resources")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|x| json!({"ResourceType": x["type"], "ResourceName": x["ARN"]}))
                .collect()
        })
        .unwrap_or_default();
    put("Resources", Some(json!(resources)));
    put("CloudTrailEvent", Some(json!(r.to_string())));
    Value::Object(e)
}

/// CloudTrail records for the stand-in, shaped like `tests/fixtures/cloudtrail/*.json` (see
/// its `SOURCES.md`): one function per call hanko reads, each signed by `key` of [`USER`] in
/// [`ACCOUNT`].
pub mod events {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde_json::{json, Value};

    pub const ACCOUNT: &str = "123456789012";
    /// The user whose key leaked.
    pub const USER: &str = "alice";
    pub const SOURCE_IP: &str = "198.51.100.7";
    pub const USER_AGENT: &str =
        "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off";

    fn time(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// A record of `name` on `source` by `key`, with fresh ids.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        key: &str,
        source: &str,
        name: &str,
        region: &str,
        at: DateTime<Utc>,
        read_only: bool,
        request: Value,
        response: Value,
    ) -> Value {
        json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAQNZGKIQYEXAMPLE1",
                "arn": format!("arn:aws:iam::{ACCOUNT}:user/{USER}"),
                "accountId": ACCOUNT,
                "accessKeyId": key,
                "userName": USER
            },
            "eventTime": time(at),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": SOURCE_IP,
            "userAgent": USER_AGENT,
            "requestParameters": request,
            "responseElements": response,
            "requestID": uuid::Uuid::new_v4().to_string(),
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        })
    }

    /// `RunInstances` launching `instances`.
    pub fn run_instances(key: &str, region: &str, instances: &[&str], at: DateTime<Utc>) -> Value {
        let items: Vec<Value> = instances
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"instanceId": id, "imageId": "ami-0c7217cdde317cfec",
                       "instanceState": {"code": 0, "name": "pending"}, "amiLaunchIndex": i,
                       "instanceType": "t3.micro"})
            })
            .collect();
        record(
            key,
            "ec2.amazonaws.com",
            "RunInstances",
            region,
            at,
            false,
            json!({"instancesSet": {"items": [{"imageId": "ami-0c7217cdde317cfec",
                   "minCount": instances.len(), "maxCount": instances.len()}]},
                   "instanceType": "t3.micro"}),
            json!({"reservationId": "r-0f3e2a6b5c4d3e2f1", "ownerId": ACCOUNT,
                   "instancesSet": {"items": items}}),
        )
    }

    /// `CreateAccessKey` of `new_key` for `user` (IAM: logged in us-east-1).
    pub fn create_access_key(key: &str, user: &str, new_key: &str, at: DateTime<Utc>) -> Value {
        record(
            key,
            "iam.amazonaws.com",
            "CreateAccessKey",
            "us-east-1",
            at,
            false,
            json!({"userName": user}),
            json!({"accessKey": {"userName": user, "accessKeyId": new_key, "status": "Active",
                   "createDate": "May 14, 2024 3:15:02 AM"}}),
        )
    }

    /// `CreateUser` of `user`.
    pub fn create_user(key: &str, user: &str, at: DateTime<Utc>) -> Value {
        record(
            key,
            "iam.amazonaws.com",
            "CreateUser",
            "us-east-1",
            at,
            false,
            json!({"userName": user}),
            json!({"user": {"path": "/", "userName": user, "userId": "AIDAQNZGKIQYMALLORY2",
                   "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
                   "createDate": "May 14, 2024 3:14:51 AM"}}),
        )
    }

    /// `CreateRole` of `role`.
    pub fn create_role(key: &str, role: &str, at: DateTime<Utc>) -> Value {
        record(
            key,
            "iam.amazonaws.com",
            "CreateRole",
            "us-east-1",
            at,
            false,
            json!({"roleName": role, "assumeRolePolicyDocument": "{}"}),
            json!({"role": {"path": "/", "roleName": role, "roleId": "AROAQNZGKIQYBACKUP01",
                   "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}")}}),
        )
    }

    /// `CreateSecurityGroup` of `id` named `name`.
    pub fn create_security_group(
        key: &str,
        region: &str,
        id: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Value {
        record(
            key,
            "ec2.amazonaws.com",
            "CreateSecurityGroup",
            region,
            at,
            false,
            json!({"groupName": name, "groupDescription": "temp"}),
            json!({"_return": true, "groupId": id}),
        )
    }

    /// `CreateBucket` of `bucket`.
    pub fn create_bucket(key: &str, region: &str, bucket: &str, at: DateTime<Utc>) -> Value {
        record(
            key,
            "s3.amazonaws.com",
            "CreateBucket",
            region,
            at,
            false,
            json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com")}),
            Value::Null,
        )
    }

    /// `PutBucketPolicy` on `bucket`: to everyone (`Principal: "*"`) when `public`, else to
    /// one other account.
    pub fn put_bucket_policy(
        key: &str,
        region: &str,
        bucket: &str,
        public: bool,
        at: DateTime<Utc>,
    ) -> Value {
        let principal = if public {
            json!("*")
        } else {
            json!({"AWS": "arn:aws:iam::999988887777:root"})
        };
        record(
            key,
            "s3.amazonaws.com",
            "PutBucketPolicy",
            region,
            at,
            false,
            json!({"bucketName": bucket, "policy": "",
                   "bucketPolicy": {"Version": "2012-10-17", "Statement": [{
                       "Effect": "Allow", "Principal": principal, "Action": "s3:GetObject",
                       "Resource": format!("arn:aws:s3:::{bucket}/*")}]}}),
            Value::Null,
        )
    }

    /// A read-only call (`DescribeInstances`, `ListBuckets`, ...) on `source`.
    pub fn read(key: &str, region: &str, source: &str, name: &str, at: DateTime<Utc>) -> Value {
        record(key, source, name, region, at, true, json!({}), Value::Null)
    }

    /// `record` as a failed call: `errorCode`, `errorMessage`, no response.
    pub fn failed(mut record: Value, code: &str) -> Value {
        record["errorCode"] = json!(code);
        record["errorMessage"] = json!(format!("{code} (stand-in)"));
        record["responseElements"] = Value::Null;
        record
    }

    /// `n` reads by `key` in `region`, one a second back from `end` (the newest at `end`).
    pub fn bulk(key: &str, region: &str, n: usize, end: DateTime<Utc>) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let at = end - chrono::Duration::seconds(i as i64);
                let name = ["DescribeInstances", "ListBuckets", "GetCallerIdentity"][i % 3];
                let source = ["ec2.amazonaws.com", "s3.amazonaws.com", "sts.amazonaws.com"][i % 3];
                read(key, region, source, name, at)
            })
            .collect()
    }
}
