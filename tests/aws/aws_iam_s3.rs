//! IAM and S3 containment steps against moto, through the real aws-sdk clients: capture, apply,
//! verify, revert with its drift checks; error classification (NotFound, AccessDenied with
//! moto's IAM enforcement); the least-privilege policy in `config/iam-policy.json`; and a
//! second account reached through an assumed role.
//!
//! Needs `moto_server` (`pip install 'moto[server]'`); every test starts its own server.

use crate::support::moto;

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use hanko::aws::iam::decode_document;
use hanko::aws::{
    self, AwsClients, AwsError, Captured, ClientFactory, ErrorClass, RevertOutcome, StepCtx,
    QUARANTINE_USER_POLICY, SESSION_REVOKE_POLICY,
};
use hanko::plan::{Action, Step, Target};
use moto::Moto;
use serde_json::{json, Value};

const DEFAULT_ACCOUNT: &str = "123456789012";
const MEMBER_ACCOUNT: &str = "111111111111";
const REGION: &str = "us-east-1";
const ROLE_TEMPLATE: &str = "arn:aws:iam::{account}:role/HankoResponder";

// ---------------------------------------------------------------------------------------------
// helpers

fn ctx() -> StepCtx {
    StepCtx {
        request_id: uuid::Uuid::new_v4(),
        finding_id: String::new(),
        step_index: 0,
        now: Utc::now(),
        dry_run: false,
        approvers: Vec::new(),
        revert_retry: false,
        fresh_capture: false,
    }
}

fn dry(mut c: StepCtx) -> StepCtx {
    c.dry_run = true;
    c
}

fn deactivate_key(user: &str, key: &str) -> Step {
    Step::new(
        Action::DeactivateAccessKey,
        Target::AccessKey {
            user_name: user.into(),
            access_key_id: key.into(),
        },
        json!({"UserName": user, "AccessKeyId": key, "Status": "Inactive"}),
    )
}

fn revoke_user(user: &str) -> Step {
    Step::new(
        Action::RevokeUserSessions,
        Target::User {
            user_name: user.into(),
        },
        json!({"UserName": user, "PolicyName": SESSION_REVOKE_POLICY}),
    )
}

fn quarantine_user(user: &str) -> Step {
    Step::new(
        Action::QuarantineUser,
        Target::User {
            user_name: user.into(),
        },
        json!({"UserName": user, "PolicyName": QUARANTINE_USER_POLICY}),
    )
}

fn revoke_role(role: &str) -> Step {
    Step::new(
        Action::RevokeRoleSessions,
        Target::Role {
            role_name: role.into(),
        },
        json!({"RoleName": role, "PolicyName": SESSION_REVOKE_POLICY}),
    )
}

fn block_bucket(bucket: &str) -> Step {
    Step::new(
        Action::BlockBucketPublicAccess,
        Target::Bucket {
            bucket: bucket.into(),
        },
        json!({"Bucket": bucket}),
    )
}

fn enforce_ownership(bucket: &str) -> Step {
    Step::new(
        Action::EnforceBucketOwnership,
        Target::Bucket {
            bucket: bucket.into(),
        },
        json!({"Bucket": bucket}),
    )
}

/// Capture, apply, verify: what the engine does for one step. Returns the capture and result.
async fn run(clients: &AwsClients, step: &Step, ctx: &StepCtx) -> (Captured, Value) {
    let captured = aws::capture(clients, step, ctx).await.expect("capture");
    assert!(
        !captured.already_in_target_state,
        "{} was already in the target state: {:?}",
        step.action, captured
    );
    let result = aws::apply(clients, step, &captured, ctx)
        .await
        .expect("apply");
    aws::verify(clients, step, &result, ctx)
        .await
        .expect("verify");
    (captured, result)
}

async fn revert(clients: &AwsClients, step: &Step, run: &(Captured, Value)) -> RevertOutcome {
    let captured = serde_json::to_value(&run.0).unwrap();
    aws::revert(clients, step, &captured, &run.1, &ctx())
        .await
        .expect("revert")
}

/// Clients for moto's default account, built by the factory (no role template).
async fn default_clients(moto: &Moto) -> AwsClients {
    ClientFactory::from_sdk_config(moto.sdk_config().await, None)
        .clients(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("clients")
}

async fn clients_with_keys(moto: &Moto, key: &str, secret: &str) -> AwsClients {
    AwsClients::from_sdk_config(&moto.sdk_config_with_keys(key, secret).await, true)
}

async fn create_user_with_keys(iam: &aws_sdk_iam::Client, user: &str, n: usize) -> Vec<String> {
    iam.create_user().user_name(user).send().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let out = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        ids.push(out.access_key().unwrap().access_key_id().to_string());
    }
    ids
}

