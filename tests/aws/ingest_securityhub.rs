//! The Security Hub poller against moto: ASFF fixtures imported with `BatchImportFindings`,
//! then polled; filters moto ignores are applied client-side; and one GuardDuty finding that
//! arrives through SQS and Security Hub is stored once.

use crate::support::control_findings;
use crate::support::guardduty_standin as standin;
use crate::support::ingest_app as support;
use crate::support::moto;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hanko::audit::EventKind;
use hanko::finding;
use hanko::ingest::securityhub::SecurityHubPoller;
use hanko::ingest::sqs::SqsIngest;
use hanko::store::Store;
use serde_json::{json, Value};

use control_findings::control_finding;
use moto::Moto;
use support::events;

/// Every ASFF fixture, in file-name order.
fn asff_fixtures() -> Vec<Value> {
    let dir = standin::fixtures_dir().join("asff");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected ASFF fixtures in {}",
        dir.display()
    );
    files
        .iter()
        .flat_map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            match v {
                Value::Array(items) => items,
                Value::Object(ref m) if m.contains_key("Findings") => {
                    v["Findings"].as_array().unwrap().clone()
                }
                other => vec![other],
            }
        })
        .collect()
}

/// `BatchImportFindings` as raw JSON (moto checks no signature), so the fixtures go in
/// byte for byte rather than through the SDK's types; in moto account `account`.
fn import(moto: &Moto, account: &str, findings: &[Value]) {
    let body = json!({ "Findings": findings }).to_string();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "POST /findings/import HTTP/1.0\r\nHost: securityhub.us-east-1.amazonaws.com\r\n\
         Content-Type: application/json\r\n\
         x-moto-account-id: {account}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/securityhub/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    let (head, resp) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{head}\n{resp}");
    let resp: Value = serde_json::from_str(resp).unwrap();
    assert_eq!(resp["FailedCount"], 0, "{resp}");
    assert_eq!(resp["SuccessCount"], findings.len(), "{resp}");
}

fn poller(store: &Store, conf: &aws_config::SdkConfig, ingest: &str) -> SecurityHubPoller {
    let app = support::app(support::settings(ingest), store.clone(), conf.clone());
    SecurityHubPoller::new(app, aws_sdk_securityhub::Client::new(conf), "us-east-1")
        .with_page_size(2)
}

/// The last imported version of each ASFF `Id` (moto merges a re-import into the first).
fn latest_by_id(findings: &[Value]) -> BTreeMap<String, Value> {
    findings
        .iter()
        .map(|f| (f["Id"].as_str().unwrap().to_string(), f.clone()))
        .collect()
}

