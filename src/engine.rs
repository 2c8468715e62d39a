//! The engine: the one loop that moves approved requests through execution, exactly once.
//!
//! For each step of an approved plan, in order: **capture** (read the state the step would
//! replace; persisted with a `StepCaptured` audit event *before* any mutating call), **apply**
//! (the mutating call, skipped when the target is already in the desired state), **verify**
//! (read back), then the outcome is persisted with its audit event. A request ends
//! `Succeeded`, `PartiallyFailed` or `Failed`.
//!
//! Exactly once, even across a crash: a step whose record is `Done` is never run again; a step
//! left `Captured` (the process died between capture and verify) keeps its *original* captured
//! state and is re-checked: if the target is already in the desired state it is verified and
//! recorded as applied, otherwise applied then. EC2 snapshots are tagged with the request and
//! step and found by tag, so a resumed snapshot step never snapshots twice.
//!
//! Evidence first: when an evidence step (snapshot) fails, the steps after it do not run unless
//! the request carries `override_evidence`.
//!
//! Steps that do not depend on each other overlap ([`batch_end`]): an evidence step, and a
//! stop, run alone, and every step after them waits for them; the consecutive steps between
//! them, each changing its own setting, run together, at most four at once. Each of them still
//! persists its capture before its change and its outcome after its verification.
//!
//! Security: the engine only executes requests the store holds as `Approved` (or `Executing`,
//! on resume); it never decides approval itself. Right before Approved → Executing, in the same
//! store transaction, it runs the [`crate::preflight`] checks again (finding not archived, plan
//! hash as approved, policy still met, approval younger than `policy.request_ttl`) against the
//! policy it was given ([`Engine::with_policy`]); a refused request is closed as Superseded or
//! Expired, audited, and never runs.
//!
//! A revert step is recorded the same way: its record (what hanko left behind) is persisted
//! `Captured` before the restoring call, and a resumed one that finds the captured state
//! already back records it as restored ([`RevertOutcome::Restored`]), not as drift.
//!
//! Before the first AWS call of a run it checks again where it may act ([`crate::planner::engine_refusal`]: its allow-lists and an account it
//! can prove it reaches), in case a stored plan predates a change of the config; a refused plan
//! fails every step with the reason, audited as `StepFailed`, and no call is made.
//!
//! Test failpoints: `HANKO_FAILPOINT=after-capture:<action>` or `after-apply:<action>` aborts
//! the process at that point (used by the crash test), as do `revert-after-capture:<action>`
//! and `revert-after-call:<action>` for a revert step. They exist only in builds with the
//! `failpoints` feature (the test suite); a release build has no failpoint code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::sync::Arc;

use tracing::Instrument;

use crate::approval::{Closure, Policy, Request, RequestKind, RequestState};
use crate::audit::{Actor, EventKind, NewEvent};
use crate::aws::error::{with_retry_policy, RetryPolicy};
use crate::aws::{self, AwsClients, AwsError, Captured, ClientFactory, RevertOutcome, StepCtx};
use crate::clock::Clock;
use crate::execution::{StepOutcome, StepPhase, StepRecord};
use crate::plan::{Plan, Step};
use crate::planner::{self, Limits};
use crate::preflight::{preflight, PreflightInput, PreflightRefusal};
use crate::store::{ExecutionStart, StartRefusal, Store, StoreError};

/// Why the engine could not run a request (as opposed to a step failing, which is recorded).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("request {0} does not exist")]
    NoSuchRequest(Uuid),
    #[error("request {id} is {state}; only approved requests run")]
    NotApproved { id: Uuid, state: RequestState },
    #[error("request {id} cannot be reverted: {reason}")]
    NotRevertible { id: Uuid, reason: String },
    #[error("execution is paused; /resume (or `hanko` with the store) starts it again")]
    Paused,
    /// Another replica holds the request's execution lease (it is running it).
    #[error("request {id} is being executed by replica {holder}")]
    Busy { id: Uuid, holder: String },
    /// The pre-flight checks refused to start it; the request is closed (Expired or
    /// Superseded) and audited.
    #[error("request {id} was not run: {refusal}")]
    Refused { id: Uuid, refusal: PreflightRefusal },
}

/// The per-step lines of an execution report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub index: usize,
    pub action: String,
    pub operation: String,
    pub target: String,
    pub outcome: StepOutcome,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub captured: serde_json::Value,
    pub result: serde_json::Value,
}

/// What a request's execution did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionReport {
    pub request_id: Uuid,
    pub finding_id: String,
    pub kind: RequestKind,
    pub state: RequestState,
    pub steps: Vec<StepReport>,
}

/// Runs approved requests.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    clients: ClientFactory,
    retry: RetryPolicy,
    /// Every timestamp the engine writes comes from here (tests shift it).
    clock: Clock,
    /// The policy the pre-flight checks hold an approval to (the app's; the default policy
    /// until [`Engine::with_policy`]).
    policy: Arc<Policy>,
    /// The allow-lists (`aws.regions`, `aws.accounts`) checked again before the first mutating
    /// call ([`crate::planner::engine_refusal`]); none unless the config gave them.
    limits: Limits,
    /// The replica running this engine: with it, a run holds the request's execution lease
    /// ([`crate::store::execution_lease`]), renews it while it works, and writes its step
    /// records fenced by the lease's attempt number, so another replica can take over a run
    /// whose replica died, and a stalled one cannot write after it was taken over.
    replica: Option<Replica>,
    /// The requests this process is running now: a second run of one of them here (a sweep
    /// meeting a click's run) is refused, since the lease cannot tell two runs of one owner
    /// apart.
    running: Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
}

