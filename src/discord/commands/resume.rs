//! `/resume`: lets the engine run approved requests again after `/pause`. Admin roles only
//! (`responders.admin_roles`, fail closed).
//!
//! Audited by [`crate::engine::Engine::set_paused`] (`ExecutionResumed`). The requests approved
//! while paused start at once: this handler announces [`Notice::ExecutionResumed`], and the
//! request lifecycle task of `hanko run` ([`crate::run`]) starts every Approved request as an
//! owned engine run (each after the engine's pre-flight checks; a refused one is closed and its
//! card says why). The confirmation is public, like `/pause`'s.
//!
//! Uses the engine's pause flag, the store and the notices; no Discord or AWS I/O.

use crate::app::App;
use crate::approval::RequestState;
use crate::pipeline::Notice;

use super::{plain, require_admin, Handled, Invocation, Reply};

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    if let Err(refused) = require_admin(app, inv, "resume") {
        return *refused;
    }
    match app.engine.is_paused() {
        Ok(false) => {
            return Handled::done(Reply::ephemeral(
                "Execution is not paused; nothing changed.",
            ))
        }
        Ok(true) => {}
        Err(e) => return Handled::failed("resume", "reading the pause flag", &e),
    }
    if let Err(e) = app
        .engine
        .set_paused(false, inv.invoker.actor.clone(), None)
    {
        return Handled::failed("resume", "resuming execution", &e);
    }
    let waiting = app
        .store
        .requests_in_states(&[RequestState::Approved])
        .map(|r| r.len())
        .unwrap_or(0);
    app.notices.send(Notice::ExecutionResumed);
    Handled::done(Reply::public(format!(
        "▶️ Execution resumed by {}: approved requests run again ({waiting} waiting).",
        plain(inv.invoker.actor.display_name())
    )))
}
