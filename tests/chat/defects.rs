//! Issue 11, item 6 (smaller defects found in review) and the refusals of 4(c) that were not
//! audited, each pinned by a test against the real parts: moto through the real aws-sdk
//! clients, the real `hanko` binary, serenity's real HTTP client, and the real bot against the
//! Discord fake.

use crate::support::e2e_bot;
use crate::support::fixtures;
use crate::support::ingest_app;
use crate::support::moto;
use crate::support::sqs_events;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_iam::types::StatusType;
use hanko::approval::{Request, RequestKind, RequestState};
use hanko::audit::{Actor, AuditQuery, EventKind};
use hanko::ingest::sqs::SqsIngest;
use hanko::plan::{Action, RiskClass, Target};
use hanko::store::{Store, MAX_QUARANTINED_BYTES, QUARANTINE_TRUNCATION_MARKER};
use serde_json::{json, Value};

use e2e_bot::*;
use moto::Moto;
use sqs_events::{guardduty_event, queue, send};

const ACCOUNT: &str = "123456789012";

fn kinds(store: &Store, kind: EventKind) -> Vec<hanko::audit::AuditEvent> {
    store
        .query_audit(&AuditQuery {
            kind: Some(kind),
            ..AuditQuery::default()
        })
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Routing change
// ---------------------------------------------------------------------------------------------

#[test]
fn account_block_public_access_disabled_plans_the_account_level_s3control_step() {
    let text = fixtures::read("api/Policy_S3_AccountBlockPublicAccessDisabled.json");
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["service"]["archived"] = false.into();
    let findings = hanko::finding::parse_document(&doc.to_string()).unwrap();
    let f = &findings[0];
    let plan = hanko::plan::plan(f, &hanko::playbooks::Playbooks::defaults());
    assert_eq!(plan.steps.len(), 1, "{plan:#?}");
    let step = &plan.steps[0];
    assert_eq!(step.action, Action::BlockAccountPublicAccess);
    assert_eq!(step.action.service(), "s3control");
    assert_eq!(step.risk, RiskClass::Contain);
    assert_eq!(
        step.target,
        Target::Account {
            account_id: f.account_id.clone()
        }
    );
    // The very step posture remediation of S3.1 runs.
    assert_eq!(
        step,
        &hanko::plan::block_account_public_access_step(&f.account_id)
    );
    assert!(
        !plan.notes.iter().any(|n| n.starts_with("notify only")),
        "{:?}",
        plan.notes
    );
}

// ---------------------------------------------------------------------------------------------
// Ingest: finding ids, the quarantine, metrics and status
// ---------------------------------------------------------------------------------------------

fn leaked_key_detail(id: &str) -> Value {
    let mut v: Value = serde_json::from_str(&fixtures::read(
        "api/UnauthorizedAccess_IAMUser_TorIPCaller.json",
    ))
    .unwrap();
    v["id"] = id.into();
    v["accountId"] = ACCOUNT.into();
    v["service"]["archived"] = false.into();
    v
}

/// Polls until `want` messages were handled, or fails after 30 s.
async fn drain(ingest: &SqsIngest, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut handled = 0;
    while handled < want {
        assert!(
            Instant::now() < deadline,
            "only {handled} of {want} handled"
        );
        handled += ingest.poll_once().await.unwrap().handled.len();
    }
}

#[tokio::test]
async fn bad_finding_ids_are_quarantined_with_the_reason_and_ingest_counts_what_it_stores() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = queue(&sqs, "hanko-ids", 30).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let app = ingest_app::app(ingest_app::settings(""), store.clone(), conf.clone());
    let ingest = SqsIngest::new(app.clone(), aws_sdk_sqs::Client::new(&conf), url.clone())
        .with_wait_seconds(1);

    let good = "0123456789abcdef0123456789abcdef";
    let forged = "abc\nERROR forged log line";
    let upper = "ABCDEF0123456789";
    let long = "a".repeat(65);
    for id in [good, forged, upper, long.as_str()] {
        send(&sqs, &url, &guardduty_event(&leaked_key_detail(id))).await;
    }
    drain(&ingest, 4).await;

    assert!(store.get_finding(good).unwrap().is_some());
    for bad in [forged, upper, long.as_str()] {
        assert!(store.get_finding(bad).unwrap().is_none(), "{bad:?} stored");
    }
    let q = store.quarantined(10).unwrap();
    assert_eq!(q.len(), 3, "{q:#?}");
    for entry in &q {
        assert!(
            entry
                .error
                .contains("is not a GuardDuty finding id (1 to 64 lowercase hexadecimal digits)"),
            "{}",
            entry.error
        );
    }
    assert_eq!(kinds(&store, EventKind::FindingRejected).len(), 3);
    // Counted by ingest (no outbox runs here): the one finding stored.
    let metrics = app.metrics.render(None);
    assert!(
        metrics.contains("\nhanko_findings_ingested_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn asff_ids_must_be_printable_and_at_most_512_characters() {
    let f = |id: &str, product: &str| {
        let mut f = hanko::finding::parse_document(
            &json!({
                "SchemaVersion": "2018-10-08",
                "Id": id,
                "ProductArn": product,
                "GeneratorId": "g",
                "AwsAccountId": ACCOUNT,
                "Types": ["Software and Configuration Checks"],
                "CreatedAt": "2024-01-01T00:00:00Z",
                "UpdatedAt": "2024-01-01T00:00:00Z",
                "Severity": {"Label": "HIGH"},
                "Title": "t",
                "Description": "d",
                "Region": "us-east-1",
                "Resources": [{"Type": "Other", "Id": "r"}]
            })
            .to_string(),
        )
        .unwrap();
        f.remove(0)
    };
    let other = "arn:aws:securityhub:us-east-1::product/aws/inspector";
    let gd = "arn:aws:securityhub:us-east-1::product/aws/guardduty";
    let gd_arn =
        |id: &str| format!("arn:aws:guardduty:us-east-1:{ACCOUNT}:detector/d0/finding/{id}");
    let ok = [
        f("inspector-finding/1 ü", other),
        f(&"x".repeat(512), other),
        f(&gd_arn("0a1b"), gd),
    ];
    for finding in &ok {
        assert_eq!(
            hanko::finding::check_finding_id(finding),
            Ok(()),
            "{}",
            finding.id
        );
    }
    let bad = [
        f("two\nlines", other),
        f(&"x".repeat(513), other),
        f("tab\there", other),
        f(&gd_arn("NOT-HEX"), gd),
    ];
    for finding in &bad {
        let e = hanko::finding::check_finding_id(finding).unwrap_err();
        assert_eq!(e.path(), Some("$.Id"), "{e}");
    }
}

#[tokio::test]
async fn the_quarantine_keeps_quarantine_max_documents_and_cuts_each_at_64_kib() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = queue(&sqs, "hanko-quarantine", 30).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let settings = ingest_app::settings("quarantine_max = 2");
    assert_eq!(settings.ingest.quarantine_max, 2);
    let app = ingest_app::app(settings, store.clone(), conf.clone());
    let ingest =
        SqsIngest::new(app, aws_sdk_sqs::Client::new(&conf), url.clone()).with_wait_seconds(1);

    // One at a time, so the quarantine order is known.
    let big = format!("{{not json {}", "y".repeat(100 * 1024));
    for body in ["{not json 1", "{not json 2", big.as_str()] {
        send(&sqs, &url, body).await;
        drain(&ingest, 1).await;
    }
    let q = store.quarantined(10).unwrap();
    assert_eq!(q.len(), 2, "{q:#?}");
    // Newest first: the big one, then the second; the first was dropped.
    assert_eq!((q[0].id, q[1].id), (3, 2));
    assert_eq!(q[1].raw, "{not json 2");
    assert!(
        q[0].raw.len() <= MAX_QUARANTINED_BYTES,
        "{}",
        q[0].raw.len()
    );
    assert!(q[0].raw.ends_with(QUARANTINE_TRUNCATION_MARKER));
    assert!(q[0].raw.starts_with("{not json yyy"));
    assert_eq!(q[0].truncated_from_bytes, Some(big.len() as u64));
    assert_eq!(q[1].truncated_from_bytes, None);

    let dropped = kinds(&store, EventKind::QuarantineEntryDropped);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].detail["quarantine_id"], 1);
    assert_eq!(dropped[0].detail["source"], "sqs");
    let rejected = kinds(&store, EventKind::FindingRejected);
    assert_eq!(rejected.len(), 3);
    assert_eq!(rejected[0].detail["truncated"], true);
    assert_eq!(rejected[0].detail["bytes"], big.len());
    assert!(store.verify_audit().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_failures_count_in_metrics_and_status_shows_only_those_since_the_last_success() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // The queue does not exist yet: every poll fails until it is created.
    let url = format!("{}/{ACCOUNT}/hanko-late", moto.endpoint());
    let app = ingest_app::app(
        ingest_app::settings(&format!("sqs_queue_url = \"{url}\"")),
        store.clone(),
        conf.clone(),
    );
    let source = hanko::ingest::Source::Sqs(
        SqsIngest::new(app.clone(), aws_sdk_sqs::Client::new(&conf), url).with_wait_seconds(1),
    );
    let health = hanko::ingest::Health::new(store.clone(), hanko::ingest::SQS_SOURCE)
        .with_metrics(app.metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let lp = tokio::spawn(hanko::ingest::run_loop(
        source,
        health,
        Duration::from_secs(1),
        stop_rx,
    ));
    let status = || {
        hanko::store::SourceStatus::read(&store, hanko::ingest::SQS_SOURCE, chrono::Utc::now())
            .unwrap()
    };
    eventually("a failed poll", || status().errors_since_ok >= 1).await;
    let metrics = app.metrics.render(None);
    assert!(
        !metrics.contains("hanko_ingest_errors_total{source=\"sqs\"} 0\n"),
        "{metrics}"
    );
    let failed = status().errors;
    assert!(failed >= 1);
    // What a responder reads in /status is what the loop wrote (the reader and the writer once
    // drifted apart): the sqs line counts failures and has no success yet.
    let line = status_line(&app, "sqs").await;
    assert!(
        line.contains("no successful poll yet") && line.contains("failure(s)"),
        "{line}"
    );

    queue(&sqs, "hanko-late", 30).await;
    eventually("a successful poll", || status().last_ok.is_some()).await;
    let after = status();
    assert_eq!(after.errors_since_ok, 0, "{after:?}");
    assert!(
        after.errors >= failed,
        "the lifetime count is kept: {after:?}"
    );
    // /status: no failure since the success.
    let line = status_line(&app, "sqs").await;
    assert!(
        line.starts_with("✅") && line.contains("last success") && !line.contains("failure"),
        "{line}"
    );
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(30), lp)
        .await
        .unwrap()
        .unwrap();
}

