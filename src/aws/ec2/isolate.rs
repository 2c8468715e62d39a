//! Step 5, isolate: every network interface to the transition group, then to the quarantine
//! group (see the module header of [`crate::aws::ec2`] for why in two moves).
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

use super::*;

const DESCRIBE_ENIS: &str = "ec2:DescribeNetworkInterfaces";
const DESCRIBE_GROUPS: &str = "ec2:DescribeSecurityGroups";
const MODIFY_ENI: &str = "ec2:ModifyNetworkInterfaceAttribute";
const CREATE_GROUP: &str = "ec2:CreateSecurityGroup";
const AUTHORIZE_INGRESS: &str = "ec2:AuthorizeSecurityGroupIngress";
const AUTHORIZE_EGRESS: &str = "ec2:AuthorizeSecurityGroupEgress";
const REVOKE_INGRESS: &str = "ec2:RevokeSecurityGroupIngress";
const REVOKE_EGRESS: &str = "ec2:RevokeSecurityGroupEgress";

/// One network interface of the instance and its groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Interface {
    network_interface_id: String,
    vpc_id: String,
    groups: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Prior {
    interfaces: Vec<Interface>,
    /// VPC id -> quarantine group id, for the VPCs where it existed at capture.
    quarantine_groups: BTreeMap<String, String>,
    /// VPC id -> transition group id, likewise.
    #[serde(default)]
    transition_groups: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Applied {
    /// Interface id -> the groups it has now (the quarantine group).
    interfaces: BTreeMap<String, Vec<String>>,
    quarantine_groups: BTreeMap<String, String>,
    transition_groups: BTreeMap<String, String>,
    /// Groups this step created.
    created_groups: Vec<String>,
    note: String,
}

/// The instance's interfaces at this moment, with their groups as the interfaces report
/// them (DescribeNetworkInterfaces is the interface's own truth).
async fn interfaces(client: &aws_sdk_ec2::Client, id: &str) -> Result<Vec<Interface>, AwsError> {
    let instance = describe_instance(client, id).await?;
    let ids: Vec<String> = instance
        .network_interfaces()
        .iter()
        .filter_map(|n| n.network_interface_id().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err(AwsError::local(
            ErrorClass::Other,
            DESCRIBE_INSTANCES,
            id,
            format!("instance {id} has no network interface to isolate (is it terminated?)"),
        ));
    }
    let mut found = describe_interfaces(client, id, &ids).await?;
    // Keep the instance's order (device index order as EC2 lists them).
    found.sort_by_key(|i| ids.iter().position(|x| x == &i.network_interface_id));
    Ok(found)
}

async fn describe_interfaces(
    client: &aws_sdk_ec2::Client,
    resource: &str,
    ids: &[String],
) -> Result<Vec<Interface>, AwsError> {
    let out = client
        .describe_network_interfaces()
        .set_network_interface_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| classify(&e, DESCRIBE_ENIS, resource))?;
    Ok(out
        .network_interfaces()
        .iter()
        .filter_map(|n| {
            Some(Interface {
                network_interface_id: n.network_interface_id()?.to_string(),
                vpc_id: n.vpc_id().unwrap_or_default().to_string(),
                groups: n
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned))
                    .collect(),
            })
        })
        .collect())
}

/// The group of that name in that VPC, if any.
async fn find_group(
    client: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
) -> Result<Option<SecurityGroup>, AwsError> {
    let out = client
        .describe_security_groups()
        .filters(filter("group-name", name))
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(|e| classify(&e, DESCRIBE_GROUPS, vpc))?;
    Ok(out.security_groups().first().cloned())
}

async fn find_groups(
    client: &aws_sdk_ec2::Client,
    vpcs: &[String],
    name: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    // One lookup per VPC, concurrently.
    let found = each_bounded(vpcs, |vpc| async move {
        let group = find_group(client, vpc, name).await?;
        Ok(group.and_then(|g| g.group_id).map(|id| (vpc.clone(), id)))
    })
    .await?;
    Ok(found.into_iter().flatten().collect())
}

fn vpcs(interfaces: &[Interface]) -> Vec<String> {
    let mut v: Vec<String> = interfaces.iter().map(|i| i.vpc_id.clone()).collect();
    v.sort();
    v.dedup();
    v
}

fn is_quarantined(i: &Interface, quarantine: &BTreeMap<String, String>) -> bool {
    quarantine
        .get(&i.vpc_id)
        .is_some_and(|q| i.groups.len() == 1 && &i.groups[0] == q)
}

