//! Findings: the one normalized [`Finding`] type and the parsers for the three shapes a
//! finding arrives in.
//!
//! * the GuardDuty API JSON (one finding, or the `{"findings": [...]}` that `GetFindings`
//!   returns): [`parse_guardduty_json`];
//! * the EventBridge event (`"source": "aws.guardduty"`, `"detail-type": "GuardDuty Finding"`,
//!   and Security Hub's `Findings - Imported` / `Findings - Custom Action`): [`parse_eventbridge`];
//! * ASFF, the Security Hub format (GuardDuty's product and any other): [`parse_asff`].
//!
//! [`parse_document`] looks at a document and picks the right parser.
//!
//! This module is part of the pure core: no I/O, no AWS SDK, no serenity, no sled. Input is
//! never trusted: every parser returns a [`ParseError`] naming the JSON path of the first
//! problem and never panics. Unknown resource types and missing optional fields are normal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A GuardDuty-style severity label, from the numeric score.
///
/// GuardDuty's bands: Low < 4.0 ≤ Medium < 7.0 ≤ High < 9.0 ≤ Critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeverityLabel {
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityLabel {
    /// The label for a GuardDuty severity score (0.0 to 10.0).
    pub fn from_score(score: f64) -> Self {
        if score >= 9.0 {
            SeverityLabel::Critical
        } else if score >= 7.0 {
            SeverityLabel::High
        } else if score >= 4.0 {
            SeverityLabel::Medium
        } else {
            SeverityLabel::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SeverityLabel::Low => "Low",
            SeverityLabel::Medium => "Medium",
            SeverityLabel::High => "High",
            SeverityLabel::Critical => "Critical",
        }
    }
}

/// Where a finding came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingSource {
    /// The GuardDuty API (or its EventBridge event, which carries the same document).
    GuardDuty,
    /// Security Hub, in ASFF; `product_arn` names the product that produced it.
    SecurityHub { product_arn: String },
}

/// The kind of resource a finding is about: `resource.resourceType` for GuardDuty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name")]
pub enum ResourceKind {
    AccessKey,
    Instance,
    S3Bucket,
    /// Anything else (`EKSCluster`, `Container`, `RDSDBInstance`, `Lambda`, ...), kept by name.
    Other(String),
}

impl ResourceKind {
    pub fn from_guardduty(s: &str) -> Self {
        match s {
            "AccessKey" => ResourceKind::AccessKey,
            "Instance" => ResourceKind::Instance,
            "S3Bucket" => ResourceKind::S3Bucket,
            other => ResourceKind::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ResourceKind::AccessKey => "AccessKey",
            ResourceKind::Instance => "Instance",
            ResourceKind::S3Bucket => "S3Bucket",
            ResourceKind::Other(s) => s,
        }
    }
}

/// `resource.accessKeyDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyDetails {
    pub access_key_id: Option<String>,
    pub principal_id: Option<String>,
    pub user_name: Option<String>,
    /// `IAMUser`, `AssumedRole`, `Root`, `AWSService`, `FederatedUser`, `Role`, or anything else.
    pub user_type: Option<String>,
}

/// A security group as the finding names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRef {
    pub group_id: Option<String>,
    pub group_name: Option<String>,
}

/// One network interface of an instance, as the finding names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub network_interface_id: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub security_groups: Vec<SecurityGroupRef>,
}

/// A key/value tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// `resource.instanceDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDetails {
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub instance_state: Option<String>,
    pub availability_zone: Option<String>,
    pub image_id: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub instance_profile_id: Option<String>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub tags: Vec<Tag>,
}

/// The public-access facts of one bucket, as GuardDuty reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketPublicAccess {
    /// `PUBLIC` or `NOT_PUBLIC`.
    pub effective_permission: Option<String>,
    /// Bucket-level block public access flags, when reported.
    pub bucket_block_public_access: Option<BlockPublicAccessFlags>,
    /// Account-level block public access flags, when reported.
    pub account_block_public_access: Option<BlockPublicAccessFlags>,
    pub acl_allows_public_read: Option<bool>,
    pub acl_allows_public_write: Option<bool>,
    pub policy_allows_public_read: Option<bool>,
    pub policy_allows_public_write: Option<bool>,
}

/// The four S3 block-public-access flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPublicAccessFlags {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// One entry of `resource.s3BucketDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3BucketDetails {
    pub name: Option<String>,
    pub arn: Option<String>,
    /// `Destination`, `Source`, ...
    pub bucket_type: Option<String>,
    pub public_access: Option<BucketPublicAccess>,
    pub tags: Vec<Tag>,
}

/// What the finding is about. `kind` is `resource.resourceType`; routing uses it and the
/// details it names, never the mere presence of a details object (sample findings carry
/// `instanceDetails` on AccessKey and S3Bucket findings too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    pub access_key: Option<AccessKeyDetails>,
    pub instance: Option<InstanceDetails>,
    pub s3_buckets: Vec<S3BucketDetails>,
}

/// What the finding says about the actor: who called, from where, doing what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorInfo {
    /// `service.action.actionType`: `AWS_API_CALL`, `NETWORK_CONNECTION`, `PORT_PROBE`, `DNS_REQUEST`, ...
    pub action_type: Option<String>,
    pub caller_ip: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub organization: Option<String>,
    /// The API called, for `AWS_API_CALL`.
    pub api: Option<String>,
    /// The service the API belongs to, for `AWS_API_CALL`.
    pub service_name: Option<String>,
    /// The domain asked for, for `DNS_REQUEST`.
    pub domain: Option<String>,
}

impl ActorInfo {
    pub fn is_empty(&self) -> bool {
        *self == ActorInfo::default()
    }
}

/// One normalized finding, whichever shape it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The GuardDuty finding id (for ASFF of GuardDuty, the last segment of the ARN), or the
    /// ASFF `Id` for other products. This is the deduplication key across sources.
    pub id: String,
    pub arn: Option<String>,
    pub account_id: String,
    pub region: String,
    /// `Recon:IAMUser/MaliciousIPCaller` and the like.
    pub finding_type: String,
    /// 0.0 to 10.0, GuardDuty's scale.
    pub severity: f64,
    pub severity_label: SeverityLabel,
    pub title: String,
    pub description: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub count: u64,
    pub archived: bool,
    /// GuardDuty's generated sample findings (`service.additionalInfo.sample: true`).
    pub sample: bool,
    pub source: FindingSource,
    pub resource: Resource,
    pub actor: ActorInfo,
}

/// A malformed finding document. `path` is a JSON path such as `$.findings[2].severity`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("{path}: missing required field")]
    Missing { path: String },
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("$: not a finding document this parser knows ({0})")]
    UnknownShape(String),
}

impl ParseError {
    /// The JSON path of the problem, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParseError::Missing { path }
            | ParseError::WrongType { path, .. }
            | ParseError::Invalid { path, .. } => Some(path),
            ParseError::NotJson(_) => None,
            ParseError::UnknownShape(_) => Some("$"),
        }
    }
}
