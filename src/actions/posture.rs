//! The posture actions (issue 7, issue 12 item 1): what a person can do about a failing
//! Security Hub control, whoever asks (a posture card's buttons today).
//!
//! * [`suppress`] proposes a request whose one step suppresses exactly the control's failing
//!   findings ([`crate::remediate::suppression_plan`]); it needs a reason and goes through the
//!   same policy, votes, engine and audit as a containment. [`may_suppress`] is its check
//!   alone, for a transport that asks for the reason first.
//! * [`lift`] proposes lifting a suppression that ran: its revert, approval-gated like any.
//!   [`suppressions`] and [`in_force_for_group`] say where each suppression stands.
//! * [`acknowledge`] sets the control's NEW failing findings to NOTIFIED at once, without
//!   approval (it changes who is looking, not what is exposed), but only those the store holds
//!   as failing and NEW and Security Hub still reads as NEW
//!   ([`crate::aws::securityhub::acknowledge_new`]): never a SUPPRESSED finding. Refused while
//!   paused. The ask is audited (`CommandInvoked`, action `acknowledge`) before the call to
//!   Security Hub, its outcome after it (`FindingsAcknowledged`); the store takes what was done.
//! * [`remediate`] proposes the control's remediation ([`crate::remediate`]: S3.8, S3.1, IAM.3).
//!
//! Acknowledge and remediate call AWS, which can take longer than a chat transport may wait
//! before answering: each is two calls, a check ([`may_acknowledge`], [`may_remediate`])
//! whose ticket the transport hands back to the action once it has told the person to wait.
//!
//! Every ask is checked from scratch: the asker's roles, the group as the store holds it now
//! (known, something failing), and its account and region against the one planner's rule
//! ([`crate::planner::check`]: allow-lists, proven reach). A refusal is audited through
//! [`super::refuse`] as `CommandInvoked` with `action: posture`, `refused: <code>` and the
//! sentence as `message`; the [`Refused`] handed back holds the sentence to show the person.
//!
//! May use the core ([`crate::posture`], [`crate::plan`], [`crate::approval`], the audit), the
//! store's typed operations, the planner, the engine, [`crate::remediate`] and the AWS layer;
//! never serenity, never a store key layout.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Refused, Subject};
use crate::app::App;
use crate::approval::{Request, RequestKind, RequestState, Voter};
use crate::audit::{Actor, EventKind, NewEvent};
use crate::engine::EngineError;
use crate::notices::Notice;
use crate::pipeline;
use crate::plan::{Action, Target};
use crate::posture::{ControlFinding, Group, GroupKey, WorkflowStatus};
use crate::remediate::{self, Remediation};
use crate::store::{Store, StoreError};

/// The answer to an ask about a control hanko does not know.
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
/// The fewest characters a suppression's reason may have.
pub const REASON_MIN: usize = 3;

/// A posture action that could not finish (not a refusal: the store or the engine failed).
#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What an action returns: done (`Ok(Ok)`), refused and audited (`Ok(Err)`), or failed.
pub type Outcome<T> = Result<Result<T, Refused>, PostureError>;

/// A request proposed by [`suppress`], [`remediate`] or [`lift`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
    pub request: Uuid,
    pub control_id: String,
    /// The findings a suppression covers (for a remediation or a lift: the group's failing
    /// findings at the ask, or the suppression's).
    pub findings: usize,
    pub steps: usize,
    /// Approvals it needs before it runs.
    pub needed: u32,
}

/// Audits a refused posture ask (`CommandInvoked`, `action: posture`, `refused: code`,
/// `message: audited`) and returns the refusal carrying `answer`, the sentence to show.
fn refused(
    app: &App,
    actor: &Actor,
    group: Option<&GroupKey>,
    request: Option<Uuid>,
    code: &str,
    audited: &str,
    answer: String,
) -> Refused {
    let mut detail = serde_json::Map::new();
    detail.insert("action".into(), "posture".into());
    detail.insert("refused".into(), code.into());
    let subject = Subject {
        finding: group.map(GroupKey::encode),
        request,
        detail,
    };
    let audited = Refused::new(code, audited);
    super::refuse(app, actor, EventKind::CommandInvoked, subject, audited);
    Refused::new(code, answer)
}

