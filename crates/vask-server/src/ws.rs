//! The WebSocket endpoint `/app/{key}`: handshake, then one task per
//! connection that reads frames into the hub session and drains the
//! connection's outbox in batches (feed every queued frame, flush once).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pusher_hub::{Action, ConnQueue, Delivery, Drained, Outbox};
use pusher_proto::{ErrorCode, ServerFrame, UpgradeRequest, check_upgrade};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::apps::App;
use crate::endpoint::{Alive, State, text};

/// Whether the request asks for a WebSocket upgrade (then the handshake's
/// rules decide, whatever the method and path).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(UPGRADE) || req.headers().contains_key(SEC_WEBSOCKET_KEY)
}

/// Small buffers: tungstenite's defaults allocate 128 KiB per connection.
fn ws_config(state: &State) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(state.config.max_message_bytes))
        .max_frame_size(Some(state.config.max_message_bytes))
}

/// The app a valid handshake names, or the code that refuses it after the
/// upgrade (in the protocol's own form: `pusher:error`, then close).
fn admit(state: &State, app_key: Result<&str, ErrorCode>) -> Result<Arc<App>, ErrorCode> {
    if !state.accepting.load(Ordering::SeqCst) {
        return Err(ErrorCode::Reconnect);
    }
    let app = state.apps.by_key(app_key?).ok_or(ErrorCode::AppNotFound)?;
    if !app.config.enabled {
        return Err(ErrorCode::AppDisabled);
    }
    Ok(app.clone())
}

/// Answers the handshake and spawns the connection task.
pub(crate) fn upgrade<B>(
    state: Arc<State>,
    mut req: Request<B>,
    alive: Alive,
) -> Response<Full<Bytes>> {
    let h = req.headers();
    let header = |name| h.get(name).map(HeaderValue::as_bytes);
    let checked = check_upgrade(&UpgradeRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        connection: header(CONNECTION),
        upgrade: header(UPGRADE),
        version: header(SEC_WEBSOCKET_VERSION),
        key: header(SEC_WEBSOCKET_KEY),
    });
    let up = match checked {
        Ok(up) => up,
        Err(refusal) => {
            state.metrics.refused("bad_handshake");
            let mut resp = crate::api::error(
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
                refusal.message,
            );
            if refusal.wants_version_header() {
                resp.headers_mut()
                    .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            return resp;
        }
    };
    let accept = derive_accept_key(up.ws_key);
    let admitted = admit(&state, up.app_key);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let config = ws_config(&state);
        // Take the stream back from hyper: its post-upgrade read buffer
        // would cost kilobytes per connection for nothing.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let ws = websocket(parts.io.into_inner(), parts.read_buf, config).await;
                // Inline, not through `run`: a wrapper future would hold a
                // second copy of the stream's space in every task.
                match admitted {
                    Ok(app) => connection(state, app, ws).await,
                    Err(code) => refuse(ws, code).await,
                }
            }
            // Boxed: a TLS stream is large, and keeping it inline would make
            // every plain connection's task that large too.
            Err(upgraded) => Box::pin(run_other(state, admitted, upgraded, config)).await,
        }
        drop(alive);
    });
    let mut resp = text(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// The WebSocket over `io`, with whatever hyper had read past the handshake.
async fn websocket<S: Io>(io: S, read_buf: Bytes, config: WebSocketConfig) -> WebSocketStream<S> {
    if read_buf.is_empty() {
        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
    } else {
        WebSocketStream::from_partially_read(io, read_buf.to_vec(), Role::Server, Some(config))
            .await
    }
}

async fn run<S: Io>(
    state: Arc<State>,
    admitted: Result<Arc<App>, ErrorCode>,
    ws: WebSocketStream<S>,
) {
    match admitted {
        Ok(app) => connection(state, app, ws).await,
        Err(code) => refuse(ws, code).await,
    }
}

/// A TLS connection of our own listener, or a stream of an embedder's
/// server (used as hyper hands it over).
async fn run_other(
    state: Arc<State>,
    admitted: Result<Arc<App>, ErrorCode>,
    upgraded: hyper::upgrade::Upgraded,
    config: WebSocketConfig,
) {
    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let ws = websocket(parts.io.into_inner(), parts.read_buf, config).await;
            run(state, admitted, ws).await;
        }
        Err(upgraded) => {
            let ws = websocket(TokioIo::new(upgraded), Bytes::new(), config).await;
            run(state, admitted, ws).await;
        }
    }
}

/// A stream a WebSocket can run over (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

fn message(frame: Bytes) -> Message {
    match Utf8Bytes::try_from(frame) {
        Ok(t) => Message::Text(t),
        // Every frame the hub encodes is JSON text; never reached.
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}

async fn send_close<S: Io>(ws: &mut WebSocketStream<S>, code: ErrorCode) {
    close_with(ws, CloseCode::from(code.code()), "").await;
}

/// Sends a close frame, waiting at most a second for the socket to take it.
async fn close_with<S: Io>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ =
        tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(Some(frame)))).await;
}

/// A connection refused before it started: `pusher:error`, then close.
async fn refuse<S: Io>(mut ws: WebSocketStream<S>, code: ErrorCode) {
    let frame = match code {
        // While draining for shutdown, as Soketi words it.
        ErrorCode::Reconnect => {
            ServerFrame::error_with(code, "Server is closing. Please reconnect shortly.")
        }
        _ => ServerFrame::error(code),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.feed(message(frame.encode()))).await;
    send_close(&mut ws, code).await;
}

