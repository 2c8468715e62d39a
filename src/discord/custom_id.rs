//! Button and modal `custom_id`s: versioned, naming the request and the plan hash, so a click
//! on a card posted before a restart still finds its request (state comes from the store,
//! never from memory).
//!
//! The format is `hk1:<action>:<request id, 32 lowercase hex>:<first 16 hex of the plan hash>`,
//! 55 characters, well under Discord's 100:
//!
//! | action | letter | component |
//! |---|---|---|
//! | [`ButtonAction::Approve`] | `a` | button, Success |
//! | [`ButtonAction::Reject`] | `r` | button, Danger; opens the reason modal |
//! | [`ButtonAction::RejectReason`] | `m` | the reason modal's submit |
//! | [`ButtonAction::DryRun`] | `d` | button, Secondary; ephemeral list of the calls |
//! | [`ButtonAction::Revert`] | `v` | button, Secondary; proposes the revert of an executed request |
//!
//! Posture cards (one Security Hub control in one account) have no request yet; their ids name
//! the group instead: `hk1p:<action>:<account>/<region>/<control>` ([`PostureId`]):
//!
//! | action | letter | component |
//! |---|---|---|
//! | [`PostureAction::Suppress`] | `s` | button; opens the suppression reason modal |
//! | [`PostureAction::SuppressReason`] | `n` | that modal's submit: proposes the suppression |
//! | [`PostureAction::Acknowledge`] | `k` | button; Security Hub workflow NOTIFIED |
//! | [`PostureAction::Remediate`] | `x` | button; proposes the control's remediation |
//!
//! The plan hash prefix lets the interaction handler refuse a click on a card whose plan has
//! changed since it was posted ([`hash_matches`]) before it even loads votes.
//!
//! Pure: no I/O, no serenity; account ids and regions are checked by [`crate::ids`], Discord's
//! limit comes from [`super::text`]. A `custom_id` arrives from the network and is never trusted:
//! [`ButtonId::parse`] returns a typed [`CustomIdError`] for anything that is not exactly what
//! [`ButtonId::encode`] produces, and never panics.

use uuid::Uuid;

use crate::ids;
use crate::posture::GroupKey;

/// The version prefix of every id this module produces.
pub const VERSION: &str = "hk1";
use crate::discord::text::MAX_CUSTOM_ID_LEN;
/// How many hex digits of the plan hash an id carries (64 bits: collisions between two plans
/// of the same request are not a practical concern).
pub const PLAN_HASH_PREFIX_LEN: usize = 16;
/// The `custom_id` of the text input inside the reject modal.
pub const REJECT_REASON_INPUT: &str = "reason";

/// What a component does when clicked or submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ButtonAction {
    Approve,
    /// Opens the modal that asks for a reason.
    Reject,
    /// The reject modal's submit, carrying the reason.
    RejectReason,
    DryRun,
    Revert,
}

impl ButtonAction {
    pub const ALL: [ButtonAction; 5] = [
        ButtonAction::Approve,
        ButtonAction::Reject,
        ButtonAction::RejectReason,
        ButtonAction::DryRun,
        ButtonAction::Revert,
    ];

    /// The one-letter code in the id.
    pub fn code(self) -> &'static str {
        match self {
            ButtonAction::Approve => "a",
            ButtonAction::Reject => "r",
            ButtonAction::RejectReason => "m",
            ButtonAction::DryRun => "d",
            ButtonAction::Revert => "v",
        }
    }

    pub fn from_code(s: &str) -> Option<ButtonAction> {
        ButtonAction::ALL.into_iter().find(|a| a.code() == s)
    }
}

/// A decoded `custom_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ButtonId {
    pub action: ButtonAction,
    pub request_id: Uuid,
    /// The first [`PLAN_HASH_PREFIX_LEN`] lowercase hex digits of the plan hash.
    pub plan_hash_prefix: String,
}

/// Why a `custom_id` is not one of ours. Values are quoted with `{:?}` so control characters
/// from a forged id cannot shape a log line; ids longer than the limit are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomIdError {
    #[error("custom_id is empty")]
    Empty,
    #[error("custom_id is {len} characters long; Discord allows {MAX_CUSTOM_ID_LEN}")]
    TooLong { len: usize },
    #[error("custom_id {id:?} is not a hanko id (expected `{VERSION}:<action>:<request>:<plan>`)")]
    NotHanko { id: String },
    #[error("custom_id version {version:?} is unknown; this hanko understands `{VERSION}`")]
    UnknownVersion { version: String },
    #[error("custom_id {id:?} has {parts} `:`-separated parts; expected 4")]
    WrongShape { id: String, parts: usize },
    #[error("custom_id action {action:?} is unknown (expected one of a, r, m, d, v)")]
    UnknownAction { action: String },
    #[error("custom_id request id {value:?} is not 32 lowercase hex digits")]
    BadRequestId { value: String },
    #[error("custom_id plan hash {value:?} is not {PLAN_HASH_PREFIX_LEN} lowercase hex digits")]
    BadPlanHash { value: String },
    #[error("custom_id posture group {value:?} is not `<12-digit account>/<region>/<control>`")]
    BadGroup { value: String },
}

