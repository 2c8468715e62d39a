//! Execution records: one [`StepRecord`] per step of a request, with its audit event.

use uuid::Uuid;

use crate::audit::NewEvent;
use crate::execution::StepRecord;

use super::{
    abort, be_u64, decode, event_for_request, step_key, tx_encode, Store, StoreError, TREE_STEPS,
};

impl Store {
    /// Stores (or replaces) the record of one step, with its audit event; flushes.
    pub fn put_step_record(
        &self,
        request_id: Uuid,
        rec: &StepRecord,
        ev: Option<NewEvent>,
    ) -> Result<(), StoreError> {
        self.put_step_record_fenced(request_id, rec, ev, None)
    }

    /// [`Store::put_step_record`], only while the request's execution lease is still `fence`
    /// (owner, attempt): otherwise nothing is written and the error is
    /// [`StoreError::LeaseLost`] ([`super::leases`]).
    pub fn put_step_record_fenced(
        &self,
        request_id: Uuid,
        rec: &StepRecord,
        ev: Option<NewEvent>,
        fence: Option<&(String, u64)>,
    ) -> Result<(), StoreError> {
        let key = step_key(request_id, rec.index);
        self.transact(|tx| {
            if let Some(fence) = fence {
                Store::check_fence(tx, request_id, fence)?;
            }
            let Some(request) = tx.get_request(request_id)? else {
                return abort(StoreError::NotFound {
                    what: format!("request {request_id}"),
                });
            };
            tx.steps
                .insert(key.as_slice(), tx_encode(rec, "step record")?)?;
            if let Some(ev) = &ev {
                tx.append(event_for_request(ev.clone(), &request))?;
            }
            Ok(())
        })?;
        self.flush()
    }

    /// Every step record of a request, by step index.
    pub fn step_records(&self, request_id: Uuid) -> Result<Vec<StepRecord>, StoreError> {
        let prefix = request_id.as_bytes();
        let mut out = Vec::new();
        for item in self.inner.trees.steps.scan_prefix(prefix) {
            let (key, value) = item?;
            let index = be_u64(&key[prefix.len()..]).unwrap_or(u64::MAX);
            out.push(decode(&value, || {
                format!("{TREE_STEPS}/{request_id}/{index}")
            })?);
        }
        Ok(out)
    }
}
