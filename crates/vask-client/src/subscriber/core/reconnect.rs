//! Why a connection ended, and what follows: reconnect at once, after a
//! delay, or never, by the close code's class.
//!
//! | end | next |
//! |---|---|
//! | 4000-4099 (and 4300-4399, as pusher-js) | never |
//! | 4100-4199 | after the backoff, at least 1 s |
//! | 4200-4299 | at once; after the backoff if the connection lasted < 1 s |
//! | another code from 4000, a network failure, TLS | after the backoff |
//! | no pong | at once |
//!
//! Only the first attempt differs: if it fails, the subscriber stops and
//! `Subscriber::connect` returns the error.

use std::ops::RangeFrom;
use std::time::Duration;

use pusher_proto::ReconnectClass;

use super::backoff::Backoff;
use super::output::TransportEnd;
use crate::error::SocketError;

/// Close codes from 4000 up are the application's (RFC 6455, 7.4.2), here
/// Pusher's; below, the close says nothing about reconnecting.
const APPLICATION_CODES: RangeFrom<u16> = 4000..;

/// The least wait after a 4100-4199 close.
const MIN_BACKOFF_DELAY: Duration = Duration::from_secs(1);

/// A 4200-4299 close sooner than this after opening is not followed at
/// once (a server that closes every new connection must not make us spin).
const QUICK_CLOSE: Duration = Duration::from_secs(1);

/// Why a connection, or an attempt to open one, ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum End {
    /// The socket failed or closed without a Pusher code.
    Network(String),
    /// The TLS handshake failed (retried as a network failure).
    Tls(String),
    /// The server closed with a Pusher code (in the close frame, or in a
    /// `pusher:error` before the socket went away).
    Closed { code: u16, message: String },
    /// No answer to our ping.
    PongTimeout,
}

/// What follows the end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reconnect {
    /// Connect again now.
    Now,
    /// Connect again after this delay.
    After(Duration),
    /// Stop, with this code and reason.
    Never { code: u16, reason: String },
}

/// The end of a connection from what the transport saw and the last
/// Pusher-coded `pusher:error` received on it (`code`, message), which
/// names the reason when the close frame does not. `handshake`: the
/// connection had not been established yet.
pub(super) fn end_of(
    transport: TransportEnd,
    last_error: Option<(u16, String)>,
    handshake: bool,
) -> End {
    let error = last_error.filter(|(code, _)| APPLICATION_CODES.contains(code));
    let closed = |(code, message)| End::Closed { code, message };
    match transport {
        TransportEnd::Error(message) => End::Network(message),
        TransportEnd::Tls(message) => End::Tls(message),
        TransportEnd::CloseFrame {
            code: Some(code),
            reason,
        } if APPLICATION_CODES.contains(&code) => End::Closed {
            code,
            // The error frame usually says more than the close reason.
            message: match error {
                Some((c, message)) if c == code => message,
                _ => reason,
            },
        },
        TransportEnd::CloseFrame { code, .. } => error.map_or_else(
            || {
                End::Network(code.map_or_else(
                    || "connection closed".to_owned(),
                    |code| format!("closed with {code}"),
                ))
            },
            closed,
        ),
        TransportEnd::Eof => error.map_or_else(
            || {
                End::Network(if handshake {
                    "closed before the handshake".to_owned()
                } else {
                    "connection closed".to_owned()
                })
            },
            closed,
        ),
    }
}

/// What follows `end`, for a connection that was open for `uptime` (`None`:
/// it never was established).
pub(super) fn decide(end: &End, uptime: Option<Duration>, backoff: &mut Backoff) -> Reconnect {
    match end {
        End::PongTimeout => Reconnect::Now,
        End::Network(_) | End::Tls(_) => Reconnect::After(backoff.next_delay()),
        End::Closed { code, message } => match ReconnectClass::of(*code) {
            ReconnectClass::ReconnectImmediately
                if uptime.is_some_and(|uptime| uptime < QUICK_CLOSE) =>
            {
                Reconnect::After(backoff.next_delay())
            }
            ReconnectClass::ReconnectImmediately => Reconnect::Now,
            ReconnectClass::ReconnectWithBackoff => {
                Reconnect::After(backoff.next_delay().max(MIN_BACKOFF_DELAY))
            }
            ReconnectClass::Other => Reconnect::After(backoff.next_delay()),
            ReconnectClass::DoNotReconnect | ReconnectClass::FrameOnly => Reconnect::Never {
                code: *code,
                reason: message.clone(),
            },
        },
    }
}

