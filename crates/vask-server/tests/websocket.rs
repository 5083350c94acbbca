//! The WebSocket endpoint over real sockets: handshake, every refusal code,
//! subscriptions, presence, client events, liveness, limits.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn handshake_gives_socket_id_and_activity_timeout() {
    let s = start_default().await;
    let mut ws = connect_raw(s.addr, "/app/test-key?protocol=7").await;
    let f = recv(&mut ws).await;
    assert_eq!(f["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 120);
    let id = data["socket_id"].as_str().unwrap();
    assert!(id.parse::<pusher_proto::SocketId>().is_ok(), "{id}");
}

async fn refused(addr: std::net::SocketAddr, path: &str, code: u16) {
    let mut ws = connect_raw(addr, path).await;
    let f = recv(&mut ws).await;
    assert_eq!(
        f,
        json!({"event":"pusher:error","data":{"code":code,"message":pusher_proto::ErrorCode::from_code(code).unwrap().message()}})
    );
    assert_eq!(closed_with(&mut ws).await, Some(code));
}

#[tokio::test]
async fn refusals_send_the_error_then_close_with_the_same_code() {
    let mut disabled = app();
    disabled.id = "2".into();
    disabled.key = "off".into();
    disabled.enabled = false;
    let s = start(config(vec![app(), disabled])).await;
    refused(s.addr, "/app/nope?protocol=7", 4001).await;
    refused(s.addr, "/app/off?protocol=7", 4003).await;
    refused(s.addr, "/nowhere", 4005).await;
    refused(s.addr, "/app/test-key?protocol=3", 4007).await;
    // Absent protocol is accepted.
    let mut ws = connect_raw(s.addr, "/app/test-key").await;
    assert_eq!(
        recv(&mut ws).await["event"],
        "pusher:connection_established"
    );
}

#[tokio::test]
async fn connection_quota_is_4004() {
    let mut a = app();
    a.limits.max_connections = Some(1);
    let s = start(config(vec![a])).await;
    let _first = connect(s.addr, "test-key").await;
    refused(s.addr, "/app/test-key?protocol=7", 4004).await;
}

#[tokio::test]
async fn publish_reaches_subscribers_and_excludes_socket_id() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    let mut b = connect(s.addr, "test-key").await;
    assert_eq!(
        a.subscribe("news").await,
        json!({"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"})
    );
    b.subscribe("news").await;
    let r = api
        .trigger(
            json!({"name":"up","channels":["news"],"data":"{\"n\":1}","socket_id":a.socket_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({}));
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"up","channel":"news","data":"{\"n\":1}"}"#
    );
    a.silent(200).await;
}

