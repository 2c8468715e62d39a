//! Expire: Pending requests whose `expires_at` has passed become Expired (the system's action
//! on what nobody approved in time).
//!
//! [`sweep`] runs in `hanko run` at start-up and then every [`SWEEP_INTERVAL`] ([`sweep_now`],
//! from the request lifecycle task of [`crate::run`]). Each due request is expired in its own
//! transaction with a `RequestExpired` audit event ([`crate::store::Store::expire_request`]) and announced with
//! [`Notice::RequestChanged`], so the outbox edits its card: the voting buttons go, and the
//! card says it expired unapproved, and when.
//!
//! Nothing waits for the sweep to be correct: between sweeps, [`Request::is_live`] already
//! treats a Pending request past `expires_at` as not live (so `/contain`, a recurring finding
//! and the posture buttons may propose again), and `approval::decide` refuses votes on it. The
//! sweep makes the store and the channel say so.
//!
//! `now` is passed in (the app's [`crate::clock::Clock`], read on every sweep, never cached).
//! May use the app, the store and the notices; no Discord or AWS I/O.
//!
//! [`Request::is_live`]: crate::approval::Request::is_live

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::App;
use crate::approval::RequestState;
use crate::notices::{Notice, Notices};
use crate::store::{Store, StoreError};

/// How often `hanko run` sweeps (after the sweep at start-up).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Expires every Pending request with `expires_at <= now`, audits and announces each; returns
/// the ids expired, oldest request first.
pub fn sweep(
    store: &Store,
    notices: &Notices,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let mut expired = Vec::new();
    // Walked one at a time, keeping only the due ones: after a burst tens of thousands wait.
    let mut due = Vec::new();
    store.each_request_in_states(&[RequestState::Pending], |request| {
        if request.expires_at <= now {
            due.push((request.created_at, request.id, request.expires_at));
        }
        Ok(())
    })?;
    due.sort();
    for (_, id, expires_at) in due {
        // `None`: a vote or another sweep changed it since it was listed.
        if let Some(done) = store.expire_request(id, now)? {
            tracing::info!(request_id = %done.id, finding_id = %done.finding_id, %expires_at, "request expired unapproved");
            notices.send(Notice::RequestChanged { request: done.id });
            expired.push(done.id);
        }
    }
    Ok(expired)
}

/// Expires the Pending requests whose time is up now (the app's clock), audited and
/// announced; a failure is logged (the next sweep tries again).
pub fn sweep_now(app: &App) {
    match sweep(&app.store, &app.notices, app.clock.now()) {
        Ok(expired) if !expired.is_empty() => {
            tracing::info!(
                requests = expired.len(),
                "expired requests nobody approved in time"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "the expiry sweep failed; it runs again in a minute"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{Policy, Request, RequestKind};
    use crate::audit::{Actor, AuditQuery, EventKind};
    use crate::plan::{Action, Plan, Step, Target};
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn request(finding: &str, at: DateTime<Utc>) -> Request {
        let step = Step::new(
            Action::DeactivateAccessKey,
            Target::AccessKey {
                user_name: "alice".into(),
                access_key_id: "AKIAEXAMPLE".into(),
            },
            serde_json::json!({ "AccessKeyId": "AKIAEXAMPLE" }),
        );
        let plan = Plan::new(
            finding.into(),
            "123456789012".into(),
            "us-east-1".into(),
            false,
            vec![step],
            vec![],
        );
        Request::new(
            RequestKind::Contain,
            plan,
            Actor::System,
            at,
            Policy::default().ttl,
        )
    }

    #[test]
    fn only_pending_requests_past_their_expiry_are_expired_audited_and_announced() {
        let store = Store::open_temporary().unwrap();
        let notices = Notices::default();
        let mut rx = notices.subscribe();
        let old = request("f-old", t(0));
        let fresh = request("f-fresh", t(60));
        let mut approved = request("f-approved", t(0));
        store.create_request(&old, t(0)).unwrap();
        store.create_request(&fresh, t(60)).unwrap();
        store.create_request(&approved, t(0)).unwrap();
        approved.state = RequestState::Approved;
        store
            .update_request(&approved, RequestState::Pending, None)
            .unwrap();

        // Four hours after the first two: exactly at `expires_at` of `old`.
        let now = t(240);
        assert_eq!(sweep(&store, &notices, now).unwrap(), vec![old.id]);
        let stored = store.get_request(old.id).unwrap().unwrap();
        assert_eq!(stored.state, RequestState::Expired);
        assert_eq!(stored.decided_at, Some(now));
        assert_eq!(
            store.get_request(fresh.id).unwrap().unwrap().state,
            RequestState::Pending
        );
        assert_eq!(
            store.get_request(approved.id).unwrap().unwrap().state,
            RequestState::Approved,
            "an approved request is the engine's, not the sweeper's"
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Notice::RequestChanged { request: old.id }
        );
        assert!(rx.try_recv().is_err());
        let events = store
            .query_audit(&AuditQuery {
                request_id: Some(old.id),
                kind: Some(EventKind::RequestExpired),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].actor, Actor::System);
        assert_eq!(events[0].detail["code"], "ttl_elapsed");

        // A second sweep finds nothing more to do and writes nothing.
        let len = store.audit_len();
        assert!(sweep(&store, &notices, now).unwrap().is_empty());
        assert_eq!(store.audit_len(), len);
        assert!(store.verify_audit().is_ok());
    }
}
