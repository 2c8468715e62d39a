//! EC2 containment steps: snapshot, termination protection, shutdown behaviour, keep volumes,
//! isolate, tag, detach instance profile, stop. Each has `capture`, `apply`, `verify` and
//! `revert` (the step contract of [`crate::aws`]).
//!
//! Owns the EC2 calls and the JSON shapes of what each step captured and left behind. It may use
//! `aws_sdk_ec2` and the core types; it never imports sled or serenity, and it never decides
//! whether a step may run.
//!
//! Layout: this file holds the step contract (`capture`, `apply`, `verify`, `revert`, which
//! dispatch on the action), the parameters a step reads, the record and dry-run helpers and the
//! shared reads; each step lives in its own module (`snapshot`, `termination`, `shutdown`,
//! `volumes`, `isolate`, `tag`, `profile`, `stop`).
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
    AwsError, Captured, ErrorClass, RevertOutcome, StepCtx, TAG_FINDING, TAG_QUARANTINE,
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
/// At most this many calls of one step in flight at once (snapshots of different volumes,
/// moves of different interfaces, rules of one group): independent calls overlap, and a large
/// instance does not flood the API.
const EC2_CONCURRENCY: usize = 4;
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
) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
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
) -> Result<(), AwsError> {
    let id = instance_id(step)?;
    if ctx.dry_run {
        // A dry run changed nothing: there is no target state to observe.
        return Ok(());
    }
    match step.action {
        Action::SnapshotVolumes => snapshot::verify(client, &id, result, ctx).await,
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
) -> Result<RevertOutcome, AwsError> {
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
// `AwsError` is the step contract's error (crate::aws::error), built once per failed call.
#[allow(clippy::result_large_err)]
fn instance_id(step: &Step) -> Result<String, AwsError> {
    let from_params = step.parameters.get("InstanceId").and_then(Value::as_str);
    let from_target = match &step.target {
        Target::Instance { instance_id } => Some(instance_id.as_str()),
        _ => None,
    };
    match (from_params, from_target) {
        (Some(p), Some(t)) if p != t => Err(AwsError::local(
            ErrorClass::Other,
            &step.operation,
            t,
            format!("the plan's InstanceId {p} differs from its target {t}; refusing to act"),
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id.to_string()),
        (None, None) => Err(AwsError::local(
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

fn not_ec2(step: &Step, action: Action) -> AwsError {
    AwsError::local(
        ErrorClass::Other,
        &step.operation,
        step.target.to_string(),
        format!("{action} is not an EC2 step"),
    )
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

fn unreadable(what: &str, resource: &str, err: serde_json::Error) -> AwsError {
    AwsError::local(
        ErrorClass::Other,
        "hanko:ReadRecord",
        resource,
        format!("the recorded {what} state of this step cannot be read ({err})"),
    )
}

// `AwsError` is the step contract's error (crate::aws::error), built once per failed call.
#[allow(clippy::result_large_err)]
fn from_record<T: DeserializeOwned>(
    value: &Value,
    what: &str,
    resource: &str,
) -> Result<T, AwsError> {
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
    ) -> Result<(), AwsError>
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
            Ok(_) => Err(AwsError::local(
                ErrorClass::Other,
                operation,
                resource,
                format!("the endpoint ignored DryRun=true: {operation} on {resource} was made"),
            )),
        }
    }

    /// The whole `apply` of a step that makes one call accepting `DryRun` (sent with
    /// `DryRun=ctx.dry_run`): in a dry run, the proof of permission is the step's result;
    /// otherwise a failed call is classified and `applied` is the result.
    #[allow(clippy::result_large_err)] // see `instance_id`
    fn single_call<T, E>(
        res: Result<T, SdkError<E, HttpResponse>>,
        ctx: &StepCtx,
        operation: &str,
        resource: &str,
        parameters: Value,
        applied: Value,
    ) -> Result<Value, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if ctx.dry_run {
            let mut dry = DryRun::default();
            dry.sent(res, operation, resource, parameters)?;
            return Ok(dry.into_result());
        }
        res.map_err(|e| classify(&e, operation, resource))?;
        Ok(applied)
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

async fn describe_instance(client: &aws_sdk_ec2::Client, id: &str) -> Result<Instance, AwsError> {
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
            AwsError::local(
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

/// Runs `call` on every item, at most [`EC2_CONCURRENCY`] at once (in groups of that many, in
/// order), and returns the results in the items' order; the first error ends it. For calls
/// that do not depend on each other.
async fn each_bounded<'a, T, R, F, Fut>(items: &'a [T], call: F) -> Result<Vec<R>, AwsError>
where
    F: Fn(&'a T) -> Fut,
    Fut: std::future::Future<Output = Result<R, AwsError>>,
{
    let mut out = Vec::with_capacity(items.len());
    for group in items.chunks(EC2_CONCURRENCY) {
        out.extend(futures_util::future::try_join_all(group.iter().map(&call)).await?);
    }
    Ok(out)
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

// ---------------------------------------------------------------------------------------------
// The steps, one module each
// ---------------------------------------------------------------------------------------------

mod isolate;
mod profile;
mod shutdown;
mod snapshot;
mod stop;
mod tag;
mod termination;
mod volumes;

// Termination protection and shutdown behaviour: one instance attribute each.
type ModifyAttribute =
    aws_sdk_ec2::operation::modify_instance_attribute::builders::ModifyInstanceAttributeFluentBuilder;

const DESCRIBE_ATTRIBUTE: &str = "ec2:DescribeInstanceAttribute";
const MODIFY_ATTRIBUTE: &str = "ec2:ModifyInstanceAttribute";

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
