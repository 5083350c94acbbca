//! Usage as Vask bills it and the quotas on it, over real sockets with the
//! repo's own publisher and subscriber: N publishes to a channel of M
//! subscribers are N broadcasts and N x M deliveries, on one node and on
//! two nodes over a real Redis; quotas refuse at the exact boundary (HTTP
//! 403, `pusher:error` for client events, all-or-nothing for batches); the
//! API rate limit answers 429 with `Retry-After`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::*;
use support::*;
use vask_client::{
    ApiError, AuthorizerError, BatchEvent, Event, EventStream, FnAuthorizer, Publisher,
    PublisherConfig, Subscriber, SubscriberConfig, TriggerOptions,
};
use vask_server::AppConfig;
use vask_server::config::AppLimits;

/// Usage reports cross the cluster every second: a figure is everywhere
/// within this.
const PROPAGATION: Duration = Duration::from_secs(4);

fn limited(f: impl FnOnce(&mut AppLimits)) -> AppConfig {
    let mut a = app();
    f(&mut a.limits);
    a
}

fn publisher(addr: SocketAddr) -> Publisher {
    let mut c = PublisherConfig::new("1", "test-key", "test-secret");
    c.host = addr.ip().to_string();
    c.port = addr.port();
    Publisher::new(c).unwrap()
}

/// A subscriber that signs private channels locally with `publisher`.
async fn subscriber(addr: SocketAddr, publisher: &Publisher) -> Subscriber {
    let p = publisher.clone();
    let auth = FnAuthorizer::new(move |socket_id, channel| {
        p.authorize_channel(socket_id, channel, None)
            .map_err(|e| AuthorizerError::new(e.to_string()))
    });
    let mut c = SubscriberConfig::new(addr.ip().to_string(), addr.port(), "test-key");
    c.reconnect_min_delay = Duration::from_millis(50);
    let c = c.with_authorizer(auth);
    tokio::time::timeout(WAIT, Subscriber::connect(c))
        .await
        .expect("connected in time")
        .expect("connected")
}

/// `event` on `channel` for each subscriber, subscribed.
async fn listeners(subs: &[&Subscriber], channel: &str, event: &str) -> Vec<EventStream<Event>> {
    let mut out = Vec::new();
    for s in subs {
        let ch = s.subscribe(channel).unwrap();
        out.push(ch.bind(event));
        tokio::time::timeout(WAIT, ch.subscribed())
            .await
            .expect("subscribed in time")
            .unwrap();
    }
    out
}

async fn next(stream: &mut EventStream<Event>) -> Event {
    tokio::time::timeout(WAIT, stream.recv())
        .await
        .expect("an event in time")
        .expect("stream open")
}

async fn quiet(stream: &mut EventStream<Event>, ms: u64) {
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(ms), stream.recv()).await {
        panic!("expected nothing, got {e:?}");
    }
}

async fn trigger(p: &Publisher, channels: &[&str]) -> Result<(), ApiError> {
    p.trigger(
        channels.iter().copied(),
        "update",
        &json!({"n": 1}),
        TriggerOptions::default(),
    )
    .await
    .map(|_| ())
}

