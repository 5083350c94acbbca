//! State-machine property test of the cluster: three hubs (and late
//! joiners) on an in-memory bus, random connects, subscribes (presence with
//! the same user on several nodes), unsubscribes, publishes, disconnects,
//! node deaths and late joins. At every quiescent point: every node answers
//! the same as the model for the whole cluster, each presence subscriber
//! saw every member arrive and leave exactly once, publishes arrived exactly
//! once, and the webhooks delivered (by whichever leader) add up to the
//! cluster's state with no transition twice. When everyone has left, every
//! hub is empty.
#![allow(unused_must_use)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use pusher_hub::{Notification, Publish};
use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelName, ServerFrame};
use support::Client;
use support::sim::{HEARTBEAT_MS, Sim, TIMEOUT_MS};

const CHANNELS: [&str; 4] = ["pub-a", "pub-b", "presence-x", "presence-y"];
const MAX_CLIENTS: usize = 8;
const MAX_NODES: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Connect {
        node: usize,
    },
    Subscribe {
        client: usize,
        channel: usize,
        user: u8,
    },
    Unsubscribe {
        client: usize,
        channel: usize,
    },
    Disconnect {
        client: usize,
    },
    Publish {
        node: usize,
        channel: usize,
    },
    Kill {
        node: usize,
    },
    Join,
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..MAX_CLIENTS;
    let node = 0..MAX_NODES;
    let ch = 0..CHANNELS.len();
    prop_oneof![
        3 => node.clone().prop_map(|node| Op::Connect { node }),
        5 => (client.clone(), ch.clone(), 0u8..3)
            .prop_map(|(client, channel, user)| Op::Subscribe { client, channel, user }),
        1 => (client.clone(), ch.clone()).prop_map(|(client, channel)| Op::Unsubscribe { client, channel }),
        1 => client.prop_map(|client| Op::Disconnect { client }),
        2 => (node.clone(), ch).prop_map(|(node, channel)| Op::Publish { node, channel }),
        1 => node.prop_map(|node| Op::Kill { node }),
        1 => Just(Op::Join),
    ]
}

/// One connection, in the model and for real.
struct Conn {
    node: usize,
    client: Client,
    /// channel index → presence user (for presence channels).
    subs: BTreeMap<usize, Option<String>>,
    /// The members it has been told of, per presence channel.
    seen: BTreeMap<String, BTreeSet<String>>,
}

impl Conn {
    /// Reads its frames: member events must each change what it knows.
    fn read(&mut self) -> Vec<ServerFrame> {
        let mut others = Vec::new();
        for f in self.client.out.take_frames() {
            match f {
                ServerFrame::PresenceSubscriptionSucceeded { channel, members } => {
                    self.seen
                        .insert(channel, members.into_iter().map(|m| m.user_id).collect());
                }
                ServerFrame::MemberAdded { channel, member } => {
                    let new = self
                        .seen
                        .entry(channel.clone())
                        .or_default()
                        .insert(member.user_id.clone());
                    assert!(
                        new,
                        "member_added twice for {} on {channel}",
                        member.user_id
                    );
                }
                ServerFrame::MemberRemoved { channel, user_id } => {
                    let known = self
                        .seen
                        .entry(channel.clone())
                        .or_default()
                        .remove(&user_id);
                    assert!(known, "member_removed of unknown {user_id} on {channel}");
                }
                other => others.push(other),
            }
        }
        others
    }
}

struct World {
    sim: Sim,
    conns: Vec<Option<Conn>>,
    published: u64,
}

impl World {
    fn live_nodes(&self) -> Vec<usize> {
        (0..self.sim.nodes.len())
            .filter(|i| self.sim.is_alive(*i))
            .collect()
    }

    fn node(&self, n: usize) -> Option<usize> {
        let live = self.live_nodes();
        (!live.is_empty()).then(|| live[n % live.len()])
    }

