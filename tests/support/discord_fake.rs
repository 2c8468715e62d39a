//! A local fake of Discord's REST API and gateway, for the end-to-end tests.
//!
//! It owns everything the real bot (serenity 0.12) sees of Discord during a test: REST on one
//! `127.0.0.1` port (paths under `/api/v10/...`), the gateway websocket on another, the messages
//! the bot posted and edited, the interactions injected by the test, the registered commands and
//! a per-channel rate limit. It never imports the hanko crate: it speaks only Discord's wire
//! format, so a test checks the bot against the protocol rather than against itself.
//!
//! Pointing serenity at it (serenity rewrites `https://discord.com` in every route to the proxy,
//! and ignores the proxy while its own ratelimiter is on):
//!
//! ```ignore
//! let http = HttpBuilder::new(fake.token()).proxy(fake.base_url()).ratelimiter_disabled(true).build();
//! let client = ClientBuilder::new_with_http(http, intents).event_handler(handler).await?;
//! ```
//!
//! What it does like Discord, so mistakes fail loudly instead of passing against a lenient fake:
//! - every REST request is recorded (method, path, query, headers, JSON body or multipart
//!   `payload_json` plus files, status and response) before the response leaves;
//! - unknown routes answer 404 `{"message": "404: Not Found", "code": 0}`;
//! - REST outside interactions and webhooks needs `Authorization: Bot <token>` (401 otherwise),
//!   and IDENTIFY with another token is closed with 4004;
//! - message payloads are checked against Discord's limits (content 2000, 10 embeds, title 256,
//!   description 4096, 25 fields, field 256/1024, footer 2048, 6000 over all embeds, 5 rows of at
//!   most 5 components, `custom_id` 1..=100 and unique, label 80) and rejected with 400 / 50035
//!   and Discord's nested `errors`; an empty message is 400 / 50006;
//! - an interaction is answered once (a second callback is 400 / 40060), only with a response
//!   type valid for its kind, and within `interaction_deadline` of its dispatch (3 s like
//!   Discord; later is 404 / 10062); `@original` exists only once the interaction was answered;
//! - with [`DiscordFake::set_channel_rate_limit`], creating messages beyond the limit in a window
//!   answers 429 with `retry_after` and the `X-RateLimit-*` headers; with
//!   [`DiscordFake::rate_limit_next_posts`] the next N messages created are answered so, with a
//!   chosen `retry_after`.
//!
//! Discord's HTTP interactions endpoint: [`DiscordFake::http_button`] and
//! [`DiscordFake::http_slash_command`] build an interaction without putting it on the gateway;
//! [`DiscordFake::deliver`] POSTs it, signed with an Ed25519 key the test made, to the bot's
//! `/interactions` and applies the HTTP answer as the callback (checked like one, so a type not
//! valid for the interaction fails), after which followups and `@original` edits work.
//! [`post_signed`] and [`post_raw`] send anything else (a PING, a forgery).
//! [`DiscordFake::gateway_connections`] counts websocket connections, to show none was opened.
//!
//! Synchronisation: every change (request recorded, frame exchanged) bumps a `watch` counter, and
//! the `wait_for_*` helpers re-check their condition on each bump until a deadline. Nothing here
//! sleeps. Injected events that arrive before the bot is connected are queued and dispatched once
//! a session is READY (or RESUMED).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Discord's epoch (2015-01-01) in Unix milliseconds, for plausible snowflakes.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// `MessageFlags::EPHEMERAL`.
pub const EPHEMERAL: u64 = 1 << 6;
/// `MessageFlags::LOADING`: a deferred response not yet edited.
pub const LOADING: u64 = 1 << 7;
/// Permissions the bot has in the channel: view, send, embed links, attach files, read history,
/// use application commands.
const APP_PERMISSIONS: u64 = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31);
/// Default per-attachment upload limit (10 MiB), sent as `attachment_size_limit`.
const ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;
/// Largest request body accepted (Discord allows 25 MB uploads).
const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
const GATEWAY_VERSION: u64 = 10;

/// Interaction types (Discord `InteractionType`).
pub const INTERACTION_APPLICATION_COMMAND: u8 = 2;
pub const INTERACTION_MESSAGE_COMPONENT: u8 = 3;
pub const INTERACTION_AUTOCOMPLETE: u8 = 4;
pub const INTERACTION_MODAL_SUBMIT: u8 = 5;

/// Interaction callback types (Discord `InteractionCallbackType`).
pub const CALLBACK_MESSAGE: u64 = 4;
pub const CALLBACK_DEFERRED_MESSAGE: u64 = 5;
pub const CALLBACK_DEFERRED_UPDATE: u64 = 6;
pub const CALLBACK_UPDATE_MESSAGE: u64 = 7;
pub const CALLBACK_AUTOCOMPLETE: u64 = 8;
pub const CALLBACK_MODAL: u64 = 9;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Identities and timings of the fake Discord. The defaults are fixed, realistic snowflakes so a
/// test can write them into the bot's configuration.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// Bot token the fake accepts (without the `Bot ` prefix).
    pub token: String,
    /// Application id; also the bot user's id, as on Discord.
    pub application_id: u64,
    pub bot_username: String,
    /// The guild the bot works in and its incident channel.
    pub guild_id: u64,
    pub channel_id: u64,
    /// A second text channel of the same guild ([`Origin::OtherChannel`]).
    pub other_channel_id: u64,
    /// A guild the bot is not configured for, and a channel in it ([`Origin::OtherGuild`]).
    pub other_guild_id: u64,
    pub other_guild_channel_id: u64,
    /// The DM channel between a user and the bot ([`Origin::Dm`]).
    pub dm_channel_id: u64,
    /// `heartbeat_interval` sent in HELLO.
    pub heartbeat_interval: Duration,
    /// How long after dispatch an interaction may still be answered (`None`: forever).
    pub interaction_deadline: Option<Duration>,
    /// Whether `GET /oauth2/applications/@me` (and `/applications/@me`) answers; `false`: 500,
    /// as during an outage of that route.
    pub application_info: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            token: "hanko-fake-token.not-a-real-secret".to_string(),
            application_id: 1_180_000_000_000_000_010,
            bot_username: "hanko".to_string(),
            guild_id: 1_180_000_000_000_000_100,
            channel_id: 1_180_000_000_000_000_101,
            other_channel_id: 1_180_000_000_000_000_102,
            other_guild_id: 1_180_000_000_000_000_200,
            other_guild_channel_id: 1_180_000_000_000_000_201,
            dm_channel_id: 1_180_000_000_000_000_300,
            heartbeat_interval: Duration::from_millis(41_250),
            interaction_deadline: Some(Duration::from_secs(3)),
            application_info: true,
        }
    }
}

/// The person clicking or typing: a guild member with role ids (snowflake strings).
#[derive(Clone, Debug)]
pub struct FakeMember {
    pub user_id: u64,
    pub username: String,
    pub roles: Vec<String>,
}

impl FakeMember {
    /// A member; every role must be a snowflake (serenity drops the whole interaction otherwise).
    pub fn new(user_id: u64, username: &str, roles: &[&str]) -> FakeMember {
        for role in roles {
            assert!(
                role.parse::<u64>().is_ok_and(|id| id > 0),
                "FakeMember role {role:?} is not a snowflake; Discord sends role ids as numeric strings"
            );
        }
        FakeMember {
            user_id,
            username: username.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Discord's user object for this member.
    pub fn user_json(&self) -> Value {
        json!({
            "id": self.user_id.to_string(),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.username,
            "avatar": null,
            "bot": false,
            "public_flags": 0,
        })
    }

    /// Discord's guild member object, as sent inside an interaction (with `permissions`).
    pub fn member_json(&self) -> Value {
        json!({
            "user": self.user_json(),
            "nick": null,
            "avatar": null,
            "banner": null,
            "roles": self.roles,
            "joined_at": "2024-01-15T09:30:00.000000+00:00",
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "permissions": APP_PERMISSIONS.to_string(),
            "communication_disabled_until": null,
            "unusual_dm_activity_until": null,
        })
    }
}

/// Where an injected interaction comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The configured guild and channel.
    Home,
    /// The configured guild, another channel.
    OtherChannel,
    /// Another guild (the member object is sent, with that guild's id).
    OtherGuild,
    /// A direct message to the bot: `user` instead of `member`, no `guild_id`.
    Dm,
    /// Any guild (or none) and channel.
    Custom {
        guild_id: Option<u64>,
        channel_id: u64,
    },
}

/// What the test gets back from an injection, to find the bot's answer.
#[derive(Clone, Debug)]
pub struct InjectedInteraction {
    pub id: u64,
    pub token: String,
    /// Interaction type (2 command, 3 component, 4 autocomplete, 5 modal submit).
    pub kind: u8,
    pub injected_at: Instant,
}

impl InjectedInteraction {
    /// The callback path, relative to `/api/v10`.
    pub fn callback_path(&self) -> String {
        format!("/interactions/{}/{}/callback", self.id, self.token)
    }

    /// Whether `request` is this interaction's callback.
    pub fn is_callback(&self, request: &RecordedRequest) -> bool {
        request.method == "POST" && request.api_path() == self.callback_path()
    }

    /// Whether `request` uses this interaction's webhook (followups, `@original`).
    pub fn is_webhook_call(&self, request: &RecordedRequest) -> bool {
        request
            .api_path()
            .strip_prefix("/webhooks/")
            .and_then(|rest| rest.split('/').nth(1))
            .is_some_and(|token| token == self.token)
    }
}

/// The header marking a recorded callback that was the HTTP response to a delivered interaction
/// ([`DiscordFake::deliver`]) rather than a callback POST.
pub const HTTP_RESPONSE_HEADER: &str = "x-fake-delivered-over-http";

/// An interaction built for delivery over HTTP, registered with the fake.
#[derive(Clone, Debug)]
pub struct HttpInteraction {
    pub interaction: InjectedInteraction,
    /// The JSON Discord POSTs.
    pub payload: Value,
}

/// What an interactions endpoint answered.
#[derive(Clone, Debug)]
pub struct EndpointAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    /// The body as JSON, when it is JSON.
    pub body: Option<Value>,
    pub text: String,
    /// From sending the request to the whole answer.
    pub elapsed: Duration,
}

/// Discord's signature (`X-Signature-Ed25519`, hex) of `body` at `timestamp`.
pub fn sign(key: &ed25519_dalek::SigningKey, timestamp: &str, body: &[u8]) -> String {
    use ed25519_dalek::Signer;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    hex::encode(key.sign(&message).to_bytes())
}

/// POSTs `body` to an interactions endpoint signed with `key` at the current time, as Discord
/// does (a PING, say); nothing is applied to the fake.
pub async fn post_signed(
    endpoint: &str,
    key: &ed25519_dalek::SigningKey,
    body: &[u8],
) -> EndpointAnswer {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
        .to_string();
    let signature = sign(key, &timestamp, body);
    post_raw(
        endpoint,
        &[
            ("x-signature-ed25519", signature.as_str()),
            ("x-signature-timestamp", timestamp.as_str()),
        ],
        body,
    )
    .await
}

