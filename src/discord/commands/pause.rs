//! `/pause [reason]`: stops the engine from starting approved requests until `/resume`.
//! Admin roles only (`responders.admin_roles`, fail closed: none configured means nobody).
//!
//! Pending requests stay open and can still be voted on; a request already executing finishes
//! its steps (stopping half-way would leave a resource half-contained). The pause is stored
//! and audited by [`crate::engine::Engine::set_paused`] (`ExecutionPaused`, with the reason).
//!
//! The confirmation is public: everyone waiting for an approved request to run must know why
//! it does not (the definition promises the reason to the channel). Refusals are ephemeral.
//!
//! Uses the engine's pause flag and the store; no Discord or AWS I/O.

use crate::app::App;
use crate::discord::cards::truncate;

use super::{plain, require_admin, Handled, Invocation, Reply};

pub const OPTION_REASON: &str = "reason";
/// The definition's `max_length`.
pub const MAX_REASON: usize = 200;

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    if let Err(refused) = require_admin(app, inv, "pause") {
        return *refused;
    }
    match app.engine.is_paused() {
        Ok(true) => {
            return Handled::done(Reply::ephemeral(
                "Execution is already paused; nothing changed. /status says by whom, /resume starts it again.",
            ))
        }
        Ok(false) => {}
        Err(e) => return Handled::failed("pause", "reading the pause flag", &e),
    }
    let reason = inv.str_opt(OPTION_REASON).map(|r| truncate(r, MAX_REASON));
    if let Err(e) = app
        .engine
        .set_paused(true, inv.invoker.actor.clone(), reason.as_deref())
    {
        return Handled::failed("pause", "pausing execution", &e);
    }
    let why = match &reason {
        Some(r) => format!(" Reason: {}", plain(r)),
        None => String::new(),
    };
    Handled::done(Reply::public(format!(
        "⏸️ Execution paused by {}: approved requests wait until /resume. Pending requests stay open for votes; a request already executing finishes its steps.{why}",
        plain(inv.invoker.actor.display_name())
    )))
}
