//! Raw JSON text kept exactly as it arrived.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON value kept as the exact text it arrived in, so that it is relayed
/// byte for byte (event data, presence `user_info`).
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Validates `text` as one JSON value and keeps it as is.
    pub fn from_json(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        Self::try_from(RawValue::from_string(text.into())?)
    }

    /// A JSON string whose value is `text` (escaped as needed).
    pub fn from_text(text: &str) -> Self {
        // Serializing a &str cannot fail, and the result is valid JSON.
        let json = serde_json::to_string(text).expect("a string always serializes");
        Self(RawValue::from_string(json).expect("a serialized string is valid JSON"))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Whether the value is a JSON string.
    pub fn is_string(&self) -> bool {
        self.json().starts_with('"')
    }

    /// The value as event data text: a JSON string gives its contents, any
    /// other value its JSON text. This is what a double-encoded `data` field
    /// carries.
    pub fn text(&self) -> Cow<'_, str> {
        if self.is_string() {
            // Every constructor checked that a string value decodes (a lone
            // surrogate escape such as "\ud800" passes RawValue but not
            // String); the fallback is never taken.
            serde_json::from_str::<String>(self.json())
                .map_or(Cow::Borrowed(self.json()), Cow::Owned)
        } else {
            Cow::Borrowed(self.json())
        }
    }

    /// The borrowed serde_json type.
    pub fn as_raw_value(&self) -> &RawValue {
        &self.0
    }
}

/// A string value must decode: RawValue accepts `"\ud800"`, String does not.
fn check(raw: &RawValue) -> Result<(), serde_json::Error> {
    if raw.get().starts_with('"') {
        serde_json::from_str::<String>(raw.get()).map(drop)
    } else {
        Ok(())
    }
}

impl TryFrom<Box<RawValue>> for RawJson {
    type Error = serde_json::Error;
    fn try_from(raw: Box<RawValue>) -> Result<Self, Self::Error> {
        check(&raw)?;
        Ok(Self(raw))
    }
}

impl TryFrom<&RawValue> for RawJson {
    type Error = serde_json::Error;
    fn try_from(raw: &RawValue) -> Result<Self, Self::Error> {
        check(raw)?;
        Ok(Self(raw.to_owned()))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for RawJson {}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Self::try_from(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_string_and_object() {
        let s = RawJson::from_json(r#""a \"q\" \u00e9""#).unwrap();
        assert!(s.is_string());
        assert_eq!(s.text(), "a \"q\" \u{e9}");
        let o = RawJson::from_json(r#"{"b": 1,  "a":[2]}"#).unwrap();
        assert_eq!(o.text(), r#"{"b": 1,  "a":[2]}"#);
        assert_eq!(RawJson::from_text("x\"y").json(), r#""x\"y""#);
        assert!(RawJson::from_json("{").is_err());
    }

    #[test]
    fn serde_keeps_bytes() {
        #[derive(Serialize, Deserialize)]
        struct W {
            v: RawJson,
        }
        let w: W = serde_json::from_str(r#"{"v": {"z":1, "a" : 2}}"#).unwrap();
        assert_eq!(w.v.json(), r#"{"z":1, "a" : 2}"#);
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"v":{"z":1, "a" : 2}}"#
        );
    }
}
