//! The Discord bot: the serenity 0.12 client, slash command registration, and the routing and
//! answering of every interaction.
//!
//! * **Client**: [`build_client`] talks to `discord.api_base` when it is set (a local fake:
//!   serenity's proxy, with its ratelimiter off, since serenity ignores the proxy otherwise),
//!   else to discord.com with serenity's ratelimiter. Intents: `GUILDS` only.
//! * **READY**: the guild's commands are bulk-overwritten from `commands/*.json` (so removed
//!   commands disappear; [`register_commands`], which the HTTP transport calls at start-up)
//!   and the gateway gauge behind `/healthz` turns on.
//! * **Two transports, one handler**: [`Handler::on_interaction`] routes every interaction,
//!   from the gateway (the serenity event handler) or from Discord's POST to `/interactions`
//!   ([`super::endpoint`]); the answer goes back through [`super::answer`], which knows the
//!   difference.
//! * **Interactions**: refused first when hanko is shutting down, when they come from a DM,
//!   another guild or another channel than the configured one (ephemeral, each refusal
//!   audited: `VoteRefused` for clicks, `CommandInvoked` for commands); then buttons
//!   and the reject modal go to [`super::interactions`], slash commands and autocomplete become an
//!   [`Invocation`] for [`commands::dispatch`].
//! * **Answers within 3 s**: a command handler that answers within
//!   [`DIRECT_ANSWER_BUDGET`] is answered directly, ephemeral or public as its reply says;
//!   a slower one is deferred (ephemerally) and its answer edited in (a public answer then goes
//!   out as a followup). Buttons defer as [`super::interactions`] describes. Over HTTP a reply
//!   with a file is deferred and edited in (the response body is JSON only).
//! * **Errors have two audiences**: the person sees one safe sentence with an error id
//!   ([`crate::util::error_id`], the scheme the slash commands use too); the log
//!   gets the whole chain under that id. No AWS or serde text reaches Discord.
//! * Mentions never ping: every message goes out with empty `allowed_mentions`.
//!
//! May use the app, the core, the application layer's owned tasks
//! ([`crate::actions::execute::Tasks`]), [`super::cards`], [`super::convert`] and serenity;
//! never the AWS SDK, `crate::run` or sled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    ChannelId, Client, ClientBuilder, CommandDataOption, CommandDataOptionValue,
    CommandInteraction, ComponentInteraction, ConnectionStage, Context, CreateAllowedMentions,
    CreateAttachment, CreateAutocompleteResponse, CreateEmbed, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse,
    EventHandler, GatewayIntents, GuildId, HttpBuilder, Interaction, ModalInteraction, Ready,
    ResumedEvent, ShardStageUpdateEvent, User,
};
use serenity::http::Http;
use tokio::sync::watch;

use crate::actions::execute::Tasks;
use crate::app::App;
use crate::audit::{Actor, EventKind, NewEvent};
use crate::config::Secret;
use crate::discord::answer::{Answerable, Asked, Via};
use crate::discord::cards::{self, Card};
use crate::discord::commands::{self, Invocation, Invoker, Reply};
use crate::discord::custom_id::PostureId;
use crate::discord::text::{self, MAX_CHOICES, MAX_CHOICE_LEN, MAX_CONTENT};
use crate::discord::{convert, interactions, posture_actions};
use crate::engine::EngineError;
use crate::store::StoreError;

/// A command handler answering within this is answered directly; a slower one is deferred.
/// Well under Discord's 3 s, leaving room for the callback's own round trip.
pub const DIRECT_ANSWER_BUDGET: Duration = Duration::from_millis(1_500);
/// The answer to every interaction once shutdown began.
pub const SHUTTING_DOWN: &str = "hanko is shutting down; try again in a minute.";
/// The refusal code of a click or command refused because shutdown began (audited).
pub const SHUTTING_DOWN_CODE: &str = "shutting_down";
/// Discord's limit on the embeds of one message.
const MAX_EMBEDS: usize = 10;

