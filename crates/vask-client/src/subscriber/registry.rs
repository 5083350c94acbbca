//! What the subscriber's handles and its background task share: the
//! channels with their listeners and state, the signed-in user, and the
//! connection-level listeners. Locked briefly, never across an await.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use pusher_proto::{ChannelKind, WatchlistEvent};
use tokio::sync::{mpsc, oneshot, watch};

use super::{ConnectionState, Event, Member, ServerError};
use crate::error::SubscribeFailure;

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

/// One receiver of a channel's events.
#[derive(Debug)]
pub(crate) struct Listener {
    /// Only events of this name, or all.
    pub(crate) filter: Option<String>,
    pub(crate) tx: mpsc::UnboundedSender<Event>,
}

/// Sends `event` to the listeners that want it; forgets those whose stream
/// was dropped.
pub(crate) fn deliver(listeners: &mut Vec<Listener>, event: &Event) {
    listeners.retain(|l| match &l.filter {
        Some(name) if *name != event.name => !l.tx.is_closed(),
        _ => l.tx.send(event.clone()).is_ok(),
    });
}

/// Sends `item` to every listener; forgets the dropped ones.
pub(crate) fn broadcast<T: Clone>(listeners: &mut Vec<mpsc::UnboundedSender<T>>, item: &T) {
    listeners.retain(|tx| tx.send(item.clone()).is_ok());
}

/// One subscribed (or subscribing) channel.
#[derive(Debug)]
pub(crate) struct ChannelEntry {
    pub(crate) kind: ChannelKind,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) status: watch::Sender<SubStatus>,
    /// Presence: the members, in the server's order, then joins.
    pub(crate) members: Vec<Member>,
    /// Presence: this connection's user id (from the signed channel_data).
    pub(crate) me: Option<String>,
    /// Encrypted: the key from the authorizer.
    pub(crate) shared_secret: Option<[u8; 32]>,
    /// The last `subscription_count` received.
    pub(crate) subscription_count: Option<u64>,
}

impl ChannelEntry {
    pub(crate) fn new(kind: ChannelKind) -> Self {
        Self {
            kind,
            listeners: Vec::new(),
            status: watch::Sender::new(SubStatus::Pending),
            members: Vec::new(),
            me: None,
            shared_secret: None,
            subscription_count: None,
        }
    }

    pub(crate) fn set_status(&self, status: SubStatus) {
        self.status.send_replace(status);
    }
}

/// Sign-in state.
#[derive(Debug, Default)]
pub(crate) struct UserState {
    /// `signin()` was called: sign in again on every new connection.
    pub(crate) requested: bool,
    /// The id of `signin_success` on the current connection.
    pub(crate) id: Option<String>,
    /// Callers of `signin()` waiting for the outcome.
    pub(crate) waiters: Vec<oneshot::Sender<Result<String, String>>>,
}

impl UserState {
    pub(crate) fn settle(&mut self, outcome: &Result<String, String>) {
        for w in self.waiters.drain(..) {
            let _ = w.send(outcome.clone());
        }
    }
}

/// Everything shared, behind one mutex.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) socket_id: Option<String>,
    pub(crate) channels: HashMap<String, ChannelEntry>,
    pub(crate) user: UserState,
    pub(crate) user_listeners: Vec<Listener>,
    pub(crate) state_listeners: Vec<mpsc::UnboundedSender<ConnectionState>>,
    pub(crate) error_listeners: Vec<mpsc::UnboundedSender<ServerError>>,
    pub(crate) watchlist_listeners: Vec<mpsc::UnboundedSender<WatchlistEvent>>,
    /// The background task has ended: nothing will be delivered any more.
    pub(crate) closed: bool,
}

impl Registry {
    /// Delivers an event of `channel` to its listeners (and, for the
    /// `#server-to-user-` channel, to the user listeners).
    pub(crate) fn emit(&mut self, event: &Event) {
        let Some(entry) = self.channels.get_mut(&event.channel) else {
            return;
        };
        // As pusher-js: the user gets the events sent to it, not the
        // protocol's own about its channel.
        if entry.kind == ChannelKind::ServerToUser && !event.name.starts_with("pusher:") {
            deliver(&mut self.user_listeners, event);
        }
        deliver(&mut entry.listeners, event);
    }

    /// Ends every stream and wait (after the last state was sent): the
    /// subscriber has stopped.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.socket_id = None;
        self.channels.clear();
        self.user_listeners.clear();
        self.state_listeners.clear();
        self.error_listeners.clear();
        self.watchlist_listeners.clear();
        self.user.settle(&Err(
            "the subscriber stopped before sign-in completed".into()
        ));
        self.user.requested = false;
        self.user.id = None;
    }
}

/// Locks the registry; a panic elsewhere does not make it unusable (every
/// update leaves it consistent).
pub(crate) fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
