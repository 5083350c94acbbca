//! The next connection by close code class, the backoff, the first
//! attempt, disconnecting.

use std::time::Duration;

use pusher_proto::ServerFrame;

use super::*;
use crate::error::{SocketError, SubscribeFailure};

/// Connected for `uptime`, then closed by the server with `code`: the
/// state that follows.
fn closed_after(uptime: Duration, code: u16) -> (Sim, Vec<ConnectionState>) {
    closed_after_with(config(), uptime, code)
}

fn closed_after_with(config: Config, uptime: Duration, code: u16) -> (Sim, Vec<ConnectionState>) {
    let mut sim = Sim::connected(config);
    sim.advance(uptime);
    sim.drain();
    sim.close(code);
    let states = sim.states();
    (sim, states)
}

/// The wait of an `Unavailable` state.
fn wait_of(states: &[ConnectionState]) -> Duration {
    match states {
        [ConnectionState::Unavailable { retry_in }] => *retry_in,
        other => panic!("not a wait: {other:?}"),
    }
}

#[test]
fn codes_4000_to_4099_stop_for_good_with_the_error_message() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("news").unwrap();
    sim.drain();
    sim.receive(&ServerFrame::Error {
        code: Some(4009),
        message: "go away".into(),
    });
    sim.close(4009);
    let events = sim.events();
    assert_eq!(
        statuses(&events),
        [(
            "news".into(),
            SubStatus::Failed(SubscribeFailure::Unsubscribed)
        )]
    );
    assert!(events.iter().any(|e| matches!(
        e,
        CoreEvent::State(ConnectionState::Disconnected { code: Some(4009), reason })
            if reason == "go away"
    )));
    assert!(matches!(events.last(), Some(CoreEvent::Stopped)));
    assert_eq!(sim.actions(), [Action::Stop]);
    assert!(sim.core.is_stopped());
    assert!(matches!(sim.core.subscribe("x"), Err(SocketError::Closed)));
    assert!(matches!(sim.core.signin(), Err(SocketError::Closed)));
}

#[test]
fn codes_4100_to_4199_wait_at_least_a_second() {
    // Even when the backoff is shorter.
    let quick = Config {
        reconnect_min_delay: Duration::from_millis(50),
        reconnect_max_delay: Duration::from_millis(200),
        ..config()
    };
    let (mut sim, states) = closed_after_with(quick, Duration::from_secs(5), 4100);
    let wait = wait_of(&states);
    assert!(wait >= Duration::from_secs(1), "{wait:?}");
    assert_eq!(sim.core.poll_timeout(), Some(sim.now + wait));
    sim.advance(wait - Duration::from_millis(1));
    assert!(sim.actions().is_empty());
    sim.advance(Duration::from_millis(1));
    assert_eq!(sim.actions(), [Action::Connect]);
}

#[test]
fn codes_4200_to_4299_reconnect_at_once() {
    let (mut sim, states) = closed_after(Duration::from_secs(5), 4201);
    assert_eq!(states, [ConnectionState::Connecting]);
    assert_eq!(sim.actions(), [Action::Connect]);
}

#[test]
fn a_4200_close_right_after_opening_waits_for_the_backoff() {
    let (_, states) = closed_after(Duration::from_millis(300), 4200);
    let wait = wait_of(&states);
    assert!(wait >= Duration::from_secs(1) && wait < Duration::from_millis(1250));
}

#[test]
fn codes_4300_and_up_as_close_codes_stop_as_pusher_js_does() {
    let (mut sim, _) = closed_after(Duration::from_secs(5), 4301);
    assert_eq!(sim.actions(), [Action::Stop]);
    // Other codes from 4400 are retried after the backoff.
    let (_, states) = closed_after(Duration::from_secs(5), 4500);
    wait_of(&states);
}

