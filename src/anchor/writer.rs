//! The digest writer of `hanko run`: every `anchor_interval`, and once at shutdown, signs the
//! store's audit head and writes it to S3 when the head moved since the last digest.
//!
//! The chain of digests continues across restarts through two small records in the store
//! (never the key; [`Store::anchor_record`], the store owns their keys): [`AnchorSlot::Last`],
//! the last digest written (its object key, `last_seq`, head hash and object hash), and
//! [`AnchorSlot::Pending`], a digest about to be written, with its bytes. A digest is recorded as pending (flushed) before its `PutObject`
//! and promoted to last after it; a pending digest found later (the process died, or S3 failed)
//! is written again with the very same bytes and key before any new one, so the chain of
//! `previous_digest_hash` never skips an object that reached S3. `hanko run` needs only
//! `s3:PutObject`: it never reads the bucket.
//!
//! Tampering with these records does not weaken anything: a digest whose link does not match
//! the object before it fails `hanko audit verify --anchors`.
//!
//! Uses the store, the clock and [`crate::aws::anchors`]; never imports serenity.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{digest_hash, AnchorKey, AnchorLocation, Digest};
use crate::aws::anchors::put_digest;
use crate::aws::AwsError;
use crate::clock::Clock;
use crate::store::{AnchorSlot, Store, StoreError};

/// A digest written (or being written) to S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenDigest {
    /// Its object key.
    pub key: String,
    pub last_seq: u64,
    pub head_hash: String,
    /// SHA-256 of its bytes: the next digest's `previous_digest_hash`.
    pub digest_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PendingDigest {
    digest: WrittenDigest,
    /// The object, UTF-8 JSON.
    object: String,
}

/// Why no digest was written this time (the next tick tries again).
#[derive(Debug, thiserror::Error)]
pub enum AnchorWriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the anchor record {key} in the store cannot be read ({message}); remove it only if you know why it is broken")]
    Record { key: &'static str, message: String },
    #[error("cannot write the audit digest {url}: {source}")]
    S3 {
        url: String,
        #[source]
        source: Box<AwsError>,
    },
    #[error("the store's audit log ends at event {head_seq}, before event {anchored_seq} anchored by {key}: events were removed or the store was replaced; no digest is written (run `hanko audit verify --anchors`)")]
    StoreBehindAnchor {
        head_seq: u64,
        anchored_seq: u64,
        key: String,
    },
}

/// Writes digests of one store's audit head to one S3 location.
#[derive(Debug, Clone)]
pub struct Anchorer {
    store: Store,
    s3: aws_sdk_s3::Client,
    location: AnchorLocation,
    key: AnchorKey,
    interval: Duration,
    clock: Clock,
}

impl Anchorer {
    pub fn new(
        store: Store,
        s3: aws_sdk_s3::Client,
        location: AnchorLocation,
        key: AnchorKey,
        interval: Duration,
        clock: Clock,
    ) -> Anchorer {
        Anchorer {
            store,
            s3,
            location,
            key,
            interval,
            clock,
        }
    }

    pub fn location(&self) -> &AnchorLocation {
        &self.location
    }

    /// The last digest written, as the store remembers it.
    pub fn last_written(&self) -> Result<Option<WrittenDigest>, AnchorWriteError> {
        self.record(AnchorSlot::Last)
    }

    /// Writes a digest of the current head when it moved since the last one (after finishing
    /// a pending one). Returns the digest written, `None` when the head had not moved.
    pub async fn anchor_now(&self) -> Result<Option<WrittenDigest>, AnchorWriteError> {
        if let Some(pending) = self.record::<PendingDigest>(AnchorSlot::Pending)? {
            self.put(&pending).await?;
        }
        let last = self.last_written()?;
        let (head_seq, head_hash) = self.store.audit_head()?;
        if let Some(last) = &last {
            if head_seq < last.last_seq {
                return Err(AnchorWriteError::StoreBehindAnchor {
                    head_seq,
                    anchored_seq: last.last_seq,
                    key: last.key.clone(),
                });
            }
            if head_seq == last.last_seq {
                // Same head (a different hash at the same seq is for verify to report).
                return Ok(None);
            }
        } else if head_seq == 0 {
            return Ok(None);
        }
        let digest = Digest::sign(
            &self.key,
            last.as_ref().map(|l| (l.last_seq, l.digest_hash.as_str())),
            head_seq,
            &head_hash,
            self.clock.now(),
        );
        let object = digest.to_bytes();
        let pending = PendingDigest {
            digest: WrittenDigest {
                key: self.location.key_of(&digest),
                last_seq: head_seq,
                head_hash,
                digest_hash: digest_hash(&object),
            },
            object: String::from_utf8_lossy(&object).into_owned(),
        };
        self.store
            .put_anchor_record(AnchorSlot::Pending, &encode(&pending))?;
        self.store.flush()?;
        self.put(&pending).await?;
        Ok(Some(pending.digest))
    }

    /// Writes a pending digest, then records it as the last one.
    async fn put(&self, pending: &PendingDigest) -> Result<(), AnchorWriteError> {
        put_digest(
            &self.s3,
            &self.location.bucket,
            &pending.digest.key,
            pending.object.clone().into_bytes(),
        )
        .await
        .map_err(|source| AnchorWriteError::S3 {
            url: format!("s3://{}/{}", self.location.bucket, pending.digest.key),
            source: Box::new(source),
        })?;
        self.store
            .put_anchor_record(AnchorSlot::Last, &encode(&pending.digest))?;
        self.store.remove_anchor_record(AnchorSlot::Pending)?;
        self.store.flush()?;
        tracing::info!(
            key = %pending.digest.key,
            last_seq = pending.digest.last_seq,
            "wrote an audit digest"
        );
        Ok(())
    }

    /// Every `interval` (the first one interval after start), until the shutdown signal. The
    /// digest at shutdown is [`Anchorer::anchor_now`], called by `run` once everything that
    /// writes events has stopped.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let start = tokio::time::Instant::now() + self.interval;
        let mut ticks = tokio::time::interval_at(start, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // The guard `wait_for` returns is not `Send`: drop it inside.
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
                _ = ticks.tick() => {
                    if let Err(e) = self.anchor_now().await {
                        tracing::error!(error = %e, "audit anchor: no digest written this time");
                    }
                }
            }
        }
    }

    fn record<T: serde::de::DeserializeOwned>(
        &self,
        slot: AnchorSlot,
    ) -> Result<Option<T>, AnchorWriteError> {
        match self.store.anchor_record(slot)? {
            None => Ok(None),
            Some(text) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| AnchorWriteError::Record {
                        key: slot.name(),
                        message: e.to_string(),
                    })
            }
        }
    }
}

fn encode<T: Serialize>(value: &T) -> String {
    // Strings and integers only: serialising cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}
