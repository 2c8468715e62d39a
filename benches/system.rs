//! System benchmarks of issue 6, measured from outside hanko: the real `hanko` release binary
//! (`hanko run`, `hanko audit export`) against the Discord fake of `tests/support/`, moto and
//! the GuardDuty stand-in. Every time is taken in this process, on the wire: the fake records
//! when a gateway frame left it and when a REST request reached it, and a small proxy in front
//! of moto and the stand-in (`benches/support/proxy.rs`) records when each AWS request reached it
//! and when its answer came back. Nothing reads hanko's internals.
//!
//! `cargo bench --bench system -- PART`, PART one of:
//! * `approval`  §1 approval to containment and §2 finding to card (one bot process);
//! * `burst`     §3 10,000 findings at once;
//! * `audit`     §4 queries over 1,000,000 audit events and their export;
//! * `footprint` §5 resident memory and start-up time.
//!
//! Each part prints `md<TAB>line` (the section's Markdown) and `summary<TAB>figure<TAB>value`
//! lines that `scripts/bench.sh` assembles into BENCHMARKS.md. `HANKO_BENCH_SMOKE=1` (or
//! `cargo test --benches`, which passes no `--bench`) runs every part with small counts. Needs
//! `moto_server` on PATH and the fixtures (`HANKO_FIXTURES`).

#[path = "../tests/support/discord_fake.rs"]
mod discord_fake;
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/moto.rs"]
mod moto;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "../tests/support/guardduty_standin.rs"]
mod standin;
#[path = "support/system.rs"]
mod system;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use discord_fake::{DiscordFake, FakeMember, RecordedRequest};
use hanko::audit::{Actor, AuditQuery, EventKind, NewEvent};
use hanko::store::Store;
use proxy::{Exchange, Proxy};
use serde_json::{json, Value};
use system::{fmt_ms, md, mib, ms, ms_between, row, summary, Hanko};

const RESPONDER_ROLE: &str = "1180000000000000500";
const FIXTURE: &str = "api/UnauthorizedAccess_IAMUser_TorIPCaller.json";
/// What the bench waits for one effect before it gives up (it stops by itself).
const WAIT: Duration = Duration::from_secs(30);
/// hanko's card budget is 5 posts in any 5.25 s: one card every 1.1 s never waits for it.
const CARD_SPACING: Duration = Duration::from_millis(1_100);

struct Counts {
    smoke: bool,
    approvals: usize,
    warmup: usize,
    gd_batches: usize,
    burst: usize,
    events: u64,
    queries: usize,
    exports: usize,
    startups: usize,
    stored: usize,
}

impl Counts {
    fn get() -> Counts {
        let smoke = std::env::var("HANKO_BENCH_SMOKE").is_ok_and(|v| v == "1")
            || !std::env::args().any(|a| a == "--bench");
        let env = |name: &str, full: usize, small: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if smoke { small } else { full })
        };
        Counts {
            smoke,
            approvals: env("HANKO_BENCH_APPROVALS", 200, 10),
            warmup: env("HANKO_BENCH_WARMUP", 5, 2),
            gd_batches: env("HANKO_BENCH_GD_BATCHES", 5, 1),
            burst: env("HANKO_BENCH_BURST", 10_000, 500),
            events: env("HANKO_BENCH_EVENTS", 1_000_000, 20_000) as u64,
            queries: env("HANKO_BENCH_QUERIES", 2_000, 100),
            exports: env("HANKO_BENCH_EXPORTS", 3, 1),
            startups: env("HANKO_BENCH_STARTUPS", 10, 2),
            stored: env("HANKO_BENCH_STORED", 100_000, 2_000),
        }
    }
}

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = [
        "approval",
        "approval-dynamodb",
        "burst",
        "audit",
        "footprint",
        "scale",
    ];
    let parts: Vec<&str> = if parts.is_empty() {
        all.to_vec()
    } else {
        parts.iter().map(String::as_str).collect()
    };
    let counts = Counts::get();
    // The ingest code hanko links runs on big stacks; the bench's own runtime needs no more.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for part in parts {
        match part {
            "approval" => {
                system::section(1);
                smoke_note(&counts);
                rt.block_on(approval(&counts, On::Sled))
            }
            "approval-dynamodb" => {
                system::section(12);
                smoke_note(&counts);
                md("§1 and §2 again, with the store on DynamoDB (moto, `[store] backend = \"dynamodb\"`, \
                    one replica, the table made by `hanko store init`); every store operation is \
                    then a request to moto through the same proxy, which the figures include. moto \
                    runs with the item-level transaction rollback of §11: as shipped, its whole-table \
                    copy per transaction makes every store write slower as the table grows (two runs \
                    on stock moto stopped after some 30 approvals, a click's acknowledgement past \
                    Discord's 3 s).");
                md("");
                rt.block_on(approval(&counts, On::DynamoDb))
            }
            "burst" => {
                system::section(3);
                smoke_note(&counts);
                rt.block_on(burst(&counts))
            }
            "audit" => {
                system::section(4);
                smoke_note(&counts);
                audit(&counts)
            }
            "footprint" => {
                system::section(5);
                smoke_note(&counts);
                rt.block_on(footprint(&counts))
            }
            "scale" => {
                system::section(10);
                smoke_note(&counts);
                rt.block_on(scale(&counts))
            }
            other => panic!("unknown part {other:?}: one of {all:?}"),
        }
    }
}

fn smoke_note(c: &Counts) {
    if c.smoke {
        md("*Smoke run (small counts): not a measurement.*");
        md("");
    }
}

// ---- shared ----------------------------------------------------------------------------------

fn responder() -> FakeMember {
    FakeMember::new(1_180_000_000_000_001_002, "bob", &[RESPONDER_ROLE])
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], moto::free_port()))
}

/// The config of a bench bot talking to `fake`, with `ingest` as its `[ingest]` table.
fn write_config(
    fake: &DiscordFake,
    dir: &Path,
    http: SocketAddr,
    ingest: &str,
) -> std::path::PathBuf {
    let store = format!("path = \"{}\"", dir.join("store").display());
    write_config_on(fake, dir, http, ingest, &store)
}

