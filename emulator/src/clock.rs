//! The emulator's clock: it runs with real time from a chosen start, can be frozen, set and
//! advanced, so tests can cross the 90-day refresh-token limit or an alert's availability delay
//! without sleeping. Every time the emulator reasons about (token expiry, code lifetime, alert
//! visibility) comes from here; only request-rate windows use the real monotonic clock, because
//! clients wait real time on `Retry-After`.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug)]
struct Anchor {
    emulated: DateTime<Utc>,
    real: Instant,
    frozen: bool,
}

/// A controllable clock. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EmuClock {
    anchor: Mutex<Anchor>,
}

impl EmuClock {
    /// A clock that reads `start` now and runs with real time unless `frozen`.
    pub fn new(start: DateTime<Utc>, frozen: bool) -> Self {
        EmuClock {
            anchor: Mutex::new(Anchor {
                emulated: start,
                real: Instant::now(),
                frozen,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Anchor> {
        self.anchor.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(anchor: &Anchor) -> DateTime<Utc> {
        if anchor.frozen {
            anchor.emulated
        } else {
            let elapsed = Duration::from_std(anchor.real.elapsed()).unwrap_or(Duration::zero());
            anchor.emulated + elapsed
        }
    }

    /// The emulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        Self::read(&self.lock())
    }

    /// Whether the clock is frozen.
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    /// Moves the clock forward (or back, for a negative duration) by `by`.
    pub fn advance(&self, by: Duration) {
        let mut a = self.lock();
        let now = Self::read(&a);
        a.emulated = now + by;
        a.real = Instant::now();
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut a = self.lock();
        a.emulated = to;
        a.real = Instant::now();
    }

    /// Freezes (`true`) or releases (`false`) the clock at its current reading.
    pub fn freeze(&self, frozen: bool) {
        let mut a = self.lock();
        let now = Self::read(&a);
        a.emulated = now;
        a.real = Instant::now();
        a.frozen = frozen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let c = EmuClock::new(start, true);
        assert_eq!(c.now(), start);
        c.advance(Duration::days(90));
        assert_eq!(c.now(), start + Duration::days(90));
        c.freeze(false);
        assert!(c.now() >= start + Duration::days(90));
    }
}
