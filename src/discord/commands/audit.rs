//! `/audit [finding] [actor] [action] [since] [until] [limit]`: searches the audit log, newest
//! first. Ephemeral.
//!
//! One line an event: `#seq time kind actor · finding … · request …`. When more events match
//! than `limit` or than fit in one message, every match (up to [`MAX_ATTACHED`]) is attached as
//! `audit.jsonl`, one [`crate::audit::AuditEvent`] per line, hash chain fields included, so it
//! can be checked and processed outside Discord.
//!
//! `finding` takes a finding id; when no finding has that id but a request does (the id on a
//! card's footer, with or without hyphens), it shows that request's events instead: the
//! definition has no `request` option and a responder holding a request id should not have to
//! look up its finding first. `actor` takes a Discord name or id, a mention (`<@123>`), `cli:NAME`
//! or `system`. `since` and `until` take RFC 3339 or an age (`30m`, `12h`, `7d`).
//!
//! Uses the store only; no Discord or AWS I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::app::App;
use crate::audit::{AuditEvent, AuditQuery, EventKind};
use crate::store::StoreError;
use crate::util::parse_time;

use super::{
    code, code_capped, fit_lines, plain, Attachment, Handled, Invocation, Reply, MAX_CONTENT,
};

pub const OPTION_FINDING: &str = "finding";
pub const OPTION_ACTOR: &str = "actor";
pub const OPTION_ACTION: &str = "action";
pub const OPTION_SINCE: &str = "since";
pub const OPTION_UNTIL: &str = "until";
pub const OPTION_LIMIT: &str = "limit";
/// Events shown when `limit` is not given (the definition promises 20).
pub const DEFAULT_LIMIT: usize = 20;
/// The definition's maximum, and the most events attached.
pub const MAX_ATTACHED: usize = 1000;
/// The attachment's file name.
pub const ATTACHMENT_NAME: &str = "audit.jsonl";

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    let now = app.clock.now();
    let (mut query, limit) = match query_from(inv, now) {
        Ok(q) => q,
        Err(why) => {
            return Handled::refused("options", format!("Cannot search the audit log: {why}."))
        }
    };
    let mut about = Vec::new();
    let mut handled_finding = None;
    let mut handled_request = None;
    if let Some(id) = inv.str_opt(OPTION_FINDING) {
        match resolve_subject(app, id) {
            Ok(Subject::Finding(f)) => {
                about.push(format!("finding {}", code(&f)));
                handled_finding = Some(f.clone());
                query.finding_id = Some(f);
            }
            Ok(Subject::Request(r)) => {
                about.push(format!("request `{}`", r.simple()));
                handled_request = Some(r);
                query.request_id = Some(r);
            }
            Err(e) => return Handled::failed("audit", "looking up the finding or request", &e),
        }
    }
    if let Some(a) = &query.actor {
        about.push(format!("actor {}", code(a)));
    }
    if let Some(k) = query.kind {
        about.push(format!("action {k}"));
    }
    if let Some(t) = query.since {
        about.push(format!("since {}", stamp(t)));
    }
    if let Some(t) = query.until {
        about.push(format!("until {}", stamp(t)));
    }
    // One more than can be attached, to know whether there are even more.
    query.limit = Some(MAX_ATTACHED + 1);
    let mut events = match app.store.query_audit(&query) {
        Ok(e) => e,
        Err(e) => return Handled::failed("audit", "searching the audit log", &e),
    };
    let beyond = events.len() > MAX_ATTACHED;
    events.truncate(MAX_ATTACHED);

    let filters = if about.is_empty() {
        String::new()
    } else {
        format!(" ({})", about.join(", "))
    };
    let mut handled = if events.is_empty() {
        Handled::done(Reply::ephemeral(format!("No audit events match{filters}.")))
    } else {
        let lines: Vec<String> = events.iter().take(limit).map(line).collect();
        let total = if beyond {
            format!("more than {MAX_ATTACHED}")
        } else {
            events.len().to_string()
        };
        let header = format!("**{total} audit events**{filters}, newest first:");
        let (mut content, left_out) = fit_lines(&header, &lines, MAX_CONTENT - 120, |n| {
            format!("… {n} more not shown")
        });
        let shown = lines.len() - left_out;
        let attachment = if shown < events.len() {
            let tail = if beyond {
                format!(
                    "\nThe newest {MAX_ATTACHED} are attached as `{ATTACHMENT_NAME}`; narrow with since/until for older ones."
                )
            } else {
                format!(
                    "\nAll {} are attached as `{ATTACHMENT_NAME}`.",
                    events.len()
                )
            };
            content.push_str(&tail);
            Some(Attachment {
                filename: ATTACHMENT_NAME.to_string(),
                bytes: jsonl(&events),
            })
        } else {
            None
        };
        Handled::done(Reply::Message {
            content,
            cards: Vec::new(),
            ephemeral: true,
            attachment,
        })
    };
    if let Some(f) = handled_finding {
        handled = handled.finding(f);
    }
    if let Some(r) = handled_request {
        handled = handled.request(r);
    }
    handled
}

