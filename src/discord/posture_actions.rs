//! What a posture card's buttons do (issue 7):
//!
//! * **Suppress** opens a modal asking why; its submit proposes a request whose one step
//!   suppresses exactly the control's failing findings (`securityhub:BatchUpdateFindings`,
//!   workflow SUPPRESSED, a note with the reason and the approvers). It runs through the same
//!   policy, votes, engine and audit as a containment: the proposer cannot approve it, and its
//!   risk class (`evidence` by default) decides how many approvers it needs. Lifting it is its
//!   revert, approval-gated like any other.
//! * **Acknowledge** sets the control's NEW failing findings to NOTIFIED at once, without
//!   approval (it changes who is looking, not what is exposed). It acts only on findings the
//!   store holds as failing and NEW at the click, and of those only on the ones Security Hub
//!   still reads as NEW ([`crate::aws::securityhub::acknowledge_new`]): never on a SUPPRESSED
//!   finding, which would lift an approved suppression without approval. Like an execution it
//!   is refused while paused (`/pause`) and outside `aws.accounts` / `aws.regions`. The click
//!   is audited (`CommandInvoked`, action `acknowledge`) before the `BatchUpdateFindings` call,
//!   and its outcome after it as `FindingsAcknowledged`.
//! * **Remediate** proposes the control's remediation (see [`crate::remediate`]: S3.8, S3.1,
//!   IAM.3) as a request of its own, approval-gated like a containment.
//!
//! Every click is checked from scratch: the id ([`PostureId`]), the clicker's roles, and the
//! group as the store holds it now, and the group's account and region against the one
//! planner's rule ([`crate::planner::check`]: allow-lists, proven reach). Refusals are
//! ephemeral and audited (`CommandInvoked` with `refused`: `already_open` naming the open
//! request, `nothing_to_acknowledge`, `paused`, `aws.accounts`, `aws.regions`, ...).
//!
//! What a suppression did reaches the store and this card through [`crate::posture_sync`]
//! once its execution ends; Suppress proposes only the findings that are failing (NEW or
//! NOTIFIED) at the moment of the submit.

use std::sync::Arc;

use serde_json::json;
use serenity::all::{
    ComponentInteraction, CreateActionRow, CreateInputText, CreateInteractionResponse, CreateModal,
    EditInteractionResponse, InputTextStyle, ModalInteraction,
};
use serenity::http::Http;

use crate::app::App;
use crate::approval::Voter;
use crate::audit::{Actor, EventKind, NewEvent};
use crate::discord::bot::{defer_ephemeral, no_pings, say_ephemeral, BotError, BotState};
use crate::discord::cards;
use crate::discord::commands::MAX_CONTENT;
use crate::discord::custom_id::{PostureAction, PostureId, SUPPRESS_REASON_INPUT};
use crate::discord::interactions::{text_input, voter_of, NOT_OURS};
use crate::discord::outbox;
use crate::pipeline::{self, Notice};
use crate::plan::{Action, Plan, RiskClass, Step, Target};
use crate::posture::{ControlFinding, Group, GroupKey, WorkflowStatus};
use crate::remediate::{self, Remediation};

/// The answer to a click on a posture card whose control hanko does not know.
pub const UNKNOWN_GROUP: &str =
    "hanko has no record of this control in this account; nothing was done.";
/// The answer when nothing fails any more.
pub const NOTHING_FAILS: &str = "Nothing fails for this control any more; nothing was done.";
/// The answer to Acknowledge when no failing finding is NEW any more.
pub const NOTHING_TO_ACKNOWLEDGE: &str =
    "Every failing finding of this control is already acknowledged; nothing was done.";
/// The answer to Acknowledge while execution is paused.
pub const ACK_PAUSED: &str = "Execution is paused: hanko changes nothing in AWS until an admin \
    runs /resume; nothing was done.";
const MODAL_TITLE: &str = "Suppress this control's findings";
const REASON_MIN: u16 = 3;
const REASON_MAX: u16 = 1000;

