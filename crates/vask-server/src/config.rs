//! Configuration: a TOML file, then `VASK_*` environment variables, then
//! command-line flags (later wins), validated once at start.

use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and process-wide settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// The apps this server hosts. Empty: the built-in development app.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// Run as one node of a cluster (absent: one node alone).
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// The admin API (`/admin/...`): off unless a token is set.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Keep the apps in PostgreSQL instead of this file's `[[apps]]`.
    #[serde(default)]
    pub apps_store: Option<AppsStoreConfig>,
    /// The file this was read from (SIGHUP reads it again).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// The admin API's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token of `/admin/...` (`Authorization: Bearer TOKEN`);
    /// unset: no admin API (404).
    #[serde(default)]
    pub token: Option<pusher_auth::Secret>,
}

/// Where the apps live when not in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsStoreConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
}

impl AppsStoreConfig {
    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

/// One node of a cluster over Redis pub/sub or NATS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://`, `rediss://` or `nats://` (`tls://` for NATS over TLS);
    /// a password may be in the URL.
    pub url: String,
    /// This node's name (default: random at start).
    #[serde(default)]
    pub node_id: Option<String>,
    /// Namespace of every Redis channel or NATS subject, so that several
    /// deployments can share one engine.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How often a node says it is alive, in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// A node silent this long (milliseconds) is dead: its connections are
    /// removed everywhere.
    #[serde(default = "default_node_timeout_ms")]
    pub node_timeout_ms: u64,
}

fn default_prefix() -> String {
    "vask".into()
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_node_timeout_ms() -> u64 {
    5000
}

impl ClusterConfig {
    /// A cluster on `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_id: None,
            prefix: default_prefix(),
            heartbeat_ms: default_heartbeat_ms(),
            node_timeout_ms: default_node_timeout_ms(),
        }
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

/// Listener and process-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// Port for WebSocket and HTTP API (0 picks a free one).
    pub port: u16,
    /// Seconds of silence before the server pings a connection.
    pub activity_timeout_secs: u32,
    /// Seconds to wait for an answer to the server's ping before 4201.
    pub pong_timeout_secs: u64,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Frames queued for one connection before it is cut off with 4100.
    pub outbox_capacity: usize,
    /// Bytes queued for one connection before it is cut off with 4100 (a
    /// consumer of large messages that stopped reading).
    pub outbox_max_bytes: usize,
    /// Seconds one batch write may block before the connection is cut off
    /// with 4100 (a peer that stopped reading).
    pub write_timeout_secs: u64,
    /// Largest HTTP request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Seconds a signed request's body may take to arrive (408 above): a
    /// peer trickling a body cannot hold the connection and its buffer.
    pub body_timeout_secs: u64,
    /// HTTP connections (API calls, and WebSocket handshakes until they
    /// upgrade) open at once; above it new ones get 503 and are closed.
    pub max_http_connections: usize,
    /// Accepted clock skew of signed HTTP requests, in seconds.
    pub timestamp_window_secs: u64,
    /// Seconds to finish work after SIGTERM/SIGINT before exiting.
    pub shutdown_grace_secs: u64,
    /// Seconds the port stays open after SIGTERM/SIGINT (within the grace
    /// period): `/up` answers 503 so a load balancer moves traffic away,
    /// new WebSocket connections get 4200, API requests are still served.
    pub drain_secs: u64,
    /// How webhooks are batched, held and retried.
    pub webhooks: WebhookSettings,
    /// Serve `wss://` and `https://` on the same port with this certificate.
    pub tls: Option<TlsConfig>,
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// How webhooks are batched, held and retried (for every app).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// A batch is sent this many milliseconds after its first event...
    pub batch_ms: u64,
    /// ...or as soon as it holds this many events.
    pub batch_max: usize,
    /// `channel_vacated` and `member_removed` wait this long and are dropped
    /// (with the `channel_occupied`/`member_added` that cancels them) if the
    /// channel or member comes back meanwhile: no webhooks for a page reload.
    pub hold_ms: u64,
    /// One delivery attempt's timeout.
    pub timeout_ms: u64,
    /// The first retry's delay; each retry doubles it (with jitter).
    pub retry_initial_ms: u64,
    /// A batch is retried until this much time has passed, then dropped
    /// (counted and logged).
    pub retry_budget_ms: u64,
    /// Events waiting per app before new ones are dropped (counted, logged).
    pub queue_capacity: usize,
    /// Extra PEM CA certificates trusted for `https://` receivers (besides
    /// Mozilla's roots).
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            batch_ms: 250,
            batch_max: 20,
            hold_ms: 3000,
            timeout_ms: 4000,
            retry_initial_ms: 1000,
            retry_budget_ms: 5 * 60 * 1000,
            queue_capacity: 10_000,
            ca_file: None,
        }
    }
}

