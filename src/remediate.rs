//! The plans for failing Security Hub controls: a posture group (one control failing in one
//! account) becomes a containment [`Plan`] that goes through the same request, approval, engine
//! and audit as a GuardDuty finding's. There is no second execution path: this module only plans.
//! Two kinds of plan: a remediation (below) and a suppression ([`suppression_plan`]: one
//! `SuppressFindings` step over exactly the group's failing findings, lifted by its revert).
//!
//! Offered for three controls ([`offers`]):
//!
//! | control | what fails | plan |
//! |---|---|---|
//! | `S3.8` | a bucket's Block Public Access is off (`AwsS3Bucket`, `arn:aws:s3:::NAME`) | one `block_bucket_public_access` step per failing bucket, exactly those |
//! | `S3.1` | the account-level S3 Block Public Access is off (`AwsAccount`) | one `block_account_public_access` step (S3 Control) on the group's account |
//! | `IAM.3` | a user has an active access key older than the threshold (`AwsIamUser`; the finding does not name the key) | `ListAccessKeys` per user, one `deactivate_access_key` step per **Active** key older than the threshold; a key that is the user's last active one is planned *and* flagged loudly in the notes |
//!
//! Any other control, a group with nothing failing, or a group whose resources give nothing to
//! act on gets [`Remediation::NotOffered`] with the reason. The plan's `finding_id` is the group
//! key ([`crate::posture::GroupKey::encode`]); account and region come from the key. Resources
//! outside the group's account are never acted on.
//!
//! Steps are built by the planner's own builders ([`crate::plan::block_bucket_public_access_step`]
//! and friends), so a remediation step is the very step a GuardDuty plan would run. The only AWS
//! call here is the read-only `iam:ListAccessKeys` (IAM.3); its errors are classified by
//! [`crate::aws::error::classify`].
//!
//! May use the AWS SDK (IAM reads), [`crate::plan`], [`crate::posture`], [`crate::ids`] and
//! [`crate::aws`]; never imports sled or serenity. Proposing these plans is
//! [`crate::actions::posture`]'s.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::aws::lookup::{self, KeyInfo};
use crate::aws::{AwsClients, AwsError, ErrorClass};
use crate::ids::{is_account_id, is_bucket_name};
use crate::plan::{
    block_account_public_access_step, block_bucket_public_access_step, deactivate_access_key_step,
    Action, Plan, RiskClass, Step, Target,
};
use crate::posture::{Group, GroupStatus, ResourceRef};

/// Bucket-level S3 Block Public Access.
pub const CONTROL_S3_BUCKET_BPA: &str = "S3.8";
/// Account-level S3 Block Public Access.
pub const CONTROL_S3_ACCOUNT_BPA: &str = "S3.1";
/// Access keys rotated within the threshold (90 days by default).
pub const CONTROL_IAM_KEY_ROTATION: &str = "IAM.3";

/// ASFF resource types of the controls above.
const TYPE_BUCKET: &str = "AwsS3Bucket";
const TYPE_ACCOUNT: &str = "AwsAccount";
const TYPE_USER: &str = "AwsIamUser";

/// The remediation plan for a failing posture group, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remediation {
    Plan(Plan),
    NotOffered { reason: String },
}

/// Why no remediation could be planned (as opposed to [`Remediation::NotOffered`], which is an
/// answer). The message is safe to show; the source carries the AWS error code and request id.
#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    #[error("could not plan the remediation of {group}: {}", .source.message)]
    Aws {
        /// The group key ([`crate::posture::GroupKey::encode`]).
        group: String,
        #[source]
        source: AwsError,
    },
}

/// Whether hanko offers a remediation for `control_id` (the card shows the button). Pure.
pub fn offers(control_id: &str) -> bool {
    matches!(
        control_id,
        CONTROL_S3_BUCKET_BPA | CONTROL_S3_ACCOUNT_BPA | CONTROL_IAM_KEY_ROTATION
    )
}

