//! One connection's protocol state, driven by its own task.

use std::time::Duration;

use crate::time::Millis;
use std::sync::Arc;

use pusher_proto::{
    ChannelData, ChannelKind, ChannelName, ClientFrame, ErrorCode, RawJson, ServerFrame, SocketId,
    Subscribe, UserData, validate_client_event_name,
};

use crate::channel::Map;
use crate::effects::Delivery;
use crate::hub::{Conn, Hub};
use crate::refusal::Refusal;

/// What the driver must do after feeding the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Keep going.
    Continue,
    /// Close the connection with this code once the queued frames are sent
    /// (the `pusher:error` frame is already queued).
    Close(ErrorCode),
}

/// What one call into a session did: what the driver must do, and the
/// frames it queued (to this and other connections) and dropped, for
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Outcome {
    /// Keep going, or close.
    pub action: Action,
    /// Frames queued and dropped by this call.
    pub delivery: Delivery,
}

/// A request the session refused in a call, kept for an observer (a debug
/// console) to take with [`Session::take_refusal`]: set only on the refusal
/// path, by moving what the refusal already built, so the happy path pays
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// A `pusher:subscribe` was refused.
    Subscription(Refusal),
    /// A client event was refused (not relayed); the reason in words.
    ClientEvent(&'static str),
}

struct Joined {
    name: ChannelName,
    /// The presence user id this connection joined as.
    user_id: Option<Arc<str>>,
}

/// One connection: decodes its frames, applies the per-connection rules
/// (auth, client-event limits, sign-in, liveness) and calls the hub.
///
/// Order for a driver: after [`Hub::connect`], feed every text frame to
/// [`Session::handle_text`], call [`Session::touch`] on any other frame from
/// the peer, sleep until [`Session::next_timeout`] and call
/// [`Session::handle_timeout`]; act on each returned [`Action`]. When the
/// connection ends, call [`Session::close`] (dropping the session does the
/// same cleanup).
pub struct Session {
    hub: Arc<Hub>,
    conn: Conn,
    /// Joined channels by name: membership checks are constant time however
    /// many channels one connection joins.
    channels: Map<Arc<str>, Joined>,
    user: Option<Arc<str>>,
    watchlist: Vec<Arc<str>>,
    last_seen: Millis,
    ping_sent: Option<Millis>,
    signin_deadline: Option<Millis>,
    window_start: Millis,
    window_events: u32,
    delivery: Delivery,
    /// The last refusal, until taken (see [`Refused`]); boxed, so that it
    /// costs a connection one word.
    refused: Option<Box<Refused>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("socket_id", &self.conn.socket_id)
            .field("channels", &self.channels.len())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(hub: Arc<Hub>, conn: Conn, now: Millis) -> Self {
        let hashing = hub.hashing();
        let signin_deadline = hub.config().signin_timeout.map(|t| now + t);
        Self {
            hub,
            conn,
            channels: Map::with_hasher(hashing),
            user: None,
            watchlist: Vec::new(),
            last_seen: now,
            ping_sent: None,
            signin_deadline,
            window_start: now,
            window_events: 0,
            delivery: Delivery::default(),
            refused: None,
        }
    }

    /// The connection's socket id.
    pub fn socket_id(&self) -> SocketId {
        self.conn.socket_id
    }

