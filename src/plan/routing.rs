//! Routing: `Finding -> Plan`, the default playbooks following the routing table of
//! `docs/containment.md` ("Which plan a finding gets"), with the operator's
//! `config/playbooks.toml` applied on top: optional steps switched on, notify-only findings,
//! exempt resources by tag and changed risk classes (see [`Playbooks`]).
//!
//! Pure core: uses [`crate::finding`], [`crate::playbooks`] and the vocabulary
//! ([`super::vocabulary`]); never fails (a finding hanko cannot contain gets a notify-only
//! plan whose notes say why).

use super::vocabulary::*;
use crate::finding::{AccessKeyDetails, Finding, ResourceKind};
use crate::playbooks::{Overrides, Playbooks};

/// GuardDuty `Policy:S3/*` types whose bucket in `s3BucketDetails` is exposed. Their resource
/// type is `AccessKey` (they come from management events); the key is whoever changed the
/// setting, often an admin, and is left alone.
const BUCKET_EXPOSURE_TYPES: [&str; 3] = [
    "Policy:S3/BucketBlockPublicAccessDisabled",
    "Policy:S3/BucketAnonymousAccessGranted",
    "Policy:S3/BucketPublicAccessGranted",
];

const ROOT_MANUAL_STEPS: &str = "No API can contain the root user from another principal. \
    Manually: sign in as root, rotate or delete root access keys, enable MFA, review CloudTrail \
    for the root user's recent calls.";

/// Builds the plan for `finding` under `playbooks`. Never fails: a finding hanko cannot
/// contain gets a notify-only plan whose notes say why.
pub fn plan(finding: &Finding, playbooks: &Playbooks) -> Plan {
    let overrides = playbooks.overrides_for(finding);
    let mut b = Builder {
        finding,
        playbooks,
        overrides: &overrides,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    if finding.sample {
        b.notes.push(
            "SAMPLE: this is one of GuardDuty's generated sample findings; its names are placeholders"
                .into(),
        );
    }
    if finding.archived {
        b.notes
            .push("notify only: the finding is archived, so nothing is proposed for it".into());
    } else if finding.account_id.is_empty() {
        b.notes.push(
            "notify only: the finding does not name its AWS account, and hanko never guesses where to act"
                .into(),
        );
    } else if let Some(reason) = &overrides.notify_only {
        b.notes.push(reason.clone());
    } else {
        b.route();
    }
    b.notes.extend(overrides.notes.iter().cloned());
    let (steps, notes) = (b.steps, b.notes);
    Plan::new(
        finding.id.clone(),
        finding.account_id.clone(),
        finding.region.clone(),
        finding.sample,
        steps,
        notes,
    )
}

struct Builder<'a> {
    finding: &'a Finding,
    playbooks: &'a Playbooks,
    overrides: &'a Overrides,
    steps: Vec<Step>,
    notes: Vec<String>,
}

/// The step that deactivates exactly one access key of one IAM user (never deletes it).
/// Shared by the GuardDuty playbook and posture remediation (`crate::remediate`, IAM.3).
pub fn deactivate_access_key_step(user_name: &str, access_key_id: &str) -> Step {
    Step::new(
        Action::DeactivateAccessKey,
        Target::AccessKey {
            user_name: user_name.into(),
            access_key_id: access_key_id.into(),
        },
        serde_json::json!({
            "UserName": user_name, "AccessKeyId": access_key_id, "Status": "Inactive"
        }),
    )
}

/// The step that turns on all four public-access-block flags of exactly one bucket.
/// Shared by the GuardDuty playbook and posture remediation (`crate::remediate`, S3.8).
pub fn block_bucket_public_access_step(bucket: &str) -> Step {
    Step::new(
        Action::BlockBucketPublicAccess,
        Target::Bucket {
            bucket: bucket.into(),
        },
        serde_json::json!({
            "Bucket": bucket,
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": true, "IgnorePublicAcls": true,
                "BlockPublicPolicy": true, "RestrictPublicBuckets": true
            }
        }),
    )
}

