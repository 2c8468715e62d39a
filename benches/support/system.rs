//! Helpers of `benches/system.rs`: the real `hanko` binary as a child process, resident memory
//! from `/proc`, and percentiles. The timestamping proxy in front of moto and the GuardDuty
//! stand-in is `support/proxy.rs`; the Discord fake, moto and the stand-in are the ones of
//! `tests/support/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- the hanko binary ------------------------------------------------------------------------

/// The release binary cargo built for this bench (`HANKO_BIN` overrides it).
pub fn hanko_bin() -> PathBuf {
    std::env::var_os("HANKO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hanko")))
}

/// The hanko binary with moto's static credentials, in `us-east-1`, without the instance
/// metadata service or the caller's AWS profile.
fn hanko_command() -> Command {
    let mut cmd = Command::new(hanko_bin());
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    cmd
}

/// `hanko ARGS… CONFIG` (a one-shot command such as `store init --config`) with AWS at
/// `aws_endpoint`; panics with its output when it fails.
pub fn hanko_cli(args: &[&str], config: &Path, aws_endpoint: &str) {
    let out = hanko_command()
        .args(args)
        .arg(config)
        .env("AWS_ENDPOINT_URL", aws_endpoint)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", hanko_bin().display()));
    assert!(
        out.status.success(),
        "hanko {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `hanko run`; SIGKILLed when dropped if still alive.
pub struct Hanko {
    child: Child,
    pub pid: u32,
    pub http: SocketAddr,
    pub spawned_at: Instant,
    pub log: PathBuf,
}

impl Hanko {
    /// `hanko run --config CONFIG` with `env` added, stderr to `log`.
    pub fn spawn(config: &Path, http: SocketAddr, env: &[(&str, String)], log: &Path) -> Hanko {
        let err = std::fs::File::create(log).expect("log file");
        let mut cmd = hanko_command();
        cmd.args(["run", "--config"])
            .arg(config)
            .env(
                "HANKO_COMMANDS_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("commands"),
            )
            .env("HANKO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", hanko_bin().display()));
        Hanko {
            pid: child.id(),
            child,
            http,
            spawned_at,
            log: log.to_path_buf(),
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        (self.status_kib("VmRSS:"), self.status_kib("VmHWM:"))
    }

    /// What is resident now, in KiB: (anonymous memory, file-backed pages: the mapped code and
    /// data of the binary and its libraries).
    pub fn resident_split_kib(&self) -> (u64, u64) {
        (self.status_kib("RssAnon:"), self.status_kib("RssFile:"))
    }

    fn status_kib(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("/proc/PID/status");
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Polls `/healthz` every 2 ms until it answers 200; the moment it did.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "hanko exited with {status} before /healthz was ok; its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok((200, _)) = http_get(self.http, "/healthz").await {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "/healthz not ok within {timeout:?}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        http_get(self.http, "/metrics")
            .await
            .map(|r| r.1)
            .unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 30 s, then SIGKILL); the time it took to exit.
    pub fn stop(mut self) -> Duration {
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = t + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return t.elapsed();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                eprintln!("hanko did not stop within 30 s of SIGTERM: killed");
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Hanko {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of an unlabelled (or exactly labelled) Prometheus line.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A GET over a fresh connection: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

// ---- figures ---------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted `v` (`q` in 0..=1).
pub fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((v.len() as f64) * q).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `d` after `from`, in ms (negative when before).
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        ms(to - from)
    } else {
        -ms(from - to)
    }
}

/// p50, p99 and max of `samples` as a Markdown table row: `| what | n | p50 | p99 | max |`.
pub fn row(what: &str, samples: &[f64]) -> (String, f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (pct(&v, 0.5), pct(&v, 0.99));
    let line = format!(
        "| {what} | {} | {} | {} | {} | {} |",
        v.len(),
        fmt_ms(pct(&v, 0.0)),
        fmt_ms(p50),
        fmt_ms(p99),
        fmt_ms(*v.last().unwrap_or(&f64::NAN))
    );
    (line, p50, p99)
}

pub fn fmt_ms(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.2}")
    } else if x.abs() < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The section of BENCHMARKS.md the following lines belong to.
static SECTION: AtomicU8 = AtomicU8::new(0);

pub fn section(n: u8) {
    SECTION.store(n, Ordering::Relaxed);
}

/// A line of the current section's Markdown: `md<TAB>section<TAB>line`.
pub fn md(line: impl AsRef<str>) {
    println!("md\t{}\t{}", SECTION.load(Ordering::Relaxed), line.as_ref());
}

/// A row of BENCHMARKS.md's summary table: `summary<TAB>section<TAB>figure<TAB>value`.
pub fn summary(figure: impl AsRef<str>, value: impl AsRef<str>) {
    println!(
        "summary\t{}\t{}\t{}",
        SECTION.load(Ordering::Relaxed),
        figure.as_ref(),
        value.as_ref()
    );
}
