//! More than one node: what the nodes tell each other, as data.
//!
//! Each node runs its own hub per app for its own connections and keeps a
//! replica of what every other node holds: subscription counts and presence
//! members per channel, signed-in users, cached events. What changes leaves
//! the hub as a numbered [`ClusterMessage`] through the [`ClusterSink`], in
//! order; the driver carries it to the other nodes (Redis, NATS) inside a
//! [`Wire`] message and feeds what it receives to
//! [`Hub::handle_remote`](crate::Hub::handle_remote), which updates the
//! replica and delivers to local connections only. Subscribe answers and
//! HTTP queries are then local and synchronous: nothing asks the bus a
//! question on a hot path.
//!
//! State messages carry absolute values ("node B holds 3 subscriptions of
//! `news`"), numbered per origin and app. A receiver that sees a gap, or a
//! heartbeat announcing a number it never got, asks that node for a
//! [`Snapshot`], which replaces everything it knew of that node; a node
//! silent for the timeout is removed by every node by itself
//! ([`Membership`](crate::Membership)). Webhooks that depend on the whole
//! cluster's state are sent by one node, the leader (the smallest live
//! [`NodeId`]); it tells the others what it delivered, so that a new leader
//! sends what a dead one had not ([`Hub::set_leader`](crate::Hub::set_leader)).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pusher_proto::{Member, RawJson, SocketId};
use serde::{Deserialize, Serialize};

use crate::usage::UsageReport;

/// A node's identity: its name and the random number of this run of it, so
/// that a node restarted under the same name is a new node to the others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    name: Arc<str>,
    incarnation: u64,
}

impl NodeId {
    /// A node called `name` in its run `incarnation`.
    pub fn new(name: &str, incarnation: u64) -> Self {
        Self {
            name: Arc::from(name),
            incarnation,
        }
    }

    /// The configured (or random) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:x}", self.name, self.incarnation)
    }
}

/// A cached event, as a snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedEvent {
    /// The event name.
    pub event: String,
    /// The data text.
    pub data: String,
    /// Milliseconds it has left to live.
    pub ttl_ms: u64,
}

/// One channel as a snapshot carries it: what the sending node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// The channel.
    pub channel: String,
    /// Subscriptions on the sending node.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subscriptions: u64,
    /// Presence members with a connection on the sending node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<WireMember>,
    /// The cached event, if the channel keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachedEvent>,
    /// What the webhook leader delivered last for this channel, as the
    /// sending node knows it: occupied, and the members announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<Announced>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Delivered webhook state of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// `channel_occupied` was the last of occupied/vacated delivered.
    pub occupied: bool,
    /// Users whose `member_added` was the last delivered for them.
    pub members: Vec<String>,
}

/// A presence member on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMember {
    /// The user id.
    pub user_id: String,
    /// The user info, as the member sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<RawJson>,
}

impl From<Member> for WireMember {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            user_info: m.user_info,
        }
    }
}

impl From<WireMember> for Member {
    fn from(m: WireMember) -> Self {
        Self {
            user_id: m.user_id,
            user_info: m.user_info,
        }
    }
}

/// Everything a node holds for one app: what a receiver replaces its
/// replica of that node with. A large one travels in several parts with
/// consecutive numbers (so that each fits a bus message: NATS refuses more
/// than 1 MB by default); the receiver applies them together, when the
/// last has arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Channels with subscriptions, members, a cache or announced state.
    pub channels: Vec<ChannelState>,
    /// Users signed in on the sending node.
    pub users: Vec<String>,
    /// This part's index (0 for the first or only part).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub part: u32,
    /// More parts follow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Bytes of snapshot a part holds, about.
const PART_BYTES: usize = 192 * 1024;

impl Snapshot {
    /// Splits into parts of about `PART_BYTES` each (at least one part).
    pub(crate) fn into_parts(self) -> Vec<Snapshot> {
        let mut parts = vec![Snapshot::default()];
        let mut size = 0;
        let mut room = |parts: &mut Vec<Snapshot>, bytes: usize| {
            if size + bytes > PART_BYTES && size > 0 {
                parts.push(Snapshot::default());
                size = 0;
            }
            size += bytes;
        };
        for ch in self.channels {
            let bytes = 64
                + ch.channel.len()
                + ch.cache
                    .as_ref()
                    .map_or(0, |c| c.event.len() + c.data.len())
                + ch.members
                    .iter()
                    .map(|m| {
                        16 + m.user_id.len() + m.user_info.as_ref().map_or(0, |i| i.json().len())
                    })
                    .sum::<usize>()
                + ch.announced
                    .as_ref()
                    .map_or(0, |a| a.members.iter().map(|m| m.len() + 4).sum());
            room(&mut parts, bytes);
            parts
                .last_mut()
                .expect("one part at least")
                .channels
                .push(ch);
        }
        for user in self.users {
            room(&mut parts, user.len() + 4);
            parts
                .last_mut()
                .expect("one part at least")
                .users
                .push(user);
        }
        let n = parts.len();
        for (i, p) in parts.iter_mut().enumerate() {
            p.part = i as u32;
            p.more = i + 1 < n;
        }
        parts
    }

