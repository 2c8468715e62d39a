//! Stage 1, raw: the TOML shapes (`Raw*`, serde, `deny_unknown_fields`, every key optional)
//! and the [`Reader`] that reads them one key at a time, so every unknown key (with "did you
//! mean ...?") and every value of the wrong type is reported under its full dotted name.
//!
//! The field names here ARE the config keys: a public contract. Uses only [`super::Problem`].

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Serialize};

use super::Problem;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) discord: RawDiscord,
    pub(super) responders: RawResponders,
    pub(super) policy: RawPolicy,
    pub(super) aws: RawAws,
    pub(super) ingest: RawIngest,
    pub(super) store: RawStore,
    pub(super) http: RawHttp,
    pub(super) playbooks: RawPlaybooks,
    pub(super) posture: RawPosture,
    pub(super) audit: RawAudit,
    pub(super) notify: RawNotify,
    pub(super) investigate: RawInvestigate,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDiscord {
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<String>,
    pub(super) guild_id: Option<String>,
    pub(super) channel_id: Option<String>,
    pub(super) api_base: Option<String>,
    pub(super) interactions: Option<String>,
    pub(super) public_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawResponders {
    pub(super) approver_roles: Option<Vec<String>>,
    pub(super) approver_users: Option<Vec<String>>,
    pub(super) admin_roles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPolicy {
    pub(super) approvals: Option<RawApprovals>,
    pub(super) allow_self_approval: Option<bool>,
    pub(super) request_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApprovals {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) evidence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contain: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) disrupt: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAws {
    pub(super) regions: Option<Vec<String>>,
    pub(super) role_arn_template: Option<String>,
    pub(super) endpoint_url: Option<String>,
    pub(super) accounts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIngest {
    pub(super) guardduty: Option<bool>,
    pub(super) poll_interval: Option<String>,
    pub(super) backfill: Option<String>,
    pub(super) min_severity: Option<f64>,
    pub(super) sqs_queue_url: Option<String>,
    pub(super) securityhub: Option<bool>,
    pub(super) detector_ids: Option<BTreeMap<String, String>>,
    pub(super) quarantine_max: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub(super) backend: Option<String>,
    pub(super) path: Option<String>,
    pub(super) table: Option<String>,
    pub(super) region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHttp {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPlaybooks {
    pub(super) path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPosture {
    pub(super) digest: Option<bool>,
    pub(super) digest_at: Option<String>,
    pub(super) drop_alert_points: Option<f64>,
    pub(super) suppress_risk: Option<String>,
    pub(super) iam3_max_key_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    pub(super) anchor_bucket: Option<String>,
    pub(super) anchor_prefix: Option<String>,
    pub(super) anchor_key_file: Option<String>,
    pub(super) anchor_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNotify {
    pub(super) page_roles: Option<Vec<String>>,
    pub(super) page_at: Option<String>,
    pub(super) quiet: Option<RawQuiet>,
    pub(super) escalate_after: Option<String>,
    pub(super) escalate_roles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawInvestigate {
    pub(super) enabled: Option<bool>,
    pub(super) lookback: Option<String>,
    pub(super) max_events: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawQuiet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) below: Option<String>,
}

impl RawConfig {
    /// Reads every section, reporting unknown keys and wrong types; never fails.
    pub(super) fn read(doc: &toml::Table, problems: &mut Vec<Problem>) -> RawConfig {
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
        let mut notify = take("notify");
        let investigate = take("investigate");
        r.nested::<RawApprovals>(&mut policy, "policy", "approvals");
        r.nested::<RawQuiet>(&mut notify, "notify", "quiet");
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
            notify: r.section(&notify, "notify"),
            investigate: r.section(&investigate, "investigate"),
        }
    }
}

/// Reads tables into raw structs, one key at a time, collecting problems.
pub(super) struct Reader<'p> {
    pub(super) problems: &'p mut Vec<Problem>,
}

impl Reader<'_> {
    /// Reads `table` (at dotted `path`) into `T`. Unknown keys and values of the wrong type are
    /// reported and left out; the rest is returned.
    pub(super) fn section<T: DeserializeOwned + Default>(
        &mut self,
        table: &toml::Table,
        path: &str,
    ) -> T {
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
    pub(super) fn nested<T: DeserializeOwned + Serialize + Default>(
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

    pub(super) fn unknown(&mut self, path: &str, key: &str, known: &[&str]) {
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

pub(super) fn with_article(noun: &str) -> String {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {noun}"),
        _ => format!("a {noun}"),
    }
}

pub(super) fn dotted(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The section that owns a key name, for keys written in the wrong section.
pub(super) fn section_of(key: &str) -> Option<&'static str> {
    let sections: [(&str, &[&str]); 12] = [
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
        ("notify", field_names::<RawNotify>()),
        ("investigate", field_names::<RawInvestigate>()),
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
pub(super) fn type_message(key: &str, value: &toml::Value, e: &toml::de::Error) -> String {
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
pub(super) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
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
pub(super) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
