//! One app's feed to the debug console: what happens to the app, as JSON
//! lines for the pages that watch it, and its per-minute history.
//!
//! Every hook starts with [`Tap::active`], a relaxed load of the number of
//! open viewers: with no console page open, nothing is decoded, formatted
//! or allocated. With viewers, each event is serialized once and shared
//! through a bounded broadcast queue; a viewer that falls behind misses
//! events (counted in `vask_dropped_total{reason="console_lagged"}` and
//! shown on its page as "N events skipped").

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pusher_hub::{Notification, Refused, Session, UsageReport};
use pusher_proto::{ClientFrame, ErrorCode, SocketId};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// Events queued per viewer before the slowest misses some.
const QUEUE: usize = 1024;
/// Event data longer than this is cut (the log shows the start).
const MAX_DATA: usize = 2048;
/// Minutes of history kept.
pub(crate) const MINUTES: usize = 60;

/// Where an app's events go to be shared with the cluster: the app id and
/// the cluster driver's queue.
pub(crate) type Share = (String, mpsc::Sender<(String, Arc<str>)>);

/// One app's console feed.
pub(crate) struct Tap {
    viewers: AtomicUsize,
    /// Set while a console page on another node watches this app: its
    /// events are then shared over the cluster bus too.
    shared: AtomicBool,
    /// Where shared events go (set by the cluster driver).
    share: OnceLock<Share>,
    /// Events not shared because the driver's queue was full.
    unshared: AtomicU64,
    /// Made when the first page watches: an app nobody watches holds no
    /// queue.
    tx: OnceLock<broadcast::Sender<Arc<str>>>,
    history: Mutex<History>,
    /// The last state line made for this app's pages, and when: pages
    /// watching the same app share it (one channel scan a second).
    state: Mutex<Option<(std::time::Instant, Arc<str>)>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("viewers", &self.viewers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Tap {
    fn default() -> Self {
        Self {
            viewers: AtomicUsize::new(0),
            shared: AtomicBool::new(false),
            share: OnceLock::new(),
            unshared: AtomicU64::new(0),
            tx: OnceLock::new(),
            history: Mutex::new(History::default()),
            state: Mutex::new(None),
        }
    }
}

/// A console page watching one app: its queue; counted while it lives.
pub(crate) struct Viewer {
    tap: Arc<Tap>,
    pub(crate) rx: broadcast::Receiver<Arc<str>>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.tap.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a frame from a client asked, noted before the session handles it
/// (only while someone watches).
pub(crate) enum Asked {
    Subscribe(String),
    Unsubscribe { channel: String, joined: bool },
    ClientEvent { channel: String, event: String },
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `text` cut to [`MAX_DATA`] bytes (on a character boundary), marked.
fn cut(text: &str) -> String {
    if text.len() <= MAX_DATA {
        return text.to_owned();
    }
    let mut end = MAX_DATA;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

impl Tap {
    /// Whether any console page watches this app, here or on another node:
    /// the first thing every hook checks, so that without viewers a hook
    /// costs two relaxed loads.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.viewers.load(Ordering::Relaxed) > 0 || self.shared.load(Ordering::Relaxed)
    }

    /// Whether a console page on this node watches this app.
    pub(crate) fn watched_here(&self) -> bool {
        self.viewers.load(Ordering::Relaxed) > 0
    }

    /// A page on another node watches this app: its events are shared
    /// through `share` too, until [`Tap::unshare`].
    pub(crate) fn share(&self, share: impl FnOnce() -> Share) {
        self.share.get_or_init(share);
        self.shared.store(true, Ordering::Relaxed);
    }

    /// No page on another node watches this app any more.
    pub(crate) fn unshare(&self) {
        self.shared.store(false, Ordering::Relaxed);
    }

    /// Events not shared (the cluster queue was full) since the last call.
    pub(crate) fn take_unshared(&self) -> u64 {
        self.unshared.swap(0, Ordering::Relaxed)
    }

    /// Shows an event that happened on node `node` (shared over the bus)
    /// to this node's pages; never shared again.
    pub(crate) fn inject(&self, node: &str, line: &str) {
        if !self.watched_here() {
            return;
        }
        let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(line) else {
            return;
        };
        m.insert("node".into(), node.into());
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(Arc::from(Value::Object(m).to_string()));
        }
    }

    /// Starts watching.
    pub(crate) fn watch(self: &Arc<Self>) -> Viewer {
        let rx = self
            .tx
            .get_or_init(|| broadcast::channel(QUEUE).0)
            .subscribe();
        self.viewers.fetch_add(1, Ordering::Relaxed);
        Viewer {
            tap: self.clone(),
            rx,
        }
    }

    /// Sends one event (`kind` plus `fields`) to the viewers.
    fn emit(&self, kind: &str, mut fields: Value) {
        if let Value::Object(m) = &mut fields {
            m.insert("type".into(), "event".into());
            m.insert("kind".into(), kind.into());
            m.insert("t".into(), now_ms().into());
        }
        let line: Arc<str> = Arc::from(fields.to_string());
        if self.shared.load(Ordering::Relaxed)
            && let Some((app, queue)) = self.share.get()
            && queue.try_send((app.clone(), line.clone())).is_err()
        {
            self.unshared.fetch_add(1, Ordering::Relaxed);
        }
        // No receiver left (the last viewer just went): nothing to do.
        if self.watched_here()
            && let Some(tx) = self.tx.get()
        {
            let _ = tx.send(line);
        }
    }

    /// A connection opened.
    pub(crate) fn opened(&self, socket_id: SocketId) {
        if self.active() {
            self.emit(
                "connection_opened",
                json!({ "socket_id": socket_id.to_string() }),
            );
        }
    }

    /// A connection was refused before it started (the code says why).
    pub(crate) fn refused_connection(&self, code: ErrorCode) {
        if self.active() {
            self.emit(
                "connection_refused",
                json!({ "code": code.code(), "text": code.message() }),
            );
        }
    }

    /// A connection closed: by the server with `code`, or by the client.
    pub(crate) fn closed(&self, socket_id: SocketId, code: Option<ErrorCode>) {
        if self.active() {
            let (code, text) = match code {
                Some(c) => (Some(c.code()), c.message()),
                None => (None, "closed by the client (or the network)"),
            };
            self.emit(
                "connection_closed",
                json!({ "socket_id": socket_id.to_string(), "code": code, "text": text }),
            );
        }
    }

    /// Before a session handles `bytes`: what they ask, when it matters to
    /// the console (and someone watches). Clears a stale refusal.
    pub(crate) fn asked(&self, bytes: &[u8], session: &mut Session) -> Option<Asked> {
        if !self.active() {
            return None;
        }
        let _ = session.take_refusal();
        match ClientFrame::decode(bytes).ok()? {
            ClientFrame::Subscribe(s) => Some(Asked::Subscribe(s.channel)),
            ClientFrame::Unsubscribe { channel } => {
                let joined = session.channels().any(|c| c.as_str() == channel);
                Some(Asked::Unsubscribe { channel, joined })
            }
            ClientFrame::ClientEvent { event, channel, .. } => {
                Some(Asked::ClientEvent { channel, event })
            }
            _ => None,
        }
    }

    /// After the session handled what [`Tap::asked`] noted: what it did.
    pub(crate) fn answered(&self, asked: Asked, session: &mut Session) {
        let socket_id = session.socket_id().to_string();
        let refused = session.take_refusal();
        match (asked, refused) {
            (Asked::Subscribe(channel), Some(Refused::Subscription(r))) => self.emit(
                "subscription_refused",
                json!({ "socket_id": socket_id, "channel": channel,
                        "code": r.status(), "text": r.to_string() }),
            ),
            (Asked::Subscribe(channel), _) => {
                if session.channels().any(|c| c.as_str() == channel) {
                    self.emit(
                        "subscribed",
                        json!({ "socket_id": socket_id, "channel": channel }),
                    );
                }
            }
            (Asked::Unsubscribe { channel, joined }, _) => {
                if joined {
                    self.emit(
                        "unsubscribed",
                        json!({ "socket_id": socket_id, "channel": channel }),
                    );
                }
            }
            (Asked::ClientEvent { channel, event }, Some(Refused::ClientEvent(reason))) => self
                .emit(
                    "client_event_refused",
                    json!({ "socket_id": socket_id, "channel": channel,
                            "event": event, "text": reason }),
                ),
            // Relayed client events come as hub notifications.
            (Asked::ClientEvent { .. }, _) => {}
        }
    }

    /// A hub notification (client event, presence member, channel state,
    /// cache miss).
    pub(crate) fn notification(&self, n: &Notification) {
        if !self.active() {
            return;
        }
        match n {
            Notification::ChannelOccupied { channel } => {
                self.emit("channel_occupied", json!({ "channel": channel }));
            }
            Notification::ChannelVacated { channel } => {
                self.emit("channel_vacated", json!({ "channel": channel }));
            }
            Notification::MemberAdded { channel, user_id } => self.emit(
                "member_added",
                json!({ "channel": channel, "user_id": user_id }),
            ),
            Notification::MemberRemoved { channel, user_id } => self.emit(
                "member_removed",
                json!({ "channel": channel, "user_id": user_id }),
            ),
            Notification::ClientEvent {
                channel,
                event,
                data,
                socket_id,
                user_id,
            } => self.emit(
                "client_event",
                json!({ "channel": channel, "event": event, "data": cut(data),
                        "socket_id": socket_id.to_string(), "user_id": user_id }),
            ),
            Notification::CacheMiss { channel } => {
                self.emit("cache_miss", json!({ "channel": channel }));
            }
            // Counts change all the time; the channel table shows them.
            _ => {}
        }
    }

    /// An HTTP API call answered `status` with this body: each published
    /// event (trigger or batch).
    pub(crate) fn api_call(&self, body: &[u8], status: u16) {
        if !self.active() || status != 200 || body.is_empty() {
            return;
        }
        let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let one = |e: &serde_json::Map<String, Value>| {
            let mut channels: Vec<Value> = match e.get("channels") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            if let Some(c) = e.get("channel") {
                channels.push(c.clone());
            }
            let data = match e.get("data") {
                Some(Value::String(s)) => cut(s),
                Some(other) => cut(&other.to_string()),
                None => String::new(),
            };
            for channel in channels {
                self.emit(
                    "api_publish",
                    json!({ "channel": channel, "event": e.get("name"), "data": data,
                            "socket_id": e.get("socket_id") }),
                );
            }
        };
        match v.get("batch") {
            Some(Value::Array(batch)) => {
                for e in batch {
                    if let Value::Object(e) = e {
                        one(e);
                    }
                }
            }
            _ => one(&v),
        }
    }

    /// A quota or rate limit refused something (`reason` names it).
    pub(crate) fn quota_refused(&self, reason: &str, message: &str) {
        if self.active() {
            self.emit(
                "quota_refused",
                json!({ "text": message, "reason": reason }),
            );
        }
    }

    /// A webhook request was sent, will be retried, or was dropped.
    pub(crate) fn webhook(&self, what: &str, url: &str, events: u64, attempts: u32, text: &str) {
        if self.active() {
            self.emit(
                &format!("webhook_{what}"),
                json!({ "url": url, "events": events, "attempts": attempts, "text": text }),
            );
        }
    }

    /// Takes one sample (once a second): connections open in the cluster
    /// now and the cluster's usage of the day, at unix time `now` (seconds).
    pub(crate) fn sample(&self, now: u64, connections: usize, usage: &UsageReport) {
        let c = usage.day.counts;
        self.history
            .lock()
            .sample(now, connections as u64, c.broadcasts, c.deliveries);
    }

    /// The state line for the pages: the one made less than `max_age`
    /// ago, else a new one from `make`.
    pub(crate) fn state_line(
        &self,
        max_age: std::time::Duration,
        make: impl FnOnce() -> String,
    ) -> Arc<str> {
        let mut state = self.state.lock();
        match &*state {
            Some((at, line)) if at.elapsed() < max_age => line.clone(),
            _ => {
                let line: Arc<str> = Arc::from(make());
                *state = Some((std::time::Instant::now(), line.clone()));
                line
            }
        }
    }

    /// The last hour, oldest minute first.
    pub(crate) fn history(&self) -> Value {
        self.history.lock().to_json()
    }
}

/// Per-minute figures of the last hour, in rings indexed by minute.
#[derive(Debug)]
struct History {
    /// The unix minute of the newest slot (0: no sample yet).
    minute: u64,
    connections: [u64; MINUTES],
    broadcasts: [u64; MINUTES],
    deliveries: [u64; MINUTES],
    /// The day's totals at the previous sample.
    last: Option<(u64, u64)>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            minute: 0,
            connections: [0; MINUTES],
            broadcasts: [0; MINUTES],
            deliveries: [0; MINUTES],
            last: None,
        }
    }
}

impl History {
    fn sample(&mut self, now: u64, connections: u64, broadcasts: u64, deliveries: u64) {
        let minute = now / 60;
        if self.minute == 0 || minute >= self.minute + MINUTES as u64 {
            *self = Self {
                last: self.last,
                ..Self::default()
            };
            self.minute = minute;
        }
        while self.minute < minute {
            self.minute += 1;
            let i = (self.minute % MINUTES as u64) as usize;
            self.connections[i] = 0;
            self.broadcasts[i] = 0;
            self.deliveries[i] = 0;
        }
        let i = (minute % MINUTES as u64) as usize;
        self.connections[i] = self.connections[i].max(connections);
        // The day's counts only grow; smaller means a new day began.
        let delta = |now: u64, before: u64| if now >= before { now - before } else { now };
        if let Some((b, d)) = self.last {
            self.broadcasts[i] += delta(broadcasts, b);
            self.deliveries[i] += delta(deliveries, d);
        }
        self.last = Some((broadcasts, deliveries));
    }

