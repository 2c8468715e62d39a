//! The store's conformance suite: concurrent votes, reopening, finding upserts, audit queries
//! and request transitions run on both engines, sled on disk and DynamoDB on moto
//! ([`on_both_backends`]); tampering and the process lock are sled's alone.

use crate::support::finding_builder::FindingBuilder;
use crate::support::store_backend::Backend;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hanko::approval::{
    Approvals, Decision, Outcome, Policy, Refusal, Request, RequestKind, RequestState, VoteInput,
    Voter,
};
use hanko::audit::{Actor, AuditQuery, ChainError, EventKind, NewEvent};
use hanko::config::DEFAULT_QUARANTINE_MAX;
use hanko::execution::{StepOutcome, StepPhase, StepRecord};
use hanko::finding::Finding;
use hanko::plan::{Action, Plan, Step, Target};
use hanko::store::{CardKey, CardLocation, Store, StoreError, Upsert, VerifyError};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap()
}

fn finding(id: &str, count: u64, updated_at: DateTime<Utc>, archived: bool) -> Finding {
    FindingBuilder::new(id)
        .title("API called from a known malicious IP")
        .description("test")
        .at(t0())
        .updated_at(updated_at)
        .last_seen(updated_at)
        .count(count)
        .archived(archived)
        .build()
}

fn plan(finding_id: &str) -> Plan {
    Plan::new(
        finding_id.to_string(),
        "123456789012".into(),
        "us-east-1".into(),
        false,
        vec![Step::new(
            Action::DeactivateAccessKey,
            Target::AccessKey {
                user_name: "alice".into(),
                access_key_id: "AKIAEXAMPLE".into(),
            },
            serde_json::json!({"UserName": "alice", "AccessKeyId": "AKIAEXAMPLE", "Status": "Inactive"}),
        )],
        Vec::new(),
    )
}

fn request(finding_id: &str, now: DateTime<Utc>) -> Request {
    Request::new(
        RequestKind::Contain,
        plan(finding_id),
        Actor::System,
        now,
        Duration::hours(4),
    )
}

/// Users `u0`..`u9` may approve; `contain` plans need `needed` approvals.
fn policy(needed: u32) -> Policy {
    Policy {
        approver_users: (0..10).map(|i| format!("u{i}")).collect::<BTreeSet<_>>(),
        approvals: Approvals {
            evidence: 1,
            contain: needed,
            disrupt: 2,
        },
        ..Policy::default()
    }
}

fn discord(i: usize) -> Actor {
    Actor::Discord {
        id: format!("u{i}"),
        name: format!("user{i}"),
    }
}

fn approve(i: usize, req: &Request) -> VoteInput {
    VoteInput {
        voter: Voter {
            actor: discord(i),
            roles: Vec::new(),
        },
        decision: Decision::Approve,
        plan_hash: req.plan.plan_hash.clone(),
    }
}

fn count_kind(store: &Store, kind: EventKind) -> usize {
    store
        .query_audit(&AuditQuery {
            kind: Some(kind),
            ..Default::default()
        })
        .unwrap()
        .len()
}

/// Runs `voters` threads voting Approve at the same moment on one request.
fn race(store: &Store, needed: u32, voters: usize) -> (Request, Vec<Result<Outcome, Refusal>>) {
    race_on(std::slice::from_ref(store), policy(needed), voters)
}

/// [`race`] under `policy`, voter `i` voting through `stores[i % stores.len()]` (several
/// replicas' stores on one table).
fn race_on(
    stores: &[Store],
    policy: Policy,
    voters: usize,
) -> (Request, Vec<Result<Outcome, Refusal>>) {
    let req = request("f-race", t0());
    stores[0].create_request(&req, t0()).unwrap();
    let barrier = Arc::new(Barrier::new(voters));
    let policy = Arc::new(policy);
    let handles: Vec<_> = (0..voters)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let policy = policy.clone();
            let vote = approve(i, &req);
            let id = req.id;
            std::thread::spawn(move || {
                barrier.wait();
                store
                    .vote(&policy, id, &vote, t0() + Duration::minutes(1))
                    .unwrap()
                    .map(|d| d.outcome)
            })
        })
        .collect();
    let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (req, results)
}

fn concurrent_votes_on_a_one_approval_request_approve_exactly_once(backend: Backend) {
    for round in 0..backend.rounds(50) {
        let store = backend.fresh();
        let (req, results) = race(&store, 1, 2);
        let approved = results
            .iter()
            .filter(|r| matches!(r, Ok(Outcome::Approved { approvals: 1 })))
            .count();
        let refused = results
            .iter()
            .filter(|r| **r == Err(Refusal::NotPending(RequestState::Approved)))
            .count();
        assert_eq!((approved, refused), (1, 1), "round {round}: {results:?}");
        assert_eq!(
            count_kind(&store, EventKind::ApprovalGranted),
            1,
            "round {round}"
        );
        assert_eq!(
            count_kind(&store, EventKind::VoteRefused),
            1,
            "round {round}"
        );
        let stored = store.get_request(req.id).unwrap().unwrap();
        assert_eq!(stored.state, RequestState::Approved);
        assert_eq!(stored.votes.len(), 1);
        assert_eq!(store.verify_audit().unwrap(), 3); // proposed, granted, refused
    }
}

fn eight_concurrent_votes_on_a_two_approval_request_grant_once(backend: Backend) {
    for round in 0..backend.rounds(10) {
        let store = backend.fresh();
        let (req, results) = race(&store, 2, 8);
        let approved = results
            .iter()
            .filter(|r| matches!(r, Ok(Outcome::Approved { approvals: 2 })))
            .count();
        let recorded = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Ok(Outcome::Recorded {
                        approvals: 1,
                        needed: 2
                    })
                )
            })
            .count();
        let refused = results
            .iter()
            .filter(|r| **r == Err(Refusal::NotPending(RequestState::Approved)))
            .count();
        assert_eq!(
            (recorded, approved, refused),
            (1, 1, 6),
            "round {round}: {results:?}"
        );
        assert_eq!(count_kind(&store, EventKind::ApprovalGranted), 1);
        assert_eq!(count_kind(&store, EventKind::VoteRecorded), 1);
        assert_eq!(count_kind(&store, EventKind::VoteRefused), 6);
        let stored = store.get_request(req.id).unwrap().unwrap();
        assert_eq!(stored.approvers().len(), 2);
        assert_eq!(
            store.requests_in_states(&[RequestState::Approved]).unwrap(),
            vec![stored]
        );
        assert!(store
            .requests_in_states(&[RequestState::Pending])
            .unwrap()
            .is_empty());
    }
}