    /// Adds the part that follows; false (and nothing added) when `next`
    /// does not follow.
    pub(crate) fn extend(&mut self, next: Snapshot) -> bool {
        if next.part != self.part + 1 {
            return false;
        }
        self.channels.extend(next.channels);
        self.users.extend(next.users);
        self.part = next.part;
        self.more = next.more;
        true
    }
}

/// What one node tells the others about one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
        #[serde(default, skip_serializing_if = "Option::is_none", with = "socket_id")]
        except: Option<SocketId>,
        /// The sender's presence user id (client events on presence).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        /// Published through the HTTP API (so cache channels keep it).
        #[serde(default)]
        from_api: bool,
    },
    /// The sending node now holds this many subscriptions of a channel.
    Subscriptions {
        /// The channel.
        channel: String,
        /// Its subscriptions on the sending node.
        count: u64,
    },
    /// A presence member is (or is no longer) on the sending node.
    Member {
        /// The presence channel.
        channel: String,
        /// The member (its info only matters when it arrives).
        member: WireMember,
        /// Whether it has a connection on the sending node.
        present: bool,
    },
    /// A user is (or is no longer) signed in on the sending node.
    User {
        /// The user.
        user_id: String,
        /// Whether it has a signed-in connection there.
        online: bool,
    },
    /// Close a user's signed-in connections (`terminate_connections`).
    Terminate {
        /// The user.
        user_id: String,
    },
    /// A subscriber found nothing cached: the leader sends the webhook.
    CacheMiss {
        /// The cache channel.
        channel: String,
    },
    /// The leader delivered a webhook: the state others take over if it
    /// dies.
    Announced {
        /// The channel.
        channel: String,
        /// The member, for member_added/member_removed; none for the
        /// channel's occupied/vacated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        /// Occupied or member_added (true), vacated or member_removed.
        present: bool,
    },
    /// Everything the sending node holds for the app.
    Snapshot(Snapshot),
}

