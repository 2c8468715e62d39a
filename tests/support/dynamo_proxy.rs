//! A proxy in front of moto's DynamoDB, for the store's concurrency tests, that makes moto
//! behave as DynamoDB does where moto does not, and injects the cancellations a busy table
//! gives.
//!
//! * **Serializable transactions.** DynamoDB runs `TransactWriteItems` atomically and in
//!   isolation ("Isolation levels for DynamoDB transactions": serializable between a
//!   transaction and any other write, and `GetItem` reads are serializable too; Developer
//!   Guide, "Amazon DynamoDB Transactions: How it works"). moto's server applies a
//!   transaction's items one after another on request threads, so two concurrent ones can
//!   both pass their conditions. The proxy passes one request at a time, which restores the
//!   isolation the service gives (and costs nothing: moto holds Python's GIL anyway).
//! * **Injected cancellations** ([`Proxy::cancel_every`]): every n-th `TransactWriteItems` is
//!   answered, without reaching moto, as DynamoDB answers a transaction it cancelled: HTTP 400,
//!   `__type` `com.amazonaws.dynamodb.v20120810#TransactionCanceledException`, a `Message`
//!   listing the reasons and `CancellationReasons` with one `{"Code": ...}` per item, in
//!   order (API Reference, TransactWriteItems, "Errors": TransactionCanceledException, and
//!   CancellationReason). moto cannot be made to produce a `TransactionConflict` (another
//!   transaction holding an item), which is what several replicas meet.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

const TRANSACT_TARGET: &str = "DynamoDB_20120810.TransactWriteItems";

#[derive(Default)]
struct Inner {
    moto_port: u16,
    /// One request at a time.
    gate: tokio::sync::Mutex<()>,
    /// Cancel every n-th transaction (0: none), with this reason.
    cancel_every: AtomicU64,
    reason: std::sync::Mutex<String>,
    transactions: AtomicU64,
    cancelled: AtomicU64,
}

/// A running proxy; stops with the test binary.
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    inner: Arc<Inner>,
}

impl Proxy {
    /// Starts on 127.0.0.1:0 in front of moto's `moto_port`, on a thread of its own.
    pub fn start(moto_port: u16) -> Proxy {
        let inner = Arc::new(Inner {
            moto_port,
            ..Inner::default()
        });
        let state = inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                let app = Router::new().fallback(forward).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        Proxy {
            port: rx.recv().unwrap(),
            inner,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cancels every `n`-th `TransactWriteItems` (0: none) with `reason` on its first item
    /// (`ConditionalCheckFailed`, `TransactionConflict`, `ValidationError`, ...).
    pub fn cancel_every(&self, n: u64, reason: &str) {
        *self.inner.reason.lock().unwrap() = reason.to_owned();
        self.inner.cancel_every.store(n, Ordering::SeqCst);
    }

    /// Transactions that reached the proxy, and those it cancelled.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.transactions.load(Ordering::SeqCst),
            self.inner.cancelled.load(Ordering::SeqCst),
        )
    }
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _one_at_a_time = inner.gate.lock().await;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if target == TRANSACT_TARGET {
        let n = inner.transactions.fetch_add(1, Ordering::SeqCst) + 1;
        let every = inner.cancel_every.load(Ordering::SeqCst);
        if every > 0 && n % every == 0 {
            inner.cancelled.fetch_add(1, Ordering::SeqCst);
            return cancelled(&body, &inner.reason.lock().unwrap());
        }
    }
    to_moto(inner.moto_port, method, uri, headers, body).await
}

/// Passes a request on to moto unchanged and its answer back.
async fn to_moto(port: u16, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(reqwest::Client::new);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        format!("http://127.0.0.1:{port}{path}"),
    );
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match request.body(body.to_vec()).send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_str().as_bytes()),
                axum::http::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                out.insert(n, v);
            }
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, out, bytes.to_vec()).into_response()
}

/// DynamoDB's answer to a cancelled transaction: `reason` for the first item, `None` for the
/// others (API Reference, CancellationReason: "Code ... None" when the item was not the cause).
fn cancelled(request: &[u8], reason: &str) -> Response {
    let items = serde_json::from_slice::<serde_json::Value>(request)
        .ok()
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1)
        .max(1);
    let mut reasons =
        vec![serde_json::json!({"Code": reason, "Message": "injected by the test proxy"})];
    reasons.extend((1..items).map(|_| serde_json::json!({"Code": "None"})));
    let codes: Vec<&str> = std::iter::once(reason)
        .chain((1..items).map(|_| "None"))
        .collect();
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}
