//! Slash commands: one handler per file, one registry ([`dispatch`]), matching
//! `commands/*.json` (a test keeps the two in step).
//!
//! Handlers are serenity-free: the bot turns a command interaction into an [`Invocation`]
//! (options as JSON values by name, the invoker's actor and roles) and sends back the
//! [`Reply`]. Permission checks fail closed and the refusal names the rule.
//!
//! Every handler has the same shape (triagebot's: thin, load, call the core, persist, act):
//! it reads its options, calls the application layer ([`crate::actions`]: `/contain`,
//! `/revert`, `/pause`, `/resume`) or reads the store (the listing commands), and returns a
//! [`Handled`]: the reply plus what happened (done, refused by which rule, or
//! failed with which error id). [`Handled::finish`] records that as one `CommandInvoked` audit
//! event (actor = invoker, detail = command, options, outcome), refusals and failures included,
//! so "who ran what" is always in the log. Autocomplete requests are not audited: Discord sends
//! one per keystroke and they change nothing.
//!
//! Two audiences for errors: a responder sees one short sentence with an error id
//! ([`crate::util::error_id`], the bot's scheme too); the log gets the full chain
//! under that id. Nothing here pastes a raw AWS or store error into Discord.
//!
//! Text from findings, AWS or people is escaped ([`plain`], [`code`]) before it is shown, so a
//! crafted finding type or tag cannot render a masked link or a mention.
//!
//! May use the application layer, the app's parts (store reads, engine state), the core and
//! the pure card renderer; never imports serenity (the bot adapter does the Discord I/O), the
//! AWS SDK or sled.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::App;
use crate::approval::Voter;
use crate::audit::{Actor, EventKind, NewEvent};
use crate::discord::cards::Card;
use crate::discord::text::truncate;
pub(crate) use crate::discord::text::{code, code_capped, plain};
use crate::discord::text::{fit_lines, MAX_CHOICES, MAX_CHOICE_LEN, MAX_CONTENT};

pub mod audit;
pub mod contain;
pub mod finding;
pub mod findings;
pub mod pause;
pub mod resume;
pub mod revert;
pub mod score;
pub mod status;
pub mod suppressions;

/// An option value longer than this is cut in the audit record.
const AUDIT_OPTION_CAP: usize = 200;
/// The rule a refusal names when the invoker is not a responder.
pub const RULE_RESPONDER: &str = "responders.approver_roles / responders.approver_users";
/// The rule a refusal names when the invoker is not an admin.
pub const RULE_ADMIN: &str = crate::actions::pause::RULE_ADMIN;

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

    /// A text everyone in the channel sees.
    pub fn public(content: impl Into<String>) -> Reply {
        Reply::Message {
            content: content.into(),
            cards: Vec::new(),
            ephemeral: false,
            attachment: None,
        }
    }

    /// The text of a message reply (empty for choices).
    pub fn content(&self) -> &str {
        match self {
            Reply::Message { content, .. } => content,
            Reply::Choices(_) => "",
        }
    }
}

/// The slash commands hanko handles: exactly the names of `commands/*.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Findings,
    Finding,
    Contain,
    Audit,
    Revert,
    Status,
    Pause,
    Resume,
    Score,
    Suppressions,
}

