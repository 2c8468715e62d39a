//! The floor of `benches/floor.rs`: exactly the AWS calls hanko makes to contain a leaked key or
//! to isolate an instance, and nothing else. No store, no audit, no planning, no report, no
//! retries: the calls of the steps hanko plans for these findings (`src/plan/routing.rs`), as
//! `src/aws/iam.rs` and `src/aws/ec2/` make them at this commit, each step's capture, apply and
//! verify. Keep it in step with them: the bench counts both tools' calls through a proxy and
//! says when they differ.
//!
//! It runs in a process of its own ([`child_main`], the bench binary started again with
//! [`CHILD_FLAG`]), so a floor run pays what a `hanko drill` run pays before its first call:
//! process start, a multi-threaded tokio runtime (hanko's), and `aws_config` loading the
//! environment. It builds only the clients it calls (STS and IAM, or STS and EC2).
//!
//! # Which calls, and what waits for what
//!
//! A call waits only for the calls whose answer it needs: its inputs, and the answer that
//! decides whether it is made at all (a step whose capture finds the target state already
//! there makes no apply and no verify, as in hanko). So each step keeps hanko's capture → apply
//! → verify; the calls of one phase that need nothing from each other go out at once; and the
//! steps run at the same time, with two rules hanko has: no call goes to the account before
//! `sts:GetCallerIdentity` proved it is hanko's own, and nothing changes the instance before its
//! volumes are snapshotted (evidence first: every `CreateSnapshot` answered). `→` is "after",
//! `‖` "at the same time".
//!
//! Leaked key (a user's AKIA key: steps DeactivateAccessKey, RevokeUserSessions), 7 calls:
//!
//! ```text
//! sts:GetCallerIdentity
//! → ( iam:ListAccessKeys → iam:UpdateAccessKey (Inactive) → iam:ListAccessKeys )
//!   ‖ ( iam:GetUserPolicy → iam:PutUserPolicy (deny older sessions: aws:TokenIssueTime) → iam:GetUserPolicy )
//! ```
//!
//! Instance with two interfaces and two EBS volumes (steps SnapshotVolumes,
//! EnableTerminationProtection, SetShutdownBehaviorStop, PreserveVolumes, IsolateInstance,
//! TagInstance), hanko's two groups already in the VPC (every run but the first), 32 calls (30 on
//! moto, whose instances already stop on shutdown: that step is its capture alone there):
//!
//! ```text
//! sts:GetCallerIdentity → every step at once:
//!   snapshot     DescribeInstances → DescribeSnapshots (its volumes, by the finding's tag)  capture
//!                → CreateSnapshot ‖ CreateSnapshot                      = the evidence (the
//!                  apply trusts the capture it just made, as hanko's first attempt does)
//!                → ( DescribeInstances ‖ DescribeSnapshots by id )      verify
//!   termination  DescribeInstanceAttribute → evidence → ModifyInstanceAttribute → DescribeInstanceAttribute
//!   shutdown     DescribeInstanceAttribute → evidence → ModifyInstanceAttribute → DescribeInstanceAttribute
//!   volumes      DescribeInstances → evidence → ModifyInstanceAttribute (DeleteOnTermination off) → DescribeInstances
//!   isolate      DescribeInstances → DescribeNetworkInterfaces
//!                → ( DescribeSecurityGroups quarantine ‖ DescribeSecurityGroups transition )   capture
//!                → ( DescribeSecurityGroups transition ‖ DescribeSecurityGroups quarantine )   apply: the groups
//!                → evidence → per interface, at once: ModifyNetworkInterfaceAttribute (transition group)
//!                                                     → ModifyNetworkInterfaceAttribute (quarantine group)
//!                → ( DescribeInstances → DescribeNetworkInterfaces ) ‖ DescribeSecurityGroups    verify
//!   tag          DescribeTags → evidence → CreateTags → DescribeTags
//! ```
//!
//! (all EC2 but the first). In a VPC without hanko's groups, the apply makes them first, as hanko
//! does: `CreateSecurityGroup` → `DescribeSecurityGroups`, then the quarantine group's default
//! outbound rule revoked and the transition group's missing all-traffic rules authorized (at
//! once). Those calls change groups, not the instance, so they do not wait for the evidence.
//!
//! The calls are hanko's, down to their parameters that matter (the policy document, the
//! snapshot tags and description, the groups' names, descriptions and tags): only their order
//! differs.

