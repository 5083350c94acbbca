//! Presence `channel_data` and sign-in `user_data`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::RawJson;

/// Why `channel_data` or `user_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserDataError {
    /// Not a JSON object.
    #[error("{what} is not a JSON object: {detail}")]
    NotJson {
        /// `channel_data` or `user_data`.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The id field is missing.
    #[error("{what} has no {field}")]
    MissingId {
        /// `channel_data` or `user_data`.
        what: &'static str,
        /// `user_id` or `id`.
        field: &'static str,
    },
    /// The id field has the wrong type or is empty.
    #[error("{what}.{field} must be a non-empty {expected}")]
    InvalidId {
        /// `channel_data` or `user_data`.
        what: &'static str,
        /// `user_id` or `id`.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The watchlist is not an array of strings.
    #[error("user_data.watchlist must be an array of user id strings")]
    InvalidWatchlist,
}

/// A presence member: the user id and the app's `user_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user id, always as a string (numbers are kept in their JSON text).
    pub user_id: String,
    /// The `user_info` JSON, exactly as the app sent it.
    pub user_info: Option<RawJson>,
}

/// Presence `channel_data`: `{"user_id": "1" | 1, "user_info": {...}}`.
///
/// The signature covers the exact string; this is what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelData(pub Member);

#[derive(Deserialize)]
struct RawChannelData<'a> {
    #[serde(borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
}

/// Parses `text` as the JSON object `what` describes.
fn object<'a, T: Deserialize<'a>>(what: &'static str, text: &'a str) -> Result<T, UserDataError> {
    serde_json::from_str(text).map_err(|e| UserDataError::NotJson {
        what,
        detail: e.to_string(),
    })
}

/// A required, non-empty id field: a string, or (when `numbers` is set) a
/// number kept as its JSON text.
fn id_field(
    what: &'static str,
    field: &'static str,
    raw: Option<&RawValue>,
    numbers: bool,
) -> Result<String, UserDataError> {
    let raw = raw.ok_or(UserDataError::MissingId { what, field })?;
    let id = if numbers {
        crate::frame::string_or_number(raw)
    } else {
        serde_json::from_str::<String>(raw.get()).ok()
    };
    let expected = if numbers {
        "string or number"
    } else {
        "string"
    };
    id.filter(|id| !id.is_empty())
        .ok_or(UserDataError::InvalidId {
            what,
            field,
            expected,
        })
}

/// An optional `user_info`, kept as sent.
fn user_info(what: &'static str, raw: Option<&RawValue>) -> Result<Option<RawJson>, UserDataError> {
    raw.map(RawJson::try_from)
        .transpose()
        .map_err(|e| UserDataError::NotJson {
            what,
            detail: e.to_string(),
        })
}

impl ChannelData {
    /// Parses `channel_data`. `user_id` may be a non-empty string or a number
    /// (kept as its JSON text, so `10` becomes `"10"`).
    pub fn parse(text: &str) -> Result<Self, UserDataError> {
        const WHAT: &str = "channel_data";
        let raw: RawChannelData<'_> = object(WHAT, text)?;
        let user_id = id_field(WHAT, "user_id", raw.user_id, true)?;
        Ok(Self(Member {
            user_id,
            user_info: user_info(WHAT, raw.user_info)?,
        }))
    }
}

/// Sign-in `user_data`: `{"id": "...", "user_info": {...}, "watchlist": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The user id: a non-empty string.
    pub id: String,
    /// Optional `user_info`, kept as sent.
    pub user_info: Option<RawJson>,
    /// Ids whose online status the user wants to follow (possibly over the
    /// limit: the hub truncates and warns).
    pub watchlist: Vec<String>,
}

#[derive(Deserialize)]
struct RawUserData<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
    #[serde(borrow, default)]
    watchlist: Option<&'a RawValue>,
}

impl UserData {
    /// Parses `user_data`; `id` must be a non-empty string.
    pub fn parse(text: &str) -> Result<Self, UserDataError> {
        const WHAT: &str = "user_data";
        let raw: RawUserData<'_> = object(WHAT, text)?;
        let id = id_field(WHAT, "id", raw.id, false)?;
        let watchlist = match raw.watchlist {
            None => Vec::new(),
            Some(w) if w.get() == "null" => Vec::new(),
            Some(w) => serde_json::from_str::<Vec<String>>(w.get())
                .map_err(|_| UserDataError::InvalidWatchlist)?,
        };
        Ok(Self {
            id,
            user_info: user_info(WHAT, raw.user_info)?,
            watchlist,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_string_and_number_ids() {
        let d = ChannelData::parse(r#"{"user_id":"1","user_info":{"name":"A"}}"#).unwrap();
        assert_eq!(d.0.user_id, "1");
        assert_eq!(d.0.user_info.unwrap().json(), r#"{"name":"A"}"#);
        let d = ChannelData::parse(r#"{"user_id":10}"#).unwrap();
        assert_eq!(d.0.user_id, "10");
        assert_eq!(d.0.user_info, None);
    }

    #[test]
    fn channel_data_refusals() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"user_id":""}"#,
            r#"{"user_id":null}"#,
            r#"{"user_id":true}"#,
            r#"{"user_id":{"a":1}}"#,
        ] {
            assert!(ChannelData::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_data() {
        let u =
            UserData::parse(r#"{"id":"12345","user_info":{"n":1},"watchlist":["2","3"]}"#).unwrap();
        assert_eq!(u.id, "12345");
        assert_eq!(u.watchlist, ["2", "3"]);
        assert_eq!(u.user_info.unwrap().json(), r#"{"n":1}"#);
        assert!(UserData::parse(r#"{"id":12345}"#).is_err());
        assert!(UserData::parse(r#"{"id":""}"#).is_err());
        assert!(UserData::parse(r#"{"user_info":{}}"#).is_err());
        assert_eq!(
            UserData::parse(r#"{"id":"1","watchlist":[1]}"#),
            Err(UserDataError::InvalidWatchlist)
        );
        assert!(
            UserData::parse(r#"{"id":"1","watchlist":null}"#)
                .unwrap()
                .watchlist
                .is_empty()
        );
    }
}
