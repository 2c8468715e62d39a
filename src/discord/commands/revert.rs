//! `/revert <request>`: a responder proposes undoing an executed containment. The revert is a
//! request of its own (`RequestKind::Revert`): it needs approval like any other, by someone
//! other than its proposer, and the engine checks each step for drift before restoring.
//!
//! The engine builds it ([`crate::engine::Engine::revert_request`]: the steps that changed
//! something, newest first); this handler refuses a second live revert of the same request
//! (or one that already succeeded: [`crate::engine::Engine::existing_revert`], the check the
//! card's Revert button and `hanko revert` apply too), stores it, and sends [`Notice::FindingNew`] with the new
//! request so the chat adapter posts its card (a new card, like any new request; the
//! original's card is not changed). A revert acts in the original's account and region, so the
//! one planner's rule ([`crate::planner::check`]) refuses it where hanko may not act.
//!
//! Autocomplete offers executed containment requests whose steps changed something.
//!
//! Uses the store, the engine and the pipeline's notices; no Discord or AWS I/O.

use uuid::Uuid;

use crate::app::App;
use crate::approval::{RequestKind, RequestState};
use crate::discord::cards::{plan_text, truncate};
use crate::engine::EngineError;
use crate::execution::StepOutcome;
use crate::pipeline::Notice;
use crate::planner;

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
    let scope = planner::scope_proven(app).await;
    handle(app, inv, &scope).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation, scope: &planner::Scope) -> Handled {
    if let Err(refused) = require_responder(app, inv, "propose a revert with /revert") {
        return *refused;
    }
    let Some(raw) = inv.str_opt(OPTION_REQUEST) else {
        return Handled::refused(
            "options",
            "Give the id of the executed request to undo (it is on its card's footer).",
        );
    };
    let Ok(of) = Uuid::parse_str(raw) else {
        return Handled::refused(
            "request_form",
            format!(
                "{} is not a request id: it is the 32 hexadecimal digits after `request` on a card's footer.",
                code(raw)
            ),
        );
    };
    let now = app.clock.now();
    let revert = match app
        .engine
        .revert_request(of, inv.invoker.actor.clone(), now, app.policy.ttl)
    {
        Ok(r) => r,
        Err(EngineError::NoSuchRequest(_)) => {
            return Handled::refused(
                "request_not_found",
                format!("No request `{}` is stored.", of.simple()),
            )
        }
        Err(EngineError::NotRevertible { reason, .. }) => {
            return Handled::refused(
                "not_revertible",
                format!(
                    "Request `{}` cannot be reverted: {}.",
                    of.simple(),
                    plain(&reason)
                ),
            )
            .request(of)
        }
        Err(e) => return Handled::failed("revert", "building the revert", &e).request(of),
    };
    // A revert acts where the original did: the one planner's rule applies to it too.
    if let Err(refusal) = planner::check(scope, &revert.plan.account_id, &revert.plan.region) {
        return Handled::refused(refusal.code(), format!("Nothing was proposed: {refusal}."))
            .finding(revert.finding_id.clone())
            .request(of);
    }
    let existing = match app.engine.existing_revert(of) {
        Ok(r) => r,
        Err(e) => return Handled::failed("revert", "reading the finding's requests", &e),
    };
    if let Some(existing) = existing {
        let why = if existing.state == RequestState::Succeeded {
            "already reverted it"
        } else {
            "is already open for it"
        };
        return Handled::refused(
            "revert_exists",
            format!(
                "Revert request `{}` ({}) {why}; /finding id:{} shows its card.",
                existing.id.simple(),
                existing.state,
                plain(&existing.finding_id)
            ),
        )
        .finding(revert.finding_id.clone())
        .request(of);
    }
    if let Err(e) = app.store.create_request(&revert, now) {
        return Handled::failed("revert", "storing the revert request", &e).request(of);
    }
    app.notices.send(Notice::FindingNew {
        finding_id: revert.finding_id.clone(),
        request: Some(revert.id),
    });
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

/// The rule lives with the engine, so the CLI applies it too.
pub use crate::engine::blocking_revert;

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
