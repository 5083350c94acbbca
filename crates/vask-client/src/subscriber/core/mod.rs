//! The subscriber's protocol as a state machine, in the manner of
//! quinn-proto: inputs in, outputs polled out.
//!
//! # Contract
//!
//! No IO, no tokio, no clock, no randomness of its own. Time comes in as
//! `now: std::time::Instant` with every input that depends on it, and the
//! reconnect jitter from the seed given to [`Core::new`]: given the same
//! inputs, the core produces the same outputs. Nothing a server sends makes
//! it panic (a proptest feeds it random frames); a frame it does not know is
//! skipped, as pusher-js does.
//!
//! # How a driver calls it
//!
//! 1. [`Core::new`]: the first output is [`Action::Connect`].
//! 2. After creating it and after every input, drain the outputs in this
//!    order: [`Core::poll_transmit`] (text frames to write, in order, on the
//!    open connection), [`Core::poll_event`] (for the streams, callbacks and
//!    waiting calls), [`Core::poll_action`] (connect, drop or close the
//!    connection, ask the authorizer, stop); then read
//!    [`Core::poll_timeout`].
//! 3. Wait for the first of these and feed it:
//!    - the connection is open: [`Core::handle_connected`] (frames count
//!      only after it); a text frame: [`Core::handle_frame`]; any other
//!      message (WebSocket ping, pong, binary): [`Core::handle_alive`]; its
//!      end, or the failure to open it: [`Core::handle_closed`] (never for a
//!      connection dropped or closed on [`Action::Abort`] or
//!      [`Action::Close`]);
//!    - an authorizer's answer: [`Core::handle_channel_auth`],
//!      [`Core::handle_user_auth`], with the socket id it was asked for;
//!    - the deadline of `poll_timeout`: [`Core::handle_timeout`] (an early
//!      or repeated call is harmless);
//!    - a command of the API, between any two inputs: [`Core::subscribe`],
//!      [`Core::unsubscribe`], [`Core::client_event`], [`Core::signin`],
//!      [`Core::disconnect`].
//! 4. Stop after [`Action::Stop`].
//!
//! # What it decides
//!
//! - On each `pusher:connection_established`: every channel goes back to
//!   pending and is subscribed again, public ones at once (in name order),
//!   the others when the authorizer has signed them for the new socket id;
//!   sign-in is repeated if it was asked for; `#server-to-user-<id>` is
//!   joined only after `signin_success`.
//! - Liveness: `pusher:ping` after `activity_timeout` without any frame
//!   (the server's, or the configured one if shorter); without an answer
//!   within `pong_timeout` the connection is dropped and replaced at once.
//! - The next connection, by close code ([`reconnect`]): 4000-4099 never,
//!   4100-4199 after at least 1 s, 4200-4299 at once, network failures
//!   after an exponential backoff with jitter. A failed first attempt stops
//!   the subscriber with its error ([`CoreEvent::Ready`]).
//! - Client events are refused here where the SDKs refuse them (a name
//!   without `client-`, a public or encrypted channel, a channel not
//!   subscribed on this connection).
//! - Encrypted channels are decrypted here: the key arrives with the
//!   authorizer's answer and pusher-auth decrypts without IO, so the events
//!   leave the core as plaintext and the whole path is tested without a
//!   server.

mod backoff;
mod channels;
mod output;
mod reconnect;
mod user;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use pusher_auth::{ChannelAuthResponse, UserAuthResponse};
use pusher_proto::{
    ChannelKind, ChannelName, ClientFrame, DEFAULT_MAX_EVENT_NAME_LEN, RawJson, ServerFrame,
    classify, validate_client_event_name,
};

pub(crate) use output::{Action, CoreEvent, SubStatus, TransportEnd};

use self::backoff::Backoff;
use self::channels::Channels;
use self::output::Outputs;
use self::reconnect::{End, Reconnect};
use self::user::User;
use crate::error::{AuthorizerError, SocketError};
use crate::subscriber::{ConnectionState, Member, ServerError, SubscriberConfig};

/// What the core needs to know of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Ping after this much silence if shorter than the server's.
    pub(crate) activity_timeout: Option<Duration>,
    /// How long to wait for any frame after a ping.
    pub(crate) pong_timeout: Duration,
    /// How long opening a connection may take, up to
    /// `pusher:connection_established`.
    pub(crate) connect_timeout: Duration,
    /// The first reconnect delay after a network failure.
    pub(crate) reconnect_min_delay: Duration,
    /// The longest reconnect delay.
    pub(crate) reconnect_max_delay: Duration,
    /// An authorizer is configured: without one, private channels and
    /// sign-in fail at once.
    pub(crate) has_authorizer: bool,
}

