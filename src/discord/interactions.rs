//! What a click does, translated: the card buttons (Approve, Reject, Dry run, Revert) and the
//! reject reason modal.
//!
//! The application's work is [`crate::actions::vote`] (approve, reject, dry run) and
//! [`crate::actions::revert`] (propose a revert); this module parses the `custom_id`
//! ([`ButtonId`]), calls the action, and renders its outcome. Nothing is cached: the request is
//! read from the store on every click.
//!
//! Answers, always within Discord's 3 seconds:
//!
//! * a `custom_id` that is not one of hanko's, or a request hanko does not know: an ephemeral
//!   sentence at once, audited as `VoteRefused` (through [`crate::actions::refuse`]);
//! * Approve: deferred update; a refusal is sent ephemerally; otherwise the card is edited
//!   (`1/2 approvals`). Once approved, the run starts (an owned task) and the card is edited
//!   again with each step's outcome;
//! * Reject: the modal asking for the reason (after the same checks a vote gets, run dry, so a
//!   refusal comes before the typing); its submit rejects with the reason and edits the card;
//! * Dry run: audited first, ephemeral deferral, then the plan's calls, plus what AWS says,
//!   bounded by [`DRY_RUN_TIMEOUT`];
//! * Revert: proposes the revert of an executed request, with the clicker as proposer; the
//!   outbox posts its card.
//!
//! The bot ([`super::bot`]) has already checked the guild, the channel and the shutdown flag.
//! May use the app, the application layer, the core types, [`super::cards`], [`super::outbox`]
//! and serenity; never the AWS SDK, `crate::run` or sled.

use std::sync::Arc;

use serenity::all::{
    ActionRowComponent, ComponentInteraction, CreateActionRow, CreateInputText,
    CreateInteractionResponse, CreateModal, EditInteractionResponse, InputTextStyle, MessageId,
    ModalInteraction,
};
use serenity::http::Http;
use tracing::Instrument;
use uuid::Uuid;

use crate::actions::execute::engine_error_sentence;
use crate::actions::revert::{self as revert_action, RevertRefusal};
use crate::actions::vote::{self, Approval, DryRunResult, Started, VoteRefused};
use crate::actions::{refuse, Refused, Subject};
use crate::app::App;
use crate::approval::{Request, RequestState, Voter};
use crate::audit::{Actor, EventKind};
use crate::discord::answer::{Answerable, Asked};
use crate::discord::bot::{
    self, defer_ephemeral, ephemeral_followup, no_pings, say_ephemeral, BotError, BotState,
};
use crate::discord::cards::{self, Card};
use crate::discord::convert;
use crate::discord::custom_id::{self, ButtonAction, ButtonId, REJECT_REASON_INPUT};
use crate::discord::outbox;
use crate::discord::text;
use crate::discord::text::MAX_CONTENT;
use crate::engine::StepReport;
use crate::execution::StepOutcome;
use crate::notices::Notice;
use crate::store::{CardKey, CardLocation};

/// How long a dry run may wait for AWS before answering with the plan alone.
use crate::actions::vote::DRY_RUN_TIMEOUT;
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
/// plan, otherwise the prefix itself (which [`crate::approval::decide`] refuses as a stale plan).
fn voted_hash(id: &ButtonId, request: &Request) -> String {
    if custom_id::hash_matches(&id.plan_hash_prefix, &request.plan.plan_hash) {
        request.plan.plan_hash.clone()
    } else {
        id.plan_hash_prefix.clone()
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

/// Reads the `custom_id` of a button (`on_modal` false) or of the reject modal's submit, and
/// loads the request it names; `Err` is the refusal to answer with (audited).
fn clicked(
    app: &App,
    actor: &Actor,
    custom_id: &str,
    on_modal: bool,
) -> Result<Result<(ButtonId, Request), Refused>, crate::store::StoreError> {
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
            return Ok(Err(vote::refuse_not_ours(
                app, actor, code, NOT_OURS, error,
            )));
        }
    };
    Ok(vote::load_request(app, actor, id.request_id, UNKNOWN_REQUEST)?.map(|r| (id, r)))
}

// ---------------------------------------------------------------------------------------------
// Buttons
// ---------------------------------------------------------------------------------------------

