//! S3 containment steps: block public access on one bucket (all four flags) and, opt-in,
//! enforce bucket ownership (ACLs off). Each has capture, apply, verify and revert (see the step
//! contract in [`crate::aws`]).
//!
//! Scope: only the bucket named in the parameters (`{"Bucket"}`, falling back on the target);
//! never the account-level setting (that needs the S3 Control API).
//!
//! May use `aws-sdk-s3` and the core plan types; never imports sled or serenity.
//!
//! Operations are named as IAM policies name them: `PutPublicAccessBlock` and
//! `DeletePublicAccessBlock` need `s3:PutBucketPublicAccessBlock`, `GetPublicAccessBlock`
//! needs `s3:GetBucketPublicAccessBlock`; `Put/DeleteBucketOwnershipControls` need
//! `s3:PutBucketOwnershipControls`.

use aws_sdk_s3::types::{
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
};
use aws_sdk_s3::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{json, Value};

use super::error::{absent_as_none, classify};
use super::{dry_run_result, dry_run_revert, nothing, nothing_to_verify, prior_of};
use super::{AwsError, Captured, ErrorClass, RevertOutcome, StepCtx};
use crate::plan::{Action, Step, Target};

const GET_PAB: &str = "s3:GetBucketPublicAccessBlock";
const PUT_PAB: &str = "s3:PutBucketPublicAccessBlock";
const GET_OWNERSHIP: &str = "s3:GetBucketOwnershipControls";
const PUT_OWNERSHIP: &str = "s3:PutBucketOwnershipControls";
/// The error code of `GetPublicAccessBlock` on a bucket without a configuration.
const NO_PAB: &str = "NoSuchPublicAccessBlockConfiguration";
/// The error code of `GetBucketOwnershipControls` on a bucket without ownership controls.
const NO_OWNERSHIP: &str = "OwnershipControlsNotFoundError";
/// The four public-access-block flags, as the API and the JSON records name them.
/// The four public-access-block flags, in the order of the `[bool; 4]`s below; shared with
/// the account-level block ([`super::s3control`]).
pub(super) const FLAGS: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];
const ENFORCED: &str = "BucketOwnerEnforced";

/// A bucket's public access block: `None` when it has none.
pub(super) type Pab = Option<[bool; 4]>;

pub async fn capture(client: &Client, step: &Step, _ctx: &StepCtx) -> Result<Captured, AwsError> {
    let bucket = bucket_of(step)?;
    match step.action {
        Action::BlockBucketPublicAccess => {
            let pab = get_pab(client, &bucket).await?;
            Ok(Captured {
                already_in_target_state: pab == Some([true; 4]),
                prior: pab_json(pab),
            })
        }
        Action::EnforceBucketOwnership => {
            let rules = get_ownership(client, &bucket).await?;
            Ok(Captured {
                already_in_target_state: rules.as_deref() == Some(&[ENFORCED.to_string()][..]),
                prior: ownership_json(rules.as_deref()),
            })
        }
        other => Err(not_s3(step, other)),
    }
}

pub async fn apply(
    client: &Client,
    step: &Step,
    captured: &Captured,
    ctx: &StepCtx,
) -> Result<Value, AwsError> {
    let bucket = bucket_of(step)?;
    match step.action {
        Action::BlockBucketPublicAccess => {
            if ctx.dry_run {
                let mut parameters = json!({"Bucket": bucket});
                parameters["PublicAccessBlockConfiguration"] = pab_json(Some([true; 4]));
                return Ok(dry_run_result(PUT_PAB, parameters));
            }
            put_pab(client, &bucket, [true; 4]).await?;
            let mut result = pab_json(Some([true; 4]));
            result["Bucket"] = Value::String(bucket);
            result["prior"] = captured.prior.clone();
            Ok(result)
        }
        Action::EnforceBucketOwnership => {
            if ctx.dry_run {
                let parameters = json!({
                    "Bucket": bucket,
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": ENFORCED}]},
                });
                return Ok(dry_run_result(PUT_OWNERSHIP, parameters));
            }
            put_ownership(client, &bucket, &[ENFORCED.to_string()]).await?;
            let mut result = ownership_json(Some(&[ENFORCED.to_string()]));
            result["Bucket"] = Value::String(bucket);
            result["prior"] = captured.prior.clone();
            Ok(result)
        }
        other => Err(not_s3(step, other)),
    }
}

