//! Why a subscription is refused: one enum, each case with its
//! `pusher:subscription_error` type and status, decided here and nowhere
//! else.

use pusher_auth::AuthError;
use pusher_proto::{ChannelNameError, SubscriptionError, SubscriptionErrorKind, UserDataError};

/// A refused `pusher:subscribe`; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The channel name breaks the naming rules.
    #[error("{0}")]
    InvalidName(ChannelNameError),
    /// A `#server-to-user-` channel of another user than the signed-in one.
    #[error(
        "only a connection signed in as this user may subscribe to its #server-to-user channel"
    )]
    NotThisUser,
    /// A presence subscription without `channel_data`.
    #[error("presence channels need channel_data")]
    MissingChannelData,
    /// The auth signature does not match.
    #[error("Invalid signature: {0}")]
    BadSignature(AuthError),
    /// `channel_data` is not presence member data.
    #[error("{0}")]
    BadChannelData(UserDataError),
    /// The presence `user_id` is over the limit.
    #[error("user_id is longer than {max} characters")]
    UserIdTooLong {
        /// The limit in force.
        max: usize,
    },
    /// The presence `user_info` is over the limit.
    #[error("user_info is larger than {max} bytes")]
    UserInfoTooLarge {
        /// The limit in force.
        max: usize,
    },
    /// The presence channel has as many distinct members as it may.
    #[error("presence channel {channel} has reached its limit of {max} members")]
    MemberLimit {
        /// The channel.
        channel: String,
        /// The limit in force.
        max: usize,
    },
}

impl Refusal {
    /// The `type` pusher-js reports.
    pub fn kind(&self) -> SubscriptionErrorKind {
        match self {
            Self::InvalidName(_) | Self::MissingChannelData | Self::BadChannelData(_) => {
                SubscriptionErrorKind::InvalidChannel
            }
            Self::NotThisUser | Self::BadSignature(_) => SubscriptionErrorKind::AuthError,
            Self::UserIdTooLong { .. }
            | Self::UserInfoTooLarge { .. }
            | Self::MemberLimit { .. } => SubscriptionErrorKind::LimitReached,
        }
    }

    /// The HTTP-like status in the error's data.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidName(_) | Self::MissingChannelData | Self::BadChannelData(_) => 400,
            Self::BadSignature(_) => 401,
            Self::NotThisUser | Self::MemberLimit { .. } => 403,
            Self::UserIdTooLong { .. } | Self::UserInfoTooLarge { .. } => 413,
        }
    }

    /// The data of the `pusher:subscription_error` frame.
    pub fn to_error(&self) -> SubscriptionError {
        SubscriptionError {
            kind: self.kind(),
            error: self.to_string(),
            status: self.status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_kind_and_status() {
        let cases = [
            (
                Refusal::InvalidName(ChannelNameError::Empty),
                "InvalidChannel",
                400,
            ),
            (Refusal::NotThisUser, "AuthError", 403),
            (Refusal::MissingChannelData, "InvalidChannel", 400),
            (
                Refusal::BadSignature(AuthError::BadSignature),
                "AuthError",
                401,
            ),
            (Refusal::UserIdTooLong { max: 128 }, "LimitReached", 413),
            (Refusal::UserInfoTooLarge { max: 2048 }, "LimitReached", 413),
            (
                Refusal::MemberLimit {
                    channel: "presence-x".into(),
                    max: 100,
                },
                "LimitReached",
                403,
            ),
        ];
        for (r, kind, status) in cases {
            let e = r.to_error();
            assert_eq!(format!("{:?}", e.kind), kind, "{r}");
            assert_eq!(e.status, status, "{r}");
            assert_eq!(e.error, r.to_string());
        }
    }
}
