//! One node of a cluster, sans-IO: the driver hands it what arrives on the
//! bus and the time; it feeds the app hubs, keeps the membership, and says
//! what to send. The same code runs in the server and in the tests'
//! simulated bus.
//!
//! Order for a driver: [`ClusterNode::bus_up`] when the bus connection is
//! up (and [`ClusterNode::bus_down`] when it is lost); every message that
//! arrives goes to [`ClusterNode::handle`]; call
//! [`ClusterNode::handle_timeout`] at [`ClusterNode::poll_timeout`]; after
//! each call, send everything [`ClusterNode::poll_transmit`] gives. The
//! hubs' own numbered messages come out of the [`ClusterSink`] each hub was
//! given (see [`AppSink`]); send them as they come, in order.

use std::time::Duration;

use crate::time::Millis;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::cluster::{ClusterMessage, ClusterSink, NodeId, Wire};
use crate::effects::Delivery;
use crate::hub::Hub;
use crate::membership::{Membership, MembershipChange};

/// A hub's [`ClusterSink`] that wraps each message into a [`Wire`] for the
/// bus and gives it to `send` (which must not block: queue it).
pub struct AppSink<F> {
    from: NodeId,
    app: String,
    send: F,
}

impl<F: Fn(Wire) + Send + Sync + 'static> AppSink<F> {
    /// Messages of app `app` from node `from`, handed to `send`.
    pub fn new(from: NodeId, app: &str, send: F) -> Self {
        Self {
            from,
            app: app.to_owned(),
            send,
        }
    }
}

impl<F> std::fmt::Debug for AppSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSink")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl<F: Fn(Wire) + Send + Sync + 'static> ClusterSink for AppSink<F> {
    fn send(&self, seq: u64, message: ClusterMessage) {
        (self.send)(Wire::App {
            from: self.from.clone(),
            app: self.app.clone(),
            seq,
            message,
        });
    }
}

/// What a node did with one input, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct NodeOutcome {
    /// Frames queued to local connections.
    pub delivery: Delivery,
    /// Nodes heard from for the first time.
    pub joined: Vec<NodeId>,
    /// Nodes removed (silent past the timeout, or said goodbye).
    pub dead: Vec<NodeId>,
    /// The leader, when it changed.
    pub leader: Option<NodeId>,
    /// Snapshots asked of other nodes.
    pub resyncs: u64,
    /// Messages for an app this node does not host.
    pub unknown_app: u64,
}

/// One node: membership, heartbeats, snapshot requests, and the app hubs.
#[derive(Debug)]
pub struct ClusterNode {
    membership: Membership,
    apps: BTreeMap<String, Arc<Hub>>,
    heartbeat: Duration,
    next_heartbeat: Millis,
    /// Connections per app on each other node, from their heartbeats.
    remote_connections: BTreeMap<String, BTreeMap<NodeId, u64>>,
    /// Snapshots asked and not received yet: (node, app) → when asked.
    asked: BTreeMap<(NodeId, String), Millis>,
    out: VecDeque<Wire>,
}

