//! The debug console under `/console`: a few plain pages built into the
//! binary that show the apps and, live, what happens to one of them.
//!
//! Enabled only with an admin token (`[admin] token`); without one every
//! `/console` path answers the usual JSON 404. The login page takes the
//! token and sets a session cookie (random id, `HttpOnly`,
//! `SameSite=Strict`, `Path=/console`); sessions live in memory, bounded in
//! number and time. The app page's live feed is a WebSocket
//! (`/console/apps/{id}/feed`): the server already speaks WebSocket, and
//! hyper's upgrade leaves the endpoint's response body type unchanged for
//! embedders. Events come from each app's [`Tap`], which costs the publish
//! path one relaxed load while no page watches.
//!
//! In a cluster, counts, channels and members are cluster-wide (the hub's
//! replicas), and so is the log: a node with a page open on an app says so
//! on the bus every second (`Wire::Watch`), and every other node then
//! shares that app's events with it (`Wire::Observed`, batched, from a
//! bounded queue: what does not fit is counted as
//! `vask_dropped_total{reason="console_unshared"}`) until the watch lapses
//! (3 s). Each event shows once, on the node where it happened, named in
//! the log: connections, subscriptions, client events and API publishes
//! where the client or the call was; channel occupied/vacated, members and
//! webhooks on the node that sends webhooks (the leader). An app nobody
//! watches anywhere costs two relaxed loads per hook. The console never
//! shows an app's secret.

mod tap;

pub(crate) use tap::Tap;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue, LOCATION, ORIGIN,
    SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SET_COOKIE, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pusher_proto::ChannelName;
use pusher_proto::http::InfoRequest;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::apps::{App, Status};
use crate::endpoint::{Alive, State, stopped};

type Resp = Response<Full<Bytes>>;

/// The session cookie's name.
const COOKIE_NAME: &str = "vask_console";
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 64;
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Live feeds open at once (each is a task and a queue).
const MAX_FEEDS: usize = 32;
/// Channels listed on the app page (the count says how many there are).
const MAX_CHANNELS: usize = 200;
/// Members listed per presence channel.
const MAX_MEMBERS: usize = 50;
/// A feed that cannot take a message within this long is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body a console POST may have.
const MAX_BODY: usize = 64 * 1024;

const LOGIN_HTML: &str = include_str!("login.html");
const APPS_HTML: &str = include_str!("apps.html");
const APP_HTML: &str = include_str!("app.html");
const CSS: &str = include_str!("console.css");
const APPS_JS: &str = include_str!("apps.js");
const APP_JS: &str = include_str!("app.js");
const COMMON_JS: &str = include_str!("common.js");
const FAVICON: &str = include_str!("favicon.svg");

/// The console's sessions and open feeds (one per endpoint).
#[derive(Debug, Default)]
pub(crate) struct Console {
    /// Session id → when it expires.
    sessions: Mutex<HashMap<String, Instant>>,
    feeds: AtomicUsize,
}

impl Console {
    fn new_session(&self) -> Option<String> {
        let id = crate::api::random_hex(32).ok()?;
        let now = Instant::now();
        let mut s = self.sessions.lock();
        s.retain(|_, exp| *exp > now);
        if s.len() >= MAX_SESSIONS
            && let Some(oldest) = s.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            s.remove(&oldest);
        }
        s.insert(id.clone(), now + SESSION_TTL);
        Some(id)
    }

    fn valid(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .get(id)
            .is_some_and(|exp| *exp > Instant::now())
    }

    fn end(&self, id: &str) {
        self.sessions.lock().remove(id);
    }
}

