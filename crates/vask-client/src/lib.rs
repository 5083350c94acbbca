//! A Rust client for both sides of the Pusher Channels protocol, for Vask
//! and any Pusher-compatible server.
//!
//! - [`Publisher`]: the HTTP API as an app server uses it: publish events
//!   ([`Publisher::trigger`], [`Publisher::trigger_batch`],
//!   [`Publisher::send_to_user`]), query channels and users, terminate a
//!   user's connections; plus what an app's auth endpoints and webhook
//!   receiver need ([`Publisher::authorize_channel`],
//!   [`Publisher::authenticate_user`], [`Publisher::verify_webhook`]).
//!   Requests are signed, and reuse keep-alive connections. Events on
//!   `private-encrypted-*` channels are encrypted with the master key.
//! - [`Subscriber`]: the WebSocket side as pusher-js offers it: public,
//!   private, presence, encrypted and cache channels as [`Channel`] handles
//!   with event streams and callbacks, client events, sign-in with
//!   server-to-user events and watchlists. A background task owns the
//!   socket: it pings, reconnects by the close code's class with backoff,
//!   and resubscribes every channel (authorizing again) by itself.
//!
//! `tls: true` switches to `https://` and `wss://` (rustls with the ring
//! provider). The server's certificate must chain to one of Mozilla's root
//! certificates or to an extra CA of the configuration
//! ([`PublisherConfig::extra_ca_certs`], [`SubscriberConfig::extra_ca_certs`],
//! [`HttpAuthorizer::with_extra_ca_certs`]; [`load_pem_certs`] reads a PEM
//! file); failures are [`ApiError::Tls`] and [`SocketError::Tls`].
//! Everything runs on tokio.
//!
//! # Example
//!
//! ```no_run
//! use vask_client::{Publisher, PublisherConfig, Subscriber, SubscriberConfig, TriggerOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Subscribe to a channel on a local vask-server (the default app).
//! let subscriber = Subscriber::connect(SubscriberConfig::new("127.0.0.1", 6001, "vask-key")).await?;
//! let channel = subscriber.subscribe("orders")?;
//! let mut created = channel.bind("order-created");
//! channel.subscribed().await?;
//!
//! // Publish from the app server.
//! let publisher = Publisher::new(PublisherConfig::new("1", "vask-key", "vask-secret"))?;
//! publisher
//!     .trigger(["orders"], "order-created", &serde_json::json!({"id": 7}), TriggerOptions::default())
//!     .await?;
//!
//! let event = created.recv().await.expect("an event");
//! assert_eq!(event.data, r#"{"id":7}"#);
//! subscriber.disconnect().await;
//! # Ok(()) }
//! ```
//!
//! Private and presence channels need an [`Authorizer`]: the app's auth
//! endpoints ([`HttpAuthorizer`], as pusher-js calls them) or a closure
//! ([`FnAuthorizer`]).

mod authorizer;
mod data;
mod error;
mod http;
mod publisher;
mod stream;
mod subscriber;
mod tls;

pub use authorizer::{AuthFuture, Authorizer, FnAuthorizer, HttpAuthorizer};
pub use data::event_data;
pub use error::{ApiError, AuthorizerError, SocketError, SubscribeFailure};
pub use publisher::{Publisher, PublisherConfig, TriggerOptions};
pub use stream::EventStream;
pub use tls::{client_config as tls_client_config, load_pem_certs};

/// A DER certificate, as [`load_pem_certs`] returns them (re-exported from
/// `rustls-pki-types`).
pub use rustls_pki_types::CertificateDer;
pub use subscriber::{
    Binding, Channel, ConnectionState, Event, Member, ServerError, Subscriber, SubscriberConfig,
};

pub use pusher_auth::{ChannelAuthResponse, MasterKey, UserAuthResponse};
pub use pusher_proto::http::{
    BatchEvent, BatchResponse, ChannelCounts, ChannelInfoResponse, ChannelsResponse,
    TriggerResponse,
};
pub use pusher_proto::webhook::{WebhookBody, WebhookEvent};
pub use pusher_proto::{
    ChannelKind, SubscriptionError, SubscriptionErrorKind, WatchlistEvent, WatchlistEventName,
};

/// Runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
