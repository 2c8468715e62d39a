//! Process metrics: a few atomic counters, a histogram and the gateway gauge, rendered as
//! Prometheus text by [`crate::http`].
//!
//! Owns the numbers, never their sources: the pipeline's notices, the engine's reports and the
//! ingest loops call the `record_*` methods. Every label is bounded by construction (step
//! outcomes, request states and ingest sources are closed sets; an unknown source becomes
//! `other`), so no finding id, request id or user can ever become a label.
//!
//! May use the core types (`execution`, `approval`) and std atomics; never sled, serenity or
//! the AWS SDK. Gauges read from the store (requests by state) are passed in by the caller.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::approval::RequestState;
use crate::execution::StepOutcome;

/// The ingest sources a label may name; anything else is counted as `other`.
pub const INGEST_SOURCES: [&str; 4] = ["guardduty", "sqs", "securityhub", "other"];

/// Upper bounds (seconds) of the approval-to-contained histogram buckets.
pub const CONTAINED_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

const STEP_OUTCOMES: [StepOutcome; 4] = [
    StepOutcome::Applied,
    StepOutcome::AlreadyInTargetState,
    StepOutcome::Failed,
    StepOutcome::Skipped,
];

/// The counters of one hanko process. Shared as `Arc<Metrics>`; every method takes `&self`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Findings stored as new or changed (an unchanged re-ingest is not counted).
    findings_ingested: AtomicU64,
    /// By [`STEP_OUTCOMES`] position.
    step_outcomes: [AtomicU64; 4],
    /// By [`INGEST_SOURCES`] position.
    ingest_errors: [AtomicU64; 4],
    /// Cards posted to the channel, and findings folded into a digest instead.
    cards_posted: AtomicU64,
    cards_folded: AtomicU64,
    /// Messages that paged `notify.page_roles`, and reminders of unanswered requests.
    pages: AtomicU64,
    escalations: AtomicU64,
    /// Times Discord answered 429 to the outbox (should stay 0).
    discord_rate_limited: AtomicU64,
    /// Cumulative bucket counts are computed at render time; these are per bucket, plus +Inf.
    contained_buckets: [AtomicU64; CONTAINED_BUCKETS.len() + 1],
    contained_count: AtomicU64,
    contained_sum_millis: AtomicU64,
    /// The Discord gateway session is live (READY or RESUMED, not since disconnected).
    gateway_connected: AtomicBool,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record_finding_ingested(&self) {
        self.findings_ingested.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_step_outcome(&self, outcome: StepOutcome) {
        let i = STEP_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.step_outcomes[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an ingest failure of `source` (`guardduty`, `sqs`, `securityhub`; anything else
    /// is counted as `other`, so the label stays bounded).
    pub fn record_ingest_error(&self, source: &str) {
        let i = INGEST_SOURCES
            .iter()
            .position(|s| *s == source)
            .unwrap_or(INGEST_SOURCES.len() - 1);
        self.ingest_errors[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_card_posted(&self) {
        self.cards_posted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_page(&self) {
        self.pages.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_escalation(&self) {
        self.escalations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_cards_folded(&self, n: u64) {
        self.cards_folded.fetch_add(n, Ordering::Relaxed);
    }

    pub fn record_discord_rate_limited(&self) {
        self.discord_rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Time from the approval of a request to its successful execution.
    pub fn record_approval_to_contained(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = CONTAINED_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(CONTAINED_BUCKETS.len());
        self.contained_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.contained_count.fetch_add(1, Ordering::Relaxed);
        self.contained_sum_millis
            .fetch_add((seconds * 1000.0).round() as u64, Ordering::Relaxed);
    }

    pub fn set_gateway_connected(&self, connected: bool) {
        self.gateway_connected.store(connected, Ordering::Relaxed);
    }

    pub fn gateway_connected(&self) -> bool {
        self.gateway_connected.load(Ordering::Relaxed)
    }

    pub fn cards_posted(&self) -> u64 {
        self.cards_posted.load(Ordering::Relaxed)
    }

    pub fn cards_folded(&self) -> u64 {
        self.cards_folded.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4). `requests` is the number of requests
    /// in each state, read from the store by the caller (`None` when the store could not be
    /// read: the gauge is then left out rather than reported as zero).
    pub fn render(&self, requests: Option<&[(RequestState, u64)]>) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "hanko_findings_ingested_total",
            "Findings stored as new or changed.",
            &[("", get(&self.findings_ingested))],
        );
        if let Some(requests) = requests {
            let _ = writeln!(
                out,
                "# HELP hanko_requests Requests in the store, by state.\n# TYPE hanko_requests gauge"
            );
            for (state, n) in requests {
                let _ = writeln!(out, "hanko_requests{{state=\"{}\"}} {n}", state.as_str());
            }
        }
        let outcomes: Vec<(String, u64)> = STEP_OUTCOMES
            .iter()
            .zip(&self.step_outcomes)
            .map(|(o, n)| (format!("outcome=\"{}\"", o.as_str()), get(n)))
            .collect();
        counter(
            &mut out,
            "hanko_step_outcomes_total",
            "Containment steps finished, by outcome.",
            &outcomes
                .iter()
                .map(|(l, n)| (l.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        let sources: Vec<(String, u64)> = INGEST_SOURCES
            .iter()
            .zip(&self.ingest_errors)
            .map(|(s, n)| (format!("source=\"{s}\""), get(n)))
            .collect();
        counter(
            &mut out,
            "hanko_ingest_errors_total",
            "Ingest failures, by source.",
            &sources
                .iter()
                .map(|(l, n)| (l.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        counter(
            &mut out,
            "hanko_cards_posted_total",
            "Messages the outbox posted to the channel (cards and digests).",
            &[("", get(&self.cards_posted))],
        );
        counter(
            &mut out,
            "hanko_pages_total",
            "Cards and digests that mentioned notify.page_roles.",
            &[("", get(&self.pages))],
        );
        counter(
            &mut out,
            "hanko_escalations_total",
            "Reminders posted for Pending requests nobody answered (notify.escalate_after, half the time to live).",
            &[("", get(&self.escalations))],
        );
        counter(
            &mut out,
            "hanko_cards_folded_total",
            "Cards folded into a digest during a burst instead of being posted.",
            &[("", get(&self.cards_folded))],
        );
        counter(
            &mut out,
            "hanko_discord_rate_limited_total",
            "429 answers Discord gave to new messages (the outbox and the score digest).",
            &[("", get(&self.discord_rate_limited))],
        );

        let name = "hanko_approval_to_contained_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a request's approval to its successful execution.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in CONTAINED_BUCKETS.iter().enumerate() {
            cumulative += get(&self.contained_buckets[i]);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += get(&self.contained_buckets[CONTAINED_BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            get(&self.contained_sum_millis) as f64 / 1000.0
        );
        let _ = writeln!(out, "{name}_count {}", get(&self.contained_count));

        let _ = writeln!(
            out,
            "# HELP hanko_gateway_connected 1 while the Discord gateway session is live.\n# TYPE hanko_gateway_connected gauge\nhanko_gateway_connected {}",
            u8::from(self.gateway_connected())
        );
        out
    }
}

/// One counter family: `labels` is `(label set without braces, value)`; `""` for no labels.
fn counter(out: &mut String, name: &str, help: &str, series: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in series {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{text}"))
    }

    #[test]
    fn counters_render_with_bounded_labels() {
        let m = Metrics::new();
        m.record_finding_ingested();
        m.record_finding_ingested();
        m.record_step_outcome(StepOutcome::Applied);
        m.record_step_outcome(StepOutcome::Failed);
        m.record_step_outcome(StepOutcome::Applied);
        m.record_ingest_error("sqs");
        m.record_ingest_error("finding-1234 with a made-up source");
        let text = m.render(Some(&[
            (RequestState::Pending, 3),
            (RequestState::Succeeded, 1),
        ]));
        assert_eq!(
            line(&text, "hanko_findings_ingested_total "),
            "hanko_findings_ingested_total 2"
        );
        assert_eq!(
            line(&text, "hanko_step_outcomes_total{outcome=\"applied\"}"),
            "hanko_step_outcomes_total{outcome=\"applied\"} 2"
        );
        assert_eq!(
            line(&text, "hanko_step_outcomes_total{outcome=\"failed\"}"),
            "hanko_step_outcomes_total{outcome=\"failed\"} 1"
        );
        assert_eq!(
            line(&text, "hanko_ingest_errors_total{source=\"sqs\"}"),
            "hanko_ingest_errors_total{source=\"sqs\"} 1"
        );
        assert_eq!(
            line(&text, "hanko_ingest_errors_total{source=\"other\"}"),
            "hanko_ingest_errors_total{source=\"other\"} 1"
        );
        assert!(!text.contains("finding-1234"), "{text}");
        assert_eq!(
            line(&text, "hanko_requests{state=\"Pending\"}"),
            "hanko_requests{state=\"Pending\"} 3"
        );
        assert_eq!(
            line(&text, "hanko_gateway_connected "),
            "hanko_gateway_connected 0"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.record_approval_to_contained(0.5);
        m.record_approval_to_contained(12.0);
        m.record_approval_to_contained(7200.0);
        m.record_approval_to_contained(f64::NAN);
        let text = m.render(None);
        let b = |le: &str| {
            line(
                &text,
                &format!("hanko_approval_to_contained_seconds_bucket{{le=\"{le}\"}} "),
            )
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
        };
        assert_eq!(b("1"), 2, "0.5 s and the NaN (counted as 0)");
        assert_eq!(b("5"), 2);
        assert_eq!(b("15"), 3);
        assert_eq!(b("3600"), 3);
        assert_eq!(b("+Inf"), 4);
        assert_eq!(
            line(&text, "hanko_approval_to_contained_seconds_count "),
            "hanko_approval_to_contained_seconds_count 4"
        );
        assert_eq!(
            line(&text, "hanko_approval_to_contained_seconds_sum "),
            "hanko_approval_to_contained_seconds_sum 7212.5"
        );
        assert!(!text.contains("hanko_requests{"), "no store, no gauge");
    }
}
