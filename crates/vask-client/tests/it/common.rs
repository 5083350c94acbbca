//! Shared test support: an in-process vask-server on a free port of
//! 127.0.0.1, a publisher and subscribers for it, bounded waits.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use vask_client::{
    AuthorizerError, Event, EventStream, FnAuthorizer, MasterKey, Publisher, PublisherConfig,
    Subscriber, SubscriberConfig,
};
use vask_server::config::ServerConfig;
use vask_server::{AppConfig, Config, Running};

/// The longest any single wait in a test may take.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// The master key the test publisher encrypts with.
pub(crate) const MASTER_KEY: [u8; 32] = [42; 32];

/// Runs `f` within [`WAIT`], failing the test with `what` otherwise.
pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// The built-in development app (client events and subscription counts on).
pub(crate) fn app() -> AppConfig {
    AppConfig::development()
}

/// A server for `app` on a free port.
pub(crate) async fn server(app: AppConfig) -> Running {
    server_on(app, 0).await
}

/// A server for `app` on `port` (0: a free one).
pub(crate) async fn server_on(app: AppConfig, port: u16) -> Running {
    let config = Config {
        server: ServerConfig {
            host: "127.0.0.1".into(),
            port,
            shutdown_grace_secs: 2,
            drain_secs: 0,
            ..ServerConfig::default()
        },
        apps: vec![app],
        cluster: None,
        ..Config::default()
    };
    config.validate().expect("valid test config");
    vask_server::start(config).await.expect("server starts")
}

/// A publisher of the development app at `addr`, with [`MASTER_KEY`].
pub(crate) fn publisher(addr: SocketAddr) -> Publisher {
    let mut config = PublisherConfig::new("1", "vask-key", "vask-secret");
    config.host = addr.ip().to_string();
    config.port = addr.port();
    config.encryption_master_key = Some(MasterKey::from_bytes(MASTER_KEY));
    Publisher::new(config).expect("plain http publisher")
}

/// A subscriber configuration for `addr` with short reconnect delays.
pub(crate) fn sub_config(addr: SocketAddr) -> SubscriberConfig {
    let mut c = SubscriberConfig::new(addr.ip().to_string(), addr.port(), "vask-key");
    c.reconnect_min_delay = Duration::from_millis(50);
    c.reconnect_max_delay = Duration::from_millis(400);
    c
}

/// An authorizer that signs locally with `publisher` as user `user`
/// (presence `channel_data` and sign-in `user_data` with `watchlist`).
pub(crate) fn signer(publisher: &Publisher, user: &str, watchlist: &[&str]) -> FnAuthorizer {
    let (p_channel, p_user) = (publisher.clone(), publisher.clone());
    let channel_data =
        serde_json::json!({"user_id": user, "user_info": {"name": user}}).to_string();
    let user_data =
        serde_json::json!({"id": user, "user_info": {"name": user}, "watchlist": watchlist})
            .to_string();
    FnAuthorizer::new(move |socket_id, channel| {
        let data = channel
            .starts_with("presence-")
            .then_some(channel_data.as_str());
        p_channel
            .authorize_channel(socket_id, channel, data)
            .map_err(|e| AuthorizerError::new(e.to_string()))
    })
    .with_user(move |socket_id| {
        p_user
            .authenticate_user(socket_id, user_data.as_str())
            .map_err(|e| AuthorizerError::new(e.to_string()))
    })
}

/// Connects a subscriber to `addr`, signing as `user`.
pub(crate) async fn connect_as(
    addr: SocketAddr,
    publisher: &Publisher,
    user: &str,
    watchlist: &[&str],
) -> Subscriber {
    let config = sub_config(addr).with_authorizer(signer(publisher, user, watchlist));
    within("connect", Subscriber::connect(config))
        .await
        .expect("connected")
}

/// Connects a subscriber without authorizer.
pub(crate) async fn connect(addr: SocketAddr) -> Subscriber {
    within("connect", Subscriber::connect(sub_config(addr)))
        .await
        .expect("connected")
}

/// The next event of `stream`.
pub(crate) async fn next(stream: &mut EventStream<Event>) -> Event {
    within("next event", stream.recv())
        .await
        .expect("stream still open")
}

/// The next event named `name`, skipping others.
pub(crate) async fn next_named(stream: &mut EventStream<Event>, name: &str) -> Event {
    within(&format!("event {name}"), async {
        loop {
            let e = stream.recv().await.expect("stream still open");
            if e.name == name {
                return e;
            }
        }
    })
    .await
}

/// Asserts nothing arrives on `stream` for `d`.
pub(crate) async fn assert_quiet<T: std::fmt::Debug>(stream: &mut EventStream<T>, d: Duration) {
    if let Ok(Some(item)) = tokio::time::timeout(d, stream.recv()).await {
        panic!("expected nothing, got {item:?}");
    }
}
