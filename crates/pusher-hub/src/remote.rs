//! The replica of the other nodes: what their messages change here, their
//! snapshots, their removal, and the leader's webhook bookkeeping.

use std::time::Duration;

use crate::time::Millis;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelEvent, ChannelName};

use crate::channel::{
    Announced as ChannelAnnounced, Cached, Channel, Hashing, Map, MemberEntry, Set,
};
use crate::cluster::{
    Announced, CachedEvent, ChannelState, ClusterMessage, NodeId, Snapshot, WireMember,
};
use crate::effects::{Delivery, Effects, Notification};
use crate::hub::{Hub, Origin, Shard};

/// What this node knows of each other node's message sequence.
#[derive(Default)]
pub(crate) struct Remotes {
    nodes: std::collections::BTreeMap<NodeId, Sequence>,
}

#[derive(Default)]
struct Sequence {
    /// The last number applied.
    last: u64,
    /// A number was skipped: a snapshot is needed.
    gap: bool,
    /// A number a heartbeat announced that had not arrived yet.
    announced: Option<u64>,
    /// The parts of a snapshot received so far, with the last one's number.
    parts: Option<(u64, Snapshot)>,
}

/// What applying another node's message did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct RemoteOutcome {
    /// Frames queued to local connections.
    pub delivery: Delivery,
    /// The sender's sequence has a gap: ask it for a snapshot.
    pub resync: bool,
}

fn channel_name(name: &str) -> Option<ChannelName> {
    ChannelName::with_max_len(name, usize::MAX).ok()
}

