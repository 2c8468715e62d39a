//! Approval: request states, the approval policy, and the pure [`decide`] function.
//!
//! Pure core: `decide(policy, request, vote, now)` returns the next request or the reason the
//! vote is refused. It never reads a clock or a database; the store calls it inside the
//! transaction that records the vote, so two simultaneous clicks cannot both decide.
//!
//! ```text
//! Pending ──vote──> Pending (quorum not met) ──vote──> Approved ──> Executing ──> Succeeded
//!    │                                                                      └──> Failed / PartiallyFailed
//!    ├──reject──> Rejected
//!    ├──ttl──> Expired
//!    └──finding archived or plan changed──> Superseded
//!
//! Approved ──pre-flight refused (approval too old, plan or policy changed)──> Expired
//!    └──finding archived before it ran──> Superseded
//! ```
//!
//! [`Request::is_live`] is the one liveness rule: every "is a request already open for this?"
//! check asks it.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::Actor;
use crate::plan::{Plan, RiskClass};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestState {
    Pending,
    Approved,
    Rejected,
    Expired,
    Superseded,
    Executing,
    Succeeded,
    PartiallyFailed,
    Failed,
}

impl RequestState {
    pub const ALL: [RequestState; 9] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Rejected,
        RequestState::Expired,
        RequestState::Superseded,
        RequestState::Executing,
        RequestState::Succeeded,
        RequestState::PartiallyFailed,
        RequestState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "Pending",
            RequestState::Approved => "Approved",
            RequestState::Rejected => "Rejected",
            RequestState::Expired => "Expired",
            RequestState::Superseded => "Superseded",
            RequestState::Executing => "Executing",
            RequestState::Succeeded => "Succeeded",
            RequestState::PartiallyFailed => "PartiallyFailed",
            RequestState::Failed => "Failed",
        }
    }

    /// No further transition will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestState::Rejected
                | RequestState::Expired
                | RequestState::Superseded
                | RequestState::Succeeded
                | RequestState::PartiallyFailed
                | RequestState::Failed
        )
    }

    /// The engine owes this request work (resumed on start-up).
    pub fn needs_engine(self) -> bool {
        matches!(self, RequestState::Approved | RequestState::Executing)
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Containment, or the revert of an executed containment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestKind {
    Contain,
    Revert { of: Uuid },
}

/// A vote's choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

/// A recorded vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub voter: Actor,
    pub decision: Decision,
    pub plan_hash: String,
    pub at: DateTime<Utc>,
}

/// Who is voting, with the role ids the interaction carried for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub actor: Actor,
    pub roles: Vec<String>,
}

/// A vote as it arrives, before the policy has looked at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteInput {
    pub voter: Voter,
    pub decision: Decision,
    /// The plan hash the voter saw (from the button's `custom_id`).
    pub plan_hash: String,
}

/// A request for containment (or revert) of one finding's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: Uuid,
    pub kind: RequestKind,
    pub finding_id: String,
    pub plan: Plan,
    /// Who proposed it: `System` for hanko's own proposal from a finding.
    pub proposer: Actor,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub state: RequestState,
    pub votes: Vec<Vote>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Run destructive steps even when an evidence step before them failed.
    #[serde(default)]
    pub override_evidence: bool,
    /// Why and when an approved request was closed without running (the engine's pre-flight
    /// refusal, [`crate::preflight::PreflightRefusal`]); its card says it. `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure: Option<Closure>,
}

/// Why a request that was approved ended without running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub at: DateTime<Utc>,
    /// A short machine name (`approval_too_old`, `finding_archived`, ...).
    pub code: String,
    /// One sentence for people.
    pub reason: String,
}

impl Request {
    pub fn new(
        kind: RequestKind,
        plan: Plan,
        proposer: Actor,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        Request {
            id: Uuid::new_v4(),
            kind,
            finding_id: plan.finding_id.clone(),
            plan,
            proposer,
            created_at: now,
            expires_at: now + ttl,
            state: RequestState::Pending,
            votes: Vec::new(),
            decided_at: None,
            override_evidence: false,
            closure: None,
        }
    }

