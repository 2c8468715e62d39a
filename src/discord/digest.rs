//! The daily posture digest and score drop alerts: the security score, posted where everyone
//! sees it without anyone asking.
//!
//! A [`Digest`] ticks (every [`TICK`] in [`Digest::run`]; tests call [`Digest::tick`] with a
//! chosen `now`, so no test waits for the clock). Each tick:
//!
//! 1. **Digest**: from `posture.digest_at` (UTC) on, once a day, it posts what `/score` shows
//!    ([`score_report`]) to the incident channel. A day whose digest time passed while hanko was
//!    down gets its digest when hanko starts. Nothing is posted while no control has been
//!    evaluated (Security Hub off, or nothing ingested yet): there is no score to show, and the
//!    day is not used up.
//! 2. **Drop alerts**: the current scores ([`posture::scores`] over every stored control
//!    finding) against the previous day's recorded snapshot ([`posture::drops`]); a standard in
//!    an account that fell by more than `posture.drop_alert_points` is announced at once, at
//!    most once a day for each (all those of one tick in one message).
//!
//! # Once a day, not once a restart
//!
//! The day is **claimed in the store before anything is posted** ([`crate::store::Store::claim_day`] with
//! [`DayClaim::Digest`], and [`DayClaim::Drop`] for each alert; the store owns the keys), then
//! the store is flushed, then the message goes out. A restart, a second tick or a later tick the
//! same day sees the claim and posts nothing. A failed post is retried in-process a bounded
//! number of times ([`MAX_ATTEMPTS`]): after a 429 once the `retry_after` Discord gave has
//! passed (read by [`Poster`], from when the answer arrived), after a 5xx or a transport error
//! with a backoff doubling from [`RETRY_BASE`]; then it is given up and logged: a day may lose
//! its digest, it never gets two.
//! A retry after an ambiguous failure (a timeout after Discord created the message) carries the
//! same `nonce` with `enforce_nonce`, so Discord returns the message it already made instead of
//! a second one.
//!
//! Failure modes accepted: a crash between the claim and the post (or a shutdown that aborts the
//! task mid-post) loses that day's digest or alert; so does Discord failing through every retry.
//!
//! # Limits
//!
//! Message content is at most 2,000 characters ([`MAX_CONTENT`]): longer text is split at line
//! boundaries into at most [`MAX_PARTS`] messages, and what does not fit is counted in a last
//! line. Mentions never ping ([`no_pings`]).
//!
//! Posts through [`Poster`] like the outbox, outside its budget: one to [`MAX_PARTS`] posts a
//! day plus rare alerts, and a 429 is retried after its `retry_after` (serenity waits it itself
//! when its ratelimiter is on, see [`crate::discord::ratelimit`]). It reads the store and the
//! settings; it never imports the AWS SDK or sled.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serenity::all::{ChannelId, CreateMessage};
use serenity::http::{Http, HttpError};
use serenity::model::channel::Nonce;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::app::App;
use crate::discord::bot::no_pings;
use crate::discord::commands::score::score_report;
use crate::discord::outbox::status_of;
use crate::discord::ratelimit::{PostError, Poster};
use crate::discord::text::MAX_CONTENT;
use crate::discord::text::{code, plain, truncate};
use crate::posture::{self, ScoreRow};
use crate::store::{DayClaim, StoreError};

/// Time between two ticks of [`Digest::run`].
pub const TICK: Duration = Duration::from_secs(60);
/// Attempts for one message before it is given up (logged).
pub const MAX_ATTEMPTS: u32 = 4;
/// The wait before the first retry after a 5xx or a transport error; doubled before each next
/// one (2 s, 4 s, 8 s). A 429 waits its own `retry_after` instead.
pub const RETRY_BASE: Duration = Duration::from_secs(2);
/// The most messages one digest or alert is split into.
pub const MAX_PARTS: usize = 4;

/// Why a tick could not do its work. Logged; the next tick tries again.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Discord kept answering 429 to the {what} after {attempts} attempt(s)")]
    RateLimited { what: &'static str, attempts: u32 },
    #[error("Discord refused the {what} after {attempts} attempt(s)")]
    Discord {
        what: &'static str,
        attempts: u32,
        #[source]
        source: serenity::Error,
    },
}