/// POSTs `body` with exactly `headers` (and a JSON content type), for forged or malformed
/// requests.
pub async fn post_raw(endpoint: &str, headers: &[(&str, &str)], body: &[u8]) -> EndpointAnswer {
    let client = reqwest::Client::new();
    let mut request = client
        .post(endpoint)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "Discord-Interactions/1.0 (+https://discord.com)",
        )
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {endpoint}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("POST {endpoint}: reading the answer: {e}"));
    let text = String::from_utf8_lossy(&bytes).to_string();
    EndpointAnswer {
        status,
        content_type,
        body: serde_json::from_slice(&bytes).ok(),
        text,
        elapsed: started.elapsed(),
    }
}

/// A file part of a multipart request.
#[derive(Clone, Debug)]
pub struct FakeFile {
    /// Form field name (`files[0]`).
    pub field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// One REST request as the fake received it, with what it answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Position in arrival order, from 0.
    pub seq: usize,
    pub method: String,
    /// Full path, e.g. `/api/v10/channels/1/messages`.
    pub path: String,
    pub query: Option<String>,
    /// All request headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or the `payload_json` part of a multipart body.
    pub body: Option<Value>,
    pub files: Vec<FakeFile>,
    pub status: u16,
    pub response: Option<Value>,
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The path without the `/api/v10` prefix.
    pub fn api_path(&self) -> &str {
        self.path.strip_prefix("/api/v10").unwrap_or(&self.path)
    }

    /// Whether this is `method` on `pattern`, a path relative to `/api/v10` where `*` matches
    /// one segment: `r.matches("PATCH", "/channels/*/messages/*")`.
    pub fn matches(&self, method: &str, pattern: &str) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let mut have = self.api_path().split('/');
        let mut want = pattern.split('/');
        loop {
            match (have.next(), want.next()) {
                (None, None) => return true,
                (Some(h), Some(w)) if w == "*" || w == h => continue,
                _ => return false,
            }
        }
    }

    /// A value in the JSON body by JSON pointer (`/data/flags`).
    pub fn body_at(&self, pointer: &str) -> Option<&Value> {
        self.body.as_ref().and_then(|b| b.pointer(pointer))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn describe(&self) -> String {
        format!(
            "#{} {} {} -> {}",
            self.seq, self.method, self.path, self.status
        )
    }
}

/// Where a stored message came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageSource {
    /// `POST /channels/{id}/messages`.
    ChannelPost,
    /// The initial response of an interaction (callback type 4 or 5).
    InteractionResponse { interaction_id: u64 },
    /// `POST /webhooks/{app}/{token}`.
    Followup { interaction_id: u64 },
}

/// An uploaded attachment of a stored message.
#[derive(Clone, Debug)]
pub struct FakeAttachment {
    pub id: u64,
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The current state of a message the bot created, after every edit.
#[derive(Clone, Debug)]
pub struct FakeMessage {
    pub id: u64,
    pub channel_id: u64,
    pub guild_id: Option<u64>,
    pub content: String,
    pub embeds: Vec<Value>,
    pub components: Vec<Value>,
    pub attachments: Vec<FakeAttachment>,
    pub flags: u64,
    pub source: MessageSource,
    /// How many edits were applied.
    pub edits: u32,
    pub deleted: bool,
    timestamp: String,
    edited_timestamp: Option<String>,
}

impl FakeMessage {
    pub fn is_ephemeral(&self) -> bool {
        self.flags & EPHEMERAL != 0
    }

    /// All components (buttons, selects) across the action rows.
    pub fn all_components(&self) -> Vec<&Value> {
        self.components
            .iter()
            .flat_map(|row| row["components"].as_array().into_iter().flatten())
            .collect()
    }

    /// The `custom_id`s of all components, in order.
    pub fn custom_ids(&self) -> Vec<String> {
        self.all_components()
            .into_iter()
            .filter_map(|c| c["custom_id"].as_str().map(str::to_string))
            .collect()
    }

    /// The button labels, in order.
    pub fn button_labels(&self) -> Vec<String> {
        self.all_components()
            .into_iter()
            .filter(|c| c["type"] == 2)
            .filter_map(|c| c["label"].as_str().map(str::to_string))
            .collect()
    }

    /// The `custom_id` of the button labelled `label`.
    pub fn custom_id_of(&self, label: &str) -> Option<String> {
        self.all_components()
            .into_iter()
            .find(|c| c["type"] == 2 && c["label"] == label)
            .and_then(|c| c["custom_id"].as_str().map(str::to_string))
    }

    /// The text of all embeds (titles, descriptions, field names and values, footers, authors),
    /// one piece per line, for `contains` assertions.
    pub fn embed_text(&self) -> String {
        let mut out = Vec::new();
        for embed in &self.embeds {
            for pointer in ["/author/name", "/title", "/description"] {
                if let Some(s) = embed.pointer(pointer).and_then(Value::as_str) {
                    out.push(s.to_string());
                }
            }
            for field in embed["fields"].as_array().into_iter().flatten() {
                for key in ["name", "value"] {
                    if let Some(s) = field[key].as_str() {
                        out.push(s.to_string());
                    }
                }
            }
            if let Some(s) = embed.pointer("/footer/text").and_then(Value::as_str) {
                out.push(s.to_string());
            }
        }
        out.join("\n")
    }

    fn to_json(&self, author: &Value, application_id: u64, base_url: &str) -> Value {
        let attachments: Vec<Value> = self
            .attachments
            .iter()
            .map(|a| {
                let url = format!(
                    "{base_url}/attachments/{}/{}/{}",
                    self.channel_id, a.id, a.filename
                );
                json!({
                    "id": a.id.to_string(),
                    "filename": a.filename,
                    "size": a.data.len(),
                    "url": url,
                    "proxy_url": url,
                    "content_type": a.content_type,
                })
            })
            .collect();
        let mut message = json!({
            "id": self.id.to_string(),
            "channel_id": self.channel_id.to_string(),
            "author": author,
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": false,
            "type": 0,
            "flags": self.flags,
        });
        if let Some(guild_id) = self.guild_id {
            message["guild_id"] = json!(guild_id.to_string());
        }
        if self.source != MessageSource::ChannelPost {
            message["application_id"] = json!(application_id.to_string());
            message["webhook_id"] = json!(application_id.to_string());
        }
        message
    }
}

/// One gateway frame, in either direction.
#[derive(Clone, Debug)]
pub struct GatewayFrame {
    /// Connection number, from 1.
    pub connection: u64,
    /// `true` for frames the fake sent.
    pub outgoing: bool,
    pub op: u64,
    pub t: Option<String>,
    pub s: Option<u64>,
    pub d: Value,
    pub at: Instant,
}

/// What the bot sent in IDENTIFY.
#[derive(Clone, Debug)]
pub struct IdentifyInfo {
    pub connection: u64,
    /// The token as sent (serenity sends `Bot <token>`).
    pub token: String,
    pub intents: u64,
    pub shard: Option<(u64, u64)>,
    pub raw: Value,
}

// ---------------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------------

/// A running fake Discord. Dropping it stops its servers.
pub struct DiscordFake {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DiscordFake {
    /// Starts the fake with the default [`FakeOptions`].
    pub async fn start() -> DiscordFake {
        Self::start_with(FakeOptions::default()).await
    }

    /// Starts the REST server and the gateway on free ports of 127.0.0.1.
    pub async fn start_with(options: FakeOptions) -> DiscordFake {
        let rest = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("discord fake: bind the REST port on 127.0.0.1");
        let gateway = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("discord fake: bind the gateway port on 127.0.0.1");
        let rest_addr = rest.local_addr().expect("discord fake: REST address");
        let gateway_addr = gateway.local_addr().expect("discord fake: gateway address");
        let (changed, _) = watch::channel(0u64);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(DISCORD_EPOCH_MS);
        let shared = Arc::new(Shared {
            options,
            rest_addr,
            gateway_addr,
            state: Mutex::new(State::default()),
            changed,
            next_id: AtomicU64::new((now_ms.saturating_sub(DISCORD_EPOCH_MS)) << 22),
        });

        let router = Router::new()
            .fallback(handle_rest)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(&shared));
        let mut rest_shutdown = shutdown_rx.clone();
        let rest_task = tokio::spawn(async move {
            let serve = axum::serve(rest, router).with_graceful_shutdown(async move {
                let _ = rest_shutdown.wait_for(|stop| *stop).await;
            });
            if let Err(err) = serve.await {
                eprintln!("discord fake: REST server stopped: {err}");
            }
        });
        let gateway_task = tokio::spawn(serve_gateway(Arc::clone(&shared), gateway, shutdown_rx));

        DiscordFake {
            shared,
            shutdown,
            tasks: vec![rest_task, gateway_task],
        }
    }

    // ---- identities ---------------------------------------------------------------------

    /// What to pass to `HttpBuilder::proxy`: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.rest_addr)
    }

    /// The gateway URL returned by `GET /gateway`.
    pub fn gateway_url(&self) -> String {
        self.shared.gateway_url()
    }

    pub fn options(&self) -> &FakeOptions {
        &self.shared.options
    }

    pub fn token(&self) -> &str {
        &self.shared.options.token
    }

    pub fn application_id(&self) -> u64 {
        self.shared.options.application_id
    }

    pub fn bot_user_id(&self) -> u64 {
        self.shared.options.application_id
    }

    pub fn guild_id(&self) -> u64 {
        self.shared.options.guild_id
    }

    pub fn channel_id(&self) -> u64 {
        self.shared.options.channel_id
    }

    /// A fresh snowflake (for ids a test needs to invent).
    pub fn new_id(&self) -> u64 {
        self.shared.new_id()
    }

    // ---- inspection ---------------------------------------------------------------------

