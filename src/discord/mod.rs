//! Discord: the chat transport. A finding becomes a card with buttons; a click, a modal or a
//! slash command becomes a call to the application layer ([`crate::actions`]), whose outcome is
//! rendered back. Nothing here decides anything about requests.
//!
//! Pure (no serenity type, no I/O):
//!
//! * [`custom_id`]: versioned button and modal ids that name the request and the plan hash, so
//!   a click on a card posted before a restart still finds its request in the store;
//! * [`cards`]: [`cards::Card`], plain data rendered from a finding, its request and the step
//!   records (request, posture, finding and digest cards), always within Discord's limits;
//! * [`redact`]: keeps interaction and webhook tokens out of every logged error, and the one
//!   error-id scheme ([`crate::util::error_id`]);
//! * [`signature`]: Discord's Ed25519 signature on a POST to `/interactions`, and the age of
//!   its timestamp.
//!
//! Serenity-facing:
//!
//! * [`convert`]: the one thin place that turns a card into serenity 0.12 builders;
//! * [`bot`]: the serenity client, command registration, routing and answering interactions;
//! * [`answer`]: how an interaction is answered, over the gateway (the callback POST) or over
//!   HTTP (the response body, a deferral when the handler is slow);
//! * [`endpoint`]: `POST /interactions`, Discord's HTTP interactions endpoint (with
//!   `discord.interactions = "http"`): verified, parsed into serenity's `Interaction`, handed to
//!   the same handler as the gateway's;
//! * [`interactions`]: the card buttons and the reject modal, translated into
//!   [`crate::actions::vote`] and [`crate::actions::revert`];
//! * [`posture_actions`]: the posture card's buttons and modals (suppress, lift, acknowledge,
//!   remediate);
//! * [`outbox`]: the one writer of new messages to the channel, under Discord's rate limit;
//! * [`ratelimit`]: creating a message while seeing a 429's headers, and reading how long
//!   Discord asked to wait (serenity 0.12 drops both);
//! * [`digest`]: the daily posture score digest and score-drop alerts.
//!
//! Serenity-free handlers with I/O through the application layer and the store:
//!
//! * [`commands`]: the slash commands, one handler per file, and the `CommandInvoked` audit
//!   record of each invocation.
//!
//! May use the application layer, the app, the core types, the store's typed operations and
//! serenity. No file here imports the AWS SDK, `crate::run`, or sled.

pub mod answer;
pub mod bot;
pub mod cards;
pub mod commands;
pub mod convert;
pub mod custom_id;
pub mod digest;
pub mod endpoint;
pub mod interactions;
pub mod outbox;
pub mod posture_actions;
pub mod ratelimit;
pub mod redact;
pub mod signature;
pub mod text;
