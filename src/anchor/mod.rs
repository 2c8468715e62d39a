//! Anchors: the head of the audit chain, signed and written outside the store, as CloudTrail
//! does with its signed digest files (issue 11, item 4b).
//!
//! The hash chain ([`crate::audit`]) proves that no event was edited *inside* the log, but its
//! head lives in the store it protects: whoever can write the store can cut the tail, rewrite
//! the head, and `hanko audit verify` still passes. With `[audit] anchor_bucket` set, `hanko run`
//! writes a **digest** of the head to S3 ([`writer`]); `hanko audit verify --anchors` checks
//! every digest's signature and link and that the store still holds every anchored head
//! ([`verify`]). With S3 Object Lock (compliance mode) on the bucket, nobody, hanko included,
//! can delete or overwrite a digest during its retention.
//!
//! This module owns the digest format, the keys (Ed25519, PKCS#8 / SubjectPublicKeyInfo PEM as
//! openssl writes them) and the object key layout; it is pure. [`writer`] and [`verify`] use
//! the store and the S3 adapter ([`crate::aws::anchors`]); nothing here imports serenity.
//!
//! # The digest object
//!
//! One JSON object, UTF-8, written as it is below (field order as shown, no whitespace):
//!
//! ```text
//! {"format":"hanko-audit-digest/1","first_seq":41,"last_seq":57,
//!  "head_hash":"<64 hex>","previous_digest_hash":"<64 hex>",
//!  "anchored_at":"2026-11-28T16:00:00.123456Z","signature":"<128 hex>"}
//! ```
//!
//! - `first_seq`: the first audit event this digest covers: the previous digest's `last_seq`
//!   + 1 (1 for the first digest).
//! - `last_seq`, `head_hash`: the store's head when the digest was made: the last event's
//!   sequence number and its hash.
//! - `previous_digest_hash`: lowercase hex SHA-256 of the previous digest object's bytes,
//!   exactly as stored in S3; 64 zeros for the first digest.
//! - `anchored_at`: RFC 3339 UTC, microseconds, `Z`.
//! - `signature`: lowercase hex of the Ed25519 signature (RFC 8032, pure Ed25519) over the
//!   **signing string**: the UTF-8 lines
//!
//!   ```text
//!   hanko-audit-digest/1
//!   <first_seq in decimal>
//!   <last_seq in decimal>
//!   <head_hash>
//!   <previous_digest_hash>
//!   <anchored_at, as written in the object>
//!   ```
//!
//!   joined by `\n`, with no trailing newline. Every field is an integer or an ASCII string,
//!   so the signing string is rebuilt exactly from the parsed object; no JSON
//!   canonicalisation is involved.
//!
//! # When a digest is written
//!
//! Every `anchor_interval` (default 1h; the first one interval after start-up) and once at
//! shutdown, and each time only when the head moved since the last digest (a quiet log makes
//! no objects). So consecutive digests cover consecutive, non-empty ranges of events.
//!
//! # Object keys
//!
//! `<prefix>digest-<last_seq, 20 digits>-<anchored_at as YYYYMMDDTHHMMSSZ>.json`, where the
//! prefix is `anchor_prefix` with a `/` added when it is not empty and does not end in one
//! (`anchor_prefix = "hanko/prod"` → `hanko/prod/digest-…`). The zero-padded sequence number
//! makes the keys sort in chain order; `verify` lists `<prefix>digest-` and reads them in key
//! order. One store per prefix: two hanko instances must not share one.

pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::audit::GENESIS_HASH;

/// The `format` of a digest and the first line of its signing string.
pub const DIGEST_FORMAT: &str = "hanko-audit-digest/1";
/// The `previous_digest_hash` of the first digest.
pub const NO_PREVIOUS_DIGEST: &str = GENESIS_HASH;
/// What every digest's object key starts with, after the prefix.
pub const DIGEST_KEY_STEM: &str = "digest-";

/// Why a key or a digest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("{}: cannot be read ({reason})", path.display())]
    KeyFile { path: PathBuf, reason: String },
    #[error("{}: not an Ed25519 {what} in PEM ({reason}); {fix}", path.display())]
    KeyFormat {
        path: PathBuf,
        what: &'static str,
        reason: String,
        fix: &'static str,
    },
    #[error("digest {key}: {message}")]
    Malformed { key: String, message: String },
    #[error("`{0}` is not an S3 location: write it as s3://BUCKET or s3://BUCKET/PREFIX")]
    Location(String),
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// The private key digests are signed with. Read from its file at start-up; `Debug` never
/// prints it, and nothing stores it.
#[derive(Clone)]
pub struct AnchorKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnchorKey([redacted])")
    }
}

