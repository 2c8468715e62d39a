//! The whole life of a request through the real `hanko` binary (`drill`, `revert`, `resume`,
//! `audit verify`) against a moto server, through the real aws-sdk clients: the leaked key,
//! the misused role, the compromised instance with two interfaces, the public bucket, a crash
//! between capture and verify, AccessDenied, and the least-privilege policy.

use crate::support::ec2_world;
use crate::support::fixtures;
use crate::support::moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_iam::types::StatusType;
use ec2_world::{World, QUARANTINE};
use moto::Moto;
use serde_json::Value;

const ACCOUNT: &str = "123456789012";

/// A fixture, edited by `edit`, written to `dir/finding.json` for the CLI; moto's account and
/// region, never archived.
fn finding_file(dir: &Path, fixture: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v: Value = serde_json::from_str(&fixtures::read(fixture)).unwrap();
    v["accountId"] = ACCOUNT.into();
    v["region"] = "us-east-1".into();
    v["service"]["archived"] = false.into();
    edit(&mut v);
    let path = dir.join(format!("finding-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

struct Hanko<'a> {
    moto: &'a Moto,
    db: PathBuf,
    keys: (String, String),
}

impl<'a> Hanko<'a> {
    fn new(moto: &'a Moto, dir: &Path) -> Self {
        Hanko {
            moto,
            db: dir.join("db"),
            keys: ("testing".into(), "testing".into()),
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hanko"));
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", &self.keys.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.keys.1)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("HANKO_FAILPOINT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `hanko drill FILE --db DB --approve-as ops --json`: the single report.
    fn drill(&self, file: &Path, env: &[(&str, &str)]) -> (Option<i32>, Value) {
        let out = self.run(
            &[
                "drill",
                file.to_str().unwrap(),
                "--db",
                self.db.to_str().unwrap(),
                "--approve-as",
                "ops",
                "--json",
            ],
            env,
        );
        (out.status.code(), report(&out))
    }

    fn revert(&self, request: &str) -> (Option<i32>, Value) {
        let out = self.run(
            &[
                "revert",
                request,
                "--db",
                self.db.to_str().unwrap(),
                "--approve-as",
                "second-ops",
                "--json",
            ],
            &[],
        );
        (out.status.code(), report(&out))
    }

    fn verify_audit(&self) {
        let out = self.run(&["audit", "verify", "--db", self.db.to_str().unwrap()], &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "audit chain: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn report(out: &Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout: {} stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let arr = v.as_array().expect("an array of reports");
    assert_eq!(arr.len(), 1, "{v}");
    arr[0].clone()
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn key_status(iam: &aws_sdk_iam::Client, user: &str, key: &str) -> StatusType {
    let out = iam.list_access_keys().user_name(user).send().await.unwrap();
    out.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .and_then(|k| k.status().cloned())
        .unwrap()
}

async fn user_with_two_keys(iam: &aws_sdk_iam::Client, user: &str) -> (String, String) {
    iam.create_user().user_name(user).send().await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let k = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        keys.push(k.access_key().unwrap().access_key_id().to_string());
    }
    (keys[0].clone(), keys[1].clone())
}

fn set_key(v: &mut Value, user_type: &str, key: &str, user: &str) {
    let ak = &mut v["resource"]["accessKeyDetails"];
    ak["userType"] = user_type.into();
    ak["accessKeyId"] = key.into();
    ak["userName"] = user.into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_akia_key_is_deactivated_alone_and_revert_restores_it() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    let (leaked, other) = user_with_two_keys(&iam, "alina").await;
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko::new(&moto, dir.path());
    let file = finding_file(
        dir.path(),
        "api/UnauthorizedAccess_IAMUser_TorIPCaller.json",
        |v| set_key(v, "IAMUser", &leaked, "alina"),
    );

    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "{rep:#}");
    assert_eq!(rep["state"], "Succeeded");
    assert_eq!(
        outcomes(&rep),
        vec![
            ("deactivate_access_key".into(), "applied".into()),
            ("revoke_user_sessions".into(), "applied".into())
        ]
    );
    // The captured state is in the report: the key was Active.
    assert!(
        rep["steps"][0]["captured"].to_string().contains("Active"),
        "{rep:#}"
    );

    assert_eq!(
        key_status(&iam, "alina", &leaked).await,
        StatusType::Inactive
    );
    assert_eq!(key_status(&iam, "alina", &other).await, StatusType::Active);
    let policy = iam
        .get_user_policy()
        .user_name("alina")
        .policy_name(hanko::plan::SESSION_REVOKE_POLICY)
        .send()
        .await
        .unwrap();
    let doc = hanko::aws::iam::decode_document(policy.policy_document());
    assert!(
        doc.contains("aws:TokenIssueTime") && doc.contains("DateLessThan"),
        "{doc}"
    );

    let request = rep["request_id"].as_str().unwrap().to_string();
    let (code, rev) = hanko.revert(&request);
    assert_eq!(code, Some(0), "{rev:#}");
    assert_eq!(rev["state"], "Succeeded");
    assert_eq!(key_status(&iam, "alina", &leaked).await, StatusType::Active);
    assert_eq!(key_status(&iam, "alina", &other).await, StatusType::Active);
    let policies = iam
        .list_user_policies()
        .user_name("alina")
        .send()
        .await
        .unwrap();
    assert!(
        policies.policy_names().is_empty(),
        "{:?}",
        policies.policy_names()
    );
    hanko.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_role_sessions_are_revoked_on_that_role_only() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    for role in ["web-role", "other-role"] {
        iam.create_role()
            .role_name(role)
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap();
    }
    let (key_a, key_b) = user_with_two_keys(&iam, "bystander").await;
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko::new(&moto, dir.path());
    let file = finding_file(
        dir.path(),
        "api/UnauthorizedAccess_IAMUser_InstanceCredentialExfiltration.OutsideAWS.json",
        |v| set_key(v, "AssumedRole", "ASIAJZ3DXJKMP7MG3EKA", "web-role"),
    );
    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "{rep:#}");
    assert_eq!(
        outcomes(&rep),
        vec![("revoke_role_sessions".into(), "applied".into())]
    );
    let on_role = iam
        .list_role_policies()
        .role_name("web-role")
        .send()
        .await
        .unwrap();
    assert_eq!(on_role.policy_names(), [hanko::plan::SESSION_REVOKE_POLICY]);
    let other = iam
        .list_role_policies()
        .role_name("other-role")
        .send()
        .await
        .unwrap();
    assert!(other.policy_names().is_empty());
    assert_eq!(
        key_status(&iam, "bystander", &key_a).await,
        StatusType::Active
    );
    assert_eq!(
        key_status(&iam, "bystander", &key_b).await,
        StatusType::Active
    );
    let users = iam
        .list_user_policies()
        .user_name("bystander")
        .send()
        .await
        .unwrap();
    assert!(users.policy_names().is_empty());
    hanko.verify_audit();
}

fn instance_finding(dir: &Path, instance: &str) -> PathBuf {
    finding_file(dir, "api/Backdoor_EC2_C_CActivity.B.json", |v| {
        v["resource"]["instanceDetails"]["instanceId"] = instance.into();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_interface_instance_is_isolated_snapshotted_and_reverted() {
    let moto = moto::shared();
    let world = World::new(&moto).await;
    let target = world.launch(&[&[&world.app], &[&world.db]]).await;
    let neighbour = world.launch(&[&[&world.app]]).await;
    let before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for eni in &target.enis {
            v.push(world.eni_groups(eni).await);
        }
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko::new(&moto, dir.path());
    let file = instance_finding(dir.path(), &target.id);

    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "{rep:#}");
    assert_eq!(rep["state"], "Succeeded");
    assert!(
        outcomes(&rep).iter().all(|(_, o)| o == "applied"),
        "{:?}",
        outcomes(&rep)
    );
    let quarantine = world.group_by_name(QUARANTINE).await.unwrap();
    let qid = quarantine.group_id().unwrap().to_string();
    for eni in &target.enis {
        assert_eq!(world.eni_groups(eni).await, vec![qid.clone()], "{eni}");
    }
    assert!(quarantine.ip_permissions().is_empty());
    assert!(quarantine.ip_permissions_egress().is_empty());
    let snapshots = world.snapshots(&target.id).await;
    assert_eq!(snapshots.len(), 2, "one snapshot per volume: {snapshots:?}");
    assert!(world.termination_protection(&target.id).await);
    assert_eq!(world.shutdown_behavior(&target.id).await, "stop");
    // Scope: the neighbour sharing the `app` group is untouched.
    assert_eq!(
        world.eni_groups(&neighbour.enis[0]).await,
        vec![world.app.clone()]
    );
    assert!(world.snapshots(&neighbour.id).await.is_empty());

    // A second run for the same finding changes nothing and takes no new snapshot.
    let (code, again) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "{again:#}");
    assert!(
        outcomes(&again)
            .iter()
            .all(|(_, o)| o == "already-in-target-state"),
        "{:?}",
        outcomes(&again)
    );
    assert_eq!(world.snapshots(&target.id).await.len(), 2);

    // Revert the first request: both interfaces get their own groups back.
    let request = rep["request_id"].as_str().unwrap().to_string();
    let (code, rev) = hanko.revert(&request);
    assert_eq!(code, Some(0), "{rev:#}");
    for (eni, groups) in target.enis.iter().zip(&before) {
        assert_eq!(&world.eni_groups(eni).await, groups, "{eni}");
    }
    assert!(!world.termination_protection(&target.id).await);
    assert_eq!(world.shutdown_behavior(&target.id).await, "terminate");
    // Evidence is kept.
    assert_eq!(world.snapshots(&target.id).await.len(), 2);
    hanko.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_bucket_is_blocked_and_revert_restores_the_prior_configuration() {
    let moto = moto::shared();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("exposed").send().await.unwrap();
    // A prior, partial configuration that revert must put back exactly.
    s3.put_public_access_block()
        .bucket("exposed")
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(false)
                .block_public_policy(false)
                .restrict_public_buckets(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko::new(&moto, dir.path());
    let file = finding_file(
        dir.path(),
        "api/Policy_S3_BucketAnonymousAccessGranted.json",
        |v| {
            v["resource"]["s3BucketDetails"][0]["name"] = "exposed".into();
        },
    );
    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "{rep:#}");
    assert_eq!(
        outcomes(&rep),
        vec![("block_bucket_public_access".into(), "applied".into())]
    );
    let pab = |s3: aws_sdk_s3::Client| async move {
        let out = s3
            .get_public_access_block()
            .bucket("exposed")
            .send()
            .await
            .unwrap();
        let c = out.public_access_block_configuration().unwrap().clone();
        (
            c.block_public_acls(),
            c.ignore_public_acls(),
            c.block_public_policy(),
            c.restrict_public_buckets(),
        )
    };
    assert_eq!(
        pab(s3.clone()).await,
        (Some(true), Some(true), Some(true), Some(true))
    );
    let (code, rev) = hanko.revert(rep["request_id"].as_str().unwrap());
    assert_eq!(code, Some(0), "{rev:#}");
    assert_eq!(
        pab(s3.clone()).await,
        (Some(true), Some(false), Some(false), Some(false))
    );
    hanko.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_apply_and_verify_resumes_exactly_once() {
    let moto = moto::shared();
    let world = World::new(&moto).await;
    let target = world.launch(&[&[&world.app], &[&world.db]]).await;
    let dir = tempfile::tempdir().unwrap();
    let hanko = Hanko::new(&moto, dir.path());
    let file = instance_finding(dir.path(), &target.id);

    if !cfg!(feature = "failpoints") {
        panic!(
            "this crash test needs the failpoints feature: cargo test --features failpoints \
             (scripts/test.sh enables it)"
        );
    }
    // The process dies right after the snapshots were created, before they were recorded.
    let out = hanko.run(
        &[
            "drill",
            file.to_str().unwrap(),
            "--db",
            hanko.db.to_str().unwrap(),
            "--approve-as",
            "ops",
            "--json",
        ],
        &[("HANKO_FAILPOINT", "after-apply:snapshot_volumes")],
    );
    assert!(!out.status.success(), "the failpoint must kill the drill");
    assert_eq!(world.snapshots(&target.id).await.len(), 2);
    // Nothing after the snapshot ran.
    let qid = world.group_by_name(QUARANTINE).await;
    assert!(qid.is_none(), "isolation ran before the crash");

    // And again, this time between capture and apply of the isolation.
    let out = hanko.run(
        &["resume", "--db", hanko.db.to_str().unwrap(), "--json"],
        &[("HANKO_FAILPOINT", "after-capture:isolate_instance")],
    );
    assert!(!out.status.success(), "the failpoint must kill the resume");

    let out = hanko.run(
        &["resume", "--db", hanko.db.to_str().unwrap(), "--json"],
        &[],
    );
    let rep = report(&out);
    assert_eq!(out.status.code(), Some(0), "{rep:#}");
    assert_eq!(rep["state"], "Succeeded");
    let steps = outcomes(&rep);
    assert_eq!(steps[0], ("snapshot_volumes".into(), "applied".into()));
    assert!(steps.iter().all(|(_, o)| o == "applied"), "{steps:?}");
    assert_eq!(
        world.snapshots(&target.id).await.len(),
        2,
        "no duplicate snapshot"
    );
    let qid = world.group_by_name(QUARANTINE).await.unwrap();
    for eni in &target.enis {
        assert_eq!(
            world.eni_groups(eni).await,
            vec![qid.group_id().unwrap().to_string()]
        );
    }
    // The isolation captured before the second crash is the original one: revert restores.
    let (code, rev) = hanko.revert(rep["request_id"].as_str().unwrap());
    assert_eq!(code, Some(0), "{rev:#}");
    assert_eq!(
        world.eni_groups(&target.enis[0]).await,
        vec![world.app.clone()]
    );
    assert_eq!(
        world.eni_groups(&target.enis[1]).await,
        vec![world.db.clone()]
    );
    hanko.verify_audit();
}

/// An IAM client signing with `keys` (from [`Moto::start_with_auth`] or a responder's).
async fn iam_as(moto: &Moto, keys: &(String, String)) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&moto.sdk_config_with_keys(&keys.0, &keys.1).await)
}

async fn responder_with_policy(
    admin: &aws_sdk_iam::Client,
    name: &str,
    policy: &str,
) -> (String, String) {
    admin.create_user().user_name(name).send().await.unwrap();
    admin
        .put_user_policy()
        .user_name(name)
        .policy_name("hanko")
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let k = admin
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let k = k.access_key().unwrap();
    (
        k.access_key_id().to_string(),
        k.secret_access_key().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_fails_the_steps_with_the_code_and_never_succeeds() {
    let (moto, admin_keys) = Moto::start_with_auth().await;
    let admin = iam_as(&moto, &admin_keys).await;
    let (leaked, _) = user_with_two_keys(&admin, "alice").await;
    let read_only = responder_with_policy(
        &admin,
        "hanko-read-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:ListAccessKeys","iam:GetUserPolicy"],"Resource":"*"}]}"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut hanko = Hanko::new(&moto, dir.path());
    hanko.keys = read_only;
    let file = finding_file(
        dir.path(),
        "api/UnauthorizedAccess_IAMUser_TorIPCaller.json",
        |v| set_key(v, "IAMUser", &leaked, "alice"),
    );
    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(1), "{rep:#}");
    assert_eq!(rep["state"], "Failed", "{rep:#}");
    for step in rep["steps"].as_array().unwrap() {
        assert_eq!(step["outcome"], "failed", "{step:#}");
        assert_eq!(step["error_code"], "AccessDenied", "{step:#}");
        let msg = step["message"].as_str().unwrap();
        assert!(
            msg.contains("iam:UpdateAccessKey") || msg.contains("iam:PutUserPolicy"),
            "the message names the missing permission: {msg}"
        );
    }
    assert_eq!(
        key_status(&admin, "alice", &leaked).await,
        StatusType::Active
    );
    hanko.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_privilege_policy_runs_the_iam_and_ec2_playbooks() {
    let (moto, admin_keys) = Moto::start_with_auth().await;
    let admin = iam_as(&moto, &admin_keys).await;
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/iam-policy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let policy = moto::policy_for_moto(&shipped).to_string();
    let responder = responder_with_policy(&admin, "hanko", &policy).await;
    let (leaked, other) = user_with_two_keys(&admin, "alice").await;
    let ec2 = aws_sdk_ec2::Client::new(
        &moto
            .sdk_config_with_keys(&admin_keys.0, &admin_keys.1)
            .await,
    );
    let world = World::with_client(ec2).await;
    let target = world.launch(&[&[&world.app], &[&world.db]]).await;

    let dir = tempfile::tempdir().unwrap();
    let mut hanko = Hanko::new(&moto, dir.path());
    hanko.keys = responder;

    let file = finding_file(
        dir.path(),
        "api/UnauthorizedAccess_IAMUser_TorIPCaller.json",
        |v| set_key(v, "IAMUser", &leaked, "alice"),
    );
    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "IAM playbook under least privilege: {rep:#}");
    assert_eq!(
        key_status(&admin, "alice", &leaked).await,
        StatusType::Inactive
    );
    assert_eq!(
        key_status(&admin, "alice", &other).await,
        StatusType::Active
    );

    let file = instance_finding(dir.path(), &target.id);
    let (code, rep) = hanko.drill(&file, &[]);
    assert_eq!(code, Some(0), "EC2 playbook under least privilege: {rep:#}");
    let (code, rev) = hanko.revert(rep["request_id"].as_str().unwrap());
    assert_eq!(code, Some(0), "EC2 revert under least privilege: {rev:#}");
    hanko.verify_audit();
}
