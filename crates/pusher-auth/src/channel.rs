//! Channel authorization (private, private-encrypted, presence, cache variants) and user
//! authentication (`pusher:signin`), as an app's auth endpoint signs them and as the server checks
//! them.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::AuthError;
use crate::mac::{hex_encode, hmac_sha256_parts};

/// Builds `key:hex(HMAC_SHA256(secret, part_1 || part_2 || ...))`.
fn sign_parts(key: &str, secret: &str, parts: &[&str]) -> String {
    let tag = hmac_sha256_parts(secret.as_bytes(), parts);
    let mut out = String::with_capacity(key.len() + 1 + tag.len() * 2);
    out.push_str(key);
    out.push(':');
    out.push_str(&hex_encode(&tag));
    out
}

/// Compares `auth` with the auth string the secret gives, whole (`key:signature`) and in
/// constant time, after the cheap public checks (shape, key) that may short-circuit.
fn verify_parts(key: &str, secret: &str, parts: &[&str], auth: &str) -> Result<(), AuthError> {
    // The key is public: checking it in variable time reveals nothing. Matching the key as a
    // prefix (not splitting at the first colon) keeps a key that holds a colon working.
    let key_matches = auth
        .strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'));
    if !key_matches {
        return Err(if auth.contains(':') {
            AuthError::WrongKey
        } else {
            AuthError::Malformed
        });
    }
    let expected = sign_parts(key, secret, parts);
    if bool::from(expected.as_bytes().ct_eq(auth.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// The pieces of the string a channel authorization signs, without building it.
fn channel_parts<'a>(
    socket_id: &'a str,
    channel: &'a str,
    channel_data: Option<&'a str>,
) -> ([&'a str; 5], usize) {
    match channel_data {
        None => ([socket_id, ":", channel, "", ""], 3),
        Some(data) => ([socket_id, ":", channel, ":", data], 5),
    }
}

/// Signs a channel subscription: returns the `auth` string `"<key>:<hex signature>"`.
///
/// The string signed is `"<socket_id>:<channel>"`, or `"<socket_id>:<channel>:<channel_data>"`
/// for presence channels, where `channel_data` is the exact JSON string the client will send.
///
/// ```
/// let auth = pusher_auth::sign_channel(
///     "278d425bdf160c739803", "7ad3773142a6692b25b8", "1234.1234", "private-foobar", None,
/// );
/// assert_eq!(
///     auth,
///     "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
/// );
/// ```
#[must_use]
pub fn sign_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let (parts, n) = channel_parts(socket_id, channel, channel_data);
    sign_parts(key, secret, &parts[..n])
}

/// Checks the `auth` a client sent with `pusher:subscribe`.
///
/// The whole `key:signature` string is compared in constant time with the one
/// [`sign_channel`] gives. `channel_data` must be the exact string the client sent (presence
/// channels) or `None`.
///
/// # Errors
/// [`AuthError::Malformed`] if `auth` has no colon, [`AuthError::WrongKey`] if the part before
/// the first colon is not `key`, [`AuthError::BadSignature`] otherwise when it does not match.
pub fn verify_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Result<(), AuthError> {
    let (parts, n) = channel_parts(socket_id, channel, channel_data);
    verify_parts(key, secret, &parts[..n], auth)
}

/// Signs a user authentication (`pusher:signin`): returns `"<key>:<hex signature>"` over
/// `"<socket_id>::user::<user_data>"`, where `user_data` is the exact JSON string the client
/// will send.
#[must_use]
pub fn sign_user(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    sign_parts(key, secret, &[socket_id, "::user::", user_data])
}

/// Checks the `auth` a client sent with `pusher:signin` against the exact `user_data` string it
/// sent alongside. Same comparison and errors as [`verify_channel`].
///
/// # Errors
/// [`AuthError::Malformed`], [`AuthError::WrongKey`] or [`AuthError::BadSignature`].
pub fn verify_user(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), AuthError> {
    verify_parts(key, secret, &[socket_id, "::user::", user_data], auth)
}

/// The JSON body an app's channel auth endpoint returns, as pusher-http-node and
/// pusher-http-python build it: `{"auth":"key:sig"}`, plus `"channel_data"` for presence
/// channels and `"shared_secret"` (base64) for encrypted channels. Absent fields are omitted.
///
/// `Debug` hides the shared secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAuthResponse {
    /// `"<key>:<hex signature>"`.
    pub auth: String,
    /// The presence channel data that was signed, as the exact JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
    /// Base64 of the channel's 32-byte shared secret (encrypted channels only). pusher-js keeps
    /// it and strips it before subscribing, so the realtime server never sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<String>,
}

impl fmt::Debug for ChannelAuthResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelAuthResponse")
            .field("auth", &self.auth)
            .field("channel_data", &self.channel_data)
            .field(
                "shared_secret",
                &self.shared_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Builds the auth endpoint response for a private or presence channel (no shared secret).
/// For encrypted channels use `authorize_encrypted_channel` (feature `encryption`).
///
/// ```
/// let response = pusher_auth::authorize_channel("aaaa", "tofu", "123.456", "test", None);
/// assert_eq!(
///     serde_json::to_string(&response).unwrap(),
///     r#"{"auth":"aaaa:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c"}"#,
/// );
/// ```
#[must_use]
pub fn authorize_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> ChannelAuthResponse {
    ChannelAuthResponse {
        auth: sign_channel(key, secret, socket_id, channel, channel_data),
        channel_data: channel_data.map(str::to_owned),
        shared_secret: None,
    }
}

/// Builds the auth endpoint response for a `private-encrypted-*` channel: the signature (as for
/// a private channel) and the channel's shared secret, base64, derived from `master_key`.
#[cfg(feature = "encryption")]
#[must_use]
pub fn authorize_encrypted_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    master_key: &crate::encryption::MasterKey,
) -> ChannelAuthResponse {
    use base64::Engine as _;
    let shared = crate::encryption::shared_secret(channel, master_key);
    ChannelAuthResponse {
        auth: sign_channel(key, secret, socket_id, channel, None),
        channel_data: None,
        shared_secret: Some(base64::engine::general_purpose::STANDARD.encode(shared)),
    }
}

/// The JSON body an app's user authentication endpoint returns:
/// `{"auth":"key:sig","user_data":"<json string>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthResponse {
    /// `"<key>:<hex signature>"`.
    pub auth: String,
    /// The user data that was signed, as the exact JSON string (it must hold a string `id`).
    pub user_data: String,
}

