//! One node of a cluster: moves [`Wire`] messages between the app hubs,
//! the sans-IO [`ClusterNode`] and the engine (Redis pub/sub or NATS).
//! Everything the cluster decides lives in pusher-hub; this module only
//! connects, reconnects, bounds every wait, and counts what is lost.
//!
//! Three tasks: the engine's receiver (in `redis.rs` / `nats.rs`) turns the
//! connection into [`BusEvent`]s; the driver feeds them and the time to the
//! node; the sender drains the bounded outgoing queue (the hubs' numbered
//! messages and the node's heartbeats) onto the bus, several messages per
//! payload when they queue up. While the bus is down the node serves its
//! own connections, nothing is sent (counted as dropped, logged once), and
//! nobody is declared dead; when it is back, snapshots repair the rest.

mod nats;
mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pusher_hub::{AppSink, ClusterNode, Hub, Millis, NodeId, NodeOutcome, UsageReport, Wire};
use tokio::sync::{mpsc, watch};

use crate::config::ClusterConfig;
use crate::endpoint::Alive;
use crate::metrics::{AppMetrics, Metrics};
use crate::usage::AppUsage;

/// Messages waiting for the bus before new ones are dropped.
const QUEUE: usize = 65_536;
/// Messages per bus payload at most.
const BATCH: usize = 256;
/// Bytes per bus payload, about (NATS refuses more than 1 MB by default;
/// snapshots come in parts of about 192 KB).
const PAYLOAD_BYTES: usize = 256 * 1024;
/// Bus payloads waiting for the driver.
const EVENTS: usize = 64;
/// How long one publish or one connection attempt may take.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a node tells the others its usage figures (README: usage
/// propagation delay).
pub(crate) const USAGE_EVERY: Duration = Duration::from_secs(1);
/// Every how many reports a node also relays the last figures of nodes
/// gone (for nodes that joined after they left).
const RELAY_EVERY: u64 = 10;
/// Apps per usage message at most (about 150 bytes each: a message stays
/// far below the engines' size limits).
const USAGE_APPS_PER_MESSAGE: usize = 512;

/// What the engine's receiver reports.
#[derive(Debug)]
pub(crate) enum BusEvent {
    /// Connected (or reconnected) and subscribed.
    Up,
    /// The connection was lost; the receiver reconnects with backoff.
    Down(String),
    /// A payload from the bus.
    Message(Vec<u8>),
    /// The engine's client dropped messages (this node read too slowly).
    Lost(u64),
}

