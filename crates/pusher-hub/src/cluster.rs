//! The seam for more than one node.
//!
//! Each node runs its own hub for its own connections. Whatever another node
//! must learn leaves the hub as a [`ClusterMessage`] through the
//! [`ClusterSink`]; what other nodes send is fed into
//! [`Hub::handle_remote`](crate::Hub::handle_remote), which delivers to
//! local connections only and never sends it on again. The transport (Redis,
//! NATS) lives in the server.

use pusher_proto::{Member, SocketId};

/// A node's identity in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterMessage {
    /// An event to deliver on a channel.
    Publish {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The data text.
        data: String,
        /// A connection that must not receive it (the sender).
        except: Option<SocketId>,
        /// The sender's presence user id (client events on presence).
        user_id: Option<String>,
        /// Published through the HTTP API (so cache channels keep it).
        from_api: bool,
    },
    /// A user's first connection on the sending node joined a presence
    /// channel.
    MemberJoined {
        /// The presence channel.
        channel: String,
        /// The member.
        member: Member,
    },
    /// A user's last connection on the sending node left a presence channel.
    MemberLeft {
        /// The presence channel.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// Close every signed-in connection of a user.
    TerminateUser {
        /// The user.
        user_id: String,
    },
}

/// Carries messages to the other nodes. Must not block.
pub trait ClusterSink: Send + Sync + 'static {
    /// Sends one message to every other node.
    fn broadcast(&self, from: NodeId, message: ClusterMessage);
}
