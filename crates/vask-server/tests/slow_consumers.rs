//! A peer that does not read holds a bounded amount of server memory and is
//! cut off with 4100, whatever else it sends.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

async fn wait_for_connections(app: &vask_server::apps::App, n: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while app.hub.connection_count() != n {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(s: &vask_server::Running) -> String {
    let m = Api::default_app(s.addr).raw("GET", "/metrics", b"").await;
    m.body.as_str().unwrap().to_owned()
}

/// The answers to its pings used to be flushed with no time limit: a client
/// that pings but never reads wedged its connection task, so neither the
/// write timeout nor shutdown reached it.
#[tokio::test]
async fn a_client_that_pings_but_never_reads_is_still_cut_off() {
    let mut c = config(vec![app()]);
    c.server.write_timeout_secs = 1;
    c.server.outbox_capacity = 8;
    let s = start(c).await;
    let app = s.state.apps.current().by_key("test-key").unwrap().clone();
    let mut raw = RawWs::connect(s.addr, "test-key", Some(4096)).await;
    raw.send_text(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#)
        .await;
    // Pings with the largest payload, never reading the pongs, until the
    // server's send buffer is full.
    let ping = RawWs::frame(0x89, &[b'p'; 125], true);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 4096)
        .collect();
    // (The server may cut it off already, before the sends time out.)
    for _ in 0..32 {
        let sent = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::io::AsyncWriteExt::write_all(&mut raw.tcp, &burst),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            break;
        }
    }
    // Now events for it pile up.
    let api = Api::default_app(s.addr);
    for i in 0..20 {
        let r = api
            .trigger(json!({"name":"e","channel":"news","data":i.to_string()}))
            .await;
        assert_eq!(r.status, 200);
    }
    wait_for_connections(&app, 0, "the connection was not cut off").await;
    let text = metrics(&s).await;
    assert!(
        text.contains(r#"vask_closed_total{app="1",reason="4100"} 1"#),
        "{text}"
    );
    // And shutdown is not held up by it.
    tokio::time::timeout(WAIT, s.shutdown())
        .await
        .expect("shutdown in time");
}

#[tokio::test]
async fn queued_bytes_are_bounded_not_only_frames() {
    let mut c = config(vec![app()]);
    c.server.outbox_capacity = 1024;
    c.server.outbox_max_bytes = 1024 * 1024;
    c.server.write_timeout_secs = 2;
    let s = start(c).await;
    let app = s.state.apps.current().by_key("test-key").unwrap().clone();
    let mut raw = RawWs::connect(s.addr, "test-key", Some(4096)).await;
    raw.send_text(r#"{"event":"pusher:subscribe","data":{"channel":"big"}}"#)
        .await;
    let mut fast = connect(s.addr, "test-key").await;
    fast.subscribe("big").await;
    let data = "y".repeat(60 * 1024);
    let api = Api::default_app(s.addr);
    // 300 messages of 60 KB: 18 MB, far fewer than 1,024 frames.
    for round in 0..30 {
        let batch: Vec<_> = (0..10)
            .map(|_| json!({"name":"e","channel":"big","data":data}))
            .collect();
        let r = api
            .call(
                "POST",
                "batch_events",
                &[],
                json!({ "batch": batch }).to_string().as_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "round {round}");
        for _ in 0..10 {
            assert_eq!(fast.recv().await["event"], "e");
        }
    }
    // The stalled one was refused frames once its queue held 1 MiB...
    let text = metrics(&s).await;
    assert!(
        text.contains(r#"vask_dropped_total{app="1",reason="outbox_full"}"#),
        "{text}"
    );
    // ...and is cut off with 4100, while the other one stays.
    wait_for_connections(&app, 1, "the stalled connection was not cut off").await;
    let text = metrics(&s).await;
    assert!(
        text.contains(r#"vask_closed_total{app="1",reason="4100"} 1"#),
        "{text}"
    );
    fast.subscribe("still-here").await;
}
