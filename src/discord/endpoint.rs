//! `POST /interactions`: Discord's HTTP interactions endpoint, the transport of
//! `discord.interactions = "http"`. Discord POSTs each interaction here instead of sending it
//! over a gateway connection, and reads the first answer from the response.
//!
//! For each request, in order:
//!
//! 1. **Signature** ([`super::signature`]): a missing, malformed or wrong signature, or a
//!    timestamp more than five minutes from `app.clock`, is a bare **401**; nothing else
//!    happens (no audit, no handler).
//! 2. **Body**: JSON that is not an interaction is a **400**. A PING (type 1) is answered
//!    `{"type":1}`.
//! 3. **Handler**: the interaction, parsed into serenity's `Interaction`, goes to the same
//!    [`Handler::on_interaction`] as a gateway event (refusals of shutdown, DMs, other guilds
//!    and channels, their audits, the buttons, modals, slash commands and autocomplete), with
//!    [`Via::Http`]: its first `respond` becomes the response body ([`super::answer`]). It runs
//!    as its own task, so an engine run or a slow edit it starts outlives the request.
//! 4. **Within 3 s**: if the handler has not answered within [`DEFER_AFTER`], the response is a
//!    deferral (type 5, ephemeral, for commands and modal submits without a message; type 6 for
//!    buttons and modal submits from a card; no choices for autocomplete) and the handler's
//!    answer follows through the webhook. A handler that ends (or panics) without answering
//!    gets one ephemeral sentence with an error id.
//!
//! Edits and followups go through the webhook routes with the application id and the
//! interaction's token, as at the gateway. [`prepare`] learns the application id and registers
//! the slash commands at start-up (what READY does at the gateway); the verified interaction's
//! own `application_id` stands in until then.
//!
//! Never logs a body (it carries the interaction token) or a header value. May use the bot's
//! handler and answer helpers, the app's clock and serenity; never the AWS SDK, `crate::run`
//! or sled.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use serenity::all::Interaction;
use serenity::http::Http;
use tokio::sync::watch;