fn a_refused_vote_is_audited_with_its_code_and_voter(backend: Backend) {
    let store = backend.fresh();
    let req = request("f-1", t0());
    store.create_request(&req, t0()).unwrap();
    let mut vote = approve(1, &req);
    vote.plan_hash = "stale".into();
    let answer = store.vote(&policy(1), req.id, &vote, t0()).unwrap();
    assert_eq!(answer.unwrap_err(), Refusal::StalePlan);

    let refused = store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::VoteRefused),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].actor, discord(1));
    assert_eq!(refused[0].request_id, Some(req.id));
    assert_eq!(refused[0].finding_id.as_deref(), Some("f-1"));
    assert_eq!(refused[0].detail["code"], "stale_plan");
    assert_eq!(
        store.get_request(req.id).unwrap().unwrap().state,
        RequestState::Pending
    );

    let missing = store.vote(&policy(1), Uuid::new_v4(), &approve(1, &req), t0());
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

fn a_rejection_is_recorded_with_its_reason(backend: Backend) {
    let store = backend.fresh();
    let req = request("f-1", t0());
    store.create_request(&req, t0()).unwrap();
    let vote = VoteInput {
        decision: Decision::Reject {
            reason: "false positive: pentest".into(),
        },
        ..approve(2, &req)
    };
    let decided = store
        .vote(&policy(1), req.id, &vote, t0())
        .unwrap()
        .unwrap();
    assert_eq!(decided.outcome, Outcome::Rejected);
    let events = store
        .query_audit(&AuditQuery {
            request_id: Some(req.id),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(events[0].kind, EventKind::RequestRejected);
    assert_eq!(events[0].detail["reason"], "false positive: pentest");
    assert_eq!(
        store.requests_in_states(&[RequestState::Rejected]).unwrap()[0].id,
        req.id
    );
}

fn step_record(index: usize, phase: StepPhase) -> StepRecord {
    StepRecord {
        index,
        action: Action::DeactivateAccessKey,
        target: Target::AccessKey {
            user_name: "alice".into(),
            access_key_id: "AKIAEXAMPLE".into(),
        },
        phase,
        captured: serde_json::json!({"Status": "Active"}),
        result: serde_json::Value::Null,
        outcome: (phase == StepPhase::Done).then_some(StepOutcome::Applied),
        error_code: None,
        message: None,
        started_at: t0(),
        finished_at: None,
    }
}

fn everything_survives_a_reopen_and_the_chain_still_verifies(backend: Backend) {
    let place = backend.place();
    let req = request("f-1", t0());
    {
        let store = place.open();
        assert_eq!(
            store
                .upsert_finding(&finding("f-1", 1, t0(), false), &Actor::System, t0())
                .unwrap(),
            Upsert::New
        );
        assert_eq!(
            store
                .upsert_finding(&finding("f-2", 1, t0(), false), &Actor::System, t0())
                .unwrap(),
            Upsert::New
        );
        store.create_request(&req, t0()).unwrap();
        store
            .vote(&policy(1), req.id, &approve(3, &req), t0())
            .unwrap()
            .unwrap();
        store
            .transition(
                req.id,
                RequestState::Approved,
                RequestState::Executing,
                NewEvent::new(t0(), Actor::System, EventKind::ExecutionStarted),
            )
            .unwrap();
        store
            .put_step_record(req.id, &step_record(0, StepPhase::Captured), None)
            .unwrap();
        store
            .put_step_record(
                req.id,
                &step_record(0, StepPhase::Done),
                Some(NewEvent::new(t0(), Actor::System, EventKind::StepApplied)),
            )
            .unwrap();
        store.put_cursor("guardduty:us-east-1", "token-42").unwrap();
        store
            .put_card_location(&CardKey::Finding("f-1".into()), CardLocation::Message(42))
            .unwrap();
        store
            .quarantine(
                "sqs",
                "{not json",
                "not JSON: EOF",
                t0(),
                DEFAULT_QUARANTINE_MAX,
            )
            .unwrap();
        assert_eq!(store.audit_len(), 7);
    }

    let store = place.open();
    assert_eq!(store.verify_audit().unwrap(), 7);
    assert_eq!(store.audit_len(), 7);
    assert_eq!(store.finding_count(), 2);
    assert_eq!(store.get_finding("f-1").unwrap().unwrap().finding.count, 1);
    let stored = store.get_request(req.id).unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Executing);
    assert_eq!(stored.approvers(), vec![&discord(3)]);
    assert_eq!(
        store.requests_for_finding("f-1").unwrap(),
        vec![stored.clone()]
    );
    assert_eq!(
        store
            .requests_in_states(&[RequestState::Executing])
            .unwrap(),
        vec![stored]
    );
    let steps = store.step_records(req.id).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].phase, StepPhase::Done);
    assert_eq!(
        store.get_cursor("guardduty:us-east-1").unwrap().as_deref(),
        Some("token-42")
    );
    assert_eq!(
        store
            .card_location(&CardKey::Finding("f-1".into()))
            .unwrap(),
        Some(CardLocation::Message(42))
    );
    assert_eq!(
        store
            .card_location(&CardKey::Finding("absent".into()))
            .unwrap(),
        None
    );
    let q = store.quarantined(10).unwrap();
    assert_eq!((q.len(), q[0].id, q[0].raw.as_str()), (1, 1, "{not json"));
    let kinds: Vec<EventKind> = store.audit_events().map(|e| e.unwrap().kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::FindingIngested,
            EventKind::FindingIngested,
            EventKind::RequestProposed,
            EventKind::ApprovalGranted,
            EventKind::ExecutionStarted,
            EventKind::StepApplied,
            EventKind::FindingRejected,
        ]
    );

    // Appending after a reopen continues the same chain.
    store
        .append_audit(NewEvent::new(
            t0(),
            Actor::System,
            EventKind::ExecutionPaused,
        ))
        .unwrap();
    assert_eq!(store.verify_audit().unwrap(), 8);
}

