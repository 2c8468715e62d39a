//! The "What this key did" field: a leaked key's CloudTrail investigation
//! ([`crate::investigate::Investigation`]) as a responder reads it, within one field's 1,024
//! characters. Event names, user agents and ids come from the attacker's calls: they go
//! through [`code`]/[`plain`]. Times are Discord timestamps. Pure.

use super::{Card, Field, FIELD_PLAN};
use crate::discord::text::{code, plain_capped, truncate, MAX_FIELD_VALUE};
use crate::investigate::{Created, Investigation, InvestigationState, RegionOutcome};

/// The field's name.
pub const FIELD_INVESTIGATION: &str = "What this key did";
/// More events than this and the whole list is attached as JSON Lines.
pub const ATTACH_OVER_EVENTS: u32 = 20;
/// Entries shown of each list before "+N more".
const SHOWN: usize = 4;

/// Whether the card should carry the events as an attachment.
pub fn wants_attachment(inv: &Investigation) -> bool {
    inv.summary
        .as_ref()
        .is_some_and(|s| s.events > ATTACH_OVER_EVENTS)
}

/// The attachment's file name.
pub fn attachment_name(inv: &Investigation) -> String {
    let events = inv.summary.as_ref().map_or(0, |s| s.events);
    let key: String = inv
        .access_key_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    format!("cloudtrail-{key}-{events}.jsonl")
}

/// `card` with the investigation's field inserted before the plan.
pub fn with_investigation(mut card: Card, inv: &Investigation) -> Card {
    let field = investigation_field(inv);
    let at = card
        .fields
        .iter()
        .position(|f| f.name == FIELD_PLAN)
        .unwrap_or(card.fields.len());
    card.fields.insert(at, field);
    super::enforce_limits(&mut card);
    card
}

/// The field.
pub fn investigation_field(inv: &Investigation) -> Field {
    let regions = inv.region_names().join(", ");
    let mut lines: Vec<String> = Vec::new();
    match &inv.state {
        InvestigationState::Skipped { reason } => {
            lines.push(format!("Not looked up: {}", plain_capped(reason, 300)));
        }
        InvestigationState::Running if inv.summary.is_none() => {
            lines.push(format!(
                "🔎 Looking up CloudTrail{} since <t:{}:R>…",
                if regions.is_empty() {
                    String::new()
                } else {
                    format!(" in {regions}")
                },
                inv.updated_at.timestamp()
            ));
        }
        _ => {}
    }
    if let Some(s) = &inv.summary {
        let hours = (inv.window.end - inv.window.start).num_hours();
        lines.push(format!(
            "**{} events** in the last {hours}h ({regions}): {} read-only, {} mutating{}{}",
            s.events,
            s.read_only,
            s.mutating,
            if s.failed_calls > 0 {
                format!(", {} failed", s.failed_calls)
            } else {
                String::new()
            },
            if s.capped {
                " (capped: older events not read)"
            } else {
                ""
            }
        ));
        if !s.mutating_by_name.is_empty() {
            lines.push(format!(
                "Mutating: {}",
                listed(
                    s.mutating_by_name
                        .iter()
                        .map(|(n, c)| format!("{} ×{c}", code(n)))
                )
            ));
        }
        if !s.created.is_empty() {
            lines.push(format!(
                "Created: {}",
                listed(s.created.iter().map(|c| created_text(&c.what, &c.region)))
            ));
        }
        if !s.source_ips.is_empty() {
            lines.push(format!(
                "From {}",
                listed(
                    s.source_ips
                        .iter()
                        .map(|(ip, n)| format!("{} ×{n}", code(ip)))
                )
            ));
        }
        if !s.user_agents.is_empty() {
            lines.push(format!(
                "Agents: {}",
                listed(
                    s.user_agents
                        .iter()
                        .map(|(ua, n)| format!("{} ×{n}", code(&truncate(ua, 60))))
                )
            ));
        }
        if let (Some(first), Some(last)) = (s.first, s.last) {
            lines.push(format!(
                "First <t:{}:f>, last <t:{}:f>",
                first.timestamp(),
                last.timestamp()
            ));
        }
    }
    let proposed: Vec<String> = inv
        .proposals
        .iter()
        .filter_map(|p| {
            p.request
                .map(|r| format!("request `{}`", &r.simple().to_string()[..8]))
        })
        .collect();
    if !proposed.is_empty() {
        lines.push(format!(
            "Proposed separately: {} (their own cards)",
            listed(proposed.into_iter())
        ));
    }
    for r in &inv.regions {
        if let RegionOutcome::Failed {
            region,
            code: c,
            line,
            ..
        } = r
        {
            lines.push(format!(
                "⚠️ CloudTrail lookup failed in {}: {}{}",
                code(region),
                c.as_deref()
                    .map(|c| format!("{} · ", code(c)))
                    .unwrap_or_default(),
                plain_capped(line, 160)
            ));
        }
    }
    match &inv.state {
        InvestigationState::RetryAt { at } => lines.push(format!(
            "Trying again <t:{}:R> (attempt {} of {})",
            at.timestamp(),
            inv.attempts + 1,
            crate::actions::investigate::MAX_ATTEMPTS
        )),
        InvestigationState::Running if inv.summary.is_some() => {
            lines.push("🔎 Looking up the regions that failed again…".to_string())
        }
        _ => {}
    }
    if wants_attachment(inv) {
        lines.push(format!("All events attached as `{}`", attachment_name(inv)));
    }
    let (value, _) = crate::discord::text::fit_lines("", &lines, MAX_FIELD_VALUE, |n| {
        format!("+{n} more lines: the attachment or /audit has the rest")
    });
    Field::new(FIELD_INVESTIGATION, value, false)
}

