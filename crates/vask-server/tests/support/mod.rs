//! Test support: a real server on a free port, a WebSocket client and a
//! signed HTTP client, all over real sockets on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod postgres;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vask_server::{AppConfig, Config, Running};

pub const WAIT: Duration = Duration::from_secs(5);

pub fn app() -> AppConfig {
    AppConfig {
        id: "1".into(),
        key: "test-key".into(),
        secret: "test-secret".into(),
        subscription_count: false,
        ..AppConfig::development()
    }
}

/// The test app with subscription counts on.
pub fn counted_app() -> AppConfig {
    AppConfig {
        subscription_count: true,
        ..app()
    }
}

pub fn config(apps: Vec<AppConfig>) -> Config {
    let mut c = Config::load(&vask_server::Cli::default()).unwrap();
    c.server.port = 0;
    // Tests shut servers down often; the drain has its own test.
    c.server.drain_secs = 0;
    c.apps = apps;
    c
}

pub async fn start(config: Config) -> Running {
    vask_server::start(config).await.unwrap()
}

pub async fn start_default() -> Running {
    start(config(vec![app()])).await
}

pub struct Ws {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
}

/// Connects and reads `pusher:connection_established`.
pub async fn connect(addr: SocketAddr, key: &str) -> Ws {
    let mut ws = connect_raw(
        addr,
        &format!("/app/{key}?protocol=7&client=js&version=8.4.0"),
    )
    .await;
    let f = recv(&mut ws).await;
    assert_eq!(f["event"], "pusher:connection_established", "{f}");
    let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
    Ws {
        ws,
        socket_id: data["socket_id"].as_str().unwrap().to_owned(),
    }
}

pub async fn connect_raw(
    addr: SocketAddr,
    path: &str,
) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("connect in time")
    .expect("handshake");
    ws
}

/// The next text frame, as JSON.
pub async fn recv(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Value {
    serde_json::from_str(&recv_text(ws).await).unwrap()
}

pub async fn recv_text(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> String {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match m {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the close frame and returns its code.
pub async fn closed_with(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Asserts nothing arrives within `ms`.
pub async fn silent(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, ms: u64) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(ms), ws.next()).await {
        panic!("expected silence, got {m:?}");
    }
}

impl Ws {
    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }
    pub async fn recv(&mut self) -> Value {
        recv(&mut self.ws).await
    }
    pub async fn recv_text(&mut self) -> String {
        recv_text(&mut self.ws).await
    }
    /// The next frame that is not a `pusher_internal:subscription_count`.
    pub async fn recv_event(&mut self) -> Value {
        loop {
            let f = self.recv().await;
            if f["event"] != "pusher_internal:subscription_count" {
                return f;
            }
        }
    }
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(
            &serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel}}).to_string(),
        )
        .await;
        self.recv().await
    }
    pub async fn subscribe_private(&mut self, channel: &str, key: &str, secret: &str) -> Value {
        let auth = pusher_auth::sign_channel(key, secret, &self.socket_id, channel, None);
        self.send(
            &serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth}})
                .to_string(),
        )
        .await;
        self.recv().await
    }
    pub async fn subscribe_presence(
        &mut self,
        channel: &str,
        data: &str,
        key: &str,
        secret: &str,
    ) -> Value {
        let auth = pusher_auth::sign_channel(key, secret, &self.socket_id, channel, Some(data));
        self.send(
            &serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth,"channel_data":data}})
                .to_string(),
        )
        .await;
        self.recv().await
    }
    /// Signs in as `user_data` (test app credentials) and returns the
    /// server's answer.
    pub async fn signin(&mut self, user_data: &str) -> Value {
        let auth = pusher_auth::sign_user("test-key", "test-secret", &self.socket_id, user_data);
        self.send(&serde_json::json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}).to_string())
            .await;
        self.recv().await
    }

    pub async fn closed_with(&mut self) -> Option<u16> {
        closed_with(&mut self.ws).await
    }
    pub async fn silent(&mut self, ms: u64) {
        silent(&mut self.ws, ms).await
    }
}

pub fn close_code(code: CloseCode) -> u16 {
    u16::from(code)
}

/// A signed HTTP API client over one keep-alive connection pool.
pub struct Api {
    pub addr: SocketAddr,
    pub app: String,
    pub key: String,
    pub secret: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new(addr: SocketAddr, app: &str, key: &str, secret: &str) -> Self {
        Self {
            addr,
            app: app.into(),
            key: key.into(),
            secret: secret.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn default_app(addr: SocketAddr) -> Self {
        Self::new(addr, "1", "test-key", "test-secret")
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// A signed request to `/apps/{app}/{rest}`.
    pub async fn call(
        &self,
        method: &str,
        rest: &str,
        params: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let path = format!("/apps/{}/{rest}", self.app);
        let query = pusher_auth::sign_request(
            method,
            &path,
            params,
            body,
            &self.key,
            &self.secret,
            Self::now(),
        );
        self.raw(method, &format!("{path}?{query}"), body).await
    }

    pub async fn raw(&self, method: &str, path_and_query: &str, body: &[u8]) -> Reply {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let resp = tokio::time::timeout(WAIT, self.client.request(req))
            .await
            .expect("answer in time")
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn trigger(&self, body: Value) -> Reply {
        self.call("POST", "events", &[], body.to_string().as_bytes())
            .await
    }

    pub async fn get(&self, rest: &str, params: &[(&str, &str)]) -> Reply {
        self.call("GET", rest, params, b"").await
    }
}

/// A WebSocket client written by hand, for frames no library sends: bad
/// opcodes, unmasked frames, broken fragments.
pub struct RawWs {
    pub tcp: TcpStream,
}

impl RawWs {
    /// Connects and completes the handshake for `/app/{key}`; with
    /// `recv_buf`, the socket's receive buffer is that small (a client that
    /// reads slowly fills the server's send buffer sooner).
    pub async fn connect(addr: SocketAddr, key: &str, recv_buf: Option<u32>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buf {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut tcp = socket.connect(addr).await.unwrap();
        let req = format!(
            "GET /app/{key}?protocol=7 HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        // Read the 101 head byte by byte: nothing past it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut b))
                .await
                .expect("handshake answer in time")
                .unwrap();
            assert_eq!(n, 1, "closed during the handshake");
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { tcp }
    }

    /// One frame: `first` is FIN, RSV and opcode; masked unless `unmasked`.
    pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut out = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let mask = [0x12, 0x34, 0x56, 0x78];
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// A masked text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send_raw(&Self::frame(0x81, text.as_bytes(), true))
            .await;
    }

    /// Reads server frames until a close frame; its code (`None` when the
    /// connection ends without one).
    pub async fn close_code(&mut self) -> Option<u16> {
        use tokio::io::AsyncReadExt;
        loop {
            let mut h = [0u8; 2];
            let read = tokio::time::timeout(WAIT, self.tcp.read_exact(&mut h))
                .await
                .expect("a frame in time");
            if read.is_err() {
                return None;
            }
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.tcp.read_exact(&mut b).await.ok()?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.tcp.read_exact(&mut b).await.ok()?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.tcp.read_exact(&mut payload).await.ok()?;
            if h[0] & 0x0f == 0x8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }
}

/// One raw HTTP/1.1 exchange on a new connection: writes `request` (and
/// nothing more), then reads until the server closes. The status line and
/// headers, and the body; `None` if the connection was refused.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(request).await.unwrap();
    let mut text = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut text))
        .await
        .expect("the server answers and closes in time");
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Some((head.to_owned(), body.to_owned()))
}