    /// Is this request still open for its target at `now`: Pending and not past
    /// `expires_at`, or Approved or Executing? The one liveness rule behind every "is a request
    /// already open for this?" check; a Pending request past `expires_at` is not live even
    /// before the expiry sweep marks it Expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        match self.state {
            RequestState::Pending => self.expires_at > now,
            RequestState::Approved | RequestState::Executing => true,
            _ => false,
        }
    }

    /// Distinct approvers for the current plan hash.
    pub fn approvers(&self) -> Vec<&Actor> {
        let mut seen = BTreeSet::new();
        self.votes
            .iter()
            .filter(|v| v.decision == Decision::Approve && v.plan_hash == self.plan.plan_hash)
            .filter(|v| seen.insert(v.voter.key()))
            .map(|v| &v.voter)
            .collect()
    }

    /// The reason given by whoever rejected it.
    pub fn reject_reason(&self) -> Option<&str> {
        self.votes.iter().find_map(|v| match &v.decision {
            Decision::Reject { reason } => Some(reason.as_str()),
            Decision::Approve => None,
        })
    }
}

/// Distinct approvers needed, by the plan's highest risk class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    pub evidence: u32,
    pub contain: u32,
    pub disrupt: u32,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            evidence: 1,
            contain: 1,
            disrupt: 2,
        }
    }
}

impl Approvals {
    pub fn for_risk(&self, risk: RiskClass) -> u32 {
        match risk {
            RiskClass::Evidence => self.evidence,
            RiskClass::Contain => self.contain,
            RiskClass::Disrupt => self.disrupt,
        }
    }
}

/// Who may vote and how many must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Discord role ids whose members may approve or reject.
    pub approver_roles: BTreeSet<String>,
    /// Discord user ids who may, whatever their roles.
    pub approver_users: BTreeSet<String>,
    pub approvals: Approvals,
    pub allow_self_approval: bool,
    /// How long a request stays open.
    pub ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            approver_roles: BTreeSet::new(),
            approver_users: BTreeSet::new(),
            approvals: Approvals::default(),
            allow_self_approval: false,
            ttl: Duration::hours(4),
        }
    }
}

impl Policy {
    /// Distinct approvals this plan needs (at least 1).
    pub fn needed(&self, plan: &Plan) -> u32 {
        plan.max_risk()
            .map(|r| self.approvals.for_risk(r))
            .unwrap_or(1)
            .max(1)
    }

    /// Is this voter a responder? Fails closed: Discord users need a configured role or user
    /// id; CLI operators (who hold the store on the host) are responders; `system` never is.
    pub fn authorizes(&self, voter: &Voter) -> Result<(), Refusal> {
        match &voter.actor {
            Actor::Discord { id, .. } => {
                if self.approver_users.contains(id)
                    || voter.roles.iter().any(|r| self.approver_roles.contains(r))
                {
                    Ok(())
                } else {
                    Err(Refusal::NotAuthorized)
                }
            }
            Actor::Cli { .. } => Ok(()),
            Actor::System => Err(Refusal::NotAuthorized),
        }
    }
}

/// What a vote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// Recorded; the quorum is not met yet.
    Recorded { approvals: u32, needed: u32 },
    /// The quorum is met: the request is Approved.
    Approved { approvals: u32 },
    /// The request is Rejected.
    Rejected,
}

/// Why a vote changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Refusal {
    #[error(
        "you are not a responder: approving needs one of the configured approver roles or user ids"
    )]
    NotAuthorized,
    #[error("you proposed this request, and the policy forbids approving your own request")]
    SelfApproval,
    #[error("you have already voted on this request")]
    AlreadyVoted,
    #[error("this request is no longer pending: it is {0}")]
    NotPending(RequestState),
    #[error("this request expired before it was approved")]
    Expired,
    #[error("the plan changed since this card was posted; vote on the current card")]
    StalePlan,
    #[error("a rejection needs a reason")]
    ReasonRequired,
    #[error("this plan only notifies; there is nothing to approve")]
    NotifyOnly,
}

impl Refusal {
    /// A short machine name for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotAuthorized => "not_authorized",
            Refusal::SelfApproval => "self_approval",
            Refusal::AlreadyVoted => "already_voted",
            Refusal::NotPending(_) => "not_pending",
            Refusal::Expired => "expired",
            Refusal::StalePlan => "stale_plan",
            Refusal::ReasonRequired => "reason_required",
            Refusal::NotifyOnly => "notify_only",
        }
    }
}

