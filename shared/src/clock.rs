//! The `Clock` port: time is injected so token expiry, the 90-day refresh-token idle limit and
//! Lambda deadlines are testable without sleeping.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test keeps one handle
/// and gives another to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `now` (backwards too, to test that nothing relies on monotonicity).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.lock() = now;
    }

    /// Moves the clock by `by` (negative moves it back).
    ///
    /// # Panics
    /// If the result is outside the range `DateTime<Utc>` can represent.
    pub fn advance(&self, by: chrono::Duration) {
        *self.lock() += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panicking test thread cannot leave a half-written DateTime behind.
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_stands_still_until_moved() {
        let clock = ManualClock::new(start());
        assert_eq!(clock.now(), start());
        assert_eq!(clock.now(), start());
    }

    #[test]
    fn manual_clock_advances_and_sets() {
        let clock = ManualClock::new(start());
        clock.advance(Duration::days(90));
        assert_eq!(clock.now(), start() + Duration::days(90));
        clock.advance(Duration::seconds(-1));
        assert_eq!(
            clock.now(),
            start() + Duration::days(90) - Duration::seconds(1)
        );
        clock.set(start());
        assert_eq!(clock.now(), start());
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new(start());
        let handed_out: Arc<dyn Clock> = Arc::new(clock.clone());
        clock.advance(Duration::minutes(5));
        assert_eq!(handed_out.now(), start() + Duration::minutes(5));
    }

    #[test]
    fn system_clock_tracks_real_time() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= Utc::now());
    }

    #[test]
    fn arc_of_a_clock_is_a_clock() {
        fn takes_clock(clock: impl Clock) -> DateTime<Utc> {
            clock.now()
        }
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start()));
        assert_eq!(takes_clock(clock), start());
    }
}