/// Removes a request from [`Engine::running`] when its run ends, however it ends.
struct RunningGuard<'a> {
    running: &'a std::sync::Mutex<std::collections::HashSet<Uuid>>,
    id: Uuid,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.running.lock() {
            set.remove(&self.id);
        }
    }
}

/// Who runs an engine, for execution leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The replica's id (the lease owner).
    pub id: String,
    /// Only this process can open the store (sled): a lease left by an earlier process is
    /// stale, and is taken at once.
    pub exclusive: bool,
}

/// How long an execution lease holds without renewal: a replica that died mid-plan is taken
/// over this long after its last renewal (plus a sweep).
pub const EXECUTION_LEASE_TTL: chrono::Duration = chrono::Duration::seconds(30);
/// How often a run renews its execution lease.
pub const EXECUTION_LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(5);

impl Engine {
    pub fn new(store: Store, clients: ClientFactory) -> Self {
        Engine {
            store,
            clients,
            retry: RetryPolicy::default(),
            clock: Clock::system(),
            policy: Arc::new(Policy::default()),
            limits: Limits::default(),
            replica: None,
            running: Arc::default(),
        }
    }

    /// How many requests this process is running now (with a replica; 0 without).
    pub fn running_count(&self) -> usize {
        self.running.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Runs hold execution leases as `replica` ([`Engine::replica`]'s field docs).
    pub fn with_replica(mut self, replica: Replica) -> Self {
        self.replica = Some(replica);
        self
    }

    /// The policy the pre-flight checks use (the one the app votes with).
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// The allow-lists the engine enforces before acting (the config's `aws` section).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The clock the engine reads (shared with the [`crate::app::App`] that built it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Is execution paused (`/pause`)?
    pub fn is_paused(&self) -> Result<bool, EngineError> {
        Ok(self.store.paused()?)
    }

    /// Pauses or resumes execution of approved requests: the flag and its audit event
    /// (`ExecutionPaused` / `ExecutionResumed`) are written in one store transaction.
    pub fn set_paused(
        &self,
        paused: bool,
        actor: Actor,
        reason: Option<&str>,
    ) -> Result<(), EngineError> {
        let kind = if paused {
            EventKind::ExecutionPaused
        } else {
            EventKind::ExecutionResumed
        };
        // The flag and its event in one transaction: never a pause without its record.
        self.store.set_paused_audited(
            paused,
            NewEvent::new(self.clock.now(), actor, kind)
                .detail(serde_json::json!({ "reason": reason })),
        )?;
        Ok(())
    }

    /// Resumes every request left Approved or Executing (on start-up). Requests that cannot
    /// run are logged and skipped; the others' reports are returned.
    pub async fn resume_all(&self) -> Result<Vec<ExecutionReport>, EngineError> {
        let pending = self
            .store
            .requests_in_states(&[RequestState::Executing, RequestState::Approved])?;
        let mut reports = Vec::new();
        for req in pending {
            // An Executing request was interrupted mid-way: finish it even when paused, so no
            // resource is left half-contained. Approved ones wait while paused.
            if req.state == RequestState::Approved && self.is_paused()? {
                continue;
            }
            match self.execute(req.id).await {
                Ok(r) => reports.push(r),
                Err(e) => tracing::error!(request_id = %req.id, error = %e, "resume failed"),
            }
        }
        Ok(reports)
    }

    /// Executes one approved request (or finishes an interrupted one).
    pub async fn execute(&self, request_id: Uuid) -> Result<ExecutionReport, EngineError> {
        self.execute_ran(request_id).await.map(|(report, _)| report)
    }

    /// [`Engine::execute`], and whether this call ran the request (`false`: it had ended
    /// before), so a caller needs no read of its own to tell.
    #[tracing::instrument(skip(self), fields(finding_id))]
    pub async fn execute_ran(
        &self,
        request_id: Uuid,
    ) -> Result<(ExecutionReport, bool), EngineError> {
        let req = self
            .store
            .get_request(request_id)?
            .ok_or(EngineError::NoSuchRequest(request_id))?;
        tracing::Span::current().record("finding_id", tracing::field::debug(&req.finding_id));
        let req = match req.state {
            RequestState::Approved => {
                if self.is_paused()? {
                    return Err(EngineError::Paused);
                }
                self.start(&req)?
            }
            RequestState::Executing => req,
            state if state.is_final() => return self.report(&req).map(|r| (r, false)),
            state => return Err(EngineError::NotApproved { id: req.id, state }),
        };
        let _running = match &self.replica {
            Some(replica) => {
                let mut set = self
                    .running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !set.insert(req.id) {
                    return Err(EngineError::Busy {
                        id: req.id,
                        holder: replica.id.clone(),
                    });
                }
                Some(RunningGuard {
                    running: &self.running,
                    id: req.id,
                })
            }
            None => None,
        };
        let fence = self.claim(&req)?;
        // Boxed: the run is a deep future, and `select!` below nests it once more.
        let run = Box::pin(async {
            match req.kind {
                RequestKind::Contain => self.run_contain(&req, fence.as_ref()).await,
                RequestKind::Revert { of } => self.run_revert(&req, of, fence.as_ref()).await,
            }
        });
        match &fence {
            None => run.await?,
            Some(fence) => {
                tokio::select! {
                    done = run => done?,
                    lost = self.keep_lease(req.id, fence) => return Err(lost.into()),
                }
            }
        }
        let records = self.store.step_records(req.id)?;
        let final_state = final_state(&records, req.plan.steps.len());
        let finished = self.store.transition(
            req.id,
            RequestState::Executing,
            final_state,
            NewEvent::new(self.clock.now(), Actor::System, EventKind::ExecutionFinished)
                .finding(req.finding_id.clone())
                .request(req.id)
                .detail(serde_json::json!({
                    "state": final_state.as_str(),
                    "outcomes": records.iter().map(|r| r.outcome.map(|o| o.as_str())).collect::<Vec<_>>(),
                })),
        )?;
        self.store.flush()?;
        if let Some((owner, _)) = &fence {
            let lease = crate::store::execution_lease(req.id);
            if let Err(e) = self.store.release_lease(&lease, owner, self.clock.now()) {
                tracing::warn!(request_id = %req.id, error = %e, "could not release the execution lease; it lapses");
            }
        }
        Ok((build_report(&finished, &records), true))
    }

    /// Claims the execution lease of an Executing request for this engine's replica: the
    /// fence its step records carry. `None` without a replica.
    fn claim(&self, req: &Request) -> Result<Option<(String, u64)>, EngineError> {
        let Some(replica) = &self.replica else {
            return Ok(None);
        };
        let lease = crate::store::execution_lease(req.id);
        match self.store.claim_lease(
            &lease,
            &replica.id,
            self.clock.now(),
            EXECUTION_LEASE_TTL,
            replica.exclusive,
        )? {
            crate::store::LeaseClaim::Held { lease, took_over } => {
                if let Some(previous) = took_over {
                    tracing::warn!(request_id = %req.id, previous = %previous, attempt = lease.attempt, "took over a run whose replica stopped renewing its lease");
                }
                Ok(Some((lease.owner, lease.attempt)))
            }
            crate::store::LeaseClaim::Busy(lease) => Err(EngineError::Busy {
                id: req.id,
                holder: lease.owner,
            }),
        }
    }

    /// Renews the execution lease every [`EXECUTION_LEASE_RENEW`]; returns only when it was
    /// lost (another replica took it over after it lapsed). A failed renewal is retried at the
    /// next tick: the lease holds for [`EXECUTION_LEASE_TTL`].
    async fn keep_lease(&self, request_id: Uuid, fence: &(String, u64)) -> StoreError {
        let lease = crate::store::execution_lease(request_id);
        loop {
            tokio::time::sleep(EXECUTION_LEASE_RENEW).await;
            let renewed = self.store.renew_lease(
                &lease,
                &fence.0,
                fence.1,
                self.clock.now(),
                EXECUTION_LEASE_TTL,
            );
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(%request_id, "lost the execution lease; this run stops and the replica holding it finishes the request");
                    return StoreError::LeaseLost {
                        name: lease.clone(),
                        holder: self.store.lease(&lease).ok().flatten().map(|l| l.owner),
                    };
                }
                Err(e) => {
                    tracing::warn!(%request_id, error = %e, "could not renew the execution lease; trying again");
                }
            }
        }
    }