/// Access key id -> status, for every key of `user`.
async fn key_statuses(iam: &aws_sdk_iam::Client, user: &str) -> BTreeMap<String, String> {
    let out = iam.list_access_keys().user_name(user).send().await.unwrap();
    out.access_key_metadata()
        .iter()
        .map(|k| {
            (
                k.access_key_id().unwrap().to_string(),
                k.status().unwrap().as_str().to_string(),
            )
        })
        .collect()
}

async fn set_key(iam: &aws_sdk_iam::Client, user: &str, key: &str, status: &str) {
    iam.update_access_key()
        .user_name(user)
        .access_key_id(key)
        .status(status.into())
        .send()
        .await
        .unwrap();
}

async fn user_policy(iam: &aws_sdk_iam::Client, user: &str, name: &str) -> Option<Value> {
    match iam
        .get_user_policy()
        .user_name(user)
        .policy_name(name)
        .send()
        .await
    {
        Ok(out) => Some(serde_json::from_str(&decode_document(out.policy_document())).unwrap()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetUserPolicy: {e:?}"),
    }
}

async fn role_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str) -> Option<Value> {
    match iam
        .get_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await
    {
        Ok(out) => Some(serde_json::from_str(&decode_document(out.policy_document())).unwrap()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetRolePolicy: {e:?}"),
    }
}

async fn role_policy_names(iam: &aws_sdk_iam::Client, role: &str) -> Vec<String> {
    let out = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let mut names = out.policy_names().to_vec();
    names.sort();
    names
}

async fn create_role(iam: &aws_sdk_iam::Client, role: &str) {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name(role)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
}

const KEEP_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

/// The bucket's public access block flags, `None` when it has none.
async fn pab(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<[bool; 4]> {
    match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => {
            let c = out.public_access_block_configuration().unwrap();
            Some([
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ])
        }
        Err(e) => {
            use aws_smithy_types::error::metadata::ProvideErrorMetadata;
            assert_eq!(
                e.code(),
                Some("NoSuchPublicAccessBlockConfiguration"),
                "{e:?}"
            );
            None
        }
    }
}

async fn put_pab(s3: &aws_sdk_s3::Client, bucket: &str, f: [bool; 4]) {
    let conf = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(f[0])
        .ignore_public_acls(f[1])
        .block_public_policy(f[2])
        .restrict_public_buckets(f[3])
        .build();
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(conf)
        .send()
        .await
        .unwrap();
}

async fn ownership(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<Vec<String>> {
    match s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Some(
            out.ownership_controls()
                .unwrap()
                .rules()
                .iter()
                .map(|r| r.object_ownership().as_str().to_string())
                .collect(),
        ),
        Err(_) => None,
    }
}

async fn put_ownership(s3: &aws_sdk_s3::Client, bucket: &str, rule: &str) {
    use aws_sdk_s3::types::{OwnershipControls, OwnershipControlsRule};
    let controls = OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(rule.into())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(controls)
        .send()
        .await
        .unwrap();
}

/// [`Moto::start_with_auth`], with hanko's clients for its "admin" user.
async fn moto_with_auth() -> (Moto, AwsClients) {
    let (moto, (key, secret)) = Moto::start_with_auth().await;
    let admin = clients_with_keys(&moto, &key, &secret).await;
    (moto, admin)
}

/// A user holding only `policy` (a managed policy), and clients with its key.
async fn user_holding(moto: &Moto, admin: &AwsClients, user: &str, policy: &Value) -> AwsClients {
    let created = admin
        .iam()
        .create_policy()
        .policy_name(format!("{user}-policy"))
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    admin
        .iam()
        .create_user()
        .user_name(user)
        .send()
        .await
        .unwrap();
    admin
        .iam()
        .attach_user_policy()
        .user_name(user)
        .policy_arn(created.policy().unwrap().arn().unwrap())
        .send()
        .await
        .unwrap();
    let key = admin
        .iam()
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    clients_with_keys(moto, key.access_key_id(), key.secret_access_key()).await
}

// ---------------------------------------------------------------------------------------------
// IAM: deactivate access key

#[tokio::test]
async fn deactivate_access_key_touches_only_that_key_and_revert_restores_it() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    let keys = create_user_with_keys(c.iam(), "alice", 2).await;
    let (leaked, other) = (&keys[0], &keys[1]);
    let step = deactivate_key("alice", leaked);

    let done = run(&c, &step, &ctx()).await;
    assert_eq!(
        done.0.prior,
        json!({"UserName": "alice", "AccessKeyId": leaked, "Status": "Active"})
    );
    assert_eq!(done.1["Status"], "Inactive");
    assert_eq!(done.1["prior_status"], "Active");
    assert!(done.1["note"]
        .as_str()
        .unwrap()
        .contains("few minutes to propagate"));
    let statuses = key_statuses(c.iam(), "alice").await;
    assert_eq!(statuses[leaked], "Inactive");
    assert_eq!(statuses[other], "Active");

    // A second run finds the key already contained.
    let again = aws::capture(&c, &step, &ctx()).await.unwrap();
    assert!(again.already_in_target_state);
    assert_eq!(again.prior["Status"], "Inactive");

    assert_eq!(revert(&c, &step, &done).await, RevertOutcome::Restored);
    let statuses = key_statuses(c.iam(), "alice").await;
    assert_eq!(statuses[leaked], "Active");
    assert_eq!(statuses[other], "Active");
}

