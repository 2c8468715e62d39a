//! The request card ([`request_card`]): what a containment or revert request is for, its
//! plan, the approvals so far, where it stands and the buttons that make sense in that state.
//! A posture request ([`super::posture_request_card`]) shows a posture group instead of a
//! finding and shares everything else through [`Subject`].
//!
//! Pure, like all of [`super`].

use super::finding::{finding_fields, head_lines};
use super::plan::{notes_field, plan_field, proposal_line, revert_line};
use super::{
    enforce_limits, hash_prefix, severity_color, ts, when, Button, ButtonStyle, Card, Field,
    FIELD_APPROVALS, FIELD_NOTES, FIELD_PLAN, FIELD_STATE, LIST_CAP, TEXT_CAP,
};
use crate::approval::{Decision, Request, RequestKind, RequestState};
use crate::audit::Actor;
use crate::discord::custom_id::{ButtonAction, ButtonId};
use crate::discord::text::{plain, plain_capped, CODE_CAP};
use crate::execution::{StepOutcome, StepRecord};
use crate::finding::Finding;
use crate::plan::Action;

/// The card of a containment (or revert) request: the finding, the plan, the votes so far and,
/// once the engine ran, each step's outcome from `records`. `needed_approvals` is the policy's
/// quorum for this plan (`Policy::needed`).
///
/// A revert request's plan lists the steps of the containment it undoes; its card says what
/// each revert restores, and says loudly when that re-enables a leaked key or a public bucket.
pub fn request_card(
    finding: &Finding,
    request: &Request,
    records: &[StepRecord],
    needed_approvals: u32,
) -> Card {
    let subject = Subject {
        title: plain(&finding.finding_type),
        sample: finding.sample,
        head_line: head_lines(
            finding,
            match request.kind {
                RequestKind::Revert { .. } => super::revert_headline(finding, needed_approvals),
                RequestKind::Contain => {
                    super::headline(finding, &request.plan, Some(needed_approvals))
                }
            },
        ),
        fields: finding_fields(finding),
        gone: finding.archived.then_some("the finding was archived"),
        footer: format!("finding {}", plain_capped(&finding.id, CODE_CAP)),
        url: finding.console_url(),
        color: severity_color(finding.severity_label),
    };
    subject_request_card(subject, request, records, needed_approvals)
}

/// What a request card shows about what the request is for.
pub(super) struct Subject {
    /// Plain text, without the `[SAMPLE]`/`[REVERT]` prefixes.
    pub(super) title: String,
    pub(super) sample: bool,
    /// The first line of the description.
    pub(super) head_line: String,
    pub(super) fields: Vec<Field>,
    /// Why the subject went away (an archived finding, a control that passes again), which a
    /// superseded request says.
    pub(super) gone: Option<&'static str>,
    /// The footer's first part, e.g. `finding <id>`.
    pub(super) footer: String,
    pub(super) url: Option<String>,
    pub(super) color: u32,
}

pub(super) fn subject_request_card(
    subject: Subject,
    request: &Request,
    records: &[StepRecord],
    needed_approvals: u32,
) -> Card {
    let plan = &request.plan;
    let revert_of = match request.kind {
        RequestKind::Revert { of } => Some(of),
        RequestKind::Contain => None,
    };
    let mut title = String::new();
    if plan.sample || subject.sample {
        title.push_str("[SAMPLE] ");
    }
    if revert_of.is_some() {
        title.push_str("[REVERT] ");
    }
    title.push_str(&subject.title);

    let proposal = match revert_of {
        Some(of) => revert_line(plan, &of.simple().to_string()),
        None => proposal_line(plan),
    };
    let description = format!("{}\n{proposal}", subject.head_line);

    let mut fields = subject.fields;
    fields.push(Field::new(
        FIELD_PLAN,
        plan_field(plan, records, request.state, revert_of.is_some()),
        false,
    ));
    if !plan.notes.is_empty() {
        fields.push(Field::new(FIELD_NOTES, notes_field(plan), false));
    }
    let approvers = request.approvers();
    if !plan.is_notify_only() {
        fields.push(Field::new(
            FIELD_APPROVALS,
            approvals_line(&approvers, needed_approvals),
            false,
        ));
    }
    fields.push(Field::new(
        FIELD_STATE,
        state_text(subject.gone, request, records, needed_approvals),
        false,
    ));

    let buttons = buttons_for(request, records);
    let footer = format!(
        "{} · request {} · plan {}",
        subject.footer,
        request.id.simple(),
        hash_prefix(&plan.plan_hash),
    );
    let mut card = Card {
        title,
        url: subject.url,
        description,
        color: subject.color,
        fields,
        footer,
        buttons,
    };
    enforce_limits(&mut card);
    card
}

