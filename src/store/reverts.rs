//! Reverts: one live revert per request, checked and created in one transaction
//! ([`Store::create_revert_unless_blocked`], used by [`crate::actions::revert`]).
//!
//! Key layout: `kv` `revert.of.<request uuid, simple>` → the id (simple) of the last revert
//! proposed for that request.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::approval::{Request, RequestKind};
use crate::audit::AuditEvent;

use super::{Store, StoreError, TxResult};

fn revert_marker(of: Uuid) -> String {
    format!("revert.of.{}", of.simple())
}

impl Store {
    /// Stores `revert` (a `RequestKind::Revert { of }` request) with its `RevertProposed`
    /// event and flushes, unless the last revert proposed for `of` still `blocks` another (one
    /// live revert at a time, none after one succeeded: [`crate::engine::blocking_revert`]'s
    /// rule, passed in): then nothing is written and that revert is returned. The check and
    /// the write are one transaction, so two proposers at once cannot both create one.
    ///
    /// Reverts stored before the marker existed are the caller's to check first
    /// ([`crate::engine::Engine::existing_revert`]).
    pub fn create_revert_unless_blocked(
        &self,
        revert: &Request,
        now: DateTime<Utc>,
        blocks: impl Fn(&Request) -> bool,
    ) -> Result<Result<AuditEvent, Request>, StoreError> {
        let RequestKind::Revert { of } = revert.kind else {
            return Err(StoreError::InvalidTransition {
                request_id: revert.id,
                from: revert.state,
                to: revert.state,
            });
        };
        let marker = revert_marker(of);
        let created = self.transact(|tx| -> TxResult<Result<AuditEvent, Request>, StoreError> {
            if let Some(last) = tx.kv.get(marker.as_bytes())? {
                let last = std::str::from_utf8(&last)
                    .ok()
                    .and_then(|s| Uuid::parse_str(s).ok());
                if let Some(existing) = match last {
                    Some(id) => tx.get_request(id)?,
                    None => None,
                } {
                    if blocks(&existing) {
                        return Ok(Err(existing));
                    }
                }
            }
            let event = tx.insert_request(revert, now)?;
            tx.kv
                .insert(marker.as_bytes(), revert.id.simple().to_string().as_bytes())?;
            Ok(Ok(event))
        })?;
        if created.is_ok() {
            self.flush()?;
        }
        Ok(created)
    }
}
