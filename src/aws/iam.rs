//! IAM containment steps (to be written): capture, apply, verify, revert.

use super::{Captured, ErrorClass, RevertOutcome, StepCtx, StepError};
use crate::plan::Step;

fn unimplemented_step(step: &Step) -> StepError {
    StepError {
        class: ErrorClass::Other,
        operation: step.operation.clone(),
        resource: step.target.to_string(),
        code: None,
        aws_request_id: None,
        message: "this step is not implemented yet".into(),
    }
}

pub async fn capture(
    _client: &aws_sdk_iam::Client,
    step: &Step,
    _ctx: &StepCtx,
) -> Result<Captured, StepError> {
    Err(unimplemented_step(step))
}

pub async fn apply(
    _client: &aws_sdk_iam::Client,
    step: &Step,
    _captured: &Captured,
    _ctx: &StepCtx,
) -> Result<serde_json::Value, StepError> {
    Err(unimplemented_step(step))
}

pub async fn verify(
    _client: &aws_sdk_iam::Client,
    step: &Step,
    _result: &serde_json::Value,
    _ctx: &StepCtx,
) -> Result<(), StepError> {
    Err(unimplemented_step(step))
}

pub async fn revert(
    _client: &aws_sdk_iam::Client,
    step: &Step,
    _captured: &serde_json::Value,
    _result: &serde_json::Value,
    _ctx: &StepCtx,
) -> Result<RevertOutcome, StepError> {
    Err(unimplemented_step(step))
}
