//! A local stand-in for Security Hub's `BatchUpdateFindings` in front of moto (moto 5.2 does
//! not implement it), on 127.0.0.1. The SDK reaches it through its endpoint URL.
//!
//! * `PATCH /findings/batchupdate` (BatchUpdateFindings) is served here. Every request body is
//!   recorded. It is validated as Security Hub does (1 to 100 identifiers, `Note.Text` and
//!   `Note.UpdatedBy` at most 512 characters and given together, a known `Workflow.Status`);
//!   an invalid one is a 400 `InvalidInputException`. Each identifier is then looked up in moto
//!   (`GetFindings`, matched on `Id` and `ProductArn`): found ones get `Workflow.Status` and
//!   `Note` (with the note's own `UpdatedAt`) set and are re-imported into moto with
//!   `BatchImportFindings`, which moto merges into the stored finding (top-level keys replaced),
//!   so a later `GetFindings` shows the change; unknown ones come back unprocessed with
//!   `FindingNotFound`. [`Standin::report_unprocessed`] makes it refuse a chosen finding.
//!
//!   The finding's own `UpdatedAt` is left as it was: "Updates from `BatchUpdateFindings` do
//!   not affect the value of `UpdatedAt` for a finding" (Security Hub API Reference,
//!   `BatchUpdateFindings`,
//!   <https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchUpdateFindings.html>).
//!   `UpdatedAt` belongs to the finding provider (`BatchImportFindings`); a stand-in that bumped
//!   it would let a poller that reads "updated since its cursor" see workflow changes that the
//!   real service never shows it.
//! * Everything else (`GetFindings`, `BatchImportFindings`, ...) is recorded and forwarded to
//!   moto unchanged (HTTP/1.0, so moto answers without chunking), and moto's answer is returned.
//!
//! [`Standin::start_in_own_account`] keeps a test's findings apart on a moto server other tests
//! use too: every Security Hub request the stand-in sends moto carries moto's
//! `x-moto-account-id` header, so moto keeps the findings in an account of their own (moto's
//! multi-account support, server mode). Requests for other services (signed for another
//! service, e.g. STS or S3 from a bot whose every call goes through the stand-in) are passed
//! on in moto's default account, so hanko still finds its own account where it was.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Security Hub's limit on `Note.Text` and `Note.UpdatedBy`, in characters.
pub const NOTE_MAX: usize = 512;
const STATUSES: [&str; 4] = ["NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"];
/// What the SDK signs with; moto only reads the service and region from it.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/securityhub/aws4_request, SignedHeaders=host, Signature=0";

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    moto_port: u16,
    /// The moto account every request to moto is made in (`x-moto-account-id`); `None`:
    /// moto's default account.
    moto_account: Option<String>,
    requests: Vec<Recorded>,
    /// `Id` -> (error code, message) to report unprocessed instead of updating.
    refuse: BTreeMap<String, (String, String)>,
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
    /// Starts on 127.0.0.1:0 in front of the moto server on `moto_port`.
    pub async fn start(moto_port: u16) -> Standin {
        Self::start_in(moto_port, None).await
    }

    /// Like [`Standin::start`], with this stand-in's findings in a moto account no other
    /// stand-in of the process uses (see the module header).
    pub async fn start_in_own_account(moto_port: u16) -> Standin {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::start_in(moto_port, Some(format!("{:012}", 900_000_000_000 + n))).await
    }

    async fn start_in(moto_port: u16, moto_account: Option<String>) -> Standin {
        let state: Shared = Arc::new(Mutex::new(Inner {
            moto_port,
            moto_account,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/findings/batchupdate", patch(batch_update))
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Security Hub stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the Security Hub stand-in stopped");
        });
        Standin { addr, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A Security Hub client pointed at the stand-in.
    pub fn client(&self, conf: &aws_config::SdkConfig) -> aws_sdk_securityhub::Client {
        let conf = aws_sdk_securityhub::config::Builder::from(conf)
            .endpoint_url(self.endpoint())
            .build();
        aws_sdk_securityhub::Client::from_conf(conf)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The bodies of the `BatchUpdateFindings` calls so far.
    pub fn batch_updates(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path == "/findings/batchupdate")
            .map(|r| r.body)
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// From now on, report finding `id` unprocessed with `code` instead of updating it.
    pub fn report_unprocessed(&self, id: &str, code: &str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .refuse
            .insert(id.to_string(), (code.to_string(), message.to_string()));
    }

    /// Every finding as moto holds it now (raw JSON, straight from moto).
    pub async fn findings(&self) -> Vec<Value> {
        let (port, account) = {
            let s = self.state.lock().unwrap();
            (s.moto_port, s.moto_account.clone())
        };
        moto_findings(port, account.as_deref())
            .await
            .unwrap_or_else(|e| panic!("read moto's findings: {e}"))
    }

    /// `BatchImportFindings` through the stand-in (forwarded to moto), as raw JSON so the
    /// documents go in byte for byte. Panics unless every finding was imported.
    pub async fn import(&self, findings: &[Value]) {
        let body = json!({ "Findings": findings }).to_string();
        let (status, _, resp) = http(
            self.addr.port(),
            None, // the stand-in passes it on to moto in its account
            "POST",
            "/findings/import",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", AUTH),
            ],
            body.as_bytes(),
        )
        .await
        .unwrap_or_else(|e| panic!("import through the stand-in: {e}"));
        let resp: Value = serde_json::from_slice(&resp).unwrap_or(Value::Null);
        assert_eq!(status, 200, "import: {resp}");
        assert_eq!(resp["FailedCount"], 0, "import: {resp}");
        assert_eq!(resp["SuccessCount"], findings.len(), "import: {resp}");
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

/// A Security Hub error as restJson1 carries it.
fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        [("x-amzn-ErrorType", code.to_string())],
        Json(json!({"Code": code, "Message": message})),
    )
        .into_response()
}

fn invalid(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, "InvalidInputException", message)
}

/// Security Hub's checks on a `BatchUpdateFindings` body.
fn validate(req: &Value) -> Result<Vec<(String, String)>, String> {
    let ids = req["FindingIdentifiers"]
        .as_array()
        .ok_or("FindingIdentifiers is required")?;
    if ids.is_empty() || ids.len() > 100 {
        return Err(format!(
            "FindingIdentifiers must hold 1 to 100 identifiers, not {}",
            ids.len()
        ));
    }
    let mut out = Vec::new();
    for i in ids {
        let (Some(id), Some(arn)) = (i["Id"].as_str(), i["ProductArn"].as_str()) else {
            return Err(format!("identifier {i} lacks Id or ProductArn"));
        };
        out.push((id.to_string(), arn.to_string()));
    }
    if let Some(note) = req.get("Note") {
        for key in ["Text", "UpdatedBy"] {
            let v = note[key]
                .as_str()
                .ok_or(format!("Note.{key} is required with Note"))?;
            let n = v.chars().count();
            if n == 0 || n > NOTE_MAX {
                return Err(format!(
                    "Note.{key} must be 1 to {NOTE_MAX} characters, not {n}"
                ));
            }
        }
    }
    if let Some(w) = req.get("Workflow") {
        let s = w["Status"].as_str().unwrap_or("");
        if !STATUSES.contains(&s) {
            return Err(format!("Workflow.Status {s:?} is not one of {STATUSES:?}"));
        }
    }
    Ok(out)
}

async fn batch_update(State(state): State<Shared>, body: Bytes) -> Response {
    record(&state, "PATCH", "/findings/batchupdate", &body);
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid(format!("the body is not JSON: {e}")),
    };
    let identifiers = match validate(&req) {
        Ok(i) => i,
        Err(m) => return invalid(m),
    };
    let (moto_port, account, refuse) = {
        let s = state.lock().unwrap();
        (s.moto_port, s.moto_account.clone(), s.refuse.clone())
    };
    let stored = match moto_findings(moto_port, account.as_deref()).await {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_GATEWAY, "InternalException", e),
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut processed = Vec::new();
    let mut unprocessed = Vec::new();
    let mut changed = Vec::new();
    for (id, arn) in identifiers {
        let ident = json!({"Id": id, "ProductArn": arn});
        if let Some((code, message)) = refuse.get(&id) {
            unprocessed.push(json!({"FindingIdentifier": ident, "ErrorCode": code,
                                    "ErrorMessage": message}));
            continue;
        }
        let Some(mut f) = stored
            .iter()
            .find(|f| f["Id"] == id.as_str() && f["ProductArn"] == arn.as_str())
            .cloned()
        else {
            unprocessed.push(
                json!({"FindingIdentifier": ident, "ErrorCode": "FindingNotFound",
                                    "ErrorMessage": "Finding not found"}),
            );
            continue;
        };
        if let Some(status) = req.pointer("/Workflow/Status") {
            f["Workflow"] = json!({"Status": status});
        }
        if let Some(note) = req.get("Note") {
            f["Note"] = json!({"Text": note["Text"], "UpdatedBy": note["UpdatedBy"],
                               "UpdatedAt": now});
        }
        // No `f["UpdatedAt"] = now`: BatchUpdateFindings leaves the finding's UpdatedAt alone
        // (API reference, see the module docs).
        changed.push(f);
        processed.push(ident);
    }
    if !changed.is_empty() {
        let body = json!({"Findings": changed}).to_string();
        let imported = http(
            moto_port,
            account.as_deref(),
            "POST",
            "/findings/import",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", AUTH),
            ],
            body.as_bytes(),
        )
        .await;
        match imported {
            Ok((200, _, resp))
                if serde_json::from_slice::<Value>(&resp).is_ok_and(|r| r["FailedCount"] == 0) => {}
            Ok((status, _, resp)) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    "InternalException",
                    format!(
                        "moto refused the re-import ({status}): {}",
                        String::from_utf8_lossy(&resp)
                    ),
                )
            }
            Err(e) => return error(StatusCode::BAD_GATEWAY, "InternalException", e),
        }
    }
    Json(json!({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}))
        .into_response()
}

