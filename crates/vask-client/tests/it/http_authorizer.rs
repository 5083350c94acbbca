//! `HttpAuthorizer` against a tiny auth endpoint served by hyper, as an
//! app server would run it for pusher-js.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use vask_client::{
    HttpAuthorizer, Publisher, SocketError, SubscribeFailure, Subscriber, TriggerOptions,
};

use crate::common::*;

pub(crate) const TOKEN: &str = "Bearer let-me-in";

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn field(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (decode(k) == name).then(|| decode(v))
    })
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// The endpoint: POST /pusher/auth and /pusher/user-auth, form bodies,
/// bearer token required, user "http-user".
pub(crate) async fn handle(
    publisher: Publisher,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let allowed = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == TOKEN);
    let form_encoded = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let form = String::from_utf8(body.to_vec()).unwrap();
    if method != hyper::Method::POST || !form_encoded {
        return Ok(answer(StatusCode::BAD_REQUEST, "form POST expected".into()));
    }
    if !allowed {
        return Ok(answer(StatusCode::FORBIDDEN, "forbidden".into()));
    }
    let socket_id = field(&form, "socket_id").unwrap_or_default();
    let json = match path.as_str() {
        "/pusher/auth" => {
            let channel = field(&form, "channel_name").unwrap_or_default();
            let data = r#"{"user_id":"http-user","user_info":{"via":"http"}}"#;
            let data = channel.starts_with("presence-").then_some(data);
            publisher
                .authorize_channel(&socket_id, &channel, data)
                .map(|r| serde_json::to_string(&r).unwrap())
        }
        "/pusher/user-auth" => publisher
            .authenticate_user(&socket_id, r#"{"id":"http-user"}"#)
            .map(|r| serde_json::to_string(&r).unwrap()),
        _ => return Ok(answer(StatusCode::NOT_FOUND, "no such endpoint".into())),
    };
    Ok(match json {
        Ok(j) => answer(StatusCode::OK, j),
        Err(e) => answer(StatusCode::BAD_REQUEST, e.to_string()),
    })
}

async fn auth_endpoint(publisher: Publisher) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let p = publisher.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(p.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn channels_and_signin_through_the_auth_endpoint() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let (auth_addr, endpoint) = auth_endpoint(publisher.clone()).await;
    let authorizer = HttpAuthorizer::new(format!("http://{auth_addr}/pusher/auth"))
        .unwrap()
        .with_user_endpoint(format!("http://{auth_addr}/pusher/user-auth"))
        .unwrap()
        .with_header("Authorization", TOKEN);
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(authorizer)),
    )
    .await
    .unwrap();

    let private = sub.subscribe("private-http").unwrap();
    let mut events = private.bind("e");
    within("private", private.subscribed()).await.unwrap();
    publisher
        .trigger(["private-http"], "e", "via http", TriggerOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut events).await.data, "via http");

    let presence = sub.subscribe("presence-http").unwrap();
    within("presence", presence.subscribed()).await.unwrap();
    let me = presence.me().unwrap();
    assert_eq!(me.id, "http-user");
    assert_eq!(me.info, Some(serde_json::json!({"via": "http"})));

    let encrypted = sub.subscribe("private-encrypted-http").unwrap();
    let mut secrets = encrypted.bind("s");
    within("encrypted", encrypted.subscribed()).await.unwrap();
    publisher
        .trigger(
            ["private-encrypted-http"],
            "s",
            "psst",
            TriggerOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut secrets).await.data, "psst");

    assert_eq!(within("signin", sub.signin()).await.unwrap(), "http-user");
    endpoint.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn the_endpoint_refusal_fails_the_subscription_with_its_status() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let (auth_addr, endpoint) = auth_endpoint(publisher).await;
    // No token: the endpoint answers 403.
    let authorizer = HttpAuthorizer::new(format!("http://{auth_addr}/pusher/auth")).unwrap();
    let sub = within(
        "connect",
        Subscriber::connect(sub_config(server.addr).with_authorizer(authorizer)),
    )
    .await
    .unwrap();
    let channel = sub.subscribe("private-nope").unwrap();
    match within("refused", channel.subscribed()).await.unwrap_err() {
        SocketError::Subscribe(SubscribeFailure::Authorizer(e)) => {
            assert_eq!(e.status, Some(403));
        }
        other => panic!("{other:?}"),
    }
    // No user endpoint configured.
    assert!(matches!(
        within("signin", sub.signin()).await,
        Err(SocketError::Signin(_))
    ));
    assert!(HttpAuthorizer::new("https://example.invalid/auth").is_ok());
    assert!(HttpAuthorizer::new("ftp://example.invalid/auth").is_err());
    assert!(HttpAuthorizer::new("/relative").is_err());
    endpoint.abort();
    server.shutdown().await;
}