/// The error of a first attempt that ended with `end`, and its code.
pub(super) fn first_attempt_error(end: End) -> (SocketError, Option<u16>) {
    match end {
        End::Closed { code, message } => (SocketError::Refused { code, message }, Some(code)),
        End::Network(message) => (SocketError::Connect(message), None),
        End::Tls(message) => (SocketError::Tls(message), None),
        // Only an established connection waits for pongs.
        End::PongTimeout => (SocketError::Closed, None),
    }
}

/// Whether a `pusher:error` with `code` names the reason of a close that
/// may follow: a code of the reconnect classes (4000-4299), not an
/// informational one.
pub(super) fn may_explain_a_close(code: Option<u16>) -> bool {
    code.is_some_and(|code| {
        matches!(
            ReconnectClass::of(code),
            ReconnectClass::DoNotReconnect
                | ReconnectClass::ReconnectWithBackoff
                | ReconnectClass::ReconnectImmediately
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16) -> TransportEnd {
        TransportEnd::CloseFrame {
            code: Some(code),
            reason: "bye".into(),
        }
    }

    fn closed(code: u16, message: &str) -> End {
        End::Closed {
            code,
            message: message.into(),
        }
    }

    #[test]
    fn a_close_code_from_4000_is_the_reason_with_the_error_message() {
        let error = Some((4009, "terminated".to_owned()));
        assert_eq!(
            end_of(close(4009), error.clone(), false),
            closed(4009, "terminated")
        );
        assert_eq!(end_of(close(4200), error, false), closed(4200, "bye"));
        assert_eq!(end_of(close(4500), None, false), closed(4500, "bye"));
    }

    #[test]
    fn without_a_pusher_close_code_the_last_error_decides() {
        let error = Some((4100, "over capacity".to_owned()));
        assert_eq!(
            end_of(close(1000), error.clone(), false),
            closed(4100, "over capacity")
        );
        assert_eq!(
            end_of(TransportEnd::Eof, error, false),
            closed(4100, "over capacity")
        );
        assert_eq!(
            end_of(close(1006), None, false),
            End::Network("closed with 1006".into())
        );
        let no_code = TransportEnd::CloseFrame {
            code: None,
            reason: String::new(),
        };
        assert_eq!(
            end_of(no_code, None, false),
            End::Network("connection closed".into())
        );
        assert_eq!(
            end_of(TransportEnd::Eof, None, true),
            End::Network("closed before the handshake".into())
        );
        // A code-less error (kept as 0) names nothing.
        assert_eq!(
            end_of(TransportEnd::Eof, Some((0, "x".into())), false),
            End::Network("connection closed".into())
        );
    }

    #[test]
    fn the_class_of_the_code_decides() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(200), 1);
        let long = Some(Duration::from_secs(5));
        assert_eq!(
            decide(&closed(4001, "x"), long, &mut b),
            Reconnect::Never {
                code: 4001,
                reason: "x".into()
            }
        );
        assert!(matches!(
            decide(&closed(4301, "x"), long, &mut b),
            Reconnect::Never { code: 4301, .. }
        ));
        assert_eq!(decide(&closed(4200, "x"), long, &mut b), Reconnect::Now);
        // A handshake refused with 4200 is retried at once.
        assert_eq!(decide(&closed(4201, "x"), None, &mut b), Reconnect::Now);
        let Reconnect::After(quick) =
            decide(&closed(4200, "x"), Some(Duration::from_millis(10)), &mut b)
        else {
            panic!("a quick close waits")
        };
        assert!(quick < Duration::from_secs(1));
        assert!(matches!(
            decide(&closed(4100, "x"), long, &mut b),
            Reconnect::After(d) if d >= MIN_BACKOFF_DELAY
        ));
        assert_eq!(decide(&End::PongTimeout, long, &mut b), Reconnect::Now);
        assert!(matches!(
            decide(&End::Network("x".into()), None, &mut b),
            Reconnect::After(d) if d <= Duration::from_millis(200)
        ));
    }

    #[test]
    fn informational_codes_do_not_explain_a_close() {
        assert!(may_explain_a_close(Some(4009)));
        assert!(may_explain_a_close(Some(4100)));
        assert!(may_explain_a_close(Some(4201)));
        assert!(!may_explain_a_close(Some(4301)));
        assert!(!may_explain_a_close(Some(1000)));
        assert!(!may_explain_a_close(None));
    }
}
