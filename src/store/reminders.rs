//! Reminders of Pending requests nobody answered ([`crate::actions::escalate`]): each one is
//! claimed before it is posted, so it goes out once, whatever restarts.
//!
//! | `kv` key | value |
//! |---|---|
//! | `reminder.<request id>.<n>` | `claimed` (being posted) or `sent` (posted and audited) |
//!
//! `n` is 1 (after `notify.escalate_after` with no vote) or 2 (at half the time to live). A
//! claim whose post failed is released ([`Store::release_reminder`]) so the next sweep tries
//! again; a claim left by a crash between the claim and the post is released at the next start
//! ([`Store::release_unsent_reminders`]), so a crash can at worst repeat a reminder, never lose
//! one.

use uuid::Uuid;

use crate::audit::{AuditEvent, NewEvent};

use super::{Store, StoreError};

const KEY_PREFIX: &str = "reminder.";
const CLAIMED: &str = "claimed";
const SENT: &str = "sent";

fn key(request: Uuid, n: u8) -> String {
    format!("{KEY_PREFIX}{}.{n}", request.simple())
}

impl Store {
    /// Claims reminder `n` of `request`; `true` when this call claimed it (nobody had).
    /// Durable when it returns.
    pub fn claim_reminder(&self, request: Uuid, n: u8) -> Result<bool, StoreError> {
        let claimed = self
            .inner
            .trees
            .kv
            .compare_and_swap(key(request, n), None::<&[u8]>, Some(CLAIMED.as_bytes()))?
            .is_ok();
        if claimed {
            self.flush()?;
        }
        Ok(claimed)
    }

    /// Gives back a claim whose reminder could not be posted (a sent one stays).
    pub fn release_reminder(&self, request: Uuid, n: u8) -> Result<(), StoreError> {
        // Only a `claimed` value goes; a failed swap means it was sent or is gone: keep it.
        let _ = self.inner.trees.kv.compare_and_swap(
            key(request, n),
            Some(CLAIMED.as_bytes()),
            None::<&[u8]>,
        )?;
        Ok(())
    }

    /// Marks reminder `n` of `request` sent and appends its audit event, in one transaction;
    /// flushes.
    pub fn record_reminder_sent(
        &self,
        request: Uuid,
        n: u8,
        ev: NewEvent,
    ) -> Result<AuditEvent, StoreError> {
        let k = key(request, n);
        let event = self.transact(|tx| {
            tx.kv.insert(k.as_bytes(), SENT.as_bytes())?;
            tx.append(ev.clone())
        })?;
        self.flush()?;
        Ok(event)
    }

    /// Whether reminder `n` of `request` was claimed or sent.
    pub fn reminder_claimed(&self, request: Uuid, n: u8) -> Result<bool, StoreError> {
        Ok(self.kv_get(&key(request, n))?.is_some())
    }

    /// Releases every claim that was never marked sent: at start-up, when no post can be in
    /// flight. Returns how many.
    pub fn release_unsent_reminders(&self) -> Result<usize, StoreError> {
        let mut released = 0;
        for item in self.inner.trees.kv.scan_prefix(KEY_PREFIX.as_bytes()) {
            let (k, v) = item?;
            if v.as_ref() == CLAIMED.as_bytes() {
                self.inner
                    .trees
                    .kv
                    .compare_and_swap(&k, Some(CLAIMED.as_bytes()), None::<&[u8]>)?
                    .ok();
                released += 1;
            }
        }
        if released > 0 {
            self.flush()?;
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditQuery, EventKind};
    use chrono::Utc;

    #[test]
    fn a_reminder_is_claimed_once_released_when_unsent_and_kept_when_sent() {
        let store = Store::open_temporary().unwrap();
        let r = Uuid::from_u128(42);
        assert!(store.claim_reminder(r, 1).unwrap());
        assert!(!store.claim_reminder(r, 1).unwrap(), "claimed once");
        assert!(
            store.claim_reminder(r, 2).unwrap(),
            "each reminder has its own claim"
        );

        // A failed post gives the claim back.
        store.release_reminder(r, 1).unwrap();
        assert!(!store.reminder_claimed(r, 1).unwrap());
        assert!(store.claim_reminder(r, 1).unwrap());

        let ev = NewEvent::new(Utc::now(), Actor::System, EventKind::RequestEscalated).request(r);
        store.record_reminder_sent(r, 1, ev).unwrap();
        store.release_reminder(r, 1).unwrap();
        assert!(
            store.reminder_claimed(r, 1).unwrap(),
            "a sent reminder stays"
        );
        assert!(!store.claim_reminder(r, 1).unwrap());

        // A restart releases the claim left unsent (2), not the sent one (1).
        assert_eq!(store.release_unsent_reminders().unwrap(), 1);
        assert!(!store.claim_reminder(r, 1).unwrap());
        assert!(store.claim_reminder(r, 2).unwrap());
        let audited = store
            .query_audit(&AuditQuery {
                kind: Some(EventKind::RequestEscalated),
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].request_id, Some(r));
    }
}
