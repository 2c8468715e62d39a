//! `/contain <target> [account] [region]`: a responder proposes containment by hand, for an
//! access key id, an instance id or a bucket name. The proposal goes through the same approval
//! as any finding's, and its proposer cannot approve it (`approval::decide` enforces that,
//! unless `policy.allow_self_approval`).
//!
//! How a hand-made proposal fits the model without new core types: the handler builds a
//! synthetic [`Finding`] and lets the planner and the pipeline do the rest.
//!
//! | target | lookup (read-only) | finding type | resource |
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
//! Then: the plan of the one planner ([`planner::plan`]); nothing is stored when it is notify-only (the reply gives
//! the planner's reasons) or when a live request already covers one of its steps (the reply
//! names that request). Otherwise the finding is stored with the invoker as actor, the request
//! is proposed with the invoker as proposer ([`pipeline::propose`]), and
//! [`Notice::FindingNew`] asks the chat adapter to post the card.
//!
//! Refusals: not a responder; a target in none of the accepted forms (or one that looks like
//! an id but is malformed); an account outside `aws.accounts`; a region outside `aws.regions`;
//! an account hanko cannot prove it reaches (not its own, no role template: [`planner::check`]);
//! a target AWS does not know; a lookup hanko's role is not allowed to make.
//!
//! Uses the AWS SDK for the three read-only lookups (through [`crate::aws::ClientFactory`]), the
//! store, the planner and the pipeline; never imports serenity or sled.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::approval::{RequestKind, RequestState};
use crate::audit::Actor;
use crate::aws::error::classify;
use crate::aws::{AwsClients, ErrorClass, StepError};
use crate::discord::cards::{plan_text, truncate};
use crate::finding::{
    AccessKeyDetails, ActorInfo, Finding, FindingSource, InstanceDetails, NetworkInterface,
    Resource, ResourceKind, S3BucketDetails, SecurityGroupRef, SeverityLabel, Tag,
};
use crate::pipeline::{self, Notice};
use crate::plan::Plan;
use crate::planner;
use crate::store::StoreError;

use super::{code, plain, require_responder, Handled, Invocation, Reply, MAX_CONTENT};

pub const OPTION_TARGET: &str = "target";
pub const OPTION_ACCOUNT: &str = "account";
pub const OPTION_REGION: &str = "region";

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
/// `GetAccessKeyLastUsed` names the root user like this.
const ROOT_USER_NAME: &str = "<root_account>";

/// The sentence on what `/contain` accepts.
pub const ACCEPTED_FORMS: &str =
    "Give an access key id (AKIA or ASIA followed by 16 capital letters or digits), \
    an instance id (i- followed by 8 or 17 hexadecimal digits) or an S3 bucket name \
    (3 to 63 lowercase letters, digits, dots and hyphens).";

/// What `/contain` was asked to contain.
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

/// Recognizes a target, refusing anything ambiguous; `Err` is a sentence for the invoker.
pub fn parse_target(s: &str) -> Result<ContainTarget, String> {
    let t = s.trim();
    let prefix = t.get(..4).map(str::to_ascii_uppercase);
    if matches!(prefix.as_deref(), Some("AKIA" | "ASIA")) {
        let ok = t.len() == 20
            && t.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        return if ok {
            Ok(ContainTarget::AccessKey(t.to_string()))
        } else {
            Err(format!(
                "{} starts like an access key id but is not one. {ACCEPTED_FORMS}",
                code(t)
            ))
        };
    }
    if let Some(hex) = t.strip_prefix("i-") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return if hex.len() == 8 || hex.len() == 17 {
                Ok(ContainTarget::Instance(t.to_ascii_lowercase()))
            } else {
                Err(format!(
                    "{} looks like an instance id but has {} hexadecimal digits, not 8 or 17. {ACCEPTED_FORMS}",
                    code(t),
                    hex.len()
                ))
            };
        }
    }
    if is_bucket_name(t) {
        return Ok(ContainTarget::Bucket(t.to_string()));
    }
    Err(format!(
        "{} is not a target /contain knows. {ACCEPTED_FORMS}",
        code(t)
    ))
}

/// S3's bucket naming rules (general purpose buckets).
pub fn is_bucket_name(s: &str) -> bool {
    let b = s.as_bytes();
    let charset = b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    let edges = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ip_like = s.split('.').count() == 4
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    (3..=63).contains(&b.len())
        && charset
        && edges(b.first())
        && edges(b.last())
        && !s.contains("..")
        && !ip_like
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| s.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3"]
            .iter()
            .any(|x| s.ends_with(x))
}

