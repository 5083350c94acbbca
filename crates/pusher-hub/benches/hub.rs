//! Hub benchmarks: fan-out cost per delivery, subscription churn, connect and
//! disconnect, hub memory per idle connection, and two threads at once.
//!
//! Run: `cargo bench -p pusher-hub --bench hub`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parking_lot::Mutex;
use pusher_hub::{Full, Hub, HubConfig, Millis, Outbox, Publish, Session};
use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelName, ErrorCode};

/// Like the server's per-connection queue: a bounded deque behind a small
/// lock. `drain` empties it outside the timed region.
struct Queue(Mutex<VecDeque<Bytes>>);

impl Outbox for Queue {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        let mut q = self.0.lock();
        if q.len() >= 256 {
            return Err(Full);
        }
        q.push_back(frame);
        Ok(())
    }
    fn close(&self, _: ErrorCode) {}
}

/// Counts frames and drops them: the hub's own cost, without a queue.
struct Counter(AtomicU64);

impl Outbox for Counter {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        drop(frame);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn close(&self, _: ErrorCode) {}
}

/// A moment, in milliseconds.
fn ms(n: u64) -> Millis {
    Millis::from_millis(n)
}

fn hub() -> Arc<Hub> {
    Arc::new(Hub::new(HubConfig::new("1", "key", "secret")))
}

fn subscribe(s: &mut Session, channel: &str) {
    let f = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#);
    let _ = s.handle_text(f.as_bytes(), ms(0));
}

const DATA: &str = r#"{"message":"hello world","user":"someone","n":12345}"#;

fn publish_once(hub: &Hub, names: &[ChannelName]) -> u64 {
    let p = Publish {
        channels: names,
        event: "message",
        data: DATA,
        except: None,
        info: InfoRequest::default(),
    };
    hub.publish(&p, ms(0)).delivery.delivered
}

fn fanout(c: &mut Criterion) {
    let n = 10_000;
    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(n));

    let h = hub();
    let counter = Arc::new(Counter(AtomicU64::new(0)));
    let sessions: Vec<Session> = (0..n)
        .map(|_| {
            let mut s = h.connect(counter.clone(), ms(0)).unwrap();
            subscribe(&mut s, "bench");
            s
        })
        .collect();
    let names = [ChannelName::new("bench").unwrap()];
    g.bench_function("counting_outbox", |b| {
        b.iter(|| black_box(publish_once(&h, &names)))
    });
    drop(sessions);

    let h = hub();
    let queues: Vec<Arc<Queue>> = (0..n)
        .map(|_| Arc::new(Queue(Mutex::new(VecDeque::with_capacity(8)))))
        .collect();
    let sessions: Vec<Session> = queues
        .iter()
        .map(|q| {
            let mut s = h.connect(q.clone(), ms(0)).unwrap();
            subscribe(&mut s, "bench");
            s
        })
        .collect();
    g.bench_function("queue_outbox", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                black_box(publish_once(&h, &names));
                total += t.elapsed();
                for q in &queues {
                    q.0.lock().clear();
                }
            }
            total
        })
    });
    drop(sessions);
    g.finish();
}

fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("churn");
    let h = hub();
    let counter = Arc::new(Counter(AtomicU64::new(0)));
    let mut sessions: Vec<Session> = (0..1000)
        .map(|_| h.connect(counter.clone(), ms(0)).unwrap())
        .collect();
    let subs: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"event":"pusher:subscribe","data":{{"channel":"ch-{}"}}}}"#,
                i % 100
            )
            .into_bytes()
        })
        .collect();
    let unsubs: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"event":"pusher:unsubscribe","data":{{"channel":"ch-{}"}}}}"#,
                i % 100
            )
            .into_bytes()
        })
        .collect();
    g.throughput(Throughput::Elements(2000));
    g.bench_function("subscribe_unsubscribe_1000", |b| {
        b.iter(|| {
            for (i, s) in sessions.iter_mut().enumerate() {
                let _ = s.handle_text(&subs[i], ms(0));
            }
            for (i, s) in sessions.iter_mut().enumerate() {
                let _ = s.handle_text(&unsubs[i], ms(0));
            }
        })
    });
    drop(sessions);

    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("connect_subscribe_disconnect_100k", |b| {
        b.iter(|| {
            let sessions: Vec<Session> = (0..100_000)
                .map(|i| {
                    let mut s = h.connect(counter.clone(), ms(0)).unwrap();
                    let _ = s.handle_text(&subs[i % 1000], ms(0));
                    s
                })
                .collect();
            for s in sessions {
                s.close(ms(0));
            }
        })
    });
    g.finish();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Not a timing: prints the hub's resident memory per idle connection with
/// one subscription (100,000 connections over 1,000 channels).
fn memory(_: &mut Criterion) {
    let h = hub();
    let before = rss_bytes();
    let outboxes: Vec<Arc<Counter>> = (0..100_000)
        .map(|_| Arc::new(Counter(AtomicU64::new(0))))
        .collect();
    let after_outboxes = rss_bytes();
    let sessions: Vec<Session> = outboxes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut s = h.connect(o.clone(), ms(0)).unwrap();
            subscribe(&mut s, &format!("ch-{}", i % 1000));
            s
        })
        .collect();
    let after = rss_bytes();
    println!(
        "memory: hub {} bytes per idle connection with one subscription (outbox stand-ins {} bytes each, not counted)",
        (after - after_outboxes) / 100_000,
        (after_outboxes - before) / 100_000
    );
    drop(sessions);
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    let per = 1000;
    let h = hub();
    // One outbox per connection, as in the server: a shared counter would
    // measure cache-line ping-pong between the threads, not the hub.
    let sessions: Vec<Session> = (0..2 * per)
        .map(|i| {
            let mut s = h
                .connect(Arc::new(Counter(AtomicU64::new(0))), ms(0))
                .unwrap();
            subscribe(&mut s, if i % 2 == 0 { "left" } else { "right" });
            s
        })
        .collect();
    let left = [ChannelName::new("left").unwrap()];
    let right = [ChannelName::new("right").unwrap()];
    let rounds = 100;
    g.throughput(Throughput::Elements((2 * rounds * per) as u64));
    g.bench_function("one_thread_both_channels", |b| {
        b.iter(|| {
            for _ in 0..rounds {
                publish_once(&h, &left);
                publish_once(&h, &right);
            }
        })
    });
    g.bench_function("two_threads_one_channel_each", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    (0..rounds).for_each(|_| {
                        black_box(publish_once(&h, &left));
                    })
                });
                s.spawn(|| {
                    (0..rounds).for_each(|_| {
                        black_box(publish_once(&h, &right));
                    })
                });
            })
        })
    });
    g.bench_function("two_threads_same_channel", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    (0..rounds).for_each(|_| {
                        black_box(publish_once(&h, &left));
                    })
                });
                s.spawn(|| {
                    (0..rounds).for_each(|_| {
                        black_box(publish_once(&h, &left));
                    })
                });
            })
        })
    });
    drop(sessions);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = memory, fanout, churn, two_threads
}
criterion_main!(benches);
