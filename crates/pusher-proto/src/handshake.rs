//! The WebSocket opening handshake of `/app/{key}` (RFC 6455 section 4.2.1,
//! then Pusher's rules), as a function of the request's parts.
//!
//! Two kinds of refusal, in the order a server meets them:
//! - the request is not a valid WebSocket handshake: an HTTP answer
//!   ([`HandshakeRefusal`]), no upgrade;
//! - it is one, but Pusher refuses it (path, protocol version; the app is
//!   checked by the caller): the upgrade happens, then `pusher:error` and a
//!   close with the [`ErrorCode`], which is what pusher-js acts on.

use crate::codes::ErrorCode;

/// The parts of an upgrade request the handshake looks at. Header values are
/// raw bytes; `None` when the header is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpgradeRequest<'a> {
    /// The request method.
    pub method: &'a str,
    /// The path, e.g. `/app/key`.
    pub path: &'a str,
    /// The query string without `?`, e.g. `protocol=7&client=js`.
    pub query: &'a str,
    /// `Connection`.
    pub connection: Option<&'a [u8]>,
    /// `Upgrade`.
    pub upgrade: Option<&'a [u8]>,
    /// `Sec-WebSocket-Version`.
    pub version: Option<&'a [u8]>,
    /// `Sec-WebSocket-Key`.
    pub key: Option<&'a [u8]>,
}

/// A request that is not a WebSocket handshake the server accepts: answer
/// with this status (and, for 426, `Sec-WebSocket-Version: 13`), no upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HandshakeRefusal {
    /// 400, 405 or 426.
    pub status: u16,
    /// Why, for the response body.
    pub message: &'static str,
}

impl HandshakeRefusal {
    /// Whether the answer must carry `Sec-WebSocket-Version: 13` (RFC 6455
    /// 4.4: the versions the server speaks).
    pub fn wants_version_header(&self) -> bool {
        self.status == 426
    }
}

/// A valid WebSocket handshake: upgrade, then either run the connection for
/// `app_key` or refuse it with `refusal` in the protocol's own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Upgrade<'a> {
    /// The `Sec-WebSocket-Key`, checked to be 16 bytes of base64, from
    /// which the accept key is derived.
    pub ws_key: &'a [u8],
    /// The app key from `/app/{key}`, or `Err` with 4005 or 4007.
    pub app_key: Result<&'a str, ErrorCode>,
}

/// Whether a header value lists `token` (comma-separated, case-insensitive).
fn lists(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Canonical base64 of exactly 16 bytes: 22 alphabet characters (the last
/// one carrying 2 bits, so one of `AQgw`) and `==`.
fn is_nonce(key: &[u8]) -> bool {
    let key = key.trim_ascii();
    let Some(body) = key.strip_suffix(b"==") else {
        return false;
    };
    body.len() == 22
        && body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        && matches!(body[21], b'A' | b'Q' | b'g' | b'w')
}

/// Checks an upgrade request: RFC 6455 first (method, `Upgrade`,
/// `Connection`, version 13, a 16-byte key), then Pusher's path and
/// `protocol` parameter (5, 6, 7 or absent).
///
/// # Errors
/// A [`HandshakeRefusal`] for a request that is not a valid handshake.
pub fn check_upgrade<'a>(req: &UpgradeRequest<'a>) -> Result<Upgrade<'a>, HandshakeRefusal> {
    let refuse = |status, message| Err(HandshakeRefusal { status, message });
    if req.method != "GET" {
        return refuse(405, "a WebSocket handshake must be a GET request");
    }
    if !req.upgrade.is_some_and(|u| lists(u, "websocket")) {
        return refuse(400, "missing Upgrade: websocket");
    }
    if !req.connection.is_some_and(|c| lists(c, "upgrade")) {
        return refuse(400, "missing Connection: Upgrade");
    }
    if req.version.map(<[u8]>::trim_ascii) != Some(b"13".as_slice()) {
        return refuse(426, "Sec-WebSocket-Version must be 13");
    }
    let Some(ws_key) = req.key.filter(|k| is_nonce(k)) else {
        return refuse(400, "Sec-WebSocket-Key must be 16 bytes in base64");
    };
    Ok(Upgrade {
        ws_key: ws_key.trim_ascii(),
        app_key: app_key(req.path, req.query),
    })
}

