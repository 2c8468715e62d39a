//! Investigate: what a leaked access key did, read from CloudTrail, shown on its card, and
//! what it created proposed for containment.
//!
//! When the card of a finding about an access key (`AKIA…`/`ASIA…`) is posted
//! ([`Notice::CardPosted`], [`key_to_investigate`]), the [`Investigator`] task (started by
//! `hanko run` before ingest) runs [`investigate`]: `LookupEvents` for that key in every configured region (and
//! `us-east-1`, where IAM's calls are logged) over `investigate.lookback`, at most
//! `investigate.max_events` a region ([`crate::aws::cloudtrail`], paged, 2 requests a second
//! per account and region, throttling retried there). The card never waits: the lookup starts
//! once it is posted, and the outbox edits it on [`Notice::InvestigationChanged`]. An
//! investigation already recorded is not run again (a card posted anew after a deletion).
//!
//! A region that fails (throttled past its retries, AccessDenied) shows as one line on the
//! card; the failed regions are asked again with backoff, up to [`MAX_ATTEMPTS`] attempts. The
//! key's own containment never waits for any of it: the request is the pipeline's, as before.
//!
//! For what the key created and hanko can contain (a new access key, a new user's keys, a
//! launched instance, a bucket whose policy was opened), a **derived finding** is stored and
//! planned like any other ([`crate::pipeline::accept_in`]): its own card, its own Pending
//! request, approval-gated as usual. Its id is `inv-<hash of the parent>-<resource>`, so a retry
//! or a restart never proposes it twice. Nothing is ever proposed for deletion.
//!
//! Every attempt is recorded with the events read and an `InvestigationRecorded` audit event
//! (counts, window, regions, failures, proposals) in one transaction
//! ([`crate::store::Store::record_investigation`]). Read-only in AWS: `cloudtrail:LookupEvents`
//! and the read calls of [`crate::aws::lookup`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::JoinSet;

use crate::app::App;
use crate::audit::{Actor, EventKind, NewEvent};
use crate::aws::cloudtrail::lookup_key_events;
use crate::aws::lookup::{self, Looked};
use crate::aws::AwsError;
use crate::finding::{Finding, FindingSource, Resource, ResourceKind};
use crate::investigate::{
    containable, jsonl, summarize, Containable, Investigation, InvestigationState, Proposal,
    RegionOutcome, TrailEvent, Window,
};
use crate::notices::Notice;
use crate::store::StoreError;
use crate::util::{backoff, one_line, Jitter};

/// Investigations at once (each is bounded by CloudTrail's rate anyway).
pub const WORKERS: usize = 4;
/// Attempts before a region that keeps failing is given up.
pub const MAX_ATTEMPTS: u32 = 4;
/// The first wait before a failed region is asked again (doubling, at most [`RETRY_CAP`]).
pub const RETRY_BASE: Duration = Duration::from_secs(30);
pub const RETRY_CAP: Duration = Duration::from_secs(15 * 60);
/// The id prefix of a derived finding (never investigated itself).
pub const DERIVED_PREFIX: &str = "inv-";
/// The product a derived finding names.
pub const DERIVED_PRODUCT_ARN: &str = "hanko:investigation";
/// The most derived proposals one investigation makes (the card lists the rest).
pub const MAX_PROPOSALS: usize = 10;
/// The region where IAM and other global services log their calls.
pub const GLOBAL_EVENTS_REGION: &str = "us-east-1";

/// The access key to investigate for `f`, when it should be: investigations on, a live,
/// non-sample finding about a real `AKIA`/`ASIA` key that gets a card, not a derived one.
pub fn key_to_investigate(app: &App, f: &Finding) -> Option<String> {
    if !app.settings.investigate.enabled
        || f.archived
        || f.sample
        || f.id.starts_with(DERIVED_PREFIX)
        || f.resource.kind != ResourceKind::AccessKey
        || f.severity < app.settings.ingest.min_severity
    {
        return None;
    }
    let key = f.resource.access_key.as_ref()?.access_key_id.as_deref()?;
    crate::ids::is_access_key_id(key).then(|| key.to_string())
}

