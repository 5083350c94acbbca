//! Webhook signing: `X-Pusher-Signature` is the hex HMAC-SHA256 of the raw request body under
//! the app's secret (and `X-Pusher-Key` names the app).

use crate::error::AuthError;
use crate::mac::{TAG_LEN, hex_decode_array, hmac_sha256_hex, hmac_sha256_verify};

/// The `X-Pusher-Signature` header value for a webhook `body`.
///
/// ```
/// assert_eq!(
///     pusher_auth::sign_webhook("secret", br#"{"hello":"world"}"#),
///     "2677ad3e7c090b2fa2c0fb13020d66d5420879b8316eb356a2d60fb9073bc778",
/// );
/// ```
#[must_use]
pub fn sign_webhook(secret: &str, body: &[u8]) -> String {
    hmac_sha256_hex(secret.as_bytes(), body)
}

/// Checks a webhook's `X-Pusher-Signature` against its raw `body`, in constant time. The hex
/// may be in either case. Check `X-Pusher-Key` first to pick the secret.
///
/// # Errors
/// [`AuthError::Malformed`] if `signature` is not 64 hex digits, [`AuthError::BadSignature`]
/// if it does not match.
pub fn verify_webhook(secret: &str, body: &[u8], signature: &str) -> Result<(), AuthError> {
    let tag: [u8; TAG_LEN] = hex_decode_array(signature).ok_or(AuthError::Malformed)?;
    if hmac_sha256_verify(secret.as_bytes(), &[body], &tag) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_failures() {
        let body = br#"{"time_ms":1,"events":[]}"#;
        let sig = sign_webhook("s3cret", body);
        assert_eq!(verify_webhook("s3cret", body, &sig), Ok(()));
        assert_eq!(verify_webhook("s3cret", body, &sig.to_uppercase()), Ok(()));
        assert_eq!(
            verify_webhook("other", body, &sig),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_webhook("s3cret", b"{}", &sig),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_webhook("s3cret", body, ""),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify_webhook("s3cret", body, &sig[1..]),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify_webhook("s3cret", body, &format!("{sig}0")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify_webhook("s3cret", body, &format!("g{}", &sig[1..])),
            Err(AuthError::Malformed)
        );
    }
}
