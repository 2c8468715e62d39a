//! Paging and escalation, end to end: the real bot (serenity, the outbox) against the Discord
//! fake, with `[notify]` set and time moved through the app's clock (`app.clock.shift`).
//!
//! * A card at or above `notify.page_at` mentions exactly the page roles in its content, and its
//!   `allowed_mentions` names exactly those roles with an empty `parse`; a Medium card does not
//!   page; an edit never pages again; inside quiet hours only `quiet.below` and up page.
//! * A Pending request with no vote gets one reminder (a reply to its card, mentioning the
//!   escalation roles) after `escalate_after`, and one at half its time to live; each once,
//!   audited; a restart neither repeats a sent reminder nor loses one claimed before a crash.

use crate::support::e2e_bot;
use crate::support::finding_builder::FindingBuilder;

use std::time::Duration;

use chrono::Utc;
use hanko::approval::{Request, RequestKind};
use hanko::audit::{Actor, AuditQuery, EventKind, NewEvent};
use hanko::finding::Finding;
use hanko::store::{CardKey, CardLocation, Store};
use serde_json::{json, Value};
use uuid::Uuid;

use e2e_bot::*;

const PAGE_ROLE: &str = "1180000000000000700";
const ESCALATE_ROLE: &str = "1180000000000000800";

/// `[notify]` appended to the test bot's config.
fn with_notify(extra: &str) -> impl FnOnce(String) -> String + '_ {
    move |text| {
        format!("{text}\n[notify]\npage_roles = [\"{PAGE_ROLE}\"]\npage_at = \"high\"\n{extra}\n")
    }
}

fn finding(id: &str, score: f64, key: &str) -> Finding {
    FindingBuilder::new(id)
        .access_key("alice", key)
        .finding_type("UnauthorizedAccess:IAMUser/TorIPCaller")
        .severity(score)
        .build()
}

/// Feeds a finding as an ingest loop does, at the app's (shifted) time.
fn ingest(bot: &Bot, f: &Finding) -> Option<Uuid> {
    let app = bot.app();
    hanko::pipeline::accept_in(app, f, app.clock.now())
        .unwrap()
        .proposed
}

/// The body of the POST that created message `id`.
fn create_body(bot: &Bot, id: u64) -> Value {
    let message = bot.fake.message(id).expect("the message exists");
    bot.fake
        .requests_matching("POST", "/channels/*/messages")
        .into_iter()
        .filter_map(|r| r.body)
        .find(|b| b["embeds"] == json!(message.embeds) || b["content"] == json!(message.content))
        .unwrap_or_else(|| panic!("no POST for message {id}"))
}

