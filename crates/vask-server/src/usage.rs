//! Each app's usage and quotas on this node: the hub's [`Meter`] over
//! [`pusher_hub::Usage`] with the wall clock, the API rate limit, the
//! cluster's figures as the other nodes report them, and the
//! `GET /apps/{id}/usage` answer.
//!
//! Where counting happens: broadcasts when the hub admits a publish (one
//! call per request or client event), deliveries when the hub has fanned
//! one out (the count it reports, never per recipient), API requests when
//! a signed request passes the rate limit (`api.rs`), bytes when a
//! connection's writer has written them (`ws.rs`), peak connections on
//! every connect and every second. All of it is atomics on the app's
//! counters; the figures of other nodes sit behind a lock that only the
//! cluster driver (once a second) and usage requests take.
//!
//! Durability seam: a store (a database) keeps each node's
//! [`AppUsage::snapshot`] under the node's id, written in batches away from
//! the publish path, and at start gives every kept row back through
//! [`AppUsage::merge`] (never into this node's own counters, so that no
//! figure is counted twice when several nodes restore the same rows).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pusher_hub::{
    ClusterUsage, Counts, Meter, NodeId, QuotaExceeded, Quotas, Usage, UsageReport, rfc3339,
};
use serde::Serialize;

use crate::config::{AppConfig, AppLimits};
use crate::metrics::AppMetrics;

/// The wall clock, in Unix seconds (UTC).
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds between two log lines about the same refusal of the same app.
const LOG_EVERY_SECS: u64 = 60;

/// Logs a kind of refusal at most once a minute, with how many there were.
#[derive(Debug, Default)]
struct RefusalLog {
    /// When it was last logged (Unix seconds; 0: never).
    last: AtomicU64,
    /// Refusals since.
    since: AtomicU64,
}

impl RefusalLog {
    fn refused(&self, app: &str, reason: &str, message: &str, now: u64) {
        self.since.fetch_add(1, Ordering::Relaxed);
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now >= last + LOG_EVERY_SECS)
            && self
                .last
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.since.swap(0, Ordering::Relaxed);
            tracing::warn!(
                app,
                quota = reason,
                refused,
                "{message} (refusals of this app and quota are logged at most once a minute; vask_quota_refused_total counts them all)"
            );
        }
    }
}

/// One app's usage on this node, and what it knows of the others'.
#[derive(Debug)]
pub struct AppUsage {
    app: String,
    usage: Usage,
    /// The quotas in force (0: none), changeable while the app runs.
    max_broadcasts_per_day: AtomicU64,
    max_broadcasts_per_month: AtomicU64,
    max_api_requests_per_sec: AtomicU64,
    /// The Unix second the rate window counts, and its requests.
    window: AtomicU64,
    window_requests: AtomicU64,
    /// The other nodes' latest reports.
    others: Mutex<ClusterUsage>,
    metrics: AppMetrics,
    /// Day quota, month quota, API rate, connections.
    logs: [RefusalLog; 4],
}

/// A `GET /apps/{id}/usage` answer.
#[derive(Debug, Serialize)]
struct UsageBody {
    day: PeriodBody,
    month: PeriodBody,
}

#[derive(Debug, Serialize)]
struct PeriodBody {
    start: String,
    #[serde(flatten)]
    counts: Counts,
}

impl AppUsage {
    /// Empty counters for `app`'s current day and month.
    pub fn new(app: &AppConfig, metrics: AppMetrics) -> Self {
        let u = Self {
            app: app.id.clone(),
            usage: Usage::new(now_unix()),
            max_broadcasts_per_day: AtomicU64::new(0),
            max_broadcasts_per_month: AtomicU64::new(0),
            max_api_requests_per_sec: AtomicU64::new(0),
            window: AtomicU64::new(0),
            window_requests: AtomicU64::new(0),
            others: Mutex::new(ClusterUsage::default()),
            metrics,
            logs: Default::default(),
        };
        u.set_limits(&app.limits);
        u
    }

