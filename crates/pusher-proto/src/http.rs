//! HTTP API request and response bodies, shared by the server and the client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /apps/{app_id}/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// Event name.
    pub name: String,
    /// Event data: a string (SDKs JSON-encode objects before sending).
    pub data: String,
    /// Channels to publish to (up to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// A single channel (alternative to `channels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// A connection to exclude from delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// Comma-separated attributes to return: `user_count`, `subscription_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

/// One event of `POST /apps/{app_id}/batch_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEvent {
    /// Event name.
    pub name: String,
    /// Event data.
    pub data: String,
    /// The channel.
    pub channel: String,
    /// A connection to exclude from delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// Attributes to return for this event's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

/// `POST /apps/{app_id}/batch_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The events (up to 10).
    pub batch: Vec<BatchEvent>,
}

/// Counts of one channel, as `info` asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCounts {
    /// Distinct users (presence channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    /// Subscriptions (non-presence channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u64>,
}

/// The answer to `POST events`: `{}`, or the channels' counts when `info`
/// was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerResponse {
    /// Counts per channel, when `info` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<BTreeMap<String, ChannelCounts>>,
}

/// The answer to `POST batch_events`: `{}`, or counts aligned with the batch
/// when any event had `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Counts per event, in batch order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Vec<ChannelCounts>>,
}

/// `GET /apps/{app_id}/channels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelsResponse {
    /// Occupied channels, with what `info` asked for.
    pub channels: BTreeMap<String, ChannelCounts>,
}

/// The cached event of a cache channel, in `GET channels/{name}?info=cache`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    /// The cached event's data.
    pub data: String,
    /// Whole seconds before it expires.
    pub ttl: u64,
}

/// `GET /apps/{app_id}/channels/{channel_name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfoResponse {
    /// Whether the channel has at least one subscriber.
    pub occupied: bool,
    /// Distinct users (presence, when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    /// Subscriptions (non-presence, when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u64>,
    /// The cached event (cache channels, when asked and present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheInfo>,
}

/// One user of `GET channels/{name}/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// The user id.
    pub id: String,
}

/// `GET /apps/{app_id}/channels/{channel_name}/users`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersResponse {
    /// Distinct users of the presence channel.
    pub users: Vec<UserEntry>,
}

/// Every HTTP API error body: `{"error": "...", "code": <status>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A human-readable reason.
    pub error: String,
    /// The HTTP status.
    pub code: u16,
}

/// The attributes an `info` parameter asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InfoRequest {
    /// `user_count`.
    pub user_count: bool,
    /// `subscription_count`.
    pub subscription_count: bool,
    /// `cache`.
    pub cache: bool,
}

/// An `info` attribute the API does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown info attribute {0:?}; known are user_count, subscription_count, cache")]
pub struct InfoError(pub String);

impl InfoRequest {
    /// Parses `user_count,subscription_count`. Empty items are ignored.
    pub fn parse(info: &str) -> Result<Self, InfoError> {
        let mut req = Self::default();
        for attr in info.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match attr {
                "user_count" => req.user_count = true,
                "subscription_count" => req.subscription_count = true,
                "cache" => req.cache = true,
                other => return Err(InfoError(other.to_owned())),
            }
        }
        Ok(req)
    }

    /// Whether any attribute was asked for.
    pub fn any(self) -> bool {
        self.user_count || self.subscription_count || self.cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_request_as_sdks_send_it() {
        let r: TriggerRequest = serde_json::from_str(
            r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#,
        )
        .unwrap();
        assert_eq!(r.name, "foo");
        assert_eq!(r.channels.as_deref(), Some(&["project-3".to_owned()][..]));
        assert_eq!(r.data, r#"{"some":"data"}"#);
        assert!(serde_json::from_str::<TriggerRequest>(r#"{"name":"a","data":{}}"#).is_err());
    }

    #[test]
    fn responses() {
        assert_eq!(
            serde_json::to_string(&TriggerResponse::default()).unwrap(),
            "{}"
        );
        let mut channels = BTreeMap::new();
        channels.insert(
            "presence-foobar".to_owned(),
            ChannelCounts {
                user_count: Some(42),
                subscription_count: Some(51),
            },
        );
        channels.insert(
            "another".to_owned(),
            ChannelCounts {
                user_count: None,
                subscription_count: Some(13),
            },
        );
        assert_eq!(
            serde_json::to_string(&TriggerResponse {
                channels: Some(channels)
            })
            .unwrap(),
            r#"{"channels":{"another":{"subscription_count":13},"presence-foobar":{"user_count":42,"subscription_count":51}}}"#
        );
        assert_eq!(
            serde_json::to_string(&BatchResponse::default()).unwrap(),
            "{}"
        );
        assert_eq!(
            serde_json::to_string(&ChannelInfoResponse::default()).unwrap(),
            r#"{"occupied":false}"#
        );
        let info = ChannelInfoResponse {
            occupied: true,
            user_count: None,
            subscription_count: Some(3),
            cache: Some(CacheInfo {
                data: "d".into(),
                ttl: 60,
            }),
        };
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"occupied":true,"subscription_count":3,"cache":{"data":"d","ttl":60}}"#
        );
        assert_eq!(
            serde_json::to_string(&UsersResponse {
                users: vec![UserEntry { id: "1".into() }]
            })
            .unwrap(),
            r#"{"users":[{"id":"1"}]}"#
        );
        assert_eq!(
            serde_json::to_string(&ErrorBody {
                error: "x".into(),
                code: 401
            })
            .unwrap(),
            r#"{"error":"x","code":401}"#
        );
    }

    #[test]
    fn info_parameter() {
        let i = InfoRequest::parse("user_count,subscription_count").unwrap();
        assert!(i.user_count && i.subscription_count && !i.cache);
        assert!(!InfoRequest::parse("").unwrap().any());
        assert_eq!(
            InfoRequest::parse("members"),
            Err(InfoError("members".into()))
        );
    }
}
