//! The finding card ([`finding_card`]: a finding without an open request, notify-only or looked
//! up with `/finding`) and the pieces every card about a finding shows: the title line, the
//! severity, account, region, resource, actor and time fields, and the console link
//! ([`Finding::console_url`]).
//!
//! Pure, like all of [`super`]: text from the finding is escaped before it is shown.

use super::plan::{notes_field, plan_field, proposal_line};
use super::{
    enforce_limits, hash_prefix, severity_color, ts, Card, Field, FIELD_ACCOUNT, FIELD_ACTOR,
    FIELD_COUNT, FIELD_FIRST_SEEN, FIELD_LAST_SEEN, FIELD_NOTES, FIELD_PLAN, FIELD_REGION,
    FIELD_RESOURCE, FIELD_SEVERITY, FIELD_STATE, LIST_CAP, TITLE_LINE_CAP,
};
use crate::approval::RequestState;
use crate::discord::text::{code, plain, plain_capped, CODE_CAP};
use crate::finding::{Finding, ResourceKind};
use crate::plan::Plan;

/// The card of a finding without an open request: notify-only findings (the plan's notes say
/// why nothing is proposed and what a person should do), or `/finding` on a finding whose plan
/// was never proposed. It has no buttons.
pub fn finding_card(finding: &Finding, plan: &Plan) -> Card {
    let mut title = String::new();
    if plan.sample || finding.sample {
        title.push_str("[SAMPLE] ");
    }
    title.push_str(&plain(&finding.finding_type));
    let description = format!(
        "{}\n{}",
        head_lines(finding, super::headline(finding, plan, None)),
        proposal_line(plan)
    );

    let mut fields = finding_fields(finding);
    fields.push(Field::new(
        FIELD_PLAN,
        plan_field(plan, &[], RequestState::Pending, false),
        false,
    ));
    if !plan.notes.is_empty() || plan.is_notify_only() {
        fields.push(Field::new(FIELD_NOTES, notes_field(plan), false));
    }
    let state = if plan.is_notify_only() {
        "ℹ️ Notify only: nothing to approve. Follow the notes by hand.".to_string()
    } else {
        "ℹ️ No request is open for this plan.".to_string()
    };
    fields.push(Field::new(FIELD_STATE, state, false));

    let mut card = Card {
        title,
        url: finding.console_url(),
        description,
        color: severity_color(finding.severity_label),
        fields,
        footer: format!(
            "finding {} · plan {}",
            plain_capped(&finding.id, CODE_CAP),
            hash_prefix(&plan.plan_hash)
        ),
        buttons: Vec::new(),
    };
    enforce_limits(&mut card);
    card
}

/// The description's first lines: the `headline` in bold, then the finding's title when the
/// headline does not already quote it.
pub(super) fn head_lines(finding: &Finding, headline: String) -> String {
    if super::headline::quotes_title(finding) {
        format!("**{headline}**")
    } else {
        format!("**{headline}**\n{}", title_line(finding))
    }
}

pub(super) fn title_line(finding: &Finding) -> String {
    let title = plain_capped(&finding.title, TITLE_LINE_CAP);
    if title.is_empty() {
        "(the finding has no title)".to_string()
    } else {
        title
    }
}

/// The fields every finding card has: how bad, where, what, who, when, how often.
pub(super) fn finding_fields(f: &Finding) -> Vec<Field> {
    let mut fields = vec![
        Field::new(
            FIELD_SEVERITY,
            format!("{} {:.1}", f.severity_label.as_str(), f.severity),
            true,
        ),
        Field::new(FIELD_ACCOUNT, code(&f.account_id), true),
        Field::new(FIELD_REGION, code(&f.region), true),
        Field::new(FIELD_RESOURCE, resource_text(f), false),
    ];
    if let Some(actor) = actor_text(f) {
        fields.push(Field::new(FIELD_ACTOR, actor, false));
    }
    fields.push(Field::new(FIELD_FIRST_SEEN, ts(f.first_seen), true));
    fields.push(Field::new(FIELD_LAST_SEEN, ts(f.last_seen), true));
    fields.push(Field::new(FIELD_COUNT, f.count.to_string(), true));
    fields
}