/// Empty `allowed_mentions`: a message may show a mention, never ping anyone.
pub fn no_pings() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
}

/// The audit identity of a Discord user.
pub fn actor_of(user: &User) -> Actor {
    Actor::Discord {
        id: user.id.get().to_string(),
        name: user.name.clone(),
    }
}

/// Why answering an interaction failed. Logged with an error id; never shown as is.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("Discord refused the answer: {0}")]
    Discord(#[from] serenity::Error),
}

/// Logs `error` with its chain under a fresh error id, and returns the id. Interaction and
/// webhook tokens in the chain (reqwest prints the URL it failed to reach) are redacted
/// ([`crate::discord::redact`]).
pub fn log_error(error: &(dyn std::error::Error + 'static), context: &str) -> String {
    let error_id = crate::util::error_id();
    let chain = crate::discord::redact::chain(error);
    tracing::error!(error_id = %error_id, error = %chain, "{context}");
    error_id
}

/// The one sentence a person sees when hanko failed.
pub fn error_sentence(error_id: &str) -> String {
    format!("hanko could not finish this because of an internal error (error id `{error_id}`); the details are in hanko's log.")
}

/// One ephemeral sentence, as an interaction's first answer.
fn ephemeral_message(text: &str) -> CreateInteractionResponse {
    CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .ephemeral(true)
            .content(text::truncate(text, MAX_CONTENT))
            .allowed_mentions(no_pings()),
    )
}

/// One ephemeral sentence, as a followup (after a deferral).
pub(crate) fn ephemeral_followup(text: &str) -> CreateInteractionResponseFollowup {
    CreateInteractionResponseFollowup::new()
        .ephemeral(true)
        .content(text::truncate(text, MAX_CONTENT))
        .allowed_mentions(no_pings())
}

/// Answers at once with one ephemeral sentence (refusals).
pub(crate) async fn say_ephemeral(
    http: &Http,
    to: &impl Answerable,
    text: &str,
) -> Result<(), BotError> {
    Ok(to.respond(http, ephemeral_message(text)).await?)
}

/// Defers the answer ephemerally ("hanko is thinking…", seen by the clicker only); the answer
/// is edited in later.
pub(crate) async fn defer_ephemeral(http: &Http, to: &impl Answerable) -> Result<(), BotError> {
    let defer =
        CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true));
    Ok(to.respond(http, defer).await?)
}

/// Tells the person about an internal error, whether or not the interaction was answered yet:
/// a first answer, else a followup (which works after a deferral). `false` when neither went.
/// Over HTTP, an error before the first answer is told in the response body.
async fn tell_error(http: &Http, to: &impl Answerable, text: &str) -> bool {
    to.respond(http, ephemeral_message(text)).await.is_ok()
        || to.follow_up(http, ephemeral_followup(text)).await.is_ok()
}

/// Logs a handler's error under an error id and tells the person ([`tell_error`]).
async fn answer_error(http: &Http, to: &impl Answerable, result: Result<(), BotError>) {
    if let Err(e) = result {
        let error_id = log_error(&e, "answering an interaction failed");
        if !tell_error(http, to, &error_sentence(&error_id)).await {
            tracing::warn!(error_id = %error_id, "could not tell the user about the error");
        }
    }
}

/// What the event handler needs. Shared by every event task.
pub struct BotState {
    pub app: App,
    /// Engine runs started by clicks, awaited on shutdown.
    pub tasks: Tasks,
    /// True once shutdown began: clicks are answered with [`SHUTTING_DOWN`].
    pub shutdown: watch::Receiver<bool>,
    /// The slash command definitions, as registered on READY.
    pub commands: Vec<serde_json::Value>,
    guild: GuildId,
    channel: ChannelId,
}