/// The remediation plan for a failing posture group, or why there is none. `clients` are for
/// the group's account; `now` and `iam3_max_key_age` decide which keys are too old (IAM.3).
pub async fn plan_for_group(
    clients: &AwsClients,
    group: &Group,
    now: DateTime<Utc>,
    iam3_max_key_age: Duration,
) -> Result<Remediation, RemediateError> {
    let control = group.key.control_id.as_str();
    if !offers(control) {
        return Ok(not_offered(format!(
            "hanko has no remediation for control {control}; follow the control's remediation \
             guidance in Security Hub"
        )));
    }
    if matches!(
        group.status,
        GroupStatus::Resolved | GroupStatus::Suppressed
    ) {
        return Ok(not_offered(format!(
            "control {control} is {} in account {}: nothing to remediate",
            group.status.as_str(),
            group.key.account_id
        )));
    }
    let drafted = match control {
        CONTROL_S3_BUCKET_BPA => Ok(s3_buckets(group)),
        CONTROL_S3_ACCOUNT_BPA => Ok(s3_account(group)),
        _ => iam_keys(clients, group, now, iam3_max_key_age).await,
    };
    let draft = drafted.map_err(|source| RemediateError::Aws {
        group: group.key.encode(),
        source,
    })?;
    Ok(draft.into_remediation(group))
}

/// Steps and notes before they become a plan.
#[derive(Debug, Default)]
struct Draft {
    steps: Vec<Step>,
    notes: Vec<String>,
}

impl Draft {
    fn into_remediation(mut self, group: &Group) -> Remediation {
        if self.steps.is_empty() {
            let mut reason = format!(
                "no remediation step for control {} in account {}",
                group.key.control_id, group.key.account_id
            );
            if !self.notes.is_empty() {
                reason.push_str(": ");
                reason.push_str(&self.notes.join("; "));
            }
            return Remediation::NotOffered { reason };
        }
        self.notes.insert(
            0,
            format!(
                "remediation of Security Hub control {} ({}) in account {}, proposed from the \
                 posture card; it runs only once approved, like any containment",
                group.key.control_id,
                if group.title.is_empty() {
                    "no title"
                } else {
                    group.title.as_str()
                },
                group.key.account_id
            ),
        );
        Remediation::Plan(Plan::new(
            group.key.encode(),
            group.key.account_id.clone(),
            group.key.region.clone(),
            false,
            self.steps,
            self.notes,
        ))
    }
}

fn not_offered(reason: String) -> Remediation {
    Remediation::NotOffered { reason }
}

/// S3.8: block public access on exactly the failing buckets.
fn s3_buckets(group: &Group) -> Draft {
    let mut d = Draft::default();
    let mut buckets = BTreeSet::new();
    for r in &group.failing {
        match (r.resource_type.as_str(), bucket_name_from_arn(&r.id)) {
            (TYPE_BUCKET, Some(name)) => {
                buckets.insert(name);
            }
            _ => d.notes.push(skipped(r, "not an S3 bucket ARN")),
        }
    }
    if buckets.is_empty() {
        return d;
    }
    d.notes.push(format!(
        "S3.8: bucket-level Block Public Access is off on {} bucket(s); each gets all four flags \
         on, and only these buckets are touched. Anything that relies on public access to them \
         (public objects, a static website) stops working; revert restores each bucket's prior \
         setting",
        buckets.len()
    ));
    d.steps = buckets
        .into_iter()
        .map(block_bucket_public_access_step)
        .collect();
    d
}

/// S3.1: block public access for the group's account (S3 Control).
fn s3_account(group: &Group) -> Draft {
    let mut d = Draft::default();
    let account = group.key.account_id.as_str();
    let mut names_account = false;
    for r in &group.failing {
        match (r.resource_type.as_str(), account_from_resource(&r.id)) {
            (TYPE_ACCOUNT, Some(a)) if a == account => names_account = true,
            (TYPE_ACCOUNT, Some(other)) => d.notes.push(format!(
                "resource {} names account {other}, not the group's account {account}: left alone",
                r.id
            )),
            _ => d.notes.push(skipped(r, "not this account")),
        }
    }
    if !names_account {
        d.notes.push(format!(
            "no failing resource names account {account}; re-enable Block Public Access in the S3 \
             console (Block Public Access settings for this account)"
        ));
        return d;
    }
    d.notes.push(format!(
        "S3.1: the account-level S3 Block Public Access of account {account} is off; all four \
         flags go on, which overrides every bucket's own setting and policy: any bucket or object \
         in the account that is public on purpose stops being public. Revert restores the prior \
         account setting"
    ));
    d.steps.push(block_account_public_access_step(account));
    d
}

