//! Period rollover, quotas, cluster merges: unit tests and properties.

use super::*;
use proptest::prelude::*;

/// Unix seconds of a UTC date and time.
fn at(y: u64, mo: u64, d: u64, h: u64, mi: u64, s: u64) -> u64 {
    days_from_civil(y, mo, d) * DAY_SECS + h * 3600 + mi * 60 + s
}

#[test]
fn calendar() {
    assert_eq!(at(1970, 1, 1, 0, 0, 0), 0);
    assert_eq!(at(2026, 12, 1, 0, 0, 0), 1_796_083_200);
    assert_eq!(rfc3339(1_796_083_200), "2026-12-01T00:00:00Z");
    assert_eq!(rfc3339(at(2024, 2, 29, 23, 59, 59)), "2024-02-29T23:59:59Z");
    for days in (0..200_000).step_by(7) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}

#[test]
fn period_starts() {
    let t = at(2026, 12, 17, 13, 5, 9);
    assert_eq!(rfc3339(Span::Day.start(t)), "2026-12-17T00:00:00Z");
    assert_eq!(rfc3339(Span::Month.start(t)), "2026-12-01T00:00:00Z");
    // Last second of a leap February, first of March.
    let feb = at(2028, 2, 29, 23, 59, 59);
    assert_eq!(rfc3339(Span::Month.start(feb)), "2028-02-01T00:00:00Z");
    assert_eq!(rfc3339(Span::Month.start(feb + 1)), "2028-03-01T00:00:00Z");
    assert_eq!(rfc3339(Span::Day.start(feb + 1)), "2028-03-01T00:00:00Z");
    // New year.
    let eve = at(2026, 12, 31, 23, 59, 59);
    assert_eq!(rfc3339(Span::Month.start(eve + 1)), "2027-01-01T00:00:00Z");
    assert_eq!(rfc3339(Span::Month.end(eve)), "2027-01-01T00:00:00Z");
    assert_eq!(rfc3339(Span::Day.end(eve)), "2027-01-01T00:00:00Z");
    assert_eq!(rfc3339(Span::Month.end(feb)), "2028-03-01T00:00:00Z");
    assert_eq!(rfc3339(Span::Month.end(feb + 1)), "2028-04-01T00:00:00Z");
}

#[test]
fn day_rolls_over_at_utc_midnight_and_month_at_the_first() {
    let quotas = Quotas::default();
    let t = at(2026, 12, 31, 23, 59, 58);
    let u = Usage::new(t);
    u.admit(2, &quotas, t).unwrap();
    u.delivered(6, t);
    u.api_request(t + 1);
    u.bytes_out(100, t + 1);
    u.connections(3, t + 1);
    let s = u.snapshot(t + 1);
    assert_eq!(
        s.day.counts,
        Counts {
            broadcasts: 2,
            deliveries: 6,
            peak_connections: 3,
            api_requests: 1,
            bytes_out: 100
        }
    );
    assert_eq!(
        s.month,
        PeriodCounts {
            start: at(2026, 12, 1, 0, 0, 0),
            ..s.day
        }
    );
    // Midnight, new year: both periods start again.
    let ny = t + 2;
    u.admit(1, &quotas, ny).unwrap();
    let s = u.snapshot(ny);
    assert_eq!(rfc3339(s.day.start), "2027-01-01T00:00:00Z");
    assert_eq!(rfc3339(s.month.start), "2027-01-01T00:00:00Z");
    assert_eq!(s.day.counts.broadcasts, 1);
    assert_eq!(s.month.counts.broadcasts, 1);
    assert_eq!(s.day.counts.deliveries, 0);
    // Next midnight: the day starts again, the month goes on.
    let next = at(2027, 1, 2, 0, 0, 0);
    u.admit(1, &quotas, next).unwrap();
    let s = u.snapshot(next);
    assert_eq!(s.day.counts.broadcasts, 1);
    assert_eq!(s.month.counts.broadcasts, 2);
    // A clock stepping back does not roll anything back.
    u.admit(1, &quotas, next - 5).unwrap();
    let s = u.snapshot(next);
    assert_eq!((s.day.counts.broadcasts, s.month.counts.broadcasts), (2, 3));
}

