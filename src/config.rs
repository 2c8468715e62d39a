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
//! Uses [`crate::approval`], [`crate::plan`] (risk class names), [`crate::util`] and
//! [`crate::anchor`] (to check the anchor key file); never
//! imports serenity, the AWS SDK or sled.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveTime};
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Serialize};

use crate::approval::{Approvals, Policy};
use crate::plan::RiskClass;
use crate::util::parse_duration;

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
// Settings: what the rest of hanko sees
// ---------------------------------------------------------------------------------------------

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub discord: DiscordSettings,
    pub responders: Responders,
    /// Built from `[policy]` and the approvers of `[responders]`.
    pub policy: Policy,
    pub aws: AwsSettings,
    pub ingest: IngestSettings,
    pub store: StoreSettings,
    pub http: HttpSettings,
    /// `playbooks.path`, resolved; `None` means the built-in playbooks.
    pub playbooks_path: Option<PathBuf>,
    pub posture: PostureSettings,
    pub audit: AuditSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordSettings {
    /// Where the bot token comes from (never the token itself).
    pub token_source: TokenSource,
    pub guild_id: u64,
    /// The channel cards are posted to.
    pub channel_id: u64,
    /// A Discord-compatible endpoint instead of discord.com (tests); [`API_BASE_ENV`] overrides.
    pub api_base: Option<String>,
}

/// Who may do what in Discord. Ids are canonical decimal snowflakes, as the interaction's
/// member data carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Responders {
    /// Role ids whose members may approve or reject.
    pub approver_roles: BTreeSet<String>,
    /// User ids who may approve or reject, whatever their roles.
    pub approver_users: BTreeSet<String>,
    /// Role ids whose members may `/pause` and `/resume`.
    pub admin_roles: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Regions hanko watches and acts in; never empty.
    pub regions: Vec<String>,
    /// Role to assume in member accounts; contains `{account}`.
    pub role_arn_template: Option<String>,
    /// An AWS-compatible endpoint (moto in tests); the standard `AWS_ENDPOINT_URL*` variables
    /// also apply.
    pub endpoint_url: Option<String>,
    /// Accounts hanko may act in; findings from any other account are notify-only.
    /// `None` means every account the credentials reach.
    pub accounts: Option<BTreeSet<String>>,
}

impl AwsSettings {
    /// The role to assume for `account`, if a template is configured.
    pub fn role_arn(&self, account: &str) -> Option<String> {
        self.role_arn_template
            .as_ref()
            .map(|t| t.replace("{account}", account))
    }

    /// May hanko act in this account? (Otherwise its findings are notify-only.)
    pub fn may_act_in(&self, account: &str) -> bool {
        self.accounts.as_ref().map_or(true, |a| a.contains(account))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestSettings {
    /// Poll the GuardDuty API.
    pub guardduty: bool,
    /// Time between two GuardDuty polls (at least 10 s).
    pub poll_interval: std::time::Duration,
    /// How far back the first poll looks.
    pub backfill: Duration,
    /// Findings below this severity are stored but get no card.
    pub min_severity: f64,
    /// An SQS queue receiving GuardDuty findings from EventBridge.
    pub sqs_queue_url: Option<String>,
    /// Poll Security Hub findings.
    pub securityhub: bool,
    /// GuardDuty detector id by region; regions not listed are looked up with ListDetectors.
    pub detector_ids: BTreeMap<String, String>,
    /// The most documents the quarantine keeps (`ingest.quarantine_max`); the oldest are
    /// dropped, each drop audited.
    pub quarantine_max: u64,
}

/// `ingest.quarantine_max` when the config does not set it.
pub const DEFAULT_QUARANTINE_MAX: u64 = 1000;
/// The largest `ingest.quarantine_max` accepted (64 KiB each: about 6.5 GB of quarantine).
pub const MAX_QUARANTINE_MAX: u64 = 100_000;

/// Security Hub posture: the daily score digest, drop alerts, suppressions, remediation.
#[derive(Debug, Clone, PartialEq)]
pub struct PostureSettings {
    /// UTC time of day the score digest is posted; `None` when `digest = false`.
    pub digest_at: Option<NaiveTime>,
    /// A score that fell by more than this many percentage points since the previous day's
    /// recorded score is announced at once (0 to 100; 100 never fires).
    pub drop_alert_points: f64,
    /// The risk class of a suppression request: how many approvers the policy asks for.
    pub suppress_risk: RiskClass,
    /// IAM.3 remediation proposes deactivating access keys older than this.
    pub iam3_max_key_age: Duration,
}

impl Default for PostureSettings {
    fn default() -> Self {
        PostureSettings {
            digest_at: NaiveTime::from_hms_opt(9, 0, 0),
            drop_alert_points: 5.0,
            suppress_risk: RiskClass::Evidence,
            iam3_max_key_age: Duration::days(90),
        }
    }
}

/// `[audit]`: anchoring the audit chain's head outside the store ([`crate::anchor`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// `None` unless `audit.anchor_bucket` is set.
    pub anchor: Option<AnchorSettings>,
}

/// Where and how often `hanko run` writes signed digests of the audit head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorSettings {
    /// The S3 bucket (in the first of `aws.regions`), ideally with Object Lock.
    pub bucket: String,
    /// `anchor_prefix` as given (the writer adds the `/`).
    pub prefix: String,
    /// The Ed25519 private key (PKCS#8 PEM), resolved. Only its path is kept here: the key is
    /// read at start ([`crate::anchor::AnchorKey::read`]); [`load`] reads it once to check it.
    pub key_file: PathBuf,
    /// At most one digest per interval (plus one at shutdown).
    pub interval: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The sled database directory.
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Where `/healthz` and `/metrics` listen.
    pub listen: SocketAddr,
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// Where the Discord bot token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The name of an environment variable.
    Env(String),
    /// A file holding the token (surrounding whitespace is ignored).
    File(PathBuf),
}

impl TokenSource {
    /// Reads the token. Errors name the variable or the file, never a value.
    pub fn read(&self) -> Result<Secret, ConfigError> {
        match self {
            TokenSource::Env(name) => match std::env::var(name) {
                Ok(value) if value.trim().is_empty() => Err(ConfigError::TokenEnv {
                    name: name.clone(),
                    reason: "set but empty",
                }),
                Ok(value) => Ok(Secret(value.trim().to_owned())),
                Err(std::env::VarError::NotPresent) => Err(ConfigError::TokenEnv {
                    name: name.clone(),
                    reason: "not set",
                }),
                Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::TokenEnv {
                    name: name.clone(),
                    reason: "not valid UTF-8",
                }),
            },
            TokenSource::File(path) => match std::fs::read_to_string(path) {
                Ok(value) if value.trim().is_empty() => Err(ConfigError::TokenFile {
                    path: path.clone(),
                    reason: "is empty".to_owned(),
                }),
                Ok(value) => Ok(Secret(value.trim().to_owned())),
                Err(e) => Err(ConfigError::TokenFile {
                    path: path.clone(),
                    reason: format!("cannot be read ({})", io_reason(&e)),
                }),
            },
        }
    }
}

/// A secret value. `Debug` and `Display` print `[redacted]`; only [`Secret::expose`] gives it.
pub struct Secret(String);

