//! `/suppressions`: the Security Hub suppressions made through hanko, newest first: the control
//! and account, how many findings, who proposed and who approved, why (the reason typed into
//! the Suppress modal), when it ran, and whether it was lifted. A suppression is lifted by its
//! revert (the Revert button on its card, or `/revert request:<id>`), approval-gated like any
//! revert: the findings go back to the workflow status they had. Ephemeral.
//!
//! Renders [`crate::actions::posture::suppressions`] (where each suppression stands: the
//! application layer reads it from the store); lifting one is [`crate::actions::posture::lift`].

/// Where a suppression stands, and the queries, as the card code and tests found them here.
use crate::actions::posture::{suppressions, Lift, Suppression};
use crate::app::App;
use crate::store::{Store, StoreError};

use super::{code, fit_lines, plain, Handled, Invocation, Reply, MAX_CONTENT};

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    match suppressions_text(&app.store) {
        Ok(text) => Handled::done(Reply::ephemeral(text)),
        Err(e) => Handled::failed("suppressions", "reading the store", &e),
    }
    .finish(app, inv)
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
