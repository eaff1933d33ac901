//! Time as the manager and the stores see it.
//!
//! Everything that compares a deadline with "now" asks a [`Clock`], so tests can move
//! time with a [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

/// A source of the current time (UTC).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;
}

/// A shared clock handle, as stores and the manager hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock. The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use session_core::{Clock, ManualClock};
/// use time::Duration;
///
/// let clock = ManualClock::new(time::macros::datetime!(2030-01-01 0:00 UTC));
/// let other = clock.clone();
/// clock.advance(Duration::hours(2));
/// assert_eq!(other.now(), time::macros::datetime!(2030-01-01 2:00 UTC));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// A clock standing at the current system time.
    pub fn starting_now() -> Self {
        Self::new(OffsetDateTime::now_utc())
    }

    /// Moves the clock by `by` (which may be negative).
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The default clock as a [`SharedClock`].
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}