impl ButtonId {
    /// An id for `action` on request `request_id`, whose plan hash is `plan_hash` (full or
    /// already a prefix; only the first [`PLAN_HASH_PREFIX_LEN`] characters are kept).
    pub fn new(action: ButtonAction, request_id: Uuid, plan_hash: &str) -> Self {
        ButtonId {
            action,
            request_id,
            plan_hash_prefix: plan_hash.chars().take(PLAN_HASH_PREFIX_LEN).collect(),
        }
    }

    /// `hk1:a:<32 hex>:<16 hex>`. At most [`PLAN_HASH_PREFIX_LEN`] characters of the prefix
    /// are written, so the result is always within [`MAX_CUSTOM_ID_LEN`].
    pub fn encode(&self) -> String {
        let prefix: String = self
            .plan_hash_prefix
            .chars()
            .take(PLAN_HASH_PREFIX_LEN)
            .collect();
        format!(
            "{VERSION}:{}:{}:{prefix}",
            self.action.code(),
            self.request_id.simple()
        )
    }

    /// Decodes an id produced by [`ButtonId::encode`]; anything else is an error.
    pub fn parse(s: &str) -> Result<ButtonId, CustomIdError> {
        if s.is_empty() {
            return Err(CustomIdError::Empty);
        }
        // Length first, so no later error echoes an unbounded input.
        let len = s.chars().count();
        if len > MAX_CUSTOM_ID_LEN {
            return Err(CustomIdError::TooLong { len });
        }
        let parts: Vec<&str> = s.split(':').collect();
        let version = parts[0];
        if version != VERSION {
            return Err(if version.starts_with("hk") && parts.len() > 1 {
                CustomIdError::UnknownVersion {
                    version: version.to_string(),
                }
            } else {
                CustomIdError::NotHanko { id: s.to_string() }
            });
        }
        let [_, action, request, plan] = parts[..] else {
            return Err(CustomIdError::WrongShape {
                id: s.to_string(),
                parts: parts.len(),
            });
        };
        let action =
            ButtonAction::from_code(action).ok_or_else(|| CustomIdError::UnknownAction {
                action: action.to_string(),
            })?;
        let bad_request = || CustomIdError::BadRequestId {
            value: request.to_string(),
        };
        if request.len() != 32 || !is_lower_hex(request) {
            return Err(bad_request());
        }
        let request_id = Uuid::try_parse(request).map_err(|_| bad_request())?;
        if plan.len() != PLAN_HASH_PREFIX_LEN || !is_lower_hex(plan) {
            return Err(CustomIdError::BadPlanHash {
                value: plan.to_string(),
            });
        }
        Ok(ButtonId {
            action,
            request_id,
            plan_hash_prefix: plan.to_string(),
        })
    }
}

impl std::fmt::Display for ButtonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

/// The version prefix of posture ids.
pub const POSTURE_VERSION: &str = "hk1p";
/// The `custom_id` of the text input inside the suppression modal.
pub const SUPPRESS_REASON_INPUT: &str = "reason";

/// What a posture card's component does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostureAction {
    /// Opens the modal that asks why.
    Suppress,
    /// The suppression modal's submit, carrying the reason.
    SuppressReason,
    Acknowledge,
    Remediate,
}

impl PostureAction {
    pub const ALL: [PostureAction; 4] = [
        PostureAction::Suppress,
        PostureAction::SuppressReason,
        PostureAction::Acknowledge,
        PostureAction::Remediate,
    ];

    pub fn code(self) -> &'static str {
        match self {
            PostureAction::Suppress => "s",
            PostureAction::SuppressReason => "n",
            PostureAction::Acknowledge => "k",
            PostureAction::Remediate => "x",
        }
    }

    pub fn from_code(s: &str) -> Option<PostureAction> {
        PostureAction::ALL.into_iter().find(|a| a.code() == s)
    }
}

/// A decoded posture `custom_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PostureId {
    pub action: PostureAction,
    pub group: GroupKey,
}

impl PostureId {
    pub fn new(action: PostureAction, group: GroupKey) -> Self {
        PostureId { action, group }
    }

    /// Is `s` meant to be a posture id (whether or not it is a valid one)?
    pub fn is_posture(s: &str) -> bool {
        s.starts_with(POSTURE_VERSION) && s[POSTURE_VERSION.len()..].starts_with(':')
    }