mod socket_id {
    use pusher_proto::SocketId;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(id: &Option<SocketId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_str(&id.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketId>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Where a hub's numbered messages go, in order. Must not block and must
/// not call back into the hub (queue the message and return).
pub trait ClusterSink: Send + Sync + 'static {
    /// Message `seq` (1, 2, 3, ... per hub) for the other nodes.
    fn send(&self, seq: u64, message: ClusterMessage);
}

/// What a node puts on the bus: one app's numbered message, or a node-level
/// message (heartbeat, snapshot request, goodbye).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Wire {
    /// An app's message.
    App {
        /// The sender.
        from: NodeId,
        /// The app id.
        app: String,
        /// Its number in the sender's sequence for this app.
        seq: u64,
        /// The message.
        message: ClusterMessage,
    },
    /// "I am alive", with the last number of each app's sequence and the
    /// app's connections on the sender.
    Heartbeat {
        /// The sender.
        from: NodeId,
        /// Per app: last sequence number, connections.
        #[serde(default)]
        apps: BTreeMap<String, (u64, u64)>,
    },
    /// Asks `to` for a snapshot of `app` (every app when `None`).
    SyncRequest {
        /// The asker.
        from: NodeId,
        /// The node asked; `None` asks every node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<NodeId>,
        /// The app; `None` for every app.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// What the sender counted for its apps in the current UTC day and
    /// month: absolute figures, sent about every second, not numbered (a
    /// later report supersedes an earlier one, see [`crate::ClusterUsage`]).
    Usage {
        /// The sender.
        from: NodeId,
        /// Whose figures these are when not the sender's: a node gone,
        /// whose last report the sender kept and relays (for nodes that
        /// joined after it left).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<NodeId>,
        /// Per app id, its report.
        #[serde(default)]
        apps: BTreeMap<String, UsageReport>,
    },
    /// The sender shuts down: remove it now rather than after the timeout.
    Goodbye {
        /// The sender.
        from: NodeId,
    },
    /// For an observer of the cluster (Vask's debug console): the sender
    /// watches these apps and asks the others to share what happens to
    /// them, for a few seconds after each such message. Opaque to the hub.
    Watch {
        /// The sender.
        from: NodeId,
        /// The app ids watched.
        #[serde(default)]
        apps: Vec<String>,
    },
    /// What happened to `app` on the sender, for the nodes that watch it:
    /// lines (JSON) the hub does not read.
    Observed {
        /// The sender.
        from: NodeId,
        /// The app id.
        app: String,
        /// What happened, in order.
        #[serde(default)]
        lines: Vec<String>,
    },
}

impl Wire {
    /// The JSON bytes sent on the bus.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes bus bytes.
    ///
    /// # Errors
    /// The bytes are not a message of this version of the protocol.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Several messages as one bus payload (a JSON array).
    pub fn encode_batch(messages: &[Wire]) -> Vec<u8> {
        serde_json::to_vec(messages).unwrap_or_default()
    }

    /// Decodes a bus payload of [`Wire::encode_batch`].
    ///
    /// # Errors
    /// The bytes are not messages of this version of the protocol.
    pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Self>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Decodes a bus payload of [`Wire::encode_batch`] message by message:
    /// those this version does not know (a newer node's, during a rolling
    /// upgrade) are skipped and counted, and the rest are kept.
    ///
    /// # Errors
    /// The bytes are not a JSON array.
    pub fn decode_batch_lenient(bytes: &[u8]) -> Result<(Vec<Self>, u64), serde_json::Error> {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes)?;
        let mut skipped = 0;
        let batch = items
            .into_iter()
            .filter_map(|raw| {
                serde_json::from_str(raw.get())
                    .map_err(|_| skipped += 1)
                    .ok()
            })
            .collect();
        Ok((batch, skipped))
    }

    /// The node that sent it.
    pub fn from(&self) -> &NodeId {
        match self {
            Self::App { from, .. }
            | Self::Heartbeat { from, .. }
            | Self::SyncRequest { from, .. }
            | Self::Usage { from, .. }
            | Self::Watch { from, .. }
            | Self::Observed { from, .. }
            | Self::Goodbye { from } => from,
        }
    }
}

/// Numbers a hub's outgoing messages and hands them to the sink in order.
///
/// A number is taken while the lock that protects the state it describes
/// is held, so numbers follow the order of changes; the message is handed
/// out after that lock is released, and this reorders the few that cross.
pub(crate) struct Numbering {
    sink: Arc<dyn ClusterSink>,
    /// The last number taken.
    taken: AtomicU64,
    state: Mutex<Pending>,
}

struct Pending {
    /// The next number to hand to the sink.
    next: u64,
    /// Messages waiting for a smaller number.
    waiting: BTreeMap<u64, ClusterMessage>,
}

impl Numbering {
    pub(crate) fn new(sink: Arc<dyn ClusterSink>) -> Self {
        Self {
            sink,
            taken: AtomicU64::new(0),
            state: Mutex::new(Pending {
                next: 1,
                waiting: BTreeMap::new(),
            }),
        }
    }

