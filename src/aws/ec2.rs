//! EC2 containment steps: snapshot, termination protection, shutdown behaviour, keep volumes,
//! isolate, tag, detach instance profile, stop. Each has `capture`, `apply`, `verify` and
//! `revert` (the step contract of [`crate::aws`]).
//!
//! Owns the EC2 calls and the JSON shapes of what each step captured and left behind. It may use
//! `aws_sdk_ec2` and the core types; it never imports sled or serenity, and it never decides
//! whether a step may run.
//!
//! Scope: every call names the one instance of the step (or that instance's own volumes and
//! network interfaces, read at execution time). Isolation moves each interface with
//! `ModifyNetworkInterfaceAttribute`, first to an all-traffic group (so the flows it permits
//! stop being tracked), then to the quarantine group, which drops them. `ModifyInstanceAttribute
//! Groups` is never used: it fails on instances with several interfaces.
//!
//! Dry run: `apply` sends the mutating calls that accept `DryRun=true` that way (AWS answers
//! `DryRunOperation` when the permission is there) and only describes the others; it creates
//! no security group and changes nothing.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, EbsInstanceBlockDeviceSpecification, Filter,
    IamInstanceProfileAssociationState, IamInstanceProfileSpecification, Instance,
    InstanceAttributeName, InstanceBlockDeviceMappingSpecification, InstanceStateName,
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, SnapshotState, Tag,
    TagSpecification,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::classify;
use super::{
    Captured, ErrorClass, RevertOutcome, StepCtx, StepError, TAG_FINDING, TAG_QUARANTINE,
    TAG_REQUEST, TAG_STEP,
};
use crate::plan::{Action, Step, Target, QUARANTINE_GROUP, TRANSITION_GROUP};

/// Tag on the security groups hanko creates: `transition` or `quarantine`.
pub const TAG_PURPOSE: &str = "hanko:purpose";

/// Said with every isolation: what a security group change does not cut.
pub const TRACKED_CONNECTIONS_NOTE: &str = "Security groups do not cut connections that stay \
     tracked (for example through a load balancer): those need a network ACL or a stop.";

const PURPOSE_TRANSITION: &str = "transition";
const PURPOSE_QUARANTINE: &str = "quarantine";
const DRY_RUN_CODE: &str = "DryRunOperation";
const ALL_IPV4: &str = "0.0.0.0/0";
const ALL_IPV6: &str = "::/0";
const ALL_PROTOCOLS: &str = "-1";

// ---------------------------------------------------------------------------------------------
// The step contract
// ---------------------------------------------------------------------------------------------

/// Reads the instance's current state for the step. See [`crate::aws::capture`].
pub async fn capture(
    client: &aws_sdk_ec2::Client,
    step: &Step,
    ctx: &StepCtx,
) -> Result<Captured, StepError> {
    let id = instance_id(step)?;
    match step.action {
        Action::SnapshotVolumes => snapshot::capture(client, &id, ctx).await,
        Action::EnableTerminationProtection => termination::capture(client, &id).await,
        Action::SetShutdownBehaviorStop => shutdown::capture(client, &id).await,
        Action::PreserveVolumes => volumes::capture(client, &id).await,
        Action::IsolateInstance => isolate::capture(client, &id, &group_names(step)).await,
        Action::TagInstance => tag::capture(client, &id, &tag_key(step), ctx).await,
        Action::DetachInstanceProfile => profile::capture(client, &id).await,
        Action::StopInstance => stop::capture(client, &id).await,
        other => Err(not_ec2(step, other)),
    }
}

/// Makes the mutating call(s); with `ctx.dry_run`, proves the permissions instead.
pub async fn apply(
    client: &aws_sdk_ec2::Client,
    step: &Step,
    captured: &Captured,
    ctx: &StepCtx,
) -> Result<Value, StepError> {
    let id = instance_id(step)?;
    let prior = &captured.prior;
    match step.action {
        Action::SnapshotVolumes => snapshot::apply(client, &id, prior, ctx).await,
        Action::EnableTerminationProtection => termination::apply(client, &id, ctx).await,
        Action::SetShutdownBehaviorStop => shutdown::apply(client, &id, ctx).await,
        Action::PreserveVolumes => volumes::apply(client, &id, prior, ctx).await,
        Action::IsolateInstance => {
            isolate::apply(client, &id, &group_names(step), prior, ctx).await
        }
        Action::TagInstance => tag::apply(client, &id, &tag_key(step), ctx).await,
        Action::DetachInstanceProfile => profile::apply(client, &id, prior, ctx).await,
        Action::StopInstance => stop::apply(client, &id, ctx).await,
        other => Err(not_ec2(step, other)),
    }
}

/// Reads back; `Ok(())` only when the step's target state is observed.
pub async fn verify(
    client: &aws_sdk_ec2::Client,
    step: &Step,
    result: &Value,
    ctx: &StepCtx,
) -> Result<(), StepError> {
    let id = instance_id(step)?;
    if ctx.dry_run {
        // A dry run changed nothing: there is no target state to observe.
        return Ok(());
    }
    match step.action {
        Action::SnapshotVolumes => snapshot::verify(client, &id, ctx).await,
        Action::EnableTerminationProtection => termination::verify(client, &id).await,
        Action::SetShutdownBehaviorStop => shutdown::verify(client, &id).await,
        Action::PreserveVolumes => volumes::verify(client, &id).await,
        Action::IsolateInstance => isolate::verify(client, &id, &group_names(step), result).await,
        Action::TagInstance => tag::verify(client, &id, &tag_key(step), result, ctx).await,
        Action::DetachInstanceProfile => profile::verify(client, &id).await,
        Action::StopInstance => stop::verify(client, &id).await,
        other => Err(not_ec2(step, other)),
    }
}

