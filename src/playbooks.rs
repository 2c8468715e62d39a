//! Playbooks: operator overrides of the default routing, read from `config/playbooks.toml`.
//!
//! Pure core (parsing is from a string; the caller reads the file). The defaults follow the
//! routing table of `docs/containment.md`; a playbook file can, for findings it matches:
//!
//! * switch optional steps on (`enable = ["stop_instance"]`) or default steps off
//!   (`disable = ["set_shutdown_behavior_stop"]`),
//! * make the finding notify-only (`notify_only = true`),
//! * change a step's risk class (`[rule.risk] stop_instance = "contain"`),
//! * exempt resources by tag (`[exempt] tags = { "hanko:exempt" = "true" }`): an exempt
//!   instance or bucket is never touched; the plan notifies and says why.
//!
//! Every matching rule applies, in file order (a later rule wins where two disagree).
//!
//! ```toml
//! [exempt]
//! tags = { "hanko:exempt" = "true" }
//!
//! [[rule]]
//! name = "miners get stopped"
//! types = ["CryptoCurrency:EC2/*"]   # `*` matches any run of characters
//! resource_types = ["Instance"]      # optional: AccessKey, Instance, S3Bucket, or any other type
//! enable = ["stop_instance"]
//! [rule.risk]
//! stop_instance = "contain"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::finding::Finding;
use crate::plan::vocabulary::{Action, RiskClass};

/// A problem in a playbook file, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PlaybookError {
    pub key: String,
    pub message: String,
}

/// Validated playbooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Playbooks {
    /// Tags (key, value) that exempt an instance or a bucket from containment.
    pub exempt_tags: Vec<(String, String)>,
    pub rules: Vec<Rule>,
}

/// One override rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Glob patterns on the finding type; empty matches every type.
    pub types: Vec<String>,
    /// Resource types (`AccessKey`, `Instance`, ...); empty matches every resource type.
    pub resource_types: Vec<String>,
    pub enable: Vec<Action>,
    pub disable: Vec<Action>,
    pub notify_only: bool,
    pub note: Option<String>,
    pub risk: BTreeMap<Action, RiskClass>,
}

impl Rule {
    /// Does this rule apply to `finding`?
    pub fn matches(&self, finding: &Finding) -> bool {
        let type_ok =
            self.types.is_empty() || self.types.iter().any(|p| glob(p, &finding.finding_type));
        let resource_ok = self.resource_types.is_empty()
            || self
                .resource_types
                .iter()
                .any(|r| r == finding.resource.kind.as_str());
        type_ok && resource_ok
    }
}

/// The effect of every rule matching one finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub enabled: Vec<Action>,
    pub disabled: Vec<Action>,
    pub notify_only: Option<String>,
    pub notes: Vec<String>,
    pub risk: BTreeMap<Action, RiskClass>,
}

impl Overrides {
    /// Is `action` on for this finding? Opt-in steps need `enable`; any step can be disabled.
    pub fn is_on(&self, action: Action) -> bool {
        if self.disabled.contains(&action) {
            return false;
        }
        !action.is_opt_in() || self.enabled.contains(&action)
    }

    pub fn risk_of(&self, action: Action) -> RiskClass {
        self.risk
            .get(&action)
            .copied()
            .unwrap_or_else(|| action.default_risk())
    }
}

impl Playbooks {
    /// Collects the overrides of every rule matching `finding`, in order.
    pub fn overrides_for(&self, finding: &Finding) -> Overrides {
        let mut o = Overrides::default();
        for rule in self.rules.iter().filter(|r| r.matches(finding)) {
            for a in &rule.enable {
                o.disabled.retain(|d| d != a);
                if !o.enabled.contains(a) {
                    o.enabled.push(*a);
                }
            }
            for a in &rule.disable {
                o.enabled.retain(|e| e != a);
                if !o.disabled.contains(a) {
                    o.disabled.push(*a);
                }
            }
            if rule.notify_only {
                o.notify_only = Some(format!(
                    "playbook rule `{}` makes this finding notify-only",
                    rule.name
                ));
            }
            if let Some(note) = &rule.note {
                o.notes.push(note.clone());
            }
            for (a, r) in &rule.risk {
                o.risk.insert(*a, *r);
            }
        }
        o
    }