/// The engine behind the cluster: publish one payload; the receiver task
/// started by `connect` reports the rest as [`BusEvent`]s.
pub(crate) trait Bus: Send + Sync + 'static {
    /// Publishes one payload (the caller bounds it in time).
    fn publish(
        &self,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Redis or NATS, picked by the URL's scheme.
enum Engine {
    Redis(Box<redis::RedisBus>),
    Nats(nats::NatsBus),
}

impl Engine {
    async fn connect(c: &ClusterConfig, events: mpsc::Sender<BusEvent>) -> Result<Self, String> {
        if c.url.starts_with("nats://") || c.url.starts_with("tls://") {
            Ok(Self::Nats(
                nats::NatsBus::connect(c, events, ENGINE_TIMEOUT).await?,
            ))
        } else {
            Ok(Self::Redis(Box::new(
                redis::RedisBus::connect(c, events, ENGINE_TIMEOUT).await?,
            )))
        }
    }

    async fn publish(&self, payload: Vec<u8>) -> Result<(), String> {
        let sent = match self {
            Self::Redis(b) => tokio::time::timeout(ENGINE_TIMEOUT, b.publish(payload)).await,
            Self::Nats(b) => tokio::time::timeout(ENGINE_TIMEOUT, b.publish(payload)).await,
        };
        sent.map_err(|_| format!("no answer within {ENGINE_TIMEOUT:?}"))?
    }
}

/// The cluster as `/up` and the logs describe it.
#[derive(Debug)]
pub struct ClusterStatus {
    url: String,
    me: NodeId,
    up: AtomicBool,
    synced: AtomicBool,
    nodes: AtomicUsize,
    leader: Mutex<Option<NodeId>>,
    down_since: Mutex<Option<Instant>>,
    /// Messages dropped because the outgoing queue was full.
    queue_full: AtomicU64,
}

impl ClusterStatus {
    /// One line for `GET /up`.
    pub fn describe(&self) -> String {
        let leader = self
            .leader
            .lock()
            .as_ref()
            .map_or_else(|| self.me.to_string(), ToString::to_string);
        if self.up.load(Ordering::Relaxed) {
            format!(
                "cluster: {} connected, node {}, {} nodes, leader {leader}",
                self.url,
                self.me,
                self.nodes.load(Ordering::Relaxed)
            )
        } else {
            let since = self.down_since.lock().map_or(0, |t| t.elapsed().as_secs());
            format!(
                "cluster: {} UNREACHABLE for {since}s, node {} serving its own connections only",
                self.url, self.me
            )
        }
    }

    /// Whether the bus is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// This node's identity and outgoing queue, made before the hubs (which
/// send into the queue).
pub(crate) struct Prepared {
    pub(crate) me: NodeId,
    tx: mpsc::Sender<Wire>,
    rx: mpsc::Receiver<Wire>,
    status: Arc<ClusterStatus>,
}

impl Prepared {
    pub(crate) fn new(c: &ClusterConfig) -> Self {
        let incarnation = random_u64();
        let name = c
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{:08x}", incarnation as u32));
        let me = NodeId::new(&name, incarnation);
        let (tx, rx) = mpsc::channel(QUEUE);
        let status = Arc::new(ClusterStatus {
            url: c.redacted_url(),
            me: me.clone(),
            up: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            nodes: AtomicUsize::new(1),
            leader: Mutex::new(None),
            down_since: Mutex::new(None),
            queue_full: AtomicU64::new(0),
        });
        Self { me, tx, rx, status }
    }

    /// What makes the sinks of apps' hubs, now and later.
    pub(crate) fn sinks(&self) -> Sinks {
        Sinks {
            me: self.me.clone(),
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }
}

/// Makes the sink each app's hub sends its numbered messages into.
#[derive(Debug, Clone)]
pub(crate) struct Sinks {
    pub(crate) me: NodeId,
    tx: mpsc::Sender<Wire>,
    status: Arc<ClusterStatus>,
}

/// An app the node starts or stops hosting while it runs.
#[derive(Debug)]
pub(crate) enum AppChange {
    /// A new app (or a deleted one created again).
    Add {
        id: String,
        hub: Arc<Hub>,
        metrics: AppMetrics,
        usage: Arc<AppUsage>,
    },
    /// A deleted app.
    Remove(String),
}

/// App changes waiting for the node's driver.
pub(crate) const APP_CHANGES: usize = 4096;

impl Sinks {
    /// The sink an app's hub sends its numbered messages into.
    pub(crate) fn sink(&self, app: &str) -> Arc<dyn pusher_hub::ClusterSink> {
        let (tx, status) = (self.tx.clone(), self.status.clone());
        Arc::new(AppSink::new(self.me.clone(), app, move |w| {
            if tx.try_send(w).is_err() {
                // The others see the gap and ask for a snapshot.
                let n = status.queue_full.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "cluster queue full: messages dropped");
                }
            }
        }))
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A running cluster node.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// For `/up` and tests.
    pub status: Arc<ClusterStatus>,
}

/// The hub clock of the server (milliseconds since `origin`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) origin: Instant,
}

impl Clock {
    pub(crate) fn now(self) -> Millis {
        Millis::from(self.origin.elapsed())
    }

    /// The instant of a hub-clock time (a far one is capped: a timer
    /// nobody needs is a sleep of years, not an overflow).
    pub(crate) fn instant(self, t: Millis) -> tokio::time::Instant {
        let ms = t.as_millis().min(u64::MAX / 4);
        tokio::time::Instant::from_std(self.origin + Duration::from_millis(ms))
    }
}

/// Connects to the engine (refusing to start when it cannot be reached),
/// starts the tasks, and waits until this node knows the cluster's state
/// (or `node_timeout_ms` passed).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    c: &ClusterConfig,
    prepared: Prepared,
    hubs: Vec<(String, Arc<Hub>, AppMetrics, Arc<AppUsage>)>,
    changes: mpsc::Receiver<AppChange>,
    metrics: Arc<Metrics>,
    clock: Clock,
    closing: watch::Receiver<bool>,
    alive: Alive,
) -> Result<Cluster, String> {
    let Prepared { me, tx, rx, status } = prepared;
    // Bounded: a node that cannot keep up stops reading the bus, and the
    // engine's own limits (and our counters) take it from there.
    let (events_tx, events) = mpsc::channel(EVENTS);
    let engine = Arc::new(Engine::connect(c, events_tx).await.map_err(|e| {
        format!(
            "cannot reach the cluster engine at {}: {e}",
            c.redacted_url()
        )
    })?);
    let mut node = ClusterNode::new(
        me.clone(),
        Duration::from_millis(c.heartbeat_ms),
        Duration::from_millis(c.node_timeout_ms),
    );
    let mut app_metrics = std::collections::HashMap::new();
    let mut usage = BTreeMap::new();
    for (app, hub, m, u) in hubs {
        node.add_app(&app, hub, clock.now());
        usage.insert(app.clone(), u);
        app_metrics.insert(app, m);
    }
    tracing::info!(node = %me, url = %c.redacted_url(), "joining the cluster");
    tokio::spawn(send_loop(
        engine.clone(),
        rx,
        status.clone(),
        metrics.clone(),
    ));
    let (observed, observed_rx) = mpsc::channel(OBSERVED);
    let driver = Driver {
        node,
        engine,
        status: status.clone(),
        metrics,
        clock,
        out: tx,
        app_metrics,
        usage,
        reports: 0,
        watched: Default::default(),
        observed,
    };
    tokio::spawn(driver.run(events, changes, observed_rx, closing, alive));
    // Answer for the cluster only once its state is known.
    let deadline = Instant::now() + Duration::from_millis(c.node_timeout_ms);
    while !status.synced.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !status.synced.load(Ordering::Relaxed) {
        tracing::warn!("cluster state not complete after node_timeout_ms; serving anyway");
    }
    Ok(Cluster { status })
}

