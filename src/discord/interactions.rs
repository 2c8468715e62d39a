//! What a click does: the card buttons (Approve, Reject, Dry run, Revert) and the reject
//! reason modal.
//!
//! Every click is checked from scratch against the store: the `custom_id` names the request and
//! the plan hash prefix ([`ButtonId`]); the request, its state and its votes are read from the
//! store; the vote itself is [`Store::vote`](crate::store::Store::vote), one transaction that runs
//! [`approval::decide`], so two simultaneous clicks cannot both decide. Nothing is cached here.
//!
//! Answers, always within Discord's 3 seconds:
//!
//! * a `custom_id` that is not one of hanko's, or a request hanko does not know: an ephemeral
//!   sentence at once, audited as `VoteRefused`;
//! * Approve: deferred update; a plan hanko may not run (outside `aws.accounts`/`aws.regions`,
//!   or an account it cannot prove it reaches: [`planner::refusal_now`]) is refused ephemerally
//!   and audited as `VoteRefused`; otherwise the vote, then the card is edited (`1/2 approvals`), or the refusal
//!   is sent ephemerally (the store audited it). Once approved, the engine runs in an owned task
//!   and the card is edited again with each step's outcome;
//! * Reject: the modal asking for the reason (after the same checks a vote gets, run dry with
//!   [`approval::decide`] so a refusal comes before the typing); its submit votes Reject with the
//!   reason and edits the card;
//! * Dry run: audited first (`DryRunPerformed`: who, on what), ephemeral deferral, then the
//!   plan's calls, plus what AWS says (read calls and EC2 `DryRun=true`), bounded by
//!   [`DRY_RUN_TIMEOUT`];
//! * Revert: proposes the revert of an executed request, with the clicker as proposer (so they
//!   cannot approve it themselves), under the same planner rule; the outbox posts its card. A
//!   revert already open or done ([`crate::engine::Engine::existing_revert`]) refuses it,
//!   audited.
//!
//! The bot ([`super::bot`]) has already checked the guild, the channel and the shutdown flag.
//! May use the app, the core, [`super::cards`], [`super::outbox`] and serenity; never the AWS SDK
//! or sled directly.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    ActionRowComponent, ComponentInteraction, CreateActionRow, CreateInputText,
    CreateInteractionResponse, CreateModal, EditInteractionResponse, InputTextStyle, MessageId,
    ModalInteraction,
};
use serenity::http::Http;
use tracing::Instrument;
use uuid::Uuid;

use crate::app::App;
use crate::approval::{self, Decision, Outcome, Refusal, Request, RequestState, VoteInput, Voter};
use crate::audit::{Actor, EventKind, NewEvent};
use crate::discord::bot::{
    self, defer_ephemeral, ephemeral_followup, no_pings, say_ephemeral, BotError, BotState,
};
use crate::discord::cards::{self, Card};
use crate::discord::commands::MAX_CONTENT;
use crate::discord::convert;
use crate::discord::custom_id::{self, ButtonAction, ButtonId, REJECT_REASON_INPUT};
use crate::discord::outbox::{self, CardKey, CardLocation};
use crate::engine::{self, StepReport};
use crate::execution::StepOutcome;
use crate::pipeline::Notice;
use crate::planner;

/// How long a dry run may wait for AWS before answering with the plan alone.
pub const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(8);
/// Discord's limits on a modal title and a text input's length.
const MODAL_TITLE: &str = "Reject this containment request";
const REASON_MIN: u16 = 3;
const REASON_MAX: u16 = 1000;

/// The answer to a `custom_id` that hanko did not produce.
pub const NOT_OURS: &str = "This button is not one of hanko's; nothing was done.";
/// The answer to a click on a card whose request is not in the store.
pub const UNKNOWN_REQUEST: &str =
    "hanko has no record of this card's request; nothing was done. Use /findings to find the current card.";

/// Who clicked, as the policy sees them.
pub fn voter_of(user: &serenity::all::User, member: Option<&serenity::all::Member>) -> Voter {
    Voter {
        actor: bot::actor_of(user),
        roles: member
            .map(|m| m.roles.iter().map(|r| r.get().to_string()).collect())
            .unwrap_or_default(),
    }
}

