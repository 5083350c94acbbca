//! The admin API under `/admin/`: list, create, change, disable, delete
//! apps and rotate their secrets, with a bearer token (`[admin] token`).
//! No token configured: no admin API (404). JSON in and out; errors in the
//! Pusher API's form `{"error": ..., "code": status}`. Writes go to the
//! PostgreSQL store (every node sees them within a second); with the
//! configuration file they answer 409 naming the file. A secret is shown
//! only by the answer that creates or rotates it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::api::json;
use crate::apps::App;
use crate::config::AppConfig;
use crate::endpoint::State;

type Resp = Response<Full<Bytes>>;

/// An admin API refusal: a status and a message.
#[derive(Debug)]
pub(crate) struct Refusal(pub(crate) StatusCode, pub(crate) String);

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

/// Handles `/admin` and `/admin/...`.
pub(crate) async fn handle<B>(state: &Arc<State>, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(token) = &state.admin_token else {
        return crate::api::error(StatusCode::NOT_FOUND, "Not found");
    };
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !bearer.is_some_and(|t| token.matches(t)) {
        state.metrics.refused("admin_unauthorized");
        let mut r = crate::api::error(
            StatusCode::UNAUTHORIZED,
            "Missing or wrong admin token (Authorization: Bearer TOKEN)",
        );
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let resp = match route(state, req).await {
        Ok(r) => r,
        Err(Refusal(status, message)) => crate::api::error(status, message),
    };
    state.metrics.http(resp.status().as_u16());
    resp
}

async fn route<B>(state: &Arc<State>, req: Request<B>) -> Result<Resp, Refusal>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let parts: Vec<&str> = path.split('/').skip(2).collect();
    let method = req.method().clone();
    let not_allowed = |allow: &'static str| {
        let mut r = crate::api::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        Ok(r)
    };
    match parts.as_slice() {
        ["apps"] => match method {
            Method::GET => Ok(list(state)),
            Method::POST => {
                let body = read_json(state, req).await?;
                create(state, body).await
            }
            _ => not_allowed("GET, POST"),
        },
        ["apps", id] => {
            let id = (*id).to_owned();
            match method {
                Method::GET => Ok(json(StatusCode::OK, &view(&*find(state, &id)?))),
                Method::PATCH => {
                    let body = read_json(state, req).await?;
                    update(state, &id, body).await
                }
                Method::DELETE => delete(state, &id).await,
                _ => not_allowed("GET, PATCH, DELETE"),
            }
        }
        ["apps", id, "rotate"] => {
            let id = (*id).to_owned();
            match method {
                Method::POST => rotate(state, &id).await,
                _ => not_allowed("POST"),
            }
        }
        ["usage"] => match method {
            Method::GET => Ok(all_usage(state)),
            _ => not_allowed("GET"),
        },
        ["apps", id, "usage"] => match method {
            Method::GET => {
                let app = find(state, id)?;
                let mut r = Response::new(Full::new(Bytes::from(app.usage.body())));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(r)
            }
            _ => not_allowed("GET"),
        },
        _ => Err(Refusal::new(StatusCode::NOT_FOUND, "Not found")),
    }
}

fn find(state: &State, id: &str) -> Result<Arc<App>, Refusal> {
    state
        .apps
        .current()
        .by_id(id)
        .cloned()
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("No app {id:?}")))
}

/// An app as the admin API shows it: its settings without the secret, and
/// its connections now (in the whole cluster).
fn view(app: &App) -> Value {
    let mut v = settings(&app.config);
    if let Value::Object(m) = &mut v {
        m.insert(
            "connections".into(),
            app.hub.cluster_connection_count().into(),
        );
    }
    v
}

/// An app's settings as JSON, without its secret.
fn settings(app: &AppConfig) -> Value {
    let mut v = serde_json::to_value(app).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("secret");
    }
    v
}

/// A view with the secret: only for the answers that create or rotate it.
fn with_secret(app: &AppConfig) -> Value {
    let mut v = settings(app);
    if let Value::Object(m) = &mut v {
        m.insert("secret".into(), app.secret.expose().into());
    }
    v
}

fn list(state: &State) -> Resp {
    let apps: Vec<Value> = state.apps.current().iter().map(|a| view(a)).collect();
    json(StatusCode::OK, &serde_json::json!({ "apps": apps }))
}

/// Every app's usage: `{"apps": {"<id>": {"day": ..., "month": ...}}}`.
fn all_usage(state: &State) -> Resp {
    let apps: Map<String, Value> = state
        .apps
        .current()
        .iter()
        .map(|a| {
            let usage = serde_json::from_slice(&a.usage.body()).unwrap_or(Value::Null);
            (a.config.id.clone(), usage)
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "apps": apps }))
}