impl BotState {
    pub fn new(
        app: App,
        tasks: Tasks,
        shutdown: watch::Receiver<bool>,
        commands: Vec<serde_json::Value>,
    ) -> Self {
        let guild = GuildId::new(app.settings.discord.guild_id.max(1));
        let channel = ChannelId::new(app.settings.discord.channel_id.max(1));
        BotState {
            app,
            tasks,
            shutdown,
            commands,
            guild,
            channel,
        }
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The HTTP client: the configured endpoint without serenity's ratelimiter (the outbox keeps
/// the pace), or discord.com with it.
///
/// A 429 on a new message ([`super::ratelimit::Poster`], used by the outbox and the digest):
/// with the ratelimiter on, serenity waits the answer's `Retry-After` itself and sends again,
/// and hanko waits only a 429 serenity hands back unwaited (one without a readable
/// `Retry-After`), for what the rest of the answer says; with it off, every 429 reaches hanko,
/// which waits its `retry_after`. Nothing is waited twice. Other calls (edits, interaction
/// answers) get serenity's behaviour in both modes.
pub fn http_client(api_base: Option<&str>, token: &Secret) -> Http {
    match api_base {
        Some(base) => HttpBuilder::new(token.expose())
            .proxy(base.trim_end_matches('/'))
            .ratelimiter_disabled(true)
            .build(),
        None => HttpBuilder::new(token.expose()).build(),
    }
}

/// Builds the serenity client; `client.start()` connects.
pub async fn build_client(state: Arc<BotState>, token: &Secret) -> Result<Client, serenity::Error> {
    let http = http_client(state.app.settings.discord.api_base.as_deref(), token);
    ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
        .event_handler(Handler { state })
        .await
}

/// Bulk-overwrites the guild's slash commands with `state.commands` (removed commands
/// disappear); logged, never fatal. Needs the application id on `http` (READY sets it at the
/// gateway; [`super::endpoint::prepare`] over HTTP).
pub(crate) async fn register_commands(http: &Http, state: &BotState) {
    match http
        .create_guild_commands(state.guild, &state.commands)
        .await
    {
        Ok(registered) => tracing::info!(
            commands = registered.len(),
            guild_id = state.guild.get(),
            "slash commands registered (bulk overwrite)"
        ),
        Err(e) => {
            log_error(&e, "registering the slash commands failed");
        }
    }
}

/// Where an interaction came from, when hanko does not answer there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elsewhere {
    DirectMessage,
    OtherGuild,
    OtherChannel,
}

impl Elsewhere {
    fn code(self) -> &'static str {
        match self {
            Elsewhere::DirectMessage => "direct_message",
            Elsewhere::OtherGuild => "other_guild",
            Elsewhere::OtherChannel => "other_channel",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            Elsewhere::DirectMessage => {
                "hanko does not act on direct messages; use its channel in your server."
            }
            Elsewhere::OtherGuild => "hanko is not configured for this server; nothing was done.",
            Elsewhere::OtherChannel => {
                "hanko only acts in its incident channel; use it there. Nothing was done."
            }
        }
    }
}

/// Routes and answers interactions; the event handler of the gateway client, and what the HTTP
/// endpoint ([`super::endpoint`]) hands each verified interaction to.
#[derive(Clone)]
pub(crate) struct Handler {
    state: Arc<BotState>,
}

impl Handler {
    pub(crate) fn new(state: Arc<BotState>) -> Self {
        Handler { state }
    }

    fn elsewhere(&self, guild: Option<GuildId>, channel: ChannelId) -> Option<Elsewhere> {
        match guild {
            None => Some(Elsewhere::DirectMessage),
            Some(g) if g != self.state.guild => Some(Elsewhere::OtherGuild),
            Some(_) if channel != self.state.channel => Some(Elsewhere::OtherChannel),
            Some(_) => None,
        }
    }

    /// Audits an interaction refused before it was read (where it came from, or shutdown).
    fn audit_elsewhere(&self, user: &User, kind: EventKind, detail: serde_json::Value) {
        let ev = NewEvent::new(self.state.app.clock.now(), actor_of(user), kind).detail(detail);
        if let Err(e) = self.state.app.store.append_audit(ev) {
            tracing::error!(error = %e, "could not audit a refused interaction");
        }
    }

