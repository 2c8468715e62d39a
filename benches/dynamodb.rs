//! The store on DynamoDB (moto): what a burst of findings and an approval cost, in time and in
//! request units, with one replica and with two.
//!
//! `cargo bench --bench dynamodb` prints `md` lines (BENCHMARKS.md §11) and `summary` lines.
//! Environment: `HANKO_BENCH_DDB_BURST` (default 10,000 findings; 200 with
//! `HANKO_BENCH_DDB_MOTO=stock`, moto unchanged, whose transactions copy the whole table),
//! `HANKO_BENCH_DDB_APPROVALS` (default 50), `HANKO_BENCH_SMOKE=1` for a quick run. By default
//! moto runs with `benches/support/moto_transactions/sitecustomize.py`, which keeps
//! `TransactWriteItems`'s semantics but copies only the items a transaction names.
//!
//! What it measures: the store's own work, as ingest and the engine drive it (pages of 50
//! findings through `Store::upsert_findings_proposing`, each new finding proposing its real
//! plan; an approval's two votes, its start, its step records and its end), through the real
//! SDK client against moto's DynamoDB, through a proxy that serializes requests as DynamoDB
//! isolates transactions (tests/support/dynamo_proxy.rs). Two replicas are two stores (two
//! clients, two runtimes) on one table, each storing half the burst.
//!
//! Request units are counted by DynamoDB's on-demand rules from the item sizes
//! (`Store::request_units`): moto's `ConsumedCapacity` is a constant. The monthly cost uses
//! on-demand prices of us-east-1 (USD 0.625 per million write request units, 0.125 per
//! million read request units) and leaves storage out (a few MB).

#[path = "../tests/support/dynamo_proxy.rs"]
mod dynamo_proxy;
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/moto.rs"]
mod moto;

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use hanko::approval::{Decision, Policy, Request, RequestKind, VoteInput, Voter};
use hanko::audit::{Actor, EventKind, NewEvent};
use hanko::execution::{StepOutcome, StepPhase, StepRecord};
use hanko::finding::Finding;
use hanko::playbooks::Playbooks;
use hanko::store::dynamo::DynamoTarget;
use hanko::store::{ExecutionStart, Store};
use serde_json::json;

const WRITE_USD_PER_MILLION: f64 = 0.625;
const READ_USD_PER_MILLION: f64 = 0.125;

fn md(line: impl AsRef<str>) {
    println!("md\t11\t{}", line.as_ref());
}