fn resource_text(f: &Finding) -> String {
    let r = &f.resource;
    let kind = plain(r.kind.as_str());
    match &r.kind {
        ResourceKind::AccessKey => match &r.access_key {
            Some(k) => {
                let mut s = format!(
                    "**{kind}** {}",
                    k.access_key_id
                        .as_deref()
                        .map(code)
                        .unwrap_or("(no key id)".into())
                );
                if let Some(user) = &k.user_name {
                    s.push_str(&format!(" of {}", code(user)));
                }
                if let Some(t) = &k.user_type {
                    s.push_str(&format!(" ({})", plain_capped(t, 40)));
                }
                s
            }
            None => format!("**{kind}** (the finding names no key)"),
        },
        ResourceKind::Instance => match &r.instance {
            Some(i) => {
                let mut s = format!(
                    "**{kind}** {}",
                    i.instance_id
                        .as_deref()
                        .map(code)
                        .unwrap_or("(no instance id)".into())
                );
                for extra in [&i.instance_type, &i.instance_state].into_iter().flatten() {
                    s.push_str(&format!(" {}", plain_capped(extra, 40)));
                }
                if !i.network_interfaces.is_empty() {
                    let mut enis: Vec<String> = i
                        .network_interfaces
                        .iter()
                        .take(LIST_CAP)
                        .map(|n| {
                            let ips: Vec<&str> = [&n.private_ip, &n.public_ip]
                                .into_iter()
                                .flatten()
                                .map(String::as_str)
                                .collect();
                            let eni = n
                                .network_interface_id
                                .as_deref()
                                .map(code)
                                .unwrap_or("(no id)".into());
                            if ips.is_empty() {
                                eni
                            } else {
                                format!("{eni} ({})", plain_capped(&ips.join(", "), 80))
                            }
                        })
                        .collect();
                    if i.network_interfaces.len() > LIST_CAP {
                        enis.push(format!("+{} more", i.network_interfaces.len() - LIST_CAP));
                    }
                    s.push_str(&format!("\ninterfaces: {}", enis.join(", ")));
                }
                s
            }
            None => format!("**{kind}** (the finding names no instance)"),
        },
        ResourceKind::S3Bucket => {
            let mut names: Vec<String> = r
                .s3_buckets
                .iter()
                .take(LIST_CAP)
                .map(|b| b.name.as_deref().map(code).unwrap_or("(no name)".into()))
                .collect();
            if r.s3_buckets.len() > LIST_CAP {
                names.push(format!("+{} more", r.s3_buckets.len() - LIST_CAP));
            }
            if names.is_empty() {
                format!("**{kind}** (the finding names no bucket)")
            } else {
                format!("**{kind}** {}", names.join(", "))
            }
        }
        ResourceKind::Other(_) => format!("**{kind}**"),
    }
}

/// `198.51.100.7 (Frankfurt, Germany) · Example ISP · API GetObject (s3.amazonaws.com)`.
fn actor_text(f: &Finding) -> Option<String> {
    let a = &f.actor;
    let mut parts: Vec<String> = Vec::new();
    if let Some(ip) = &a.caller_ip {
        let place: Vec<String> = [&a.city, &a.country]
            .into_iter()
            .flatten()
            .map(|p| plain_capped(p, 60))
            .collect();
        if place.is_empty() {
            parts.push(code(ip));
        } else {
            parts.push(format!("{} ({})", code(ip), place.join(", ")));
        }
    } else if let Some(country) = &a.country {
        parts.push(plain_capped(country, 60));
    }
    if let Some(org) = &a.organization {
        parts.push(plain_capped(org, 80));
    }
    if let Some(api) = &a.api {
        match &a.service_name {
            Some(svc) => parts.push(format!("API {} ({})", code(api), plain_capped(svc, 60))),
            None => parts.push(format!("API {}", code(api))),
        }
    }
    if let Some(domain) = &a.domain {
        parts.push(format!("domain {}", code(domain)));
    }
    if parts.is_empty() {
        a.action_type.as_deref().map(|t| plain_capped(t, 60))
    } else {
        Some(parts.join(" · "))
    }
}
