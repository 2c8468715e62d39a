//! The quarantine: inputs that could not be parsed, kept (capped in count and size) with a
//! `FindingRejected` event, for an operator to look at.

use chrono::{DateTime, Utc};

use crate::audit::{Actor, EventKind, NewEvent};

use super::{
    be_u64, decode, truncate_bytes, tx_encode, QuarantinedInput, Store, StoreError,
    MAX_QUARANTINED_BYTES, MAX_QUARANTINE_ERROR_BYTES, META_QUARANTINE_FIRST_ID,
    META_QUARANTINE_LAST_ID, QUARANTINE_TRUNCATION_MARKER, TREE_QUARANTINE,
};

impl Store {
    /// Keeps an input that could not be parsed, with a `FindingRejected` event; returns its id.
    /// Keeps at most `max` documents (`ingest.quarantine_max`): the oldest beyond it are dropped
    /// in the same transaction, each with a `QuarantineEntryDropped` event. A document longer
    /// than [`MAX_QUARANTINED_BYTES`] is kept cut, ending with [`QUARANTINE_TRUNCATION_MARKER`]
    /// (the `FindingRejected` event says how long it was).
    pub fn quarantine(
        &self,
        source: &str,
        raw: &str,
        error: &str,
        now: DateTime<Utc>,
        max: u64,
    ) -> Result<u64, StoreError> {
        let max = max.max(1);
        let truncated = truncate_bytes(raw, MAX_QUARANTINED_BYTES, QUARANTINE_TRUNCATION_MARKER);
        let kept_raw = truncated.as_deref().unwrap_or(raw);
        let truncated_from_bytes = truncated.as_ref().map(|_| raw.len() as u64);
        let error = truncate_bytes(error, MAX_QUARANTINE_ERROR_BYTES, "…")
            .unwrap_or_else(|| error.to_string());
        // Stores written before `quarantine_first_id` existed: their oldest kept id.
        let first_on_disk = self
            .inner
            .trees
            .quarantine
            .first()?
            .and_then(|(k, _)| be_u64(&k))
            .unwrap_or(0);
        self.transact(|tx| {
            let id = tx.get_u64(tx.meta, META_QUARANTINE_LAST_ID)? + 1;
            tx.meta.insert(META_QUARANTINE_LAST_ID, id.to_be_bytes())?;
            let record = QuarantinedInput {
                id,
                source: source.to_string(),
                raw: kept_raw.to_string(),
                error: error.clone(),
                at: now,
                truncated_from_bytes,
            };
            tx.quarantine
                .insert(id.to_be_bytes(), tx_encode(&record, "quarantined input")?)?;
            tx.append(
                NewEvent::new(now, Actor::System, EventKind::FindingRejected).detail(
                    serde_json::json!({
                        "source": source,
                        "error": error,
                        "quarantine_id": id,
                        "bytes": raw.len(),
                        "truncated": truncated_from_bytes.is_some(),
                    }),
                ),
            )?;
            let mut first = match tx.get_u64(tx.meta, META_QUARANTINE_FIRST_ID)? {
                0 if first_on_disk > 0 => first_on_disk,
                0 => id,
                n => n,
            };
            while id - first + 1 > max {
                if let Some(old) = tx.quarantine.remove(first.to_be_bytes())? {
                    let (old_source, old_at) = match decode::<QuarantinedInput>(&old, || {
                        format!("{TREE_QUARANTINE}/{first}")
                    }) {
                        Ok(q) => (Some(q.source), Some(q.at)),
                        Err(_) => (None, None),
                    };
                    tx.append(
                        NewEvent::new(now, Actor::System, EventKind::QuarantineEntryDropped)
                            .detail(serde_json::json!({
                                "quarantine_id": first,
                                "source": old_source,
                                "quarantined_at": old_at,
                                "quarantine_max": max,
                            })),
                    )?;
                }
                first += 1;
            }
            tx.meta
                .insert(META_QUARANTINE_FIRST_ID, first.to_be_bytes())?;
            Ok(id)
        })
    }

    /// The most recent quarantined inputs, newest first.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<QuarantinedInput>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.trees.quarantine.iter().rev().take(limit) {
            let (key, value) = item?;
            out.push(decode(&value, || {
                format!("{TREE_QUARANTINE}/{}", be_u64(&key).unwrap_or(0))
            })?);
        }
        Ok(out)
    }
}