/// The regions asked: `aws.regions`, then `us-east-1` in the `aws` partition when it is not
/// among them (IAM's calls, `CreateUser` and `CreateAccessKey` among them, are logged there).
pub fn regions_for(app: &App, f: &Finding) -> Vec<String> {
    let mut regions = app.settings.aws.regions.clone();
    if regions.is_empty() {
        regions.push(f.region.clone());
    }
    let aws_partition = regions
        .first()
        .is_some_and(|r| crate::ids::partition(r) == "aws");
    if aws_partition && !regions.iter().any(|r| r == GLOBAL_EVENTS_REGION) {
        regions.push(GLOBAL_EVENTS_REGION.to_string());
    }
    regions
}

/// One attempt of the investigation of `finding_id` (the first, or the next of one left
/// unfinished): asks the regions not read yet, records the result. Returns how long to wait
/// before the next attempt while a region fails (`retry_base` doubling, [`MAX_ATTEMPTS`] in
/// all), `None` once it is final. Does nothing when the finding is not one to investigate or
/// its investigation is final.
pub async fn investigate(
    app: &App,
    finding_id: &str,
    retry_base: Duration,
) -> Result<Option<Duration>, StoreError> {
    let Some(stored) = app.store.get_finding(finding_id)? else {
        return Ok(None);
    };
    let f = stored.finding;
    let Some(key) = key_to_investigate(app, &f) else {
        return Ok(None);
    };
    let now = app.clock.now();
    let mut inv = match app.store.investigation(finding_id)? {
        Some(inv) if inv.is_final() => return Ok(None),
        Some(inv) => inv,
        None => {
            let window = Window::back_from(now, app.settings.investigate.lookback);
            let inv = Investigation::start(&f.id, &key, &f.account_id, window, now);
            if !app.store.begin_investigation(&inv)? {
                return Ok(None); // another task began it
            }
            announce(app, &f.id);
            inv
        }
    };
    // Events read by an earlier attempt (a resumed investigation).
    let mut events: Vec<TrailEvent> = app
        .store
        .investigation_events(finding_id)?
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default();

    inv.attempts += 1;
    let asked: Vec<String> = if inv.regions.is_empty() {
        regions_for(app, &f)
    } else {
        inv.failed_regions()
    };
    if inv.attempts > 1 {
        inv.state = InvestigationState::Running;
        inv.updated_at = app.clock.now();
        app.store.put_investigation(&inv)?;
        announce(app, &f.id);
    }

    // Where hanko may not act, it does not read either.
    let scope = app.scope_proven().await;
    if let Err(refusal) = crate::planner::check(&scope, &f.account_id, &f.region) {
        inv.state = InvestigationState::Skipped {
            reason: refusal.to_string(),
        };
        finish(app, &f, &mut inv, &events).await?;
        return Ok(None);
    }

    let lookups = asked.iter().map(|region| {
        let (account, key, window) = (inv.account.clone(), key.clone(), inv.window);
        async move {
            let result = async {
                let clients = app.clients.clients(&account, region).await?;
                lookup_key_events(
                    clients.cloudtrail(),
                    &app.lookup_rate,
                    &account,
                    region,
                    &key,
                    &window,
                    app.settings.investigate.max_events,
                )
                .await
            }
            .await;
            (region.clone(), result)
        }
    });
    for (region, result) in futures_util::future::join_all(lookups).await {
        let outcome = match result {
            Ok((read, capped)) => {
                let n = read.len() as u32;
                events.retain(|e| {
                    e.region != region || !read.iter().any(|r| r.event_id == e.event_id)
                });
                events.extend(read);
                RegionOutcome::Read {
                    region: region.clone(),
                    events: n,
                    capped,
                }
            }
            Err(e) => failed_outcome(&region, &e),
        };
        match inv.regions.iter_mut().find(|r| r.region() == region) {
            Some(slot) => *slot = outcome,
            None => inv.regions.push(outcome),
        }
    }
    let capped = inv
        .regions
        .iter()
        .any(|r| matches!(r, RegionOutcome::Read { capped: true, .. }));
    let read_any = inv.regions.iter().any(|r| !r.failed());
    if read_any {
        let summary = summarize(&events, capped);
        if inv.proposals.is_empty() {
            inv.proposals = propose(app, &f, &key, &summary).await;
        }
        inv.summary = Some(summary);
    }
    let failing = !inv.failed_regions().is_empty();
    let retry = if failing && inv.attempts < MAX_ATTEMPTS {
        Some(backoff(
            retry_base,
            RETRY_CAP,
            inv.attempts,
            Jitter::UpperHalf,
        ))
    } else {
        None
    };
    inv.state = match (failing, retry) {
        (false, _) => InvestigationState::Done,
        (true, Some(wait)) => InvestigationState::RetryAt {
            at: app.clock.now()
                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero()),
        },
        (true, None) => InvestigationState::Failed,
    };
    finish(app, &f, &mut inv, &events).await?;
    Ok(retry)
}

