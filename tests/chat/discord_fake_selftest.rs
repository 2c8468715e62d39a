//! Self-test of the Discord fake (`tests/support/discord_fake.rs`): drives the real serenity 0.12
//! client against it, so the end-to-end tests of the bot can trust what the fake records.
//!
//! Each test starts a fake and a small serenity bot (`Handler`) that does what hanko does on the
//! wire: bulk-overwrites guild commands on READY, defers component clicks then edits the card,
//! opens a modal for "reject", answers commands ephemerally (with a file for `/audit`) and
//! answers autocomplete. Waits are on recorded effects with timeouts, never sleeps.

// This bot is serenity alone, not hanko: it answers with serenity's own methods, which hanko's
// code may not call (clippy.toml: hanko answers through `discord::answer`).
#![allow(clippy::disallowed_methods)]

use crate::support::discord_fake;

use std::sync::Arc;
use std::time::Duration;

use discord_fake::{DiscordFake, FakeMember, FakeOptions, MessageSource, Origin, RecordedRequest};
use serde_json::{json, Value};
use serenity::all::{
    ActionRowComponent, ButtonStyle, ChannelId, Client, ClientBuilder, CommandInteraction,
    ComponentInteraction, Context, CreateActionRow, CreateAttachment, CreateAutocompleteResponse,
    CreateButton, CreateEmbed, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
    CreateModal, EditInteractionResponse, EditMessage, EventHandler, GatewayIntents, GuildId,
    HttpBuilder, InputTextStyle, Interaction, InteractionId, MessageId, ModalInteraction, Ready,
    ShardManager,
};
use serenity::http::{Http, HttpError};

const WAIT: Duration = Duration::from_secs(10);
const ALICE_ID: u64 = 1_180_000_000_000_001_001;
const RESPONDER_ROLE: &str = "1180000000000000500";

fn commands_json() -> Value {
    json!([
        {"name": "ping", "type": 1, "description": "Check that the bot answers"},
        {"name": "finding", "type": 1, "description": "Show a finding", "options": [
            {"type": 3, "name": "id", "description": "Finding id", "required": true, "autocomplete": true}
        ]},
        {"name": "audit", "type": 1, "description": "Audit events", "options": [
            {"type": 4, "name": "limit", "description": "How many", "required": false}
        ]}
    ])
}

fn alice() -> FakeMember {
    FakeMember::new(ALICE_ID, "alice", &[RESPONDER_ROLE])
}

struct Handler {
    guild_id: GuildId,
    commands: Value,
}

type HandlerResult = Result<(), serenity::Error>;

impl Handler {
    async fn click(&self, ctx: &Context, click: &ComponentInteraction) -> HandlerResult {
        if click.data.custom_id == "reject" {
            let reason = CreateInputText::new(InputTextStyle::Paragraph, "Reason", "reason");
            let modal = CreateModal::new("reject-reason", "Why reject?")
                .components(vec![CreateActionRow::InputText(reason)]);
            return click
                .create_response(&ctx.http, CreateInteractionResponse::Modal(modal))
                .await;
        }
        click
            .create_response(&ctx.http, CreateInteractionResponse::Acknowledge)
            .await?;
        let edit = EditInteractionResponse::new()
            .content(format!("{} by {}", click.data.custom_id, click.user.name))
            .components(vec![]);
        click.edit_response(&ctx.http, edit).await.map(|_| ())
    }

    async fn modal(&self, ctx: &Context, submit: &ModalInteraction) -> HandlerResult {
        let reason = submit
            .data
            .components
            .iter()
            .flat_map(|row| &row.components)
            .find_map(|c| match c {
                ActionRowComponent::InputText(input) if input.custom_id == "reason" => {
                    input.value.clone()
                }
                _ => None,
            })
            .unwrap_or_default();
        submit
            .create_response(&ctx.http, CreateInteractionResponse::Acknowledge)
            .await?;
        let edit = EditInteractionResponse::new()
            .content(format!("rejected by {}: {reason}", submit.user.name))
            .components(vec![]);
        submit.edit_response(&ctx.http, edit).await.map(|_| ())
    }

