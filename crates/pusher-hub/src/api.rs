//! The Pusher HTTP API (`/apps/{app_id}/...`) as a function of the request:
//! route, verify, validate, execute against the hub, answer. No IO: the
//! driver moves bytes and passes the time in.
//!
//! Order for a driver, so that an unsigned request never costs a body read:
//! 1. [`ApiTarget::parse`] the method and path (404/405 without any app);
//! 2. look the app up by [`ApiTarget::app`] (404, or 403 when disabled);
//! 3. [`Hub::api_head`]: key, timestamp window and signature over the query,
//!    which carries `body_md5` (401 before the body is read);
//! 4. read the body, bounded in size and time;
//! 5. [`ApiCall::finish`]: the body against the signed MD5, then validation
//!    (all or nothing for a batch) and execution.
//!
//! Every refusal is an [`ApiError`] with its status; [`ApiError::response`]
//! gives the JSON body Pusher's SDKs expect (`{"error": ..., "code": ...}`).

use crate::time::Millis;
use std::collections::BTreeMap;

use pusher_auth::{HttpAuthError, HttpVerifier, SignedHead, VerifiedRequest, decode_path_segment};
use pusher_proto::http::{
    BatchRequest, BatchResponse, ChannelCounts, ChannelsResponse, ErrorBody, InfoRequest,
    TriggerRequest, TriggerResponse, UserEntry, UsersResponse,
};
use pusher_proto::{ChannelKind, ChannelName, SocketId, excerpt as quote, validate_event_name};

use crate::effects::Delivery;
use crate::hub::{Hub, Publish};

/// A refused API request: the HTTP status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// 400, 401, 403, 404, 405, 408, 413 or 429.
    pub status: u16,
    /// What was wrong, safe to show (never a secret).
    pub message: String,
}

impl ApiError {
    /// A refusal with this status.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// The answer: `{"error": message, "code": status}`.
    pub fn response(&self) -> ApiResponse {
        ApiResponse::json(
            self.status,
            &ErrorBody {
                error: self.message.clone(),
                code: self.status,
            },
        )
    }
}

impl From<HttpAuthError> for ApiError {
    fn from(e: HttpAuthError) -> Self {
        Self::new(e.status_code(), e.to_string())
    }
}

/// What an API request answers, and what it did (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Events published (one per channel of each event).
    pub publishes: u64,
    /// Frames queued and dropped by those publishes.
    pub delivery: Delivery,
}

impl ApiResponse {
    fn json<T: serde::Serialize>(status: u16, body: &T) -> Self {
        Self::published(body, Tally::default()).with_status(status)
    }

    /// A 200 answer after publishing.
    fn published<T: serde::Serialize>(body: &T, tally: Tally) -> Self {
        Self {
            status: 200,
            body: serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
            publishes: tally.publishes,
            delivery: tally.delivery,
        }
    }

    fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

/// What the publishes of one request did.
#[derive(Debug, Default)]
struct Tally {
    publishes: u64,
    delivery: Delivery,
}

/// Which app a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRef {
    /// `/apps/{id}/...`: the app's id, or (a Vask convention) its key.
    IdOrKey(String),
    /// `/users/{id}/terminate_connections` (the path pusher-http-python 3.3
    /// uses): the signed `auth_key` names the app.
    Key(String),
}

/// An endpoint of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiRoute {
    /// `POST events`.
    Events,
    /// `POST batch_events`.
    BatchEvents,
    /// `GET channels`.
    Channels,
    /// `GET channels/{name}`.
    Channel(String),
    /// `GET channels/{name}/users`.
    ChannelUsers(String),
    /// `POST users/{id}/terminate_connections`.
    TerminateUser(String),
    /// `GET usage` (Vask): the app's usage, which the driver keeps (it
    /// needs the wall clock); [`ApiCall::finish`] answers 404 for it.
    Usage,
}

/// A routed request: which app, which endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// The app the request names.
    pub app: AppRef,
    /// The endpoint.
    pub route: ApiRoute,
}

fn decoded(segment: &str, what: &str) -> Result<String, ApiError> {
    decode_path_segment(segment).ok_or_else(|| ApiError::bad(format!("invalid {what} encoding")))
}

