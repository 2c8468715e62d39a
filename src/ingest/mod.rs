//! Ingest: the loops that bring findings in from GuardDuty (API polling), EventBridge through
//! SQS, and Security Hub, and hand each one to [`crate::pipeline::accept`].
//!
//! Owns the three sources ([`guardduty`], [`sqs`], [`securityhub`]), their cursors and their
//! health ([`SourceStatus`]), and [`spawn_all`], which starts the configured loops. It may use
//! the AWS SDK clients of those three services, [`crate::store`] (typed methods only),
//! [`crate::pipeline`] and [`crate::finding`]; it never imports serenity or sled, and it never
//! decides anything about requests: the pipeline does.
//!
//! # Exactly once, across restarts
//!
//! Every source stores a finding (through `accept`, which deduplicates by finding id) **before**
//! it moves its cursor or deletes its message, so a crash in between repeats work instead of
//! losing it, and the repeat is a no-op in the store (`Upsert::Unchanged`: no audit event, no
//! second request). A GuardDuty finding that arrives through several sources is one finding:
//! the parsers give it its GuardDuty id whatever the shape.
//!
//! # Source status
//!
//! Each source writes its health through [`Health`] into the store ([`Store::record_source_ok`],
//! [`Store::record_source_failure`]; the SQS loop also [`Store::record_delivery_ms`]), and
//! `/status` reads it back through the same type, [`SourceStatus`] (the store owns the keys:
//! [`crate::store`]). `<source>` is `guardduty:<region>`, `sqs` or `securityhub:<region>`;
//! `last_error` is one line, at most 300 characters, no secrets; `errors_since_ok` is what
//! `/status` shows; `lag_seconds` is the time since the last successful poll.
//!
//! # Errors
//!
//! A failed poll (throttling, expired credentials, network, a store error) is retried with
//! exponential backoff and jitter, and logged once per change of state (ok -> failing at WARN,
//! failing -> ok at INFO), not once per poll; every failure still counts in `errors`. The
//! backoff and the one-line error are [`crate::util`]'s; each loop runs on the deep-stack
//! thread of [`crate::util::deep_stack`], with a runtime of its own.
//!
//! # Endpoints
//!
//! [`load_sdk_config`] uses `aws_config::defaults`, so `AWS_ENDPOINT_URL` and the
//! service-specific `AWS_ENDPOINT_URL_GUARDDUTY`, `AWS_ENDPOINT_URL_SQS` and
//! `AWS_ENDPOINT_URL_SECURITYHUB` apply; an endpoint is forced on every client only when
//! `aws.endpoint_url` is configured.

pub mod guardduty;
pub mod securityhub;
pub mod sqs;

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::aws::AwsError;
use crate::config::AwsSettings;
use crate::finding::{self, Finding, ParseError};
use crate::pipeline::{self, Accepted};

use crate::store::{Store, StoreError, Upsert};
use crate::util::{self, Driver};

/// How far before its cursor a poller looks again, for findings updated while it paged and
/// for clock skew between AWS and hanko. Findings seen twice are `Unchanged` in the store.
pub const CURSOR_OVERLAP: chrono::Duration = chrono::Duration::minutes(2);

/// The longest backoff after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The first backoff after a failure of a loop that has no poll interval (SQS).
const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 300;

/// The status source name of the SQS loop.
pub const SQS_SOURCE: &str = "sqs";

/// The kind of a source name, the bounded label of its metrics: `guardduty:us-east-1` →
/// `guardduty`, `sqs` → `sqs`.
pub fn source_kind(source: &str) -> &str {
    source.split(':').next().unwrap_or(source)
}

/// The source name of the GuardDuty poller of `region` (status keys and cursor).
pub fn guardduty_source(region: &str) -> String {
    format!("guardduty:{region}")
}

/// The source name of the Security Hub poller of `region` (status keys and cursor).
pub fn securityhub_source(region: &str) -> String {
    format!("securityhub:{region}")
}

