//! The listener: one port for the WebSocket endpoint and the HTTP API,
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::task::JoinHandle;

use crate::apps::Apps;
use crate::config::{Config, ServerConfig};
use crate::metrics::Metrics;
use crate::{api, ws};

/// What every connection task shares.
#[derive(Debug)]
pub struct State {
    /// The hosted apps.
    pub apps: Apps,
    /// Process-wide settings.
    pub config: ServerConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The hub clock's origin.
    pub start: Instant,
    /// Flips to true when shutdown begins: WebSocket connections are told
    /// to reconnect (4200), the node drains.
    pub shutdown: watch::Receiver<bool>,
    /// Flips to true when the drain is over: the listener closes, HTTP
    /// connections finish their request in flight and close.
    pub(crate) closing: watch::Receiver<bool>,
    /// False once shutdown began: `/up` answers 503, new WebSocket
    /// connections get 4200, API answers carry `Connection: close`.
    pub accepting: AtomicBool,
    /// HTTP connections (until they upgrade) open at once.
    pub(crate) http_slots: Arc<tokio::sync::Semaphore>,
    /// Set while the HTTP connection limit refuses connections (logged once
    /// per episode).
    pub(crate) http_saturated: AtomicBool,
    /// Set when the listener serves TLS.
    pub(crate) tls: Option<crate::tls::Acceptor>,
    /// Set when this server is a node of a cluster.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// Held by every connection task; shutdown waits until all are dropped.
pub(crate) type Alive = mpsc::Sender<()>;

impl State {
    /// Milliseconds on the hub clock.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The instant of a hub-clock time, for timers.
    pub fn instant(&self, ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + Duration::from_millis(ms.min(u64::MAX / 4)))
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Shared state (apps, metrics), for embedding and tests.
    pub state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Shuts down gracefully: stops accepting, tells every WebSocket client
    /// to reconnect (4200), finishes in-flight HTTP requests, and waits at
    /// most the configured grace period.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after a shutdown).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that starts the shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Binds the listener and starts serving.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let tls = match &config.server.tls {
        Some(t) => Some(
            crate::tls::acceptor(t)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (closing_tx, closing_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = mpsc::channel(1);
    let prepared = config.cluster.as_ref().map(crate::cluster::Prepared::new);
    let start = Instant::now();
    let apps = Apps::new(
        &config.apps,
        &crate::apps::Context {
            server: &config.server,
            metrics: &metrics,
            seed,
            shutdown: &shutdown_rx,
            alive: &alive_tx,
            cluster: prepared.as_ref(),
            origin: start,
        },
    );
    // A cluster node refuses to start when its engine cannot be reached,
    // and answers only once it knows the cluster's state.
    let cluster = match (&config.cluster, prepared) {
        (Some(c), Some(prepared)) => {
            let hubs = apps
                .iter()
                .map(|a| (a.config.id.clone(), a.hub.clone(), a.metrics.clone()))
                .collect();
            let clock = crate::cluster::Clock { origin: start };
            let cluster = crate::cluster::start(
                c,
                prepared,
                hubs,
                metrics.clone(),
                clock,
                closing_rx.clone(),
                alive_tx.clone(),
            )
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e))?;
            Some(cluster)
        }
        _ => None,
    };
    let (host, port) = (config.server.host.as_str(), config.server.port);
    let listener = TcpListener::bind((host, port)).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}"))
    })?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        apps,
        config: config.server.clone(),
        metrics,
        start,
        shutdown: shutdown_rx,
        closing: closing_rx,
        accepting: AtomicBool::new(true),
        http_slots: Arc::new(tokio::sync::Semaphore::new(
            config.server.max_http_connections,
        )),
        http_saturated: AtomicBool::new(false),
        tls,
        cluster,
    });
    let task = tokio::spawn(run(listener, state.clone(), closing_tx, alive_tx, alive_rx));
    Ok(Running {
        addr,
        state,
        shutdown: shutdown_tx,
        task,
    })
}

