//! The Pusher Channels protocol as data.
//!
//! Client and server WebSocket frames, channel names and their kinds, the
//! protocol's error and close codes, socket ids, presence and sign-in user
//! data, HTTP API bodies and webhook bodies.
//!
//! Contract: no IO, no clock, no async runtime; every function is
//! deterministic given its inputs. Decoding untrusted bytes never panics: it
//! returns a value or an error.
//!
//! ```
//! use pusher_proto::{ChannelEvent, ChannelKind, ChannelName, ClientFrame};
//!
//! let frame = ClientFrame::decode(
//!     br#"{"event":"pusher:subscribe","data":{"auth":"","channel":"cache-news"}}"#,
//! )
//! .unwrap();
//! let ClientFrame::Subscribe(sub) = frame else { unreachable!() };
//! let channel = ChannelName::new(&sub.channel).unwrap();
//! assert_eq!(channel.kind(), ChannelKind::Public);
//! assert!(channel.is_cache());
//!
//! // A published event is encoded once and the bytes shared by every recipient.
//! let bytes = ChannelEvent::encode_parts("update", "cache-news", r#"{"n":1}"#, None);
//! assert_eq!(&bytes[..], br#"{"event":"update","channel":"cache-news","data":"{\"n\":1}"}"#);
//! ```

mod channel;
mod codes;
mod event;
mod frame;
mod handshake;
pub mod http;
mod member;
mod raw;
mod socket_id;
pub mod webhook;

pub use channel::{
    ChannelKind, ChannelName, ChannelNameError, DEFAULT_MAX_CHANNEL_NAME_LEN,
    SERVER_TO_USER_PREFIX, classify,
};
pub use codes::{ErrorCode, ReconnectClass};
pub use event::{
    DEFAULT_MAX_EVENT_NAME_LEN, EventNameError, RESERVED_EVENT_PREFIXES, excerpt,
    validate_client_event_name, validate_event_name,
};
pub use frame::{
    ChannelEvent, ClientFrame, DecodeError, ServerFrame, Subscribe, SubscriptionError,
    SubscriptionErrorKind, WatchlistEvent, WatchlistEventName,
};
pub use handshake::{HandshakeRefusal, Upgrade, UpgradeRequest, check_upgrade};
pub use member::{ChannelData, Member, UserData, UserDataError};
pub use raw::RawJson;
pub use socket_id::{SocketId, SocketIdError, SocketIdGenerator};

/// The event name prefix of client events.
pub const CLIENT_EVENT_PREFIX: &str = "client-";