    /// Applies changed quotas to what comes next (the counts stay).
    pub fn set_limits(&self, l: &AppLimits) {
        let store = |a: &AtomicU64, v: Option<u64>| a.store(v.unwrap_or(0), Ordering::Release);
        store(&self.max_broadcasts_per_day, l.max_broadcasts_per_day);
        store(&self.max_broadcasts_per_month, l.max_broadcasts_per_month);
        store(
            &self.max_api_requests_per_sec,
            l.max_api_requests_per_sec.map(u64::from),
        );
    }

    fn quotas(&self) -> Quotas {
        let load = |a: &AtomicU64| Some(a.load(Ordering::Acquire)).filter(|&v| v > 0);
        Quotas {
            max_broadcasts_per_day: load(&self.max_broadcasts_per_day),
            max_broadcasts_per_month: load(&self.max_broadcasts_per_month),
        }
    }

    /// This node's counters (for [`Usage::snapshot`] and
    /// [`Usage::restore`] by a store that keeps them).
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Admits and counts one signed API request, unless the app is over
    /// `max_api_requests_per_sec` on this node.
    ///
    /// # Errors
    /// Over the rate: the limit, and the seconds to wait (`Retry-After`).
    pub(crate) fn api_request(&self) -> Result<(), (u64, u64)> {
        let now = now_unix();
        let max = self.max_api_requests_per_sec.load(Ordering::Acquire);
        if max > 0 {
            let w = self.window.load(Ordering::Acquire);
            if w != now
                && self
                    .window
                    .compare_exchange(w, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                self.window_requests.store(0, Ordering::Release);
            }
            if self.window_requests.fetch_add(1, Ordering::AcqRel) >= max {
                let message =
                    format!("Rate limit exceeded: max_api_requests_per_sec is {max} on this node");
                self.refused(2, "max_api_requests_per_sec", &message, now);
                return Err((max, 1));
            }
        }
        self.usage.api_request(now);
        self.metrics.api_requests.inc();
        Ok(())
    }

    /// Counts (and logs, at most once a minute) a connection refused with
    /// 4004 over `max_connections`.
    pub(crate) fn connection_refused(&self) {
        self.refused(
            3,
            "max_connections",
            "Connection refused with 4004: the app is at max_connections",
            now_unix(),
        );
    }

    /// Counts bytes written to one of the app's connections.
    pub(crate) fn bytes_out(&self, bytes: u64) {
        self.usage.bytes_out(bytes, now_unix());
    }

    /// Records the connections open in the cluster now, for the peak.
    pub(crate) fn connections(&self, open: usize) {
        self.usage.connections(open as u64, now_unix());
    }

    /// This node's figures of the current periods: what it reports to the
    /// others, and what a store keeps (under this node's id).
    pub fn snapshot(&self) -> UsageReport {
        self.usage.snapshot(now_unix())
    }

    /// Takes in another node's report, and updates what the quotas see of
    /// the others. Idempotent and order-independent: a store restores what
    /// it kept of every node (earlier runs of this one included, which have
    /// other ids) through here.
    pub fn merge(&self, from: NodeId, report: &UsageReport) {
        let now = now_unix();
        let mut others = self.others.lock();
        others.merge(from, report);
        others.prune(now);
        self.usage.set_others(&others.others(now));
    }

    /// The latest report of every other node, dead ones included.
    pub(crate) fn kept(&self) -> Vec<(NodeId, UsageReport)> {
        self.others
            .lock()
            .nodes()
            .map(|(n, r)| (n.clone(), *r))
            .collect()
    }

    /// The cluster's figures: this node's and the latest of every other
    /// node (dead ones included).
    pub fn total(&self) -> UsageReport {
        let now = now_unix();
        let own = self.usage.snapshot(now);
        self.others.lock().total(&own, now)
    }