/// `1/2 approvals: <@123>`.
fn approvals_line(approvers: &[&Actor], needed: u32) -> String {
    let n = approvers.len();
    if n == 0 {
        return format!("0/{needed} approvals");
    }
    format!("{n}/{needed} approvals: {}", actor_list(approvers))
}

fn actor_list(actors: &[&Actor]) -> String {
    let mut names: Vec<String> = actors.iter().take(LIST_CAP).map(|a| mention(a)).collect();
    if actors.len() > LIST_CAP {
        names.push(format!("+{} more", actors.len() - LIST_CAP));
    }
    names.join(", ")
}

/// A Discord mention for Discord users (it renders as their current name and pings no one in
/// an embed), the name for CLI operators.
fn mention(actor: &Actor) -> String {
    match actor {
        Actor::Discord { id, name } => {
            if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
                format!("<@{id}>")
            } else {
                plain_capped(name, 64)
            }
        }
        Actor::Cli { name } => format!("{} (cli)", plain_capped(name, 64)),
        Actor::System => "hanko".to_string(),
    }
}

/// Where the request is, who decided, when and why, and what the reader can do.
fn state_text(
    gone: Option<&str>,
    request: &Request,
    records: &[StepRecord],
    needed: u32,
) -> String {
    let approvers = request.approvers();
    let decided = ts(request.decided_at);
    let approved_by = if approvers.is_empty() {
        String::new()
    } else {
        format!(" by {}", actor_list(&approvers))
    };
    let revert = matches!(request.kind, RequestKind::Revert { .. });
    match request.state {
        RequestState::Pending if request.plan.is_notify_only() => {
            "ℹ️ Notify only: nothing to approve.".to_string()
        }
        RequestState::Pending => {
            let missing = (needed as usize).saturating_sub(approvers.len()).max(1);
            format!(
                "⏳ Pending: needs {missing} more approval{} · expires {}",
                if missing == 1 { "" } else { "s" },
                ts(Some(request.expires_at))
            )
        }
        RequestState::Approved => {
            format!("✅ Approved{approved_by} {decided} · ⚙️ the plan runs next (while execution is paused, it waits for /resume)")
        }
        RequestState::Executing => {
            format!("⚙️ Running the plan… (approved{approved_by} {decided})")
        }
        RequestState::Rejected => {
            let rejector = request
                .votes
                .iter()
                .find(|v| matches!(v.decision, Decision::Reject { .. }))
                .map(|v| mention(&v.voter))
                .unwrap_or_else(|| "a responder".to_string());
            let reason = request
                .reject_reason()
                .map(|r| plain_capped(r, TEXT_CAP))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "no reason recorded".to_string());
            format!("❌ Rejected by {rejector} {decided}: {reason}. Nothing was changed.")
        }
        // Approved, then refused by the engine's checks before it ran: say when and why.
        RequestState::Expired if request.closure.is_some() => {
            let closure = request.closure.as_ref();
            let at = when(closure.map(|c| c.at));
            let why = closure
                .map(|c| plain_capped(&c.reason, TEXT_CAP))
                .unwrap_or_default();
            let approved = if approvers.is_empty() {
                String::new()
            } else {
                format!(" (approved{approved_by})")
            };
            format!("⌛ Expired {at} before it ran{approved}: {why}. Nothing was changed.")
        }
        RequestState::Expired => format!(
            "⌛ Expired unapproved {} with {}/{needed} approvals. Nothing was changed.",
            when(request.decided_at),
            approvers.len()
        ),
        RequestState::Superseded => {
            let closure = request.closure.as_ref();
            let why = closure
                .map(|c| plain_capped(&c.reason, TEXT_CAP))
                .or(gone.map(str::to_string))
                .unwrap_or_else(|| {
                    "the plan changed; the newer card replaces this one".to_string()
                });
            let at = match closure {
                Some(c) => ts(Some(c.at)),
                None => decided,
            };
            format!("↪️ Superseded {at}: {why}. Nothing was changed.")
        }
        RequestState::Succeeded | RequestState::PartiallyFailed | RequestState::Failed => {
            let tally = Tally::of(records);
            let finished = ts(records.iter().filter_map(|r| r.finished_at).max());
            let head = match (request.state, revert) {
                (RequestState::Succeeded, false) => "✅ Contained",
                (RequestState::Succeeded, true) => "✅ Reverted",
                (RequestState::PartiallyFailed, false) => "⚠️ Partially contained",
                (RequestState::PartiallyFailed, true) => "⚠️ Partially reverted",
                (_, false) => "❌ Containment failed",
                (_, true) => "❌ Revert failed",
            };
            let approved = if approvers.is_empty() {
                String::new()
            } else {
                format!(" (approved{approved_by})")
            };
            let mut s = format!("{head} {finished}{approved}: {}", tally.summary(revert));
            let iam_changed = records
                .iter()
                .any(|r| r.outcome == Some(StepOutcome::Applied) && r.action.service() == "iam");
            if iam_changed {
                s.push_str(". IAM changes take a few minutes to propagate");
            }
            s.push('.');
            s
        }
    }
}

