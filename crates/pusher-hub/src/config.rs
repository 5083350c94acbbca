//! What one app's hub enforces.

use std::time::Duration;

/// One app's settings, as the hub needs them.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The app id (numeric string).
    pub app_id: String,
    /// The app key: the public half of the credentials.
    pub key: String,
    /// The app secret: signs channel and user auth (never printed).
    pub secret: pusher_auth::Secret,
    /// Whether clients may send `client-` events.
    pub client_events: bool,
    /// Whether subscribers of non-presence channels get
    /// `pusher_internal:subscription_count`.
    pub subscription_count: bool,
    /// Seconds of silence before the server pings (sent in the handshake).
    pub activity_timeout_secs: u32,
    /// How long to wait for any frame after the server's ping before
    /// closing with 4201.
    pub pong_timeout: Duration,
    /// When set, a connection must sign in (or join a private or presence
    /// channel) within this time, or it is closed with 4009.
    pub signin_timeout: Option<Duration>,
    /// How long the last event of a cache channel is kept.
    pub cache_ttl: Duration,
    /// At most one `cache_miss` notification per channel per this time.
    pub cache_miss_interval: Duration,
    /// Above this many subscribers, subscription counts are throttled.
    pub subscription_count_threshold: usize,
    /// The throttle interval for large channels.
    pub subscription_count_interval: Duration,
    /// How far a signed HTTP API request's `auth_timestamp` may be from the
    /// server's clock, in seconds.
    pub timestamp_window_secs: u64,
    /// Quotas and size limits.
    pub limits: Limits,
    /// Number of channel shards (rounded up to a power of two). More shards,
    /// less contention between publishes on different channels.
    pub shards: usize,
}

/// Quotas and size limits (PROTOCOL.md Part A defaults).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections this app may hold; `None` is unlimited. Over it: 4004.
    pub max_connections: Option<usize>,
    /// Longest channel name.
    pub max_channel_name_len: usize,
    /// Longest event name.
    pub max_event_name_len: usize,
    /// Most distinct members of one presence channel.
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes of JSON.
    pub max_user_info_bytes: usize,
    /// Longest presence or sign-in user id, in characters.
    pub max_user_id_len: usize,
    /// Client events one connection may send per second; over it: 4301.
    pub client_events_per_sec: u32,
    /// Most watchlist ids; excess ids are ignored with 4302.
    pub max_watchlist: usize,
    /// Largest event `data` published through the HTTP API, in bytes (413).
    pub max_event_bytes: usize,
    /// Channels one trigger may name.
    pub max_channels_per_trigger: usize,
    /// Events one batch may hold.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_channel_name_len: pusher_proto::DEFAULT_MAX_CHANNEL_NAME_LEN,
            max_event_name_len: pusher_proto::DEFAULT_MAX_EVENT_NAME_LEN,
            max_presence_members: 100,
            max_user_info_bytes: 2048,
            max_user_id_len: 128,
            client_events_per_sec: 10,
            max_watchlist: 100,
            max_event_bytes: 64 * 1024,
            max_channels_per_trigger: 100,
            max_batch_events: 10,
        }
    }
}

impl HubConfig {
    /// An app with the protocol's default limits; client events off and
    /// subscription counts off, as for any configured app.
    pub fn new(
        app_id: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<pusher_auth::Secret>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            client_events: false,
            subscription_count: false,
            activity_timeout_secs: 120,
            pong_timeout: Duration::from_secs(30),
            signin_timeout: None,
            cache_ttl: Duration::from_secs(30 * 60),
            cache_miss_interval: Duration::from_secs(30),
            subscription_count_threshold: 100,
            subscription_count_interval: Duration::from_secs(5),
            timestamp_window_secs: 600,
            limits: Limits::default(),
            shards: 16,
        }
    }
}