/// Owns the node: bus events and time in, messages out.
struct Driver {
    node: ClusterNode,
    engine: Arc<Engine>,
    status: Arc<ClusterStatus>,
    metrics: Arc<Metrics>,
    clock: Clock,
    out: mpsc::Sender<Wire>,
    /// Frames delivered here for other nodes' events count as the app's.
    app_metrics: std::collections::HashMap<String, AppMetrics>,
    /// Each app's usage: reported to the others, and their reports merged.
    usage: BTreeMap<String, Arc<AppUsage>>,
    /// Usage reports sent.
    reports: u64,
    /// The debug console: apps a page on another node watches, until when.
    watched: std::collections::HashMap<String, Instant>,
    /// Where this node's taps put the events those pages want.
    observed: mpsc::Sender<(String, Arc<str>)>,
}

/// Console events waiting to be shared over the bus.
const OBSERVED: usize = 4096;
/// How long another node's console watch lasts without being renewed.
const WATCH_FOR: Duration = Duration::from_secs(3);

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<BusEvent>,
        mut changes: mpsc::Receiver<AppChange>,
        mut observed: mpsc::Receiver<(String, Arc<str>)>,
        mut closing: watch::Receiver<bool>,
        alive: Alive,
    ) {
        let mut report = tokio::time::interval(USAGE_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.clock.instant(self.node.poll_timeout());
            tokio::select! {
                _ = report.tick() => {
                    self.report_usage();
                    self.console_tick();
                }
                Some(first) = observed.recv() => self.share_observed(first, &mut observed),
                Some(change) = changes.recv() => self.change(change),
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev).await,
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let outcome = self.node.handle_timeout(self.clock.now());
                    self.account(outcome);
                }
                _ = crate::endpoint::stopped(&mut closing) => break,
            }
            while let Some(w) = self.node.poll_transmit() {
                self.send(w);
            }
            let now = self.clock.now();
            self.status
                .synced
                .store(self.node.is_synced(now), Ordering::Relaxed);
            self.status.nodes.store(
                self.node.membership().others().count() + 1,
                Ordering::Relaxed,
            );
            self.metrics
                .cluster_nodes
                .set(self.status.nodes.load(Ordering::Relaxed) as i64);
        }
        // Leaving: tell the others now rather than after the timeout.
        if self.status.is_up() {
            // With its last usage figures, which the others keep.
            let mut last = self.usage_reports();
            last.push(self.node.goodbye());
            let bye = Wire::encode_batch(&last);
            if let Err(e) = self.engine.publish(bye).await {
                tracing::debug!(error = %e, "goodbye not sent");
            }
        }
        drop(alive);
    }

    async fn event(&mut self, ev: BusEvent) {
        let now = self.clock.now();
        match ev {
            BusEvent::Up => {
                let down = self.status.down_since.lock().take();
                self.status.up.store(true, Ordering::Relaxed);
                self.metrics.cluster_up.set(1);
                match down {
                    Some(t) => tracing::info!(
                        after_secs = t.elapsed().as_secs(),
                        "cluster bus reconnected; resynchronising"
                    ),
                    None => tracing::info!("cluster bus connected"),
                }
                self.node.bus_up(now);
            }
            BusEvent::Down(reason) => {
                if self.status.up.swap(false, Ordering::Relaxed) {
                    *self.status.down_since.lock() = Some(Instant::now());
                    self.metrics.cluster_up.set(0);
                    tracing::warn!(%reason, "cluster bus lost; serving local connections, reconnecting");
                }
                self.node.bus_down();
            }
            BusEvent::Lost(n) => {
                self.metrics.cluster_dropped("slow_reader", n);
                tracing::warn!(
                    messages = n,
                    "cluster messages lost: this node reads the bus too slowly"
                );
            }
            BusEvent::Message(bytes) => match Wire::decode_batch_lenient(&bytes) {
                Ok((batch, skipped)) => {
                    if skipped > 0 {
                        self.metrics.cluster_dropped("unknown_message", skipped);
                        tracing::debug!(skipped, "cluster messages of a newer version skipped");
                    }
                    self.metrics.cluster_messages_in.inc_by(batch.len() as u64);
                    for w in batch {
                        if let Wire::Usage { from, of, apps } = &w {
                            self.merge_usage(of.as_ref().unwrap_or(from), apps);
                        }
                        self.console_message(&w);
                        let app = match &w {
                            Wire::App { app, .. } => Some(app.clone()),
                            _ => None,
                        };
                        let outcome = self.node.handle(w, now);
                        let fanned_out = outcome.delivery.delivered + outcome.delivery.dropped;
                        if let Some(m) = app.and_then(|a| self.app_metrics.get(&a)) {
                            m.deliveries.inc_by(outcome.delivery.delivered);
                            if outcome.delivery.dropped > 0 {
                                m.dropped("outbox_full", outcome.delivery.dropped);
                            }
                        }
                        self.account(outcome);
                        // After a fan-out, the connections' writers run before
                        // the next one, as they do between HTTP publishes: a
                        // burst from the bus paces itself instead of filling
                        // every outbox at once.
                        if fanned_out > 1 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                Err(e) => {
                    self.metrics.cluster_dropped("undecodable", 1);
                    tracing::debug!(error = %e, "cluster message not understood");
                }
            },
        }
    }

    fn change(&mut self, change: AppChange) {
        match change {
            AppChange::Add {
                id,
                hub,
                metrics,
                usage,
            } => {
                self.node.add_app(&id, hub, self.clock.now());
                self.usage.insert(id.clone(), usage);
                self.app_metrics.insert(id, metrics);
            }
            AppChange::Remove(id) => {
                let _ = self.node.remove_app(&id);
                self.usage.remove(&id);
                self.app_metrics.remove(&id);
            }
        }
    }

    /// Once a second, for the debug console: asks the others to share the
    /// events of the apps a page here watches; stops sharing the apps no
    /// page elsewhere watches any more; counts what could not be shared.
    fn console_tick(&mut self) {
        let here: Vec<String> = self
            .app_metrics
            .iter()
            .filter(|(_, m)| m.console.watched_here())
            .map(|(id, _)| id.clone())
            .collect();
        if !here.is_empty() && self.status.is_up() {
            self.send(Wire::Watch {
                from: self.node.me().clone(),
                apps: here,
            });
        }
        let now = Instant::now();
        let app_metrics = &self.app_metrics;
        self.watched.retain(|app, until| {
            let on = *until > now;
            if !on && let Some(m) = app_metrics.get(app) {
                m.console.unshare();
            }
            on
        });
        for m in self.app_metrics.values() {
            let n = m.console.take_unshared();
            if n > 0 {
                m.dropped("console_unshared", n);
            }
        }
    }

    /// A console message of another node: a watch to honour, or events to
    /// show here.
    fn console_message(&mut self, w: &Wire) {
        match w {
            Wire::Watch { from, apps } if from != self.node.me() => {
                for app in apps {
                    let Some(m) = self.app_metrics.get(app) else {
                        continue;
                    };
                    let queue = self.observed.clone();
                    m.console.share(|| (app.clone(), queue));
                    self.watched.insert(app.clone(), Instant::now() + WATCH_FOR);
                }
            }
            Wire::Observed { from, app, lines } if from != self.node.me() => {
                if let Some(m) = self.app_metrics.get(app) {
                    let node = from.to_string();
                    for line in lines {
                        m.console.inject(&node, line);
                    }
                }
            }
            _ => {}
        }
    }

    /// Sends the events queued for other nodes' consoles, a message per
    /// app for what waits now (at most a few hundred at once).
    fn share_observed(
        &mut self,
        first: (String, Arc<str>),
        queue: &mut mpsc::Receiver<(String, Arc<str>)>,
    ) {
        let mut by_app: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut next = Some(first);
        let mut n = 0;
        while let Some((app, line)) = next.take() {
            by_app.entry(app).or_default().push(line.to_string());
            n += 1;
            if n < 256 {
                next = queue.try_recv().ok();
            }
        }
        if !self.status.is_up() {
            return;
        }
        let me = self.node.me().clone();
        for (app, lines) in by_app {
            self.send(Wire::Observed {
                from: me.clone(),
                app,
                lines,
            });
        }
    }

    /// Tells the others what this node counted (while the bus is up: a
    /// later report supersedes a lost one), and now and then what it kept
    /// of nodes gone.
    fn report_usage(&mut self) {
        if !self.status.is_up() {
            return;
        }
        self.reports += 1;
        let mut out = self.usage_reports();
        if self.reports.is_multiple_of(RELAY_EVERY) {
            out.extend(self.relayed_usage());
        }
        for w in out {
            self.send(w);
        }
    }

    /// This node's figures of the apps that counted anything in the
    /// current periods.
    fn usage_reports(&self) -> Vec<Wire> {
        let now = crate::usage::now_unix();
        let apps = self
            .usage
            .iter()
            .filter(|(_, u)| !u.usage().is_idle(now))
            .map(|(id, u)| (id.clone(), u.snapshot()))
            .collect::<Vec<_>>();
        self.usage_messages(None, &apps)
    }

    /// The last figures of nodes no longer in the cluster, as kept here.
    fn relayed_usage(&self) -> Vec<Wire> {
        let now = crate::usage::now_unix();
        let live = self
            .node
            .membership()
            .others()
            .collect::<std::collections::BTreeSet<_>>();
        let mut gone: BTreeMap<NodeId, Vec<(String, UsageReport)>> = BTreeMap::new();
        for (id, u) in &self.usage {
            for (node, report) in u.kept() {
                if !live.contains(&node)
                    && node != *self.node.me()
                    && report.current(now) != UsageReport::default().current(now)
                {
                    gone.entry(node).or_default().push((id.clone(), report));
                }
            }
        }
        gone.into_iter()
            .flat_map(|(node, apps)| self.usage_messages(Some(node), &apps))
            .collect()
    }

    fn usage_messages(&self, of: Option<NodeId>, apps: &[(String, UsageReport)]) -> Vec<Wire> {
        apps.chunks(USAGE_APPS_PER_MESSAGE)
            .map(|chunk| Wire::Usage {
                from: self.node.me().clone(),
                of: of.clone(),
                apps: chunk.iter().cloned().collect(),
            })
            .collect()
    }

    /// Merges figures of `whose` (never this node's own: it counts them).
    fn merge_usage(&self, whose: &NodeId, apps: &BTreeMap<String, UsageReport>) {
        if whose == self.node.me() {
            return;
        }
        for (id, report) in apps {
            if let Some(u) = self.usage.get(id) {
                u.merge(whose.clone(), report);
            }
        }
    }

    fn send(&self, w: Wire) {
        if self.out.try_send(w).is_err() {
            self.status.queue_full.fetch_add(1, Ordering::Relaxed);
            self.metrics.cluster_dropped("queue_full", 1);
        }
    }

    fn account(&self, o: NodeOutcome) {
        for n in &o.joined {
            tracing::info!(node = %n, "cluster node joined");
        }
        for n in &o.dead {
            self.metrics.cluster_node_deaths.inc();
            tracing::warn!(node = %n, "cluster node gone; its connections are removed");
        }
        if let Some(leader) = &o.leader {
            tracing::info!(%leader, "cluster leader (webhook sender) changed");
        }
        if let Some(leader) = o.leader {
            *self.status.leader.lock() = Some(leader);
        }
        self.metrics.cluster_resyncs.inc_by(o.resyncs);
        if o.unknown_app > 0 {
            self.metrics.cluster_dropped("unknown_app", o.unknown_app);
        }
        let _ = o.delivery;
    }
}

/// Drains the outgoing queue onto the bus, in order, several messages per
/// payload when they queue up (a JSON array of at most `BATCH` messages and
/// about `PAYLOAD_BYTES`); while the bus is down they are dropped (counted;
/// the others resynchronise from snapshots when it is back).
async fn send_loop(
    engine: Arc<Engine>,
    mut rx: mpsc::Receiver<Wire>,
    status: Arc<ClusterStatus>,
    metrics: Arc<Metrics>,
) {
    let mut next: Option<Wire> = None;
    let mut failing = false;
    loop {
        let first = match next.take() {
            Some(w) => w,
            None => match rx.recv().await {
                Some(w) => w,
                None => return,
            },
        };
        let mut payload = Vec::with_capacity(1024);
        payload.push(b'[');
        payload.extend_from_slice(&first.encode());
        let mut n = 1u64;
        while (n as usize) < BATCH && payload.len() < PAYLOAD_BYTES {
            let Ok(w) = rx.try_recv() else { break };
            let bytes = w.encode();
            if payload.len() + bytes.len() > PAYLOAD_BYTES {
                next = Some(w);
                break;
            }
            payload.push(b',');
            payload.extend_from_slice(&bytes);
            n += 1;
        }
        payload.push(b']');
        let result = if status.is_up() {
            engine.publish(payload).await
        } else {
            Err("the bus is down".to_owned())
        };
        match result {
            Ok(()) => {
                metrics.cluster_messages_out.inc_by(n);
                failing = false;
            }
            Err(reason) => {
                metrics.cluster_dropped("publish_failed", n);
                if !failing {
                    failing = true;
                    tracing::warn!(%reason, "cluster messages not sent; dropping until the bus is back (vask_cluster_dropped_total)");
                }
            }
        }
    }
}
