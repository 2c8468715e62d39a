//! Claimed days of the posture digest ([`crate::discord::digest`]): the last day whose score
//! digest, or a standard's score drop alert in one account, was claimed for posting.
//!
//! | `kv` key | value |
//! |---|---|
//! | `posture.digest.last` | `YYYY-MM-DD` (UTC): the last day whose score digest was claimed |
//! | `posture.drop.<account>.<standard>` | `YYYY-MM-DD`: the last day a drop of that standard in that account was announced |
//!
//! The bytes every earlier version wrote.

use chrono::NaiveDate;

use super::{Store, StoreError, TxResult};

const KEY_DIGEST: &str = "posture.digest.last";
const KEY_DROP_PREFIX: &str = "posture.drop.";
const DAY_FORMAT: &str = "%Y-%m-%d";

/// What a day is claimed for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DayClaim {
    /// The daily score digest.
    Digest,
    /// The drop alert of one standard in one account.
    Drop { account: String, standard: String },
}

impl DayClaim {
    fn key(&self) -> String {
        match self {
            DayClaim::Digest => KEY_DIGEST.to_string(),
            DayClaim::Drop { account, standard } => {
                format!("{KEY_DROP_PREFIX}{account}.{standard}")
            }
        }
    }
}

/// Shown (and hashed into the alert's nonce) as its store key.
impl std::fmt::Display for DayClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl Store {
    /// The last day claimed for `claim`; `None` when never claimed. An unreadable value is
    /// logged and read as never claimed.
    pub fn claimed_day(&self, claim: &DayClaim) -> Result<Option<NaiveDate>, StoreError> {
        let key = claim.key();
        let Some(value) = self.kv_get(&key)? else {
            return Ok(None);
        };
        match NaiveDate::parse_from_str(&value, DAY_FORMAT) {
            Ok(day) => Ok(Some(day)),
            Err(_) => {
                tracing::warn!(key, "unreadable day in the store; treated as never posted");
                Ok(None)
            }
        }
    }

    /// Claims `day` for `claim`, unless it (or a later day) was claimed already: then `false`,
    /// and the caller posts nothing. One transaction, so of several replicas exactly one
    /// claims each day. Durable at the caller's flush.
    pub fn claim_day(&self, claim: &DayClaim, day: NaiveDate) -> Result<bool, StoreError> {
        let key = claim.key();
        let value = day.format(DAY_FORMAT).to_string();
        self.transact(|tx| -> TxResult<bool> {
            let claimed = tx
                .kv
                .get(key.as_bytes())?
                .and_then(|v| std::str::from_utf8(&v).ok().map(str::to_owned))
                .and_then(|v| NaiveDate::parse_from_str(&v, DAY_FORMAT).ok());
            if claimed.is_some_and(|last| last >= day) {
                return Ok(false);
            }
            tx.kv.insert(key.as_bytes(), value.as_bytes())?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_claim() -> DayClaim {
        DayClaim::Drop {
            account: "123456789012".into(),
            standard: "aws-foundational-security-best-practices/v/1.0.0".into(),
        }
    }

    #[test]
    fn days_round_trip() {
        let store = Store::open_temporary().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        assert_eq!(store.claimed_day(&DayClaim::Digest).unwrap(), None);
        assert_eq!(store.claimed_day(&drop_claim()).unwrap(), None);
        store.claim_day(&DayClaim::Digest, day).unwrap();
        assert_eq!(store.claimed_day(&DayClaim::Digest).unwrap(), Some(day));
        assert_eq!(store.claimed_day(&drop_claim()).unwrap(), None);
        store.claim_day(&drop_claim(), day).unwrap();
        assert_eq!(store.claimed_day(&drop_claim()).unwrap(), Some(day));
    }

    #[test]
    fn old_bytes_still_read() {
        let store = Store::open_temporary().unwrap();
        store.kv_put("posture.digest.last", "2026-11-27").unwrap();
        store
            .kv_put(
                "posture.drop.123456789012.aws-foundational-security-best-practices/v/1.0.0",
                "2026-11-26",
            )
            .unwrap();
        assert_eq!(
            store.claimed_day(&DayClaim::Digest).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 27)
        );
        assert_eq!(
            store.claimed_day(&drop_claim()).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 26)
        );
        assert_eq!(
            drop_claim().to_string(),
            "posture.drop.123456789012.aws-foundational-security-best-practices/v/1.0.0"
        );
        store.kv_put("posture.digest.last", "yesterday").unwrap();
        assert_eq!(store.claimed_day(&DayClaim::Digest).unwrap(), None);
        store
            .claim_day(
                &DayClaim::Digest,
                NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            )
            .unwrap();
        assert_eq!(
            store.kv_get("posture.digest.last").unwrap().as_deref(),
            Some("2026-01-02")
        );
    }
}