/// [`write_config`] with `store` as the `[store]` table.
fn write_config_on(
    fake: &DiscordFake,
    dir: &Path,
    http: SocketAddr,
    ingest: &str,
    store: &str,
) -> std::path::PathBuf {
    let token_file = dir.join("token");
    std::fs::write(&token_file, fake.token()).unwrap();
    let text = format!(
        r#"
[discord]
token_file = "{token}"
guild_id = "{guild}"
channel_id = "{channel}"
api_base = "{base}"

[responders]
approver_roles = ["{RESPONDER_ROLE}"]

[policy]
approvals = {{ evidence = 1, contain = 1, disrupt = 1 }}

[aws]
regions = ["us-east-1"]

[ingest]
{ingest}

[store]
{store}

[http]
listen = "{http}"
"#,
        token = token_file.display(),
        guild = fake.guild_id(),
        channel = fake.channel_id(),
        base = fake.base_url(),
    );
    let path = dir.join("hanko.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The leaked-key fixture for `key`/`user`, as GuardDuty would publish it now, in moto's
/// account and region, not a sample.
fn leaked_key_doc(finding_id: &str, key: &str, user: &str) -> Value {
    let path = standin::fixtures_dir().join(FIXTURE);
    let text = std::fs::read_to_string(&path).expect("fixture");
    let text = text
        .replace("GeneratedFindingAccessKeyId", key)
        .replace("GeneratedFindingUserName", user);
    let mut d: Value = serde_json::from_str(&text).unwrap();
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    d["id"] = json!(finding_id);
    d["arn"] = json!(format!(
        "arn:aws:guardduty:us-east-1:123456789012:detector/bench/finding/{finding_id}"
    ));
    d["accountId"] = json!("123456789012");
    d["region"] = json!("us-east-1");
    d["updatedAt"] = json!(now);
    d["service"]["additionalInfo"]["sample"] = json!(false);
    d["service"]["archived"] = json!(false);
    d
}

/// moto's account: hanko proves it with `sts:GetCallerIdentity`, and plans only for findings in
/// an account it has proved (or reaches through a role template) and in `aws.regions`.
const MOTO_ACCOUNT: &str = "123456789012";

/// `n` findings from the API fixtures (not archived), with distinct ids, `updatedAt` now
/// minus `n - i` ms, not samples, all in moto's account and `us-east-1` (the config's region),
/// so each actionable one gets its request as in a real burst in one's own account.
fn generated(n: usize) -> Vec<Value> {
    let fixtures: Vec<Value> = standin::api_fixtures()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["service"]["archived"] != true)
        .collect();
    let start = Utc::now() - chrono::Duration::milliseconds(n as i64);
    (0..n)
        .map(|i| {
            let mut d = fixtures[i % fixtures.len()].clone();
            d["id"] = json!(format!("{i:032x}"));
            d["accountId"] = json!(MOTO_ACCOUNT);
            d["region"] = json!("us-east-1");
            d["arn"] = json!(format!(
                "arn:aws:guardduty:us-east-1:{MOTO_ACCOUNT}:detector/d/finding/{i:032x}"
            ));
            let t = start + chrono::Duration::milliseconds(i as i64);
            d["updatedAt"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            if d["service"]["additionalInfo"].is_object() {
                d["service"]["additionalInfo"]["sample"] = json!(false);
            }
            d
        })
        .collect()
}

fn body_contains(r: &RecordedRequest, needle: &str) -> bool {
    r.body
        .as_ref()
        .is_some_and(|b| b.to_string().contains(needle))
}

/// The create-message request of the card whose body mentions `needle`.
async fn card_post(fake: &DiscordFake, needle: &str) -> RecordedRequest {
    fake.wait_for_request(
        |r| {
            r.matches("POST", "/channels/*/messages") && r.status == 200 && body_contains(r, needle)
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("no card for {needle}: {e}"))
}

fn message_id(r: &RecordedRequest) -> u64 {
    r.response
        .as_ref()
        .and_then(|v| v["id"].as_str())
        .and_then(|s| s.parse().ok())
        .expect("the fake answers a created message with its id")
}

/// A call of the containment: not ingest, not the investigation's CloudTrail reads (it starts
/// when a finding arrives and may still run at the click), not the DynamoDB store.
fn aws_call(e: &Exchange) -> bool {
    !matches!(
        e.service.as_str(),
        "sqs" | "guardduty" | "cloudtrail" | "dynamodb"
    )
}

/// How many requests went to the DynamoDB store from `from` to `to`.
fn store_requests(exchanges: &[Exchange], from: Instant, to: Instant) -> f64 {
    exchanges
        .iter()
        .filter(|e| e.service == "dynamodb" && e.sent >= from && e.sent <= to)
        .count() as f64
}

/// Where §1/§2's bot keeps its store, and the sections its figures go to.
#[derive(Clone, Copy, PartialEq)]
enum On {
    /// sled, the default: §1 and §2.
    Sled,
    /// DynamoDB in moto (one replica): §12 and §13.
    DynamoDb,
}

impl On {
    fn sections(self) -> (u8, u8) {
        match self {
            On::Sled => (1, 2),
            On::DynamoDb => (12, 13),
        }
    }

    /// What the summary's figures say after their number.
    fn label(self) -> &'static str {
        match self {
            On::Sled => "",
            On::DynamoDb => " on DynamoDB (moto)",
        }
    }
}

// ---- §1 and §2: approval to containment, finding to card ----------------------------------

async fn approval(c: &Counts, on: On) {
    let (first_section, second_section) = on.sections();
    let label = on.label();
    // On DynamoDB, moto copies only the items of a transaction, not the whole table (see §11).
    let moto = match on {
        On::Sled => moto::Moto::start(),
        On::DynamoDb => moto::Moto::start_with_item_rollback(),
    };
    let conf = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue = sqs
        .create_queue()
        .queue_name("hanko-bench")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let rounds = c.warmup + c.approvals;
    let mut keys = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let user = format!("leaky{i}");
        iam.create_user().user_name(&user).send().await.unwrap();
        let k = iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap();
        let id = k.access_key().unwrap().access_key_id().to_string();
        keys.push((user, id));
    }
    let gd = standin::Standin::start("bench-detector", Vec::new()).await;
    let aws_proxy = Proxy::start(([127, 0, 0, 1], moto.port).into()).await;
    let gd_proxy = Proxy::start(gd.addr).await;
    let fake = DiscordFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr();
    let ingest = format!(
        "guardduty = true\npoll_interval = \"10s\"\nmin_severity = 1.0\nsqs_queue_url = \"{queue}\""
    );
    let config = match on {
        On::Sled => write_config(&fake, dir.path(), http, &ingest),
        On::DynamoDb => {
            let config = write_config_on(
                &fake,
                dir.path(),
                http,
                &ingest,
                "backend = \"dynamodb\"\ntable = \"hanko-bench\"",
            );
            system::hanko_cli(
                &["store", "init", "--config"],
                &config,
                &aws_proxy.endpoint(),
            );
            config
        }
    };
    let mut bot = Hanko::spawn(
        &config,
        http,
        &[
            ("AWS_ENDPOINT_URL", aws_proxy.endpoint()),
            ("AWS_ENDPOINT_URL_GUARDDUTY", gd_proxy.endpoint()),
        ],
        &dir.path().join("hanko.log"),
    );
    fake.wait_for_ready(WAIT).await.unwrap();
    bot.wait_healthy(WAIT).await;

    let clicker = responder();
    let mut last_post: Option<Instant> = None;
    let (mut first_call, mut inactive, mut ack, mut decided, mut outcome, mut to_card) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut first_actions = std::collections::BTreeMap::<String, usize>::new();
    // DynamoDB requests (0 on sled): click → outcome edit, and SQS sent → card.
    let (mut store_per_approval, mut store_per_card) = (vec![], vec![]);
    for (i, (user, key)) in keys.iter().enumerate() {
        if let Some(t) = last_post {
            tokio::time::sleep_until((t + CARD_SPACING).into()).await;
        }
        let doc = leaked_key_doc(&format!("a9{i:030x}"), key, user);
        let event = json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": doc["accountId"], "region": doc["region"], "time": doc["updatedAt"],
            "resources": [], "detail": doc,
        });
        sqs.send_message()
            .queue_url(&queue)
            .message_body(event.to_string())
            .send()
            .await
            .unwrap();
        let sent = Instant::now();
        let post = card_post(&fake, key).await;
        last_post = Some(post.received_at);
        let card = fake.message(message_id(&post)).expect("card stored");
        let approve = card.custom_id_of("Approve").expect("an Approve button");

        let click = fake.inject_button(&approve, card.id, &clicker);
        let click_id = click.id.to_string();
        let arrival = fake
            .wait_for_frame(
                |f| {
                    f.outgoing
                        && f.t.as_deref() == Some("INTERACTION_CREATE")
                        && f.d["id"].as_str() == Some(click_id.as_str())
                },
                WAIT,
            )
            .await
            .unwrap()
            .at;
        let callback = fake.wait_for_callback(&click, WAIT).await.unwrap();
        let edit = fake
            .wait_for_request(
                |r| {
                    r.method == "PATCH"
                        && click.is_webhook_call(r)
                        && r.api_path().ends_with("/messages/@original")
                },
                WAIT,
            )
            .await
            .unwrap();
        let card_path = format!("/messages/{}", card.id);
        let done = fake
            .wait_for_request(
                |r| {
                    r.method == "PATCH"
                        && r.api_path().ends_with(&card_path)
                        && r.received_at > arrival
                        && body_contains(r, "Revert")
                },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("no outcome edit of the card for {key}: {e}"));
        // Every AWS answer is back once the outcome is on the card.
        let exchanges = aws_proxy.exchanges();
        let first = exchanges
            .iter()
            .find(|e| aws_call(e) && e.sent > arrival)
            .unwrap_or_else(|| panic!("no AWS call after the click for {key}"));
        let deactivated = exchanges
            .iter()
            .find(|e| {
                e.action == "UpdateAccessKey"
                    && e.body.contains(key.as_str())
                    && e.body.contains("Status=Inactive")
                    && e.sent > arrival
            })
            .and_then(|e| e.answered)
            .unwrap_or_else(|| panic!("no UpdateAccessKey Inactive answered for {key}"));
        if i < c.warmup {
            continue;
        }
        *first_actions
            .entry(format!("{}:{}", first.service, first.action))
            .or_default() += 1;
        first_call.push(ms_between(arrival, first.sent));
        inactive.push(ms_between(arrival, deactivated));
        ack.push(ms_between(arrival, callback.received_at));
        decided.push(ms_between(arrival, edit.received_at));
        outcome.push(ms_between(arrival, done.received_at));
        to_card.push(ms_between(sent, post.received_at));
        store_per_approval.push(store_requests(&exchanges, arrival, done.received_at));
        store_per_card.push(store_requests(&exchanges, sent, post.received_at));
    }

    // The end state, read back from moto: every key of the measured rounds Inactive.
    let mut inactive_keys = 0;
    for (user, key) in &keys {
        let listed = iam.list_access_keys().user_name(user).send().await.unwrap();
        inactive_keys += listed
            .access_key_metadata()
            .iter()
            .filter(|k| {
                k.access_key_id() == Some(key.as_str())
                    && k.status() == Some(&aws_sdk_iam::types::StatusType::Inactive)
            })
            .count();
    }

    // §2 through GuardDuty: findings added to the stand-in, from the GetFindings answer that
    // served each to its card. Quiet a whole card window first so no card waits for the budget.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let per_batch = 4;
    let (mut served_to_card, mut added_to_card) = (vec![], vec![]);
    let mut store_per_gd_finding = vec![];
    for b in 0..c.gd_batches {
        let mut batch = vec![];
        for j in 0..per_batch {
            let n = b * per_batch + j;
            let id = format!("9d{n:030x}");
            let key = format!("AKIABENCHGD{n:09}");
            gd.add(leaked_key_doc(&id, &key, "gd-user"));
            batch.push((id, key));
        }
        let added = Instant::now();
        let mut last_card = added;
        for (id, key) in &batch {
            let post = card_post(&fake, key).await;
            let served = gd_proxy
                .exchanges()
                .iter()
                .find(|e| e.action.ends_with("/findings/get") && e.body.contains(id.as_str()))
                .and_then(|e| e.answered)
                .unwrap_or_else(|| panic!("the stand-in never served {id}"));
            served_to_card.push(ms_between(served, post.received_at));
            added_to_card.push(ms_between(added, post.received_at));
            last_card = post.received_at;
        }
        let store = store_requests(&aws_proxy.exchanges(), added, last_card);
        store_per_gd_finding.push(store / per_batch as f64);
    }
    let metrics = bot.metrics().await;
    let stopped = bot.stop();
    fake.shutdown().await;

    let n = first_call.len();
    md(format!(
        "`hanko run` (release binary) against the Discord fake, moto and the GuardDuty stand-in; one \
         leaked-key finding at a time arrives through SQS (EventBridge envelope), its card is \
         posted, and one responder clicks **Approve** (policy: one approval). {n} measured \
         approvals after {} unmeasured warm-up rounds, cards spaced {} ms apart so none waits \
         for hanko's card budget (5 per 5.25 s). Times are taken in the bench process: *arrival* \
         is when the fake wrote the `INTERACTION_CREATE` frame to the gateway socket; AWS times \
         are from a proxy in front of moto (request's first byte in, response's first byte back); \
         Discord times are when the fake received the REST request.",
        c.warmup,
        CARD_SPACING.as_millis()
    ));
    md("");
    md("| from the Approve arriving on the gateway to … (ms) | n | min | p50 | p99 | max |");
    md("|---|---|---|---|---|---|");
    let (r_first, first_p50, first_p99) = row(
        "(a) the first AWS call leaving hanko = hanko's own overhead",
        &first_call,
    );
    let (r_inactive, in_p50, in_p99) = row(
        "(b) the key Inactive in moto (UpdateAccessKey answered)",
        &inactive,
    );
    let (r_ack, _, _) = row("the interaction deferred (callback reached the fake)", &ack);
    let (r_decided, dec_p50, dec_p99) = row(
        "(c) the card edit request reaching the fake (decision: `@original` PATCH)",
        &decided,
    );
    let (r_outcome, out_p50, out_p99) = row(
        "the card edited with every step's outcome and Revert",
        &outcome,
    );
    for r in [&r_ack, &r_first, &r_inactive, &r_decided, &r_outcome] {
        md(r);
    }
    md("");
    if on == On::DynamoDb {
        store_per_approval.sort_by(f64::total_cmp);
        store_per_card.sort_by(f64::total_cmp);
        md(format!(
            "Requests to DynamoDB (at the proxy), p50 / max: {} / {} from the click to the outcome \
             edit (the vote, the run's start, lease, step records and end, the card's renders), \
             {} / {} from the SQS message to its card (the finding, its request, the card claim).",
            system::pct(&store_per_approval, 0.5),
            store_per_approval.last().copied().unwrap_or(0.0),
            system::pct(&store_per_card, 0.5),
            store_per_card.last().copied().unwrap_or(0.0),
        ));
        md("");
    }
    md(format!(
        "First AWS call after the click: {}. Keys Inactive in moto afterwards (read back): \
         {inactive_keys}/{} (warm-up included). hanko's own histogram: `hanko_approval_to_contained_seconds_count` \
         {}, sum {:.2} s. SIGTERM to exit: {:.0} ms.",
        first_actions
            .iter()
            .map(|(k, v)| format!("`{k}` ({v})"))
            .collect::<Vec<_>>()
            .join(", "),
        keys.len(),
        system::metric(&metrics, "hanko_approval_to_contained_seconds_count"),
        system::metric(&metrics, "hanko_approval_to_contained_seconds_sum"),
        ms(stopped)
    ));
    md("");
    summary(
        format!(
            "{first_section}. (a) Approve on gateway → first AWS call (hanko's overhead){label}, p50 / p99 over {n}"
        ),
        format!("{} ms / {} ms", fmt_ms(first_p50), fmt_ms(first_p99)),
    );
    summary(
        format!("{first_section}. (b) Approve on gateway → key Inactive in moto{label}, p50 / p99 over {n}"),
        format!("{} ms / {} ms", fmt_ms(in_p50), fmt_ms(in_p99)),
    );
    summary(
        format!("{first_section}. (c) Approve on gateway → card edit at the fake{label}, p50 / p99 over {n}"),
        format!(
            "{} ms / {} ms (outcome edit: {} ms / {} ms)",
            fmt_ms(dec_p50),
            fmt_ms(dec_p99),
            fmt_ms(out_p50),
            fmt_ms(out_p99)
        ),
    );

    system::section(second_section);
    smoke_note(c);
    md("The same bot. Through SQS: from `SendMessage` returning (the finding is in the queue) to the \
        card's create-message request reaching the fake; hanko long-polls the queue (20 s wait), \
        as in production. Through the GuardDuty stand-in (poll interval 10 s, the minimum the \
        config allows): batches of 4 findings added at once; from the stand-in's `GetFindings` \
        answer that served a finding (measured at the proxy) to its card; and, for scale, from \
        the moment it was added, which includes waiting for the next poll.");
    md("");
    md("| finding → card (ms) | n | min | p50 | p99 | max |");
    md("|---|---|---|---|---|---|");
    let (r_sqs, sqs_p50, sqs_p99) = row("SQS message sent → card posted", &to_card);
    let (r_gd, gd_p50, gd_p99) = row(
        "GuardDuty stand-in served it (GetFindings answer) → card posted",
        &served_to_card,
    );
    let (r_added, _, _) = row(
        "GuardDuty: added to the stand-in → card posted (includes the poll wait)",
        &added_to_card,
    );
    for r in [&r_sqs, &r_gd, &r_added] {
        md(r);
    }
    md("");
    if on == On::DynamoDb {
        store_per_gd_finding.sort_by(f64::total_cmp);
        md(format!(
            "Requests to DynamoDB per GuardDuty finding, from the batch's addition to its last card \
             (the poll's cursor and source status, the findings, their requests, the card claims, \
             and whatever else ran meanwhile), p50 / max over {} batches: {:.0} / {:.0}.",
            store_per_gd_finding.len(),
            system::pct(&store_per_gd_finding, 0.5),
            store_per_gd_finding.last().copied().unwrap_or(0.0),
        ));
        md("");
    }
    summary(
        format!(
            "{second_section}. finding → card{label}: SQS sent → card, p50 / p99 over {}",
            to_card.len()
        ),
        format!("{} ms / {} ms", fmt_ms(sqs_p50), fmt_ms(sqs_p99)),
    );
    summary(
        format!(
            "{second_section}. finding → card{label}: GuardDuty stand-in served → card, p50 / p99 over {}",
            served_to_card.len()
        ),
        format!("{} ms / {} ms", fmt_ms(gd_p50), fmt_ms(gd_p99)),
    );
}

