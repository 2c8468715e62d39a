//! The expiry sweep now lives in the application layer ([`crate::actions::expire`]); this
//! module keeps the `crate::expiry` paths working.

pub use crate::actions::expire::{sweep, sweep_now, SWEEP_INTERVAL};
