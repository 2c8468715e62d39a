//! `/status`: is hanko healthy? Version and uptime, whether execution is paused (by whom, why),
//! the requests waiting for votes or for the engine, what the store holds, and the lag of each
//! configured ingest source. Ephemeral.
//!
//! # Ingest status (written by the ingest loops, read here through the same type)
//!
//! Sources are named `guardduty:<region>` (one per region in `aws.regions` when
//! `ingest.guardduty`), `sqs` (when `ingest.sqs_queue_url` is set) and `securityhub:<region>`
//! (one per region when `ingest.securityhub`). For each `<source>`, `/status` shows whether
//! the source has a cursor (`Store::get_cursor`, shown only as set or not) and, from its
//! [`crate::store::SourceStatus`] ([`crate::store::Store::source_status`]), the time of the
//! last successful poll or receive (`last_ok`) and the failures since (`errors_since_ok`).
//!
//! (`errors`, the count since the store was created, is not shown: one old failure would flag
//! a healthy source forever.)
//!
//! The lag of a source is the time since its last success. It is flagged when it exceeds
//! [`LAG_WARN_POLLS`] poll intervals (`ingest.poll_interval`), or when failures follow it.
//!
//! Uses the store and the engine's pause flag; no Discord or AWS I/O.

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::approval::RequestState;
use crate::audit::{AuditQuery, EventKind};
use crate::config::Settings;

use super::{code, human_duration, plain, Handled, Invocation, Reply};

/// A source lagging more than this many poll intervals is flagged.
pub const LAG_WARN_POLLS: i32 = 3;

/// The ingest sources the settings switch on, in a stable order.
pub fn sources(settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if settings.ingest.guardduty {
        out.extend(
            settings
                .aws
                .regions
                .iter()
                .map(|r| format!("guardduty:{r}")),
        );
    }
    if settings.ingest.sqs_queue_url.is_some() {
        out.push("sqs".to_string());
    }
    if settings.ingest.securityhub {
        out.extend(
            settings
                .aws
                .regions
                .iter()
                .map(|r| format!("securityhub:{r}")),
        );
    }
    out
}

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, _inv: &Invocation) -> Handled {
    let now = app.clock.now();
    match report(app, now) {
        Ok(text) => Handled::done(Reply::ephemeral(text)),
        Err(e) => Handled::failed("status", "reading the store", &e),
    }
}

fn report(app: &App, now: DateTime<Utc>) -> Result<String, crate::store::StoreError> {
    let mut out = vec![format!(
        "**hanko {}** · up {} (since <t:{}:f>)",
        env!("CARGO_PKG_VERSION"),
        human_duration(now - app.started_at),
        app.started_at.timestamp()
    )];

    let paused = match app.engine.is_paused() {
        Ok(p) => p,
        Err(crate::engine::EngineError::Store(e)) => return Err(e),
        Err(_) => false,
    };
    if paused {
        let last = app.store.query_audit(&AuditQuery {
            kind: Some(EventKind::ExecutionPaused),
            limit: Some(1),
            ..AuditQuery::default()
        })?;
        let mut line =
            "⏸️ **Execution is PAUSED**: approved requests wait; /resume starts them.".to_string();
        if let Some(e) = last.first() {
            line.push_str(&format!(
                " Paused by {} <t:{}:R>",
                plain(e.actor.display_name()),
                e.at.timestamp()
            ));
            if let Some(reason) = e.detail.get("reason").and_then(|r| r.as_str()) {
                line.push_str(&format!(
                    ": {}",
                    plain(&crate::discord::text::truncate(reason, 200))
                ));
            }
            line.push('.');
        }
        out.push(line);
    } else {
        out.push("▶️ Execution is running: approved requests run at once.".to_string());
    }

    // Counted from the state index's keys: no request is read for a status line.
    let counts = app.store.request_counts()?;
    let count = |s: RequestState| counts.iter().find(|(c, _)| *c == s).map_or(0, |&(_, n)| n);
    out.push(format!(
        "Requests: **{}** pending approval, **{}** approved and waiting to run, **{}** executing.",
        count(RequestState::Pending),
        count(RequestState::Approved),
        count(RequestState::Executing)
    ));
    out.push(format!(
        "Store: {} findings, {} audit events ({}).",
        app.store.finding_count(),
        app.store.audit_len(),
        app.store.backend_name()
    ));
    if app.replica.distributed {
        let live = app
            .store
            .live_replicas(now - crate::replicas::HEARTBEAT_LIVE)?;
        out.push(format!("Replicas: **{}** live.", live.len()));
        for beat in live {
            let me = if beat.replica == app.replica.id {
                " (this one)"
            } else {
                ""
            };
            out.push(format!(
                "- `{}`{me}: {}; up since <t:{}:f>, seen <t:{}:R>",
                plain(&beat.replica),
                plain(&beat.roles.join(", ")),
                beat.started_at.timestamp(),
                beat.seen_at.timestamp()
            ));
        }
    }

    let sources = sources(&app.settings);
    if sources.is_empty() {
        out.push("Ingest: no source is configured (ingest.guardduty, ingest.sqs_queue_url, ingest.securityhub).".to_string());
    } else {
        out.push("Ingest:".to_string());
        let warn_after = chrono::Duration::from_std(app.settings.ingest.poll_interval)
            .unwrap_or_else(|_| chrono::Duration::seconds(60))
            * LAG_WARN_POLLS;
        for source in sources {
            out.push(source_line(app, &source, now, warn_after)?);
        }
    }
    match crate::actions::escalate::oldest_unanswered(app, now)? {
        Some((r, waited)) => out.push(format!(
            "Oldest unanswered: request `{}` ({}), waiting {} with no vote, expires <t:{}:R>.",
            r.id.simple(),
            crate::actions::escalate::severity_of(app, &r)?.as_str(),
            human_duration(waited),
            r.expires_at.timestamp()
        )),
        None => out.push("Oldest unanswered: none (every pending request has a vote).".to_string()),
    }
    Ok(out.join("\n"))
}

fn source_line(
    app: &App,
    source: &str,
    now: DateTime<Utc>,
    warn_after: chrono::Duration,
) -> Result<String, crate::store::StoreError> {
    // The very type the ingest loops write ([`crate::ingest::Health`]).
    let status = app.store.source_status(source, now)?;
    let last_ok = status.last_ok;
    let errors = status.errors_since_ok;
    let cursor = if app.store.get_cursor(source)?.is_some() {
        "cursor saved"
    } else {
        "no cursor yet"
    };
    let failing = match (errors, last_ok) {
        (0, _) => String::new(),
        (n, Some(_)) => format!(", {n} failure(s) since"),
        (n, None) => format!(", {n} failure(s)"),
    };
    Ok(match last_ok {
        Some(t) => {
            let lag = now - t;
            let mark = if lag > warn_after || errors > 0 {
                "⚠️"
            } else {
                "✅"
            };
            format!(
                "{mark} {} lag {} (last success <t:{}:R>{failing}; {cursor})",
                code(source),
                human_duration(lag),
                t.timestamp()
            )
        }
        None => format!(
            "⚠️ {} no successful poll yet{failing} ({cursor})",
            code(source)
        ),
    })
}