impl Secret {
    /// The secret itself: pass it straight to the client that needs it, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

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

// ---------------------------------------------------------------------------------------------
// Stage 1: raw
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    discord: RawDiscord,
    responders: RawResponders,
    policy: RawPolicy,
    aws: RawAws,
    ingest: RawIngest,
    store: RawStore,
    http: RawHttp,
    playbooks: RawPlaybooks,
    posture: RawPosture,
    audit: RawAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDiscord {
    token_env: Option<String>,
    token_file: Option<String>,
    guild_id: Option<String>,
    channel_id: Option<String>,
    api_base: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawResponders {
    approver_roles: Option<Vec<String>>,
    approver_users: Option<Vec<String>>,
    admin_roles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    approvals: Option<RawApprovals>,
    allow_self_approval: Option<bool>,
    request_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawApprovals {
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contain: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disrupt: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAws {
    regions: Option<Vec<String>>,
    role_arn_template: Option<String>,
    endpoint_url: Option<String>,
    accounts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIngest {
    guardduty: Option<bool>,
    poll_interval: Option<String>,
    backfill: Option<String>,
    min_severity: Option<f64>,
    sqs_queue_url: Option<String>,
    securityhub: Option<bool>,
    detector_ids: Option<BTreeMap<String, String>>,
    quarantine_max: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPlaybooks {
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPosture {
    digest: Option<bool>,
    digest_at: Option<String>,
    drop_alert_points: Option<f64>,
    suppress_risk: Option<String>,
    iam3_max_key_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAudit {
    anchor_bucket: Option<String>,
    anchor_prefix: Option<String>,
    anchor_key_file: Option<String>,
    anchor_interval: Option<String>,
}

impl RawConfig {
    /// Reads every section, reporting unknown keys and wrong types; never fails.
    fn read(doc: &toml::Table, problems: &mut Vec<Problem>) -> RawConfig {
        let sections = field_names::<RawConfig>();
        let mut r = Reader { problems };
        let mut tables: BTreeMap<String, toml::Table> = BTreeMap::new();
        for (key, value) in doc {
            if !sections.contains(&key.as_str()) {
                r.unknown("", key, sections);
                continue;
            }
            match value {
                toml::Value::Table(t) => {
                    tables.insert(key.clone(), t.clone());
                }
                other => r.problems.push(Problem::new(
                    key.clone(),
                    format!(
                        "must be a table (a `[{key}]` section), not {}",
                        with_article(other.type_str())
                    ),
                )),
            }
        }
        let mut take = |name: &str| tables.remove(name).unwrap_or_default();
        let discord = take("discord");
        let responders = take("responders");
        let mut policy = take("policy");
        let aws = take("aws");
        let ingest = take("ingest");
        let store = take("store");
        let http = take("http");
        let playbooks = take("playbooks");
        let posture = take("posture");
        let audit = take("audit");
        r.nested::<RawApprovals>(&mut policy, "policy", "approvals");
        RawConfig {
            discord: r.section(&discord, "discord"),
            responders: r.section(&responders, "responders"),
            policy: r.section(&policy, "policy"),
            aws: r.section(&aws, "aws"),
            ingest: r.section(&ingest, "ingest"),
            store: r.section(&store, "store"),
            http: r.section(&http, "http"),
            playbooks: r.section(&playbooks, "playbooks"),
            posture: r.section(&posture, "posture"),
            audit: r.section(&audit, "audit"),
        }
    }
}

/// Reads tables into raw structs, one key at a time, collecting problems.
struct Reader<'p> {
    problems: &'p mut Vec<Problem>,
}

impl Reader<'_> {
    /// Reads `table` (at dotted `path`) into `T`. Unknown keys and values of the wrong type are
    /// reported and left out; the rest is returned.
    fn section<T: DeserializeOwned + Default>(&mut self, table: &toml::Table, path: &str) -> T {
        let known = field_names::<T>();
        let mut good = toml::Table::new();
        for (key, value) in table {
            if !known.contains(&key.as_str()) {
                self.unknown(path, key, known);
                continue;
            }
            let mut alone = toml::Table::new();
            alone.insert(key.clone(), value.clone());
            match T::deserialize(toml::Value::Table(alone)) {
                Ok(_) => {
                    good.insert(key.clone(), value.clone());
                }
                Err(e) => self.problems.push(Problem::new(
                    dotted(path, key),
                    type_message(key, value, &e),
                )),
            }
        }
        // Every key left deserialized on its own, and every field is optional.
        T::deserialize(toml::Value::Table(good)).unwrap_or_default()
    }

    /// Reads the sub-table `parent.key` as `T` in place, so its own unknown keys and wrong
    /// types are reported under their full dotted names.
    fn nested<T: DeserializeOwned + Serialize + Default>(
        &mut self,
        parent: &mut toml::Table,
        parent_path: &str,
        key: &str,
    ) {
        if let Some(toml::Value::Table(sub)) = parent.get(key) {
            let read: T = self.section(sub, &dotted(parent_path, key));
            match toml::Value::try_from(read) {
                Ok(cleaned) => {
                    parent.insert(key.to_owned(), cleaned);
                }
                Err(_) => {
                    parent.remove(key);
                }
            }
        }
    }

    fn unknown(&mut self, path: &str, key: &str, known: &[&str]) {
        let full = dotted(path, key);
        let message = if key == "token" {
            "secrets never go in the config file: delete this key and set discord.token_env (the NAME of an environment variable holding the token) or discord.token_file (a file holding it)".to_owned()
        } else if let Some(near) = closest(key, known) {
            format!("unknown key; did you mean {}?", dotted(path, near))
        } else if let Some(home) = section_of(key).filter(|home| *home != path) {
            format!("unknown key here; `{key}` belongs in [{home}]")
        } else if path.is_empty() {
            format!("unknown section; the sections are {}", known.join(", "))
        } else {
            format!("unknown key; the keys of [{path}] are {}", known.join(", "))
        };
        self.problems.push(Problem::new(full, message));
    }
}

fn with_article(noun: &str) -> String {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {noun}"),
        _ => format!("a {noun}"),
    }
}

fn dotted(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The section that owns a key name, for keys written in the wrong section.
fn section_of(key: &str) -> Option<&'static str> {
    let sections: [(&str, &[&str]); 10] = [
        ("discord", field_names::<RawDiscord>()),
        ("responders", field_names::<RawResponders>()),
        ("policy", field_names::<RawPolicy>()),
        ("aws", field_names::<RawAws>()),
        ("ingest", field_names::<RawIngest>()),
        ("store", field_names::<RawStore>()),
        ("http", field_names::<RawHttp>()),
        ("playbooks", field_names::<RawPlaybooks>()),
        ("posture", field_names::<RawPosture>()),
        ("audit", field_names::<RawAudit>()),
    ];
    let owners: Vec<&str> = sections
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(name, _)| *name)
        .collect();
    // `path` is in two sections: no single answer.
    match owners.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// A readable message for a value of the wrong type, with the fix for the usual mistakes.
fn type_message(key: &str, value: &toml::Value, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    let what = message
        .strip_prefix("invalid type: ")
        .unwrap_or(&message)
        .replace("expected f64", "expected a number")
        .replace("expected i64", "expected a whole number");
    let hint = match (key, value) {
        (
            "guild_id" | "channel_id" | "approver_roles" | "approver_users" | "admin_roles",
            toml::Value::Integer(_) | toml::Value::Array(_),
        ) => "; write Discord ids as quoted strings, e.g. \"123456789012345678\"",
        ("accounts", _) => "; write account ids as quoted strings, e.g. [\"123456789012\"]",
        (
            "poll_interval" | "backfill" | "request_ttl" | "iam3_max_key_age" | "anchor_interval",
            toml::Value::Integer(_),
        ) => "; write durations as strings with a unit, e.g. \"60s\", \"15m\", \"4h\", \"7d\"",
        (_, toml::Value::String(_)) if what.contains("expected a boolean") => {
            "; write true or false without quotes"
        }
        _ => "",
    };
    format!("wrong type: {what}{hint}")
}

/// The field names a serde struct accepts, read from its derived `Deserialize`: the single
/// source of truth for the known keys of each table.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("field probe"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("field probe"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The known key within edit distance 2 of `key`, the closest first.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Stage 2: validation
// ---------------------------------------------------------------------------------------------

impl RawConfig {
    /// Builds the settings, pushing every problem found. `None` only if a required value is
    /// missing or invalid (the problems say which).
    fn validate(self, base: &Path, problems: &mut Vec<Problem>) -> Option<Settings> {
        let mut v = Validator { problems };
        let discord = v.discord(self.discord, base);
        let responders = v.responders(self.responders);
        let policy = v.policy(self.policy, &responders);
        let aws = v.aws(self.aws);
        let ingest = v.ingest(self.ingest, aws.as_ref());
        let store = StoreSettings {
            path: resolve(base, self.store.path.as_deref().unwrap_or("/var/lib/hanko")),
        };
        if self
            .store
            .path
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            v.problem(
                "store.path",
                "is empty: name the directory of the database, e.g. \"/var/lib/hanko\"",
            );
        }
        let http = v.http(self.http);
        let playbooks_path = match self.playbooks.path.as_deref() {
            Some(p) if p.trim().is_empty() => {
                v.problem(
                    "playbooks.path",
                    "is empty: name a playbooks file or remove the key to use the built-in playbooks",
                );
                None
            }
            Some(p) => Some(resolve(base, p)),
            None => None,
        };
        let posture = v.posture(self.posture);
        let audit = v.audit(self.audit, base);
        Some(Settings {
            discord: discord?,
            responders,
            policy: policy?,
            aws: aws?,
            ingest: ingest?,
            store,
            http: http?,
            playbooks_path,
            posture: posture?,
            audit: audit?,
        })
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

struct Validator<'p> {
    problems: &'p mut Vec<Problem>,
}

impl Validator<'_> {
    /// Records a problem, unless `key` already has one: the first (a wrong type, say) is the
    /// most specific, and a follow-up "missing" would only repeat it.
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        if !self.problems.iter().any(|p| p.key == key) {
            self.problems.push(Problem::new(key, message));
        }
    }

    /// Runs `check` on an optional value, recording its error under `key`.
    fn checked<T, U>(
        &mut self,
        key: &str,
        value: Option<T>,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<Option<U>> {
        match value.map(check) {
            None => Some(None),
            Some(Ok(u)) => Some(Some(u)),
            Some(Err(message)) => {
                self.problem(key, message);
                None
            }
        }
    }

    fn duration(
        &mut self,
        key: &str,
        value: Option<String>,
        default: &str,
        range: (i64, i64),
        range_text: &str,
    ) -> Option<Duration> {
        let text = value.unwrap_or_else(|| default.to_owned());
        match parse_duration(&text) {
            Ok(d) if d.num_seconds() < range.0 || d.num_seconds() > range.1 => {
                self.problem(key, format!("`{text}` is out of range: use {range_text}"));
                None
            }
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(key, message);
                None
            }
        }
    }

    fn discord(&mut self, raw: RawDiscord, base: &Path) -> Option<DiscordSettings> {
        let token_source = match (raw.token_env, raw.token_file) {
            (Some(_), Some(_)) => {
                self.problem(
                    "discord.token_file",
                    "set either token_env or token_file, not both",
                );
                None
            }
            (Some(name), None) => {
                if is_env_var_name(&name) {
                    Some(TokenSource::Env(name))
                } else {
                    // Never echo the value: it may be the token itself.
                    self.problem(
                        "discord.token_env",
                        "must be the NAME of an environment variable (letters, digits and _, e.g. HANKO_DISCORD_TOKEN), not the token itself",
                    );
                    None
                }
            }
            (None, Some(file)) if file.trim().is_empty() => {
                self.problem(
                    "discord.token_file",
                    "is empty: name the file holding the bot token, e.g. \"/run/secrets/discord\"",
                );
                None
            }
            (None, Some(file)) => Some(TokenSource::File(resolve(base, &file))),
            (None, None) => Some(TokenSource::Env(DEFAULT_TOKEN_ENV.to_owned())),
        };
        let guild_id = self.required_snowflake("discord.guild_id", raw.guild_id, "the server");
        let channel_id = self.required_snowflake(
            "discord.channel_id",
            raw.channel_id,
            "the channel cards are posted to",
        );
        let api_base = self.checked("discord.api_base", raw.api_base, |u| {
            check_http_url(&u).map(|()| u)
        });
        Some(DiscordSettings {
            token_source: token_source?,
            guild_id: guild_id?,
            channel_id: channel_id?,
            api_base: api_base?,
        })
    }

    fn required_snowflake(&mut self, key: &str, value: Option<String>, what: &str) -> Option<u64> {
        let Some(value) = value else {
            self.problem(
                key,
                format!("missing: the Discord id of {what}, as a quoted string (Developer Mode, right-click, Copy ID)"),
            );
            return None;
        };
        match parse_snowflake(&value) {
            Ok(id) => Some(id),
            Err(message) => {
                self.problem(key, message);
                None
            }
        }
    }

    fn snowflakes(&mut self, key: &str, values: Option<Vec<String>>) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for (i, value) in values.unwrap_or_default().into_iter().enumerate() {
            match parse_snowflake(&value) {
                Ok(id) => {
                    ids.insert(id.to_string());
                }
                Err(message) => self.problem(&format!("{key}[{i}]"), message),
            }
        }
        ids
    }

    fn responders(&mut self, raw: RawResponders) -> Responders {
        let approver_roles_given = raw.approver_roles.as_ref().is_some_and(|r| !r.is_empty());
        let approver_users_given = raw.approver_users.as_ref().is_some_and(|u| !u.is_empty());
        let responders = Responders {
            approver_roles: self.snowflakes("responders.approver_roles", raw.approver_roles),
            approver_users: self.snowflakes("responders.approver_users", raw.approver_users),
            admin_roles: self.snowflakes("responders.admin_roles", raw.admin_roles),
        };
        if !approver_roles_given && !approver_users_given {
            self.problem(
                "responders.approver_roles",
                "no one could approve a request: list at least one role id in responders.approver_roles or user id in responders.approver_users",
            );
        }
        responders
    }

    fn policy(&mut self, raw: RawPolicy, responders: &Responders) -> Option<Policy> {
        let defaults = Approvals::default();
        let raw_approvals = raw.approvals.unwrap_or_default();
        let mut count = |name: &str, value: Option<i64>, default: u32| -> Option<u32> {
            match value {
                None => Some(default),
                Some(n) if (1..=MAX_APPROVALS).contains(&n) => u32::try_from(n).ok(),
                Some(n) => {
                    self.problem(
                        &format!("policy.approvals.{name}"),
                        format!("{n} approvers: use a number from 1 to {MAX_APPROVALS}"),
                    );
                    None
                }
            }
        };
        let evidence = count("evidence", raw_approvals.evidence, defaults.evidence);
        let contain = count("contain", raw_approvals.contain, defaults.contain);
        let disrupt = count("disrupt", raw_approvals.disrupt, defaults.disrupt);
        let ttl = self.duration(
            "policy.request_ttl",
            raw.request_ttl,
            "4h",
            (MIN_TTL_SECS, MAX_TTL_SECS),
            "between 5m and 7d",
        );
        Some(Policy {
            approver_roles: responders.approver_roles.clone(),
            approver_users: responders.approver_users.clone(),
            approvals: Approvals {
                evidence: evidence?,
                contain: contain?,
                disrupt: disrupt?,
            },
            allow_self_approval: raw.allow_self_approval.unwrap_or(false),
            ttl: ttl?,
        })
    }

    fn aws(&mut self, raw: RawAws) -> Option<AwsSettings> {
        let regions = match raw.regions {
            None => {
                self.problem(
                    "aws.regions",
                    "missing: list the regions hanko watches, e.g. regions = [\"us-east-1\"]",
                );
                None
            }
            Some(r) if r.is_empty() => {
                self.problem(
                    "aws.regions",
                    "is empty: list at least one region, e.g. [\"us-east-1\"]",
                );
                None
            }
            Some(r) => {
                let mut ok = true;
                let mut seen = BTreeSet::new();
                for (i, region) in r.iter().enumerate() {
                    if !is_region(region) {
                        self.problem(
                            &format!("aws.regions[{i}]"),
                            format!("`{region}` is not a region code: write it like us-east-1 or eu-central-1"),
                        );
                        ok = false;
                    } else if !seen.insert(region) {
                        self.problem(
                            &format!("aws.regions[{i}]"),
                            format!("`{region}` is listed twice"),
                        );
                        ok = false;
                    }
                }
                ok.then_some(r)
            }
        };
        let role_arn_template = self.checked("aws.role_arn_template", raw.role_arn_template, |t| {
            check_role_template(&t).map(|()| t)
        });
        let endpoint_url = self.checked("aws.endpoint_url", raw.endpoint_url, |u| {
            check_http_url(&u).map(|()| u)
        });
        let accounts = raw.accounts.map(|list| {
            let mut set = BTreeSet::new();
            for (i, account) in list.into_iter().enumerate() {
                if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
                    set.insert(account);
                } else {
                    self.problem(
                        &format!("aws.accounts[{i}]"),
                        format!("`{account}` is not an AWS account id: 12 digits, quoted"),
                    );
                }
            }
            set
        });
        if accounts.as_ref().is_some_and(|a| a.is_empty()) && !self.has_problem("aws.accounts") {
            self.problem(
                "aws.accounts",
                "is empty, so hanko could act nowhere: list the account ids, or remove the key to allow every account",
            );
        }
        Some(AwsSettings {
            regions: regions?,
            role_arn_template: role_arn_template?,
            endpoint_url: endpoint_url?,
            accounts,
        })
    }

    fn has_problem(&self, prefix: &str) -> bool {
        self.problems.iter().any(|p| p.key.starts_with(prefix))
    }

    fn ingest(&mut self, raw: RawIngest, aws: Option<&AwsSettings>) -> Option<IngestSettings> {
        let poll_interval = self.duration(
            "ingest.poll_interval",
            raw.poll_interval,
            "60s",
            (MIN_POLL_SECS, i64::MAX),
            "10s or more",
        );
        let backfill = self.duration(
            "ingest.backfill",
            raw.backfill,
            "24h",
            (0, MAX_BACKFILL_SECS),
            "at most 90d (GuardDuty keeps findings 90 days)",
        );
        let min_severity = match raw.min_severity {
            None => Some(4.0),
            Some(s) if (0.0..=10.0).contains(&s) => Some(s),
            Some(s) => {
                self.problem(
                    "ingest.min_severity",
                    format!("{s} is outside GuardDuty's scale: use a number from 0 to 10 (4.0 = Medium, 7.0 = High)"),
                );
                None
            }
        };
        let sqs_queue_url = self.checked("ingest.sqs_queue_url", raw.sqs_queue_url, |u| {
            check_http_url(&u).map(|()| u)
        });
        let guardduty = raw.guardduty.unwrap_or(true);
        let securityhub = raw.securityhub.unwrap_or(false);
        if !guardduty && !securityhub && matches!(sqs_queue_url, Some(None)) {
            self.problem(
                "ingest.guardduty",
                "every source is off (guardduty = false, securityhub = false, no sqs_queue_url): hanko would never see a finding; turn one on",
            );
        }
        let mut detector_ids = BTreeMap::new();
        for (region, id) in raw.detector_ids.unwrap_or_default() {
            let key = format!("ingest.detector_ids.{region}");
            if !is_region(&region) {
                self.problem(
                    &key,
                    "is not a region code: key each detector id by its region, e.g. \"us-east-1\" = \"...\"",
                );
            } else if aws.is_some_and(|a| !a.regions.contains(&region)) {
                self.problem(
                    &key,
                    format!(
                        "{region} is not in aws.regions: add it there or remove this detector id"
                    ),
                );
            } else if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                self.problem(
                    &key,
                    format!("`{id}` is not a detector id (lowercase letters and digits, as ListDetectors prints it)"),
                );
            } else {
                detector_ids.insert(region, id);
            }
        }
        let quarantine_max = match raw.quarantine_max {
            None => Some(DEFAULT_QUARANTINE_MAX),
            Some(n) if (1..=MAX_QUARANTINE_MAX as i64).contains(&n) => Some(n as u64),
            Some(n) => {
                self.problem(
                    "ingest.quarantine_max",
                    format!("{n} is out of range: keep from 1 to {MAX_QUARANTINE_MAX} quarantined documents (default {DEFAULT_QUARANTINE_MAX})"),
                );
                None
            }
        };
        Some(IngestSettings {
            guardduty,
            poll_interval: poll_interval?.to_std().ok()?,
            backfill: backfill?,
            min_severity: min_severity?,
            sqs_queue_url: sqs_queue_url?,
            securityhub,
            detector_ids,
            quarantine_max: quarantine_max?,
        })
    }

