//! Sign-in: asked once by the user, repeated on every new connection until
//! it fails; the user's channel follows `signin_success`.

use pusher_auth::UserAuthResponse;
use pusher_proto::{ChannelName, ClientFrame, ErrorCode, UserData};

use super::output::{Action, CoreEvent, Outputs};
use crate::error::AuthorizerError;

/// Sign-in state.
#[derive(Debug, Default)]
pub(super) struct User {
    /// `signin()` was called: sign in again on every new connection.
    requested: bool,
    /// The id of `signin_success` on the current connection.
    id: Option<String>,
    /// A sign-in waits for the authorizer or the server on the current
    /// connection.
    in_flight: bool,
}

impl User {
    pub(super) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// `signin()` was called (and the user is not signed in).
    pub(super) fn request(&mut self) {
        self.requested = true;
    }

    /// A new connection: nobody is signed in on it. Returns whether to sign
    /// in again.
    pub(super) fn connected(&mut self) -> bool {
        self.id = None;
        self.in_flight = false;
        self.requested
    }

    /// The connection is gone.
    pub(super) fn disconnected(&mut self) {
        self.id = None;
    }

    /// The subscriber stops.
    pub(super) fn stop(&mut self) {
        *self = Self::default();
    }

    /// Starts signing in on connection `socket_id` (once at a time).
    pub(super) fn start(&mut self, socket_id: &str, has_authorizer: bool, out: &mut Outputs) {
        if self.in_flight {
            return;
        }
        if !has_authorizer {
            return self.failed("no authorizer configured".into(), out);
        }
        self.in_flight = true;
        out.action(Action::AuthenticateUser {
            socket_id: socket_id.to_owned(),
        });
    }

    /// Sign-in failed: the callers learn why, and it is not repeated.
    fn failed(&mut self, message: String, out: &mut Outputs) {
        self.in_flight = false;
        self.requested = false;
        out.event(CoreEvent::Signin(Err(message)));
    }

    /// The authorizer answered for the current connection.
    pub(super) fn authenticated(
        &mut self,
        answer: Result<UserAuthResponse, AuthorizerError>,
        out: &mut Outputs,
    ) {
        match answer {
            Ok(r) => out.send(&ClientFrame::Signin {
                auth: r.auth,
                user_data: r.user_data,
            }),
            Err(e) => self.failed(format!("authorizer: {e}"), out),
        }
    }

    /// A `pusher:error`: while a sign-in is pending, a 4009 is its answer.
    pub(super) fn error(&mut self, code: Option<u16>, message: &str, out: &mut Outputs) {
        if self.in_flight && code == Some(ErrorCode::Unauthorized.code()) {
            self.failed(message.to_owned(), out);
        }
    }

    /// `signin_success`: returns the user's channel to join.
    pub(super) fn succeeded(&mut self, user_data: &str, out: &mut Outputs) -> Option<ChannelName> {
        self.in_flight = false;
        let id = match UserData::parse(user_data) {
            Ok(data) => data.id,
            Err(e) => {
                self.failed(format!("signin_success: {e}"), out);
                return None;
            }
        };
        self.id = Some(id.clone());
        out.event(CoreEvent::Signin(Ok(id.clone())));
        // Only an id with control characters has no channel; the sign-in
        // stands, the server could not address the user anyway.
        ChannelName::server_to_user(&id).ok()
    }
}
