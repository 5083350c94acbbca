//! The debug console's HTTP side over real sockets: no console without an
//! admin token, login with a wrong and the right token, the session
//! cookie's attributes, the live feed and the test-event form requiring the
//! session, and no app secret in anything the console answers. The pages
//! themselves are tested in Chromium (tests/e2e/test/console.test.js).

mod support;

use futures_util::StreamExt;
use serde_json::Value;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const TOKEN: &str = "a-console-token-of-some-length";
const SECRET: &str = "test-secret";

/// One HTTP exchange: the status, the head (lower-cased) and the body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let (head, body) = raw_http(addr, req.as_bytes()).await.expect("an answer");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_ascii_lowercase(), body)
}

async fn with_token() -> vask_server::Running {
    let mut c = config(vec![app()]);
    c.admin.token = Some(TOKEN.into());
    start(c).await
}

/// Logs in; returns the `Cookie` header value.
async fn log_in(addr: std::net::SocketAddr) -> String {
    let (status, head, _) = http(
        addr,
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// Opens the app's feed with `cookie`.
async fn feed(
    addr: std::net::SocketAddr,
    cookie: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsError,
> {
    let mut req = format!("ws://{addr}/console/apps/1/feed")
        .into_client_request()
        .unwrap();
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("the handshake answers in time")
        .map(|(ws, _)| ws)
}

/// The next feed message of type `kind` (events: `"event:KIND"`), within
/// [`WAIT`]; every message seen is added to `seen`.
async fn next_of<S>(ws: &mut S, kind: &str, seen: &mut String) -> Value
where
    S: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} in time; saw {seen}"))
            .expect("feed open")
            .expect("a message");
        let Message::Text(t) = msg else { continue };
        seen.push_str(&t);
        seen.push('\n');
        let v: Value = serde_json::from_str(&t).unwrap();
        let this = match v["type"].as_str() {
            Some("event") => format!("event:{}", v["kind"].as_str().unwrap_or("")),
            Some(other) => other.to_owned(),
            None => String::new(),
        };
        if this == kind {
            return v;
        }
    }
}