pub async fn verify(
    client: &Client,
    step: &Step,
    result: &Value,
    ctx: &StepCtx,
) -> Result<(), AwsError> {
    if nothing_to_verify(result, ctx) {
        return Ok(());
    }
    let bucket = bucket_of(step)?;
    match step.action {
        Action::BlockBucketPublicAccess => match get_pab(client, &bucket).await? {
            Some(flags) if flags == [true; 4] => Ok(()),
            _ => Err(AwsError::local(
                ErrorClass::Retryable,
                GET_PAB,
                format!("bucket {bucket}"),
                "the public access block does not read back with all four flags true",
            )),
        },
        Action::EnforceBucketOwnership => match get_ownership(client, &bucket).await?.as_deref() {
            Some([only]) if only == ENFORCED => Ok(()),
            _ => Err(AwsError::local(
                ErrorClass::Retryable,
                GET_OWNERSHIP,
                format!("bucket {bucket}"),
                "ownership controls do not read back as BucketOwnerEnforced",
            )),
        },
        other => Err(not_s3(step, other)),
    }
}

pub async fn revert(
    client: &Client,
    step: &Step,
    captured: &Value,
    result: &Value,
    ctx: &StepCtx,
) -> Result<RevertOutcome, AwsError> {
    if let Some(outcome) = dry_run_revert(result) {
        return Ok(outcome);
    }
    if result.get("Bucket").is_none() {
        return Ok(nothing(
            "the step changed nothing (the bucket was already so)",
        ));
    }
    let bucket = bucket_of(step)?;
    let prior = prior_of(result, captured);
    let configured = prior.get("configured").and_then(Value::as_bool);
    match step.action {
        Action::BlockBucketPublicAccess => {
            let Some(configured) = configured else {
                return Ok(nothing("the step recorded no prior configuration"));
            };
            let current = get_pab(client, &bucket).await?;
            // Already as captured (a retried or resumed revert restored it).
            if ctx.revert_retry && current == configured.then(|| flags_of(prior)) {
                return Ok(RevertOutcome::Restored);
            }
            if current != Some([true; 4]) {
                return Ok(RevertOutcome::Drifted {
                    reason: format!(
                        "the public access block of bucket {bucket} was changed since hanko set \
                         all four flags; left alone"
                    ),
                });
            }
            if ctx.dry_run {
                return Ok(nothing(
                    "dry run: would restore the prior public access block",
                ));
            }
            if configured {
                put_pab(client, &bucket, flags_of(prior)).await?;
            } else {
                client
                    .delete_public_access_block()
                    .bucket(&bucket)
                    .send()
                    .await
                    .map_err(|e| classify(&e, PUT_PAB, &format!("bucket {bucket}")))?;
            }
            Ok(RevertOutcome::Restored)
        }
        Action::EnforceBucketOwnership => {
            let Some(configured) = configured else {
                return Ok(nothing("the step recorded no prior ownership controls"));
            };
            let prior_rules: Vec<String> = prior
                .get("Rules")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let current = get_ownership(client, &bucket).await?;
            // Already as captured (a retried or resumed revert restored it).
            if ctx.revert_retry && current == configured.then(|| prior_rules.clone()) {
                return Ok(RevertOutcome::Restored);
            }
            match current.as_deref() {
                Some([only]) if only == ENFORCED => {}
                _ => {
                    return Ok(RevertOutcome::Drifted {
                        reason: format!(
                            "the ownership controls of bucket {bucket} were changed since hanko \
                             set BucketOwnerEnforced; left alone"
                        ),
                    })
                }
            }
            if ctx.dry_run {
                return Ok(nothing(
                    "dry run: would restore the prior ownership controls",
                ));
            }
            if configured {
                put_ownership(client, &bucket, &prior_rules).await?;
            } else {
                client
                    .delete_bucket_ownership_controls()
                    .bucket(&bucket)
                    .send()
                    .await
                    .map_err(|e| classify(&e, PUT_OWNERSHIP, &format!("bucket {bucket}")))?;
            }
            Ok(RevertOutcome::Restored)
        }
        other => Err(not_s3(step, other)),
    }
}

async fn get_pab(client: &Client, bucket: &str) -> Result<Pab, AwsError> {
    let res = client.get_public_access_block().bucket(bucket).send().await;
    let resource = format!("bucket {bucket}");
    match absent_as_none(res, |s| s.code() == Some(NO_PAB), GET_PAB, &resource)? {
        Some(out) => {
            let c = out.public_access_block_configuration();
            let flag = |f: Option<bool>| f.unwrap_or(false);
            Ok(Some(c.map_or([false; 4], |c| {
                [
                    flag(c.block_public_acls()),
                    flag(c.ignore_public_acls()),
                    flag(c.block_public_policy()),
                    flag(c.restrict_public_buckets()),
                ]
            })))
        }
        None => Ok(None),
    }
}