/// The request after a vote, and what the vote did.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub request: Request,
    pub outcome: Outcome,
}

/// Applies `vote` to `request` under `policy` at `now`.
///
/// Checks, in order: the request is Pending; it has not expired; the plan has steps; the
/// voter is a responder; the vote is for the current plan hash; the voter has not voted; a
/// rejection has a reason; the proposer is not approving their own request (unless allowed).
pub fn decide(
    policy: &Policy,
    request: &Request,
    vote: &VoteInput,
    now: DateTime<Utc>,
) -> Result<Decided, Refusal> {
    if request.state != RequestState::Pending {
        return Err(Refusal::NotPending(request.state));
    }
    if now >= request.expires_at {
        return Err(Refusal::Expired);
    }
    if request.plan.is_notify_only() {
        return Err(Refusal::NotifyOnly);
    }
    policy.authorizes(&vote.voter)?;
    if vote.plan_hash != request.plan.plan_hash {
        return Err(Refusal::StalePlan);
    }
    let key = vote.voter.actor.key();
    if request
        .votes
        .iter()
        .any(|v| v.voter.key() == key && v.plan_hash == request.plan.plan_hash)
    {
        return Err(Refusal::AlreadyVoted);
    }
    if let Decision::Reject { reason } = &vote.decision {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired);
        }
    }
    if vote.decision == Decision::Approve
        && !policy.allow_self_approval
        && request.proposer.key() == key
    {
        return Err(Refusal::SelfApproval);
    }

    let mut next = request.clone();
    next.votes.push(Vote {
        voter: vote.voter.actor.clone(),
        decision: vote.decision.clone(),
        plan_hash: vote.plan_hash.clone(),
        at: now,
    });
    let outcome = match vote.decision {
        Decision::Reject { .. } => {
            next.state = RequestState::Rejected;
            next.decided_at = Some(now);
            Outcome::Rejected
        }
        Decision::Approve => {
            let approvals = next.approvers().len() as u32;
            let needed = policy.needed(&next.plan);
            if approvals >= needed {
                next.state = RequestState::Approved;
                next.decided_at = Some(now);
                Outcome::Approved { approvals }
            } else {
                Outcome::Recorded { approvals, needed }
            }
        }
    };
    Ok(Decided {
        request: next,
        outcome,
    })
}

/// Expires a pending request whose time is up; `None` when it is not due.
pub fn expire(request: &Request, now: DateTime<Utc>) -> Option<Request> {
    if request.state == RequestState::Pending && now >= request.expires_at {
        let mut next = request.clone();
        next.state = RequestState::Expired;
        next.decided_at = Some(now);
        Some(next)
    } else {
        None
    }
}