// ---- §3 burst ---------------------------------------------------------------------------------

/// What one burst measured ([`run_burst`]).
struct Burst {
    n: usize,
    /// Added to the stand-in → all stored and planned, and the first poll after → the same (ms).
    all: f64,
    processing: f64,
    pending: f64,
    posts: usize,
    edits: usize,
    posted_metric: f64,
    folded_metric: f64,
    digest_at: Option<f64>,
    settle_limit: Duration,
    max_posts: usize,
    rate_limited: u64,
    idle_rss: u64,
    rss_max: u64,
    rss_after: u64,
    hwm: u64,
    /// (anonymous, file-backed) resident KiB before the burst and at its end.
    split_idle: (u64, u64),
    split_after: (u64, u64),
    stopped: Duration,
}

/// `hanko run` against an empty GuardDuty stand-in, then `n` findings added at once.
async fn run_burst(n: usize, smoke: bool) -> Burst {
    // moto answers hanko's one sts:GetCallerIdentity (its own account); nothing else is
    // called: nothing is approved.
    let moto = moto::Moto::start();
    let gd = standin::Standin::start("bench-detector", Vec::new()).await;
    let gd_proxy = Proxy::start(gd.addr).await;
    let fake = DiscordFake::start().await;
    // Discord's own limit at the fake: posts beyond 5 in 5 s would be answered 429.
    fake.set_channel_rate_limit(5, Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr();
    let config = write_config(
        &fake,
        dir.path(),
        http,
        "guardduty = true\npoll_interval = \"10s\"\nmin_severity = 0.0",
    );
    let mut bot = Hanko::spawn(
        &config,
        http,
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_ENDPOINT_URL_GUARDDUTY", gd_proxy.endpoint()),
        ],
        &dir.path().join("hanko.log"),
    );
    fake.wait_for_ready(WAIT).await.unwrap();
    bot.wait_healthy(WAIT).await;
    // The first poll (nothing to see) has gone by.
    let deadline = Instant::now() + WAIT;
    while !gd_proxy
        .exchanges()
        .iter()
        .any(|e| e.action.ends_with("/findings") && e.answered.is_some())
    {
        assert!(Instant::now() < deadline, "no first GuardDuty poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (idle_rss, _) = bot.memory_kib();
    let split_idle = bot.resident_split_kib();
    let findings = generated(n);
    let polls_before = gd_proxy.exchanges().len();
    for d in findings {
        gd.add(d);
    }
    let added = Instant::now();
    let mut rss_max = idle_rss;
    let limit = Duration::from_secs(if smoke { 60 } else { 600 });
    let stored_at = loop {
        let m = bot.metrics().await;
        rss_max = rss_max.max(bot.memory_kib().0);
        if system::metric(&m, "hanko_findings_ingested_total") >= n as f64 {
            break Instant::now();
        }
        assert!(
            added.elapsed() < limit,
            "not all {n} findings stored within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let poll_started = gd_proxy.exchanges()[polls_before..]
        .iter()
        .find(|e| e.action.ends_with("/findings"))
        .map(|e| e.sent)
        .expect("a poll after the findings were added");
    let m = bot.metrics().await;
    let pending = system::metric(&m, "hanko_requests{state=\"Pending\"}");
    // Let the outbox work through the burst: until its digest is posted and two card windows
    // then pass with no post or edit (at most 90 s, 30 s in a smoke run).
    let quiet = Duration::from_millis(10_500);
    let settle_limit = Duration::from_secs(if smoke { 30 } else { 90 });
    let settle_deadline = Instant::now() + settle_limit;
    let is_digest = |r: &RecordedRequest| {
        r.matches("POST", "/channels/*/messages") && r.status == 200 && body_contains(r, "Digest")
    };
    loop {
        rss_max = rss_max.max(bot.memory_kib().0);
        let requests = fake.requests();
        let digest = requests.iter().any(is_digest);
        let last = requests
            .iter()
            .filter(|r| {
                r.matches("POST", "/channels/*/messages")
                    || r.matches("PATCH", "/channels/*/messages/*")
            })
            .map(|r| r.received_at)
            .max();
        if (digest && last.is_some_and(|t| t.elapsed() >= quiet))
            || Instant::now() > settle_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let digest_at = fake
        .requests()
        .iter()
        .find(|r| is_digest(r))
        .map(|r| ms_between(added, r.received_at) / 1000.0);
    let m = bot.metrics().await;
    let (rss_after, hwm) = bot.memory_kib();
    let split_after = bot.resident_split_kib();
    let posts: Vec<Instant> = fake
        .requests_matching("POST", "/channels/*/messages")
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.received_at)
        .collect();
    let edits = fake
        .requests_matching("PATCH", "/channels/*/messages/*")
        .len();
    let max_in_window = |times: &[Instant], w: Duration| {
        times
            .iter()
            .map(|t| times.iter().filter(|u| **u >= *t && **u < *t + w).count())
            .max()
            .unwrap_or(0)
    };
    let window = Duration::from_secs(5);
    let max_posts = max_in_window(&posts, window);
    let rate_limited = fake.rate_limited_count();
    let stopped = bot.stop();
    fake.shutdown().await;

    Burst {
        n,
        all: ms_between(added, stored_at),
        processing: ms_between(poll_started, stored_at),
        pending,
        posts: posts.len(),
        edits,
        posted_metric: system::metric(&m, "hanko_cards_posted_total"),
        folded_metric: system::metric(&m, "hanko_cards_folded_total"),
        digest_at,
        settle_limit,
        max_posts,
        rate_limited,
        idle_rss,
        rss_max,
        rss_after,
        hwm,
        split_idle,
        split_after,
        stopped,
    }
}

async fn burst(c: &Counts) {
    let b = run_burst(c.burst, c.smoke).await;
    // The figures written into the text by name; the rest is read from `b`.
    let Burst {
        n,
        processing,
        all,
        pending,
        edits,
        max_posts,
        rate_limited,
        ..
    } = b;
    md(format!(
        "`hanko run` (release binary) with an empty GuardDuty stand-in (poll interval 10 s); once \
         its first poll has gone by, {n} findings (the API fixtures with distinct ids, all \
         severities, `min_severity = 0`, in moto's account and `us-east-1`, which hanko proves \
         with one `sts:GetCallerIdentity`) are added at once. *Stored and planned* is when \
         `/metrics` (polled every 50 ms) says `hanko_findings_ingested_total` = {n}; ingest \
         stores each finding with its request (plan) in one step. The fake enforces Discord's \
         channel limit (5 posts in 5 s, 429 beyond)."
    ));
    md("");
    md("| figure | value |");
    md("|---|---|");
    md(format!(
        "| first poll after the burst → all {n} stored and planned | {:.2} s ({:.0} findings/s) |",
        processing / 1000.0,
        n as f64 / (processing / 1000.0)
    ));
    md(format!("| added to the stand-in → all stored and planned (includes waiting for the poll) | {:.2} s |", all / 1000.0));
    md(format!(
        "| requests Pending afterwards (`hanko_requests{{state=\"Pending\"}}`) | {pending} |"
    ));
    md(format!(
        "| channel posts at the fake (cards + digests) / edits | {} / {edits} (`hanko_cards_posted_total` {}, `hanko_cards_folded_total` {}) |",
        b.posts, b.posted_metric, b.folded_metric,
    ));
    md(format!(
        "| the digest of the folded cards posted | {} |",
        b.digest_at.map_or(
            format!(
                "not within {} s of the burst being stored",
                b.settle_limit.as_secs()
            ),
            |s| format!("{s:.1} s after the findings were added")
        )
    ));
    md(format!(
        "| most posts in any 5 s window at the fake | {max_posts} (limit 5) |"
    ));
    md(format!(
        "| posts answered 429 by the fake | {rate_limited} |"
    ));
    md(format!(
        "| resident memory: idle before / max sampled during / after | {} / {} / {} |",
        mib(b.idle_rss),
        mib(b.rss_max),
        mib(b.rss_after)
    ));
    md(format!(
        "| peak resident memory (VmHWM of the process) | {} |",
        mib(b.hwm)
    ));
    md(format!(
        "| resident before / after, anonymous + file-backed (the binary's mapped code) | {} + {} / {} + {} |",
        mib(b.split_idle.0),
        mib(b.split_idle.1),
        mib(b.split_after.0),
        mib(b.split_after.1)
    ));
    md(format!(
        "| SIGTERM to exit afterwards | {:.0} ms |",
        ms(b.stopped)
    ));
    md("");
    summary(
        format!("3. burst of {n}: first poll → all stored and planned"),
        format!(
            "{:.2} s ({:.0} findings/s); {:.2} s from being added",
            processing / 1000.0,
            n as f64 / (processing / 1000.0),
            all / 1000.0
        ),
    );
    summary(
        "3. burst: most channel posts in any 5 s / 429s",
        format!("{max_posts} (limit 5) / {rate_limited}"),
    );
    summary("3. burst: peak resident memory (VmHWM)", mib(b.hwm));
}

// ---- §10 scale curve --------------------------------------------------------------------------

/// The burst of §3 at several sizes (`HANKO_BENCH_SCALE`, default 1,000, 10,000 and 100,000;
/// 200 and 1,000 in a smoke run): time and peak memory, and whether they grow linearly.
async fn scale(c: &Counts) {
    let sizes: Vec<usize> = std::env::var("HANKO_BENCH_SCALE")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| {
            if c.smoke {
                vec![200, 1_000]
            } else {
                vec![1_000, 10_000, 100_000]
            }
        });
    let mut runs = Vec::new();
    for n in sizes {
        eprintln!("scale: burst of {n}");
        runs.push(run_burst(n, c.smoke).await);
    }
    md(
        "The burst of §3 (same stand-in, fake and configuration), once per size, each in a fresh \
        process and store. *Per 1,000* divides the time by the size; *growth* is the peak \
        resident memory above the idle process, per 1,000 findings.",
    );
    md("");
    md("| findings | first poll → all stored and planned | per 1,000 | rate | peak resident (VmHWM) | idle before | growth per 1,000 | anonymous + file-backed at the end |");
    md("|---|---|---|---|---|---|---|---|");
    for b in &runs {
        let growth = b.hwm.saturating_sub(b.idle_rss) as f64 / 1024.0 / (b.n as f64 / 1000.0);
        md(format!(
            "| {} | {:.2} s | {:.0} ms | {:.0}/s | {} | {} | {:.2} MiB | {} + {} |",
            b.n,
            b.processing / 1000.0,
            b.processing / (b.n as f64 / 1000.0),
            b.n as f64 / (b.processing / 1000.0),
            mib(b.hwm),
            mib(b.idle_rss),
            growth,
            mib(b.split_after.0),
            mib(b.split_after.1),
        ));
    }
    md("");
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        if last.n > first.n {
            let per = |b: &Burst| b.processing / b.n as f64;
            let time_ratio = per(last) / per(first);
            let mem_ratio = (last.hwm.saturating_sub(last.idle_rss) as f64)
                / (first.hwm.saturating_sub(first.idle_rss).max(1) as f64);
            let size_ratio = last.n as f64 / first.n as f64;
            md(format!(
                "From {} to {} findings ({size_ratio:.0}×): the time per finding changes by \
                 {time_ratio:.2}× ({}); the memory above idle grows {mem_ratio:.1}× ({}).",
                first.n,
                last.n,
                if time_ratio <= 1.5 {
                    "time grows about linearly"
                } else {
                    "time grows faster than linearly"
                },
                if mem_ratio < size_ratio / 4.0 {
                    "far less than the size: memory is bounded, not per finding"
                } else {
                    "memory grows with the burst"
                },
            ));
            md("");
            summary(
                format!(
                    "10. scale: burst of {} / {} findings, time per 1,000 and peak memory",
                    first.n, last.n
                ),
                format!(
                    "{:.0} ms, {} / {:.0} ms, {}",
                    first.processing / (first.n as f64 / 1000.0),
                    mib(first.hwm),
                    last.processing / (last.n as f64 / 1000.0),
                    mib(last.hwm)
                ),
            );
        }
    }
}

// ---- §4 audit ---------------------------------------------------------------------------------

fn audit(c: &Counts) {
    let n = c.events;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    let store = Store::open(&db).expect("store opens");
    let start = Instant::now();
    let base = Utc::now() - chrono::Duration::days(30);
    // As `benches/core.rs`: 1,000 actors, 10,000 findings, 20 kinds.
    for i in 0..n {
        let actor = Actor::Discord {
            id: format!("{}", 100_000 + i % 1000),
            name: format!("user{}", i % 1000),
        };
        let kind = EventKind::ALL[(i % 20) as usize];
        let ev = NewEvent::new(base + chrono::Duration::seconds(i as i64), actor, kind)
            .finding(format!("finding-{}", i % 10_000))
            .detail(json!({ "i": i }));
        store.append_audit(ev).expect("append");
    }
    store.flush().expect("flush");
    let built = start.elapsed();

    let time_queries = |count: usize, q: &dyn Fn(usize) -> AuditQuery, expect: usize| {
        let mut v = Vec::with_capacity(count);
        for k in 0..count {
            let q = q(k);
            let t = Instant::now();
            let r = store.query_audit(&q).expect("query");
            v.push(ms(t.elapsed()));
            assert_eq!(r.len(), expect, "{q:?}");
        }
        v
    };
    let per_actor = (n / 1000) as usize;
    let per_finding = (n / 10_000) as usize;
    // Different actors and findings each time (the first 1,000 of each are cold, as in use).
    let actor = |k: usize| format!("discord:{}", 100_000 + (k * 7) % 1000);
    let finding = |k: usize| format!("finding-{}", (k * 13) % 10_000);
    let q = c.queries;
    let by_actor_50 = time_queries(
        q,
        &|k| AuditQuery {
            actor: Some(actor(k)),
            limit: Some(50),
            ..Default::default()
        },
        50.min(per_actor),
    );
    let by_finding_50 = time_queries(
        q,
        &|k| AuditQuery {
            finding_id: Some(finding(k)),
            limit: Some(50),
            ..Default::default()
        },
        50.min(per_finding),
    );
    let by_finding_all = time_queries(
        q,
        &|k| AuditQuery {
            finding_id: Some(finding(k)),
            ..Default::default()
        },
        per_finding,
    );
    let by_actor_all = time_queries(
        q / 4,
        &|k| AuditQuery {
            actor: Some(actor(k)),
            ..Default::default()
        },
        per_actor,
    );
    drop(store);

    // Export with the real binary, into a file.
    let mut exports = vec![];
    let mut size = 0;
    for _ in 0..c.exports {
        let out = dir.path().join("export.jsonl");
        let t = Instant::now();
        let status = std::process::Command::new(system::hanko_bin())
            .args(["audit", "export", "--format", "jsonl", "--db"])
            .arg(&db)
            .stdout(std::fs::File::create(&out).unwrap())
            .status()
            .expect("hanko audit export");
        exports.push(t.elapsed());
        assert!(status.success(), "hanko audit export: {status}");
        size = std::fs::metadata(&out).unwrap().len();
        let lines =
            std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&out).unwrap()))
                .count();
        assert_eq!(lines as u64, n, "one line per event");
        std::fs::remove_file(&out).unwrap();
    }
    let out = dir.path().join("export.csv");
    let t = Instant::now();
    let status = std::process::Command::new(system::hanko_bin())
        .args(["audit", "export", "--format", "csv", "--db"])
        .arg(&db)
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .expect("hanko audit export");
    let csv_time = t.elapsed();
    assert!(status.success());
    let csv_size = std::fs::metadata(&out).unwrap().len();
    exports.sort();
    let export_median = exports[exports.len() / 2];

    md(format!(
        "A store with {n} audit events (as `benches/core.rs` builds it: 1,000 actors, 10,000 \
         findings, 20 kinds, one event a second; built in {:.0} s, {:.0} events/s). Each query is \
         timed alone through `Store::query_audit` (what `hanko audit query` and `/audit` call), \
         {q} times with a different actor or finding each time; results newest first. Export is \
         the release binary, `hanko audit export --db DIR --format …` into a file, process start \
         to exit.",
        built.as_secs_f64(),
        n as f64 / built.as_secs_f64()
    ));
    md("");
    md("| query over the log (ms) | n | min | p50 | p99 | max |");
    md("|---|---|---|---|---|---|");
    let (r1, a50_p50, a50_p99) = row(
        &format!("by actor, newest 50 (of {per_actor})"),
        &by_actor_50,
    );
    let (r2, f50_p50, f50_p99) = row(
        &format!("by finding, newest 50 (of {per_finding})"),
        &by_finding_50,
    );
    let (r3, _, _) = row(&format!("by finding, all {per_finding}"), &by_finding_all);
    let (r4, aall_p50, aall_p99) = row(&format!("by actor, all {per_actor}"), &by_actor_all);
    for r in [&r1, &r2, &r3, &r4] {
        md(r);
    }
    md("");
    md("| export of every event | time | size |");
    md("|---|---|---|");
    md(format!(
        "| `--format jsonl` (median of {}: {}) | {:.2} s | {:.1} MB ({size} bytes) |",
        exports.len(),
        exports
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        export_median.as_secs_f64(),
        size as f64 / 1e6
    ));
    md(format!(
        "| `--format csv` (one run) | {:.2} s | {:.1} MB ({csv_size} bytes) |",
        csv_time.as_secs_f64(),
        csv_size as f64 / 1e6
    ));
    md("");
    summary(
        format!("4. audit over {n} events: by actor, newest 50, p50 / p99 over {q}"),
        format!(
            "{} ms / {} ms (all {per_actor}: {} ms / {} ms)",
            fmt_ms(a50_p50),
            fmt_ms(a50_p99),
            fmt_ms(aall_p50),
            fmt_ms(aall_p99)
        ),
    );
    summary(
        format!("4. audit over {n} events: by finding, newest 50, p50 / p99 over {q}"),
        format!("{} ms / {} ms", fmt_ms(f50_p50), fmt_ms(f50_p99)),
    );
    summary(
        format!("4. audit export of {n} events (`hanko audit export`, jsonl)"),
        format!(
            "{:.2} s, {:.1} MB",
            export_median.as_secs_f64(),
            size as f64 / 1e6
        ),
    );
}

