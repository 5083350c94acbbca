//! Channel names and what their prefixes mean.
//!
//! Everything the protocol says about a channel type is derived once, when a
//! name is parsed, and kept in [`ChannelName`]: no other code looks at
//! prefixes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Default maximum channel name length, in characters.
pub const DEFAULT_MAX_CHANNEL_NAME_LEN: usize = 200;

/// The prefix of the reserved per-user channel.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// The kind of a channel, from its name's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// No prefix (or `cache-`): anyone may subscribe.
    Public,
    /// `private-`: subscription needs an auth signature.
    Private,
    /// `private-encrypted-`: private for the server; the payloads are
    /// end-to-end encrypted with a key the server never sees.
    PrivateEncrypted,
    /// `presence-`: private, and the server keeps a member list.
    Presence,
    /// `#server-to-user-<id>`: only a connection signed in as `<id>` may
    /// subscribe.
    ServerToUser,
}

impl ChannelKind {
    /// Whether subscribing needs an auth signature.
    pub fn requires_auth(self) -> bool {
        matches!(
            self,
            Self::Private | Self::PrivateEncrypted | Self::Presence
        )
    }

    /// Whether clients may send `client-` events on the channel.
    pub fn accepts_client_events(self) -> bool {
        matches!(self, Self::Private | Self::Presence)
    }

    /// Whether the server keeps a member list for the channel.
    pub fn is_presence(self) -> bool {
        self == Self::Presence
    }

    /// Whether payloads are end-to-end encrypted.
    pub fn is_encrypted(self) -> bool {
        self == Self::PrivateEncrypted
    }

    /// Whether `subscription_count` applies (every kind except presence, which
    /// has `user_count`, and the per-user channel).
    pub fn has_subscription_count(self) -> bool {
        matches!(self, Self::Public | Self::Private | Self::PrivateEncrypted)
    }
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("channel name is {len} characters long, the limit is {max}")]
    TooLong {
        /// Length of the refused name.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9_\-=@,.;]`.
    #[error(
        "channel name has the invalid character {ch:?} at position {index}; allowed are A-Z a-z 0-9 _ - = @ , . ;"
    )]
    InvalidCharacter {
        /// The first refused character.
        ch: char,
        /// Its position, in characters.
        index: usize,
    },
    /// A name starting with `#` that is not `#server-to-user-<id>`.
    #[error("channel names starting with '#' are reserved; only #server-to-user-<user id> exists")]
    Reserved,
}

/// A validated channel name with its kind.
///
/// Cheap to clone (the text is shared); equality and hashing use the text
/// only, so it can key maps looked up by `&str`.
#[derive(Clone)]
pub struct ChannelName {
    name: Arc<str>,
    kind: ChannelKind,
    cache: bool,
}

const PREFIXES: &[(&str, ChannelKind, bool)] = &[
    (
        "private-encrypted-cache-",
        ChannelKind::PrivateEncrypted,
        true,
    ),
    ("private-encrypted-", ChannelKind::PrivateEncrypted, false),
    ("private-cache-", ChannelKind::Private, true),
    ("private-", ChannelKind::Private, false),
    ("presence-cache-", ChannelKind::Presence, true),
    ("presence-", ChannelKind::Presence, false),
    ("cache-", ChannelKind::Public, true),
];

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

/// Classifies a name by prefix, without validating it.
pub fn classify(name: &str) -> (ChannelKind, bool) {
    if name.starts_with(SERVER_TO_USER_PREFIX) {
        return (ChannelKind::ServerToUser, false);
    }
    PREFIXES
        .iter()
        .find(|(prefix, _, _)| name.starts_with(prefix))
        .map_or((ChannelKind::Public, false), |&(_, kind, cache)| {
            (kind, cache)
        })
}

impl ChannelName {
    /// Parses a name with the default length limit (200).
    pub fn new(name: &str) -> Result<Self, ChannelNameError> {
        Self::with_max_len(name, DEFAULT_MAX_CHANNEL_NAME_LEN)
    }