/// Runs a test body on a thread with the stack hanko gives its ingest loops: the SDK's
/// Security Hub deserializer overflows a default 2 MiB test thread in unoptimized builds.
fn on_ingest_stack<F>(body: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .stack_size(hanko::ingest::INGEST_THREAD_STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body())
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn asff_findings_are_ingested_once_and_equal_the_direct_parse() {
    on_ingest_stack(asff_findings_are_ingested_once);
}

async fn asff_findings_are_ingested_once() {
    // The shared moto, in an account of this test's own: the poller lists every finding.
    let moto = moto::shared();
    let (conf, account) = moto.sdk_config_in_own_account().await;
    let fixtures = asff_fixtures();
    import(&moto, &account, &fixtures);
    let distinct = latest_by_id(&fixtures);
    assert!(distinct.len() < fixtures.len(), "two fixtures share an Id");

    let store = Store::open_temporary().unwrap();
    let now = chrono::Utc::now();
    let report = poller(&store, &conf, "min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    assert_eq!(report.new, distinct.len());
    assert_eq!(report.quarantined, 0);
    assert_eq!(store.finding_count(), distinct.len() as u64);
    for (asff_id, doc) in &distinct {
        let want = finding::parse_asff_value(doc, "$").unwrap();
        assert!(asff_id.ends_with(&want.id), "GuardDuty's id from the ARN");
        let got = store.get_finding(&want.id).unwrap().unwrap().finding;
        assert_eq!(got, want, "{asff_id}");
    }
    let newest = distinct
        .values()
        .map(|d| d["UpdatedAt"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    let cursor = store.get_cursor("securityhub:us-east-1").unwrap().unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&cursor).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&newest).unwrap()
    );

    // A restart ingests nothing new (moto returns everything again; the store dedupes).
    let audit = store.audit_len();
    let again = poller(&store, &conf, "min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    assert_eq!((again.new, again.updated), (0, 0));
    assert_eq!(store.audit_len(), audit);
}

#[test]
fn filters_moto_ignores_are_applied_client_side() {
    on_ingest_stack(client_side_filters);
}

async fn client_side_filters() {
    // The shared moto, in an account of this test's own: the poller lists every finding.
    let moto = moto::shared();
    let (conf, account) = moto.sdk_config_in_own_account().await;
    let base = asff_fixtures().remove(1);
    let variant = |suffix: &str, edit: &dyn Fn(&mut Value)| {
        let mut f = base.clone();
        f["Id"] = json!(format!("{}{suffix}", base["Id"].as_str().unwrap()));
        edit(&mut f);
        f
    };
    let findings = vec![
        variant("aaa1", &|_| {}),
        variant("aaa2", &|f| f["RecordState"] = json!("ARCHIVED")),
        variant("aaa3", &|f| f["Workflow"] = json!({"Status": "RESOLVED"})),
        variant("aaa4", &|f| f["Workflow"] = json!({"Status": "NOTIFIED"})),
        variant("aaa5", &|f| {
            f["Severity"] = json!({"Product": 2, "Normalized": 20, "Label": "LOW"})
        }),
    ];
    import(&moto, &account, &findings);
    let store = Store::open_temporary().unwrap();
    let report = poller(&store, &conf, "min_severity = 4.0")
        .poll_once(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.new, 2);
    let mut ids: Vec<String> = store
        .recent_findings(10)
        .unwrap()
        .into_iter()
        .map(|f| f.finding.id)
        .collect();
    ids.sort();
    let tail = |s: &str| s.chars().rev().take(4).collect::<String>();
    assert_eq!(
        ids.iter().map(|i| tail(i)).collect::<Vec<_>>(),
        vec![tail("aaa1"), tail("aaa4")]
    );
}

#[test]
fn one_guardduty_finding_through_sqs_and_security_hub_is_stored_once() {
    on_ingest_stack(stored_once_through_two_sources);
}

async fn stored_once_through_two_sources() {
    // The shared moto, in an account of this test's own: the poller lists every finding.
    let moto = moto::shared();
    let (conf, account) = moto.sdk_config_in_own_account().await;
    let asff = asff_fixtures().remove(1);
    let id = finding::parse_asff_value(&asff, "$").unwrap().id;

    // Through EventBridge -> SQS, as Security Hub's `Findings - Imported` event.
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = sqs
        .create_queue()
        .queue_name("hanko-both")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let event = json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": asff["AwsAccountId"],
        "time": asff["UpdatedAt"],
        "region": "us-east-1",
        "resources": [asff["Id"]],
        "detail": { "findings": [asff] },
    });
    sqs.send_message()
        .queue_url(&url)
        .message_body(event.to_string())
        .send()
        .await
        .unwrap();
    let store = Store::open_temporary().unwrap();
    let app = support::app(support::settings(""), store.clone(), conf.clone());
    let ingest = SqsIngest::new(app, sqs.clone(), url.clone()).with_wait_seconds(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ingest.poll_once().await.unwrap().handled.is_empty() {
        assert!(Instant::now() < deadline, "the SQS message never arrived");
    }
    assert_eq!(store.finding_count(), 1);

    // And through Security Hub's API.
    import(&moto, &account, std::slice::from_ref(&asff));
    let report = poller(&store, &conf, "min_severity = 0.0")
        .poll_once(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((report.seen, report.new, report.unchanged), (1, 0, 1));
    assert_eq!(store.finding_count(), 1);
    assert_eq!(events(&store, EventKind::FindingIngested, Some(&id)), 1);
    assert!(store.requests_for_finding(&id).unwrap().len() <= 1);
}

fn bucket(n: usize) -> String {
    format!("arn:aws:s3:::bucket-{n:02}")
}

#[test]
fn forty_failures_of_one_control_are_one_posture_group_and_passing_again_resolves_it() {
    on_ingest_stack(posture_group_lifecycle);
}

async fn posture_group_lifecycle() {
    use hanko::notices::Notice;
    use hanko::posture::{Group, GroupKey, GroupStatus};

    // The shared moto, in an account of this test's own: the poller lists every finding.
    let moto = moto::shared();
    let (conf, account) = moto.sdk_config_in_own_account().await;
    let now = chrono::Utc::now();
    let t1 = (now - chrono::Duration::hours(2)).to_rfc3339();
    let failing: Vec<Value> = (0..40)
        .map(|n| control_finding(n, "S3.8", "FAILED", &bucket(n), &t1))
        .collect();
    import(&moto, &account, &failing);
    // A GuardDuty threat finding beside them still goes the threat way.
    let threats = asff_fixtures();
    import(&moto, &account, &threats[..1]);

    let store = Store::open_temporary().unwrap();
    let app = support::app(
        support::settings("min_severity = 0.0"),
        store.clone(),
        conf.clone(),
    );
    let mut notices = app.notices.subscribe();
    let mut poller =
        SecurityHubPoller::new(app, aws_sdk_securityhub::Client::new(&conf), "us-east-1")
            .with_page_size(7);
    let report = poller.poll_once(now).await.unwrap();
    assert_eq!(report.posture_changed, 40, "{report:?}");
    assert_eq!(report.quarantined, 0);
    assert_eq!(
        store.finding_count(),
        1,
        "control findings are not threat findings"
    );

    let key = GroupKey {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        control_id: "S3.8".into(),
    };
    let group = Group::of(&store.control_findings(&key).unwrap()).unwrap();
    assert_eq!(group.status, GroupStatus::Failing);
    assert_eq!(group.failing.len(), 40);
    assert_eq!(group.new_count, 40);
    let posture_notices = |rx: &mut tokio::sync::broadcast::Receiver<Notice>| {
        let mut groups = Vec::new();
        while let Ok(n) = rx.try_recv() {
            if let Notice::PostureChanged { group } = n {
                groups.push(group);
            }
        }
        groups.sort();
        groups.dedup();
        groups
    };
    assert_eq!(posture_notices(&mut notices), vec![key.encode()]);
    let card = hanko::discord::cards::posture_card(&group, false);
    assert!(card.title.starts_with("S3.8 "), "{}", card.title);
    assert!(card
        .fields
        .iter()
        .any(|f| f.name == "Failing resources (40)" && f.value.contains("+35 more")));
    assert_eq!(
        card.url.as_deref(),
        Some("https://docs.aws.amazon.com/console/securityhub/S3.8/remediation")
    );

    // The day's scores are recorded: S3.8 fails, 0 of 1 control passes.
    let today = now.date_naive();
    let recorded = store.score_snapshot(today).unwrap().unwrap();
    assert_eq!(
        recorded
            .rows
            .iter()
            .map(|r| (r.passed, r.total))
            .collect::<Vec<_>>(),
        vec![(0, 1)]
    );

    // A second poll with nothing new changes nothing, announces nothing, and does not
    // recompute the day's scores (a marker record stays as it is).
    let marker = hanko::posture::Snapshot {
        date: today,
        rows: Vec::new(),
    };
    store.put_score_snapshot(&marker).unwrap();
    let again = poller.poll_once(now).await.unwrap();
    assert_eq!(again.posture_changed, 0);
    assert!(posture_notices(&mut notices).is_empty());
    assert_eq!(store.score_snapshot(today).unwrap(), Some(marker));

    // The control passes again on every bucket: the group is resolved.
    let t2 = (now - chrono::Duration::minutes(5)).to_rfc3339();
    let passing: Vec<Value> = (0..40)
        .map(|n| control_finding(n, "S3.8", "PASSED", &bucket(n), &t2))
        .collect();
    import(&moto, &account, &passing);
    let report = poller.poll_once(now).await.unwrap();
    assert_eq!(report.posture_changed, 40, "{report:?}");
    let group = Group::of(&store.control_findings(&key).unwrap()).unwrap();
    assert_eq!(group.status, GroupStatus::Resolved);
    assert_eq!(group.passed_count, 40);
    // A change records the day's scores again: now 1 of 1 passes.
    let recorded = store.score_snapshot(today).unwrap().unwrap();
    assert_eq!(
        recorded
            .rows
            .iter()
            .map(|r| (r.passed, r.total))
            .collect::<Vec<_>>(),
        vec![(1, 1)]
    );
    assert_eq!(posture_notices(&mut notices), vec![key.encode()]);
    let card = hanko::discord::cards::posture_card(&group, false);
    assert!(card.title.starts_with("[RESOLVED] S3.8"), "{}", card.title);
    assert_eq!(card.color, hanko::discord::cards::COLOR_RESOLVED);
}
