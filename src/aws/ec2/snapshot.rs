//! Step 1, snapshot volumes: one EBS snapshot per volume of the instance, tagged with the
//! request and step so a retry finds the ones it already made. Snapshots are evidence: a
//! revert keeps them.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

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
) -> Result<BTreeMap<String, String>, AwsError> {
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
) -> Result<BTreeMap<String, String>, AwsError> {
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
) -> Result<Captured, AwsError> {
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
) -> Result<Value, AwsError> {
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
) -> Result<(), AwsError> {
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
    Err(AwsError::local(
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
