//! Security Hub steps: suppress the findings of one failing control (`BatchUpdateFindings`,
//! `Workflow.Status` SUPPRESSED with a note carrying the reason and the approvers), and lift a
//! suppression (revert: back to NEW). See the step contract in [`crate::aws`].

use super::{Captured, ErrorClass, RevertOutcome, StepCtx, StepError};
use crate::plan::Step;

pub async fn capture(
    _client: &aws_sdk_securityhub::Client,
    step: &Step,
    _ctx: &StepCtx,
) -> Result<Captured, StepError> {
    Err(not_yet(step))
}

pub async fn apply(
    _client: &aws_sdk_securityhub::Client,
    step: &Step,
    _captured: &Captured,
    _ctx: &StepCtx,
) -> Result<serde_json::Value, StepError> {
    Err(not_yet(step))
}

pub async fn verify(
    _client: &aws_sdk_securityhub::Client,
    step: &Step,
    _result: &serde_json::Value,
    _ctx: &StepCtx,
) -> Result<(), StepError> {
    Err(not_yet(step))
}

pub async fn revert(
    _client: &aws_sdk_securityhub::Client,
    step: &Step,
    _captured: &serde_json::Value,
    _result: &serde_json::Value,
    _ctx: &StepCtx,
) -> Result<RevertOutcome, StepError> {
    Err(not_yet(step))
}

fn not_yet(step: &Step) -> StepError {
    StepError::local(
        ErrorClass::Other,
        step.operation.clone(),
        step.target.to_string(),
        "not implemented yet",
    )
}
