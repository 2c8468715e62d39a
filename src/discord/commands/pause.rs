//! `/pause [reason]`: stops the engine from starting approved requests until `/resume`
//! ([`crate::actions::pause::pause`]: admin roles only, fail closed; stored and audited as
//! `ExecutionPaused` with the reason).
//!
//! Pending requests stay open and can still be voted on; a request already executing finishes
//! its steps (stopping half-way would leave a resource half-contained).
//!
//! The confirmation is public: everyone waiting for an approved request to run must know why
//! it does not (the definition promises the reason to the channel). Refusals are ephemeral.
//!
//! Translates only: options in, the action's outcome out as a [`Reply`].

use crate::actions::pause::{self as action, Paused};
use crate::app::App;
use crate::discord::text::truncate;

use super::{admin_refusal, plain, Handled, Invocation, Reply};

pub const OPTION_REASON: &str = "reason";
/// The definition's `max_length`.
pub const MAX_REASON: usize = 200;

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    let reason = inv.str_opt(OPTION_REASON).map(|r| truncate(r, MAX_REASON));
    match action::pause(app, &inv.voter(), reason.as_deref()) {
        Err(action::PauseError::ReadFlag(e)) => {
            Handled::failed("pause", "reading the pause flag", &e)
        }
        Err(action::PauseError::WriteFlag(e)) => Handled::failed("pause", "pausing execution", &e),
        Ok(Err(refused)) => admin_refusal(refused, "pause"),
        Ok(Ok(Paused::Unchanged)) => Handled::done(Reply::ephemeral(
            "Execution is already paused; nothing changed. /status says by whom, /resume starts it again.",
        )),
        Ok(Ok(_)) => {
            let why = match &reason {
                Some(r) => format!(" Reason: {}", plain(r)),
                None => String::new(),
            };
            Handled::done(Reply::public(format!(
                "⏸️ Execution paused by {}: approved requests wait until /resume. Pending requests stay open for votes; a request already executing finishes its steps.{why}",
                plain(inv.invoker.actor.display_name())
            )))
        }
    }
}