/// Is this a 12-digit AWS account id?
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).await.finish(app, inv)
}

async fn handle(app: &App, inv: &Invocation) -> Handled {
    if let Err(refused) = require_responder(app, inv, "propose containment with /contain") {
        return *refused;
    }
    let Some(raw) = inv.str_opt(OPTION_TARGET) else {
        return Handled::refused("target_form", ACCEPTED_FORMS);
    };
    let target = match parse_target(raw) {
        Ok(t) => t,
        Err(why) => return Handled::refused("target_form", why),
    };
    let aws = &app.settings.aws;
    let region = match inv.str_opt(OPTION_REGION) {
        Some(r) if aws.regions.iter().any(|c| c == r) => r.to_string(),
        Some(r) => {
            return Handled::refused(
                "aws.regions",
                format!(
                    "hanko does not act in region {}: the configured regions (aws.regions) are {}.",
                    code(r),
                    aws.regions.join(", ")
                ),
            )
        }
        None => match aws.regions.first() {
            Some(r) => r.clone(),
            None => {
                return Handled::refused(
                    "aws.regions",
                    "No region is configured (aws.regions), so hanko cannot act anywhere.",
                )
            }
        },
    };
    let account = match inv.str_opt(OPTION_ACCOUNT) {
        Some(a) if is_account_id(a) => a.to_string(),
        Some(a) => {
            return Handled::refused(
                "account_form",
                format!("{} is not an AWS account id (12 digits).", code(a)),
            )
        }
        None => {
            match tokio::time::timeout(LOOKUP_TIMEOUT, app.clients.own_account(&region)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => return lookup_failed(e, "hanko's own account"),
                Err(_) => return timed_out("finding hanko's own account"),
            }
        }
    };
    if !aws.may_act_in(&account) {
        return Handled::refused(
            "aws.accounts",
            format!(
                "hanko may not act in account {}: it is not listed in aws.accounts.",
                code(&account)
            ),
        );
    }

    // The one planner's rule, before any AWS call: an account hanko cannot prove it reaches
    // (its own, or through the role template) is refused with what to set.
    let scope = planner::scope_proven(app).await;
    if let Err(refusal) = planner::check(&scope, &account, &region) {
        return Handled::refused(
            refusal.code(),
            format!("hanko will not act there: {refusal}."),
        );
    }

    let now = app.clock.now();
    let actor = inv.invoker.actor.clone();
    let lookup = async {
        let clients = app.clients.clients(&account, &region).await?;
        resource_of(&clients, &target, &region).await
    };
    let resource = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(Lookup::Found(r))) => *r,
        Ok(Ok(Lookup::Refused(refusal))) => return *refusal,
        Ok(Err(e)) => return lookup_failed(e, &target.to_string()),
        Err(_) => return timed_out(&format!("looking up {target}")),
    };
    let finding = manual_finding(&target, resource, &account, &region, &actor, now);
    let plan = planner::plan(&finding, &app.playbooks, &scope);
    if plan.is_notify_only() {
        return Handled::refused(
            "playbook",
            truncate(
                &format!(
                    "Nothing to propose for {}: {}",
                    plain(&target.to_string()),
                    plain(&plan.notes.join("; "))
                ),
                MAX_CONTENT,
            ),
        );
    }
    match covering_request(app, &plan) {
        Err(e) => return Handled::failed("contain", "reading the open requests", &e),
        Ok(Some((id, state, finding_id))) => {
            return Handled::refused(
                "duplicate",
                format!(
                    "Request `{}` ({state}) already covers {}; vote on its card (/finding id:{}).",
                    id.simple(),
                    plain(&target.to_string()),
                    plain(&finding_id)
                ),
            )
            .request(id)
        }
        Ok(None) => {}
    }

    if let Err(e) = app.store.upsert_finding(&finding, &actor, now) {
        return Handled::failed("contain", "storing the manual finding", &e);
    }
    let needed = app.policy.needed(&plan);
    let steps = plan_text(&plan);
    let request_id = match pipeline::propose(&app.store, &app.policy, plan, actor, now) {
        Ok(id) => id,
        Err(e) => {
            return Handled::failed("contain", "proposing the request", &e).finding(finding.id)
        }
    };
    app.notices.send(Notice::FindingNew {
        finding_id: finding.id.clone(),
        request: Some(request_id),
    });
    let who = if app.policy.allow_self_approval {
        "responders"
    } else {
        "responders other than you (you proposed it, so you cannot approve it)"
    };
    let content = format!(
        "Proposed request `{}` to contain {} in {}/{} (finding {}):\n{}\nNothing runs until {needed} approval(s) by {who}. Its card is being posted in the channel.",
        request_id.simple(),
        plain(&target.to_string()),
        code(&account),
        code(&region),
        code(&finding.id),
        steps,
    );
    Handled::done(Reply::ephemeral(truncate(&content, MAX_CONTENT)))
        .finding(finding.id)
        .request(request_id)
}

