//! Revert: proposing the undoing of an executed containment request, written once for every
//! transport (the card's Revert button, `/revert`, `hanko revert`).
//!
//! A revert is a request of its own (`RequestKind::Revert`): it needs approval like any other,
//! by someone other than its proposer, and the engine checks each step for drift before
//! restoring. In order:
//!
//! 1. [`prepare`]: a revert already open or done ([`crate::engine::Engine::existing_revert`])
//!    refuses it; else the engine builds it ([`crate::engine::Engine::revert_request`]: the
//!    steps that changed something, newest first), or says why the request cannot be reverted;
//! 2. the one planner's rule: a revert acts in the original's account and region, so it is
//!    refused where hanko may not act ([`crate::planner::check`]);
//! 3. [`commit`]: "is a revert of it open? else create this one" is one store transaction
//!    ([`crate::store::Store::create_revert_unless_blocked`]), so two people clicking at once
//!    cannot both propose one.
//!
//! [`propose`] is the chat's path (responders only, the app's scope, announced with
//! [`Notice::RequestChanged`], so the outbox posts its card: the one notice that does so for a
//! person's proposal whatever its finding is, a posture group included); the CLI chains the same steps
//! under its own scope ([`super::cli`]). The transport words the outcome and audits a refusal
//! its own way (a button click through [`super::refuse`], a command in its `CommandInvoked`
//! record). May use the app, the engine, the store and the planner.

use uuid::Uuid;

use crate::app::App;
use crate::approval::{self, Request, Voter};
use crate::audit::Actor;
use crate::engine::{blocking_revert, Engine, EngineError};
use crate::notices::Notice;
use crate::planner;
use crate::store::StoreError;

/// Why no revert was proposed.
#[derive(Debug)]
pub enum RevertRefusal {
    /// The proposer is not a responder.
    NotResponder(approval::Refusal),
    /// The request cannot be reverted (not stored, not executed, itself a revert, nothing
    /// changed): the engine's reason.
    NotRevertible(EngineError),
    /// A revert of it is open, or one already succeeded.
    Exists(Box<Request>),
    /// hanko may not act where the original did.
    Outside {
        refusal: planner::Refusal,
        revert: Box<Request>,
    },
}

impl RevertRefusal {
    /// The refusal's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RevertRefusal::NotResponder(r) => r.code(),
            RevertRefusal::NotRevertible(EngineError::NoSuchRequest(_)) => "request_not_found",
            RevertRefusal::NotRevertible(_) => "not_revertible",
            RevertRefusal::Exists(_) => "revert_exists",
            RevertRefusal::Outside { refusal, .. } => refusal.code(),
        }
    }
}

/// Builds the revert of `of`, proposed by `proposer`, unless it cannot be reverted or a revert
/// of it already blocks another. A store failure is the error; nothing is written.
pub fn prepare(
    engine: &Engine,
    proposer: Actor,
    of: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    ttl: chrono::Duration,
) -> Result<Result<Request, RevertRefusal>, StoreError> {
    // An open or successful revert is named first, whatever else is true of the original.
    match engine.existing_revert(of) {
        Ok(Some(existing)) => return Ok(Err(RevertRefusal::Exists(Box::new(existing)))),
        Ok(None) => {}
        Err(EngineError::Store(e)) => return Err(e),
        Err(e) => return Ok(Err(RevertRefusal::NotRevertible(e))),
    }
    match engine.revert_request(of, proposer, now, ttl) {
        Ok(r) => Ok(Ok(r)),
        Err(EngineError::Store(e)) => Err(e),
        Err(e) => Ok(Err(RevertRefusal::NotRevertible(e))),
    }
}

