//! The apps this server hosts, each with its hub, metrics and usage.
//!
//! The set is replaced whole while the server runs ([`LiveApps::replace`]:
//! SIGHUP, the admin API, the PostgreSQL store). An app that stays keeps
//! its hub, connections, counters and usage; its new settings apply to what
//! comes next (a rotated secret to the next signature, a lower limit to the
//! next connection). A disabled app's open connections are closed with
//! 4003, a deleted app's with 4001.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use pusher_hub::{Hub, HubConfig, Limits, Notification, NotificationSink};
use pusher_proto::ErrorCode;
use tokio::sync::{mpsc, watch};

use crate::cluster::{AppChange, Clock, Sinks};
use crate::config::{AppConfig, ConfigError, ServerConfig, validate_apps};
use crate::endpoint::{Alive, stopped};
use crate::metrics::{AppMetrics, Metrics};
use crate::usage::AppUsage;
use crate::webhooks::{self, WebhookSink};

/// One hosted app, as of one version of its settings.
#[derive(Debug)]
pub struct App {
    /// Its configuration (this version's).
    pub config: AppConfig,
    /// Its hub (the same across versions).
    pub hub: Arc<Hub>,
    /// Its counters.
    pub metrics: AppMetrics,
    /// Its usage (as billed) and quotas.
    pub usage: Arc<AppUsage>,
    /// What its connections and tasks follow across versions.
    pub(crate) life: Arc<Life>,
}

/// Whether an app serves, as its connections and tasks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Serving.
    Enabled,
    /// Disabled: connections are closed with 4003, API calls get 403.
    Disabled,
    /// Deleted: connections are closed with 4001, its tasks end.
    Deleted,
}

impl Status {
    /// The code open connections are closed with.
    pub(crate) fn close_code(self) -> Option<ErrorCode> {
        match self {
            Self::Enabled => None,
            Self::Disabled => Some(ErrorCode::AppDisabled),
            Self::Deleted => Some(ErrorCode::AppNotFound),
        }
    }
}

/// What stays of an app across versions of its settings.
#[derive(Debug)]
pub(crate) struct Life {
    pub(crate) status: watch::Sender<Status>,
    /// The current settings (the webhook task reads them per batch).
    pub(crate) settings: RwLock<Arc<AppConfig>>,
    /// Whether it has webhook receivers (else notifications are not queued).
    has_webhooks: AtomicBool,
}

impl Life {
    fn set(&self, app: &AppConfig) {
        *self.settings.write() = Arc::new(app.clone());
        self.has_webhooks
            .store(!app.webhooks.is_empty(), Ordering::Relaxed);
        let status = if app.enabled {
            Status::Enabled
        } else {
            Status::Disabled
        };
        self.status
            .send_if_modified(|s| std::mem::replace(s, status) != status);
    }
}

/// Every hosted app at one moment, found by id or key.
#[derive(Debug, Default)]
pub struct Apps {
    list: Vec<Arc<App>>,
    by_id: HashMap<String, usize>,
    by_key: HashMap<String, usize>,
}

impl Apps {
    fn from_list(list: Vec<Arc<App>>) -> Self {
        let mut by_id = HashMap::with_capacity(list.len());
        let mut by_key = HashMap::with_capacity(list.len());
        for (i, app) in list.iter().enumerate() {
            by_id.insert(app.config.id.clone(), i);
            by_key.insert(app.config.key.clone(), i);
        }
        Self {
            list,
            by_id,
            by_key,
        }
    }

    /// The app with this key.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key).map(|&i| &self.list[i])
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id).map(|&i| &self.list[i])
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

    /// Connections open on this node, all apps together.
    pub fn connection_count(&self) -> usize {
        self.list.iter().map(|a| a.hub.connection_count()).sum()
    }

    /// How many apps.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Counts hub notifications in metrics and hands them to the app's
/// webhook task when it has webhooks.
struct Notifications {
    metrics: AppMetrics,
    life: Arc<Life>,
    webhooks: Option<WebhookSink>,
}

