//! Webhooks: hub notifications become signed, batched POSTs, with
//! `channel_vacated`/`member_removed` held back, retries with backoff, and
//! every drop counted and logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pusher_hub::{Hub, Notification, NotificationSink};
use pusher_proto::webhook::{WebhookBody, WebhookEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{AppConfig, WebhookConfig, WebhookSettings};
use crate::endpoint::Alive;
use crate::metrics::AppMetrics;

/// Turns hub notifications into webhook events for one app's task; never
/// blocks the hub: a full queue drops the event (counted, logged).
pub(crate) struct WebhookSink {
    tx: mpsc::Sender<WebhookEvent>,
    metrics: AppMetrics,
    dropped: AtomicU64,
}

impl WebhookSink {
    pub(crate) fn new(tx: mpsc::Sender<WebhookEvent>, metrics: AppMetrics) -> Self {
        Self {
            tx,
            metrics,
            dropped: AtomicU64::new(0),
        }
    }
}

fn event_of(n: Notification) -> Option<WebhookEvent> {
    Some(match n {
        Notification::ChannelOccupied { channel } => WebhookEvent::ChannelOccupied { channel },
        Notification::ChannelVacated { channel } => WebhookEvent::ChannelVacated { channel },
        Notification::MemberAdded { channel, user_id } => {
            WebhookEvent::MemberAdded { channel, user_id }
        }
        Notification::MemberRemoved { channel, user_id } => {
            WebhookEvent::MemberRemoved { channel, user_id }
        }
        Notification::ClientEvent {
            channel,
            event,
            data,
            socket_id,
            user_id,
        } => WebhookEvent::ClientEvent {
            channel,
            event,
            data,
            socket_id: socket_id.to_string(),
            user_id,
        },
        Notification::CacheMiss { channel } => WebhookEvent::CacheMiss { channel },
        Notification::SubscriptionCount { channel, count } => WebhookEvent::SubscriptionCount {
            channel,
            subscription_count: count,
        },
        _ => return None,
    })
}

impl NotificationSink for WebhookSink {
    fn notify(&self, n: Notification) {
        let Some(event) = event_of(n) else { return };
        if self.tx.try_send(event).is_err() {
            self.metrics.dropped("webhook_queue_full", 1);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged once, then at every power of two, so a flood stays readable.
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "webhook queue full: events dropped (vask_dropped_total reason=webhook_queue_full)"
                );
            }
        }
    }
}

fn wants(target: &WebhookConfig, e: &WebhookEvent) -> bool {
    (target.event_types.is_empty() || target.event_types.iter().any(|t| t == e.name()))
        && target
            .filter
            .channel_name_starts_with
            .as_deref()
            .is_none_or(|p| e.channel().starts_with(p))
        && target
            .filter
            .channel_name_ends_with
            .as_deref()
            .is_none_or(|p| e.channel().ends_with(p))
}

/// A held event: when it is due, and its arrival order (so that events due
/// together leave in the order they came).
type Held = (Instant, u64, WebhookEvent);

#[derive(Clone, Hash, PartialEq, Eq)]
enum HoldKey {
    Channel(String),
    Member(String, String),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A cheap jitter source: no cryptographic need here.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    delay.mul_f64(factor)
}

struct Sender {
    app: AppConfig,
    hub: Arc<Hub>,
    origin: std::time::Instant,
    settings: WebhookSettings,
    metrics: AppMetrics,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    shutdown: watch::Receiver<bool>,
}

