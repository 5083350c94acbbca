//! Two hubs wired through the cluster seam, as two nodes would be.
#![allow(unused_must_use)]

mod support;

use std::sync::{Arc, Mutex};

use pusher_hub::{ClusterMessage, ClusterSink, Hub, NodeId, Publish};
use pusher_proto::ChannelName;
use pusher_proto::http::InfoRequest;
use support::{Client, config};

/// Collects what a node broadcasts; the test pumps it into the other node.
#[derive(Default)]
struct Wire(Mutex<Vec<(NodeId, ClusterMessage)>>);

impl ClusterSink for Wire {
    fn broadcast(&self, from: NodeId, message: ClusterMessage) {
        self.0.lock().unwrap().push((from, message));
    }
}

struct Pair {
    a: Arc<Hub>,
    b: Arc<Hub>,
    wire_a: Arc<Wire>,
    wire_b: Arc<Wire>,
}

impl Pair {
    fn new() -> Self {
        let (wire_a, wire_b) = (Arc::new(Wire::default()), Arc::new(Wire::default()));
        let a = Arc::new(
            Hub::new(config())
                .with_seed(1)
                .with_cluster(NodeId(1), wire_a.clone()),
        );
        let b = Arc::new(
            Hub::new(config())
                .with_seed(2)
                .with_cluster(NodeId(2), wire_b.clone()),
        );
        Self {
            a,
            b,
            wire_a,
            wire_b,
        }
    }

    /// Delivers every message in flight, both ways.
    fn pump(&self) {
        for (from, m) in std::mem::take(&mut *self.wire_a.0.lock().unwrap()) {
            self.b.handle_remote(from, m, 0);
        }
        for (from, m) in std::mem::take(&mut *self.wire_b.0.lock().unwrap()) {
            self.a.handle_remote(from, m, 0);
        }
    }
}

#[test]
fn a_publish_on_one_node_reaches_subscribers_on_the_other_once() {
    let p = Pair::new();
    let mut on_a = Client::connect(&p.a);
    let mut on_b = Client::connect(&p.b);
    on_a.subscribe("news");
    on_b.subscribe("news");
    on_a.take();
    on_b.take();
    let names = [ChannelName::new("news").unwrap()];
    p.a.publish(
        &Publish {
            channels: &names,
            event: "e",
            data: "d",
            except: None,
            info: InfoRequest::default(),
        },
        0,
    );
    p.pump();
    p.pump(); // remote deliveries are never sent on again
    let frame = r#"{"event":"e","channel":"news","data":"d"}"#;
    assert_eq!(on_a.take(), [frame]);
    assert_eq!(on_b.take(), [frame]);
}

#[test]
fn cache_channels_are_filled_on_every_node() {
    let p = Pair::new();
    let names = [ChannelName::new("cache-c").unwrap()];
    p.a.publish(
        &Publish {
            channels: &names,
            event: "e",
            data: "d",
            except: None,
            info: InfoRequest::default(),
        },
        0,
    );
    p.pump();
    let mut on_b = Client::connect(&p.b);
    on_b.subscribe("cache-c");
    assert_eq!(
        on_b.take()[1],
        r#"{"event":"e","channel":"cache-c","data":"d"}"#
    );
}

#[test]
fn client_events_cross_nodes_but_not_back_to_the_sender() {
    let p = Pair::new();
    let mut sender = Client::connect(&p.a);
    let mut on_b = Client::connect(&p.b);
    sender.subscribe_private("private-x");
    on_b.subscribe_private("private-x");
    sender.take();
    on_b.take();
    sender.send(
        r#"{"event":"client-hi","channel":"private-x","data":"yo"}"#,
        0,
    );
    p.pump();
    assert!(sender.take().is_empty());
    assert_eq!(
        on_b.take(),
        [r#"{"event":"client-hi","channel":"private-x","data":"yo"}"#]
    );
}

#[test]
fn presence_is_cluster_wide_with_member_events_once() {
    let p = Pair::new();
    let mut a1 = Client::connect(&p.a);
    a1.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    p.pump();
    let mut b2 = Client::connect(&p.b);
    b2.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    p.pump();
    a1.take();
    let snap = b2.take();
    assert!(snap[0].contains(r#"\"count\":2"#), "{}", snap[0]);
    // User 1 opens a tab on node B too: nobody hears member_added.
    let mut b1 = Client::connect(&p.b);
    b1.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    p.pump();
    assert!(a1.take().is_empty());
    assert!(b2.take().is_empty());
    // User 1 leaves node A: still on B, so no member_removed anywhere.
    a1.session.close(0);
    p.pump();
    assert!(b2.take().is_empty());
    // And leaves B: now removed, on B's local subscribers.
    b1.session.close(0);
    p.pump();
    assert_eq!(
        b2.take(),
        [
            r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"1\"}"}"#
        ]
    );
    let users = p.a.users(&ChannelName::new("presence-r").unwrap());
    assert_eq!(users, ["2"]);
}

#[test]
fn a_dead_node_s_members_are_removed() {
    let p = Pair::new();
    let mut a1 = Client::connect(&p.a);
    a1.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    let mut b2 = Client::connect(&p.b);
    b2.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    p.pump();
    b2.take();
    // Node A dies without a goodbye; B is told by its adapter.
    std::mem::forget(a1);
    p.b.remove_node(NodeId(1), 0);
    assert_eq!(
        b2.take(),
        [
            r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"1\"}"}"#
        ]
    );
}

#[test]
fn terminate_reaches_the_user_on_every_node() {
    let p = Pair::new();
    let mut a = Client::connect(&p.a);
    let mut b = Client::connect(&p.b);
    a.signin(r#"{"id":"9"}"#);
    b.signin(r#"{"id":"9"}"#);
    p.a.terminate_user("9");
    p.pump();
    assert!(a.out.closed.lock().unwrap().is_some());
    assert!(b.out.closed.lock().unwrap().is_some());
}
