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
    #[serde(default)]
    created: Vec<String>,
}

/// Snapshots of `volumes` that are already evidence for this finding (tagged with its id), or,
/// when the finding is unknown, for this request and step; by volume id (error-state ones left
/// out).
///
/// The volume filter comes first: it narrows the search to the instance's own volumes, which is
/// all the step asks about (moto, which filters in order, answers in ~15 ms instead of ~150 ms
/// when it holds its 1,200 default snapshots).
async fn tagged(
    client: &aws_sdk_ec2::Client,
    id: &str,
    volumes: &BTreeMap<String, String>,
    ctx: &StepCtx,
) -> Result<BTreeMap<String, String>, AwsError> {
    if volumes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let describe = client.describe_snapshots().owner_ids("self").filters(
        Filter::builder()
            .name("volume-id")
            .set_values(Some(volumes.keys().cloned().collect()))
            .build(),
    );
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
    let existing = tagged(client, id, &volumes, ctx).await?;
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
    // A retried or resumed step must never snapshot twice: it looks up by tag again. On the
    // first attempt right after this run's own capture, that capture is the lookup.
    let mut snapshots = if ctx.fresh_capture {
        prior.existing.clone()
    } else {
        tagged(client, id, &prior.volumes, ctx).await?
    };
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
    if ctx.dry_run {
        let mut dry = DryRun::default();
        for (volume, device) in missing {
            let description = description(id, volume, device, &request);
            let res = client
                .create_snapshot()
                .volume_id(volume)
                .description(&description)
                .tag_specifications(tags.clone())
                .dry_run(true)
                .send()
                .await;
            let params = json!({"VolumeId": volume, "Description": description,
                "Tags": {TAG_REQUEST: request, TAG_STEP: step, TAG_QUARANTINE: request}});
            dry.sent(res, CREATE, volume, params)?;
        }
        return Ok(dry.into_result());
    }
    // One snapshot per volume, at most EC2_CONCURRENCY at once: the volumes are independent.
    // When one call fails the step fails and its retry looks up by tag, so the snapshots
    // that were made are found, not made again.
    let made = each_bounded(&missing, |(volume, device)| {
        let call = client
            .create_snapshot()
            .volume_id(*volume)
            .description(description(id, volume, device, &request))
            .tag_specifications(tags.clone());
        async move {
            let out = call
                .send()
                .await
                .map_err(|e| classify(&e, CREATE, volume.as_str()))?;
            Ok((
                volume.to_string(),
                out.snapshot_id().unwrap_or_default().to_string(),
            ))
        }
    })
    .await?;
    let mut created = Vec::with_capacity(made.len());
    for (volume, snap) in made {
        created.push(snap.clone());
        snapshots.insert(volume, snap);
    }
    created.sort();
    Ok(to_record(&Applied { snapshots, created }))
}

/// The description of the evidence snapshot of `volume`. No spaces: see the note on security
/// group descriptions.
fn description(id: &str, volume: &str, device: &str, request: &str) -> String {
    format!("hanko-evidence:{id}:{volume}:{device}:request-{request}")
}

/// Reads back the snapshots `apply` reported, by id (cheaper than the tag lookup, and exact):
/// every volume the instance has now must have one of them, not in the error state. A snapshot
/// EC2 does not list yet (`InvalidSnapshot.NotFound` right after the create: EC2 is eventually
/// consistent) is a retryable miss. A result without the map (an older record) is checked by
/// tag as before.
pub(super) async fn verify(
    client: &aws_sdk_ec2::Client,
    id: &str,
    result: &Value,
    ctx: &StepCtx,
) -> Result<(), AwsError> {
    let made: Option<Applied> = serde_json::from_value(result.clone()).ok();
    let (volumes, snapshots) = match made {
        Some(made) if !made.snapshots.is_empty() => {
            tokio::try_join!(volumes(client, id), by_id(client, id, &made.snapshots))?
        }
        _ => {
            let volumes = volumes(client, id).await?;
            let snapshots = tagged(client, id, &volumes, ctx).await?;
            (volumes, snapshots)
        }
    };
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

/// The snapshots of `made` (volume id -> snapshot id) as EC2 describes them now: by volume
/// id, those of the right volume that are not in the error state.
async fn by_id(
    client: &aws_sdk_ec2::Client,
    id: &str,
    made: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, AwsError> {
    let out = client
        .describe_snapshots()
        .set_snapshot_ids(Some(made.values().cloned().collect()))
        .send()
        .await
        .map_err(|e| {
            let mut err = classify(&e, DESCRIBE, id);
            if err.code.as_deref() == Some("InvalidSnapshot.NotFound") {
                err.class = ErrorClass::Retryable;
            }
            err
        })?;
    Ok(out
        .snapshots()
        .iter()
        .filter(|s| s.state() != Some(&SnapshotState::Error))
        .filter_map(|s| {
            let (volume, snap) = (s.volume_id()?, s.snapshot_id()?);
            (made.get(volume).map(String::as_str) == Some(snap))
                .then(|| (volume.to_string(), snap.to_string()))
        })
        .collect())
}