fn listed(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    let mut shown: Vec<String> = all.iter().take(SHOWN).cloned().collect();
    if all.len() > SHOWN {
        shown.push(format!("+{} more", all.len() - SHOWN));
    }
    shown.join(", ")
}

fn created_text(c: &Created, region: &str) -> String {
    match c {
        Created::Instance { id } => format!("instance {} ({})", code(id), code(region)),
        Created::AccessKey { id, user } => match user {
            Some(u) => format!("access key {} of {}", code(id), code(u)),
            None => format!("access key {}", code(id)),
        },
        Created::User { name } => format!("user {}", code(name)),
        Created::Role { name, .. } => format!("role {}", code(name)),
        Created::SecurityGroup { id, .. } => format!("security group {}", code(id)),
        Created::Bucket { name } => format!("bucket {}", code(name)),
        Created::BucketPolicy { bucket, public } => format!(
            "bucket policy on {}{}",
            code(bucket),
            if *public { " (public)" } else { "" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::investigate::{CreatedAt, Proposal, Summary, Window};
    use chrono::{TimeZone, Utc};

    fn inv(state: InvestigationState) -> Investigation {
        let end = Utc.with_ymd_and_hms(2026, 12, 4, 3, 0, 0).unwrap();
        let mut inv = Investigation::start(
            "f-1",
            "AKIAIOSFODNN7EXAMPLE",
            "123456789012",
            Window::back_from(end, chrono::Duration::hours(24)),
            end,
        );
        inv.state = state;
        inv
    }

    fn summary(events: u32) -> Summary {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap();
        Summary {
            events,
            read_only: events - 2,
            mutating: 2,
            mutating_by_name: vec![("RunInstances".into(), 1), ("CreateAccessKey".into(), 1)],
            created: vec![
                CreatedAt {
                    what: Created::Instance {
                        id: "i-0abc1234def567890".into(),
                    },
                    region: "us-east-2".into(),
                    at: Some(at),
                    event_id: "e1".into(),
                },
                CreatedAt {
                    what: Created::AccessKey {
                        id: "AKIANEWKEY0000000001".into(),
                        user: Some("mallory".into()),
                    },
                    region: "us-east-1".into(),
                    at: Some(at),
                    event_id: "e2".into(),
                },
            ],
            source_ips: vec![("198.51.100.7".into(), events)],
            user_agents: vec![("aws-cli/2.15.0 @everyone".into(), events)],
            first: Some(at),
            last: Some(at),
            ..Summary::default()
        }
    }

    #[test]
    fn the_field_names_counts_calls_created_resources_sources_and_times() {
        let mut i = inv(InvestigationState::Done);
        i.regions = vec![RegionOutcome::Read {
            region: "us-east-1".into(),
            events: 5,
            capped: false,
        }];
        i.summary = Some(summary(5));
        i.proposals = vec![Proposal {
            what: crate::investigate::Containable::Instance {
                id: "i-0abc1234def567890".into(),
                region: "us-east-2".into(),
            },
            request: Some(uuid::Uuid::from_u128(
                0xabcdef12_0000_0000_0000_000000000000,
            )),
            note: None,
        }];
        let f = investigation_field(&i);
        assert_eq!(f.name, FIELD_INVESTIGATION);
        let v = f.value;
        assert!(
            v.starts_with("**5 events** in the last 24h (us-east-1): 3 read-only, 2 mutating"),
            "{v}"
        );
        assert!(
            v.contains("Mutating: `RunInstances` ×1, `CreateAccessKey` ×1"),
            "{v}"
        );
        assert!(
            v.contains("instance `i-0abc1234def567890` (`us-east-2`)"),
            "{v}"
        );
        assert!(
            v.contains("access key `AKIANEWKEY0000000001` of `mallory`"),
            "{v}"
        );
        assert!(v.contains("From `198.51.100.7` ×5"), "{v}");
        assert!(v.contains("First <t:"), "{v}");
        assert!(v.contains("request `abcdef12`"), "{v}");
        // Attacker text cannot ping: it is in code spans.
        assert!(v.contains("`aws-cli/2.15.0 @everyone` ×5"), "{v}");
        assert!(!wants_attachment(&i), "5 events need no attachment");
    }

    #[test]
    fn a_failure_is_one_line_and_long_lists_stay_within_the_field() {
        let mut i = inv(InvestigationState::RetryAt {
            at: Utc.with_ymd_and_hms(2026, 12, 4, 3, 1, 0).unwrap(),
        });
        i.attempts = 1;
        i.regions = vec![RegionOutcome::Failed {
            region: "us-east-2".into(),
            class: "forbidden".into(),
            code: Some("AccessDeniedException".into()),
            line: "User: x is not authorized to perform: cloudtrail:LookupEvents\nsecond line"
                .into(),
        }];
        let v = investigation_field(&i).value;
        let failures: Vec<&str> = v.lines().filter(|l| l.contains("lookup failed")).collect();
        assert_eq!(failures.len(), 1, "{v}");
        assert!(failures[0].contains("`AccessDeniedException`"), "{v}");
        assert!(v.contains("Trying again <t:"), "{v}");

        let mut big = summary(5000);
        big.created = (0..300)
            .map(|n| CreatedAt {
                what: Created::Instance {
                    id: format!("i-{n:017x}"),
                },
                region: "us-east-1".into(),
                at: None,
                event_id: n.to_string(),
            })
            .collect();
        let mut i = inv(InvestigationState::Done);
        i.summary = Some(big);
        let v = investigation_field(&i).value;
        assert!(
            v.chars().count() <= MAX_FIELD_VALUE,
            "{}",
            v.chars().count()
        );
        assert!(v.contains("+296 more"), "{v}");
        assert!(wants_attachment(&i));
        assert_eq!(
            attachment_name(&i),
            "cloudtrail-AKIAIOSFODNN7EXAMPLE-5000.jsonl"
        );
        assert!(v.contains("attached as `cloudtrail-AKIAIOSFODNN7EXAMPLE-5000.jsonl`"));
    }
}