use std::collections::BTreeMap;
use std::future::Future;

use aws_config::SdkConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, EbsInstanceBlockDeviceSpecification, Filter, Instance,
    InstanceAttributeName, InstanceBlockDeviceMappingSpecification, IpPermission, IpRange,
    Ipv6Range, ResourceType, SecurityGroup, SnapshotState, Tag, TagSpecification,
};
use aws_sdk_iam::types::StatusType;
use aws_smithy_types::error::display::DisplayErrorContext;
use futures_util::future::{try_join_all, FutureExt};
use hanko::aws::ec2::TAG_PURPOSE;
use hanko::aws::{TAG_FINDING, TAG_QUARANTINE, TAG_REQUEST, TAG_STEP};
use hanko::plan::{QUARANTINE_GROUP, SESSION_REVOKE_POLICY, TRANSITION_GROUP};
use serde::{Deserialize, Serialize};

/// The hidden argument that makes the bench binary a floor run: `--floor-child key|instance
/// JSON`, the JSON a [`KeyTarget`] or an [`InstanceTarget`].
pub const CHILD_FLAG: &str = "--floor-child";

/// The one-line call lists, for the bench's output (the module doc has them in full).
pub const KEY_CALLS: &str = "sts:GetCallerIdentity → ( iam:ListAccessKeys → iam:UpdateAccessKey \
    → iam:ListAccessKeys ) ‖ ( iam:GetUserPolicy → iam:PutUserPolicy → iam:GetUserPolicy )";
pub const INSTANCE_CALLS: &str = "sts:GetCallerIdentity → at once: snapshot ( DescribeInstances → \
    DescribeSnapshots → CreateSnapshot ×2 at once = evidence → \
    DescribeInstances ‖ DescribeSnapshots by id ) ‖ termination protection and shutdown behaviour \
    ( DescribeInstanceAttribute → evidence → ModifyInstanceAttribute → DescribeInstanceAttribute, \
    each; on moto the shutdown behaviour is already stop: its DescribeInstanceAttribute alone ) ‖ \
    keep volumes ( DescribeInstances → evidence → ModifyInstanceAttribute → \
    DescribeInstances ) ‖ isolate ( DescribeInstances → DescribeNetworkInterfaces → \
    DescribeSecurityGroups ×2 → DescribeSecurityGroups ×2 → evidence → per interface at once \
    ModifyNetworkInterfaceAttribute ×2 → ( DescribeInstances → DescribeNetworkInterfaces ) ‖ \
    DescribeSecurityGroups ) ‖ tag ( DescribeTags → evidence → CreateTags → DescribeTags )";

/// What a key floor contains: one access key of one user, in one account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyTarget {
    pub account_id: String,
    pub user_name: String,
    pub access_key_id: String,
}

/// What an instance floor isolates, and the finding its evidence is tagged with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceTarget {
    pub account_id: String,
    pub instance_id: String,
    pub finding_id: String,
}

/// A failed call, as the floor reports it (on stderr, then exit 1).
type Outcome<T> = Result<T, String>;

fn failed<E: std::error::Error>(op: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{op}: {}", DisplayErrorContext(&e))
}

/// The floor process: `args` are what follows [`CHILD_FLAG`]. Returns the exit code.
pub fn child_main(args: &[String]) -> i32 {
    let [kind, target] = args else {
        eprintln!("usage: {CHILD_FLAG} key|instance JSON");
        return 2;
    };
    // hanko's runtime: multi-threaded, every driver on.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("floor: no tokio runtime: {e}");
            return 1;
        }
    };
    let outcome = runtime.block_on(async {
        // As hanko loads it without a config: the environment's endpoint, region, credentials.
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        match kind.as_str() {
            "key" => match serde_json::from_str::<KeyTarget>(target) {
                Ok(t) => contain_key(&conf, &t).await,
                Err(e) => Err(format!("bad key target {target}: {e}")),
            },
            "instance" => match serde_json::from_str::<InstanceTarget>(target) {
                Ok(t) => isolate_instance(&conf, &t).await,
                Err(e) => Err(format!("bad instance target {target}: {e}")),
            },
            other => Err(format!("unknown floor {other:?}: key or instance")),
        }
    });
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floor {kind}: {e}");
            1
        }
    }
}

