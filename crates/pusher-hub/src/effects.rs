//! What leaves the hub: frames to connections and notifications.

use bytes::Bytes;
use pusher_proto::ErrorCode;

/// A connection's outgoing queue, implemented by the server.
///
/// The hub never waits: `push` must not block. A full queue returns
/// [`Full`]; the implementation is expected to close that connection with
/// 4100 (it knows its own transport) and count it. The hub counts it too.
pub trait Outbox: Send + Sync + 'static {
    /// Queues one encoded frame. The bytes are shared with other recipients.
    fn push(&self, frame: Bytes) -> Result<(), Full>;
    /// Asks the transport to close the connection with `code` once the
    /// frames already queued are sent.
    fn close(&self, code: ErrorCode);
}

/// An outbox was full (or already closed): the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Something happened that webhooks or metrics may care about: the
/// protocol's own webhook event, so that the hub's notifications and the
/// webhook bodies are one type. Channel state (occupied, vacated, members,
/// counts) is cluster-wide; `ClientEvent` is reported by the node the
/// client is on.
pub type Notification = pusher_proto::webhook::WebhookEvent;

/// Receives notifications. Must not block (a channel send, a counter).
pub trait NotificationSink: Send + Sync + 'static {
    /// One notification.
    fn notify(&self, notification: Notification);
}

/// Discards notifications.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl NotificationSink for Discard {
    fn notify(&self, _: Notification) {}
}

/// Counts of one fan-out, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Delivery {
    /// Frames queued.
    pub delivered: u64,
    /// Frames refused by full outboxes.
    pub dropped: u64,
}

impl Delivery {
    pub(crate) fn add(&mut self, other: Delivery) {
        self.delivered += other.delivered;
        self.dropped += other.dropped;
    }

    pub(crate) fn push(&mut self, outbox: &dyn Outbox, frame: &Bytes) {
        match outbox.push(frame.clone()) {
            Ok(()) => self.delivered += 1,
            Err(Full) => self.dropped += 1,
        }
    }
}

/// What one call into the hub caused besides frames: collected while shard
/// locks are held, handed out once they are released (so that a sink may
/// query the hub without deadlocking).
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) delivery: Delivery,
    pub(crate) notes: Vec<Notification>,
    pub(crate) cluster: Vec<(u64, crate::cluster::ClusterMessage)>,
}
