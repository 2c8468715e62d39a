//! hanko's release/debug binary run as an operator would (a child process, the Discord fake,
//! moto, libfaketime for the wall clock).

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod e2e_binary;
mod replicas;
mod two_replicas;
