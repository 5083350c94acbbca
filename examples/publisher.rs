//! Publishes a few events through the HTTP API of a local vask-server, then
//! asks which channels are occupied.
//!
//! Run a server (`cargo run -p vask-server`), then:
//! `cargo run -p vask-examples --example publisher [CHANNEL]`
//! (`VASK_PORT` overrides the port 6001; the default app is id `1`, key
//! `vask-key`, secret `vask-secret`).

use vask_client::{Publisher, PublisherConfig, TriggerOptions};

fn port() -> u16 {
    std::env::var("VASK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6001)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let channel = std::env::args().nth(1).unwrap_or_else(|| "news".into());
    let mut config = PublisherConfig::new("1", "vask-key", "vask-secret");
    config.port = port();
    let publisher = Publisher::new(config)?;

    for n in 1..=3 {
        let data = serde_json::json!({"n": n, "text": format!("update {n}")});
        let response = publisher
            .trigger(
                [channel.as_str()],
                "update",
                &data,
                TriggerOptions {
                    socket_id: None,
                    info: Some("subscription_count".into()),
                },
            )
            .await?;
        let subscribers = response
            .channels
            .and_then(|c| c.get(&channel).and_then(|c| c.subscription_count))
            .unwrap_or(0);
        println!("published update {n} to {channel} ({subscribers} subscribers)");
    }

    let occupied = publisher.channels(None, None).await?;
    println!(
        "occupied channels: {:?}",
        occupied.channels.keys().collect::<Vec<_>>()
    );
    Ok(())
}
