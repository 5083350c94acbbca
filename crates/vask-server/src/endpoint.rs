//! The Pusher endpoint without a listener: the apps and their hubs, their
//! timers, webhooks and cluster node, and a service that answers
//! `/app/{key}` (WebSocket), `/apps/{id}/...` (HTTP API), `/up` and
//! `/metrics`. vask-server's listener serves it; an embedder mounts
//! [`Endpoint::service`] in its own hyper or axum server.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = vask_server::Config::load(&vask_server::Cli::default())?;
//! let endpoint = vask_server::Endpoint::start(&config).await?;
//! let service = endpoint.service(); // tower and hyper `Service`
//! # let _ = service;
//! endpoint.shutdown().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::apps::{Builder, Changes, LiveApps};
use crate::config::ConfigError;
use crate::config::{Config, ServerConfig};
use crate::metrics::Metrics;
use crate::source::AppsSource;
use crate::store::{PgStore, StoreError};
use crate::{api, ws};
use pusher_hub::Millis;

/// What every connection task shares.
#[derive(Debug)]
pub struct State {
    /// The hosted apps (replaced whole by a reload).
    pub apps: LiveApps,
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
    /// Set when this server is a node of a cluster.
    pub cluster: Option<crate::cluster::Cluster>,
    /// The admin API's bearer token (`None`: no admin API).
    pub(crate) admin_token: Option<pusher_auth::Secret>,
    /// Where the apps live.
    pub(crate) source: AppsSource,
    /// One reload from the store at a time (in the order they read it).
    reloading: tokio::sync::Mutex<()>,
    /// The debug console's sessions and feeds.
    pub(crate) console: crate::console::Console,
}

/// Held by every connection task; shutdown waits until all are dropped.
pub(crate) type Alive = mpsc::Sender<()>;

impl State {
    /// Now, on the hub clock.
    pub fn now(&self) -> Millis {
        Millis::from(self.start.elapsed())
    }

    /// Reloads the apps from where they live: the configuration file (read
    /// again with the flags and environment of `cli`, and validated whole:
    /// a bad file is refused, naming the field, and the apps in force
    /// stay), or the store. Only the apps change; other settings need a
    /// restart.
    ///
    /// # Errors
    /// The file cannot be read or is invalid; the store cannot be read.
    pub async fn reload(&self, cli: &crate::Cli) -> Result<Changes, ConfigError> {
        match &self.source {
            AppsSource::File(_) => {
                let config = Config::load(cli)?;
                self.apps.replace(&config.apps)
            }
            AppsSource::Postgres(_) => {
                self.reload_store()
                    .await
                    .map_err(|crate::admin::Refusal(_, message)| ConfigError::Invalid {
                        field: "apps_store".into(),
                        message,
                    })
            }
        }
    }

    /// Takes in what the store holds now (after a write through the admin
    /// API, or a change signalled by the database).
    pub(crate) async fn reload_store(&self) -> Result<Changes, crate::admin::Refusal> {
        let AppsSource::Postgres(store) = &self.source else {
            return Ok(Changes::default());
        };
        let _one = self.reloading.lock().await;
        let apps = store.list().await.inspect_err(|e| {
            self.metrics.apps_store_error("list");
            if matches!(e, StoreError::Unreachable(_)) {
                self.metrics.apps_store_up.set(0);
            }
        })?;
        self.metrics.apps_store_up.set(1);
        self.apps.replace(&apps).map_err(|e| {
            crate::admin::Refusal::new(
                hyper::StatusCode::INTERNAL_SERVER_ERROR,
                format!("the apps store holds an invalid app: {e}"),
            )
        })
    }

    /// The instant of a hub-clock time, for timers.
    pub fn instant(&self, t: Millis) -> tokio::time::Instant {
        crate::cluster::Clock { origin: self.start }.instant(t)
    }
}

/// Why an endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The cluster engine could not be reached.
    #[error("{0}")]
    Cluster(String),
    /// The apps store could not be reached or holds an invalid app.
    #[error("{0}")]
    Store(String),
}

/// A running endpoint: apps, hubs, background tasks.
#[derive(Debug)]
pub struct Endpoint {
    state: Arc<State>,
    alive: Alive,
    alive_rx: Mutex<Option<mpsc::Receiver<()>>>,
    shutdown: watch::Sender<bool>,
    closing: watch::Sender<bool>,
}