/// IAM.3: deactivate each user's Active keys older than `max_age`.
async fn iam_keys(
    clients: &AwsClients,
    group: &Group,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<Draft, AwsError> {
    let mut d = Draft::default();
    let account = group.key.account_id.as_str();
    let mut users = BTreeSet::new();
    for r in &group.failing {
        match (r.resource_type.as_str(), user_from_arn(&r.id)) {
            (TYPE_USER, Some((a, name))) if a == account => {
                users.insert(name);
            }
            (TYPE_USER, Some((other, _))) => d.notes.push(format!(
                "user {} is in account {other}, not the group's account {account}: left alone",
                r.id
            )),
            _ => d.notes.push(skipped(r, "not an IAM user ARN")),
        }
    }
    for user in users {
        match lookup::access_keys_of(clients, user).await {
            Ok(keys) => {
                let (steps, notes) = plan_user_keys(user, &keys, now, max_age);
                d.steps.extend(steps);
                d.notes.extend(notes);
            }
            Err(e) if e.class == ErrorClass::NotFound => d.notes.push(format!(
                "user {user} no longer exists: nothing to deactivate"
            )),
            Err(e) => return Err(e),
        }
    }
    if !d.steps.is_empty() {
        d.notes.push(format!(
            "IAM.3: active access keys older than {} day(s) are deactivated, never deleted (a \
             person rotates them: create a new key, move the applications, then delete the old \
             one); the users' other keys are not touched. IAM changes take a few minutes to \
             propagate",
            max_age.num_days()
        ));
    }
    Ok(d)
}

/// The steps and notes for one user's keys (pure): one step per Active key older than
/// `max_age`, and a loud note when the plan deactivates every active key the user has.
pub fn plan_user_keys(
    user: &str,
    keys: &[KeyInfo],
    now: DateTime<Utc>,
    max_age: Duration,
) -> (Vec<Step>, Vec<String>) {
    let mut notes = Vec::new();
    let mut keys: Vec<&KeyInfo> = keys.iter().collect();
    keys.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    let active: Vec<&KeyInfo> = keys.iter().copied().filter(|k| k.active).collect();
    let mut old = Vec::new();
    for k in &active {
        match k.created {
            Some(created) if now - created > max_age => old.push(*k),
            Some(_) => {}
            None => notes.push(format!(
                "user {user}: key {} reports no creation date; not planned",
                k.access_key_id
            )),
        }
    }
    if old.is_empty() {
        notes.push(format!(
            "user {user}: no active access key older than {} day(s) (rotated since the check?); \
             nothing planned",
            max_age.num_days()
        ));
        return (Vec::new(), notes);
    }
    if old.len() == active.len() {
        let ids: Vec<&str> = old.iter().map(|k| k.access_key_id.as_str()).collect();
        notes.push(if let [only] = ids.as_slice() {
            format!(
                "⚠️ WARNING: {only} is the ONLY active access key of user {user}: deactivating it \
                 leaves {user} with NO programmatic access (CLI, SDKs, API) until a new key is \
                 issued. Approve only if cutting that access is intended, or rotate first"
            )
        } else {
            format!(
                "⚠️ WARNING: every active access key of user {user} ({}) is planned: deactivating \
                 them leaves {user} with NO programmatic access (CLI, SDKs, API) until a new key \
                 is issued. Approve only if cutting that access is intended, or rotate first",
                ids.join(", ")
            )
        });
    }
    let steps = old
        .iter()
        .map(|k| deactivate_access_key_step(user, &k.access_key_id))
        .collect();
    (steps, notes)
}

fn skipped(r: &ResourceRef, why: &str) -> String {
    format!(
        "resource {} ({}) is {why}: left alone",
        r.id,
        if r.resource_type.is_empty() {
            "no type"
        } else {
            r.resource_type.as_str()
        }
    )
}

/// `arn:aws:s3:::NAME` → `NAME` (any partition). Object ARNs (`NAME/key`) and names S3 would
/// refuse are not buckets.
pub fn bucket_name_from_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("s3:::")?;
    is_bucket_name(name).then_some(name)
}

/// `arn:aws:iam::ACCOUNT:user/PATH/NAME` → `(ACCOUNT, NAME)`: the user name is the last path
/// segment.
pub fn user_from_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource.strip_prefix("user/")?;
    let name = path.rsplit('/').next()?;
    (is_account_id(account) && !name.is_empty()).then_some((account, name))
}

/// `AWS::::Account:123456789012` (what Security Hub names an account resource) or a bare
/// account id → the account id.
pub fn account_from_resource(id: &str) -> Option<&str> {
    let account = id.strip_prefix("AWS::::Account:").unwrap_or(id);
    is_account_id(account).then_some(account)
}

