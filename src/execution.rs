//! Execution records: what the engine persisted about each step of a request.
//!
//! Pure core types shared by the store (which persists them), the engine (which writes them)
//! and the chat and CLI reports (which show them). A step's record is written twice at least:
//! once with its captured state *before* the mutating call, once with its outcome after
//! verification. On resume, a record in `Captured` state means the call may or may not have
//! happened; the step's `check` decides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::{Action, Target};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// The mutating call was made and the target state verified.
    Applied,
    /// The resource was already in the target state: nothing was changed.
    AlreadyInTargetState,
    /// The step failed; see `error_code` and `message`.
    Failed,
    /// The step did not run (an evidence step before it failed, or it was not needed).
    Skipped,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Applied => "applied",
            StepOutcome::AlreadyInTargetState => "already-in-target-state",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
        }
    }

    /// The step left its target contained (applied now or already so).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            StepOutcome::Applied | StepOutcome::AlreadyInTargetState
        )
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// The prior state is persisted; the mutating call may be under way.
    Captured,
    /// Finished with an outcome.
    Done,
}

/// The persisted record of one step of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Position in the plan, from 0.
    pub index: usize,
    pub action: Action,
    pub target: Target,
    pub phase: StepPhase,
    /// The state the step replaced (what revert restores), as the step captured it.
    pub captured: serde_json::Value,
    /// What the step left behind (snapshot ids, the policy document, ...), for revert's drift check.
    #[serde(default)]
    pub result: serde_json::Value,
    pub outcome: Option<StepOutcome>,
    /// The AWS error code on failure (`AccessDenied`, `Throttling`, ...).
    pub error_code: Option<String>,
    /// One sentence for people.
    pub message: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}
