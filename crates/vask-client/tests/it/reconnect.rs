//! A server restart: clients get 4200, reconnect to the new server on the
//! same port, resubscribe and sign in again without user code.

use std::time::Duration;

use vask_client::{ConnectionState, TriggerOptions};

use crate::common::*;

#[tokio::test]
async fn clients_come_back_after_a_server_restart() {
    let server = server(app()).await;
    let port = server.addr.port();
    let publisher = publisher(server.addr);
    let sub = connect_as(server.addr, &publisher, "phoenix", &[]).await;
    let old_socket = sub.socket_id().unwrap();
    let public = sub.subscribe("news").unwrap();
    let private = sub.subscribe("private-desk").unwrap();
    let presence = sub.subscribe("presence-hall").unwrap();
    let (mut news, mut desk) = (public.bind("headline"), private.bind("memo"));
    let mut inbox = sub.user_events();
    for c in [&public, &private, &presence] {
        within("subscribed", c.subscribed()).await.unwrap();
    }
    within("signin", sub.signin()).await.unwrap();
    let mut hall = presence.events();
    let mut states = sub.state_changes();

    server.shutdown().await;
    // 4200 (reconnect immediately): the client goes looking for a server.
    within("leaves Connected", async {
        loop {
            match states.recv().await.unwrap() {
                ConnectionState::Connecting | ConnectionState::Unavailable { .. } => return,
                ConnectionState::Disconnected { code, reason } => {
                    panic!("gave up: {code:?} {reason}")
                }
                ConnectionState::Connected { .. } => {}
            }
        }
    })
    .await;
    assert!(!public.is_subscribed());

    let server = server_on(app(), port).await;
    let new_socket = within("reconnected", async {
        loop {
            if let ConnectionState::Connected { socket_id } = states.recv().await.unwrap() {
                return socket_id;
            }
        }
    })
    .await;
    assert_ne!(new_socket, old_socket);
    assert_eq!(sub.socket_id().as_deref(), Some(new_socket.as_str()));
    for c in [&public, &private, &presence] {
        within("resubscribed", c.subscribed()).await.unwrap();
    }
    // The presence channel's new member list has us in it.
    let ok = next_named(&mut hall, "pusher:subscription_succeeded").await;
    assert!(ok.data.contains("phoenix"), "{}", ok.data);
    assert_eq!(presence.me().unwrap().id, "phoenix");

    // The same streams get the new server's events.
    let publisher = crate::common::publisher(server.addr);
    publisher
        .trigger(["news"], "headline", "back", TriggerOptions::default())
        .await
        .unwrap();
    publisher
        .trigger(["private-desk"], "memo", "again", TriggerOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut news).await.data, "back");
    assert_eq!(next(&mut desk).await.data, "again");

    // Signed in again, and the user channel rejoined.
    let e = within("user event", async {
        loop {
            publisher
                .send_to_user("phoenix", "ping", "1")
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
    assert_eq!(e.name, "ping");
    assert_eq!(sub.user_id().as_deref(), Some("phoenix"));
    server.shutdown().await;
}
