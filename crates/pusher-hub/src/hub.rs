//! The shared part: channels (sharded), users, fan-out, queries.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use pusher_proto::http::{CacheInfo, ChannelCounts, ChannelInfoResponse, InfoRequest};
use pusher_proto::{
    ChannelEvent, ChannelKind, ChannelName, ErrorCode, Member, ServerFrame, SocketId,
    SocketIdGenerator, SubscriptionError, SubscriptionErrorKind,
};

use crate::channel::{Cached, Channel, Map, MemberEntry, Subscriber};
use crate::cluster::{ClusterMessage, ClusterSink, NodeId};
use crate::config::HubConfig;
use crate::effects::{Delivery, Discard, Notification, NotificationSink, Outbox};
use crate::session::Session;
use crate::users::Users;

struct Shard {
    channels: Map<Arc<str>, Channel>,
    /// Channels with a throttled subscription count waiting to be sent.
    pending_counts: Vec<Arc<str>>,
    /// When each channel last notified a cache miss. Kept apart from the
    /// channel, which is dropped when idle, so that subscribing and leaving
    /// in a loop cannot turn the 30 s throttle off.
    cache_misses: Map<Arc<str>, u64>,
}

/// One app's hub: the only state shared between connections.
///
/// Channels are sharded by name hash, each shard behind its own
/// reader-writer lock: publishes take a read lock and run in parallel,
/// subscriptions take a write lock on one shard only. Users and watchlists
/// live behind one separate lock, touched only on sign-in and disconnect of
/// signed-in connections.
pub struct Hub {
    config: HubConfig,
    shards: Box<[RwLock<Shard>]>,
    hasher: foldhash::fast::RandomState,
    users: Mutex<Users>,
    connections: AtomicUsize,
    ids: SocketIdGenerator,
    sink: Arc<dyn NotificationSink>,
    cluster: Option<(NodeId, Arc<dyn ClusterSink>)>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("app_id", &self.config.app_id)
            .field("connections", &self.connection_count())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// An HTTP API publish: one event to one or more channels.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    /// Validated channel names.
    pub channels: &'a [ChannelName],
    /// The event name (validated by the caller).
    pub event: &'a str,
    /// The data text, sent as a JSON string.
    pub data: &'a str,
    /// The publisher's own connection, excluded from delivery.
    pub except: Option<SocketId>,
    /// What counts to return per channel.
    pub info: InfoRequest,
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct PublishOutcome {
    /// Counts per channel, computed in the same pass, when `info` asked.
    pub channels: BTreeMap<String, ChannelCounts>,
    /// Frames queued and dropped.
    pub delivery: Delivery,
}

/// A connection as the hub stores it.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) socket_id: SocketId,
    pub(crate) outbox: Arc<dyn Outbox>,
}

