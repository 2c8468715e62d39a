//! Opt-in step: stop the instance, started again on revert.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

use super::*;

const STOP: &str = "ec2:StopInstances";
const START: &str = "ec2:StartInstances";

#[derive(Debug, Serialize, Deserialize)]
struct Prior {
    state: String,
}

async fn state(client: &aws_sdk_ec2::Client, id: &str) -> Result<InstanceStateName, AwsError> {
    let instance = describe_instance(client, id).await?;
    instance
        .state()
        .and_then(|s| s.name())
        .cloned()
        .ok_or_else(|| {
            AwsError::local(
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

pub(super) async fn capture(client: &aws_sdk_ec2::Client, id: &str) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
    let res = client
        .stop_instances()
        .instance_ids(id)
        .dry_run(ctx.dry_run)
        .send()
        .await;
    DryRun::single_call(
        res,
        ctx,
        STOP,
        id,
        json!({"InstanceIds": [id]}),
        json!({ "stopped": true }),
    )
}

pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    let s = state(client, id).await?;
    if is_stopped(&s) {
        return Ok(());
    }
    Err(AwsError::local(
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
) -> Result<RevertOutcome, AwsError> {
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
            return Err(AwsError::local(
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
