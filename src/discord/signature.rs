//! Discord's signature on a request to the HTTP interactions endpoint, checked before anything
//! reads the body.
//!
//! Discord signs each POST with the application's Ed25519 key: `X-Signature-Ed25519` is the
//! hex signature of the bytes of `X-Signature-Timestamp` (Unix seconds) followed by the raw
//! body, checked against `discord.public_key`. A request is refused when a header is missing
//! or malformed, when the timestamp is more than [`MAX_SKEW`] from hanko's clock in either
//! direction (a replayed request), or when the signature does not match. Discord sends a signed
//! PING when the endpoint URL is saved in the Developer Portal, and an unsigned one now and then
//! to check that hanko refuses it.
//!
//! Pure: the header values, the body and `now` in, a verdict out; no I/O, no clock of its own,
//! no serenity. Never panics, whatever the input.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::config::DiscordPublicKey;

/// The header holding the hex signature.
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// The header holding the Unix time the signature was made at.
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";
/// How far a request's timestamp may be from hanko's clock, either way.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(5);
/// A timestamp longer than this is not Unix seconds (and would not fit an i64).
const MAX_TIMESTAMP_DIGITS: usize = 18;

/// Why a request was refused. Shown in hanko's log only (the client gets a bare 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("no X-Signature-Ed25519 header")]
    MissingSignature,
    #[error("no X-Signature-Timestamp header")]
    MissingTimestamp,
    #[error("X-Signature-Ed25519 is not 128 hex characters")]
    MalformedSignature,
    #[error("X-Signature-Timestamp is not Unix seconds")]
    MalformedTimestamp,
    #[error("X-Signature-Timestamp is {skew_secs} s from hanko's clock, more than 5 minutes")]
    Stale { skew_secs: i64 },
    #[error("the signature does not match the body, the timestamp and discord.public_key")]
    BadSignature,
}

/// Checks requests against one application's public key.
#[derive(Clone, Debug)]
pub struct Verifier {
    key: VerifyingKey,
}

impl Verifier {
    /// `None` when the bytes are not an Ed25519 public key (the config refuses such a key, so
    /// a validated [`DiscordPublicKey`] always gives a verifier).
    pub fn new(key: &DiscordPublicKey) -> Option<Verifier> {
        VerifyingKey::from_bytes(&key.0)
            .ok()
            .map(|key| Verifier { key })
    }

    /// Whether `body` was signed by Discord at `timestamp`, within [`MAX_SKEW`] of `now`. The
    /// header values are the raw bytes (`None` when the header is absent).
    pub fn verify(
        &self,
        signature: Option<&[u8]>,
        timestamp: Option<&[u8]>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), Unverified> {
        let signature = signature.ok_or(Unverified::MissingSignature)?;
        let timestamp = timestamp.ok_or(Unverified::MissingTimestamp)?;
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(signature, &mut bytes).map_err(|_| Unverified::MalformedSignature)?;
        let signature = Signature::from_bytes(&bytes);
        let at = unix_seconds(timestamp).ok_or(Unverified::MalformedTimestamp)?;
        let skew_secs = now.timestamp().saturating_sub(at);
        if skew_secs.unsigned_abs() > MAX_SKEW.num_seconds().unsigned_abs() {
            return Err(Unverified::Stale { skew_secs });
        }
        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp);
        message.extend_from_slice(body);
        self.key
            .verify_strict(&message, &signature)
            .map_err(|_| Unverified::BadSignature)
    }
}

