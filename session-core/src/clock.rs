//! Time as the manager and the stores see it.
//!
//! Everything that compares a deadline with "now" asks a [`Clock`], so tests can move
//! time with a [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use time::{Duration, OffsetDateTime};

/// A source of the current time (UTC).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;

    /// The current instant in nanoseconds since the Unix epoch (negative before it),
    /// for stores that compare deadlines on every operation: the same instant as
    /// [`now`](Self::now), which the default converts. [`SystemClock`] reads it
    /// without building an `OffsetDateTime`, whose calendar arithmetic cost the
    /// memory store more than its map lookup. An override must agree with `now`.
    fn now_unix_nanos(&self) -> i128 {
        self.now().unix_timestamp_nanos()
    }
}

/// `t + d`, or the last (first) representable instant when that lies beyond it.
/// Deadline arithmetic goes through here, so no lifetime, stored value or clock
/// reading can make it panic.
pub(crate) fn saturating_add(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
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

    fn now_unix_nanos(&self) -> i128 {
        // `Duration::as_nanos` is at most ~1.8e28, far inside i128.
        let nanos = |d: std::time::Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
        match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => nanos(after),
            Err(before) => -nanos(before.duration()),
        }
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
        *t = saturating_add(*t, by);
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_system_clock_reads_nanoseconds_between_two_readings_of_now() {
        let clock = SystemClock;
        let read = || {
            let before = clock.now().unix_timestamp_nanos();
            let nanos = clock.now_unix_nanos();
            let after = clock.now().unix_timestamp_nanos();
            (before, nanos, after)
        };
        // The wall clock may be stepped back (NTP) between two readings; that cannot
        // happen three times in a row.
        let readings: Vec<_> = (0..3).map(|_| read()).collect();
        assert!(
            readings.iter().any(|&(b, n, a)| b <= n && n <= a),
            "{readings:?}"
        );
    }

    #[test]
    fn a_manual_clock_reports_its_own_instant_in_nanoseconds() {
        let at = datetime!(2030-01-01 0:00:00.000_000_123 UTC);
        let clock = ManualClock::new(at);
        assert_eq!(clock.now_unix_nanos(), at.unix_timestamp_nanos());
        clock.set(datetime!(1969-12-31 23:59:59 UTC));
        assert_eq!(clock.now_unix_nanos(), -1_000_000_000);
    }
}
