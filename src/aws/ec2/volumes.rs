//! Step 4, keep volumes: `DeleteOnTermination=false` on every EBS volume of the instance.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

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

fn mapping(device: &str, delete_on_termination: bool) -> InstanceBlockDeviceMappingSpecification {
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

pub(super) async fn capture(client: &aws_sdk_ec2::Client, id: &str) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
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
    let parameters = json!({"InstanceId": id, "BlockDeviceMappings": changed.iter()
        .map(|d| json!({"DeviceName": d, "Ebs": {"DeleteOnTermination": false}}))
        .collect::<Vec<_>>()});
    DryRun::single_call(
        res,
        ctx,
        MODIFY_ATTRIBUTE,
        id,
        parameters,
        to_record(&Applied { changed }),
    )
}

pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    let still: Vec<String> = ebs_devices(&describe_instance(client, id).await?)
        .into_iter()
        .filter(|d| d.delete_on_termination)
        .map(|d| format!("{} ({})", d.volume_id, d.device_name))
        .collect();
    if still.is_empty() {
        return Ok(());
    }
    Err(AwsError::local(
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
) -> Result<RevertOutcome, AwsError> {
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