/// The webhook event names, for `event_types` filters.
pub const WEBHOOK_EVENT_TYPES: [&str; 7] = pusher_proto::webhook::WebhookEvent::NAMES;

/// One webhook receiver of an app.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (`http://`).
    pub url: String,
    /// Event names to send; empty sends all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only events whose channel name matches.
    #[serde(default)]
    pub filter: WebhookFilter,
    /// Extra request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A channel-name filter for a webhook.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    /// Only channels whose name starts with this.
    pub channel_name_starts_with: Option<String>,
    /// Only channels whose name ends with this.
    pub channel_name_ends_with: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6001,
            activity_timeout_secs: 120,
            pong_timeout_secs: 30,
            max_message_bytes: 64 * 1024,
            outbox_capacity: 1024,
            outbox_max_bytes: 2 * 1024 * 1024,
            write_timeout_secs: 10,
            max_body_bytes: 1024 * 1024,
            body_timeout_secs: 10,
            max_http_connections: 10_000,
            timestamp_window_secs: 600,
            shutdown_grace_secs: 10,
            drain_secs: 2,
            webhooks: WebhookSettings::default(),
            tls: None,
        }
    }
}

/// One app.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Numeric string (pusher-http-python refuses others).
    pub id: String,
    /// The public key clients connect with.
    pub key: String,
    /// The secret that signs auth and API requests (never printed).
    pub secret: pusher_auth::Secret,
    /// A disabled app refuses connections (4003) and API calls (403).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether clients may send `client-` events.
    #[serde(default)]
    pub client_events: bool,
    /// Whether subscribers get `pusher_internal:subscription_count`.
    #[serde(default)]
    pub subscription_count: bool,
    /// When set, connections must sign in (or join a private or presence
    /// channel) within this many seconds, or are closed with 4009.
    #[serde(default)]
    pub user_signin_timeout_secs: Option<u64>,
    /// Quotas and size limits.
    #[serde(default)]
    pub limits: AppLimits,
    /// Webhook receivers.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

fn yes() -> bool {
    true
}

/// Per-app quotas and limits (PROTOCOL.md Part A defaults).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppLimits {
    /// Most simultaneous connections (4004 above); unset is unlimited.
    pub max_connections: Option<usize>,
    /// Largest event `data`, in bytes (413 above).
    pub max_event_bytes: usize,
    /// Most distinct members of a presence channel.
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes.
    pub max_user_info_bytes: usize,
    /// Longest presence or sign-in user id.
    pub max_user_id_len: usize,
    /// Client events per second per connection (4301 above).
    pub client_events_per_sec: u32,
    /// Channels one trigger may name.
    pub max_channels_per_trigger: usize,
    /// Events one batch may hold.
    pub max_batch_events: usize,
    /// Longest channel name.
    pub max_channel_name_len: usize,
    /// Longest event name.
    pub max_event_name_len: usize,
    /// Seconds a cache channel keeps its last event.
    pub cache_ttl_secs: u64,
    /// Most user ids in a sign-in watchlist (4302 above; the first are used).
    pub max_watchlist: usize,
    /// Most broadcasts per UTC day (one event to one channel; HTTP 403 or
    /// a `pusher:error` above), counted over the whole cluster; unset is
    /// unlimited.
    pub max_broadcasts_per_day: Option<u64>,
    /// Most broadcasts per UTC calendar month, like the daily quota.
    pub max_broadcasts_per_month: Option<u64>,
    /// Most signed HTTP API requests per second on each node (HTTP 429 with
    /// `Retry-After` above); unset is unlimited.
    pub max_api_requests_per_sec: Option<u32>,
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_event_bytes: 64 * 1024,
            max_presence_members: 100,
            max_user_info_bytes: 2048,
            max_user_id_len: 128,
            client_events_per_sec: 10,
            max_channels_per_trigger: 100,
            max_batch_events: 10,
            max_channel_name_len: 200,
            max_event_name_len: 200,
            cache_ttl_secs: 30 * 60,
            max_watchlist: 100,
            max_broadcasts_per_day: None,
            max_broadcasts_per_month: None,
            max_api_requests_per_sec: None,
        }
    }
}