/// A pooled client for http:// and https:// receivers.
fn https_client(settings: &WebhookSettings) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    // Checked when the configuration was validated; fall back to the
    // standard roots rather than fail the task.
    let tls = crate::tls::webhook_client_config(settings.ca_file.as_deref())
        .or_else(|e| {
            tracing::error!(error = %e, "webhook CA file unusable; using the standard roots only");
            crate::tls::webhook_client_config(None)
        })
        .expect("the standard roots always load");
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One app's webhook task. Holds `alive` so shutdown waits for its flush.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    app: AppConfig,
    settings: WebhookSettings,
    metrics: AppMetrics,
    hub: Arc<Hub>,
    origin: std::time::Instant,
    mut rx: mpsc::Receiver<WebhookEvent>,
    mut shutdown: watch::Receiver<bool>,
    alive: Alive,
) {
    let sender = Arc::new(Sender {
        app,
        hub: hub.clone(),
        origin,
        settings: settings.clone(),
        metrics,
        client: https_client(&settings),
        shutdown: shutdown.clone(),
    });
    let hold = Duration::from_millis(settings.hold_ms);
    let batch_window = Duration::from_millis(settings.batch_ms);
    let mut held: HashMap<HoldKey, Held> = HashMap::new();
    let mut arrivals = 0u64;
    let mut batch: Vec<WebhookEvent> = Vec::new();
    let mut batch_due: Option<Instant> = None;
    let mut deliveries = JoinSet::new();
    let mut stopping = false;

    loop {
        let next_hold = held.values().map(|(t, _, _)| *t).min();
        let next = [next_hold, batch_due].into_iter().flatten().min();
        let idle = if stopping {
            Some(Instant::now() + Duration::from_millis(100))
        } else {
            None
        };
        let wake = [next, idle].into_iter().flatten().min();
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    if let Some(ev) = accept(&mut held, ev, if stopping { Duration::ZERO } else { hold }, &mut arrivals) {
                        if batch.is_empty() {
                            batch_due = Some(Instant::now() + batch_window);
                        }
                        batch.push(ev);
                    }
                }
                None => break,
            },
            _ = async { if let Some(w) = wake { tokio::time::sleep_until(w).await } else { std::future::pending().await } } => {
                if stopping && rx.is_empty() && hub.connection_count() == 0 {
                    release_all(&mut held, &mut batch);
                    flush(&sender, &mut batch, &mut deliveries);
                    break;
                }
            }
            _ = crate::endpoint::stopped(&mut shutdown), if !stopping => {
                // Closing connections still produce events: stop holding,
                // send everything promptly, leave when the hub is empty.
                stopping = true;
                release_all(&mut held, &mut batch);
                batch_due = Some(Instant::now());
            }
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
        let now = Instant::now();
        let mut due: Vec<(Instant, u64, HoldKey)> = held
            .iter()
            .filter(|(_, (t, _, _))| *t <= now)
            .map(|(k, (t, n, _))| (*t, *n, k.clone()))
            .collect();
        due.sort_by_key(|(t, n, _)| (*t, *n));
        for (_, _, k) in due {
            if let Some((_, _, ev)) = held.remove(&k) {
                if batch.is_empty() {
                    batch_due = Some(now + batch_window);
                }
                batch.push(ev);
            }
        }
        if batch.len() >= settings.batch_max || batch_due.is_some_and(|d| d <= now) {
            flush(&sender, &mut batch, &mut deliveries);
            batch_due = None;
        }
    }
    // Deliveries in flight finish (or give up) within the grace period; the
    // server stops waiting for this task when the grace period ends.
    while deliveries.join_next().await.is_some() {}
    drop(alive);
}

/// Applies the hold rules; returns the event to batch now, if any.
fn accept(
    held: &mut HashMap<HoldKey, Held>,
    ev: WebhookEvent,
    hold: Duration,
    arrivals: &mut u64,
) -> Option<WebhookEvent> {
    let key = match &ev {
        WebhookEvent::ChannelVacated { channel } | WebhookEvent::ChannelOccupied { channel } => {
            HoldKey::Channel(channel.clone())
        }
        WebhookEvent::MemberRemoved { channel, user_id }
        | WebhookEvent::MemberAdded { channel, user_id } => {
            HoldKey::Member(channel.clone(), user_id.clone())
        }
        _ => return Some(ev),
    };
    match ev {
        WebhookEvent::ChannelVacated { .. } | WebhookEvent::MemberRemoved { .. }
            if !hold.is_zero() =>
        {
            *arrivals += 1;
            held.insert(key, (Instant::now() + hold, *arrivals, ev));
            None
        }
        WebhookEvent::ChannelOccupied { .. } | WebhookEvent::MemberAdded { .. } => {
            // Back within the hold: neither the leave nor this return is sent.
            if held.remove(&key).is_some() {
                None
            } else {
                Some(ev)
            }
        }
        ev => Some(ev),
    }
}