pub(super) async fn capture(
    client: &aws_sdk_ec2::Client,
    id: &str,
    names: &GroupNames,
) -> Result<Captured, AwsError> {
    let interfaces = interfaces(client, id).await?;
    let vpcs = vpcs(&interfaces);
    let (quarantine_groups, transition_groups) = tokio::try_join!(
        find_groups(client, &vpcs, &names.quarantine),
        find_groups(client, &vpcs, &names.transition)
    )?;
    let done = interfaces
        .iter()
        .all(|i| is_quarantined(i, &quarantine_groups));
    Ok(Captured {
        prior: to_record(&Prior {
            interfaces,
            quarantine_groups,
            transition_groups,
        }),
        already_in_target_state: done,
    })
}

fn all_traffic(ipv6: bool) -> IpPermission {
    let p = IpPermission::builder().ip_protocol(ALL_PROTOCOLS);
    if ipv6 {
        p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(ALL_IPV6).build())
            .build()
    } else {
        p.ip_ranges(IpRange::builder().cidr_ip(ALL_IPV4).build())
            .build()
    }
}

/// Whether the rules contain "all protocols from/to everywhere" for IPv4 or IPv6.
fn allows_all(rules: &[IpPermission], ipv6: bool) -> bool {
    rules.iter().any(|p| {
        p.ip_protocol() == Some(ALL_PROTOCOLS)
            && if ipv6 {
                p.ipv6_ranges()
                    .iter()
                    .any(|r| r.cidr_ipv6() == Some(ALL_IPV6))
            } else {
                p.ip_ranges().iter().any(|r| r.cidr_ip() == Some(ALL_IPV4))
            }
    })
}

/// Finds or creates one of the two per-VPC groups. Returns its id and whether it was
/// created now.
///
/// `existed`: the capture found a group of that name in the VPC. When it did not, the group is
/// created straight away (one lookup fewer); if another run made it since, the create answers
/// `InvalidGroup.Duplicate` and that group is used, exactly as if it had been found.
async fn ensure_group(
    client: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    purpose: &str,
    existed: bool,
) -> Result<(String, bool), AwsError> {
    let found = if existed {
        find_group(client, vpc, name).await?
    } else {
        None
    };
    let (group, created) = match found {
        Some(g) => (g, false),
        None => create_group(client, vpc, name, purpose).await?,
    };
    let gid = group.group_id().unwrap_or_default().to_string();
    let ours = group
        .tags()
        .iter()
        .any(|t| t.key() == Some(TAG_PURPOSE) && t.value() == Some(purpose));
    if purpose == PURPOSE_QUARANTINE {
        let open = !group.ip_permissions().is_empty() || !group.ip_permissions_egress().is_empty();
        if open && !(created || ours) {
            // Someone else's group of that name lets traffic through: isolating into it
            // would not isolate. Fail rather than pretend.
            return Err(AwsError::local(
                ErrorClass::Other,
                DESCRIBE_GROUPS,
                &gid,
                format!(
                    "security group {gid} ({name} in {vpc}) has rules ({} inbound, {} \
                     outbound), so it would not isolate; remove them or tag it \
                     {TAG_PURPOSE}={PURPOSE_QUARANTINE} to let hanko empty it",
                    group.ip_permissions().len(),
                    group.ip_permissions_egress().len()
                ),
            ));
        }
        strip_rules(client, &group).await?;
    } else if created || ours {
        // Complete hanko's own transition group (a run may have stopped half-way through
        // creating it): all traffic both ways, IPv4 and IPv6, so flows are not tracked.
        // Outbound 0.0.0.0/0 is every group's default rule.
        let ingress = group.ip_permissions();
        let egress = group.ip_permissions_egress();
        let missing = [
            (AUTHORIZE_INGRESS, false, allows_all(ingress, false)),
            (AUTHORIZE_INGRESS, true, allows_all(ingress, true)),
            (AUTHORIZE_EGRESS, false, allows_all(egress, false)),
            (AUTHORIZE_EGRESS, true, allows_all(egress, true)),
        ];
        // The missing rules are independent of each other: added concurrently.
        let gid = gid.as_str();
        let add = missing.into_iter().filter(|(_, _, present)| !present).map(
            |(op, ipv6, _)| async move {
                if op == AUTHORIZE_INGRESS {
                    client
                        .authorize_security_group_ingress()
                        .group_id(gid)
                        .ip_permissions(all_traffic(ipv6))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, op, gid))
                } else {
                    client
                        .authorize_security_group_egress()
                        .group_id(gid)
                        .ip_permissions(all_traffic(ipv6))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, op, gid))
                }
            },
        );
        futures_util::future::try_join_all(add).await?;
    }
    Ok((gid, created))
}

