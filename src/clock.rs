//! The one wall clock: every "now" that decides something (expiry, escalation, digest days,
//! audit timestamps) is read here.
//!
//! Production reads the system clock on every call, never a value cached at start-up, so an
//! operator (or an end-to-end check) that moves the system clock moves hanko with it. Tests
//! that cannot move the system clock shift this one instead: [`Clock::shift`] adds an offset
//! that every clone sees.
//!
//! Owns no policy; imports nothing of hanko's.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// The system clock plus an offset that tests may move. Cheap to clone; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock, unshifted.
    pub fn system() -> Self {
        Clock::default()
    }

    /// Now: the system clock plus the offset.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        Utc::now() + Duration::milliseconds(offset)
    }

    /// Moves this clock (and every clone of it) by `by`, forward or back. For tests.
    pub fn shift(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_moves_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.shift(Duration::hours(5));
        let after = other.now();
        assert!(after - before >= Duration::hours(5));
        assert!(after - before < Duration::hours(5) + Duration::seconds(60));
    }
}