impl AnchorKey {
    /// Reads an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    /// Errors name the file, never its content.
    pub fn read(path: &Path) -> Result<AnchorKey, AnchorError> {
        let text = read_key_file(path)?;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&text)
            .map(AnchorKey)
            .map_err(|e| AnchorError::KeyFormat {
                path: path.to_owned(),
                what: "private key (PKCS#8)",
                reason: e.to_string(),
                fix: "make one with `openssl genpkey -algorithm ed25519 -out anchor.pem`",
            })
    }

    /// The public half, to check digests with.
    pub fn public(&self) -> AnchorPublicKey {
        AnchorPublicKey(self.0.verifying_key())
    }

    fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }
}

/// The public key digests are checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorPublicKey(ed25519_dalek::VerifyingKey);

impl AnchorPublicKey {
    /// Reads an Ed25519 public key in SubjectPublicKeyInfo PEM (`openssl pkey -pubout`).
    pub fn read(path: &Path) -> Result<AnchorPublicKey, AnchorError> {
        let text = read_key_file(path)?;
        ed25519_dalek::VerifyingKey::from_public_key_pem(&text)
            .map(AnchorPublicKey)
            .map_err(|e| AnchorError::KeyFormat {
                path: path.to_owned(),
                what: "public key (SubjectPublicKeyInfo)",
                reason: e.to_string(),
                fix: "export it with `openssl pkey -in anchor.pem -pubout -out anchor.pub.pem`",
            })
    }

