//! The life of a request after its card is posted, end to end: the real bot (serenity, the
//! outbox, the engine, the request lifecycle task of `hanko run`) against the Discord fake, and
//! moto for AWS.
//!
//! * A Pending request past its TTL is expired by the sweeper (audited), its card loses the
//!   voting buttons and says so; `/contain` on the same target and a recurrence of the finding
//!   may then propose again.
//! * `/pause`, two approvals, `/resume`: the request runs without a restart.
//! * Approved while paused, then its finding is archived through ingest: `/resume` does not
//!   run it; it is Superseded and its card says so.
//! * Approved while paused, then the approval outlives `policy.request_ttl`: the engine's
//!   pre-flight refuses it; it is Expired and its card says why.
//!
//! Time moves through the app's clock (`app.clock.shift`), which every part of hanko reads.
//! Every wait is on an effect with a deadline; nothing sleeps to synchronise.

use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::fixtures;
use crate::support::moto;

use std::time::Duration;

use aws_sdk_iam::types::StatusType;
use discord_fake::{DiscordFake, FakeMember, FakeMessage};
use hanko::approval::RequestState;
use hanko::audit::{AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use hanko::finding::{self, Finding};
use hanko::pipeline;
use serde_json::{json, Value};
use uuid::Uuid;

use e2e_bot::*;

const FIXTURE: &str = "api/UnauthorizedAccess_IAMUser_TorIPCaller.json";
/// moto's account: the one hanko's own credentials are in.
const ACCOUNT: &str = "123456789012";

/// An admin (may `/pause` and `/resume`) who is also a responder.
fn dana() -> FakeMember {
    FakeMember::new(
        1_180_000_000_000_001_004,
        "dana",
        &[ADMIN_ROLE, RESPONDER_ROLE],
    )
}

/// The leaked-key fixture for `key_id` of `user` in moto's account.
fn leaked_key_finding(finding_id: &str, key_id: &str, user: &str) -> Finding {
    let text = fixtures::read(FIXTURE)
        .replace("GeneratedFindingAccessKeyId", key_id)
        .replace("GeneratedFindingUserName", user);
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["id"] = json!(finding_id);
    doc["accountId"] = json!(ACCOUNT);
    doc["arn"] = json!(format!(
        "arn:aws:guardduty:us-east-2:{ACCOUNT}:detector/37da5a0204286ccd967d2395320d4dcd/finding/{finding_id}"
    ));
    let mut findings = finding::parse_document(&doc.to_string()).unwrap();
    assert_eq!(findings.len(), 1);
    findings.remove(0)
}

/// A moto IAM user with one access key; returns (moto, clients, key id).
async fn user_with_key(user: &str) -> (moto::Shared, ClientFactory, String) {
    let moto = moto::shared();
    let iam = moto.iam().await;
    iam.create_user().user_name(user).send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    let clients = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
    (moto, clients, key_id)
}

async fn key_status(moto: &moto::Moto, user: &str, key_id: &str) -> StatusType {
    let keys = moto
        .iam()
        .await
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap();
    keys.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key_id))
        .and_then(|k| k.status())
        .cloned()
        .unwrap_or_else(|| panic!("no key {key_id} for {user}"))
}

/// Feeds a finding as an ingest loop does, at the app's (shifted) time.
fn ingest(bot: &Bot, f: &Finding) -> pipeline::Accepted {
    let app = bot.app();
    pipeline::accept_in(app, f, app.clock.now()).unwrap()
}

/// A bot whose expiry sweep runs every 100 ms instead of every minute.
async fn start(contain_approvals: u32, clients: ClientFactory) -> Bot {
    Bot::start_with(
        contain_approvals,
        clients,
        |_| {},
        |options| options.sweep_interval = Duration::from_millis(100),
    )
    .await
}

fn state_of(bot: &Bot, request: Uuid) -> RequestState {
    bot.app().store.get_request(request).unwrap().unwrap().state
}

