//! Client events: sent on subscribed private and presence channels,
//! refused locally where the SDKs refuse them.

use pusher_auth::{MasterKey, authorize_encrypted_channel};
use pusher_proto::{RawJson, ServerFrame};

use super::*;
use crate::error::SocketError;

fn data() -> RawJson {
    RawJson::from_json(r#"{"text":"hi"}"#).unwrap()
}

/// Connected, with `channels` subscribed (authorized where needed).
fn subscribed(channels: &[&str]) -> Sim {
    let mut sim = Sim::connected(config());
    for channel in channels {
        sim.core.subscribe(channel).unwrap();
        if channel.starts_with("private-encrypted-") {
            let master = MasterKey::from_bytes([1; 32]);
            let r = authorize_encrypted_channel("key", "secret", &socket(1), channel, &master);
            sim.core.handle_channel_auth(&socket(1), channel, Ok(r));
        } else if channel.starts_with("presence-") {
            sim.authorize(&socket(1), channel, Some(r#"{"user_id":"me"}"#));
        } else if channel.starts_with("private-") {
            sim.authorize(&socket(1), channel, None);
        }
        sim.receive(&ServerFrame::SubscriptionSucceeded {
            channel: (*channel).into(),
        });
    }
    sim.drain();
    sim
}

#[test]
fn a_client_event_is_sent_on_a_subscribed_private_channel() {
    let mut sim = subscribed(&["private-chat", "presence-room"]);
    sim.core
        .client_event("private-chat", "client-typing", data())
        .unwrap();
    sim.core
        .client_event("presence-room", "client-typing", data())
        .unwrap();
    assert_eq!(
        sim.transmits(),
        [
            r#"{"event":"client-typing","channel":"private-chat","data":{"text":"hi"}}"#,
            r#"{"event":"client-typing","channel":"presence-room","data":{"text":"hi"}}"#,
        ]
    );
}

#[test]
fn client_events_are_refused_locally_where_the_sdks_refuse_them() {
    let mut sim = subscribed(&["public", "private-encrypted-vault", "private-chat"]);
    let refused = [
        ("public", "client-x"),
        ("private-encrypted-vault", "client-x"),
        ("private-chat", "not-client"),
        ("private-other", "client-x"),
    ];
    for (channel, event) in refused {
        let err = sim.core.client_event(channel, event, data()).unwrap_err();
        assert!(
            matches!(err, SocketError::NotAllowed(_)),
            "{channel} {event}: {err:?}"
        );
        assert!(sim.core.check_client_event(channel, event).is_err());
    }
    assert!(sim.transmits().is_empty());
}

#[test]
fn client_events_wait_for_the_subscription_of_the_current_connection() {
    let mut sim = subscribed(&["private-chat"]);
    sim.advance(std::time::Duration::from_secs(5));
    sim.close(4200);
    sim.open(2);
    let err = sim
        .core
        .client_event("private-chat", "client-x", data())
        .unwrap_err();
    assert!(matches!(err, SocketError::NotAllowed(_)), "{err:?}");
    sim.core.disconnect();
    let err = sim
        .core
        .client_event("private-chat", "client-x", data())
        .unwrap_err();
    assert!(matches!(err, SocketError::NotAllowed(_)), "{err:?}");
}
