//! Two `hanko run` processes on one DynamoDB table (moto), with Discord's HTTP interactions
//! endpoint, as a team deploys them behind a load balancer: any replica answers any click.
//!
//! * Findings arrive by the GuardDuty poll (the stand-in; only the ingest leader polls) and
//!   by SQS (both replicas consume the queue), one of them by both paths: each gets exactly
//!   one card.
//! * The two approvals of an EC2 isolation arrive through different replicas, signed as
//!   Discord signs them.
//! * The replica that runs the plan freezes right after capturing the isolation (the
//!   `hang:after-capture:isolate_instance` failpoint) and is killed with SIGKILL; the other
//!   takes the lapsed execution lease over and finishes: every interface isolated, one
//!   snapshot per volume.
//! * The frozen replica also led ingest: the survivor takes the GuardDuty poll over and a
//!   finding reported after the kill gets its card.
//! * `hanko audit verify --config` passes on the table afterwards.

use crate::support::discord_fake::{DiscordFake, FakeMember, FakeMessage, MessageSource};
use crate::support::e2e_bot::{self, alice, bob, http_get, POLL, RESPONDER_ROLE, WAIT};
use crate::support::ec2_world::{World, QUARANTINE};
use crate::support::fixtures;
use crate::support::guardduty_standin::Standin;
use crate::support::hanko_process::{self, hanko_run, HankoProcess};
use crate::support::moto::{self, Moto};
use crate::support::sqs_events;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
/// moto's account, which hanko's credentials belong to.
const ACCOUNT: &str = "123456789012";
const DETECTOR: &str = "2ea1e5b0c3d4e5f60718293a4b5c6d7e";
const FREEZE: &str = "hang:after-capture:isolate_instance";
/// The execution lease lapses 30 s after the frozen replica's last renewal; the survivor's
/// sweep runs every 5 s. With moto's pace on a small machine, three minutes is plenty.
const TAKEOVER_WAIT: Duration = Duration::from_secs(180);

fn finding(fixture: &str, id: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut d: Value = serde_json::from_str(&fixtures::read(fixture)).unwrap();
    d["id"] = json!(id);
    d["arn"] = json!(format!(
        "arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/{DETECTOR}/finding/{id}"
    ));
    d["accountId"] = json!(ACCOUNT);
    d["region"] = json!(REGION);
    d["updatedAt"] = json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    d["service"]["additionalInfo"]["sample"] = json!(false);
    d["service"]["archived"] = json!(false);
    edit(&mut d);
    d
}

fn leaked_key(id: &str, user: &str, key: &str) -> Value {
    finding("api/UnauthorizedAccess_IAMUser_TorIPCaller.json", id, |d| {
        d["resource"]["accessKeyDetails"]["accessKeyId"] = json!(key);
        d["resource"]["accessKeyDetails"]["userName"] = json!(user);
    })
}

fn config_text(
    fake: &DiscordFake,
    dir: &Path,
    queue_url: &str,
    table: &str,
    key: &SigningKey,
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
interactions = "http"
public_key = "{public}"

[responders]
approver_roles = ["{RESPONDER_ROLE}"]

[policy]
approvals = {{ evidence = 1, contain = 2, disrupt = 2 }}

[aws]
regions = ["{REGION}"]

[ingest]
guardduty = true
poll_interval = "10s"
detector_ids = {{ "{REGION}" = "{DETECTOR}" }}
sqs_queue_url = "{queue_url}"
min_severity = 1.0

[store]
backend = "dynamodb"
table = "{table}"

[investigate]
enabled = false

[http]
listen = "127.0.0.1:0"
"#,
        token = token_file.display(),
        guild = fake.guild_id(),
        channel = fake.channel_id(),
        base = fake.base_url(),
        public = hex::encode(key.verifying_key().to_bytes()),
    )
}

/// The environment of every `hanko` of this test: moto for AWS, the stand-in for GuardDuty.
fn aws_env(cmd: &mut tokio::process::Command, moto: &Moto, guardduty: &Standin) {
    cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ENDPOINT_URL_GUARDDUTY", guardduty.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("HANKO_FAILPOINT");
}

/// `hanko ARGS… --config CONFIG`, as an operator's shell runs it: (success, stdout+stderr).
async fn hanko(args: &[&str], config: &Path, moto: &Moto, guardduty: &Standin) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hanko"));
    cmd.args(args).arg("--config").arg(config);
    aws_env(&mut cmd, moto, guardduty);
    hanko_process::finish(cmd).await
}

async fn start_replica(
    config: &Path,
    moto: &Moto,
    guardduty: &Standin,
    failpoint: Option<&str>,
) -> HankoProcess {
    let mut cmd = hanko_run(
        Path::new(env!("CARGO_BIN_EXE_hanko")),
        config,
        &moto.endpoint(),
    );
    aws_env(&mut cmd, moto, guardduty);
    cmd.env("HANKO_COMMANDS_DIR", e2e_bot::commands_dir());
    if let Some(point) = failpoint {
        cmd.env("HANKO_FAILPOINT", point);
    }
    HankoProcess::spawn(cmd).await
}

