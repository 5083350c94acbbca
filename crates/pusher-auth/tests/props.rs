//! Property tests: signing then verifying always holds, any single-byte change breaks it, and
//! no verifier panics on arbitrary input.

use proptest::prelude::*;
use proptest::sample::Index;
use pusher_auth::{
    AuthError, HttpAuthError, HttpVerifier, RequestParts, query_param, sign_channel, sign_request,
    sign_user, sign_webhook, verify_channel, verify_user, verify_webhook,
};

/// Printable ASCII, so that replacing one byte keeps the string valid and its length.
fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{1,{max}}}")).unwrap()
}

/// Any text, including multi-byte characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap()
}

/// Text dense in the characters query decoding cares about.
fn query_ish(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[%&=+?#;:/ 0-9a-fA-FxXé_-]{{0,{max}}}")).unwrap()
}

/// `s` with the byte at `at` replaced by a different printable ASCII byte.
fn change_byte(s: &str, at: Index, shift: u8) -> String {
    let mut bytes = s.as_bytes().to_vec();
    let i = at.index(bytes.len());
    let offset = bytes[i] - b' ';
    bytes[i] = b' ' + (offset + 1 + shift % 94) % 95;
    String::from_utf8(bytes).unwrap()
}

fn flip_byte(bytes: &[u8], at: Index, mask: u8) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let i = at.index(bytes.len());
    bytes[i] ^= mask.max(1);
    bytes
}

proptest! {
    #[test]
    fn channel_round_trip(
        key in text(20), secret in text(40), socket_id in text(30), channel in text(60),
        data in proptest::option::of(text(100)),
    ) {
        let auth = sign_channel(&key, &secret, &socket_id, &channel, data.as_deref());
        prop_assert_eq!(
            verify_channel(&key, &secret, &socket_id, &channel, data.as_deref(), &auth),
            Ok(())
        );
    }

    #[test]
    fn channel_single_byte_change_fails(
        key in ascii(20), secret in ascii(40), socket_id in ascii(30), channel in ascii(60),
        data in ascii(100), which in 0..4u8, at in any::<Index>(), shift in any::<u8>(),
    ) {
        let auth = sign_channel(&key, &secret, &socket_id, &channel, Some(&data));
        let (mut s, mut i, mut c, mut d) =
            (secret.clone(), socket_id.clone(), channel.clone(), data.clone());
        match which {
            0 => s = change_byte(&secret, at, shift),
            1 => i = change_byte(&socket_id, at, shift),
            2 => c = change_byte(&channel, at, shift),
            _ => d = change_byte(&data, at, shift),
        }
        prop_assert_eq!(
            verify_channel(&key, &s, &i, &c, Some(&d), &auth),
            Err(AuthError::BadSignature)
        );
        // Dropping the channel data is a change too.
        prop_assert!(verify_channel(&key, &secret, &socket_id, &channel, None, &auth).is_err());
        // As is any change to the auth string itself.
        let tampered = change_byte(&auth, at, shift);
        prop_assert!(verify_channel(&key, &secret, &socket_id, &channel, Some(&data), &tampered).is_err());
    }

    #[test]
    fn user_round_trip_and_single_byte_change(
        key in ascii(20), secret in ascii(40), socket_id in ascii(30), user_data in ascii(100),
        which in 0..3u8, at in any::<Index>(), shift in any::<u8>(),
    ) {
        let auth = sign_user(&key, &secret, &socket_id, &user_data);
        prop_assert_eq!(verify_user(&key, &secret, &socket_id, &user_data, &auth), Ok(()));
        let (mut s, mut i, mut u) = (secret.clone(), socket_id.clone(), user_data.clone());
        match which {
            0 => s = change_byte(&secret, at, shift),
            1 => i = change_byte(&socket_id, at, shift),
            _ => u = change_byte(&user_data, at, shift),
        }
        prop_assert_eq!(verify_user(&key, &s, &i, &u, &auth), Err(AuthError::BadSignature));
    }

    #[test]
    fn webhook_round_trip_and_tamper(
        secret in ascii(40), body in proptest::collection::vec(any::<u8>(), 1..300),
        at in any::<Index>(), mask in any::<u8>(), shift in any::<u8>(),
    ) {
        let sig = sign_webhook(&secret, &body);
        prop_assert_eq!(verify_webhook(&secret, &body, &sig), Ok(()));
        prop_assert_eq!(
            verify_webhook(&secret, &flip_byte(&body, at, mask), &sig),
            Err(AuthError::BadSignature)
        );
        prop_assert_eq!(
            verify_webhook(&change_byte(&secret, at, shift), &body, &sig),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn verifiers_never_panic(
        a in text(80), b in query_ish(80), c in text(30), d in query_ish(120),
        body in proptest::collection::vec(any::<u8>(), 0..64), now in any::<u64>(),
        skew in any::<u64>(),
    ) {
        let _ = verify_channel(&c, &a, &c, &a, Some(&b), &b);
        let _ = verify_channel(&c, &a, &c, &a, None, &a);
        let _ = verify_user(&c, &a, &c, &a, &b);
        let _ = verify_webhook(&a, &body, &b);
        let _ = verify_webhook(&a, &body, &a);
        let _ = query_param(&d, &c);
        let _ = query_param(&a, "auth_key");
        let verifier = HttpVerifier { max_skew_secs: skew };
        for query in [&a, &b, &d] {
            let req = RequestParts { method: &c, path: &b, query, body: &body };
            let _ = verifier.verify(&req, &c, &a, now);
        }
    }

    #[test]
    fn query_param_finds_what_sign_request_wrote(
        params in proptest::collection::vec((param_key(), text(20)), 0..6),
    ) {
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let query = sign_request("GET", "/", &borrowed, b"", "k", "s", 0);
        for (k, v) in expected_params(&params) {
            prop_assert_eq!(query_param(&query, &k), Some(v));
        }
    }
}

/// Parameter names: mostly plausible ones, some arbitrary text, some reserved names and case
/// variants of each other.
fn param_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::string::string_regex("[a-zA-Z_]{1,6}").unwrap(),
        1 => text(8),
        1 => prop::sample::select(vec!["auth_key", "Auth_Signature", "body_md5", "info", "INFO"])
            .prop_map(str::to_owned),
    ]
}