/// The plan hash a click votes for: the full hash when the prefix names the request's current
/// plan, otherwise the prefix itself (which [`approval::decide`] refuses as a stale plan).
fn voted_hash(id: &ButtonId, request: &Request) -> String {
    if custom_id::hash_matches(&id.plan_hash_prefix, &request.plan.plan_hash) {
        request.plan.plan_hash.clone()
    } else {
        id.plan_hash_prefix.clone()
    }
}

/// Audits a refusal the store did not see (a forged id, an unknown request, a refusal found
/// before a modal or outside voting).
fn audit_refusal(
    app: &App,
    actor: &Actor,
    request: Option<&Request>,
    kind: EventKind,
    detail: serde_json::Value,
) {
    let mut ev = NewEvent::new(app.clock.now(), actor.clone(), kind).detail(detail);
    if let Some(r) = request {
        ev = ev.finding(r.finding_id.clone()).request(r.id);
    }
    if let Err(e) = app.store.append_audit(ev) {
        tracing::error!(error = %e, "could not audit a refused interaction");
    }
}

/// An edit of the interaction's message into `card`.
fn card_edit(card: &Card) -> EditInteractionResponse {
    EditInteractionResponse::new()
        .embed(convert::to_embed(card))
        .components(convert::to_components(card))
        .allowed_mentions(no_pings())
}

/// Is `message_id` the card the outbox keeps for this request? When it is not (a card
/// reposted by `/finding`), the outbox is told to edit its own card too.
fn announce_unless_channel_card(app: &App, request_id: Uuid, message_id: Option<MessageId>) {
    let is_channel_card = match outbox::card_location(app, &CardKey::Request(request_id)) {
        Ok(Some(CardLocation::Message(id))) => Some(MessageId::new(id.max(1))) == message_id,
        _ => false,
    };
    if !is_channel_card {
        app.notices.send(Notice::RequestChanged {
            request: request_id,
        });
    }
}