/// A live containment request ([`crate::approval::Request::is_live`]: pending and not past its
/// expiry, approved or executing) in the same account with a step of the same action on the
/// same target as one of `plan`'s.
fn covering_request(
    app: &App,
    plan: &Plan,
) -> Result<Option<(uuid::Uuid, RequestState, String)>, StoreError> {
    let now = app.clock.now();
    let live = app.store.requests_in_states(&[
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Executing,
    ])?;
    Ok(live
        .iter()
        .filter(|r| r.is_live(now))
        .filter(|r| r.kind == RequestKind::Contain && r.plan.account_id == plan.account_id)
        .find(|r| {
            r.plan.steps.iter().any(|s| {
                plan.steps
                    .iter()
                    .any(|p| p.action == s.action && p.target == s.target)
            })
        })
        .map(|r| (r.id, r.state, r.finding_id.clone())))
}

/// What a lookup found.
enum Lookup {
    Found(Box<Resource>),
    /// The target exists but cannot be contained by hand this way: the refusal says why.
    Refused(Box<Handled>),
}

/// The resource the target names, from the read-only lookup.
async fn resource_of(
    clients: &AwsClients,
    target: &ContainTarget,
    region: &str,
) -> Result<Lookup, StepError> {
    match target {
        ContainTarget::AccessKey(key) => {
            const OP: &str = "iam:GetAccessKeyLastUsed";
            let out = clients
                .iam
                .get_access_key_last_used()
                .access_key_id(key)
                .send()
                .await
                .map_err(|e| classify(&e, OP, key))?;
            let user = match out.user_name() {
                Some(u) if !u.is_empty() => u.to_string(),
                _ => {
                    return Ok(Lookup::Refused(Box::new(Handled::refused(
                        "target_owner_unknown",
                        format!(
                            "AWS does not say which IAM user owns {}, so hanko cannot contain it by hand (a temporary ASIA key is not tied to a user this way); contain the user or role named in the finding's card instead.",
                            code(key)
                        ),
                    ))))
                }
            };
            let user_type = if user == ROOT_USER_NAME {
                "Root"
            } else {
                "IAMUser"
            };
            Ok(Lookup::Found(Box::new(Resource {
                kind: ResourceKind::AccessKey,
                access_key: Some(AccessKeyDetails {
                    access_key_id: Some(key.clone()),
                    principal_id: None,
                    user_name: Some(user),
                    user_type: Some(user_type.to_string()),
                }),
                instance: None,
                s3_buckets: Vec::new(),
            })))
        }
        ContainTarget::Instance(id) => {
            const OP: &str = "ec2:DescribeInstances";
            let out = clients
                .ec2
                .describe_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| classify(&e, OP, id))?;
            let Some(i) = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id.as_str()))
            else {
                return Err(StepError::local(
                    ErrorClass::NotFound,
                    OP,
                    id,
                    format!("instance {id} was not found"),
                ));
            };
            let interfaces = i
                .network_interfaces()
                .iter()
                .map(|n| NetworkInterface {
                    network_interface_id: n.network_interface_id().map(str::to_string),
                    vpc_id: n.vpc_id().map(str::to_string),
                    subnet_id: n.subnet_id().map(str::to_string),
                    private_ip: n.private_ip_address().map(str::to_string),
                    public_ip: n
                        .association()
                        .and_then(|a| a.public_ip())
                        .map(str::to_string),
                    security_groups: n
                        .groups()
                        .iter()
                        .map(|g| SecurityGroupRef {
                            group_id: g.group_id().map(str::to_string),
                            group_name: g.group_name().map(str::to_string),
                        })
                        .collect(),
                })
                .collect();
            let tags = i
                .tags()
                .iter()
                .filter_map(|t| {
                    Some(Tag {
                        key: t.key()?.to_string(),
                        value: t.value().unwrap_or_default().to_string(),
                    })
                })
                .collect();
            Ok(Lookup::Found(Box::new(Resource {
                kind: ResourceKind::Instance,
                access_key: None,
                instance: Some(InstanceDetails {
                    instance_id: Some(id.clone()),
                    instance_type: i.instance_type().map(|t| t.as_str().to_string()),
                    instance_state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string()),
                    availability_zone: i
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .map(str::to_string),
                    image_id: i.image_id().map(str::to_string),
                    instance_profile_arn: i
                        .iam_instance_profile()
                        .and_then(|p| p.arn())
                        .map(str::to_string),
                    instance_profile_id: i
                        .iam_instance_profile()
                        .and_then(|p| p.id())
                        .map(str::to_string),
                    network_interfaces: interfaces,
                    tags,
                }),
                s3_buckets: Vec::new(),
            })))
        }
        ContainTarget::Bucket(bucket) => {
            const OP: &str = "s3:HeadBucket";
            let out = clients
                .s3
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| classify(&e, OP, bucket))?;
            if let Some(actual) = out.bucket_region().filter(|r| *r != region) {
                return Ok(Lookup::Refused(Box::new(Handled::refused(
                    "bucket_region",
                    format!(
                        "Bucket {} is in region {}, not {}: run /contain again with region:{}.",
                        code(bucket),
                        code(actual),
                        code(region),
                        plain(actual)
                    ),
                ))));
            }
            Ok(Lookup::Found(Box::new(Resource {
                kind: ResourceKind::S3Bucket,
                access_key: None,
                instance: None,
                s3_buckets: vec![S3BucketDetails {
                    name: Some(bucket.clone()),
                    arn: Some(format!("arn:aws:s3:::{bucket}")),
                    bucket_type: None,
                    public_access: None,
                    tags: Vec::new(),
                }],
            })))
        }
    }
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
        id: format!("{MANUAL_ID_PREFIX}{}", uuid::Uuid::new_v4().simple()),
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

