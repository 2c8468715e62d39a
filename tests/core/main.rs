//! Integration tests that need nothing outside the process: the fixtures parse, the plans
//! they route to, the slash command definitions, the store.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod commands;
mod fixtures_parse;
mod plan_fixtures;
mod store;