impl Endpoint {
    /// Builds every app's hub and starts their timers, webhooks and (with
    /// `[cluster]`) the cluster node; in a cluster, returns once the node
    /// knows the cluster's state. With `[apps_store]`, the apps (and the
    /// usage kept) are read from PostgreSQL first, and followed there.
    /// Needs a tokio runtime.
    ///
    /// # Errors
    /// The cluster engine or the apps store cannot be reached, or the store
    /// holds an invalid app.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
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
        let clock = crate::cluster::Clock { origin: start };
        // With a store, the apps (and the usage kept) are read from it; a
        // store that cannot be reached or read refuses the start.
        let (source, initial, kept) = match &config.apps_store {
            None => (
                AppsSource::File(config.file.clone()),
                config.apps.clone(),
                Vec::new(),
            ),
            Some(s) => {
                let refused = |e: StoreError| {
                    StartError::Store(format!("apps store {}: {e}", s.redacted_url()))
                };
                let store = PgStore::connect(&s.url).await.map_err(refused)?;
                let apps = store.list().await.map_err(refused)?;
                let kept = store.load_usage().await.map_err(refused)?;
                metrics.apps_store_up.set(1);
                tracing::info!(apps = apps.len(), store = %s.redacted_url(), "apps read from the store");
                (AppsSource::Postgres(Arc::new(store)), apps, kept)
            }
        };
        // This node in the usage kept: its cluster id, or one of its own.
        let node = prepared
            .as_ref()
            .map_or_else(|| pusher_hub::NodeId::new("single", seed), |p| p.me.clone());
        let apps = LiveApps::new(
            &initial,
            Builder {
                server: config.server.clone(),
                metrics: metrics.clone(),
                seed,
                shutdown: shutdown_rx.clone(),
                alive: Mutex::new(Some(alive_tx.clone())),
                cluster: prepared.as_ref().map(crate::cluster::Prepared::sinks),
                cluster_changes: Mutex::new(None),
                clock,
            },
        );
        // A cluster node refuses to start when its engine cannot be
        // reached, and answers only once it knows the cluster's state.
        let cluster = match (&config.cluster, prepared) {
            (Some(c), Some(prepared)) => {
                let hubs = apps
                    .current()
                    .iter()
                    .map(|a| {
                        (
                            a.config.id.clone(),
                            a.hub.clone(),
                            a.metrics.clone(),
                            a.usage.clone(),
                        )
                    })
                    .collect();
                let (changes_tx, changes) = mpsc::channel(crate::cluster::APP_CHANGES);
                apps.set_cluster_changes(changes_tx);
                let cluster = crate::cluster::start(
                    c,
                    prepared,
                    hubs,
                    changes,
                    metrics.clone(),
                    clock,
                    closing_rx.clone(),
                    alive_tx.clone(),
                )
                .await
                .map_err(StartError::Cluster)?;
                Some(cluster)
            }
            _ => None,
        };
        let state = Arc::new(State {
            apps,
            config: config.server.clone(),
            metrics,
            start,
            shutdown: shutdown_rx,
            closing: closing_rx,
            accepting: AtomicBool::new(true),
            cluster,
            admin_token: config.admin.token.clone(),
            source,
            reloading: tokio::sync::Mutex::new(()),
            console: Default::default(),
        });
        tokio::spawn(peaks(state.clone()));
        if let AppsSource::Postgres(store) = &state.source {
            restore_usage(&state, &kept);
            let (doorbell, rung) = mpsc::channel(1);
            store.watch(doorbell);
            tokio::spawn(follow_store(state.clone(), rung));
            tokio::spawn(keep_usage(
                state.clone(),
                store.clone(),
                node,
                alive_tx.clone(),
            ));
        }
        Ok(Self {
            state,
            alive: alive_tx,
            alive_rx: Mutex::new(Some(alive_rx)),
            shutdown: shutdown_tx,
            closing: closing_tx,
        })
    }

    /// The shared state (apps, hubs, metrics).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The service answering the endpoint's paths, for hyper
    /// (`hyper::service::Service`) and tower/axum (`tower::Service`).
    pub fn service(&self) -> PusherService {
        PusherService {
            state: self.state.clone(),
            alive: self.alive.clone(),
        }
    }

    /// Starts draining: `/up` answers 503, WebSocket clients are told to
    /// reconnect (4200), new ones get 4200, webhooks flush.
    pub fn begin_shutdown(&self) {
        self.state.accepting.store(false, Ordering::SeqCst);
        self.state.apps.release_alive();
        let _ = self.shutdown.send(true);
    }

    /// Shuts down gracefully: [`Endpoint::begin_shutdown`], then waits (at
    /// most `shutdown_grace_secs`) for connections and webhooks to finish,
    /// and says goodbye to the cluster.
    pub async fn shutdown(self) {
        self.begin_shutdown();
        self.finish(tokio::time::Instant::now()).await;
    }

    /// The end of a shutdown begun at `started`: the drain is over.
    pub(crate) async fn finish(self, started: tokio::time::Instant) {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let _ = self.closing.send(true);
        let Self {
            state,
            alive,
            alive_rx,
            ..
        } = self;
        drop(alive);
        let Some(mut alive_rx) = alive_rx.lock().take() else {
            return;
        };
        // Every task holds a sender: recv is None when all are done.
        let done = tokio::time::timeout_at(started + grace, async {
            while alive_rx.recv().await.is_some() {}
        })
        .await
        .is_ok();
        if !done {
            let open = state.apps.current().connection_count();
            tracing::warn!(
                connections = open,
                "grace period over with connections still open; exiting"
            );
        }
    }
}