fn summary(name: &str, value: impl AsRef<str>) {
    println!("summary\t11\t{name}\t{}", value.as_ref());
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` live findings from the API fixtures, each with its own id, in moto's account.
fn findings(n: usize) -> Vec<Finding> {
    let dir = fixtures::fixtures_dir().join("api");
    let mut docs = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names {
        let text = std::fs::read_to_string(&p).unwrap();
        if let Ok(found) = hanko::finding::parse_document(&text) {
            docs.extend(found.into_iter().filter(|f| !f.archived));
        }
    }
    (0..n)
        .map(|i| {
            let mut f = docs[i % docs.len()].clone();
            f.id = format!("{i:032x}");
            f.account_id = "123456789012".into();
            f.region = "us-east-1".into();
            f.sample = false;
            f
        })
        .collect()
}

fn table(
    moto: &moto::Moto,
    proxy: &dynamo_proxy::Proxy,
    name: &str,
) -> (DynamoTarget, aws_config::SdkConfig) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conf = rt
        .block_on(moto.sdk_config())
        .to_builder()
        .endpoint_url(proxy.endpoint())
        .build();
    let target = DynamoTarget {
        table: name.into(),
        region: "us-east-1".into(),
        endpoint_url: Some(proxy.endpoint()),
    };
    Store::init_dynamodb(&target, Some(conf.clone())).unwrap();
    (target, conf)
}

fn units(stores: &[Store]) -> (u64, u64) {
    stores
        .iter()
        .filter_map(Store::request_units)
        .fold((0, 0), |(r, w), (a, b)| (r + a, w + b))
}

/// Stores `all` in pages of 50 through `replicas` stores, each taking its share of the pages
/// on a thread of its own. Returns the elapsed time.
fn burst(replicas: &[Store], all: &[Finding]) -> std::time::Duration {
    let playbooks = Arc::new(Playbooks::default());
    let pages: Vec<Vec<Finding>> = all.chunks(50).map(<[Finding]>::to_vec).collect();
    let pages = Arc::new(pages);
    let started = Instant::now();
    let handles: Vec<_> = replicas
        .iter()
        .cloned()
        .enumerate()
        .map(|(r, store)| {
            let pages = pages.clone();
            let playbooks = playbooks.clone();
            let n = replicas.len();
            std::thread::spawn(move || {
                for page in pages.iter().skip(r).step_by(n) {
                    let now = Utc::now();
                    store
                        .upsert_findings_proposing(page, &Actor::System, now, |f| {
                            let plan = hanko::plan::routing::plan(f, &playbooks);
                            (!plan.steps.is_empty()).then(|| {
                                Request::new(
                                    RequestKind::Contain,
                                    plan,
                                    Actor::System,
                                    now,
                                    Duration::hours(4),
                                )
                            })
                        })
                        .unwrap();
                    store.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    started.elapsed()
}

/// One approval's store work: two votes, the start, a captured and a done record per step,
/// the end.
fn approval(store: &Store, req: &Request) {
    let policy = Policy {
        approver_users: ["u1", "u2"].iter().map(|s| s.to_string()).collect(),
        approvals: hanko::approval::Approvals {
            evidence: 2,
            contain: 2,
            disrupt: 2,
        },
        ..Policy::default()
    };
    for (i, who) in ["u1", "u2"].into_iter().enumerate() {
        let vote = VoteInput {
            voter: Voter {
                actor: Actor::Discord {
                    id: who.into(),
                    name: who.into(),
                },
                roles: Vec::new(),
            },
            decision: Decision::Approve,
            plan_hash: req.plan.plan_hash.clone(),
        };
        store
            .vote(
                &policy,
                req.id,
                &vote,
                Utc::now() + Duration::seconds(i as i64),
            )
            .unwrap()
            .unwrap();
    }
    let started = NewEvent::new(Utc::now(), Actor::System, EventKind::ExecutionStarted);
    match store.start_execution(req.id, started, |_, _| None).unwrap() {
        ExecutionStart::Started(_) => {}
        ExecutionStart::Refused(r) => panic!("refused: {r:?}"),
    }
    for (index, step) in req.plan.steps.iter().enumerate() {
        for phase in [StepPhase::Captured, StepPhase::Done] {
            let rec = StepRecord {
                index,
                action: step.action,
                target: step.target.clone(),
                phase,
                captured: json!({"prior": {"Status": "Active"}}),
                result: json!({"Status": "Inactive"}),
                outcome: (phase == StepPhase::Done).then_some(StepOutcome::Applied),
                error_code: None,
                message: None,
                started_at: Utc::now(),
                finished_at: None,
            };
            let kind = if phase == StepPhase::Done {
                EventKind::StepApplied
            } else {
                EventKind::StepCaptured
            };
            store
                .put_step_record(
                    req.id,
                    &rec,
                    Some(NewEvent::new(Utc::now(), Actor::System, kind)),
                )
                .unwrap();
        }
    }
    store
        .transition(
            req.id,
            hanko::approval::RequestState::Executing,
            hanko::approval::RequestState::Succeeded,
            NewEvent::new(Utc::now(), Actor::System, EventKind::ExecutionFinished),
        )
        .unwrap();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("dynamodb: bench");
        return;
    }
    let smoke = std::env::var("HANKO_BENCH_SMOKE").is_ok_and(|v| v == "1");
    // moto as shipped copies the whole table in every transaction (see below); by default the
    // bench runs it with that copy replaced by one of the items the transaction names.
    let stock = std::env::var("HANKO_BENCH_DDB_MOTO").is_ok_and(|v| v == "stock");
    let n = env_usize(
        "HANKO_BENCH_DDB_BURST",
        match (smoke, stock) {
            (true, _) => 100,
            (false, true) => 200,
            (false, false) => 10_000,
        },
    );
    let approvals = env_usize("HANKO_BENCH_DDB_APPROVALS", if smoke { 10 } else { 50 });
    let moto = if stock {
        moto::Moto::start()
    } else {
        moto::Moto::start_with_item_rollback()
    };
    let proxy = dynamo_proxy::Proxy::start(moto.port);
    let all = findings(n);

    md(format!(
        "Store on DynamoDB (moto 5, through the serializing proxy), {n} findings in pages of 50, each new finding proposing its plan."
    ));
    md("");
    if stock {
        md("moto as shipped: its `TransactWriteItems` deep-copies every table it names before applying the transaction (to roll back on failure), so each transaction costs time in proportion to the table (1.6 ms empty, 14.4 ms at 1,000 items, 69.6 ms at 4,000 items, boto3 against moto 5.2) and the times below grow with the table: they are moto's, not DynamoDB's.");
    } else {
        md("moto runs with `benches/support/moto_transactions/sitecustomize.py`: the same `TransactWriteItems` (every condition checked against the items as they were, all or nothing, the same cancellation reasons), with moto's copy of the whole table before each transaction replaced by a copy of the items it names. As shipped, moto's copy makes each transaction cost time in proportion to the table (69.6 ms at 4,000 items against 3.4 ms with the patch at 2,000), so a 10,000-finding burst (about 200,000 items) could not be run; `HANKO_BENCH_DDB_MOTO=stock` runs moto unchanged (default burst 200).");
    }
    md("");
    md("| replicas | time | findings/s | read units / finding | write units / finding | conflicts retried |");
    md("|---|---|---|---|---|---|");
    for replicas in [1usize, 2] {
        let (target, conf) = table(&moto, &proxy, &format!("hanko-bench-burst-{replicas}"));
        let stores: Vec<Store> = (0..replicas)
            .map(|_| Store::open_dynamodb(&target, Some(conf.clone())).unwrap())
            .collect();
        let before = units(&stores);
        let took = burst(&stores, &all);
        let after = units(&stores);
        let conflicts: u64 = stores.iter().map(Store::write_conflicts).sum();
        let check = Store::open_dynamodb(&target, Some(conf.clone())).unwrap();
        assert_eq!(check.finding_count(), n as u64, "every finding stored once");
        let per = |x: u64| x as f64 / n as f64;
        md(format!(
            "| {replicas} | {:.2} s | {:.0} | {:.1} | {:.1} | {conflicts} |",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            per(after.0 - before.0),
            per(after.1 - before.1),
        ));
        summary(
            &format!("dynamodb burst {n}, {replicas} replica(s), seconds"),
            format!("{:.2}", took.as_secs_f64()),
        );
        if replicas == 1 {
            summary(
                "dynamodb write units per finding",
                format!("{:.1}", per(after.1 - before.1)),
            );
            summary(
                "dynamodb read units per finding",
                format!("{:.1}", per(after.0 - before.0)),
            );
        }
    }

    md("");
    md("Two replicas share the work but not the audit chain: every finding's transaction rewrites the chain's head and the finding counter, so two replicas storing at once conflict, and each conflict re-reads and commits again (the retries are the extra units). The proxy passes one request at a time, as DynamoDB's serializable transactions isolate them, so the second replica adds no throughput here; against DynamoDB, whose requests run in parallel, the conflicts remain and the waits overlap.");

    // Approvals: requests for a leaked key, each approved twice, run and ended.
    let (target, conf) = table(&moto, &proxy, "hanko-bench-approvals");
    let store = Store::open_dynamodb(&target, Some(conf)).unwrap();
    let finding = &all[0];
    let mut samples = Vec::new();
    let mut cost = (0u64, 0u64);
    for i in 0..approvals {
        let mut f = finding.clone();
        f.id = format!("approval-{i}");
        let plan = hanko::plan::routing::plan(&f, &Playbooks::default());
        let req = Request::new(
            RequestKind::Contain,
            plan,
            Actor::System,
            Utc::now(),
            Duration::hours(4),
        );
        store.create_request(&req, Utc::now()).unwrap();
        let before = store.request_units().unwrap();
        let t = Instant::now();
        approval(&store, &req);
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        let after = store.request_units().unwrap();
        cost.0 += after.0 - before.0;
        cost.1 += after.1 - before.1;
    }
    samples.sort_by(f64::total_cmp);
    let p50 = samples[samples.len() / 2];
    let per_approval = (
        cost.0 as f64 / approvals as f64,
        cost.1 as f64 / approvals as f64,
    );
    let steps = hanko::plan::routing::plan(finding, &Playbooks::default())
        .steps
        .len();
    md("");
    md(format!(
        "An approval's store work ({approvals} requests with the plan of `{}`, {steps} steps: two votes, the start, a captured and a done record per step, the end): p50 {p50:.1} ms; {:.1} read and {:.1} write units per approval.",
        finding.finding_type, per_approval.0, per_approval.1
    ));
    summary("dynamodb approval store work p50 ms", format!("{p50:.1}"));
    summary(
        "dynamodb write units per approval",
        format!("{:.1}", per_approval.1),
    );

    // The monthly cost of 1,000 findings a day (every one proposing a request) and, say, 20
    // approvals a day, at on-demand prices.
    let (target, conf) = table(&moto, &proxy, "hanko-bench-cost");
    let stores_one = Store::open_dynamodb(&target, Some(conf)).unwrap();
    let sample = findings(200);
    let before = stores_one.request_units().unwrap();
    burst(std::slice::from_ref(&stores_one), &sample);
    let after = stores_one.request_units().unwrap();
    let per_finding = (
        (after.0 - before.0) as f64 / 200.0,
        (after.1 - before.1) as f64 / 200.0,
    );
    let month = 30.0;
    let reads = month * (1000.0 * per_finding.0 + 20.0 * per_approval.0);
    let writes = month * (1000.0 * per_finding.1 + 20.0 * per_approval.1);
    let usd = reads / 1e6 * READ_USD_PER_MILLION + writes / 1e6 * WRITE_USD_PER_MILLION;
    md("");
    md(format!(
        "Cost at on-demand prices (us-east-1: USD {WRITE_USD_PER_MILLION} per million write units, {READ_USD_PER_MILLION} per million read units), 1,000 findings and 20 approvals a day: {:.2} M write units and {:.2} M read units a month, **USD {usd:.2} a month** (storage aside).",
        writes / 1e6,
        reads / 1e6
    ));
    summary(
        "dynamodb monthly cost usd, 1000 findings/day",
        format!("{usd:.2}"),
    );
}
