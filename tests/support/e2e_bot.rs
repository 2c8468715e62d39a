//! The end-to-end harness: hanko's real bot (serenity, the outbox, the engine, `/healthz`)
//! started in-process against the Discord fake, and the waits the e2e tests share. Every wait
//! is on an effect with a deadline; nothing sleeps to synchronise.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use hanko::app::App;
use hanko::aws::ClientFactory;
use hanko::finding::Finding;
use hanko::playbooks::Playbooks;
use hanko::run::{self, Running};
use hanko::store::Store;
use serde_json::{json, Value};
use uuid::Uuid;

use super::discord_fake::{
    DiscordFake, FakeMember, FakeMessage, InjectedInteraction, MessageSource, RecordedRequest,
    CALLBACK_MESSAGE, EPHEMERAL,
};

pub const WAIT: Duration = Duration::from_secs(15);
/// The re-check interval of waits on state without a change feed (`/healthz`, the store).
pub const POLL: Duration = Duration::from_millis(20);
pub const RESPONDER_ROLE: &str = "1180000000000000500";
pub const ADMIN_ROLE: &str = "1180000000000000600";
pub const OTHER_ROLE: &str = "1180000000000000700";

pub fn alice() -> FakeMember {
    FakeMember::new(1_180_000_000_000_001_001, "alice", &[RESPONDER_ROLE])
}
pub fn bob() -> FakeMember {
    FakeMember::new(1_180_000_000_000_001_002, "bob", &[RESPONDER_ROLE])
}
pub fn mallory() -> FakeMember {
    FakeMember::new(1_180_000_000_000_001_666, "mallory", &[OTHER_ROLE])
}

/// The config of a test bot talking to `fake`.
pub fn config_text(
    fake: &DiscordFake,
    dir: &Path,
    contain_approvals: u32,
    http_port: u16,
) -> String {
    let token_file = dir.join("token");
    std::fs::write(&token_file, fake.token()).unwrap();
    format!(
        r#"
[discord]
token_file = "{token}"
guild_id = "{guild}"
channel_id = "{channel}"
api_base = "{base}"

[responders]
approver_roles = ["{RESPONDER_ROLE}"]
admin_roles = ["{ADMIN_ROLE}"]

[policy]
approvals = {{ evidence = 1, contain = {contain_approvals}, disrupt = 2 }}

[aws]
regions = ["us-east-1", "us-east-2"]

[ingest]
# Findings are fed with ingest::accept_finding; the poll is as rare as the config allows.
guardduty = true
poll_interval = "24h"
min_severity = 4.0

[store]
path = "{store}"

[http]
listen = "127.0.0.1:{http_port}"
"#,
        token = token_file.display(),
        guild = fake.guild_id(),
        channel = fake.channel_id(),
        base = fake.base_url(),
        store = dir.join("store").display(),
    )
}

pub fn commands_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("commands")
}

/// AWS clients that reach nothing (tests without moto never call AWS).
pub fn unreachable_aws() -> ClientFactory {
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "e2e"),
            ),
        )
        .build();
    // Nothing answers STS here: the account of these credentials is given, as moto's default
    // account (the account of the test findings), so plans for it keep their steps.
    ClientFactory::from_sdk_config(conf, None).with_proven_own_account(OWN_ACCOUNT)
}

/// The account of hanko's own credentials in the tests: moto's default account
/// (`sts:GetCallerIdentity` answers it), and the one [`unreachable_aws`] is proved to be in.
pub const OWN_ACCOUNT: &str = "123456789012";

/// The scope of the test bot's config (`aws.regions` us-east-1 and us-east-2), with hanko's
/// own account proved to be [`OWN_ACCOUNT`]: for findings fed to a store before hanko starts.
pub fn own_account_scope() -> hanko::planner::Scope {
    use hanko::planner::{Limits, OwnAccount, Reach, Scope};
    Scope {
        limits: Limits {
            regions: Some(vec!["us-east-1".into(), "us-east-2".into()]),
            accounts: None,
        },
        reach: Reach {
            own_account: OwnAccount::Proven(OWN_ACCOUNT.into()),
            role_template: false,
        },
    }
}

