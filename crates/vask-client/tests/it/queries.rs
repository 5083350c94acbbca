//! Channel queries of the HTTP API.

use vask_client::ApiError;

use crate::common::*;

#[tokio::test]
async fn channels_channel_and_users() {
    let server = server(app()).await;
    let publisher = publisher(server.addr);
    let a = connect_as(server.addr, &publisher, "a", &[]).await;
    let b = connect_as(server.addr, &publisher, "b", &[]).await;
    for sub in [&a, &b] {
        within(
            "presence",
            sub.subscribe("presence-lobby").unwrap().subscribed(),
        )
        .await
        .unwrap();
    }
    within("public", a.subscribe("feed").unwrap().subscribed())
        .await
        .unwrap();

    let all = publisher.channels(None, None).await.unwrap();
    let names: Vec<&str> = all.channels.keys().map(String::as_str).collect();
    assert_eq!(names, ["feed", "presence-lobby"]);

    let presence = publisher
        .channels(Some("presence-"), Some("user_count"))
        .await
        .unwrap();
    assert_eq!(presence.channels.len(), 1);
    assert_eq!(presence.channels["presence-lobby"].user_count, Some(2));

    let lobby = publisher
        .channel("presence-lobby", Some("user_count"))
        .await
        .unwrap();
    assert!(lobby.occupied);
    assert_eq!(lobby.user_count, Some(2));
    let empty = publisher.channel("nobody-here", None).await.unwrap();
    assert!(!empty.occupied);

    let mut users = publisher.users("presence-lobby").await.unwrap();
    users.sort();
    assert_eq!(users, ["a", "b"]);

    let err = publisher
        .channels(None, Some("user_count"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
    let err = publisher.users("feed").await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
    server.shutdown().await;
}