#[tokio::test]
async fn deactivate_access_key_revert_reports_drift() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    let keys = create_user_with_keys(c.iam(), "bob", 2).await;

    // Someone re-activated the key by hand: hanko does not touch it.
    let step = deactivate_key("bob", &keys[0]);
    let done = run(&c, &step, &ctx()).await;
    set_key(c.iam(), "bob", &keys[0], "Active").await;
    match revert(&c, &step, &done).await {
        RevertOutcome::Drifted { reason } => assert!(reason.contains("is Active now"), "{reason}"),
        other => panic!("expected drift, got {other:?}"),
    }

    // Someone deleted the key: nothing to restore.
    let step = deactivate_key("bob", &keys[1]);
    let done = run(&c, &step, &ctx()).await;
    c.iam()
        .delete_access_key()
        .user_name("bob")
        .access_key_id(&keys[1])
        .send()
        .await
        .unwrap();
    match revert(&c, &step, &done).await {
        RevertOutcome::Drifted { reason } => {
            assert!(reason.contains("no longer exists"), "{reason}")
        }
        other => panic!("expected drift, got {other:?}"),
    }
    assert_eq!(
        key_statuses(c.iam(), "bob").await,
        BTreeMap::from([(keys[0].clone(), "Active".to_string())])
    );
}

#[tokio::test]
async fn dry_run_makes_no_mutating_call() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    let keys = create_user_with_keys(c.iam(), "carol", 1).await;
    c.s3()
        .create_bucket()
        .bucket("dry-bucket")
        .send()
        .await
        .unwrap();
    let ctx = dry(ctx());

    let step = deactivate_key("carol", &keys[0]);
    let captured = aws::capture(&c, &step, &ctx).await.unwrap();
    let result = aws::apply(&c, &step, &captured, &ctx).await.unwrap();
    assert_eq!(
        result,
        json!({"dry_run": true, "would_call": "iam:UpdateAccessKey",
               "parameters": {"UserName": "carol", "AccessKeyId": keys[0], "Status": "Inactive"}})
    );
    assert_eq!(key_statuses(c.iam(), "carol").await[&keys[0]], "Active");

    let step = revoke_user("carol");
    let captured = aws::capture(&c, &step, &ctx).await.unwrap();
    let result = aws::apply(&c, &step, &captured, &ctx).await.unwrap();
    assert_eq!(result["would_call"], "iam:PutUserPolicy");
    assert_eq!(result["parameters"]["PolicyName"], SESSION_REVOKE_POLICY);
    assert_eq!(
        user_policy(c.iam(), "carol", SESSION_REVOKE_POLICY).await,
        None
    );

    let step = block_bucket("dry-bucket");
    let captured = aws::capture(&c, &step, &ctx).await.unwrap();
    let result = aws::apply(&c, &step, &captured, &ctx).await.unwrap();
    assert_eq!(result["would_call"], "s3:PutBucketPublicAccessBlock");
    assert_eq!(pab(c.s3(), "dry-bucket").await, None);
    assert_eq!(
        aws::revert(
            &c,
            &step,
            &serde_json::to_value(&captured).unwrap(),
            &result,
            &ctx
        )
        .await
        .unwrap(),
        RevertOutcome::NothingToRevert {
            reason: "the step ran as a dry run and changed nothing".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// IAM: session revocation and quarantine

#[tokio::test]
async fn revoke_user_sessions_puts_the_cutoff_and_revert_removes_it() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    create_user_with_keys(c.iam(), "dave", 1).await;
    let step = revoke_user("dave");
    let ctx = ctx();
    let cutoff = ctx.now.to_rfc3339_opts(SecondsFormat::Secs, true);

    let done = run(&c, &step, &ctx).await;
    assert_eq!(done.0.prior["exists"], false);
    assert_eq!(done.1["token_issue_time_cutoff"], cutoff.as_str());
    assert!(done.1["message"]
        .as_str()
        .unwrap()
        .contains("few minutes to propagate"));
    let doc = user_policy(c.iam(), "dave", SESSION_REVOKE_POLICY)
        .await
        .unwrap();
    let statement = &doc["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Action"], "*");
    assert_eq!(statement["Resource"], "*");
    assert_eq!(
        statement["Condition"],
        json!({"DateLessThan": {"aws:TokenIssueTime": cutoff}})
    );
    assert!(cutoff.ends_with('Z'), "{cutoff}");

    // Same cut-off: nothing to do; a later cut-off is a new revocation.
    assert!(
        aws::capture(&c, &step, &ctx)
            .await
            .unwrap()
            .already_in_target_state
    );
    let mut later = ctx.clone();
    later.now += chrono::Duration::minutes(10);
    assert!(
        !aws::capture(&c, &step, &later)
            .await
            .unwrap()
            .already_in_target_state
    );

    assert_eq!(revert(&c, &step, &done).await, RevertOutcome::Restored);
    assert_eq!(
        user_policy(c.iam(), "dave", SESSION_REVOKE_POLICY).await,
        None
    );
}

