//! Classifying AWS failures once: retryable, already contained, forbidden, not found, other.
//!
//! Decide on the modeled error code (from `ProvideErrorMetadata`), never on a message string.

use serde::{Deserialize, Serialize};

/// What kind of failure an AWS error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, dispatch failures: retry with backoff.
    Retryable,
    /// The resource is already in the state the step wants.
    AlreadyContained,
    /// AccessDenied, UnauthorizedOperation, ...: a permission is missing.
    Forbidden,
    /// The resource does not exist (any more).
    NotFound,
    /// Anything else: fail the step.
    Other,
}

/// A failed step call, with what is needed to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{operation} on {resource}: {message}")]
pub struct StepError {
    pub class: ErrorClass,
    /// The operation, as IAM names it (`iam:UpdateAccessKey`).
    pub operation: String,
    /// The resource id the call was about.
    pub resource: String,
    /// The AWS error code (`AccessDenied`, `Throttling`, ...), when AWS gave one.
    pub code: Option<String>,
    /// The AWS request id, when AWS gave one.
    pub aws_request_id: Option<String>,
    /// One sentence for people: what happened and, for Forbidden, which permission is missing.
    pub message: String,
}
