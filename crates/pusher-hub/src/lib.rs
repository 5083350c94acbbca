//! The Pusher channel hub: who is in which channel, who is present, what
//! each cache channel holds, who is signed in and who watches whom.
//!
//! Contract: no IO, no clock, no async runtime. Time is an input (`now`, a
//! [`Millis`] from any fixed origin the driver picks); frames leave
//! through each connection's [`Outbox`], which must never block;
//! notifications for webhooks and metrics leave through a
//! [`NotificationSink`]; what other nodes must learn leaves through a
//! [`ClusterSink`]. Deterministic given its inputs (and the socket-id seed).
//!
//! Usage as Vask bills it ([`Usage`]: broadcasts, deliveries, peak
//! connections, API requests, bytes, per UTC day and month) takes the
//! wall-clock time as an input too; the hub asks a [`Meter`] before each
//! publish and tells it each fan-out's copies, once per publish.
//!
//! Two levels: a [`Session`] per connection (frame decoding, auth, rate
//! limits, sign-in, liveness timers) that runs in the connection's own task
//! without shared locks, and the [`Hub`] (channels sharded by name, users)
//! shared by all.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use bytes::Bytes;
//! use pusher_hub::{Full, Hub, HubConfig, Millis, Outbox, Publish};
//! use pusher_proto::{ChannelName, ErrorCode};
//!
//! #[derive(Default)]
//! struct Queue(Mutex<Vec<Bytes>>);
//! impl Outbox for Queue {
//!     fn push(&self, frame: Bytes) -> Result<(), Full> {
//!         self.0.lock().unwrap().push(frame);
//!         Ok(())
//!     }
//!     fn close(&self, _code: ErrorCode) {}
//! }
//!
//! let hub = Arc::new(Hub::new(HubConfig::new("1", "key", "secret")));
//! let queue = Arc::new(Queue::default());
//! let now = Millis::ZERO;
//! let mut session = hub.connect(queue.clone(), now).unwrap();
//! let _ = session.handle_text(br#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#, now);
//!
//! let channels = [ChannelName::new("news").unwrap()];
//! let publish = Publish { channels: &channels, event: "update", data: "{}", except: None, info: Default::default() };
//! assert_eq!(hub.publish(&publish, now).delivery.delivered, 1);
//!
//! let frames = queue.0.lock().unwrap();
//! assert_eq!(frames.len(), 3); // connection_established, subscription_succeeded, the event
//! assert_eq!(&frames[2][..], br#"{"event":"update","channel":"news","data":"{}"}"#);
//! ```

mod api;
mod channel;
mod cluster;
mod config;
mod effects;
mod hub;
mod membership;
mod node;
mod queue;
mod refusal;
mod remote;
mod session;
mod time;
mod usage;
mod users;
mod webhook;

pub use api::{ApiCall, ApiError, ApiResponse, ApiRoute, ApiTarget, AppRef};
pub use cluster::{
    Announced, CachedEvent, ChannelState, ClusterMessage, ClusterSink, NodeId, Snapshot, Wire,
    WireMember,
};
pub use config::{HubConfig, Limits};
pub use effects::{Delivery, Discard, Full, Notification, NotificationSink, Outbox};
pub use hub::{Hub, Publish, PublishOutcome};
pub use membership::{Membership, MembershipChange};
pub use node::{AppSink, ClusterNode, NodeOutcome};
pub use queue::{ConnQueue, Drained};
pub use refusal::Refusal;
pub use remote::RemoteOutcome;
pub use session::{Action, Outcome, Refused, Session};
pub use time::Millis;
pub use usage::{
    ClusterUsage, Counts, Meter, PeriodCounts, QuotaExceeded, Quotas, Span, Usage, UsageReport,
    rfc3339,
};
pub use webhook::{BatchRules, Batcher};
