//! Subscribing, resubscribing after a reconnect, refusals, unsubscribing,
//! encrypted channels.

use std::time::Duration;

use pusher_auth::{ChannelAuthResponse, MasterKey, authorize_encrypted_channel, encrypt};
use pusher_proto::{ChannelEvent, ServerFrame, SubscriptionError, SubscriptionErrorKind};

use super::*;
use crate::error::{AuthorizerError, SocketError, SubscribeFailure};

#[test]
fn public_channels_subscribe_at_once_private_ones_after_authorization() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("news").unwrap();
    assert_eq!(
        sim.transmits(),
        [r#"{"event":"pusher:subscribe","data":{"channel":"news","auth":""}}"#]
    );
    assert!(sim.actions().is_empty());

    sim.core.subscribe("private-desk").unwrap();
    assert!(sim.transmits().is_empty(), "nothing before the authorizer");
    assert_eq!(
        sim.actions(),
        [Action::AuthorizeChannel {
            socket_id: socket(1),
            channel: "private-desk".into()
        }]
    );
    sim.authorize(&socket(1), "private-desk", None);
    assert_eq!(
        sim.transmits(),
        [subscribe_frame(
            "private-desk",
            &auth_of(&socket(1), "private-desk"),
            None
        )]
    );

    sim.receive(&ServerFrame::SubscriptionSucceeded {
        channel: "private-desk".into(),
    });
    let events = sim.events();
    assert_eq!(
        statuses(&events),
        [("private-desk".into(), SubStatus::Subscribed)]
    );
    assert_eq!(
        channel_events(&events),
        [(
            "private-desk".into(),
            "pusher:subscription_succeeded".into(),
            "{}".into()
        )]
    );
    assert_eq!(sim.core.channel_names(), ["news", "private-desk"]);
}

#[test]
fn subscriptions_made_while_connecting_are_sent_once_connected() {
    let mut sim = Sim::new(config());
    sim.core.subscribe("news").unwrap();
    sim.core.subscribe("private-desk").unwrap();
    assert!(sim.transmits().is_empty());
    assert!(sim.actions().is_empty());
    sim.open(1);
    assert_eq!(sim.transmits(), [subscribe_frame("news", "", None)]);
    assert_eq!(
        sim.actions(),
        [Action::AuthorizeChannel {
            socket_id: socket(1),
            channel: "private-desk".into()
        }]
    );
}

