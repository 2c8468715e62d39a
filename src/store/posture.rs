//! Posture: Security Hub control findings by group, and the daily score snapshots. Each write
//! is one key, outside the audit transaction (see [`super`]).

use chrono::{DateTime, Utc};

use crate::posture::{ControlFinding, GroupKey, Snapshot};

use super::{decode, encode, posture_key, posture_name, Store, StoreError, TREE_POSTURE_SCORES};

impl Store {
    /// Stores a control finding unless the stored copy is newer (by `UpdatedAt`). Returns
    /// whether anything changed. Durable at the caller's flush (ingest flushes per page).
    pub fn upsert_control_finding(&self, f: &ControlFinding) -> Result<bool, StoreError> {
        let key = posture_key(&f.group_key(), &f.id);
        let value = encode(f, "control finding")?;
        loop {
            let old = self.inner.trees.posture.get(&key)?;
            if let Some(old_bytes) = &old {
                if old_bytes.as_ref() == value.as_slice() {
                    return Ok(false);
                }
                let stored: ControlFinding = decode(old_bytes, || posture_name(&key))?;
                if stored.updated_at > f.updated_at {
                    return Ok(false);
                }
            }
            let swapped = self.inner.trees.posture.compare_and_swap(
                &key,
                old.as_deref(),
                Some(value.as_slice()),
            )?;
            if swapped.is_ok() {
                return Ok(true);
            }
        }
    }

    /// Every stored control finding of one group.
    pub fn control_findings(&self, group: &GroupKey) -> Result<Vec<ControlFinding>, StoreError> {
        let mut prefix = group.encode().into_bytes();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.inner.trees.posture.scan_prefix(&prefix) {
            let (key, value) = item?;
            out.push(decode(&value, || posture_name(&key))?);
        }
        Ok(out)
    }

    /// Every stored control finding, group by group.
    pub fn all_control_findings(&self) -> Result<Vec<ControlFinding>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.trees.posture.iter() {
            let (key, value) = item?;
            out.push(decode(&value, || posture_name(&key))?);
        }
        Ok(out)
    }

    /// Records the scores of `snapshot.date`, replacing that day's earlier record.
    pub fn put_score_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let key = snapshot.date.format("%Y-%m-%d").to_string();
        self.inner
            .trees
            .posture_scores
            .insert(key.as_bytes(), encode(snapshot, "score snapshot")?)?;
        Ok(())
    }

    /// Records today's scores from every stored control finding, replacing today's earlier
    /// record: each day keeps its last scores.
    pub fn record_scores(&self, now: DateTime<Utc>) -> Result<Snapshot, StoreError> {
        let snapshot = Snapshot {
            date: now.date_naive(),
            rows: crate::posture::scores(&self.all_control_findings()?),
        };
        self.put_score_snapshot(&snapshot)?;
        Ok(snapshot)
    }

    /// The scores recorded on `date`, if any.
    pub fn score_snapshot(&self, date: chrono::NaiveDate) -> Result<Option<Snapshot>, StoreError> {
        let key = date.format("%Y-%m-%d").to_string();
        self.get(&self.inner.trees.posture_scores, key.as_bytes(), || {
            format!("{TREE_POSTURE_SCORES}/{key}")
        })
    }
}