impl Hub {
    /// The last number this hub gave a message for the other nodes (what a
    /// heartbeat announces).
    pub fn cluster_seq(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |c| c.out.last())
    }

    /// Applies message `seq` from node `from`: updates the replica and
    /// delivers to local connections only (never sent on again).
    pub fn handle_remote(
        &self,
        from: &NodeId,
        seq: u64,
        message: ClusterMessage,
        now: Millis,
    ) -> RemoteOutcome {
        let Some(c) = &self.cluster else {
            return RemoteOutcome::default();
        };
        let (message, resync) = {
            let mut remotes = c.remotes.lock();
            let s = remotes.nodes.entry(from.clone()).or_default();
            match message {
                ClusterMessage::Snapshot(part) => {
                    let whole = if part.part == 0 {
                        Some(part)
                    } else {
                        match s.parts.take() {
                            Some((last, mut whole)) if last + 1 == seq => {
                                whole.extend(part).then_some(whole)
                            }
                            _ => None,
                        }
                    };
                    let Some(whole) = whole else {
                        // A part went missing: ask again.
                        s.parts = None;
                        s.gap = true;
                        s.last = seq;
                        return RemoteOutcome {
                            delivery: Delivery::default(),
                            resync: true,
                        };
                    };
                    if whole.more {
                        s.parts = Some((seq, whole));
                        return RemoteOutcome::default();
                    }
                    *s = Sequence {
                        last: seq,
                        ..Sequence::default()
                    };
                    (ClusterMessage::Snapshot(whole), false)
                }
                _ if seq <= s.last => {
                    // Already covered by a snapshot (or a duplicate).
                    return RemoteOutcome::default();
                }
                message => {
                    if seq != s.last + 1 && s.parts.is_none() {
                        s.gap = true;
                    }
                    s.last = seq;
                    (message, s.gap)
                }
            }
        };
        let mut fx = Effects::default();
        self.apply(from, message, now, &mut fx);
        RemoteOutcome {
            delivery: self.finish(fx),
            resync,
        }
    }

    /// A heartbeat from `from` announced sequence number `announced`:
    /// whether to ask it for a snapshot (a gap, a node never heard with
    /// state to tell, or an announced number still missing one heartbeat
    /// later).
    pub fn needs_snapshot(&self, from: &NodeId, announced: u64) -> bool {
        let Some(c) = &self.cluster else {
            return false;
        };
        let mut remotes = c.remotes.lock();
        let new = !remotes.nodes.contains_key(from);
        let s = remotes.nodes.entry(from.clone()).or_default();
        if s.last >= announced {
            s.announced = None;
            return s.gap;
        }
        let late = s.announced.is_some_and(|a| s.last < a);
        s.announced = Some(announced);
        new || s.gap || late
    }

    fn apply(&self, from: &NodeId, message: ClusterMessage, now: Millis, fx: &mut Effects) {
        match message {
            ClusterMessage::Publish {
                channel,
                event,
                data,
                except,
                user_id,
                from_api,
            } => {
                let Some(name) = channel_name(&channel) else {
                    return;
                };
                let frame = ChannelEvent::encode_parts(&event, &channel, &data, user_id.as_deref());
                let before = fx.delivery.delivered;
                if from_api {
                    let _ = self.deliver(
                        &name,
                        &frame,
                        Origin::Remote,
                        &event,
                        &data,
                        except,
                        InfoRequest::default(),
                        now,
                        fx,
                    );
                } else {
                    // A client event: never cached.
                    let shard = self.shard(&channel).read();
                    if let Some(ch) = shard.channels.get(&*channel) {
                        fx.delivery.add(ch.fanout(&frame, except));
                    }
                }
                // The origin counted the broadcast; each node its copies.
                self.delivered(fx.delivery.delivered - before);
            }
            ClusterMessage::Subscriptions { channel, count } => {
                self.with_channel(&channel, now, |hub, ch, shard| {
                    hub.remote_count(ch, &mut shard.pending_counts, from, count, now, fx);
                });
            }
            ClusterMessage::Member {
                channel,
                member,
                present,
            } => {
                self.with_channel(&channel, now, |hub, ch, _| {
                    hub.remote_member(ch, from, member, present, fx);
                });
            }
            ClusterMessage::User { user_id, online } => {
                let d = self.users.lock().set_remote(from, &user_id, online);
                fx.delivery.add(d);
            }
            ClusterMessage::Terminate { user_id } => {
                self.terminate_local(&user_id);
            }
            ClusterMessage::CacheMiss { channel } => {
                if self.is_leader()
                    && let Some(name) = channel_name(&channel)
                {
                    let mut shard = self.shard(&channel).write();
                    self.cache_missed(&mut shard.cache_misses, name.as_arc(), now, fx);
                }
            }
            ClusterMessage::Announced {
                channel,
                user_id,
                present,
            } => {
                self.with_channel(&channel, now, |_, ch, _| {
                    announce(ch, self.hashing(), user_id.as_deref(), present);
                });
            }
            ClusterMessage::Snapshot(snapshot) => {
                let from_leader = self
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.leader.lock().as_ref() == Some(from));
                self.apply_snapshot(from, snapshot, from_leader, now, fx);
            }
        }
    }

    /// Runs `f` on channel `name` (created if needed) under its shard's
    /// write lock, then drops the channel if nothing is left of it.
    fn with_channel(
        &self,
        name: &str,
        now: Millis,
        f: impl FnOnce(&Hub, &mut Channel, &mut Shard),
    ) {
        let Some(name) = channel_name(name) else {
            return;
        };
        let mut guard = self.shard(name.as_str()).write();
        let shard = &mut *guard;
        let mut ch = shard
            .channels
            .remove(name.as_str())
            .unwrap_or_else(|| Channel::new(name.clone(), self.hashing()));
        f(self, &mut ch, shard);
        if !ch.is_idle(now) {
            shard.channels.insert(Arc::clone(name.as_arc()), ch);
        }
    }

    /// Another node now holds `count` subscriptions of the channel.
    fn remote_count(
        &self,
        ch: &mut Channel,
        pending: &mut Vec<Arc<str>>,
        from: &NodeId,
        count: u64,
        now: Millis,
        fx: &mut Effects,
    ) {
        let (occupied, total) = (ch.is_occupied(), ch.subscription_count());
        ch.set_remote(from, count);
        if ch.subscription_count() == total {
            return;
        }
        let channel = ch.name.to_string();
        match (occupied, ch.is_occupied()) {
            (false, true) => self.note(fx, Notification::ChannelOccupied { channel }),
            (true, false) => self.note(fx, Notification::ChannelVacated { channel }),
            _ => {}
        }
        self.count_changed(ch, pending, now, fx);
    }

    /// A presence member is (no longer) on another node: `member_added` or
    /// `member_removed` to local subscribers when that makes it new to, or
    /// gone from, the whole cluster.
    fn remote_member(
        &self,
        ch: &mut Channel,
        from: &NodeId,
        member: WireMember,
        present: bool,
        fx: &mut Effects,
    ) {
        let Some(members) = ch.members.as_mut() else {
            return;
        };
        let uid: Arc<str> = Arc::from(member.user_id.as_str());
        let channel = ch.name.to_string();
        if present {
            let entry = members
                .entry(Arc::clone(&uid))
                .or_insert_with(|| MemberEntry {
                    info: member.user_info.clone(),
                    local: 0,
                    remote: Vec::new(),
                });
            let new_user = entry.is_gone();
            if !entry.remote.contains(from) {
                entry.remote.push(from.clone());
            }
            if new_user {
                let frame = ch.member_added_frame(member.into());
                fx.delivery.add(ch.fanout(&frame, None));
                let user_id = uid.to_string();
                self.note(fx, Notification::MemberAdded { channel, user_id });
            }
        } else if let Some(entry) = members.get_mut(&uid) {
            entry.remote.retain(|n| n != from);
            if entry.is_gone() {
                members.remove(&uid);
                fx.delivery
                    .add(ch.fanout(&ch.member_removed_frame(&uid), None));
                let user_id = uid.to_string();
                self.note(fx, Notification::MemberRemoved { channel, user_id });
            }
        }
    }

    // ----- snapshots -----

    /// Sends everything this node holds for the app to the other nodes, as
    /// one numbered message that exactly follows every change before it.
    pub fn snapshot(&self, now: Millis) {
        let Some(c) = &self.cluster else {
            return;
        };
        // Every shard and the users, at once: no change is half in it.
        let guards: Vec<_> = self.shards.iter().map(|s| s.read()).collect();
        let users = self.users.lock();
        let mut snap = Snapshot {
            channels: Vec::new(),
            users: users.local_users(),
            ..Snapshot::default()
        };
        for guard in &guards {
            for ch in guard.channels.values() {
                let state = ChannelState {
                    channel: ch.name.to_string(),
                    subscriptions: ch.subscribers.len() as u64,
                    members: ch
                        .members
                        .iter()
                        .flatten()
                        .filter(|(_, e)| e.local > 0)
                        .map(|(id, e)| WireMember {
                            user_id: id.to_string(),
                            user_info: e.info.clone(),
                        })
                        .collect(),
                    cache: ch.cached(now).map(|c| CachedEvent {
                        event: c.event.clone(),
                        data: c.data.clone(),
                        ttl_ms: (c.expires - now).as_millis() as u64,
                    }),
                    announced: ch.announced.as_ref().map(|a| Announced {
                        occupied: a.occupied,
                        members: a.members.iter().map(|m| m.to_string()).collect(),
                    }),
                };
                let empty = state.subscriptions == 0
                    && state.members.is_empty()
                    && state.cache.is_none()
                    && state.announced.is_none();
                if !empty {
                    snap.channels.push(state);
                }
            }
        }
        // Numbered while everything is still locked: the parts follow
        // exactly the changes before them.
        let parts: Vec<(u64, Snapshot)> = snap
            .into_parts()
            .into_iter()
            .map(|p| (c.out.take(), p))
            .collect();
        drop(users);
        drop(guards);
        for (seq, part) in parts {
            c.out.send(seq, ClusterMessage::Snapshot(part));
        }
    }

    /// Replaces everything known of `from` with its snapshot; the webhook
    /// state it carries is taken from the leader only.
    fn apply_snapshot(
        &self,
        from: &NodeId,
        snap: Snapshot,
        from_leader: bool,
        now: Millis,
        fx: &mut Effects,
    ) {
        let mut states: Map<String, ChannelState> = snap
            .channels
            .into_iter()
            .map(|s| (s.channel.clone(), s))
            .collect();
        // Channels where `from` holds something now, or held something.
        let mut names: Vec<String> = states.keys().cloned().collect();
        for shard in self.shards.iter() {
            let shard = shard.read();
            for ch in shard.channels.values() {
                let held = ch.remote.iter().any(|(n, _)| n == from)
                    || ch
                        .members
                        .iter()
                        .flatten()
                        .any(|(_, e)| e.remote.contains(from))
                    || (from_leader && ch.announced.is_some());
                if held && !states.contains_key(ch.name.as_str()) {
                    names.push(ch.name.to_string());
                }
            }
        }
        for name in names {
            let state = states.remove(&name);
            self.with_channel(&name, now, |hub, ch, shard| {
                hub.replace(ch, shard, from, state, from_leader, now, fx);
            });
        }
        let mut users = self.users.lock();
        let online: Set<&str> = snap.users.iter().map(String::as_str).collect();
        for user in users.remote_users_of(from) {
            if !online.contains(&*user) {
                fx.delivery.add(users.set_remote(from, &user, false));
            }
        }
        for user in &snap.users {
            fx.delivery.add(users.set_remote(from, user, true));
        }
    }

    /// One channel: what `from` holds of it becomes `state` (nothing when
    /// `None`).
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &self,
        ch: &mut Channel,
        shard: &mut Shard,
        from: &NodeId,
        state: Option<ChannelState>,
        from_leader: bool,
        now: Millis,
        fx: &mut Effects,
    ) {
        let state = state.unwrap_or_else(|| ChannelState {
            channel: ch.name.to_string(),
            subscriptions: 0,
            members: Vec::new(),
            cache: None,
            announced: None,
        });
        // Members first when they join, last when they leave: occupied
        // before member_added, member_removed before vacated.
        let leaving: Vec<Arc<str>> = ch
            .members
            .iter()
            .flatten()
            .filter(|(id, e)| {
                e.remote.contains(from) && !state.members.iter().any(|m| *m.user_id == ***id)
            })
            .map(|(id, _)| Arc::clone(id))
            .collect();
        for user_id in leaving {
            let member = WireMember {
                user_id: user_id.to_string(),
                user_info: None,
            };
            self.remote_member(ch, from, member, false, fx);
        }
        self.remote_count(
            ch,
            &mut shard.pending_counts,
            from,
            state.subscriptions,
            now,
            fx,
        );
        for member in state.members {
            self.remote_member(ch, from, member, true, fx);
        }
        if let Some(c) = state.cache
            && ch.cached(now).is_none()
        {
            ch.cache = Some(Cached {
                frame: ChannelEvent::encode_parts(&c.event, ch.name.as_str(), &c.data, None),
                event: c.event,
                data: c.data,
                expires: now + Duration::from_millis(c.ttl_ms),
            });
            self.wake_at(now + Duration::from_millis(c.ttl_ms));
        }
        if from_leader {
            ch.announced = state.announced.map(|a| {
                let mut announced = ChannelAnnounced::new(self.hashing());
                announced.occupied = a.occupied;
                announced.members = a.members.iter().map(|m| Arc::from(m.as_str())).collect();
                Box::new(announced)
            });
        }
    }

    /// Forgets everything `node` held (it left or died): its members leave
    /// and its subscriptions go, with the frames and notifications that
    /// follow.
    pub fn remove_node(&self, node: &NodeId, now: Millis) -> Delivery {
        let Some(c) = &self.cluster else {
            return Delivery::default();
        };
        let mut fx = Effects::default();
        // Not as the leader's snapshot: what it delivered stays known.
        self.apply_snapshot(node, Snapshot::default(), false, now, &mut fx);
        c.remotes.lock().nodes.remove(node);
        self.finish(fx)
    }

    // ----- webhooks of cluster-wide state -----

    /// The driver's view of who leads changed (or is first given). When
    /// this node becomes the leader it sends what the state calls for and
    /// the previous leader had not delivered.
    pub fn set_leader(&self, leader: &NodeId, now: Millis) -> Delivery {
        let Some(c) = &self.cluster else {
            return Delivery::default();
        };
        *c.leader.lock() = Some(leader.clone());
        let me = *leader == c.node;
        let was = self.leader.swap(me, Ordering::Relaxed);
        let mut fx = Effects::default();
        if me && !was {
            self.reconcile(&mut fx);
        }
        let _ = now;
        self.finish(fx)
    }

    /// Notifications for every difference between the cluster's state and
    /// what was delivered.
    fn reconcile(&self, fx: &mut Effects) {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for ch in shard.channels.values() {
                let channel = ch.name.to_string();
                let empty = ChannelAnnounced::new(self.hashing());
                let announced = ch.announced.as_deref().unwrap_or(&empty);
                let occupied = ch.is_occupied();
                if occupied && !announced.occupied {
                    fx.notes.push(Notification::ChannelOccupied {
                        channel: channel.clone(),
                    });
                }
                for (user, _) in ch.members.iter().flatten() {
                    if !announced.members.contains(user) {
                        fx.notes.push(Notification::MemberAdded {
                            channel: channel.clone(),
                            user_id: user.to_string(),
                        });
                    }
                }
                for user in &announced.members {
                    if !ch.members.as_ref().is_some_and(|m| m.contains_key(user)) {
                        fx.notes.push(Notification::MemberRemoved {
                            channel: channel.clone(),
                            user_id: user.to_string(),
                        });
                    }
                }
                if !occupied && announced.occupied {
                    fx.notes.push(Notification::ChannelVacated { channel });
                }
            }
        }
    }

    /// The webhook sender delivered these notifications: in a cluster the
    /// leader records it and tells the others, so that a new leader knows
    /// what is left to send.
    pub fn webhook_delivered(&self, delivered: &[Notification], now: Millis) {
        if self.cluster.is_none() {
            return;
        }
        let mut fx = Effects::default();
        for n in delivered {
            let (channel, user_id, present) = match n {
                Notification::ChannelOccupied { channel } => (channel, None, true),
                Notification::ChannelVacated { channel } => (channel, None, false),
                Notification::MemberAdded { channel, user_id } => (channel, Some(user_id), true),
                Notification::MemberRemoved { channel, user_id } => (channel, Some(user_id), false),
                _ => continue,
            };
            self.with_channel(channel, now, |hub, ch, _| {
                announce(ch, hub.hashing(), user_id.map(String::as_str), present);
                hub.tell(&mut fx, || ClusterMessage::Announced {
                    channel: channel.clone(),
                    user_id: user_id.cloned(),
                    present,
                });
            });
        }
        let _ = self.finish(fx);
    }
}

/// Records delivered webhook state on a channel.
fn announce(ch: &mut Channel, hashing: Hashing, user_id: Option<&str>, present: bool) {
    let a = ch
        .announced
        .get_or_insert_with(|| Box::new(ChannelAnnounced::new(hashing)));
    match (user_id, present) {
        (None, occupied) => a.occupied = occupied,
        (Some(u), true) => {
            a.members.insert(Arc::from(u));
        }
        (Some(u), false) => {
            a.members.remove(u);
        }
    }
    if a.is_empty() {
        ch.announced = None;
    }
}
