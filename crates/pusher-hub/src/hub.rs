//! The shared part: channels (sharded), users, fan-out, queries.

use crate::time::Millis;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use pusher_proto::http::{CacheInfo, ChannelCounts, ChannelInfoResponse, InfoRequest};
use pusher_proto::{
    ChannelEvent, ChannelKind, ChannelName, ErrorCode, Member, ServerFrame, SocketId,
    SocketIdGenerator,
};

use crate::channel::{Cached, Channel, Hashing, Map, MemberEntry, Subscriber};
use crate::cluster::{ClusterMessage, ClusterSink, NodeId, Numbering, WireMember};
use crate::config::HubConfig;
use crate::effects::{Delivery, Discard, Effects, Notification, NotificationSink, Outbox};
use crate::refusal::Refusal;
use crate::remote::Remotes;
use crate::session::Session;
use crate::usage::{Meter, QuotaExceeded};
use crate::users::Users;

pub(crate) struct Shard {
    pub(crate) channels: Map<Arc<str>, Channel>,
    /// Channels with a throttled subscription count waiting to be sent.
    pub(crate) pending_counts: Vec<Arc<str>>,
    /// When each channel last notified a cache miss. Kept apart from the
    /// channel, which is dropped when idle, so that subscribing and leaving
    /// in a loop cannot turn the 30 s throttle off.
    pub(crate) cache_misses: Map<Arc<str>, Millis>,
}

/// This hub's part in a cluster.
pub(crate) struct ClusterPart {
    pub(crate) node: NodeId,
    pub(crate) out: Numbering,
    pub(crate) remotes: Mutex<Remotes>,
    /// The current leader, as the driver last said.
    pub(crate) leader: Mutex<Option<NodeId>>,
}

/// One app's hub: the only state shared between connections.
///
/// Channels are sharded by name hash, each shard behind its own
/// reader-writer lock: publishes take a read lock and run in parallel,
/// subscriptions take a write lock on one shard only. Users and watchlists
/// live behind one separate lock, touched only on sign-in and disconnect of
/// signed-in connections. In a cluster the channels also hold what the
/// other nodes hold of them (see [`crate::cluster`]).
pub struct Hub {
    /// Replaced whole by [`Hub::set_config`]; readers take the `Arc`.
    config: RwLock<Arc<HubConfig>>,
    pub(crate) shards: Box<[RwLock<Shard>]>,
    hashing: Hashing,
    pub(crate) users: Mutex<Users>,
    connections: AtomicUsize,
    remote_connections: AtomicUsize,
    ids: SocketIdGenerator,
    sink: Arc<dyn NotificationSink>,
    /// Counts broadcasts and deliveries, and applies broadcast quotas.
    meter: Option<Arc<dyn Meter>>,
    pub(crate) cluster: Option<ClusterPart>,
    /// Whether this node sends the webhooks that depend on the whole
    /// cluster's state (always, alone).
    pub(crate) leader: AtomicBool,
    /// The earliest timer due, in milliseconds (`u64::MAX`: none).
    next_deadline: AtomicU64,
    /// The driver's timer task, woken when an earlier deadline appears.
    timer_waker: Mutex<Option<Waker>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("app_id", &self.config().app_id)
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
    /// Counts per channel (cluster-wide), computed in the same pass, when
    /// `info` asked.
    pub channels: BTreeMap<String, ChannelCounts>,
    /// Frames queued and dropped.
    pub delivery: Delivery,
}

