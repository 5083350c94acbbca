//! One error enum per failure domain.

/// Why a channel authorization, a user authentication or a webhook signature was refused.
///
/// The messages are safe to show to the peer: they never contain the secret or the expected
/// signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The auth string is not of the form `key:signature` (no colon), or a webhook signature is
    /// not 64 hex digits.
    #[error("malformed auth signature: expected `key:signature` with a hex HMAC-SHA256")]
    Malformed,
    /// The key before the colon is not the app's key.
    #[error("invalid key in auth signature")]
    WrongKey,
    /// The signature does not match what the app's secret gives for this request.
    #[error("invalid signature")]
    BadSignature,
}

/// Why a signed HTTP API request was refused. Each message names the check that failed and is
/// suitable for the `error` field of a 401 (or, for [`HttpAuthError::MalformedQuery`], 400)
/// JSON body; see [`HttpAuthError::status_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpAuthError {
    /// A required query parameter is absent: `auth_key`, `auth_timestamp`, `auth_version`,
    /// `auth_signature`, or `body_md5` when the body is not empty.
    #[error("missing query parameter {0}")]
    MissingParam(&'static str),
    /// `auth_key` is not the key of the app named in the path.
    #[error("Unknown auth_key")]
    WrongKey,
    /// `auth_version` is not `1.0`.
    #[error("unsupported auth_version: only 1.0 is supported")]
    BadVersion,
    /// `auth_timestamp` is not a whole number of seconds.
    #[error("invalid auth_timestamp: expected unix time in seconds")]
    InvalidTimestamp,
    /// `auth_timestamp` is further than the allowed skew from the server's clock.
    #[error(
        "Timestamp expired: Given timestamp ({timestamp}) not within {max_skew_secs}s of server time ({now})"
    )]
    TimestampOutOfWindow {
        /// The `auth_timestamp` the request carried.
        timestamp: u64,
        /// The server's time when it checked, unix seconds.
        now: u64,
        /// The allowed difference in seconds, either way.
        max_skew_secs: u64,
    },
    /// `body_md5` is not the hex MD5 of the body received.
    #[error("body_md5 does not match the MD5 of the request body")]
    BodyMd5Mismatch,
    /// `auth_signature` is not the HMAC-SHA256 of the request under the app's secret.
    #[error("Invalid signature: auth_signature does not match the request")]
    BadSignature,
    /// The query string cannot be decoded (bad percent-escape, not UTF-8) or repeats a parameter.
    #[error("malformed query string (invalid percent-encoding or repeated parameter)")]
    MalformedQuery,
}

impl HttpAuthError {
    /// The HTTP status a server answers this refusal with: 400 for a query that cannot be
    /// parsed, 401 for every failed authentication check.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            Self::MalformedQuery => 400,
            _ => 401,
        }
    }
}

/// Why an encryption master key, a shared secret or an encrypted payload was refused.
#[cfg(feature = "encryption")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionError {
    /// A key, nonce or ciphertext is not valid base64.
    #[error("invalid base64 in {0}")]
    Base64(&'static str),
    /// A master key or shared secret does not decode to 32 bytes.
    #[error("encryption key must be 32 bytes, got {0}")]
    KeyLength(usize),
    /// The nonce does not decode to 24 bytes.
    #[error("nonce must be 24 bytes, got {0}")]
    NonceLength(usize),
    /// The ciphertext is shorter than the 16-byte authentication tag.
    #[error("ciphertext is shorter than its 16-byte authentication tag")]
    CiphertextTooShort,
    /// Authentication failed: wrong key (or channel), or the payload was altered.
    #[error("decryption failed: wrong key or tampered payload")]
    DecryptionFailed,
    /// The event data is not a JSON object `{"nonce":"...","ciphertext":"..."}`.
    #[error("encrypted event data is not {{\"nonce\":...,\"ciphertext\":...}} JSON")]
    InvalidPayloadJson,
}
