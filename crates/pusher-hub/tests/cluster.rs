//! Several hubs as several nodes on an in-memory bus (tests/support/sim.rs):
//! what must hold across nodes, and what must hold when nodes die, join
//! late, or lose the bus.
#![allow(unused_must_use)]

mod support;

use pusher_hub::{Millis, Notification, Publish};
use pusher_proto::ChannelName;
use pusher_proto::http::InfoRequest;
use support::sim::{HEARTBEAT_MS, Sim, TIMEOUT_MS};
use support::{Client, config};

fn publish(hub: &pusher_hub::Hub, channel: &str, data: &str) {
    let names = [ChannelName::new(channel).unwrap()];
    hub.publish(
        &Publish {
            channels: &names,
            event: "e",
            data,
            except: None,
            info: InfoRequest::default(),
        },
        Millis::ZERO,
    );
}

fn counts() -> InfoRequest {
    InfoRequest {
        user_count: true,
        subscription_count: true,
        cache: false,
    }
}

fn occupied(channel: &str) -> Notification {
    Notification::ChannelOccupied {
        channel: channel.into(),
    }
}

fn vacated(channel: &str) -> Notification {
    Notification::ChannelVacated {
        channel: channel.into(),
    }
}

fn added(channel: &str, user: &str) -> Notification {
    Notification::MemberAdded {
        channel: channel.into(),
        user_id: user.into(),
    }
}

fn removed(channel: &str, user: &str) -> Notification {
    Notification::MemberRemoved {
        channel: channel.into(),
        user_id: user.into(),
    }
}

const REMOVED_1: &str = r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"1\"}"}"#;

#[test]
fn a_publish_on_one_node_reaches_subscribers_on_every_node_once() {
    let mut sim = Sim::new(3);
    let mut clients: Vec<Client> = (0..3).map(|i| Client::connect(sim.hub(i))).collect();
    for c in &mut clients {
        c.subscribe("news");
    }
    sim.pump();
    for c in &clients {
        c.take();
    }
    publish(sim.hub(0), "news", "d");
    sim.pump();
    let frame = r#"{"event":"e","channel":"news","data":"d"}"#;
    for c in &clients {
        assert_eq!(c.take(), [frame]);
    }
    // Exclusion works whichever node the excluded socket is on.
    let names = [ChannelName::new("news").unwrap()];
    sim.hub(1).publish(
        &Publish {
            channels: &names,
            event: "e",
            data: "x",
            except: Some(clients[2].session.socket_id()),
            info: InfoRequest::default(),
        },
        Millis::ZERO,
    );
    sim.pump();
    assert_eq!(clients[0].take().len(), 1);
    assert_eq!(clients[1].take().len(), 1);
    assert!(clients[2].take().is_empty());
}

#[test]
fn cache_channels_are_filled_on_every_node_and_a_late_node_gets_them() {
    let mut sim = Sim::new(2);
    publish(sim.hub(0), "cache-c", "d");
    sim.pump();
    let mut on_b = Client::connect(sim.hub(1));
    on_b.subscribe("cache-c");
    assert_eq!(
        on_b.take()[1],
        r#"{"event":"e","channel":"cache-c","data":"d"}"#
    );
    let late = sim.add_node();
    sim.settle();
    let mut on_late = Client::connect(sim.hub(late));
    on_late.subscribe("cache-c");
    assert_eq!(
        on_late.take()[1],
        r#"{"event":"e","channel":"cache-c","data":"d"}"#
    );
}

