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
//! One idea a file: this file holds the types, the id checks, the shape dispatch and the
//! checks of values every parser reads (account, region, score); `guardduty` the GuardDuty
//! API shape (and the `Action` block ASFF shares with it), `asff` Security Hub's format,
//! `eventbridge` the event envelope, and `json` the path-tracking reader they all read
//! with (also used by [`crate::posture`]) and the builder the pollers write with.
//!
//! This module is part of the pure core: no I/O, no AWS SDK, no serenity, no sled; it uses
//! [`crate::ids`] for regions and console links. Input is
//! never trusted: every parser returns a [`ParseError`] naming the JSON path of the first
//! problem and never panics. Unknown resource types and missing optional fields are normal.
//!
//! Choices worth knowing:
//!
//! * Required: id, account, region and type. `null` counts as absent everywhere. A missing
//!   severity is 0.0, a missing count 1.
//! * `resource.kind` comes from `resourceType` (ASFF: the first of `Resources`); every details
//!   object present is kept whatever the kind, because routing decides on the kind.
//! * The account id must be digits and the region a region name ([`crate::ids::is_region`]):
//!   both end up in role ARNs, client configuration and console links. The account is not
//!   held to 12 digits here: a published GuardDuty document (the Docker-socket runtime
//!   finding in the tests' fixtures) carries a 9-digit one, and it is kept rather than
//!   refused; the planner acts only in accounts it reaches, so such a finding only notifies.
//! * An EventBridge envelope's `region` stands in for a detail without one; its `account`
//!   never does (with delegated administration it is the administrator's account, and
//!   containment in the wrong account is worse than a rejected document).
//! * ASFF of GuardDuty keeps GuardDuty's id, type and score (see [`parse_asff`]), and its
//!   source stays `SecurityHub`; [`Finding::is_guardduty`] tells either way.

mod asff;
mod eventbridge;
mod guardduty;
pub(crate) mod json;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids;

use self::asff::{asff_document, is_guardduty_product, looks_like_asff};
pub use self::asff::{parse_asff, parse_asff_value};
use self::eventbridge::eventbridge_value;
pub use self::eventbridge::parse_eventbridge;
use self::guardduty::{guardduty_document, guardduty_finding, looks_like_guardduty};
pub use self::guardduty::{parse_guardduty_json, parse_guardduty_value};
use self::json::{parse_json, type_name, Arr};
pub(crate) use self::json::{snippet, Obj};

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

    /// `low`, `medium`, `high` or `critical`, in any case (the config's spelling).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(SeverityLabel::Low),
            "medium" => Some(SeverityLabel::Medium),
            "high" => Some(SeverityLabel::High),
            "critical" => Some(SeverityLabel::Critical),
            _ => None,
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

/// The longest GuardDuty finding id (GuardDuty's API reference: `findingIds`, 0 to 64 characters).
pub const MAX_GUARDDUTY_ID_CHARS: usize = 64;

/// The longest ASFF `Id` (Security Hub's API reference, `AwsSecurityFinding.Id`: at most 512).
pub const MAX_ASFF_ID_CHARS: usize = 512;

/// Checks a parsed finding's id before ingest stores it, so an id can never forge a log line,
/// a store key or a `custom_id`: a GuardDuty id (also when it comes inside ASFF from GuardDuty's
/// product) is 1 to 64 lowercase hexadecimal digits; any other ASFF `Id` is printable (no
/// control or line-separator characters, not blank) and at most 512 characters.
pub fn check_finding_id(f: &Finding) -> Result<(), ParseError> {
    let invalid = |path: &str, message: String| {
        Err(ParseError::Invalid {
            path: path.to_string(),
            message,
        })
    };
    let from_guardduty = match &f.source {
        FindingSource::GuardDuty => true,
        FindingSource::SecurityHub { product_arn } => is_guardduty_product(product_arn),
    };
    if let FindingSource::SecurityHub { .. } = &f.source {
        // The ASFF `Id` as sent: the ARN for GuardDuty's product (kept as `arn`), else the id.
        let raw = f.arn.as_deref().unwrap_or(&f.id);
        let chars = raw.chars().count();
        if chars > MAX_ASFF_ID_CHARS {
            return invalid(
                "$.Id",
                format!(
                    "the finding id is {chars} characters long; Security Hub ids are at most {MAX_ASFF_ID_CHARS}"
                ),
            );
        }
        if raw.trim().is_empty() || raw.chars().any(is_unprintable) {
            return invalid(
                "$.Id",
                format!(
                    "{} is not a printable finding id (it is blank or holds control characters)",
                    snippet(raw)
                ),
            );
        }
    }
    if from_guardduty && !is_guardduty_id(&f.id) {
        return invalid(
            if matches!(f.source, FindingSource::GuardDuty) {
                "$.id"
            } else {
                "$.Id"
            },
            format!(
                "{} is not a GuardDuty finding id (1 to {MAX_GUARDDUTY_ID_CHARS} lowercase hexadecimal digits)",
                snippet(&f.id)
            ),
        );
    }
    Ok(())
}

