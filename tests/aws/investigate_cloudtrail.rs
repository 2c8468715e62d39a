//! `aws::cloudtrail::lookup_key_events` through the real aws-sdk-cloudtrail client (as
//! `AwsClients` builds it: the SDK's own retries off) against the CloudTrail stand-in: the
//! request's shape, paging, the 2-per-second limit, the event cap, retries and refusals.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hanko::aws::cloudtrail::{lookup_key_events, LookupRate, MAX_PAGE, OPERATION, PER_SECOND};
use hanko::aws::{AwsClients, ErrorClass};
use hanko::investigate::{Created, TrailEvent, Window};
use serde_json::{json, Value};

use crate::support::cloudtrail_standin::{events, Lookup, Standin};
use crate::support::guardduty_standin::test_sdk_config;

/// The leaked key of the tests and another key of the same account.
const KEY: &str = "AKIAQNZGKIQY56JQ7WML";
const OTHER_KEY: &str = "AKIAQNZGKIQYOTHER001";
const ACCOUNT: &str = events::ACCOUNT;

/// The client hanko would use in `region`, pointed at the stand-in.
async fn cloudtrail(standin: &Standin, region: &str) -> aws_sdk_cloudtrail::Client {
    let conf = standin.sdk_config(&test_sdk_config().await, region);
    AwsClients::from_sdk_config(&conf, false)
        .cloudtrail()
        .clone()
}

fn window(now: DateTime<Utc>) -> Window {
    Window::back_from(now, chrono::Duration::hours(24))
}

fn lookups_in(standin: &Standin, region: &str) -> Vec<Lookup> {
    standin
        .lookups()
        .into_iter()
        .filter(|l| l.region == region)
        .collect()
}

/// No three lookups of one (signer, region) within a second, measured at the stand-in.
fn assert_within_rate(lookups: &[Lookup]) {
    let mut at: Vec<_> = lookups.iter().map(|l| l.at).collect();
    at.sort();
    for w in at.windows(PER_SECOND + 1) {
        let span = w[PER_SECOND].duration_since(w[0]);
        assert!(
            span >= Duration::from_secs(1),
            "{} lookups within {span:?}",
            PER_SECOND + 1
        );
    }
}

fn assert_newest_first(events: &[TrailEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].event_time >= pair[1].event_time,
            "{:?} before {:?}",
            pair[0].event_time,
            pair[1].event_time
        );
    }
}

#[tokio::test]
async fn lookup_asks_for_the_key_in_the_window_and_reads_what_it_did() {
    let standin = Standin::start_alone().await;
    let now = Utc::now();
    let t = |mins: i64| now - chrono::Duration::minutes(mins);
    standin.add(
        "us-east-2",
        [
            events::read(
                KEY,
                "us-east-2",
                "ec2.amazonaws.com",
                "DescribeInstances",
                t(50),
            ),
            events::run_instances(KEY, "us-east-2", &["i-0abc1234def567890"], t(40)),
            events::put_bucket_policy(KEY, "us-east-2", "loot", true, t(30)),
            events::failed(
                events::run_instances(KEY, "us-east-2", &["i-0abc1234def567891"], t(20)),
                "Client.UnauthorizedOperation",
            ),
            // Another key, and the same key outside the window: not asked for.
            events::read(
                OTHER_KEY,
                "us-east-2",
                "s3.amazonaws.com",
                "ListBuckets",
                t(10),
            ),
            events::read(
                KEY,
                "us-east-2",
                "s3.amazonaws.com",
                "ListBuckets",
                t(25 * 60),
            ),
        ],
    );
    let ct = cloudtrail(&standin, "us-east-2").await;
    let rate = LookupRate::new();
    let w = window(now);
    let (got, capped) = lookup_key_events(&ct, &rate, ACCOUNT, "us-east-2", KEY, &w, 1000)
        .await
        .expect("lookup");
    assert!(!capped);

    // The request, as the API reference describes it.
    let lookups = standin.lookups();
    assert_eq!(lookups.len(), 1);
    let l = &lookups[0];
    assert_eq!((l.status, l.region.as_str()), (200, "us-east-2"));
    assert_eq!(l.signer_key, "testing");
    assert_eq!(
        l.body["LookupAttributes"],
        json!([{"AttributeKey": "AccessKeyId", "AttributeValue": KEY}])
    );
    assert_eq!(l.body["MaxResults"], json!(MAX_PAGE));
    assert!(l.body.get("NextToken").is_none());
    // awsJson1_1 timestamps: epoch seconds, here to the millisecond.
    let secs = |v: &Value| v.as_f64().expect("epoch seconds");
    for (sent, want) in [(&l.body["StartTime"], w.start), (&l.body["EndTime"], w.end)] {
        let want = want.timestamp_millis() as f64 / 1000.0;
        assert!((secs(sent) - want).abs() < 0.000_5, "{sent} is not {want}");
    }

    // What came back: the key's four events in the window, newest first, read.
    let names: Vec<&str> = got.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "RunInstances",
            "PutBucketPolicy",
            "RunInstances",
            "DescribeInstances"
        ]
    );
    assert_newest_first(&got);
    assert_eq!(
        got[0].error_code.as_deref(),
        Some("Client.UnauthorizedOperation")
    );
    assert!(got[0].created.is_empty(), "a failed launch created nothing");
    assert_eq!(
        got[1].created,
        vec![Created::BucketPolicy {
            bucket: "loot".into(),
            public: true
        }]
    );
    assert_eq!(
        got[2].created,
        vec![Created::Instance {
            id: "i-0abc1234def567890".into()
        }]
    );
    assert_eq!(got[3].read_only, Some(true));
    assert_eq!(got[2].read_only, Some(false));
    assert_eq!(
        got[2].event_time.map(|t| t.timestamp()),
        Some(t(40).timestamp())
    );
    assert_eq!(got[2].region, "us-east-2");
    assert_eq!(got[2].source_ip.as_deref(), Some(events::SOURCE_IP));
}

