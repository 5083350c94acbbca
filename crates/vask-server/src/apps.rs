//! The apps this server hosts, each with its hub and metrics.

use std::collections::HashMap;
use std::sync::Arc;

use pusher_hub::{Hub, HubConfig, Limits, Notification, NotificationSink};

use tokio::sync::{mpsc, watch};

use crate::config::{AppConfig, ServerConfig};
use crate::endpoint::Alive;
use crate::metrics::{AppMetrics, Metrics};
use crate::usage::AppUsage;
use crate::webhooks::{self, WebhookSink};

/// One hosted app.
#[derive(Debug)]
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// Its hub.
    pub hub: Arc<Hub>,
    /// Its counters.
    pub metrics: AppMetrics,
    /// Its usage (as billed) and quotas.
    pub usage: Arc<AppUsage>,
}

/// Every hosted app, found by id or key.
#[derive(Debug, Default)]
pub struct Apps {
    list: Vec<Arc<App>>,
    by_id: HashMap<String, usize>,
    by_key: HashMap<String, usize>,
}

/// Counts hub notifications in metrics and hands them to the app's
/// webhook task, if it has webhooks.
struct Notifications {
    metrics: AppMetrics,
    webhooks: Option<WebhookSink>,
}

impl NotificationSink for Notifications {
    fn notify(&self, n: Notification) {
        if let Notification::CacheMiss { .. } = n {
            self.metrics.error("cache_miss");
        }
        if let Some(w) = &self.webhooks {
            w.notify(n);
        }
    }
}

/// The hub's settings for an app.
pub fn hub_config(app: &AppConfig, server: &ServerConfig) -> HubConfig {
    let l = &app.limits;
    let mut c = HubConfig::new(&app.id, &app.key, app.secret.clone());
    c.client_events = app.client_events;
    c.subscription_count = app.subscription_count;
    c.activity_timeout_secs = server.activity_timeout_secs;
    c.pong_timeout_ms = server.pong_timeout_secs * 1000;
    c.signin_timeout_ms = app.user_signin_timeout_secs.map(|s| s * 1000);
    c.cache_ttl_ms = l.cache_ttl_secs * 1000;
    c.limits = Limits {
        max_connections: l.max_connections,
        max_channel_name_len: l.max_channel_name_len,
        max_event_name_len: l.max_event_name_len,
        max_presence_members: l.max_presence_members,
        max_user_info_bytes: l.max_user_info_bytes,
        max_user_id_len: l.max_user_id_len,
        client_events_per_sec: l.client_events_per_sec,
        max_watchlist: l.max_watchlist,
        max_event_bytes: l.max_event_bytes,
        max_channels_per_trigger: l.max_channels_per_trigger,
        max_batch_events: l.max_batch_events,
    };
    c.timestamp_window_secs = server.timestamp_window_secs;
    c
}

/// What every app's hub and webhook task are built with.
pub(crate) struct Context<'a> {
    pub(crate) server: &'a ServerConfig,
    pub(crate) metrics: &'a Arc<Metrics>,
    /// Socket id seed (each app adds its index).
    pub(crate) seed: u64,
    pub(crate) shutdown: &'a watch::Receiver<bool>,
    pub(crate) alive: &'a Alive,
    /// This node's cluster identity and queue, in a cluster.
    pub(crate) cluster: Option<&'a crate::cluster::Prepared>,
    /// The hub clock's origin.
    pub(crate) origin: std::time::Instant,
}

impl Apps {
    /// Builds every app's hub, and starts the webhook task of each app that
    /// has webhooks (inside a tokio runtime).
    pub(crate) fn new(apps: &[AppConfig], cx: &Context<'_>) -> Self {
        let Context {
            server,
            metrics,
            seed,
            shutdown,
            alive,
            cluster,
            origin,
        } = *cx;
        let mut out = Self::default();
        for (i, app) in apps.iter().enumerate() {
            let m = metrics.app(&app.id);
            let (webhooks, rx) = if app.webhooks.is_empty() {
                (None, None)
            } else {
                let (tx, rx) = mpsc::channel(server.webhooks.queue_capacity);
                (Some(WebhookSink::new(tx, m.clone())), Some(rx))
            };
            let usage = Arc::new(AppUsage::new(app, m.clone()));
            let mut hub = Hub::new(hub_config(app, server))
                .with_seed(seed.wrapping_add(i as u64))
                .with_meter(usage.clone())
                .with_notifications(Arc::new(Notifications {
                    metrics: m.clone(),
                    webhooks,
                }));
            if let Some(c) = cluster {
                hub = hub.with_cluster(c.me.clone(), c.sink(&app.id));
            }
            let hub = Arc::new(hub);
            if let Some(rx) = rx {
                tokio::spawn(webhooks::run(
                    app.clone(),
                    server.webhooks.clone(),
                    m.clone(),
                    hub.clone(),
                    origin,
                    rx,
                    shutdown.clone(),
                    alive.clone(),
                ));
            }
            out.by_id.insert(app.id.clone(), i);
            out.by_key.insert(app.key.clone(), i);
            out.list.push(Arc::new(App {
                config: app.clone(),
                hub,
                metrics: m,
                usage,
            }));
        }
        out
    }

    /// The app with this key.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key).map(|&i| &self.list[i])
    }

    /// The app with this id, or else this key (a Vask convention).
    pub fn by_id_or_key(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id
            .get(id)
            .or_else(|| self.by_key.get(id))
            .map(|&i| &self.list[i])
    }

    /// Every app.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.list.iter()
    }
}
