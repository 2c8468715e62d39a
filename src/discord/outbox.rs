//! The outbox: the one writer of new messages to the incident channel.
//!
//! It subscribes to the [`Notices`](crate::notices::Notices) and keeps the channel
//! in step with the store:
//!
//! * a new finding (at or above `ingest.min_severity`) gets one card: its request's card, or a
//!   buttonless [`cards::finding_card`] when its plan only notifies;
//! * a finding seen again, a vote, an execution, a supersession **edits** the existing card;
//!   the message id of every card is kept in the store ([`crate::store::Store::put_card_location`], which
//!   owns the key layout) so edits survive a restart;
//! * a pending request that has no card yet (a revert proposed from a button, a request left
//!   without one by a crash) is posted; on start-up the outbox sweeps for those.
//!
//! Every card is rendered from the store at the moment it is sent, never from the notice, so a
//! queued card always shows the latest state.
//!
//! # Rate
//!
//! Discord allows about 5 messages per 5 s per channel, counted in windows that open with the
//! first message. [`PostBudget`] allows at most [`POSTS_PER_WINDOW`] posts in any
//! [`POST_WINDOW`] (a sliding window, stricter than Discord's buckets, so a refilling token
//! bucket's early 6th message never happens). When more cards are due than the budget allows,
//! all but one of the free posts go to the most severe cards and the rest are folded into ONE
//! digest message ([`cards::digest_card`]) whose lines each name `/finding <id>`. While the
//! burst lasts (until a whole window passes with nothing folded), later overflow is added to
//! that same digest by editing it (at most one edit per [`DIGEST_EDIT_SPACING`]), so a burst
//! that trickles in still makes one digest. The open digest keeps its most severe lines (more
//! than a message shows) and a count per severity, never every line ([`cards::DigestLines`]). Folded cards are remembered as
//! [`CardLocation::Digest`] and are not edited later. Card edits do not count against the
//! channel's post bucket and are sent at once.
//!
//! A 429 answer (which the budget should prevent) holds the budget for the `retry_after`
//! Discord gave, counted from when the answer arrived, and the post is tried again then. Posts
//! go through [`Poster`], which reads that wait from the answer's headers or body (serenity
//! 0.12 drops both) and falls back to a whole window only when nothing is readable.
//! With serenity's own ratelimiter on (production against discord.com) serenity waits a 429
//! that names its `Retry-After` itself and sends again, so the outbox sees, counts and waits
//! only the 429s serenity hands back; against a configured `api_base` (ratelimiter off) it sees
//! every 429. Retries are bounded ([`MAX_ATTEMPTS`]): no storm. Every 429 the outbox sees is
//! counted (`hanko_discord_rate_limited_total`).
//!
//! It may use the app (store, policy, playbooks, metrics), [`cards`] and [`convert`]; it never
//! decides anything about requests and never imports the AWS SDK or sled.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateAttachment, CreateMessage, EditMessage, MessageId,
    MessageReference, RoleId,
};
use serenity::http::{Http, HttpError};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::actions::escalate;
use crate::app::App;
use crate::approval::RequestState;
use crate::audit::Actor;
use crate::config::NotifySettings;
use crate::discord::cards::{self, Card};
use crate::discord::convert;
use crate::discord::ratelimit::{PostError, Poster};
use crate::discord::text::{truncate, MAX_CONTENT};
use crate::finding::SeverityLabel;
use crate::notices::Notice;
use crate::posture::{Group, GroupKey, GroupStatus, PostureSeverity};
use crate::store::StoreError;
use crate::store::{CardKey, CardLocation};

/// Posts allowed in any [`POST_WINDOW`].
pub const POSTS_PER_WINDOW: usize = 5;
/// Discord's channel window (5 s) plus a margin for the clock of Discord's edge.
pub const POST_WINDOW: Duration = Duration::from_millis(5_250);
/// The least time between two edits of the open digest (Discord limits edits too).
pub const DIGEST_EDIT_SPACING: Duration = Duration::from_secs(1);
/// Attempts for one message (429s and transient failures) before it is given up (logged).
pub const MAX_ATTEMPTS: u32 = 4;
/// Reads where the card of `key` is ([`crate::store::Store::card_location`]).
pub fn card_location(app: &App, key: &CardKey) -> Result<Option<CardLocation>, StoreError> {
    app.store.card_location(key)
}

/// The card of a request as the store holds it now (`None` when its finding is unknown).
pub fn request_card(app: &App, request_id: Uuid) -> Result<Option<Card>, StoreError> {
    let Some(request) = app.store.get_request(request_id)? else {
        return Ok(None);
    };
    let records = app.store.step_records(request.id)?;
    let needed = app.policy.needed(&request.plan);
    if let Some(stored) = app.store.get_finding(&request.finding_id)? {
        let card = cards::request_card(&stored.finding, &request, &records, needed);
        return Ok(Some(
            match app.store.investigation(&request.finding_id)? {
                Some(inv) => cards::with_investigation(card, &inv),
                None => card,
            },
        ));
    }
    // A suppression or remediation of a Security Hub control names its posture group.
    Ok(posture_group(app, &request.finding_id)?
        .map(|g| cards::posture_request_card(&g, &request, &records, needed)))
}