/// Whether `path` is the console's.
pub(crate) fn owns(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Takes this second's sample of an app's figures for the charts (called
/// once a second by the endpoint's per-app task, when the console is on).
pub(crate) fn sample(app: &App, now: u64, connections: usize) {
    app.metrics
        .console
        .sample(now, connections, &app.usage.total());
}

/// Answers a `/console` request.
pub(crate) async fn handle<B>(state: Arc<State>, req: Request<B>, alive: Alive) -> Resp
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(token) = state.admin_token.clone() else {
        return crate::api::error(StatusCode::NOT_FOUND, "Not found");
    };
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let parts: Vec<&str> = path.split('/').skip(2).collect();
    let session = session_id(&req).filter(|id| state.console.valid(id));
    let method = req.method().clone();
    match (&method, parts.as_slice()) {
        (&Method::GET, []) => match session {
            Some(_) => page(StatusCode::OK, APPS_HTML.to_owned()),
            None => page(StatusCode::OK, login_page(None)),
        },
        (&Method::POST, ["login"]) => login(&state, &token, req).await,
        (&Method::POST, ["logout"]) => {
            if !same_origin(&req) {
                return forbidden();
            }
            if let Some(id) = &session {
                state.console.end(id);
            }
            redirect(
                "/console",
                Some(format!("{COOKIE_NAME}=; {}; Max-Age=0", attrs(&state))),
            )
        }
        (&Method::GET, ["static", file]) => asset(file),
        _ if session.is_none() => match (&method, parts.as_slice()) {
            (&Method::GET, ["apps", _]) => redirect("/console", None),
            _ => crate::api::error(StatusCode::UNAUTHORIZED, "Log in to the console first"),
        },
        (&Method::GET, ["api", "apps"]) => json_resp(StatusCode::OK, &apps_json(&state)),
        (&Method::GET, ["apps", id]) => match state.apps.current().by_id(id) {
            Some(_) => page(StatusCode::OK, APP_HTML.to_owned()),
            None => crate::api::error(StatusCode::NOT_FOUND, format!("No app {id:?}")),
        },
        (&Method::GET, ["apps", id, "feed"]) => {
            let id = (*id).to_owned();
            feed(state, req, &id, session.unwrap_or_default(), alive)
        }
        (&Method::POST, ["apps", id, "events"]) => {
            let id = (*id).to_owned();
            test_event(&state, req, &id).await
        }
        _ => crate::api::error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// The session id the request's cookie carries.
fn session_id<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE_NAME}=")))
        .map(str::to_owned)
}

/// The session cookie's attributes (`Secure` when this server speaks TLS).
fn attrs(state: &State) -> &'static str {
    if state.config.tls.is_some() {
        "Path=/console; HttpOnly; SameSite=Strict; Secure"
    } else {
        "Path=/console; HttpOnly; SameSite=Strict"
    }
}

/// A browser's request from another site is refused (beside `SameSite`).
fn same_origin<B>(req: &Request<B>) -> bool {
    let Some(origin) = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host == Some(host)
}

fn forbidden() -> Resp {
    crate::api::error(StatusCode::FORBIDDEN, "Cross-origin request refused")
}

/// Headers every console answer carries: no caching, no framing, no
/// script but the console's own.
fn guard(r: &mut Resp) {
    let h = r.headers_mut();
    let set = |h: &mut hyper::HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, CACHE_CONTROL, "no-store");
    set(
        h,
        HeaderName::from_static("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(
        h,
        HeaderName::from_static("x-content-type-options"),
        "nosniff",
    );
    // Not `no-referrer`: Chromium then sends `Origin: null` with the
    // login form, which the same-origin check refuses.
    set(h, HeaderName::from_static("referrer-policy"), "same-origin");
}

fn page(status: StatusCode, html: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(html)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    guard(&mut r);
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    let mut r = crate::api::json(status, v);
    guard(&mut r);
    r
}

fn redirect(to: &'static str, cookie: Option<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    guard(&mut r);
    r
}

