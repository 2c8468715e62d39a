//! The GuardDuty poller against a local stand-in of the GuardDuty REST API serving the real
//! fixture documents: paging, exactly-once across restarts, updates, archival, quarantine.

use crate::support::guardduty_standin as standin;
use crate::support::ingest_app as support;

use chrono::{DateTime, Utc};
use hanko::approval::RequestState;
use hanko::audit::EventKind;
use hanko::finding;
use hanko::ingest::guardduty::GuardDutyPoller;
use hanko::store::Store;
use serde_json::Value;

use standin::{api_fixtures, guardduty_client, test_sdk_config, Standin};
use support::events;

const DETECTOR: &str = "37da5a0204286ccd967d2395320d4dcd";
/// The region of the detector the fixtures were exported from (36 of 39 findings). The
/// stand-in serves every fixture whatever its region; the poller rechecks only its own.
const REGION: &str = "us-east-2";

fn archived(doc: &Value) -> bool {
    doc["service"]["archived"].as_bool().unwrap_or(false)
}

struct Rig {
    standin: Standin,
    store: Store,
    conf: aws_config::SdkConfig,
    fixtures: Vec<(String, Value)>,
}

impl Rig {
    async fn new() -> Rig {
        let fixtures = api_fixtures();
        let standin =
            Standin::start(DETECTOR, fixtures.iter().map(|(_, d)| d.clone()).collect()).await;
        Rig {
            standin,
            store: Store::open_temporary().unwrap(),
            conf: test_sdk_config().await,
            fixtures,
        }
    }

    /// A fresh poller over the same store (a restart), with a small page size; the detector
    /// is found with ListDetectors.
    fn poller(&self, ingest: &str) -> GuardDutyPoller {
        let app = support::app(
            support::settings(ingest),
            self.store.clone(),
            self.conf.clone(),
        );
        let client = guardduty_client(&self.conf, &self.standin.endpoint());
        GuardDutyPoller::new(app, client, REGION).with_page_size(7)
    }

