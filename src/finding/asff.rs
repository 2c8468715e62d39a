//! ASFF, Security Hub's finding format: one finding, a list, or the `{"Findings": [...]}` that
//! Security Hub's `GetFindings` returns. GuardDuty's findings inside ASFF become GuardDuty
//! findings again (see [`parse_asff`]).
//!
//! Pure, like all of [`super`].

use serde_json::{Map, Value};

use super::guardduty::{block_public_access, fill, read_action, Case};
use super::json::{parse_bool_str, parse_count_str, parse_json, snippet, Arr, Obj};
use super::{
    account_id, each, region_name, score, unknown_resource, AccessKeyDetails, ActorInfo,
    BucketPublicAccess, Finding, FindingSource, InstanceDetails, NetworkInterface, ParseError,
    Resource, ResourceKind, S3BucketDetails, SeverityLabel, Tag, UNKNOWN_RESOURCE_TYPE,
};

/// The resource part of the Security Hub product ARN of GuardDuty
/// (`arn:aws:securityhub:us-east-1::product/aws/guardduty`).
const GUARDDUTY_PRODUCT_RESOURCE: &str = "product/aws/guardduty";

/// The `ProductFields` key prefixes under which Security Hub carries GuardDuty's service fields:
/// older findings use bare keys (`count`), newer ones `aws/guardduty/service/count`.
const PRODUCT_FIELD_PREFIXES: [&str; 2] = ["", "aws/guardduty/service/"];

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

/// Keys only an ASFF finding (PascalCase) has at its top level.
pub(super) fn looks_like_asff(map: &Map<String, Value>) -> bool {
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

/// A list of ASFF findings, `{"Findings": [...]}`, or one finding.
pub(super) fn asff_document(v: &Value) -> Result<Vec<Finding>, ParseError> {
    if let Value::Array(items) = v {
        return each(&Arr::new(items, "$"), asff_finding);
    }
    let root = Obj::new(v, "$")?;
    if !root.contains_key("Findings") {
        return Ok(vec![asff_finding(&root)?]);
    }
    match root.arr("Findings")? {
        Some(list) => each(&list, asff_finding),
        None => Ok(Vec::new()),
    }
}

pub(super) fn asff_finding(f: &Obj<'_>) -> Result<Finding, ParseError> {
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
        path: format!("{}[0]", types.path()),
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
pub(super) fn is_guardduty_product(product_arn: &str) -> bool {
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
pub(super) fn guardduty_type_from_asff(types: &[&str]) -> Option<String> {
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
    for key in tags.keys() {
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