impl ClusterNode {
    /// Node `me`: a heartbeat every `heartbeat`, others dead after
    /// `node_timeout` of silence.
    pub fn new(me: NodeId, heartbeat: Duration, node_timeout: Duration) -> Self {
        Self {
            membership: Membership::new(me, node_timeout),
            apps: BTreeMap::new(),
            heartbeat: heartbeat.max(Duration::from_millis(1)),
            next_heartbeat: Millis::ZERO,
            remote_connections: BTreeMap::new(),
            asked: BTreeMap::new(),
            out: VecDeque::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        self.membership.me()
    }

    /// The membership as this node sees it.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Hosts app `app` with `hub` (built with [`Hub::with_cluster`] and an
    /// [`AppSink`]).
    pub fn add_app(&mut self, app: &str, hub: Arc<Hub>, now: Millis) {
        let _ = hub.set_leader(self.membership.leader(), now);
        self.apps.insert(app.to_owned(), hub);
    }

    /// Stops hosting app `app` (deleted): messages for it are counted as
    /// for an unknown app. Returns its hub, if it was hosted.
    pub fn remove_app(&mut self, app: &str) -> Option<Arc<Hub>> {
        self.apps.remove(app)
    }

    /// The hub of `app`.
    pub fn hub(&self, app: &str) -> Option<&Arc<Hub>> {
        self.apps.get(app)
    }

    /// The bus connection is up: announce this node and ask every node for
    /// its state (after a reconnect too: whatever was missed is replaced).
    pub fn bus_up(&mut self, now: Millis) {
        if self.membership.is_up() {
            return;
        }
        self.membership.bus_up(now);
        self.next_heartbeat = now;
        self.asked.clear();
        self.out.push_back(Wire::SyncRequest {
            from: self.me().clone(),
            to: None,
            app: None,
        });
    }

    /// The bus connection is lost: keep serving local connections, keep
    /// what is known of the others until the bus is back.
    pub fn bus_down(&mut self) {
        self.membership.bus_down();
    }

    /// Whether this node knows the cluster's state: its bus has been up
    /// for two heartbeats and every snapshot it asked for has arrived.
    pub fn is_synced(&self, now: Millis) -> bool {
        self.asked.is_empty()
            && self
                .membership
                .up_since()
                .is_some_and(|t| now >= t + 2 * self.heartbeat)
    }

    /// Snapshots asked for and not yet received.
    pub fn pending_snapshots(&self) -> usize {
        self.asked.len()
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Wire> {
        self.out.pop_front()
    }

    /// When [`ClusterNode::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Millis {
        self.next_heartbeat
    }

    /// The goodbye to send before shutting down.
    pub fn goodbye(&self) -> Wire {
        Wire::Goodbye {
            from: self.me().clone(),
        }
    }

    /// Heartbeats, and removal of nodes silent past the timeout.
    pub fn handle_timeout(&mut self, now: Millis) -> NodeOutcome {
        let mut outcome = NodeOutcome::default();
        if !self.membership.is_up() {
            self.next_heartbeat = now + self.heartbeat;
            return outcome;
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.heartbeat;
            let apps = self
                .apps
                .iter()
                .filter_map(|(id, hub)| {
                    let seq = hub.cluster_seq();
                    let conns = hub.connection_count() as u64;
                    (seq > 0 || conns > 0).then(|| (id.clone(), (seq, conns)))
                })
                .collect();
            self.out.push_back(Wire::Heartbeat {
                from: self.me().clone(),
                apps,
            });
        }
        let change = self.membership.expire(now);
        self.apply_change(change, now, &mut outcome);
        outcome
    }

    /// One message from the bus.
    pub fn handle(&mut self, wire: Wire, now: Millis) -> NodeOutcome {
        let mut outcome = NodeOutcome::default();
        if wire.from() == self.me() {
            return outcome;
        }
        let change = self.membership.heard(wire.from(), now);
        self.apply_change(change, now, &mut outcome);
        match wire {
            Wire::App {
                from,
                app,
                seq,
                message,
            } => {
                let Some(hub) = self.apps.get(&app) else {
                    outcome.unknown_app += 1;
                    return outcome;
                };
                if let ClusterMessage::Snapshot(_) = message {
                    self.asked.remove(&(from.clone(), app.clone()));
                }
                let r = hub.handle_remote(&from, seq, message, now);
                outcome.delivery.add(r.delivery);
                if r.resync {
                    self.ask(&from, &app, now, &mut outcome);
                }
            }
            Wire::Heartbeat { from, apps } => {
                for (app, (seq, conns)) in apps {
                    let Some(hub) = self.apps.get(&app) else {
                        outcome.unknown_app += 1;
                        continue;
                    };
                    if hub.needs_snapshot(&from, seq) {
                        self.ask(&from, &app, now, &mut outcome);
                    }
                    self.remote_connections
                        .entry(app)
                        .or_default()
                        .insert(from.clone(), conns);
                }
                self.update_connections();
            }
            Wire::SyncRequest { to, app, .. } => {
                if to.as_ref().is_none_or(|t| t == self.me()) {
                    for (id, hub) in &self.apps {
                        if app.as_ref().is_none_or(|a| a == id) {
                            hub.snapshot(now);
                        }
                    }
                }
            }
            Wire::Goodbye { from } => {
                let change = self.membership.remove(&from);
                self.apply_change(change, now, &mut outcome);
            }
            // Usage figures are the driver's to keep (with the wall-clock
            // time the node does not have); here they only show the sender
            // alive.
            Wire::Usage { .. } => {}
            // An observer's (the driver's), like usage.
            Wire::Watch { .. } | Wire::Observed { .. } => {}
        }
        outcome
    }

    /// Asks `from` for a snapshot of `app`, unless just asked.
    fn ask(&mut self, from: &NodeId, app: &str, now: Millis, outcome: &mut NodeOutcome) {
        let key = (from.clone(), app.to_owned());
        if self
            .asked
            .get(&key)
            .is_some_and(|&t| now < t + 2 * self.heartbeat)
        {
            return;
        }
        self.asked.insert(key, now);
        outcome.resyncs += 1;
        self.out.push_back(Wire::SyncRequest {
            from: self.me().clone(),
            to: Some(from.clone()),
            app: Some(app.to_owned()),
        });
    }

    fn apply_change(&mut self, change: MembershipChange, now: Millis, outcome: &mut NodeOutcome) {
        // The dead leave first, then the new leader sends what is left.
        for node in &change.dead {
            for hub in self.apps.values() {
                outcome.delivery.add(hub.remove_node(node, now));
            }
            for per_node in self.remote_connections.values_mut() {
                per_node.remove(node);
            }
            self.asked.retain(|(n, _), _| n != node);
        }
        if !change.dead.is_empty() {
            self.update_connections();
        }
        if let Some(leader) = &change.leader {
            for hub in self.apps.values() {
                outcome.delivery.add(hub.set_leader(leader, now));
            }
        }
        outcome.joined.extend(change.joined);
        outcome.dead.extend(change.dead);
        if change.leader.is_some() {
            outcome.leader = change.leader;
        }
    }

    fn update_connections(&self) {
        for (app, hub) in &self.apps {
            let n = self
                .remote_connections
                .get(app)
                .map_or(0, |m| m.values().sum::<u64>());
            hub.set_remote_connections(n as usize);
        }
    }
}
