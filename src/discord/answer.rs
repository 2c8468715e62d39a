//! Answering an interaction, whichever way it came: the one seam between the handlers and the
//! two transports.
//!
//! Every handler answers through [`Answerable`] on an [`Asked`] interaction (the serenity
//! interaction, readable as itself, and how to answer it), never through serenity's own
//! `create_response` / `edit_response` / `create_followup` (clippy's `disallowed_methods`
//! keeps it so):
//!
//! * **Gateway** ([`Via::Gateway`]): the first answer is the callback POST
//!   (`/interactions/{id}/{token}/callback`); edits and followups use the interaction's
//!   webhook (`/webhooks/{application}/{token}`), as serenity does.
//! * **HTTP** ([`Via::Http`]): Discord waits for the answer in the response to its POST. The
//!   first `respond` is handed to the waiting endpoint ([`super::endpoint`]) through a oneshot
//!   channel ([`HttpAnswer`]) and becomes the response body. If the handler has not answered
//!   within the endpoint's budget, the endpoint answers with a deferral itself
//!   ([`HttpAnswer::defer`]: type 5, ephemeral, for commands and modal submits without a
//!   message; type 6 for buttons and modal submits from a card; no choices for autocomplete),
//!   and the handler's later `respond` goes out as what the deferral allows (see
//!   [`Asked::respond`]). Edits and followups use the webhook exactly as at the gateway.
//!
//! Over HTTP the webhook exists only once Discord has read hanko's response, and a handler's
//! next call can overtake it: a webhook call answered "Unknown Webhook" or "Unknown
//! interaction" within [`OVERTAKE_WINDOW`] of the answer is sent again after a short wait.
//!
//! May use serenity's builders and `Http`; knows nothing of requests, votes or the store.

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use serenity::all::{
    CommandInteraction, ComponentInteraction, CreateInteractionResponse,
    CreateInteractionResponseFollowup, EditInteractionResponse, InteractionId, MessageId,
    ModalInteraction,
};
use serenity::builder::Builder;
use serenity::http::{Http, HttpError};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long after hanko's HTTP answer a webhook call that found no interaction is tried again.
pub const OVERTAKE_WINDOW: Duration = Duration::from_secs(3);
/// The first wait before such a call is sent again; doubled each time.
const OVERTAKE_RETRY_BASE: Duration = Duration::from_millis(25);
/// What a deferred ephemeral answer says until it is edited, when a button's deferral (type 6)
/// is followed by the handler's own ephemeral deferral.
const WORKING: &str = "hanko is working on it…";
/// Discord's "Unknown Webhook" and "Unknown interaction" error codes.
const UNKNOWN_WEBHOOK: isize = 10015;
const UNKNOWN_INTERACTION: isize = 10062;
/// `MessageFlags::EPHEMERAL`.
const EPHEMERAL: u64 = 1 << 6;

/// The interactions hanko answers with a message: buttons, modal submits and slash commands
/// (and autocomplete, answered with choices). The refusal, deferral and error paths are written
/// once, over this.
pub(crate) trait Answerable {
    /// The interaction's first answer (a message, a deferral, a modal, choices).
    async fn respond(
        &self,
        http: &Http,
        response: CreateInteractionResponse,
    ) -> serenity::Result<()>;
    /// Edits the first answer's message (`@original`: the deferred or sent answer, or the
    /// clicked card after a deferred update).
    async fn edit(&self, http: &Http, edit: EditInteractionResponse) -> serenity::Result<()>;
    /// A new message after the first answer.
    async fn follow_up(
        &self,
        http: &Http,
        followup: CreateInteractionResponseFollowup,
    ) -> serenity::Result<()>;
    /// Whether the first answer may carry files: not over HTTP, whose response body is JSON
    /// only (defer, then edit the files in).
    fn files_in_first_answer(&self) -> bool;
}

/// What identifies an interaction to Discord's answer routes.
pub(crate) trait Interacts {
    fn interaction_id(&self) -> InteractionId;
    fn token(&self) -> &str;
}

macro_rules! interacts {
    ($($kind:ty),*) => {$(
        impl Interacts for $kind {
            fn interaction_id(&self) -> InteractionId {
                self.id
            }

            fn token(&self) -> &str {
                &self.token
            }
        }
    )*};
}