    /// The JSON body of `GET /apps/{id}/usage` (for the admin API too).
    pub fn body(&self) -> Vec<u8> {
        let t = self.total();
        let period = |p: pusher_hub::PeriodCounts| PeriodBody {
            start: rfc3339(p.start),
            counts: p.counts,
        };
        let body = UsageBody {
            day: period(t.day),
            month: period(t.month),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn refused(&self, log: usize, reason: &str, message: &str, now: u64) {
        self.metrics.quota_refused(reason);
        self.metrics.console.quota_refused(reason, message);
        self.logs[log].refused(&self.app, reason, message, now);
    }
}

impl Meter for AppUsage {
    fn admit(&self, broadcasts: u64) -> Result<(), QuotaExceeded> {
        let now = now_unix();
        match self.usage.admit(broadcasts, &self.quotas(), now) {
            Ok(()) => {
                self.metrics.broadcasts.inc_by(broadcasts);
                Ok(())
            }
            Err(e) => {
                let log = match e {
                    QuotaExceeded::BroadcastsPerDay { .. } => 0,
                    _ => 1,
                };
                self.refused(log, e.reason(), &e.to_string(), now);
                Err(e)
            }
        }
    }

    fn delivered(&self, copies: u64) {
        self.usage.delivered(copies, now_unix());
        self.metrics.broadcast_deliveries.inc_by(copies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(
        f: impl FnOnce(&mut crate::config::AppLimits),
    ) -> (AppUsage, std::sync::Arc<crate::metrics::Metrics>) {
        let mut c = AppConfig::development();
        f(&mut c.limits);
        let m = std::sync::Arc::new(crate::metrics::Metrics::default());
        (AppUsage::new(&c, m.app(&c.id)), m)
    }

    #[test]
    fn the_answer_has_the_documented_shape() {
        let (u, _) = app(|_| {});
        u.admit(3).unwrap();
        u.delivered(9);
        u.api_request().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&u.body()).unwrap();
        let text = String::from_utf8(u.body()).unwrap();
        assert!(
            text.starts_with(r#"{"day":{"start":""#) && text.contains(r#"T00:00:00Z","broadcasts":3,"deliveries":9,"peak_connections":0,"api_requests":1,"bytes_out":0}"#),
            "{text}"
        );
        assert!(
            v["month"]["start"]
                .as_str()
                .unwrap()
                .ends_with("-01T00:00:00Z")
        );
        assert_eq!(v["month"]["broadcasts"], 3);
    }

    #[test]
    fn kept_figures_come_back_through_merge_once() {
        let (before, _) = app(|_| {});
        before.admit(4).unwrap();
        before.delivered(8);
        let kept = before.snapshot();
        // The next run (another node id) restores what the store kept, as
        // often as it likes: counted once, and against the quota.
        let (after, _) = app(|l| l.max_broadcasts_per_day = Some(5));
        for _ in 0..3 {
            after.merge(NodeId::new("node", 1), &kept);
        }
        after.admit(1).unwrap();
        let t = after.total();
        assert_eq!((t.day.counts.broadcasts, t.day.counts.deliveries), (5, 8));
        assert_eq!(after.snapshot().day.counts.broadcasts, 1);
        assert!(after.admit(1).is_err());
    }

    #[test]
    fn the_api_rate_is_per_second() {
        let (u, m) = app(|l| l.max_api_requests_per_sec = Some(3));
        // Within one second (or two, should the clock tick between calls):
        // a fourth request in the same second is refused with 1 s to wait.
        let mut refused = 0;
        for _ in 0..7 {
            if let Err((max, wait)) = u.api_request() {
                assert_eq!((max, wait), (3, 1));
                refused += 1;
            }
        }
        assert!(refused >= 1, "7 requests, at most 6 over two seconds");
        // Lifted while running: every request passes.
        u.set_limits(&AppLimits::default());
        for _ in 0..7 {
            u.api_request().unwrap();
        }
        let m = m.encode();
        assert!(
            m.contains(r#"vask_quota_refused_total{app="1",reason="max_api_requests_per_sec"}"#),
            "{m}"
        );
    }
}
