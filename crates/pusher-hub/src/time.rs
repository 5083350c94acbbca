//! The hub's time as a typed value: a moment is a [`Millis`], an interval a
//! [`Duration`].

use std::ops::{Add, Sub};
use std::time::Duration;

/// A moment on the hub's clock: milliseconds since an origin the driver
/// picks (its start, say) and keeps. The hub never reads a clock: whatever
/// depends on time takes `now: Millis`, and timers are asked for as
/// `Millis` deadlines.
///
/// ```
/// use std::time::Duration;
/// use pusher_hub::Millis;
///
/// let start = Millis::from_millis(1_000);
/// let later = start + Duration::from_secs(2);
/// assert_eq!(later.as_millis(), 3_000);
/// assert_eq!(later - start, Duration::from_secs(2));
/// assert_eq!(start - later, Duration::ZERO); // never negative
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(u64);

impl Millis {
    /// The origin.
    pub const ZERO: Self = Self(0);

    /// The moment `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

/// The moment this long after the origin (e.g. `Instant::elapsed` of the
/// driver's start).
impl From<Duration> for Millis {
    fn from(d: Duration) -> Self {
        Self(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A later moment (saturating).
impl Add<Duration> for Millis {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

/// The time from `earlier` to `self`; zero when `earlier` is later.
impl Sub for Millis {
    type Output = Duration;

    fn sub(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
