//! Liveness: a ping after the activity timeout, a new connection when the
//! pong does not come, the connect timeout.

use std::time::Duration;

use pusher_proto::ServerFrame;

use super::*;
use crate::error::SocketError;

const PING: &str = r#"{"event":"pusher:ping","data":{}}"#;
const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

#[test]
fn a_ping_after_silence_then_a_new_connection_without_pong() {
    let mut sim = Sim::connected(config());
    let opened = sim.now;
    assert_eq!(sim.core.poll_timeout(), Some(opened + SERVER_ACTIVITY));

    sim.advance(SERVER_ACTIVITY - Duration::from_secs(1));
    assert!(sim.transmits().is_empty(), "not yet");
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.transmits(), [PING]);
    assert_eq!(
        sim.core.poll_timeout(),
        Some(sim.now + Duration::from_secs(30)),
        "now the pong deadline"
    );

    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.actions(), [Action::Abort, Action::Connect]);
    assert_eq!(
        sim.states(),
        [ConnectionState::Connecting],
        "replaced at once, without a wait"
    );
    assert_eq!(sim.core.socket_id(), None);
}

#[test]
fn any_frame_answers_the_ping() {
    let mut sim = Sim::connected(config());
    sim.advance(SERVER_ACTIVITY);
    assert_eq!(sim.transmits(), [PING]);
    sim.advance(Duration::from_secs(10));
    sim.receive(&ServerFrame::Pong);
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + SERVER_ACTIVITY));
    sim.advance(Duration::from_secs(30));
    assert!(sim.actions().is_empty(), "still connected");

    // Any message proves it, WebSocket pings included.
    sim.advance(SERVER_ACTIVITY);
    assert_eq!(sim.transmits(), [PING]);
    sim.core.handle_alive(sim.now);
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + SERVER_ACTIVITY));
}

#[test]
fn the_configured_activity_timeout_wins_when_shorter() {
    let sim = Sim::connected(Config {
        activity_timeout: Some(Duration::from_secs(5)),
        ..config()
    });
    assert_eq!(
        sim.core.poll_timeout(),
        Some(sim.now + Duration::from_secs(5))
    );
    let sim = Sim::connected(Config {
        activity_timeout: Some(Duration::from_secs(500)),
        ..config()
    });
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + SERVER_ACTIVITY));
}

#[test]
fn a_server_ping_gets_a_pong() {
    let mut sim = Sim::connected(config());
    sim.receive(&ServerFrame::Ping);
    assert_eq!(sim.transmits(), [PONG]);
}

#[test]
fn an_early_or_repeated_timeout_call_does_nothing() {
    let mut sim = Sim::connected(config());
    for _ in 0..3 {
        sim.advance(Duration::ZERO);
    }
    assert!(sim.transmits().is_empty());
    assert!(sim.actions().is_empty());
    assert!(sim.events().is_empty());
}

#[test]
fn no_handshake_in_time_fails_the_first_attempt() {
    let mut sim = Sim::new(config());
    sim.core.handle_connected(sim.now);
    assert_eq!(
        sim.core.poll_timeout(),
        Some(sim.now + Duration::from_secs(10))
    );
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.actions(), [Action::Abort, Action::Stop]);
    let events = sim.events();
    assert!(matches!(
        &events[0],
        CoreEvent::Ready(Err(SocketError::Connect(m))) if m == "no handshake within 10s"
    ));
    assert!(matches!(events.last(), Some(CoreEvent::Stopped)));
    assert_eq!(sim.core.poll_timeout(), None);
}

#[test]
fn no_handshake_in_time_later_is_retried_after_the_backoff() {
    let mut sim = Sim::connected(config());
    sim.advance(Duration::from_secs(5));
    sim.core
        .handle_closed(TransportEnd::Error("reset".into()), sim.now);
    sim.drain();
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.actions(), [Action::Connect]);
    assert_eq!(sim.states(), [ConnectionState::Connecting]);
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.actions(), [Action::Abort]);
    assert!(matches!(
        &sim.states()[..],
        [ConnectionState::Unavailable { .. }]
    ));
}
