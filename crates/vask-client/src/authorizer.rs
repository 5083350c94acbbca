//! How a subscriber gets the signatures for private, presence and encrypted
//! channels and for sign-in: an [`Authorizer`], usually the app's auth
//! endpoints ([`HttpAuthorizer`]) or a closure ([`FnAuthorizer`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use pusher_auth::{ChannelAuthResponse, UserAuthResponse};
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;

use crate::error::AuthorizerError;
use crate::http::{self, HttpClient};

/// The future an [`Authorizer`] returns.
pub type AuthFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AuthorizerError>> + Send + 'a>>;

/// Authorizes channel subscriptions and user sign-in for a subscriber.
///
/// Called again after every reconnection (the socket id changes).
pub trait Authorizer: Send + Sync + 'static {
    /// The auth for subscribing `socket_id` to `channel` (private, presence
    /// or encrypted): `{"auth"}` plus `channel_data` for presence channels
    /// and `shared_secret` for encrypted ones.
    fn authorize_channel<'a>(
        &'a self,
        socket_id: &'a str,
        channel: &'a str,
    ) -> AuthFuture<'a, ChannelAuthResponse>;

    /// The auth for `pusher:signin` of `socket_id`: `{"auth","user_data"}`.
    /// The default refuses: implement it to use [`crate::Subscriber::signin`].
    fn authenticate_user<'a>(&'a self, socket_id: &'a str) -> AuthFuture<'a, UserAuthResponse> {
        let _ = socket_id;
        Box::pin(std::future::ready(Err(AuthorizerError::new(
            "this authorizer does not authenticate users",
        ))))
    }
}

type ChannelFn =
    dyn Fn(&str, &str) -> Result<ChannelAuthResponse, AuthorizerError> + Send + Sync + 'static;
type UserFn = dyn Fn(&str) -> Result<UserAuthResponse, AuthorizerError> + Send + Sync + 'static;

/// An [`Authorizer`] made of closures: for apps that sign locally (a backend
/// service that knows the secret, tests), typically with
/// [`crate::Publisher::authorize_channel`] and
/// [`crate::Publisher::authenticate_user`].
pub struct FnAuthorizer {
    channel: Box<ChannelFn>,
    user: Option<Box<UserFn>>,
}

impl FnAuthorizer {
    /// Channels are authorized by `f(socket_id, channel)`; sign-in is refused
    /// until [`FnAuthorizer::with_user`] adds a user closure.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&str, &str) -> Result<ChannelAuthResponse, AuthorizerError> + Send + Sync + 'static,
    {
        Self {
            channel: Box::new(f),
            user: None,
        }
    }

    /// Sign-in is authorized by `f(socket_id)`.
    #[must_use]
    pub fn with_user<F>(mut self, f: F) -> Self
    where
        F: Fn(&str) -> Result<UserAuthResponse, AuthorizerError> + Send + Sync + 'static,
    {
        self.user = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for FnAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnAuthorizer")
            .field("user", &self.user.is_some())
            .finish_non_exhaustive()
    }
}