/// The app key of `/app/{key}?protocol=N`, or the code that refuses it.
fn app_key<'a>(path: &'a str, query: &str) -> Result<&'a str, ErrorCode> {
    let key = path
        .strip_prefix("/app/")
        .filter(|k| !k.is_empty() && !k.contains('/'))
        .ok_or(ErrorCode::PathNotFound)?;
    let protocol = query.split('&').find_map(|kv| kv.strip_prefix("protocol="));
    match protocol {
        None | Some("5" | "6" | "7") => Ok(key),
        Some(_) => Err(ErrorCode::UnsupportedProtocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> UpgradeRequest<'static> {
        UpgradeRequest {
            method: "GET",
            path: "/app/key",
            query: "protocol=7&client=js&version=8.4.0&flash=false",
            connection: Some(b"keep-alive, Upgrade"),
            upgrade: Some(b"websocket"),
            version: Some(b"13"),
            key: Some(b"dGhlIHNhbXBsZSBub25jZQ=="),
        }
    }

    fn status(req: UpgradeRequest<'_>) -> u16 {
        check_upgrade(&req).unwrap_err().status
    }

    #[test]
    fn accepts_what_browsers_send() {
        let up = check_upgrade(&good()).unwrap();
        assert_eq!(up.app_key, Ok("key"));
        assert_eq!(up.ws_key, b"dGhlIHNhbXBsZSBub25jZQ==");
        let up = check_upgrade(&UpgradeRequest {
            query: "",
            upgrade: Some(b"WebSocket"),
            connection: Some(b"upgrade"),
            ..good()
        })
        .unwrap();
        assert_eq!(up.app_key, Ok("key"));
    }

    #[test]
    fn refuses_what_rfc_6455_refuses() {
        assert_eq!(
            status(UpgradeRequest {
                method: "POST",
                ..good()
            }),
            405
        );
        assert_eq!(
            status(UpgradeRequest {
                upgrade: None,
                ..good()
            }),
            400
        );
        assert_eq!(
            status(UpgradeRequest {
                connection: Some(b"keep-alive"),
                ..good()
            }),
            400
        );
        let r = check_upgrade(&UpgradeRequest {
            version: None,
            ..good()
        })
        .unwrap_err();
        assert_eq!(r.status, 426);
        assert!(r.wants_version_header());
        assert_eq!(
            status(UpgradeRequest {
                version: Some(b"8"),
                ..good()
            }),
            426
        );
        for key in [
            &b""[..],
            b"short",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25jZSE=",
            b"dGhlIHNhbXBsZSBub25j*Q==",
        ] {
            assert_eq!(
                status(UpgradeRequest {
                    key: Some(key),
                    ..good()
                }),
                400,
                "{key:?}"
            );
        }
        assert_eq!(
            status(UpgradeRequest {
                key: None,
                ..good()
            }),
            400
        );
    }

    #[test]
    fn pusher_refusals_happen_after_the_upgrade() {
        let code = |path, query| {
            check_upgrade(&UpgradeRequest {
                path,
                query,
                ..good()
            })
            .unwrap()
            .app_key
        };
        assert_eq!(code("/app/", ""), Err(ErrorCode::PathNotFound));
        assert_eq!(code("/app/a/b", ""), Err(ErrorCode::PathNotFound));
        assert_eq!(code("/other", ""), Err(ErrorCode::PathNotFound));
        assert_eq!(
            code("/app/k", "protocol=4"),
            Err(ErrorCode::UnsupportedProtocol)
        );
        assert_eq!(
            code("/app/k", "protocol=8"),
            Err(ErrorCode::UnsupportedProtocol)
        );
        assert_eq!(code("/app/k", "protocol=5"), Ok("k"));
    }
}
