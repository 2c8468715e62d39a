//! The pipeline from a parsed finding to a stored request, shared by every ingest source
//! (GuardDuty polling, SQS, Security Hub) and by `/contain`.
//!
//! [`accept`] stores (deduplicates) the finding and keeps its request in step with it, with the
//! plan of the one planner ([`crate::planner::plan`]: notify-only where hanko may not act):
//!
//! * a new finding with a plan that has steps gets one Pending request, proposed by `system`;
//! * a finding seen again (higher count, newer `updatedAt`) never creates a second request; if
//!   its plan changed, the pending request is superseded and a new one proposed (old votes do
//!   not carry over to a different plan);
//! * a finding that became archived supersedes its pending request, and its approved request
//!   that has not started executing (the engine's pre-flight would refuse it anyway);
//! * a finding seen again after its request expired (a Pending request past `expires_at` is
//!   not live, [`Request::is_live`]; it is expired now if the sweep has not yet) gets a fresh
//!   request for its current plan, with its own card.
//!
//! [`accept`] does not flush: a caller that acknowledges findings to someone (a cursor, a queue)
//! flushes the store first, once per batch. [`propose`] (a person's `/contain`, `hanko drill`)
//! flushes.
//!
//! Every change is announced on the [`Notices`] channel so the chat adapter can post or edit a
//! card; the pipeline itself knows nothing about Discord.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::App;
use crate::approval::{Closure, Policy, Request, RequestKind, RequestState};
use crate::audit::{Actor, EventKind, NewEvent};
use crate::finding::Finding;
use crate::notices::{Notice, Notices};
use crate::plan::Plan;
use crate::planner::{self, Scope};
use crate::playbooks::Playbooks;
use crate::posture::{Group, GroupKey};
use crate::store::{Store, StoreError, Upsert};

/// What [`accept`] did with a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub upsert: Upsert,
    /// The request proposed now, if any.
    pub proposed: Option<Uuid>,
    /// Pending (or not yet executing Approved) requests superseded now.
    pub superseded: Vec<Uuid>,
    /// Pending requests past `expires_at` that this call expired (before the sweep did).
    pub expired: Vec<Uuid>,
}

/// Stores `finding` and keeps its request in step with it, under the running app's settings:
/// findings hanko may not act on (outside `aws.accounts` or `aws.regions`, or in an account it
/// has no role in) are stored and shown, never contained ([`crate::planner`]).
pub fn accept_in(app: &App, finding: &Finding, now: DateTime<Utc>) -> Result<Accepted, StoreError> {
    accept(
        &app.store,
        &app.playbooks,
        &app.policy,
        &app.notices,
        &app.scope_known(),
        app.settings.ingest.min_severity,
        finding,
        now,
    )
}

/// Stores `finding` and keeps its request in step with it, planned by [`planner::plan`] under
/// `scope`. A finding below `min_severity` (`ingest.min_severity`) is stored and announced but
/// gets no request: it gets no card either, and a request nobody can see would only expire.
/// See the module docs.
#[allow(clippy::too_many_arguments)]
pub fn accept(
    store: &Store,
    playbooks: &Playbooks,
    policy: &Policy,
    notices: &Notices,
    scope: &Scope,
    min_severity: f64,
    finding: &Finding,
    now: DateTime<Utc>,
) -> Result<Accepted, StoreError> {
    let ctx = Ctx {
        store,
        playbooks,
        policy,
        notices,
        scope,
        min_severity,
    };
    let mut accepted = ctx.accept_all(std::slice::from_ref(finding), now)?;
    accepted.pop().ok_or_else(|| StoreError::Corrupt {
        key: format!("findings/{}", finding.id),
        message: "storing the finding gave no outcome".into(),
    })
}

