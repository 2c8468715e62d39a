//! `/resume`: lets the engine run approved requests again after `/pause`
//! ([`crate::actions::pause::resume`]: admin roles only, fail closed; audited as
//! `ExecutionResumed`). The requests approved while paused start at once: the action announces
//! it, and the request lifecycle task of `hanko run` starts every Approved request as an owned
//! engine run (each after the engine's pre-flight checks; a refused one is closed and its card
//! says why). The confirmation is public, like `/pause`'s.
//!
//! Translates only: the action's outcome out as a [`Reply`].

use crate::actions::pause::{self as action, Paused};
use crate::app::App;

use super::{admin_refusal, plain, Handled, Invocation, Reply};

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    match action::resume(app, &inv.voter()) {
        Err(action::PauseError::ReadFlag(e)) => {
            Handled::failed("resume", "reading the pause flag", &e)
        }
        Err(action::PauseError::WriteFlag(e)) => {
            Handled::failed("resume", "resuming execution", &e)
        }
        Ok(Err(refused)) => admin_refusal(refused, "resume"),
        Ok(Ok(Paused::Resumed { waiting })) => Handled::done(Reply::public(format!(
            "▶️ Execution resumed by {}: approved requests run again ({waiting} waiting).",
            plain(inv.invoker.actor.display_name())
        ))),
        Ok(Ok(_)) => Handled::done(Reply::ephemeral(
            "Execution is not paused; nothing changed.",
        )),
    }
}