/// [`refused`] about `group`, where the audited sentence is the one shown.
fn refused_as(app: &App, voter: &Voter, group: &GroupKey, code: &str, sentence: &str) -> Refused {
    let answer = sentence.to_string();
    refused(app, &voter.actor, Some(group), None, code, sentence, answer)
}

/// Refuses, audited, an ask whose posture id could not be read (or was of the wrong kind);
/// `answer` is the transport's sentence for "not one of hanko's".
pub fn refuse_unreadable(app: &App, actor: &Actor, answer: &str) -> Refused {
    refused(
        app,
        actor,
        None,
        None,
        "not_hanko_posture_id",
        answer,
        answer.to_string(),
    )
}

/// The checks every posture ask passes first: the asker may act, the group is known and
/// something in it fails, and its account and region are within the one planner's rule (with
/// the reach as known now, so a chat answer stays within its deadline).
fn admitted(app: &App, voter: &Voter, key: &GroupKey) -> Outcome<Group> {
    if let Err(refusal) = app.policy.authorizes(voter) {
        let text = refusal.to_string();
        return Ok(Err(refused_as(app, voter, key, refusal.code(), &text)));
    }
    let Some(group) = Group::of(&app.store.control_findings(key)?) else {
        return Ok(Err(refused_as(
            app,
            voter,
            key,
            "unknown_group",
            UNKNOWN_GROUP,
        )));
    };
    if group.failing_findings.is_empty() {
        return Ok(Err(refused_as(
            app,
            voter,
            key,
            "nothing_fails",
            NOTHING_FAILS,
        )));
    }
    let scope = app.scope_known();
    if let Err(refusal) = crate::planner::check(&scope, &key.account_id, &key.region) {
        return Ok(Err(refused(
            app,
            &voter.actor,
            Some(key),
            None,
            refusal.code(),
            &refusal.to_string(),
            format!("Nothing was done: {refusal}."),
        )));
    }
    Ok(Ok(group))
}

/// Refuses, audited, when a suppression or remediation of this group is live (issue 11,
/// 4(c)): the refusal names the open request.
fn refuse_if_open(app: &App, voter: &Voter, key: &GroupKey) -> Result<Option<Refused>, StoreError> {
    let now = app.clock.now();
    let open = app
        .store
        .requests_for_finding(&key.encode())?
        .into_iter()
        .find(|r| r.is_live(now))
        .map(|r| r.id);
    Ok(open.map(|id| {
        let text = format!(
            "A request for this control is already open (request `{}`); vote on its card.",
            id.simple()
        );
        refused(
            app,
            &voter.actor,
            Some(key),
            Some(id),
            "already_open",
            &text,
            text.clone(),
        )
    }))
}

/// Whether `voter` may suppress the control of `key` now (checked again by [`suppress`]);
/// the group, for the transport's question (how many findings).
pub fn may_suppress(app: &App, voter: &Voter, key: &GroupKey) -> Outcome<Group> {
    admitted_none_open(app, voter, key)
}