/// What [`HttpVerifier::verify`] returns for params signed with [`sign_request`]: keys
/// lower-cased, first of repeated keys kept, reserved keys dropped.
fn expected_params(params: &[(String, String)]) -> Vec<(String, String)> {
    const RESERVED: [&str; 5] = [
        "auth_key",
        "auth_timestamp",
        "auth_version",
        "auth_signature",
        "body_md5",
    ];
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in params {
        let k = k.to_ascii_lowercase();
        if !RESERVED.contains(&k.as_str()) && !out.iter().any(|(seen, _)| *seen == k) {
            out.push((k, v.clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "get", "post"])
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex("/apps/[0-9]{1,5}/(events|batch_events|channels)").unwrap(),
        proptest::string::string_regex(
            "/apps/[0-9]{1,5}/channels/[A-Za-z0-9_=@,.;-]{1,30}(/users)?"
        )
        .unwrap(),
        text(40).prop_map(|t| format!("/{t}")),
    ]
}

struct Signed {
    method: &'static str,
    path: String,
    params: Vec<(String, String)>,
    body: Vec<u8>,
    secret: String,
    timestamp: u64,
    query: String,
}

fn signed_request() -> impl Strategy<Value = Signed> {
    (
        method(),
        path(),
        proptest::collection::vec((param_key(), text(20)), 0..6),
        prop_oneof![
            1 => Just(Vec::new()),
            3 => proptest::collection::vec(any::<u8>(), 1..200),
        ],
        ascii(30),
        0..=u64::from(u32::MAX),
    )
        .prop_map(|(method, path, params, body, secret, timestamp)| {
            let borrowed: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let query = sign_request(method, &path, &borrowed, &body, KEY, &secret, timestamp);
            Signed {
                method,
                path,
                params,
                body,
                secret,
                timestamp,
                query,
            }
        })
}

const KEY: &str = "278d425bdf160c739803";

impl Signed {
    fn verify_at(&self, now: u64) -> Result<pusher_auth::VerifiedRequest, HttpAuthError> {
        self.verify_with(&self.body, &self.secret, now)
    }

    fn verify_with(
        &self,
        body: &[u8],
        secret: &str,
        now: u64,
    ) -> Result<pusher_auth::VerifiedRequest, HttpAuthError> {
        let req = RequestParts {
            method: self.method,
            path: &self.path,
            query: &self.query,
            body,
        };
        HttpVerifier::default().verify(&req, KEY, secret, now)
    }
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("params", &self.params)
            .field("body_len", &self.body.len())
            .field("timestamp", &self.timestamp)
            .field("query", &self.query)
            .finish()
    }
}

