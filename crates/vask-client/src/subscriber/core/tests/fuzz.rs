//! Random sequences of inputs: the core never panics, and its outputs keep
//! their invariants.

use std::time::Duration;

use proptest::prelude::*;
use pusher_auth::{ChannelAuthResponse, UserAuthResponse};
use pusher_proto::{ChannelEvent, Member, ServerFrame, SubscriptionError, SubscriptionErrorKind};

use super::*;
use crate::error::AuthorizerError;

const CHANNELS: [&str; 6] = [
    "news",
    "private-desk",
    "presence-hall",
    "private-encrypted-vault",
    "#server-to-user-ann",
    "bad name",
];

/// One input of the driver or a handle.
#[derive(Debug, Clone)]
enum Op {
    Connected,
    Established(u64),
    Frame(usize, u8),
    Garbage(String),
    Alive,
    Closed(u8, u16),
    Advance(u64),
    Subscribe(usize),
    Unsubscribe(usize),
    ClientEvent(usize),
    Signin,
    ChannelAuth(bool, usize, bool),
    UserAuth(bool, bool),
    Disconnect,
}

fn op() -> impl Strategy<Value = Op> {
    let channel = 0..CHANNELS.len();
    prop_oneof![
        Just(Op::Connected),
        (1..4u64).prop_map(Op::Established),
        (channel.clone(), any::<u8>()).prop_map(|(c, k)| Op::Frame(c, k)),
        ".{0,40}".prop_map(Op::Garbage),
        Just(Op::Alive),
        (any::<u8>(), 3990..4510u16).prop_map(|(k, c)| Op::Closed(k, c)),
        (0..200_000u64).prop_map(Op::Advance),
        channel.clone().prop_map(Op::Subscribe),
        channel.clone().prop_map(Op::Unsubscribe),
        channel.clone().prop_map(Op::ClientEvent),
        Just(Op::Signin),
        (any::<bool>(), channel, any::<bool>()).prop_map(|(s, c, ok)| Op::ChannelAuth(s, c, ok)),
        (any::<bool>(), any::<bool>()).prop_map(|(s, ok)| Op::UserAuth(s, ok)),
        Just(Op::Disconnect),
    ]
}

/// A server frame about `channel`, chosen by `kind`.
fn frame(channel: &str, kind: u8) -> ServerFrame {
    let channel = channel.to_owned();
    let member = |id: &str| Member {
        user_id: id.into(),
        user_info: None,
    };
    match kind % 13 {
        0 => ServerFrame::Ping,
        1 => ServerFrame::Pong,
        2 => ServerFrame::Error {
            code: Some(4000 + u16::from(kind)),
            message: "e".into(),
        },
        3 => ServerFrame::SubscriptionSucceeded { channel },
        4 => ServerFrame::PresenceSubscriptionSucceeded {
            channel,
            members: vec![member("a"), member("me")],
        },
        5 => ServerFrame::SubscriptionError {
            channel,
            error: SubscriptionError {
                kind: SubscriptionErrorKind::AuthError,
                error: "no".into(),
                status: 401,
            },
        },
        6 => ServerFrame::MemberAdded {
            channel,
            member: member("b"),
        },
        7 => ServerFrame::MemberRemoved {
            channel,
            user_id: "a".into(),
        },
        8 => ServerFrame::CacheMiss { channel },
        9 => ServerFrame::SigninSuccess {
            user_data: if kind.is_multiple_of(2) {
                r#"{"id":"ann"}"#.into()
            } else {
                "{".into()
            },
        },
        10 => ServerFrame::SubscriptionCount { channel, count: 2 },
        11 => ServerFrame::ConnectionEstablished {
            socket_id: pusher_proto::SocketId::new(1, 9),
            activity_timeout: u32::from(kind),
        },
        _ => ServerFrame::ChannelEvent(ChannelEvent {
            event: "e".into(),
            channel,
            data: r#"{"nonce":"x","ciphertext":"y"}"#.into(),
            user_id: None,
        }),
    }
}