#[tokio::test]
async fn revoke_user_sessions_revert_restores_a_prior_policy_of_the_same_name() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    create_user_with_keys(c.iam(), "erin", 0).await;
    c.iam()
        .put_user_policy()
        .user_name("erin")
        .policy_name(SESSION_REVOKE_POLICY)
        .policy_document(KEEP_DOC)
        .send()
        .await
        .unwrap();
    let step = revoke_user("erin");

    let done = run(&c, &step, &ctx()).await;
    assert_eq!(done.0.prior["exists"], true);
    let prior: Value = serde_json::from_str(done.0.prior["document"].as_str().unwrap()).unwrap();
    assert_eq!(prior, serde_json::from_str::<Value>(KEEP_DOC).unwrap());
    let now = user_policy(c.iam(), "erin", SESSION_REVOKE_POLICY)
        .await
        .unwrap();
    assert_eq!(now["Statement"][0]["Effect"], "Deny");

    assert_eq!(revert(&c, &step, &done).await, RevertOutcome::Restored);
    assert_eq!(
        user_policy(c.iam(), "erin", SESSION_REVOKE_POLICY).await,
        Some(serde_json::from_str::<Value>(KEEP_DOC).unwrap())
    );
}

#[tokio::test]
async fn revoke_role_sessions_changes_only_that_role_and_reports_drift() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    for role in ["web", "worker"] {
        create_role(c.iam(), role).await;
        c.iam()
            .put_role_policy()
            .role_name(role)
            .policy_name("keep")
            .policy_document(KEEP_DOC)
            .send()
            .await
            .unwrap();
    }
    let step = revoke_role("web");
    let ctx = ctx();
    let done = run(&c, &step, &ctx).await;
    assert_eq!(
        role_policy_names(c.iam(), "web").await,
        vec![
            "hanko-revoke-older-sessions".to_string(),
            "keep".to_string()
        ]
    );
    assert_eq!(
        role_policy_names(c.iam(), "worker").await,
        vec!["keep".to_string()]
    );
    let doc = role_policy(c.iam(), "web", SESSION_REVOKE_POLICY)
        .await
        .unwrap();
    assert_eq!(
        doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
        ctx.now.to_rfc3339_opts(SecondsFormat::Secs, true)
    );

    // Someone edited hanko's policy: revert leaves it alone.
    c.iam()
        .put_role_policy()
        .role_name("web")
        .policy_name(SESSION_REVOKE_POLICY)
        .policy_document(KEEP_DOC)
        .send()
        .await
        .unwrap();
    match revert(&c, &step, &done).await {
        RevertOutcome::Drifted { reason } => assert!(reason.contains("was changed"), "{reason}"),
        other => panic!("expected drift, got {other:?}"),
    }
    assert_eq!(
        role_policy(c.iam(), "web", SESSION_REVOKE_POLICY).await,
        Some(serde_json::from_str::<Value>(KEEP_DOC).unwrap())
    );
}

