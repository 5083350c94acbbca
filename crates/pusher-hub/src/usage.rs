//! Usage as Vask bills it: per app, per UTC day and per UTC calendar month,
//! broadcasts (one event published to one channel, whatever the number of
//! recipients), deliveries (the copies fan-out sent), peak concurrent
//! connections, API requests and bytes sent; and the broadcast quotas
//! checked against them.
//!
//! No clock: every call takes the wall-clock time as `now` (Unix seconds,
//! UTC) from the driver. Counting is a few atomic operations on the app's
//! [`Usage`]: no lock, and nothing per recipient (a publish adds the number
//! of copies its fan-out reports). A period rolls over on the first count
//! that falls in the next one.
//!
//! In a cluster each node sends its own counts of the current periods
//! ([`UsageReport`], absolute values) every second or so; every node keeps
//! the latest report of every other node, dead ones included, in a
//! [`ClusterUsage`], and answers with the sum. Reports are merged field by
//! field with `max` for the same period (counts only grow within a period),
//! so the order and repetition of reports do not matter.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::cluster::NodeId;

const DAY_SECS: u64 = 86_400;

/// A billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl Span {
    /// The start (Unix seconds) of the period that holds `now`.
    pub fn start(self, now: u64) -> u64 {
        let days = now / DAY_SECS;
        match self {
            Self::Day => days * DAY_SECS,
            Self::Month => {
                let (y, m, _) = civil_from_days(days);
                days_from_civil(y, m, 1) * DAY_SECS
            }
        }
    }
}

impl Span {
    /// The start of the period after the one that holds `now`.
    pub fn end(self, now: u64) -> u64 {
        match self {
            Self::Day => self.start(now) + DAY_SECS,
            Self::Month => {
                let (y, m, _) = civil_from_days(now / DAY_SECS);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_SECS
            }
        }
    }
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01: the
/// proleptic Gregorian calendar, in eras of 400 years.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the origin to 0000-03-01 so that leap days end each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days from 1970-01-01 to (year, month, day), for years from 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-01T00:00:00Z` for a Unix time.
pub fn rfc3339(t: u64) -> String {
    let (y, m, d) = civil_from_days(t / DAY_SECS);
    let s = t % DAY_SECS;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The figures of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events published to one channel each (API events per channel, batch
    /// items, client events).
    pub broadcasts: u64,
    /// Copies sent to connections by those broadcasts.
    pub deliveries: u64,
    /// Most connections open at once.
    pub peak_connections: u64,
    /// Signed HTTP API requests.
    pub api_requests: u64,
    /// Bytes written to the app's connections.
    pub bytes_out: u64,
}

impl Counts {
    /// The same node's figures, later or earlier: each the larger (counts
    /// only grow within a period).
    fn latest(self, o: Self) -> Self {
        Self {
            broadcasts: self.broadcasts.max(o.broadcasts),
            deliveries: self.deliveries.max(o.deliveries),
            peak_connections: self.peak_connections.max(o.peak_connections),
            api_requests: self.api_requests.max(o.api_requests),
            bytes_out: self.bytes_out.max(o.bytes_out),
        }
    }

    /// Two nodes' figures together: sums, and the larger peak (each node's
    /// peak already counts the whole cluster's connections as it knew them).
    fn plus(self, o: Self) -> Self {
        Self {
            broadcasts: self.broadcasts.saturating_add(o.broadcasts),
            deliveries: self.deliveries.saturating_add(o.deliveries),
            peak_connections: self.peak_connections.max(o.peak_connections),
            api_requests: self.api_requests.saturating_add(o.api_requests),
            bytes_out: self.bytes_out.saturating_add(o.bytes_out),
        }
    }
}

/// One period's figures and its start (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodCounts {
    /// The period's first second.
    pub start: u64,
    /// Its figures.
    #[serde(flatten)]
    pub counts: Counts,
}

impl PeriodCounts {
    /// Keeps the later period, or the larger figures of the same period.
    fn merge(&mut self, o: Self) {
        if o.start > self.start {
            *self = o;
        } else if o.start == self.start {
            self.counts = self.counts.latest(o.counts);
        }
    }