/// The cursor of the Security Hub posture query (control findings) of one region.
pub fn posture_source(region: &str) -> String {
    format!("securityhub-posture:{region}")
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An AWS call failed; the message is short, for people, and carries no secret.
    #[error(transparent)]
    Aws(Box<AwsError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No GuardDuty detector in the region and none configured.
    #[error("no GuardDuty detector in {region}: enable GuardDuty there or set ingest.detector_ids.{region}")]
    NoDetector { region: String },
    /// A stored cursor that is not an RFC 3339 time.
    #[error("the stored cursor of {cursor} is not an RFC 3339 time: {value:?}")]
    BadCursor { cursor: String, value: String },
    /// The task storing a page ended without an answer (it panicked or was cancelled); the
    /// cursor did not move past that page, so the next poll reads it again.
    #[error("storing a page of findings failed: {0}")]
    Task(String),
}

impl From<AwsError> for IngestError {
    fn from(e: AwsError) -> Self {
        IngestError::Aws(Box::new(e))
    }
}

impl IngestError {
    /// Worth retrying soon (throttling, network, 5xx)? Others still retry, with the same backoff.
    pub fn is_retryable(&self) -> bool {
        matches!(self, IngestError::Aws(e) if e.is_retryable())
    }
}

/// Keeps one source's status keys and decides when to log: once per change of state.
#[derive(Debug)]
pub struct Health {
    store: Store,
    source: String,
    /// Consecutive failures; 0 while healthy.
    failures: u32,
    /// Where failures are counted for `/metrics` (`hanko_ingest_errors_total`), when wired.
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Health {
    pub fn new(store: Store, source: impl Into<String>) -> Health {
        Health {
            store,
            source: source.into(),
            failures: 0,
            metrics: None,
        }
    }

    /// Also counts every failure in `metrics` (`hanko_ingest_errors_total{source}`, labelled
    /// by the source's kind: `guardduty`, `sqs`, `securityhub`).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Health {
        self.metrics = Some(metrics);
        self
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a successful poll.
    pub fn ok(&mut self, now: DateTime<Utc>) {
        if self.failures > 0 {
            tracing::info!(
                source = %self.source,
                failed_polls = self.failures,
                "ingest source recovered"
            );
        }
        self.failures = 0;
        if let Err(e) = self.store.record_source_ok(&self.source, now) {
            tracing::debug!(source = %self.source, error = %e, "cannot write ingest status");
        }
    }

    /// Records a failed poll; logs only when the source goes from ok to failing.
    pub fn failed(&mut self, err: &IngestError, now: DateTime<Utc>) {
        let line = util::one_line(&err.to_string(), MAX_ERROR_CHARS);
        if self.failures == 0 {
            tracing::warn!(
                source = %self.source,
                retryable = err.is_retryable(),
                error = %line,
                "ingest source failing; retrying with backoff (logged again when it recovers)"
            );
        } else {
            tracing::debug!(source = %self.source, error = %line, "ingest poll failed again");
        }
        self.failures = self.failures.saturating_add(1);
        if let Err(e) = self.store.record_source_failure(&self.source, &line, now) {
            tracing::debug!(source = %self.source, error = %e, "cannot write ingest status");
        }
        if let Some(metrics) = &self.metrics {
            metrics.record_ingest_error(source_kind(&self.source));
        }
    }

    /// The wait before the next attempt after `failures` consecutive failures: `base` doubled
    /// per failure, capped at [`MAX_BACKOFF`], with jitter in its upper half.
    pub fn backoff(&self, base: Duration) -> Duration {
        backoff(base, self.failures)
    }
}

/// `base * 2^(failures-1)`, capped at [`MAX_BACKOFF`], jittered into `[ceiling/2, ceiling]`.
pub fn backoff(base: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    util::backoff(base, MAX_BACKOFF, failures, util::Jitter::UpperHalf)
}

/// What one poll did, summed over its findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Findings returned by the source (after client-side filters).
    pub seen: usize,
    pub new: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Documents that did not parse and went to the quarantine.
    pub quarantined: usize,
    /// Requests proposed.
    pub proposed: usize,
    /// Pending requests superseded.
    pub superseded: usize,
    /// Security Hub control findings stored or changed (posture).
    pub posture_changed: usize,
}

impl PollReport {
    fn count(&mut self, accepted: &Accepted) {
        self.seen += 1;
        match accepted.upsert {
            Upsert::New => self.new += 1,
            Upsert::Updated { .. } => self.updated += 1,
            Upsert::Unchanged => self.unchanged += 1,
        }
        self.proposed += usize::from(accepted.proposed.is_some());
        self.superseded += accepted.superseded.len();
    }

    fn add(&mut self, other: &PollReport) {
        self.seen += other.seen;
        self.new += other.new;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.quarantined += other.quarantined;
        self.proposed += other.proposed;
        self.superseded += other.superseded;
        self.posture_changed += other.posture_changed;
    }
}

/// A parsed finding whose id passed [`finding::check_finding_id`]; otherwise the parse error
/// that sends its document to the quarantine, with the reason.
fn checked_id(f: Finding) -> Result<Finding, ParseError> {
    finding::check_finding_id(&f).map(|()| f)
}

/// [`checked_id`] for every finding of one document: one bad id quarantines the document.
fn checked_ids(findings: Vec<Finding>) -> Result<Vec<Finding>, ParseError> {
    findings.into_iter().map(checked_id).collect()
}

/// Hands a parsed finding to the pipeline and counts what happened.
fn accept(
    app: &App,
    finding: &Finding,
    now: DateTime<Utc>,
    report: &mut PollReport,
) -> Result<Accepted, StoreError> {
    let accepted = accept_finding(app, finding, now)?;
    report.count(&accepted);
    Ok(accepted)
}

/// [`accept`] for a page of findings, stored in one transaction ([`pipeline::accept_page_in`]);
/// each is counted as [`accept_finding`] counts it.
fn accept_page(
    app: &App,
    findings: &[Finding],
    now: DateTime<Utc>,
    report: &mut PollReport,
) -> Result<(), StoreError> {
    for accepted in pipeline::accept_page_in(app, findings, now)? {
        count_ingested(app, &accepted);
        report.count(&accepted);
    }
    Ok(())
}

/// `hanko_findings_ingested_total` counts a finding stored as new or changed.
fn count_ingested(app: &App, accepted: &Accepted) {
    if matches!(accepted.upsert, Upsert::New | Upsert::Updated { .. }) {
        app.metrics.record_finding_ingested();
    }
}

/// What every ingest source does with a parsed finding: hands it to the pipeline and counts
/// it in `hanko_findings_ingested_total` when it was stored as new or changed. Counted here,
/// where a finding is stored, not where its card is posted (the outbox may fold it into a
/// digest, or not run at all).
pub fn accept_finding(
    app: &App,
    finding: &Finding,
    now: DateTime<Utc>,
) -> Result<Accepted, StoreError> {
    let accepted = pipeline::accept_in(app, finding, now)?;
    count_ingested(app, &accepted);
    Ok(accepted)
}

/// Quarantines a document that did not parse or has an invalid finding id (the store audits it
/// as `FindingRejected`), keeping at most `ingest.quarantine_max` documents.
fn quarantine(
    app: &App,
    source: &str,
    raw: &str,
    error: &str,
    now: DateTime<Utc>,
    report: &mut PollReport,
) -> Result<u64, StoreError> {
    let id = app
        .store
        .quarantine(source, raw, error, now, app.settings.ingest.quarantine_max)?;
    // Debug formatting: the parse error may quote an id or a value from the document, and a
    // newline in it must not start a forged log line.
    tracing::warn!(
        source,
        quarantine_id = id,
        error = ?error,
        "finding document quarantined"
    );
    report.quarantined += 1;
    Ok(id)
}

/// The stored cursor of `source`, or `default` when there is none.
fn read_cursor(
    store: &Store,
    source: &str,
    default: DateTime<Utc>,
) -> Result<DateTime<Utc>, IngestError> {
    match store.get_cursor(source)? {
        None => Ok(default),
        Some(v) => DateTime::parse_from_rfc3339(&v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| IngestError::BadCursor {
                cursor: source.to_string(),
                value: v.chars().take(64).collect(),
            }),
    }
}

/// Moves the cursor of `source` forward to `to` (never back), after flushing the findings
/// stored before it, so the cursor never gets ahead of what is on disk.
fn advance_cursor(
    store: &Store,
    source: &str,
    current: &mut DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), StoreError> {
    if to > *current {
        store.flush()?;
        store.put_cursor(
            source,
            &to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )?;
        *current = to;
    }
    Ok(())
}

/// Loads the AWS config the way the rest of hanko does: the standard chain, `region`, and the
/// endpoint override only when `aws.endpoint_url` is configured (otherwise aws-config honours
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` itself).
pub async fn load_sdk_config(aws: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = aws.regions.first() {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    loader.load().await
}

/// `conf` with `region`.
pub fn config_in(conf: &SdkConfig, region: &str) -> SdkConfig {
    conf.to_builder()
        .region(Region::new(region.to_string()))
        .build()
}

/// Starts every configured loop: a GuardDuty poller per region (`ingest.guardduty`), the SQS
/// loop (`ingest.sqs_queue_url`), a Security Hub poller per region (`ingest.securityhub`).
/// Each stops promptly when `shutdown` turns `true` (or its sender is dropped).
pub async fn spawn_all(app: App, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let conf = load_sdk_config(&app.settings.aws).await;
    let ingest = app.settings.ingest.clone();
    let mut sources = Vec::new();
    if ingest.guardduty {
        for region in &app.settings.aws.regions {
            let client = aws_sdk_guardduty::Client::new(&config_in(&conf, region));
            sources.push(Source::GuardDuty(guardduty::GuardDutyPoller::new(
                app.clone(),
                client,
                region,
            )));
        }
    }
    if let Some(url) = &ingest.sqs_queue_url {
        // The queue URL names its region; the client signs for the first configured region
        // unless the URL says otherwise.
        let region = sqs::queue_region(url)
            .or_else(|| app.settings.aws.regions.first().cloned())
            .unwrap_or_default();
        let client = aws_sdk_sqs::Client::new(&config_in(&conf, &region));
        sources.push(Source::Sqs(sqs::SqsIngest::new(
            app.clone(),
            client,
            url.clone(),
        )));
    }
    if ingest.securityhub {
        for region in &app.settings.aws.regions {
            let client = aws_sdk_securityhub::Client::new(&config_in(&conf, region));
            sources.push(Source::SecurityHub(securityhub::SecurityHubPoller::new(
                app.clone(),
                client,
                region,
            )));
        }
    }
    tracing::info!(loops = sources.len(), "ingest starting");
    sources
        .into_iter()
        .map(|source| {
            let health =
                Health::new(app.store.clone(), source.name()).with_metrics(app.metrics.clone());
            let run = run_loop(source, health, ingest.poll_interval, shutdown.clone());
            tokio::spawn(async move {
                if let Err(e) = util::on_deep_stack("hanko-ingest", Driver::Own, run).await {
                    let error = aws_smithy_types::error::display::DisplayErrorContext(&e);
                    tracing::error!(%error, "cannot start an ingest loop");
                }
            })
        })
        .collect()
}

/// The stack of the thread each ingest loop runs on (a current-thread runtime of its own, see
/// [`util::deep_stack`]): the SDK's Security Hub deserializer overflows a default tokio worker.
pub const INGEST_THREAD_STACK: usize = util::DEEP_STACK;

/// One ingest source, as the shared loop drives it.
pub enum Source {
    GuardDuty(guardduty::GuardDutyPoller),
    Sqs(sqs::SqsIngest),
    SecurityHub(securityhub::SecurityHubPoller),
}

impl Source {
    /// The status and cursor name: `guardduty:<region>`, `sqs`, `securityhub:<region>`.
    pub fn name(&self) -> String {
        match self {
            Source::GuardDuty(p) => p.source(),
            Source::Sqs(_) => SQS_SOURCE.to_string(),
            Source::SecurityHub(p) => p.source(),
        }
    }

    /// Now, on the application's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Source::GuardDuty(p) => p.now(),
            Source::Sqs(s) => s.now(),
            Source::SecurityHub(p) => p.now(),
        }
    }

    /// One poll. The SQS loop long-polls, so it has no interval of its own.
    pub async fn poll(&mut self) -> Result<PollReport, IngestError> {
        match self {
            Source::GuardDuty(p) => p.poll_once(p.now()).await,
            Source::Sqs(s) => s.poll_once().await.map(|r| r.report),
            Source::SecurityHub(p) => p.poll_once(p.now()).await,
        }
    }

    /// May this replica poll now? The GuardDuty and Security Hub pollers run on the ingest
    /// lease's holder only ([`crate::replicas`]); SQS is consumed by every replica.
    pub fn may_poll(&self) -> bool {
        match self {
            Source::GuardDuty(p) => p.is_leader(),
            Source::Sqs(_) => true,
            Source::SecurityHub(p) => p.is_leader(),
        }
    }

    /// The wait between two successful polls, and the first backoff after a failure.
    fn pacing(&self, poll_interval: Duration) -> (Duration, Duration) {
        match self {
            Source::Sqs(_) => (Duration::ZERO, BASE_BACKOFF),
            _ => (poll_interval, poll_interval.max(BASE_BACKOFF)),
        }
    }
}

/// How often a standby replica looks whether it became the ingest leader.
const STANDBY_RECHECK: Duration = Duration::from_secs(1);

/// The loop shared by every source: poll, record health, wait (the interval, or the backoff
/// after a failure), until shutdown. A poll cut short by shutdown is safe: nothing is
/// acknowledged (cursor, SQS delete) before what it covers is stored.
pub async fn run_loop(
    mut source: Source,
    mut health: Health,
    poll_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (interval, backoff_base) = source.pacing(poll_interval);
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !source.may_poll() {
            // A standby replica: look again a tick later (the lease holder polls).
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_RECHECK.min(interval.max(Duration::from_millis(100)))) => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        let result = tokio::select! {
            r = source.poll() => r,
            _ = shutdown.changed() => break,
        };
        let wait = match result {
            Ok(report) => {
                health.ok(source.now());
                if report.new + report.updated + report.quarantined > 0 {
                    tracing::info!(
                        source = %health.source(),
                        new = report.new,
                        updated = report.updated,
                        quarantined = report.quarantined,
                        proposed = report.proposed,
                        superseded = report.superseded,
                        "ingested"
                    );
                }
                interval
            }
            Err(e) => {
                health.failed(&e, source.now());
                health.backoff(backoff_base)
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
    tracing::info!(source = %health.source(), "ingest loop stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SourceStatus;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 0), Duration::ZERO);
        for (failures, ceiling) in [(1, 10), (2, 20), (3, 40), (6, 300), (40, 300)] {
            let b = backoff(base, failures);
            let ceiling = Duration::from_secs(ceiling);
            assert!(b <= ceiling && b >= ceiling / 2, "{failures}: {b:?}");
        }
    }

    #[test]
    fn status_is_written_once_per_state_change_and_read_back() {
        let store = Store::open_temporary().unwrap();
        let source = guardduty_source("us-east-1");
        let mut h = Health::new(store.clone(), source.clone());
        let t0 = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        h.ok(t0);
        let err = IngestError::NoDetector {
            region: "us-east-1".into(),
        };
        h.failed(&err, t0 + chrono::Duration::seconds(60));
        h.failed(&err, t0 + chrono::Duration::seconds(120));
        assert_eq!(h.failures(), 2);
        let s = SourceStatus::read(&store, &source, t0 + chrono::Duration::seconds(180)).unwrap();
        assert_eq!(s.last_ok, Some(t0));
        assert_eq!(s.lag_seconds, Some(180));
        assert_eq!(s.errors, 2);
        assert_eq!(
            s.last_error.as_deref(),
            Some("no GuardDuty detector in us-east-1: enable GuardDuty there or set ingest.detector_ids.us-east-1")
        );
        assert_eq!(s.last_error_at, Some(t0 + chrono::Duration::seconds(120)));
        assert_eq!(s.errors_since_ok, 2);
        h.ok(t0 + chrono::Duration::seconds(200));
        assert_eq!(h.failures(), 0);
        let s = SourceStatus::read(&store, &source, t0 + chrono::Duration::seconds(200)).unwrap();
        assert_eq!(s.lag_seconds, Some(0));
        assert_eq!(s.errors, 2, "errors is a running total");
    }

    #[test]
    fn errors_are_one_short_line() {
        let long = format!("a\nb  {}", "x".repeat(400));
        let line = util::one_line(&long, MAX_ERROR_CHARS);
        assert!(line.starts_with("a b x"));
        assert_eq!(line.chars().count(), MAX_ERROR_CHARS);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn cursor_moves_forward_only() {
        let store = Store::open_temporary().unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let default = t("2024-01-01T00:00:00Z");
        let mut cur = read_cursor(&store, "x", default).unwrap();
        assert_eq!(cur, default);
        advance_cursor(&store, "x", &mut cur, t("2024-01-02T00:00:00.123Z")).unwrap();
        advance_cursor(&store, "x", &mut cur, t("2024-01-01T12:00:00Z")).unwrap();
        assert_eq!(
            store.get_cursor("x").unwrap().as_deref(),
            Some("2024-01-02T00:00:00.123Z")
        );
        assert_eq!(
            read_cursor(&store, "x", default).unwrap(),
            t("2024-01-02T00:00:00.123Z")
        );
        store.put_cursor("x", "garbage").unwrap();
        assert!(matches!(
            read_cursor(&store, "x", default),
            Err(IngestError::BadCursor { .. })
        ));
    }
}