    /// Routes one interaction, whichever transport brought it (`via` says how its first answer
    /// goes back), and tells the person about an error the handler returned.
    pub(crate) async fn on_interaction(
        &self,
        http: &Arc<Http>,
        interaction: Interaction,
        via: Via,
    ) {
        match interaction {
            Interaction::Component(click) => {
                let click = Asked::new(click, via);
                let result = self.on_component(http, &click).await;
                answer_error(http, &click, result).await;
            }
            Interaction::Modal(submit) => {
                let submit = Asked::new(submit, via);
                let result = self.on_modal(http, &submit).await;
                answer_error(http, &submit, result).await;
            }
            Interaction::Command(command) => {
                let command = Asked::new(command, via);
                let result = self.on_command(http, &command).await;
                answer_error(http, &command, result).await;
            }
            Interaction::Autocomplete(command) => {
                let command = Asked::new(command, via);
                if let Err(e) = self.on_autocomplete(http, &command).await {
                    log_error(&e, "answering an interaction failed");
                }
            }
            _ => {}
        }
    }

    /// Why a button or a modal submit is refused before it is read: shutdown, or where it came
    /// from (both audited as `VoteRefused`). `None` lets it through.
    fn click_refusal(
        &self,
        user: &User,
        guild: Option<GuildId>,
        channel: ChannelId,
        custom_id: &str,
    ) -> Option<&'static str> {
        if self.state.shutting_down() {
            self.audit_elsewhere(
                user,
                EventKind::VoteRefused,
                serde_json::json!({
                    "code": SHUTTING_DOWN_CODE,
                    "message": SHUTTING_DOWN,
                    "custom_id": text::truncate(custom_id, 100),
                    "channel_id": channel.get().to_string(),
                    "guild_id": guild.map(|g| g.get().to_string()),
                }),
            );
            return Some(SHUTTING_DOWN);
        }
        let place = self.elsewhere(guild, channel)?;
        self.audit_elsewhere(
            user,
            EventKind::VoteRefused,
            serde_json::json!({
                "code": place.code(),
                "message": place.sentence(),
                "custom_id": text::truncate(custom_id, 100),
                "channel_id": channel.get().to_string(),
                "guild_id": guild.map(|g| g.get().to_string()),
            }),
        );
        Some(place.sentence())
    }

    async fn on_component(
        &self,
        http: &Arc<Http>,
        click: &Asked<ComponentInteraction>,
    ) -> Result<(), BotError> {
        let refusal = self.click_refusal(
            &click.user,
            click.guild_id,
            click.channel_id,
            &click.data.custom_id,
        );
        if let Some(text) = refusal {
            return say_ephemeral(http, click, text).await;
        }
        if PostureId::is_posture(&click.data.custom_id) {
            return posture_actions::component(&self.state, http, click).await;
        }
        interactions::component(&self.state, http, click).await
    }

    async fn on_modal(
        &self,
        http: &Arc<Http>,
        submit: &Asked<ModalInteraction>,
    ) -> Result<(), BotError> {
        let refusal = self.click_refusal(
            &submit.user,
            submit.guild_id,
            submit.channel_id,
            &submit.data.custom_id,
        );
        if let Some(text) = refusal {
            return say_ephemeral(http, submit, text).await;
        }
        if PostureId::is_posture(&submit.data.custom_id) {
            return posture_actions::modal(&self.state, http, submit).await;
        }
        interactions::modal(&self.state, http, submit).await
    }

    async fn on_command(
        &self,
        http: &Arc<Http>,
        command: &Asked<CommandInteraction>,
    ) -> Result<(), BotError> {
        if self.state.shutting_down() {
            self.audit_elsewhere(
                &command.user,
                EventKind::CommandInvoked,
                serde_json::json!({
                    "command": command.data.name,
                    "refused": SHUTTING_DOWN_CODE,
                    "message": SHUTTING_DOWN,
                    "channel_id": command.channel_id.get().to_string(),
                    "guild_id": command.guild_id.map(|g| g.get().to_string()),
                }),
            );
            return say_ephemeral(http, command, SHUTTING_DOWN).await;
        }
        if let Some(place) = self.elsewhere(command.guild_id, command.channel_id) {
            self.audit_elsewhere(
                &command.user,
                EventKind::CommandInvoked,
                serde_json::json!({
                    "command": command.data.name,
                    "refused": place.code(),
                    "message": place.sentence(),
                    "channel_id": command.channel_id.get().to_string(),
                    "guild_id": command.guild_id.map(|g| g.get().to_string()),
                }),
            );
            return say_ephemeral(http, command, place.sentence()).await;
        }
        let invocation = invocation_of(command, None);
        let app = self.state.app.clone();
        // Spawned, so a panicking handler becomes an error answer instead of silence.
        let mut handler = tokio::spawn(async move { commands::dispatch(&app, &invocation).await });
        let early = tokio::time::timeout(DIRECT_ANSWER_BUDGET, &mut handler).await;
        let reply = match early {
            Ok(joined) => {
                let reply = joined_reply(joined, &command.data.name);
                let has_file = matches!(
                    reply,
                    Reply::Message {
                        attachment: Some(_),
                        ..
                    }
                );
                if has_file && !command.files_in_first_answer() {
                    // Over HTTP the first answer is a JSON body: defer (as ephemeral or public
                    // as the reply), then edit the reply and its file in.
                    command.respond(http, deferral_for(&reply)).await?;
                    return Ok(command.edit(http, edit_answer(&reply)).await?);
                }
                return Ok(command.respond(http, first_answer(&reply)).await?);
            }
            Err(_) => {
                defer_ephemeral(http, command).await?;
                joined_reply(handler.await, &command.data.name)
            }
        };
        match &reply {
            Reply::Message {
                ephemeral: false, ..
            } => {
                // Deferred ephemerally: the public answer goes out as a followup.
                command
                    .edit(
                        http,
                        EditInteractionResponse::new()
                            .content("Done; the answer is posted below.")
                            .allowed_mentions(no_pings()),
                    )
                    .await?;
                command.follow_up(http, followup_answer(&reply)).await?;
            }
            _ => {
                command.edit(http, edit_answer(&reply)).await?;
            }
        }
        Ok(())
    }

    async fn on_autocomplete(
        &self,
        http: &Arc<Http>,
        command: &Asked<CommandInteraction>,
    ) -> Result<(), BotError> {
        let empty = CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new());
        if self.state.shutting_down()
            || self
                .elsewhere(command.guild_id, command.channel_id)
                .is_some()
        {
            return Ok(command.respond(http, empty).await?);
        }
        let focused = command.data.autocomplete().map(|o| o.name.to_string());
        let invocation = invocation_of(command, focused);
        let app = self.state.app.clone();
        let handler = tokio::spawn(async move { commands::dispatch(&app, &invocation).await });
        let choices = match tokio::time::timeout(DIRECT_ANSWER_BUDGET, handler).await {
            Ok(Ok(Reply::Choices(choices))) => choices,
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(e)) => {
                log_error(&e, "an autocomplete handler panicked");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(command = %command.data.name, "autocomplete handler too slow; answered with no choices");
                Vec::new()
            }
        };
        let mut response = CreateAutocompleteResponse::new();
        for (name, value) in choices.into_iter().take(MAX_CHOICES) {
            response = response.add_string_choice(
                text::truncate(&name, MAX_CHOICE_LEN),
                text::truncate(&value, MAX_CHOICE_LEN),
            );
        }
        Ok(command
            .respond(http, CreateInteractionResponse::Autocomplete(response))
            .await?)
    }
}