    /// The signed-in user id, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Channels this connection is subscribed to.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelName> {
        self.channels.values().map(|j| &j.name)
    }

    /// Takes the last refusal since the previous take (an observer takes
    /// it before and after a call to learn what that call refused).
    pub fn take_refusal(&mut self) -> Option<Refused> {
        self.refused.take().map(|r| *r)
    }

    /// Runs one input, returning what it did; `delivery` collects the
    /// frames of this call only.
    fn run(&mut self, f: impl FnOnce(&mut Self) -> Action) -> Outcome {
        self.delivery = Delivery::default();
        let action = f(self);
        Outcome {
            action,
            delivery: std::mem::take(&mut self.delivery),
        }
    }

    fn push(&mut self, frame: &ServerFrame) {
        self.delivery.push(&*self.conn.outbox, &frame.encode());
    }

    fn error(&mut self, code: Option<ErrorCode>, message: impl Into<String>) {
        let message = message.into();
        self.push(&ServerFrame::Error {
            code: code.map(ErrorCode::code),
            message,
        });
    }

    fn fail(&mut self, code: ErrorCode, message: &str) -> Action {
        self.error(Some(code), message);
        Action::Close(code)
    }

    /// The peer showed life (any frame, WebSocket pings included).
    pub fn touch(&mut self, now: Millis) {
        self.last_seen = now;
        self.ping_sent = None;
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn next_timeout(&self) -> Millis {
        let liveness = match self.ping_sent {
            Some(t) => t + self.hub.config().pong_timeout,
            None => self.last_seen + self.activity_timeout(),
        };
        self.signin_deadline.map_or(liveness, |d| liveness.min(d))
    }

    /// The silence after which the server pings.
    fn activity_timeout(&self) -> Duration {
        Duration::from_secs(self.hub.config().activity_timeout_secs.into())
    }

    /// Fires due timers: the sign-in deadline (4009), the server ping after
    /// `activity_timeout` of silence, and 4201 when the ping goes unanswered.
    pub fn handle_timeout(&mut self, now: Millis) -> Outcome {
        self.run(|s| s.timers(now))
    }

    fn timers(&mut self, now: Millis) -> Action {
        if self.signin_deadline.is_some_and(|d| now >= d) {
            return self.fail(
                ErrorCode::Unauthorized,
                "Connection not authorized within timeout.",
            );
        }
        match self.ping_sent {
            Some(t) if now >= t + self.hub.config().pong_timeout => {
                return self.fail(
                    ErrorCode::PongNotReceived,
                    ErrorCode::PongNotReceived.message(),
                );
            }
            None if now >= self.last_seen + self.activity_timeout() => {
                self.push(&ServerFrame::Ping);
                self.ping_sent = Some(now);
            }
            _ => {}
        }
        Action::Continue
    }

    /// Handles one text frame from the peer.
    pub fn handle_text(&mut self, bytes: &[u8], now: Millis) -> Outcome {
        self.run(|s| s.text(bytes, now))
    }

    fn text(&mut self, bytes: &[u8], now: Millis) -> Action {
        self.touch(now);
        let frame = match ClientFrame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.error(None, e.to_string());
                return Action::Continue;
            }
        };
        match frame {
            ClientFrame::Ping => self.push(&ServerFrame::Pong),
            ClientFrame::Pong => {}
            ClientFrame::Subscribe(s) => self.subscribe(s, now),
            ClientFrame::Unsubscribe { channel } => self.unsubscribe(&channel, now),
            ClientFrame::Signin { auth, user_data } => return self.signin(&auth, &user_data),
            ClientFrame::ClientEvent {
                event,
                channel,
                data,
            } => self.client_event(&event, &channel, &data, now),
            _ => self.error(None, "Unsupported event"),
        }
        Action::Continue
    }

    fn joined(&self, name: &str) -> Option<&Joined> {
        self.channels.get(name)
    }

    fn subscribe(&mut self, s: Subscribe, now: Millis) {
        let channel = s.channel.clone();
        if let Err(refusal) = self.try_subscribe(s, now) {
            self.push(&ServerFrame::SubscriptionError {
                channel,
                error: refusal.to_error(),
            });
            self.refused = Some(Box::new(Refused::Subscription(refusal)));
        }
    }

    fn try_subscribe(&mut self, s: Subscribe, now: Millis) -> Result<(), Refusal> {
        let config = self.hub.config();
        let limits = &config.limits;
        let name = ChannelName::with_max_len(&s.channel, limits.max_channel_name_len)
            .map_err(Refusal::InvalidName)?;
        if self.joined(name.as_str()).is_some() {
            let d = self.hub.resend_succeeded(&self.conn, &name);
            self.delivery.add(d);
            return Ok(());
        }
        let kind = name.kind();
        let mut member = None;
        if kind == ChannelKind::ServerToUser {
            if self.user.as_deref() != name.user_id() {
                return Err(Refusal::NotThisUser);
            }
        } else if kind.requires_auth() {
            let channel_data = if kind.is_presence() {
                Some(
                    s.channel_data
                        .as_deref()
                        .ok_or(Refusal::MissingChannelData)?,
                )
            } else {
                None
            };
            let auth = s.auth.as_deref().unwrap_or("");
            let socket_id = self.conn.socket_id.to_string();
            pusher_auth::verify_channel(
                &config.key,
                config.secret.expose(),
                &socket_id,
                name.as_str(),
                channel_data,
                auth,
            )
            .map_err(Refusal::BadSignature)?;
            if let Some(text) = channel_data {
                let ChannelData(m) = ChannelData::parse(text).map_err(Refusal::BadChannelData)?;
                if m.user_id.chars().count() > limits.max_user_id_len {
                    return Err(Refusal::UserIdTooLong {
                        max: limits.max_user_id_len,
                    });
                }
                if m.user_info
                    .as_ref()
                    .is_some_and(|i| i.json().len() > limits.max_user_info_bytes)
                {
                    return Err(Refusal::UserInfoTooLarge {
                        max: limits.max_user_info_bytes,
                    });
                }
                member = Some(m);
            }
        }
        let user_id = member.as_ref().map(|m| Arc::from(m.user_id.as_str()));
        let d = self.hub.subscribe(&self.conn, &name, member, now)?;
        self.delivery.add(d);
        if kind.requires_auth() {
            self.signin_deadline = None;
        }
        self.channels
            .insert(Arc::clone(name.as_arc()), Joined { name, user_id });
        Ok(())
    }

    fn unsubscribe(&mut self, channel: &str, now: Millis) {
        if let Some(joined) = self.channels.remove(channel) {
            let d = self.hub.unsubscribe(self.conn.socket_id, &joined.name, now);
            self.delivery.add(d);
        }
    }

    fn signin(&mut self, auth: &str, user_data: &str) -> Action {
        let hub = Arc::clone(&self.hub);
        let config = hub.config();
        let socket_id = self.conn.socket_id.to_string();
        if let Err(e) = pusher_auth::verify_user(
            &config.key,
            config.secret.expose(),
            &socket_id,
            user_data,
            auth,
        ) {
            return self.signin_failed(format!("Invalid signature: {e}"));
        }
        let data = match UserData::parse(user_data) {
            Ok(d) => d,
            Err(e) => return self.signin_failed(e.to_string()),
        };
        if data.id.chars().count() > config.limits.max_user_id_len {
            let max = config.limits.max_user_id_len;
            return self.signin_failed(format!("user id is longer than {max} characters"));
        }
        match self.user.as_deref() {
            Some(current) if current == data.id => {
                self.push(&ServerFrame::SigninSuccess {
                    user_data: user_data.to_owned(),
                });
                return Action::Continue;
            }
            Some(_) => {
                return self
                    .signin_failed("the connection is already signed in as another user".into());
            }
            None => {}
        }
        self.push(&ServerFrame::SigninSuccess {
            user_data: user_data.to_owned(),
        });
        let max = config.limits.max_watchlist;
        let over = data.watchlist.len() > max;
        let mut watchlist: Vec<Arc<str>> = Vec::new();
        for id in data.watchlist.iter().take(max) {
            if !watchlist.iter().any(|w| **w == **id) {
                watchlist.push(Arc::from(id.as_str()));
            }
        }
        if over {
            self.error(
                Some(ErrorCode::WatchlistLimit),
                format!("Watchlist limit exceeded. Only the first {max} user IDs are accepted."),
            );
        }
        let user: Arc<str> = Arc::from(data.id.as_str());
        let d = self.hub.signin(&self.conn, &user, &watchlist);
        self.delivery.add(d);
        self.user = Some(user);
        self.watchlist = watchlist;
        self.signin_deadline = None;
        Action::Continue
    }

    fn signin_failed(&mut self, message: String) -> Action {
        self.error(Some(ErrorCode::Unauthorized), message);
        if self.hub.config().signin_timeout.is_some() {
            Action::Close(ErrorCode::Unauthorized)
        } else {
            Action::Continue
        }
    }

    fn client_event(&mut self, event: &str, channel: &str, data: &RawJson, now: Millis) {
        let hub = Arc::clone(&self.hub);
        let config = hub.config();
        if !config.client_events {
            self.refused = Some(Box::new(Refused::ClientEvent(
                "client events are not enabled",
            )));
            return self.error(
                Some(ErrorCode::Unauthorized),
                "Client events are not enabled for this app.",
            );
        }
        if let Err(e) = validate_client_event_name(event, config.limits.max_event_name_len) {
            return self.error(None, e.to_string());
        }
        let Some(joined) = self.joined(channel) else {
            self.refused = Some(Box::new(Refused::ClientEvent(
                "not subscribed to the channel",
            )));
            return self.error(
                Some(ErrorCode::Unauthorized),
                "The client is not a member of the specified channel.",
            );
        };
        let (name, user_id) = (joined.name.clone(), joined.user_id.clone());
        if !name.kind().accepts_client_events() {
            return self.error(
                Some(ErrorCode::Unauthorized),
                "Client events are only accepted on private and presence channels.",
            );
        }
        if now >= self.window_start + Duration::from_secs(1) {
            self.window_start = now;
            self.window_events = 0;
        }
        self.window_events += 1;
        if self.window_events > config.limits.client_events_per_sec {
            self.refused = Some(Box::new(Refused::ClientEvent("over client_events_per_sec")));
            return self.error(
                Some(ErrorCode::ClientEventRateLimit),
                ErrorCode::ClientEventRateLimit.message(),
            );
        }
        // Over a broadcast quota: refused, not relayed; the connection
        // stays open.
        if let Err(e) = hub.admit(1) {
            return self.error(None, e.to_string());
        }
        let d = self.hub.client_event(
            self.conn.socket_id,
            &name,
            event,
            &data.text(),
            user_id.as_deref(),
        );
        self.delivery.add(d);
    }

    /// Ends the connection: leaves every channel (with `member_removed` and
    /// vacated notifications), signs the user out, frees the quota slot.
    pub fn close(mut self, now: Millis) {
        self.release(now);
    }

    fn release(&mut self, now: Millis) {
        for (_, joined) in std::mem::take(&mut self.channels) {
            let _ = self.hub.unsubscribe(self.conn.socket_id, &joined.name, now);
        }
        if let Some(user) = self.user.take() {
            let _ = self
                .hub
                .signout(self.conn.socket_id, &user, &self.watchlist);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // After `close` there is nothing left to release; the quota slot is
        // freed here, exactly once.
        self.release(self.last_seen);
        self.hub.disconnected();
    }
}
