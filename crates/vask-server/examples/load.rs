//! Load tool: measures a running vask-server from the outside.
//!
//! ```text
//! # idle memory: N connections, one subscription each, then read the server's RSS
//! cargo run --release -p vask-server --example load -- idle   --pid PID --conns 10000
//! # fan-out: N subscribers of one channel, publishes as fast as they are delivered
//! cargo run --release -p vask-server --example load -- fanout --conns 10000 --secs 10
//! # signed HTTP publishes per second over keep-alive connections
//! cargo run --release -p vask-server --example load -- publish --http-conns 32 --secs 10
//! ```
//! Options: `--addr 127.0.0.1:6001 --app 1 --key vask-key --secret vask-secret`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

struct Opts {
    mode: String,
    addr: String,
    app: String,
    key: String,
    secret: String,
    conns: usize,
    http_conns: usize,
    secs: u64,
    pid: Option<u32>,
    data_len: usize,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Opts {
        mode: args.first().cloned().unwrap_or_else(|| "fanout".into()),
        addr: get("--addr").unwrap_or_else(|| "127.0.0.1:6001".into()),
        app: get("--app").unwrap_or_else(|| "1".into()),
        key: get("--key").unwrap_or_else(|| "vask-key".into()),
        secret: get("--secret").unwrap_or_else(|| "vask-secret".into()),
        conns: get("--conns")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        http_conns: get("--http-conns")
            .and_then(|v| v.parse().ok())
            .unwrap_or(32),
        secs: get("--secs").and_then(|v| v.parse().ok()).unwrap_or(10),
        pid: get("--pid").and_then(|v| v.parse().ok()),
        data_len: get("--data-len").and_then(|v| v.parse().ok()).unwrap_or(64),
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Opens a connection and subscribes; returns the raw TCP stream (frames are
/// then counted by bytes, so the tool stays cheaper than the server).
async fn subscriber(o: &Opts, channel: &str) -> tokio::net::TcpStream {
    let url = format!("ws://{}/app/{}?protocol=7", o.addr, o.key);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let _established = ws.next().await;
    let sub = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#);
    ws.send(Message::text(sub)).await.unwrap();
    let _succeeded = ws.next().await;
    match ws.into_inner() {
        MaybeTlsStream::Plain(s) => s,
        _ => unreachable!("plain ws"),
    }
}

async fn connect_many(o: &Opts, channel: impl Fn(usize) -> String) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::with_capacity(o.conns);
    let started = Instant::now();
    for chunk in (0..o.conns).collect::<Vec<_>>().chunks(200) {
        let futs = chunk.iter().map(|&i| {
            let ch = channel(i);
            async move { subscriber(o, &ch).await }
        });
        out.extend(futures_util::future::join_all(futs).await);
    }
    eprintln!(
        "{} connections subscribed in {:.1?}",
        out.len(),
        started.elapsed()
    );
    out
}

fn signed_trigger(o: &Opts, channel: &str, data: &str) -> (String, Bytes) {
    let body = serde_json::json!({"name":"load","channel":channel,"data":data}).to_string();
    let path = format!("/apps/{}/events", o.app);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q = pusher_auth::sign_request("POST", &path, &[], body.as_bytes(), &o.key, &o.secret, ts);
    (format!("http://{}{path}?{q}", o.addr), Bytes::from(body))
}

async fn publish_loop(
    o: Arc<Opts>,
    channel: &str,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    target_per_sec: Option<u64>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let data = "x".repeat(o.data_len);
    let (uri, body) = signed_trigger(&o, channel, &data);
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(rate) = target_per_sec {
            let due = started.elapsed().as_secs_f64() * rate as f64;
            if sent.load(Ordering::Relaxed) as f64 >= due {
                tokio::time::sleep(Duration::from_micros(200)).await;
                continue;
            }
        }
        let req = hyper::Request::post(&uri)
            .body(Full::new(body.clone()))
            .unwrap();
        let resp = client.request(req).await.expect("request");
        assert!(resp.status().is_success(), "status {}", resp.status());
        let _ = resp.into_body().collect().await;
        sent.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() {
    let o = Arc::new(opts());
    match o.mode.as_str() {
        "idle" => {
            let pid = o.pid.expect("--pid of the server");
            let before = rss_kb(pid);
            let conns = connect_many(&o, |i| format!("idle-{}", i % 100)).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = rss_kb(pid);
            println!(
                "server RSS: idle {before} KiB, with {} connections {after} KiB: {} bytes per connection",
                conns.len(),
                (after.saturating_sub(before)) * 1024 / conns.len() as u64
            );
        }
        "fanout" => {
            let conns = connect_many(&o, |_| "fanout".into()).await;
            let received = Arc::new(AtomicU64::new(0));
            for mut c in conns {
                let received = received.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = c.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        received.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
            let frame_len = {
                let data = "x".repeat(o.data_len);
                let text =
                    pusher_proto::ChannelEvent::encode_parts("load", "fanout", &data, None).len();
                text + if text < 126 { 2 } else { 4 }
            } as u64;
            let stop = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let publishers: Vec<_> = (0..2)
                .map(|_| {
                    tokio::spawn(publish_loop(
                        o.clone(),
                        "fanout",
                        stop.clone(),
                        sent.clone(),
                        None,
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (r0, s0, t0) = (
                received.load(Ordering::Relaxed),
                sent.load(Ordering::Relaxed),
                Instant::now(),
            );
            tokio::time::sleep(Duration::from_secs(o.secs)).await;
            let (r1, s1, dt) = (
                received.load(Ordering::Relaxed),
                sent.load(Ordering::Relaxed),
                t0.elapsed(),
            );
            stop.store(true, Ordering::Relaxed);
            for p in publishers {
                let _ = p.await;
            }
            let deliveries = (r1 - r0) / frame_len;
            println!(
                "fanout to {} subscribers: {} publishes/s, {:.0} deliveries/s received ({} byte frames)",
                o.conns,
                ((s1 - s0) as f64 / dt.as_secs_f64()) as u64,
                deliveries as f64 / dt.as_secs_f64(),
                frame_len
            );
        }
        "publish" => {
            let stop = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..o.http_conns)
                .map(|_| {
                    tokio::spawn(publish_loop(
                        o.clone(),
                        "nobody-listens",
                        stop.clone(),
                        sent.clone(),
                        None,
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (s0, t0) = (sent.load(Ordering::Relaxed), Instant::now());
            tokio::time::sleep(Duration::from_secs(o.secs)).await;
            let (s1, dt) = (sent.load(Ordering::Relaxed), t0.elapsed());
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = t.await;
            }
            println!(
                "{} signed HTTP publishes/s over {} keep-alive connections",
                ((s1 - s0) as f64 / dt.as_secs_f64()) as u64,
                o.http_conns
            );
        }
        other => eprintln!("unknown mode {other}: idle | fanout | publish"),
    }
}
