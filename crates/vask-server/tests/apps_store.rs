//! Two nodes on one real PostgreSQL (started here) and one Redis bus: apps
//! created, changed, disabled, rotated and deleted through the admin API of
//! one node, or directly in the database, take effect on both within a
//! second; usage survives a restart; the database going away keeps the
//! nodes serving, and they catch up when it is back.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cluster::{Engine, Kind};
use support::postgres::Postgres;
use support::*;
use vask_server::config::AppsStoreConfig;
use vask_server::{Config, Running};

const TOKEN: &str = "the-admin-token-for-these-tests";
const SECOND: Duration = Duration::from_secs(1);

fn node_config(db: &str, bus: Option<&str>, name: &str) -> Config {
    let mut c = config(Vec::new());
    c.apps = Vec::new();
    c.apps_store = Some(AppsStoreConfig { url: db.to_owned() });
    c.admin.token = Some(TOKEN.into());
    if let Some(bus) = bus {
        c.cluster = Some(vask_server::ClusterConfig {
            node_id: Some(name.to_owned()),
            heartbeat_ms: 200,
            node_timeout_ms: 1500,
            ..vask_server::ClusterConfig::new(bus)
        });
    }
    c
}

async fn node(db: &str, bus: Option<&str>, name: &str) -> Running {
    vask_server::start(node_config(db, bus, name))
        .await
        .expect("node starts")
}

