//! Frames the server sends to clients.

use std::collections::HashMap;

use bytes::Bytes;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::{DecodeError, Envelope, OutFrame, string_or_number, to_json_string};
use crate::{ErrorCode, Member, RawJson, SocketId};

/// The `type` of a `pusher:subscription_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriptionErrorKind {
    /// Missing or wrong auth, or a channel the connection may not join.
    AuthError,
    /// A limit was reached (members, user_info size, user_id length).
    LimitReached,
    /// The channel name or `channel_data` is malformed.
    InvalidChannel,
}

/// `pusher:subscription_error` data: `{"type","error","status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionError {
    /// What kind of refusal.
    #[serde(rename = "type")]
    pub kind: SubscriptionErrorKind,
    /// A human-readable reason.
    pub error: String,
    /// An HTTP-like status: 400, 401, 403 or 413.
    pub status: u16,
}

/// Online or offline, in `pusher_internal:watchlist_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchlistEventName {
    /// The users are signed in on at least one connection.
    Online,
    /// The users have no signed-in connection left.
    Offline,
}

/// One entry of `pusher_internal:watchlist_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchlistEvent {
    /// Online or offline.
    pub name: WatchlistEventName,
    /// The users whose status is `name`.
    pub user_ids: Vec<String>,
}

/// An event on a channel: published through the HTTP API or a client event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEvent {
    /// The event name.
    pub event: String,
    /// The channel.
    pub channel: String,
    /// The data text (sent as a JSON string).
    pub data: String,
    /// For client events on presence channels: the sender's user id.
    pub user_id: Option<String>,
}

impl ChannelEvent {
    /// Encodes a channel event from borrowed parts: the publish path encodes
    /// once and shares the bytes with every recipient.
    pub fn encode_parts(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> Bytes {
        Bytes::from(
            OutFrame {
                event,
                channel: Some(channel),
                data: Some(data),
                user_id,
            }
            .to_vec(),
        )
    }

    /// Encodes the event.
    pub fn encode(&self) -> Bytes {
        Self::encode_parts(
            &self.event,
            &self.channel,
            &self.data,
            self.user_id.as_deref(),
        )
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerFrame {
    /// The first frame of every connection.
    ConnectionEstablished {
        /// The connection's id.
        socket_id: SocketId,
        /// Seconds of silence after which the client should ping.
        activity_timeout: u32,
    },
    /// `pusher:ping`: the client answers `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to a client ping.
    Pong,
    /// `pusher:error`, data `{"code","message"}` as an object.
    Error {
        /// The code, or `None` for errors without one.
        code: Option<u16>,
        /// A human-readable message.
        message: String,
    },
    /// `pusher_internal:subscription_succeeded` for a non-presence channel.
    SubscriptionSucceeded {
        /// The channel joined.
        channel: String,
    },
    /// `pusher_internal:subscription_succeeded` for a presence channel, with
    /// the member list.
    PresenceSubscriptionSucceeded {
        /// The channel joined.
        channel: String,
        /// Distinct members, the joining user included.
        members: Vec<Member>,
    },
    /// `pusher:subscription_error`.
    SubscriptionError {
        /// The channel refused.
        channel: String,
        /// Why.
        error: SubscriptionError,
    },
    /// `pusher_internal:member_added`.
    MemberAdded {
        /// The presence channel.
        channel: String,
        /// The member who joined.
        member: Member,
    },
    /// `pusher_internal:member_removed`.
    MemberRemoved {
        /// The presence channel.
        channel: String,
        /// The user who left.
        user_id: String,
    },
    /// `pusher:cache_miss`: a cache channel had nothing cached.
    CacheMiss {
        /// The cache channel.
        channel: String,
    },
    /// `pusher:signin_success`, echoing the signed `user_data`.
    SigninSuccess {
        /// The exact `user_data` string.
        user_data: String,
    },
    /// `pusher_internal:watchlist_events`.
    WatchlistEvents {
        /// Status changes, in order.
        events: Vec<WatchlistEvent>,
    },
    /// `pusher_internal:subscription_count`.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// Its number of subscriptions.
        count: u64,
    },
    /// An event on a channel.
    ChannelEvent(ChannelEvent),
}

#[derive(Serialize, Deserialize)]
struct Established {
    socket_id: SocketId,
    activity_timeout: u32,
}

#[derive(Serialize, Deserialize)]
struct ErrorData {
    code: Option<u16>,
    message: String,
}

#[derive(Serialize)]
struct PresenceOut<'a> {
    presence: PresenceInner<'a>,
}

#[derive(Serialize)]
struct PresenceInner<'a> {
    ids: Vec<&'a str>,
    hash: Hash<'a>,
    count: usize,
}

