//! Escalate: remind the responders of a Pending request nobody answers, before it expires.
//!
//! Two reminders a request, each sent once:
//!
//! 1. after `notify.escalate_after` (default 10 minutes) with **no vote at all**;
//! 2. at **half the request's time to live**, while it is still Pending (a vote that did not
//!    reach the quorum does not stop it). When half the time to live comes no later than the
//!    first reminder, only the first is sent: two reminders at once are noise.
//!
//! Reminders go out only when there is someone to escalate to (`notify.escalate_roles`, by
//! default `notify.page_roles`), and only for requests that have something to approve (not
//! notify-only) and a card of their own in the channel (not a line of a burst digest): the reminder is a reply to that card. [`due`] claims each reminder in the store
//! before it is returned ([`crate::store::Store::claim_reminder`]), so a reminder goes out once
//! across restarts and sweeps; the transport posts it, then calls [`sent`] (marks it sent and
//! audits `RequestEscalated`) or [`failed`] (gives the claim back, the next sweep tries again).
//!
//! [`oldest_unanswered`] is what `/status` shows. `now` is the app's clock, read by the caller.
//! May use the app, the store and the core; no Discord or AWS I/O.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::app::App;
use crate::approval::{Request, RequestState};
use crate::audit::{Actor, EventKind, NewEvent};
use crate::finding::SeverityLabel;
use crate::posture::{Group, GroupKey, PostureSeverity};
use crate::store::{CardKey, CardLocation, StoreError};

/// The first reminder: no vote after `notify.escalate_after`.
pub const FIRST: u8 = 1;
/// The second reminder: half the time to live gone.
pub const SECOND: u8 = 2;

/// A reminder [`due`] claimed: post it, then call [`sent`] or [`failed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub request: Request,
    /// [`FIRST`] or [`SECOND`].
    pub n: u8,
    /// How long the request has waited.
    pub waited: Duration,
    /// The severity of what the request is about (a posture request: its control's).
    pub severity: SeverityLabel,
    /// Approvals the policy asks for, and those recorded.
    pub needed: u32,
    pub approvals: u32,
    /// The message id of the card the reminder replies to.
    pub card_message: u64,
}

/// When reminder `n` of `request` is due; `None` when it is never sent.
pub fn due_at(app: &App, request: &Request, n: u8) -> Option<DateTime<Utc>> {
    let first = request.created_at + app.settings.notify.escalate_after;
    let half = request.created_at + (request.expires_at - request.created_at) / 2;
    match n {
        FIRST => Some(first),
        SECOND if half > first => Some(half),
        _ => None,
    }
}

/// Claims and returns the reminders due at `now`, oldest request first.
pub fn due(app: &App, now: DateTime<Utc>) -> Result<Vec<Reminder>, StoreError> {
    let mut out = Vec::new();
    // Nobody to escalate to (no `escalate_roles`, no `page_roles`): no reminder, which would
    // ping no one; `/status` still names the oldest unanswered request.
    if app.settings.notify.escalate_roles.is_empty() {
        return Ok(out);
    }
    // Walked one at a time: after a burst tens of thousands wait, and few are due.
    app.store
        .each_request_in_states(&[RequestState::Pending], |request| {
            if request.plan.is_notify_only() || request.expires_at <= now {
                return Ok(());
            }
            // A card of its own to reply to: none yet (asked again at the next sweep), or a line of
            // a burst digest, which is not reminded request by request (thousands of replies).
            let card_message = match app.store.card_location(&CardKey::Request(request.id))? {
                Some(CardLocation::Message(id)) => id,
                _ => return Ok(()),
            };
            for n in [FIRST, SECOND] {
                let Some(at) = due_at(app, &request, n) else {
                    continue;
                };
                let eligible = match n {
                    FIRST => request.votes.is_empty(),
                    _ => true,
                };
                // The claim is the check: claimed or sent before, it is not claimed again.
                if at > now || !eligible || !app.store.claim_reminder(request.id, n)? {
                    continue;
                }
                out.push(Reminder {
                    n,
                    waited: now - request.created_at,
                    severity: severity_of(app, &request)?,
                    needed: app.policy.needed(&request.plan),
                    approvals: request.approvers().len() as u32,
                    card_message,
                    request: request.clone(),
                });
            }
            Ok(())
        })?;
    out.sort_by(|a, b| {
        (a.request.created_at, a.request.id, a.n).cmp(&(b.request.created_at, b.request.id, b.n))
    });
    Ok(out)
}

/// The reminder was posted (`message_id`, mentioning `roles`): marks it sent and audits
/// `RequestEscalated`.
pub fn sent(
    app: &App,
    reminder: &Reminder,
    roles: &[u64],
    message_id: u64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let ev = NewEvent::new(now, Actor::System, EventKind::RequestEscalated)
        .finding(reminder.request.finding_id.clone())
        .request(reminder.request.id)
        .detail(json!({
            "reminder": reminder.n,
            "waited_seconds": reminder.waited.num_seconds(),
            "severity": reminder.severity.as_str(),
            "approvals": reminder.approvals,
            "needed": reminder.needed,
            "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(),
            "message_id": message_id.to_string(),
            "expires_at": reminder.request.expires_at,
        }));
    app.store
        .record_reminder_sent(reminder.request.id, reminder.n, ev)?;
    app.metrics.record_escalation();
    Ok(())
}

/// The reminder could not be posted: the claim goes back, the next sweep tries again.
pub fn failed(app: &App, reminder: &Reminder) {
    if let Err(e) = app.store.release_reminder(reminder.request.id, reminder.n) {
        tracing::error!(request_id = %reminder.request.id, reminder = reminder.n, error = %e, "a reminder claim could not be released; it will not be retried");
    }
}

/// The Pending request (with something to approve) that has waited longest with no vote, and
/// how long; `None` when every Pending request has a vote.
pub fn oldest_unanswered(
    app: &App,
    now: DateTime<Utc>,
) -> Result<Option<(Request, Duration)>, StoreError> {
    // Walked one at a time, keeping the oldest so far.
    let mut oldest: Option<Request> = None;
    app.store
        .each_request_in_states(&[RequestState::Pending], |r| {
            if !r.plan.is_notify_only()
                && r.votes.is_empty()
                && r.expires_at > now
                && oldest
                    .as_ref()
                    .map_or(true, |o| (r.created_at, r.id) < (o.created_at, o.id))
            {
                oldest = Some(r);
            }
            Ok(())
        })?;
    Ok(oldest.map(|r| {
        let waited = now - r.created_at;
        (r, waited)
    }))
}

/// The severity of what `request` is about: its finding's, or its posture group's.
pub fn severity_of(app: &App, request: &Request) -> Result<SeverityLabel, StoreError> {
    if let Some(stored) = app.store.get_finding(&request.finding_id)? {
        return Ok(stored.finding.severity_label);
    }
    let group = match GroupKey::decode(&request.finding_id) {
        Some(key) => Group::of(&app.store.control_findings(&key)?),
        None => None,
    };
    Ok(match group.map(|g| g.severity) {
        Some(PostureSeverity::Critical) => SeverityLabel::Critical,
        Some(PostureSeverity::High) => SeverityLabel::High,
        Some(PostureSeverity::Medium) => SeverityLabel::Medium,
        _ => SeverityLabel::Low,
    })
}
