//! `hanko audit verify --anchors s3://BUCKET/PREFIX --public-key PUB.pem`: the store's chain
//! checked against the digests written outside it.
//!
//! In order, stopping at the first failure:
//!
//! 1. list `PREFIX/digest-*.json` and read them in key order (chain order); none is a failure:
//!    nothing would anchor the store;
//! 2. each digest: its shape, its **signature** with the given public key, its **link**
//!    (`previous_digest_hash` is the SHA-256 of the object before it; 64 zeros for the first)
//!    and its range (`first_seq` follows the previous `last_seq`; 1 for the first);
//! 3. the store's own chain and head ([`Store::verify_audit`]);
//! 4. every anchored head is still in the store: the event at each digest's `last_seq` exists
//!    and has that digest's `head_hash` (with step 3, the chain up to it verifies).
//!
//! A cut tail (even with the head rewritten to match) fails step 4 as "the store ends at event
//! N", a rewritten event fails it as "does not have the anchored hash"; both messages name the
//! last anchored seq. A wrong public key fails step 2 on the first digest.

use super::{
    digest_hash, AnchorError, AnchorLocation, AnchorPublicKey, Digest, NO_PREVIOUS_DIGEST,
};
use crate::aws::anchors::{get_object, list_keys};
use crate::aws::AwsError;
use crate::store::{Store, StoreError, VerifyError};

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorReport {
    /// Events in the store, all verified.
    pub events: u64,
    /// Digests whose signature and link verified.
    pub digests: usize,
    /// The highest anchored sequence number.
    pub last_anchored_seq: u64,
    /// When that digest was made.
    pub last_anchored_at: String,
}

/// Why the check failed. [`AnchorVerifyError::is_broken`] tells "the answer is no" (exit 1)
/// from "the check could not run" (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AnchorVerifyError {
    #[error("cannot read the digests at {url}: {source}")]
    S3 {
        url: String,
        #[source]
        source: Box<AwsError>,
    },
    #[error(transparent)]
    StoreIo(StoreError),
    #[error("no digests under {url}: nothing anchors this store (check the bucket and prefix; hanko run writes a digest every anchor_interval and at shutdown)")]
    NoDigests { url: String },
    #[error(transparent)]
    Malformed(AnchorError),
    #[error("digest {key}: the signature does not verify with this public key: the wrong key, or the digest was edited")]
    BadSignature { key: String },
    #[error("digest {key}: previous_digest_hash does not match {previous}: a digest was removed, replaced or reordered")]
    BrokenLink { key: String, previous: String },
    #[error("digest {key}: covers events {first_seq} to {last_seq}, but should start at event {expected_first}: a digest was removed, replaced or reordered")]
    Range {
        key: String,
        first_seq: u64,
        last_seq: u64,
        expected_first: u64,
    },
    #[error("{source}; last anchored seq: {last_anchored_seq}")]
    Chain {
        source: VerifyError,
        last_anchored_seq: u64,
    },
    #[error("the store's audit log ends at event {store_seq}, but digest {key} anchored event {anchored_seq}: events were removed after they were anchored (last anchored seq: {last_anchored_seq})")]
    Truncated {
        store_seq: u64,
        anchored_seq: u64,
        key: String,
        last_anchored_seq: u64,
    },
    #[error("audit event {seq} does not have the hash anchored by digest {key}: it was rewritten after it was anchored (last anchored seq: {last_anchored_seq})")]
    Rewritten {
        seq: u64,
        key: String,
        last_anchored_seq: u64,
    },
}

impl AnchorVerifyError {
    /// The answer is "no" (exit 1), as opposed to "could not check" (exit 2).
    pub fn is_broken(&self) -> bool {
        !matches!(
            self,
            AnchorVerifyError::S3 { .. } | AnchorVerifyError::StoreIo(_)
        )
    }
}

/// Checks `store` against the digests at `location` (see the module docs).
pub async fn verify_anchored(
    store: &Store,
    s3: &aws_sdk_s3::Client,
    location: &AnchorLocation,
    public_key: &AnchorPublicKey,
) -> Result<AnchorReport, AnchorVerifyError> {
    let s3_error = |source| AnchorVerifyError::S3 {
        url: location.url(),
        source: Box::new(source),
    };
    let keys: Vec<String> = list_keys(s3, &location.bucket, &location.digest_key_prefix())
        .await
        .map_err(s3_error)?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    if keys.is_empty() {
        return Err(AnchorVerifyError::NoDigests {
            url: location.url(),
        });
    }

    let mut digests: Vec<(String, Digest)> = Vec::with_capacity(keys.len());
    let mut previous: Option<(String, u64, String)> = None; // key, last_seq, object hash
    for key in keys {
        let object = get_object(s3, &location.bucket, &key)
            .await
            .map_err(s3_error)?;
        let digest = Digest::parse(&key, &object).map_err(AnchorVerifyError::Malformed)?;
        if !digest.signed_by(public_key) {
            return Err(AnchorVerifyError::BadSignature { key });
        }
        let (expected_link, expected_first, previous_name) = match &previous {
            None => (
                NO_PREVIOUS_DIGEST.to_string(),
                1,
                "the start of the chain (64 zeros)".to_string(),
            ),
            Some((k, seq, hash)) => (hash.clone(), seq + 1, format!("the digest before it, {k}")),
        };
        if digest.previous_digest_hash != expected_link {
            return Err(AnchorVerifyError::BrokenLink {
                key,
                previous: previous_name,
            });
        }
        if digest.first_seq != expected_first {
            return Err(AnchorVerifyError::Range {
                key,
                first_seq: digest.first_seq,
                last_seq: digest.last_seq,
                expected_first,
            });
        }
        previous = Some((key.clone(), digest.last_seq, digest_hash(&object)));
        digests.push((key, digest));
    }
    let (last_anchored_seq, last_anchored_at) = digests
        .last()
        .map(|(_, d)| (d.last_seq, d.anchored_at.clone()))
        .unwrap_or_default();

    let events = match store.verify_audit() {
        Ok(n) => n,
        Err(VerifyError::Store(e)) => return Err(AnchorVerifyError::StoreIo(e)),
        Err(source) => {
            return Err(AnchorVerifyError::Chain {
                source,
                last_anchored_seq,
            })
        }
    };
    for (key, digest) in &digests {
        if digest.last_seq > events {
            return Err(AnchorVerifyError::Truncated {
                store_seq: events,
                anchored_seq: digest.last_seq,
                key: key.clone(),
                last_anchored_seq,
            });
        }
        let event = store
            .audit_event(digest.last_seq)
            .map_err(AnchorVerifyError::StoreIo)?;
        if event.map(|e| e.hash) != Some(digest.head_hash.clone()) {
            return Err(AnchorVerifyError::Rewritten {
                seq: digest.last_seq,
                key: key.clone(),
                last_anchored_seq,
            });
        }
    }
    Ok(AnchorReport {
        events,
        digests: digests.len(),
        last_anchored_seq,
        last_anchored_at,
    })
}