/// 1 to 64 lowercase hexadecimal digits, as GuardDuty writes finding ids.
pub fn is_guardduty_id(id: &str) -> bool {
    (1..=MAX_GUARDDUTY_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A character that must not reach a log line or a chat message from an id.
fn is_unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The resource kind of a finding that names no resource type.
const UNKNOWN_RESOURCE_TYPE: &str = "Unknown";

/// Looks at a document, decides which of the shapes above it is, and parses it.
pub fn parse_document(text: &str) -> Result<Vec<Finding>, ParseError> {
    let v = parse_json(text)?;
    match &v {
        Value::Array(items) => {
            // A bare list: ASFF (a Security Hub export) or, less often, GuardDuty findings.
            let guardduty = items
                .iter()
                .find_map(Value::as_object)
                .is_some_and(|first| looks_like_guardduty(first) && !looks_like_asff(first));
            if guardduty {
                each(&Arr::new(items, "$"), |f| guardduty_finding(f, None, false))
            } else {
                asff_document(&v)
            }
        }
        Value::Object(map) => {
            if map.contains_key("detail") {
                eventbridge_value(&v)
            } else if map.contains_key("Findings") || looks_like_asff(map) {
                asff_document(&v)
            } else if map.contains_key("findings") || looks_like_guardduty(map) {
                guardduty_document(&Obj::new(&v, "$")?)
            } else {
                Err(ParseError::UnknownShape(
                    "an object that is neither a GuardDuty finding, an ASFF finding, a \
                     GetFindings response nor an EventBridge event"
                        .into(),
                ))
            }
        }
        other => Err(ParseError::UnknownShape(format!(
            "a JSON {} at the top level",
            type_name(other)
        ))),
    }
}

impl Finding {
    /// True for a GuardDuty finding, whether it came from GuardDuty or through Security Hub.
    pub fn is_guardduty(&self) -> bool {
        match &self.source {
            FindingSource::GuardDuty => true,
            FindingSource::SecurityHub { product_arn } => is_guardduty_product(product_arn),
        }
    }

    /// A link to the finding in the AWS console: the GuardDuty console for GuardDuty findings,
    /// Security Hub's for the others. `None` when the region is not a region name (a stored
    /// finding is not trusted to build a link to another host) or the id is empty.
    pub fn console_url(&self) -> Option<String> {
        let region = self.region.as_str();
        if !ids::is_region(region) || self.id.is_empty() {
            return None;
        }
        let host = ids::console_host(region);
        if self.is_guardduty() {
            Some(format!(
                "https://{host}/guardduty/home?region={region}#/findings?macros=current&fId={}",
                ids::percent_encode(&self.id)
            ))
        } else {
            // The console's search filter `Id=\operator\:EQUALS\:<id>`, encoded twice as the
            // console itself writes it.
            Some(format!(
                "https://{host}/securityhub/home?region={region}#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A{}",
                ids::percent_encode(&ids::percent_encode(&self.id))
            ))
        }
    }
}

/// Every finding of a list, each parsed at its own path (`null` elements are skipped).
fn each<'a>(
    list: &Arr<'a>,
    parse: impl Fn(&Obj<'a>) -> Result<Finding, ParseError>,
) -> Result<Vec<Finding>, ParseError> {
    list.objects().map(|f| parse(&f?)).collect()
}

fn unknown_resource() -> Resource {
    Resource {
        kind: ResourceKind::Other(UNKNOWN_RESOURCE_TYPE.into()),
        access_key: None,
        instance: None,
        s3_buckets: Vec::new(),
    }
}

/// An account id: digits only (it goes into role ARNs). Deliberately not
/// [`ids::is_account_id`]'s 12 digits: see the module header.
pub(crate) fn account_id(s: &str, path: String) -> Result<String, ParseError> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(ParseError::Invalid {
            path,
            message: format!("{} is not an AWS account id (digits only)", snippet(s)),
        })
    }
}

/// A region name such as `us-east-1` ([`ids::is_region`]: it goes into URLs and client
/// configuration).
pub(crate) fn region_name(s: &str, path: String) -> Result<String, ParseError> {
    if ids::is_region(s) {
        Ok(s.to_string())
    } else {
        Err(ParseError::Invalid {
            path,
            message: format!("{} is not an AWS region name", snippet(s)),
        })
    }
}

/// A score in `0.0..=max`.
fn score(value: f64, max: f64, path: String) -> Result<f64, ParseError> {
    if value.is_finite() && (0.0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ParseError::Invalid {
            path,
            message: format!("severity {value} is outside 0 to {max}"),
        })
    }
}
