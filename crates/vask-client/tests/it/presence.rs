//! Presence channels: members, joins and leaves.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn members_joins_and_leaves() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let alice = connect_as(server.addr, &publisher, "alice", &[]).await;
    let room_a = alice.subscribe("presence-room").unwrap();
    let mut events_a = room_a.events();
    within("alice joins", room_a.subscribed()).await.unwrap();
    let ok = next_named(&mut events_a, "pusher:subscription_succeeded").await;
    let v: serde_json::Value = ok.json().unwrap();
    assert_eq!(v["presence"]["count"], 1);
    assert_eq!(v["presence"]["ids"], json!(["alice"]));
    let me = room_a.me().expect("me");
    assert_eq!(me.id, "alice");
    assert_eq!(me.info, Some(json!({"name": "alice"})));

    let bob = connect_as(server.addr, &publisher, "bob", &[]).await;
    let room_b = bob.subscribe("presence-room").unwrap();
    within("bob joins", room_b.subscribed()).await.unwrap();
    let mut ids: Vec<String> = room_b.members().into_iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);

    let added = next_named(&mut events_a, "pusher:member_added").await;
    assert_eq!(
        added.json::<serde_json::Value>().unwrap(),
        json!({"user_id": "bob", "user_info": {"name": "bob"}})
    );
    assert_eq!(room_a.members().len(), 2);

    bob.disconnect().await;
    let removed = next_named(&mut events_a, "pusher:member_removed").await;
    assert_eq!(
        removed.json::<serde_json::Value>().unwrap()["user_id"],
        "bob"
    );
    assert_eq!(room_a.members().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_of_the_same_user_is_one_member() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let watcher = connect_as(server.addr, &publisher, "w", &[]).await;
    let room = watcher.subscribe("presence-tabs").unwrap();
    let mut added = room.bind("pusher:member_added");
    within("w joins", room.subscribed()).await.unwrap();

    let tab1 = connect_as(server.addr, &publisher, "carol", &[]).await;
    let tab2 = connect_as(server.addr, &publisher, "carol", &[]).await;
    within(
        "tab1",
        tab1.subscribe("presence-tabs").unwrap().subscribed(),
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut added).await.json::<serde_json::Value>().unwrap()["user_id"],
        "carol"
    );
    within(
        "tab2",
        tab2.subscribe("presence-tabs").unwrap().subscribed(),
    )
    .await
    .unwrap();
    assert_quiet(&mut added, std::time::Duration::from_millis(150)).await;
    assert_eq!(room.members().len(), 2);
    server.shutdown().await;
}
