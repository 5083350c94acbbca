//! Webhooks against a real HTTP receiver: signatures, every event type's
//! body, batching, the hold and its cancellation, retries, and drops.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::*;
use tokio::sync::mpsc;
use vask_server::config::{WebhookConfig, WebhookFilter};

struct Received {
    headers: hyper::HeaderMap,
    body: Value,
}

/// A webhook receiver that fails the first `fail_first` requests with 500.
async fn receiver(
    fail_first: usize,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Received>,
    Arc<AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tx, counter) = (tx.clone(), counter.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (tx, counter) = (tx.clone(), counter.clone());
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let status = if n < fail_first { 500 } else { 200 };
                        // The receiver checks the signature with pusher-auth, as an app would.
                        let sig = headers["x-pusher-signature"].to_str().unwrap();
                        pusher_auth::verify_webhook("test-secret", &body, sig)
                            .expect("valid signature");
                        if status == 200 {
                            let _ = tx.send(Received {
                                headers,
                                body: serde_json::from_slice(&body).unwrap(),
                            });
                        }
                        let mut r = hyper::Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, rx, calls)
}

fn hook(addr: SocketAddr) -> WebhookConfig {
    WebhookConfig {
        url: format!("http://{addr}/hooks"),
        event_types: Vec::new(),
        filter: WebhookFilter::default(),
        headers: Default::default(),
    }
}

async fn server_with(
    hooks: Vec<WebhookConfig>,
    tune: impl FnOnce(&mut vask_server::Config),
) -> vask_server::Running {
    let mut a = app();
    a.webhooks = hooks;
    let mut c = config(vec![a]);
    c.server.webhooks.batch_ms = 50;
    c.server.webhooks.hold_ms = 400;
    c.server.webhooks.retry_initial_ms = 50;
    c.server.webhooks.timeout_ms = 1000;
    tune(&mut c);
    start(c).await
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a webhook in time")
        .unwrap()
}