/// What one tick posted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Messages of the day's digest posted by this tick (0 when none was due).
    pub digest_messages: usize,
    /// Standard/account rows announced as drops by this tick.
    pub drops: usize,
}

/// The digest task. Build it with [`Digest::new`], then `tokio::spawn(digest.run(shutdown))`.
pub struct Digest {
    app: App,
    poster: Poster,
    channel: ChannelId,
    retry_base: Duration,
}

impl Digest {
    pub fn new(app: App, http: Arc<Http>) -> Self {
        let channel = ChannelId::new(app.settings.discord.channel_id.max(1));
        Digest {
            app,
            poster: Poster::new(http),
            channel,
            retry_base: RETRY_BASE,
        }
    }

    /// Another wait before the first retry after a 5xx or a transport error (tests, so a
    /// failing post does not take 14 s).
    pub fn with_retry_base(mut self, retry_base: Duration) -> Self {
        self.retry_base = retry_base;
        self
    }

    /// Ticks now, then every [`TICK`], until `shutdown` turns true. A tick under way is
    /// finished first (its retries are bounded), so a claimed day is not cut off mid-post.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.tick(self.app.clock.now()).await;
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Does what is due at `now`: the day's digest, then drop alerts. Errors are logged.
    pub async fn tick(&self, now: DateTime<Utc>) -> TickReport {
        let mut report = TickReport::default();
        match self.digest(now).await {
            Ok(posted) => report.digest_messages = posted,
            Err(e) => {
                tracing::error!(error = %crate::discord::redact::chain(&e), "posture digest: not posted")
            }
        }
        match self.drop_alerts(now).await {
            Ok(announced) => report.drops = announced,
            Err(e) => {
                tracing::error!(error = %crate::discord::redact::chain(&e), "posture drop alert: not posted")
            }
        }
        report
    }

    /// Posts the day's digest if it is due and unclaimed; returns the messages posted.
    async fn digest(&self, now: DateTime<Utc>) -> Result<usize, DigestError> {
        let Some(at) = self.app.settings.posture.digest_at else {
            return Ok(0);
        };
        if now.time() < at {
            return Ok(0);
        }
        let today = now.date_naive();
        if self.claimed(&DayClaim::Digest, today)? {
            return Ok(0);
        }
        let store = &self.app.store;
        // Rendered before the claim, so a store error does not use the day up.
        let Some(text) = score_report(store, now)? else {
            return Ok(0);
        };
        if !self.claim(&DayClaim::Digest, today)? {
            return Ok(0); // another replica claimed the day first
        }
        store.flush()?;
        let parts = split_content(&text, MAX_CONTENT, MAX_PARTS);
        for (i, part) in parts.iter().enumerate() {
            let nonce = format!("dg-{}-{i}", today.format("%Y%m%d"));
            self.post(part, &nonce, "score digest").await?;
        }
        tracing::info!(day = %today, messages = parts.len(), "posture digest posted");
        Ok(parts.len())
    }

    /// Announces every standard/account whose score fell by more than the configured points
    /// since the previous day's record and was not announced today; returns how many.
    async fn drop_alerts(&self, now: DateTime<Utc>) -> Result<usize, DigestError> {
        let store = &self.app.store;
        let today = now.date_naive();
        let Some(yesterday) = today
            .pred_opt()
            .map(|d| store.score_snapshot(d))
            .transpose()?
            .flatten()
        else {
            return Ok(0);
        };
        let rows = posture::scores(&store.all_control_findings()?);
        let points = self.app.settings.posture.drop_alert_points;
        let mut lines = Vec::new();
        let mut keys = Vec::new();
        for (row, delta) in posture::drops(&rows, &yesterday, points) {
            let key = drop_claim(row);
            // Claimed here, one transaction each: of several replicas one claims each alert.
            if !self.claim(&key, today)? {
                continue;
            }
            let before = yesterday.row(&row.standard, &row.account_id);
            lines.push(drop_line(row, delta, before));
            keys.push(key);
        }
        if lines.is_empty() {
            return Ok(0);
        }
        store.flush()?;
        let text = format!(
            "**Security score dropped** by more than {points} pts since yesterday's record\n{}",
            lines.join("\n")
        );
        let nonce = drop_nonce(today, &keys);
        for (i, part) in split_content(&text, MAX_CONTENT, MAX_PARTS)
            .iter()
            .enumerate()
        {
            self.post(part, &format!("{nonce}{i}"), "score drop alert")
                .await?;
        }
        tracing::warn!(day = %today, drops = keys.len(), "posture score drop announced");
        Ok(keys.len())
    }

