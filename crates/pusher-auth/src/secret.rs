//! An app secret that never shows itself: `Debug` and `Display` print
//! `***`, so a configuration or a request printed with `{:?}` does not
//! leak it to a log.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An app secret (or any credential) kept out of `Debug` output. Read it
/// with [`Secret::expose`] where it signs or verifies.
///
/// ```
/// let s = pusher_auth::Secret::new("7ad3773142a6692b25b8");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// assert_eq!(s.expose(), "7ad3773142a6692b25b8");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, compared in constant time (for
    /// bearer tokens and the like: the time taken does not tell how much of
    /// a guess was right).
    ///
    /// ```
    /// let token = pusher_auth::Secret::new("a-long-admin-token");
    /// assert!(token.matches("a-long-admin-token"));
    /// assert!(!token.matches("a-long-admin-tokeN"));
    /// assert!(!token.matches(""));
    /// ```
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        // Lengths differ: no match (the length is not the secret).
        self.0.len() == candidate.len() && bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }

    /// Whether it is empty (a configuration error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}
