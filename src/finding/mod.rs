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
//!
//! Choices worth knowing:
//!
//! * Required: id, account, region and type. `null` counts as absent everywhere. A missing
//!   severity is 0.0, a missing count 1.
//! * `resource.kind` comes from `resourceType` (ASFF: the first of `Resources`); every details
//!   object present is kept whatever the kind, because routing decides on the kind.
//! * The account id must be digits and the region `[a-z0-9-]`: both end up in role ARNs,
//!   client configuration and console links.
//! * An EventBridge envelope's `region` stands in for a detail without one; its `account`
//!   never does (with delegated administration it is the administrator's account, and
//!   containment in the wrong account is worse than a rejected document).
//! * ASFF of GuardDuty keeps GuardDuty's id, type and score (see [`parse_asff`]), and its
//!   source stays `SecurityHub`; [`Finding::is_guardduty`] tells either way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// The resource part of the Security Hub product ARN of GuardDuty
/// (`arn:aws:securityhub:us-east-1::product/aws/guardduty`).
const GUARDDUTY_PRODUCT_RESOURCE: &str = "product/aws/guardduty";

/// The `source` of EventBridge events from GuardDuty and Security Hub.
const SOURCE_GUARDDUTY: &str = "aws.guardduty";
const SOURCE_SECURITYHUB: &str = "aws.securityhub";

/// The `detail-type` of a GuardDuty finding event, and the prefix of Security Hub's
/// `Security Hub Findings - Imported` / `- Custom Action`.
const DETAIL_TYPE_GUARDDUTY: &str = "GuardDuty Finding";
const DETAIL_TYPE_SECURITYHUB_PREFIX: &str = "Security Hub Findings";

/// The resource kind of a finding that names no resource type.
const UNKNOWN_RESOURCE_TYPE: &str = "Unknown";

/// The `ProductFields` key prefixes under which Security Hub carries GuardDuty's service fields:
/// older findings use bare keys (`count`), newer ones `aws/guardduty/service/count`.
const PRODUCT_FIELD_PREFIXES: [&str; 2] = ["", "aws/guardduty/service/"];

/// Parses GuardDuty API JSON: one finding object (camelCase), or the `{"findings": [...]}`
/// that `GetFindings` returns.
pub fn parse_guardduty_json(text: &str) -> Result<Vec<Finding>, ParseError> {
    guardduty_document(&Obj::new(&parse_json(text)?, "$")?)
}

/// Parses one GuardDuty finding object found at `path` (`$`, `$.findings[3]`, `$.detail`);
/// every error names a path below it.
pub fn parse_guardduty_value(v: &Value, path: &str) -> Result<Finding, ParseError> {
    guardduty_finding(&Obj::new(v, path)?, None, false)
}

/// Parses an EventBridge event: a GuardDuty finding (`source` `aws.guardduty`, `detail-type`
/// `GuardDuty Finding`) or Security Hub findings (`source` `aws.securityhub`, `detail.findings`
/// in ASFF). An envelope with neither `source` nor `detail-type` is accepted when its `detail`
/// looks like a GuardDuty finding or holds `findings`.
pub fn parse_eventbridge(text: &str) -> Result<Vec<Finding>, ParseError> {
    eventbridge_value(&parse_json(text)?)
}

/// Parses ASFF: one finding, a list of findings, or the `{"Findings": [...]}` that Security
/// Hub's `GetFindings` returns.
///
/// For GuardDuty's product (`.../product/aws/guardduty`) the finding becomes the GuardDuty
/// finding again: the id is the last `/`-segment of `Id` (the `Id` is kept as the ARN), the type
/// is read back from `Types` (`TTPs/Discovery/Recon:IAMUser-ResourcePermissions` ->
/// `Recon:IAMUser/ResourcePermissions`), the score is `Severity.Product` (else `Original`,
/// `Normalized / 10`, the label), and count, archived and the actor come from
/// `ProductFields` (bare keys or under `aws/guardduty/service/`). Other products keep `Id`,
/// the first of `Types` and `Normalized / 10` (else the label).
pub fn parse_asff(text: &str) -> Result<Vec<Finding>, ParseError> {
    asff_document(&parse_json(text)?)
}

