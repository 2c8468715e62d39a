//! Vote: approve, reject (with a reason) and dry run a request, whoever asks and through
//! whichever transport.
//!
//! * [`approve`]: the one planner's vote-time reach check ([`App::refusal_now`](crate::app::App::refusal_now): a plan hanko
//!   may not run is refused, audited as `VoteRefused`), then [`Store::vote`], one transaction
//!   that runs [`approval::decide`] and audits the vote or its refusal. An approval that meets
//!   the quorum hands back an [`Execution`] to start once the transport has shown the vote
//!   (so the card never shows an older state after the run's own edits).
//! * [`check_reject`]: the checks a rejection gets, run dry, so a refusal comes before anyone
//!   types a reason (audited as `VoteRefused`); [`reject`] records it.
//! * [`approve_as_operators`]: the CLI's `--approve-as`, one store vote a named operator.
//! * [`begin_dry_run`]: responders only (a refusal is audited as `CommandInvoked`); the dry run
//!   is audited first (`DryRunPerformed`: who, on what) and not run when that audit cannot be
//!   written; [`DryRun::run`] makes the read and EC2 `DryRun=true` calls, bounded by
//!   [`DRY_RUN_TIMEOUT`].
//!
//! The plan hash voted for comes from the transport (a card's `custom_id` carries a prefix;
//! the transport resolves it). May use the app, the core, the store's vote, the planner and the
//! engine's dry run; never serenity.
//!
//! [`Store::vote`]: crate::store::Store::vote

use std::time::Duration;

use uuid::Uuid;

use crate::app::App;
use crate::approval::{self, Decided, Decision, Outcome, Request, VoteInput, Voter};
use crate::audit::{Actor, EventKind};
use crate::engine::{self, EngineError, ExecutionReport, StepReport};
use crate::store::StoreError;

use super::execute::{self, Tasks};
use super::{refuse, Refused, Subject};

/// How long a dry run may wait for AWS before answering with the plan alone.
pub const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(8);

/// The audit subject of a refusal about `request`, with the decision it refused.
fn about(request: &Request, decision: &str) -> Subject {
    Subject::about(request).with("decision", decision)
}

/// A refusal the store's vote already audited, in the action's terms.
fn refused_by_policy(refusal: &approval::Refusal) -> Refused {
    Refused::new(refusal.code(), refusal.to_string())
}

/// Why an approval was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteRefused {
    /// hanko may not run this plan (the one planner's rule at vote time).
    OutsideReach(Refused),
    /// The approval policy refused the vote (audited by the store).
    Policy(Refused),
}

