//! The HTTP API side: publish events, query channels and users, terminate
//! connections, and the helpers an app's auth endpoints and webhook receiver
//! need.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use pusher_auth::{ChannelAuthResponse, MasterKey, UserAuthResponse};
use pusher_proto::http::{
    BatchEvent, BatchRequest, BatchResponse, ChannelInfoResponse, ChannelsResponse, TriggerRequest,
    TriggerResponse, UsersResponse,
};
use pusher_proto::webhook::WebhookBody;
use pusher_proto::{ChannelKind, SERVER_TO_USER_PREFIX, SocketId, UserData, classify};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::{event_data, random_nonce};
use crate::error::ApiError;
use crate::http::{self, HttpClient};

/// Where the HTTP API is and how to sign for it.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// The app id (a numeric string).
    pub app_id: String,
    /// The app key.
    pub key: String,
    /// The app secret: signs requests and auth responses.
    pub secret: String,
    /// The server's host name or IP address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// `https://` instead of `http://`. The server's certificate must chain
    /// to one of Mozilla's root certificates or to one of `extra_ca_certs`,
    /// and be valid for `host`.
    pub tls: bool,
    /// CA certificates (DER) trusted besides Mozilla's roots for `https://`:
    /// a private CA or a self-signed server certificate. Load a PEM file with
    /// [`crate::load_pem_certs`].
    pub extra_ca_certs: Vec<CertificateDer<'static>>,
    /// The encryption master key (32 bytes): needed to publish to
    /// `private-encrypted-*` channels and to authorize them.
    pub encryption_master_key: Option<MasterKey>,
    /// The longest one request may take, connection included.
    pub timeout: Duration,
}