fn events(bot: &Bot, request: Uuid, kind: EventKind) -> Vec<hanko::audit::AuditEvent> {
    bot.app()
        .store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(kind),
            ..AuditQuery::default()
        })
        .unwrap()
}

/// The channel card `id` once `check` holds for it.
async fn card_when(
    fake: &DiscordFake,
    id: u64,
    check: impl Fn(&FakeMessage) -> bool,
) -> FakeMessage {
    fake.wait_for_message(|m| m.id == id && check(m), WAIT)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "card {id}: {e}; now {:?}",
                fake.message(id).map(|m| m.embed_text())
            )
        })
}

/// Runs a slash command and returns its answer.
async fn command(fake: &DiscordFake, name: &str, options: Value, who: &FakeMember) -> String {
    let cmd = fake.inject_slash_command(name, options, who);
    command_answer(fake, &cmd).await
}

/// Pauses, then approves `request` on its card with alice and bob; returns the card.
async fn pause_and_approve_twice(bot: &Bot, request: Uuid) -> FakeMessage {
    let answer = command(&bot.fake, "pause", json!({ "reason": "drill" }), &dana()).await;
    assert!(
        answer.starts_with("⏸️ Execution paused by dana"),
        "{answer}"
    );
    approve_twice_while_paused(bot, request).await
}

