//! Time as the engine sees it: a monotonic nanosecond count handed in by the
//! caller (the worker reads the OS's monotonic clock, tests advance a
//! virtual clock). Never read from the OS in the engine.

use std::ops::{Add, AddAssign, Sub};

pub use std::time::Duration;

/// A point in engine time: nanoseconds since an arbitrary epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }

    pub const fn from_secs(s: u64) -> Instant {
        Instant(s * 1_000_000_000)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Time since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(1);
        assert_eq!((t + Duration::from_millis(500)).as_millis(), 1500);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Duration::from_secs(5), Instant::ZERO);
    }
}
