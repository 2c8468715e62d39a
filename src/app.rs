//! The running application's shared parts, built once by `hanko run` (and by tests) and
//! handed to the chat adapter, the ingest loops and the HTTP server.
//!
//! Holds no logic of its own: it is the wiring diagram in one struct.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::approval::Policy;
use crate::aws::ClientFactory;
use crate::clock::Clock;
use crate::config::Settings;
use crate::engine::Engine;
use crate::finding::Finding;
use crate::metrics::Metrics;
use crate::notices::Notices;
use crate::plan::Plan;
use crate::planner::{self, Limits, Refusal, Scope};
use crate::playbooks::Playbooks;
use crate::store::Store;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub policy: Arc<Policy>,
    pub playbooks: Arc<Playbooks>,
    pub store: Store,
    pub engine: Engine,
    pub clients: ClientFactory,
    pub notices: Notices,
    /// Counters for `/metrics`, shared by the chat adapter, the engine runs and ingest.
    pub metrics: Arc<Metrics>,
    pub started_at: DateTime<Utc>,
    /// The one wall clock ([`Clock`]): the engine reads the same one; tests shift it.
    pub clock: Clock,
    /// CloudTrail's `LookupEvents` limit per account and region, shared by every investigation.
    pub lookup_rate: Arc<crate::aws::cloudtrail::LookupRate>,
    /// This replica: its id and roles ([`crate::replicas`]).
    pub replica: Arc<crate::replicas::ReplicaState>,
}

impl App {
    pub fn new(
        settings: Settings,
        playbooks: Playbooks,
        store: Store,
        clients: ClientFactory,
    ) -> Self {
        let clock = Clock::system();
        let policy = Arc::new(settings.policy.clone());
        // The engine's pre-flight holds approvals to the same policy the votes met.
        // On a store shared by replicas (DynamoDB), runs hold execution leases.
        let replica = crate::replicas::ReplicaState::new(store.is_shared(), clock.now());
        let mut engine = Engine::new(store.clone(), clients.clone())
            .with_clock(clock.clone())
            .with_policy(Arc::clone(&policy))
            .with_limits(Limits::of(&settings.aws));
        if replica.distributed {
            engine = engine.with_replica(crate::engine::Replica {
                id: replica.id.clone(),
                exclusive: false,
            });
        }
        App {
            policy,
            settings: Arc::new(settings),
            playbooks: Arc::new(playbooks),
            store,
            engine,
            clients,
            notices: Notices::default(),
            metrics: Arc::new(Metrics::new()),
            started_at: clock.now(),
            clock,
            lookup_rate: Arc::new(crate::aws::cloudtrail::LookupRate::new()),
            replica,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Where the running app may act (the planner's rule with the app's settings and clients)
// ---------------------------------------------------------------------------------------------

impl App {
    /// The app's scope as known now (no AWS call; see [`planner::reach_known`]).
    pub fn scope_known(&self) -> Scope {
        Scope {
            limits: Limits::of(&self.settings.aws),
            reach: planner::reach_known(&self.clients),
        }
    }

    /// The app's scope, proving the own account first when it is not known yet.
    pub async fn scope_proven(&self) -> Scope {
        Scope {
            limits: Limits::of(&self.settings.aws),
            reach: planner::prove(
                &self.clients,
                self.settings.aws.regions.first().map(String::as_str),
            )
            .await,
        }
    }

    /// The plan the running app shows or proposes for `finding` (synchronous; the reach as
    /// known).
    pub fn plan_in(&self, finding: &Finding) -> Plan {
        planner::plan(finding, &self.playbooks, &self.scope_known())
    }

    /// Would the running app refuse to act on `plan` now? Proves the own account if needed.
    /// Used before a vote is recorded.
    pub async fn refusal_now(&self, plan: &Plan) -> Option<Refusal> {
        if plan.is_notify_only() {
            return None;
        }
        planner::check(&self.scope_proven().await, &plan.account_id, &plan.region).err()
    }
}