impl ApiTarget {
    /// Routes `method` and `path` (and reads `auth_key` from `query` for the
    /// app-less terminate path).
    ///
    /// # Errors
    /// 404 for an unknown path, 405 for a known path with the wrong method,
    /// 400 for a badly escaped segment, 401 when the app-less path has no
    /// `auth_key`.
    pub fn parse(method: &str, path: &str, query: &str) -> Result<Self, ApiError> {
        let (app, rest) = if let Some(rest) = path.strip_prefix("/apps/") {
            let (app, rest) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(app), rest)
        } else if let Some(rest) = path.strip_prefix('/')
            && rest.starts_with("users/")
        {
            (None, rest)
        } else {
            return Err(ApiError::new(404, "Not found"));
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let (want, route) = match segments.as_slice() {
            ["events"] if app.is_some() => ("POST", ApiRoute::Events),
            ["batch_events"] if app.is_some() => ("POST", ApiRoute::BatchEvents),
            ["channels"] if app.is_some() => ("GET", ApiRoute::Channels),
            ["usage"] if app.is_some() => ("GET", ApiRoute::Usage),
            ["channels", c] if app.is_some() => ("GET", ApiRoute::Channel(decoded(c, "channel")?)),
            ["channels", c, "users"] if app.is_some() => {
                ("GET", ApiRoute::ChannelUsers(decoded(c, "channel")?))
            }
            ["users", u, "terminate_connections"] => {
                ("POST", ApiRoute::TerminateUser(decoded(u, "user id")?))
            }
            _ => return Err(ApiError::new(404, "Not found")),
        };
        if !method.eq_ignore_ascii_case(want) {
            return Err(ApiError::new(405, format!("use {want} for this endpoint")));
        }
        let app = match app {
            Some(a) => AppRef::IdOrKey(decoded(a, "app id")?),
            None => AppRef::Key(
                pusher_auth::query_param(query, "auth_key")
                    .ok_or_else(|| ApiError::new(401, "Missing auth_key"))?,
            ),
        };
        Ok(Self { app, route })
    }
}

/// A request whose signature checked out, waiting for its body.
#[derive(Debug)]
#[must_use = "the request is only executed by `finish`"]
pub struct ApiCall {
    route: ApiRoute,
    head: SignedHead,
}

impl ApiCall {
    /// The endpoint, for a driver that answers some itself
    /// ([`ApiRoute::Usage`]).
    pub fn route(&self) -> &ApiRoute {
        &self.route
    }

    /// Whether a non-empty body was signed (`body_md5`); without it, a body
    /// of even one byte is refused, so the driver need not read more.
    pub fn expects_body(&self) -> bool {
        self.head.expects_body()
    }

    /// Checks the body against the signed MD5, validates and executes.
    /// `now` is the hub's clock (milliseconds), as for every hub call.
    pub fn finish(self, hub: &Hub, body: &[u8], now: Millis) -> ApiResponse {
        let verified = match self.head.check_body(body) {
            Ok(v) => v,
            Err(e) => return ApiError::from(e).response(),
        };
        let result = match self.route {
            ApiRoute::Events => trigger(hub, body, now),
            ApiRoute::BatchEvents => batch(hub, body, now),
            ApiRoute::Channels => channels(hub, &verified),
            ApiRoute::Channel(name) => channel(hub, &name, &verified, now),
            ApiRoute::ChannelUsers(name) => users(hub, &name),
            ApiRoute::Usage => Err(ApiError::new(404, "Usage is not kept here")),
            ApiRoute::TerminateUser(user) => {
                let _told = hub.terminate_user(&user);
                Ok(ApiResponse::json(200, &serde_json::json!({})))
            }
        };
        result.unwrap_or_else(|e| e.response())
    }
}