    async fn command(&self, ctx: &Context, command: &CommandInteraction) -> HandlerResult {
        let mut reply = CreateInteractionResponseMessage::new()
            .ephemeral(true)
            .content(format!(
                "{} guild={:?} user={}",
                command.data.name,
                command.guild_id.map(|g| g.get()),
                command.user.name
            ));
        if command.data.name == "audit" {
            reply = reply.add_file(CreateAttachment::bytes(
                b"{\"event\":\"ApprovalGranted\"}\n".to_vec(),
                "audit.jsonl",
            ));
        }
        command
            .create_response(&ctx.http, CreateInteractionResponse::Message(reply))
            .await?;
        if command.data.name == "audit" {
            let more = CreateInteractionResponseFollowup::new()
                .ephemeral(true)
                .content("more events follow");
            command.create_followup(&ctx.http, more).await?;
        }
        Ok(())
    }

    async fn autocomplete(&self, ctx: &Context, command: &CommandInteraction) -> HandlerResult {
        let partial = command
            .data
            .autocomplete()
            .map(|o| o.value.to_string())
            .unwrap_or_default();
        let choices = CreateAutocompleteResponse::new()
            .add_string_choice(format!("{partial}-1"), format!("{partial}-1"))
            .add_string_choice(format!("{partial}-2"), format!("{partial}-2"));
        command
            .create_response(&ctx.http, CreateInteractionResponse::Autocomplete(choices))
            .await
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, _ready: Ready) {
        if let Err(err) = ctx
            .http
            .create_guild_commands(self.guild_id, &self.commands)
            .await
        {
            eprintln!("selftest bot: registering commands failed: {err}");
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let result = match &interaction {
            Interaction::Component(click) => self.click(&ctx, click).await,
            Interaction::Modal(submit) => self.modal(&ctx, submit).await,
            Interaction::Command(command) => self.command(&ctx, command).await,
            Interaction::Autocomplete(command) => self.autocomplete(&ctx, command).await,
            _ => Ok(()),
        };
        if let Err(err) = result {
            eprintln!("selftest bot: answering an interaction failed: {err}");
        }
    }
}

/// A serenity client running against the fake.
struct Bot {
    http: Arc<Http>,
    shard_manager: Arc<ShardManager>,
    task: tokio::task::JoinHandle<Result<(), serenity::Error>>,
}

impl Bot {
    async fn start(fake: &DiscordFake) -> Bot {
        let http = HttpBuilder::new(fake.token())
            .proxy(fake.base_url())
            .ratelimiter_disabled(true)
            .build();
        let handler = Handler {
            guild_id: GuildId::new(fake.guild_id()),
            commands: commands_json(),
        };
        let mut client: Client = ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
            .event_handler(handler)
            .await
            .expect("build the serenity client");
        let http = Arc::clone(&client.http);
        let shard_manager = Arc::clone(&client.shard_manager);
        let task = tokio::spawn(async move { client.start().await });
        fake.wait_for_ready(WAIT)
            .await
            .expect("serenity reached READY");
        Bot {
            http,
            shard_manager,
            task,
        }
    }

    async fn stop(self) {
        self.shard_manager.shutdown_all().await;
        let joined = tokio::time::timeout(WAIT, self.task).await;
        assert!(
            joined.is_ok(),
            "serenity client did not stop within {WAIT:?}"
        );
    }
}

/// Posts a card with Approve/Reject buttons through serenity's builders; returns its id.
async fn post_card(bot: &Bot, fake: &DiscordFake) -> u64 {
    let buttons = vec![
        CreateButton::new("approve")
            .label("Approve")
            .style(ButtonStyle::Success),
        CreateButton::new("reject")
            .label("Reject")
            .style(ButtonStyle::Danger),
    ];
    let embed = CreateEmbed::new()
        .title("UnauthorizedAccess:IAMUser/MaliciousIPCaller")
        .field("Account", "123456789012", true)
        .field("Region", "eu-west-1", true)
        .colour(0xE67E22);
    let message = CreateMessage::new()
        .content("New finding")
        .embed(embed)
        .components(vec![CreateActionRow::Buttons(buttons)]);
    let posted = ChannelId::new(fake.channel_id())
        .send_message(&bot.http, message)
        .await
        .expect("the fake's message object deserializes in serenity");
    posted.id.get()
}

fn status_and_code(err: &serenity::Error) -> (u16, isize) {
    match err {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            (response.status_code.as_u16(), response.error.code)
        }
        other => panic!("expected an HTTP error response, got {other:?}"),
    }
}