/// How a WebSocket-level violation by the peer is answered (RFC 6455 7.4.1):
/// 1007 for text that is not UTF-8, 1002 for a protocol error, 1009 for a
/// message over the size limit; `None` when the peer is simply gone.
fn violation(e: &WsError) -> Option<(CloseCode, &'static str, &'static str)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        WsError::Utf8(_) => Some((CloseCode::Invalid, "invalid UTF-8", "invalid_utf8")),
        WsError::Capacity(_) => Some((CloseCode::Size, "message too large", "message_too_large")),
        WsError::Protocol(P::ResetWithoutClosingHandshake | P::SendAfterClosing) => None,
        WsError::Protocol(_) => Some((CloseCode::Protocol, "protocol error", "protocol_error")),
        _ => None,
    }
}

/// Writes every frame in `buf`, then flushes once.
async fn write_batch<S: Io>(
    ws: &mut WebSocketStream<S>,
    buf: &mut VecDeque<Bytes>,
    app: &App,
) -> Result<(), WsError> {
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(frame) = buf.pop_front() {
        n += 1;
        bytes += frame.len() as u64;
        ws.feed(message(frame)).await?;
    }
    ws.flush().await?;
    app.metrics.frames_out.inc_by(n);
    app.metrics.bytes_out.inc_by(bytes);
    Ok(())
}

/// Counts what one session call queued and dropped.
fn count(app: &App, d: Delivery) {
    app.metrics.deliveries.inc_by(d.delivered);
    if d.dropped > 0 {
        app.metrics.dropped("outbox_full", d.dropped);
    }
}

/// Why the loop ended.
enum End {
    /// The peer closed or the socket failed.
    Peer,
    /// The server closes with this code (frames already queued are sent).
    Close(ErrorCode),
    /// The peer could not keep up: close 4100 at once.
    Slow(usize),
}

async fn connection<S: Io>(state: Arc<State>, app: Arc<App>, mut ws: WebSocketStream<S>) {
    let outbox = Arc::new(ConnQueue::new(
        state.config.outbox_capacity,
        state.config.outbox_max_bytes,
    ));
    let mut session = match app.hub.connect(outbox.clone(), state.now_ms()) {
        Ok(s) => s,
        Err(code) => return refuse(ws, code).await,
    };
    app.metrics.connections.inc();
    app.metrics.connections_total.inc();
    let mut shutdown = state.shutdown.clone();
    let mut buf = VecDeque::new();
    let mut deadline = session.next_timeout();
    let sleep = tokio::time::sleep_until(state.instant(deadline));
    tokio::pin!(sleep);

    let end = loop {
        tokio::select! {
            _ = crate::endpoint::stopped(&mut shutdown) => {
                let _ = outbox.push(ServerFrame::error_with(
                    ErrorCode::Reconnect, "Server closed. Please reconnect shortly.").encode());
                break End::Close(ErrorCode::Reconnect);
            }
            _ = std::future::poll_fn(|cx| outbox.poll_ready(cx)) => {
                match outbox.drain(&mut buf) {
                    Drained::Overflowed(n) => break End::Slow(n),
                    Drained::Frames(close) => {
                        match tokio::time::timeout(Duration::from_secs(state.config.write_timeout_secs), write_batch(&mut ws, &mut buf, &app)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => break End::Peer,
                            Err(_) => break End::Slow(buf.len()),
                        }
                        if let Some(code) = close {
                            break End::Close(code);
                        }
                    }
                }
            }
            msg = ws.next() => {
                let now = state.now_ms();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        app.metrics.messages_in.inc();
                        app.metrics.bytes_in.inc_by(t.len() as u64);
                        let done = session.handle_text(t.as_bytes(), now);
                        count(&app, done.delivery);
                        if let Action::Close(code) = done.action {
                            break End::Close(code);
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        session.touch(now);
                        app.metrics.error("binary_frame");
                        let _ = outbox.push(ServerFrame::Error {
                            code: None,
                            message: "Binary frames are not supported; send JSON text frames".into(),
                        }.encode());
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        // tungstenite queued the pong; it leaves on the next
                        // read or write without this task waiting on a peer
                        // that may not read.
                        session.touch(now);
                    }
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite queued the close reply: send it.
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.flush()).await;
                        break End::Peer;
                    }
                    None => break End::Peer,
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(e)) => {
                        if let Some((code, reason, metric)) = violation(&e) {
                            app.metrics.error(metric);
                            tracing::debug!(error = %e, "WebSocket violation; closing with {code}");
                            close_with(&mut ws, code, reason).await;
                        }
                        break End::Peer;
                    }
                }
            }
            _ = &mut sleep => {
                let done = session.handle_timeout(state.now_ms());
                count(&app, done.delivery);
                if let Action::Close(code) = done.action {
                    break End::Close(code);
                }
            }
        }
        let next = session.next_timeout();
        if next != deadline {
            deadline = next;
            sleep.as_mut().reset(state.instant(deadline));
        }
    };

    match end {
        End::Peer => {}
        End::Close(code) => {
            // Send what is queued (the pusher:error among it), then close.
            if let Drained::Frames(_) = outbox.drain(&mut buf) {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    write_batch(&mut ws, &mut buf, &app),
                )
                .await;
            }
            send_close(&mut ws, code).await;
            app.metrics.closed(code.code());
        }
        End::Slow(dropped) => {
            app.metrics.dropped("slow_consumer", dropped as u64);
            app.metrics.closed(ErrorCode::OverCapacity.code());
            tracing::info!(
                app = %app.config.id, socket_id = %session.socket_id(), dropped,
                "connection could not keep up; closed with 4100"
            );
            let frame =
                ServerFrame::error_with(ErrorCode::OverCapacity, "Connection could not keep up")
                    .encode();
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.feed(message(frame))).await;
            send_close(&mut ws, ErrorCode::OverCapacity).await;
        }
    }
    session.close(state.now_ms());
    app.metrics.connections.dec();
    outbox.close(ErrorCode::Reconnect);
}
