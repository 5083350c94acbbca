//! Embeds the channel hub in a tiny program without vask-server: a few
//! in-memory "connections" subscribe, join a presence channel, exchange a
//! client event, receive a publish, and are pinged by the session timers.
//! Each connection's queue is the hub's own `ConnQueue`; a real server
//! would write the drained frames to its sockets. Every result the hub
//! returns is acted on: frames counted, closes honoured, timers scheduled.
//!
//! Run: `cargo run -p vask-examples --example embed_hub`

use std::collections::VecDeque;
use std::sync::Arc;

use std::time::Duration;

use pusher_hub::{Action, ConnQueue, Drained, Hub, HubConfig, Millis, Outcome, Publish, Session};
use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelName, ErrorCode};

/// One in-memory connection: its session and its queue.
struct Conn {
    name: &'static str,
    session: Session,
    queue: Arc<ConnQueue>,
    closed: Option<ErrorCode>,
}

impl Conn {
    fn open(hub: &Arc<Hub>, name: &'static str, now: Millis) -> Result<Self, ErrorCode> {
        let queue = Arc::new(ConnQueue::new(1024, 1 << 20));
        let session = hub.connect(queue.clone(), now)?;
        Ok(Self {
            name,
            session,
            queue,
            closed: None,
        })
    }

    /// Feeds a frame as the peer would send it, and acts on the outcome.
    fn send(&mut self, frame: &str, now: Millis) {
        let outcome = self.session.handle_text(frame.as_bytes(), now);
        self.act(outcome);
    }

    fn act(&mut self, outcome: Outcome) {
        if outcome.delivery.dropped > 0 {
            println!(
                "  ({} frames dropped: full queues)",
                outcome.delivery.dropped
            );
        }
        if let Action::Close(code) = outcome.action {
            self.closed = Some(code);
        }
    }

    /// What a writer would send: the queued frames, then a close if asked.
    fn flush(&mut self) {
        let mut frames = VecDeque::new();
        match self.queue.drain(&mut frames) {
            Drained::Frames(close) => {
                for f in frames {
                    println!("  {} <- {}", self.name, String::from_utf8_lossy(&f));
                }
                if let Some(code) = close.or(self.closed) {
                    println!("  {} closed with {}", self.name, code.code());
                }
            }
            Drained::Overflowed(n) => {
                println!("  {} cut off (4100), {n} frames dropped", self.name)
            }
        }
    }
}

fn main() -> Result<(), ErrorCode> {
    let (key, secret) = ("app-key", "app-secret");
    let mut config = HubConfig::new("1", key, secret);
    config.client_events = true;
    config.activity_timeout_secs = 2;
    config.pong_timeout = Duration::from_secs(1);
    let hub = Arc::new(Hub::new(config));
    let mut now = Millis::ZERO; // the embedder's clock

    let mut alice = Conn::open(&hub, "alice", now)?;
    let mut bob = Conn::open(&hub, "bob", now)?;

    // Presence: the app's auth endpoint would produce these signatures.
    for conn in [&mut alice, &mut bob] {
        let channel_data = format!(r#"{{"user_id":"{}"}}"#, conn.name);
        let socket_id = conn.session.socket_id().to_string();
        let auth = pusher_auth::sign_channel(
            key,
            secret,
            &socket_id,
            "presence-room",
            Some(&channel_data),
        );
        let frame = serde_json::json!({
            "event": "pusher:subscribe",
            "data": {"channel": "presence-room", "auth": auth, "channel_data": channel_data}
        });
        conn.send(&frame.to_string(), now);
    }
    println!("after both joined presence-room:");
    alice.flush();
    bob.flush();

    alice.send(
        r#"{"event":"client-typing","channel":"presence-room","data":{"typing":true}}"#,
        now,
    );
    println!("after alice's client event:");
    alice.flush();
    bob.flush();

    let channels = [ChannelName::new("presence-room").expect("a valid name")];
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
        "publish delivered {} frames ({} dropped); counts {:?}",
        out.delivery.delivered, out.delivery.dropped, out.channels
    );
    alice.flush();
    bob.flush();

    // Time passes: each session says when it needs to run. Alice stays
    // quiet: she is pinged, then closed with 4201; bob answers.
    while alice.closed.is_none() {
        now = alice.session.next_timeout().min(bob.session.next_timeout());
        println!("at {} ms:", now.as_millis());
        for conn in [&mut alice, &mut bob] {
            if conn.closed.is_none() && conn.session.next_timeout() <= now {
                let outcome = conn.session.handle_timeout(now);
                conn.act(outcome);
            }
        }
        bob.send(r#"{"event":"pusher:pong","data":{}}"#, now);
        alice.flush();
        bob.flush();
    }
    // The hub's own timers (none are due here: no cache, no throttle).
    if let Some(t) = hub.poll_timeout() {
        let d = hub.handle_timeout(t);
        println!("hub timers delivered {} frames", d.delivered);
    }

    bob.session.close(now);
    alice.session.close(now);
    println!("hub empty after everyone left: {}", hub.is_empty());
    Ok(())
}