/// The card for `key`, rendered from the store now.
pub fn render(app: &App, key: &CardKey) -> Result<Option<Card>, StoreError> {
    match key {
        CardKey::Request(id) => request_card(app, *id),
        CardKey::Finding(id) => {
            let Some(stored) = app.store.get_finding(id)? else {
                return Ok(None);
            };
            let plan = app.plan_in(&stored.finding);
            let card = cards::finding_card(&stored.finding, &plan);
            Ok(Some(match app.store.investigation(id)? {
                Some(inv) => cards::with_investigation(card, &inv),
                None => card,
            }))
        }
        CardKey::Posture(group) => {
            let Some(g) = posture_group(app, group)? else {
                return Ok(None);
            };
            let remediable = crate::remediate::offers(&g.key.control_id);
            let suppressions = suppressions_in_force(app, group)?;
            Ok(Some(cards::posture_card_with_suppressions(
                &g,
                remediable,
                &suppressions,
            )))
        }
    }
}

/// The suppressions of a posture group that ran and are not lifted, as its card names them.
fn suppressions_in_force(
    app: &App,
    group: &str,
) -> Result<Vec<cards::SuppressionInForce>, StoreError> {
    Ok(
        crate::actions::posture::in_force_for_group(&app.store, group)?
            .into_iter()
            .map(|s| cards::SuppressionInForce {
                request_id: s.request.id,
                findings: s.findings,
                proposer: s.request.proposer.display_name().to_string(),
                approvers: s
                    .request
                    .approvers()
                    .iter()
                    .map(|a| a.display_name().to_string())
                    .collect(),
                reason: s.reason,
                lift_pending: match s.lift {
                    crate::actions::posture::Lift::Pending(id) => Some(id),
                    _ => None,
                },
            })
            .collect(),
    )
}

/// The posture group `group` as the store holds it now (`None` when unknown).
pub fn posture_group(app: &App, group: &str) -> Result<Option<Group>, StoreError> {
    let Some(key) = GroupKey::decode(group) else {
        return Ok(None);
    };
    Ok(Group::of(&app.store.control_findings(&key)?))
}

/// Where a posture severity sorts among findings' in a digest (Informational as Low).
fn digest_severity(s: PostureSeverity) -> SeverityLabel {
    match s {
        PostureSeverity::Informational | PostureSeverity::Low => SeverityLabel::Low,
        PostureSeverity::Medium => SeverityLabel::Medium,
        PostureSeverity::High => SeverityLabel::High,
        PostureSeverity::Critical => SeverityLabel::Critical,
    }
}

/// A message builder for a card, with mention pings off.
pub fn create_message(card: &Card) -> CreateMessage {
    CreateMessage::new()
        .embed(convert::to_embed(card))
        .components(convert::to_components(card))
        .allowed_mentions(super::bot::no_pings())
}

/// Who a new message pages, and the line it pages with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The role ids mentioned; `allowed_mentions.roles` is exactly these (and `parse` empty), so
    /// nothing else in the message (a finding's `@everyone`, a user mention) can ping.
    pub roles: Vec<u64>,
    /// The text after the mentions.
    pub text: String,
}

impl Page {
    /// The message content: the role mentions, then the text, within Discord's limit.
    pub fn content(&self) -> String {
        let mentions: Vec<String> = self.roles.iter().map(|r| format!("<@&{r}>")).collect();
        let text = format!("{} {}", mentions.join(" "), self.text);
        truncate(text.trim_start(), MAX_CONTENT)
    }

    /// `allowed_mentions` naming exactly these roles.
    pub fn allowed_mentions(&self) -> CreateAllowedMentions {
        CreateAllowedMentions::new()
            .roles(self.roles.iter().map(|r| RoleId::new((*r).max(1))))
            .replied_user(false)
    }
}

/// [`create_message`], paging `page` when there is one.
pub fn create_paging_message(card: &Card, page: Option<&Page>) -> CreateMessage {
    match page {
        None => create_message(card),
        Some(p) => create_message(card)
            .content(p.content())
            .allowed_mentions(p.allowed_mentions()),
    }
}

