//! The EC2 containment steps against a moto server, through the real aws-sdk-ec2 client.
//!
//! Test instances are launched with explicit network interfaces (created with their groups,
//! then attached at launch): moto then reports each interface's groups faithfully
//! (`docs/containment.md`, "Testing these steps against moto").

use crate::support::ec2_world;
use crate::support::moto;
use ec2_world::{World, QUARANTINE, TRANSITION};

use aws_sdk_ec2::types::{Filter, IpPermission};
use chrono::Utc;
use hanko::aws::ec2;
use hanko::aws::{Captured, RevertOutcome, StepCtx, TAG_QUARANTINE, TAG_REQUEST, TAG_STEP};
use hanko::plan::{Action, Step, Target};
use serde_json::{json, Value};
use uuid::Uuid;

/// The EC2 plan as the planner writes it, in the order the steps run.
fn ec2_plan(instance: &str) -> Vec<Step> {
    let target = || Target::Instance {
        instance_id: instance.to_string(),
    };
    let plain = json!({ "InstanceId": instance });
    vec![
        Step::new(Action::SnapshotVolumes, target(), plain.clone()),
        Step::new(Action::EnableTerminationProtection, target(), plain.clone()),
        Step::new(Action::SetShutdownBehaviorStop, target(), plain.clone()),
        Step::new(Action::PreserveVolumes, target(), plain.clone()),
        isolate_step(instance),
        Step::new(
            Action::TagInstance,
            target(),
            json!({ "InstanceId": instance, "TagKey": TAG_QUARANTINE }),
        ),
    ]
}

fn isolate_step(instance: &str) -> Step {
    Step::new(
        Action::IsolateInstance,
        Target::Instance {
            instance_id: instance.to_string(),
        },
        json!({
            "InstanceId": instance,
            "QuarantineGroupName": QUARANTINE,
            "TransitionGroupName": TRANSITION,
        }),
    )
}

fn ctx(request_id: Uuid, step_index: usize, dry_run: bool) -> StepCtx {
    StepCtx {
        request_id,
        finding_id: String::new(),
        step_index,
        now: Utc::now(),
        dry_run,
        approvers: Vec::new(),
        revert_retry: false,
        fresh_capture: false,
    }
}

/// What the engine keeps of one step: its capture and its result.
struct Ran {
    captured: Captured,
    result: Value,
}