fn asset(file: &str) -> Resp {
    let (body, kind) = match file {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "apps.js" => (APPS_JS, "text/javascript; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "common.js" => (COMMON_JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return crate::api::error(StatusCode::NOT_FOUND, "Not found"),
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    guard(&mut r);
    r
}

/// The login page, with a fixed message when the last try failed.
fn login_page(error: Option<&'static str>) -> String {
    let message = error
        .map(|e| format!(r#"<p class="error" id="login-error">{e}</p>"#))
        .unwrap_or_default();
    LOGIN_HTML.replace("<!--error-->", &message)
}

/// A console request's body (at most [`MAX_BODY`], within 10 s).
async fn read_body<B>(req: Request<B>) -> Result<Bytes, Resp>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    crate::api::read_bounded(req.into_body(), MAX_BODY, Duration::from_secs(10))
        .await
        .map_err(|(status, message)| crate::api::error(status, message))
}

async fn login<B>(state: &State, token: &pusher_auth::Secret, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !same_origin(&req) {
        return forbidden();
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let given = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| pusher_auth::query_param(b, "token"))
        .unwrap_or_default();
    if given.is_empty() || !token.matches(given.trim()) {
        state.metrics.refused("console_login");
        tracing::info!("console login refused: wrong token");
        return page(StatusCode::UNAUTHORIZED, login_page(Some("Wrong token.")));
    }
    match state.console.new_session() {
        Some(id) => redirect(
            "/console",
            Some(format!(
                "{COOKIE_NAME}={id}; {}; Max-Age={}",
                attrs(state),
                SESSION_TTL.as_secs()
            )),
        ),
        None => crate::api::error(StatusCode::INTERNAL_SERVER_ERROR, "No random source"),
    }
}

/// Every app, as the apps page lists it (never its secret).
fn apps_json(state: &State) -> Value {
    let apps: Vec<Value> = state
        .apps
        .current()
        .iter()
        .map(|a| {
            let day = a.usage.total().day.counts;
            json!({
                "id": a.config.id,
                "key": a.config.key,
                "enabled": a.config.enabled,
                "connections": a.hub.cluster_connection_count(),
                "broadcasts": day.broadcasts,
                "deliveries": day.deliveries,
            })
        })
        .collect();
    json!({ "apps": apps })
}

/// What the app page shows besides the log: counts, channels, members,
/// today's usage and the last hour, all cluster-wide.
fn snapshot(app: &App) -> Value {
    let info = InfoRequest {
        user_count: true,
        subscription_count: true,
        cache: false,
    };
    let all = app.hub.channels("", info);
    let channels: Vec<Value> = all
        .iter()
        .take(MAX_CHANNELS)
        .map(|(name, counts)| {
            let members = ChannelName::with_max_len(name, usize::MAX)
                .ok()
                .filter(|n| n.kind().is_presence())
                .map(|n| {
                    let users = app.hub.users(&n);
                    let more = users.len().saturating_sub(MAX_MEMBERS);
                    json!({ "ids": &users[..users.len().min(MAX_MEMBERS)], "more": more })
                });
            json!({
                "name": name,
                "subscriptions": counts.subscription_count,
                "users": counts.user_count,
                "members": members,
            })
        })
        .collect();
    let day = app.usage.total().day.counts;
    json!({
        "type": "state",
        "connections": app.hub.cluster_connection_count(),
        "channel_total": all.len(),
        "channels": channels,
        "usage": {
            "broadcasts": day.broadcasts,
            "deliveries": day.deliveries,
            "api_requests": day.api_requests,
            "peak_connections": day.peak_connections,
        },
        "history": app.metrics.console.history(),
    })
}

/// Upgrades to the app's live feed.
fn feed<B>(
    state: Arc<State>,
    mut req: Request<B>,
    id: &str,
    session: String,
    alive: Alive,
) -> Resp {
    if !same_origin(&req) {
        return forbidden();
    }
    let Some(app) = state.apps.current().by_id(id).cloned() else {
        return crate::api::error(StatusCode::NOT_FOUND, format!("No app {id:?}"));
    };
    let is_ws = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return crate::api::error(StatusCode::BAD_REQUEST, "The feed is a WebSocket");
    };
    if !is_ws {
        return crate::api::error(StatusCode::BAD_REQUEST, "The feed is a WebSocket");
    }
    if state.console.feeds.fetch_add(1, Ordering::Relaxed) >= MAX_FEEDS {
        state.console.feeds.fetch_sub(1, Ordering::Relaxed);
        return crate::api::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("At most {MAX_FEEDS} console feeds at once"),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            // The page sends nothing but control frames: small reads; the
            // writes are bounded by WRITE_TIMEOUT and the send buffer.
            let config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .max_write_buffer_size(1 << 20)
                .max_message_size(Some(4096))
                .max_frame_size(Some(4096));
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            run_feed(&state, &app, ws, &session).await;
        }
        state.console.feeds.fetch_sub(1, Ordering::Relaxed);
        drop(alive);
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Sends one message, bounded in time.
async fn send<S>(ws: &mut WebSocketStream<S>, text: String) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::text(text))).await,
        Ok(Ok(()))
    )
}