impl Command {
    pub const ALL: [Command; 10] = [
        Command::Findings,
        Command::Finding,
        Command::Contain,
        Command::Audit,
        Command::Revert,
        Command::Status,
        Command::Pause,
        Command::Resume,
        Command::Score,
        Command::Suppressions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Findings => "findings",
            Command::Finding => "finding",
            Command::Contain => "contain",
            Command::Audit => "audit",
            Command::Revert => "revert",
            Command::Status => "status",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Score => "score",
            Command::Suppressions => "suppressions",
        }
    }

    pub fn parse(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Routes an invocation to its handler. An autocomplete request (`focused` set) goes to the
/// command's `autocomplete`; an unknown command gets a polite ephemeral answer, audited.
pub async fn dispatch(app: &App, inv: &Invocation) -> Reply {
    let Some(command) = Command::parse(&inv.name) else {
        if inv.focused.is_some() {
            return Reply::Choices(Vec::new());
        }
        return unknown(app, inv);
    };
    if inv.focused.is_some() {
        return match command {
            Command::Finding => finding::autocomplete(app, inv).await,
            Command::Revert => revert::autocomplete(app, inv).await,
            _ => Reply::Choices(Vec::new()),
        };
    }
    match command {
        Command::Findings => findings::run(app, inv).await,
        Command::Finding => finding::run(app, inv).await,
        Command::Contain => contain::run(app, inv).await,
        Command::Audit => audit::run(app, inv).await,
        Command::Revert => revert::run(app, inv).await,
        Command::Status => status::run(app, inv).await,
        Command::Pause => pause::run(app, inv).await,
        Command::Resume => resume::run(app, inv).await,
        Command::Score => score::run(app, inv).await,
        Command::Suppressions => suppressions::run(app, inv).await,
    }
}

/// The answer to a command hanko does not know (an old registration, another bot's name).
fn unknown(app: &App, inv: &Invocation) -> Reply {
    let known = Command::ALL
        .iter()
        .map(|c| format!("/{}", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    Handled::refused(
        "unknown_command",
        format!(
            "Sorry, hanko does not know the command {}. It knows {known}.",
            code(&format!("/{}", inv.name))
        ),
    )
    .finish(app, inv)
}

// ---------------------------------------------------------------------------------------------
// What a handler did, and its audit record
// ---------------------------------------------------------------------------------------------

/// How an invocation ended, for its audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Refused; `rule` names the rule (a config key or a short code) that refused it.
    Refused {
        rule: String,
    },
    /// Failed on hanko's side; the log has the details under `error_id`.
    Failed {
        error_id: String,
    },
}

/// A handler's reply and what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub reply: Reply,
    pub outcome: Outcome,
    /// The finding the command was about, for the audit index.
    pub finding_id: Option<String>,
    /// The request the command was about (or created), for the audit index.
    pub request_id: Option<Uuid>,
}

impl Handled {
    pub fn done(reply: Reply) -> Handled {
        Handled {
            reply,
            outcome: Outcome::Done,
            finding_id: None,
            request_id: None,
        }
    }

    /// An ephemeral refusal naming `rule`.
    pub fn refused(rule: impl Into<String>, text: impl Into<String>) -> Handled {
        Handled {
            reply: Reply::ephemeral(text),
            outcome: Outcome::Refused { rule: rule.into() },
            finding_id: None,
            request_id: None,
        }
    }

    /// A failure on hanko's side: the full error goes to the log under a fresh error id, the
    /// invoker gets one sentence with that id.
    pub fn failed(command: &str, what: &str, error: &dyn std::fmt::Display) -> Handled {
        let error_id = crate::util::error_id();
        tracing::error!(command, error_id, error = %crate::discord::redact::redact_tokens(&error.to_string()), "{what}");
        Handled {
            reply: Reply::ephemeral(format!(
                "Sorry, /{command} failed on hanko's side while {what} (error id `{error_id}`; the log has the details)."
            )),
            outcome: Outcome::Failed { error_id },
            finding_id: None,
            request_id: None,
        }
    }

    pub fn finding(mut self, id: impl Into<String>) -> Handled {
        self.finding_id = Some(id.into());
        self
    }

    pub fn request(mut self, id: Uuid) -> Handled {
        self.request_id = Some(id);
        self
    }

    /// Records the invocation as a `CommandInvoked` event and returns the reply. An audit
    /// failure is logged, never shown: the command's own effect is already recorded.
    pub fn finish(self, app: &App, inv: &Invocation) -> Reply {
        let (outcome, extra) = match &self.outcome {
            Outcome::Done => ("done", serde_json::Value::Null),
            Outcome::Refused { rule } => ("refused", serde_json::json!({ "rule": rule })),
            Outcome::Failed { error_id } => ("failed", serde_json::json!({ "error_id": error_id })),
        };
        let mut detail = serde_json::json!({
            "command": inv.name,
            "options": audit_options(inv),
            "outcome": outcome,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (detail.as_object_mut(), extra) {
            obj.extend(more);
        }
        let mut ev = NewEvent::new(
            app.clock.now(),
            inv.invoker.actor.clone(),
            EventKind::CommandInvoked,
        )
        .detail(detail);
        ev.finding_id = self.finding_id;
        ev.request_id = self.request_id;
        if let Err(e) = app.store.append_audit(ev) {
            tracing::error!(command = %inv.name, error = %e, "could not audit a command invocation");
        }
        self.reply
    }
}

/// The options as recorded in the audit log: strings cut to a bounded length, and a
/// `/contain` target that is not one of the accepted forms replaced by its length, in case
/// someone pasted a secret access key (or anything else) there by mistake.
pub fn audit_options(inv: &Invocation) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, value) in &inv.options {
        let value = match value {
            serde_json::Value::String(s)
                if inv.name == Command::Contain.as_str()
                    && name == contain::OPTION_TARGET
                    && contain::parse_target(s).is_err() =>
            {
                serde_json::json!(format!("<not a target form, {} chars>", s.chars().count()))
            }
            serde_json::Value::String(s) => serde_json::json!(truncate(s, AUDIT_OPTION_CAP)),
            other => other.clone(),
        };
        out.insert(name.clone(), value);
    }
    serde_json::Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

impl Invocation {
    /// A string option, trimmed; `None` when absent or blank.
    pub fn str_opt(&self, name: &str) -> Option<&str> {
        self.options
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// An integer option (a JSON integer, or a string of one). `Err` names the option.
    pub fn int_opt(&self, name: &str) -> Result<Option<i64>, String> {
        match self.options.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Some)
                .ok_or_else(|| format!("the option `{name}` must be a whole number")),
        }
    }

    /// A number option (a JSON number, or a string of one). `Err` names the option.
    pub fn num_opt(&self, name: &str) -> Result<Option<f64>, String> {
        match self.options.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n: &f64| n.is_finite())
                .map(Some)
                .ok_or_else(|| format!("the option `{name}` must be a number")),
        }
    }

    /// The invoker as a voter, for the approval policy.
    pub fn voter(&self) -> Voter {
        Voter {
            actor: self.invoker.actor.clone(),
            roles: self.invoker.roles.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Permissions (fail closed, the refusal names the rule)
// ---------------------------------------------------------------------------------------------

/// Only responders (the approval policy's roles and user ids) may `doing`.
pub fn require_responder(app: &App, inv: &Invocation, doing: &str) -> Result<(), Box<Handled>> {
    match app.policy.authorizes(&inv.voter()) {
        Ok(()) => Ok(()),
        Err(_) => Err(Box::new(Handled::refused(
            RULE_RESPONDER,
            format!(
                "Only responders may {doing}: you have none of the approver roles and are not an approver user ({RULE_RESPONDER})."
            ),
        ))),
    }
}

/// Only members of an admin role may run `/command` ([`crate::actions::pause::require_admin`]:
/// no admin role configured means nobody).
pub fn require_admin(app: &App, inv: &Invocation, command: &str) -> Result<(), Box<Handled>> {
    crate::actions::pause::require_admin(app, &inv.voter())
        .map_err(|refused| Box::new(admin_refusal(refused, command)))
}

/// The refusal of a command only admins may run, naming the rule.
pub fn admin_refusal(refused: crate::actions::pause::NotAdmin, command: &str) -> Handled {
    use crate::actions::pause::NotAdmin;
    match refused {
        NotAdmin::NoAdminRole => Handled::refused(
            RULE_ADMIN,
            format!("Nobody may /{command} from Discord: no admin role is configured ({RULE_ADMIN} is empty)."),
        ),
        NotAdmin::NotInRole => Handled::refused(
            RULE_ADMIN,
            format!("Only members of an admin role may /{command}: you have none of the roles in {RULE_ADMIN}."),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// A time as Discord shows it in each reader's time zone (`<t:UNIX:f>`), with the relative
/// form after it.
pub fn when(t: DateTime<Utc>) -> String {
    format!("<t:{0}:f> (<t:{0}:R>)", t.timestamp())
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`: a short human duration (negative counts as 0).
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// A choice for autocomplete within Discord's limits; `None` when the value is too long to be
/// offered (Discord would refuse the whole answer).
pub fn choice(name: &str, value: &str) -> Option<(String, String)> {
    if value.is_empty() || value.chars().count() > MAX_CHOICE_LEN {
        return None;
    }
    let name = name.chars().filter(|c| !c.is_control()).collect::<String>();
    Some((truncate(&name, MAX_CHOICE_LEN), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str()), Some(c));
        }
        assert_eq!(Command::parse("Findings"), None);
        assert_eq!(Command::parse("nope"), None);
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(chrono::Duration::seconds(12)), "12s");
        assert_eq!(human_duration(chrono::Duration::seconds(250)), "4m 10s");
        assert_eq!(human_duration(chrono::Duration::seconds(7500)), "2h 5m");
        assert_eq!(human_duration(chrono::Duration::seconds(273_600)), "3d 4h");
        assert_eq!(human_duration(chrono::Duration::seconds(-5)), "0s");
    }

    #[test]
    fn choices_respect_discords_limits() {
        assert_eq!(choice("n", ""), None);
        assert_eq!(choice("n", &"x".repeat(101)), None);
        let (name, value) = choice(&"y".repeat(300), "v").unwrap();
        assert_eq!(name.chars().count(), 100);
        assert_eq!(value, "v");
    }
}