#[test]
fn quotas_hold_at_the_exact_boundary_all_or_nothing() {
    let t = at(2026, 12, 5, 10, 0, 0);
    let u = Usage::new(t);
    let q = Quotas {
        max_broadcasts_per_day: Some(5),
        max_broadcasts_per_month: Some(7),
    };
    u.admit(3, &q, t).unwrap();
    // 3 + 3 > 5: refused whole.
    assert_eq!(
        u.admit(3, &q, t),
        Err(QuotaExceeded::BroadcastsPerDay { max: 5 })
    );
    u.admit(2, &q, t).unwrap();
    assert_eq!(
        u.admit(1, &q, t),
        Err(QuotaExceeded::BroadcastsPerDay { max: 5 })
    );
    // Next day: 5 in the month, 2 more fit, the third crosses the month.
    let t2 = t + DAY_SECS;
    u.admit(2, &q, t2).unwrap();
    let e = u.admit(1, &q, t2).unwrap_err();
    assert_eq!(e, QuotaExceeded::BroadcastsPerMonth { max: 7 });
    assert_eq!(e.reason(), "max_broadcasts_per_month");
    // The refused month left the day untouched.
    assert_eq!(u.snapshot(t2).day.counts.broadcasts, 2);
    // Other nodes' broadcasts count against the quota.
    let t3 = at(2027, 1, 1, 0, 0, 0);
    let mut others = UsageReport::default().current(t3);
    others.day.counts.broadcasts = 4;
    u.set_others(&others);
    u.admit(1, &q, t3).unwrap();
    assert!(u.admit(1, &q, t3).is_err());
    // Reports of another day do not.
    let t4 = t3 + DAY_SECS;
    u.admit(4, &q, t4).unwrap();
    assert_eq!(
        QuotaExceeded::BroadcastsPerDay { max: 5 }.to_string(),
        "Quota exceeded: max_broadcasts_per_day is 5 broadcasts per UTC day"
    );
}

