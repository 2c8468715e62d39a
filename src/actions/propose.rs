//! Propose containment: from a finding (the pipeline, [`crate::pipeline::accept`], the system's
//! action for every ingest source) and by hand for a target ([`contain`], a responder's
//! `/contain`).
//!
//! A hand-made proposal fits the model without new core types: a synthetic [`Finding`]
//! ([`manual_finding`]) is planned by the one planner and proposed like any other.
//!
//! | target | lookup (read-only, [`crate::aws::lookup`]) | finding type | resource |
//! |---|---|---|---|
//! | `AKIA…`/`ASIA…` | `iam:GetAccessKeyLastUsed` (its `UserName`) | [`TYPE_ACCESS_KEY`] | `AccessKey`, user type `IAMUser` |
//! | `i-…` | `ec2:DescribeInstances` (interfaces, profile, tags) | [`TYPE_INSTANCE`] | `Instance` |
//! | bucket name | `s3:HeadBucket` (exists, reachable, its region) | [`TYPE_BUCKET`] | `S3Bucket` |
//!
//! The finding's id is `manual-<uuid>`, its source `SecurityHub { product_arn: "hanko:manual" }`
//! ([`MANUAL_PRODUCT_ARN`]: no GuardDuty console link is built for it), its severity
//! [`MANUAL_SEVERITY`] (High: a responder asked), its title and description name the proposer.
//! Playbook rules can match the `Manual:*` types like any other.
//!
//! Refused ([`ContainRefusal`], worded by the transport): not a responder; a region outside
//! `aws.regions` (or none configured); an account that is not 12 digits or outside
//! `aws.accounts`; an account hanko cannot prove it reaches ([`planner::check`]); a target AWS
//! does not know, or a lookup hanko may not make; a plan that is notify-only; a live request
//! that already covers one of its steps. Otherwise the finding is stored with the proposer as
//! actor, the request is proposed with the proposer as proposer (who then cannot approve it,
//! unless `policy.allow_self_approval`), and [`Notice::FindingNew`] asks for its card.
//!
//! May use the app, the AWS lookups, the store, the planner and the pipeline; never serenity.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::App;
use crate::approval::{self, RequestKind, RequestState, Voter};
use crate::audit::Actor;
use crate::aws::lookup::{self, Looked};
use crate::aws::{AwsError, ErrorClass};
use crate::finding::{ActorInfo, Finding, FindingSource, Resource, SeverityLabel};
use crate::notices::Notice;
use crate::plan::Plan;
use crate::planner;
use crate::store::StoreError;

/// Finding types of hand-made proposals.
pub const TYPE_ACCESS_KEY: &str = "Manual:IAMUser/Containment";
pub const TYPE_INSTANCE: &str = "Manual:EC2/Containment";
pub const TYPE_BUCKET: &str = "Manual:S3/Containment";
/// The id prefix of hand-made findings.
pub const MANUAL_ID_PREFIX: &str = "manual-";
/// The `product_arn` of hand-made findings' source.
pub const MANUAL_PRODUCT_ARN: &str = "hanko:manual";
/// A responder asked for containment: High.
pub const MANUAL_SEVERITY: f64 = 7.0;
/// The lookups (and finding hanko's own account) must answer within this.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// What a person asked to contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainTarget {
    AccessKey(String),
    Instance(String),
    Bucket(String),
}

impl std::fmt::Display for ContainTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainTarget::AccessKey(k) => write!(f, "access key {k}"),
            ContainTarget::Instance(i) => write!(f, "instance {i}"),
            ContainTarget::Bucket(b) => write!(f, "bucket {b}"),
        }
    }
}

/// Why a failure on hanko's side (or AWS's silence) kept a proposal from being made.
#[derive(Debug, thiserror::Error)]
pub enum ContainFailure {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no answer from AWS within {} s", .0.as_secs())]
    TimedOut(Duration),
}

/// Why nothing was proposed.
#[derive(Debug)]
pub enum ContainRefusal {
    NotResponder(approval::Refusal),
    /// The region asked is not in `aws.regions`.
    RegionNotAllowed {
        region: String,
        allowed: Vec<String>,
    },
    /// `aws.regions` is empty.
    NoRegion,
    /// The account asked is not 12 digits.
    AccountForm(String),
    /// The account is not in `aws.accounts`.
    AccountNotAllowed(String),
    /// hanko cannot prove it reaches the account.
    Outside(planner::Refusal),
    /// AWS names no IAM user for the access key.
    OwnerUnknown(String),
    /// The bucket is in another region.
    BucketElsewhere {
        bucket: String,
        actual: String,
        region: String,
    },
    /// AWS does not know what was looked up (`what`: the target, or hanko's own account).
    NotFound {
        what: String,
        operation: String,
        code: Option<String>,
    },
    /// hanko's role may not make the lookup.
    Forbidden {
        what: String,
        operation: String,
    },
    /// The playbook makes the plan notify-only: the planner's notes.
    NothingToPropose {
        notes: Vec<String>,
    },
    /// A live request already covers one of the plan's steps.
    Covered {
        request: Uuid,
        state: RequestState,
        finding_id: String,
    },
    /// A failure on hanko's side while `doing`; `finding`: the stored finding, if any.
    Failed {
        doing: String,
        error: ContainFailure,
        finding: Option<String>,
    },
}

