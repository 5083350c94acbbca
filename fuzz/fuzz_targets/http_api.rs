//! The HTTP API as a whole (route, signature, body, validation, execution
//! against a hub with subscribers) on any method, path, query and body.
//! Half the inputs are signed by the target with the app's secret, so the
//! fuzzer reaches validation and execution, not only the signature check.
//! Never panics; every answer is JSON; unsigned requests never get 200.
#![no_main]
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pusher_hub::{ApiTarget, AppRef, Full, Hub, HubConfig, Millis, Outbox, Session};
use pusher_proto::ErrorCode;

#[derive(Default)]
struct Sink(Mutex<usize>);
impl Outbox for Sink {
    fn push(&self, _: Bytes) -> Result<(), Full> {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
    fn close(&self, _: ErrorCode) {}
}

const NOW_SECS: u64 = 1_700_000_000;

fn hub() -> (Arc<Hub>, Vec<Session>) {
    let mut config = HubConfig::new("1", "key", "secret");
    config.subscription_count = true;
    let hub = Arc::new(Hub::new(config));
    let mut sessions = Vec::new();
    for (i, ch) in ["news", "presence-room", "cache-c", "private-p"].iter().enumerate() {
        let mut s = hub.connect(Arc::new(Sink::default()), Millis::ZERO).unwrap();
        let sid = s.socket_id().to_string();
        let data = format!(r#"{{"user_id":"u{i}"}}"#);
        let presence = ch.starts_with("presence-");
        let auth = pusher_auth::sign_channel("key", "secret", &sid, ch, presence.then_some(data.as_str()));
        let frame = serde_json::json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":data}});
        let _ = s.handle_text(frame.to_string().as_bytes(), Millis::ZERO);
        let ud = format!(r#"{{"id":"u{i}"}}"#);
        let auth = pusher_auth::sign_user("key", "secret", &sid, &ud);
        let frame = serde_json::json!({"event":"pusher:signin","data":{"auth":auth,"user_data":ud}});
        let _ = s.handle_text(frame.to_string().as_bytes(), Millis::ZERO);
        sessions.push(s);
    }
    (hub, sessions)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(data) else { return };
    // method \n path \n params (k=v&k=v, signed) or raw query \n body
    let mut parts = text.splitn(4, '\n');
    let (method, path, params, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").as_bytes(),
    );
    let signed = mode & 1 == 1;
    let query = if signed {
        let pairs: Vec<(&str, &str)> = params
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        pusher_auth::sign_request(method, path, &pairs, body, "key", "secret", NOW_SECS)
    } else {
        params.to_owned()
    };
    let (hub, sessions) = hub();
    let Ok(target) = ApiTarget::parse(method, path, &query) else { return };
    match &target.app {
        AppRef::IdOrKey(id) if id == "1" || id == "key" => {}
        AppRef::Key(k) if k == "key" => {}
        _ => return,
    }
    let call = match hub.api_head(method, path, &query, target.route, NOW_SECS) {
        Ok(call) => call,
        Err(e) => {
            assert_ne!(e.status, 200);
            assert!(serde_json::from_slice::<serde_json::Value>(&e.response().body).is_ok());
            return;
        }
    };
    let r = call.finish(&hub, body, Millis::from_millis(1));
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_ok(), "{r:?}");
    if r.status == 200 {
        assert!(signed, "an unsigned request was executed");
    }
    drop(sessions);
});