/// Where an API event was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Through this node's HTTP API: the other nodes are told.
    Here,
    /// On another node: delivered here only.
    Remote,
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
                    channels: Map::with_hasher(Hashing::default()),
                    pending_counts: Vec::new(),
                    cache_misses: Map::with_hasher(Hashing::default()),
                })
            })
            .collect();
        Self {
            config: RwLock::new(Arc::new(config)),
            shards,
            hashing: Hashing::default(),
            users: Mutex::new(Users::new(Hashing::default())),
            connections: AtomicUsize::new(0),
            remote_connections: AtomicUsize::new(0),
            ids: SocketIdGenerator::new(0),
            sink: Arc::new(Discard),
            meter: None,
            cluster: None,
            leader: AtomicBool::new(true),
            next_deadline: AtomicU64::new(u64::MAX),
            timer_waker: Mutex::new(None),
        }
    }

    /// Seeds the socket id source (ids never repeat for one seed) and the
    /// hashing of every map (iteration order is reproducible for a seed).
    /// A server gives each node and app a random seed, so that clients can
    /// predict neither; tests give a fixed one.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.ids = SocketIdGenerator::new(seed);
        self.hashing = Hashing::with_seed(seed);
        for shard in self.shards.iter_mut() {
            let shard = shard.get_mut();
            shard.channels = Map::with_hasher(self.hashing);
            shard.cache_misses = Map::with_hasher(self.hashing);
        }
        self.users = Mutex::new(Users::new(self.hashing));
        self
    }

    /// The hashing of the hub's maps.
    pub(crate) fn hashing(&self) -> Hashing {
        self.hashing
    }

    /// Sends notifications (webhooks, metrics) to `sink`.
    pub fn with_notifications(mut self, sink: Arc<dyn NotificationSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Counts broadcasts and their deliveries with `meter`, which may
    /// refuse broadcasts over a quota (HTTP 403, `pusher:error` for a
    /// client event). Without one nothing is counted or refused.
    pub fn with_meter(mut self, meter: Arc<dyn Meter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Asks the meter to admit `broadcasts` broadcasts.
    pub(crate) fn admit(&self, broadcasts: u64) -> Result<(), QuotaExceeded> {
        match &self.meter {
            Some(m) => m.admit(broadcasts),
            None => Ok(()),
        }
    }

    /// Tells the meter what one fan-out queued.
    pub(crate) fn delivered(&self, copies: u64) {
        if let Some(m) = &self.meter {
            m.delivered(copies);
        }
    }

    /// Joins a cluster as `node`: what the other nodes must learn goes to
    /// `sink`, numbered and in order. Until told otherwise
    /// ([`Hub::set_leader`]) the node considers itself the leader.
    pub fn with_cluster(mut self, node: NodeId, sink: Arc<dyn ClusterSink>) -> Self {
        self.cluster = Some(ClusterPart {
            node,
            out: Numbering::new(sink),
            remotes: Mutex::new(Remotes::default()),
            leader: Mutex::new(None),
        });
        self
    }

    /// The app's settings now (a later [`Hub::set_config`] does not change
    /// the copy returned).
    pub fn config(&self) -> Arc<HubConfig> {
        self.config.read().clone()
    }

    /// Replaces the app's settings while it runs: what comes next (a
    /// signature, a subscription, a publish, a connection) follows them;
    /// what is in place stays (connections, members, cached events). The
    /// app id and the shard count are the hub's own and are kept.
    pub fn set_config(&self, config: HubConfig) {
        let mut current = self.config.write();
        let config = HubConfig {
            app_id: current.app_id.clone(),
            shards: current.shards,
            ..config
        };
        *current = Arc::new(config);
    }

    /// Connections currently registered on this node.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections of the app on every node: this node's, and the others'
    /// as their heartbeats last told it.
    pub fn cluster_connection_count(&self) -> usize {
        self.connection_count()
            .saturating_add(self.remote_connections.load(Ordering::Relaxed))
    }

    /// Connections of this app on the other nodes, as their heartbeats tell
    /// it: counted against `max_connections`.
    pub fn set_remote_connections(&self, n: usize) {
        self.remote_connections.store(n, Ordering::Relaxed);
    }

    /// Registers a connection: sends `pusher:connection_established` to its
    /// outbox and returns its session. Over the app's quota (counted over
    /// the whole cluster), returns 4004 and registers nothing (the caller
    /// sends the error and closes).
    pub fn connect(
        self: &Arc<Self>,
        outbox: Arc<dyn Outbox>,
        now: Millis,
    ) -> Result<Session, ErrorCode> {
        let limit = self
            .config()
            .limits
            .max_connections
            .unwrap_or(usize::MAX)
            .saturating_sub(self.remote_connections.load(Ordering::Relaxed));
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| ErrorCode::OverConnectionQuota)?;
        let socket_id = self.ids.next_id();
        let _ = outbox.push(
            ServerFrame::ConnectionEstablished {
                socket_id,
                activity_timeout: self.config().activity_timeout_secs,
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

    pub(crate) fn shard(&self, name: &str) -> &RwLock<Shard> {
        let i = self.hashing.hash_one(name) as usize & (self.shards.len() - 1);
        &self.shards[i]
    }

    /// Whether this node sends the webhooks of cluster-wide state.
    pub(crate) fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Queues a notification of cluster-wide state: only the leader sends
    /// those.
    pub(crate) fn note(&self, fx: &mut Effects, n: Notification) {
        if self.is_leader() {
            fx.notes.push(n);
        }
    }

    /// Numbers a message for the other nodes (call while holding the lock
    /// that protects what it describes); without a cluster nothing is built.
    pub(crate) fn tell(&self, fx: &mut Effects, message: impl FnOnce() -> ClusterMessage) {
        if let Some(c) = &self.cluster {
            fx.cluster.push((c.out.take(), message()));
        }
    }

    /// Hands out what a call collected, after its locks are released.
    pub(crate) fn finish(&self, fx: Effects) -> Delivery {
        for n in fx.notes {
            self.sink.notify(n);
        }
        if let Some(c) = &self.cluster {
            for (seq, m) in fx.cluster {
                c.out.send(seq, m);
            }
        }
        fx.delivery
    }

    // ----- subscriptions (called by Session) -----

    /// Adds `conn` to `name` (auth already checked), sends
    /// `subscription_succeeded`, then the cached event or `cache_miss`.
    pub(crate) fn subscribe(
        &self,
        conn: &Conn,
        name: &ChannelName,
        member: Option<Member>,
        now: Millis,
    ) -> Result<Delivery, Refusal> {
        let mut fx = Effects::default();
        {
            let mut guard = self.shard(name.as_str()).write();
            let shard = &mut *guard;
            let ch = shard
                .channels
                .entry(Arc::clone(name.as_arc()))
                .or_insert_with(|| Channel::new(name.clone(), self.hashing));

            // Presence: the member limit counts distinct users.
            let user_id: Option<Arc<str>> = member.as_ref().map(|m| Arc::from(m.user_id.as_str()));
            if let (Some(uid), Some(members)) = (&user_id, &ch.members)
                && !members.contains_key(uid)
                && members.len() >= self.config().limits.max_presence_members
            {
                if ch.is_idle(now) {
                    shard.channels.remove(name.as_str());
                }
                return Err(Refusal::MemberLimit {
                    channel: name.to_string(),
                    max: self.config().limits.max_presence_members,
                });
            }

            let was_occupied = ch.is_occupied();
            ch.subscribers.insert(
                conn.socket_id,
                Subscriber {
                    outbox: Arc::clone(&conn.outbox),
                    user_id: user_id.clone(),
                },
            );
            let local = ch.subscribers.len() as u64;
            self.tell(&mut fx, || ClusterMessage::Subscriptions {
                channel: name.to_string(),
                count: local,
            });
            let mut added = None;
            if let (Some(uid), Some(member), Some(members)) =
                (&user_id, member, ch.members.as_mut())
            {
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
                    self.tell(&mut fx, || ClusterMessage::Member {
                        channel: name.to_string(),
                        member: WireMember::from(member.clone()),
                        present: true,
                    });
                }
                if new_user {
                    added = Some(member);
                }
            }

            fx.delivery.push(&*conn.outbox, &ch.succeeded_frame());
            // Occupied before member_added, as a webhook receiver expects.
            if !was_occupied {
                self.note(
                    &mut fx,
                    Notification::ChannelOccupied {
                        channel: name.to_string(),
                    },
                );
            }
            if let Some(member) = added {
                let uid = member.user_id.clone();
                let frame = ch.member_added_frame(member);
                fx.delivery.add(ch.fanout(&frame, Some(conn.socket_id)));
                self.note(
                    &mut fx,
                    Notification::MemberAdded {
                        channel: name.to_string(),
                        user_id: uid,
                    },
                );
            }
            if name.is_cache() {
                match ch.cached(now) {
                    Some(c) => fx.delivery.push(&*conn.outbox, &c.frame),
                    None => {
                        fx.delivery.push(
                            &*conn.outbox,
                            &ServerFrame::CacheMiss {
                                channel: name.to_string(),
                            }
                            .encode(),
                        );
                        self.cache_missed(&mut shard.cache_misses, name.as_arc(), now, &mut fx);
                    }
                }
            }
            self.count_changed(ch, &mut shard.pending_counts, now, &mut fx);
        }
        Ok(self.finish(fx))
    }

    /// A subscriber found nothing cached: at most one `cache_miss` per
    /// channel per interval, sent by the leader (told when it is another
    /// node).
    pub(crate) fn cache_missed(
        &self,
        misses: &mut Map<Arc<str>, Millis>,
        name: &Arc<str>,
        now: Millis,
        fx: &mut Effects,
    ) {
        let last = misses.get(name).copied();
        if last.is_some_and(|t| now < t + self.config().cache_miss_interval) {
            return;
        }
        misses.insert(Arc::clone(name), now);
        self.wake_at(now + self.config().cache_miss_interval);
        if self.is_leader() {
            fx.notes.push(Notification::CacheMiss {
                channel: name.to_string(),
            });
        } else {
            self.tell(fx, || ClusterMessage::CacheMiss {
                channel: name.to_string(),
            });
        }
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
        now: Millis,
    ) -> Delivery {
        let mut fx = Effects::default();
        {
            let mut guard = self.shard(name.as_str()).write();
            let shard = &mut *guard;
            let Some(ch) = shard.channels.get_mut(name.as_str()) else {
                return Delivery::default();
            };
            let Some(sub) = ch.subscribers.remove(&socket_id) else {
                return Delivery::default();
            };
            if let (Some(uid), Some(members)) = (sub.user_id, ch.members.as_mut())
                && let Some(entry) = members.get_mut(&uid)
            {
                entry.local = entry.local.saturating_sub(1);
                if entry.local == 0 {
                    self.tell(&mut fx, || ClusterMessage::Member {
                        channel: name.to_string(),
                        member: WireMember {
                            user_id: uid.to_string(),
                            user_info: None,
                        },
                        present: false,
                    });
                    if entry.is_gone() {
                        members.remove(&uid);
                        fx.delivery
                            .add(ch.fanout(&ch.member_removed_frame(&uid), None));
                        self.note(
                            &mut fx,
                            Notification::MemberRemoved {
                                channel: name.to_string(),
                                user_id: uid.to_string(),
                            },
                        );
                    }
                }
            }
            // After the member: member_removed comes before vacated.
            let local = ch.subscribers.len() as u64;
            self.tell(&mut fx, || ClusterMessage::Subscriptions {
                channel: name.to_string(),
                count: local,
            });
            if !ch.is_occupied() {
                self.note(
                    &mut fx,
                    Notification::ChannelVacated {
                        channel: name.to_string(),
                    },
                );
            }
            self.count_changed(ch, &mut shard.pending_counts, now, &mut fx);
            if ch.is_idle(now) {
                shard.channels.remove(name.as_str());
            }
        }
        self.finish(fx)
    }

    /// Announces a channel's subscription count (cluster-wide), now or when
    /// the throttle allows (see [`Hub::tick`]).
    pub(crate) fn count_changed(
        &self,
        ch: &mut Channel,
        pending: &mut Vec<Arc<str>>,
        now: Millis,
        fx: &mut Effects,
    ) {
        if !self.config().subscription_count || !ch.name.kind().has_subscription_count() {
            return;
        }
        let small = ch.subscription_count() <= self.config().subscription_count_threshold as u64;
        let due = ch
            .count_sent
            .is_none_or(|t| now >= t + self.config().subscription_count_interval);
        if small || due {
            self.send_count(ch, now, fx);
        } else if !ch.count_pending {
            ch.count_pending = true;
            pending.push(Arc::clone(ch.name.as_arc()));
            if let Some(t) = ch.count_sent {
                self.wake_at(t + self.config().subscription_count_interval);
            }
        }
    }

    fn send_count(&self, ch: &mut Channel, now: Millis, fx: &mut Effects) {
        let count = ch.subscription_count();
        ch.count_sent = Some(now);
        ch.count_pending = false;
        self.note(
            fx,
            Notification::SubscriptionCount {
                channel: ch.name.to_string(),
                subscription_count: count,
            },
        );
        if ch.subscribers.is_empty() {
            return;
        }
        let frame = ServerFrame::SubscriptionCount {
            channel: ch.name.to_string(),
            count,
        }
        .encode();
        fx.delivery.add(ch.fanout(&frame, None));
    }

    // ----- events -----

    /// Relays a client event (rules already checked by the session) to the
    /// channel's other subscribers, on every node.
    pub(crate) fn client_event(
        &self,
        sender: SocketId,
        name: &ChannelName,
        event: &str,
        data: &str,
        user_id: Option<&str>,
    ) -> Delivery {
        let mut fx = Effects::default();
        let frame = ChannelEvent::encode_parts(event, name.as_str(), data, user_id);
        self.tell(&mut fx, || ClusterMessage::Publish {
            channel: name.to_string(),
            event: event.to_owned(),
            data: data.to_owned(),
            except: Some(sender),
            user_id: user_id.map(str::to_owned),
            from_api: false,
        });
        {
            let shard = self.shard(name.as_str()).read();
            if let Some(ch) = shard.channels.get(name.as_str()) {
                fx.delivery.add(ch.fanout(&frame, Some(sender)));
            }
        }
        self.delivered(fx.delivery.delivered);
        // The node the sender is on sends this webhook: no other node sees
        // the event first.
        fx.notes.push(Notification::ClientEvent {
            channel: name.to_string(),
            event: event.to_owned(),
            data: data.to_owned(),
            socket_id: sender,
            user_id: user_id.map(str::to_owned),
        });
        self.finish(fx)
    }

    /// Publishes an HTTP API event: each channel's frame is encoded once and
    /// its bytes shared by every recipient; cache channels keep it. In a
    /// cluster each channel's event crosses the bus once.
    pub fn publish(&self, p: &Publish<'_>, now: Millis) -> PublishOutcome {
        let mut out = PublishOutcome::default();
        let mut fx = Effects::default();
        for name in p.channels {
            let frame = ChannelEvent::encode_parts(p.event, name.as_str(), p.data, None);
            let counts = self.deliver(
                name,
                &frame,
                Origin::Here,
                p.event,
                p.data,
                p.except,
                p.info,
                now,
                &mut fx,
            );
            if p.info.user_count || p.info.subscription_count {
                out.channels.insert(name.to_string(), counts);
            }
        }
        self.delivered(fx.delivery.delivered);
        out.delivery = self.finish(fx);
        out
    }

    /// Delivers one encoded API event on one channel to local subscribers,
    /// keeping it when it is a cache channel's; an event published here is
    /// also told to the other nodes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deliver(
        &self,
        name: &ChannelName,
        frame: &Bytes,
        origin: Origin,
        event: &str,
        data: &str,
        except: Option<SocketId>,
        info: InfoRequest,
        now: Millis,
        fx: &mut Effects,
    ) -> ChannelCounts {
        let counts = |ch: Option<&Channel>| ChannelCounts {
            user_count: (info.user_count && name.kind().is_presence())
                .then(|| ch.map_or(0, Channel::user_count)),
            subscription_count: info
                .subscription_count
                .then(|| ch.map_or(0, Channel::subscription_count)),
        };
        let tell = |fx: &mut Effects| {
            if origin == Origin::Here {
                self.tell(fx, || ClusterMessage::Publish {
                    channel: name.to_string(),
                    event: event.to_owned(),
                    data: data.to_owned(),
                    except,
                    user_id: None,
                    from_api: true,
                });
            }
        };
        if name.is_cache() {
            let mut shard = self.shard(name.as_str()).write();
            // Numbered under the lock: every node keeps the same last event.
            tell(fx);
            let ch = shard
                .channels
                .entry(Arc::clone(name.as_arc()))
                .or_insert_with(|| Channel::new(name.clone(), self.hashing));
            ch.cache = Some(Cached {
                event: event.to_owned(),
                data: data.to_owned(),
                frame: frame.clone(),
                expires: now + self.config().cache_ttl,
            });
            self.wake_at(now + self.config().cache_ttl);
            fx.delivery.add(ch.fanout(frame, except));
            counts(Some(ch))
        } else {
            tell(fx);
            let shard = self.shard(name.as_str()).read();
            let ch = shard.channels.get(name.as_str());
            if let Some(ch) = ch {
                fx.delivery.add(ch.fanout(frame, except));
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
        let mut fx = Effects::default();
        {
            let mut users = self.users.lock();
            let (d, first) = users.signin(conn, user_id, watchlist);
            fx.delivery.add(d);
            if first {
                self.tell(&mut fx, || ClusterMessage::User {
                    user_id: user_id.to_string(),
                    online: true,
                });
            }
        }
        self.finish(fx)
    }

    pub(crate) fn signout(
        &self,
        socket_id: SocketId,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> Delivery {
        let mut fx = Effects::default();
        {
            let mut users = self.users.lock();
            let (d, last) = users.signout(socket_id, user_id, watchlist);
            fx.delivery.add(d);
            if last {
                self.tell(&mut fx, || ClusterMessage::User {
                    user_id: user_id.to_string(),
                    online: false,
                });
            }
        }
        self.finish(fx)
    }

    /// Closes every signed-in connection of `user_id`, on every node:
    /// `pusher:error` 4009, then close 4009. Returns how many local
    /// connections were told.
    pub fn terminate_user(&self, user_id: &str) -> usize {
        let mut fx = Effects::default();
        self.tell(&mut fx, || ClusterMessage::Terminate {
            user_id: user_id.to_owned(),
        });
        let _ = self.finish(fx);
        self.terminate_local(user_id)
    }

    pub(crate) fn terminate_local(&self, user_id: &str) -> usize {
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

    /// Whether `user_id` is signed in anywhere in the cluster.
    pub fn is_online(&self, user_id: &str) -> bool {
        self.users.lock().is_online(user_id)
    }

    // ----- queries -----

    /// Occupied channels (anywhere in the cluster) whose name starts with
    /// `prefix`, with the counts `info` asks for.
    pub fn channels(&self, prefix: &str, info: InfoRequest) -> BTreeMap<String, ChannelCounts> {
        let mut out = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            for ch in shard.channels.values() {
                // Per-user channels are internal: listing them would reveal
                // who is signed in.
                if !ch.is_occupied()
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
                            .then(|| ch.subscription_count()),
                    },
                );
            }
        }
        out
    }

    /// One channel's state (cluster-wide), with what `info` asks for.
    pub fn channel_info(
        &self,
        name: &ChannelName,
        info: InfoRequest,
        now: Millis,
    ) -> ChannelInfoResponse {
        let shard = self.shard(name.as_str()).read();
        let ch = shard.channels.get(name.as_str());
        ChannelInfoResponse {
            occupied: ch.is_some_and(Channel::is_occupied),
            user_count: (info.user_count && name.kind().is_presence())
                .then(|| ch.map_or(0, Channel::user_count)),
            subscription_count: info
                .subscription_count
                .then(|| ch.map_or(0, Channel::subscription_count)),
            cache: if info.cache {
                ch.and_then(|c| c.cached(now)).map(|c| CacheInfo {
                    data: c.data.clone(),
                    ttl: (c.expires - now).as_millis().div_ceil(1000) as u64,
                })
            } else {
                None
            },
        }
    }

    /// Distinct user ids of a presence channel, cluster-wide.
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

    /// Number of channels the hub holds state for (subscribed here or
    /// elsewhere, with members, a live cache or delivered webhook state).
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

    /// When [`Hub::handle_timeout`] must next be called (`None`: no timer
    /// is pending): throttled subscription counts, cache expiry, the cache
    /// miss throttle.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let t = self.next_deadline.load(Ordering::Acquire);
        (t != u64::MAX).then_some(Millis::from_millis(t))
    }

    /// Keeps `waker`, woken when a deadline earlier than the last
    /// [`Hub::poll_timeout`] answer appears (the driver then sleeps less).
    pub fn register_timer(&self, waker: &Waker) {
        let mut w = self.timer_waker.lock();
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }

    /// Asks to be called at `t` (or earlier).
    pub(crate) fn wake_at(&self, t: Millis) {
        let t = t.as_millis();
        if self.next_deadline.fetch_min(t, Ordering::AcqRel) > t
            && let Some(w) = self.timer_waker.lock().take()
        {
            w.wake();
        }
    }

    /// Runs the timers due at `now`: sends throttled subscription counts,
    /// forgets expired caches and cache-miss marks.
    pub fn handle_timeout(&self, now: Millis) -> Delivery {
        let mut fx = Effects::default();
        // Cleared first: a deadline added meanwhile lowers it again.
        self.next_deadline.store(u64::MAX, Ordering::Release);
        let mut next = Millis::from_millis(u64::MAX);
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
                let due = ch
                    .count_sent
                    .map_or(now, |t| t + self.config().subscription_count_interval);
                if now >= due {
                    self.send_count(ch, now, &mut fx);
                } else {
                    next = next.min(due);
                    still.push(name);
                }
            }
            shard.pending_counts = still;
            let interval = self.config().cache_miss_interval;
            shard.cache_misses.retain(|_, t| {
                let keep = now < *t + interval;
                if keep {
                    next = next.min(*t + interval);
                }
                keep
            });
            shard.channels.retain(|_, ch| {
                match &ch.cache {
                    Some(c) if c.expires <= now => ch.cache = None,
                    Some(c) => next = next.min(c.expires),
                    None => {}
                }
                !ch.is_idle(now)
            });
        }
        if next.as_millis() != u64::MAX {
            self.wake_at(next);
        }
        self.finish(fx)
    }
}