/// Routes a click on a posture card.
pub async fn component(
    state: &BotState,
    http: &Arc<Http>,
    click: &ComponentInteraction,
) -> Result<(), BotError> {
    let app = &state.app;
    let voter = voter_of(&click.user, click.member.as_ref());
    let (id, group) = match checked(app, &voter, &click.data.custom_id, false)? {
        Ok(found) => found,
        Err(text) => return say_ephemeral(http, click, &text).await,
    };
    if let Some(text) = outside_reach(app, &voter, &id.group) {
        return say_ephemeral(http, click, &text).await;
    }
    match id.action {
        PostureAction::Suppress => {
            open_suppress_modal(app, http, click, &id.group, &group, &voter).await
        }
        PostureAction::Acknowledge => acknowledge(app, http, click, &id.group, &voter).await,
        PostureAction::Remediate => remediate(app, http, click, &group, &voter).await,
        // Filtered out by `checked`: a modal's id on a button.
        PostureAction::SuppressReason => say_ephemeral(http, click, NOT_OURS).await,
    }
}

/// Parses the id, checks the clicker may act and loads the group; `Err` is the refusal to
/// answer (already audited).
fn checked(
    app: &App,
    voter: &Voter,
    custom_id: &str,
    on_modal: bool,
) -> Result<Result<(PostureId, Group), String>, crate::store::StoreError> {
    let id = match PostureId::parse(custom_id) {
        Ok(id) if (id.action == PostureAction::SuppressReason) == on_modal => id,
        parsed => {
            let error = match parsed {
                Err(e) => e.to_string(),
                Ok(_) => "a posture id of the wrong kind".to_string(),
            };
            tracing::warn!(actor = %voter.actor, %error, "refused a posture custom_id");
            refused(app, &voter.actor, None, "not_hanko_posture_id", NOT_OURS);
            return Ok(Err(NOT_OURS.to_string()));
        }
    };
    if let Err(refusal) = app.policy.authorizes(voter) {
        refused(
            app,
            &voter.actor,
            Some(&id.group),
            refusal.code(),
            &refusal.to_string(),
        );
        return Ok(Err(refusal.to_string()));
    }
    let Some(group) = outbox::posture_group(app, &id.group.encode())? else {
        refused(
            app,
            &voter.actor,
            Some(&id.group),
            "unknown_group",
            UNKNOWN_GROUP,
        );
        return Ok(Err(UNKNOWN_GROUP.to_string()));
    };
    if group.failing_findings.is_empty() {
        refused(
            app,
            &voter.actor,
            Some(&id.group),
            "nothing_fails",
            NOTHING_FAILS,
        );
        return Ok(Err(NOTHING_FAILS.to_string()));
    }
    Ok(Ok((id, group)))
}

/// Audits a refused posture click.
fn refused(app: &App, actor: &Actor, group: Option<&GroupKey>, code: &str, message: &str) {
    let mut ev =
        NewEvent::new(app.clock.now(), actor.clone(), EventKind::CommandInvoked).detail(json!({
            "action": "posture",
            "refused": code,
            "message": message,
        }));
    if let Some(g) = group {
        ev = ev.finding(g.encode());
    }
    if let Err(e) = app.store.append_audit(ev) {
        tracing::error!(error = %e, "could not audit a refused posture click");
    }
}

/// The one planner's rule for Suppress, Acknowledge and Remediate: the group's account and
/// region must be inside the allow-lists and within hanko's proven reach
/// ([`crate::planner::check`], with the reach as known now, so the answer stays within
/// Discord's 3 s). `Some` is the refusal to answer, audited.
fn outside_reach(app: &App, voter: &Voter, group: &GroupKey) -> Option<String> {
    let scope = crate::planner::scope_known(app);
    let refusal = crate::planner::check(&scope, &group.account_id, &group.region).err()?;
    refused(
        app,
        &voter.actor,
        Some(group),
        refusal.code(),
        &refusal.to_string(),
    );
    Some(format!("Nothing was done: {refusal}."))
}

/// A live suppression or remediation request of this group, if any.
fn open_request(
    app: &App,
    group: &GroupKey,
) -> Result<Option<uuid::Uuid>, crate::store::StoreError> {
    Ok(app
        .store
        .requests_for_finding(&group.encode())?
        .into_iter()
        .find(|r| r.is_live(app.clock.now()))
        .map(|r| r.id))
}

fn already_open(id: uuid::Uuid) -> String {
    format!(
        "A request for this control is already open (request `{}`); vote on its card.",
        id.simple()
    )
}