    fn posture(&mut self, raw: RawPosture) -> Option<PostureSettings> {
        let defaults = PostureSettings::default();
        // A bad digest_at is reported even when the digest is off: it would bite once turned on.
        let digest_at = match raw.digest_at {
            None => Some(defaults.digest_at),
            Some(text) => match parse_time_of_day(&text) {
                Ok(t) => Some(Some(t)),
                Err(message) => {
                    self.problem("posture.digest_at", message);
                    None
                }
            },
        };
        let digest_at = match raw.digest {
            Some(false) => digest_at.map(|_| None),
            _ => digest_at,
        };
        let drop_alert_points = match raw.drop_alert_points {
            None => Some(defaults.drop_alert_points),
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            Some(p) => {
                self.problem(
                    "posture.drop_alert_points",
                    format!("{p} is not a number of percentage points: use 0 to 100 (100 turns drop alerts off)"),
                );
                None
            }
        };
        let suppress_risk = match raw.suppress_risk {
            None => Some(defaults.suppress_risk),
            Some(text) => match RiskClass::parse(text.trim()) {
                Some(class) => Some(class),
                None => {
                    self.problem(
                        "posture.suppress_risk",
                        format!("`{text}` is not a risk class: use evidence, contain or disrupt (their approvers are set in policy.approvals)"),
                    );
                    None
                }
            },
        };
        let iam3_max_key_age = self.duration(
            "posture.iam3_max_key_age",
            raw.iam3_max_key_age,
            "90d",
            (MIN_KEY_AGE_SECS, MAX_KEY_AGE_SECS),
            "between 1d and 3650d",
        );
        Some(PostureSettings {
            digest_at: digest_at?,
            drop_alert_points: drop_alert_points?,
            suppress_risk: suppress_risk?,
            iam3_max_key_age: iam3_max_key_age?,
        })
    }