    /// Is a resource with these tags exempt? Returns the matching tag.
    pub fn exempting_tag<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<(String, String)> {
        let tags: Vec<(&str, &str)> = tags.into_iter().collect();
        self.exempt_tags
            .iter()
            .find(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v))
            .cloned()
    }

    /// The defaults: no overrides, `hanko:exempt=true` exempts.
    pub fn defaults() -> Self {
        Playbooks {
            exempt_tags: vec![("hanko:exempt".to_string(), "true".to_string())],
            rules: Vec::new(),
        }
    }

    /// Parses and validates a playbook file's text. Reports every problem, each naming its key.
    pub fn parse(text: &str) -> Result<Playbooks, Vec<PlaybookError>> {
        let raw: RawPlaybooks = toml::from_str(text).map_err(|e| {
            vec![PlaybookError {
                key: "playbooks".into(),
                message: e.message().to_string(),
            }]
        })?;
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in raw.rule.into_iter().enumerate() {
            let key = |k: &str| format!("rule[{i}].{k}");
            let actions = |list: &[String], k: &str, problems: &mut Vec<PlaybookError>| {
                list.iter()
                    .filter_map(|s| {
                        let a = Action::parse(s);
                        if a.is_none() {
                            problems.push(PlaybookError {
                                key: key(k),
                                message: format!(
                                    "unknown step `{s}`; known steps: {}",
                                    Action::ALL.map(|a| a.as_str()).join(", ")
                                ),
                            });
                        }
                        a
                    })
                    .collect::<Vec<_>>()
            };
            let enable = actions(&r.enable, "enable", &mut problems);
            let disable = actions(&r.disable, "disable", &mut problems);
            let mut risk = BTreeMap::new();
            for (step, class) in &r.risk {
                match (Action::parse(step), RiskClass::parse(class)) {
                    (Some(a), Some(c)) => {
                        risk.insert(a, c);
                    }
                    (None, _) => problems.push(PlaybookError {
                        key: key(&format!("risk.{step}")),
                        message: format!("unknown step `{step}`"),
                    }),
                    (_, None) => problems.push(PlaybookError {
                        key: key(&format!("risk.{step}")),
                        message: format!(
                            "unknown risk class `{class}`; use evidence, contain or disrupt"
                        ),
                    }),
                }
            }
            if r.types.iter().any(|t| t.trim().is_empty()) {
                problems.push(PlaybookError {
                    key: key("types"),
                    message: "an empty pattern matches nothing; remove it".into(),
                });
            }
            rules.push(Rule {
                name: r.name.unwrap_or_else(|| format!("rule {}", i + 1)),
                types: r.types,
                resource_types: r.resource_types,
                enable,
                disable,
                notify_only: r.notify_only,
                note: r.note,
                risk,
            });
        }
        let exempt_tags = match raw.exempt {
            Some(e) => e.tags.into_iter().collect(),
            None => Playbooks::defaults().exempt_tags,
        };
        if problems.is_empty() {
            Ok(Playbooks { exempt_tags, rules })
        } else {
            Err(problems)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybooks {
    exempt: Option<RawExempt>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExempt {
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    resource_types: Vec<String>,
    #[serde(default)]
    enable: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    notify_only: bool,
    note: Option<String>,
    #[serde(default)]
    risk: BTreeMap<String, String>,
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard match with backtracking to the last star.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let table = [
            (
                "CryptoCurrency:EC2/*",
                "CryptoCurrency:EC2/BitcoinTool.B!DNS",
                true,
            ),
            ("CryptoCurrency:EC2/*", "Backdoor:EC2/C&CActivity.B", false),
            ("*:S3/*", "Policy:S3/BucketPublicAccessGranted", true),
            (
                "Policy:S3/Bucket*Granted",
                "Policy:S3/BucketAnonymousAccessGranted",
                true,
            ),
            (
                "Policy:S3/Bucket*Granted",
                "Policy:S3/BucketBlockPublicAccessDisabled",
                false,
            ),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*", "", true),
            ("", "x", false),
        ];
        for (p, t, want) in table {
            assert_eq!(glob(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn parse_reports_every_problem_with_its_key() {
        let text = r#"
            [[rule]]
            types = ["CryptoCurrency:EC2/*"]
            enable = ["stop_instance", "launch_missiles"]
            [rule.risk]
            stop_instance = "catastrophic"
        "#;
        let errs = Playbooks::parse(text).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["rule[0].enable", "rule[0].risk.stop_instance"]);
        assert!(errs[0].message.contains("launch_missiles"));

        let unknown = Playbooks::parse("[[rule]]\nenabel = []\n").unwrap_err();
        assert!(unknown[0].message.contains("enabel"), "{unknown:?}");
    }

    #[test]
    fn parse_good_file() {
        let p = Playbooks::parse(
            r#"
            [exempt]
            tags = { "team" = "red" }
            [[rule]]
            name = "miners"
            types = ["CryptoCurrency:EC2/*"]
            enable = ["stop_instance"]
            disable = ["set_shutdown_behavior_stop"]
            [rule.risk]
            stop_instance = "contain"
        "#,
        )
        .unwrap();
        assert_eq!(p.exempt_tags, vec![("team".to_string(), "red".to_string())]);
        assert_eq!(p.rules[0].enable, vec![Action::StopInstance]);
        assert_eq!(
            p.rules[0].risk.get(&Action::StopInstance),
            Some(&RiskClass::Contain)
        );
    }
}