interacts!(ComponentInteraction, ModalInteraction, CommandInteraction);

/// An interaction as it was asked, and the way its answer goes back. Reads as the interaction
/// itself (`Deref`); answers only through [`Answerable`].
#[derive(Clone, Debug)]
pub(crate) struct Asked<I> {
    interaction: I,
    via: Via,
}

impl<I> Asked<I> {
    pub(crate) fn new(interaction: I, via: Via) -> Self {
        Asked { interaction, via }
    }
}

impl<I> Deref for Asked<I> {
    type Target = I;

    fn deref(&self) -> &I {
        &self.interaction
    }
}

/// How an interaction reached hanko, so how its first answer goes back.
#[derive(Clone, Debug, Default)]
pub(crate) enum Via {
    /// A gateway event: the first answer is the callback POST.
    #[default]
    Gateway,
    /// A POST to `/interactions`: the first answer is its response body.
    Http(Arc<HttpAnswer>),
}

/// The deferral the HTTP endpoint answers with when the handler is slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deferral {
    /// Type 5, ephemeral: "hanko is thinking…", `@original` is that message (commands, modal
    /// submits without a message).
    Message,
    /// Type 6: nothing visible, `@original` is the clicked message (buttons, modal submits
    /// from a card).
    Update,
    /// Type 8 with no choices: autocomplete cannot be deferred.
    NoChoices,
}

impl Deferral {
    /// The response body of this deferral.
    pub(crate) fn body(self) -> Value {
        match self {
            Deferral::Message => serde_json::json!({"type": 5, "data": {"flags": EPHEMERAL}}),
            Deferral::Update => serde_json::json!({"type": 6}),
            Deferral::NoChoices => serde_json::json!({"type": 8, "data": {"choices": []}}),
        }
    }
}

/// The first answer of one interaction received over HTTP, shared by the endpoint waiting for
/// it and the handler giving it.
#[derive(Debug)]
pub(crate) struct HttpAnswer {
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// The endpoint waits for the body.
    Waiting(oneshot::Sender<Value>),
    /// The handler's first answer went out as the body.
    Answered { at: Instant },
    /// The endpoint answered with a deferral; `answered` once the handler's first answer went
    /// out after it, and `redirected` names the followup that stands for `@original` (a button's
    /// deferred update followed by the handler's own ephemeral deferral).
    Deferred {
        kind: Deferral,
        at: Instant,
        answered: bool,
        redirected: Option<MessageId>,
    },
    /// The endpoint stopped waiting without an answer (Discord hung up, or the handler ended
    /// without answering): there is no first answer to give.
    Closed,
}

/// Why a first answer cannot go as asked; becomes `serenity::Error::Other` at the trait (kept
/// small: serenity's own error is large).
type Refused<T> = Result<T, &'static str>;

/// What `respond` does, decided under the lock and done after it.
enum Late {
    /// Nothing more to send.
    Done,
    /// Edit `@original` with this message.
    EditOriginal(Value),
    /// Send this message as a followup.
    FollowUp(Value),
    /// Edit `@original` with a pointer to the followup, then send it (a public answer after an
    /// ephemeral deferral).
    PointBelow(Value),
    /// Send an ephemeral placeholder followup; later edits go to it.
    Redirect(Value),
}

