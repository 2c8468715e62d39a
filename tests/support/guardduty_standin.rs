//! A local stand-in for the GuardDuty REST API (moto does not implement GuardDuty findings),
//! on 127.0.0.1, serving the real fixture documents of `tests/fixtures/guardduty/api/`.
//!
//! Routes, as the SDK calls them:
//! * `GET /detector` (ListDetectors) -> `{"detectorIds": [...]}`
//! * `POST /detector/{id}/findings` (ListFindings): honours the `updatedAt` and `severity`
//!   numeric conditions and `service.archived` equals, sorts by `sortCriteria`, pages with
//!   `maxResults` (1..=50) / `nextToken`. An unknown criterion is a 400, so a query the
//!   stand-in cannot honour fails loudly.
//! * `POST /detector/{id}/findings/get` (GetFindings): at most 50 `findingIds`.
//!
//! Anything else is a 404. Every request is recorded. Documents are served in the API's own
//! shape: the console/EventBridge form of `service.additionalInfo` (an object) becomes the
//! API's `{"value": "<JSON text>", "type": "default"}`.

#![allow(dead_code)]

use super::fixtures;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub use fixtures::fixtures_dir;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    detector_id: String,
    findings: Vec<Value>,
    requests: Vec<Recorded>,
    /// The last query's matches (indexes into `findings`, sorted), reused for its next pages
    /// while no finding changed. A stand-in detail, not GuardDuty behaviour: without it every
    /// page of a 10,000-finding burst filtered and sorted all 10,000 documents again, and the
    /// stand-in, not hanko, set the pace of the burst benchmark.
    listing: Option<Listing>,
    /// Finding id -> index into `findings`, rebuilt after a change (GetFindings).
    index: Option<HashMap<String, usize>>,
}

struct Listing {
    /// The request without its `nextToken`: the same query.
    query: String,
    hits: Vec<usize>,
}

impl Inner {
    /// Call after any change of `findings`.
    fn changed(&mut self) {
        self.listing = None;
        self.index = None;
    }
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

/// Every `api/*.json` fixture (not `_wrappers`), sorted by file name: (name, document).
pub fn api_fixtures() -> Vec<(String, Value)> {
    let dir = fixtures_dir().join("api");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), doc)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 30,
        "expected the API fixtures in {}",
        dir.display()
    );
    out
}

/// A fixture in the API's shape (see the module docs).
pub fn to_api_shape(mut doc: Value) -> Value {
    if let Some(info) = doc.pointer_mut("/service/additionalInfo") {
        if info.is_object() && info.get("value").is_none() {
            *info = json!({"value": info.to_string(), "type": "default"});
        }
    }
    // Runtime details carry smithy timestamps, which the API sends as epoch seconds; one
    // hand-edited fixture has RFC 3339 strings there, which the SDK rejects.
    if let Some(rt) = doc.pointer_mut("/service/runtimeDetails") {
        epoch_seconds_for_times(rt);
    }
    doc
}

fn epoch_seconds_for_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let time = x
                    .as_str()
                    .filter(|_| k.ends_with("At") || k.ends_with("Time"))
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
                match time {
                    Some(t) => *x = json!(t.timestamp()),
                    None => epoch_seconds_for_times(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(epoch_seconds_for_times),
        _ => {}
    }
}