impl Hub {
    /// Checks a request's signature before its body is read: `auth_key` is
    /// this app's key, the timestamp is inside the window, the signature
    /// over method, path and query (with `body_md5`) matches.
    /// `now_unix_secs` is wall-clock time, as signatures carry it.
    ///
    /// # Errors
    /// 401 (400 for a query that does not parse) naming the failed check.
    pub fn api_head(
        &self,
        method: &str,
        path: &str,
        query: &str,
        route: ApiRoute,
        now_unix_secs: u64,
    ) -> Result<ApiCall, ApiError> {
        let c = self.config();
        let head = HttpVerifier {
            max_skew_secs: c.timestamp_window_secs,
        }
        .verify_head(
            method,
            path,
            query,
            &c.key,
            c.secret.expose(),
            now_unix_secs,
        )?;
        Ok(ApiCall { route, head })
    }
}

fn info(text: Option<&str>) -> Result<InfoRequest, ApiError> {
    text.map(InfoRequest::parse)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::bad(e.to_string()))
}

/// `info` attributes every query checks the same way: `subscription_count`
/// only when the app enables it (as Pusher: "attempts to fetch it when it is
/// disabled result in an error").
fn counts_info(hub: &Hub, text: Option<&str>) -> Result<InfoRequest, ApiError> {
    let info = info(text)?;
    if info.subscription_count && !hub.config().subscription_count {
        return Err(ApiError::bad(
            "info=subscription_count is not enabled for this app (subscription_count = true turns it on)",
        ));
    }
    Ok(info)
}

fn channel_name(hub: &Hub, name: &str) -> Result<ChannelName, ApiError> {
    ChannelName::with_max_len(name, hub.config().limits.max_channel_name_len)
        .map_err(|e| ApiError::bad(format!("channel {}: {e}", quote(name))))
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
    hub: &Hub,
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<&str>,
    info_text: Option<&str>,
) -> Result<Event, ApiError> {
    let l = &hub.config().limits;
    validate_event_name(&name, l.max_event_name_len)
        .map_err(|e| ApiError::bad(format!("event name {}: {e}", quote(&name))))?;
    if data.len() > l.max_event_bytes {
        return Err(ApiError::new(
            413,
            format!("Event data larger than {} bytes", l.max_event_bytes),
        ));
    }
    if channels.is_empty() {
        return Err(ApiError::bad("Missing channels or channel"));
    }
    if channels.len() > l.max_channels_per_trigger {
        return Err(ApiError::bad(format!(
            "More than {} channels",
            l.max_channels_per_trigger
        )));
    }
    let names = channels
        .iter()
        .map(|c| channel_name(hub, c))
        .collect::<Result<Vec<_>, _>>()?;
    if names.len() > 1 && names.iter().any(|n| n.kind().is_encrypted()) {
        return Err(ApiError::bad(
            "An encrypted channel must be triggered alone",
        ));
    }
    let except = socket_id
        .map(|s| {
            s.parse::<SocketId>()
                .map_err(|e| ApiError::bad(format!("socket_id {}: {e}", quote(s))))
        })
        .transpose()?;
    let info = counts_info(hub, info_text)?;
    Ok(Event {
        names,
        name,
        data,
        except,
        info,
    })
}

/// Publishes one validated event; adds what it did to `tally`.
fn publish(
    hub: &Hub,
    e: &Event,
    now: Millis,
    tally: &mut Tally,
) -> BTreeMap<String, ChannelCounts> {
    let out = hub.publish(
        &Publish {
            channels: &e.names,
            event: &e.name,
            data: &e.data,
            except: e.except,
            info: e.info,
        },
        now,
    );
    tally.publishes += e.names.len() as u64;
    tally.delivery.add(out.delivery);
    out.channels
}

/// Asks the app's meter for `broadcasts` broadcasts, after validation and
/// before publishing any: a request that would cross a quota is refused
/// whole (403 naming the quota).
fn admit(hub: &Hub, broadcasts: usize) -> Result<(), ApiError> {
    hub.admit(broadcasts as u64)
        .map_err(|e| ApiError::new(403, e.to_string()))
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid JSON body: {e}")))
}