/// Restores the captured state where the resource is still as hanko left it.
pub async fn revert(
    client: &aws_sdk_ec2::Client,
    step: &Step,
    captured: &Value,
    result: &Value,
    ctx: &StepCtx,
) -> Result<RevertOutcome, StepError> {
    let id = instance_id(step)?;
    // On a retry or resume, a target already back in its captured state is restored.
    let retry = ctx.revert_retry;
    match step.action {
        Action::SnapshotVolumes => Ok(RevertOutcome::NothingToRevert {
            reason: "snapshots are evidence: they are kept".into(),
        }),
        Action::EnableTerminationProtection => {
            termination::revert(client, &id, captured, retry).await
        }
        Action::SetShutdownBehaviorStop => shutdown::revert(client, &id, captured, retry).await,
        Action::PreserveVolumes => volumes::revert(client, &id, captured, result, retry).await,
        Action::IsolateInstance => {
            isolate::revert(client, &id, &group_names(step), captured, result, retry).await
        }
        Action::TagInstance => {
            tag::revert(client, &id, &tag_key(step), captured, result, retry).await
        }
        Action::DetachInstanceProfile => profile::revert(client, &id, captured, retry).await,
        Action::StopInstance => stop::revert(client, &id, captured, retry).await,
        other => Err(not_ec2(step, other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// The instance the step names. The plan's `InstanceId` parameter and its target must agree:
/// a step never acts on anything but the one instance it was approved for.
// `StepError` is the step contract's error (crate::aws::error), built once per failed call.
#[allow(clippy::result_large_err)]
fn instance_id(step: &Step) -> Result<String, StepError> {
    let from_params = step.parameters.get("InstanceId").and_then(Value::as_str);
    let from_target = match &step.target {
        Target::Instance { instance_id } => Some(instance_id.as_str()),
        _ => None,
    };
    match (from_params, from_target) {
        (Some(p), Some(t)) if p != t => Err(StepError::local(
            ErrorClass::Other,
            &step.operation,
            t,
            format!("the plan's InstanceId {p} differs from its target {t}; refusing to act"),
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id.to_string()),
        (None, None) => Err(StepError::local(
            ErrorClass::Other,
            &step.operation,
            step.target.to_string(),
            "an EC2 step needs an instance target or an InstanceId parameter",
        )),
    }
}

#[derive(Debug, Clone)]
struct GroupNames {
    quarantine: String,
    transition: String,
}

fn group_names(step: &Step) -> GroupNames {
    let name = |key: &str, default: &str| {
        step.parameters
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    GroupNames {
        quarantine: name("QuarantineGroupName", QUARANTINE_GROUP),
        transition: name("TransitionGroupName", TRANSITION_GROUP),
    }
}

fn tag_key(step: &Step) -> String {
    step.parameters
        .get("TagKey")
        .and_then(Value::as_str)
        .unwrap_or(TAG_QUARANTINE)
        .to_string()
}

fn not_ec2(step: &Step, action: Action) -> StepError {
    StepError::local(
        ErrorClass::Other,
        &step.operation,
        step.target.to_string(),
        format!("{action} is not an EC2 step"),
    )
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

fn unreadable(what: &str, resource: &str, err: serde_json::Error) -> StepError {
    StepError::local(
        ErrorClass::Other,
        "hanko:ReadRecord",
        resource,
        format!("the recorded {what} state of this step cannot be read ({err})"),
    )
}

// `StepError` is the step contract's error (crate::aws::error), built once per failed call.
#[allow(clippy::result_large_err)]
fn from_record<T: DeserializeOwned>(
    value: &Value,
    what: &str,
    resource: &str,
) -> Result<T, StepError> {
    serde_json::from_value(value.clone()).map_err(|e| unreadable(what, resource, e))
}

fn to_record<T: Serialize>(value: &T) -> Value {
    // Our record types are plain structs of strings, bools and maps: serializing cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Dry run
// ---------------------------------------------------------------------------------------------

/// The calls a dry run made or described.
#[derive(Debug, Default, Serialize)]
struct DryRun {
    calls: Vec<DryRunCall>,
}

#[derive(Debug, Serialize)]
struct DryRunCall {
    operation: String,
    parameters: Value,
    /// `permission proven` (sent with DryRun=true, AWS answered DryRunOperation) or
    /// `described` (the API has no DryRun: not sent).
    outcome: &'static str,
}

impl DryRun {
    /// Records a call sent with `DryRun=true`: `DryRunOperation` proves the permission; any
    /// other error fails the step; a success means the endpoint ignored DryRun and changed
    /// something, which is reported loudly.
    #[allow(clippy::result_large_err)] // see `instance_id`
    fn sent<T, E>(
        &mut self,
        res: Result<T, SdkError<E, HttpResponse>>,
        operation: &str,
        resource: &str,
        parameters: Value,
    ) -> Result<(), StepError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match res {
            Err(e) if e.code() == Some(DRY_RUN_CODE) => {
                self.calls.push(DryRunCall {
                    operation: operation.to_string(),
                    parameters,
                    outcome: "permission proven",
                });
                Ok(())
            }
            Err(e) => Err(classify(&e, operation, resource)),
            Ok(_) => Err(StepError::local(
                ErrorClass::Other,
                operation,
                resource,
                format!("the endpoint ignored DryRun=true: {operation} on {resource} was made"),
            )),
        }
    }

    fn described(&mut self, operation: &str, parameters: Value) {
        self.calls.push(DryRunCall {
            operation: operation.to_string(),
            parameters,
            outcome: "described",
        });
    }

    fn into_result(self) -> Value {
        json!({ "dry_run": true, "calls": to_record(&self.calls) })
    }
}

// ---------------------------------------------------------------------------------------------
// Shared reads
// ---------------------------------------------------------------------------------------------

const DESCRIBE_INSTANCES: &str = "ec2:DescribeInstances";

async fn describe_instance(client: &aws_sdk_ec2::Client, id: &str) -> Result<Instance, StepError> {
    let out = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| classify(&e, DESCRIBE_INSTANCES, id))?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| {
            StepError::local(
                ErrorClass::NotFound,
                DESCRIBE_INSTANCES,
                id,
                format!("instance {id} was not found"),
            )
        })
}

/// The instance's EBS volumes: device name -> (volume id, delete on termination).
fn ebs_devices(instance: &Instance) -> Vec<EbsDevice> {
    instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| {
            let ebs = m.ebs()?;
            Some(EbsDevice {
                device_name: m.device_name()?.to_string(),
                volume_id: ebs.volume_id()?.to_string(),
                delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EbsDevice {
    device_name: String,
    volume_id: String,
    delete_on_termination: bool,
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

// ---------------------------------------------------------------------------------------------
// 1. Snapshot volumes
// ---------------------------------------------------------------------------------------------

mod snapshot {
    use super::*;

    const DESCRIBE: &str = "ec2:DescribeSnapshots";
    const CREATE: &str = "ec2:CreateSnapshot";

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        /// Volume id -> device name, every EBS volume of the instance.
        volumes: BTreeMap<String, String>,
        /// Volume id -> snapshot id of this request and step that already exist.
        existing: BTreeMap<String, String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Applied {
        /// Volume id -> snapshot id, for every volume.
        snapshots: BTreeMap<String, String>,
        /// The snapshots this call created (the others existed already).
        created: Vec<String>,
    }

    /// Snapshots that are already evidence for this finding (tagged with its id), or, when the
    /// finding is unknown, for this request and step; by volume id (error-state ones left out).
    async fn tagged(
        client: &aws_sdk_ec2::Client,
        id: &str,
        ctx: &StepCtx,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let describe = client.describe_snapshots().owner_ids("self");
        let describe = if ctx.finding_id.is_empty() {
            describe
                .filters(filter(
                    &format!("tag:{TAG_REQUEST}"),
                    &ctx.request_id.to_string(),
                ))
                .filters(filter(
                    &format!("tag:{TAG_STEP}"),
                    &ctx.step_index.to_string(),
                ))
        } else {
            describe.filters(filter(&format!("tag:{TAG_FINDING}"), &ctx.finding_id))
        };
        let snapshots = describe
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(&e, DESCRIBE, id))?;
        Ok(snapshots
            .into_iter()
            .filter(|s| s.state() != Some(&SnapshotState::Error))
            .filter_map(|s| Some((s.volume_id()?.to_string(), s.snapshot_id()?.to_string())))
            .collect())
    }

    async fn volumes(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let instance = describe_instance(client, id).await?;
        Ok(ebs_devices(&instance)
            .into_iter()
            .map(|d| (d.volume_id, d.device_name))
            .collect())
    }

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
        ctx: &StepCtx,
    ) -> Result<Captured, StepError> {
        let volumes = volumes(client, id).await?;
        let existing = tagged(client, id, ctx).await?;
        let done = volumes.keys().all(|v| existing.contains_key(v));
        Ok(Captured {
            prior: to_record(&Prior { volumes, existing }),
            already_in_target_state: done,
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        prior: &Value,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let prior: Prior = from_record(prior, "captured", id)?;
        // Look up by tag again: a retried or resumed step must never snapshot twice.
        let mut snapshots = tagged(client, id, ctx).await?;
        let missing: Vec<(&String, &String)> = prior
            .volumes
            .iter()
            .filter(|(v, _)| !snapshots.contains_key(*v))
            .collect();
        let request = ctx.request_id.to_string();
        let step = ctx.step_index.to_string();
        let mut tags = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .tags(tag(TAG_REQUEST, &request))
            .tags(tag(TAG_STEP, &step))
            .tags(tag(TAG_QUARANTINE, &request));
        if !ctx.finding_id.is_empty() {
            tags = tags.tags(tag(TAG_FINDING, &ctx.finding_id));
        }
        let tags = tags.build();
        let mut dry = DryRun::default();
        let mut created = Vec::new();
        for (volume, device) in missing {
            // No spaces: see the note on security group descriptions.
            let description = format!("hanko-evidence:{id}:{volume}:{device}:request-{request}");
            let call = client
                .create_snapshot()
                .volume_id(volume)
                .description(&description)
                .tag_specifications(tags.clone())
                .dry_run(ctx.dry_run);
            if ctx.dry_run {
                let params = json!({"VolumeId": volume, "Description": description,
                    "Tags": {TAG_REQUEST: request, TAG_STEP: step, TAG_QUARANTINE: request}});
                dry.sent(call.send().await, CREATE, volume, params)?;
                continue;
            }
            let out = call
                .send()
                .await
                .map_err(|e| classify(&e, CREATE, volume))?;
            let snap = out.snapshot_id().unwrap_or_default().to_string();
            created.push(snap.clone());
            snapshots.insert(volume.clone(), snap);
        }
        if ctx.dry_run {
            return Ok(dry.into_result());
        }
        Ok(to_record(&Applied { snapshots, created }))
    }

    pub(super) async fn verify(
        client: &aws_sdk_ec2::Client,
        id: &str,
        ctx: &StepCtx,
    ) -> Result<(), StepError> {
        let volumes = volumes(client, id).await?;
        let snapshots = tagged(client, id, ctx).await?;
        let missing: Vec<&str> = volumes
            .keys()
            .filter(|v| !snapshots.contains_key(*v))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE,
            id,
            format!(
                "no pending or completed snapshot of request {} for volume(s) {}",
                ctx.request_id,
                missing.join(", ")
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Termination protection, 3. shutdown behaviour: one instance attribute each
// ---------------------------------------------------------------------------------------------

type ModifyAttribute =
    aws_sdk_ec2::operation::modify_instance_attribute::builders::ModifyInstanceAttributeFluentBuilder;

const DESCRIBE_ATTRIBUTE: &str = "ec2:DescribeInstanceAttribute";
const MODIFY_ATTRIBUTE: &str = "ec2:ModifyInstanceAttribute";

mod termination {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        disable_api_termination: bool,
    }

    async fn read(client: &aws_sdk_ec2::Client, id: &str) -> Result<bool, StepError> {
        let out = client
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::DisableApiTermination)
            .send()
            .await
            .map_err(|e| classify(&e, DESCRIBE_ATTRIBUTE, id))?;
        Ok(out
            .disable_api_termination()
            .and_then(AttributeBooleanValue::value)
            .unwrap_or(false))
    }

    fn write(client: &aws_sdk_ec2::Client, id: &str, on: bool, dry_run: bool) -> ModifyAttribute {
        client
            .modify_instance_attribute()
            .instance_id(id)
            .disable_api_termination(AttributeBooleanValue::builder().value(on).build())
            .dry_run(dry_run)
    }

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Captured, StepError> {
        let on = read(client, id).await?;
        Ok(Captured {
            prior: to_record(&Prior {
                disable_api_termination: on,
            }),
            already_in_target_state: on,
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let res = write(client, id, true, ctx.dry_run).send().await;
        if ctx.dry_run {
            let mut dry = DryRun::default();
            let params = json!({"InstanceId": id, "DisableApiTermination": true});
            dry.sent(res, MODIFY_ATTRIBUTE, id, params)?;
            return Ok(dry.into_result());
        }
        res.map_err(|e| classify(&e, MODIFY_ATTRIBUTE, id))?;
        Ok(json!({ "disable_api_termination": true }))
    }

    pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), StepError> {
        if read(client, id).await? {
            return Ok(());
        }
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE_ATTRIBUTE,
            id,
            format!("termination protection of {id} is still off"),
        ))
    }

    pub(super) async fn revert(
        client: &aws_sdk_ec2::Client,
        id: &str,
        captured: &Value,
        retry: bool,
    ) -> Result<RevertOutcome, StepError> {
        let prior: Prior = from_record(captured, "captured", id)?;
        if prior.disable_api_termination {
            return Ok(RevertOutcome::NothingToRevert {
                reason: "termination protection was already on before hanko".into(),
            });
        }
        if !read(client, id).await? {
            if retry {
                // Off again, as captured (a retried or resumed revert turned it off).
                return Ok(RevertOutcome::Restored);
            }
            return Ok(RevertOutcome::Drifted {
                reason: format!("termination protection of {id} is already off"),
            });
        }
        write(client, id, false, false)
            .send()
            .await
            .map_err(|e| classify(&e, MODIFY_ATTRIBUTE, id))?;
        Ok(RevertOutcome::Restored)
    }
}

mod shutdown {
    use super::*;

    const STOP: &str = "stop";

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        instance_initiated_shutdown_behavior: String,
    }

    async fn read(client: &aws_sdk_ec2::Client, id: &str) -> Result<String, StepError> {
        let out = client
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .send()
            .await
            .map_err(|e| classify(&e, DESCRIBE_ATTRIBUTE, id))?;
        Ok(out
            .instance_initiated_shutdown_behavior()
            .and_then(|v| v.value())
            .unwrap_or(STOP)
            .to_string())
    }

    /// `Attribute`+`Value` is the documented form for this attribute (and the one moto reads).
    fn write(
        client: &aws_sdk_ec2::Client,
        id: &str,
        behavior: &str,
        dry_run: bool,
    ) -> ModifyAttribute {
        client
            .modify_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .value(behavior)
            .dry_run(dry_run)
    }

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Captured, StepError> {
        let behavior = read(client, id).await?;
        let done = behavior == STOP;
        Ok(Captured {
            prior: to_record(&Prior {
                instance_initiated_shutdown_behavior: behavior,
            }),
            already_in_target_state: done,
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let res = write(client, id, STOP, ctx.dry_run).send().await;
        if ctx.dry_run {
            let mut dry = DryRun::default();
            let params = json!({"InstanceId": id, "InstanceInitiatedShutdownBehavior": STOP});
            dry.sent(res, MODIFY_ATTRIBUTE, id, params)?;
            return Ok(dry.into_result());
        }
        res.map_err(|e| classify(&e, MODIFY_ATTRIBUTE, id))?;
        Ok(json!({ "instance_initiated_shutdown_behavior": STOP }))
    }

    pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), StepError> {
        let behavior = read(client, id).await?;
        if behavior == STOP {
            return Ok(());
        }
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE_ATTRIBUTE,
            id,
            format!("shutdown behaviour of {id} is still {behavior}"),
        ))
    }

    pub(super) async fn revert(
        client: &aws_sdk_ec2::Client,
        id: &str,
        captured: &Value,
        retry: bool,
    ) -> Result<RevertOutcome, StepError> {
        let prior: Prior = from_record(captured, "captured", id)?;
        if prior.instance_initiated_shutdown_behavior == STOP {
            return Ok(RevertOutcome::NothingToRevert {
                reason: "the shutdown behaviour was already stop before hanko".into(),
            });
        }
        let now = read(client, id).await?;
        if retry && now == prior.instance_initiated_shutdown_behavior {
            // As captured again (a retried or resumed revert restored it).
            return Ok(RevertOutcome::Restored);
        }
        if now != STOP {
            return Ok(RevertOutcome::Drifted {
                reason: format!("shutdown behaviour of {id} is now {now}, not stop"),
            });
        }
        write(
            client,
            id,
            &prior.instance_initiated_shutdown_behavior,
            false,
        )
        .send()
        .await
        .map_err(|e| classify(&e, MODIFY_ATTRIBUTE, id))?;
        Ok(RevertOutcome::Restored)
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Keep volumes: DeleteOnTermination=false
// ---------------------------------------------------------------------------------------------

mod volumes {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        devices: Vec<EbsDevice>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Applied {
        /// Device names whose DeleteOnTermination hanko turned off.
        changed: Vec<String>,
    }

    fn mapping(
        device: &str,
        delete_on_termination: bool,
    ) -> InstanceBlockDeviceMappingSpecification {
        InstanceBlockDeviceMappingSpecification::builder()
            .device_name(device)
            .ebs(
                EbsInstanceBlockDeviceSpecification::builder()
                    .delete_on_termination(delete_on_termination)
                    .build(),
            )
            .build()
    }

    fn write(
        client: &aws_sdk_ec2::Client,
        id: &str,
        devices: &[String],
        delete_on_termination: bool,
        dry_run: bool,
    ) -> ModifyAttribute {
        devices.iter().fold(
            client
                .modify_instance_attribute()
                .instance_id(id)
                .dry_run(dry_run),
            |call, d| call.block_device_mappings(mapping(d, delete_on_termination)),
        )
    }

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Captured, StepError> {
        let devices = ebs_devices(&describe_instance(client, id).await?);
        let done = devices.iter().all(|d| !d.delete_on_termination);
        Ok(Captured {
            prior: to_record(&Prior { devices }),
            already_in_target_state: done,
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        prior: &Value,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let prior: Prior = from_record(prior, "captured", id)?;
        let changed: Vec<String> = prior
            .devices
            .iter()
            .filter(|d| d.delete_on_termination)
            .map(|d| d.device_name.clone())
            .collect();
        if changed.is_empty() {
            return Ok(to_record(&Applied { changed }));
        }
        let res = write(client, id, &changed, false, ctx.dry_run).send().await;
        if ctx.dry_run {
            let mut dry = DryRun::default();
            let params = json!({"InstanceId": id, "BlockDeviceMappings": changed.iter()
                .map(|d| json!({"DeviceName": d, "Ebs": {"DeleteOnTermination": false}}))
                .collect::<Vec<_>>()});
            dry.sent(res, MODIFY_ATTRIBUTE, id, params)?;
            return Ok(dry.into_result());
        }
        res.map_err(|e| classify(&e, MODIFY_ATTRIBUTE, id))?;
        Ok(to_record(&Applied { changed }))
    }

    pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), StepError> {
        let still: Vec<String> = ebs_devices(&describe_instance(client, id).await?)
            .into_iter()
            .filter(|d| d.delete_on_termination)
            .map(|d| format!("{} ({})", d.volume_id, d.device_name))
            .collect();
        if still.is_empty() {
            return Ok(());
        }
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE_INSTANCES,
            id,
            format!(
                "volume(s) {} of {id} are still deleted on termination",
                still.join(", ")
            ),
        ))
    }

    pub(super) async fn revert(
        client: &aws_sdk_ec2::Client,
        id: &str,
        captured: &Value,
        result: &Value,
        retry: bool,
    ) -> Result<RevertOutcome, StepError> {
        let prior: Prior = from_record(captured, "captured", id)?;
        // What hanko changed: the result says so; without one, what the capture found on.
        let changed: Vec<String> = match from_record::<Applied>(result, "result", id) {
            Ok(applied) => applied.changed,
            Err(_) => prior
                .devices
                .iter()
                .filter(|d| d.delete_on_termination)
                .map(|d| d.device_name.clone())
                .collect(),
        };
        if changed.is_empty() {
            return Ok(RevertOutcome::NothingToRevert {
                reason: "no volume was changed: all were already kept on termination".into(),
            });
        }
        let now = ebs_devices(&describe_instance(client, id).await?);
        // Devices deleted on termination again, as captured (a retried or resumed revert
        // restored them), are neither restored nor drifted.
        let changed: Vec<String> = changed
            .into_iter()
            .filter(|d| {
                !retry
                    || !now
                        .iter()
                        .any(|n| &n.device_name == d && n.delete_on_termination)
            })
            .collect();
        let (restore, drifted): (Vec<String>, Vec<String>) = changed.into_iter().partition(|d| {
            now.iter()
                .any(|n| &n.device_name == d && !n.delete_on_termination)
        });
        if !restore.is_empty() {
            write(client, id, &restore, true, false)
                .send()
                .await
                .map_err(|e| classify(&e, MODIFY_ATTRIBUTE, id))?;
        }
        if drifted.is_empty() {
            return Ok(RevertOutcome::Restored);
        }
        Ok(RevertOutcome::Drifted {
            reason: format!(
                "left {} of {id} as they are (no longer kept on termination, or detached); \
                 restored {}",
                drifted.join(", "),
                if restore.is_empty() {
                    "none".into()
                } else {
                    restore.join(", ")
                }
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Isolate: every interface to the transition group, then to the quarantine group
// ---------------------------------------------------------------------------------------------

mod isolate {
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
    async fn interfaces(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Vec<Interface>, StepError> {
        let instance = describe_instance(client, id).await?;
        let ids: Vec<String> = instance
            .network_interfaces()
            .iter()
            .filter_map(|n| n.network_interface_id().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Err(StepError::local(
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
    ) -> Result<Vec<Interface>, StepError> {
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
    ) -> Result<Option<SecurityGroup>, StepError> {
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
    ) -> Result<BTreeMap<String, String>, StepError> {
        let mut map = BTreeMap::new();
        for vpc in vpcs {
            if let Some(id) = find_group(client, vpc, name)
                .await?
                .and_then(|g| g.group_id)
            {
                map.insert(vpc.clone(), id);
            }
        }
        Ok(map)
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
    ) -> Result<Captured, StepError> {
        let interfaces = interfaces(client, id).await?;
        let vpcs = vpcs(&interfaces);
        let quarantine_groups = find_groups(client, &vpcs, &names.quarantine).await?;
        let transition_groups = find_groups(client, &vpcs, &names.transition).await?;
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
    async fn ensure_group(
        client: &aws_sdk_ec2::Client,
        vpc: &str,
        name: &str,
        purpose: &str,
    ) -> Result<(String, bool), StepError> {
        let (group, created) = match find_group(client, vpc, name).await? {
            Some(g) => (g, false),
            None => (create_group(client, vpc, name, purpose).await?, true),
        };
        let gid = group.group_id().unwrap_or_default().to_string();
        let ours = group
            .tags()
            .iter()
            .any(|t| t.key() == Some(TAG_PURPOSE) && t.value() == Some(purpose));
        if purpose == PURPOSE_QUARANTINE {
            let open =
                !group.ip_permissions().is_empty() || !group.ip_permissions_egress().is_empty();
            if open && !(created || ours) {
                // Someone else's group of that name lets traffic through: isolating into it
                // would not isolate. Fail rather than pretend.
                return Err(StepError::local(
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
            for (op, ipv6, present) in missing {
                if present {
                    continue;
                }
                let res = if op == AUTHORIZE_INGRESS {
                    client
                        .authorize_security_group_ingress()
                        .group_id(&gid)
                        .ip_permissions(all_traffic(ipv6))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, op, &gid))
                } else {
                    client
                        .authorize_security_group_egress()
                        .group_id(&gid)
                        .ip_permissions(all_traffic(ipv6))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, op, &gid))
                };
                res?;
            }
        }
        Ok((gid, created))
    }

    async fn create_group(
        client: &aws_sdk_ec2::Client,
        vpc: &str,
        name: &str,
        purpose: &str,
    ) -> Result<SecurityGroup, StepError> {
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
        match res {
            Ok(_) => {}
            // Another run created it in the meantime: use that one.
            Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {}
            Err(e) => return Err(classify(&e, CREATE_GROUP, vpc)),
        }
        find_group(client, vpc, name).await?.ok_or_else(|| {
            StepError::local(
                ErrorClass::Other,
                CREATE_GROUP,
                vpc,
                format!("security group {name} in {vpc} was created but cannot be found"),
            )
        })
    }

    /// Revokes every inbound and outbound rule of the group (the quarantine group's default
    /// outbound rule, or rules added to hanko's own group later).
    async fn strip_rules(
        client: &aws_sdk_ec2::Client,
        group: &SecurityGroup,
    ) -> Result<(), StepError> {
        let gid = group.group_id().unwrap_or_default();
        if !group.ip_permissions().is_empty() {
            client
                .revoke_security_group_ingress()
                .group_id(gid)
                .set_ip_permissions(Some(group.ip_permissions().to_vec()))
                .send()
                .await
                .map_err(|e| classify(&e, REVOKE_INGRESS, gid))?;
        }
        if !group.ip_permissions_egress().is_empty() {
            client
                .revoke_security_group_egress()
                .group_id(gid)
                .set_ip_permissions(Some(group.ip_permissions_egress().to_vec()))
                .send()
                .await
                .map_err(|e| classify(&e, REVOKE_EGRESS, gid))?;
        }
        Ok(())
    }

    async fn move_interface(
        client: &aws_sdk_ec2::Client,
        eni: &str,
        groups: &[String],
    ) -> Result<(), StepError> {
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
    ) -> Result<Value, StepError> {
        let prior: Prior = from_record(prior, "captured", id)?;
        if ctx.dry_run {
            return dry_run(client, names, &prior).await;
        }
        let vpcs = vpcs(&prior.interfaces);
        let mut quarantine_groups = BTreeMap::new();
        let mut transition_groups = BTreeMap::new();
        let mut created_groups = Vec::new();
        for vpc in &vpcs {
            for (name, purpose, map) in [
                (
                    &names.transition,
                    PURPOSE_TRANSITION,
                    &mut transition_groups,
                ),
                (
                    &names.quarantine,
                    PURPOSE_QUARANTINE,
                    &mut quarantine_groups,
                ),
            ] {
                let (gid, created) = ensure_group(client, vpc, name, purpose).await?;
                if created {
                    created_groups.push(gid.clone());
                }
                map.insert(vpc.clone(), gid);
            }
        }
        // An interface already in the quarantine group alone (a resumed step) stays there:
        // moving it through the transition group would open it again for a moment.
        let pending: Vec<&Interface> = prior
            .interfaces
            .iter()
            .filter(|i| !is_quarantined(i, &quarantine_groups))
            .collect();
        for phase in [&transition_groups, &quarantine_groups] {
            for i in &pending {
                // Every VPC of the captured interfaces got its groups above.
                let groups: Vec<String> = phase.get(&i.vpc_id).cloned().into_iter().collect();
                move_interface(client, &i.network_interface_id, &groups).await?;
            }
        }
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
    ) -> Result<Value, StepError> {
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
    ) -> Result<BTreeMap<String, String>, StepError> {
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
    ) -> Result<(), StepError> {
        let now = interfaces(client, id).await?;
        let quarantine = quarantine_groups(client, id, names, result, &vpcs(&now)).await?;
        let open: Vec<String> = now
            .iter()
            .filter(|i| !is_quarantined(i, &quarantine))
            .map(|i| format!("{} [{}]", i.network_interface_id, i.groups.join(", ")))
            .collect();
        if !open.is_empty() {
            return Err(StepError::local(
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
                return Err(StepError::local(
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
    ) -> Result<RevertOutcome, StepError> {
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
}

// ---------------------------------------------------------------------------------------------
// 6. Tag
// ---------------------------------------------------------------------------------------------

mod tag {
    use super::*;

    const DESCRIBE: &str = "ec2:DescribeTags";
    const CREATE: &str = "ec2:CreateTags";
    const DELETE: &str = "ec2:DeleteTags";

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        key: String,
        /// The tag's value before hanko, `None` when the instance did not have it.
        value: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Applied {
        key: String,
        value: String,
    }

    async fn read(
        client: &aws_sdk_ec2::Client,
        id: &str,
        key: &str,
    ) -> Result<Option<String>, StepError> {
        let out = client
            .describe_tags()
            .filters(filter("resource-id", id))
            .filters(filter("key", key))
            .send()
            .await
            .map_err(|e| classify(&e, DESCRIBE, id))?;
        Ok(out
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .map(|t| t.value().unwrap_or_default().to_string()))
    }

    fn write(
        client: &aws_sdk_ec2::Client,
        id: &str,
        key: &str,
        value: &str,
        dry_run: bool,
    ) -> CreateTags {
        client
            .create_tags()
            .resources(id)
            .tags(super::tag(key, value))
            .dry_run(dry_run)
    }

    type CreateTags = aws_sdk_ec2::operation::create_tags::builders::CreateTagsFluentBuilder;

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
        key: &str,
        ctx: &StepCtx,
    ) -> Result<Captured, StepError> {
        let value = read(client, id, key).await?;
        // Already quarantined by this or an earlier hanko request (the value is a request id):
        // keep the tag that points at the request that contained it.
        let _ = ctx;
        let done = value
            .as_deref()
            .is_some_and(|v| uuid::Uuid::parse_str(v).is_ok());
        Ok(Captured {
            prior: to_record(&Prior {
                key: key.to_string(),
                value,
            }),
            already_in_target_state: done,
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        key: &str,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let value = ctx.request_id.to_string();
        let res = write(client, id, key, &value, ctx.dry_run).send().await;
        if ctx.dry_run {
            let mut dry = DryRun::default();
            dry.sent(
                res,
                CREATE,
                id,
                json!({"Resources": [id], "Tags": {key: value}}),
            )?;
            return Ok(dry.into_result());
        }
        res.map_err(|e| classify(&e, CREATE, id))?;
        Ok(to_record(&Applied {
            key: key.to_string(),
            value,
        }))
    }

    pub(super) async fn verify(
        client: &aws_sdk_ec2::Client,
        id: &str,
        key: &str,
        result: &Value,
        ctx: &StepCtx,
    ) -> Result<(), StepError> {
        let want = from_record::<Applied>(result, "result", id)
            .map(|a| a.value)
            .unwrap_or_else(|_| ctx.request_id.to_string());
        let now = read(client, id, key).await?;
        if now.as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE,
            id,
            format!("tag {key} of {id} is {now:?}, not {want}"),
        ))
    }

    pub(super) async fn revert(
        client: &aws_sdk_ec2::Client,
        id: &str,
        key: &str,
        captured: &Value,
        result: &Value,
        retry: bool,
    ) -> Result<RevertOutcome, StepError> {
        let prior: Prior = from_record(captured, "captured", id)?;
        let Ok(applied) = from_record::<Applied>(result, "result", id) else {
            return Ok(RevertOutcome::NothingToRevert {
                reason: format!("hanko did not tag {id}"),
            });
        };
        if prior.value.as_deref() == Some(applied.value.as_str()) {
            return Ok(RevertOutcome::NothingToRevert {
                reason: format!("tag {key} already had hanko's value before the step"),
            });
        }
        let now = read(client, id, key).await?;
        if retry && now == prior.value {
            // As captured again (a retried or resumed revert restored it).
            return Ok(RevertOutcome::Restored);
        }
        if now.as_deref() != Some(applied.value.as_str()) {
            return Ok(RevertOutcome::Drifted {
                reason: format!(
                    "tag {key} of {id} is now {now:?}, not hanko's {}",
                    applied.value
                ),
            });
        }
        match prior.value {
            Some(old) => write(client, id, key, &old, false)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, CREATE, id))?,
            None => client
                .delete_tags()
                .resources(id)
                .tags(super::tag(key, &applied.value))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, DELETE, id))?,
        }
        Ok(RevertOutcome::Restored)
    }
}

// ---------------------------------------------------------------------------------------------
// Opt-in: detach the instance profile
// ---------------------------------------------------------------------------------------------

mod profile {
    use super::*;

    const DESCRIBE: &str = "ec2:DescribeIamInstanceProfileAssociations";
    const DISASSOCIATE: &str = "ec2:DisassociateIamInstanceProfile";
    const ASSOCIATE: &str = "ec2:AssociateIamInstanceProfile";

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Association {
        association_id: String,
        instance_profile_arn: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        association: Option<Association>,
    }

    /// The instance's associations that are in effect (associated or associating).
    async fn current(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Vec<Association>, StepError> {
        let out = client
            .describe_iam_instance_profile_associations()
            .filters(filter("instance-id", id))
            .send()
            .await
            .map_err(|e| classify(&e, DESCRIBE, id))?;
        Ok(out
            .iam_instance_profile_associations()
            .iter()
            .filter(|a| a.instance_id() == Some(id))
            .filter(|a| {
                matches!(
                    a.state(),
                    Some(IamInstanceProfileAssociationState::Associated)
                        | Some(IamInstanceProfileAssociationState::Associating)
                )
            })
            .filter_map(|a| {
                Some(Association {
                    association_id: a.association_id()?.to_string(),
                    instance_profile_arn: a.iam_instance_profile()?.arn()?.to_string(),
                })
            })
            .collect())
    }

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Captured, StepError> {
        let association = current(client, id).await?.into_iter().next();
        let done = association.is_none();
        Ok(Captured {
            prior: to_record(&Prior { association }),
            already_in_target_state: done,
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        prior: &Value,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let prior: Prior = from_record(prior, "captured", id)?;
        let Some(association) = prior.association else {
            return Ok(json!({ "disassociated": null }));
        };
        if ctx.dry_run {
            // DisassociateIamInstanceProfile has no DryRun parameter: describe it only.
            let mut dry = DryRun::default();
            dry.described(
                DISASSOCIATE,
                json!({"AssociationId": association.association_id,
                "InstanceProfileArn": association.instance_profile_arn}),
            );
            return Ok(dry.into_result());
        }
        client
            .disassociate_iam_instance_profile()
            .association_id(&association.association_id)
            .send()
            .await
            .map_err(|e| classify(&e, DISASSOCIATE, id))?;
        Ok(json!({ "disassociated": to_record(&association) }))
    }

    pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), StepError> {
        let now = current(client, id).await?;
        if now.is_empty() {
            return Ok(());
        }
        let arns: Vec<&str> = now
            .iter()
            .map(|a| a.instance_profile_arn.as_str())
            .collect();
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE,
            id,
            format!("{id} still has instance profile {}", arns.join(", ")),
        ))
    }

    pub(super) async fn revert(
        client: &aws_sdk_ec2::Client,
        id: &str,
        captured: &Value,
        retry: bool,
    ) -> Result<RevertOutcome, StepError> {
        let prior: Prior = from_record(captured, "captured", id)?;
        let Some(association) = prior.association else {
            return Ok(RevertOutcome::NothingToRevert {
                reason: format!("{id} had no instance profile before hanko"),
            });
        };
        let now = current(client, id).await?;
        if retry
            && now
                .iter()
                .any(|a| a.instance_profile_arn == association.instance_profile_arn)
        {
            // The captured profile is associated again (a retried or resumed revert did it).
            return Ok(RevertOutcome::Restored);
        }
        if let Some(other) = now.first() {
            return Ok(RevertOutcome::Drifted {
                reason: format!(
                    "{id} has instance profile {} now",
                    other.instance_profile_arn
                ),
            });
        }
        client
            .associate_iam_instance_profile()
            .instance_id(id)
            .iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .arn(&association.instance_profile_arn)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e, ASSOCIATE, id))?;
        Ok(RevertOutcome::Restored)
    }
}

// ---------------------------------------------------------------------------------------------
// Opt-in: stop
// ---------------------------------------------------------------------------------------------

mod stop {
    use super::*;

    const STOP: &str = "ec2:StopInstances";
    const START: &str = "ec2:StartInstances";

    #[derive(Debug, Serialize, Deserialize)]
    struct Prior {
        state: String,
    }

    async fn state(client: &aws_sdk_ec2::Client, id: &str) -> Result<InstanceStateName, StepError> {
        let instance = describe_instance(client, id).await?;
        instance
            .state()
            .and_then(|s| s.name())
            .cloned()
            .ok_or_else(|| {
                StepError::local(
                    ErrorClass::Other,
                    DESCRIBE_INSTANCES,
                    id,
                    format!("EC2 reported no state for {id}"),
                )
            })
    }

    fn is_stopped(s: &InstanceStateName) -> bool {
        matches!(s, InstanceStateName::Stopped | InstanceStateName::Stopping)
    }

    pub(super) async fn capture(
        client: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Captured, StepError> {
        let s = state(client, id).await?;
        Ok(Captured {
            prior: to_record(&Prior {
                state: s.as_str().to_string(),
            }),
            already_in_target_state: is_stopped(&s),
        })
    }

    pub(super) async fn apply(
        client: &aws_sdk_ec2::Client,
        id: &str,
        ctx: &StepCtx,
    ) -> Result<Value, StepError> {
        let res = client
            .stop_instances()
            .instance_ids(id)
            .dry_run(ctx.dry_run)
            .send()
            .await;
        if ctx.dry_run {
            let mut dry = DryRun::default();
            dry.sent(res, STOP, id, json!({"InstanceIds": [id]}))?;
            return Ok(dry.into_result());
        }
        res.map_err(|e| classify(&e, STOP, id))?;
        Ok(json!({ "stopped": true }))
    }

    pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), StepError> {
        let s = state(client, id).await?;
        if is_stopped(&s) {
            return Ok(());
        }
        Err(StepError::local(
            ErrorClass::Other,
            DESCRIBE_INSTANCES,
            id,
            format!("{id} is {}, not stopping or stopped", s.as_str()),
        ))
    }

    pub(super) async fn revert(
        client: &aws_sdk_ec2::Client,
        id: &str,
        captured: &Value,
        retry: bool,
    ) -> Result<RevertOutcome, StepError> {
        let prior: Prior = from_record(captured, "captured", id)?;
        if is_stopped(&InstanceStateName::from(prior.state.as_str())) {
            return Ok(RevertOutcome::NothingToRevert {
                reason: format!("{id} was already {} before hanko", prior.state),
            });
        }
        match state(client, id).await? {
            InstanceStateName::Stopped => {}
            // Running (or starting) again, as captured: a retried or resumed revert started it.
            InstanceStateName::Running | InstanceStateName::Pending if retry => {
                return Ok(RevertOutcome::Restored)
            }
            InstanceStateName::Stopping => {
                return Err(StepError::local(
                    ErrorClass::Retryable,
                    START,
                    id,
                    format!("{id} is still stopping; it can be started once stopped"),
                ))
            }
            other => {
                return Ok(RevertOutcome::Drifted {
                    reason: format!("{id} is {} now, not stopped", other.as_str()),
                })
            }
        }
        client
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify(&e, START, id))?;
        Ok(RevertOutcome::Restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(action: Action, target: &str, params: Value) -> Step {
        Step::new(
            action,
            Target::Instance {
                instance_id: target.into(),
            },
            params,
        )
    }

    #[test]
    fn instance_id_refuses_a_plan_whose_parameter_and_target_differ() {
        let ok = step(Action::TagInstance, "i-1", json!({"InstanceId": "i-1"}));
        assert_eq!(instance_id(&ok).unwrap(), "i-1");
        let from_target = step(Action::TagInstance, "i-2", json!({}));
        assert_eq!(instance_id(&from_target).unwrap(), "i-2");
        let bad = step(Action::TagInstance, "i-1", json!({"InstanceId": "i-9"}));
        let err = instance_id(&bad).unwrap_err();
        assert_eq!(err.class, ErrorClass::Other);
        assert!(
            err.message.contains("i-9") && err.message.contains("i-1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn group_names_and_tag_key_come_from_the_parameters_with_defaults() {
        let s = step(
            Action::IsolateInstance,
            "i-1",
            json!({"InstanceId": "i-1", "QuarantineGroupName": "q", "TransitionGroupName": "t"}),
        );
        let n = group_names(&s);
        assert_eq!((n.quarantine.as_str(), n.transition.as_str()), ("q", "t"));
        let d = group_names(&step(Action::IsolateInstance, "i-1", json!({})));
        assert_eq!(d.quarantine, QUARANTINE_GROUP);
        assert_eq!(d.transition, TRANSITION_GROUP);
        assert_eq!(
            tag_key(&step(Action::TagInstance, "i-1", json!({}))),
            TAG_QUARANTINE
        );
    }
}
