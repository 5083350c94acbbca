//! Signed-in users and watchlists.

use std::sync::Arc;

use bytes::Bytes;
use pusher_proto::{ServerFrame, SocketId, WatchlistEvent, WatchlistEventName};

use crate::channel::Map;
use crate::effects::{Delivery, Outbox};
use crate::hub::Conn;

type Conns = Map<SocketId, Arc<dyn Outbox>>;

#[derive(Default)]
pub(crate) struct Users {
    /// User id → its signed-in connections.
    online: Map<Arc<str>, Conns>,
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
    pub(crate) fn signin(
        &mut self,
        conn: &Conn,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> Delivery {
        let mut d = Delivery::default();
        let conns = self.online.entry(Arc::clone(user_id)).or_default();
        let first = conns.is_empty();
        conns.insert(conn.socket_id, Arc::clone(&conn.outbox));
        if first && let Some(watching) = self.watchers.get(user_id) {
            let frame = status_frame(WatchlistEventName::Online, vec![user_id.to_string()]);
            for outbox in watching.values() {
                d.push(&**outbox, &frame);
            }
        }
        if !watchlist.is_empty() {
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for id in watchlist {
                self.watchers
                    .entry(Arc::clone(id))
                    .or_default()
                    .insert(conn.socket_id, Arc::clone(&conn.outbox));
                if self.online.contains_key(id) {
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
        d
    }

    pub(crate) fn signout(
        &mut self,
        socket_id: SocketId,
        user_id: &Arc<str>,
        watchlist: &[Arc<str>],
    ) -> Delivery {
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
            return d;
        };
        conns.remove(&socket_id);
        if conns.is_empty() {
            self.online.remove(user_id);
            if let Some(watching) = self.watchers.get(user_id) {
                let frame = status_frame(WatchlistEventName::Offline, vec![user_id.to_string()]);
                for outbox in watching.values() {
                    d.push(&**outbox, &frame);
                }
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
        self.online.contains_key(user_id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.online.is_empty() && self.watchers.is_empty()
    }
}
