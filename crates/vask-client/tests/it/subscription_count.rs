//! `pusher:subscription_count` on apps that enable it.

use crate::common::*;

#[tokio::test]
async fn subscribers_learn_the_subscription_count() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let a = connect(server.addr).await;
    let ca = a.subscribe("counted").unwrap();
    let mut counts = ca.bind("pusher:subscription_count");
    let e = next(&mut counts).await;
    assert_eq!(
        e.json::<serde_json::Value>().unwrap()["subscription_count"],
        1
    );

    let b = connect(server.addr).await;
    let cb = b.subscribe("counted").unwrap();
    within("b", cb.subscribed()).await.unwrap();
    let e = next(&mut counts).await;
    assert_eq!(
        e.json::<serde_json::Value>().unwrap()["subscription_count"],
        2
    );
    assert_eq!(ca.subscription_count(), Some(2));
    let info = publisher
        .channel("counted", Some("subscription_count"))
        .await
        .unwrap();
    assert_eq!(info.subscription_count, Some(2));

    b.disconnect().await;
    let e = next(&mut counts).await;
    assert_eq!(
        e.json::<serde_json::Value>().unwrap()["subscription_count"],
        1
    );
    server.shutdown().await;
}

#[tokio::test]
async fn apps_without_counts_send_none() {
    let mut app = app();
    app.subscription_count = false;
    let server = server(app).await;
    let a = connect(server.addr).await;
    let ca = a.subscribe("uncounted").unwrap();
    let mut counts = ca.bind("pusher:subscription_count");
    within("subscribed", ca.subscribed()).await.unwrap();
    assert_quiet(&mut counts, std::time::Duration::from_millis(150)).await;
    assert_eq!(ca.subscription_count(), None);
    server.shutdown().await;
}
