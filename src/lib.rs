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
//! Layers, from the inside out. A module may use the ones named in its row and nothing else;
//! `scripts/module-edges.sh` prints what each module's code really names, so this table can be
//! checked against the code. The graph has no loop between top-level modules except `plan` and
//! `playbooks`, which is none at the level of files: `plan::vocabulary` (steps, risk classes)
//! imports nothing, `playbooks` imports only that, and `plan::routing` reads the playbooks.
//!
//! | module | owns | may use |
//! |---|---|---|
//! | **leaves** | | |
//! | [`ids`] | AWS identifiers: account ids, regions, partitions, console hosts, bucket names, percent-encoding | — |
//! | [`util`] | human durations and times, `one_line`, retry backoff with jitter, the deep-stack launcher | — |
//! | [`clock`] | the one wall clock (system time, shiftable by tests) | — |
//! | [`audit`] | events, hash chain, the stored record (the canonical bytes that were hashed), query filter | — |
//! | [`notices`] | "look again" messages from the application to whoever shows it | — |
//! | [`command_defs`] | `commands/*.json` slash command definitions, embedded at build time, checked against Discord's rules | — |
//! | **core** (no serenity, no AWS SDK, no sled) | | |
//! | [`finding`] | normalized findings, one parser per shape (API JSON, EventBridge, ASFF), `finding::json`: the path-tracking reader and the builder the pollers write with; console links | ids |
//! | [`plan`] | `plan::vocabulary`: steps, targets, risk classes, plan hash; `plan::routing`: finding → steps (`docs/containment.md`) | finding, playbooks |
//! | [`playbooks`] | `playbooks.toml`: routing overrides | finding, plan (vocabulary) |
//! | [`posture`] | Security Hub control findings, groups per control and account, scores | finding |
//! | [`approval`] | request states, policy, `decide`, the liveness rule (`Request::is_live`) | plan, audit |
//! | [`execution`] | step records and outcomes | plan |
//! | [`preflight`] | the checks right before an approved request executes, and their refusals | approval, audit, finding |
//! | [`metrics`] | counters and the histogram behind `/metrics` | approval, execution |
//! | [`investigate`] | what a leaked access key did: CloudTrail events read (ids checked), the summary for its card, what it created that hanko can contain, JSON Lines | ids, util |
//! | [`config`] | the TOML config, validated into settings; secrets that never print | ids, util, approval, plan, anchor (to check the key file) |
//! | **adapters to the outside** | | |
//! | [`store`] | the only module that knows key layouts; typed operations per idea (`store::requests`, `store::findings`, `store::steps`, `store::reverts`, `store::cards`, `store::kv`, `store::days`, `store::ingest_status`, `store::leases`, ...) over one of two engines (`store::backend`: sled, or DynamoDB in `store::dynamo`) | core, sled, aws-sdk-dynamodb |
//! | [`aws`] | clients per account and region, one file per containment step (`aws::ec2::*`, `aws::iam`, `aws::s3`), error classes ([`aws::AwsError`]), read-only lookups (`aws::lookup`), Security Hub calls, S3 for audit anchors, CloudTrail lookups of a key's events (rate-limited, `aws::cloudtrail`) | ids, util, finding, plan, investigate, AWS SDK |
//! | [`anchor`] | signed digests of the audit head in S3 (format, Ed25519 keys, key layout), their writer and `audit verify --anchors` | audit, clock, store, aws |
//! | **application** | | |
//! | [`planner`] | where hanko may act (own account proved by STS, the role template, `aws.accounts`, `aws.regions`), applied to every plan | finding, plan, playbooks, config, aws (client factory) |
//! | [`remediate`] | failing posture groups (S3.1, S3.8, IAM.3) → plans, and the suppression plan | ids, plan, posture, aws (lookups) |
//! | [`engine`] | executes approved requests exactly once (after [`preflight`]); resume; the revert rule | core, store, aws, planner |
//! | [`app`] | the running application's shared parts (settings, policy, store, engine, clients, notices, metrics, clock), built once; the scope questions that need them | core, config, store, aws, engine, planner |
//! | [`pipeline`] | finding → stored finding → request; posture groups → stored groups | core, app, store, planner, notices |
//! | [`posture_sync`] | after a suppression or its lift runs: the stored control findings, re-read by id | core, app, store, aws, pipeline, ingest (the ASFF reader) |
//! | [`actions`] | **the application layer**: one function per thing a person or the system does (propose, vote, execute, revert, pause, posture actions, expire, escalate, investigate, the CLI's paths); audits each refusal once | everything above |
//! | **transports and the process** | | |
//! | [`ingest`] | GuardDuty, SQS and Security Hub loops; cursors and source status (through the store) | app, pipeline, store, aws, AWS SDK |
//! | [`discord`] | translates only: cards and `custom_id`s (pure), serenity builders (`discord::convert`), the gateway bot, buttons, modals and slash commands → [`actions`], the outbox (notices → cards, pages, reminders, investigation edits) and the daily digest | actions, app, core, store (typed reads), serenity |
//! | [`http`] | `/healthz` and `/metrics` (axum) | app |
//! | [`replicas`] | several replicas on a DynamoDB store: heartbeats, the ingest and gateway leases, card claims, taking over runs whose replica died | actions, app, store, core |
//! | [`run`] | `hanko run`: start-up, the shutdown signal, the tasks it owns | everything |
//!
//! Nothing in the core or the application layer imports serenity; only `store` imports sled;
//! the AWS SDK is named only in `aws`, `anchor` and `ingest`, and in `store::dynamo` (the
//! DynamoDB engine, the store's own client).

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
pub mod investigate;
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
pub mod replicas;
pub mod run;
pub mod store;
pub mod util;