    /// Every REST request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests that matched `method` and `pattern` (see [`RecordedRequest::matches`]).
    pub fn requests_matching(&self, method: &str, pattern: &str) -> Vec<RecordedRequest> {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|r| r.matches(method, pattern))
            .cloned()
            .collect()
    }

    /// The current state of a message, if the bot created it (deleted ones included).
    pub fn message(&self, id: u64) -> Option<FakeMessage> {
        self.shared.lock().messages.get(&id).cloned()
    }

    /// All messages the bot created, oldest first.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.shared.lock().messages.values().cloned().collect()
    }

    /// Messages posted with `POST /channels/{channel_id}/messages` and not deleted, oldest first.
    pub fn channel_posts(&self, channel_id: u64) -> Vec<FakeMessage> {
        self.shared
            .lock()
            .messages
            .values()
            .filter(|m| {
                m.channel_id == channel_id && m.source == MessageSource::ChannelPost && !m.deleted
            })
            .cloned()
            .collect()
    }

    /// The message an interaction's `@original` points at, once it was answered.
    pub fn original_response(&self, interaction: &InjectedInteraction) -> Option<FakeMessage> {
        let state = self.shared.lock();
        let id = state
            .interactions
            .get(&interaction.token)?
            .original_message?;
        state.messages.get(&id).cloned()
    }

    /// The commands registered in `guild_id` (`None`: global), as the fake echoed them.
    pub fn commands(&self, guild_id: Option<u64>) -> Vec<Value> {
        self.shared
            .lock()
            .commands
            .get(&guild_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every gateway frame so far, both directions.
    pub fn gateway_frames(&self) -> Vec<GatewayFrame> {
        self.shared.lock().gateway.frames.clone()
    }

    /// How many requests were answered 429.
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.lock().rate_limited
    }

    // ---- behaviour ----------------------------------------------------------------------

    /// Answers `POST /channels/{id}/messages` with 429 beyond `limit` messages per channel in a
    /// window of `per` that opens with the first message (Discord's bucket behaviour).
    pub fn set_channel_rate_limit(&self, limit: u32, per: Duration) {
        let mut state = self.shared.lock();
        state.rate_limit = Some((limit, per));
        state.windows.clear();
    }

    pub fn clear_channel_rate_limit(&self) {
        let mut state = self.shared.lock();
        state.rate_limit = None;
        state.windows.clear();
        state.forced_429 = None;
    }

    /// Answers the next `count` `POST /channels/{id}/messages` (any channel) with a 429 asking
    /// to wait `retry_after`, as Discord answers a bot over its own limit: `Retry-After` in whole
    /// seconds rounded up, `X-RateLimit-Reset-After` with decimals, `X-RateLimit-Scope: user`,
    /// and the body `{"message", "retry_after", "global": false}` (see [`user_rate_limited`]).
    /// Those posts create nothing; the ones after are answered as usual.
    pub fn rate_limit_next_posts(&self, count: u32, retry_after: Duration) {
        self.shared.lock().forced_429 = Some((count, retry_after));
    }

    /// Sends op 7 RECONNECT on the live connection; serenity reconnects and RESUMEs.
    pub fn request_reconnect(&self) -> Result<(), String> {
        let state = self.shared.lock();
        match &state.gateway.live {
            Some((_, tx)) => tx
                .send(ConnCommand::Reconnect)
                .map_err(|_| "the live gateway connection is gone".to_string()),
            None => Err("no live gateway connection".to_string()),
        }
    }

    // ---- waiting ------------------------------------------------------------------------

    /// The first recorded request (from the start) satisfying `predicate`.
    pub async fn wait_for_request(
        &self,
        predicate: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Result<RecordedRequest, String> {
        self.wait_until(timeout, "a matching REST request", |state| {
            state.requests.iter().find(|r| predicate(r)).cloned()
        })
        .await
    }

    /// The first `count` recorded requests satisfying `predicate`.
    pub async fn wait_for_requests(
        &self,
        predicate: impl Fn(&RecordedRequest) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, String> {
        let what = format!("{count} matching REST requests");
        self.wait_until(timeout, &what, |state| {
            let found: Vec<_> = state
                .requests
                .iter()
                .filter(|r| predicate(r))
                .take(count)
                .cloned()
                .collect();
            (found.len() == count).then_some(found)
        })
        .await
    }

    /// The callback (`POST /interactions/{id}/{token}/callback`) of an injected interaction.
    pub async fn wait_for_callback(
        &self,
        interaction: &InjectedInteraction,
        timeout: Duration,
    ) -> Result<RecordedRequest, String> {
        self.wait_for_request(|r| interaction.is_callback(r), timeout)
            .await
    }

    /// The first stored message satisfying `predicate` (re-checked after every request).
    pub async fn wait_for_message(
        &self,
        predicate: impl Fn(&FakeMessage) -> bool,
        timeout: Duration,
    ) -> Result<FakeMessage, String> {
        self.wait_until(timeout, "a matching message", |state| {
            state.messages.values().find(|m| predicate(m)).cloned()
        })
        .await
    }

    /// The first IDENTIFY the bot sent.
    pub async fn wait_for_identify(&self, timeout: Duration) -> Result<IdentifyInfo, String> {
        self.wait_until(timeout, "IDENTIFY", |state| {
            state.gateway.identifies.first().cloned()
        })
        .await
    }

    /// Until a session is live (READY or RESUMED sent), so injected events go out at once.
    pub async fn wait_for_ready(&self, timeout: Duration) -> Result<(), String> {
        self.wait_until(timeout, "a READY gateway session", |state| {
            state.gateway.live.as_ref().map(|_| ())
        })
        .await
    }

    /// The first gateway frame (from the start) satisfying `predicate`.
    pub async fn wait_for_frame(
        &self,
        predicate: impl Fn(&GatewayFrame) -> bool,
        timeout: Duration,
    ) -> Result<GatewayFrame, String> {
        self.wait_until(timeout, "a matching gateway frame", |state| {
            state.gateway.frames.iter().find(|f| predicate(f)).cloned()
        })
        .await
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, String> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = {
                let state = self.shared.lock();
                check(&state)
            };
            if let Some(found) = found {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(format!("discord fake stopped while waiting for {what}")),
                Err(_) => {
                    let state = self.shared.lock();
                    if let Some(found) = check(&state) {
                        return Ok(found);
                    }
                    let seen: Vec<String> = state
                        .requests
                        .iter()
                        .map(RecordedRequest::describe)
                        .collect();
                    return Err(format!(
                        "timed out after {timeout:?} waiting for {what}; REST requests seen:\n  {}",
                        if seen.is_empty() {
                            "(none)".to_string()
                        } else {
                            seen.join("\n  ")
                        }
                    ));
                }
            }
        }
    }

    // ---- injection ----------------------------------------------------------------------

    /// A slash command in the home channel. `options` is either Discord's option array
    /// (`[{"name", "type", "value"}]`) or an object `{"name": value}`, typed from the registered
    /// command when there is one, else from the JSON value.
    pub fn inject_slash_command(
        &self,
        name: &str,
        options: Value,
        member: &FakeMember,
    ) -> InjectedInteraction {
        self.inject_slash_command_from(Origin::Home, name, options, member)
    }

    pub fn inject_slash_command_from(
        &self,
        origin: Origin,
        name: &str,
        options: Value,
        member: &FakeMember,
    ) -> InjectedInteraction {
        let data = self.command_data(&origin, name, options, None);
        self.inject(INTERACTION_APPLICATION_COMMAND, origin, member, data, None)
    }

    /// An autocomplete request while the user types `partial` into option `focused`.
    pub fn inject_autocomplete(
        &self,
        name: &str,
        options: Value,
        focused: &str,
        partial: &str,
        member: &FakeMember,
    ) -> InjectedInteraction {
        let data = self.command_data(&Origin::Home, name, options, Some((focused, partial)));
        self.inject(INTERACTION_AUTOCOMPLETE, Origin::Home, member, data, None)
    }

    /// A click on button `custom_id` of message `message_id`, in the home channel.
    pub fn inject_button(
        &self,
        custom_id: &str,
        message_id: u64,
        member: &FakeMember,
    ) -> InjectedInteraction {
        self.inject_button_from(Origin::Home, custom_id, message_id, member)
    }

    pub fn inject_button_from(
        &self,
        origin: Origin,
        custom_id: &str,
        message_id: u64,
        member: &FakeMember,
    ) -> InjectedInteraction {
        let (_, channel_id, _) = self.shared.resolve(&origin);
        let message = self.shared.message_json_or_stub(message_id, channel_id);
        let data = json!({"custom_id": custom_id, "component_type": 2});
        self.inject(
            INTERACTION_MESSAGE_COMPONENT,
            origin,
            member,
            data,
            Some(message),
        )
    }

    /// A modal submit with text inputs `fields` (`(custom_id, value)`). When the bot opened a
    /// modal with this `custom_id` from a component, the submit carries that component's message,
    /// as Discord does.
    pub fn inject_modal_submit(
        &self,
        custom_id: &str,
        fields: &[(&str, &str)],
        member: &FakeMember,
    ) -> InjectedInteraction {
        self.inject_modal_submit_from(Origin::Home, custom_id, fields, member)
    }

    pub fn inject_modal_submit_from(
        &self,
        origin: Origin,
        custom_id: &str,
        fields: &[(&str, &str)],
        member: &FakeMember,
    ) -> InjectedInteraction {
        let rows: Vec<Value> = fields
            .iter()
            .map(|(id, value)| {
                json!({"type": 1, "components": [{"type": 4, "custom_id": id, "value": value}]})
            })
            .collect();
        let data = json!({"custom_id": custom_id, "components": rows});
        let source_message = {
            let state = self.shared.lock();
            state
                .interactions
                .values()
                .filter(|i| i.modal_custom_id.as_deref() == Some(custom_id))
                .filter_map(|i| i.source_message.map(|m| (i.delivered_at, m)))
                .max_by_key(|(at, _)| *at)
                .map(|(_, m)| m)
        };
        let (_, channel_id, _) = self.shared.resolve(&origin);
        let message = source_message.map(|id| self.shared.message_json_or_stub(id, channel_id));
        self.inject(INTERACTION_MODAL_SUBMIT, origin, member, data, message)
    }

    /// Dispatches any interaction payload built by the caller (`id` and `token` are replaced).
    pub fn inject_raw_interaction(&self, mut payload: Value) -> InjectedInteraction {
        let id = self.shared.new_id();
        let token = interaction_token(id);
        payload["id"] = json!(id.to_string());
        payload["token"] = json!(token);
        let kind = payload["type"].as_u64().unwrap_or(0) as u8;
        let channel_id = parse_id(&payload["channel_id"]).unwrap_or(self.channel_id());
        let guild_id = parse_id(&payload["guild_id"]);
        let source_message = parse_id(&payload["message"]["id"]);
        self.register_and_dispatch(
            id,
            token,
            kind,
            channel_id,
            guild_id,
            source_message,
            Some(payload),
        )
    }

    fn inject(
        &self,
        kind: u8,
        origin: Origin,
        member: &FakeMember,
        data: Value,
        message: Option<Value>,
    ) -> InjectedInteraction {
        self.build(kind, origin, member, data, message, true).0
    }

    /// Builds an interaction payload as Discord sends it and registers it; `dispatch` queues it
    /// on the gateway too (otherwise it is delivered over HTTP with [`DiscordFake::deliver`]).
    fn build(
        &self,
        kind: u8,
        origin: Origin,
        member: &FakeMember,
        data: Value,
        message: Option<Value>,
        dispatch: bool,
    ) -> (InjectedInteraction, Value) {
        let opts = &self.shared.options;
        let id = self.shared.new_id();
        let token = interaction_token(id);
        let (guild_id, channel_id, channel_type) = self.shared.resolve(&origin);
        let mut channel = json!({"id": channel_id.to_string(), "type": channel_type});
        let mut payload = json!({
            "id": id.to_string(),
            "application_id": opts.application_id.to_string(),
            "type": kind,
            "data": data,
            "channel_id": channel_id.to_string(),
            "token": token,
            "version": 1,
            "app_permissions": APP_PERMISSIONS.to_string(),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        });
        match guild_id {
            Some(guild_id) => {
                channel["guild_id"] = json!(guild_id.to_string());
                channel["name"] = json!(format!("channel-{channel_id}"));
                payload["guild_id"] = json!(guild_id.to_string());
                payload["guild"] =
                    json!({"id": guild_id.to_string(), "locale": "en-US", "features": []});
                payload["guild_locale"] = json!("en-US");
                payload["member"] = member.member_json();
                payload["authorizing_integration_owners"] = json!({"0": guild_id.to_string()});
                payload["context"] = json!(0);
            }
            None => {
                channel["recipients"] = json!([member.user_json()]);
                payload["user"] = member.user_json();
                payload["authorizing_integration_owners"] = json!({"0": "0"});
                payload["context"] = json!(1);
            }
        }
        payload["channel"] = channel;
        let source_message = message.as_ref().and_then(|m| parse_id(&m["id"]));
        if let Some(message) = message {
            payload["message"] = message;
        }
        let injected = self.register_and_dispatch(
            id,
            token,
            kind,
            channel_id,
            guild_id,
            source_message,
            dispatch.then(|| payload.clone()),
        );
        (injected, payload)
    }

    #[allow(clippy::too_many_arguments)]
    fn register_and_dispatch(
        &self,
        id: u64,
        token: String,
        kind: u8,
        channel_id: u64,
        guild_id: Option<u64>,
        source_message: Option<u64>,
        payload: Option<Value>,
    ) -> InjectedInteraction {
        let injected_at = Instant::now();
        {
            let mut state = self.shared.lock();
            state.interactions.insert(
                token.clone(),
                InteractionState {
                    id,
                    kind,
                    channel_id,
                    guild_id,
                    source_message,
                    delivered_at: None,
                    responded: None,
                    original_message: None,
                    modal_custom_id: None,
                    messages: Vec::new(),
                },
            );
            if let Some(payload) = payload {
                state.gateway.pending.push_back(PendingEvent {
                    t: "INTERACTION_CREATE".to_string(),
                    d: payload,
                    interaction_token: Some(token.clone()),
                });
                if let Some((_, tx)) = &state.gateway.live {
                    let _ = tx.send(ConnCommand::Flush);
                }
            }
        }
        self.shared.bump();
        InjectedInteraction {
            id,
            token,
            kind,
            injected_at,
        }
    }

    fn command_data(
        &self,
        origin: &Origin,
        name: &str,
        options: Value,
        focused: Option<(&str, &str)>,
    ) -> Value {
        let (guild_id, _, _) = self.shared.resolve(origin);
        let registered = {
            let state = self.shared.lock();
            let find = |scope: Option<u64>| {
                state
                    .commands
                    .get(&scope)
                    .and_then(|cmds| cmds.iter().find(|c| c["name"] == name).cloned())
            };
            guild_id
                .and_then(|g| find(Some(g)).map(|c| (c, Some(g))))
                .or_else(|| find(None).map(|c| (c, None)))
        };
        let registered_options = registered
            .as_ref()
            .and_then(|(c, _)| c["options"].as_array().cloned())
            .unwrap_or_default();
        let mut options = normalize_options(options, &registered_options);
        if let Some((focused_name, partial)) = focused {
            match options.iter_mut().find(|o| o["name"] == focused_name) {
                Some(option) => {
                    option["value"] = json!(partial);
                    option["focused"] = json!(true);
                }
                None => {
                    let kind = option_type_of(&registered_options, focused_name).unwrap_or(3);
                    options.push(json!({"name": focused_name, "type": kind, "value": partial, "focused": true}));
                }
            }
        }
        let (command_id, registered_guild) = match &registered {
            Some((c, g)) => (
                parse_id(&c["id"]).unwrap_or_else(|| self.shared.new_id()),
                *g,
            ),
            None => (self.shared.new_id(), guild_id),
        };
        let mut data = json!({
            "id": command_id.to_string(),
            "name": name,
            "type": 1,
            "options": options,
        });
        if let Some(g) = registered_guild {
            data["guild_id"] = json!(g.to_string());
        }
        data
    }

    // ---- HTTP interactions ----------------------------------------------------------------

    /// A click on button `custom_id` of message `message_id` in the home channel, to deliver
    /// over HTTP ([`DiscordFake::deliver`]); nothing goes on the gateway.
    pub fn http_button(
        &self,
        custom_id: &str,
        message_id: u64,
        member: &FakeMember,
    ) -> HttpInteraction {
        let (_, channel_id, _) = self.shared.resolve(&Origin::Home);
        let message = self.shared.message_json_or_stub(message_id, channel_id);
        let data = json!({"custom_id": custom_id, "component_type": 2});
        let (interaction, payload) = self.build(
            INTERACTION_MESSAGE_COMPONENT,
            Origin::Home,
            member,
            data,
            Some(message),
            false,
        );
        HttpInteraction {
            interaction,
            payload,
        }
    }

    /// A slash command in the home channel, to deliver over HTTP (options as for
    /// [`DiscordFake::inject_slash_command`]).
    pub fn http_slash_command(
        &self,
        name: &str,
        options: Value,
        member: &FakeMember,
    ) -> HttpInteraction {
        let data = self.command_data(&Origin::Home, name, options, None);
        let (interaction, payload) = self.build(
            INTERACTION_APPLICATION_COMMAND,
            Origin::Home,
            member,
            data,
            None,
            false,
        );
        HttpInteraction {
            interaction,
            payload,
        }
    }

    /// Delivers `interaction` as Discord does to an Interactions Endpoint URL: POSTs its JSON to
    /// `endpoint`, signed with `key` at the current time. A 200 JSON answer is then applied as
    /// the interaction's callback (validated, recorded as `POST /interactions/{id}/{token}/callback`
    /// with the header [`HTTP_RESPONSE_HEADER`], so the waits on callbacks work), after which the
    /// interaction's webhook (followups, `@original`) answers, as on Discord.
    pub async fn deliver(
        &self,
        endpoint: &str,
        key: &ed25519_dalek::SigningKey,
        interaction: &HttpInteraction,
    ) -> EndpointAnswer {
        let body = interaction.payload.to_string();
        {
            let mut state = self.shared.lock();
            if let Some(stored) = state.interactions.get_mut(&interaction.interaction.token) {
                stored.delivered_at = Some(Instant::now());
            }
        }
        let answer = post_signed(endpoint, key, body.as_bytes()).await;
        if answer.status == 200 {
            let received_at = Instant::now();
            let parsed = ParsedBody {
                json: answer.body.clone(),
                files: Vec::new(),
                error: None,
            };
            let injected = &interaction.interaction;
            let path = format!("/api/v10{}", injected.callback_path());
            {
                let mut state = self.shared.lock();
                let reply = interaction_callback(
                    &self.shared,
                    &mut state,
                    &injected.id.to_string(),
                    &injected.token,
                    &parsed,
                    received_at,
                );
                let seq = state.requests.len();
                state.requests.push(RecordedRequest {
                    seq,
                    method: "POST".to_string(),
                    path,
                    query: None,
                    headers: BTreeMap::from([(HTTP_RESPONSE_HEADER.to_string(), "1".to_string())]),
                    body: answer.body.clone(),
                    files: Vec::new(),
                    status: reply.status.as_u16(),
                    response: reply.body.clone(),
                    received_at,
                });
            }
            self.shared.bump();
        }
        answer
    }

    /// How many gateway (websocket) connections were opened to the fake.
    pub fn gateway_connections(&self) -> u64 {
        self.shared.lock().gateway.connections
    }

    // ---- shutdown -----------------------------------------------------------------------

    /// Stops both servers and waits (briefly) for them to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for DiscordFake {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn interaction_token(id: u64) -> String {
    let noise: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(48)
        .collect();
    format!("aW50ZXJhY3Rpb246{id}{noise}")
}

fn parse_id(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn option_type_of(registered: &[Value], name: &str) -> Option<u64> {
    registered
        .iter()
        .find(|o| o["name"] == name)
        .and_then(|o| o["type"].as_u64())
}

/// Turns `{"name": value}` into Discord's option array; passes an array through.
fn normalize_options(options: Value, registered: &[Value]) -> Vec<Value> {
    match options {
        Value::Array(items) => items,
        Value::Object(map) => map
            .into_iter()
            .map(|(name, value)| {
                let kind = option_type_of(registered, &name).unwrap_or(match &value {
                    Value::Bool(_) => 5,
                    Value::Number(n) if n.is_f64() => 10,
                    Value::Number(_) => 4,
                    _ => 3,
                });
                json!({"name": name, "type": kind, "value": value})
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("slash command options must be an array or an object, not {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    options: FakeOptions,
    rest_addr: SocketAddr,
    gateway_addr: SocketAddr,
    state: Mutex<State>,
    /// Bumped on every change; the waiting helpers re-check on each bump.
    changed: watch::Sender<u64>,
    next_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn gateway_url(&self) -> String {
        format!("ws://{}", self.gateway_addr)
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    fn bot_user(&self) -> Value {
        json!({
            "id": self.options.application_id.to_string(),
            "username": self.options.bot_username,
            "discriminator": "0",
            "global_name": null,
            "avatar": null,
            "bot": true,
            "system": false,
            "mfa_enabled": true,
            "verified": true,
            "flags": 0,
            "public_flags": 0,
        })
    }

    /// `(guild_id, channel_id, channel type)` of an origin.
    fn resolve(&self, origin: &Origin) -> (Option<u64>, u64, u8) {
        let o = &self.options;
        match origin {
            Origin::Home => (Some(o.guild_id), o.channel_id, 0),
            Origin::OtherChannel => (Some(o.guild_id), o.other_channel_id, 0),
            Origin::OtherGuild => (Some(o.other_guild_id), o.other_guild_channel_id, 0),
            Origin::Dm => (None, o.dm_channel_id, 1),
            Origin::Custom {
                guild_id,
                channel_id,
            } => (
                *guild_id,
                *channel_id,
                if guild_id.is_some() { 0 } else { 1 },
            ),
        }
    }

    /// `Some(guild)` for a text channel the fake knows, `None` otherwise.
    fn channel_guild(&self, channel_id: u64) -> Option<u64> {
        let o = &self.options;
        if channel_id == o.channel_id || channel_id == o.other_channel_id {
            Some(o.guild_id)
        } else if channel_id == o.other_guild_channel_id {
            Some(o.other_guild_id)
        } else {
            None
        }
    }

    fn message_json(&self, message: &FakeMessage) -> Value {
        message.to_json(
            &self.bot_user(),
            self.options.application_id,
            &self.base_url(),
        )
    }

    /// The stored message as Discord would embed it, or a minimal message by the bot.
    fn message_json_or_stub(&self, message_id: u64, channel_id: u64) -> Value {
        let stored = self.lock().messages.get(&message_id).cloned();
        let message = stored.unwrap_or_else(|| FakeMessage {
            id: message_id,
            channel_id,
            guild_id: self.channel_guild(channel_id),
            content: String::new(),
            embeds: Vec::new(),
            components: Vec::new(),
            attachments: Vec::new(),
            flags: 0,
            source: MessageSource::ChannelPost,
            edits: 0,
            deleted: false,
            timestamp: now_timestamp(),
            edited_timestamp: None,
        });
        self.message_json(&message)
    }
}

fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    messages: BTreeMap<u64, FakeMessage>,
    /// By interaction token.
    interactions: HashMap<String, InteractionState>,
    /// By guild (`None`: global commands).
    commands: BTreeMap<Option<u64>, Vec<Value>>,
    rate_limit: Option<(u32, Duration)>,
    /// Per channel: window start and messages accepted in it.
    windows: HashMap<u64, (Instant, u32)>,
    /// [`DiscordFake::rate_limit_next_posts`]: posts still to refuse, and the wait they name.
    forced_429: Option<(u32, Duration)>,
    rate_limited: u64,
    gateway: GatewayState,
}

#[derive(Clone, Debug)]
struct InteractionState {
    id: u64,
    kind: u8,
    channel_id: u64,
    guild_id: Option<u64>,
    /// The message a component (or a modal opened from one) belongs to.
    source_message: Option<u64>,
    delivered_at: Option<Instant>,
    /// The callback type it was answered with.
    responded: Option<u64>,
    /// What `@original` edits.
    original_message: Option<u64>,
    /// The `custom_id` of the modal the bot opened in answer.
    modal_custom_id: Option<String>,
    /// Messages created through this interaction (original response and followups).
    messages: Vec<u64>,
}

#[derive(Default)]
struct GatewayState {
    session: Option<Session>,
    /// Events not yet sent on any connection.
    pending: VecDeque<PendingEvent>,
    /// The connection that completed READY/RESUMED and receives dispatches.
    live: Option<(u64, mpsc::UnboundedSender<ConnCommand>)>,
    frames: Vec<GatewayFrame>,
    identifies: Vec<IdentifyInfo>,
    connections: u64,
}

struct Session {
    id: String,
    seq: u64,
    /// Sent dispatches `(s, frame text)`, replayed on RESUME.
    log: Vec<(u64, String)>,
}

struct PendingEvent {
    t: String,
    d: Value,
    interaction_token: Option<String>,
}

enum ConnCommand {
    Flush,
    Reconnect,
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

/// What the fake answers: status, optional JSON, extra headers.
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn ok(body: Value) -> Reply {
        Reply::json(StatusCode::OK, body)
    }

    fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            headers: Vec::new(),
        }
    }

    fn error(status: StatusCode, code: u64, message: &str) -> Reply {
        Reply::json(status, json!({"message": message, "code": code}))
    }

    fn not_found() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, 0, "404: Not Found")
    }

    fn unknown_message() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
    }

    fn unknown_interaction() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, 10062, "Unknown interaction")
    }

    fn unknown_webhook() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook")
    }

    fn into_response(self) -> Response {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                builder = builder.header(*name, value);
            }
        }
        let body = match &self.body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        builder
            .body(body)
            .unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

