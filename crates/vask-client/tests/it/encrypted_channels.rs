//! End-to-end encrypted channels: the publisher encrypts, the subscriber
//! decrypts with the shared secret from its authorizer; the server only
//! relays ciphertext.

use serde_json::json;
use vask_client::{ApiError, ChannelAuthResponse, FnAuthorizer, Subscriber, TriggerOptions};

use crate::common::*;

#[tokio::test]
async fn an_encrypted_round_trip_delivers_plaintext() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect_as(server.addr, &publisher, "e", &[]).await;
    let channel = sub.subscribe("private-encrypted-vault").unwrap();
    let mut secrets = channel.bind("secret");
    within("subscribed", channel.subscribed()).await.unwrap();

    publisher
        .trigger(
            ["private-encrypted-vault"],
            "secret",
            &json!({"pin": 1234}),
            TriggerOptions::default(),
        )
        .await
        .unwrap();
    let e = next(&mut secrets).await;
    assert_eq!(e.data, r#"{"pin":1234}"#);

    // What the server holds is ciphertext: the cache of an encrypted cache
    // channel shows it.
    let cached = sub.subscribe("private-encrypted-cache-vault").unwrap();
    within("cache channel", cached.subscribed()).await.unwrap();
    publisher
        .trigger(
            ["private-encrypted-cache-vault"],
            "secret",
            "top secret",
            TriggerOptions::default(),
        )
        .await
        .unwrap();
    let info = publisher
        .channel("private-encrypted-cache-vault", Some("cache"))
        .await
        .unwrap();
    let stored = info.cache.expect("cached").data;
    assert!(!stored.contains("top secret"));
    let payload: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert!(payload["nonce"].is_string() && payload["ciphertext"].is_string());
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_shared_secret_gives_a_decryption_error() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let p = publisher.clone();
    let wrong_key = FnAuthorizer::new(move |socket_id, channel| {
        let mut r: ChannelAuthResponse = p.authorize_channel(socket_id, channel, None).unwrap();
        r.shared_secret = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
        Ok(r)
    });
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(wrong_key)),
    )
    .await
    .unwrap();
    let channel = sub.subscribe("private-encrypted-x").unwrap();
    let mut events = channel.events();
    within("subscribed", channel.subscribed()).await.unwrap();
    publisher
        .trigger(
            ["private-encrypted-x"],
            "e",
            "hidden",
            TriggerOptions::default(),
        )
        .await
        .unwrap();
    let e = next_named(&mut events, "pusher:decryption_error").await;
    let v: serde_json::Value = e.json().unwrap();
    assert_eq!(v["event"], "e");
    assert!(!e.data.contains("hidden"));
    server.shutdown().await;
}

#[tokio::test]
async fn an_encrypted_channel_without_shared_secret_is_not_subscribed() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let p = publisher.clone();
    let no_secret = FnAuthorizer::new(move |socket_id, channel| {
        let mut r = p.authorize_channel(socket_id, channel, None).unwrap();
        r.shared_secret = None;
        Ok(r)
    });
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(no_secret)),
    )
    .await
    .unwrap();
    let channel = sub.subscribe("private-encrypted-y").unwrap();
    let err = within("refused", channel.subscribed()).await.unwrap_err();
    assert!(err.to_string().contains("shared_secret"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_publisher_refuses_what_encryption_forbids() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let err = publisher
        .trigger(
            ["private-encrypted-a", "public"],
            "e",
            "d",
            TriggerOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidArgument(_)), "{err:?}");

    let mut config = publisher.config().clone();
    config.encryption_master_key = None;
    let keyless = vask_client::Publisher::new(config).unwrap();
    let err = keyless
        .trigger(["private-encrypted-a"], "e", "d", TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Encryption(_)), "{err:?}");
    server.shutdown().await;
}
