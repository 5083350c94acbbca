//! End-to-end encrypted channels (`private-encrypted-*`): the per-channel shared secret derived
//! from the app's master key, and the NaCl secretbox (XSalsa20-Poly1305) event payloads that
//! pusher-js opens with tweetnacl's `secretbox.open`.
//!
//! The realtime server never needs any of this: it relays the payload untouched. App servers
//! (publishers) use the master key; subscribers only ever hold the channel's shared secret.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::EncryptionError;

/// Standard alphabet, padding optional on input (Node's `Buffer.from(s, "base64")`, which
/// pusher-http-node uses for the master key, accepts both). Output always uses [`STANDARD`].
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

fn decode_base64(text: &str, what: &'static str) -> Result<Vec<u8>, EncryptionError> {
    LENIENT
        .decode(text.trim())
        .map_err(|_| EncryptionError::Base64(what))
}

/// An app's 32-byte encryption master key. `Debug` does not print it.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// The key from its 32 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key from base64 (standard alphabet, 44 characters with padding, as configured for
    /// the Pusher server libraries; padding and surrounding whitespace are optional).
    ///
    /// # Errors
    /// [`EncryptionError::Base64`] if it is not base64, [`EncryptionError::KeyLength`] if it is
    /// not 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, EncryptionError> {
        let bytes = decode_base64(text, "master key")?;
        let bytes: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| EncryptionError::KeyLength(bytes.len()))?;
        Ok(Self(bytes))
    }
}

impl FromStr for MasterKey {
    type Err = EncryptionError;

    /// Same as [`MasterKey::from_base64`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The shared secret of an encrypted channel: `SHA256(channel_name || master_key)`, 32 raw
/// bytes. The auth endpoint sends it base64 to subscribers of that channel only.
#[must_use]
pub fn shared_secret(channel: &str, master_key: &MasterKey) -> [u8; KEY_LEN] {
    Sha256::new()
        .chain_update(channel.as_bytes())
        .chain_update(master_key.0)
        .finalize()
        .into()
}

/// Decodes the base64 `shared_secret` of an auth endpoint response (what a subscriber holds).
///
/// # Errors
/// [`EncryptionError::Base64`] or [`EncryptionError::KeyLength`].
pub fn shared_secret_from_base64(text: &str) -> Result<[u8; KEY_LEN], EncryptionError> {
    let bytes = decode_base64(text, "shared secret")?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| EncryptionError::KeyLength(bytes.len()))
}

/// The `data` of an event on an encrypted channel, as JSON
/// `{"nonce":"<base64 24 bytes>","ciphertext":"<base64 tag||box>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedPayload {
    /// Base64 of the 24-byte nonce.
    pub nonce: String,
    /// Base64 of the NaCl secretbox: 16-byte Poly1305 tag followed by the encrypted bytes.
    pub ciphertext: String,
}

impl EncryptedPayload {
    /// The payload as the JSON string that goes in the event's `data`.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("two string fields always serialize")
    }

    /// Parses an event's `data` string.
    ///
    /// # Errors
    /// [`EncryptionError::InvalidPayloadJson`] if it is not `{"nonce":...,"ciphertext":...}`.
    pub fn from_json(data: &str) -> Result<Self, EncryptionError> {
        serde_json::from_str(data).map_err(|_| EncryptionError::InvalidPayloadJson)
    }
}