/// What a `custom_id` names, checked against the store.
enum Clicked {
    /// One of hanko's ids, of the expected kind, naming a stored request.
    Request(ButtonId, Box<Request>),
    /// Refused (and audited as `VoteRefused`); the sentence to answer with.
    Refused(&'static str),
}

/// Reads the `custom_id` of a button (`on_modal` false) or of the reject modal's submit, and
/// loads the request it names.
fn clicked(
    app: &App,
    actor: &Actor,
    custom_id: &str,
    on_modal: bool,
) -> Result<Clicked, crate::store::StoreError> {
    let id = match ButtonId::parse(custom_id) {
        Ok(id) if (id.action == ButtonAction::RejectReason) == on_modal => id,
        parsed => {
            let (code, wrong_kind) = if on_modal {
                ("not_hanko_modal", "a button id on a modal")
            } else {
                ("not_hanko_button", "a modal id on a button")
            };
            let error = match parsed {
                Err(e) => e.to_string(),
                Ok(_) => wrong_kind.to_string(),
            };
            tracing::warn!(%actor, %error, "refused a custom_id that is not hanko's");
            audit_refusal(
                app,
                actor,
                None,
                EventKind::VoteRefused,
                serde_json::json!({ "code": code, "message": NOT_OURS, "error": error }),
            );
            return Ok(Clicked::Refused(NOT_OURS));
        }
    };
    let Some(request) = app.store.get_request(id.request_id)? else {
        audit_refusal(
            app,
            actor,
            None,
            EventKind::VoteRefused,
            serde_json::json!({ "code": "unknown_request", "message": UNKNOWN_REQUEST, "request": id.request_id }),
        );
        return Ok(Clicked::Refused(UNKNOWN_REQUEST));
    };
    Ok(Clicked::Request(id, Box::new(request)))
}

// ---------------------------------------------------------------------------------------------
// Buttons
// ---------------------------------------------------------------------------------------------

/// Routes a button click.
pub async fn component(
    state: &BotState,
    http: &Arc<Http>,
    click: &ComponentInteraction,
) -> Result<(), BotError> {
    let app = &state.app;
    let voter = voter_of(&click.user, click.member.as_ref());
    let (id, request) = match clicked(app, &voter.actor, &click.data.custom_id, false)? {
        Clicked::Request(id, request) => (id, *request),
        Clicked::Refused(text) => return say_ephemeral(http, click, text).await,
    };
    let span = tracing::info_span!("click", request_id = %request.id, finding_id = ?request.finding_id, actor = %voter.actor.key(), action = ?id.action);
    async {
        match id.action {
            ButtonAction::Approve => approve(state, http, click, &id, &request, voter).await,
            ButtonAction::Reject => open_reject_modal(app, http, click, &id, &request, voter).await,
            ButtonAction::DryRun => dry_run(app, http, click, &request, voter).await,
            ButtonAction::Revert => revert(app, http, click, &request, voter).await,
            // Filtered out above: a modal's id on a button.
            ButtonAction::RejectReason => say_ephemeral(http, click, NOT_OURS).await,
        }
    }
    .instrument(span)
    .await
}

async fn approve(
    state: &BotState,
    http: &Arc<Http>,
    click: &ComponentInteraction,
    id: &ButtonId,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    let app = &state.app;
    click
        .create_response(http, CreateInteractionResponse::Acknowledge)
        .await?;
    // The one planner's rule at vote time: an approval for a plan hanko may not run (outside
    // the allow-lists, or an account it cannot prove it reaches) is refused, audited.
    if let Some(refusal) = planner::refusal_now(app, &request.plan).await {
        tracing::warn!(request_id = %request.id, %refusal, "vote refused: outside hanko's reach");
        audit_refusal(
            app,
            &voter.actor,
            Some(request),
            EventKind::VoteRefused,
            serde_json::json!({
                "code": refusal.code(),
                "message": refusal.to_string(),
                "decision": "approve",
            }),
        );
        click
            .create_followup(
                http,
                ephemeral_followup(&format!("Vote refused: {refusal}.")),
            )
            .await?;
        return Ok(());
    }
    let vote = VoteInput {
        voter,
        decision: Decision::Approve,
        plan_hash: voted_hash(id, request),
    };
    let decided = match app
        .store
        .vote(&app.policy, request.id, &vote, app.clock.now())?
    {
        Ok(decided) => decided,
        Err(refusal) => {
            click
                .create_followup(http, ephemeral_followup(&refusal.to_string()))
                .await?;
            return Ok(());
        }
    };
    tracing::info!(request_id = %request.id, outcome = ?decided.outcome, "vote recorded");
    // The vote is stored: a failed edit of the clicked card must not keep the approved request
    // from running, nor the channel card from showing the vote.
    let edited = edit_clicked_card(app, http, click, request.id).await;
    announce_unless_channel_card(app, request.id, Some(click.message.id));
    if let Outcome::Approved { .. } = decided.outcome {
        spawn_execution(state, http, click, request.id);
    }
    edited
}

/// Edits the message that was clicked into the request's card as the store has it now.
async fn edit_clicked_card(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    request_id: Uuid,
) -> Result<(), BotError> {
    if let Some(card) = outbox::request_card(app, request_id)? {
        click.edit_response(http, card_edit(&card)).await?;
    }
    Ok(())
}

/// Runs an approved request in an owned task; edits the card when it is done.
fn spawn_execution(
    state: &BotState,
    http: &Arc<Http>,
    click: &ComponentInteraction,
    request_id: Uuid,
) {
    let app = state.app.clone();
    let http = Arc::clone(http);
    let click = click.clone();
    state.tasks.spawn(async move {
        // `execute_request` announces the new state: the outbox edits the channel card.
        match crate::run::execute_request(&app, request_id).await {
            Ok(report) => {
                tracing::info!(request_id = %request_id, state = %report.state, "request executed")
            }
            // Approved while paused: expected, not an error. It runs on /resume.
            Err(crate::engine::EngineError::Paused) => {
                tracing::info!(request_id = %request_id, "approved while paused; it runs on /resume");
                let text = "Approved; it has not run yet: execution is paused; /resume starts it again (admins).";
                if let Err(e) = click.create_followup(&http, ephemeral_followup(text)).await {
                    tracing::warn!(error = %crate::discord::redact::chain(&e), "could not tell the clicker the run waits for /resume");
                }
            }
            Err(e) => {
                let error_id = bot::log_error(&e, "executing an approved request");
                let text = format!(
                    "The approved request could not run: {} (error id {error_id}).",
                    engine_error_sentence(&e)
                );
                if let Err(e) = click.create_followup(&http, ephemeral_followup(&text)).await {
                    tracing::warn!(error_id = %error_id, error = %crate::discord::redact::chain(&e), "could not tell the clicker the run failed");
                }
            }
        }
        // A card outside the outbox's (a `/finding` repost) is edited through the click.
        let is_channel_card = matches!(
            outbox::card_location(&app, &CardKey::Request(request_id)),
            Ok(Some(CardLocation::Message(id))) if id == click.message.id.get()
        );
        if !is_channel_card {
            if let Ok(Some(card)) = outbox::request_card(&app, request_id) {
                if let Err(e) = click.edit_response(&http, card_edit(&card)).await {
                    tracing::warn!(error = %crate::discord::redact::chain(&e), "could not edit the clicked card after execution");
                }
            }
        }
    });
}

/// A sentence for an engine error that is safe to show (hanko's own words, no AWS text).
fn engine_error_sentence(e: &engine::EngineError) -> String {
    match e {
        engine::EngineError::Paused => "execution is paused; /resume starts it again".into(),
        engine::EngineError::NotApproved { state, .. } => format!("the request is {state}"),
        engine::EngineError::NotRevertible { reason, .. } => reason.clone(),
        engine::EngineError::NoSuchRequest(_) => "the request is not in the store".into(),
        engine::EngineError::Store(_) => "the store failed".into(),
        engine::EngineError::Refused { refusal, .. } => {
            format!("the checks before running refused it ({refusal}); nothing was changed")
        }
    }
}

async fn open_reject_modal(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    id: &ButtonId,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    // The checks a vote gets, run dry, so a refusal is said before anyone types a reason.
    let probe = VoteInput {
        voter: voter.clone(),
        decision: Decision::Reject {
            reason: "(reason pending)".into(),
        },
        plan_hash: voted_hash(id, request),
    };
    if let Err(refusal) = approval::decide(&app.policy, request, &probe, app.clock.now()) {
        audit_vote_refusal(app, &voter.actor, request, &refusal, "reject");
        return say_ephemeral(http, click, &refusal.to_string()).await;
    }
    let modal_id = ButtonId::new(ButtonAction::RejectReason, request.id, &id.plan_hash_prefix);
    let input = CreateInputText::new(
        InputTextStyle::Paragraph,
        "Why reject? (kept in the audit log)",
        REJECT_REASON_INPUT,
    )
    .required(true)
    .min_length(REASON_MIN)
    .max_length(REASON_MAX)
    .placeholder("e.g. expected: the red team's scheduled test");
    let modal = CreateModal::new(modal_id.encode(), MODAL_TITLE)
        .components(vec![CreateActionRow::InputText(input)]);
    click
        .create_response(http, CreateInteractionResponse::Modal(modal))
        .await?;
    Ok(())
}

/// Audits a refusal found outside the store's vote, in the store's own shape.
fn audit_vote_refusal(
    app: &App,
    actor: &Actor,
    request: &Request,
    refusal: &Refusal,
    decision: &str,
) {
    audit_refusal(
        app,
        actor,
        Some(request),
        EventKind::VoteRefused,
        serde_json::json!({
            "code": refusal.code(),
            "message": refusal.to_string(),
            "decision": decision,
        }),
    );
}

/// Refuses a non-responder the buttons that are not votes (dry run, revert), audited.
fn refuse_non_responder(
    app: &App,
    voter: &Voter,
    request: &Request,
    action: &str,
) -> Option<Refusal> {
    match app.policy.authorizes(voter) {
        Ok(()) => None,
        Err(refusal) => {
            audit_refusal(
                app,
                &voter.actor,
                Some(request),
                EventKind::CommandInvoked,
                serde_json::json!({
                    "action": action,
                    "refused": refusal.code(),
                    "message": refusal.to_string(),
                }),
            );
            Some(refusal)
        }
    }
}

async fn dry_run(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    if let Some(refusal) = refuse_non_responder(app, &voter, request, "dry_run") {
        return say_ephemeral(http, click, &refusal.to_string()).await;
    }
    // It makes read and DryRun calls in the account: audited first (who, on what), and not
    // run when the audit cannot be written.
    app.store.append_audit(
        engine::dry_run_event(&request.plan, voter.actor.clone(), app.clock.now(), "chat")
            .request(request.id),
    )?;
    defer_ephemeral(http, click).await?;
    let mut text = format!(
        "**Dry run** of request `{}`: these calls would be made, in order.\n{}",
        request.id.simple(),
        cards::plan_text(&request.plan)
    );
    match tokio::time::timeout(
        DRY_RUN_TIMEOUT,
        engine::dry_run(&app.clients, &request.plan, app.clock.now()),
    )
    .await
    {
        Ok(steps) => {
            text.push_str("\n\n**What AWS says now** (read calls; EC2 with DryRun=true):\n");
            text.push_str(&dry_run_lines(&steps));
        }
        Err(_) => text.push_str(&format!(
            "\n\nAWS did not answer within {} s; the list above is what would run.",
            DRY_RUN_TIMEOUT.as_secs()
        )),
    }
    let edit = EditInteractionResponse::new()
        .content(cards::truncate(&text, MAX_CONTENT))
        .allowed_mentions(no_pings());
    click.edit_response(http, edit).await?;
    Ok(())
}

/// One line a step: its outcome in hanko's words; a failure shows only the AWS error code
/// (the full message goes to the log, never to the channel).
fn dry_run_lines(steps: &[StepReport]) -> String {
    steps
        .iter()
        .map(|s| {
            let what = match s.outcome {
                StepOutcome::Skipped => "would change it (permissions check passed)".to_string(),
                StepOutcome::AlreadyInTargetState => {
                    "already in the target state: nothing to do".to_string()
                }
                StepOutcome::Applied => "applied".to_string(),
                StepOutcome::Failed => {
                    tracing::info!(step = s.index, code = ?s.error_code, message = ?s.message, "dry run step failed");
                    format!(
                        "would fail ({})",
                        s.error_code.as_deref().unwrap_or("see hanko's log")
                    )
                }
            };
            format!(
                "{}. `{}` on `{}`: {what}",
                s.index + 1,
                s.operation,
                cards::truncate(&s.target, 80)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn revert(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    if let Some(refusal) = refuse_non_responder(app, &voter, request, "revert") {
        return say_ephemeral(http, click, &refusal.to_string()).await;
    }
    defer_ephemeral(http, click).await?;
    let answer = |text: String| {
        EditInteractionResponse::new()
            .content(cards::truncate(&text, MAX_CONTENT))
            .allowed_mentions(no_pings())
    };
    // The same rule as /revert's and `hanko revert`'s: one live revert at a time, none after
    // one succeeded. The refusal is audited like the other refused Revert clicks.
    if let Some(existing) = app.engine.existing_revert(request.id)? {
        audit_refusal(
            app,
            &voter.actor,
            Some(request),
            EventKind::CommandInvoked,
            serde_json::json!({
                "action": "revert",
                "refused": "revert_exists",
                "message": "a revert of this request is already open or done",
                "existing_request_id": existing.id,
                "existing_state": existing.state.as_str(),
            }),
        );
        let text = if existing.state == RequestState::Succeeded {
            format!(
                "This request was already reverted (request `{}`); nothing was done.",
                existing.id.simple()
            )
        } else {
            format!(
                "A revert of this request is already open (request `{}`); vote on its card.",
                existing.id.simple()
            )
        };
        click.edit_response(http, answer(text)).await?;
        return Ok(());
    }
    // A revert acts in the same account and region: the same rule as any proposal.
    if let Some(refusal) = planner::refusal_now(app, &request.plan).await {
        audit_refusal(
            app,
            &voter.actor,
            Some(request),
            EventKind::CommandInvoked,
            serde_json::json!({ "action": "revert", "refused": refusal.code(), "message": refusal.to_string() }),
        );
        click
            .edit_response(http, answer(format!("Nothing was proposed: {refusal}.")))
            .await?;
        return Ok(());
    }
    let now = app.clock.now();
    let revert = match app.engine.revert_request(
        request.id,
        voter.actor.clone(),
        now,
        app.policy.ttl,
    ) {
        Ok(r) => r,
        Err(e @ engine::EngineError::Store(_)) => return Err(e.into()),
        Err(e) => {
            audit_refusal(
                app,
                &voter.actor,
                Some(request),
                EventKind::CommandInvoked,
                serde_json::json!({ "action": "revert", "refused": "not_revertible", "message": engine_error_sentence(&e) }),
            );
            click
                .edit_response(
                    http,
                    answer(format!("Nothing to revert: {}.", engine_error_sentence(&e))),
                )
                .await?;
            return Ok(());
        }
    };
    app.store.create_request(&revert, now)?;
    app.notices
        .send(Notice::RequestChanged { request: revert.id });
    tracing::info!(request_id = %revert.id, reverts = %request.id, proposer = %voter.actor.key(), "revert proposed");
    click
        .edit_response(
            http,
            answer(format!(
                "Revert proposed as request `{}`; its card is posted in the channel. It runs once someone else approves it.",
                revert.id.simple()
            )),
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The reject modal
// ---------------------------------------------------------------------------------------------

/// The text typed into the modal's reason input.
fn reason_of(submit: &ModalInteraction) -> Option<String> {
    text_input(submit, REJECT_REASON_INPUT)
}

/// The text typed into a modal's input `custom_id`.
pub(crate) fn text_input(submit: &ModalInteraction, custom_id: &str) -> Option<String> {
    submit
        .data
        .components
        .iter()
        .flat_map(|row| &row.components)
        .find_map(|c| match c {
            ActionRowComponent::InputText(input) if input.custom_id == custom_id => {
                input.value.clone()
            }
            _ => None,
        })
}

/// Handles the reject modal's submit.
pub async fn modal(
    state: &BotState,
    http: &Arc<Http>,
    submit: &ModalInteraction,
) -> Result<(), BotError> {
    let app = &state.app;
    let voter = voter_of(&submit.user, submit.member.as_ref());
    let (id, request) = match clicked(app, &voter.actor, &submit.data.custom_id, true)? {
        Clicked::Request(id, request) => (id, *request),
        Clicked::Refused(text) => return say_ephemeral(http, submit, text).await,
    };
    // From a card, the submit may update that card; otherwise answer ephemerally.
    let on_card = submit.message.is_some();
    if on_card {
        submit
            .create_response(http, CreateInteractionResponse::Acknowledge)
            .await?;
    } else {
        defer_ephemeral(http, submit).await?;
    }
    let vote = VoteInput {
        voter,
        decision: Decision::Reject {
            reason: reason_of(submit).unwrap_or_default(),
        },
        plan_hash: voted_hash(&id, &request),
    };
    match app
        .store
        .vote(&app.policy, request.id, &vote, app.clock.now())?
    {
        Err(refusal) => {
            submit
                .create_followup(http, ephemeral_followup(&refusal.to_string()))
                .await?;
        }
        Ok(decided) => {
            tracing::info!(request_id = %request.id, outcome = ?decided.outcome, "request rejected");
            // The rejection is stored: the channel card follows even when this answer fails.
            let answered = async {
                let edit = if on_card {
                    match outbox::request_card(app, request.id)? {
                        Some(card) => card_edit(&card),
                        None => return Ok(()),
                    }
                } else {
                    EditInteractionResponse::new()
                        .content("Rejected; the reason is in the audit log.")
                        .allowed_mentions(no_pings())
                };
                submit.edit_response(http, edit).await?;
                Ok::<_, BotError>(())
            }
            .await;
            announce_unless_channel_card(app, request.id, submit.message.as_ref().map(|m| m.id));
            answered?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: usize, outcome: StepOutcome, code: Option<&str>) -> StepReport {
        StepReport {
            index,
            action: "deactivate_access_key".into(),
            operation: "iam:UpdateAccessKey".into(),
            target: "AKIAEXAMPLE".into(),
            outcome,
            error_code: code.map(str::to_string),
            message: Some("User: arn:aws:iam::1:user/x is not authorized <raw AWS text>".into()),
            captured: serde_json::Value::Null,
            result: serde_json::Value::Null,
        }
    }

    #[test]
    fn dry_run_lines_never_show_raw_aws_messages() {
        let text = dry_run_lines(&[
            step(0, StepOutcome::Skipped, None),
            step(1, StepOutcome::Failed, Some("AccessDenied")),
            step(2, StepOutcome::AlreadyInTargetState, None),
        ]);
        assert_eq!(
            text,
            "1. `iam:UpdateAccessKey` on `AKIAEXAMPLE`: would change it (permissions check passed)\n\
             2. `iam:UpdateAccessKey` on `AKIAEXAMPLE`: would fail (AccessDenied)\n\
             3. `iam:UpdateAccessKey` on `AKIAEXAMPLE`: already in the target state: nothing to do"
        );
        assert!(!text.contains("raw AWS text"));
    }
}