    fn audit(&mut self, raw: RawAudit, base: &Path) -> Option<AuditSettings> {
        let interval = self.duration(
            "audit.anchor_interval",
            raw.anchor_interval.clone(),
            "1h",
            (MIN_ANCHOR_INTERVAL_SECS, MAX_ANCHOR_INTERVAL_SECS),
            "between 1m and 30d",
        );
        let prefix = raw.anchor_prefix.unwrap_or_default();
        if prefix.chars().any(char::is_control) {
            self.problem(
                "audit.anchor_prefix",
                "contains a control character: write a key prefix such as \"hanko/prod\"",
            );
        }
        let Some(bucket) = raw.anchor_bucket else {
            // Anchoring is off; keys that only matter with a bucket would silently do nothing.
            if raw.anchor_key_file.is_some() || raw.anchor_interval.is_some() {
                self.problem(
                    "audit.anchor_bucket",
                    "missing: anchor_key_file and anchor_interval do nothing without the S3 bucket the digests go to; set anchor_bucket or remove them",
                );
                return None;
            }
            interval?;
            return Some(AuditSettings::default());
        };
        let bucket_ok = is_bucket_name(&bucket);
        if !bucket_ok {
            self.problem(
                "audit.anchor_bucket",
                format!("`{}` is not an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, e.g. \"hanko-audit-anchors\"", bucket.escape_debug()),
            );
        }
        let key_file = match raw.anchor_key_file {
            None => {
                self.problem(
                    "audit.anchor_key_file",
                    "missing: the Ed25519 private key that signs the digests, in PKCS#8 PEM (`openssl genpkey -algorithm ed25519 -out anchor.pem`)",
                );
                None
            }
            Some(f) if f.trim().is_empty() => {
                self.problem(
                    "audit.anchor_key_file",
                    "is empty: name the PEM file of the Ed25519 private key, e.g. \"/etc/hanko/anchor.pem\"",
                );
                None
            }
            Some(f) => Some(resolve(base, &f)),
        };
        if !bucket_ok || prefix.chars().any(char::is_control) {
            return None;
        }
        Some(AuditSettings {
            anchor: Some(AnchorSettings {
                bucket,
                prefix,
                key_file: key_file?,
                interval: interval?.to_std().ok()?,
            }),
        })
    }