/// Records the attempt (the record, the events, the audit event) and announces it.
async fn finish(
    app: &App,
    f: &Finding,
    inv: &mut Investigation,
    events: &[TrailEvent],
) -> Result<(), StoreError> {
    let now = app.clock.now();
    inv.updated_at = now;
    let s = inv.summary.clone().unwrap_or_default();
    let count = |pred: fn(&crate::investigate::Created) -> bool| {
        s.created.iter().filter(|c| pred(&c.what)).count()
    };
    use crate::investigate::Created as C;
    let outcome = match &inv.state {
        InvestigationState::Done => "complete",
        InvestigationState::Skipped { .. } => "skipped",
        InvestigationState::Failed if inv.summary.is_some() => "partial",
        InvestigationState::Failed => "failed",
        InvestigationState::RetryAt { .. } => "retrying",
        InvestigationState::Running => "running",
    };
    let ev = NewEvent::new(now, Actor::System, EventKind::InvestigationRecorded)
        .finding(f.id.clone())
        .detail(json!({
            "access_key_id": inv.access_key_id,
            "account": inv.account,
            "window": { "start": inv.window.start, "end": inv.window.end },
            "regions": inv.region_names(),
            "attempt": inv.attempts,
            "outcome": outcome,
            "events": s.events,
            "read_only": s.read_only,
            "mutating": s.mutating,
            "failed_calls": s.failed_calls,
            "capped": s.capped,
            "created": {
                "instances": count(|c| matches!(c, C::Instance { .. })),
                "access_keys": count(|c| matches!(c, C::AccessKey { .. })),
                "users": count(|c| matches!(c, C::User { .. })),
                "roles": count(|c| matches!(c, C::Role { .. })),
                "security_groups": count(|c| matches!(c, C::SecurityGroup { .. })),
                "buckets": count(|c| matches!(c, C::Bucket { .. })),
                "bucket_policies": count(|c| matches!(c, C::BucketPolicy { .. })),
            },
            "proposed": inv.proposals.iter().filter_map(|p| p.request).map(|r| r.to_string()).collect::<Vec<_>>(),
            "failed": inv.regions.iter().filter_map(|r| match r {
                RegionOutcome::Failed { region, class, code, .. } => Some(json!({"region": region, "class": class, "code": code})),
                _ => None,
            }).collect::<Vec<_>>(),
        }));
    // serde_json writes UTF-8; lossy only so that nothing could ever drop the list.
    let lines = String::from_utf8_lossy(&jsonl(events)).into_owned();
    app.store.record_investigation(inv, &lines, ev)?;
    announce(app, &f.id);
    Ok(())
}

fn announce(app: &App, finding_id: &str) {
    app.notices.send(Notice::InvestigationChanged {
        finding_id: finding_id.to_string(),
    });
}

fn failed_outcome(region: &str, e: &AwsError) -> RegionOutcome {
    RegionOutcome::Failed {
        region: region.to_string(),
        class: e.class.as_str().to_string(),
        code: e.code.clone(),
        line: one_line(&e.to_string(), 200),
    }
}