#[tokio::test]
async fn quarantine_user_denies_everything_and_reverts() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    create_user_with_keys(c.iam(), "frank", 0).await;
    let step = quarantine_user("frank");
    let done = run(&c, &step, &ctx()).await;
    let doc = user_policy(c.iam(), "frank", QUARANTINE_USER_POLICY)
        .await
        .unwrap();
    assert_eq!(
        doc["Statement"],
        json!([{"Sid": "HankoQuarantine", "Effect": "Deny", "Action": "*", "Resource": "*"}])
    );
    // Quarantine has no cut-off: a second run at another time is a no-op.
    let mut later = ctx();
    later.now += chrono::Duration::hours(1);
    assert!(
        aws::capture(&c, &step, &later)
            .await
            .unwrap()
            .already_in_target_state
    );
    assert_eq!(revert(&c, &step, &done).await, RevertOutcome::Restored);
    assert_eq!(
        user_policy(c.iam(), "frank", QUARANTINE_USER_POLICY).await,
        None
    );
}

// ---------------------------------------------------------------------------------------------
// S3

#[tokio::test]
async fn block_public_access_without_prior_block_and_revert_deletes_it() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    c.s3()
        .create_bucket()
        .bucket("open-bucket")
        .send()
        .await
        .unwrap();
    let step = block_bucket("open-bucket");

    let done = run(&c, &step, &ctx()).await;
    assert_eq!(done.0.prior, json!({"configured": false}));
    assert_eq!(pab(c.s3(), "open-bucket").await, Some([true; 4]));
    assert!(
        aws::capture(&c, &step, &ctx())
            .await
            .unwrap()
            .already_in_target_state
    );

    assert_eq!(revert(&c, &step, &done).await, RevertOutcome::Restored);
    assert_eq!(pab(c.s3(), "open-bucket").await, None);
}

#[tokio::test]
async fn block_public_access_revert_restores_a_partial_block_exactly() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    c.s3()
        .create_bucket()
        .bucket("half-open")
        .send()
        .await
        .unwrap();
    put_pab(c.s3(), "half-open", [true, false, true, false]).await;
    let step = block_bucket("half-open");

    let done = run(&c, &step, &ctx()).await;
    assert_eq!(
        done.0.prior,
        json!({"configured": true, "BlockPublicAcls": true, "IgnorePublicAcls": false,
               "BlockPublicPolicy": true, "RestrictPublicBuckets": false})
    );
    assert_eq!(pab(c.s3(), "half-open").await, Some([true; 4]));
    assert_eq!(revert(&c, &step, &done).await, RevertOutcome::Restored);
    assert_eq!(
        pab(c.s3(), "half-open").await,
        Some([true, false, true, false])
    );
}

#[tokio::test]
async fn block_public_access_revert_reports_drift() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    c.s3()
        .create_bucket()
        .bucket("drifty")
        .send()
        .await
        .unwrap();
    let step = block_bucket("drifty");
    let done = run(&c, &step, &ctx()).await;
    put_pab(c.s3(), "drifty", [true, true, false, true]).await;
    match revert(&c, &step, &done).await {
        RevertOutcome::Drifted { reason } => assert!(reason.contains("drifty"), "{reason}"),
        other => panic!("expected drift, got {other:?}"),
    }
    assert_eq!(pab(c.s3(), "drifty").await, Some([true, true, false, true]));
}

#[tokio::test]
async fn enforce_bucket_ownership_and_revert_restores_or_deletes() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;
    c.s3()
        .create_bucket()
        .bucket("acl-none")
        .send()
        .await
        .unwrap();
    c.s3()
        .create_bucket()
        .bucket("acl-writer")
        .send()
        .await
        .unwrap();
    put_ownership(c.s3(), "acl-writer", "ObjectWriter").await;

    let none = enforce_ownership("acl-none");
    let done_none = run(&c, &none, &ctx()).await;
    assert_eq!(done_none.0.prior, json!({"configured": false}));
    let writer = enforce_ownership("acl-writer");
    let done_writer = run(&c, &writer, &ctx()).await;
    assert_eq!(
        done_writer.0.prior,
        json!({"configured": true, "Rules": ["ObjectWriter"]})
    );
    for b in ["acl-none", "acl-writer"] {
        assert_eq!(
            ownership(c.s3(), b).await,
            Some(vec!["BucketOwnerEnforced".to_string()])
        );
    }

    assert_eq!(revert(&c, &none, &done_none).await, RevertOutcome::Restored);
    assert_eq!(ownership(c.s3(), "acl-none").await, None);
    assert_eq!(
        revert(&c, &writer, &done_writer).await,
        RevertOutcome::Restored
    );
    assert_eq!(
        ownership(c.s3(), "acl-writer").await,
        Some(vec!["ObjectWriter".to_string()])
    );
}

