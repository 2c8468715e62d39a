//! End to end over Discord's HTTP interactions endpoint (`discord.interactions = "http"`): the
//! real hanko, with no gateway connection, answering signed POSTs to its `/interactions` from
//! the Discord fake, AWS in moto.
//!
//! The test makes an Ed25519 key pair, configures hanko with its public key, and signs each
//! interaction with it as Discord signs with the application's key. The fake applies hanko's
//! HTTP answer as the interaction's callback (checked like one), so followups and `@original`
//! edits through the webhook work as on Discord.

use crate::e2e_discord::leaked_key_finding;
use crate::support::discord_fake::{
    self, post_raw, post_signed, sign, HttpInteraction, HTTP_RESPONSE_HEADER,
};
use crate::support::e2e_bot::*;
use crate::support::moto;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use hanko::approval::RequestState;
use hanko::audit::{AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use serde_json::{json, Value};

/// Discord's deadline for the answer in the response body.
const DISCORD_DEADLINE: Duration = Duration::from_secs(3);

/// A fresh key pair, as the Developer Portal has one per application.
fn key_pair() -> SigningKey {
    let mut seed = [0u8; 32];
    seed.iter_mut().for_each(|b| *b = fastrand::u8(..));
    SigningKey::from_bytes(&seed)
}

/// The test bot's config with interactions over HTTP, checked with `key`'s public half, and
/// no CloudTrail investigation (moto has no `LookupEvents`; its audit events would race the
/// checks that nothing was recorded).
fn over_http(text: String, key: &SigningKey) -> String {
    let public = hex::encode(key.verifying_key().to_bytes());
    let text = text.replacen(
        "[discord]",
        &format!("[discord]\ninteractions = \"http\"\npublic_key = \"{public}\""),
        1,
    );
    format!("{text}\n[investigate]\nenabled = false\n")
}

async fn start(approvals: u32, clients: ClientFactory, key: &SigningKey) -> (Bot, String) {
    let bot = Bot::start_full(approvals, clients, |_| {}, |t| over_http(t, key), |_| {}).await;
    let endpoint = format!(
        "http://{}/interactions",
        bot.running.as_ref().unwrap().http_addr
    );
    // The slash commands are registered through REST at start-up (no READY to wait for).
    bot.fake
        .wait_for_request(
            |r| r.matches("PUT", "/applications/*/guilds/*/commands") && r.status == 200,
            WAIT,
        )
        .await
        .unwrap();
    (bot, endpoint)
}

/// The answer in the body: a 200 with a JSON content type, in time; its JSON.
fn body_of(answer: &discord_fake::EndpointAnswer) -> Value {
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    assert!(
        answer.elapsed < DISCORD_DEADLINE,
        "answered within Discord's 3 s: {:?}",
        answer.elapsed
    );
    answer.body.clone().expect("a JSON body")
}

/// A refused request: what it is, its headers, its body.
type Forgery = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Nothing of `interaction` reached Discord: no callback, no webhook call.
fn untouched(bot: &Bot, interaction: &HttpInteraction) -> bool {
    let i = &interaction.interaction;
    !bot.fake
        .requests()
        .iter()
        .any(|r| i.is_callback(r) || i.is_webhook_call(r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_the_answers_are_the_response_bodies_and_no_gateway_is_opened() {
    let moto = moto::shared();
    let iam = moto.iam().await;
    iam.create_user()
        .user_name("leaky-http")
        .send()
        .await
        .unwrap();
    let leaked = iam
        .create_access_key()
        .user_name("leaky-http")
        .send()
        .await
        .unwrap();
    let leaked_id = leaked.access_key().unwrap().access_key_id().to_string();
    let key = key_pair();
    let clients = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
    let (bot, endpoint) = start(2, clients, &key).await;
    let fake = &bot.fake;

    // Discord's PING when the endpoint URL is saved in the Developer Portal.
    let ping = json!({
        "type": 1,
        "id": "1180000000000000900",
        "application_id": fake.application_id().to_string(),
        "token": "ping-token",
        "version": 1,
    })
    .to_string();
    let pong = post_signed(&endpoint, &key, ping.as_bytes()).await;
    assert_eq!(body_of(&pong), json!({"type": 1}));

    // A finding gets its card through REST.
    let request = bot
        .accept(&leaked_key_finding("http-leak-1", &leaked_id, "leaky-http"))
        .unwrap();
    let card = wait_for_card(fake, request).await;
    let approve = card.custom_id_of("Approve").unwrap();

    // A forged click (signed with another key) is refused before it is read.
    let forged = fake.http_button(&approve, card.id, &alice());
    let answer = fake.deliver(&endpoint, &key_pair(), &forged).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert!(untouched(&bot, &forged));
    let pending = bot.app().store.get_request(request).unwrap().unwrap();
    assert_eq!(pending.state, RequestState::Pending);
    assert!(pending.votes.is_empty(), "{:?}", pending.votes);

    // First approval: a deferred update in the body, then the card edited through the webhook.
    let first = fake.http_button(&approve, card.id, &alice());
    let body = body_of(&fake.deliver(&endpoint, &key, &first).await);
    assert!(
        matches!(body["type"].as_u64(), Some(6) | Some(7)),
        "a type 6 or 7 answer: {body}"
    );
    let callback = fake
        .wait_for_callback(&first.interaction, WAIT)
        .await
        .unwrap();
    assert_eq!(callback.status, 204, "{:?}", callback.response);
    assert!(callback.header(HTTP_RESPONSE_HEADER).is_some());
    let edit = wait_for_original_edit(fake, &first.interaction).await;
    let text = embed_text_of(edit.body.as_ref().unwrap());
    assert!(text.contains("1/2 approvals"), "{text}");

    // Second approver: approved; the containment runs and the key ends Inactive.
    let second = fake.http_button(&approve, card.id, &bob());
    let body = body_of(&fake.deliver(&endpoint, &key, &second).await);
    assert!(matches!(body["type"].as_u64(), Some(6) | Some(7)), "{body}");
    eventually("the request to finish", || {
        bot.app()
            .store
            .get_request(request)
            .unwrap()
            .is_some_and(|r| r.state.is_final())
    })
    .await;
    let done = bot.app().store.get_request(request).unwrap().unwrap();
    assert_eq!(
        done.state,
        RequestState::Succeeded,
        "{:?}",
        bot.app().store.step_records(request)
    );
    let keys = iam
        .list_access_keys()
        .user_name("leaky-http")
        .send()
        .await
        .unwrap();
    let status = keys
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(leaked_id.as_str()))
        .and_then(|k| k.status())
        .map(|s| s.as_str().to_string());
    assert_eq!(status.as_deref(), Some("Inactive"));
    fake.wait_for_message(|m| m.id == card.id && m.button_labels() == ["Revert"], WAIT)
        .await
        .unwrap();

    // A slash command is answered in the body.
    let cmd = fake.http_slash_command("status", json!({}), &alice());
    let body = body_of(&fake.deliver(&endpoint, &key, &cmd).await);
    assert_eq!(body["type"], 4, "{body}");
    assert_eq!(body["data"]["flags"], json!(discord_fake::EPHEMERAL));
    let content = body["data"]["content"].as_str().unwrap_or_default();
    assert!(content.contains("hanko"), "{content}");
    assert_eq!(command_answer(fake, &cmd.interaction).await, content);

    // No gateway: not asked for, never connected; healthy all the same.
    assert_eq!(fake.gateway_connections(), 0);
    assert!(fake.requests_matching("GET", "/gateway").is_empty());
    assert!(fake.requests_matching("GET", "/gateway/bot").is_empty());
    let addr = bot.running.as_ref().unwrap().http_addr;
    let (status, health) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{health}");
    // Healthy, and holding no gateway role: there is none to hold.
    assert!(
        health.starts_with("ok\n")
            && health.contains("roles: ingest leader")
            && !health.contains("gateway"),
        "{health}"
    );
    let (_, metrics) = http_get(addr, "/metrics").await;
    assert!(
        metrics.contains("\nhanko_gateway_connected 0\n"),
        "{metrics}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_stale_and_malformed_requests_are_refused_and_change_nothing() {
    let key = key_pair();
    let (bot, endpoint) = start(1, unreachable_aws(), &key).await;
    let fake = &bot.fake;
    let request = bot
        .accept(&leaked_key_finding(
            "http-forged-1",
            "AKIAHTTPFORGEDEXAMP1",
            "leaky",
        ))
        .unwrap();
    let card = wait_for_card(fake, request).await;
    let approve = card.custom_id_of("Approve").unwrap();
    let click = fake.http_button(&approve, card.id, &alice());
    let body = click.payload.to_string();
    let body = body.as_bytes();
    // Whatever the outbox and the pipeline audit settles before the head is read.
    eventually("the card's location stored", || {
        bot.app()
            .store
            .card_location(&hanko::store::CardKey::Request(request))
            .unwrap()
            .is_some()
    })
    .await;
    let head = bot.app().store.audit_head().unwrap();

    let now = unix_now().to_string();
    let stale = (unix_now() - 301).to_string();
    let future = (unix_now() + 301).to_string();
    let good = sign(&key, &now, body);
    let mut tampered = body.to_vec();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let cases: Vec<Forgery> = vec![
        ("unsigned", vec![], body.to_vec()),
        (
            "no timestamp",
            vec![("x-signature-ed25519", good.clone())],
            body.to_vec(),
        ),
        (
            "no signature",
            vec![("x-signature-timestamp", now.clone())],
            body.to_vec(),
        ),
        (
            "another key",
            vec![
                ("x-signature-ed25519", sign(&key_pair(), &now, body)),
                ("x-signature-timestamp", now.clone()),
            ],
            body.to_vec(),
        ),
        (
            "tampered body",
            vec![
                ("x-signature-ed25519", good.clone()),
                ("x-signature-timestamp", now.clone()),
            ],
            tampered,
        ),
        (
            "not hex",
            vec![
                ("x-signature-ed25519", "zz".repeat(64)),
                ("x-signature-timestamp", now.clone()),
            ],
            body.to_vec(),
        ),
        (
            "stale (5 min 1 s old), correctly signed",
            vec![
                ("x-signature-ed25519", sign(&key, &stale, body)),
                ("x-signature-timestamp", stale.clone()),
            ],
            body.to_vec(),
        ),
        (
            "from the future, correctly signed",
            vec![
                ("x-signature-ed25519", sign(&key, &future, body)),
                ("x-signature-timestamp", future.clone()),
            ],
            body.to_vec(),
        ),
    ];
    for (what, headers, body) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = post_raw(&endpoint, &headers, body).await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.text);
    }
    // Signed, but not an interaction: 400.
    for bad in [&b"not json"[..], br#"{"type":3}"#, br#"[1,2]"#] {
        let answer = post_signed(&endpoint, &key, bad).await;
        assert_eq!(
            answer.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(bad),
            answer.text
        );
    }

    assert_eq!(
        bot.app().store.audit_head().unwrap(),
        head,
        "nothing audited"
    );
    assert!(untouched(&bot, &click));
    let pending = bot.app().store.get_request(request).unwrap().unwrap();
    assert_eq!(pending.state, RequestState::Pending);
    assert!(pending.votes.is_empty());
    assert_eq!(fake.message(card.id).unwrap().edits, 0, "card unchanged");

    // The same click, signed: a responder without the role is refused and audited, through
    // the same handler as at the gateway.
    let refused = fake.http_button(&approve, card.id, &mallory());
    let body = body_of(&fake.deliver(&endpoint, &key, &refused).await);
    assert_eq!(body["type"], 6, "{body}");
    let followup = wait_for_followup(fake, &refused.interaction).await;
    assert!(followup.is_ephemeral());
    let events = bot
        .app()
        .store
        .query_audit(&AuditQuery {
            request_id: Some(request),
            kind: Some(EventKind::VoteRefused),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].detail["code"], "not_authorized");
    bot.stop().await;
}

/// Over HTTP there is no READY to name the application: hanko asks Discord for it at start.
/// When that route fails, the application id of the first verified interaction stands in, and
/// the slash commands are registered all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_application_route_the_first_interaction_names_the_application() {
    let fake = discord_fake::DiscordFake::start_with(discord_fake::FakeOptions {
        application_info: false,
        ..discord_fake::FakeOptions::default()
    })
    .await;
    let key = key_pair();
    let bot = Bot::start_full_on(
        fake,
        2,
        unreachable_aws(),
        |_| {},
        |t| over_http(t, &key),
        |_| {},
    )
    .await;
    let fake = &bot.fake;
    let endpoint = format!(
        "http://{}/interactions",
        bot.running.as_ref().unwrap().http_addr
    );
    fake.wait_for_request(
        |r| r.matches("GET", "/oauth2/applications/@me") && r.status == 500,
        WAIT,
    )
    .await
    .unwrap();
    assert!(fake
        .requests_matching("PUT", "/applications/*/guilds/*/commands")
        .is_empty());

    let cmd = fake.http_slash_command("status", json!({}), &alice());
    let body = body_of(&fake.deliver(&endpoint, &key, &cmd).await);
    assert_eq!(body["type"], 4, "{body}");
    let registered = fake
        .wait_for_request(
            |r| r.matches("PUT", "/applications/*/guilds/*/commands") && r.status == 200,
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        registered
            .api_path()
            .contains(&format!("/applications/{}/", fake.application_id())),
        "{}",
        registered.path
    );
    bot.stop().await;
}