/// A request body: JSON, or multipart `payload_json` plus files.
struct ParsedBody {
    json: Option<Value>,
    files: Vec<FakeFile>,
    error: Option<String>,
}

impl ParsedBody {
    fn parse(headers: &HeaderMap, body: &[u8]) -> ParsedBody {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with("multipart/form-data") {
            return match parse_multipart(content_type, body) {
                Ok((json, files)) => ParsedBody {
                    json,
                    files,
                    error: None,
                },
                Err(error) => ParsedBody {
                    json: None,
                    files: Vec::new(),
                    error: Some(error),
                },
            };
        }
        if body.is_empty() {
            return ParsedBody {
                json: None,
                files: Vec::new(),
                error: None,
            };
        }
        match serde_json::from_slice(body) {
            Ok(json) => ParsedBody {
                json: Some(json),
                files: Vec::new(),
                error: None,
            },
            Err(err) => ParsedBody {
                json: None,
                files: Vec::new(),
                error: Some(format!("invalid JSON body: {err}")),
            },
        }
    }
}

/// Splits a `multipart/form-data` body into its `payload_json` and its file parts.
fn parse_multipart(
    content_type: &str,
    body: &[u8],
) -> Result<(Option<Value>, Vec<FakeFile>), String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| format!("multipart without boundary: {content_type}"))?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut json = None;
    let mut files = Vec::new();
    let mut rest = body;
    // Skip the preamble up to the first delimiter.
    let first = find(rest, &delimiter).ok_or("multipart body without a delimiter")?;
    rest = &rest[first + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        let rest_after_crlf = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart part")?;
        let end = find(rest_after_crlf, &delimiter).ok_or("unterminated multipart part")?;
        let part = &rest_after_crlf[..end];
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        rest = &rest_after_crlf[end + delimiter.len()..];

        let split = find(part, b"\r\n\r\n").ok_or("multipart part without headers")?;
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let data = part[split + 4..].to_vec();
        let mut name = None;
        let mut filename = None;
        let mut part_type = None;
        for line in head.split("\r\n") {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for param in value.split(';').map(str::trim) {
                        if let Some(v) = param.strip_prefix("name=") {
                            name = Some(v.trim_matches('"').to_string());
                        } else if let Some(v) = param.strip_prefix("filename=") {
                            filename = Some(v.trim_matches('"').to_string());
                        }
                    }
                }
                "content-type" => part_type = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let name = name.ok_or("multipart part without a name")?;
        if name == "payload_json" {
            json = Some(
                serde_json::from_slice(&data).map_err(|e| format!("invalid payload_json: {e}"))?,
            );
        } else {
            files.push(FakeFile {
                field: name,
                filename,
                content_type: part_type,
                data,
            });
        }
    }
    Ok((json, files))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn handle_rest(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = Instant::now();
    let parsed = ParsedBody::parse(&headers, &body);
    let reply = {
        let mut state = shared.lock();
        let reply = route(
            &shared,
            &mut state,
            &method,
            uri.path(),
            &headers,
            &parsed,
            received_at,
        );
        let seq = state.requests.len();
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            state.rate_limited += 1;
        }
        state.requests.push(RecordedRequest {
            seq,
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).to_string(),
                    )
                })
                .collect(),
            body: parsed.json.clone(),
            files: parsed.files.clone(),
            status: reply.status.as_u16(),
            response: reply.body.clone(),
            received_at,
        });
        reply
    };
    shared.bump();
    reply.into_response()
}