/// hanko acts only in an account it proved to be its own (`src/aws/clients.rs`).
async fn prove_account(sts: &aws_sdk_sts::Client, account_id: &str) -> Outcome<()> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(failed("sts:GetCallerIdentity"))?;
    match out.account() {
        Some(a) if a == account_id => Ok(()),
        other => Err(format!(
            "sts:GetCallerIdentity: the credentials are in account {other:?}, the finding in \
             {account_id}: refused, as hanko refuses"
        )),
    }
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Outcome<()> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

// ---- the leaked key (src/aws/iam.rs) -----------------------------------------------------------

const INACTIVE: &str = "Inactive";

async fn contain_key(conf: &SdkConfig, t: &KeyTarget) -> Outcome<()> {
    let sts = aws_sdk_sts::Client::new(conf);
    let iam = aws_sdk_iam::Client::new(conf);
    prove_account(&sts, &t.account_id).await?;
    let now = chrono::Utc::now();
    tokio::try_join!(
        deactivate_key(&iam, t),
        revoke_sessions(&iam, &t.user_name, now)
    )?;
    Ok(())
}

/// DeactivateAccessKey: the key's status, `UpdateAccessKey` unless already Inactive, read back.
async fn deactivate_key(iam: &aws_sdk_iam::Client, t: &KeyTarget) -> Outcome<()> {
    let missing = || format!("user {} has no access key {}", t.user_name, t.access_key_id);
    let status = key_status(iam, t).await?.ok_or_else(missing)?;
    if status == INACTIVE {
        return Ok(());
    }
    iam.update_access_key()
        .user_name(&t.user_name)
        .access_key_id(&t.access_key_id)
        .status(StatusType::Inactive)
        .send()
        .await
        .map_err(failed("iam:UpdateAccessKey"))?;
    let now = key_status(iam, t).await?.ok_or_else(missing)?;
    ensure(now == INACTIVE, || {
        format!("the key still reads as {now} after UpdateAccessKey")
    })
}

/// The key's status from `ListAccessKeys`, page by page as hanko reads it.
async fn key_status(iam: &aws_sdk_iam::Client, t: &KeyTarget) -> Outcome<Option<String>> {
    let mut marker: Option<String> = None;
    loop {
        let out = iam
            .list_access_keys()
            .user_name(&t.user_name)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(failed("iam:ListAccessKeys"))?;
        if let Some(k) = out
            .access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(t.access_key_id.as_str()))
        {
            return Ok(Some(
                k.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            ));
        }
        match out.marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_string()),
            _ => return Ok(None),
        }
    }
}

/// RevokeUserSessions: the inline policy now, hanko's deny-older-sessions document put unless it
/// is there already, read back.
async fn revoke_sessions(
    iam: &aws_sdk_iam::Client,
    user: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome<()> {
    let cutoff = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let wanted = revocation_document(&cutoff);
    if user_policy(iam, user)
        .await?
        .is_some_and(|doc| same_document(&doc, &wanted))
    {
        return Ok(());
    }
    iam.put_user_policy()
        .user_name(user)
        .policy_name(SESSION_REVOKE_POLICY)
        .policy_document(&wanted)
        .send()
        .await
        .map_err(failed("iam:PutUserPolicy"))?;
    let back = user_policy(iam, user).await?;
    ensure(back.is_some_and(|doc| same_document(&doc, &wanted)), || {
        "the inline policy does not read back as the document put".into()
    })
}

/// The document hanko puts to revoke a principal's older sessions (`src/aws/iam.rs`).
pub fn revocation_document(cutoff: &str) -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "HankoRevokeOlderSessions",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}},
    }]})
    .to_string()
}

