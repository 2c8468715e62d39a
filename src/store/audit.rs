//! The audit log: appending outside a larger transaction, queries over the indexes (see
//! "Audit queries" in [`super`]), the chain's verification and its head.
//!
//! The append inside a transaction is `Tx::append` in [`super`], shared by every state change.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use crate::audit::{Actor, AuditEvent, AuditQuery, ChainError, ChainVerifier, NewEvent};

use super::{
    audit_key_name, be_u64, decode, encode, idx_actor_prefix, idx_finding_prefix, idx_kind_prefix,
    idx_request_prefix, meta_key_name, Head, Store, StoreError, VerifyError, CLOCK_SKEW_TOLERANCE,
    META_AUDIT_HEAD, TREE_AUDIT, TREE_AUDIT_ACTORS,
};

impl Store {
    /// Appends one event to the chain.
    pub fn append_audit(&self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        self.transact(|tx| tx.append(ev.clone()))
    }

    /// Events matching `q`, newest first, at most `q.limit`.
    pub fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }

        let mut sources: Vec<Vec<Vec<u8>>> = Vec::new();
        if let Some(request_id) = q.request_id {
            sources.push(vec![idx_request_prefix(request_id)]);
        }
        if let Some(finding_id) = &q.finding_id {
            sources.push(vec![idx_finding_prefix(finding_id)]);
        }
        if let Some(needle) = &q.actor {
            let keys = self.actor_keys_matching(needle)?;
            if keys.is_empty() {
                return Ok(out);
            }
            sources.push(keys.iter().map(|k| idx_actor_prefix(k)).collect());
        }
        if let Some(kind) = q.kind {
            sources.push(vec![idx_kind_prefix(kind)]);
        }

        // Events are appended in time order up to the clock skew between writers, so
        // nothing newer than `start` can be before `until`, and nothing older than
        // `stop_before` can be at or after `since`.
        let start = match q.until {
            Some(until) => self.first_seq_at_or_after(until + CLOCK_SKEW_TOLERANCE)?,
            None => u64::MAX,
        };
        let stop_before = q.since.map(|since| since - CLOCK_SKEW_TOLERANCE);
        // Returns false when the scan should stop.
        let mut visit = |event: AuditEvent| -> bool {
            if stop_before.is_some_and(|stop| event.at < stop) {
                return false;
            }
            if q.matches(&event) {
                out.push(event);
            }
            out.len() < limit
        };

        if sources.is_empty() {
            for item in self.inner.trees.audit.range(..=start.to_be_bytes()).rev() {
                let (key, value) = item?;
                let event = self.decode_event(&key, &value)?;
                if !visit(event) {
                    break;
                }
            }
            return Ok(out);
        }

        // Zig-zag join: the largest seq <= `candidate` present in every source.
        let mut candidate = start;
        'scan: loop {
            let mut agreed = 0;
            let mut i = 0;
            while agreed < sources.len() {
                match self.seek_le(&sources[i], candidate)? {
                    None => break 'scan,
                    Some(seq) if seq == candidate => agreed += 1,
                    Some(seq) => {
                        candidate = seq;
                        agreed = 1;
                    }
                }
                i = (i + 1) % sources.len();
            }
            let event = self.load_event(candidate)?;
            if !visit(event) || candidate <= 1 {
                break;
            }
            candidate -= 1;
        }
        Ok(out)
    }

    /// The first event at or after `t`, by binary search over the log (whose times rise with
    /// the sequence number, up to clock skew); `u64::MAX` when every event is older.
    pub(super) fn first_seq_at_or_after(&self, t: DateTime<Utc>) -> Result<u64, StoreError> {
        let last = self.head()?.seq;
        let (mut lo, mut hi) = (1, last + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.load_event(mid)?.at < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(if lo > last { u64::MAX } else { lo })
    }

    /// The largest seq `<= max` indexed under any of `prefixes`.
    pub(super) fn seek_le(
        &self,
        prefixes: &[Vec<u8>],
        max: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut best = None;
        for prefix in prefixes {
            let mut hi = prefix.clone();
            hi.extend_from_slice(&max.to_be_bytes());
            for item in self
                .inner
                .trees
                .audit_idx
                .range(prefix.as_slice()..=hi.as_slice())
                .rev()
            {
                let (key, _) = item?;
                if key.len() == prefix.len() + 8 {
                    let seq = be_u64(&key[prefix.len()..]).unwrap_or(0);
                    best = best.max(Some(seq));
                    break;
                }
            }
        }
        Ok(best)
    }

    /// Every actor key with an identity that `needle` names ([`Actor::matches`]).
    pub(super) fn actor_keys_matching(&self, needle: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = Vec::new();
        for item in self.inner.trees.audit_actors.iter() {
            let (key, value) = item?;
            let actor: Actor = decode(&value, || {
                format!("{TREE_AUDIT_ACTORS}/{}", String::from_utf8_lossy(&key))
            })?;
            if actor.matches(needle) {
                let k = actor.key();
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        Ok(keys)
    }

    pub(super) fn load_event(&self, seq: u64) -> Result<AuditEvent, StoreError> {
        let key = seq.to_be_bytes();
        match self.inner.trees.audit.get(key)? {
            Some(value) => self.decode_event(&key, &value),
            None => Err(StoreError::Corrupt {
                key: format!("{TREE_AUDIT}/{seq}"),
                message: "the index names this event but the log does not hold it".into(),
            }),
        }
    }

    pub(super) fn decode_event(&self, key: &[u8], value: &[u8]) -> Result<AuditEvent, StoreError> {
        self.inner.events_decoded.fetch_add(1, Ordering::Relaxed);
        decode(value, || audit_key_name(key))
    }

    /// How many audit events queries have decoded since this store was opened.
    #[cfg(test)]
    pub(super) fn events_decoded(&self) -> u64 {
        self.inner.events_decoded.load(Ordering::Relaxed)
    }

    /// Every audit event in sequence order (for export).
    pub fn audit_events(&self) -> impl Iterator<Item = Result<AuditEvent, StoreError>> + '_ {
        self.inner.trees.audit.iter().map(move |item| {
            let (key, value) = item?;
            decode(&value, || audit_key_name(&key))
        })
    }

    /// Verifies the whole chain and its head; returns how many events it holds.
    pub fn verify_audit(&self) -> Result<u64, VerifyError> {
        let mut verifier = ChainVerifier::default();
        for item in self.inner.trees.audit.iter() {
            let (key, value) = item?;
            let seq = be_u64(&key).ok_or_else(|| StoreError::Corrupt {
                key: audit_key_name(&key),
                message: "an audit key is not an 8-byte sequence number".into(),
            })?;
            let event: AuditEvent =
                serde_json::from_slice(&value).map_err(|e| ChainError::Undecodable {
                    seq,
                    message: e.to_string(),
                })?;
            if event.seq != seq {
                return Err(ChainError::Undecodable {
                    seq,
                    message: format!(
                        "stored as event {seq} but records sequence number {}",
                        event.seq
                    ),
                }
                .into());
            }
            verifier.check_record(&event, &value)?;
        }
        let head = self.head()?;
        if head.seq != verifier.checked() || head.hash != verifier.head() {
            return Err(VerifyError::HeadMismatch {
                head_seq: head.seq,
                last_seq: verifier.checked(),
            });
        }
        Ok(verifier.checked())
    }

    pub(super) fn head(&self) -> Result<Head, StoreError> {
        match self.inner.trees.meta.get(META_AUDIT_HEAD)? {
            Some(value) => decode(&value, meta_key_name(META_AUDIT_HEAD)),
            None => Ok(Head::genesis()),
        }
    }

    /// The recorded head of the log: its last sequence number and that event's hash
    /// (`(0, GENESIS_HASH)` when the log is empty). What [`crate::anchor`] signs.
    pub fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let head = self.head()?;
        Ok((head.seq, head.hash))
    }

    /// The audit event numbered `seq`, if the log holds it.
    pub fn audit_event(&self, seq: u64) -> Result<Option<AuditEvent>, StoreError> {
        let key = seq.to_be_bytes();
        match self.inner.trees.audit.get(key)? {
            Some(value) => self.decode_event(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Test-only, as an attacker with the files would: drops every audit event after `keep`
    /// and rewrites the head to event `keep`, so that [`Store::verify_audit`] alone still
    /// passes. Only an anchor outside the store ([`crate::anchor`]) can tell.
    #[doc(hidden)]
    pub fn truncate_audit_for_tests(&self, keep: u64) -> Result<(), StoreError> {
        let head = match keep {
            0 => Head::genesis(),
            n => {
                let event = self.audit_event(n)?.ok_or_else(|| StoreError::Corrupt {
                    key: format!("{TREE_AUDIT}/{n}"),
                    message: "no such event to truncate to".into(),
                })?;
                Head {
                    seq: n,
                    hash: event.hash,
                }
            }
        };
        let doomed: Vec<_> = self
            .inner
            .trees
            .audit
            .range((keep + 1).to_be_bytes()..)
            .map(|item| item.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        for key in doomed {
            self.inner.trees.audit.remove(key)?;
        }
        self.inner
            .trees
            .meta
            .insert(META_AUDIT_HEAD, encode(&head, "audit head")?)?;
        self.flush()
    }

    /// How many events the log holds (by its head; 0 when the head is unreadable, which
    /// [`Store::verify_audit`] reports).
    pub fn audit_len(&self) -> u64 {
        self.head().map(|h| h.seq).unwrap_or(0)
    }
}