/// Writes `n` events through a store in `dir`, then drops it.
fn write_events(dir: &Path, n: u64) {
    let store = Store::open(dir).unwrap();
    for i in 0..n {
        store
            .append_audit(
                NewEvent::new(
                    t0() + Duration::seconds(i as i64),
                    discord(1),
                    EventKind::CommandInvoked,
                )
                .detail(serde_json::json!({"command": "status", "i": i})),
            )
            .unwrap();
    }
    assert_eq!(store.verify_audit().unwrap(), n);
}

/// Opens `dir` with sled once the store written before has let go of it: sled's flusher
/// thread can hold the file lock for a moment after the last handle is dropped.
fn open_released(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("store still locked, retrying: {e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("the store in {} stayed locked for 10 s: {e}", dir.display()),
        }
    }
}

/// Edits the `audit` tree directly with sled, as an attacker with the files would.
fn tamper(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    let db = open_released(dir);
    let audit = db.open_tree("audit").unwrap();
    f(&audit);
    db.flush().unwrap();
}

#[test]
fn an_edited_event_fails_verification_naming_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 5);
    tamper(dir.path(), |audit| {
        let key = 3u64.to_be_bytes();
        let mut event: serde_json::Value =
            serde_json::from_slice(&audit.get(key).unwrap().unwrap()).unwrap();
        event["detail"]["command"] = "pause".into();
        audit
            .insert(key, serde_json::to_vec(&event).unwrap())
            .unwrap();
    });
    let store = Store::open(dir.path()).unwrap();
    let err = store.verify_audit().unwrap_err();
    assert!(
        matches!(err, VerifyError::Chain(ChainError::HashMismatch { seq: 3 })),
        "{err:?}"
    );
    assert_eq!(err.first_bad_seq(), Some(3));
    assert!(err.to_string().contains("audit event 3"), "{err}");
}

/// Issue 11, item 4a: a finding whose severity is 1.6997106113535186 made `audit verify`
/// report "its hash does not match its contents".
fn issue_11_a_float_severity_finding_verifies_after_a_reopen(backend: Backend) {
    let place = backend.place();
    {
        let store = place.open();
        for (i, severity) in [1.6997106113535186, 0.1 + 0.2, 7.300000000000001]
            .into_iter()
            .enumerate()
        {
            let mut f = finding(&format!("float-{i}"), 1, t0(), false);
            f.severity = severity;
            store.upsert_finding(&f, &Actor::System, t0()).unwrap();
            store
                .append_audit(
                    NewEvent::new(t0(), Actor::System, EventKind::CommandInvoked)
                        .detail(serde_json::json!({"severity": severity, "ratio": severity / 3.0})),
                )
                .unwrap();
        }
        store.flush().unwrap();
    }
    let store = place.open();
    assert_eq!(store.verify_audit().unwrap(), 6);
    // What is read back is what was written, to the last bit.
    let stored = store.get_finding("float-0").unwrap().unwrap();
    assert_eq!(
        stored.finding.severity.to_bits(),
        1.6997106113535186f64.to_bits()
    );
}

/// A store written before events were stored as their canonical records (the struct's own
/// JSON, `seq` first) still verifies, floats included.
#[test]
fn a_store_written_in_the_older_event_format_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for severity in [1.6997106113535186, 2.0, 0.1 + 0.2] {
            store
                .append_audit(
                    NewEvent::new(t0(), Actor::System, EventKind::FindingIngested)
                        .finding("legacy")
                        .detail(serde_json::json!({"severity": severity})),
                )
                .unwrap();
        }
    }
    tamper(dir.path(), |audit| {
        for item in audit.iter() {
            let (key, value) = item.unwrap();
            let event: hanko::audit::AuditEvent = serde_json::from_slice(&value).unwrap();
            let old_format = serde_json::to_vec(&event).unwrap();
            assert!(old_format.starts_with(b"{\"seq\":"));
            assert_ne!(old_format, value.to_vec(), "the record format differs");
            audit.insert(key, old_format).unwrap();
        }
    });
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.verify_audit().unwrap(), 3);
}

fn a_flag_and_its_event_are_written_together(backend: Backend) {
    let store = backend.fresh();
    let event = store
        .set_paused_audited(
            true,
            NewEvent::new(t0(), discord(1), EventKind::ExecutionPaused)
                .detail(serde_json::json!({"reason": "drill"})),
        )
        .unwrap();
    assert!(store.paused().unwrap());
    assert_eq!(event.seq, 1);
    assert_eq!(count_kind(&store, EventKind::ExecutionPaused), 1);
    assert_eq!(store.audit_head().unwrap(), (1, event.hash.clone()));
    assert_eq!(store.audit_event(1).unwrap(), Some(event));
    assert_eq!(store.audit_event(2).unwrap(), None);
}

#[test]
fn a_deleted_event_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 5);
    tamper(dir.path(), |audit| {
        audit.remove(2u64.to_be_bytes()).unwrap();
    });
    let err = Store::open(dir.path()).unwrap().verify_audit().unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Chain(ChainError::Gap {
                seq: 3,
                expected: 2
            })
        ),
        "{err:?}"
    );
}

#[test]
fn a_deleted_last_event_is_caught_by_the_head() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 5);
    tamper(dir.path(), |audit| {
        audit.remove(5u64.to_be_bytes()).unwrap();
    });
    let err = Store::open(dir.path()).unwrap().verify_audit().unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::HeadMismatch {
                head_seq: 5,
                last_seq: 4
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.first_bad_seq(), Some(5));
}

#[test]
fn an_undecodable_event_names_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 3);
    tamper(dir.path(), |audit| {
        audit.insert(2u64.to_be_bytes(), &b"{garbage"[..]).unwrap();
    });
    let store = Store::open(dir.path()).unwrap();
    let err = store.verify_audit().unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Chain(ChainError::Undecodable { seq: 2, .. })
        ),
        "{err:?}"
    );
    // Reading it elsewhere is a typed error naming the key, not a panic.
    let all: Result<Vec<_>, _> = store.audit_events().collect();
    match all {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "audit/2"),
        other => panic!("expected Corrupt for audit/2, got {other:?}"),
    }
}

const LOCK_HOLDER_ENV: &str = "HANKO_TEST_HOLD_STORE";
/// What the child prints once it holds the store (after the harness's `test NAME ... `).
const LOCK_HELD_MARKER: &str = "hanko-store-lock-held";