/// A proposal made.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub request_id: Uuid,
    pub finding: Finding,
    pub plan: Plan,
    pub account: String,
    pub region: String,
}

fn failed(doing: impl Into<String>, error: impl Into<ContainFailure>) -> ContainRefusal {
    ContainRefusal::Failed {
        doing: doing.into(),
        error: error.into(),
        finding: None,
    }
}

/// A lookup that failed: a refusal when AWS said "no such thing" or "not allowed", a failure
/// otherwise.
fn lookup_failed(e: AwsError, what: &str) -> ContainRefusal {
    match e.class {
        ErrorClass::NotFound => ContainRefusal::NotFound {
            what: what.to_string(),
            operation: e.operation.to_string(),
            code: e.code.clone(),
        },
        ErrorClass::Forbidden => ContainRefusal::Forbidden {
            what: what.to_string(),
            operation: e.operation.to_string(),
        },
        _ => failed(format!("calling {}", e.operation), e),
    }
}

/// `voter` proposes containment of `target` in `account` (default: hanko's own) and `region`
/// (default: the first of `aws.regions`). See the module docs.
pub async fn contain(
    app: &App,
    voter: &Voter,
    target: &ContainTarget,
    account: Option<&str>,
    region: Option<&str>,
) -> Result<Proposed, ContainRefusal> {
    app.policy
        .authorizes(voter)
        .map_err(ContainRefusal::NotResponder)?;
    let aws = &app.settings.aws;
    let region = match region {
        Some(r) if aws.regions.iter().any(|c| c == r) => r.to_string(),
        Some(r) => {
            return Err(ContainRefusal::RegionNotAllowed {
                region: r.to_string(),
                allowed: aws.regions.clone(),
            })
        }
        None => aws
            .regions
            .first()
            .cloned()
            .ok_or(ContainRefusal::NoRegion)?,
    };
    let account = match account {
        Some(a) if crate::ids::is_account_id(a) => a.to_string(),
        Some(a) => return Err(ContainRefusal::AccountForm(a.to_string())),
        None => {
            match tokio::time::timeout(LOOKUP_TIMEOUT, app.clients.own_account(&region)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => return Err(lookup_failed(e, "hanko's own account")),
                Err(_) => {
                    return Err(failed(
                        "finding hanko's own account",
                        ContainFailure::TimedOut(LOOKUP_TIMEOUT),
                    ))
                }
            }
        }
    };
    if !aws.may_act_in(&account) {
        return Err(ContainRefusal::AccountNotAllowed(account));
    }

    // The one planner's rule, before any AWS call: an account hanko cannot prove it reaches
    // (its own, or through the role template) is refused with what to set.
    let scope = app.scope_proven().await;
    planner::check(&scope, &account, &region).map_err(ContainRefusal::Outside)?;

    let now = app.clock.now();
    let lookup = async {
        let clients = app.clients.clients(&account, &region).await?;
        match target {
            ContainTarget::AccessKey(key) => lookup::access_key(&clients, key).await,
            ContainTarget::Instance(id) => lookup::instance(&clients, id).await,
            ContainTarget::Bucket(b) => lookup::bucket(&clients, b, &region).await,
        }
    };
    let resource = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(Looked::Found(r))) => *r,
        Ok(Ok(Looked::OwnerUnknown)) => {
            let key = match target {
                ContainTarget::AccessKey(k) => k.clone(),
                other => other.to_string(),
            };
            return Err(ContainRefusal::OwnerUnknown(key));
        }
        Ok(Ok(Looked::BucketElsewhere { actual })) => {
            let bucket = match target {
                ContainTarget::Bucket(b) => b.clone(),
                other => other.to_string(),
            };
            return Err(ContainRefusal::BucketElsewhere {
                bucket,
                actual,
                region,
            });
        }
        Ok(Err(e)) => return Err(lookup_failed(e, &target.to_string())),
        Err(_) => {
            return Err(failed(
                format!("looking up {target}"),
                ContainFailure::TimedOut(LOOKUP_TIMEOUT),
            ))
        }
    };
    let actor = voter.actor.clone();
    let finding = manual_finding(target, resource, &account, &region, &actor, now);
    let plan = planner::plan(&finding, &app.playbooks, &scope);
    if plan.is_notify_only() {
        return Err(ContainRefusal::NothingToPropose { notes: plan.notes });
    }
    match covering_request(app, &plan) {
        Err(e) => return Err(failed("reading the open requests", e)),
        Ok(Some((request, state, finding_id))) => {
            return Err(ContainRefusal::Covered {
                request,
                state,
                finding_id,
            })
        }
        Ok(None) => {}
    }

    if let Err(e) = app.store.upsert_finding(&finding, &actor, now) {
        return Err(failed("storing the manual finding", e));
    }
    let request_id =
        match crate::pipeline::propose(&app.store, &app.policy, plan.clone(), actor, now) {
            Ok(id) => id,
            Err(e) => {
                return Err(ContainRefusal::Failed {
                    doing: "proposing the request".into(),
                    error: e.into(),
                    finding: Some(finding.id.clone()),
                })
            }
        };
    app.notices.send(Notice::FindingNew {
        finding_id: finding.id.clone(),
        request: Some(request_id),
    });
    Ok(Proposed {
        request_id,
        finding,
        plan,
        account,
        region,
    })
}

