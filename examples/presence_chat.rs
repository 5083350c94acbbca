//! A terminal chat on a presence channel: lines typed are sent as client
//! events to everyone else in the room; joins and leaves are shown.
//!
//! Run a server (`cargo run -p vask-server`), then in two terminals:
//! `cargo run -p vask-examples --example presence_chat -- alice`
//! `cargo run -p vask-examples --example presence_chat -- bob`
//! Type `/who` for the member list, `/quit` (or end of input) to leave.
//! `VASK_PORT` overrides the port 6001.
//!
//! For the demo the auth is signed in-process with the development app's
//! secret; a real client asks its app's auth endpoint (`HttpAuthorizer`).

use vask_client::{AuthorizerError, Channel, FnAuthorizer, Publisher, PublisherConfig};
use vask_client::{Subscriber, SubscriberConfig};

const ROOM: &str = "presence-chat";

fn show_members(channel: &Channel) {
    let names: Vec<String> = channel
        .members()
        .into_iter()
        .map(|m| match m.info.as_ref().and_then(|i| i["name"].as_str()) {
            Some(name) => name.to_owned(),
            None => m.id,
        })
        .collect();
    println!("* in the room: {}", names.join(", "));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "guest".into());
    let port = std::env::var("VASK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6001);

    // The app server's side: signs the presence subscription for `name`.
    let mut app = PublisherConfig::new("1", "vask-key", "vask-secret");
    app.port = port;
    let app = Publisher::new(app)?;
    let channel_data =
        serde_json::json!({"user_id": name, "user_info": {"name": name}}).to_string();
    let authorizer = FnAuthorizer::new(move |socket_id, channel| {
        app.authorize_channel(socket_id, channel, Some(&channel_data))
            .map_err(|e| AuthorizerError::new(e.to_string()))
    });

    let config = SubscriberConfig::new("127.0.0.1", port, "vask-key").with_authorizer(authorizer);
    let subscriber = Subscriber::connect(config).await?;
    let room = subscriber.subscribe(ROOM)?;
    room.on("pusher:member_added", |e| {
        let v: serde_json::Value = e.json().unwrap_or_default();
        println!(
            "* {} joined",
            v["user_info"]["name"].as_str().unwrap_or("someone")
        );
    });
    room.on("pusher:member_removed", |e| {
        let v: serde_json::Value = e.json().unwrap_or_default();
        println!(
            "* {} left",
            v["user_info"]["name"].as_str().unwrap_or("someone")
        );
    });
    room.on("client-message", |e| {
        let v: serde_json::Value = e.json().unwrap_or_default();
        let from = e.user_id.as_deref().unwrap_or("?");
        println!("<{from}> {}", v["text"].as_str().unwrap_or(&e.data));
    });
    room.subscribed().await?;
    println!("* joined {ROOM} as {name}");
    show_members(&room);

    // Standard input is read on a plain thread and handed over line by line.
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        match line.trim() {
            "" => {}
            "/quit" => break,
            "/who" => show_members(&room),
            text => {
                if let Err(e) = room
                    .trigger("client-message", &serde_json::json!({ "text": text }))
                    .await
                {
                    println!("* not sent: {e}");
                }
            }
        }
    }
    subscriber.disconnect().await;
    Ok(())
}