impl HttpAnswer {
    /// A first answer still to give, and the receiver the endpoint waits on.
    pub(crate) fn new() -> (Arc<HttpAnswer>, oneshot::Receiver<Value>) {
        let (tx, rx) = oneshot::channel();
        let answer = HttpAnswer {
            state: Mutex::new(State::Waiting(tx)),
        };
        (Arc::new(answer), rx)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The endpoint's budget is spent: answer with `kind` instead, unless the handler's answer
    /// was handed over meanwhile (`false`: read it from the receiver).
    pub(crate) fn defer(&self, kind: Deferral) -> bool {
        let mut state = self.lock();
        if !matches!(*state, State::Waiting(_)) {
            return false;
        }
        *state = State::Deferred {
            kind,
            at: Instant::now(),
            answered: false,
            redirected: None,
        };
        true
    }

    /// The endpoint stops waiting without an answer; a later `respond` fails.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        if matches!(*state, State::Waiting(_)) {
            *state = State::Closed;
        }
    }

    /// When the interaction was answered over HTTP (body or deferral), for the overtake rule.
    fn answered_at(&self) -> Option<Instant> {
        match *self.lock() {
            State::Answered { at } | State::Deferred { at, .. } => Some(at),
            State::Waiting(_) | State::Closed => None,
        }
    }

    fn redirected(&self) -> Option<MessageId> {
        match *self.lock() {
            State::Deferred { redirected, .. } => redirected,
            _ => None,
        }
    }

    /// Hands `response` to the endpoint, or decides its late form after a deferral.
    fn give(&self, response: &CreateInteractionResponse) -> Refused<Late> {
        let mut state = self.lock();
        match &mut *state {
            State::Waiting(_) => {
                let body = body_of(response)?;
                let State::Waiting(tx) = std::mem::replace(&mut *state, State::Closed) else {
                    return Err("interaction answer state changed");
                };
                match tx.send(body) {
                    Ok(()) => {
                        *state = State::Answered { at: Instant::now() };
                        Ok(Late::Done)
                    }
                    Err(_) => Err("Discord's request ended before hanko answered it"),
                }
            }
            State::Answered { .. } => Err("this interaction was already answered"),
            State::Closed => Err("this interaction can no longer be answered first"),
            State::Deferred { answered: true, .. } => Err("this interaction was already answered"),
            State::Deferred { kind, answered, .. } => {
                let late = late_form(*kind, response)?;
                *answered = true;
                Ok(late)
            }
        }
    }

    fn set_redirect(&self, id: MessageId) {
        if let State::Deferred { redirected, .. } = &mut *self.lock() {
            *redirected = Some(id);
        }
    }
}

/// The JSON response body of a first answer. Files cannot go in a JSON body: refused.
fn body_of(response: &CreateInteractionResponse) -> Refused<Value> {
    let body = serde_json::to_value(response).map_err(|_| "the answer is not JSON")?;
    let has_files = body
        .pointer("/data/attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_files {
        return Err("a first answer over HTTP cannot carry files; defer, then edit them in");
    }
    Ok(body)
}

/// The message part of a response, as a webhook message body (no `tts`; for edits no `flags`).
fn message_of(response: &CreateInteractionResponse, for_edit: bool) -> Refused<Value> {
    let mut data = body_of(response)?
        .get_mut("data")
        .map(Value::take)
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = data.as_object_mut() {
        map.remove("tts");
        if for_edit {
            map.remove("flags");
        }
    }
    Ok(data)
}

fn is_ephemeral(response: &CreateInteractionResponse) -> Refused<bool> {
    let flags = body_of(response)?
        .pointer("/data/flags")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(flags & EPHEMERAL != 0)
}

/// What a first answer becomes once the endpoint deferred with `kind`.
fn late_form(kind: Deferral, response: &CreateInteractionResponse) -> Refused<Late> {
    use CreateInteractionResponse as R;
    let late = match (kind, response) {
        (Deferral::NoChoices, _) => Late::Done,
        (_, R::Acknowledge) | (Deferral::Message, R::Defer(_)) => Late::Done,
        (Deferral::Message, R::Message(_)) if is_ephemeral(response)? => {
            Late::EditOriginal(message_of(response, true)?)
        }
        (Deferral::Message, R::Message(_)) => Late::PointBelow(message_of(response, false)?),
        (Deferral::Message, R::UpdateMessage(_)) | (Deferral::Update, R::UpdateMessage(_)) => {
            Late::EditOriginal(message_of(response, true)?)
        }
        (Deferral::Update, R::Message(_)) => Late::FollowUp(message_of(response, false)?),
        (Deferral::Update, R::Defer(_)) => {
            let mut placeholder = message_of(response, false)?;
            if let Some(map) = placeholder.as_object_mut() {
                map.insert("content".into(), WORKING.into());
                map.insert("flags".into(), EPHEMERAL.into());
            }
            Late::Redirect(placeholder)
        }
        _ => return Err("too late for this answer: Discord was already answered with a deferral"),
    };
    Ok(late)
}

/// Whether `error` says the interaction's webhook does not exist (yet).
fn is_unknown_webhook(error: &serenity::Error) -> bool {
    matches!(
        error,
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response))
            if matches!(response.error.code, UNKNOWN_WEBHOOK | UNKNOWN_INTERACTION)
    )
}

