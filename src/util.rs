//! Small helpers written once for the whole crate: human durations and times (the config
//! and the CLI), an error on one line ([`one_line`]: AWS errors, ingest status, Security Hub
//! notes), exponential backoff ([`backoff`]: the AWS retry loop and the ingest loops), the one
//! error-id scheme ([`error_id`], [`error_chain`]: what a person is shown and what the log
//! holds under it), in [`deep_stack`], the one launcher of a thread with a deep stack, and
//! [`off_the_worker`], the one way to wait on a blocking call from an async task.
//!
//! Pure but for [`deep_stack`] and [`off_the_worker`] (threads, tokio); imports nothing of
//! hanko.

use chrono::{DateTime, Duration, Utc};

pub mod deep_stack;

pub use deep_stack::{on_deep_stack, DeepStackError, Driver, DEEP_STACK};

/// Runs `wait`, a blocking wait (a DynamoDB answer, a backoff, a frozen test run), so that it
/// stalls no other task: on a worker of a multi-thread tokio runtime the worker's other tasks
/// (a click's acknowledgement, lease renewals) move to another thread first. Elsewhere (a plain
/// thread, a current-thread runtime, where `block_in_place` would panic) it just runs.
pub fn off_the_worker<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

/// Parses a human duration: a whole number followed by `s`, `m`, `h` or `d`
/// (`"60s"`, `"4h"`, `"7d"`). Returns a message suitable for a config error otherwise.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit: write it like 60s, 15m, 4h or 7d"))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{s}` does not start with a number: write it like 60s, 15m, 4h or 7d"
        ));
    }
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}`: {num} is not a whole number"))?;
    let secs_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; use s, m, h or d (60s, 15m, 4h, 7d)"
            ))
        }
    };
    n.checked_mul(secs_per_unit)
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses a point in time: RFC 3339 (`2026-11-28T16:00:00Z`) or an age before `now`
/// (`7d`, `12h`, `30m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    match parse_duration(s) {
        Ok(age) => Ok(now - age),
        Err(_) => Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-11-28T16:00:00Z) nor an age (7d, 12h, 30m)"
        )),
    }
}

/// `s` on one line (every run of whitespace becomes one space), at most `max_chars`
/// characters: a longer one is cut and ends with `…` (counted in `max_chars`).
pub fn one_line(s: &str, max_chars: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        flat.chars()
            .take(max_chars.saturating_sub(1))
            .chain(['…'])
            .collect()
    }
}

/// The length of an error id, in lowercase hex characters.
pub const ERROR_ID_LEN: usize = 8;

/// A fresh error id: [`ERROR_ID_LEN`] lowercase hex characters, shown to the person and logged
/// with the error, so the two can be matched. The one scheme: the Discord adapter, the slash
/// commands and the application layer all use it.
pub fn error_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..ERROR_ID_LEN].to_string()
}

/// `error` and its sources on one line, `: `-separated; a source whose text the line already
/// ends with (reqwest repeats its source's text in its own) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// Where in `[0, ceiling]` a [`backoff`] falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Anywhere in `[0, ceiling]` ("full jitter": retries of one call spread out most).
    Full,
    /// In `[ceiling/2, ceiling]`: a loop that failed waits at least half its ceiling.
    UpperHalf,
}

/// The ceiling of the backoff before retry `n` (1 for the first; 0 counts as 1):
/// `base * 2^(n-1)`, at most `cap`.
pub fn backoff_ceiling(
    base: std::time::Duration,
    cap: std::time::Duration,
    n: u32,
) -> std::time::Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

/// Exponential backoff with jitter: a random wait below [`backoff_ceiling`]`(base, cap, n)`.
pub fn backoff(
    base: std::time::Duration,
    cap: std::time::Duration,
    n: u32,
    jitter: Jitter,
) -> std::time::Duration {
    let ceiling = backoff_ceiling(base, cap, n);
    let ms = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
    let floor = match jitter {
        Jitter::Full => 0,
        Jitter::UpperHalf => ms / 2,
    };
    std::time::Duration::from_millis(floor + fastrand::u64(0..=ms - floor))
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_wait_off_the_worker_lets_the_workers_other_tasks_run() {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let waiter = tokio::spawn(async move {
            let _ = started_tx.send(());
            super::off_the_worker(|| rx.recv_timeout(std::time::Duration::from_secs(5)))
        });
        started_rx.await.unwrap();
        // The only worker is in the wait: this task runs only if the wait handed it over.
        let other = tokio::spawn(async move { tx.send(()).unwrap() });
        assert!(waiter.await.unwrap().is_ok(), "the other task never ran");
        other.await.unwrap();
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations() {
        let table = [
            ("60s", Some(60)),
            ("15m", Some(900)),
            ("4h", Some(14_400)),
            ("7d", Some(604_800)),
            ("4", None),
            ("h", None),
            ("4w", None),
            ("-4h", None),
            ("", None),
            ("99999999999999999999d", None),
        ];
        for (input, want) in table {
            assert_eq!(
                parse_duration(input).ok().map(|d| d.num_seconds()),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn times() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        assert_eq!(
            parse_time("12h", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time("2026-01-01T00:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2025, 12, 31, 23, 0, 0).unwrap()
        );
        assert!(parse_time("yesterday", now).is_err());
    }

    #[test]
    fn one_line_flattens_and_cuts_with_an_ellipsis_within_the_limit() {
        assert_eq!(one_line("a\n  b\tc ", 10), "a b c");
        let cut = one_line(&"x ".repeat(50), 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'), "{cut}");
        assert_eq!(one_line("abc", 3), "abc");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jitters_within_its_ceiling() {
        use std::time::Duration as Std;
        let (base, cap) = (Std::from_millis(200), Std::from_secs(5));
        assert_eq!(backoff_ceiling(base, cap, 0), base);
        assert_eq!(backoff_ceiling(base, cap, 1), base);
        assert_eq!(backoff_ceiling(base, cap, 3), Std::from_millis(800));
        assert_eq!(backoff_ceiling(base, cap, 40), cap);
        for n in [1, 2, 5, 40] {
            let ceiling = backoff_ceiling(base, cap, n);
            assert!(backoff(base, cap, n, Jitter::Full) <= ceiling);
            let upper = backoff(base, cap, n, Jitter::UpperHalf);
            assert!(upper <= ceiling && upper >= ceiling / 2, "{n}: {upper:?}");
        }
    }
}
