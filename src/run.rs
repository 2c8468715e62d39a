//! `hanko run`: starting the long-running parts, the one shutdown signal, and stopping them in
//! order.
//!
//! [`start`] takes a built [`App`] (the binary builds it from the config; tests build it around a
//! temporary store and moto) and starts, in this order: the outbox (subscribed to the notices
//! before anything can send one), the HTTP server (`/healthz`, `/metrics`), the expiry sweep
//! ([`crate::actions::expire`]: once now, then every minute, in the request lifecycle task), the
//! engine's resume of requests left Approved or Executing, the ingest loops, the posture digest
//! (with `ingest.securityhub` on; [`crate::discord::digest`]), the audit anchor (with
//! `[audit] anchor_bucket` set; [`crate::anchor::writer`]) and the Discord bot.
//!
//! The bot's transport follows `discord.interactions`: over the gateway, the serenity client
//! (its READY registers the slash commands); over HTTP, no gateway connection at all: the HTTP
//! server also serves `POST /interactions` ([`crate::discord::endpoint`]), the slash commands
//! are registered through REST at start-up, and the server keeps answering (clicks get "hanko
//! is shutting down") until shutdown closes the transport. Cards, edits and the digest go
//! through REST either way.
//!
//! The request lifecycle task also starts every Approved request when `/resume` lifts the pause
//! ([`Notice::ExecutionResumed`]), as owned engine runs, so an approval given while paused runs
//! without a restart (after the engine's pre-flight checks, [`crate::preflight`]).
//!
//! The engine runs themselves, and what they announce, are the application layer's
//! ([`crate::actions::execute`]); this module only starts and stops them.
//!
//! [`Running::shutdown`] sends the shutdown signal (the bot answers further clicks with "hanko is
//! shutting down"; the outbox, the digest and the HTTP server stop), waits a bounded time for
//! engine runs under way, flushes the store and closes the transport (the gateway, or the
//! HTTP server's `/interactions`); last, once nothing else
//! writes audit events, it writes the final audit digest (when the head moved).
//!
//! It owns the wiring and the lifetimes of tasks; it holds no policy. It may use every module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::ShardManager;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::actions::execute::{self, Tasks};
use crate::actions::expire;
use crate::anchor::writer::Anchorer;
use crate::anchor::{AnchorKey, AnchorLocation};
use crate::app::App;
use crate::command_defs::{self, CommandDefError};
use crate::config::{Interactions, Secret};
use crate::discord::bot::{self, BotState};
use crate::discord::digest::Digest;
use crate::discord::endpoint;
use crate::discord::outbox::Outbox;
use crate::discord::signature::Verifier;
use crate::notices::Notice;
use crate::store::StoreError;