/// [`admitted`], and no suppression or remediation of the group is live: the check of a
/// proposal.
fn admitted_none_open(app: &App, voter: &Voter, key: &GroupKey) -> Outcome<Group> {
    let group = match admitted(app, voter, key)? {
        Ok(group) => group,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Some(refusal) = refuse_if_open(app, voter, key)? {
        return Ok(Err(refusal));
    }
    Ok(Ok(group))
}

/// Proposes suppressing the failing findings of `key`'s control, for `reason` (trimmed; at
/// least [`REASON_MIN`] characters). Its risk class is `posture.suppress_risk`.
pub fn suppress(app: &App, voter: &Voter, key: &GroupKey, reason: &str) -> Outcome<Proposed> {
    let group = match admitted(app, voter, key)? {
        Ok(group) => group,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let reason = reason.trim();
    if reason.chars().count() < REASON_MIN {
        return Ok(Err(refused(
            app,
            &voter.actor,
            Some(key),
            None,
            "reason_required",
            "a reason is required",
            "A suppression needs a reason (3 characters or more); nothing was done.".to_string(),
        )));
    }
    if let Some(refusal) = refuse_if_open(app, voter, key)? {
        return Ok(Err(refusal));
    }
    let plan = remediate::suppression_plan(&group, reason, app.settings.posture.suppress_risk);
    let proposed = propose(app, voter, &group, plan)?;
    tracing::info!(request_id = %proposed.request, group = %key.encode(), proposer = %voter.actor.key(), "suppression proposed");
    Ok(Ok(proposed))
}

/// Stores `plan` as a new request by `voter` and tells the transports.
fn propose(
    app: &App,
    voter: &Voter,
    group: &Group,
    plan: crate::plan::Plan,
) -> Result<Proposed, StoreError> {
    let steps = plan.steps.len();
    let needed = app.policy.needed(&plan);
    let now = app.clock.now();
    let request = pipeline::propose(&app.store, &app.policy, plan, voter.actor.clone(), now)?;
    app.notices.send(Notice::RequestChanged { request });
    Ok(Proposed {
        request,
        control_id: group.key.control_id.clone(),
        findings: group.failing_findings.len(),
        steps,
        needed,
    })
}

/// An acknowledgement [`may_acknowledge`] let through: the findings to acknowledge.
#[derive(Debug)]
pub struct AcknowledgeTicket {
    key: GroupKey,
    fresh: Vec<ControlFinding>,
}

/// Whether `voter` may acknowledge `key`'s control now: admitted, not paused, and some
/// failing finding the store holds as NEW.
pub fn may_acknowledge(app: &App, voter: &Voter, key: &GroupKey) -> Outcome<AcknowledgeTicket> {
    if let Err(refusal) = admitted(app, voter, key)? {
        return Ok(Err(refusal));
    }
    // Acknowledge changes Security Hub: like an execution, it waits while paused.
    if app.engine.is_paused()? {
        return Ok(Err(refused_as(app, voter, key, "paused", ACK_PAUSED)));
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
        return Ok(Err(refused_as(
            app,
            voter,
            key,
            "nothing_to_acknowledge",
            NOTHING_TO_ACKNOWLEDGE,
        )));
    }
    Ok(Ok(AcknowledgeTicket {
        key: key.clone(),
        fresh,
    }))
}

/// What [`acknowledge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledged {
    /// Security Hub took it: `processed` findings are NOTIFIED; `skipped` were no longer NEW
    /// there and were left alone.
    Done {
        control_id: String,
        processed: usize,
        skipped: usize,
    },
    /// Security Hub (or reaching it) failed: nothing changed. The error is logged under
    /// `error_id`; `class` is its class (`access_denied`, ...).
    Failed { class: String, error_id: String },
}

/// Acknowledges the findings of `ticket` (from [`may_acknowledge`]) in Security Hub, audited
/// before the call and after it; the store takes what was done and what was seen.
pub async fn acknowledge(
    app: &App,
    voter: &Voter,
    ticket: AcknowledgeTicket,
) -> Result<Acknowledged, PostureError> {
    let AcknowledgeTicket { key, fresh } = ticket;
    let identifiers: Vec<(String, String)> = fresh
        .iter()
        .map(|f| (f.id.clone(), f.product_arn.clone()))
        .collect();
    // Audited before the call to Security Hub: who asked to acknowledge which findings.
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
            crate::aws::securityhub::acknowledge_new(clients.securityhub(), &identifiers, &by).await
        }
        Err(e) => Err(e),
    };
    let ev = NewEvent::new(
        app.clock.now(),
        voter.actor.clone(),
        EventKind::FindingsAcknowledged,
    )
    .finding(key.encode());
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let error_id = log_error(&e, "acknowledging Security Hub findings");
            app.store.append_audit(ev.detail(json!({
                "control": key.control_id,
                "asked": identifiers.len(),
                "failed": e.class.as_str(),
                "error_id": error_id,
            })))?;
            return Ok(Acknowledged::Failed {
                class: e.class.as_str().to_string(),
                error_id,
            });
        }
    };
    let processed: &[String] = done
        .updated
        .as_ref()
        .map_or(&[], |u| u.processed.as_slice());
    app.store.append_audit(ev.detail(json!({
        "control": key.control_id,
        "account": key.account_id,
        "region": key.region,
        "asked": identifiers.len(),
        "processed": processed.len(),
        "note": done.updated.as_ref().map(|u| u.note.clone()),
        // Findings Security Hub no longer held as NEW: left alone.
        "skipped": done.skipped,
    })))?;
    // Security Hub is the source of truth; BatchUpdateFindings does not move UpdatedAt, so no
    // poll reads this back: the store takes what was done and what was seen.
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
    Ok(Acknowledged::Done {
        control_id: key.control_id.clone(),
        processed: processed.len(),
        skipped: done.skipped.len(),
    })
}