impl Config {
    pub(crate) fn of(config: &SubscriberConfig) -> Self {
        Self {
            activity_timeout: config.activity_timeout,
            pong_timeout: config.pong_timeout,
            connect_timeout: config.connect_timeout,
            reconnect_min_delay: config.reconnect_min_delay,
            reconnect_max_delay: config.reconnect_max_delay,
            has_authorizer: config.authorizer.is_some(),
        }
    }
}

/// Where the connection stands.
#[derive(Debug)]
enum Phase {
    /// Opening a connection, until `pusher:connection_established` or the
    /// deadline.
    Connecting {
        deadline: Instant,
        /// `handle_connected` was called: frames may arrive.
        open: bool,
        /// The last `pusher:error` (code, or 0), which may name the reason
        /// of a close.
        last_error: Option<(u16, String)>,
    },
    /// Established.
    Open(Session),
    /// Waiting to connect again.
    Waiting { until: Instant },
    /// Stopped for good.
    Stopped,
}

/// An established connection.
#[derive(Debug)]
struct Session {
    socket_id: String,
    established: Instant,
    /// Ping after this much silence.
    activity: Duration,
    last_seen: Instant,
    ping_sent: Option<Instant>,
    /// The last 4000-4299 `pusher:error`, for a close without a code.
    last_error: Option<(u16, String)>,
}

/// The subscriber's protocol state: channels, members, sign-in, liveness
/// and the reconnect policy. See the module documentation for the order of
/// calls.
#[derive(Debug)]
pub(crate) struct Core {
    config: Config,
    phase: Phase,
    /// A connection was established once: from then on, failures are
    /// retried (before, the first failure stops the subscriber).
    ever_connected: bool,
    backoff: Backoff,
    channels: Channels,
    user: User,
    out: Outputs,
}

impl Core {
    /// A core that connects at once; `seed` drives the reconnect jitter.
    pub(crate) fn new(config: Config, now: Instant, seed: u64) -> Self {
        let backoff = Backoff::new(config.reconnect_min_delay, config.reconnect_max_delay, seed);
        let mut core = Self {
            config,
            phase: Phase::Stopped,
            ever_connected: false,
            backoff,
            channels: Channels::default(),
            user: User::default(),
            out: Outputs::default(),
        };
        core.connect(now);
        core
    }

    // ---- outputs ----

    /// The next frame to write on the open connection.
    #[must_use]
    pub(crate) fn poll_transmit(&mut self) -> Option<String> {
        self.out.transmits.pop_front()
    }

    /// The next event for the user-facing side.
    #[must_use]
    pub(crate) fn poll_event(&mut self) -> Option<CoreEvent> {
        self.out.events.pop_front()
    }

