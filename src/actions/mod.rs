//! The application layer: one function per thing a person or the system can do with hanko.
//!
//! Every transport (the Discord gateway handlers today, Discord's HTTP interactions endpoint
//! and the CLI's `drill` and `revert`) only translates: it turns a click, a command or a flag
//! into a call here, and the typed outcome or [`Refused`] back into its own words. What was
//! done, and what was refused and why, is audited here, once, whoever asked.
//!
//! | action | module |
//! |---|---|
//! | propose containment (from a finding, or by hand for a target) | [`propose`] |
//! | vote, reject, dry run | [`vote`] |
//! | propose a revert | [`revert`] |
//! | suppress, lift, acknowledge, remediate (posture) | [`posture`] |
//! | pause, resume | [`pause`] |
//! | execute an approved request (and the owned tasks shutdown waits for) | [`execute`] |
//! | expire what nobody approved in time | [`expire`] |
//! | remind the responders of what nobody answers | [`escalate`] |
//! | look up what a leaked key did, propose containing what it created | [`investigate`] |
//! | the CLI's `drill`, `revert` and `resume` (the same paths, under a config file) | [`cli`] |
//!
//! A refusal met by a button, a modal or a `custom_id` check is audited through [`refuse`]
//! (`VoteRefused`, or `CommandInvoked` for the buttons that are not votes). A refusal met by a
//! slash command is audited once, in the command's own `CommandInvoked` record
//! (`discord::commands::Handled::finish`); the store's vote audits the policy's refusals
//! itself. So each refusal has one audit event, never two.
//!
//! May use the core, the app, the notices, the store's typed operations, the pipeline, the
//! planner, the engine, posture sync and the AWS layer (the client factory and
//! [`crate::aws::lookup`]); never serenity, never a store key layout, never `crate::run` or
//! `crate::discord`.

pub mod cli;
pub mod escalate;
pub mod execute;
pub mod expire;
pub mod investigate;
pub mod pause;
pub mod posture;
pub mod propose;
pub mod revert;
pub mod vote;

use uuid::Uuid;

use crate::app::App;
use crate::audit::{Actor, EventKind, NewEvent};

/// Why an action was refused: a stable `code` (audited, and what scripts match on) and one
/// sentence for the person who asked, in hanko's own words (never raw AWS or store text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub code: String,
    pub message: String,
}

impl Refused {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Refused {
        Refused {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What a refusal is about, for its audit event.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub finding: Option<String>,
    pub request: Option<Uuid>,
    /// More detail for the audit record (merged into its `detail` object).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Subject {
    /// A refusal about `request` (and its finding).
    pub fn about(request: &crate::approval::Request) -> Subject {
        Subject {
            finding: Some(request.finding_id.clone()),
            request: Some(request.id),
            detail: serde_json::Map::new(),
        }
    }

    /// The subject with one more detail field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Subject {
        self.detail.insert(key.into(), value.into());
        self
    }
}

/// Audits `refused` as `kind` (e.g. `VoteRefused`) for `actor`, and hands it back, so a
/// refusal is written the same way whichever action or transport met it. A failed audit
/// write is logged: the refusal still stands.
///
/// The detail holds `message` and the code, under the key each event kind's records have
/// always used: `refused` in a `CommandInvoked` event, `code` in every other.
pub fn refuse(
    app: &App,
    actor: &Actor,
    kind: EventKind,
    subject: Subject,
    refused: Refused,
) -> Refused {
    let mut detail = subject.detail;
    let code_key = if kind == EventKind::CommandInvoked {
        "refused"
    } else {
        "code"
    };
    detail.insert(code_key.into(), refused.code.clone().into());
    detail.insert("message".into(), refused.message.clone().into());
    let mut ev = NewEvent::new(app.clock.now(), actor.clone(), kind)
        .detail(serde_json::Value::Object(detail));
    if let Some(f) = subject.finding {
        ev = ev.finding(f);
    }
    if let Some(r) = subject.request {
        ev = ev.request(r);
    }
    if let Err(e) = app.store.append_audit(ev) {
        tracing::error!(error = %e, code = %refused.code, "could not audit a refusal");
    }
    refused
}
