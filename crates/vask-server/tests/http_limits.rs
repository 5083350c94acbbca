//! The HTTP side cannot be made to hold memory: a request is refused before
//! its body is read unless it is signed, a body must arrive in time, and the
//! number of HTTP connections is bounded.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Reads the whole answer; the server must close the connection after it.
async fn answer(tcp: &mut tokio::net::TcpStream) -> String {
    let mut text = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut text))
        .await
        .expect("answered and closed in time")
        .unwrap();
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test]
async fn unsigned_requests_are_refused_before_their_body_is_read() {
    let s = start_default().await;
    let body = vec![b'x'; 1_000_000];
    // Signed with the wrong secret; the body is announced but never sent.
    let path = "/apps/1/events";
    let query = pusher_auth::sign_request("POST", path, &[], &body, "test-key", "wrong", now());
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let text = answer(&mut tcp).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains(r#""code":401"#), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // An unknown app and a wrong key are refused the same way.
    for (path, key) in [("/apps/999/events", "test-key"), (path, "other-key")] {
        let query = pusher_auth::sign_request("POST", path, &[], &body, key, "test-secret", now());
        let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let text = answer(&mut tcp).await;
        assert!(
            text.starts_with("HTTP/1.1 404") || text.starts_with("HTTP/1.1 401"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_cut_off_with_408() {
    let mut c = config(vec![app()]);
    c.server.body_timeout_secs = 1;
    let s = start(c).await;
    let body = br#"{"name":"e","channel":"c","data":"a body sent one byte at a time"}"#;
    let path = "/apps/1/events";
    let query =
        pusher_auth::sign_request("POST", path, &[], body, "test-key", "test-secret", now());
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..5]).await.unwrap();
    let started = Instant::now();
    let text = answer(&mut tcp).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":408"#), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A chunked body trickled a chunk at a time: the same.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head =
        format!("POST {path}?{query} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..20 {
            if tcp.write_all(b"1\r\nx\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tcp
    });
    let mut tcp = trickle.await.unwrap();
    let text = answer(&mut tcp).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    // Signed and on time: fine.
    let r = Api::default_app(s.addr)
        .call("POST", "events", &[], body)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn http_connections_are_bounded() {
    let mut c = config(vec![app()]);
    c.server.max_http_connections = 2;
    let s = start(c).await;
    let first = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (head, body) = raw_http(s.addr, b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert_eq!(body, r#"{"error":"Too many connections","code":503}"#);
    drop(first);
    // The slot comes back once the server sees the close.
    let deadline = Instant::now() + WAIT;
    loop {
        let (head, _) = raw_http(
            s.addr,
            b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "{head}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
    // A WebSocket gives its slot back once upgraded.
    let mut ws = connect(s.addr, "test-key").await;
    let _other = connect(s.addr, "test-key").await;
    let (head, _) = raw_http(
        s.addr,
        b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        ws.subscribe("x").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let metrics = Api::default_app(s.addr).raw("GET", "/metrics", b"").await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(
        text.contains(r#"vask_refused_total{reason="http_connection_limit"} 1"#),
        "{text}"
    );
}
