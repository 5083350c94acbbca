//! Event name rules.

/// Default maximum event name length, in characters.
pub const DEFAULT_MAX_EVENT_NAME_LEN: usize = 200;

/// Prefixes only the service may use.
pub const RESERVED_EVENT_PREFIXES: [&str; 2] = ["pusher:", "pusher_internal:"];

/// Characters of client input an error message quotes at most.
const EXCERPT_CHARS: usize = 64;

/// Client input as an error message may quote it: Rust-quoted, and cut to a
/// few dozen characters (with the full length in bytes) so that a peer
/// sending a 60 KB name does not get 60 KB back.
///
/// ```
/// assert_eq!(pusher_proto::excerpt("my-event"), r#""my-event""#);
/// let long = "x".repeat(70_000);
/// assert!(pusher_proto::excerpt(&long).ends_with(r#"..." (70000 bytes)"#));
/// ```
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!(
            "{:?} ({} bytes)",
            format!("{}...", &text[..end]),
            text.len()
        ),
    }
}

/// Why an event name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventNameError {
    /// The name is empty.
    #[error("event name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("event name is {len} characters long, the limit is {max}")]
    TooLong {
        /// Length of the refused name.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The name starts with `pusher:` or `pusher_internal:`.
    #[error("event names starting with {0:?} are reserved for the service")]
    Reserved(&'static str),
    /// A client event whose name does not start with `client-`.
    #[error("client event names must start with \"client-\"")]
    NotClientEvent,
}

fn check_len(name: &str, max_len: usize) -> Result<(), EventNameError> {
    if name.is_empty() {
        return Err(EventNameError::Empty);
    }
    let len = name.chars().count();
    if len > max_len {
        return Err(EventNameError::TooLong { len, max: max_len });
    }
    Ok(())
}

/// Checks the name of an event published through the HTTP API.
pub fn validate_event_name(name: &str, max_len: usize) -> Result<(), EventNameError> {
    check_len(name, max_len)?;
    if let Some(prefix) = RESERVED_EVENT_PREFIXES
        .iter()
        .find(|p| name.starts_with(*p))
    {
        return Err(EventNameError::Reserved(prefix));
    }
    Ok(())
}

/// Checks the name of a client event.
pub fn validate_client_event_name(name: &str, max_len: usize) -> Result<(), EventNameError> {
    check_len(name, max_len)?;
    if !name.starts_with(crate::CLIENT_EVENT_PREFIX) {
        return Err(EventNameError::NotClientEvent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert_eq!(validate_event_name("my-event", 200), Ok(()));
        assert_eq!(validate_event_name("", 200), Err(EventNameError::Empty));
        assert_eq!(validate_event_name(&"e".repeat(200), 200), Ok(()));
        assert_eq!(
            validate_event_name(&"e".repeat(201), 200),
            Err(EventNameError::TooLong { len: 201, max: 200 })
        );
        assert_eq!(
            validate_event_name("pusher:x", 200),
            Err(EventNameError::Reserved("pusher:"))
        );
        assert_eq!(
            validate_event_name("pusher_internal:x", 200),
            Err(EventNameError::Reserved("pusher_internal:"))
        );
        assert_eq!(validate_event_name("pusher-x", 200), Ok(()));
    }

    #[test]
    fn client_event_names() {
        assert_eq!(validate_client_event_name("client-typing", 200), Ok(()));
        assert_eq!(
            validate_client_event_name("typing", 200),
            Err(EventNameError::NotClientEvent)
        );
        assert!(validate_client_event_name(&format!("client-{}", "x".repeat(194)), 200).is_err());
    }
}