    /// `hk1p:s:123456789012/us-east-1/S3.8`. May exceed [`MAX_CUSTOM_ID_LEN`] for a very long
    /// control id; the card leaves such buttons out.
    pub fn encode(&self) -> String {
        format!(
            "{POSTURE_VERSION}:{}:{}",
            self.action.code(),
            self.group.encode()
        )
    }

    /// Decodes an id produced by [`PostureId::encode`]: the account must be 12 digits, the
    /// region a region name, the control id printable and without `:`. Anything else is an
    /// error; never panics.
    pub fn parse(s: &str) -> Result<PostureId, CustomIdError> {
        if s.is_empty() {
            return Err(CustomIdError::Empty);
        }
        let len = s.chars().count();
        if len > MAX_CUSTOM_ID_LEN {
            return Err(CustomIdError::TooLong { len });
        }
        let parts: Vec<&str> = s.splitn(3, ':').collect();
        let [version, action, group] = parts[..] else {
            return Err(CustomIdError::NotHanko { id: s.to_string() });
        };
        if version != POSTURE_VERSION {
            return Err(CustomIdError::NotHanko { id: s.to_string() });
        }
        let action =
            PostureAction::from_code(action).ok_or_else(|| CustomIdError::UnknownAction {
                action: action.to_string(),
            })?;
        let bad = || CustomIdError::BadGroup {
            value: group.to_string(),
        };
        let key = GroupKey::decode(group).ok_or_else(bad)?;
        let control_ok = key.control_id.chars().all(|c| !c.is_control() && c != ':');
        if !ids::is_account_id(&key.account_id) || !ids::is_region(&key.region) || !control_ok {
            return Err(bad());
        }
        Ok(PostureId { action, group: key })
    }
}