    /// Approved → Executing, after the pre-flight checks in the same store transaction. A
    /// refusal closes the request (audited) and is returned as [`EngineError::Refused`].
    fn start(&self, req: &Request) -> Result<Request, EngineError> {
        let now = self.clock.now();
        let policy = Arc::clone(&self.policy);
        let started = NewEvent::new(now, Actor::System, EventKind::ExecutionStarted)
            .finding(req.finding_id.clone())
            .request(req.id)
            .detail(serde_json::json!({
                "plan_hash": req.plan.plan_hash,
                "steps": req.plan.steps.len(),
            }));
        // The transaction may run the check more than once; the last refusal is the one stored.
        let refused = std::cell::RefCell::new(None);
        let check = |stored: &Request, finding: Option<&crate::finding::Finding>| {
            let outcome = preflight(&PreflightInput {
                request: stored,
                finding,
                policy: &policy,
                now,
            });
            let refusal = outcome.err();
            let closing = refusal.as_ref().map(|r| start_refusal(stored, r, now));
            *refused.borrow_mut() = refusal;
            closing
        };
        match self.store.start_execution(req.id, started, check)? {
            ExecutionStart::Started(running) => Ok(running),
            ExecutionStart::Refused(closed) => {
                let refusal = refused
                    .into_inner()
                    .unwrap_or(PreflightRefusal::FindingArchived);
                tracing::warn!(request_id = %closed.id, state = %closed.state, reason = %refusal, "pre-flight refused an approved request; it was not run");
                Err(EngineError::Refused {
                    id: closed.id,
                    refusal,
                })
            }
        }
    }

    /// The clients for a plan's account and region, unless hanko may not act there (the
    /// allow-lists, or an account it cannot prove it reaches): then every step fails with the
    /// refusal, before any AWS call, audited as `StepFailed` (fail closed).
    async fn clients_for(&self, plan: &Plan) -> Result<AwsClients, AwsError> {
        if let Some(refusal) = planner::engine_refusal(&self.limits, &self.clients, plan).await {
            tracing::warn!(account_id = %plan.account_id, region = %plan.region, %refusal, "refused to act outside hanko's reach");
            return Err(planner::refused_step_error(&refusal, plan));
        }
        self.clients.clients(&plan.account_id, &plan.region).await
    }