/// Not a test on its own: when re-invoked with `HANKO_TEST_HOLD_STORE=<dir>`, opens the store
/// there, prints [`LOCK_HELD_MARKER`], and holds it until stdin closes.
#[test]
fn lock_holder_child() {
    let Ok(dir) = std::env::var(LOCK_HOLDER_ENV) else {
        return;
    };
    let _store = Store::open(Path::new(&dir)).unwrap();
    println!("{LOCK_HELD_MARKER}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn a_second_open_in_this_process_is_locked_with_one_clear_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Locked { path } if path == dir.path()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the store at {} is in use by another hanko process (sled allows one process at a time); stop it or use its chat commands",
            dir.path().display()
        )
    );
}

#[test]
fn a_store_held_by_another_process_is_locked() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            // The test's full name in this binary (`tests/core`: the file is module `store`).
            "store::lock_holder_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_HOLDER_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the child to say it holds the store (the test harness prints its own lines).
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains(LOCK_HELD_MARKER) {
                let _ = tx.send(());
            }
            line.clear();
        }
    });
    if let Err(e) = rx.recv_timeout(StdDuration::from_secs(30)) {
        let _ = child.kill();
        panic!("the child process did not report holding the store within 30 s: {e}");
    }

    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");

    drop(child.stdin.take()); // the child reads EOF and exits, releasing the lock
    assert!(child.wait().unwrap().success());
    Store::open(dir.path()).unwrap();
}

fn upsert_dedupes_and_never_overwrites_newer_with_older(backend: Backend) {
    let store = backend.fresh();
    let sys = Actor::System;
    let t1 = t0() + Duration::hours(1);
    let t2 = t0() + Duration::hours(2);

    assert_eq!(
        store
            .upsert_finding(&finding("f", 1, t1, false), &sys, t0())
            .unwrap(),
        Upsert::New
    );
    assert_eq!(
        store
            .upsert_finding(&finding("f", 1, t1, false), &sys, t1)
            .unwrap(),
        Upsert::Unchanged
    );
    assert_eq!(
        store
            .upsert_finding(&finding("f", 3, t1, false), &sys, t1)
            .unwrap(),
        Upsert::Updated {
            previous_count: 1,
            previous_updated_at: Some(t1),
            became_archived: false
        }
    );
    // An older document (earlier updated_at), even with a higher count, is stale.
    assert_eq!(
        store
            .upsert_finding(&finding("f", 9, t0(), true), &sys, t2)
            .unwrap(),
        Upsert::Unchanged
    );
    assert_eq!(
        store
            .upsert_finding(&finding("f", 3, t1, true), &sys, t2)
            .unwrap(),
        Upsert::Updated {
            previous_count: 3,
            previous_updated_at: Some(t1),
            became_archived: true
        }
    );
    let stored = store.get_finding("f").unwrap().unwrap();
    assert_eq!((stored.finding.count, stored.finding.archived), (3, true));
    assert_eq!(
        (stored.first_ingested_at, stored.last_ingested_at),
        (t0(), t2)
    );
    assert_eq!(store.finding_count(), 1);
    assert_eq!(count_kind(&store, EventKind::FindingIngested), 1);
    assert_eq!(count_kind(&store, EventKind::FindingUpdated), 2);
    assert_eq!(store.audit_len(), 3);
    assert_eq!(store.get_finding("absent").unwrap(), None);
}

fn recent_findings_are_by_last_ingestion_newest_first(backend: Backend) {
    let store = backend.fresh();
    let sys = Actor::System;
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        store
            .upsert_finding(
                &finding(id, 1, t0(), false),
                &sys,
                t0() + Duration::minutes(i as i64),
            )
            .unwrap();
    }
    // "a" is updated last, so it moves to the front and is listed once.
    store
        .upsert_finding(
            &finding("a", 2, t0(), false),
            &sys,
            t0() + Duration::minutes(10),
        )
        .unwrap();
    let ids: Vec<String> = store
        .recent_findings(10)
        .unwrap()
        .into_iter()
        .map(|f| f.finding.id)
        .collect();
    assert_eq!(ids, ["a", "c", "b"]);
    assert_eq!(store.recent_findings(2).unwrap().len(), 2);
    assert_eq!(store.finding_count(), 3);
}

/// A store with a known mix of events: for i in 0..40, finding `f{i % 4}`, actor `u{i % 3}`
/// (Discord, named `user{i % 3}`), kind VoteRecorded for even i and CommandInvoked for odd,
/// at t0 + i minutes; every fifth event is also about request `req`.
fn query_fixture(backend: Backend) -> (Store, Uuid) {
    let store = backend.fresh();
    let req = Uuid::new_v4();
    for i in 0..40usize {
        let kind = if i % 2 == 0 {
            EventKind::VoteRecorded
        } else {
            EventKind::CommandInvoked
        };
        let mut ev = NewEvent::new(t0() + Duration::minutes(i as i64), discord(i % 3), kind)
            .finding(format!("f{}", i % 4))
            .detail(serde_json::json!({ "i": i }));
        if i % 5 == 0 {
            ev = ev.request(req);
        }
        store.append_audit(ev).unwrap();
    }
    (store, req)
}

fn is(store: &Store, q: AuditQuery) -> Vec<u64> {
    store
        .query_audit(&q)
        .unwrap()
        .into_iter()
        .map(|e| e.detail["i"].as_u64().unwrap())
        .collect()
}

