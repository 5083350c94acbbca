//! An end-to-end encrypted channel round trip in one process: the publisher
//! encrypts with the app's master key, the server relays ciphertext, the
//! subscriber decrypts with the shared secret its authorizer returned.
//!
//! Run a server (`cargo run -p vask-server`), then:
//! `cargo run -p vask-examples --example encrypted`
//! `VASK_PORT` overrides the port 6001; `VASK_MASTER_KEY` (base64, 32
//! bytes) the demo master key. Exits with status 1 if the event does not
//! come back decrypted within 10 seconds.

use std::time::Duration;

use vask_client::{
    AuthorizerError, FnAuthorizer, MasterKey, Publisher, PublisherConfig, Subscriber,
    SubscriberConfig, TriggerOptions,
};

const CHANNEL: &str = "private-encrypted-demo";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("VASK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6001);
    let master_key = match std::env::var("VASK_MASTER_KEY") {
        Ok(b64) => MasterKey::from_base64(&b64)?,
        // A fixed demo key: real apps keep theirs secret, on the app server.
        Err(_) => MasterKey::from_bytes(*b"vask-demo-master-key-32-bytes!!!"),
    };

    let mut config = PublisherConfig::new("1", "vask-key", "vask-secret");
    config.port = port;
    config.encryption_master_key = Some(master_key);
    let publisher = Publisher::new(config)?;

    // The auth endpoint's answer carries the channel's shared secret.
    let app = publisher.clone();
    let authorizer = FnAuthorizer::new(move |socket_id, channel| {
        app.authorize_channel(socket_id, channel, None)
            .map_err(|e| AuthorizerError::new(e.to_string()))
    });
    let subscriber = Subscriber::connect(
        SubscriberConfig::new("127.0.0.1", port, "vask-key").with_authorizer(authorizer),
    )
    .await?;
    let channel = subscriber.subscribe(CHANNEL)?;
    let mut secrets = channel.bind("secret");
    channel.subscribed().await?;
    println!("subscribed to {CHANNEL}");

    let message =
        serde_json::json!({"launch_code": "0000", "note": "only subscribers can read this"});
    publisher
        .trigger([CHANNEL], "secret", &message, TriggerOptions::default())
        .await?;
    println!("published (encrypted): {message}");

    match tokio::time::timeout(Duration::from_secs(10), secrets.recv()).await {
        Ok(Some(event)) => {
            println!("received (decrypted): {}", event.data);
            let back: serde_json::Value = event.json()?;
            subscriber.disconnect().await;
            if back != message {
                eprintln!("the decrypted event differs from what was sent");
                std::process::exit(1);
            }
            Ok(())
        }
        _ => {
            eprintln!("no decrypted event within 10 s");
            std::process::exit(1);
        }
    }
}
