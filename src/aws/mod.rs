//! AWS adapters: clients per account and region, containment steps, error classification,
//! read-only lookups (including CloudTrail's events of a key, [`cloudtrail`]).
//!
//! This module translates between plan steps and AWS calls; it holds no policy. It may use the
//! AWS SDK, the core types ([`crate::plan`], [`crate::execution`], [`crate::investigate`]),
//! [`crate::ids`] and [`crate::util`] (one-line messages, backoff, the deep-stack thread); it
//! never imports sled, serenity or [`crate::ingest`], and it never decides whether a step may
//! run: the engine calls it only for requests the store has recorded as approved.
//!
//! ## The step contract
//!
//! Every [`Action`] is implemented by four functions in its service module (`iam`, `ec2`, `s3`,
//! `s3control`, `securityhub`), reached through the dispatchers below:
//!
//! 1. [`capture`]: read the current state of exactly the step's target. Returns what the step is
//!    about to replace (persisted by the engine *before* `apply`) and whether the target is already
//!    in the desired state (then the engine records a no-op and does not call `apply`).
//! 2. [`apply`]: the one mutating call (or, for isolation, the documented sequence). Idempotent
//!    where AWS is not: e.g. snapshots are tagged with the request and step id and looked up by
//!    tag before creating. Returns what it left behind (snapshot ids, the policy document...).
//! 3. [`verify`]: read back; `Ok` only if the target state is observed.
//! 4. [`revert`]: restore the captured state if the resource is still as hanko left it;
//!    otherwise report the drift and change nothing. On a retry or resume
//!    (`ctx.revert_retry`), a resource already back in its captured state is `Restored`.
//!
//! With `ctx.dry_run`, `capture` still reads, and `apply` makes no mutating call: EC2 calls that
//! accept `DryRun=true` are sent that way to prove the permissions; others are only described.
//! A dry run's `verify` reads nothing back and its `revert` changes nothing
//! (`nothing_to_verify`, `dry_run_revert` below, shared by every service but EC2, which checks
//! its own).

pub mod anchors;
pub mod clients;
pub mod cloudtrail;
pub mod ec2;
pub mod error;
pub mod iam;
pub mod lookup;
pub mod s3;
pub mod s3control;
pub mod securityhub;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use clients::{AwsClients, ClientFactory};
pub use error::{AwsError, ErrorClass};

use crate::plan::{Action, Step};

/// Names shared with the planner, which owns them.
pub use crate::plan::{QUARANTINE_USER_POLICY, SESSION_REVOKE_POLICY, TAG_QUARANTINE};
/// Tag keys on snapshots: which request and which step made them (for idempotent retries).
pub const TAG_REQUEST: &str = "hanko:request";
pub const TAG_STEP: &str = "hanko:step";
/// Tag key on snapshots: the finding they are evidence for. A later request for the same
/// finding reuses that evidence instead of snapshotting again.
pub const TAG_FINDING: &str = "hanko:finding";

/// What a step runs with.
#[derive(Debug, Clone)]
pub struct StepCtx {
    pub request_id: Uuid,
    /// The finding the request is for; empty when unknown. Evidence is keyed on it.
    pub finding_id: String,
    pub step_index: usize,
    /// When the step runs: the session-revocation cut-off (`aws:TokenIssueTime`).
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    /// Who approved the request (display names), for steps that write a note (Security Hub).
    pub approvers: Vec<String>,
    /// For [`revert`]: this is a retry or a resume of a revert step whose restoring call may
    /// already have run (its record was persisted before the call). A target found back in its
    /// captured state is then [`RevertOutcome::Restored`]; on a first attempt it is drift
    /// (someone else changed it), and left alone.
    pub revert_retry: bool,
    /// For [`apply`]: the captured state it is given was read by this run just before, and
    /// this is the first attempt of the apply. A step that looks for what an earlier attempt
    /// may have made (snapshots) may then trust the capture instead of reading again; on a
    /// retry or a resume it must read again.
    pub fresh_capture: bool,
}

/// The result of [`capture`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captured {
    /// The state the step would replace; what revert restores.
    pub prior: serde_json::Value,
    /// The target is already in the step's desired state: nothing to apply.
    pub already_in_target_state: bool,
}

/// The result of [`revert`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RevertOutcome {
    /// The captured state is back.
    Restored,
    /// The resource changed since hanko left it; nothing was done. `reason` says what differs.
    Drifted { reason: String },
    /// There is nothing to revert (evidence such as snapshots is kept, or the step was a no-op).
    NothingToRevert { reason: String },
}

// Shared by the IAM, S3, S3 Control and Security Hub steps. EC2 has its own dry run
// (`ec2::DryRun`): EC2 checks one itself.

/// What a dry-run `apply` returns instead of calling AWS.
fn dry_run_result(operation: &str, parameters: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"dry_run": true, "would_call": operation, "parameters": parameters})
}