/// Does the prefix from a `custom_id` name `full_hash`? A prefix of the wrong length (an empty
/// one included) never matches.
pub fn hash_matches(prefix: &str, full_hash: &str) -> bool {
    prefix.len() == PLAN_HASH_PREFIX_LEN && is_lower_hex(prefix) && full_hash.starts_with(prefix)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "3f2a9c0d1e4b5a6978877665544332211aabbccddeeff00112233445566778899";

    fn uuid() -> Uuid {
        Uuid::parse_str("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab").unwrap()
    }

    #[test]
    fn every_action_round_trips_within_the_limit() {
        let table = [
            (
                ButtonAction::Approve,
                "hk1:a:6f1c2d3e4a5b4c6d8e7f0123456789ab:3f2a9c0d1e4b5a69",
            ),
            (
                ButtonAction::Reject,
                "hk1:r:6f1c2d3e4a5b4c6d8e7f0123456789ab:3f2a9c0d1e4b5a69",
            ),
            (
                ButtonAction::RejectReason,
                "hk1:m:6f1c2d3e4a5b4c6d8e7f0123456789ab:3f2a9c0d1e4b5a69",
            ),
            (
                ButtonAction::DryRun,
                "hk1:d:6f1c2d3e4a5b4c6d8e7f0123456789ab:3f2a9c0d1e4b5a69",
            ),
            (
                ButtonAction::Revert,
                "hk1:v:6f1c2d3e4a5b4c6d8e7f0123456789ab:3f2a9c0d1e4b5a69",
            ),
        ];
        for (action, want) in table {
            let id = ButtonId::new(action, uuid(), HASH);
            let encoded = id.encode();
            assert_eq!(encoded, want, "{action:?}");
            assert!(
                encoded.len() <= MAX_CUSTOM_ID_LEN,
                "{action:?}: {}",
                encoded.len()
            );
            assert_eq!(ButtonId::parse(&encoded), Ok(id.clone()), "{action:?}");
            assert!(hash_matches(&id.plan_hash_prefix, HASH), "{action:?}");
        }
    }

    #[test]
    fn posture_ids_round_trip_and_check_account_and_region_through_ids() {
        for action in PostureAction::ALL {
            let id = PostureId::new(
                action,
                GroupKey {
                    account_id: "123456789012".into(),
                    region: "us-gov-west-1".into(),
                    control_id: "S3.8".into(),
                },
            );
            assert_eq!(PostureId::parse(&id.encode()), Ok(id.clone()), "{action:?}");
        }
        for group in [
            "12345678901/us-east-1/S3.8",
            "1234567890123/us-east-1/S3.8",
            "12345678901a/us-east-1/S3.8",
            "123456789012/US-EAST-1/S3.8",
            "123456789012/us-east/S3.8",
            "123456789012/us-east-1a/S3.8",
            "123456789012/--/S3.8",
            "123456789012/us-east-1/S3:8",
            "123456789012/us-east-1/S3\n8",
        ] {
            let raw = format!("{POSTURE_VERSION}:s:{group}");
            assert!(
                matches!(PostureId::parse(&raw), Err(CustomIdError::BadGroup { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn random_ids_round_trip() {
        for _ in 0..200 {
            let id = ButtonId::new(ButtonAction::Approve, Uuid::new_v4(), HASH);
            assert_eq!(
                ButtonId::parse(&id.encode()).unwrap().request_id,
                id.request_id
            );
        }
    }

    #[test]
    fn encode_never_exceeds_the_limit_even_from_a_long_prefix() {
        let id = ButtonId {
            action: ButtonAction::Revert,
            request_id: uuid(),
            plan_hash_prefix: "f".repeat(500),
        };
        assert_eq!(id.encode().len(), 55);
    }

    #[test]
    fn garbage_is_refused_with_a_typed_error() {
        let u = "6f1c2d3e4a5b4c6d8e7f0123456789ab";
        let huge = "x".repeat(10_000);
        let table: Vec<(String, CustomIdError)> = vec![
            ("".into(), CustomIdError::Empty),
            (huge, CustomIdError::TooLong { len: 10_000 }),
            ("🦀".repeat(101), CustomIdError::TooLong { len: 101 }),
            (
                "approve".into(),
                CustomIdError::NotHanko {
                    id: "approve".into(),
                },
            ),
            (
                "hk1".into(),
                CustomIdError::WrongShape {
                    id: "hk1".into(),
                    parts: 1,
                },
            ),
            (
                format!("hk9:a:{u}:3f2a9c0d1e4b5a69"),
                CustomIdError::UnknownVersion {
                    version: "hk9".into(),
                },
            ),
            (
                format!("hk1:x:{u}:3f2a9c0d1e4b5a69"),
                CustomIdError::UnknownAction { action: "x".into() },
            ),
            (
                format!("hk1:aa:{u}:3f2a9c0d1e4b5a69"),
                CustomIdError::UnknownAction {
                    action: "aa".into(),
                },
            ),
            (
                "hk1:a:zz:3f2a9c0d1e4b5a69".into(),
                CustomIdError::BadRequestId { value: "zz".into() },
            ),
            (
                "hk1:a:6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab:3f2a9c0d1e4b5a69".into(),
                CustomIdError::BadRequestId {
                    value: "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab".into(),
                },
            ),
            (
                "hk1:a:6F1C2D3E4A5B4C6D8E7F0123456789AB:3f2a9c0d1e4b5a69".into(),
                CustomIdError::BadRequestId {
                    value: "6F1C2D3E4A5B4C6D8E7F0123456789AB".into(),
                },
            ),
            (
                // 32 bytes of which some are multi-byte: never sliced, never a panic.
                "hk1:a:ééééééééééééééééé:3f2a9c0d1e4b5a69".into(),
                CustomIdError::BadRequestId {
                    value: "ééééééééééééééééé".into(),
                },
            ),
            (
                format!("hk1:a:{u}:3f2a"),
                CustomIdError::BadPlanHash {
                    value: "3f2a".into(),
                },
            ),
            (
                format!("hk1:a:{u}:3f2a9c0d1e4b5a6g"),
                CustomIdError::BadPlanHash {
                    value: "3f2a9c0d1e4b5a6g".into(),
                },
            ),
            (
                format!("hk1:a:{u}:"),
                CustomIdError::BadPlanHash { value: "".into() },
            ),
            (
                format!("hk1:a:{u}:3f2a9c0d1e4b5a69:extra"),
                CustomIdError::WrongShape {
                    id: format!("hk1:a:{u}:3f2a9c0d1e4b5a69:extra"),
                    parts: 5,
                },
            ),
            (
                "ハンコ:a:b:c".into(),
                CustomIdError::NotHanko {
                    id: "ハンコ:a:b:c".into(),
                },
            ),
            (":::".into(), CustomIdError::NotHanko { id: ":::".into() }),
        ];
        for (input, want) in table {
            let shown: String = input.chars().take(40).collect();
            assert_eq!(ButtonId::parse(&input), Err(want), "{shown}");
        }
    }

    #[test]
    fn errors_never_echo_an_unbounded_input() {
        let err = ButtonId::parse(&"a:".repeat(5_000)).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn hash_matching() {
        let table = [
            ("3f2a9c0d1e4b5a69", HASH, true),
            ("3f2a9c0d1e4b5a6a", HASH, false),
            ("", HASH, false),
            ("3f2a", HASH, false),
            ("3F2A9C0D1E4B5A69", "3F2A9C0D1E4B5A69aa", false),
            ("3f2a9c0d1e4b5a69", "3f2a9c0d", false),
            ("3f2a9c0d1e4b5a69", "", false),
        ];
        for (prefix, full, want) in table {
            assert_eq!(hash_matches(prefix, full), want, "{prefix} / {full}");
        }
    }
}
