//! Several nodes on a real Redis and a real NATS (started here on free
//! ports): every test runs on both engines. Publishes, presence, queries,
//! users and webhooks across nodes; a node killed with SIGKILL; a late
//! joiner; the engine killed and restarted; a node that cannot reach its
//! engine refusing to start.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::*;
use support::*;

const FRESH: Duration = Duration::from_secs(2);

/// Runs each test against both engines.
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Kind::Redis).await
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Kind::Nats).await
                }
            )*
        }
    };
}

on_both_engines!(
    publishes_reach_every_node_once,
    presence_queries_and_webhooks_are_cluster_wide,
    users_and_quotas_span_the_cluster,
    a_killed_node_is_removed_everywhere,
    a_late_node_gets_the_state,
    a_late_node_gets_a_state_larger_than_a_bus_message,
    the_engine_can_die_and_come_back,
    a_node_without_its_engine_refuses_to_start,
    apps_added_and_removed_live_cross_the_cluster,
);

async fn three(engine: &Engine, hook: Option<std::net::SocketAddr>) -> Vec<vask_server::Running> {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(node(&engine.url(), name, cluster_app(hook)).await);
    }
    nodes
}

async fn publishes_reach_every_node_once(kind: Kind) {
    let engine = Engine::start(kind);
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let app = vask_server::AppConfig {
            subscription_count: false,
            ..cluster_app(None)
        };
        nodes.push(node(&engine.url(), name, app).await);
    }
    let mut clients = Vec::new();
    for n in &nodes {
        let mut ws = connect(n.addr, "test-key").await;
        ws.subscribe("news").await;
        clients.push(ws);
    }
    // Give the subscriptions time to be known everywhere (they need not
    // be for delivery: every publish crosses the bus).
    let api = Api::default_app(nodes[0].addr);
    let r = api
        .trigger(json!({"name":"e","channel":"news","data":"one"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for ws in &mut clients {
        assert_eq!(ws.recv_event().await["data"], "one");
    }
    // Exclusion of a socket on another node.
    let except = clients[2].socket_id.clone();
    let r = api
        .trigger(json!({"name":"e","channel":"news","data":"two","socket_id":except}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(clients[0].recv_event().await["data"], "two");
    assert_eq!(clients[1].recv_event().await["data"], "two");
    // A batch through node B, then a client event from node C.
    let batch = json!({"batch":[{"name":"b1","channel":"news","data":"3"},{"name":"b2","channel":"news","data":"4"}]});
    let r = Api::default_app(nodes[1].addr)
        .call("POST", "batch_events", &[], batch.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 200);
    for ws in &mut clients {
        assert_eq!(ws.recv_event().await["data"], "3");
        assert_eq!(ws.recv_event().await["data"], "4");
    }
    for ws in &mut clients {
        ws.subscribe_private("private-chat", "test-key", "test-secret")
            .await;
    }
    clients[2]
        .send(r#"{"event":"client-hi","channel":"private-chat","data":{"x":1}}"#)
        .await;
    for ws in &mut clients[..2] {
        let f = ws.recv_event().await;
        assert_eq!(f["event"], "client-hi");
    }
    // Exactly once: nothing more anywhere.
    for ws in &mut clients {
        ws.silent(300).await;
    }
}

async fn presence_queries_and_webhooks_are_cluster_wide(kind: Kind) {
    let (hook, hooks) = Hooks::start().await;
    let engine = Engine::start(kind);
    let nodes = three(&engine, Some(hook)).await;
    let mut a1 = connect(nodes[0].addr, "test-key").await;
    let r = a1
        .subscribe_presence(
            "presence-room",
            r#"{"user_id":"1"}"#,
            "test-key",
            "test-secret",
        )
        .await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded");
    for n in &nodes[1..] {
        eventually(FRESH, "every node knows user 1", || async {
            let r = Api::default_app(n.addr)
                .get("channels/presence-room/users", &[])
                .await;
            r.body == json!({"users":[{"id":"1"}]})
        })
        .await;
    }
    let mut b2 = connect(nodes[1].addr, "test-key").await;
    let r = b2
        .subscribe_presence(
            "presence-room",
            r#"{"user_id":"2"}"#,
            "test-key",
            "test-secret",
        )
        .await;
    let data: serde_json::Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["count"], 2, "{r}");
    let added = a1.recv_event().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    // User 1 again, on node C: nobody hears of it.
    let mut c1 = connect(nodes[2].addr, "test-key").await;
    c1.subscribe_presence(
        "presence-room",
        r#"{"user_id":"1"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    a1.silent(300).await;
    b2.silent(100).await;
    // Every node answers for the whole cluster.
    for n in &nodes {
        let api = Api::default_app(n.addr);
        eventually(FRESH, "counts agree", || async {
            let r = api
                .get(
                    "channels/presence-room",
                    &[("info", "user_count,subscription_count")],
                )
                .await;
            r.body == json!({"occupied":true,"user_count":2,"subscription_count":3})
        })
        .await;
        let r = api
            .get(
                "channels",
                &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            )
            .await;
        assert_eq!(
            r.body,
            json!({"channels":{"presence-room":{"user_count":2}}})
        );
    }
    // User 1 leaves node A: still on C, so no member_removed.
    drop(a1);
    b2.silent(500).await;
    // And leaves C: now removed, once.
    drop(c1);
    let removed = b2.recv_event().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    drop(b2);
    let names = hooks
        .wait_for(Duration::from_secs(5), |n| {
            n.iter().any(|e| e.starts_with("channel_vacated"))
        })
        .await;
    assert_eq!(
        names,
        [
            "channel_occupied presence-room",
            "member_added presence-room 1",
            "member_added presence-room 2",
            "member_removed presence-room 1",
            "member_removed presence-room 2",
            "channel_vacated presence-room",
        ]
    );
}

async fn users_and_quotas_span_the_cluster(kind: Kind) {
    let engine = Engine::start(kind);
    let mut app = cluster_app(None);
    app.limits.max_connections = Some(2);
    let a = node(&engine.url(), "a", app.clone()).await;
    let b = node(&engine.url(), "b", app).await;
    let mut watcher = connect(a.addr, "test-key").await;
    watcher.signin(r#"{"id":"w","watchlist":["9"]}"#).await;
    let status = watcher.recv().await;
    assert!(status.to_string().contains("offline"), "{status}");
    let mut nine = connect(b.addr, "test-key").await;
    assert_eq!(
        nine.signin(r#"{"id":"9"}"#).await["event"],
        "pusher:signin_success"
    );
    let online = watcher.recv().await;
    assert!(online.to_string().contains("online"), "{online}");
    // Send to the user through node A, terminate through node A.
    nine.subscribe("#server-to-user-9").await;
    let r = Api::default_app(a.addr)
        .trigger(json!({"name":"hello","channel":"#server-to-user-9","data":"hi"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(nine.recv_event().await["event"], "hello");
    // The quota counts both nodes (after a heartbeat).
    tokio::time::sleep(Duration::from_millis(3 * HEARTBEAT_MS)).await;
    let mut third = connect_raw(a.addr, "/app/test-key?protocol=7").await;
    let f = recv(&mut third).await;
    assert_eq!(f["data"]["code"], 4004, "{f}");
    let r = Api::default_app(a.addr)
        .call("POST", "users/9/terminate_connections", &[], b"")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(nine.closed_with().await, Some(4009));
    let offline = watcher.recv().await;
    assert!(offline.to_string().contains("offline"), "{offline}");
}

fn node_toml(url: &str, name: &str) -> String {
    format!(
        "[server]\ndrain_secs = 0\n[cluster]\nurl = \"{url}\"\nnode_id = \"{name}\"\n\
         heartbeat_ms = {HEARTBEAT_MS}\nnode_timeout_ms = {NODE_TIMEOUT_MS}\n\
         [[apps]]\nid = \"1\"\nkey = \"test-key\"\nsecret = \"test-secret\"\nclient_events = true\n"
    )
}

async fn a_killed_node_is_removed_everywhere(kind: Kind) {
    let engine = Engine::start(kind);
    let a = node(&engine.url(), "a", cluster_app(None)).await;
    let (mut victim, port) =
        node_process(&node_toml(&engine.url(), "victim"), &format!("{kind:?}"));
    let victim_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ghost = connect(victim_addr, "test-key").await;
    ghost
        .subscribe_presence(
            "presence-room",
            r#"{"user_id":"ghost"}"#,
            "test-key",
            "test-secret",
        )
        .await;
    ghost.subscribe("lonely").await;
    let api = Api::default_app(a.addr);
    eventually(FRESH, "node A knows the ghost", || async {
        let r = api.get("channels/presence-room/users", &[]).await;
        r.body == json!({"users":[{"id":"ghost"}]})
    })
    .await;
    let mut watcher = connect(a.addr, "test-key").await;
    let r = watcher
        .subscribe_presence(
            "presence-room",
            r#"{"user_id":"w"}"#,
            "test-key",
            "test-secret",
        )
        .await;
    assert!(r["data"].as_str().unwrap().contains("ghost"), "{r}");
    let killed = Instant::now();
    victim.kill().unwrap();
    let _ = victim.wait();
    let removed = watcher.recv_event().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert!(
        killed.elapsed() < Duration::from_millis(NODE_TIMEOUT_MS + 1000),
        "removed after {:?}",
        killed.elapsed()
    );
    let r = api.get("channels", &[]).await;
    assert_eq!(r.body, json!({"channels":{"presence-room":{}}}));
    drop(ghost);
}

async fn a_late_node_gets_the_state(kind: Kind) {
    let engine = Engine::start(kind);
    let a = node(&engine.url(), "a", cluster_app(None)).await;
    let mut member = connect(a.addr, "test-key").await;
    member
        .subscribe_presence(
            "presence-room",
            r#"{"user_id":"1"}"#,
            "test-key",
            "test-secret",
        )
        .await;
    let r = Api::default_app(a.addr)
        .trigger(json!({"name":"last","channel":"cache-c","data":"kept"}))
        .await;
    assert_eq!(r.status, 200);
    // The late node answers for the cluster as soon as it accepts.
    let late = node(&engine.url(), "late", cluster_app(None)).await;
    let r = Api::default_app(late.addr)
        .get("channels/presence-room/users", &[])
        .await;
    assert_eq!(r.body, json!({"users":[{"id":"1"}]}));
    let mut fresh = connect(late.addr, "test-key").await;
    fresh.subscribe("cache-c").await;
    let cached = fresh.recv_event().await;
    assert_eq!(cached["event"], "last");
    assert_eq!(cached["data"], "kept");
}

async fn a_late_node_gets_a_state_larger_than_a_bus_message(kind: Kind) {
    let engine = Engine::start(kind);
    let a = node(&engine.url(), "a", cluster_app(None)).await;
    // 20 users in 40 presence channels, 1.5 KB of user_info each: 1.2 MB,
    // over NATS's 1 MB message limit.
    let bio = "x".repeat(1500);
    let mut clients = Vec::new();
    for u in 0..20 {
        let mut ws = connect(a.addr, "test-key").await;
        let data = json!({"user_id": format!("u{u}"), "user_info": {"bio": bio}}).to_string();
        for ch in 0..40 {
            let r = ws
                .subscribe_presence(&format!("presence-{ch}"), &data, "test-key", "test-secret")
                .await;
            assert_eq!(r["event"], "pusher_internal:subscription_succeeded");
        }
        clients.push(ws);
    }
    let late = node(&engine.url(), "late", cluster_app(None)).await;
    let r = Api::default_app(late.addr)
        .get(
            "channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    let channels = r.body["channels"].as_object().unwrap();
    assert_eq!(channels.len(), 40);
    assert!(
        channels.values().all(|c| c["user_count"] == 20),
        "{r:?}",
        r = r.body
    );
}

async fn the_engine_can_die_and_come_back(kind: Kind) {
    let mut engine = Engine::start(kind);
    let a = node(&engine.url(), "a", cluster_app(None)).await;
    let b = node(&engine.url(), "b", cluster_app(None)).await;
    let mut on_a = connect(a.addr, "test-key").await;
    on_a.subscribe("news").await;
    let mut on_b = connect(b.addr, "test-key").await;
    on_b.subscribe("news").await;
    engine.kill();
    // Each node keeps serving its own connections; /up stays 200 and says why.
    let api_a = Api::default_app(a.addr);
    eventually(Duration::from_secs(5), "node A notices", || async {
        let up = api_a.raw("GET", "/up", b"").await;
        up.status == 200 && up.body.as_str().is_some_and(|t| t.contains("UNREACHABLE"))
    })
    .await;
    let r = api_a
        .trigger(json!({"name":"e","channel":"news","data":"local"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(on_a.recv_event().await["data"], "local");
    // The engine returns: cross-node traffic within 10 s, no restart of a node.
    engine.restart();
    let back = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let r = api_a
            .trigger(json!({"name":"e","channel":"news","data":format!("again {n}")}))
            .await;
        assert_eq!(r.status, 200);
        let got = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                let f = on_b.recv_event().await;
                if f["data"].as_str().is_some_and(|d| d.starts_with("again")) {
                    return;
                }
            }
        })
        .await;
        if got.is_ok() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "no cross-node traffic 10 s after the engine came back"
        );
    }
    let metrics = api_a.raw("GET", "/metrics", b"").await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(text.contains("vask_cluster_up 1"), "{text}");
}

async fn a_node_without_its_engine_refuses_to_start(kind: Kind) {
    let port = free_port();
    let url = match kind {
        Kind::Redis => format!("redis://:hunter2@127.0.0.1:{port}"),
        Kind::Nats => format!("nats://user:hunter2@127.0.0.1:{port}"),
    };
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_vask-server"))
        .args(["--port", "0", "--cluster", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An app added while the nodes run is hosted on the bus at once: a
/// publish on one node reaches its subscribers on the other; once deleted,
/// the nodes stop carrying it.
async fn apps_added_and_removed_live_cross_the_cluster(kind: Kind) {
    let engine = Engine::start(kind);
    let a = node(&engine.url(), "a", cluster_app(None)).await;
    let b = node(&engine.url(), "b", cluster_app(None)).await;
    let extra = vask_server::AppConfig {
        id: "2".into(),
        key: "extra-key".into(),
        secret: "extra-secret".into(),
        ..cluster_app(None)
    };
    for n in [&a, &b] {
        let c = n
            .state
            .apps
            .replace(&[cluster_app(None), extra.clone()])
            .unwrap();
        assert_eq!(c.added, 1);
    }
    let mut ws = connect(a.addr, "extra-key").await;
    ws.subscribe("news").await;
    let api = Api::new(b.addr, "2", "extra-key", "extra-secret");
    let r = api
        .trigger(json!({"name":"e","channel":"news","data":"across"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.recv_event().await["data"], "across");
    // Cluster-wide queries see the other node's subscriber.
    let r = api
        .get("channels/news", &[("info", "subscription_count")])
        .await;
    assert_eq!(r.body["subscription_count"], 1, "{}", r.body);

    // Deleted on both: the connection is closed with 4001, the API says 404.
    for n in [&a, &b] {
        n.state.apps.replace(&[cluster_app(None)]).unwrap();
    }
    assert_eq!(ws.closed_with().await, Some(4001));
    assert_eq!(api.get("channels", &[]).await.status, 404);
    // The first app still crosses the cluster.
    let mut first = connect(a.addr, "test-key").await;
    first.subscribe("news").await;
    let r = Api::default_app(b.addr)
        .trigger(json!({"name":"e","channel":"news","data":"still"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(first.recv_event().await["data"], "still");
    a.shutdown().await;
    b.shutdown().await;
}
