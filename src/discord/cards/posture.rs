//! Posture cards: one Security Hub control failing in one account ([`posture_card`], with its
//! suppressions in force: [`posture_card_with_suppressions`]), and the card of a request about
//! such a group ([`posture_request_card`]: a suppression, a remediation or the revert of one).
//!
//! Pure, like all of [`super`].

use super::request::{subject_request_card, Subject};
use super::{
    enforce_limits, ts, Button, ButtonStyle, Card, Field, COLOR_CRITICAL, COLOR_HIGH, COLOR_LOW,
    COLOR_MEDIUM, COLOR_RESOLVED, FIELD_ACCOUNT, FIELD_FAILING_SINCE, FIELD_REGION,
    FIELD_RESOURCES, FIELD_SEVERITY, FIELD_STANDARDS, FIELD_STATE, LIST_CAP, TEXT_CAP,
};
use crate::approval::Request;
use crate::discord::custom_id::{PostureAction, PostureId};
use crate::discord::text::{
    code, plain, plain_capped, truncate, CODE_CAP, MAX_CUSTOM_ID_LEN, MAX_URL,
};
use crate::execution::StepRecord;
use crate::plan::Action;
use crate::posture::{Group, GroupStatus, PostureSeverity};

/// The card of a request about a posture group (a suppression, a remediation, or the revert
/// of one): the control and its failing resources instead of a finding, the same plan,
/// approvals, state and buttons as any request.
pub fn posture_request_card(
    group: &Group,
    request: &Request,
    records: &[StepRecord],
    needed_approvals: u32,
) -> Card {
    let suppression = request
        .plan
        .steps
        .iter()
        .any(|s| s.action == Action::SuppressFindings);
    let subject = Subject {
        title: format!(
            "{} {} {}",
            if suppression {
                "[SUPPRESS]"
            } else {
                "[REMEDIATE]"
            },
            plain(&group.key.control_id),
            plain(&group.title)
        ),
        sample: false,
        head_line: format!(
            "Security Hub control {} in account {}",
            code(&group.key.control_id),
            code(&group.key.account_id)
        ),
        fields: posture_fields(group),
        gone: (group.status == GroupStatus::Resolved).then_some("the control passes again"),
        footer: format!("posture {}", plain_capped(&group.key.encode(), CODE_CAP)),
        url: remediation_url(group),
        color: posture_color(group.severity),
    };
    subject_request_card(subject, request, records, needed_approvals)
}

/// The card of a posture group: one Security Hub control failing in one account, with the
/// resources it fails on (a count and the first few), the standards, the remediation link
/// Security Hub gives and since when it fails. A group that no longer fails says so.
///
/// While it fails, the card offers Suppress (asks for a reason, then needs approval) and
/// Acknowledge (Security Hub workflow NOTIFIED, no approval); `remediable` adds Remediate.
pub fn posture_card(group: &Group, remediable: bool) -> Card {
    let key = &group.key;
    let resolved = matches!(
        group.status,
        GroupStatus::Resolved | GroupStatus::Suppressed
    );
    let mut title = String::new();
    if resolved {
        title.push_str("[RESOLVED] ");
    }
    title.push_str(&format!(
        "{} {}",
        plain(&key.control_id),
        plain(&group.title)
    ));
    let description = match group.status {
        GroupStatus::Failing | GroupStatus::Acknowledged => format!(
            "Security Hub control {} fails on {} resource(s) in account {}.",
            code(&key.control_id),
            group.failing.len(),
            code(&key.account_id)
        ),
        GroupStatus::Suppressed => format!(
            "Nothing fails any more except {} suppressed finding(s).",
            group.suppressed_count
        ),
        GroupStatus::Resolved => {
            "The control passes again (or its findings were archived): nothing to do.".to_string()
        }
    };
    let mut fields = posture_fields(group);
    fields.push(Field::new(
        FIELD_STATE,
        match group.status {
            GroupStatus::Failing => format!("failing: {} new", group.new_count),
            GroupStatus::Acknowledged => "failing, acknowledged".to_string(),
            GroupStatus::Suppressed => {
                format!("suppressed ({} finding(s))", group.suppressed_count)
            }
            GroupStatus::Resolved => "resolved".to_string(),
        },
        true,
    ));
    let mut buttons = Vec::new();
    if !resolved {
        let id = |action| PostureId::new(action, key.clone()).encode();
        if remediable {
            buttons.push(Button {
                id: id(PostureAction::Remediate),
                label: "Remediate".into(),
                style: ButtonStyle::Primary,
                disabled: false,
            });
        }
        buttons.push(Button {
            id: id(PostureAction::Suppress),
            label: "Suppress".into(),
            style: ButtonStyle::Secondary,
            disabled: false,
        });
        if group.new_count > 0 {
            buttons.push(Button {
                id: id(PostureAction::Acknowledge),
                label: "Acknowledge".into(),
                style: ButtonStyle::Secondary,
                disabled: false,
            });
        }
        // An id that does not fit Discord's limit (a very long control id) gets no buttons.
        buttons.retain(|b| b.id.chars().count() <= MAX_CUSTOM_ID_LEN);
    }
    let mut card = Card {
        title,
        url: remediation_url(group),
        description,
        color: if resolved {
            COLOR_RESOLVED
        } else {
            posture_color(group.severity)
        },
        fields,
        footer: format!("posture {}", plain_capped(&key.encode(), CODE_CAP)),
        buttons,
    };
    enforce_limits(&mut card);
    card
}

