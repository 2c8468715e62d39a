//! Stage 2, validation: the raw values become the typed [`Settings`] (snowflakes, durations,
//! URLs, socket addresses, the approval [`Policy`]), every problem collected. Account and
//! region checks are [`crate::ids`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveTime};

use super::raw::*;
use super::*;
use crate::approval::{Approvals, Policy};
use crate::finding::SeverityLabel;
use crate::ids::{is_account_id, is_bucket_name, is_region};
use crate::plan::RiskClass;
use crate::util::parse_duration;

impl RawConfig {
    /// Builds the settings, pushing every problem found. `None` only if a required value is
    /// missing or invalid (the problems say which).
    pub(super) fn validate(self, base: &Path, problems: &mut Vec<Problem>) -> Option<Settings> {
        let mut v = Validator { problems };
        let discord = v.discord(self.discord, base);
        let responders = v.responders(self.responders);
        let policy = v.policy(self.policy, &responders);
        let aws = v.aws(self.aws);
        let ingest = v.ingest(self.ingest, aws.as_ref());
        let store = v.store(self.store, base, aws.as_ref());
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
        let notify = v.notify(self.notify);
        let investigate = v.investigate(self.investigate);
        Some(Settings {
            discord: discord?,
            responders,
            policy: policy?,
            aws: aws?,
            ingest: ingest?,
            store: store?,
            http: http?,
            playbooks_path,
            posture: posture?,
            audit: audit?,
            notify: notify?,
            investigate: investigate?,
        })
    }
}

pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

pub(super) struct Validator<'p> {
    pub(super) problems: &'p mut Vec<Problem>,
}