impl PublisherConfig {
    /// A configuration for `app_id`, `key` and `secret` on `127.0.0.1:6001`
    /// (a local `vask-server`), plain HTTP, no master key, 30 s timeout.
    pub fn new(
        app_id: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            host: "127.0.0.1".into(),
            port: 6001,
            tls: false,
            extra_ca_certs: Vec::new(),
            encryption_master_key: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Options of one trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerOptions {
    /// Exclude this connection from delivery (the sender's own socket id).
    pub socket_id: Option<String>,
    /// Attributes to return: `user_count` (presence), `subscription_count`.
    pub info: Option<String>,
}

/// A client of the Pusher HTTP API.
///
/// Cheap to clone (clones share one connection pool: requests reuse
/// keep-alive connections). Needs a tokio runtime.
#[derive(Debug, Clone)]
pub struct Publisher {
    config: PublisherConfig,
    base: String,
    client: HttpClient,
}

impl Publisher {
    /// A publisher for `config`.
    ///
    /// # Errors
    /// [`ApiError::Tls`] when one of `config.extra_ca_certs` is not a valid
    /// CA certificate.
    pub fn new(config: PublisherConfig) -> Result<Self, ApiError> {
        let tls = crate::tls::client_config(&config.extra_ca_certs).map_err(ApiError::Tls)?;
        let scheme = if config.tls { "https" } else { "http" };
        let base = format!("{scheme}://{}", http::authority(&config.host, config.port));
        Ok(Self {
            config,
            base,
            client: http::client(tls),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    /// Publishes `event` to `channels` (up to 100; an encrypted channel only
    /// alone). `data` is sent as [`event_data`] makes it: a `&str` unchanged,
    /// anything else JSON-encoded. On a `private-encrypted-*` channel the data
    /// is encrypted with the master key first, so subscribers that hold the
    /// channel's shared secret get the same text back.
    ///
    /// # Errors
    /// [`ApiError::InvalidArgument`] for an encrypted channel among several or
    /// no channel, [`ApiError::Encryption`] for an encrypted channel without
    /// master key, otherwise the server's refusal (400, 401, 413, ...) or a
    /// transport error.
    pub async fn trigger<I, S, D>(
        &self,
        channels: I,
        event: &str,
        data: &D,
        options: TriggerOptions,
    ) -> Result<TriggerResponse, ApiError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        D: Serialize + ?Sized,
    {
        let channels: Vec<String> = channels
            .into_iter()
            .map(|c| c.as_ref().to_owned())
            .collect();
        if channels.is_empty() {
            return Err(ApiError::InvalidArgument("no channel to trigger on".into()));
        }
        let encrypted = channels.iter().any(|c| is_encrypted(c));
        if encrypted && channels.len() > 1 {
            return Err(ApiError::InvalidArgument(
                "an encrypted channel must be triggered alone".into(),
            ));
        }
        let mut text = event_data(data)?;
        if encrypted {
            text = self.encrypt(&channels[0], &text)?;
        }
        if let Some(s) = &options.socket_id {
            check_socket_id(s)?;
        }
        let body = TriggerRequest {
            name: event.to_owned(),
            data: text,
            channels: Some(channels),
            channel: None,
            socket_id: options.socket_id,
            info: options.info,
        };
        self.post("events", &body).await
    }

    /// Publishes up to 10 events at once; each event's `data` is sent as
    /// given (already text), encrypted first for `private-encrypted-*`
    /// channels.
    ///
    /// # Errors
    /// As [`Publisher::trigger`].
    pub async fn trigger_batch(&self, events: &[BatchEvent]) -> Result<BatchResponse, ApiError> {
        let mut batch = Vec::with_capacity(events.len());
        for e in events {
            let mut e = e.clone();
            if is_encrypted(&e.channel) {
                e.data = self.encrypt(&e.channel, &e.data)?;
            }
            if let Some(s) = &e.socket_id {
                check_socket_id(s)?;
            }
            batch.push(e);
        }
        self.post("batch_events", &BatchRequest { batch }).await
    }

    /// Occupied channels, optionally only those starting with `prefix`, with
    /// the `info` attributes asked for (`user_count` needs the `presence-`
    /// prefix).
    ///
    /// # Errors
    /// The server's refusal or a transport error.
    pub async fn channels(
        &self,
        prefix: Option<&str>,
        info: Option<&str>,
    ) -> Result<ChannelsResponse, ApiError> {
        let mut params = Vec::new();
        if let Some(p) = prefix {
            params.push(("filter_by_prefix", p));
        }
        if let Some(i) = info {
            params.push(("info", i));
        }
        self.get("channels", &params).await
    }

    /// One channel's state: `occupied`, and the `info` attributes asked for
    /// (`user_count`, `subscription_count`, `cache`).
    ///
    /// # Errors
    /// The server's refusal or a transport error.
    pub async fn channel(
        &self,
        name: &str,
        info: Option<&str>,
    ) -> Result<ChannelInfoResponse, ApiError> {
        let params: Vec<(&str, &str)> = info.map(|i| ("info", i)).into_iter().collect();
        let path = format!("channels/{}", http::encode_path_segment(name));
        self.get(&path, &params).await
    }

    /// The distinct user ids of a presence channel.
    ///
    /// # Errors
    /// The server's refusal (400 for a non-presence channel) or a transport
    /// error.
    pub async fn users(&self, channel: &str) -> Result<Vec<String>, ApiError> {
        let path = format!("channels/{}/users", http::encode_path_segment(channel));
        let r: UsersResponse = self.get(&path, &[]).await?;
        Ok(r.users.into_iter().map(|u| u.id).collect())
    }

    /// Sends `event` to every connection signed in as `user_id` (a trigger
    /// on `#server-to-user-<user_id>`).
    ///
    /// # Errors
    /// As [`Publisher::trigger`].
    pub async fn send_to_user<D: Serialize + ?Sized>(
        &self,
        user_id: &str,
        event: &str,
        data: &D,
    ) -> Result<(), ApiError> {
        if user_id.is_empty() {
            return Err(ApiError::InvalidArgument("empty user id".into()));
        }
        let channel = format!("{SERVER_TO_USER_PREFIX}{user_id}");
        self.trigger([channel], event, data, TriggerOptions::default())
            .await
            .map(drop)
    }

    /// Closes every connection signed in as `user_id` (they get 4009 and do
    /// not reconnect by themselves).
    ///
    /// # Errors
    /// The server's refusal or a transport error.
    pub async fn terminate_user_connections(&self, user_id: &str) -> Result<(), ApiError> {
        if user_id.is_empty() {
            return Err(ApiError::InvalidArgument("empty user id".into()));
        }
        let path = format!(
            "users/{}/terminate_connections",
            http::encode_path_segment(user_id)
        );
        let _: serde_json::Value = self.post(&path, &serde_json::json!({})).await?;
        Ok(())
    }

    /// The answer of a channel auth endpoint, as the Pusher server libraries
    /// build it: `{"auth"}`, plus `channel_data` (presence, the exact string
    /// signed) and `shared_secret` (`private-encrypted-*`, derived from the
    /// master key). Serialize it with `serde_json` to answer the request.
    ///
    /// # Errors
    /// [`ApiError::InvalidArgument`] for a malformed socket id, a presence
    /// channel without `channel_data` or a non-presence one with it;
    /// [`ApiError::Encryption`] for an encrypted channel without master key.
    pub fn authorize_channel(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> Result<ChannelAuthResponse, ApiError> {
        check_socket_id(socket_id)?;
        let (kind, _) = classify(channel);
        match (kind, channel_data) {
            (ChannelKind::Presence, None) => {
                return Err(ApiError::InvalidArgument(
                    "presence channels need channel_data".into(),
                ));
            }
            (ChannelKind::Presence, Some(_)) => {}
            (_, Some(_)) => {
                return Err(ApiError::InvalidArgument(
                    "channel_data is only for presence channels".into(),
                ));
            }
            _ => {}
        }
        let c = &self.config;
        if kind == ChannelKind::PrivateEncrypted {
            let key = self.master_key()?;
            return Ok(pusher_auth::authorize_encrypted_channel(
                &c.key, &c.secret, socket_id, channel, key,
            ));
        }
        Ok(pusher_auth::authorize_channel(
            &c.key,
            &c.secret,
            socket_id,
            channel,
            channel_data,
        ))
    }

    /// The answer of a user authentication endpoint (`pusher:signin`):
    /// `{"auth","user_data"}`. `user_data` is sent as [`event_data`] makes
    /// it and must hold a non-empty string `id` (and may hold `user_info` and
    /// `watchlist`).
    ///
    /// # Errors
    /// [`ApiError::InvalidArgument`] for a malformed socket id or user data.
    pub fn authenticate_user<D: Serialize + ?Sized>(
        &self,
        socket_id: &str,
        user_data: &D,
    ) -> Result<UserAuthResponse, ApiError> {
        check_socket_id(socket_id)?;
        let text = event_data(user_data)?;
        UserData::parse(&text).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let c = &self.config;
        Ok(pusher_auth::authenticate_user(
            &c.key, &c.secret, socket_id, &text,
        ))
    }

    /// Checks a webhook request: `X-Pusher-Key` must be this app's key and
    /// `X-Pusher-Signature` the HMAC of the raw `body`; returns the parsed
    /// body.
    ///
    /// # Errors
    /// [`ApiError::InvalidWebhook`] for a wrong key or signature,
    /// [`ApiError::Json`] for a body that is not a webhook.
    pub fn verify_webhook(
        &self,
        key: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<WebhookBody, ApiError> {
        if key != self.config.key {
            return Err(ApiError::InvalidWebhook(
                "X-Pusher-Key is not this app's key".into(),
            ));
        }
        pusher_auth::verify_webhook(&self.config.secret, body, signature)
            .map_err(|e| ApiError::InvalidWebhook(e.to_string()))?;
        Ok(serde_json::from_slice(body)?)
    }

    fn master_key(&self) -> Result<&MasterKey, ApiError> {
        self.config.encryption_master_key.as_ref().ok_or_else(|| {
            ApiError::Encryption("private-encrypted channels need encryption_master_key".into())
        })
    }

    fn encrypt(&self, channel: &str, plaintext: &str) -> Result<String, ApiError> {
        let key = self.master_key()?;
        let nonce = random_nonce().map_err(ApiError::Encryption)?;
        Ok(pusher_auth::encrypt(channel, key, plaintext.as_bytes(), nonce).to_json())
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        route: &str,
        body: &B,
    ) -> Result<R, ApiError> {
        let body = serde_json::to_vec(body)?;
        self.request(Method::POST, route, &[], Bytes::from(body))
            .await
    }

    async fn get<R: DeserializeOwned>(
        &self,
        route: &str,
        params: &[(&str, &str)],
    ) -> Result<R, ApiError> {
        self.request(Method::GET, route, params, Bytes::new()).await
    }

    async fn request<R: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        params: &[(&str, &str)],
        body: Bytes,
    ) -> Result<R, ApiError> {
        let c = &self.config;
        let path = format!("/apps/{}/{route}", http::encode_path_segment(&c.app_id));
        let query = pusher_auth::sign_request(
            method.as_str(),
            &path,
            params,
            &body,
            &c.key,
            &c.secret,
            now_unix(),
        );
        let uri = format!("{}{path}?{query}", self.base);
        let content_type = (method == Method::POST).then_some("application/json");
        let answer = http::send(
            &self.client,
            method,
            &uri,
            &[],
            content_type,
            body,
            c.timeout,
        )
        .await
        .map_err(|e| match e {
            http::SendError::Tls(m) => ApiError::Tls(m),
            http::SendError::Transport(m) => ApiError::Transport(m),
        })?;
        if !(200..300).contains(&answer.status) {
            return Err(ApiError::from_status(answer.status, &answer.body));
        }
        Ok(serde_json::from_slice(&answer.body)?)
    }
}

fn is_encrypted(channel: &str) -> bool {
    classify(channel).0 == ChannelKind::PrivateEncrypted
}

fn check_socket_id(socket_id: &str) -> Result<(), ApiError> {
    socket_id
        .parse::<SocketId>()
        .map(drop)
        .map_err(|e| ApiError::InvalidArgument(format!("socket_id {socket_id:?}: {e}")))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> Publisher {
        let mut config = PublisherConfig::new("1", "278d425bdf160c739803", "7ad3773142a6692b25b8");
        config.encryption_master_key = Some(MasterKey::from_bytes([7; 32]));
        Publisher::new(config).unwrap()
    }

    #[test]
    fn tls_selects_https() {
        let mut config = PublisherConfig::new("1", "k", "s");
        assert_eq!(
            Publisher::new(config.clone()).unwrap().base,
            "http://127.0.0.1:6001"
        );
        config.tls = true;
        config.host = "api.example.com".into();
        config.port = 443;
        assert_eq!(
            Publisher::new(config).unwrap().base,
            "https://api.example.com:443"
        );
    }

    #[test]
    fn invalid_extra_ca_is_refused() {
        let mut config = PublisherConfig::new("1", "k", "s");
        config.tls = true;
        config.extra_ca_certs = vec![CertificateDer::from(vec![1, 2, 3])];
        assert!(matches!(Publisher::new(config), Err(ApiError::Tls(_))));
    }

    #[test]
    fn auth_responses_match_the_server_libraries() {
        let p = publisher();
        let r = p
            .authorize_channel("1234.1234", "private-foobar", None)
            .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}"#
        );
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let r = p
            .authorize_channel("1234.1234", "presence-foobar", Some(data))
            .unwrap();
        assert_eq!(
            r.auth,
            "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
        assert_eq!(r.channel_data.as_deref(), Some(data));
        let u = p
            .authenticate_user("1234.1234", r#"{"id":"12345"}"#)
            .unwrap();
        assert_eq!(
            u.auth,
            "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
        );
        let e = p
            .authorize_channel("1234.1234", "private-encrypted-x", None)
            .unwrap();
        assert!(e.shared_secret.is_some());
    }

    #[test]
    fn helpers_refuse_bad_arguments() {
        let p = publisher();
        assert!(matches!(
            p.authorize_channel("nope", "private-a", None),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(matches!(
            p.authorize_channel("1.1", "presence-a", None),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(matches!(
            p.authenticate_user("1.1", r#"{"name":"no id"}"#),
            Err(ApiError::InvalidArgument(_))
        ));
        let no_key = Publisher::new(PublisherConfig::new("1", "k", "s")).unwrap();
        assert!(matches!(
            no_key.authorize_channel("1.1", "private-encrypted-a", None),
            Err(ApiError::Encryption(_))
        ));
    }

    #[test]
    fn webhooks() {
        let p = publisher();
        let body = br#"{"time_ms":1,"events":[{"name":"channel_occupied","channel":"c"}]}"#;
        let sig = pusher_auth::sign_webhook("7ad3773142a6692b25b8", body);
        let hook = p
            .verify_webhook("278d425bdf160c739803", &sig, body)
            .unwrap();
        assert_eq!(hook.events.len(), 1);
        assert!(matches!(
            p.verify_webhook("other", &sig, body),
            Err(ApiError::InvalidWebhook(_))
        ));
        assert!(matches!(
            p.verify_webhook("278d425bdf160c739803", &sig, b"{}"),
            Err(ApiError::InvalidWebhook(_))
        ));
    }
}