    async fn run_contain(
        &self,
        req: &Request,
        fence: Option<&(String, u64)>,
    ) -> Result<(), EngineError> {
        let existing = self.store.step_records(req.id)?;
        let clients = self.clients_for(&req.plan).await;
        let mut evidence_failed = existing
            .iter()
            .any(|r| r.action.is_evidence() && r.outcome == Some(StepOutcome::Failed));
        let steps = &req.plan.steps;
        let mut start = 0;
        while start < steps.len() {
            let end = batch_end(steps, start);
            // The steps of a batch touch different settings and none reads what another
            // writes: they overlap, each still capture → persist → apply → verify → persist.
            let gate = evidence_failed;
            let results = futures_util::future::join_all(
                (start..end)
                    .map(|index| self.contain_step(req, index, &existing, &clients, gate, fence)),
            )
            .await;
            for (index, result) in (start..end).zip(results) {
                if result? == Some(StepOutcome::Failed) && steps[index].action.is_evidence() {
                    evidence_failed = true;
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Step `index` of a containment: skipped when done before a restart, or when an evidence
    /// step before it failed (`evidence_failed`) and the approval carried no override; failed
    /// when hanko may not act there; otherwise run. `None` when it was done already.
    async fn contain_step(
        &self,
        req: &Request,
        index: usize,
        existing: &[StepRecord],
        clients: &Result<AwsClients, AwsError>,
        evidence_failed: bool,
        fence: Option<&(String, u64)>,
    ) -> Result<Option<StepOutcome>, EngineError> {
        let step = &req.plan.steps[index];
        let prior = existing.iter().find(|r| r.index == index);
        if prior.is_some_and(|r| r.phase == StepPhase::Done) {
            return Ok(None);
        }
        let slot = Slot {
            clock: &self.clock,
            req,
            index,
            step,
            started: prior
                .map(|r| r.started_at)
                .unwrap_or_else(|| self.clock.now()),
            fence,
        };
        if evidence_failed && !req.override_evidence {
            return self
                .finish(&slot, Ending::skipped("not run: an evidence step before it failed and the approval carried no override"))
                .map(Some);
        }
        let clients = match clients {
            Ok(c) => c,
            Err(e) => {
                return self
                    .finish(&slot, Ending::failed(serde_json::Value::Null, e))
                    .map(Some)
            }
        };
        let ctx = step_ctx(req, index, self.clock.now());
        let span =
            tracing::info_span!("step", request_id = %req.id, step = index, action = %step.action);
        self.run_step(&slot, prior, clients, &ctx)
            .instrument(span)
            .await
            .map(Some)
    }

    /// One step: capture (persisted), apply, verify, persist the outcome.
    async fn run_step(
        &self,
        slot: &Slot<'_>,
        prior: Option<&StepRecord>,
        clients: &AwsClients,
        ctx: &StepCtx,
    ) -> Result<StepOutcome, EngineError> {
        let (req, step) = (slot.req, slot.step);
        // Capture the current state. On resume, the record already holds the original capture.
        let current = match self.retrying(|| aws::capture(clients, step, ctx)).await {
            Ok(c) => c,
            Err(e) => {
                let captured = prior.map(|r| r.captured.clone()).unwrap_or_default();
                return self.finish(slot, Ending::failed(captured, &e));
            }
        };
        let captured = match prior {
            Some(r) => serde_json::from_value::<Captured>(r.captured.clone()).unwrap_or(Captured {
                prior: r.captured.clone(),
                already_in_target_state: false,
            }),
            None => current.clone(),
        };
        let captured_json = serde_json::to_value(&captured).unwrap_or_default();
        if prior.is_none() {
            self.store.put_step_record_fenced(
                req.id,
                &slot.record(StepPhase::Captured, captured_json.clone(), None),
                Some(
                    slot.event(EventKind::StepCaptured)
                        .detail(serde_json::json!({
                            "step": slot.index,
                            "action": step.action,
                            "target": step.target,
                            "captured": captured.prior,
                        })),
                ),
                slot.fence,
            )?;
            failpoint("after-capture", step);
        }

        if current.already_in_target_state {
            // Nothing to change now; capture just read the target state, which is the
            // verification. If hanko captured a different state before a restart, the change
            // was hanko's own (applied before the crash): call it applied.
            let (outcome, message) = if prior.is_some() && !captured.already_in_target_state {
                (
                    StepOutcome::Applied,
                    "applied before a restart; verified after resume",
                )
            } else {
                (
                    StepOutcome::AlreadyInTargetState,
                    "already in the target state; nothing changed",
                )
            };
            let result =
                serde_json::json!({ "already_in_target_state": true, "observed": current.prior });
            return self.finish(
                slot,
                Ending::done(outcome, captured_json, result, Some(message.into())),
            );
        }

        // The first attempt right after this run's own capture may trust it (a resumed step's
        // capture is older than the crash; a retry follows a failed attempt that may have
        // made something): see `StepCtx::fresh_capture`.
        let fresh = std::sync::atomic::AtomicBool::new(prior.is_none());
        let result = match self
            .retrying(|| {
                let ctx = StepCtx {
                    fresh_capture: fresh.swap(false, std::sync::atomic::Ordering::Relaxed),
                    ..ctx.clone()
                };
                let captured = &captured;
                async move { aws::apply(clients, step, captured, &ctx).await }
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return self.finish(slot, Ending::failed(captured_json, &e)),
        };
        failpoint("after-apply", step);
        // A read-back that does not yet see the change is a retryable error of the step (IAM is
        // eventually consistent), so the shared retry policy covers it.
        match self
            .retrying(|| aws::verify(clients, step, &result, ctx))
            .await
        {
            Ok(()) => {
                let message = result
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string);
                self.finish(
                    slot,
                    Ending::done(StepOutcome::Applied, captured_json, result, message),
                )
            }
            Err(e) => self.finish(slot, Ending::failed(captured_json, &e)),
        }
    }

    /// Runs `op` under the engine's retry policy (retryable failures only).
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        with_retry_policy(self.retry, op).await
    }

    /// Persists how a step ended, with its audit event; returns the outcome.
    fn finish(&self, slot: &Slot<'_>, end: Ending) -> Result<StepOutcome, EngineError> {
        let kind = match end.outcome {
            StepOutcome::Applied | StepOutcome::AlreadyInTargetState => EventKind::StepApplied,
            StepOutcome::Skipped => EventKind::StepSkipped,
            StepOutcome::Failed => EventKind::StepFailed,
        };
        if let Some(e) = &end.error {
            tracing::warn!(request_id = %slot.req.id, step = slot.index, code = ?e.code, aws_request_id = ?e.aws_request_id, "step failed: {e}");
        }
        tracing::info!(outcome = end.outcome.as_str(), error_code = ?end.error_code, "step finished");
        let detail = serde_json::json!({
            "step": slot.index,
            "action": slot.step.action,
            "operation": slot.step.operation,
            "target": slot.step.target,
            "outcome": end.outcome.as_str(),
            "error_code": end.error_code,
            "message": end.message,
            "result": end.result,
        });
        let outcome = end.outcome;
        let captured = end.captured.clone();
        self.store.put_step_record_fenced(
            slot.req.id,
            &slot.record(StepPhase::Done, captured, Some(end)),
            Some(slot.event(kind).detail(detail)),
            slot.fence,
        )?;
        Ok(outcome)
    }

    async fn run_revert(
        &self,
        req: &Request,
        of: Uuid,
        fence: Option<&(String, u64)>,
    ) -> Result<(), EngineError> {
        let original = self.store.step_records(of)?;
        let existing = self.store.step_records(req.id)?;
        let clients = self.clients_for(&req.plan).await;
        for (index, step) in req.plan.steps.iter().enumerate() {
            let prior_record = existing.iter().find(|r| r.index == index);
            if prior_record.is_some_and(|r| r.phase == StepPhase::Done) {
                continue;
            }
            let slot = Slot {
                clock: &self.clock,
                req,
                index,
                step,
                started: prior_record
                    .map(|r| r.started_at)
                    .unwrap_or_else(|| self.clock.now()),
                fence,
            };
            let Some(orig) = revert_source(step, &original) else {
                self.finish(
                    &slot,
                    Ending::skipped("the original step has no record to revert from"),
                )?;
                continue;
            };
            let clients = match &clients {
                Ok(c) => c,
                Err(e) => {
                    self.finish(&slot, Ending::failed(serde_json::Value::Null, e))?;
                    continue;
                }
            };
            let ctx = step_ctx(req, index, self.clock.now());
            let prior = orig
                .captured
                .get("prior")
                .cloned()
                .unwrap_or_else(|| orig.captured.clone());
            // For a revert, "captured" is what hanko left behind and "result" what came back.
            let left = orig.result.clone();
            // Persisted before the AWS call, as a forward step's capture is: a crash during the
            // call leaves a `Captured` record, and the resumed step finds the prior state
            // already back (recorded Restored) or restores it then.
            if prior_record.is_none() {
                self.store.put_step_record_fenced(
                    req.id,
                    &slot.record(StepPhase::Captured, left.clone(), None),
                    Some(
                        slot.event(EventKind::StepCaptured)
                            .detail(serde_json::json!({
                                "step": index,
                                "action": step.action,
                                "target": step.target,
                                "revert_of_step": orig.index,
                                "captured": left,
                                "restoring": prior,
                            })),
                    ),
                    slot.fence,
                )?;
                failpoint("revert-after-capture", step);
            }
            // A resumed step (its record was there before this run) or a retry of the call may
            // find the captured state already back: then it is restored, not drifted.
            let mut attempts = 0u32;
            let resumed = prior_record.is_some();
            let outcome = self
                .retrying(|| {
                    let mut ctx = ctx.clone();
                    ctx.revert_retry = resumed || attempts > 0;
                    attempts += 1;
                    let (prior, result) = (&prior, &orig.result);
                    async move { aws::revert(clients, step, prior, result, &ctx).await }
                })
                .await;
            failpoint("revert-after-call", step);
            let end = match outcome {
                Ok(RevertOutcome::Restored) => Ending::done(
                    StepOutcome::Applied,
                    left,
                    prior.clone(),
                    Some("restored the state captured before containment".into()),
                ),
                Ok(RevertOutcome::NothingToRevert { reason }) => Ending::done(
                    StepOutcome::AlreadyInTargetState,
                    left,
                    serde_json::Value::Null,
                    Some(reason),
                ),
                Ok(RevertOutcome::Drifted { reason }) => Ending {
                    error_code: Some("Drifted".into()),
                    ..Ending::done(
                        StepOutcome::Failed,
                        left,
                        serde_json::Value::Null,
                        Some(format!(
                            "not reverted: the resource changed since hanko contained it ({reason})"
                        )),
                    )
                },
                Err(e) => Ending::failed(left, &e),
            };
            self.finish(&slot, end)?;
        }
        Ok(())
    }

    /// Builds the revert request for an executed containment request: the steps that changed
    /// something, in reverse order. The caller stores it; it needs approval like any request.
    pub fn revert_request(
        &self,
        of: Uuid,
        proposer: Actor,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Request, EngineError> {
        let original = self
            .store
            .get_request(of)?
            .ok_or(EngineError::NoSuchRequest(of))?;
        if original.kind != RequestKind::Contain {
            return Err(EngineError::NotRevertible {
                id: of,
                reason: "it is itself a revert".into(),
            });
        }
        if !matches!(
            original.state,
            RequestState::Succeeded | RequestState::PartiallyFailed | RequestState::Failed
        ) {
            return Err(EngineError::NotRevertible {
                id: of,
                reason: format!("it is {}, not executed", original.state),
            });
        }
        let records = self.store.step_records(of)?;
        let plan = revert_plan(&original, &records);
        if plan.steps.is_empty() {
            return Err(EngineError::NotRevertible {
                id: of,
                reason: "none of its steps changed anything".into(),
            });
        }
        Ok(Request::new(
            RequestKind::Revert { of },
            plan,
            proposer,
            now,
            ttl,
        ))
    }

    /// The revert of `of` that forbids proposing another (one live revert at a time, none
    /// after one succeeded; see [`blocking_revert`]). The one check every proposer of a revert
    /// applies before storing one: the card's Revert button, `/revert` and `hanko revert`.
    pub fn existing_revert(&self, of: Uuid) -> Result<Option<Request>, EngineError> {
        let original = self
            .store
            .get_request(of)?
            .ok_or(EngineError::NoSuchRequest(of))?;
        let siblings = self.store.requests_for_finding(&original.finding_id)?;
        Ok(blocking_revert(&siblings, of).cloned())
    }

    /// The report of a request from its stored records.
    pub fn report(&self, req: &Request) -> Result<ExecutionReport, EngineError> {
        let records = self.store.step_records(req.id)?;
        Ok(build_report(req, &records))
    }
}

/// How a pre-flight refusal closes `req`: its state, its closure and its audit event
/// (`RequestSuperseded` or `RequestExpired`, by hanko, with the refusal's code and sentence).
fn start_refusal(req: &Request, refusal: &PreflightRefusal, now: DateTime<Utc>) -> StartRefusal {
    let to = refusal.state();
    let kind = if to == RequestState::Superseded {
        EventKind::RequestSuperseded
    } else {
        EventKind::RequestExpired
    };
    StartRefusal {
        to,
        closure: Closure {
            at: now,
            code: refusal.code().to_string(),
            reason: refusal.to_string(),
        },
        event: NewEvent::new(now, Actor::System, kind)
            .finding(req.finding_id.clone())
            .request(req.id)
            .detail(serde_json::json!({
                "code": refusal.code(),
                "reason": refusal.to_string(),
                "refusal": refusal,
                "preflight": true,
                "plan_hash": req.plan.plan_hash,
            })),
    }
}

/// One step of one request, being run and recorded.
struct Slot<'a> {
    clock: &'a Clock,
    req: &'a Request,
    index: usize,
    step: &'a Step,
    started: DateTime<Utc>,
    /// The execution lease's (owner, attempt) every record write is conditioned on.
    fence: Option<&'a (String, u64)>,
}

impl Slot<'_> {
    fn record(
        &self,
        phase: StepPhase,
        captured: serde_json::Value,
        end: Option<Ending>,
    ) -> StepRecord {
        let (result, outcome, error_code, message, finished_at) = match end {
            Some(e) => (
                e.result,
                Some(e.outcome),
                e.error_code,
                e.message,
                Some(self.clock.now()),
            ),
            None => (serde_json::Value::Null, None, None, None, None),
        };
        StepRecord {
            index: self.index,
            action: self.step.action,
            target: self.step.target.clone(),
            phase,
            captured,
            result,
            outcome,
            error_code,
            message,
            started_at: self.started,
            finished_at,
        }
    }

    fn event(&self, kind: EventKind) -> NewEvent {
        NewEvent::new(self.clock.now(), Actor::System, kind)
            .finding(self.req.finding_id.clone())
            .request(self.req.id)
    }
}

/// How a step ended.
struct Ending {
    outcome: StepOutcome,
    captured: serde_json::Value,
    result: serde_json::Value,
    error_code: Option<String>,
    message: Option<String>,
    /// The AWS failure, for the log (its sentence is already in `message`).
    error: Option<AwsError>,
}

impl Ending {
    fn done(
        outcome: StepOutcome,
        captured: serde_json::Value,
        result: serde_json::Value,
        message: Option<String>,
    ) -> Self {
        Ending {
            outcome,
            captured,
            result,
            error_code: None,
            message,
            error: None,
        }
    }

    fn skipped(message: &str) -> Self {
        Ending::done(
            StepOutcome::Skipped,
            serde_json::Value::Null,
            serde_json::Value::Null,
            Some(message.into()),
        )
    }

    fn failed(captured: serde_json::Value, e: &AwsError) -> Self {
        Ending {
            outcome: StepOutcome::Failed,
            captured,
            result: serde_json::json!({ "error_class": e.class, "aws_request_id": e.aws_request_id }),
            error_code: Some(e.code.clone().unwrap_or_else(|| format!("{:?}", e.class))),
            message: Some(e.message.clone()),
            error: Some(e.clone()),
        }
    }
}

/// Steps at most this many at once inside a batch ([`batch_end`]).
const STEP_CONCURRENCY: usize = 4;

/// Where the batch of steps that starts at `start` ends (exclusive). An evidence step runs
/// alone, so every step after it waits for it (evidence first), and so does a stop, which
/// changes the instance the other EC2 steps read. Other consecutive steps form one batch
/// (at most [`STEP_CONCURRENCY`]): each changes its own setting of its own resource
/// (a key's status and a user's inline policy; an instance attribute, its interfaces' groups,
/// its tags; a bucket's public access block and its ownership controls).
fn batch_end(steps: &[Step], start: usize) -> usize {
    let alone = |s: &Step| s.action.is_evidence() || s.action == crate::plan::Action::StopInstance;
    if steps.get(start).is_some_and(alone) {
        return start + 1;
    }
    let mut end = start;
    while end < steps.len() && end - start < STEP_CONCURRENCY && !alone(&steps[end]) {
        end += 1;
    }
    end.max(start + 1)
}

/// What a step of `request_id` runs with.
/// What a step of `req` runs with: the request, its finding and who approved it (steps that
/// write a note, such as a Security Hub suppression, name them).
fn step_ctx(req: &Request, step_index: usize, now: DateTime<Utc>) -> StepCtx {
    StepCtx {
        request_id: req.id,
        finding_id: req.finding_id.clone(),
        step_index,
        now,
        dry_run: false,
        approvers: req
            .approvers()
            .iter()
            .map(|a| a.display_name().to_string())
            .collect(),
        revert_retry: false,
        fresh_capture: false,
    }
}

/// The plan of a revert: the original's applied steps, newest first, each pointing back at the
/// original step (`RevertOfStep`).
pub fn revert_plan(original: &Request, records: &[StepRecord]) -> Plan {
    let mut steps = Vec::new();
    let mut notes = vec![format!(
        "revert of request {}: restores what each step captured, unless the resource changed since",
        original.id
    )];
    for rec in records.iter().rev() {
        if rec.outcome != Some(StepOutcome::Applied) {
            continue;
        }
        let Some(step) = original.plan.steps.get(rec.index) else {
            continue;
        };
        let mut step = step.clone();
        if let Some(obj) = step.parameters.as_object_mut() {
            obj.insert("RevertOfStep".into(), serde_json::json!(rec.index));
        }
        if step.action == crate::plan::Action::DeactivateAccessKey {
            notes.push(
                "WARNING: this re-enables an access key that a finding reported as misused".into(),
            );
        }
        steps.push(step);
    }
    Plan::new(
        original.plan.finding_id.clone(),
        original.plan.account_id.clone(),
        original.plan.region.clone(),
        original.plan.sample,
        steps,
        notes,
    )
}

/// Among a finding's requests, a revert of `of` that is live (pending, approved, executing) or
/// already succeeded: while there is one, no other revert of `of` may be proposed.
pub fn blocking_revert(requests: &[Request], of: Uuid) -> Option<&Request> {
    requests.iter().rev().find(|r| {
        r.kind == RequestKind::Revert { of }
            && matches!(
                r.state,
                RequestState::Pending
                    | RequestState::Approved
                    | RequestState::Executing
                    | RequestState::Succeeded
            )
    })
}

fn revert_source<'a>(step: &Step, original: &'a [StepRecord]) -> Option<&'a StepRecord> {
    let idx = step.parameters.get("RevertOfStep")?.as_u64()? as usize;
    original
        .iter()
        .find(|r| r.index == idx && r.action == step.action)
}