impl NotificationSink for Notifications {
    fn notify(&self, n: Notification) {
        self.metrics.console.notification(&n);
        if let Notification::CacheMiss { .. } = n {
            self.metrics.error("cache_miss");
        }
        if let Some(w) = &self.webhooks
            && self.life.has_webhooks.load(Ordering::Relaxed)
        {
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
    c.pong_timeout = Duration::from_secs(server.pong_timeout_secs);
    c.signin_timeout = app.user_signin_timeout_secs.map(Duration::from_secs);
    c.cache_ttl = Duration::from_secs(l.cache_ttl_secs);
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

/// What a replacement did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Apps new to this server.
    pub added: usize,
    /// Apps whose settings changed.
    pub changed: usize,
    /// Apps no longer hosted.
    pub removed: usize,
}

impl Changes {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What new apps are built with.
pub(crate) struct Builder {
    pub(crate) server: ServerConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Socket id seed (each app adds its own number).
    pub(crate) seed: u64,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Held by the tasks of apps built until the shutdown takes it.
    pub(crate) alive: Mutex<Option<Alive>>,
    /// This node's cluster sinks, in a cluster.
    pub(crate) cluster: Option<Sinks>,
    /// Tells the cluster node about apps added and removed, once it runs.
    pub(crate) cluster_changes: Mutex<Option<mpsc::Sender<AppChange>>>,
    pub(crate) clock: Clock,
}

/// The hosted apps, replaced whole while the server runs.
pub struct LiveApps {
    current: RwLock<Arc<Apps>>,
    builder: Builder,
    /// Apps built so far (each hub's seed adds it).
    built: AtomicU64,
    /// One replacement at a time.
    replacing: Mutex<()>,
}

impl std::fmt::Debug for LiveApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveApps")
            .field("apps", &self.current().len())
            .finish_non_exhaustive()
    }
}

impl LiveApps {
    /// Builds every app (inside a tokio runtime: each app's timers and
    /// webhooks run in tasks of their own).
    pub(crate) fn new(apps: &[AppConfig], builder: Builder) -> Self {
        let live = Self {
            current: RwLock::new(Arc::new(Apps::default())),
            builder,
            built: AtomicU64::new(0),
            replacing: Mutex::new(()),
        };
        let list = apps.iter().map(|a| live.build(a)).collect();
        *live.current.write() = Arc::new(Apps::from_list(list));
        live
    }

    /// The apps now. Cheap: a request takes it once and keeps it.
    pub fn current(&self) -> Arc<Apps> {
        self.current.read().clone()
    }

    /// Replaces the hosted apps with `apps`, validated as a whole first (a
    /// bad list is refused and the apps in force stay). Apps are matched by
    /// id: one that stays keeps its hub, connections and usage, and takes
    /// its new settings at once. Call it inside the server's tokio runtime
    /// (a new app's timers and webhooks start as tasks).
    ///
    /// # Errors
    /// The list is invalid; the error names the field.
    pub fn replace(&self, apps: &[AppConfig]) -> Result<Changes, ConfigError> {
        validate_apps(apps)?;
        let _one = self.replacing.lock();
        let old = self.current();
        let mut changes = Changes::default();
        let mut list = Vec::with_capacity(apps.len());
        for config in apps {
            let Some(prev) = old.by_id(&config.id) else {
                changes.added += 1;
                list.push(self.build(config));
                continue;
            };
            if !same(&prev.config, config) {
                changes.changed += 1;
                prev.hub
                    .set_config(hub_config(config, &self.builder.server));
                prev.usage.set_limits(&config.limits);
                prev.life.set(config);
            }
            list.push(Arc::new(App {
                config: config.clone(),
                hub: prev.hub.clone(),
                metrics: prev.metrics.clone(),
                usage: prev.usage.clone(),
                life: prev.life.clone(),
            }));
        }
        let next = Apps::from_list(list);
        for prev in old.iter() {
            if next.by_id(&prev.config.id).is_none() {
                changes.removed += 1;
                prev.life.status.send_replace(Status::Deleted);
                self.tell_cluster(AppChange::Remove(prev.config.id.clone()));
            }
        }
        *self.current.write() = Arc::new(next);
        if !changes.is_empty() {
            self.builder.metrics.apps_reloads.inc();
        }
        Ok(changes)
    }

