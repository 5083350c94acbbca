//! The WebSocket endpoint `/app/{key}`: handshake, then one task per
//! connection that reads frames into the hub session. A plain TCP
//! connection's frames are written by flush tasks shared by every
//! connection (`wire.rs`), its task stepping in only when the socket is
//! full or the connection closes; a TLS connection's task drains its outbox
//! in batches (every queued frame in one write).

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
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::apps::App;
use crate::conn::{ReadSide, WriteError, Writer, close_frame};
use crate::endpoint::{Alive, State, text};
use crate::wire::{Counters, MAX_CONTROL_BYTES, Step, Wire};

/// Whether the request asks for a WebSocket upgrade (then the handshake's
/// rules decide, whatever the method and path).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(UPGRADE) || req.headers().contains_key(SEC_WEBSOCKET_KEY)
}

/// Small buffers: tungstenite's defaults allocate 128 KiB per connection.
/// It only reads here (and writes control frames into the read side):
/// 1 KiB holds any frame a Pusher client sends but large messages, for
/// which the buffer grows.
fn ws_config(state: &State) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(state.config.max_message_bytes))
        .max_frame_size(Some(state.config.max_message_bytes))
}

/// The app a valid handshake names, or the code that refuses it after the
/// upgrade (in the protocol's own form: `pusher:error`, then close).
fn admit(state: &State, app_key: Result<&str, ErrorCode>) -> Result<Arc<App>, ErrorCode> {
    if !state.accepting.load(Ordering::SeqCst) {
        return Err(ErrorCode::Reconnect);
    }
    let apps = state.apps.current();
    let app = apps.by_key(app_key?).ok_or(ErrorCode::AppNotFound)?;
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
        // Take the stream back from hyper (its post-upgrade read buffer
        // would cost kilobytes per connection for nothing) and split it:
        // tungstenite reads, the writer writes.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let (r, w) = parts.io.into_inner().into_split();
                run(state, admitted, r, w, parts.read_buf, config, wire).await;
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

/// A connection of our own TLS listener, or a stream of an embedder's
/// server (used as hyper hands it over).
async fn run_other(
    state: Arc<State>,
    admitted: Result<Arc<App>, ErrorCode>,
    upgraded: hyper::upgrade::Upgraded,
    config: WebSocketConfig,
) {
    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let (r, w) = tokio::io::split(parts.io.into_inner());
            run(state, admitted, r, w, parts.read_buf, config, Link::task).await;
        }
        Err(upgraded) => {
            let (r, w) = tokio::io::split(TokioIo::new(upgraded));
            run(state, admitted, r, w, Bytes::new(), config, Link::task).await;
        }
    }
}

/// The write side of a plain TCP connection: written by flushes, without
/// its task.
fn wire(w: tokio::net::tcp::OwnedWriteHalf, state: &State, app: &App) -> Link<TcpWrite> {
    Link::Wire(Wire::new(
        w,
        state.config.outbox_capacity,
        state.config.outbox_max_bytes,
        Counters {
            frames_out: app.metrics.frames_out.clone(),
            bytes_out: app.metrics.bytes_out.clone(),
            usage: app.usage.clone(),
        },
    ))
}

type TcpWrite = tokio::net::tcp::OwnedWriteHalf;

/// The connection, or its refusal, over a split stream; `read_buf` holds
/// what hyper had read past the handshake; `link` makes the write side.
async fn run<R: Read, W: Write>(
    state: Arc<State>,
    admitted: Result<Arc<App>, ErrorCode>,
    r: R,
    w: W,
    read_buf: Bytes,
    config: WebSocketConfig,
    link: fn(W, &State, &App) -> Link<W>,
) {
    let side = ReadSide::new(r);
    // Copied out and dropped at once: even empty, hyper's `read_buf` keeps
    // its whole read buffer (8 KiB) alive for as long as it is held.
    let partial = (!read_buf.is_empty()).then(|| read_buf.to_vec());
    drop(read_buf);
    let ws = match partial {
        None => WebSocketStream::from_raw_socket(side, Role::Server, Some(config)).await,
        Some(bytes) => {
            WebSocketStream::from_partially_read(side, bytes, Role::Server, Some(config)).await
        }
    };
    match admitted {
        Ok(app) => {
            let link = link(w, &state, &app);
            connection(state, app, ws, link).await
        }
        Err(code) => refuse(Writer::new(w), code).await,
    }
}