fn transport_end(kind: u8, code: u16) -> TransportEnd {
    match kind % 4 {
        0 => TransportEnd::CloseFrame {
            code: Some(code),
            reason: "r".into(),
        },
        1 => TransportEnd::Eof,
        2 => TransportEnd::Error("e".into()),
        _ => TransportEnd::Tls("t".into()),
    }
}

impl Sim {
    fn apply(&mut self, op: Op) {
        let core = &mut self.core;
        let now = self.now;
        let socket_id = |current: bool, core: &Core| match (current, core.socket_id()) {
            (true, Some(id)) => id.to_owned(),
            _ => socket(99),
        };
        match op {
            Op::Connected => core.handle_connected(now),
            Op::Established(n) => {
                core.handle_connected(now);
                self.receive(&ServerFrame::ConnectionEstablished {
                    socket_id: pusher_proto::SocketId::new(1, n),
                    activity_timeout: 30,
                });
            }
            Op::Frame(c, kind) => self.receive(&frame(CHANNELS[c], kind)),
            Op::Garbage(text) => core.handle_frame(&text, now),
            Op::Alive => core.handle_alive(now),
            Op::Closed(kind, code) => core.handle_closed(transport_end(kind, code), now),
            Op::Advance(ms) => self.advance(Duration::from_millis(ms)),
            Op::Subscribe(c) => drop(core.subscribe(CHANNELS[c])),
            Op::Unsubscribe(c) => core.unsubscribe(CHANNELS[c]),
            Op::ClientEvent(c) => {
                let data = pusher_proto::RawJson::from_text("x");
                drop(core.client_event(CHANNELS[c], "client-x", data));
            }
            Op::Signin => drop(core.signin()),
            Op::ChannelAuth(current, c, ok) => {
                let id = socket_id(current, core);
                let answer = if ok {
                    Ok(ChannelAuthResponse {
                        auth: "k:s".into(),
                        channel_data: Some(r#"{"user_id":"me"}"#.into()),
                        shared_secret: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
                    })
                } else {
                    Err(AuthorizerError::new("no"))
                };
                core.handle_channel_auth(&id, CHANNELS[c], answer);
            }
            Op::UserAuth(current, ok) => {
                let id = socket_id(current, core);
                let answer = if ok {
                    Ok(UserAuthResponse {
                        auth: "k:s".into(),
                        user_data: r#"{"id":"ann"}"#.into(),
                    })
                } else {
                    Err(AuthorizerError::new("no"))
                };
                core.handle_user_auth(&id, answer);
            }
            Op::Disconnect => core.disconnect(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_core_never_panics_and_keeps_its_invariants(
        connected in any::<bool>(),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        // Half the runs start established: a first attempt that fails
        // stops the core, which would cut most sequences short.
        let mut sim = if connected { Sim::connected(config()) } else { Sim::new(config()) };
        let mut stopped = false;
        for op in ops {
            let was_open = sim.core.socket_id().is_some();
            let is_disconnect = matches!(op, Op::Disconnect);
            sim.apply(op);
            let transmits = sim.transmits();
            let actions = sim.actions();
            let events = sim.events();
            if stopped {
                prop_assert!(transmits.is_empty() && actions.is_empty() && events.is_empty());
            }
            // Frames go out only on an established connection (a disconnect
            // still writes what was queued before its close).
            if !transmits.is_empty() {
                prop_assert!(sim.core.socket_id().is_some() || (was_open && is_disconnect));
            }
            for action in &actions {
                match action {
                    Action::AuthorizeChannel { socket_id, .. }
                    | Action::AuthenticateUser { socket_id } => {
                        prop_assert_eq!(Some(socket_id.as_str()), sim.core.socket_id());
                    }
                    Action::Stop => stopped = true,
                    _ => {}
                }
            }
            for (channel, status) in statuses(&events) {
                if status == SubStatus::Subscribed {
                    prop_assert_eq!(sim.core.status(&channel), Some(&SubStatus::Subscribed));
                }
            }
            prop_assert_eq!(sim.core.is_stopped(), stopped);
            prop_assert_eq!(sim.core.poll_timeout().is_none(), stopped);
        }
    }
}