/// Publishers on several threads fan out to the same subscribers at once:
/// every subscriber gets every event, each publisher's in the order it sent
/// them (plain TCP connections are written by flushes the threads share).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_reach_every_subscriber_whole_and_in_order() {
    let s = start_default().await;
    let mut subs = Vec::new();
    for _ in 0..40 {
        let mut ws = connect(s.addr, "test-key").await;
        ws.subscribe("fan").await;
        subs.push(ws);
    }
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let api = Api::default_app(s.addr);
            tokio::spawn(async move {
                for i in 0..50 {
                    let data = format!("{p}:{i}");
                    let r = api
                        .trigger(json!({"name":"e","channel":"fan","data":data}))
                        .await;
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for ws in &mut subs {
        let mut next = [0u32; 4];
        for _ in 0..200 {
            let e = ws.recv_event().await;
            let (p, i) = e["data"].as_str().unwrap().split_once(':').unwrap();
            let (p, i): (usize, u32) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[p], "publisher {p}'s events in order");
            next[p] += 1;
        }
        assert_eq!(next, [50; 4]);
        ws.silent(50).await;
    }
}

#[tokio::test]
async fn private_presence_and_client_events() {
    let s = start_default().await;
    let (k, sec) = ("test-key", "test-secret");
    let mut a = connect(s.addr, k).await;
    let mut b = connect(s.addr, k).await;
    // Bad auth: subscription_error, the connection stays.
    a.send(r#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"test-key:00"}}"#)
        .await;
    let e = a.recv().await;
    assert_eq!(e["event"], "pusher:subscription_error");
    let data: Value = serde_json::from_str(e["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["type"], "AuthError");
    assert_eq!(data["status"], 401);

    a.subscribe_presence(
        "presence-r",
        r#"{"user_id":"1","user_info":{"n":"A"}}"#,
        k,
        sec,
    )
    .await;
    let snap = b
        .subscribe_presence("presence-r", r#"{"user_id":2}"#, k, sec)
        .await;
    let data: Value = serde_json::from_str(snap["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["count"], 2);
    assert_eq!(data["presence"]["hash"]["1"], json!({"n":"A"}));
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":\"2\"}"}"#
    );
    a.send(r#"{"event":"client-hi","channel":"presence-r","data":{"x":1}}"#)
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-hi","channel":"presence-r","data":"{\"x\":1}","user_id":"1"}"#
    );
    a.silent(100).await;
    drop(b);
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"2\"}"}"#
    );
}

#[tokio::test]
async fn pusher_ping_is_answered_and_idle_connections_are_pinged_then_closed_4201() {
    let mut c = config(vec![app()]);
    c.server.activity_timeout_secs = 1;
    c.server.pong_timeout_secs = 1;
    let s = start(c).await;
    let mut a = connect(s.addr, "test-key").await;
    a.send(r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:ping","data":"{}"}"#
    );
    assert_eq!(
        a.recv().await,
        json!({"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received"}})
    );
    assert_eq!(a.closed_with().await, Some(4201));
}

#[tokio::test]
async fn answering_the_server_ping_keeps_the_connection() {
    let mut c = config(vec![app()]);
    c.server.activity_timeout_secs = 1;
    c.server.pong_timeout_secs = 1;
    let s = start(c).await;
    let mut a = connect(s.addr, "test-key").await;
    for _ in 0..2 {
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher:ping","data":"{}"}"#
        );
        a.send(r#"{"event":"pusher:pong","data":{}}"#).await;
    }
}

#[tokio::test]
async fn messages_over_the_limit_are_closed_with_1009_and_others_unaffected() {
    let s = start_default().await;
    let mut big = connect(s.addr, "test-key").await;
    let mut other = connect(s.addr, "test-key").await;
    other.subscribe("c").await;
    let data = "x".repeat(70 * 1024);
    big.send(&format!(
        r#"{{"event":"client-x","channel":"private-a","data":"{data}"}}"#
    ))
    .await;
    assert_eq!(big.closed_with().await, Some(1009));
    let api = Api::default_app(s.addr);
    api.trigger(json!({"name":"e","channel":"c","data":"still here"}))
        .await;
    assert_eq!(other.recv().await["data"], "still here");
}

#[tokio::test]
async fn malformed_and_binary_frames_get_errors_without_closing() {
    let s = start_default().await;
    let mut a = connect(s.addr, "test-key").await;
    a.send("{not json").await;
    let e = a.recv().await;
    assert_eq!(e["event"], "pusher:error");
    assert_eq!(e["data"]["code"], Value::Null);
    a.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1, 2, 3,
    ]))
    .await
    .unwrap();
    assert_eq!(a.recv().await["event"], "pusher:error");
    assert_eq!(
        a.subscribe("still-works").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_and_counted_without_slowing_others() {
    let mut c = config(vec![app()]);
    c.server.outbox_capacity = 8;
    c.server.write_timeout_secs = 1;
    let s = start(c).await;
    let api = Api::default_app(s.addr);
    // The slow one subscribes and then never reads.
    let mut slow = connect(s.addr, "test-key").await;
    slow.subscribe("firehose").await;
    let mut fast = connect(s.addr, "test-key").await;
    fast.subscribe("firehose").await;
    let data = "y".repeat(60 * 1024);
    let mut received = 0;
    for i in 0..300 {
        let r = api
            .trigger(json!({"name":"e","channel":"firehose","data":data}))
            .await;
        assert_eq!(r.status, 200);
        let f = fast.recv().await;
        assert_eq!(f["event"], "e", "message {i}");
        received += 1;
    }
    assert_eq!(received, 300);
    // The slow connection is gone and counted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let app = s.state.apps.current().by_key("test-key").unwrap().clone();
    while app.hub.connection_count() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow consumer not cut off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = Api::default_app(s.addr).raw("GET", "/metrics", b"").await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(
        text.contains(r#"vask_closed_total{app="1",reason="4100"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"reason="slow_consumer""#), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_reconnect_with_4200() {
    let s = start_default().await;
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("x").await;
    let addr = s.addr;
    let stopping = tokio::spawn(s.shutdown());
    assert_eq!(
        a.recv().await,
        json!({"event":"pusher:error","data":{"code":4200,"message":"Server closed. Please reconnect shortly."}})
    );
    assert_eq!(a.closed_with().await, Some(4200));
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server stops in time")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn apps_requiring_signin_close_unauthenticated_connections_with_4009() {
    let mut a = app();
    a.user_signin_timeout_secs = Some(1);
    let s = start(config(vec![a])).await;
    let mut lazy = connect(s.addr, "test-key").await;
    let mut signed = connect(s.addr, "test-key").await;
    assert_eq!(
        signed.signin(r#"{"id":"1"}"#).await["event"],
        "pusher:signin_success"
    );
    assert_eq!(
        lazy.recv().await,
        json!({"event":"pusher:error","data":{"code":4009,"message":"Connection not authorized within timeout."}})
    );
    assert_eq!(lazy.closed_with().await, Some(4009));
    signed.silent(300).await;
}