#[test]
fn concurrent_admits_never_pass_the_quota() {
    let t = at(2026, 12, 5, 10, 0, 0);
    let u = std::sync::Arc::new(Usage::new(t));
    let q = Quotas {
        max_broadcasts_per_day: Some(1000),
        max_broadcasts_per_month: Some(1500),
    };
    let admitted: u64 = (0..4)
        .map(|_| {
            let u = u.clone();
            std::thread::spawn(move || {
                (0..1000)
                    .filter(|i| u.admit(1 + i % 3, &q, t).is_ok())
                    .map(|i| 1 + i % 3)
                    .sum::<u64>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    let s = u.snapshot(t);
    assert_eq!(s.day.counts.broadcasts, admitted);
    assert_eq!(s.month.counts.broadcasts, admitted);
    assert!((998..=1000).contains(&admitted), "{admitted}");
}

#[test]
fn snapshot_and_restore_keep_the_current_periods() {
    let t = at(2026, 12, 5, 10, 0, 0);
    let a = Usage::new(t);
    a.admit(4, &Quotas::default(), t).unwrap();
    a.api_request(t);
    let kept = a.snapshot(t);
    let b = Usage::new(t + 60);
    b.admit(1, &Quotas::default(), t + 60).unwrap();
    b.restore(&kept, t + 60);
    let s = b.snapshot(t + 60);
    assert_eq!(
        (s.day.counts.broadcasts, s.month.counts.api_requests),
        (5, 1)
    );
    // Kept figures of yesterday count in the month only.
    let c = Usage::new(t + DAY_SECS);
    c.restore(&kept, t + DAY_SECS);
    let s = c.snapshot(t + DAY_SECS);
    assert_eq!((s.day.counts.broadcasts, s.month.counts.broadcasts), (0, 4));
}

#[test]
fn dead_nodes_stay_in_the_totals_of_their_periods() {
    let t = at(2026, 12, 5, 10, 0, 0);
    let mut c = ClusterUsage::default();
    let mut r = UsageReport::default().current(t);
    r.day.counts.broadcasts = 3;
    r.month.counts.broadcasts = 10;
    r.day.counts.peak_connections = 4;
    c.merge(NodeId::new("a", 1), &r);
    let own = {
        let mut o = UsageReport::default().current(t);
        o.day.counts.broadcasts = 2;
        o.day.counts.peak_connections = 5;
        o
    };
    let total = c.total(&own, t + 3600);
    assert_eq!(total.day.counts.broadcasts, 5);
    assert_eq!(total.day.counts.peak_connections, 5);
    assert_eq!(total.month.counts.broadcasts, 10);
    // Tomorrow the dead node still counts in the month.
    let total = c.total(&UsageReport::default(), t + DAY_SECS);
    assert_eq!(total.day.counts.broadcasts, 0);
    assert_eq!(total.month.counts.broadcasts, 10);
    c.prune(at(2027, 1, 1, 0, 0, 0));
    assert_eq!(c.others(t).month.counts.broadcasts, 0);
}

#[test]
fn wire_form() {
    let r = UsageReport {
        day: PeriodCounts {
            start: 86_400,
            counts: Counts {
                broadcasts: 1,
                ..Counts::default()
            },
        },
        month: PeriodCounts::default(),
    };
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains(r#""day":{"start":86400,"broadcasts":1,"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<UsageReport>(&json).unwrap(), r);
}

fn report() -> impl Strategy<Value = (u8, UsageReport)> {
    let counts = (0..50u64, 0..500u64, 0..20u64, 0..50u64, 0..5000u64).prop_map(
        |(broadcasts, deliveries, peak_connections, api_requests, bytes_out)| Counts {
            broadcasts,
            deliveries,
            peak_connections,
            api_requests,
            bytes_out,
        },
    );
    let period = (0..3u64, counts).prop_map(|(d, counts)| PeriodCounts {
        start: d * DAY_SECS,
        counts,
    });
    (0..4u8, period.clone(), period)
        .prop_map(|(node, day, month)| (node, UsageReport { day, month }))
}

proptest! {
    /// Whatever the sizes asked, admitted broadcasts never pass the
    /// quota, and a request is refused only when it would.
    #[test]
    fn quotas_are_exact(asks in proptest::collection::vec(1..6u64, 1..60), max in 1..40u64) {
        let t = at(2026, 12, 9, 8, 0, 0);
        let u = Usage::new(t);
        let q = Quotas { max_broadcasts_per_day: Some(max), max_broadcasts_per_month: None };
        let mut count = 0;
        for n in asks {
            let ok = u.admit(n, &q, t).is_ok();
            prop_assert_eq!(ok, count + n <= max);
            if ok {
                count += n;
            }
            prop_assert_eq!(u.snapshot(t).day.counts.broadcasts, count);
        }
    }

    /// Over any increasing times, a day counts what fell in it and a
    /// month what fell in it.
    #[test]
    fn periods_count_what_falls_in_them(steps in proptest::collection::vec((0..40_000u64, 1..4u64), 1..80)) {
        let mut t = at(2027, 1, 30, 20, 0, 0);
        let u = Usage::new(t);
        let mut days: BTreeMap<u64, u64> = BTreeMap::new();
        let mut months: BTreeMap<u64, u64> = BTreeMap::new();
        for (dt, n) in steps {
            t += dt;
            u.admit(n, &Quotas::default(), t).unwrap();
            *days.entry(Span::Day.start(t)).or_default() += n;
            *months.entry(Span::Month.start(t)).or_default() += n;
            let s = u.snapshot(t);
            prop_assert_eq!(s.day.counts.broadcasts, days[&Span::Day.start(t)]);
            prop_assert_eq!(s.month.counts.broadcasts, months[&Span::Month.start(t)]);
        }
    }

    /// Merging per-node reports gives the same totals whatever their
    /// order and however often each arrives.
    #[test]
    fn merging_is_order_independent(
        reports in proptest::collection::vec(report(), 0..24),
        seed in any::<u64>(),
        now_day in 0..3u64,
    ) {
        let now = now_day * DAY_SECS + 5;
        let mut a = ClusterUsage::default();
        for (n, r) in &reports {
            a.merge(NodeId::new("n", u64::from(*n)), r);
        }
        // Another order (a seeded shuffle), with repetitions.
        let mut shuffled: Vec<_> = reports.iter().chain(reports.iter().take(5)).collect();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut b = ClusterUsage::default();
        for (n, r) in shuffled {
            b.merge(NodeId::new("n", u64::from(*n)), r);
        }
        prop_assert_eq!(a.others(now), b.others(now));
    }
}
