//! How a card shows a plan: what hanko proposes in one line, the numbered steps with their
//! exact calls, risk classes and (once the engine ran) outcomes, what a revert restores and
//! what it re-opens, and the plan's notes. [`plan_text`] is the same list for the dry-run
//! answer and `/finding`.
//!
//! Pure, like all of [`super`].

use super::TEXT_CAP;
use crate::approval::RequestState;
use crate::discord::text::{
    code, fit_lines, plain, plain_capped, MAX_FIELD_VALUE, TRUNCATION_MARKER,
};
use crate::execution::{StepOutcome, StepRecord};
use crate::plan::{Action, Plan, Step};

/// The plan as numbered steps with their exact calls and risk classes, one a line: the
/// dry-run answer and `/finding` use it. Not truncated: callers put it where it fits (an embed
/// description, or through [`crate::discord::text::truncate`]).
pub fn plan_text(plan: &Plan) -> String {
    if plan.is_notify_only() {
        return "No steps: this finding is notify-only; no AWS call would be made.".to_string();
    }
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, s)| step_line(i, s))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of what hanko proposes.
pub(super) fn proposal_line(plan: &Plan) -> String {
    if plan.is_notify_only() {
        return "**Notify only:** hanko proposes no automatic containment; see Notes.".to_string();
    }
    let phrases = action_phrases(plan);
    let n = plan.steps.len();
    let risk = plan.max_risk().map(|r| r.as_str()).unwrap_or("none");
    format!(
        "**hanko proposes:** {} ({n} step{}, highest risk: {risk}).",
        phrases.join(", "),
        if n == 1 { "" } else { "s" }
    )
}

/// The revert request's headline: what it brings back.
pub(super) fn revert_line(plan: &Plan, of: &str) -> String {
    let mut dangers: Vec<String> = Vec::new();
    for s in &plan.steps {
        if let Some(d) = revert_danger(s) {
            if !dangers.contains(&d) {
                dangers.push(d);
            }
        }
    }
    let what = if dangers.is_empty() {
        "restores the settings hanko changed".to_string()
    } else {
        format!("**re-enables what was contained:** {}", dangers.join(", "))
    };
    format!("⚠️ **Revert** of request `{of}`: {what}.")
}

/// What a person must know before approving the revert of `step`, when it re-opens something.
fn revert_danger(step: &Step) -> Option<String> {
    let p = |k: &str| {
        step.parameters
            .get(k)
            .and_then(|v| v.as_str())
            .map(code)
            .unwrap_or_else(|| "?".to_string())
    };
    match step.action {
        Action::DeactivateAccessKey => Some(format!(
            "the leaked access key {} works again",
            p("AccessKeyId")
        )),
        Action::RevokeUserSessions => {
            Some(format!("old sessions of user {} work again", p("UserName")))
        }
        Action::RevokeRoleSessions => {
            Some(format!("old sessions of role {} work again", p("RoleName")))
        }
        Action::QuarantineUser => Some(format!("user {} works again", p("UserName"))),
        Action::IsolateInstance => Some(format!(
            "instance {} is reachable on the network again",
            p("InstanceId")
        )),
        Action::DetachInstanceProfile => Some(format!(
            "instance {} gets its IAM role back",
            p("InstanceId")
        )),
        Action::StopInstance => Some(format!("instance {} is started", p("InstanceId"))),
        Action::BlockBucketPublicAccess => {
            Some(format!("bucket {} may be public again", p("Bucket")))
        }
        Action::EnforceBucketOwnership => {
            Some(format!("bucket {} honours ACLs again", p("Bucket")))
        }
        Action::BlockAccountPublicAccess => Some(format!(
            "buckets of account {} may be public again",
            p("AccountId")
        )),
        Action::SuppressFindings => Some(format!(
            "the findings of control {} are NEW again and count against the score",
            p("ControlId")
        )),
        Action::SnapshotVolumes
        | Action::EnableTerminationProtection
        | Action::SetShutdownBehaviorStop
        | Action::PreserveVolumes
        | Action::TagInstance => None,
    }
}

/// What a step's revert does, for the revert card's step list.
fn revert_effect(action: Action) -> &'static str {
    match action {
        Action::DeactivateAccessKey => "key Active again",
        Action::RevokeUserSessions | Action::RevokeRoleSessions => {
            "deletes the session-revocation policy"
        }
        Action::QuarantineUser => "deletes the deny-all policy",
        Action::SnapshotVolumes => "nothing: snapshots are kept as evidence",
        Action::EnableTerminationProtection
        | Action::SetShutdownBehaviorStop
        | Action::PreserveVolumes => "restores the prior value",
        Action::IsolateInstance => "restores each interface's prior security groups",
        Action::TagInstance => "removes the quarantine tag",
        Action::DetachInstanceProfile => "re-associates the instance profile",
        Action::StopInstance => "starts the instance",
        Action::BlockBucketPublicAccess => "restores the prior public access block",
        Action::EnforceBucketOwnership => "restores the prior ownership controls",
        Action::BlockAccountPublicAccess => "restores the account's prior public access block",
        Action::SuppressFindings => "sets the findings' workflow back to NEW",
    }
}