impl AppConfig {
    /// The built-in development app: id `1`, client events and subscription
    /// counts on.
    pub fn development() -> Self {
        Self {
            id: "1".into(),
            key: "vask-key".into(),
            secret: "vask-secret".into(),
            enabled: true,
            client_events: true,
            subscription_count: true,
            user_signin_timeout_secs: None,
            limits: AppLimits::default(),
            webhooks: Vec::new(),
        }
    }

    /// Whether this is the built-in development app, whose credentials are
    /// public (the only app whose secret the banner prints).
    pub fn is_development(&self) -> bool {
        let dev = Self::development();
        self.id == dev.id && self.key == dev.key && self.secret == dev.secret
    }
}

/// A configuration the server refuses to start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the field.
        message: String,
    },
    /// A field has a value the server cannot use.
    #[error("invalid configuration: {field}: {message}")]
    Invalid {
        /// The field, e.g. `apps[1].id`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Command-line flags; each can also come from its `VASK_*` variable.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "vask-server",
    version,
    about = "A Pusher Channels compatible realtime server"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "VASK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "VASK_HOST")]
    pub host: Option<String>,
    /// Port for WebSocket and HTTP API [default: 6001].
    #[arg(long, env = "VASK_PORT")]
    pub port: Option<u16>,
    /// Define the single app: its id (with --app-key and --app-secret).
    #[arg(long, env = "VASK_APP_ID", requires_all = ["app_key", "app_secret"])]
    pub app_id: Option<String>,
    /// The single app's key.
    #[arg(long, env = "VASK_APP_KEY", requires = "app_id")]
    pub app_key: Option<String>,
    /// The single app's secret.
    #[arg(long, env = "VASK_APP_SECRET", requires = "app_id")]
    pub app_secret: Option<String>,
    /// Seconds to finish work on shutdown.
    #[arg(long, env = "VASK_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds the port stays open, draining, after SIGTERM [default: 2].
    #[arg(long, env = "VASK_DRAIN_SECS")]
    pub drain_secs: Option<u64>,
    /// PEM certificate chain: serve wss:// and https:// (with --tls-key).
    #[arg(long, env = "VASK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "VASK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Join a cluster: redis://HOST:PORT, rediss://..., or nats://HOST:PORT.
    #[arg(long, env = "VASK_CLUSTER")]
    pub cluster: Option<String>,
    /// This node's name in the cluster [default: random].
    #[arg(long, env = "VASK_NODE_ID")]
    pub node_id: Option<String>,
    /// Keep the apps in PostgreSQL: postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long = "apps", env = "VASK_APPS", conflicts_with = "app_id")]
    pub apps_store: Option<String>,
    /// Serve the admin API (/admin/...) to requests bearing this token.
    #[arg(long, env = "VASK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().to_owned(),
        })
    }

    /// Builds the configuration from the file named by `cli` (if any), then
    /// the flags and environment variables `cli` carries, and validates it.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let mut config = Self::from_toml(&text, path)?;
                config.file = Some(path.clone());
                config
            }
            None => Self::default(),
        };
        if let Some(url) = &cli.apps_store {
            config.apps_store = Some(AppsStoreConfig { url: url.clone() });
        }
        if let Some(token) = &cli.admin_token {
            config.admin.token = Some(token.clone().into());
        }
        if let Some(url) = &cli.cluster {
            let c = config
                .cluster
                .get_or_insert_with(|| ClusterConfig::new(url.clone()));
            c.url = url.clone();
        }
        if let Some(node) = &cli.node_id
            && let Some(c) = &mut config.cluster
        {
            c.node_id = Some(node.clone());
        }
        if let Some(host) = &cli.host {
            config.server.host = host.clone();
        }
        if let Some(port) = cli.port {
            config.server.port = port;
        }
        if let Some(grace) = cli.shutdown_grace_secs {
            config.server.shutdown_grace_secs = grace;
        }
        if let Some(drain) = cli.drain_secs {
            config.server.drain_secs = drain;
        }
        if let (Some(cert_file), Some(key_file)) = (&cli.tls_cert, &cli.tls_key) {
            config.server.tls = Some(TlsConfig {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            });
        }
        if let (Some(id), Some(key), Some(secret)) = (&cli.app_id, &cli.app_key, &cli.app_secret) {
            config.apps = vec![AppConfig {
                id: id.clone(),
                key: key.clone(),
                secret: secret.clone().into(),
                ..AppConfig::development()
            }];
        }
        if config.apps.is_empty() && config.apps_store.is_none() {
            config.apps.push(AppConfig::development());
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the first problem is reported with its name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.host.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                "server.host",
                format!("{:?} is not an IP address", s.host),
            ));
        }
        for (name, value) in [
            (
                "server.activity_timeout_secs",
                s.activity_timeout_secs as u64,
            ),
            ("server.pong_timeout_secs", s.pong_timeout_secs),
            ("server.max_message_bytes", s.max_message_bytes as u64),
            ("server.outbox_capacity", s.outbox_capacity as u64),
            ("server.outbox_max_bytes", s.outbox_max_bytes as u64),
            ("server.write_timeout_secs", s.write_timeout_secs),
            ("server.webhooks.batch_max", s.webhooks.batch_max as u64),
            ("server.webhooks.timeout_ms", s.webhooks.timeout_ms),
            (
                "server.webhooks.retry_initial_ms",
                s.webhooks.retry_initial_ms,
            ),
            (
                "server.webhooks.queue_capacity",
                s.webhooks.queue_capacity as u64,
            ),
            ("server.max_body_bytes", s.max_body_bytes as u64),
            ("server.body_timeout_secs", s.body_timeout_secs),
            ("server.max_http_connections", s.max_http_connections as u64),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be greater than 0"));
            }
        }
        if let Some(tls) = &s.tls {
            crate::tls::acceptor(tls)?;
        }
        if let Some(ca) = &s.webhooks.ca_file {
            crate::tls::webhook_client_config(Some(ca))?;
        }
        if let Some(c) = &self.cluster {
            validate_cluster(c)?;
        }
        if let Some(token) = &self.admin.token
            && token.expose().chars().count() < 16
        {
            return Err(invalid(
                "admin.token",
                "must be at least 16 characters (it guards every app's secrets)",
            ));
        }
        if let Some(store) = &self.apps_store {
            if !store.url.starts_with("postgres://") && !store.url.starts_with("postgresql://") {
                return Err(invalid(
                    "apps_store.url",
                    format!(
                        "{:?} must start with postgres:// or postgresql://",
                        store.redacted_url()
                    ),
                ));
            }
            if !self.apps.is_empty() {
                return Err(invalid(
                    "apps",
                    "the apps are kept in apps_store: remove the [[apps]] tables (or --app-id)",
                ));
            }
        }
        validate_apps(&self.apps)
    }
}