/// Names a folder of slash command definitions to register instead of the embedded ones.
pub const COMMANDS_DIR_ENV: &str = "HANKO_COMMANDS_DIR";
/// How long shutdown waits for engine runs under way before it stops anyway (a run cut short
/// is resumed, exactly once, on the next start).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// How long shutdown waits for the gateway, the outbox and the HTTP server to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why hanko could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    // The causes are sources, printed by `main` as the chain (`{:#}`), so not repeated here.
    #[error("cannot listen on {addr} for /healthz and /metrics")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Commands(#[from] CommandDefError),
    #[error("cannot build the Discord client")]
    Discord(#[source] serenity::Error),
    #[error("discord.public_key is not an Ed25519 public key")]
    PublicKey,
    #[error("audit.anchor_key_file: {0}")]
    AnchorKey(#[source] crate::anchor::AnchorError),
    /// Gateway mode on a shared store, and another replica holds the gateway.
    #[error("{0}")]
    GatewayHeld(String),
}

/// The start-up choices that do not live in the config file.
#[derive(Debug, Clone)]
pub struct Options {
    /// A directory of `commands/*.json` to register instead of the definitions embedded in the
    /// binary ([`command_defs::EMBEDDED`]); `None`: the embedded ones.
    pub commands_dir: Option<PathBuf>,
    /// How long shutdown waits for engine runs.
    pub shutdown_grace: Duration,
    /// Start the configured ingest loops (tests that feed findings themselves turn it off).
    pub ingest: bool,
    /// Start the posture digest and drop alerts (when `ingest.securityhub` is on; tests that
    /// count channel posts turn it off, tests of the digest call its `tick` themselves).
    pub posture_digest: bool,
    /// How often the expiry sweep runs after the one at start-up ([`expire::SWEEP_INTERVAL`];
    /// tests that shift the clock sweep more often rather than wait a minute).
    pub sweep_interval: Duration,
    /// The first wait before an investigation asks a failed region again
    /// ([`crate::actions::investigate::RETRY_BASE`]; tests wait less).
    pub investigate_retry_base: Duration,
}

impl Options {
    pub fn new(commands_dir: impl Into<Option<PathBuf>>) -> Self {
        Options {
            commands_dir: commands_dir.into(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            ingest: true,
            posture_digest: true,
            sweep_interval: expire::SWEEP_INTERVAL,
            investigate_retry_base: crate::actions::investigate::RETRY_BASE,
        }
    }
}

/// A folder of slash command definitions to use instead of the embedded ones:
/// `$HANKO_COMMANDS_DIR` when set and not empty.
pub fn commands_dir() -> Option<PathBuf> {
    std::env::var_os(COMMANDS_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The request lifecycle task: the expiry sweep every `interval` ([`expire::SWEEP_INTERVAL`];
/// the sweep at start-up ran before), and the start of every Approved request on `/resume`, as
/// owned engine runs that shutdown waits for.
async fn lifecycle(
    app: App,
    tasks: Tasks,
    interval: Duration,
    mut notices: broadcast::Receiver<Notice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = interval.max(Duration::from_millis(10));
    let first = tokio::time::Instant::now() + interval;
    let mut sweeps = tokio::time::interval_at(first, interval);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {}
            _ = sweeps.tick() => expire::sweep_now(&app),
            received = notices.recv() => match received {
                Ok(Notice::ExecutionResumed) => tasks.spawn(execute::start_approved(app.clone())),
                Ok(_) => {}
                // A `/resume` among the lost notices must not be lost: start what is approved
                // unless paused (a request already started is a conflict, skipped).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !app.engine.is_paused().unwrap_or(true) {
                        tasks.spawn(execute::start_approved(app.clone()));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Start and stop
// ---------------------------------------------------------------------------------------------

/// A running hanko.
pub struct Running {
    pub app: App,
    /// Where `/healthz` and `/metrics` are served (the real port when the config said `:0`).
    pub http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Tasks,
    grace: Duration,
    transport: Transport,
    /// The gateway client, or the HTTP transport's start-up (application id, slash commands).
    bot: JoinHandle<()>,
    outbox: JoinHandle<()>,
    server: JoinHandle<()>,
    ingest: Vec<JoinHandle<()>>,
    /// The posture digest task, when started.
    digest: Option<JoinHandle<()>>,
    /// The expiry sweeper and `/resume` starter.
    lifecycle: JoinHandle<()>,
    /// The replica's heartbeat, leases and takeover sweep ([`crate::replicas::run`]).
    replica_loop: JoinHandle<()>,
    /// The CloudTrail investigator of leaked keys ([`crate::actions::investigate`]).
    investigator: JoinHandle<()>,
    /// The audit anchor and its periodic task, with `[audit] anchor_bucket` set.
    anchor: Option<(Anchorer, JoinHandle<()>)>,
}

/// How interactions reach the running bot, as shutdown closes it.
enum Transport {
    /// The gateway client's shards.
    Gateway(Arc<ShardManager>),
    /// `POST /interactions` on the HTTP server: stops the server when sent.
    Http(watch::Sender<bool>),
}

impl Transport {
    async fn close(&self) {
        match self {
            Transport::Gateway(shards) => shards.shutdown_all().await,
            Transport::Http(stop) => {
                let _ = stop.send(true);
            }
        }
    }
}

/// Starts the outbox, the HTTP server, the engine's resume and the bot. Returns once they are
/// started (not once the gateway is connected: `/healthz` says that).
pub async fn start(app: App, token: &Secret, options: Options) -> Result<Running, RunError> {
    let definitions = match &options.commands_dir {
        Some(dir) => command_defs::load_definitions(dir)?,
        None => command_defs::embedded_definitions()?,
    };
    let definitions: Vec<serde_json::Value> = definitions.into_iter().map(|(_, def)| def).collect();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tasks = Tasks::default();
    // Prove hanko's own account (sts:GetCallerIdentity) before anything is planned. A failure
    // is logged, not fatal: plans stay notify-only outside a role template until a later
    // lookup (the next finding update, a vote, /contain) succeeds (see crate::planner).
    app.scope_proven().await;

    let listen = app.settings.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: listen,
        source,
    })?;

    // One gateway per store: a second gateway replica would answer every click twice. Over
    // HTTP interactions each click is one POST to one replica: nothing to claim.
    if matches!(app.settings.discord.interactions, Interactions::Gateway) {
        crate::replicas::claim_gateway(&app).map_err(RunError::GatewayHeld)?;
    }

    let state = Arc::new(BotState::new(
        app.clone(),
        tasks.clone(),
        shutdown_rx.clone(),
        definitions,
    ));
    // The transport: a gateway client, or the REST client and the verifier of /interactions.
    let (mut client, verifier) = match &app.settings.discord.interactions {
        Interactions::Gateway => {
            let client = bot::build_client(Arc::clone(&state), token)
                .await
                .map_err(RunError::Discord)?;
            (Some(client), None)
        }
        Interactions::Http { public_key } => (
            None,
            Some(Verifier::new(public_key).ok_or(RunError::PublicKey)?),
        ),
    };
    let rest = match &client {
        Some(client) => Arc::clone(&client.http),
        None => Arc::new(bot::http_client(
            app.settings.discord.api_base.as_deref(),
            token,
        )),
    };

    // The outbox subscribes before anything can send a notice.
    let outbox = Outbox::new(app.clone(), Arc::clone(&rest)).with_escalation_interval(
        options
            .sweep_interval
            .min(crate::discord::outbox::ESCALATION_INTERVAL),
    );
    let outbox = tokio::spawn(outbox.run(app.notices.subscribe(), shutdown_rx.clone()));
    // The investigator too, before ingest: it starts on a new finding's notice.
    let investigator = crate::actions::investigate::Investigator::new(app.clone())
        .with_retry_base(options.investigate_retry_base);
    let investigator = tokio::spawn(investigator.run(app.notices.subscribe(), shutdown_rx.clone()));

    let mut router = crate::http::router(app.clone());
    // Over the gateway the server stops with the shutdown signal; serving /interactions, it
    // stops when shutdown closes the transport.
    let (stop_interactions, stop_interactions_rx) = watch::channel(false);
    let mut stop_http = shutdown_rx.clone();
    if let Some(verifier) = verifier {
        router = router.merge(endpoint::router(
            Arc::clone(&state),
            Arc::clone(&rest),
            verifier,
        ));
        stop_http = stop_interactions_rx;
    }
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop_http.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the HTTP server failed");
        }
    });
    if client.is_some() {
        tracing::info!(%http_addr, "serving /healthz and /metrics");
    } else {
        tracing::info!(%http_addr, "serving /healthz, /metrics and POST /interactions (no gateway)");
    }

    // Expiry at start-up, before the first click can meet a request whose time is up; then
    // every minute, and `/resume`, in the lifecycle task.
    expire::sweep_now(&app);
    let lifecycle = tokio::spawn(lifecycle(
        app.clone(),
        tasks.clone(),
        options.sweep_interval,
        app.notices.subscribe(),
        shutdown_rx.clone(),
    ));
    tasks.spawn(execute::resume_on_start(app.clone()));
    // Replicas on a shared store: heartbeats, the ingest lease, taking over orphaned runs.
    let replica_loop = tokio::spawn(crate::replicas::run(
        app.clone(),
        tasks.clone(),
        shutdown_rx.clone(),
    ));

    // Ingest loops: each stops on the shutdown signal and is awaited in `Running::shutdown`.
    let ingest = if options.ingest {
        crate::ingest::spawn_all(app.clone(), shutdown_rx.clone()).await
    } else {
        Vec::new()
    };

    // Without Security Hub ingest the scores never change: nothing to post a digest of.
    let digest = (options.posture_digest && app.settings.ingest.securityhub).then(|| {
        let digest = Digest::new(app.clone(), Arc::clone(&rest));
        tokio::spawn(digest.run(shutdown_rx.clone()))
    });

    let anchor = match anchorer(&app).map_err(RunError::AnchorKey)? {
        Some(anchorer) => {
            let task = tokio::spawn(anchorer.clone().run(shutdown_rx.clone()));
            Some((anchorer, task))
        }
        None => None,
    };

    let (bot, transport) = match client.take() {
        Some(mut client) => {
            let shards = Arc::clone(&client.shard_manager);
            let bot = tokio::spawn(async move {
                if let Err(e) = client.start().await {
                    tracing::error!(error = %crate::discord::redact::chain(&e), "the Discord client stopped with an error");
                }
            });
            (bot, Transport::Gateway(shards))
        }
        None => {
            let bot = tokio::spawn(endpoint::prepare(rest, state, shutdown_rx.clone()));
            (bot, Transport::Http(stop_interactions))
        }
    };

    Ok(Running {
        app,
        http_addr,
        shutdown,
        tasks,
        grace: options.shutdown_grace,
        transport,
        bot,
        outbox,
        server,
        ingest,
        digest,
        lifecycle,
        replica_loop,
        investigator,
        anchor,
    })
}

/// The audit anchor of `[audit]`, its key read now (and kept only in memory); `None` when
/// anchoring is off. The bucket is reached in the first of `aws.regions`, with hanko's own
/// credentials.
fn anchorer(app: &App) -> Result<Option<Anchorer>, crate::anchor::AnchorError> {
    let Some(settings) = &app.settings.audit.anchor else {
        return Ok(None);
    };
    let key = AnchorKey::read(&settings.key_file)?;
    let region = app.settings.aws.regions.first().map(String::as_str);
    Ok(Some(Anchorer::new(
        app.store.clone(),
        app.clients.own_s3(region),
        AnchorLocation::new(settings.bucket.clone(), &settings.prefix),
        key,
        settings.interval,
        app.clock.clone(),
    )))
}

impl Running {
    /// A receiver of the shutdown signal (true once shutdown began).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops everything in order; see the module docs.
    pub async fn shutdown(self) -> Result<(), RunError> {
        tracing::info!("shutting down: no new clicks; waiting for engine runs under way");
        let _ = self.shutdown.send(true);
        for task in self.ingest {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!("an ingest loop did not stop in time; aborting it");
                abort.abort();
            }
        }
        // A digest post under way finishes (its retries are bounded) or is cut at the timeout;
        // its day is claimed already, so it is never posted twice.
        if let Some(task) = self.digest {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!("the posture digest did not stop in time; aborting it");
                abort.abort();
            }
        }
        // The lifecycle task stops at once on the signal (a sweep is one short store pass); the
        // engine runs it started are in `tasks`, waited for below.
        let abort = self.lifecycle.abort_handle();
        if tokio::time::timeout(STOP_TIMEOUT, self.lifecycle)
            .await
            .is_err()
        {
            tracing::warn!("the request lifecycle task did not stop in time; aborting it");
            abort.abort();
        }
        if !self.tasks.wait(self.grace).await {
            tracing::warn!(
                grace = ?self.grace,
                "engine runs still under way at the end of the grace period; they resume on the next start"
            );
        }
        self.app.store.flush()?;
        self.transport.close().await;
        self.app.metrics.set_gateway_connected(false);
        for (name, task) in [
            ("replica", self.replica_loop),
            ("bot", self.bot),
            ("outbox", self.outbox),
            ("investigator", self.investigator),
            ("http", self.server),
        ] {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!(task = name, "did not stop in time; aborted");
                abort.abort();
            }
        }
        // Last: nothing writes audit events any more, so this digest anchors the final head.
        if let Some((anchorer, task)) = self.anchor {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
            match tokio::time::timeout(STOP_TIMEOUT, anchorer.anchor_now()).await {
                Ok(Ok(Some(_))) | Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "audit anchor: no digest written at shutdown")
                }
                Err(_) => tracing::error!(
                    "audit anchor: the digest at shutdown did not finish in time; the next digest finishes it"
                ),
            }
        }
        self.app.store.flush()?;
        tracing::info!("hanko stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops hanko");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