    /// Was `claim` claimed for `day` (or a later day: a clock set back posts nothing twice)?
    fn claimed(&self, claim: &DayClaim, day: NaiveDate) -> Result<bool, StoreError> {
        Ok(self
            .app
            .store
            .claimed_day(claim)?
            .is_some_and(|last| last >= day))
    }

    /// Claims `day` for `claim`; `false` when it (or a later day) was claimed already.
    fn claim(&self, claim: &DayClaim, day: NaiveDate) -> Result<bool, StoreError> {
        self.app.store.claim_day(claim, day)
    }

    /// Posts one message, retrying a 429 after its `retry_after`, 5xx and transport errors
    /// with a doubling wait.
    async fn post(
        &self,
        content: &str,
        nonce: &str,
        what: &'static str,
    ) -> Result<u64, DigestError> {
        let message = CreateMessage::new()
            .content(content)
            .allowed_mentions(no_pings())
            .nonce(Nonce::String(nonce.to_string()))
            .enforce_nonce(true);
        let mut wait = self.retry_base;
        let mut attempt = 1;
        loop {
            match self.poster.create_message(self.channel, &message).await {
                Ok(posted) => return Ok(posted.id.get()),
                Err(PostError::RateLimited { limit, arrived }) => {
                    self.app.metrics.record_discord_rate_limited();
                    if attempt >= MAX_ATTEMPTS {
                        return Err(DigestError::RateLimited {
                            what,
                            attempts: attempt,
                        });
                    }
                    tracing::warn!(
                        attempt,
                        what,
                        retry_after_ms = limit.retry_after.as_millis() as u64,
                        read_from = ?limit.read_from,
                        "Discord answered 429; retrying after its retry_after"
                    );
                    tokio::time::sleep_until(arrived + limit.retry_after).await;
                    attempt += 1;
                }
                Err(PostError::Discord(e)) if attempt < MAX_ATTEMPTS && retryable(&e) => {
                    tracing::warn!(attempt, what, error = %crate::discord::redact::chain(&e), ?wait, "Discord failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                Err(PostError::Discord(source)) => {
                    return Err(DigestError::Discord {
                        what,
                        attempts: attempt,
                        source,
                    })
                }
            }
        }
    }
}

/// 5xx and failures to reach Discord may pass; any other refusal would only repeat (a 429 is
/// [`PostError::RateLimited`], retried after its own wait).
fn retryable(e: &serenity::Error) -> bool {
    match e {
        serenity::Error::Http(HttpError::Request(_)) => true,
        _ => status_of(e).is_some_and(|s| s >= 500),
    }
}

/// The claim of one standard in one account's drop alert.
fn drop_claim(row: &ScoreRow) -> DayClaim {
    DayClaim::Drop {
        account: row.account_id.clone(),
        standard: row.standard.clone(),
    }
}

/// A nonce (Discord allows 25 characters) naming the day and the rows of one alert (hashed
/// as their claims' store keys, as before).
fn drop_nonce(day: NaiveDate, keys: &[DayClaim]) -> String {
    let mut hash = Sha256::new();
    hash.update(day.format("%Y-%m-%d").to_string());
    for key in keys {
        hash.update([0]);
        hash.update(key.to_string());
    }
    let hex: String = hash
        .finalize()
        .iter()
        .take(9)
        .map(|b| format!("{b:02x}"))
        .collect();
    // "da-" + 18 hex + a part digit: 22 characters.
    format!("da-{hex}")
}

/// One line of a drop alert.
fn drop_line(row: &ScoreRow, delta: f64, before: Option<&ScoreRow>) -> String {
    let was = match before {
        Some(b) => format!(
            " (yesterday {}/{}, {:.1} %)",
            b.passed,
            b.total,
            b.percent().unwrap_or(0.0)
        ),
        None => String::new(),
    };
    format!(
        "• {} · account {}: **{}/{} ({:.1} %)** · {:+.1} pts{was}",
        plain(&posture::standard_name(&row.standard)),
        code(&row.account_id),
        row.passed,
        row.total,
        row.percent().unwrap_or(0.0),
        delta,
    )
}

/// Splits `text` at line boundaries into at most `max_parts` messages of at most `max`
/// characters each. A line longer than `max` is cut; lines that do not fit are counted in a
/// last line of the last message.
pub fn split_content(text: &str, max: usize, max_parts: usize) -> Vec<String> {
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut len = 0;
    for line in text.lines() {
        let line = truncate(line, max);
        let line_len = line.chars().count();
        match parts.last_mut() {
            Some(part) if len + 1 + line_len <= max => {
                part.push(line);
                len += 1 + line_len;
            }
            _ => {
                parts.push(vec![line]);
                len = line_len;
            }
        }
    }
    if parts.len() > max_parts {
        let mut omitted: usize = parts.drain(max_parts..).map(|p| p.len()).sum();
        if let Some(last) = parts.last_mut() {
            loop {
                let note = format!("… {omitted} more line(s) not shown");
                // Each kept line takes its newline; the note ends the message.
                let used: usize = last.iter().map(|l| l.chars().count() + 1).sum();
                if used + note.chars().count() <= max {
                    last.push(note);
                    break;
                }
                if last.pop().is_none() {
                    last.push(truncate(&note, max));
                    break;
                }
                omitted += 1;
            }
        }
    }
    parts
        .into_iter()
        .map(|p| p.join("\n"))
        .filter(|p| !p.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split_content("a\nb", 2000, 4), vec!["a\nb"]);
        assert!(split_content("", 2000, 4).is_empty());
    }

