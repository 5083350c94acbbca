//! Every signature of the Pusher Channels protocol, for servers that check them and for apps
//! and clients that make them:
//!
//! - channel authorization for private, presence and encrypted channels
//!   ([`sign_channel`], [`verify_channel`], [`authorize_channel`]);
//! - user authentication for `pusher:signin` ([`sign_user`], [`verify_user`],
//!   [`authenticate_user`]);
//! - HTTP API request signing ([`sign_request`], [`HttpVerifier`], [`query_param`]);
//! - webhook signatures ([`sign_webhook`], [`verify_webhook`]);
//! - with the default feature `encryption`: the shared secrets and NaCl secretbox payloads of
//!   `private-encrypted-*` channels (`MasterKey`, `shared_secret`, `encrypt`, `decrypt`).
//!
//! Contract: no IO, no clock, no randomness, no async runtime. Everything is deterministic
//! given its inputs: the current time ([`HttpVerifier::verify`]) and nonces (`encrypt`) are
//! passed in. Secrets are compared in constant time and never appear in error messages or
//! `Debug` output.
//!
//! # Example
//!
//! An app's auth endpoint signs a subscription; the server checks it; a webhook receiver checks
//! the server's webhook.
//!
//! ```
//! use pusher_auth::{authorize_channel, sign_webhook, verify_channel, verify_webhook};
//!
//! let (key, secret) = ("278d425bdf160c739803", "7ad3773142a6692b25b8");
//!
//! // Auth endpoint: answer the POST pusher-js makes with socket_id and channel_name.
//! let response = authorize_channel(key, secret, "1234.1234", "private-foobar", None);
//! let body = serde_json::to_string(&response).unwrap();
//! assert_eq!(
//!     body,
//!     r#"{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}"#,
//! );
//!
//! // Server: the client subscribes with that auth string.
//! assert!(verify_channel(key, secret, "1234.1234", "private-foobar", None, &response.auth).is_ok());
//! assert!(verify_channel(key, secret, "9999.1", "private-foobar", None, &response.auth).is_err());
//!
//! // Webhook receiver: check X-Pusher-Signature over the raw body.
//! let webhook_body = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"c"}]}"#;
//! let header = sign_webhook(secret, webhook_body);
//! assert!(verify_webhook(secret, webhook_body, &header).is_ok());
//! ```

mod channel;
#[cfg(feature = "encryption")]
mod encryption;
mod error;
mod http;
mod mac;
mod query;
mod secret;
mod webhook;

#[cfg(feature = "encryption")]
pub use channel::authorize_encrypted_channel;
pub use channel::{
    ChannelAuthResponse, UserAuthResponse, authenticate_user, authorize_channel, sign_channel,
    sign_user, verify_channel, verify_user,
};
#[cfg(feature = "encryption")]
pub use encryption::{
    EncryptedPayload, MasterKey, decrypt, decrypt_with_shared_secret, encrypt,
    encrypt_with_shared_secret, shared_secret, shared_secret_from_base64,
};
#[cfg(feature = "encryption")]
pub use error::EncryptionError;
pub use error::{AuthError, HttpAuthError};
pub use http::{
    HttpVerifier, RequestParts, SignedHead, VerifiedRequest, query_param, sign_request,
};
pub use mac::hmac_sha256_hex;
pub use query::{decode_path_segment, encode_path_segment};
pub use secret::Secret;
pub use webhook::{sign_webhook, verify_webhook};

/// Runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
