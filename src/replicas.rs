//! Several replicas on one DynamoDB store: who does what, and taking over from a replica
//! that died.
//!
//! With the sled store there is one process, and every role is its own: this module then
//! only names the replica. With the DynamoDB store, every replica runs [`run`], which every
//! [`TICK`]:
//!
//! * writes the replica's heartbeat (`/status` lists the live ones);
//! * claims or renews the **ingest lease**: only its holder polls GuardDuty and Security Hub
//!   (SQS is consumed by every replica, competing for messages). A holder that dies is
//!   replaced within [`INGEST_LEASE_TTL`] plus a tick;
//! * renews the **gateway lease** when this replica holds the Discord gateway
//!   ([`claim_gateway`]): in gateway mode a second replica refuses to start;
//! * sweeps for work nobody does: an Executing request whose execution lease lapsed (its
//!   replica died mid-plan) is resumed here, and an Approved request that no replica started
//!   within [`START_GRACE`] (its replica died after the vote) is started. The engine claims the
//!   execution lease before it acts, so only one replica runs each request
//!   ([`crate::engine`]); the capture-before-apply records make the resumed steps safe.
//!
//! Cards are claimed before they are posted ([`claim_card`]), so one replica posts each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::actions::execute::{self, Tasks};
use crate::app::App;
use crate::approval::RequestState;
use crate::store::{execution_lease, Heartbeat, LeaseClaim, StoreError};

/// How often a replica beats, renews its leases and sweeps.
pub const TICK: Duration = Duration::from_secs(5);
/// A replica whose heartbeat is older than this is not listed as live.
pub const HEARTBEAT_LIVE: chrono::Duration = chrono::Duration::seconds(20);
/// How long the ingest lease holds without renewal.
pub const INGEST_LEASE_TTL: chrono::Duration = chrono::Duration::seconds(45);
/// How long the gateway lease holds without renewal.
pub const GATEWAY_LEASE_TTL: chrono::Duration = chrono::Duration::seconds(45);
/// How long a card claim holds: the claimant posts within it, or another replica may.
pub const CARD_CLAIM_TTL: chrono::Duration = chrono::Duration::minutes(2);
/// An Approved request no replica started this long after its approval is started by a sweep.
pub const START_GRACE: chrono::Duration = chrono::Duration::seconds(20);

const INGEST_LEASE: &str = "ingest";
const GATEWAY_LEASE: &str = "gateway";

/// This replica: its id and the roles it holds now.
#[derive(Debug)]
pub struct ReplicaState {
    pub id: String,
    /// Several replicas may share the store (DynamoDB): leases decide the roles.
    pub distributed: bool,
    pub started_at: DateTime<Utc>,
    ingest_leader: AtomicBool,
    gateway: AtomicBool,
}

impl ReplicaState {
    /// A new replica id (`host-pid-random`). Alone on the store (sled), every role is its own.
    pub fn new(distributed: bool, now: DateTime<Utc>) -> Arc<ReplicaState> {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "hanko".into());
        Arc::new(ReplicaState {
            id: format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..)),
            distributed,
            started_at: now,
            ingest_leader: AtomicBool::new(!distributed),
            gateway: AtomicBool::new(false),
        })
    }

    /// Does this replica poll GuardDuty and Security Hub now?
    pub fn ingest_leader(&self) -> bool {
        self.ingest_leader.load(Ordering::Relaxed)
    }

    /// Does this replica hold the Discord gateway?
    pub fn holds_gateway(&self) -> bool {
        self.gateway.load(Ordering::Relaxed)
    }

    /// The roles, as `/healthz` and the heartbeat say them.
    pub fn roles(&self) -> Vec<String> {
        let mut roles = vec![if self.ingest_leader() {
            "ingest leader".to_owned()
        } else {
            "ingest standby".to_owned()
        }];
        if self.holds_gateway() {
            roles.push("gateway".into());
        }
        roles
    }
}

/// Claims the Discord gateway for this replica (gateway mode on a shared store): a second
/// gateway replica would answer every interaction twice. `Err` with the sentence to print when
/// another live replica holds it.
pub fn claim_gateway(app: &App) -> Result<(), String> {
    let replica = &app.replica;
    if !replica.distributed {
        replica.gateway.store(true, Ordering::Relaxed);
        return Ok(());
    }
    match app.store.claim_lease(
        GATEWAY_LEASE,
        &replica.id,
        app.clock.now(),
        GATEWAY_LEASE_TTL,
        false,
    ) {
        Ok(LeaseClaim::Held { .. }) => {
            replica.gateway.store(true, Ordering::Relaxed);
            Ok(())
        }
        Ok(LeaseClaim::Busy(lease)) => Err(format!(
            "replica {} holds the Discord gateway of this store until {} (gateway mode allows one replica): run several replicas with [discord] interactions = \"http\", or wait for it to stop",
            lease.owner,
            lease.until.to_rfc3339()
        )),
        Err(e) => Err(format!("cannot claim the Discord gateway lease: {e}")),
    }
}

