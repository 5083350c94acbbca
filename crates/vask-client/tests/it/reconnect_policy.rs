//! The reconnect policy against a scripted server: pings and pong
//! timeouts, and each close-code class.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use vask_client::{ConnectionState, Subscriber, SubscriberConfig};

use crate::common::within;

type Conn = (WebSocketStream<TcpStream>, Instant);

/// A server that completes the Pusher handshake (activity_timeout 1 s) and
/// hands each connection to the test.
async fn scripted() -> (SocketAddr, mpsc::UnboundedReceiver<Conn>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            n += 1;
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            let hello = format!(
                r#"{{"event":"pusher:connection_established","data":"{{\"socket_id\":\"1.{n}\",\"activity_timeout\":1}}"}}"#
            );
            if ws.send(Message::text(hello)).await.is_err() {
                continue;
            }
            if tx.send((ws, Instant::now())).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn config(addr: SocketAddr) -> SubscriberConfig {
    let mut c = SubscriberConfig::new("127.0.0.1", addr.port(), "k");
    c.pong_timeout = Duration::from_millis(300);
    c.reconnect_min_delay = Duration::from_millis(50);
    c.reconnect_max_delay = Duration::from_millis(200);
    c
}

/// The next text frame the client sends.
async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> String {
    within("client frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
}

async fn close(ws: &mut WebSocketStream<TcpStream>, code: u16) -> Instant {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: "scripted".into(),
    };
    ws.send(Message::Close(Some(frame))).await.unwrap();
    Instant::now()
}

#[tokio::test]
async fn pings_after_silence_and_replaces_a_silent_connection() {
    let (addr, mut conns) = scripted().await;
    let sub = within("connect", Subscriber::connect(config(addr)))
        .await
        .unwrap();
    let (mut ws, _) = conns.recv().await.unwrap();
    let started = Instant::now();
    let ping = next_text(&mut ws).await;
    assert_eq!(ping, r#"{"event":"pusher:ping","data":{}}"#);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // No pong: after pong_timeout the client connects again.
    let (mut ws2, at) = within("second connection", conns.recv()).await.unwrap();
    assert!(at - started < Duration::from_millis(1900));
    assert_eq!(
        within("connected", sub.wait_connected()).await.unwrap(),
        "1.2"
    );

    // It answers the server's pings.
    ws2.send(Message::text(r#"{"event":"pusher:ping","data":"{}"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut ws2).await,
        r#"{"event":"pusher:pong","data":{}}"#
    );
    drop(ws);
}

#[tokio::test]
async fn codes_4000_to_4099_end_it_for_good() {
    let (addr, mut conns) = scripted().await;
    let sub = within("connect", Subscriber::connect(config(addr)))
        .await
        .unwrap();
    let mut states = sub.state_changes();
    let (mut ws, _) = conns.recv().await.unwrap();
    ws.send(Message::text(
        r#"{"event":"pusher:error","data":{"code":4009,"message":"go away"}}"#,
    ))
    .await
    .unwrap();
    close(&mut ws, 4009).await;
    let s = within("disconnected", states.recv()).await.unwrap();
    assert_eq!(
        s,
        ConnectionState::Disconnected {
            code: Some(4009),
            reason: "go away".into()
        }
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), conns.recv())
            .await
            .is_err(),
        "reconnected after 4009"
    );
}

#[tokio::test]
async fn codes_4100_to_4199_wait_at_least_a_second() {
    let (addr, mut conns) = scripted().await;
    let sub = within("connect", Subscriber::connect(config(addr)))
        .await
        .unwrap();
    let (mut ws, _) = conns.recv().await.unwrap();
    let closed = close(&mut ws, 4100).await;
    let (_ws2, at) = within("second connection", conns.recv()).await.unwrap();
    assert!(at - closed >= Duration::from_secs(1), "{:?}", at - closed);
    within("connected", sub.wait_connected()).await.unwrap();
}

#[tokio::test]
async fn codes_4200_to_4299_reconnect_at_once_and_resubscribe() {
    let (addr, mut conns) = scripted().await;
    let sub = within("connect", Subscriber::connect(config(addr)))
        .await
        .unwrap();
    let (mut ws, _) = conns.recv().await.unwrap();
    let _news = sub.subscribe("news").unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"pusher:subscribe","data":{"channel":"news","auth":""}}"#
    );
    // Answer the ping the client sends after a second of silence, so the
    // connection has been up long enough for an immediate reconnect.
    assert!(next_text(&mut ws).await.contains("pusher:ping"));
    ws.send(Message::text(r#"{"event":"pusher:pong","data":"{}"}"#))
        .await
        .unwrap();
    let closed = close(&mut ws, 4200).await;
    let (mut ws2, at) = within("second connection", conns.recv()).await.unwrap();
    assert!(
        at - closed < Duration::from_millis(500),
        "{:?}",
        at - closed
    );
    assert_eq!(
        next_text(&mut ws2).await,
        r#"{"event":"pusher:subscribe","data":{"channel":"news","auth":""}}"#
    );
}

#[tokio::test]
async fn a_dropped_socket_is_retried_with_backoff() {
    let (addr, mut conns) = scripted().await;
    let sub = within("connect", Subscriber::connect(config(addr)))
        .await
        .unwrap();
    let mut states = sub.state_changes();
    let (ws, _) = conns.recv().await.unwrap();
    drop(ws); // TCP goes away without a close frame
    let s = within("unavailable", states.recv()).await.unwrap();
    assert!(matches!(s, ConnectionState::Unavailable { .. }), "{s:?}");
    within("second connection", conns.recv()).await.unwrap();
    assert_eq!(
        within("connected", sub.wait_connected()).await.unwrap(),
        "1.2"
    );
}