/// A read half a connection runs over.
pub(crate) trait Read: AsyncRead + Unpin + Send + 'static {}
impl<T: AsyncRead + Unpin + Send + 'static> Read for T {}
/// A write half a connection runs over.
pub(crate) trait Write: AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncWrite + Unpin + Send + 'static> Write for T {}

type Ws<R> = WebSocketStream<ReadSide<R>>;

/// How long the last words to a closing connection may take.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// The `pusher:error` a connection refused before it started gets.
fn refusal(code: ErrorCode) -> Bytes {
    match code {
        // While draining for shutdown, as Soketi words it.
        ErrorCode::Reconnect => {
            ServerFrame::error_with(code, "Server is closing. Please reconnect shortly.")
        }
        _ => ServerFrame::error(code),
    }
    .encode()
}

/// A connection refused before it started: `pusher:error`, then close.
async fn refuse<W: Write>(mut writer: Writer<W>, code: ErrorCode) {
    let mut frames = VecDeque::from([refusal(code)]);
    let _ = writer.write(&mut Vec::new(), &mut frames, LAST_WORDS).await;
    writer
        .send_raw(&close_frame(code.code(), ""), LAST_WORDS)
        .await;
}

/// How a WebSocket-level violation by the peer is answered (RFC 6455 7.4.1):
/// 1007 for text that is not UTF-8, 1002 for a protocol error, 1009 for a
/// message over the size limit; `None` when the peer is simply gone.
fn violation(e: &WsError) -> Option<(u16, &'static str, &'static str)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        WsError::Utf8(_) => Some((1007, "invalid UTF-8", "invalid_utf8")),
        WsError::Capacity(_) => Some((1009, "message too large", "message_too_large")),
        WsError::Protocol(P::ResetWithoutClosingHandshake | P::SendAfterClosing) => None,
        WsError::Protocol(_) => Some((1002, "protocol error", "protocol_error")),
        _ => None,
    }
}

/// Counts what one session call queued and dropped.
fn count(app: &App, d: Delivery) {
    app.metrics.deliveries.inc_by(d.delivered);
    if d.dropped > 0 {
        app.metrics.dropped("outbox_full", d.dropped);
    }
}

