//! hanko's own binary as a child process, for the tests that run it as an operator would:
//! the command line ([`hanko_run`]), the start (the HTTP address read from its log, then
//! `/healthz`), its stderr kept for failure messages, and the stop (SIGTERM, exit 0) or the
//! kill (SIGKILL).

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use super::e2e_bot::{http_get, POLL, WAIT};

/// `bin run --config CONFIG` with static credentials, AWS at `aws_endpoint`, and nothing of
/// the caller's AWS profile, region or commands folder; stderr is read by
/// [`HankoProcess::spawn`].
pub fn hanko_run(bin: &Path, config: &Path, aws_endpoint: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("AWS_ENDPOINT_URL", aws_endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("HANKO_COMMANDS_DIR")
        .env("HANKO_LOG", "warn,hanko=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` (a one-shot `hanko` command, such as `bin audit verify --config FILE`, with its
/// environment set) to its end: (success, stdout then stderr).
pub async fn finish(mut cmd: tokio::process::Command) -> (bool, String) {
    let out = cmd.output().await.expect("run hanko");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A running `hanko run`; killed when dropped.
pub struct HankoProcess {
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
    pub http_addr: std::net::SocketAddr,
}

impl HankoProcess {
    /// Starts `cmd` (a `hanko run`), reads the HTTP address it logs and waits for `/healthz`.
    pub async fn spawn(mut cmd: tokio::process::Command) -> HankoProcess {
        let mut child = cmd.spawn().expect("start hanko run");
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = {
            let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
            let log = log.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("http_addr=").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = addr_tx.send(addr);
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        let stderr = || log.lock().unwrap().join("\n");
        let http_addr: std::net::SocketAddr = match tokio::time::timeout(WAIT, addr_rx.recv()).await
        {
            Ok(Some(addr)) => addr.parse().unwrap(),
            _ => panic!("hanko run logged no HTTP address; stderr:\n{}", stderr()),
        };
        let deadline = Instant::now() + WAIT;
        while http_get(http_addr, "/healthz").await.0 != 200 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "hanko run exited ({status}) before it was healthy; stderr:\n{}",
                    stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "/healthz not 200 within {WAIT:?}; stderr:\n{}",
                stderr()
            );
            tokio::time::sleep(POLL).await;
        }
        HankoProcess {
            child,
            log,
            reader,
            http_addr,
        }
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// SIGKILL, as a machine that dies: no shutdown, no lease handed over. Returns its whole
    /// stderr.
    pub async fn kill(mut self) -> String {
        self.child.kill().await.expect("SIGKILL hanko run");
        let _ = tokio::time::timeout(WAIT, &mut self.reader).await;
        self.stderr()
    }

    /// SIGTERM; hanko exits 0 within 30 s. Returns its whole stderr.
    pub async fn stop(mut self) -> String {
        let pid = self.pid().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("hanko run exits within 30 s of SIGTERM")
            .unwrap();
        let _ = tokio::time::timeout(WAIT, &mut self.reader).await;
        assert_eq!(status.code(), Some(0), "stderr:\n{}", self.stderr());
        self.stderr()
    }
}