/// Once a second, per app: records its open connections, so that a new
/// day's or month's peak starts from what is open then and the other
/// nodes' connections count as their heartbeats arrive; and, with the
/// console on, samples its figures for the charts.
async fn peaks(state: Arc<State>) {
    let mut shutdown = state.shutdown.clone();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = crate::usage::now_unix();
                let console = state.admin_token.is_some();
                for app in state.apps.current().iter() {
                    let open = app.hub.cluster_connection_count();
                    app.usage.connections(open);
                    if console {
                        crate::console::sample(app, now, open);
                    }
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// The endpoint as a service: `/app/{key}`, `/apps/{id}/...`, `/up`,
/// `/metrics`; anything else is a JSON 404.
#[derive(Debug, Clone)]
pub struct PusherService {
    state: Arc<State>,
    alive: Alive,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl PusherService {
    fn respond<B>(&self, req: Request<B>) -> BoxFuture
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (state, alive) = (self.state.clone(), self.alive.clone());
        Box::pin(async move { Ok(handle(state, req, alive).await) })
    }
}

impl<B> tower_service::Service<Request<B>> for PusherService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> BoxFuture {
        self.respond(req)
    }
}

impl<B> hyper::service::Service<Request<B>> for PusherService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn call(&self, req: Request<B>) -> BoxFuture {
        self.respond(req)
    }
}

/// Routes one request.
pub(crate) async fn handle<B>(
    state: Arc<State>,
    req: Request<B>,
    alive: Alive,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if crate::console::owns(req.uri().path()) {
        return crate::console::handle(state, req, alive).await;
    }
    if ws::is_upgrade(&req) {
        return ws::upgrade(state, req, alive);
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
        _ if path == "/admin" || path.starts_with("/admin/") => {
            crate::admin::handle(&state, req).await
        }
        _ if path.starts_with("/apps/") || path.starts_with("/users/") => {
            api::handle(&state, req).await
        }
        _ => api::error(StatusCode::NOT_FOUND, "Not found"),
    };
    draining(&state, resp)
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

/// Resolves once `rx` flips to true.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Follows the store: every change signalled (and every reconnection of
/// the watcher) reloads the apps. A store gone keeps the apps in force;
/// the next signal after it is back catches up.
async fn follow_store(state: Arc<State>, mut rung: mpsc::Receiver<()>) {
    let mut shutdown = state.shutdown.clone();
    let mut failing = false;
    let AppsSource::Postgres(store) = &state.source else {
        return;
    };
    // The change feed lost: the store is down until a reload succeeds.
    let mut lost = store.disconnects();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = rung.recv() => if r.is_none() { return },
            _ = every.tick() => {
                if store.disconnects() != lost {
                    lost = store.disconnects();
                    state.metrics.apps_store_up.set(0);
                }
                continue;
            }
            _ = stopped(&mut shutdown) => return,
        }
        // A reload after a loss tells whether the store is back.
        lost = store.disconnects();
        match state.reload_store().await {
            Ok(c) => {
                if failing {
                    tracing::info!("apps store answers again; apps reloaded");
                    failing = false;
                }
                if !c.is_empty() {
                    tracing::info!(
                        added = c.added,
                        changed = c.changed,
                        removed = c.removed,
                        "apps changed in the store"
                    );
                }
            }
            Err(crate::admin::Refusal(_, message)) => {
                if !failing {
                    tracing::warn!(%message, "apps not reloaded from the store; the apps in force stay");
                    failing = true;
                }
            }
        }
    }
}

/// How often this node's usage figures are written to the store.
const USAGE_SAVE_EVERY: Duration = Duration::from_secs(10);

/// Writes this node's usage figures to the store every
/// [`USAGE_SAVE_EVERY`] and once more at shutdown: one statement for all
/// apps, never on the publish path.
async fn keep_usage(
    state: Arc<State>,
    store: Arc<PgStore>,
    node: pusher_hub::NodeId,
    alive: Alive,
) {
    let mut closing = state.closing.clone();
    let mut every = tokio::time::interval(USAGE_SAVE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    let key = node.to_string();
    let mut failing = false;
    loop {
        let last = tokio::select! {
            _ = every.tick() => false,
            _ = stopped(&mut closing) => true,
        };
        let now = crate::usage::now_unix();
        let rows: Vec<_> = state
            .apps
            .current()
            .iter()
            .filter(|a| !a.usage.usage().is_idle(now))
            .map(|a| (key.clone(), a.config.id.clone(), a.usage.snapshot()))
            .collect();
        match store.save_usage(&rows).await {
            Ok(()) => failing = false,
            Err(e) => {
                state.metrics.apps_store_error("usage_save");
                if !failing {
                    tracing::warn!(error = %e, "usage figures not written to the store; retrying every 10 s");
                    failing = true;
                }
            }
        }
        if last {
            break;
        }
    }
    drop(alive);
}

/// Gives each app the usage the store kept (of every node, earlier runs of
/// this one included).
fn restore_usage(state: &State, kept: &[(String, String, pusher_hub::UsageReport)]) {
    let apps = state.apps.current();
    for (node, app, report) in kept {
        let Some((name, run)) = node.rsplit_once('#') else {
            continue;
        };
        let (Some(app), Ok(run)) = (apps.by_id(app), u64::from_str_radix(run, 16)) else {
            continue;
        };
        app.usage.merge(pusher_hub::NodeId::new(name, run), report);
    }
}