// ---------------------------------------------------------------------------------------------
// errors

fn assert_not_found(err: &AwsError, code: &str, operation: &str) {
    assert_eq!(err.class, ErrorClass::NotFound, "{err:?}");
    assert_eq!(err.code.as_deref(), Some(code), "{err:?}");
    assert_eq!(err.operation, operation);
    assert!(
        err.aws_request_id
            .as_deref()
            .is_some_and(|id| !id.is_empty()),
        "{err:?}"
    );
    assert!(
        !err.message.contains("SdkError"),
        "raw SDK output in {:?}",
        err.message
    );
}

#[tokio::test]
async fn missing_user_and_bucket_are_not_found() {
    let moto = moto::shared();
    let c = default_clients(&moto).await;

    let err = aws::capture(&c, &deactivate_key("ghost", "AKIAGHOST"), &ctx())
        .await
        .unwrap_err();
    assert_not_found(&err, "NoSuchEntity", "iam:ListAccessKeys");

    // A user that exists but does not have that key.
    create_user_with_keys(c.iam(), "gina", 1).await;
    let err = aws::capture(&c, &deactivate_key("gina", "AKIANOTHERS"), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
    assert_eq!(err.message, "user gina has no access key AKIANOTHERS");

    let step = revoke_user("ghost");
    let captured = aws::capture(&c, &step, &ctx()).await.unwrap();
    let err = aws::apply(&c, &step, &captured, &ctx()).await.unwrap_err();
    assert_not_found(&err, "NoSuchEntity", "iam:PutUserPolicy");

    let err = aws::capture(&c, &block_bucket("no-such-bucket"), &ctx())
        .await
        .unwrap_err();
    assert_not_found(&err, "NoSuchBucket", "s3:GetBucketPublicAccessBlock");
}

#[tokio::test]
async fn access_denied_is_forbidden_and_names_the_permission() {
    let (moto, admin) = moto_with_auth().await;
    let keys = create_user_with_keys(admin.iam(), "henry", 2).await;
    let narrow = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:ListAccessKeys", "Resource": "*"}]});
    let limited = user_holding(&moto, &admin, "hanko-narrow", &narrow).await;

    let step = deactivate_key("henry", &keys[0]);
    let captured = aws::capture(&limited, &step, &ctx())
        .await
        .expect("ListAccessKeys is allowed");
    let err = aws::apply(&limited, &step, &captured, &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Forbidden, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("AccessDenied"));
    assert_eq!(err.operation, "iam:UpdateAccessKey");
    assert!(err.aws_request_id.is_some(), "{err:?}");
    assert!(
        err.message
            .starts_with("hanko's role lacks the permission iam:UpdateAccessKey on access key"),
        "{}",
        err.message
    );
    assert_eq!(key_statuses(admin.iam(), "henry").await[&keys[0]], "Active");

    // S3 denies too, with its own error shape.
    admin
        .s3()
        .create_bucket()
        .bucket("locked")
        .send()
        .await
        .unwrap();
    let err = aws::capture(&limited, &block_bucket("locked"), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Forbidden, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("AccessDenied"));
    assert!(
        err.message.contains("s3:GetBucketPublicAccessBlock"),
        "{}",
        err.message
    );
}

// ---------------------------------------------------------------------------------------------
// least privilege

fn shipped_policy() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/iam-policy.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("not a string or list: {other}"),
    }
}

fn policy_actions(policy: &Value) -> Vec<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .collect()
}

/// The IAM action a step's mutating call needs. `Action::operation` names S3 calls by their API
/// name; IAM calls the permission `s3:PutBucketPublicAccessBlock`.
fn iam_action_of(action: Action) -> &'static str {
    match action {
        Action::BlockBucketPublicAccess => "s3:PutBucketPublicAccessBlock",
        other => other.operation(),
    }
}