/// The code to close with once the app is disabled or deleted; pending
/// while it is not (and forever if its status can no longer change).
async fn closed(status: &mut tokio::sync::watch::Receiver<crate::apps::Status>) -> ErrorCode {
    loop {
        if let Some(code) = status.borrow_and_update().close_code() {
            return code;
        }
        if status.changed().await.is_err() {
            return std::future::pending().await;
        }
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

/// Frames a drained batch buffer may keep room for.
const KEEP_BATCH: usize = 16;

/// Writes in a row (each woken by the outbox) before the read side, the
/// timer and the close watch are polled again.
const WRITES_BEFORE_READ: u32 = 8;

/// The write side of a connection, as its loop drives it.
enum Link<W> {
    /// Plain TCP: flushes write the frames; the task only when the socket
    /// is full, and the last words.
    Wire(Arc<Wire>),
    /// Any other stream (TLS, an embedder's): the task writes every batch.
    Task(Tasked<W>),
}

struct Tasked<W> {
    queue: Arc<ConnQueue>,
    writer: Writer<W>,
    /// The batch being written.
    buf: VecDeque<Bytes>,
    /// tungstenite's answers (pongs, the close reply), sent before the
    /// next batch.
    control: Vec<u8>,
}

impl<W: Write> Link<W> {
    /// The write side of a stream the task writes itself.
    fn task(w: W, state: &State, _: &App) -> Self {
        Link::Task(Tasked {
            queue: Arc::new(ConnQueue::new(
                state.config.outbox_capacity,
                state.config.outbox_max_bytes,
            )),
            writer: Writer::new(w),
            buf: VecDeque::new(),
            control: Vec::new(),
        })
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        match self {
            Link::Wire(w) => w.clone(),
            Link::Task(t) => t.queue.clone(),
        }
    }

    /// Ready when the task has writing (or a close, an overflow) to do.
    /// (Borrows the queue only: a TLS write half is not `Sync`.)
    fn ready(&self) -> impl Future<Output = ()> + Send + '_ {
        enum Waits<'a> {
            Wire(&'a Wire),
            Queue(&'a ConnQueue),
            No,
        }
        let waits = match self {
            Link::Wire(w) => Waits::Wire(w),
            Link::Task(t) if !t.control.is_empty() => Waits::No,
            Link::Task(t) => Waits::Queue(&t.queue),
        };
        std::future::poll_fn(move |cx| match &waits {
            Waits::Wire(wire) => wire.poll_ready(cx),
            Waits::Queue(queue) => queue.poll_ready(cx),
            Waits::No => std::task::Poll::Ready(()),
        })
    }

    /// Sends control bytes (emptying `bytes`) in order with the frames;
    /// false when too many wait for a peer that does not read.
    fn control(&mut self, bytes: &mut Vec<u8>) -> bool {
        match self {
            Link::Wire(w) => w.control(bytes),
            Link::Task(t) => {
                t.control.append(bytes);
                t.control.len() <= MAX_CONTROL_BYTES
            }
        }
    }

    /// What `poll_ready` announced.
    async fn work(&mut self, app: &App, limit: Duration) -> Step {
        let t = match self {
            Link::Wire(w) => return w.work(limit).await,
            Link::Task(t) => t,
        };
        // Lets the rest of a fan-out queue more frames for this batch.
        if t.control.is_empty() {
            tokio::task::yield_now().await;
        }
        let close = match t.queue.drain(&mut t.buf) {
            Drained::Overflowed(n) => return Step::Slow(n),
            Drained::Frames(close) => close,
        };
        let n = t.buf.len() as u64;
        match t.writer.write(&mut t.control, &mut t.buf, limit).await {
            Ok(bytes) => {
                app.metrics.frames_out.inc_by(n);
                app.metrics.bytes_out.inc_by(bytes);
                app.usage.bytes_out(bytes);
            }
            Err(WriteError::Io) => return Step::Peer,
            Err(WriteError::TimedOut) => return Step::Slow(n as usize),
        }
        // A burst's batch grew this buffer (and the queue's, which the next
        // drain swaps for it): replaced by a small one, so that an idle
        // connection keeps small ones.
        if t.buf.capacity() > KEEP_BATCH {
            t.buf = VecDeque::with_capacity(KEEP_BATCH);
        }
        match close {
            Some(code) => Step::Close(code),
            None => Step::Wrote,
        }
    }

    /// The last words, within about `limit`: the control bytes, the queued
    /// frames if `keep_frames`, `extra`, then the raw `close` frame.
    async fn last_words(
        &mut self,
        keep_frames: bool,
        extra: Option<Bytes>,
        close: &[u8],
        limit: Duration,
    ) {
        let t = match self {
            Link::Wire(w) => return w.last_words(keep_frames, extra, close, limit).await,
            Link::Task(t) => t,
        };
        t.buf.clear();
        if keep_frames && let Drained::Overflowed(_) = t.queue.drain(&mut t.buf) {
            t.buf.clear();
        }
        t.buf.extend(extra);
        if t.writer
            .write(&mut t.control, &mut t.buf, limit)
            .await
            .is_ok()
        {
            t.writer.send_raw(close, limit).await;
        }
    }
}

async fn connection<R: Read, W: Write>(
    state: Arc<State>,
    app: Arc<App>,
    mut ws: Ws<R>,
    mut link: Link<W>,
) {
    let outbox = link.outbox();
    let mut session = match app.hub.connect(outbox.clone(), state.now()) {
        Ok(s) => s,
        Err(code) => {
            if code == ErrorCode::OverConnectionQuota {
                app.usage.connection_refused();
            }
            app.metrics.console.refused_connection(code);
            let close = close_frame(code.code(), "");
            return link
                .last_words(false, Some(refusal(code)), &close, LAST_WORDS)
                .await;
        }
    };
    app.metrics.connections.inc();
    app.metrics.connections_total.inc();
    app.usage.connections(app.hub.cluster_connection_count());
    app.metrics.console.opened(session.socket_id());
    let write_timeout = Duration::from_secs(state.config.write_timeout_secs);
    let mut shutdown = state.shutdown.clone();
    let mut status = app.life.status.subscribe();
    // Shutdown, or the app disabled or deleted since it was admitted
    // (checked at once): one future for the connection's whole life, so
    // that a wake of the loop below does not register it again.
    let closing = async {
        tokio::select! {
            _ = crate::endpoint::stopped(&mut shutdown) => None,
            code = closed(&mut status) => Some(code),
        }
    };
    tokio::pin!(closing);
    let mut writes_in_a_row = 0;
    let mut deadline = session.next_timeout();
    let sleep = tokio::time::sleep_until(state.instant(deadline));
    tokio::pin!(sleep);

    let end = loop {
        // tungstenite's answers (pongs, the close reply) wait in the read
        // side until the write side sends them, never from the read path.
        let answers = &mut ws.get_mut().control;
        if !answers.is_empty() && !link.control(answers) {
            break End::Slow(0);
        }
        // In this order: a wake by the outbox does not poll the socket's
        // read side, the timer nor the close watch; they get their turn at
        // least after every `WRITES_BEFORE_READ` writes in a row.
        tokio::select! {
            biased;
            () = link.ready(),
                if writes_in_a_row < WRITES_BEFORE_READ => {
                writes_in_a_row += 1;
                match link.work(&app, write_timeout).await {
                    Step::Wrote => {}
                    Step::Close(code) => break End::Close(code),
                    Step::Slow(n) => break End::Slow(n),
                    Step::Peer => break End::Peer,
                }
            }
            msg = ws.next() => {
                writes_in_a_row = 0;
                let now = state.now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        app.metrics.messages_in.inc();
                        app.metrics.bytes_in.inc_by(t.len() as u64);
                        let asked = app.metrics.console.asked(t.as_bytes(), &mut session);
                        let done = session.handle_text(t.as_bytes(), now);
                        if let Some(asked) = asked {
                            app.metrics.console.answered(asked, &mut session);
                        }
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
                        session.touch(now);
                        // Moves tungstenite's pong into the read side (which
                        // never blocks); the writer sends it.
                        let _ = ws.flush().await;
                    }
                    Some(Ok(Message::Close(_))) => {
                        // Send tungstenite's close reply, then stop.
                        let _ = ws.flush().await;
                        let reply = std::mem::take(&mut ws.get_mut().control);
                        link.last_words(false, None, &reply, LAST_WORDS).await;
                        break End::Peer;
                    }
                    None => break End::Peer,
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(e)) => {
                        if let Some((code, reason, metric)) = violation(&e) {
                            app.metrics.error(metric);
                            tracing::debug!(error = %e, "WebSocket violation; closing with {code}");
                            let close = close_frame(code, reason);
                            link.last_words(false, None, &close, LAST_WORDS).await;
                        }
                        break End::Peer;
                    }
                }
            }
            _ = &mut sleep => {
                writes_in_a_row = 0;
                let done = session.handle_timeout(state.now());
                count(&app, done.delivery);
                if let Action::Close(code) = done.action {
                    break End::Close(code);
                }
            }
            why = &mut closing => {
                let (code, frame) = match why {
                    None => (ErrorCode::Reconnect, ServerFrame::error_with(
                        ErrorCode::Reconnect, "Server closed. Please reconnect shortly.")),
                    Some(code) => (code, ServerFrame::error(code)),
                };
                let _ = outbox.push(frame.encode());
                break End::Close(code);
            }
            // The read side and the timer (and the close watch) were polled and are pending.
            () = std::future::ready(()), if writes_in_a_row >= WRITES_BEFORE_READ => {
                writes_in_a_row = 0;
            }
        }
        let next = session.next_timeout();
        if next != deadline {
            deadline = next;
            sleep.as_mut().reset(state.instant(deadline));
        }
    };

    // For the debug console: who closed, with what code.
    let closed_with = match &end {
        End::Peer => None,
        End::Close(code) => Some(*code),
        End::Slow(_) => Some(ErrorCode::OverCapacity),
    };
    match end {
        End::Peer => {}
        End::Close(code) => {
            // Send what is queued (the pusher:error among it), then close.
            let close = close_frame(code.code(), "");
            link.last_words(true, None, &close, 2 * LAST_WORDS).await;
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
            let close = close_frame(ErrorCode::OverCapacity.code(), "");
            link.last_words(false, Some(frame), &close, LAST_WORDS)
                .await;
        }
    }
    app.metrics.console.closed(session.socket_id(), closed_with);
    session.close(state.now());
    app.metrics.connections.dec();
    outbox.close(ErrorCode::Reconnect);
}
