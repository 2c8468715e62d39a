//! EventBridge events through SQS, against moto: stored then deleted, malformed bodies
//! quarantined then deleted, and a crash between store and delete that creates nothing twice.

use crate::support::guardduty_standin as standin;
use crate::support::ingest_app as support;
use crate::support::moto;
use crate::support::sqs_events;

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use hanko::audit::EventKind;
use hanko::ingest::sqs::{Outcome, SqsIngest};
use hanko::store::SourceStatus;
use hanko::store::Store;
use serde_json::{json, Value};

use sqs_events::{guardduty_event, queue, send};
use support::events;

async fn messages_left(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes.unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|k| {
        attrs
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

fn ingest(store: &Store, conf: &aws_config::SdkConfig, url: &str) -> SqsIngest {
    let app = support::app(support::settings(""), store.clone(), conf.clone());
    SqsIngest::new(app, aws_sdk_sqs::Client::new(conf), url.to_string()).with_wait_seconds(1)
}

/// Polls until `want` messages were handled in total, or fails after 30 s.
async fn drain(ingest: &SqsIngest, want: usize) -> Vec<hanko::ingest::sqs::Handled> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut handled = Vec::new();
    while handled.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} messages handled within 30 s",
            handled.len()
        );
        let r = ingest.poll_once().await.unwrap();
        assert_eq!(r.deleted, r.handled.len());
        handled.extend(r.handled);
    }
    handled
}

#[tokio::test]
async fn valid_events_are_stored_then_deleted() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = queue(&sqs, "hanko-findings", 30).await;
    let fixtures = standin::api_fixtures();
    let live: Vec<&Value> = fixtures
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["service"]["archived"] != true)
        .take(12)
        .collect();
    for d in &live {
        send(&sqs, &url, &guardduty_event(d)).await;
    }
    // A real captured event and a Security Hub event, as published.
    let dir = standin::fixtures_dir().join("eventbridge");
    for name in [
        "cloud-custodian__ec2-duty-event__Backdoor_EC2_C_CActivity.B_DNS.json",
        "cloud-custodian__securityhub-custom-action__GuardDuty_ASFF_ConsoleLogin.json",
    ] {
        send(
            &sqs,
            &url,
            &std::fs::read_to_string(dir.join(name)).unwrap(),
        )
        .await;
    }

    let store = Store::open_temporary().unwrap();
    let ingest = ingest(&store, &conf, &url);
    let handled = drain(&ingest, live.len() + 2).await;
    assert!(handled
        .iter()
        .all(|h| matches!(&h.outcome, Outcome::Stored { finding_ids } if finding_ids.len() == 1)));
    assert!(
        handled.iter().all(|h| h.delivery.is_some()),
        "SentTimestamp read"
    );
    // Every distinct finding id is stored once.
    let mut ids: Vec<String> = handled
        .iter()
        .flat_map(|h| match &h.outcome {
            Outcome::Stored { finding_ids } => finding_ids.clone(),
            Outcome::Quarantined { .. } => vec![],
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(store.finding_count(), ids.len() as u64);
    assert_eq!(events(&store, EventKind::FindingIngested, None), ids.len());
    for d in &live {
        let want = hanko::finding::parse_guardduty_value(d, "$").unwrap();
        let got = store.get_finding(&want.id).unwrap().unwrap().finding;
        assert_eq!(got.count, want.count);
        assert_eq!(got.updated_at, want.updated_at);
    }
    assert_eq!(messages_left(&sqs, &url).await, 0, "every message deleted");
    let delivery: u64 = store
        .delivery_ms(hanko::ingest::SQS_SOURCE)
        .unwrap()
        .expect("delivery_ms written");
    assert!(delivery < 60_000, "{delivery} ms");
}

/// Issue 11, item 4a: after a finding with severity 1.6997106113535186 came in through SQS,
/// `hanko audit verify` said "BROKEN: its hash does not match its contents".
#[tokio::test]
async fn issue_11_a_float_severity_finding_from_sqs_verifies() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = queue(&sqs, "hanko-float", 30).await;
    let fixtures = standin::api_fixtures();
    let mut detail = fixtures
        .iter()
        .map(|(_, d)| d.clone())
        .find(|d| d["service"]["archived"] != true)
        .unwrap();
    let severities = [1.6997106113535186, 7.300000000000001, 8.000000000000002];
    for (i, severity) in severities.into_iter().enumerate() {
        detail["id"] = json!(format!("f10a7{i}"));
        detail["severity"] = json!(severity);
        send(&sqs, &url, &guardduty_event(&detail)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let ingest = ingest(&store, &conf, &url);
        drain(&ingest, severities.len()).await;
        let stored = store.get_finding("f10a70").unwrap().unwrap().finding;
        assert_eq!(stored.severity.to_bits(), 1.6997106113535186f64.to_bits());
        assert_eq!(
            events(&store, EventKind::FindingIngested, None),
            severities.len()
        );
        store.verify_audit().unwrap();
        store.flush().unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hanko"))
        .args(["audit", "verify", "--db"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("OK: "), "{stdout}");
}

#[tokio::test]
async fn a_malformed_message_is_quarantined_audited_and_deleted() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = queue(&sqs, "hanko-bad", 30).await;
    let not_json = "this is not an event {";
    let no_account = json!({
        "source": "aws.guardduty",
        "detail-type": "GuardDuty Finding",
        "detail": {"id": "abc", "type": "Recon:EC2/PortProbeUnprotectedPort", "accountId": "12x"}
    })
    .to_string();
    send(&sqs, &url, not_json).await;
    send(&sqs, &url, &no_account).await;

    let store = Store::open_temporary().unwrap();
    let ingest = ingest(&store, &conf, &url);
    let handled = drain(&ingest, 2).await;
    assert!(handled
        .iter()
        .all(|h| matches!(h.outcome, Outcome::Quarantined { .. })));
    let q = store.quarantined(10).unwrap();
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|q| q.source == "sqs"));
    let raw: Vec<&str> = q.iter().map(|q| q.raw.as_str()).collect();
    assert!(raw.contains(&not_json) && raw.contains(&no_account.as_str()));
    let bad_account = q.iter().find(|q| q.raw == no_account).unwrap();
    assert!(
        bad_account.error.contains("$.detail.accountId"),
        "{}",
        bad_account.error
    );
    assert_eq!(events(&store, EventKind::FindingRejected, None), 2);
    assert_eq!(store.finding_count(), 0);
    assert_eq!(
        messages_left(&sqs, &url).await,
        0,
        "quarantined messages are deleted"
    );
}