    fn http(&mut self, raw: RawHttp) -> Option<HttpSettings> {
        let text = raw.listen.unwrap_or_else(|| "127.0.0.1:9464".to_owned());
        match text.parse::<SocketAddr>() {
            Ok(listen) => Some(HttpSettings { listen }),
            Err(_) => {
                self.problem(
                    "http.listen",
                    format!("`{text}` is not an address and port: write it like \"127.0.0.1:9464\" or \"[::1]:9464\""),
                );
                None
            }
        }
    }
}

/// `HH:MM`, 24-hour, as the digest time of day (UTC).
fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
    let bad = || {
        format!("`{s}` is not a time of day: write it as HH:MM in UTC, 24-hour, e.g. \"09:00\" or \"17:30\"")
    };
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let two_digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let hour: u32 = h.parse().map_err(|_| bad())?;
    let minute: u32 = m.parse().map_err(|_| bad())?;
    NaiveTime::from_hms_opt(hour, minute, 0).ok_or_else(bad)
}

/// A Discord snowflake: 17 to 20 digits, no leading zero, fits in u64.
fn parse_snowflake(s: &str) -> Result<u64, String> {
    let digits_only = s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || !(17..=20).contains(&s.len()) || s.starts_with('0') {
        return Err(format!(
            "`{s}` is not a Discord id: 17 to 20 digits, e.g. \"123456789012345678\" (Developer Mode, right-click, Copy ID)"
        ));
    }
    s.parse::<u64>()
        .map_err(|_| format!("`{s}` is too large for a Discord id"))
}

/// An S3 bucket name (the general-purpose bucket rules): 3 to 63 characters, lowercase
/// letters, digits, dots and hyphens, starting and ending with a letter or digit.
fn is_bucket_name(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
        && !s.contains("..")
}

fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `us-east-1`, `us-gov-west-1`, `ap-southeast-2`: lowercase words, then a number.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.split_last() {
        Some((number, words)) if words.len() >= 2 => {
            !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
                && words
                    .iter()
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        }
        _ => false,
    }
}

fn check_http_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{u}` is not an http(s) URL: it must start with http:// or https://")
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || u.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{u}` is not a valid URL: write it like https://host:port/path"
        ));
    }
    Ok(())
}