fn audit_queries_filter_newest_first(backend: Backend) {
    let (store, req) = query_fixture(backend);
    let all = || AuditQuery::default();

    assert_eq!(
        is(
            &store,
            AuditQuery {
                finding_id: Some("f1".into()),
                ..all()
            }
        ),
        [37, 33, 29, 25, 21, 17, 13, 9, 5, 1]
    );
    assert_eq!(
        is(
            &store,
            AuditQuery {
                request_id: Some(req),
                ..all()
            }
        ),
        [35, 30, 25, 20, 15, 10, 5, 0]
    );
    assert_eq!(
        is(
            &store,
            AuditQuery {
                actor: Some("discord:u2".into()),
                limit: Some(4),
                ..all()
            }
        ),
        [38, 35, 32, 29]
    );
    // By display name (case-insensitive) and by bare Discord id, through the actor catalog.
    assert_eq!(
        is(
            &store,
            AuditQuery {
                actor: Some("USER2".into()),
                limit: Some(4),
                ..all()
            }
        ),
        [38, 35, 32, 29]
    );
    assert_eq!(
        is(
            &store,
            AuditQuery {
                actor: Some("u2".into()),
                limit: Some(2),
                ..all()
            }
        ),
        [38, 35]
    );
    assert!(is(
        &store,
        AuditQuery {
            actor: Some("nobody".into()),
            ..all()
        }
    )
    .is_empty());
    assert_eq!(
        is(
            &store,
            AuditQuery {
                kind: Some(EventKind::CommandInvoked),
                limit: Some(3),
                ..all()
            }
        ),
        [39, 37, 35]
    );
    assert!(is(
        &store,
        AuditQuery {
            kind: Some(EventKind::ApprovalGranted),
            ..all()
        }
    )
    .is_empty());
    assert_eq!(
        is(
            &store,
            AuditQuery {
                since: Some(t0() + Duration::minutes(36)),
                until: Some(t0() + Duration::minutes(39)),
                ..all()
            }
        ),
        [38, 37, 36]
    );
    assert_eq!(
        is(
            &store,
            AuditQuery {
                limit: Some(2),
                ..all()
            }
        ),
        [39, 38]
    );
    assert!(is(
        &store,
        AuditQuery {
            limit: Some(0),
            ..all()
        }
    )
    .is_empty());
    assert_eq!(store.query_audit(&all()).unwrap().len(), 40);

    // Combined: finding f2 (i = 2, 6, 10, ...) and actor u0 (i = 0, 3, 6, ...) and request
    // (i % 5 == 0): i % 4 == 2, i % 3 == 0, i % 5 == 0 -> 30.
    assert_eq!(
        is(
            &store,
            AuditQuery {
                finding_id: Some("f2".into()),
                actor: Some("user0".into()),
                request_id: Some(req),
                ..all()
            }
        ),
        [30]
    );
    // finding f0 (i % 4 == 0) and kind VoteRecorded (even) and since 20 minutes.
    assert_eq!(
        is(
            &store,
            AuditQuery {
                finding_id: Some("f0".into()),
                kind: Some(EventKind::VoteRecorded),
                since: Some(t0() + Duration::minutes(20)),
                ..all()
            }
        ),
        [36, 32, 28, 24, 20]
    );
    // Actor and kind with no overlap: u1 (i % 3 == 1) is CommandInvoked at 1, 7, 13, ...
    assert_eq!(
        is(
            &store,
            AuditQuery {
                actor: Some("discord:u1".into()),
                kind: Some(EventKind::CommandInvoked),
                finding_id: Some("f3".into()),
                ..all()
            }
        ),
        [31, 19, 7]
    );
}

fn transition_is_a_compare_and_swap_on_the_state(backend: Backend) {
    let store = backend.fresh();
    let a = request("f-1", t0());
    let b = request("f-1", t0() + Duration::seconds(1));
    let c = request("f-2", t0() + Duration::seconds(2));
    for r in [&a, &b, &c] {
        store.create_request(r, r.created_at).unwrap();
    }
    let dup = store.create_request(&a, t0());
    assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");

    let ev = || NewEvent::new(t0(), Actor::System, EventKind::RequestExpired);
    let expired = store
        .transition(a.id, RequestState::Pending, RequestState::Expired, ev())
        .unwrap();
    assert_eq!(expired.state, RequestState::Expired);
    assert_eq!(expired.decided_at, Some(t0()));

    // The second attempt finds it already Expired.
    match store.transition(a.id, RequestState::Pending, RequestState::Superseded, ev()) {
        Err(StoreError::Conflict {
            request_id,
            expected,
            found,
        }) => {
            assert_eq!(request_id, a.id);
            assert_eq!(expected, RequestState::Pending);
            assert_eq!(found, RequestState::Expired);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let invalid = store.transition(b.id, RequestState::Pending, RequestState::Succeeded, ev());
    assert!(
        matches!(invalid, Err(StoreError::InvalidTransition { .. })),
        "{invalid:?}"
    );
    let missing = store.transition(
        Uuid::new_v4(),
        RequestState::Pending,
        RequestState::Expired,
        ev(),
    );
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    // The event carries the request and finding ids even though the caller left them out.
    let last = store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::RequestExpired),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].request_id, last[0].finding_id.as_deref()),
        (Some(a.id), Some("f-1"))
    );

    let ids = |states: &[RequestState]| -> Vec<Uuid> {
        store
            .requests_in_states(states)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(&[RequestState::Pending]), [b.id, c.id]);
    assert_eq!(ids(&[RequestState::Expired]), [a.id]);
    assert_eq!(
        ids(&[RequestState::Expired, RequestState::Pending]),
        [a.id, b.id, c.id]
    );

    let ids_for = |f: &str| -> Vec<Uuid> {
        store
            .requests_for_finding(f)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids_for("f-1"), [a.id, b.id]);
    assert_eq!(ids_for("f-2"), [c.id]);
    assert!(ids_for("f-").is_empty());
}

fn update_request_is_a_compare_and_swap_too(backend: Backend) {
    let store = backend.fresh();
    let req = request("f-1", t0());
    store.create_request(&req, t0()).unwrap();

    let mut edited = req.clone();
    edited.override_evidence = true;
    store
        .update_request(&edited, RequestState::Pending, None)
        .unwrap();
    assert!(
        store
            .get_request(req.id)
            .unwrap()
            .unwrap()
            .override_evidence
    );

    let mut superseded = edited.clone();
    superseded.state = RequestState::Superseded;
    store
        .update_request(
            &superseded,
            RequestState::Pending,
            Some(NewEvent::new(
                t0(),
                Actor::System,
                EventKind::RequestSuperseded,
            )),
        )
        .unwrap();
    assert_eq!(
        store
            .requests_in_states(&[RequestState::Superseded])
            .unwrap(),
        vec![superseded.clone()]
    );
    assert!(store
        .requests_in_states(&[RequestState::Pending])
        .unwrap()
        .is_empty());

    // Stale expectation: it is Superseded now.
    let again = store.update_request(&superseded, RequestState::Pending, None);
    assert!(
        matches!(
            again,
            Err(StoreError::Conflict {
                found: RequestState::Superseded,
                ..
            })
        ),
        "{again:?}"
    );
    let mut revived = superseded.clone();
    revived.state = RequestState::Pending;
    let invalid = store.update_request(&revived, RequestState::Superseded, None);
    assert!(
        matches!(invalid, Err(StoreError::InvalidTransition { .. })),
        "{invalid:?}"
    );
    assert_eq!(store.verify_audit().unwrap(), 2);
}