/// The user's session-revocation policy (decoded), `None` when there is none.
async fn user_policy(iam: &aws_sdk_iam::Client, user: &str) -> Outcome<Option<String>> {
    let res = iam
        .get_user_policy()
        .user_name(user)
        .policy_name(SESSION_REVOKE_POLICY)
        .send()
        .await;
    match res {
        Ok(out) => Ok(Some(hanko::aws::iam::decode_document(
            out.policy_document(),
        ))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(failed("iam:GetUserPolicy")(e)),
    }
}

fn same_document(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

// ---- the instance (src/aws/ec2/) ---------------------------------------------------------------

const STOP: &str = "stop";
/// The plan's index of SnapshotVolumes, which hanko tags the evidence with.
const SNAPSHOT_STEP: usize = 0;
/// `TAG_PURPOSE` values of hanko's two groups (`src/aws/ec2/mod.rs`).
const PURPOSE_TRANSITION: &str = "transition";
const PURPOSE_QUARANTINE: &str = "quarantine";
const ALL_IPV4: &str = "0.0.0.0/0";
const ALL_IPV6: &str = "::/0";
const ALL_PROTOCOLS: &str = "-1";

async fn isolate_instance(conf: &SdkConfig, t: &InstanceTarget) -> Outcome<()> {
    let sts = aws_sdk_sts::Client::new(conf);
    let ec2 = aws_sdk_ec2::Client::new(conf);
    prove_account(&sts, &t.account_id).await?;
    // hanko's request id is in the tags it writes; the floor has no request, so it makes one up.
    let request = uuid::Uuid::new_v4().to_string();
    let (ec2, id) = (&ec2, t.instance_id.as_str());
    // The snapshot step's capture and apply: every later change of the instance waits for it.
    let evidence = snapshot_volumes(ec2, id, &t.finding_id, &request).shared();
    let snapshot_step = async {
        if let Some(made) = evidence.clone().await? {
            verify_snapshots(ec2, id, made).await?;
        }
        Ok(())
    };
    tokio::try_join!(
        snapshot_step,
        termination_protection(ec2, id, evidence.clone()),
        shutdown_behaviour(ec2, id, evidence.clone()),
        keep_volumes(ec2, id, evidence.clone()),
        isolate(ec2, id, evidence.clone()),
        tag_instance(ec2, id, &request, evidence.clone()),
    )?;
    Ok(())
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

async fn describe_instance(ec2: &aws_sdk_ec2::Client, id: &str) -> Outcome<Instance> {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(failed("ec2:DescribeInstances"))?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| format!("instance {id} was not found"))
}

/// The instance's EBS volumes: (device name, volume id, deleted on termination).
fn ebs_devices(instance: &Instance) -> Vec<(String, String, bool)> {
    instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| {
            let ebs = m.ebs()?;
            Some((
                m.device_name()?.to_string(),
                ebs.volume_id()?.to_string(),
                ebs.delete_on_termination().unwrap_or(false),
            ))
        })
        .collect()
}

// -- snapshot

/// Volume id -> device name.
async fn volumes(ec2: &aws_sdk_ec2::Client, id: &str) -> Outcome<BTreeMap<String, String>> {
    let instance = describe_instance(ec2, id).await?;
    Ok(ebs_devices(&instance)
        .into_iter()
        .map(|(device, volume, _)| (volume, device))
        .collect())
}

/// Snapshots of `volumes` already evidence for the finding (tagged with it), by volume id;
/// the volume filter first, as hanko asks.
async fn tagged_snapshots(
    ec2: &aws_sdk_ec2::Client,
    finding_id: &str,
    volumes: &BTreeMap<String, String>,
) -> Outcome<BTreeMap<String, String>> {
    if volumes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let snapshots = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name("volume-id")
                .set_values(Some(volumes.keys().cloned().collect()))
                .build(),
        )
        .filters(filter(&format!("tag:{TAG_FINDING}"), finding_id))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(failed("ec2:DescribeSnapshots"))?;
    Ok(snapshots
        .into_iter()
        .filter(|s| s.state() != Some(&SnapshotState::Error))
        .filter_map(|s| Some((s.volume_id()?.to_string(), s.snapshot_id()?.to_string())))
        .collect())
}

/// The snapshots the evidence step made (snapshot ids), or `None` when every volume already
/// had one (then there is nothing to verify).
type Evidence = Option<Vec<String>>;

