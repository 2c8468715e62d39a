//! Step 6, tag: the quarantine tag on the instance, removed or restored on revert.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

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
) -> Result<Option<String>, AwsError> {
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
) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
    let value = ctx.request_id.to_string();
    let res = write(client, id, key, &value, ctx.dry_run).send().await;
    let parameters = json!({"Resources": [id], "Tags": {key: &value}});
    let applied = to_record(&Applied {
        key: key.to_string(),
        value,
    });
    DryRun::single_call(res, ctx, CREATE, id, parameters, applied)
}

pub(super) async fn verify(
    client: &aws_sdk_ec2::Client,
    id: &str,
    key: &str,
    result: &Value,
    ctx: &StepCtx,
) -> Result<(), AwsError> {
    let want = from_record::<Applied>(result, "result", id)
        .map(|a| a.value)
        .unwrap_or_else(|_| ctx.request_id.to_string());
    let now = read(client, id, key).await?;
    if now.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    Err(AwsError::local(
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
) -> Result<RevertOutcome, AwsError> {
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