/// The handler's reply, or the error sentence when it panicked.
fn joined_reply(joined: Result<Reply, tokio::task::JoinError>, name: &str) -> Reply {
    match joined {
        Ok(reply) => reply,
        Err(e) => {
            let error_id = log_error(&e, &format!("the /{name} handler panicked"));
            Reply::ephemeral(error_sentence(&error_id))
        }
    }
}

/// The option values of a command, by name (subcommand options flattened), as JSON.
fn options_of(options: &[CommandDataOption], out: &mut BTreeMap<String, serde_json::Value>) {
    for option in options {
        let value = match &option.value {
            CommandDataOptionValue::String(s) => serde_json::json!(s),
            CommandDataOptionValue::Integer(i) => serde_json::json!(i),
            CommandDataOptionValue::Number(n) => serde_json::json!(n),
            CommandDataOptionValue::Boolean(b) => serde_json::json!(b),
            CommandDataOptionValue::Autocomplete { value, .. } => serde_json::json!(value),
            CommandDataOptionValue::User(id) => serde_json::json!(id.get().to_string()),
            CommandDataOptionValue::Channel(id) => serde_json::json!(id.get().to_string()),
            CommandDataOptionValue::Role(id) => serde_json::json!(id.get().to_string()),
            CommandDataOptionValue::Mentionable(id) => serde_json::json!(id.get().to_string()),
            CommandDataOptionValue::Attachment(id) => serde_json::json!(id.get().to_string()),
            CommandDataOptionValue::SubCommand(inner)
            | CommandDataOptionValue::SubCommandGroup(inner) => {
                options_of(inner, out);
                serde_json::Value::Null
            }
            _ => serde_json::Value::Null,
        };
        out.insert(option.name.clone(), value);
    }
}