/// Audits the "already open" refusal (issue 11, 4(c)), naming the open request.
fn refused_already_open(app: &App, actor: &Actor, group: &GroupKey, open: uuid::Uuid, text: &str) {
    let ev = NewEvent::new(app.clock.now(), actor.clone(), EventKind::CommandInvoked)
        .finding(group.encode())
        .request(open)
        .detail(json!({
            "action": "posture",
            "refused": "already_open",
            "message": text,
        }));
    if let Err(e) = app.store.append_audit(ev) {
        tracing::error!(error = %e, "could not audit a refused posture click");
    }
}

/// Answers a click with the "already open" refusal, audited.
async fn refuse_already_open(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    group: &GroupKey,
    voter: &Voter,
    open: uuid::Uuid,
) -> Result<(), BotError> {
    let text = already_open(open);
    refused_already_open(app, &voter.actor, group, open, &text);
    say_ephemeral(http, click, &text).await
}

async fn open_suppress_modal(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    key: &GroupKey,
    group: &Group,
    voter: &Voter,
) -> Result<(), BotError> {
    if let Some(id) = open_request(app, key)? {
        return refuse_already_open(app, http, click, key, voter, id).await;
    }
    let input = CreateInputText::new(
        InputTextStyle::Paragraph,
        format!(
            "Why suppress {} finding(s)? (goes into Security Hub's note and the audit log)",
            group.failing_findings.len()
        ),
        SUPPRESS_REASON_INPUT,
    )
    .required(true)
    .min_length(REASON_MIN)
    .max_length(REASON_MAX)
    .placeholder("e.g. public by design: static website bucket, reviewed in SEC-123");
    let modal_id = PostureId::new(PostureAction::SuppressReason, key.clone());
    let modal = CreateModal::new(modal_id.encode(), MODAL_TITLE)
        .components(vec![CreateActionRow::InputText(input)]);
    click
        .create_response(http, CreateInteractionResponse::Modal(modal))
        .await?;
    Ok(())
}