/// A lookup that failed: a refusal when AWS said "no such thing" or "not allowed", a logged
/// failure otherwise.
fn lookup_failed(e: StepError, what: &str) -> Handled {
    match e.class {
        ErrorClass::NotFound => Handled::refused(
            "target_not_found",
            format!(
                "AWS does not know {} ({} answered {}).",
                plain(what),
                e.operation,
                e.code.as_deref().unwrap_or("not found")
            ),
        ),
        ErrorClass::Forbidden => Handled::refused(
            "aws_permission",
            format!(
                "hanko is not allowed to look up {}: {} was denied. Its role needs that permission (see config/iam-policy.json).",
                plain(what),
                e.operation
            ),
        ),
        _ => Handled::failed("contain", &format!("calling {}", e.operation), &e),
    }
}

fn timed_out(what: &str) -> Handled {
    Handled::failed(
        "contain",
        what,
        &format!("no answer from AWS within {} s", LOOKUP_TIMEOUT.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_recognized_and_ambiguity_refused() {
        use ContainTarget::*;
        let table: &[(&str, Option<ContainTarget>)] = &[
            (
                "AKIAIOSFODNN7EXAMPLE",
                Some(AccessKey("AKIAIOSFODNN7EXAMPLE".into())),
            ),
            (
                "  ASIAIOSFODNN7EXAMPLE ",
                Some(AccessKey("ASIAIOSFODNN7EXAMPLE".into())),
            ),
            ("AKIAIOSFODNN7EXAMPL", None),
            ("akiaiosfodnn7example", None),
            ("AKIAIOSFODNN7EXAMPLe", None),
            ("AIDAIOSFODNN7EXAMPLE", None),
            ("i-0123abcd", Some(Instance("i-0123abcd".into()))),
            (
                "i-0123456789abcdef0",
                Some(Instance("i-0123456789abcdef0".into())),
            ),
            (
                "i-0123456789ABCDEF0",
                Some(Instance("i-0123456789abcdef0".into())),
            ),
            ("i-0123abc", None),
            ("i-0123456789abcdef", None),
            ("i-logs", Some(Bucket("i-logs".into()))),
            (
                "my-bucket.example",
                Some(Bucket("my-bucket.example".into())),
            ),
            ("ab", None),
            ("My-Bucket", None),
            ("bucket_name", None),
            ("-bucket", None),
            ("a..b", None),
            ("192.168.0.1", None),
            ("xn--bucket", None),
            ("logs-s3alias", None),
            ("arn:aws:s3:::bucket", None),
            ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None),
            ("", None),
        ];
        for (input, want) in table {
            let got = parse_target(input);
            match want {
                Some(t) => assert_eq!(got.as_ref(), Ok(t), "{input}"),
                None => {
                    let why = got.expect_err(input);
                    assert!(why.contains("AKIA or ASIA"), "{input}: {why}");
                }
            }
        }
        assert!(is_bucket_name(&"a".repeat(63)));
        assert!(!is_bucket_name(&"a".repeat(64)));
    }

    #[test]
    fn account_ids() {
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("12345678901"));
        assert!(!is_account_id("12345678901a"));
    }

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