#[tokio::test]
async fn a_crash_between_store_and_delete_creates_no_second_finding_or_request() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    // Redelivered one second after the crash.
    let url = queue(&sqs, "hanko-crash", 1).await;
    let fixtures = standin::api_fixtures();
    let mut detail = fixtures
        .iter()
        .find(|(n, _)| n == "UnauthorizedAccess_EC2_SSHBruteForce.json")
        .unwrap()
        .1
        .clone();
    // Severe enough to be proposed (the fixture's 2.0 is below the config's minimum, and a
    // finding below it gets no request).
    detail["severity"] = json!(5.0);
    let id = detail["id"].as_str().unwrap().to_string();
    send(&sqs, &url, &guardduty_event(&detail)).await;

    let dir = tempfile::tempdir().unwrap();
    {
        // First life: receive and store, then "killed" before the delete.
        let store = Store::open(dir.path()).unwrap();
        let first = ingest(&store, &conf, &url);
        let deadline = Instant::now() + Duration::from_secs(30);
        let messages = loop {
            let m = first.receive().await.unwrap();
            if !m.is_empty() {
                break m;
            }
            assert!(Instant::now() < deadline, "the message never arrived");
        };
        let batch = first.store(&messages, chrono::Utc::now());
        assert!(batch.error.is_none());
        assert_eq!(batch.report.new, 1);
        assert_eq!(batch.report.proposed, 1);
        // No delete: the process dies here and the store is closed.
    }

    // Second life: the store reopened from disk, the message delivered again.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.finding_count(), 1, "the finding survived the crash");
    let second = ingest(&store, &conf, &url);
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let r = second.poll_once().await.unwrap();
        if !r.handled.is_empty() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the message was never redelivered"
        );
    };
    assert_eq!(report.handled.len(), 1);
    assert_eq!((report.report.new, report.report.unchanged), (0, 1));
    assert_eq!(report.report.proposed, 0);
    assert_eq!(report.deleted, 1);
    assert_eq!(store.finding_count(), 1);
    assert_eq!(store.requests_for_finding(&id).unwrap().len(), 1);
    assert_eq!(events(&store, EventKind::FindingIngested, Some(&id)), 1);
    assert_eq!(events(&store, EventKind::RequestProposed, Some(&id)), 1);
    assert_eq!(messages_left(&sqs, &url).await, 0);
}

#[tokio::test]
async fn the_loop_reports_its_status_and_stops_on_shutdown() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = queue(&sqs, "hanko-loop", 30).await;
    let fixtures = standin::api_fixtures();
    send(&sqs, &url, &guardduty_event(&fixtures[0].1)).await;

    let store = Store::open_temporary().unwrap();
    let source = hanko::ingest::Source::Sqs(ingest(&store, &conf, &url));
    let health = hanko::ingest::Health::new(store.clone(), "sqs");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(hanko::ingest::run_loop(
        source,
        health,
        Duration::from_secs(60),
        rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    // Wait for the effects: stored, deleted, and the poll recorded as successful.
    let status = loop {
        let status = SourceStatus::read(&store, "sqs", chrono::Utc::now()).unwrap();
        if store.finding_count() == 1
            && status.last_ok.is_some()
            && messages_left(&sqs, &url).await == 0
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the loop did not ingest the message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.lag_seconds.is_some_and(|l| l < 60));
    assert_eq!(status.errors, 0);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop stops within 5 s of shutdown")
        .unwrap();
}