    /// What the whole cluster holds, from the model.
    fn expected(&self) -> BTreeMap<String, (u64, BTreeSet<String>)> {
        let mut out: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
        for c in self.conns.iter().flatten() {
            for (ch, user) in &c.subs {
                let e = out.entry(CHANNELS[*ch].to_owned()).or_default();
                e.0 += 1;
                if let Some(u) = user {
                    e.1.insert(u.clone());
                }
            }
        }
        out
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect { node } => {
                let Some(node) = self.node(node) else { return };
                if let Some(slot) = self.conns.iter().position(Option::is_none) {
                    let client = Client::connect(self.sim.hub(node));
                    self.conns[slot] = Some(Conn {
                        node,
                        client,
                        subs: BTreeMap::new(),
                        seen: BTreeMap::new(),
                    });
                }
            }
            Op::Subscribe {
                client,
                channel,
                user,
            } => {
                let Some(c) = self.conns[client].as_mut() else {
                    return;
                };
                if c.subs.contains_key(&channel) {
                    return;
                }
                let name = CHANNELS[channel];
                if name.starts_with("presence-") {
                    let user = format!("u{user}");
                    c.client
                        .subscribe_presence(name, &format!(r#"{{"user_id":"{user}"}}"#));
                    c.subs.insert(channel, Some(user));
                } else {
                    c.client.subscribe(name);
                    c.subs.insert(channel, None);
                }
            }
            Op::Unsubscribe { client, channel } => {
                let Some(c) = self.conns[client].as_mut() else {
                    return;
                };
                if c.subs.remove(&channel).is_some() {
                    let f = format!(
                        r#"{{"event":"pusher:unsubscribe","data":{{"channel":"{}"}}}}"#,
                        CHANNELS[channel]
                    );
                    c.client.send(&f, self.sim.now.as_millis());
                    c.seen.remove(CHANNELS[channel]);
                }
            }
            Op::Disconnect { client } => {
                if let Some(c) = self.conns[client].take() {
                    c.client.session.close(self.sim.now);
                }
            }
            Op::Publish { node, channel } => {
                let Some(node) = self.node(node) else { return };
                self.published += 1;
                let data = format!("m{}", self.published);
                let names = [ChannelName::new(CHANNELS[channel]).unwrap()];
                self.sim.hub(node).publish(
                    &Publish {
                        channels: &names,
                        event: "e",
                        data: &data,
                        except: None,
                        info: InfoRequest::default(),
                    },
                    self.sim.now,
                );
                self.sim.pump();
                for c in self.conns.iter_mut().flatten() {
                    let got: Vec<_> = c
                        .read()
                        .into_iter()
                        .filter(|f| matches!(f, ServerFrame::ChannelEvent(_)))
                        .collect();
                    let want = usize::from(c.subs.contains_key(&channel));
                    assert_eq!(got.len(), want, "publish {data} to {}", CHANNELS[channel]);
                }
            }
            Op::Kill { node } => {
                let live = self.live_nodes();
                if live.len() < 2 {
                    return;
                }
                let node = live[node % live.len()];
                self.sim.kill(node);
                for slot in &mut self.conns {
                    if slot.as_ref().is_some_and(|c| c.node == node) {
                        // Its connections vanish with it.
                        std::mem::forget(slot.take());
                    }
                }
                self.sim.advance(TIMEOUT_MS + 2 * HEARTBEAT_MS);
            }
            Op::Join => {
                if self.sim.nodes.len() < MAX_NODES + 3 {
                    self.sim.add_node();
                    self.sim.advance(3 * HEARTBEAT_MS);
                }
            }
        }
        self.sim.pump();
    }

    fn check(&mut self) {
        let expected = self.expected();
        let info = InfoRequest {
            user_count: true,
            subscription_count: true,
            cache: false,
        };
        for node in self.live_nodes() {
            let hub = self.sim.hub(node);
            let got = hub.channels("", info);
            let want: BTreeMap<_, _> = expected
                .iter()
                .map(|(ch, (n, users))| {
                    let users = ch.starts_with("presence-").then_some(users.len() as u64);
                    (ch.clone(), (users, Some(*n)))
                })
                .collect();
            let got: BTreeMap<_, _> = got
                .into_iter()
                .map(|(ch, c)| (ch, (c.user_count, c.subscription_count)))
                .collect();
            assert_eq!(got, want, "node {node}");
            for (ch, (_, users)) in &expected {
                if ch.starts_with("presence-") {
                    let listed: BTreeSet<String> = hub
                        .users(&ChannelName::new(ch).unwrap())
                        .into_iter()
                        .collect();
                    assert_eq!(&listed, users, "users of {ch} on node {node}");
                }
            }
        }
        // Every presence subscriber knows exactly the cluster's members.
        for c in self.conns.iter_mut().flatten() {
            let _ = c.read();
            for (ch, user) in &c.subs {
                if user.is_some() {
                    let name = CHANNELS[*ch];
                    let want = expected.get(name).map(|e| e.1.clone()).unwrap_or_default();
                    assert_eq!(c.seen.get(name), Some(&want), "a member of {name}");
                }
            }
        }
        // The webhooks add up to the state, each transition once.
        let mut occupied = BTreeSet::new();
        let mut members: BTreeSet<(String, String)> = BTreeSet::new();
        for (_, n) in &self.sim.webhooks {
            match n {
                Notification::ChannelOccupied { channel } => {
                    assert!(
                        occupied.insert(channel.clone()),
                        "occupied twice: {channel}"
                    );
                }
                Notification::ChannelVacated { channel } => {
                    assert!(occupied.remove(channel), "vacated twice: {channel}");
                }
                Notification::MemberAdded { channel, user_id } => {
                    let new = members.insert((channel.clone(), user_id.clone()));
                    assert!(new, "member_added twice: {user_id} on {channel}");
                }
                Notification::MemberRemoved { channel, user_id } => {
                    let known = members.remove(&(channel.clone(), user_id.clone()));
                    assert!(known, "member_removed twice: {user_id} on {channel}");
                }
                _ => {}
            }
        }
        let want_occupied: BTreeSet<String> = expected.keys().cloned().collect();
        assert_eq!(occupied, want_occupied, "webhooks: occupied channels");
        let want_members: BTreeSet<(String, String)> = expected
            .iter()
            .flat_map(|(ch, (_, users))| users.iter().map(move |u| (ch.clone(), u.clone())))
            .collect();
        assert_eq!(members, want_members, "webhooks: members");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_cluster_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut w = World {
            sim: Sim::new(3),
            conns: (0..MAX_CLIENTS).map(|_| None).collect(),
            published: 0,
        };
        for op in ops {
            w.apply(op);
            w.check();
        }
        for slot in &mut w.conns {
            if let Some(c) = slot.take() {
                c.client.session.close(w.sim.now);
            }
        }
        w.sim.settle();
        w.check();
        for node in w.live_nodes() {
            prop_assert!(w.sim.hub(node).is_empty(), "node {} holds state", node);
        }
    }
}