#[tokio::test]
async fn a_thousand_events_are_twenty_pages_within_the_rate_in_two_regions_at_once() {
    let standin = Standin::start_alone().await;
    let now = Utc::now();
    let newest = now - chrono::Duration::minutes(1);
    for region in ["us-east-1", "us-east-2"] {
        standin.add(region, events::bulk(KEY, region, 1000, newest));
        standin.add(region, events::bulk(OTHER_KEY, region, 30, newest));
    }
    let (east1, east2) = (
        cloudtrail(&standin, "us-east-1").await,
        cloudtrail(&standin, "us-east-2").await,
    );
    let rate = LookupRate::new();
    let w = window(now);
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        lookup_key_events(&east1, &rate, ACCOUNT, "us-east-1", KEY, &w, 1000),
        lookup_key_events(&east2, &rate, ACCOUNT, "us-east-2", KEY, &w, 1000),
    );
    let elapsed = started.elapsed();
    for (region, result) in [("us-east-1", a), ("us-east-2", b)] {
        let (got, capped) = result.expect("lookup");
        assert_eq!(got.len(), 1000, "{region}");
        assert!(!capped, "{region}: every event was read");
        assert_newest_first(&got);
        assert!(got.iter().all(|e| e.region == region));
        let mut ids: Vec<&str> = got.iter().map(|e| e.event_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000, "{region}: no event twice");

        let lookups = lookups_in(&standin, region);
        assert_eq!(lookups.len(), 20, "{region}: 1,000 events in pages of 50");
        assert!(lookups.iter().all(|l| l.status == 200));
        // Every page asks with the first page's parameters and the token it was given.
        let mut first = lookups[0].body.clone();
        assert!(first.get("NextToken").is_none());
        first.as_object_mut().unwrap().remove("NextToken");
        for l in &lookups[1..] {
            let mut params = l.body.clone();
            let token = params.as_object_mut().unwrap().remove("NextToken");
            assert!(
                token.is_some_and(|t| t.is_string()),
                "{region}: page without token"
            );
            assert_eq!(params, first, "{region}: same parameters on every page");
        }
        assert_within_rate(&lookups);
    }
    assert_eq!(standin.rate_violations(), 0);
    // The regions were asked side by side: each region's lookups overlap the other's.
    let (r1, r2) = (
        lookups_in(&standin, "us-east-1"),
        lookups_in(&standin, "us-east-2"),
    );
    assert!(r2[0].at < r1[19].at && r1[0].at < r2[19].at);
    // 20 pages at 2 a second take 9.5 s at least (the first two go at once); both regions
    // together should not take twice that.
    assert!(elapsed >= Duration::from_millis(9_450), "{elapsed:?}");
    println!("1,000 events in each of two regions: {elapsed:?}");
}

