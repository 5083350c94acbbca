//! WebSocket frames: what clients send ([`ClientFrame`]) and what the server
//! sends ([`ServerFrame`]), each with a decoder and an encoder.
//!
//! Every frame is a JSON object `{"event", "channel"?, "data"?, "user_id"?}`.
//! Server frames carry `data` as a JSON-encoded string ("double encoding"),
//! except `pusher:error`, whose `data` is an object.

mod client;
mod server;

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

pub use client::{ClientFrame, Subscribe};
pub use server::{
    ChannelEvent, ServerFrame, SubscriptionError, SubscriptionErrorKind, WatchlistEvent,
    WatchlistEventName,
};

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a JSON object of the frame's shape.
    #[error("invalid JSON frame: {0}")]
    Json(String),
    /// A field the event requires is absent.
    #[error("{event} is missing \"{field}\"")]
    MissingField {
        /// The frame's event name.
        event: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field has the wrong type or value.
    #[error("{event} has an invalid \"{field}\": {reason}")]
    InvalidField {
        /// The frame's event name.
        event: String,
        /// The invalid field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The event name is not one this side of the protocol accepts. The
    /// name is kept as an [`excerpt`](crate::excerpt), already quoted.
    #[error("unsupported event {0}")]
    UnsupportedEvent(String),
}

/// The outer object every frame shares.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    // `null` is data too: keep it as raw text rather than as "absent".
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_id: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue as serde::Deserialize<'de>>::deserialize(d).map(Some)
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))
    }

    fn missing(&self, field: &'static str) -> DecodeError {
        DecodeError::MissingField {
            event: self.event.to_string(),
            field,
        }
    }

    fn invalid(&self, field: &'static str, reason: impl ToString) -> DecodeError {
        DecodeError::InvalidField {
            event: self.event.to_string(),
            field,
            reason: reason.to_string(),
        }
    }

    fn channel(&self) -> Result<String, DecodeError> {
        self.channel
            .as_deref()
            .map(str::to_owned)
            .ok_or_else(|| self.missing("channel"))
    }

    /// `data` as `T`, whether it arrived as an object or as a string holding
    /// the object's JSON.
    fn data_as<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let raw = self.data.ok_or_else(|| self.missing("data"))?;
        parse_maybe_string(raw).map_err(|e| self.invalid("data", e))
    }
}

/// Parses a value that may be JSON, or a JSON string containing JSON.
fn parse_maybe_string<T: DeserializeOwned>(raw: &RawValue) -> Result<T, serde_json::Error> {
    if raw.get().starts_with('"') {
        let inner: String = serde_json::from_str(raw.get())?;
        serde_json::from_str(&inner)
    } else {
        serde_json::from_str(raw.get())
    }
}

/// A string field that may also arrive as a number (user ids).
pub(crate) fn string_or_number(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str(text).ok()
    } else if serde_json::from_str::<serde_json::Number>(text).is_ok() {
        Some(text.to_owned())
    } else {
        None
    }
}

/// The outer object, for encoding.
#[derive(serde::Serialize)]
struct OutFrame<'a, D> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

impl<D: serde::Serialize> OutFrame<'_, D> {
    fn to_vec(&self) -> Vec<u8> {
        // Every field is a string, a JSON value or a derived struct of them:
        // serialization into memory cannot fail.
        serde_json::to_vec(self).expect("frames always serialize")
    }
}

/// Serializes a value to a JSON string (the inner text of a double-encoded
/// `data` field).
fn to_json_string<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("frame data always serializes")
}