/// The cards posted to the channel for finding `id` (its footer names it).
fn cards_of(fake: &DiscordFake, id: &str) -> Vec<FakeMessage> {
    let footer = format!("finding {id} ·");
    fake.messages()
        .into_iter()
        .filter(|m| m.source == MessageSource::ChannelPost && m.embed_text().contains(&footer))
        .collect()
}

fn endpoint(replica: &HankoProcess) -> String {
    format!("http://{}/interactions", replica.http_addr)
}

/// `who` clicks Approve on `card`; Discord delivers the click to `replica`. The answer must be
/// in the response body, in time.
async fn approve_via(
    fake: &DiscordFake,
    key: &SigningKey,
    card: &FakeMessage,
    who: &FakeMember,
    replica: &HankoProcess,
) {
    let approve = card.custom_id_of("Approve").expect("an Approve button");
    let click = fake.http_button(&approve, card.id, who);
    let answer = fake.deliver(&endpoint(replica), key, &click).await;
    assert_eq!(
        answer.status,
        200,
        "{}; stderr:\n{}",
        answer.text,
        replica.stderr()
    );
    assert!(
        answer.elapsed < Duration::from_secs(3),
        "{:?}",
        answer.elapsed
    );
}

/// The events of `kind` for finding `id`, read from the table by `hanko audit query --config`
/// (the CLI reads the shared store while the replicas run).
async fn events(
    kind: &str,
    id: &str,
    config: &Path,
    moto: &Moto,
    guardduty: &Standin,
) -> Vec<Value> {
    let (ok, said) = hanko(
        &["audit", "query", "--kind", kind, "--finding", id, "--json"],
        config,
        moto,
        guardduty,
    )
    .await;
    assert!(ok, "{said}");
    let events: Value = serde_json::from_str(&said).unwrap_or_else(|e| panic!("{e}: {said}"));
    events.as_array().cloned().unwrap_or_default()
}