/// A live containment request ([`crate::approval::Request::is_live`]: pending and not past its
/// expiry, approved or executing) in the same account with a step of the same action on the
/// same target as one of `plan`'s.
fn covering_request(
    app: &App,
    plan: &Plan,
) -> Result<Option<(Uuid, RequestState, String)>, StoreError> {
    let now = app.clock.now();
    // Walked one at a time (tens of thousands may wait after a burst), keeping the oldest
    // that covers the plan.
    let mut found: Option<(chrono::DateTime<chrono::Utc>, Uuid, RequestState, String)> = None;
    app.store.each_request_in_states(
        &[
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Executing,
        ],
        |r| {
            let covers = r.is_live(now)
                && r.kind == RequestKind::Contain
                && r.plan.account_id == plan.account_id
                && r.plan.steps.iter().any(|s| {
                    plan.steps
                        .iter()
                        .any(|p| p.action == s.action && p.target == s.target)
                });
            if covers
                && found
                    .as_ref()
                    .map_or(true, |f| (r.created_at, r.id) < (f.0, f.1))
            {
                found = Some((r.created_at, r.id, r.state, r.finding_id));
            }
            Ok(())
        },
    )?;
    Ok(found.map(|(_, id, state, finding_id)| (id, state, finding_id)))
}

/// The synthetic finding of a hand-made proposal. See the module docs.
pub fn manual_finding(
    target: &ContainTarget,
    resource: Resource,
    account: &str,
    region: &str,
    proposer: &Actor,
    now: DateTime<Utc>,
) -> Finding {
    let finding_type = match target {
        ContainTarget::AccessKey(_) => TYPE_ACCESS_KEY,
        ContainTarget::Instance(_) => TYPE_INSTANCE,
        ContainTarget::Bucket(_) => TYPE_BUCKET,
    };
    Finding {
        id: format!("{MANUAL_ID_PREFIX}{}", Uuid::new_v4().simple()),
        arn: None,
        account_id: account.to_string(),
        region: region.to_string(),
        finding_type: finding_type.to_string(),
        severity: MANUAL_SEVERITY,
        severity_label: SeverityLabel::from_score(MANUAL_SEVERITY),
        title: format!(
            "Manual containment of {target}, proposed by {}",
            proposer.display_name()
        ),
        description: format!(
            "{proposer} asked for containment of {target} with /contain at {}. No GuardDuty finding is behind it: check the proposer's reasons before approving.",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        created_at: Some(now),
        updated_at: Some(now),
        first_seen: Some(now),
        last_seen: Some(now),
        count: 1,
        archived: false,
        sample: false,
        source: FindingSource::SecurityHub {
            product_arn: MANUAL_PRODUCT_ARN.to_string(),
        },
        resource,
        actor: ActorInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::AccessKeyDetails;
    use crate::finding::ResourceKind;

    #[test]
    fn manual_findings_plan_like_real_ones() {
        let now = chrono::Utc::now();
        let actor = Actor::Discord {
            id: "42".into(),
            name: "alice".into(),
        };
        let target = ContainTarget::AccessKey("AKIAIOSFODNN7EXAMPLE".into());
        let resource = Resource {
            kind: ResourceKind::AccessKey,
            access_key: Some(AccessKeyDetails {
                access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
                principal_id: None,
                user_name: Some("bob".into()),
                user_type: Some("IAMUser".into()),
            }),
            instance: None,
            s3_buckets: Vec::new(),
        };
        let f = manual_finding(&target, resource, "123456789012", "us-east-1", &actor, now);
        assert!(f.id.starts_with(MANUAL_ID_PREFIX));
        assert_eq!(f.finding_type, TYPE_ACCESS_KEY);
        assert_eq!(f.severity_label, SeverityLabel::High);
        assert!(!f.is_guardduty());
        assert!(f.title.contains("alice"));
        let p = crate::plan::plan(&f, &crate::playbooks::Playbooks::defaults());
        let actions: Vec<_> = p.steps.iter().map(|s| s.action).collect();
        assert_eq!(
            actions,
            [
                crate::plan::Action::DeactivateAccessKey,
                crate::plan::Action::RevokeUserSessions
            ]
        );
        assert_eq!(p.account_id, "123456789012");
    }
}
