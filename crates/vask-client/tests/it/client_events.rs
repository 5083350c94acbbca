//! Client events: sent by one subscriber, relayed to the others.

use std::time::Duration;

use serde_json::json;
use vask_client::SocketError;

use crate::common::*;

#[tokio::test]
async fn client_events_reach_the_others_with_the_sender_id() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let alice = connect_as(server.addr, &publisher, "alice", &[]).await;
    let bob = connect_as(server.addr, &publisher, "bob", &[]).await;
    let (ra, rb) = (
        alice.subscribe("presence-chat").unwrap(),
        bob.subscribe("presence-chat").unwrap(),
    );
    let (mut ta, mut tb) = (ra.bind("client-typing"), rb.bind("client-typing"));
    within("a", ra.subscribed()).await.unwrap();
    within("b", rb.subscribed()).await.unwrap();

    ra.trigger("client-typing", &json!({"text": "hi"}))
        .await
        .unwrap();
    let e = next(&mut tb).await;
    assert_eq!(e.data, r#"{"text":"hi"}"#);
    assert_eq!(e.user_id.as_deref(), Some("alice"));
    // Never echoed to the sender.
    assert_quiet(&mut ta, Duration::from_millis(150)).await;

    // Private channels relay too (no user id).
    let (pa, pb) = (
        alice.subscribe("private-pair").unwrap(),
        bob.subscribe("private-pair").unwrap(),
    );
    let mut ping = pb.bind("client-ping");
    within("pa", pa.subscribed()).await.unwrap();
    within("pb", pb.subscribed()).await.unwrap();
    pa.trigger("client-ping", "text").await.unwrap();
    let e = next(&mut ping).await;
    assert_eq!((e.data.as_str(), e.user_id), ("text", None));
    server.shutdown().await;
}

#[tokio::test]
async fn client_events_are_checked_before_sending() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect_as(server.addr, &publisher, "u", &[]).await;
    let public = sub.subscribe("public-room").unwrap();
    let private = sub.subscribe("private-room").unwrap();
    let encrypted = sub.subscribe("private-encrypted-room").unwrap();
    within("public", public.subscribed()).await.unwrap();
    within("private", private.subscribed()).await.unwrap();
    within("encrypted", encrypted.subscribed()).await.unwrap();
    for (channel, event) in [
        (&public, "client-x"),
        (&encrypted, "client-x"),
        (&private, "not-client"),
    ] {
        let err = channel.trigger(event, "d").await.unwrap_err();
        assert!(matches!(err, SocketError::NotAllowed(_)), "{err:?}");
    }
    private.trigger("client-ok", "d").await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_rate_limit_arrives_as_an_error() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect_as(server.addr, &publisher, "fast", &[]).await;
    let mut errors = sub.errors();
    let channel = sub.subscribe("private-fast").unwrap();
    within("subscribed", channel.subscribed()).await.unwrap();
    for i in 0..12 {
        channel.trigger("client-burst", &i).await.unwrap();
    }
    let e = within("4301", errors.recv()).await.unwrap();
    assert_eq!(e.code, Some(4301), "{e:?}");
    // The connection stays open.
    assert!(matches!(
        sub.state(),
        vask_client::ConnectionState::Connected { .. }
    ));
    server.shutdown().await;
}