/// Stores `revert` unless another revert of the same request got there first (checked and
/// written in one transaction).
pub fn commit(
    engine: &Engine,
    revert: &Request,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<(), RevertRefusal>, StoreError> {
    let approval::RequestKind::Revert { of } = revert.kind else {
        return Ok(Err(RevertRefusal::NotRevertible(
            EngineError::NotRevertible {
                id: revert.id,
                reason: "it is not a revert".into(),
            },
        )));
    };
    let blocks = |r: &Request| blocking_revert(std::slice::from_ref(r), of).is_some();
    Ok(engine
        .store()
        .create_revert_unless_blocked(revert, now, blocks)?
        .map(|_| ())
        .map_err(|existing| RevertRefusal::Exists(Box::new(existing))))
}

/// A responder proposes the revert of `of` from chat. See the module docs.
pub async fn propose(
    app: &App,
    voter: &Voter,
    of: Uuid,
) -> Result<Result<Request, RevertRefusal>, StoreError> {
    if let Err(refusal) = app.policy.authorizes(voter) {
        return Ok(Err(RevertRefusal::NotResponder(refusal)));
    }
    let now = app.clock.now();
    let revert = match prepare(&app.engine, voter.actor.clone(), of, now, app.policy.ttl)? {
        Ok(r) => r,
        Err(refused) => return Ok(Err(refused)),
    };
    // A revert acts where the original did: the one planner's rule applies to it too.
    let scope = app.scope_proven().await;
    if let Err(refusal) = planner::check(&scope, &revert.plan.account_id, &revert.plan.region) {
        return Ok(Err(RevertRefusal::Outside {
            refusal,
            revert: Box::new(revert),
        }));
    }
    if let Err(refused) = commit(&app.engine, &revert, now)? {
        return Ok(Err(refused));
    }
    // A new request, proposed by a person: the outbox posts its card whatever the finding is
    // (a GuardDuty finding, a manual one, a posture group); the original's card is unchanged.
    app.notices
        .send(Notice::RequestChanged { request: revert.id });
    tracing::info!(request_id = %revert.id, reverts = %of, proposer = %voter.actor.key(), "revert proposed");
    Ok(Ok(revert))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{Policy, RequestKind, RequestState};
    use crate::plan::Plan;
    use crate::store::Store;
    use chrono::{TimeZone, Utc};

    fn revert_of(of: Uuid) -> Request {
        let plan = Plan::new(
            "f-1".into(),
            "123456789012".into(),
            "us-east-1".into(),
            false,
            Vec::new(),
            Vec::new(),
        );
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        Request::new(
            RequestKind::Revert { of },
            plan,
            Actor::System,
            now,
            Policy::default().ttl,
        )
    }

    fn blocks(of: Uuid) -> impl Fn(&Request) -> bool {
        move |r: &Request| blocking_revert(std::slice::from_ref(r), of).is_some()
    }

    #[test]
    fn one_open_revert_at_a_time_checked_and_created_in_one_transaction() {
        let store = Store::open_temporary().unwrap();
        let of = Uuid::new_v4();
        let now = Utc::now();
        let first = revert_of(of);
        assert!(store
            .create_revert_unless_blocked(&first, now, blocks(of))
            .unwrap()
            .is_ok());
        // A second one while the first is open: refused, naming the first; nothing written.
        let len = store.audit_len();
        let second = revert_of(of);
        let existing = store
            .create_revert_unless_blocked(&second, now, blocks(of))
            .unwrap()
            .unwrap_err();
        assert_eq!(existing.id, first.id);
        assert!(store.get_request(second.id).unwrap().is_none());
        assert_eq!(store.audit_len(), len);
        // Once the first is closed without success, another may be proposed.
        let mut rejected = store.get_request(first.id).unwrap().unwrap();
        rejected.state = RequestState::Rejected;
        store
            .update_request(&rejected, RequestState::Pending, None)
            .unwrap();
        assert!(store
            .create_revert_unless_blocked(&second, now, blocks(of))
            .unwrap()
            .is_ok());
    }

    #[test]
    fn racing_proposers_create_exactly_one_revert() {
        let store = Store::open_temporary().unwrap();
        let of = Uuid::new_v4();
        let created: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = store.clone();
                    s.spawn(move || {
                        store
                            .create_revert_unless_blocked(&revert_of(of), Utc::now(), blocks(of))
                            .unwrap()
                            .is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(created, 1);
        assert!(store.verify_audit().is_ok());
    }
}
