//! The settings: what the rest of hanko sees of the config file, typed and validated, and
//! the secrets it names ([`TokenSource`], [`Secret`], which never prints).
//!
//! Built only by [`super::validation`]; uses [`crate::approval`] for the policy.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveTime, Utc};

use super::{io_reason, ConfigError};
use crate::approval::Policy;
use crate::finding::SeverityLabel;
use crate::plan::RiskClass;

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
    pub notify: NotifySettings,
    pub investigate: InvestigateSettings,
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
    /// How interactions reach hanko (`discord.interactions`, with `discord.public_key`).
    pub interactions: Interactions,
}

/// How Discord delivers interactions (clicks, modal submits, slash commands) to hanko.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Interactions {
    /// Over the gateway websocket hanko opens (`interactions = "gateway"`, the default).
    #[default]
    Gateway,
    /// Discord POSTs each one, signed, to hanko's `/interactions` (`interactions = "http"`);
    /// hanko opens no gateway connection.
    Http {
        /// The application's public key, which Discord's signatures are checked against.
        public_key: DiscordPublicKey,
    },
}

impl Interactions {
    pub fn is_http(&self) -> bool {
        matches!(self, Interactions::Http { .. })
    }
}

/// A Discord application's public key (`discord.public_key`): 32 bytes of an Ed25519 key that
/// decompresses to a curve point. Not a secret; shown as the Developer Portal shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DiscordPublicKey(pub [u8; 32]);

impl fmt::Debug for DiscordPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiscordPublicKey({})", hex::encode(self.0))
    }
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

/// `[notify]`: who is paged for a new card, and who is reminded of a request nobody answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// Role ids a card at or above [`Self::page_at`] mentions (`notify.page_roles`); empty:
    /// nothing pages.
    pub page_roles: BTreeSet<u64>,
    /// The lowest severity that pages (`notify.page_at`, default High).
    pub page_at: SeverityLabel,
    /// Quiet hours (`notify.quiet`): inside them only findings at or above `below` page.
    pub quiet: Option<QuietHours>,
    /// A Pending request with no vote this long after it was proposed gets a reminder
    /// (`notify.escalate_after`, default 10 minutes). The second reminder comes at half the
    /// request's time to live.
    pub escalate_after: Duration,
    /// Role ids a reminder mentions (`notify.escalate_roles`; default: the page roles).
    pub escalate_roles: BTreeSet<u64>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            page_roles: BTreeSet::new(),
            page_at: SeverityLabel::High,
            quiet: None,
            escalate_after: Duration::minutes(10),
            escalate_roles: BTreeSet::new(),
        }
    }
}

impl NotifySettings {
    /// Whether a new card of `severity`, posted at `now`, pages [`Self::page_roles`]: at or
    /// above `page_at`, and, inside quiet hours, at or above the quiet `below` too.
    pub fn pages(&self, severity: SeverityLabel, now: DateTime<Utc>) -> bool {
        if self.page_roles.is_empty() || severity < self.page_at {
            return false;
        }
        match &self.quiet {
            Some(q) if q.contains(now.time()) => severity >= q.below,
            _ => true,
        }
    }
}

/// `[investigate]`: what hanko looks up in CloudTrail about a leaked access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvestigateSettings {
    /// `investigate.enabled` (default true): look up what an access key did when its card is
    /// posted. Off: no CloudTrail call, no field on the card.
    pub enabled: bool,
    /// How far back the lookup goes (`investigate.lookback`, default 24 hours; CloudTrail's
    /// event history keeps 90 days).
    pub lookback: Duration,
    /// The most events read per region (`investigate.max_events`, default 1,000).
    pub max_events: u32,
}

/// `investigate.max_events` when the config does not set it.
pub const DEFAULT_INVESTIGATE_MAX_EVENTS: u32 = 1000;
/// The largest `investigate.max_events` accepted (200 pages a region, at 2 pages a second).
pub const MAX_INVESTIGATE_MAX_EVENTS: u32 = 10_000;

impl Default for InvestigateSettings {
    fn default() -> Self {
        InvestigateSettings {
            enabled: true,
            lookback: Duration::hours(24),
            max_events: DEFAULT_INVESTIGATE_MAX_EVENTS,
        }
    }
}

/// `notify.quiet = { from = "22:00", to = "07:00", below = "critical" }`: from `from` (inclusive)
/// to `to` (exclusive), UTC, across midnight when `to` is earlier than `from`; findings below
/// `below` do not page then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: NaiveTime,
    pub to: NaiveTime,
    pub below: SeverityLabel,
}

impl QuietHours {
    /// Whether `t` (UTC) is inside the quiet hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.from <= self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
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
    /// The sled database directory (`store.path`; unused with DynamoDB).
    pub path: PathBuf,
    /// Which engine (`store.backend`).
    pub backend: StoreBackend,
}

/// `store.backend`: where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// `"sled"`, the default: an embedded database in `store.path`, one process at a time.
    Sled,
    /// `"dynamodb"`: the table `store.table` in `store.region` (default: the first of
    /// `aws.regions`), shared by every replica.
    DynamoDb { table: String, region: String },
}

impl StoreSettings {
    /// Where to open the store. DynamoDB's endpoint: `AWS_ENDPOINT_URL_DYNAMODB` when set (the
    /// SDK reads it), else `aws_endpoint_url` (the config's `aws.endpoint_url`), else AWS's.
    pub fn location(&self, aws_endpoint_url: Option<&str>) -> crate::store::StoreLocation {
        match &self.backend {
            StoreBackend::Sled => crate::store::StoreLocation::Sled(self.path.clone()),
            StoreBackend::DynamoDb { table, region } => {
                let env_endpoint =
                    std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some_and(|v| !v.is_empty());
                crate::store::StoreLocation::DynamoDb(crate::store::dynamo::DynamoTarget {
                    table: table.clone(),
                    region: region.clone(),
                    endpoint_url: if env_endpoint {
                        None
                    } else {
                        aws_endpoint_url.map(str::to_owned)
                    },
                })
            }
        }
    }
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
pub struct Secret(pub(super) String);

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
