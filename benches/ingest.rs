//! Ingest throughput and latency.
//!
//! 1. One GuardDuty poll of 10,000 findings (made from the API fixtures with distinct ids and
//!    times) through the local GuardDuty stand-in: every finding stored and planned, requests
//!    proposed; prints findings per second.
//! 2. SQS (moto): ~200 EventBridge events sent at a steady pace while the SQS loop runs;
//!    prints p50/p99 of the time from a message's `SentTimestamp` (its arrival in SQS) to its
//!    finding and request being stored and flushed.
//!
//! `cargo bench --bench ingest` (needs `moto_server` and the fixtures; `HANKO_FIXTURES`).

#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/moto.rs"]
mod moto;
#[path = "../tests/support/guardduty_standin.rs"]
mod standin;
#[path = "../tests/support/ingest_app.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use hanko::approval::RequestState;
use hanko::ingest::guardduty::GuardDutyPoller;
use hanko::ingest::sqs::SqsIngest;
use hanko::store::Store;
use serde_json::{json, Value};

const FINDINGS: usize = 10_000;
const MESSAGES: usize = 200;

fn main() {
    std::thread::Builder::new()
        .stack_size(hanko::ingest::INGEST_THREAD_STACK)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    guardduty_poll().await;
                    sqs_latency().await;
                })
        })
        .unwrap()
        .join()
        .unwrap();
}

/// `n` findings from the fixtures, with distinct ids and `updatedAt` one millisecond apart.
fn generated(n: usize) -> Vec<Value> {
    let fixtures: Vec<Value> = standin::api_fixtures()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["service"]["archived"] != true)
        .collect();
    let start = Utc::now() - chrono::Duration::hours(1);
    (0..n)
        .map(|i| {
            let mut d = fixtures[i % fixtures.len()].clone();
            d["id"] = json!(format!("{i:032x}"));
            d["arn"] = json!(format!(
                "arn:aws:guardduty:us-east-2:973743533182:detector/d/finding/{i:032x}"
            ));
            let t = start + chrono::Duration::milliseconds(i as i64);
            d["updatedAt"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            d
        })
        .collect()
}

async fn guardduty_poll() {
    let findings = generated(FINDINGS);
    let standin = standin::Standin::start("bench-detector", findings).await;
    let conf = standin::test_sdk_config().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let app = support::app(
        support::settings("min_severity = 0.0"),
        store.clone(),
        conf.clone(),
    );
    let client = standin::guardduty_client(&conf, &standin.endpoint());
    let mut poller = GuardDutyPoller::new(app, client, "us-east-2");

    let started = Instant::now();
    let report = poller.poll_once(Utc::now()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.new, FINDINGS);
    assert_eq!(store.finding_count(), FINDINGS as u64);
    let pending = store
        .requests_in_states(&[RequestState::Pending])
        .unwrap()
        .len();
    assert_eq!(pending, report.proposed);
    println!(
        "ingest/guardduty_poll: {FINDINGS} findings stored and planned ({} requests proposed) in one poll \
         ({} ListFindings pages, {} GetFindings calls) in {:.2} s: {:.0} findings/s",
        report.proposed,
        standin.requests_to("/findings").len(),
        standin.requests_to("/findings/get").len(),
        elapsed.as_secs_f64(),
        FINDINGS as f64 / elapsed.as_secs_f64()
    );
}

async fn sqs_latency() {
    let moto = moto::Moto::start();
    let conf = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = sqs
        .create_queue()
        .queue_name("hanko-bench")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let app = support::app(
        support::settings("min_severity = 0.0"),
        store.clone(),
        conf.clone(),
    );
    let ingest = SqsIngest::new(app, sqs.clone(), url.clone());

    // The consumer: the real long poll (20 s wait), as `hanko run` does.
    let consumer = tokio::spawn(async move {
        let mut delivery = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        while delivery.len() < MESSAGES && Instant::now() < deadline {
            let r = ingest.poll_once().await.unwrap();
            delivery.extend(r.handled.iter().filter_map(|h| h.delivery));
        }
        delivery
    });
    // The producer: EventBridge at a steady pace, 20 events a second.
    for d in generated(MESSAGES) {
        let event = json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": d["accountId"], "region": d["region"], "time": d["updatedAt"],
            "resources": [], "detail": d,
        });
        sqs.send_message()
            .queue_url(&url)
            .message_body(event.to_string())
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut delivery = consumer.await.unwrap();
    assert_eq!(delivery.len(), MESSAGES, "every message stored");
    delivery.sort();
    let pct = |p: f64| {
        delivery[((delivery.len() as f64 * p).ceil() as usize).clamp(1, delivery.len()) - 1]
    };
    println!(
        "ingest/sqs_latency: {MESSAGES} messages, SentTimestamp -> finding and request stored and flushed: \
         p50 {} ms, p99 {} ms, max {} ms ({} findings, {} pending requests)",
        pct(0.50).as_millis(),
        pct(0.99).as_millis(),
        delivery.last().unwrap().as_millis(),
        store.finding_count(),
        store.requests_in_states(&[RequestState::Pending]).unwrap().len(),
    );
}