async fn create_group(
    client: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    purpose: &str,
) -> Result<(SecurityGroup, bool), AwsError> {
    // Descriptions are free of spaces: moto 5.2 miscomputes SigV4 over form values with
    // spaces from the Rust SDK, which would hide its IAM enforcement from our tests.
    let description = if purpose == PURPOSE_QUARANTINE {
        "hanko-quarantine:no-traffic-in-or-out"
    } else {
        "hanko-isolation-transition:all-traffic-so-flows-stop-being-tracked"
    };
    let res = client
        .create_security_group()
        .group_name(name)
        .vpc_id(vpc)
        .description(description)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(tag(TAG_PURPOSE, purpose))
                .build(),
        )
        .send()
        .await;
    let created = match res {
        Ok(_) => true,
        // Another run created it in the meantime: use that one.
        Err(e) if e.code() == Some("InvalidGroup.Duplicate") => false,
        Err(e) => return Err(classify(&e, CREATE_GROUP, vpc)),
    };
    let group = find_group(client, vpc, name).await?.ok_or_else(|| {
        AwsError::local(
            ErrorClass::Other,
            CREATE_GROUP,
            vpc,
            format!("security group {name} in {vpc} was created but cannot be found"),
        )
    })?;
    Ok((group, created))
}

/// Revokes every inbound and outbound rule of the group (the quarantine group's default
/// outbound rule, or rules added to hanko's own group later).
async fn strip_rules(client: &aws_sdk_ec2::Client, group: &SecurityGroup) -> Result<(), AwsError> {
    let gid = group.group_id().unwrap_or_default();
    // Inbound and outbound rules are independent: revoked concurrently.
    let inbound = async {
        if group.ip_permissions().is_empty() {
            return Ok(());
        }
        client
            .revoke_security_group_ingress()
            .group_id(gid)
            .set_ip_permissions(Some(group.ip_permissions().to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, REVOKE_INGRESS, gid))
    };
    let outbound = async {
        if group.ip_permissions_egress().is_empty() {
            return Ok(());
        }
        client
            .revoke_security_group_egress()
            .group_id(gid)
            .set_ip_permissions(Some(group.ip_permissions_egress().to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, REVOKE_EGRESS, gid))
    };
    tokio::try_join!(inbound, outbound)?;
    Ok(())
}

async fn move_interface(
    client: &aws_sdk_ec2::Client,
    eni: &str,
    groups: &[String],
) -> Result<(), AwsError> {
    client
        .modify_network_interface_attribute()
        .network_interface_id(eni)
        .set_groups(Some(groups.to_vec()))
        .send()
        .await
        .map_err(|e| classify(&e, MODIFY_ENI, eni))?;
    Ok(())
}

