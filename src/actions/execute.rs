//! Execute: running approved requests, from an approval in chat, from `/resume` and at
//! start-up, as owned tasks that shutdown waits for.
//!
//! [`execute_request`] is the one way hanko runs a request: the engine executes it (after its
//! pre-flight checks, [`crate::preflight`]), then the posture store is brought in step with a
//! suppression or its lift ([`crate::posture_sync`]), the step outcomes are counted, and the new
//! state is announced ([`Notice::RequestChanged`]) so every card shows it.
//!
//! [`Tasks`] are the owned engine runs; [`start`] spawns one with a continuation (what the
//! transport tells the person when the run ends). [`resume_on_start`] and [`start_approved`]
//! run what is left ([`run_left`]).
//!
//! May use the app, the engine, the store and posture sync; never serenity.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::app::App;
use crate::approval::RequestState;
use crate::engine::{EngineError, ExecutionReport};
use crate::notices::Notice;
use crate::store::StoreError;

/// Engine runs started from chat or on resume, so shutdown can wait for them. Cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    // A std lock, never held across an await.
    set: Arc<Mutex<JoinSet<()>>>,
}

impl Tasks {
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow with the process's age.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Waits for every task, at most `bound`; `false` when some were still running.
    pub async fn wait(&self, bound: Duration) -> bool {
        let mut set = {
            let mut guard = self.set.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *guard)
        };
        let all = async {
            while let Some(joined) = set.join_next().await {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "an engine task panicked or was cancelled");
                }
            }
        };
        tokio::time::timeout(bound, all).await.is_ok()
    }
}

/// How long the end of a run waits for the transport to have shown the vote ([`start`]).
pub const SHOWN_PATIENCE: Duration = Duration::from_secs(5);

/// Runs `request_id` in an owned task, at once; `then` gets the result (a transport tells the
/// person who approved it). Shutdown waits for both.
///
/// `shown` is the transport showing the vote that approved it (the clicked card's edit), which
/// goes on while the run starts: the run does not wait for it, but its end is announced only
/// once it has happened (or [`SHOWN_PATIENCE`] passed), so a late "approved" edit never lands
/// over the card of the finished run.
pub fn start<F, Fut>(
    app: &App,
    tasks: &Tasks,
    request_id: Uuid,
    shown: Option<oneshot::Receiver<()>>,
    then: F,
) where
    F: FnOnce(Result<ExecutionReport, EngineError>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let app = app.clone();
    tasks.spawn(async move {
        let result = run(&app, request_id, shown).await;
        then(result).await;
    });
}

/// Executes an approved request, then counts its step outcomes, brings the posture store in
/// step with a suppression or its lift, and announces its new state so the card is edited.
pub async fn execute_request(app: &App, id: Uuid) -> Result<ExecutionReport, EngineError> {
    run(app, id, None).await
}

async fn run(
    app: &App,
    id: Uuid,
    shown: Option<oneshot::Receiver<()>>,
) -> Result<ExecutionReport, EngineError> {
    let result = app.engine.execute_ran(id).await;
    // Whether anything may have run: said by the engine, or, after an error (rare), by the
    // state it left (Executing after a failure half-way; Approved when paused). A store that
    // cannot answer counts as "may have run": the posture sync is harmless when nothing did,
    // and the engine's error is the one returned.
    let runs = match &result {
        Ok((_, ran)) => *ran,
        Err(_) => app
            .store
            .get_request(id)
            .map_or(true, |r| r.is_some_and(|r| r.state.needs_engine())),
    };
    let result = result.map(|(report, _)| report);
    if runs {
        sync_posture(app, id).await;
    }
    if let Some(shown) = shown {
        // A dropped sender (the edit failed or was never sent) ends the wait too.
        let _ = tokio::time::timeout(SHOWN_PATIENCE, shown).await;
    }
    app.notices.send(Notice::RequestChanged { request: id });
    if let Ok(report) = &result {
        if runs {
            count_report(app, report);
        }
    }
    result
}