/// Stores a page of findings in ONE store transaction ([`Store::upsert_findings_proposing`]),
/// each new one with its request, then does for each finding seen again what [`accept_in`]
/// does: the same outcome as [`accept_in`] on each finding in order, at a fraction of the
/// cost (ingest's bursts). Does not flush.
pub fn accept_page_in(
    app: &App,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> Result<Vec<Accepted>, StoreError> {
    Ctx {
        store: &app.store,
        playbooks: &app.playbooks,
        policy: &app.policy,
        notices: &app.notices,
        scope: &app.scope_known(),
        min_severity: app.settings.ingest.min_severity,
    }
    .accept_all(findings, now)
}

/// The plan hanko would propose: the one planner's.
fn plan_for(finding: &Finding, playbooks: &Playbooks, scope: &Scope) -> Plan {
    planner::plan(finding, playbooks, scope)
}

/// What accepting a finding reads.
struct Ctx<'a> {
    store: &'a Store,
    playbooks: &'a Playbooks,
    policy: &'a Policy,
    notices: &'a Notices,
    scope: &'a Scope,
    min_severity: f64,
}

impl Ctx<'_> {
    /// The one way findings are accepted: each stored (deduplicated) and, when new, given its
    /// request in the same transaction, the whole slice in one; then each finding seen again
    /// is followed up ([`on_updated`]) and every change announced.
    fn accept_all(
        &self,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Vec<Accepted>, StoreError> {
        let stored = self
            .store
            .upsert_findings_proposing(findings, &Actor::System, now, |f| {
                // Below the minimum a finding is kept (and listed by /findings), never
                // proposed.
                let plan = plan_for(f, self.playbooks, self.scope);
                (!plan.is_notify_only() && f.severity >= self.min_severity).then(|| {
                    Request::new(
                        RequestKind::Contain,
                        plan,
                        Actor::System,
                        now,
                        self.policy.ttl,
                    )
                })
            })?;
        let mut out = Vec::with_capacity(findings.len());
        for (finding, (upsert, proposed)) in findings.iter().zip(stored) {
            let mut accepted = Accepted {
                upsert,
                proposed,
                superseded: Vec::new(),
                expired: Vec::new(),
            };
            match upsert {
                Upsert::Unchanged => {}
                Upsert::New => self.notices.send(Notice::FindingNew {
                    finding_id: finding.id.clone(),
                    request: proposed,
                }),
                Upsert::Updated { .. } => on_updated(
                    self.store,
                    self.playbooks,
                    self.policy,
                    self.notices,
                    finding,
                    now,
                    self.scope,
                    finding.severity >= self.min_severity,
                    &mut accepted,
                )?,
            }
            out.push(accepted);
        }
        Ok(out)
    }
}

