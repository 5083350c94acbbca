//! The WebSocket side: connect, subscribe, receive, send client events,
//! sign in; reconnects and resubscribes by itself.
//!
//! The protocol lives in [`core`], a state machine without IO; the
//! [`driver`] task moves its frames over the [`transport`]; handles call the
//! core through [`shared::Shared`] and wake the driver.

mod channel;
mod core;
mod driver;
mod shared;
mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pusher_proto::{ChannelKind, WatchlistEvent};
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, oneshot};

pub use channel::{Binding, Channel, Event, Member};

use self::core::Core;
use self::shared::{Dispatch, Listener, Shared};
use crate::authorizer::Authorizer;
use crate::error::SocketError;
use crate::stream::EventStream;

/// Where the server is and how the subscriber behaves.
#[derive(Clone)]
pub struct SubscriberConfig {
    /// The server's host name or IP address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// `wss://` instead of `ws://`. The server's certificate must chain to
    /// one of Mozilla's root certificates or to one of `extra_ca_certs`, and
    /// be valid for `host` (a DNS name or an IP address).
    pub tls: bool,
    /// CA certificates (DER) trusted besides Mozilla's roots for `wss://`:
    /// a private CA or a self-signed server certificate. Load a PEM file with
    /// [`crate::load_pem_certs`].
    pub extra_ca_certs: Vec<CertificateDer<'static>>,
    /// The app key.
    pub key: String,
    /// Authorizes private, presence and encrypted channels and sign-in.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// Ping after this much silence if it is shorter than the server's
    /// `activity_timeout` (the server's value is used otherwise).
    pub activity_timeout: Option<Duration>,
    /// How long to wait for any frame after a ping before the connection
    /// counts as lost and is replaced. Default 30 s (as pusher-js).
    pub pong_timeout: Duration,
    /// How long opening a connection (TCP, upgrade, first frame) may take.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// First reconnect delay after a network failure; doubles up to
    /// `reconnect_max_delay`. Default 1 s.
    pub reconnect_min_delay: Duration,
    /// Longest reconnect delay. Default 30 s.
    pub reconnect_max_delay: Duration,
}

impl SubscriberConfig {
    /// A configuration for `key` on `host:port`, plain `ws://` (set `tls`
    /// for `wss://`), no
    /// authorizer, the defaults above.
    pub fn new(host: impl Into<String>, port: u16, key: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            tls: false,
            extra_ca_certs: Vec::new(),
            key: key.into(),
            authorizer: None,
            activity_timeout: None,
            pong_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_min_delay: Duration::from_secs(1),
            reconnect_max_delay: Duration::from_secs(30),
        }
    }

    /// Sets the authorizer.
    #[must_use]
    pub fn with_authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// The WebSocket URL, as pusher-js builds it (`wss://` when `tls` is set).
    pub fn url(&self) -> String {
        format!(
            "{}://{}/app/{}?protocol=7&client=vask-client-rust&version={}&flash=false",
            if self.tls { "wss" } else { "ws" },
            crate::http::authority(&self.host, self.port),
            crate::http::encode_path_segment(&self.key),
            env!("CARGO_PKG_VERSION"),
        )
    }
}

impl fmt::Debug for SubscriberConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("extra_ca_certs", &self.extra_ca_certs.len())
            .field("key", &self.key)
            .field(
                "authorizer",
                &self.authorizer.as_ref().map(|_| "<authorizer>"),
            )
            .field("activity_timeout", &self.activity_timeout)
            .field("pong_timeout", &self.pong_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .finish()
    }
}

/// The connection's state, as pusher-js names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening a connection.
    Connecting,
    /// Open: `pusher:connection_established` received.
    Connected {
        /// This connection's socket id (new on every reconnection).
        socket_id: String,
    },
    /// The connection was lost; the next attempt is in `retry_in`.
    Unavailable {
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// Closed for good: by [`Subscriber::disconnect`], by a code that says
    /// not to reconnect (4000-4099: unknown app, 4009 terminated, ...), or
    /// because the first connection failed.
    Disconnected {
        /// The close or error code, when the server gave one.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
}

/// A `pusher:error` the server sent (rate limits, refused client events,
/// failed sign-in, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The Pusher code, if any (4009, 4301, ...).
    pub code: Option<u16>,
    /// The server's message.
    pub message: String,
}