fn step_records_are_ordered_by_index_and_need_a_request(backend: Backend) {
    let store = backend.fresh();
    let req = request("f-1", t0());
    store.create_request(&req, t0()).unwrap();
    for index in [2, 0, 1, 10] {
        store
            .put_step_record(req.id, &step_record(index, StepPhase::Captured), None)
            .unwrap();
    }
    let indexes: Vec<usize> = store
        .step_records(req.id)
        .unwrap()
        .iter()
        .map(|r| r.index)
        .collect();
    assert_eq!(indexes, [0, 1, 2, 10]);
    assert!(store.step_records(Uuid::new_v4()).unwrap().is_empty());
    let orphan = store.put_step_record(Uuid::new_v4(), &step_record(0, StepPhase::Captured), None);
    assert!(
        matches!(orphan, Err(StoreError::NotFound { .. })),
        "{orphan:?}"
    );
}

fn quarantine_keeps_inputs_newest_first_with_an_audit_event(backend: Backend) {
    let store = backend.fresh();
    assert_eq!(
        store
            .quarantine("sqs", "a", "not JSON", t0(), DEFAULT_QUARANTINE_MAX)
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .quarantine("sqs", "b", "missing $.id", t0(), DEFAULT_QUARANTINE_MAX)
            .unwrap(),
        2
    );
    let q = store.quarantined(10).unwrap();
    assert_eq!(
        q.iter().map(|q| q.raw.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(store.quarantined(1).unwrap()[0].error, "missing $.id");
    let events = store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::FindingRejected),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].detail["quarantine_id"], 2);
}

fn time_ranges_tolerate_events_appended_slightly_out_of_order(backend: Backend) {
    let store = backend.fresh();
    // Seq 3 is a minute older than seq 2 (another writer's clock lags).
    for minutes in [0, 10, 9, 20] {
        store
            .append_audit(NewEvent::new(
                t0() + Duration::minutes(minutes),
                Actor::System,
                EventKind::CommandInvoked,
            ))
            .unwrap();
    }
    let seqs = |q: AuditQuery| -> Vec<u64> {
        store
            .query_audit(&q)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    let mid = t0() + Duration::seconds(9 * 60 + 30);
    assert_eq!(
        seqs(AuditQuery {
            until: Some(mid),
            ..Default::default()
        }),
        [3, 1]
    );
    assert_eq!(
        seqs(AuditQuery {
            since: Some(mid),
            ..Default::default()
        }),
        [4, 2]
    );
    assert_eq!(
        seqs(AuditQuery {
            since: Some(t0() + Duration::minutes(5)),
            until: Some(t0() + Duration::minutes(15)),
            kind: Some(EventKind::CommandInvoked),
            ..Default::default()
        }),
        [3, 2]
    );
    assert!(seqs(AuditQuery {
        until: Some(t0()),
        ..Default::default()
    })
    .is_empty());
    assert_eq!(
        seqs(AuditQuery {
            until: Some(t0() + Duration::days(1)),
            ..Default::default()
        }),
        [4, 3, 2, 1]
    );
}

/// Approves `id` with `u0` under a one-approval policy.
fn approve_once(store: &Store, id: Uuid, hash: &str, at: DateTime<Utc>) {
    let vote = VoteInput {
        voter: Voter {
            actor: discord(0),
            roles: vec![],
        },
        decision: Decision::Approve,
        plan_hash: hash.to_string(),
    };
    let decided = store.vote(&policy(1), id, &vote, at).unwrap().unwrap();
    assert_eq!(decided.request.state, RequestState::Approved);
}

fn start_execution_checks_inside_the_transaction_and_a_refusal_closes_the_request(
    backend: Backend,
) {
    use hanko::approval::Closure;
    use hanko::store::{ExecutionStart, StartRefusal};
    let store = backend.fresh();
    store
        .upsert_finding(&finding("f-start", 1, t0(), false), &Actor::System, t0())
        .unwrap();
    let started_event = |at| NewEvent::new(at, Actor::System, EventKind::ExecutionStarted);

    // Accepted: Executing with its ExecutionStarted event; the check saw the stored finding.
    let go = request("f-start", t0());
    store.create_request(&go, t0()).unwrap();
    approve_once(&store, go.id, &go.plan.plan_hash, t0());
    let seen = std::cell::Cell::new(false);
    let started = store
        .start_execution(go.id, started_event(t0()), |req, f| {
            assert_eq!(req.state, RequestState::Approved);
            seen.set(f.is_some_and(|f| f.id == "f-start"));
            None
        })
        .unwrap();
    assert!(seen.get(), "the check is given the stored finding");
    assert!(
        matches!(started, ExecutionStart::Started(ref r) if r.state == RequestState::Executing)
    );
    // Not Approved any more: a second start is a conflict, and writes nothing.
    let len = store.audit_len();
    assert!(matches!(
        store.start_execution(go.id, started_event(t0()), |_, _| None),
        Err(StoreError::Conflict {
            found: RequestState::Executing,
            ..
        })
    ));
    assert_eq!(store.audit_len(), len);

    // Refused: closed as the refusal says, with its reason and its event, never Executing.
    let stale = request("f-start", t0());
    store.create_request(&stale, t0()).unwrap();
    approve_once(&store, stale.id, &stale.plan.plan_hash, t0());
    let later = t0() + Duration::hours(5);
    let refused = store
        .start_execution(stale.id, started_event(later), |req, _| {
            Some(StartRefusal {
                to: RequestState::Expired,
                closure: Closure {
                    at: later,
                    code: "approval_too_old".into(),
                    reason: "too old".into(),
                },
                event: NewEvent::new(later, Actor::System, EventKind::RequestExpired)
                    .detail(serde_json::json!({ "code": "approval_too_old", "of": req.id })),
            })
        })
        .unwrap();
    let ExecutionStart::Refused(closed) = refused else {
        panic!("the refusal must close the request")
    };
    assert_eq!(closed.state, RequestState::Expired);
    let stored = store.get_request(stale.id).unwrap().unwrap();
    assert_eq!(stored, closed);
    assert_eq!(stored.closure.as_ref().unwrap().code, "approval_too_old");
    let events = store
        .query_audit(&AuditQuery {
            request_id: Some(stale.id),
            ..AuditQuery::default()
        })
        .unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::RequestExpired), "{kinds:?}");
    assert!(!kinds.contains(&EventKind::ExecutionStarted), "{kinds:?}");
    assert!(store
        .requests_in_states(&[RequestState::Expired])
        .unwrap()
        .iter()
        .any(|r| r.id == stale.id));

    // A refusal to a state an Approved request cannot reach is refused whole.
    let odd = request("f-start", t0());
    store.create_request(&odd, t0()).unwrap();
    approve_once(&store, odd.id, &odd.plan.plan_hash, t0());
    assert!(matches!(
        store.start_execution(odd.id, started_event(t0()), |_, _| Some(StartRefusal {
            to: RequestState::Rejected,
            closure: Closure {
                at: t0(),
                code: "x".into(),
                reason: "x".into(),
            },
            event: NewEvent::new(t0(), Actor::System, EventKind::RequestRejected),
        })),
        Err(StoreError::InvalidTransition { .. })
    ));
    assert_eq!(
        store.get_request(odd.id).unwrap().unwrap().state,
        RequestState::Approved
    );
    assert!(store.verify_audit().is_ok());
}