/// After a run that suppressed or lifted Security Hub findings, the stored control findings,
/// the posture card and `/score` show it ([`crate::posture_sync`]); other runs are untouched.
async fn sync_posture(app: &App, id: Uuid) {
    if let Err(e) = crate::posture_sync::after_execution(app, id).await {
        tracing::error!(request_id = %id, error = %e, "could not bring the posture findings in step after an execution");
    }
}

fn count_report(app: &App, report: &ExecutionReport) {
    for step in &report.steps {
        app.metrics.record_step_outcome(step.outcome);
    }
    if report.state == RequestState::Succeeded {
        if let Ok(Some(req)) = app.store.get_request(report.request_id) {
            if let Some(decided) = req.decided_at {
                let seconds = (app.clock.now() - decided).num_milliseconds() as f64 / 1000.0;
                app.metrics.record_approval_to_contained(seconds);
            }
        }
    }
}

/// A sentence for an engine error that is safe to show (hanko's own words, no AWS text).
pub fn engine_error_sentence(e: &EngineError) -> String {
    match e {
        EngineError::Paused => "execution is paused; /resume starts it again".into(),
        EngineError::NotApproved { state, .. } => format!("the request is {state}"),
        EngineError::NotRevertible { reason, .. } => reason.clone(),
        EngineError::NoSuchRequest(_) => "the request is not in the store".into(),
        EngineError::Store(_) => "the store failed".into(),
        EngineError::Busy { .. } => "another hanko replica is running it".into(),
        EngineError::Refused { refusal, .. } => {
            format!("the checks before running refused it ({refusal}); nothing was changed")
        }
    }
}

/// Resumes every request left Approved or Executing (on start-up), announcing each, refused
/// ones included (their cards say why). As [`crate::engine::Engine::resume_all`]: an
/// interrupted Executing request is finished even while paused; Approved ones wait for
/// `/resume`.
pub async fn resume_on_start(app: App) {
    let ran = run_left(&app, &[RequestState::Executing, RequestState::Approved]).await;
    if ran > 0 {
        tracing::info!(requests = ran, "resumed interrupted requests");
    }
}

/// Starts every Approved request now (`/resume`). Executing requests are left alone: in a
/// running hanko each has a run under way.
pub async fn start_approved(app: App) {
    let ran = run_left(&app, &[RequestState::Approved]).await;
    if ran > 0 {
        tracing::info!(requests = ran, "approved requests run after /resume");
    }
}

/// Runs the requests left in `states`, one after another, through [`execute_request`] (which
/// announces each). An Approved one runs only while execution is not paused, checked before
/// each (an unreadable flag counts as paused: fail closed); an Executing one was interrupted
/// and is always finished, so no resource stays half-contained. Returns how many ran.
pub async fn run_left(app: &App, states: &[RequestState]) -> usize {
    let left = match app.store.requests_in_states(states) {
        Ok(left) => left,
        Err(e) => {
            tracing::error!(error = %e, "listing the requests left to run failed");
            return 0;
        }
    };
    let mut ran = 0;
    for req in left {
        if req.state == RequestState::Approved && app.engine.is_paused().unwrap_or(true) {
            continue;
        }
        match execute_request(app, req.id).await {
            Ok(_) => ran += 1,
            // Another run (a click, an earlier /resume, another replica) started it first.
            Err(EngineError::Store(StoreError::Conflict { .. }) | EngineError::Busy { .. }) => {}
            // Closed by the checks before running: audited, and its card says why.
            Err(e @ EngineError::Refused { .. }) => {
                tracing::info!(request_id = %req.id, reason = %e, "not run")
            }
            Err(e) => {
                tracing::error!(request_id = %req.id, error = %e, "running a request left to run failed")
            }
        }
    }
    ran
}
