//! The slash command handlers, driven through `dispatch` as the bot does, against a temporary
//! store (and moto for `/contain` and `/revert`, which need AWS): each command's reply content,
//! its effect on the store and its audit record.
//!
//! Needs `moto_server` (`pip install 'moto[server]'`) for the tests that say so.

use crate::support::finding_builder::FindingBuilder;
use crate::support::moto;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use hanko::app::App;
use hanko::approval::{Decision, Refusal, RequestKind, RequestState, VoteInput, Voter};
use hanko::audit::{Actor, AuditEvent, AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use hanko::command_defs::load_definitions;
use hanko::discord::commands::{dispatch, Command, Invocation, Invoker, Reply};
use hanko::discord::text::{MAX_CHOICES, MAX_CONTENT};
use hanko::finding::Finding;
use hanko::notices::Notice;
use hanko::pipeline;
use hanko::plan::{Action, Target};
use hanko::playbooks::Playbooks;
use hanko::store::Store;
use moto::Moto;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use uuid::Uuid;

const RESPONDER_ROLE: &str = "323456789012345678";
const ADMIN_ROLE: &str = "423456789012345678";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------------
// helpers

fn config(extra: &str) -> String {
    format!(
        r#"
[discord]
guild_id = "123456789012345678"
channel_id = "223456789012345678"

[responders]
approver_roles = ["{RESPONDER_ROLE}"]
admin_roles = ["{ADMIN_ROLE}"]

[aws]
regions = ["us-east-1", "eu-west-1"]
{extra}
"#
    )
}

async fn app_with(config_text: &str, moto: Option<&Moto>) -> App {
    let settings = hanko::config::parse(config_text, Path::new("/test/hanko.toml"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let sdk = match moto {
        Some(m) => m.sdk_config().await,
        None => aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build(),
    };
    let clients = ClientFactory::from_sdk_config(sdk, None);
    let clients = match moto {
        // moto answers sts:GetCallerIdentity with its default account, ACCOUNT.
        Some(_) => clients,
        // No AWS here: the credentials' account is given, as ingest would have proved it.
        None => clients.with_proven_own_account(ACCOUNT),
    };
    let app = App::new(
        settings,
        Playbooks::defaults(),
        Store::open_temporary().unwrap(),
        clients,
    );
    // What `hanko run` does at start-up: prove the own account before anything is planned.
    app.scope_proven().await;
    app
}

async fn app() -> App {
    app_with(&config(""), None).await
}

fn person(id: &str, name: &str, roles: &[&str]) -> Invoker {
    Invoker {
        actor: Actor::Discord {
            id: id.into(),
            name: name.into(),
        },
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn alice() -> Invoker {
    person("1001", "alice", &[RESPONDER_ROLE])
}
fn bob() -> Invoker {
    person("1002", "bob", &[RESPONDER_ROLE])
}
fn mallory() -> Invoker {
    person("1003", "mallory", &[])
}
fn admin() -> Invoker {
    person("1004", "dana", &["999", ADMIN_ROLE])
}

fn inv(name: &str, options: &[(&str, Value)], invoker: Invoker) -> Invocation {
    Invocation {
        name: name.into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        invoker,
        focused: None,
    }
}

fn typing(name: &str, option: &str, typed: &str) -> Invocation {
    let mut i = inv(name, &[(option, json!(typed))], alice());
    i.focused = Some(option.into());
    i
}

/// The message parts of a reply.
fn message(
    reply: &Reply,
) -> (
    &str,
    &[hanko::discord::cards::Card],
    bool,
    Option<&hanko::discord::commands::Attachment>,
) {
    match reply {
        Reply::Message {
            content,
            cards,
            ephemeral,
            attachment,
        } => (
            content.as_str(),
            cards.as_slice(),
            *ephemeral,
            attachment.as_ref(),
        ),
        Reply::Choices(c) => panic!("expected a message, got choices {c:?}"),
    }
}

fn choices(reply: &Reply) -> &[(String, String)] {
    match reply {
        Reply::Choices(c) => c,
        other => panic!("expected choices, got {other:?}"),
    }
}

/// A GuardDuty finding of hanko's account and region at 2026-11-28 16:00 UTC.
fn base_finding(id: &str, severity: f64) -> FindingBuilder {
    FindingBuilder::new(id)
        .account(ACCOUNT)
        .region(REGION)
        .finding_type("UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom")
        .severity(severity)
}

fn key_finding(id: &str, severity: f64, user: &str, key: &str) -> Finding {
    base_finding(id, severity).access_key(user, key).build()
}

fn instance_finding(id: &str, severity: f64, instance: &str) -> Finding {
    base_finding(id, severity)
        .instance(instance)
        .finding_type("Backdoor:EC2/C&CActivity.B")
        .build()
}

fn bucket_finding(id: &str, severity: f64, bucket: &str) -> Finding {
    base_finding(id, severity)
        .bucket(bucket)
        .finding_type("Exfiltration:S3/AnomalousBehavior")
        .build()
}

/// Stores a finding the way ingest does; returns its request, if one was proposed.
fn ingest(app: &App, f: &Finding) -> Option<Uuid> {
    pipeline::accept_in(app, f, Utc::now()).unwrap().proposed
}

fn approve(app: &App, request: Uuid, voter: &Invoker) -> Result<RequestState, Refusal> {
    let req = app.store.get_request(request).unwrap().unwrap();
    app.store
        .vote(
            &app.policy,
            request,
            &VoteInput {
                voter: Voter {
                    actor: voter.actor.clone(),
                    roles: voter.roles.clone(),
                },
                decision: Decision::Approve,
                plan_hash: req.plan.plan_hash,
            },
            Utc::now(),
        )
        .unwrap()
        .map(|d| d.request.state)
}

/// The `CommandInvoked` events, newest first.
fn invocations(app: &App) -> Vec<AuditEvent> {
    app.store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::CommandInvoked),
            ..Default::default()
        })
        .unwrap()
}

fn notices(rx: &mut broadcast::Receiver<Notice>) -> Vec<Notice> {
    let mut out = Vec::new();
    while let Ok(n) = rx.try_recv() {
        out.push(n);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// /findings

#[tokio::test]
async fn findings_are_filtered_and_sorted_by_severity_then_time() {
    let app = app().await;
    let mut low = key_finding("f-low", 2.0, "u1", "AKIAAAAAAAAAAAAAAAA1");
    low.finding_type = "Recon:IAMUser/TorIPCaller".into();
    let high_old = instance_finding("f-high-old", 8.5, "i-0123456789abcdef0");
    let mut high_new = key_finding("f-high-new", 8.5, "u2", "AKIAAAAAAAAAAAAAAAA2");
    high_new.last_seen = Some(Utc.with_ymd_and_hms(2026, 11, 28, 17, 0, 0).unwrap());
    let mut medium = bucket_finding("f-medium-sample", 5.0, "my-bucket");
    medium.sample = true;
    let other = base_finding("f-other", 6.0)
        .other_resource("EKSCluster")
        .finding_type("Execution:Kubernetes/ExecInKubeSystemPod")
        .build();
    for f in [&low, &high_old, &high_new, &medium, &other] {
        ingest(&app, f);
    }

    let reply = dispatch(&app, &inv("findings", &[], alice())).await;
    let (content, cards, ephemeral, attachment) = message(&reply);
    assert!(ephemeral);
    assert!(cards.is_empty() && attachment.is_none());
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(
        lines[0],
        "**5 of 5 findings** stored, highest severity first:"
    );
    let order: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.rsplit("id `").next().unwrap().trim_end_matches('`'))
        .collect();
    assert_eq!(
        order,
        [
            "f-high-new",
            "f-high-old",
            "f-other",
            "f-medium-sample",
            "f-low"
        ]
    );
    assert_eq!(
        lines[1],
        "**High 8.5** `UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom` · AccessKey `AKIAAAAAAAAAAAAAAAA2` of `u2` · `123456789012`/`us-east-1` · **Pending** · id `f-high-new`"
    );
    assert!(
        lines[3].contains("EKSCluster") && lines[3].contains("**notify only**"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("**Medium 5.0** **[SAMPLE]** "),
        "{}",
        lines[4]
    );
    assert!(lines[4].contains("S3Bucket `my-bucket`"));
    assert!(!lines[1].contains("[SAMPLE]"));

    let reply = dispatch(
        &app,
        &inv("findings", &[("min_severity", json!(5.5))], alice()),
    )
    .await;
    let content = message(&reply).0;
    assert!(
        content.starts_with("**3 of 3 findings** stored (severity ≥ 5.5)"),
        "{content}"
    );
    assert!(!content.contains("f-medium-sample") && !content.contains("f-low"));

    let reply = dispatch(
        &app,
        &inv("findings", &[("resource_type", json!("Instance"))], alice()),
    )
    .await;
    let content = message(&reply).0;
    assert_eq!(content.lines().count(), 2, "{content}");
    assert!(content.contains("Instance `i-0123456789abcdef0`"));

    let reply = dispatch(
        &app,
        &inv("findings", &[("resource_type", json!("Other"))], alice()),
    )
    .await;
    assert!(message(&reply).0.contains("f-other"));

    let reply = dispatch(&app, &inv("findings", &[("limit", json!(2))], alice())).await;
    let content = message(&reply).0;
    assert!(content.starts_with("**2 of 5 findings**"), "{content}");
    assert_eq!(content.lines().count(), 3);

    let reply = dispatch(
        &app,
        &inv("findings", &[("min_severity", json!(9.5))], alice()),
    )
    .await;
    assert_eq!(
        message(&reply).0,
        "No findings matching severity ≥ 9.5 stored."
    );

    let reply = dispatch(&app, &inv("findings", &[("limit", json!(51))], alice())).await;
    assert_eq!(
        message(&reply).0,
        "Cannot list findings: limit must be between 1 and 50, not 51."
    );
}

#[tokio::test]
async fn findings_default_to_ten_and_stay_within_one_message() {
    let app = app().await;
    for i in 0..60 {
        let mut f = key_finding(
            &format!("finding-{i:02}-{}", "x".repeat(60)),
            (i % 10) as f64,
            "u",
            "AKIAAAAAAAAAAAAAAAA1",
        );
        f.finding_type = format!("Recon:IAMUser/{}", "Y".repeat(70));
        app.store
            .upsert_finding(&f, &Actor::System, Utc::now())
            .unwrap();
    }
    let reply = dispatch(&app, &inv("findings", &[], alice())).await;
    let content = message(&reply).0;
    assert!(content.starts_with("**10 of 60 findings**"), "{content}");
    assert!(content.chars().count() <= MAX_CONTENT);
    let reply = dispatch(&app, &inv("findings", &[("limit", json!(50))], alice())).await;
    let content = message(&reply).0;
    assert!(content.chars().count() <= MAX_CONTENT);
    assert!(content.ends_with("lower limit"), "{content}");
    // Severity 9 first.
    assert!(content
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("**Critical 9.0**"));
}

// ---------------------------------------------------------------------------------------------
// /finding

#[tokio::test]
async fn finding_reposts_the_card_with_its_buttons() {
    let app = app().await;
    let f = key_finding("f-card", 8.0, "bob", "AKIAAAAAAAAAAAAAAAA1");
    let request = ingest(&app, &f).expect("a request");

    let reply = dispatch(&app, &inv("finding", &[("id", json!("f-card"))], mallory())).await;
    let (content, cards, ephemeral, _) = message(&reply);
    assert!(!ephemeral, "the card is for the channel");
    assert_eq!(content, "");
    assert_eq!(cards.len(), 1);
    let card = &cards[0];
    assert_eq!(
        card.title,
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"
    );
    let labels: Vec<&str> = card.buttons.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["Approve", "Reject", "Dry run"]);
    assert!(card.footer.contains(&request.simple().to_string()));
    let last = &invocations(&app)[0];
    assert_eq!(last.finding_id.as_deref(), Some("f-card"));
    assert_eq!(last.request_id, Some(request));

    // A notify-only finding gets the finding card, without buttons.
    let mut root = key_finding("f-root", 5.0, "root", "AKIAAAAAAAAAAAAAAAA2");
    root.resource.access_key.as_mut().unwrap().user_type = Some("Root".into());
    assert_eq!(ingest(&app, &root), None);
    let reply = dispatch(&app, &inv("finding", &[("id", json!("f-root"))], alice())).await;
    let cards = message(&reply).1;
    assert!(cards[0].buttons.is_empty());
    assert!(
        cards[0].footer.starts_with("finding f-root · plan "),
        "{}",
        cards[0].footer
    );

    let reply = dispatch(&app, &inv("finding", &[("id", json!("nope"))], alice())).await;
    let (content, cards, ephemeral, _) = message(&reply);
    assert!(ephemeral && cards.is_empty());
    assert_eq!(
        content,
        "No finding with id `nope` is stored; /findings lists the recent ones."
    );
}

#[tokio::test]
async fn finding_autocomplete_matches_id_and_type_prefixes() {
    let app = app().await;
    for i in 0..30 {
        let mut f = key_finding(&format!("abc{i:02}"), 5.0, "u", "AKIAAAAAAAAAAAAAAAA1");
        if i % 3 == 0 {
            f.finding_type = "Recon:IAMUser/TorIPCaller".into();
        }
        app.store
            .upsert_finding(&f, &Actor::System, Utc::now())
            .unwrap();
    }
    let mut sample = instance_finding("zz-sample", 5.0, "i-0123456789abcdef0");
    sample.sample = true;
    app.store
        .upsert_finding(&sample, &Actor::System, Utc::now())
        .unwrap();

    let all = dispatch(&app, &typing("finding", "id", "")).await;
    assert_eq!(choices(&all).len(), MAX_CHOICES);
    // Newest first.
    assert_eq!(choices(&all)[0].1, "zz-sample");
    assert!(
        choices(&all)[0]
            .0
            .starts_with("[SAMPLE] Medium 5.0 · Backdoor:EC2"),
        "{:?}",
        choices(&all)[0]
    );

    let by_id = dispatch(&app, &typing("finding", "id", "ABC1")).await;
    let values: BTreeSet<&str> = choices(&by_id).iter().map(|c| c.1.as_str()).collect();
    let want: BTreeSet<String> = (10..20).map(|i| format!("abc{i}")).collect();
    assert_eq!(values, want.iter().map(String::as_str).collect());

    let by_type = dispatch(&app, &typing("finding", "id", "toripc")).await;
    assert_eq!(choices(&by_type).len(), 10);
    assert!(choices(&by_type)
        .iter()
        .all(|c| c.0.contains("TorIPCaller")));

    let none = dispatch(&app, &typing("finding", "id", "qqq")).await;
    assert!(choices(&none).is_empty());
    // Autocomplete is not audited.
    assert!(invocations(&app).is_empty());
}

// ---------------------------------------------------------------------------------------------
// /contain

#[tokio::test]
async fn contain_of_an_access_key_proposes_deactivating_exactly_that_key() {
    let moto = moto::shared();
    let app = app_with(&config(""), Some(&moto)).await;
    let iam = moto.iam().await;
    iam.create_user().user_name("carol").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("carol")
        .send()
        .await
        .unwrap()
        .access_key()
        .unwrap()
        .access_key_id()
        .to_string();
    let other_key = iam
        .create_access_key()
        .user_name("carol")
        .send()
        .await
        .unwrap()
        .access_key()
        .unwrap()
        .access_key_id()
        .to_string();
    assert!(key.starts_with("AKIA"));
    let mut rx = app.notices.subscribe();

    let reply = dispatch(&app, &inv("contain", &[("target", json!(key))], alice())).await;
    let (content, _, ephemeral, _) = message(&reply);
    assert!(ephemeral);
    assert!(content.starts_with("Proposed request `"), "{content}");
    assert!(content.contains(&format!("access key {key}")));
    assert!(content.contains("`123456789012`/`us-east-1`"), "{content}");
    assert!(content.contains("responders other than you"), "{content}");

    let pending = app
        .store
        .requests_in_states(&[RequestState::Pending])
        .unwrap();
    assert_eq!(pending.len(), 1);
    let req = &pending[0];
    assert_eq!(req.kind, RequestKind::Contain);
    assert_eq!(req.proposer, alice().actor);
    assert!(content.contains(&req.id.simple().to_string()));
    assert!(req.finding_id.starts_with("manual-"));
    assert_eq!(req.plan.account_id, ACCOUNT);
    let deactivations: Vec<&Target> = req
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::DeactivateAccessKey)
        .map(|s| &s.target)
        .collect();
    assert_eq!(
        deactivations,
        [&Target::AccessKey {
            user_name: "carol".into(),
            access_key_id: key.clone(),
        }]
    );
    assert!(!serde_json::to_string(&req.plan)
        .unwrap()
        .contains(&other_key));

    let stored = app
        .store
        .get_finding(&req.finding_id)
        .unwrap()
        .unwrap()
        .finding;
    assert_eq!(stored.finding_type, "Manual:IAMUser/Containment");
    assert_eq!(
        notices(&mut rx),
        [Notice::FindingNew {
            finding_id: req.finding_id.clone(),
            request: Some(req.id)
        }]
    );
    let audited = &invocations(&app)[0];
    assert_eq!(audited.actor, alice().actor);
    assert_eq!(audited.request_id, Some(req.id));
    assert_eq!(audited.detail["outcome"], "done");
    assert_eq!(audited.detail["options"]["target"], json!(key));

    // The proposer cannot approve; someone else can.
    assert_eq!(approve(&app, req.id, &alice()), Err(Refusal::SelfApproval));
    assert_eq!(approve(&app, req.id, &bob()), Ok(RequestState::Approved));

    // A second /contain of the same key while the first is live is refused, naming it.
    let reply = dispatch(&app, &inv("contain", &[("target", json!(key))], bob())).await;
    let content = message(&reply).0;
    assert!(
        content.starts_with(&format!(
            "Request `{}` (Approved) already covers",
            req.id.simple()
        )),
        "{content}"
    );
    assert_eq!(app.store.finding_count(), 1);
}

#[tokio::test]
async fn contain_of_buckets_checks_they_exist() {
    let moto = moto::shared();
    let app = app_with(&config(""), Some(&moto)).await;
    moto.s3()
        .await
        .create_bucket()
        .bucket("evidence-locker")
        .send()
        .await
        .unwrap();

    let reply = dispatch(
        &app,
        &inv(
            "contain",
            &[
                ("target", json!("evidence-locker")),
                ("account", json!(ACCOUNT)),
            ],
            alice(),
        ),
    )
    .await;
    assert!(
        message(&reply).0.starts_with("Proposed request"),
        "{}",
        message(&reply).0
    );
    let req = &app
        .store
        .requests_in_states(&[RequestState::Pending])
        .unwrap()[0];
    assert_eq!(
        req.plan
            .steps
            .iter()
            .map(|s| (s.action, s.target.clone()))
            .collect::<Vec<_>>(),
        [(
            Action::BlockBucketPublicAccess,
            Target::Bucket {
                bucket: "evidence-locker".into()
            }
        )]
    );

    let reply = dispatch(
        &app,
        &inv(
            "contain",
            &[("target", json!("no-such-bucket-here"))],
            alice(),
        ),
    )
    .await;
    let content = message(&reply).0;
    assert!(
        content.starts_with("AWS does not know bucket no-such-bucket-here (s3:HeadBucket"),
        "{content}"
    );
    assert_eq!(invocations(&app)[0].detail["rule"], "target_not_found");
    assert_eq!(app.store.finding_count(), 1);

    let reply = dispatch(
        &app,
        &inv(
            "contain",
            &[("target", json!("i-0123456789abcdef0"))],
            alice(),
        ),
    )
    .await;
    let content = message(&reply).0;
    assert!(
        content
            .starts_with("AWS does not know instance i-0123456789abcdef0 (ec2:DescribeInstances"),
        "{content}"
    );
}

#[tokio::test]
async fn contain_refuses_non_responders_bad_targets_and_other_accounts() {
    let app = app_with(&config("accounts = [\"111111111111\"]"), None).await;
    let mut rx = app.notices.subscribe();

    let reply = dispatch(
        &app,
        &inv(
            "contain",
            &[("target", json!("AKIAIOSFODNN7EXAMPLE"))],
            mallory(),
        ),
    )
    .await;
    let (content, _, ephemeral, _) = message(&reply);
    assert!(ephemeral);
    assert_eq!(
        content,
        "Only responders may propose containment with /contain: you have none of the approver roles and are not an approver user (responders.approver_roles / responders.approver_users)."
    );
    let audited = &invocations(&app)[0];
    assert_eq!(audited.actor, mallory().actor);
    assert_eq!(audited.detail["command"], "contain");
    assert_eq!(audited.detail["outcome"], "refused");
    assert_eq!(
        audited.detail["rule"],
        "responders.approver_roles / responders.approver_users"
    );

    let reply = dispatch(
        &app,
        &inv("contain", &[("target", json!("i-0123abc"))], alice()),
    )
    .await;
    assert!(
        message(&reply)
            .0
            .starts_with("`i-0123abc` looks like an instance id but has 7 hexadecimal digits"),
        "{}",
        message(&reply).0
    );

    // A secret pasted by mistake is refused and never reaches the audit log.
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let reply = dispatch(&app, &inv("contain", &[("target", json!(secret))], alice())).await;
    assert!(message(&reply).0.contains("is not a target /contain knows"));
    assert_eq!(
        invocations(&app)[0].detail["options"]["target"],
        "<not a target form, 40 chars>"
    );
    let log: String = app
        .store
        .audit_events()
        .map(|e| serde_json::to_string(&e.unwrap()).unwrap())
        .collect();
    assert!(!log.contains(secret));

    let reply = dispatch(
        &app,
        &inv(
            "contain",
            &[
                ("target", json!("AKIAIOSFODNN7EXAMPLE")),
                ("account", json!(ACCOUNT)),
            ],
            alice(),
        ),
    )
    .await;
    assert_eq!(
        message(&reply).0,
        "hanko may not act in account `123456789012`: it is not listed in aws.accounts."
    );
    let reply = dispatch(
        &app,
        &inv(
            "contain",
            &[
                ("target", json!("AKIAIOSFODNN7EXAMPLE")),
                ("region", json!("ap-south-1")),
            ],
            alice(),
        ),
    )
    .await;
    assert_eq!(
        message(&reply).0,
        "hanko does not act in region `ap-south-1`: the configured regions (aws.regions) are us-east-1, eu-west-1."
    );

    assert_eq!(app.store.finding_count(), 0);
    assert!(app
        .store
        .requests_in_states(&RequestState::ALL)
        .unwrap()
        .is_empty());
    assert!(notices(&mut rx).is_empty());
    assert_eq!(invocations(&app).len(), 5);
}

// ---------------------------------------------------------------------------------------------
// /audit

#[tokio::test]
async fn audit_shows_a_requests_events_and_attaches_jsonl_when_many() {
    let app = app().await;
    let request = ingest(
        &app,
        &key_finding("f-audit", 8.0, "bob", "AKIAAAAAAAAAAAAAAAA1"),
    )
    .unwrap();
    assert_eq!(approve(&app, request, &bob()), Ok(RequestState::Approved));
    ingest(
        &app,
        &key_finding("f-other", 8.0, "eve", "AKIAAAAAAAAAAAAAAAA2"),
    );

    // By request id (from a card's footer), through the `finding` option.
    let reply = dispatch(
        &app,
        &inv(
            "audit",
            &[("finding", json!(request.simple().to_string()))],
            alice(),
        ),
    )
    .await;
    let (content, _, ephemeral, attachment) = message(&reply);
    assert!(ephemeral);
    assert!(attachment.is_none());
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "**2 audit events** (request `{}`), newest first:",
            request.simple()
        )
    );
    assert!(
        lines[1].contains("**ApprovalGranted** bob · finding `f-audit`"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("**RequestProposed** system · finding `f-audit`"),
        "{}",
        lines[2]
    );
    let short = &request.simple().to_string()[..8];
    assert!(lines[1].ends_with(&format!("request `{short}`")));

    // By finding: the ingest event too.
    let reply = dispatch(
        &app,
        &inv("audit", &[("finding", json!("f-audit"))], alice()),
    )
    .await;
    let content = message(&reply).0;
    assert!(
        content.starts_with("**3 audit events** (finding `f-audit`)"),
        "{content}"
    );
    assert!(content.contains("**FindingIngested**"));

    // By actor and kind.
    let reply = dispatch(
        &app,
        &inv(
            "audit",
            &[
                ("actor", json!("<@1002>")),
                ("action", json!("ApprovalGranted")),
            ],
            alice(),
        ),
    )
    .await;
    assert!(
        message(&reply)
            .0
            .starts_with("**1 audit events** (actor `1002`, action ApprovalGranted)"),
        "{}",
        message(&reply).0
    );

    // Many events: 20 lines shown, every event attached.
    for i in 0..40 {
        ingest(
            &app,
            &key_finding(&format!("bulk-{i}"), 5.0, "u", "AKIAAAAAAAAAAAAAAAA3"),
        );
    }
    let before = app.store.audit_len() as usize;
    let reply = dispatch(&app, &inv("audit", &[], alice())).await;
    let (content, _, _, attachment) = message(&reply);
    assert!(
        content.starts_with(&format!("**{before} audit events**, newest first:")),
        "{content}"
    );
    assert_eq!(content.lines().filter(|l| l.starts_with("`#")).count(), 20);
    assert!(
        content.ends_with(&format!("All {before} are attached as `audit.jsonl`.")),
        "{content}"
    );
    assert!(content.chars().count() <= MAX_CONTENT);
    let attachment = attachment.expect("a jsonl attachment");
    assert_eq!(attachment.filename, "audit.jsonl");
    let events: Vec<AuditEvent> = String::from_utf8(attachment.bytes.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), before);
    assert_eq!(events[0].seq as usize, before);
    assert_eq!(events.last().unwrap().seq, 1);

    // A limit too large for one message: what fits is shown, all attached.
    let reply = dispatch(&app, &inv("audit", &[("limit", json!(1000))], alice())).await;
    let (content, _, _, attachment) = message(&reply);
    assert!(content.chars().count() <= MAX_CONTENT);
    assert!(content.contains("more not shown"), "{content}");
    assert!(attachment.is_some());

    // A few events fit: no attachment.
    let reply = dispatch(
        &app,
        &inv(
            "audit",
            &[("limit", json!(3)), ("action", json!("ApprovalGranted"))],
            alice(),
        ),
    )
    .await;
    assert!(message(&reply).3.is_none());

    let reply = dispatch(
        &app,
        &inv("audit", &[("since", json!("yesterday"))], alice()),
    )
    .await;
    assert!(
        message(&reply)
            .0
            .starts_with("Cannot search the audit log: since: "),
        "{}",
        message(&reply).0
    );
}