/// A stored finding changed: its requests follow (see the module docs).
#[allow(clippy::too_many_arguments)]
fn on_updated(
    store: &Store,
    playbooks: &Playbooks,
    policy: &Policy,
    notices: &Notices,
    finding: &Finding,
    now: DateTime<Utc>,
    scope: &Scope,
    severe_enough: bool,
    accepted: &mut Accepted,
) -> Result<(), StoreError> {
    let plan = plan_for(finding, playbooks, scope);
    let requests = store.requests_for_finding(&finding.id)?;
    for r in requests.iter().filter(|r| r.kind == RequestKind::Contain) {
        let closed = match r.state {
            // Its time is up: expire it now (audited, as the sweep would), so the
            // fresh request below does not sit beside a Pending one nobody can approve.
            RequestState::Pending if !r.is_live(now) => store
                .expire_request(r.id, now)?
                .map(|_| RequestState::Expired),
            RequestState::Pending => {
                let reason = if finding.archived {
                    Some("the finding was archived")
                } else if r.plan.plan_hash != plan.plan_hash {
                    Some("the finding changed and so did its plan")
                } else {
                    None
                };
                match reason {
                    Some(reason) => unless_conflict(
                        store.transition(
                            r.id,
                            RequestState::Pending,
                            RequestState::Superseded,
                            NewEvent::new(now, Actor::System, EventKind::RequestSuperseded)
                                .finding(finding.id.clone())
                                .request(r.id)
                                .detail(serde_json::json!({ "reason": reason })),
                        ),
                    )?
                    .then_some(RequestState::Superseded),
                    None => None,
                }
            }
            // Approved but not yet executing: an archived finding is not contained.
            RequestState::Approved if finding.archived => {
                supersede_approved(store, r, finding, now)?.then_some(RequestState::Superseded)
            }
            _ => None,
        };
        match closed {
            Some(RequestState::Expired) => accepted.expired.push(r.id),
            Some(_) => accepted.superseded.push(r.id),
            None => continue,
        }
        notices.send(Notice::RequestChanged { request: r.id });
    }
    // A live finding whose request was superseded or expired (or which never had one,
    // e.g. its plan was notify-only before) gets a request for the current plan,
    // unless a request for this plan is still live.
    let has_live = requests.iter().any(|r| {
        r.kind == RequestKind::Contain && !accepted.superseded.contains(&r.id) && r.is_live(now)
    });
    // A finished request for the same plan blocks a new one (it was decided or done);
    // an expired one does not: nobody decided it in time.
    let already_done_same_plan = requests.iter().any(|r| {
        r.plan.plan_hash == plan.plan_hash
            && r.state.is_final()
            && r.state != RequestState::Superseded
            && r.state != RequestState::Expired
    });
    if !finding.archived
        && !plan.is_notify_only()
        && severe_enough
        && !has_live
        && !already_done_same_plan
    {
        accepted.proposed = Some(propose_deferred(store, policy, plan, now)?);
    }
    let request = accepted.proposed.or_else(|| {
        requests
            .iter()
            .rev()
            .find(|r| r.kind == RequestKind::Contain)
            .map(|r| r.id)
    });
    notices.send(Notice::FindingUpdated {
        finding_id: finding.id.clone(),
        request,
    });
    Ok(())
}

