//! # hanko (判子): approval-gated containment for AWS security findings
//!
//! The flow, one sentence a stage:
//!
//! ```text
//! finding ──> request (with a plan) ──> votes ──> steps ──> audit
//! ```
//!
//! 1. **Ingest** reads GuardDuty findings (API polling, EventBridge events through SQS) and
//!    Security Hub findings; [`finding`] normalizes all three shapes into one [`finding::Finding`].
//!    The store deduplicates by finding id.
//! 2. **Plan**: [`plan`] turns a finding into an ordered list of steps with the exact AWS
//!    calls, following the routing table of `docs/containment.md` and `config/playbooks.toml`.
//!    The plan has a content hash. [`planner`] makes it notify-only where hanko may not act
//!    (an account it has not proved it reaches, or outside `aws.accounts` / `aws.regions`).
//! 3. **Request**: a plan becomes a [`approval::Request`], posted to Discord as a card.
//! 4. **Votes**: responders vote; [`approval::decide`] applies the policy (roles, distinct
//!    approvers per risk class, no self-approval, time to live, stale plan hash). The store
//!    records a vote, its transition and its audit event in one transaction.
//! 5. **Steps**: the engine runs an approved plan exactly once: check, capture, apply, verify,
//!    each persisted ([`execution::StepRecord`]); a revert is another approved request.
//! 6. **Audit**: every change of state is an [`audit::AuditEvent`] in a SHA-256 hash chain.
//!
//! ## Module map
//!
//! | module | owns | may use |
//! |---|---|---|
//! | [`finding`] | normalized findings, parsers for API JSON, EventBridge, ASFF (one file a shape), `finding::json`: the path-tracking JSON reader (also posture's) and the builder the pollers write with | ids, serde_json |
//! | [`plan`] | steps, risk classes, plan hash | finding |
//! | [`planner`] | the one planner: where hanko may act (own account proved by STS, the role template, `aws.accounts`, `aws.regions`), checked at plan time, vote time and in the engine; every card and proposer plans through it | finding, plan, playbooks, config, aws (client factory), app |
//! | [`posture`] | Security Hub control findings, groups per control and account, scores | finding |
//! | [`playbooks`] | `playbooks.toml`: routing and overrides | finding, plan |
//! | [`approval`] | request states, policy, `decide`, the liveness rule (`Request::is_live`) | plan, audit |
//! | [`preflight`] | the checks right before an approved request executes, and their refusals | approval, finding, plan |
//! | [`audit`] | events, hash chain, the stored record (the canonical bytes that were hashed), query filter | — |
//! | [`anchor`] | signed digests of the audit head in S3 (format, Ed25519 keys, key layout), their writer and `audit verify --anchors` | audit, store, clock, aws (S3) |
//! | [`clock`] | the one wall clock (system time, shiftable by tests) | — |
//! | [`util`] | human durations and times, shared by the config and the CLI | — |
//! | [`execution`] | step records and outcomes | plan |
//! | [`config`] | the TOML config, validated into settings; secrets that never print | approval, plan, util |
//! | [`command_defs`] | `commands/*.json` slash command definitions, embedded at build time, checked against Discord's rules (`commands` is its old name, kept as an alias) | serde_json |
//! | [`store`] | sled: the only module that knows key layouts | core modules |
//! | [`aws`] | clients per account and region, containment steps, error classes, S3 for audit anchors (`aws::anchors`) | AWS SDK, core |
//! | [`engine`] | executes approved requests exactly once (after [`preflight`]); resume; revert | store, aws, core |
//! | [`posture_sync`] | after a suppression or its lift runs: the stored control findings from the step's result and a re-read by id, the card announced | app, posture, aws |
//! | [`expiry`] | the sweep that turns Pending requests past `expires_at` into Expired | store, pipeline |
//! | [`remediate`] | failing posture groups (S3.1, S3.8, IAM.3) → containment plans, run by the same engine | plan, posture, aws |
//! | [`pipeline`] | finding → stored finding → request; notices for the chat | store, plan, planner |
//! | [`ingest`] | GuardDuty, SQS and Security Hub loops; cursors; source status keys | AWS SDK, store, pipeline, finding |
//! | [`discord`] | cards and `custom_id`s (pure), serenity builders (`discord::convert`); the bot, interactions (posture buttons in `discord::posture_actions`), the outbox and the daily score digest | core modules, remediate, serenity |
//! | [`metrics`] | counters and the histogram behind `/metrics` | core types |
//! | [`app`] | the running application's shared parts (settings, policy, store, engine, clients, notices, metrics, clock), built once | config, store, engine, aws, pipeline, metrics |
//! | [`http`] | `/healthz` and `/metrics` (axum) | app, metrics |
//! | [`run`] | `hanko run`: start-up, the shutdown signal, engine runs started from chat, the expiry sweeper and `/resume` | everything above |
//!
//! The core (finding, plan, playbooks, approval, audit, execution) never imports serenity, the
//! AWS SDK or sled.

pub mod actions;
pub mod anchor;
pub mod app;
pub mod approval;
pub mod audit;
pub mod aws;
pub mod clock;
pub mod command_defs;
pub mod config;
pub mod discord;
pub mod engine;
pub mod execution;
pub mod finding;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod metrics;
pub mod notices;
pub mod pipeline;
pub mod plan;
pub mod planner;
pub mod playbooks;
pub mod posture;
pub mod posture_sync;
pub mod preflight;
pub mod remediate;
pub mod run;
pub mod store;
pub mod util;