/// Unix seconds written as ASCII digits (no sign, no spaces).
fn unix_seconds(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_TIMESTAMP_DIGITS || !text.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const BODY: &[u8] = br#"{"type":1,"id":"1","application_id":"2","token":"t","version":1}"#;

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn verifier_of(key: &SigningKey) -> Verifier {
        Verifier::new(&DiscordPublicKey(key.verifying_key().to_bytes())).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// The headers Discord would send for `body` at `at`.
    fn signed(key: &SigningKey, at: i64, body: &[u8]) -> (String, String) {
        let timestamp = at.to_string();
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        (hex::encode(key.sign(&message).to_bytes()), timestamp)
    }

    fn check(
        verifier: &Verifier,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), Unverified> {
        verifier.verify(
            signature.map(str::as_bytes),
            timestamp.map(str::as_bytes),
            body,
            now(),
        )
    }

    #[test]
    fn a_request_signed_with_the_key_passes() {
        let key = signing_key(1);
        let (sig, ts) = signed(&key, now().timestamp(), BODY);
        assert_eq!(
            check(&verifier_of(&key), Some(&sig), Some(&ts), BODY),
            Ok(())
        );
        // Discord's hex is lowercase; uppercase is the same bytes.
        let upper = sig.to_uppercase();
        assert_eq!(
            check(&verifier_of(&key), Some(&upper), Some(&ts), BODY),
            Ok(())
        );
    }

    #[test]
    fn another_key_tampering_and_missing_headers_are_refused() {
        let key = signing_key(1);
        let verifier = verifier_of(&key);
        let (sig, ts) = signed(&key, now().timestamp(), BODY);

        let (forged, _) = signed(&signing_key(2), now().timestamp(), BODY);
        assert_eq!(
            check(&verifier, Some(&forged), Some(&ts), BODY),
            Err(Unverified::BadSignature),
            "signed with another key"
        );

        let mut tampered = BODY.to_vec();
        tampered[9] = b'2';
        assert_eq!(
            check(&verifier, Some(&sig), Some(&ts), &tampered),
            Err(Unverified::BadSignature),
            "the body changed"
        );
        assert_eq!(
            check(&verifier, Some(&sig), Some(&ts), b""),
            Err(Unverified::BadSignature),
            "an empty body"
        );

        let earlier = (now().timestamp() - 1).to_string();
        assert_eq!(
            check(&verifier, Some(&sig), Some(&earlier), BODY),
            Err(Unverified::BadSignature),
            "the timestamp changed (still fresh)"
        );

        assert_eq!(
            check(&verifier, None, Some(&ts), BODY),
            Err(Unverified::MissingSignature)
        );
        assert_eq!(
            check(&verifier, Some(&sig), None, BODY),
            Err(Unverified::MissingTimestamp)
        );
        assert_eq!(
            check(&verifier, None, None, BODY),
            Err(Unverified::MissingSignature)
        );
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let key = signing_key(1);
        let verifier = verifier_of(&key);
        let (sig, ts) = signed(&key, now().timestamp(), BODY);
        for bad in [
            String::new(),
            "zz".repeat(64),
            sig[..126].to_string(),
            format!("{sig}00"),
            format!(" {}", &sig[1..]),
            "é".repeat(64),
        ] {
            assert_eq!(
                check(&verifier, Some(&bad), Some(&ts), BODY),
                Err(Unverified::MalformedSignature),
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "-1700000000",
            "+1700000000",
            "1700000000.5",
            " 1700000000",
            "17e8",
            "99999999999999999999999",
        ] {
            assert_eq!(
                check(&verifier, Some(&sig), Some(bad), BODY),
                Err(Unverified::MalformedTimestamp),
                "{bad:?}"
            );
        }
        // Raw bytes that are not UTF-8 at all.
        assert_eq!(
            verifier.verify(Some(&[0xff; 128]), Some(ts.as_bytes()), BODY, now()),
            Err(Unverified::MalformedSignature)
        );
        assert_eq!(
            verifier.verify(Some(sig.as_bytes()), Some(&[0xff, 0xfe]), BODY, now()),
            Err(Unverified::MalformedTimestamp)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused_either_way() {
        let key = signing_key(1);
        let verifier = verifier_of(&key);
        let t = now().timestamp();
        for (at, verdict) in [
            (t - 300, Ok(())),
            (t + 300, Ok(())),
            (t - 301, Err(Unverified::Stale { skew_secs: 301 })),
            (t + 301, Err(Unverified::Stale { skew_secs: -301 })),
            (t - 86_400, Err(Unverified::Stale { skew_secs: 86_400 })),
            (0, Err(Unverified::Stale { skew_secs: t })),
        ] {
            // Correctly signed: only the age decides.
            let (sig, ts) = signed(&key, at, BODY);
            assert_eq!(
                check(&verifier, Some(&sig), Some(&ts), BODY),
                verdict,
                "{at}"
            );
        }
    }

    #[test]
    fn a_key_that_is_not_a_curve_point_gives_no_verifier() {
        let bad = (0u8..=255)
            .map(|b| [b; 32])
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .unwrap();
        assert!(Verifier::new(&DiscordPublicKey(bad)).is_none());
    }
}