#[test]
fn a_reconnect_resubscribes_public_at_once_and_the_others_for_the_new_socket_id() {
    let mut sim = Sim::connected(config());
    for channel in ["news", "presence-hall", "private-desk"] {
        sim.core.subscribe(channel).unwrap();
    }
    sim.authorize(&socket(1), "private-desk", None);
    sim.authorize(&socket(1), "presence-hall", Some(r#"{"user_id":"me"}"#));
    for channel in ["news", "private-desk"] {
        sim.receive(&ServerFrame::SubscriptionSucceeded {
            channel: channel.into(),
        });
    }
    sim.drain();

    // A server restart (4200) after a while: connect again at once.
    sim.advance(Duration::from_secs(5));
    sim.close(4200);
    let events = sim.events();
    assert_eq!(
        statuses(&events),
        [
            ("news".into(), SubStatus::Pending),
            ("private-desk".into(), SubStatus::Pending)
        ],
        "what was subscribed is pending again"
    );
    assert_eq!(sim.actions(), [Action::Connect]);
    assert_eq!(sim.core.socket_id(), None);

    sim.open(2);
    assert_eq!(
        sim.transmits(),
        [subscribe_frame("news", "", None)],
        "only the public channel at once"
    );
    assert_eq!(
        sim.actions(),
        [
            Action::AuthorizeChannel {
                socket_id: socket(2),
                channel: "presence-hall".into()
            },
            Action::AuthorizeChannel {
                socket_id: socket(2),
                channel: "private-desk".into()
            },
        ],
        "the others are authorized again, for the new socket id"
    );

    // A late answer for the old connection is ignored.
    sim.authorize(&socket(1), "private-desk", None);
    assert!(sim.transmits().is_empty());
    sim.authorize(&socket(2), "private-desk", None);
    assert_eq!(
        sim.transmits(),
        [subscribe_frame(
            "private-desk",
            &auth_of(&socket(2), "private-desk"),
            None
        )]
    );
}

#[test]
fn unsubscribing_sends_the_frame_and_ends_the_channel() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("news").unwrap();
    sim.receive(&ServerFrame::SubscriptionSucceeded {
        channel: "news".into(),
    });
    sim.drain();

    sim.core.unsubscribe("news");
    assert_eq!(
        sim.transmits(),
        [r#"{"event":"pusher:unsubscribe","data":{"channel":"news"}}"#]
    );
    assert!(sim.core.channel_names().is_empty());
    assert_eq!(sim.core.status("news"), None);

    // Late events of the channel go nowhere; a reconnect does not bring it
    // back.
    sim.receive(&ServerFrame::ChannelEvent(ChannelEvent {
        event: "headline".into(),
        channel: "news".into(),
        data: "late".into(),
        user_id: None,
    }));
    assert!(sim.events().is_empty());
    sim.advance(Duration::from_secs(5));
    sim.close(4200);
    sim.open(2);
    assert!(sim.transmits().is_empty());
    // Unsubscribing twice sends nothing more.
    sim.core.unsubscribe("news");
    assert!(sim.transmits().is_empty());
}

#[test]
fn without_an_authorizer_private_channels_fail_at_once() {
    let mut sim = Sim::connected(Config {
        has_authorizer: false,
        ..config()
    });
    sim.core.subscribe("private-x").unwrap();
    assert!(sim.actions().is_empty());
    assert!(sim.transmits().is_empty());
    let events = sim.events();
    let failure = SubscribeFailure::Authorizer(AuthorizerError::new(
        "no authorizer configured for a private channel",
    ));
    assert_eq!(
        statuses(&events),
        [("private-x".into(), SubStatus::Failed(failure))]
    );
    let (_, name, data) = &channel_events(&events)[0];
    assert_eq!(name, "pusher:subscription_error");
    let error: SubscriptionError = serde_json::from_str(data).unwrap();
    assert_eq!(error.kind, SubscriptionErrorKind::AuthError);
}

#[test]
fn an_authorizer_error_fails_the_channel_with_its_status() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("private-x").unwrap();
    sim.drain();
    let error = AuthorizerError {
        status: Some(403),
        message: "forbidden".into(),
    };
    sim.core
        .handle_channel_auth(&socket(1), "private-x", Err(error.clone()));
    let events = sim.events();
    assert_eq!(
        statuses(&events),
        [(
            "private-x".into(),
            SubStatus::Failed(SubscribeFailure::Authorizer(error))
        )]
    );
    let (_, _, data) = &channel_events(&events)[0];
    let error: SubscriptionError = serde_json::from_str(data).unwrap();
    assert_eq!((error.status, error.error.as_str()), (403, "forbidden"));
}

#[test]
fn a_refusal_holds_until_the_next_connection_retries() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("limited").unwrap();
    sim.drain();
    let refusal = SubscriptionError {
        kind: SubscriptionErrorKind::LimitReached,
        error: "full".into(),
        status: 413,
    };
    sim.receive(&ServerFrame::SubscriptionError {
        channel: "limited".into(),
        error: refusal.clone(),
    });
    let events = sim.events();
    assert_eq!(
        statuses(&events),
        [(
            "limited".into(),
            SubStatus::Failed(SubscribeFailure::Refused(refusal.clone()))
        )]
    );
    assert_eq!(
        channel_events(&events)[0].2,
        serde_json::to_string(&refusal).unwrap()
    );

    // A dropped socket does not reset a failure; the next connection does.
    sim.core
        .handle_closed(TransportEnd::Error("reset".into()), sim.now);
    assert!(statuses(&sim.events()).is_empty());
    sim.advance(Duration::from_secs(2));
    sim.open(2);
    assert_eq!(
        statuses(&sim.events()),
        [("limited".into(), SubStatus::Pending)]
    );
    assert_eq!(sim.transmits(), [subscribe_frame("limited", "", None)]);
}

