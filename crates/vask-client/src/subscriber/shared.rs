//! What the handles and the driver share: the protocol [`Core`] and the
//! user-facing side it feeds (listeners, status watches, waiting calls),
//! behind one mutex that is never held across an await.
//!
//! Handles call the core ([`Shared::call`]) and wake the driver; only the
//! driver hands the core's events to the streams ([`Shared::step`], under
//! the same lock as its input). So an event always arrives after the call
//! that caused it has returned, as pusher-js delivers them: a listener
//! bound right after `subscribe()` still sees a refusal.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use pusher_proto::WatchlistEvent;
use tokio::sync::{mpsc, oneshot, watch};

use super::core::{Action, Core, CoreEvent, SubStatus};
use super::{ConnectionState, Event, ServerError};
use crate::error::{SocketError, SubscribeFailure};

/// One receiver of a channel's (or the user's) events.
#[derive(Debug)]
pub(crate) struct Listener {
    /// Only events of this name, or all.
    pub(crate) filter: Option<String>,
    pub(crate) tx: mpsc::UnboundedSender<Event>,
}

/// Sends `event` to the listeners that want it; forgets those whose stream
/// was dropped.
fn deliver(listeners: &mut Vec<Listener>, event: &Event) {
    listeners.retain(|l| match &l.filter {
        Some(name) if *name != event.name => !l.tx.is_closed(),
        _ => l.tx.send(event.clone()).is_ok(),
    });
}

/// Sends `item` to every listener; forgets the dropped ones.
fn broadcast<T: Clone>(listeners: &mut Vec<mpsc::UnboundedSender<T>>, item: &T) {
    listeners.retain(|tx| tx.send(item.clone()).is_ok());
}

/// The listeners of one channel the user subscribed.
#[derive(Debug)]
pub(crate) struct ChannelListeners {
    pub(crate) listeners: Vec<Listener>,
    /// What `Channel::subscribed` waits on.
    pub(crate) status: watch::Sender<SubStatus>,
}

/// The user-facing side: where the core's events go.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub(crate) channels: HashMap<String, ChannelListeners>,
    pub(crate) user_listeners: Vec<Listener>,
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) state_listeners: Vec<mpsc::UnboundedSender<ConnectionState>>,
    pub(crate) error_listeners: Vec<mpsc::UnboundedSender<ServerError>>,
    pub(crate) watchlist_listeners: Vec<mpsc::UnboundedSender<WatchlistEvent>>,
    /// Callers of `signin()` waiting for the outcome.
    pub(crate) signin_waiters: Vec<oneshot::Sender<Result<String, String>>>,
    /// `Subscriber::connect`, waiting for the first attempt.
    ready: Option<oneshot::Sender<Result<(), SocketError>>>,
    /// The core has stopped: nothing will be delivered any more.
    pub(crate) closed: bool,
    /// The driver has ended (the socket is closed).
    pub(crate) driver_done: bool,
    /// Callers of `disconnect()` waiting for the driver to end.
    pub(crate) disconnect_waiters: Vec<oneshot::Sender<()>>,
}

impl Dispatch {
    pub(crate) fn new(ready: oneshot::Sender<Result<(), SocketError>>) -> Self {
        Self {
            channels: HashMap::new(),
            user_listeners: Vec::new(),
            state: watch::Sender::new(ConnectionState::Connecting),
            state_listeners: Vec::new(),
            error_listeners: Vec::new(),
            watchlist_listeners: Vec::new(),
            signin_waiters: Vec::new(),
            ready: Some(ready),
            closed: false,
            driver_done: false,
            disconnect_waiters: Vec::new(),
        }
    }

    /// The listeners of `channel`, made when a handle subscribes it.
    pub(crate) fn channel(&mut self, channel: &str) -> &mut ChannelListeners {
        (self.channels.entry(channel.to_owned())).or_insert_with(|| ChannelListeners {
            listeners: Vec::new(),
            status: watch::Sender::new(SubStatus::Pending),
        })
    }