/// Capture and apply of SnapshotVolumes: the volumes, the evidence already there, a snapshot
/// of each volume without one (at once). Like hanko on a first attempt, the apply trusts the
/// capture it just made.
async fn snapshot_volumes(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    finding_id: &str,
    request: &str,
) -> Outcome<Evidence> {
    let volumes = volumes(ec2, id).await?;
    let existing = tagged_snapshots(ec2, finding_id, &volumes).await?;
    if volumes.keys().all(|v| existing.contains_key(v)) {
        return Ok(None);
    }
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Snapshot)
        .tags(tag(TAG_REQUEST, request))
        .tags(tag(TAG_STEP, &SNAPSHOT_STEP.to_string()))
        .tags(tag(TAG_QUARANTINE, request))
        .tags(tag(TAG_FINDING, finding_id))
        .build();
    let creates = volumes
        .iter()
        .filter(|(volume, _)| !existing.contains_key(*volume))
        .map(|(volume, device)| {
            ec2.create_snapshot()
                .volume_id(volume)
                .description(format!(
                    "hanko-evidence:{id}:{volume}:{device}:request-{request}"
                ))
                .tag_specifications(tags.clone())
                .send()
                .map(|r| {
                    r.map(|out| out.snapshot_id().unwrap_or_default().to_string())
                        .map_err(failed("ec2:CreateSnapshot"))
                })
        });
    Ok(Some(try_join_all(creates).await?))
}

/// The verify of SnapshotVolumes: the instance's volumes and the new snapshots by id, at once.
async fn verify_snapshots(ec2: &aws_sdk_ec2::Client, id: &str, made: Vec<String>) -> Outcome<()> {
    let by_id = async {
        ec2.describe_snapshots()
            .set_snapshot_ids(Some(made))
            .send()
            .await
            .map_err(failed("ec2:DescribeSnapshots"))
    };
    let (volumes, snapshots) = tokio::try_join!(volumes(ec2, id), by_id)?;
    let covered: Vec<&str> = snapshots
        .snapshots()
        .iter()
        .filter(|s| s.state() != Some(&SnapshotState::Error))
        .filter_map(|s| s.volume_id())
        .collect();
    let missing: Vec<&String> = volumes
        .keys()
        .filter(|v| !covered.contains(&v.as_str()))
        .collect();
    ensure(missing.is_empty(), || {
        format!("no snapshot of volume(s) {missing:?}")
    })
}

// -- termination protection and shutdown behaviour

async fn termination_protection(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    evidence: impl Future<Output = Outcome<Evidence>>,
) -> Outcome<()> {
    let read = move || async move {
        let out = ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::DisableApiTermination)
            .send()
            .await
            .map_err(failed("ec2:DescribeInstanceAttribute"))?;
        Ok::<_, String>(
            out.disable_api_termination()
                .and_then(AttributeBooleanValue::value)
                .unwrap_or(false),
        )
    };
    if read().await? {
        return Ok(());
    }
    evidence.await?;
    ec2.modify_instance_attribute()
        .instance_id(id)
        .disable_api_termination(AttributeBooleanValue::builder().value(true).build())
        .dry_run(false)
        .send()
        .await
        .map_err(failed("ec2:ModifyInstanceAttribute"))?;
    ensure(read().await?, || {
        format!("termination protection of {id} is still off")
    })
}

async fn shutdown_behaviour(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    evidence: impl Future<Output = Outcome<Evidence>>,
) -> Outcome<()> {
    let read = move || async move {
        let out = ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .send()
            .await
            .map_err(failed("ec2:DescribeInstanceAttribute"))?;
        Ok::<_, String>(
            out.instance_initiated_shutdown_behavior()
                .and_then(|v| v.value())
                .unwrap_or(STOP)
                .to_string(),
        )
    };
    if read().await? == STOP {
        return Ok(());
    }
    evidence.await?;
    ec2.modify_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .value(STOP)
        .dry_run(false)
        .send()
        .await
        .map_err(failed("ec2:ModifyInstanceAttribute"))?;
    let now = read().await?;
    ensure(now == STOP, || {
        format!("shutdown behaviour of {id} is still {now}")
    })
}

// -- keep volumes