// ---- §5 footprint -----------------------------------------------------------------------------

/// One start of `hanko run` on the store in `dir`: (spawn → READY sent, spawn → /healthz ok,
/// RSS after `idle`, SIGTERM → exit).
/// One start of `hanko run`; `aws` answers its sts:GetCallerIdentity (moto), as AWS would.
async fn one_start(dir: &Path, gd: &str, aws: &str, idle: Duration) -> (f64, f64, u64, f64) {
    let fake = DiscordFake::start().await;
    let http = free_addr();
    let config = write_config(
        &fake,
        dir,
        http,
        "guardduty = true\npoll_interval = \"10s\"\nmin_severity = 4.0",
    );
    let mut bot = Hanko::spawn(
        &config,
        http,
        &[
            ("AWS_ENDPOINT_URL", aws.to_string()),
            ("AWS_ENDPOINT_URL_GUARDDUTY", gd.to_string()),
        ],
        &dir.join("hanko.log"),
    );
    let spawned = bot.spawned_at;
    let healthy = bot.wait_healthy(WAIT).await;
    let ready = fake
        .wait_for_frame(|f| f.outgoing && f.t.as_deref() == Some("READY"), WAIT)
        .await
        .unwrap()
        .at;
    tokio::time::sleep(idle).await;
    let (rss, _) = bot.memory_kib();
    let stopped = bot.stop();
    fake.shutdown().await;
    (
        ms_between(spawned, ready),
        ms_between(spawned, healthy),
        rss,
        ms(stopped),
    )
}