/// The page for a new card of `severity` whose first line is `headline`, when
/// `notify.page_roles` are set and the severity pages at `now` ([`NotifySettings::pages`]).
pub fn page_for(
    notify: &NotifySettings,
    severity: SeverityLabel,
    headline: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Page> {
    notify.pages(severity, now).then(|| Page {
        roles: notify.page_roles.iter().copied().collect(),
        text: format!("{} · {headline}", severity.as_str()),
    })
}

/// An edit that replaces the card (an empty component list removes old buttons).
pub fn edit_message(card: &Card) -> EditMessage {
    EditMessage::new()
        .embed(convert::to_embed(card))
        .components(convert::to_components(card))
        .allowed_mentions(super::bot::no_pings())
}

// ---------------------------------------------------------------------------------------------
// The post budget
// ---------------------------------------------------------------------------------------------

/// At most `limit` posts in any `window`: the times of the last posts, oldest first.
#[derive(Debug, Clone)]
pub struct PostBudget {
    limit: usize,
    window: Duration,
    recent: VecDeque<Instant>,
    /// No post before this (a 429's `retry_after`).
    held_until: Option<Instant>,
}

impl PostBudget {
    pub fn new(limit: usize, window: Duration) -> Self {
        PostBudget {
            limit: limit.max(1),
            window,
            recent: VecDeque::new(),
            held_until: None,
        }
    }

    fn expire(&mut self, now: Instant) {
        if self.held_until.is_some_and(|held| held <= now) {
            self.held_until = None;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
    }

    /// Posts that may go out at `now`.
    pub fn available(&mut self, now: Instant) -> usize {
        self.expire(now);
        if self.held_until.is_some() {
            return 0;
        }
        self.limit.saturating_sub(self.recent.len())
    }

    /// When the next post may go out (`now` when one may already).
    pub fn next_slot(&mut self, now: Instant) -> Instant {
        self.expire(now);
        let paced = if self.recent.len() < self.limit {
            now
        } else {
            self.recent[self.recent.len() - self.limit] + self.window
        };
        self.held_until.map_or(paced, |held| paced.max(held))
    }

    /// Records a post that completed at `at` (the time the answer arrived, which is no
    /// earlier than the time Discord counted it).
    pub fn record(&mut self, at: Instant) {
        self.recent.push_back(at);
        while self.recent.len() > self.limit {
            self.recent.pop_front();
        }
    }

    /// Discord said 429: no post before `until` (its `retry_after` from when the answer
    /// arrived). The posts already counted keep the pace after it.
    pub fn hold_until(&mut self, until: Instant) {
        self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
    }
}

// ---------------------------------------------------------------------------------------------
// The outbox task
// ---------------------------------------------------------------------------------------------

/// A card waiting for a post.
#[derive(Debug, Clone)]
struct Due {
    key: CardKey,
    finding_id: String,
    finding_type: String,
    severity: SeverityLabel,
}

impl Due {
    fn line(&self) -> (String, String, SeverityLabel) {
        (
            self.finding_id.clone(),
            self.finding_type.clone(),
            self.severity,
        )
    }
}

/// The cards waiting for a post, in arrival order, each key once. A burst queues thousands
/// while the channel's budget is spent: the key set keeps the check for a card already
/// waiting at O(1) instead of a walk of the queue per notice.
#[derive(Debug, Default)]
struct DueQueue {
    items: Vec<Due>,
    keys: std::collections::HashSet<CardKey>,
}

impl DueQueue {
    fn contains(&self, key: &CardKey) -> bool {
        self.keys.contains(key)
    }

    fn push(&mut self, due: Due) {
        if self.keys.insert(due.key.clone()) {
            self.items.push(due);
        }
    }

    /// Puts cards back (a digest that could not take them), skipping any queued since.
    fn extend(&mut self, due: impl IntoIterator<Item = Due>) {
        for d in due {
            self.push(d);
        }
    }

    fn take(&mut self) -> Vec<Due> {
        self.keys.clear();
        std::mem::take(&mut self.items)
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Why one message could not be sent.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("Discord kept answering 429 after {attempts} attempts")]
    RateLimited { attempts: u32 },
    #[error("Discord refused the message: {0}")]
    Discord(#[from] serenity::Error),
}

/// The digest of the burst under way: later overflow is added to it by editing it.
#[derive(Debug)]
struct OpenDigest {
    message_id: u64,
    /// Bounded however long the burst ([`cards::DigestLines`]).
    lines: cards::DigestLines,
    /// When cards were last folded into it: a whole quiet window closes it.
    last_fold: Instant,
    last_edit: Instant,
    /// The most severe line that paged for this digest (when posted, or by a later reply), so
    /// a later, more severe line pages once more and an equal one does not.
    paged: Option<SeverityLabel>,
}

/// The outbox. Build it with [`Outbox::new`], then `tokio::spawn(outbox.run(...))`.
pub struct Outbox {
    app: App,
    /// Edits (serenity's `Http`).
    http: Arc<Http>,
    /// New messages, seeing a 429's `retry_after`.
    poster: Poster,
    channel: ChannelId,
    budget: PostBudget,
    queue: DueQueue,
    digest: Option<OpenDigest>,
    /// How often reminders of unanswered requests are looked for ([`ESCALATION_INTERVAL`]).
    escalate_every: Duration,
}

/// How often the outbox looks for reminders due ([`crate::actions::escalate`]).
/// A scan of the Pending requests (no AWS or Discord call unless a reminder is due).
pub const ESCALATION_INTERVAL: Duration = Duration::from_secs(10);

impl Outbox {
    pub fn new(app: App, http: Arc<Http>) -> Self {
        let channel = ChannelId::new(app.settings.discord.channel_id.max(1));
        Outbox {
            app,
            poster: Poster::new(Arc::clone(&http)),
            http,
            channel,
            budget: PostBudget::new(POSTS_PER_WINDOW, POST_WINDOW),
            queue: DueQueue::default(),
            digest: None,
            escalate_every: ESCALATION_INTERVAL,
        }
    }

    /// Looks for due reminders every `every` instead of [`ESCALATION_INTERVAL`] (tests that
    /// move the clock look more often rather than wait).
    pub fn with_escalation_interval(mut self, every: Duration) -> Self {
        self.escalate_every = every.max(Duration::from_millis(10));
        self
    }

    /// Runs until `shutdown` turns true or the notices channel closes. Subscribe `notices`
    /// before anything can send (before ingest and the bot start), so nothing is missed.
    pub async fn run(
        mut self,
        mut notices: broadcast::Receiver<Notice>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if let Err(e) = self.sweep() {
            tracing::error!(error = %e, "outbox: start-up sweep for requests without a card failed");
        }
        // No reminder can be in flight yet: a claim left unsent by a crash is given back.
        match self.app.store.release_unsent_reminders() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                reminders = n,
                "outbox: reminders claimed before a crash but never posted are due again"
            ),
            Err(e) => tracing::error!(error = %e, "outbox: could not release unsent reminders"),
        }
        let mut escalations = tokio::time::interval(self.escalate_every);
        escalations.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wake = self.next_wake(Instant::now());
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                received = notices.recv() => match received {
                    Ok(notice) => self.handle(notice).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "outbox: notices were dropped; sweeping the store for requests without a card");
                        if let Err(e) = self.sweep() {
                            tracing::error!(error = %e, "outbox: sweep failed");
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = sleep_until_opt(wake) => self.post_due().await,
                _ = escalations.tick() => self.escalate().await,
            }
        }
        if !self.queue.is_empty() {
            tracing::info!(
                cards = self.queue.len(),
                "outbox stopped with cards not posted; they are posted on the next start"
            );
        }
    }

    /// When due cards can next go out: into the open digest (edits, spaced), or as posts.
    fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        match &self.digest {
            Some(d) if now.saturating_duration_since(d.last_fold) < POST_WINDOW => {
                Some((d.last_edit + DIGEST_EDIT_SPACING).max(now))
            }
            _ => Some(self.budget.next_slot(now)),
        }
    }

    /// Queues a card for every pending request, and every newly failing posture group, without
    /// one (notices lost to a crash or a lagging receiver).
    fn sweep(&mut self) -> Result<(), StoreError> {
        // Walked one at a time, keeping only the id and finding of a request with no card:
        // after a burst tens of thousands wait, each with its plan.
        let mut cardless = Vec::new();
        self.app
            .store
            .each_request_in_states(&[RequestState::Pending], |request| {
                if card_location(&self.app, &CardKey::Request(request.id))?.is_none() {
                    cardless.push((
                        request.created_at,
                        request.id,
                        request.proposer == Actor::System,
                        request.finding_id,
                    ));
                }
                Ok(())
            })?;
        cardless.sort();
        for (_, id, by_system, finding_id) in cardless {
            if by_system && !self.wants_card(&finding_id)? {
                continue;
            }
            self.enqueue(CardKey::Request(id), &finding_id)?;
        }
        // Posture groups that newly fail and have no card (their notice was lost).
        let mut by_group: std::collections::BTreeMap<GroupKey, Vec<_>> = Default::default();
        for f in self.app.store.all_control_findings()? {
            by_group.entry(f.group_key()).or_default().push(f);
        }
        for findings in by_group.values() {
            let Some(group) = Group::of(findings) else {
                continue;
            };
            let key = CardKey::Posture(group.key.encode());
            if group.status == GroupStatus::Failing && card_location(&self.app, &key)?.is_none() {
                let id = group.key.encode();
                self.enqueue(key, &id)?;
            }
        }
        Ok(())
    }

    /// Is this finding severe enough for a card of its own?
    fn wants_card(&self, finding_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .app
            .store
            .get_finding(finding_id)?
            .is_some_and(|f| f.finding.severity >= self.app.settings.ingest.min_severity))
    }

    async fn handle(&mut self, notice: Notice) {
        if let Err(e) = self.try_handle(&notice).await {
            tracing::error!(?notice, error = %crate::discord::redact::chain(&e), "outbox: could not bring the card in step");
        }
    }

    async fn try_handle(&mut self, notice: &Notice) -> Result<(), StoreError> {
        match notice {
            Notice::FindingNew {
                finding_id,
                request,
            }
            | Notice::FindingUpdated {
                finding_id,
                request,
            } => {
                let key = match request {
                    Some(id) => CardKey::Request(*id),
                    None => CardKey::Finding(finding_id.clone()),
                };
                match card_location(&self.app, &key)? {
                    Some(CardLocation::Message(id)) => self.edit(&key, id).await,
                    Some(CardLocation::Digest(_)) => {}
                    None => {
                        if self.wants_card(finding_id)? {
                            self.enqueue(key, finding_id)?;
                        }
                    }
                }
            }
            Notice::PostureChanged { group } => {
                let key = CardKey::Posture(group.clone());
                match card_location(&self.app, &key)? {
                    Some(CardLocation::Message(id)) => self.edit(&key, id).await,
                    Some(CardLocation::Digest(_)) => {}
                    None => {
                        // A card for a control that newly fails; one that passes again has
                        // nothing to say until it fails.
                        if posture_group(&self.app, group)?
                            .is_some_and(|g| g.status == GroupStatus::Failing)
                        {
                            self.enqueue(key, group)?;
                        }
                    }
                }
            }
            // The requests that start announce themselves (RequestChanged); `/resume` answers
            // in the channel itself.
            Notice::ExecutionResumed => {}
            Notice::CardPosted { .. } => {}
            // The card is posted from the finding's own notice and never waits for CloudTrail:
            // an investigation only edits the cards already posted (a card posted later
            // renders it from the store).
            Notice::InvestigationChanged { finding_id } => {
                let mut keys = vec![CardKey::Finding(finding_id.clone())];
                for r in self.app.store.requests_for_finding(finding_id)? {
                    keys.push(CardKey::Request(r.id));
                }
                for key in keys {
                    if let Some(CardLocation::Message(id)) = card_location(&self.app, &key)? {
                        self.edit_investigated(&key, id, finding_id).await;
                    }
                }
            }
            Notice::RequestChanged { request } => {
                let key = CardKey::Request(*request);
                match card_location(&self.app, &key)? {
                    Some(CardLocation::Message(id)) => self.edit(&key, id).await,
                    Some(CardLocation::Digest(_)) => {}
                    None => {
                        let Some(req) = self.app.store.get_request(*request)? else {
                            return Ok(());
                        };
                        let posts = req.state == RequestState::Pending
                            && (req.proposer != Actor::System
                                || self.wants_card(&req.finding_id)?);
                        if posts {
                            self.enqueue(key, &req.finding_id)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, key: CardKey, finding_id: &str) -> Result<(), StoreError> {
        if self.queue.contains(&key) {
            return Ok(());
        }
        // Replicas on one store: one of them posts each card (the others' sweeps skip it
        // while the claim holds).
        if !crate::replicas::claim_card(&self.app, &key.to_string())? {
            return Ok(());
        }
        let (finding_type, severity) = match &key {
            CardKey::Posture(group) => match posture_group(&self.app, group)? {
                Some(g) => (
                    format!("{} {}", g.key.control_id, g.title),
                    digest_severity(g.severity),
                ),
                None => return Ok(()),
            },
            _ => match self.app.store.get_finding(finding_id)? {
                Some(f) => (f.finding.finding_type, f.finding.severity_label),
                None => (String::new(), SeverityLabel::Low),
            },
        };
        self.queue.push(Due {
            key,
            finding_id: finding_id.to_string(),
            finding_type,
            severity,
        });
        Ok(())
    }

    /// Edits a card after its finding's investigation changed: with the events attached as
    /// JSON Lines once they are many ([`cards::wants_attachment`]), else as [`Self::edit`].
    async fn edit_investigated(&mut self, key: &CardKey, message_id: u64, finding_id: &str) {
        let attachment = match self.app.store.investigation(finding_id) {
            Ok(Some(inv)) if cards::wants_attachment(&inv) => {
                match self.app.store.investigation_events(finding_id) {
                    Ok(Some(lines)) => Some((cards::attachment_name(&inv), lines)),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((name, lines)) = attachment else {
            return self.edit(key, message_id).await;
        };
        let card = match render(&self.app, key) {
            Ok(Some(card)) => card,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(key = %key, error = %e, "outbox: cannot render a card");
                return;
            }
        };
        // `new_attachment` replaces the card's attachments: a later edit never doubles it, and
        // edits without attachments (votes) keep it.
        let edit =
            edit_message(&card).new_attachment(CreateAttachment::bytes(lines.into_bytes(), name));
        if let Err(e) = self
            .channel
            .edit_message(self.http.as_ref(), MessageId::new(message_id.max(1)), edit)
            .await
        {
            tracing::warn!(key = %key, message_id, error = %crate::discord::redact::chain(&e), "outbox: attaching the investigation's events failed");
        }
    }

    /// Edits the card message `message_id` to what the store says now.
    async fn edit(&mut self, key: &CardKey, message_id: u64) {
        let card = match render(&self.app, key) {
            Ok(Some(card)) => card,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(key = %key, error = %e, "outbox: cannot render a card");
                return;
            }
        };
        let edit = edit_message(&card);
        let result = self
            .http
            .edit_message(
                self.channel,
                MessageId::new(message_id.max(1)),
                &edit,
                vec![],
            )
            .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unknown_message(&e) => {
                // Someone deleted the card: forget it and post a fresh one.
                tracing::warn!(key = %key, message_id, "card message is gone; posting it again");
                let finding_id = match key {
                    CardKey::Finding(id) | CardKey::Posture(id) => id.clone(),
                    CardKey::Request(id) => match self.app.store.get_request(*id) {
                        Ok(Some(r)) => r.finding_id,
                        _ => return,
                    },
                };
                if let Err(e) = self.enqueue(key.clone(), &finding_id) {
                    tracing::error!(error = %e, "outbox: cannot queue the card again");
                }
            }
            Err(e) => {
                tracing::warn!(key = %key, message_id, error = %crate::discord::redact::chain(&e), "outbox: editing a card failed")
            }
        }
    }

    /// Sends the due cards: into the open digest while a burst lasts; otherwise every due card
    /// when they fit the budget, else the most severe ones and a new digest of the rest.
    async fn post_due(&mut self) {
        let now = Instant::now();
        if self
            .digest
            .as_ref()
            .is_some_and(|d| now.saturating_duration_since(d.last_fold) >= POST_WINDOW)
        {
            self.digest = None; // the burst is over: the next cards get posts of their own
        }
        if self.digest.is_some() {
            let due = self.queue.take();
            self.fold(due).await;
            return;
        }
        let available = self.budget.available(now);
        if available == 0 || self.queue.is_empty() {
            return;
        }
        let mut due = self.queue.take();
        if due.len() <= available {
            for item in due {
                self.post_card(item).await;
            }
            return;
        }
        // Most severe first; equal severities keep their arrival order.
        due.sort_by_key(|d| std::cmp::Reverse(d.severity));
        let folded = due.split_off(available - 1);
        for item in due {
            self.post_card(item).await;
        }
        self.post_digest(folded).await;
    }

    async fn post_card(&mut self, item: Due) {
        let card = match render(&self.app, &item.key) {
            Ok(Some(card)) => card,
            Ok(None) => {
                tracing::warn!(key = %item.key, "outbox: nothing to render; card dropped");
                return;
            }
            Err(e) => {
                tracing::error!(key = %item.key, error = %e, "outbox: cannot render a card");
                return;
            }
        };
        let headline = card
            .description
            .lines()
            .next()
            .unwrap_or(card.title.as_str())
            .to_string();
        let page = page_for(
            &self.app.settings.notify,
            item.severity,
            &headline,
            self.app.clock.now(),
        );
        match self.send(&card, page.as_ref()).await {
            Ok(message_id) => {
                if page.is_some() {
                    self.app.metrics.record_page();
                }
                if !matches!(item.key, CardKey::Posture(_)) {
                    self.app.notices.send(Notice::CardPosted {
                        finding_id: item.finding_id.clone(),
                    });
                }
                if let Err(e) = self
                    .app
                    .store
                    .put_card_location(&item.key, CardLocation::Message(message_id))
                {
                    tracing::error!(key = %item.key, error = %e, "outbox: card posted but its id was not stored; later changes will post a new card");
                }
            }
            Err(e) => {
                tracing::error!(key = %item.key, finding_id = ?item.finding_id, error = %crate::discord::redact::chain(&e), "outbox: card not posted")
            }
        }
    }

    async fn post_digest(&mut self, folded: Vec<Due>) {
        let lines: cards::DigestLines = folded.iter().map(Due::line).collect();
        let card = cards::digest_card_of(&lines);
        // A digest pages as its most severe line would have: the cards folded into it were
        // never posted on their own.
        let page = folded.iter().map(|d| d.severity).max().and_then(|worst| {
            let paging = folded
                .iter()
                .filter(|d| {
                    self.app
                        .settings
                        .notify
                        .pages(d.severity, self.app.clock.now())
                })
                .count();
            page_for(
                &self.app.settings.notify,
                worst,
                &format!(
                    "{} findings folded into one digest during a burst, {paging} of them paging; open the digest",
                    folded.len()
                ),
                self.app.clock.now(),
            )
        });
        match self.send(&card, page.as_ref()).await {
            Ok(message_id) => {
                tracing::info!(
                    folded = folded.len(),
                    message_id,
                    "outbox: burst folded into a digest"
                );
                self.remember_folded(&folded, message_id);
                let now = Instant::now();
                self.digest = Some(OpenDigest {
                    message_id,
                    lines,
                    last_fold: now,
                    last_edit: now,
                    paged: page.as_ref().and(folded.iter().map(|d| d.severity).max()),
                });
            }
            Err(e) => {
                tracing::error!(folded = folded.len(), error = %crate::discord::redact::chain(&e), "outbox: digest not posted")
            }
        }
    }

    /// Adds due cards to the open digest by editing it.
    async fn fold(&mut self, due: Vec<Due>) {
        let Some(digest) = self.digest.as_mut() else {
            self.queue.extend(due);
            return;
        };
        let before = digest.lines.clone();
        for line in due.iter().map(Due::line) {
            digest.lines.push(line);
        }
        let card = cards::digest_card_of(&digest.lines);
        let message_id = digest.message_id;
        let result = self
            .http
            .edit_message(
                self.channel,
                MessageId::new(message_id.max(1)),
                &edit_message(&card),
                vec![],
            )
            .await;
        let now = Instant::now();
        match result {
            Ok(_) => {
                digest.last_fold = now;
                digest.last_edit = now;
                // An edit pings nobody: a card folded into the open digest that would have paged
                // (more severe than what the digest paged for) pages with a reply to it.
                let wall = self.app.clock.now();
                let worst = due
                    .iter()
                    .map(|d| d.severity)
                    .filter(|s| self.app.settings.notify.pages(*s, wall))
                    .max();
                let page = match (worst, digest.paged) {
                    (Some(w), Some(p)) if w <= p => None,
                    (Some(w), _) => page_for(
                        &self.app.settings.notify,
                        w,
                        &format!(
                            "{} more finding(s) folded into the digest above, the worst {}",
                            due.len(),
                            w.as_str()
                        ),
                        wall,
                    ),
                    (None, _) => None,
                };
                if let Some(w) = worst.filter(|_| page.is_some()) {
                    digest.paged = Some(w);
                }
                self.remember_folded(&due, message_id);
                if let Some(page) = page {
                    let reply = CreateMessage::new()
                        .content(page.content())
                        .allowed_mentions(page.allowed_mentions())
                        .reference_message(
                            MessageReference::from((
                                self.channel,
                                MessageId::new(message_id.max(1)),
                            ))
                            .fail_if_not_exists(false),
                        );
                    match self.post(&reply).await {
                        Ok(_) => self.app.metrics.record_page(),
                        Err(e) => {
                            tracing::warn!(message_id, error = %e, "outbox: the page for a folded card was not posted")
                        }
                    }
                }
            }
            Err(e) => {
                // The digest cannot grow (deleted, refused): close it; the cards go out anew.
                tracing::warn!(message_id, error = %crate::discord::redact::chain(&e), "outbox: digest edit failed; closing it");
                digest.lines = before;
                self.digest = None;
                self.queue.extend(due);
            }
        }
    }

    /// Posts the reminders due now ([`escalate::due`]), each a reply to its card mentioning
    /// `notify.escalate_roles`; a failed post gives its claim back.
    async fn escalate(&mut self) {
        let now = self.app.clock.now();
        let due = match escalate::due(&self.app, now) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot read the reminders due");
                return;
            }
        };
        for reminder in due {
            let roles: Vec<u64> = self
                .app
                .settings
                .notify
                .escalate_roles
                .iter()
                .copied()
                .collect();
            let text = reminder_text(&self.app, &reminder);
            let page = Page { roles, text };
            let message = CreateMessage::new()
                .content(page.content())
                .allowed_mentions(page.allowed_mentions())
                .reference_message(
                    MessageReference::from((
                        self.channel,
                        MessageId::new(reminder.card_message.max(1)),
                    ))
                    .fail_if_not_exists(false),
                );
            match self.post(&message).await {
                Ok(message_id) => {
                    tracing::info!(request_id = %reminder.request.id, reminder = reminder.n, message_id, "outbox: reminder posted");
                    if let Err(e) =
                        escalate::sent(&self.app, &reminder, &page.roles, message_id, now)
                    {
                        tracing::error!(request_id = %reminder.request.id, error = %e, "outbox: reminder posted but not recorded");
                    }
                }
                Err(e) => {
                    tracing::warn!(request_id = %reminder.request.id, reminder = reminder.n, error = %e, "outbox: reminder not posted; the next sweep tries again");
                    escalate::failed(&self.app, &reminder);
                }
            }
        }
    }

    /// Records that these cards are lines of the digest `message_id`.
    fn remember_folded(&self, folded: &[Due], message_id: u64) {
        self.app.metrics.record_cards_folded(folded.len() as u64);
        // A folded card announces nothing: a burst is not investigated line by line (at
        // CloudTrail's two requests a second that would take hours, and no card would show it).
        for d in folded {
            if let Err(e) = self
                .app
                .store
                .put_card_location(&d.key, CardLocation::Digest(message_id))
            {
                tracing::error!(key = %d.key, error = %e, "outbox: digest entry not stored");
            }
        }
    }

    /// Posts a card within the budget (paging `page`, when there is one).
    async fn send(&mut self, card: &Card, page: Option<&Page>) -> Result<u64, SendError> {
        self.post(&create_paging_message(card, page)).await
    }

    /// Posts one message within the budget; a 429 holds the budget for its `retry_after`
    /// ([`crate::discord::ratelimit::RateLimited`]) and the message is tried again after it.
    async fn post(&mut self, message: &CreateMessage) -> Result<u64, SendError> {
        for attempt in 1..=MAX_ATTEMPTS {
            tokio::time::sleep_until(self.budget.next_slot(Instant::now())).await;
            match self.poster.create_message(self.channel, message).await {
                Ok(posted) => {
                    self.budget.record(Instant::now());
                    self.app.metrics.record_card_posted();
                    return Ok(posted.id.get());
                }
                Err(PostError::RateLimited { limit, arrived }) => {
                    self.app.metrics.record_discord_rate_limited();
                    tracing::warn!(
                        attempt,
                        retry_after_ms = limit.retry_after.as_millis() as u64,
                        read_from = ?limit.read_from,
                        scope = ?limit.scope,
                        global = limit.global,
                        "outbox: Discord answered 429; waiting its retry_after"
                    );
                    self.budget.hold_until(arrived + limit.retry_after);
                }
                Err(PostError::Discord(e))
                    if status_of(&e).is_some_and(|s| s >= 500) && attempt < MAX_ATTEMPTS =>
                {
                    tracing::warn!(attempt, error = %crate::discord::redact::chain(&e), "outbox: Discord failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                Err(PostError::Discord(e)) => return Err(SendError::Discord(e)),
            }
        }
        Err(SendError::RateLimited {
            attempts: MAX_ATTEMPTS,
        })
    }
}

/// What a reminder says after the mentions: how long the request waited, how bad, what it
/// would do (the card's first line) and when it expires.
fn reminder_text(app: &App, r: &escalate::Reminder) -> String {
    let headline = match request_card(app, r.request.id) {
        Ok(Some(card)) => card
            .description
            .lines()
            .next()
            .unwrap_or(card.title.as_str())
            .to_string(),
        _ => format!("request `{}`", r.request.id.simple()),
    };
    let waited = crate::discord::commands::human_duration(r.waited);
    let opening = if r.n == escalate::FIRST {
        format!("⏰ Waiting {waited} with no vote")
    } else {
        format!(
            "⏰ Half the time to approve is gone ({waited} waited, {}/{} approvals)",
            r.approvals, r.needed
        )
    };
    format!(
        "{opening}: **{}** · {headline} · expires <t:{}:R>",
        r.severity.as_str(),
        r.request.expires_at.timestamp()
    )
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The HTTP status of a Discord error answer.
pub fn status_of(e: &serenity::Error) -> Option<u16> {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => Some(r.status_code.as_u16()),
        _ => None,
    }
}

/// Discord's "Unknown Message" (10008): the message was deleted.
fn is_unknown_message(e: &serenity::Error) -> bool {
    matches!(e, serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) if r.error.code == 10008)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_five_in_any_window() {
        let t0 = Instant::now();
        let w = Duration::from_secs(5);
        let mut b = PostBudget::new(5, w);
        assert_eq!(b.available(t0), 5);
        for i in 0..5 {
            assert_eq!(b.next_slot(t0), t0, "post {i} may go at once");
            b.record(t0 + Duration::from_millis(10 * i));
        }
        assert_eq!(b.available(t0 + Duration::from_millis(50)), 0);
        // The sixth waits for the first to leave the window, not for a token to refill.
        assert_eq!(b.next_slot(t0 + Duration::from_secs(1)), t0 + w);
        assert_eq!(b.available(t0 + w), 1);
        assert_eq!(b.available(t0 + w + Duration::from_millis(40)), 5);
    }

    #[test]
    fn a_429_holds_posts_for_its_retry_after_not_a_whole_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = PostBudget::new(5, Duration::from_secs(5));
        b.record(t0);
        b.hold_until(t0 + ms(300));
        assert_eq!(b.available(t0 + ms(100)), 0, "held");
        assert_eq!(b.next_slot(t0 + ms(100)), t0 + ms(300));
        // A shorter hold does not shorten a longer one.
        b.hold_until(t0 + ms(200));
        assert_eq!(b.next_slot(t0 + ms(100)), t0 + ms(300));
        // Then the normal pace: the one post of the window still counts.
        assert_eq!(b.available(t0 + ms(300)), 4);
        assert_eq!(b.next_slot(t0 + ms(300)), t0 + ms(300));
    }

    #[test]
    fn a_hold_never_lets_a_post_beyond_the_pace() {
        let t0 = Instant::now();
        let w = Duration::from_secs(5);
        let mut b = PostBudget::new(2, w);
        b.record(t0);
        b.record(t0);
        b.hold_until(t0 + Duration::from_secs(1));
        assert_eq!(b.next_slot(t0), t0 + w, "the window is later than the hold");
    }
}