async fn keep_volumes(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    evidence: impl Future<Output = Outcome<Evidence>>,
) -> Outcome<()> {
    let deleted_on_termination = move || async move {
        let devices = ebs_devices(&describe_instance(ec2, id).await?);
        Ok::<_, String>(
            devices
                .into_iter()
                .filter(|(_, _, delete)| *delete)
                .map(|(device, _, _)| device)
                .collect::<Vec<_>>(),
        )
    };
    let change = deleted_on_termination().await?;
    if change.is_empty() {
        return Ok(());
    }
    evidence.await?;
    let call = change.iter().fold(
        ec2.modify_instance_attribute()
            .instance_id(id)
            .dry_run(false),
        |call, device| {
            call.block_device_mappings(
                InstanceBlockDeviceMappingSpecification::builder()
                    .device_name(device)
                    .ebs(
                        EbsInstanceBlockDeviceSpecification::builder()
                            .delete_on_termination(false)
                            .build(),
                    )
                    .build(),
            )
        },
    );
    call.send()
        .await
        .map_err(failed("ec2:ModifyInstanceAttribute"))?;
    let still = deleted_on_termination().await?;
    ensure(still.is_empty(), || {
        format!("volume(s) {still:?} of {id} are still deleted on termination")
    })
}

// -- isolate

/// One network interface: (id, VPC, group ids).
#[derive(Debug, Clone)]
struct Interface {
    id: String,
    vpc: String,
    groups: Vec<String>,
}

/// The instance's interfaces as they report themselves (DescribeInstances, then
/// DescribeNetworkInterfaces), in the instance's order.
async fn interfaces(ec2: &aws_sdk_ec2::Client, id: &str) -> Outcome<Vec<Interface>> {
    let instance = describe_instance(ec2, id).await?;
    let ids: Vec<String> = instance
        .network_interfaces()
        .iter()
        .filter_map(|n| n.network_interface_id().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err(format!("instance {id} has no network interface to isolate"));
    }
    let out = ec2
        .describe_network_interfaces()
        .set_network_interface_ids(Some(ids.clone()))
        .send()
        .await
        .map_err(failed("ec2:DescribeNetworkInterfaces"))?;
    let mut found: Vec<Interface> = out
        .network_interfaces()
        .iter()
        .filter_map(|n| {
            Some(Interface {
                id: n.network_interface_id()?.to_string(),
                vpc: n.vpc_id().unwrap_or_default().to_string(),
                groups: n
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned))
                    .collect(),
            })
        })
        .collect();
    found.sort_by_key(|i| ids.iter().position(|x| x == &i.id));
    Ok(found)
}

fn vpcs(interfaces: &[Interface]) -> Vec<String> {
    let mut v: Vec<String> = interfaces.iter().map(|i| i.vpc.clone()).collect();
    v.sort();
    v.dedup();
    v
}

fn quarantined(i: &Interface, quarantine: &BTreeMap<String, String>) -> bool {
    quarantine
        .get(&i.vpc)
        .is_some_and(|q| i.groups.len() == 1 && &i.groups[0] == q)
}

async fn find_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
) -> Outcome<Option<SecurityGroup>> {
    let out = ec2
        .describe_security_groups()
        .filters(filter("group-name", name))
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(failed("ec2:DescribeSecurityGroups"))?;
    Ok(out.security_groups().first().cloned())
}

