//! `/revert <request>`: a responder proposes undoing an executed containment. The revert is a
//! request of its own (`RequestKind::Revert`): it needs approval like any other, by someone
//! other than its proposer, and the engine checks each step for drift before restoring.
//!
//! The proposal is the application layer's ([`crate::actions::revert::propose`], the one the
//! card's Revert button uses: the engine builds it, a second live revert or one after a
//! successful revert is refused, the one planner's rule applies, and check-and-create is one
//! store transaction; the outbox posts its card). This handler reads the option and words the
//! outcome.
//!
//! Autocomplete offers executed containment requests whose steps changed something.
//!
//! Uses the application layer and the store (autocomplete); no Discord or AWS I/O.

use uuid::Uuid;

use crate::actions::revert::{self as action, RevertRefusal};
use crate::app::App;
use crate::approval::{RequestKind, RequestState};
use crate::discord::cards::plan_text;
use crate::discord::text::truncate;
use crate::engine::EngineError;
use crate::execution::StepOutcome;

use super::{
    choice, code, plain, require_responder, Handled, Invocation, Reply, MAX_CHOICES, MAX_CONTENT,
};

pub const OPTION_REQUEST: &str = "request";
/// How many executed requests autocomplete looks through, newest first.
pub const AUTOCOMPLETE_WINDOW: usize = 200;
/// The states of an executed request.
pub const EXECUTED: [RequestState; 3] = [
    RequestState::Succeeded,
    RequestState::PartiallyFailed,
    RequestState::Failed,
];

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).await.finish(app, inv)
}

async fn handle(app: &App, inv: &Invocation) -> Handled {
    let Some(raw) = inv.str_opt(OPTION_REQUEST) else {
        if let Err(refused) = require_responder(app, inv, "propose a revert with /revert") {
            return *refused;
        }
        return Handled::refused(
            "options",
            "Give the id of the executed request to undo (it is on its card's footer).",
        );
    };
    let Ok(of) = Uuid::parse_str(raw) else {
        if let Err(refused) = require_responder(app, inv, "propose a revert with /revert") {
            return *refused;
        }
        return Handled::refused(
            "request_form",
            format!(
                "{} is not a request id: it is the 32 hexadecimal digits after `request` on a card's footer.",
                code(raw)
            ),
        );
    };
    let revert = match action::propose(app, &inv.voter(), of).await {
        Err(e) => return Handled::failed("revert", "proposing the revert", &e).request(of),
        Ok(Ok(revert)) => revert,
        Ok(Err(refused)) => return refusal(app, inv, of, refused),
    };
    let needed = app.policy.needed(&revert.plan);
    let who = if app.policy.allow_self_approval {
        "a responder".to_string()
    } else {
        "someone other than you".to_string()
    };
    let warnings: Vec<&str> = revert
        .plan
        .notes
        .iter()
        .filter(|n| n.starts_with("WARNING"))
        .map(String::as_str)
        .collect();
    let mut content = format!(
        "Proposed revert request `{}` of `{}`, restoring:\n{}\nThe revert needs {needed} approval(s) by {who} before anything runs; each step is skipped if the resource changed since. Its card is being posted in the channel.",
        revert.id.simple(),
        of.simple(),
        plan_text(&revert.plan),
    );
    for w in warnings {
        content.push_str(&format!("\n⚠️ {}", plain(w)));
    }
    Handled::done(Reply::ephemeral(truncate(&content, MAX_CONTENT)))
        .finding(revert.finding_id.clone())
        .request(revert.id)
}

/// The action's refusal in `/revert`'s words.
fn refusal(app: &App, inv: &Invocation, of: Uuid, refused: RevertRefusal) -> Handled {
    match refused {
        RevertRefusal::NotResponder(_) => {
            match require_responder(app, inv, "propose a revert with /revert") {
                Err(refused) => *refused,
                // The policy changed in between: refuse all the same.
                Ok(()) => Handled::refused(
                    super::RULE_RESPONDER,
                    "Only responders may propose a revert.",
                ),
            }
        }
        RevertRefusal::NotRevertible(EngineError::NoSuchRequest(_)) => Handled::refused(
            "request_not_found",
            format!("No request `{}` is stored.", of.simple()),
        ),
        RevertRefusal::NotRevertible(EngineError::NotRevertible { reason, .. }) => {
            Handled::refused(
                "not_revertible",
                format!(
                    "Request `{}` cannot be reverted: {}.",
                    of.simple(),
                    plain(&reason)
                ),
            )
            .request(of)
        }
        RevertRefusal::NotRevertible(e) => {
            Handled::failed("revert", "building the revert", &e).request(of)
        }
        // A revert acts where the original did: the one planner's rule applies to it too.
        RevertRefusal::Outside { refusal, revert } => {
            Handled::refused(refusal.code(), format!("Nothing was proposed: {refusal}."))
                .finding(revert.finding_id.clone())
                .request(of)
        }
        RevertRefusal::Exists(existing) => {
            let why = if existing.state == RequestState::Succeeded {
                "already reverted it"
            } else {
                "is already open for it"
            };
            Handled::refused(
                "revert_exists",
                format!(
                    "Revert request `{}` ({}) {why}; /finding id:{} shows its card.",
                    existing.id.simple(),
                    existing.state,
                    plain(&existing.finding_id)
                ),
            )
            .finding(existing.finding_id.clone())
            .request(of)
        }
    }
}

/// Executed containment requests with at least one applied step, newest first, whose id
/// (with or without hyphens) or finding type starts with what is typed.
pub async fn autocomplete(app: &App, inv: &Invocation) -> Reply {
    let typed = inv
        .focused
        .as_deref()
        .and_then(|f| inv.options.get(f))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim()
        .to_lowercase();
    let executed = match app.store.requests_in_states(&EXECUTED) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "revert autocomplete could not read the store");
            return Reply::Choices(Vec::new());
        }
    };
    let mut choices = Vec::new();
    for r in executed
        .iter()
        .rev()
        .filter(|r| r.kind == RequestKind::Contain)
        .take(AUTOCOMPLETE_WINDOW)
    {
        if choices.len() >= MAX_CHOICES {
            break;
        }
        let finding = app.store.get_finding(&r.finding_id).ok().flatten();
        let finding_type = finding
            .as_ref()
            .map(|f| f.finding.finding_type.as_str())
            .unwrap_or("?");
        let simple = r.id.simple().to_string();
        let id_matches = simple.starts_with(&typed) || r.id.to_string().starts_with(&typed);
        if !typed.is_empty()
            && !id_matches
            && !super::finding::matches_typed("", finding_type, &typed)
        {
            continue;
        }
        let changed = app
            .store
            .step_records(r.id)
            .map(|recs| recs.iter().any(|s| s.outcome == Some(StepOutcome::Applied)))
            .unwrap_or(false);
        if !changed {
            continue;
        }
        let when = r
            .decided_at
            .unwrap_or(r.created_at)
            .format("%Y-%m-%d %H:%M");
        if let Some(c) = choice(
            &format!(
                "{} · {finding_type} · {} · {when}",
                r.state, r.plan.account_id
            ),
            &simple,
        ) {
            choices.push(c);
        }
    }
    Reply::Choices(choices)
}
