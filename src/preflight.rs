//! Pre-flight: what the engine checks again right before an Approved request starts executing.
//!
//! An approval can wait a long time before it runs: while execution is paused, or until the
//! next start of hanko. The world may change meanwhile, so right before Approved → Executing,
//! inside the same store transaction that makes that move
//! ([`crate::store::Store::start_execution`]), the engine asks [`preflight`]:
//!
//! | check | refusal | the request becomes |
//! |---|---|---|
//! | the finding is not archived | [`PreflightRefusal::FindingArchived`] | Superseded |
//! | the stored plan's hash is the approved hash | [`PreflightRefusal::PlanChanged`] | Expired |
//! | the approvers still meet the policy | [`PreflightRefusal::PolicyNotMet`] | Expired |
//! | the approval is younger than `policy.request_ttl` | [`PreflightRefusal::ApprovalTooOld`] | Expired |
//!
//! A refused request is closed with its reason ([`crate::approval::Closure`]), audited
//! (`RequestSuperseded` or `RequestExpired`, with the refusal's code) and its card says why.
//! Nothing is ever executed on a refusal: the checks fail closed.
//!
//! **Adding a check**: add a variant to [`PreflightRefusal`] (with its [`code`], [`state`] and
//! message) and one early return in [`preflight`], fed by a new field of [`PreflightInput`]
//! when it needs more than the request, its finding, the policy and `now` (a value the engine
//! works out before the transaction, such as "hanko may act in this account and region").
//!
//! Pure core: no clock, no store, no I/O; it may use `approval`, `finding` and `plan`.
//!
//! [`code`]: PreflightRefusal::code
//! [`state`]: PreflightRefusal::state

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::{Decision, Policy, Request, RequestState};
use crate::audit::Actor;
use crate::finding::Finding;

/// Why the engine refuses to start an approved request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PreflightRefusal {
    #[error("the finding was archived before the approved plan ran")]
    FindingArchived,
    #[error("the stored plan (hash {}) is not the plan that was approved (hash {}); approve the current card again", short(stored), short(approved))]
    PlanChanged { approved: String, stored: String },
    #[error("the approvals no longer meet the policy: {approvals} of the {needed} needed; propose it again")]
    PolicyNotMet { approvals: u32, needed: u32 },
    #[error("{}", approval_too_old(*decided_at, *ttl_minutes))]
    ApprovalTooOld {
        decided_at: Option<DateTime<Utc>>,
        ttl_minutes: i64,
    },
}

impl PreflightRefusal {
    /// A short machine name for audit records.
    pub fn code(&self) -> &'static str {
        match self {
            PreflightRefusal::FindingArchived => "finding_archived",
            PreflightRefusal::PlanChanged { .. } => "plan_changed",
            PreflightRefusal::PolicyNotMet { .. } => "policy_not_met",
            PreflightRefusal::ApprovalTooOld { .. } => "approval_too_old",
        }
    }

    /// What the refused request becomes: Superseded when its subject went away, Expired when
    /// its approval no longer holds.
    pub fn state(&self) -> RequestState {
        match self {
            PreflightRefusal::FindingArchived => RequestState::Superseded,
            PreflightRefusal::PlanChanged { .. }
            | PreflightRefusal::PolicyNotMet { .. }
            | PreflightRefusal::ApprovalTooOld { .. } => RequestState::Expired,
        }
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(16).collect()
}

