//! CloudTrail `LookupEvents` for one access key in one region: what the key did (issue 15,
//! part 3). Read-only; the only permission is `cloudtrail:LookupEvents` (on `*`).
//!
//! Owns [`LookupRate`] (CloudTrail's limit: "two per second, per account, per Region", every
//! attempt counted) and [`lookup_key_events`] (paged with `NextToken`, each page rate-limited
//! and retried with backoff on [`ErrorClass::Retryable`], errors classified once as
//! `cloudtrail:LookupEvents`). The SDK's own retries are off on this client
//! ([`super::AwsClients::cloudtrail`]), so no attempt escapes the limiter; there is no
//! `into_paginator()` for the same reason.
//!
//! It may use the AWS SDK, [`crate::investigate`] (the events it returns, read by
//! [`TrailEvent::parse`]) and [`crate::util`]; it never imports sled or serenity and decides
//! nothing: the application layer chooses the key, the regions and the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cloudtrail::types::{Event, LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::error::{classify, with_retry_policy, RetryPolicy};
use super::{AwsError, ErrorClass};
use crate::investigate::{ApiEvent, TrailEvent, Window};

/// The operation, as IAM names it.
pub const OPERATION: &str = "cloudtrail:LookupEvents";
/// `MaxResults`: the most events one page may hold (the API's maximum, 1 to 50).
pub const MAX_PAGE: i32 = 50;
/// Lookups per (account, region) in any [`RATE_WINDOW`].
pub const PER_SECOND: usize = 2;
/// One second, plus a margin for requests that arrive later than they leave.
pub const RATE_WINDOW: Duration = Duration::from_millis(1_050);
/// Attempts per page: a throttled or failing page is retried with backoff (each attempt
/// waits for the limiter again).
pub const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    base: Duration::from_millis(500),
    cap: Duration::from_secs(8),
};

/// CloudTrail's `LookupEvents` limit, kept per (account, region): at most [`PER_SECOND`]
/// requests in any [`RATE_WINDOW`] (a sliding window). Shared by every lookup of the process,
/// so concurrent investigations of one account wait for each other; different accounts and
/// regions do not.
#[derive(Debug)]
pub struct LookupRate {
    window: Duration,
    /// The send times reserved per (account, region), oldest first.
    slots: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl Default for LookupRate {
    fn default() -> Self {
        LookupRate::new()
    }
}

impl LookupRate {
    pub fn new() -> LookupRate {
        LookupRate::with_window(RATE_WINDOW)
    }