/// Routes a button click.
pub(crate) async fn component(
    state: &BotState,
    http: &Arc<Http>,
    click: &Asked<ComponentInteraction>,
) -> Result<(), BotError> {
    let app = &state.app;
    let voter = voter_of(&click.user, click.member.as_ref());
    let (id, request) = match clicked(app, &voter.actor, &click.data.custom_id, false)? {
        Ok(clicked) => clicked,
        Err(refused) => return say_ephemeral(http, click, &refused.message).await,
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
    click: &Asked<ComponentInteraction>,
    id: &ButtonId,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    let app = &state.app;
    let plan_hash = voted_hash(id, request);
    // The acknowledgement and the vote go on together: the vote does not wait for Discord,
    // and an approved run starts as soon as the vote is stored, while the acknowledgement may
    // still be on its way. The clicked card is edited to show the vote after both; the run
    // announces its end only after that edit (`shown`), so a late edit cannot overwrite it.
    let (shown, shown_rx) = tokio::sync::oneshot::channel();
    let (acked, voted) = tokio::join!(
        click.respond(http, CreateInteractionResponse::Acknowledge),
        async {
            let approval = vote::approve_unflushed(app, voter, request, plan_hash).await?;
            Ok::<_, BotError>(approval.map(|approval| match approval {
                Approval::Approved(execution) => {
                    let (owned_app, owned_http, owned_click) =
                        (app.clone(), Arc::clone(http), click.clone());
                    let request_id = request.id;
                    Some(
                        execution.start(app, &state.tasks, Some(shown_rx), move |result| {
                            after_execution(owned_app, owned_http, owned_click, request_id, result)
                        }),
                    )
                }
                Approval::Recorded(_) => None,
            }))
        }
    );
    let voted = voted?;
    if matches!(voted, Ok(Some(Started::Running))) {
        // The run was spawned onto this worker's next slot, which no other worker may take:
        // let it reach its first AWS call before this task flushes, renders and edits.
        tokio::task::yield_now().await;
    }
    // Durable before it is shown: the refusal's follow-up and the card's edit come after this.
    app.store.flush()?;
    let started = match voted {
        Ok(started) => started,
        Err(refused) => {
            acked?;
            let text = match refused {
                VoteRefused::OutsideReach(r) => format!("Vote refused: {}.", r.message),
                VoteRefused::Policy(r) => r.message,
            };
            click.follow_up(http, ephemeral_followup(&text)).await?;
            return Ok(());
        }
    };
    acked?;
    let edited = edit_clicked_card(app, http, click, request.id).await;
    let _ = shown.send(());
    announce_unless_channel_card(app, request.id, Some(click.message.id));
    if started == Some(Started::Paused) {
        tell_paused(http, click).await;
    }
    edited
}

/// Approved while paused: expected, not an error. It runs on /resume.
async fn tell_paused(http: &Http, click: &Asked<ComponentInteraction>) {
    let text =
        "Approved; it has not run yet: execution is paused; /resume starts it again (admins).";
    if let Err(e) = click.follow_up(http, ephemeral_followup(text)).await {
        tracing::warn!(error = %crate::discord::redact::chain(&e), "could not tell the clicker the run waits for /resume");
    }
}

/// Edits the message that was clicked into the request's card as the store has it now.
async fn edit_clicked_card(
    app: &App,
    http: &Http,
    click: &Asked<ComponentInteraction>,
    request_id: Uuid,
) -> Result<(), BotError> {
    if let Some(card) = outbox::request_card(app, request_id)? {
        click.edit(http, card_edit(&card)).await?;
    }
    Ok(())
}

/// What the clicker is told when the run they approved ends, and the edit of a clicked card
/// the outbox does not keep.
async fn after_execution(
    app: App,
    http: Arc<Http>,
    click: Asked<ComponentInteraction>,
    request_id: Uuid,
    result: Result<crate::engine::ExecutionReport, crate::engine::EngineError>,
) {
    match result {
        Ok(report) => {
            tracing::info!(request_id = %request_id, state = %report.state, "request executed")
        }
        // Paused after the check: it runs on /resume.
        Err(crate::engine::EngineError::Paused) => tell_paused(&http, &click).await,
        Err(e) => {
            let error_id = bot::log_error(&e, "executing an approved request");
            let text = format!(
                "The approved request could not run: {} (error id {error_id}).",
                engine_error_sentence(&e)
            );
            if let Err(e) = click.follow_up(&http, ephemeral_followup(&text)).await {
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
            if let Err(e) = click.edit(&http, card_edit(&card)).await {
                tracing::warn!(error = %crate::discord::redact::chain(&e), "could not edit the clicked card after execution");
            }
        }
    }
}

async fn open_reject_modal(
    app: &App,
    http: &Http,
    click: &Asked<ComponentInteraction>,
    id: &ButtonId,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    // The checks a vote gets, run dry, so a refusal is said before anyone types a reason.
    if let Err(refused) = vote::check_reject(app, &voter, request, voted_hash(id, request)) {
        return say_ephemeral(http, click, &refused.message).await;
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
        .respond(http, CreateInteractionResponse::Modal(modal))
        .await?;
    Ok(())
}

async fn dry_run(
    app: &App,
    http: &Http,
    click: &Asked<ComponentInteraction>,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    let dry = match vote::begin_dry_run(app, &voter, request, "chat")? {
        Ok(dry) => dry,
        Err(refused) => return say_ephemeral(http, click, &refused.message).await,
    };
    defer_ephemeral(http, click).await?;
    let mut text = format!(
        "**Dry run** of request `{}`: these calls would be made, in order.\n{}",
        request.id.simple(),
        cards::plan_text(&request.plan)
    );
    match dry.run(app).await {
        DryRunResult::Steps(steps) => {
            text.push_str("\n\n**What AWS says now** (read calls; EC2 with DryRun=true):\n");
            text.push_str(&dry_run_lines(&steps));
        }
        DryRunResult::TimedOut => text.push_str(&format!(
            "\n\nAWS did not answer within {} s; the list above is what would run.",
            DRY_RUN_TIMEOUT.as_secs()
        )),
    }
    let edit = EditInteractionResponse::new()
        .content(text::truncate(&text, MAX_CONTENT))
        .allowed_mentions(no_pings());
    click.edit(http, edit).await?;
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
                text::truncate(&s.target, 80)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Audits a refused Revert click as `CommandInvoked` (`action: revert`), with `more` detail.
fn refuse_revert(
    app: &App,
    actor: &Actor,
    request: &Request,
    code: &str,
    message: String,
    more: serde_json::Map<String, serde_json::Value>,
) {
    let mut subject = Subject::about(request).with("action", "revert");
    subject.detail.extend(more);
    refuse(
        app,
        actor,
        EventKind::CommandInvoked,
        subject,
        Refused::new(code, message),
    );
}

async fn revert(
    app: &App,
    http: &Http,
    click: &Asked<ComponentInteraction>,
    request: &Request,
    voter: Voter,
) -> Result<(), BotError> {
    // A non-responder is refused at once, before the deferral.
    if let Err(refusal) = app.policy.authorizes(&voter) {
        refuse_revert(
            app,
            &voter.actor,
            request,
            refusal.code(),
            refusal.to_string(),
            Default::default(),
        );
        return say_ephemeral(http, click, &refusal.to_string()).await;
    }
    defer_ephemeral(http, click).await?;
    let answer = |text: String| {
        EditInteractionResponse::new()
            .content(text::truncate(&text, MAX_CONTENT))
            .allowed_mentions(no_pings())
    };
    let text = match revert_action::propose(app, &voter, request.id).await? {
        Ok(revert) => format!(
            "Revert proposed as request `{}`; its card is posted in the channel. It runs once someone else approves it.",
            revert.id.simple()
        ),
        Err(refused) => {
            let code = refused.code();
            let (message, text, more) = match &refused {
                RevertRefusal::NotResponder(r) => (r.to_string(), r.to_string(), serde_json::Map::new()),
                RevertRefusal::Exists(existing) => {
                    let mut more = serde_json::Map::new();
                    more.insert("existing_request_id".into(), serde_json::json!(existing.id));
                    more.insert("existing_state".into(), existing.state.as_str().into());
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
                    ("a revert of this request is already open or done".to_string(), text, more)
                }
                RevertRefusal::Outside { refusal, .. } => (
                    refusal.to_string(),
                    format!("Nothing was proposed: {refusal}."),
                    serde_json::Map::new(),
                ),
                RevertRefusal::NotRevertible(e) => (
                    engine_error_sentence(e),
                    format!("Nothing to revert: {}.", engine_error_sentence(e)),
                    serde_json::Map::new(),
                ),
            };
            refuse_revert(app, &voter.actor, request, code, message, more);
            text
        }
    };
    click.edit(http, answer(text)).await?;
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
pub(crate) async fn modal(
    state: &BotState,
    http: &Arc<Http>,
    submit: &Asked<ModalInteraction>,
) -> Result<(), BotError> {
    let app = &state.app;
    let voter = voter_of(&submit.user, submit.member.as_ref());
    let (id, request) = match clicked(app, &voter.actor, &submit.data.custom_id, true)? {
        Ok(clicked) => clicked,
        Err(refused) => return say_ephemeral(http, submit, &refused.message).await,
    };
    // From a card, the submit may update that card; otherwise answer ephemerally.
    let on_card = submit.message.is_some();
    if on_card {
        submit
            .respond(http, CreateInteractionResponse::Acknowledge)
            .await?;
    } else {
        defer_ephemeral(http, submit).await?;
    }
    let reason = reason_of(submit).unwrap_or_default();
    match vote::reject(app, voter, &request, voted_hash(&id, &request), reason)? {
        Err(refused) => {
            submit
                .follow_up(http, ephemeral_followup(&refused.message))
                .await?;
        }
        Ok(_) => {
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
                submit.edit(http, edit).await?;
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
