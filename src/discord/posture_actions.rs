//! What a posture card's buttons do (issue 7), translated into the posture actions of
//! [`crate::actions::posture`], which check, audit and act; this module only parses the
//! `custom_id` ([`PostureId`]) and the modal, calls the action, and renders its outcome or
//! refusal as an ephemeral answer.
//!
//! * **Suppress** opens a modal asking why ([`posture::may_suppress`] first); its submit
//!   proposes the suppression ([`posture::suppress`]), approval-gated like a containment.
//!   Lifting it is its revert.
//! * **Acknowledge** sets the control's NEW failing findings to NOTIFIED at once, without
//!   approval ([`posture::may_acknowledge`], then, once the answer is deferred,
//!   [`posture::acknowledge`]).
//! * **Remediate** proposes the control's remediation ([`posture::may_remediate`], then, once
//!   deferred, [`posture::remediate`]).
//!
//! Refusals are ephemeral and audited by the action (`CommandInvoked` with `refused`:
//! `already_open` naming the open request, `nothing_to_acknowledge`, `paused`,
//! `aws.accounts`, `aws.regions`, ...).
//!
//! May use serenity, [`crate::actions`], the bot's answer helpers and the card text; never
//! the AWS layer, the store or the audit log directly.

use std::sync::Arc;

use serenity::all::{
    ComponentInteraction, CreateActionRow, CreateInputText, CreateInteractionResponse, CreateModal,
    EditInteractionResponse, InputTextStyle, Member, ModalInteraction, User,
};
use serenity::http::Http;

use crate::actions::posture::{self, Acknowledged, Outcome, PostureError};
use crate::actions::Refused;
use crate::app::App;
use crate::approval::Voter;
use crate::discord::answer::{Answerable, Asked};
use crate::discord::bot::{defer_ephemeral, no_pings, say_ephemeral, BotError, BotState};
use crate::discord::custom_id::{PostureAction, PostureId, SUPPRESS_REASON_INPUT};
use crate::discord::interactions::{text_input, voter_of, NOT_OURS};
use crate::discord::text;
use crate::discord::text::MAX_CONTENT;
use crate::posture::{Group, GroupKey};

const MODAL_TITLE: &str = "Suppress this control's findings";
const REASON_MAX: u16 = 1000;

impl From<PostureError> for BotError {
    fn from(e: PostureError) -> BotError {
        match e {
            PostureError::Store(e) => BotError::Store(e),
            PostureError::Engine(e) => BotError::Engine(e),
        }
    }
}

/// Routes a click on a posture card.
pub(crate) async fn component(
    state: &BotState,
    http: &Arc<Http>,
    click: &Asked<ComponentInteraction>,
) -> Result<(), BotError> {
    let app = &state.app;
    let asker = (&click.user, click.member.as_ref());
    let Some((voter, id)) = asked(app, http, click, asker, &click.data.custom_id, false).await?
    else {
        return Ok(());
    };
    match id.action {
        PostureAction::Suppress => {
            let checked = posture::may_suppress(app, &voter, &id.group);
            match unless_refused(http, click, checked).await? {
                Some(group) => open_suppress_modal(http, click, &id.group, &group).await,
                None => Ok(()),
            }
        }
        PostureAction::Acknowledge => acknowledge(app, http, click, &id.group, &voter).await,
        PostureAction::Remediate => remediate(app, http, click, &id.group, &voter).await,
        // Filtered out by `parsed`: a modal's id on a button.
        PostureAction::SuppressReason => say_ephemeral(http, click, NOT_OURS).await,
    }
}

/// Who asks, and the posture id they used (of the kind expected: a modal's or a button's);
/// `None` once an unreadable id's refusal (audited) is the answer.
async fn asked(
    app: &App,
    http: &Http,
    to: &impl Answerable,
    (user, member): (&User, Option<&Member>),
    custom_id: &str,
    on_modal: bool,
) -> Result<Option<(Voter, PostureId)>, BotError> {
    let voter = voter_of(user, member);
    let read = Ok(parsed(app, &voter, custom_id, on_modal));
    Ok(unless_refused(http, to, read).await?.map(|id| (voter, id)))
}

/// Parses the id, of the kind expected (a modal's or a button's); `Err` is the refusal,
/// already audited.
fn parsed(app: &App, voter: &Voter, custom_id: &str, on_modal: bool) -> Result<PostureId, Refused> {
    match PostureId::parse(custom_id) {
        Ok(id) if (id.action == PostureAction::SuppressReason) == on_modal => Ok(id),
        parsed => {
            let error = match parsed {
                Err(e) => e.to_string(),
                Ok(_) => "a posture id of the wrong kind".to_string(),
            };
            tracing::warn!(actor = %voter.actor, %error, "refused a posture custom_id");
            Err(posture::refuse_unreadable(app, &voter.actor, NOT_OURS))
        }
    }
}