#[tokio::test]
async fn the_lookup_stops_at_max_events() {
    let standin = Standin::start_alone().await;
    let now = Utc::now();
    standin.add(
        "eu-west-1",
        events::bulk(KEY, "eu-west-1", 200, now - chrono::Duration::minutes(1)),
    );
    let ct = cloudtrail(&standin, "eu-west-1").await;
    let rate = LookupRate::new();
    let w = window(now);
    // (max_events, pages asked, events, capped)
    for (max, pages, want, capped) in [
        (120, 3, 120, true),
        (100, 2, 100, true),
        (200, 4, 200, false),
        (1000, 4, 200, false),
        (7, 1, 7, true),
    ] {
        standin.clear_lookups();
        let (got, was_capped) = lookup_key_events(&ct, &rate, ACCOUNT, "eu-west-1", KEY, &w, max)
            .await
            .expect("lookup");
        assert_eq!(got.len(), want, "max {max}");
        assert_eq!(was_capped, capped, "max {max}");
        assert_eq!(standin.lookups().len(), pages, "max {max}");
        assert_newest_first(&got);
        let page = standin.lookups()[0].body["MaxResults"].as_i64();
        assert_eq!(page, Some((max as i64).min(50)), "max {max}");
    }
    // Exactly as many as there are: all of them, not capped.
    standin.add(
        "eu-west-2",
        events::bulk(KEY, "eu-west-2", 100, now - chrono::Duration::minutes(1)),
    );
    let ct2 = cloudtrail(&standin, "eu-west-2").await;
    let (got, capped) = lookup_key_events(&ct2, &rate, ACCOUNT, "eu-west-2", KEY, &w, 100)
        .await
        .expect("lookup");
    assert_eq!((got.len(), capped), (100, false));
}

#[tokio::test]
async fn throttling_is_retried_to_completion() {
    let standin = Standin::start_alone().await;
    let now = Utc::now();
    standin.add(
        "us-east-1",
        events::bulk(KEY, "us-east-1", 60, now - chrono::Duration::minutes(1)),
    );
    standin.throttle_next(2);
    let ct = cloudtrail(&standin, "us-east-1").await;
    let rate = LookupRate::new();
    let (got, capped) =
        lookup_key_events(&ct, &rate, ACCOUNT, "us-east-1", KEY, &window(now), 1000)
            .await
            .expect("throttling is retried");
    assert_eq!((got.len(), capped), (60, false));
    let lookups = standin.lookups();
    let answers: Vec<(u16, Option<&str>)> = lookups
        .iter()
        .map(|l| (l.status, l.error.as_deref()))
        .collect();
    assert_eq!(
        answers,
        vec![
            (400, Some("ThrottlingException")),
            (400, Some("ThrottlingException")),
            (200, None),
            (200, None),
        ]
    );
    // Retries pass the limiter too.
    assert_within_rate(&lookups);
    assert_eq!(standin.rate_violations(), 0);
}

#[tokio::test]
async fn every_attempt_is_one_request_and_the_attempts_are_bounded() {
    // The SDK's own retries are off: five attempts are five requests, then the error.
    let standin = Standin::start_alone().await;
    let now = Utc::now();
    standin.add(
        "us-east-1",
        events::bulk(KEY, "us-east-1", 3, now - chrono::Duration::minutes(1)),
    );
    standin.throttle_next(5);
    let ct = cloudtrail(&standin, "us-east-1").await;
    let err = lookup_key_events(
        &ct,
        &LookupRate::new(),
        ACCOUNT,
        "us-east-1",
        KEY,
        &window(now),
        1000,
    )
    .await
    .expect_err("five throttled attempts");
    assert_eq!(err.class, ErrorClass::Retryable);
    assert_eq!(err.code.as_deref(), Some("ThrottlingException"));
    assert_eq!(standin.lookups().len(), 5);
}

