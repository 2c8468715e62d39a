//! Keeps the stored control findings in step with what hanko's own Security Hub steps did to
//! them: after a suppression (or its lift) runs, the posture store, the posture card and
//! `/score` show it at once.
//!
//! Why this exists: Security Hub's `BatchUpdateFindings` does not change a finding's
//! `UpdatedAt` (API reference: "Updates from `BatchUpdateFindings` do not affect the value of
//! `UpdatedAt` for a finding"), and the posture poll reads only findings updated since its
//! cursor. Without this, a suppression never reaches the store: the card keeps saying
//! "failing" with Suppress and Acknowledge, `/score` keeps counting the control, and a click on
//! the stale Acknowledge would send NOTIFIED for the suppressed findings, lifting an approved
//! suppression with no approval.
//!
//! [`after_execution`] runs once an execution of a request with a `SuppressFindings` step ends
//! (every execution, from a button, a slash command, the CLI or the resume at start-up, goes
//! through [`crate::actions::execute`]):
//!
//! 1. the step's own result says which findings it set to which status (a suppression's
//!    `Processed` and `AlreadySuppressed` are SUPPRESSED; a lift's result is the status each
//!    finding is back to); those are written to the stored control findings, without any call;
//! 2. the findings are then re-read by `Id` from Security Hub (`GetFindings`, an `Id` filter)
//!    and stored as Security Hub holds them: the truth, also for a lift that left a moved
//!    finding alone. A failed re-read is logged; step 1 stands until the next read;
//! 3. the group is announced (`Notice::PostureChanged`), so the outbox edits its card; a
//!    pending request of a group where nothing fails any more is superseded, as after a poll;
//!    the day's scores are recorded again.
//!
//! It is application logic: it uses the app (store, clients, notices), the posture core and the
//! Security Hub adapter; it never imports serenity or sled.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::app::App;
use crate::approval::Request;
use crate::aws::securityhub::{self, FindingIdentifier};
use crate::execution::StepRecord;
use crate::notices::Notice;
use crate::pipeline;
use crate::plan::Action;
use crate::posture::{self, GroupKey, WorkflowStatus};
use crate::store::StoreError;

/// Why the stored control findings could not be brought in step (Security Hub failures are
/// not errors here: they are logged and reported in [`Synced::reread_error`]).
#[derive(Debug, thiserror::Error)]
pub enum PostureSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`after_execution`] did for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub group: GroupKey,
    /// Stored findings whose workflow was set from the step's own result.
    pub from_result: usize,
    /// Stored findings that changed when re-read from Security Hub.
    pub from_reread: usize,
    /// Why the re-read failed, if it did (one sentence, no secrets).
    pub reread_error: Option<String>,
}

/// Brings the stored control findings of `request_id`'s posture group in step with what its
/// Security Hub steps did, and announces the group. `None` when the request has no
/// `SuppressFindings` step (a containment, a remediation) or names no posture group.
pub async fn after_execution(
    app: &App,
    request_id: Uuid,
) -> Result<Option<Synced>, PostureSyncError> {
    let Some(request) = app.store.get_request(request_id)? else {
        return Ok(None);
    };
    let Some(group) = suppression_group(&request) else {
        return Ok(None);
    };
    let records = app.store.step_records(request.id)?;
    let told = statuses_from_records(&records);
    let from_result = store_statuses(app, &group, &told)?;
    app.store.flush()?;

    let identifiers = identifiers_of(&request);
    let (from_reread, reread_error) = match reread(app, &group, &identifiers).await {
        Ok(n) => (n, None),
        Err(message) => {
            tracing::warn!(request_id = %request.id, group = %group.encode(), error = %message,
                "re-reading the suppressed findings failed; the card shows the step's result");
            (0, Some(message))
        }
    };
    let now = app.clock.now();
    pipeline::posture_changed(&app.store, &app.notices, &group, now)?;
    app.store.record_scores(now)?;
    app.store.flush()?;
    app.notices.send(Notice::PostureChanged {
        group: group.encode(),
    });
    tracing::info!(request_id = %request.id, group = %group.encode(), from_result, from_reread,
        "posture findings brought in step with the suppression's execution");
    Ok(Some(Synced {
        group,
        from_result,
        from_reread,
        reread_error,
    }))
}

/// The posture group of a request with a `SuppressFindings` step (a suppression or its lift).
fn suppression_group(request: &Request) -> Option<GroupKey> {
    request
        .plan
        .steps
        .iter()
        .any(|s| s.action == Action::SuppressFindings)
        .then(|| GroupKey::decode(&request.finding_id))
        .flatten()
}

/// The finding identifiers the request's Security Hub steps name.
fn identifiers_of(request: &Request) -> Vec<FindingIdentifier> {
    let mut out: Vec<FindingIdentifier> = request
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::SuppressFindings)
        .filter_map(|s| s.parameters.get("FindingIdentifiers").cloned())
        .filter_map(|v| serde_json::from_value::<Vec<FindingIdentifier>>(v).ok())
        .flatten()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `Id` → workflow status, as the successful Security Hub step records say they left them:
/// a suppression's `Processed` and `AlreadySuppressed` are SUPPRESSED; a lift's result is the
/// status map it restored (`WorkflowStatus`); a step that found everything already done names
/// what it observed (`observed.WorkflowStatus`).
pub fn statuses_from_records(records: &[StepRecord]) -> BTreeMap<String, WorkflowStatus> {
    let mut out = BTreeMap::new();
    for r in records {
        if r.action != Action::SuppressFindings || !r.outcome.is_some_and(|o| o.is_success()) {
            continue;
        }
        let result = &r.result;
        if let Some(processed) = result.get("Processed").and_then(Value::as_array) {
            let already = result
                .get("AlreadySuppressed")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for id in processed.iter().chain(already).filter_map(Value::as_str) {
                out.insert(id.to_string(), WorkflowStatus::Suppressed);
            }
            continue;
        }
        let map = result
            .get("WorkflowStatus")
            .or_else(|| result.pointer("/observed/WorkflowStatus"))
            .and_then(Value::as_object);
        for (id, status) in map.into_iter().flatten() {
            if let Some(status) = status.as_str().and_then(WorkflowStatus::parse) {
                out.insert(id.clone(), status);
            }
        }
    }
    out
}

/// Sets the workflow of the stored findings of `group` named in `statuses`; returns how many
/// changed. `UpdatedAt` stays as Security Hub has it (the update did not move it).
fn store_statuses(
    app: &App,
    group: &GroupKey,
    statuses: &BTreeMap<String, WorkflowStatus>,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for mut f in app.store.control_findings(group)? {
        let Some(status) = statuses.get(&f.id) else {
            continue;
        };
        if f.workflow != *status {
            f.workflow = *status;
            if app.store.upsert_control_finding(&f)? {
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// Re-reads `identifiers` from Security Hub in the group's region and stores those of the
/// group; returns how many stored findings changed, or why the read failed.
async fn reread(
    app: &App,
    group: &GroupKey,
    identifiers: &[FindingIdentifier],
) -> Result<usize, String> {
    if identifiers.is_empty() {
        return Ok(0);
    }
    let clients = app
        .clients
        .clients(&group.account_id, &group.region)
        .await
        .map_err(|e| e.to_string())?;
    let docs = securityhub::read_findings(
        clients.securityhub(),
        identifiers,
        crate::ingest::securityhub::asff_to_json,
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut changed = 0;
    for doc in docs {
        match posture::parse_control_finding(&doc, "$", &group.region) {
            Ok(f) if f.group_key() == *group => {
                if app
                    .store
                    .upsert_control_finding(&f)
                    .map_err(|e| e.to_string())?
                {
                    changed += 1;
                }
            }
            Ok(f) => tracing::warn!(finding = ?f.id, group = %group.encode(),
                "a re-read finding belongs to another group; not stored"),
            Err(e) => tracing::warn!(error = %e, group = %group.encode(),
                "a re-read control finding does not parse; not stored"),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::{StepOutcome, StepPhase};
    use crate::plan::Target;
    use serde_json::json;

    fn record(outcome: StepOutcome, result: Value) -> StepRecord {
        StepRecord {
            index: 0,
            action: Action::SuppressFindings,
            target: Target::ControlFindings {
                control_id: "S3.8".into(),
                finding_ids: vec!["a".into(), "b".into(), "c".into()],
            },
            phase: StepPhase::Done,
            captured: Value::Null,
            result,
            outcome: Some(outcome),
            error_code: None,
            message: None,
            started_at: chrono::Utc::now(),
            finished_at: None,
        }
    }

    #[test]
    fn a_suppression_result_names_its_findings_suppressed() {
        let r = record(
            StepOutcome::Applied,
            json!({"Processed": ["a", "b"], "AlreadySuppressed": ["c"], "Suppressed": []}),
        );
        let s = statuses_from_records(&[r]);
        assert_eq!(s.len(), 3);
        assert!(s.values().all(|w| *w == WorkflowStatus::Suppressed));
    }

    #[test]
    fn a_lift_result_names_the_restored_statuses_and_a_failed_step_names_nothing() {
        let lift = record(
            StepOutcome::Applied,
            json!({"ControlId": "S3.8", "WorkflowStatus": {"a": "NEW", "b": "NOTIFIED", "c": "SUPPRESSED"}}),
        );
        let s = statuses_from_records(&[lift]);
        assert_eq!(s["a"], WorkflowStatus::New);
        assert_eq!(s["b"], WorkflowStatus::Notified);
        assert_eq!(s["c"], WorkflowStatus::Suppressed);

        let observed = record(
            StepOutcome::AlreadyInTargetState,
            json!({"already_in_target_state": true, "observed": {"WorkflowStatus": {"a": "SUPPRESSED"}}}),
        );
        assert_eq!(
            statuses_from_records(&[observed])["a"],
            WorkflowStatus::Suppressed
        );

        let failed = record(StepOutcome::Failed, json!({"Processed": ["a"]}));
        assert!(statuses_from_records(&[failed]).is_empty());
    }
}