fn expire_request_expires_only_a_due_pending_request(backend: Backend) {
    let store = backend.fresh();
    let req = request("f-expire", t0());
    store.create_request(&req, t0()).unwrap();
    let len = store.audit_len();
    // Not due: nothing written.
    assert_eq!(
        store
            .expire_request(req.id, req.expires_at - Duration::seconds(1))
            .unwrap(),
        None
    );
    assert_eq!(store.audit_len(), len);
    let expired = store
        .expire_request(req.id, req.expires_at)
        .unwrap()
        .expect("due at expires_at");
    assert_eq!(expired.state, RequestState::Expired);
    assert_eq!(store.audit_len(), len + 1);
    // Already expired: nothing more.
    assert_eq!(
        store
            .expire_request(req.id, req.expires_at + Duration::hours(1))
            .unwrap(),
        None
    );
    assert_eq!(store.audit_len(), len + 1);
    assert!(matches!(
        store.expire_request(Uuid::new_v4(), t0()),
        Err(StoreError::NotFound { .. })
    ));
}

/// Runs each named test (a `fn(Backend)`) once per engine: `on_sled::NAME` and
/// `on_dynamodb::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sled {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Sled)
            })*
        }
        mod on_dynamodb {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Dynamo)
            })*
        }
    };
}

on_both_backends!(
    concurrent_votes_on_a_one_approval_request_approve_exactly_once,
    eight_concurrent_votes_on_a_two_approval_request_grant_once,
    a_refused_vote_is_audited_with_its_code_and_voter,
    a_rejection_is_recorded_with_its_reason,
    everything_survives_a_reopen_and_the_chain_still_verifies,
    issue_11_a_float_severity_finding_verifies_after_a_reopen,
    a_flag_and_its_event_are_written_together,
    upsert_dedupes_and_never_overwrites_newer_with_older,
    recent_findings_are_by_last_ingestion_newest_first,
    audit_queries_filter_newest_first,
    transition_is_a_compare_and_swap_on_the_state,
    update_request_is_a_compare_and_swap_too,
    step_records_are_ordered_by_index_and_need_a_request,
    quarantine_keeps_inputs_newest_first_with_an_audit_event,
    time_ranges_tolerate_events_appended_slightly_out_of_order,
    start_execution_checks_inside_the_transaction_and_a_refusal_closes_the_request,
    expire_request_expires_only_a_due_pending_request,
);

// ---------------------------------------------------------------------------------------------
// DynamoDB: several replicas on one table

/// 50 votes at once on a request that needs 3 approvals, from 5 replicas (5 stores, each with
/// its own DynamoDB client and runtime, on one table): the quorum is met once, one Approved
/// transition, every vote either counted or refused and audited (none lost), and the chain
/// verifies. Through the serializing proxy: moto alone does not isolate transactions.
#[test]
fn fifty_concurrent_votes_from_five_replicas_approve_once_and_lose_none() {
    let proxy = crate::support::dynamo_proxy::Proxy::start(crate::support::moto::shared().port);
    let place = crate::support::store_backend::Place::dynamo_at(proxy.endpoint());
    let replicas: Vec<Store> = (0..5).map(|_| place.open()).collect();
    let policy = Policy {
        approver_users: (0..50).map(|i| format!("u{i}")).collect(),
        ..policy(3)
    };
    let (req, results) = race_on(&replicas, policy, 50);
    let granted = results
        .iter()
        .filter(|r| matches!(r, Ok(Outcome::Approved { .. })))
        .count();
    let recorded = results
        .iter()
        .filter(|r| matches!(r, Ok(Outcome::Recorded { .. })))
        .count();
    let refused = results
        .iter()
        .filter(|r| **r == Err(Refusal::NotPending(RequestState::Approved)))
        .count();
    assert_eq!((granted, recorded, refused), (1, 2, 47), "{results:?}");
    let store = place.open();
    let stored = store.get_request(req.id).unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Approved);
    assert_eq!(stored.votes.len(), 3, "the three counted votes, no more");
    assert_eq!(count_kind(&store, EventKind::ApprovalGranted), 1);
    assert_eq!(count_kind(&store, EventKind::VoteRecorded), 2);
    assert_eq!(count_kind(&store, EventKind::VoteRefused), 47);
    // Proposed + 2 recorded + granted + 47 refused, one chain.
    assert_eq!(store.verify_audit().unwrap(), 51);
    let conflicts: u64 = replicas.iter().map(Store::write_conflicts).sum();
    assert!(conflicts > 0, "50 votes at once met no conflict at all?");
}

