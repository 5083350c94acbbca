//! Sign-in, events sent to a user, terminating a user's connections,
//! watchlists.

use std::time::Duration;

use vask_client::{
    ConnectionState, FnAuthorizer, SocketError, Subscriber, UserAuthResponse, WatchlistEventName,
};

use crate::common::*;

#[tokio::test]
async fn signin_then_send_to_user() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let ann = connect_as(server.addr, &publisher, "ann", &[]).await;
    let other = connect_as(server.addr, &publisher, "ben", &[]).await;
    let mut inbox = ann.user_events();
    let mut notes = ann.user_bind("note");
    let mut other_inbox = other.user_events();
    assert_eq!(within("signin", ann.signin()).await.unwrap(), "ann");
    assert_eq!(ann.user_id().as_deref(), Some("ann"));
    within("signin", other.signin()).await.unwrap();
    // A second call answers at once.
    assert_eq!(within("again", ann.signin()).await.unwrap(), "ann");

    // The #server-to-user- subscription is made after signin_success; send
    // until it has landed.
    let e = within("user event", async {
        loop {
            publisher
                .send_to_user("ann", "note", &serde_json::json!({"hi": 1}))
                .await
                .unwrap();
            if let Ok(Some(e)) =
                tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
            {
                return e;
            }
        }
    })
    .await;
    assert_eq!(e.name, "note");
    assert_eq!(e.channel, "#server-to-user-ann");
    assert_eq!(e.data, r#"{"hi":1}"#);
    assert_eq!(next(&mut notes).await.name, "note");
    assert_quiet(&mut other_inbox, Duration::from_millis(100)).await;
    // Not listed among the user's channels.
    assert!(ann.channels().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn terminate_closes_only_that_users_connections_for_good() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let target = connect_as(server.addr, &publisher, "gone", &[]).await;
    let bystander = connect_as(server.addr, &publisher, "stays", &[]).await;
    within("signin", target.signin()).await.unwrap();
    within("signin", bystander.signin()).await.unwrap();
    let mut states = target.state_changes();
    let mut errors = target.errors();

    publisher.terminate_user_connections("gone").await.unwrap();
    let e = within("error", errors.recv()).await.unwrap();
    assert_eq!(e.code, Some(4009));
    let last = within("disconnected", async {
        loop {
            let s = states.recv().await.expect("states");
            if let ConnectionState::Disconnected { .. } = s {
                return s;
            }
        }
    })
    .await;
    match last {
        ConnectionState::Disconnected { code, .. } => assert_eq!(code, Some(4009)),
        _ => unreachable!(),
    }
    // No reconnection: the streams end and operations fail.
    assert_eq!(within("states end", states.recv()).await, None);
    assert!(matches!(target.subscribe("x"), Err(SocketError::Closed)));
    assert!(matches!(
        bystander.state(),
        ConnectionState::Connected { .. }
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn watchlist_online_and_offline() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let watcher = connect_as(server.addr, &publisher, "watcher", &["friend"]).await;
    let mut changes = watcher.watchlist_events();
    within("signin", watcher.signin()).await.unwrap();
    let initial = within("initial", changes.recv()).await.unwrap();
    assert_eq!(initial.name, WatchlistEventName::Offline);
    assert_eq!(initial.user_ids, ["friend"]);

    let friend = connect_as(server.addr, &publisher, "friend", &[]).await;
    within("friend signin", friend.signin()).await.unwrap();
    let online = within("online", changes.recv()).await.unwrap();
    assert_eq!(online.name, WatchlistEventName::Online);
    assert_eq!(online.user_ids, ["friend"]);

    friend.disconnect().await;
    let offline = within("offline", changes.recv()).await.unwrap();
    assert_eq!(offline.name, WatchlistEventName::Offline);
    assert_eq!(offline.user_ids, ["friend"]);
    server.shutdown().await;
}

#[tokio::test]
async fn signin_failures_are_reported() {
    let server = server(app()).await;
    // No user closure.
    let no_user = FnAuthorizer::new(|_, _| unreachable!());
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(no_user)),
    )
    .await
    .unwrap();
    let err = within("signin", sub.signin()).await.unwrap_err();
    assert!(matches!(err, SocketError::Signin(_)), "{err:?}");

    // A forged signature: the server answers 4009 and keeps the connection.
    let forged = FnAuthorizer::new(|_, _| unreachable!()).with_user(|socket_id| {
        let user_data = r#"{"id":"mallory"}"#;
        Ok(UserAuthResponse {
            auth: pusher_auth::sign_user("vask-key", "wrong", socket_id, user_data),
            user_data: user_data.into(),
        })
    });
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(forged)),
    )
    .await
    .unwrap();
    let err = within("signin", sub.signin()).await.unwrap_err();
    assert!(matches!(err, SocketError::Signin(_)), "{err:?}");
    assert!(sub.user_id().is_none());
    assert!(matches!(sub.state(), ConnectionState::Connected { .. }));
    server.shutdown().await;
}
