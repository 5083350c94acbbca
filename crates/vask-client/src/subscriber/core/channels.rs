//! The channel table: what is subscribed, how each subscription stands,
//! presence members, encryption keys, and the channel frames the server
//! sends.

use std::collections::BTreeMap;
use std::fmt;

use pusher_auth::{
    ChannelAuthResponse, EncryptedPayload, decrypt_with_shared_secret, shared_secret_from_base64,
};
use pusher_proto::{
    ChannelData, ChannelEvent, ChannelKind, ChannelName, ClientFrame, Member, ServerFrame,
    Subscribe, SubscriptionError, SubscriptionErrorKind,
};
use serde::Serialize;

use super::output::{Action, CoreEvent, Outputs, SubStatus};
use crate::error::{AuthorizerError, SubscribeFailure};
use crate::subscriber::Event;

/// One subscribed (or subscribing) channel.
pub(super) struct ChannelState {
    pub(super) kind: ChannelKind,
    pub(super) status: SubStatus,
    /// Presence: the members, in the server's order, then joins.
    pub(super) members: Vec<Member>,
    /// Presence: this connection's user id (from the signed channel_data).
    pub(super) me: Option<String>,
    /// Encrypted: the key from the authorizer.
    shared_secret: Option<[u8; 32]>,
    /// The last `subscription_count` received.
    pub(super) subscription_count: Option<u64>,
}

impl fmt::Debug for ChannelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelState")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("members", &self.members.len())
            .field("me", &self.me)
            .field("shared_secret", &self.shared_secret.map(|_| "<redacted>"))
            .field("subscription_count", &self.subscription_count)
            .finish()
    }
}

/// Every channel, by name: resubscriptions go in name order, so a run is
/// reproducible.
#[derive(Debug, Default)]
pub(super) struct Channels {
    map: BTreeMap<String, ChannelState>,
}

/// `pusher:decryption_error` data.
#[derive(Serialize)]
struct DecryptionError<'a> {
    event: &'a str,
    error: &'a str,
}

/// The name pusher-js gives a protocol frame when it hands it to the
/// channel's listeners: `pusher_internal:x` becomes `pusher:x`.
fn listener_name(frame: &ServerFrame) -> String {
    let name = frame.event_name();
    match name.strip_prefix("pusher_internal:") {
        Some(rest) => format!("pusher:{rest}"),
        None => name.to_owned(),
    }
}

fn subscribe_frame(channel: String, auth: String, channel_data: Option<String>) -> ClientFrame {
    ClientFrame::Subscribe(Subscribe {
        channel,
        auth: Some(auth),
        channel_data,
    })
}

impl Channels {
    pub(super) fn get(&self, name: &str) -> Option<&ChannelState> {
        self.map.get(name)
    }