    /// Lets shutdown finish: apps built from now on hold nothing it waits for.
    pub(crate) fn release_alive(&self) {
        self.builder.alive.lock().take();
    }

    /// Starts telling the cluster node about added and removed apps.
    pub(crate) fn set_cluster_changes(&self, tx: mpsc::Sender<AppChange>) {
        *self.builder.cluster_changes.lock() = Some(tx);
    }

    fn tell_cluster(&self, change: AppChange) {
        if let Some(tx) = &*self.builder.cluster_changes.lock()
            && tx.try_send(change).is_err()
        {
            // Bounded and drained at once by the node's driver: only a
            // flood of admin changes fills it. The node then hosts (or
            // keeps) the app on its bus until the next change of it.
            self.builder.metrics.cluster_dropped("app_change", 1);
            tracing::error!("cluster node did not take an app change: queue full");
        }
    }

    /// Builds one app: its hub, and its timer and webhook tasks.
    fn build(&self, app: &AppConfig) -> Arc<App> {
        let b = &self.builder;
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        let m = b.metrics.app(&app.id);
        let (status, _) = watch::channel(Status::Enabled);
        let life = Arc::new(Life {
            status,
            settings: RwLock::new(Arc::new(app.clone())),
            has_webhooks: AtomicBool::new(false),
        });
        life.set(app);
        let alive = b.alive.lock().clone();
        // Every app gets a webhook queue and task (its webhooks may be
        // configured later); notifications reach it only while it has
        // receivers.
        let (webhooks, rx) = match &alive {
            Some(_) => {
                let (tx, rx) = mpsc::channel(b.server.webhooks.queue_capacity);
                (Some(WebhookSink::new(tx, m.clone())), Some(rx))
            }
            None => (None, None),
        };
        let usage = Arc::new(AppUsage::new(app, m.clone()));
        let mut hub = Hub::new(hub_config(app, &b.server))
            .with_seed(b.seed.wrapping_add(n))
            .with_meter(usage.clone())
            .with_notifications(Arc::new(Notifications {
                metrics: m.clone(),
                life: life.clone(),
                webhooks,
            }));
        if let Some(c) = &b.cluster {
            hub = hub.with_cluster(c.me.clone(), c.sink(&app.id));
        }
        let hub = Arc::new(hub);
        if let (Some(rx), Some(alive)) = (rx, alive) {
            tokio::spawn(webhooks::run(
                life.clone(),
                b.server.webhooks.clone(),
                m.clone(),
                hub.clone(),
                b.clock.origin,
                rx,
                b.shutdown.clone(),
                alive,
            ));
        }
        tokio::spawn(timers(
            hub.clone(),
            m.clone(),
            life.status.subscribe(),
            b.clock,
            b.shutdown.clone(),
        ));
        self.tell_cluster(AppChange::Add {
            id: app.id.clone(),
            hub: hub.clone(),
            metrics: m.clone(),
            usage: usage.clone(),
        });
        Arc::new(App {
            config: app.clone(),
            hub,
            metrics: m,
            usage,
            life,
        })
    }
}

/// Whether two versions of an app's settings are the same.
fn same(a: &AppConfig, b: &AppConfig) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// One app's hub timers (throttled counts, cache expiry): sleeps until the
/// hub's next deadline, or until it announces an earlier one; ends when the
/// app is deleted or the server shuts down.
async fn timers(
    hub: Arc<Hub>,
    metrics: AppMetrics,
    mut status: watch::Receiver<Status>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let next = hub.poll_timeout();
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(clock.instant(t)).await,
                None => std::future::pending().await,
            }
        };
        let earlier = std::future::poll_fn(|cx| {
            hub.register_timer(cx.waker());
            if hub.poll_timeout() == next {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        tokio::select! {
            _ = sleep => {
                let d = hub.handle_timeout(clock.now());
                metrics.deliveries.inc_by(d.delivered);
            }
            _ = earlier => {}
            _ = status.wait_for(|s| *s == Status::Deleted) => return,
            _ = stopped(&mut shutdown) => return,
        }
    }
}