fn is_original_edit(request: &RecordedRequest, token: &str) -> bool {
    request.method == "PATCH"
        && request
            .api_path()
            .ends_with(&format!("/{token}/messages/@original"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serenity_identifies_with_the_token_and_registers_guild_commands() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;

    let identify = fake.wait_for_identify(WAIT).await.unwrap();
    assert_eq!(identify.token, format!("Bot {}", fake.token()));
    assert_eq!(identify.intents, GatewayIntents::GUILDS.bits());
    assert_eq!(identify.shard, Some((0, 1)));

    let gateway = fake
        .wait_for_request(|r| r.matches("GET", "/gateway"), WAIT)
        .await
        .unwrap();
    assert_eq!(gateway.status, 200);
    assert_eq!(
        gateway.response.as_ref().unwrap()["url"],
        fake.gateway_url()
    );

    let put = fake
        .wait_for_request(
            |r| r.matches("PUT", "/applications/*/guilds/*/commands"),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        put.api_path(),
        format!(
            "/applications/{}/guilds/{}/commands",
            fake.application_id(),
            fake.guild_id()
        )
    );
    assert_eq!(put.status, 200);
    assert_eq!(
        put.header("authorization"),
        Some(&*format!("Bot {}", fake.token()))
    );
    assert_eq!(put.body.as_ref(), Some(&commands_json()));
    let registered = fake.commands(Some(fake.guild_id()));
    let names: Vec<&str> = registered
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["ping", "finding", "audit"]);
    assert!(registered
        .iter()
        .all(|c| c["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok())));

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn button_click_is_deferred_then_the_card_is_edited() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;
    let card_id = post_card(&bot, &fake).await;

    let card = fake.message(card_id).expect("card stored");
    assert_eq!(card.custom_ids(), ["approve", "reject"]);
    assert_eq!(card.button_labels(), ["Approve", "Reject"]);
    assert_eq!(
        card.embed_text(),
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller\nAccount\n123456789012\nRegion\neu-west-1"
    );
    assert_eq!(card.embeds[0]["color"], 0xE67E22);
    assert_eq!(card.custom_id_of("Approve").as_deref(), Some("approve"));
    assert_eq!(fake.channel_posts(fake.channel_id()).len(), 1);

    let click = fake.inject_button("approve", card_id, &alice());
    let callback = fake.wait_for_callback(&click, WAIT).await.unwrap();
    assert_eq!(callback.status, 204);
    assert_eq!(callback.body_at("/type"), Some(&json!(6)));
    assert!(callback.received_at >= click.injected_at);

    let edit = fake
        .wait_for_request(|r| is_original_edit(r, &click.token), WAIT)
        .await
        .unwrap();
    assert_eq!(edit.status, 200);
    assert!(
        edit.seq > callback.seq,
        "the edit must follow the acknowledgement"
    );
    let card = fake.message(card_id).unwrap();
    assert_eq!(card.content, "approve by alice");
    assert!(
        card.components.is_empty(),
        "buttons removed: {:?}",
        card.components
    );
    assert_eq!(card.edits, 1);
    assert_eq!(fake.original_response(&click).map(|m| m.id), Some(card_id));

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_opens_a_modal_and_its_submit_edits_the_card() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;
    let card_id = post_card(&bot, &fake).await;

    let click = fake.inject_button("reject", card_id, &alice());
    let callback = fake.wait_for_callback(&click, WAIT).await.unwrap();
    assert_eq!(callback.status, 204);
    assert_eq!(callback.body_at("/type"), Some(&json!(9)));
    assert_eq!(
        callback.body_at("/data/custom_id"),
        Some(&json!("reject-reason"))
    );

    let submit =
        fake.inject_modal_submit("reject-reason", &[("reason", "false positive")], &alice());
    let callback = fake.wait_for_callback(&submit, WAIT).await.unwrap();
    assert_eq!(callback.status, 204, "{:?}", callback.response);
    assert_eq!(callback.body_at("/type"), Some(&json!(6)));
    let card = fake
        .wait_for_message(|m| m.id == card_id && m.edits == 1, WAIT)
        .await
        .unwrap();
    assert_eq!(card.content, "rejected by alice: false positive");
    assert!(card.components.is_empty());

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_get_ephemeral_replies_from_every_origin() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;
    fake.wait_for_request(
        |r| r.matches("PUT", "/applications/*/guilds/*/commands"),
        WAIT,
    )
    .await
    .unwrap();

    let cases = [
        (
            Origin::Home,
            format!("ping guild=Some({}) user=alice", fake.guild_id()),
        ),
        (
            Origin::OtherGuild,
            format!(
                "ping guild=Some({}) user=alice",
                fake.options().other_guild_id
            ),
        ),
        (Origin::Dm, "ping guild=None user=alice".to_string()),
    ];
    for (origin, expected) in cases {
        let ping = fake.inject_slash_command_from(origin.clone(), "ping", json!({}), &alice());
        let callback = fake.wait_for_callback(&ping, WAIT).await.unwrap();
        assert_eq!(callback.status, 204, "{origin:?}: {:?}", callback.response);
        assert_eq!(callback.body_at("/type"), Some(&json!(4)), "{origin:?}");
        assert_eq!(
            callback.body_at("/data/flags"),
            Some(&json!(64)),
            "{origin:?}"
        );
        assert_eq!(
            callback.body_at("/data/content"),
            Some(&json!(expected)),
            "{origin:?}"
        );
        let reply = fake.original_response(&ping).expect("reply stored");
        assert!(reply.is_ephemeral());
        assert_eq!(reply.content, expected);
    }

    // A reply with a file goes out as multipart; the fake keeps payload_json and the file.
    let audit = fake.inject_slash_command("audit", json!({"limit": 5}), &alice());
    let callback = fake.wait_for_callback(&audit, WAIT).await.unwrap();
    assert_eq!(callback.status, 204, "{:?}", callback.response);
    assert!(callback
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data"));
    assert_eq!(callback.files.len(), 1);
    assert_eq!(callback.files[0].filename.as_deref(), Some("audit.jsonl"));
    let reply = fake.original_response(&audit).unwrap();
    assert_eq!(reply.attachments.len(), 1);
    assert_eq!(
        reply.attachments[0].data,
        b"{\"event\":\"ApprovalGranted\"}\n"
    );
    let followup = fake
        .wait_for_request(|r| r.method == "POST" && audit.is_webhook_call(r), WAIT)
        .await
        .unwrap();
    assert_eq!(followup.status, 200, "{:?}", followup.response);
    let followups: Vec<_> = fake
        .messages()
        .into_iter()
        .filter(|m| {
            m.source
                == MessageSource::Followup {
                    interaction_id: audit.id,
                }
        })
        .collect();
    assert_eq!(followups.len(), 1);
    assert_eq!(followups[0].content, "more events follow");
    assert!(followups[0].is_ephemeral());

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_is_answered_with_choices() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;
    fake.wait_for_request(
        |r| r.matches("PUT", "/applications/*/guilds/*/commands"),
        WAIT,
    )
    .await
    .unwrap();

    let typing = fake.inject_autocomplete("finding", json!({}), "id", "f-12", &alice());
    let callback = fake.wait_for_callback(&typing, WAIT).await.unwrap();
    assert_eq!(callback.status, 204, "{:?}", callback.response);
    assert_eq!(callback.body_at("/type"), Some(&json!(8)));
    assert_eq!(
        callback.body_at("/data/choices/0/value"),
        Some(&json!("f-12-1"))
    );
    assert_eq!(
        callback.body_at("/data/choices/1/value"),
        Some(&json!("f-12-2"))
    );

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_interactions_are_404_and_recorded() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;

    let err = bot
        .http
        .get_guild(GuildId::new(fake.guild_id()))
        .await
        .expect_err("GET /guilds/{id} is not implemented by the fake");
    assert_eq!(status_and_code(&err), (404, 0));
    let recorded = fake
        .wait_for_request(|r| r.matches("GET", "/guilds/*"), WAIT)
        .await
        .unwrap();
    assert_eq!(recorded.status, 404);
    assert_eq!(
        recorded.response.as_ref().unwrap()["message"],
        "404: Not Found"
    );

    let err = bot
        .http
        .create_interaction_response(
            InteractionId::new(42),
            "no-such-token",
            &json!({"type": 6}),
            vec![],
        )
        .await
        .expect_err("an interaction the fake never sent");
    assert_eq!(status_and_code(&err), (404, 10062));

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_mode_answers_429_beyond_the_limit() {
    let fake = DiscordFake::start().await;
    let http = HttpBuilder::new(fake.token())
        .proxy(fake.base_url())
        .ratelimiter_disabled(true)
        .build();
    fake.set_channel_rate_limit(3, Duration::from_secs(30));
    let channel = ChannelId::new(fake.channel_id());

    let mut outcomes = Vec::new();
    for n in 0..5 {
        let sent = http
            .send_message(channel, vec![], &json!({"content": format!("message {n}")}))
            .await;
        outcomes.push(sent.map(|m| m.content).map_err(|e| status_and_code(&e).0));
    }
    assert_eq!(
        outcomes,
        [
            Ok("message 0".to_string()),
            Ok("message 1".to_string()),
            Ok("message 2".to_string()),
            Err(429),
            Err(429),
        ]
    );
    assert_eq!(fake.rate_limited_count(), 2);
    assert_eq!(fake.channel_posts(fake.channel_id()).len(), 3);

    let limited = fake.requests_matching("POST", "/channels/*/messages");
    let first_429 = limited.iter().find(|r| r.status == 429).unwrap();
    let retry_after = first_429.response.as_ref().unwrap()["retry_after"]
        .as_f64()
        .unwrap();
    assert!(
        retry_after > 0.0 && retry_after <= 30.0,
        "retry_after {retry_after}"
    );
    assert_eq!(first_429.response.as_ref().unwrap()["global"], false);
    let accepted = limited.iter().find(|r| r.status == 200).unwrap();
    assert_eq!(accepted.body_at("/content"), Some(&json!("message 0")));

    // The limit is per channel.
    let other = http
        .send_message(
            ChannelId::new(fake.options().other_channel_id),
            vec![],
            &json!({"content": "elsewhere"}),
        )
        .await;
    assert!(other.is_ok(), "{other:?}");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_limits_and_double_acknowledgements_are_refused() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;
    let channel = ChannelId::new(fake.channel_id());

    let long_title = "t".repeat(257);
    let err = bot
        .http
        .send_message(channel, vec![], &json!({"embeds": [{"title": long_title}]}))
        .await
        .expect_err("title over 256");
    assert_eq!(status_and_code(&err), (400, 50035));
    let recorded = fake
        .wait_for_request(
            |r| r.status == 400 && r.matches("POST", "/channels/*/messages"),
            WAIT,
        )
        .await
        .unwrap();
    let errors = &recorded.response.as_ref().unwrap()["errors"];
    assert_eq!(
        errors["embeds"]["0"]["title"]["_errors"][0]["code"],
        "BASE_TYPE_BAD_LENGTH"
    );

    let err = bot
        .http
        .send_message(channel, vec![], &json!({"content": ""}))
        .await
        .expect_err("empty message");
    assert_eq!(status_and_code(&err), (400, 50006));

    let duplicate = json!({"content": "x", "components": [{"type": 1, "components": [
        {"type": 2, "style": 1, "label": "A", "custom_id": "same"},
        {"type": 2, "style": 1, "label": "B", "custom_id": "same"}
    ]}]});
    let err = bot
        .http
        .send_message(channel, vec![], &duplicate)
        .await
        .expect_err("duplicate custom_id");
    assert_eq!(status_and_code(&err), (400, 50035));

    let long_id = json!({"content": "x", "components": [{"type": 1, "components": [
        {"type": 2, "style": 1, "label": "A", "custom_id": "c".repeat(101)}
    ]}]});
    let err = bot
        .http
        .send_message(channel, vec![], &long_id)
        .await
        .expect_err("custom_id over 100");
    assert_eq!(status_and_code(&err), (400, 50035));

    // The bot answered this click; a second answer is refused like Discord does.
    let card_id = post_card(&bot, &fake).await;
    let click = fake.inject_button("approve", card_id, &alice());
    fake.wait_for_callback(&click, WAIT).await.unwrap();
    let err = bot
        .http
        .create_interaction_response(
            InteractionId::new(click.id),
            &click.token,
            &json!({"type": 6}),
            vec![],
        )
        .await
        .expect_err("second acknowledgement");
    assert_eq!(status_and_code(&err), (400, 40060));

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_is_an_unknown_interaction() {
    let fake = DiscordFake::start_with(FakeOptions {
        interaction_deadline: Some(Duration::ZERO),
        ..FakeOptions::default()
    })
    .await;
    let bot = Bot::start(&fake).await;
    let ping = fake.inject_slash_command("ping", json!({}), &alice());
    let callback = fake.wait_for_callback(&ping, WAIT).await.unwrap();
    assert_eq!(callback.status, 404);
    assert_eq!(callback.response.as_ref().unwrap()["code"], 10062);
    assert!(fake.original_response(&ping).is_none());
    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_acknowledged_and_a_resumed_session_keeps_dispatching() {
    let fake = DiscordFake::start_with(FakeOptions {
        heartbeat_interval: Duration::from_millis(100),
        ..FakeOptions::default()
    })
    .await;
    let bot = Bot::start(&fake).await;

    let heartbeat = fake
        .wait_for_frame(|f| !f.outgoing && f.op == 1, WAIT)
        .await
        .unwrap();
    let ack = fake
        .wait_for_frame(|f| f.outgoing && f.op == 11, WAIT)
        .await
        .unwrap();
    assert!(ack.at >= heartbeat.at);

    let card_id = post_card(&bot, &fake).await;
    let first = fake.inject_button("approve", card_id, &alice());
    fake.wait_for_callback(&first, WAIT).await.unwrap();

    fake.request_reconnect().unwrap();
    let resume = fake
        .wait_for_frame(|f| !f.outgoing && f.op == 6, WAIT)
        .await
        .unwrap();
    let ready = fake
        .wait_for_frame(|f| f.t.as_deref() == Some("READY"), WAIT)
        .await
        .unwrap();
    assert_eq!(resume.d["session_id"], ready.d["session_id"]);
    assert!(resume.connection > ready.connection);
    fake.wait_for_frame(|f| f.t.as_deref() == Some("RESUMED"), WAIT)
        .await
        .unwrap();
    assert_eq!(
        fake.gateway_frames()
            .iter()
            .filter(|f| !f.outgoing && f.op == 2)
            .count(),
        1,
        "a resume must not re-IDENTIFY"
    );

    let second = fake.inject_button("approve", card_id, &alice());
    let callback = fake.wait_for_callback(&second, WAIT).await.unwrap();
    assert_eq!(callback.status, 204);
    let sequences: Vec<u64> = fake
        .gateway_frames()
        .iter()
        .filter(|f| f.outgoing && f.t.as_deref() == Some("INTERACTION_CREATE"))
        .filter_map(|f| f.s)
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "dispatch sequence numbers increase: {sequences:?}"
    );

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_message_edits_apply_and_ephemeral_messages_stay_out_of_reach() {
    let fake = DiscordFake::start().await;
    let bot = Bot::start(&fake).await;
    let card_id = post_card(&bot, &fake).await;
    let channel = ChannelId::new(fake.channel_id());

    let decided = CreateEmbed::new()
        .title("Rejected")
        .field("Decided by", "alice", false);
    let edited = channel
        .edit_message(
            &bot.http,
            MessageId::new(card_id),
            EditMessage::new().embed(decided).components(vec![]),
        )
        .await
        .expect("the edited message deserializes in serenity");
    assert_eq!(edited.embeds[0].title.as_deref(), Some("Rejected"));
    let card = fake.message(card_id).unwrap();
    assert_eq!(card.content, "New finding", "absent keys stay as they were");
    assert_eq!(card.embed_text(), "Rejected\nDecided by\nalice");
    assert!(card.components.is_empty());
    assert_eq!(card.edits, 1);

    let fetched = bot
        .http
        .get_message(channel, MessageId::new(card_id))
        .await
        .unwrap();
    assert_eq!(fetched.id.get(), card_id);

    // An ephemeral reply is reachable only through its interaction's webhook.
    let ping = fake.inject_slash_command("ping", json!({}), &alice());
    fake.wait_for_callback(&ping, WAIT).await.unwrap();
    let reply = fake.original_response(&ping).unwrap();
    let err = bot
        .http
        .get_message(channel, MessageId::new(reply.id))
        .await
        .expect_err("ephemeral messages are not channel messages");
    assert_eq!(status_and_code(&err), (404, 10008));
    let original = bot
        .http
        .get_original_interaction_response(&ping.token)
        .await
        .unwrap();
    assert_eq!(original.id.get(), reply.id);

    bot.stop().await;
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_allowed_mentions_are_checked_as_discord_does() {
    let fake = DiscordFake::start().await;
    let http = HttpBuilder::new(fake.token())
        .proxy(fake.base_url())
        .ratelimiter_disabled(true)
        .build();
    let channel = ChannelId::new(fake.channel_id());
    let card = http
        .send_message(channel, vec![], &json!({"content": "card"}))
        .await
        .unwrap();
    let send = |body: Value| {
        let http = &http;
        async move { http.send_message(channel, vec![], &body).await }
    };

    // A reply to a message that exists.
    let reply = send(json!({
        "content": "reminder",
        "message_reference": { "message_id": card.id.get().to_string() }
    }))
    .await;
    assert!(reply.is_ok(), "{reply:?}");
    // To one that does not: refused, unless fail_if_not_exists is false.
    let err = send(json!({
        "content": "reminder",
        "message_reference": { "message_id": "42" }
    }))
    .await
    .expect_err("unknown message");
    assert_eq!(status_and_code(&err), (400, 50035));
    let lenient = send(json!({
        "content": "reminder",
        "message_reference": { "message_id": "42", "fail_if_not_exists": false }
    }))
    .await;
    assert!(lenient.is_ok(), "{lenient:?}");

    // parse "roles" with a roles list: mutually exclusive.
    let err = send(json!({
        "content": "<@&1180000000000000700>",
        "allowed_mentions": { "parse": ["roles"], "roles": ["1180000000000000700"] }
    }))
    .await
    .expect_err("parse and roles together");
    assert_eq!(status_and_code(&err), (400, 50035));
    let err = send(json!({
        "content": "x",
        "allowed_mentions": { "parse": ["admins"] }
    }))
    .await
    .expect_err("unknown parse value");
    assert_eq!(status_and_code(&err), (400, 50035));
    let ok = send(json!({
        "content": "<@&1180000000000000700>",
        "allowed_mentions": { "parse": [], "roles": ["1180000000000000700"] }
    }))
    .await;
    assert!(ok.is_ok(), "{ok:?}");
    fake.shutdown().await;
}