async fn open_suppress_modal(
    http: &Http,
    click: &Asked<ComponentInteraction>,
    key: &GroupKey,
    group: &Group,
) -> Result<(), BotError> {
    let input = CreateInputText::new(
        InputTextStyle::Paragraph,
        format!(
            "Why suppress {} finding(s)? (goes into Security Hub's note and the audit log)",
            group.failing_findings.len()
        ),
        SUPPRESS_REASON_INPUT,
    )
    .required(true)
    .min_length(posture::REASON_MIN as u16)
    .max_length(REASON_MAX)
    .placeholder("e.g. public by design: static website bucket, reviewed in SEC-123");
    let modal_id = PostureId::new(PostureAction::SuppressReason, key.clone());
    let modal = CreateModal::new(modal_id.encode(), MODAL_TITLE)
        .components(vec![CreateActionRow::InputText(input)]);
    click
        .respond(http, CreateInteractionResponse::Modal(modal))
        .await?;
    Ok(())
}

/// Handles the suppression modal's submit: proposes the suppression.
pub(crate) async fn modal(
    state: &BotState,
    http: &Arc<Http>,
    submit: &Asked<ModalInteraction>,
) -> Result<(), BotError> {
    let app = &state.app;
    let asker = (&submit.user, submit.member.as_ref());
    let Some((voter, id)) = asked(app, http, submit, asker, &submit.data.custom_id, true).await?
    else {
        return Ok(());
    };
    let reason = text_input(submit, SUPPRESS_REASON_INPUT).unwrap_or_default();
    let suppressed = posture::suppress(app, &voter, &id.group, &reason);
    let Some(proposed) = deferred(http, submit, suppressed).await? else {
        return Ok(());
    };
    let text = format!(
        "Suppression of {} finding(s) of {} proposed as request `{}`; its card is posted in the \
         channel. It runs once {} other responder(s) approve it.",
        proposed.findings,
        text::code(&proposed.control_id),
        proposed.request.simple(),
        proposed.needed,
    );
    submit.edit(http, answer(text)).await?;
    Ok(())
}

/// An ephemeral answer's edit: fitted to Discord's limit, pings off.
fn answer(text: String) -> EditInteractionResponse {
    EditInteractionResponse::new()
        .content(text::truncate(&text, MAX_CONTENT))
        .allowed_mentions(no_pings())
}

/// The transport's half of a two-call action: a refused check is answered at once; a
/// ticket defers the answer (the action calls AWS, which may take longer than Discord waits)
/// and is handed back.
async fn deferred<T>(
    http: &Http,
    to: &impl Answerable,
    checked: Outcome<T>,
) -> Result<Option<T>, BotError> {
    let Some(ticket) = unless_refused(http, to, checked).await? else {
        return Ok(None);
    };
    defer_ephemeral(http, to).await?;
    Ok(Some(ticket))
}

/// What an action let through, or `None` once its refusal (audited by the action) is the
/// answer.
async fn unless_refused<T>(
    http: &Http,
    to: &impl Answerable,
    outcome: Outcome<T>,
) -> Result<Option<T>, BotError> {
    match outcome? {
        Ok(done) => Ok(Some(done)),
        Err(refused) => {
            say_ephemeral(http, to, &refused.message).await?;
            Ok(None)
        }
    }
}

async fn acknowledge(
    app: &App,
    http: &Http,
    click: &Asked<ComponentInteraction>,
    key: &GroupKey,
    voter: &Voter,
) -> Result<(), BotError> {
    let Some(ticket) = deferred(http, click, posture::may_acknowledge(app, voter, key)).await?
    else {
        return Ok(());
    };
    let text = match posture::acknowledge(app, voter, ticket).await? {
        Acknowledged::Done {
            control_id,
            processed,
            skipped,
        } => {
            let mut text = format!(
                "Acknowledged {processed} finding(s) of {}: Security Hub workflow NOTIFIED.",
                text::code(&control_id)
            );
            if skipped > 0 {
                text.push_str(&format!(
                    " {skipped} finding(s) were left alone: Security Hub no longer holds them as \
                     NEW (suppressed, resolved or acknowledged elsewhere)."
                ));
            }
            text
        }
        Acknowledged::Failed { class, error_id } => format!(
            "Security Hub did not take the acknowledgement ({class}; error id `{error_id}`); \
             nothing changed on the card."
        ),
    };
    click.edit(http, answer(text)).await?;
    Ok(())
}

async fn remediate(
    app: &App,
    http: &Http,
    click: &Asked<ComponentInteraction>,
    key: &GroupKey,
    voter: &Voter,
) -> Result<(), BotError> {
    let Some(ticket) = deferred(http, click, posture::may_remediate(app, voter, key)).await? else {
        return Ok(());
    };
    let text = match posture::remediate(app, voter, ticket).await? {
        Ok(proposed) => format!(
            "Remediation of {} ({} step(s)) proposed as request `{}`; its card is posted in the \
             channel. It runs once {} other responder(s) approve it.",
            text::code(&proposed.control_id),
            proposed.steps,
            proposed.request.simple(),
            proposed.needed,
        ),
        Err(refused) => refused.message,
    };
    click.edit(http, answer(text)).await?;
    Ok(())
}