/// VPC id -> id of the group of that name, for the VPCs that have one (all VPCs at once).
async fn find_groups(
    ec2: &aws_sdk_ec2::Client,
    vpcs: &[String],
    name: &str,
) -> Outcome<BTreeMap<String, String>> {
    let found = try_join_all(vpcs.iter().map(|vpc| async move {
        let group = find_group(ec2, vpc, name).await?;
        Ok::<_, String>(group.and_then(|g| g.group_id).map(|id| (vpc.clone(), id)))
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

async fn isolate(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    evidence: impl Future<Output = Outcome<Evidence>>,
) -> Outcome<()> {
    // Capture.
    let before = interfaces(ec2, id).await?;
    let vpcs = vpcs(&before);
    let (quarantine, transition_before) = tokio::try_join!(
        find_groups(ec2, &vpcs, QUARANTINE_GROUP),
        find_groups(ec2, &vpcs, TRANSITION_GROUP)
    )?;
    let quarantine_before = quarantine.clone();
    let (transition_before, quarantine_before) = (&transition_before, &quarantine_before);
    if before.iter().all(|i| quarantined(i, &quarantine)) {
        return Ok(());
    }
    // Apply: both groups of every VPC made ready at once (they change groups, not the
    // instance, so they need no evidence)...
    let ready = try_join_all(vpcs.iter().map(|vpc| async move {
        let (t, q) = tokio::try_join!(
            ensure_group(
                ec2,
                vpc,
                TRANSITION_GROUP,
                PURPOSE_TRANSITION,
                transition_before.contains_key(vpc)
            ),
            ensure_group(
                ec2,
                vpc,
                QUARANTINE_GROUP,
                PURPOSE_QUARANTINE,
                quarantine_before.contains_key(vpc)
            )
        )?;
        Ok::<_, String>((vpc.clone(), t, q))
    }))
    .await?;
    let transition: BTreeMap<String, String> = ready
        .iter()
        .map(|(vpc, t, _)| (vpc.clone(), t.clone()))
        .collect();
    let quarantine: BTreeMap<String, String> =
        ready.into_iter().map(|(vpc, _, q)| (vpc, q)).collect();
    // ...then, once the evidence is taken, every interface through the transition group to
    // the quarantine group; the interfaces at once.
    evidence.await?;
    let moves = before
        .iter()
        .filter(|i| !quarantined(i, &quarantine))
        .map(|i| {
            let to = |groups: &BTreeMap<String, String>| -> Vec<String> {
                groups.get(&i.vpc).cloned().into_iter().collect()
            };
            let (t, q) = (to(&transition), to(&quarantine));
            async move {
                move_interface(ec2, &i.id, t).await?;
                move_interface(ec2, &i.id, q).await
            }
        });
    try_join_all(moves).await?;
    // Verify: every interface in its quarantine group alone, and those groups without rules.
    let ids: Vec<String> = quarantine.values().cloned().collect();
    let describe_groups = async {
        ec2.describe_security_groups()
            .set_group_ids(Some(ids))
            .send()
            .await
            .map_err(failed("ec2:DescribeSecurityGroups"))
    };
    let (after, groups) = tokio::try_join!(interfaces(ec2, id), describe_groups)?;
    let open: Vec<&Interface> = after
        .iter()
        .filter(|i| !quarantined(i, &quarantine))
        .collect();
    ensure(open.is_empty(), || {
        format!("interface(s) not in the quarantine group alone: {open:?}")
    })?;
    let with_rules: Vec<&str> = groups
        .security_groups()
        .iter()
        .filter(|g| !g.ip_permissions().is_empty() || !g.ip_permissions_egress().is_empty())
        .filter_map(|g| g.group_id())
        .collect();
    ensure(with_rules.is_empty(), || {
        format!("quarantine group(s) {with_rules:?} have rules")
    })
}

async fn move_interface(ec2: &aws_sdk_ec2::Client, eni: &str, groups: Vec<String>) -> Outcome<()> {
    ec2.modify_network_interface_attribute()
        .network_interface_id(eni)
        .set_groups(Some(groups))
        .send()
        .await
        .map(drop)
        .map_err(failed("ec2:ModifyNetworkInterfaceAttribute"))
}

/// One of hanko's two groups in `vpc`, found or made, with hanko's rules: none in the
/// quarantine group, all traffic both ways in the transition group. Its id.
async fn ensure_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    purpose: &str,
    existed: bool,
) -> Outcome<String> {
    // As hanko: a group the capture did not see is created straight away.
    let found = if existed {
        find_group(ec2, vpc, name).await?
    } else {
        None
    };
    let (group, created) = match found {
        Some(g) => (g, false),
        None => (create_group(ec2, vpc, name, purpose).await?, true),
    };
    let gid = group.group_id().unwrap_or_default().to_string();
    let ours = group
        .tags()
        .iter()
        .any(|t| t.key() == Some(TAG_PURPOSE) && t.value() == Some(purpose));
    if purpose == PURPOSE_QUARANTINE {
        let (inbound, outbound) = (group.ip_permissions(), group.ip_permissions_egress());
        let open = !inbound.is_empty() || !outbound.is_empty();
        if open && !(created || ours) {
            return Err(format!(
                "security group {gid} ({name}) has rules and is not hanko's: it would not isolate"
            ));
        }
        let revoke_in = async {
            if inbound.is_empty() {
                return Ok(());
            }
            ec2.revoke_security_group_ingress()
                .group_id(&gid)
                .set_ip_permissions(Some(inbound.to_vec()))
                .send()
                .await
                .map(drop)
                .map_err(failed("ec2:RevokeSecurityGroupIngress"))
        };
        let revoke_out = async {
            if outbound.is_empty() {
                return Ok(());
            }
            ec2.revoke_security_group_egress()
                .group_id(&gid)
                .set_ip_permissions(Some(outbound.to_vec()))
                .send()
                .await
                .map(drop)
                .map_err(failed("ec2:RevokeSecurityGroupEgress"))
        };
        tokio::try_join!(revoke_in, revoke_out)?;
    } else if created || ours {
        let (inbound, outbound) = (group.ip_permissions(), group.ip_permissions_egress());
        let missing = [
            (true, false, allows_all(inbound, false)),
            (true, true, allows_all(inbound, true)),
            (false, false, allows_all(outbound, false)),
            (false, true, allows_all(outbound, true)),
        ];
        let gid = gid.as_str();
        let adds = missing.into_iter().filter(|(_, _, present)| !present).map(
            |(ingress, ipv6, _)| async move {
                if ingress {
                    ec2.authorize_security_group_ingress()
                        .group_id(gid)
                        .ip_permissions(all_traffic(ipv6))
                        .send()
                        .await
                        .map(drop)
                        .map_err(failed("ec2:AuthorizeSecurityGroupIngress"))
                } else {
                    ec2.authorize_security_group_egress()
                        .group_id(gid)
                        .ip_permissions(all_traffic(ipv6))
                        .send()
                        .await
                        .map(drop)
                        .map_err(failed("ec2:AuthorizeSecurityGroupEgress"))
                }
            },
        );
        try_join_all(adds).await?;
    }
    Ok(gid)
}

/// `CreateSecurityGroup` as hanko makes it (its description, its purpose tag), then the group
/// read back; a group another run made in between is used.
async fn create_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    purpose: &str,
) -> Outcome<SecurityGroup> {
    let description = if purpose == PURPOSE_QUARANTINE {
        "hanko-quarantine:no-traffic-in-or-out"
    } else {
        "hanko-isolation-transition:all-traffic-so-flows-stop-being-tracked"
    };
    let res = ec2
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
    match res {
        Ok(_) => {}
        Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {}
        Err(e) => return Err(failed("ec2:CreateSecurityGroup")(e)),
    }
    find_group(ec2, vpc, name)
        .await?
        .ok_or_else(|| format!("security group {name} in {vpc} was created but cannot be found"))
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

// -- tag

async fn tag_instance(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    request: &str,
    evidence: impl Future<Output = Outcome<Evidence>>,
) -> Outcome<()> {
    let read = move || async move {
        let out = ec2
            .describe_tags()
            .filters(filter("resource-id", id))
            .filters(filter("key", TAG_QUARANTINE))
            .send()
            .await
            .map_err(failed("ec2:DescribeTags"))?;
        Ok::<_, String>(
            out.tags()
                .iter()
                .find(|t| t.key() == Some(TAG_QUARANTINE))
                .map(|t| t.value().unwrap_or_default().to_string()),
        )
    };
    // Already quarantined by a hanko request (the value is a request id): left as it is.
    if read()
        .await?
        .is_some_and(|v| uuid::Uuid::parse_str(&v).is_ok())
    {
        return Ok(());
    }
    evidence.await?;
    ec2.create_tags()
        .resources(id)
        .tags(tag(TAG_QUARANTINE, request))
        .dry_run(false)
        .send()
        .await
        .map_err(failed("ec2:CreateTags"))?;
    let now = read().await?;
    ensure(now.as_deref() == Some(request), || {
        format!("tag {TAG_QUARANTINE} of {id} is {now:?}, not {request}")
    })
}