/// DynamoDB cancels transactions that moto never does (another transaction holding an item):
/// with every other transaction cancelled as `TransactionConflict`, and then as
/// `ConditionalCheckFailed`, every operation still lands once, and the chain verifies; a
/// `ValidationError` is an error, not retried forever.
#[test]
fn injected_cancellations_are_retried_and_nothing_is_written_twice() {
    let proxy = crate::support::dynamo_proxy::Proxy::start(crate::support::moto::shared().port);
    let place = crate::support::store_backend::Place::dynamo_at(proxy.endpoint());
    let store = place.open();
    for (round, reason) in ["TransactionConflict", "ConditionalCheckFailed"]
        .into_iter()
        .enumerate()
    {
        proxy.cancel_every(2, reason);
        let req = request(&format!("f-inject-{round}"), t0());
        store.create_request(&req, t0()).unwrap();
        let policy = policy(2);
        let first = store
            .vote(
                &policy,
                req.id,
                &approve(1, &req),
                t0() + Duration::minutes(1),
            )
            .unwrap()
            .map(|d| d.outcome);
        assert_eq!(
            first,
            Ok(Outcome::Recorded {
                approvals: 1,
                needed: 2
            }),
            "{reason}"
        );
        let second = store
            .vote(
                &policy,
                req.id,
                &approve(2, &req),
                t0() + Duration::minutes(2),
            )
            .unwrap()
            .map(|d| d.outcome);
        assert_eq!(second, Ok(Outcome::Approved { approvals: 2 }), "{reason}");
        let stored = store.get_request(req.id).unwrap().unwrap();
        assert_eq!(stored.votes.len(), 2, "{reason}: no vote written twice");
    }
    let (transactions, cancelled) = proxy.counts();
    assert!(
        cancelled >= 3,
        "{transactions} transactions, {cancelled} cancelled"
    );
    assert!(store.write_conflicts() >= cancelled);
    // 2 x (proposed, recorded, granted).
    assert_eq!(store.verify_audit().unwrap(), 6);

    proxy.cancel_every(1, "ValidationError");
    let err = store
        .append_audit(NewEvent::new(
            t0(),
            Actor::System,
            EventKind::ExecutionPaused,
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("TransactionCanceledException"),
        "{err}"
    );
    proxy.cancel_every(0, "");
    assert_eq!(
        store.verify_audit().unwrap(),
        6,
        "the refused event is not in the log"
    );
}

/// A store in DynamoDB is the store: `Store::copy_into` (`hanko store migrate`) carries a
/// sled store's records byte for byte, and the chain verifies in the table.
#[test]
fn a_sled_store_copied_into_dynamodb_keeps_its_chain() {
    let sled = Backend::Sled.fresh();
    let req = request("f-migrate", t0());
    sled.create_request(&req, t0()).unwrap();
    sled.upsert_finding(&finding("f-migrate", 1, t0(), false), &Actor::System, t0())
        .unwrap();
    sled.vote(
        &policy(1),
        req.id,
        &approve(1, &req),
        t0() + Duration::minutes(1),
    )
    .unwrap()
    .unwrap();
    let events = sled.verify_audit().unwrap();
    let dynamo = Backend::Dynamo.fresh();
    let copied = sled.copy_into(&dynamo).unwrap();
    assert!(copied > events, "{copied} records");
    assert_eq!(dynamo.verify_audit().unwrap(), events);
    assert_eq!(
        dynamo.get_request(req.id).unwrap().unwrap().state,
        RequestState::Approved
    );
    assert_eq!(dynamo.finding_count(), 1);
    // The destination is no longer empty: a second copy is refused.
    assert!(matches!(
        sled.copy_into(&dynamo),
        Err(StoreError::Duplicate { .. })
    ));
}

/// DynamoDB holds at most 400 KB in one item: a larger value is refused with an error that
/// says so, and nothing is written; sled takes it.
#[test]
fn a_value_too_large_for_a_dynamodb_item_is_a_clear_error() {
    let big = "x".repeat(500 * 1024);
    let store = Backend::Dynamo.fresh();
    let err = store
        .put_anchor_record(hanko::store::AnchorSlot::Pending, &big)
        .unwrap_err();
    assert!(err.to_string().contains("400 KB"), "{err}");
    assert_eq!(
        store
            .anchor_record(hanko::store::AnchorSlot::Pending)
            .unwrap(),
        None
    );
    let sled = Backend::Sled.fresh();
    sled.put_anchor_record(hanko::store::AnchorSlot::Pending, &big)
        .unwrap();
}

/// A run whose replica stopped renewing its execution lease is taken over by another replica
/// (the next attempt), and from then on the first run's step records are refused
/// (`LeaseLost`) while the new holder's are written: the attempt number fences the stale run.
/// Two stores on one table stand for the two replicas.
#[test]
fn a_lapsed_execution_lease_is_taken_over_and_fences_the_stale_run() {
    let place = Backend::Dynamo.place();
    let (a, b) = (place.open(), place.open());
    let req = request("f-lease", t0());
    a.create_request(&req, t0()).unwrap();
    approve_once(&a, req.id, &req.plan.plan_hash, t0() + Duration::minutes(1));
    let started = NewEvent::new(t0(), Actor::System, EventKind::ExecutionStarted);
    assert!(matches!(
        a.start_execution(req.id, started, |_, _| None).unwrap(),
        hanko::store::ExecutionStart::Started(_)
    ));
    let lease = hanko::store::execution_lease(req.id);
    let ttl = Duration::seconds(30);
    let now = t0() + Duration::minutes(2);
    let held = a.claim_lease(&lease, "replica-a", now, ttl, false).unwrap();
    let fence_a = ("replica-a".to_string(), held.held().unwrap().attempt);
    a.put_step_record_fenced(
        req.id,
        &step_record(0, StepPhase::Captured),
        None,
        Some(&fence_a),
    )
    .unwrap();
    // While a's lease holds, b cannot take the run.
    let busy = b
        .claim_lease(&lease, "replica-b", now + Duration::seconds(10), ttl, false)
        .unwrap();
    assert!(busy.held().is_none(), "{busy:?}");
    // a stops renewing; 31 s later b takes it over with the next attempt.
    let taken = b
        .claim_lease(&lease, "replica-b", now + Duration::seconds(31), ttl, false)
        .unwrap();
    let fence_b = ("replica-b".to_string(), taken.held().unwrap().attempt);
    assert_eq!(fence_b.1, fence_a.1 + 1);
    assert_eq!(b.lease_takeovers(), 1);
    // a wakes up: its record and its renewal are refused; b's record is written.
    let err = a
        .put_step_record_fenced(
            req.id,
            &step_record(0, StepPhase::Done),
            None,
            Some(&fence_a),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err:?}");
    assert!(!a
        .renew_lease(
            &lease,
            "replica-a",
            fence_a.1,
            now + Duration::seconds(32),
            ttl
        )
        .unwrap());
    b.put_step_record_fenced(
        req.id,
        &step_record(0, StepPhase::Done),
        None,
        Some(&fence_b),
    )
    .unwrap();
    let records = b.step_records(req.id).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].phase, StepPhase::Done);
    assert_eq!(records[0].outcome, Some(StepOutcome::Applied));
}