fn route(
    shared: &Shared,
    state: &mut State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &ParsedBody,
    now: Instant,
) -> Reply {
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return Reply::not_found();
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let is_webhook = matches!(segments.first(), Some(&"interactions") | Some(&"webhooks"));
    let is_gateway = segments == ["gateway"];
    if !is_webhook && !is_gateway {
        let expected = format!("Bot {}", shared.options.token);
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return Reply::error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        }
    }
    if let Some(error) = &body.error {
        return Reply::json(
            StatusCode::BAD_REQUEST,
            json!({"message": "The request body contains invalid JSON.", "code": 50109, "detail": error}),
        );
    }
    let id = |s: &str| s.parse::<u64>().ok();
    let m = method.as_str();
    match (m, segments.as_slice()) {
        ("GET", ["gateway"]) => Reply::ok(json!({"url": shared.gateway_url()})),
        ("GET", ["gateway", "bot"]) => Reply::ok(json!({
            "url": shared.gateway_url(),
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
        })),
        ("GET", ["users", "@me"]) => Reply::ok(shared.bot_user()),
        ("GET", ["oauth2", "applications", "@me"]) | ("GET", ["applications", "@me"]) => {
            if shared.options.application_info {
                Reply::ok(application_json(shared))
            } else {
                Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    0,
                    "500: Internal Server Error",
                )
            }
        }
        ("GET", ["channels", channel]) => match id(channel) {
            Some(c) => match shared.channel_guild(c) {
                Some(guild) => Reply::ok(json!({
                    "id": c.to_string(), "type": 0, "guild_id": guild.to_string(),
                    "name": format!("channel-{c}"), "position": 0, "permission_overwrites": [],
                    "nsfw": false, "topic": null, "last_message_id": null, "rate_limit_per_user": 0,
                    "parent_id": null,
                })),
                None => Reply::error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
            },
            None => Reply::not_found(),
        },
        ("POST", ["channels", channel, "messages"]) => match id(channel) {
            Some(c) => create_channel_message(shared, state, c, body, now),
            None => Reply::not_found(),
        },
        (_, ["channels", channel, "messages", message]) => match (id(channel), id(message)) {
            (Some(c), Some(mid)) => channel_message(shared, state, m, c, mid, body),
            _ => Reply::not_found(),
        },
        ("POST", ["interactions", interaction, token, "callback"]) => {
            interaction_callback(shared, state, interaction, token, body, now)
        }
        (_, ["webhooks", app, token]) | (_, ["webhooks", app, token, "messages", _]) => {
            let target = segments.get(4).copied();
            webhook(shared, state, m, app, token, target, body)
        }
        ("GET" | "PUT", ["applications", app, "guilds", guild, "commands"]) => {
            match (id(app), id(guild)) {
                (Some(a), Some(g)) if a == shared.options.application_id => {
                    if g != shared.options.guild_id && g != shared.options.other_guild_id {
                        return Reply::error(StatusCode::FORBIDDEN, 50001, "Missing Access");
                    }
                    commands(shared, state, m, Some(g), body)
                }
                _ => Reply::error(StatusCode::FORBIDDEN, 50001, "Missing Access"),
            }
        }
        ("GET" | "PUT", ["applications", app, "commands"]) => match id(app) {
            Some(a) if a == shared.options.application_id => commands(shared, state, m, None, body),
            _ => Reply::error(StatusCode::FORBIDDEN, 50001, "Missing Access"),
        },
        _ => Reply::not_found(),
    }
}

fn application_json(shared: &Shared) -> Value {
    json!({
        "id": shared.options.application_id.to_string(),
        "name": shared.options.bot_username,
        "icon": null,
        "description": "",
        "bot_public": false,
        "bot_require_code_grant": false,
        "owner": {"id": "1180000000000000900", "username": "owner", "discriminator": "0", "avatar": null},
        "verify_key": "0000000000000000000000000000000000000000000000000000000000000000",
        "team": null,
        "flags": 0,
        "bot": shared.bot_user(),
    })
}

fn new_message(
    shared: &Shared,
    channel_id: u64,
    guild_id: Option<u64>,
    source: MessageSource,
    body: &Value,
    files: &[FakeFile],
    flags: u64,
) -> FakeMessage {
    let mut message = FakeMessage {
        id: shared.new_id(),
        channel_id,
        guild_id,
        content: String::new(),
        embeds: Vec::new(),
        components: Vec::new(),
        attachments: Vec::new(),
        flags,
        source,
        edits: 0,
        deleted: false,
        timestamp: now_timestamp(),
        edited_timestamp: None,
    };
    apply_payload(shared, &mut message, body, files);
    message
}

/// Applies a create or edit payload: present keys replace, `null` clears, absent keys stay.
fn apply_payload(shared: &Shared, message: &mut FakeMessage, body: &Value, files: &[FakeFile]) {
    match body.get("content") {
        Some(Value::String(s)) => message.content = s.clone(),
        Some(Value::Null) => message.content.clear(),
        _ => {}
    }
    match body.get("embeds") {
        Some(Value::Array(embeds)) => {
            message.embeds = embeds
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    if e.get("type").is_none() {
                        e["type"] = json!("rich");
                    }
                    e
                })
                .collect();
        }
        Some(Value::Null) => message.embeds.clear(),
        _ => {}
    }
    match body.get("components") {
        Some(Value::Array(rows)) => message.components = rows.clone(),
        Some(Value::Null) => message.components.clear(),
        _ => {}
    }
    if let Some(listed) = body.get("attachments").and_then(Value::as_array) {
        let keep: HashSet<u64> = listed.iter().filter_map(|a| parse_id(&a["id"])).collect();
        message.attachments.retain(|a| keep.contains(&a.id));
    }
    for file in files {
        message.attachments.push(FakeAttachment {
            id: shared.new_id(),
            filename: file.filename.clone().unwrap_or_else(|| file.field.clone()),
            content_type: file.content_type.clone(),
            data: file.data.clone(),
        });
    }
}

fn edit_message(shared: &Shared, message: &mut FakeMessage, body: &Value, files: &[FakeFile]) {
    apply_payload(shared, message, body, files);
    message.flags &= !LOADING;
    message.edits += 1;
    message.edited_timestamp = Some(now_timestamp());
}

fn rate_limit_headers(
    limit: u32,
    remaining: u32,
    reset_after: Duration,
) -> Vec<(&'static str, String)> {
    let reset_at = SystemTime::now()
        .checked_add(reset_after)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    vec![
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", format!("{reset_at:.3}")),
        (
            "x-ratelimit-reset-after",
            format!("{:.3}", reset_after.as_secs_f64()),
        ),
        ("x-ratelimit-bucket", "fake-channel-messages".to_string()),
    ]
}

