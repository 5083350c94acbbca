//! Prometheus metrics. Per-app handles are resolved once at start, so the
//! hot paths touch an atomic, never a label map.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct App {
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppReason {
    app: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

/// Every metric family.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<App, Gauge>,
    connections_total: Family<App, Counter>,
    messages_in: Family<App, Counter>,
    bytes_in: Family<App, Counter>,
    frames_out: Family<App, Counter>,
    bytes_out: Family<App, Counter>,
    publishes: Family<App, Counter>,
    deliveries: Family<App, Counter>,
    broadcasts: Family<App, Counter>,
    broadcast_deliveries: Family<App, Counter>,
    api_requests: Family<App, Counter>,
    quota_refused: Family<AppReason, Counter>,
    dropped: Family<AppReason, Counter>,
    closed: Family<AppReason, Counter>,
    errors: Family<AppReason, Counter>,
    http_requests: Family<Status, Counter>,
    refused: Family<Reason, Counter>,
    cluster_dropped_family: Family<Reason, Counter>,
    /// 1 while the cluster bus is connected.
    pub cluster_up: Gauge,
    /// Live nodes, this one included.
    pub cluster_nodes: Gauge,
    /// Cluster messages sent.
    pub cluster_messages_out: Counter,
    /// Cluster messages received.
    pub cluster_messages_in: Counter,
    /// Snapshots asked of other nodes (after a gap or a join).
    pub cluster_resyncs: Counter,
    /// Nodes removed after silence or goodbye.
    pub cluster_node_deaths: Counter,
    webhooks_sent: Family<App, Counter>,
    webhook_attempts_failed: Family<App, Counter>,
    /// 1 while the apps store (PostgreSQL) answers; 0 while it is lost.
    pub apps_store_up: Gauge,
    apps_store_errors: Family<Reason, Counter>,
    /// Apps reloads that changed something (SIGHUP, admin API, store).
    pub apps_reloads: Counter,
}

