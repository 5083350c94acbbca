//! Private channels: the authorizer signs, the server checks.

use vask_client::{
    AuthorizerError, ChannelAuthResponse, FnAuthorizer, SocketError, SubscribeFailure, Subscriber,
    SubscriptionErrorKind, TriggerOptions,
};

use crate::common::*;

#[tokio::test]
async fn a_private_channel_subscribes_with_the_closure_authorizer() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect_as(server.addr, &publisher, "u1", &[]).await;
    let channel = sub.subscribe("private-orders").unwrap();
    let mut events = channel.bind("created");
    within("subscribed", channel.subscribed()).await.unwrap();
    publisher
        .trigger(
            ["private-orders"],
            "created",
            "{\"id\":1}",
            TriggerOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut events).await.data, "{\"id\":1}");
    server.shutdown().await;
}

#[tokio::test]
async fn without_an_authorizer_a_private_channel_fails() {
    let server = server(app()).await;
    let sub = connect(server.addr).await;
    let channel = sub.subscribe("private-x").unwrap();
    let mut events = channel.events();
    let err = within("refused", channel.subscribed()).await.unwrap_err();
    assert!(
        matches!(err, SocketError::Subscribe(SubscribeFailure::Authorizer(_))),
        "{err:?}"
    );
    let e = next(&mut events).await;
    assert_eq!(e.name, "pusher:subscription_error");
    assert!(e.data.contains("AuthError"), "{}", e.data);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_signature_is_refused_by_the_server_and_the_connection_stays() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let forger = FnAuthorizer::new(|socket_id, channel| {
        Ok(vask_client::ChannelAuthResponse {
            auth: pusher_auth::sign_channel("vask-key", "not-the-secret", socket_id, channel, None),
            channel_data: None,
            shared_secret: None,
        })
    });
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(forger)),
    )
    .await
    .unwrap();
    let channel = sub.subscribe("private-y").unwrap();
    let err = within("refused", channel.subscribed()).await.unwrap_err();
    match err {
        SocketError::Subscribe(SubscribeFailure::Refused(e)) => {
            assert_eq!(e.kind, SubscriptionErrorKind::AuthError);
            assert_eq!(e.status, 401);
        }
        other => panic!("{other:?}"),
    }
    // Still connected: a public channel works.
    let public = sub.subscribe("still-open").unwrap();
    let mut events = public.bind("e");
    within("public", public.subscribed()).await.unwrap();
    publisher
        .trigger(["still-open"], "e", "ok", TriggerOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut events).await.data, "ok");
    server.shutdown().await;
}

#[tokio::test]
async fn an_authorizer_error_is_reported_with_its_status() {
    let server = server(app()).await;
    let refusing = FnAuthorizer::new(|_, _| -> Result<ChannelAuthResponse, AuthorizerError> {
        Err(AuthorizerError {
            status: Some(403),
            message: "not yours".into(),
        })
    });
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(refusing)),
    )
    .await
    .unwrap();
    let channel = sub.subscribe("private-z").unwrap();
    let mut errors = channel.bind("pusher:subscription_error");
    let err = within("refused", channel.subscribed()).await.unwrap_err();
    assert!(err.to_string().contains("not yours"), "{err}");
    let e = next(&mut errors).await;
    let v: serde_json::Value = e.json().unwrap();
    assert_eq!(v["status"], 403);
    assert_eq!(v["type"], "AuthError");
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_channel_names_are_refused_locally() {
    let server = server(app()).await;
    let sub = connect(server.addr).await;
    assert!(matches!(
        sub.subscribe("has space"),
        Err(SocketError::InvalidChannel(_))
    ));
    assert!(matches!(
        sub.subscribe("#server-to-user-1"),
        Err(SocketError::InvalidChannel(_))
    ));
    server.shutdown().await;
}
