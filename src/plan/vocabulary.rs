//! The plan's vocabulary: risk classes, actions, targets, steps, the plan and its content
//! hash (SHA-256 of the canonical JSON of the finding id, account, region and steps: a vote
//! is for one hash, so a changed plan never inherits votes), and the names of what the steps
//! create (policies, security groups, the quarantine tag).
//!
//! Pure core: uses serde and sha2 only. Everything that speaks of plans imports this, including
//! [`crate::playbooks`] and the AWS step modules; it imports none of them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How disruptive a step is; the policy asks for more approvers for higher classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskClass {
    /// Snapshots and tags: nothing stops working.
    Evidence,
    /// Deactivate a key, revoke sessions, isolate, block public access.
    Contain,
    /// Stop an instance, quarantine a user, detach an instance profile.
    Disrupt,
}

impl RiskClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::Evidence => "evidence",
            RiskClass::Contain => "contain",
            RiskClass::Disrupt => "disrupt",
        }
    }

    pub fn parse(s: &str) -> Option<RiskClass> {
        match s {
            "evidence" => Some(RiskClass::Evidence),
            "contain" => Some(RiskClass::Contain),
            "disrupt" => Some(RiskClass::Disrupt),
            _ => None,
        }
    }
}

/// One kind of containment step. Each maps to exactly one mutating AWS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    // IAM
    DeactivateAccessKey,
    RevokeUserSessions,
    RevokeRoleSessions,
    QuarantineUser,
    // EC2, in the order they run
    SnapshotVolumes,
    EnableTerminationProtection,
    SetShutdownBehaviorStop,
    PreserveVolumes,
    IsolateInstance,
    TagInstance,
    DetachInstanceProfile,
    StopInstance,
    // S3
    BlockBucketPublicAccess,
    EnforceBucketOwnership,
    // S3 Control (account level)
    BlockAccountPublicAccess,
    // Security Hub (posture)
    SuppressFindings,
}

impl Action {
    pub const ALL: [Action; 16] = [
        Action::DeactivateAccessKey,
        Action::RevokeUserSessions,
        Action::RevokeRoleSessions,
        Action::QuarantineUser,
        Action::SnapshotVolumes,
        Action::EnableTerminationProtection,
        Action::SetShutdownBehaviorStop,
        Action::PreserveVolumes,
        Action::IsolateInstance,
        Action::TagInstance,
        Action::DetachInstanceProfile,
        Action::StopInstance,
        Action::BlockBucketPublicAccess,
        Action::EnforceBucketOwnership,
        Action::BlockAccountPublicAccess,
        Action::SuppressFindings,
    ];

