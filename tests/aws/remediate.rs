//! Posture remediation against moto, through the real aws-sdk clients: a failing control group
//! (parsed from ASFF control findings, as ingest stores them) becomes a plan with
//! `remediate::plan_for_group`, which is proposed, approved in the store and run by the real
//! engine, the same path as any containment. Then AWS is read back.
//!
//! - S3.8: exactly the three failing buckets are blocked, a fourth is untouched.
//! - IAM.3: only the key over the age is planned; a user's only active key is planned with a
//!   loud warning; a deleted user or a user with only fresh keys gives no step.
//! - S3.1: the account-level block is applied and reverted (S3 Control).
//!
//! Needs `moto_server` (`pip install 'moto[server]'`); every test starts its own server and
//! fails, never skips, without it.

use crate::support::moto;

use chrono::{DateTime, Duration, Utc};
use hanko::approval::{Decision, Outcome, Policy, RequestState, VoteInput, Voter};
use hanko::audit::Actor;
use hanko::aws::{AwsClients, ClientFactory};
use hanko::engine::{Engine, ExecutionReport};
use hanko::plan::{
    block_account_public_access_step, block_bucket_public_access_step, Action, Plan, Target,
};
use hanko::posture::{parse_control_finding, Group};
use hanko::remediate::{plan_for_group, Remediation};
use hanko::store::Store;
use moto::Moto;
use serde_json::{json, Value};
use uuid::Uuid;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn max_age() -> Duration {
    Duration::days(90)
}

// ---------------------------------------------------------------------------------------------
// helpers

/// One FAILED consolidated control finding about one resource, in the documented ASFF shape.
fn control_finding(n: usize, control: &str, resource_type: &str, resource_id: &str) -> Value {
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": format!("arn:aws:securityhub:{REGION}:{ACCOUNT}:security-control/{control}/finding/f{n}"),
        "ProductArn": format!("arn:aws:securityhub:{REGION}::product/aws/securityhub"),
        "GeneratorId": format!("security-control/{control}"),
        "AwsAccountId": ACCOUNT,
        "Region": REGION,
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
        "FirstObservedAt": "2026-11-20T08:00:00.000Z",
        "UpdatedAt": "2026-11-27T08:00:00.000Z",
        "CreatedAt": "2026-11-20T08:00:00.000Z",
        "Severity": {"Label": "HIGH"},
        "Title": format!("control {control}"),
        "Resources": [{"Type": resource_type, "Id": resource_id, "Partition": "aws", "Region": REGION}],
        "Compliance": {
            "Status": "FAILED",
            "SecurityControlId": control,
            "AssociatedStandards": [{"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"}]
        },
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE"
    })
}

/// The group of `control` failing on `resources` (type, id).
fn group(control: &str, resources: &[(&str, &str)]) -> Group {
    let findings: Vec<_> = resources
        .iter()
        .enumerate()
        .map(|(n, (ty, id))| {
            parse_control_finding(&control_finding(n, control, ty, id), "$", REGION)
                .unwrap_or_else(|e| panic!("test finding {n}: {e}"))
        })
        .collect();
    let g = Group::of(&findings).expect("a group");
    assert_eq!(g.key.encode(), format!("{ACCOUNT}/{REGION}/{control}"));
    g
}

async fn clients(moto: &Moto) -> AwsClients {
    AwsClients::from_sdk_config(&moto.sdk_config().await, true)
}

async fn plan_of(clients: &AwsClients, g: &Group, now: DateTime<Utc>) -> Result<Plan, String> {
    match plan_for_group(clients, g, now, max_age()).await {
        Ok(Remediation::Plan(p)) => Ok(p),
        Ok(Remediation::NotOffered { reason }) => Err(reason),
        Err(e) => panic!("plan_for_group failed: {e} ({e:?})"),
    }
}

/// The real engine over a temporary store, with the moto clients.
struct World {
    store: Store,
    engine: Engine,
    policy: Policy,
}

impl World {
    async fn new(moto: &Moto) -> World {
        let store = Store::open_temporary().expect("temporary store");
        let factory = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
        World {
            engine: Engine::new(store.clone(), factory),
            store,
            policy: Policy::default(),
        }
    }