struct Hash<'a>(&'a [Member]);

impl Serialize for Hash<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for m in self.0 {
            map.serialize_entry(&m.user_id, &m.user_info)?;
        }
        map.end()
    }
}

#[derive(Deserialize)]
struct SucceededIn {
    #[serde(default)]
    presence: Option<PresenceInnerIn>,
}

#[derive(Deserialize)]
struct PresenceInnerIn {
    ids: Vec<Box<RawValue>>,
    #[serde(default)]
    hash: HashMap<String, Option<RawJson>>,
}

#[derive(Serialize)]
struct MemberOut<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_info: Option<&'a RawJson>,
}

/// A member as the protocol writes it: `{"user_id", "user_info"?}` (the
/// data of `pusher_internal:member_added`).
impl Serialize for Member {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MemberOut {
            user_id: &self.user_id,
            user_info: self.user_info.as_ref(),
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
struct MemberIn {
    user_id: Box<RawValue>,
    #[serde(default)]
    user_info: Option<RawJson>,
}

#[derive(Serialize, Deserialize)]
struct SigninData {
    user_data: String,
}

#[derive(Serialize, Deserialize)]
struct WatchlistData {
    events: Vec<WatchlistEvent>,
}

#[derive(Serialize, Deserialize)]
struct CountData {
    subscription_count: u64,
}

const EMPTY: &str = "{}";

impl ServerFrame {
    /// A `pusher:error` frame for a protocol code, with its message.
    pub fn error(code: ErrorCode) -> Self {
        Self::Error {
            code: Some(code.code()),
            message: code.message().to_owned(),
        }
    }

    /// A `pusher:error` frame for a protocol code, with a custom message.
    pub fn error_with(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code: Some(code.code()),
            message: message.into(),
        }
    }

    /// The event name this frame is sent under.
    pub fn event_name(&self) -> &str {
        match self {
            Self::ConnectionEstablished { .. } => "pusher:connection_established",
            Self::Ping => "pusher:ping",
            Self::Pong => "pusher:pong",
            Self::Error { .. } => "pusher:error",
            Self::SubscriptionSucceeded { .. } | Self::PresenceSubscriptionSucceeded { .. } => {
                "pusher_internal:subscription_succeeded"
            }
            Self::SubscriptionError { .. } => "pusher:subscription_error",
            Self::MemberAdded { .. } => "pusher_internal:member_added",
            Self::MemberRemoved { .. } => "pusher_internal:member_removed",
            Self::CacheMiss { .. } => "pusher:cache_miss",
            Self::SigninSuccess { .. } => "pusher:signin_success",
            Self::WatchlistEvents { .. } => "pusher_internal:watchlist_events",
            Self::SubscriptionCount { .. } => "pusher_internal:subscription_count",
            Self::ChannelEvent(e) => &e.event,
        }
    }

    /// The channel the frame is about, if it names one.
    fn channel(&self) -> Option<&str> {
        match self {
            Self::SubscriptionSucceeded { channel }
            | Self::PresenceSubscriptionSucceeded { channel, .. }
            | Self::SubscriptionError { channel, .. }
            | Self::MemberAdded { channel, .. }
            | Self::MemberRemoved { channel, .. }
            | Self::CacheMiss { channel }
            | Self::SubscriptionCount { channel, .. } => Some(channel),
            Self::ChannelEvent(e) => Some(&e.channel),
            Self::ConnectionEstablished { .. }
            | Self::Ping
            | Self::Pong
            | Self::Error { .. }
            | Self::SigninSuccess { .. }
            | Self::WatchlistEvents { .. } => None,
        }
    }

