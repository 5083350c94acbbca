//! Apps replaced while the server runs (what SIGHUP, the admin API and the
//! PostgreSQL store do): each change takes effect at once on open
//! connections, new connections and API calls, and an invalid list changes
//! nothing.

mod support;

use serde_json::json;
use support::*;
use vask_server::AppConfig;

fn second() -> AppConfig {
    AppConfig {
        id: "2".into(),
        key: "second-key".into(),
        secret: "second-secret".into(),
        ..app()
    }
}

#[tokio::test]
async fn a_disabled_app_closes_its_connections_with_4003_and_refuses_the_api() {
    let s = start(config(vec![app(), second()])).await;
    let mut ws = connect(s.addr, "test-key").await;
    ws.subscribe("news").await;
    let mut other = connect(s.addr, "second-key").await;

    let disabled = AppConfig {
        enabled: false,
        ..app()
    };
    let c = s.state.apps.replace(&[disabled, second()]).unwrap();
    assert_eq!((c.added, c.changed, c.removed), (0, 1, 0));

    let f = ws.recv().await;
    assert_eq!(f["event"], "pusher:error", "{f}");
    assert_eq!(f["data"]["code"], 4003);
    assert_eq!(ws.closed_with().await, Some(4003));
    // New connections are refused the same way.
    let mut late = connect_raw(s.addr, "/app/test-key?protocol=7").await;
    assert_eq!(recv(&mut late).await["data"]["code"], 4003);
    assert_eq!(closed_with(&mut late).await, Some(4003));
    let api = Api::default_app(s.addr);
    let r = api
        .trigger(json!({"name":"e","channel":"news","data":"{}"}))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    // The other app is untouched.
    other.send(r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(other.recv().await["event"], "pusher:pong");

    // Enabled again: it serves again.
    s.state.apps.replace(&[app(), second()]).unwrap();
    let mut back = connect(s.addr, "test-key").await;
    back.subscribe("news").await;
    let r = api
        .trigger(json!({"name":"e","channel":"news","data":"{}"}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(back.recv_event().await["event"], "e");
    s.shutdown().await;
}

#[tokio::test]
async fn a_rotated_secret_fails_old_signatures_and_takes_new_ones() {
    let s = start(config(vec![app()])).await;
    let mut ws = connect(s.addr, "test-key").await;
    let rotated = AppConfig {
        secret: "rotated-secret".into(),
        ..app()
    };
    s.state.apps.replace(&[rotated]).unwrap();

    // Channel auth: the open connection follows the new secret.
    let f = ws
        .subscribe_private("private-a", "test-key", "test-secret")
        .await;
    assert_eq!(f["event"], "pusher:subscription_error", "{f}");
    let f = ws
        .subscribe_private("private-b", "test-key", "rotated-secret")
        .await;
    assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
    // The HTTP API: 401 with the old secret, 200 with the new one.
    let old = Api::default_app(s.addr);
    let r = old.get("channels", &[]).await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    let new = Api::new(s.addr, "1", "test-key", "rotated-secret");
    let r = new.get("channels", &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["channels"]["private-b"].is_object(), "{:?}", r.body);
    s.shutdown().await;
}

#[tokio::test]
async fn added_and_deleted_apps_take_effect_at_once() {
    let s = start(config(vec![app()])).await;
    let mut ws = connect(s.addr, "test-key").await;
    // Unknown until added.
    let mut early = connect_raw(s.addr, "/app/second-key?protocol=7").await;
    assert_eq!(recv(&mut early).await["data"]["code"], 4001);

    let c = s.state.apps.replace(&[app(), second()]).unwrap();
    assert_eq!((c.added, c.changed, c.removed), (1, 0, 0));
    let mut other = connect(s.addr, "second-key").await;
    other.subscribe("room").await;
    let api2 = Api::new(s.addr, "2", "second-key", "second-secret");
    let r = api2
        .trigger(json!({"name":"hello","channel":"room","data":"{}"}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(other.recv_event().await["event"], "hello");

    // Deleting the first app closes its connections with 4001.
    let c = s.state.apps.replace(&[second()]).unwrap();
    assert_eq!((c.added, c.changed, c.removed), (0, 0, 1));
    let f = ws.recv().await;
    assert_eq!(f["data"]["code"], 4001, "{f}");
    assert_eq!(ws.closed_with().await, Some(4001));
    let r = Api::default_app(s.addr).get("channels", &[]).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // The other app's connection stays.
    other.send(r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(other.recv().await["event"], "pusher:pong");
    s.shutdown().await;
}

#[tokio::test]
async fn changed_limits_apply_to_what_comes_next() {
    let s = start(config(vec![app()])).await;
    let mut first = connect(s.addr, "test-key").await;
    let mut second_conn = connect(s.addr, "test-key").await;
    let mut limited = app();
    limited.limits.max_connections = Some(2);
    limited.limits.max_event_bytes = 10;
    s.state.apps.replace(&[limited]).unwrap();
    // The two open connections stay; a third is over the new limit.
    let mut third = connect_raw(s.addr, "/app/test-key?protocol=7").await;
    assert_eq!(recv(&mut third).await["data"]["code"], 4004);
    first.send(r#"{"event":"pusher:ping","data":{}}"#).await;
    assert_eq!(first.recv().await["event"], "pusher:pong");
    second_conn
        .send(r#"{"event":"pusher:ping","data":{}}"#)
        .await;
    assert_eq!(second_conn.recv().await["event"], "pusher:pong");
    let r = Api::default_app(s.addr)
        .trigger(json!({"name":"e","channel":"news","data":"more than ten bytes"}))
        .await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    s.shutdown().await;
}

#[tokio::test]
async fn an_invalid_list_is_refused_whole_and_changes_nothing() {
    let s = start(config(vec![app()])).await;
    let clash = AppConfig {
        key: "test-key".into(),
        ..second()
    };
    let e = s
        .state
        .apps
        .replace(&[app(), clash])
        .unwrap_err()
        .to_string();
    assert!(e.contains("apps[1].key"), "{e}");
    let bad_id = AppConfig {
        id: "abc".into(),
        ..second()
    };
    let e = s.state.apps.replace(&[bad_id]).unwrap_err().to_string();
    assert!(e.contains("apps[0].id"), "{e}");
    // Still the one app, serving.
    assert_eq!(s.state.apps.current().len(), 1);
    connect(s.addr, "test-key").await;
    s.shutdown().await;
}
