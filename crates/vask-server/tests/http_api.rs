//! The HTTP API over real sockets: every endpoint, signature checks, and the
//! JSON error bodies.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn trigger_to_many_channels_with_info() {
    let s = start(config(vec![counted_app()])).await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("c1").await;
    a.subscribe_presence(
        "presence-p",
        r#"{"user_id":"u"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    let r = api
        .trigger(json!({"name":"e","channels":["c1","presence-p"],"data":"d","info":"user_count,subscription_count"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"channels":{"c1":{"subscription_count":1},"presence-p":{"user_count":1,"subscription_count":1}}})
    );
    let mut got = vec![
        a.recv_event().await["channel"].clone(),
        a.recv_event().await["channel"].clone(),
    ];
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, [json!("c1"), json!("presence-p")]);
}

#[tokio::test]
async fn batch_events_publish_all_or_nothing() {
    let s = start(config(vec![counted_app()])).await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("b").await;
    let body = json!({"batch":[
        {"name":"one","channel":"b","data":"1"},
        {"name":"two","channel":"b","data":"2","info":"subscription_count"}
    ]});
    let r = api
        .call("POST", "batch_events", &[], body.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"batch":[{},{"subscription_count":1}]}));
    assert_eq!(a.recv_event().await["event"], "one");
    assert_eq!(a.recv_event().await["event"], "two");
    // One bad event refuses the whole batch.
    let bad = json!({"batch":[{"name":"ok","channel":"b","data":"1"},{"name":"x","channel":"bad name","data":"2"}]});
    let r = api
        .call("POST", "batch_events", &[], bad.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 400);
    a.silent(100).await;
    let many: Vec<_> = (0..11)
        .map(|i| json!({"name":"e","channel":"b","data":i.to_string()}))
        .collect();
    let r = api
        .call(
            "POST",
            "batch_events",
            &[],
            json!({ "batch": many }).to_string().as_bytes(),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn queries_channels_channel_and_users() {
    let s = start(config(vec![counted_app()])).await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("news").await;
    a.subscribe_presence(
        "presence-room",
        r#"{"user_id":"7"}"#,
        "test-key",
        "test-secret",
    )
    .await;
    let r = api.get("channels", &[]).await;
    assert_eq!(r.body, json!({"channels":{"news":{},"presence-room":{}}}));
    let r = api
        .get(
            "channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(
        r.body,
        json!({"channels":{"presence-room":{"user_count":1}}})
    );
    let r = api.get("channels", &[("info", "user_count")]).await;
    assert_eq!(r.status, 400);
    let r = api
        .get("channels/news", &[("info", "subscription_count")])
        .await;
    assert_eq!(r.body, json!({"occupied":true,"subscription_count":1}));
    let r = api.get("channels/empty", &[]).await;
    assert_eq!(r.body, json!({"occupied":false}));
    let r = api.get("channels/presence-room/users", &[]).await;
    assert_eq!(r.body, json!({"users":[{"id":"7"}]}));
    let r = api.get("channels/news/users", &[]).await;
    assert_eq!(r.status, 400);
    // Every channel type has a subscription count, presence included.
    let r = api
        .get(
            "channels/presence-room",
            &[("info", "user_count,subscription_count")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"occupied":true,"user_count":1,"subscription_count":1})
    );
}

#[tokio::test]
async fn subscription_count_is_refused_when_the_app_does_not_enable_it() {
    // As Pusher: "attempts to fetch it when it is disabled result in an error".
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    a.subscribe("news").await;
    for r in [
        api.get("channels/news", &[("info", "subscription_count")])
            .await,
        api.get(
            "channels/%23server-to-user-1",
            &[("info", "subscription_count")],
        )
        .await,
        api.get("channels", &[("info", "subscription_count")]).await,
        api.trigger(json!({"name":"e","channel":"news","data":"d","info":"subscription_count"}))
            .await,
    ] {
        assert_eq!(r.status, 400, "{}", r.body);
        let message = r.body["error"].as_str().unwrap();
        assert!(message.contains("not enabled for this app"), "{message}");
    }
    // Nothing was published by the refused trigger.
    a.silent(100).await;
}

#[tokio::test]
async fn per_user_channels_are_not_listed() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    assert_eq!(
        a.signin(r#"{"id":"ann"}"#).await["event"],
        "pusher:signin_success"
    );
    a.subscribe("#server-to-user-ann").await;
    a.subscribe("visible").await;
    assert_eq!(
        api.get("channels", &[]).await.body,
        json!({"channels":{"visible":{}}})
    );
}

#[tokio::test]
async fn cache_info_has_integer_ttl() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    api.trigger(json!({"name":"e","channel":"cache-x","data":"v"}))
        .await;
    let r = api.get("channels/cache-x", &[("info", "cache")]).await;
    assert_eq!(r.body["cache"]["data"], "v");
    assert!(r.body["cache"]["ttl"].is_u64());
}

