//! Findings: the deduplicating upsert with its `FindingIngested` / `FindingUpdated` event,
//! reads, and the recent-first listing over `findings_by_time`.

use chrono::{DateTime, Utc};

use uuid::Uuid;

use crate::approval::Request;
use crate::audit::{Actor, EventKind, NewEvent};
use crate::finding::Finding;

use super::{
    be_u64, finding_detail, finding_time_key, tx_encode, Store, StoreError, StoredFinding,
    TxResult, Upsert, META_FINDING_COUNT, TREE_FINDINGS, TREE_FINDINGS_BY_TIME,
};

/// The most items one finding and the request it proposes write in a transaction (an upper
/// bound; see [`Store::upsert_findings_proposing`]).
const ITEMS_PER_PROPOSED_FINDING: usize = 25;

impl Store {
    /// Stores a finding, deduplicated by id, with its audit event in the same transaction.
    ///
    /// A document replaces the stored one when its count grew, its `updated_at` is newer, or
    /// its archived flag changed; a document older than the stored one never replaces it.
    pub fn upsert_finding(
        &self,
        f: &Finding,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Upsert, StoreError> {
        self.transact(|tx| tx.upsert_finding(f, actor, now))
    }

    /// Stores a page of findings, deduplicated by id as [`Store::upsert_finding`] does, and
    /// for each one stored for the first time the request `propose` makes of it (if any), all
    /// in ONE transaction on sled (one audit event per finding and per request, in order; on
    /// DynamoDB in transactions of a few findings each, within its 100-item limit). Ingest
    /// stores a burst this way: one transaction and one flush per page instead of two
    /// transactions per finding. Durable at the caller's flush. `propose` may run more than
    /// once for a finding (sled retries a transaction that met a concurrent write); only the
    /// requests of the run that commits are stored and returned.
    pub fn upsert_findings_proposing(
        &self,
        findings: &[Finding],
        actor: &Actor,
        now: DateTime<Utc>,
        propose: impl Fn(&Finding) -> Option<Request>,
    ) -> Result<Vec<(Upsert, Option<Uuid>)>, StoreError> {
        // On DynamoDB a transaction holds at most 100 items: a finding with its request and
        // their events writes about 20 (finding, time index, two events with their index
        // entries, the request and its two indexes), so a page goes in several transactions.
        let mut out = Vec::with_capacity(findings.len());
        for chunk in findings.chunks(self.batch_size(ITEMS_PER_PROPOSED_FINDING)) {
            out.extend(self.transact(|tx| {
                let mut out = Vec::with_capacity(chunk.len());
                for f in chunk {
                    let upsert = tx.upsert_finding(f, actor, now)?;
                    let mut proposed = None;
                    if upsert == Upsert::New {
                        if let Some(request) = propose(f) {
                            tx.insert_request(&request, now)?;
                            proposed = Some(request.id);
                        }
                    }
                    out.push((upsert, proposed));
                }
                Ok(out)
            })?);
        }
        Ok(out)
    }

    pub fn get_finding(&self, id: &str) -> Result<Option<StoredFinding>, StoreError> {
        self.get(&self.inner.trees.findings, id.as_bytes(), || {
            format!("{TREE_FINDINGS}/{id}")
        })
    }

    /// The most recently ingested findings, newest first.
    pub fn recent_findings(&self, limit: usize) -> Result<Vec<StoredFinding>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.trees.findings_by_time.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let id = key
                .get(8..)
                .map(|id| String::from_utf8_lossy(id).into_owned())
                .unwrap_or_default();
            match self.get_finding(&id)? {
                Some(f) => out.push(f),
                None => {
                    return Err(StoreError::Corrupt {
                        key: format!("{TREE_FINDINGS_BY_TIME}/{id}"),
                        message: "indexed finding is missing".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// How many distinct findings the store holds (0 when the counter is unreadable).
    pub fn finding_count(&self) -> u64 {
        match self.inner.trees.meta.get(META_FINDING_COUNT) {
            Ok(Some(v)) => be_u64(&v).unwrap_or(0),
            _ => 0,
        }
    }
}

impl super::Tx<'_> {
    /// [`Store::upsert_finding`] inside a transaction.
    fn upsert_finding<E: From<StoreError>>(
        &self,
        f: &Finding,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> TxResult<Upsert, E> {
        let previous: Option<StoredFinding> = self.get(self.findings, f.id.as_bytes(), || {
            format!("{TREE_FINDINGS}/{}", f.id)
        })?;
        let (stored, upsert, event) = match previous {
            None => {
                let stored = StoredFinding {
                    finding: f.clone(),
                    first_ingested_at: now,
                    last_ingested_at: now,
                };
                let count = self.get_u64(self.meta, META_FINDING_COUNT)?;
                self.meta
                    .insert(META_FINDING_COUNT, (count + 1).to_be_bytes())?;
                let event = NewEvent::new(now, actor.clone(), EventKind::FindingIngested)
                    .finding(f.id.clone())
                    .detail(finding_detail(f));
                (stored, Upsert::New, event)
            }
            Some(old) => {
                let prev = &old.finding;
                let older = f.updated_at < prev.updated_at;
                let newer = f.updated_at > prev.updated_at
                    || f.count > prev.count
                    || f.archived != prev.archived;
                if older || !newer {
                    return Ok(Upsert::Unchanged);
                }
                self.findings_by_time
                    .remove(finding_time_key(old.last_ingested_at, &f.id))?;
                let upsert = Upsert::Updated {
                    previous_count: prev.count,
                    previous_updated_at: prev.updated_at,
                    became_archived: f.archived && !prev.archived,
                };
                let mut detail = finding_detail(f);
                detail["previous_count"] = prev.count.into();
                detail["previous_updated_at"] = serde_json::json!(prev.updated_at);
                detail["previous_archived"] = prev.archived.into();
                let event = NewEvent::new(now, actor.clone(), EventKind::FindingUpdated)
                    .finding(f.id.clone())
                    .detail(detail);
                let stored = StoredFinding {
                    finding: f.clone(),
                    first_ingested_at: old.first_ingested_at,
                    last_ingested_at: now,
                };
                (stored, upsert, event)
            }
        };
        self.findings
            .insert(f.id.as_bytes(), tx_encode(&stored, "finding")?)?;
        self.findings_by_time
            .insert(finding_time_key(now, &f.id), &[] as &[u8])?;
        self.append(event)?;
        Ok(upsert)
    }
}
