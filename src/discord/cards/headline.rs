//! The card's first line, in words, for a reader in a hurry: what happened, to what, and what
//! the plan does, e.g. "Key AKIA…WXYZ of user alice used from a Tor exit node; plan:
//! deactivate the access key and revoke the user's sessions (2 approvals)".
//!
//! The same line opens a card's description, the content of a page (with the role mentions in
//! front) and an escalation reminder. Finding text in it goes through [`plain`], so a crafted
//! user name or title cannot render markup or a mention. Pure.

use super::plan::action_phrases;
use crate::discord::text::plain_capped;
use crate::finding::{Finding, ResourceKind};
use crate::plan::Plan;

/// The longest headline (Discord shows two lines of a push notification; the card shows it
/// whole, but a headline is one sentence).
pub const HEADLINE_CAP: usize = 300;
/// The longest name (user, instance, bucket) inside a headline.
const NAME_CAP: usize = 64;

/// The headline of `finding` and its `plan`; `needed` is the request's quorum, when there is
/// a request (a finding card without one says no count).
pub fn headline(finding: &Finding, plan: &Plan, needed: Option<u32>) -> String {
    let subject = subject(finding);
    let what = match event_phrase(&finding.finding_type) {
        Some(phrase) => format!("{subject} {phrase}"),
        None => {
            let title = plain_capped(finding.title.trim(), 160);
            if title.is_empty() {
                format!("{subject}: {}", plain_capped(&finding.finding_type, 120))
            } else {
                format!("{subject}: {title}")
            }
        }
    };
    let line = format!("{what}; plan: {}", plan_words(plan, needed));
    crate::discord::text::truncate(&line, HEADLINE_CAP)
}

/// The headline of a revert request about `finding`: what it undoes, never the containment's
/// own verbs (they would read as if the revert contained something).
pub fn revert_headline(finding: &Finding, needed: u32) -> String {
    let line = format!(
        "Revert of the containment of {}: restores what hanko changed ({needed} approval{})",
        lowercase_first(&subject(finding)),
        if needed == 1 { "" } else { "s" }
    );
    crate::discord::text::truncate(&line, HEADLINE_CAP)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether [`headline`] already quotes the finding's title (no phrase of its own for this
/// type), so a card need not repeat the title on the next line.
pub(super) fn quotes_title(finding: &Finding) -> bool {
    event_phrase(&finding.finding_type).is_none()
}

/// What the finding is about, named the way a responder says it.
fn subject(f: &Finding) -> String {
    let r = &f.resource;
    match &r.kind {
        ResourceKind::AccessKey => {
            let key = r
                .access_key
                .as_ref()
                .and_then(|k| k.access_key_id.as_deref())
                .map(short_key);
            let who = r.access_key.as_ref().and_then(|k| {
                let name = k.user_name.as_deref().filter(|n| !n.is_empty())?;
                Some(match k.user_type.as_deref() {
                    Some("Root") => "the root user".to_string(),
                    Some("AssumedRole") | Some("Role") => {
                        format!("role {}", plain_capped(name, NAME_CAP))
                    }
                    _ => format!("user {}", plain_capped(name, NAME_CAP)),
                })
            });
            match (key, who) {
                (Some(k), Some(w)) => format!("Key {k} of {w}"),
                (Some(k), None) => format!("Key {k}"),
                (None, Some(w)) => format!("Credentials of {w}"),
                (None, None) => "An access key".to_string(),
            }
        }
        ResourceKind::Instance => {
            let Some(i) = r.instance.as_ref() else {
                return "An instance".to_string();
            };
            let id = i
                .instance_id
                .as_deref()
                .map(|id| plain_capped(id, NAME_CAP))
                .unwrap_or_else(|| "(no id)".to_string());
            match i
                .tags
                .iter()
                .find(|t| t.key == "Name" && !t.value.is_empty())
            {
                Some(name) => format!("Instance {id} ({})", plain_capped(&name.value, NAME_CAP)),
                None => format!("Instance {id}"),
            }
        }
        ResourceKind::S3Bucket => {
            let names: Vec<&str> = r
                .s3_buckets
                .iter()
                .filter_map(|b| b.name.as_deref())
                .collect();
            match names.as_slice() {
                [] => "A bucket".to_string(),
                [one] => format!("Bucket {}", plain_capped(one, NAME_CAP)),
                [first, rest @ ..] => format!(
                    "Bucket {} and {} more",
                    plain_capped(first, NAME_CAP),
                    rest.len()
                ),
            }
        }
        ResourceKind::Other(kind) => {
            let kind = plain_capped(kind, NAME_CAP);
            if kind.is_empty() {
                "A resource".to_string()
            } else {
                kind
            }
        }
    }
}

/// `AKIAIOSFODNN7EXAMPLE` → `AKIA…MPLE`: enough to tell keys apart, short enough to read.
fn short_key(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 10 {
        return plain_capped(id, NAME_CAP);
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    plain_capped(&format!("{head}…{tail}"), NAME_CAP)
}

/// The finding types whose name says plainly what happened, in words; `None`: the title says
/// it (GuardDuty's titles are sentences).
fn event_phrase(finding_type: &str) -> Option<&'static str> {
    // `ThreatPurpose:ResourceType/ThreatFamily.Variant!Artifact`: the family and variant say
    // what; the purpose and the artifact (`!DNS`) do not change the words.
    let family = finding_type.rsplit('/').next()?;
    let family = family.split('!').next()?;
    Some(match family {
        "TorIPCaller" => "used from a Tor exit node",
        "MaliciousIPCaller" | "MaliciousIPCaller.Custom" => {
            "used from a known malicious IP address"
        }
        "InstanceCredentialExfiltration.OutsideAWS" => "credentials used from outside AWS",
        "InstanceCredentialExfiltration.InsideAWS" => "credentials used from another AWS account",
        "TorClient" => "connecting to the Tor network",
        "TorRelay" => "acting as a Tor relay",
        "BitcoinTool.B" => "talking to a cryptocurrency network",
        "C&CActivity.B" => "talking to a command-and-control server",
        "SSHBruteForce" => "in an SSH brute-force attack",
        "RDPBruteForce" => "in an RDP brute-force attack",
        "BucketBlockPublicAccessDisabled" => "made public: Block Public Access was turned off",
        "BucketAnonymousAccessGranted" => "opened to anonymous access",
        "BucketPublicAccessGranted" => "made public",
        "RootCredentialUsage" => "used with root credentials",
        _ => return None,
    })
}

/// "deactivate the access key and revoke the user's sessions (2 approvals)".
fn plan_words(plan: &Plan, needed: Option<u32>) -> String {
    if plan.is_notify_only() {
        return "notify only, nothing to approve".to_string();
    }
    let phrases = action_phrases(plan);
    let words = match phrases.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    match needed {
        Some(n) => format!("{words} ({n} approval{})", if n == 1 { "" } else { "s" }),
        None => words,
    }
}