/// Builds the user authentication endpoint response for `pusher:signin`.
#[must_use]
pub fn authenticate_user(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
) -> UserAuthResponse {
    UserAuthResponse {
        auth: sign_user(key, secret, socket_id, user_data),
        user_data: user_data.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_round_trip() {
        let auth = sign_channel(KEY, SECRET, "1234.1234", "private-foobar", None);
        assert_eq!(
            verify_channel(KEY, SECRET, "1234.1234", "private-foobar", None, &auth),
            Ok(())
        );
    }

    #[test]
    fn verify_errors() {
        let auth = sign_channel(KEY, SECRET, "1.1", "private-a", None);
        let v = |a: &str| verify_channel(KEY, SECRET, "1.1", "private-a", None, a);
        assert_eq!(v("no-colon-here"), Err(AuthError::Malformed));
        assert_eq!(v(""), Err(AuthError::Malformed));
        let sig = auth.split_once(':').unwrap().1;
        assert_eq!(v(&format!("other:{sig}")), Err(AuthError::WrongKey));
        assert_eq!(v(&format!(":{sig}")), Err(AuthError::WrongKey));
        assert_eq!(v(&format!("{KEY}:")), Err(AuthError::BadSignature));
        assert_eq!(
            v(&format!("{KEY}:{}", sig.to_uppercase())),
            Err(AuthError::BadSignature)
        );
        assert_eq!(v(&format!("{auth}0")), Err(AuthError::BadSignature));
        assert_eq!(v(&format!("{auth}:x")), Err(AuthError::BadSignature));
        // Signed for another socket or channel, or with channel data when none is expected.
        assert_eq!(
            verify_channel(KEY, SECRET, "1.2", "private-a", None, &auth),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_channel(KEY, SECRET, "1.1", "private-a", Some(""), &auth),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn key_with_colon_round_trips() {
        let auth = sign_channel("a:b", SECRET, "1.1", "private-a", None);
        assert_eq!(
            verify_channel("a:b", SECRET, "1.1", "private-a", None, &auth),
            Ok(())
        );
        assert_eq!(
            verify_channel("a", SECRET, "1.1", "private-a", None, &auth),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_channel("a:b:c", SECRET, "1.1", "private-a", None, &auth),
            Err(AuthError::WrongKey)
        );
    }

    #[test]
    fn presence_separates_channel_data() {
        let with = sign_channel(KEY, SECRET, "1.1", "presence-a", Some("{}"));
        let without = sign_channel(KEY, SECRET, "1.1", "presence-a:{}", None);
        // The same string is signed: the protocol does not separate these cases, channel names
        // cannot hold ':' so the server never sees the second form.
        assert_eq!(with, without);
        assert_eq!(
            verify_channel(KEY, SECRET, "1.1", "presence-a", Some("{}"), &with),
            Ok(())
        );
    }

    #[test]
    fn user_round_trip() {
        let auth = sign_user(KEY, SECRET, "1.1", r#"{"id":"1"}"#);
        assert_eq!(
            verify_user(KEY, SECRET, "1.1", r#"{"id":"1"}"#, &auth),
            Ok(())
        );
        assert_eq!(
            verify_user(KEY, SECRET, "1.1", r#"{"id":"2"}"#, &auth),
            Err(AuthError::BadSignature)
        );
        // A user signature is not a channel signature.
        assert_eq!(
            verify_channel(KEY, SECRET, "1.1", r#"{"id":"1"}"#, None, &auth),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn response_json_shapes() {
        let private = authorize_channel(KEY, SECRET, "1.1", "private-a", None);
        let json = serde_json::to_value(&private).unwrap();
        assert_eq!(json, serde_json::json!({ "auth": private.auth }));

        let presence =
            authorize_channel(KEY, SECRET, "1.1", "presence-a", Some(r#"{"user_id":"1"}"#));
        let json = serde_json::to_string(&presence).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"auth":"{}","channel_data":"{{\"user_id\":\"1\"}}"}}"#,
                presence.auth
            )
        );
        let back: ChannelAuthResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(back, presence);

        let user = authenticate_user(KEY, SECRET, "1.1", r#"{"id":"1"}"#);
        let json = serde_json::to_string(&user).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"auth":"{}","user_data":"{{\"id\":\"1\"}}"}}"#,
                user.auth
            )
        );
    }

    #[test]
    fn debug_hides_shared_secret() {
        let response = ChannelAuthResponse {
            auth: "k:s".into(),
            channel_data: None,
            shared_secret: Some("c2VjcmV0".into()),
        };
        let debug = format!("{response:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }
}
