//! The command line's actions: `hanko drill` (the whole life of one request without chat),
//! `hanko revert` and `hanko resume`, run from a config file (or the defaults) rather than a
//! running app.
//!
//! They take the paths chat takes: the one planner ([`planner::plan`], [`planner::check`]),
//! the pipeline's proposal ([`crate::pipeline::propose_with`]), the store's one vote
//! transaction ([`super::vote::approve_as_operators`]), the revert proposal
//! ([`super::revert::prepare`] and [`super::revert::commit`]: one live revert at a time, checked
//! and created atomically) and the engine with its pre-flight checks. What they did comes back
//! as JSON reports ([`Outcome`]); `main.rs` prints them and turns `ok` into the exit code.
//!
//! May use the config, the store, the planner, the pipeline, the engine and the AWS client
//! factory; never serenity.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use crate::approval::{Policy, RequestState};
use crate::audit::Actor;
use crate::aws::ClientFactory;
use crate::engine::{self, Engine, EngineError};
use crate::execution::StepOutcome;
use crate::finding::Finding;
use crate::planner::{self, Limits, Scope};
use crate::playbooks::Playbooks;
use crate::store::{Store, StoreError, StoreLocation};

use super::revert::{self, RevertRefusal};
use super::vote;

/// Why a CLI action could not run (exit 2): the store, the engine or a report that would not
/// serialize. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot write the report as JSON")]
    Report(#[from] serde_json::Error),
}

/// What `drill` and `revert` run under: the config's (with `--config`) or the defaults.
pub struct CliSetup {
    /// The store: `--db DIR`, else the config's `[store]`.
    pub store: StoreLocation,
    pub policy: Policy,
    /// The config's playbooks path (a `--playbooks` flag wins).
    pub playbooks_path: Option<PathBuf>,
    pub limits: Limits,
    pub factory: ClientFactory,
}

/// Why the setup was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupRefused {
    /// A repeated or empty `--approve-as` (exit 2): the sentence.
    Approvers(String),
    /// The config is bad (exit 1): its lines, as `check-config` prints them.
    Config(Vec<String>),
    /// Neither `--db` nor a config naming the store (exit 2).
    NoStore,
}

/// Refuses a repeated `--approve-as`, loads `--config` and builds the client factory; without
/// it: the default policy, no allow-lists, the environment's AWS. `--db` is required unless
/// the config names the store. A `--role-arn-template` flag wins over the config's.
pub async fn setup(
    approve_as: &[String],
    config: Option<&Path>,
    db: Option<PathBuf>,
    role_arn_template: Option<String>,
) -> Result<CliSetup, SetupRefused> {
    distinct_approvers(approve_as).map_err(SetupRefused::Approvers)?;
    let settings = match config {
        None => None,
        Some(file) => Some(crate::config::load(file).map_err(|e| SetupRefused::Config(e.lines()))?),
    };
    let store = match (db, &settings) {
        (Some(db), _) => StoreLocation::Sled(db),
        (None, Some(s)) => s.store.location(s.aws.endpoint_url.as_deref()),
        (None, None) => return Err(SetupRefused::NoStore),
    };
    let Some(settings) = settings else {
        let factory = ClientFactory::from_env(None, role_arn_template, None).await;
        return Ok(CliSetup {
            store,
            policy: Policy::default(),
            playbooks_path: None,
            limits: Limits::default(),
            factory,
        });
    };
    let factory = ClientFactory::from_env(
        settings.aws.endpoint_url.clone(),
        role_arn_template.or_else(|| settings.aws.role_arn_template.clone()),
        settings.aws.regions.first().cloned(),
    )
    .await;
    Ok(CliSetup {
        store,
        limits: Limits::of(&settings.aws),
        policy: settings.policy,
        playbooks_path: settings.playbooks_path,
        factory,
    })
}

impl CliSetup {
    /// The engine under this setup: its pre-flight holds each approval to the policy it was
    /// given, and it acts only within the allow-lists.
    pub fn engine(&self, store: &Store) -> Engine {
        Engine::new(store.clone(), self.factory.clone())
            .with_policy(Arc::new(self.policy.clone()))
            .with_limits(self.limits.clone())
    }