/// The step that turns on all four account-level S3 Block Public Access flags of the plan's
/// account (S3 Control). Used by posture remediation (`crate::remediate`, S3.1).
pub fn block_account_public_access_step(account_id: &str) -> Step {
    Step::new(
        Action::BlockAccountPublicAccess,
        Target::Account {
            account_id: account_id.into(),
        },
        serde_json::json!({
            "AccountId": account_id,
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": true, "IgnorePublicAcls": true,
                "BlockPublicPolicy": true, "RestrictPublicBuckets": true
            }
        }),
    )
}

impl Builder<'_> {
    fn push(&mut self, action: Action, target: Target, parameters: serde_json::Value) {
        self.push_step(Step::new(action, target, parameters));
    }

    /// Adds `step` unless a playbook switched its action off; the playbook's risk class wins.
    fn push_step(&mut self, mut step: Step) {
        let action = step.action;
        if !self.overrides.is_on(action) {
            if !action.is_opt_in() {
                self.notes
                    .push(format!("step {action} is switched off by a playbook rule"));
            }
            return;
        }
        step.risk = self.overrides.risk_of(action);
        self.steps.push(step);
    }

    /// The routing table of `docs/containment.md`, first match wins.
    fn route(&mut self) {
        let f = self.finding;
        let t = f.finding_type.as_str();
        if BUCKET_EXPOSURE_TYPES.contains(&t) {
            self.notes.push(
                "the bucket is exposed; the key that changed the setting is often an admin's and is left alone"
                    .into(),
            );
            self.block_buckets();
            return;
        }
        if t == "Policy:S3/AccountBlockPublicAccessDisabled" {
            // The account-level setting is off: turn all four flags back on with S3 Control, the
            // step posture remediation of S3.1 uses. The key that changed the setting is often an
            // admin's and is left alone, as for the bucket-level types.
            self.notes.push(
                "the account-level S3 Block Public Access is off; the key that changed the setting is often an admin's and is left alone"
                    .into(),
            );
            let account = f.account_id.clone();
            self.push_step(block_account_public_access_step(&account));
            return;
        }
        if t == "Stealth:S3/ServerAccessLoggingDisabled" || t.starts_with("Policy:") {
            self.notes.push(format!(
                "notify only: {t} reports a changed setting, not an actor to contain; review and restore the setting"
            ));
            return;
        }
        match &f.resource.kind {
            ResourceKind::AccessKey => match &f.resource.access_key {
                Some(key) => self.credentials(key, true),
                None => self
                    .notes
                    .push("notify only: the finding names no access key details to act on".into()),
            },
            ResourceKind::Instance => self.instance(),
            ResourceKind::S3Bucket => {
                self.block_buckets();
                match &f.resource.access_key {
                    Some(key) => self.credentials(key, false),
                    None => self.notes.push(
                        "the finding names no actor key; only the bucket is protected".into(),
                    ),
                }
            }
            ResourceKind::Other(kind) => self.notes.push(format!(
                "notify only: hanko has no containment for resource type {kind}; {}",
                guidance(kind)
            )),
        }
    }

    /// IAM steps for the credentials in `key`. `primary` is true when the key is the finding's
    /// resource (an AccessKey finding), false when it is the actor of an S3 data event.
    fn credentials(&mut self, key: &AccessKeyDetails, primary: bool) {
        let user_type = key.user_type.as_deref().unwrap_or("");
        let name = key.user_name.as_deref().filter(|n| !n.is_empty());
        let key_id = key.access_key_id.as_deref().unwrap_or("");
        match (user_type, name) {
            ("IAMUser", Some(user)) => {
                if key_id.starts_with("AKIA") {
                    self.push_step(deactivate_access_key_step(user, key_id));
                } else if key_id.starts_with("ASIA") {
                    self.notes.push(format!(
                        "{key_id} is a temporary (STS) credential: it cannot be deactivated, so the user's sessions are revoked instead"
                    ));
                } else {
                    self.notes.push(format!(
                        "access key id `{key_id}` is not a long-term key (AKIA…): it is not deactivated; the user's sessions are revoked"
                    ));
                }
                self.push(
                    Action::RevokeUserSessions,
                    Target::User {
                        user_name: user.into(),
                    },
                    serde_json::json!({"UserName": user, "PolicyName": SESSION_REVOKE_POLICY}),
                );
                self.push(
                    Action::QuarantineUser,
                    Target::User {
                        user_name: user.into(),
                    },
                    serde_json::json!({"UserName": user, "PolicyName": QUARANTINE_USER_POLICY}),
                );
                if self.steps.iter().any(|s| s.service == "iam") {
                    self.notes
                        .push("IAM changes take a few minutes to propagate".into());
                }
            }
            ("AssumedRole", Some(role)) => {
                self.push(
                    Action::RevokeRoleSessions,
                    Target::Role {
                        role_name: role.into(),
                    },
                    serde_json::json!({"RoleName": role, "PolicyName": SESSION_REVOKE_POLICY}),
                );
                self.notes.push(format!(
                    "a session of role {role} is misused: every session of the role issued before approval is revoked (what the console's \"Revoke active sessions\" does); IAM changes take a few minutes to propagate"
                ));
            }
            ("Root", _) => self.notes.push(format!(
                "notify only: the root user is involved. {ROOT_MANUAL_STEPS}"
            )),
            ("IAMUser" | "AssumedRole", None) => self.notes.push(format!(
                "notify only: the finding names a {user_type} but no user or role name"
            )),
            (other, _) => {
                let why = match other {
                    "" => "the finding does not say what kind of principal this is".to_string(),
                    "AWSService" => "the principal is an AWS service acting for the account".to_string(),
                    "FederatedUser" => "a federated user's token cannot be revoked unless the finding names the IAM user that minted it".to_string(),
                    "Role" => "the principal type `Role` does not name a session hanko can revoke".to_string(),
                    _ => format!("principal type `{other}` is not one hanko can safely contain"),
                };
                let prefix = if primary {
                    "notify only"
                } else {
                    "actor not contained"
                };
                self.notes.push(format!("{prefix}: {why}"));
            }
        }
    }

    fn block_buckets(&mut self) {
        let buckets: Vec<_> = self
            .finding
            .resource
            .s3_buckets
            .iter()
            .filter_map(|b| b.name.as_deref().map(|n| (n.to_string(), b)))
            .collect();
        if buckets.is_empty() {
            self.notes
                .push("notify only: the finding names no bucket to protect".into());
            return;
        }
        for (name, details) in buckets {
            let tags = details
                .tags
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()));
            if let Some((k, v)) = self.playbooks.exempting_tag(tags) {
                self.notes.push(format!(
                    "bucket {name} is exempt (tag {k}={v}): not touched"
                ));
                continue;
            }
            self.push_step(block_bucket_public_access_step(&name));
            self.push(
                Action::EnforceBucketOwnership,
                Target::Bucket {
                    bucket: name.clone(),
                },
                serde_json::json!({"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}),
            );
        }
    }

    fn instance(&mut self) {
        let Some(inst) = self.finding.resource.instance.as_ref() else {
            self.notes
                .push("notify only: the finding names no instance details".into());
            return;
        };
        let Some(id) = inst.instance_id.as_deref().filter(|i| !i.is_empty()) else {
            self.notes
                .push("notify only: the finding names no instance id".into());
            return;
        };
        let tags = inst.tags.iter().map(|t| (t.key.as_str(), t.value.as_str()));
        if let Some((k, v)) = self.playbooks.exempting_tag(tags) {
            self.notes.push(format!(
                "notify only: instance {id} is exempt (tag {k}={v})"
            ));
            return;
        }
        let target = || Target::Instance {
            instance_id: id.to_string(),
        };
        let base = serde_json::json!({ "InstanceId": id });
        self.push(Action::SnapshotVolumes, target(), base.clone());
        self.push(Action::EnableTerminationProtection, target(), base.clone());
        self.push(Action::SetShutdownBehaviorStop, target(), base.clone());
        self.push(Action::PreserveVolumes, target(), base.clone());
        let interfaces: Vec<&str> = inst
            .network_interfaces
            .iter()
            .filter_map(|n| n.network_interface_id.as_deref())
            .collect();
        self.push(
            Action::IsolateInstance,
            target(),
            serde_json::json!({
                "InstanceId": id,
                "KnownNetworkInterfaces": interfaces,
                "TransitionGroupName": TRANSITION_GROUP,
                "QuarantineGroupName": QUARANTINE_GROUP,
            }),
        );
        self.push(
            Action::TagInstance,
            target(),
            serde_json::json!({ "InstanceId": id, "TagKey": TAG_QUARANTINE }),
        );
        self.push(Action::DetachInstanceProfile, target(), base.clone());
        self.push(Action::StopInstance, target(), base);
        if self
            .steps
            .iter()
            .any(|s| s.action == Action::IsolateInstance)
        {
            self.notes.push(
                "isolation moves every network interface of the instance (as found at execution) first to an all-traffic group, then to the empty quarantine group, so tracked connections are dropped; connections that stay tracked (e.g. through a load balancer) need a network ACL or a stop".into(),
            );
        }
        self.notes.push(
            "evidence first: if the snapshot fails, isolation and later steps do not run unless the approval overrides"
                .into(),
        );
    }
}

