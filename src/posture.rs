//! Posture: Security Hub control findings, grouped per control, account and region, and the
//! security score. Pure core: no I/O, no clock (every function that needs "now" takes it).
//!
//! * [`parse_control_finding`] reads one ASFF control finding (consolidated, with
//!   `Compliance.SecurityControlId` and `Compliance.AssociatedStandards`, or per standard, with
//!   `ProductFields.ControlId`/`RuleId` and `StandardsArn`/`StandardsGuideArn`). It never panics;
//!   errors name their JSON path.
//! * A [`GroupKey`] is one control in one account, as seen from one Security Hub region (with
//!   cross-region aggregation that region holds them all). [`Group::of`] summarizes its findings:
//!   one control failing on 40 resources is one group, so one card.
//! * [`scores`] computes Security Hub's security score per standard and account: the share of
//!   passed controls among the evaluated ones. A control fails when one of its active,
//!   not-suppressed findings is FAILED, passes when they are all PASSED, and is not evaluated
//!   otherwise (only WARNING or NOT_AVAILABLE, or no findings). Suppressed findings do not count,
//!   as in Security Hub: "When determining control status, Security Hub ignores findings that
//!   have a `RecordState` of ARCHIVED and findings that have a `Workflow.Status` of SUPPRESSED"
//!   (Security Hub User Guide, "Evaluating compliance status and control status",
//!   <https://docs.aws.amazon.com/securityhub/latest/userguide/controls-overall-status.html>),
//!   so a control whose findings are all suppressed has no data and leaves the score.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::finding::{account_id, region_name, snippet, Obj, ParseError};

/// `Compliance.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComplianceStatus {
    Passed,
    Failed,
    Warning,
    NotAvailable,
}

impl ComplianceStatus {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "PASSED" => Some(Self::Passed),
            "FAILED" => Some(Self::Failed),
            "WARNING" => Some(Self::Warning),
            "NOT_AVAILABLE" => Some(Self::NotAvailable),
            _ => None,
        }
    }
}

/// `Workflow.Status` (or the older `WorkflowState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowStatus {
    New,
    Notified,
    Suppressed,
    Resolved,
}

impl WorkflowStatus {
    /// From `Workflow.Status` (or an older `WorkflowState`) as Security Hub writes it.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NEW" => Some(Self::New),
            // `WorkflowState` values, which predate `Workflow.Status`.
            "ASSIGNED" | "IN_PROGRESS" | "NOTIFIED" => Some(Self::Notified),
            "SUPPRESSED" | "DEFERRED" => Some(Self::Suppressed),
            "RESOLVED" => Some(Self::Resolved),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::Notified => "NOTIFIED",
            Self::Suppressed => "SUPPRESSED",
            Self::Resolved => "RESOLVED",
        }
    }
}