#[tokio::test]
async fn access_denied_is_forbidden_with_its_code_and_not_retried() {
    let standin = Standin::start_alone().await;
    let now = Utc::now();
    standin.add(
        "us-east-1",
        events::bulk(KEY, "us-east-1", 3, now - chrono::Duration::minutes(1)),
    );
    standin.deny(true);
    let ct = cloudtrail(&standin, "us-east-1").await;
    let rate = LookupRate::new();
    let err = lookup_key_events(&ct, &rate, ACCOUNT, "us-east-1", KEY, &window(now), 1000)
        .await
        .expect_err("denied");
    assert_eq!(err.class, ErrorClass::Forbidden);
    assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
    assert_eq!(err.operation, OPERATION);
    assert_eq!(err.resource, KEY);
    assert!(
        err.message.contains("cloudtrail:LookupEvents"),
        "{}",
        err.message
    );
    assert!(!err.message.contains('\n'));
    assert_eq!(standin.lookups().len(), 1);
    // Granted again: the same lookup works.
    standin.deny(false);
    let (got, _) = lookup_key_events(&ct, &rate, ACCOUNT, "us-east-1", KEY, &window(now), 1000)
        .await
        .expect("allowed");
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn the_stand_in_refuses_what_cloudtrail_refuses() {
    use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;

    let standin = Standin::start_alone().await;
    let now = Utc::now();
    standin.add(
        "us-east-1",
        events::bulk(KEY, "us-east-1", 120, now - chrono::Duration::minutes(1)),
    );
    let ct = cloudtrail(&standin, "us-east-1").await;
    let by_key = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::AccessKeyId)
        .attribute_value(KEY)
        .build()
        .unwrap();
    let at = |t: DateTime<Utc>| aws_smithy_types::DateTime::from_secs(t.timestamp());
    let code = |r: Result<_, aws_sdk_cloudtrail::error::SdkError<_, _>>| match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().unwrap_or("no code").to_string(),
    };
    let rest = || tokio::time::sleep(Duration::from_millis(1_100));

    // The start after the end.
    let r = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .start_time(at(now))
        .end_time(at(now - chrono::Duration::hours(1)))
        .send()
        .await;
    assert_eq!(code(r), "InvalidTimeRangeException");
    // MaxResults outside 1..=50.
    let r = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .max_results(51)
        .send()
        .await;
    assert_eq!(code(r), "InvalidMaxResultsException");
    rest().await;
    // Two lookup attributes.
    let r = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .lookup_attributes(by_key.clone())
        .send()
        .await;
    assert_eq!(code(r), "InvalidLookupAttributesException");
    // A token with other parameters than it was issued for.
    let first = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .max_results(50)
        .send()
        .await
        .expect("first page");
    assert_eq!(first.events().len(), 50);
    let token = first.next_token().expect("more remain").to_string();
    rest().await;
    let r = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .max_results(20)
        .next_token(&token)
        .send()
        .await;
    assert_eq!(code(r), "InvalidNextTokenException");
    // With the same parameters it serves the rest, and the last page has no token.
    let second = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .max_results(50)
        .next_token(&token)
        .send()
        .await
        .expect("second page");
    rest().await;
    let third = ct
        .lookup_events()
        .lookup_attributes(by_key.clone())
        .max_results(50)
        .set_next_token(second.next_token().map(str::to_string))
        .send()
        .await
        .expect("third page");
    assert_eq!(third.events().len(), 20);
    assert_eq!(third.next_token(), None);
    // The API's shapes: ReadOnly a string, CloudTrailEvent a JSON string, EventTime in time.
    let e = &first.events()[0];
    assert_eq!(e.read_only(), Some("true"));
    let record: Value = serde_json::from_str(e.cloud_trail_event().unwrap()).unwrap();
    assert_eq!(record["userIdentity"]["accessKeyId"], KEY);
    assert_eq!(
        e.event_time().map(|t| t.secs()),
        Some((now - chrono::Duration::minutes(1)).timestamp())
    );
    rest().await;
    // A third lookup within a second is throttled and counted.
    for _ in 0..3 {
        let _ = ct
            .lookup_events()
            .lookup_attributes(by_key.clone())
            .send()
            .await;
    }
    assert_eq!(standin.rate_violations(), 1);
    let last = standin.lookups().pop().unwrap();
    assert_eq!(last.error.as_deref(), Some("ThrottlingException"));
}