fn check_role_template(t: &str) -> Result<(), String> {
    if !t.starts_with("arn:aws") {
        return Err(format!(
            "`{t}` is not an IAM role ARN: write it like \"arn:aws:iam::{{account}}:role/HankoResponder\""
        ));
    }
    if !t.contains("{account}") {
        return Err(format!(
            "`{t}` has no {{account}} placeholder: hanko puts the finding's account id there, e.g. \"arn:aws:iam::{{account}}:role/HankoResponder\""
        ));
    }
    let stripped = t.replace("{account}", "");
    if stripped.contains('{') || stripped.contains('}') {
        return Err(format!(
            "`{t}` has a placeholder other than {{account}}, the only one hanko fills in"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/hanko/hanko.toml";

    /// A minimal valid config; tests append to or replace parts of it.
    const BASE: &str = r#"
[discord]
guild_id = "123456789012345678"
channel_id = "223456789012345678"

[responders]
approver_roles = ["323456789012345678"]

[aws]
regions = ["us-east-1"]
"#;

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, Path::new(ORIGIN)) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected Invalid, got {other:?}\n---\n{text}"),
        }
    }

    fn keys(text: &str) -> Vec<String> {
        problems(text).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let s = parse(BASE, Path::new(ORIGIN)).unwrap();
        assert_eq!(
            s.discord.token_source,
            TokenSource::Env("HANKO_DISCORD_TOKEN".into())
        );
        assert_eq!(s.discord.guild_id, 123_456_789_012_345_678);
        assert_eq!(s.discord.channel_id, 223_456_789_012_345_678);
        assert_eq!(s.discord.api_base, None);
        assert_eq!(s.policy.approvals, Approvals::default());
        assert_eq!(s.policy.ttl, Duration::hours(4));
        assert!(!s.policy.allow_self_approval);
        assert_eq!(
            s.policy.approver_roles,
            BTreeSet::from(["323456789012345678".to_owned()])
        );
        assert_eq!(s.ingest.poll_interval, std::time::Duration::from_secs(60));
        assert_eq!(s.ingest.backfill, Duration::hours(24));
        assert_eq!(s.ingest.min_severity, 4.0);
        assert_eq!(s.ingest.quarantine_max, DEFAULT_QUARANTINE_MAX);
        assert!(s.ingest.guardduty);
        assert!(!s.ingest.securityhub);
        assert_eq!(s.store.path, PathBuf::from("/var/lib/hanko"));
        assert_eq!(s.http.listen, "127.0.0.1:9464".parse().unwrap());
        assert_eq!(s.playbooks_path, None);
        assert_eq!(s.aws.accounts, None);
        assert!(s.aws.may_act_in("999999999999"));
        assert_eq!(s.posture.digest_at, NaiveTime::from_hms_opt(9, 0, 0));
        assert_eq!(s.posture.drop_alert_points, 5.0);
        assert_eq!(s.posture.suppress_risk, RiskClass::Evidence);
        assert_eq!(s.posture.iam3_max_key_age, Duration::days(90));
        assert_eq!(s.posture, PostureSettings::default());
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
[discord]
token_file = "secrets/discord"
guild_id = "123456789012345678"
channel_id = "223456789012345678"
api_base = "http://127.0.0.1:8080"

[responders]
approver_roles = ["323456789012345678"]
approver_users = ["423456789012345678"]
admin_roles = ["523456789012345678"]

[policy]
approvals = { evidence = 2, contain = 3, disrupt = 4 }
allow_self_approval = true
request_ttl = "30m"

[aws]
regions = ["us-east-1", "eu-west-1"]
role_arn_template = "arn:aws:iam::{account}:role/HankoResponder"
endpoint_url = "http://127.0.0.1:5000"
accounts = ["111111111111"]

[ingest]
guardduty = false
poll_interval = "5m"
backfill = "7d"
min_severity = 7
sqs_queue_url = "https://sqs.us-east-1.amazonaws.com/111111111111/hanko"
securityhub = true
detector_ids = { "eu-west-1" = "abc123" }

[store]
path = "data"

[http]
listen = "[::1]:9000"

[playbooks]
path = "/etc/hanko/playbooks.toml"

[posture]
digest = true
digest_at = "17:45"
drop_alert_points = 2.5
suppress_risk = "contain"
iam3_max_key_age = "45d"
"#;
        let s = parse(text, Path::new(ORIGIN)).unwrap();
        assert_eq!(
            s.discord.token_source,
            TokenSource::File("/etc/hanko/secrets/discord".into())
        );
        assert_eq!(s.discord.api_base.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(s.responders.admin_roles.len(), 1);
        assert_eq!(
            s.policy.approver_users,
            BTreeSet::from(["423456789012345678".to_owned()])
        );
        assert_eq!(
            s.policy.approvals,
            Approvals {
                evidence: 2,
                contain: 3,
                disrupt: 4
            }
        );
        assert!(s.policy.allow_self_approval);
        assert_eq!(s.policy.ttl, Duration::minutes(30));
        assert_eq!(s.aws.regions, vec!["us-east-1", "eu-west-1"]);
        assert_eq!(
            s.aws.role_arn("222222222222").as_deref(),
            Some("arn:aws:iam::222222222222:role/HankoResponder")
        );
        assert!(s.aws.may_act_in("111111111111"));
        assert!(!s.aws.may_act_in("222222222222"));
        assert_eq!(s.ingest.poll_interval, std::time::Duration::from_secs(300));
        assert_eq!(s.ingest.backfill, Duration::days(7));
        assert_eq!(s.ingest.min_severity, 7.0);
        assert!(!s.ingest.guardduty && s.ingest.securityhub);
        assert_eq!(s.ingest.detector_ids["eu-west-1"], "abc123");
        assert_eq!(s.store.path, PathBuf::from("/etc/hanko/data"));
        assert_eq!(s.http.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(
            s.playbooks_path,
            Some(PathBuf::from("/etc/hanko/playbooks.toml"))
        );
        assert_eq!(
            s.posture,
            PostureSettings {
                digest_at: NaiveTime::from_hms_opt(17, 45, 0),
                drop_alert_points: 2.5,
                suppress_risk: RiskClass::Contain,
                iam3_max_key_age: Duration::days(45),
            }
        );
    }

    #[test]
    fn the_posture_digest_can_be_turned_off_and_whole_points_are_numbers() {
        let s = parse(
            &format!("{BASE}\n[posture]\ndigest = false\ndrop_alert_points = 10\n"),
            Path::new(ORIGIN),
        )
        .unwrap();
        assert_eq!(s.posture.digest_at, None);
        assert_eq!(s.posture.drop_alert_points, 10.0);
        // Off, but a bad time is still reported: it would bite when turned back on.
        let p = problems(&format!(
            "{BASE}\n[posture]\ndigest = false\ndigest_at = \"9am\"\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "posture.digest_at");
        assert_eq!(
            p[0].message,
            "`9am` is not a time of day: write it as HH:MM in UTC, 24-hour, e.g. \"09:00\" or \"17:30\""
        );
        let p = problems(&format!("{BASE}\n[posture]\nsuppress_risk = \"low\"\n"));
        assert_eq!(
            p[0].message,
            "`low` is not a risk class: use evidence, contain or disrupt (their approvers are set in policy.approvals)"
        );
    }

    #[test]
    fn times_of_day() {
        for (text, h, m) in [
            ("00:00", 0, 0),
            ("09:00", 9, 0),
            ("23:59", 23, 59),
            (" 07:05 ", 7, 5),
        ] {
            assert_eq!(
                parse_time_of_day(text),
                Ok(NaiveTime::from_hms_opt(h, m, 0).unwrap()),
                "{text}"
            );
        }
        for bad in [
            "24:00", "12:60", "9:00", "09:0", "0900", "09:00:00", "-1:00", "", "ab:cd", "09:00Z",
        ] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }

    /// Each entry: a change to BASE (appended TOML, or a replaced line) and the one problem key
    /// it must produce.
    #[test]
    fn bad_configs_name_their_key() {
        let table: &[(&str, &str, &str)] = &[
            // (replace this, with this, expected key)
            ("", "[policy]\naprovals = { evidence = 1 }", "policy.aprovals"),
            ("", "[policy]\napprovals = { evidnce = 1 }", "policy.approvals.evidnce"),
            ("", "[policy]\napprovals = { disrupt = 0 }", "policy.approvals.disrupt"),
            ("", "[policy]\napprovals = { contain = 11 }", "policy.approvals.contain"),
            ("", "[policy]\napprovals = 2", "policy.approvals"),
            ("", "[policy]\nrequest_ttl = \"1m\"", "policy.request_ttl"),
            ("", "[policy]\nrequest_ttl = \"8d\"", "policy.request_ttl"),
            ("", "[policy]\nrequest_ttl = \"4 hours\"", "policy.request_ttl"),
            ("", "[policy]\nrequest_ttl = 4", "policy.request_ttl"),
            ("", "[policy]\nallow_self_approval = \"no\"", "policy.allow_self_approval"),
            ("", "[polcy]\nrequest_ttl = \"4h\"", "polcy"),
            ("", "[ingest]\npoll_interval = \"5s\"", "ingest.poll_interval"),
            ("", "[ingest]\nbackfill = \"91d\"", "ingest.backfill"),
            ("", "[ingest]\nmin_severity = 11.0", "ingest.min_severity"),
            ("", "[ingest]\nmin_severity = -1", "ingest.min_severity"),
            ("", "[ingest]\nquarantine_max = 0", "ingest.quarantine_max"),
            ("", "[ingest]\nquarantine_max = 100001", "ingest.quarantine_max"),
            ("", "[ingest]\nsqs_queue_url = \"sqs://queue\"", "ingest.sqs_queue_url"),
            ("", "[ingest]\ndetector_ids = { \"us-west-2\" = \"abc\" }", "ingest.detector_ids.us-west-2"),
            ("", "[ingest]\nguardduty = false", "ingest.guardduty"),
            ("", "[http]\nlisten = \"localhost\"", "http.listen"),
            ("", "[http]\nlisten = \"0.0.0.0:99999\"", "http.listen"),
            ("", "[store]\npath = \"\"", "store.path"),
            ("", "[playbooks]\npath = \"\"", "playbooks.path"),
            ("", "[playbooks]\nfile = \"p.toml\"", "playbooks.file"),
            ("", "[http]\nlisten = \"127.0.0.1:1\"\nport = 1", "http.port"),
            ("regions = [\"us-east-1\"]", "regions = []", "aws.regions"),
            ("regions = [\"us-east-1\"]", "", "aws.regions"),
            ("regions = [\"us-east-1\"]", "regions = [\"US-EAST-1\"]", "aws.regions[0]"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\", \"useast1\"]", "aws.regions[1]"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\", \"us-east-1\"]", "aws.regions[1]"),
            ("regions = [\"us-east-1\"]", "regions = \"us-east-1\"", "aws.regions"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\nrole_arn_template = \"arn:aws:iam::123:role/X\"", "aws.role_arn_template"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\nrole_arn_template = \"iam::{account}:role/X\"", "aws.role_arn_template"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\nrole_arn_template = \"arn:aws:iam::{account}:role/{name}\"", "aws.role_arn_template"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\nendpoint_url = \"127.0.0.1:5000\"", "aws.endpoint_url"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\naccounts = [\"1234\"]", "aws.accounts[0]"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\naccounts = [123456789012]", "aws.accounts"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\naccounts = []", "aws.accounts"),
            ("regions = [\"us-east-1\"]", "regions = [\"us-east-1\"]\nregion = \"us-east-1\"", "aws.region"),
            ("guild_id = \"123456789012345678\"", "guild_id = 123456789012345678", "discord.guild_id"),
            ("guild_id = \"123456789012345678\"", "guild_id = \"12345\"", "discord.guild_id"),
            ("guild_id = \"123456789012345678\"", "guild_id = \"99999999999999999999\"", "discord.guild_id"),
            ("guild_id = \"123456789012345678\"", "guild_id = \"0123456789012345678\"", "discord.guild_id"),
            ("guild_id = \"123456789012345678\"", "", "discord.guild_id"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"my-channel\"", "discord.channel_id"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"223456789012345678\"\napi_base = \"discord.com\"", "discord.api_base"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"223456789012345678\"\ntoken = \"abc\"", "discord.token"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"223456789012345678\"\ntoken_env = \"A\"\ntoken_file = \"/f\"", "discord.token_file"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"223456789012345678\"\ntoken_env = \"MTIz.abc.def\"", "discord.token_env"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"223456789012345678\"\ntoken_file = \"\"", "discord.token_file"),
            ("channel_id = \"223456789012345678\"", "channel_id = \"223456789012345678\"\nchanel = \"1\"", "discord.chanel"),
            ("approver_roles = [\"323456789012345678\"]", "approver_roles = []", "responders.approver_roles"),
            ("approver_roles = [\"323456789012345678\"]", "", "responders.approver_roles"),
            ("approver_roles = [\"323456789012345678\"]", "approver_roles = [\"323456789012345678\", \"x\"]", "responders.approver_roles[1]"),
            ("approver_roles = [\"323456789012345678\"]", "approver_roles = [323456789012345678]", "responders.approver_roles"),
            ("approver_roles = [\"323456789012345678\"]", "approver_roles = [\"323456789012345678\"]\nadmin_roles = [\"1\"]", "responders.admin_roles[0]"),
            ("", "[posture]\ndigest_at = \"9:00\"", "posture.digest_at"),
            ("", "[posture]\ndigest_at = \"25:00\"", "posture.digest_at"),
            ("", "[posture]\ndigest_at = 900", "posture.digest_at"),
            ("", "[posture]\ndigest = \"no\"", "posture.digest"),
            ("", "[posture]\ndrop_alert_points = -1", "posture.drop_alert_points"),
            ("", "[posture]\ndrop_alert_points = 101.0", "posture.drop_alert_points"),
            ("", "[posture]\ndrop_alert_points = \"5\"", "posture.drop_alert_points"),
            ("", "[posture]\nsuppress_risk = \"Evidence!\"", "posture.suppress_risk"),
            ("", "[posture]\nsuppress_risk = 1", "posture.suppress_risk"),
            ("", "[posture]\niam3_max_key_age = \"12h\"", "posture.iam3_max_key_age"),
            ("", "[posture]\niam3_max_key_age = \"3651d\"", "posture.iam3_max_key_age"),
            ("", "[posture]\niam3_max_key_age = 90", "posture.iam3_max_key_age"),
            ("", "[posture]\niam3_max_key_age = \"90 days\"", "posture.iam3_max_key_age"),
            ("", "[posture]\ndigest_time = \"09:00\"", "posture.digest_time"),
            ("", "[posture]\nregions = []", "posture.regions"),
        ];
        for (from, to, want) in table {
            let text = if from.is_empty() {
                format!("{BASE}\n{to}\n")
            } else {
                assert!(BASE.contains(from), "{from}");
                BASE.replacen(from, to, 1)
            };
            let got = keys(&text);
            assert_eq!(got, vec![want.to_string()], "\n---\n{text}");
        }
    }

    #[test]
    fn unknown_keys_suggest_the_close_one() {
        let p = problems(&format!(
            "{BASE}\n[policy]\naprovals = {{ evidence = 1 }}\n"
        ));
        assert_eq!(
            p[0].display(Path::new("hanko.toml")).to_string(),
            "hanko.toml: policy.aprovals: unknown key; did you mean policy.approvals?"
        );
        let p = problems(&format!("{BASE}\n[polcy]\n"));
        assert_eq!(p[0].message, "unknown key; did you mean policy?");
        let p = problems(&format!("{BASE}\n[policy]\nregions = []\n"));
        assert_eq!(p[0].key, "policy.regions");
        assert_eq!(p[0].message, "unknown key here; `regions` belongs in [aws]");
        let p = problems(&format!("{BASE}\n[ingest]\nzzzzzz = 1\n"));
        assert!(
            p[0].message
                .starts_with("unknown key; the keys of [ingest] are guardduty, "),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn several_problems_are_reported_together() {
        let text = r#"
[discord]
guild_id = 123
channel_id = "x"
token = "MTIzNDU2.secret.value"

[policy]
aprovals = { evidence = 1 }
approvals = { disrupt = 0, evidnce = 1 }
request_ttl = "1m"

[aws]
regions = []

[ingest]
poll_interval = "1s"
min_severity = "high"

[http]
listen = "nowhere"
"#;
        let mut got = keys(text);
        got.sort();
        let mut want = vec![
            "discord.guild_id",
            "discord.channel_id",
            "discord.token",
            "policy.aprovals",
            "policy.approvals.disrupt",
            "policy.approvals.evidnce",
            "policy.request_ttl",
            "aws.regions",
            "ingest.poll_interval",
            "ingest.min_severity",
            "http.listen",
            "responders.approver_roles",
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn no_message_echoes_a_token() {
        let secret = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.secretsecretsecret";
        for line in [
            format!("token = \"{secret}\""),
            format!("token_env = \"{secret}\""),
        ] {
            let text = BASE.replacen("[discord]", &format!("[discord]\n{line}"), 1);
            let err = parse(&text, Path::new(ORIGIN)).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("secretsecret"), "{shown}");
            assert!(shown.contains("token_env"), "{shown}");
        }
    }

    #[test]
    fn sections_must_be_tables() {
        let p = problems(&format!("policy = 1\n{BASE}"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "policy");
        assert_eq!(
            p[0].message,
            "must be a table (a `[policy]` section), not an integer"
        );
        let p = problems(&format!("token = \"x\"\nregions = []\n{BASE}"));
        assert_eq!(p[0].key, "regions");
        assert_eq!(p[0].message, "unknown key here; `regions` belongs in [aws]");
        assert_eq!(p[1].key, "token");
        assert!(p[1]
            .message
            .starts_with("secrets never go in the config file"));
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let text = "[discord]\nguild_id = \"1\nchannel_id = 2\n";
        match parse(text, Path::new(ORIGIN)) {
            Err(ConfigError::Syntax {
                line, column, path, ..
            }) => {
                assert_eq!(path, PathBuf::from(ORIGIN));
                assert_eq!((line, column), (2, 14));
            }
            other => panic!("{other:?}"),
        }
        // Duplicate keys are syntax errors too.
        let dup = format!("{BASE}\n[aws]\nregions = []\n");
        let err = parse(&dup, Path::new(ORIGIN)).unwrap_err();
        assert!(
            matches!(err, ConfigError::Syntax { line: 12, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn env_override_of_api_base() {
        let s = parse(BASE, Path::new(ORIGIN)).unwrap();
        let set = |v: &'static str| move |name: &str| (name == API_BASE_ENV).then(|| v.to_owned());
        let s2 = apply_env(s.clone(), Path::new(ORIGIN), set("http://127.0.0.1:4000")).unwrap();
        assert_eq!(
            s2.discord.api_base.as_deref(),
            Some("http://127.0.0.1:4000")
        );
        let unchanged = apply_env(s.clone(), Path::new(ORIGIN), |_| None).unwrap();
        assert_eq!(unchanged, s);
        match apply_env(s, Path::new(ORIGIN), set("127.0.0.1:4000")) {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert_eq!(problems[0].key, "discord.api_base");
                assert!(problems[0].message.contains(API_BASE_ENV));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn edit_distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("aprovals", "approvals", 1),
            ("polcy", "policy", 1),
            ("kitten", "sitting", 3),
            ("abc", "", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn field_names_follow_the_raw_structs() {
        assert_eq!(
            field_names::<RawConfig>(),
            [
                "discord",
                "responders",
                "policy",
                "aws",
                "ingest",
                "store",
                "http",
                "playbooks",
                "posture",
                "audit"
            ]
        );
        assert_eq!(
            field_names::<RawAudit>(),
            [
                "anchor_bucket",
                "anchor_prefix",
                "anchor_key_file",
                "anchor_interval"
            ]
        );
        assert_eq!(
            field_names::<RawApprovals>(),
            ["evidence", "contain", "disrupt"]
        );
    }

    /// The test key pair of `tests/fixtures/anchor`, made by openssl.
    fn fixture_key(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/anchor")
            .join(name)
    }

    #[test]
    fn the_audit_section_is_read_with_its_defaults() {
        let s = parse(BASE, Path::new(ORIGIN)).unwrap();
        assert_eq!(
            s.audit,
            AuditSettings::default(),
            "no [audit]: nothing anchored"
        );
        let s = parse(
            &format!("{BASE}\n[audit]\nanchor_bucket = \"hanko-audit\"\nanchor_key_file = \"anchor.pem\"\n"),
            Path::new(ORIGIN),
        )
        .unwrap();
        assert_eq!(
            s.audit.anchor,
            Some(AnchorSettings {
                bucket: "hanko-audit".into(),
                prefix: String::new(),
                key_file: PathBuf::from("/etc/hanko/anchor.pem"),
                interval: std::time::Duration::from_secs(3600),
            })
        );
        let s = parse(
            &format!("{BASE}\n[audit]\nanchor_bucket = \"hanko-audit\"\nanchor_prefix = \"hanko/prod\"\nanchor_key_file = \"/k/a.pem\"\nanchor_interval = \"15m\"\n"),
            Path::new(ORIGIN),
        )
        .unwrap();
        let a = s.audit.anchor.unwrap();
        assert_eq!(a.prefix, "hanko/prod");
        assert_eq!(a.interval, std::time::Duration::from_secs(900));
    }

    #[test]
    fn bad_audit_keys_name_the_key_and_the_fix() {
        let audit = |lines: &str| problems(&format!("{BASE}\n[audit]\n{lines}\n"));
        let p = audit("anchor_bucket = \"hanko-audit\"");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "audit.anchor_key_file");
        assert!(
            p[0].message.contains("openssl genpkey -algorithm ed25519"),
            "{}",
            p[0].message
        );
        let p = audit("anchor_key_file = \"a.pem\"");
        assert_eq!(p[0].key, "audit.anchor_bucket");
        assert!(p[0].message.starts_with("missing"), "{}", p[0].message);
        let p = audit("anchor_bucket = \"Not_A_Bucket\"\nanchor_key_file = \"a.pem\"");
        assert_eq!(p[0].key, "audit.anchor_bucket");
        assert!(p[0].message.contains("lowercase"), "{}", p[0].message);
        let p = audit("anchor_bucket = \"b-1\"\nanchor_key_file = \"a.pem\"\nanchor_interval = 60");
        assert_eq!(p[0].key, "audit.anchor_interval");
        assert!(
            p[0].message.contains("write durations as strings"),
            "{}",
            p[0].message
        );
        let p = audit(
            "anchor_bucket = \"b-1\"\nanchor_key_file = \"a.pem\"\nanchor_interval = \"10s\"",
        );
        assert_eq!(p[0].key, "audit.anchor_interval");
        assert!(
            p[0].message.contains("between 1m and 30d"),
            "{}",
            p[0].message
        );
        let p = audit("anchor_bukcet = \"b-1\"");
        assert_eq!(p[0].key, "audit.anchor_bukcet");
        assert!(
            p[0].message.contains("did you mean audit.anchor_bucket?"),
            "{}",
            p[0].message
        );
        let p = audit("anchor_bucket = \"b-1\"\nanchor_key_file = \"\"");
        assert_eq!(p[0].key, "audit.anchor_key_file");
    }

    #[test]
    fn check_reads_the_anchor_key_file_and_never_prints_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hanko.toml");
        let write = |key_file: &Path| {
            std::fs::write(
                &config,
                format!(
                    "{BASE}\n[audit]\nanchor_bucket = \"hanko-audit\"\nanchor_key_file = \"{}\"\n",
                    key_file.display()
                ),
            )
            .unwrap();
        };
        write(&fixture_key("anchor.pem"));
        assert_eq!(check(&config), Vec::<String>::new());

        write(&dir.path().join("missing.pem"));
        let lines = check(&config);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("audit.anchor_key_file"), "{}", lines[0]);
        assert!(lines[0].contains("no such file"), "{}", lines[0]);

        // A public key (or anything else) where the private key belongs.
        write(&fixture_key("anchor.pub.pem"));
        let lines = check(&config);
        assert!(lines[0].contains("audit.anchor_key_file"), "{}", lines[0]);
        assert!(lines[0].contains("PKCS#8"), "{}", lines[0]);
        let secret = "MC4CAQAwBQYDK2VwBCIE-not-a-key";
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, secret).unwrap();
        write(&garbage);
        let lines = check(&config);
        assert!(lines[0].contains("audit.anchor_key_file"), "{}", lines[0]);
        assert!(!lines.join("\n").contains(secret), "{lines:?}");
    }

    #[test]
    fn raw_structs_alone_deny_unknown_fields() {
        let err = toml::from_str::<RawConfig>("[policy]\naprovals = 1\n").unwrap_err();
        assert!(err.message().contains("aprovals"), "{}", err.message());
    }

    #[test]
    fn regions() {
        for ok in ["us-east-1", "us-gov-west-1", "ap-southeast-2", "cn-north-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "us-east",
            "useast1",
            "US-EAST-1",
            "us--1",
            "-east-1",
            "us-east-1a",
            "",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret("hunter2-token".to_owned());
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn token_from_env() {
        let name = "HANKO_TEST_TOKEN_FROM_ENV_7F3A";
        std::env::set_var(name, "  tok-value-123\n");
        let secret = TokenSource::Env(name.into()).read().unwrap();
        assert_eq!(secret.expose(), "tok-value-123");
        std::env::set_var(name, " ");
        let err = TokenSource::Env(name.into())
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains("empty"), "{err}");
        std::env::remove_var(name);
    }

    #[test]
    fn token_errors_name_the_variable_or_file_not_a_value() {
        let name = "HANKO_TEST_TOKEN_SURELY_UNSET_91C2";
        let err = TokenSource::Env(name.into())
            .read()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("the Discord token variable {name} is not set: export the bot token in it, or point discord.token_file at a file holding it")
        );

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = TokenSource::File(missing.clone())
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(err.contains("no such file"), "{err}");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = TokenSource::File(empty.clone())
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");

        let full = dir.path().join("token");
        std::fs::write(&full, "file-token-456\n").unwrap();
        assert_eq!(
            TokenSource::File(full).read().unwrap().expose(),
            "file-token-456"
        );
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hanko.example.toml");
        let s = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.aws.regions, vec!["us-east-1"]);
        assert_eq!(s.policy.approvals, Approvals::default());
        assert_eq!(s.policy.ttl, Duration::hours(4));
        assert_eq!(s.posture, PostureSettings::default());
        assert!(check(&path).is_empty());
    }

    #[test]
    fn check_prints_one_line_per_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hanko.toml");
        std::fs::write(
            &path,
            format!("{BASE}\n[policy]\nrequest_ttl = \"1m\"\nallow_self = true\n"),
        )
        .unwrap();
        let lines = check(&path);
        let file = path.display().to_string();
        assert_eq!(
            lines,
            vec![
                format!("{file}: policy.allow_self: unknown key; the keys of [policy] are approvals, allow_self_approval, request_ttl"),
                format!("{file}: policy.request_ttl: `1m` is out of range: use between 5m and 7d"),
            ]
        );
        let missing = dir.path().join("absent.toml");
        assert_eq!(
            check(&missing),
            vec![format!(
                "{}: cannot read the config file: no such file",
                missing.display()
            )]
        );
        std::fs::write(&path, format!("{BASE}\n[playbooks]\npath = \"pb.toml\"\n")).unwrap();
        let lines = check(&path);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("playbooks.path"), "{lines:?}");
    }
}