/// A line of guidance for resource types hanko does not contain.
fn guidance(kind: &str) -> &'static str {
    match kind {
        "EKSCluster" => "review the Kubernetes user and workload in the finding; revoke its RBAC bindings or cordon the node",
        "ECSCluster" | "Container" => "stop the task or container named in the finding and review its image",
        "RDSDBInstance" | "RDSLimitlessDB" => "rotate the database user's password and review its login activity",
        "Lambda" => "set the function's reserved concurrency to 0 and review its recent changes",
        "EC2NetworkInterface" => "look up the instance behind the interface and contain it with /contain",
        _ => "follow the finding's remediation guidance in the GuardDuty console",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{
        AccessKeyDetails, FindingSource, InstanceDetails, NetworkInterface, Resource,
        S3BucketDetails, SeverityLabel, Tag,
    };

    fn finding(ty: &str, kind: ResourceKind) -> Finding {
        Finding {
            id: "f-1".into(),
            arn: None,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            finding_type: ty.into(),
            severity: 8.0,
            severity_label: SeverityLabel::High,
            title: "t".into(),
            description: "d".into(),
            created_at: None,
            updated_at: None,
            first_seen: None,
            last_seen: None,
            count: 1,
            archived: false,
            sample: false,
            source: FindingSource::GuardDuty,
            resource: Resource {
                kind,
                access_key: None,
                instance: None,
                s3_buckets: Vec::new(),
            },
            actor: Default::default(),
        }
    }

    fn key(user_type: &str, key_id: &str, name: &str) -> Option<AccessKeyDetails> {
        Some(AccessKeyDetails {
            access_key_id: Some(key_id.into()),
            principal_id: Some("AIDAEXAMPLE".into()),
            user_name: Some(name.into()),
            user_type: Some(user_type.into()),
        })
    }

    fn bucket(name: &str, tags: &[(&str, &str)]) -> S3BucketDetails {
        S3BucketDetails {
            name: Some(name.into()),
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn instance(id: &str, tags: &[(&str, &str)]) -> Option<InstanceDetails> {
        Some(InstanceDetails {
            instance_id: Some(id.into()),
            network_interfaces: vec![NetworkInterface {
                network_interface_id: Some("eni-1".into()),
                ..Default::default()
            }],
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        })
    }

    fn actions(p: &Plan) -> Vec<Action> {
        p.steps.iter().map(|s| s.action).collect()
    }

    const EC2_DEFAULT: [Action; 6] = [
        Action::SnapshotVolumes,
        Action::EnableTerminationProtection,
        Action::SetShutdownBehaviorStop,
        Action::PreserveVolumes,
        Action::IsolateInstance,
        Action::TagInstance,
    ];

    #[test]
    fn routing_table() {
        use Action::*;
        let iam_user = |id: &str| {
            let mut f = finding(
                "UnauthorizedAccess:IAMUser/TorIPCaller",
                ResourceKind::AccessKey,
            );
            f.resource.access_key = key("IAMUser", id, "alice");
            f
        };
        let mut bucket_exposed = finding(
            "Policy:S3/BucketPublicAccessGranted",
            ResourceKind::AccessKey,
        );
        bucket_exposed.resource.access_key = key("IAMUser", "AKIAADMIN", "admin");
        bucket_exposed.resource.s3_buckets = vec![bucket("public-bucket", &[])];
        // Sample findings carry instanceDetails on AccessKey findings: must be ignored.
        bucket_exposed.resource.instance = instance("i-99999999", &[]);

        let mut account_bpa = finding(
            "Policy:S3/AccountBlockPublicAccessDisabled",
            ResourceKind::AccessKey,
        );
        account_bpa.resource.access_key = key("IAMUser", "AKIAADMIN", "admin");
        let mut logging = finding(
            "Stealth:S3/ServerAccessLoggingDisabled",
            ResourceKind::AccessKey,
        );
        logging.resource.s3_buckets = vec![bucket("b", &[])];
        let mut assumed = finding(
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            ResourceKind::AccessKey,
        );
        assumed.resource.access_key = key("AssumedRole", "ASIAROLE", "web-role");
        let mut root = finding(
            "Policy:IAMUser/RootCredentialUsage",
            ResourceKind::AccessKey,
        );
        root.resource.access_key = key("Root", "ASIAROOT", "Root");
        let mut root2 = finding("Recon:IAMUser/MaliciousIPCaller", ResourceKind::AccessKey);
        root2.resource.access_key = key("Root", "AKIAROOT", "Root");
        let mut service = finding("Recon:IAMUser/MaliciousIPCaller", ResourceKind::AccessKey);
        service.resource.access_key = key("AWSService", "AKIAX", "svc");
        let mut federated = finding("Recon:IAMUser/MaliciousIPCaller", ResourceKind::AccessKey);
        federated.resource.access_key = key("FederatedUser", "ASIAX", "fed");
        let mut placeholder = finding(
            "CredentialAccess:IAMUser/AnomalousBehavior",
            ResourceKind::AccessKey,
        );
        placeholder.resource.access_key = key(
            "GeneratedFindingUserType",
            "GeneratedFindingAccessKeyId",
            "u",
        );
        let mut ec2 = finding("CryptoCurrency:EC2/BitcoinTool.B", ResourceKind::Instance);
        ec2.resource.instance = instance("i-0abc", &[]);
        let mut s3data = finding("Exfiltration:S3/ObjectRead.Unusual", ResourceKind::S3Bucket);
        s3data.resource.s3_buckets = vec![bucket("data", &[])];
        s3data.resource.access_key = key("IAMUser", "AKIATHIEF", "thief");
        let mut s3role = finding("Discovery:S3/MaliciousIPCaller", ResourceKind::S3Bucket);
        s3role.resource.s3_buckets = vec![bucket("data", &[])];
        s3role.resource.access_key = key("AssumedRole", "ASIAR", "etl-role");
        let eks = finding(
            "Execution:Kubernetes/ExecInKubeSystemPod",
            ResourceKind::Other("EKSCluster".into()),
        );

        let table: Vec<(&str, Finding, Vec<Action>)> = vec![
            (
                "AKIA key",
                iam_user("AKIAEXAMPLE"),
                vec![DeactivateAccessKey, RevokeUserSessions],
            ),
            (
                "ASIA key",
                iam_user("ASIAEXAMPLE"),
                vec![RevokeUserSessions],
            ),
            (
                "placeholder key",
                iam_user("GeneratedFindingAccessKeyId"),
                vec![RevokeUserSessions],
            ),
            (
                "bucket exposed",
                bucket_exposed,
                vec![BlockBucketPublicAccess],
            ),
            ("account BPA", account_bpa, vec![BlockAccountPublicAccess]),
            ("logging", logging, vec![]),
            ("assumed role", assumed, vec![RevokeRoleSessions]),
            ("root policy", root, vec![]),
            ("root recon", root2, vec![]),
            ("aws service", service, vec![]),
            ("federated", federated, vec![]),
            ("placeholder user type", placeholder, vec![]),
            ("instance", ec2, EC2_DEFAULT.to_vec()),
            (
                "s3 data event, IAM user",
                s3data,
                vec![
                    BlockBucketPublicAccess,
                    DeactivateAccessKey,
                    RevokeUserSessions,
                ],
            ),
            (
                "s3 data event, role",
                s3role,
                vec![BlockBucketPublicAccess, RevokeRoleSessions],
            ),
            ("eks", eks, vec![]),
        ];
        for (name, f, want) in table {
            let p = plan(&f, &Playbooks::defaults());
            assert_eq!(actions(&p), want, "{name}: {:?}", p.notes);
            if want.is_empty() {
                assert!(
                    p.notes.iter().any(|n| n.starts_with("notify only")),
                    "{name}: a notify-only plan must say why: {:?}",
                    p.notes
                );
            }
            // Scope: every step targets exactly the finding's resource.
            for s in &p.steps {
                match &s.target {
                    Target::AccessKey { access_key_id, .. } => {
                        assert!(access_key_id.starts_with("AKIA"), "{name}")
                    }
                    Target::Instance { instance_id } => assert_eq!(instance_id, "i-0abc"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn bucket_exposure_leaves_the_admin_key_alone() {
        let mut f = finding(
            "Policy:S3/BucketAnonymousAccessGranted",
            ResourceKind::AccessKey,
        );
        f.resource.access_key = key("IAMUser", "AKIAADMIN", "admin");
        f.resource.s3_buckets = vec![bucket("exposed", &[])];
        let p = plan(&f, &Playbooks::defaults());
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            p.steps[0].target,
            Target::Bucket {
                bucket: "exposed".into()
            }
        );
        assert_eq!(p.steps[0].operation, "s3:PutBucketPublicAccessBlock");
    }

    #[test]
    fn exempt_tags_and_playbook_overrides() {
        let mut f = finding("CryptoCurrency:EC2/BitcoinTool.B", ResourceKind::Instance);
        f.resource.instance = instance("i-0abc", &[("hanko:exempt", "true")]);
        let p = plan(&f, &Playbooks::defaults());
        assert!(p.steps.is_empty());
        assert!(
            p.notes.iter().any(|n| n.contains("exempt")),
            "{:?}",
            p.notes
        );

        f.resource.instance = instance("i-0abc", &[]);
        let books = Playbooks::parse(
            r#"
            [[rule]]
            name = "miners"
            types = ["CryptoCurrency:EC2/*"]
            enable = ["stop_instance", "detach_instance_profile"]
            disable = ["set_shutdown_behavior_stop"]
            [rule.risk]
            stop_instance = "contain"
            "#,
        )
        .unwrap();
        let p = plan(&f, &books);
        let mut want = EC2_DEFAULT.to_vec();
        want.retain(|a| *a != Action::SetShutdownBehaviorStop);
        want.extend([Action::DetachInstanceProfile, Action::StopInstance]);
        assert_eq!(actions(&p), want);
        let stop = p
            .steps
            .iter()
            .find(|s| s.action == Action::StopInstance)
            .unwrap();
        assert_eq!(stop.risk, RiskClass::Contain);
        let detach = p
            .steps
            .iter()
            .find(|s| s.action == Action::DetachInstanceProfile)
            .unwrap();
        assert_eq!(detach.risk, RiskClass::Disrupt);
        assert_eq!(p.max_risk(), Some(RiskClass::Disrupt));

        let notify = Playbooks::parse("[[rule]]\ntypes = [\"*\"]\nnotify_only = true\n").unwrap();
        assert!(plan(&f, &notify).steps.is_empty());
    }

    #[test]
    fn plan_hash_is_stable_and_content_sensitive() {
        let mut f = finding(
            "UnauthorizedAccess:IAMUser/TorIPCaller",
            ResourceKind::AccessKey,
        );
        f.resource.access_key = key("IAMUser", "AKIAEXAMPLE", "alice");
        let a = plan(&f, &Playbooks::defaults());
        let b = plan(&f, &Playbooks::defaults());
        assert_eq!(a.plan_hash, b.plan_hash);
        assert_eq!(a.plan_hash.len(), 64);
        assert_eq!(a.plan_hash, a.compute_hash());
        // Severity and counts do not change the plan; the target does.
        f.count = 9;
        f.severity = 2.0;
        assert_eq!(plan(&f, &Playbooks::defaults()).plan_hash, a.plan_hash);
        f.resource.access_key = key("IAMUser", "AKIAOTHER", "alice");
        assert_ne!(plan(&f, &Playbooks::defaults()).plan_hash, a.plan_hash);
    }

    #[test]
    fn archived_and_sample_findings() {
        let mut f = finding(
            "UnauthorizedAccess:IAMUser/TorIPCaller",
            ResourceKind::AccessKey,
        );
        f.resource.access_key = key("IAMUser", "AKIAEXAMPLE", "alice");
        f.sample = true;
        let p = plan(&f, &Playbooks::defaults());
        assert!(p.sample);
        assert!(p.notes[0].starts_with("SAMPLE"));
        assert_eq!(p.steps.len(), 2);
        f.archived = true;
        assert!(plan(&f, &Playbooks::defaults()).steps.is_empty());
    }
}