fn is_dry_run(result: &serde_json::Value) -> bool {
    result
        .get("dry_run")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// The prior state: from the result (where `apply` copies it), else from what capture stored
/// (either a whole [`Captured`] or its `prior`).
fn prior_of<'a>(
    result: &'a serde_json::Value,
    captured: &'a serde_json::Value,
) -> &'a serde_json::Value {
    if let Some(p) = result.get("prior").filter(|p| p.is_object()) {
        return p;
    }
    match captured.get("prior") {
        Some(p) if captured.get("already_in_target_state").is_some() => p,
        _ => captured,
    }
}

/// `verify` after a dry run (this one, or the one that made `result`): nothing was changed,
/// so there is nothing to read back.
fn nothing_to_verify(result: &serde_json::Value, ctx: &StepCtx) -> bool {
    ctx.dry_run || is_dry_run(result)
}

/// `revert` of a step that ran as a dry run: the outcome, said once for every service.
fn dry_run_revert(result: &serde_json::Value) -> Option<RevertOutcome> {
    is_dry_run(result).then(|| nothing("the step ran as a dry run and changed nothing"))
}

fn nothing(reason: &str) -> RevertOutcome {
    RevertOutcome::NothingToRevert {
        reason: reason.to_string(),
    }
}

/// Reads the target's current state. See the module docs.
pub async fn capture(
    clients: &AwsClients,
    step: &Step,
    ctx: &StepCtx,
) -> Result<Captured, AwsError> {
    match step.action.service() {
        "iam" => iam::capture(clients.iam(), step, ctx).await,
        "s3control" => s3control::capture(clients.s3control(), step, ctx).await,
        "s3" => s3::capture(clients.s3(), step, ctx).await,
        "securityhub" => securityhub::capture(clients.securityhub(), step, ctx).await,
        _ => ec2::capture(clients.ec2(), step, ctx).await,
    }
}

/// Makes the mutating call(s). Returns what the step left behind.
pub async fn apply(
    clients: &AwsClients,
    step: &Step,
    captured: &Captured,
    ctx: &StepCtx,
) -> Result<serde_json::Value, AwsError> {
    match step.action.service() {
        "iam" => iam::apply(clients.iam(), step, captured, ctx).await,
        "s3control" => s3control::apply(clients.s3control(), step, captured, ctx).await,
        "s3" => s3::apply(clients.s3(), step, captured, ctx).await,
        "securityhub" => securityhub::apply(clients.securityhub(), step, captured, ctx).await,
        _ => ec2::apply(clients.ec2(), step, captured, ctx).await,
    }
}

/// Reads back; `Ok(())` only when the target state is observed.
pub async fn verify(
    clients: &AwsClients,
    step: &Step,
    result: &serde_json::Value,
    ctx: &StepCtx,
) -> Result<(), AwsError> {
    match step.action.service() {
        "iam" => iam::verify(clients.iam(), step, result, ctx).await,
        "s3control" => s3control::verify(clients.s3control(), step, result, ctx).await,
        "s3" => s3::verify(clients.s3(), step, result, ctx).await,
        "securityhub" => securityhub::verify(clients.securityhub(), step, result, ctx).await,
        _ => ec2::verify(clients.ec2(), step, result, ctx).await,
    }
}

/// Restores the captured state if nothing drifted.
pub async fn revert(
    clients: &AwsClients,
    step: &Step,
    captured: &serde_json::Value,
    result: &serde_json::Value,
    ctx: &StepCtx,
) -> Result<RevertOutcome, AwsError> {
    match step.action.service() {
        "iam" => iam::revert(clients.iam(), step, captured, result, ctx).await,
        "s3control" => s3control::revert(clients.s3control(), step, captured, result, ctx).await,
        "s3" => s3::revert(clients.s3(), step, captured, result, ctx).await,
        "securityhub" => {
            securityhub::revert(clients.securityhub(), step, captured, result, ctx).await
        }
        _ => ec2::revert(clients.ec2(), step, captured, result, ctx).await,
    }
}

/// The read-only calls a step makes, for the least-privilege policy and dry-run reports.
pub fn reads_of(action: Action) -> &'static [&'static str] {
    match action {
        Action::DeactivateAccessKey => &["iam:ListAccessKeys"],
        Action::RevokeUserSessions | Action::QuarantineUser => &["iam:GetUserPolicy"],
        Action::RevokeRoleSessions => &["iam:GetRolePolicy"],
        Action::SnapshotVolumes => &["ec2:DescribeInstances", "ec2:DescribeSnapshots"],
        Action::EnableTerminationProtection
        | Action::SetShutdownBehaviorStop
        | Action::PreserveVolumes => &["ec2:DescribeInstanceAttribute", "ec2:DescribeInstances"],
        Action::IsolateInstance => &[
            "ec2:DescribeInstances",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSecurityGroups",
        ],
        Action::TagInstance => &["ec2:DescribeTags"],
        Action::DetachInstanceProfile => &["ec2:DescribeIamInstanceProfileAssociations"],
        Action::StopInstance => &["ec2:DescribeInstances"],
        Action::BlockBucketPublicAccess => &["s3:GetBucketPublicAccessBlock"],
        Action::EnforceBucketOwnership => &["s3:GetBucketOwnershipControls"],
        Action::BlockAccountPublicAccess => &["s3:GetAccountPublicAccessBlock"],
        Action::SuppressFindings => &["securityhub:GetFindings"],
    }
}