    /// The figures if this is the period starting at `start`, else zeros.
    fn at(&self, start: u64) -> Counts {
        if self.start == start {
            self.counts
        } else {
            Counts::default()
        }
    }
}

/// What a node counted in the current day and month: what it tells the
/// others, and what [`Usage::snapshot`] gives to be kept elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The UTC day.
    pub day: PeriodCounts,
    /// The UTC calendar month.
    pub month: PeriodCounts,
}

impl UsageReport {
    /// Keeps, per period, the later one or the larger figures.
    pub fn merge(&mut self, o: &Self) {
        self.day.merge(o.day);
        self.month.merge(o.month);
    }

    /// The day and month holding `now`, with zeros where this report is
    /// of an older period.
    pub fn current(&self, now: u64) -> Self {
        let (day, month) = (Span::Day.start(now), Span::Month.start(now));
        Self {
            day: PeriodCounts {
                start: day,
                counts: self.day.at(day),
            },
            month: PeriodCounts {
                start: month,
                counts: self.month.at(month),
            },
        }
    }

    /// Both reports together (the same periods assumed, as
    /// [`UsageReport::current`] gives them).
    fn plus(&self, o: &Self) -> Self {
        Self {
            day: PeriodCounts {
                start: self.day.start,
                counts: self.day.counts.plus(o.day.counts),
            },
            month: PeriodCounts {
                start: self.month.start,
                counts: self.month.counts.plus(o.month.counts),
            },
        }
    }
}

/// Broadcast quotas of an app; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Broadcasts per UTC day.
    pub max_broadcasts_per_day: Option<u64>,
    /// Broadcasts per UTC calendar month.
    pub max_broadcasts_per_month: Option<u64>,
}

/// Broadcasts refused because a quota would be crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaExceeded {
    /// `max_broadcasts_per_day`.
    #[error("Quota exceeded: max_broadcasts_per_day is {max} broadcasts per UTC day")]
    BroadcastsPerDay {
        /// The quota.
        max: u64,
    },
    /// `max_broadcasts_per_month`.
    #[error("Quota exceeded: max_broadcasts_per_month is {max} broadcasts per UTC month")]
    BroadcastsPerMonth {
        /// The quota.
        max: u64,
    },
}

impl QuotaExceeded {
    /// The quota's name, for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BroadcastsPerDay { .. } => "max_broadcasts_per_day",
            Self::BroadcastsPerMonth { .. } => "max_broadcasts_per_month",
        }
    }
}

/// What a hub asks and tells about broadcasts: the driver's seam between
/// the hub (which knows what a publish is and how many copies it sent) and
/// the app's [`Usage`] (which needs the wall-clock time the hub never
/// reads). Called once per publish, never per recipient.
pub trait Meter: Send + Sync {
    /// Before `broadcasts` broadcasts are published (all of one request, or
    /// one client event): counts them, or refuses them all.
    ///
    /// # Errors
    /// The quota they would cross; nothing is published.
    fn admit(&self, broadcasts: u64) -> Result<(), QuotaExceeded>;

    /// After a fan-out (of a publish made here or on another node): the
    /// copies it queued.
    fn delivered(&self, copies: u64);
}

/// One period's live counters.
#[derive(Debug)]
struct Period {
    span: Span,
    start: AtomicU64,
    /// The next period's start: before it, counting touches no calendar.
    until: AtomicU64,
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
    peak_connections: AtomicU64,
    api_requests: AtomicU64,
    bytes_out: AtomicU64,
    /// What the other nodes counted in this period (for quotas), as last
    /// told by the driver; `others_start` says which period it is of.
    others_start: AtomicU64,
    others_broadcasts: AtomicU64,
}