fn roles_of(body: &Value) -> Vec<String> {
    body["allowed_mentions"]["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r.as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Replies posted to message `card`.
fn replies_to(bot: &Bot, card: u64) -> Vec<Value> {
    bot.fake
        .requests_matching("POST", "/channels/*/messages")
        .into_iter()
        .filter_map(|r| r.body)
        .filter(|b| b["message_reference"]["message_id"].as_str() == Some(&card.to_string()))
        .collect()
}

fn escalations(bot: &Bot, request: Uuid) -> Vec<hanko::audit::AuditEvent> {
    bot.app()
        .store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::RequestEscalated),
            ..AuditQuery::default()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_card_pages_exactly_the_page_roles_a_medium_one_does_not_and_edits_never_do() {
    // Quiet hours two to four hours from now (UTC), so a shift of three hours is inside them.
    let now = Utc::now();
    let hm = |h: i64| {
        (now + chrono::Duration::hours(h))
            .format("%H:%M")
            .to_string()
    };
    let quiet = format!(
        "quiet = {{ from = \"{}\", to = \"{}\", below = \"critical\" }}",
        hm(2),
        hm(4)
    );
    let bot = Bot::start_with_config(1, unreachable_aws(), with_notify(&quiet)).await;
    let fake = &bot.fake;

    // High: pages, with the headline after the mention.
    let high = finding("notify-high", 8.0, "AKIAHIGH000000000001");
    let request = ingest(&bot, &high).expect("a request");
    let card = wait_for_card(fake, request).await;
    assert!(
        card.content
            .starts_with(&format!("<@&{PAGE_ROLE}> High · ")),
        "{}",
        card.content
    );
    assert!(
        card.content
            .contains("used from a Tor exit node; plan: deactivate the access key"),
        "{}",
        card.content
    );
    let body = create_body(&bot, card.id);
    assert_eq!(roles_of(&body), [PAGE_ROLE]);
    assert_eq!(body["allowed_mentions"]["parse"], json!([]));
    assert_eq!(body["allowed_mentions"]["users"], json!([]));

    // Medium: a card, no page.
    let medium = finding("notify-medium", 5.0, "AKIAMEDIUM0000000001");
    let medium_request = ingest(&bot, &medium).expect("a request");
    let medium_card = wait_for_card(fake, medium_request).await;
    assert_eq!(medium_card.content, "");
    let body = create_body(&bot, medium_card.id);
    assert!(roles_of(&body).is_empty(), "{body}");

    // The High finding recurs: its card is edited, and the edit pings nobody.
    let mut again = high.clone();
    again.count = 2;
    again.updated_at = Some(bot.app().clock.now());
    ingest(&bot, &again);
    fake.wait_for_message(|m| m.id == card.id && m.edits > 0, WAIT)
        .await
        .unwrap();
    for edit in fake.requests_matching("PATCH", &format!("/channels/*/messages/{}", card.id)) {
        let body = edit.body.unwrap_or_default();
        assert!(roles_of(&body).is_empty(), "an edit names no role: {body}");
        assert!(body.get("content").is_none_or(|c| c.is_null()), "{body}");
    }
    assert!(
        fake.message(card.id)
            .unwrap()
            .content
            .starts_with(&format!("<@&{PAGE_ROLE}>")),
        "the page line stays as it was"
    );

    // Quiet hours: a High card does not page, a Critical one does.
    bot.app().clock.shift(chrono::Duration::hours(3));
    let night_high = finding("notify-night-high", 8.5, "AKIANIGHTHIGH0000001");
    let night_high_card = wait_for_card(fake, ingest(&bot, &night_high).unwrap()).await;
    assert_eq!(night_high_card.content, "");
    assert!(roles_of(&create_body(&bot, night_high_card.id)).is_empty());
    let night_critical = finding("notify-night-critical", 9.5, "AKIANIGHTCRIT0000001");
    let critical_card = wait_for_card(fake, ingest(&bot, &night_critical).unwrap()).await;
    assert!(
        critical_card
            .content
            .starts_with(&format!("<@&{PAGE_ROLE}> Critical · ")),
        "{}",
        critical_card.content
    );
    assert_eq!(roles_of(&create_body(&bot, critical_card.id)), [PAGE_ROLE]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_is_escalated_once_after_escalate_after_and_once_at_half_its_ttl() {
    // Two approvals: a request with one vote is answered, yet still Pending.
    let bot = Bot::start_full(
        2,
        unreachable_aws(),
        |_| {},
        with_notify(&format!(
            "escalate_after = \"10m\"\nescalate_roles = [\"{ESCALATE_ROLE}\"]"
        )),
        |options| options.sweep_interval = Duration::from_millis(100),
    )
    .await;
    let fake = &bot.fake;
    let app = bot.app();

    let f = finding("escalate-1", 8.0, "AKIAESCALATE00000001");
    let request = ingest(&bot, &f).expect("a request");
    let card = wait_for_card(fake, request).await;
    let voted = ingest(
        &bot,
        &finding("escalate-voted", 8.0, "AKIAESCALATE00000002"),
    )
    .unwrap();
    let voted_card = wait_for_card(fake, voted).await;
    let approve = voted_card.custom_id_of("Approve").unwrap();
    let click = fake.inject_button(&approve, voted_card.id, &alice());
    wait_for_original_edit(fake, &click).await;

    // Nothing before escalate_after: several sweeps pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(replies_to(&bot, card.id).is_empty());

    app.clock.shift(chrono::Duration::minutes(11));
    eventually("the first reminder", || {
        replies_to(&bot, card.id).len() == 1
    })
    .await;
    let reply = &replies_to(&bot, card.id)[0];
    let content = reply["content"].as_str().unwrap_or_default();
    assert!(
        content.starts_with(&format!("<@&{ESCALATE_ROLE}> ⏰ Waiting 11m")),
        "{content}"
    );
    assert!(content.contains("with no vote: **High** · "), "{content}");
    assert!(
        content.contains("plan: deactivate the access key"),
        "{content}"
    );
    assert!(content.contains("expires <t:"), "{content}");
    assert_eq!(roles_of(reply), [ESCALATE_ROLE]);
    assert_eq!(reply["allowed_mentions"]["parse"], json!([]));
    // The reminder is audited right after Discord accepted it: the fake may show the post first.
    eventually("the first reminder's audit event", || {
        escalations(&bot, request).len() == 1
    })
    .await;

    // Several more sweeps: not again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replies_to(&bot, card.id).len(), 1);

    // Half the time to live (4h): the second reminder, once.
    app.clock.shift(chrono::Duration::minutes(110));
    eventually("the second reminder", || {
        replies_to(&bot, card.id).len() == 2
    })
    .await;
    let second = replies_to(&bot, card.id)[1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        second.contains("Half the time to approve is gone"),
        "{second}"
    );
    assert!(second.contains("0/2 approvals"), "{second}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replies_to(&bot, card.id).len(), 2);
    let audited = escalations(&bot, request);
    assert_eq!(audited.len(), 2);
    let mut numbers: Vec<u64> = audited
        .iter()
        .filter_map(|e| e.detail["reminder"].as_u64())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2]);
    for e in &audited {
        assert_eq!(e.detail["roles"], json!([ESCALATE_ROLE]), "{}", e.detail);
        assert_eq!(e.detail["severity"], "High");
    }
    // The answered request: no "no vote" reminder, but the half-time one (it still waits).
    eventually("the answered request's half-time reminder", || {
        replies_to(&bot, voted_card.id).len() == 1
    })
    .await;
    let voted_reply = replies_to(&bot, voted_card.id)[0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(voted_reply.contains("1/2 approvals"), "{voted_reply}");

    // /status names the oldest request nobody answered.
    let status = fake.inject_slash_command("status", json!({}), &alice());
    let answer = command_answer(fake, &status).await;
    assert!(
        answer.contains(&format!(
            "Oldest unanswered: request `{}`",
            request.simple()
        )),
        "{answer}"
    );
    assert!(bot.app().store.verify_audit().is_ok());
    bot.stop().await;
}

/// A request as a previous run left it: Pending, proposed `ago` before now, its card posted as
/// message `card`.
fn pending_request(store: &Store, f: &Finding, ago: chrono::Duration, card: u64) -> Uuid {
    store.upsert_finding(f, &Actor::System, Utc::now()).unwrap();
    let plan = hanko::planner::plan(
        f,
        &hanko::playbooks::Playbooks::defaults(),
        &own_account_scope(),
    );
    let request = Request::new(
        RequestKind::Contain,
        plan,
        Actor::System,
        Utc::now() - ago,
        chrono::Duration::hours(4),
    );
    store.create_request(&request, Utc::now()).unwrap();
    store
        .put_card_location(&CardKey::Request(request.id), CardLocation::Message(card))
        .unwrap();
    request.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_never_repeats_a_sent_reminder_and_sends_one_claimed_before_a_crash() {
    let mut sent = Uuid::nil();
    let mut crashed = Uuid::nil();
    let bot = Bot::start_full(
        1,
        unreachable_aws(),
        |store| {
            // Both reminders of `sent` went out before the restart.
            let a = finding("restart-sent", 8.0, "AKIARESTART000000001");
            sent = pending_request(store, &a, chrono::Duration::minutes(150), 900_001);
            for n in [1, 2] {
                assert!(store.claim_reminder(sent, n).unwrap());
                store
                    .record_reminder_sent(
                        sent,
                        n,
                        NewEvent::new(Utc::now(), Actor::System, EventKind::RequestEscalated)
                            .request(sent),
                    )
                    .unwrap();
            }
            // The first reminder of `crashed` was claimed, then the process died.
            let b = finding("restart-crashed", 8.0, "AKIARESTART000000002");
            crashed = pending_request(store, &b, chrono::Duration::minutes(20), 900_002);
            assert!(store.claim_reminder(crashed, 1).unwrap());
        },
        with_notify(""),
        |options| options.sweep_interval = Duration::from_millis(100),
    )
    .await;

    eventually("the reminder claimed before the crash", || {
        replies_to(&bot, 900_002).len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(replies_to(&bot, 900_002).len(), 1, "once");
    assert!(
        replies_to(&bot, 900_001).is_empty(),
        "sent before the restart: not again"
    );
    assert_eq!(escalations(&bot, sent).len(), 2);
    assert_eq!(escalations(&bot, crashed).len(), 1);
    // With no escalate_roles, the reminder mentions the page roles.
    let reply = &replies_to(&bot, 900_002)[0];
    assert_eq!(roles_of(reply), [PAGE_ROLE]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_roles_to_mention_nothing_pages_and_no_reminder_is_posted() {
    let bot = Bot::start_full(
        1,
        unreachable_aws(),
        |_| {},
        |text| text,
        |options| options.sweep_interval = Duration::from_millis(100),
    )
    .await;
    let f = finding("no-roles-1", 9.5, "AKIANOROLES000000001");
    let request = ingest(&bot, &f).expect("a request");
    let card = wait_for_card(&bot.fake, request).await;
    assert_eq!(
        card.content, "",
        "a Critical card pages nobody without page_roles"
    );
    bot.app().clock.shift(chrono::Duration::hours(3));
    // Many sweeps pass, past both reminders' times.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(replies_to(&bot, card.id).is_empty());
    assert!(escalations(&bot, request).is_empty());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_finding_folded_into_an_open_digest_pages_with_a_reply_to_it() {
    let bot = Bot::start_with_config(1, unreachable_aws(), with_notify("")).await;
    let fake = &bot.fake;
    // A burst of Medium findings: four cards of their own, the rest folded into a digest
    // (the outbox's budget is five posts a window); nothing pages.
    for n in 0..8 {
        ingest(
            &bot,
            &finding(
                &format!("burst-medium-{n}"),
                5.0,
                &format!("AKIABURSTMEDIUM0000{n}"),
            ),
        );
    }
    let digest = fake
        .wait_for_message(|m| m.embed_text().contains("burst-medium-7"), WAIT)
        .await
        .expect("the digest");
    assert!(digest.custom_ids().is_empty(), "the digest has no buttons");
    // While the digest is open, a Critical finding arrives and is folded into it: the edit
    // pings nobody, so a reply to the digest pages.
    ingest(
        &bot,
        &finding("burst-critical", 9.5, "AKIABURSTCRITICAL001"),
    );
    eventually("the page for the folded Critical", || {
        replies_to(&bot, digest.id).iter().any(|b| {
            b["content"]
                .as_str()
                .is_some_and(|c| c.starts_with(&format!("<@&{PAGE_ROLE}> Critical · ")))
        })
    })
    .await;
    let page = replies_to(&bot, digest.id)
        .into_iter()
        .find(|b| {
            b["content"]
                .as_str()
                .is_some_and(|c| c.contains("Critical"))
        })
        .unwrap();
    assert_eq!(roles_of(&page), [PAGE_ROLE]);
    assert_eq!(page["allowed_mentions"]["parse"], json!([]));
    bot.stop().await;
}