/// What the plan's steps do, each phrase once, in step order.
pub(super) fn action_phrases(plan: &Plan) -> Vec<&'static str> {
    let mut phrases: Vec<&'static str> = Vec::new();
    for s in &plan.steps {
        let p = action_phrase(s.action);
        if !phrases.contains(&p) {
            phrases.push(p);
        }
    }
    phrases
}

fn action_phrase(action: Action) -> &'static str {
    match action {
        Action::DeactivateAccessKey => "deactivate the access key",
        Action::RevokeUserSessions => "revoke the user's sessions",
        Action::RevokeRoleSessions => "revoke the role's sessions",
        Action::QuarantineUser => "quarantine the user",
        Action::SnapshotVolumes => "snapshot the volumes",
        Action::EnableTerminationProtection => "protect from termination",
        Action::SetShutdownBehaviorStop => "stop on shutdown",
        Action::PreserveVolumes => "keep the volumes",
        Action::IsolateInstance => "isolate the instance",
        Action::TagInstance => "tag it",
        Action::DetachInstanceProfile => "detach the instance profile",
        Action::StopInstance => "stop the instance",
        Action::BlockBucketPublicAccess => "block public access to the bucket",
        Action::EnforceBucketOwnership => "disable the bucket's ACLs",
        Action::BlockAccountPublicAccess => "block public access account-wide",
        Action::SuppressFindings => "suppress the control's findings",
    }
}

fn step_line(i: usize, step: &Step) -> String {
    format!(
        "{}. {} · {}",
        i + 1,
        code(&step.summary()),
        step.risk.as_str()
    )
}

/// The numbered steps, each with its outcome once the engine has a record of it.
pub(super) fn plan_field(
    plan: &Plan,
    records: &[StepRecord],
    state: RequestState,
    revert: bool,
) -> String {
    if plan.is_notify_only() {
        return "No automatic containment: notify only (see Notes).".to_string();
    }
    let ran = matches!(
        state,
        RequestState::Executing
            | RequestState::Succeeded
            | RequestState::PartiallyFailed
            | RequestState::Failed
    );
    let lines: Vec<String> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut line = step_line(i, step);
            if revert {
                line = format!("{line} → undo: {}", revert_effect(step.action));
            }
            if ran {
                let outcome = match records.iter().find(|r| r.index == i) {
                    Some(r) => outcome_text(r, revert, state),
                    None if state == RequestState::Executing => "⏳ waiting".to_string(),
                    None => "⏭️ not run".to_string(),
                };
                line = format!("{line} — {outcome}");
            }
            line
        })
        .collect();
    let finding = plain_capped(&plan.finding_id, 64);
    fit_lines("", &lines, MAX_FIELD_VALUE, |left| {
        format!("{TRUNCATION_MARKER} (+{left} more steps, see `/finding {finding}`)")
    })
    .0
}

fn outcome_text(record: &StepRecord, revert: bool, state: RequestState) -> String {
    match record.outcome {
        Some(StepOutcome::Applied) if revert => "✅ reverted".to_string(),
        Some(StepOutcome::Applied) => "✅ applied".to_string(),
        Some(StepOutcome::AlreadyInTargetState) if revert => "☑️ already restored".to_string(),
        Some(StepOutcome::AlreadyInTargetState) => "☑️ already contained".to_string(),
        Some(StepOutcome::Failed) => {
            let why = match (&record.message, &record.error_code) {
                (Some(m), Some(c)) => format!("{} ({})", plain_capped(m, TEXT_CAP), plain(c)),
                (Some(m), None) => plain_capped(m, TEXT_CAP),
                (None, Some(c)) => plain_capped(c, TEXT_CAP),
                (None, None) => "no reason was recorded".to_string(),
            };
            format!("❌ failed: {why}")
        }
        Some(StepOutcome::Skipped) => match &record.message {
            Some(m) => format!("⏭️ skipped: {}", plain_capped(m, TEXT_CAP)),
            None => "⏭️ skipped".to_string(),
        },
        None if state == RequestState::Executing => "⚙️ running".to_string(),
        None => "❓ interrupted: checked again on resume".to_string(),
    }
}

pub(super) fn notes_field(plan: &Plan) -> String {
    if plan.notes.is_empty() {
        return "A playbook rule makes this finding notify-only.".to_string();
    }
    let lines: Vec<String> = plan
        .notes
        .iter()
        .map(|n| format!("• {}", plain_capped(n, TEXT_CAP)))
        .collect();
    let finding = plain_capped(&plan.finding_id, 64);
    fit_lines("", &lines, MAX_FIELD_VALUE, |left| {
        format!("{TRUNCATION_MARKER} (+{left} more notes, see `/finding {finding}`)")
    })
    .0
}
