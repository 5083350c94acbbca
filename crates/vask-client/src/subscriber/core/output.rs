//! What the core hands out (frames to send, events for the user-facing
//! side, actions for the driver) and how a transport ended (an input).

use std::collections::VecDeque;

use pusher_proto::{ChannelKind, ClientFrame, WatchlistEvent};

use crate::error::{SocketError, SubscribeFailure};
use crate::subscriber::{ConnectionState, Event, ServerError};

/// Where a channel's subscription stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubStatus {
    /// Waiting for the connection, the authorizer or the server.
    Pending,
    /// `subscription_succeeded` received on the current connection.
    Subscribed,
    /// Refused or not authorized (retried on the next connection).
    Failed(SubscribeFailure),
}

/// What the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the driver carries out every action"]
pub(crate) enum Action {
    /// Open a new connection (TCP, TLS for `wss://`, the WebSocket upgrade)
    /// and report it: [`super::Core::handle_connected`] once it is open,
    /// [`super::Core::handle_closed`] if it fails. The core enforces the
    /// connect timeout itself.
    Connect,
    /// Drop the current connection, or the attempt to open one, without a
    /// close handshake (no pong, no handshake in time). Its end is not
    /// reported: the core has already moved on.
    Abort,
    /// Close the connection with code 1000 and wait briefly for the
    /// server's answer (a disconnect was asked). Its end is not reported.
    Close,
    /// Ask the authorizer to sign `channel` for `socket_id`; answer with
    /// [`super::Core::handle_channel_auth`], tagged with both.
    AuthorizeChannel {
        /// The connection the signature is for.
        socket_id: String,
        /// The private, presence or encrypted channel.
        channel: String,
    },
    /// Ask the authorizer for the user authentication of `socket_id`;
    /// answer with [`super::Core::handle_user_auth`].
    AuthenticateUser {
        /// The connection signing in.
        socket_id: String,
    },
    /// The subscriber has stopped for good: end the driver.
    Stop,
}

/// What the user-facing side (streams, callbacks, waiting calls) receives.
#[derive(Debug)]
#[must_use = "an event someone waits for"]
pub(crate) enum CoreEvent {
    /// The connection state changed.
    State(ConnectionState),
    /// The first connection attempt's outcome (sent once): what
    /// `Subscriber::connect` returns.
    Ready(Result<(), SocketError>),
    /// A channel's subscription status changed.
    Status {
        /// The channel.
        channel: String,
        /// Its new status.
        status: SubStatus,
    },
    /// An event for a channel's listeners: published, a client event, or
    /// the protocol's own under pusher-js's names (decrypted on encrypted
    /// channels).
    Channel(Event),
    /// An event sent to the signed-in user (on its `#server-to-user-`
    /// channel).
    User(Event),
    /// A `pusher:error` the server sent on an open connection.
    ServerError(ServerError),
    /// A watchlist change of the signed-in user.
    Watchlist(WatchlistEvent),
    /// The outcome of the sign-in asked with [`super::Core::signin`]: the user
    /// id, or why it failed.
    Signin(Result<String, String>),
    /// The subscriber has stopped: every stream ends (sent after the last
    /// `State`).
    Stopped,
}

/// How a connection, or an attempt to open one, ended, as the transport saw
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransportEnd {
    /// A close frame arrived: its code (`None` for a close frame without
    /// one) and reason.
    CloseFrame {
        /// The close code.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// The stream ended without a close frame.
    Eof,
    /// The socket failed: TCP, the WebSocket upgrade, an IO or protocol
    /// error while open.
    Error(String),
    /// The TLS handshake failed.
    Tls(String),
}

/// The three output queues.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    pub(super) transmits: VecDeque<String>,
    pub(super) events: VecDeque<CoreEvent>,
    pub(super) actions: VecDeque<Action>,
}

impl Outputs {
    /// Queues `frame` for the current connection.
    pub(super) fn send(&mut self, frame: &ClientFrame) {
        // ClientFrame encodes JSON, which is UTF-8.
        let text = String::from_utf8_lossy(&frame.encode()).into_owned();
        self.transmits.push_back(text);
    }

    pub(super) fn event(&mut self, event: CoreEvent) {
        self.events.push_back(event);
    }

    pub(super) fn action(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// Hands `event` of a channel of `kind` to its listeners: on the user's
    /// channel, what was sent to the user goes to the user's streams (the
    /// protocol's own `pusher:` events about that channel do not, as in
    /// pusher-js).
    pub(super) fn deliver(&mut self, kind: ChannelKind, event: Event) {
        if kind == ChannelKind::ServerToUser && !event.name.starts_with("pusher:") {
            self.event(CoreEvent::User(event));
        } else {
            self.event(CoreEvent::Channel(event));
        }
    }
}
