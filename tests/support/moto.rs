//! Starts a moto server on 127.0.0.1 for the integration tests, and builds real aws-sdk
//! clients pointed at it. The server is killed when the handle is dropped.
//!
//! [`shared`] is the one server of a test binary, started on first use and stopped when the
//! binary exits. A test may use it when its resources cannot meet another test's: names no
//! other test of the binary uses, and no listing or counting of what the account or region
//! holds; a test that must list a region may work in a moto account of its own
//! ([`Moto::sdk_config_in_own_account`]). A test that changes the server itself (IAM
//! enforcement, `INITIAL_NO_AUTH_ACTION_COUNT`), reads moto's whole state, or acts on
//! account-wide settings of hanko's own account starts its own with [`Moto::start`].
//!
//! moto is required: when `moto_server` is missing the test fails with the install command,
//! it never skips.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test binary's shared moto server (see the module header for who may use it).
///
/// A static is never dropped, so the server is not killed by [`Drop`]: it runs under a small
/// shell that holds a pipe from this process and kills moto when the pipe closes, which the
/// kernel does when the test binary exits, however it exits.
pub fn shared() -> Shared {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    Shared(SHARED.get_or_init(|| Moto::start_until_exit(&[])))
}

/// The binary's shared server: used like a [`Moto`] (`moto.iam()`, `&moto` where a `&Moto` is
/// wanted), never stopped by a test.
#[derive(Clone, Copy)]
pub struct Shared(&'static Moto);

impl std::ops::Deref for Shared {
    type Target = Moto;

    fn deref(&self) -> &Moto {
        self.0
    }
}

/// A running moto server.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts `moto_server` on a free port and waits until it answers.
    pub fn start() -> Moto {
        Self::start_with_env(&[])
    }

    /// Starts moto with `TransactWriteItems` copying only the items a transaction names
    /// instead of whole tables (`benches/support/moto_transactions/sitecustomize.py`, same
    /// semantics): for the benches whose DynamoDB tables grow to thousands of items, where
    /// moto's copy would make every transaction cost time in proportion to the table.
    pub fn start_with_item_rollback() -> Moto {
        let patch = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/support/moto_transactions"
        );
        let path = match std::env::var("PYTHONPATH") {
            Ok(more) if !more.is_empty() => format!("{patch}:{more}"),
            _ => patch.to_string(),
        };
        Self::start_with_env(&[
            ("PYTHONPATH", path.as_str()),
            ("HANKO_MOTO_ITEM_ROLLBACK", "1"),
        ])
    }

    /// Starts moto with extra environment variables (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`).
    ///
    /// The port is picked free, then handed to moto: another server of the same test binary
    /// may take it in between (moto then exits, "address in use", while the other server
    /// answers the port). So moto is ready only once *moto* answers its own API
    /// (`/moto-api/data.json`), and a moto that exited is started again on another port.
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        Self::start_attempts(env, false)
    }

    /// Like [`Moto::start_with_env`], for a server that outlives every handle: it stops when
    /// this process exits (see [`shared`]).
    fn start_until_exit(env: &[(&str, &str)]) -> Moto {
        Self::start_attempts(env, true)
    }

    fn start_attempts(env: &[(&str, &str)], until_exit: bool) -> Moto {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let mut moto = Self::spawn(env, until_exit);
            if moto.wait_ready() {
                return moto;
            }
        }
        panic!("moto_server could not start on a free port in {ATTEMPTS} attempts");
    }

    fn spawn(env: &[(&str, &str)], until_exit: bool) -> Moto {
        let port = free_port();
        let bin = std::env::var("HANKO_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let mut cmd = if until_exit {
            // The shell waits for moto and exits with it (so a moto that lost its port is seen
            // as exited); a second job reads the pipe on fd 3 and kills moto at end of file.
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(
                    r#"exec 3<&0; "$0" "$@" </dev/null & m=$!; { read -r _ <&3; kill "$m"; } 2>/dev/null & wait "$m""#,
                )
                .arg(&bin)
                .stdin(Stdio::piped());
            cmd
        } else {
            Command::new(&bin)
        };
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "could not start `{bin}` ({e}). The AWS integration tests need moto: \
                 run `pip install 'moto[server]'` (or set HANKO_MOTO_SERVER to its path)"
            ),
        };
        Moto { child, port }
    }

    /// `true` once this moto answers its own API; `false` when it exited (its port was taken).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // 127: the shell of a shared server did not find moto_server.
                assert_ne!(
                    status.code(),
                    Some(127),
                    "moto_server was not found. The AWS integration tests need moto: run \
                     `pip install 'moto[server]'` (or set HANKO_MOTO_SERVER to its path)"
                );
                return false;
            }
            if self.answers_its_api() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "moto_server did not answer on 127.0.0.1:{} within 30 s; is `pip install 'moto[server]'` complete?",
            self.port
        );
    }

    /// Whether the server on our port is moto: its API answers 200 with a JSON object.
    fn answers_its_api(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        if conn
            .write_all(b"GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut raw = String::new();
        if conn.read_to_string(&mut raw).is_err() {
            return false;
        }
        raw.starts_with("HTTP/1.") && raw.contains(" 200 ") && raw.contains("\r\n\r\n{")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK config pointing every service at this moto server, with static test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_with_keys("testing", "testing").await
    }

    /// Like [`Moto::sdk_config`], with the given access key (moto can enforce IAM policies).
    pub async fn sdk_config_with_keys(&self, key: &str, secret: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_credential_types::Credentials::new(
                key,
                secret,
                None,
                None,
                "hanko-tests",
            ))
            .load()
            .await
    }

    /// An SDK config for a moto account of its own, with that account's name: its keys belong
    /// to an IAM user created in a fresh account (through moto's `x-moto-account-id` header),
    /// and moto acts in the account an access key belongs to, for every service. For tests on
    /// a [`shared`] server whose resources are listed region-wide (Security Hub findings).
    pub async fn sdk_config_in_own_account(&self) -> (aws_config::SdkConfig, String) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let account = format!(
            "{:012}",
            800_000_000_000 + NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let iam = self.iam().await;
        let in_account = |account: String| {
            move |req: &mut aws_smithy_runtime_api::http::Request| {
                req.headers_mut()
                    .insert("x-moto-account-id", account.clone());
            }
        };
        iam.create_user()
            .user_name("hanko-tests")
            .customize()
            .mutate_request(in_account(account.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create a user in moto account {account}: {e:?}"));
        let out = iam
            .create_access_key()
            .user_name("hanko-tests")
            .customize()
            .mutate_request(in_account(account.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create a key in moto account {account}: {e:?}"));
        let key = out.access_key().expect("moto answers with the key");
        let conf = self
            .sdk_config_with_keys(key.access_key_id(), key.secret_access_key())
            .await;
        (conf, account)
    }

    /// An S3 client with path-style addressing (moto needs it on 127.0.0.1).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A JSON document from moto's own API (e.g. `/moto-api/data.json`, every backend's state).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("moto on port {}: {e}", self.port));
        conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
        write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let mut raw = String::new();
        conn.read_to_string(&mut raw)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("GET {path}: no HTTP body in {raw:?}"));
        assert!(
            head.starts_with("HTTP/1.") && head.contains(" 200 "),
            "GET {path}: {head}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config().await)
    }

    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }

    /// Starts moto with IAM enforced after three unchecked setup requests, which create an
    /// `admin` user allowed everything and its access key: `(moto, (key id, secret))`. From
    /// then on the default "testing" keys are refused; the test fails if moto does not.
    pub async fn start_with_auth() -> (Moto, (String, String)) {
        let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
        let iam = moto.iam().await;
        iam.create_user().user_name("admin").send().await.unwrap();
        let allow_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        iam.put_user_policy()
            .user_name("admin")
            .policy_name("all")
            .policy_document(allow_all)
            .send()
            .await
            .unwrap();
        let out = iam
            .create_access_key()
            .user_name("admin")
            .send()
            .await
            .unwrap();
        let key = out.access_key().unwrap();
        let keys = (
            key.access_key_id().to_string(),
            key.secret_access_key().to_string(),
        );
        // From here on requests are checked: the old "testing" keys no longer work. (moto
        // answers with an EC2-shaped error body here, so the SDK sees the status but not the
        // code.)
        let err = iam.list_users().send().await.unwrap_err();
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(403),
            "moto does not enforce IAM after 3 requests: {err:?}"
        );
        (moto, keys)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates IAM user `user` with one access key, as a leaked-key finding names them; the key's id.
pub async fn user_with_key(iam: &aws_sdk_iam::Client, user: &str) -> String {
    iam.create_user().user_name(user).send().await.unwrap();
    iam.create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap()
        .access_key_id
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// The shipped least-privilege policy as moto 5.2 checks it: moto authorizes the S3
/// public-access-block and ownership-controls calls as `s3:ListBucket` (GET) and
/// `s3:CreateBucket`/`s3:DeleteBucket` (PUT/DELETE), and IAM user calls against resource `*`.
/// Everything else is left as shipped.
pub fn policy_for_moto(policy: &serde_json::Value) -> serde_json::Value {
    let mut p = policy.clone();
    for s in p["Statement"].as_array_mut().unwrap() {
        let moto_actions: Vec<String> = match &s["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .flat_map(|a| match a.as_str() {
            "s3:GetBucketPublicAccessBlock" | "s3:GetBucketOwnershipControls" => {
                vec!["s3:ListBucket".to_string()]
            }
            "s3:PutBucketPublicAccessBlock" | "s3:PutBucketOwnershipControls" => {
                vec!["s3:CreateBucket".to_string(), "s3:DeleteBucket".to_string()]
            }
            _ => vec![a],
        })
        .collect();
        let mut dedup = moto_actions.clone();
        dedup.sort();
        dedup.dedup();
        s["Action"] = serde_json::json!(dedup);
        if s["Resource"] == "arn:aws:iam::*:user/*" {
            s["Resource"] = serde_json::json!("*");
        }
    }
    p
}
