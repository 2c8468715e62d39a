//! `/finding <id>`: posts the finding's card in the channel again (public, so the team sees
//! it), with its buttons when a request is pending. Autocomplete offers recent finding ids.
//!
//! The card is the one the chat adapter posts ([`cards::request_card`] for the finding's
//! pending request, else its latest request; [`cards::finding_card`] when it never had one),
//! rendered from the store, so buttons on it work exactly like the original's.
//!
//! Uses the store, the planner and the pure card renderer; no Discord or AWS I/O.

use crate::app::App;
use crate::approval::{Request, RequestKind, RequestState};
use crate::discord::cards;

use super::{choice, code, Handled, Invocation, Reply, MAX_CHOICES};

pub const OPTION_ID: &str = "id";
/// How many of the most recently ingested findings autocomplete looks through.
pub const AUTOCOMPLETE_WINDOW: usize = 500;

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    let Some(id) = inv.str_opt(OPTION_ID) else {
        return Handled::refused(
            "options",
            "Give the id of a finding: /finding id:<finding id> (start typing to search).",
        );
    };
    let stored = match app.store.get_finding(id) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Handled::refused(
                "finding_not_found",
                format!(
                    "No finding with id {} is stored; /findings lists the recent ones.",
                    code(id)
                ),
            )
        }
        Err(e) => return Handled::failed("finding", "reading the finding", &e),
    };
    let finding = &stored.finding;
    let requests = match app.store.requests_for_finding(&finding.id) {
        Ok(r) => r,
        Err(e) => return Handled::failed("finding", "reading the finding's requests", &e),
    };
    let shown = card_request(&requests);
    let card = match shown {
        Some(req) => {
            let records = match app.store.step_records(req.id) {
                Ok(r) => r,
                Err(e) => return Handled::failed("finding", "reading the step records", &e),
            };
            cards::request_card(finding, req, &records, app.policy.needed(&req.plan))
        }
        None => cards::finding_card(finding, &app.plan_in(finding)),
    };
    let others: Vec<String> = requests
        .iter()
        .rev()
        .filter(|r| Some(r.id) != shown.map(|s| s.id))
        .map(|r| {
            let kind = match r.kind {
                RequestKind::Contain => "",
                RequestKind::Revert { .. } => " (revert)",
            };
            format!("`{}` {}{kind}", r.id.simple(), r.state)
        })
        .collect();
    let content = if others.is_empty() {
        String::new()
    } else {
        super::fit_lines(
            "Other requests for this finding, newest first:",
            &others,
            super::MAX_CONTENT,
            |n| format!("… {n} more; /audit finding:<id> has them all"),
        )
        .0
    };
    let mut handled = Handled::done(Reply::Message {
        content,
        cards: vec![card],
        ephemeral: false,
        attachment: None,
    })
    .finding(finding.id.clone());
    if let Some(req) = shown {
        handled = handled.request(req.id);
    }
    handled
}

/// The request whose card is shown: the newest pending one (its buttons still work), else the
/// newest of any state. `requests` is oldest first.
pub fn card_request(requests: &[Request]) -> Option<&Request> {
    requests
        .iter()
        .rev()
        .find(|r| r.state == RequestState::Pending)
        .or_else(|| requests.last())
}

/// Finding ids whose id, type, or a segment of the type (`IAMUser`, `MaliciousIPCaller`)
/// starts with what is typed, case-insensitively; newest first, at most 25.
pub async fn autocomplete(app: &App, inv: &Invocation) -> Reply {
    let typed = inv
        .focused
        .as_deref()
        .and_then(|f| inv.options.get(f))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim()
        .to_lowercase();
    let recent = match app.store.recent_findings(AUTOCOMPLETE_WINDOW) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "finding autocomplete could not read the store");
            return Reply::Choices(Vec::new());
        }
    };
    let choices = recent
        .iter()
        .map(|s| &s.finding)
        .filter(|f| matches_typed(&f.id, &f.finding_type, &typed))
        .filter_map(|f| {
            let sample = if f.sample { "[SAMPLE] " } else { "" };
            choice(
                &format!(
                    "{sample}{} {:.1} · {} · {}",
                    f.severity_label.as_str(),
                    f.severity,
                    f.finding_type,
                    f.id
                ),
                &f.id,
            )
        })
        .take(MAX_CHOICES)
        .collect();
    Reply::Choices(choices)
}

/// Does `typed` (lowercase) start the id, the type, or a segment of the type?
pub fn matches_typed(id: &str, finding_type: &str, typed: &str) -> bool {
    if typed.is_empty() {
        return true;
    }
    let t = finding_type.to_lowercase();
    id.to_lowercase().starts_with(typed)
        || t.starts_with(typed)
        || t.split([':', '/', '.', '!'])
            .any(|seg| !seg.is_empty() && seg.starts_with(typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_matches_ids_types_and_type_segments() {
        let id = "a1b2c3";
        let t = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS";
        for typed in [
            "",
            "a1",
            "a1b2c3",
            "unauth",
            "iamuser",
            "instancecred",
            "outsideaws",
        ] {
            assert!(matches_typed(id, t, typed), "{typed}");
        }
        for typed in ["b2", "credential", "a1b2c3d", "iamuserx"] {
            assert!(!matches_typed(id, t, typed), "{typed}");
        }
    }
}
