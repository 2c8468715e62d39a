//! One full drill per playbook against a local moto server: plan, request, approval, execution
//! and verification, in process through the real aws-sdk clients.
//!
//! `cargo bench --bench drill` starts `moto_server` (install: `pip install 'moto[server]'`)
//! the way the integration tests do (`tests/support/moto.rs`), builds a fresh leaked key, role,
//! two-interface instance and public bucket for every round, and prints the median, p90 and min
//! wall time of each playbook. `HANKO_BENCH_ROUNDS` sets the number of rounds (default 20).

#[path = "../tests/support/moto.rs"]
mod moto;

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, InstanceNetworkInterfaceSpecification,
};
use chrono::Utc;
use hanko::approval::{Decision, Policy, Request, RequestKind, RequestState, VoteInput, Voter};
use hanko::audit::Actor;
use hanko::aws::ClientFactory;
use hanko::engine::Engine;
use hanko::finding::{
    AccessKeyDetails, Finding, FindingSource, InstanceDetails, Resource, ResourceKind,
    S3BucketDetails, SeverityLabel,
};
use hanko::playbooks::Playbooks;
use hanko::store::Store;

fn finding(id: &str, kind: ResourceKind) -> Finding {
    Finding {
        id: id.into(),
        arn: None,
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        finding_type: String::new(),
        severity: 8.0,
        severity_label: SeverityLabel::High,
        title: String::new(),
        description: String::new(),
        created_at: None,
        updated_at: None,
        first_seen: None,
        last_seen: None,
        count: 1,
        archived: false,
        sample: false,
        source: FindingSource::GuardDuty,
        resource: Resource {
            kind,
            access_key: None,
            instance: None,
            s3_buckets: Vec::new(),
        },
        actor: Default::default(),
    }
}

/// Plans, stores, approves and executes; returns the wall time of the whole life.
async fn drill(engine: &Engine, store: &Store, f: &Finding) -> Duration {
    let start = Instant::now();
    let now = Utc::now();
    let policy = Policy::default();
    let plan = hanko::plan::plan(f, &Playbooks::defaults());
    let request = Request::new(RequestKind::Contain, plan, Actor::System, now, policy.ttl);
    store.create_request(&request, now).expect("stored");
    let vote = VoteInput {
        voter: Voter {
            actor: Actor::Cli {
                name: "bench".into(),
            },
            roles: vec![],
        },
        decision: Decision::Approve,
        plan_hash: request.plan.plan_hash.clone(),
    };
    store
        .vote(&policy, request.id, &vote, now)
        .expect("store")
        .expect("approved");
    let report = engine.execute(request.id).await.expect("executed");
    let elapsed = start.elapsed();
    assert_eq!(report.state, RequestState::Succeeded, "{report:#?}");
    elapsed
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "drill/{name:<10} rounds {:>3}  median {:>7.1} ms  p90 {:>7.1} ms  min {:>7.1} ms",
        v.len(),
        ms(p(0.5)),
        ms(p(0.9)),
        ms(v[0])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run one round then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = if quick {
        1
    } else {
        std::env::var("HANKO_BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20)
    };
    let moto = moto::Moto::start();
    let conf = moto.sdk_config().await;
    let factory = ClientFactory::from_sdk_config(conf.clone(), None);
    let iam = aws_sdk_iam::Client::new(&conf);
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let engine = Engine::new(store.clone(), factory);

    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.1.0/24")
        .send()
        .await
        .unwrap();
    let subnet = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_string();
    let app = ec2
        .create_security_group()
        .group_name("app")
        .description("app")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();

    let (mut key, mut role, mut instance, mut bucket) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Leaked AKIA key: deactivate + revoke the user's sessions.
        let user = format!("user{round}");
        iam.create_user().user_name(&user).send().await.unwrap();
        let k = iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap();
        let mut f = finding(&format!("key-{round}"), ResourceKind::AccessKey);
        f.finding_type = "UnauthorizedAccess:IAMUser/TorIPCaller".into();
        f.resource.access_key = Some(AccessKeyDetails {
            access_key_id: k.access_key().map(|a| a.access_key_id().to_string()),
            principal_id: None,
            user_name: Some(user.clone()),
            user_type: Some("IAMUser".into()),
        });
        key.push(drill(&engine, &store, &f).await);

        // Misused role session: revoke the role's sessions.
        let role_name = format!("role{round}");
        iam.create_role()
            .role_name(&role_name)
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
            .send()
            .await
            .unwrap();
        let mut f = finding(&format!("role-{round}"), ResourceKind::AccessKey);
        f.finding_type =
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS".into();
        f.resource.access_key = Some(AccessKeyDetails {
            access_key_id: Some("ASIAEXAMPLE".into()),
            principal_id: None,
            user_name: Some(role_name),
            user_type: Some("AssumedRole".into()),
        });
        role.push(drill(&engine, &store, &f).await);

        // Compromised instance with two interfaces and two volumes: the EC2 playbook.
        let mut enis = vec![];
        for _ in 0..2 {
            let eni = ec2
                .create_network_interface()
                .subnet_id(&subnet)
                .groups(&app)
                .send()
                .await
                .unwrap();
            enis.push(
                eni.network_interface()
                    .and_then(|n| n.network_interface_id())
                    .unwrap()
                    .to_string(),
            );
        }
        let mut run = ec2
            .run_instances()
            .image_id(&image)
            .min_count(1)
            .max_count(1);
        for (i, eni) in enis.iter().enumerate() {
            run = run.network_interfaces(
                InstanceNetworkInterfaceSpecification::builder()
                    .network_interface_id(eni)
                    .device_index(i as i32)
                    .build(),
            );
        }
        for (dev, size) in [("/dev/sda1", 8), ("/dev/sdf", 10)] {
            run = run.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(dev)
                    .ebs(EbsBlockDevice::builder().volume_size(size).build())
                    .build(),
            );
        }
        let out = run.send().await.unwrap();
        let id = out.instances()[0].instance_id().unwrap().to_string();
        let mut f = finding(&format!("instance-{round}"), ResourceKind::Instance);
        f.finding_type = "Backdoor:EC2/C&CActivity.B".into();
        f.resource.instance = Some(InstanceDetails {
            instance_id: Some(id),
            ..Default::default()
        });
        instance.push(drill(&engine, &store, &f).await);

        // Public bucket: block public access.
        let name = format!("public-{round}");
        s3.create_bucket().bucket(&name).send().await.unwrap();
        let mut f = finding(&format!("bucket-{round}"), ResourceKind::AccessKey);
        f.finding_type = "Policy:S3/BucketPublicAccessGranted".into();
        f.resource.s3_buckets = vec![S3BucketDetails {
            name: Some(name),
            ..Default::default()
        }];
        bucket.push(drill(&engine, &store, &f).await);
    }
    summary("iam_key", key);
    summary("iam_role", role);
    summary("ec2", instance);
    summary("s3", bucket);
}