    /// The snake_case name used in JSON and in `playbooks.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DeactivateAccessKey => "deactivate_access_key",
            Action::RevokeUserSessions => "revoke_user_sessions",
            Action::RevokeRoleSessions => "revoke_role_sessions",
            Action::QuarantineUser => "quarantine_user",
            Action::SnapshotVolumes => "snapshot_volumes",
            Action::EnableTerminationProtection => "enable_termination_protection",
            Action::SetShutdownBehaviorStop => "set_shutdown_behavior_stop",
            Action::PreserveVolumes => "preserve_volumes",
            Action::IsolateInstance => "isolate_instance",
            Action::TagInstance => "tag_instance",
            Action::DetachInstanceProfile => "detach_instance_profile",
            Action::StopInstance => "stop_instance",
            Action::BlockBucketPublicAccess => "block_bucket_public_access",
            Action::EnforceBucketOwnership => "enforce_bucket_ownership",
            Action::BlockAccountPublicAccess => "block_account_public_access",
            Action::SuppressFindings => "suppress_findings",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// `iam`, `ec2`, `s3`, `s3control` or `securityhub`.
    pub fn service(self) -> &'static str {
        match self {
            Action::SuppressFindings => "securityhub",
            Action::BlockAccountPublicAccess => "s3control",
            Action::DeactivateAccessKey
            | Action::RevokeUserSessions
            | Action::RevokeRoleSessions
            | Action::QuarantineUser => "iam",
            Action::BlockBucketPublicAccess | Action::EnforceBucketOwnership => "s3",
            _ => "ec2",
        }
    }

    /// The mutating operation, as IAM policies name it.
    pub fn operation(self) -> &'static str {
        match self {
            Action::DeactivateAccessKey => "iam:UpdateAccessKey",
            Action::RevokeUserSessions | Action::QuarantineUser => "iam:PutUserPolicy",
            Action::RevokeRoleSessions => "iam:PutRolePolicy",
            Action::SnapshotVolumes => "ec2:CreateSnapshot",
            Action::EnableTerminationProtection
            | Action::SetShutdownBehaviorStop
            | Action::PreserveVolumes => "ec2:ModifyInstanceAttribute",
            Action::IsolateInstance => "ec2:ModifyNetworkInterfaceAttribute",
            Action::TagInstance => "ec2:CreateTags",
            Action::DetachInstanceProfile => "ec2:DisassociateIamInstanceProfile",
            Action::StopInstance => "ec2:StopInstances",
            Action::BlockBucketPublicAccess => "s3:PutBucketPublicAccessBlock",
            Action::EnforceBucketOwnership => "s3:PutBucketOwnershipControls",
            // S3 Control's PutPublicAccessBlock, as IAM names its permission.
            Action::BlockAccountPublicAccess => "s3:PutAccountPublicAccessBlock",
            Action::SuppressFindings => "securityhub:BatchUpdateFindings",
        }
    }

    /// The risk class a step of this kind has unless a playbook says otherwise.
    pub fn default_risk(self) -> RiskClass {
        match self {
            // A suppression changes what people see, not what runs.
            Action::SnapshotVolumes | Action::TagInstance | Action::SuppressFindings => {
                RiskClass::Evidence
            }
            Action::QuarantineUser | Action::DetachInstanceProfile | Action::StopInstance => {
                RiskClass::Disrupt
            }
            _ => RiskClass::Contain,
        }
    }

    /// Steps that are off unless a playbook switches them on.
    pub fn is_opt_in(self) -> bool {
        matches!(
            self,
            Action::QuarantineUser
                | Action::DetachInstanceProfile
                | Action::StopInstance
                | Action::EnforceBucketOwnership
        )
    }

    /// Evidence steps: when one fails, destructive steps after it do not run unless the
    /// approval carried an explicit override.
    pub fn is_evidence(self) -> bool {
        matches!(self, Action::SnapshotVolumes)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exactly the resource a step touches. Account and region come from the plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    AccessKey {
        user_name: String,
        access_key_id: String,
    },
    User {
        user_name: String,
    },
    Role {
        role_name: String,
    },
    Instance {
        instance_id: String,
    },
    Bucket {
        bucket: String,
    },
    /// An account-wide setting of the plan's account (S3 Block Public Access).
    Account {
        account_id: String,
    },
    /// Security Hub control findings (ASFF `Id`s) of one control in the plan's account.
    ControlFindings {
        control_id: String,
        finding_ids: Vec<String>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AccessKey {
                user_name,
                access_key_id,
            } => write!(f, "access key {access_key_id} of user {user_name}"),
            Target::User { user_name } => write!(f, "user {user_name}"),
            Target::Role { role_name } => write!(f, "role {role_name}"),
            Target::Instance { instance_id } => write!(f, "instance {instance_id}"),
            Target::Bucket { bucket } => write!(f, "bucket {bucket}"),
            Target::Account { account_id } => write!(f, "account {account_id}"),
            Target::ControlFindings {
                control_id,
                finding_ids,
            } => write!(
                f,
                "{} finding(s) of control {control_id}",
                finding_ids.len()
            ),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    /// `iam`, `ec2`, `s3`.
    pub service: String,
    /// The mutating operation, e.g. `iam:UpdateAccessKey`.
    pub operation: String,
    pub target: Target,
    /// The exact parameters of the call (an object; keys sorted in the canonical encoding).
    pub parameters: serde_json::Value,
    pub risk: RiskClass,
}

impl Step {
    pub fn new(action: Action, target: Target, parameters: serde_json::Value) -> Self {
        Step {
            action,
            service: action.service().to_string(),
            operation: action.operation().to_string(),
            target,
            parameters,
            risk: action.default_risk(),
        }
    }

    /// One line for people: `iam:UpdateAccessKey AKIA… → Inactive`.
    pub fn summary(&self) -> String {
        let p = &self.parameters;
        let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
        match self.action {
            Action::DeactivateAccessKey => {
                format!("{} {} → Inactive", self.operation, s("AccessKeyId"))
            }
            Action::RevokeUserSessions => format!(
                "{} {}: deny all for sessions issued before approval",
                self.operation,
                s("UserName")
            ),
            Action::RevokeRoleSessions => format!(
                "{} {}: deny all for sessions issued before approval",
                self.operation,
                s("RoleName")
            ),
            Action::QuarantineUser => {
                format!(
                    "{} {}: deny all, no condition",
                    self.operation,
                    s("UserName")
                )
            }
            Action::SnapshotVolumes => {
                format!("{} every volume of {}", self.operation, s("InstanceId"))
            }
            Action::EnableTerminationProtection => format!(
                "{} {} DisableApiTermination=true",
                self.operation,
                s("InstanceId")
            ),
            Action::SetShutdownBehaviorStop => format!(
                "{} {} InstanceInitiatedShutdownBehavior=stop",
                self.operation,
                s("InstanceId")
            ),
            Action::PreserveVolumes => format!(
                "{} {} DeleteOnTermination=false on every volume",
                self.operation,
                s("InstanceId")
            ),
            Action::IsolateInstance => format!(
                "{} every interface of {} → {} (via {})",
                self.operation,
                s("InstanceId"),
                s("QuarantineGroupName"),
                s("TransitionGroupName")
            ),
            Action::TagInstance => format!(
                "{} {} {}=<request id>",
                self.operation,
                s("InstanceId"),
                s("TagKey")
            ),
            Action::DetachInstanceProfile => {
                format!("{} {}", self.operation, s("InstanceId"))
            }
            Action::StopInstance => format!("{} {}", self.operation, s("InstanceId")),
            Action::BlockBucketPublicAccess => {
                format!("{} {}: all four flags true", self.operation, s("Bucket"))
            }
            Action::EnforceBucketOwnership => {
                format!("{} {} BucketOwnerEnforced", self.operation, s("Bucket"))
            }
            Action::BlockAccountPublicAccess => format!(
                "{} account {}: all four flags true",
                self.operation,
                s("AccountId")
            ),
            Action::SuppressFindings => {
                let n = p
                    .get("FindingIdentifiers")
                    .and_then(|v| v.as_array())
                    .map_or(0, |a| a.len());
                format!(
                    "{} {n} finding(s) of {} → Workflow SUPPRESSED, note with the reason",
                    self.operation,
                    s("ControlId")
                )
            }
        }
    }
}

/// The containment plan for one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub finding_id: String,
    pub account_id: String,
    pub region: String,
    /// The finding is one of GuardDuty's generated samples: show it as such everywhere.
    pub sample: bool,
    pub steps: Vec<Step>,
    /// Why the plan is what it is; for notify-only plans, why there are no steps and what a
    /// person should do instead.
    pub notes: Vec<String>,
    /// Hex SHA-256 of the canonical encoding, see [`Plan::compute_hash`].
    pub plan_hash: String,
}

