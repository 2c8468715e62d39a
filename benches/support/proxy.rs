//! A timestamping HTTP proxy for the benches that watch hanko's AWS calls from outside: it sits
//! in front of moto (or a stand-in), reads each HTTP/1.1 request as it passes, and records its
//! service (from the SigV4 scope), its operation and when it went out and was answered. Used by
//! `benches/system.rs` (latencies on the wire) and `benches/floor.rs` (which operations hanko
//! and the floor make). Each bench uses part of it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request through the proxy.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// From the SigV4 credential scope (`iam`, `sqs`, `guardduty`, ...).
    pub service: String,
    /// `X-Amz-Target`'s operation, the query protocol's `Action`, else `METHOD path`.
    pub action: String,
    pub body: String,
    /// When the request's first bytes reached the proxy (left hanko).
    pub sent: Instant,
    /// When the response's first bytes came back from upstream.
    pub answered: Option<Instant>,
}

type Log = Arc<Mutex<Vec<Exchange>>>;

/// A plain TCP proxy on 127.0.0.1 that reads HTTP/1.1 requests as they pass (head and
/// `Content-Length` body) and timestamps each request and the start of its response. The SDK
/// does not pipeline, so the first bytes from upstream after a request answer that request.
pub struct Proxy {
    pub addr: SocketAddr,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log: Log = Arc::default();
        let l = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let l = l.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        connection(client, server, l).await;
                    }
                });
            }
        });
        Proxy { addr, log, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }
}

async fn connection(client: TcpStream, server: TcpStream, log: Log) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let awaiting: Arc<Mutex<VecDeque<usize>>> = Arc::default();
    let (log2, awaiting2) = (log.clone(), awaiting.clone());
    let up = async move {
        let mut parser = RequestParser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now();
            parser.feed(&buf[..n], at, &log2, &awaiting2);
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now();
            if let Some(i) = awaiting.lock().unwrap().pop_front() {
                log.lock().unwrap()[i].answered = Some(at);
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

#[derive(Default)]
struct RequestParser {
    pending: Vec<u8>,
    started: Option<Instant>,
    /// Inside a body: (log index, bytes still expected).
    body: Option<(usize, usize)>,
    /// A chunked body: the rest of the connection is not parsed.
    opaque: bool,
}

impl RequestParser {
    fn feed(&mut self, bytes: &[u8], at: Instant, log: &Log, awaiting: &Mutex<VecDeque<usize>>) {
        if self.opaque {
            return;
        }
        self.pending.extend_from_slice(bytes);
        loop {
            if let Some((i, remaining)) = self.body {
                let take = remaining.min(self.pending.len());
                let chunk: Vec<u8> = self.pending.drain(..take).collect();
                let mut l = log.lock().unwrap();
                let e = &mut l[i];
                e.body.push_str(&String::from_utf8_lossy(&chunk));
                if take == remaining {
                    if e.action.is_empty() {
                        e.action = form_value(&e.body, "Action").unwrap_or_default();
                    }
                    self.body = None;
                    continue;
                }
                self.body = Some((i, remaining - take));
                return;
            }
            if self.pending.is_empty() {
                self.started = None;
                return;
            }
            let started = *self.started.get_or_insert(at);
            let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                return;
            };
            let head: Vec<u8> = self.pending.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head).to_string();
            self.started = None;
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap_or_default();
            let (mut service, mut action, mut length, mut chunked) =
                (String::new(), String::new(), 0usize, false);
            for line in lines {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = v.trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "authorization" => {
                        if let Some(scope) = v.split("Credential=").nth(1) {
                            service = scope.split('/').nth(3).unwrap_or_default().to_string();
                        }
                    }
                    "x-amz-target" => {
                        action = v.rsplit('.').next().unwrap_or_default().to_string();
                    }
                    "content-length" => length = v.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                    _ => {}
                }
            }
            if action.is_empty() && service == "guardduty" {
                action = request_line
                    .rsplit_once(' ')
                    .map_or(request_line, |r| r.0)
                    .to_string();
            }
            let i = {
                let mut l = log.lock().unwrap();
                l.push(Exchange {
                    service,
                    action,
                    body: String::new(),
                    sent: started,
                    answered: None,
                });
                l.len() - 1
            };
            awaiting.lock().unwrap().push_back(i);
            if chunked {
                self.opaque = true;
                return;
            }
            if length > 0 {
                self.body = Some((i, length));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A value of an `application/x-www-form-urlencoded` body.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}