fn trigger(hub: &Hub, body: &[u8], now: Millis) -> Result<ApiResponse, ApiError> {
    let t: TriggerRequest = parse_body(body)?;
    let channels = match (t.channels, t.channel) {
        (Some(c), _) => c,
        (None, Some(c)) => vec![c],
        (None, None) => Vec::new(),
    };
    let e = validate(
        hub,
        t.name,
        t.data,
        channels,
        t.socket_id.as_deref(),
        t.info.as_deref(),
    )?;
    admit(hub, e.names.len())?;
    let mut tally = Tally::default();
    let counts = publish(hub, &e, now, &mut tally);
    let resp = TriggerResponse {
        channels: (e.info.user_count || e.info.subscription_count).then_some(counts),
    };
    Ok(ApiResponse::published(&resp, tally))
}

fn batch(hub: &Hub, body: &[u8], now: Millis) -> Result<ApiResponse, ApiError> {
    let b: BatchRequest = parse_body(body)?;
    let max = hub.config().limits.max_batch_events;
    if b.batch.len() > max {
        return Err(ApiError::bad(format!(
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
                hub,
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
    admit(hub, events.len())?;
    let mut tally = Tally::default();
    let mut out = Vec::with_capacity(events.len());
    for e in &events {
        let counts = publish(hub, e, now, &mut tally);
        out.push(counts.into_values().next().unwrap_or_default());
    }
    let resp = BatchResponse {
        batch: any_info.then_some(out),
    };
    Ok(ApiResponse::published(&resp, tally))
}

fn channels(hub: &Hub, v: &VerifiedRequest) -> Result<ApiResponse, ApiError> {
    let prefix = v.param("filter_by_prefix").unwrap_or("");
    let info = counts_info(hub, v.param("info"))?;
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::bad(
            "info=user_count needs filter_by_prefix=presence-",
        ));
    }
    if info.cache {
        return Err(ApiError::bad("info=cache is only for GET channels/{name}"));
    }
    Ok(ApiResponse::json(
        200,
        &ChannelsResponse {
            channels: hub.channels(prefix, info),
        },
    ))
}

fn channel(
    hub: &Hub,
    name: &str,
    v: &VerifiedRequest,
    now: Millis,
) -> Result<ApiResponse, ApiError> {
    let name = channel_name(hub, name)?;
    let info = counts_info(hub, v.param("info"))?;
    if info.user_count && !name.kind().is_presence() {
        return Err(ApiError::bad(
            "info=user_count is only for presence channels",
        ));
    }
    Ok(ApiResponse::json(200, &hub.channel_info(&name, info, now)))
}

fn users(hub: &Hub, name: &str) -> Result<ApiResponse, ApiError> {
    let name = channel_name(hub, name)?;
    if name.kind() != ChannelKind::Presence {
        return Err(ApiError::bad("users are only listed for presence channels"));
    }
    let users = hub
        .users(&name)
        .into_iter()
        .map(|id| UserEntry { id })
        .collect();
    Ok(ApiResponse::json(200, &UsersResponse { users }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let t = ApiTarget::parse("POST", "/apps/3/events", "").unwrap();
        assert_eq!(t.app, AppRef::IdOrKey("3".into()));
        assert_eq!(t.route, ApiRoute::Events);
        let t = ApiTarget::parse("GET", "/apps/3/usage", "").unwrap();
        assert_eq!(t.route, ApiRoute::Usage);
        let t = ApiTarget::parse("GET", "/apps/k/channels/a%3Bb/users", "").unwrap();
        assert_eq!(t.app, AppRef::IdOrKey("k".into()));
        assert_eq!(t.route, ApiRoute::ChannelUsers("a;b".into()));
        let t =
            ApiTarget::parse("post", "/users/u%201/terminate_connections", "auth_key=k").unwrap();
        assert_eq!(t.app, AppRef::Key("k".into()));
        assert_eq!(t.route, ApiRoute::TerminateUser("u 1".into()));
        let status = |m: &str, p: &str| ApiTarget::parse(m, p, "").unwrap_err().status;
        assert_eq!(status("GET", "/apps/3/events"), 405);
        assert_eq!(status("GET", "/apps/3"), 404);
        assert_eq!(status("GET", "/apps/3/nope"), 404);
        assert_eq!(status("GET", "/users/1/events"), 404);
        assert_eq!(status("POST", "/users/1/terminate_connections"), 401);
        assert_eq!(status("GET", "/apps/3/channels/%zz"), 400);
        assert_eq!(status("GET", "/"), 404);
    }
}
