//! Investigations of leaked access keys ([`crate::actions::investigate`]): the record each
//! card shows, and the events read, for the card's JSON Lines attachment.
//!
//! | `kv` key | value |
//! |---|---|
//! | `investigation.<finding id>` | JSON [`Investigation`] (small: counts, names, outcomes) |
//! | `investigation_events.<finding id>` | the events as JSON Lines (at most 8 MiB) |
//!
//! Distinct prefixes, so a scan of the records never reads the events.

use crate::audit::{AuditEvent, NewEvent};
use crate::investigate::Investigation;

use super::{Store, StoreError};

const RECORD_PREFIX: &str = "investigation.";
const EVENTS_PREFIX: &str = "investigation_events.";

fn record_key(finding_id: &str) -> String {
    format!("{RECORD_PREFIX}{finding_id}")
}

fn events_key(finding_id: &str) -> String {
    format!("{EVENTS_PREFIX}{finding_id}")
}

impl Store {
    /// The investigation of `finding_id`'s access key, if one began. An unreadable record is
    /// logged and read as none.
    pub fn investigation(&self, finding_id: &str) -> Result<Option<Investigation>, StoreError> {
        let Some(text) = self.kv_get(&record_key(finding_id))? else {
            return Ok(None);
        };
        match serde_json::from_str(&text) {
            Ok(inv) => Ok(Some(inv)),
            Err(e) => {
                tracing::warn!(finding_id, error = %e, "unreadable investigation record; treated as none");
                Ok(None)
            }
        }
    }

    /// The events the investigation read, as JSON Lines.
    pub fn investigation_events(&self, finding_id: &str) -> Result<Option<String>, StoreError> {
        self.kv_get(&events_key(finding_id))
    }

    /// Stores `inv` as the first record of its finding; `false` when one exists (another task
    /// began it). Durable when it returns.
    pub fn begin_investigation(&self, inv: &Investigation) -> Result<bool, StoreError> {
        let value = serde_json::to_vec(inv).map_err(|e| StoreError::Encode {
            what: "an investigation".into(),
            message: e.to_string(),
        })?;
        let began = self
            .inner
            .trees
            .kv
            .compare_and_swap(
                record_key(&inv.finding_id),
                None::<&[u8]>,
                Some(value.as_slice()),
            )?
            .is_ok();
        if began {
            self.flush()?;
        }
        Ok(began)
    }

    /// Replaces the record (progress: running, a retry scheduled). Durable when it returns.
    pub fn put_investigation(&self, inv: &Investigation) -> Result<(), StoreError> {
        let value = serde_json::to_string(inv).map_err(|e| StoreError::Encode {
            what: "an investigation".into(),
            message: e.to_string(),
        })?;
        self.kv_put(&record_key(&inv.finding_id), &value)?;
        self.flush()
    }

    /// Records an attempt's result: the record, the events read and the `InvestigationRecorded`
    /// event, in one transaction; flushes.
    pub fn record_investigation(
        &self,
        inv: &Investigation,
        events_jsonl: &str,
        ev: NewEvent,
    ) -> Result<AuditEvent, StoreError> {
        let value = serde_json::to_string(inv).map_err(|e| StoreError::Encode {
            what: "an investigation".into(),
            message: e.to_string(),
        })?;
        let (rk, ek) = (record_key(&inv.finding_id), events_key(&inv.finding_id));
        // A DynamoDB item holds at most 400 KB: there the events keep their newest lines
        // within [`super::dynamo::MAX_VALUE_BYTES`] (they are newest first, whole lines).
        let events_jsonl = match self.inner.backend.max_value_bytes() {
            Some(max) if events_jsonl.len() > max => {
                let cut = events_jsonl[..max].rfind('\n').map_or(0, |i| i + 1);
                &events_jsonl[..cut]
            }
            _ => events_jsonl,
        };
        let event = self.transact(|tx| {
            tx.kv.insert(rk.as_bytes(), value.as_bytes())?;
            tx.kv.insert(ek.as_bytes(), events_jsonl.as_bytes())?;
            tx.append(ev.clone())
        })?;
        self.flush()?;
        Ok(event)
    }

    /// Every investigation not finished (running or waiting for a retry): resumed at start-up.
    pub fn unfinished_investigations(&self) -> Result<Vec<Investigation>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.trees.kv.scan_prefix(RECORD_PREFIX.as_bytes()) {
            let (_, v) = item?;
            if let Ok(inv) = serde_json::from_slice::<Investigation>(&v) {
                if !inv.is_final() {
                    out.push(inv);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditQuery, EventKind};
    use crate::investigate::{InvestigationState, Window};
    use chrono::Utc;

    #[test]
    fn an_investigation_begins_once_records_atomically_and_is_resumed_until_final() {
        let store = Store::open_temporary().unwrap();
        let now = Utc::now();
        let inv = Investigation::start(
            "f-1",
            "AKIAIOSFODNN7EXAMPLE",
            "123456789012",
            Window::back_from(now, chrono::Duration::hours(24)),
            now,
        );
        assert!(store.begin_investigation(&inv).unwrap());
        assert!(!store.begin_investigation(&inv).unwrap(), "begun once");
        assert_eq!(store.unfinished_investigations().unwrap().len(), 1);

        let mut done = inv.clone();
        done.state = InvestigationState::Done;
        let ev = NewEvent::new(now, Actor::System, EventKind::InvestigationRecorded)
            .finding("f-1".to_string());
        store
            .record_investigation(&done, "{\"event_id\":\"1\"}\n", ev)
            .unwrap();
        assert_eq!(store.investigation("f-1").unwrap(), Some(done));
        assert_eq!(
            store.investigation_events("f-1").unwrap().as_deref(),
            Some("{\"event_id\":\"1\"}\n")
        );
        assert!(store.unfinished_investigations().unwrap().is_empty());
        let audited = store
            .query_audit(&AuditQuery {
                kind: Some(EventKind::InvestigationRecorded),
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(audited.len(), 1);
        assert!(store.investigation("f-2").unwrap().is_none());
    }
}
