//! Slash commands: one handler per file, one registry ([`dispatch`]), matching
//! `commands/*.json` (a test keeps the two in step).
//!
//! Handlers are serenity-free: the bot turns a command interaction into an [`Invocation`]
//! (options as JSON values by name, the invoker's actor and roles) and sends back the
//! [`Reply`]. Permission checks fail closed and the refusal names the rule.

use std::collections::BTreeMap;

use crate::app::App;
use crate::audit::Actor;
use crate::discord::cards::Card;

/// Who invoked a command, with the role ids the interaction carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    pub actor: Actor,
    pub roles: Vec<String>,
}

/// A slash command (or autocomplete request) as the handlers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The command name, e.g. `findings`.
    pub name: String,
    /// Option values by option name (strings, numbers, integers, booleans as JSON).
    pub options: BTreeMap<String, serde_json::Value>,
    pub invoker: Invoker,
    /// For autocomplete: the option being typed in.
    pub focused: Option<String>,
}

/// A file sent with a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Message {
        content: String,
        cards: Vec<Card>,
        /// Only the invoker sees it.
        ephemeral: bool,
        attachment: Option<Attachment>,
    },
    /// Autocomplete choices: (name shown, value).
    Choices(Vec<(String, String)>),
}

impl Reply {
    /// A short ephemeral text, for refusals and errors only the invoker should see.
    pub fn ephemeral(content: impl Into<String>) -> Reply {
        Reply::Message {
            content: content.into(),
            cards: Vec::new(),
            ephemeral: true,
            attachment: None,
        }
    }
}

/// Routes an invocation to its handler.
pub async fn dispatch(_app: &App, inv: &Invocation) -> Reply {
    Reply::ephemeral(format!("/{} is not available yet", inv.name))
}
