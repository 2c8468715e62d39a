//! Configuration: one TOML file, read in two stages.
//!
//! 1. **Raw**: the file is parsed into a [`toml::Table`] and read table by table into the
//!    `Raw*` structs below (serde, `deny_unknown_fields`, every key optional). Each key is
//!    checked on its own, so every unknown key (with "did you mean ...?") and every value of
//!    the wrong type is reported under its full dotted name, all at once, not just the first.
//! 2. **Settings**: the raw values are validated into the typed [`Settings`] the rest of hanko
//!    uses (snowflakes, durations, URLs, socket addresses, the approval [`Policy`]). Again,
//!    every problem is collected.
//!
//! The key names are a public contract: operators and scripts write this file. Add keys
//! freely; never rename one. `config/hanko.example.toml` documents every key.
//!
//! Secrets never come from the file: the bot token is read from an environment variable or a
//! file named here ([`TokenSource`]) into a [`Secret`], which never prints. A `token` key is an
//! error that says so, and no message ever echoes a value that might be the token.
//!
//! The `[audit]` anchor key (`audit.anchor_key_file`) is a file too: [`load`] reads it once to
//! check it is an Ed25519 private key, and no message ever prints its content.
//!
//! Relative paths in the file (`store.path`, `playbooks.path`, `discord.token_file`,
//! `audit.anchor_key_file`) are resolved against the directory holding the config file, so
//! hanko behaves the same whatever its working directory.
//!
//! Layout: [`raw`] (stage 1, the TOML shapes), [`validation`] (stage 2), [`settings`] (what
//! the rest of hanko sees, re-exported here); this file holds the entry points and errors.
//!
//! Uses [`crate::approval`], [`crate::plan`] (risk class names), [`crate::util`], [`crate::ids`] and
//! [`crate::anchor`] (to check the anchor key file); never
//! imports serenity, the AWS SDK or sled.

mod raw;
mod settings;
#[cfg(test)]
mod tests;
mod validation;

pub use settings::*;

use std::fmt;
use std::path::{Path, PathBuf};

use raw::{field_names, RawConfig};
use validation::check_http_url;

/// The environment variable holding the bot token when neither `token_env` nor `token_file` is set.
pub const DEFAULT_TOKEN_ENV: &str = "HANKO_DISCORD_TOKEN";
/// The environment variable that overrides `discord.api_base` (tests, Discord-compatible fakes).
pub const API_BASE_ENV: &str = "HANKO_DISCORD_API_BASE";
/// The shortest and longest request time to live.
const MIN_TTL_SECS: i64 = 5 * 60;
const MAX_TTL_SECS: i64 = 7 * 86_400;
/// GuardDuty is not polled more often than this.
const MIN_POLL_SECS: i64 = 10;
/// GuardDuty keeps findings for 90 days: a longer backfill finds nothing more.
const MAX_BACKFILL_SECS: i64 = 90 * 86_400;
/// The most approvers a risk class may require.
const MAX_APPROVALS: i64 = 10;
/// The shortest and longest IAM access key age IAM.3 remediation may use as its threshold.
const MIN_KEY_AGE_SECS: i64 = 86_400;
const MAX_KEY_AGE_SECS: i64 = 3_650 * 86_400;
/// The shortest and longest time between two audit digests.
const MIN_ANCHOR_INTERVAL_SECS: i64 = 60;
const MAX_ANCHOR_INTERVAL_SECS: i64 = 30 * 86_400;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One thing wrong with the file: the dotted key and what is wrong, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The full dotted key, e.g. `policy.request_ttl`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Displays as `{file}: {key}: {message}`.
    pub fn display<'a>(&'a self, file: &'a Path) -> impl fmt::Display + 'a {
        ProblemInFile {
            problem: self,
            file,
        }
    }
}

struct ProblemInFile<'a> {
    problem: &'a Problem,
    file: &'a Path,
}

impl fmt::Display for ProblemInFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.file.display(),
            self.problem.key,
            self.problem.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the config file: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}:{line}:{column}: not valid TOML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("the Discord token variable {name} is {reason}: export the bot token in it, or point discord.token_file at a file holding it")]
    TokenEnv { name: String, reason: &'static str },
    #[error("the Discord token file {} {reason}: write the bot token into it, or set discord.token_env instead", path.display())]
    TokenFile { path: PathBuf, reason: String },
}

impl ConfigError {
    /// One line per problem, as `hanko check-config` prints them.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { path, problems } => problems
                .iter()
                .map(|p| p.display(path).to_string())
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.display(path).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Reads, parses and validates the config file, then applies [`API_BASE_ENV`].
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.to_owned(),
        message: io_reason(&e),
    })?;
    let settings = parse(&text, path)?;
    let settings = apply_env(settings, path, |name| std::env::var(name).ok())?;
    if let Some(playbooks) = &settings.playbooks_path {
        if !playbooks.is_file() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: vec![Problem::new(
                    "playbooks.path",
                    format!(
                        "{} is not a readable file: fix the path (relative paths start at the config file's directory) or remove the key to use the built-in playbooks",
                        playbooks.display()
                    ),
                )],
            });
        }
    }
    if let Some(anchor) = &settings.audit.anchor {
        // Read once to check it; `hanko run` reads it again at start and keeps it in memory.
        if let Err(e) = crate::anchor::AnchorKey::read(&anchor.key_file) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: vec![Problem::new(
                    "audit.anchor_key_file",
                    format!("{e}; it must be an Ed25519 private key in PKCS#8 PEM (relative paths start at the config file's directory)"),
                )],
            });
        }
    }
    Ok(settings)
}

/// Parses and validates config text; `origin` names the file in errors and anchors relative
/// paths. Reports every problem found, not just the first. Reads no environment.
pub fn parse(text: &str, origin: &Path) -> Result<Settings, ConfigError> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = e
            .span()
            .map(|s| line_column(text, s.start))
            .unwrap_or((1, 1));
        ConfigError::Syntax {
            path: origin.to_owned(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    let mut problems = Vec::new();
    let raw = RawConfig::read(&doc, &mut problems);
    let base = origin.parent().unwrap_or(Path::new(""));
    let settings = raw.validate(base, &mut problems);
    // In the order of the sections, then by key: the file order is not kept by the parser.
    let sections = field_names::<RawConfig>();
    problems.sort_by_cached_key(|p| {
        let section = p.key.split(['.', '[']).next().unwrap_or("");
        let index = sections.iter().position(|s| *s == section);
        (index.unwrap_or(usize::MAX), p.key.clone())
    });
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => Err(ConfigError::Invalid {
            path: origin.to_owned(),
            problems,
        }),
    }
}

/// The lines `hanko check-config` prints: empty when the file is fine.
pub fn check(path: &Path) -> Vec<String> {
    match load(path) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

/// Applies environment overrides (only [`API_BASE_ENV`] today), validating them like the file.
fn apply_env(
    mut settings: Settings,
    origin: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    if let Some(base) = env(API_BASE_ENV).filter(|v| !v.trim().is_empty()) {
        let base = base.trim().to_owned();
        if let Err(why) = check_http_url(&base) {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                problems: vec![Problem::new(
                    "discord.api_base",
                    format!("the override in the environment variable {API_BASE_ENV} {why}"),
                )],
            });
        }
        settings.discord.api_base = Some(base);
    }
    Ok(settings)
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
