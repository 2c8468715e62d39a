//! Discord: the product's face. A finding becomes a card with buttons; a click becomes a vote.
//!
//! The rendering core is pure and has no serenity type in it:
//!
//! * [`custom_id`]: versioned button and modal ids that name the request and the plan hash, so
//!   a click on a card posted before a restart still finds its request in the store;
//! * [`cards`]: [`cards::Card`], plain data rendered from a finding, its request and the step
//!   records, always within Discord's limits.
//!
//! [`convert`] is the one thin place that turns a card into serenity 0.12 builders. The bot,
//! interactions and slash commands (which do I/O) build on these and hold no rendering logic:
//!
//! * [`bot`]: the serenity client, command registration, routing and answering interactions;
//! * [`interactions`]: what a button or modal does (vote, reject, dry run, revert);
//! * [`outbox`]: the one writer of new messages to the channel, under Discord's rate limit;
//! * [`redact`]: keeps interaction and webhook tokens out of every logged error.
//!
//! Nothing here imports the AWS SDK or sled.

pub mod bot;
pub mod cards;
pub mod commands;
pub mod convert;
pub mod custom_id;
pub mod digest;
pub mod interactions;
pub mod outbox;
pub mod posture_actions;
pub mod redact;
pub mod text;