/// Proposes the containment of what the key created (at most [`MAX_PROPOSALS`]), each as a
/// derived finding planned and proposed by the pipeline.
async fn propose(
    app: &App,
    parent: &Finding,
    leaked_key: &str,
    summary: &crate::investigate::Summary,
) -> Vec<Proposal> {
    let mut out = Vec::new();
    let mut keys_done: Vec<String> = vec![leaked_key.to_string()];
    for what in containable(summary).into_iter().take(MAX_PROPOSALS) {
        match &what {
            Containable::UserKeys { user } => {
                let listed = match app
                    .clients
                    .clients(&parent.account_id, &parent.region)
                    .await
                {
                    Ok(c) => lookup::access_keys_of(&c, user).await,
                    Err(e) => Err(e),
                };
                match listed {
                    Ok(keys) => {
                        let active: Vec<String> = keys
                            .into_iter()
                            .filter(|k| k.active && !keys_done.contains(&k.access_key_id))
                            .map(|k| k.access_key_id)
                            .collect();
                        if active.is_empty() {
                            out.push(Proposal {
                                what: what.clone(),
                                request: None,
                                note: Some(format!("user {user} has no other active key")),
                            });
                        }
                        for key in active {
                            keys_done.push(key.clone());
                            out.push(propose_key(app, parent, &what, &key, &parent.region).await);
                        }
                    }
                    Err(e) => out.push(Proposal {
                        what: what.clone(),
                        request: None,
                        note: Some(one_line(&e.to_string(), 200)),
                    }),
                }
            }
            Containable::AccessKey { id, .. } => {
                if keys_done.contains(id) {
                    continue;
                }
                keys_done.push(id.clone());
                out.push(propose_key(app, parent, &what, id, &parent.region).await);
            }
            Containable::Instance { id, region } => {
                let looked = match app.clients.clients(&parent.account_id, region).await {
                    Ok(c) => lookup::instance(&c, id).await,
                    Err(e) => Err(e),
                };
                let p = propose_looked(
                    app,
                    parent,
                    &what,
                    looked,
                    region,
                    id,
                    "Instance",
                    "EC2/InstanceLaunchedByLeakedKey",
                )
                .await;
                out.push(p);
            }
            Containable::BucketPublicAccess { bucket, region } => {
                let looked = match app.clients.clients(&parent.account_id, region).await {
                    Ok(c) => lookup::bucket(&c, bucket, region).await,
                    Err(e) => Err(e),
                };
                let p = propose_looked(
                    app,
                    parent,
                    &what,
                    looked,
                    region,
                    bucket,
                    "Bucket",
                    "S3/BucketOpenedByLeakedKey",
                )
                .await;
                out.push(p);
            }
        }
    }
    out
}

async fn propose_key(
    app: &App,
    parent: &Finding,
    what: &Containable,
    key: &str,
    region: &str,
) -> Proposal {
    let looked = match app.clients.clients(&parent.account_id, region).await {
        Ok(c) => lookup::access_key(&c, key).await,
        Err(e) => Err(e),
    };
    propose_looked(
        app,
        parent,
        what,
        looked,
        region,
        key,
        "Access key",
        "IAMUser/AccessKeyCreatedByLeakedKey",
    )
    .await
}

/// Stores the derived finding of a lookup and lets the pipeline plan and propose it: the
/// proposal of `containable`, with its request or why there is none.
#[allow(clippy::too_many_arguments)]
async fn propose_looked(
    app: &App,
    parent: &Finding,
    containable: &Containable,
    looked: Result<Looked, AwsError>,
    region: &str,
    id: &str,
    what: &str,
    type_tail: &str,
) -> Proposal {
    let note = |n: String| Proposal {
        what: containable.clone(),
        request: None,
        note: Some(n),
    };
    let resource = match looked {
        Ok(Looked::Found(r)) => *r,
        Ok(Looked::OwnerUnknown) => return note(format!("{what} {id}: AWS names no owner")),
        Ok(Looked::BucketElsewhere { actual }) => {
            return note(format!(
                "{what} {id} is in {actual}, outside the regions asked"
            ))
        }
        Err(e) => return note(format!("{what} {id}: {}", one_line(&e.to_string(), 160))),
    };
    let now = app.clock.now();
    let derived = derived_finding(parent, resource, region, id, what, type_tail, now);
    match crate::pipeline::accept_in(app, &derived, now) {
        Ok(accepted) => {
            // Proposed now, or already by an earlier attempt (the derived id is stable).
            let request = match accepted.proposed {
                Some(id) => Some(id),
                None => match app.store.requests_for_finding(&derived.id) {
                    Ok(rs) => rs.into_iter().find(|r| r.is_live(now)).map(|r| r.id),
                    Err(e) => return note(format!("{what} {id}: its request cannot be read: {e}")),
                },
            };
            Proposal {
                what: containable.clone(),
                request,
                note: request
                    .is_none()
                    .then(|| format!("{what} {id}: nothing hanko may run (see its card)")),
            }
        }
        Err(e) => note(format!("{what} {id}: not stored: {e}")),
    }
}