fn release_all(held: &mut HashMap<HoldKey, Held>, batch: &mut Vec<WebhookEvent>) {
    let mut all: Vec<Held> = held.drain().map(|(_, v)| v).collect();
    all.sort_by_key(|(t, n, _)| (*t, *n));
    batch.extend(all.into_iter().map(|(_, _, e)| e));
}

fn flush(sender: &Arc<Sender>, batch: &mut Vec<WebhookEvent>, deliveries: &mut JoinSet<()>) {
    if batch.is_empty() {
        return;
    }
    let events = std::mem::take(batch);
    let sender = sender.clone();
    deliveries.spawn(async move {
        let mut targets = JoinSet::new();
        for (i, target) in sender.app.webhooks.iter().enumerate() {
            let mine: Vec<WebhookEvent> = events
                .iter()
                .filter(|e| wants(target, e))
                .cloned()
                .collect();
            if !mine.is_empty() {
                let sender = sender.clone();
                targets.spawn(async move { sender.deliver(i, mine).await });
            }
        }
        while targets.join_next().await.is_some() {}
        // Sent (or given up on, counted): in a cluster the leader records it,
        // so that a new leader does not send it again.
        let done: Vec<Notification> = events.into_iter().filter_map(state_note).collect();
        if !done.is_empty() {
            let now = sender.origin.elapsed().as_millis() as u64;
            sender.hub.webhook_delivered(&done, now);
        }
    });
}

/// The events that describe cluster-wide state, as the hub's notifications.
fn state_note(e: WebhookEvent) -> Option<Notification> {
    Some(match e {
        WebhookEvent::ChannelOccupied { channel } => Notification::ChannelOccupied { channel },
        WebhookEvent::ChannelVacated { channel } => Notification::ChannelVacated { channel },
        WebhookEvent::MemberAdded { channel, user_id } => {
            Notification::MemberAdded { channel, user_id }
        }
        WebhookEvent::MemberRemoved { channel, user_id } => {
            Notification::MemberRemoved { channel, user_id }
        }
        _ => return None,
    })
}

impl Sender {
    async fn deliver(&self, target: usize, events: Vec<WebhookEvent>) {
        let t = &self.app.webhooks[target];
        let n = events.len() as u64;
        let body = WebhookBody {
            time_ms: now_ms(),
            events,
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let signature = pusher_auth::sign_webhook(self.app.secret.expose(), &body);
        let started = Instant::now();
        let budget = Duration::from_millis(self.settings.retry_budget_ms);
        let mut delay = Duration::from_millis(self.settings.retry_initial_ms);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = self.attempt(t, &body, &signature).await;
            let reason = match outcome {
                Ok(()) => {
                    self.metrics.webhooks_sent.inc();
                    return;
                }
                Err(reason) => reason,
            };
            self.metrics.webhook_attempts_failed.inc();
            let wait = jitter(delay);
            if *self.shutdown.borrow() {
                self.metrics.dropped("webhook_shutdown", n);
                tracing::warn!(app = %self.app.id, url = %t.url, events = n, attempts, %reason,
                    "webhook not delivered before shutdown; dropped");
                return;
            }
            if started.elapsed() + wait > budget {
                self.metrics.dropped("webhook_retry_budget", n);
                tracing::warn!(app = %self.app.id, url = %t.url, events = n, attempts, %reason,
                    "webhook retry budget spent; dropped");
                return;
            }
            tracing::debug!(app = %self.app.id, url = %t.url, attempts, %reason, "webhook attempt failed; retrying");
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = crate::endpoint::stopped(&mut shutdown) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    async fn attempt(
        &self,
        t: &WebhookConfig,
        body: &Bytes,
        signature: &str,
    ) -> Result<(), String> {
        let mut req = hyper::Request::post(&t.url)
            .header("content-type", "application/json")
            .header("x-pusher-key", &self.app.key)
            .header("x-pusher-signature", signature);
        for (k, v) in &t.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let resp = tokio::time::timeout(timeout, self.client.request(req))
            .await
            .map_err(|_| format!("timed out after {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = tokio::time::timeout(timeout, resp.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}
