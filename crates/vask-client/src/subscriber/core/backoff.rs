//! Exponential reconnect backoff with jitter.

use std::time::Duration;

/// Delays `min, 2·min, 4·min, ...` up to `max`, each plus up to 25 % jitter
/// (so clients dropped together do not come back together).
///
/// The jitter comes from a seeded generator: the driver seeds it from the
/// operating system, tests with a constant, and the delays are then the
/// same on every run.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    random: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
            random: seed,
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
        let jitter_permille = self.next_random() % 250;
        let jitter = base.mul_f64(jitter_permille as f64 / 1000.0);
        (base + jitter).min(self.max)
    }

    /// SplitMix64: small, full-period, and plenty to spread reconnects (it
    /// is not a secret).
    fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 7);
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(100) && d[0] < Duration::from_millis(126));
        assert!(d[1] >= Duration::from_millis(200) && d[1] < Duration::from_millis(251));
        assert!(d[2] >= Duration::from_millis(400));
        assert_eq!(d[5], Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(126));
    }

    #[test]
    fn the_seed_decides_the_jitter() {
        let delays = |seed| {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), seed);
            (0..4).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(1), delays(1));
        assert_ne!(delays(1), delays(2));
    }
}