/// A connection to a Pusher Channels server, kept open in a background task.
///
/// Cheap to clone: clones are handles to the same connection. The task
/// pings after `activity_timeout` of silence, reconnects when the
/// connection drops (immediately for 4200-4299, after at least 1 s for
/// 4100-4199, with exponential backoff for network failures, never for
/// 4000-4099), and on each new connection resubscribes every channel,
/// asking the authorizer again for the new socket id, and signs in again if
/// [`Subscriber::signin`] was used. It stops when [`Subscriber::disconnect`]
/// is called or every handle (subscribers and channels) is dropped.
#[derive(Debug, Clone)]
pub struct Subscriber {
    shared: Arc<Shared>,
    /// Wakes the driver after a call into the core; when every sender is
    /// gone, the driver stops.
    wake: mpsc::Sender<()>,
}

impl Subscriber {
    /// Connects and waits for `pusher:connection_established`.
    ///
    /// Must be called inside a tokio runtime (the background task is
    /// spawned on it).
    ///
    /// # Errors
    /// [`SocketError::Connect`] when the server cannot be reached,
    /// [`SocketError::Tls`] when TLS fails (untrusted certificate, a host
    /// that is not a valid server name, an invalid extra CA certificate),
    /// [`SocketError::Refused`] when it refuses the connection (4001 unknown
    /// key, ...). Only the first connection fails this way: later ones are
    /// retried.
    pub async fn connect(config: SubscriberConfig) -> Result<Self, SocketError> {
        let tls = if config.tls {
            Some(transport::TlsSetup::new(&config).map_err(SocketError::Tls)?)
        } else {
            None
        };
        let core = Core::new(
            core::Config::of(&config),
            Instant::now(),
            crate::data::random_u64(),
        );
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = Arc::new(Shared::new(core, Dispatch::new(ready_tx)));
        let (wake, wake_rx) = mpsc::channel(1);
        tokio::spawn(driver::run(config, tls, shared.clone(), wake_rx));
        ready_rx.await.map_err(|_| SocketError::Closed)??;
        Ok(Self { shared, wake })
    }

    /// The current connection's socket id (`None` while not connected).
    /// Pass it to [`crate::TriggerOptions::socket_id`] to exclude this
    /// connection from a publish.
    pub fn socket_id(&self) -> Option<String> {
        self.shared.lock().core.socket_id().map(str::to_owned)
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.shared.lock().dispatch.state.borrow().clone()
    }

    /// Every state change from now on.
    pub fn state_changes(&self) -> EventStream<ConnectionState> {
        let mut inner = self.shared.lock();
        let dispatch = &mut inner.dispatch;
        if dispatch.closed {
            return EventStream::ended();
        }
        let (tx, stream) = EventStream::new();
        dispatch.state_listeners.push(tx);
        stream
    }

    /// Waits until connected (returns the socket id).
    ///
    /// # Errors
    /// [`SocketError::Closed`] if the subscriber stopped instead.
    pub async fn wait_connected(&self) -> Result<String, SocketError> {
        let mut rx = self.shared.lock().dispatch.state.subscribe();
        let state = rx
            .wait_for(|s| {
                matches!(
                    s,
                    ConnectionState::Connected { .. } | ConnectionState::Disconnected { .. }
                )
            })
            .await
            .map_err(|_| SocketError::Closed)?;
        match &*state {
            ConnectionState::Connected { socket_id } => Ok(socket_id.clone()),
            _ => Err(SocketError::Closed),
        }
    }

    /// Every `pusher:error` the server sends from now on.
    pub fn errors(&self) -> EventStream<ServerError> {
        let mut inner = self.shared.lock();
        let dispatch = &mut inner.dispatch;
        if dispatch.closed {
            return EventStream::ended();
        }
        let (tx, stream) = EventStream::new();
        dispatch.error_listeners.push(tx);
        stream
    }

    /// Subscribes to `channel` (or returns the handle of an existing
    /// subscription). Returns at once: the subscription completes in the
    /// background (await [`Channel::subscribed`] to know when). Private,
    /// presence and encrypted channels ask the authorizer first.
    ///
    /// # Errors
    /// [`SocketError::InvalidChannel`] for a malformed name or a
    /// `#server-to-user-` channel (use [`Subscriber::signin`]),
    /// [`SocketError::Closed`] if the subscriber has stopped.
    pub fn subscribe(&self, channel: &str) -> Result<Channel, SocketError> {
        let kind = self.shared.call(|core, dispatch| {
            let kind = core.subscribe(channel)?;
            dispatch.channel(channel);
            Ok::<_, SocketError>(kind)
        })?;
        wake(&self.wake);
        Ok(self.channel_handle(channel, kind))
    }