    /// The user left `channel`: its streams end and its waiters learn it
    /// at once (the core sends nothing more for it).
    pub(crate) fn left(&mut self, channel: &str) {
        if let Some(c) = self.channels.remove(channel) {
            c.status
                .send_replace(SubStatus::Failed(SubscribeFailure::Unsubscribed));
        }
    }

    /// Hands one event of the core to whoever waits for it.
    fn apply(&mut self, event: CoreEvent) {
        match event {
            CoreEvent::State(state) => {
                self.state.send_replace(state.clone());
                broadcast(&mut self.state_listeners, &state);
            }
            CoreEvent::Ready(result) => {
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(result);
                }
            }
            CoreEvent::Status { channel, status } => {
                if let Some(c) = self.channels.get(&channel) {
                    c.status.send_replace(status);
                }
            }
            CoreEvent::Channel(event) => {
                if let Some(c) = self.channels.get_mut(&event.channel) {
                    deliver(&mut c.listeners, &event);
                }
            }
            CoreEvent::User(event) => deliver(&mut self.user_listeners, &event),
            CoreEvent::ServerError(error) => broadcast(&mut self.error_listeners, &error),
            CoreEvent::Watchlist(event) => broadcast(&mut self.watchlist_listeners, &event),
            CoreEvent::Signin(outcome) => {
                for w in self.signin_waiters.drain(..) {
                    let _ = w.send(outcome.clone());
                }
            }
            CoreEvent::Stopped => self.close(),
        }
    }

    /// Ends every stream and wait: the subscriber has stopped.
    fn close(&mut self) {
        self.closed = true;
        self.channels.clear();
        self.user_listeners.clear();
        self.state_listeners.clear();
        self.error_listeners.clear();
        self.watchlist_listeners.clear();
        for w in self.signin_waiters.drain(..) {
            let _ = w.send(Err("the subscriber stopped before sign-in completed".into()));
        }
    }
}

/// The core and its user-facing side.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) core: Core,
    pub(crate) dispatch: Dispatch,
}

/// What the driver must do after an input, taken from the core at once.
#[derive(Debug, Default)]
pub(crate) struct DriverWork {
    pub(crate) transmits: Vec<String>,
    pub(crate) actions: Vec<Action>,
    pub(crate) timeout: Option<Instant>,
}

/// What handles and the driver share.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn new(core: Core, dispatch: Dispatch) -> Self {
        Self {
            inner: Mutex::new(Inner { core, dispatch }),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Locks the state; a panic elsewhere does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle's call: runs `f` on the core and the user-facing side. The
    /// caller then wakes the driver, which delivers the events.
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut Core, &mut Dispatch) -> R) -> R {
        let mut inner = self.lock();
        let Inner { core, dispatch } = &mut *inner;
        f(core, dispatch)
    }

    /// The driver's input `f`: feeds it to the core, delivers the core's
    /// events (the handles' calls' first), and takes what the driver must
    /// do next, in the order the core's contract gives.
    pub(crate) fn step(&self, f: impl FnOnce(&mut Core)) -> DriverWork {
        let mut inner = self.lock();
        let Inner { core, dispatch } = &mut *inner;
        f(core);
        let mut work = DriverWork::default();
        while let Some(frame) = core.poll_transmit() {
            work.transmits.push(frame);
        }
        while let Some(event) = core.poll_event() {
            dispatch.apply(event);
        }
        while let Some(action) = core.poll_action() {
            work.actions.push(action);
        }
        work.timeout = core.poll_timeout();
        work
    }

    /// The driver has ended: `disconnect()` callers return, and if the core
    /// did not stop (the driver panicked) the streams end anyway.
    pub(crate) fn driver_done(&self) {
        let mut inner = self.lock();
        let dispatch = &mut inner.dispatch;
        dispatch.driver_done = true;
        if !dispatch.closed {
            dispatch.close();
        }
        for w in dispatch.disconnect_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