    /// The next thing the driver must do.
    #[must_use]
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.out.actions.pop_front()
    }

    /// When to call [`Core::handle_timeout`]: the connect deadline, the
    /// next ping or the pong deadline, or the end of a reconnect wait.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Connecting { deadline, .. } => Some(*deadline),
            Phase::Open(s) => Some(match s.ping_sent {
                Some(sent) => sent + self.config.pong_timeout,
                None => s.last_seen + s.activity,
            }),
            Phase::Waiting { until } => Some(*until),
            Phase::Stopped => None,
        }
    }

    // ---- inputs from the transport and the clock ----

    /// The connection asked by [`Action::Connect`] is open (WebSocket
    /// upgraded); its frames follow.
    pub(crate) fn handle_connected(&mut self, _now: Instant) {
        if let Phase::Connecting { open, .. } = &mut self.phase {
            *open = true;
        }
    }

    /// A text frame arrived.
    pub(crate) fn handle_frame(&mut self, text: &str, now: Instant) {
        match &mut self.phase {
            Phase::Connecting {
                open: true,
                last_error,
                ..
            } => match ServerFrame::decode(text.as_bytes()) {
                Ok(ServerFrame::ConnectionEstablished {
                    socket_id,
                    activity_timeout,
                }) => self.established(socket_id.to_string(), activity_timeout, now),
                Ok(ServerFrame::Error { code, message }) => {
                    *last_error = Some((code.unwrap_or(0), message));
                }
                _ => {}
            },
            Phase::Open(session) => {
                session.last_seen = now;
                session.ping_sent = None;
                if let Ok(frame) = ServerFrame::decode(text.as_bytes()) {
                    self.frame(frame);
                }
            }
            _ => {}
        }
    }

    /// A message other than text arrived: the connection is alive.
    pub(crate) fn handle_alive(&mut self, now: Instant) {
        if let Phase::Open(session) = &mut self.phase {
            session.last_seen = now;
            session.ping_sent = None;
        }
    }

    /// The connection, or the attempt to open it, ended.
    pub(crate) fn handle_closed(&mut self, end: TransportEnd, now: Instant) {
        let (end, uptime) = match &mut self.phase {
            Phase::Connecting { last_error, .. } => {
                (reconnect::end_of(end, last_error.take(), true), None)
            }
            Phase::Open(s) => {
                let uptime = now.saturating_duration_since(s.established);
                (
                    reconnect::end_of(end, s.last_error.take(), false),
                    Some(uptime),
                )
            }
            Phase::Waiting { .. } | Phase::Stopped => return,
        };
        self.lost(end, uptime, now);
    }

    /// The deadline of [`Core::poll_timeout`] may have passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Connecting { deadline, .. } if now >= *deadline => {
                let timeout = self.config.connect_timeout;
                self.out.action(Action::Abort);
                let end = End::Network(format!("no handshake within {timeout:?}"));
                self.lost(end, None, now);
            }
            Phase::Open(s) => match s.ping_sent {
                Some(sent) if now >= sent + self.config.pong_timeout => {
                    let uptime = now.saturating_duration_since(s.established);
                    self.out.action(Action::Abort);
                    self.lost(End::PongTimeout, Some(uptime), now);
                }
                None if now >= s.last_seen + s.activity => {
                    s.ping_sent = Some(now);
                    self.out.send(&ClientFrame::Ping);
                }
                _ => {}
            },
            Phase::Waiting { until } if now >= *until => self.connect(now),
            _ => {}
        }
    }

    // ---- inputs from the authorizer ----

    /// The authorizer's answer for `channel` on connection `socket_id`
    /// (ignored if that connection is gone).
    pub(crate) fn handle_channel_auth(
        &mut self,
        socket_id: &str,
        channel: &str,
        answer: Result<ChannelAuthResponse, AuthorizerError>,
    ) {
        if self.socket_id() == Some(socket_id) {
            self.channels.authorized(channel, answer, &mut self.out);
        }
    }

    /// The authorizer's user authentication for connection `socket_id`
    /// (ignored if that connection is gone).
    pub(crate) fn handle_user_auth(
        &mut self,
        socket_id: &str,
        answer: Result<UserAuthResponse, AuthorizerError>,
    ) {
        if self.socket_id() == Some(socket_id) {
            self.user.authenticated(answer, &mut self.out);
        }
    }

    // ---- commands from the API ----

    /// Subscribes to `name` (nothing if it is subscribed already) and
    /// returns its kind.
    ///
    /// # Errors
    /// [`SocketError::InvalidChannel`] for a malformed name or a
    /// `#server-to-user-` channel, [`SocketError::Closed`] once stopped.
    pub(crate) fn subscribe(&mut self, name: &str) -> Result<ChannelKind, SocketError> {
        let channel = ChannelName::new(name)
            .map_err(|e| SocketError::InvalidChannel(format!("{name:?}: {e}")))?;
        let kind = channel.kind();
        if kind == ChannelKind::ServerToUser {
            return Err(SocketError::InvalidChannel(
                "#server-to-user- channels are joined by signin()".into(),
            ));
        }
        if self.is_stopped() {
            return Err(SocketError::Closed);
        }
        if self.channels.insert(name, kind)
            && let Phase::Open(s) = &self.phase
        {
            let has_authorizer = self.config.has_authorizer;
            (self.channels).request(name, &s.socket_id, has_authorizer, &mut self.out);
        }
        Ok(kind)
    }

    /// Leaves `name`: no event of it follows (the caller ends its streams),
    /// and it is not subscribed again.
    pub(crate) fn unsubscribe(&mut self, name: &str) {
        if self.channels.remove(name) && matches!(self.phase, Phase::Open(_)) {
            let channel = name.to_owned();
            self.out.send(&ClientFrame::Unsubscribe { channel });
        }
    }

    /// Whether a client event `event` may be sent on `channel` now.
    ///
    /// # Errors
    /// [`SocketError::NotAllowed`] where the SDKs refuse it (a name without
    /// `client-`, a public or encrypted channel, a channel not subscribed),
    /// [`SocketError::NotConnected`] while reconnecting,
    /// [`SocketError::Closed`] once stopped.
    pub(crate) fn check_client_event(&self, channel: &str, event: &str) -> Result<(), SocketError> {
        validate_client_event_name(event, DEFAULT_MAX_EVENT_NAME_LEN)
            .map_err(|e| SocketError::NotAllowed(e.to_string()))?;
        let (kind, _) = classify(channel);
        if !kind.accepts_client_events() || kind.is_encrypted() {
            return Err(SocketError::NotAllowed(
                "client events are only for private and presence channels (not encrypted)".into(),
            ));
        }
        if self.status(channel) != Some(&SubStatus::Subscribed) {
            return Err(SocketError::NotAllowed(format!(
                "{channel} is not subscribed"
            )));
        }
        match self.phase {
            Phase::Open(_) => Ok(()),
            Phase::Stopped => Err(SocketError::Closed),
            _ => Err(SocketError::NotConnected),
        }
    }

    /// Sends a client event.
    ///
    /// # Errors
    /// As [`Core::check_client_event`]; nothing is sent then.
    pub(crate) fn client_event(
        &mut self,
        channel: &str,
        event: &str,
        data: RawJson,
    ) -> Result<(), SocketError> {
        self.check_client_event(channel, event)?;
        self.out.send(&ClientFrame::ClientEvent {
            event: event.to_owned(),
            channel: channel.to_owned(),
            data,
        });
        Ok(())
    }

    /// Signs in: `Some(id)` if signed in on this connection already, else
    /// `None` and the outcome comes as [`CoreEvent::Signin`]. Repeated on
    /// every new connection until it fails.
    ///
    /// # Errors
    /// [`SocketError::Closed`] once stopped.
    pub(crate) fn signin(&mut self) -> Result<Option<String>, SocketError> {
        if self.is_stopped() {
            return Err(SocketError::Closed);
        }
        if let Some(id) = self.user.id() {
            return Ok(Some(id.to_owned()));
        }
        self.user.request();
        if let Phase::Open(s) = &self.phase {
            (self.user).start(&s.socket_id, self.config.has_authorizer, &mut self.out);
        }
        Ok(None)
    }

    /// Stops: closes the connection (code 1000) after the frames already
    /// queued, ends every channel. Idempotent.
    pub(crate) fn disconnect(&mut self) {
        match self.phase {
            Phase::Stopped => return,
            Phase::Open(_) => self.out.action(Action::Close),
            Phase::Connecting { .. } => self.out.action(Action::Abort),
            Phase::Waiting { .. } => {}
        }
        self.finish(None, "disconnected".into());
    }

    // ---- what the handles read ----

    /// Stopped for good.
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    /// The socket id of the established connection.
    pub(crate) fn socket_id(&self) -> Option<&str> {
        match &self.phase {
            Phase::Open(s) => Some(&s.socket_id),
            _ => None,
        }
    }

    /// The user signed in on the current connection.
    pub(crate) fn user_id(&self) -> Option<&str> {
        self.user.id()
    }

    /// The kind of a channel in the table.
    pub(crate) fn kind(&self, channel: &str) -> Option<ChannelKind> {
        self.channels.get(channel).map(|c| c.kind)
    }

    /// The channels subscribed by the user (not the user's own), in name
    /// order.
    pub(crate) fn channel_names(&self) -> Vec<String> {
        self.channels.names().map(str::to_owned).collect()
    }

    /// A channel's subscription status.
    pub(crate) fn status(&self, channel: &str) -> Option<&SubStatus> {
        self.channels.get(channel).map(|c| &c.status)
    }

    /// A presence channel's members.
    pub(crate) fn members(&self, channel: &str) -> Vec<Member> {
        let Some(c) = self.channels.get(channel) else {
            return Vec::new();
        };
        c.members.iter().cloned().map(Member::from_proto).collect()
    }

    /// This connection's own member of a presence channel.
    pub(crate) fn me(&self, channel: &str) -> Option<Member> {
        let c = self.channels.get(channel)?;
        let me = c.me.as_ref()?;
        let member = c.members.iter().find(|m| m.user_id == *me)?;
        Some(Member::from_proto(member.clone()))
    }

    /// The last subscription count of a channel.
    pub(crate) fn subscription_count(&self, channel: &str) -> Option<u64> {
        self.channels.get(channel)?.subscription_count
    }

    // ---- transitions ----

    fn set_state(&mut self, state: ConnectionState) {
        self.out.event(CoreEvent::State(state));
    }

    /// Starts a connection attempt.
    fn connect(&mut self, now: Instant) {
        self.phase = Phase::Connecting {
            deadline: now + self.config.connect_timeout,
            open: false,
            last_error: None,
        };
        self.set_state(ConnectionState::Connecting);
        self.out.action(Action::Connect);
    }

    /// `pusher:connection_established`.
    fn established(&mut self, socket_id: String, server_activity: u32, now: Instant) {
        self.backoff.reset();
        let mut activity = Duration::from_secs(u64::from(server_activity.max(1)));
        if let Some(mine) = self.config.activity_timeout {
            activity = activity.min(mine);
        }
        let has_authorizer = self.config.has_authorizer;
        (self.channels).connected(&socket_id, has_authorizer, &mut self.out);
        if self.user.connected() {
            self.user.start(&socket_id, has_authorizer, &mut self.out);
        }
        self.phase = Phase::Open(Session {
            socket_id: socket_id.clone(),
            established: now,
            activity,
            last_seen: now,
            ping_sent: None,
            last_error: None,
        });
        self.set_state(ConnectionState::Connected { socket_id });
        if !self.ever_connected {
            self.ever_connected = true;
            self.out.event(CoreEvent::Ready(Ok(())));
        }
    }

    /// The connection (or the attempt) ended with `end`; connect again or
    /// stop.
    fn lost(&mut self, end: End, uptime: Option<Duration>, now: Instant) {
        if matches!(self.phase, Phase::Open(_)) {
            self.channels.disconnected(&mut self.out);
            self.user.disconnected();
        }
        // Frames for that connection are void.
        self.out.transmits.clear();
        if !self.ever_connected {
            let (error, code) = reconnect::first_attempt_error(end);
            let reason = error.to_string();
            self.out.event(CoreEvent::Ready(Err(error)));
            return self.finish(code, reason);
        }
        match reconnect::decide(&end, uptime, &mut self.backoff) {
            Reconnect::After(delay) if !delay.is_zero() => {
                self.phase = Phase::Waiting { until: now + delay };
                self.set_state(ConnectionState::Unavailable { retry_in: delay });
            }
            Reconnect::Now | Reconnect::After(_) => self.connect(now),
            Reconnect::Never { code, reason } => self.finish(Some(code), reason),
        }
    }

    /// Stops for good.
    fn finish(&mut self, code: Option<u16>, reason: String) {
        self.phase = Phase::Stopped;
        self.channels.stop(&mut self.out);
        self.user.stop();
        self.set_state(ConnectionState::Disconnected { code, reason });
        self.out.event(CoreEvent::Stopped);
        self.out.action(Action::Stop);
    }

    /// A frame on the established connection.
    fn frame(&mut self, frame: ServerFrame) {
        let out = &mut self.out;
        match frame {
            ServerFrame::Ping => out.send(&ClientFrame::Pong),
            ServerFrame::Error { code, message } => {
                if let Phase::Open(s) = &mut self.phase
                    && reconnect::may_explain_a_close(code)
                {
                    s.last_error = Some((code.unwrap_or(0), message.clone()));
                }
                self.user.error(code, &message, out);
                out.event(CoreEvent::ServerError(ServerError { code, message }));
            }
            ServerFrame::SubscriptionSucceeded { .. }
            | ServerFrame::PresenceSubscriptionSucceeded { .. } => {
                self.channels.succeeded(&frame, out);
            }
            ServerFrame::SubscriptionError { channel, error } => {
                let failure = crate::error::SubscribeFailure::Refused(error);
                self.channels.fail(&channel, failure, out);
            }
            ServerFrame::MemberAdded { .. } => self.channels.member_added(&frame, out),
            ServerFrame::MemberRemoved { .. } => self.channels.member_removed(&frame, out),
            ServerFrame::SubscriptionCount { .. } => self.channels.count(&frame, out),
            ServerFrame::CacheMiss { ref channel } => self.channels.notify(channel, &frame, out),
            ServerFrame::SigninSuccess { user_data } => {
                if let Some(channel) = self.user.succeeded(&user_data, out) {
                    self.channels.join_user_channel(&channel, out);
                }
            }
            ServerFrame::WatchlistEvents { events } => {
                for e in events {
                    out.event(CoreEvent::Watchlist(e));
                }
            }
            ServerFrame::ChannelEvent(e) => self.channels.event(e, out),
            // A pong (liveness is any frame), a repeated handshake.
            _ => {}
        }
    }
}