/// A 429 for a bot over its own limit of `limit` messages, asking to wait `retry_after`, as
/// Discord's docs show it (Rate Limits, "Exceeding A Rate Limit": "Example Exceeded User Rate
/// Limit Response", https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit):
/// `Retry-After` in whole seconds (`65` for a `retry_after` of 64.57), the `X-RateLimit-*`
/// headers with `X-RateLimit-Reset-After` keeping the decimals, `X-RateLimit-Scope: user`, and
/// the body `{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}`.
fn user_rate_limited(limit: u32, retry_after: Duration) -> Reply {
    let secs = retry_after.as_secs_f64();
    let mut headers = rate_limit_headers(limit, 0, retry_after);
    headers.push(("retry-after", secs.ceil().to_string()));
    headers.push(("x-ratelimit-scope", "user".to_string()));
    Reply {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: Some(json!({
            "message": "You are being rate limited.",
            "retry_after": (secs * 1000.0).round() / 1000.0,
            "global": false,
        })),
        headers,
    }
}

fn create_channel_message(
    shared: &Shared,
    state: &mut State,
    channel_id: u64,
    body: &ParsedBody,
    now: Instant,
) -> Reply {
    let Some(guild_id) = shared.channel_guild(channel_id) else {
        return Reply::error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    if let Some((left, retry_after)) = state.forced_429.as_mut() {
        if *left > 0 {
            *left -= 1;
            // Discord's channel limit: 5 messages per 5 s.
            return user_rate_limited(5, *retry_after);
        }
    }
    let mut limit_headers = Vec::new();
    if let Some((limit, per)) = state.rate_limit {
        let window = state.windows.entry(channel_id).or_insert((now, 0));
        if now.duration_since(window.0) >= per {
            *window = (now, 0);
        }
        let reset_after = per.saturating_sub(now.duration_since(window.0));
        if window.1 >= limit {
            return user_rate_limited(limit, reset_after);
        }
        window.1 += 1;
        limit_headers = rate_limit_headers(limit, limit - window.1, reset_after);
    }
    let Some(json) = body.json.as_ref() else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        );
    };
    if let Err(reply) = validate_message(json, !body.files.is_empty(), true, false) {
        return reply;
    }
    // A reply: Discord's "Message Reference Structure" — the referenced message must exist
    // unless `fail_if_not_exists` is false ("when sending, whether to error if the referenced
    // message doesn't exist instead of sending as a normal (non-reply) message, default true").
    if let Some(reference) = json.get("message_reference").filter(|r| !r.is_null()) {
        let id = reference["message_id"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .or_else(|| reference["message_id"].as_u64());
        let exists = id.is_some_and(|id| {
            state
                .messages
                .get(&id)
                .is_some_and(|m| m.channel_id == channel_id && !m.deleted)
        });
        if !exists && reference["fail_if_not_exists"] != json!(false) {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                50035,
                "Invalid Form Body (message_reference: Unknown message)",
            );
        }
    }
    // Only SUPPRESS_EMBEDS (4) and SUPPRESS_NOTIFICATIONS (4096) may be set on a channel post.
    let flags = json["flags"].as_u64().unwrap_or(0) & (4 | 4096);
    let message = new_message(
        shared,
        channel_id,
        Some(guild_id),
        MessageSource::ChannelPost,
        json,
        &body.files,
        flags,
    );
    let reply_body = shared.message_json(&message);
    state.messages.insert(message.id, message);
    let mut reply = Reply::ok(reply_body);
    reply.headers = limit_headers;
    reply
}

fn channel_message(
    shared: &Shared,
    state: &mut State,
    method: &str,
    channel_id: u64,
    message_id: u64,
    body: &ParsedBody,
) -> Reply {
    if shared.channel_guild(channel_id).is_none() {
        return Reply::error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    }
    let Some(message) = state.messages.get_mut(&message_id) else {
        return Reply::unknown_message();
    };
    // Ephemeral messages are not channel messages: only their interaction webhook reaches them.
    if message.channel_id != channel_id || message.deleted || message.is_ephemeral() {
        return Reply::unknown_message();
    }
    match method {
        "GET" => Reply::ok(shared.message_json(message)),
        "PATCH" => {
            let empty = json!({});
            let json = body.json.as_ref().unwrap_or(&empty);
            if let Err(reply) = validate_message(json, !body.files.is_empty(), false, false) {
                return reply;
            }
            edit_message(shared, message, json, &body.files);
            Reply::ok(shared.message_json(message))
        }
        "DELETE" => {
            message.deleted = true;
            Reply::no_content()
        }
        _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed"),
    }
}

fn interaction_callback(
    shared: &Shared,
    state: &mut State,
    interaction_id: &str,
    token: &str,
    body: &ParsedBody,
    now: Instant,
) -> Reply {
    let Some(interaction) = state.interactions.get(token).cloned() else {
        return Reply::unknown_interaction();
    };
    if interaction.id.to_string() != interaction_id {
        return Reply::unknown_interaction();
    }
    if let (Some(deadline), Some(delivered)) = (
        shared.options.interaction_deadline,
        interaction.delivered_at,
    ) {
        if now.duration_since(delivered) >= deadline {
            return Reply::unknown_interaction();
        }
    }
    if interaction.responded.is_some() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        );
    }
    let Some(json) = body.json.as_ref() else {
        return form_error(vec![FieldError::new(
            &["type"],
            "BASE_TYPE_REQUIRED",
            "This field is required",
        )]);
    };
    let kind = json["type"].as_u64().unwrap_or(0);
    let allowed: &[u64] = match interaction.kind {
        INTERACTION_APPLICATION_COMMAND => {
            &[CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE, CALLBACK_MODAL]
        }
        INTERACTION_MESSAGE_COMPONENT => &[
            CALLBACK_MESSAGE,
            CALLBACK_DEFERRED_MESSAGE,
            CALLBACK_DEFERRED_UPDATE,
            CALLBACK_UPDATE_MESSAGE,
            CALLBACK_MODAL,
        ],
        INTERACTION_AUTOCOMPLETE => &[CALLBACK_AUTOCOMPLETE],
        INTERACTION_MODAL_SUBMIT if interaction.source_message.is_some() => &[
            CALLBACK_MESSAGE,
            CALLBACK_DEFERRED_MESSAGE,
            CALLBACK_DEFERRED_UPDATE,
            CALLBACK_UPDATE_MESSAGE,
        ],
        INTERACTION_MODAL_SUBMIT => &[CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE],
        _ => &[],
    };
    if !allowed.contains(&kind) {
        return form_error(vec![FieldError::new(
            &["type"],
            "INTERACTION_RESPONSE_TYPE_INVALID",
            &format!(
                "Interaction response type {kind} is not valid for interaction type {}",
                interaction.kind
            ),
        )]);
    }
    let empty = json!({});
    let data = json.get("data").filter(|d| !d.is_null()).unwrap_or(&empty);
    let ephemeral = data["flags"].as_u64().unwrap_or(0) & EPHEMERAL;
    let mut original = interaction.original_message;
    let mut modal = None;
    match kind {
        CALLBACK_MESSAGE => {
            if let Err(reply) = validate_message(data, !body.files.is_empty(), true, true) {
                return reply;
            }
            let message = new_message(
                shared,
                interaction.channel_id,
                interaction.guild_id,
                MessageSource::InteractionResponse {
                    interaction_id: interaction.id,
                },
                data,
                &body.files,
                ephemeral | (data["flags"].as_u64().unwrap_or(0) & (4 | 4096)),
            );
            original = Some(message.id);
            state.messages.insert(message.id, message);
        }
        CALLBACK_DEFERRED_MESSAGE => {
            let message = new_message(
                shared,
                interaction.channel_id,
                interaction.guild_id,
                MessageSource::InteractionResponse {
                    interaction_id: interaction.id,
                },
                &empty,
                &[],
                ephemeral | LOADING,
            );
            original = Some(message.id);
            state.messages.insert(message.id, message);
        }
        CALLBACK_DEFERRED_UPDATE | CALLBACK_UPDATE_MESSAGE => {
            let Some(source) = interaction.source_message else {
                return Reply::unknown_message();
            };
            if kind == CALLBACK_UPDATE_MESSAGE {
                if let Err(reply) = validate_message(data, !body.files.is_empty(), false, true) {
                    return reply;
                }
                match state.messages.get_mut(&source) {
                    Some(message) => edit_message(shared, message, data, &body.files),
                    None => return Reply::unknown_message(),
                }
            }
            original = Some(source);
        }
        CALLBACK_AUTOCOMPLETE => {
            if let Err(reply) = validate_autocomplete(data) {
                return reply;
            }
        }
        CALLBACK_MODAL => {
            if let Err(reply) = validate_modal(data) {
                return reply;
            }
            modal = data["custom_id"].as_str().map(str::to_string);
        }
        _ => {}
    }
    if let Some(stored) = state.interactions.get_mut(token) {
        stored.responded = Some(kind);
        stored.original_message = original;
        stored.modal_custom_id = modal;
        if let Some(id) = original {
            if !stored.messages.contains(&id) {
                stored.messages.push(id);
            }
        }
    }
    Reply::no_content()
}

fn webhook(
    shared: &Shared,
    state: &mut State,
    method: &str,
    app: &str,
    token: &str,
    target: Option<&str>,
    body: &ParsedBody,
) -> Reply {
    if app.parse::<u64>().ok() != Some(shared.options.application_id) {
        return Reply::unknown_webhook();
    }
    let Some(interaction) = state.interactions.get(token).cloned() else {
        return Reply::unknown_webhook();
    };
    if interaction.responded.is_none() {
        return Reply::unknown_webhook();
    }
    let empty = json!({});
    let json = body.json.as_ref().unwrap_or(&empty);
    let Some(target) = target else {
        // A followup message.
        if method != "POST" {
            return Reply::not_found();
        }
        if let Err(reply) = validate_message(json, !body.files.is_empty(), true, true) {
            return reply;
        }
        let flags = json["flags"].as_u64().unwrap_or(0) & (EPHEMERAL | 4 | 4096);
        let message = new_message(
            shared,
            interaction.channel_id,
            interaction.guild_id,
            MessageSource::Followup {
                interaction_id: interaction.id,
            },
            json,
            &body.files,
            flags,
        );
        let reply = Reply::ok(shared.message_json(&message));
        if let Some(stored) = state.interactions.get_mut(token) {
            stored.messages.push(message.id);
        }
        state.messages.insert(message.id, message);
        return reply;
    };
    let message_id = if target == "@original" {
        interaction.original_message
    } else {
        target
            .parse::<u64>()
            .ok()
            .filter(|id| interaction.messages.contains(id))
    };
    let Some(message) = message_id.and_then(|id| state.messages.get_mut(&id)) else {
        return Reply::unknown_message();
    };
    if message.deleted {
        return Reply::unknown_message();
    }
    match method {
        "GET" => Reply::ok(shared.message_json(message)),
        "PATCH" => {
            if let Err(reply) = validate_message(json, !body.files.is_empty(), false, true) {
                return reply;
            }
            edit_message(shared, message, json, &body.files);
            Reply::ok(shared.message_json(message))
        }
        "DELETE" => {
            message.deleted = true;
            Reply::no_content()
        }
        _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed"),
    }
}