async fn usage(addr: SocketAddr) -> Value {
    let r = Api::default_app(addr).get("usage", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn metrics(addr: SocketAddr) -> String {
    let r = Api::default_app(addr).raw("GET", "/metrics", b"").await;
    r.body.as_str().unwrap().to_owned()
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    date_of(secs)
}

/// `YYYY-MM-DD` of a Unix time (the civil-from-days rule, written again here
/// so that the test does not check the server against itself).
fn date_of(secs: u64) -> String {
    let z = secs / 86_400 + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_publishes_to_m_subscribers_are_n_broadcasts_and_n_times_m_deliveries() {
    let server = start(config(vec![app()])).await;
    let publisher = publisher(server.addr);
    let subs = [
        subscriber(server.addr, &publisher).await,
        subscriber(server.addr, &publisher).await,
        subscriber(server.addr, &publisher).await,
    ];
    let mut streams = listeners(&subs.iter().collect::<Vec<_>>(), "news", "update").await;
    const N: u64 = 5;
    for _ in 0..N {
        trigger(&publisher, &["news"]).await.unwrap();
    }
    for s in &mut streams {
        for _ in 0..N {
            next(s).await;
        }
    }
    // Deliveries are counted when queued: every copy arrived, so all are.
    let u = usage(server.addr).await;
    for period in ["day", "month"] {
        let p = &u[period];
        assert_eq!(p["broadcasts"], N, "{u}");
        assert_eq!(p["deliveries"], N * 3, "{u}");
        assert_eq!(p["peak_connections"], 3, "{u}");
        // N publishes and this usage request itself.
        assert_eq!(p["api_requests"], N + 1, "{u}");
        assert!(p["bytes_out"].as_u64().unwrap() > 0, "{u}");
    }
    let day = u["day"]["start"].as_str().unwrap();
    assert_eq!(day, format!("{}T00:00:00Z", today()));
    let month = u["month"]["start"].as_str().unwrap();
    assert_eq!(month, format!("{}-01T00:00:00Z", &today()[..7]));

    // A trigger to 3 channels is 3 broadcasts; a batch of 2 is 2; an
    // event nobody hears is still a broadcast with no delivery.
    trigger(&publisher, &["news", "a", "b"]).await.unwrap();
    let batch: Vec<BatchEvent> = ["news", "c"]
        .iter()
        .map(|c| BatchEvent {
            name: "update".into(),
            data: "{}".into(),
            channel: (*c).into(),
            socket_id: None,
            info: None,
        })
        .collect();
    publisher.trigger_batch(&batch).await.unwrap();
    for s in &mut streams {
        next(s).await;
        next(s).await;
    }
    let u = usage(server.addr).await;
    assert_eq!(u["day"]["broadcasts"], N + 5, "{u}");
    assert_eq!(u["day"]["deliveries"], (N + 2) * 3, "{u}");
    assert_eq!(u["day"]["api_requests"], N + 4, "{u}");

    // Client events are broadcasts too: one to the two others.
    let mut room = listeners(&subs.iter().collect::<Vec<_>>(), "private-room", "client-x").await;
    subs[0]
        .channel("private-room")
        .unwrap()
        .trigger("client-x", "hi")
        .await
        .unwrap();
    for s in &mut room[1..] {
        next(s).await;
    }
    let u = usage(server.addr).await;
    assert_eq!(u["day"]["broadcasts"], N + 6, "{u}");
    assert_eq!(u["day"]["deliveries"], (N + 2) * 3 + 2, "{u}");

    // The Prometheus counters, by app.
    let metrics = metrics(server.addr).await;
    assert!(
        metrics.contains(&format!("vask_broadcasts_total{{app=\"1\"}} {}", N + 6)),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "vask_broadcast_deliveries_total{{app=\"1\"}} {}",
            (N + 2) * 3 + 2
        )),
        "{metrics}"
    );
    for s in subs {
        s.disconnect().await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_request_is_signed() {
    let server = start(config(vec![app()])).await;
    let wrong = Api::new(server.addr, "1", "test-key", "wrong-secret");
    let r = wrong.get("usage", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = Api::default_app(server.addr)
        .raw("GET", "/apps/1/usage", b"")
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = Api::default_app(server.addr)
        .call("POST", "usage", &[], b"{}")
        .await;
    assert_eq!(r.status, 405, "{}", r.body);
    // Refused requests are not usage.
    assert_eq!(usage(server.addr).await["day"]["api_requests"], 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_quota_refuses_at_the_exact_boundary() {
    const L: u64 = 4;
    let server = start(config(vec![limited(|l| {
        l.max_broadcasts_per_day = Some(L);
    })]))
    .await;
    let publisher = publisher(server.addr);
    let sub = subscriber(server.addr, &publisher).await;
    let mut news = listeners(&[&sub], "news", "update").await.remove(0);
    for _ in 0..L - 1 {
        trigger(&publisher, &["news"]).await.unwrap();
    }
    // A trigger to 2 channels would cross: refused whole.
    let e = trigger(&publisher, &["news", "other"]).await.unwrap_err();
    match &e {
        ApiError::Forbidden(m) => assert!(m.contains("max_broadcasts_per_day"), "{m}"),
        other => panic!("expected 403, got {other:?}"),
    }
    // So is a batch of 2.
    let batch: Vec<BatchEvent> = (0..2)
        .map(|_| BatchEvent {
            name: "update".into(),
            data: "{}".into(),
            channel: "news".into(),
            socket_id: None,
            info: None,
        })
        .collect();
    assert!(matches!(
        publisher.trigger_batch(&batch).await,
        Err(ApiError::Forbidden(_))
    ));
    // The L-th fits, the next does not.
    trigger(&publisher, &["news"]).await.unwrap();
    let r = Api::default_app(server.addr)
        .trigger(json!({"name": "update", "channel": "news", "data": "{}"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["code"], 403);
    assert_eq!(
        r.body["error"],
        format!("Quota exceeded: max_broadcasts_per_day is {L} broadcasts per UTC day")
    );
    for _ in 0..L {
        next(&mut news).await;
    }
    quiet(&mut news, 150).await;
    let u = usage(server.addr).await;
    assert_eq!(u["day"]["broadcasts"], L, "{u}");
    assert_eq!(u["month"]["broadcasts"], L, "{u}");
    let metrics = metrics(server.addr).await;
    assert!(
        metrics.contains("vask_quota_refused_total{app=\"1\",reason=\"max_broadcasts_per_day\"} 3"),
        "{metrics}"
    );
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_event_over_quota_gets_an_error_and_is_not_relayed() {
    const L: u64 = 2;
    let server = start(config(vec![limited(|l| {
        l.max_broadcasts_per_month = Some(L);
    })]))
    .await;
    let publisher = publisher(server.addr);
    let (alice, bob) = (
        subscriber(server.addr, &publisher).await,
        subscriber(server.addr, &publisher).await,
    );
    let mut heard = listeners(&[&alice, &bob], "private-chat", "client-msg").await;
    let mut errors = alice.errors();
    let room = alice.channel("private-chat").unwrap();
    for i in 0..L {
        room.trigger("client-msg", &json!({"i": i})).await.unwrap();
        assert_eq!(next(&mut heard[1]).await.data, format!(r#"{{"i":{i}}}"#));
    }
    room.trigger("client-msg", &json!({"i": L})).await.unwrap();
    let e = tokio::time::timeout(WAIT, errors.recv())
        .await
        .expect("an error in time")
        .unwrap();
    assert_eq!(
        e.message,
        format!("Quota exceeded: max_broadcasts_per_month is {L} broadcasts per UTC month")
    );
    quiet(&mut heard[1], 200).await;
    // The connection stays open; the API is over quota too.
    assert!(matches!(
        trigger(&publisher, &["news"]).await,
        Err(ApiError::Forbidden(_))
    ));
    assert_eq!(usage(server.addr).await["month"]["broadcasts"], L);
    alice.disconnect().await;
    bob.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_rate_limit_answers_429_with_retry_after() {
    let server = start(config(vec![limited(|l| {
        l.max_api_requests_per_sec = Some(2);
    })]))
    .await;
    let api = Api::default_app(server.addr);
    // At 2 a second, 60 requests cannot all pass unless they take 30 s.
    let mut refused = None;
    for _ in 0..60 {
        let r = api.get("channels", &[]).await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = refused.expect("a 429");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.body["code"], 429);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("max_api_requests_per_sec is 2"),
        "{}",
        r.body
    );
    let metrics = metrics(server.addr).await;
    assert!(
        metrics.contains("vask_quota_refused_total{app=\"1\",reason=\"max_api_requests_per_sec\"}"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_quotas_span_two_nodes_over_redis() {
    let engine = Engine::start(Kind::Redis);
    const L: u64 = 8;
    let mut app = limited(|l| l.max_broadcasts_per_day = Some(L));
    app.subscription_count = true;
    let a = node(&engine.url(), "a", app.clone()).await;
    let b = node(&engine.url(), "b", app).await;
    let (pa, pb) = (publisher(a.addr), publisher(b.addr));
    // M = 3 subscribers: two on a, one on b.
    let subs = [
        subscriber(a.addr, &pa).await,
        subscriber(a.addr, &pa).await,
        subscriber(b.addr, &pb).await,
    ];
    let mut streams = listeners(&subs.iter().collect::<Vec<_>>(), "news", "update").await;
    // b knows a's subscriptions before a publishes (the bus carries them).
    eventually(PROPAGATION, "subscriptions seen on both nodes", || async {
        let r = Api::default_app(a.addr)
            .get("channels/news", &[("info", "subscription_count")])
            .await;
        r.body["subscription_count"] == 3
    })
    .await;
    // N = 5: three through a, two through b.
    const N: u64 = 5;
    for _ in 0..3 {
        trigger(&pa, &["news"]).await.unwrap();
    }
    for _ in 0..2 {
        trigger(&pb, &["news"]).await.unwrap();
    }
    for s in &mut streams {
        for _ in 0..N {
            next(s).await;
        }
    }
    for addr in [a.addr, b.addr] {
        eventually(PROPAGATION, "cluster-wide usage", || async {
            let u = usage(addr).await;
            u["day"]["broadcasts"] == N && u["day"]["deliveries"] == N * 3
        })
        .await;
    }
    // The quota holds over the cluster: L - N more fit, through either.
    for _ in 0..L - N {
        trigger(&pb, &["news"]).await.unwrap();
    }
    eventually(PROPAGATION, "a sees b's broadcasts", || async {
        usage(a.addr).await["day"]["broadcasts"] == L
    })
    .await;
    assert!(matches!(
        trigger(&pa, &["news"]).await,
        Err(ApiError::Forbidden(_))
    ));
    assert!(matches!(
        trigger(&pb, &["news"]).await,
        Err(ApiError::Forbidden(_))
    ));
    // A node gone: its counts stay in the totals of the day.
    for s in subs {
        s.disconnect().await;
    }
    // (It says goodbye with its last figures.)
    a.shutdown().await;
    eventually(PROPAGATION, "a's last figures on b", || async {
        usage(b.addr).await["day"]["deliveries"] == L * 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(NODE_TIMEOUT_MS * 2)).await;
    let u = usage(b.addr).await;
    assert_eq!(u["day"]["broadcasts"], L, "{u}");
    assert_eq!(u["day"]["deliveries"], L * 3, "{u}");
    assert_eq!(u["month"]["broadcasts"], L, "{u}");
    // A node that joins later learns what a counted from b, which relays
    // the last figures of nodes gone every 10 s; the quota holds there too.
    let mut app = limited(|l| l.max_broadcasts_per_day = Some(L));
    app.subscription_count = true;
    let c = node(&engine.url(), "c", app).await;
    eventually(Duration::from_secs(15), "a's figures on c", || async {
        usage(c.addr).await["day"]["deliveries"] == L * 3
    })
    .await;
    assert_eq!(usage(c.addr).await["day"]["broadcasts"], L);
    assert!(matches!(
        trigger(&publisher(c.addr), &["news"]).await,
        Err(ApiError::Forbidden(_))
    ));
    c.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_max_connections_is_refused_counted_and_the_peak_stays() {
    let server = start(config(vec![limited(|l| l.max_connections = Some(2))])).await;
    let a = connect(server.addr, "test-key").await;
    let b = connect(server.addr, "test-key").await;
    let mut c = connect_raw(server.addr, "/app/test-key?protocol=7").await;
    assert_eq!(closed_with(&mut c).await, Some(4004));
    let u = usage(server.addr).await;
    assert_eq!(u["day"]["peak_connections"], 2, "{u}");
    let m = metrics(server.addr).await;
    assert!(
        m.contains("vask_quota_refused_total{app=\"1\",reason=\"max_connections\"} 1"),
        "{m}"
    );
    drop((a, b));
    server.shutdown().await;
}