#[test]
fn network_failures_back_off_exponentially_up_to_the_maximum() {
    let mut sim = Sim::connected(config());
    let mut waits = Vec::new();
    sim.core
        .handle_closed(TransportEnd::Error("reset".into()), sim.now);
    for _ in 0..7 {
        let wait = wait_of(&sim.states());
        waits.push(wait);
        sim.advance(wait);
        assert_eq!(sim.actions(), [Action::Connect]);
        sim.drain();
        sim.core
            .handle_closed(TransportEnd::Error("connection refused".into()), sim.now);
    }
    let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
    for (i, base) in [1.0, 2.0, 4.0, 8.0, 16.0].into_iter().enumerate() {
        assert!(
            secs[i] >= base && secs[i] < base * 1.25,
            "wait {i}: {secs:?}"
        );
    }
    assert_eq!(waits[5], Duration::from_secs(30));
    assert_eq!(waits[6], Duration::from_secs(30));

    // A connection resets the backoff.
    let wait = wait_of(&sim.states());
    sim.advance(wait);
    sim.open(2);
    sim.drain();
    sim.core.handle_closed(TransportEnd::Eof, sim.now);
    assert!(wait_of(&sim.states()) < Duration::from_millis(1250));
}

#[test]
fn the_same_seed_gives_the_same_waits() {
    let waits = || {
        let (_, states) = closed_after(Duration::from_secs(5), 4100);
        wait_of(&states)
    };
    assert_eq!(waits(), waits());
}

#[test]
fn a_refused_first_attempt_stops_with_its_error() {
    let mut sim = Sim::new(config());
    sim.core.handle_connected(sim.now);
    sim.receive(&ServerFrame::Error {
        code: Some(4001),
        message: "App key k not in this cluster".into(),
    });
    sim.close(4001);
    let events = sim.events();
    assert!(matches!(
        &events[0],
        CoreEvent::Ready(Err(SocketError::Refused { code: 4001, message }))
            if message == "App key k not in this cluster"
    ));
    assert!(events.iter().any(|e| matches!(
        e,
        CoreEvent::State(ConnectionState::Disconnected {
            code: Some(4001),
            ..
        })
    )));
    assert_eq!(sim.actions(), [Action::Stop]);
}

#[test]
fn a_first_attempt_failing_at_tls_or_tcp_stops_with_its_error() {
    let mut sim = Sim::new(config());
    sim.core
        .handle_closed(TransportEnd::Tls("untrusted".into()), sim.now);
    assert!(matches!(
        &sim.events()[0],
        CoreEvent::Ready(Err(SocketError::Tls(m))) if m == "untrusted"
    ));
    let mut sim = Sim::new(config());
    sim.core
        .handle_closed(TransportEnd::Error("IO error: refused".into()), sim.now);
    let events = sim.events();
    assert!(matches!(
        &events[0],
        CoreEvent::Ready(Err(SocketError::Connect(_)))
    ));
    assert!(events.iter().any(|e| matches!(
        e,
        CoreEvent::State(ConnectionState::Disconnected { code: None, reason })
            if reason == "cannot connect: IO error: refused"
    )));
}

#[test]
fn the_first_connection_is_ready_once_connected() {
    let mut sim = Sim::new(config());
    sim.open(1);
    let events = sim.events();
    assert!(matches!(
        &events[..],
        [
            CoreEvent::State(ConnectionState::Connected { socket_id }),
            CoreEvent::Ready(Ok(()))
        ] if *socket_id == socket(1)
    ));
    // Later connections are not "ready" again.
    sim.advance(Duration::from_secs(5));
    sim.close(4200);
    sim.open(2);
    assert!(
        !sim.events()
            .iter()
            .any(|e| matches!(e, CoreEvent::Ready(_)))
    );
}

#[test]
fn disconnect_closes_after_the_frames_already_queued() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe("news").unwrap();
    sim.core.disconnect();
    assert_eq!(sim.transmits(), [subscribe_frame("news", "", None)]);
    assert_eq!(sim.actions(), [Action::Close, Action::Stop]);
    let states = sim.states();
    assert_eq!(
        states,
        [ConnectionState::Disconnected {
            code: None,
            reason: "disconnected".into()
        }]
    );
    // Idempotent; and what the old transport does next is not heard.
    sim.core.disconnect();
    sim.close(4200);
    assert!(sim.actions().is_empty());
    assert!(sim.events().is_empty());
}

#[test]
fn disconnect_while_connecting_drops_the_attempt() {
    let mut sim = Sim::new(config());
    sim.core.disconnect();
    assert_eq!(sim.actions(), [Action::Abort, Action::Stop]);
    // While waiting to reconnect there is nothing to drop.
    let (mut sim, _) = closed_after(Duration::from_secs(5), 4100);
    sim.core.disconnect();
    assert_eq!(sim.actions(), [Action::Stop]);
}
