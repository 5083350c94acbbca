//! One error enum per failure domain: the HTTP API ([`ApiError`]), the
//! WebSocket connection ([`SocketError`]) and the app's auth endpoints
//! ([`AuthorizerError`]).

use pusher_proto::SubscriptionError;

/// Why an HTTP API call (or a helper of [`crate::Publisher`]) failed.
///
/// Statuses the API documents get their own variant; any other non-2xx
/// answer is [`ApiError::Status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the server refused the request as invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: wrong key or secret, expired timestamp, body_md5 mismatch.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: the app is disabled.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: unknown app or route.
    #[error("not found: {0}")]
    NotFound(String),
    /// 413: event data or request body over the server's limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Any other non-2xx status, with the server's message.
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
    /// The request never got an answer: connection refused or reset, timeout
    /// (TLS failures are [`ApiError::Tls`]).
    #[error("transport error: {0}")]
    Transport(String),
    /// A request or response body is not the JSON expected.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// Refused before sending: an argument the protocol does not allow
    /// (an encrypted channel among several, a malformed socket id, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// TLS failed: the server's certificate is not trusted (add its CA to
    /// [`crate::PublisherConfig::extra_ca_certs`]) or not valid for the host,
    /// the handshake was refused, or an extra CA certificate is invalid.
    #[error("TLS error: {0}")]
    Tls(String),
    /// An encrypted channel was named but no master key is configured, or
    /// the webhook or key material is invalid.
    #[error("encryption: {0}")]
    Encryption(String),
    /// A webhook's key or signature does not match.
    #[error("invalid webhook: {0}")]
    InvalidWebhook(String),
}

impl ApiError {
    /// The error for a non-2xx answer, from its status and body (the body's
    /// `error` field when it is Vask's `{"error","code"}` JSON, else the text).
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        let message = serde_json::from_slice::<pusher_proto::http::ErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_owned());
        match status {
            400 => Self::BadRequest(message),
            401 => Self::Unauthorized(message),
            403 => Self::Forbidden(message),
            404 => Self::NotFound(message),
            413 => Self::TooLarge(message),
            _ => Self::Status(status, message),
        }
    }
}

/// Why an [`crate::Authorizer`] could not authorize a channel or a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthorizerError {
    /// The HTTP status the auth endpoint answered, when there was one.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl AuthorizerError {
    /// An error without an HTTP status.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            status: None,
            message: message.into(),
        }
    }
}

/// Why a subscription did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeFailure {
    /// The server answered `pusher:subscription_error`.
    #[error("subscription refused ({:?}, {}): {}", .0.kind, .0.status, .0.error)]
    Refused(SubscriptionError),
    /// The authorizer failed (or none is configured for a private channel).
    #[error("authorization failed: {0}")]
    Authorizer(AuthorizerError),
    /// The channel was unsubscribed (or the subscriber ended) while waiting.
    #[error("the channel was unsubscribed")]
    Unsubscribed,
}

/// Why a WebSocket operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The connection could not be opened (TCP, HTTP upgrade, timeout).
    /// TLS failures are [`SocketError::Tls`].
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server refused the connection with a `pusher:error` or close code
    /// (4001 unknown app key, 4003 app disabled, ...).
    #[error("refused by the server: {code} {message}")]
    Refused {
        /// The Pusher code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// TLS failed on the first connection: the server's certificate is not
    /// trusted (add its CA to [`crate::SubscriberConfig::extra_ca_certs`]) or
    /// not valid for the host, the handshake was refused, the host is not a
    /// valid TLS server name, or an extra CA certificate is invalid.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The channel name is not valid, or reserved.
    #[error("invalid channel: {0}")]
    InvalidChannel(String),
    /// The operation is not allowed (client event name without `client-`,
    /// client event on a public or encrypted channel, ...).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// There is no open connection right now (it is reconnecting).
    #[error("not connected")]
    NotConnected,
    /// The subscriber has stopped (disconnected, or refused for good).
    #[error("the subscriber is closed")]
    Closed,
    /// A subscription failed.
    #[error(transparent)]
    Subscribe(#[from] SubscribeFailure),
    /// Sign-in failed: the authorizer failed or the server refused it.
    #[error("sign-in failed: {0}")]
    Signin(String),
    /// Event data could not be serialized.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}