/// Every finding moto holds (it ignores filters), all pages.
async fn moto_findings(moto_port: u16, account: Option<&str>) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"MaxResults": 100});
        if let Some(t) = &token {
            req["NextToken"] = json!(t);
        }
        let (status, _, body) = http(
            moto_port,
            account,
            "POST",
            "/findings",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", AUTH),
            ],
            req.to_string().as_bytes(),
        )
        .await?;
        let page: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("moto's GetFindings answer is not JSON ({status}): {e}"))?;
        if status != 200 {
            return Err(format!("moto's GetFindings failed ({status}): {page}"));
        }
        all.extend(page["Findings"].as_array().cloned().unwrap_or_default());
        match page["NextToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(all),
        }
    }
}

/// Hop-by-hop headers, and the length the server sets itself.
pub fn passed_on(name: &str) -> bool {
    !matches!(
        name.to_ascii_lowercase().as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "te" | "upgrade"
    )
}

async fn forward(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, method.as_str(), uri.path(), &body);
    let (moto_port, account) = {
        let s = state.lock().unwrap();
        (s.moto_port, s.moto_account.clone())
    };
    // Only Security Hub's own requests go to the stand-in's account.
    let security_hub = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("/securityhub/aws4_request"));
    let account = account.filter(|_| security_hub);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let pass: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| passed_on(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let pass: Vec<(&str, &str)> = pass.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    match http(
        moto_port,
        account.as_deref(),
        method.as_str(),
        &path,
        &pass,
        &body,
    )
    .await
    {
        Ok((status, headers, body)) => {
            let mut resp = Response::new(axum::body::Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (n, v) in headers.iter().filter(|(n, _)| passed_on(n)) {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
            resp
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, "InternalException", e),
    }
}

pub type HttpAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.0 exchange with 127.0.0.1:`port`: the answer's status, headers and body. With
/// `account`, moto acts in that account (`x-moto-account-id`).
pub async fn http(
    port: u16,
    account: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpAnswer, String> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(account) = account {
        head.push_str(&format!("x-moto-account-id: {account}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    conn.write_all(&raw)
        .await
        .map_err(|e| format!("send {method} {path}: {e}"))?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        conn.read_to_end(&mut answer),
    )
    .await
    .map_err(|_| format!("{method} {path}: no answer within 30 s"))?
    .map_err(|e| format!("read the answer to {method} {path}: {e}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no HTTP head in the answer"))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let body = answer[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        return Err(format!(
            "{method} {path}: moto answered chunked to HTTP/1.0"
        ));
    }
    Ok((status, headers, body))
}
