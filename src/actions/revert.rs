//! Revert: proposing the undoing of an executed containment request, written once for every
//! transport (the card's Revert button, `/revert`, `hanko revert`).
//!
//! A revert is a request of its own (`RequestKind::Revert`): it needs approval like any other,
//! by someone other than its proposer, and the engine checks each step for drift before
//! restoring. In order:
//!
//! 1. [`prepare`]: the engine builds it ([`crate::engine::Engine::revert_request`]: the steps
//!    that changed something, newest first), or says why the request cannot be reverted; a
//!    revert already open or done ([`crate::engine::Engine::existing_revert`]) refuses it;
//! 2. the one planner's rule: a revert acts in the original's account and region, so it is
//!    refused where hanko may not act ([`crate::planner::check`]);
//! 3. [`commit`]: "is a revert of it open? else create this one" is one store transaction
//!    ([`crate::store::Store::create_revert_unless_blocked`]), so two people clicking at once
//!    cannot both propose one.
//!
//! [`propose`] is the chat's path (responders only, the app's scope, announced with
//! [`Notice::FindingNew`] naming the new request, so the outbox posts its card); the CLI chains the same steps
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
    let revert = match engine.revert_request(of, proposer, now, ttl) {
        Ok(r) => r,
        Err(EngineError::Store(e)) => return Err(e),
        Err(e) => return Ok(Err(RevertRefusal::NotRevertible(e))),
    };
    match engine.existing_revert(of) {
        Ok(Some(existing)) => Ok(Err(RevertRefusal::Exists(Box::new(existing)))),
        Ok(None) => Ok(Ok(revert)),
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
    let scope = planner::scope_proven(app).await;
    if let Err(refusal) = planner::check(&scope, &revert.plan.account_id, &revert.plan.region) {
        return Ok(Err(RevertRefusal::Outside {
            refusal,
            revert: Box::new(revert),
        }));
    }
    if let Err(refused) = commit(&app.engine, &revert, now)? {
        return Ok(Err(refused));
    }
    // A new request for the finding: its card is posted like any new request's (the
    // original's card is not changed).
    app.notices.send(Notice::FindingNew {
        finding_id: revert.finding_id.clone(),
        request: Some(revert.id),
    });
    tracing::info!(request_id = %revert.id, reverts = %of, proposer = %voter.actor.key(), "revert proposed");
    Ok(Ok(revert))
}