/// `Ok(true)` when a state change happened, `Ok(false)` when something else changed the
/// request first (a vote, the engine starting it): the other change stands.
fn unless_conflict<T>(moved: Result<T, StoreError>) -> Result<bool, StoreError> {
    match moved {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Supersedes an Approved request whose finding was archived before it ran, with the reason on
/// the request ([`Closure`]) and its `RequestSuperseded` event. `Ok(false)` when the engine
/// started it first (compare-and-swap on Approved).
fn supersede_approved(
    store: &Store,
    r: &Request,
    finding: &Finding,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    const REASON: &str = "the finding was archived before the approved plan ran";
    let mut next = r.clone();
    next.state = RequestState::Superseded;
    next.closure = Some(Closure {
        at: now,
        code: "finding_archived".into(),
        reason: REASON.into(),
    });
    let event = NewEvent::new(now, Actor::System, EventKind::RequestSuperseded)
        .finding(finding.id.clone())
        .request(r.id)
        .detail(
            serde_json::json!({ "reason": REASON, "code": "finding_archived", "was": "Approved" }),
        );
    unless_conflict(store.update_request(&next, RequestState::Approved, Some(event)))
}

/// A request proposed by hanko from a finding, durable at the caller's next flush (ingest
/// flushes once per page or batch, before it acknowledges the findings).
fn propose_deferred(
    store: &Store,
    policy: &Policy,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let request = Request::new(RequestKind::Contain, plan, Actor::System, now, policy.ttl);
    store.create_request_deferred(&request, now)?;
    Ok(request.id)
}

/// A posture group changed: when nothing of it fails any more (the control passes again, or
/// its findings were archived or suppressed elsewhere), its pending suppression or
/// remediation has nothing left to act on and is superseded. Returns the superseded requests;
/// the caller announces the group (`Notice::PostureChanged`).
pub fn posture_changed(
    store: &Store,
    notices: &Notices,
    group: &GroupKey,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let still_fails =
        Group::of(&store.control_findings(group)?).is_some_and(|g| !g.failing_findings.is_empty());
    if still_fails {
        return Ok(Vec::new());
    }
    let key = group.encode();
    let mut superseded = Vec::new();
    for r in store.requests_for_finding(&key)? {
        if r.state != RequestState::Pending || r.kind != RequestKind::Contain {
            continue;
        }
        store.transition(
            r.id,
            RequestState::Pending,
            RequestState::Superseded,
            NewEvent::new(now, Actor::System, EventKind::RequestSuperseded)
                .finding(key.clone())
                .request(r.id)
                .detail(serde_json::json!({ "reason": "nothing fails for this control any more" })),
        )?;
        notices.send(Notice::RequestChanged { request: r.id });
        superseded.push(r.id);
    }
    Ok(superseded)
}

/// Stores a new Pending request for `plan`, proposed by `proposer`, and flushes it (a person
/// is told about it next).
pub fn propose(
    store: &Store,
    policy: &Policy,
    plan: Plan,
    proposer: Actor,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    propose_with(store, policy, plan, proposer, now, false)
}

/// [`propose`], with `override_evidence`: destructive steps run even if an evidence step
/// (a snapshot) fails (`hanko drill --override-evidence`).
pub fn propose_with(
    store: &Store,
    policy: &Policy,
    plan: Plan,
    proposer: Actor,
    now: DateTime<Utc>,
    override_evidence: bool,
) -> Result<Uuid, StoreError> {
    let mut request = Request::new(RequestKind::Contain, plan, proposer, now, policy.ttl);
    request.override_evidence = override_evidence;
    store.create_request(&request, now)?;
    Ok(request.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditQuery;
    use crate::finding::{AccessKeyDetails, FindingSource, Resource, ResourceKind, SeverityLabel};
    use chrono::{Duration, TimeZone};

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap() + Duration::minutes(min)
    }

    fn finding(key: &str, count: u64, updated: i64) -> Finding {
        Finding {
            id: "f-1".into(),
            arn: None,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            finding_type: "UnauthorizedAccess:IAMUser/TorIPCaller".into(),
            severity: 5.0,
            severity_label: SeverityLabel::Medium,
            title: "t".into(),
            description: "d".into(),
            created_at: Some(t(0)),
            updated_at: Some(t(updated)),
            first_seen: None,
            last_seen: None,
            count,
            archived: false,
            sample: false,
            source: FindingSource::GuardDuty,
            resource: Resource {
                kind: ResourceKind::AccessKey,
                access_key: Some(AccessKeyDetails {
                    access_key_id: Some(key.into()),
                    principal_id: None,
                    user_name: Some("alice".into()),
                    user_type: Some("IAMUser".into()),
                }),
                instance: None,
                s3_buckets: Vec::new(),
            },
            actor: Default::default(),
        }
    }

    /// hanko's own account is the findings' account, in their region.
    fn own_account_scope() -> Scope {
        Scope {
            limits: planner::Limits {
                regions: Some(vec!["us-east-1".into()]),
                accounts: None,
            },
            reach: planner::Reach {
                own_account: planner::OwnAccount::Proven("123456789012".into()),
                role_template: false,
            },
        }
    }

    struct World {
        store: Store,
        books: Playbooks,
        policy: Policy,
        notices: Notices,
    }

    impl World {
        fn new() -> Self {
            World {
                store: Store::open_temporary().unwrap(),
                books: Playbooks::defaults(),
                policy: Policy::default(),
                notices: Notices::default(),
            }
        }
        fn accept(&self, f: &Finding, now: DateTime<Utc>) -> Accepted {
            self.accept_above(0.0, f, now)
        }
        fn accept_above(&self, min_severity: f64, f: &Finding, now: DateTime<Utc>) -> Accepted {
            accept(
                &self.store,
                &self.books,
                &self.policy,
                &self.notices,
                &own_account_scope(),
                min_severity,
                f,
                now,
            )
            .unwrap()
        }
        fn requests(&self) -> Vec<Request> {
            self.store.requests_for_finding("f-1").unwrap()
        }
    }

    #[test]
    fn a_page_is_stored_in_one_transaction_with_a_request_for_each_new_finding_only() {
        let w = World::new();
        let mut a = finding("AKIAONE", 1, 0);
        a.id = "f-a".into();
        let mut b = finding("AKIATWO", 1, 0);
        b.id = "f-b".into();
        let propose = |f: &Finding| {
            let plan = plan_for(f, &w.books, &own_account_scope());
            Some(Request::new(
                RequestKind::Contain,
                plan,
                Actor::System,
                t(1),
                w.policy.ttl,
            ))
        };
        let first = w
            .store
            .upsert_findings_proposing(&[a.clone(), b.clone()], &Actor::System, t(1), propose)
            .unwrap();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|(u, r)| *u == Upsert::New && r.is_some()));
        // The same page again, with `b` seen once more: `a` is unchanged, `b` updated; neither
        // gets a second request here (a finding seen again is the pipeline's to follow up).
        b.count = 2;
        b.updated_at = Some(t(2));
        let again = w
            .store
            .upsert_findings_proposing(&[a.clone(), b.clone()], &Actor::System, t(2), propose)
            .unwrap();
        assert_eq!(again[0], (Upsert::Unchanged, None));
        assert!(matches!(again[1], (Upsert::Updated { .. }, None)));
        for (f, (_, request)) in [&a, &b].into_iter().zip(&first) {
            let stored = w.store.requests_for_finding(&f.id).unwrap();
            assert_eq!(stored.len(), 1, "{}", f.id);
            assert_eq!(Some(stored[0].id), *request);
        }
        // Two findings, two requests, one update: five events, one chain that verifies.
        let events = w.store.query_audit(&AuditQuery::default()).unwrap();
        assert_eq!(events.len(), 5, "{events:?}");
        w.store.verify_audit().unwrap();
    }

    #[test]
    fn a_finding_below_min_severity_is_stored_without_a_request_until_it_rises() {
        let w = World::new();
        let mut rx = w.notices.subscribe();
        let mut low = finding("AKIAEXAMPLE", 1, 0);
        low.severity = 2.0;
        let a = w.accept_above(4.0, &low, t(1));
        assert_eq!(a.upsert, Upsert::New);
        assert_eq!(a.proposed, None, "no card will show it: no request");
        assert!(w.requests().is_empty());
        assert!(matches!(
            rx.try_recv(),
            Ok(Notice::FindingNew { request: None, .. })
        ));
        // GuardDuty raises its severity: now it is proposed.
        let mut high = finding("AKIAEXAMPLE", 2, 5);
        high.severity = 8.0;
        let b = w.accept_above(4.0, &high, t(6));
        assert!(b.proposed.is_some(), "{b:?}");
        assert_eq!(w.requests().len(), 1);
    }

    #[test]
    fn a_finding_gets_one_request_however_often_it_recurs() {
        let w = World::new();
        let mut rx = w.notices.subscribe();
        let a = w.accept(&finding("AKIAEXAMPLE", 1, 0), t(1));
        assert_eq!(a.upsert, Upsert::New);
        let first = a.proposed.expect("a request is proposed");
        assert_eq!(
            rx.try_recv().unwrap(),
            Notice::FindingNew {
                finding_id: "f-1".into(),
                request: Some(first)
            }
        );
        // The same document again: nothing happens.
        let again = w.accept(&finding("AKIAEXAMPLE", 1, 0), t(2));
        assert_eq!(again.upsert, Upsert::Unchanged);
        assert!(rx.try_recv().is_err());
        // Recurring (count up, newer): the finding is updated, its card edited, no new request.
        let up = w.accept(&finding("AKIAEXAMPLE", 5, 10), t(3));
        assert!(matches!(
            up.upsert,
            Upsert::Updated {
                previous_count: 1,
                ..
            }
        ));
        assert_eq!(up.proposed, None);
        assert_eq!(
            rx.try_recv().unwrap(),
            Notice::FindingUpdated {
                finding_id: "f-1".into(),
                request: Some(first)
            }
        );
        assert_eq!(w.requests().len(), 1);
    }

    #[test]
    fn a_posture_group_that_no_longer_fails_supersedes_its_pending_request() {
        use crate::posture::{parse_control_finding, ComplianceStatus};
        let w = World::new();
        let doc = serde_json::json!({
            "Id": "arn:aws:securityhub:us-east-1:123456789012:security-control/S3.8/finding/1",
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
            "AwsAccountId": "123456789012",
            "UpdatedAt": "2026-11-28T08:00:00Z",
            "Resources": [{"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::b"}],
            "Compliance": {"Status": "FAILED", "SecurityControlId": "S3.8"},
        });
        let mut f = parse_control_finding(&doc, "$", "us-east-1").unwrap();
        w.store.upsert_control_finding(&f).unwrap();
        let key = f.group_key();
        let plan = Plan::new(
            key.encode(),
            "123456789012".into(),
            "us-east-1".into(),
            false,
            Vec::new(),
            Vec::new(),
        );
        let id = propose(&w.store, &w.policy, plan, Actor::System, t(1)).unwrap();
        // Still failing: nothing happens.
        assert!(posture_changed(&w.store, &w.notices, &key, t(2))
            .unwrap()
            .is_empty());
        f.compliance = ComplianceStatus::Passed;
        f.updated_at = Some(t(3));
        w.store.upsert_control_finding(&f).unwrap();
        assert_eq!(
            posture_changed(&w.store, &w.notices, &key, t(4)).unwrap(),
            vec![id]
        );
        assert_eq!(
            w.store.get_request(id).unwrap().unwrap().state,
            RequestState::Superseded
        );
    }

    #[test]
    fn archiving_supersedes_the_pending_request() {
        let w = World::new();
        let first = w
            .accept(&finding("AKIAEXAMPLE", 1, 0), t(1))
            .proposed
            .unwrap();
        let mut archived = finding("AKIAEXAMPLE", 1, 20);
        archived.archived = true;
        let a = w.accept(&archived, t(2));
        assert_eq!(a.superseded, vec![first]);
        assert_eq!(a.proposed, None);
        let reqs = w.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].state, RequestState::Superseded);
        let events = w
            .store
            .query_audit(&AuditQuery {
                request_id: Some(first),
                kind: Some(EventKind::RequestSuperseded),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail["reason"], "the finding was archived");
    }

    #[test]
    fn a_changed_plan_supersedes_and_proposes_again() {
        let w = World::new();
        let first = w
            .accept(&finding("AKIAFIRST", 1, 0), t(1))
            .proposed
            .unwrap();
        let a = w.accept(&finding("AKIASECOND", 2, 5), t(2));
        assert_eq!(a.superseded, vec![first]);
        let second = a.proposed.expect("the new plan is proposed");
        assert_ne!(first, second);
        let reqs = w.requests();
        assert_eq!(reqs.len(), 2);
        let new = reqs.iter().find(|r| r.id == second).unwrap();
        assert_eq!(new.state, RequestState::Pending);
        assert_eq!(new.plan.steps[0].parameters["AccessKeyId"], "AKIASECOND");
    }

    #[test]
    fn a_finding_recurring_after_its_request_expired_gets_a_fresh_request() {
        let w = World::new();
        let mut rx = w.notices.subscribe();
        let first = w
            .accept(&finding("AKIAEXAMPLE", 1, 0), t(1))
            .proposed
            .unwrap();
        let _ = rx.try_recv();
        // Within the TTL a recurrence proposes nothing.
        let soon = w.accept(&finding("AKIAEXAMPLE", 2, 10), t(30));
        assert_eq!(soon.proposed, None);
        let _ = rx.try_recv();

        // Past expires_at and before any sweep: the old request is not live, so it is expired
        // (audited) and a fresh request for the same plan is proposed.
        let late = t(1) + w.policy.ttl + Duration::minutes(1);
        let a = w.accept(&finding("AKIAEXAMPLE", 3, 300), late);
        assert_eq!(a.expired, vec![first]);
        let fresh = a.proposed.expect("a fresh request is proposed");
        assert_ne!(fresh, first);
        assert_eq!(
            rx.try_recv().unwrap(),
            Notice::RequestChanged { request: first }
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Notice::FindingUpdated {
                finding_id: "f-1".into(),
                request: Some(fresh)
            }
        );
        let old = w.store.get_request(first).unwrap().unwrap();
        assert_eq!(old.state, RequestState::Expired);
        let new = w.store.get_request(fresh).unwrap().unwrap();
        assert_eq!(new.state, RequestState::Pending);
        assert_eq!(new.plan.plan_hash, old.plan.plan_hash);
        assert!(new.is_live(late));
        let expired = w
            .store
            .query_audit(&AuditQuery {
                request_id: Some(first),
                kind: Some(EventKind::RequestExpired),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(expired.len(), 1);

        // Already swept: an Expired request does not block the next fresh one either.
        let later = late + w.policy.ttl;
        assert_eq!(
            crate::actions::expire::sweep(&w.store, &w.notices, later).unwrap(),
            vec![fresh]
        );
        let b = w.accept(&finding("AKIAEXAMPLE", 4, 600), later);
        assert!(b.expired.is_empty());
        assert!(b.proposed.is_some());
        assert_eq!(w.requests().len(), 3);
    }

    #[test]
    fn archiving_supersedes_an_approved_request_that_has_not_run() {
        let w = World::new();
        let id = w
            .accept(&finding("AKIAEXAMPLE", 1, 0), t(1))
            .proposed
            .unwrap();
        let mut approved = w.store.get_request(id).unwrap().unwrap();
        approved.state = RequestState::Approved;
        approved.decided_at = Some(t(2));
        w.store
            .update_request(&approved, RequestState::Pending, None)
            .unwrap();

        let mut archived = finding("AKIAEXAMPLE", 1, 20);
        archived.archived = true;
        let a = w.accept(&archived, t(3));
        assert_eq!(a.superseded, vec![id]);
        assert_eq!(a.proposed, None);
        let req = w.store.get_request(id).unwrap().unwrap();
        assert_eq!(req.state, RequestState::Superseded);
        let closure = req.closure.expect("the reason is on the request");
        assert_eq!(closure.code, "finding_archived");
        assert_eq!(closure.at, t(3));
        let events = w
            .store
            .query_audit(&AuditQuery {
                request_id: Some(id),
                kind: Some(EventKind::RequestSuperseded),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail["was"], "Approved");

        // An Executing request is not touched: what runs, finishes.
        let w = World::new();
        let id = w
            .accept(&finding("AKIAEXAMPLE", 1, 0), t(1))
            .proposed
            .unwrap();
        let mut running = w.store.get_request(id).unwrap().unwrap();
        running.state = RequestState::Approved;
        w.store
            .update_request(&running, RequestState::Pending, None)
            .unwrap();
        w.store
            .transition(
                id,
                RequestState::Approved,
                RequestState::Executing,
                NewEvent::new(t(2), Actor::System, EventKind::ExecutionStarted),
            )
            .unwrap();
        let a = w.accept(&archived, t(3));
        assert!(a.superseded.is_empty());
        assert_eq!(
            w.store.get_request(id).unwrap().unwrap().state,
            RequestState::Executing
        );
    }

    #[test]
    fn notify_only_findings_are_stored_without_a_request() {
        let w = World::new();
        let mut root = finding("AKIAROOT", 1, 0);
        root.resource.access_key.as_mut().unwrap().user_type = Some("Root".into());
        let a = w.accept(&root, t(1));
        assert_eq!(a.upsert, Upsert::New);
        assert_eq!(a.proposed, None);
        assert!(w.requests().is_empty());
        assert!(w.store.get_finding("f-1").unwrap().is_some());
    }
}