    #[test]
    fn long_text_splits_at_lines_within_the_limit() {
        let lines: Vec<String> = (0..30)
            .map(|i| format!("{i:02} {}", "x".repeat(96)))
            .collect();
        let text = lines.join("\n");
        let parts = split_content(&text, 2000, 4);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.chars().count() <= 2000));
        assert_eq!(parts.join("\n"), text, "nothing lost, nothing reordered");
        // 99 characters a line and its newline: 20 lines in 2,000.
        assert!(parts[1].starts_with("20 "), "{}", &parts[1][..10]);
    }

    #[test]
    fn beyond_the_last_part_lines_are_counted_not_lost_silently() {
        let text: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
        // 6 characters a line: two lines fit in 13, three parts at most.
        let parts = split_content(&text.join("\n"), 13, 3);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= 13), "{parts:?}");
        assert_eq!(parts[0], "line 0\nline 1");
        // The last part gives its lines up to the note when it must.
        let parts = split_content(&text.join("\n"), 40, 1);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].chars().count() <= 40, "{parts:?}");
        assert_eq!(parts[0], "line 0\nline 1\n… 8 more line(s) not shown");
    }

    #[test]
    fn an_overlong_line_is_cut() {
        let parts = split_content(&"y".repeat(2500), 2000, 4);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].chars().count(), 2000);
    }

    #[test]
    fn nonces_fit_discord_and_name_the_day_and_rows() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let keys = vec![DayClaim::Drop {
            account: "123456789012".into(),
            standard: "aws-foundational-security-best-practices/v/1.0.0".into(),
        }];
        let n = drop_nonce(day, &keys);
        assert!(format!("{n}{}", MAX_PARTS - 1).len() <= 25, "{n}");
        assert_eq!(n, drop_nonce(day, &keys));
        assert_ne!(n, drop_nonce(day.succ_opt().unwrap(), &keys));
        assert!(format!("dg-{}-{}", day.format("%Y%m%d"), MAX_PARTS - 1).len() <= 25);
    }
}