/// Checks a whole list of apps (a configuration file's, or a store's), the
/// first problem reported with its field.
pub fn validate_apps(apps: &[AppConfig]) -> Result<(), ConfigError> {
    let mut ids = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for (i, app) in apps.iter().enumerate() {
        let f = |field: &str| format!("apps[{i}].{field}");
        if app.id.is_empty() || !app.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                f("id"),
                format!(
                    "{:?} must be a numeric string (pusher-http-python refuses others)",
                    app.id
                ),
            ));
        }
        if app.key.is_empty() || app.key.contains(['/', '?', '#', ' ']) {
            return Err(invalid(
                f("key"),
                "must be non-empty, without '/', '?', '#' or spaces",
            ));
        }
        if app.secret.is_empty() {
            return Err(invalid(f("secret"), "must not be empty"));
        }
        if !ids.insert(app.id.as_str()) {
            return Err(invalid(
                f("id"),
                format!("{:?} is used by another app", app.id),
            ));
        }
        if !keys.insert(app.key.as_str()) {
            return Err(invalid(f("key"), "is used by another app"));
        }
        for (j, w) in app.webhooks.iter().enumerate() {
            let wf = |field: &str| format!("apps[{i}].webhooks[{j}].{field}");
            let rest = w
                .url
                .strip_prefix("http://")
                .or_else(|| w.url.strip_prefix("https://"))
                .ok_or_else(|| {
                    invalid(
                        wf("url"),
                        format!("{:?} must start with http:// or https://", w.url),
                    )
                })?;
            if rest.is_empty() || w.url.parse::<hyper::Uri>().is_err() {
                return Err(invalid(
                    wf("url"),
                    format!("{:?} is not a valid URL", w.url),
                ));
            }
            if let Some(t) = w
                .event_types
                .iter()
                .find(|t| !WEBHOOK_EVENT_TYPES.contains(&t.as_str()))
            {
                return Err(invalid(
                    wf("event_types"),
                    format!(
                        "unknown event type {t:?}; known are {}",
                        WEBHOOK_EVENT_TYPES.join(", ")
                    ),
                ));
            }
            for name in w.headers.keys() {
                if name.parse::<hyper::header::HeaderName>().is_err() {
                    return Err(invalid(
                        wf("headers"),
                        format!("{name:?} is not a valid header name"),
                    ));
                }
            }
        }
        if app.user_signin_timeout_secs == Some(0) {
            return Err(invalid(
                f("user_signin_timeout_secs"),
                "must be greater than 0",
            ));
        }
        let l = &app.limits;
        for (name, value) in [
            ("max_event_bytes", l.max_event_bytes),
            ("max_presence_members", l.max_presence_members),
            ("max_user_info_bytes", l.max_user_info_bytes),
            ("max_user_id_len", l.max_user_id_len),
            ("client_events_per_sec", l.client_events_per_sec as usize),
            ("max_channels_per_trigger", l.max_channels_per_trigger),
            ("max_batch_events", l.max_batch_events),
            ("max_channel_name_len", l.max_channel_name_len),
            ("max_event_name_len", l.max_event_name_len),
            ("cache_ttl_secs", l.cache_ttl_secs as usize),
            ("max_watchlist", l.max_watchlist),
        ] {
            if value == 0 {
                return Err(invalid(
                    f(&format!("limits.{name}")),
                    "must be greater than 0",
                ));
            }
        }
        for (name, value) in [
            ("max_broadcasts_per_day", l.max_broadcasts_per_day),
            ("max_broadcasts_per_month", l.max_broadcasts_per_month),
            (
                "max_api_requests_per_sec",
                l.max_api_requests_per_sec.map(u64::from),
            ),
        ] {
            if value == Some(0) {
                return Err(invalid(
                    f(&format!("limits.{name}")),
                    "must be greater than 0 (leave it out for no limit)",
                ));
            }
        }
        if let (Some(day), Some(month)) = (l.max_broadcasts_per_day, l.max_broadcasts_per_month)
            && day > month
        {
            return Err(invalid(
                f("limits.max_broadcasts_per_day"),
                format!("{day} is more than max_broadcasts_per_month ({month})"),
            ));
        }
    }
    Ok(())
}

