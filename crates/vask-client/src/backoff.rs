//! Exponential reconnect backoff with jitter.

use std::time::Duration;

use crate::data::random_u64;

/// Delays `min, 2·min, 4·min, ...` up to `max`, each plus up to 25 % random
/// jitter (so clients dropped together do not come back together).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// After a successful connection.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let jitter_permille = random_u64() % 250;
        let jitter = base.mul_f64(jitter_permille as f64 / 1000.0);
        (base + jitter).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(100) && d[0] < Duration::from_millis(126));
        assert!(d[1] >= Duration::from_millis(200) && d[1] < Duration::from_millis(251));
        assert!(d[2] >= Duration::from_millis(400));
        assert_eq!(d[5], Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(126));
    }
}
