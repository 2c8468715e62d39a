//! End to end: the real bot (serenity 0.12, the outbox, the engine, `/healthz`) against the
//! Discord fake of `tests/support/discord_fake.rs`, and moto where AWS is involved.
//!
//! Each test starts hanko in-process with [`hanko::run::start`] around a fresh store (the
//! SIGTERM test runs the binary). Findings are fed with `pipeline::accept` on the running app's
//! store, as an ingest loop would. Every wait is on an effect (a recorded REST call, a stored
//! message, a store change) with a deadline; nothing sleeps to synchronise.

use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::fixtures;
use crate::support::hanko_process;
use crate::support::moto;

use std::time::{Duration, Instant};

use chrono::Utc;
use discord_fake::{
    DiscordFake, FakeMessage, MessageSource, Origin, CALLBACK_DEFERRED_UPDATE, CALLBACK_MODAL,
    EPHEMERAL,
};
use hanko::approval::RequestState;
use hanko::audit::{AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use hanko::discord::custom_id::{ButtonAction, ButtonId, REJECT_REASON_INPUT};
use hanko::finding::{self, Finding};
use hanko::pipeline;
use hanko::playbooks::Playbooks;
use hanko::store::{CardKey, CardLocation, Store};
use serde_json::{json, Value};
use uuid::Uuid;

use e2e_bot::*;
use hanko_process::{hanko_run, HankoProcess};

const FIXTURE: &str = "api/UnauthorizedAccess_IAMUser_TorIPCaller.json";

/// The leaked-key fixture with its placeholders replaced: a real key id and user name, and a
/// distinct finding id.
pub(crate) fn leaked_key_finding(finding_id: &str, key_id: &str, user: &str) -> Finding {
    let text = fixtures::read(FIXTURE)
        .replace("GeneratedFindingAccessKeyId", key_id)
        .replace("GeneratedFindingUserName", user);
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["id"] = json!(finding_id);
    // hanko's own account (moto's default): hanko acts only where it proved it is.
    doc["accountId"] = json!(OWN_ACCOUNT);
    doc["arn"] = json!(format!(
        "arn:aws:guardduty:us-east-2:{OWN_ACCOUNT}:detector/37da5a0204286ccd967d2395320d4dcd/finding/{finding_id}"
    ));
    let mut findings = finding::parse_document(&doc.to_string()).unwrap();
    assert_eq!(findings.len(), 1);
    findings.remove(0)
}

fn refused(store: &Store, request: Uuid) -> Vec<hanko::audit::AuditEvent> {
    store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::VoteRefused),
            ..AuditQuery::default()
        })
        .unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_becomes_one_card_with_three_buttons_and_the_plan() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;

    // READY registered every command of commands/*.json in the guild (bulk overwrite).
    fake.wait_for_request(
        |r| r.matches("PUT", "/applications/*/guilds/*/commands") && r.status == 200,
        WAIT,
    )
    .await
    .unwrap();
    let registered: Vec<String> = fake
        .commands(Some(fake.guild_id()))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = hanko::command_defs::load_definitions(&commands_dir())
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    expected.sort();
    let mut got = registered.clone();
    got.sort();
    assert_eq!(got, expected);

    let finding = leaked_key_finding("e2e-card-1", "AKIAE2ECARDEXAMPLE01", "leaky");
    let request = bot.accept(&finding).expect("a request is proposed");
    let card = wait_for_card(fake, request).await;

    assert_eq!(card.button_labels(), ["Approve", "Reject", "Dry run"]);
    let ids: Vec<ButtonId> = card
        .custom_ids()
        .iter()
        .map(|id| ButtonId::parse(id).unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.request_id == request));
    assert_eq!(
        ids.iter().map(|id| id.action).collect::<Vec<_>>(),
        [
            ButtonAction::Approve,
            ButtonAction::Reject,
            ButtonAction::DryRun
        ]
    );
    let text = card.embed_text();
    assert!(
        text.contains("UnauthorizedAccess:IAMUser/TorIPCaller"),
        "{text}"
    );
    assert!(text.contains("iam:UpdateAccessKey"), "{text}");
    assert!(text.contains("AKIAE2ECARDEXAMPLE01"), "{text}");
    assert!(
        text.contains("0/1 approvals") || text.contains("approvals"),
        "{text}"
    );
    assert_eq!(fake.channel_posts(fake.channel_id()).len(), 1, "one card");

    // Posted with pings off, and remembered in the store for later edits.
    let post = fake
        .wait_for_request(|r| r.matches("POST", "/channels/*/messages"), WAIT)
        .await
        .unwrap();
    assert_eq!(post.body_at("/allowed_mentions/parse"), Some(&json!([])));
    let stored = || {
        bot.app()
            .store
            .card_location(&CardKey::Request(request))
            .unwrap()
    };
    eventually("the card's message id in the store", || stored().is_some()).await;
    assert_eq!(stored(), Some(CardLocation::Message(card.id)));

    // Seen again with a higher count: the same card is edited, no second post.
    let mut again = finding.clone();
    again.count += 5;
    again.updated_at = again.updated_at.map(|t| t + chrono::Duration::minutes(5));
    again.last_seen = again.updated_at;
    assert_eq!(bot.accept(&again), None);
    let edited = fake
        .wait_for_message(|m| m.id == card.id && m.edits >= 1, WAIT)
        .await
        .unwrap();
    assert!(edited.embed_text().contains(&again.count.to_string()));
    assert_eq!(fake.channel_posts(fake.channel_id()).len(), 1);

    let addr = bot.running.as_ref().unwrap().http_addr;
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("\nhanko_findings_ingested_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nhanko_requests{state=\"Pending\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nhanko_gateway_connected 1\n"),
        "{metrics}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_without_a_responder_role_is_refused_audited_and_changes_nothing() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    let request = bot
        .accept(&leaked_key_finding(
            "e2e-role-1",
            "AKIAE2EROLEEXAMPLE01",
            "leaky",
        ))
        .unwrap();
    let card = wait_for_card(fake, request).await;
    let approve = card.custom_id_of("Approve").unwrap();

    let click = fake.inject_button(&approve, card.id, &mallory());
    let callback = fake.wait_for_callback(&click, WAIT).await.unwrap();
    assert_eq!(
        callback.body_at("/type"),
        Some(&json!(CALLBACK_DEFERRED_UPDATE))
    );
    assert!(
        callback.received_at.duration_since(click.injected_at) < Duration::from_secs(3),
        "answered within Discord's 3 s"
    );
    let answer = wait_for_followup(fake, &click).await;
    assert!(answer.is_ephemeral());
    assert_eq!(
        answer.content,
        "you are not a responder: approving needs one of the configured approver roles or user ids"
    );

    let store = &bot.app().store;
    let req = store.get_request(request).unwrap().unwrap();
    assert_eq!(req.state, RequestState::Pending);
    assert!(req.votes.is_empty());
    let events = refused(store, request);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor.display_name(), "mallory");
    assert_eq!(events[0].detail["code"], "not_authorized");
    assert_eq!(fake.message(card.id).unwrap().edits, 0, "card unchanged");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_then_the_leaked_key_is_inactive_and_the_card_shows_it() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    iam.create_user().user_name("leaky").send().await.unwrap();
    let leaked = iam
        .create_access_key()
        .user_name("leaky")
        .send()
        .await
        .unwrap();
    let other = iam
        .create_access_key()
        .user_name("leaky")
        .send()
        .await
        .unwrap();
    let leaked_id = leaked.access_key().unwrap().access_key_id().to_string();
    let other_id = other.access_key().unwrap().access_key_id().to_string();

    let clients = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
    let bot = Bot::start(2, clients).await;
    let fake = &bot.fake;
    let request = bot
        .accept(&leaked_key_finding("e2e-leak-1", &leaked_id, "leaky"))
        .unwrap();
    let card = wait_for_card(fake, request).await;
    let approve = card.custom_id_of("Approve").unwrap();

    // Dry run: deferred ephemerally, then the calls and what moto says, and nothing changes.
    let dry = fake.inject_button(&card.custom_id_of("Dry run").unwrap(), card.id, &alice());
    let callback = fake.wait_for_callback(&dry, WAIT).await.unwrap();
    assert_eq!(callback.body_at("/type"), Some(&json!(5)));
    assert_eq!(callback.body_at("/data/flags"), Some(&json!(EPHEMERAL)));
    let answer = wait_for_original_edit(fake, &dry).await;
    let content = answer.body_at("/content").and_then(Value::as_str).unwrap();
    assert!(content.contains("iam:UpdateAccessKey"), "{content}");
    assert!(content.contains("What AWS says now"), "{content}");
    assert!(content.contains("would change it"), "{content}");

    // First approval: recorded, the card shows 1/2 and keeps its buttons.
    let first = fake.inject_button(&approve, card.id, &alice());
    let edit = wait_for_original_edit(fake, &first).await;
    let text = embed_text_of(edit.body.as_ref().unwrap());
    assert!(text.contains("1/2 approvals"), "{text}");
    assert_eq!(
        bot.app().store.get_request(request).unwrap().unwrap().state,
        RequestState::Pending
    );

    // The same person again: refused, ephemeral, audited.
    let twice = fake.inject_button(&approve, card.id, &alice());
    let answer = wait_for_followup(fake, &twice).await;
    assert!(answer.is_ephemeral());
    assert_eq!(answer.content, "you have already voted on this request");
    assert_eq!(
        refused(&bot.app().store, request)[0].detail["code"],
        "already_voted"
    );

    // Someone else: approved, executed.
    let second = fake.inject_button(&approve, card.id, &bob());
    wait_for_original_edit(fake, &second).await;
    eventually("the request to finish", || {
        bot.app()
            .store
            .get_request(request)
            .unwrap()
            .is_some_and(|r| r.state.is_final())
    })
    .await;
    let req = bot.app().store.get_request(request).unwrap().unwrap();
    assert_eq!(
        req.state,
        RequestState::Succeeded,
        "{:?}",
        bot.app().store.step_records(request)
    );

    let keys = iam
        .list_access_keys()
        .user_name("leaky")
        .send()
        .await
        .unwrap();
    let status_of = |id: &str| {
        keys.access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(id))
            .and_then(|k| k.status())
            .map(|s| s.as_str().to_string())
    };
    assert_eq!(status_of(&leaked_id).as_deref(), Some("Inactive"));
    assert_eq!(status_of(&other_id).as_deref(), Some("Active"));

    // The outbox edits the card with the outcome of each step and the Revert button.
    let done = fake
        .wait_for_message(|m| m.id == card.id && m.button_labels() == ["Revert"], WAIT)
        .await
        .unwrap();
    let text = done.embed_text();
    let step = text
        .lines()
        .find(|l| l.contains("iam:UpdateAccessKey"))
        .unwrap_or_else(|| panic!("no UpdateAccessKey step in {text}"));
    assert!(step.contains("✅ applied"), "{step}");

    // Revert: proposed by the clicker, posted as its own card, which they cannot approve.
    let revert = fake.inject_button(&done.custom_id_of("Revert").unwrap(), card.id, &alice());
    let answer = wait_for_original_edit(fake, &revert).await;
    let content = answer.body_at("/content").and_then(Value::as_str).unwrap();
    assert!(
        content.starts_with("Revert proposed as request"),
        "{content}"
    );
    let revert_card = fake
        .wait_for_message(
            |m| {
                m.source == MessageSource::ChannelPost
                    && m.embeds[0]["title"]
                        .as_str()
                        .is_some_and(|t| t.contains("[REVERT]"))
            },
            WAIT,
        )
        .await
        .unwrap();
    let own = fake.inject_button(
        &revert_card.custom_id_of("Approve").unwrap(),
        revert_card.id,
        &alice(),
    );
    assert_eq!(
        wait_for_followup(fake, &own).await.content,
        "you proposed this request, and the policy forbids approving your own request"
    );

    let addr = bot.running.as_ref().unwrap().http_addr;
    let (_, metrics) = http_get(addr, "/metrics").await;
    assert!(
        metrics.contains("\nhanko_step_outcomes_total{outcome=\"applied\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nhanko_approval_to_contained_seconds_count 1\n"),
        "{metrics}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_asks_for_a_reason_records_it_and_later_clicks_are_refused() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    let request = bot
        .accept(&leaked_key_finding(
            "e2e-reject-1",
            "AKIAE2EREJECTEXAMPL1",
            "leaky",
        ))
        .unwrap();
    let card = wait_for_card(fake, request).await;

    let click = fake.inject_button(&card.custom_id_of("Reject").unwrap(), card.id, &alice());
    let callback = fake.wait_for_callback(&click, WAIT).await.unwrap();
    assert_eq!(callback.body_at("/type"), Some(&json!(CALLBACK_MODAL)));
    let modal_id = callback
        .body_at("/data/custom_id")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let parsed = ButtonId::parse(&modal_id).unwrap();
    assert_eq!(parsed.action, ButtonAction::RejectReason);
    assert_eq!(parsed.request_id, request);
    let input = callback.body_at("/data/components/0/components/0").unwrap();
    assert_eq!(input["custom_id"], REJECT_REASON_INPUT);
    assert_eq!(input["required"], true);

    let reason = "expected: the red team's scheduled test";
    let submit = fake.inject_modal_submit(&modal_id, &[(REJECT_REASON_INPUT, reason)], &alice());
    let edit = wait_for_original_edit(fake, &submit).await;
    let body = edit.body.as_ref().unwrap();
    let text = embed_text_of(body);
    assert!(
        text.contains("alice") || text.contains("1180000000000001001"),
        "{text}"
    );
    assert!(text.contains("red team"), "{text}");
    assert_eq!(body["components"], json!([]), "buttons removed");

    let store = &bot.app().store;
    assert_eq!(
        store.get_request(request).unwrap().unwrap().state,
        RequestState::Rejected
    );
    let rejected = store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::RequestRejected),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].detail["reason"], reason);
    assert_eq!(rejected[0].actor.display_name(), "alice");

    // A later click (from the stale card) is refused.
    let late = fake.inject_button(&card.custom_id_of("Approve").unwrap(), card.id, &bob());
    let answer = wait_for_followup(fake, &late).await;
    assert_eq!(
        answer.content,
        "this request is no longer pending: it is Rejected"
    );
    // And so is opening the reject modal again, before any typing.
    let again = fake.inject_button(&card.custom_id_of("Reject").unwrap(), card.id, &bob());
    assert_eq!(
        wait_for_ephemeral_answer(fake, &again).await,
        "this request is no longer pending: it is Rejected"
    );
    assert_eq!(refused(store, request).len(), 2);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ids_and_clicks_from_elsewhere_are_refused_and_audited() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    let request = bot
        .accept(&leaked_key_finding(
            "e2e-forge-1",
            "AKIAE2EFORGEEXAMPLE1",
            "leaky",
        ))
        .unwrap();
    let card = wait_for_card(fake, request).await;
    let approve = card.custom_id_of("Approve").unwrap();
    let store = &bot.app().store;

    for forged in [
        "approve",
        "hk1:a:not-a-request:0000000000000000",
        "hk9:a:x:y",
    ] {
        let click = fake.inject_button(forged, card.id, &alice());
        assert_eq!(
            wait_for_ephemeral_answer(fake, &click).await,
            hanko::discord::interactions::NOT_OURS
        );
    }
    let unknown = ButtonId::new(
        ButtonAction::Approve,
        Uuid::new_v4(),
        "00112233445566778899",
    );
    let click = fake.inject_button(&unknown.encode(), card.id, &alice());
    assert_eq!(
        wait_for_ephemeral_answer(fake, &click).await,
        hanko::discord::interactions::UNKNOWN_REQUEST
    );
    // A stale plan hash: refused by the store as a stale plan.
    let stale = ButtonId::new(ButtonAction::Approve, request, "ffffffffffffffff");
    let click = fake.inject_button(&stale.encode(), card.id, &alice());
    assert_eq!(
        wait_for_followup(fake, &click).await.content,
        "the plan changed since this card was posted; vote on the current card"
    );

    for (origin, code) in [
        (Origin::OtherGuild, "other_guild"),
        (Origin::Dm, "direct_message"),
        (Origin::OtherChannel, "other_channel"),
    ] {
        let click = fake.inject_button_from(origin, &approve, card.id, &alice());
        let answer = wait_for_ephemeral_answer(fake, &click).await;
        assert!(
            answer.to_lowercase().contains("nothing was done")
                || answer.contains("does not act on direct messages"),
            "{answer}"
        );
        let events = store
            .query_audit(&AuditQuery {
                kind: Some(EventKind::VoteRefused),
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(
            events.iter().any(|e| e.detail["code"] == code),
            "{code} audited"
        );
    }
    let all_refused = store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::VoteRefused),
            ..AuditQuery::default()
        })
        .unwrap();
    let codes: Vec<&str> = all_refused
        .iter()
        .filter_map(|e| e.detail["code"].as_str())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "not_hanko_button").count(),
        3,
        "{codes:?}"
    );
    assert!(codes.contains(&"unknown_request"));
    assert!(codes.contains(&"stale_plan"));

    let req = store.get_request(request).unwrap().unwrap();
    assert_eq!(req.state, RequestState::Pending);
    assert!(req.votes.is_empty(), "nothing changed");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_findings_stays_under_the_rate_limit_with_one_digest() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    fake.set_channel_rate_limit(5, Duration::from_secs(5));
    let mut requests = Vec::new();
    for i in 0..200 {
        let f = leaked_key_finding(
            &format!("e2e-burst-{i:03}"),
            &format!("AKIAE2EBURST{i:08}"),
            "leaky",
        );
        requests.push(bot.accept(&f).unwrap());
    }
    let store = &bot.app().store;
    assert_eq!(store.finding_count(), 200, "every finding stored");

    let digest = fake
        .wait_for_message(
            |m| {
                m.source == MessageSource::ChannelPost
                    && m.embeds
                        .first()
                        .and_then(|e| e["title"].as_str())
                        .is_some_and(|t| t.starts_with("Digest:"))
            },
            WAIT,
        )
        .await
        .unwrap();
    eventually("every request to have a card or a digest line", || {
        requests.iter().all(|r| {
            store
                .card_location(&CardKey::Request(*r))
                .unwrap()
                .is_some()
        })
    })
    .await;

    let digest = fake.message(digest.id).unwrap();
    let posts = fake.channel_posts(fake.channel_id());
    let digests = posts
        .iter()
        .filter(|m| m.embed_text().starts_with("Digest:"))
        .count();
    assert_eq!(digests, 1, "one digest for the burst");
    let cards: Vec<&FakeMessage> = posts.iter().filter(|m| m.id != digest.id).collect();
    let folded = requests
        .iter()
        .filter(|r| {
            store.card_location(&CardKey::Request(**r)).unwrap()
                == Some(CardLocation::Digest(digest.id))
        })
        .count();
    assert_eq!(
        cards.len() + folded,
        200,
        "each request has its card or its digest line"
    );
    assert!(cards.len() <= 5, "{} cards", cards.len());
    eprintln!(
        "burst of 200: {} cards, {folded} folded into one digest",
        cards.len()
    );
    assert!(
        digest.embeds[0]["title"]
            .as_str()
            .unwrap()
            .contains(&format!("{folded} findings")),
        "{:?}",
        digest.embeds[0]["title"]
    );
    assert!(digest.embed_text().contains("/finding e2e-burst-"));

    // Never more than 5 posts in any 5 s, and the fake never had to say 429.
    assert_eq!(fake.rate_limited_count(), 0);
    let times: Vec<Instant> = fake
        .requests_matching("POST", "/channels/*/messages")
        .iter()
        .map(|r| r.received_at)
        .collect();
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .filter(|u| u.duration_since(*t) < Duration::from_secs(5))
            .count();
        assert!(within <= 5, "{within} posts within 5 s from post {i}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_run_exits_0_with_the_store_intact() {
    let fake = DiscordFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hanko.toml");
    // Port 0: the bot logs the address it got (a port picked here could be taken meanwhile).
    std::fs::write(&config, config_text(&fake, dir.path(), 1, 0)).unwrap();

    // A finding already in the store: the bot's start-up sweep posts its card.
    let store_path = dir.path().join("store");
    let request = {
        let store = Store::open(&store_path).unwrap();
        let f = leaked_key_finding("e2e-sigterm-1", "AKIAE2ESIGTERMEXAMP1", "leaky");
        let accepted = pipeline::accept(
            &store,
            &Playbooks::defaults(),
            &hanko::approval::Policy::default(),
            &hanko::notices::Notices::default(),
            &own_account_scope(),
            4.0,
            &f,
            Utc::now(),
        )
        .unwrap();
        store.flush().unwrap();
        accepted.proposed.unwrap()
    };

    // The binary starts its ingest loops: keep every AWS call on loopback (a closed port),
    // with static credentials, and never ask the instance metadata service.
    let mut cmd = hanko_run(
        std::path::Path::new(env!("CARGO_BIN_EXE_hanko")),
        &config,
        "http://127.0.0.1:9",
    );
    cmd.env("HANKO_COMMANDS_DIR", commands_dir())
        .env("HANKO_DISCORD_API_BASE", fake.base_url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let hanko = HankoProcess::spawn(cmd).await;
    let card = wait_for_card(&fake, request).await;
    assert_eq!(card.button_labels(), ["Approve", "Reject", "Dry run"]);

    let stderr = hanko.stop().await;
    assert!(
        stderr.contains("hanko stopped"),
        "an orderly shutdown; stderr:\n{stderr}"
    );

    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_hanko"))
        .args(["audit", "verify", "--db"])
        .arg(&store_path)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("OK: "));
    let store = Store::open(&store_path).unwrap();
    let req = store.get_request(request).unwrap().unwrap();
    assert_eq!(req.state, RequestState::Pending);
    assert_eq!(
        store.card_location(&CardKey::Request(request)).unwrap(),
        Some(CardLocation::Message(card.id)),
        "the card's message id survived the restart"
    );
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_trickles_in_waits_for_the_window_and_grows_one_digest() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    fake.set_channel_rate_limit(5, Duration::from_secs(5));
    let finding = |i: usize| {
        leaked_key_finding(
            &format!("e2e-trickle-{i:03}"),
            &format!("AKIAE2ETRICKLE{i:06}"),
            "leaky",
        )
    };
    let is_digest = |m: &FakeMessage| {
        m.source == MessageSource::ChannelPost && m.embed_text().starts_with("Digest:")
    };
    let mut requests = Vec::new();
    // Five cards use the window up.
    for i in 0..5 {
        requests.push(bot.accept(&finding(i)).unwrap());
    }
    for r in &requests {
        wait_for_card(fake, *r).await;
    }
    let window_opened = fake
        .requests_matching("POST", "/channels/*/messages")
        .first()
        .unwrap()
        .received_at;
    // The next ones wait for the window, then go out as one digest.
    for i in 5..40 {
        requests.push(bot.accept(&finding(i)).unwrap());
    }
    let digest = fake.wait_for_message(is_digest, WAIT).await.unwrap();
    let digest_post = fake
        .requests_matching("POST", "/channels/*/messages")
        .last()
        .unwrap()
        .received_at;
    assert!(
        digest_post.duration_since(window_opened) >= Duration::from_secs(5),
        "the digest waited for the window"
    );
    // While the burst lasts, more overflow grows the same digest by edits.
    for i in 40..50 {
        requests.push(bot.accept(&finding(i)).unwrap());
    }
    let store = &bot.app().store;
    eventually("every request to have a card or a digest line", || {
        requests.iter().all(|r| {
            store
                .card_location(&CardKey::Request(*r))
                .unwrap()
                .is_some()
        })
    })
    .await;
    let digest = fake.message(digest.id).unwrap();
    assert!(digest.edits >= 1, "the digest was edited");
    assert_eq!(
        digest.embeds[0]["title"],
        "Digest: 45 findings held back during a burst"
    );
    let posts = fake.channel_posts(fake.channel_id());
    assert_eq!(posts.iter().filter(|m| is_digest(m)).count(), 1);
    assert_eq!(posts.len(), 6, "5 cards and 1 digest");
    assert_eq!(fake.rate_limited_count(), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contain_by_hand_cannot_be_self_approved_and_audit_and_status_answer() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    iam.create_user().user_name("handy").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("handy")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    let clients = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
    let bot = Bot::start(1, clients).await;
    let fake = &bot.fake;
    let store = bot.app().store.clone();

    // alice proposes containment of the key by hand.
    let cmd = fake.inject_slash_command("contain", json!({ "target": key_id }), &alice());
    let answer = command_answer(fake, &cmd).await;
    assert!(!answer.is_empty());
    let proposed = || {
        store
            .requests_in_states(&[RequestState::Pending])
            .unwrap()
            .into_iter()
            .find(|r| r.proposer.display_name() == "alice")
    };
    eventually("the /contain request", || proposed().is_some()).await;
    let request = proposed().unwrap();
    assert_eq!(
        request.plan.steps[0].parameters["AccessKeyId"],
        json!(key_id),
        "the plan deactivates exactly that key"
    );
    let card = wait_for_card(fake, request.id).await;
    let approve = card.custom_id_of("Approve").unwrap();

    // Her own approval is refused and audited; bob's executes.
    let own = fake.inject_button(&approve, card.id, &alice());
    let refusal = wait_for_followup(fake, &own).await;
    assert!(refusal.is_ephemeral());
    assert_eq!(
        refusal.content,
        "you proposed this request, and the policy forbids approving your own request"
    );
    assert_eq!(
        refused(&store, request.id)[0].detail["code"],
        "self_approval"
    );
    let approve_bob = fake.inject_button(&approve, card.id, &bob());
    wait_for_original_edit(fake, &approve_bob).await;
    eventually("the request to finish", || {
        store.get_request(request.id).unwrap().unwrap().state == RequestState::Succeeded
    })
    .await;
    let keys = iam
        .list_access_keys()
        .user_name("handy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.access_key_metadata()[0].status(),
        Some(&aws_sdk_iam::types::StatusType::Inactive)
    );

    // /audit for that finding lists the proposal, the refusal and the approval.
    let cmd = fake.inject_slash_command(
        "audit",
        json!({ "finding": request.finding_id, "limit": 50 }),
        &bob(),
    );
    let answer = command_answer(fake, &cmd).await;
    for kind in [
        "RequestProposed",
        "VoteRefused",
        "ApprovalGranted",
        "StepApplied",
    ] {
        assert!(answer.contains(kind), "/audit lacks {kind}: {answer}");
    }

    // /status answers with the state of the engine.
    let cmd = fake.inject_slash_command("status", json!({}), &bob());
    let answer = command_answer(fake, &cmd).await;
    assert!(answer.contains(env!("CARGO_PKG_VERSION")), "{answer}");
    assert!(
        answer.to_lowercase().contains("paused") || answer.to_lowercase().contains("running"),
        "{answer}"
    );
    bot.stop().await;
}
