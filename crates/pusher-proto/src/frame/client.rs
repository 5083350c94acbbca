//! Frames a client sends to the server.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{DecodeError, Envelope, OutFrame};
use crate::{CLIENT_EVENT_PREFIX, RawJson};

/// `pusher:subscribe` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// The channel name, not yet validated.
    pub channel: String,
    /// `key:signature` for private, encrypted and presence channels.
    /// pusher-js sends `""` for public channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Presence `channel_data`, the exact string the signature covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
}

/// A frame from a client, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientFrame {
    /// `pusher:ping`: the server answers `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to a server ping.
    Pong,
    /// `pusher:subscribe`.
    Subscribe(Subscribe),
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel to leave.
        channel: String,
    },
    /// `pusher:signin`: user authentication.
    Signin {
        /// `key:signature` over `socket_id::user::user_data`.
        auth: String,
        /// The exact `user_data` string the signature covers.
        user_data: String,
    },
    /// A `client-` event to relay to the channel's other subscribers.
    ClientEvent {
        /// The event name (starts with `client-`).
        event: String,
        /// The channel name, not yet validated.
        channel: String,
        /// The data exactly as the client sent it (object or string).
        data: RawJson,
    },
}

#[derive(Deserialize)]
struct ChannelOnly {
    channel: String,
}

#[derive(Deserialize)]
struct RawSubscribe {
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<RawJson>,
}

#[derive(Deserialize)]
struct RawSignin {
    auth: String,
    user_data: RawJson,
}

#[derive(Serialize)]
struct SigninOut<'a> {
    auth: &'a str,
    user_data: &'a str,
}

impl ClientFrame {
    /// Decodes one text frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let env = Envelope::parse(bytes)?;
        Ok(match &*env.event {
            "pusher:ping" => Self::Ping,
            "pusher:pong" => Self::Pong,
            "pusher:subscribe" => {
                let raw: RawSubscribe = env.data_as()?;
                Self::Subscribe(Subscribe {
                    channel: raw.channel,
                    auth: raw.auth,
                    // channel_data is a string; accept an object's text too.
                    channel_data: raw.channel_data.map(|c| c.text().into_owned()),
                })
            }
            "pusher:unsubscribe" => Self::Unsubscribe {
                channel: env.data_as::<ChannelOnly>()?.channel,
            },
            "pusher:signin" => {
                let raw: RawSignin = env.data_as()?;
                Self::Signin {
                    auth: raw.auth,
                    user_data: raw.user_data.text().into_owned(),
                }
            }
            event if event.starts_with(CLIENT_EVENT_PREFIX) => Self::ClientEvent {
                event: event.to_owned(),
                channel: env.channel()?,
                data: RawJson::try_from(env.data.ok_or_else(|| env.missing("data"))?)
                    .map_err(|e| env.invalid("data", e))?,
            },
            other => return Err(DecodeError::UnsupportedEvent(crate::excerpt(other))),
        })
    }

    /// Encodes the frame as a client sends it.
    pub fn encode(&self) -> Bytes {
        let empty = serde_json::Map::new();
        let vec = match self {
            Self::Ping => frame("pusher:ping", None, Some(&empty)),
            Self::Pong => frame("pusher:pong", None, Some(&empty)),
            Self::Subscribe(s) => frame("pusher:subscribe", None, Some(s)),
            Self::Unsubscribe { channel } => frame(
                "pusher:unsubscribe",
                None,
                Some(&Subscribe {
                    channel: channel.clone(),
                    auth: None,
                    channel_data: None,
                }),
            ),
            Self::Signin { auth, user_data } => {
                frame("pusher:signin", None, Some(&SigninOut { auth, user_data }))
            }
            Self::ClientEvent {
                event,
                channel,
                data,
            } => frame(event, Some(channel), Some(data)),
        };
        Bytes::from(vec)
    }
}

