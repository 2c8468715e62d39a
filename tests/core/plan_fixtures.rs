//! The routing table of docs/containment.md, checked over every real fixture and over
//! variants built from them (AKIA, ASIA, AssumedRole, Root, AWSService principals), and the
//! `hanko plan` command's JSON contract.

use crate::support::fixtures;

use std::path::PathBuf;

use fixtures::fixtures_dir;
use hanko::finding::{self, Finding};
use hanko::plan::{self, Action, Target};
use hanko::playbooks::Playbooks;

use Action::*;

const EC2: &[Action] = &[
    SnapshotVolumes,
    EnableTerminationProtection,
    SetShutdownBehaviorStop,
    PreserveVolumes,
    IsolateInstance,
    TagInstance,
];

/// Expected actions by fixture file name. Every fixture must be listed.
fn expected(name: &str) -> Option<&'static [Action]> {
    let bucket_and_user: &[Action] = &[BlockBucketPublicAccess, RevokeUserSessions];
    let user_sessions: &[Action] = &[RevokeUserSessions];
    let notify: &[Action] = &[];
    let table: &[(&str, &[Action])] = &[
        // Instances: the EC2 playbook.
        ("api/Backdoor_EC2_C_CActivity.B.json", EC2),
        ("api/Backdoor_EC2_C_CActivity.B_DNS.json", EC2),
        ("api/Behavior_EC2_TrafficVolumeUnusual.json", EC2),
        ("api/CryptoCurrency_EC2_BitcoinTool.B.json", EC2),
        ("api/CryptoCurrency_EC2_BitcoinTool.B_DNS.json", EC2),
        ("api/Impact_EC2_MaliciousDomainRequest.Reputation.json", EC2),
        ("api/Impact_EC2_WinRMBruteForce.json", EC2),
        ("api/Recon_EC2_PortProbeUnprotectedPort.json", EC2),
        ("api/Trojan_EC2_BlackholeTraffic.json", EC2),
        ("api/Trojan_EC2_BlackholeTraffic_DNS.json", EC2),
        ("api/Trojan_EC2_DGADomainRequest.B.json", EC2),
        ("api/Trojan_EC2_DriveBySourceTraffic_DNS.json", EC2),
        ("api/Trojan_EC2_DropPoint.json", EC2),
        ("api/Trojan_EC2_PhishingDomainRequest_DNS.json", EC2),
        ("api/UnauthorizedAccess_EC2_MaliciousIPCaller.Custom.json", EC2),
        ("api/UnauthorizedAccess_EC2_RDPBruteForce.json", EC2),
        ("api/UnauthorizedAccess_EC2_SSHBruteForce.json", EC2),
        // No account anywhere in the document: never guess where to act.
        ("eventbridge/aws-samples-waf-acl__gd2acl_test_event__UnauthorizedAccess_EC2_SSHBruteForce__partial_envelope.json", &[]),
        ("eventbridge/cloud-custodian__ec2-duty-event__Backdoor_EC2_C_CActivity.B_DNS.json", EC2),
        // S3 data events: the bucket, plus the actor's credentials (a placeholder key id, so
        // sessions are revoked but no key is deactivated).
        ("api/Discovery_S3_MaliciousIPCaller.Custom.json", bucket_and_user),
        ("api/Discovery_S3_MaliciousIPCaller.json", bucket_and_user),
        ("api/Exfiltration_S3_ObjectRead.Unusual.json", bucket_and_user),
        ("api/Impact_S3_MaliciousIPCaller.json", bucket_and_user),
        ("api/UnauthorizedAccess_S3_TorIPCaller.json", bucket_and_user),
        // IAM users with a placeholder (not AKIA/ASIA) key id.
        // Archived (service.archived = true): nothing is proposed.
        ("api/Recon_IAMUser_MaliciousIPCaller.Custom__aws-samples2.json", notify),
        ("api/Recon_IAMUser_MaliciousIPCaller.Custom__elastic1.json", user_sessions),
        ("api/Recon_IAMUser_MaliciousIPCaller.json", user_sessions),
        ("api/Stealth_IAMUser_CloudTrailLoggingDisabled.json", user_sessions),
        ("api/Stealth_IAMUser_PasswordPolicyChange.json", user_sessions),
        ("api/UnauthorizedAccess_IAMUser_ConsoleLoginSuccess.B.json", user_sessions),
        ("api/UnauthorizedAccess_IAMUser_InstanceCredentialExfiltration.OutsideAWS.json", user_sessions),
        ("api/UnauthorizedAccess_IAMUser_TorIPCaller.json", user_sessions),
        // Exposed bucket: block public access, leave the admin's key alone.
        ("api/Policy_S3_BucketAnonymousAccessGranted.json", &[BlockBucketPublicAccess]),
        // The account-level setting: block public access account-wide (S3 Control).
        ("api/Policy_S3_AccountBlockPublicAccessDisabled.json", &[BlockAccountPublicAccess]),
        // Notify only.
        ("api/Policy_IAMUser_RootCredentialUsage__elastic1.json", notify),
        ("api/Policy_IAMUser_RootCredentialUsage__elastic_nonsample2.json", notify),
        ("api/Policy_Kubernetes_ExposedDashboard.json", notify),
        ("api/CredentialAccess_IAMUser_AnomalousBehavior.json", notify),
        ("api/Execution_Kubernetes_ExecInKubeSystemPod.json", notify),
        ("api/PrivilegeEscalation_Kubernetes_PrivilegedContainer.json", notify),
        ("api/PrivilegeEscalation_Runtime_DockerSocketAccessed.json", notify),
        ("api/_wrappers/GetFindings_response__Discovery_Kubernetes_TorIPCaller.json", notify),
        // ASFF from GuardDuty carries no principal type: hanko does not guess (fail closed).
        ("eventbridge/cloud-custodian__securityhub-custom-action__GuardDuty_ASFF_ConsoleLogin.json", notify),
        ("asff/cloud-custodian_custom_action__UnauthorizedAccess_IAMUser_ConsoleLogin__AwsIamAccessKey.json", notify),
        ("asff/cloud-custodian_placebo_GetFindings_0__Recon_IAMUser_ResourcePermissions__AwsIamAccessKey.json", notify),
        ("asff/cloud-custodian_placebo_GetFindings_1__UnauthorizedAccess_IAMUser_ConsoleLogin__AwsIamAccessKey.json", notify),
        ("asff/cloud-custodian_placebo_GetFindings_2__Recon_IAMUser_UserPermissions__AwsIamAccessKey.json", notify),
        ("asff/cloud-custodian_placebo_GetFindings_4__Recon_IAMUser_ResourcePermissions__AwsIamAccessKey.json", notify),
    ];
    table.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