    fn doc(&self, file: &str) -> &Value {
        &self
            .fixtures
            .iter()
            .find(|(n, _)| n == file)
            .unwrap_or_else(|| panic!("no fixture {file}"))
            .1
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn every_fixture_is_ingested_once_across_pages_and_equals_the_direct_parse() {
    let rig = Rig::new().await;
    let live: Vec<&(String, Value)> = rig.fixtures.iter().filter(|(_, d)| !archived(d)).collect();
    // One fixture is archived already: with `service.archived = false` it is never listed
    // (suppression rules archive on arrival; such findings stay out of the channel).
    assert_eq!(rig.fixtures.len() - live.len(), 1);

    let now = t("2025-06-01T12:00:00Z");
    let report = rig
        .poller("min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    assert_eq!(report.new, live.len());
    assert_eq!(report.quarantined, 0);
    assert_eq!(rig.store.finding_count(), live.len() as u64);
    assert_eq!(
        events(&rig.store, EventKind::FindingIngested, None),
        live.len()
    );

    // Each stored finding is exactly what the one parser makes of the fixture document.
    for (name, doc) in &live {
        let want = finding::parse_guardduty_value(doc, "$").unwrap();
        let got = rig.store.get_finding(&want.id).unwrap().unwrap().finding;
        assert_eq!(got, want, "{name}");
    }
    let archived_id = rig.fixtures.iter().find(|(_, d)| archived(d)).unwrap().1["id"]
        .as_str()
        .unwrap();
    assert!(rig.store.get_finding(archived_id).unwrap().is_none());

    // Paging: ceil(38 / 7) pages, each asking for the same criteria, updatedAt ascending.
    let lists = rig.standin.requests_to("/findings");
    assert_eq!(lists.len(), live.len().div_ceil(7));
    let since =
        now - chrono::Duration::days(support::TEST_BACKFILL_DAYS) - chrono::Duration::minutes(2);
    for (i, r) in lists.iter().enumerate() {
        let c = &r.body["findingCriteria"]["criterion"];
        assert_eq!(
            c["updatedAt"]["greaterThanOrEqual"],
            since.timestamp_millis()
        );
        assert_eq!(
            c["service.archived"]["equals"],
            serde_json::json!(["false"])
        );
        assert!(
            c.get("severity").is_none(),
            "min_severity 0 sends no severity criterion"
        );
        assert_eq!(r.body["sortCriteria"]["attributeName"], "updatedAt");
        assert_eq!(r.body["sortCriteria"]["orderBy"], "ASC");
        assert_eq!(r.body["maxResults"], 7);
        assert_eq!(r.body.get("nextToken").is_some(), i > 0, "page {i}");
    }
    let gets = rig.standin.requests_to("/findings/get");
    assert_eq!(gets.len(), lists.len());
    assert!(gets
        .iter()
        .all(|g| g.body["findingIds"].as_array().unwrap().len() <= 50));
    assert_eq!(
        rig.standin.requests_to("/detector").len(),
        1,
        "ListDetectors once"
    );

    // The cursor is the newest updatedAt stored.
    let newest = live
        .iter()
        .map(|(_, d)| t(d["updatedAt"].as_str().unwrap()))
        .max()
        .unwrap();
    assert_eq!(
        rig.store
            .get_cursor("guardduty:us-east-2")
            .unwrap()
            .unwrap(),
        newest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

#[tokio::test]
async fn a_restarted_poller_ingests_nothing_new() {
    let rig = Rig::new().await;
    let now = t("2025-06-01T12:00:00Z");
    let first = rig
        .poller("min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    assert_eq!(first.new, 38);
    let audit_before = rig.store.audit_len();
    let requests_before = rig
        .store
        .requests_in_states(&[RequestState::Pending])
        .unwrap()
        .len();
    assert!(requests_before > 0);
    rig.standin.clear_requests();

    // A new poller on the same store: it starts from the stored cursor, minus the overlap.
    let second = rig
        .poller("min_severity = 0.0")
        .poll_once(now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((second.new, second.updated), (0, 0));
    assert_eq!(rig.store.audit_len(), audit_before, "no new audit events");
    assert_eq!(events(&rig.store, EventKind::FindingIngested, None), 38);
    assert_eq!(
        rig.store
            .requests_in_states(&[RequestState::Pending])
            .unwrap()
            .len(),
        requests_before
    );
    let cursor = t(&rig
        .store
        .get_cursor("guardduty:us-east-2")
        .unwrap()
        .unwrap());
    let lists = rig.standin.requests_to("/findings");
    assert_eq!(
        lists[0].body["findingCriteria"]["criterion"]["updatedAt"]["greaterThanOrEqual"],
        (cursor - chrono::Duration::minutes(2)).timestamp_millis()
    );
}

#[tokio::test]
async fn a_higher_count_updates_the_finding_and_creates_no_second_request() {
    let rig = Rig::new().await;
    let now = t("2025-06-01T12:00:00Z");
    rig.poller("min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    let id = rig.doc("Backdoor_EC2_C_CActivity.B.json")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = rig.store.requests_for_finding(&id).unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].state, RequestState::Pending);
    let count = rig.store.get_finding(&id).unwrap().unwrap().finding.count;

    let later = now + chrono::Duration::minutes(5);
    rig.standin.bump(&id, later);
    let report = rig
        .poller("min_severity = 0.0")
        .poll_once(later)
        .await
        .unwrap();
    assert_eq!((report.new, report.updated, report.proposed), (0, 1, 0));
    let stored = rig.store.get_finding(&id).unwrap().unwrap().finding;
    assert_eq!(stored.count, count + 1);
    assert_eq!(stored.updated_at, Some(later));
    assert_eq!(events(&rig.store, EventKind::FindingUpdated, Some(&id)), 1);
    let after = rig.store.requests_for_finding(&id).unwrap();
    assert_eq!(after.len(), 1, "no second request");
    assert_eq!(after[0].id, before[0].id);
    assert_eq!(after[0].state, RequestState::Pending);
}

#[tokio::test]
async fn an_archived_finding_supersedes_its_pending_request() {
    let rig = Rig::new().await;
    let now = t("2025-06-01T12:00:00Z");
    rig.poller("min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    let id = rig.doc("UnauthorizedAccess_EC2_SSHBruteForce.json")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let request = rig.store.requests_for_finding(&id).unwrap().remove(0);
    assert_eq!(request.state, RequestState::Pending);

    // Archived without a newer updatedAt: the cursor query cannot see it, the recheck does.
    rig.standin.archive(&id);
    rig.standin.clear_requests();
    let report = rig
        .poller("min_severity = 0.0")
        .poll_once(now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.superseded, 1);
    assert!(
        rig.store
            .get_finding(&id)
            .unwrap()
            .unwrap()
            .finding
            .archived
    );
    assert_eq!(
        rig.store.get_request(request.id).unwrap().unwrap().state,
        RequestState::Superseded
    );
    assert_eq!(
        events(&rig.store, EventKind::RequestSuperseded, Some(&id)),
        1
    );
    let rechecked = rig.standin.requests_to("/findings/get").iter().any(|r| {
        r.body["findingIds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == &id)
    });
    assert!(rechecked, "the pending finding was read again by id");

    // Archived and superseded: nothing more happens on the next poll.
    let audit = rig.store.audit_len();
    rig.poller("min_severity = 0.0")
        .poll_once(now + chrono::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(rig.store.audit_len(), audit);
}

#[tokio::test]
async fn an_archived_finding_supersedes_its_approved_request_before_it_runs() {
    use hanko::approval::{Decision, Policy, VoteInput, Voter};
    use hanko::audit::Actor;
    let rig = Rig::new().await;
    let now = t("2025-06-01T12:00:00Z");
    rig.poller("min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    let id = rig.doc("UnauthorizedAccess_EC2_SSHBruteForce.json")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let request = rig.store.requests_for_finding(&id).unwrap().remove(0);
    // Approved (while execution is paused, say), not yet run.
    let policy = Policy::default();
    for name in ["ops-1", "ops-2"]
        .iter()
        .take(policy.needed(&request.plan) as usize)
    {
        let vote = VoteInput {
            voter: Voter {
                actor: Actor::Cli {
                    name: name.to_string(),
                },
                roles: vec![],
            },
            decision: Decision::Approve,
            plan_hash: request.plan.plan_hash.clone(),
        };
        rig.store
            .vote(&policy, request.id, &vote, now)
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        rig.store.get_request(request.id).unwrap().unwrap().state,
        RequestState::Approved
    );

    // Archived without a newer updatedAt: the recheck by id covers approved requests too.
    rig.standin.archive(&id);
    rig.standin.clear_requests();
    let report = rig
        .poller("min_severity = 0.0")
        .poll_once(now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    let rechecked = rig.standin.requests_to("/findings/get").iter().any(|r| {
        r.body["findingIds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == &id)
    });
    assert!(
        rechecked,
        "the approved request's finding was read again by id"
    );
    assert_eq!(report.superseded, 1);
    let superseded = rig.store.get_request(request.id).unwrap().unwrap();
    assert_eq!(superseded.state, RequestState::Superseded);
    assert_eq!(
        superseded.closure.map(|c| c.code).as_deref(),
        Some("finding_archived")
    );
    assert_eq!(
        events(&rig.store, EventKind::RequestSuperseded, Some(&id)),
        1
    );
}

#[tokio::test]
async fn a_finding_that_does_not_parse_is_quarantined_and_the_rest_is_stored() {
    let rig = Rig::new().await;
    let mut bad = rig.doc("Trojan_EC2_DropPoint.json").clone();
    bad["id"] = "bad0000000000000000000000000000".into();
    bad["accountId"] = "not-an-account".into();
    rig.standin.add(bad);
    let now = t("2025-06-01T12:00:00Z");
    let report = rig
        .poller("min_severity = 0.0")
        .poll_once(now)
        .await
        .unwrap();
    assert_eq!((report.new, report.quarantined), (38, 1));
    let q = rig.store.quarantined(10).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].source, "guardduty:us-east-2");
    assert!(q[0].error.contains("$.accountId"), "{}", q[0].error);
    assert!(q[0].raw.contains("bad0000000000000000000000000000"));
    assert_eq!(events(&rig.store, EventKind::FindingRejected, None), 1);
}

#[tokio::test]
async fn min_severity_is_sent_rounded_down_and_applied_exactly() {
    let rig = Rig::new().await;
    let now = t("2025-06-01T12:00:00Z");
    let report = rig
        .poller("min_severity = 5.5")
        .poll_once(now)
        .await
        .unwrap();
    let want = rig
        .fixtures
        .iter()
        .filter(|(_, d)| !archived(d) && d["severity"].as_f64().unwrap() >= 5.5)
        .count();
    assert!(want > 0 && want < 38);
    assert_eq!(report.new, want);
    assert_eq!(rig.store.finding_count(), want as u64);
    let c = &rig.standin.requests_to("/findings")[0].body["findingCriteria"]["criterion"];
    assert_eq!(c["severity"]["greaterThanOrEqual"], 5);
}

#[tokio::test]
async fn a_document_the_sdk_cannot_read_is_quarantined_by_id_once_and_blocks_nothing() {
    let rig = Rig::new().await;
    // The hand-edited fixture as published (RFC 3339 strings where the API sends epoch
    // seconds): the SDK rejects the whole GetFindings answer that holds it.
    let mut raw = rig
        .doc("PrivilegeEscalation_Runtime_DockerSocketAccessed.json")
        .clone();
    raw["id"] = "unreadable00000000000000000000000".into();
    rig.standin.add_raw(raw);
    let mut poller = rig.poller("min_severity = 0.0");
    let now = t("2025-06-01T12:00:00Z");
    let report = poller.poll_once(now).await.unwrap();
    assert_eq!((report.new, report.quarantined), (38, 1));
    let q = rig.store.quarantined(10).unwrap();
    assert_eq!(q[0].source, "guardduty:us-east-2");
    assert!(
        q[0].raw.contains("unreadable00000000000000000000000"),
        "{}",
        q[0].raw
    );
    assert!(
        q[0].error.contains("failed to parse JSON"),
        "{}",
        q[0].error
    );
    // The same poller does not quarantine it again on the next poll.
    let again = poller
        .poll_once(now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(again.quarantined, 0);
    assert_eq!(events(&rig.store, EventKind::FindingRejected, None), 1);
}
