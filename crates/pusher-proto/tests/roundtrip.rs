//! Property tests: every valid frame encodes and decodes to itself, and any
//! byte string decodes to a value or an error, never a panic.

use proptest::prelude::*;
use pusher_proto::{
    ChannelEvent, ChannelName, ClientFrame, Member, RawJson, ServerFrame, SocketId, Subscribe,
    SubscriptionError, SubscriptionErrorKind, WatchlistEvent, WatchlistEventName,
};

/// Any text, including quotes, backslashes, control characters and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_=@,.;-]{0,24}",
        any::<String>(),
        Just(String::from("\"\\\u{0}\u{1f}\u{2028}é😀")),
    ]
}

/// A JSON value as text: what a client may send as event data.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        text().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kv| {
                let fields: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(&k).unwrap(), v))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = String> {
    prop::collection::vec(("[a-z]{1,6}", json_value()), 0..4).prop_map(|kv| {
        let fields: Vec<String> = kv
            .into_iter()
            .map(|(k, v)| format!("{}:{}", serde_json::to_string(&k).unwrap(), v))
            .collect();
        format!("{{{}}}", fields.join(","))
    })
}

fn channel() -> impl Strategy<Value = String> {
    prop_oneof![
        "(private-|presence-|private-encrypted-|cache-|presence-cache-)?[a-zA-Z0-9_=@,.;-]{1,40}",
        text(),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        Just(ClientFrame::Ping),
        Just(ClientFrame::Pong),
        (
            channel(),
            prop::option::of(text()),
            prop::option::of(object())
        )
            .prop_map(
                |(channel, auth, channel_data)| ClientFrame::Subscribe(Subscribe {
                    channel,
                    auth,
                    channel_data
                })
            ),
        channel().prop_map(|channel| ClientFrame::Unsubscribe { channel }),
        (text(), object()).prop_map(|(auth, user_data)| ClientFrame::Signin { auth, user_data }),
        ("client-[a-z0-9-]{0,20}", channel(), json_value()).prop_map(|(event, channel, data)| {
            ClientFrame::ClientEvent {
                event,
                channel,
                data: RawJson::from_json(data).unwrap(),
            }
        }),
    ]
}

fn member() -> impl Strategy<Value = Member> {
    (text(), prop::option::of(object())).prop_map(|(user_id, info)| Member {
        user_id,
        user_info: info.map(|i| RawJson::from_json(i).unwrap()),
    })
}

fn distinct_members() -> impl Strategy<Value = Vec<Member>> {
    prop::collection::vec(member(), 0..5).prop_map(|mut v| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|m| seen.insert(m.user_id.clone()));
        v
    })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let kind = prop_oneof![
        Just(SubscriptionErrorKind::AuthError),
        Just(SubscriptionErrorKind::LimitReached),
        Just(SubscriptionErrorKind::InvalidChannel),
    ];
    let watch =
        (any::<bool>(), prop::collection::vec(text(), 0..4)).prop_map(|(on, ids)| WatchlistEvent {
            name: if on {
                WatchlistEventName::Online
            } else {
                WatchlistEventName::Offline
            },
            user_ids: ids,
        });
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(h, l, t)| {
            ServerFrame::ConnectionEstablished {
                socket_id: SocketId::new(h, l),
                activity_timeout: t,
            }
        }),
        Just(ServerFrame::Ping),
        Just(ServerFrame::Pong),
        (prop::option::of(any::<u16>()), text())
            .prop_map(|(code, message)| ServerFrame::Error { code, message }),
        channel().prop_map(|channel| ServerFrame::SubscriptionSucceeded { channel }),
        (channel(), distinct_members()).prop_map(|(channel, members)| {
            ServerFrame::PresenceSubscriptionSucceeded { channel, members }
        }),
        (channel(), kind, text(), any::<u16>()).prop_map(|(channel, kind, error, status)| {
            ServerFrame::SubscriptionError {
                channel,
                error: SubscriptionError {
                    kind,
                    error,
                    status,
                },
            }
        }),
        (channel(), member())
            .prop_map(|(channel, member)| ServerFrame::MemberAdded { channel, member }),
        (channel(), text())
            .prop_map(|(channel, user_id)| ServerFrame::MemberRemoved { channel, user_id }),
        channel().prop_map(|channel| ServerFrame::CacheMiss { channel }),
        object().prop_map(|user_data| ServerFrame::SigninSuccess { user_data }),
        prop::collection::vec(watch, 0..3)
            .prop_map(|events| ServerFrame::WatchlistEvents { events }),
        (channel(), any::<u64>())
            .prop_map(|(channel, count)| ServerFrame::SubscriptionCount { channel, count }),
        (
            "[a-z][a-z0-9_-]{0,20}",
            channel(),
            text(),
            prop::option::of(text())
        )
            .prop_map(|(event, channel, data, user_id)| {
                ServerFrame::ChannelEvent(ChannelEvent {
                    event,
                    channel,
                    data,
                    user_id,
                })
            }),
    ]
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = frame.encode();
        let back = ClientFrame::decode(&bytes).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = frame.encode();
        let back = ServerFrame::decode(&bytes).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn channel_event_parts_match_the_frame(
        event in "[a-z][a-z0-9_-]{0,20}", channel in channel(), data in text(),
        user_id in prop::option::of(text()),
    ) {
        let frame = ChannelEvent { event, channel, data, user_id };
        let bytes = ChannelEvent::encode_parts(
            &frame.event, &frame.channel, &frame.data, frame.user_id.as_deref());
        prop_assert_eq!(&bytes, &frame.encode());
        let back = ServerFrame::decode(&bytes).unwrap();
        prop_assert_eq!(back, ServerFrame::ChannelEvent(frame));
    }

    #[test]
    fn any_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = ClientFrame::decode(&bytes);
        let _ = ServerFrame::decode(&bytes);
    }

    #[test]
    fn json_shaped_input_decodes_without_panic(
        event in prop_oneof![
            Just("pusher:subscribe".to_string()), Just("pusher:signin".to_string()),
            Just("pusher:unsubscribe".to_string()), Just("client-x".to_string()),
            Just("pusher_internal:subscription_succeeded".to_string()),
            Just("pusher_internal:member_added".to_string()), text()
        ],
        data in json_value(), channel in prop::option::of(json_value()),
    ) {
        let frame = match channel {
            Some(c) => format!(r#"{{"event":{},"data":{},"channel":{}}}"#,
                serde_json::to_string(&event).unwrap(), data, c),
            None => format!(r#"{{"event":{},"data":{}}}"#,
                serde_json::to_string(&event).unwrap(), data),
        };
        let _ = ClientFrame::decode(frame.as_bytes());
        let _ = ServerFrame::decode(frame.as_bytes());
    }

    #[test]
    fn channel_names_never_panic(name in any::<String>()) {
        if let Ok(c) = ChannelName::new(&name) {
            prop_assert_eq!(c.as_str(), name.as_str());
        }
    }

    #[test]
    fn socket_ids_round_trip_through_text(h in any::<u64>(), l in any::<u64>()) {
        let id = SocketId::new(h, l);
        let back: SocketId = id.to_string().parse().unwrap();
        prop_assert_eq!(back, id);
    }
}
