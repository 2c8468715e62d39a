//! hanko acts only where it may (issue 11, item 3): in its own account (proved by
//! `sts:GetCallerIdentity`, answered by moto with its default account 123456789012) or one
//! reached through `aws.role_arn_template`, and only inside `aws.accounts` and `aws.regions`.
//!
//! The real app (serenity against the Discord fake, the outbox, the engine) and the real
//! `hanko` binary, against moto through the real aws-sdk clients. Each case is checked where it
//! can go wrong: the card (notify-only, no Approve), the vote (refused, audited), the engine (a
//! plan stored before the rule refused it: every step fails before any AWS call, audited) and
//! AWS itself (the same-named user of hanko's own account keeps its key).

use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::fixtures;
use crate::support::moto;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_iam::types::StatusType;
use discord_fake::{FakeMessage, MessageSource};
use hanko::approval::{Decision, Request, RequestKind, RequestState, VoteInput, Voter};
use hanko::audit::{Actor, AuditQuery, EventKind};
use hanko::aws::{ClientFactory, ErrorClass};
use hanko::execution::StepOutcome;
use hanko::finding::{self, Finding};
use hanko::notices::Notice;
use hanko::playbooks::Playbooks;
use serde_json::{json, Value};
use uuid::Uuid;

use e2e_bot::*;

const FIXTURE: &str = "api/UnauthorizedAccess_IAMUser_TorIPCaller.json";
const OTHER_ACCOUNT: &str = "999999999999";

/// The GuardDuty fixture of a long-term key used from Tor, for `user`'s key `key_id`, in
/// `account` and `region`.
fn key_finding(id: &str, account: &str, region: &str, key_id: &str, user: &str) -> Finding {
    let mut doc: Value = serde_json::from_str(
        &fixtures::read(FIXTURE)
            .replace("GeneratedFindingAccessKeyId", key_id)
            .replace("GeneratedFindingUserName", user),
    )
    .unwrap();
    doc["id"] = json!(id);
    doc["accountId"] = json!(account);
    doc["region"] = json!(region);
    doc["service"]["archived"] = json!(false);
    doc["arn"] = json!(format!(
        "arn:aws:guardduty:{region}:{account}:detector/37da5a0204286ccd967d2395320d4dcd/finding/{id}"
    ));
    let mut findings = finding::parse_document(&doc.to_string()).unwrap();
    assert_eq!(findings.len(), 1);
    findings.remove(0)
}

/// The card posted for the finding `id` (a notify-only finding gets a finding card).
async fn finding_card(bot: &Bot, id: &str) -> FakeMessage {
    bot.fake
        .wait_for_message(
            |m| m.source == MessageSource::ChannelPost && m.embed_text().contains(id),
            WAIT,
        )
        .await
        .unwrap()
}

/// Stores a request for the finding's unrestricted plan, as a store written before the config
/// changed would hold it, and has the outbox post its card.
fn store_unrestricted_request(bot: &Bot, f: &Finding) -> Uuid {
    let app = bot.app();
    let plan = hanko::plan::plan(f, &Playbooks::defaults());
    assert!(!plan.steps.is_empty(), "{:?}", plan.notes);
    let now = app.clock.now();
    let request = Request::new(
        RequestKind::Contain,
        plan,
        Actor::System,
        now,
        app.policy.ttl,
    );
    app.store.create_request(&request, now).unwrap();
    app.notices.send(Notice::FindingNew {
        finding_id: f.id.clone(),
        request: Some(request.id),
    });
    request.id
}

/// Approve on the request's card as alice: refused with `code`, audited, nothing recorded.
async fn approve_click_is_refused(bot: &Bot, request: Uuid, code: &str, says: &str) {
    let fake = &bot.fake;
    let card = wait_for_card(fake, request).await;
    let approve = card
        .custom_id_of("Approve")
        .expect("a stored request's card");
    let click = fake.inject_button(&approve, card.id, &alice());
    let answer = wait_for_followup(fake, &click).await;
    assert!(answer.is_ephemeral());
    assert!(
        answer.content.starts_with("Vote refused: "),
        "{}",
        answer.content
    );
    assert!(answer.content.contains(says), "{}", answer.content);
    let store = &bot.app().store;
    let refused = store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::VoteRefused),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].detail["code"], code);
    assert_eq!(refused[0].actor.display_name(), "alice");
    let req = store.get_request(request).unwrap().unwrap();
    assert_eq!(req.state, RequestState::Pending);
    assert!(req.votes.is_empty());
}