async fn put_pab(client: &Client, bucket: &str, flags: [bool; 4]) -> Result<(), AwsError> {
    let conf = PublicAccessBlockConfiguration::builder()
        .block_public_acls(flags[0])
        .ignore_public_acls(flags[1])
        .block_public_policy(flags[2])
        .restrict_public_buckets(flags[3])
        .build();
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(conf)
        .send()
        .await
        .map(drop)
        .map_err(|e| classify(&e, PUT_PAB, &format!("bucket {bucket}")))
}

/// The bucket's ownership rules (`["BucketOwnerEnforced"]`), `None` when it has none.
async fn get_ownership(client: &Client, bucket: &str) -> Result<Option<Vec<String>>, AwsError> {
    let res = client
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await;
    let resource = format!("bucket {bucket}");
    match absent_as_none(
        res,
        |s| s.code() == Some(NO_OWNERSHIP),
        GET_OWNERSHIP,
        &resource,
    )? {
        Some(out) => Ok(Some(
            out.ownership_controls()
                .map(|c| {
                    c.rules()
                        .iter()
                        .map(|r| r.object_ownership().as_str().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        )),
        None => Ok(None),
    }
}

async fn put_ownership(client: &Client, bucket: &str, rules: &[String]) -> Result<(), AwsError> {
    let resource = format!("bucket {bucket}");
    let invalid =
        |what: String| AwsError::local(ErrorClass::Other, PUT_OWNERSHIP, resource.clone(), what);
    let mut controls = OwnershipControls::builder();
    for r in rules {
        let rule = OwnershipControlsRule::builder()
            .object_ownership(ObjectOwnership::from(r.as_str()))
            .build()
            .map_err(|e| invalid(format!("invalid ownership rule {r}: {e}")))?;
        controls = controls.rules(rule);
    }
    let controls = controls
        .build()
        .map_err(|e| invalid(format!("invalid ownership controls: {e}")))?;
    client
        .put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(controls)
        .send()
        .await
        .map(drop)
        .map_err(|e| classify(&e, PUT_OWNERSHIP, &resource))
}

/// `{"configured": false}` or `{"configured": true, "BlockPublicAcls": .., ...}`.
pub(super) fn pab_json(pab: Pab) -> Value {
    let mut v = json!({"configured": pab.is_some()});
    if let Some(flags) = pab {
        for (name, on) in FLAGS.iter().zip(flags) {
            v[*name] = Value::Bool(on);
        }
    }
    v
}

pub(super) fn flags_of(v: &Value) -> [bool; 4] {
    FLAGS.map(|name| v.get(name).and_then(Value::as_bool).unwrap_or(false))
}

/// `{"configured": false}` or `{"configured": true, "Rules": ["BucketOwnerPreferred"]}`.
fn ownership_json(rules: Option<&[String]>) -> Value {
    match rules {
        None => json!({"configured": false}),
        Some(r) => json!({"configured": true, "Rules": r}),
    }
}

#[allow(clippy::result_large_err)] // AwsError is the step contract's error type; boxing it only here buys nothing
fn bucket_of(step: &Step) -> Result<String, AwsError> {
    let fallback = match &step.target {
        Target::Bucket { bucket } => Some(bucket.as_str()),
        _ => None,
    };
    step.parameters
        .get("Bucket")
        .and_then(Value::as_str)
        .or(fallback)
        .map(str::to_string)
        .ok_or_else(|| AwsError::invalid_step(step, "the step's parameters lack Bucket"))
}

fn not_s3(step: &Step, action: Action) -> AwsError {
    AwsError::invalid_step(step, format!("{action} is not an S3 step"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pab_json_round_trips_the_flags() {
        let v = pab_json(Some([true, false, true, false]));
        assert_eq!(
            v,
            json!({"configured": true, "BlockPublicAcls": true, "IgnorePublicAcls": false,
                   "BlockPublicPolicy": true, "RestrictPublicBuckets": false})
        );
        assert_eq!(flags_of(&v), [true, false, true, false]);
        assert_eq!(pab_json(None), json!({"configured": false}));
    }
}