    /// Proposes `plan` as the Remediate button does, approves it with as many distinct
    /// operators as the policy needs, and runs it.
    async fn approve_and_run(&self, plan: Plan) -> ExecutionReport {
        let id = hanko::pipeline::propose(
            &self.store,
            &self.policy,
            plan,
            Actor::Discord {
                id: "1".into(),
                name: "proposer".into(),
            },
            Utc::now(),
        )
        .expect("propose");
        self.approve(id);
        self.engine.execute(id).await.expect("execute")
    }

    /// Proposes the revert of `of`, approves it and runs it.
    async fn revert(&self, of: Uuid) -> ExecutionReport {
        let now = Utc::now();
        let req = self
            .engine
            .revert_request(of, Actor::System, now, self.policy.ttl)
            .expect("revert request");
        self.store.create_request(&req, now).expect("store revert");
        self.approve(req.id);
        self.engine.execute(req.id).await.expect("execute revert")
    }

    fn approve(&self, id: Uuid) {
        let hash = self
            .store
            .get_request(id)
            .expect("read request")
            .expect("request stored")
            .plan
            .plan_hash;
        for n in 1..=5 {
            let vote = VoteInput {
                voter: Voter {
                    actor: Actor::Cli {
                        name: format!("ops-{n}"),
                    },
                    roles: vec![],
                },
                decision: Decision::Approve,
                plan_hash: hash.clone(),
            };
            let decided = self
                .store
                .vote(&self.policy, id, &vote, Utc::now())
                .expect("store vote")
                .unwrap_or_else(|refusal| panic!("vote refused: {refusal}"));
            if matches!(decided.outcome, Outcome::Approved { .. }) {
                return;
            }
        }
        panic!("five approvals did not approve request {id}");
    }
}

fn outcomes(report: &ExecutionReport) -> Vec<(String, String)> {
    report
        .steps
        .iter()
        .map(|s| (s.target.clone(), format!("{:?}", s.outcome)))
        .collect()
}

async fn bucket_pab(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<[bool; 4]> {
    match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => {
            let c = out
                .public_access_block_configuration()
                .expect("a configuration");
            Some([
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ])
        }
        Err(e)
            if aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e)
                == Some("NoSuchPublicAccessBlockConfiguration") =>
        {
            None
        }
        Err(e) => panic!("GetPublicAccessBlock {bucket}: {e:?}"),
    }
}

async fn account_pab(s3control: &aws_sdk_s3control::Client) -> Option<[bool; 4]> {
    match s3control
        .get_public_access_block()
        .account_id(ACCOUNT)
        .send()
        .await
    {
        Ok(out) => {
            let c = out
                .public_access_block_configuration()
                .expect("a configuration");
            Some([
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ])
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_public_access_block_configuration()) =>
        {
            None
        }
        Err(e) => panic!("s3control GetPublicAccessBlock: {e:?}"),
    }
}

async fn put_account_pab(s3control: &aws_sdk_s3control::Client, f: [bool; 4]) {
    let conf = aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(f[0])
        .ignore_public_acls(f[1])
        .block_public_policy(f[2])
        .restrict_public_buckets(f[3])
        .build();
    s3control
        .put_public_access_block()
        .account_id(ACCOUNT)
        .public_access_block_configuration(conf)
        .send()
        .await
        .expect("s3control PutPublicAccessBlock");
}

/// A user with `n` access keys: their ids and creation times, oldest first.
async fn user_with_keys(
    iam: &aws_sdk_iam::Client,
    user: &str,
    n: usize,
) -> Vec<(String, DateTime<Utc>)> {
    iam.create_user()
        .user_name(user)
        .send()
        .await
        .expect("create user");
    for _ in 0..n {
        iam.create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("create key");
    }
    let out = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("list keys");
    let mut keys: Vec<(String, DateTime<Utc>)> = out
        .access_key_metadata()
        .iter()
        .map(|k| {
            let d = k.create_date().expect("moto reports CreateDate");
            (
                k.access_key_id().expect("key id").to_string(),
                DateTime::from_timestamp(d.secs(), d.subsec_nanos()).expect("a time"),
            )
        })
        .collect();
    keys.sort_by_key(|k| k.1);
    assert_eq!(keys.len(), n);
    keys
}

async fn key_status(iam: &aws_sdk_iam::Client, user: &str, key: &str) -> String {
    let out = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("list keys");
    out.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .and_then(|k| k.status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| panic!("no key {key} for {user}"))
}

