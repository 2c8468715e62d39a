//! Issue 15's figures for the CloudTrail investigation: finding → card with the investigation
//! off and on (the card must not wait for CloudTrail: posted first, edited when the summary is
//! ready), and finding → the summary's edit.
//!
//! The real bot (serenity, the outbox, the investigator) in this process, against the Discord
//! fake; AWS is moto behind the CloudTrail `LookupEvents` stand-in (one endpoint for every
//! service, as `aws.endpoint_url` is in production). Each leaked-key finding has 25 events at
//! the stand-in (3 regions asked: us-east-1, us-east-2 of the config). Findings arrive 1.1 s
//! apart, so none waits for the outbox's post budget (5 per 5.25 s). Times: from
//! `pipeline::accept_in` returning (the finding is stored) to the fake receiving the card's
//! create request, and to the fake receiving the edit that carries the summary.
//!
//! `cargo bench --bench investigate` (needs `moto_server`); `HANKO_BENCH_ROUNDS` (default 20).
//! The lookup of 1,000 events at the stand-in alone is `benches/cloudtrail.rs`.

#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use support::cloudtrail_standin::{events, Standin};
use support::e2e_bot::{Bot, WAIT};
use support::finding_builder::FindingBuilder;
use support::moto;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn line(what: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {what} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        v.len(),
        v.first().copied().unwrap_or(f64::NAN),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

fn key(round: usize, variant: usize) -> String {
    format!("AKIABENCH{variant}{round:010}")
}

async fn run(enabled: bool, rounds: usize) -> (Vec<f64>, Vec<f64>) {
    let moto = moto::shared();
    let port: u16 = moto
        .endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("moto's port");
    let standin = Standin::start_before_moto(port).await;
    let conf = standin.sdk_config(&moto.sdk_config().await, "us-east-1");
    let clients = hanko::aws::ClientFactory::from_sdk_config(conf, None);
    let variant = usize::from(enabled);
    let now = Utc::now();
    for round in 0..rounds {
        let k = key(round, variant);
        let mut records = events::bulk(&k, "us-east-1", 24, now - chrono::Duration::minutes(5));
        records.push(events::run_instances(
            &k,
            "us-east-1",
            &["i-0bench00000000001"],
            now - chrono::Duration::minutes(10),
        ));
        standin.add("us-east-1", records);
    }
    let toggle = format!("\n[investigate]\nenabled = {enabled}\n");
    let bot = Bot::start_with_config(1, clients, |text| text + &toggle).await;
    let fake = &bot.fake;
    let (mut to_card, mut to_summary) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let k = key(round, variant);
        let f = FindingBuilder::new(&format!("bench-inv-{variant}-{round}"))
            .access_key("bench-user", &k)
            .finding_type("UnauthorizedAccess:IAMUser/TorIPCaller")
            .build();
        let app = bot.app();
        let request = hanko::pipeline::accept_in(app, &f, app.clock.now())
            .expect("stored")
            .proposed
            .expect("a request");
        let stored = Instant::now();
        let card = support::e2e_bot::wait_for_card(fake, request).await;
        let posted = fake
            .requests_matching("POST", "/channels/*/messages")
            .into_iter()
            .find(|r| {
                r.response.as_ref().and_then(|b| b["id"].as_str()) == Some(&card.id.to_string())
            })
            .expect("the card's create request");
        to_card.push(posted.received_at.duration_since(stored).as_secs_f64() * 1000.0);
        if enabled {
            fake.wait_for_message(
                |m| {
                    m.id == card.id
                        && m.embeds.first().is_some_and(|e| {
                            e.to_string().contains("What this key did")
                                && e.to_string().contains("25 events")
                        })
                },
                WAIT,
            )
            .await
            .expect("the summary edit");
            let edit = fake
                .requests_matching("PATCH", &format!("/channels/*/messages/{}", card.id))
                .into_iter()
                .find(|r| {
                    r.body
                        .as_ref()
                        .is_some_and(|b| b.to_string().contains("25 events"))
                })
                .expect("the summary's edit request");
            to_summary.push(edit.received_at.duration_since(stored).as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    bot.stop().await;
    (to_card, to_summary)
}

fn main() {
    let rounds: usize = std::env::var("HANKO_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let (off, _) = run(false, rounds).await;
        let (on, summary) = run(true, rounds).await;
        println!("| finding → (ms) | n | min | p50 | p99 | max |");
        println!("|---|---|---|---|---|---|");
        line("card posted, investigation off", off);
        line("card posted, investigation on", on);
        line("summary edit received (25 events, 2 regions)", summary);
    });
}
