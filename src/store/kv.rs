//! The `kv` tree: small values kept by the edges (card locations, the pause flag, claimed
//! digest days, ingest health, audit anchor records), each behind a typed accessor.
//!
//! The raw accessors here are private to the store: every key layout of the tree is built in
//! this folder, so a reader and a writer of the same value cannot drift apart. The typed
//! accessors live next to their idea ([`super::cards`], [`super::days`],
//! [`super::ingest_status`]) or here (the pause flag, anchor records, the health probe).
//!
//! Values are UTF-8 strings, the bytes every earlier version wrote (no migration).
//!
//! | key | value | accessor |
//! |---|---|---|
//! | `engine.paused` | `true` / `false` | [`Store::paused`], [`Store::set_paused_audited`] |
//! | `audit.anchor.last` | JSON: the last digest written to S3 | [`Store::anchor_record`] with [`AnchorSlot::Last`] |
//! | `audit.anchor.pending` | JSON: a digest being written | [`Store::anchor_record`] with [`AnchorSlot::Pending`] |
//! | `health.probe` | never written: reading it is the health check | [`Store::probe`] |
//! | `card.…` | a card's message id ([`super::cards`]) | [`Store::card_location`] |
//! | `posture.digest.last`, `posture.drop.…` | `YYYY-MM-DD` ([`super::days`]) | [`Store::claimed_day`] |
//! | `ingest.<source>.…` | ingest health ([`super::ingest_status`]) | [`Store::source_status`] |
//! | `reminder.<request>.<n>` | a reminder's claim ([`super::reminders`]) | [`Store::claim_reminder`] |
//! | `investigation.…`, `investigation_events.…` | a key's CloudTrail investigation ([`super::investigations`]) | [`Store::investigation`] |

use crate::audit::{AuditEvent, NewEvent};

use super::{Store, StoreError, TREE_KV};

/// Key of the pause flag.
const KEY_PAUSED: &str = "engine.paused";
/// Key read by the health check (any key: the read itself is the check).
const KEY_HEALTH_PROBE: &str = "health.probe";

/// One of the two records of the audit anchor writer ([`crate::anchor::writer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorSlot {
    /// The last digest written to S3 (`audit.anchor.last`).
    Last,
    /// A digest being written (`audit.anchor.pending`), removed once it is written.
    Pending,
}

impl AnchorSlot {
    fn key(self) -> &'static str {
        match self {
            AnchorSlot::Last => "audit.anchor.last",
            AnchorSlot::Pending => "audit.anchor.pending",
        }
    }

    /// The record's name, for error messages.
    pub fn name(self) -> &'static str {
        self.key()
    }
}

impl Store {
    // Raw accessors: private to the store folder.

    pub(super) fn kv_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.get_string(&self.inner.trees.kv, TREE_KV, key)
    }

    pub(super) fn kv_put(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner
            .trees
            .kv
            .insert(key.as_bytes(), value.as_bytes())?;
        Ok(())
    }

    /// Writes a value and its audit event in one transaction; flushes.
    fn kv_put_audited(
        &self,
        key: &str,
        value: &str,
        ev: NewEvent,
    ) -> Result<AuditEvent, StoreError> {
        let event = self.transact(|tx| {
            tx.kv.insert(key.as_bytes(), value.as_bytes())?;
            tx.append(ev.clone())
        })?;
        self.flush()?;
        Ok(event)
    }

    /// Removes a value; returns whether it was there.
    pub(super) fn kv_remove(&self, key: &str) -> Result<bool, StoreError> {
        let old = self.inner.trees.kv.remove(key.as_bytes())?;
        Ok(old)
    }

    // The pause flag.

    /// Is execution paused (`/pause`)? Absent or anything but `true` is running.
    pub fn paused(&self) -> Result<bool, StoreError> {
        Ok(self.kv_get(KEY_PAUSED)?.as_deref() == Some("true"))
    }

    /// Sets the pause flag and appends its audit event (`ExecutionPaused` /
    /// `ExecutionResumed`, built by the caller) in one transaction; flushes.
    pub fn set_paused_audited(&self, paused: bool, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        self.kv_put_audited(KEY_PAUSED, if paused { "true" } else { "false" }, ev)
    }

    // Audit anchor records (JSON text, encoded and decoded by the anchor writer).

    /// The record in `slot`, as the JSON text the anchor writer stored.
    pub fn anchor_record(&self, slot: AnchorSlot) -> Result<Option<String>, StoreError> {
        self.kv_get(slot.key())
    }

    /// Stores the record of `slot` (JSON text). Durable at the next flush.
    pub fn put_anchor_record(&self, slot: AnchorSlot, json: &str) -> Result<(), StoreError> {
        self.kv_put(slot.key(), json)
    }

    /// Removes the record of `slot`; returns whether it was there.
    pub fn remove_anchor_record(&self, slot: AnchorSlot) -> Result<bool, StoreError> {
        self.kv_remove(slot.key())
    }

    // Health.

    /// Reads one key: fails when the store cannot be read (`/healthz`).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.kv_get(KEY_HEALTH_PROBE).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, EventKind};
    use chrono::Utc;

    fn event(kind: EventKind) -> NewEvent {
        NewEvent::new(Utc::now(), Actor::System, kind)
    }

    #[test]
    fn the_pause_flag_round_trips_with_its_event() {
        let store = Store::open_temporary().unwrap();
        assert!(!store.paused().unwrap(), "absent is running");
        let ev = store
            .set_paused_audited(true, event(EventKind::ExecutionPaused))
            .unwrap();
        assert_eq!(ev.kind, EventKind::ExecutionPaused);
        assert!(store.paused().unwrap());
        store
            .set_paused_audited(false, event(EventKind::ExecutionResumed))
            .unwrap();
        assert!(!store.paused().unwrap());
        assert_eq!(store.audit_len(), 2);
    }

    #[test]
    fn the_pause_flag_reads_the_old_bytes() {
        let store = Store::open_temporary().unwrap();
        store.kv_put("engine.paused", "true").unwrap();
        assert!(store.paused().unwrap());
        store.kv_put("engine.paused", "false").unwrap();
        assert!(!store.paused().unwrap());
        store.kv_put("engine.paused", "garbage").unwrap();
        assert!(!store.paused().unwrap());
    }

    #[test]
    fn anchor_records_round_trip_under_their_old_keys() {
        let store = Store::open_temporary().unwrap();
        assert_eq!(store.anchor_record(AnchorSlot::Last).unwrap(), None);
        store
            .put_anchor_record(AnchorSlot::Pending, "{\"a\":1}")
            .unwrap();
        assert_eq!(
            store.kv_get("audit.anchor.pending").unwrap().as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(store.anchor_record(AnchorSlot::Last).unwrap(), None);
        store.kv_put("audit.anchor.last", "{\"b\":2}").unwrap();
        assert_eq!(
            store.anchor_record(AnchorSlot::Last).unwrap().as_deref(),
            Some("{\"b\":2}")
        );
        assert!(store.remove_anchor_record(AnchorSlot::Pending).unwrap());
        assert!(!store.remove_anchor_record(AnchorSlot::Pending).unwrap());
        assert_eq!(store.anchor_record(AnchorSlot::Pending).unwrap(), None);
    }

    #[test]
    fn the_probe_reads() {
        let store = Store::open_temporary().unwrap();
        store.probe().unwrap();
    }
}
