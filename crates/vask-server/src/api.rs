//! The Pusher HTTP API: `/apps/{app_id}/...`, signed requests, JSON errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use pusher_auth::{
    HttpAuthError, HttpVerifier, RequestParts, VerifiedRequest, decode_path_segment, query_param,
};
use pusher_hub::Publish;
use pusher_proto::http::{
    BatchRequest, BatchResponse, ChannelCounts, ChannelsResponse, ErrorBody, InfoRequest,
    TriggerRequest, TriggerResponse, UserEntry, UsersResponse,
};
use pusher_proto::{ChannelName, SocketId, validate_event_name};
use serde::Serialize;

use crate::apps::App;
use crate::server::State;

type Resp = Response<Full<Bytes>>;

/// A JSON error body `{"error": ..., "code": status}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json(
        status,
        &ErrorBody {
            error: message.into(),
            code: status.as_u16(),
        },
    )
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A refused request: its status and message.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

fn err(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

fn bad(message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, message)
}

enum Route {
    Events,
    Batch,
    Channels,
    Channel(String),
    Users(String),
    Terminate(String),
}

fn route(method: &Method, rest: &[&str]) -> Result<Route, ApiError> {
    let (want, r) = match rest {
        ["events"] => (Method::POST, Route::Events),
        ["batch_events"] => (Method::POST, Route::Batch),
        ["channels"] => (Method::GET, Route::Channels),
        ["channels", c] => (
            Method::GET,
            Route::Channel(
                decode_path_segment(c).ok_or_else(|| bad("invalid channel name encoding"))?,
            ),
        ),
        ["channels", c, "users"] => (
            Method::GET,
            Route::Users(
                decode_path_segment(c).ok_or_else(|| bad("invalid channel name encoding"))?,
            ),
        ),
        ["users", u, "terminate_connections"] => (
            Method::POST,
            Route::Terminate(
                decode_path_segment(u).ok_or_else(|| bad("invalid user id encoding"))?,
            ),
        ),
        _ => return Err(err(StatusCode::NOT_FOUND, "Not found")),
    };
    if *method != want {
        return Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("use {want} for this endpoint"),
        ));
    }
    Ok(r)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Handles `/apps/...`; counts the answer's status.
pub(crate) async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Resp {
    let resp = match serve(state, req).await {
        Ok(r) => r,
        Err(ApiError(status, message)) => error(status, message),
    };
    state.metrics.http(resp.status().as_u16());
    resp
}

async fn serve(state: &Arc<State>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let (app, route) = if let Some(rest) = path.strip_prefix("/apps/") {
        let segments: Vec<&str> = rest.split('/').collect();
        let app = state
            .apps
            .by_id_or_key(segments[0])
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "Unknown app"))?;
        (app, route(&parts.method, &segments[1..])?)
    } else {
        // pusher-http-python 3.3 posts terminate_connections to
        // `/users/{id}/terminate_connections` without `/apps/{id}`: the
        // signed auth_key names the app.
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let route = route(&parts.method, &segments)?;
        if !matches!(route, Route::Terminate(_)) {
            return Err(err(StatusCode::NOT_FOUND, "Not found"));
        }
        let key = query_param(&query, "auth_key")
            .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "Missing auth_key"))?;
        let app = state
            .apps
            .by_key(&key)
            .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "Unknown auth_key"))?;
        (app, route)
    };
    if !app.config.enabled {
        return Err(err(StatusCode::FORBIDDEN, "App disabled"));
    }
    let body = Limited::new(body, state.config.max_body_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "Request body larger than {} bytes",
                        state.config.max_body_bytes
                    ),
                )
            } else {
                bad("could not read the request body")
            }
        })?
        .to_bytes();
    let verified = verify(state, app, parts.method.as_str(), &path, &query, &body)?;
    let now = state.now_ms();
    match route {
        Route::Events => trigger(app, &body, now),
        Route::Batch => batch(app, &body, now),
        Route::Channels => channels(app, &verified),
        Route::Channel(name) => channel(app, &name, &verified, now),
        Route::Users(name) => users(app, &name),
        Route::Terminate(user) => {
            app.hub.terminate_user(&user);
            Ok(json(StatusCode::OK, &serde_json::json!({})))
        }
    }
}

fn verify(
    state: &State,
    app: &App,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<VerifiedRequest, ApiError> {
    let key = query_param(query, "auth_key")
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "Missing auth_key"))?;
    if key != app.config.key {
        return Err(err(StatusCode::UNAUTHORIZED, "Unknown auth_key"));
    }
    let verifier = HttpVerifier {
        max_skew_secs: state.config.timestamp_window_secs,
    };
    let req = RequestParts {
        method,
        path,
        query,
        body,
    };
    verifier
        .verify(&req, &app.config.key, &app.config.secret, now_unix())
        .map_err(|e: HttpAuthError| {
            let status = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::UNAUTHORIZED);
            err(status, e.to_string())
        })
}

fn info(text: Option<&str>) -> Result<InfoRequest, ApiError> {
    text.map(InfoRequest::parse)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|e| bad(e.to_string()))
}

/// A validated event, ready to publish.
struct Event {
    names: Vec<ChannelName>,
    name: String,
    data: String,
    except: Option<SocketId>,
    info: InfoRequest,
}

