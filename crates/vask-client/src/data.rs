//! Event data as text: what the publisher sends and client events carry.

use serde::Serialize;

/// The text of an event's `data`, as the Pusher server libraries make it: a
/// string is sent unchanged (already-encoded JSON stays as it is), anything
/// else is JSON-encoded.
///
/// ```
/// # use vask_client::event_data;
/// assert_eq!(event_data("hello").unwrap(), "hello");
/// assert_eq!(event_data(r#"{"a":1}"#).unwrap(), r#"{"a":1}"#);
/// assert_eq!(event_data(&serde_json::json!({"a": 1})).unwrap(), r#"{"a":1}"#);
/// assert_eq!(event_data(&42).unwrap(), "42");
/// ```
///
/// # Errors
/// When `data`'s `Serialize` implementation fails.
pub fn event_data<D: Serialize + ?Sized>(data: &D) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(data)?;
    if json.starts_with('"') {
        serde_json::from_str(&json)
    } else {
        Ok(json)
    }
}

/// 24 bytes from the operating system's CSPRNG, for secretbox nonces.
pub(crate) fn random_nonce() -> Result<[u8; 24], String> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|e| format!("no random source: {e}"))?;
    Ok(nonce)
}

/// A random `u64` (the seed of the reconnect jitter).
pub(crate) fn random_u64() -> u64 {
    // Jitter only spreads reconnects: without a random source, no jitter.
    getrandom::u64().unwrap_or(0)
}
