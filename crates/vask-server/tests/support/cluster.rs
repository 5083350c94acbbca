//! Cluster test support: a real `redis-server` or `nats-server` on a free
//! port in a temporary directory (killed and restarted on demand), nodes
//! in-process or as child processes, and a webhook receiver that keeps
//! every event.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use vask_server::config::{ClusterConfig, WebhookConfig};
use vask_server::{AppConfig, Config, Running};

pub const HEARTBEAT_MS: u64 = 200;
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Nats,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary(kind: Kind) -> PathBuf {
    let (name, dirs) = match kind {
        Kind::Redis => ("redis-server", ["/usr/bin", "/usr/sbin", "/usr/local/bin"]),
        Kind::Nats => ("nats-server", ["/usr/sbin", "/usr/bin", "/usr/local/bin"]),
    };
    dirs.iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: apt-get install {name} (.ci/run installs it)")
        })
}

/// An engine process on 127.0.0.1.
pub struct Engine {
    pub kind: Kind,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Engine {
    pub fn start(kind: Kind) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vask-{kind:?}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = Self {
            kind,
            port: free_port(),
            dir,
            child: None,
        };
        e.launch();
        e
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new(binary(self.kind));
        match self.kind {
            Kind::Redis => cmd
                .args([
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&self.dir),
            Kind::Nats => cmd.args(["-p", &port, "-a", "127.0.0.1"]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{:?} did not start",
                self.kind
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// SIGKILL: the engine is gone at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test app with a webhook receiver, client events and counts on.
pub fn cluster_app(webhook: Option<SocketAddr>) -> AppConfig {
    AppConfig {
        subscription_count: true,
        webhooks: webhook
            .map(|addr| {
                vec![WebhookConfig {
                    url: format!("http://{addr}/hook"),
                    event_types: Vec::new(),
                    filter: Default::default(),
                    headers: Default::default(),
                }]
            })
            .unwrap_or_default(),
        ..super::app()
    }
}

/// A node's configuration.
pub fn node_config(url: &str, name: &str, app: AppConfig) -> Config {
    let mut c = super::config(vec![app]);
    c.server.webhooks.hold_ms = 300;
    c.server.webhooks.batch_ms = 50;
    c.cluster = Some(ClusterConfig {
        node_id: Some(name.to_owned()),
        heartbeat_ms: HEARTBEAT_MS,
        node_timeout_ms: NODE_TIMEOUT_MS,
        ..ClusterConfig::new(url)
    });
    c
}

/// An in-process node.
pub async fn node(url: &str, name: &str, app: AppConfig) -> Running {
    vask_server::start(node_config(url, name, app))
        .await
        .expect("node starts")
}

/// A node as a child process (so that it can be killed with SIGKILL), with
/// the given configuration file contents; returns it and its port.
pub fn node_process(toml: &str, name: &str) -> (Child, u16) {
    let dir = std::env::temp_dir().join(format!("vask-node-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vask.toml");
    std::fs::write(&path, toml).unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_vask-server"))
        .arg("--config")
        .arg(&path)
        .args(["--port", &port.to_string(), "--drain-secs", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "node did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// Every webhook event received, in order.
#[derive(Clone, Default)]
pub struct Hooks(Arc<Mutex<Vec<Value>>>);

impl Hooks {
    /// A receiver on a free port.
    pub async fn start() -> (SocketAddr, Self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hooks = Self::default();
        let store = hooks.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body: Value = serde_json::from_slice(&body).unwrap();
                            for e in body["events"].as_array().unwrap() {
                                store.0.lock().unwrap().push(e.clone());
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        (addr, hooks)
    }

    /// Events so far, as `name channel [user]` strings.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["name"] != "subscription_count")
            .map(|e| {
                let mut s = format!(
                    "{} {}",
                    e["name"].as_str().unwrap(),
                    e["channel"].as_str().unwrap()
                );
                if let Some(u) = e["user_id"].as_str() {
                    s.push(' ');
                    s.push_str(u);
                }
                s
            })
            .collect()
    }

    /// Waits (at most `within`) until `names()` satisfies `f`.
    pub async fn wait_for(&self, within: Duration, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let names = self.names();
            if f(&names) {
                return names;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "webhooks were {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Waits (at most `within`) until `check` holds.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
