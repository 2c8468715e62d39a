//! Security Hub control findings for tests, in the ASFF shape Security Hub documents for a
//! consolidated control finding (the shared fixtures hold none): one resource each, the FSBP
//! standard, workflow NEW, record ACTIVE.

use serde_json::{json, Value};

/// The account of every finding here.
pub const ACCOUNT: &str = "123456789012";

/// Control finding number `n` of `control` on the resource `resource` (an ARN), with
/// `Compliance.Status` `status`, last updated at `updated` (RFC 3339).
pub fn control_finding(
    n: usize,
    control: &str,
    status: &str,
    resource: &str,
    updated: &str,
) -> Value {
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": format!("arn:aws:securityhub:us-east-1:{ACCOUNT}:security-control/{control}/finding/6c7d8e9f-0000-4000-8000-{n:012}"),
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
        "GeneratorId": format!("security-control/{control}"),
        "AwsAccountId": ACCOUNT,
        "Region": "us-east-1",
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
        "FirstObservedAt": "2026-11-20T08:00:00.000Z",
        "CreatedAt": "2026-11-20T08:00:00.000Z",
        "UpdatedAt": updated,
        "Severity": {"Label": if status == "PASSED" { "INFORMATIONAL" } else { "HIGH" }, "Original": "HIGH"},
        "Title": format!("{control} should pass"),
        "Description": "A control check.",
        "Remediation": {"Recommendation": {
            "Text": "See the Security Hub controls documentation.",
            "Url": format!("https://docs.aws.amazon.com/console/securityhub/{control}/remediation")}},
        "ProductFields": {"aws/securityhub/ProductName": "Security Hub"},
        "Resources": [{"Type": resource_type(resource), "Id": resource, "Partition": "aws", "Region": "us-east-1"}],
        "Compliance": {
            "Status": status,
            "SecurityControlId": control,
            "AssociatedStandards": [
                {"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"}
            ]
        },
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE"
    })
}

/// The ASFF resource type of an ARN.
fn resource_type(arn: &str) -> &'static str {
    if arn.starts_with("arn:aws:s3:::") {
        "AwsS3Bucket"
    } else if arn.contains(":security-group/") {
        "AwsEc2SecurityGroup"
    } else if arn.contains(":user/") {
        "AwsIamUser"
    } else {
        "Other"
    }
}
