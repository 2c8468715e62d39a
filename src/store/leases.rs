//! Leases: which replica does a piece of work that only one may do at a time (execute one
//! request, poll the ingest sources, hold the Discord gateway, post one card), and heartbeats
//! (which replicas are alive).
//!
//! A lease is a record in the `kv` tree, `lease.<name>`: its owner (a replica id), until when
//! it holds, and an attempt number that grows by one each time the lease changes owner. Every
//! claim and renewal is a transaction that reads the record and writes it back, so two
//! replicas never both hold one lease: on sled under its write lock, on DynamoDB conditioned on
//! the record's version. The attempt number is a fencing token: a step record is written only
//! if the execution lease still carries the attempt of the run that writes it
//! ([`Store::put_step_record_fenced`]), so a replica that stalled past its lease and woke up
//! cannot write over the run that took it over.
//!
//! | key | value |
//! |---|---|
//! | `lease.<name>` | [`Lease`] as JSON |
//! | `replica.<id>` | [`Heartbeat`] as JSON: a replica's last sign of life |

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{abort, decode, tx_encode, Store, StoreError, TxResult};

const LEASE_PREFIX: &str = "lease.";
const HEARTBEAT_PREFIX: &str = "replica.";

/// Who holds a piece of work, until when, and the fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
    /// Grows by one each time the lease changes owner (or is claimed after lapsing).
    pub attempt: u64,
}

/// What [`Store::claim_lease`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The caller holds it now. `took_over`: the owner of a lapsed lease it replaced.
    Held {
        lease: Lease,
        took_over: Option<String>,
    },
    /// Another owner holds it until `lease.until`.
    Busy(Lease),
}

impl LeaseClaim {
    pub fn held(&self) -> Option<&Lease> {
        match self {
            LeaseClaim::Held { lease, .. } => Some(lease),
            LeaseClaim::Busy(_) => None,
        }
    }
}

/// A replica's last sign of life, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub replica: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// `ingest leader`, `gateway`, `executing 2`, ...
    #[serde(default)]
    pub roles: Vec<String>,
}

fn lease_key(name: &str) -> String {
    format!("{LEASE_PREFIX}{name}")
}

/// The lease name of a request's execution.
pub fn execution_lease(request_id: uuid::Uuid) -> String {
    format!("exec.{request_id}")
}