async fn footprint(c: &Counts) {
    let gd = standin::Standin::start("bench-detector", Vec::new()).await;
    // hanko proves its own account at start (sts:GetCallerIdentity) before it plans: against
    // a closed port the SDK's retries alone took 1.6 s of the start-up.
    let moto = moto::Moto::start();
    let idle = Duration::from_secs(3);
    let mut empty = vec![];
    for _ in 0..c.startups {
        let dir = tempfile::tempdir().unwrap();
        empty.push(one_start(dir.path(), &gd.endpoint(), &moto.endpoint(), idle).await);
    }

    // A store holding `stored` findings, written through the library as ingest does
    // (`Store::upsert_finding`, one transaction with its audit event each).
    let stored = c.stored;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    {
        let store = Store::open(&dir.path().join("store")).expect("store");
        let now = Utc::now();
        for d in generated(stored) {
            let f = hanko::finding::parse_document(&standin::to_api_shape(d).to_string())
                .expect("parses")
                .remove(0);
            store
                .upsert_finding(&f, &Actor::System, now)
                .expect("stored");
        }
        store.flush().expect("flush");
        assert_eq!(store.finding_count(), stored as u64);
    }
    let built = t.elapsed();
    let store_size = dir_size(&dir.path().join("store"));
    let mut full = vec![];
    for _ in 0..c.startups.min(3) {
        full.push(one_start(dir.path(), &gd.endpoint(), &moto.endpoint(), idle).await);
    }

    let med = |v: &[(f64, f64, u64, f64)], f: fn(&(f64, f64, u64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        (system::pct(&x, 0.5), x[0], x[x.len() - 1])
    };
    md(format!(
        "The release binary, `hanko run` against the Discord fake (GuardDuty ingest on, pointed at \
         an empty stand-in). Start-up: from spawning the process to the fake writing READY on the \
         gateway (after HELLO and IDENTIFY), and to `/healthz` answering 200 (polled every 2 ms). \
         Resident memory (VmRSS from `/proc`) {} s after `/healthz` was ok. {} starts on a fresh \
         store; {} on a store holding {stored} findings ({:.0} MB on disk), written beforehand \
         through the library as ingest does (`Store::upsert_finding`, one transaction with its \
         audit event each; {:.0} s), so no pending requests; median (min–max).",
        idle.as_secs(),
        empty.len(),
        full.len(),
        store_size as f64 / 1e6,
        built.as_secs_f64()
    ));
    md("");
    md("| store | spawn → READY (ms) | spawn → /healthz ok (ms) | resident memory | SIGTERM → exit (ms) |");
    md("|---|---|---|---|---|");
    let mut lines = vec![];
    for (name, v) in [("empty", &empty), (&*format!("{stored} findings"), &full)] {
        let (r, r0, r1) = med(v, |x| x.0);
        let (h, h0, h1) = med(v, |x| x.1);
        let (m, m0, m1) = med(v, |x| x.2 as f64);
        let (s, s0, s1) = med(v, |x| x.3);
        md(format!(
            "| {name} | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) | {:.0} ({:.0}–{:.0}) |",
            fmt_ms(r),
            fmt_ms(r0),
            fmt_ms(r1),
            fmt_ms(h),
            fmt_ms(h0),
            fmt_ms(h1),
            mib(m as u64),
            mib(m0 as u64),
            mib(m1 as u64),
            s,
            s0,
            s1
        ));
        lines.push((name.to_string(), h, m));
    }
    md("");
    summary(
        format!(
            "5. start-up to /healthz ok (median of {}; READY sent: {} ms)",
            empty.len(),
            fmt_ms(med(&empty, |x| x.0).0)
        ),
        format!("{} ms", fmt_ms(lines[0].1)),
    );
    summary(
        "5. resident memory: idle (empty store) / after start on a store of stored findings"
            .replace("stored findings", &format!("{stored} findings")),
        format!("{} / {}", mib(lines[0].2 as u64), mib(lines[1].2 as u64)),
    );
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