/// Succeeded when every step succeeded, Failed when none did, PartiallyFailed otherwise.
pub fn final_state(records: &[StepRecord], steps: usize) -> RequestState {
    let ok = records
        .iter()
        .filter(|r| r.outcome.is_some_and(|o| o.is_success()))
        .count();
    if steps > 0 && ok == steps {
        RequestState::Succeeded
    } else if ok == 0 {
        RequestState::Failed
    } else {
        RequestState::PartiallyFailed
    }
}

fn build_report(req: &Request, records: &[StepRecord]) -> ExecutionReport {
    let steps = req
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let rec = records.iter().find(|r| r.index == i);
            StepReport {
                index: i,
                action: s.action.as_str().to_string(),
                operation: s.operation.clone(),
                target: s.target.to_string(),
                outcome: rec.and_then(|r| r.outcome).unwrap_or(StepOutcome::Skipped),
                error_code: rec.and_then(|r| r.error_code.clone()),
                message: rec.and_then(|r| r.message.clone()),
                captured: rec.map(|r| r.captured.clone()).unwrap_or_default(),
                result: rec.map(|r| r.result.clone()).unwrap_or_default(),
            }
        })
        .collect();
    ExecutionReport {
        request_id: req.id,
        finding_id: req.finding_id.clone(),
        kind: req.kind,
        state: req.state,
        steps,
    }
}

