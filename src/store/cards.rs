//! Where each chat card is: the message id the outbox ([`crate::discord::outbox`]) posted it
//! as, or the digest message it was folded into.
//!
//! | `kv` key | value |
//! |---|---|
//! | `card.<request uuid>` | a request's card |
//! | `card.finding.<finding id>` | a finding's card |
//! | `card.posture.<group>` ([`crate::posture::GroupKey::encode`]) | a control's card |
//!
//! The value is the message id in decimal, or `digest:<message id>` for a card folded into a
//! digest message; the bytes every earlier version wrote.

use uuid::Uuid;

use super::{Store, StoreError};

const KEY_PREFIX: &str = "card.";
/// The value prefix of a card folded into a digest.
const DIGEST_MARKER: &str = "digest:";

/// Which card.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CardKey {
    Request(Uuid),
    Finding(String),
    /// A Security Hub control in one account ([`crate::posture::GroupKey::encode`]).
    Posture(String),
}

impl CardKey {
    fn key(&self) -> String {
        match self {
            CardKey::Request(id) => format!("{KEY_PREFIX}{id}"),
            CardKey::Finding(id) => format!("{KEY_PREFIX}finding.{id}"),
            CardKey::Posture(group) => format!("{KEY_PREFIX}posture.{group}"),
        }
    }
}

/// Shown in logs as its store key (`card.<uuid>`, `card.finding.<id>`, `card.posture.<group>`).
impl std::fmt::Display for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// Where a card is, according to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardLocation {
    /// Posted as this message.
    Message(u64),
    /// Folded into the digest message with this id.
    Digest(u64),
}

impl CardLocation {
    fn encode(self) -> String {
        match self {
            CardLocation::Message(id) => id.to_string(),
            CardLocation::Digest(id) => format!("{DIGEST_MARKER}{id}"),
        }
    }

    fn decode(value: &str) -> Option<CardLocation> {
        match value.strip_prefix(DIGEST_MARKER) {
            Some(id) => id.parse().ok().map(CardLocation::Digest),
            None => value.parse().ok().map(CardLocation::Message),
        }
    }
}

impl Store {
    /// Where the card of `key` is; `None` when it was never posted. An unreadable value is
    /// logged and read as never posted (the outbox then posts the card anew).
    pub fn card_location(&self, key: &CardKey) -> Result<Option<CardLocation>, StoreError> {
        let Some(value) = self.kv_get(&key.key())? else {
            return Ok(None);
        };
        let location = CardLocation::decode(&value);
        if location.is_none() {
            tracing::warn!(key = %key, "unreadable card message id in the store; ignored");
        }
        Ok(location)
    }

    /// Records where the card of `key` is. Durable at the next flush.
    pub fn put_card_location(
        &self,
        key: &CardKey,
        location: CardLocation,
    ) -> Result<(), StoreError> {
        self.kv_put(&key.key(), &location.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_layout() {
        let id = Uuid::nil();
        assert_eq!(
            CardKey::Request(id).to_string(),
            "card.00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            CardKey::Finding("abc".into()).to_string(),
            "card.finding.abc"
        );
        assert_eq!(
            CardKey::Posture("1/us-east-1/S3.1".into()).to_string(),
            "card.posture.1/us-east-1/S3.1"
        );
    }

    #[test]
    fn locations_round_trip() {
        let store = Store::open_temporary().unwrap();
        let keys = [
            CardKey::Request(Uuid::new_v4()),
            CardKey::Finding("f-1".into()),
            CardKey::Posture("123456789012/us-east-1/S3.1".into()),
        ];
        for key in &keys {
            assert_eq!(store.card_location(key).unwrap(), None, "absent");
        }
        store
            .put_card_location(&keys[0], CardLocation::Message(42))
            .unwrap();
        store
            .put_card_location(&keys[1], CardLocation::Digest(7))
            .unwrap();
        assert_eq!(
            store.card_location(&keys[0]).unwrap(),
            Some(CardLocation::Message(42))
        );
        assert_eq!(
            store.card_location(&keys[1]).unwrap(),
            Some(CardLocation::Digest(7))
        );
        assert_eq!(store.card_location(&keys[2]).unwrap(), None);
    }

    #[test]
    fn old_bytes_still_read() {
        let store = Store::open_temporary().unwrap();
        let id = Uuid::new_v4();
        store.kv_put(&format!("card.{id}"), "1234").unwrap();
        store.kv_put("card.finding.f-1", "digest:99").unwrap();
        store.kv_put("card.posture.g", "not a number").unwrap();
        assert_eq!(
            store.card_location(&CardKey::Request(id)).unwrap(),
            Some(CardLocation::Message(1234))
        );
        assert_eq!(
            store
                .card_location(&CardKey::Finding("f-1".into()))
                .unwrap(),
            Some(CardLocation::Digest(99))
        );
        assert_eq!(
            store.card_location(&CardKey::Posture("g".into())).unwrap(),
            None,
            "unreadable reads as never posted"
        );
        // And what is written is the old bytes.
        store
            .put_card_location(&CardKey::Request(id), CardLocation::Digest(5))
            .unwrap();
        assert_eq!(
            store.kv_get(&format!("card.{id}")).unwrap().as_deref(),
            Some("digest:5")
        );
    }
}