/// The line of `/status` about `source`, as a responder sees it.
async fn status_line(app: &hanko::app::App, source: &str) -> String {
    use hanko::discord::commands::{dispatch, Invocation, Invoker, Reply};
    let inv = Invocation {
        name: "status".into(),
        options: Default::default(),
        invoker: Invoker {
            actor: Actor::Discord {
                id: "1001".into(),
                name: "alice".into(),
            },
            roles: vec!["323456789012345678".into()],
        },
        focused: None,
    };
    let Reply::Message { content, .. } = dispatch(app, &inv).await else {
        panic!("/status answered with choices");
    };
    let needle = format!("`{source}`");
    content
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no line for {source} in /status:\n{content}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Tokens in logs
// ---------------------------------------------------------------------------------------------

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_serenity_error_naming_an_interaction_token_is_logged_redacted() {
    use serenity::all::{CreateInteractionResponse, InteractionId};
    // serenity's real client, through its proxy setting, to a closed loopback port: reqwest's
    // error names the callback URL, token included.
    let port = moto::free_port();
    let http = serenity::http::HttpBuilder::new("Bot dGVzdA.fake.token")
        .proxy(format!("http://127.0.0.1:{port}"))
        .ratelimiter_disabled(true)
        .build();
    let token = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2Vu";
    let err = http
        .create_interaction_response(
            InteractionId::new(1234),
            token,
            &CreateInteractionResponse::Acknowledge,
            vec![],
        )
        .await
        .unwrap_err();
    // Unredacted, the chain holds the token (so this test can fail).
    let mut raw = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        raw.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(raw.contains(token), "{raw}");

    let redacted = hanko::discord::redact::chain(&err);
    assert!(!redacted.contains(token), "{redacted}");
    assert!(
        redacted.contains("/interactions/1234/[redacted]/callback"),
        "{redacted}"
    );

    // And what the bot logs for it.
    let buf = Captured::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let bot_error = hanko::discord::bot::BotError::from(err);
    let error_id = tracing::subscriber::with_default(subscriber, || {
        hanko::discord::bot::log_error(&bot_error, "answering an interaction failed")
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains(&error_id), "{log}");
    assert!(log.contains("[redacted]"), "{log}");
    assert!(!log.contains(token), "{log}");
}

// ---------------------------------------------------------------------------------------------
// The binary: revert steps, the CLI
// ---------------------------------------------------------------------------------------------

struct Hanko<'a> {
    moto: &'a Moto,
    db: PathBuf,
}

impl Hanko<'_> {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hanko"));
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("USER", "drill-runner")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("HANKO_FAILPOINT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn db(&self) -> &str {
        self.db.to_str().unwrap()
    }
}