    /// Does `signature_hex` sign `message` with this key?
    fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(bytes) = hex::decode(signature_hex) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

fn read_key_file(path: &Path) -> Result<String, AnchorError> {
    std::fs::read_to_string(path).map_err(|e| AnchorError::KeyFile {
        path: path.to_owned(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Digests
// ---------------------------------------------------------------------------------------------

/// One digest, as written to S3 (see the module docs for the format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub format: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub head_hash: String,
    pub previous_digest_hash: String,
    pub anchored_at: String,
    pub signature: String,
}

impl Digest {
    /// A signed digest of the head `(last_seq, head_hash)` following the digest whose
    /// `last_seq` and object hash are `previous` (`None` for the first digest).
    pub fn sign(
        key: &AnchorKey,
        previous: Option<(u64, &str)>,
        last_seq: u64,
        head_hash: &str,
        now: DateTime<Utc>,
    ) -> Digest {
        let (first_seq, previous_digest_hash) = match previous {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, NO_PREVIOUS_DIGEST.to_string()),
        };
        let mut digest = Digest {
            format: DIGEST_FORMAT.to_string(),
            first_seq,
            last_seq,
            head_hash: head_hash.to_string(),
            previous_digest_hash,
            anchored_at: now.to_rfc3339_opts(SecondsFormat::Micros, true),
            signature: String::new(),
        };
        digest.signature = key.sign(digest.signing_string().as_bytes());
        digest
    }

    /// The exact bytes signed (see the module docs).
    pub fn signing_string(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.first_seq,
            self.last_seq,
            self.head_hash,
            self.previous_digest_hash,
            self.anchored_at
        )
    }

    /// The object's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain strings and integers: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses an object read from S3 and checks its shape (not its signature).
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Digest, AnchorError> {
        let malformed = |message: String| AnchorError::Malformed {
            key: key.to_string(),
            message,
        };
        let d: Digest = serde_json::from_slice(bytes)
            .map_err(|e| malformed(format!("not a digest object: {e}")))?;
        if d.format != DIGEST_FORMAT {
            return Err(malformed(format!(
                "format `{}` is not {DIGEST_FORMAT}",
                d.format.escape_debug()
            )));
        }
        for (name, value) in [
            ("head_hash", &d.head_hash),
            ("previous_digest_hash", &d.previous_digest_hash),
        ] {
            if !is_sha256_hex(value) {
                return Err(malformed(format!("{name} is not 64 lowercase hex digits")));
            }
        }
        if d.first_seq == 0 || d.last_seq < d.first_seq {
            return Err(malformed(format!(
                "covers events {} to {}: not a range of events",
                d.first_seq, d.last_seq
            )));
        }
        if DateTime::parse_from_rfc3339(&d.anchored_at).is_err() || d.anchored_at.contains('\n') {
            return Err(malformed("anchored_at is not an RFC 3339 time".into()));
        }
        Ok(d)
    }

    /// Is the signature this key's, over this digest's signing string?
    pub fn signed_by(&self, key: &AnchorPublicKey) -> bool {
        key.verifies(self.signing_string().as_bytes(), &self.signature)
    }
}

/// Lowercase hex SHA-256 of a digest object's bytes: the next digest's `previous_digest_hash`.
pub fn digest_hash(object: &[u8]) -> String {
    hex::encode(Sha256::digest(object))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Where digests live
// ---------------------------------------------------------------------------------------------

/// A bucket and the key prefix of its digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorLocation {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl AnchorLocation {
    /// `prefix` is normalised: leading `/` dropped, a trailing `/` added when not empty.
    pub fn new(bucket: impl Into<String>, prefix: &str) -> AnchorLocation {
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        AnchorLocation {
            bucket: bucket.into(),
            prefix,
        }
    }

    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub fn parse_url(url: &str) -> Result<AnchorLocation, AnchorError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| AnchorError::Location(url.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(AnchorError::Location(url.to_string()));
        }
        Ok(AnchorLocation::new(bucket, prefix))
    }

    /// What every digest's key starts with.
    pub fn digest_key_prefix(&self) -> String {
        format!("{}{DIGEST_KEY_STEM}", self.prefix)
    }

    /// The object key of `digest` (see the module docs).
    pub fn key_of(&self, digest: &Digest) -> String {
        let stamp = DateTime::parse_from_rfc3339(&digest.anchored_at)
            .map(|t| t.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|_| "unknown".into());
        format!(
            "{}{:020}-{stamp}.json",
            self.digest_key_prefix(),
            digest.last_seq
        )
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(seed: u8) -> AnchorKey {
        AnchorKey(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap()
    }

    #[test]
    fn a_digest_signs_its_signing_string_and_round_trips() {
        let k = key(7);
        let d = Digest::sign(&k, None, 57, &"ab".repeat(32), t0());
        assert_eq!(d.first_seq, 1);
        assert_eq!(d.previous_digest_hash, NO_PREVIOUS_DIGEST);
        assert_eq!(
            d.signing_string(),
            format!(
                "hanko-audit-digest/1\n1\n57\n{}\n{}\n2026-11-28T16:00:00.000000Z",
                "ab".repeat(32),
                "0".repeat(64)
            )
        );
        let bytes = d.to_bytes();
        let back = Digest::parse("k", &bytes).unwrap();
        assert_eq!(back, d);
        assert!(back.signed_by(&k.public()));
        assert!(!back.signed_by(&key(8).public()), "another key fails");

        let next = Digest::sign(
            &k,
            Some((57, &digest_hash(&bytes))),
            60,
            &"cd".repeat(32),
            t0(),
        );
        assert_eq!(next.first_seq, 58);
        assert_eq!(next.previous_digest_hash, digest_hash(&bytes));

        let mut forged = back.clone();
        forged.last_seq = 58;
        assert!(!forged.signed_by(&k.public()), "an edited digest fails");
    }

    #[test]
    fn malformed_digests_are_named() {
        for bad in [
            &b"not json"[..],
            br#"{"format":"other/1","first_seq":1,"last_seq":1,"head_hash":"","previous_digest_hash":"","anchored_at":"","signature":""}"#,
        ] {
            let e = Digest::parse("p/digest-1.json", bad).unwrap_err();
            assert!(e.to_string().starts_with("digest p/digest-1.json: "), "{e}");
        }
    }

    #[test]
    fn locations_and_keys_sort_in_chain_order() {
        assert_eq!(AnchorLocation::new("b", "").prefix, "");
        assert_eq!(AnchorLocation::new("b", "hanko/prod").prefix, "hanko/prod/");
        assert_eq!(AnchorLocation::new("b", "/x/").prefix, "x/");
        let l = AnchorLocation::parse_url("s3://bucket/hanko").unwrap();
        assert_eq!(l, AnchorLocation::new("bucket", "hanko/"));
        assert_eq!(AnchorLocation::parse_url("s3://bucket").unwrap().prefix, "");
        assert!(AnchorLocation::parse_url("https://bucket").is_err());
        assert!(AnchorLocation::parse_url("s3:///x").is_err());
        let k = key(1);
        let a = Digest::sign(&k, None, 9, &"ab".repeat(32), t0());
        let b = Digest::sign(&k, Some((9, "x")), 10, &"ab".repeat(32), t0());
        let (ka, kb) = (l.key_of(&a), l.key_of(&b));
        assert_eq!(
            ka,
            "hanko/digest-00000000000000000009-20261128T160000Z.json"
        );
        assert!(ka < kb);
    }

    #[test]
    fn the_private_key_never_prints() {
        assert_eq!(format!("{:?}", key(3)), "AnchorKey([redacted])");
    }
}
