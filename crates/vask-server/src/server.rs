//! The listener around an [`Endpoint`]: one port (TCP, or TLS) for the
//! WebSocket endpoint and the HTTP API, a bound on HTTP connections, and the
//! drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::endpoint::{Endpoint, PusherService, State, stopped};

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
    /// Shuts down gracefully: drains (see [`crate::config::ServerConfig`]'s
    /// `drain_secs`), tells every WebSocket client to reconnect (4200),
    /// finishes in-flight HTTP requests, and waits at most the configured
    /// grace period.
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

/// What the accept loop shares with its connections.
#[derive(Debug)]
struct Listener {
    tls: Option<crate::tls::Acceptor>,
    /// HTTP connections (until they upgrade) open at once.
    slots: Arc<Semaphore>,
    /// Set while the limit refuses connections (logged once per episode).
    saturated: AtomicBool,
    limit: usize,
}

/// Starts the endpoint, binds the listener and serves.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let tls = match &config.server.tls {
        Some(t) => Some(
            crate::tls::acceptor(t)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let endpoint = Endpoint::start(&config)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e))?;
    let (host, port) = (config.server.host.as_str(), config.server.port);
    let listener = TcpListener::bind((host, port)).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}"))
    })?;
    let addr = listener.local_addr()?;
    let net = Arc::new(Listener {
        tls,
        slots: Arc::new(Semaphore::new(config.server.max_http_connections)),
        saturated: AtomicBool::new(false),
        limit: config.server.max_http_connections,
    });
    let (shutdown, stop) = watch::channel(false);
    let state = endpoint.state().clone();
    let task = tokio::spawn(run(listener, endpoint, net, stop));
    Ok(Running {
        addr,
        state,
        shutdown,
        task,
    })
}

async fn run(
    listener: TcpListener,
    endpoint: Endpoint,
    net: Arc<Listener>,
    mut stop: watch::Receiver<bool>,
) {
    let state = endpoint.state().clone();
    let service = endpoint.service();
    tokio::select! {
        _ = accept_loop(&listener, &net, &state, &service) => {}
        _ = stopped(&mut stop) => {}
    }
    // Draining: the port stays open so that a load balancer sees `/up`
    // answer 503 (not "connection refused") and moves traffic away;
    // WebSocket clients are told to reconnect elsewhere (4200); API requests
    // are still served, each on a connection that then closes.
    let started = tokio::time::Instant::now();
    endpoint.begin_shutdown();
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let drain = Duration::from_secs(state.config.drain_secs).min(grace);
    let open = state.apps.current().connection_count();
    tracing::info!(
        connections = open,
        drain_secs = drain.as_secs(),
        "shutting down: draining, telling clients to reconnect"
    );
    let _ = tokio::time::timeout(drain, accept_loop(&listener, &net, &state, &service)).await;
    drop(listener);
    drop(service);
    endpoint.finish(started).await;
}

/// Accepts connections until the future is dropped.
async fn accept_loop(
    listener: &TcpListener,
    net: &Arc<Listener>,
    state: &Arc<State>,
    service: &PusherService,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                match net.slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        net.saturated.store(false, Ordering::Relaxed);
                        tokio::spawn(accept(
                            net.clone(),
                            state.clone(),
                            tcp,
                            slot,
                            service.clone(),
                        ));
                    }
                    Err(_) => {
                        tokio::spawn(over_limit(net.clone(), state.clone(), tcp));
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
async fn over_limit(net: Arc<Listener>, state: Arc<State>, mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    state.metrics.refused("http_connection_limit");
    if !net.saturated.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            limit = net.limit,
            "HTTP connection limit reached: refusing new connections with 503"
        );
    }
    if net.tls.is_none() {
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

/// One accepted connection: the TLS handshake when configured, then serve.
/// `slot` is its place under `max_http_connections`, given back when the
/// connection closes or upgrades to a WebSocket.
async fn accept(
    net: Arc<Listener>,
    state: Arc<State>,
    tcp: TcpStream,
    slot: OwnedSemaphorePermit,
    service: PusherService,
) {
    match net.tls.clone() {
        None => serve(state, tcp, slot, service).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.0.accept(tcp)).await {
                Ok(Ok(tls)) => serve(state, tls, slot, service).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// Request head bytes hyper buffers per connection (its default is 400 KiB).
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// One connection (TCP or TLS): HTTP/1.1 with keep-alive, possibly upgraded.
async fn serve<S>(state: Arc<State>, stream: S, slot: OwnedSemaphorePermit, service: PusherService)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .keep_alive(true)
        // A peer that opens a connection and trickles its headers cannot
        // hold it (and its buffers) forever; nor can huge headers.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(stream), service)
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
}