impl<I: Interacts> Asked<I> {
    /// Runs a webhook call; over HTTP, again after a short wait while it overtook hanko's answer
    /// ([`OVERTAKE_WINDOW`]).
    async fn webhook<T, F, Fut>(&self, mut call: F) -> serenity::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = serenity::Result<T>>,
    {
        let Via::Http(answer) = &self.via else {
            return call().await;
        };
        let mut wait = OVERTAKE_RETRY_BASE;
        loop {
            match call().await {
                Err(e) if is_unknown_webhook(&e) => {
                    let within = answer
                        .answered_at()
                        .is_some_and(|at| at.elapsed() + wait < OVERTAKE_WINDOW);
                    if !within {
                        return Err(e);
                    }
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                result => return result,
            }
        }
    }

    async fn follow_up_json(&self, http: &Http, message: &Value) -> serenity::Result<MessageId> {
        let token = self.interaction.token();
        self.webhook(|| http.create_followup_message(token, message, Vec::new()))
            .await
            .map(|m| m.id)
    }

    async fn edit_original_json(&self, http: &Http, message: &Value) -> serenity::Result<()> {
        let token = self.interaction.token();
        self.webhook(|| http.edit_original_interaction_response(token, message, Vec::new()))
            .await
            .map(drop)
    }
}

impl<I: Interacts + Sync> Answerable for Asked<I> {
    /// At the gateway, the callback. Over HTTP, the response body while the endpoint waits;
    /// after its deferral, the answer's late form: a message becomes an edit of the deferred
    /// message (type 5; a public one goes out as a followup, with a pointer to it) or a
    /// followup (type 6); an update edits the clicked message; a deferral or an
    /// acknowledgement is already given; a modal can no longer be opened (an error, so the
    /// person is told). Late choices for autocomplete are dropped.
    async fn respond(
        &self,
        http: &Http,
        response: CreateInteractionResponse,
    ) -> serenity::Result<()> {
        let Via::Http(answer) = &self.via else {
            let interaction = &self.interaction;
            return response
                .execute(http, (interaction.interaction_id(), interaction.token()))
                .await;
        };
        match answer.give(&response).map_err(serenity::Error::Other)? {
            Late::Done => Ok(()),
            Late::EditOriginal(message) => self.edit_original_json(http, &message).await,
            Late::FollowUp(message) => self.follow_up_json(http, &message).await.map(drop),
            Late::PointBelow(message) => {
                let pointer = serde_json::json!({
                    "content": "Done; the answer is posted below.",
                    "allowed_mentions": {"parse": []},
                });
                self.edit_original_json(http, &pointer).await?;
                self.follow_up_json(http, &message).await.map(drop)
            }
            Late::Redirect(placeholder) => {
                let id = self.follow_up_json(http, &placeholder).await?;
                answer.set_redirect(id);
                Ok(())
            }
        }
    }

    async fn edit(&self, http: &Http, edit: EditInteractionResponse) -> serenity::Result<()> {
        let token = self.interaction.token();
        if let Via::Http(answer) = &self.via {
            if let Some(id) = answer.redirected() {
                let body = serde_json::to_value(&edit)?;
                if body
                    .get("attachments")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
                {
                    return Err(serenity::Error::Other(
                        "cannot attach files to the followup standing for a deferred answer",
                    ));
                }
                return self
                    .webhook(|| http.edit_followup_message(token, id, &body, Vec::new()))
                    .await
                    .map(drop);
            }
        }
        self.webhook(|| edit.clone().execute(http, token))
            .await
            .map(drop)
    }

    async fn follow_up(
        &self,
        http: &Http,
        followup: CreateInteractionResponseFollowup,
    ) -> serenity::Result<()> {
        let token = self.interaction.token();
        self.webhook(|| followup.clone().execute(http, (None, token)))
            .await
            .map(drop)
    }

