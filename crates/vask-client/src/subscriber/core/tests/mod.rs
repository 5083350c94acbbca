//! Scenario tests of the core: frames, authorizer answers and time in,
//! outputs asserted. No server, no runtime, no clock: `now` moves only
//! when a test says so.

mod client_events;
mod fuzz;
mod liveness;
mod presence;
mod reconnect;
mod signin;
mod subscriptions;

use std::time::{Duration, Instant};

use pusher_auth::ChannelAuthResponse;
use pusher_proto::{ClientFrame, ServerFrame, SocketId, Subscribe};

use super::{Action, Config, Core, CoreEvent, SubStatus, TransportEnd};
use crate::subscriber::{ConnectionState, Event};

/// The jitter seed of every test.
const SEED: u64 = 7;

/// The server's `activity_timeout` in the handshakes of [`Sim::open`].
const SERVER_ACTIVITY: Duration = Duration::from_secs(120);

/// The defaults of `SubscriberConfig`, with an authorizer.
fn config() -> Config {
    Config {
        activity_timeout: None,
        pong_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        reconnect_min_delay: Duration::from_secs(1),
        reconnect_max_delay: Duration::from_secs(30),
        has_authorizer: true,
    }
}

/// The id of the `n`-th connection of a test.
fn socket(n: u64) -> String {
    SocketId::new(1, n).to_string()
}

/// A core and the time it lives in.
struct Sim {
    core: Core,
    now: Instant,
}

impl Sim {
    /// A new core: it has asked for its first connection.
    fn new(config: Config) -> Self {
        let now = Instant::now();
        let mut sim = Self {
            core: Core::new(config, now, SEED),
            now,
        };
        assert_eq!(sim.actions(), [Action::Connect]);
        assert_eq!(sim.states(), [ConnectionState::Connecting]);
        sim
    }

    /// A core with its first connection (`socket(1)`) established and its
    /// outputs drained.
    fn connected(config: Config) -> Self {
        let mut sim = Self::new(config);
        sim.open(1);
        sim.drain();
        sim
    }

    /// The connection asked for opens and says `connection_established`
    /// with `socket(n)`.
    fn open(&mut self, n: u64) {
        self.core.handle_connected(self.now);
        self.receive(&ServerFrame::ConnectionEstablished {
            socket_id: SocketId::new(1, n),
            activity_timeout: SERVER_ACTIVITY.as_secs() as u32,
        });
    }

    /// Time passes; the driver calls `handle_timeout`.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.core.handle_timeout(self.now);
    }

    /// The server sends `frame`.
    fn receive(&mut self, frame: &ServerFrame) {
        let bytes = frame.encode();
        let text = std::str::from_utf8(&bytes).expect("frames are UTF-8");
        self.core.handle_frame(text, self.now);
    }

    /// The server closes with `code`.
    fn close(&mut self, code: u16) {
        let end = TransportEnd::CloseFrame {
            code: Some(code),
            reason: "scripted".into(),
        };
        self.core.handle_closed(end, self.now);
    }

    /// The authorizer signs `channel` for `socket_id` (a dummy signature:
    /// the server is not here to check it).
    fn authorize(&mut self, socket_id: &str, channel: &str, channel_data: Option<&str>) {
        let response = ChannelAuthResponse {
            auth: format!("key:{socket_id}:{channel}"),
            channel_data: channel_data.map(str::to_owned),
            shared_secret: None,
        };
        self.core
            .handle_channel_auth(socket_id, channel, Ok(response));
    }

    fn transmits(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.core.poll_transmit()).collect()
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<CoreEvent> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    /// The state changes among the pending events (the others are dropped).
    fn states(&mut self) -> Vec<ConnectionState> {
        let events = self.events();
        events
            .into_iter()
            .filter_map(|e| match e {
                CoreEvent::State(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Drops every pending output.
    fn drain(&mut self) {
        let _ = (self.transmits(), self.actions(), self.events());
    }
}

/// The channel events among `events`, as (channel, name, data).
fn channel_events(events: &[CoreEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Channel(Event {
                channel,
                name,
                data,
                ..
            }) => Some((channel.clone(), name.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

/// The status changes among `events`, as (channel, status).
fn statuses(events: &[CoreEvent]) -> Vec<(String, SubStatus)> {
    events
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Status { channel, status } => Some((channel.clone(), status.clone())),
            _ => None,
        })
        .collect()
}

/// The frame a client sends to subscribe to `channel`.
fn subscribe_frame(channel: &str, auth: &str, channel_data: Option<&str>) -> String {
    let frame = ClientFrame::Subscribe(Subscribe {
        channel: channel.into(),
        auth: Some(auth.into()),
        channel_data: channel_data.map(str::to_owned),
    });
    String::from_utf8(frame.encode().to_vec()).expect("frames are UTF-8")
}

/// The dummy signature [`Sim::authorize`] gives.
fn auth_of(socket_id: &str, channel: &str) -> String {
    format!("key:{socket_id}:{channel}")
}