/// One app's counters.
#[derive(Debug, Clone)]
pub struct AppMetrics {
    app: String,
    metrics: std::sync::Arc<Metrics>,
    /// Open connections.
    pub connections: Gauge,
    /// Connections accepted, ever.
    pub connections_total: Counter,
    /// WebSocket messages received.
    pub messages_in: Counter,
    /// Bytes of WebSocket messages received.
    pub bytes_in: Counter,
    /// Frames written to connections.
    pub frames_out: Counter,
    /// Bytes of frames written.
    pub bytes_out: Counter,
    /// Events published through the HTTP API (per channel).
    pub publishes: Counter,
    /// Frames queued to connections by publishes and client events.
    pub deliveries: Counter,
    /// Broadcasts, as usage counts them (events to one channel each, from
    /// the API or clients, on this node).
    pub broadcasts: Counter,
    /// Copies fan-out sent for broadcasts (here and from other nodes), as
    /// usage counts them.
    pub broadcast_deliveries: Counter,
    /// Signed HTTP API requests admitted, as usage counts them.
    pub api_requests: Counter,
    /// Webhook requests delivered.
    pub webhooks_sent: Counter,
    /// Webhook attempts that failed.
    pub webhook_attempts_failed: Counter,
    /// The app's debug console feed (idle while no console page watches).
    pub(crate) console: std::sync::Arc<crate::console::Tap>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vask");
        let m = Self {
            connections: Family::default(),
            connections_total: Family::default(),
            messages_in: Family::default(),
            bytes_in: Family::default(),
            frames_out: Family::default(),
            bytes_out: Family::default(),
            publishes: Family::default(),
            deliveries: Family::default(),
            broadcasts: Family::default(),
            broadcast_deliveries: Family::default(),
            api_requests: Family::default(),
            quota_refused: Family::default(),
            dropped: Family::default(),
            closed: Family::default(),
            errors: Family::default(),
            http_requests: Family::default(),
            refused: Family::default(),
            cluster_dropped_family: Family::default(),
            cluster_up: Gauge::default(),
            cluster_nodes: Gauge::default(),
            cluster_messages_out: Counter::default(),
            cluster_messages_in: Counter::default(),
            cluster_resyncs: Counter::default(),
            cluster_node_deaths: Counter::default(),
            webhooks_sent: Family::default(),
            webhook_attempts_failed: Family::default(),
            apps_store_up: Gauge::default(),
            apps_store_errors: Family::default(),
            apps_reloads: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "WebSocket connections accepted",
            m.connections_total.clone(),
        );
        registry.register(
            "messages_in",
            "WebSocket messages received",
            m.messages_in.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes of WebSocket messages received",
            m.bytes_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames written to connections",
            m.frames_out.clone(),
        );
        registry.register(
            "bytes_out",
            "Bytes of frames written to connections",
            m.bytes_out.clone(),
        );
        registry.register(
            "publishes",
            "Events published through the HTTP API, per channel",
            m.publishes.clone(),
        );
        registry.register(
            "deliveries",
            "Frames queued to connections by publishes and client events",
            m.deliveries.clone(),
        );
        registry.register(
            "broadcasts",
            "Broadcasts (an event to one channel, from the API or a client), as usage counts them",
            m.broadcasts.clone(),
        );
        registry.register(
            "broadcast_deliveries",
            "Copies sent to connections by broadcasts, as usage counts them",
            m.broadcast_deliveries.clone(),
        );
        registry.register(
            "api_requests",
            "Signed HTTP API requests admitted, as usage counts them",
            m.api_requests.clone(),
        );
        registry.register(
            "quota_refused",
            "Broadcasts and API requests refused by a quota or rate limit, by app and quota",
            m.quota_refused.clone(),
        );
        registry.register(
            "dropped",
            "Frames or events dropped, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "closed",
            "Connections closed by the server, by close code",
            m.closed.clone(),
        );
        registry.register(
            "errors",
            "Protocol errors answered, by reason",
            m.errors.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP API requests, by status",
            m.http_requests.clone(),
        );
        registry.register(
            "refused",
            "Connections and handshakes refused before an app was known, by reason",
            m.refused.clone(),
        );
        registry.register(
            "cluster_up",
            "1 while the cluster bus is connected",
            m.cluster_up.clone(),
        );
        registry.register(
            "cluster_nodes",
            "Live cluster nodes, this one included",
            m.cluster_nodes.clone(),
        );
        registry.register(
            "cluster_messages_out",
            "Cluster messages sent",
            m.cluster_messages_out.clone(),
        );
        registry.register(
            "cluster_messages_in",
            "Cluster messages received",
            m.cluster_messages_in.clone(),
        );
        registry.register(
            "cluster_dropped",
            "Cluster messages not sent or not understood, by reason",
            m.cluster_dropped_family.clone(),
        );
        registry.register(
            "cluster_resyncs",
            "Snapshots asked of other nodes",
            m.cluster_resyncs.clone(),
        );
        registry.register(
            "cluster_node_deaths",
            "Cluster nodes removed after silence or goodbye",
            m.cluster_node_deaths.clone(),
        );
        registry.register(
            "webhooks_sent",
            "Webhook requests delivered (2xx)",
            m.webhooks_sent.clone(),
        );
        registry.register(
            "webhook_attempts_failed",
            "Webhook delivery attempts that failed (non-2xx, timeout, connection error)",
            m.webhook_attempts_failed.clone(),
        );
        registry.register(
            "apps_store_up",
            "1 while the apps store (PostgreSQL) answers",
            m.apps_store_up.clone(),
        );
        registry.register(
            "apps_store_errors",
            "Apps store operations that failed, by operation",
            m.apps_store_errors.clone(),
        );
        registry.register(
            "apps_reloads",
            "Reloads of the apps that changed something",
            m.apps_reloads.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The handles of one app.
    pub fn app(self: &std::sync::Arc<Self>, app: &str) -> AppMetrics {
        let l = App {
            app: app.to_owned(),
        };
        AppMetrics {
            app: app.to_owned(),
            metrics: self.clone(),
            connections: self.connections.get_or_create(&l).clone(),
            connections_total: self.connections_total.get_or_create(&l).clone(),
            messages_in: self.messages_in.get_or_create(&l).clone(),
            bytes_in: self.bytes_in.get_or_create(&l).clone(),
            frames_out: self.frames_out.get_or_create(&l).clone(),
            bytes_out: self.bytes_out.get_or_create(&l).clone(),
            publishes: self.publishes.get_or_create(&l).clone(),
            deliveries: self.deliveries.get_or_create(&l).clone(),
            broadcasts: self.broadcasts.get_or_create(&l).clone(),
            broadcast_deliveries: self.broadcast_deliveries.get_or_create(&l).clone(),
            api_requests: self.api_requests.get_or_create(&l).clone(),
            webhooks_sent: self.webhooks_sent.get_or_create(&l).clone(),
            webhook_attempts_failed: self.webhook_attempts_failed.get_or_create(&l).clone(),
            console: Default::default(),
        }
    }

    /// Counts one HTTP API answer.
    pub fn http(&self, status: u16) {
        self.http_requests
            .get_or_create(&Status {
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts a connection or handshake refused before an app was known.
    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a failed apps store operation (`list`, `usage_save`, ...).
    pub fn apps_store_error(&self, op: &str) {
        self.apps_store_errors
            .get_or_create(&Reason {
                reason: op.to_owned(),
            })
            .inc();
    }

    /// Counts cluster messages dropped, by reason.
    pub fn cluster_dropped(&self, reason: &str, n: u64) {
        self.cluster_dropped_family
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl AppMetrics {
    /// Counts `n` dropped frames or events, with the reason.
    pub fn dropped(&self, reason: &str, n: u64) {
        let l = AppReason {
            app: self.app.clone(),
            reason: reason.to_owned(),
        };
        self.metrics.dropped.get_or_create(&l).inc_by(n);
    }

    /// Counts a connection the server closed, by code.
    pub fn closed(&self, code: u16) {
        let l = AppReason {
            app: self.app.clone(),
            reason: code.to_string(),
        };
        self.metrics.closed.get_or_create(&l).inc();
    }

    /// Counts a refusal by a quota or rate limit (the quota's name).
    pub fn quota_refused(&self, reason: &str) {
        let l = AppReason {
            app: self.app.clone(),
            reason: reason.to_owned(),
        };
        self.metrics.quota_refused.get_or_create(&l).inc();
    }

    /// Counts a protocol error answered.
    pub fn error(&self, reason: &str) {
        let l = AppReason {
            app: self.app.clone(),
            reason: reason.to_owned(),
        };
        self.metrics.errors.get_or_create(&l).inc();
    }
}