    /// Parses a name, refusing names longer than `max_len` characters.
    pub fn with_max_len(name: &str, max_len: usize) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        // The allowed set is ASCII, so bytes count characters for valid names;
        // count characters only to report a precise length.
        if name.len() > max_len {
            let len = name.chars().count();
            if len > max_len {
                return Err(ChannelNameError::TooLong { len, max: max_len });
            }
        }
        let (kind, cache) = classify(name);
        if kind == ChannelKind::ServerToUser {
            // The suffix is a sign-in user id, which may be any non-empty
            // string ("auth0|123", "a+b@x.com"): only control characters are
            // refused, so every signed-in user has a reachable channel.
            let id = &name[SERVER_TO_USER_PREFIX.len()..];
            if id.is_empty() {
                return Err(ChannelNameError::Reserved);
            }
            if let Some((index, ch)) = id.chars().enumerate().find(|&(_, c)| c.is_control()) {
                return Err(ChannelNameError::InvalidCharacter {
                    ch,
                    index: index + SERVER_TO_USER_PREFIX.len(),
                });
            }
            return Ok(Self {
                name: Arc::from(name),
                kind,
                cache,
            });
        }
        let checked = (name, 0);
        if let Some((index, ch)) = checked
            .0
            .chars()
            .enumerate()
            .find(|&(_, c)| !allowed_char(c))
        {
            if index == 0 && ch == '#' && checked.1 == 0 {
                return Err(ChannelNameError::Reserved);
            }
            return Err(ChannelNameError::InvalidCharacter {
                ch,
                index: index + checked.1,
            });
        }
        Ok(Self {
            name: Arc::from(name),
            kind,
            cache,
        })
    }

    /// The per-user channel of `user_id`, if the id is a valid name suffix.
    pub fn server_to_user(user_id: &str) -> Result<Self, ChannelNameError> {
        Self::with_max_len(&format!("{SERVER_TO_USER_PREFIX}{user_id}"), usize::MAX)
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The shared text, for callers that keep the name without the kind.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The channel's kind.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Whether the channel keeps its last HTTP-published event (`cache-`,
    /// `private-cache-`, `private-encrypted-cache-`, `presence-cache-`).
    pub fn is_cache(&self) -> bool {
        self.cache
    }

    /// For `#server-to-user-<id>`, the user id.
    pub fn user_id(&self) -> Option<&str> {
        match self.kind {
            ChannelKind::ServerToUser => Some(&self.name[SERVER_TO_USER_PREFIX.len()..]),
            _ => None,
        }
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.name, f)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for ChannelName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ChannelName {}

impl Hash for ChannelName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl std::str::FromStr for ChannelName {
    type Err = ChannelNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelKind::*;

    #[test]
    fn classification_table() {
        let table: &[(&str, ChannelKind, bool)] = &[
            ("my-channel", Public, false),
            ("cache-x", Public, true),
            ("my-cache-x", Public, false),
            ("cache", Public, false),
            ("cachex", Public, false),
            ("private-x", Private, false),
            ("private-", Private, false),
            ("privatex", Public, false),
            ("private", Public, false),
            ("private-cache-x", Private, true),
            ("private-cache", Private, false),
            ("private-encrypted-x", PrivateEncrypted, false),
            ("private-encrypted-", PrivateEncrypted, false),
            ("private-encrypted", Private, false),
            ("private-encryptedx", Private, false),
            ("private-encrypted-cache-x", PrivateEncrypted, true),
            ("private-encrypted-cache", PrivateEncrypted, false),
            ("private-cache-encrypted-x", Private, true),
            ("presence-x", Presence, false),
            ("presence-", Presence, false),
            ("presence", Public, false),
            ("presence-cache-x", Presence, true),
            ("presence-cache", Presence, false),
            ("cache-presence-x", Public, true),
            ("cache-private-x", Public, true),
            ("Private-x", Public, false),
            ("#server-to-user-42", ServerToUser, false),
        ];
        for &(name, kind, cache) in table {
            let c = ChannelName::new(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((c.kind(), c.is_cache()), (kind, cache), "{name}");
            assert_eq!(c.as_str(), name);
        }
    }

    #[test]
    fn kind_rules() {
        assert!(!Public.requires_auth());
        assert!(
            Private.requires_auth() && PrivateEncrypted.requires_auth() && Presence.requires_auth()
        );
        assert!(!ServerToUser.requires_auth());
        assert!(Private.accepts_client_events() && Presence.accepts_client_events());
        assert!(!PrivateEncrypted.accepts_client_events());
        assert!(!Public.accepts_client_events() && !ServerToUser.accepts_client_events());
        assert!(!Presence.has_subscription_count() && !ServerToUser.has_subscription_count());
        assert!(Public.has_subscription_count() && PrivateEncrypted.has_subscription_count());
    }

    #[test]
    fn every_allowed_character() {
        let name = "AZaz09_-=@,.;";
        assert!(ChannelName::new(name).is_ok());
    }

    #[test]
    fn refusals() {
        assert_eq!(ChannelName::new(""), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::new("a b"),
            Err(ChannelNameError::InvalidCharacter { ch: ' ', index: 1 })
        );
        assert_eq!(
            ChannelName::new("a/b"),
            Err(ChannelNameError::InvalidCharacter { ch: '/', index: 1 })
        );
        assert_eq!(
            ChannelName::new("caf\u{e9}"),
            Err(ChannelNameError::InvalidCharacter {
                ch: '\u{e9}',
                index: 3
            })
        );
        assert_eq!(ChannelName::new("#foo"), Err(ChannelNameError::Reserved));
        assert_eq!(
            ChannelName::new("#server-to-user-"),
            Err(ChannelNameError::Reserved)
        );
        // A user id may be any string without control characters.
        assert!(ChannelName::new("#server-to-user-auth0|a#b c").is_ok());
        assert_eq!(
            ChannelName::new("#server-to-user-a\nb"),
            Err(ChannelNameError::InvalidCharacter {
                ch: '\n',
                index: 17
            })
        );
        assert_eq!(
            ChannelName::new("a#"),
            Err(ChannelNameError::InvalidCharacter { ch: '#', index: 1 })
        );
    }

    #[test]
    fn length_limits() {
        let n200 = "a".repeat(200);
        let n201 = "a".repeat(201);
        assert!(ChannelName::new(&n200).is_ok());
        assert_eq!(
            ChannelName::new(&n201),
            Err(ChannelNameError::TooLong { len: 201, max: 200 })
        );
        let n164 = "a".repeat(164);
        let n165 = "a".repeat(165);
        assert!(ChannelName::with_max_len(&n164, 164).is_ok());
        assert_eq!(
            ChannelName::with_max_len(&n165, 164),
            Err(ChannelNameError::TooLong { len: 165, max: 164 })
        );
    }

    #[test]
    fn server_to_user() {
        let c = ChannelName::server_to_user("user-1").unwrap();
        assert_eq!(c.as_str(), "#server-to-user-user-1");
        assert_eq!(c.user_id(), Some("user-1"));
        assert_eq!(c.kind(), ServerToUser);
        assert_eq!(ChannelName::new("private-a").unwrap().user_id(), None);
    }

    #[test]
    fn map_lookup_by_str() {
        let mut set = std::collections::HashSet::new();
        set.insert(ChannelName::new("presence-a").unwrap());
        assert!(set.contains("presence-a"));
    }
}