pub struct Bot {
    pub fake: DiscordFake,
    pub running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl Bot {
    pub async fn start(contain_approvals: u32, clients: ClientFactory) -> Bot {
        Bot::start_prepared(contain_approvals, clients, |_| {}).await
    }

    /// [`Bot::start`], with `prepare` run on the store before hanko starts (state a previous
    /// run left behind).
    pub async fn start_prepared(
        contain_approvals: u32,
        clients: ClientFactory,
        prepare: impl FnOnce(&Store),
    ) -> Bot {
        Bot::start_full(contain_approvals, clients, prepare, |text| text, |_| {}).await
    }

    /// [`Bot::start_prepared`], with `configure` changing the start-up options last (e.g. a
    /// faster expiry sweep).
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub async fn start_with(
        contain_approvals: u32,
        clients: ClientFactory,
        prepare: impl FnOnce(&Store),
        configure: impl FnOnce(&mut run::Options),
    ) -> Bot {
        Bot::start_full(contain_approvals, clients, prepare, |text| text, configure).await
    }

    /// [`Bot::start_prepared`], with the config text of [`config_text`] edited by `edit`.
    #[allow(dead_code)]
    pub async fn start_configured(
        contain_approvals: u32,
        clients: ClientFactory,
        prepare: impl FnOnce(&Store),
        edit: impl FnOnce(String) -> String,
    ) -> Bot {
        Bot::start_full(contain_approvals, clients, prepare, edit, |_| {}).await
    }

    /// [`Bot::start`] with the config text changed by `edit` first (an allow-list, say).
    #[allow(dead_code)]
    pub async fn start_with_config(
        contain_approvals: u32,
        clients: ClientFactory,
        edit: impl FnOnce(String) -> String,
    ) -> Bot {
        Bot::start_full(contain_approvals, clients, |_| {}, edit, |_| {}).await
    }

    /// The one start-up of the test bot: `edit` changes the config text of [`config_text`],
    /// `prepare` runs on the store before hanko starts (state a previous run left behind), and
    /// `configure` changes the start-up options last.
    pub async fn start_full(
        contain_approvals: u32,
        clients: ClientFactory,
        prepare: impl FnOnce(&Store),
        edit: impl FnOnce(String) -> String,
        configure: impl FnOnce(&mut run::Options),
    ) -> Bot {
        let fake = DiscordFake::start().await;
        Bot::start_full_on(fake, contain_approvals, clients, prepare, edit, configure).await
    }

    /// [`Bot::start_full`] against `fake` (one started with options of its own).
    pub async fn start_full_on(
        fake: DiscordFake,
        contain_approvals: u32,
        clients: ClientFactory,
        prepare: impl FnOnce(&Store),
        edit: impl FnOnce(String) -> String,
        configure: impl FnOnce(&mut run::Options),
    ) -> Bot {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hanko.toml");
        let text = edit(config_text(&fake, dir.path(), contain_approvals, 0));
        let settings = hanko::config::parse(&text, &config).unwrap();
        let token = settings.discord.token_source.read().unwrap();
        let store = Store::open(&settings.store.path).unwrap();
        prepare(&store);
        let app = App::new(settings, Playbooks::defaults(), store, clients);
        let mut options = run::Options::new(commands_dir());
        options.shutdown_grace = Duration::from_secs(10);
        // The tests feed findings through the pipeline themselves.
        options.ingest = false;
        configure(&mut options);
        let over_http = app.settings.discord.interactions.is_http();
        let running = run::start(app, &token, options).await.unwrap();
        // Over HTTP interactions there is no gateway session to wait for.
        if !over_http {
            fake.wait_for_ready(WAIT).await.unwrap();
        }
        let bot = Bot {
            fake,
            running: Some(running),
            _dir: dir,
        };
        bot.wait_healthy().await;
        bot
    }

    pub fn app(&self) -> &App {
        &self.running.as_ref().unwrap().app
    }

    pub async fn wait_healthy(&self) {
        let addr = self.running.as_ref().unwrap().http_addr;
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = http_get(addr, "/healthz").await;
            if status == 200 {
                assert!(body.starts_with("ok\n"), "{body}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/healthz still {status} {body:?} after {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Feeds a finding as an ingest loop would (through the ingest sources' own entry point,
    /// which also counts it for `/metrics`); returns its request id.
    pub fn accept(&self, finding: &Finding) -> Option<Uuid> {
        let app = self.app();
        hanko::ingest::accept_finding(app, finding, Utc::now())
            .unwrap()
            .proposed
    }

    pub async fn stop(mut self) {
        let running = self.running.take().unwrap();
        tokio::time::timeout(WAIT, running.shutdown())
            .await
            .expect("shutdown within the bound")
            .expect("clean shutdown");
        self.fake.shutdown().await;
    }
}

/// A GET on the bot's HTTP port: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The card posted for `request`.
pub async fn wait_for_card(fake: &DiscordFake, request: Uuid) -> FakeMessage {
    let needle = request.simple().to_string();
    fake.wait_for_message(
        |m| m.source == MessageSource::ChannelPost && m.embed_text().contains(&needle),
        WAIT,
    )
    .await
    .unwrap()
}

/// The ephemeral followup of an interaction.
pub async fn wait_for_followup(fake: &DiscordFake, click: &InjectedInteraction) -> FakeMessage {
    fake.wait_for_message(
        |m| {
            m.source
                == (MessageSource::Followup {
                    interaction_id: click.id,
                })
        },
        WAIT,
    )
    .await
    .unwrap()
}

/// The first ephemeral answer (callback type 4) of an interaction.
pub async fn wait_for_ephemeral_answer(fake: &DiscordFake, click: &InjectedInteraction) -> String {
    let callback = fake.wait_for_callback(click, WAIT).await.unwrap();
    assert_eq!(callback.status, 204, "{:?}", callback.response);
    assert_eq!(callback.body_at("/type"), Some(&json!(CALLBACK_MESSAGE)));
    assert_eq!(
        callback
            .body_at("/data/flags")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            & EPHEMERAL,
        EPHEMERAL,
        "answer is ephemeral"
    );
    callback
        .body_at("/data/content")
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

pub fn is_original_edit(r: &RecordedRequest, click: &InjectedInteraction) -> bool {
    r.method == "PATCH" && click.is_webhook_call(r) && r.api_path().ends_with("/messages/@original")
}

/// The n-th edit of the clicked card through the interaction (its body's embed text).
pub async fn wait_for_original_edit(
    fake: &DiscordFake,
    click: &InjectedInteraction,
) -> RecordedRequest {
    fake.wait_for_request(|r| is_original_edit(r, click), WAIT)
        .await
        .unwrap()
}

pub fn embed_text_of(body: &Value) -> String {
    let mut out = Vec::new();
    for embed in body["embeds"].as_array().into_iter().flatten() {
        for p in ["/title", "/description", "/footer/text"] {
            if let Some(s) = embed.pointer(p).and_then(Value::as_str) {
                out.push(s.to_string());
            }
        }
        for f in embed["fields"].as_array().into_iter().flatten() {
            out.push(format!(
                "{}: {}",
                f["name"].as_str().unwrap_or(""),
                f["value"].as_str().unwrap_or("")
            ));
        }
    }
    out.join("\n")
}

/// Waits until `check` holds (a store state, which has no change feed), re-checking every
/// [`POLL`] until [`WAIT`] has passed: a wait for an effect with a deadline.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The text of a slash command's answer, however the bot sent it: a direct answer (callback
/// type 4), or a deferral (type 5) followed by an edit of the original or a followup.
pub async fn command_answer(fake: &DiscordFake, cmd: &InjectedInteraction) -> String {
    let callback = fake.wait_for_callback(cmd, WAIT).await.unwrap();
    assert!(
        callback.received_at.duration_since(cmd.injected_at) < Duration::from_secs(3),
        "answered within Discord's 3 s"
    );
    if callback.body_at("/type") == Some(&json!(CALLBACK_MESSAGE)) {
        return callback
            .body_at("/data/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
    }
    let later = fake
        .wait_for_request(
            |r| cmd.is_webhook_call(r) && (r.method == "PATCH" || r.method == "POST"),
            WAIT,
        )
        .await
        .unwrap();
    later
        .body_at("/content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