use crate::discord::answer::{Deferral, HttpAnswer, Via};
use crate::discord::bot::{self, BotState, Handler};
use crate::discord::signature::{Verifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The path Discord POSTs to (the Interactions Endpoint URL ends with it).
pub const PATH: &str = "/interactions";
/// How long the endpoint waits for the handler's first answer before it answers with a
/// deferral: Discord gives up after 3 s, and the response still has to reach it.
pub const DEFER_AFTER: Duration = Duration::from_millis(2_500);
/// The interaction type of Discord's PING, and the callback type of its answer (PONG).
const PING: u64 = 1;
/// The first and the longest wait between two attempts to read the application id.
const PREPARE_RETRY_FIRST: Duration = Duration::from_secs(1);
const PREPARE_RETRY_MAX: Duration = Duration::from_secs(60);

/// What the endpoint shares between requests.
struct Endpoint {
    handler: Handler,
    http: Arc<Http>,
    verifier: Verifier,
    state: Arc<BotState>,
}

/// The router of `POST /interactions`, merged into the HTTP server's router when
/// `discord.interactions = "http"`.
pub fn router(state: Arc<BotState>, http: Arc<Http>, verifier: Verifier) -> Router {
    let endpoint = Endpoint {
        handler: Handler::new(Arc::clone(&state)),
        http,
        verifier,
        state,
    };
    Router::new()
        .route(PATH, post(interactions))
        .with_state(Arc::new(endpoint))
}

/// At start-up over HTTP, what READY does at the gateway: reads the application id (the
/// webhook routes of edits and followups need it) and registers the slash commands. Tries
/// again with a growing wait until Discord answers, a verified interaction has brought the id,
/// or shutdown begins; a failure is logged, never fatal.
pub async fn prepare(http: Arc<Http>, state: Arc<BotState>, mut shutdown: watch::Receiver<bool>) {
    let mut wait = PREPARE_RETRY_FIRST;
    loop {
        // An interaction may have told it meanwhile (every one carries `application_id`).
        if http.application_id().is_some() {
            break;
        }
        match http.get_current_application_info().await {
            Ok(application) => {
                http.set_application_id(application.id);
                break;
            }
            Err(e) => {
                let error_id =
                    bot::log_error(&e, "reading the Discord application failed; trying again");
                tracing::info!(error_id = %error_id, retry_in = ?wait, "slash commands not registered yet");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        wait = (wait * 2).min(PREPARE_RETRY_MAX);
    }
    bot::register_commands(&http, &state).await;
}

fn refused(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

async fn interactions(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let now = endpoint.state.app.clock.now();
    if let Err(why) = endpoint.verifier.verify(
        header(SIGNATURE_HEADER),
        header(TIMESTAMP_HEADER),
        &body,
        now,
    ) {
        tracing::info!(reason = %why, "refused a POST {PATH}: not signed by Discord");
        return refused(StatusCode::UNAUTHORIZED, "invalid request signature\n");
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            tracing::warn!(error = %e, "a signed POST {PATH} is not JSON");
            return refused(StatusCode::BAD_REQUEST, "the body is not JSON\n");
        }
    };
    if value.get("type").and_then(Value::as_u64) == Some(PING) {
        return Json(serde_json::json!({"type": PING})).into_response();
    }
    let interaction: Interaction = match serde_json::from_value(value) {
        Ok(interaction) => interaction,
        Err(e) => {
            // serde's message names a field, never a value of the body.
            tracing::warn!(error = %e, "a signed POST {PATH} is not an interaction hanko reads");
            return refused(StatusCode::BAD_REQUEST, "the body is not an interaction\n");
        }
    };
    let deferral = match &interaction {
        Interaction::Command(_) => Deferral::Message,
        Interaction::Autocomplete(_) => Deferral::NoChoices,
        Interaction::Component(_) => Deferral::Update,
        Interaction::Modal(submit) if submit.message.is_some() => Deferral::Update,
        Interaction::Modal(_) => Deferral::Message,
        Interaction::Ping(_) => return Json(serde_json::json!({"type": PING})).into_response(),
        _ => return refused(StatusCode::BAD_REQUEST, "unknown interaction type\n"),
    };
    if endpoint.http.application_id().is_none() {
        if let Some(id) = application_id(&interaction) {
            endpoint.http.set_application_id(id);
        }
    }
    Json(answer(&endpoint, interaction, deferral).await).into_response()
}

fn application_id(interaction: &Interaction) -> Option<serenity::all::ApplicationId> {
    match interaction {
        Interaction::Command(i) | Interaction::Autocomplete(i) => Some(i.application_id),
        Interaction::Component(i) => Some(i.application_id),
        Interaction::Modal(i) => Some(i.application_id),
        Interaction::Ping(i) => Some(i.application_id),
        _ => None,
    }
}

/// Runs the handler on its own task and returns the body of the first answer: the handler's,
/// a deferral once [`DEFER_AFTER`] has passed, or an error sentence when it ended without one.
async fn answer(endpoint: &Endpoint, interaction: Interaction, deferral: Deferral) -> Value {
    let (first, mut body) = HttpAnswer::new();
    let handler = endpoint.handler.clone();
    let http = Arc::clone(&endpoint.http);
    let via = Via::Http(Arc::clone(&first));
    let mut task =
        tokio::spawn(async move { handler.on_interaction(&http, interaction, via).await });
    tokio::select! {
        biased;
        given = &mut body => {
            if let Ok(given) = given {
                return given;
            }
        }
        ended = &mut task => {
            // An answer given just before the end is in the channel already.
            if let Ok(given) = body.try_recv() {
                return given;
            }
            first.close();
            let error_id = match ended {
                Err(e) => bot::log_error(&e, "an interaction handler panicked"),
                Ok(()) => {
                    let error_id = crate::util::error_id();
                    tracing::error!(error_id = %error_id, "an interaction handler ended without answering");
                    error_id
                }
            };
            return unanswered(deferral, &error_id);
        }
        _ = tokio::time::sleep(DEFER_AFTER) => {
            if first.defer(deferral) {
                tracing::info!(?deferral, "the handler is slow; answered with a deferral");
                return deferral.body();
            }
            // Handed over meanwhile.
            if let Ok(given) = body.await {
                return given;
            }
        }
    }
    first.close();
    let error_id = crate::util::error_id();
    tracing::error!(error_id = %error_id, "an interaction's answer was lost");
    unanswered(deferral, &error_id)
}

/// The body when the handler gave no answer: no choices, or one ephemeral sentence.
fn unanswered(deferral: Deferral, error_id: &str) -> Value {
    match deferral {
        Deferral::NoChoices => deferral.body(),
        Deferral::Message | Deferral::Update => serde_json::json!({
            "type": 4,
            "data": {
                "content": bot::error_sentence(error_id),
                "flags": 1 << 6,
                "allowed_mentions": {"parse": []},
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::execute::Tasks;
    use crate::app::App;
    use crate::aws::ClientFactory;
    use crate::config::DiscordPublicKey;
    use crate::playbooks::Playbooks;
    use crate::store::Store;
    use ed25519_dalek::{Signer, SigningKey};
    use std::path::Path;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    /// The endpoint of an app with interactions over HTTP, checked with [`key`].
    fn endpoint_router() -> (Router, App) {
        let public = hex::encode(key().verifying_key().to_bytes());
        let config = format!(
            r#"
[discord]
guild_id = "1180000000000000100"
channel_id = "1180000000000000101"
interactions = "http"
public_key = "{public}"
[responders]
approver_roles = ["1180000000000000500"]
[aws]
regions = ["us-east-1"]
"#
        );
        let settings = crate::config::parse(&config, Path::new("hanko.toml")).unwrap();
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let app = App::new(
            settings,
            Playbooks::defaults(),
            Store::open_temporary().unwrap(),
            ClientFactory::from_sdk_config(conf, None),
        );
        let (_, shutdown) = watch::channel(false);
        let state = Arc::new(BotState::new(
            app.clone(),
            Tasks::default(),
            shutdown,
            Vec::new(),
        ));
        // Nothing here reaches Discord: a closed port.
        let http = Arc::new(Http::new("not-a-token"));
        let verifier = Verifier::new(&DiscordPublicKey(key().verifying_key().to_bytes())).unwrap();
        (router(state, http, verifier), app)
    }

    fn signed_headers(key: &SigningKey, body: &str) -> String {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body.as_bytes());
        let signature = hex::encode(key.sign(&message).to_bytes());
        format!("X-Signature-Ed25519: {signature}\r\nX-Signature-Timestamp: {timestamp}\r\n")
    }

    /// POSTs `body` with `headers` (CRLF-terminated lines): (status, content type, body).
    async fn post(router: Router, headers: &str, body: &str) -> (u16, String, String) {
        let request = format!(
            "POST {PATH} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        crate::http::tests::exchange(router, request).await
    }

    const PING_BODY: &str = r#"{"type":1,"id":"1180000000000000900","application_id":"1180000000000000010","token":"t","version":1}"#;

    #[tokio::test]
    async fn a_signed_ping_is_answered_pong_as_json() {
        let (router, _) = endpoint_router();
        let (status, content_type, body) =
            post(router, &signed_headers(&key(), PING_BODY), PING_BODY).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::json!({"type": 1})
        );
    }

    #[tokio::test]
    async fn an_unsigned_or_forged_ping_is_401_and_a_signed_non_interaction_400() {
        let (router, app) = endpoint_router();
        let head = app.store.audit_head().unwrap();
        let (status, _, _) = post(router.clone(), "", PING_BODY).await;
        assert_eq!(status, 401, "unsigned");
        let other = SigningKey::from_bytes(&[10; 32]);
        let (status, _, _) = post(
            router.clone(),
            &signed_headers(&other, PING_BODY),
            PING_BODY,
        )
        .await;
        assert_eq!(status, 401, "signed with another key");
        let tampered = PING_BODY.replace("\"t\"", "\"u\"");
        let (status, _, _) = post(
            router.clone(),
            &signed_headers(&key(), PING_BODY),
            &tampered,
        )
        .await;
        assert_eq!(status, 401, "tampered body");
        for bad in ["not json", r#"{"type":3}"#, "[]", r#"{"type":"1"}"#] {
            let (status, _, _) = post(router.clone(), &signed_headers(&key(), bad), bad).await;
            assert_eq!(status, 400, "{bad}");
        }
        assert_eq!(app.store.audit_head().unwrap(), head, "nothing audited");
    }
}
