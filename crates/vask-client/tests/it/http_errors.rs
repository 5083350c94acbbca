//! Typed errors: what the server refuses, and what cannot reach it.

use vask_client::{
    ApiError, Publisher, PublisherConfig, SocketError, Subscriber, SubscriberConfig, TriggerOptions,
};

use crate::common::*;

fn config_for(server: &vask_server::Running) -> PublisherConfig {
    let mut c = PublisherConfig::new("1", "vask-key", "vask-secret");
    c.host = "127.0.0.1".into();
    c.port = server.addr.port();
    c
}

#[tokio::test]
async fn the_server_refusals_map_to_variants() {
    let server = server(app()).await;

    let mut wrong_secret = config_for(&server);
    wrong_secret.secret = "nope".into();
    let err = Publisher::new(wrong_secret)
        .unwrap()
        .trigger(["c"], "e", "d", TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized(_)), "{err:?}");

    let mut unknown_app = config_for(&server);
    unknown_app.app_id = "999".into();
    let err = Publisher::new(unknown_app)
        .unwrap()
        .trigger(["c"], "e", "d", TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound(_)), "{err:?}");

    let publisher = publisher(server.addr);
    let big = "x".repeat(64 * 1024 + 1);
    let err = publisher
        .trigger(["c"], "e", big.as_str(), TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TooLarge(_)), "{err:?}");

    let err = publisher
        .trigger(["c"], "pusher:reserved", "d", TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");

    // The same connection keeps working after refusals (keep-alive).
    publisher
        .trigger(["c"], "e", "d", TriggerOptions::default())
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_disabled_app_is_forbidden_on_both_sides() {
    let mut app = app();
    app.enabled = false;
    let server = server(app).await;
    let err = publisher(server.addr)
        .trigger(["c"], "e", "d", TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Forbidden(_)), "{err:?}");
    let err = within("refused", Subscriber::connect(sub_config(server.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SocketError::Refused { code: 4003, .. }),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_4001() {
    let server = server(app()).await;
    let mut config = sub_config(server.addr);
    config.key = "who-knows".into();
    let err = within("refused", Subscriber::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SocketError::Refused { code: 4001, .. }),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    // Bind then drop: a port of 127.0.0.1 with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = PublisherConfig::new("1", "vask-key", "vask-secret");
    config.port = port;
    let err = Publisher::new(config)
        .unwrap()
        .channels(None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");

    let err = within(
        "connect",
        Subscriber::connect(SubscriberConfig::new("127.0.0.1", port, "vask-key")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SocketError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn bad_tls_settings_are_refused_up_front() {
    let bogus = vec![vask_client::CertificateDer::from(vec![1, 2, 3])];
    let mut p = PublisherConfig::new("1", "k", "s");
    p.tls = true;
    p.extra_ca_certs = bogus.clone();
    assert!(matches!(Publisher::new(p), Err(ApiError::Tls(_))));
    let mut s = SubscriberConfig::new("127.0.0.1", 1, "k");
    s.tls = true;
    s.extra_ca_certs = bogus;
    assert!(matches!(
        within("connect", Subscriber::connect(s)).await,
        Err(SocketError::Tls(_))
    ));
    // Not a valid TLS server name.
    let mut s = SubscriberConfig::new("bad host!", 1, "k");
    s.tls = true;
    assert!(matches!(
        within("connect", Subscriber::connect(s)).await,
        Err(SocketError::Tls(_))
    ));
}
