//! Support code shared by the integration test binaries (`tests/core`, `tests/aws`,
//! `tests/chat`, `tests/binary`): each binary declares this module once, so every helper is
//! compiled once per binary. A binary that uses only part of it silences dead code on its
//! `mod support` line.

pub mod cloudtrail_standin;
pub mod control_findings;
pub mod discord_fake;
pub mod dynamo_proxy;
pub mod e2e_bot;
pub mod ec2_world;
pub mod finding_builder;
pub mod fixtures;
pub mod guardduty_standin;
pub mod hanko_process;
pub mod ingest_app;
pub mod moto;
pub mod securityhub_standin;
pub mod sqs_events;
pub mod store_backend;