/// Nothing: failpoints exist only in builds with the `failpoints` feature (the test suite).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn failpoint(_point: &str, _step: &Step) {}

/// Aborts the process when `HANKO_FAILPOINT` names this point and step; with the prefix
/// `hang:`, blocks the run's thread for good instead (a replica frozen mid-plan, for a test to
/// kill with SIGKILL). Crash tests only: the `failpoints` feature, which release builds do not
/// enable.
#[cfg(feature = "failpoints")]
fn failpoint(point: &str, step: &Step) {
    if let Ok(spec) = std::env::var("HANKO_FAILPOINT") {
        let here = format!("{point}:{}", step.action.as_str());
        if spec == here {
            tracing::error!("failpoint {spec} reached: aborting");
            std::process::abort();
        }
        if spec.strip_prefix("hang:") == Some(here.as_str()) {
            tracing::error!("failpoint {spec} reached: hanging");
            // Only this run freezes: its worker's other tasks (an HTTP answer just woken, say)
            // move to another thread first.
            crate::util::off_the_worker(|| loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            })
        }
    }
}

/// The audit event of a dry run of `plan` by `actor` (`via`: `chat` or `cli`): who ran it and
/// on what, every call it would make. Written before the dry run's read and `DryRun` calls,
/// by every caller of [`dry_run`]; the caller adds the request when there is one.
pub fn dry_run_event(plan: &Plan, actor: Actor, now: DateTime<Utc>, via: &str) -> NewEvent {
    NewEvent::new(now, actor, EventKind::DryRunPerformed)
        .finding(plan.finding_id.clone())
        .detail(serde_json::json!({
            "via": via,
            "plan_hash": plan.plan_hash,
            "account_id": plan.account_id,
            "region": plan.region,
            "steps": plan
                .steps
                .iter()
                .map(|s| serde_json::json!({
                    "action": s.action,
                    "operation": s.operation,
                    "target": s.target.to_string(),
                }))
                .collect::<Vec<_>>(),
        }))
}

