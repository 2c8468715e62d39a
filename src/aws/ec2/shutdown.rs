//! Step 3, shutdown behaviour: `InstanceInitiatedShutdownBehavior` set to `stop`, restored to
//! what was captured.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

use super::*;

const STOP: &str = "stop";

#[derive(Debug, Serialize, Deserialize)]
struct Prior {
    instance_initiated_shutdown_behavior: String,
}

async fn read(client: &aws_sdk_ec2::Client, id: &str) -> Result<String, AwsError> {
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
fn write(client: &aws_sdk_ec2::Client, id: &str, behavior: &str, dry_run: bool) -> ModifyAttribute {
    client
        .modify_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .value(behavior)
        .dry_run(dry_run)
}

pub(super) async fn capture(client: &aws_sdk_ec2::Client, id: &str) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
    let res = write(client, id, STOP, ctx.dry_run).send().await;
    DryRun::single_call(
        res,
        ctx,
        MODIFY_ATTRIBUTE,
        id,
        json!({"InstanceId": id, "InstanceInitiatedShutdownBehavior": STOP}),
        json!({ "instance_initiated_shutdown_behavior": STOP }),
    )
}

pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    let behavior = read(client, id).await?;
    if behavior == STOP {
        return Ok(());
    }
    Err(AwsError::local(
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
) -> Result<RevertOutcome, AwsError> {
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