fn frame<D: Serialize>(event: &str, channel: Option<&str>, data: Option<&D>) -> Vec<u8> {
    OutFrame {
        event,
        channel,
        data,
        user_id: None,
    }
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<ClientFrame, DecodeError> {
        ClientFrame::decode(s.as_bytes())
    }

    #[test]
    fn ping_pong() {
        assert_eq!(
            dec(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientFrame::Ping)
        );
        assert_eq!(dec(r#"{"event":"pusher:ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(
            dec(r#"{"event":"pusher:pong","data":"{}"}"#),
            Ok(ClientFrame::Pong)
        );
        assert_eq!(
            &ClientFrame::Ping.encode()[..],
            br#"{"event":"pusher:ping","data":{}}"#
        );
        assert_eq!(
            &ClientFrame::Pong.encode()[..],
            br#"{"event":"pusher:pong","data":{}}"#
        );
    }

    #[test]
    fn subscribe_public_as_pusher_js_sends_it() {
        let f = dec(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}"#);
        assert_eq!(
            f,
            Ok(ClientFrame::Subscribe(Subscribe {
                channel: "my-channel".into(),
                auth: Some(String::new()),
                channel_data: None
            }))
        );
    }

    #[test]
    fn subscribe_presence() {
        let text = r#"{"event":"pusher:subscribe","data":{"channel":"presence-room","auth":"k:abc","channel_data":"{\"user_id\":\"1\",\"user_info\":{\"name\":\"A\"}}"}}"#;
        let expected = ClientFrame::Subscribe(Subscribe {
            channel: "presence-room".into(),
            auth: Some("k:abc".into()),
            channel_data: Some(r#"{"user_id":"1","user_info":{"name":"A"}}"#.into()),
        });
        assert_eq!(dec(text), Ok(expected.clone()));
        assert_eq!(&expected.encode()[..], text.as_bytes());
    }

    #[test]
    fn subscribe_with_string_data_and_object_channel_data() {
        let f = dec(
            r#"{"event":"pusher:subscribe","data":"{\"channel\":\"presence-a\",\"auth\":\"k:s\",\"channel_data\":{\"user_id\":1}}"}"#,
        )
        .unwrap();
        let ClientFrame::Subscribe(s) = f else {
            panic!()
        };
        assert_eq!(s.channel, "presence-a");
        assert_eq!(s.channel_data.as_deref(), Some(r#"{"user_id":1}"#));
    }

    #[test]
    fn unsubscribe() {
        let text = r#"{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}"#;
        let f = ClientFrame::Unsubscribe {
            channel: "my-channel".into(),
        };
        assert_eq!(dec(text), Ok(f.clone()));
        assert_eq!(&f.encode()[..], text.as_bytes());
    }

    #[test]
    fn signin() {
        let text =
            r#"{"event":"pusher:signin","data":{"auth":"k:sig","user_data":"{\"id\":\"12345\"}"}}"#;
        let f = ClientFrame::Signin {
            auth: "k:sig".into(),
            user_data: r#"{"id":"12345"}"#.into(),
        };
        assert_eq!(dec(text), Ok(f.clone()));
        assert_eq!(&f.encode()[..], text.as_bytes());
    }

    #[test]
    fn client_event_object_and_string_data() {
        let text = r#"{"event":"client-typing","channel":"private-c","data":{"a": 1}}"#;
        let f = dec(text).unwrap();
        let ClientFrame::ClientEvent {
            event,
            channel,
            data,
        } = &f
        else {
            panic!()
        };
        assert_eq!(
            (event.as_str(), channel.as_str()),
            ("client-typing", "private-c")
        );
        assert_eq!(data.json(), r#"{"a": 1}"#);
        assert_eq!(data.text(), r#"{"a": 1}"#);
        assert_eq!(&f.encode()[..], text.as_bytes());

        let f = dec(r#"{"event":"client-x","channel":"private-c","data":"hi \"you\""}"#).unwrap();
        let ClientFrame::ClientEvent { data, .. } = f else {
            panic!()
        };
        assert_eq!(data.text(), "hi \"you\"");
    }

    #[test]
    fn refusals() {
        assert!(matches!(dec("not json"), Err(DecodeError::Json(_))));
        assert!(matches!(dec("[]"), Err(DecodeError::Json(_))));
        assert!(matches!(dec(r#"{"data":{}}"#), Err(DecodeError::Json(_))));
        assert_eq!(
            dec(r#"{"event":"pusher:subscribe"}"#),
            Err(DecodeError::MissingField {
                event: "pusher:subscribe".into(),
                field: "data"
            })
        );
        assert!(matches!(
            dec(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(DecodeError::InvalidField { field: "data", .. })
        ));
        assert!(matches!(
            dec(r#"{"event":"pusher:subscribe","data":{"channel":5}}"#),
            Err(DecodeError::InvalidField { field: "data", .. })
        ));
        assert_eq!(
            dec(r#"{"event":"client-x","data":{}}"#),
            Err(DecodeError::MissingField {
                event: "client-x".into(),
                field: "channel"
            })
        );
        assert_eq!(
            dec(r#"{"event":"client-x","channel":"private-a"}"#),
            Err(DecodeError::MissingField {
                event: "client-x".into(),
                field: "data"
            })
        );
        assert_eq!(
            dec(r#"{"event":"pusher:nope","data":{}}"#),
            Err(DecodeError::UnsupportedEvent("\"pusher:nope\"".into()))
        );
        assert_eq!(
            dec(r#"{"event":"my-event","channel":"a","data":{}}"#),
            Err(DecodeError::UnsupportedEvent("\"my-event\"".into()))
        );
        let long = format!(r#"{{"event":"{}","data":{{}}}}"#, "e".repeat(60_000));
        let err = dec(&long).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
    }
}