/// Two CLI operators approve `request` in the store (no vote-time check there), then the engine
/// runs it: it must refuse every step before any AWS call, saying `says`, audited.
async fn engine_refuses_the_approved_request(bot: &Bot, request: Uuid, says: &str) {
    let app = bot.app();
    for name in ["ops-1", "ops-2"] {
        let vote = VoteInput {
            voter: Voter {
                actor: Actor::Cli { name: name.into() },
                roles: vec![],
            },
            decision: Decision::Approve,
            plan_hash: app
                .store
                .get_request(request)
                .unwrap()
                .unwrap()
                .plan
                .plan_hash,
        };
        app.store
            .vote(&app.policy, request, &vote, app.clock.now())
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        app.store.get_request(request).unwrap().unwrap().state,
        RequestState::Approved
    );
    let report = app.engine.execute(request).await.unwrap();
    assert_eq!(report.state, RequestState::Failed, "{report:?}");
    let records = app.store.step_records(request).unwrap();
    assert_eq!(records.len(), report.steps.len());
    for r in &records {
        assert_eq!(r.outcome, Some(StepOutcome::Failed), "{r:?}");
    }
    for s in &report.steps {
        let message = s.message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with(hanko::planner::REFUSED_PREFIX) && message.contains(says),
            "{message}"
        );
    }
    let failed = app
        .store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::StepFailed),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(failed.len(), records.len());
    assert!(
        failed[0].detail.to_string().contains(says),
        "{:?}",
        failed[0].detail
    );
    // Nothing was captured: no call was made, read or write.
    let captured = app
        .store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::StepCaptured),
            ..AuditQuery::default()
        })
        .unwrap();
    assert!(captured.is_empty(), "{captured:?}");
}