/// Parses one ASFF finding object found at `path`.
pub fn parse_asff_value(v: &Value, path: &str) -> Result<Finding, ParseError> {
    asff_finding(&Obj::new(v, path)?)
}

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
        if !is_region_name(region) || self.id.is_empty() {
            return None;
        }
        let host = console_host(region);
        if self.is_guardduty() {
            Some(format!(
                "https://{host}/guardduty/home?region={region}#/findings?macros=current&fId={}",
                percent_encode(&self.id)
            ))
        } else {
            // The console's search filter `Id=\operator\:EQUALS\:<id>`, encoded twice as the
            // console itself writes it.
            Some(format!(
                "https://{host}/securityhub/home?region={region}#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A{}",
                percent_encode(&percent_encode(&self.id))
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

fn parse_json(text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))
}

/// Keys only a GuardDuty API finding (camelCase) has at its top level.
fn looks_like_guardduty(map: &Map<String, Value>) -> bool {
    [
        "id",
        "accountId",
        "schemaVersion",
        "type",
        "resource",
        "service",
        "arn",
        "severity",
    ]
    .iter()
    .any(|k| map.contains_key(*k))
}

/// Keys only an ASFF finding (PascalCase) has at its top level.
fn looks_like_asff(map: &Map<String, Value>) -> bool {
    [
        "ProductArn",
        "AwsAccountId",
        "SchemaVersion",
        "GeneratorId",
        "Id",
        "Types",
    ]
    .iter()
    .any(|k| map.contains_key(*k))
}

/// Every finding of a list, each parsed at its own path (`null` elements are skipped).
fn each<'a>(
    list: &Arr<'a>,
    parse: impl Fn(&Obj<'a>) -> Result<Finding, ParseError>,
) -> Result<Vec<Finding>, ParseError> {
    list.objects().map(|f| parse(&f?)).collect()
}

/// `{"findings": [...]}` (`"findings": null` is an empty response), or one finding.
fn guardduty_document(root: &Obj<'_>) -> Result<Vec<Finding>, ParseError> {
    if !root.map.contains_key("findings") {
        return Ok(vec![guardduty_finding(root, None, false)?]);
    }
    match root.arr("findings")? {
        Some(list) => each(&list, |f| guardduty_finding(f, None, false)),
        None => Ok(Vec::new()),
    }
}

/// A list of ASFF findings, `{"Findings": [...]}`, or one finding.
fn asff_document(v: &Value) -> Result<Vec<Finding>, ParseError> {
    if let Value::Array(items) = v {
        return each(&Arr::new(items, "$"), asff_finding);
    }
    let root = Obj::new(v, "$")?;
    if !root.map.contains_key("Findings") {
        return Ok(vec![asff_finding(&root)?]);
    }
    match root.arr("Findings")? {
        Some(list) => each(&list, asff_finding),
        None => Ok(Vec::new()),
    }
}

/// What an EventBridge event carries in its `detail`.
enum EventKind {
    GuardDuty,
    SecurityHub,
}

fn eventbridge_value(v: &Value) -> Result<Vec<Finding>, ParseError> {
    let env = Obj::new(v, "$")?;
    let source = env.str("source")?;
    let detail_type = env.str("detail-type")?;
    let detail = env.required_obj("detail")?;
    let is_sh_type = |dt: &str| dt.starts_with(DETAIL_TYPE_SECURITYHUB_PREFIX);
    let unknown = || {
        ParseError::UnknownShape(format!(
            "an EventBridge event with source {} and detail-type {}, not a finding event",
            source.map_or_else(|| "(none)".into(), snippet),
            detail_type.map_or_else(|| "(none)".into(), snippet),
        ))
    };
    let kind = match (source, detail_type) {
        (Some(SOURCE_GUARDDUTY), None | Some(DETAIL_TYPE_GUARDDUTY)) => EventKind::GuardDuty,
        (Some(SOURCE_SECURITYHUB), None) => EventKind::SecurityHub,
        (Some(SOURCE_SECURITYHUB), Some(dt)) if is_sh_type(dt) => EventKind::SecurityHub,
        (None, Some(DETAIL_TYPE_GUARDDUTY)) => EventKind::GuardDuty,
        (None, Some(dt)) if is_sh_type(dt) => EventKind::SecurityHub,
        (None, None) => {
            // A partial envelope (a hand-written test event): judge by the detail.
            if detail.map.contains_key("findings") {
                EventKind::SecurityHub
            } else if looks_like_guardduty(detail.map) {
                EventKind::GuardDuty
            } else {
                return Err(unknown());
            }
        }
        _ => return Err(unknown()),
    };
    match kind {
        EventKind::GuardDuty => {
            // The envelope's region is the finding's region; its account is the account that
            // emitted the event (the administrator's, with delegated administration), so only the
            // region may stand in for a detail that lacks it.
            let fallback_region = env.str("region")?.map(|r| (r, env.path_of("region")));
            Ok(vec![guardduty_finding(&detail, fallback_region, true)?])
        }
        EventKind::SecurityHub => each(&detail.required_arr("findings")?, asff_finding),
    }
}

// ---------------------------------------------------------------------------------------------
// GuardDuty API JSON
// ---------------------------------------------------------------------------------------------

/// One GuardDuty finding. `fallback_region` (value, path) stands in for a missing `region`;
/// `in_envelope` is true for the detail of an EventBridge event.
fn guardduty_finding(
    f: &Obj<'_>,
    fallback_region: Option<(&str, String)>,
    in_envelope: bool,
) -> Result<Finding, ParseError> {
    let id = f.required_str("id")?.to_string();
    // An EventBridge detail without `accountId` (seen in hand-made test events) is kept with
    // an unknown account rather than rejected: the planner makes such a finding notify-only,
    // so hanko never acts in an account it had to guess. The envelope's `account` is not used:
    // with delegated administration it is the administrator's account, not the finding's.
    let account_id = match f.str("accountId")? {
        Some(a) => account_id(a, f.path_of("accountId"))?,
        None if in_envelope => String::new(),
        None => account_id(f.required_str("accountId")?, f.path_of("accountId"))?,
    };
    let region = match (f.str("region")?, fallback_region) {
        (Some(r), _) => region_name(r, f.path_of("region"))?,
        (None, Some((r, path))) => region_name(r, path)?,
        (None, None) => {
            // In an event the envelope's `region` is the usual place; name that one.
            let path = if in_envelope {
                "$.region".to_string()
            } else {
                f.path_of("region")
            };
            return Err(ParseError::Missing { path });
        }
    };
    let finding_type = f.required_str("type")?.to_string();
    let severity = match f.f64("severity")? {
        Some(s) => score(s, 10.0, f.path_of("severity"))?,
        None => 0.0,
    };
    let service = f.obj("service")?;
    let (mut first_seen, mut last_seen, mut count, mut archived, mut sample) =
        (None, None, 1, false, false);
    let mut actor = ActorInfo::default();
    if let Some(s) = &service {
        first_seen = s.time("eventFirstSeen")?;
        last_seen = s.time("eventLastSeen")?;
        count = s.count("count")?.unwrap_or(1);
        archived = s.bool("archived")?.unwrap_or(false);
        if let Some(info) = s.obj("additionalInfo")? {
            sample = info.bool("sample")?.unwrap_or(false);
        }
        if let Some(action) = s.obj("action")? {
            read_action(&action, Case::Camel, &mut actor)?;
        }
    }
    Ok(Finding {
        id,
        arn: f.str("arn")?.map(str::to_string),
        account_id,
        region,
        finding_type,
        severity,
        severity_label: SeverityLabel::from_score(severity),
        title: f.string_or_empty("title")?,
        description: f.string_or_empty("description")?,
        created_at: f.time("createdAt")?,
        updated_at: f.time("updatedAt")?,
        first_seen,
        last_seen,
        count,
        archived,
        sample,
        source: FindingSource::GuardDuty,
        resource: guardduty_resource(f.obj("resource")?)?,
        actor,
    })
}

fn unknown_resource() -> Resource {
    Resource {
        kind: ResourceKind::Other(UNKNOWN_RESOURCE_TYPE.into()),
        access_key: None,
        instance: None,
        s3_buckets: Vec::new(),
    }
}

/// `resource`: the kind from `resourceType`, and every details object present whatever the kind.
fn guardduty_resource(r: Option<Obj<'_>>) -> Result<Resource, ParseError> {
    let Some(r) = r else {
        return Ok(unknown_resource());
    };
    let kind = match r.str("resourceType")? {
        Some(t) if !t.is_empty() => ResourceKind::from_guardduty(t),
        _ => ResourceKind::Other(UNKNOWN_RESOURCE_TYPE.into()),
    };
    let access_key = match r.obj("accessKeyDetails")? {
        Some(k) => Some(AccessKeyDetails {
            access_key_id: k.opt_string("accessKeyId")?,
            principal_id: k.opt_string("principalId")?,
            user_name: k.opt_string("userName")?,
            user_type: k.opt_string("userType")?,
        }),
        None => None,
    };
    let instance = match r.obj("instanceDetails")? {
        Some(i) => Some(guardduty_instance(&i)?),
        None => None,
    };
    let s3_buckets = match r.arr("s3BucketDetails")? {
        Some(list) => list
            .objects()
            .map(|b| guardduty_bucket(&b?))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok(Resource {
        kind,
        access_key,
        instance,
        s3_buckets,
    })
}

fn guardduty_instance(i: &Obj<'_>) -> Result<InstanceDetails, ParseError> {
    let (mut instance_profile_arn, mut instance_profile_id) = (None, None);
    if let Some(p) = i.obj("iamInstanceProfile")? {
        instance_profile_arn = p.opt_string("arn")?;
        instance_profile_id = p.opt_string("id")?;
    }
    let mut network_interfaces = Vec::new();
    if let Some(list) = i.arr("networkInterfaces")? {
        for ni in list.objects() {
            let ni = ni?;
            let mut private_ip = ni.opt_string("privateIpAddress")?;
            if private_ip.is_none() {
                if let Some(addrs) = ni.arr("privateIpAddresses")? {
                    if let Some(first) = addrs.objects().next() {
                        private_ip = first?.opt_string("privateIpAddress")?;
                    }
                }
            }
            let mut security_groups = Vec::new();
            if let Some(groups) = ni.arr("securityGroups")? {
                for g in groups.objects() {
                    let g = g?;
                    security_groups.push(SecurityGroupRef {
                        group_id: g.opt_string("groupId")?,
                        group_name: g.opt_string("groupName")?,
                    });
                }
            }
            network_interfaces.push(NetworkInterface {
                network_interface_id: ni.opt_string("networkInterfaceId")?,
                vpc_id: ni.opt_string("vpcId")?,
                subnet_id: ni.opt_string("subnetId")?,
                private_ip,
                public_ip: ni.opt_string("publicIp")?,
                security_groups,
            });
        }
    }
    Ok(InstanceDetails {
        instance_id: i.opt_string("instanceId")?,
        instance_type: i.opt_string("instanceType")?,
        instance_state: i.opt_string("instanceState")?,
        availability_zone: i.opt_string("availabilityZone")?,
        image_id: i.opt_string("imageId")?,
        instance_profile_arn,
        instance_profile_id,
        network_interfaces,
        tags: guardduty_tags(i.arr("tags")?)?,
    })
}

/// `[{"key": ..., "value": ...}]`: a tag needs a key; a missing value is the empty string.
fn guardduty_tags(list: Option<Arr<'_>>) -> Result<Vec<Tag>, ParseError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.objects()
        .map(|t| {
            let t = t?;
            Ok(Tag {
                key: t.required_str("key")?.to_string(),
                value: t.string_or_empty("value")?,
            })
        })
        .collect()
}

fn guardduty_bucket(b: &Obj<'_>) -> Result<S3BucketDetails, ParseError> {
    let public_access = match b.obj("publicAccess")? {
        Some(p) => Some(guardduty_public_access(&p)?),
        None => None,
    };
    Ok(S3BucketDetails {
        name: b.opt_string("name")?,
        arn: b.opt_string("arn")?,
        bucket_type: b.opt_string("type")?,
        public_access,
        tags: guardduty_tags(b.arr("tags")?)?,
    })
}

fn guardduty_public_access(p: &Obj<'_>) -> Result<BucketPublicAccess, ParseError> {
    let mut out = BucketPublicAccess {
        effective_permission: p.opt_string("effectivePermission")?,
        ..BucketPublicAccess::default()
    };
    let Some(config) = p.obj("permissionConfiguration")? else {
        return Ok(out);
    };
    if let Some(bucket) = config.obj("bucketLevelPermissions")? {
        if let Some(acl) = bucket.obj("accessControlList")? {
            out.acl_allows_public_read = acl.bool("allowsPublicReadAccess")?;
            out.acl_allows_public_write = acl.bool("allowsPublicWriteAccess")?;
        }
        if let Some(policy) = bucket.obj("bucketPolicy")? {
            out.policy_allows_public_read = policy.bool("allowsPublicReadAccess")?;
            out.policy_allows_public_write = policy.bool("allowsPublicWriteAccess")?;
        }
        if let Some(flags) = bucket.obj("blockPublicAccess")? {
            out.bucket_block_public_access = Some(block_public_access(&flags, Case::Camel)?);
        }
    }
    if let Some(account) = config.obj("accountLevelPermissions")? {
        if let Some(flags) = account.obj("blockPublicAccess")? {
            out.account_block_public_access = Some(block_public_access(&flags, Case::Camel)?);
        }
    }
    Ok(out)
}

/// The four flags; one not reported counts as off (the conservative reading: not blocked).
fn block_public_access(o: &Obj<'_>, case: Case) -> Result<BlockPublicAccessFlags, ParseError> {
    let flag = |k: &str| -> Result<bool, ParseError> { Ok(o.bool(&case.key(k))?.unwrap_or(false)) };
    Ok(BlockPublicAccessFlags {
        block_public_acls: flag("blockPublicAcls")?,
        ignore_public_acls: flag("ignorePublicAcls")?,
        block_public_policy: flag("blockPublicPolicy")?,
        restrict_public_buckets: flag("restrictPublicBuckets")?,
    })
}

/// Key spelling: GuardDuty's camelCase, or ASFF's PascalCase of the same names.
#[derive(Clone, Copy)]
enum Case {
    Camel,
    Pascal,
}

impl Case {
    fn key(self, camel: &str) -> String {
        match self {
            Case::Camel => camel.to_string(),
            Case::Pascal => {
                let mut chars = camel.chars();
                match chars.next() {
                    Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
        }
    }
}

/// `service.action` (GuardDuty) or `Action` (ASFF): what was done, and from where. Fields
/// already known are kept (the first source wins).
fn read_action(a: &Obj<'_>, case: Case, actor: &mut ActorInfo) -> Result<(), ParseError> {
    let k = |name: &str| case.key(name);
    fill(&mut actor.action_type, a.str(&k("actionType"))?);
    if let Some(call) = a.obj(&k("awsApiCallAction"))? {
        fill(&mut actor.api, call.str(&k("api"))?);
        fill(&mut actor.service_name, call.str(&k("serviceName"))?);
        if let Some(remote) = call.obj(&k("remoteIpDetails"))? {
            read_remote_ip(&remote, case, actor)?;
        }
    }
    if let Some(conn) = a.obj(&k("networkConnectionAction"))? {
        if let Some(remote) = conn.obj(&k("remoteIpDetails"))? {
            read_remote_ip(&remote, case, actor)?;
        }
    }
    if let Some(probe) = a.obj(&k("portProbeAction"))? {
        if let Some(details) = probe.arr(&k("portProbeDetails"))? {
            if let Some(first) = details.objects().next() {
                if let Some(remote) = first?.obj(&k("remoteIpDetails"))? {
                    read_remote_ip(&remote, case, actor)?;
                }
            }
        }
    }
    if let Some(dns) = a.obj(&k("dnsRequestAction"))? {
        fill(&mut actor.domain, dns.str(&k("domain"))?);
    }
    if let Some(kube) = a.obj(&k("kubernetesApiCallAction"))? {
        if let Some(remote) = kube.obj(&k("remoteIpDetails"))? {
            read_remote_ip(&remote, case, actor)?;
        }
    }
    Ok(())
}

/// `remoteIpDetails`: address, country, city, organization.
fn read_remote_ip(r: &Obj<'_>, case: Case, actor: &mut ActorInfo) -> Result<(), ParseError> {
    let k = |name: &str| case.key(name);
    fill(&mut actor.caller_ip, r.str(&k("ipAddressV4"))?);
    fill(&mut actor.caller_ip, r.str(&k("ipAddressV6"))?);
    if let Some(country) = r.obj(&k("country"))? {
        fill(&mut actor.country, country.str(&k("countryName"))?);
    }
    if let Some(city) = r.obj(&k("city"))? {
        fill(&mut actor.city, city.str(&k("cityName"))?);
    }
    if let Some(org) = r.obj(&k("organization"))? {
        fill(&mut actor.organization, org.str(&k("asnOrg"))?);
        fill(&mut actor.organization, org.str(&k("org"))?);
    }
    Ok(())
}

/// Sets `slot` to a non-empty `value` unless it is already set.
fn fill(slot: &mut Option<String>, value: Option<&str>) {
    if slot.is_none() {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            *slot = Some(v.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ASFF
// ---------------------------------------------------------------------------------------------

fn asff_finding(f: &Obj<'_>) -> Result<Finding, ParseError> {
    let raw_id = f.required_str("Id")?;
    let product_arn = f.str("ProductArn")?.unwrap_or("");
    let from_guardduty = is_guardduty_product(product_arn);
    let id = if from_guardduty {
        // `arn:aws:guardduty:<region>:<account>:detector/<detector>/finding/<id>`
        match raw_id.rsplit('/').next() {
            Some(last) if !last.is_empty() => last.to_string(),
            _ => {
                return Err(ParseError::Invalid {
                    path: f.path_of("Id"),
                    message: format!("{} does not end with a finding id", snippet(raw_id)),
                })
            }
        }
    } else {
        raw_id.to_string()
    };
    let arn = (from_guardduty || raw_id.starts_with("arn:")).then(|| raw_id.to_string());
    let account_id = account_id(f.required_str("AwsAccountId")?, f.path_of("AwsAccountId"))?;
    let resources = f.arr("Resources")?;
    let region = asff_region(f, raw_id, product_arn, resources.as_ref())?;
    let types = f.required_arr("Types")?;
    let type_strings = types.strings()?;
    let finding_type = if from_guardduty {
        guardduty_type_from_asff(&type_strings)
            .or_else(|| type_strings.first().map(|t| t.to_string()))
    } else {
        type_strings.first().map(|t| t.to_string())
    };
    let finding_type = finding_type.ok_or_else(|| ParseError::Missing {
        path: format!("{}[0]", types.path),
    })?;
    let severity = match f.obj("Severity")? {
        Some(s) => asff_severity(&s, from_guardduty)?,
        None => 0.0,
    };

    let product_fields = f.obj("ProductFields")?;
    let mut count = 1;
    let mut archived = f.str("RecordState")? == Some("ARCHIVED");
    let mut sample = f.bool("Sample")?.unwrap_or(false);
    let mut actor = ActorInfo::default();
    if let Some(pf) = &product_fields {
        if let Some((value, path)) = product_field(pf, "count")? {
            count = parse_count_str(value, path)?;
        }
        if let Some((value, path)) = product_field(pf, "archived")? {
            archived |= parse_bool_str(value, path)?;
        }
        if let Some((value, path)) = product_field(pf, "additionalInfo/sample")? {
            sample |= parse_bool_str(value, path)?;
        }
        product_fields_actor(pf, &mut actor)?;
    }
    if let Some(action) = f.obj("Action")? {
        read_action(&action, Case::Pascal, &mut actor)?;
    }

    Ok(Finding {
        id,
        arn,
        account_id,
        region,
        finding_type,
        severity,
        severity_label: SeverityLabel::from_score(severity),
        title: f.string_or_empty("Title")?,
        description: f.string_or_empty("Description")?,
        created_at: f.time("CreatedAt")?,
        updated_at: f.time("UpdatedAt")?,
        first_seen: f.time("FirstObservedAt")?,
        last_seen: f.time("LastObservedAt")?,
        count,
        archived,
        sample,
        source: FindingSource::SecurityHub {
            product_arn: product_arn.to_string(),
        },
        resource: asff_resources(resources)?,
        actor,
    })
}

/// `Region`, else the region of the `Id` or `ProductArn` ARN, else `Resources[0].Region`.
fn asff_region(
    f: &Obj<'_>,
    raw_id: &str,
    product_arn: &str,
    resources: Option<&Arr<'_>>,
) -> Result<String, ParseError> {
    if let Some(r) = f.str("Region")? {
        return region_name(r, f.path_of("Region"));
    }
    if let Some(r) = arn_region(raw_id) {
        return region_name(r, f.path_of("Id"));
    }
    if let Some(r) = arn_region(product_arn) {
        return region_name(r, f.path_of("ProductArn"));
    }
    if let Some(first) = resources.and_then(|list| list.objects().next()) {
        let first = first?;
        if let Some(r) = first.str("Region")? {
            return region_name(r, first.path_of("Region"));
        }
    }
    Err(ParseError::Missing {
        path: f.path_of("Region"),
    })
}

/// True for GuardDuty's Security Hub product ARN, in any partition and region.
fn is_guardduty_product(product_arn: &str) -> bool {
    product_arn.starts_with("arn:")
        && product_arn.splitn(6, ':').nth(5) == Some(GUARDDUTY_PRODUCT_RESOURCE)
}

/// The region field of an ARN (`arn:partition:service:region:account:resource`), if non-empty.
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    if parts.next() != Some("arn") {
        return None;
    }
    parts.nth(2).filter(|r| !r.is_empty())
}

/// The GuardDuty finding type inside ASFF `Types`: the last `/`-separated part that contains
/// `:`, whose own `/` Security Hub wrote as `-`
/// (`TTPs/Discovery/Recon:IAMUser-ResourcePermissions` -> `Recon:IAMUser/ResourcePermissions`).
fn guardduty_type_from_asff(types: &[&str]) -> Option<String> {
    types.iter().find_map(|t| {
        let part = t.rsplit('/').find(|p| p.contains(':'))?;
        let (threat, rest) = part.split_once(':')?;
        Some(match rest.split_once('-') {
            Some((resource, name)) => format!("{threat}:{resource}/{name}"),
            None => part.to_string(),
        })
    })
}

/// GuardDuty's own score when Security Hub carries it (`Product`, `Original`), else the
/// normalized 0-100 score, else the label.
fn asff_severity(s: &Obj<'_>, from_guardduty: bool) -> Result<f64, ParseError> {
    if from_guardduty {
        if let Some(p) = s.f64("Product")? {
            return score(p, 10.0, s.path_of("Product"));
        }
        if let Some(o) = s.str("Original")? {
            let path = s.path_of("Original");
            let p: f64 = o.trim().parse().map_err(|_| ParseError::Invalid {
                path: path.clone(),
                message: format!("{} is not a number", snippet(o)),
            })?;
            return score(p, 10.0, path);
        }
    }
    if let Some(n) = s.f64("Normalized")? {
        return Ok(score(n, 100.0, s.path_of("Normalized"))? / 10.0);
    }
    if let Some(label) = s.str("Label")? {
        return match label {
            "INFORMATIONAL" => Ok(0.0),
            "LOW" => Ok(1.0),
            "MEDIUM" => Ok(4.0),
            "HIGH" => Ok(7.0),
            "CRITICAL" => Ok(9.0),
            other => Err(ParseError::Invalid {
                path: s.path_of("Label"),
                message: format!(
                    "{} is not a severity label (INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL)",
                    snippet(other)
                ),
            }),
        };
    }
    Ok(0.0)
}

/// A `ProductFields` value under any of the known prefixes, with its path.
fn product_field<'a>(pf: &Obj<'a>, name: &str) -> Result<Option<(&'a str, String)>, ParseError> {
    for prefix in PRODUCT_FIELD_PREFIXES {
        let key = format!("{prefix}{name}");
        if let Some(v) = pf.str(&key)? {
            return Ok(Some((v, pf.path_of(&key))));
        }
    }
    Ok(None)
}

/// The actor from Security Hub's flattened GuardDuty fields
/// (`action/awsApiCallAction/remoteIpDetails/ipAddressV4` and the like).
fn product_fields_actor(pf: &Obj<'_>, actor: &mut ActorInfo) -> Result<(), ParseError> {
    let get = |name: &str| product_field(pf, name).map(|o| o.map(|(v, _)| v));
    fill(&mut actor.action_type, get("action/actionType")?);
    fill(&mut actor.api, get("action/awsApiCallAction/api")?);
    fill(
        &mut actor.service_name,
        get("action/awsApiCallAction/serviceName")?,
    );
    fill(&mut actor.domain, get("action/dnsRequestAction/domain")?);
    for action in [
        "awsApiCallAction",
        "networkConnectionAction",
        "kubernetesApiCallAction",
    ] {
        let base = format!("action/{action}/remoteIpDetails");
        fill(&mut actor.caller_ip, get(&format!("{base}/ipAddressV4"))?);
        fill(
            &mut actor.country,
            get(&format!("{base}/country/countryName"))?,
        );
        fill(&mut actor.city, get(&format!("{base}/city/cityName"))?);
        fill(
            &mut actor.organization,
            get(&format!("{base}/organization/asnOrg"))?,
        );
        fill(
            &mut actor.organization,
            get(&format!("{base}/organization/org"))?,
        );
    }
    Ok(())
}

/// `Resources`: the kind from the first; details from every resource of a known type.
fn asff_resources(resources: Option<Arr<'_>>) -> Result<Resource, ParseError> {
    let mut out = unknown_resource();
    let Some(resources) = resources else {
        return Ok(out);
    };
    let mut kind = None;
    for r in resources.objects() {
        let r = r?;
        let ty = r.str("Type")?.unwrap_or("");
        let rid = r.str("Id")?.unwrap_or("");
        let details = r.obj("Details")?;
        let tags = asff_tags(r.obj("Tags")?)?;
        let this_kind = match ty {
            "AwsIamAccessKey" => ResourceKind::AccessKey,
            "AwsEc2Instance" => ResourceKind::Instance,
            "AwsS3Bucket" => ResourceKind::S3Bucket,
            "" => ResourceKind::Other(UNKNOWN_RESOURCE_TYPE.into()),
            other => ResourceKind::Other(other.to_string()),
        };
        kind.get_or_insert(this_kind);
        let detail = |name: &str| match &details {
            Some(d) => d.obj(name),
            None => Ok(None),
        };
        match ty {
            "AwsIamAccessKey" if out.access_key.is_none() => {
                out.access_key = Some(asff_access_key(rid, detail("AwsIamAccessKey")?)?);
            }
            "AwsEc2Instance" if out.instance.is_none() => {
                out.instance = Some(asff_instance(rid, detail("AwsEc2Instance")?, tags)?);
            }
            "AwsS3Bucket" => {
                out.s3_buckets
                    .push(asff_bucket(rid, detail("AwsS3Bucket")?, tags)?);
            }
            _ => {}
        }
    }
    if let Some(kind) = kind {
        out.kind = kind;
    }
    Ok(out)
}

/// ASFF resource `Tags`: a map of key to value.
fn asff_tags(tags: Option<Obj<'_>>) -> Result<Vec<Tag>, ParseError> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for key in tags.map.keys() {
        out.push(Tag {
            key: key.clone(),
            value: tags.string_or_empty(key)?,
        });
    }
    Ok(out)
}

/// The key id is the end of the resource `Id` (`AWS::IAM::AccessKey:AKIA...`); Security Hub
/// writes `AWS::IAM::AccessKey:null` when GuardDuty did not know it.
fn asff_access_key(rid: &str, d: Option<Obj<'_>>) -> Result<AccessKeyDetails, ParseError> {
    let mut out = AccessKeyDetails {
        access_key_id: rid
            .strip_prefix("AWS::IAM::AccessKey:")
            .filter(|k| !k.is_empty() && *k != "null")
            .map(str::to_string),
        ..AccessKeyDetails::default()
    };
    if let Some(d) = d {
        if let Some(k) = d
            .str("AccessKeyId")?
            .filter(|k| !k.is_empty() && *k != "null")
        {
            out.access_key_id = Some(k.to_string());
        }
        fill(&mut out.user_name, d.str("UserName")?);
        fill(&mut out.user_name, d.str("PrincipalName")?);
        fill(&mut out.principal_id, d.str("PrincipalId")?);
        fill(&mut out.user_type, d.str("PrincipalType")?);
    }
    Ok(out)
}

/// The instance id from the resource `Id` (`arn:aws:ec2:<region>:<account>:instance/i-...`).
fn asff_instance(
    rid: &str,
    d: Option<Obj<'_>>,
    tags: Vec<Tag>,
) -> Result<InstanceDetails, ParseError> {
    let instance_id = match rid.rsplit_once(":instance/") {
        Some((_, id)) if !id.is_empty() => Some(id.to_string()),
        _ if rid.starts_with("i-") => Some(rid.to_string()),
        _ => None,
    };
    let mut out = InstanceDetails {
        instance_id,
        tags,
        ..InstanceDetails::default()
    };
    let Some(d) = d else {
        return Ok(out);
    };
    out.instance_type = d.opt_string("Type")?;
    out.image_id = d.opt_string("ImageId")?;
    out.instance_profile_arn = d.opt_string("IamInstanceProfileArn")?;
    let vpc_id = d.opt_string("VpcId")?;
    let subnet_id = d.opt_string("SubnetId")?;
    if let Some(list) = d.arr("NetworkInterfaces")? {
        for ni in list.objects() {
            out.network_interfaces.push(NetworkInterface {
                network_interface_id: ni?.opt_string("NetworkInterfaceId")?,
                vpc_id: vpc_id.clone(),
                subnet_id: subnet_id.clone(),
                ..NetworkInterface::default()
            });
        }
    }
    Ok(out)
}

/// The bucket name from the resource `Id` (`arn:aws:s3:::name`).
fn asff_bucket(
    rid: &str,
    d: Option<Obj<'_>>,
    tags: Vec<Tag>,
) -> Result<S3BucketDetails, ParseError> {
    let (name, arn) = if rid.starts_with("arn:") {
        let name = rid.splitn(6, ':').nth(5).filter(|n| !n.is_empty());
        (name.map(str::to_string), Some(rid.to_string()))
    } else if rid.is_empty() {
        (None, None)
    } else {
        (Some(rid.to_string()), None)
    };
    let mut out = S3BucketDetails {
        name,
        arn,
        tags,
        ..S3BucketDetails::default()
    };
    if let Some(d) = d {
        if let Some(flags) = d.obj("PublicAccessBlockConfiguration")? {
            out.public_access = Some(BucketPublicAccess {
                bucket_block_public_access: Some(block_public_access(&flags, Case::Pascal)?),
                ..BucketPublicAccess::default()
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Values checked where they are read
// ---------------------------------------------------------------------------------------------

/// An account id: digits only (it goes into role ARNs).
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

/// A region name such as `us-east-1`: lowercase letters, digits and `-` (it goes into URLs
/// and client configuration).
pub(crate) fn region_name(s: &str, path: String) -> Result<String, ParseError> {
    if is_region_name(s) {
        Ok(s.to_string())
    } else {
        Err(ParseError::Invalid {
            path,
            message: format!("{} is not an AWS region name", snippet(s)),
        })
    }
}

fn is_region_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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

fn parse_count_str(s: &str, path: String) -> Result<u64, ParseError> {
    s.trim().parse().map_err(|_| ParseError::Invalid {
        path,
        message: format!("{} is not a whole number", snippet(s)),
    })
}

fn parse_bool_str(s: &str, path: String) -> Result<bool, ParseError> {
    match s.trim() {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        other => Err(ParseError::Invalid {
            path,
            message: format!("{} is neither true nor false", snippet(other)),
        }),
    }
}

pub(crate) fn parse_time_str(s: &str, path: String) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ParseError::Invalid {
            path,
            message: format!("{} is not an RFC 3339 time", snippet(s)),
        })
}

/// Epoch seconds, as some serializations of the same documents write times.
fn epoch_seconds(secs: f64, path: String) -> Result<DateTime<Utc>, ParseError> {
    let invalid = || ParseError::Invalid {
        path: path.clone(),
        message: format!("{secs} is not a time in epoch seconds"),
    };
    // Beyond ±2^53 an f64 no longer holds whole seconds; chrono's own range is narrower still.
    if !secs.is_finite() || secs.abs() > 9_007_199_254_740_992.0 {
        return Err(invalid());
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos).ok_or_else(invalid)
}

/// Untrusted text quoted in an error message: bounded, and debug-escaped.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn console_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        "console.amazonaws-us-gov.com".to_string()
    } else {
        format!("{region}.console.aws.amazon.com")
    }
}

// ---------------------------------------------------------------------------------------------
// Path-tracking access to serde_json values
// ---------------------------------------------------------------------------------------------

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn wrong_type(path: String, expected: &'static str, found: &Value) -> ParseError {
    ParseError::WrongType {
        path,
        expected,
        found: type_name(found),
    }
}

/// `$.a` + `b` = `$.a.b`; keys that are not plain identifiers are quoted:
/// `$.ProductFields["action/actionType"]`, `$["detail-type"]`.
fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        format!("{parent}.{key}")
    } else {
        // A JSON string literal is a safe, unambiguous spelling of any key.
        let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
        format!("{parent}[{quoted}]")
    }
}

/// A JSON object and the path it was found at. Every accessor treats `null` as absent and
/// names the field's path in its error.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(v: &'a Value, path: &str) -> Result<Self, ParseError> {
        match v {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_string(),
            }),
            other => Err(wrong_type(path.to_string(), "object", other)),
        }
    }

    pub(crate) fn path_of(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(self.path_of(key), "string", other)),
        }
    }

    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>, ParseError> {
        Ok(self.str(key)?.map(str::to_string))
    }

    pub(crate) fn string_or_empty(&self, key: &str) -> Result<String, ParseError> {
        Ok(self.str(key)?.unwrap_or_default().to_string())
    }

    /// A string that must be present and non-empty.
    pub(crate) fn required_str(&self, key: &str) -> Result<&'a str, ParseError> {
        match self.str(key)? {
            None => Err(ParseError::Missing {
                path: self.path_of(key),
            }),
            Some(s) if s.trim().is_empty() => Err(ParseError::Invalid {
                path: self.path_of(key),
                message: "must not be empty".into(),
            }),
            Some(s) => Ok(s),
        }
    }

    pub(crate) fn f64(&self, key: &str) -> Result<Option<f64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => match n.as_f64() {
                Some(x) => Ok(Some(x)),
                None => Err(wrong_type(self.path_of(key), "number", v)),
            },
            Some(other) => Err(wrong_type(self.path_of(key), "number", other)),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(self.path_of(key), "boolean", other)),
        }
    }

    /// A count: a whole number, or a string holding one (ASFF writes counts as strings).
    pub(crate) fn count(&self, key: &str) -> Result<Option<u64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(c) => Ok(Some(c)),
                None => Err(ParseError::Invalid {
                    path: self.path_of(key),
                    message: format!("{n} is not a whole number"),
                }),
            },
            Some(Value::String(s)) => parse_count_str(s, self.path_of(key)).map(Some),
            Some(other) => Err(wrong_type(self.path_of(key), "number", other)),
        }
    }

    /// A time: an RFC 3339 string, or a number of epoch seconds.
    pub(crate) fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_time_str(s, self.path_of(key)).map(Some),
            Some(v @ Value::Number(n)) => match n.as_f64() {
                Some(secs) => epoch_seconds(secs, self.path_of(key)).map(Some),
                None => Err(wrong_type(self.path_of(key), "RFC 3339 string", v)),
            },
            Some(other) => Err(wrong_type(self.path_of(key), "RFC 3339 string", other)),
        }
    }

    pub(crate) fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => Obj::new(v, &self.path_of(key)).map(Some),
        }
    }

    pub(crate) fn required_obj(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.obj(key)?.ok_or_else(|| ParseError::Missing {
            path: self.path_of(key),
        })
    }

    pub(crate) fn arr(&self, key: &str) -> Result<Option<Arr<'a>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(Arr::new(items, &self.path_of(key)))),
            Some(other) => Err(wrong_type(self.path_of(key), "array", other)),
        }
    }

    pub(crate) fn required_arr(&self, key: &str) -> Result<Arr<'a>, ParseError> {
        self.arr(key)?.ok_or_else(|| ParseError::Missing {
            path: self.path_of(key),
        })
    }
}

