//! Plans: `Finding -> Plan`, the ordered containment steps with their exact AWS calls.
//!
//! Two parts, with no import loop between them and [`crate::playbooks`]:
//! [`vocabulary`] (what a plan is made of: [`RiskClass`], [`Action`], [`Target`], [`Step`],
//! [`Plan`] and its hash; imports nothing of hanko) and [`routing`] (which plan a finding
//! gets: [`plan`], the step builders; imports [`crate::finding`] and [`crate::playbooks`],
//! which itself imports only the vocabulary). Both are re-exported here, so `crate::plan::X`
//! names either.

pub mod routing;
pub mod vocabulary;

pub use routing::*;
pub use vocabulary::*;
