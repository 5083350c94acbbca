//! The HTTP client the publisher and [`crate::HttpAuthorizer`] share:
//! hyper-util's pooled client (keep-alive) over `http://` or `https://`
//! (rustls), with a timeout per request, and the encoders both need.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled HTTP/1.1 client: connections are reused between requests.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The TLS handshake failed (untrusted or invalid certificate, ...).
    Tls(String),
    /// Anything else: connection refused or reset, timeout, bad request.
    Transport(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls(m) => write!(f, "TLS error: {m}"),
            Self::Transport(m) => f.write_str(m),
        }
    }
}

/// A new pooled client for `http://` and `https://` URLs; `https://` trusts
/// what `tls` trusts.
pub(crate) fn client(tls: Arc<rustls::ClientConfig>) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    // hyper-rustls needs the scheme check off to get https:// URLs.
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls::ClientConfig::clone(&tls))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// A received answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// Sends one request and reads the whole answer, within `timeout`.
pub(crate) async fn send(
    client: &HttpClient,
    method: Method,
    uri: &str,
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: Bytes,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        builder = builder.header(hyper::header::CONTENT_TYPE, ct);
    }
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| SendError::Transport(format!("invalid request: {e}")))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            if let Some(m) = crate::tls::tls_failure(&e) {
                return SendError::Tls(m);
            }
            // hyper-util's error Display is terse; its source says why.
            SendError::Transport(match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            })
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| SendError::Transport(format!("reading the response: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SendError::Transport(format!("no answer within {timeout:?}")))?
}

/// `host:port` for a URL authority, bracketing IPv6 literals.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes one path segment: the codec the signature checks use.
pub(crate) use pusher_auth::encode_path_segment;

/// Encodes `application/x-www-form-urlencoded` pairs.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_component(k, &mut out);
        out.push('=');
        form_component(v, &mut out);
    }
    out
}

fn form_component(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b if is_unreserved(b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders() {
        assert_eq!(
            encode_path_segment("#server-to-user-a b"),
            "%23server-to-user-a%20b"
        );
        assert_eq!(encode_path_segment("private-x.y_z~"), "private-x.y_z~");
        assert_eq!(
            form_encode(&[("socket_id", "1.2"), ("channel_name", "presence-a b&c")]),
            "socket_id=1.2&channel_name=presence-a+b%26c"
        );
        assert_eq!(authority("::1", 80), "[::1]:80");
        assert_eq!(authority("127.0.0.1", 6001), "127.0.0.1:6001");
    }
}
