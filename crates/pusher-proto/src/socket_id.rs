//! Socket ids: `<u64>.<u64>`, unique per connection.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's id, `\d+\.\d+` on the wire.
///
/// Stored as two integers (16 bytes, `Copy`) and formatted on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    high: u64,
    low: u64,
}

/// Why a string is not a socket id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid socket_id {0:?}: expected two unsigned integers separated by a dot, like 1234.5678"
)]
pub struct SocketIdError(pub String);

impl SocketId {
    /// A socket id from its two parts.
    pub const fn new(high: u64, low: u64) -> Self {
        Self { high, low }
    }

    /// The part before the dot.
    pub const fn high(self) -> u64 {
        self.high
    }

    /// The part after the dot.
    pub const fn low(self) -> u64 {
        self.low
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.high, self.low)
    }
}

fn parse_part(s: &str) -> Option<u64> {
    // `u64::from_str` accepts a leading '+'; the wire format does not.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for SocketId {
    type Err = SocketIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SocketIdError(s.chars().take(64).collect());
        let (high, low) = s.split_once('.').ok_or_else(err)?;
        Ok(Self {
            high: parse_part(high).ok_or_else(err)?,
            low: parse_part(low).ok_or_else(err)?,
        })
    }
}

impl serde::Serialize for SocketId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SocketId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A bijection on `u64` (the splitmix64 finalizer): distinct inputs give
/// distinct outputs, so a counter run through it never repeats.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hands out socket ids that never repeat within one generator.
///
/// The seed is an input (the hub has no randomness of its own): the server
/// seeds it from the OS so that ids differ between processes and nodes; tests
/// seed it with a constant and get the same ids every run. The first part is
/// fixed per generator (at most ten digits), the second is a keyed
/// permutation of a counter, so ids do not reveal how many connections came
/// before.
#[derive(Debug)]
pub struct SocketIdGenerator {
    high: u64,
    key: u64,
    counter: AtomicU64,
}

impl SocketIdGenerator {
    /// A generator whose ids are determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            high: mix(seed) % 10_000_000_000,
            key: mix(seed ^ 0x6a09_e667_f3bc_c908),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id. Never returns the same id twice (for 2^64 calls).
    pub fn next_id(&self) -> SocketId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        SocketId {
            high: self.high,
            low: mix(n.wrapping_add(self.key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_format() {
        let id: SocketId = "1234.5678".parse().unwrap();
        assert_eq!(id, SocketId::new(1234, 5678));
        assert_eq!(id.to_string(), "1234.5678");
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1",
            "1.2.3",
            "a.1",
            "+1.2",
            "1.-2",
            "1 .2",
            "18446744073709551616.1",
        ] {
            assert!(bad.parse::<SocketId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_as_string() {
        let id = SocketId::new(1, 2);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"1.2\"");
        assert_eq!(serde_json::from_str::<SocketId>("\"1.2\"").unwrap(), id);
        assert!(serde_json::from_str::<SocketId>("\"x\"").is_err());
    }

    #[test]
    fn generator_does_not_repeat_and_is_seeded() {
        let g = SocketIdGenerator::new(7);
        let ids: Vec<_> = (0..10_000).map(|_| g.next_id()).collect();
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        let again = SocketIdGenerator::new(7);
        assert_eq!(again.next_id(), ids[0]);
        assert_ne!(SocketIdGenerator::new(8).next_id(), ids[0]);
        for id in &ids[..10] {
            let s = id.to_string();
            assert_eq!(s.parse::<SocketId>().unwrap(), *id);
            assert!(id.high() < 10_000_000_000);
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(h: u64, l: u64) {
            let id = SocketId::new(h, l);
            prop_assert_eq!(id.to_string().parse::<SocketId>().unwrap(), id);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<SocketId>();
        }
    }
}