/// Every AWS call the code names (`"ec2:RevokeSecurityGroupIngress"` and the like, in
/// `src/aws`, `src/ingest` and `src/anchor`) is granted by the shipped policy, and so by the
/// member-account role where it acts in member accounts: a call the policy misses fails with
/// AccessDenied in a real account, which moto (no policy enforcement here) would never show.
#[test]
fn every_aws_call_the_code_names_is_granted_by_the_shipped_policy() {
    let granted = policy_actions(&shipped_policy());
    let member = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/member-role.yaml"
    ))
    .unwrap();
    // Batch APIs are authorized by their single-item permission (SQS API reference); S3's
    // HeadBucket by s3:ListBucket (S3 API reference, HeadBucket: "Permissions").
    let permission_of = |op: &str| match op {
        "sqs:DeleteMessageBatch" => "sqs:DeleteMessage".to_string(),
        "s3:HeadBucket" => "s3:ListBucket".to_string(),
        other => other.to_string(),
    };
    let mut named = std::collections::BTreeSet::new();
    // Every file below these folders (src/aws/ec2/ is a folder of its own).
    let mut files = Vec::new();
    let mut dirs: Vec<_> = ["src/aws", "src/ingest", "src/anchor"]
        .iter()
        .map(|d| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("src/aws/ec2/isolate.rs")),
        "{files:?}"
    );
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for quoted in text.split('"').skip(1).step_by(2) {
            let Some((service, op)) = quoted.split_once(':') else {
                continue;
            };
            let known = [
                "iam",
                "ec2",
                "s3",
                "securityhub",
                "sts",
                "guardduty",
                "sqs",
                "cloudtrail",
            ];
            if known.contains(&service)
                && op.starts_with(|c: char| c.is_ascii_uppercase())
                && op.chars().all(|c| c.is_ascii_alphanumeric())
            {
                named.insert(permission_of(quoted));
            }
        }
    }
    assert!(named.len() > 30, "found only {named:?}");
    for action in &named {
        assert!(
            granted.contains(action),
            "{action} is called but config/iam-policy.json does not grant it"
        );
        // The member role carries every call made in a finding's account: all but ingest
        // (GuardDuty, SQS), assuming the role itself, and the audit anchors (hanko's own bucket).
        let own_account_only = action.starts_with("guardduty:")
            || action.starts_with("sqs:")
            || ["sts:AssumeRole", "s3:PutObject", "s3:GetObject"].contains(&action.as_str());
        if !own_account_only {
            assert!(
                member.contains(action.as_str()),
                "{action} is called in member accounts but config/member-role.yaml does not grant it"
            );
        }
    }
}

#[test]
fn policy_lists_every_call_of_every_step_once_grouped_by_service() {
    let policy = shipped_policy();
    let actions = policy_actions(&policy);
    let mut unique = actions.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        actions.len(),
        "duplicate actions in {actions:?}"
    );
    for action in Action::ALL {
        let mut needed = vec![iam_action_of(action)];
        needed.extend(aws::reads_of(action));
        for a in needed {
            assert!(
                actions.iter().any(|x| x == a),
                "{action}: {a} missing from the policy"
            );
        }
    }
    for extra in [
        "iam:DeleteUserPolicy",
        "iam:DeleteRolePolicy",
        "sts:AssumeRole",
        "sts:GetCallerIdentity",
        "guardduty:ListDetectors",
        "guardduty:ListFindings",
        "guardduty:GetFindings",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "securityhub:GetFindings",
        "securityhub:BatchUpdateFindings",
        "iam:PassRole",
        "cloudtrail:LookupEvents",
    ] {
        assert!(actions.iter().any(|x| x == extra), "{extra} missing");
    }
    for a in &actions {
        assert!(!a.contains('*'), "wildcard action {a}");
    }
    for s in policy["Statement"].as_array().unwrap() {
        let sid = s["Sid"].as_str().expect("every statement has a Sid");
        let services: Vec<String> = as_list(&s["Action"])
            .iter()
            .map(|a| a.split(':').next().unwrap().to_string())
            .collect();
        assert!(
            services.windows(2).all(|w| w[0] == w[1]),
            "{sid} mixes services"
        );
    }
    let pass_role = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| as_list(&s["Action"]) == ["iam:PassRole"])
        .unwrap();
    assert_eq!(
        pass_role["Condition"]["StringEquals"]["iam:PassedToService"],
        "ec2.amazonaws.com"
    );
}