/// A suppression in force on a posture group, as its card names it: the request that ran it,
/// who proposed and approved it, why, and whether its lift is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionInForce {
    pub request_id: uuid::Uuid,
    pub findings: usize,
    pub proposer: String,
    pub approvers: Vec<String>,
    pub reason: String,
    /// A lift (revert) proposed or running.
    pub lift_pending: Option<uuid::Uuid>,
}

/// The field of a posture card that names its suppressions.
pub const FIELD_SUPPRESSED: &str = "Suppressed";

/// [`posture_card`], plus a [`FIELD_SUPPRESSED`] field per suppression in force naming who
/// proposed and approved it, why, and how to lift it (its revert, approval-gated).
pub fn posture_card_with_suppressions(
    group: &Group,
    remediable: bool,
    suppressions: &[SuppressionInForce],
) -> Card {
    let mut card = posture_card(group, remediable);
    if group.suppressed_count == 0 {
        return card;
    }
    // Before the State field, so the card reads: what, where, suppressed by whom, state.
    let at = card
        .fields
        .iter()
        .position(|f| f.name == FIELD_STATE)
        .unwrap_or(card.fields.len());
    for (i, s) in suppressions.iter().enumerate() {
        card.fields.insert(
            at + i,
            Field::new(FIELD_SUPPRESSED, suppression_text(s), false),
        );
    }
    enforce_limits(&mut card);
    card
}

fn suppression_text(s: &SuppressionInForce) -> String {
    let id = s.request_id.simple().to_string();
    let approvers = if s.approvers.is_empty() {
        "?".to_string()
    } else {
        s.approvers
            .iter()
            .take(LIST_CAP)
            .map(|a| plain(a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lift = match s.lift_pending {
        Some(lift) => format!(
            "Lift proposed as request {}: vote on its card.",
            code(&lift.simple().to_string())
        ),
        None => format!(
            "Lift: the Revert button on request {}'s card, or `/revert request:{id}` (needs \
             approval).",
            code(&id)
        ),
    };
    format!(
        "{} finding(s) suppressed by request {}, proposed by {}, approved by {}.\nWhy: {}\n{lift}",
        s.findings,
        code(&id),
        plain(&s.proposer),
        approvers,
        plain(&truncate(&s.reason, TEXT_CAP)),
    )
}

/// Security Hub's remediation link, when it is an https URL within Discord's limit.
fn remediation_url(group: &Group) -> Option<String> {
    group
        .remediation_url
        .as_deref()
        .filter(|u| u.starts_with("https://") && u.len() <= MAX_URL)
        .map(str::to_string)
}

/// The fields every posture card has: how bad, where, which standards, which resources, since
/// when.
fn posture_fields(group: &Group) -> Vec<Field> {
    let key = &group.key;
    let mut fields = vec![
        Field::new(FIELD_SEVERITY, group.severity.as_str().to_string(), true),
        Field::new(FIELD_ACCOUNT, code(&key.account_id), true),
        Field::new(FIELD_REGION, code(&key.region), true),
        Field::new(
            FIELD_STANDARDS,
            if group.standards.is_empty() {
                "?".to_string()
            } else {
                group
                    .standards
                    .iter()
                    .map(|s| plain(&crate::posture::standard_name(s)))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            false,
        ),
    ];
    if !group.failing.is_empty() {
        let mut lines: Vec<String> = group
            .failing
            .iter()
            .take(LIST_CAP)
            .map(|r| format!("{} {}", plain(&r.resource_type), code(&r.id)))
            .collect();
        if group.failing.len() > LIST_CAP {
            lines.push(format!("+{} more", group.failing.len() - LIST_CAP));
        }
        fields.push(Field::new(
            &format!("{} ({})", FIELD_RESOURCES, group.failing.len()),
            lines.join("\n"),
            false,
        ));
    }
    if let Some(since) = group.failing_since {
        fields.push(Field::new(FIELD_FAILING_SINCE, ts(Some(since)), true));
    }
    fields
}

/// The embed colour of a posture severity (Informational as Low).
pub fn posture_color(s: PostureSeverity) -> u32 {
    match s {
        PostureSeverity::Informational | PostureSeverity::Low => COLOR_LOW,
        PostureSeverity::Medium => COLOR_MEDIUM,
        PostureSeverity::High => COLOR_HIGH,
        PostureSeverity::Critical => COLOR_CRITICAL,
    }
}