// ---------------------------------------------------------------------------------------------
// /revert

#[tokio::test]
async fn revert_of_an_executed_request_proposes_a_revert_needing_someone_else() {
    let moto = moto::shared();
    let app = app_with(&config(""), Some(&moto)).await;
    let iam = moto.iam().await;
    iam.create_user().user_name("dave").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("dave")
        .send()
        .await
        .unwrap()
        .access_key()
        .unwrap()
        .access_key_id()
        .to_string();
    let request = ingest(&app, &key_finding("f-leak", 8.0, "dave", &key)).unwrap();
    assert_eq!(approve(&app, request, &bob()), Ok(RequestState::Approved));
    let report = app.engine.execute(request).await.unwrap();
    assert_eq!(report.state, RequestState::Succeeded);
    let status = iam
        .list_access_keys()
        .user_name("dave")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.access_key_metadata()[0].status().unwrap().as_str(),
        "Inactive"
    );

    // Autocomplete offers it.
    let offered = dispatch(
        &app,
        &typing("revert", "request", &request.simple().to_string()[..6]),
    )
    .await;
    assert_eq!(choices(&offered).len(), 1);
    assert_eq!(choices(&offered)[0].1, request.simple().to_string());
    assert!(choices(&offered)[0]
        .0
        .starts_with("Succeeded · UnauthorizedAccess:IAMUser"));

    // Not by a non-responder.
    let reply = dispatch(
        &app,
        &inv(
            "revert",
            &[("request", json!(request.to_string()))],
            mallory(),
        ),
    )
    .await;
    assert!(message(&reply)
        .0
        .starts_with("Only responders may propose a revert"));

    let mut rx = app.notices.subscribe();
    let reply = dispatch(
        &app,
        &inv(
            "revert",
            &[("request", json!(request.simple().to_string()))],
            alice(),
        ),
    )
    .await;
    let (content, _, ephemeral, _) = message(&reply);
    assert!(ephemeral);
    assert!(
        content.contains("needs 1 approval(s) by someone other than you"),
        "{content}"
    );
    assert!(content.contains("re-enables an access key"), "{content}");

    let reverts: Vec<_> = app
        .store
        .requests_for_finding("f-leak")
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Revert { of: request })
        .collect();
    assert_eq!(reverts.len(), 1);
    let revert = &reverts[0];
    assert_eq!(revert.state, RequestState::Pending);
    assert_eq!(revert.proposer, alice().actor);
    assert!(content.contains(&revert.id.simple().to_string()));
    // One notice for a revert, whoever proposes it (button or /revert): the outbox posts the
    // card of a request a person proposed on RequestChanged, a posture group's revert included.
    assert_eq!(
        notices(&mut rx),
        [Notice::RequestChanged { request: revert.id }]
    );
    let proposed = app
        .store
        .query_audit(&AuditQuery {
            request_id: Some(revert.id),
            kind: Some(EventKind::RevertProposed),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(proposed.len(), 1);
    assert_eq!(
        approve(&app, revert.id, &alice()),
        Err(Refusal::SelfApproval)
    );

    // A second revert while one is open is refused.
    let reply = dispatch(
        &app,
        &inv("revert", &[("request", json!(request.to_string()))], bob()),
    )
    .await;
    assert_eq!(
        message(&reply).0,
        format!(
            "Revert request `{}` (Pending) is already open for it; /finding id:f-leak shows its card.",
            revert.id.simple()
        )
    );
    // A pending request is not revertible.
    let pending = ingest(&app, &key_finding("f-pending", 8.0, "dave", &key)).unwrap();
    let reply = dispatch(
        &app,
        &inv("revert", &[("request", json!(pending.to_string()))], bob()),
    )
    .await;
    assert_eq!(
        message(&reply).0,
        format!(
            "Request `{}` cannot be reverted: it is Pending, not executed.",
            pending.simple()
        )
    );
    let reply = dispatch(
        &app,
        &inv("revert", &[("request", json!("not-a-uuid"))], bob()),
    )
    .await;
    assert!(message(&reply)
        .0
        .starts_with("`not-a-uuid` is not a request id"));
}

// ---------------------------------------------------------------------------------------------
// /status, /pause, /resume

#[tokio::test]
async fn status_reports_pause_counts_and_ingest_lag() {
    let app = app_with(&config("\n[ingest]\nguardduty = true\nsqs_queue_url = \"https://sqs.us-east-1.amazonaws.com/123456789012/q\"\n"), None).await;
    ingest(&app, &key_finding("s-1", 8.0, "a", "AKIAAAAAAAAAAAAAAAA1"));
    ingest(&app, &key_finding("s-2", 8.0, "b", "AKIAAAAAAAAAAAAAAAA2"));
    let two_hours_ago = Utc::now() - Duration::hours(2) - Duration::seconds(1);
    // Written the way the ingest loops write it: 4 failures, a success two hours ago, then 3
    // more failures. Failures since the last success are shown; the lifetime count (7) is not.
    let gd = "guardduty:us-east-1";
    for _ in 0..4 {
        app.store
            .record_source_failure(gd, "throttled", two_hours_ago)
            .unwrap();
    }
    app.store.record_source_ok(gd, two_hours_ago).unwrap();
    for _ in 0..3 {
        app.store
            .record_source_failure(gd, "throttled", two_hours_ago)
            .unwrap();
    }
    let status = app.store.source_status(gd, Utc::now()).unwrap();
    assert_eq!((status.errors, status.errors_since_ok), (7, 3));
    app.store
        .record_source_ok("sqs", Utc::now() - Duration::seconds(5))
        .unwrap();
    app.store.put_cursor("sqs", "opaque").unwrap();

    let audit_len = app.store.audit_len();
    let reply = dispatch(&app, &inv("status", &[], mallory())).await;
    let (content, _, ephemeral, _) = message(&reply);
    assert!(ephemeral);
    let lines: Vec<&str> = content.lines().collect();
    assert!(
        lines[0].starts_with(&format!("**hanko {}** · up ", env!("CARGO_PKG_VERSION"))),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "▶️ Execution is running: approved requests run at once."
    );
    assert_eq!(
        lines[2],
        "Requests: **2** pending approval, **0** approved and waiting to run, **0** executing."
    );
    assert_eq!(
        lines[3],
        format!("Store: 2 findings, {audit_len} audit events (sled).")
    );
    assert_eq!(lines[4], "Ingest:");
    assert!(
        lines[5].starts_with("⚠️ `guardduty:us-east-1` lag 2h 0m (last success <t:"),
        "{}",
        lines[5]
    );
    assert!(
        lines[5].ends_with(", 3 failure(s) since; no cursor yet)"),
        "{}",
        lines[5]
    );
    assert!(
        lines[6].starts_with("⚠️ `guardduty:eu-west-1` no successful poll yet"),
        "{}",
        lines[6]
    );
    assert!(
        lines[7].starts_with("✅ `sqs` lag 5s") || lines[7].starts_with("✅ `sqs` lag 6s"),
        "{}",
        lines[7]
    );
    assert!(lines[7].ends_with("; cursor saved)"));
    // Last: the request nobody has answered for longest (both are pending with no vote).
    assert!(
        lines[8].starts_with("Oldest unanswered: request `") && lines[8].contains("with no vote"),
        "{}",
        lines[8]
    );

    dispatch(
        &app,
        &inv(
            "pause",
            &[("reason", json!("moving the detectors"))],
            admin(),
        ),
    )
    .await;
    let reply = dispatch(&app, &inv("status", &[], alice())).await;
    let paused = message(&reply).0.lines().nth(1).unwrap().to_string();
    assert!(paused.starts_with("⏸️ **Execution is PAUSED**"), "{paused}");
    assert!(paused.contains("Paused by dana <t:"));
    assert!(paused.ends_with(": moving the detectors."), "{paused}");
}

#[tokio::test]
async fn pause_by_a_non_admin_is_refused_and_audited() {
    let app = app().await;
    let reply = dispatch(&app, &inv("pause", &[("reason", json!("x"))], bob())).await;
    let (content, _, ephemeral, _) = message(&reply);
    assert!(ephemeral);
    assert_eq!(
        content,
        "Only members of an admin role may /pause: you have none of the roles in responders.admin_roles."
    );
    assert!(!app.engine.is_paused().unwrap());
    let audited = &invocations(&app)[0];
    assert_eq!(audited.actor, bob().actor);
    assert_eq!(audited.detail["command"], "pause");
    assert_eq!(audited.detail["outcome"], "refused");
    assert_eq!(audited.detail["rule"], "responders.admin_roles");
    assert_eq!(audited.detail["options"]["reason"], "x");
    let reply = dispatch(&app, &inv("resume", &[], mallory())).await;
    assert!(message(&reply)
        .0
        .starts_with("Only members of an admin role may /resume"));

    // No admin role configured: nobody, whatever their roles.
    let text = config("").replace(
        &format!("admin_roles = [\"{ADMIN_ROLE}\"]"),
        "admin_roles = []",
    );
    let closed = app_with(&text, None).await;
    let reply = dispatch(&closed, &inv("pause", &[], admin())).await;
    assert_eq!(
        message(&reply).0,
        "Nobody may /pause from Discord: no admin role is configured (responders.admin_roles is empty)."
    );
    assert!(!closed.engine.is_paused().unwrap());
}

#[tokio::test]
async fn pause_then_resume_toggles_execution() {
    let app = app().await;
    let reply = dispatch(
        &app,
        &inv(
            "pause",
            &[("reason", json!("**drill** @everyone"))],
            admin(),
        ),
    )
    .await;
    let (content, _, ephemeral, _) = message(&reply);
    assert!(!ephemeral, "the channel must know execution is paused");
    assert!(
        content.starts_with("⏸️ Execution paused by dana"),
        "{content}"
    );
    assert!(
        content.ends_with("Reason: \\*\\*drill\\*\\* \\@everyone"),
        "{content}"
    );
    assert!(app.engine.is_paused().unwrap());
    let paused = app
        .store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::ExecutionPaused),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].actor, admin().actor);
    assert_eq!(paused[0].detail["reason"], "**drill** @everyone");

    let reply = dispatch(&app, &inv("pause", &[], admin())).await;
    assert!(message(&reply).0.starts_with("Execution is already paused"));

    let mut notices = app.notices.subscribe();
    let reply = dispatch(&app, &inv("resume", &[], admin())).await;
    assert_eq!(
        message(&reply).0,
        "▶️ Execution resumed by dana: approved requests run again (0 waiting)."
    );
    assert!(!app.engine.is_paused().unwrap());
    // `hanko run` starts the approved requests on this notice.
    assert_eq!(
        notices.try_recv().unwrap(),
        hanko::notices::Notice::ExecutionResumed
    );
    let reply = dispatch(&app, &inv("resume", &[], admin())).await;
    assert_eq!(
        message(&reply).0,
        "Execution is not paused; nothing changed."
    );
    let outcomes: Vec<(String, String)> = invocations(&app)
        .iter()
        .rev()
        .map(|e| {
            (
                e.detail["command"].as_str().unwrap().to_string(),
                e.detail["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("pause".to_string(), "done".to_string()),
            ("pause".into(), "done".into()),
            ("resume".into(), "done".into()),
            ("resume".into(), "done".into())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// dispatch

#[tokio::test]
async fn an_unknown_command_is_answered_politely_and_audited() {
    let app = app().await;
    let reply = dispatch(&app, &inv("frobnicate", &[("x", json!(1))], alice())).await;
    let (content, cards, ephemeral, _) = message(&reply);
    assert!(ephemeral && cards.is_empty());
    assert_eq!(
        content,
        "Sorry, hanko does not know the command `/frobnicate`. It knows /findings, /finding, /contain, /audit, /revert, /status, /pause, /resume, /score, /suppressions."
    );
    let audited = &invocations(&app)[0];
    assert_eq!(audited.detail["command"], "frobnicate");
    assert_eq!(audited.detail["rule"], "unknown_command");
    let mut typing_unknown = inv("frobnicate", &[], alice());
    typing_unknown.focused = Some("x".into());
    assert_eq!(
        dispatch(&app, &typing_unknown).await,
        Reply::Choices(vec![])
    );
}

#[tokio::test]
async fn every_command_definition_has_a_handler_and_vice_versa() {
    let defs = load_definitions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("commands")).unwrap();
    let defined: BTreeSet<String> = defs.iter().map(|(n, _)| n.clone()).collect();
    let handled: BTreeSet<String> = Command::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(defined, handled);

    let app = app().await;
    for (name, def) in &defs {
        // Dispatch reaches a handler, not the Unknown answer (mallory triggers no AWS call).
        let reply = dispatch(&app, &inv(name, &[], mallory())).await;
        assert!(
            !reply.content().contains("does not know the command"),
            "/{name}: {reply:?}"
        );
        // Every option with autocomplete gets choices back.
        for opt in def["options"].as_array().into_iter().flatten() {
            if opt["autocomplete"] == true {
                let reply = dispatch(&app, &typing(name, opt["name"].as_str().unwrap(), "")).await;
                assert!(
                    matches!(reply, Reply::Choices(_)),
                    "/{name} {}",
                    opt["name"]
                );
            }
        }
    }
    assert_eq!(invocations(&app).len(), defs.len());
}