    /// A limiter over another window (tests).
    pub fn with_window(window: Duration) -> LookupRate {
        LookupRate {
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves the earliest send time at or after `now` that keeps (account, region) within
    /// the limit, and returns it: the caller sends then, not before. Each call is one request
    /// (a retry reserves again). `now` does not go backwards between calls.
    pub fn reserve(&self, account: &str, region: &str, now: Instant) -> Instant {
        // A std lock, never held across an await.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let sent = slots
            .entry((account.to_string(), region.to_string()))
            .or_default();
        while sent.front().is_some_and(|t| *t + self.window <= now) {
            sent.pop_front();
        }
        // The reservations are in order and any PER_SECOND + 1 consecutive ones span at least
        // a window: the new one waits for the PER_SECOND-th latest to leave the window.
        let at = match sent.len().checked_sub(PER_SECOND) {
            Some(i) => (sent[i] + self.window).max(now),
            None => now,
        };
        sent.push_back(at);
        at
    }

    /// Waits for a slot of (account, region) ([`LookupRate::reserve`] at the current time).
    pub async fn acquire(&self, account: &str, region: &str) {
        let at = self.reserve(account, region, Instant::now());
        tokio::time::sleep_until(at).await;
    }
}

/// The events of access key `key` in `region` of `account` within `window`, newest first (as
/// CloudTrail returns them), at most `max_events`; the `bool` says the lookup stopped there
/// while older events remained (capped). Every page is asked with the same parameters
/// (`NextToken` is only valid with them), `MaxResults` [`MAX_PAGE`] (less when `max_events`
/// is less), waits for `rate`, and is retried per [`RETRY`] while the error is retryable. A
/// failure returns the error and none of the pages before it.
// `AwsError` is the adapter's one error type, built once per failed call.
#[allow(clippy::result_large_err)]
pub async fn lookup_key_events(
    ct: &aws_sdk_cloudtrail::Client,
    rate: &LookupRate,
    account: &str,
    region: &str,
    key: &str,
    window: &Window,
    max_events: u32,
) -> Result<(Vec<TrailEvent>, bool), AwsError> {
    let max = usize::try_from(max_events).unwrap_or(usize::MAX);
    if max == 0 {
        return Ok((Vec::new(), true));
    }
    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::AccessKeyId)
        .attribute_value(key)
        .build()
        .map_err(|e| {
            AwsError::local(
                ErrorClass::Other,
                OPERATION,
                key,
                format!("the lookup could not be built: {e}"),
            )
        })?;
    let start = smithy_time(window.start);
    let end = smithy_time(window.end);
    let page_size = i32::try_from(max_events).unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut events: Vec<TrailEvent> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0u32;
    loop {
        let page = with_retry_policy(RETRY, || {
            let request = ct
                .lookup_events()
                .lookup_attributes(attribute.clone())
                .start_time(start)
                .end_time(end)
                .max_results(page_size)
                .set_next_token(token.clone());
            async move {
                rate.acquire(account, region).await;
                request
                    .send()
                    .await
                    .map_err(|e| classify(&e, OPERATION, key))
            }
        })
        .await?;
        pages += 1;
        let mut rest = page.events().iter();
        for e in rest.by_ref().take(max - events.len()) {
            events.push(TrailEvent::parse(&api_event(e), region));
        }
        let more_in_page = rest.next().is_some();
        let next = page.next_token().filter(|t| !t.is_empty());
        if events.len() >= max {
            let capped = more_in_page || next.is_some();
            tracing::debug!(
                account,
                region,
                pages,
                events = events.len(),
                capped,
                "CloudTrail lookup done"
            );
            return Ok((events, capped));
        }
        match next {
            Some(t) => token = Some(t.to_string()),
            None => {
                tracing::debug!(
                    account,
                    region,
                    pages,
                    events = events.len(),
                    "CloudTrail lookup done"
                );
                return Ok((events, false));
            }
        }
    }
}

/// A chrono time as the SDK's, to the millisecond.
fn smithy_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

/// The SDK's time as chrono's; `None` out of chrono's range.
fn chrono_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The SDK's event as the fields [`TrailEvent::parse`] reads.
pub fn api_event(e: &Event) -> ApiEvent<'_> {
    ApiEvent {
        event_id: e.event_id(),
        event_name: e.event_name(),
        read_only: e.read_only(),
        event_time: e.event_time().and_then(chrono_time),
        event_source: e.event_source(),
        username: e.username(),
        resources: e
            .resources()
            .iter()
            .map(|r| (r.resource_type(), r.resource_name()))
            .collect(),
        cloud_trail_event: e.cloud_trail_event(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::investigate::Created;

    const W: Duration = Duration::from_millis(1_000);

    fn ms(base: Instant, at: Instant) -> u128 {
        at.duration_since(base).as_millis()
    }

    #[test]
    fn two_per_window_per_account_and_region() {
        let rate = LookupRate::with_window(W);
        let t0 = Instant::now();
        let got: Vec<u128> = (0..7)
            .map(|_| ms(t0, rate.reserve("111111111111", "us-east-1", t0)))
            .collect();
        assert_eq!(got, vec![0, 0, 1000, 1000, 2000, 2000, 3000]);
        // Another region and another account have their own slots.
        assert_eq!(ms(t0, rate.reserve("111111111111", "us-east-2", t0)), 0);
        assert_eq!(ms(t0, rate.reserve("222222222222", "us-east-1", t0)), 0);
        assert_eq!(ms(t0, rate.reserve("222222222222", "us-east-1", t0)), 0);
        assert_eq!(ms(t0, rate.reserve("222222222222", "us-east-1", t0)), 1000);
    }

    #[test]
    fn a_quiet_window_frees_its_slots() {
        let rate = LookupRate::with_window(W);
        let t0 = Instant::now();
        assert_eq!(ms(t0, rate.reserve("a", "r", t0)), 0);
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(ms(t0, rate.reserve("a", "r", t1)), 400);
        // The third waits for the first to leave the window.
        let t2 = t0 + Duration::from_millis(600);
        assert_eq!(ms(t0, rate.reserve("a", "r", t2)), 1000);
        // Long after, two go at once again.
        let t3 = t0 + Duration::from_millis(5_000);
        assert_eq!(ms(t0, rate.reserve("a", "r", t3)), 5_000);
        assert_eq!(ms(t0, rate.reserve("a", "r", t3)), 5_000);
        assert_eq!(ms(t0, rate.reserve("a", "r", t3)), 6_000);
    }

    #[test]
    fn no_window_ever_holds_more_than_two() {
        // Requests at random times; the reserved send times, checked pairwise.
        let rate = LookupRate::with_window(W);
        let t0 = Instant::now();
        let mut now = t0;
        let mut sent = Vec::new();
        for _ in 0..200 {
            now += Duration::from_millis(fastrand::u64(0..400));
            let at = rate.reserve("a", "r", now);
            assert!(at >= now, "never before it is asked");
            sent.push(at);
        }
        sent.sort();
        for w in sent.windows(PER_SECOND + 1) {
            assert!(
                w[PER_SECOND].duration_since(w[0]) >= W,
                "{} requests within {:?}",
                PER_SECOND + 1,
                w[PER_SECOND].duration_since(w[0])
            );
        }
    }

    #[tokio::test]
    async fn acquire_waits_for_the_slot() {
        let rate = LookupRate::new();
        let t0 = Instant::now();
        rate.acquire("a", "r").await;
        rate.acquire("a", "r").await;
        assert!(t0.elapsed() < RATE_WINDOW / 2, "the first two go at once");
        rate.acquire("a", "r").await;
        rate.acquire("a", "r").await;
        // The next two wait one window (a sleep is never early), not two.
        let waited = t0.elapsed();
        assert!(waited >= RATE_WINDOW, "{waited:?}");
        assert!(waited < 2 * RATE_WINDOW, "{waited:?}");
    }

    #[test]
    fn an_sdk_event_reads_like_the_api_sent_it() {
        let record = serde_json::json!({
            "eventID": "e-1", "eventSource": "iam.amazonaws.com", "eventName": "CreateUser",
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.15.0", "readOnly": false,
            "responseElements": {"user": {"userName": "mallory",
                "arn": "arn:aws:iam::123456789012:user/mallory"}}
        });
        let e = Event::builder()
            .event_id("e-1")
            .event_name("CreateUser")
            .read_only("false")
            .access_key_id("AKIAQNZGKIQY56JQ7WML")
            .event_time(aws_smithy_types::DateTime::from_secs(1_715_656_491))
            .event_source("iam.amazonaws.com")
            .username("alice")
            .resources(
                aws_sdk_cloudtrail::types::Resource::builder()
                    .resource_type("AWS::IAM::User")
                    .resource_name("mallory")
                    .build(),
            )
            .cloud_trail_event(record.to_string())
            .build();
        let t = TrailEvent::parse(&api_event(&e), "us-east-2");
        assert_eq!(t.event_id, "e-1");
        assert_eq!(t.event_name, "CreateUser");
        assert_eq!(t.read_only, Some(false));
        assert_eq!(t.region, "us-east-1");
        assert_eq!(t.username.as_deref(), Some("alice"));
        assert_eq!(
            t.event_time,
            DateTime::from_timestamp(1_715_656_491, 0),
            "EventTime in epoch seconds"
        );
        assert_eq!(t.resources.len(), 1);
        assert_eq!(t.resources[0].name, "mallory");
        assert_eq!(
            t.created,
            vec![Created::User {
                name: "mallory".into()
            }]
        );
    }

    #[test]
    fn times_to_the_millisecond() {
        let t = DateTime::from_timestamp(1_715_656_491, 250_000_000).unwrap();
        let s = smithy_time(t);
        assert_eq!((s.secs(), s.subsec_nanos()), (1_715_656_491, 250_000_000));
        assert_eq!(chrono_time(&s), Some(t));
    }
}
