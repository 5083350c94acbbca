//! Presence channels: the member list, joins and leaves, `me`.

use pusher_proto::{Member, RawJson, ServerFrame};
use serde_json::json;

use super::*;
use crate::error::SubscribeFailure;

const ROOM: &str = "presence-room";

fn member(id: &str, info: Option<&str>) -> Member {
    Member {
        user_id: id.into(),
        user_info: info.map(|i| RawJson::from_json(i).unwrap()),
    }
}

/// Connected and subscribed to [`ROOM`] as `me`, with `alice` there first.
fn in_the_room() -> Sim {
    let mut sim = Sim::connected(config());
    sim.core.subscribe(ROOM).unwrap();
    sim.authorize(
        &socket(1),
        ROOM,
        Some(r#"{"user_id":"me","user_info":{"name":"Me"}}"#),
    );
    sim.drain();
    sim.receive(&ServerFrame::PresenceSubscriptionSucceeded {
        channel: ROOM.into(),
        members: vec![
            member("alice", Some(r#"{"name":"Alice"}"#)),
            member("me", Some(r#"{"name":"Me"}"#)),
        ],
    });
    sim
}

fn ids(sim: &Sim) -> Vec<String> {
    sim.core.members(ROOM).into_iter().map(|m| m.id).collect()
}

#[test]
fn the_member_list_comes_with_subscription_succeeded() {
    let mut sim = in_the_room();
    let events = sim.events();
    assert_eq!(statuses(&events), [(ROOM.into(), SubStatus::Subscribed)]);
    let (_, name, data) = &channel_events(&events)[0];
    assert_eq!(name, "pusher:subscription_succeeded");
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        data,
        json!({"presence": {
            "ids": ["alice", "me"],
            "hash": {"alice": {"name": "Alice"}, "me": {"name": "Me"}},
            "count": 2
        }})
    );
    assert_eq!(ids(&sim), ["alice", "me"]);
    let me = sim.core.me(ROOM).unwrap();
    assert_eq!(
        (me.id.as_str(), me.info),
        ("me", Some(json!({"name": "Me"})))
    );
}

#[test]
fn members_join_change_and_leave() {
    let mut sim = in_the_room();
    sim.drain();

    sim.receive(&ServerFrame::MemberAdded {
        channel: ROOM.into(),
        member: member("bob", Some(r#"{"name":"Bob"}"#)),
    });
    // A known member joining again (another tab) updates it in place.
    sim.receive(&ServerFrame::MemberAdded {
        channel: ROOM.into(),
        member: member("alice", Some(r#"{"name":"Alice B."}"#)),
    });
    assert_eq!(ids(&sim), ["alice", "me", "bob"]);
    sim.receive(&ServerFrame::MemberRemoved {
        channel: ROOM.into(),
        user_id: "alice".into(),
    });
    // Someone never seen: the listeners get the id alone.
    sim.receive(&ServerFrame::MemberRemoved {
        channel: ROOM.into(),
        user_id: "ghost".into(),
    });
    assert_eq!(ids(&sim), ["me", "bob"]);

    let events: Vec<(String, String)> = channel_events(&sim.events())
        .into_iter()
        .map(|(_, name, data)| (name, data))
        .collect();
    assert_eq!(
        events,
        [
            (
                "pusher:member_added".into(),
                r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#.into()
            ),
            (
                "pusher:member_added".into(),
                r#"{"user_id":"alice","user_info":{"name":"Alice B."}}"#.into()
            ),
            (
                "pusher:member_removed".into(),
                r#"{"user_id":"alice","user_info":{"name":"Alice B."}}"#.into()
            ),
            (
                "pusher:member_removed".into(),
                r#"{"user_id":"ghost"}"#.into()
            ),
        ]
    );
}

#[test]
fn a_resubscription_replaces_the_member_list() {
    let mut sim = in_the_room();
    sim.advance(std::time::Duration::from_secs(5));
    sim.close(4200);
    sim.open(2);
    sim.authorize(&socket(2), ROOM, Some(r#"{"user_id":"me"}"#));
    sim.receive(&ServerFrame::PresenceSubscriptionSucceeded {
        channel: ROOM.into(),
        members: vec![member("me", None)],
    });
    assert_eq!(ids(&sim), ["me"]);
    assert_eq!(sim.core.me(ROOM).unwrap().info, None);
}

#[test]
fn a_presence_channel_without_channel_data_fails() {
    let mut sim = Sim::connected(config());
    sim.core.subscribe(ROOM).unwrap();
    sim.drain();
    sim.authorize(&socket(1), ROOM, None);
    assert!(sim.transmits().is_empty());
    assert!(matches!(
        &statuses(&sim.events())[..],
        [(_, SubStatus::Failed(SubscribeFailure::Authorizer(_)))]
    ));
    assert!(sim.core.members(ROOM).is_empty());
    assert!(sim.core.me(ROOM).is_none());
}