fn commands(
    shared: &Shared,
    state: &mut State,
    method: &str,
    guild: Option<u64>,
    body: &ParsedBody,
) -> Reply {
    if method == "GET" {
        return Reply::ok(Value::Array(
            state.commands.get(&guild).cloned().unwrap_or_default(),
        ));
    }
    let Some(Value::Array(wanted)) = body.json.as_ref() else {
        return form_error(vec![FieldError::new(
            &[],
            "BASE_TYPE_ARRAY",
            "Must be an array",
        )]);
    };
    if let Err(reply) = validate_commands(wanted) {
        return reply;
    }
    let existing = state.commands.get(&guild).cloned().unwrap_or_default();
    let registered: Vec<Value> = wanted
        .iter()
        .map(|command| {
            let kind = command["type"].as_u64().unwrap_or(1);
            let id = existing
                .iter()
                .find(|c| c["name"] == command["name"] && c["type"].as_u64() == Some(kind))
                .and_then(|c| parse_id(&c["id"]))
                .unwrap_or_else(|| shared.new_id());
            let mut out = command.clone();
            out["id"] = json!(id.to_string());
            out["type"] = json!(kind);
            out["application_id"] = json!(shared.options.application_id.to_string());
            out["version"] = json!(shared.new_id().to_string());
            if out.get("description").is_none() {
                out["description"] = json!("");
            }
            if out.get("default_member_permissions").is_none() {
                out["default_member_permissions"] = Value::Null;
            }
            if let Some(g) = guild {
                out["guild_id"] = json!(g.to_string());
            }
            out
        })
        .collect();
    state.commands.insert(guild, registered.clone());
    Reply::ok(Value::Array(registered))
}

// ---------------------------------------------------------------------------------------------
// Validation against Discord's limits
// ---------------------------------------------------------------------------------------------

struct FieldError {
    path: Vec<String>,
    code: &'static str,
    message: String,
}

impl FieldError {
    fn new(path: &[&str], code: &'static str, message: &str) -> FieldError {
        FieldError {
            path: path.iter().map(|s| s.to_string()).collect(),
            code,
            message: message.to_string(),
        }
    }
}

/// Discord's 400 "Invalid Form Body" with errors nested by path.
fn form_error(errors: Vec<FieldError>) -> Reply {
    let mut root = Map::new();
    for error in errors {
        let mut node = &mut root;
        for segment in &error.path {
            node = node
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("error tree nodes are objects");
        }
        let list = node
            .entry("_errors".to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(json!({"code": error.code, "message": error.message}));
        }
    }
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({"message": "Invalid Form Body", "code": 50035, "errors": root}),
    )
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: &[String], code: &'static str, message: String) {
        self.errors.push(FieldError {
            path: path.to_vec(),
            code,
            message,
        });
    }

    /// Checks an optional string's length in characters; returns the length (0 when absent).
    fn text(&mut self, value: &Value, path: &[String], min: usize, max: usize) -> usize {
        match value {
            Value::Null => {
                if min > 0 {
                    self.fail(
                        path,
                        "BASE_TYPE_REQUIRED",
                        "This field is required".to_string(),
                    );
                }
                0
            }
            Value::String(s) => {
                let len = s.chars().count();
                if len < min || len > max {
                    self.fail(
                        path,
                        "BASE_TYPE_BAD_LENGTH",
                        format!("Must be between {min} and {max} in length."),
                    );
                }
                len
            }
            _ => {
                self.fail(
                    path,
                    "STRING_TYPE_CONVERT",
                    "Could not interpret value as string.".to_string(),
                );
                0
            }
        }
    }

    fn count(&mut self, items: &[Value], path: &[String], min: usize, max: usize) {
        if items.len() < min || items.len() > max {
            self.fail(
                path,
                "BASE_TYPE_BAD_LENGTH",
                format!("Must be between {min} and {max} in length."),
            );
        }
    }

    fn finish(self) -> Result<(), Reply> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(form_error(self.errors))
        }
    }
}

fn at(base: &[String], segment: impl ToString) -> Vec<String> {
    let mut path = base.to_vec();
    path.push(segment.to_string());
    path
}

fn array_of<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Checks a message create/edit payload. `create`: an empty message is refused.
/// `interaction`: the ephemeral flag is allowed.
fn validate_message(
    body: &Value,
    has_files: bool,
    create: bool,
    interaction: bool,
) -> Result<(), Reply> {
    if !body.is_object() {
        return Err(form_error(vec![FieldError::new(
            &[],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        )]));
    }
    let mut c = Checker::default();
    let root: Vec<String> = Vec::new();
    let content_len = c.text(&body["content"], &at(&root, "content"), 0, 2000);

    let embeds = array_of(body, "embeds");
    c.count(embeds, &at(&root, "embeds"), 0, 10);
    let mut embed_total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let path = at(&at(&root, "embeds"), i);
        embed_total += c.text(&embed["title"], &at(&path, "title"), 0, 256);
        embed_total += c.text(&embed["description"], &at(&path, "description"), 0, 4096);
        embed_total += c.text(
            &embed["footer"]["text"],
            &at(&at(&path, "footer"), "text"),
            0,
            2048,
        );
        embed_total += c.text(
            &embed["author"]["name"],
            &at(&at(&path, "author"), "name"),
            0,
            256,
        );
        let fields = array_of(embed, "fields");
        c.count(fields, &at(&path, "fields"), 0, 25);
        for (j, field) in fields.iter().enumerate() {
            let fpath = at(&at(&path, "fields"), j);
            embed_total += c.text(&field["name"], &at(&fpath, "name"), 1, 256);
            embed_total += c.text(&field["value"], &at(&fpath, "value"), 1, 1024);
        }
    }
    if embed_total > 6000 {
        c.fail(
            &at(&root, "embeds"),
            "MAX_EMBED_SIZE_EXCEEDED",
            format!("Embed size exceeds maximum size of 6000 ({embed_total})"),
        );
    }

    let rows = array_of(body, "components");
    validate_components(&mut c, rows);

    // Discord's "Allowed Mentions Object": `parse` holds only "roles", "users", "everyone";
    // "roles" in `parse` together with a `roles` list (or "users" with `users`) is refused
    // ("mutually exclusive"), and each list holds at most 100 ids.
    if let Some(mentions) = body.get("allowed_mentions").filter(|m| !m.is_null()) {
        let path = at(&root, "allowed_mentions");
        let parse = array_of(mentions, "parse");
        for (i, p) in parse.iter().enumerate() {
            if !matches!(p.as_str(), Some("roles" | "users" | "everyone")) {
                c.fail(
                    &at(&at(&path, "parse"), i),
                    "BASE_TYPE_CHOICES",
                    format!("Value must be one of ('roles', 'users', 'everyone'), not {p}"),
                );
            }
        }
        for list in ["roles", "users"] {
            let ids = array_of(mentions, list);
            if !ids.is_empty() && parse.iter().any(|p| p.as_str() == Some(list)) {
                c.fail(
                    &path,
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    format!("parse:[\"{list}\"] and {list}: [ids...] are mutually exclusive."),
                );
            }
            c.count(ids, &at(&path, list), 0, 100);
        }
    }

    let flags = body["flags"].as_u64().unwrap_or(0);
    let allowed_flags = 4 | 4096 | if interaction { EPHEMERAL } else { 0 };
    if flags & !allowed_flags != 0 {
        c.fail(
            &at(&root, "flags"),
            "MESSAGE_FLAGS_INVALID",
            format!("Invalid flags {flags}"),
        );
    }
    c.finish()?;

    let has_stickers = !array_of(body, "sticker_ids").is_empty();
    let has_poll = body.get("poll").is_some_and(|p| !p.is_null());
    if create
        && content_len == 0
        && embeds.is_empty()
        && rows.is_empty()
        && !has_files
        && !has_stickers
        && !has_poll
    {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        ));
    }
    Ok(())
}

fn validate_components(c: &mut Checker, rows: &[Value]) {
    let root = vec!["components".to_string()];
    c.count(rows, &root, 0, 5);
    let mut seen = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let path = at(&root, i);
        if row["type"] != 1 {
            c.fail(
                &at(&path, "type"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "Top-level components must be action rows".to_string(),
            );
            continue;
        }
        let components = array_of(row, "components");
        c.count(components, &at(&path, "components"), 1, 5);
        for (j, component) in components.iter().enumerate() {
            let cpath = at(&at(&path, "components"), j);
            let kind = component["type"].as_u64().unwrap_or(0);
            match kind {
                2 => {
                    let style = component["style"].as_u64().unwrap_or(0);
                    c.text(&component["label"], &at(&cpath, "label"), 0, 80);
                    match style {
                        1..=4 => {
                            c.text(&component["custom_id"], &at(&cpath, "custom_id"), 1, 100);
                        }
                        5 => {
                            c.text(&component["url"], &at(&cpath, "url"), 1, 512);
                        }
                        6 => {}
                        _ => c.fail(
                            &at(&cpath, "style"),
                            "BUTTON_STYLE_INVALID",
                            format!("Invalid button style {style}"),
                        ),
                    }
                }
                3 | 5..=8 => {
                    if components.len() != 1 {
                        c.fail(
                            &cpath,
                            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                            "A select menu must be alone in its row".to_string(),
                        );
                    }
                    c.text(&component["custom_id"], &at(&cpath, "custom_id"), 1, 100);
                    c.text(
                        &component["placeholder"],
                        &at(&cpath, "placeholder"),
                        0,
                        150,
                    );
                    if kind == 3 {
                        c.count(
                            array_of(component, "options"),
                            &at(&cpath, "options"),
                            1,
                            25,
                        );
                    }
                }
                _ => c.fail(
                    &at(&cpath, "type"),
                    "COMPONENT_TYPE_INVALID",
                    format!("Invalid component type {kind} in a message"),
                ),
            }
            if let Some(id) = component["custom_id"].as_str() {
                if !seen.insert(id.to_string()) {
                    c.fail(
                        &at(&cpath, "custom_id"),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated".to_string(),
                    );
                }
            }
        }
    }
}

fn validate_modal(data: &Value) -> Result<(), Reply> {
    let mut c = Checker::default();
    let root = vec!["data".to_string()];
    c.text(&data["custom_id"], &at(&root, "custom_id"), 1, 100);
    c.text(&data["title"], &at(&root, "title"), 1, 45);
    let rows = array_of(data, "components");
    c.count(rows, &at(&root, "components"), 1, 5);
    for (i, row) in rows.iter().enumerate() {
        let path = at(&at(&root, "components"), i);
        let inputs = array_of(row, "components");
        if row["type"] != 1 || inputs.len() != 1 || inputs[0]["type"] != 4 {
            c.fail(
                &path,
                "MODAL_ROW_INVALID",
                "Each modal row holds exactly one text input".to_string(),
            );
            continue;
        }
        let input = &inputs[0];
        let ipath = at(&at(&path, "components"), 0);
        c.text(&input["custom_id"], &at(&ipath, "custom_id"), 1, 100);
        c.text(&input["label"], &at(&ipath, "label"), 1, 45);
        c.text(&input["value"], &at(&ipath, "value"), 0, 4000);
        c.text(&input["placeholder"], &at(&ipath, "placeholder"), 0, 100);
        if !matches!(input["style"].as_u64(), Some(1) | Some(2)) {
            c.fail(
                &at(&ipath, "style"),
                "TEXT_INPUT_STYLE_INVALID",
                "Text input style must be 1 or 2".to_string(),
            );
        }
    }
    c.finish()
}