    /// Proves hanko's reach for `region` now ([`planner::prove`]; its answer is kept by the
    /// client factory), so a later [`CliSetup::scope`] does not wait for it.
    pub async fn prove_reach(&self, region: &str) {
        let _ = self.scope(region).await;
    }

    /// The one planner's scope for acting in `region`: the allow-lists and the reach hanko
    /// can prove.
    async fn scope(&self, region: &str) -> Scope {
        let region = Some(region).filter(|r| !r.is_empty());
        Scope {
            limits: self.limits.clone(),
            reach: planner::prove(&self.factory, region).await,
        }
    }
}

/// The names the CLI approves as: the `--approve-as` names, else `$USER`.
pub fn operators(names: &[String]) -> Vec<String> {
    if names.is_empty() {
        vec![the_operator()]
    } else {
        names.to_vec()
    }
}

/// Who runs this command: `$USER`, else `operator`.
pub fn the_operator() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".into())
}

/// A repeated `--approve-as` must name distinct approvers: the policy counts distinct
/// approvers, so `--approve-as ops --approve-as ops` is one approval, never two. The names
/// compare as the audit log keys CLI operators (exactly, after trimming).
pub fn distinct_approvers(names: &[String]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            return Err("--approve-as needs a name: --approve-as alice".into());
        }
        if !seen.insert(name) {
            return Err(format!(
                "--approve-as {name} is given twice: each --approve-as must name a different approver (the policy counts distinct approvers)"
            ));
        }
    }
    Ok(())
}

/// What a CLI action did: one JSON report a request, and whether everything succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub reports: Vec<serde_json::Value>,
    pub ok: bool,
}

/// `hanko drill`'s choices.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    pub approve_as: Vec<String>,
    /// Make no mutating call; write nothing but the dry run's audit event.
    pub dry_run: bool,
    pub override_evidence: bool,
}

/// Drills each finding: plan, request, approval by the named operators, execution. See the
/// module docs.
pub async fn drill(
    setup: &CliSetup,
    store: &Store,
    playbooks: &Playbooks,
    findings: &[Finding],
    options: &DrillOptions,
) -> Result<Outcome, CliError> {
    let mut reports = Vec::new();
    let mut ok = true;
    for f in findings {
        // The one planner: the config's allow-lists and the reach hanko can prove.
        let scope = setup.scope(&f.region).await;
        let plan = planner::plan(f, playbooks, &scope);
        if plan.is_notify_only() {
            let refusal = planner::check(&scope, &f.account_id, &f.region).err();
            // Refused where hanko may not act: nothing ran, which is not a success.
            ok &= refusal.is_none() || crate::plan::plan(f, playbooks).is_notify_only();
            reports.push(serde_json::json!({
                "finding_id": f.id, "state": "NotifyOnly", "notes": plan.notes, "steps": [],
                "refused": refusal.map(|r| r.code()),
            }));
            continue;
        }
        if options.dry_run {
            // A dry run writes nothing to the store but its audit event (who ran it, on what).
            store.append_audit(engine::dry_run_event(
                &plan,
                Actor::Cli {
                    name: the_operator(),
                },
                Utc::now(),
                "cli",
            ))?;
            store.flush()?;
            let steps = engine::dry_run(&setup.factory, &plan, Utc::now()).await;
            ok &= steps.iter().all(|s| s.outcome != StepOutcome::Failed);
            reports.push(serde_json::json!({
                "finding_id": f.id, "state": "DryRun", "plan_hash": plan.plan_hash, "steps": steps,
            }));
            continue;
        }
        let now = Utc::now();
        store.upsert_finding(f, &Actor::System, now)?;
        let request_id = crate::pipeline::propose_with(
            store,
            &setup.policy,
            plan,
            Actor::System,
            now,
            options.override_evidence,
        )?;
        let request = store
            .get_request(request_id)?
            .ok_or(EngineError::NoSuchRequest(request_id))?;
        if let Err(why) = vote::approve_as_operators(
            store,
            &setup.policy,
            &request,
            &options.approve_as,
            Utc::now(),
        )? {
            ok = false;
            reports.push(serde_json::json!({
                "request_id": request.id, "finding_id": f.id, "state": "Pending", "error": why,
            }));
            continue;
        }
        let report = setup.engine(store).execute(request.id).await?;
        ok &= report.state == RequestState::Succeeded;
        reports.push(serde_json::to_value(&report)?);
    }
    Ok(Outcome { reports, ok })
}