/// Waits until /metrics contains `needle`.
async fn metric_eventually(api: &Api, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = api
            .raw("GET", "/metrics", b"")
            .await
            .body
            .as_str()
            .unwrap()
            .to_owned();
        if text.contains(needle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle} not in: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(r: &Received) -> Vec<String> {
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn occupied_then_vacated_after_the_hold_signed_with_key_header() {
    let (addr, mut rx, _) = receiver(0).await;
    let mut h = hook(addr);
    h.event_types = vec!["channel_occupied".into(), "channel_vacated".into()];
    h.headers.insert("x-env".into(), "test".into());
    let s = server_with(vec![h], |_| {}).await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("room").await;
    let r = next(&mut rx).await;
    assert_eq!(r.headers["x-pusher-key"], "test-key");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-env"], "test");
    assert!(r.body["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        r.body["events"],
        json!([{"name":"channel_occupied","channel":"room"}])
    );
    let left = std::time::Instant::now();
    drop(a);
    let r = next(&mut rx).await;
    assert_eq!(
        r.body["events"],
        json!([{"name":"channel_vacated","channel":"room"}])
    );
    assert!(
        left.elapsed() >= Duration::from_millis(400),
        "held for the hold time"
    );
}

#[tokio::test]
async fn a_quick_return_cancels_the_vacated_and_the_occupied() {
    let (addr, mut rx, calls) = receiver(0).await;
    let s = server_with(vec![hook(addr)], |_| {}).await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe_presence(
        "presence-r",
        r#"{"user_id":"1"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    let r = next(&mut rx).await;
    assert_eq!(names(&r), ["channel_occupied", "member_added"]);
    // A page reload: leave and come back within the hold.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut b = connect(s.addr, "test-key").await;
    b.subscribe_presence(
        "presence-r",
        r#"{"user_id":"1"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no webhook for the reload");
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn every_event_type_has_its_body() {
    let (addr, mut rx, _) = receiver(0).await;
    let mut a = app();
    a.webhooks = vec![hook(addr)];
    a.subscription_count = true;
    let mut c = config(vec![a]);
    c.server.webhooks.batch_ms = 50;
    c.server.webhooks.hold_ms = 400;
    let s = start(c).await;
    let mut a = connect(s.addr, "test-key").await;
    let mut b = connect(s.addr, "test-key").await;
    a.subscribe_presence(
        "presence-c",
        r#"{"user_id":"u1"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    b.subscribe_presence(
        "presence-c",
        r#"{"user_id":"u2"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    a.send(r#"{"event":"client-typing","channel":"presence-c","data":{"t":1}}"#)
        .await;
    b.subscribe("cache-x").await;
    b.subscribe("counted").await;
    let mut events = Vec::new();
    while events.len() < 8 {
        let r = next(&mut rx).await;
        events.extend(r.body["events"].as_array().unwrap().iter().cloned());
    }
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        find("member_added"),
        json!({"name":"member_added","channel":"presence-c","user_id":"u1"})
    );
    assert_eq!(
        find("client_event"),
        json!({"name":"client_event","channel":"presence-c","event":"client-typing","data":"{\"t\":1}","socket_id":a.socket_id,"user_id":"u1"})
    );
    assert_eq!(
        find("cache_miss"),
        json!({"name":"cache_miss","channel":"cache-x"})
    );
    let count = events
        .iter()
        .find(|e| e["name"] == "subscription_count" && e["channel"] == "counted")
        .unwrap();
    assert_eq!(
        count,
        &json!({"name":"subscription_count","channel":"counted","subscription_count":1})
    );
    drop(b);
    let mut removed = None;
    for _ in 0..5 {
        let r = next(&mut rx).await;
        if let Some(e) = r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "member_removed")
        {
            removed = Some(e.clone());
            break;
        }
    }
    assert_eq!(
        removed.unwrap(),
        json!({"name":"member_removed","channel":"presence-c","user_id":"u2"})
    );
}

#[tokio::test]
async fn batches_hold_at_most_batch_max_events_and_filters_apply() {
    let (addr, mut rx, _) = receiver(0).await;
    let mut h = hook(addr);
    h.filter.channel_name_starts_with = Some("batch-".into());
    h.event_types = vec!["channel_occupied".into()];
    let s = server_with(vec![h], |c| c.server.webhooks.batch_ms = 2000).await;
    let mut a = connect(s.addr, "test-key").await;
    for i in 0..25 {
        a.subscribe(&format!("batch-{i}")).await;
    }
    a.subscribe("other").await;
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(first.body["events"].as_array().unwrap().len(), 20);
    assert_eq!(second.body["events"].as_array().unwrap().len(), 5);
    let all: Vec<&Value> = first.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["events"].as_array().unwrap())
        .collect();
    assert!(
        all.iter()
            .all(|e| e["channel"].as_str().unwrap().starts_with("batch-"))
    );
}

#[tokio::test]
async fn failures_are_retried_until_delivered() {
    let (addr, mut rx, calls) = receiver(3).await;
    let s = server_with(vec![hook(addr)], |_| {}).await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("retry").await;
    let r = next(&mut rx).await;
    assert_eq!(
        r.body["events"],
        json!([{"name":"channel_occupied","channel":"retry"}])
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4, "three 500s, then success");
    let api = Api::default_app(s.addr);
    metric_eventually(&api, r#"vask_webhook_attempts_failed_total{app="1"} 3"#).await;
    metric_eventually(&api, r#"vask_webhooks_sent_total{app="1"} 1"#).await;
}

#[tokio::test]
async fn after_the_retry_budget_the_batch_is_dropped_and_counted() {
    let (addr, _rx, calls) = receiver(usize::MAX).await;
    let s = server_with(vec![hook(addr)], |c| {
        c.server.webhooks.retry_budget_ms = 400
    })
    .await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("doomed").await;
    let api = Api::default_app(s.addr);
    metric_eventually(
        &api,
        r#"vask_dropped_total{app="1",reason="webhook_retry_budget"} 1"#,
    )
    .await;
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "retried before giving up"
    );
}

#[tokio::test]
async fn shutdown_flushes_held_events() {
    let (addr, mut rx, _) = receiver(0).await;
    let s = server_with(vec![hook(addr)], |c| c.server.webhooks.hold_ms = 60_000).await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("bye").await;
    assert_eq!(names(&next(&mut rx).await), ["channel_occupied"]);
    let stopping = tokio::spawn(s.shutdown());
    let r = next(&mut rx).await;
    assert_eq!(
        r.body["events"],
        json!([{"name":"channel_vacated","channel":"bye"}])
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn https_receivers_behind_a_private_ca() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc as StdArc;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let certs = vec![CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = StdArc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(StdArc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let sig = req.headers()["x-pusher-signature"]
                            .to_str()
                            .unwrap()
                            .to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        pusher_auth::verify_webhook("test-secret", &body, &sig)
                            .expect("valid signature");
                        let _ = tx.send(serde_json::from_slice(&body).unwrap());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let mut h = hook(addr);
    h.url = format!("https://127.0.0.1:{}/hooks", addr.port());
    let s = server_with(vec![h], |c| {
        c.server.webhooks.ca_file = Some(dir.join("ca.pem"))
    })
    .await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("over-tls").await;
    let body = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("webhook in time")
        .unwrap();
    assert_eq!(
        body["events"],
        json!([{"name":"channel_occupied","channel":"over-tls"}])
    );
}