    /// The channels a user subscribed (not the user's own), in name order.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.map
            .iter()
            .filter(|(_, c)| c.kind != ChannelKind::ServerToUser)
            .map(|(n, _)| n.as_str())
    }

    /// Adds `name` as pending; false if it is there already.
    pub(super) fn insert(&mut self, name: &str, kind: ChannelKind) -> bool {
        if self.map.contains_key(name) {
            return false;
        }
        let state = ChannelState {
            kind,
            status: SubStatus::Pending,
            members: Vec::new(),
            me: None,
            shared_secret: None,
            subscription_count: None,
        };
        self.map.insert(name.to_owned(), state);
        true
    }

    /// Removes `name`: no event of it follows. False if it was not there.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    fn set_status(&mut self, name: &str, status: SubStatus, out: &mut Outputs) {
        if let Some(channel) = self.map.get_mut(name)
            && channel.status != status
        {
            channel.status = status.clone();
            out.event(CoreEvent::Status {
                channel: name.to_owned(),
                status,
            });
        }
    }

    /// Asks for the subscription of `name` on connection `socket_id`: a
    /// public channel at once, the others once the authorizer has signed it
    /// for this socket id.
    pub(super) fn request(
        &mut self,
        name: &str,
        socket_id: &str,
        has_authorizer: bool,
        out: &mut Outputs,
    ) {
        let Some(channel) = self.map.get(name) else {
            return;
        };
        if !channel.kind.requires_auth() {
            out.send(&subscribe_frame(name.to_owned(), String::new(), None));
        } else if has_authorizer {
            out.action(Action::AuthorizeChannel {
                socket_id: socket_id.to_owned(),
                channel: name.to_owned(),
            });
        } else {
            let error = AuthorizerError::new("no authorizer configured for a private channel");
            self.fail(name, SubscribeFailure::Authorizer(error), out);
        }
    }

    /// A new connection: every channel is pending again and requested,
    /// except the user's own, which waits for `signin_success`.
    pub(super) fn connected(&mut self, socket_id: &str, has_authorizer: bool, out: &mut Outputs) {
        let names: Vec<String> = self.map.keys().cloned().collect();
        for name in &names {
            self.set_status(name, SubStatus::Pending, out);
        }
        for name in &names {
            if self.map[name].kind != ChannelKind::ServerToUser {
                self.request(name, socket_id, has_authorizer, out);
            }
        }
    }

    /// The connection is gone: nothing is subscribed any more (failures
    /// stay until the next connection retries them).
    pub(super) fn disconnected(&mut self, out: &mut Outputs) {
        let subscribed: Vec<String> = (self.map.iter())
            .filter(|(_, c)| c.status == SubStatus::Subscribed)
            .map(|(n, _)| n.clone())
            .collect();
        for name in subscribed {
            self.set_status(&name, SubStatus::Pending, out);
        }
    }

    /// The subscriber stops: every channel ends, unsubscribed.
    pub(super) fn stop(&mut self, out: &mut Outputs) {
        let names: Vec<String> = self.map.keys().cloned().collect();
        for name in names {
            self.set_status(
                &name,
                SubStatus::Failed(SubscribeFailure::Unsubscribed),
                out,
            );
        }
        self.map.clear();
    }

    /// The authorizer answered for `name` on the current connection: send
    /// the subscription, or fail it.
    pub(super) fn authorized(
        &mut self,
        name: &str,
        answer: Result<ChannelAuthResponse, AuthorizerError>,
        out: &mut Outputs,
    ) {
        let response = match answer {
            Ok(response) => response,
            Err(e) => return self.fail(name, SubscribeFailure::Authorizer(e), out),
        };
        let Some(channel) = self.map.get_mut(name) else {
            return; // unsubscribed meanwhile
        };
        let invalid = |m: &str| SubscribeFailure::Authorizer(AuthorizerError::new(m));
        if channel.kind.is_encrypted() {
            let secret = response.shared_secret.as_deref();
            match secret.map(shared_secret_from_base64) {
                Some(Ok(key)) => channel.shared_secret = Some(key),
                _ => {
                    let failure = invalid(
                        "auth response has no valid shared_secret for an encrypted channel",
                    );
                    return self.fail(name, failure, out);
                }
            }
        }
        if channel.kind.is_presence() {
            match response.channel_data.as_deref().map(ChannelData::parse) {
                Some(Ok(ChannelData(member))) => channel.me = Some(member.user_id),
                _ => {
                    let failure =
                        invalid("auth response has no valid channel_data for a presence channel");
                    return self.fail(name, failure, out);
                }
            }
        }
        // The shared secret stays here: the server never sees it.
        let frame = subscribe_frame(name.to_owned(), response.auth, response.channel_data);
        out.send(&frame);
    }

    /// A subscription failed: record it and tell the channel's listeners
    /// with a `pusher:subscription_error`.
    pub(super) fn fail(&mut self, name: &str, failure: SubscribeFailure, out: &mut Outputs) {
        if !self.map.contains_key(name) {
            return;
        }
        let error = match &failure {
            SubscribeFailure::Refused(e) => e.clone(),
            SubscribeFailure::Authorizer(e) => SubscriptionError {
                kind: SubscriptionErrorKind::AuthError,
                error: e.message.clone(),
                status: e.status.unwrap_or(0),
            },
            SubscribeFailure::Unsubscribed => SubscriptionError {
                kind: SubscriptionErrorKind::AuthError,
                error: failure.to_string(),
                status: 0,
            },
        };
        self.set_status(name, SubStatus::Failed(failure), out);
        let frame = ServerFrame::SubscriptionError {
            channel: name.to_owned(),
            error,
        };
        self.relay(name, &frame, out);
    }

    /// Hands a protocol frame about `name` to its listeners under
    /// pusher-js's name, with the frame's data.
    fn relay(&self, name: &str, frame: &ServerFrame, out: &mut Outputs) {
        self.emit(name, listener_name(frame), frame.data_text(), out);
    }

    fn emit(&self, name: &str, event: String, data: String, out: &mut Outputs) {
        if let Some(channel) = self.map.get(name) {
            let event = Event {
                channel: name.to_owned(),
                name: event,
                data,
                user_id: None,
            };
            out.deliver(channel.kind, event);
        }
    }

    /// `subscription_succeeded` (with the member list on presence channels).
    pub(super) fn succeeded(&mut self, frame: &ServerFrame, out: &mut Outputs) {
        let (name, members) = match frame {
            ServerFrame::SubscriptionSucceeded { channel } => (channel, None),
            ServerFrame::PresenceSubscriptionSucceeded { channel, members } => {
                (channel, Some(members))
            }
            _ => return,
        };
        let Some(channel) = self.map.get_mut(name) else {
            return;
        };
        if let Some(members) = members {
            channel.members.clone_from(members);
        }
        self.set_status(name, SubStatus::Subscribed, out);
        self.relay(name, frame, out);
    }

    /// `member_added`: a new member, or new info for a known one.
    pub(super) fn member_added(&mut self, frame: &ServerFrame, out: &mut Outputs) {
        let ServerFrame::MemberAdded {
            channel: name,
            member,
        } = frame
        else {
            return;
        };
        let Some(channel) = self.map.get_mut(name) else {
            return;
        };
        match channel
            .members
            .iter_mut()
            .find(|m| m.user_id == member.user_id)
        {
            Some(known) => known.clone_from(member),
            None => channel.members.push(member.clone()),
        }
        self.relay(name, frame, out);
    }

    /// `member_removed`: the listeners get the member with the info it had,
    /// as pusher-js gives it.
    pub(super) fn member_removed(&mut self, frame: &ServerFrame, out: &mut Outputs) {
        let ServerFrame::MemberRemoved {
            channel: name,
            user_id,
        } = frame
        else {
            return;
        };
        let Some(channel) = self.map.get_mut(name) else {
            return;
        };
        let member = match channel.members.iter().position(|m| m.user_id == *user_id) {
            Some(i) => channel.members.remove(i),
            None => Member {
                user_id: user_id.clone(),
                user_info: None,
            },
        };
        // A Member always serializes (strings and raw JSON).
        let data = serde_json::to_string(&member).unwrap_or_default();
        self.emit(name, listener_name(frame), data, out);
    }

    /// `subscription_count`.
    pub(super) fn count(&mut self, frame: &ServerFrame, out: &mut Outputs) {
        let ServerFrame::SubscriptionCount {
            channel: name,
            count,
        } = frame
        else {
            return;
        };
        let Some(channel) = self.map.get_mut(name) else {
            return;
        };
        channel.subscription_count = Some(*count);
        self.relay(name, frame, out);
    }

    /// `cache_miss` and other frames that only go to the listeners.
    pub(super) fn notify(&self, name: &str, frame: &ServerFrame, out: &mut Outputs) {
        self.relay(name, frame, out);
    }

    /// A published or client event, decrypted on encrypted channels (a
    /// failure becomes `pusher:decryption_error`, with the event's name).
    pub(super) fn event(&self, e: ChannelEvent, out: &mut Outputs) {
        let Some(channel) = self.map.get(&e.channel) else {
            return;
        };
        let data = if channel.kind.is_encrypted() {
            match decrypt(channel.shared_secret.as_ref(), &e.data) {
                Ok(plain) => plain,
                Err(error) => {
                    let data = DecryptionError {
                        event: &e.event,
                        error: &error,
                    };
                    let data = serde_json::to_string(&data).unwrap_or_default();
                    return self.emit(&e.channel, "pusher:decryption_error".into(), data, out);
                }
            }
        } else {
            e.data
        };
        let event = Event {
            channel: e.channel,
            name: e.event,
            data,
            user_id: e.user_id,
        };
        out.deliver(channel.kind, event);
    }

    /// Signed in as `user`: joins its channel, leaving the channel of a
    /// user signed in before.
    pub(super) fn join_user_channel(&mut self, user: &ChannelName, out: &mut Outputs) {
        self.map
            .retain(|n, c| c.kind != ChannelKind::ServerToUser || n.as_str() == user.as_str());
        self.insert(user.as_str(), ChannelKind::ServerToUser);
        out.send(&subscribe_frame(user.to_string(), String::new(), None));
    }
}

/// The plaintext of an encrypted event's data.
fn decrypt(key: Option<&[u8; 32]>, data: &str) -> Result<String, String> {
    let key = key.ok_or("no shared secret")?;
    let payload = EncryptedPayload::from_json(data).map_err(|e| e.to_string())?;
    let bytes = decrypt_with_shared_secret(key, &payload).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "plaintext is not UTF-8".to_owned())
}
