//! Fixed vectors from PROTOCOL.md B.2 (Pusher docs and official libraries) and NaCl, kept as data
//! in `tests/vectors/*.json` and checked through the public API only.

use std::path::PathBuf;

use pusher_auth::{
    AuthError, HttpVerifier, RequestParts, authenticate_user, authorize_channel, hmac_sha256_hex,
    query_param, sign_channel, sign_request, sign_user, sign_webhook, verify_channel, verify_user,
    verify_webhook,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn load<T: DeserializeOwned>(file: &str) -> T {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", file]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct Vectors<T> {
    vectors: Vec<T>,
}

#[derive(Deserialize)]
struct ChannelVector {
    name: String,
    key: String,
    secret: String,
    socket_id: String,
    channel: String,
    channel_data: Option<String>,
    string_to_sign: String,
    signature: String,
    auth: String,
}

#[test]
fn channel_auth_vectors() {
    let file: Vectors<ChannelVector> = load("channel_auth.json");
    assert!(file.vectors.len() >= 4);
    for v in &file.vectors {
        let data = v.channel_data.as_deref();
        assert_eq!(
            hmac_sha256_hex(v.secret.as_bytes(), v.string_to_sign.as_bytes()),
            v.signature,
            "{}",
            v.name
        );
        assert_eq!(format!("{}:{}", v.key, v.signature), v.auth, "{}", v.name);
        assert_eq!(
            sign_channel(&v.key, &v.secret, &v.socket_id, &v.channel, data),
            v.auth,
            "{}",
            v.name
        );
        assert_eq!(
            verify_channel(&v.key, &v.secret, &v.socket_id, &v.channel, data, &v.auth),
            Ok(()),
            "{}",
            v.name
        );
        let response = authorize_channel(&v.key, &v.secret, &v.socket_id, &v.channel, data);
        assert_eq!(response.auth, v.auth);
        assert_eq!(response.channel_data.as_deref(), data);

        // The whole string is compared: the signature under another key is refused.
        let other_key = format!("x{}:{}", v.key, v.signature);
        assert_eq!(
            verify_channel(
                &v.key,
                &v.secret,
                &v.socket_id,
                &v.channel,
                data,
                &other_key
            ),
            Err(AuthError::WrongKey)
        );
        // And the signature is bound to the socket.
        assert_eq!(
            verify_channel(&v.key, &v.secret, "1.2", &v.channel, data, &v.auth),
            Err(AuthError::BadSignature)
        );
    }
}

#[derive(Deserialize)]
struct UserVector {
    name: String,
    key: String,
    secret: String,
    socket_id: String,
    user_data: String,
    string_to_sign: String,
    signature: String,
    auth: String,
}

#[test]
fn user_auth_vectors() {
    let file: Vectors<UserVector> = load("user_auth.json");
    assert!(file.vectors.len() >= 2);
    for v in &file.vectors {
        assert_eq!(
            hmac_sha256_hex(v.secret.as_bytes(), v.string_to_sign.as_bytes()),
            v.signature,
            "{}",
            v.name
        );
        assert_eq!(
            sign_user(&v.key, &v.secret, &v.socket_id, &v.user_data),
            v.auth,
            "{}",
            v.name
        );
        assert_eq!(
            verify_user(&v.key, &v.secret, &v.socket_id, &v.user_data, &v.auth),
            Ok(())
        );
        let response = authenticate_user(&v.key, &v.secret, &v.socket_id, &v.user_data);
        assert_eq!(response.auth, v.auth);
        assert_eq!(response.user_data, v.user_data);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "auth": v.auth, "user_data": v.user_data })
        );
    }
}

#[derive(Deserialize)]
struct HttpVector {
    name: String,
    key: String,
    secret: String,
    method: String,
    path: String,
    params: Vec<(String, String)>,
    body: String,
    timestamp: u64,
    body_md5: String,
    string_to_sign: String,
    auth_signature: String,
    query: String,
}