/// Logs `error` with its chain under a fresh error id ([`crate::util::error_id`]), and
/// returns the id.
fn log_error(error: &(dyn std::error::Error + 'static), context: &str) -> String {
    let error_id = crate::util::error_id();
    let chain = crate::util::error_chain(error);
    tracing::error!(error_id = %error_id, error = %chain, "{context}");
    error_id
}

/// A remediation [`may_remediate`] let through: the group as it was checked.
#[derive(Debug)]
pub struct RemediateTicket {
    group: Group,
}

/// Whether `voter` may ask for `key`'s remediation now: admitted, and nothing open for it.
pub fn may_remediate(app: &App, voter: &Voter, key: &GroupKey) -> Outcome<RemediateTicket> {
    Ok(admitted_none_open(app, voter, key)?.map(|group| RemediateTicket { group }))
}

/// Plans `ticket`'s remediation (read-only AWS calls: IAM.3 lists the users' keys; nothing
/// changes before approval) and proposes it.
pub async fn remediate(app: &App, voter: &Voter, ticket: RemediateTicket) -> Outcome<Proposed> {
    let group = ticket.group;
    let key = &group.key;
    let now = app.clock.now();
    let planned = match app.clients.clients(&key.account_id, &key.region).await {
        Ok(clients) => {
            remediate::plan_for_group(&clients, &group, now, app.settings.posture.iam3_max_key_age)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let plan = match planned {
        Ok(Remediation::Plan(plan)) => plan,
        Ok(Remediation::NotOffered { reason }) => {
            return Ok(Err(refused(
                app,
                &voter.actor,
                Some(key),
                None,
                "remediation_not_offered",
                &reason,
                format!("No remediation proposed: {reason}"),
            )));
        }
        Err(message) => {
            tracing::warn!(group = %key.encode(), error = %message, "planning a remediation failed");
            return Ok(Err(refused(
                app,
                &voter.actor,
                Some(key),
                None,
                "remediation_planning_failed",
                &message,
                format!("hanko could not read what the remediation needs: {message}"),
            )));
        }
    };
    let proposed = propose(app, voter, &group, plan)?;
    tracing::info!(request_id = %proposed.request, group = %key.encode(), proposer = %voter.actor.key(), "remediation proposed");
    Ok(Ok(proposed))
}

/// Where a suppression stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lift {
    /// In force.
    None,
    /// A lift (revert) is proposed or running.
    Pending(Uuid),
    /// Lifted by this revert request, at this time.
    Done(Uuid, Option<DateTime<Utc>>),
}

/// One suppression that ran.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub request: Request,
    pub control_id: String,
    pub findings: usize,
    pub reason: String,
    pub lift: Lift,
}

/// Every suppression request that ran (succeeded or partly), newest first.
pub fn suppressions(store: &Store) -> Result<Vec<Suppression>, StoreError> {
    let mut out = Vec::new();
    for request in
        store.requests_in_states(&[RequestState::Succeeded, RequestState::PartiallyFailed])?
    {
        if let Some(s) = suppression_of(store, request)? {
            out.push(s);
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.request.decided_at));
    Ok(out)
}

/// The suppressions of one posture group ([`crate::posture::GroupKey::encode`]) that ran and
/// are not lifted, newest first: what its posture card names.
pub fn in_force_for_group(store: &Store, group: &str) -> Result<Vec<Suppression>, StoreError> {
    let mut out = Vec::new();
    for request in store.requests_for_finding(group)? {
        if !ran(&request) {
            continue;
        }
        if let Some(s) = suppression_of(store, request)? {
            if !matches!(s.lift, Lift::Done(..)) {
                out.push(s);
            }
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.request.decided_at));
    Ok(out)
}

fn ran(request: &Request) -> bool {
    matches!(
        request.state,
        RequestState::Succeeded | RequestState::PartiallyFailed
    )
}

/// `request` as a suppression, when it is one (a containment request with a
/// `SuppressFindings` step), with where its lift stands.
fn suppression_of(store: &Store, request: Request) -> Result<Option<Suppression>, StoreError> {
    if request.kind != RequestKind::Contain {
        return Ok(None);
    }
    let Some(step) = request
        .plan
        .steps
        .iter()
        .find(|s| s.action == Action::SuppressFindings)
    else {
        return Ok(None);
    };
    let (control_id, findings) = match &step.target {
        Target::ControlFindings {
            control_id,
            finding_ids,
        } => (control_id.clone(), finding_ids.len()),
        _ => return Ok(None),
    };
    let reason = step
        .parameters
        .get("Reason")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let mut lift = Lift::None;
    for other in store.requests_for_finding(&request.finding_id)? {
        if other.kind != (RequestKind::Revert { of: request.id }) {
            continue;
        }
        match other.state {
            RequestState::Succeeded | RequestState::PartiallyFailed => {
                lift = Lift::Done(other.id, other.decided_at);
                break;
            }
            RequestState::Pending | RequestState::Approved | RequestState::Executing => {
                lift = Lift::Pending(other.id)
            }
            _ => {}
        }
    }
    Ok(Some(Suppression {
        request,
        control_id,
        findings,
        reason,
        lift,
    }))
}

/// Proposes lifting the suppression `of` (a suppression request that ran): its revert, which
/// sets the findings back to the workflow status they had, once approved like any revert.
/// Refused when `of` is no suppression that ran, when its lift is already open or done, or
/// outside the one planner's rule.
pub fn lift(app: &App, voter: &Voter, of: Uuid) -> Outcome<Proposed> {
    let refuse = |group: Option<&GroupKey>, code: &str, text: String| {
        refused(
            app,
            &voter.actor,
            group,
            Some(of),
            code,
            &text,
            text.clone(),
        )
    };
    if let Err(refusal) = app.policy.authorizes(voter) {
        return Ok(Err(refuse(None, refusal.code(), refusal.to_string())));
    }
    let suppression = match app.store.get_request(of)? {
        Some(request) if ran(&request) => suppression_of(&app.store, request)?,
        _ => None,
    };
    let Some(suppression) = suppression else {
        return Ok(Err(refuse(
            None,
            "not_a_suppression",
            format!(
                "Request `{}` is no suppression that ran; nothing was done.",
                of.simple()
            ),
        )));
    };
    let key = GroupKey::decode(&suppression.request.finding_id);
    match suppression.lift {
        Lift::None => {}
        Lift::Pending(open) => {
            return Ok(Err(refuse(
                key.as_ref(),
                "already_open",
                format!(
                    "A lift of this suppression is already open (request `{}`); vote on its card.",
                    open.simple()
                ),
            )))
        }
        Lift::Done(done, _) => {
            return Ok(Err(refuse(
                key.as_ref(),
                "already_lifted",
                format!(
                    "This suppression was already lifted (request `{}`); nothing was done.",
                    done.simple()
                ),
            )))
        }
    }
    let now = app.clock.now();
    let revert = match app
        .engine
        .revert_request(of, voter.actor.clone(), now, app.policy.ttl)
    {
        Ok(revert) => revert,
        Err(EngineError::NotRevertible { reason, .. }) => {
            return Ok(Err(refuse(
                key.as_ref(),
                "not_revertible",
                format!("Nothing to lift: {reason}."),
            )))
        }
        Err(e) => return Err(e.into()),
    };
    // A lift acts where the suppression did: the one planner's rule applies to it too.
    let scope = app.scope_known();
    if let Err(refusal) =
        crate::planner::check(&scope, &revert.plan.account_id, &revert.plan.region)
    {
        return Ok(Err(refuse(
            key.as_ref(),
            refusal.code(),
            format!("Nothing was done: {refusal}."),
        )));
    }
    app.store.create_request(&revert, now)?;
    app.notices
        .send(Notice::RequestChanged { request: revert.id });
    tracing::info!(request_id = %revert.id, lifts = %of, proposer = %voter.actor.key(), "lift proposed");
    Ok(Ok(Proposed {
        request: revert.id,
        control_id: suppression.control_id,
        findings: suppression.findings,
        steps: revert.plan.steps.len(),
        needed: app.policy.needed(&revert.plan),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditQuery;
    use crate::aws::ClientFactory;
    use crate::execution::{StepOutcome, StepPhase, StepRecord};
    use crate::playbooks::Playbooks;
    use crate::posture::{ComplianceStatus, PostureSeverity};
    use std::path::Path;

    const ACCOUNT: &str = "123456789012";
    const RESPONDER: &str = "323456789012345678";

    fn app() -> App {
        let conf = format!(
            "[discord]\nguild_id = \"123456789012345678\"\nchannel_id = \"223456789012345678\"\n\
             [responders]\napprover_roles = [\"{RESPONDER}\"]\n[aws]\nregions = [\"us-east-1\"]\n"
        );
        let settings = crate::config::parse(&conf, Path::new("/test/hanko.toml")).unwrap();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let clients = ClientFactory::from_sdk_config(sdk, None).with_proven_own_account(ACCOUNT);
        App::new(
            settings,
            Playbooks::defaults(),
            Store::open_temporary().unwrap(),
            clients,
        )
    }

    fn voter(name: &str, roles: &[&str]) -> Voter {
        Voter {
            actor: Actor::Discord {
                id: format!("9{name}"),
                name: name.into(),
            },
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn responder(name: &str) -> Voter {
        voter(name, &[RESPONDER])
    }

    fn finding(id: &str, workflow: WorkflowStatus) -> ControlFinding {
        ControlFinding {
            id: id.into(),
            product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
            account_id: ACCOUNT.into(),
            home_region: "us-east-1".into(),
            region: "us-east-1".into(),
            control_id: "EC2.19".into(),
            title: "Security groups should not allow unrestricted access".into(),
            standards: vec!["aws-foundational-security-best-practices/v/1.0.0".into()],
            severity: PostureSeverity::High,
            compliance: ComplianceStatus::Failed,
            archived: false,
            workflow,
            resources: Vec::new(),
            remediation_url: None,
            first_observed_at: None,
            updated_at: None,
        }
    }

    /// An app holding a group of EC2.19 with two failing findings.
    fn world() -> (App, GroupKey) {
        let app = app();
        let a = finding("f-a", WorkflowStatus::New);
        let b = finding("f-b", WorkflowStatus::Notified);
        app.store.upsert_control_finding(&a).unwrap();
        app.store.upsert_control_finding(&b).unwrap();
        (app, a.group_key())
    }

    fn refusals(app: &App, code: &str) -> Vec<crate::audit::AuditEvent> {
        app.store
            .query_audit(&AuditQuery {
                kind: Some(EventKind::CommandInvoked),
                ..AuditQuery::default()
            })
            .unwrap()
            .into_iter()
            .filter(|e| e.detail["refused"] == code)
            .collect()
    }

    #[tokio::test]
    async fn suppress_proposes_exactly_the_failing_findings_once() {
        let (app, key) = world();
        let alice = responder("alice");
        let proposed = suppress(&app, &alice, &key, "  static website, SEC-1  ")
            .unwrap()
            .unwrap();
        assert_eq!(proposed.findings, 2);
        assert_eq!(proposed.steps, 1);
        assert_eq!(proposed.control_id, "EC2.19");
        let request = app.store.get_request(proposed.request).unwrap().unwrap();
        assert_eq!(request.finding_id, key.encode());
        assert_eq!(request.proposer, alice.actor);
        let step = &request.plan.steps[0];
        assert_eq!(step.action, Action::SuppressFindings);
        assert_eq!(step.parameters["Reason"], "static website, SEC-1");
        assert_eq!(step.risk, app.settings.posture.suppress_risk);

        // While it is open, another suppression (and its check alone) is refused, naming it.
        let bob = responder("bob");
        let again = suppress(&app, &bob, &key, "again please")
            .unwrap()
            .unwrap_err();
        assert_eq!(again.code, "already_open");
        assert!(again
            .message
            .contains(&proposed.request.simple().to_string()));
        assert_eq!(
            may_suppress(&app, &bob, &key).unwrap().unwrap_err().code,
            "already_open"
        );
        let audited = refusals(&app, "already_open");
        assert_eq!(audited.len(), 2);
        assert_eq!(audited[0].request_id, Some(proposed.request));
        assert_eq!(
            audited[0].finding_id.as_deref(),
            Some(key.encode().as_str())
        );
        assert_eq!(audited[0].detail["action"], "posture");
        assert_eq!(audited[0].detail["message"], again.message.as_str());
    }

    #[tokio::test]
    async fn suppress_refusals_keep_their_codes_and_sentences() {
        let (app, key) = world();
        // No reason: what the person sees and what is audited, as before.
        let short = suppress(&app, &responder("alice"), &key, "  x ")
            .unwrap()
            .unwrap_err();
        assert_eq!(short.code, "reason_required");
        assert_eq!(
            short.message,
            "A suppression needs a reason (3 characters or more); nothing was done."
        );
        let audited = refusals(&app, "reason_required");
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].detail["message"], "a reason is required");
        assert_eq!(audited[0].actor.display_name(), "alice");

        // Not a responder.
        let eve = suppress(&app, &voter("eve", &[]), &key, "because")
            .unwrap()
            .unwrap_err();
        assert_eq!(refusals(&app, &eve.code).len(), 1);

        // A control hanko does not know, and one where nothing fails.
        let unknown = GroupKey {
            control_id: "S3.8".into(),
            ..key.clone()
        };
        let refused = may_suppress(&app, &responder("alice"), &unknown)
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (refused.code.as_str(), refused.message.as_str()),
            ("unknown_group", UNKNOWN_GROUP)
        );
        for id in ["f-a", "f-b"] {
            app.store
                .upsert_control_finding(&finding(id, WorkflowStatus::Suppressed))
                .unwrap();
        }
        let refused = may_remediate(&app, &responder("alice"), &key)
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (refused.code.as_str(), refused.message.as_str()),
            ("nothing_fails", NOTHING_FAILS)
        );
        assert!(app
            .store
            .requests_for_finding(&key.encode())
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn acknowledge_is_refused_while_paused_and_with_nothing_new() {
        let (app, key) = world();
        let bob = responder("bob");
        app.engine.set_paused(true, Actor::System, None).unwrap();
        let paused = may_acknowledge(&app, &bob, &key).unwrap().unwrap_err();
        assert_eq!(
            (paused.code.as_str(), paused.message.as_str()),
            ("paused", ACK_PAUSED)
        );
        app.engine.set_paused(false, Actor::System, None).unwrap();
        let ticket = may_acknowledge(&app, &bob, &key).unwrap().unwrap();
        assert_eq!(ticket.fresh.len(), 1, "only the NEW one: {ticket:?}");
        app.store
            .upsert_control_finding(&finding("f-a", WorkflowStatus::Notified))
            .unwrap();
        let none = may_acknowledge(&app, &bob, &key).unwrap().unwrap_err();
        assert_eq!(none.message, NOTHING_TO_ACKNOWLEDGE);
        assert_eq!(refusals(&app, "paused").len(), 1);
        assert_eq!(refusals(&app, "nothing_to_acknowledge").len(), 1);
    }

    /// Runs `request` to Succeeded by hand, its one step applied.
    fn ran_by_hand(app: &App, id: Uuid) {
        let mut request = app.store.get_request(id).unwrap().unwrap();
        for (from, to) in [
            (RequestState::Pending, RequestState::Approved),
            (RequestState::Approved, RequestState::Executing),
            (RequestState::Executing, RequestState::Succeeded),
        ] {
            request.state = to;
            request.decided_at = Some(app.clock.now());
            app.store.update_request(&request, from, None).unwrap();
        }
        let step = &request.plan.steps[0];
        let record = StepRecord {
            index: 0,
            action: step.action,
            target: step.target.clone(),
            phase: StepPhase::Done,
            captured: json!({}),
            result: json!({}),
            outcome: Some(StepOutcome::Applied),
            error_code: None,
            message: None,
            started_at: app.clock.now(),
            finished_at: Some(app.clock.now()),
        };
        app.store.put_step_record(id, &record, None).unwrap();
    }

    #[tokio::test]
    async fn lift_proposes_the_revert_of_a_suppression_that_ran_once() {
        let (app, key) = world();
        let alice = responder("alice");
        let bob = responder("bob");
        let suppression = suppress(&app, &alice, &key, "static website")
            .unwrap()
            .unwrap()
            .request;
        // Not run yet: nothing to lift.
        let early = lift(&app, &bob, suppression).unwrap().unwrap_err();
        assert_eq!(early.code, "not_a_suppression");
        ran_by_hand(&app, suppression);
        assert_eq!(suppressions(&app.store).unwrap().len(), 1);
        assert_eq!(
            in_force_for_group(&app.store, &key.encode()).unwrap().len(),
            1
        );

        let lifted = lift(&app, &bob, suppression).unwrap().unwrap();
        let revert = app.store.get_request(lifted.request).unwrap().unwrap();
        assert_eq!(revert.kind, RequestKind::Revert { of: suppression });
        assert_eq!(revert.proposer, bob.actor);
        assert_eq!(revert.plan.steps[0].action, Action::SuppressFindings);
        assert_eq!(lifted.findings, 2);
        assert_eq!(
            suppressions(&app.store).unwrap()[0].lift,
            Lift::Pending(lifted.request)
        );

        // One lift at a time; a request that is no suppression is refused.
        let twice = lift(&app, &alice, suppression).unwrap().unwrap_err();
        assert_eq!(twice.code, "already_open");
        assert!(twice.message.contains(&lifted.request.simple().to_string()));
        let other = lift(&app, &alice, Uuid::new_v4()).unwrap().unwrap_err();
        assert_eq!(other.code, "not_a_suppression");
        let audited = refusals(&app, "already_open");
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].request_id, Some(suppression));
        assert_eq!(
            audited[0].finding_id.as_deref(),
            Some(key.encode().as_str())
        );
    }
}
