//! Opt-in step: detach the instance profile, re-associated on revert.
//!
//! Uses the shared parts of [`super`] (records, dry run, shared reads); the step contract
//! dispatches here from there.

use super::*;

const DESCRIBE: &str = "ec2:DescribeIamInstanceProfileAssociations";
const DISASSOCIATE: &str = "ec2:DisassociateIamInstanceProfile";
const ASSOCIATE: &str = "ec2:AssociateIamInstanceProfile";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Association {
    association_id: String,
    instance_profile_arn: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Prior {
    association: Option<Association>,
}

/// The instance's associations that are in effect (associated or associating).
async fn current(client: &aws_sdk_ec2::Client, id: &str) -> Result<Vec<Association>, AwsError> {
    let out = client
        .describe_iam_instance_profile_associations()
        .filters(filter("instance-id", id))
        .send()
        .await
        .map_err(|e| classify(&e, DESCRIBE, id))?;
    Ok(out
        .iam_instance_profile_associations()
        .iter()
        .filter(|a| a.instance_id() == Some(id))
        .filter(|a| {
            matches!(
                a.state(),
                Some(IamInstanceProfileAssociationState::Associated)
                    | Some(IamInstanceProfileAssociationState::Associating)
            )
        })
        .filter_map(|a| {
            Some(Association {
                association_id: a.association_id()?.to_string(),
                instance_profile_arn: a.iam_instance_profile()?.arn()?.to_string(),
            })
        })
        .collect())
}

pub(super) async fn capture(client: &aws_sdk_ec2::Client, id: &str) -> Result<Captured, AwsError> {
    let association = current(client, id).await?.into_iter().next();
    let done = association.is_none();
    Ok(Captured {
        prior: to_record(&Prior { association }),
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
    let Some(association) = prior.association else {
        return Ok(json!({ "disassociated": null }));
    };
    if ctx.dry_run {
        // DisassociateIamInstanceProfile has no DryRun parameter: describe it only.
        let mut dry = DryRun::default();
        dry.described(
            DISASSOCIATE,
            json!({"AssociationId": association.association_id,
            "InstanceProfileArn": association.instance_profile_arn}),
        );
        return Ok(dry.into_result());
    }
    client
        .disassociate_iam_instance_profile()
        .association_id(&association.association_id)
        .send()
        .await
        .map_err(|e| classify(&e, DISASSOCIATE, id))?;
    Ok(json!({ "disassociated": to_record(&association) }))
}

pub(super) async fn verify(client: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    let now = current(client, id).await?;
    if now.is_empty() {
        return Ok(());
    }
    let arns: Vec<&str> = now
        .iter()
        .map(|a| a.instance_profile_arn.as_str())
        .collect();
    Err(AwsError::local(
        ErrorClass::Other,
        DESCRIBE,
        id,
        format!("{id} still has instance profile {}", arns.join(", ")),
    ))
}

pub(super) async fn revert(
    client: &aws_sdk_ec2::Client,
    id: &str,
    captured: &Value,
    retry: bool,
) -> Result<RevertOutcome, AwsError> {
    let prior: Prior = from_record(captured, "captured", id)?;
    let Some(association) = prior.association else {
        return Ok(RevertOutcome::NothingToRevert {
            reason: format!("{id} had no instance profile before hanko"),
        });
    };
    let now = current(client, id).await?;
    if retry
        && now
            .iter()
            .any(|a| a.instance_profile_arn == association.instance_profile_arn)
    {
        // The captured profile is associated again (a retried or resumed revert did it).
        return Ok(RevertOutcome::Restored);
    }
    if let Some(other) = now.first() {
        return Ok(RevertOutcome::Drifted {
            reason: format!(
                "{id} has instance profile {} now",
                other.instance_profile_arn
            ),
        });
    }
    client
        .associate_iam_instance_profile()
        .instance_id(id)
        .iam_instance_profile(
            IamInstanceProfileSpecification::builder()
                .arn(&association.instance_profile_arn)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify(&e, ASSOCIATE, id))?;
    Ok(RevertOutcome::Restored)
}