impl Period {
    fn new(span: Span, now: u64) -> Self {
        Self {
            span,
            start: AtomicU64::new(span.start(now)),
            until: AtomicU64::new(span.end(now)),
            broadcasts: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            peak_connections: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            others_start: AtomicU64::new(0),
            others_broadcasts: AtomicU64::new(0),
        }
    }

    /// Rolls over to the period holding `now` when it is a later one: one
    /// load when it is not. Counts made by other threads at the very
    /// instant of the rollover may land in either period; a clock that
    /// steps back never rolls a period back.
    fn at(&self, now: u64) -> &Self {
        if now < self.until.load(Ordering::Acquire) {
            return self;
        }
        let start = self.span.start(now);
        let current = self.start.load(Ordering::Acquire);
        if start > current
            && self
                .start
                .compare_exchange(current, start, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for c in [
                &self.broadcasts,
                &self.deliveries,
                &self.peak_connections,
                &self.api_requests,
                &self.bytes_out,
            ] {
                c.store(0, Ordering::Release);
            }
            self.until.store(self.span.end(now), Ordering::Release);
        }
        self
    }

    fn others(&self) -> u64 {
        if self.others_start.load(Ordering::Acquire) == self.start.load(Ordering::Acquire) {
            self.others_broadcasts.load(Ordering::Acquire)
        } else {
            0
        }
    }

    /// Adds `n` broadcasts unless this node's and the others' count would
    /// then be over `max`.
    fn admit(&self, n: u64, max: Option<u64>) -> bool {
        let Some(max) = max else {
            self.broadcasts.fetch_add(n, Ordering::AcqRel);
            return true;
        };
        let others = self.others();
        self.broadcasts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c.saturating_add(others).saturating_add(n) <= max).then_some(c + n)
            })
            .is_ok()
    }

    fn read(&self) -> PeriodCounts {
        PeriodCounts {
            start: self.start.load(Ordering::Acquire),
            counts: Counts {
                broadcasts: self.broadcasts.load(Ordering::Acquire),
                deliveries: self.deliveries.load(Ordering::Acquire),
                peak_connections: self.peak_connections.load(Ordering::Acquire),
                api_requests: self.api_requests.load(Ordering::Acquire),
                bytes_out: self.bytes_out.load(Ordering::Acquire),
            },
        }
    }

    fn add(&self, c: &Counts) {
        self.broadcasts.fetch_add(c.broadcasts, Ordering::AcqRel);
        self.deliveries.fetch_add(c.deliveries, Ordering::AcqRel);
        self.peak_connections
            .fetch_max(c.peak_connections, Ordering::AcqRel);
        self.api_requests
            .fetch_add(c.api_requests, Ordering::AcqRel);
        self.bytes_out.fetch_add(c.bytes_out, Ordering::AcqRel);
    }
}

/// One app's usage on this node: atomics per period, shared by every
/// connection task and request of the app.
#[derive(Debug)]
pub struct Usage {
    day: Period,
    month: Period,
}

impl Usage {
    /// Empty counters for the periods holding `now`.
    pub fn new(now: u64) -> Self {
        Self {
            day: Period::new(Span::Day, now),
            month: Period::new(Span::Month, now),
        }
    }

    fn each(&self, now: u64, f: impl Fn(&Period)) {
        f(self.day.at(now));
        f(self.month.at(now));
    }

    /// Whether nothing was counted in the periods holding `now` (such a
    /// report adds nothing to anybody's totals).
    pub fn is_idle(&self, now: u64) -> bool {
        self.snapshot(now) == UsageReport::default().current(now)
    }

