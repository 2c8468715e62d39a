//! The CloudTrail lookup of a leaked key's events (issue 15, part 3), timed against the
//! CloudTrail stand-in of `tests/support/`: `lookup_key_events` for 1,000 events (20 pages of
//! 50) in one region, through the client `AwsClients` builds, with a fresh `LookupRate` each
//! round. The stand-in answers at once, so the time is set by CloudTrail's limit of two lookups
//! per second per account and region (about 9.5 s for 20 pages): what a real account costs at
//! least, before network time.
//!
//! `cargo bench --bench cloudtrail` (3 rounds; `HANKO_BENCH_ROUNDS` sets another count).
//! `HANKO_BENCH_SMOKE=1`, or no `--bench` argument (`cargo test --benches`), runs one round of
//! 100 events: it checks the wiring and measures nothing. Needs nothing outside this process.

#[path = "../tests/support/cloudtrail_standin.rs"]
mod standin;
// The stand-in passes what is not CloudTrail's on to moto with the Security Hub stand-in's
// HTTP client (unused here: this bench runs it alone; the module allows its dead code).
#[path = "../tests/support/securityhub_standin.rs"]
mod securityhub_standin;

use std::time::Instant;

use chrono::Utc;
use hanko::aws::cloudtrail::{lookup_key_events, LookupRate};
use hanko::aws::AwsClients;
use hanko::investigate::Window;
use standin::{events, Standin};

const KEY: &str = "AKIAQNZGKIQY56JQ7WML";
const REGION: &str = "us-east-1";

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let smoke = !benching || std::env::var_os("HANKO_BENCH_SMOKE").is_some();
    let (events_n, rounds) = if smoke {
        (100, 1)
    } else {
        let rounds = std::env::var("HANKO_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        (1000, rounds)
    };

    let standin = Standin::start_alone().await;
    let now = Utc::now();
    standin.add(
        REGION,
        events::bulk(KEY, REGION, events_n, now - chrono::Duration::minutes(1)),
    );
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "hanko-bench",
        ))
        .load()
        .await;
    let ct = AwsClients::from_sdk_config(&standin.sdk_config(&conf, REGION), false)
        .cloudtrail()
        .clone();
    let window = Window::back_from(now, chrono::Duration::hours(24));

    let mut secs = Vec::new();
    for round in 1..=rounds {
        standin.clear_lookups();
        let rate = LookupRate::new();
        let started = Instant::now();
        let (got, capped) = lookup_key_events(
            &ct,
            &rate,
            events::ACCOUNT,
            REGION,
            KEY,
            &window,
            events_n as u32,
        )
        .await
        .expect("the lookup at the stand-in");
        let took = started.elapsed().as_secs_f64();
        assert_eq!(got.len(), events_n);
        assert!(!capped);
        assert_eq!(
            standin.rate_violations(),
            0,
            "the limiter let a request through"
        );
        println!(
            "round {round}: {events_n} events in {} pages: {took:.2} s",
            standin.lookups().len()
        );
        secs.push(took);
    }
    secs.sort_by(|a, b| a.total_cmp(b));
    let median = secs[secs.len() / 2];
    println!(
        "lookup of {events_n} events at the CloudTrail stand-in: median {median:.2} s over {rounds} round(s){}",
        if smoke { " (smoke run: measures nothing)" } else { "" }
    );
}
