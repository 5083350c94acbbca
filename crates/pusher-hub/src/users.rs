//! Signed-in users and watchlists, cluster-wide: a user is online while it
//! has a signed-in connection on any node.

use std::sync::Arc;

use bytes::Bytes;
use pusher_proto::{ServerFrame, SocketId, WatchlistEvent, WatchlistEventName};

use crate::channel::{Hashing, Map};
use crate::cluster::NodeId;
use crate::effects::{Delivery, Outbox};
use crate::hub::Conn;

type Conns = Map<SocketId, Arc<dyn Outbox>>;

pub(crate) struct Users {
    hashing: Hashing,
    /// User id → its signed-in connections on this node.
    online: Map<Arc<str>, Conns>,
    /// User id → other nodes where it is signed in.
    remote: Map<Arc<str>, Vec<NodeId>>,
    /// Watched user id → connections watching it.
    watchers: Map<Arc<str>, Conns>,
}

fn status_frame(name: WatchlistEventName, ids: Vec<String>) -> Bytes {
    ServerFrame::WatchlistEvents {
        events: vec![WatchlistEvent {
            name,
            user_ids: ids,
        }],
    }
    .encode()
}

impl Users {
    pub(crate) fn new(hashing: Hashing) -> Self {
        Self {
            hashing,
            online: Map::with_hasher(hashing),
            remote: Map::with_hasher(hashing),
            watchers: Map::with_hasher(hashing),
        }
    }

    /// Signs `conn` in; the second value is true when this is the user's
    /// first connection on this node.
    pub(crate) fn signin(
        &mut self,
        conn: &Conn,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> (Delivery, bool) {
        let mut d = Delivery::default();
        let was_online = self.is_online(user_id);
        let h = self.hashing;
        let conns = self
            .online
            .entry(Arc::clone(user_id))
            .or_insert_with(|| Map::with_hasher(h));
        let first = conns.is_empty();
        conns.insert(conn.socket_id, Arc::clone(&conn.outbox));
        if !was_online {
            d.add(self.tell_watchers(user_id, WatchlistEventName::Online));
        }
        if !watchlist.is_empty() {
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for id in watchlist {
                self.watchers
                    .entry(Arc::clone(id))
                    .or_insert_with(|| Map::with_hasher(h))
                    .insert(conn.socket_id, Arc::clone(&conn.outbox));
                if self.is_online(id) {
                    on.push(id.to_string())
                } else {
                    off.push(id.to_string())
                }
            }
            let mut events = Vec::new();
            if !on.is_empty() {
                events.push(WatchlistEvent {
                    name: WatchlistEventName::Online,
                    user_ids: on,
                });
            }
            if !off.is_empty() {
                events.push(WatchlistEvent {
                    name: WatchlistEventName::Offline,
                    user_ids: off,
                });
            }
            d.push(
                &*conn.outbox,
                &ServerFrame::WatchlistEvents { events }.encode(),
            );
        }
        (d, first)
    }

    /// Signs a connection out; the second value is true when it was the
    /// user's last connection on this node.
    pub(crate) fn signout(
        &mut self,
        socket_id: SocketId,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> (Delivery, bool) {
        let mut d = Delivery::default();
        for id in watchlist {
            if let Some(w) = self.watchers.get_mut(id) {
                w.remove(&socket_id);
                if w.is_empty() {
                    self.watchers.remove(id);
                }
            }
        }
        let Some(conns) = self.online.get_mut(user_id) else {
            return (d, false);
        };
        conns.remove(&socket_id);
        if !conns.is_empty() {
            return (d, false);
        }
        self.online.remove(user_id);
        if !self.is_online(user_id) {
            d.add(self.tell_watchers(user_id, WatchlistEventName::Offline));
        }
        (d, true)
    }

    /// Another node says `user_id` is (no longer) signed in there.
    pub(crate) fn set_remote(&mut self, node: &NodeId, user_id: &str, online: bool) -> Delivery {
        let was = self.is_online(user_id);
        if online {
            let nodes = self.remote.entry(Arc::from(user_id)).or_default();
            if !nodes.contains(node) {
                nodes.push(node.clone());
            }
        } else if let Some(nodes) = self.remote.get_mut(user_id) {
            nodes.retain(|n| n != node);
            if nodes.is_empty() {
                self.remote.remove(user_id);
            }
        }
        match (was, self.is_online(user_id)) {
            (false, true) => self.tell_watchers(user_id, WatchlistEventName::Online),
            (true, false) => self.tell_watchers(user_id, WatchlistEventName::Offline),
            _ => Delivery::default(),
        }
    }

    /// Users another node has signed in.
    pub(crate) fn remote_users_of(&self, node: &NodeId) -> Vec<Arc<str>> {
        self.remote
            .iter()
            .filter(|(_, nodes)| nodes.contains(node))
            .map(|(u, _)| Arc::clone(u))
            .collect()
    }

    /// Users signed in on this node.
    pub(crate) fn local_users(&self) -> Vec<String> {
        self.online.keys().map(|u| u.to_string()).collect()
    }

    fn tell_watchers(&self, user_id: &str, name: WatchlistEventName) -> Delivery {
        let mut d = Delivery::default();
        if let Some(watching) = self.watchers.get(user_id) {
            let frame = status_frame(name, vec![user_id.to_owned()]);
            for outbox in watching.values() {
                d.push(&**outbox, &frame);
            }
        }
        d
    }

    pub(crate) fn connections_of(&self, user_id: &str) -> Vec<Arc<dyn Outbox>> {
        self.online
            .get(user_id)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn is_online(&self, user_id: &str) -> bool {
        self.online.contains_key(user_id) || self.remote.contains_key(user_id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.online.is_empty() && self.remote.is_empty() && self.watchers.is_empty()
    }
}