fn all_fixture_files() -> Vec<(String, PathBuf)> {
    let root = fixtures_dir();
    let mut out = Vec::new();
    for sub in ["api", "api/_wrappers", "eventbridge", "asff"] {
        let dir = root.join(sub);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let name = format!("{sub}/{}", p.file_name().unwrap().to_string_lossy());
                out.push((name, p));
            }
        }
    }
    out.sort();
    out
}

fn plan_for(f: &Finding) -> plan::Plan {
    plan::plan(f, &Playbooks::defaults())
}

#[test]
fn every_fixture_follows_the_routing_table() {
    let files = all_fixture_files();
    assert!(
        files.len() >= 48,
        "expected the whole fixture set, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (name, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let findings = match finding::parse_document(&text) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        let Some(want) = expected(name) else {
            failures.push(format!("{name}: not in the expectation table; add it"));
            continue;
        };
        for f in &findings {
            let p = plan_for(f);
            let got: Vec<Action> = p.steps.iter().map(|s| s.action).collect();
            if got != want {
                failures.push(format!(
                    "{name}: got {got:?}, want {want:?}; notes {:?}",
                    p.notes
                ));
            }
            if want.is_empty() && !p.notes.iter().any(|n| n.starts_with("notify only")) {
                failures.push(format!(
                    "{name}: notify-only plan without a reason: {:?}",
                    p.notes
                ));
            }
            if f.sample && !p.notes.iter().any(|n| n.starts_with("SAMPLE")) {
                failures.push(format!("{name}: sample finding not labelled"));
            }
            // Bucket exposure: the key that changed the setting is never touched.
            if f.finding_type.starts_with("Policy:S3/Bucket")
                && p.steps.iter().any(|s| s.service == "iam")
            {
                failures.push(format!("{name}: touches IAM on a bucket exposure finding"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Loads a fixture as JSON, lets `edit` change it, parses and plans it.
fn variant(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> plan::Plan {
    let mut v: serde_json::Value = serde_json::from_str(&fixtures::read(name)).unwrap();
    edit(&mut v);
    let findings = finding::parse_document(&v.to_string()).unwrap();
    assert_eq!(findings.len(), 1);
    plan_for(&findings[0])
}

fn set_key(v: &mut serde_json::Value, user_type: &str, key_id: &str, user: &str) {
    let ak = &mut v["resource"]["accessKeyDetails"];
    ak["userType"] = user_type.into();
    ak["accessKeyId"] = key_id.into();
    ak["userName"] = user.into();
}

#[test]
fn credential_variants_follow_the_key_prefix_and_principal() {
    let tor = "api/UnauthorizedAccess_IAMUser_TorIPCaller.json";

    // A leaked long-term key: deactivate exactly that key, then revoke the user's sessions.
    let p = variant(tor, |v| {
        set_key(v, "IAMUser", "AKIAIOSFODNN7EXAMPLE", "alice")
    });
    let got: Vec<_> = p
        .steps
        .iter()
        .map(|s| (s.action, s.target.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                DeactivateAccessKey,
                Target::AccessKey {
                    user_name: "alice".into(),
                    access_key_id: "AKIAIOSFODNN7EXAMPLE".into()
                }
            ),
            (
                RevokeUserSessions,
                Target::User {
                    user_name: "alice".into()
                }
            ),
        ]
    );
    assert_eq!(p.steps[0].parameters["Status"], "Inactive");
    assert_eq!(p.steps[0].operation, "iam:UpdateAccessKey");

    // A temporary credential is never deactivated.
    let p = variant(tor, |v| {
        set_key(v, "IAMUser", "ASIAJZ3DXJKMP7MG3EKA", "alice")
    });
    assert_eq!(
        p.steps.iter().map(|s| s.action).collect::<Vec<_>>(),
        vec![RevokeUserSessions]
    );
    assert!(
        p.notes.iter().any(|n| n.contains("temporary")),
        "{:?}",
        p.notes
    );

    // A role session: revoke the role's sessions, nothing else.
    let p = variant(
        "api/UnauthorizedAccess_IAMUser_InstanceCredentialExfiltration.OutsideAWS.json",
        |v| set_key(v, "AssumedRole", "ASIAJZ3DXJKMP7MG3EKA", "web-server-role"),
    );
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].action, RevokeRoleSessions);
    assert_eq!(
        p.steps[0].target,
        Target::Role {
            role_name: "web-server-role".into()
        }
    );
    assert_eq!(p.steps[0].operation, "iam:PutRolePolicy");

    // Root and AWS services: notify only, with the reason.
    for (ty, word) in [
        ("Root", "root"),
        ("AWSService", "AWS service"),
        ("FederatedUser", "federated"),
    ] {
        let p = variant(tor, |v| set_key(v, ty, "AKIAIOSFODNN7EXAMPLE", "x"));
        assert!(p.steps.is_empty(), "{ty}");
        assert!(
            p.notes
                .iter()
                .any(|n| n.starts_with("notify only") && n.contains(word)),
            "{ty}: {:?}",
            p.notes
        );
    }

    // An S3 data event whose actor holds a long-term key: the bucket and that key.
    let p = variant("api/Exfiltration_S3_ObjectRead.Unusual.json", |v| {
        set_key(v, "IAMUser", "AKIAIOSFODNN7EXAMPLE", "thief")
    });
    assert_eq!(
        p.steps.iter().map(|s| s.action).collect::<Vec<_>>(),
        vec![
            BlockBucketPublicAccess,
            DeactivateAccessKey,
            RevokeUserSessions
        ]
    );
}

#[test]
fn exempt_instance_is_not_touched() {
    let p = variant("api/Trojan_EC2_DropPoint.json", |v| {
        let tags = v["resource"]["instanceDetails"]["tags"]
            .as_array_mut()
            .unwrap();
        tags.push(serde_json::json!({"key": "hanko:exempt", "value": "true"}));
    });
    assert!(p.steps.is_empty());
    assert!(p.notes.iter().any(|n| n.contains("exempt")));
}

#[test]
fn the_shipped_playbooks_file_is_valid_and_applies() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/playbooks.toml"),
    )
    .unwrap();
    let books = Playbooks::parse(&text).unwrap_or_else(|e| panic!("config/playbooks.toml: {e:?}"));
    let text = fixtures::read("api/CryptoCurrency_EC2_BitcoinTool.B.json");
    let f = &finding::parse_document(&text).unwrap()[0];
    let p = plan::plan(f, &books);
    assert_eq!(p.steps.last().map(|s| s.action), Some(StopInstance));
}

#[test]
fn cli_plan_prints_the_documented_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hanko"))
        .arg("plan")
        .arg(fixtures_dir().join("api/Policy_S3_BucketAnonymousAccessGranted.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["finding_id"], "6cbf27df0abab076fc9ed189a9080cf8");
    assert_eq!(v["plan_hash"].as_str().map(str::len), Some(64));
    let step = &v["steps"][0];
    for key in [
        "action",
        "service",
        "operation",
        "target",
        "parameters",
        "risk",
    ] {
        assert!(step.get(key).is_some(), "step lacks {key}: {step}");
    }
    assert_eq!(step["action"], "block_bucket_public_access");
    assert_eq!(step["operation"], "s3:PutBucketPublicAccessBlock");
    assert_eq!(step["target"]["bucket"], "bucketName");
    assert_eq!(step["risk"], "contain");
    assert!(v["notes"].is_array());

    // Malformed input: exit 1 and the JSON path.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"schemaVersion":"2.0","accountId":"1","region":"us-east-1","id":"x","type":"T","severity":"high","resource":{"resourceType":"Instance"}}"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hanko"))
        .args(["finding", "parse"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("$.severity"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