    fn files_in_first_answer(&self) -> bool {
        matches!(self.via, Via::Gateway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serenity::all::{CreateAttachment, CreateInteractionResponseMessage, CreateModal};

    fn message(ephemeral: bool) -> CreateInteractionResponse {
        CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new()
                .content("hello")
                .ephemeral(ephemeral)
                .tts(false),
        )
    }

    #[tokio::test]
    async fn the_first_answer_is_handed_over_once() {
        let (answer, rx) = HttpAnswer::new();
        assert!(matches!(answer.give(&message(true)), Ok(Late::Done)));
        let body = rx.await.unwrap();
        assert_eq!(body["type"], 4);
        assert_eq!(body["data"]["content"], "hello");
        assert_eq!(body["data"]["flags"], EPHEMERAL);
        // A second first answer fails, as Discord's 40060 does: the error path then follows up.
        assert!(answer.give(&message(true)).is_err());
        // Too late to defer: the endpoint reads the body instead.
        assert!(!answer.defer(Deferral::Update));
        assert!(answer.answered_at().is_some());
    }

    #[tokio::test]
    async fn files_never_go_into_the_json_body() {
        let (answer, _rx) = HttpAnswer::new();
        let with_file = CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new()
                .content("x")
                .add_file(CreateAttachment::bytes(b"{}".to_vec(), "a.jsonl")),
        );
        assert!(answer.give(&with_file).is_err());
        // Still waiting: the handler may answer otherwise.
        assert!(matches!(answer.give(&message(false)), Ok(Late::Done)));
    }

    #[tokio::test]
    async fn after_the_endpoint_deferred_an_answer_takes_its_late_form() {
        let late = |kind: Deferral, response: CreateInteractionResponse| {
            let (answer, _rx) = HttpAnswer::new();
            assert!(answer.defer(kind));
            let late = answer.give(&response);
            // Only one late first answer.
            if late.is_ok() {
                assert!(answer.give(&message(true)).is_err());
            }
            late
        };
        let defer_ephemeral = CreateInteractionResponse::Defer(
            CreateInteractionResponseMessage::new().ephemeral(true),
        );
        let modal = CreateInteractionResponse::Modal(CreateModal::new("m", "title"));

        // Commands (type 5, ephemeral): an ephemeral message edits the deferred one, without
        // flags; a public one is posted below it.
        match late(Deferral::Message, message(true)) {
            Ok(Late::EditOriginal(m)) => {
                assert_eq!(m["content"], "hello");
                assert!(m.get("flags").is_none() && m.get("tts").is_none(), "{m}");
            }
            _ => panic!("an edit"),
        }
        assert!(matches!(
            late(Deferral::Message, message(false)),
            Ok(Late::PointBelow(_))
        ));
        assert!(matches!(
            late(Deferral::Message, defer_ephemeral.clone()),
            Ok(Late::Done)
        ));
        // Buttons (type 6): a message is a followup, with its flags; an update edits the card;
        // the handler's own ephemeral deferral becomes a placeholder followup.
        match late(Deferral::Update, message(true)) {
            Ok(Late::FollowUp(m)) => assert_eq!(m["flags"], EPHEMERAL),
            _ => panic!("a followup"),
        }
        assert!(matches!(
            late(Deferral::Update, CreateInteractionResponse::Acknowledge),
            Ok(Late::Done)
        ));
        assert!(matches!(
            late(
                Deferral::Update,
                CreateInteractionResponse::UpdateMessage(
                    CreateInteractionResponseMessage::new().content("card")
                )
            ),
            Ok(Late::EditOriginal(_))
        ));
        match late(Deferral::Update, defer_ephemeral) {
            Ok(Late::Redirect(m)) => {
                assert_eq!(m["content"], WORKING);
                assert_eq!(m["flags"], EPHEMERAL);
            }
            _ => panic!("a placeholder"),
        }
        // A modal cannot be opened after a deferral.
        assert!(late(Deferral::Update, modal).is_err());
        // Autocomplete choices after the empty answer are dropped.
        assert!(matches!(
            late(Deferral::NoChoices, message(true)),
            Ok(Late::Done)
        ));
    }

    #[tokio::test]
    async fn a_closed_answer_cannot_be_given() {
        let (answer, rx) = HttpAnswer::new();
        answer.close();
        assert!(answer.give(&message(true)).is_err());
        assert!(!answer.defer(Deferral::Message));
        drop(answer);
        assert!(rx.await.is_err());
    }

    #[test]
    fn deferral_bodies() {
        assert_eq!(
            Deferral::Message.body(),
            serde_json::json!({"type": 5, "data": {"flags": 64}})
        );
        assert_eq!(Deferral::Update.body(), serde_json::json!({"type": 6}));
        assert_eq!(Deferral::NoChoices.body()["type"], 8);
    }
}