#[test]
fn client_events_cross_nodes_but_not_back_to_the_sender() {
    let mut sim = Sim::new(2);
    let mut sender = Client::connect(sim.hub(0));
    let mut on_b = Client::connect(sim.hub(1));
    sender.subscribe_private("private-x");
    on_b.subscribe_private("private-x");
    sim.pump();
    sender.take();
    on_b.take();
    sender.send(
        r#"{"event":"client-hi","channel":"private-x","data":"yo"}"#,
        0,
    );
    sim.pump();
    assert!(sender.take().is_empty());
    assert_eq!(
        on_b.take(),
        [r#"{"event":"client-hi","channel":"private-x","data":"yo"}"#]
    );
    // The client_event webhook is sent once, by the sender's node.
    let client_events: Vec<_> = sim
        .webhooks
        .iter()
        .filter(|(_, n)| matches!(n, Notification::ClientEvent { .. }))
        .collect();
    assert_eq!(client_events.len(), 1);
    assert_eq!(client_events[0].0, 0);
}

#[test]
fn presence_is_cluster_wide_with_member_events_and_webhooks_once() {
    let mut sim = Sim::new(2);
    let mut a1 = Client::connect(sim.hub(0));
    a1.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    sim.pump();
    let mut b2 = Client::connect(sim.hub(1));
    b2.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    sim.pump();
    let snap = b2.take();
    assert!(snap[0].contains(r#"\"count\":2"#), "{}", snap[0]);
    assert_eq!(a1.take().len(), 2, "succeeded, then member_added for 2");
    // User 1 opens a tab on node B too: nobody hears member_added.
    let mut b1 = Client::connect(sim.hub(1));
    b1.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    sim.pump();
    assert!(a1.take().is_empty());
    assert!(b2.take().is_empty());
    // User 1 leaves node A: still on B, so no member_removed anywhere.
    a1.session.close(Millis::ZERO);
    sim.pump();
    assert!(b2.take().is_empty());
    // And leaves B: now removed.
    b1.session.close(Millis::ZERO);
    sim.pump();
    assert_eq!(b2.take(), [REMOVED_1]);
    for i in 0..2 {
        assert_eq!(
            sim.hub(i).users(&ChannelName::new("presence-r").unwrap()),
            ["2"]
        );
    }
    assert_eq!(
        sim.take_webhooks(),
        [
            occupied("presence-r"),
            added("presence-r", "1"),
            added("presence-r", "2"),
            removed("presence-r", "1"),
        ]
    );
    b2.session.close(Millis::ZERO);
    sim.pump();
    assert_eq!(
        sim.take_webhooks(),
        [removed("presence-r", "2"), vacated("presence-r")]
    );
    sim.settle();
    assert!(sim.hub(0).is_empty() && sim.hub(1).is_empty());
}

#[test]
fn queries_answer_for_the_whole_cluster() {
    let mut c = config();
    c.subscription_count = true;
    let _ = c;
    let mut sim = Sim::new(3);
    let mut a = Client::connect(sim.hub(0));
    let mut b = Client::connect(sim.hub(1));
    let mut b_again = Client::connect(sim.hub(1));
    a.subscribe_presence("presence-room", r#"{"user_id":"u1"}"#);
    b.subscribe_presence("presence-room", r#"{"user_id":"u2"}"#);
    b_again.subscribe_presence("presence-room", r#"{"user_id":"u1"}"#);
    a.subscribe("news");
    sim.pump();
    for i in 0..3 {
        let hub = sim.hub(i);
        let all = hub.channels("", counts());
        assert_eq!(all.len(), 2, "node {i}: {all:?}");
        let room = &all["presence-room"];
        assert_eq!(room.user_count, Some(2));
        assert_eq!(room.subscription_count, Some(3));
        let info = hub.channel_info(&ChannelName::new("news").unwrap(), counts(), Millis::ZERO);
        assert!(info.occupied);
        assert_eq!(info.subscription_count, Some(1));
    }
}

#[test]
fn a_killed_node_is_removed_everywhere_with_webhooks_once() {
    let mut sim = Sim::new(3);
    let mut on_2 = Client::connect(sim.hub(2));
    on_2.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    on_2.subscribe("lonely");
    let mut on_1 = Client::connect(sim.hub(1));
    on_1.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    sim.pump();
    on_1.take();
    sim.take_webhooks();
    sim.kill(2);
    std::mem::forget(on_2);
    sim.advance(TIMEOUT_MS + HEARTBEAT_MS);
    assert_eq!(on_1.take(), [REMOVED_1]);
    let mut hooks = sim.take_webhooks();
    hooks.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(hooks, [vacated("lonely"), removed("presence-r", "1")]);
    for i in 0..2 {
        let all = sim.hub(i).channels("", counts());
        assert_eq!(all.keys().collect::<Vec<_>>(), ["presence-r"]);
        assert_eq!(all["presence-r"].subscription_count, Some(1));
    }
}

#[test]
fn a_dead_leader_s_undelivered_webhooks_are_sent_by_the_next() {
    let mut sim = Sim::new(3);
    // Node 0 leads. Something happens on node 2 and node 0 dies before it
    // hears of it: node 1, the next leader, must send it.
    sim.kill(0);
    let mut on_2 = Client::connect(sim.hub(2));
    on_2.subscribe("c");
    sim.pump();
    assert!(sim.take_webhooks().is_empty(), "nobody sent it yet");
    sim.advance(TIMEOUT_MS + HEARTBEAT_MS);
    let hooks: Vec<_> = std::mem::take(&mut sim.webhooks);
    assert_eq!(hooks, [(1, occupied("c"))]);
    // What node 0 had delivered is not sent again.
    on_2.session.close(Millis::ZERO);
    sim.pump();
    assert_eq!(sim.take_webhooks(), [vacated("c")]);
}

#[test]
fn a_late_node_gets_presence_counts_and_users_before_it_answers() {
    let mut sim = Sim::new(2);
    let mut a = Client::connect(sim.hub(0));
    a.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    a.signin(r#"{"id":"1"}"#);
    sim.pump();
    let late = sim.add_node();
    assert!(!sim.nodes[late].node.is_synced(sim.now));
    sim.advance(3 * HEARTBEAT_MS);
    assert!(sim.nodes[late].node.is_synced(sim.now));
    let hub = sim.hub(late);
    assert_eq!(hub.users(&ChannelName::new("presence-r").unwrap()), ["1"]);
    assert!(hub.is_online("1"));
    let mut l = Client::connect(hub);
    l.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    assert!(l.take()[0].contains(r#"\"count\":2"#));
}

#[test]
fn a_lost_message_is_repaired_by_a_snapshot() {
    let mut sim = Sim::new(2);
    // Node 1 is not the leader: nothing follows its message, only
    // heartbeats announce that it was sent.
    let mut b = Client::connect(sim.hub(1));
    sim.drop_next = 1;
    b.subscribe("news");
    sim.pump();
    assert!(sim.hub(0).channels("", counts()).is_empty());
    sim.advance(3 * HEARTBEAT_MS);
    let all = sim.hub(0).channels("", counts());
    assert_eq!(all["news"].subscription_count, Some(1));
    assert_eq!(sim.take_webhooks(), [occupied("news")]);
    // A gap seen in the numbers is repaired at once.
    sim.drop_next = 1;
    b.subscribe("other");
    b.subscribe("third");
    sim.pump();
    assert_eq!(sim.hub(0).channels("", counts()).len(), 3);
}

#[test]
fn losing_the_bus_kills_nobody_and_the_state_converges_after() {
    let mut sim = Sim::new(2);
    let mut a = Client::connect(sim.hub(0));
    a.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    let mut b = Client::connect(sim.hub(1));
    b.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    sim.pump();
    a.take();
    b.take();
    sim.take_webhooks();
    sim.set_up(1, false);
    sim.set_up(0, false);
    sim.advance(4 * TIMEOUT_MS);
    assert!(
        a.take().is_empty() && b.take().is_empty(),
        "no member_removed"
    );
    // Meanwhile, on node 1, user 2 leaves and user 3 comes.
    b.session.close(Millis::ZERO);
    let mut b3 = Client::connect(sim.hub(1));
    b3.subscribe_presence("presence-r", r#"{"user_id":"3"}"#);
    sim.set_up(0, true);
    sim.set_up(1, true);
    sim.settle();
    let events = a.take();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.contains("member_removed") && e.contains(r#"\"2\""#))
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("member_added") && e.contains(r#"\"3\""#))
    );
    let mut users = sim.hub(0).users(&ChannelName::new("presence-r").unwrap());
    users.sort();
    assert_eq!(users, ["1", "3"]);
    let mut hooks = sim.take_webhooks();
    hooks.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(
        hooks,
        [added("presence-r", "3"), removed("presence-r", "2")]
    );
}

#[test]
fn terminate_and_watchlists_reach_every_node() {
    let mut sim = Sim::new(2);
    let mut watcher = Client::connect(sim.hub(0));
    watcher.signin(r#"{"id":"w","watchlist":["9"]}"#);
    sim.pump();
    assert!(watcher.take().iter().any(|f| f.contains("offline")));
    let mut nine = Client::connect(sim.hub(1));
    nine.signin(r#"{"id":"9"}"#);
    sim.pump();
    let frames = watcher.take();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].contains("online") && frames[0].contains(r#"\"9\""#));
    sim.hub(0).terminate_user("9");
    sim.pump();
    assert!(nine.out.closed.lock().unwrap().is_some());
    nine.session.close(Millis::ZERO);
    sim.pump();
    assert!(watcher.take()[0].contains("offline"));
}

#[test]
fn the_connection_quota_counts_every_node() {
    let mut sim = Sim::with_config(2, || {
        let mut c = config();
        c.limits.max_connections = Some(2);
        c
    });
    let _a = Client::connect(sim.hub(0));
    let _b = Client::connect(sim.hub(1));
    sim.advance(2 * HEARTBEAT_MS);
    let out = std::sync::Arc::new(support::Recorder::default());
    assert!(sim.hub(0).connect(out, Millis::ZERO).is_err());
}

#[test]
fn subscription_counts_and_cache_misses_are_cluster_wide() {
    let mut sim = Sim::with_config(2, || {
        let mut c = config();
        c.subscription_count = true;
        c
    });
    let mut a = Client::connect(sim.hub(0));
    a.subscribe("cache-x");
    sim.pump();
    let mut b = Client::connect(sim.hub(1));
    b.subscribe("cache-x");
    sim.pump();
    let last = a.take().pop().unwrap();
    assert!(last.contains(r#"\"subscription_count\":2"#), "{last}");
    let misses = sim
        .take_webhooks()
        .into_iter()
        .filter(|n| matches!(n, Notification::CacheMiss { .. }))
        .count();
    assert_eq!(misses, 1, "a cache miss is reported once for the cluster");
}

#[test]
fn a_large_state_travels_in_parts_and_a_lost_part_is_asked_again() {
    let mut sim = Sim::new(1);
    let info = format!(r#"{{"bio":"{}"}}"#, "x".repeat(1500));
    let mut clients = Vec::new();
    for ch in 0..40 {
        for u in 0..20 {
            let mut c = Client::connect(sim.hub(0));
            let data = format!(r#"{{"user_id":"u{u}","user_info":{info}}}"#);
            c.subscribe_presence(&format!("presence-{ch}"), &data);
            clients.push(c);
        }
    }
    sim.pump();
    // The late node loses the second part of the first snapshot it gets.
    let mut seen = 0;
    sim.drop_if = Some(Box::new(move |w| {
        if let pusher_hub::Wire::App {
            message: pusher_hub::ClusterMessage::Snapshot(s),
            ..
        } = w
            && s.part == 1
        {
            seen += 1;
            return seen == 1;
        }
        false
    }));
    let late = sim.add_node();
    sim.advance(4 * HEARTBEAT_MS);
    let all = sim.hub(late).channels("", counts());
    assert_eq!(all.len(), 40);
    assert!(all.values().all(|c| c.user_count == Some(20)));
    assert!(sim.nodes[late].node.is_synced(sim.now));
}