impl Hub {
    /// A hub for one app. Socket ids come from seed 0: give each node of a
    /// cluster its own seed with [`Hub::with_seed`].
    pub fn new(config: HubConfig) -> Self {
        let n = config.shards.max(1).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                RwLock::new(Shard {
                    channels: Map::default(),
                    pending_counts: Vec::new(),
                    cache_misses: Map::default(),
                })
            })
            .collect();
        Self {
            config,
            shards,
            hasher: foldhash::fast::RandomState::default(),
            users: Mutex::new(Users::default()),
            connections: AtomicUsize::new(0),
            ids: SocketIdGenerator::new(0),
            sink: Arc::new(Discard),
            cluster: None,
        }
    }

    /// Seeds the socket id source (ids never repeat for one seed).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.ids = SocketIdGenerator::new(seed);
        self
    }

    /// Sends notifications (webhooks, metrics) to `sink`.
    pub fn with_notifications(mut self, sink: Arc<dyn NotificationSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Joins a cluster as `node`: what other nodes must learn goes to `sink`.
    pub fn with_cluster(mut self, node: NodeId, sink: Arc<dyn ClusterSink>) -> Self {
        self.cluster = Some((node, sink));
        self
    }

    /// The app's settings.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Connections currently registered.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Registers a connection: sends `pusher:connection_established` to its
    /// outbox and returns its session. Over the app's quota, returns 4004
    /// and registers nothing (the caller sends the error and closes).
    pub fn connect(
        self: &Arc<Self>,
        outbox: Arc<dyn Outbox>,
        now: u64,
    ) -> Result<Session, ErrorCode> {
        let limit = self.config.limits.max_connections.unwrap_or(usize::MAX);
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| ErrorCode::OverConnectionQuota)?;
        let socket_id = self.ids.next_id();
        let _ = outbox.push(
            ServerFrame::ConnectionEstablished {
                socket_id,
                activity_timeout: self.config.activity_timeout_secs,
            }
            .encode(),
        );
        Ok(Session::new(
            Arc::clone(self),
            Conn { socket_id, outbox },
            now,
        ))
    }

    pub(crate) fn disconnected(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    fn shard(&self, name: &str) -> &RwLock<Shard> {
        let i = self.hasher.hash_one(name) as usize & (self.shards.len() - 1);
        &self.shards[i]
    }

    fn notify(&self, n: Notification) {
        self.sink.notify(n);
    }

    /// Builds and sends a message for the other nodes; without a cluster
    /// nothing is built (the publish path allocates nothing for it).
    fn tell_cluster(&self, message: impl FnOnce() -> ClusterMessage) {
        if let Some((node, sink)) = &self.cluster {
            sink.broadcast(*node, message());
        }
    }

    // ----- subscriptions (called by Session) -----

    /// Adds `conn` to `name` (auth already checked), sends
    /// `subscription_succeeded`, then the cached event or `cache_miss`.
    pub(crate) fn subscribe(
        &self,
        conn: &Conn,
        name: &ChannelName,
        member: Option<Member>,
        now: u64,
    ) -> Result<Delivery, SubscriptionError> {
        let mut d = Delivery::default();
        let mut shard = self.shard(name.as_str()).write();
        let shard = &mut *shard;
        let ch = shard
            .channels
            .entry(Arc::clone(name.as_arc()))
            .or_insert_with(|| Channel::new(name.clone()));

        // Presence: the member limit counts distinct users.
        let user_id: Option<Arc<str>> = member.as_ref().map(|m| Arc::from(m.user_id.as_str()));
        if let (Some(uid), Some(members)) = (&user_id, &ch.members)
            && !members.contains_key(uid)
            && members.len() >= self.config.limits.max_presence_members
        {
            if ch.is_idle(now) {
                shard.channels.remove(name.as_str());
            }
            return Err(SubscriptionError {
                kind: SubscriptionErrorKind::LimitReached,
                error: format!(
                    "presence channel {name} has reached its limit of {} members",
                    self.config.limits.max_presence_members
                ),
                status: 403,
            });
        }

        let first_subscriber = ch.subscribers.is_empty();
        ch.subscribers.insert(
            conn.socket_id,
            Subscriber {
                outbox: Arc::clone(&conn.outbox),
                user_id: user_id.clone(),
            },
        );
        let mut added = None;
        if let (Some(uid), Some(member), Some(members)) = (&user_id, member, ch.members.as_mut()) {
            let entry = members
                .entry(Arc::clone(uid))
                .or_insert_with(|| MemberEntry {
                    info: member.user_info.clone(),
                    local: 0,
                    remote: Vec::new(),
                });
            let new_user = entry.is_gone();
            entry.local += 1;
            if entry.local == 1 {
                self.tell_cluster(|| ClusterMessage::MemberJoined {
                    channel: name.as_str().to_owned(),
                    member: member.clone(),
                });
            }
            if new_user {
                added = Some(member);
            }
        }

        d.push(&*conn.outbox, &ch.succeeded_frame());
        // Occupied before member_added, as a webhook receiver expects.
        if first_subscriber {
            self.notify(Notification::ChannelOccupied {
                channel: name.to_string(),
            });
        }
        if let Some(member) = added {
            let uid = member.user_id.clone();
            d.add(ch.fanout(&ch.member_added_frame(member), Some(conn.socket_id)));
            self.notify(Notification::MemberAdded {
                channel: name.to_string(),
                user_id: uid,
            });
        }
        if name.is_cache() {
            match ch.cached(now) {
                Some(c) => d.push(&*conn.outbox, &c.frame),
                None => {
                    d.push(
                        &*conn.outbox,
                        &ServerFrame::CacheMiss {
                            channel: name.to_string(),
                        }
                        .encode(),
                    );
                    let last = shard.cache_misses.get(name.as_str()).copied();
                    let due = last.is_none_or(|t| now >= t + self.config.cache_miss_interval_ms);
                    if due {
                        shard.cache_misses.insert(Arc::clone(name.as_arc()), now);
                        self.notify(Notification::CacheMiss {
                            channel: name.to_string(),
                        });
                    }
                }
            }
        }
        d.add(self.count_changed(ch, &mut shard.pending_counts, now));
        Ok(d)
    }

    /// Answers a repeated subscribe with `subscription_succeeded` again.
    pub(crate) fn resend_succeeded(&self, conn: &Conn, name: &ChannelName) -> Delivery {
        let mut d = Delivery::default();
        let shard = self.shard(name.as_str()).read();
        if let Some(ch) = shard.channels.get(name.as_str()) {
            d.push(&*conn.outbox, &ch.succeeded_frame());
        }
        d
    }

    /// Removes `socket_id` from `name`.
    pub(crate) fn unsubscribe(
        &self,
        socket_id: SocketId,
        name: &ChannelName,
        now: u64,
    ) -> Delivery {
        let mut d = Delivery::default();
        let mut shard = self.shard(name.as_str()).write();
        let shard = &mut *shard;
        let Some(ch) = shard.channels.get_mut(name.as_str()) else {
            return d;
        };
        let Some(sub) = ch.subscribers.remove(&socket_id) else {
            return d;
        };
        if let (Some(uid), Some(members)) = (sub.user_id, ch.members.as_mut())
            && let Some(entry) = members.get_mut(&uid)
        {
            entry.local = entry.local.saturating_sub(1);
            if entry.local == 0 {
                self.tell_cluster(|| ClusterMessage::MemberLeft {
                    channel: name.to_string(),
                    user_id: uid.to_string(),
                });
                if entry.is_gone() {
                    members.remove(&uid);
                    d.add(ch.fanout(&ch.member_removed_frame(&uid), None));
                    self.notify(Notification::MemberRemoved {
                        channel: name.to_string(),
                        user_id: uid.to_string(),
                    });
                }
            }
        }
        if ch.subscribers.is_empty() {
            self.notify(Notification::ChannelVacated {
                channel: name.to_string(),
            });
        }
        d.add(self.count_changed(ch, &mut shard.pending_counts, now));
        if ch.is_idle(now) {
            shard.channels.remove(name.as_str());
        }
        d
    }

    /// Announces a channel's subscription count, now or when the throttle
    /// allows (see [`Hub::tick`]).
    fn count_changed(&self, ch: &mut Channel, pending: &mut Vec<Arc<str>>, now: u64) -> Delivery {
        if !self.config.subscription_count || !ch.name.kind().has_subscription_count() {
            return Delivery::default();
        }
        let small = ch.subscribers.len() <= self.config.subscription_count_threshold;
        let due = ch
            .count_sent_ms
            .is_none_or(|t| now >= t + self.config.subscription_count_interval_ms);
        if small || due {
            self.send_count(ch, now)
        } else {
            if !ch.count_pending {
                ch.count_pending = true;
                pending.push(Arc::clone(ch.name.as_arc()));
            }
            Delivery::default()
        }
    }

    fn send_count(&self, ch: &mut Channel, now: u64) -> Delivery {
        let count = ch.subscribers.len() as u64;
        ch.count_sent_ms = Some(now);
        ch.count_pending = false;
        self.notify(Notification::SubscriptionCount {
            channel: ch.name.to_string(),
            count,
        });
        if ch.subscribers.is_empty() {
            return Delivery::default();
        }
        let frame = ServerFrame::SubscriptionCount {
            channel: ch.name.to_string(),
            count,
        }
        .encode();
        ch.fanout(&frame, None)
    }

    // ----- events -----

    /// Relays a client event (rules already checked by the session) to the
    /// channel's other subscribers.
    pub(crate) fn client_event(
        &self,
        sender: SocketId,
        name: &ChannelName,
        event: &str,
        data: &str,
        user_id: Option<&str>,
    ) -> Delivery {
        let frame = ChannelEvent::encode_parts(event, name.as_str(), data, user_id);
        let d = {
            let shard = self.shard(name.as_str()).read();
            shard
                .channels
                .get(name.as_str())
                .map(|ch| ch.fanout(&frame, Some(sender)))
        };
        self.notify(Notification::ClientEvent {
            channel: name.to_string(),
            event: event.to_owned(),
            data: data.to_owned(),
            socket_id: sender,
            user_id: user_id.map(str::to_owned),
        });
        self.tell_cluster(|| ClusterMessage::Publish {
            channel: name.to_string(),
            event: event.to_owned(),
            data: data.to_owned(),
            except: Some(sender),
            user_id: user_id.map(str::to_owned),
            from_api: false,
        });
        d.unwrap_or_default()
    }

    /// Publishes an HTTP API event: each channel's frame is encoded once and
    /// its bytes shared by every recipient; cache channels keep it.
    pub fn publish(&self, p: &Publish<'_>, now: u64) -> PublishOutcome {
        let mut out = PublishOutcome::default();
        for name in p.channels {
            let frame = ChannelEvent::encode_parts(p.event, name.as_str(), p.data, None);
            let counts = self.deliver(
                name,
                &frame,
                p.data,
                p.except,
                true,
                p.info,
                now,
                &mut out.delivery,
            );
            if p.info.user_count || p.info.subscription_count {
                out.channels.insert(name.to_string(), counts);
            }
            self.tell_cluster(|| ClusterMessage::Publish {
                channel: name.to_string(),
                event: p.event.to_owned(),
                data: p.data.to_owned(),
                except: p.except,
                user_id: None,
                from_api: true,
            });
        }
        out
    }

    /// Delivers one encoded event on one channel, caching it when asked.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        name: &ChannelName,
        frame: &Bytes,
        data: &str,
        except: Option<SocketId>,
        cache: bool,
        info: InfoRequest,
        now: u64,
        d: &mut Delivery,
    ) -> ChannelCounts {
        let counts = |ch: Option<&Channel>| ChannelCounts {
            user_count: (info.user_count && name.kind().is_presence())
                .then(|| ch.map_or(0, Channel::user_count)),
            subscription_count: info
                .subscription_count
                .then(|| ch.map_or(0, |c| c.subscribers.len() as u64)),
        };
        if cache && name.is_cache() {
            let mut shard = self.shard(name.as_str()).write();
            let ch = shard
                .channels
                .entry(Arc::clone(name.as_arc()))
                .or_insert_with(|| Channel::new(name.clone()));
            ch.cache = Some(Cached {
                data: data.to_owned(),
                frame: frame.clone(),
                expires_ms: now + self.config.cache_ttl_ms,
            });
            d.add(ch.fanout(frame, except));
            counts(Some(ch))
        } else {
            let shard = self.shard(name.as_str()).read();
            let ch = shard.channels.get(name.as_str());
            if let Some(ch) = ch {
                d.add(ch.fanout(frame, except));
            }
            counts(ch)
        }
    }

    // ----- users -----

    pub(crate) fn signin(
        &self,
        conn: &Conn,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> Delivery {
        self.users.lock().signin(conn, user_id, watchlist)
    }

    pub(crate) fn signout(
        &self,
        socket_id: SocketId,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> Delivery {
        self.users.lock().signout(socket_id, user_id, watchlist)
    }

    /// Closes every signed-in connection of `user_id` on this node (and asks
    /// other nodes to do the same): `pusher:error` 4009, then close 4009.
    /// Returns how many local connections were told.
    pub fn terminate_user(&self, user_id: &str) -> usize {
        let n = self.terminate_local(user_id);
        self.tell_cluster(|| ClusterMessage::TerminateUser {
            user_id: user_id.to_owned(),
        });
        n
    }

    fn terminate_local(&self, user_id: &str) -> usize {
        let conns = self.users.lock().connections_of(user_id);
        let frame =
            ServerFrame::error_with(ErrorCode::Unauthorized, "You got disconnected by the app.")
                .encode();
        for outbox in &conns {
            let _ = outbox.push(frame.clone());
            outbox.close(ErrorCode::Unauthorized);
        }
        conns.len()
    }

    /// Whether `user_id` is signed in on this node.
    pub fn is_online(&self, user_id: &str) -> bool {
        self.users.lock().is_online(user_id)
    }

    // ----- queries -----

    /// Occupied channels whose name starts with `prefix`, with the counts
    /// `info` asks for.
    pub fn channels(&self, prefix: &str, info: InfoRequest) -> BTreeMap<String, ChannelCounts> {
        let mut out = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            for ch in shard.channels.values() {
                // Per-user channels are internal: listing them would reveal
                // who is signed in.
                if ch.subscribers.is_empty()
                    || ch.name.kind() == ChannelKind::ServerToUser
                    || !ch.name.as_str().starts_with(prefix)
                {
                    continue;
                }
                out.insert(
                    ch.name.to_string(),
                    ChannelCounts {
                        user_count: (info.user_count && ch.members.is_some())
                            .then(|| ch.user_count()),
                        subscription_count: info
                            .subscription_count
                            .then_some(ch.subscribers.len() as u64),
                    },
                );
            }
        }
        out
    }

    /// One channel's state, with what `info` asks for.
    pub fn channel_info(
        &self,
        name: &ChannelName,
        info: InfoRequest,
        now: u64,
    ) -> ChannelInfoResponse {
        let shard = self.shard(name.as_str()).read();
        let ch = shard.channels.get(name.as_str());
        ChannelInfoResponse {
            occupied: ch.is_some_and(|c| !c.subscribers.is_empty()),
            user_count: (info.user_count && name.kind().is_presence())
                .then(|| ch.map_or(0, Channel::user_count)),
            subscription_count: info
                .subscription_count
                .then(|| ch.map_or(0, |c| c.subscribers.len() as u64)),
            cache: if info.cache {
                ch.and_then(|c| c.cached(now)).map(|c| CacheInfo {
                    data: c.data.clone(),
                    ttl: (c.expires_ms - now).div_ceil(1000),
                })
            } else {
                None
            },
        }
    }

    /// Distinct user ids of a presence channel.
    pub fn users(&self, name: &ChannelName) -> Vec<String> {
        let shard = self.shard(name.as_str()).read();
        let mut ids: Vec<String> = shard
            .channels
            .get(name.as_str())
            .and_then(|c| c.members.as_ref())
            .map(|m| m.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Number of channels the hub holds state for (subscribed, with
    /// members, or with a live cache).
    pub fn channel_count(&self) -> usize {
        self.shards.iter().map(|s| s.read().channels.len()).sum()
    }

    /// True when the hub holds nothing: no connection, channel or user.
    pub fn is_empty(&self) -> bool {
        self.connection_count() == 0
            && self.channel_count() == 0
            && self.users.lock().is_empty()
            && self.shards.iter().all(|s| s.read().cache_misses.is_empty())
    }

    // ----- timers -----

    /// Runs the hub's timers; call about once a second. Sends throttled
    /// subscription counts that are due and forgets expired caches.
    pub fn tick(&self, now: u64) -> Delivery {
        let mut d = Delivery::default();
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let shard = &mut *shard;
            let mut still = Vec::new();
            for name in std::mem::take(&mut shard.pending_counts) {
                let Some(ch) = shard.channels.get_mut(&name) else {
                    continue;
                };
                if !ch.count_pending {
                    continue;
                }
                if ch
                    .count_sent_ms
                    .is_none_or(|t| now >= t + self.config.subscription_count_interval_ms)
                {
                    d.add(self.send_count(ch, now));
                } else {
                    still.push(name);
                }
            }
            shard.pending_counts = still;
            let interval = self.config.cache_miss_interval_ms;
            shard.cache_misses.retain(|_, t| now < *t + interval);
            shard.channels.retain(|_, ch| {
                if ch.cache.as_ref().is_some_and(|c| c.expires_ms <= now) {
                    ch.cache = None;
                }
                !ch.is_idle(now)
            });
        }
        d
    }

    // ----- cluster -----

    /// Applies a message from another node to local connections only.
    pub fn handle_remote(&self, from: NodeId, message: ClusterMessage, now: u64) -> Delivery {
        let mut d = Delivery::default();
        match message {
            ClusterMessage::Publish {
                channel,
                event,
                data,
                except,
                user_id,
                from_api,
            } => {
                let Ok(name) = ChannelName::with_max_len(&channel, usize::MAX) else {
                    return d;
                };
                let frame = ChannelEvent::encode_parts(&event, &channel, &data, user_id.as_deref());
                let _ = self.deliver(
                    &name,
                    &frame,
                    &data,
                    except,
                    from_api,
                    InfoRequest::default(),
                    now,
                    &mut d,
                );
            }
            ClusterMessage::MemberJoined { channel, member } => {
                let Ok(name) = ChannelName::with_max_len(&channel, usize::MAX) else {
                    return d;
                };
                if !name.kind().is_presence() {
                    return d;
                }
                let mut shard = self.shard(&channel).write();
                let ch = shard
                    .channels
                    .entry(Arc::clone(name.as_arc()))
                    .or_insert_with(|| Channel::new(name.clone()));
                let members = ch.members.get_or_insert_with(Map::default);
                let entry = members
                    .entry(Arc::from(member.user_id.as_str()))
                    .or_insert_with(|| MemberEntry {
                        info: member.user_info.clone(),
                        local: 0,
                        remote: Vec::new(),
                    });
                let new_user = entry.is_gone();
                if !entry.remote.contains(&from) {
                    entry.remote.push(from);
                }
                if new_user {
                    d.add(ch.fanout(&ch.member_added_frame(member), None));
                }
            }
            ClusterMessage::MemberLeft { channel, user_id } => {
                d.add(self.remote_member_left(&channel, &user_id, from, now));
            }
            ClusterMessage::TerminateUser { user_id } => {
                self.terminate_local(&user_id);
            }
        }
        d
    }

    fn remote_member_left(&self, channel: &str, user_id: &str, from: NodeId, now: u64) -> Delivery {
        let mut d = Delivery::default();
        let mut shard = self.shard(channel).write();
        let Some(ch) = shard.channels.get_mut(channel) else {
            return d;
        };
        let Some(members) = ch.members.as_mut() else {
            return d;
        };
        let Some(entry) = members.get_mut(user_id) else {
            return d;
        };
        entry.remote.retain(|n| *n != from);
        if entry.is_gone() {
            members.remove(user_id);
            d.add(ch.fanout(&ch.member_removed_frame(user_id), None));
        }
        if ch.is_idle(now) {
            shard.channels.remove(channel);
        }
        d
    }

    /// Forgets everything a node said (it left or died): its presence
    /// members leave, with `member_removed` where no one else holds them.
    pub fn remove_node(&self, node: NodeId, now: u64) -> Delivery {
        let mut d = Delivery::default();
        let mut gone = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            for ch in shard.channels.values() {
                for (uid, e) in ch.members.iter().flatten() {
                    if e.remote.contains(&node) {
                        gone.push((ch.name.to_string(), uid.to_string()));
                    }
                }
            }
        }
        for (channel, uid) in gone {
            d.add(self.remote_member_left(&channel, &uid, node, now));
        }
        d
    }
}