    fn to_json(&self) -> Value {
        let order = |ring: &[u64; MINUTES]| -> Vec<u64> {
            (0..MINUTES as u64)
                .map(|k| {
                    let m = (self.minute + 1 + k) % MINUTES as u64;
                    ring[m as usize]
                })
                .collect()
        };
        json!({
            "last_minute": self.minute,
            "connections": order(&self.connections),
            "broadcasts": order(&self.broadcasts),
            "deliveries": order(&self.deliveries),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_counts_per_minute_and_forgets_after_an_hour() {
        let mut h = History::default();
        let t0 = 1_000 * 60;
        h.sample(t0, 3, 100, 1000);
        h.sample(t0 + 1, 5, 110, 1050);
        h.sample(t0 + 61, 2, 111, 1060);
        let v = h.to_json();
        let b = v["broadcasts"].as_array().unwrap();
        assert_eq!(b[MINUTES - 1], 1);
        assert_eq!(b[MINUTES - 2], 10);
        assert_eq!(v["connections"][MINUTES - 2], 5);
        assert_eq!(v["deliveries"][MINUTES - 1], 10);
        // A new day: the totals restart from zero.
        h.sample(t0 + 62, 2, 4, 8);
        assert_eq!(h.to_json()["broadcasts"][MINUTES - 1], 5);
        // Two hours later: all zero but the new sample's connections.
        h.sample(t0 + 7200, 1, 4, 8);
        let v = h.to_json();
        assert_eq!(v["connections"][MINUTES - 1], 1);
        assert!(v["broadcasts"].as_array().unwrap().iter().all(|x| x == 0));
    }

    #[test]
    fn without_viewers_nothing_is_sent_and_a_slow_viewer_lags() {
        let tap = Arc::new(Tap::default());
        assert!(!tap.active());
        tap.quota_refused("r", "m");
        let mut v = tap.watch();
        assert!(tap.active());
        for _ in 0..QUEUE + 5 {
            tap.quota_refused("r", "m");
        }
        match v.rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 5),
            other => panic!("expected a lag, got {other:?}"),
        }
        drop(v);
        assert!(!tap.active());
    }

    #[test]
    fn long_data_is_cut_on_a_character_boundary() {
        let s = "é".repeat(MAX_DATA);
        let c = cut(&s);
        assert!(c.len() < MAX_DATA + 40);
        assert!(c.ends_with(&format!("({} bytes)", s.len())));
    }
}