/// Approves `request` on its card with alice and bob while paused; returns the card.
async fn approve_twice_while_paused(bot: &Bot, request: Uuid) -> FakeMessage {
    let fake = &bot.fake;
    let card = wait_for_card(fake, request).await;
    let approve = card.custom_id_of("Approve").unwrap();
    let first = fake.inject_button(&approve, card.id, &alice());
    wait_for_original_edit(fake, &first).await;
    let second = fake.inject_button(&approve, card.id, &bob());
    wait_for_original_edit(fake, &second).await;
    // The clicker is told the approval waits for /resume, which is now true.
    let told = wait_for_followup(fake, &second).await;
    assert!(told.is_ephemeral());
    assert!(
        told.content
            .contains("execution is paused; /resume starts it again"),
        "{}",
        told.content
    );
    assert_eq!(state_of(bot, request), RequestState::Approved);
    card
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_request_past_its_ttl_is_expired_by_the_sweeper_and_its_target_may_be_proposed_again(
) {
    let (moto, clients, key_id) = user_with_key("lapsed").await;
    let bot = start(2, clients).await;
    let fake = &bot.fake;
    let app = bot.app();

    let f = leaked_key_finding("e2e-expiry-1", &key_id, "lapsed");
    let request = ingest(&bot, &f).proposed.expect("a request is proposed");
    let card = wait_for_card(fake, request).await;
    assert_eq!(card.button_labels(), ["Approve", "Reject", "Dry run"]);
    // One vote of the two needed.
    let approve = card.custom_id_of("Approve").unwrap();
    let vote = fake.inject_button(&approve, card.id, &alice());
    wait_for_original_edit(fake, &vote).await;

    // While it is live, /contain on the same key is refused: the request already covers it.
    let answer = command(fake, "contain", json!({ "target": key_id }), &bob()).await;
    assert!(answer.contains("already covers"), "{answer}");

    // The TTL (4h) passes: the sweeper expires it, audited, and the card loses its buttons.
    app.clock
        .shift(chrono::Duration::hours(4) + chrono::Duration::minutes(1));
    let expired = card_when(fake, card.id, |m| {
        m.button_labels().is_empty() && m.embed_text().contains("Expired unapproved")
    })
    .await;
    let text = expired.embed_text();
    assert!(text.contains("1/2 approvals"), "{text}");
    assert!(text.contains("Nothing was changed."), "{text}");
    assert!(expired.custom_ids().is_empty(), "no button at all is left");
    let req = app.store.get_request(request).unwrap().unwrap();
    assert_eq!(req.state, RequestState::Expired);
    let decided = req.decided_at.expect("when it expired");
    assert!(decided >= req.expires_at, "expired at or after expires_at");
    assert!(
        text.contains(&format!("<t:{}:f>", decided.timestamp())),
        "the card says when: {text}"
    );
    let audited = events(&bot, request, EventKind::RequestExpired);
    assert_eq!(audited.len(), 1, "one RequestExpired event");
    assert_eq!(audited[0].actor, hanko::audit::Actor::System);
    assert_eq!(audited[0].detail["code"], "ttl_elapsed");

    // A late vote on the old card is refused and changes nothing.
    let late = fake.inject_button(&approve, card.id, &bob());
    let refused = wait_for_followup(fake, &late).await;
    assert!(refused.is_ephemeral());
    assert_eq!(state_of(&bot, request), RequestState::Expired);

    // /contain on the same key is accepted now.
    let answer = command(fake, "contain", json!({ "target": key_id }), &bob()).await;
    assert!(answer.starts_with("Proposed request"), "{answer}");
    let by_hand = app
        .store
        .requests_in_states(&[RequestState::Pending])
        .unwrap()
        .into_iter()
        .find(|r| r.proposer.display_name() == "bob")
        .expect("bob's /contain request is pending");
    wait_for_card(fake, by_hand.id).await;

    // The finding recurs (higher count, newer updatedAt): a fresh request, with its own card.
    let mut again = f.clone();
    again.count += 3;
    again.updated_at = Some(app.clock.now());
    again.last_seen = again.updated_at;
    let accepted = ingest(&bot, &again);
    let fresh = accepted
        .proposed
        .expect("a recurrence after expiry proposes again");
    assert_ne!(fresh, request);
    let fresh_card = wait_for_card(fake, fresh).await;
    assert_eq!(fresh_card.button_labels(), ["Approve", "Reject", "Dry run"]);
    assert_eq!(state_of(&bot, fresh), RequestState::Pending);
    assert_eq!(
        key_status(&moto, "lapsed", &key_id).await,
        StatusType::Active,
        "nothing ran"
    );
    assert!(app.store.verify_audit().is_ok());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_two_approvals_then_resume_runs_it_without_a_restart() {
    let (moto, clients, key_id) = user_with_key("paused").await;
    let bot = start(2, clients).await;
    let fake = &bot.fake;

    let request = ingest(&bot, &leaked_key_finding("e2e-resume-1", &key_id, "paused"))
        .proposed
        .unwrap();
    let card = pause_and_approve_twice(&bot, request).await;
    assert_eq!(
        key_status(&moto, "paused", &key_id).await,
        StatusType::Active
    );

    let answer = command(fake, "resume", json!({}), &dana()).await;
    assert!(
        answer.starts_with("▶️ Execution resumed by dana"),
        "{answer}"
    );
    assert!(answer.contains("(1 waiting)"), "{answer}");

    // The same process runs it: no restart.
    eventually("the approved request to run after /resume", || {
        state_of(&bot, request).is_final()
    })
    .await;
    assert_eq!(
        state_of(&bot, request),
        RequestState::Succeeded,
        "{:?}",
        bot.app().store.step_records(request)
    );
    assert_eq!(
        key_status(&moto, "paused", &key_id).await,
        StatusType::Inactive
    );
    assert_eq!(events(&bot, request, EventKind::ExecutionStarted).len(), 1);
    let done = card_when(fake, card.id, |m| m.button_labels() == ["Revert"]).await;
    assert!(
        done.embed_text().contains("Contained"),
        "{}",
        done.embed_text()
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_whose_finding_is_archived_before_resume_is_superseded_not_run() {
    let (moto, clients, key_id) = user_with_key("archived").await;
    let bot = start(2, clients).await;
    let fake = &bot.fake;

    let f = leaked_key_finding("e2e-archived-1", &key_id, "archived");
    let request = ingest(&bot, &f).proposed.unwrap();
    let card = pause_and_approve_twice(&bot, request).await;

    // GuardDuty archives the finding; ingest stores it so.
    let mut archived = f.clone();
    archived.archived = true;
    archived.updated_at = Some(bot.app().clock.now());
    let accepted = ingest(&bot, &archived);
    assert_eq!(accepted.superseded, vec![request]);
    assert_eq!(accepted.proposed, None);
    assert_eq!(state_of(&bot, request), RequestState::Superseded);
    let superseded = events(&bot, request, EventKind::RequestSuperseded);
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0].detail["code"], "finding_archived");

    let shown = card_when(fake, card.id, |m| m.embed_text().contains("Superseded")).await;
    let text = shown.embed_text();
    assert!(text.contains("archived"), "{text}");
    assert!(shown.button_labels().is_empty(), "{text}");

    // Another request, approved while still paused, shows that /resume runs what is approved
    // and only that.
    let iam = moto.iam().await;
    iam.create_user()
        .user_name("bystander")
        .send()
        .await
        .unwrap();
    let other_key = iam
        .create_access_key()
        .user_name("bystander")
        .send()
        .await
        .unwrap();
    let other_key = other_key.access_key().unwrap().access_key_id().to_string();
    let other = ingest(
        &bot,
        &leaked_key_finding("e2e-archived-2", &other_key, "bystander"),
    )
    .proposed
    .unwrap();
    approve_twice_while_paused(&bot, other).await;

    let answer = command(fake, "resume", json!({}), &dana()).await;
    assert!(answer.contains("(1 waiting)"), "{answer}");
    eventually("the other approved request to run after /resume", || {
        state_of(&bot, other).is_final()
    })
    .await;
    assert_eq!(state_of(&bot, other), RequestState::Succeeded);
    assert_eq!(
        key_status(&moto, "bystander", &other_key).await,
        StatusType::Inactive
    );

    // The superseded one never ran: no execution event, no step, the key stays Active.
    assert_eq!(state_of(&bot, request), RequestState::Superseded);
    assert!(events(&bot, request, EventKind::ExecutionStarted).is_empty());
    assert!(bot.app().store.step_records(request).unwrap().is_empty());
    assert_eq!(
        key_status(&moto, "archived", &key_id).await,
        StatusType::Active
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_older_than_the_ttl_is_refused_by_the_engine_on_resume() {
    let (moto, clients, key_id) = user_with_key("stale").await;
    let bot = start(2, clients).await;
    let fake = &bot.fake;

    let request = ingest(&bot, &leaked_key_finding("e2e-stale-1", &key_id, "stale"))
        .proposed
        .unwrap();
    let card = pause_and_approve_twice(&bot, request).await;

    // Five hours later (the TTL is 4h): the sweeper leaves an Approved request alone ...
    bot.app().clock.shift(chrono::Duration::hours(5));
    let command_answer = command(fake, "resume", json!({}), &dana()).await;
    assert!(command_answer.contains("(1 waiting)"), "{command_answer}");

    // ... and the engine's pre-flight refuses it: Expired, audited, nothing ran.
    eventually("the pre-flight to close the request", || {
        state_of(&bot, request) == RequestState::Expired
    })
    .await;
    let req = bot.app().store.get_request(request).unwrap().unwrap();
    let closure = req.closure.expect("the reason is on the request");
    assert_eq!(closure.code, "approval_too_old");
    let audited = events(&bot, request, EventKind::RequestExpired);
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].detail["code"], "approval_too_old");
    assert!(events(&bot, request, EventKind::ExecutionStarted).is_empty());
    assert!(bot.app().store.step_records(request).unwrap().is_empty());
    assert_eq!(
        key_status(&moto, "stale", &key_id).await,
        StatusType::Active
    );

    let shown = card_when(fake, card.id, |m| m.embed_text().contains("before it ran")).await;
    let text = shown.embed_text();
    assert!(text.contains("Expired"), "{text}");
    assert!(text.contains("is older than policy.request"), "{text}");
    assert!(shown.button_labels().is_empty(), "{text}");
    bot.stop().await;
}
