//! Operation sequences against the hub: any sequence of connects, frames
//! (valid and garbage), publishes, timers and disconnects never panics, and
//! once everyone has left and caches expired the hub holds nothing.
#![no_main]
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pusher_hub::{Full, Hub, HubConfig, Millis, Outbox, Publish, Session};
use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelName, ErrorCode};

struct Sink(Mutex<usize>);
impl Outbox for Sink {
    fn push(&self, _: Bytes) -> Result<(), Full> {
        let mut n = self.0.lock().unwrap();
        if *n >= 64 {
            return Err(Full);
        }
        *n += 1;
        Ok(())
    }
    fn close(&self, _: ErrorCode) {}
}

const CHANNELS: [&str; 6] = ["pub", "private-p", "presence-q", "cache-c", "presence-cache-r", "#server-to-user-u1"];

fn frame(op: u8, arg: u8, socket_id: &str) -> String {
    let ch = CHANNELS[arg as usize % CHANNELS.len()];
    let user = format!("u{}", arg % 3);
    match op % 6 {
        0 => format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{ch}"}}}}"#),
        1 => {
            let data = format!(r#"{{"user_id":"{user}"}}"#);
            let presence = ch.starts_with("presence-");
            let auth = pusher_auth::sign_channel("k", "s", socket_id, ch, presence.then_some(data.as_str()));
            let cd = serde_json::to_string(&data).unwrap();
            format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{ch}","auth":"{auth}","channel_data":{cd}}}}}"#)
        }
        2 => format!(r#"{{"event":"pusher:unsubscribe","data":{{"channel":"{ch}"}}}}"#),
        3 => {
            let ud = format!(r#"{{"id":"{user}","watchlist":["u0","u1","u2"]}}"#);
            let auth = pusher_auth::sign_user("k", "s", socket_id, &ud);
            format!(r#"{{"event":"pusher:signin","data":{{"auth":"{auth}","user_data":{}}}}}"#, serde_json::to_string(&ud).unwrap())
        }
        4 => format!(r#"{{"event":"client-x","channel":"{ch}","data":{{"n":{arg}}}}}"#),
        _ => r#"{"event":"pusher:ping","data":{}}"#.to_owned(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut config = HubConfig::new("1", "k", "s");
    config.client_events = true;
    config.subscription_count = true;
    config.subscription_count_threshold = 2;
    let hub = Arc::new(Hub::new(config));
    let mut sessions: Vec<Option<Session>> = Vec::new();
    let mut now = Millis::ZERO;
    for chunk in data.chunks(3) {
        let [op, a, b] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        now = now + Duration::from_millis(u64::from(b) * 37);
        match op % 8 {
            0 if sessions.len() < 16 => {
                let s = hub.connect(Arc::new(Sink(Mutex::new(0))), now).ok();
                sessions.push(s);
            }
            1 | 2 | 3 => {
                let i = a as usize % sessions.len().max(1);
                if let Some(Some(s)) = sessions.get_mut(i) {
                    let text = frame(op / 8, b, &s.socket_id().to_string());
                    let _ = s.handle_text(text.as_bytes(), now);
                }
            }
            4 => {
                let i = a as usize % sessions.len().max(1);
                if let Some(Some(s)) = sessions.get_mut(i) {
                    let _ = s.handle_text(chunk, now);
                    let _ = s.handle_timeout(now);
                }
            }
            5 => {
                let name = ChannelName::new(CHANNELS[a as usize % CHANNELS.len()]).unwrap();
                let info = InfoRequest { user_count: true, subscription_count: true, cache: true };
                let _ = hub.publish(&Publish { channels: &[name.clone()], event: "e", data: "d", except: None, info }, now);
                let _ = hub.channel_info(&name, info, now);
            }
            6 => {
                let i = a as usize % sessions.len().max(1);
                if let Some(slot) = sessions.get_mut(i) {
                    if let Some(s) = slot.take() {
                        s.close(now);
                    }
                }
            }
            _ => {
                let _ = hub.handle_timeout(now);
                let _ = hub.terminate_user(&format!("u{}", a % 3));
            }
        }
    }
    for s in sessions.into_iter().flatten() {
        s.close(now);
    }
    let _ = hub.handle_timeout(now + Duration::from_secs(31 * 60));
    assert!(hub.is_empty(), "the hub leaked state");
});