    /// The text of the frame's `data`: the JSON that [`ServerFrame::encode`]
    /// double-encodes (for `pusher:error`, the object it embeds; for a
    /// channel event, its data text).
    ///
    /// A client that hands the protocol's frames to its user as events (as
    /// pusher-js does with `pusher:subscription_succeeded` and its member
    /// list, `pusher:member_added`, `pusher:subscription_count`, ...) delivers
    /// this text, so the shapes are defined once, here.
    pub fn data_text(&self) -> String {
        match self {
            Self::ChannelEvent(e) => e.data.clone(),
            Self::Error { code, message } => to_json_string(&ErrorData {
                code: *code,
                message: message.clone(),
            }),
            Self::ConnectionEstablished {
                socket_id,
                activity_timeout,
            } => to_json_string(&Established {
                socket_id: *socket_id,
                activity_timeout: *activity_timeout,
            }),
            Self::Ping
            | Self::Pong
            | Self::SubscriptionSucceeded { .. }
            | Self::CacheMiss { .. } => EMPTY.to_owned(),
            Self::PresenceSubscriptionSucceeded { members, .. } => to_json_string(&PresenceOut {
                presence: PresenceInner {
                    ids: members.iter().map(|m| m.user_id.as_str()).collect(),
                    hash: Hash(members),
                    count: members.len(),
                },
            }),
            Self::SubscriptionError { error, .. } => to_json_string(error),
            Self::MemberAdded { member, .. } => to_json_string(member),
            Self::MemberRemoved { user_id, .. } => to_json_string(&MemberOut {
                user_id,
                user_info: None,
            }),
            Self::SigninSuccess { user_data } => to_json_string(&SigninData {
                user_data: user_data.clone(),
            }),
            Self::WatchlistEvents { events } => to_json_string(&WatchlistData {
                events: events.clone(),
            }),
            Self::SubscriptionCount { count, .. } => to_json_string(&CountData {
                subscription_count: *count,
            }),
        }
    }

    /// Encodes the frame for the wire.
    pub fn encode(&self) -> Bytes {
        match self {
            Self::ChannelEvent(e) => e.encode(),
            // pusher:error carries its data as an object.
            Self::Error { code, message } => Bytes::from(
                OutFrame {
                    event: self.event_name(),
                    channel: None,
                    data: Some(&ErrorData {
                        code: *code,
                        message: message.clone(),
                    }),
                    user_id: None,
                }
                .to_vec(),
            ),
            // Every other frame double-encodes its data.
            _ => Bytes::from(
                OutFrame {
                    event: self.event_name(),
                    channel: self.channel(),
                    data: Some(self.data_text().as_str()),
                    user_id: None,
                }
                .to_vec(),
            ),
        }
    }

    /// Decodes a frame received from a server (lenient about which frames
    /// carry `data` as an object and which as a string).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let env = Envelope::parse(bytes)?;
        let frame = match &*env.event {
            "pusher:connection_established" => {
                let d: Established = env.data_as()?;
                Self::ConnectionEstablished {
                    socket_id: d.socket_id,
                    activity_timeout: d.activity_timeout,
                }
            }
            "pusher:ping" => Self::Ping,
            "pusher:pong" => Self::Pong,
            "pusher:error" => {
                let d: ErrorData = env.data_as()?;
                Self::Error {
                    code: d.code,
                    message: d.message,
                }
            }
            "pusher_internal:subscription_succeeded" => {
                let channel = env.channel()?;
                let presence = match env.data {
                    None => None,
                    Some(_) => env.data_as::<SucceededIn>()?.presence,
                };
                if let Some(presence) = presence {
                    let mut hash = presence.hash;
                    let mut members = Vec::with_capacity(presence.ids.len());
                    for id in presence.ids {
                        let user_id = string_or_number(&id)
                            .ok_or_else(|| env.invalid("data", "presence id is not a string"))?;
                        let user_info = hash.remove(&user_id).flatten();
                        members.push(Member { user_id, user_info });
                    }
                    Self::PresenceSubscriptionSucceeded { channel, members }
                } else {
                    Self::SubscriptionSucceeded { channel }
                }
            }
            "pusher:subscription_error" => Self::SubscriptionError {
                channel: env.channel()?,
                error: env.data_as()?,
            },
            "pusher_internal:member_added" => {
                let d: MemberIn = env.data_as()?;
                let user_id = string_or_number(&d.user_id)
                    .ok_or_else(|| env.invalid("data", "user_id is not a string"))?;
                Self::MemberAdded {
                    channel: env.channel()?,
                    member: Member {
                        user_id,
                        user_info: d.user_info,
                    },
                }
            }
            "pusher_internal:member_removed" => {
                let d: MemberIn = env.data_as()?;
                let user_id = string_or_number(&d.user_id)
                    .ok_or_else(|| env.invalid("data", "user_id is not a string"))?;
                Self::MemberRemoved {
                    channel: env.channel()?,
                    user_id,
                }
            }
            "pusher:cache_miss" => Self::CacheMiss {
                channel: env.channel()?,
            },
            "pusher:signin_success" => {
                let d: SigninData = env.data_as()?;
                Self::SigninSuccess {
                    user_data: d.user_data,
                }
            }
            "pusher_internal:watchlist_events" => {
                let d: WatchlistData = env.data_as()?;
                Self::WatchlistEvents { events: d.events }
            }
            "pusher_internal:subscription_count" => {
                let d: CountData = env.data_as()?;
                Self::SubscriptionCount {
                    channel: env.channel()?,
                    count: d.subscription_count,
                }
            }
            event if event.starts_with("pusher:") || event.starts_with("pusher_internal:") => {
                return Err(DecodeError::UnsupportedEvent(crate::excerpt(event)));
            }
            event => Self::ChannelEvent(ChannelEvent {
                event: event.to_owned(),
                channel: env.channel()?,
                data: env
                    .data
                    .map(RawJson::try_from)
                    .transpose()
                    .map_err(|e| env.invalid("data", e))?
                    .map(|d| d.text().into_owned())
                    .unwrap_or_default(),
                user_id: match env.user_id {
                    None => None,
                    Some(raw) => Some(
                        string_or_number(raw)
                            .ok_or_else(|| env.invalid("user_id", "not a string"))?,
                    ),
                },
            }),
        };
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `frame` encodes to `wire`, decodes back from it, and its `data_text`
    /// is the text of the wire's `data` field.
    fn check(frame: ServerFrame, wire: &str) {
        assert_eq!(std::str::from_utf8(&frame.encode()).unwrap(), wire);
        assert_eq!(ServerFrame::decode(wire.as_bytes()).unwrap(), frame);
        #[derive(Deserialize)]
        struct Data<'a> {
            #[serde(borrow)]
            data: &'a RawValue,
        }
        let data: Data<'_> = serde_json::from_str(wire).unwrap();
        let text = match serde_json::from_str::<String>(data.data.get()) {
            Ok(inner) => inner,
            Err(_) => data.data.get().to_owned(),
        };
        assert_eq!(frame.data_text(), text, "{wire}");
    }

