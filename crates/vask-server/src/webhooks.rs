//! Webhooks: hub notifications become signed, batched POSTs, with
//! `channel_vacated`/`member_removed` held back, retries with backoff, and
//! every drop counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pusher_hub::{BatchRules, Batcher, Hub, Millis, Notification, NotificationSink};
use pusher_proto::webhook::{WebhookBody, WebhookEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::apps::{Life, Status};
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

impl NotificationSink for WebhookSink {
    fn notify(&self, event: Notification) {
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
    /// The app's current settings (receivers, secret), read per batch.
    life: Arc<Life>,
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
        .with_tls_config(rustls::ClientConfig::clone(&tls))
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One app's webhook task. Holds `alive` so shutdown waits for its flush.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    life: Arc<Life>,
    settings: WebhookSettings,
    metrics: AppMetrics,
    hub: Arc<Hub>,
    origin: std::time::Instant,
    mut rx: mpsc::Receiver<WebhookEvent>,
    mut shutdown: watch::Receiver<bool>,
    alive: Alive,
) {
    let mut status = life.status.subscribe();
    let sender = Arc::new(Sender {
        life,
        hub: hub.clone(),
        origin,
        settings: settings.clone(),
        metrics,
        client: https_client(&settings),
        shutdown: shutdown.clone(),
    });
    let mut batcher = Batcher::new(BatchRules {
        batch: Duration::from_millis(settings.batch_ms),
        batch_max: settings.batch_max,
        hold: Duration::from_millis(settings.hold_ms),
    });
    let mut deliveries = JoinSet::new();
    let mut stopping = false;
    let now = || Millis::from(origin.elapsed());

    loop {
        while let Some(batch) = batcher.release_due(now()) {
            flush(&sender, batch, &mut deliveries);
        }
        let mut wake = batcher.next_deadline().map(|t| hub_instant(origin, t));
        if stopping {
            // Leave once the hub is empty and everything is sent.
            if rx.is_empty() && hub.connection_count() == 0 && batcher.is_empty() {
                break;
            }
            let soon = Instant::now() + Duration::from_millis(100);
            wake = Some(wake.map_or(soon, |w| w.min(soon)));
        }
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    batcher.accept(ev, now());
                    if stopping {
                        batcher.release_all();
                    }
                }
                None => break,
            },
            _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {}
            _ = crate::endpoint::stopped(&mut shutdown), if !stopping => {
                // Closing connections still produce events: stop holding,
                // send everything promptly, leave when the hub is empty.
                stopping = true;
                batcher.release_all();
            }
            _ = status.wait_for(|s| *s == Status::Deleted), if !stopping => {
                // The app is deleted: the same, its connections are closing.
                stopping = true;
                batcher.release_all();
            }
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
    }
    // Deliveries in flight finish (or give up) within the grace period; the
    // server stops waiting for this task when the grace period ends.
    while deliveries.join_next().await.is_some() {}
    drop(alive);
}

fn hub_instant(origin: std::time::Instant, t: Millis) -> Instant {
    crate::cluster::Clock { origin }.instant(t)
}

fn flush(sender: &Arc<Sender>, events: Vec<WebhookEvent>, deliveries: &mut JoinSet<()>) {
    let sender = sender.clone();
    deliveries.spawn(async move {
        let mut targets = JoinSet::new();
        let app = sender.life.settings.read().clone();
        for (i, target) in app.webhooks.iter().enumerate() {
            let mine: Vec<WebhookEvent> = events
                .iter()
                .filter(|e| wants(target, e))
                .cloned()
                .collect();
            if !mine.is_empty() {
                let (sender, app) = (sender.clone(), app.clone());
                targets.spawn(async move { sender.deliver(&app, i, mine).await });
            }
        }
        while targets.join_next().await.is_some() {}
        // Sent (or given up on, counted): in a cluster the leader records it,
        // so that a new leader does not send it again.
        let done: Vec<Notification> = events
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    WebhookEvent::ChannelOccupied { .. }
                        | WebhookEvent::ChannelVacated { .. }
                        | WebhookEvent::MemberAdded { .. }
                        | WebhookEvent::MemberRemoved { .. }
                )
            })
            .collect();
        if !done.is_empty() {
            let now = Millis::from(sender.origin.elapsed());
            sender.hub.webhook_delivered(&done, now);
        }
    });
}

impl Sender {
    async fn deliver(&self, app: &AppConfig, target: usize, events: Vec<WebhookEvent>) {
        let t = &app.webhooks[target];
        let n = events.len() as u64;
        let body = WebhookBody {
            time_ms: now_ms(),
            events,
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let signature = pusher_auth::sign_webhook(app.secret.expose(), &body);
        let started = Instant::now();
        let budget = Duration::from_millis(self.settings.retry_budget_ms);
        let mut delay = Duration::from_millis(self.settings.retry_initial_ms);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = self.attempt(app, t, &body, &signature).await;
            let reason = match outcome {
                Ok(()) => {
                    self.metrics.webhooks_sent.inc();
                    self.metrics
                        .console
                        .webhook("sent", &t.url, n, attempts, "");
                    return;
                }
                Err(reason) => reason,
            };
            self.metrics.webhook_attempts_failed.inc();
            let wait = jitter(delay);
            if *self.shutdown.borrow() {
                self.metrics.dropped("webhook_shutdown", n);
                self.metrics
                    .console
                    .webhook("dropped", &t.url, n, attempts, &reason.to_string());
                tracing::warn!(app = %app.id, url = %t.url, events = n, attempts, %reason,
                    "webhook not delivered before shutdown; dropped");
                return;
            }
            if started.elapsed() + wait > budget {
                self.metrics.dropped("webhook_retry_budget", n);
                self.metrics
                    .console
                    .webhook("dropped", &t.url, n, attempts, &reason.to_string());
                tracing::warn!(app = %app.id, url = %t.url, events = n, attempts, %reason,
                    "webhook retry budget spent; dropped");
                return;
            }
            tracing::debug!(app = %app.id, url = %t.url, attempts, %reason, "webhook attempt failed; retrying");
            self.metrics
                .console
                .webhook("retried", &t.url, n, attempts, &reason.to_string());
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
        app: &AppConfig,
        t: &WebhookConfig,
        body: &Bytes,
        signature: &str,
    ) -> Result<(), String> {
        let mut req = hyper::Request::post(&t.url)
            .header("content-type", "application/json")
            .header("x-pusher-key", &app.key)
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