async fn run(
    listener: TcpListener,
    state: Arc<State>,
    closing: watch::Sender<bool>,
    alive: Alive,
    mut alive_rx: mpsc::Receiver<()>,
) {
    let mut shutdown = state.shutdown.clone();
    let ticker = tokio::spawn(tick(state.clone()));
    tokio::select! {
        _ = accept_loop(&listener, &state, &alive) => {}
        _ = stopped(&mut shutdown) => {}
    }
    // Draining: the port stays open so that a load balancer sees `/up`
    // answer 503 (not "connection refused") and moves traffic away;
    // WebSocket clients are told to reconnect elsewhere (4200); API requests
    // are still served, each on a connection that then closes.
    state.accepting.store(false, Ordering::SeqCst);
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let drain = Duration::from_secs(state.config.drain_secs).min(grace);
    let started = tokio::time::Instant::now();
    let open: usize = state.apps.iter().map(|a| a.hub.connection_count()).sum();
    tracing::info!(
        connections = open,
        drain_secs = drain.as_secs(),
        "shutting down: draining, telling clients to reconnect"
    );
    let _ = tokio::time::timeout(drain, accept_loop(&listener, &state, &alive)).await;
    drop(listener);
    drop(alive);
    let _ = closing.send(true);
    // Every connection task holds a sender: recv is None when all are done.
    let done = tokio::time::timeout_at(started + grace, async {
        while alive_rx.recv().await.is_some() {}
    })
    .await
    .is_ok();
    ticker.abort();
    if !done {
        let open: usize = state.apps.iter().map(|a| a.hub.connection_count()).sum();
        tracing::warn!(
            connections = open,
            "grace period over with connections still open; exiting"
        );
    }
}

/// Accepts connections until the future is dropped.
async fn accept_loop(listener: &TcpListener, state: &Arc<State>, alive: &Alive) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                match state.http_slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        state.http_saturated.store(false, Ordering::Relaxed);
                        tokio::spawn(accept(state.clone(), tcp, slot, alive.clone()));
                    }
                    Err(_) => {
                        tokio::spawn(over_limit(state.clone(), tcp));
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A connection over `max_http_connections`: a plain 503 and close (TLS
/// connections are closed: answering would cost a handshake).
async fn over_limit(state: Arc<State>, mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    state.metrics.refused("http_connection_limit");
    if !state.http_saturated.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            limit = state.config.max_http_connections,
            "HTTP connection limit reached: refusing new connections with 503"
        );
    }
    if state.tls.is_none() {
        let body = r#"{"error":"Too many connections","code":503}"#;
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = tcp.write_all(resp.as_bytes()).await;
            let _ = tcp.shutdown().await;
        })
        .await;
    }
}

/// The hubs' timers, once a second.
async fn tick(state: Arc<State>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let now = state.now_ms();
        for app in state.apps.iter() {
            let d = app.hub.tick(now);
            app.metrics.deliveries.inc_by(d.delivered);
        }
    }
}

/// One accepted connection: the TLS handshake when configured, then serve.
/// `slot` is its place under `max_http_connections`, given back when the
/// connection closes or upgrades to a WebSocket.
async fn accept(state: Arc<State>, tcp: TcpStream, slot: OwnedSemaphorePermit, alive: Alive) {
    match state.tls.clone() {
        None => serve(state, tcp, slot, alive).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.0.accept(tcp)).await {
                Ok(Ok(tls)) => serve(state, tls, slot, alive).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// One connection (TCP or TLS): HTTP/1.1 with keep-alive, possibly upgraded.
async fn serve<S>(state: Arc<State>, stream: S, slot: OwnedSemaphorePermit, alive: Alive)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let (svc_state, svc_alive) = (state.clone(), alive.clone());
    let svc = service_fn(move |req| handle(svc_state.clone(), req, svc_alive.clone()));
    let conn = http1::Builder::new()
        .keep_alive(true)
        // A peer that opens a connection and trickles its headers cannot
        // hold it (and its buffers) forever; nor can huge headers.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut closing = state.closing.clone();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut closing) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(slot);
    drop(alive);
}

/// Request head bytes hyper buffers per connection (its default is 400 KiB).
const MAX_HEADER_BYTES: usize = 32 * 1024;

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    alive: Alive,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if ws::is_upgrade(&req) {
        return Ok(ws::upgrade(state, req, alive));
    }
    let path = req.uri().path();
    let resp = match (req.method(), path) {
        (&Method::GET, "/up") => {
            // A lost cluster bus keeps 200: the node serves its own
            // connections, and draining every node at once would be worse.
            let cluster = state
                .cluster
                .as_ref()
                .map(|c| format!("\n{}", c.status.describe()))
                .unwrap_or_default();
            if state.accepting.load(Ordering::SeqCst) {
                text(StatusCode::OK, format!("OK{cluster}"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("shutting down{cluster}"),
                )
            }
        }
        (&Method::GET, "/metrics") => {
            let mut r = text(StatusCode::OK, state.metrics.encode());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        _ if path.starts_with("/apps/") || path.starts_with("/users/") => {
            api::handle(&state, req).await
        }
        _ => api::error(StatusCode::NOT_FOUND, "Not found"),
    };
    Ok(draining(&state, resp))
}

/// While draining, every answer closes its connection, so that keep-alive
/// clients reconnect (through the load balancer) to another node.
fn draining(state: &State, mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    if !state.accepting.load(Ordering::SeqCst) && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// Resolves once shutdown has begun.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
