//! Sign-in: through the authorizer, the user's channel after
//! `signin_success`, repeated after a reconnect, failures.

use std::time::Duration;

use pusher_auth::UserAuthResponse;
use pusher_proto::{ChannelEvent, ServerFrame, WatchlistEvent, WatchlistEventName};

use super::*;
use crate::error::AuthorizerError;

const USER_DATA: &str = r#"{"id":"ann","watchlist":["ben"]}"#;

fn user_auth(socket_id: &str) -> UserAuthResponse {
    UserAuthResponse {
        auth: format!("key:{socket_id}"),
        user_data: USER_DATA.into(),
    }
}

/// The sign-in outcomes among `events`.
fn signins(events: &[CoreEvent]) -> Vec<Result<String, String>> {
    events
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Signin(outcome) => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

/// Signs in on connection `n`: the authorizer answers, the server accepts.
fn sign_in(sim: &mut Sim, n: u64) {
    assert_eq!(
        sim.actions(),
        [Action::AuthenticateUser {
            socket_id: socket(n)
        }]
    );
    sim.core
        .handle_user_auth(&socket(n), Ok(user_auth(&socket(n))));
    assert_eq!(
        sim.transmits(),
        [String::from_utf8(
            pusher_proto::ClientFrame::Signin {
                auth: format!("key:{}", socket(n)),
                user_data: USER_DATA.into()
            }
            .encode()
            .to_vec()
        )
        .unwrap()]
    );
    sim.receive(&ServerFrame::SigninSuccess {
        user_data: USER_DATA.into(),
    });
}

#[test]
fn the_user_channel_is_joined_only_after_signin_success() {
    let mut sim = Sim::connected(config());
    assert_eq!(sim.core.signin().unwrap(), None);
    assert_eq!(
        sim.actions(),
        [Action::AuthenticateUser {
            socket_id: socket(1)
        }]
    );
    sim.core
        .handle_user_auth(&socket(1), Ok(user_auth(&socket(1))));
    let sent = sim.transmits();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("pusher:signin"), "{sent:?}");
    assert!(!sent[0].contains("#server-to-user-"));

    sim.receive(&ServerFrame::SigninSuccess {
        user_data: USER_DATA.into(),
    });
    assert_eq!(signins(&sim.events()), [Ok("ann".into())]);
    assert_eq!(
        sim.transmits(),
        [subscribe_frame("#server-to-user-ann", "", None)]
    );
    assert_eq!(sim.core.user_id(), Some("ann"));
    assert_eq!(sim.core.signin().unwrap(), Some("ann".into()));
    assert!(sim.core.channel_names().is_empty(), "not a user's channel");

    // What is sent to the user goes to the user's streams.
    sim.receive(&ServerFrame::ChannelEvent(ChannelEvent {
        event: "note".into(),
        channel: "#server-to-user-ann".into(),
        data: "hi".into(),
        user_id: None,
    }));
    assert!(matches!(
        &sim.events()[..],
        [CoreEvent::User(e)] if e.name == "note" && e.data == "hi"
    ));
}

#[test]
fn signin_is_repeated_after_a_reconnect() {
    let mut sim = Sim::connected(config());
    sim.core.signin().unwrap();
    sign_in(&mut sim, 1);
    sim.drain();

    sim.advance(Duration::from_secs(5));
    sim.close(4200);
    assert_eq!(sim.core.user_id(), None);
    sim.drain();
    sim.open(2);
    assert!(
        sim.transmits().is_empty(),
        "the user channel waits for the new signin_success"
    );
    sign_in(&mut sim, 2);
    assert_eq!(
        sim.transmits(),
        [subscribe_frame("#server-to-user-ann", "", None)]
    );
    assert_eq!(sim.core.user_id(), Some("ann"));
}

#[test]
fn signin_asked_while_connecting_waits_for_the_connection() {
    let mut sim = Sim::new(config());
    assert_eq!(sim.core.signin().unwrap(), None);
    assert!(sim.actions().is_empty());
    sim.open(1);
    sign_in(&mut sim, 1);
    assert_eq!(signins(&sim.events()), [Ok("ann".into())]);
}

#[test]
fn a_4009_answers_a_pending_signin_and_it_is_not_repeated() {
    let mut sim = Sim::connected(config());
    sim.core.signin().unwrap();
    sim.drain();
    sim.core
        .handle_user_auth(&socket(1), Ok(user_auth(&socket(1))));
    sim.drain();
    sim.receive(&ServerFrame::Error {
        code: Some(4009),
        message: "bad signature".into(),
    });
    let events = sim.events();
    assert_eq!(signins(&events), [Err("bad signature".into())]);
    assert!(events.iter().any(|e| matches!(
        e,
        CoreEvent::ServerError(e) if e.code == Some(4009)
    )));

    sim.advance(Duration::from_secs(5));
    sim.close(4200);
    assert_eq!(sim.actions(), [Action::Connect]);
    sim.open(2);
    assert!(sim.actions().is_empty(), "a failed sign-in is not repeated");
}

#[test]
fn authorizer_failures_and_no_authorizer_fail_the_signin() {
    let mut sim = Sim::connected(config());
    sim.core.signin().unwrap();
    sim.drain();
    let error = AuthorizerError::new("nope");
    sim.core.handle_user_auth(&socket(1), Err(error));
    assert_eq!(signins(&sim.events()), [Err("authorizer: nope".into())]);
    assert!(sim.transmits().is_empty());

    let mut sim = Sim::connected(Config {
        has_authorizer: false,
        ..config()
    });
    sim.core.signin().unwrap();
    assert!(sim.actions().is_empty());
    assert_eq!(
        signins(&sim.events()),
        [Err("no authorizer configured".into())]
    );
}

#[test]
fn watchlist_events_are_handed_on_in_order() {
    let mut sim = Sim::connected(config());
    let events = vec![
        WatchlistEvent {
            name: WatchlistEventName::Offline,
            user_ids: vec!["ben".into()],
        },
        WatchlistEvent {
            name: WatchlistEventName::Online,
            user_ids: vec!["ben".into()],
        },
    ];
    sim.receive(&ServerFrame::WatchlistEvents {
        events: events.clone(),
    });
    let got: Vec<WatchlistEvent> = sim
        .events()
        .into_iter()
        .filter_map(|e| match e {
            CoreEvent::Watchlist(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(got, events);
}