fn reports(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout: {} stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array().expect("an array of reports").clone()
}

async fn key_status(iam: &aws_sdk_iam::Client, user: &str, key: &str) -> StatusType {
    let out = iam.list_access_keys().user_name(user).send().await.unwrap();
    out.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .and_then(|k| k.status().cloned())
        .unwrap()
}

/// A leaked-key finding for `user`'s new key, written for the CLI; returns (file, key id).
async fn leaked_key_file(iam: &aws_sdk_iam::Client, dir: &Path, user: &str) -> (PathBuf, String) {
    iam.create_user().user_name(user).send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .access_key()
        .unwrap()
        .access_key_id()
        .to_string();
    let mut v = leaked_key_detail("0123456789abcdef");
    v["region"] = "us-east-1".into();
    let ak = &mut v["resource"]["accessKeyDetails"];
    ak["userType"] = "IAMUser".into();
    ak["accessKeyId"] = key.clone().into();
    ak["userName"] = user.into();
    let path = dir.join(format!("finding-{user}.json"));
    std::fs::write(&path, v.to_string()).unwrap();
    (path, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_resumed_after_its_call_records_restored_not_drifted() {
    if !cfg!(feature = "failpoints") {
        panic!(
            "this crash test needs the failpoints feature: cargo test --features failpoints \
             (scripts/test.sh enables it)"
        );
    }
    let moto = moto::shared();
    let iam = moto.iam().await;
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko {
        moto: &moto,
        db: dir.path().join("db"),
    };
    let (file, key) = leaked_key_file(&iam, dir.path(), "cora").await;
    let out = hanko.run(
        &[
            "drill",
            file.to_str().unwrap(),
            "--db",
            hanko.db(),
            "--approve-as",
            "ops",
            "--json",
        ],
        &[],
    );
    let drilled = reports(&out);
    assert_eq!(drilled[0]["state"], "Succeeded", "{drilled:#?}");
    assert_eq!(key_status(&iam, "cora", &key).await, StatusType::Inactive);
    let contained = drilled[0]["request_id"].as_str().unwrap().to_string();

    // The revert re-activates the key, then the process dies before recording it.
    let out = hanko.run(
        &[
            "revert",
            &contained,
            "--db",
            hanko.db(),
            "--approve-as",
            "second",
            "--json",
        ],
        &[("HANKO_FAILPOINT", "revert-after-call:deactivate_access_key")],
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "the failpoint aborts the revert"
    );
    assert_eq!(key_status(&iam, "cora", &key).await, StatusType::Active);
    {
        // The step's record was persisted before the call, with its audit event.
        let store = Store::open(&hanko.db).unwrap();
        let revert = store
            .requests_in_states(&[RequestState::Executing])
            .unwrap()
            .into_iter()
            .find(|r| matches!(r.kind, RequestKind::Revert { .. }))
            .expect("the revert left Executing");
        let records = store.step_records(revert.id).unwrap();
        let key_step = records
            .iter()
            .find(|r| r.action == Action::DeactivateAccessKey)
            .expect("a record of the key step");
        assert_eq!(key_step.phase, hanko::execution::StepPhase::Captured);
        let captured = store
            .query_audit(&AuditQuery {
                request_id: Some(revert.id),
                kind: Some(EventKind::StepCaptured),
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(
            captured
                .iter()
                .any(|e| e.detail["action"] == "deactivate_access_key"),
            "{captured:#?}"
        );
    }

    // Resumed: the key is already Active as captured, so the step is Restored, not Drifted.
    let out = hanko.run(&["resume", "--db", hanko.db(), "--json"], &[]);
    let resumed = reports(&out);
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert_eq!(resumed[0]["state"], "Succeeded", "{resumed:#?}");
    let step = resumed[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "deactivate_access_key")
        .unwrap()
        .clone();
    assert_eq!(step["outcome"], "applied", "{step:#}");
    assert_ne!(step["error_code"], "Drifted", "{step:#}");
    assert_eq!(key_status(&iam, "cora", &key).await, StatusType::Active);
    assert_eq!(
        hanko
            .run(&["audit", "verify", "--db", hanko.db()], &[])
            .status
            .code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_repeated_approvers_and_a_second_revert_and_audits_a_dry_run() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko {
        moto: &moto,
        db: dir.path().join("db"),
    };
    let (file, key) = leaked_key_file(&iam, dir.path(), "dario").await;
    let file = file.to_str().unwrap();

    // The same approver twice is one approver: refused before anything happens.
    let out = hanko.run(
        &[
            "drill",
            file,
            "--db",
            hanko.db(),
            "--approve-as",
            "ops",
            "--approve-as",
            "ops",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--approve-as ops is given twice"),
        "{stderr}"
    );
    assert_eq!(key_status(&iam, "dario", &key).await, StatusType::Active);

    // A dry run changes nothing and is audited: who ran it, on what.
    let out = hanko.run(
        &["drill", file, "--db", hanko.db(), "--dry-run", "--json"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reports(&out)[0]["state"], "DryRun");
    assert_eq!(key_status(&iam, "dario", &key).await, StatusType::Active);
    {
        let store = Store::open(&hanko.db).unwrap();
        let dry = kinds(&store, EventKind::DryRunPerformed);
        assert_eq!(dry.len(), 1, "{dry:#?}");
        assert_eq!(
            dry[0].actor,
            Actor::Cli {
                name: "drill-runner".into()
            }
        );
        assert_eq!(dry[0].finding_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!(dry[0].detail["via"], "cli");
        assert_eq!(dry[0].detail["account_id"], ACCOUNT);
        assert_eq!(dry[0].detail["steps"][0]["action"], "deactivate_access_key");
        assert!(store
            .requests_in_states(&[RequestState::Pending])
            .unwrap()
            .is_empty());
    }

    let out = hanko.run(
        &[
            "drill",
            file,
            "--db",
            hanko.db(),
            "--approve-as",
            "ops",
            "--json",
        ],
        &[],
    );
    let contained = reports(&out)[0]["request_id"].as_str().unwrap().to_string();
    let out = hanko.run(
        &[
            "revert",
            &contained,
            "--db",
            hanko.db(),
            "--approve-as",
            "a",
            "--approve-as",
            "a",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = hanko.run(
        &[
            "revert",
            &contained,
            "--db",
            hanko.db(),
            "--approve-as",
            "second",
            "--json",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(key_status(&iam, "dario", &key).await, StatusType::Active);

    // Chat's rule: after a revert succeeded, no second one.
    let out = hanko.run(
        &[
            "revert",
            &contained,
            "--db",
            hanko.db(),
            "--approve-as",
            "third",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let refused = reports(&out);
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("already reverted"),
        "{refused:#?}"
    );
    let store = Store::open(&hanko.db).unwrap();
    let reverts = store
        .requests_in_states(&[
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Succeeded,
        ])
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.kind, RequestKind::Revert { .. }))
        .count();
    assert_eq!(reverts, 1, "one revert, not two");
}

// ---------------------------------------------------------------------------------------------
// Chat: dry run and revert-exists audited
// ---------------------------------------------------------------------------------------------

fn chat_finding(id: &str) -> hanko::finding::Finding {
    let text = fixtures::read("api/UnauthorizedAccess_IAMUser_TorIPCaller.json")
        .replace("GeneratedFindingAccessKeyId", "AKIADEFECTSEXAMPLE01")
        .replace("GeneratedFindingUserName", "leaky");
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["id"] = json!(id);
    // In hanko's own (proven) account: a finding of another account gets no request at all.
    doc["accountId"] = json!(OWN_ACCOUNT);
    hanko::finding::parse_document(&doc.to_string())
        .unwrap()
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_clicks_and_revert_clicks_refused_for_an_open_revert_are_audited() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    let request = bot.accept(&chat_finding("0defec7")).unwrap();
    let card = wait_for_card(fake, request).await;

    // Dry run: audited with who and what, before its calls.
    let dry = card.custom_id_of("Dry run").unwrap();
    let click = fake.inject_button(&dry, card.id, &alice());
    wait_for_original_edit(fake, &click).await;
    let store = &bot.app().store;
    let events = kinds(store, EventKind::DryRunPerformed);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].actor.display_name(), "alice");
    assert_eq!(events[0].request_id, Some(request));
    assert_eq!(events[0].finding_id.as_deref(), Some("0defec7"));
    assert_eq!(events[0].detail["via"], "chat");

    // A revert of this request is already open: the Revert click is refused, and audited.
    let original = store.get_request(request).unwrap().unwrap();
    let open = Request::new(
        RequestKind::Revert { of: request },
        hanko::engine::revert_plan(&original, &[]),
        Actor::System,
        chrono::Utc::now(),
        bot.app().policy.ttl,
    );
    store.create_request(&open, chrono::Utc::now()).unwrap();
    let revert_id = hanko::discord::custom_id::ButtonId::new(
        hanko::discord::custom_id::ButtonAction::Revert,
        request,
        &original.plan.plan_hash,
    )
    .encode();
    let click = fake.inject_button(&revert_id, card.id, &bob());
    let answer = wait_for_original_edit(fake, &click).await;
    assert!(
        answer
            .body
            .clone()
            .unwrap_or_default()
            .to_string()
            .contains("already open"),
        "{:?}",
        answer.body
    );
    let refused: Vec<_> = kinds(store, EventKind::CommandInvoked)
        .into_iter()
        .filter(|e| e.detail["refused"] == "revert_exists")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0].actor.display_name(), "bob");
    assert_eq!(refused[0].request_id, Some(request));
    assert_eq!(refused[0].detail["existing_request_id"], json!(open.id));
    bot.stop().await;
}