async fn key_status(iam: &aws_sdk_iam::Client, user: &str, key: &str) -> StatusType {
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    keys.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .and_then(|k| k.status().cloned())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_finding_without_a_role_is_notify_only_and_its_stored_plan_is_refused() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    // erin of hanko's own account (moto's 123456789012), same name as the finding's user.
    iam.create_user().user_name("erin").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("erin")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();

    let clients = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
    let bot = Bot::start(2, clients.clone()).await;
    assert_eq!(clients.proven_own_account().as_deref(), Some(OWN_ACCOUNT));

    // Plan time: notify-only, the card says why and what to set, and has no Approve.
    let f = key_finding(
        "acct-other-erin",
        OTHER_ACCOUNT,
        "us-east-1",
        &key_id,
        "erin",
    );
    assert_eq!(bot.accept(&f), None, "nothing is proposed");
    let card = finding_card(&bot, &f.id).await;
    // The card escapes Markdown (`role\_arn\_template`); read it as a person does.
    let text = card.embed_text().replace("\\_", "_");
    assert!(
        text.contains("hanko has no role in account 999999999999; set aws.role_arn_template"),
        "{text}"
    );
    assert!(
        card.custom_id_of("Approve").is_none(),
        "{:?}",
        card.button_labels()
    );
    assert!(bot
        .app()
        .store
        .requests_for_finding(&f.id)
        .unwrap()
        .is_empty());

    // The client factory itself refuses the account (fail closed), before any AWS call.
    let refused = clients
        .clients(OTHER_ACCOUNT, "us-east-1")
        .await
        .unwrap_err();
    assert_eq!(refused.class, ErrorClass::Forbidden);
    assert!(
        refused.message.contains("no role in account 999999999999"),
        "{refused}"
    );

    // A plan stored before the rule (as an older hanko would have): the vote is refused...
    let request = store_unrestricted_request(&bot, &f);
    approve_click_is_refused(
        &bot,
        request,
        "no_role_in_account",
        "no role in account 999999999999",
    )
    .await;
    // ...and, approved anyway in the store, the engine refuses it.
    engine_refuses_the_approved_request(&bot, request, "no role in account 999999999999").await;

    // The same-named user of hanko's own account keeps its key.
    assert_eq!(key_status(&iam, "erin", &key_id).await, StatusType::Active);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_aws_regions_or_aws_accounts_is_notify_only_the_vote_and_the_engine_refuse() {
    // A role template reaches every account; the allow-lists still bind it.
    let bot = Bot::start_configured(2, unreachable_aws(), |_| {}, |text| {
        text.replace(
            "regions = [\"us-east-1\", \"us-east-2\"]",
            "regions = [\"us-east-1\", \"us-east-2\"]\naccounts = [\"123456789012\"]\nrole_arn_template = \"arn:aws:iam::{account}:role/HankoResponder\"",
        )
    })
    .await;

    let cases = [
        (
            key_finding(
                "acct-region",
                OWN_ACCOUNT,
                "eu-west-1",
                "AKIAREGIONOUTSIDE001",
                "erin",
            ),
            "aws.regions",
            "region eu-west-1 is not in aws.regions",
        ),
        (
            key_finding(
                "acct-account",
                "111111111111",
                "us-east-1",
                "AKIAACCOUNTOUTSIDE01",
                "erin",
            ),
            "aws.accounts",
            "account 111111111111 is not in aws.accounts",
        ),
    ];
    for (f, code, says) in &cases {
        assert_eq!(bot.accept(f), None, "{code}: nothing is proposed");
        let card = finding_card(&bot, &f.id).await;
        assert!(card.embed_text().contains(says), "{}", card.embed_text());
        assert!(
            card.custom_id_of("Approve").is_none(),
            "{:?}",
            card.button_labels()
        );

        let request = store_unrestricted_request(&bot, f);
        approve_click_is_refused(&bot, request, code, says).await;
        engine_refuses_the_approved_request(&bot, request, says).await;
    }

    // Inside both lists, through the template: planned with steps (the control case).
    let inside = key_finding(
        "acct-inside",
        OWN_ACCOUNT,
        "us-east-2",
        "AKIAINSIDEALLOWED001",
        "erin",
    );
    assert!(bot.accept(&inside).is_some());
    bot.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The CLI: `hanko drill --config` and `hanko revert --config`
// ---------------------------------------------------------------------------------------------

/// A config for the CLI: two approvals for `contain`, `aws.accounts` moto's account only, and
/// `regions`.
fn cli_config(dir: &Path, regions: &str) -> PathBuf {
    std::fs::write(dir.join("token"), "unused-by-the-cli").unwrap();
    let path = dir.join("hanko.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[discord]
token_file = "token"
guild_id = "123456789012345678"
channel_id = "223456789012345678"

[responders]
approver_roles = ["323456789012345678"]

[policy]
approvals = {{ evidence = 1, contain = 2, disrupt = 2 }}

[aws]
regions = [{regions}]
accounts = ["{OWN_ACCOUNT}"]

[store]
path = "store"
"#
        ),
    )
    .unwrap();
    path
}

fn hanko(moto: &moto::Moto, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hanko"))
        .args(args)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("HANKO_FAILPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_str::<Value>(&stdout)
        .ok()
        .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
        .unwrap_or(Value::Null);
    (out.status.code(), report, format!("{stdout}\n{stderr}"))
}

fn finding_file(dir: &Path, f: &Finding, name: &str) -> PathBuf {
    // The CLI reads GuardDuty API documents; rebuild one from the fixture with f's fields.
    let key = f.resource.access_key.as_ref().unwrap();
    let mut doc: Value = serde_json::from_str(
        &fixtures::read(FIXTURE)
            .replace(
                "GeneratedFindingAccessKeyId",
                key.access_key_id.as_deref().unwrap(),
            )
            .replace(
                "GeneratedFindingUserName",
                key.user_name.as_deref().unwrap(),
            ),
    )
    .unwrap();
    doc["id"] = json!(f.id);
    doc["accountId"] = json!(f.account_id);
    doc["region"] = json!(f.region);
    doc["service"]["archived"] = json!(false);
    let path = dir.join(name);
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_and_revert_with_config_use_its_allow_lists_and_policy() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    iam.create_user().user_name("esme").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("esme")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), "\"us-east-1\"");
    let config = config.to_str().unwrap();

    // A region outside the config's aws.regions: nothing runs, exit 1, the note says why.
    let outside = finding_file(
        dir.path(),
        &key_finding("drill-outside", OWN_ACCOUNT, "us-east-2", &key_id, "esme"),
        "outside.json",
    );
    let (code, report, out) = hanko(
        &moto,
        &[
            "drill",
            outside.to_str().unwrap(),
            "--config",
            config,
            "--approve-as",
            "a",
            "--approve-as",
            "b",
            "--json",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(report["state"], "NotifyOnly", "{out}");
    assert_eq!(report["refused"], "aws.regions", "{out}");
    assert!(
        report["notes"]
            .to_string()
            .contains("region us-east-2 is not in aws.regions"),
        "{out}"
    );
    assert_eq!(key_status(&iam, "esme", &key_id).await, StatusType::Active);

    // Another account, no config: the reach rule alone refuses it (no role template).
    let other = finding_file(
        dir.path(),
        &key_finding("drill-other", OTHER_ACCOUNT, "us-east-1", &key_id, "esme"),
        "other.json",
    );
    let db = dir.path().join("plain-db");
    let (code, report, out) = hanko(
        &moto,
        &[
            "drill",
            other.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--approve-as",
            "a",
            "--json",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(report["refused"], "no_role_in_account", "{out}");
    assert_eq!(key_status(&iam, "esme", &key_id).await, StatusType::Active);

    // Inside: the config's policy applies (contain needs two distinct approvers).
    let inside = finding_file(
        dir.path(),
        &key_finding("drill-inside", OWN_ACCOUNT, "us-east-1", &key_id, "esme"),
        "inside.json",
    );
    let (code, report, out) = hanko(
        &moto,
        &[
            "drill",
            inside.to_str().unwrap(),
            "--config",
            config,
            "--approve-as",
            "a",
            "--json",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        report["state"], "Pending",
        "one approver is not enough under the config: {out}"
    );
    assert_eq!(key_status(&iam, "esme", &key_id).await, StatusType::Active);
    let (code, report, out) = hanko(
        &moto,
        &[
            "drill",
            inside.to_str().unwrap(),
            "--config",
            config,
            "--approve-as",
            "a",
            "--approve-as",
            "b",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["state"], "Succeeded", "{out}");
    assert_eq!(
        key_status(&iam, "esme", &key_id).await,
        StatusType::Inactive
    );
    let executed = report["request_id"].as_str().unwrap().to_string();
    // The store is the config's store.path.
    assert!(dir.path().join("store").is_dir());

    // revert --config: a config whose aws.regions no longer holds the region refuses it...
    let narrowed = tempfile::tempdir().unwrap();
    std::fs::write(
        narrowed.path().join("hanko.toml"),
        std::fs::read_to_string(config)
            .unwrap()
            .replace("regions = [\"us-east-1\"]", "regions = [\"eu-west-1\"]")
            .replace(
                "token_file = \"token\"",
                &format!("token_file = \"{}\"", dir.path().join("token").display()),
            )
            .replace(
                "path = \"store\"",
                &format!("path = \"{}\"", dir.path().join("store").display()),
            ),
    )
    .unwrap();
    let narrowed_config = narrowed.path().join("hanko.toml");
    let (code, report, out) = hanko(
        &moto,
        &[
            "revert",
            &executed,
            "--config",
            narrowed_config.to_str().unwrap(),
            "--approve-as",
            "c",
            "--approve-as",
            "d",
            "--json",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(report["refused"], "aws.regions", "{out}");
    assert_eq!(
        key_status(&iam, "esme", &key_id).await,
        StatusType::Inactive
    );
    // ...and the config that allows it runs it under its policy (two approvers).
    let (code, report, out) = hanko(
        &moto,
        &[
            "revert",
            &executed,
            "--config",
            config,
            "--approve-as",
            "c",
            "--approve-as",
            "d",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["state"], "Succeeded", "{out}");
    assert_eq!(key_status(&iam, "esme", &key_id).await, StatusType::Active);
}

/// `hanko resume --config` holds an approval to the config's policy, as `hanko run` does: a
/// request approved by one operator (enough under the default policy) is not run under a config
/// that asks for two; it is closed as Expired and the key stays active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_config_holds_approvals_to_its_policy() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    iam.create_user().user_name("enid").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("enid")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    let dir = tempfile::tempdir().unwrap();
    // contain = 2 in the config.
    let config = cli_config(dir.path(), "\"us-east-1\"");
    let request = {
        let store = hanko::store::Store::open(&dir.path().join("store")).unwrap();
        let f = key_finding("resume-policy", OWN_ACCOUNT, "us-east-1", &key_id, "enid");
        let plan = hanko::plan::plan(&f, &Playbooks::defaults());
        assert!(!plan.is_notify_only());
        store
            .upsert_finding(&f, &Actor::System, chrono::Utc::now())
            .unwrap();
        let lax = hanko::approval::Policy::default();
        let id = hanko::pipeline::propose(
            &store,
            &lax,
            plan.clone(),
            Actor::Cli {
                name: "proposer".into(),
            },
            chrono::Utc::now(),
        )
        .unwrap();
        let vote = VoteInput {
            voter: Voter {
                actor: Actor::Cli { name: "a".into() },
                roles: Vec::new(),
            },
            decision: Decision::Approve,
            plan_hash: plan.plan_hash.clone(),
        };
        let decided = store
            .vote(&lax, id, &vote, chrono::Utc::now())
            .unwrap()
            .unwrap();
        assert_eq!(decided.request.state, RequestState::Approved);
        store.flush().unwrap();
        id
    };
    let (code, report, out) = hanko(
        &moto,
        &["resume", "--config", config.to_str().unwrap(), "--json"],
    );
    assert_eq!(code, Some(1), "a refused request is not a success: {out}");
    assert_eq!(report["state"], "Expired", "{out}");
    assert!(
        report["error"].to_string().contains("1 of the 2 needed"),
        "{out}"
    );
    assert_eq!(key_status(&iam, "enid", &key_id).await, StatusType::Active);
    let store = hanko::store::Store::open(&dir.path().join("store")).unwrap();
    let closed = store.get_request(request).unwrap().unwrap();
    assert_eq!(closed.state, RequestState::Expired, "{out}");
}
