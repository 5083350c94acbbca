//! Cache channels: the last published event is replayed to new
//! subscribers; an empty cache answers `pusher:cache_miss`.

use vask_client::TriggerOptions;

use crate::common::*;

#[tokio::test]
async fn cache_miss_then_replay_of_the_last_event() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let first = connect(server.addr).await;
    let channel = first.subscribe("cache-scores").unwrap();
    let mut events = channel.events();
    assert_eq!(
        next(&mut events).await.name,
        "pusher:subscription_succeeded"
    );
    assert_eq!(next(&mut events).await.name, "pusher:cache_miss");

    for score in ["1-0", "2-0"] {
        publisher
            .trigger(["cache-scores"], "score", score, TriggerOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(next_named(&mut events, "score").await.data, "1-0");
    assert_eq!(next_named(&mut events, "score").await.data, "2-0");

    let late = connect(server.addr).await;
    let channel = late.subscribe("cache-scores").unwrap();
    let mut events = channel.events();
    assert_eq!(
        next(&mut events).await.name,
        "pusher:subscription_succeeded"
    );
    let replay = next(&mut events).await;
    assert_eq!(
        (replay.name.as_str(), replay.data.as_str()),
        ("score", "2-0")
    );

    let info = publisher
        .channel("cache-scores", Some("cache"))
        .await
        .unwrap();
    let cache = info.cache.expect("cached event");
    assert_eq!(cache.data, "2-0");
    assert!(cache.ttl > 0);
    server.shutdown().await;
}