/// A request to a node's admin API.
async fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (head, text) = raw_http(addr, req.as_bytes()).await.expect("an answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Waits until `f` holds, at most `within`; returns how long it took.
async fn within<F, Fut>(within: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if f().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a connection with `key` is accepted (else its error code).
async fn accepted(addr: std::net::SocketAddr, key: &str) -> Result<(), u64> {
    let mut ws = connect_raw(addr, &format!("/app/{key}?protocol=7")).await;
    let f = recv(&mut ws).await;
    if f["event"] == "pusher:connection_established" {
        Ok(())
    } else {
        Err(f["data"]["code"].as_u64().unwrap_or(0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_changes_reach_both_nodes_within_a_second() {
    let db = Postgres::start();
    let bus = Engine::start(Kind::Redis);
    let a = node(&db.url(), Some(&bus.url()), "a").await;
    let b = node(&db.url(), Some(&bus.url()), "b").await;
    let (status, body) = admin(a.addr, "GET", "/admin/apps", None).await;
    assert_eq!(
        (status, body["apps"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Create on A: usable on B within a second, secret shown once.
    let (status, created) = admin(
        a.addr,
        "POST",
        "/admin/apps",
        Some(json!({"client_events": true, "limits": {"max_connections": 3}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(id.bytes().all(|c| c.is_ascii_digit()), "{id}");
    assert_eq!(created["limits"]["max_connections"], 3);
    let took = within(SECOND, "the new app on node B", || async {
        accepted(b.addr, &key).await.is_ok()
    })
    .await;
    eprintln!("created app usable on the other node after {took:?}");
    let (_, listed) = admin(b.addr, "GET", "/admin/apps", None).await;
    assert_eq!(listed["apps"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&secret), "{listed}");
    let (_, one) = admin(b.addr, "GET", &format!("/admin/apps/{id}"), None).await;
    assert!(one.get("secret").is_none(), "{one}");

    // A subscriber on A, a publish through B's API with the app's own
    // credentials: the new app crosses the cluster.
    let mut ws = connect(a.addr, &key).await;
    ws.subscribe("news").await;
    let api_b = Api::new(b.addr, &id, &key, &secret);
    let r = api_b
        .trigger(json!({"name":"e","channel":"news","data":"hi"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ws.recv_event().await["data"], "hi");

    // Rotate on B: the old secret fails on A within a second, the new works.
    let (status, rotated) = admin(b.addr, "POST", &format!("/admin/apps/{id}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let api_a_old = Api::new(a.addr, &id, &key, &secret);
    within(SECOND, "the old secret refused on node A", || async {
        api_a_old.get("channels", &[]).await.status == 401
    })
    .await;
    let api_a = Api::new(a.addr, &id, &key, &new_secret);
    assert_eq!(api_a.get("channels", &[]).await.status, 200);

    // Change a limit on A: max_event_bytes applies to the next publish on B.
    let (status, patched) = admin(
        a.addr,
        "PATCH",
        &format!("/admin/apps/{id}"),
        Some(json!({"limits": {"max_event_bytes": 8}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["limits"]["max_event_bytes"], 8);
    assert_eq!(
        patched["limits"]["max_connections"], 3,
        "merged, not replaced"
    );
    let api_b = Api::new(b.addr, &id, &key, &new_secret);
    within(SECOND, "the new limit on node B", || async {
        api_b
            .trigger(json!({"name":"e","channel":"news","data":"more than 8 bytes"}))
            .await
            .status
            == 413
    })
    .await;

    // Disable on B: A closes the open connection with 4003, refuses new
    // ones and the API (403).
    let (status, _) = admin(
        b.addr,
        "PATCH",
        &format!("/admin/apps/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ws.closed_with().await, Some(4003));
    assert_eq!(accepted(a.addr, &key).await, Err(4003));
    assert_eq!(api_a.get("channels", &[]).await.status, 403);

    // Invalid input: 400 naming the field; a taken key: 409.
    let (status, e) = admin(
        a.addr,
        "PATCH",
        &format!("/admin/apps/{id}"),
        Some(json!({"limits": {"max_event_bytes": 0}})),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("limits.max_event_bytes"),
        "{e}"
    );
    let (status, e) = admin(a.addr, "POST", "/admin/apps", Some(json!({"key": key}))).await;
    assert_eq!(status, 409, "{e}");
    let (status, e) = admin(
        a.addr,
        "PATCH",
        &format!("/admin/apps/{id}"),
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("colour"), "{e}");

    // Delete on A: gone on B within a second.
    let (status, _) = admin(a.addr, "DELETE", &format!("/admin/apps/{id}"), None).await;
    assert_eq!(status, 204);
    within(SECOND, "the deleted app gone on node B", || async {
        accepted(b.addr, &key).await == Err(4001)
    })
    .await;
    let (status, _) = admin(b.addr, "GET", &format!("/admin/apps/{id}"), None).await;
    assert_eq!(status, 404);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_in_the_database_reach_both_nodes() {
    let db = Postgres::start();
    let a = node(&db.url(), None, "a").await;
    let b = node(&db.url(), None, "b").await;
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO vask_apps (id, key, secret, settings) VALUES ('42', 'sql-key', 'sql-secret', '{\"client_events\": true}')",
            &[],
        )
        .await
        .unwrap();
    for n in [&a, &b] {
        within(SECOND, "an app inserted with SQL", || async {
            accepted(n.addr, "sql-key").await.is_ok()
        })
        .await;
    }
    let mut ws = connect(b.addr, "sql-key").await;
    client
        .execute("UPDATE vask_apps SET enabled = false WHERE id = '42'", &[])
        .await
        .unwrap();
    assert_eq!(ws.closed_with().await, Some(4003));
    for n in [&a, &b] {
        within(SECOND, "an app disabled with SQL", || async {
            accepted(n.addr, "sql-key").await == Err(4003)
        })
        .await;
    }
    // A row edited into nonsense is refused; the apps in force stay.
    client
        .execute(
            "UPDATE vask_apps SET enabled = true, settings = '{\"limits\": {\"max_event_bytes\": 0}}' WHERE id = '42'",
            &[],
        )
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    assert_eq!(accepted(a.addr, "sql-key").await, Err(4003));
    client
        .execute("UPDATE vask_apps SET settings = '{}' WHERE id = '42'", &[])
        .await
        .unwrap();
    for n in [&a, &b] {
        within(SECOND, "the row fixed", || async {
            accepted(n.addr, "sql-key").await.is_ok()
        })
        .await;
    }
    client
        .execute("DELETE FROM vask_apps WHERE id = '42'", &[])
        .await
        .unwrap();
    for n in [&a, &b] {
        within(SECOND, "an app deleted with SQL", || async {
            accepted(n.addr, "sql-key").await == Err(4001)
        })
        .await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_keeps_the_node_serving_and_it_catches_up() {
    let db = Postgres::start();
    let a = node(&db.url(), None, "a").await;
    let (status, created) = admin(a.addr, "POST", "/admin/apps", Some(json!({}))).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    db.stop();
    // Still serving from memory; writes say the store is unreachable.
    assert!(accepted(a.addr, &key).await.is_ok());
    within(Duration::from_secs(5), "vask_apps_store_up 0", || async {
        reqwest_metrics(a.addr)
            .await
            .contains("vask_apps_store_up 0")
    })
    .await;
    let (status, e) = admin(
        a.addr,
        "PATCH",
        &format!("/admin/apps/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 503, "{e}");
    // Changed while the node could not see it, then back.
    db.start_again();
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute("UPDATE vask_apps SET enabled = false WHERE id = $1", &[&id])
        .await
        .unwrap();
    within(
        Duration::from_secs(10),
        "the change made while away",
        || async { accepted(a.addr, &key).await == Err(4003) },
    )
    .await;
    let metrics = reqwest_metrics(a.addr).await;
    assert!(metrics.contains("vask_apps_store_up 1"), "{metrics}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_a_restart() {
    let db = Postgres::start();
    let a = node(&db.url(), None, "a").await;
    let (_, created) = admin(a.addr, "POST", "/admin/apps", Some(json!({}))).await;
    let (id, key, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    let mut subs = Vec::new();
    for _ in 0..2 {
        let mut ws = connect(a.addr, &key).await;
        ws.subscribe("news").await;
        subs.push(ws);
    }
    let api = Api::new(a.addr, &id, &key, &secret);
    for i in 0..3 {
        let r = api
            .trigger(json!({"name":"e","channel":"news","data":i.to_string()}))
            .await;
        assert_eq!(r.status, 200);
    }
    for ws in &mut subs {
        for _ in 0..3 {
            ws.recv_event().await;
        }
    }
    drop(subs);
    // The shutdown writes the last figures.
    a.shutdown().await;
    let a = node(&db.url(), None, "a").await;
    let (status, usage) = admin(a.addr, "GET", &format!("/admin/apps/{id}/usage"), None).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["day"]["broadcasts"], 3, "{usage}");
    assert_eq!(usage["day"]["deliveries"], 6, "{usage}");
    assert_eq!(usage["month"]["broadcasts"], 3, "{usage}");
    a.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_store_refuses_the_start() {
    let port = support::cluster::free_port();
    let url = format!("postgres://vask:hunter2@127.0.0.1:{port}/vask");
    let started = Instant::now();
    let e = vask_server::start(node_config(&url, None, "a"))
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(e.contains("postgres://vask:***@127.0.0.1"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

async fn reqwest_metrics(addr: std::net::SocketAddr) -> String {
    raw_http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .map(|(_, body)| body)
    .unwrap_or_default()
}