#[test]
fn malformed_and_reserved_names_are_refused_locally() {
    let mut sim = Sim::connected(config());
    for name in ["", "bad name", "#server-to-user-42"] {
        assert!(
            matches!(
                sim.core.subscribe(name),
                Err(SocketError::InvalidChannel(_))
            ),
            "{name:?}"
        );
    }
    assert!(sim.transmits().is_empty());
    // Subscribing twice is one subscription.
    sim.core.subscribe("news").unwrap();
    sim.core.subscribe("news").unwrap();
    assert_eq!(sim.transmits().len(), 1);
}

#[test]
fn cache_misses_and_subscription_counts_reach_the_listeners() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("cache-news").unwrap();
    sim.receive(&ServerFrame::CacheMiss {
        channel: "cache-news".into(),
    });
    sim.receive(&ServerFrame::SubscriptionCount {
        channel: "cache-news".into(),
        count: 3,
    });
    assert_eq!(
        channel_events(&sim.events()),
        [
            ("cache-news".into(), "pusher:cache_miss".into(), "{}".into()),
            (
                "cache-news".into(),
                "pusher:subscription_count".into(),
                r#"{"subscription_count":3}"#.into()
            ),
        ]
    );
    assert_eq!(sim.core.subscription_count("cache-news"), Some(3));
}

/// An event on `channel` encrypted with the key `master` derives for it.
fn encrypted_event(channel: &str, master: &MasterKey, plaintext: &str) -> ServerFrame {
    let payload = encrypt(channel, master, plaintext.as_bytes(), [9; 24]);
    ServerFrame::ChannelEvent(ChannelEvent {
        event: "secret".into(),
        channel: channel.into(),
        data: payload.to_json(),
        user_id: None,
    })
}

#[test]
fn encrypted_events_arrive_as_plaintext_and_the_secret_stays_local() {
    let master = MasterKey::from_bytes([42; 32]);
    let channel = "private-encrypted-vault";
    let mut sim = Sim::connected(config());
    sim.core.subscribe(channel).unwrap();
    sim.drain();
    let response = authorize_encrypted_channel("key", "secret", &socket(1), channel, &master);
    let auth = response.auth.clone();
    sim.core
        .handle_channel_auth(&socket(1), channel, Ok(response));
    assert_eq!(
        sim.transmits(),
        [subscribe_frame(channel, &auth, None)],
        "no shared secret on the wire"
    );

    sim.receive(&encrypted_event(channel, &master, r#"{"gold":1}"#));
    let events = channel_events(&sim.events());
    assert_eq!(
        events,
        [(channel.into(), "secret".into(), r#"{"gold":1}"#.into())]
    );

    // Encrypted with another key: a decryption error, without the data.
    let other = MasterKey::from_bytes([7; 32]);
    sim.receive(&encrypted_event(channel, &other, "hidden"));
    let events = channel_events(&sim.events());
    assert_eq!(events[0].1, "pusher:decryption_error");
    let error: serde_json::Value = serde_json::from_str(&events[0].2).unwrap();
    assert_eq!(error["event"], "secret");
    assert!(!events[0].2.contains("hidden"));
}

#[test]
fn an_encrypted_channel_without_a_shared_secret_fails() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("private-encrypted-x").unwrap();
    sim.drain();
    let response = ChannelAuthResponse {
        auth: "key:sig".into(),
        channel_data: None,
        shared_secret: None,
    };
    sim.core
        .handle_channel_auth(&socket(1), "private-encrypted-x", Ok(response));
    assert!(sim.transmits().is_empty());
    assert!(matches!(
        &statuses(&sim.events())[..],
        [(_, SubStatus::Failed(SubscribeFailure::Authorizer(_)))]
    ));
}
