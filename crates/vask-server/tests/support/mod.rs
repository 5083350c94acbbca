//! Test support: a real server on a free port, a WebSocket client and a
//! signed HTTP client, all over real sockets on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

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

pub fn config(apps: Vec<AppConfig>) -> Config {
    let mut c = Config::load(&vask_server::Cli::default()).unwrap();
    c.server.port = 0;
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
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply { status, body }
    }

    pub async fn trigger(&self, body: Value) -> Reply {
        self.call("POST", "events", &[], body.to_string().as_bytes())
            .await
    }

    pub async fn get(&self, rest: &str, params: &[(&str, &str)]) -> Reply {
        self.call("GET", rest, params, b"").await
    }
}