    /// Counts `n` broadcasts if they fit both quotas (with what the other
    /// nodes counted, as last told by [`Usage::set_others`]); all or none.
    ///
    /// # Errors
    /// The quota that `n` more broadcasts would cross; nothing is counted.
    pub fn admit(&self, n: u64, quotas: &Quotas, now: u64) -> Result<(), QuotaExceeded> {
        let (day, month) = (self.day.at(now), self.month.at(now));
        if !day.admit(n, quotas.max_broadcasts_per_day) {
            return Err(QuotaExceeded::BroadcastsPerDay {
                max: quotas.max_broadcasts_per_day.unwrap_or(0),
            });
        }
        if !month.admit(n, quotas.max_broadcasts_per_month) {
            day.broadcasts.fetch_sub(n, Ordering::AcqRel);
            return Err(QuotaExceeded::BroadcastsPerMonth {
                max: quotas.max_broadcasts_per_month.unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Counts copies sent by a fan-out (one call per publish).
    pub fn delivered(&self, copies: u64, now: u64) {
        if copies > 0 {
            self.each(now, |p| {
                p.deliveries.fetch_add(copies, Ordering::AcqRel);
            });
        }
    }

    /// Counts one signed API request.
    pub fn api_request(&self, now: u64) {
        self.each(now, |p| {
            p.api_requests.fetch_add(1, Ordering::AcqRel);
        });
    }

    /// Counts bytes written to the app's connections.
    pub fn bytes_out(&self, bytes: u64, now: u64) {
        self.each(now, |p| {
            p.bytes_out.fetch_add(bytes, Ordering::AcqRel);
        });
    }

    /// Records that `open` connections are open now (the cluster's, as
    /// this node knows them): the peak keeps the largest.
    pub fn connections(&self, open: u64, now: u64) {
        self.each(now, |p| {
            p.peak_connections.fetch_max(open, Ordering::AcqRel);
        });
    }

    /// What the other nodes counted ([`ClusterUsage::others`]), for the
    /// quotas.
    pub fn set_others(&self, others: &UsageReport) {
        for (p, o) in [(&self.day, &others.day), (&self.month, &others.month)] {
            p.others_broadcasts
                .store(o.counts.broadcasts, Ordering::Release);
            p.others_start.store(o.start, Ordering::Release);
        }
    }

    /// This node's figures for the periods holding `now`: what it reports
    /// to the others, and what a store keeps to [`Usage::restore`] later.
    pub fn snapshot(&self, now: u64) -> UsageReport {
        UsageReport {
            day: self.day.at(now).read(),
            month: self.month.at(now).read(),
        }
    }

    /// Adds figures kept from an earlier run (its [`Usage::snapshot`]) to
    /// the periods they are of, if those are the current ones; older
    /// periods are ignored.
    pub fn restore(&self, kept: &UsageReport, now: u64) {
        for (p, k) in [(&self.day, &kept.day), (&self.month, &kept.month)] {
            let p = p.at(now);
            if p.start.load(Ordering::Acquire) == k.start {
                p.add(&k.counts);
            }
        }
    }
}

/// The latest report of every other node for one app, kept when a node
/// dies (its counts stay in the totals of the periods they are of).
#[derive(Debug, Clone, Default)]
pub struct ClusterUsage {
    nodes: BTreeMap<NodeId, UsageReport>,
}

impl ClusterUsage {
    /// Takes in a node's report; any order, any repetition.
    pub fn merge(&mut self, node: NodeId, report: &UsageReport) {
        self.nodes.entry(node).or_default().merge(report);
    }

    /// Every node's latest report.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeId, &UsageReport)> {
        self.nodes.iter()
    }

    /// Forgets nodes whose reports are all of months before the one
    /// holding `now` (so that restarts do not pile up).
    pub fn prune(&mut self, now: u64) {
        let month = Span::Month.start(now);
        self.nodes.retain(|_, r| r.month.start >= month);
    }

    /// The sum of every other node's figures for the periods holding
    /// `now`.
    pub fn others(&self, now: u64) -> UsageReport {
        self.nodes
            .values()
            .fold(UsageReport::default().current(now), |sum, r| {
                sum.plus(&r.current(now))
            })
    }

    /// The cluster's figures: this node's `own` and everybody else's.
    pub fn total(&self, own: &UsageReport, now: u64) -> UsageReport {
        self.others(now).plus(&own.current(now))
    }
}

#[cfg(test)]
mod tests;