/// A finding for a resource the leaked key created: its own card and request.
fn derived_finding(
    parent: &Finding,
    resource: Resource,
    region: &str,
    id: &str,
    what: &str,
    type_tail: &str,
    now: DateTime<Utc>,
) -> Finding {
    let hash = Sha256::digest(parent.id.as_bytes());
    let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let safe_id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(128)
        .collect();
    let key = parent
        .resource
        .access_key
        .as_ref()
        .and_then(|k| k.access_key_id.clone())
        .unwrap_or_default();
    Finding {
        id: format!("{DERIVED_PREFIX}{short}-{safe_id}"),
        arn: None,
        account_id: parent.account_id.clone(),
        region: region.to_string(),
        finding_type: format!("Investigation:{type_tail}"),
        severity: parent.severity,
        severity_label: parent.severity_label,
        title: format!("{what} {id} was created with the leaked key {key}"),
        description: format!(
            "CloudTrail shows that the access key {key} of finding {} created {what} {id}. hanko proposes its containment separately; nothing is deleted.",
            parent.id
        ),
        created_at: Some(now),
        updated_at: Some(now),
        first_seen: Some(now),
        last_seen: Some(now),
        count: 1,
        archived: false,
        sample: false,
        source: FindingSource::SecurityHub {
            product_arn: DERIVED_PRODUCT_ARN.to_string(),
        },
        resource,
        actor: parent.actor.clone(),
    }
}

/// The task that investigates each new finding about an access key, [`WORKERS`] at a time.
pub struct Investigator {
    app: App,
    retry_base: Duration,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
}

impl Investigator {
    pub fn new(app: App) -> Self {
        Investigator {
            app,
            retry_base: RETRY_BASE,
            permits: Arc::new(Semaphore::new(WORKERS)),
            tasks: JoinSet::new(),
        }
    }

    /// Waits `base` (doubling) before asking a failed region again, instead of [`RETRY_BASE`].
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Runs until `shutdown` turns true: resumes unfinished investigations, then investigates
    /// the finding of each card the outbox posts (`notices`, subscribed before ingest starts).
    pub async fn run(
        mut self,
        mut notices: broadcast::Receiver<Notice>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        match self.app.store.unfinished_investigations() {
            Ok(unfinished) => {
                for inv in unfinished {
                    self.spawn(inv.finding_id);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "investigator: cannot read unfinished investigations")
            }
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                received = notices.recv() => match received {
                    Ok(Notice::CardPosted { finding_id }) => self.spawn(finding_id),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "investigator: notices were dropped; findings among them are not investigated");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            tracing::error!(error = %e, "investigator: an investigation panicked");
                        }
                    }
                }
            }
        }
        // Read-only work: stopping it loses nothing (an unfinished one resumes at the next start).
        self.tasks.abort_all();
    }

    fn spawn(&mut self, finding_id: String) {
        let (app, permits, base) = (self.app.clone(), Arc::clone(&self.permits), self.retry_base);
        self.tasks.spawn(async move {
            loop {
                // A worker is held for one attempt, not for the wait before the next.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let attempt = investigate(&app, &finding_id, base).await;
                drop(permit);
                match attempt {
                    Ok(Some(wait)) => tokio::time::sleep(wait).await,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::error!(finding_id, error = %e, "investigation could not be recorded");
                        return;
                    }
                }
            }
        });
    }
}
