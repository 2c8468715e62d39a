//! `/suppressions`: the Security Hub suppressions made through hanko, newest first: the control
//! and account, how many findings, who proposed and who approved, why (the reason typed into
//! the Suppress modal), when it ran, and whether it was lifted. A suppression is lifted by its
//! revert (the Revert button on its card, or `/revert request:<id>`), approval-gated like any
//! revert: the findings go back to the workflow status they had. Ephemeral.
//!
//! Reads the store only.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::App;
use crate::approval::{Request, RequestKind, RequestState};
use crate::plan::{Action, Target};
use crate::store::{Store, StoreError};

use super::{code, fit_lines, plain, Handled, Invocation, Reply, MAX_CONTENT};

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    match suppressions_text(&app.store) {
        Ok(text) => Handled::done(Reply::ephemeral(text)),
        Err(e) => Handled::failed("suppressions", "reading the store", &e),
    }
    .finish(app, inv)
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
        if !matches!(
            request.state,
            RequestState::Succeeded | RequestState::PartiallyFailed
        ) {
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

/// The `/suppressions` answer.
pub fn suppressions_text(store: &Store) -> Result<String, StoreError> {
    let all = suppressions(store)?;
    if all.is_empty() {
        return Ok("No Security Hub suppression was made through hanko.".to_string());
    }
    let lines: Vec<String> = all.iter().map(line).collect();
    let header = format!(
        "**Security Hub suppressions** ({}; lift one with `/revert request:<id>`, which needs approval)",
        all.len()
    );
    let (text, _) = fit_lines(&header, &lines, MAX_CONTENT, |n| format!("… {n} more"));
    Ok(text)
}

fn line(s: &Suppression) -> String {
    let r = &s.request;
    let approvers: Vec<&str> = r.approvers().iter().map(|a| a.display_name()).collect();
    let when = r
        .decided_at
        .map(|t| format!("<t:{}:f>", t.timestamp()))
        .unwrap_or_else(|| "?".to_string());
    let lift = match &s.lift {
        Lift::None => "in force".to_string(),
        Lift::Pending(id) => format!("lift proposed (request {})", code(&id.simple().to_string())),
        Lift::Done(id, at) => format!(
            "lifted {} (request {})",
            at.map(|t| format!("<t:{}:R>", t.timestamp()))
                .unwrap_or_default(),
            code(&id.simple().to_string())
        ),
    };
    format!(
        "• {} in account {}: {} finding(s) · by {} · approved by {} · {when} · why: {} · {lift} · request {}",
        code(&s.control_id),
        code(&r.plan.account_id),
        s.findings,
        plain(r.proposer.display_name()),
        if approvers.is_empty() {
            "?".to_string()
        } else {
            plain(&approvers.join(", "))
        },
        plain(&s.reason),
        code(&r.id.simple().to_string()),
    )
}