#[tokio::test]
async fn without_an_admin_token_there_is_no_console() {
    let s = start(config(vec![app()])).await;
    for path in [
        "/console",
        "/console/",
        "/console/api/apps",
        "/console/static/app.js",
    ] {
        let (status, _, body) = http(s.addr, "GET", path, &[], "").await;
        assert_eq!(status, 404, "{path}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], 404);
    }
    let (status, _, _) = http(s.addr, "POST", "/console/login", &[], "token=x").await;
    assert_eq!(status, 404);
    match feed(s.addr, None).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
    s.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_gets_the_login_page_again_and_is_counted() {
    let s = with_token().await;
    let (status, head, body) = http(s.addr, "GET", "/console", &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains(r#"name="token""#), "the login form: {body}");
    for wrong in [
        "token=nope",
        "token=",
        "",
        "token=a-console-token-of-some-lengtH",
    ] {
        let (status, head, body) = http(s.addr, "POST", "/console/login", &[], wrong).await;
        assert_eq!(status, 401, "{wrong}");
        assert!(!head.contains("set-cookie"), "{head}");
        assert!(body.contains("Wrong token."), "{body}");
    }
    let (_, _, metrics) = http(s.addr, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.contains(r#"vask_refused_total{reason="console_login"} 4"#),
        "{metrics}"
    );
    // Without a session the rest is closed.
    let (status, _, _) = http(s.addr, "GET", "/console/api/apps", &[], "").await;
    assert_eq!(status, 401);
    let (status, head, _) = http(s.addr, "GET", "/console/apps/1", &[], "").await;
    assert_eq!(status, 303, "the app page sends to the login: {head}");
    let forged = [("Cookie", "vask_console=00112233")];
    let (status, _, _) = http(s.addr, "GET", "/console/api/apps", &forged, "").await;
    assert_eq!(status, 401);
    s.shutdown().await;
}

#[tokio::test]
async fn the_right_token_sets_a_strict_http_only_session_cookie() {
    let s = with_token().await;
    let (status, head, _) = http(
        s.addr,
        "POST",
        "/console/login",
        &[("Origin", &format!("http://{}", s.addr))],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /console\r\n"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie");
    let (pair, attrs) = cookie.split_once(';').unwrap();
    let id = pair.strip_prefix("vask_console=").unwrap();
    assert_eq!(id.len(), 64, "256 random bits in hex: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for attr in ["httponly", "samesite=strict", "path=/console", "max-age="] {
        assert!(attrs.contains(attr), "{attr} in {cookie}");
    }
    // Two logins, two sessions.
    assert_ne!(log_in(s.addr).await, log_in(s.addr).await);
    // A login posted from another site is refused.
    let (status, _, _) = http(
        s.addr,
        "POST",
        "/console/login",
        &[("Origin", "http://evil.example")],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(status, 403);
    s.shutdown().await;
}

#[tokio::test]
async fn the_feed_and_the_form_need_the_session_and_no_answer_shows_a_secret() {
    let s = with_token().await;
    let mut everything = String::new();
    match feed(s.addr, None).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let (status, _, _) = http(
        s.addr,
        "POST",
        "/console/apps/1/events",
        &[("Content-Type", "application/json")],
        r#"{"channel":"news","event":"e","data":"{}"}"#,
    )
    .await;
    assert_eq!(status, 401);

    let cookie = log_in(s.addr).await;
    let c = [("Cookie", cookie.as_str())];
    for path in [
        "/console",
        "/console/apps/1",
        "/console/api/apps",
        "/console/static/app.js",
        "/console/static/apps.js",
        "/console/static/common.js",
        "/console/static/console.css",
    ] {
        let (status, head, body) = http(s.addr, "GET", path, &c, "").await;
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{path}: {head}"
        );
        everything.push_str(&body);
    }
    let (_, _, apps) = http(s.addr, "GET", "/console/api/apps", &c, "").await;
    let apps: Value = serde_json::from_str(&apps).unwrap();
    assert_eq!(apps["apps"][0]["id"], "1");
    assert_eq!(apps["apps"][0]["key"], "test-key");

    let mut f = feed(s.addr, Some(&cookie)).await.expect("the feed opens");
    let hello = next_of(&mut f, "hello", &mut everything).await;
    assert_eq!(hello["app"]["id"], "1");
    next_of(&mut f, "state", &mut everything).await;

    // A client connects and subscribes: the feed tells.
    let mut client = connect(s.addr, "test-key").await;
    let opened = next_of(&mut f, "event:connection_opened", &mut everything).await;
    assert_eq!(opened["socket_id"], client.socket_id.as_str());
    client.subscribe("news").await;
    let sub = next_of(&mut f, "event:subscribed", &mut everything).await;
    assert_eq!(sub["channel"], "news");

    // A publish through the API, with its data as text.
    let api = Api::default_app(s.addr);
    let body = serde_json::json!({"name": "ev", "channel": "news", "data": "<b>x</b>"});
    let r = api
        .call("POST", "events", &[], body.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let publish = next_of(&mut f, "event:api_publish", &mut everything).await;
    assert_eq!(publish["data"], "<b>x</b>");
    assert_eq!(publish["event"], "ev");
    assert_eq!(client.recv_event().await["event"], "ev");

    // The test-event form, through the app's own API.
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/console/apps/1/events",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        r#"{"channel":"news","event":"from-console","data":"{\"n\":1}"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    everything.push_str(&body);
    let got = client.recv_event().await;
    assert_eq!(got["event"], "from-console");
    assert_eq!(got["data"], r#"{"n":1}"#);
    // A bad one gets the API's own error.
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/console/apps/1/events",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        r#"{"channel":"bad name","event":"e","data":"{}"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    everything.push_str(&body);
    // From another site: refused.
    let (status, _, _) = http(
        s.addr,
        "POST",
        "/console/apps/1/events",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        r#"{"channel":"news","event":"e","data":"{}"}"#,
    )
    .await;
    assert_eq!(status, 403);

    // A close, with who closed.
    drop(client);
    let closed = next_of(&mut f, "event:connection_closed", &mut everything).await;
    assert!(closed["code"].is_null(), "{closed}");
    let state = next_of(&mut f, "state", &mut everything).await;
    assert!(state["history"]["connections"].is_array());

    assert!(
        !everything.contains(SECRET),
        "a console answer shows the app secret"
    );

    // After logout the session is gone: the feed closes, a new one is refused.
    let (status, head, _) = http(s.addr, "POST", "/console/logout", &c, "").await;
    assert_eq!(status, 303);
    assert!(head.contains("max-age=0"), "{head}");
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = f.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the feed closes once the session ends");
    match feed(s.addr, Some(&cookie)).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    s.shutdown().await;
}

#[tokio::test]
async fn refusals_show_in_the_feed_with_their_reasons() {
    let mut a = app();
    a.limits.max_api_requests_per_sec = Some(1);
    let mut c = config(vec![a]);
    c.admin.token = Some(TOKEN.into());
    let s = start(c).await;
    let cookie = log_in(s.addr).await;
    let mut f = feed(s.addr, Some(&cookie)).await.expect("the feed opens");
    let mut seen = String::new();
    next_of(&mut f, "hello", &mut seen).await;

    // A forged private subscription.
    let mut client = connect(s.addr, "test-key").await;
    client
        .send(r#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"test-key:00"}}"#)
        .await;
    let r = next_of(&mut f, "event:subscription_refused", &mut seen).await;
    assert_eq!(r["channel"], "private-x");
    assert_eq!(r["code"], 401);
    assert!(
        r["text"].as_str().unwrap().contains("Invalid signature"),
        "{r}"
    );

    // Over the API rate: the second call of the second is refused.
    let api = Api::default_app(s.addr);
    let mut refused = false;
    for _ in 0..3 {
        refused |= api.call("GET", "channels", &[], b"").await.status == 429;
    }
    assert!(refused, "the rate limit refused a call");
    let q = next_of(&mut f, "event:quota_refused", &mut seen).await;
    assert_eq!(q["reason"], "max_api_requests_per_sec");

    // The app disabled: its connection is closed by the server, with the
    // code and its meaning.
    let mut disabled = app();
    disabled.enabled = false;
    s.state.apps.replace(&[disabled]).unwrap();
    let closed = next_of(&mut f, "event:connection_closed", &mut seen).await;
    assert_eq!(closed["socket_id"], client.socket_id.as_str());
    assert_eq!(closed["code"], 4003);
    assert_eq!(closed["text"], "Application disabled");
    assert!(!seen.contains(SECRET));
    s.shutdown().await;
}

/// In a cluster (on Redis): counts are the cluster's, and what happens on
/// another node shows (naming that node) once it knows a page watches,
/// within about a second: its connections, subscriptions and publishes;
/// none shows twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_the_console_shows_other_nodes_events_once() {
    use support::cluster::*;
    let engine = Engine::start(Kind::Redis);
    let mut ca = node_config(&engine.url(), "a", cluster_app(None));
    ca.admin.token = Some(TOKEN.into());
    let a = vask_server::start(ca).await.expect("node a starts");
    let b = node(&engine.url(), "b", cluster_app(None)).await;
    let cookie = log_in(a.addr).await;
    let mut f = feed(a.addr, Some(&cookie)).await.expect("the feed opens");
    let mut seen = String::new();
    next_of(&mut f, "hello", &mut seen).await;

    // A client connecting to node B shows on node A's page, naming B, once
    // B knows the page watches (clients that connected before may not).
    let started = tokio::time::Instant::now();
    let mut on_b = loop {
        let c = connect(b.addr, "test-key").await;
        let shown = tokio::time::timeout(
            std::time::Duration::from_millis(400),
            next_of(&mut f, "event:connection_opened", &mut seen),
        )
        .await;
        if let Ok(e) = shown {
            assert!(e["node"].as_str().unwrap().starts_with("b#"), "{e}");
            if e["socket_id"] == c.socket_id.as_str() {
                break c;
            }
        }
        assert!(
            started.elapsed() < WAIT,
            "B's connections never shown: {seen}"
        );
    };
    eprintln!("B shares its events after {:?}", started.elapsed());
    on_b.subscribe("news").await;
    let e = next_of(&mut f, "event:subscribed", &mut seen).await;
    assert_eq!(e["channel"], "news", "{e}");
    assert!(e["node"].as_str().unwrap().starts_with("b#"), "{e}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = next_of(&mut f, "state", &mut seen).await;
        if s["connections"] == 1 && s["channels"][0]["name"] == "news" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's client not counted: {s}"
        );
    }

    let from_b = Api::default_app(b.addr)
        .trigger(serde_json::json!({"name":"from-b","channel":"news","data":"1"}))
        .await;
    assert_eq!(from_b.status, 200);
    let e = next_of(&mut f, "event:api_publish", &mut seen).await;
    assert_eq!(e["event"], "from-b");
    assert!(e["node"].as_str().unwrap().starts_with("b#"), "{e}");
    assert_eq!(on_b.recv_event().await["event"], "from-b");

    // A's own publish shows once (the bus's echo is not logged again).
    for name in ["from-a", "marker"] {
        let r = Api::default_app(a.addr)
            .trigger(serde_json::json!({"name":name,"channel":"news","data":"2"}))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(on_b.recv_event().await["event"], name);
    }
    loop {
        let e = next_of(&mut f, "event:api_publish", &mut seen).await;
        if e["event"] == "marker" {
            break;
        }
    }
    // Let an echo arrive if there were one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        while let Some(Ok(m)) = f.next().await {
            if let Message::Text(t) = m {
                seen.push_str(&t);
            }
        }
    })
    .await;
    assert_eq!(seen.matches(r#""event":"from-a""#).count(), 1, "{seen}");
    assert_eq!(seen.matches(r#""event":"from-b""#).count(), 1, "{seen}");
    a.shutdown().await;
    b.shutdown().await;
}

/// Webhooks sent, retried and dropped show in the feed (a receiver that
/// answers, and a port where nothing listens).
#[tokio::test]
async fn webhooks_sent_retried_and_dropped_show_in_the_feed() {
    use support::cluster::{Hooks, cluster_app};
    let (hook, hooks) = Hooks::start().await;
    let mut a = cluster_app(Some(hook));
    let dead = free_port_addr();
    a.webhooks.push(vask_server::config::WebhookConfig {
        url: format!("http://{dead}/hook"),
        ..a.webhooks[0].clone()
    });
    let mut c = config(vec![a]);
    c.admin.token = Some(TOKEN.into());
    c.server.webhooks.batch_ms = 20;
    c.server.webhooks.retry_initial_ms = 50;
    c.server.webhooks.retry_budget_ms = 400;
    c.server.webhooks.timeout_ms = 500;
    let s = start(c).await;
    let cookie = log_in(s.addr).await;
    let mut f = feed(s.addr, Some(&cookie)).await.expect("the feed opens");
    let mut seen = String::new();
    next_of(&mut f, "hello", &mut seen).await;

    let mut client = connect(s.addr, "test-key").await;
    client.subscribe("news").await;
    let occupied = next_of(&mut f, "event:channel_occupied", &mut seen).await;
    assert_eq!(occupied["channel"], "news");
    let sent = next_of(&mut f, "event:webhook_sent", &mut seen).await;
    assert_eq!(sent["url"], format!("http://{hook}/hook"));
    assert!(sent["events"].as_u64().unwrap() >= 1, "{sent}");
    hooks
        .wait_for(WAIT, |n| {
            n.iter().any(|e| e.starts_with("channel_occupied news"))
        })
        .await;
    let retried = next_of(&mut f, "event:webhook_retried", &mut seen).await;
    assert_eq!(retried["url"], format!("http://{dead}/hook"));
    let dropped = next_of(&mut f, "event:webhook_dropped", &mut seen).await;
    assert_eq!(dropped["url"], format!("http://{dead}/hook"));
    assert!(dropped["attempts"].as_u64().unwrap() >= 2, "{dropped}");
    assert!(!seen.contains(SECRET));
    s.shutdown().await;
}

/// An address where nothing listens.
fn free_port_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A page that does not keep up misses events: counted in
/// `vask_dropped_total{reason="console_lagged"}` and told to the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_falls_behind_is_told_how_many_events_it_missed() {
    let s = with_token().await;
    let cookie = log_in(s.addr).await;
    let mut f = feed(s.addr, Some(&cookie)).await.expect("the feed opens");
    let mut seen = String::new();
    next_of(&mut f, "hello", &mut seen).await;
    // The feed is not read while 30 000 events happen (300 publishes to
    // 100 channels, with some data): the socket's buffers fill, then the
    // queue.
    let api = Api::default_app(s.addr);
    let channels: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let data = "x".repeat(200);
    for _ in 0..300 {
        let r = api
            .trigger(serde_json::json!({"name":"e","channels":channels,"data":data}))
            .await;
        assert_eq!(r.status, 200);
    }
    let skipped = next_of(&mut f, "skipped", &mut seen).await;
    assert!(skipped["n"].as_u64().unwrap() > 0, "{skipped}");
    let (_, _, metrics) = http(s.addr, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.contains(r#"vask_dropped_total{app="1",reason="console_lagged"}"#),
        "{metrics}"
    );
    s.shutdown().await;
}