/// A counter's value in a Prometheus text exposition.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_http_post_each_card_once_and_one_finishes_the_isolation_the_other_died_in(
) {
    if !cfg!(feature = "failpoints") {
        panic!(
            "this test freezes a replica with a failpoint: cargo test --features failpoints \
             (scripts/test.sh enables it)"
        );
    }
    let moto = Moto::start();
    let conf = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let world = World::new(&moto).await;
    let target = world.launch(&[&[&world.app], &[&world.db]]).await;
    let volumes = world.volumes(&target.id).await;
    assert_eq!(volumes.len(), 2);
    let mut access_keys = Vec::new();
    for user in ["grace", "heidi"] {
        access_keys.push((user, moto::user_with_key(&iam, user).await));
    }
    let queue = sqs_events::queue(&sqs, "hanko-two-replicas", 30).await;
    let guardduty = Standin::start(DETECTOR, Vec::new()).await;

    let fake = DiscordFake::start().await;
    let key = SigningKey::from_bytes(&std::array::from_fn(|_| fastrand::u8(..)));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hanko.toml");
    let table = format!("hanko-two-replicas-{}", std::process::id());
    std::fs::write(
        &config,
        config_text(&fake, dir.path(), &queue, &table, &key),
    )
    .unwrap();
    let (ok, said) = hanko(&["store", "init"], &config, &moto, &guardduty).await;
    assert!(ok, "{said}");

    // Replica b, which freezes in the isolation it will run, starts first and leads ingest;
    // then replica a, on standby.
    let b = start_replica(&config, &moto, &guardduty, Some(FREEZE)).await;
    let deadline = Instant::now() + WAIT;
    while !http_get(b.http_addr, "/healthz")
        .await
        .1
        .contains("roles: ingest leader")
    {
        assert!(
            Instant::now() < deadline,
            "b never led ingest: {}",
            b.stderr()
        );
        tokio::time::sleep(POLL).await;
    }
    let a = start_replica(&config, &moto, &guardduty, None).await;
    for (replica, role) in [(&a, "ingest standby"), (&b, "ingest leader")] {
        let (status, health) = http_get(replica.http_addr, "/healthz").await;
        assert!(
            status == 200
                && health.contains("backend: dynamodb")
                && health.contains(role)
                && !health.contains("gateway"),
            "{health}"
        );
    }
    assert_eq!(fake.gateway_connections(), 0, "no gateway in http mode");

    // Three findings: the instance's by both paths, a leaked key polled, another queued.
    let instance = finding(
        "api/Backdoor_EC2_C_CActivity.B.json",
        "e2e2a0000000000000000000000000c1",
        |d| d["resource"]["instanceDetails"]["instanceId"] = json!(target.id),
    );
    let polled = leaked_key(
        "e2e2a0000000000000000000000000c2",
        access_keys[0].0,
        &access_keys[0].1,
    );
    let queued = leaked_key(
        "e2e2a0000000000000000000000000c3",
        access_keys[1].0,
        &access_keys[1].1,
    );
    guardduty.add(instance.clone());
    guardduty.add(polled.clone());
    for doc in [&instance, &queued] {
        sqs_events::send(&sqs, &queue, &sqs_events::guardduty_event(doc)).await;
    }
    let ids: Vec<String> = [&instance, &polled, &queued]
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let logs = || format!("replica a:\n{}\n\nreplica b:\n{}", a.stderr(), b.stderr());
    let deadline = Instant::now() + Duration::from_secs(90);
    while ids.iter().any(|id| cards_of(&fake, id).is_empty()) {
        assert!(
            Instant::now() < deadline,
            "not every finding got a card; {}",
            logs()
        );
        tokio::time::sleep(POLL).await;
    }

    // Two approvals, through different replicas: b's meets the quorum and runs the plan.
    let card = cards_of(&fake, &ids[0]).remove(0);
    approve_via(&fake, &key, &card, &alice(), &a).await;
    approve_via(&fake, &key, &card, &bob(), &b).await;
    let frozen = format!("failpoint {FREEZE} reached");
    let deadline = Instant::now() + WAIT * 2;
    while !b.stderr().contains(&frozen) {
        assert!(
            Instant::now() < deadline,
            "replica b did not reach the isolation; {}",
            logs()
        );
        tokio::time::sleep(POLL).await;
    }
    // It snapshotted, captured the isolation, and dies before it changes anything more.
    assert_eq!(world.snapshots(&target.id).await.len(), volumes.len());
    let a_log_before = a.stderr();
    let b_log = b.kill().await;
    let killed = Instant::now();
    assert!(!a_log_before.contains(&frozen), "a never froze");
    // A finding GuardDuty reports after b died: only a poll by a, once it took the ingest
    // lease over, can bring it.
    let late = leaked_key(
        "e2e2a0000000000000000000000000c4",
        access_keys[0].0,
        &access_keys[0].1,
    );
    guardduty.add(late.clone());

    // a's sweep takes the lapsed lease over and finishes the plan.
    let deadline = Instant::now() + TAKEOVER_WAIT;
    let finished = loop {
        let finished = events("ExecutionFinished", &ids[0], &config, &moto, &guardduty).await;
        if !finished.is_empty() {
            break finished;
        }
        assert!(
            Instant::now() < deadline,
            "the isolation was not finished by replica a within {TAKEOVER_WAIT:?}; replica a:\n{}\n\nreplica b (killed):\n{b_log}",
            a.stderr()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0]["detail"]["state"], "Succeeded", "{finished:?}");
    assert!(a.stderr().contains("took over a run"), "{}", a.stderr());
    let quarantine = world
        .group_by_name(QUARANTINE)
        .await
        .expect("the quarantine group")
        .group_id()
        .unwrap()
        .to_string();
    for eni in &target.enis {
        assert_eq!(
            world.eni_groups(eni).await,
            vec![quarantine.clone()],
            "{eni}"
        );
    }
    assert_eq!(
        world.snapshots(&target.id).await.len(),
        volumes.len(),
        "exactly one snapshot per volume"
    );
    // Ingest: a leads now, and the late finding has its card, within about a minute.
    let late_id = late["id"].as_str().unwrap().to_string();
    while cards_of(&fake, &late_id).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "a did not take GuardDuty polling over; replica a:\n{}",
            a.stderr()
        );
        tokio::time::sleep(POLL).await;
    }
    let took = killed.elapsed();
    let (_, health) = http_get(a.http_addr, "/healthz").await;
    assert!(health.contains("roles: ingest leader"), "{health}");
    eprintln!("the late finding's card came {took:?} after b was killed");
    let (_, metrics) = http_get(a.http_addr, "/metrics").await;
    assert!(
        counter(&metrics, "hanko_lease_takeovers_total") >= 1.0,
        "{metrics}"
    );

    // alice's vote through a, then bob's through b, which granted the approval: once.
    let votes = events("VoteRecorded", &ids[0], &config, &moto, &guardduty).await;
    assert_eq!(votes.len(), 1, "{votes:?}");
    assert_eq!(votes[0]["actor"]["name"], "alice", "{votes:?}");
    let granted = events("ApprovalGranted", &ids[0], &config, &moto, &guardduty).await;
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["actor"]["name"], "bob", "{granted:?}");

    // Still one card per finding after the takeover's half minute, long enough for a message
    // b received and never deleted to come back to a.
    for id in ids.iter().chain([&late_id]) {
        assert_eq!(cards_of(&fake, id).len(), 1, "finding {id}: {}", a.stderr());
    }

    a.stop().await;
    let (ok, said) = hanko(&["audit", "verify"], &config, &moto, &guardduty).await;
    assert!(ok && said.contains("hash chain intact"), "{said}");
    fake.shutdown().await;
}