impl Plan {
    /// Builds a plan and computes its hash.
    pub fn new(
        finding_id: String,
        account_id: String,
        region: String,
        sample: bool,
        steps: Vec<Step>,
        notes: Vec<String>,
    ) -> Self {
        let mut plan = Plan {
            finding_id,
            account_id,
            region,
            sample,
            steps,
            notes,
            plan_hash: String::new(),
        };
        plan.plan_hash = plan.compute_hash();
        plan
    }

    /// SHA-256 over the canonical JSON (sorted keys, no whitespace) of the finding id, the
    /// account, the region and the steps. Notes are commentary and not hashed.
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!({
            "finding_id": self.finding_id,
            "account_id": self.account_id,
            "region": self.region,
            "steps": self.steps,
        });
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// A plan with no steps only notifies.
    pub fn is_notify_only(&self) -> bool {
        self.steps.is_empty()
    }

    /// The highest risk class of any step (`None` for a notify-only plan).
    pub fn max_risk(&self) -> Option<RiskClass> {
        self.steps.iter().map(|s| s.risk).max()
    }
}

/// Name of the inline deny policy that revokes sessions issued before a cut-off.
pub const SESSION_REVOKE_POLICY: &str = "hanko-revoke-older-sessions";
/// Name of the inline deny-all policy of the opt-in "quarantine user" step.
pub const QUARANTINE_USER_POLICY: &str = "hanko-quarantine";
/// Name of the per-VPC security group with no rules that isolates an instance.
pub const QUARANTINE_GROUP: &str = "hanko-quarantine";
/// Name of the per-VPC all-traffic group used for the first phase of isolation.
pub const TRANSITION_GROUP: &str = "hanko-isolation-transition";
/// Tag hanko puts on quarantined instances.
pub const TAG_QUARANTINE: &str = "hanko:quarantine";