impl Standin {
    /// Starts on 127.0.0.1:0 with `findings` (fixture documents, converted to the API shape).
    pub async fn start(detector_id: &str, findings: Vec<Value>) -> Standin {
        let state: Shared = Arc::new(Mutex::new(Inner {
            detector_id: detector_id.to_string(),
            findings: findings.into_iter().map(to_api_shape).collect(),
            requests: Vec::new(),
            listing: None,
            index: None,
        }));
        let app = Router::new()
            .route("/detector", get(list_detectors))
            .route("/detector/:id/findings", post(list_findings))
            .route("/detector/:id/findings/get", post(get_findings))
            .fallback(unknown)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Standin { addr, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a document (converted to the API shape).
    pub fn add(&self, doc: Value) {
        let mut s = self.state.lock().unwrap();
        s.findings.push(to_api_shape(doc));
        s.changed();
    }

    /// Adds a document as is, not converted (to serve what the SDK cannot read).
    pub fn add_raw(&self, doc: Value) {
        let mut s = self.state.lock().unwrap();
        s.findings.push(doc);
        s.changed();
    }

    /// GuardDuty saw the finding again: `service.count` + 1, `updatedAt` = `now`.
    pub fn bump(&self, id: &str, now: DateTime<Utc>) {
        self.edit(id, |f| {
            let count = f["service"]["count"].as_u64().unwrap_or(1);
            f["service"]["count"] = json!(count + 1);
            f["updatedAt"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        });
    }

    /// Archives the finding; `updatedAt` is left alone (the hard case for a cursor).
    pub fn archive(&self, id: &str) {
        self.edit(id, |f| f["service"]["archived"] = json!(true));
    }

    fn edit(&self, id: &str, change: impl FnOnce(&mut Value)) {
        let mut s = self.state.lock().unwrap();
        let f = s
            .findings
            .iter_mut()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("no finding {id} in the stand-in"));
        change(f);
        s.changed();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The recorded requests to `path_suffix` (e.g. `/findings`, `/findings/get`).
    pub fn requests_to(&self, path_suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

fn record(state: &Shared, method: &str, path: &str, body: &[u8]) {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    state.lock().unwrap().requests.push(Recorded {
        method: method.into(),
        path: path.into(),
        body,
    });
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("x-amzn-ErrorType", "BadRequestException")],
        Json(json!({"__type": "BadRequestException", "message": message})),
    )
        .into_response()
}

async fn unknown(State(state): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    record(&state, method.as_str(), uri.path(), &body);
    (
        StatusCode::NOT_FOUND,
        format!("the stand-in has no route {method} {uri}"),
    )
        .into_response()
}

async fn list_detectors(State(state): State<Shared>) -> Response {
    record(&state, "GET", "/detector", b"");
    let id = state.lock().unwrap().detector_id.clone();
    Json(json!({"detectorIds": [id]})).into_response()
}

/// A number the criterion compares: `updatedAt` in epoch milliseconds, `severity` as is.
fn field_number(f: &Value, field: &str) -> Option<f64> {
    match field {
        "updatedAt" => DateTime::parse_from_rfc3339(f["updatedAt"].as_str()?)
            .ok()
            .map(|t| t.timestamp_millis() as f64),
        "severity" => f["severity"].as_f64(),
        _ => None,
    }
}

fn matches(f: &Value, criterion: &serde_json::Map<String, Value>) -> Result<bool, String> {
    for (field, cond) in criterion {
        let cond = cond.as_object().ok_or("condition is not an object")?;
        match field.as_str() {
            "updatedAt" | "severity" => {
                let Some(x) = field_number(f, field) else {
                    return Ok(false);
                };
                for (op, v) in cond {
                    let v = v.as_f64().ok_or(format!("{field}.{op} is not a number"))?;
                    let ok = match op.as_str() {
                        "gte" | "greaterThanOrEqual" => x >= v,
                        "gt" | "greaterThan" => x > v,
                        "lte" | "lessThanOrEqual" => x <= v,
                        "lt" | "lessThan" => x < v,
                        other => return Err(format!("unsupported operator {field}.{other}")),
                    };
                    if !ok {
                        return Ok(false);
                    }
                }
            }
            "service.archived" => {
                let archived = f["service"]["archived"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string();
                for (op, v) in cond {
                    let values: Vec<&str> = v
                        .as_array()
                        .ok_or(format!("{field}.{op} is not a list"))?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    let ok = match op.as_str() {
                        "eq" | "equals" => values.contains(&archived.as_str()),
                        "neq" | "notEquals" => !values.contains(&archived.as_str()),
                        other => return Err(format!("unsupported operator {field}.{other}")),
                    };
                    if !ok {
                        return Ok(false);
                    }
                }
            }
            other => return Err(format!("the stand-in does not support criterion {other}")),
        }
    }
    Ok(true)
}

async fn list_findings(
    State(state): State<Shared>,
    Path(detector): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/detector/{detector}/findings");
    record(&state, "POST", &path, &body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut guard = state.lock().unwrap();
    let s = &mut *guard;
    if detector != s.detector_id {
        return bad_request("The request is rejected because the input detectorId is not owned by the current account.".to_string());
    }
    let query = {
        let mut q = req.clone();
        if let Some(o) = q.as_object_mut() {
            o.remove("nextToken");
            o.remove("maxResults");
        }
        q.to_string()
    };
    if s.listing.as_ref().map_or(true, |l| l.query != query) {
        let empty = serde_json::Map::new();
        let criterion = req
            .pointer("/findingCriteria/criterion")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut hits = Vec::new();
        for (i, f) in s.findings.iter().enumerate() {
            match matches(f, criterion) {
                Ok(true) => hits.push(i),
                Ok(false) => {}
                Err(e) => return bad_request(e),
            }
        }
        if let Some(sort) = req.get("sortCriteria") {
            let attr = sort["attributeName"].as_str().unwrap_or("");
            if attr != "updatedAt" {
                return bad_request(format!(
                    "the stand-in sorts by updatedAt only, not {attr:?}"
                ));
            }
            let desc = sort["orderBy"] == "DESC";
            let findings = &s.findings;
            hits.sort_by_cached_key(|&i| {
                let f = &findings[i];
                (
                    field_number(f, "updatedAt").unwrap_or(0.0) as i64,
                    f["id"].as_str().unwrap_or("").to_string(),
                )
            });
            if desc {
                hits.reverse();
            }
        }
        s.listing = Some(Listing { query, hits });
    }
    let hits: Vec<&Value> = s
        .listing
        .as_ref()
        .map(|l| l.hits.iter().map(|&i| &s.findings[i]).collect())
        .unwrap_or_default();
    let max = req["maxResults"].as_i64().unwrap_or(50);
    if !(1..=50).contains(&max) {
        return bad_request(format!("maxResults must be 1 to 50, not {max}"));
    }
    let start: usize = match req["nextToken"].as_str() {
        None | Some("") => 0,
        Some(t) => match t.parse() {
            Ok(n) => n,
            Err(_) => return bad_request(format!("bad nextToken {t:?}")),
        },
    };
    let end = (start + max as usize).min(hits.len());
    let ids: Vec<&Value> = hits[start.min(end)..end].iter().map(|f| &f["id"]).collect();
    let mut out = json!({"findingIds": ids});
    if end < hits.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Json(out).into_response()
}

async fn get_findings(
    State(state): State<Shared>,
    Path(detector): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/detector/{detector}/findings/get");
    record(&state, "POST", &path, &body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut guard = state.lock().unwrap();
    let s = &mut *guard;
    if detector != s.detector_id {
        return bad_request("unknown detector".into());
    }
    let ids: Vec<&str> = req["findingIds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 50 {
        return bad_request(format!(
            "findingIds must hold 1 to 50 ids, not {}",
            ids.len()
        ));
    }
    let findings_list = &s.findings;
    let by_id = s.index.get_or_insert_with(|| {
        findings_list
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((f["id"].as_str()?.to_string(), i)))
            .collect()
    });
    let findings: Vec<&Value> = ids
        .iter()
        .filter_map(|id| by_id.get(*id).map(|&i| &findings_list[i]))
        .collect();
    Json(json!({"findings": findings})).into_response()
}

/// Static test credentials and us-east-1, with no endpoint: callers set one per client.
pub async fn test_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "hanko-tests",
        ))
        .load()
        .await
}

/// A GuardDuty client pointed at `endpoint` (the endpoint on this client only).
pub fn guardduty_client(conf: &aws_config::SdkConfig, endpoint: &str) -> aws_sdk_guardduty::Client {
    let conf = aws_sdk_guardduty::config::Builder::from(conf)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_guardduty::Client::from_conf(conf)
}
