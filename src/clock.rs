//! Wall-clock time, injected: what writer leases, commit stamps and retention checks call
//! "now".
//!
//! A [`Lake`](crate::storage::Lake) carries a [`SharedClock`]; everything that judges time
//! against what is stored in that lake (is a lease live, may this writer still commit, is a
//! retired version old enough to delete) asks it. Production uses [`SystemClock`]; a test
//! holds a [`ManualClock`] and moves it, so lease expiry is tested without waiting. Deadlines
//! inside one process (`max_age`, pointer polls) are `tokio::time::Instant`s, not this clock.
//!
//! Invariant: a clock never goes backwards.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of wall-clock time.
pub trait Clock: Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by everything that works on one lake.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until it is moved: it starts at the system time of its creation
/// and advances only by [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at the current system time.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: Mutex::new(Utc::now()),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), t0, "it stands still");
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - t0, chrono::Duration::seconds(90));
    }
}
