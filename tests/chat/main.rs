//! End-to-end tests through Discord: the real serenity client against the local Discord fake,
//! AWS in moto. The bot, its commands and cards, posture, lifecycle, accounts, the audit anchor,
//! Discord's rate limit, Discord's HTTP interactions endpoint, and the fake's own self-test.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod account;
mod audit_anchor;
mod commands_handlers;
mod defects;
mod discord_fake_selftest;
mod e2e_discord;
mod e2e_investigate;
mod e2e_posture;
mod http_interactions;
mod lifecycle;
mod notify;
mod posture_digest;
mod rate_limit;