fn approval_too_old(decided_at: Option<DateTime<Utc>>, ttl_minutes: i64) -> String {
    let ttl = human_minutes(ttl_minutes);
    match decided_at {
        Some(at) => format!(
            "the approval of {} is older than policy.request_ttl ({ttl}); propose and approve it again",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        None => format!(
            "the approval has no recorded time, so it cannot be shown younger than policy.request_ttl ({ttl}); propose and approve it again"
        ),
    }
}

fn human_minutes(minutes: i64) -> String {
    if minutes > 0 && minutes % 60 == 0 {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}

/// What [`preflight`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct PreflightInput<'a> {
    /// The request as the store holds it inside the transaction.
    pub request: &'a Request,
    /// Its finding as stored, when it is one (a posture request names a control group, not a
    /// finding, and has none).
    pub finding: Option<&'a Finding>,
    /// The policy hanko runs with now (which may differ from the one the votes met).
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
}

/// Runs every pre-flight check in order; the first that fails is the refusal.
pub fn preflight(input: &PreflightInput<'_>) -> Result<(), PreflightRefusal> {
    let PreflightInput {
        request,
        finding,
        policy,
        now,
    } = *input;

    if finding.is_some_and(|f| f.archived) {
        return Err(PreflightRefusal::FindingArchived);
    }

    // The plan must still hash to what it says, and the approving votes must be for that hash.
    let stored = request.plan.compute_hash();
    if stored != request.plan.plan_hash {
        return Err(PreflightRefusal::PlanChanged {
            approved: request.plan.plan_hash.clone(),
            stored,
        });
    }
    let approved_hash = request
        .votes
        .iter()
        .rev()
        .find(|v| v.decision == Decision::Approve)
        .map(|v| v.plan_hash.clone());
    if let Some(approved) = approved_hash {
        if approved != stored {
            return Err(PreflightRefusal::PlanChanged { approved, stored });
        }
    }

    // Distinct approvers of this plan that the policy counts today: hanko itself never, the
    // proposer only where self-approval is allowed.
    let proposer = request.proposer.key();
    let approvals = request
        .approvers()
        .into_iter()
        .filter(|a| **a != Actor::System)
        .filter(|a| policy.allow_self_approval || a.key() != proposer)
        .count() as u32;
    let needed = policy.needed(&request.plan);
    if approvals < needed {
        return Err(PreflightRefusal::PolicyNotMet { approvals, needed });
    }

    let too_old = match request.decided_at {
        Some(at) => now - at >= policy.ttl,
        None => true,
    };
    if too_old {
        return Err(PreflightRefusal::ApprovalTooOld {
            decided_at: request.decided_at,
            ttl_minutes: policy.ttl.num_minutes(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{Approvals, RequestKind, Vote};
    use crate::finding::{FindingSource, Resource, ResourceKind, SeverityLabel};
    use crate::plan::{Action, Plan, RiskClass, Step, Target};
    use chrono::{Duration, TimeZone};

    fn finding(id: &str) -> Finding {
        Finding {
            id: id.into(),
            arn: None,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            finding_type: "UnauthorizedAccess:IAMUser/TorIPCaller".into(),
            severity: 5.0,
            severity_label: SeverityLabel::Medium,
            title: "t".into(),
            description: "d".into(),
            created_at: Some(t0()),
            updated_at: Some(t0()),
            first_seen: None,
            last_seen: None,
            count: 1,
            archived: false,
            sample: false,
            source: FindingSource::GuardDuty,
            resource: Resource {
                kind: ResourceKind::AccessKey,
                access_key: None,
                instance: None,
                s3_buckets: Vec::new(),
            },
            actor: Default::default(),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    fn discord(id: &str) -> Actor {
        Actor::Discord {
            id: id.into(),
            name: format!("user{id}"),
        }
    }

    fn policy() -> Policy {
        Policy {
            approver_roles: ["responders".to_string()].into(),
            approvals: Approvals {
                evidence: 1,
                contain: 2,
                disrupt: 2,
            },
            ..Policy::default()
        }
    }

    /// A containment request approved by two responders at t0 + 10 min.
    fn approved() -> Request {
        let mut step = Step::new(
            Action::DeactivateAccessKey,
            Target::AccessKey {
                user_name: "alice".into(),
                access_key_id: "AKIAEXAMPLE".into(),
            },
            serde_json::json!({ "AccessKeyId": "AKIAEXAMPLE" }),
        );
        step.risk = RiskClass::Contain;
        let plan = Plan::new(
            "f-1".into(),
            "123456789012".into(),
            "us-east-1".into(),
            false,
            vec![step],
            vec![],
        );
        let mut r = Request::new(
            RequestKind::Contain,
            plan,
            Actor::System,
            t0(),
            Duration::hours(4),
        );
        for (id, min) in [("1", 5), ("2", 10)] {
            r.votes.push(Vote {
                voter: discord(id),
                decision: Decision::Approve,
                plan_hash: r.plan.plan_hash.clone(),
                at: t0() + Duration::minutes(min),
            });
        }
        r.state = RequestState::Approved;
        r.decided_at = Some(t0() + Duration::minutes(10));
        r
    }

    fn check(
        r: &Request,
        f: Option<&Finding>,
        p: &Policy,
        now: DateTime<Utc>,
    ) -> Result<(), PreflightRefusal> {
        preflight(&PreflightInput {
            request: r,
            finding: f,
            policy: p,
            now,
        })
    }

    #[test]
    fn a_fresh_approval_of_the_stored_plan_passes() {
        let r = approved();
        assert_eq!(
            check(&r, None, &policy(), t0() + Duration::hours(1)),
            Ok(())
        );
    }

    #[test]
    fn a_plan_edited_after_approval_is_refused() {
        // The steps changed in the store, the recorded hash did not.
        let mut edited = approved();
        edited.plan.steps[0].parameters = serde_json::json!({ "AccessKeyId": "AKIAOTHER" });
        let got = check(&edited, None, &policy(), t0() + Duration::hours(1));
        let Err(refusal) = got else {
            panic!("an edited plan must be refused")
        };
        assert_eq!(refusal.code(), "plan_changed");
        assert_eq!(refusal.state(), RequestState::Expired);
        assert!(matches!(
            &refusal,
            PreflightRefusal::PlanChanged { approved, stored }
                if *approved == edited.plan.plan_hash && *stored == edited.plan.compute_hash()
        ));

        // The plan and its hash were both replaced: the votes were for another hash.
        let mut replaced = approved();
        let old_hash = replaced.plan.plan_hash.clone();
        replaced.plan.steps[0].parameters = serde_json::json!({ "AccessKeyId": "AKIAOTHER" });
        replaced.plan.plan_hash = replaced.plan.compute_hash();
        assert_eq!(
            check(&replaced, None, &policy(), t0() + Duration::hours(1)),
            Err(PreflightRefusal::PlanChanged {
                approved: old_hash,
                stored: replaced.plan.plan_hash.clone(),
            })
        );
    }

    #[test]
    fn approvals_that_no_longer_meet_the_policy_are_refused() {
        let r = approved();
        let stricter = Policy {
            approvals: Approvals {
                evidence: 1,
                contain: 3,
                disrupt: 3,
            },
            ..policy()
        };
        let got = check(&r, None, &stricter, t0() + Duration::hours(1));
        assert_eq!(
            got,
            Err(PreflightRefusal::PolicyNotMet {
                approvals: 2,
                needed: 3
            })
        );
        assert_eq!(got.unwrap_err().state(), RequestState::Expired);

        // A proposer's own approval does not count once self-approval is off.
        let mut own = approved();
        own.proposer = discord("1");
        assert_eq!(
            check(&own, None, &policy(), t0() + Duration::hours(1)),
            Err(PreflightRefusal::PolicyNotMet {
                approvals: 1,
                needed: 2
            })
        );
        let lenient = Policy {
            allow_self_approval: true,
            ..policy()
        };
        assert_eq!(
            check(&own, None, &lenient, t0() + Duration::hours(1)),
            Ok(())
        );
    }

    #[test]
    fn an_approval_older_than_the_ttl_is_refused() {
        let r = approved();
        let decided = r.decided_at.unwrap();
        // Just younger than the TTL: runs.
        assert_eq!(
            check(
                &r,
                None,
                &policy(),
                decided + Duration::hours(4) - Duration::seconds(1)
            ),
            Ok(())
        );
        // Exactly the TTL old, and older: refused.
        for late in [Duration::hours(4), Duration::hours(9)] {
            let got = check(&r, None, &policy(), decided + late);
            let Err(refusal) = got else {
                panic!("an approval {late} old must be refused")
            };
            assert_eq!(refusal.code(), "approval_too_old");
            assert_eq!(refusal.state(), RequestState::Expired);
            assert!(
                refusal.to_string().contains("policy.request_ttl (4h)"),
                "{refusal}"
            );
        }
        // No recorded approval time: fails closed.
        let mut undated = approved();
        undated.decided_at = None;
        assert!(matches!(
            check(&undated, None, &policy(), t0()),
            Err(PreflightRefusal::ApprovalTooOld {
                decided_at: None,
                ..
            })
        ));
    }

    #[test]
    fn an_archived_finding_supersedes_first() {
        let r = approved();
        let mut f = finding("f-1");
        assert_eq!(
            check(&r, Some(&f), &policy(), t0() + Duration::hours(1)),
            Ok(())
        );
        f.archived = true;
        // Archived wins over every other failure (here the approval is also too old).
        let got = check(&r, Some(&f), &policy(), t0() + Duration::hours(9));
        assert_eq!(got, Err(PreflightRefusal::FindingArchived));
        assert_eq!(got.unwrap_err().state(), RequestState::Superseded);
    }
}
