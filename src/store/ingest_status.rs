//! Ingest sources: their cursors ([`Store::get_cursor`], the `cursors` tree) and their health,
//! written by the ingest loops ([`crate::ingest::Health`]),
//! read by `/status` and the tests through the one type [`SourceStatus`].
//!
//! `<source>` is `guardduty:<region>`, `sqs` or `securityhub:<region>`.
//!
//! | `kv` key | value |
//! |---|---|
//! | `ingest.<source>.last_ok` | RFC 3339 time of the last successful poll |
//! | `ingest.<source>.errors` | decimal count of failed polls since the store was created |
//! | `ingest.<source>.errors_since_ok` | decimal count of failed polls since the last successful one (`0` after a success) |
//! | `ingest.<source>.last_error` | one line: the last failure (the caller keeps it short and free of secrets) |
//! | `ingest.<source>.last_error_at` | RFC 3339 time of that failure |
//! | `ingest.<source>.delivery_ms` | decimal milliseconds from the last message's send to its finding being stored (`sqs`) |
//!
//! The bytes every earlier version wrote. Values are trimmed before they are parsed; an
//! unreadable one counts as absent.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, TREE_CURSORS};

/// One status value of one source.
#[derive(Debug, Clone, Copy)]
enum Field {
    LastOk,
    Errors,
    ErrorsSinceOk,
    LastError,
    LastErrorAt,
    DeliveryMs,
}

impl Field {
    fn key(self, source: &str) -> String {
        let field = match self {
            Field::LastOk => "last_ok",
            Field::Errors => "errors",
            Field::ErrorsSinceOk => "errors_since_ok",
            Field::LastError => "last_error",
            Field::LastErrorAt => "last_error_at",
            Field::DeliveryMs => "delivery_ms",
        };
        format!("ingest.{source}.{field}")
    }
}

/// The health of one source, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// When the last poll succeeded.
    pub last_ok: Option<DateTime<Utc>>,
    /// Seconds since `last_ok` (at the time of reading), `None` before the first success.
    pub lag_seconds: Option<i64>,
    /// Failed polls since the store was created.
    pub errors: u64,
    /// Failed polls since the last successful one.
    pub errors_since_ok: u64,
    /// The last failure, one line.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
}

impl SourceStatus {
    /// Reads the status of `source` at `now` ([`Store::source_status`]).
    pub fn read(
        store: &Store,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceStatus, StoreError> {
        store.source_status(source, now)
    }
}

impl Store {
    // Cursors (the `cursors` tree: `<source>` -> the source's own cursor, UTF-8).

    /// The stored cursor of `source`, as the source wrote it.
    pub fn get_cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.get_string(&self.inner.trees.cursors, TREE_CURSORS, source)
    }

    /// Stores the cursor of `source`. Durable at the next flush (ingest flushes the findings
    /// before it moves a cursor).
    pub fn put_cursor(&self, source: &str, value: &str) -> Result<(), StoreError> {
        self.inner
            .trees
            .cursors
            .insert(source.as_bytes(), value.as_bytes())?;
        Ok(())
    }

    // Status (the `kv` tree).

    fn status_time(&self, source: &str, field: Field) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .kv_get(&field.key(source))?
            .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    fn status_count(&self, source: &str, field: Field) -> Result<Option<u64>, StoreError> {
        Ok(self
            .kv_get(&field.key(source))?
            .and_then(|v| v.trim().parse().ok()))
    }