impl Authorizer for FnAuthorizer {
    fn authorize_channel<'a>(
        &'a self,
        socket_id: &'a str,
        channel: &'a str,
    ) -> AuthFuture<'a, ChannelAuthResponse> {
        Box::pin(std::future::ready((self.channel)(socket_id, channel)))
    }

    fn authenticate_user<'a>(&'a self, socket_id: &'a str) -> AuthFuture<'a, UserAuthResponse> {
        let result = match &self.user {
            Some(f) => f(socket_id),
            None => Err(AuthorizerError::new(
                "no user closure: use FnAuthorizer::with_user",
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

/// An [`Authorizer`] that asks the app's auth endpoints, as pusher-js does:
/// `POST` of the form `socket_id=..&channel_name=..` to the channel endpoint
/// (pusher-js `channelAuthorization.endpoint`, default `/pusher/auth`) and
/// `socket_id=..` to the user endpoint (`userAuthentication.endpoint`,
/// default `/pusher/user-auth`), each answering JSON.
///
/// `http://` or `https://` URLs; `https://` trusts Mozilla's root
/// certificates, plus extra CAs given to
/// [`HttpAuthorizer::with_extra_ca_certs`].
#[derive(Debug, Clone)]
pub struct HttpAuthorizer {
    channel_url: String,
    user_url: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    client: HttpClient,
}

fn check_url(url: &str) -> Result<(), AuthorizerError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| AuthorizerError::new(format!("invalid URL {url:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(AuthorizerError::new(format!(
            "{url:?} is not an absolute http:// or https:// URL"
        )));
    }
    Ok(())
}

impl HttpAuthorizer {
    /// Channels are authorized at `channel_url` (e.g.
    /// `http://127.0.0.1:3000/pusher/auth`); 10 s timeout, no extra header.
    ///
    /// # Errors
    /// When the URL is not an absolute `http://` or `https://` URL.
    pub fn new(channel_url: impl Into<String>) -> Result<Self, AuthorizerError> {
        let channel_url = channel_url.into();
        check_url(&channel_url)?;
        Ok(Self {
            channel_url,
            user_url: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            client: http::client(crate::tls::client_config(&[]).map_err(AuthorizerError::new)?),
        })
    }

    /// Sign-in is authorized at `user_url` (e.g.
    /// `http://127.0.0.1:3000/pusher/user-auth`).
    ///
    /// # Errors
    /// When the URL is not an absolute `http://` or `https://` URL.
    pub fn with_user_endpoint(
        mut self,
        user_url: impl Into<String>,
    ) -> Result<Self, AuthorizerError> {
        let user_url = user_url.into();
        check_url(&user_url)?;
        self.user_url = Some(user_url);
        Ok(self)
    }

    /// Sends this header with every request (a session cookie, a CSRF token,
    /// a bearer token).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Trusts these CA certificates (DER) besides Mozilla's roots for
    /// `https://` endpoints: a private CA or a self-signed certificate. Load
    /// a PEM file with [`crate::load_pem_certs`].
    ///
    /// # Errors
    /// When one of them is not a valid CA certificate.
    pub fn with_extra_ca_certs(
        mut self,
        certs: &[CertificateDer<'static>],
    ) -> Result<Self, AuthorizerError> {
        let tls = crate::tls::client_config(certs).map_err(AuthorizerError::new)?;
        self.client = http::client(tls);
        Ok(self)
    }

    /// The longest one request may take.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn post<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<T, AuthorizerError> {
        let body = Bytes::from(http::form_encode(form));
        let answer = http::send(
            &self.client,
            Method::POST,
            url,
            &self.headers,
            Some("application/x-www-form-urlencoded"),
            body,
            self.timeout,
        )
        .await
        .map_err(|e| AuthorizerError::new(e.to_string()))?;
        if !(200..300).contains(&answer.status) {
            return Err(AuthorizerError {
                status: Some(answer.status),
                message: format!(
                    "auth endpoint answered {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body).trim()
                ),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| AuthorizerError {
            status: Some(answer.status),
            message: format!("auth endpoint answer is not the expected JSON: {e}"),
        })
    }
}

impl Authorizer for HttpAuthorizer {
    fn authorize_channel<'a>(
        &'a self,
        socket_id: &'a str,
        channel: &'a str,
    ) -> AuthFuture<'a, ChannelAuthResponse> {
        Box::pin(async move {
            let form = [("socket_id", socket_id), ("channel_name", channel)];
            self.post(&self.channel_url, &form).await
        })
    }

    fn authenticate_user<'a>(&'a self, socket_id: &'a str) -> AuthFuture<'a, UserAuthResponse> {
        Box::pin(async move {
            let url = self.user_url.as_deref().ok_or_else(|| {
                AuthorizerError::new("no user endpoint: use HttpAuthorizer::with_user_endpoint")
            })?;
            self.post(url, &[("socket_id", socket_id)]).await
        })
    }
}