/// Records `vote` on `request_id` through the store's one vote transaction (which audits the
/// vote, or its refusal). Every vote goes through here: a click, a modal, `--approve-as`.
fn cast(
    store: &crate::store::Store,
    policy: &approval::Policy,
    request_id: Uuid,
    vote: &VoteInput,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<Decided, approval::Refusal>, StoreError> {
    store.vote(policy, request_id, vote, now)
}

/// Approves `request` as each named CLI operator in turn (`--approve-as`; none named: `$USER`),
/// under `policy`; `Err` says why it is not Approved (a refused vote, or too few approvers).
pub fn approve_as_operators(
    store: &crate::store::Store,
    policy: &approval::Policy,
    request: &Request,
    names: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<(), String>, StoreError> {
    let mut last = None;
    for name in super::cli::operators(names) {
        let vote = VoteInput {
            voter: Voter {
                actor: Actor::Cli { name: name.clone() },
                roles: vec![],
            },
            decision: Decision::Approve,
            plan_hash: request.plan.plan_hash.clone(),
        };
        match cast(store, policy, request.id, &vote, now)? {
            Ok(d) => last = Some(d.outcome),
            Err(refusal) => return Ok(Err(format!("{name}: {refusal}"))),
        }
    }
    match last {
        Some(Outcome::Approved { .. }) => Ok(Ok(())),
        Some(Outcome::Recorded { approvals, needed }) => Ok(Err(format!(
            "{approvals}/{needed} approvals: this plan needs {needed} distinct approvers; repeat --approve-as"
        ))),
        _ => Ok(Err("not approved".into())),
    }
}

/// What an approval did.
#[derive(Debug)]
pub enum Approval {
    /// Recorded; the quorum is not met yet (the store's outcome, e.g. `1/2 approvals`).
    Recorded(Outcome),
    /// The quorum is met: the request is Approved; start its [`Execution`] once the vote is shown.
    Approved(Execution),
}

/// An approved request's run, not started yet. Dropping it leaves the request Approved: it
/// runs on `/resume` or at the next start.
#[derive(Debug)]
#[must_use = "an approved request runs only once its execution is started"]
pub struct Execution {
    pub request_id: Uuid,
}

/// How a started execution went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Running in an owned task; the continuation gets its result.
    Running,
    /// Execution is paused: it runs on `/resume`.
    Paused,
}

impl Execution {
    /// Starts the run in an owned task (unless execution is paused); `then` gets its result.
    /// `shown`: see [`execute::start`].
    pub fn start<F, Fut>(
        self,
        app: &App,
        tasks: &Tasks,
        shown: Option<tokio::sync::oneshot::Receiver<()>>,
        then: F,
    ) -> Started
    where
        F: FnOnce(Result<ExecutionReport, EngineError>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        // A flag that cannot be read lets the engine decide (it checks again).
        if app.engine.is_paused().unwrap_or(false) {
            tracing::info!(request_id = %self.request_id, "approved while paused; it runs on /resume");
            return Started::Paused;
        }
        execute::start(app, tasks, self.request_id, shown, then);
        Started::Running
    }
}

/// Approves `request` as `voter`, for the plan `plan_hash`. See the module docs.
///
/// The vote is committed but **not flushed** ([`crate::store::Store::vote_unflushed`]), so an
/// approved run can start without waiting for the disk: the caller flushes the store before
/// it shows the vote to anyone, and the run flushes its first step record before its first
/// change.
pub async fn approve_unflushed(
    app: &App,
    voter: Voter,
    request: &Request,
    plan_hash: String,
) -> Result<Result<Approval, VoteRefused>, StoreError> {
    // The one planner's rule at vote time: an approval for a plan hanko may not run (outside
    // the allow-lists, or an account it cannot prove it reaches) is refused, audited.
    if let Some(refusal) = app.refusal_now(&request.plan).await {
        tracing::warn!(request_id = %request.id, %refusal, "vote refused: outside hanko's reach");
        return Ok(Err(VoteRefused::OutsideReach(refuse(
            app,
            &voter.actor,
            EventKind::VoteRefused,
            about(request, "approve"),
            Refused::new(refusal.code(), refusal.to_string()),
        ))));
    }
    let vote = VoteInput {
        voter,
        decision: Decision::Approve,
        plan_hash,
    };
    let decided = match app
        .store
        .vote_unflushed(&app.policy, request.id, &vote, app.clock.now())?
    {
        Ok(decided) => decided,
        Err(refusal) => return Ok(Err(VoteRefused::Policy(refused_by_policy(&refusal)))),
    };
    tracing::info!(request_id = %request.id, outcome = ?decided.outcome, "vote recorded");
    Ok(Ok(match decided.outcome {
        Outcome::Approved { .. } => Approval::Approved(Execution {
            request_id: request.id,
        }),
        other => Approval::Recorded(other),
    }))
}

/// The checks a rejection by `voter` gets, run dry: a refusal is audited and returned, before
/// anyone types a reason.
pub fn check_reject(
    app: &App,
    voter: &Voter,
    request: &Request,
    plan_hash: String,
) -> Result<(), Refused> {
    let probe = VoteInput {
        voter: voter.clone(),
        decision: Decision::Reject {
            reason: "(reason pending)".into(),
        },
        plan_hash,
    };
    approval::decide(&app.policy, request, &probe, app.clock.now())
        .map(|_| ())
        .map_err(|refusal| {
            refuse(
                app,
                &voter.actor,
                EventKind::VoteRefused,
                about(request, "reject"),
                refused_by_policy(&refusal),
            )
        })
}

/// Rejects `request` as `voter` with `reason` (kept in the audit log).
pub fn reject(
    app: &App,
    voter: Voter,
    request: &Request,
    plan_hash: String,
    reason: String,
) -> Result<Result<Decided, Refused>, StoreError> {
    let vote = VoteInput {
        voter,
        decision: Decision::Reject { reason },
        plan_hash,
    };
    let decided = match app
        .store
        .vote_unflushed(&app.policy, request.id, &vote, app.clock.now())?
    {
        Ok(decided) => decided,
        Err(refusal) => return Ok(Err(refused_by_policy(&refusal))),
    };
    tracing::info!(request_id = %request.id, outcome = ?decided.outcome, "request rejected");
    Ok(Ok(decided))
}

/// Refuses a non-responder the buttons that are not votes (dry run, revert), audited as
/// `CommandInvoked` naming the action.
pub fn require_responder(
    app: &App,
    voter: &Voter,
    request: &Request,
    action: &str,
) -> Result<(), Refused> {
    app.policy.authorizes(voter).map_err(|refusal| {
        refuse(
            app,
            &voter.actor,
            EventKind::CommandInvoked,
            Subject::about(request).with("action", action),
            refused_by_policy(&refusal),
        )
    })
}

/// A dry run that may start: its audit event is written.
#[derive(Debug)]
pub struct DryRun {
    plan: crate::plan::Plan,
}

/// What AWS said in a dry run.
#[derive(Debug)]
pub enum DryRunResult {
    /// One report a step: read calls, EC2 with `DryRun=true`.
    Steps(Vec<StepReport>),
    /// AWS did not answer within [`DRY_RUN_TIMEOUT`].
    TimedOut,
}

/// Checks that `voter` may dry run `request` and audits the dry run (`via`: `chat`, `cli`).
pub fn begin_dry_run(
    app: &App,
    voter: &Voter,
    request: &Request,
    via: &str,
) -> Result<Result<DryRun, Refused>, StoreError> {
    if let Err(refused) = require_responder(app, voter, request, "dry_run") {
        return Ok(Err(refused));
    }
    // It makes read and DryRun calls in the account: audited first (who, on what), and not
    // run when the audit cannot be written.
    app.store.append_audit(
        engine::dry_run_event(&request.plan, voter.actor.clone(), app.clock.now(), via)
            .request(request.id),
    )?;
    Ok(Ok(DryRun {
        plan: request.plan.clone(),
    }))
}

impl DryRun {
    /// Makes the dry run's calls, bounded by [`DRY_RUN_TIMEOUT`].
    pub async fn run(self, app: &App) -> DryRunResult {
        match tokio::time::timeout(
            DRY_RUN_TIMEOUT,
            engine::dry_run(&app.clients, &self.plan, app.clock.now()),
        )
        .await
        {
            Ok(steps) => DryRunResult::Steps(steps),
            Err(_) => DryRunResult::TimedOut,
        }
    }
}

/// A `custom_id` that is not one of hanko's (a transport's parsing found it), refused and
/// audited as `VoteRefused` with the parser's `error`.
pub fn refuse_not_ours(
    app: &App,
    actor: &Actor,
    code: &str,
    message: &str,
    error: String,
) -> Refused {
    refuse(
        app,
        actor,
        EventKind::VoteRefused,
        Subject::default().with("error", error),
        Refused::new(code, message),
    )
}

/// Loads the request a click names; one hanko does not know is refused, audited as
/// `VoteRefused` (`unknown_request`, with `message`).
pub fn load_request(
    app: &App,
    actor: &Actor,
    request_id: Uuid,
    message: &str,
) -> Result<Result<Request, Refused>, StoreError> {
    match app.store.get_request(request_id)? {
        Some(request) => Ok(Ok(request)),
        None => Ok(Err(refuse(
            app,
            actor,
            EventKind::VoteRefused,
            Subject::default().with("request", serde_json::json!(request_id)),
            Refused::new("unknown_request", message),
        ))),
    }
}