/// The reason typed into the suppression modal, trimmed.
fn reason_of(submit: &ModalInteraction) -> String {
    text_input(submit, SUPPRESS_REASON_INPUT)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The plan that suppresses exactly `group`'s failing findings, for `reason`.
pub fn suppression_plan(group: &Group, reason: &str, risk: RiskClass) -> Plan {
    let key = &group.key;
    let ids: Vec<String> = group
        .failing_findings
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let identifiers: Vec<serde_json::Value> = group
        .failing_findings
        .iter()
        .map(|(id, product_arn)| json!({ "Id": id, "ProductArn": product_arn }))
        .collect();
    let mut step = Step::new(
        Action::SuppressFindings,
        Target::ControlFindings {
            control_id: key.control_id.clone(),
            finding_ids: ids,
        },
        json!({
            "ControlId": key.control_id,
            "FindingIdentifiers": identifiers,
            "Reason": reason,
            "Workflow": { "Status": "SUPPRESSED" },
        }),
    );
    step.risk = risk;
    Plan::new(
        key.encode(),
        key.account_id.clone(),
        key.region.clone(),
        false,
        vec![step],
        vec![format!(
            "Suppresses the {} failing finding(s) of control {} in Security Hub (workflow \
             SUPPRESSED, with a note naming the reason, the approvers and this request): they \
             stop counting against the score. Reverting this request lifts the suppression.",
            group.failing_findings.len(),
            key.control_id
        )],
    )
}

/// Handles the suppression modal's submit: proposes the suppression.
pub async fn modal(
    state: &BotState,
    http: &Arc<Http>,
    submit: &ModalInteraction,
) -> Result<(), BotError> {
    let app = &state.app;
    let voter = voter_of(&submit.user, submit.member.as_ref());
    let (id, group) = match checked(app, &voter, &submit.data.custom_id, true)? {
        Ok(found) => found,
        Err(text) => return say_ephemeral(http, submit, &text).await,
    };
    if let Some(text) = outside_reach(app, &voter, &id.group) {
        return say_ephemeral(http, submit, &text).await;
    }
    let reason = reason_of(submit);
    if reason.chars().count() < usize::from(REASON_MIN) {
        refused(
            app,
            &voter.actor,
            Some(&id.group),
            "reason_required",
            "a reason is required",
        );
        return say_ephemeral(
            http,
            submit,
            "A suppression needs a reason (3 characters or more); nothing was done.",
        )
        .await;
    }
    if let Some(open) = open_request(app, &id.group)? {
        let text = already_open(open);
        refused_already_open(app, &voter.actor, &id.group, open, &text);
        return say_ephemeral(http, submit, &text).await;
    }
    defer_ephemeral(http, submit).await?;
    let now = app.clock.now();
    let plan = suppression_plan(&group, &reason, suppress_risk(app));
    let needed = app.policy.needed(&plan);
    let request = pipeline::propose(&app.store, &app.policy, plan, voter.actor.clone(), now)?;
    app.notices.send(Notice::RequestChanged { request });
    tracing::info!(request_id = %request, group = %id.group.encode(), proposer = %voter.actor.key(), "suppression proposed");
    let text = format!(
        "Suppression of {} finding(s) of {} proposed as request `{}`; its card is posted in the \
         channel. It runs once {needed} other responder(s) approve it.",
        group.failing_findings.len(),
        cards::code(&id.group.control_id),
        request.simple()
    );
    submit
        .edit_response(
            http,
            EditInteractionResponse::new()
                .content(cards::truncate(&text, MAX_CONTENT))
                .allowed_mentions(no_pings()),
        )
        .await?;
    Ok(())
}

/// The risk class of a suppression step (`posture.suppress_risk`).
fn suppress_risk(app: &App) -> RiskClass {
    app.settings.posture.suppress_risk
}

async fn acknowledge(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    key: &GroupKey,
    voter: &Voter,
) -> Result<(), BotError> {
    // Acknowledge changes Security Hub: like an execution, it waits while paused. (Where hanko
    // may act, the allow-lists and its proven reach, was checked for every posture button by
    // `outside_reach` before this.)
    if app.engine.is_paused()? {
        refused(app, &voter.actor, Some(key), "paused", ACK_PAUSED);
        return say_ephemeral(http, click, ACK_PAUSED).await;
    }
    // Only findings the store holds as failing and NEW now: never a SUPPRESSED one (that would
    // lift an approved suppression without approval), nor one already acknowledged.
    let fresh: Vec<ControlFinding> = app
        .store
        .control_findings(key)?
        .into_iter()
        .filter(|f| f.is_failing() && f.workflow == WorkflowStatus::New)
        .collect();
    if fresh.is_empty() {
        refused(
            app,
            &voter.actor,
            Some(key),
            "nothing_to_acknowledge",
            NOTHING_TO_ACKNOWLEDGE,
        );
        return say_ephemeral(http, click, NOTHING_TO_ACKNOWLEDGE).await;
    }
    defer_ephemeral(http, click).await?;
    let identifiers: Vec<(String, String)> = fresh
        .iter()
        .map(|f| (f.id.clone(), f.product_arn.clone()))
        .collect();
    let answer = |text: String| {
        EditInteractionResponse::new()
            .content(cards::truncate(&text, MAX_CONTENT))
            .allowed_mentions(no_pings())
    };
    // Audited before the call to Security Hub: who asked to acknowledge which findings. The
    // outcome follows as `FindingsAcknowledged`.
    app.store.append_audit(
        NewEvent::new(
            app.clock.now(),
            voter.actor.clone(),
            EventKind::CommandInvoked,
        )
        .finding(key.encode())
        .detail(json!({
            "action": "acknowledge",
            "control": key.control_id,
            "account": key.account_id,
            "region": key.region,
            "asked": identifiers.len(),
            "findings": identifiers.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        })),
    )?;
    app.store.flush()?;
    let by = voter.actor.display_name().to_string();
    let result = match app.clients.clients(&key.account_id, &key.region).await {
        Ok(clients) => {
            crate::aws::securityhub::acknowledge_new(&clients.securityhub, &identifiers, &by).await
        }
        Err(e) => Err(e),
    };
    let now = app.clock.now();
    let mut ev = NewEvent::new(now, voter.actor.clone(), EventKind::FindingsAcknowledged)
        .finding(key.encode());
    match result {
        Ok(done) => {
            let processed: &[String] = done
                .updated
                .as_ref()
                .map_or(&[], |u| u.processed.as_slice());
            ev = ev.detail(json!({
                "control": key.control_id,
                "account": key.account_id,
                "region": key.region,
                "asked": identifiers.len(),
                "processed": processed.len(),
                "note": done.updated.as_ref().map(|u| u.note.clone()),
                // Findings Security Hub no longer held as NEW: left alone.
                "skipped": done.skipped,
            }));
            app.store.append_audit(ev)?;
            // Security Hub is the source of truth; BatchUpdateFindings does not move UpdatedAt,
            // so no poll reads this back: the store takes what was done and what was seen.
            for mut f in fresh {
                let now_status = if processed.contains(&f.id) {
                    Some(WorkflowStatus::Notified)
                } else {
                    done.skipped
                        .get(&f.id)
                        .and_then(|s| WorkflowStatus::parse(s))
                };
                if let Some(status) = now_status {
                    f.workflow = status;
                    app.store.upsert_control_finding(&f)?;
                }
            }
            app.store.flush()?;
            app.notices.send(Notice::PostureChanged {
                group: key.encode(),
            });
            let mut text = format!(
                "Acknowledged {} finding(s) of {}: Security Hub workflow NOTIFIED.",
                processed.len(),
                cards::code(&key.control_id)
            );
            if !done.skipped.is_empty() {
                text.push_str(&format!(
                    " {} finding(s) were left alone: Security Hub no longer holds them as NEW \
                     (suppressed, resolved or acknowledged elsewhere).",
                    done.skipped.len()
                ));
            }
            click.edit_response(http, answer(text)).await?;
        }
        Err(e) => {
            let error_id =
                crate::discord::bot::log_error(&e, "acknowledging Security Hub findings");
            ev = ev.detail(json!({
                "control": key.control_id,
                "asked": identifiers.len(),
                "failed": e.class.as_str(),
                "error_id": error_id,
            }));
            app.store.append_audit(ev)?;
            click
                .edit_response(
                    http,
                    answer(format!(
                        "Security Hub did not take the acknowledgement ({}; error id `{error_id}`); nothing changed on the card.",
                        e.class.as_str()
                    )),
                )
                .await?;
        }
    }
    Ok(())
}

async fn remediate(
    app: &App,
    http: &Http,
    click: &ComponentInteraction,
    group: &Group,
    voter: &Voter,
) -> Result<(), BotError> {
    let key = &group.key;
    if let Some(id) = open_request(app, key)? {
        return refuse_already_open(app, http, click, key, voter, id).await;
    }
    defer_ephemeral(http, click).await?;
    let answer = |text: String| {
        EditInteractionResponse::new()
            .content(cards::truncate(&text, MAX_CONTENT))
            .allowed_mentions(no_pings())
    };
    let now = app.clock.now();
    // Read-only calls (IAM.3 lists the users' keys); nothing changes before approval.
    let planned = match app.clients.clients(&key.account_id, &key.region).await {
        Ok(clients) => {
            remediate::plan_for_group(&clients, group, now, app.settings.posture.iam3_max_key_age)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let plan = match planned {
        Ok(Remediation::Plan(plan)) => plan,
        Ok(Remediation::NotOffered { reason }) => {
            refused(
                app,
                &voter.actor,
                Some(key),
                "remediation_not_offered",
                &reason,
            );
            click
                .edit_response(http, answer(format!("No remediation proposed: {reason}")))
                .await?;
            return Ok(());
        }
        Err(message) => {
            tracing::warn!(group = %key.encode(), error = %message, "planning a remediation failed");
            refused(
                app,
                &voter.actor,
                Some(key),
                "remediation_planning_failed",
                &message,
            );
            click
                .edit_response(
                    http,
                    answer(format!(
                        "hanko could not read what the remediation needs: {message}"
                    )),
                )
                .await?;
            return Ok(());
        }
    };
    let steps = plan.steps.len();
    let needed = app.policy.needed(&plan);
    let request = pipeline::propose(&app.store, &app.policy, plan, voter.actor.clone(), now)?;
    app.notices.send(Notice::RequestChanged { request });
    tracing::info!(request_id = %request, group = %key.encode(), proposer = %voter.actor.key(), "remediation proposed");
    click
        .edit_response(
            http,
            answer(format!(
                "Remediation of {} ({steps} step(s)) proposed as request `{}`; its card is \
                 posted in the channel. It runs once {needed} other responder(s) approve it.",
                cards::code(&key.control_id),
                request.simple()
            )),
        )
        .await?;
    Ok(())
}