#[derive(Default)]
struct Tally {
    applied: usize,
    already: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn of(records: &[StepRecord]) -> Self {
        let mut t = Tally::default();
        for r in records {
            match r.outcome {
                Some(StepOutcome::Applied) => t.applied += 1,
                Some(StepOutcome::AlreadyInTargetState) => t.already += 1,
                Some(StepOutcome::Failed) => t.failed += 1,
                Some(StepOutcome::Skipped) => t.skipped += 1,
                None => {}
            }
        }
        t
    }

    /// `1 applied, 1 failed`: counts that are zero are left out.
    fn summary(&self, revert: bool) -> String {
        let parts = [
            (self.applied, if revert { "reverted" } else { "applied" }),
            (
                self.already,
                if revert {
                    "already restored"
                } else {
                    "already contained"
                },
            ),
            (self.failed, "failed"),
            (self.skipped, "skipped"),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if shown.is_empty() {
            "no step recorded".to_string()
        } else {
            shown.join(", ")
        }
    }
}

fn buttons_for(request: &Request, records: &[StepRecord]) -> Vec<Button> {
    let id = |action| ButtonId::new(action, request.id, &request.plan.plan_hash).encode();
    match request.state {
        RequestState::Pending if !request.plan.is_notify_only() => vec![
            Button {
                id: id(ButtonAction::Approve),
                label: "Approve".into(),
                style: ButtonStyle::Success,
                disabled: false,
            },
            Button {
                id: id(ButtonAction::Reject),
                label: "Reject".into(),
                style: ButtonStyle::Danger,
                disabled: false,
            },
            Button {
                id: id(ButtonAction::DryRun),
                label: "Dry run".into(),
                style: ButtonStyle::Secondary,
                disabled: false,
            },
        ],
        RequestState::Succeeded | RequestState::PartiallyFailed | RequestState::Failed
            if request.kind == RequestKind::Contain && changed_something(records) =>
        {
            vec![Button {
                id: id(ButtonAction::Revert),
                label: "Revert".into(),
                style: ButtonStyle::Secondary,
                disabled: false,
            }]
        }
        _ => Vec::new(),
    }
}

/// Did a step change something that a revert would restore? (Snapshots are evidence and stay.)
fn changed_something(records: &[StepRecord]) -> bool {
    records
        .iter()
        .any(|r| r.outcome == Some(StepOutcome::Applied) && r.action != Action::SnapshotVolumes)
}
