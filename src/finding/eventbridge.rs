//! The EventBridge envelope: a GuardDuty finding event, or Security Hub's `Findings -
//! Imported` / `Findings - Custom Action` events, each handed to its shape's parser.
//!
//! Pure, like all of [`super`].

use serde_json::Value;

use super::asff::asff_finding;
use super::guardduty::{guardduty_finding, looks_like_guardduty};
use super::json::{parse_json, snippet, Obj};
use super::{each, Finding, ParseError};

/// The `source` of EventBridge events from GuardDuty and Security Hub.
const SOURCE_GUARDDUTY: &str = "aws.guardduty";

const SOURCE_SECURITYHUB: &str = "aws.securityhub";

/// The `detail-type` of a GuardDuty finding event, and the prefix of Security Hub's
/// `Security Hub Findings - Imported` / `- Custom Action`.
const DETAIL_TYPE_GUARDDUTY: &str = "GuardDuty Finding";

const DETAIL_TYPE_SECURITYHUB_PREFIX: &str = "Security Hub Findings";

/// Parses an EventBridge event: a GuardDuty finding (`source` `aws.guardduty`, `detail-type`
/// `GuardDuty Finding`) or Security Hub findings (`source` `aws.securityhub`, `detail.findings`
/// in ASFF). An envelope with neither `source` nor `detail-type` is accepted when its `detail`
/// looks like a GuardDuty finding or holds `findings`.
pub fn parse_eventbridge(text: &str) -> Result<Vec<Finding>, ParseError> {
    eventbridge_value(&parse_json(text)?)
}

/// What an EventBridge event carries in its `detail`.
enum EventKind {
    GuardDuty,
    SecurityHub,
}

pub(super) fn eventbridge_value(v: &Value) -> Result<Vec<Finding>, ParseError> {
    let env = Obj::new(v, "$")?;
    let source = env.str("source")?;
    let detail_type = env.str("detail-type")?;
    let detail = env.required_obj("detail")?;
    let is_sh_type = |dt: &str| dt.starts_with(DETAIL_TYPE_SECURITYHUB_PREFIX);
    let unknown = || {
        ParseError::UnknownShape(format!(
            "an EventBridge event with source {} and detail-type {}, not a finding event",
            source.map_or_else(|| "(none)".into(), snippet),
            detail_type.map_or_else(|| "(none)".into(), snippet),
        ))
    };
    let kind = match (source, detail_type) {
        (Some(SOURCE_GUARDDUTY), None | Some(DETAIL_TYPE_GUARDDUTY)) => EventKind::GuardDuty,
        (Some(SOURCE_SECURITYHUB), None) => EventKind::SecurityHub,
        (Some(SOURCE_SECURITYHUB), Some(dt)) if is_sh_type(dt) => EventKind::SecurityHub,
        (None, Some(DETAIL_TYPE_GUARDDUTY)) => EventKind::GuardDuty,
        (None, Some(dt)) if is_sh_type(dt) => EventKind::SecurityHub,
        (None, None) => {
            // A partial envelope (a hand-written test event): judge by the detail.
            if detail.contains_key("findings") {
                EventKind::SecurityHub
            } else if looks_like_guardduty(detail.map()) {
                EventKind::GuardDuty
            } else {
                return Err(unknown());
            }
        }
        _ => return Err(unknown()),
    };
    match kind {
        EventKind::GuardDuty => {
            // The envelope's region is the finding's region; its account is the account that
            // emitted the event (the administrator's, with delegated administration), so only the
            // region may stand in for a detail that lacks it.
            let fallback_region = env.str("region")?.map(|r| (r, env.path_of("region")));
            Ok(vec![guardduty_finding(&detail, fallback_region, true)?])
        }
        EventKind::SecurityHub => each(&detail.required_arr("findings")?, asff_finding),
    }
}
