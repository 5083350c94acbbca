//! Shared test support: a recording outbox, a recording notification sink,
//! and helpers that build signed frames; `sim`, a cluster on an in-memory
//! bus.
#![allow(dead_code, unreachable_pub)]

pub mod sim;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pusher_hub::{Full, Hub, HubConfig, Millis, Notification, NotificationSink, Outbox, Session};
use pusher_proto::{ErrorCode, ServerFrame};

pub const KEY: &str = "278d425bdf160c739803";
pub const SECRET: &str = "7ad3773142a6692b25b8";

/// An outbox that records every frame, with an optional capacity.
#[derive(Default)]
pub struct Recorder {
    pub frames: Mutex<Vec<Bytes>>,
    pub closed: Mutex<Option<ErrorCode>>,
    pub capacity: Option<usize>,
}

impl Outbox for Recorder {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        let mut f = self.frames.lock().unwrap();
        if self.capacity.is_some_and(|c| f.len() >= c) {
            return Err(Full);
        }
        f.push(frame);
        Ok(())
    }
    fn close(&self, code: ErrorCode) {
        *self.closed.lock().unwrap() = Some(code);
    }
}

impl Recorder {
    /// Takes the frames recorded so far, as text.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.frames.lock().unwrap())
            .into_iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }
    /// Takes the frames recorded so far, decoded.
    pub fn take_frames(&self) -> Vec<ServerFrame> {
        std::mem::take(&mut *self.frames.lock().unwrap())
            .into_iter()
            .map(|b| ServerFrame::decode(&b).unwrap())
            .collect()
    }
}

/// Records notifications.
#[derive(Default)]
pub struct Notes(pub Mutex<Vec<Notification>>);

impl NotificationSink for Notes {
    fn notify(&self, n: Notification) {
        self.0.lock().unwrap().push(n);
    }
}

impl Notes {
    pub fn take(&self) -> Vec<Notification> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub fn config() -> HubConfig {
    let mut c = HubConfig::new("1", KEY, SECRET);
    c.client_events = true;
    c
}

pub struct Client {
    pub session: Session,
    pub out: Arc<Recorder>,
}

impl Client {
    pub fn connect(hub: &Arc<Hub>) -> Self {
        let out = Arc::new(Recorder::default());
        let session = hub.connect(out.clone(), Millis::ZERO).unwrap();
        let established = out.take();
        assert_eq!(established.len(), 1);
        assert!(established[0].starts_with(r#"{"event":"pusher:connection_established""#));
        Self { session, out }
    }

    pub fn socket_id(&self) -> String {
        self.session.socket_id().to_string()
    }

    pub fn send(&mut self, frame: &str, now: u64) -> pusher_hub::Action {
        self.session
            .handle_text(frame.as_bytes(), Millis::from_millis(now))
            .action
    }

    pub fn subscribe(&mut self, channel: &str) {
        let f = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#);
        assert_eq!(self.send(&f, 0), pusher_hub::Action::Continue);
    }

    pub fn subscribe_private(&mut self, channel: &str) {
        let auth = pusher_auth::sign_channel(KEY, SECRET, &self.socket_id(), channel, None);
        let f = format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}","auth":"{auth}"}}}}"#
        );
        let _ = self.send(&f, 0);
    }

    pub fn subscribe_presence(&mut self, channel: &str, channel_data: &str) {
        let auth =
            pusher_auth::sign_channel(KEY, SECRET, &self.socket_id(), channel, Some(channel_data));
        let data = serde_json::to_string(channel_data).unwrap();
        let f = format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}","auth":"{auth}","channel_data":{data}}}}}"#
        );
        let _ = self.send(&f, 0);
    }

    pub fn signin(&mut self, user_data: &str) -> pusher_hub::Action {
        let auth = pusher_auth::sign_user(KEY, SECRET, &self.socket_id(), user_data);
        let data = serde_json::to_string(user_data).unwrap();
        let f =
            format!(r#"{{"event":"pusher:signin","data":{{"auth":"{auth}","user_data":{data}}}}}"#);
        self.send(&f, 0)
    }

    pub fn take(&self) -> Vec<String> {
        self.out.take()
    }
}
