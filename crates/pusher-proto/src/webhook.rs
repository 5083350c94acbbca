//! Webhook bodies.

use serde::{Deserialize, Serialize};

use crate::SocketId;

/// A webhook request body: `{"time_ms": ..., "events": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookBody {
    /// Milliseconds since the Unix epoch when the batch was sent.
    pub time_ms: u64,
    /// The events, in the order they happened.
    pub events: Vec<WebhookEvent>,
}

/// One webhook event, tagged by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WebhookEvent {
    /// A channel got its first subscriber.
    ChannelOccupied {
        /// The channel.
        channel: String,
    },
    /// A channel lost its last subscriber.
    ChannelVacated {
        /// The channel.
        channel: String,
    },
    /// A user joined a presence channel (first connection).
    MemberAdded {
        /// The presence channel.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// A user left a presence channel (last connection).
    MemberRemoved {
        /// The presence channel.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// A client sent a client event.
    ClientEvent {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The event data as text.
        data: String,
        /// The sender's socket id.
        socket_id: SocketId,
        /// The sender's user id, on presence channels.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A subscriber joined a cache channel with nothing cached.
    CacheMiss {
        /// The cache channel.
        channel: String,
    },
    /// A channel's subscription count changed.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// The new count.
        subscription_count: u64,
    },
}

impl WebhookEvent {
    /// Every event name, as `event_types` filters name them.
    pub const NAMES: [&'static str; 7] = [
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count",
    ];

    /// The event's `name` field.
    pub fn name(&self) -> &'static str {
        let i = match self {
            Self::ChannelOccupied { .. } => 0,
            Self::ChannelVacated { .. } => 1,
            Self::MemberAdded { .. } => 2,
            Self::MemberRemoved { .. } => 3,
            Self::ClientEvent { .. } => 4,
            Self::CacheMiss { .. } => 5,
            Self::SubscriptionCount { .. } => 6,
        };
        Self::NAMES[i]
    }

    /// The channel the event is about.
    pub fn channel(&self) -> &str {
        match self {
            Self::ChannelOccupied { channel }
            | Self::ChannelVacated { channel }
            | Self::MemberAdded { channel, .. }
            | Self::MemberRemoved { channel, .. }
            | Self::ClientEvent { channel, .. }
            | Self::CacheMiss { channel }
            | Self::SubscriptionCount { channel, .. } => channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_shape() {
        let cases = [
            (
                WebhookEvent::ChannelOccupied {
                    channel: "my-channel".into(),
                },
                r#"{"name":"channel_occupied","channel":"my-channel"}"#,
            ),
            (
                WebhookEvent::ChannelVacated {
                    channel: "my-channel".into(),
                },
                r#"{"name":"channel_vacated","channel":"my-channel"}"#,
            ),
            (
                WebhookEvent::MemberAdded {
                    channel: "presence-x".into(),
                    user_id: "a".into(),
                },
                r#"{"name":"member_added","channel":"presence-x","user_id":"a"}"#,
            ),
            (
                WebhookEvent::MemberRemoved {
                    channel: "presence-x".into(),
                    user_id: "a".into(),
                },
                r#"{"name":"member_removed","channel":"presence-x","user_id":"a"}"#,
            ),
            (
                WebhookEvent::ClientEvent {
                    channel: "private-x".into(),
                    event: "client-e".into(),
                    data: "{}".into(),
                    socket_id: "1.2".parse().unwrap(),
                    user_id: None,
                },
                r#"{"name":"client_event","channel":"private-x","event":"client-e","data":"{}","socket_id":"1.2"}"#,
            ),
            (
                WebhookEvent::CacheMiss {
                    channel: "cache-x".into(),
                },
                r#"{"name":"cache_miss","channel":"cache-x"}"#,
            ),
            (
                WebhookEvent::SubscriptionCount {
                    channel: "my-channel".into(),
                    subscription_count: 12,
                },
                r#"{"name":"subscription_count","channel":"my-channel","subscription_count":12}"#,
            ),
        ];
        for (event, json) in cases {
            assert_eq!(serde_json::to_string(&event).unwrap(), json);
            assert_eq!(serde_json::from_str::<WebhookEvent>(json).unwrap(), event);
            assert!(json.contains(event.name()));
            assert!(json.contains(event.channel()));
        }
        let body = WebhookBody {
            time_ms: 1_327_078_148_132,
            events: vec![WebhookEvent::CacheMiss {
                channel: "cache-x".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"time_ms":1327078148132,"events":[{"name":"cache_miss","channel":"cache-x"}]}"#
        );
    }
}