fn validate_autocomplete(data: &Value) -> Result<(), Reply> {
    let mut c = Checker::default();
    let root = vec!["data".to_string(), "choices".to_string()];
    let choices = array_of(data, "choices");
    c.count(choices, &root, 0, 25);
    for (i, choice) in choices.iter().enumerate() {
        let path = at(&root, i);
        c.text(&choice["name"], &at(&path, "name"), 1, 100);
        if choice["value"].is_string() {
            c.text(&choice["value"], &at(&path, "value"), 1, 100);
        } else if !choice["value"].is_number() {
            c.fail(
                &at(&path, "value"),
                "BASE_TYPE_REQUIRED",
                "This field is required".to_string(),
            );
        }
    }
    c.finish()
}

fn valid_command_name(name: &str) -> bool {
    let len = name.chars().count();
    (1..=32).contains(&len)
        && name
            .chars()
            .all(|ch| (ch.is_alphanumeric() || ch == '-' || ch == '_') && !ch.is_uppercase())
}

fn validate_commands(commands: &[Value]) -> Result<(), Reply> {
    let mut c = Checker::default();
    let root: Vec<String> = Vec::new();
    c.count(commands, &root, 0, 100);
    let mut names = HashSet::new();
    for (i, command) in commands.iter().enumerate() {
        let path = at(&root, i);
        let kind = command["type"].as_u64().unwrap_or(1);
        let name = command["name"].as_str().unwrap_or("");
        if kind == 1 && !valid_command_name(name) {
            c.fail(
                &at(&path, "name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                format!("Command name is invalid: {name:?}"),
            );
        }
        if !names.insert((kind, name.to_string())) {
            c.fail(
                &at(&path, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                format!("Application command names must be unique: {name:?}"),
            );
        }
        if kind == 1 {
            c.text(&command["description"], &at(&path, "description"), 1, 100);
        }
        validate_command_options(&mut c, array_of(command, "options"), &at(&path, "options"));
    }
    c.finish()
}

fn validate_command_options(c: &mut Checker, options: &[Value], path: &[String]) {
    c.count(options, path, 0, 25);
    let mut optional_seen = false;
    for (i, option) in options.iter().enumerate() {
        let opath = at(path, i);
        let name = option["name"].as_str().unwrap_or("");
        if !valid_command_name(name) {
            c.fail(
                &at(&opath, "name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                format!("Option name is invalid: {name:?}"),
            );
        }
        c.text(&option["description"], &at(&opath, "description"), 1, 100);
        c.count(array_of(option, "choices"), &at(&opath, "choices"), 0, 25);
        let required = option["required"].as_bool().unwrap_or(false);
        if required && optional_seen {
            c.fail(
                &at(&opath, "required"),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options".to_string(),
            );
        }
        optional_seen |= !required;
        let kind = option["type"].as_u64().unwrap_or(0);
        if !(1..=11).contains(&kind) {
            c.fail(
                &at(&opath, "type"),
                "BASE_TYPE_CHOICES",
                format!("Invalid option type {kind}"),
            );
        }
        if kind == 1 || kind == 2 {
            validate_command_options(c, array_of(option, "options"), &at(&opath, "options"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

async fn serve_gateway(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(err) = run_connection(shared, stream, shutdown).await {
                            eprintln!("discord fake: gateway connection ended: {err}");
                        }
                    });
                }
                Err(err) => eprintln!("discord fake: gateway accept failed: {err}"),
            },
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break,
        }
    }
}

type WsSink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, WsMessage>;

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    sink: WsSink,
    tx: mpsc::UnboundedSender<ConnCommand>,
}

impl Connection {
    async fn send(
        &mut self,
        op: u64,
        t: Option<&str>,
        s: Option<u64>,
        d: Value,
    ) -> Result<(), String> {
        let frame = json!({"op": op, "d": d, "s": s, "t": t});
        self.record(false, &frame);
        self.sink
            .send(WsMessage::Text(frame.to_string()))
            .await
            .map_err(|e| format!("send op {op}: {e}"))
    }

    async fn send_text(&mut self, text: String) -> Result<(), String> {
        if let Ok(frame) = serde_json::from_str::<Value>(&text) {
            self.record(false, &frame);
        }
        self.sink
            .send(WsMessage::Text(text))
            .await
            .map_err(|e| format!("send dispatch: {e}"))
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let _ = self.sink.send(WsMessage::Close(Some(frame))).await;
    }

    fn record(&self, incoming: bool, frame: &Value) {
        {
            let mut state = self.shared.lock();
            state.gateway.frames.push(GatewayFrame {
                connection: self.id,
                outgoing: !incoming,
                op: frame["op"].as_u64().unwrap_or(u64::MAX),
                t: frame["t"].as_str().map(str::to_string),
                s: frame["s"].as_u64(),
                d: frame["d"].clone(),
                at: Instant::now(),
            });
        }
        self.shared.bump();
    }

    fn token_ok(&self, token: &str) -> bool {
        token.strip_prefix("Bot ").unwrap_or(token) == self.shared.options.token
    }

    async fn identify(&mut self, d: &Value) -> Result<bool, String> {
        let token = d["token"].as_str().unwrap_or("").to_string();
        {
            let mut state = self.shared.lock();
            let shard = d["shard"]
                .as_array()
                .and_then(|s| Some((s.first()?.as_u64()?, s.get(1)?.as_u64()?)));
            state.gateway.identifies.push(IdentifyInfo {
                connection: self.id,
                token: token.clone(),
                intents: d["intents"].as_u64().unwrap_or(0),
                shard,
                raw: d.clone(),
            });
        }
        self.shared.bump();
        if !self.token_ok(&token) {
            self.close(4004, "Authentication failed.").await;
            return Ok(false);
        }
        let session_id: String =
            std::iter::repeat_with(|| fastrand::alphanumeric().to_ascii_lowercase())
                .take(32)
                .collect();
        let ready = json!({
            "v": GATEWAY_VERSION,
            "user": self.shared.bot_user(),
            "guilds": [],
            "session_id": session_id,
            "resume_gateway_url": self.shared.gateway_url(),
            "shard": [0, 1],
            "application": {"id": self.shared.options.application_id.to_string(), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
        });
        let frame = json!({"op": 0, "t": "READY", "s": 1, "d": ready}).to_string();
        {
            let mut state = self.shared.lock();
            state.gateway.session = Some(Session {
                id: session_id,
                seq: 1,
                log: vec![(1, frame.clone())],
            });
            // Live before READY can be seen (see `resume`).
            state.gateway.live = Some((self.id, self.tx.clone()));
        }
        self.send_text(frame).await?;
        self.go_live().await?;
        Ok(true)
    }

    async fn resume(&mut self, d: &Value) -> Result<bool, String> {
        let token = d["token"].as_str().unwrap_or("");
        if !self.token_ok(token) {
            self.close(4004, "Authentication failed.").await;
            return Ok(false);
        }
        let session_id = d["session_id"].as_str().unwrap_or("");
        let after = d["seq"].as_u64().unwrap_or(0);
        let replay = {
            let mut state = self.shared.lock();
            match state.gateway.session.as_mut() {
                Some(session) if session.id == session_id => {
                    let mut frames: Vec<String> = session
                        .log
                        .iter()
                        .filter(|(s, _)| *s > after)
                        .map(|(_, f)| f.clone())
                        .collect();
                    session.seq += 1;
                    let resumed =
                        json!({"op": 0, "t": "RESUMED", "s": session.seq, "d": {}}).to_string();
                    session.log.push((session.seq, resumed.clone()));
                    frames.push(resumed);
                    // This connection receives dispatches from now on, before RESUMED can be
                    // seen: a test that injects an event on seeing it would otherwise have it
                    // flushed by the old connection, still live while it closes, onto its dead
                    // socket. Pending events go out after the replay (`go_live`), as this
                    // connection's task handles its flush commands after this.
                    state.gateway.live = Some((self.id, self.tx.clone()));
                    Some(frames)
                }
                _ => None,
            }
        };
        match replay {
            Some(frames) => {
                for frame in frames {
                    self.send_text(frame).await?;
                }
                self.go_live().await?;
            }
            None => self.send(9, None, None, json!(false)).await?,
        }
        Ok(true)
    }

    /// Makes this the connection that receives dispatches, and sends what is pending.
    async fn go_live(&mut self) -> Result<(), String> {
        {
            let mut state = self.shared.lock();
            state.gateway.live = Some((self.id, self.tx.clone()));
        }
        self.shared.bump();
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), String> {
        let frames = {
            let mut state = self.shared.lock();
            let state = &mut *state;
            let is_live = state
                .gateway
                .live
                .as_ref()
                .is_some_and(|(id, _)| *id == self.id);
            let Some(session) = state.gateway.session.as_mut().filter(|_| is_live) else {
                return Ok(());
            };
            let mut frames = Vec::new();
            while let Some(event) = state.gateway.pending.pop_front() {
                session.seq += 1;
                let frame =
                    json!({"op": 0, "t": event.t, "s": session.seq, "d": event.d}).to_string();
                session.log.push((session.seq, frame.clone()));
                if let Some(token) = &event.interaction_token {
                    if let Some(interaction) = state.interactions.get_mut(token) {
                        interaction.delivered_at = Some(Instant::now());
                    }
                }
                frames.push(frame);
            }
            frames
        };
        for frame in frames {
            self.send_text(frame).await?;
        }
        Ok(())
    }
}

async fn run_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let ws = tokio_tungstenite::accept_async(stream)
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    let (sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut state = shared.lock();
        state.gateway.connections += 1;
        state.gateway.connections
    };
    let mut conn = Connection {
        shared: Arc::clone(&shared),
        id,
        sink,
        tx,
    };
    let interval = shared.options.heartbeat_interval.as_millis() as u64;
    conn.send(10, None, None, json!({"heartbeat_interval": interval}))
        .await?;

    let result = loop {
        tokio::select! {
            incoming = source.next() => {
                let text = match incoming {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(format!("read: {e}")),
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Close(_))) => break Ok(()),
                    Some(Ok(_)) => continue,
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    conn.close(4002, "Error while decoding payload.").await;
                    break Err(format!("undecodable frame: {text}"));
                };
                conn.record(true, &frame);
                let outcome = match frame["op"].as_u64() {
                    Some(1) => conn.send(11, None, None, Value::Null).await.map(|_| true),
                    Some(2) => conn.identify(&frame["d"]).await,
                    Some(6) => conn.resume(&frame["d"]).await,
                    Some(3) | Some(4) | Some(8) => Ok(true),
                    _ => {
                        conn.close(4001, "Unknown opcode.").await;
                        Ok(false)
                    }
                };
                match outcome {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
            command = rx.recv() => match command {
                Some(ConnCommand::Flush) => {
                    if let Err(e) = conn.flush().await {
                        break Err(e);
                    }
                }
                Some(ConnCommand::Reconnect) => {
                    if let Err(e) = conn.send(7, None, None, Value::Null).await {
                        break Err(e);
                    }
                }
                None => {}
            },
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                conn.close(1001, "fake shutting down").await;
                break Ok(());
            }
        }
    };
    {
        let mut state = shared.lock();
        if state
            .gateway
            .live
            .as_ref()
            .is_some_and(|(live, _)| *live == id)
        {
            state.gateway.live = None;
        }
    }
    shared.bump();
    result
}
