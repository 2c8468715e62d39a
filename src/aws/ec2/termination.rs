//! Step 2, termination protection: `DisableApiTermination` on, restored to what was captured.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

use super::*;

#[derive(Debug, Serialize, Deserialize)]
struct Prior {
    disable_api_termination: bool,
}

async fn read(client: &aws_sdk_ec2::Client, id: &str) -> Result<bool, AwsError> {
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

pub(super) async fn capture(client: &aws_sdk_ec2::Client, id: &str) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
    let res = write(client, id, true, ctx.dry_run).send().await;
    DryRun::single_call(
        res,
        ctx,
        MODIFY_ATTRIBUTE,
        id,
        json!({"InstanceId": id, "DisableApiTermination": true}),
        json!({ "disable_api_termination": true }),
    )
}

pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    if read(client, id).await? {
        return Ok(());
    }
    Err(AwsError::local(
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
) -> Result<RevertOutcome, AwsError> {
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
