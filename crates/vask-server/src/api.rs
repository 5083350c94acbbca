//! The Pusher HTTP API over hyper: the rules live in
//! [`pusher_hub::ApiTarget`] and [`pusher_hub::ApiCall`]; this module moves
//! the bytes, bounded in size and time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use pusher_auth::HttpAuthError;
use pusher_hub::{ApiError, ApiResponse, ApiRoute, ApiTarget, AppRef};

use crate::apps::App;
use crate::endpoint::State;

type Resp = Response<Full<Bytes>>;

/// A JSON error body `{"error": ..., "code": status}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    respond(ApiError::new(status.as_u16(), message).response())
}

fn respond(r: ApiResponse) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A refusal sent before (or instead of) reading the whole body: the
/// connection is closed after it, so an unread body is never parsed as the
/// next request.
fn refuse(e: ApiError) -> Resp {
    let mut resp = respond(e.response());
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Reads a whole body of at most `limit` bytes within `deadline` (the
/// admin API's and the console's requests); else the status (413 or 408)
/// and message to answer.
pub(crate) async fn read_bounded<B>(
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, (StatusCode, String)>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(_)) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body unreadable or larger than {limit} bytes"),
        )),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "Request body not received in time".to_owned(),
        )),
    }
}

/// `bytes` random bytes as lowercase hex (secrets, keys, session ids).
pub(crate) fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Handles `/apps/...` (and `/users/.../terminate_connections`); counts the
/// answer's status.
pub(crate) async fn handle<B>(state: &Arc<State>, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let resp = serve(state, req).await;
    state.metrics.http(resp.status().as_u16());
    resp
}

fn find_app(state: &State, app: &AppRef) -> Result<Arc<App>, ApiError> {
    let apps = state.apps.current();
    match app {
        AppRef::IdOrKey(id) => apps
            .by_id_or_key(id)
            .cloned()
            .ok_or_else(|| ApiError::new(404, "Unknown app")),
        AppRef::Key(key) => apps
            .by_key(key)
            .cloned()
            .ok_or_else(|| ApiError::from(HttpAuthError::WrongKey)),
    }
}

async fn serve<B>(state: &Arc<State>, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let method = parts.method.as_str();
    // Everything that does not need the body first: an unsigned request
    // never makes the server hold a body.
    let head = ApiTarget::parse(method, path, query).and_then(|target| {
        let app = find_app(state, &target.app)?;
        if !app.config.enabled {
            return Err(ApiError::new(403, "App disabled"));
        }
        let call = app
            .hub
            .api_head(method, path, query, target.route, now_unix())?;
        Ok((app, call))
    });
    let (app, call) = match head {
        Ok(h) => h,
        Err(e) => return refuse(e),
    };
    // A signed request: counted in usage, unless over the app's rate (the
    // refused ones are counted in vask_quota_refused_total instead).
    if let Err((max, wait)) = app.usage.api_request() {
        let mut resp = refuse(ApiError::new(
            429,
            format!("Too many requests: max_api_requests_per_sec is {max} for this app"),
        ));
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }
    // Without a signed body_md5 only an empty body is valid.
    let limit = if call.expects_body() {
        state.config.max_body_bytes
    } else {
        0
    };
    let deadline = Duration::from_secs(state.config.body_timeout_secs);
    let body = match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return refuse(if limit == 0 {
                HttpAuthError::MissingParam("body_md5").into()
            } else {
                ApiError::new(413, format!("Request body larger than {limit} bytes"))
            });
        }
        Ok(Err(_)) => return refuse(ApiError::new(400, "could not read the request body")),
        Err(_) => {
            app.metrics.error("body_timeout");
            return refuse(ApiError::new(
                408,
                format!("Request body not received within {}s", deadline.as_secs()),
            ));
        }
    };
    if *call.route() == ApiRoute::Usage {
        // Signed like every call, and bodiless (checked above: no
        // body_md5, so no byte of body was accepted).
        let mut resp = Response::new(Full::new(Bytes::from(app.usage.body())));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return resp;
    }
    let r = call.finish(&app.hub, &body, state.now());
    app.metrics.console.api_call(&body, r.status);
    app.metrics.publishes.inc_by(r.publishes);
    app.metrics.deliveries.inc_by(r.delivery.delivered);
    if r.delivery.dropped > 0 {
        app.metrics.dropped("outbox_full", r.delivery.dropped);
    }
    respond(r)
}
