//! The protocol's error and close codes.
//!
//! One enum holds every code the protocol defines, with its number, its
//! message and what a client does when it receives it. Codes 4000-4299 may be
//! sent as WebSocket close codes; 4300-4399 are only ever sent inside a
//! `pusher:error` frame, because pusher-js stops reconnecting on a close code
//! in that range.

use std::fmt;

/// What a client should do after receiving a code, by the protocol's ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectClass {
    /// 4000-4099: the same connection attempt will fail again; do not
    /// reconnect unchanged.
    DoNotReconnect,
    /// 4100-4199: reconnect after a backoff of at least one second.
    ReconnectWithBackoff,
    /// 4200-4299: reconnect immediately.
    ReconnectImmediately,
    /// 4300-4399: informational; sent in `pusher:error` frames only and the
    /// connection stays open.
    FrameOnly,
    /// Any other number: not a Pusher code (for example a WebSocket close
    /// code such as 1006).
    Other,
}

impl ReconnectClass {
    /// Classifies any code number by the protocol's ranges.
    pub fn of(code: u16) -> Self {
        match code {
            4000..=4099 => Self::DoNotReconnect,
            4100..=4199 => Self::ReconnectWithBackoff,
            4200..=4299 => Self::ReconnectImmediately,
            4300..=4399 => Self::FrameOnly,
            _ => Self::Other,
        }
    }
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $msg:literal; )*) => {
        /// Every error and close code of the Pusher protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The code's number, as sent in frames and close frames.
            pub const fn code(self) -> u16 {
                match self { $(ErrorCode::$name => $num,)* }
            }

            /// The protocol's message for this code.
            pub const fn message(self) -> &'static str {
                match self { $(ErrorCode::$name => $msg,)* }
            }

            /// The code with this number, if the protocol defines one.
            pub const fn from_code(code: u16) -> Option<Self> {
                match code { $($num => Some(ErrorCode::$name),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// The application only accepts TLS connections; reconnect with `wss://`.
    SslOnly = 4000, "Application only accepts SSL connections, reconnect using wss://";
    /// No application has the key in the connection URL.
    AppNotFound = 4001, "Application does not exist";
    /// The application is disabled.
    AppDisabled = 4003, "Application disabled";
    /// The application has reached its connection quota.
    OverConnectionQuota = 4004, "Application is over connection quota";
    /// The WebSocket path is not `/app/{key}`.
    PathNotFound = 4005, "Path not found";
    /// The `version` query parameter is malformed.
    InvalidVersion = 4006, "Invalid version string format";
    /// The `protocol` query parameter names a version the server does not speak.
    UnsupportedProtocol = 4007, "Unsupported protocol version";
    /// No protocol version was supplied.
    NoProtocolVersion = 4008, "No protocol version supplied";
    /// The connection is not authorized (bad sign-in, terminated by the app).
    Unauthorized = 4009, "Connection is unauthorized";
    /// The server is over capacity, or the client could not keep up.
    OverCapacity = 4100, "Over capacity";
    /// Generic: reconnect immediately (used on graceful shutdown).
    Reconnect = 4200, "Generic reconnect immediately";
    /// The client did not answer the server's ping in time.
    PongNotReceived = 4201, "Pong reply not received";
    /// The connection was closed after a long inactivity.
    ClosedAfterInactivity = 4202, "Closed after inactivity";
    /// A client event was refused because the connection sent too many.
    ClientEventRateLimit = 4301, "Client event rejected due to rate limit";
    /// The sign-in watchlist had more ids than allowed; the first ones are used.
    WatchlistLimit = 4302, "Watchlist limit exceeded. Only the first 100 user IDs are accepted.";
}

impl ErrorCode {
    /// What a client does on receiving this code.
    pub fn reconnect_class(self) -> ReconnectClass {
        ReconnectClass::of(self.code())
    }

    /// Whether the code may be used as a WebSocket close code. Codes in
    /// 4300-4399 may not: pusher-js would stop reconnecting.
    pub fn may_close(self) -> bool {
        self.reconnect_class() != ReconnectClass::FrameOnly
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ErrorCode::from_code(4002), None);
        assert_eq!(ErrorCode::from_code(1000), None);
    }

    #[test]
    fn classes_follow_the_ranges() {
        use ReconnectClass::*;
        let table = [
            (ErrorCode::SslOnly, DoNotReconnect),
            (ErrorCode::AppNotFound, DoNotReconnect),
            (ErrorCode::AppDisabled, DoNotReconnect),
            (ErrorCode::OverConnectionQuota, DoNotReconnect),
            (ErrorCode::PathNotFound, DoNotReconnect),
            (ErrorCode::InvalidVersion, DoNotReconnect),
            (ErrorCode::UnsupportedProtocol, DoNotReconnect),
            (ErrorCode::NoProtocolVersion, DoNotReconnect),
            (ErrorCode::Unauthorized, DoNotReconnect),
            (ErrorCode::OverCapacity, ReconnectWithBackoff),
            (ErrorCode::Reconnect, ReconnectImmediately),
            (ErrorCode::PongNotReceived, ReconnectImmediately),
            (ErrorCode::ClosedAfterInactivity, ReconnectImmediately),
            (ErrorCode::ClientEventRateLimit, FrameOnly),
            (ErrorCode::WatchlistLimit, FrameOnly),
        ];
        assert_eq!(table.len(), ErrorCode::ALL.len());
        for (code, class) in table {
            assert_eq!(code.reconnect_class(), class, "{code}");
        }
        assert_eq!(ReconnectClass::of(1006), Other);
    }

    #[test]
    fn frame_only_codes_never_close() {
        assert!(!ErrorCode::ClientEventRateLimit.may_close());
        assert!(!ErrorCode::WatchlistLimit.may_close());
        assert!(ErrorCode::PongNotReceived.may_close());
        assert!(ErrorCode::Unauthorized.may_close());
    }

    #[test]
    fn messages_match_the_protocol() {
        assert_eq!(
            ErrorCode::PongNotReceived.message(),
            "Pong reply not received"
        );
        assert_eq!(
            ErrorCode::WatchlistLimit.message(),
            "Watchlist limit exceeded. Only the first 100 user IDs are accepted."
        );
        assert_eq!(
            ErrorCode::Unauthorized.to_string(),
            "4009 Connection is unauthorized"
        );
    }
}