impl Store {
    /// Claims (or renews) lease `name` for `owner` until `now + ttl`: granted when nobody holds
    /// it, when it lapsed, or when `owner` holds it already (a renewal keeps the attempt).
    /// `force` takes it even from a live owner (sled, where no other process can hold the
    /// store: a lease left by a previous run of this process is stale). Flushes.
    pub fn claim_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
        force: bool,
    ) -> Result<LeaseClaim, StoreError> {
        let key = lease_key(name);
        let claim = self.transact(|tx| -> TxResult<LeaseClaim> {
            let current: Option<Lease> = tx.get(tx.kv, key.as_bytes(), || format!("kv/{key}"))?;
            let (attempt, took_over) = match &current {
                Some(l) if l.owner == owner => (l.attempt, None),
                Some(l) if l.until > now && !force => return Ok(LeaseClaim::Busy(l.clone())),
                Some(l) => (l.attempt + 1, Some(l.owner.clone())),
                None => (1, None),
            };
            let lease = Lease {
                owner: owner.to_owned(),
                until: now + ttl,
                attempt,
            };
            tx.kv.insert(key.as_bytes(), tx_encode(&lease, "lease")?)?;
            Ok(LeaseClaim::Held { lease, took_over })
        })?;
        self.flush()?;
        if let LeaseClaim::Held {
            took_over: Some(_), ..
        } = &claim
        {
            self.inner
                .takeovers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(claim)
    }

    /// Extends lease `name` to `now + ttl` if `owner` still holds it with `attempt`; `false`
    /// when it was lost (taken over after it lapsed). Flushes.
    pub fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        attempt: u64,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = lease_key(name);
        let renewed = self.transact(|tx| -> TxResult<bool> {
            let current: Option<Lease> = tx.get(tx.kv, key.as_bytes(), || format!("kv/{key}"))?;
            match current {
                Some(l) if l.owner == owner && l.attempt == attempt => {
                    let lease = Lease {
                        until: now + ttl,
                        ..l
                    };
                    tx.kv.insert(key.as_bytes(), tx_encode(&lease, "lease")?)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })?;
        self.flush()?;
        Ok(renewed)
    }

    /// Gives lease `name` up if `owner` holds it (it lapses at once).
    pub fn release_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = lease_key(name);
        self.transact(|tx| -> TxResult<()> {
            let current: Option<Lease> = tx.get(tx.kv, key.as_bytes(), || format!("kv/{key}"))?;
            if let Some(l) = current.filter(|l| l.owner == owner) {
                let lapsed = Lease { until: now, ..l };
                tx.kv.insert(key.as_bytes(), tx_encode(&lapsed, "lease")?)?;
            }
            Ok(())
        })?;
        self.flush()
    }

    /// Lease `name` as stored (held or lapsed).
    pub fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let key = lease_key(name);
        match self.kv_get(&key)? {
            Some(v) => decode(v.as_bytes(), || format!("kv/{key}")).map(Some),
            None => Ok(None),
        }
    }

    /// Checks inside a transaction that the execution lease of `request` is still `fence`
    /// (owner, attempt); aborts with [`StoreError::LeaseLost`] otherwise.
    pub(super) fn check_fence(
        tx: &super::Tx<'_>,
        request: uuid::Uuid,
        fence: &(String, u64),
    ) -> TxResult<()> {
        let key = lease_key(&execution_lease(request));
        let current: Option<Lease> = tx.get(tx.kv, key.as_bytes(), || format!("kv/{key}"))?;
        match current {
            Some(l) if l.owner == fence.0 && l.attempt == fence.1 => Ok(()),
            other => abort(StoreError::LeaseLost {
                name: execution_lease(request),
                holder: other.map(|l| format!("{} (attempt {})", l.owner, l.attempt)),
            }),
        }
    }

    /// Records that `beat.replica` is alive (overwrites its previous heartbeat).
    pub fn put_heartbeat(&self, beat: &Heartbeat) -> Result<(), StoreError> {
        let value = serde_json::to_string(beat).map_err(|e| StoreError::Encode {
            what: "heartbeat".into(),
            message: e.to_string(),
        })?;
        self.kv_put(&format!("{HEARTBEAT_PREFIX}{}", beat.replica), &value)?;
        self.flush()
    }

    /// Every replica whose heartbeat is at or after `since`, oldest start first.
    pub fn live_replicas(&self, since: DateTime<Utc>) -> Result<Vec<Heartbeat>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.trees.kv.scan_prefix(HEARTBEAT_PREFIX.as_bytes()) {
            let (key, value) = item?;
            let beat: Heartbeat = match decode(&value, || String::from_utf8_lossy(&key).into()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable heartbeat; skipped");
                    continue;
                }
            };
            if beat.seen_at >= since {
                out.push(beat);
            }
        }
        out.sort_by_key(|b| b.started_at);
        Ok(out)
    }

    /// Removes this replica's heartbeat (on a clean shutdown).
    pub fn remove_heartbeat(&self, replica: &str) -> Result<(), StoreError> {
        self.kv_remove(&format!("{HEARTBEAT_PREFIX}{replica}"))?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_lease_is_held_by_one_owner_until_it_lapses_and_the_attempt_fences() {
        let store = Store::open_temporary().unwrap();
        let ttl = Duration::seconds(30);
        let a = store.claim_lease("x", "a", t0(), ttl, false).unwrap();
        assert_eq!(a.held().map(|l| l.attempt), Some(1));
        // b cannot take it while it holds.
        let b = store
            .claim_lease("x", "b", t0() + Duration::seconds(10), ttl, false)
            .unwrap();
        assert!(
            matches!(b, LeaseClaim::Busy(ref l) if l.owner == "a"),
            "{b:?}"
        );
        // a renews; b still cannot.
        assert!(store
            .renew_lease("x", "a", 1, t0() + Duration::seconds(20), ttl)
            .unwrap());
        let b = store
            .claim_lease("x", "b", t0() + Duration::seconds(40), ttl, false)
            .unwrap();
        assert!(matches!(b, LeaseClaim::Busy(_)), "{b:?}");
        // Once it lapses, b takes it over with the next attempt; a's renewal fails.
        let b = store
            .claim_lease("x", "b", t0() + Duration::seconds(51), ttl, false)
            .unwrap();
        assert_eq!(
            b,
            LeaseClaim::Held {
                lease: Lease {
                    owner: "b".into(),
                    until: t0() + Duration::seconds(81),
                    attempt: 2
                },
                took_over: Some("a".into())
            }
        );
        assert!(!store
            .renew_lease("x", "a", 1, t0() + Duration::seconds(52), ttl)
            .unwrap());
        // Forced (sled, after a restart): taken at once.
        let c = store
            .claim_lease("x", "c", t0() + Duration::seconds(53), ttl, true)
            .unwrap();
        assert_eq!(c.held().map(|l| l.attempt), Some(3));
        store
            .release_lease("x", "c", t0() + Duration::seconds(54))
            .unwrap();
        let d = store
            .claim_lease("x", "d", t0() + Duration::seconds(55), ttl, false)
            .unwrap();
        assert_eq!(d.held().map(|l| l.attempt), Some(4));
    }

    #[test]
    fn heartbeats_list_the_live_replicas() {
        let store = Store::open_temporary().unwrap();
        for (id, seen) in [("r1", 0), ("r2", 50), ("r3", 55)] {
            store
                .put_heartbeat(&Heartbeat {
                    replica: id.into(),
                    started_at: t0() + Duration::seconds(seen),
                    seen_at: t0() + Duration::seconds(seen),
                    roles: vec![],
                })
                .unwrap();
        }
        let live: Vec<String> = store
            .live_replicas(t0() + Duration::seconds(30))
            .unwrap()
            .into_iter()
            .map(|b| b.replica)
            .collect();
        assert_eq!(live, ["r2", "r3"]);
        store.remove_heartbeat("r2").unwrap();
        assert_eq!(
            store.live_replicas(t0()).unwrap().len(),
            2,
            "r1 and r3 are left"
        );
    }
}