/// Security Hub's severity labels, INFORMATIONAL included (passed control findings carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PostureSeverity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl PostureSeverity {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "INFORMATIONAL" => Some(Self::Informational),
            "LOW" => Some(Self::Low),
            "MEDIUM" => Some(Self::Medium),
            "HIGH" => Some(Self::High),
            "CRITICAL" => Some(Self::Critical),
            _ => None,
        }
    }

    /// From `Severity.Normalized` (0–100), as Security Hub maps it to labels.
    fn from_normalized(n: f64) -> Self {
        if n >= 90.0 {
            Self::Critical
        } else if n >= 70.0 {
            Self::High
        } else if n >= 40.0 {
            Self::Medium
        } else if n >= 1.0 {
            Self::Low
        } else {
            Self::Informational
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "Informational",
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

/// One resource a control finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// ASFF type, e.g. `AwsS3Bucket`, `AwsIamUser`, `AwsAccount`.
    pub resource_type: String,
    /// Usually an ARN.
    pub id: String,
}

/// One Security Hub control finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlFinding {
    /// The ASFF `Id` (what `BatchUpdateFindings` names, with `product_arn`).
    pub id: String,
    pub product_arn: String,
    pub account_id: String,
    /// The Security Hub region the finding was read from; `BatchUpdateFindings` goes there.
    pub home_region: String,
    /// The finding's own `Region`.
    pub region: String,
    /// `S3.8`, `IAM.3`, `CIS.1.4`...
    pub control_id: String,
    pub title: String,
    /// Standard ids without their ARN prefix, e.g.
    /// `aws-foundational-security-best-practices/v/1.0.0`.
    pub standards: Vec<String>,
    pub severity: PostureSeverity,
    pub compliance: ComplianceStatus,
    pub archived: bool,
    pub workflow: WorkflowStatus,
    pub resources: Vec<ResourceRef>,
    pub remediation_url: Option<String>,
    pub first_observed_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl ControlFinding {
    pub fn group_key(&self) -> GroupKey {
        GroupKey {
            account_id: self.account_id.clone(),
            region: self.home_region.clone(),
            control_id: self.control_id.clone(),
        }
    }

    /// Counts against the control: active, FAILED, and not suppressed or resolved by a person.
    pub fn is_failing(&self) -> bool {
        !self.archived
            && self.compliance == ComplianceStatus::Failed
            && matches!(
                self.workflow,
                WorkflowStatus::New | WorkflowStatus::Notified
            )
    }

    /// Counts in the score: active and not suppressed.
    fn is_evaluated(&self) -> bool {
        !self.archived && self.workflow != WorkflowStatus::Suppressed
    }
}

/// Whether an ASFF document is a control finding (a compliance check of a security standard),
/// not a threat finding such as GuardDuty's.
pub fn is_control_finding(v: &Value) -> bool {
    let status = v
        .get("Compliance")
        .and_then(|c| c.get("Status"))
        .and_then(Value::as_str);
    status.is_some() && control_id_of(v).is_some()
}

fn control_id_of(v: &Value) -> Option<&str> {
    fn non_empty(s: Option<&Value>) -> Option<&str> {
        s.and_then(Value::as_str).filter(|s| !s.trim().is_empty())
    }
    non_empty(v.get("Compliance").and_then(|c| c.get("SecurityControlId")))
        .or_else(|| non_empty(v.get("ProductFields").and_then(|p| p.get("ControlId"))))
        .or_else(|| non_empty(v.get("ProductFields").and_then(|p| p.get("RuleId"))))
}

/// `arn:aws:securityhub:us-east-1::standards/aws-foundational-security-best-practices/v/1.0.0`,
/// `arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0` or
/// `standards/...` → `aws-foundational-security-best-practices/v/1.0.0`.
pub fn standard_key(s: &str) -> String {
    let s = s.trim();
    for marker in ["standards/", "ruleset/"] {
        if let Some(i) = s.find(marker) {
            return s[i + marker.len()..].to_string();
        }
    }
    s.to_string()
}

/// A readable name for a standard key.
pub fn standard_name(key: &str) -> String {
    const NAMES: [(&str, &str); 6] = [
        (
            "aws-foundational-security-best-practices/",
            "AWS Foundational Security Best Practices",
        ),
        (
            "cis-aws-foundations-benchmark/",
            "CIS AWS Foundations Benchmark",
        ),
        ("pci-dss/", "PCI DSS"),
        ("nist-800-53/", "NIST SP 800-53"),
        (
            "aws-resource-tagging-standard/",
            "AWS Resource Tagging Standard",
        ),
        ("service-managed-aws-control-tower/", "AWS Control Tower"),
    ];
    for (prefix, name) in NAMES {
        if let Some(rest) = key.strip_prefix(prefix) {
            let version = rest.strip_prefix("v/").unwrap_or(rest);
            return format!("{name} v{version}");
        }
    }
    key.to_string()
}

/// Parses one ASFF control finding read from Security Hub in `home_region`.
pub fn parse_control_finding(
    v: &Value,
    path: &str,
    home_region: &str,
) -> Result<ControlFinding, ParseError> {
    let f = Obj::new(v, path)?;
    let id = f.required_str("Id")?.to_string();
    let product_arn = f.str("ProductArn")?.unwrap_or("").to_string();
    let account_id = account_id(f.required_str("AwsAccountId")?, f.path_of("AwsAccountId"))?;
    let home_region = region_name(home_region, "home region".into())?;
    let region = match f.str("Region")? {
        Some(r) => region_name(r, f.path_of("Region"))?,
        None => home_region.clone(),
    };
    let compliance = f.required_obj("Compliance")?;
    let status = compliance.required_str("Status")?;
    let compliance_status = ComplianceStatus::parse(status).ok_or_else(|| ParseError::Invalid {
        path: compliance.path_of("Status"),
        message: format!("{} is not a compliance status", snippet(status)),
    })?;
    let product_fields = f.obj("ProductFields")?;
    let control_id = match compliance.str("SecurityControlId")? {
        Some(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            let pf = product_fields.as_ref().ok_or_else(|| ParseError::Missing {
                path: compliance.path_of("SecurityControlId"),
            })?;
            match (pf.str("ControlId")?, pf.str("RuleId")?) {
                (Some(c), _) | (None, Some(c)) if !c.trim().is_empty() => c.trim().to_string(),
                _ => {
                    return Err(ParseError::Missing {
                        path: compliance.path_of("SecurityControlId"),
                    })
                }
            }
        }
    };

    let mut standards = BTreeSet::new();
    if let Some(list) = compliance.arr("AssociatedStandards")? {
        for s in list.objects() {
            if let Some(id) = s?.str("StandardsId")? {
                standards.insert(standard_key(id));
            }
        }
    }
    if standards.is_empty() {
        if let Some(pf) = &product_fields {
            if let Some(arn) = pf.str("StandardsArn")?.or(pf.str("StandardsGuideArn")?) {
                standards.insert(standard_key(arn));
            }
        }
    }

    let severity = match f.obj("Severity")? {
        Some(s) => match s.str("Label")? {
            Some(l) => PostureSeverity::parse(l).ok_or_else(|| ParseError::Invalid {
                path: s.path_of("Label"),
                message: format!("{} is not a severity label", snippet(l)),
            })?,
            None => PostureSeverity::from_normalized(s.f64("Normalized")?.unwrap_or(0.0)),
        },
        None => PostureSeverity::Informational,
    };
    let from_workflow = match f.obj("Workflow")? {
        Some(w) => w.str("Status")?.map(|s| (s, w.path_of("Status"))),
        None => None,
    };
    let workflow = match from_workflow {
        Some(found) => Some(found),
        None => f
            .str("WorkflowState")?
            .map(|s| (s, f.path_of("WorkflowState"))),
    };
    let workflow = match workflow {
        Some((s, path)) => WorkflowStatus::parse(s).ok_or_else(|| ParseError::Invalid {
            path,
            message: format!("{} is not a workflow status", snippet(s)),
        })?,
        None => WorkflowStatus::New,
    };
    let mut resources = Vec::new();
    if let Some(list) = f.arr("Resources")? {
        for r in list.objects() {
            let r = r?;
            resources.push(ResourceRef {
                resource_type: r.string_or_empty("Type")?,
                id: r.required_str("Id")?.to_string(),
            });
        }
    }
    let remediation_url = match f.obj("Remediation")? {
        Some(rem) => match rem.obj("Recommendation")? {
            Some(rec) => rec.opt_string("Url")?,
            None => None,
        },
        None => None,
    };
    Ok(ControlFinding {
        id,
        product_arn,
        account_id,
        home_region,
        region,
        control_id,
        title: f.string_or_empty("Title")?,
        standards: standards.into_iter().collect(),
        severity,
        compliance: compliance_status,
        archived: f.str("RecordState")? == Some("ARCHIVED"),
        workflow,
        resources,
        remediation_url,
        first_observed_at: f.time("FirstObservedAt")?,
        updated_at: f.time("UpdatedAt")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

/// One control in one account, as one Security Hub region reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKey {
    pub account_id: String,
    pub region: String,
    pub control_id: String,
}

impl GroupKey {
    /// `account/region/control`: the store key prefix, the card key and the button payload.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.account_id, self.region, self.control_id)
    }

    pub fn decode(s: &str) -> Option<GroupKey> {
        let mut parts = s.splitn(3, '/');
        let (account_id, region, control_id) = (parts.next()?, parts.next()?, parts.next()?);
        if account_id.is_empty() || region.is_empty() || control_id.is_empty() {
            return None;
        }
        Some(GroupKey {
            account_id: account_id.into(),
            region: region.into(),
            control_id: control_id.into(),
        })
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "control {} in account {} ({})",
            self.control_id, self.account_id, self.region
        )
    }
}

/// Where a group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// At least one failing finding in workflow NEW.
    Failing,
    /// Failing, and every failing finding was acknowledged (NOTIFIED).
    Acknowledged,
    /// No failing finding; some FAILED ones are suppressed.
    Suppressed,
    /// Nothing fails any more.
    Resolved,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Acknowledged => "acknowledged",
            Self::Suppressed => "suppressed",
            Self::Resolved => "resolved",
        }
    }
}