    /// The status of `source` at `now`. Unreadable values count as absent (counts as 0).
    pub fn source_status(
        &self,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceStatus, StoreError> {
        let last_ok = self.status_time(source, Field::LastOk)?;
        Ok(SourceStatus {
            last_ok,
            lag_seconds: last_ok.map(|t| (now - t).num_seconds().max(0)),
            errors: self.status_count(source, Field::Errors)?.unwrap_or(0),
            errors_since_ok: self
                .status_count(source, Field::ErrorsSinceOk)?
                .unwrap_or(0),
            last_error: self.kv_get(&Field::LastError.key(source))?,
            last_error_at: self.status_time(source, Field::LastErrorAt)?,
        })
    }

    /// Records a successful poll of `source` at `now`: `last_ok`, and no failure since.
    pub fn record_source_ok(&self, source: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.kv_put(&Field::LastOk.key(source), &now.to_rfc3339())?;
        self.kv_put(&Field::ErrorsSinceOk.key(source), "0")
    }

    /// Records a failed poll of `source` at `now`: both counts go up by one (an unreadable
    /// count restarts at 0), and `error` (one line, no secrets) becomes the last error.
    pub fn record_source_failure(
        &self,
        source: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let errors = self.status_count(source, Field::Errors)?.unwrap_or(0);
        self.kv_put(&Field::Errors.key(source), &(errors + 1).to_string())?;
        let since_ok = self
            .status_count(source, Field::ErrorsSinceOk)?
            .unwrap_or(0);
        self.kv_put(
            &Field::ErrorsSinceOk.key(source),
            &(since_ok + 1).to_string(),
        )?;
        self.kv_put(&Field::LastError.key(source), error)?;
        self.kv_put(&Field::LastErrorAt.key(source), &now.to_rfc3339())
    }

    /// Records the delivery time of the last message `source` stored (`sqs`).
    pub fn record_delivery_ms(&self, source: &str, ms: u128) -> Result<(), StoreError> {
        self.kv_put(&Field::DeliveryMs.key(source), &ms.to_string())
    }

    /// The delivery time last recorded for `source`, in milliseconds.
    pub fn delivery_ms(&self, source: &str) -> Result<Option<u64>, StoreError> {
        self.status_count(source, Field::DeliveryMs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_unknown_source_reads_empty() {
        let store = Store::open_temporary().unwrap();
        let s = store
            .source_status("guardduty:us-east-1", Utc::now())
            .unwrap();
        assert_eq!(
            s,
            SourceStatus {
                last_ok: None,
                lag_seconds: None,
                errors: 0,
                errors_since_ok: 0,
                last_error: None,
                last_error_at: None,
            }
        );
        assert_eq!(store.delivery_ms("sqs").unwrap(), None);
    }

    #[test]
    fn what_is_written_reads_back() {
        let store = Store::open_temporary().unwrap();
        let src = "securityhub:eu-west-1";
        let t0 = t("2026-01-01T00:00:00Z");
        store.record_source_failure(src, "boom", t0).unwrap();
        store
            .record_source_ok(src, t0 + chrono::Duration::seconds(10))
            .unwrap();
        store
            .record_source_failure(src, "again", t0 + chrono::Duration::seconds(20))
            .unwrap();
        let s = SourceStatus::read(&store, src, t0 + chrono::Duration::seconds(70)).unwrap();
        assert_eq!(s.last_ok, Some(t0 + chrono::Duration::seconds(10)));
        assert_eq!(s.lag_seconds, Some(60));
        assert_eq!(s.errors, 2);
        assert_eq!(s.errors_since_ok, 1);
        assert_eq!(s.last_error.as_deref(), Some("again"));
        assert_eq!(s.last_error_at, Some(t0 + chrono::Duration::seconds(20)));
        // Another source is untouched.
        assert_eq!(store.source_status("sqs", t0).unwrap().errors, 0);
        store.record_delivery_ms("sqs", 1234).unwrap();
        assert_eq!(store.delivery_ms("sqs").unwrap(), Some(1234));
    }

    #[test]
    fn old_bytes_still_read_and_are_still_written() {
        let store = Store::open_temporary().unwrap();
        let src = "guardduty:us-east-1";
        store
            .kv_put(
                "ingest.guardduty:us-east-1.last_ok",
                "2026-01-01T00:00:00+00:00",
            )
            .unwrap();
        store
            .kv_put("ingest.guardduty:us-east-1.errors", "7")
            .unwrap();
        store
            .kv_put("ingest.guardduty:us-east-1.errors_since_ok", " 3\n")
            .unwrap();
        store
            .kv_put("ingest.guardduty:us-east-1.last_error", "throttled")
            .unwrap();
        store
            .kv_put("ingest.guardduty:us-east-1.last_error_at", "not a time")
            .unwrap();
        store.kv_put("ingest.sqs.delivery_ms", "250").unwrap();
        let s = store.source_status(src, t("2026-01-01T00:01:00Z")).unwrap();
        assert_eq!(s.last_ok, Some(t("2026-01-01T00:00:00Z")));
        assert_eq!(s.lag_seconds, Some(60));
        assert_eq!(s.errors, 7);
        assert_eq!(s.errors_since_ok, 3, "trimmed, as /status always read it");
        assert_eq!(s.last_error.as_deref(), Some("throttled"));
        assert_eq!(s.last_error_at, None, "unreadable counts as absent");
        assert_eq!(store.delivery_ms("sqs").unwrap(), Some(250));

        store
            .record_source_ok(src, t("2026-01-02T00:00:00Z"))
            .unwrap();
        assert_eq!(
            store
                .kv_get("ingest.guardduty:us-east-1.errors_since_ok")
                .unwrap()
                .as_deref(),
            Some("0")
        );
        assert_eq!(
            store
                .kv_get("ingest.guardduty:us-east-1.last_ok")
                .unwrap()
                .as_deref(),
            Some("2026-01-02T00:00:00+00:00")
        );
        store
            .record_source_failure(src, "x", t("2026-01-02T00:00:01Z"))
            .unwrap();
        assert_eq!(
            store
                .kv_get("ingest.guardduty:us-east-1.errors")
                .unwrap()
                .as_deref(),
            Some("8")
        );
    }
}