pub(super) async fn apply(
    client: &aws_sdk_ec2::Client,
    id: &str,
    names: &GroupNames,
    prior: &Value,
    ctx: &StepCtx,
) -> Result<Value, AwsError> {
    let prior: Prior = from_record(prior, "captured", id)?;
    if ctx.dry_run {
        return dry_run(client, names, &prior).await;
    }
    // Each VPC's two groups are independent of each other and of the other VPCs' groups: made
    // ready concurrently.
    let vpcs = vpcs(&prior.interfaces);
    let ready = each_bounded(&vpcs, |vpc| async {
        let (transition, quarantine) = tokio::try_join!(
            ensure_group(
                client,
                vpc,
                &names.transition,
                PURPOSE_TRANSITION,
                prior.transition_groups.contains_key(vpc),
            ),
            ensure_group(
                client,
                vpc,
                &names.quarantine,
                PURPOSE_QUARANTINE,
                prior.quarantine_groups.contains_key(vpc),
            )
        )?;
        Ok((vpc.clone(), transition, quarantine))
    })
    .await?;
    let mut quarantine_groups = BTreeMap::new();
    let mut transition_groups = BTreeMap::new();
    let mut created_groups = Vec::new();
    for (vpc, (transition, t_created), (quarantine, q_created)) in ready {
        if t_created {
            created_groups.push(transition.clone());
        }
        if q_created {
            created_groups.push(quarantine.clone());
        }
        transition_groups.insert(vpc.clone(), transition);
        quarantine_groups.insert(vpc, quarantine);
    }
    // An interface already in the quarantine group alone (a resumed step) stays there:
    // moving it through the transition group would open it again for a moment.
    let pending: Vec<&Interface> = prior
        .interfaces
        .iter()
        .filter(|i| !is_quarantined(i, &quarantine_groups))
        .collect();
    // Each interface moves to the transition group, then to the quarantine group; different
    // interfaces are independent, so their moves overlap (at most EC2_CONCURRENCY at once).
    each_bounded(&pending, |i| {
        // Every VPC of the captured interfaces got its groups above.
        let to = |phase: &BTreeMap<String, String>| -> Vec<String> {
            phase.get(&i.vpc_id).cloned().into_iter().collect()
        };
        let (transition, quarantine) = (to(&transition_groups), to(&quarantine_groups));
        async move {
            move_interface(client, &i.network_interface_id, &transition).await?;
            move_interface(client, &i.network_interface_id, &quarantine).await
        }
    })
    .await?;
    let interfaces = prior
        .interfaces
        .iter()
        .map(|i| {
            (
                i.network_interface_id.clone(),
                quarantine_groups
                    .get(&i.vpc_id)
                    .cloned()
                    .into_iter()
                    .collect(),
            )
        })
        .collect();
    Ok(to_record(&Applied {
        interfaces,
        quarantine_groups,
        transition_groups,
        created_groups,
        note: TRACKED_CONNECTIONS_NOTE.into(),
    }))
}

async fn dry_run(
    client: &aws_sdk_ec2::Client,
    names: &GroupNames,
    prior: &Prior,
) -> Result<Value, AwsError> {
    let mut dry = DryRun::default();
    for vpc in vpcs(&prior.interfaces) {
        for (groups, purpose, name_hint) in [
            (
                &prior.transition_groups,
                PURPOSE_TRANSITION,
                &names.transition,
            ),
            (
                &prior.quarantine_groups,
                PURPOSE_QUARANTINE,
                &names.quarantine,
            ),
        ] {
            if groups.contains_key(&vpc) {
                continue;
            }
            let res = client
                .create_security_group()
                .group_name(name_hint)
                .vpc_id(&vpc)
                .description("hanko dry run")
                .dry_run(true)
                .send()
                .await;
            let params = json!({"GroupName": name_hint, "VpcId": vpc,
                "Tags": {TAG_PURPOSE: purpose}});
            dry.sent(res, CREATE_GROUP, &vpc, params)?;
            let rules = if purpose == PURPOSE_QUARANTINE {
                vec![(REVOKE_EGRESS, ALL_IPV4)]
            } else {
                vec![
                    (AUTHORIZE_INGRESS, ALL_IPV4),
                    (AUTHORIZE_INGRESS, ALL_IPV6),
                    (AUTHORIZE_EGRESS, ALL_IPV6),
                ]
            };
            for (op, cidr) in rules {
                dry.described(
                    op,
                    json!({"GroupName": name_hint, "VpcId": vpc,
                    "IpProtocol": ALL_PROTOCOLS, "Cidr": cidr}),
                );
            }
        }
    }
    for i in &prior.interfaces {
        // With the group ids that exist now: the quarantine group if there is one, else
        // the interface's own groups (DryRun checks the permission on the interface).
        let groups: Vec<String> = match prior.quarantine_groups.get(&i.vpc_id) {
            Some(q) => vec![q.clone()],
            None => i.groups.clone(),
        };
        let res = client
            .modify_network_interface_attribute()
            .network_interface_id(&i.network_interface_id)
            .set_groups(Some(groups.clone()))
            .dry_run(true)
            .send()
            .await;
        let params = json!({"NetworkInterfaceId": i.network_interface_id,
            "Groups": groups, "phases": ["transition", "quarantine"]});
        dry.sent(res, MODIFY_ENI, &i.network_interface_id, params)?;
    }
    Ok(dry.into_result())
}

/// The quarantine group per VPC: from the step's result, else looked up by name.
async fn quarantine_groups(
    client: &aws_sdk_ec2::Client,
    id: &str,
    names: &GroupNames,
    result: &Value,
    vpcs: &[String],
) -> Result<BTreeMap<String, String>, AwsError> {
    match from_record::<Applied>(result, "result", id) {
        Ok(applied) => Ok(applied.quarantine_groups),
        Err(_) => find_groups(client, vpcs, &names.quarantine).await,
    }
}