/// The plan that suppresses exactly `group`'s failing findings, for `reason`.
pub fn suppression_plan(group: &Group, reason: &str, risk: RiskClass) -> Plan {
    let key = &group.key;
    let ids: Vec<String> = group
        .failing_findings
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let identifiers: Vec<serde_json::Value> = group
        .failing_findings
        .iter()
        .map(|(id, product_arn)| json!({ "Id": id, "ProductArn": product_arn }))
        .collect();
    let mut step = Step::new(
        Action::SuppressFindings,
        Target::ControlFindings {
            control_id: key.control_id.clone(),
            finding_ids: ids,
        },
        json!({
            "ControlId": key.control_id,
            "FindingIdentifiers": identifiers,
            "Reason": reason,
            "Workflow": { "Status": "SUPPRESSED" },
        }),
    );
    step.risk = risk;
    Plan::new(
        key.encode(),
        key.account_id.clone(),
        key.region.clone(),
        false,
        vec![step],
        vec![format!(
            "Suppresses the {} failing finding(s) of control {} in Security Hub (workflow \
             SUPPRESSED, with a note naming the reason, the approvers and this request): they \
             stop counting against the score. Reverting this request lifts the suppression.",
            group.failing_findings.len(),
            key.control_id
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Target};
    use crate::posture::{GroupKey, PostureSeverity};
    use chrono::TimeZone;

    #[test]
    fn bucket_names_from_arns() {
        let table = [
            ("arn:aws:s3:::my-bucket", Some("my-bucket")),
            ("arn:aws-cn:s3:::logs.example.com", Some("logs.example.com")),
            ("arn:aws-us-gov:s3:::abc", Some("abc")),
            ("arn:aws:s3:::my-bucket/some/key", None),
            ("arn:aws:s3:::", None),
            ("arn:aws:s3:::ab", None),
            ("arn:aws:s3:::Upper", None),
            ("arn:aws:s3:::-dash", None),
            ("arn:aws:s3:us-east-1:123456789012:accesspoint/ap", None),
            ("arn:aws:iam::123456789012:user/alice", None),
            ("my-bucket", None),
            ("", None),
        ];
        for (arn, want) in table {
            assert_eq!(bucket_name_from_arn(arn), want, "{arn}");
        }
    }

    #[test]
    fn user_names_are_the_last_path_segment() {
        let table = [
            (
                "arn:aws:iam::123456789012:user/alice",
                Some(("123456789012", "alice")),
            ),
            (
                "arn:aws:iam::123456789012:user/division/team/bob",
                Some(("123456789012", "bob")),
            ),
            (
                "arn:aws-cn:iam::123456789012:user/carol",
                Some(("123456789012", "carol")),
            ),
            ("arn:aws:iam::123456789012:user/", None),
            ("arn:aws:iam::123456789012:user/path/", None),
            ("arn:aws:iam::123456789012:role/web", None),
            ("arn:aws:iam::12345:user/alice", None),
            ("arn:aws:s3:::alice", None),
            ("alice", None),
        ];
        for (arn, want) in table {
            assert_eq!(user_from_arn(arn), want, "{arn}");
        }
        assert_eq!(
            account_from_resource("AWS::::Account:123456789012"),
            Some("123456789012")
        );
        assert_eq!(account_from_resource("AWS::::Account:x"), None);
    }

    #[test]
    fn offers_exactly_three_controls() {
        for c in ["S3.1", "S3.8", "IAM.3"] {
            assert!(offers(c), "{c}");
        }
        for c in [
            "S3.2", "IAM.4", "EC2.2", "s3.8", "S3.8 ", "", "CIS.1.4", "1.4",
        ] {
            assert!(!offers(c), "{c:?}");
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    fn key(id: &str, active: bool, age_days: i64) -> KeyInfo {
        KeyInfo {
            access_key_id: id.into(),
            active,
            created: Some(t0() - Duration::days(age_days)),
        }
    }

    fn planned(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .map(|s| match &s.target {
                Target::AccessKey { access_key_id, .. } => access_key_id.as_str(),
                other => panic!("not a key target: {other}"),
            })
            .collect()
    }

    fn warned(notes: &[String]) -> bool {
        notes.iter().any(|n| n.contains("WARNING"))
    }

    #[test]
    fn only_active_keys_over_the_age_are_planned_and_a_last_key_is_flagged() {
        let age = Duration::days(90);
        // One old active key, one new: only the old one, no warning.
        let (steps, notes) = plan_user_keys(
            "alice",
            &[key("AKIAOLD", true, 200), key("AKIANEW", true, 3)],
            t0(),
            age,
        );
        assert_eq!(planned(&steps), ["AKIAOLD"]);
        assert!(!warned(&notes), "{notes:?}");
        assert_eq!(steps[0], deactivate_access_key_step("alice", "AKIAOLD"));
        assert_eq!(steps[0].action, Action::DeactivateAccessKey);

        // The only active key is old (an old inactive one does not count): planned, flagged.
        let (steps, notes) = plan_user_keys(
            "bob",
            &[key("AKIAONLY", true, 91), key("AKIADEAD", false, 400)],
            t0(),
            age,
        );
        assert_eq!(planned(&steps), ["AKIAONLY"]);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("ONLY active access key of user bob")),
            "{notes:?}"
        );

        // Two active keys, both old: both planned, flagged.
        let (steps, notes) = plan_user_keys(
            "carol",
            &[key("AKIAB", true, 100), key("AKIAA", true, 120)],
            t0(),
            age,
        );
        assert_eq!(planned(&steps), ["AKIAA", "AKIAB"]);
        assert!(
            notes.iter().any(|n| n.contains("every active access key")),
            "{notes:?}"
        );

        // Exactly at the threshold is not over it; nothing planned, a note says so.
        let (steps, notes) = plan_user_keys("dave", &[key("AKIAD", true, 90)], t0(), age);
        assert!(steps.is_empty());
        assert!(notes[0].contains("no active access key older than 90"));

        // No creation date: not planned, said.
        let undated = KeyInfo {
            created: None,
            ..key("AKIAU", true, 0)
        };
        let (steps, notes) = plan_user_keys("erin", &[undated], t0(), age);
        assert!(steps.is_empty());
        assert!(notes.iter().any(|n| n.contains("no creation date")));
    }

    fn group(control: &str, failing: Vec<ResourceRef>) -> Group {
        Group {
            key: GroupKey {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
                control_id: control.into(),
            },
            title: "t".into(),
            standards: Vec::new(),
            severity: PostureSeverity::High,
            status: GroupStatus::Failing,
            failing,
            failing_findings: Vec::new(),
            new_count: 1,
            suppressed_count: 0,
            passed_count: 0,
            remediation_url: None,
            failing_since: None,
            updated_at: None,
        }
    }

    fn res(ty: &str, id: &str) -> ResourceRef {
        ResourceRef {
            resource_type: ty.into(),
            id: id.into(),
        }
    }

    #[test]
    fn s3_plans_touch_exactly_the_failing_buckets_or_the_groups_account() {
        let g = group(
            "S3.8",
            vec![
                res("AwsS3Bucket", "arn:aws:s3:::b-one"),
                res("AwsS3Bucket", "arn:aws:s3:::b-two"),
                res("AwsS3Bucket", "arn:aws:s3:::b-two/obj"),
                res("AwsAccount", "AWS::::Account:123456789012"),
            ],
        );
        let Remediation::Plan(p) = s3_buckets(&g).into_remediation(&g) else {
            panic!("no plan")
        };
        assert_eq!(p.finding_id, "123456789012/us-east-1/S3.8");
        assert_eq!(
            p.steps,
            vec![
                block_bucket_public_access_step("b-one"),
                block_bucket_public_access_step("b-two")
            ]
        );
        assert_eq!(
            p.notes.iter().filter(|n| n.contains("left alone")).count(),
            2
        );

        let g = group(
            "S3.1",
            vec![res("AwsAccount", "AWS::::Account:123456789012")],
        );
        let Remediation::Plan(p) = s3_account(&g).into_remediation(&g) else {
            panic!("no plan")
        };
        assert_eq!(
            p.steps,
            vec![block_account_public_access_step("123456789012")]
        );
        let other = group(
            "S3.1",
            vec![res("AwsAccount", "AWS::::Account:210987654321")],
        );
        assert!(matches!(
            s3_account(&other).into_remediation(&other),
            Remediation::NotOffered { reason } if reason.contains("210987654321")
        ));
        let none = group("S3.8", vec![res("AwsS3Bucket", "not-an-arn")]);
        assert!(matches!(
            s3_buckets(&none).into_remediation(&none),
            Remediation::NotOffered { .. }
        ));
    }

    fn offline_clients() -> AwsClients {
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        AwsClients::from_sdk_config(&conf, false)
    }

    #[tokio::test]
    async fn other_controls_and_groups_that_no_longer_fail_are_not_offered() {
        let clients = offline_clients();
        let age = Duration::days(90);
        let ec2 = group("EC2.2", vec![res("AwsEc2SecurityGroup", "sg-1")]);
        match plan_for_group(&clients, &ec2, t0(), age).await {
            Ok(Remediation::NotOffered { reason }) => assert!(reason.contains("EC2.2"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let mut resolved = group("S3.8", vec![]);
        resolved.status = GroupStatus::Resolved;
        match plan_for_group(&clients, &resolved, t0(), age).await {
            Ok(Remediation::NotOffered { reason }) => {
                assert!(reason.contains("resolved"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