    /// Takes the next number.
    pub(crate) fn take(&self) -> u64 {
        self.taken.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The last number taken.
    pub(crate) fn last(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// Hands message `seq` out, after every smaller number.
    pub(crate) fn send(&self, seq: u64, message: ClusterMessage) {
        let mut s = self.state.lock();
        if seq != s.next {
            s.waiting.insert(seq, message);
            return;
        }
        self.sink.send(seq, message);
        s.next += 1;
        while let Some(m) = {
            let next = s.next;
            s.waiting.remove(&next)
        } {
            self.sink.send(s.next, m);
            s.next += 1;
        }
    }
}

impl fmt::Debug for Numbering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Numbering")
            .field("taken", &self.last())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(std::sync::Mutex<Vec<u64>>);
    impl ClusterSink for Log {
        fn send(&self, seq: u64, _: ClusterMessage) {
            self.0.lock().unwrap().push(seq);
        }
    }

    fn msg() -> ClusterMessage {
        ClusterMessage::Terminate {
            user_id: "u".into(),
        }
    }

    #[test]
    fn a_batch_keeps_the_messages_it_knows() {
        let bye = Wire::Goodbye {
            from: NodeId::new("a", 1),
        };
        let mut text = String::from_utf8(Wire::encode_batch(std::slice::from_ref(&bye))).unwrap();
        text.insert_str(
            1,
            r#"{"from_the_future":{"from":{"name":"b","incarnation":2}}},"#,
        );
        let (batch, skipped) = Wire::decode_batch_lenient(text.as_bytes()).unwrap();
        assert_eq!((batch, skipped), (vec![bye], 1));
        assert!(Wire::decode_batch(text.as_bytes()).is_err());
        assert!(Wire::decode_batch_lenient(b"{}").is_err());
    }

    #[test]
    fn numbers_leave_in_order() {
        let log = Arc::new(Log::default());
        let n = Numbering::new(log.clone());
        let (a, b, c) = (n.take(), n.take(), n.take());
        n.send(c, msg());
        n.send(b, msg());
        assert!(log.0.lock().unwrap().is_empty());
        n.send(a, msg());
        assert_eq!(*log.0.lock().unwrap(), [1, 2, 3]);
        assert_eq!(n.last(), 3);
    }

    #[test]
    fn large_snapshots_travel_in_parts_that_fit_a_bus_message() {
        let info = RawJson::from_json(format!(r#"{{"bio":"{}"}}"#, "x".repeat(2000))).unwrap();
        let snap = Snapshot {
            channels: (0..50)
                .map(|i| ChannelState {
                    channel: format!("presence-{i}"),
                    subscriptions: 100,
                    members: (0..100)
                        .map(|u| WireMember {
                            user_id: format!("user-{u}"),
                            user_info: Some(info.clone()),
                        })
                        .collect(),
                    cache: None,
                    announced: None,
                })
                .collect(),
            users: (0..10_000).map(|u| format!("user-{u}")).collect(),
            part: 0,
            more: false,
        };
        let parts = snap.clone().into_parts();
        assert!(parts.len() > 10);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.more, i + 1 < parts.len());
            let bytes = Wire::App {
                from: NodeId::new("n", 1),
                app: "1".into(),
                seq: 1,
                message: ClusterMessage::Snapshot(p.clone()),
            }
            .encode();
            assert!(bytes.len() < 512 * 1024, "part {i}: {} bytes", bytes.len());
        }
        let mut parts = parts.into_iter();
        let mut whole = parts.next().unwrap();
        let last = whole.clone();
        for p in parts {
            assert!(!last.clone().extend(p.clone()) || p.part == 1);
            assert!(whole.extend(p));
        }
        assert!(!whole.more);
        whole.part = 0;
        assert_eq!(whole, snap);
        assert_eq!(Snapshot::default().into_parts(), [Snapshot::default()]);
    }

    #[test]
    fn wire_round_trips() {
        let from = NodeId::new("a", 7);
        let messages = [
            Wire::App {
                from: from.clone(),
                app: "1".into(),
                seq: 3,
                message: ClusterMessage::Publish {
                    channel: "c".into(),
                    event: "e".into(),
                    data: "{\"a\":1}".into(),
                    except: Some("1.2".parse().unwrap()),
                    user_id: None,
                    from_api: true,
                },
            },
            Wire::App {
                from: from.clone(),
                app: "1".into(),
                seq: 4,
                message: ClusterMessage::Snapshot(Snapshot {
                    channels: vec![ChannelState {
                        channel: "presence-x".into(),
                        subscriptions: 2,
                        members: vec![WireMember {
                            user_id: "u".into(),
                            user_info: Some(RawJson::from_json(r#"{"n":"é"}"#).unwrap()),
                        }],
                        cache: Some(CachedEvent {
                            event: "e".into(),
                            data: "d".into(),
                            ttl_ms: 5,
                        }),
                        announced: Some(Announced {
                            occupied: true,
                            members: vec!["u".into()],
                        }),
                    }],
                    users: vec!["u".into()],
                    part: 0,
                    more: false,
                }),
            },
            Wire::Heartbeat {
                from: from.clone(),
                apps: [("1".to_owned(), (4, 10))].into_iter().collect(),
            },
            Wire::SyncRequest {
                from: from.clone(),
                to: None,
                app: Some("1".into()),
            },
            Wire::Usage {
                from: from.clone(),
                of: Some(NodeId::new("gone", 3)),
                apps: [("1".to_owned(), UsageReport::default())]
                    .into_iter()
                    .collect(),
            },
            Wire::Goodbye { from },
        ];
        for m in messages {
            let bytes = m.encode();
            assert_eq!(
                Wire::decode(&bytes).unwrap(),
                m,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
        assert!(Wire::decode(b"{\"k\":\"nope\"}").is_err());
    }
}