/// Dry run: every step's capture and a DryRun apply, no store writes and no mutating call.
/// Its callers audit it first ([`dry_run_event`]). `now` is the time the steps are told (the
/// session-revocation documents it would put are dated with it).
pub async fn dry_run(clients: &ClientFactory, plan: &Plan, now: DateTime<Utc>) -> Vec<StepReport> {
    let clients = clients.clients(&plan.account_id, &plan.region).await;
    let mut out = Vec::new();
    for (index, step) in plan.steps.iter().enumerate() {
        let ctx = StepCtx {
            request_id: Uuid::nil(),
            finding_id: plan.finding_id.clone(),
            step_index: index,
            now,
            dry_run: true,
            approvers: Vec::new(),
            revert_retry: false,
            fresh_capture: false,
        };
        let end = match &clients {
            Ok(c) => dry_run_step(c, step, &ctx).await,
            Err(e) => Ending::failed(serde_json::Value::Null, e),
        };
        out.push(StepReport {
            index,
            action: step.action.as_str().into(),
            operation: step.operation.clone(),
            target: step.target.to_string(),
            outcome: end.outcome,
            error_code: end.error_code,
            message: end.message,
            captured: end.captured,
            result: end.result,
        });
    }
    out
}

async fn dry_run_step(clients: &AwsClients, step: &Step, ctx: &StepCtx) -> Ending {
    let captured = match aws::capture(clients, step, ctx).await {
        Ok(c) => c,
        Err(e) => return Ending::failed(serde_json::Value::Null, &e),
    };
    let cap_json = serde_json::to_value(&captured).unwrap_or_default();
    if captured.already_in_target_state {
        return Ending::done(
            StepOutcome::AlreadyInTargetState,
            cap_json,
            serde_json::Value::Null,
            Some("already in the target state".into()),
        );
    }
    match aws::apply(clients, step, &captured, ctx).await {
        Ok(result) => Ending::done(
            StepOutcome::Skipped,
            cap_json,
            result,
            Some(format!(
                "dry run: would call {} with {}",
                step.operation, step.parameters
            )),
        ),
        Err(e) => Ending::failed(cap_json, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, RiskClass, Target};

    fn step(action: Action) -> Step {
        Step {
            action,
            service: "ec2".into(),
            operation: String::new(),
            target: Target::Instance {
                instance_id: "i-0123456789abcdef0".into(),
            },
            parameters: serde_json::json!({}),
            risk: RiskClass::Contain,
        }
    }

    /// Batches of a plan, as index ranges.
    fn batches(actions: &[Action]) -> Vec<std::ops::Range<usize>> {
        let steps: Vec<Step> = actions.iter().map(|a| step(*a)).collect();
        let mut out = Vec::new();
        let mut start = 0;
        while start < steps.len() {
            let end = batch_end(&steps, start);
            out.push(start..end);
            start = end;
        }
        out
    }

    #[test]
    fn evidence_and_stop_run_alone_and_the_rest_overlap_four_at_a_time() {
        use Action::*;
        assert_eq!(
            batches(&[
                SnapshotVolumes,
                EnableTerminationProtection,
                SetShutdownBehaviorStop,
                PreserveVolumes,
                IsolateInstance,
                TagInstance,
                DetachInstanceProfile,
                StopInstance,
            ]),
            vec![0..1, 1..5, 5..7, 7..8]
        );
        assert_eq!(
            batches(&[DeactivateAccessKey, RevokeUserSessions]),
            vec![0..2]
        );
        // A step placed before the evidence does not wait for it; one after it does.
        assert_eq!(
            batches(&[TagInstance, SnapshotVolumes, IsolateInstance]),
            vec![0..1, 1..2, 2..3]
        );
        assert!(batches(&[]).is_empty());
    }
}