/// Claims the posting of the card `key` (one replica posts each card): `true` when this
/// replica may post it. Alone on the store, always.
pub fn claim_card(app: &App, key: &str) -> Result<bool, StoreError> {
    if !app.replica.distributed {
        return Ok(true);
    }
    let claim = app.store.claim_lease(
        &format!("card.{key}"),
        &app.replica.id,
        app.clock.now(),
        CARD_CLAIM_TTL,
        false,
    )?;
    Ok(claim.held().is_some())
}

/// The replica's loop ([module docs](self)); returns on shutdown. Does nothing alone on the
/// store.
pub async fn run(app: App, tasks: Tasks, mut shutdown: watch::Receiver<bool>) {
    if !app.replica.distributed {
        return;
    }
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        tick(&app, &tasks);
    }
    // A clean stop hands the roles over at once instead of after their leases lapse.
    let now = app.clock.now();
    for lease in [INGEST_LEASE, GATEWAY_LEASE] {
        if let Err(e) = app.store.release_lease(lease, &app.replica.id, now) {
            tracing::warn!(lease, error = %e, "could not release a lease; it lapses");
        }
    }
    if let Err(e) = app.store.remove_heartbeat(&app.replica.id) {
        tracing::warn!(error = %e, "could not remove this replica's heartbeat");
    }
}

/// One tick: heartbeat, leases, sweep. Errors are logged; the next tick tries again.
pub fn tick(app: &App, tasks: &Tasks) {
    let replica = &app.replica;
    let now = app.clock.now();
    // Ingest leadership.
    match app
        .store
        .claim_lease(INGEST_LEASE, &replica.id, now, INGEST_LEASE_TTL, false)
    {
        Ok(claim) => {
            let leader = claim.held().is_some();
            if leader != replica.ingest_leader.swap(leader, Ordering::Relaxed) {
                tracing::info!(replica = %replica.id, leader, "ingest leadership changed");
            }
            if let LeaseClaim::Held {
                took_over: Some(previous),
                ..
            } = &claim
            {
                tracing::warn!(replica = %replica.id, previous = %previous, "took the ingest lease over from a replica that stopped renewing it");
            }
        }
        Err(e) => {
            // Unknown: stop polling rather than risk two pollers.
            replica.ingest_leader.store(false, Ordering::Relaxed);
            tracing::warn!(error = %e, "could not renew the ingest lease; polling stops until it is renewed");
        }
    }
    // The gateway, when this replica holds it.
    if replica.holds_gateway() {
        match app
            .store
            .claim_lease(GATEWAY_LEASE, &replica.id, now, GATEWAY_LEASE_TTL, false)
        {
            Ok(LeaseClaim::Held { .. }) => {}
            Ok(LeaseClaim::Busy(lease)) => {
                tracing::error!(holder = %lease.owner, "another replica took the Discord gateway lease; this replica's gateway should stop");
            }
            Err(e) => tracing::warn!(error = %e, "could not renew the gateway lease"),
        }
    }
    // Heartbeat.
    let mut roles = replica.roles();
    roles.push(format!("executing {}", app.engine.running_count()));
    let beat = Heartbeat {
        replica: replica.id.clone(),
        started_at: replica.started_at,
        seen_at: now,
        roles,
    };
    if let Err(e) = app.store.put_heartbeat(&beat) {
        tracing::warn!(error = %e, "could not write this replica's heartbeat");
    }
    sweep(app, tasks, now);
}

/// Starts the runs nobody does: Executing requests whose lease lapsed, Approved ones no
/// replica started within [`START_GRACE`].
fn sweep(app: &App, tasks: &Tasks, now: DateTime<Utc>) {
    let left = match app
        .store
        .requests_in_states(&[RequestState::Executing, RequestState::Approved])
    {
        Ok(left) => left,
        Err(e) => {
            tracing::warn!(error = %e, "sweep: cannot list the requests left to run");
            return;
        }
    };
    let paused = app.engine.is_paused().unwrap_or(true);
    for req in left {
        let orphaned = match req.state {
            // No lease (its replica died between the start and the claim) or a lapsed one.
            RequestState::Executing => match app.store.lease(&execution_lease(req.id)) {
                Ok(lease) => lease.map_or(true, |l| l.until <= now),
                Err(_) => false,
            },
            RequestState::Approved => {
                !paused && req.decided_at.is_some_and(|d| now - d >= START_GRACE)
            }
            _ => false,
        };
        if orphaned {
            tracing::info!(request_id = %req.id, state = %req.state, "sweep: taking over a run no replica is doing");
            let app = app.clone();
            tasks.spawn(async move {
                if let Err(e) = execute::execute_request(&app, req.id).await {
                    tracing::info!(request_id = %req.id, error = %e, "sweep: not run here");
                }
            });
        }
    }
}
