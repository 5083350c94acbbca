//! `https://` and `wss://` against a vask-server serving TLS with the test
//! certificate of vask-server (localhost and 127.0.0.1, signed by a
//! throwaway CA), and `HttpAuthorizer` against an `https://` auth endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use vask_client::{
    ApiError, HttpAuthorizer, Publisher, PublisherConfig, SocketError, SubscribeFailure,
    Subscriber, SubscriberConfig, TriggerOptions, load_pem_certs,
};
use vask_server::config::{ServerConfig, TlsConfig};
use vask_server::{Config, Running};

use crate::common::*;
use crate::http_authorizer::{TOKEN, handle};

fn material(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../vask-server/tests/tls/{name}"))
}

fn ca() -> Vec<CertificateDer<'static>> {
    load_pem_certs(material("ca.pem")).expect("the test CA")
}

/// A vask-server serving TLS on a free port of 127.0.0.1.
async fn tls_server() -> Running {
    let config = Config {
        server: ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            shutdown_grace_secs: 2,
            drain_secs: 0,
            tls: Some(TlsConfig {
                cert_file: material("cert.pem"),
                key_file: material("key.pem"),
            }),
            ..ServerConfig::default()
        },
        apps: vec![app()],
        cluster: None,
        ..Config::default()
    };
    config.validate().expect("valid test config");
    vask_server::start(config).await.expect("TLS server starts")
}

fn tls_publisher(host: &str, addr: SocketAddr, extra: Vec<CertificateDer<'static>>) -> Publisher {
    let mut config = PublisherConfig::new("1", "vask-key", "vask-secret");
    config.host = host.into();
    config.port = addr.port();
    config.tls = true;
    config.extra_ca_certs = extra;
    config.timeout = WAIT;
    Publisher::new(config).expect("https publisher")
}

fn tls_sub_config(
    host: &str,
    addr: SocketAddr,
    extra: Vec<CertificateDer<'static>>,
) -> SubscriberConfig {
    let mut c = SubscriberConfig::new(host, addr.port(), "vask-key");
    c.tls = true;
    c.extra_ca_certs = extra;
    c.connect_timeout = WAIT;
    c
}

/// The auth endpoint of `http_authorizer`, over TLS with the test
/// certificate.
async fn https_auth_endpoint(publisher: Publisher) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let certs = CertificateDer::pem_file_iter(material("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(material("key.pem")).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (p, acceptor) = (publisher.clone(), acceptor.clone());
            tokio::spawn(async move {
                let Ok(Ok(stream)) = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await else {
                    return;
                };
                let svc = service_fn(move |req| handle(p.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn trigger_over_https_and_receive_over_wss() {
    let server = tls_server().await;
    for host in ["localhost", "127.0.0.1"] {
        let sub = within(
            "wss connect",
            Subscriber::connect(tls_sub_config(host, server.addr, ca())),
        )
        .await
        .expect("connected over wss");
        let channel = sub.subscribe("tls-orders").unwrap();
        let mut created = channel.bind("order-created");
        within("subscribed", channel.subscribed()).await.unwrap();

        let publisher = tls_publisher(host, server.addr, ca());
        within(
            "https trigger",
            publisher.trigger(
                ["tls-orders"],
                "order-created",
                &serde_json::json!({"id": 7}),
                TriggerOptions::default(),
            ),
        )
        .await
        .expect("triggered over https");
        assert_eq!(next(&mut created).await.data, r#"{"id":7}"#);

        // Queries go over the same pooled https client.
        let channels = within("https query", publisher.channels(None, None))
            .await
            .unwrap();
        assert!(channels.channels.contains_key("tls-orders"), "{channels:?}");
        within("disconnect", sub.disconnect()).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn private_channels_through_an_https_auth_endpoint() {
    let server = tls_server().await;
    let publisher = tls_publisher("localhost", server.addr, ca());
    let (auth_addr, endpoint) = https_auth_endpoint(publisher.clone()).await;
    let authorizer = HttpAuthorizer::new(format!(
        "https://localhost:{}/pusher/auth",
        auth_addr.port()
    ))
    .unwrap()
    .with_user_endpoint(format!(
        "https://127.0.0.1:{}/pusher/user-auth",
        auth_addr.port()
    ))
    .unwrap()
    .with_header("Authorization", TOKEN)
    .with_timeout(WAIT)
    .with_extra_ca_certs(&ca())
    .unwrap();
    let sub = within(
        "wss connect",
        Subscriber::connect(
            tls_sub_config("localhost", server.addr, ca()).with_authorizer(authorizer),
        ),
    )
    .await
    .unwrap();
    let private = sub.subscribe("private-tls").unwrap();
    let mut events = private.bind("e");
    within("private", private.subscribed()).await.unwrap();
    within(
        "trigger",
        publisher.trigger(["private-tls"], "e", "secure", TriggerOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut events).await.data, "secure");
    assert_eq!(within("signin", sub.signin()).await.unwrap(), "http-user");

    // Without the CA, the auth endpoint's certificate is not trusted.
    let untrusting = HttpAuthorizer::new(format!(
        "https://localhost:{}/pusher/auth",
        auth_addr.port()
    ))
    .unwrap()
    .with_header("Authorization", TOKEN)
    .with_timeout(WAIT);
    let sub2 = within(
        "wss connect",
        Subscriber::connect(
            tls_sub_config("localhost", server.addr, ca()).with_authorizer(untrusting),
        ),
    )
    .await
    .unwrap();
    let refused = sub2.subscribe("private-tls").unwrap();
    match within("refused", refused.subscribed()).await.unwrap_err() {
        SocketError::Subscribe(SubscribeFailure::Authorizer(e)) => {
            assert_eq!(e.status, None);
            assert!(e.message.contains("TLS"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    within("disconnect", sub.disconnect()).await;
    within("disconnect", sub2.disconnect()).await;
    endpoint.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let server = tls_server().await;
    // Mozilla's roots only: the test CA is unknown.
    let publisher = tls_publisher("localhost", server.addr, Vec::new());
    let err = within("https trigger", publisher.channels(None, None))
        .await
        .unwrap_err();
    match &err {
        ApiError::Tls(m) => assert!(m.to_lowercase().contains("certificate"), "{m}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    let err = within(
        "wss connect",
        Subscriber::connect(tls_sub_config("localhost", server.addr, Vec::new())),
    )
    .await
    .unwrap_err();
    match &err {
        SocketError::Tls(m) => assert!(m.to_lowercase().contains("certificate"), "{m}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    server.shutdown().await;
}

#[test]
fn load_pem_certs_refuses_missing_and_certificate_less_files() {
    assert_eq!(load_pem_certs(material("ca.pem")).unwrap().len(), 1);
    assert!(load_pem_certs(material("no-such.pem")).is_err());
    // A key, no certificate.
    assert!(load_pem_certs(material("key.pem")).is_err());
}