/// What a posture card shows: one control in one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub key: GroupKey,
    pub title: String,
    pub standards: Vec<String>,
    /// The highest severity of the failing findings (of any, when none fails).
    pub severity: PostureSeverity,
    pub status: GroupStatus,
    /// The resources of the failing findings, sorted, each once.
    pub failing: Vec<ResourceRef>,
    /// Failing findings (ASFF `Id`, `ProductArn`), sorted.
    pub failing_findings: Vec<(String, String)>,
    /// Failing findings still in workflow NEW.
    pub new_count: usize,
    pub suppressed_count: usize,
    pub passed_count: usize,
    pub remediation_url: Option<String>,
    /// The earliest `FirstObservedAt` of the failing findings.
    pub failing_since: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Group {
    /// Summarizes the findings of one group (`None` when there are none).
    pub fn of(findings: &[ControlFinding]) -> Option<Group> {
        let first = findings.first()?;
        let failing: Vec<&ControlFinding> = findings.iter().filter(|f| f.is_failing()).collect();
        let suppressed_count = findings
            .iter()
            .filter(|f| {
                !f.archived
                    && f.compliance == ComplianceStatus::Failed
                    && f.workflow == WorkflowStatus::Suppressed
            })
            .count();
        let new_count = failing
            .iter()
            .filter(|f| f.workflow == WorkflowStatus::New)
            .count();
        let status = if new_count > 0 {
            GroupStatus::Failing
        } else if !failing.is_empty() {
            GroupStatus::Acknowledged
        } else if suppressed_count > 0 {
            GroupStatus::Suppressed
        } else {
            GroupStatus::Resolved
        };
        let severity_of = |set: &mut dyn Iterator<Item = &ControlFinding>| {
            set.map(|f| f.severity)
                .max()
                .unwrap_or(PostureSeverity::Informational)
        };
        let severity = if failing.is_empty() {
            severity_of(&mut findings.iter())
        } else {
            severity_of(&mut failing.iter().copied())
        };
        // The newest finding names the control best (titles change between versions).
        let newest = findings
            .iter()
            .max_by_key(|f| f.updated_at)
            .unwrap_or(first);
        let resources: BTreeSet<ResourceRef> = failing
            .iter()
            .flat_map(|f| f.resources.iter().cloned())
            .collect();
        let mut failing_findings: Vec<(String, String)> = failing
            .iter()
            .map(|f| (f.id.clone(), f.product_arn.clone()))
            .collect();
        failing_findings.sort();
        let standards: BTreeSet<String> = findings
            .iter()
            .flat_map(|f| f.standards.iter().cloned())
            .collect();
        Some(Group {
            key: first.group_key(),
            title: newest.title.clone(),
            standards: standards.into_iter().collect(),
            severity,
            status,
            failing: resources.into_iter().collect(),
            failing_findings,
            new_count,
            suppressed_count,
            passed_count: findings
                .iter()
                .filter(|f| !f.archived && f.compliance == ComplianceStatus::Passed)
                .count(),
            remediation_url: findings.iter().find_map(|f| f.remediation_url.clone()),
            failing_since: failing.iter().filter_map(|f| f.first_observed_at).min(),
            updated_at: findings.iter().filter_map(|f| f.updated_at).max(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Score
// ---------------------------------------------------------------------------------------------

/// The score of one standard in one account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScoreRow {
    /// [`standard_key`] form.
    pub standard: String,
    pub account_id: String,
    pub passed: u32,
    /// Evaluated controls (passed + failed).
    pub total: u32,
}

impl ScoreRow {
    /// Percentage of passed controls; `None` when no control was evaluated.
    pub fn percent(&self) -> Option<f64> {
        (self.total > 0).then(|| f64::from(self.passed) * 100.0 / f64::from(self.total))
    }
}

/// The score of every standard in every account that has evaluated controls, sorted.
pub fn scores<'a>(findings: impl IntoIterator<Item = &'a ControlFinding>) -> Vec<ScoreRow> {
    // (standard, account, control) → (any failed, any passed)
    let mut controls: BTreeMap<(&str, &str, &str), (bool, bool)> = BTreeMap::new();
    for f in findings {
        if !f.is_evaluated() {
            continue;
        }
        let (failed, passed) = match f.compliance {
            ComplianceStatus::Failed => (true, false),
            ComplianceStatus::Passed => (false, true),
            ComplianceStatus::Warning | ComplianceStatus::NotAvailable => (false, false),
        };
        for standard in &f.standards {
            let e = controls
                .entry((standard, &f.account_id, &f.control_id))
                .or_default();
            e.0 |= failed;
            e.1 |= passed;
        }
    }
    let mut rows: BTreeMap<(&str, &str), ScoreRow> = BTreeMap::new();
    for ((standard, account, _), (failed, passed)) in controls {
        if !failed && !passed {
            continue;
        }
        let row = rows.entry((standard, account)).or_insert_with(|| ScoreRow {
            standard: standard.to_string(),
            account_id: account.to_string(),
            passed: 0,
            total: 0,
        });
        row.total += 1;
        if !failed {
            row.passed += 1;
        }
    }
    rows.into_values().collect()
}

/// The scores recorded on one day (the last of that day's records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub date: NaiveDate,
    pub rows: Vec<ScoreRow>,
}

impl Snapshot {
    pub fn row(&self, standard: &str, account: &str) -> Option<&ScoreRow> {
        self.rows
            .iter()
            .find(|r| r.standard == standard && r.account_id == account)
    }
}

/// Change in percentage points of `now` against `then` (`None` when either is not evaluated).
pub fn trend(now: &ScoreRow, then: Option<&ScoreRow>) -> Option<f64> {
    Some(now.percent()? - then?.percent()?)
}

/// Rows whose score fell by more than `points` against `baseline`.
pub fn drops<'a>(
    now: &'a [ScoreRow],
    baseline: &Snapshot,
    points: f64,
) -> Vec<(&'a ScoreRow, f64)> {
    now.iter()
        .filter_map(|r| {
            let d = trend(r, baseline.row(&r.standard, &r.account_id))?;
            (d < -points).then_some((r, d))
        })
        .collect()
}

/// Controls whose failure started most recently: (key, failing since), newest first.
pub fn recently_failed(groups: &[Group], limit: usize) -> Vec<(&Group, DateTime<Utc>)> {
    let mut failing: Vec<(&Group, DateTime<Utc>)> = groups
        .iter()
        .filter(|g| matches!(g.status, GroupStatus::Failing | GroupStatus::Acknowledged))
        .filter_map(|g| Some((g, g.failing_since.or(g.updated_at)?)))
        .collect();
    failing.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.key.cmp(&b.0.key)));
    failing.truncate(limit);
    failing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A consolidated control finding in the documented ASFF shape.
    fn control(id: &str, control: &str, status: &str, bucket: &str) -> Value {
        json!({
            "SchemaVersion": "2018-10-08",
            "Id": format!("arn:aws:securityhub:us-east-1:123456789012:security-control/{control}/finding/{id}"),
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
            "GeneratorId": format!("security-control/{control}"),
            "AwsAccountId": "123456789012",
            "Region": "us-east-1",
            "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
            "FirstObservedAt": "2026-11-20T08:00:00.000Z",
            "UpdatedAt": "2026-11-27T08:00:00.000Z",
            "CreatedAt": "2026-11-20T08:00:00.000Z",
            "Severity": {"Label": "HIGH", "Normalized": 70, "Original": "HIGH"},
            "Title": "S3 general purpose buckets should block public access",
            "Remediation": {"Recommendation": {
                "Text": "For information on how to correct this issue, consult the AWS Security Hub controls documentation.",
                "Url": format!("https://docs.aws.amazon.com/console/securityhub/{control}/remediation")}},
            "ProductFields": {"aws/securityhub/ProductName": "Security Hub"},
            "Resources": [{"Type": "AwsS3Bucket", "Id": format!("arn:aws:s3:::{bucket}"), "Partition": "aws", "Region": "us-east-1"}],
            "Compliance": {
                "Status": status,
                "SecurityControlId": control,
                "AssociatedStandards": [
                    {"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"},
                    {"StandardsId": "standards/cis-aws-foundations-benchmark/v/1.4.0"}
                ]
            },
            "Workflow": {"Status": "NEW"},
            "WorkflowState": "NEW",
            "RecordState": "ACTIVE"
        })
    }

    fn parse(v: &Value) -> ControlFinding {
        parse_control_finding(v, "$", "us-east-1").unwrap()
    }

    #[test]
    fn a_consolidated_control_finding_parses() {
        let f = parse(&control("a1", "S3.8", "FAILED", "b1"));
        assert_eq!(f.control_id, "S3.8");
        assert_eq!(f.compliance, ComplianceStatus::Failed);
        assert_eq!(f.severity, PostureSeverity::High);
        assert_eq!(
            f.standards,
            vec![
                "aws-foundational-security-best-practices/v/1.0.0".to_string(),
                "cis-aws-foundations-benchmark/v/1.4.0".to_string()
            ]
        );
        assert_eq!(f.resources[0].id, "arn:aws:s3:::b1");
        assert_eq!(
            f.remediation_url.as_deref(),
            Some("https://docs.aws.amazon.com/console/securityhub/S3.8/remediation")
        );
        assert!(f.is_failing());
        assert_eq!(f.group_key().encode(), "123456789012/us-east-1/S3.8");
    }

    #[test]
    fn a_per_standard_finding_takes_its_control_and_standard_from_product_fields() {
        let mut v = control("a1", "S3.8", "PASSED", "b1");
        v["Compliance"] = json!({"Status": "PASSED"});
        v["ProductFields"] = json!({
            "StandardsArn": "arn:aws:securityhub:::standards/aws-foundational-security-best-practices/v/1.0.0",
            "ControlId": "S3.8"
        });
        let f = parse(&v);
        assert_eq!(f.control_id, "S3.8");
        assert_eq!(
            f.standards,
            vec!["aws-foundational-security-best-practices/v/1.0.0"]
        );
        assert!(is_control_finding(&v));

        v["ProductFields"] = json!({
            "StandardsGuideArn": "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0",
            "RuleId": "1.4"
        });
        let f = parse(&v);
        assert_eq!(f.control_id, "1.4");
        assert_eq!(f.standards, vec!["cis-aws-foundations-benchmark/v/1.2.0"]);
        assert_eq!(
            standard_name(&f.standards[0]),
            "CIS AWS Foundations Benchmark v1.2.0"
        );
    }

    #[test]
    fn threat_findings_are_not_control_findings_and_bad_input_names_its_path() {
        let mut v = control("a1", "S3.8", "FAILED", "b1");
        v.as_object_mut().map(|o| o.remove("Compliance"));
        assert!(!is_control_finding(&v));
        assert_eq!(
            parse_control_finding(&v, "$", "us-east-1")
                .unwrap_err()
                .path(),
            Some("$.Compliance")
        );
        let mut v = control("a1", "S3.8", "BROKEN", "b1");
        let e = parse_control_finding(&v, "$", "us-east-1").unwrap_err();
        assert_eq!(e.path(), Some("$.Compliance.Status"), "{e}");
        v["Compliance"]["Status"] = json!("FAILED");
        v["Resources"] = json!([{"Type": "AwsS3Bucket"}]);
        let e = parse_control_finding(&v, "$", "us-east-1").unwrap_err();
        assert_eq!(e.path(), Some("$.Resources[0].Id"), "{e}");
        // Never panics on any truncation or type change.
        let text = control("a1", "S3.8", "FAILED", "b1").to_string();
        for end in 0..text.len() {
            if let Ok(v) = serde_json::from_str::<Value>(&text[..end]) {
                let _ = parse_control_finding(&v, "$", "us-east-1");
            }
        }
        for key in [
            "Compliance",
            "Resources",
            "Severity",
            "Workflow",
            "Id",
            "Region",
        ] {
            for bad in [json!(1), json!("x"), json!([]), json!({}), Value::Null] {
                let mut v = control("a1", "S3.8", "FAILED", "b1");
                v[key] = bad;
                let _ = parse_control_finding(&v, "$", "us-east-1");
            }
        }
    }

    #[test]
    fn forty_failures_of_one_control_are_one_group_and_passing_again_resolves_it() {
        let findings: Vec<ControlFinding> = (0..40)
            .map(|i| {
                parse(&control(
                    &format!("f{i:02}"),
                    "S3.8",
                    "FAILED",
                    &format!("bucket-{i:02}"),
                ))
            })
            .collect();
        let g = Group::of(&findings).unwrap();
        assert_eq!(g.status, GroupStatus::Failing);
        assert_eq!(g.failing.len(), 40);
        assert_eq!(g.failing_findings.len(), 40);
        assert_eq!(g.new_count, 40);
        assert_eq!(g.severity, PostureSeverity::High);
        assert_eq!(g.failing[0].id, "arn:aws:s3:::bucket-00");

        let mut passing = findings.clone();
        for f in &mut passing {
            f.compliance = ComplianceStatus::Passed;
        }
        let g = Group::of(&passing).unwrap();
        assert_eq!(g.status, GroupStatus::Resolved);
        assert!(g.failing.is_empty());
        assert_eq!(g.passed_count, 40);

        let mut archived = findings.clone();
        for f in &mut archived {
            f.archived = true;
        }
        assert_eq!(Group::of(&archived).unwrap().status, GroupStatus::Resolved);

        let mut handled = findings;
        for f in &mut handled {
            f.workflow = WorkflowStatus::Notified;
        }
        assert_eq!(
            Group::of(&handled).unwrap().status,
            GroupStatus::Acknowledged
        );
        for f in &mut handled {
            f.workflow = WorkflowStatus::Suppressed;
        }
        let g = Group::of(&handled).unwrap();
        assert_eq!(g.status, GroupStatus::Suppressed);
        assert_eq!(g.suppressed_count, 40);
    }

    #[test]
    fn scores_match_a_hand_count() {
        // Account A, FSBP and CIS (every control below is in both):
        //   S3.8: one FAILED of two          → failed
        //   IAM.3: PASSED                    → passed
        //   EC2.2: PASSED, one FAILED but SUPPRESSED → passed (suppressed does not count)
        //   KMS.4: WARNING only              → not evaluated
        //   RDS.1: FAILED but ARCHIVED       → not evaluated
        // → 2 passed of 3 evaluated in each standard: 66.7 %.
        // Account B: S3.8 FAILED → 0 of 1.
        let mut all = vec![
            parse(&control("1", "S3.8", "FAILED", "b1")),
            parse(&control("2", "S3.8", "PASSED", "b2")),
            parse(&control("3", "IAM.3", "PASSED", "u1")),
            parse(&control("4", "EC2.2", "PASSED", "sg1")),
            parse(&control("5", "EC2.2", "FAILED", "sg2")),
            parse(&control("6", "KMS.4", "WARNING", "k1")),
            parse(&control("7", "RDS.1", "FAILED", "db1")),
        ];
        all[4].workflow = WorkflowStatus::Suppressed;
        all[6].archived = true;
        let mut b = parse(&control("8", "S3.8", "FAILED", "b3"));
        b.account_id = "210987654321".into();
        all.push(b);

        let rows = scores(&all);
        let row = |std: &str, acct: &str| {
            rows.iter()
                .find(|r| r.standard.starts_with(std) && r.account_id == acct)
                .cloned()
                .unwrap()
        };
        let fsbp = row("aws-foundational", "123456789012");
        assert_eq!((fsbp.passed, fsbp.total), (2, 3));
        assert!((fsbp.percent().unwrap() - 66.666).abs() < 0.01);
        let cis = row("cis-aws", "123456789012");
        assert_eq!((cis.passed, cis.total), (2, 3));
        let other = row("aws-foundational", "210987654321");
        assert_eq!((other.passed, other.total), (0, 1));
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn trend_and_drops_compare_with_a_snapshot() {
        let now = ScoreRow {
            standard: "s".into(),
            account_id: "a".into(),
            passed: 6,
            total: 10,
        };
        let before = Snapshot {
            date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            rows: vec![ScoreRow {
                passed: 8,
                ..now.clone()
            }],
        };
        assert_eq!(trend(&now, before.row("s", "a")), Some(-20.0));
        assert_eq!(trend(&now, before.row("s", "other")), None);
        let rows = [now.clone()];
        assert_eq!(drops(&rows, &before, 10.0).len(), 1);
        assert!(drops(&rows, &before, 20.0).is_empty());
    }

    #[test]
    fn group_keys_round_trip() {
        let k = GroupKey {
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            control_id: "CIS.1/2".into(),
        };
        assert_eq!(GroupKey::decode(&k.encode()), Some(k));
        assert_eq!(GroupKey::decode("a/b"), None);
        assert_eq!(GroupKey::decode("//x"), None);
    }
}
