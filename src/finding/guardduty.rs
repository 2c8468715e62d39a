//! The GuardDuty API shape: one finding object (camelCase), or the `{"findings": [...]}` that
//! `GetFindings` returns; also the detail of a GuardDuty EventBridge event. The `service.action`
//! block ([`read_action`]) and the block-public-access flags are read here for ASFF too, which
//! carries the same names in PascalCase ([`Case`]).
//!
//! Pure, like all of [`super`].

use serde_json::{Map, Value};

use super::json::{parse_json, Arr, Obj};
use super::{
    account_id, each, region_name, score, unknown_resource, AccessKeyDetails, ActorInfo,
    BlockPublicAccessFlags, BucketPublicAccess, Finding, FindingSource, InstanceDetails,
    NetworkInterface, ParseError, Resource, ResourceKind, S3BucketDetails, SecurityGroupRef,
    SeverityLabel, Tag, UNKNOWN_RESOURCE_TYPE,
};

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

/// Keys only a GuardDuty API finding (camelCase) has at its top level.
pub(super) fn looks_like_guardduty(map: &Map<String, Value>) -> bool {
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

/// `{"findings": [...]}` (`"findings": null` is an empty response), or one finding.
pub(super) fn guardduty_document(root: &Obj<'_>) -> Result<Vec<Finding>, ParseError> {
    if !root.contains_key("findings") {
        return Ok(vec![guardduty_finding(root, None, false)?]);
    }
    match root.arr("findings")? {
        Some(list) => each(&list, |f| guardduty_finding(f, None, false)),
        None => Ok(Vec::new()),
    }
}

/// One GuardDuty finding. `fallback_region` (value, path) stands in for a missing `region`;
/// `in_envelope` is true for the detail of an EventBridge event.
pub(super) fn guardduty_finding(
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
pub(super) fn block_public_access(
    o: &Obj<'_>,
    case: Case,
) -> Result<BlockPublicAccessFlags, ParseError> {
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
pub(super) enum Case {
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
pub(super) fn read_action(
    a: &Obj<'_>,
    case: Case,
    actor: &mut ActorInfo,
) -> Result<(), ParseError> {
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
pub(super) fn fill(slot: &mut Option<String>, value: Option<&str>) {
    if slot.is_none() {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            *slot = Some(v.to_string());
        }
    }
}