#[tokio::test]
async fn app_key_in_path_and_body_md5_on_get_are_accepted() {
    let s = start_default().await;
    let by_key = Api::new(s.addr, "test-key", "test-key", "test-secret");
    assert_eq!(by_key.get("channels", &[]).await.status, 200);
    // pusher-http-python signs GETs with the MD5 of the empty body.
    let api = Api::default_app(s.addr);
    let path = "/apps/1/channels";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let params = [
        ("auth_key", "test-key"),
        ("auth_timestamp", now.as_str()),
        ("auth_version", "1.0"),
        ("body_md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ];
    let mut sorted: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    sorted.sort();
    let q = sorted.join("&");
    let sig = pusher_auth::hmac_sha256_hex(b"test-secret", format!("GET\n{path}\n{q}").as_bytes());
    let r = api
        .raw("GET", &format!("{path}?{q}&auth_signature={sig}"), b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let wrong_secret = Api::new(s.addr, "1", "test-key", "nope");
    let r = wrong_secret
        .trigger(json!({"name":"e","channel":"c","data":"d"}))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["code"], 401);
    assert!(
        r.body["error"].as_str().unwrap().contains("signature"),
        "{}",
        r.body
    );
    let wrong_key = Api::new(s.addr, "1", "other", "test-secret");
    assert_eq!(
        wrong_key
            .trigger(json!({"name":"e","channel":"c","data":"d"}))
            .await
            .status,
        401
    );
    let unsigned = api.raw("POST", "/apps/1/events", b"{}").await;
    assert_eq!(unsigned.status, 401);
    let unknown = Api::new(s.addr, "999", "test-key", "test-secret");
    let r = unknown.get("channels", &[]).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (404, json!({"error":"Unknown app","code":404}))
    );
    assert_eq!(api.get("nothing-here", &[]).await.status, 404);
    assert_eq!(api.raw("GET", "/elsewhere", b"").await.status, 404);
    assert_eq!(api.call("GET", "events", &[], b"").await.status, 405);
    let big = "x".repeat(64 * 1024 + 1);
    let r = api
        .trigger(json!({"name":"e","channel":"c","data":big}))
        .await;
    assert_eq!((r.status, r.body["code"].clone()), (413, json!(413)));
    let huge = vec![b' '; 1024 * 1024 + 10];
    assert_eq!(api.call("POST", "events", &[], &huge).await.status, 413);
    assert_eq!(api.call("POST", "events", &[], b"{nope").await.status, 400);
    let r = api
        .trigger(json!({"name":"pusher:x","channel":"c","data":"d"}))
        .await;
    assert_eq!(r.status, 400);
    let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    assert_eq!(
        api.trigger(json!({"name":"e","channels":channels,"data":"d"}))
            .await
            .status,
        400
    );
    let r = api
        .trigger(json!({"name":"e","channels":["private-encrypted-a","b"],"data":"d"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        api.trigger(json!({"name":"e","channel":"c","data":"d","socket_id":"x"}))
            .await
            .status,
        400
    );
    // Timestamps outside the window.
    let path = "/apps/1/channels";
    let q = pusher_auth::sign_request("GET", path, &[], b"", "test-key", "test-secret", 1_000_000);
    assert_eq!(
        api.raw("GET", &format!("{path}?{q}"), b"").await.status,
        401
    );
}

#[tokio::test]
async fn disabled_apps_answer_403() {
    let mut a = app();
    a.enabled = false;
    let s = start(config(vec![a])).await;
    let api = Api::default_app(s.addr);
    assert_eq!(
        api.trigger(json!({"name":"e","channel":"c","data":"d"}))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn terminate_closes_the_user_s_connections_with_4009() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    assert_eq!(
        a.signin(r#"{"id":"42"}"#).await["event"],
        "pusher:signin_success"
    );
    let r = api
        .call("POST", "users/42/terminate_connections", &[], b"{}")
        .await;
    assert_eq!((r.status, r.body), (200, json!({})));
    assert_eq!(
        a.recv().await,
        json!({"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}})
    );
    assert_eq!(a.closed_with().await, Some(4009));
}

#[tokio::test]
async fn terminate_without_the_app_in_the_path_as_pusher_http_python_sends_it() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    assert_eq!(
        a.signin(r#"{"id":"42"}"#).await["event"],
        "pusher:signin_success"
    );
    let path = "/users/42/terminate_connections";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q = pusher_auth::sign_request("POST", path, &[], b"{}", "test-key", "test-secret", now);
    assert_eq!(
        api.raw("POST", &format!("{path}?{q}"), b"{}").await.status,
        200
    );
    assert_eq!(a.recv().await["data"]["code"], 4009);
    let bad = pusher_auth::sign_request("POST", path, &[], b"{}", "test-key", "wrong", now);
    assert_eq!(
        api.raw("POST", &format!("{path}?{bad}"), b"{}")
            .await
            .status,
        401
    );
    assert_eq!(api.raw("POST", "/users/42/other", b"{}").await.status, 404);
}

#[tokio::test]
async fn send_to_user_reaches_the_signed_in_user_channel() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let mut a = connect(s.addr, "test-key").await;
    assert_eq!(
        a.signin(r#"{"id":"5"}"#).await["event"],
        "pusher:signin_success"
    );
    assert_eq!(
        a.subscribe("#server-to-user-5").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let r = api
        .trigger(json!({"name":"hello","channel":"#server-to-user-5","data":"{}"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        a.recv_text().await,
        r##"{"event":"hello","channel":"#server-to-user-5","data":"{}"}"##
    );
}

#[tokio::test]
async fn up_and_metrics() {
    let s = start_default().await;
    let api = Api::default_app(s.addr);
    let _a = connect(s.addr, "test-key").await;
    let up = api.raw("GET", "/up", b"").await;
    assert_eq!(up.status, 200);
    api.trigger(json!({"name":"e","channel":"c","data":"d"}))
        .await;
    let m = api.raw("GET", "/metrics", b"").await;
    let text = m.body.as_str().unwrap();
    assert!(text.contains(r#"vask_connections{app="1"} 1"#), "{text}");
    assert!(
        text.contains(r#"vask_publishes_total{app="1"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vask_http_requests_total{status="200"}"#),
        "{text}"
    );
}
