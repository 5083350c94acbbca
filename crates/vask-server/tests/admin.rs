//! The admin API with the configuration file as the apps' store: a bearer
//! token guards it, it shows apps without their secrets, and it refuses
//! writes (409) naming where the apps come from. Writes through a
//! PostgreSQL store are in `apps_store.rs`.

mod support;

use serde_json::{Value, json};
use support::*;

const TOKEN: &str = "an-admin-token-of-some-length";

/// A request to the admin API with `token` (if any).
async fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, hyper::HeaderMap, Value) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let (status, text) = raw_http(addr, head.as_bytes()).await.expect("an answer");
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut headers = hyper::HeaderMap::new();
    for line in status.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                k.trim().parse::<hyper::header::HeaderName>(),
                v.trim().parse::<hyper::header::HeaderValue>(),
            )
        {
            headers.insert(k, v);
        }
    }
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, headers, json)
}

#[tokio::test]
async fn without_a_token_configured_there_is_no_admin_api() {
    let s = start_default().await;
    let (status, _, body) = admin(s.addr, "GET", "/admin/apps", Some(TOKEN), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], 404);
    s.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_401() {
    let mut c = config(vec![app()]);
    c.admin.token = Some(TOKEN.into());
    let s = start(c).await;
    for token in [None, Some("wrong"), Some("an-admin-token-of-some-lengtH")] {
        let (status, headers, body) = admin(s.addr, "GET", "/admin/apps", token, None).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["code"], 401);
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn apps_are_listed_without_secrets_and_writes_are_refused_with_409() {
    let mut c = config(vec![app()]);
    c.admin.token = Some(TOKEN.into());
    let s = start(c).await;
    let _ws = connect(s.addr, "test-key").await;

    let (status, _, body) = admin(s.addr, "GET", "/admin/apps", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    let apps = body["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["id"], "1");
    assert_eq!(apps[0]["key"], "test-key");
    assert_eq!(apps[0]["connections"], 1);
    assert!(apps[0].get("secret").is_none(), "{body}");
    assert!(!body.to_string().contains("test-secret"), "{body}");

    let (status, _, one) = admin(s.addr, "GET", "/admin/apps/1", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["limits"]["max_event_bytes"], 65536);
    assert!(one.get("secret").is_none());
    let (status, _, usage) = admin(s.addr, "GET", "/admin/apps/1/usage", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{usage}");
    assert!(usage["day"]["start"].is_string(), "{usage}");
    let (status, _, all) = admin(s.addr, "GET", "/admin/usage", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        all["apps"]["1"]["month"]["start"], usage["month"]["start"],
        "{all}"
    );
    let (status, _, _) = admin(s.addr, "GET", "/admin/apps/9", Some(TOKEN), None).await;
    assert_eq!(status, 404);

    for (method, path, body) in [
        ("POST", "/admin/apps", Some(json!({"key": "k"}))),
        ("PATCH", "/admin/apps/1", Some(json!({"enabled": false}))),
        ("DELETE", "/admin/apps/1", None),
        ("POST", "/admin/apps/1/rotate", None),
    ] {
        let (status, _, answer) = admin(s.addr, method, path, Some(TOKEN), body).await;
        assert_eq!(status, 409, "{method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("command line"),
            "{answer}"
        );
    }
    let (status, headers, _) = admin(s.addr, "PUT", "/admin/apps/1", Some(TOKEN), None).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, PATCH, DELETE");
    // Nothing changed.
    assert!(s.state.apps.current().by_id("1").unwrap().config.enabled);
    s.shutdown().await;
}

#[tokio::test]
async fn a_file_store_names_its_file_in_the_409() {
    let dir = std::env::temp_dir().join(format!("vask-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("apps.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nport = 0\ndrain_secs = 0\n[admin]\ntoken = \"{TOKEN}\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n"
        ),
    )
    .unwrap();
    let cli = vask_server::Cli {
        config: Some(file.clone()),
        ..Default::default()
    };
    let s = start(vask_server::Config::load(&cli).unwrap()).await;
    let (status, _, answer) = admin(
        s.addr,
        "PATCH",
        "/admin/apps/1",
        Some(TOKEN),
        Some(json!({"client_events": true})),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains(file.to_str().unwrap()),
        "{answer}"
    );
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