    /// The handle of a channel subscribed earlier.
    pub fn channel(&self, channel: &str) -> Option<Channel> {
        let kind = self.shared.lock().core.kind(channel)?;
        (kind != ChannelKind::ServerToUser).then(|| self.channel_handle(channel, kind))
    }

    /// The names of the channels subscribed (or subscribing).
    pub fn channels(&self) -> Vec<String> {
        self.shared.lock().core.channel_names()
    }

    /// Leaves `channel`: its streams end and it is not resubscribed.
    pub fn unsubscribe(&self, channel: &str) {
        channel::unsubscribe(&self.shared, &self.wake, channel);
    }

    fn channel_handle(&self, channel: &str, kind: ChannelKind) -> Channel {
        Channel::new(channel, kind, self.shared.clone(), self.wake.clone())
    }

    /// Signs in (`pusher:signin`) with the authorizer's user authentication,
    /// and returns the user id. Then, as pusher-js does, joins
    /// `#server-to-user-<id>` (see [`Subscriber::user_events`]); the
    /// watchlist in the user data produces [`Subscriber::watchlist_events`].
    /// After a reconnection the subscriber signs in again by itself.
    ///
    /// Waits for a connection if there is none; wrap it in a timeout if that
    /// matters.
    ///
    /// # Errors
    /// [`SocketError::Signin`] when the authorizer fails or the server
    /// refuses, [`SocketError::Closed`] if the subscriber stops first.
    pub async fn signin(&self) -> Result<String, SocketError> {
        let waiting = self.shared.call(|core, dispatch| {
            let signed_in = core.signin()?;
            Ok::<_, SocketError>(signed_in.map_or_else(
                || {
                    let (tx, rx) = oneshot::channel();
                    dispatch.signin_waiters.push(tx);
                    Err(rx)
                },
                Ok,
            ))
        })?;
        let rx = match waiting {
            Ok(id) => return Ok(id),
            Err(rx) => rx,
        };
        wake(&self.wake);
        rx.await
            .map_err(|_| SocketError::Closed)?
            .map_err(SocketError::Signin)
    }

    /// The signed-in user's id on the current connection.
    pub fn user_id(&self) -> Option<String> {
        self.shared.lock().core.user_id().map(str::to_owned)
    }

    /// Events sent to the signed-in user (`send_to_user`), from now on.
    pub fn user_events(&self) -> EventStream<Event> {
        self.user_listener(None)
    }

    /// Events named `event` sent to the signed-in user.
    pub fn user_bind(&self, event: &str) -> EventStream<Event> {
        self.user_listener(Some(event.to_owned()))
    }

    fn user_listener(&self, filter: Option<String>) -> EventStream<Event> {
        let mut inner = self.shared.lock();
        let dispatch = &mut inner.dispatch;
        if dispatch.closed {
            return EventStream::ended();
        }
        let (tx, stream) = EventStream::new();
        dispatch.user_listeners.push(Listener { filter, tx });
        stream
    }

    /// Online/offline changes of the users in the signed-in user's
    /// watchlist, from now on.
    pub fn watchlist_events(&self) -> EventStream<WatchlistEvent> {
        let mut inner = self.shared.lock();
        let dispatch = &mut inner.dispatch;
        if dispatch.closed {
            return EventStream::ended();
        }
        let (tx, stream) = EventStream::new();
        dispatch.watchlist_listeners.push(tx);
        stream
    }

    /// Closes the connection (close code 1000) and stops the background
    /// task; every stream ends. Idempotent.
    pub async fn disconnect(&self) {
        let done = self.shared.call(|core, dispatch| {
            if dispatch.driver_done {
                return None;
            }
            let (tx, rx) = oneshot::channel();
            dispatch.disconnect_waiters.push(tx);
            core.disconnect();
            Some(rx)
        });
        if let Some(done) = done {
            wake(&self.wake);
            let _ = done.await;
        }
    }
}

/// Wakes the driver: the core has something for it. A wake already pending
/// is enough.
pub(crate) fn wake(wake: &mpsc::Sender<()>) {
    let _ = wake.try_send(());
}
