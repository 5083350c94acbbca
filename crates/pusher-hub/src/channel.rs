//! One channel's state: local subscribers, what other nodes hold of it,
//! presence members, cached event, count throttle, delivered webhook state.
//! Everything here runs under its shard's lock.

use crate::time::Millis;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pusher_proto::{ChannelName, Member, RawJson, ServerFrame, SocketId};

use crate::cluster::NodeId;
use crate::effects::{Delivery, Outbox};

/// The hub's hashing: fast, and seeded by the hub's seed (see
/// [`crate::Hub::with_seed`]) so that iteration order is reproducible for a
/// given seed, and unpredictable to clients when the seed is random.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hashing(u64);

impl Hashing {
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self(seed)
    }
}

impl std::hash::BuildHasher for Hashing {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        foldhash::fast::FixedState::with_seed(self.0).build_hasher()
    }
}
pub(crate) type Map<K, V> = HashMap<K, V, Hashing>;
pub(crate) type Set<K> = std::collections::HashSet<K, Hashing>;

/// A connection subscribed to a channel.
pub(crate) struct Subscriber {
    pub(crate) outbox: Arc<dyn Outbox>,
    /// The presence user id this subscription joined as.
    pub(crate) user_id: Option<Arc<str>>,
}

/// A distinct user of a presence channel, anywhere in the cluster.
pub(crate) struct MemberEntry {
    pub(crate) info: Option<RawJson>,
    /// Subscriptions of this user on this node.
    pub(crate) local: u32,
    /// Other nodes where this user is subscribed.
    pub(crate) remote: Vec<NodeId>,
}

impl MemberEntry {
    pub(crate) fn is_gone(&self) -> bool {
        self.local == 0 && self.remote.is_empty()
    }
}

/// The last event published to a cache channel through the HTTP API.
pub(crate) struct Cached {
    pub(crate) event: String,
    pub(crate) data: String,
    pub(crate) frame: Bytes,
    pub(crate) expires: Millis,
}

/// What the webhook leader last delivered for a channel (kept only in a
/// cluster, so that a new leader sends what a dead one had not).
pub(crate) struct Announced {
    pub(crate) occupied: bool,
    pub(crate) members: Set<Arc<str>>,
}

impl Announced {
    pub(crate) fn new(hashing: Hashing) -> Self {
        Self {
            occupied: false,
            members: Set::with_hasher(hashing),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.occupied && self.members.is_empty()
    }
}

pub(crate) struct Channel {
    pub(crate) name: ChannelName,
    pub(crate) subscribers: Map<SocketId, Subscriber>,
    /// Subscriptions on other nodes.
    pub(crate) remote: Vec<(NodeId, u64)>,
    /// Present for presence channels only.
    pub(crate) members: Option<Map<Arc<str>, MemberEntry>>,
    pub(crate) cache: Option<Cached>,
    pub(crate) count_sent: Option<Millis>,
    pub(crate) count_pending: bool,
    pub(crate) announced: Option<Box<Announced>>,
}

impl Channel {
    pub(crate) fn new(name: ChannelName, hashing: Hashing) -> Self {
        let members = name.kind().is_presence().then(|| Map::with_hasher(hashing));
        Self {
            name,
            subscribers: Map::with_hasher(hashing),
            remote: Vec::new(),
            members,
            cache: None,
            count_sent: None,
            count_pending: false,
            announced: None,
        }
    }

    /// Queues `frame` to every local subscriber but `except`.
    pub(crate) fn fanout(&self, frame: &Bytes, except: Option<SocketId>) -> Delivery {
        let mut d = Delivery::default();
        for (id, sub) in &self.subscribers {
            if Some(*id) != except {
                d.push(&*sub.outbox, frame);
            }
        }
        d
    }

    /// Subscriptions in the whole cluster.
    pub(crate) fn subscription_count(&self) -> u64 {
        self.subscribers.len() as u64 + self.remote.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Subscribed anywhere in the cluster.
    pub(crate) fn is_occupied(&self) -> bool {
        !self.subscribers.is_empty() || !self.remote.is_empty()
    }

    /// Sets another node's subscriptions.
    pub(crate) fn set_remote(&mut self, node: &NodeId, count: u64) {
        match self.remote.iter().position(|(n, _)| n == node) {
            Some(i) if count == 0 => {
                self.remote.swap_remove(i);
            }
            Some(i) => self.remote[i].1 = count,
            None if count > 0 => self.remote.push((node.clone(), count)),
            None => {}
        }
    }

    /// The live cached event, if any.
    pub(crate) fn cached(&self, now: Millis) -> Option<&Cached> {
        self.cache.as_ref().filter(|c| c.expires > now)
    }

    /// Nothing left worth keeping: no subscriber here or elsewhere, no
    /// member, no live cache, no delivered webhook state to remember.
    pub(crate) fn is_idle(&self, now: Millis) -> bool {
        !self.is_occupied()
            && self.members.as_ref().is_none_or(|m| m.is_empty())
            && self.cached(now).is_none()
            && self.announced.as_ref().is_none_or(|a| a.is_empty())
    }

    pub(crate) fn user_count(&self) -> u64 {
        self.members.as_ref().map_or(0, |m| m.len() as u64)
    }

    pub(crate) fn members_snapshot(&self) -> Vec<Member> {
        self.members
            .iter()
            .flatten()
            .map(|(id, e)| Member {
                user_id: id.to_string(),
                user_info: e.info.clone(),
            })
            .collect()
    }

    pub(crate) fn succeeded_frame(&self) -> Bytes {
        let channel = self.name.as_str().to_owned();
        if self.members.is_some() {
            ServerFrame::PresenceSubscriptionSucceeded {
                channel,
                members: self.members_snapshot(),
            }
            .encode()
        } else {
            ServerFrame::SubscriptionSucceeded { channel }.encode()
        }
    }

    pub(crate) fn member_added_frame(&self, member: Member) -> Bytes {
        ServerFrame::MemberAdded {
            channel: self.name.as_str().to_owned(),
            member,
        }
        .encode()
    }

    pub(crate) fn member_removed_frame(&self, user_id: &str) -> Bytes {
        ServerFrame::MemberRemoved {
            channel: self.name.as_str().to_owned(),
            user_id: user_id.to_owned(),
        }
        .encode()
    }
}