/// Encrypts `plaintext` (usually the event's JSON data) for `channel` with the key derived from
/// `master_key`. `nonce` must be 24 fresh random bytes, never reused with the same channel and
/// key: this crate has no random source, the caller supplies it.
#[must_use]
pub fn encrypt(
    channel: &str,
    master_key: &MasterKey,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> EncryptedPayload {
    encrypt_with_shared_secret(&shared_secret(channel, master_key), plaintext, nonce)
}

/// Decrypts an event on `channel` with the key derived from `master_key`.
///
/// # Errors
/// See [`decrypt_with_shared_secret`].
pub fn decrypt(
    channel: &str,
    master_key: &MasterKey,
    payload: &EncryptedPayload,
) -> Result<Vec<u8>, EncryptionError> {
    decrypt_with_shared_secret(&shared_secret(channel, master_key), payload)
}

/// Encrypts with a channel's shared secret directly (see [`encrypt`]). The ciphertext is
/// byte-for-byte NaCl `crypto_secretbox` / tweetnacl `secretbox` output: tag, then box.
#[must_use]
pub fn encrypt_with_shared_secret(
    shared_secret: &[u8; KEY_LEN],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> EncryptedPayload {
    let cipher = XSalsa20Poly1305::new(Key::from_slice(shared_secret));
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("secretbox encryption without associated data cannot fail");
    EncryptedPayload {
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(sealed),
    }
}

/// Decrypts with a channel's shared secret directly: what a subscriber does with the
/// `shared_secret` its auth endpoint returned.
///
/// # Errors
/// [`EncryptionError::Base64`] for undecodable fields, [`EncryptionError::NonceLength`],
/// [`EncryptionError::CiphertextTooShort`], and [`EncryptionError::DecryptionFailed`] when the
/// key is wrong or the payload was altered.
pub fn decrypt_with_shared_secret(
    shared_secret: &[u8; KEY_LEN],
    payload: &EncryptedPayload,
) -> Result<Vec<u8>, EncryptionError> {
    let nonce = decode_base64(&payload.nonce, "nonce")?;
    if nonce.len() != NONCE_LEN {
        return Err(EncryptionError::NonceLength(nonce.len()));
    }
    let sealed = decode_base64(&payload.ciphertext, "ciphertext")?;
    if sealed.len() < TAG_LEN {
        return Err(EncryptionError::CiphertextTooShort);
    }
    XSalsa20Poly1305::new(Key::from_slice(shared_secret))
        .decrypt(Nonce::from_slice(&nonce), sealed.as_slice())
        .map_err(|_| EncryptionError::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        MasterKey::from_bytes(bytes)
    }

    #[test]
    fn shared_secret_vector() {
        let secret = shared_secret("private-encrypted-foo", &key());
        assert_eq!(
            STANDARD.encode(secret),
            "E3I6KxLwqP1Rr/p1676Vpnrw23CkRdS5bkX5NazRkeY="
        );
    }

    #[test]
    fn master_key_parsing() {
        let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        assert_eq!(MasterKey::from_base64(b64).unwrap().0, key().0);
        assert_eq!(MasterKey::from_base64(&b64[..43]).unwrap().0, key().0);
        assert_eq!(format!(" {b64}\n").parse::<MasterKey>().unwrap().0, key().0);
        assert_eq!(
            MasterKey::from_base64("AAEC").unwrap_err(),
            EncryptionError::KeyLength(3)
        );
        assert_eq!(
            MasterKey::from_base64("not base64!").unwrap_err(),
            EncryptionError::Base64("master key")
        );
        assert_eq!(format!("{:?}", key()), "MasterKey(<redacted>)");
    }

    #[test]
    fn round_trip_and_tamper() {
        let payload = encrypt("private-encrypted-a", &key(), br#"{"x":1}"#, [7; 24]);
        assert_eq!(
            decrypt("private-encrypted-a", &key(), &payload).unwrap(),
            br#"{"x":1}"#
        );
        assert_eq!(
            decrypt("private-encrypted-b", &key(), &payload),
            Err(EncryptionError::DecryptionFailed)
        );
        let json = payload.to_json();
        assert!(json.starts_with(r#"{"nonce":""#), "{json}");
        assert_eq!(EncryptedPayload::from_json(&json).unwrap(), payload);
        assert_eq!(
            EncryptedPayload::from_json("{}"),
            Err(EncryptionError::InvalidPayloadJson)
        );

        let short = EncryptedPayload {
            nonce: payload.nonce.clone(),
            ciphertext: STANDARD.encode([0; 15]),
        };
        assert_eq!(
            decrypt("private-encrypted-a", &key(), &short),
            Err(EncryptionError::CiphertextTooShort)
        );
        let bad_nonce = EncryptedPayload {
            nonce: STANDARD.encode([0; 23]),
            ..payload.clone()
        };
        assert_eq!(
            decrypt("private-encrypted-a", &key(), &bad_nonce),
            Err(EncryptionError::NonceLength(23))
        );
        let bad_b64 = EncryptedPayload {
            ciphertext: "%%%".into(),
            ..payload
        };
        assert_eq!(
            decrypt("private-encrypted-a", &key(), &bad_b64),
            Err(EncryptionError::Base64("ciphertext"))
        );
    }

    #[test]
    fn subscriber_side_uses_base64_shared_secret() {
        let response =
            crate::authorize_encrypted_channel("k", "s", "1.1", "private-encrypted-a", &key());
        let secret = shared_secret_from_base64(response.shared_secret.as_deref().unwrap()).unwrap();
        let payload = encrypt("private-encrypted-a", &key(), b"hi", [1; 24]);
        assert_eq!(
            decrypt_with_shared_secret(&secret, &payload).unwrap(),
            b"hi"
        );
        assert_eq!(
            shared_secret_from_base64("AAEC"),
            Err(EncryptionError::KeyLength(3))
        );
    }
}
