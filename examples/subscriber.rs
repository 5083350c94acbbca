//! Subscribes to a channel of a local vask-server and prints its events.
//!
//! Run a server (`cargo run -p vask-server`), then:
//! `cargo run -p vask-examples --example subscriber [CHANNEL]`
//! and publish with the `publisher` example.
//!
//! Environment: `VASK_PORT` (default 6001); `VASK_EXIT_AFTER=N` exits with
//! status 0 after N events; `VASK_TIMEOUT=SECS` exits after that long, with
//! status 1 if `VASK_EXIT_AFTER` was set and not reached.

use std::time::Duration;

use vask_client::{ConnectionState, Subscriber, SubscriberConfig};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let channel_name = std::env::args().nth(1).unwrap_or_else(|| "news".into());
    let exit_after: Option<usize> = env("VASK_EXIT_AFTER");
    let timeout = env::<u64>("VASK_TIMEOUT").map(Duration::from_secs);

    let config = SubscriberConfig::new("127.0.0.1", env("VASK_PORT").unwrap_or(6001), "vask-key");
    let subscriber = Subscriber::connect(config).await?;
    println!(
        "connected, socket id {}",
        subscriber.socket_id().unwrap_or_default()
    );

    let mut states = subscriber.state_changes();
    tokio::spawn(async move {
        while let Some(state) = states.recv().await {
            if !matches!(state, ConnectionState::Connected { .. }) {
                println!("connection: {state:?}");
            }
        }
    });

    let channel = subscriber.subscribe(&channel_name)?;
    let mut events = channel.events();
    channel.subscribed().await?;
    println!("subscribed to {channel_name}");

    let receive = async {
        let mut received = 0;
        while let Some(event) = events.recv().await {
            if event.name.starts_with("pusher:") {
                continue;
            }
            println!("{} {}: {}", event.channel, event.name, event.data);
            received += 1;
            if exit_after == Some(received) {
                break;
            }
        }
        received
    };
    let received = match timeout {
        Some(t) => tokio::time::timeout(t, receive).await.ok(),
        None => Some(receive.await),
    };
    subscriber.disconnect().await;
    match (exit_after, received) {
        (Some(n), Some(got)) if got >= n => Ok(()),
        (Some(n), _) => {
            eprintln!("fewer than {n} events before the timeout");
            std::process::exit(1)
        }
        _ => Ok(()),
    }
}