fn validate(
    app: &App,
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<&str>,
    info_text: Option<&str>,
) -> Result<Event, ApiError> {
    let l = &app.config.limits;
    validate_event_name(&name, l.max_event_name_len).map_err(|e| bad(e.to_string()))?;
    if data.len() > l.max_event_bytes {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Event data larger than {} bytes", l.max_event_bytes),
        ));
    }
    if channels.is_empty() {
        return Err(bad("Missing channels or channel"));
    }
    if channels.len() > l.max_channels_per_trigger {
        return Err(bad(format!(
            "More than {} channels",
            l.max_channels_per_trigger
        )));
    }
    let names = channels
        .iter()
        .map(|c| {
            ChannelName::with_max_len(c, l.max_channel_name_len)
                .map_err(|e| bad(format!("channel {c:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if names.len() > 1 && names.iter().any(|n| n.kind().is_encrypted()) {
        return Err(bad("An encrypted channel must be triggered alone"));
    }
    let except = match socket_id {
        Some(s) => Some(
            s.parse::<SocketId>()
                .map_err(|e| bad(format!("socket_id: {e}")))?,
        ),
        None => None,
    };
    let info = info(info_text)?;
    Ok(Event {
        names,
        name,
        data,
        except,
        info,
    })
}

fn publish(app: &App, e: &Event, now: u64) -> BTreeMap<String, ChannelCounts> {
    let out = app.hub.publish(
        &Publish {
            channels: &e.names,
            event: &e.name,
            data: &e.data,
            except: e.except,
            info: e.info,
        },
        now,
    );
    app.metrics.publishes.inc_by(e.names.len() as u64);
    app.metrics.deliveries.inc_by(out.delivery.delivered);
    if out.delivery.dropped > 0 {
        app.metrics.dropped("outbox_full", out.delivery.dropped);
    }
    out.channels
}

fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Invalid JSON body: {e}")))
}

fn trigger(app: &App, body: &[u8], now: u64) -> Result<Resp, ApiError> {
    let t: TriggerRequest = parse_json(body)?;
    let channels = match (t.channels, t.channel) {
        (Some(c), _) => c,
        (None, Some(c)) => vec![c],
        (None, None) => Vec::new(),
    };
    let e = validate(
        app,
        t.name,
        t.data,
        channels,
        t.socket_id.as_deref(),
        t.info.as_deref(),
    )?;
    let counts = publish(app, &e, now);
    let resp = TriggerResponse {
        channels: (e.info.user_count || e.info.subscription_count).then_some(counts),
    };
    Ok(json(StatusCode::OK, &resp))
}

fn batch(app: &App, body: &[u8], now: u64) -> Result<Resp, ApiError> {
    let b: BatchRequest = parse_json(body)?;
    let max = app.config.limits.max_batch_events;
    if b.batch.len() > max {
        return Err(bad(format!(
            "Batch of {} events; at most {max}",
            b.batch.len()
        )));
    }
    // All or nothing: validate every event before publishing any.
    let events = b
        .batch
        .into_iter()
        .map(|e| {
            validate(
                app,
                e.name,
                e.data,
                vec![e.channel],
                e.socket_id.as_deref(),
                e.info.as_deref(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let any_info = events
        .iter()
        .any(|e| e.info.user_count || e.info.subscription_count);
    let mut out = Vec::with_capacity(events.len());
    for e in &events {
        let counts = publish(app, e, now);
        out.push(counts.into_values().next().unwrap_or_default());
    }
    Ok(json(
        StatusCode::OK,
        &BatchResponse {
            batch: any_info.then_some(out),
        },
    ))
}

fn channels(app: &App, v: &VerifiedRequest) -> Result<Resp, ApiError> {
    let prefix = v.param("filter_by_prefix").unwrap_or("");
    let info = info(v.param("info"))?;
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(bad("info=user_count needs filter_by_prefix=presence-"));
    }
    if info.cache {
        return Err(bad("info=cache is only for one channel"));
    }
    Ok(json(
        StatusCode::OK,
        &ChannelsResponse {
            channels: app.hub.channels(prefix, info),
        },
    ))
}

fn channel_name(app: &App, name: &str) -> Result<ChannelName, ApiError> {
    ChannelName::with_max_len(name, app.config.limits.max_channel_name_len)
        .map_err(|e| bad(format!("channel {name:?}: {e}")))
}

fn channel(app: &App, name: &str, v: &VerifiedRequest, now: u64) -> Result<Resp, ApiError> {
    let name = channel_name(app, name)?;
    let info = info(v.param("info"))?;
    if info.user_count && !name.kind().is_presence() {
        return Err(bad("info=user_count is only for presence channels"));
    }
    if info.subscription_count && !name.kind().has_subscription_count() {
        return Err(bad("info=subscription_count is not for presence channels"));
    }
    Ok(json(
        StatusCode::OK,
        &app.hub.channel_info(&name, info, now),
    ))
}

fn users(app: &App, name: &str) -> Result<Resp, ApiError> {
    let name = channel_name(app, name)?;
    if !name.kind().is_presence() {
        return Err(bad("users are only listed for presence channels"));
    }
    let users = app
        .hub
        .users(&name)
        .into_iter()
        .map(|id| UserEntry { id })
        .collect();
    Ok(json(StatusCode::OK, &UsersResponse { users }))
}