proptest! {
    #[test]
    fn http_round_trip(signed in signed_request(), drift in -600i64..=600) {
        let now = signed.timestamp.saturating_add_signed(drift);
        let verified = signed.verify_at(now).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut got = verified.params.clone();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        prop_assert_eq!(got, expected_params(&signed.params));
    }

    #[test]
    fn http_body_change_fails(
        signed in signed_request(), at in any::<Index>(), mask in any::<u8>(), extra in any::<u8>(),
    ) {
        let changed = if signed.body.is_empty() {
            vec![extra]
        } else {
            flip_byte(&signed.body, at, mask)
        };
        let err = signed.verify_with(&changed, &signed.secret, signed.timestamp).unwrap_err();
        prop_assert!(matches!(
            err,
            HttpAuthError::BodyMd5Mismatch | HttpAuthError::MissingParam("body_md5")
        ), "{:?}", err);
    }

    #[test]
    fn http_secret_change_fails(signed in signed_request(), at in any::<Index>(), shift in any::<u8>()) {
        let secret = change_byte(&signed.secret, at, shift);
        prop_assert_eq!(
            signed.verify_with(&signed.body, &secret, signed.timestamp).unwrap_err(),
            HttpAuthError::BadSignature
        );
    }

    #[test]
    fn http_param_change_fails(signed in signed_request(), value in text(20), at in any::<Index>()) {
        let params = expected_params(&signed.params);
        prop_assume!(!params.is_empty());
        let (k, old) = &params[at.index(params.len())];
        prop_assume!(*old != value);
        let mut borrowed: Vec<(&str, &str)> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for p in &mut borrowed {
            if p.0 == k {
                p.1 = &value;
            }
        }
        // Re-sign with another secret to get a well-formed query carrying the new value, then
        // graft the original signature onto it.
        let other = sign_request(signed.method, &signed.path, &borrowed, &signed.body, KEY, "x", signed.timestamp);
        let original_sig = signed.query.rsplit_once("auth_signature=").unwrap().1;
        let forged = format!("{}auth_signature={original_sig}", other.rsplit_once("auth_signature=").unwrap().0);
        let req = RequestParts { method: signed.method, path: &signed.path, query: &forged, body: &signed.body };
        prop_assert_eq!(
            HttpVerifier::default().verify(&req, KEY, &signed.secret, signed.timestamp).unwrap_err(),
            HttpAuthError::BadSignature
        );
    }

    #[test]
    fn http_timestamp_outside_window_fails(
        signed in signed_request(), beyond in 1u64..1_000_000, later in any::<bool>(),
    ) {
        let now = if later || signed.timestamp < 600 + beyond {
            signed.timestamp + 600 + beyond
        } else {
            signed.timestamp - 600 - beyond
        };
        let err = signed.verify_at(now).unwrap_err();
        let is_window_error = matches!(err, HttpAuthError::TimestampOutOfWindow { .. });
        prop_assert!(is_window_error, "{:?}", err);
    }
}

#[cfg(feature = "encryption")]
mod encryption {
    use super::{flip_byte, text};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use pusher_auth::{EncryptedPayload, EncryptionError, MasterKey, decrypt, encrypt};

    proptest! {
        #[test]
        fn round_trip(
            channel in text(40), key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let master = MasterKey::from_bytes(key);
            let payload = encrypt(&channel, &master, &plaintext, nonce);
            prop_assert_eq!(decrypt(&channel, &master, &payload).unwrap(), plaintext.clone());
            let parsed = EncryptedPayload::from_json(&payload.to_json()).unwrap();
            prop_assert_eq!(decrypt(&channel, &master, &parsed).unwrap(), plaintext);
        }

        #[test]
        fn tampering_fails(
            channel in text(40), key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
            which in 0..4u8, at in any::<Index>(), mask in any::<u8>(),
        ) {
            let master = MasterKey::from_bytes(key);
            let payload = encrypt(&channel, &master, &plaintext, nonce);
            let (mut p, mut c, mut k) = (payload.clone(), channel.clone(), key);
            match which {
                0 => {
                    let sealed = STANDARD.decode(&payload.ciphertext).unwrap();
                    p.ciphertext = STANDARD.encode(flip_byte(&sealed, at, mask));
                }
                1 => p.nonce = STANDARD.encode(flip_byte(&nonce, at, mask)),
                2 => c.push('x'),
                _ => k = flip_byte(&key, at, mask).try_into().unwrap(),
            }
            prop_assert_eq!(
                decrypt(&c, &MasterKey::from_bytes(k), &p),
                Err(EncryptionError::DecryptionFailed)
            );
        }

        #[test]
        fn decrypt_never_panics(nonce in text(40), ciphertext in text(80), key in any::<[u8; 32]>()) {
            let payload = EncryptedPayload { nonce, ciphertext };
            let _ = decrypt("private-encrypted-x", &MasterKey::from_bytes(key), &payload);
            let _ = EncryptedPayload::from_json(&payload.ciphertext);
            let _ = MasterKey::from_base64(&payload.nonce);
        }
    }
}
