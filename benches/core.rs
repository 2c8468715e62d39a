//! Core benchmarks: parse, plan, vote commit, and audit queries over a large log.
//!
//! `cargo bench --bench core` prints criterion's figures. The audit log size defaults to
//! 1,000,000 events (`HANKO_BENCH_EVENTS` overrides it for a quick run); building it takes a
//! while and is done once, in a temporary directory.

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::time::Instant;

use chrono::{Duration, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

use hanko::approval::{Decision, Policy, Request, RequestKind, VoteInput, Voter};
use hanko::audit::{Actor, AuditQuery, EventKind, NewEvent};
use hanko::finding;
use hanko::plan;
use hanko::playbooks::Playbooks;
use hanko::store::Store;

fn parse_and_plan(c: &mut Criterion) {
    let api = fixtures::read("api/Recon_IAMUser_MaliciousIPCaller.Custom__aws-samples2.json");
    let ec2 = fixtures::read("api/Backdoor_EC2_C_CActivity.B.json");
    let asff = fixtures::read(
        "asff/cloud-custodian_placebo_GetFindings_0__Recon_IAMUser_ResourcePermissions__AwsIamAccessKey.json",
    );
    c.bench_function("parse/guardduty_api_access_key", |b| {
        b.iter(|| finding::parse_document(black_box(&api)))
    });
    c.bench_function("parse/guardduty_api_instance", |b| {
        b.iter(|| finding::parse_document(black_box(&ec2)))
    });
    c.bench_function("parse/asff", |b| {
        b.iter(|| finding::parse_document(black_box(&asff)))
    });
    let books = Playbooks::defaults();
    let f = finding::parse_document(&ec2).expect("fixture parses")[0].clone();
    c.bench_function("plan/instance", |b| {
        b.iter(|| plan::plan(black_box(&f), &books))
    });
}

fn vote_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store opens");
    let text = fixtures::read("api/UnauthorizedAccess_IAMUser_TorIPCaller.json");
    let f = finding::parse_document(&text).expect("fixture parses")[0].clone();
    let p = plan::plan(&f, &Playbooks::defaults());
    let policy = Policy {
        approver_roles: ["r".to_string()].into(),
        ..Policy::default()
    };
    // One vote that approves: the transaction (request + state index + audit event + chain
    // head) and the flush that makes it durable before the click is acknowledged.
    c.bench_function("store/vote_commit_and_flush", |b| {
        b.iter_batched(
            || {
                let now = Utc::now();
                let r = Request::new(
                    RequestKind::Contain,
                    p.clone(),
                    Actor::System,
                    now,
                    Duration::hours(4),
                );
                store.create_request(&r, now).expect("request stored");
                r
            },
            |r| {
                let vote = VoteInput {
                    voter: Voter {
                        actor: Actor::Discord {
                            id: "1".into(),
                            name: "alice".into(),
                        },
                        roles: vec!["r".into()],
                    },
                    decision: Decision::Approve,
                    plan_hash: r.plan.plan_hash.clone(),
                };
                store
                    .vote(&policy, r.id, &vote, Utc::now())
                    .expect("store ok")
                    .expect("vote accepted")
            },
            BatchSize::SmallInput,
        )
    });
}

fn audit_queries(c: &mut Criterion) {
    let n: u64 = std::env::var("HANKO_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store opens");
    let start = Instant::now();
    let base = Utc::now() - Duration::days(30);
    // 1,000 actors, 10,000 findings, 20 kinds: a query by one actor matches ~n/1000 events.
    for i in 0..n {
        let actor = Actor::Discord {
            id: format!("{}", 100_000 + i % 1000),
            name: format!("user{}", i % 1000),
        };
        let kind = EventKind::ALL[(i % 20) as usize];
        let ev = NewEvent::new(base + Duration::seconds(i as i64), actor, kind)
            .finding(format!("finding-{}", i % 10_000))
            .detail(serde_json::json!({ "i": i }));
        store.append_audit(ev).expect("append");
    }
    store.flush().expect("flush");
    eprintln!(
        "built an audit log of {n} events in {:.1} s ({:.0} events/s)",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );

    let mut g = c.benchmark_group(format!("audit_query_{n}_events"));
    g.bench_function("by_actor_limit_50", |b| {
        b.iter(|| {
            let q = AuditQuery {
                actor: Some("discord:100500".into()),
                limit: Some(50),
                ..Default::default()
            };
            let r = store.query_audit(black_box(&q)).expect("query");
            assert_eq!(r.len(), 50);
        })
    });
    g.bench_function("by_finding_limit_50", |b| {
        b.iter(|| {
            let q = AuditQuery {
                finding_id: Some("finding-4242".into()),
                limit: Some(50),
                ..Default::default()
            };
            let r = store.query_audit(black_box(&q)).expect("query");
            assert_eq!(r.len(), 50.min((n / 10_000) as usize));
        })
    });
    g.bench_function("by_finding_all", |b| {
        b.iter(|| {
            let q = AuditQuery {
                finding_id: Some("finding-4242".into()),
                limit: None,
                ..Default::default()
            };
            store.query_audit(black_box(&q)).expect("query")
        })
    });
    g.bench_function("by_actor_and_kind_limit_20", |b| {
        b.iter(|| {
            let q = AuditQuery {
                actor: Some("discord:100500".into()),
                kind: Some(EventKind::ALL[0]),
                limit: Some(20),
                ..Default::default()
            };
            store.query_audit(black_box(&q)).expect("query")
        })
    });
    g.finish();
    let t = Instant::now();
    let verified = store.verify_audit().expect("chain intact");
    eprintln!(
        "verified the chain of {verified} events in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = parse_and_plan, vote_commit, audit_queries
}
criterion_main!(benches);