/// The feed: the app's events as they happen, its state once a second;
/// ends when the page goes, the session ends, the app is deleted or the
/// server shuts down.
async fn run_feed<S>(state: &State, app: &Arc<App>, mut ws: WebSocketStream<S>, session: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut viewer = app.metrics.console.watch();
    let hello = json!({
        "type": "hello",
        "app": {
            "id": app.config.id,
            "key": app.config.key,
            "enabled": app.config.enabled,
            "client_events": app.config.client_events,
        },
    });
    if !send(&mut ws, hello.to_string()).await || !send(&mut ws, snapshot(app).to_string()).await {
        return;
    }
    let mut shutdown = state.shutdown.clone();
    let mut status = app.life.status.subscribe();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.reset();
    // Logged once per page, then only counted.
    let mut lagged = false;
    loop {
        let out = tokio::select! {
            r = viewer.rx.recv() => match r {
                Ok(line) => line.to_string(),
                Err(RecvError::Lagged(n)) => {
                    app.metrics.dropped("console_lagged", n);
                    if !lagged {
                        lagged = true;
                        tracing::info!(app = %app.config.id, skipped = n,
                            "a console page fell behind its app's events; it misses some \
                             (vask_dropped_total reason=console_lagged)");
                    }
                    json!({ "type": "skipped", "n": n }).to_string()
                }
                Err(RecvError::Closed) => return,
            },
            _ = every.tick() => {
                if !state.console.valid(session) {
                    let _ = ws.close(None).await;
                    return;
                }
                app.metrics
                    .console
                    .state_line(Duration::from_millis(900), || snapshot(app).to_string())
                    .to_string()
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            Ok(()) = status.changed() => {
                if *status.borrow_and_update() == Status::Deleted {
                    let _ = send(&mut ws, json!({ "type": "deleted" }).to_string()).await;
                    return;
                }
                continue;
            }
            _ = stopped(&mut shutdown) => {
                let _ = ws.close(None).await;
                return;
            }
        };
        if !send(&mut ws, out).await {
            return;
        }
    }
}

/// Sends a test event through the app's own HTTP API: the server signs
/// the request with the app's secret, which never reaches the page.
async fn test_event<B>(state: &Arc<State>, req: Request<B>, id: &str) -> Resp
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !same_origin(&req) {
        return forbidden();
    }
    let Some(app) = state.apps.current().by_id(id).cloned() else {
        return crate::api::error(StatusCode::NOT_FOUND, format!("No app {id:?}"));
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return crate::api::error(
                StatusCode::BAD_REQUEST,
                r#"The body must be a JSON object {"channel", "event", "data"}"#,
            );
        }
    };
    let field = |k: &str| form.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let trigger = json!({
        "name": field("event"),
        "channels": [field("channel")],
        "data": field("data"),
    });
    let body = Bytes::from(trigger.to_string());
    let path = format!(
        "/apps/{}/events",
        pusher_auth::encode_path_segment(&app.config.id)
    );
    let query = pusher_auth::sign_request(
        "POST",
        &path,
        &[],
        &body,
        &app.config.key,
        app.config.secret.expose(),
        crate::usage::now_unix(),
    );
    let Ok(api_req) = Request::builder()
        .method(Method::POST)
        .uri(format!("{path}?{query}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
    else {
        return crate::api::error(StatusCode::BAD_REQUEST, "Invalid app id");
    };
    let mut r = crate::api::handle(state, api_req).await;
    r.headers_mut().remove(hyper::header::CONNECTION);
    guard(&mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_bounded_and_expire() {
        let c = Console::default();
        let first = c.new_session().unwrap();
        assert_eq!(first.len(), 64);
        assert!(c.valid(&first));
        assert!(!c.valid("not-a-session"));
        // Past the bound, the oldest goes.
        let mut ids: Vec<String> = (0..MAX_SESSIONS)
            .map(|_| c.new_session().unwrap())
            .collect();
        assert!(!c.valid(&first), "the oldest session was dropped");
        assert_eq!(c.sessions.lock().len(), MAX_SESSIONS);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), MAX_SESSIONS, "ids do not repeat");
        // An expired one is not valid, and goes at the next login.
        let old = ids[0].clone();
        c.sessions
            .lock()
            .insert(old.clone(), Instant::now() - Duration::from_secs(1));
        assert!(!c.valid(&old));
        c.new_session().unwrap();
        assert!(!c.sessions.lock().contains_key(&old));
        c.end(&ids[1]);
        assert!(!c.valid(&ids[1]));
    }

    #[test]
    fn only_same_origin_browser_requests_pass() {
        let req = |origin: Option<&str>| {
            let mut b = Request::builder().header(HOST, "127.0.0.1:6001");
            if let Some(o) = origin {
                b = b.header(ORIGIN, o);
            }
            b.body(()).unwrap()
        };
        assert!(same_origin(&req(None)));
        assert!(same_origin(&req(Some("http://127.0.0.1:6001"))));
        assert!(same_origin(&req(Some("https://127.0.0.1:6001"))));
        assert!(!same_origin(&req(Some("http://127.0.0.1:6002"))));
        assert!(!same_origin(&req(Some("null"))));
        assert!(!same_origin(&req(Some("http://evil.example"))));
    }
}
