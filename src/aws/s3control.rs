//! S3 Control steps: block public access for a whole account (the account-level S3 Block Public
//! Access setting, all four flags). Capture, apply, verify and revert follow the step contract in
//! [`crate::aws`].
//!
//! Scope: only the account named in the parameters (`{"AccountId"}`, falling back on the target),
//! which must be the account of the plan (the engine builds the clients for it). Buckets' own
//! settings are never touched (that is [`crate::aws::s3`]).
//!
//! May use `aws-sdk-s3control` and the core plan types; never imports sled or serenity.
//!
//! Operations are named as IAM policies name them: S3 Control's `GetPublicAccessBlock` needs
//! `s3:GetAccountPublicAccessBlock`; `PutPublicAccessBlock` and `DeletePublicAccessBlock` need
//! `s3:PutAccountPublicAccessBlock`.
//!
//! Records use the same shape as the bucket step's: `{"configured": false}` or
//! `{"configured": true, "BlockPublicAcls": .., "IgnorePublicAcls": .., "BlockPublicPolicy": ..,
//! "RestrictPublicBuckets": ..}`.

use aws_sdk_s3control::operation::get_public_access_block::GetPublicAccessBlockError;
use aws_sdk_s3control::types::PublicAccessBlockConfiguration;
use aws_sdk_s3control::Client;
use serde_json::{json, Value};

use super::error::{absent_as_none, classify};
use super::s3::{flags_of, pab_json, Pab};
use super::{dry_run_result, dry_run_revert, nothing, nothing_to_verify, prior_of};
use super::{AwsError, Captured, ErrorClass, RevertOutcome, StepCtx};
use crate::plan::{Action, Step, Target};

const GET_ACCOUNT_PAB: &str = "s3:GetAccountPublicAccessBlock";
const PUT_ACCOUNT_PAB: &str = "s3:PutAccountPublicAccessBlock";
pub async fn capture(client: &Client, step: &Step, _ctx: &StepCtx) -> Result<Captured, AwsError> {
    let account = account_of(step)?;
    let pab = get_pab(client, &account).await?;
    Ok(Captured {
        already_in_target_state: pab == Some([true; 4]),
        prior: pab_json(pab),
    })
}

pub async fn apply(
    client: &Client,
    step: &Step,
    captured: &Captured,
    ctx: &StepCtx,
) -> Result<Value, AwsError> {
    let account = account_of(step)?;
    if ctx.dry_run {
        let mut parameters = json!({"AccountId": account});
        parameters["PublicAccessBlockConfiguration"] = pab_json(Some([true; 4]));
        return Ok(dry_run_result(PUT_ACCOUNT_PAB, parameters));
    }
    put_pab(client, &account, [true; 4]).await?;
    let mut result = pab_json(Some([true; 4]));
    result["AccountId"] = Value::String(account);
    result["prior"] = captured.prior.clone();
    Ok(result)
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
    let account = account_of(step)?;
    match get_pab(client, &account).await? {
        Some(flags) if flags == [true; 4] => Ok(()),
        _ => Err(AwsError::local(
            ErrorClass::Retryable,
            GET_ACCOUNT_PAB,
            format!("account {account}"),
            "the account's public access block does not read back with all four flags true",
        )),
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
    if result.get("AccountId").is_none() {
        return Ok(nothing(
            "the step changed nothing (the account was already so)",
        ));
    }
    let account = account_of(step)?;
    let prior = prior_of(result, captured);
    let Some(configured) = prior.get("configured").and_then(Value::as_bool) else {
        return Ok(nothing("the step recorded no prior configuration"));
    };
    let current = get_pab(client, &account).await?;
    // Already as captured (a retried or resumed revert restored it).
    if ctx.revert_retry && current == configured.then(|| flags_of(prior)) {
        return Ok(RevertOutcome::Restored);
    }
    if current != Some([true; 4]) {
        return Ok(RevertOutcome::Drifted {
            reason: format!(
                "the account-level public access block of account {account} was changed since \
                 hanko set all four flags; left alone"
            ),
        });
    }
    if ctx.dry_run {
        return Ok(nothing(
            "dry run: would restore the prior account-level public access block",
        ));
    }
    if configured {
        put_pab(client, &account, flags_of(prior)).await?;
    } else {
        client
            .delete_public_access_block()
            .account_id(&account)
            .send()
            .await
            .map_err(|e| classify(&e, PUT_ACCOUNT_PAB, &format!("account {account}")))?;
    }
    Ok(RevertOutcome::Restored)
}

async fn get_pab(client: &Client, account: &str) -> Result<Pab, AwsError> {
    let res = client
        .get_public_access_block()
        .account_id(account)
        .send()
        .await;
    let absent = |s: &GetPublicAccessBlockError| s.is_no_such_public_access_block_configuration();
    let resource = format!("account {account}");
    match absent_as_none(res, absent, GET_ACCOUNT_PAB, &resource)? {
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

async fn put_pab(client: &Client, account: &str, flags: [bool; 4]) -> Result<(), AwsError> {
    let conf = PublicAccessBlockConfiguration::builder()
        .block_public_acls(flags[0])
        .ignore_public_acls(flags[1])
        .block_public_policy(flags[2])
        .restrict_public_buckets(flags[3])
        .build();
    client
        .put_public_access_block()
        .account_id(account)
        .public_access_block_configuration(conf)
        .send()
        .await
        .map(drop)
        .map_err(|e| classify(&e, PUT_ACCOUNT_PAB, &format!("account {account}")))
}

/// The account the step is about; only a `BlockAccountPublicAccess` step is accepted.
#[allow(clippy::result_large_err)] // AwsError is the step contract's error type; boxing it only here buys nothing
fn account_of(step: &Step) -> Result<String, AwsError> {
    let local = |message: String| AwsError::invalid_step(step, message);
    if step.action != Action::BlockAccountPublicAccess {
        return Err(local(format!("{} is not an S3 Control step", step.action)));
    }
    let fallback = match &step.target {
        Target::Account { account_id } => Some(account_id.as_str()),
        _ => None,
    };
    step.parameters
        .get("AccountId")
        .and_then(Value::as_str)
        .or(fallback)
        .filter(|a| crate::ids::is_account_id(a))
        .map(str::to_string)
        .ok_or_else(|| local("the step's parameters lack a 12-digit AccountId".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pab_json_round_trips_the_flags() {
        let v = pab_json(Some([false, true, false, true]));
        assert_eq!(flags_of(&v), [false, true, false, true]);
        assert_eq!(v["configured"], true);
        assert_eq!(pab_json(None), json!({"configured": false}));
    }

    #[test]
    fn the_account_comes_from_the_parameters_or_the_target_and_must_be_an_account_id() {
        let step = crate::plan::block_account_public_access_step("123456789012");
        assert_eq!(account_of(&step).ok().as_deref(), Some("123456789012"));
        let mut only_target = step.clone();
        only_target.parameters = json!({});
        assert_eq!(
            account_of(&only_target).ok().as_deref(),
            Some("123456789012")
        );
        let mut bad = step.clone();
        bad.parameters = json!({"AccountId": "*"});
        bad.target = Target::Account {
            account_id: "x".into(),
        };
        assert!(account_of(&bad).is_err());
        let mut wrong = step;
        wrong.action = Action::BlockBucketPublicAccess;
        assert!(account_of(&wrong).is_err());
    }
}