pub(super) async fn verify(
    client: &aws_sdk_ec2::Client,
    id: &str,
    names: &GroupNames,
    result: &Value,
) -> Result<(), AwsError> {
    let now = interfaces(client, id).await?;
    let quarantine = quarantine_groups(client, id, names, result, &vpcs(&now)).await?;
    let open: Vec<String> = now
        .iter()
        .filter(|i| !is_quarantined(i, &quarantine))
        .map(|i| format!("{} [{}]", i.network_interface_id, i.groups.join(", ")))
        .collect();
    if !open.is_empty() {
        return Err(AwsError::local(
            ErrorClass::Other,
            DESCRIBE_ENIS,
            id,
            format!(
                "interface(s) of {id} not in the quarantine group alone: {}",
                open.join("; ")
            ),
        ));
    }
    let ids: Vec<String> = quarantine.values().cloned().collect();
    let out = client
        .describe_security_groups()
        .set_group_ids(Some(ids))
        .send()
        .await
        .map_err(|e| classify(&e, DESCRIBE_GROUPS, id))?;
    for g in out.security_groups() {
        if !g.ip_permissions().is_empty() || !g.ip_permissions_egress().is_empty() {
            let gid = g.group_id().unwrap_or_default();
            return Err(AwsError::local(
                ErrorClass::Other,
                DESCRIBE_GROUPS,
                gid,
                format!("quarantine group {gid} has rules: it does not isolate"),
            ));
        }
    }
    Ok(())
}

pub(super) async fn revert(
    client: &aws_sdk_ec2::Client,
    id: &str,
    names: &GroupNames,
    captured: &Value,
    result: &Value,
    retry: bool,
) -> Result<RevertOutcome, AwsError> {
    let prior: Prior = from_record(captured, "captured", id)?;
    let vpcs = vpcs(&prior.interfaces);
    let quarantine = quarantine_groups(client, id, names, result, &vpcs).await?;
    let transition = match from_record::<Applied>(result, "result", id) {
        Ok(applied) => applied.transition_groups,
        Err(_) => find_groups(client, &vpcs, &names.transition).await?,
    };
    let mut restored = Vec::new();
    let mut left = Vec::new();
    // Interfaces back in their captured groups (a retried or resumed revert moved them).
    let mut back = 0usize;
    for before in &prior.interfaces {
        let eni = &before.network_interface_id;
        if is_quarantined(before, &quarantine) {
            continue; // it was in quarantine before hanko: nothing to restore
        }
        let now = match describe_interfaces(client, eni, std::slice::from_ref(eni)).await {
            Ok(mut found) if !found.is_empty() => found.remove(0),
            Ok(_) => {
                left.push(format!("{eni} (no longer exists)"));
                continue;
            }
            Err(e) if e.class == ErrorClass::NotFound => {
                left.push(format!("{eni} (no longer exists)"));
                continue;
            }
            Err(e) => return Err(e),
        };
        if retry && same_groups(&now.groups, &before.groups) {
            back += 1;
            continue;
        }
        if !is_quarantined(&now, &quarantine) {
            left.push(format!("{eni} (now in {})", now.groups.join(", ")));
            continue;
        }
        let captured_mid_isolation = transition
            .get(&before.vpc_id)
            .is_some_and(|t| before.groups == [t.clone()]);
        if captured_mid_isolation {
            // Its original groups were never recorded; restoring the all-traffic group
            // would open it. Leave it quarantined for a person to decide.
            left.push(format!(
                "{eni} (captured mid-isolation; original groups unknown)"
            ));
            continue;
        }
        move_interface(client, eni, &before.groups).await?;
        restored.push(format!("{eni} -> [{}]", before.groups.join(", ")));
    }
    if !left.is_empty() {
        return Ok(RevertOutcome::Drifted {
            reason: format!(
                "left as found: {}; restored: {}",
                left.join(", "),
                if restored.is_empty() {
                    "none".into()
                } else {
                    restored.join(", ")
                }
            ),
        });
    }
    if restored.is_empty() && back == 0 {
        return Ok(RevertOutcome::NothingToRevert {
            reason: "every interface was already in the quarantine group before hanko".into(),
        });
    }
    Ok(RevertOutcome::Restored)
}

/// The same security groups, in any order.
fn same_groups(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}