/// Is `from -> to` a transition the life of a request allows (outside of voting)?
pub fn can_transition(from: RequestState, to: RequestState) -> bool {
    use RequestState::*;
    matches!(
        (from, to),
        (Pending, Approved)
            | (Pending, Rejected)
            | (Pending, Expired)
            | (Pending, Superseded)
            | (Approved, Executing)
            // The engine's pre-flight refused to start it, or its finding was archived first.
            | (Approved, Expired)
            | (Approved, Superseded)
            | (Executing, Succeeded)
            | (Executing, PartiallyFailed)
            | (Executing, Failed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Step, Target};
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    fn plan_with(risks: &[RiskClass]) -> Plan {
        let steps = risks
            .iter()
            .map(|r| {
                let mut s = Step::new(
                    Action::DeactivateAccessKey,
                    Target::User {
                        user_name: "u".into(),
                    },
                    serde_json::json!({}),
                );
                s.risk = *r;
                s
            })
            .collect();
        Plan::new("f".into(), "1".into(), "r".into(), false, steps, vec![])
    }

    fn discord(id: &str) -> Actor {
        Actor::Discord {
            id: id.into(),
            name: format!("user{id}"),
        }
    }

    fn voter(id: &str, roles: &[&str]) -> Voter {
        Voter {
            actor: discord(id),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn approve(v: Voter, hash: &str) -> VoteInput {
        VoteInput {
            voter: v,
            decision: Decision::Approve,
            plan_hash: hash.into(),
        }
    }

    fn policy() -> Policy {
        Policy {
            approver_roles: ["responders".to_string()].into(),
            approver_users: ["42".to_string()].into(),
            ..Policy::default()
        }
    }

    fn request(risks: &[RiskClass], proposer: Actor) -> Request {
        Request::new(
            RequestKind::Contain,
            plan_with(risks),
            proposer,
            t0(),
            Duration::hours(4),
        )
    }

    #[test]
    fn decide_table() {
        let contain = request(&[RiskClass::Contain], Actor::System);
        let hash = contain.plan.plan_hash.clone();
        let disrupt = request(&[RiskClass::Evidence, RiskClass::Disrupt], Actor::System);
        let dhash = disrupt.plan.plan_hash.clone();
        let mut half = disrupt.clone();
        half.votes.push(Vote {
            voter: discord("1"),
            decision: Decision::Approve,
            plan_hash: dhash.clone(),
            at: t0(),
        });
        let mut old_vote = disrupt.clone();
        old_vote.votes.push(Vote {
            voter: discord("1"),
            decision: Decision::Approve,
            plan_hash: "stale".into(),
            at: t0(),
        });
        let proposed_by_2 = request(&[RiskClass::Contain], discord("2"));
        let mut approved = contain.clone();
        approved.state = RequestState::Approved;
        let cli = Voter {
            actor: Actor::Cli { name: "ops".into() },
            roles: vec![],
        };
        let reject = |v: Voter, reason: &str| VoteInput {
            voter: v,
            decision: Decision::Reject {
                reason: reason.into(),
            },
            plan_hash: hash.clone(),
        };
        let later = t0() + Duration::hours(5);
        let now = t0() + Duration::minutes(1);

        type Want = Result<Outcome, Refusal>;
        let table: Vec<(&str, &Request, VoteInput, DateTime<Utc>, Want)> = vec![
            (
                "role approves",
                &contain,
                approve(voter("1", &["responders"]), &hash),
                now,
                Ok(Outcome::Approved { approvals: 1 }),
            ),
            (
                "user id approves",
                &contain,
                approve(voter("42", &[]), &hash),
                now,
                Ok(Outcome::Approved { approvals: 1 }),
            ),
            (
                "cli operator approves",
                &contain,
                approve(cli.clone(), &hash),
                now,
                Ok(Outcome::Approved { approvals: 1 }),
            ),
            (
                "no role",
                &contain,
                approve(voter("7", &["visitors"]), &hash),
                now,
                Err(Refusal::NotAuthorized),
            ),
            (
                "system never votes",
                &contain,
                approve(
                    Voter {
                        actor: Actor::System,
                        roles: vec![],
                    },
                    &hash,
                ),
                now,
                Err(Refusal::NotAuthorized),
            ),
            (
                "stale plan",
                &contain,
                approve(voter("1", &["responders"]), "deadbeef"),
                now,
                Err(Refusal::StalePlan),
            ),
            (
                "expired",
                &contain,
                approve(voter("1", &["responders"]), &hash),
                later,
                Err(Refusal::Expired),
            ),
            (
                "not pending",
                &approved,
                approve(voter("1", &["responders"]), &hash),
                now,
                Err(Refusal::NotPending(RequestState::Approved)),
            ),
            (
                "first of two",
                &disrupt,
                approve(voter("1", &["responders"]), &dhash),
                now,
                Ok(Outcome::Recorded {
                    approvals: 1,
                    needed: 2,
                }),
            ),
            (
                "second of two",
                &half,
                approve(voter("2", &["responders"]), &dhash),
                now,
                Ok(Outcome::Approved { approvals: 2 }),
            ),
            (
                "same person twice",
                &half,
                approve(voter("1", &["responders"]), &dhash),
                now,
                Err(Refusal::AlreadyVoted),
            ),
            (
                "a vote for an old plan does not count",
                &old_vote,
                approve(voter("2", &["responders"]), &dhash),
                now,
                Ok(Outcome::Recorded {
                    approvals: 1,
                    needed: 2,
                }),
            ),
            (
                "self approval",
                &proposed_by_2,
                approve(voter("2", &["responders"]), &proposed_by_2.plan.plan_hash),
                now,
                Err(Refusal::SelfApproval),
            ),
            (
                "reject",
                &contain,
                reject(voter("1", &["responders"]), "false positive: pentest"),
                now,
                Ok(Outcome::Rejected),
            ),
            (
                "reject needs reason",
                &contain,
                reject(voter("1", &["responders"]), "  "),
                now,
                Err(Refusal::ReasonRequired),
            ),
            (
                "reject needs a responder",
                &contain,
                reject(voter("9", &[]), "no"),
                now,
                Err(Refusal::NotAuthorized),
            ),
        ];
        for (name, req, vote, at, want) in table {
            let got = decide(&policy(), req, &vote, at).map(|d| d.outcome);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn transitions_update_the_request() {
        let req = request(&[RiskClass::Contain], Actor::System);
        let d = decide(
            &policy(),
            &req,
            &approve(voter("1", &["responders"]), &req.plan.plan_hash),
            t0(),
        )
        .unwrap();
        assert_eq!(d.request.state, RequestState::Approved);
        assert_eq!(d.request.decided_at, Some(t0()));
        assert_eq!(d.request.votes.len(), 1);
        assert_eq!(d.request.approvers(), vec![&discord("1")]);
        // The input request is untouched (pure function).
        assert_eq!(req.state, RequestState::Pending);

        let r = decide(
            &policy(),
            &req,
            &VoteInput {
                voter: voter("1", &["responders"]),
                decision: Decision::Reject {
                    reason: "pentest".into(),
                },
                plan_hash: req.plan.plan_hash.clone(),
            },
            t0(),
        )
        .unwrap();
        assert_eq!(r.request.state, RequestState::Rejected);
        assert_eq!(r.request.reject_reason(), Some("pentest"));
    }

    #[test]
    fn self_approval_allowed_by_policy_and_notify_only() {
        let req = request(&[RiskClass::Contain], discord("2"));
        let p = Policy {
            allow_self_approval: true,
            ..policy()
        };
        let d = decide(
            &p,
            &req,
            &approve(voter("2", &["responders"]), &req.plan.plan_hash),
            t0(),
        );
        assert!(d.is_ok());

        let notify = request(&[], Actor::System);
        assert_eq!(
            decide(
                &policy(),
                &notify,
                &approve(voter("1", &["responders"]), &notify.plan.plan_hash),
                t0()
            )
            .map(|d| d.outcome),
            Err(Refusal::NotifyOnly)
        );
    }

    #[test]
    fn expiry_and_transitions() {
        let req = request(&[RiskClass::Contain], Actor::System);
        assert!(expire(&req, t0() + Duration::hours(3)).is_none());
        let e = expire(&req, t0() + Duration::hours(4)).unwrap();
        assert_eq!(e.state, RequestState::Expired);
        assert!(expire(&e, t0() + Duration::hours(9)).is_none());

        use RequestState::*;
        assert!(can_transition(Approved, Executing));
        assert!(can_transition(Executing, PartiallyFailed));
        assert!(!can_transition(Rejected, Approved));
        assert!(!can_transition(Succeeded, Executing));
        assert!(!can_transition(Pending, Executing));
        assert!(can_transition(Approved, Expired));
        assert!(can_transition(Approved, Superseded));
        assert!(!can_transition(Executing, Expired));
        assert!(!can_transition(Executing, Superseded));
        for s in RequestState::ALL {
            assert!(!can_transition(s, Pending), "{s} -> Pending");
        }
    }

    #[test]
    fn liveness_is_pending_before_expiry_or_approved_or_executing() {
        let req = request(&[RiskClass::Contain], Actor::System);
        let before = req.expires_at - Duration::seconds(1);
        assert!(req.is_live(before));
        assert!(!req.is_live(req.expires_at), "expires_at itself is past");
        assert!(!req.is_live(req.expires_at + Duration::hours(1)));
        for state in RequestState::ALL {
            let mut r = req.clone();
            r.state = state;
            let want = matches!(
                state,
                RequestState::Pending | RequestState::Approved | RequestState::Executing
            );
            assert_eq!(r.is_live(before), want, "{state} before expiry");
            // Only a Pending request dies of its own expiry.
            let want_late = matches!(state, RequestState::Approved | RequestState::Executing);
            assert_eq!(
                r.is_live(req.expires_at + Duration::hours(1)),
                want_late,
                "{state} after expiry"
            );
        }
    }
}
