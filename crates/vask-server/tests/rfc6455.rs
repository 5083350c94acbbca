//! WebSocket-level violations get the close code RFC 6455 names (never a
//! bare TCP reset), and handshakes that are not valid are refused with an
//! HTTP status; a healthy connection never notices.

mod support;

use serde_json::json;
use support::*;

/// Each case: what the client sends after the handshake, the close code.
fn violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    let f = RawWs::frame;
    vec![
        (
            "invalid UTF-8 in a text frame",
            f(0x81, &[0x7b, 0xff, 0xfe], true),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            [
                f(0x01, b"{\"a\":\"\xe2\x82", true),
                f(0x80, b"\xff\"}", true),
            ]
            .concat(),
            1007,
        ),
        (
            "a continuation with nothing started",
            f(0x80, b"x", true),
            1002,
        ),
        (
            "a new data frame inside a fragmented message",
            [f(0x01, b"{", true), f(0x81, b"}", true)].concat(),
            1002,
        ),
        ("a fragmented ping", f(0x09, b"p", true), 1002),
        (
            "a control frame over 125 bytes",
            f(0x89, &[b'p'; 126], true),
            1002,
        ),
        ("RSV1 without an extension", f(0xc1, b"{}", true), 1002),
        ("RSV3 without an extension", f(0x91, b"{}", true), 1002),
        ("an unmasked client frame", f(0x81, b"{}", false), 1002),
        ("a reserved data opcode", f(0x83, b"x", true), 1002),
        ("a reserved control opcode", f(0x8b, b"x", true), 1002),
        ("a one-byte close payload", f(0x88, &[3], true), 1002),
        (
            "a close code that may not be sent",
            f(0x88, &1005u16.to_be_bytes(), true),
            1002,
        ),
    ]
}

#[tokio::test]
async fn violations_are_closed_with_their_code_and_others_unaffected() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut healthy = connect(s.addr, "test-key").await;
    healthy.subscribe("calm").await;
    for (i, (what, bytes, code)) in violations().into_iter().enumerate() {
        let mut raw = RawWs::connect(s.addr, "test-key", None).await;
        raw.send_raw(&bytes).await;
        assert_eq!(raw.close_code().await, Some(code), "{what}");

        let r = api
            .trigger(json!({"name":"e","channel":"calm","data":i.to_string()}))
            .await;
        assert_eq!(r.status, 200);
        let f = healthy.recv().await;
        assert_eq!(f["data"], i.to_string(), "after {what}");
    }
    let metrics = api.raw("GET", "/metrics", b"").await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(text.contains(r#"reason="protocol_error""#), "{text}");
    assert!(text.contains(r#"reason="invalid_utf8""#), "{text}");
}

fn upgrade_request(method: &str, headers: &[&str]) -> Vec<u8> {
    let mut req = format!("{method} /app/test-key?protocol=7 HTTP/1.1\r\nHost: x\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: Upgrade, close\r\n\r\n");
    req.into_bytes()
}

#[tokio::test]
async fn invalid_handshakes_are_refused_with_an_http_status() {
    let s = start_default().await;
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    let cases: [(&str, &str, Vec<&str>, &str); 6] = [
        (
            "POST",
            "a POST",
            vec!["Upgrade: websocket", "Sec-WebSocket-Version: 13", key],
            "405",
        ),
        ("GET", "no version", vec!["Upgrade: websocket", key], "426"),
        (
            "GET",
            "version 8",
            vec!["Upgrade: websocket", "Sec-WebSocket-Version: 8", key],
            "426",
        ),
        (
            "GET",
            "a key that is not 16 bytes",
            vec![
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: c2hvcnQ=",
            ],
            "400",
        ),
        (
            "GET",
            "no key",
            vec!["Upgrade: websocket", "Sec-WebSocket-Version: 13"],
            "400",
        ),
        (
            "GET",
            "an Upgrade that is not websocket",
            vec!["Upgrade: h2c", "Sec-WebSocket-Version: 13", key],
            "400",
        ),
    ];
    for (method, what, headers, status) in cases {
        let (head, body) = raw_http(s.addr, &upgrade_request(method, &headers))
            .await
            .unwrap();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {head}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], status.parse::<u16>().unwrap(), "{what}");
        if status == "426" {
            assert!(
                head.to_ascii_lowercase()
                    .contains("sec-websocket-version: 13"),
                "{what}: {head}"
            );
        }
    }
    // The valid one still works.
    let mut ws = connect(s.addr, "test-key").await;
    assert_eq!(
        ws.subscribe("x").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

#[tokio::test]
async fn an_unknown_event_name_is_not_echoed_whole() {
    let s = start_default().await;
    let mut ws = connect(s.addr, "test-key").await;
    let name = "e".repeat(60_000);
    ws.send(&json!({"event": name, "data": {}}).to_string())
        .await;
    let reply = ws.recv_text().await;
    assert!(reply.len() < 300, "{} bytes back", reply.len());
    let f: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(f["event"], "pusher:error");
    assert!(
        f["data"]["message"]
            .as_str()
            .unwrap()
            .contains("60000 bytes"),
        "{f}"
    );
    // Still connected.
    assert_eq!(
        ws.subscribe("x").await["event"],
        "pusher_internal:subscription_succeeded"
    );
}
