//! A subscribed channel's handle, and what it delivers.

use std::fmt;
use std::sync::Arc;

use pusher_proto::{ChannelKind, RawJson};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::core::SubStatus;
use super::shared::{Listener, Shared};
use crate::error::{SocketError, SubscribeFailure};
use crate::stream::EventStream;

/// An event received on a channel.
///
/// Besides the events published to the channel, the channel delivers the
/// protocol's own under pusher-js's names: `pusher:subscription_succeeded`,
/// `pusher:subscription_error`, `pusher:member_added`,
/// `pusher:member_removed`, `pusher:cache_miss`,
/// `pusher:subscription_count`, and `pusher:decryption_error` when an event
/// on an encrypted channel cannot be decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The channel.
    pub channel: String,
    /// The event name.
    pub name: String,
    /// The data text: what the publisher sent (decrypted on encrypted
    /// channels), usually JSON.
    pub data: String,
    /// For client events on presence channels: the sender's user id.
    pub user_id: Option<String>,
}

impl Event {
    /// The data parsed as JSON into `T`.
    ///
    /// # Errors
    /// When the data is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

/// A member of a presence channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user id.
    pub id: String,
    /// The `user_info` the app's auth endpoint signed, if any.
    pub info: Option<serde_json::Value>,
}

impl Member {
    pub(crate) fn from_proto(m: pusher_proto::Member) -> Self {
        Self {
            id: m.user_id,
            info: m
                .user_info
                .and_then(|raw| serde_json::from_str(raw.json()).ok()),
        }
    }
}

/// A callback bound with [`Channel::on`]: it runs on a task of its own
/// until the channel is unsubscribed or [`Binding::unbind`] is called.
#[derive(Debug)]
pub struct Binding {
    task: JoinHandle<()>,
}

impl Binding {
    /// Stops calling the callback.
    pub fn unbind(self) {
        self.task.abort();
    }
}

/// A handle to one subscribed channel. Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    name: Arc<str>,
    kind: ChannelKind,
    shared: Arc<Shared>,
    wake: mpsc::Sender<()>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unsubscribe(shared: &Shared, wake: &mpsc::Sender<()>, channel: &str) {
    shared.call(|core, dispatch| {
        core.unsubscribe(channel);
        dispatch.left(channel);
    });
    super::wake(wake);
}

impl Channel {
    pub(crate) fn new(
        name: &str,
        kind: ChannelKind,
        shared: Arc<Shared>,
        wake: mpsc::Sender<()>,
    ) -> Self {
        Self {
            name: Arc::from(name),
            kind,
            shared,
            wake,
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel's kind.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn listen(&self, filter: Option<String>) -> EventStream<Event> {
        let mut inner = self.shared.lock();
        match inner.dispatch.channels.get_mut(&*self.name) {
            Some(channel) => {
                let (tx, stream) = EventStream::new();
                channel.listeners.push(Listener { filter, tx });
                stream
            }
            None => EventStream::ended(),
        }
    }

    /// Every event of the channel from now on (published events and the
    /// `pusher:` ones listed at [`Event`]).
    pub fn events(&self) -> EventStream<Event> {
        self.listen(None)
    }

    /// The events named `event` from now on.
    pub fn bind(&self, event: &str) -> EventStream<Event> {
        self.listen(Some(event.to_owned()))
    }

    /// Calls `callback` for each event named `event`, in order, on a task of
    /// its own.
    pub fn on<F>(&self, event: &str, mut callback: F) -> Binding
    where
        F: FnMut(Event) + Send + 'static,
    {
        let mut stream = self.bind(event);
        let task = self.shared.runtime.spawn(async move {
            while let Some(e) = stream.recv().await {
                callback(e);
            }
        });
        Binding { task }
    }

    /// Whether the channel is subscribed on the current connection.
    pub fn is_subscribed(&self) -> bool {
        let inner = self.shared.lock();
        (inner.dispatch.channels.get(&*self.name))
            .is_some_and(|c| *c.status.borrow() == SubStatus::Subscribed)
    }

    /// Waits until the subscription succeeds on the current connection.
    ///
    /// # Errors
    /// [`SocketError::Subscribe`] when the server refused it, the authorizer
    /// failed, or the channel was unsubscribed.
    pub async fn subscribed(&self) -> Result<(), SocketError> {
        let rx = {
            let inner = self.shared.lock();
            match inner.dispatch.channels.get(&*self.name) {
                Some(c) => c.status.subscribe(),
                None => return Err(SubscribeFailure::Unsubscribed.into()),
            }
        };
        let mut rx = rx;
        let status = rx
            .wait_for(|s| *s != SubStatus::Pending)
            .await
            .map_err(|_| SubscribeFailure::Unsubscribed)?;
        match &*status {
            SubStatus::Subscribed => Ok(()),
            SubStatus::Failed(f) => Err(f.clone().into()),
            SubStatus::Pending => unreachable!("waited for a settled status"),
        }
    }

    /// Presence channels: the members (empty before the subscription
    /// succeeds, and for other channels).
    pub fn members(&self) -> Vec<crate::Member> {
        self.shared.lock().core.members(&self.name)
    }

    /// Presence channels: this connection's own member.
    pub fn me(&self) -> Option<crate::Member> {
        self.shared.lock().core.me(&self.name)
    }

    /// The last subscription count the server sent (apps with
    /// subscription counts enabled; not presence channels).
    pub fn subscription_count(&self) -> Option<u64> {
        self.shared.lock().core.subscription_count(&self.name)
    }

    /// Sends a client event to the channel's other subscribers. `event` must
    /// start with `client-`; the channel must be a subscribed private or
    /// presence channel (not encrypted); `data` is sent as JSON (a `&str`
    /// arrives as that text). The server may still refuse it (rate limit,
    /// client events disabled): see [`crate::Subscriber::errors`].
    ///
    /// # Errors
    /// [`SocketError::NotAllowed`] for the cases above,
    /// [`SocketError::NotConnected`] while reconnecting,
    /// [`SocketError::Closed`] if the subscriber has stopped.
    pub async fn trigger<D: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &D,
    ) -> Result<(), SocketError> {
        self.shared
            .lock()
            .core
            .check_client_event(&self.name, event)?;
        let data = RawJson::from_json(serde_json::to_string(data)?)?;
        self.shared
            .call(|core, _| core.client_event(&self.name, event, data))?;
        super::wake(&self.wake);
        Ok(())
    }

    /// Leaves the channel: its streams end and it is not resubscribed.
    pub fn unsubscribe(&self) {
        unsubscribe(&self.shared, &self.wake, &self.name);
    }
}