/// capture -> apply -> verify, as the engine runs a step that is not yet in its target state.
async fn run(ec2: &aws_sdk_ec2::Client, step: &Step, ctx: &StepCtx) -> Ran {
    let captured = ec2::capture(ec2, step, ctx)
        .await
        .unwrap_or_else(|e| panic!("capture {}: {e:?}", step.action));
    assert!(
        !captured.already_in_target_state,
        "{} should have work to do: {:?}",
        step.action, captured.prior
    );
    let result = ec2::apply(ec2, step, &captured, ctx)
        .await
        .unwrap_or_else(|e| panic!("apply {}: {e:?}", step.action));
    ec2::verify(ec2, step, &result, ctx)
        .await
        .unwrap_or_else(|e| panic!("verify {}: {e:?}", step.action));
    Ran { captured, result }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn every_ec2_step_contains_a_two_interface_instance_once_and_reverts() {
    let moto = moto::shared();
    let w = World::new(&moto).await;
    let app_db = [w.app.as_str(), w.db.as_str()];
    let target = w.launch(&[&[&w.app], &app_db]).await;
    let neighbour = w.launch(&[&[&w.app]]).await;
    assert_eq!(target.enis.len(), 2);
    let volumes_before = w.volumes(&target.id).await;
    assert_eq!(volumes_before.len(), 2, "{volumes_before:?}");
    assert!(volumes_before.iter().all(|v| v.2), "{volumes_before:?}");
    let app_rules_before = w.group_by_name("app").await.unwrap().ip_permissions().len();

    let request = Uuid::new_v4();
    let plan = ec2_plan(&target.id);
    let mut ran = Vec::new();
    for (i, step) in plan.iter().enumerate() {
        ran.push(run(&w.ec2, step, &ctx(request, i, false)).await);
    }

    // Isolated: both interfaces in the quarantine group only, which lets nothing through.
    let quarantine = w.group_by_name(QUARANTINE).await.expect("quarantine group");
    let q = quarantine.group_id().unwrap().to_string();
    assert_eq!(quarantine.ip_permissions().len(), 0, "{quarantine:?}");
    assert_eq!(
        quarantine.ip_permissions_egress().len(),
        0,
        "{quarantine:?}"
    );
    assert!(quarantine
        .tags()
        .iter()
        .any(|t| t.key() == Some(ec2::TAG_PURPOSE) && t.value() == Some("quarantine")));
    for eni in &target.enis {
        assert_eq!(w.eni_groups(eni).await, vec![q.clone()], "{eni}");
    }
    let transition = w.group_by_name(TRANSITION).await.expect("transition group");
    let ingress_v4 = transition.ip_permissions().iter().any(|p| {
        p.ip_protocol() == Some("-1")
            && p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
    });
    assert!(
        ingress_v4,
        "transition group must allow all traffic in: {transition:?}"
    );
    let all_v6 = |rules: &[IpPermission]| {
        rules.iter().any(|p| {
            p.ip_protocol() == Some("-1")
                && p.ipv6_ranges()
                    .iter()
                    .any(|r| r.cidr_ipv6() == Some("::/0"))
        })
    };
    assert!(all_v6(transition.ip_permissions()), "{transition:?}");
    assert!(all_v6(transition.ip_permissions_egress()), "{transition:?}");
    let isolate_result = &ran[4].result;
    assert!(
        isolate_result["note"]
            .as_str()
            .unwrap()
            .contains("network ACL or a stop"),
        "{isolate_result}"
    );
    assert_eq!(
        sorted(
            isolate_result["created_groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        ),
        sorted(vec![q.clone(), transition.group_id().unwrap().to_string()])
    );

    // Evidence: one snapshot per volume, tagged with the request and the step.
    let snaps = w.snapshots(&target.id).await;
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let mut snapped: Vec<String> = snaps.iter().map(|s| s.1.clone()).collect();
    snapped.sort();
    let mut vols: Vec<String> = volumes_before.iter().map(|v| v.1.clone()).collect();
    vols.sort();
    assert_eq!(snapped, vols);
    assert!(snaps
        .iter()
        .all(|s| s.2.as_deref() == Some(request.to_string().as_str())));
    let step_tag = w
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_STEP}"))
                .values("0")
                .build(),
        )
        // This request's snapshots only: the binary's moto is shared with other tests.
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_REQUEST}"))
                .values(request.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(step_tag.snapshots().len(), 2);

    // The instance attributes and the tag.
    assert!(w.termination_protection(&target.id).await);
    assert_eq!(w.shutdown_behavior(&target.id).await, "stop");
    assert!(w.volumes(&target.id).await.iter().all(|v| !v.2));
    assert_eq!(
        w.tag(&target.id, TAG_QUARANTINE).await,
        Some(request.to_string())
    );

    // Scope: the neighbour sharing the `app` group is untouched, and so is the group.
    assert_eq!(w.eni_groups(&neighbour.enis[0]).await, vec![w.app.clone()]);
    assert!(!w.termination_protection(&neighbour.id).await);
    assert_eq!(w.tag(&neighbour.id, TAG_QUARANTINE).await, None);
    assert_eq!(
        w.group_by_name("app").await.unwrap().ip_permissions().len(),
        app_rules_before
    );

    // A second run finds every step done and snapshots nothing again.
    for (i, step) in plan.iter().enumerate() {
        let c = ctx(request, i, false);
        let again = ec2::capture(&w.ec2, step, &c).await.unwrap();
        assert!(
            again.already_in_target_state,
            "{}: {:?}",
            step.action, again.prior
        );
    }
    // Even an apply retried after a crash finds the tagged snapshots instead of making more.
    let retried = ec2::apply(&w.ec2, &plan[0], &ran[0].captured, &ctx(request, 0, false))
        .await
        .unwrap();
    assert_eq!(retried["created"], json!([]), "{retried}");
    assert_eq!(w.snapshots(&target.id).await.len(), 2);

    // Revert, last step first.
    let mut outcomes = Vec::new();
    for (i, step) in plan.iter().enumerate().rev() {
        let o = ec2::revert(
            &w.ec2,
            step,
            &ran[i].captured.prior,
            &ran[i].result,
            &ctx(Uuid::new_v4(), i, false),
        )
        .await
        .unwrap_or_else(|e| panic!("revert {}: {e:?}", step.action));
        outcomes.push((step.action, o));
    }
    for (action, o) in &outcomes {
        match action {
            Action::SnapshotVolumes => assert!(
                matches!(o, RevertOutcome::NothingToRevert { reason } if reason.contains("evidence")),
                "{o:?}"
            ),
            _ => assert_eq!(o, &RevertOutcome::Restored, "{action}"),
        }
    }
    assert_eq!(w.eni_groups(&target.enis[0]).await, vec![w.app.clone()]);
    assert_eq!(
        w.eni_groups(&target.enis[1]).await,
        sorted(vec![w.app.clone(), w.db.clone()])
    );
    assert_eq!(w.tag(&target.id, TAG_QUARANTINE).await, None);
    assert!(!w.termination_protection(&target.id).await);
    assert_eq!(w.shutdown_behavior(&target.id).await, "terminate");
    assert_eq!(w.volumes(&target.id).await, volumes_before);
    assert_eq!(w.snapshots(&target.id).await.len(), 2, "evidence is kept");
}

#[tokio::test]
async fn revert_leaves_an_interface_someone_moved_and_restores_the_other() {
    let moto = moto::shared();
    let w = World::new(&moto).await;
    let target = w.launch(&[&[&w.app], &[&w.app]]).await;
    let step = isolate_step(&target.id);
    let c = ctx(Uuid::new_v4(), 4, false);
    let ran = run(&w.ec2, &step, &c).await;

    // Someone moves the second interface to `db` after the isolation.
    w.ec2
        .modify_network_interface_attribute()
        .network_interface_id(&target.enis[1])
        .groups(&w.db)
        .send()
        .await
        .unwrap();
    // The step no longer verifies: verification reads back, it does not trust the result.
    let err = ec2::verify(&w.ec2, &step, &ran.result, &c)
        .await
        .unwrap_err();
    assert!(err.message.contains(&target.enis[1]), "{}", err.message);

    let outcome = ec2::revert(&w.ec2, &step, &ran.captured.prior, &ran.result, &c)
        .await
        .unwrap();
    match &outcome {
        RevertOutcome::Drifted { reason } => {
            assert!(reason.contains(&target.enis[1]), "{reason}");
            assert!(
                reason.contains(&format!("restored: {} ->", target.enis[0])),
                "{reason}"
            );
        }
        other => panic!("expected drift, got {other:?}"),
    }
    assert_eq!(w.eni_groups(&target.enis[0]).await, vec![w.app.clone()]);
    assert_eq!(w.eni_groups(&target.enis[1]).await, vec![w.db.clone()]);
}

#[tokio::test]
async fn dry_run_proves_permissions_and_changes_nothing() {
    let moto = moto::shared();
    let w = World::new(&moto).await;
    let app_db = [w.app.as_str(), w.db.as_str()];
    let target = w.launch(&[&[&w.app], &app_db]).await;
    let volumes_before = w.volumes(&target.id).await;
    let request = Uuid::new_v4();

    let mut calls = Vec::new();
    for (i, step) in ec2_plan(&target.id).iter().enumerate() {
        let c = ctx(request, i, true);
        let captured = ec2::capture(&w.ec2, step, &c).await.unwrap();
        assert!(!captured.already_in_target_state, "{}", step.action);
        let result = ec2::apply(&w.ec2, step, &captured, &c)
            .await
            .unwrap_or_else(|e| panic!("dry-run apply {}: {e:?}", step.action));
        assert_eq!(result["dry_run"], json!(true), "{result}");
        ec2::verify(&w.ec2, step, &result, &c).await.unwrap();
        for call in result["calls"].as_array().unwrap() {
            calls.push((
                call["operation"].as_str().unwrap().to_string(),
                call["outcome"].as_str().unwrap().to_string(),
            ));
        }
    }
    let count = |op: &str, outcome: &str| {
        calls
            .iter()
            .filter(|(o, r)| o == op && r == outcome)
            .count()
    };
    // moto 5.2 answers DryRunOperation for every one of these: the permission is "proven".
    let proven = "permission proven";
    assert_eq!(count("ec2:CreateSnapshot", proven), 2, "{calls:?}");
    assert_eq!(count("ec2:ModifyInstanceAttribute", proven), 3, "{calls:?}");
    assert_eq!(count("ec2:CreateSecurityGroup", proven), 2, "{calls:?}");
    assert_eq!(
        count("ec2:ModifyNetworkInterfaceAttribute", proven),
        2,
        "{calls:?}"
    );
    assert_eq!(count("ec2:CreateTags", proven), 1, "{calls:?}");
    assert_eq!(
        count("ec2:RevokeSecurityGroupEgress", "described"),
        1,
        "{calls:?}"
    );

    // Nothing changed.
    assert_eq!(w.eni_groups(&target.enis[0]).await, vec![w.app.clone()]);
    assert_eq!(
        w.eni_groups(&target.enis[1]).await,
        sorted(vec![w.app.clone(), w.db.clone()])
    );
    assert!(w.group_by_name(QUARANTINE).await.is_none());
    assert!(w.group_by_name(TRANSITION).await.is_none());
    assert_eq!(w.snapshots(&target.id).await, vec![]);
    assert!(!w.termination_protection(&target.id).await);
    assert_eq!(w.shutdown_behavior(&target.id).await, "terminate");
    assert_eq!(w.volumes(&target.id).await, volumes_before);
    assert_eq!(w.tag(&target.id, TAG_QUARANTINE).await, None);
}

#[tokio::test]
async fn opt_in_steps_detach_the_profile_and_stop_then_revert() {
    let moto = moto::shared();
    let w = World::new(&moto).await;
    let target = w.launch(&[&[&w.app]]).await;
    let iam = moto.iam().await;
    iam.create_role()
        .role_name("ec2-web")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let profile_arn = iam
        .create_instance_profile()
        .instance_profile_name("ec2-web")
        .send()
        .await
        .unwrap()
        .instance_profile
        .unwrap()
        .arn;
    iam.add_role_to_instance_profile()
        .instance_profile_name("ec2-web")
        .role_name("ec2-web")
        .send()
        .await
        .unwrap();
    w.ec2
        .associate_iam_instance_profile()
        .instance_id(&target.id)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .arn(&profile_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let associated = || async {
        let out = w
            .ec2
            .describe_iam_instance_profile_associations()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .values(&target.id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.iam_instance_profile_associations()
            .iter()
            .filter(|a| a.state().map(|s| s.as_str()) == Some("associated"))
            .map(|a| a.iam_instance_profile().unwrap().arn().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let state = || async {
        let out = w
            .ec2
            .describe_instances()
            .instance_ids(&target.id)
            .send()
            .await
            .unwrap();
        out.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(associated().await, vec![profile_arn.clone()]);

    let request = Uuid::new_v4();
    let instance = Target::Instance {
        instance_id: target.id.clone(),
    };
    let params = json!({ "InstanceId": target.id });
    let steps = [
        Step::new(
            Action::DetachInstanceProfile,
            instance.clone(),
            params.clone(),
        ),
        Step::new(Action::StopInstance, instance, params),
    ];
    let mut ran = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        ran.push(run(&w.ec2, step, &ctx(request, 6 + i, false)).await);
    }
    assert_eq!(
        ran[0].captured.prior["association"]["instance_profile_arn"],
        json!(profile_arn)
    );
    assert_eq!(associated().await, Vec::<String>::new());
    assert_eq!(state().await, "stopped");
    for (i, step) in steps.iter().enumerate() {
        let again = ec2::capture(&w.ec2, step, &ctx(request, 6 + i, false))
            .await
            .unwrap();
        assert!(again.already_in_target_state, "{}", step.action);
    }

    for (i, step) in steps.iter().enumerate().rev() {
        let o = ec2::revert(
            &w.ec2,
            step,
            &ran[i].captured.prior,
            &ran[i].result,
            &ctx(request, i, false),
        )
        .await
        .unwrap();
        assert_eq!(o, RevertOutcome::Restored, "{}", step.action);
    }
    assert_eq!(associated().await, vec![profile_arn]);
    assert!(
        ["pending", "running"].contains(&state().await.as_str()),
        "{}",
        state().await
    );
}

/// moto enforces IAM policies once the first `INITIAL_NO_AUTH_ACTION_COUNT` calls are spent:
/// those six calls create an admin and a read-only user.
#[tokio::test]
async fn a_missing_permission_fails_the_step_with_the_code_and_the_permission() {
    let moto = moto::Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "6")]);
    let iam = moto.iam().await;
    let mut keys = Vec::new();
    for (user, action) in [("admin", "*"), ("reader", "ec2:Describe*")] {
        iam.create_user().user_name(user).send().await.unwrap();
        let policy = json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]});
        iam.put_user_policy()
            .user_name(user)
            .policy_name("p")
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
        let key = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        keys.push((key.access_key_id, key.secret_access_key));
    }
    let admin = aws_sdk_ec2::Client::new(&moto.sdk_config_with_keys(&keys[0].0, &keys[0].1).await);
    let reader = aws_sdk_ec2::Client::new(&moto.sdk_config_with_keys(&keys[1].0, &keys[1].1).await);
    let w = World::with_client(admin).await;
    let target = w.launch(&[&[&w.app]]).await;

    let step = Step::new(
        Action::EnableTerminationProtection,
        Target::Instance {
            instance_id: target.id.clone(),
        },
        json!({ "InstanceId": target.id }),
    );
    for dry_run in [false, true] {
        let c = ctx(Uuid::new_v4(), 1, dry_run);
        let captured = ec2::capture(&reader, &step, &c).await.unwrap();
        assert!(!captured.already_in_target_state);
        let err = ec2::apply(&reader, &step, &captured, &c).await.unwrap_err();
        assert_eq!(err.class, hanko::aws::ErrorClass::Forbidden, "{err:?}");
        assert_eq!(err.code.as_deref(), Some("AccessDenied"), "{err:?}");
        assert_eq!(err.operation, "ec2:ModifyInstanceAttribute");
        assert_eq!(err.resource, target.id);
        assert!(
            err.message
                .contains("lacks the permission ec2:ModifyInstanceAttribute"),
            "{}",
            err.message
        );
    }
    assert!(!w.termination_protection(&target.id).await);

    // An instance that does not exist is NotFound, with EC2's code.
    let ghost = Step::new(
        Action::EnableTerminationProtection,
        Target::Instance {
            instance_id: "i-0123456789abcdef0".into(),
        },
        json!({ "InstanceId": "i-0123456789abcdef0" }),
    );
    let err = ec2::capture(&w.ec2, &ghost, &ctx(Uuid::new_v4(), 1, false))
        .await
        .unwrap_err();
    assert_eq!(err.class, hanko::aws::ErrorClass::NotFound, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("InvalidInstanceID.NotFound"));
}

/// A group named like the quarantine group that someone else made, with rules in it, would not
/// isolate: the step fails before moving any interface.
#[tokio::test]
async fn isolation_refuses_a_foreign_quarantine_group_that_lets_traffic_through() {
    let moto = moto::shared();
    let w = World::new(&moto).await;
    let target = w.launch(&[&[&w.app], &[&w.app]]).await;
    let foreign = w
        .ec2
        .create_security_group()
        .group_name(QUARANTINE)
        .description("made by hand, default outbound rule left in")
        .vpc_id(&w.vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let step = isolate_step(&target.id);
    let c = ctx(Uuid::new_v4(), 4, false);
    let captured = ec2::capture(&w.ec2, &step, &c).await.unwrap();
    assert!(!captured.already_in_target_state);
    let err = ec2::apply(&w.ec2, &step, &captured, &c).await.unwrap_err();
    assert_eq!(err.class, hanko::aws::ErrorClass::Other, "{err:?}");
    assert_eq!(err.resource, foreign);
    assert!(err.message.contains("would not isolate"), "{}", err.message);
    for eni in &target.enis {
        assert_eq!(w.eni_groups(eni).await, vec![w.app.clone()], "{eni}");
    }
}
