//! # Mahnwerk clock
//!
//! Every business date a service acts on (a letter's date, a deadline, "is this case due
//! today?") comes from one [`Clock`], never from `Utc::now()` scattered through the code. In
//! production that is the [`SystemClock`]; tests and the demo use a [`SimulatedClock`] that only
//! moves when told to (`AdvanceClock`, `mahnwerk clock advance --days N`), so a 120-day dunning
//! run takes seconds.
//!
//! # Layout
//! - [`Clock`]: `now()`/`today()` (UTC), plus [`Clock::simulated`] so a caller can refuse to
//!   advance a production clock.
//! - [`SystemClock`], [`SimulatedClock`]: cheap to clone (the simulated one shares its time
//!   through an `Arc`, so every clone sees every advance).
//!
//! # Invariants
//! - No dependency beyond `chrono`; no IO.
//! - A [`SimulatedClock`] never goes backwards.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::sync::{Arc, Mutex};

/// Where dates come from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// The current business date (UTC).
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// The simulated clock behind this one, if it is simulated; `None` for the system clock.
    fn simulated(&self) -> Option<&SimulatedClock> {
        None
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until advanced. Clones share the time.
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl SimulatedClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock standing at midnight (UTC) of `date`.
    pub fn starting_on(date: NaiveDate) -> Self {
        Self::new(date.and_time(chrono::NaiveTime::MIN).and_utc())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A poisoned lock still holds a valid instant: the clock stays usable.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Move forward by `by` (a negative duration is ignored: the clock never goes back).
    /// Returns the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut now = self.lock();
        if by > Duration::zero() {
            *now += by;
        }
        *now
    }

    /// Move forward to `to` if it is later than now. Returns the new time.
    pub fn advance_to(&self, to: DateTime<Utc>) -> DateTime<Utc> {
        let mut now = self.lock();
        if to > *now {
            *now = to;
        }
        *now
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }

    fn simulated(&self) -> Option<&SimulatedClock> {
        Some(self)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn today(&self) -> NaiveDate {
        (**self).today()
    }
    fn simulated(&self) -> Option<&SimulatedClock> {
        (**self).simulated()
    }
}

/// A shareable clock, as services hold it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_simulated_clock_moves_only_forward_and_clones_share_it() {
        let clock = SimulatedClock::starting_on(d("2026-01-30"));
        let other = clock.clone();
        assert_eq!(clock.today(), d("2026-01-30"));
        clock.advance(Duration::days(3));
        assert_eq!(other.today(), d("2026-02-02"));
        clock.advance(Duration::days(-10));
        assert_eq!(other.today(), d("2026-02-02"));
        other.advance_to(d("2026-01-01").and_time(chrono::NaiveTime::MIN).and_utc());
        assert_eq!(clock.today(), d("2026-02-02"));
        let shared: SharedClock = Arc::new(clock);
        assert!(shared.simulated().is_some());
        assert!(SystemClock.simulated().is_none());
    }
}
