//! The background task that owns the socket: connects, reads frames into
//! the registry, writes what the handles ask for, pings, and reconnects.
//!
//! Order on every new connection: the registry gets the socket id, every
//! channel goes back to pending and is subscribed again (public ones at
//! once, the others when the authorizer answers for the new socket id),
//! and sign-in is repeated if it was asked for; `#server-to-user-<id>` is
//! joined only after `signin_success`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pusher_auth::{
    ChannelAuthResponse, EncryptedPayload, UserAuthResponse, decrypt_with_shared_secret,
    shared_secret_from_base64,
};
use pusher_proto::{
    ChannelData, ChannelKind, ClientFrame, ReconnectClass, SERVER_TO_USER_PREFIX, ServerFrame,
    Subscribe, SubscriptionError, SubscriptionErrorKind, UserData,
};
use rustls_pki_types::ServerName;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::registry::{ChannelEntry, Registry, SubStatus, broadcast, lock};
use super::{Command, ConnectionState, Event, Member, ServerError, Shared, SubscriberConfig};
use crate::backoff::Backoff;
use crate::error::{AuthorizerError, SocketError, SubscribeFailure};

type Ws = WebSocketStream<Stream>;

/// The socket under the WebSocket: plain TCP (as tokio-tungstenite opens it)
/// or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What `wss://` connections need, prepared once by
/// [`super::Subscriber::connect`].
pub(crate) struct TlsSetup {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl TlsSetup {
    /// The connector (Mozilla's roots plus the extra CAs) and the server
    /// name (the host) of `config`.
    pub(crate) fn new(config: &SubscriberConfig) -> Result<Self, String> {
        let tls = crate::tls::client_config(&config.extra_ca_certs)?;
        let host = config.host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
        Ok(Self {
            connector: TlsConnector::from(tls),
            server_name,
        })
    }
}

/// Results of the authorizer calls, tagged with the socket id they are for.
enum Internal {
    Channel {
        socket_id: String,
        channel: String,
        result: Result<ChannelAuthResponse, AuthorizerError>,
    },
    User {
        socket_id: String,
        result: Result<UserAuthResponse, AuthorizerError>,
    },
}

/// Why an attempt to open a connection failed.
enum OpenError {
    /// TCP, upgrade or timeout.
    Network(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The server sent an error and/or closed with a code.
    Closed { code: u16, message: String },
}

/// Why a connection ended.
enum End {
    /// Disconnect asked, or every handle dropped.
    Stop(Option<oneshot::Sender<()>>),
    /// The server closed with a code (or sent a 4xxx `pusher:error` before
    /// the socket went away).
    Closed { code: u16, message: String },
    /// The socket failed or closed without a Pusher code.
    Network(String),
    /// The TLS handshake failed (retried as a network failure).
    Tls(String),
    /// No answer to our ping.
    PongTimeout,
}

struct Driver {
    config: SubscriberConfig,
    tls: Option<Arc<TlsSetup>>,
    shared: Arc<Shared>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    backoff: Backoff,
}

/// One open connection's state.
struct Conn {
    socket_id: String,
    /// Frames to write before waiting again.
    out: Vec<Bytes>,
    /// A WebSocket ping arrived: flush so tungstenite sends the pong.
    flush: bool,
    /// A `pusher:signin` is waiting for its answer.
    signin_in_flight: bool,
    /// The last 4000-4299 `pusher:error` code, for a close without a code.
    last_error: Option<(u16, String)>,
}

/// Runs the subscriber until it stops; `ready` gets the first attempt's
/// outcome.
pub(crate) async fn run(
    config: SubscriberConfig,
    tls: Option<TlsSetup>,
    shared: Arc<Shared>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<(), SocketError>>,
) {
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let backoff = Backoff::new(config.reconnect_min_delay, config.reconnect_max_delay);
    let mut driver = Driver {
        config,
        tls: tls.map(Arc::new),
        shared,
        cmd_rx,
        internal_tx,
        internal_rx,
        backoff,
    };
    driver.run(ready).await;
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Opens the TCP connection to the configured host and port (no Nagle).
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, OpenError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| OpenError::Network(format!("IO error: {e}")))?;
    tcp.set_nodelay(true)
        .map_err(|e| OpenError::Network(format!("IO error: {e}")))?;
    Ok(tcp)
}

/// Opens the socket under the WebSocket: TCP, then the TLS handshake for
/// `wss://`.
async fn connect_stream(
    host: &str,
    port: u16,
    tls: Option<&TlsSetup>,
) -> Result<Stream, OpenError> {
    let tcp = connect_tcp(host, port).await?;
    let Some(tls) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let stream = tls
        .connector
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|e| match crate::tls::tls_failure(&e) {
            Some(m) => OpenError::Tls(m),
            None => OpenError::Network(format!("TLS handshake: {e}")),
        })?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// Opens a connection and reads up to `pusher:connection_established`.
async fn open(
    host: &str,
    port: u16,
    tls: Option<&TlsSetup>,
    url: &str,
    timeout: Duration,
) -> Result<(Ws, String, u32), OpenError> {
    let attempt = async {
        let stream = connect_stream(host, port, tls).await?;
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
                .await
                .map_err(|e| OpenError::Network(e.to_string()))?;
        let mut error: Option<(u16, String)> = None;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match ServerFrame::decode(t.as_bytes()) {
                    Ok(ServerFrame::ConnectionEstablished {
                        socket_id,
                        activity_timeout,
                    }) => return Ok((ws, socket_id.to_string(), activity_timeout)),
                    Ok(ServerFrame::Error { code, message }) => {
                        error = Some((code.unwrap_or(0), message));
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(frame))) => {
                    let (code, message) = close_reason(frame.as_ref(), error.as_ref());
                    return Err(match code {
                        Some(code) => OpenError::Closed { code, message },
                        None => OpenError::Network(message),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(OpenError::Network(e.to_string())),
                None => {
                    return Err(match error {
                        Some((code, message)) if code >= 4000 => {
                            OpenError::Closed { code, message }
                        }
                        _ => OpenError::Network("closed before the handshake".into()),
                    });
                }
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| OpenError::Network(format!("no handshake within {timeout:?}")))?
}

/// The Pusher code and message of a close: the close frame's code if it is
/// 4000 or above, else a 4000+ `pusher:error` code received before.
fn close_reason(
    frame: Option<&CloseFrame>,
    error: Option<&(u16, String)>,
) -> (Option<u16>, String) {
    if let Some(f) = frame {
        let code = u16::from(f.code);
        if code >= 4000 {
            let message = match error {
                Some((c, m)) if *c == code => m.clone(),
                _ => f.reason.to_string(),
            };
            return (Some(code), message);
        }
    }
    match error {
        Some((code, message)) if *code >= 4000 => (Some(*code), message.clone()),
        _ => (
            None,
            frame.map_or_else(
                || "connection closed".to_owned(),
                |f| format!("closed with {}", u16::from(f.code)),
            ),
        ),
    }
}

fn text(frame: Bytes) -> Message {
    // Every frame ClientFrame encodes is JSON text.
    Message::Text(Utf8Bytes::try_from(frame).unwrap_or_else(|_| Utf8Bytes::from_static("{}")))
}

fn subscription_error_event(channel: &str, failure: &SubscribeFailure) -> Event {
    let error = match failure {
        SubscribeFailure::Refused(e) => e.clone(),
        SubscribeFailure::Authorizer(e) => SubscriptionError {
            kind: SubscriptionErrorKind::AuthError,
            error: e.message.clone(),
            status: e.status.unwrap_or(0),
        },
        SubscribeFailure::Unsubscribed => SubscriptionError {
            kind: SubscriptionErrorKind::AuthError,
            error: failure.to_string(),
            status: 0,
        },
    };
    internal_event(
        channel,
        "pusher:subscription_error",
        serde_json::to_string(&error).unwrap_or_default(),
    )
}

fn internal_event(channel: &str, name: &str, data: String) -> Event {
    Event {
        channel: channel.to_owned(),
        name: name.to_owned(),
        data,
        user_id: None,
    }
}

impl Driver {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        lock(&self.shared.registry)
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.state.send_replace(state.clone());
        broadcast(&mut self.registry().state_listeners, &state);
    }

    async fn run(&mut self, ready: oneshot::Sender<Result<(), SocketError>>) {
        let mut ready = Some(ready);
        let url = self.config.url();
        let mut delay = Duration::ZERO;
        loop {
            if !delay.is_zero() {
                self.set_state(ConnectionState::Unavailable { retry_in: delay });
                let wait = tokio::time::sleep(delay);
                if let Some(reply) = self.idle(wait).await {
                    return self.finish(None, "disconnected".into(), reply);
                }
            }
            self.set_state(ConnectionState::Connecting);
            let (host, port, timeout) = (
                self.config.host.clone(),
                self.config.port,
                self.config.connect_timeout,
            );
            let tls = self.tls.clone();
            let opening = open(&host, port, tls.as_deref(), &url, timeout);
            let opened = tokio::select! {
                r = opening => r,
                stop = self.idle(std::future::pending::<()>()) => {
                    return self.finish(None, "disconnected".into(), stop.flatten());
                }
            };
            let end = match opened {
                Ok((ws, socket_id, activity)) => {
                    self.backoff.reset();
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                    let started = Instant::now();
                    let end = self.session(ws, socket_id, activity).await;
                    self.disconnected();
                    if let End::Closed { code, .. } = &end
                        && ReconnectClass::of(*code) == ReconnectClass::ReconnectImmediately
                        && started.elapsed() < Duration::from_secs(1)
                    {
                        // Closed again right after opening: do not spin.
                        delay = self.backoff.next_delay();
                        continue;
                    }
                    end
                }
                Err(e) => {
                    let end = match e {
                        OpenError::Network(m) => End::Network(m),
                        OpenError::Tls(m) => End::Tls(m),
                        OpenError::Closed { code, message } => End::Closed { code, message },
                    };
                    if let Some(r) = ready.take() {
                        let err = match &end {
                            End::Closed { code, message } => SocketError::Refused {
                                code: *code,
                                message: message.clone(),
                            },
                            End::Network(m) => SocketError::Connect(m.clone()),
                            End::Tls(m) => SocketError::Tls(m.clone()),
                            _ => SocketError::Closed,
                        };
                        let reason = err.to_string();
                        let code = match &end {
                            End::Closed { code, .. } => Some(*code),
                            _ => None,
                        };
                        let _ = r.send(Err(err));
                        return self.finish(code, reason, None);
                    }
                    end
                }
            };
            delay = match end {
                End::Stop(reply) => return self.finish(None, "disconnected".into(), reply),
                End::PongTimeout => Duration::ZERO,
                End::Network(_) | End::Tls(_) => self.backoff.next_delay(),
                End::Closed { code, message } => match ReconnectClass::of(code) {
                    ReconnectClass::ReconnectImmediately => Duration::ZERO,
                    ReconnectClass::ReconnectWithBackoff => {
                        self.backoff.next_delay().max(Duration::from_secs(1))
                    }
                    ReconnectClass::Other => self.backoff.next_delay(),
                    // 4000-4099, and 43xx as pusher-js treats them: refused.
                    ReconnectClass::DoNotReconnect | ReconnectClass::FrameOnly => {
                        return self.finish(Some(code), message, None);
                    }
                },
            };
        }
    }

    /// Handles commands while there is no connection, until `until`
    /// completes (returns `None`) or the subscriber must stop (returns the
    /// disconnect reply, if any).
    async fn idle<F: Future<Output = ()>>(
        &mut self,
        until: F,
    ) -> Option<Option<oneshot::Sender<()>>> {
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return None,
                cmd = self.cmd_rx.recv() => match cmd {
                    None => return Some(None),
                    Some(Command::Disconnect(reply)) => return Some(Some(reply)),
                    Some(Command::ClientEvent { reply, .. }) => {
                        let _ = reply.send(Err(SocketError::NotConnected));
                    }
                    // The registry holds them: done on the next connection.
                    Some(Command::Subscribe(_) | Command::Unsubscribe(_) | Command::Signin) => {}
                },
                // Answers for a socket id that is gone.
                Some(_) = self.internal_rx.recv() => {}
            }
        }
    }

    /// The connection is gone: nothing is subscribed any more.
    fn disconnected(&self) {
        let mut reg = self.registry();
        reg.socket_id = None;
        reg.user.id = None;
        for entry in reg.channels.values() {
            if *entry.status.borrow() == SubStatus::Subscribed {
                entry.set_status(SubStatus::Pending);
            }
        }
    }

    fn finish(&mut self, code: Option<u16>, reason: String, reply: Option<oneshot::Sender<()>>) {
        for entry in self.registry().channels.values() {
            entry.set_status(SubStatus::Failed(SubscribeFailure::Unsubscribed));
        }
        self.set_state(ConnectionState::Disconnected { code, reason });
        self.registry().close();
        if let Some(r) = reply {
            let _ = r.send(());
        }
    }

    async fn session(&mut self, mut ws: Ws, socket_id: String, server_activity: u32) -> End {
        let mut activity = Duration::from_secs(u64::from(server_activity.max(1)));
        if let Some(mine) = self.config.activity_timeout {
            activity = activity.min(mine);
        }
        let mut conn = Conn {
            socket_id: socket_id.clone(),
            out: Vec::new(),
            flush: false,
            signin_in_flight: false,
            last_error: None,
        };
        self.connected(&mut conn);
        self.set_state(ConnectionState::Connected { socket_id });
        let mut last_seen = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        loop {
            if !conn.out.is_empty() || conn.flush {
                conn.flush = false;
                let write = async {
                    for frame in conn.out.drain(..) {
                        ws.feed(text(frame)).await?;
                    }
                    ws.flush().await
                };
                if let Err(e) = write.await {
                    return End::Network(e.to_string());
                }
            }
            let deadline = match ping_sent {
                Some(t) => t + self.config.pong_timeout,
                None => last_seen + activity,
            };
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    None => return close(ws, None).await,
                    Some(Command::Disconnect(reply)) => return close(ws, Some(reply)).await,
                    Some(c) => self.command(&mut conn, c),
                },
                Some(msg) = self.internal_rx.recv() => self.internal(&mut conn, msg),
                msg = ws.next() => {
                    last_seen = Instant::now();
                    ping_sent = None;
                    match msg {
                        Some(Ok(Message::Text(t))) => self.frame(&mut conn, t.as_bytes()),
                        Some(Ok(Message::Ping(_))) => conn.flush = true,
                        Some(Ok(Message::Close(frame))) => {
                            return match close_reason(frame.as_ref(), conn.last_error.as_ref()) {
                                (Some(code), message) => End::Closed { code, message },
                                (None, message) => End::Network(message),
                            };
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return End::Network(e.to_string()),
                        None => {
                            return match conn.last_error.take() {
                                Some((code, message)) => End::Closed { code, message },
                                None => End::Network("connection closed".into()),
                            };
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if ping_sent.is_some() {
                        return End::PongTimeout;
                    }
                    conn.out.push(ClientFrame::Ping.encode());
                    ping_sent = Some(Instant::now());
                }
            }
        }
    }

    /// A new connection: subscribe everything again, sign in again.
    fn connected(&self, conn: &mut Conn) {
        let (names, signin) = {
            let mut reg = self.registry();
            reg.socket_id = Some(conn.socket_id.clone());
            reg.user.id = None;
            let names: Vec<(String, ChannelKind)> = reg
                .channels
                .iter()
                .filter(|(_, e)| e.kind != ChannelKind::ServerToUser)
                .map(|(n, e)| (n.clone(), e.kind))
                .collect();
            for entry in reg.channels.values() {
                entry.set_status(SubStatus::Pending);
            }
            (names, reg.user.requested)
        };
        for (name, kind) in names {
            self.start_subscribe(conn, name, kind);
        }
        if signin {
            self.start_signin(conn);
        }
    }

    fn start_subscribe(&self, conn: &mut Conn, channel: String, kind: ChannelKind) {
        if !kind.requires_auth() {
            conn.out.push(
                ClientFrame::Subscribe(Subscribe {
                    channel,
                    auth: Some(String::new()),
                    channel_data: None,
                })
                .encode(),
            );
            return;
        }
        let Some(authorizer) = self.config.authorizer.clone() else {
            self.fail(
                &channel,
                SubscribeFailure::Authorizer(AuthorizerError::new(
                    "no authorizer configured for a private channel",
                )),
            );
            return;
        };
        let (tx, socket_id) = (self.internal_tx.clone(), conn.socket_id.clone());
        tokio::spawn(async move {
            let result = authorizer.authorize_channel(&socket_id, &channel).await;
            let _ = tx.send(Internal::Channel {
                socket_id,
                channel,
                result,
            });
        });
    }

    fn start_signin(&self, conn: &mut Conn) {
        if conn.signin_in_flight {
            return;
        }
        let Some(authorizer) = self.config.authorizer.clone() else {
            self.signin_failed(conn, "no authorizer configured".into());
            return;
        };
        conn.signin_in_flight = true;
        let (tx, socket_id) = (self.internal_tx.clone(), conn.socket_id.clone());
        tokio::spawn(async move {
            let result = authorizer.authenticate_user(&socket_id).await;
            let _ = tx.send(Internal::User { socket_id, result });
        });
    }

    fn signin_failed(&self, conn: &mut Conn, message: String) {
        conn.signin_in_flight = false;
        let mut reg = self.registry();
        reg.user.requested = false;
        reg.user.settle(&Err(message));
    }

    /// A subscription failed: record it and tell the channel's listeners.
    fn fail(&self, channel: &str, failure: SubscribeFailure) {
        let mut reg = self.registry();
        if let Some(entry) = reg.channels.get(channel) {
            entry.set_status(SubStatus::Failed(failure.clone()));
            let event = subscription_error_event(channel, &failure);
            reg.emit(&event);
        }
    }

    fn command(&self, conn: &mut Conn, cmd: Command) {
        match cmd {
            Command::Subscribe(channel) => {
                let kind = self.registry().channels.get(&channel).map(|e| e.kind);
                if let Some(kind) = kind {
                    self.start_subscribe(conn, channel, kind);
                }
            }
            Command::Unsubscribe(channel) => {
                conn.out.push(ClientFrame::Unsubscribe { channel }.encode());
            }
            Command::ClientEvent {
                channel,
                event,
                data,
                reply,
            } => {
                conn.out.push(
                    ClientFrame::ClientEvent {
                        event,
                        channel,
                        data,
                    }
                    .encode(),
                );
                let _ = reply.send(Ok(()));
            }
            Command::Signin => {
                let signed_in = self.registry().user.id.clone();
                match signed_in {
                    Some(id) => self.registry().user.settle(&Ok(id)),
                    None => self.start_signin(conn),
                }
            }
            Command::Disconnect(_) => unreachable!("handled by the session loop"),
        }
    }

    fn internal(&self, conn: &mut Conn, msg: Internal) {
        match msg {
            Internal::Channel {
                socket_id,
                channel,
                result,
            } => {
                if socket_id != conn.socket_id {
                    return; // for an earlier connection
                }
                self.authorized(conn, channel, result);
            }
            Internal::User { socket_id, result } => {
                if socket_id != conn.socket_id {
                    return;
                }
                match result {
                    Ok(r) => conn.out.push(
                        ClientFrame::Signin {
                            auth: r.auth,
                            user_data: r.user_data,
                        }
                        .encode(),
                    ),
                    Err(e) => self.signin_failed(conn, format!("authorizer: {e}")),
                }
            }
        }
    }

    fn authorized(
        &self,
        conn: &mut Conn,
        channel: String,
        result: Result<ChannelAuthResponse, AuthorizerError>,
    ) {
        let response = match result {
            Ok(r) => r,
            Err(e) => return self.fail(&channel, SubscribeFailure::Authorizer(e)),
        };
        let invalid = |m: &str| SubscribeFailure::Authorizer(AuthorizerError::new(m));
        let mut reg = self.registry();
        let Some(entry) = reg.channels.get_mut(&channel) else {
            return; // unsubscribed meanwhile
        };
        if entry.kind.is_encrypted() {
            let secret = response
                .shared_secret
                .as_deref()
                .map(shared_secret_from_base64);
            match secret {
                Some(Ok(key)) => entry.shared_secret = Some(key),
                _ => {
                    drop(reg);
                    return self.fail(
                        &channel,
                        invalid(
                            "auth response has no valid shared_secret for an encrypted channel",
                        ),
                    );
                }
            }
        }
        if entry.kind.is_presence() {
            match response.channel_data.as_deref().map(ChannelData::parse) {
                Some(Ok(ChannelData(member))) => entry.me = Some(member.user_id),
                _ => {
                    drop(reg);
                    return self.fail(
                        &channel,
                        invalid("auth response has no valid channel_data for a presence channel"),
                    );
                }
            }
        }
        drop(reg);
        conn.out.push(
            ClientFrame::Subscribe(Subscribe {
                channel,
                auth: Some(response.auth),
                // The shared secret stays here: the server never sees it.
                channel_data: response.channel_data,
            })
            .encode(),
        );
    }

    /// One frame from the server.
    fn frame(&self, conn: &mut Conn, bytes: &[u8]) {
        // Frames this client does not know are skipped, as pusher-js does.
        let Ok(frame) = ServerFrame::decode(bytes) else {
            return;
        };
        match frame {
            ServerFrame::Ping => conn.out.push(ClientFrame::Pong.encode()),
            ServerFrame::Error { code, message } => self.server_error(conn, code, message),
            ServerFrame::SubscriptionSucceeded { channel } => {
                self.succeeded(&channel, None);
            }
            ServerFrame::PresenceSubscriptionSucceeded { channel, members } => {
                let members = members.into_iter().map(Member::from_proto).collect();
                self.succeeded(&channel, Some(members));
            }
            ServerFrame::SubscriptionError { channel, error } => {
                self.fail(&channel, SubscribeFailure::Refused(error));
            }
            ServerFrame::MemberAdded { channel, member } => {
                let member = Member::from_proto(member);
                let mut reg = self.registry();
                let Some(entry) = reg.channels.get_mut(&channel) else {
                    return;
                };
                let data = serde_json::json!({"user_id": member.id, "user_info": member.info});
                match entry.members.iter_mut().find(|m| m.id == member.id) {
                    Some(m) => *m = member,
                    None => entry.members.push(member),
                }
                reg.emit(&internal_event(
                    &channel,
                    "pusher:member_added",
                    data.to_string(),
                ));
            }
            ServerFrame::MemberRemoved { channel, user_id } => {
                let mut reg = self.registry();
                let Some(entry) = reg.channels.get_mut(&channel) else {
                    return;
                };
                let info = entry
                    .members
                    .iter()
                    .position(|m| m.id == user_id)
                    .and_then(|i| entry.members.remove(i).info);
                let data = serde_json::json!({"user_id": user_id, "user_info": info});
                reg.emit(&internal_event(
                    &channel,
                    "pusher:member_removed",
                    data.to_string(),
                ));
            }
            ServerFrame::CacheMiss { channel } => {
                self.registry()
                    .emit(&internal_event(&channel, "pusher:cache_miss", "{}".into()));
            }
            ServerFrame::SubscriptionCount { channel, count } => {
                let mut reg = self.registry();
                if let Some(entry) = reg.channels.get_mut(&channel) {
                    entry.subscription_count = Some(count);
                    let data = serde_json::json!({ "subscription_count": count });
                    reg.emit(&internal_event(
                        &channel,
                        "pusher:subscription_count",
                        data.to_string(),
                    ));
                }
            }
            ServerFrame::SigninSuccess { user_data } => self.signed_in(conn, &user_data),
            ServerFrame::WatchlistEvents { events } => {
                let mut reg = self.registry();
                for e in &events {
                    broadcast(&mut reg.watchlist_listeners, e);
                }
            }
            ServerFrame::ChannelEvent(e) => self.channel_event(e),
            // Pong (liveness is any frame), a repeated handshake.
            _ => {}
        }
    }

    fn server_error(&self, conn: &mut Conn, code: Option<u16>, message: String) {
        if let Some(c) = code
            && (4000..4300).contains(&c)
        {
            conn.last_error = Some((c, message.clone()));
        }
        // Sign-in failures are 4009 errors; while a sign-in is pending, a
        // 4009 is its answer.
        if conn.signin_in_flight && code == Some(4009) {
            self.signin_failed(conn, message.clone());
        }
        let error = ServerError { code, message };
        broadcast(&mut self.registry().error_listeners, &error);
    }

    fn succeeded(&self, channel: &str, members: Option<Vec<Member>>) {
        let mut reg = self.registry();
        let Some(entry) = reg.channels.get_mut(channel) else {
            return;
        };
        let data = match members {
            Some(members) => {
                let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
                let hash: serde_json::Map<String, serde_json::Value> = members
                    .iter()
                    .map(|m| (m.id.clone(), m.info.clone().unwrap_or_default()))
                    .collect();
                let data = serde_json::json!({
                    "presence": {"ids": ids, "hash": hash, "count": members.len()}
                });
                entry.members = members;
                data.to_string()
            }
            None => "{}".to_owned(),
        };
        entry.set_status(SubStatus::Subscribed);
        reg.emit(&internal_event(
            channel,
            "pusher:subscription_succeeded",
            data,
        ));
    }

    fn signed_in(&self, conn: &mut Conn, user_data: &str) {
        conn.signin_in_flight = false;
        let id = match UserData::parse(user_data) {
            Ok(d) => d.id,
            Err(e) => return self.signin_failed(conn, format!("signin_success: {e}")),
        };
        let channel = format!("{SERVER_TO_USER_PREFIX}{id}");
        {
            let mut reg = self.registry();
            reg.user.id = Some(id.clone());
            reg.user.settle(&Ok(id));
            // Signed in as someone else before: that user's channel goes.
            reg.channels
                .retain(|n, e| e.kind != ChannelKind::ServerToUser || *n == channel);
            reg.channels
                .entry(channel.clone())
                .or_insert_with(|| ChannelEntry::new(ChannelKind::ServerToUser));
        }
        conn.out.push(
            ClientFrame::Subscribe(Subscribe {
                channel,
                auth: Some(String::new()),
                channel_data: None,
            })
            .encode(),
        );
    }

    fn channel_event(&self, e: pusher_proto::ChannelEvent) {
        let mut reg = self.registry();
        let Some(entry) = reg.channels.get(&e.channel) else {
            return;
        };
        let event = if entry.kind.is_encrypted() {
            let plain = entry
                .shared_secret
                .as_ref()
                .ok_or_else(|| "no shared secret".to_owned())
                .and_then(|key| {
                    let payload =
                        EncryptedPayload::from_json(&e.data).map_err(|x| x.to_string())?;
                    let bytes =
                        decrypt_with_shared_secret(key, &payload).map_err(|x| x.to_string())?;
                    String::from_utf8(bytes).map_err(|_| "plaintext is not UTF-8".to_owned())
                });
            match plain {
                Ok(data) => Event {
                    channel: e.channel,
                    name: e.event,
                    data,
                    user_id: e.user_id,
                },
                Err(error) => {
                    let data = serde_json::json!({"event": e.event, "error": error});
                    internal_event(&e.channel, "pusher:decryption_error", data.to_string())
                }
            }
        } else {
            Event {
                channel: e.channel,
                name: e.event,
                data: e.data,
                user_id: e.user_id,
            }
        };
        reg.emit(&event);
    }
}

/// Closes the socket politely (code 1000) and ends the session.
async fn close(mut ws: Ws, reply: Option<oneshot::Sender<()>>) -> End {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: Utf8Bytes::from_static(""),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        ws.send(Message::Close(Some(frame))).await?;
        // Read until the server's close answer (or the socket ends).
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
    End::Stop(reply)
}