/// Reads a JSON object body, bounded in size and time.
async fn read_json<B>(state: &State, req: Request<B>) -> Result<Map<String, Value>, Refusal>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let deadline = Duration::from_secs(state.config.body_timeout_secs);
    let body = crate::api::read_bounded(req.into_body(), state.config.max_body_bytes, deadline)
        .await
        .map_err(|(status, message)| Refusal(status, message))?;
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object",
        )),
        Err(e) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("The body is not valid JSON: {e}"),
        )),
    }
}

/// `n` random bytes as lowercase hex.
fn random_hex(bytes: usize) -> Result<String, Refusal> {
    crate::api::random_hex(bytes).map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no random source: {e}"),
        )
    })
}

/// A fresh secret: 128 bits, as 32 hex characters.
fn new_secret() -> Result<pusher_auth::Secret, Refusal> {
    random_hex(16).map(Into::into)
}

/// Applies `patch` to `base` (both JSON objects): top-level fields are
/// replaced, `limits` is merged field by field.
fn merge(base: &mut Value, patch: Map<String, Value>) {
    let Value::Object(b) = base else { return };
    for (k, v) in patch {
        match (k.as_str(), b.get_mut(&k), v) {
            ("limits", Some(Value::Object(limits)), Value::Object(p)) => {
                for (lk, lv) in p {
                    limits.insert(lk, lv);
                }
            }
            (_, _, v) => {
                b.insert(k, v);
            }
        }
    }
}

/// Settings from JSON, or a 400 naming the field.
fn parse(v: Value) -> Result<AppConfig, Refusal> {
    serde_json::from_value(v).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Checks `next` as part of the whole list (ids and keys unique, every
/// field valid): a 409 for a taken id or key, else a 400 naming the field.
fn check(state: &State, next: &AppConfig, replacing: Option<&str>) -> Result<(), Refusal> {
    let current = state.apps.current();
    let mut list: Vec<AppConfig> = current
        .iter()
        .filter(|a| Some(a.config.id.as_str()) != replacing)
        .map(|a| a.config.clone())
        .collect();
    if list.iter().any(|a| a.id == next.id) {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("App id {:?} is taken", next.id),
        ));
    }
    if list.iter().any(|a| a.key == next.key) {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("App key {:?} is taken", next.key),
        ));
    }
    list.push(next.clone());
    let i = list.len() - 1;
    crate::config::validate_apps(&list).map_err(|e| {
        let message = e.to_string().replace(&format!("apps[{i}]."), "");
        Refusal::new(StatusCode::BAD_REQUEST, message)
    })
}

async fn create(state: &Arc<State>, body: Map<String, Value>) -> Result<Resp, Refusal> {
    let taken = state.apps.current();
    let mut id = String::new();
    for _ in 0..16 {
        let n = u32::from_str_radix(&random_hex(4)?, 16).unwrap_or(0);
        id = (1_000_000 + n % 9_000_000).to_string();
        if taken.by_id(&id).is_none() {
            break;
        }
    }
    let defaults = AppConfig {
        id,
        key: random_hex(10)?,
        secret: new_secret()?,
        enabled: true,
        client_events: false,
        subscription_count: false,
        ..AppConfig::development()
    };
    let mut v = serde_json::to_value(&defaults).unwrap_or(Value::Null);
    merge(&mut v, body);
    let app = parse(v)?;
    check(state, &app, None)?;
    state.source.create(&app).await?;
    state.reload_store().await?;
    Ok(json(StatusCode::CREATED, &with_secret(&app)))
}

async fn update(state: &Arc<State>, id: &str, body: Map<String, Value>) -> Result<Resp, Refusal> {
    let app = find(state, id)?;
    if body.contains_key("id") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "id cannot change (create a new app instead)",
        ));
    }
    if body.contains_key("secret") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("secret is changed by POST /admin/apps/{id}/rotate"),
        ));
    }
    let mut v = serde_json::to_value(&app.config).unwrap_or(Value::Null);
    merge(&mut v, body);
    let next = parse(v)?;
    check(state, &next, Some(id))?;
    state.source.update(&next).await?;
    state.reload_store().await?;
    Ok(json(StatusCode::OK, &view(&*find(state, id)?)))
}

async fn rotate(state: &Arc<State>, id: &str) -> Result<Resp, Refusal> {
    let app = find(state, id)?;
    let next = AppConfig {
        secret: new_secret()?,
        ..app.config.clone()
    };
    state.source.update(&next).await?;
    state.reload_store().await?;
    tracing::info!(app = %id, "app secret rotated through the admin API");
    Ok(json(StatusCode::OK, &with_secret(&next)))
}

async fn delete(state: &Arc<State>, id: &str) -> Result<Resp, Refusal> {
    find(state, id)?;
    state.source.delete(id).await?;
    state.reload_store().await?;
    tracing::info!(app = %id, "app deleted through the admin API");
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}
