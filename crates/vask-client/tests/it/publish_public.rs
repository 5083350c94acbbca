//! Publishing on public channels and receiving the events.

use std::time::Duration;

use serde_json::json;
use vask_client::{BatchEvent, TriggerOptions};

use crate::common::*;

#[tokio::test]
async fn a_published_event_reaches_the_subscriber() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect(server.addr).await;
    assert!(sub.socket_id().is_some());

    let channel = sub.subscribe("news").unwrap();
    let mut all = channel.events();
    let mut updates = channel.bind("update");
    within("subscribed", channel.subscribed()).await.unwrap();
    assert!(channel.is_subscribed());
    let first = next(&mut all).await;
    assert_eq!(first.name, "pusher:subscription_succeeded");

    publisher
        .trigger(
            ["news"],
            "update",
            &json!({"n": 1}),
            TriggerOptions::default(),
        )
        .await
        .unwrap();
    // A &str is sent unchanged.
    publisher
        .trigger(["news"], "other", "plain text", TriggerOptions::default())
        .await
        .unwrap();
    let e = next(&mut updates).await;
    assert_eq!((e.channel.as_str(), e.name.as_str()), ("news", "update"));
    assert_eq!(e.data, r#"{"n":1}"#);
    assert_eq!(e.json::<serde_json::Value>().unwrap(), json!({"n": 1}));
    assert_eq!(e.user_id, None);
    let e = next_named(&mut all, "other").await;
    assert_eq!(e.data, "plain text");
    // The filtered stream only had "update".
    assert_quiet(&mut updates, Duration::from_millis(100)).await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn callbacks_run_for_each_event_until_unbound() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect(server.addr).await;
    let channel = sub.subscribe("callbacks").unwrap();
    within("subscribed", channel.subscribed()).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let binding = channel.on("tick", move |e| {
        let _ = tx.send(e.data);
    });
    for i in 0..3 {
        publisher
            .trigger(["callbacks"], "tick", &i, TriggerOptions::default())
            .await
            .unwrap();
    }
    for i in 0..3 {
        assert_eq!(within("callback", rx.recv()).await.unwrap(), i.to_string());
    }
    binding.unbind();
    publisher
        .trigger(["callbacks"], "tick", &9, TriggerOptions::default())
        .await
        .unwrap();
    // Unbound: the callback's sender is dropped with its task.
    assert_eq!(within("callback gone", rx.recv()).await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn socket_id_excludes_the_sender() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let a = connect(server.addr).await;
    let b = connect(server.addr).await;
    let (ca, cb) = (a.subscribe("room").unwrap(), b.subscribe("room").unwrap());
    let (mut ea, mut eb) = (ca.bind("said"), cb.bind("said"));
    within("a", ca.subscribed()).await.unwrap();
    within("b", cb.subscribed()).await.unwrap();

    let options = TriggerOptions {
        socket_id: a.socket_id(),
        info: None,
    };
    publisher
        .trigger(["room"], "said", "hi", options)
        .await
        .unwrap();
    assert_eq!(next(&mut eb).await.data, "hi");
    assert_quiet(&mut ea, Duration::from_millis(150)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn multi_channel_triggers_and_batches() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect(server.addr).await;
    let (x, y) = (sub.subscribe("x").unwrap(), sub.subscribe("y").unwrap());
    let (mut ex, mut ey) = (x.bind("e"), y.bind("e"));
    within("x", x.subscribed()).await.unwrap();
    within("y", y.subscribed()).await.unwrap();

    let r = publisher
        .trigger(
            &["x", "y"][..],
            "e",
            "both",
            TriggerOptions {
                socket_id: None,
                info: Some("subscription_count".into()),
            },
        )
        .await
        .unwrap();
    let counts = r.channels.expect("info asked");
    assert_eq!(counts["x"].subscription_count, Some(1));
    assert_eq!(next(&mut ex).await.data, "both");
    assert_eq!(next(&mut ey).await.data, "both");

    let batch = [
        BatchEvent {
            name: "e".into(),
            data: "one".into(),
            channel: "x".into(),
            socket_id: None,
            info: None,
        },
        BatchEvent {
            name: "e".into(),
            data: "two".into(),
            channel: "y".into(),
            socket_id: None,
            info: Some("subscription_count".into()),
        },
    ];
    let r = publisher.trigger_batch(&batch).await.unwrap();
    let counts = r.batch.expect("info asked");
    assert_eq!(counts[1].subscription_count, Some(1));
    assert_eq!(next(&mut ex).await.data, "one");
    assert_eq!(next(&mut ey).await.data, "two");
    server.shutdown().await;
}

#[tokio::test]
async fn unsubscribing_ends_the_streams_and_leaves_the_channel() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let sub = connect(server.addr).await;
    let channel = sub.subscribe("leaving").unwrap();
    let mut events = channel.events();
    within("subscribed", channel.subscribed()).await.unwrap();
    assert_eq!(sub.channels(), vec!["leaving".to_owned()]);
    assert!(publisher.channel("leaving", None).await.unwrap().occupied);

    channel.unsubscribe();
    assert!(sub.channels().is_empty());
    // What was buffered (subscription_succeeded, the count), then the end.
    let buffered = within("end", async {
        let mut names = Vec::new();
        while let Some(e) = events.recv().await {
            names.push(e.name);
        }
        names
    })
    .await;
    assert_eq!(
        buffered,
        ["pusher:subscription_succeeded", "pusher:subscription_count"]
    );
    within("vacated", async {
        while publisher.channel("leaving", None).await.unwrap().occupied {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(channel.subscribed().await.is_err());
    server.shutdown().await;
}