    fn member(id: &str, info: Option<&str>) -> Member {
        Member {
            user_id: id.into(),
            user_info: info.map(|i| RawJson::from_json(i).unwrap()),
        }
    }

    #[test]
    fn connection_established() {
        check(
            ServerFrame::ConnectionEstablished {
                socket_id: SocketId::new(123, 456),
                activity_timeout: 120,
            },
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#,
        );
    }

    #[test]
    fn ping_pong() {
        check(ServerFrame::Ping, r#"{"event":"pusher:ping","data":"{}"}"#);
        check(ServerFrame::Pong, r#"{"event":"pusher:pong","data":"{}"}"#);
        // Peers that send no data, or an object, decode too.
        assert_eq!(
            ServerFrame::decode(br#"{"event":"pusher:pong"}"#),
            Ok(ServerFrame::Pong)
        );
        assert_eq!(
            ServerFrame::decode(br#"{"event":"pusher:ping","data":{}}"#),
            Ok(ServerFrame::Ping)
        );
    }

    #[test]
    fn error_data_is_an_object() {
        check(
            ServerFrame::error(ErrorCode::PongNotReceived),
            r#"{"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received"}}"#,
        );
        check(
            ServerFrame::Error {
                code: None,
                message: "bad".into(),
            },
            r#"{"event":"pusher:error","data":{"code":null,"message":"bad"}}"#,
        );
        // Reverb sends the data as a string: accept it.
        assert_eq!(
            ServerFrame::decode(
                br#"{"event":"pusher:error","data":"{\"code\":4001,\"message\":\"x\"}"}"#
            ),
            Ok(ServerFrame::Error {
                code: Some(4001),
                message: "x".into()
            })
        );
    }

    #[test]
    fn subscription_succeeded() {
        check(
            ServerFrame::SubscriptionSucceeded {
                channel: "my-channel".into(),
            },
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}"#,
        );
        // Soketi omits data.
        assert_eq!(
            ServerFrame::decode(
                br#"{"event":"pusher_internal:subscription_succeeded","channel":"c"}"#
            ),
            Ok(ServerFrame::SubscriptionSucceeded {
                channel: "c".into()
            })
        );
    }

    #[test]
    fn presence_subscription_succeeded() {
        check(
            ServerFrame::PresenceSubscriptionSucceeded {
                channel: "presence-x".into(),
                members: vec![member("11", Some(r#"{"name":"Phil"}"#)), member("22", None)],
            },
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-x","data":"{\"presence\":{\"ids\":[\"11\",\"22\"],\"hash\":{\"11\":{\"name\":\"Phil\"},\"22\":null},\"count\":2}}"}"#,
        );
    }

    #[test]
    fn subscription_error() {
        check(
            ServerFrame::SubscriptionError {
                channel: "private-a".into(),
                error: SubscriptionError {
                    kind: SubscriptionErrorKind::AuthError,
                    error: "Invalid signature".into(),
                    status: 401,
                },
            },
            r#"{"event":"pusher:subscription_error","channel":"private-a","data":"{\"type\":\"AuthError\",\"error\":\"Invalid signature\",\"status\":401}"}"#,
        );
    }

    #[test]
    fn member_added_and_removed() {
        check(
            ServerFrame::MemberAdded {
                channel: "presence-x".into(),
                member: member("2", Some(r#"{"name":"B"}"#)),
            },
            r#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"2\",\"user_info\":{\"name\":\"B\"}}"}"#,
        );
        check(
            ServerFrame::MemberAdded {
                channel: "presence-x".into(),
                member: member("3", None),
            },
            r#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"3\"}"}"#,
        );
        check(
            ServerFrame::MemberRemoved {
                channel: "presence-x".into(),
                user_id: "2".into(),
            },
            r#"{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"2\"}"}"#,
        );
        // A member serializes as member_added's data, user_info as sent.
        assert_eq!(
            serde_json::to_string(&member("1", Some(r#"{"b": 1,"a":2}"#))).unwrap(),
            r#"{"user_id":"1","user_info":{"b": 1,"a":2}}"#
        );
    }

    #[test]
    fn cache_miss() {
        check(
            ServerFrame::CacheMiss {
                channel: "cache-x".into(),
            },
            r#"{"event":"pusher:cache_miss","channel":"cache-x","data":"{}"}"#,
        );
    }

    #[test]
    fn signin_success() {
        check(
            ServerFrame::SigninSuccess {
                user_data: r#"{"id":"1"}"#.into(),
            },
            r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#,
        );
        // The protocol document shows the data as an object.
        assert_eq!(
            ServerFrame::decode(
                br#"{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"1\"}"}}"#
            ),
            Ok(ServerFrame::SigninSuccess {
                user_data: r#"{"id":"1"}"#.into()
            })
        );
    }

    #[test]
    fn watchlist_events() {
        check(
            ServerFrame::WatchlistEvents {
                events: vec![
                    WatchlistEvent {
                        name: WatchlistEventName::Online,
                        user_ids: vec!["1".into()],
                    },
                    WatchlistEvent {
                        name: WatchlistEventName::Offline,
                        user_ids: vec!["2".into(), "3".into()],
                    },
                ],
            },
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]},{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}"}"#,
        );
    }

    #[test]
    fn subscription_count() {
        check(
            ServerFrame::SubscriptionCount {
                channel: "my-channel".into(),
                count: 42,
            },
            r#"{"event":"pusher_internal:subscription_count","channel":"my-channel","data":"{\"subscription_count\":42}"}"#,
        );
    }

    #[test]
    fn channel_events() {
        check(
            ServerFrame::ChannelEvent(ChannelEvent {
                event: "my-event".into(),
                channel: "my-channel".into(),
                data: r#"{"message":"hello"}"#.into(),
                user_id: None,
            }),
            r#"{"event":"my-event","channel":"my-channel","data":"{\"message\":\"hello\"}"}"#,
        );
        check(
            ServerFrame::ChannelEvent(ChannelEvent {
                event: "client-typing".into(),
                channel: "presence-c".into(),
                data: "plain text".into(),
                user_id: Some("2".into()),
            }),
            r#"{"event":"client-typing","channel":"presence-c","data":"plain text","user_id":"2"}"#,
        );
        // Object data from other servers decodes to its JSON text.
        let f = ServerFrame::decode(br#"{"event":"e","channel":"c","data":{"a":1}}"#).unwrap();
        let ServerFrame::ChannelEvent(e) = f else {
            panic!()
        };
        assert_eq!(e.data, r#"{"a":1}"#);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            ServerFrame::decode(b"{"),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            ServerFrame::decode(br#"{"event":"pusher_internal:unknown","channel":"c"}"#),
            Err(DecodeError::UnsupportedEvent(
                "\"pusher_internal:unknown\"".into()
            ))
        );
        assert!(matches!(
            ServerFrame::decode(br#"{"event":"e","data":"x"}"#),
            Err(DecodeError::MissingField {
                field: "channel",
                ..
            })
        ));
    }
}
