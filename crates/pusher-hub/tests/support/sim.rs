//! A cluster on an in-memory bus: several nodes (one app each), every
//! message delivered in order to every other node whose bus is up, virtual
//! time. Webhooks are "delivered" as soon as a node notifies them, as a
//! webhook sender that never fails would.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use pusher_hub::{AppSink, ClusterNode, Hub, HubConfig, Millis, NodeId, Notification, Wire};

use super::{Notes, config};

pub const HEARTBEAT_MS: u64 = 1000;
pub const TIMEOUT_MS: u64 = 5000;

pub struct SimNode {
    pub node: ClusterNode,
    pub hub: Arc<Hub>,
    pub notes: Arc<Notes>,
    /// Cleared when the node is killed: what it still says goes nowhere.
    alive: Arc<AtomicBool>,
    /// Whether its bus connection is up.
    pub up: bool,
}

type Bus = Arc<Mutex<VecDeque<Wire>>>;
type Filter = Box<dyn FnMut(&Wire) -> bool>;

pub struct Sim {
    pub nodes: Vec<SimNode>,
    bus: Bus,
    pub now: Millis,
    /// Every webhook delivered, by whom.
    pub webhooks: Vec<(usize, Notification)>,
    /// The next this many messages are lost (a lossy bus).
    pub drop_next: usize,
    /// Messages for which this says true are lost.
    pub drop_if: Option<Filter>,
    config: fn() -> HubConfig,
}

impl Sim {
    pub fn new(n: usize) -> Self {
        Self::with_config(n, config)
    }

    pub fn with_config(n: usize, config: fn() -> HubConfig) -> Self {
        let mut sim = Self {
            nodes: Vec::new(),
            bus: Arc::new(Mutex::new(VecDeque::new())),
            now: Millis::ZERO,
            webhooks: Vec::new(),
            drop_next: 0,
            drop_if: None,
            config,
        };
        for _ in 0..n {
            sim.add_node();
        }
        sim.settle();
        sim
    }

    /// A new node (names sort in creation order: node 0 leads).
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let me = NodeId::new(&format!("n{i:02}"), 1);
        let alive = Arc::new(AtomicBool::new(true));
        let (bus, flag) = (self.bus.clone(), alive.clone());
        let sink = AppSink::new(me.clone(), "1", move |w| {
            if flag.load(Ordering::SeqCst) {
                bus.lock().unwrap().push_back(w);
            }
        });
        let notes = Arc::new(Notes::default());
        let hub = Arc::new(
            Hub::new((self.config)())
                .with_seed(i as u64 + 1)
                .with_notifications(notes.clone())
                .with_cluster(me.clone(), Arc::new(sink)),
        );
        let mut node = ClusterNode::new(
            me,
            Duration::from_millis(HEARTBEAT_MS),
            Duration::from_millis(TIMEOUT_MS),
        );
        node.add_app("1", hub.clone(), self.now);
        node.bus_up(self.now);
        self.nodes.push(SimNode {
            node,
            hub,
            notes,
            alive,
            up: true,
        });
        self.pump();
        i
    }

    pub fn hub(&self, i: usize) -> &Arc<Hub> {
        &self.nodes[i].hub
    }

    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].alive.load(Ordering::SeqCst)
    }

    /// The node dies at once: no goodbye, nothing more from it.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].alive.store(false, Ordering::SeqCst);
    }

    /// Its bus connection goes down (`false`) or comes back.
    pub fn set_up(&mut self, i: usize, up: bool) {
        self.nodes[i].up = up;
        if up {
            self.nodes[i].node.bus_up(self.now);
        } else {
            self.nodes[i].node.bus_down();
        }
        self.pump();
    }

    /// Delivers everything in flight, and what that causes, until quiet.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            self.collect();
            let Some(w) = self.bus.lock().unwrap().pop_front() else {
                return;
            };
            if self.drop_next > 0 {
                self.drop_next -= 1;
                continue;
            }
            if self.drop_if.as_mut().is_some_and(|f| f(&w)) {
                continue;
            }
            if std::env::var("SIM_DEBUG").is_ok() {
                eprintln!("{:?} {w:?}", self.now);
            }
            for n in &mut self.nodes {
                if n.alive.load(Ordering::SeqCst) && n.up && n.node.me() != w.from() {
                    let _ = n.node.handle(w.clone(), self.now);
                }
            }
        }
        panic!("the bus never went quiet");
    }

    /// Moves node-level messages to the bus and delivers webhooks.
    fn collect(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let alive = n.alive.load(Ordering::SeqCst);
            while let Some(w) = n.node.poll_transmit() {
                if alive && n.up {
                    self.bus.lock().unwrap().push_back(w);
                }
            }
            let notes = n.notes.take();
            if alive && !notes.is_empty() {
                n.hub.webhook_delivered(&notes, self.now);
                self.webhooks.extend(notes.into_iter().map(|x| (i, x)));
            }
        }
    }

    /// Time passes: heartbeats, timeouts, and the messages they cause.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        while self.now < end {
            self.now = (self.now + Duration::from_millis(250)).min(end);
            for n in &mut self.nodes {
                if n.alive.load(Ordering::SeqCst) {
                    let _ = n.node.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }

    /// Long enough for heartbeats to be heard, snapshots to arrive and the
    /// dead to be removed.
    pub fn settle(&mut self) {
        self.advance(TIMEOUT_MS + 2 * HEARTBEAT_MS);
    }

    /// Webhooks delivered so far, taken.
    pub fn take_webhooks(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.webhooks)
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }
}