/// A command interaction as the handlers see it.
fn invocation_of(command: &CommandInteraction, focused: Option<String>) -> Invocation {
    let mut options = BTreeMap::new();
    options_of(&command.data.options, &mut options);
    Invocation {
        name: command.data.name.clone(),
        options,
        invoker: Invoker {
            actor: actor_of(&command.user),
            roles: command
                .member
                .as_ref()
                .map(|m| m.roles.iter().map(|r| r.get().to_string()).collect())
                .unwrap_or_default(),
        },
        focused,
    }
}

/// The parts of a message reply, within Discord's limits: content (never empty when there is
/// nothing else), at most 10 embeds within 6000 characters together, the buttons of a single
/// card.
struct Parts {
    content: String,
    embeds: Vec<CreateEmbed>,
    components: Vec<serenity::all::CreateActionRow>,
    attachment: Option<CreateAttachment>,
    ephemeral: bool,
}

fn parts(reply: &Reply) -> Parts {
    let Reply::Message {
        content,
        cards: reply_cards,
        ephemeral,
        attachment,
    } = reply
    else {
        return Parts {
            content: "(no answer)".into(),
            embeds: Vec::new(),
            components: Vec::new(),
            attachment: None,
            ephemeral: true,
        };
    };
    let mut shown: Vec<&Card> = Vec::new();
    let mut total = 0;
    for card in reply_cards.iter().take(MAX_EMBEDS) {
        let chars = cards::total_chars(card);
        if total + chars > text::MAX_TOTAL {
            break;
        }
        total += chars;
        shown.push(card);
    }
    let mut content = content.clone();
    let left_out = reply_cards.len() - shown.len();
    if left_out > 0 {
        content.push_str(&format!(
            "\n(+{left_out} more not shown: Discord's limit per message)"
        ));
    }
    if content.trim().is_empty() && shown.is_empty() && attachment.is_none() {
        content = "(no answer)".into();
    }
    let components = match shown.as_slice() {
        [one] if reply_cards.len() == 1 => convert::to_components(one),
        _ => Vec::new(),
    };
    Parts {
        content: text::truncate(content.trim_start(), MAX_CONTENT),
        embeds: shown.into_iter().map(convert::to_embed).collect(),
        components,
        attachment: attachment
            .as_ref()
            .map(|a| CreateAttachment::bytes(a.bytes.clone(), a.filename.clone())),
        ephemeral: *ephemeral,
    }
}

/// The reply as the interaction's first answer.
fn first_answer(reply: &Reply) -> CreateInteractionResponse {
    let p = parts(reply);
    let mut message = CreateInteractionResponseMessage::new()
        .ephemeral(p.ephemeral)
        .embeds(p.embeds)
        .components(p.components)
        .allowed_mentions(no_pings());
    if !p.content.is_empty() {
        message = message.content(p.content);
    }
    if let Some(file) = p.attachment {
        message = message.add_file(file);
    }
    CreateInteractionResponse::Message(message)
}

