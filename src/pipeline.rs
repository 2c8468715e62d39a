//! The pipeline from a parsed finding to a stored request, shared by every ingest source
//! (GuardDuty polling, SQS, Security Hub) and by `/contain`.
//!
//! [`accept`] stores (deduplicates) the finding and keeps its request in step with it:
//!
//! * a new finding with a plan that has steps gets one Pending request, proposed by `system`;
//! * a finding seen again (higher count, newer `updatedAt`) never creates a second request; if
//!   its plan changed, the pending request is superseded and a new one proposed (old votes do
//!   not carry over to a different plan);
//! * a finding that became archived supersedes its pending request.
//!
//! Every change is announced on the [`Notices`] channel so the chat adapter can post or edit a
//! card; the pipeline itself knows nothing about Discord.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::approval::{Policy, Request, RequestKind, RequestState};
use crate::audit::{Actor, EventKind, NewEvent};
use crate::finding::Finding;
use crate::plan::{self, Plan};
use crate::playbooks::Playbooks;
use crate::store::{Store, StoreError, Upsert};

/// Something the chat adapter may want to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// A finding was stored for the first time; `request` is its new request, if any.
    FindingNew {
        finding_id: String,
        request: Option<Uuid>,
    },
    /// A known finding changed (count, time, archived); its card should be edited.
    FindingUpdated {
        finding_id: String,
        request: Option<Uuid>,
    },
    /// A request changed state (vote, execution, supersession).
    RequestChanged { request: Uuid },
}

/// A broadcast channel of [`Notice`]s. Cheap to clone; sending never blocks and never fails
/// (with no receiver, notices are dropped: the store remains the source of truth).
#[derive(Debug, Clone)]
pub struct Notices {
    tx: broadcast::Sender<Notice>,
}

impl Default for Notices {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Notices {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Notices { tx }
    }

    pub fn send(&self, notice: Notice) {
        let _ = self.tx.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}

/// What [`accept`] did with a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub upsert: Upsert,
    /// The request proposed now, if any.
    pub proposed: Option<Uuid>,
    /// Pending requests superseded now.
    pub superseded: Vec<Uuid>,
}

/// Stores `finding` and keeps its request in step with it. See the module docs.
pub fn accept(
    store: &Store,
    playbooks: &Playbooks,
    policy: &Policy,
    notices: &Notices,
    finding: &Finding,
    now: DateTime<Utc>,
) -> Result<Accepted, StoreError> {
    let upsert = store.upsert_finding(finding, &Actor::System, now)?;
    let mut accepted = Accepted {
        upsert,
        proposed: None,
        superseded: Vec::new(),
    };
    match upsert {
        Upsert::Unchanged => return Ok(accepted),
        Upsert::New => {
            let plan = plan::plan(finding, playbooks);
            if !plan.is_notify_only() {
                accepted.proposed = Some(propose(store, policy, plan, Actor::System, now)?);
            }
            notices.send(Notice::FindingNew {
                finding_id: finding.id.clone(),
                request: accepted.proposed,
            });
        }
        Upsert::Updated { .. } => {
            let plan = plan::plan(finding, playbooks);
            let requests = store.requests_for_finding(&finding.id)?;
            let pending: Vec<&Request> = requests
                .iter()
                .filter(|r| r.state == RequestState::Pending && r.kind == RequestKind::Contain)
                .collect();
            for r in &pending {
                let reason = if finding.archived {
                    Some("the finding was archived")
                } else if r.plan.plan_hash != plan.plan_hash {
                    Some("the finding changed and so did its plan")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    store.transition(
                        r.id,
                        RequestState::Pending,
                        RequestState::Superseded,
                        NewEvent::new(now, Actor::System, EventKind::RequestSuperseded)
                            .finding(finding.id.clone())
                            .request(r.id)
                            .detail(serde_json::json!({ "reason": reason })),
                    )?;
                    accepted.superseded.push(r.id);
                    notices.send(Notice::RequestChanged { request: r.id });
                }
            }
            // A live finding whose pending request was superseded (or which never had one,
            // e.g. its plan was notify-only before) gets a request for the current plan,
            // unless a request for this plan is already pending or under way.
            let has_live = requests.iter().any(|r| {
                r.kind == RequestKind::Contain
                    && !accepted.superseded.contains(&r.id)
                    && matches!(
                        r.state,
                        RequestState::Pending | RequestState::Approved | RequestState::Executing
                    )
            });
            let already_done_same_plan = requests.iter().any(|r| {
                r.plan.plan_hash == plan.plan_hash
                    && r.state.is_final()
                    && r.state != RequestState::Superseded
            });
            if !finding.archived && !plan.is_notify_only() && !has_live && !already_done_same_plan {
                accepted.proposed = Some(propose(store, policy, plan, Actor::System, now)?);
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
        }
    }
    Ok(accepted)
}

/// Stores a new Pending request for `plan`, proposed by `proposer`.
pub fn propose(
    store: &Store,
    policy: &Policy,
    plan: Plan,
    proposer: Actor,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let request = Request::new(RequestKind::Contain, plan, proposer, now, policy.ttl);
    store.create_request(&request, now)?;
    Ok(request.id)
}