/// The query and the number of lines to show, from the options; `Err` is a sentence.
pub fn query_from(inv: &Invocation, now: DateTime<Utc>) -> Result<(AuditQuery, usize), String> {
    let limit = match inv.int_opt(OPTION_LIMIT)? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_ATTACHED as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(format!(
                "limit must be between 1 and {MAX_ATTACHED}, not {n}"
            ))
        }
    };
    let kind = match inv.str_opt(OPTION_ACTION) {
        None => None,
        Some(a) => Some(
            EventKind::parse(a).ok_or_else(|| format!("{} is not an audit event kind", code(a)))?,
        ),
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        inv.str_opt(name)
            .map(|s| parse_time(s, now).map_err(|e| format!("{name}: {}", plain(&e))))
            .transpose()
    };
    let since = time(OPTION_SINCE)?;
    let until = time(OPTION_UNTIL)?;
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return Err(format!(
                "since ({}) must be before until ({})",
                stamp(s),
                stamp(u)
            ));
        }
    }
    Ok((
        AuditQuery {
            actor: inv.str_opt(OPTION_ACTOR).map(actor_needle),
            kind,
            since,
            until,
            ..AuditQuery::default()
        },
        limit,
    ))
}

/// A Discord mention (`<@123>`, `<@!123>`) or `@name` as the actor the log knows.
pub fn actor_needle(s: &str) -> String {
    let s = s.trim();
    if let Some(id) = s
        .strip_prefix("<@")
        .and_then(|r| r.strip_suffix('>'))
        .map(|r| r.trim_start_matches('!'))
    {
        return id.to_string();
    }
    s.strip_prefix('@').unwrap_or(s).to_string()
}

enum Subject {
    Finding(String),
    Request(Uuid),
}

/// A finding id, or failing that the id of a stored request.
fn resolve_subject(app: &App, id: &str) -> Result<Subject, StoreError> {
    if app.store.get_finding(id)?.is_some() {
        return Ok(Subject::Finding(id.to_string()));
    }
    if let Ok(uuid) = Uuid::parse_str(id) {
        if app.store.get_request(uuid)?.is_some() {
            return Ok(Subject::Request(uuid));
        }
    }
    // Events may outlive a finding record (rejected inputs name none): search by id anyway.
    Ok(Subject::Finding(id.to_string()))
}

/// `` `#42` 2026-11-28 16:00:03Z **ApprovalGranted** alice · finding `abc…` · request `1a2b3c4d` ``
pub fn line(e: &AuditEvent) -> String {
    let mut s = format!(
        "`#{}` {} **{}** {}",
        e.seq,
        stamp(e.at),
        e.kind,
        plain(&crate::discord::text::truncate(e.actor.display_name(), 40))
    );
    if let Some(f) = &e.finding_id {
        s.push_str(&format!(" · finding {}", code_capped(f, 24)));
    }
    if let Some(r) = &e.request_id {
        s.push_str(&format!(" · request `{}`", &r.simple().to_string()[..8]));
    }
    s
}

/// `2026-11-28 16:00:03Z`.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
        .replacen('T', " ", 1)
}

/// One JSON object a line.
pub fn jsonl(events: &[AuditEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        // Plain data with string keys: serializing cannot fail; a failure would only drop a line.
        if let Ok(mut bytes) = serde_json::to_vec(e) {
            out.append(&mut bytes);
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, NewEvent};
    use crate::discord::commands::Invoker;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn inv(options: &[(&str, serde_json::Value)]) -> Invocation {
        Invocation {
            name: "audit".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            invoker: Invoker {
                actor: Actor::System,
                roles: vec![],
            },
            focused: None,
        }
    }

    #[test]
    fn options_become_a_query() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let (q, limit) = query_from(
            &inv(&[
                ("actor", "<@!123>".into()),
                ("action", "approvalgranted".into()),
                ("since", "12h".into()),
                ("until", "2026-11-28T11:00:00Z".into()),
                ("limit", 5.into()),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(limit, 5);
        assert_eq!(q.actor.as_deref(), Some("123"));
        assert_eq!(q.kind, Some(EventKind::ApprovalGranted));
        assert_eq!(
            q.since,
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap())
        );
        assert_eq!(
            q.until,
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 11, 0, 0).unwrap())
        );

        let (q, limit) = query_from(&inv(&[]), now).unwrap();
        assert_eq!(limit, DEFAULT_LIMIT);
        assert_eq!(q, AuditQuery::default());

        for (opts, needle) in [
            (
                vec![("action", serde_json::json!("Nope"))],
                "not an audit event kind",
            ),
            (vec![("since", "yesterday".into())], "since:"),
            (
                vec![("since", "1h".into()), ("until", "2h".into())],
                "must be before",
            ),
            (vec![("limit", 0.into())], "between 1 and 1000"),
        ] {
            let err = query_from(&inv(&opts), now).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn lines_and_jsonl() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 3).unwrap();
        let req = Uuid::parse_str("1a2b3c4d-0000-0000-0000-000000000000").unwrap();
        let e = NewEvent::new(
            at,
            Actor::Discord {
                id: "1".into(),
                name: "al*ce".into(),
            },
            EventKind::ApprovalGranted,
        )
        .finding("f-1")
        .request(req)
        .seal(42, crate::audit::GENESIS_HASH);
        assert_eq!(
            line(&e),
            "`#42` 2026-11-28 16:00:03Z **ApprovalGranted** al\\*ce · finding `f-1` · request `1a2b3c4d`"
        );
        let bytes = jsonl(&[e.clone(), e.clone()]);
        let text = String::from_utf8(bytes).unwrap();
        let back: Vec<AuditEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, vec![e.clone(), e]);
    }

    #[test]
    fn mentions_become_ids() {
        assert_eq!(actor_needle("<@123>"), "123");
        assert_eq!(actor_needle("<@!123>"), "123");
        assert_eq!(actor_needle("@alice"), "alice");
        assert_eq!(actor_needle("cli:ops"), "cli:ops");
    }
}
