//! Embeds the channel hub in a tiny program without vask-server: a few
//! in-memory "connections" subscribe, join a presence channel, exchange a
//! client event, and receive a publish. Each connection's outbox is a plain
//! queue; a real server would write the frames to its sockets.
//!
//! Run: `cargo run -p vask-examples --example embed_hub`

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pusher_hub::{Full, Hub, HubConfig, Outbox, Publish};
use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelName, ErrorCode};

/// A connection's outgoing frames.
#[derive(Default)]
struct Queue {
    frames: Mutex<Vec<Bytes>>,
}

impl Outbox for Queue {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        self.frames.lock().unwrap().push(frame);
        Ok(())
    }
    fn close(&self, code: ErrorCode) {
        println!("  (close requested: {})", code.code());
    }
}

impl Queue {
    fn print(&self, who: &str) {
        for f in self.frames.lock().unwrap().drain(..) {
            println!("  {who} <- {}", String::from_utf8_lossy(&f));
        }
    }
}

fn main() {
    let (key, secret) = ("app-key", "app-secret");
    let mut config = HubConfig::new("1", key, secret);
    config.client_events = true;
    let hub = Arc::new(Hub::new(config));
    let now = 0; // the embedder's clock, in milliseconds

    let (qa, qb) = (Arc::new(Queue::default()), Arc::new(Queue::default()));
    let mut alice = hub.connect(qa.clone(), now).expect("under quota");
    let mut bob = hub.connect(qb.clone(), now).expect("under quota");

    // Presence: the app's auth endpoint would produce these signatures.
    for (session, user) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let channel_data = format!(r#"{{"user_id":"{user}"}}"#);
        let auth = pusher_auth::sign_channel(
            key,
            secret,
            &session.socket_id().to_string(),
            "presence-room",
            Some(&channel_data),
        );
        let frame = serde_json::json!({
            "event": "pusher:subscribe",
            "data": {"channel": "presence-room", "auth": auth, "channel_data": channel_data}
        });
        let _ = session.handle_text(frame.to_string().as_bytes(), now);
    }
    println!("after both joined presence-room:");
    qa.print("alice");
    qb.print("bob");

    let _ = alice.handle_text(
        br#"{"event":"client-typing","channel":"presence-room","data":{"typing":true}}"#,
        now,
    );
    println!("after alice's client event:");
    qa.print("alice");
    qb.print("bob");

    let channels = [ChannelName::new("presence-room").unwrap()];
    let info = InfoRequest {
        user_count: true,
        ..Default::default()
    };
    let out = hub.publish(
        &Publish {
            channels: &channels,
            event: "news",
            data: r#"{"headline":"hello"}"#,
            except: None,
            info,
        },
        now,
    );
    println!(
        "publish delivered {} frames; counts {:?}",
        out.delivery.delivered, out.channels
    );
    qa.print("alice");
    qb.print("bob");

    bob.close(now);
    println!("after bob left:");
    qa.print("alice");
    alice.close(now);
    assert!(hub.is_empty());
    println!("hub is empty");
}