impl Validator<'_> {
    /// Records a problem, unless `key` already has one: the first (a wrong type, say) is the
    /// most specific, and a follow-up "missing" would only repeat it.
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        if !self.problems.iter().any(|p| p.key == key) {
            self.problems.push(Problem::new(key, message));
        }
    }

    /// Runs `check` on an optional value, recording its error under `key`.
    pub(super) fn checked<T, U>(
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

    pub(super) fn duration(
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

    pub(super) fn discord(&mut self, raw: RawDiscord, base: &Path) -> Option<DiscordSettings> {
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
        let interactions = self.interactions(raw.interactions, raw.public_key);
        Some(DiscordSettings {
            token_source: token_source?,
            guild_id: guild_id?,
            channel_id: channel_id?,
            api_base: api_base?,
            interactions: interactions?,
        })
    }

    /// `discord.interactions` and `discord.public_key`: the key is required in `http` mode, and
    /// checked in either mode (a bad key would bite when the mode is switched).
    fn interactions(
        &mut self,
        mode: Option<String>,
        public_key: Option<String>,
    ) -> Option<Interactions> {
        let key = self.checked("discord.public_key", public_key, |k| parse_public_key(&k));
        match mode.as_deref().map(str::trim) {
            None | Some("gateway") => {
                key?;
                Some(Interactions::Gateway)
            }
            Some("http") => match key? {
                Some(public_key) => Some(Interactions::Http { public_key }),
                None => {
                    self.problem(
                        "discord.public_key",
                        "missing: with discord.interactions = \"http\" hanko checks every request's signature with the application's public key; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), 64 hex characters",
                    );
                    None
                }
            },
            Some(other) => {
                self.problem(
                    "discord.interactions",
                    format!("`{other}` is not a way to receive interactions: use \"gateway\" (hanko connects to Discord; the default) or \"http\" (Discord POSTs them to hanko's /interactions; set discord.public_key too)"),
                );
                None
            }
        }
    }

    pub(super) fn required_snowflake(
        &mut self,
        key: &str,
        value: Option<String>,
        what: &str,
    ) -> Option<u64> {
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

    pub(super) fn snowflakes(
        &mut self,
        key: &str,
        values: Option<Vec<String>>,
    ) -> BTreeSet<String> {
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

    pub(super) fn responders(&mut self, raw: RawResponders) -> Responders {
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

    pub(super) fn policy(&mut self, raw: RawPolicy, responders: &Responders) -> Option<Policy> {
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

    /// `[store]`: the engine and where it keeps its data.
    pub(super) fn store(
        &mut self,
        raw: RawStore,
        base: &Path,
        aws: Option<&AwsSettings>,
    ) -> Option<StoreSettings> {
        let path = resolve(base, raw.path.as_deref().unwrap_or("/var/lib/hanko"));
        if raw.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            self.problem(
                "store.path",
                "is empty: name the directory of the database, e.g. \"/var/lib/hanko\"",
            );
        }
        let backend = match raw.backend.as_deref().map(str::trim) {
            None | Some("sled") => {
                if raw.table.is_some() || raw.region.is_some() {
                    let key = if raw.table.is_some() {
                        "store.table"
                    } else {
                        "store.region"
                    };
                    self.problem(
                        key,
                        "is for the DynamoDB store: set backend = \"dynamodb\" in [store], or remove the key to keep the sled store in store.path",
                    );
                    return None;
                }
                StoreBackend::Sled
            }
            Some("dynamodb") => {
                let table = match raw.table.as_deref().map(str::trim) {
                    None | Some("") => {
                        self.problem(
                            "store.table",
                            "missing: name the DynamoDB table hanko keeps its state in, e.g. table = \"hanko\" (create it with `hanko store init --config FILE`)",
                        );
                        return None;
                    }
                    Some(t) if !valid_table_name(t) => {
                        self.problem(
                            "store.table",
                            format!("`{t}` is not a DynamoDB table name: use 3 to 255 letters, digits, `_`, `-` or `.`"),
                        );
                        return None;
                    }
                    Some(t) => t.to_owned(),
                };
                let region = match raw.region.as_deref().map(str::trim) {
                    Some("") => {
                        self.problem(
                            "store.region",
                            "is empty: name the table's region, e.g. region = \"us-east-1\", or remove the key to use the first of aws.regions",
                        );
                        return None;
                    }
                    Some(r) if !is_region(r) => {
                        self.problem(
                            "store.region",
                            format!("`{r}` is not an AWS region: write one such as \"us-east-1\", or remove the key to use the first of aws.regions"),
                        );
                        return None;
                    }
                    Some(r) => r.to_owned(),
                    None => aws?.regions.first()?.clone(),
                };
                StoreBackend::DynamoDb { table, region }
            }
            Some(other) => {
                self.problem(
                    "store.backend",
                    format!("`{other}` is not a store backend: use \"sled\" (one process, a local directory; the default) or \"dynamodb\" (several replicas, one table)"),
                );
                return None;
            }
        };
        Some(StoreSettings { path, backend })
    }

    pub(super) fn aws(&mut self, raw: RawAws) -> Option<AwsSettings> {
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
                if is_account_id(&account) {
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

    pub(super) fn has_problem(&self, prefix: &str) -> bool {
        self.problems.iter().any(|p| p.key.starts_with(prefix))
    }

    pub(super) fn ingest(
        &mut self,
        raw: RawIngest,
        aws: Option<&AwsSettings>,
    ) -> Option<IngestSettings> {
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

    pub(super) fn posture(&mut self, raw: RawPosture) -> Option<PostureSettings> {
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

    pub(super) fn notify(&mut self, raw: RawNotify) -> Option<NotifySettings> {
        let defaults = NotifySettings::default();
        let page_roles = self.role_ids("notify.page_roles", raw.page_roles);
        let escalate_roles = match raw.escalate_roles {
            None => page_roles.clone(),
            given => self.role_ids("notify.escalate_roles", given),
        };
        let label =
            |v: &mut Self, key: &str, text: Option<String>, default: SeverityLabel| match text {
                None => Some(default),
                Some(t) => match SeverityLabel::parse(&t) {
                    Some(l) => Some(l),
                    None => {
                        v.problem(
                            key,
                            format!("`{t}` is not a severity: use low, medium, high or critical"),
                        );
                        None
                    }
                },
            };
        let page_at = label(self, "notify.page_at", raw.page_at, defaults.page_at);
        let quiet = match raw.quiet {
            None => Some(None),
            Some(q) => {
                let time = |v: &mut Self, key: &str, text: Option<String>| match text {
                    None => {
                        v.problem(
                            key,
                            "is missing: quiet hours need from, to and below, e.g. quiet = { from = \"22:00\", to = \"07:00\", below = \"critical\" }",
                        );
                        None
                    }
                    Some(t) => match parse_time_of_day(&t) {
                        Ok(t) => Some(t),
                        Err(message) => {
                            v.problem(key, message);
                            None
                        }
                    },
                };
                let from = time(self, "notify.quiet.from", q.from);
                let to = time(self, "notify.quiet.to", q.to);
                let below = match q.below {
                    None => {
                        self.problem(
                            "notify.quiet.below",
                            "is missing: name the lowest severity that still pages in quiet hours, e.g. below = \"critical\"",
                        );
                        None
                    }
                    given => label(self, "notify.quiet.below", given, SeverityLabel::Critical),
                };
                match (from, to, below) {
                    (Some(from), Some(to), Some(_)) if from == to => {
                        self.problem(
                            "notify.quiet.to",
                            "equals quiet.from: the quiet hours would be empty; give different times, or remove quiet",
                        );
                        None
                    }
                    (Some(from), Some(to), Some(below)) => {
                        Some(Some(QuietHours { from, to, below }))
                    }
                    _ => None,
                }
            }
        };
        let escalate_after = self.duration(
            "notify.escalate_after",
            raw.escalate_after,
            "10m",
            (60, 7 * 86_400),
            "between 1m and 7d",
        );
        Some(NotifySettings {
            page_roles: page_roles?,
            page_at: page_at?,
            quiet: quiet?,
            escalate_after: escalate_after?,
            escalate_roles: escalate_roles?,
        })
    }

    pub(super) fn investigate(&mut self, raw: RawInvestigate) -> Option<InvestigateSettings> {
        let lookback = self.duration(
            "investigate.lookback",
            raw.lookback,
            "24h",
            (60, 90 * 86_400),
            "between 1m and 90d (CloudTrail's event history keeps 90 days)",
        );
        let max_events = match raw.max_events {
            None => Some(DEFAULT_INVESTIGATE_MAX_EVENTS),
            Some(n) if (1..=i64::from(MAX_INVESTIGATE_MAX_EVENTS)).contains(&n) => {
                u32::try_from(n).ok()
            }
            Some(n) => {
                self.problem(
                    "investigate.max_events",
                    format!("{n} is out of range: read from 1 to {MAX_INVESTIGATE_MAX_EVENTS} events a region (default {DEFAULT_INVESTIGATE_MAX_EVENTS})"),
                );
                None
            }
        };
        Some(InvestigateSettings {
            enabled: raw.enabled.unwrap_or(true),
            lookback: lookback?,
            max_events: max_events?,
        })
    }

    /// Discord role ids (snowflakes) under `key`; `None` when one is not a snowflake.
    fn role_ids(&mut self, key: &str, values: Option<Vec<String>>) -> Option<BTreeSet<u64>> {
        let before = self.problems.len();
        let ids = self.snowflakes(key, values);
        if self.problems.len() > before {
            return None;
        }
        Some(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    pub(super) fn audit(&mut self, raw: RawAudit, base: &Path) -> Option<AuditSettings> {
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

    pub(super) fn http(&mut self, raw: RawHttp) -> Option<HttpSettings> {
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
pub(super) fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
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
pub(super) fn parse_snowflake(s: &str) -> Result<u64, String> {
    let digits_only = s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || !(17..=20).contains(&s.len()) || s.starts_with('0') {
        return Err(format!(
            "`{s}` is not a Discord id: 17 to 20 digits, e.g. \"123456789012345678\" (Developer Mode, right-click, Copy ID)"
        ));
    }
    s.parse::<u64>()
        .map_err(|_| format!("`{s}` is too large for a Discord id"))
}

/// A Discord application's public key: 64 hex characters of an Ed25519 public key. The value
/// is never echoed: it may be the bot token pasted into the wrong key.
pub(super) fn parse_public_key(s: &str) -> Result<DiscordPublicKey, String> {
    let s = s.trim();
    let mut bytes = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut bytes).is_err() {
        return Err(format!(
            "is not a Discord public key ({} characters): it is 64 hex characters; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), not the bot token",
            s.chars().count()
        ));
    }
    if ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_err() {
        return Err("is 64 hex characters but not an Ed25519 public key: copy PUBLIC KEY again from the Discord Developer Portal (your application, General Information)".to_owned());
    }
    Ok(DiscordPublicKey(bytes))
}

pub(super) fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn check_http_url(u: &str) -> Result<(), String> {
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

pub(super) fn check_role_template(t: &str) -> Result<(), String> {
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

/// DynamoDB's rule for a table name: 3 to 255 of `[A-Za-z0-9_.-]`.
fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