/// A JSON array and the path it was found at. `null` elements are skipped.
pub(crate) struct Arr<'a> {
    items: &'a [Value],
    path: String,
}

impl<'a> Arr<'a> {
    pub(crate) fn new(items: &'a [Value], path: &str) -> Self {
        Arr {
            items,
            path: path.to_string(),
        }
    }

    pub(crate) fn element_path(&self, i: usize) -> String {
        format!("{}[{i}]", self.path)
    }

    /// Each element as an object (a non-object element is an error at its own path).
    pub(crate) fn objects(&self) -> impl Iterator<Item = Result<Obj<'a>, ParseError>> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| Obj::new(v, &self.element_path(i)))
    }

    /// Every element as a string.
    pub(crate) fn strings(&self) -> Result<Vec<&'a str>, ParseError> {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(wrong_type(self.element_path(i), "string", other)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal valid GuardDuty finding; tests change one thing at a time.
    fn gd() -> Value {
        json!({
            "id": "abc123",
            "accountId": "123456789012",
            "region": "eu-west-1",
            "type": "Recon:IAMUser/MaliciousIPCaller",
            "severity": 5
        })
    }

    fn parse(v: &Value) -> Result<Vec<Finding>, ParseError> {
        parse_document(&v.to_string())
    }

    fn one(v: &Value) -> Finding {
        let mut all = parse(v).expect("parses");
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    fn asff_gd() -> Value {
        json!({
            "SchemaVersion": "2018-10-08",
            "Id": "arn:aws:guardduty:eu-west-1:123456789012:detector/d1/finding/f00d",
            "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/guardduty",
            "AwsAccountId": "123456789012",
            "Types": ["TTPs/Discovery/Recon:IAMUser-ResourcePermissions"],
            "Severity": {"Product": 5, "Normalized": 50},
            "Resources": [{"Type": "AwsIamAccessKey", "Id": "AWS::IAM::AccessKey:AKIAEXAMPLE"}]
        })
    }

    #[test]
    fn severity_label_boundaries() {
        let table = [
            (0.0, SeverityLabel::Low),
            (3.9, SeverityLabel::Low),
            (4.0, SeverityLabel::Medium),
            (6.9, SeverityLabel::Medium),
            (7.0, SeverityLabel::High),
            (8.9, SeverityLabel::High),
            (9.0, SeverityLabel::Critical),
            (10.0, SeverityLabel::Critical),
        ];
        for (score, label) in table {
            assert_eq!(SeverityLabel::from_score(score), label, "score {score}");
        }
    }

    #[test]
    fn minimal_guardduty_finding_gets_defaults() {
        let f = one(&gd());
        assert_eq!(f.id, "abc123");
        assert_eq!(f.account_id, "123456789012");
        assert_eq!(f.region, "eu-west-1");
        assert_eq!(f.finding_type, "Recon:IAMUser/MaliciousIPCaller");
        assert_eq!(f.severity, 5.0);
        assert_eq!(f.severity_label, SeverityLabel::Medium);
        assert_eq!(f.count, 1);
        assert!(!f.archived);
        assert!(!f.sample);
        assert_eq!(f.source, FindingSource::GuardDuty);
        assert_eq!(f.resource.kind, ResourceKind::Other("Unknown".into()));
        assert!(f.actor.is_empty());
        assert_eq!((f.title.as_str(), f.created_at), ("", None));
    }

    #[test]
    fn missing_id_names_its_path() {
        let mut v = gd();
        v.as_object_mut().unwrap().remove("id");
        assert_eq!(
            parse(&v),
            Err(ParseError::Missing {
                path: "$.id".into()
            })
        );
        // null counts as absent
        v["id"] = Value::Null;
        assert_eq!(
            parse(&v),
            Err(ParseError::Missing {
                path: "$.id".into()
            })
        );
    }

    #[test]
    fn each_required_field_is_required() {
        for (key, path) in [
            ("accountId", "$.accountId"),
            ("region", "$.region"),
            ("type", "$.type"),
        ] {
            let mut v = gd();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(parse(&v), Err(ParseError::Missing { path: path.into() }));
        }
        let mut v = gd();
        v["id"] = json!("  ");
        assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.id"));
    }

    #[test]
    fn severity_as_string_is_a_wrong_type() {
        let mut v = gd();
        v["severity"] = json!("high");
        assert_eq!(
            parse(&v),
            Err(ParseError::WrongType {
                path: "$.severity".into(),
                expected: "number",
                found: "string"
            })
        );
        v["severity"] = json!(11);
        assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.severity"));
    }

    #[test]
    fn error_in_second_finding_of_a_list_names_its_index() {
        let doc = json!({"findings": [gd(), {"id": 5}]});
        let err = parse(&doc).unwrap_err();
        assert_eq!(err.path(), Some("$.findings[1].id"));
        assert!(matches!(
            err,
            ParseError::WrongType {
                found: "number",
                ..
            }
        ));
        // the same through the GuardDuty parser
        assert_eq!(
            parse_guardduty_json(&doc.to_string()).unwrap_err().path(),
            Some("$.findings[1].id")
        );
    }

    #[test]
    fn deep_paths_are_exact() {
        let mut v = gd();
        v["resource"] = json!({
            "resourceType": "Instance",
            "instanceDetails": {"networkInterfaces": [{"securityGroups": [
                {"groupId": "sg-1"}, {"groupId": 7}
            ]}]}
        });
        let doc = json!({ "findings": [v] });
        assert_eq!(
            parse(&doc).unwrap_err().path(),
            Some("$.findings[0].resource.instanceDetails.networkInterfaces[0].securityGroups[1].groupId")
        );
    }

    #[test]
    fn not_json_and_unknown_shapes() {
        assert!(matches!(
            parse_document("{\"id\": "),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse_document(""), Err(ParseError::NotJson(_))));
        for doc in ["{\"hello\": 1}", "42", "\"text\"", "null"] {
            assert!(
                matches!(parse_document(doc), Err(ParseError::UnknownShape(_))),
                "{doc}"
            );
        }
        assert_eq!(ParseError::UnknownShape("x".into()).path(), Some("$"));
        assert_eq!(ParseError::NotJson("x".into()).path(), None);
    }

    #[test]
    fn times_rfc3339_or_epoch_seconds_and_bad_ones_are_invalid() {
        let mut v = gd();
        v["createdAt"] = json!("2022-01-12T19:22:44.469Z");
        v["updatedAt"] = json!(1513612691.5);
        let f = one(&v);
        assert_eq!(
            f.created_at.unwrap().to_rfc3339(),
            "2022-01-12T19:22:44.469+00:00"
        );
        assert_eq!(f.updated_at.unwrap().timestamp_millis(), 1_513_612_691_500);
        v["service"] = json!({"eventFirstSeen": "yesterday"});
        assert!(
            matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.service.eventFirstSeen")
        );
        v["service"] = json!({"eventLastSeen": 1e300});
        assert!(
            matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.service.eventLastSeen")
        );
    }

    #[test]
    fn account_and_region_are_checked_because_they_reach_arns_and_urls() {
        let mut v = gd();
        v["accountId"] = json!("1234:role/x");
        assert!(
            matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.accountId")
        );
        let mut v = gd();
        v["region"] = json!("evil.example#");
        assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.region"));
    }

    #[test]
    fn counts_numbers_or_strings_never_negative_or_fractional() {
        let table = [
            (json!(7), Ok(7)),
            (json!("12"), Ok(12)),
            (json!(-1), Err(())),
            (json!(1.5), Err(())),
            (json!("many"), Err(())),
            (Value::Null, Ok(1)),
        ];
        for (count, want) in table {
            let mut v = gd();
            v["service"] = json!({ "count": count });
            match (parse(&v), want) {
                (Ok(f), Ok(n)) => assert_eq!(f[0].count, n),
                (Err(e), Err(())) => assert_eq!(e.path(), Some("$.service.count")),
                (got, want) => panic!("count {count}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn service_fields_sample_archived_and_actor() {
        let mut v = gd();
        v["service"] = json!({
            "archived": true,
            "count": 3,
            "additionalInfo": {"sample": true},
            "action": {
                "actionType": "PORT_PROBE",
                "portProbeAction": {"portProbeDetails": [
                    {"remoteIpDetails": {"ipAddressV4": "198.51.100.7",
                        "country": {"countryName": "Elbonia"}, "city": {"cityName": "Mud"},
                        "organization": {"org": "OnlyOrg"}}},
                    {"remoteIpDetails": {"ipAddressV4": "198.51.100.8"}}
                ]}
            }
        });
        let f = one(&v);
        assert!(f.archived && f.sample);
        assert_eq!(f.count, 3);
        assert_eq!(f.actor.action_type.as_deref(), Some("PORT_PROBE"));
        assert_eq!(f.actor.caller_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(f.actor.country.as_deref(), Some("Elbonia"));
        assert_eq!(f.actor.city.as_deref(), Some("Mud"));
        assert_eq!(f.actor.organization.as_deref(), Some("OnlyOrg"));
    }

    #[test]
    fn every_details_object_is_filled_whatever_the_kind() {
        let mut v = gd();
        v["resource"] = json!({
            "resourceType": "AccessKey",
            "accessKeyDetails": {"accessKeyId": "AKIAEXAMPLE", "userType": "IAMUser", "userName": "alice"},
            "instanceDetails": {"instanceId": "i-1", "iamInstanceProfile": {"arn": "arn:p", "id": "AIP"},
                "tags": [{"key": "hanko:exempt", "value": "true"}, {"key": "empty"}]},
            "s3BucketDetails": [{"name": "b1", "publicAccess": {"effectivePermission": "PUBLIC",
                "permissionConfiguration": {"bucketLevelPermissions": {
                    "accessControlList": {"allowsPublicReadAccess": true, "allowsPublicWriteAccess": false},
                    "blockPublicAccess": {"blockPublicAcls": true}}}}}]
        });
        let f = one(&v);
        assert_eq!(f.resource.kind, ResourceKind::AccessKey);
        let key = f.resource.access_key.unwrap();
        assert_eq!(key.access_key_id.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(key.user_name.as_deref(), Some("alice"));
        let inst = f.resource.instance.unwrap();
        assert_eq!(inst.instance_profile_arn.as_deref(), Some("arn:p"));
        assert_eq!(inst.instance_profile_id.as_deref(), Some("AIP"));
        assert_eq!(inst.tags[0].key, "hanko:exempt");
        assert_eq!(inst.tags[1].value, "");
        let pa = f.resource.s3_buckets[0].public_access.clone().unwrap();
        assert_eq!(pa.effective_permission.as_deref(), Some("PUBLIC"));
        assert_eq!(pa.acl_allows_public_read, Some(true));
        assert_eq!(pa.policy_allows_public_read, None);
        let flags = pa.bucket_block_public_access.unwrap();
        assert!(flags.block_public_acls && !flags.restrict_public_buckets);
        assert_eq!(pa.account_block_public_access, None);
    }

    #[test]
    fn a_tag_without_a_key_is_missing() {
        let mut v = gd();
        v["resource"] = json!({"instanceDetails": {"tags": [{"value": "v"}]}});
        assert_eq!(
            parse(&v).unwrap_err().path(),
            Some("$.resource.instanceDetails.tags[0].key")
        );
    }

    #[test]
    fn asff_types_convert_to_guardduty_types() {
        let table: [(&[&str], Option<&str>); 7] = [
            (
                &["TTPs/Discovery/Recon:IAMUser-ResourcePermissions"],
                Some("Recon:IAMUser/ResourcePermissions"),
            ),
            (
                &["Unusual Behaviors/User/UnauthorizedAccess:IAMUser-ConsoleLogin"],
                Some("UnauthorizedAccess:IAMUser/ConsoleLogin"),
            ),
            (
                &["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS"],
                Some("Backdoor:EC2/C&CActivity.B!DNS"),
            ),
            // only the first `-` after the `:` was a `/`
            (&["Effects/X:Y-Some-Name"], Some("X:Y/Some-Name")),
            (
                &[
                    "Software and Configuration Checks",
                    "TTPs/Recon:EC2-PortProbeUnprotectedPort",
                ],
                Some("Recon:EC2/PortProbeUnprotectedPort"),
            ),
            (&["Recon:NoDash"], Some("Recon:NoDash")),
            (
                &["Software and Configuration Checks/Vulnerabilities/CVE"],
                None,
            ),
        ];
        for (types, want) in table {
            assert_eq!(
                guardduty_type_from_asff(types).as_deref(),
                want,
                "{types:?}"
            );
        }
    }

    #[test]
    fn asff_guardduty_finding() {
        let f = one(&asff_gd());
        assert_eq!(f.id, "f00d");
        assert_eq!(
            f.arn.as_deref(),
            Some("arn:aws:guardduty:eu-west-1:123456789012:detector/d1/finding/f00d")
        );
        assert_eq!(f.region, "eu-west-1");
        assert_eq!(f.finding_type, "Recon:IAMUser/ResourcePermissions");
        assert_eq!((f.severity, f.severity_label), (5.0, SeverityLabel::Medium));
        assert_eq!(f.resource.kind, ResourceKind::AccessKey);
        assert_eq!(
            f.resource
                .access_key
                .clone()
                .unwrap()
                .access_key_id
                .as_deref(),
            Some("AKIAEXAMPLE")
        );
        assert!(f.is_guardduty());
        assert!(matches!(f.source, FindingSource::SecurityHub { .. }));
    }

    #[test]
    fn asff_severity_sources_in_order() {
        let table = [
            (json!({"Product": 8, "Normalized": 20}), Ok(8.0)),
            (json!({"Original": "7.5", "Normalized": 20}), Ok(7.5)),
            (json!({"Normalized": 70}), Ok(7.0)),
            (json!({"Label": "CRITICAL"}), Ok(9.0)),
            (json!({"Label": "INFORMATIONAL"}), Ok(0.0)),
            (json!({}), Ok(0.0)),
            (json!({"Label": "SEVERE"}), Err("$.Severity.Label")),
            (json!({"Normalized": 101}), Err("$.Severity.Normalized")),
            (json!({"Product": "5"}), Err("$.Severity.Product")),
        ];
        for (sev, want) in table {
            let mut v = asff_gd();
            v["Severity"] = sev.clone();
            match (parse(&v), want) {
                (Ok(f), Ok(s)) => assert_eq!(f[0].severity, s, "{sev}"),
                (Err(e), Err(path)) => assert_eq!(e.path(), Some(path), "{sev}"),
                (got, want) => panic!("{sev}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn asff_product_fields_with_the_service_prefix_and_record_state() {
        let mut v = asff_gd();
        v["ProductFields"] = json!({
            "aws/guardduty/service/count": "12",
            "aws/guardduty/service/archived": "false",
            "aws/guardduty/service/additionalInfo/sample": "true",
            "aws/guardduty/service/action/actionType": "NETWORK_CONNECTION",
            "aws/guardduty/service/action/networkConnectionAction/remoteIpDetails/ipAddressV4": "203.0.113.9",
            "aws/guardduty/service/action/networkConnectionAction/remoteIpDetails/country/countryName": "Narnia",
            "aws/guardduty/service/action/networkConnectionAction/remoteIpDetails/organization/org": "Org Only"
        });
        v["RecordState"] = json!("ARCHIVED");
        let f = one(&v);
        assert_eq!(f.count, 12);
        assert!(f.archived, "RecordState ARCHIVED wins over archived=false");
        assert!(f.sample);
        assert_eq!(f.actor.action_type.as_deref(), Some("NETWORK_CONNECTION"));
        assert_eq!(f.actor.caller_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(f.actor.country.as_deref(), Some("Narnia"));
        assert_eq!(f.actor.organization.as_deref(), Some("Org Only"));

        v["ProductFields"] = json!({"count": "lots"});
        assert_eq!(parse(&v).unwrap_err().path(), Some("$.ProductFields.count"));
        v["ProductFields"] = json!({"aws/guardduty/service/archived": 1});
        assert_eq!(
            parse(&v).unwrap_err().path(),
            Some("$.ProductFields[\"aws/guardduty/service/archived\"]")
        );
    }

    #[test]
    fn asff_action_block_fills_the_actor() {
        let mut v = asff_gd();
        v["Action"] = json!({
            "ActionType": "AWS_API_CALL",
            "AwsApiCallAction": {"Api": "ListBuckets", "ServiceName": "s3.amazonaws.com",
                "RemoteIpDetails": {"IpAddressV4": "192.0.2.1", "City": {"CityName": "Springfield"},
                    "Organization": {"AsnOrg": "Example ASN"}}}
        });
        let f = one(&v);
        assert_eq!(f.actor.api.as_deref(), Some("ListBuckets"));
        assert_eq!(f.actor.service_name.as_deref(), Some("s3.amazonaws.com"));
        assert_eq!(f.actor.caller_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(f.actor.city.as_deref(), Some("Springfield"));
        assert_eq!(f.actor.organization.as_deref(), Some("Example ASN"));
    }

    #[test]
    fn asff_other_product_resources_and_region_fallbacks() {
        let v = json!({
            "Findings": [{
                "Id": "inspector-finding-1",
                "ProductArn": "arn:aws:securityhub:us-west-2::product/aws/inspector",
                "AwsAccountId": "111122223333",
                "Types": ["Software and Configuration Checks/Vulnerabilities/CVE"],
                "Severity": {"Label": "HIGH", "Product": 99},
                "Resources": [
                    {"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-west-2:111122223333:instance/i-0abc",
                     "Tags": {"Name": "web"},
                     "Details": {"AwsEc2Instance": {"VpcId": "vpc-1", "SubnetId": "subnet-1",
                        "IamInstanceProfileArn": "arn:aws:iam::111122223333:instance-profile/p",
                        "NetworkInterfaces": [{"NetworkInterfaceId": "eni-1"}, {"NetworkInterfaceId": "eni-2"}]}}},
                    {"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::my-bucket",
                     "Details": {"AwsS3Bucket": {"PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": true, "IgnorePublicAcls": true,
                        "BlockPublicPolicy": false, "RestrictPublicBuckets": true}}}},
                    {"Type": "AwsLambdaFunction", "Id": "arn:aws:lambda:us-west-2:111122223333:function:f"}
                ]
            }]
        });
        let f = one(&v);
        assert_eq!(f.id, "inspector-finding-1");
        assert_eq!(f.arn, None);
        assert_eq!(f.region, "us-west-2", "from the ProductArn");
        assert_eq!(
            f.finding_type,
            "Software and Configuration Checks/Vulnerabilities/CVE"
        );
        assert_eq!(f.severity, 7.0, "label, not another product's own score");
        assert!(!f.is_guardduty());
        assert_eq!(f.resource.kind, ResourceKind::Instance);
        let inst = f.resource.instance.clone().unwrap();
        assert_eq!(inst.instance_id.as_deref(), Some("i-0abc"));
        assert_eq!(inst.network_interfaces.len(), 2);
        assert_eq!(
            inst.network_interfaces[1].network_interface_id.as_deref(),
            Some("eni-2")
        );
        assert_eq!(inst.network_interfaces[1].vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(
            inst.tags,
            vec![Tag {
                key: "Name".into(),
                value: "web".into()
            }]
        );
        let bucket = &f.resource.s3_buckets[0];
        assert_eq!(bucket.name.as_deref(), Some("my-bucket"));
        let flags = bucket
            .public_access
            .clone()
            .unwrap()
            .bucket_block_public_access
            .unwrap();
        assert!(flags.block_public_acls && !flags.block_public_policy);

        // no Region, no ARN anywhere: the first resource's Region; then nothing at all
        let mut v = json!({"Id": "x", "AwsAccountId": "111122223333", "Types": ["T"],
            "Resources": [{"Type": "Other", "Region": "ap-south-1"}]});
        assert_eq!(one(&v).region, "ap-south-1");
        v["Resources"] = json!([]);
        assert_eq!(
            parse(&v),
            Err(ParseError::Missing {
                path: "$.Region".into()
            })
        );
    }

    #[test]
    fn asff_lists_and_the_null_key_id() {
        let mut item = asff_gd();
        item["Resources"][0]["Id"] = json!("AWS::IAM::AccessKey:null");
        item["Resources"][0]["Details"] =
            json!({"AwsIamAccessKey": {"PrincipalName": "bob", "PrincipalType": "AssumedRole"}});
        let list = parse_asff(&json!([item.clone(), item]).to_string()).unwrap();
        assert_eq!(list.len(), 2);
        let key = list[0].resource.access_key.clone().unwrap();
        assert_eq!(key.access_key_id, None);
        assert_eq!(key.user_name.as_deref(), Some("bob"));
        assert_eq!(key.user_type.as_deref(), Some("AssumedRole"));
        assert_eq!(parse_asff("[]").unwrap(), vec![]);
        assert_eq!(
            parse_asff(&json!([asff_gd(), {"Id": 1}]).to_string())
                .unwrap_err()
                .path(),
            Some("$[1].Id")
        );
    }

    #[test]
    fn eventbridge_guardduty_uses_the_detail_account_and_falls_back_to_the_envelope_region() {
        let mut detail = gd();
        detail.as_object_mut().unwrap().remove("region");
        let event = json!({
            "source": "aws.guardduty", "detail-type": "GuardDuty Finding",
            "account": "999999999999", "region": "ap-northeast-1", "detail": detail
        });
        let f = one(&event);
        assert_eq!(f.account_id, "123456789012");
        assert_eq!(f.region, "ap-northeast-1");

        // a partial envelope is recognised by its detail; an account never comes from the
        // envelope: without one in the detail the account is unknown (empty)
        let mut detail = gd();
        detail.as_object_mut().unwrap().remove("accountId");
        let partial = json!({"region": "us-east-1", "account": "999999999999", "detail": detail});
        let f = &parse_eventbridge(&partial.to_string()).unwrap()[0];
        assert_eq!(f.account_id, "");
        // a bare API document still needs its account
        let mut bare = gd();
        bare.as_object_mut().unwrap().remove("accountId");
        assert_eq!(
            parse_guardduty_json(&bare.to_string()),
            Err(ParseError::Missing {
                path: "$.accountId".into()
            })
        );
    }

    #[test]
    fn eventbridge_shapes_that_are_not_findings() {
        let table = [
            json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
            json!({"source": "aws.guardduty", "detail-type": "GuardDuty Malware Protection Object Scan Result", "detail": {}}),
            json!({"source": "aws.securityhub", "detail-type": "Security Hub Insight Results", "detail": {}}),
            json!({"detail": {"something": "else"}}),
        ];
        for event in table {
            assert!(
                matches!(parse(&event), Err(ParseError::UnknownShape(_))),
                "{event}"
            );
        }
        let bad = json!({"source": "aws.guardduty", "detail-type": 5, "detail": gd()});
        assert_eq!(parse(&bad).unwrap_err().path(), Some("$[\"detail-type\"]"));
        let sh = json!({"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported",
            "detail": {"findings": [asff_gd(), asff_gd()]}});
        assert_eq!(parse(&sh).unwrap().len(), 2);
        let sh_bad = json!({"source": "aws.securityhub", "detail": {}});
        assert_eq!(
            parse(&sh_bad),
            Err(ParseError::Missing {
                path: "$.detail.findings".into()
            })
        );
    }

    #[test]
    fn console_urls() {
        let f = one(&gd());
        assert_eq!(
            f.console_url().as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/guardduty/home?region=eu-west-1#/findings?macros=current&fId=abc123")
        );
        let mut cn = f.clone();
        cn.region = "cn-north-1".into();
        assert!(cn
            .console_url()
            .unwrap()
            .starts_with("https://cn-north-1.console.amazonaws.cn/guardduty/"));
        let mut evil = f.clone();
        evil.region = "evil.example/#".into();
        assert_eq!(evil.console_url(), None);

        let mut other = f;
        other.id = "arn:aws:x:y/1".into();
        other.source = FindingSource::SecurityHub {
            product_arn: "arn:aws:securityhub:eu-west-1::product/aws/inspector".into(),
        };
        assert_eq!(
            other.console_url().as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/securityhub/home?region=eu-west-1#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253Aarn%253Aaws%253Ax%253Ay%252F1")
        );
    }

    #[test]
    fn key_paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(key_path("$", "id"), "$.id");
        assert_eq!(key_path("$", "detail-type"), "$[\"detail-type\"]");
        assert_eq!(key_path("$.a", "x/y"), "$.a[\"x/y\"]");
        assert_eq!(key_path("$", "q\""), "$[\"q\\\"\"]");
    }

    #[test]
    fn value_entry_points_prefix_their_paths() {
        let mut v = gd();
        v["severity"] = json!(true);
        assert_eq!(
            parse_guardduty_value(&v, "$.Messages[3].Body")
                .unwrap_err()
                .path(),
            Some("$.Messages[3].Body.severity")
        );
        assert_eq!(
            parse_asff_value(&json!({"Id": []}), "$.Findings[9]")
                .unwrap_err()
                .path(),
            Some("$.Findings[9].Id")
        );
        assert_eq!(parse_guardduty_value(&gd(), "$").unwrap().id, "abc123");
        assert_eq!(parse_guardduty_json("{\"findings\": null}"), Ok(vec![]));
        assert_eq!(parse_guardduty_json("{\"findings\": []}"), Ok(vec![]));
        assert!(matches!(
            parse_guardduty_json("[]"),
            Err(ParseError::WrongType { found: "array", .. })
        ));
        // a bare list of GuardDuty findings is recognised by parse_document
        assert_eq!(parse(&json!([gd(), null, gd()])).unwrap().len(), 2);
    }

    #[test]
    fn snippets_are_bounded() {
        let long = "é".repeat(500);
        assert!(snippet(&long).chars().count() < 80);
    }
}