#[test]
fn http_request_vectors() {
    let file: Vectors<HttpVector> = load("http_request.json");
    assert!(!file.vectors.is_empty());
    for v in &file.vectors {
        assert_eq!(
            hmac_sha256_hex(v.secret.as_bytes(), v.string_to_sign.as_bytes()),
            v.auth_signature,
            "{}",
            v.name
        );
        let params: Vec<(&str, &str)> = v
            .params
            .iter()
            .map(|(k, val)| (k.as_str(), val.as_str()))
            .collect();
        let body = v.body.as_bytes();
        let query = sign_request(
            &v.method,
            &v.path,
            &params,
            body,
            &v.key,
            &v.secret,
            v.timestamp,
        );
        assert_eq!(query, v.query, "{}", v.name);
        assert_eq!(
            query_param(&query, "body_md5").as_deref(),
            Some(v.body_md5.as_str())
        );
        assert_eq!(
            query_param(&query, "auth_signature").as_deref(),
            Some(v.auth_signature.as_str())
        );

        let req = RequestParts {
            method: &v.method,
            path: &v.path,
            query: &v.query,
            body,
        };
        let verifier = HttpVerifier::default();
        let verified = verifier
            .verify(&req, &v.key, &v.secret, v.timestamp)
            .unwrap();
        assert_eq!(verified.params, v.params);
        // PROTOCOL.md B.9: the worked example with a fixed clock, and ±601 s refused.
        assert!(
            verifier
                .verify(&req, &v.key, &v.secret, v.timestamp + 600)
                .is_ok()
        );
        assert!(
            verifier
                .verify(&req, &v.key, &v.secret, v.timestamp + 601)
                .is_err()
        );
        assert!(
            verifier
                .verify(&req, &v.key, &v.secret, v.timestamp - 601)
                .is_err()
        );
    }
}

#[derive(Deserialize)]
struct WebhookVector {
    name: String,
    secret: String,
    body: String,
    signature: String,
}

#[test]
fn webhook_vectors() {
    let file: Vectors<WebhookVector> = load("webhook.json");
    assert!(!file.vectors.is_empty());
    for v in &file.vectors {
        assert_eq!(
            sign_webhook(&v.secret, v.body.as_bytes()),
            v.signature,
            "{}",
            v.name
        );
        assert_eq!(
            verify_webhook(&v.secret, v.body.as_bytes(), &v.signature),
            Ok(())
        );
        assert_eq!(
            verify_webhook("not-the-secret", v.body.as_bytes(), &v.signature),
            Err(AuthError::BadSignature)
        );
    }
}

#[cfg(feature = "encryption")]
mod encryption {
    use super::load;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use pusher_auth::{
        EncryptedPayload, MasterKey, authorize_encrypted_channel, decrypt_with_shared_secret,
        encrypt_with_shared_secret, shared_secret,
    };
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct File {
        shared_secret: Vec<SharedSecretVector>,
        secretbox: Vec<SecretboxVector>,
    }

    #[derive(Deserialize)]
    struct SharedSecretVector {
        master_key_base64: String,
        channel: String,
        shared_secret_base64: String,
    }

    #[derive(Deserialize)]
    struct SecretboxVector {
        name: String,
        key_hex: String,
        nonce_hex: String,
        plaintext_hex: String,
        ciphertext_hex: String,
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn shared_secret_vectors() {
        let file: File = load("encryption.json");
        assert!(!file.shared_secret.is_empty());
        for v in &file.shared_secret {
            let master = MasterKey::from_base64(&v.master_key_base64).unwrap();
            let secret = shared_secret(&v.channel, &master);
            assert_eq!(STANDARD.encode(secret), v.shared_secret_base64);
            let response = authorize_encrypted_channel("key", "secret", "1.1", &v.channel, &master);
            assert_eq!(
                response.shared_secret.as_deref(),
                Some(v.shared_secret_base64.as_str())
            );
            assert_eq!(response.channel_data, None);
        }
        // The master key in this vector is the bytes 0..=31.
        let bytes: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            STANDARD.encode(shared_secret(
                "private-encrypted-foo",
                &MasterKey::from_bytes(bytes)
            )),
            "E3I6KxLwqP1Rr/p1676Vpnrw23CkRdS5bkX5NazRkeY="
        );
    }

    /// NaCl's own secretbox vector: what this crate produces is what tweetnacl's
    /// `secretbox.open` (used by pusher-js) accepts.
    #[test]
    fn secretbox_vectors() {
        let file: File = load("encryption.json");
        assert!(!file.secretbox.is_empty());
        for v in &file.secretbox {
            let key: [u8; 32] = unhex(&v.key_hex).try_into().unwrap();
            let nonce: [u8; 24] = unhex(&v.nonce_hex).try_into().unwrap();
            let plaintext = unhex(&v.plaintext_hex);
            let ciphertext = unhex(&v.ciphertext_hex);

            let payload = encrypt_with_shared_secret(&key, &plaintext, nonce);
            assert_eq!(
                STANDARD.decode(&payload.ciphertext).unwrap(),
                ciphertext,
                "{}",
                v.name
            );
            assert_eq!(STANDARD.decode(&payload.nonce).unwrap(), nonce);

            let given = EncryptedPayload {
                nonce: STANDARD.encode(nonce),
                ciphertext: STANDARD.encode(&ciphertext),
            };
            assert_eq!(decrypt_with_shared_secret(&key, &given).unwrap(), plaintext);
        }
    }
}