/// moto 5.2 checks some calls against other names than AWS does; the shipped policy is
/// rewritten for moto only where moto differs:
/// - S3 bucket sub-resource calls are checked as `s3:ListBucket` (GET), `s3:CreateBucket` (PUT)
///   and `s3:DeleteBucket` (DELETE) instead of `s3:Get/PutBucketPublicAccessBlock` and
///   `s3:Get/PutBucketOwnershipControls`;
/// - IAM user calls are checked against the resource `*`, not the user's ARN.
#[tokio::test]
async fn least_privilege_policy_is_enough_for_the_iam_and_s3_steps() {
    let (moto, admin) = moto_with_auth().await;
    let hanko = user_holding(
        &moto,
        &admin,
        "hanko",
        &moto::policy_for_moto(&shipped_policy()),
    )
    .await;

    // Targets, made by the admin.
    let keys = create_user_with_keys(admin.iam(), "ivan", 2).await;
    create_role(admin.iam(), "web").await;
    admin
        .s3()
        .create_bucket()
        .bucket("public-one")
        .send()
        .await
        .unwrap();
    put_pab(admin.s3(), "public-one", [false, false, true, true]).await;

    let steps = [
        deactivate_key("ivan", &keys[0]),
        revoke_user("ivan"),
        quarantine_user("ivan"),
        revoke_role("web"),
        block_bucket("public-one"),
        enforce_ownership("public-one"),
    ];
    let mut done = Vec::new();
    for step in &steps {
        done.push(run(&hanko, step, &ctx()).await);
    }
    assert_eq!(
        key_statuses(admin.iam(), "ivan").await[&keys[0]],
        "Inactive"
    );
    assert_eq!(key_statuses(admin.iam(), "ivan").await[&keys[1]], "Active");
    assert_eq!(pab(admin.s3(), "public-one").await, Some([true; 4]));

    for (step, d) in steps.iter().zip(&done).rev() {
        assert_eq!(
            revert(&hanko, step, d).await,
            RevertOutcome::Restored,
            "{}",
            step.action
        );
    }
    assert_eq!(key_statuses(admin.iam(), "ivan").await[&keys[0]], "Active");
    assert_eq!(
        user_policy(admin.iam(), "ivan", SESSION_REVOKE_POLICY).await,
        None
    );
    assert_eq!(
        role_policy_names(admin.iam(), "web").await,
        Vec::<String>::new()
    );
    assert_eq!(
        pab(admin.s3(), "public-one").await,
        Some([false, false, true, true])
    );
    assert_eq!(ownership(admin.s3(), "public-one").await, None);

    // And the policy is not "allow everything": an action hanko never calls is denied.
    let err = hanko
        .iam()
        .delete_access_key()
        .user_name("ivan")
        .access_key_id(&keys[1])
        .send()
        .await;
    assert!(err.is_err(), "hanko's policy allowed iam:DeleteAccessKey");
}

// ---------------------------------------------------------------------------------------------
// multi-account

/// The sessions moto's STS handed out: (role ARN, session name).
fn assumed_roles(moto: &Moto) -> Vec<(String, String)> {
    let data = moto.get_json("/moto-api/data.json");
    data["sts"]["AssumedRole"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .map(|r| {
                    (
                        r["role_arn"].as_str().unwrap().to_string(),
                        r["session_name"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn member_account_steps_run_through_the_assumed_role() {
    let moto = Moto::start();
    let factory =
        ClientFactory::from_sdk_config(moto.sdk_config().await, Some(ROLE_TEMPLATE.into()));
    assert_eq!(factory.own_account(REGION).await.unwrap(), DEFAULT_ACCOUNT);

    let own = factory.clients(DEFAULT_ACCOUNT, REGION).await.unwrap();
    let member = factory.clients(MEMBER_ACCOUNT, REGION).await.unwrap();
    // Cached: a second call reuses the credentials; the own account assumes nothing.
    let _again = factory.clients(MEMBER_ACCOUNT, REGION).await.unwrap();
    let sessions = assumed_roles(&moto);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        sessions[0].0,
        "arn:aws:iam::111111111111:role/HankoResponder"
    );
    assert!(
        sessions[0].1.starts_with("hanko-") && sessions[0].1.len() == 14,
        "{sessions:?}"
    );

    // The same user name in both accounts.
    let member_keys = create_user_with_keys(member.iam(), "mallory", 2).await;
    let own_keys = create_user_with_keys(own.iam(), "mallory", 2).await;
    let arn = member
        .iam()
        .get_user()
        .user_name("mallory")
        .send()
        .await
        .unwrap();
    assert!(
        arn.user().unwrap().arn().contains(MEMBER_ACCOUNT),
        "{}",
        arn.user().unwrap().arn()
    );

    let step = deactivate_key("mallory", &member_keys[0]);
    run(&member, &step, &ctx()).await;
    let m = key_statuses(member.iam(), "mallory").await;
    assert_eq!(m[&member_keys[0]], "Inactive");
    assert_eq!(m[&member_keys[1]], "Active");
    let o = key_statuses(own.iam(), "mallory").await;
    assert_eq!(o.len(), 2);
    assert!(
        o.values().all(|s| s == "Active"),
        "default account changed: {o:?}"
    );
    assert!(own_keys.iter().all(|k| o.contains_key(k)));
    // The member account's key is not visible from the default account.
    let err = aws::capture(&own, &step, &ctx()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
}