fn validate_cluster(c: &ClusterConfig) -> Result<(), ConfigError> {
    let scheme = c.url.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("redis" | "rediss" | "nats" | "tls")) {
        return Err(invalid(
            "cluster.url",
            format!(
                "{:?} must start with redis://, rediss:// or nats:// (tls:// for NATS over TLS)",
                c.redacted_url()
            ),
        ));
    }
    let name_ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if let Some(id) = &c.node_id
        && !name_ok(id, 64)
    {
        return Err(invalid(
            "cluster.node_id",
            "must be 1 to 64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    if !name_ok(&c.prefix, 64) {
        return Err(invalid(
            "cluster.prefix",
            "must be 1 to 64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    if c.heartbeat_ms == 0 {
        return Err(invalid("cluster.heartbeat_ms", "must be greater than 0"));
    }
    if c.node_timeout_ms < 2 * c.heartbeat_ms {
        return Err(invalid(
            "cluster.node_timeout_ms",
            "must be at least twice heartbeat_ms",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let c = Config::from_toml(text, std::path::Path::new("vask.toml"))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../vask.example.toml");
        let c = parse(text).unwrap();
        assert!(!c.apps.is_empty());
    }

    #[test]
    fn the_apps_store_and_the_admin_token_are_checked() {
        let c = parse("[apps_store]\nurl = \"postgres://vask:pw@127.0.0.1/vask\"\n[admin]\ntoken = \"0123456789abcdef\"\n").unwrap();
        assert!(c.apps.is_empty());
        assert_eq!(
            c.apps_store.unwrap().redacted_url(),
            "postgres://vask:***@127.0.0.1/vask"
        );
        assert!(c.admin.token.unwrap().matches("0123456789abcdef"));
        let e = parse("[apps_store]\nurl = \"mysql://vask:pw@h/vask\"\n").unwrap_err();
        assert!(e.to_string().contains("apps_store.url"), "{e}");
        assert!(!e.to_string().contains("pw@"), "{e}");
        let e = parse("[apps_store]\nurl = \"postgres://h/vask\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n").unwrap_err();
        assert!(
            e.to_string().contains("invalid configuration: apps:"),
            "{e}"
        );
        let e = parse("[admin]\ntoken = \"short\"\n").unwrap_err();
        assert!(e.to_string().contains("admin.token"), "{e}");
        assert!(!e.to_string().contains("short"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[[apps]]\nid = \"abc\"\nkey = \"k\"\nsecret = \"s\"\n").unwrap_err();
        assert!(e.to_string().contains("apps[0].id"), "{e}");
        let e = parse("[server]\nprot = 1\n").unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e = parse("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps]]\nid = \"1\"\nkey = \"j\"\nsecret = \"s\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("apps[1].id"), "{e}");
        let e = parse("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nlimits = { max_batch_events = 0 }\n").unwrap_err();
        assert!(
            e.to_string().contains("apps[0].limits.max_batch_events"),
            "{e}"
        );
        let app = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";
        let e = parse(&format!(
            "{app}limits = {{ max_api_requests_per_sec = 0 }}\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("apps[0].limits.max_api_requests_per_sec"),
            "{e}"
        );
        let e = parse(&format!(
            "{app}limits = {{ max_broadcasts_per_day = 10, max_broadcasts_per_month = 5 }}\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("apps[0].limits.max_broadcasts_per_day"),
            "{e}"
        );
        let c = parse(&format!(
            "{app}[apps.limits]\nmax_broadcasts_per_month = 500000\nmax_connections = 100\n"
        ))
        .unwrap();
        assert_eq!(c.apps[0].limits.max_broadcasts_per_month, Some(500_000));
        assert_eq!(c.apps[0].limits.max_broadcasts_per_day, None);
    }

    #[test]
    fn flags_override_the_file_and_define_an_app() {
        let cli = Cli {
            port: Some(7000),
            app_id: Some("42".into()),
            app_key: Some("key42".into()),
            app_secret: Some("s".into()),
            ..Cli::default()
        };
        let c = Config::load(&cli).unwrap();
        assert_eq!(c.server.port, 7000);
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.apps[0].id, "42");
    }

    #[test]
    fn cluster_settings_are_validated() {
        let c = parse("[cluster]\nurl = \"redis://:pw@127.0.0.1:6379\"\n").unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.prefix, "vask");
        assert_eq!(cluster.redacted_url(), "redis://:***@127.0.0.1:6379");
        for (text, field) in [
            ("[cluster]\nurl = \"http://x\"\n", "cluster.url"),
            (
                "[cluster]\nurl = \"nats://x\"\nnode_id = \"a b\"\n",
                "cluster.node_id",
            ),
            (
                "[cluster]\nurl = \"nats://x\"\nprefix = \"\"\n",
                "cluster.prefix",
            ),
            (
                "[cluster]\nurl = \"nats://x\"\nheartbeat_ms = 1000\nnode_timeout_ms = 1500\n",
                "cluster.node_timeout_ms",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert_eq!(
            redact("nats://user:secret@h:4222"),
            "nats://user:***@h:4222"
        );
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert!(
            !format!(
                "{:?}",
                parse("[cluster]\nurl = \"redis://:pw@h\"\n")
                    .unwrap()
                    .cluster
                    .unwrap()
                    .redacted_url()
            )
            .contains("pw")
        );
    }

    #[test]
    fn no_apps_means_the_development_app() {
        let c = Config::load(&Cli::default()).unwrap();
        assert_eq!(c.apps[0].id, "1");
        assert!(c.apps[0].client_events);
    }
}