/// A deferral as ephemeral or public as the reply that will be edited into it.
fn deferral_for(reply: &Reply) -> CreateInteractionResponse {
    let ephemeral = !matches!(
        reply,
        Reply::Message {
            ephemeral: false,
            ..
        }
    );
    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(ephemeral))
}

/// The reply edited into a deferred answer.
fn edit_answer(reply: &Reply) -> EditInteractionResponse {
    let p = parts(reply);
    let mut edit = EditInteractionResponse::new()
        .content(p.content)
        .embeds(p.embeds)
        .components(p.components)
        .allowed_mentions(no_pings());
    if let Some(file) = p.attachment {
        edit = edit.new_attachment(file);
    }
    edit
}

/// The reply as a followup message.
fn followup_answer(reply: &Reply) -> CreateInteractionResponseFollowup {
    let p = parts(reply);
    let mut followup = CreateInteractionResponseFollowup::new()
        .ephemeral(p.ephemeral)
        .embeds(p.embeds)
        .components(p.components)
        .allowed_mentions(no_pings());
    if !p.content.is_empty() {
        followup = followup.content(p.content);
    }
    if let Some(file) = p.attachment {
        followup = followup.add_file(file);
    }
    followup
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "Discord gateway ready");
        register_commands(&ctx.http, &self.state).await;
        self.state.app.metrics.set_gateway_connected(true);
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        self.state.app.metrics.set_gateway_connected(true);
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        let connected = event.new == ConnectionStage::Connected;
        if !connected {
            tracing::info!(stage = ?event.new, "Discord gateway not connected");
        }
        self.state.app.metrics.set_gateway_connected(connected);
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        self.on_interaction(&ctx.http, interaction, Via::Gateway)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::commands::Attachment;

    fn card(title: &str, description_len: usize) -> Card {
        Card {
            title: title.into(),
            url: None,
            description: "d".repeat(description_len),
            color: 0,
            fields: Vec::new(),
            footer: String::new(),
            buttons: vec![cards::Button {
                id: "hk1:a:x:y".into(),
                label: "Approve".into(),
                style: cards::ButtonStyle::Success,
                disabled: false,
            }],
        }
    }

    #[test]
    fn a_reply_never_exceeds_discord_limits() {
        let reply = Reply::Message {
            content: "x".repeat(5000),
            cards: (0..12).map(|i| card(&format!("c{i}"), 2500)).collect(),
            ephemeral: false,
            attachment: Some(Attachment {
                filename: "audit.jsonl".into(),
                bytes: b"{}\n".to_vec(),
            }),
        };
        let p = parts(&reply);
        assert_eq!(p.content.chars().count(), MAX_CONTENT);
        assert_eq!(p.embeds.len(), 2, "two 2502-character cards fit in 6000");
        assert!(p.components.is_empty(), "buttons only for a single card");
        assert!(p.attachment.is_some());
        assert!(!p.ephemeral);
    }

    #[test]
    fn a_single_card_keeps_its_buttons_and_an_empty_reply_says_so() {
        let one = Reply::Message {
            content: String::new(),
            cards: vec![card("c", 10)],
            ephemeral: true,
            attachment: None,
        };
        let p = parts(&one);
        assert_eq!(p.components.len(), 1);
        assert_eq!(p.content, "");
        let empty = Reply::ephemeral("");
        assert_eq!(parts(&empty).content, "(no answer)");
    }

    #[test]
    fn error_sentences_carry_only_the_id() {
        let e = std::io::Error::other("AccessDenied: secret detail");
        let id = log_error(&e, "test");
        let s = error_sentence(&id);
        assert_eq!(id.len(), crate::util::ERROR_ID_LEN);
        assert!(s.contains(&id));
        assert!(!s.contains("AccessDenied"));
    }
}
