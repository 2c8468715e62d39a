//! Pause and resume: stop the engine from starting approved requests, and let it again.
//!
//! Admins only (`responders.admin_roles`; none configured means nobody may, from chat). The
//! flag and its audit event (`ExecutionPaused` / `ExecutionResumed`, with the reason) are
//! written together by [`crate::engine::Engine::set_paused`]. Pending requests stay open for
//! votes; a request already executing finishes its steps. Resuming announces
//! [`Notice::ExecutionResumed`], so `hanko run`'s lifecycle task starts every Approved request
//! ([`super::execute::start_approved`]).
//!
//! The outcome says what changed; the transport words it. May use the app, the engine and the
//! notices.

use crate::app::App;
use crate::approval::{RequestState, Voter};
use crate::audit::Actor;
use crate::engine::EngineError;
use crate::notices::Notice;

/// The rule a refusal names when the actor is not an admin.
pub const RULE_ADMIN: &str = "responders.admin_roles";

/// Why pausing or resuming was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdmin {
    /// `responders.admin_roles` is empty: nobody may, from chat.
    NoAdminRole,
    /// The actor has none of the admin roles.
    NotInRole,
}

/// Does `who` hold an admin role? Fail closed: no role configured means nobody.
pub fn require_admin(app: &App, who: &Voter) -> Result<(), NotAdmin> {
    let admin = &app.settings.responders.admin_roles;
    if admin.is_empty() {
        return Err(NotAdmin::NoAdminRole);
    }
    let is_discord = matches!(who.actor, Actor::Discord { .. });
    if is_discord && who.roles.iter().any(|r| admin.contains(r)) {
        Ok(())
    } else {
        Err(NotAdmin::NotInRole)
    }
}

/// Why a pause or resume failed on hanko's side.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("reading the pause flag")]
    ReadFlag(#[source] EngineError),
    #[error("writing the pause flag")]
    WriteFlag(#[source] EngineError),
}

/// What a pause or resume did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paused {
    /// It already was in the asked state; nothing changed.
    Unchanged,
    /// Paused now.
    Paused,
    /// Resumed now; `waiting` Approved requests start.
    Resumed { waiting: usize },
}

/// Pauses execution, with an optional reason (already cut to the transport's limit).
pub fn pause(
    app: &App,
    who: &Voter,
    reason: Option<&str>,
) -> Result<Result<Paused, NotAdmin>, PauseError> {
    if let Err(refused) = require_admin(app, who) {
        return Ok(Err(refused));
    }
    if app.engine.is_paused().map_err(PauseError::ReadFlag)? {
        return Ok(Ok(Paused::Unchanged));
    }
    app.engine
        .set_paused(true, who.actor.clone(), reason)
        .map_err(PauseError::WriteFlag)?;
    Ok(Ok(Paused::Paused))
}

/// Resumes execution and announces it, so every Approved request starts.
pub fn resume(app: &App, who: &Voter) -> Result<Result<Paused, NotAdmin>, PauseError> {
    if let Err(refused) = require_admin(app, who) {
        return Ok(Err(refused));
    }
    if !app.engine.is_paused().map_err(PauseError::ReadFlag)? {
        return Ok(Ok(Paused::Unchanged));
    }
    app.engine
        .set_paused(false, who.actor.clone(), None)
        .map_err(PauseError::WriteFlag)?;
    let waiting = app
        .store
        .requests_in_states(&[RequestState::Approved])
        .map(|r| r.len())
        .unwrap_or(0);
    app.notices.send(Notice::ExecutionResumed);
    Ok(Ok(Paused::Resumed { waiting }))
}