/// `hanko revert`: proposes the revert of `of` (as the system), approves it as the named
/// operators and runs it. A revert already open or done, or one hanko may not act for, is
/// reported (not ok).
pub async fn revert(
    setup: &CliSetup,
    store: &Store,
    of: Uuid,
    approve_as: &[String],
) -> Result<Outcome, CliError> {
    let engine = setup.engine(store);
    let now = Utc::now();
    let exists = |existing: &crate::approval::Request| {
        let why = if existing.state == RequestState::Succeeded {
            format!(
                "request {of} was already reverted by request {}; nothing was done",
                existing.id
            )
        } else {
            format!(
                "a revert of request {of} is already open (request {}, {}); approve that one instead",
                existing.id, existing.state
            )
        };
        Outcome {
            reports: vec![serde_json::json!({
                "request_id": existing.id,
                "reverts": of,
                "state": existing.state.as_str(),
                "error": why,
            })],
            ok: false,
        }
    };
    let request = match revert::prepare(&engine, Actor::System, of, now, setup.policy.ttl)? {
        Ok(r) => r,
        Err(RevertRefusal::Exists(existing)) => return Ok(exists(&existing)),
        Err(RevertRefusal::NotRevertible(e)) => return Err(e.into()),
        // Not reached: the CLI has no responder check and checks the planner below.
        Err(other) => {
            return Err(EngineError::NotRevertible {
                id: of,
                reason: format!("refused ({})", other.code()),
            }
            .into())
        }
    };
    // A revert acts where the original did: the one planner's rule applies to it too.
    let scope = setup.scope(&request.plan.region).await;
    if let Err(refusal) = planner::check(&scope, &request.plan.account_id, &request.plan.region) {
        return Ok(Outcome {
            reports: vec![serde_json::json!({
                "request_id": of, "state": "Refused", "refused": refusal.code(),
                "error": format!("nothing was proposed: {refusal}"),
            })],
            ok: false,
        });
    }
    if let Err(RevertRefusal::Exists(existing)) = revert::commit(&engine, &request, now)? {
        return Ok(exists(&existing));
    }
    if let Err(why) =
        vote::approve_as_operators(store, &setup.policy, &request, approve_as, Utc::now())?
    {
        return Ok(Outcome {
            reports: vec![
                serde_json::json!({"request_id": request.id, "state": "Pending", "error": why}),
            ],
            ok: false,
        });
    }
    let report = engine.execute(request.id).await?;
    Ok(Outcome {
        ok: report.state == RequestState::Succeeded,
        reports: vec![serde_json::to_value(&report)?],
    })
}

/// `hanko resume`: finishes every request left Approved or Executing, as `hanko run` does at
/// start-up. A request the checks before running refused (closed as Expired or Superseded) is
/// reported, and is not ok.
pub async fn resume(setup: &CliSetup, store: &Store) -> Result<Outcome, CliError> {
    let left = store.requests_in_states(&[RequestState::Executing, RequestState::Approved])?;
    let reports = setup.engine(store).resume_all().await?;
    let mut ok = reports.iter().all(|r| r.state == RequestState::Succeeded);
    let mut values = reports
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    for req in &left {
        let now = store.get_request(req.id)?;
        if let Some(now) = now.filter(|r| r.state.is_final() && r.closure.is_some()) {
            ok = false;
            values.push(serde_json::json!({
                "request_id": now.id,
                "finding_id": now.finding_id,
                "state": now.state.as_str(),
                "refused": now.closure.as_ref().map(|c| c.code.clone()),
                "error": now.closure.as_ref().map(|c| c.reason.clone()),
            }));
        }
    }
    Ok(Outcome {
        reports: values,
        ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_must_be_distinct_and_named() {
        assert!(distinct_approvers(&[]).is_ok());
        assert!(distinct_approvers(&["alice".into(), "bob".into()]).is_ok());
        let twice = distinct_approvers(&["ops".into(), " ops ".into()]).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        let blank = distinct_approvers(&["  ".into()]).unwrap_err();
        assert!(blank.contains("needs a name"), "{blank}");
        assert_eq!(operators(&["a".into()]), vec!["a".to_string()]);
    }
}