fn planned_keys(plan: &Plan) -> Vec<(String, String)> {
    plan.steps
        .iter()
        .map(|s| match &s.target {
            Target::AccessKey {
                user_name,
                access_key_id,
            } => (user_name.clone(), access_key_id.clone()),
            other => panic!("unexpected target {other}"),
        })
        .collect()
}

fn warnings(plan: &Plan) -> Vec<&String> {
    plan.notes
        .iter()
        .filter(|n| n.contains("WARNING"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// S3.8

#[tokio::test]
async fn s3_8_remediation_blocks_exactly_the_three_failing_buckets_and_leaves_a_fourth_alone() {
    let moto = moto::shared();
    let c = clients(&moto).await;
    let failing = ["open-one", "open-two", "open-three"];
    for b in failing.iter().chain(&["bystander"]) {
        c.s3()
            .create_bucket()
            .bucket(*b)
            .send()
            .await
            .expect("bucket");
    }
    let arns: Vec<String> = failing
        .iter()
        .map(|b| format!("arn:aws:s3:::{b}"))
        .collect();
    let resources: Vec<(&str, &str)> = arns.iter().map(|a| ("AwsS3Bucket", a.as_str())).collect();
    let g = group("S3.8", &resources);

    let plan = plan_of(&c, &g, Utc::now()).await.expect("a plan");
    assert_eq!(plan.finding_id, format!("{ACCOUNT}/{REGION}/S3.8"));
    assert_eq!(
        (plan.account_id.as_str(), plan.region.as_str()),
        (ACCOUNT, REGION)
    );
    let mut sorted = failing.to_vec();
    sorted.sort();
    assert_eq!(
        plan.steps,
        sorted
            .iter()
            .map(|b| block_bucket_public_access_step(b))
            .collect::<Vec<_>>(),
        "exactly one bucket step per failing bucket, as the GuardDuty planner builds it"
    );
    assert!(
        plan.notes.iter().any(|n| n.contains("S3.8")),
        "{:?}",
        plan.notes
    );

    let world = World::new(&moto).await;
    let report = world.approve_and_run(plan).await;
    assert_eq!(
        report.state,
        RequestState::Succeeded,
        "{:?}",
        outcomes(&report)
    );
    assert_eq!(report.finding_id, g.key.encode());
    for b in failing {
        assert_eq!(bucket_pab(c.s3(), b).await, Some([true; 4]), "{b}");
    }
    assert_eq!(
        bucket_pab(c.s3(), "bystander").await,
        None,
        "bystander touched"
    );
    world.store.verify_audit().expect("audit chain");
}

// ---------------------------------------------------------------------------------------------
// IAM.3

#[tokio::test]
async fn iam_3_plans_only_the_old_key_when_the_user_has_a_new_one_too_without_a_warning() {
    let moto = moto::shared();
    let c = clients(&moto).await;
    let keys = user_with_keys(c.iam(), "amara", 2).await;
    let (old, new) = (&keys[0], &keys[1]);
    assert!(old.1 < new.1, "moto gave both keys the same CreateDate");
    // "Now" is 90 days after the older key plus half the gap: the older key is over the age,
    // the newer one just under it.
    let now = old.1 + max_age() + (new.1 - old.1) / 2;
    let g = group(
        "IAM.3",
        &[("AwsIamUser", "arn:aws:iam::123456789012:user/eng/amara")],
    );

    let plan = plan_of(&c, &g, now).await.expect("a plan");
    assert_eq!(plan.finding_id, format!("{ACCOUNT}/{REGION}/IAM.3"));
    assert_eq!(
        planned_keys(&plan),
        vec![("amara".to_string(), old.0.clone())]
    );
    assert!(plan
        .steps
        .iter()
        .all(|s| s.action == Action::DeactivateAccessKey));
    assert!(warnings(&plan).is_empty(), "{:?}", plan.notes);

    // And it runs through the engine: the old key is Inactive, the new one still Active.
    let world = World::new(&moto).await;
    let report = world.approve_and_run(plan).await;
    assert_eq!(
        report.state,
        RequestState::Succeeded,
        "{:?}",
        outcomes(&report)
    );
    assert_eq!(key_status(c.iam(), "amara", &old.0).await, "Inactive");
    assert_eq!(key_status(c.iam(), "amara", &new.0).await, "Active");
}

#[tokio::test]
async fn iam_3_plans_a_users_only_active_key_with_a_loud_warning() {
    let moto = moto::shared();
    let c = clients(&moto).await;
    let keys = user_with_keys(c.iam(), "bruno", 2).await;
    // bruno's older key is already Inactive: his newer key is his only active one.
    c.iam()
        .update_access_key()
        .user_name("bruno")
        .access_key_id(&keys[0].0)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .expect("deactivate");
    let now = keys[1].1 + max_age() + Duration::days(1);
    let g = group(
        "IAM.3",
        &[("AwsIamUser", "arn:aws:iam::123456789012:user/bruno")],
    );

    let plan = plan_of(&c, &g, now).await.expect("a plan");
    assert_eq!(
        planned_keys(&plan),
        vec![("bruno".to_string(), keys[1].0.clone())],
        "the only active key is planned (a person decides), the inactive one is not"
    );
    let warned = warnings(&plan);
    assert_eq!(warned.len(), 1, "{:?}", plan.notes);
    assert!(
        warned[0].contains(&keys[1].0)
            && warned[0].contains("ONLY active access key of user bruno")
            && warned[0].contains("NO programmatic access"),
        "{}",
        warned[0]
    );
}

#[tokio::test]
async fn iam_3_without_an_old_key_or_with_a_deleted_user_is_not_offered() {
    let moto = moto::shared();
    let c = clients(&moto).await;
    let keys = user_with_keys(c.iam(), "cleo", 1).await;
    let now = keys[0].1 + Duration::days(10);
    let g = group(
        "IAM.3",
        &[
            ("AwsIamUser", "arn:aws:iam::123456789012:user/cleo"),
            ("AwsIamUser", "arn:aws:iam::123456789012:user/ghost"),
            ("AwsIamUser", "arn:aws:iam::210987654321:user/elsewhere"),
        ],
    );
    let reason = plan_of(&c, &g, now).await.expect_err("nothing to plan");
    for want in [
        "cleo: no active access key older than 90",
        "user ghost no longer exists",
        "210987654321",
    ] {
        assert!(reason.contains(want), "{want:?} not in {reason}");
    }
    assert_eq!(key_status(c.iam(), "cleo", &keys[0].0).await, "Active");
}

// ---------------------------------------------------------------------------------------------
// S3.1

#[tokio::test]
async fn s3_1_remediation_blocks_the_account_and_revert_restores_the_prior_setting() {
    let moto = Moto::start();
    let c = clients(&moto).await;
    let world = World::new(&moto).await;
    let g = group("S3.1", &[("AwsAccount", "AWS::::Account:123456789012")]);

    // No account-level configuration at all: applied, then revert deletes it again.
    assert_eq!(account_pab(c.s3control()).await, None);
    let plan = plan_of(&c, &g, Utc::now()).await.expect("a plan");
    assert_eq!(plan.finding_id, format!("{ACCOUNT}/{REGION}/S3.1"));
    assert_eq!(plan.steps, vec![block_account_public_access_step(ACCOUNT)]);
    assert_eq!(plan.steps[0].service, "s3control");
    let report = world.approve_and_run(plan.clone()).await;
    assert_eq!(
        report.state,
        RequestState::Succeeded,
        "{:?}",
        outcomes(&report)
    );
    assert_eq!(account_pab(c.s3control()).await, Some([true; 4]));
    let reverted = world.revert(report.request_id).await;
    assert_eq!(
        reverted.state,
        RequestState::Succeeded,
        "{:?}",
        outcomes(&reverted)
    );
    assert_eq!(account_pab(c.s3control()).await, None);

    // A partial prior setting: revert puts exactly that back.
    put_account_pab(c.s3control(), [true, false, true, false]).await;
    let report = world.approve_and_run(plan).await;
    assert_eq!(
        report.state,
        RequestState::Succeeded,
        "{:?}",
        outcomes(&report)
    );
    assert_eq!(account_pab(c.s3control()).await, Some([true; 4]));
    let reverted = world.revert(report.request_id).await;
    assert_eq!(
        reverted.state,
        RequestState::Succeeded,
        "{:?}",
        outcomes(&reverted)
    );
    assert_eq!(
        account_pab(c.s3control()).await,
        Some([true, false, true, false])
    );
    world.store.verify_audit().expect("audit chain");
}
