//! HTTP API request signing (`auth_key`, `auth_timestamp`, `auth_version`, `body_md5`,
//! `auth_signature` query parameters) and its verification.
//!
//! The string signed is `METHOD\nPATH\nQUERY`, where `QUERY` is every query parameter except
//! `auth_signature`: keys lower-cased, sorted by key, joined as `k=v&...` with keys and values
//! *decoded*, not re-escaped. This is what the Pusher REST documentation specifies and what
//! pusher-http-node, pusher-http-python and the Ruby `pusher-signature` gem compute (the first
//! two also put the values in the URL unescaped; a decoder gives them back unchanged for the
//! characters they are used with).
//!
//! Choices where the libraries leave room:
//! - A parameter given twice (keys compared after lower-casing) is refused as
//!   [`HttpAuthError::MalformedQuery`]: no SDK sends one, and taking either copy would let the
//!   signed and the acted-upon values differ. [`sign_request`] keeps the first of repeated keys
//!   so it never produces such a request.
//! - The path is checked as received first, then percent-decoded, because some SDKs sign the
//!   path before their HTTP stack escapes it.
//! - `body_md5` is required when the body is not empty and accepted on any request (including
//!   GET with an empty body, which pusher-http-python always sends) as long as it matches.

use std::collections::BTreeMap;

use md5::{Digest as _, Md5};

use crate::error::HttpAuthError;
use crate::mac::{TAG_LEN, hex_decode_array, hex_encode, hmac_sha256_hex, hmac_sha256_verify};
use crate::query::{encode_component, form_decode, parse_query, percent_decode, raw_pairs};

const AUTH_KEY: &str = "auth_key";
const AUTH_TIMESTAMP: &str = "auth_timestamp";
const AUTH_VERSION: &str = "auth_version";
const AUTH_SIGNATURE: &str = "auth_signature";
const BODY_MD5: &str = "body_md5";
const RESERVED: [&str; 5] = [
    AUTH_KEY,
    AUTH_TIMESTAMP,
    AUTH_VERSION,
    AUTH_SIGNATURE,
    BODY_MD5,
];
const VERSION: &str = "1.0";

fn is_reserved(lowercase_key: &str) -> bool {
    RESERVED.contains(&lowercase_key)
}

fn body_md5_hex(body: &[u8]) -> String {
    hex_encode(&Md5::digest(body))
}

/// `k=v&k=v...` over pairs already sorted by key, unescaped.
fn canonical_query<'a>(sorted: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in sorted {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The parts of an incoming HTTP API request that its signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The request method, e.g. `POST` (compared upper-cased).
    pub method: &'a str,
    /// The path as received, still percent-encoded, e.g. `/apps/3/events`.
    pub path: &'a str,
    /// The raw query string as received (url-encoded), without or with a leading `?`.
    pub query: &'a str,
    /// The raw request body (empty for GET).
    pub body: &'a [u8],
}

/// Checks signed HTTP API requests. It holds no clock: the caller passes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpVerifier {
    /// How far `auth_timestamp` may be from the server's time, either way, in seconds.
    /// Pusher uses 600; a difference of exactly `max_skew_secs` is accepted.
    pub max_skew_secs: u64,
}

impl HttpVerifier {
    /// The window Pusher enforces: 600 seconds.
    pub const DEFAULT_MAX_SKEW_SECS: u64 = 600;
}

impl Default for HttpVerifier {
    fn default() -> Self {
        Self {
            max_skew_secs: Self::DEFAULT_MAX_SKEW_SECS,
        }
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifiedRequest {
    /// The decoded query parameters other than `auth_key`, `auth_timestamp`, `auth_version`,
    /// `auth_signature` and `body_md5`, in the order received. Keys are lower-cased, as signed.
    pub params: Vec<(String, String)>,
}

impl VerifiedRequest {
    /// The value of parameter `name` (lower-case), if present.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }
}

impl HttpVerifier {
    /// Checks the signature of an HTTP API request made with the app's `key` and `secret`,
    /// at server time `now_unix_secs`: [`HttpVerifier::verify_head`], then
    /// [`SignedHead::check_body`].
    ///
    /// # Errors
    /// The first check that fails, as an [`HttpAuthError`].
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        key: &str,
        secret: &str,
        now_unix_secs: u64,
    ) -> Result<VerifiedRequest, HttpAuthError> {
        self.verify_head(req.method, req.path, req.query, key, secret, now_unix_secs)?
            .check_body(req.body)
    }

    /// Checks everything of a request that does not need its body, so that a server can refuse
    /// an unsigned request before it reads (and holds) the body. The signature covers
    /// `body_md5`, so the body is then checked against the signed MD5 by
    /// [`SignedHead::check_body`].
    ///
    /// Checks, in order: the query decodes and repeats no parameter; `auth_key`,
    /// `auth_signature`, `auth_timestamp`, `auth_version` are present; `auth_key` is `key`;
    /// `auth_version` is `1.0`; `auth_timestamp` is within `max_skew_secs` of `now_unix_secs`;
    /// `body_md5`, when present, is 32 hex digits; the signature matches (constant-time) for
    /// the path as received or, failing that, the percent-decoded path.
    ///
    /// # Errors
    /// The first check that fails, as an [`HttpAuthError`].
    pub fn verify_head(
        &self,
        method: &str,
        path: &str,
        query: &str,
        key: &str,
        secret: &str,
        now_unix_secs: u64,
    ) -> Result<SignedHead, HttpAuthError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut pairs = parse_query(query).ok_or(HttpAuthError::MalformedQuery)?;
        for (k, _) in &mut pairs {
            k.make_ascii_lowercase();
        }

        // Sorted view for duplicate detection and the canonical string; `pairs` keeps the
        // received order for the caller.
        let mut sorted: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(HttpAuthError::MalformedQuery);
        }
        let find = |name: &str| {
            sorted
                .binary_search_by(|(k, _)| (*k).cmp(name))
                .ok()
                .map(|i| sorted[i].1)
        };

        let given_key = find(AUTH_KEY).ok_or(HttpAuthError::MissingParam(AUTH_KEY))?;
        let signature = find(AUTH_SIGNATURE).ok_or(HttpAuthError::MissingParam(AUTH_SIGNATURE))?;
        let timestamp = find(AUTH_TIMESTAMP).ok_or(HttpAuthError::MissingParam(AUTH_TIMESTAMP))?;
        let version = find(AUTH_VERSION).ok_or(HttpAuthError::MissingParam(AUTH_VERSION))?;

        if given_key != key {
            return Err(HttpAuthError::WrongKey);
        }
        if version != VERSION {
            return Err(HttpAuthError::BadVersion);
        }
        let timestamp = parse_timestamp(timestamp).ok_or(HttpAuthError::InvalidTimestamp)?;
        if timestamp.abs_diff(now_unix_secs) > self.max_skew_secs {
            return Err(HttpAuthError::TimestampOutOfWindow {
                timestamp,
                now: now_unix_secs,
                max_skew_secs: self.max_skew_secs,
            });
        }
        let body_md5 = match find(BODY_MD5) {
            // Not hex: no body can match it.
            Some(given) => Some(hex_decode_array(given).ok_or(HttpAuthError::BodyMd5Mismatch)?),
            None => None,
        };

        let tag: [u8; TAG_LEN] = hex_decode_array(signature).ok_or(HttpAuthError::BadSignature)?;
        let method = method.to_ascii_uppercase();
        let canonical =
            canonical_query(sorted.iter().copied().filter(|(k, _)| *k != AUTH_SIGNATURE));
        let signed_with_path = |path: &[u8]| {
            hmac_sha256_verify(
                secret.as_bytes(),
                &[method.as_bytes(), b"\n", path, b"\n", canonical.as_bytes()],
                &tag,
            )
        };
        let mut ok = signed_with_path(path.as_bytes());
        if !ok
            && let Some(decoded) = percent_decode(path, false)
            && decoded != path.as_bytes()
        {
            ok = signed_with_path(&decoded);
        }
        if !ok {
            return Err(HttpAuthError::BadSignature);
        }

        pairs.retain(|(k, _)| !is_reserved(k));
        Ok(SignedHead {
            params: pairs,
            body_md5,
        })
    }
}

/// A request whose query and signature checked out, waiting for its body: the signed
/// `body_md5` decides which body is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the body is not checked until `check_body`"]
pub struct SignedHead {
    params: Vec<(String, String)>,
    body_md5: Option<[u8; 16]>,
}

impl SignedHead {
    /// Whether the signature covers a body (`body_md5` was signed). Without it only an
    /// empty body is accepted, so a server need not read more than one byte.
    #[must_use]
    pub fn expects_body(&self) -> bool {
        self.body_md5.is_some()
    }

    /// The decoded query parameters other than the reserved ones (see [`VerifiedRequest`]).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    /// Checks the body against the signed `body_md5`: it must match whenever present, and the
    /// body must be empty when it is absent.
    ///
    /// # Errors
    /// [`HttpAuthError::BodyMd5Mismatch`], or [`HttpAuthError::MissingParam`] for a body that
    /// was not signed.
    pub fn check_body(self, body: &[u8]) -> Result<VerifiedRequest, HttpAuthError> {
        match &self.body_md5 {
            Some(given) if *given != <[u8; 16]>::from(Md5::digest(body)) => {
                return Err(HttpAuthError::BodyMd5Mismatch);
            }
            None if !body.is_empty() => return Err(HttpAuthError::MissingParam(BODY_MD5)),
            _ => {}
        }
        Ok(VerifiedRequest {
            params: self.params,
        })
    }
}

fn find_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Unix seconds as SDKs send them: ASCII digits only (no sign, no fraction, no spaces).
fn parse_timestamp(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Finds query parameter `name` in a raw (url-encoded) query string, decoded. Keys match
/// ASCII case-insensitively, as the signature treats them; the first occurrence wins.
/// Segments that do not decode are skipped. A server calls this to read `auth_key` and look up
/// the app's secret before calling [`HttpVerifier::verify`].
///
/// ```
/// let q = "auth_key=278d425bdf160c739803&info=user_count%2Csubscription_count";
/// assert_eq!(pusher_auth::query_param(q, "auth_key").as_deref(), Some("278d425bdf160c739803"));
/// assert_eq!(pusher_auth::query_param(q, "info").as_deref(), Some("user_count,subscription_count"));
/// assert_eq!(pusher_auth::query_param(q, "missing"), None);
/// ```
#[must_use]
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    raw_pairs(query).find_map(|(k, v)| {
        let k = form_decode(k)?;
        if k.eq_ignore_ascii_case(name) {
            form_decode(v)
        } else {
            None
        }
    })
}

/// Signs an HTTP API request as the Pusher server libraries do and returns the complete query
/// string to put after `?`: the caller's `params`, `auth_key`, `auth_timestamp`,
/// `auth_version=1.0`, `body_md5` (when `body` is not empty), then `auth_signature`. Keys are
/// lower-cased and sorted, values percent-encoded.
///
/// `path` must be the path the request is sent to (e.g. `/apps/3/events`), and `timestamp` the
/// current unix time in seconds. Caller `params` that repeat a key (after lower-casing) keep
/// their first value; caller `params` named like the reserved `auth_*` or `body_md5` parameters
/// are ignored, since this function sets those.
///
/// ```
/// use pusher_auth::{HttpVerifier, RequestParts, sign_request};
///
/// let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
/// let query = sign_request(
///     "POST", "/apps/3/events", &[], body,
///     "278d425bdf160c739803", "7ad3773142a6692b25b8", 1353088179,
/// );
/// assert_eq!(
///     query,
///     "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
///      &body_md5=ec365a775a4cd0599faeb73354201b6f\
///      &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
/// );
/// let req = RequestParts { method: "POST", path: "/apps/3/events", query: &query, body };
/// assert!(HttpVerifier::default()
///     .verify(&req, "278d425bdf160c739803", "7ad3773142a6692b25b8", 1353088179)
///     .is_ok());
/// ```
#[must_use]
pub fn sign_request(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    key: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in params {
        let k = k.to_ascii_lowercase();
        if !is_reserved(&k) {
            all.entry(k).or_insert_with(|| (*v).to_owned());
        }
    }
    all.insert(AUTH_KEY.to_owned(), key.to_owned());
    all.insert(AUTH_TIMESTAMP.to_owned(), timestamp.to_string());
    all.insert(AUTH_VERSION.to_owned(), VERSION.to_owned());
    if !body.is_empty() {
        all.insert(BODY_MD5.to_owned(), body_md5_hex(body));
    }

    let canonical = canonical_query(all.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let to_sign = format!("{}\n{path}\n{canonical}", method.to_ascii_uppercase());
    let signature = hmac_sha256_hex(secret.as_bytes(), to_sign.as_bytes());

    let mut query = String::with_capacity(canonical.len() + 100);
    for (k, v) in &all {
        encode_component(k, &mut query);
        query.push('=');
        encode_component(v, &mut query);
        query.push('&');
    }
    query.push_str(AUTH_SIGNATURE);
    query.push('=');
    query.push_str(&signature);
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";
    const NOW: u64 = 1_353_088_179;

    fn verify(
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Result<VerifiedRequest, HttpAuthError> {
        HttpVerifier::default().verify(
            &RequestParts {
                method,
                path,
                query,
                body,
            },
            KEY,
            SECRET,
            NOW,
        )
    }

    /// Signs by hand, the way pusher-http-node does: values unescaped in the URL.
    fn node_style(method: &str, path: &str, params: &[(&str, &str)]) -> String {
        let mut sorted: Vec<(&str, &str)> = params.to_vec();
        sorted.sort();
        let q = canonical_query(sorted.into_iter());
        let sig = hmac_sha256_hex(
            SECRET.as_bytes(),
            format!("{method}\n{path}\n{q}").as_bytes(),
        );
        format!("{q}&auth_signature={sig}")
    }

    #[test]
    fn get_with_params_round_trips() {
        let q = sign_request(
            "get",
            "/apps/3/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            b"",
            KEY,
            SECRET,
            NOW,
        );
        assert!(!q.contains("body_md5"));
        let v = verify("GET", "/apps/3/channels", &q, b"").unwrap();
        assert_eq!(v.param("filter_by_prefix"), Some("presence-"));
        assert_eq!(v.param("info"), Some("user_count"));
        assert_eq!(v.params.len(), 2);
    }

    #[test]
    fn node_style_unescaped_values_verify() {
        let q = node_style(
            "GET",
            "/apps/3/channels/presence-a",
            &[
                ("auth_key", KEY),
                ("auth_timestamp", "1353088179"),
                ("auth_version", "1.0"),
                ("info", "user_count,subscription_count"),
            ],
        );
        let v = verify("GET", "/apps/3/channels/presence-a", &q, b"").unwrap();
        assert_eq!(v.param("info"), Some("user_count,subscription_count"));
    }

    #[test]
    fn python_style_get_with_empty_body_md5() {
        let q = node_style(
            "GET",
            "/apps/3/channels",
            &[
                ("auth_key", KEY),
                ("auth_timestamp", "1353088179"),
                ("auth_version", "1.0"),
                ("body_md5", "d41d8cd98f00b204e9800998ecf8427e"),
            ],
        );
        assert_eq!(
            verify("GET", "/apps/3/channels", &q, b""),
            Ok(VerifiedRequest::default())
        );
        // The same MD5 with a body it does not match.
        assert_eq!(
            verify("GET", "/apps/3/channels", &q, b"x"),
            Err(HttpAuthError::BodyMd5Mismatch)
        );
    }

    #[test]
    fn keys_are_lowercased_and_sorted() {
        // Ruby's signature gem lower-cases keys when signing, whatever the URL carries.
        let mut q = node_style(
            "GET",
            "/apps/3/channels",
            &[
                ("auth_key", KEY),
                ("auth_timestamp", "1353088179"),
                ("auth_version", "1.0"),
                ("filter_by_prefix", "x"),
            ],
        );
        q = q
            .replace("filter_by_prefix", "Filter_By_Prefix")
            .replace("auth_key", "AUTH_KEY");
        let v = verify("GET", "/apps/3/channels", &q, b"").unwrap();
        assert_eq!(
            v.params,
            vec![("filter_by_prefix".to_owned(), "x".to_owned())]
        );
    }

    #[test]
    fn decoded_path_fallback() {
        let q = sign_request("GET", "/apps/3/channels/a;b@c", &[], b"", KEY, SECRET, NOW);
        assert!(verify("GET", "/apps/3/channels/a;b@c", &q, b"").is_ok());
        assert!(verify("GET", "/apps/3/channels/a%3Bb%40c", &q, b"").is_ok());
        // Signed over the encoded form also works, as received.
        let q = sign_request("GET", "/apps/3/channels/a%3Bb", &[], b"", KEY, SECRET, NOW);
        assert!(verify("GET", "/apps/3/channels/a%3Bb", &q, b"").is_ok());
        assert_eq!(
            verify("GET", "/apps/3/channels/a;b", &q, b""),
            Err(HttpAuthError::BadSignature)
        );
        // A bad escape in the path just means no fallback.
        assert_eq!(
            verify("GET", "/apps/3/%zz", &q, b""),
            Err(HttpAuthError::BadSignature)
        );
    }

    #[test]
    fn leading_question_mark_is_tolerated() {
        let q = sign_request("GET", "/apps/3/channels", &[], b"", KEY, SECRET, NOW);
        assert!(verify("GET", "/apps/3/channels", &format!("?{q}"), b"").is_ok());
        assert_eq!(
            query_param(&format!("?{q}"), "auth_key").as_deref(),
            Some(KEY)
        );
    }

    #[test]
    fn each_check_has_its_error() {
        let body = br#"{"name":"e","channel":"c","data":"{}"}"#;
        let good = sign_request("POST", "/apps/3/events", &[], body, KEY, SECRET, NOW);
        assert!(verify("POST", "/apps/3/events", &good, body).is_ok());
        let without = |name: &str| {
            good.split('&')
                .filter(|s| !s.starts_with(&format!("{name}=")))
                .collect::<Vec<_>>()
                .join("&")
        };
        for name in [
            "auth_key",
            "auth_signature",
            "auth_timestamp",
            "auth_version",
        ] {
            let name_static = RESERVED.iter().find(|r| **r == name).unwrap();
            assert_eq!(
                verify("POST", "/apps/3/events", &without(name), body),
                Err(HttpAuthError::MissingParam(name_static)),
            );
        }
        // body_md5 was signed: taking it out breaks the signature.
        assert_eq!(
            verify("POST", "/apps/3/events", &without("body_md5"), body),
            Err(HttpAuthError::BadSignature),
        );
        // Signed without body_md5, sent with a body.
        let unsigned_body = sign_request("POST", "/apps/3/events", &[], b"", KEY, SECRET, NOW);
        assert_eq!(
            verify("POST", "/apps/3/events", &unsigned_body, body),
            Err(HttpAuthError::MissingParam("body_md5")),
        );
        let v = HttpVerifier::default();
        let req = RequestParts {
            method: "POST",
            path: "/apps/3/events",
            query: &good,
            body,
        };
        assert_eq!(
            v.verify(&req, "other", SECRET, NOW),
            Err(HttpAuthError::WrongKey)
        );
        assert_eq!(
            v.verify(&req, KEY, "other", NOW),
            Err(HttpAuthError::BadSignature)
        );
        assert!(v.verify(&req, KEY, SECRET, NOW + 600).is_ok());
        assert!(v.verify(&req, KEY, SECRET, NOW - 600).is_ok());
        assert_eq!(
            v.verify(&req, KEY, SECRET, NOW + 601),
            Err(HttpAuthError::TimestampOutOfWindow {
                timestamp: NOW,
                now: NOW + 601,
                max_skew_secs: 600
            })
        );
        assert!(v.verify(&req, KEY, SECRET, NOW - 601).is_err());
        assert!(
            HttpVerifier { max_skew_secs: 0 }
                .verify(&req, KEY, SECRET, NOW)
                .is_ok()
        );
        assert!(
            HttpVerifier { max_skew_secs: 0 }
                .verify(&req, KEY, SECRET, NOW + 1)
                .is_err()
        );

        assert_eq!(
            verify("POST", "/apps/3/events", &good, b"{}"),
            Err(HttpAuthError::BodyMd5Mismatch)
        );
        assert_eq!(
            verify(
                "POST",
                "/apps/3/events",
                &good.replace("auth_version=1.0", "auth_version=2.0"),
                body
            ),
            Err(HttpAuthError::BadVersion)
        );
        for ts in [
            "",
            "-1",
            "1e9",
            "1353088179.0",
            " 1353088179",
            "99999999999999999999999",
        ] {
            assert_eq!(
                verify(
                    "POST",
                    "/apps/3/events",
                    &good.replace("1353088179", ts),
                    body
                ),
                Err(HttpAuthError::InvalidTimestamp),
                "{ts:?}"
            );
        }
        assert_eq!(
            verify("POST", "/apps/3/other", &good, body),
            Err(HttpAuthError::BadSignature)
        );
        assert_eq!(
            verify("PUT", "/apps/3/events", &good, body),
            Err(HttpAuthError::BadSignature)
        );
        assert!(verify("post", "/apps/3/events", &good, body).is_ok());
        // Signature in upper-case hex is the same signature.
        let (head, sig) = good.rsplit_once('=').unwrap();
        assert!(
            verify(
                "POST",
                "/apps/3/events",
                &format!("{head}={}", sig.to_uppercase()),
                body
            )
            .is_ok()
        );
        assert_eq!(
            verify(
                "POST",
                "/apps/3/events",
                &format!("{head}={}", &sig[..63]),
                body
            ),
            Err(HttpAuthError::BadSignature)
        );
        assert_eq!(
            verify(
                "POST",
                "/apps/3/events",
                &format!("{head}=zz{}", &sig[2..]),
                body
            ),
            Err(HttpAuthError::BadSignature)
        );
        // An extra parameter the signer did not sign.
        assert_eq!(
            verify(
                "POST",
                "/apps/3/events",
                &format!("{good}&info=user_count"),
                body
            ),
            Err(HttpAuthError::BadSignature)
        );
    }

    #[test]
    fn head_is_checked_before_the_body() {
        let body = br#"{"name":"e","channel":"c","data":"{}"}"#;
        let q = sign_request("POST", "/apps/3/events", &[], body, KEY, SECRET, NOW);
        let v = HttpVerifier::default();
        let head = v
            .verify_head("POST", "/apps/3/events", &q, KEY, SECRET, NOW)
            .unwrap();
        assert!(head.expects_body());
        assert_eq!(
            head.clone().check_body(b"{}"),
            Err(HttpAuthError::BodyMd5Mismatch)
        );
        assert!(head.check_body(body).is_ok());
        // A wrong secret is refused without any body.
        assert_eq!(
            v.verify_head("POST", "/apps/3/events", &q, KEY, "other", NOW),
            Err(HttpAuthError::BadSignature)
        );
        // A body_md5 that is not hex can match no body.
        let bad = q.replace(&body_md5_hex(body), "zz");
        assert_eq!(
            v.verify_head("POST", "/apps/3/events", &bad, KEY, SECRET, NOW),
            Err(HttpAuthError::BodyMd5Mismatch)
        );
        // Unsigned body: only an empty one passes.
        let q = sign_request(
            "GET",
            "/apps/3/channels",
            &[("info", "x")],
            b"",
            KEY,
            SECRET,
            NOW,
        );
        let head = v
            .verify_head("GET", "/apps/3/channels", &q, KEY, SECRET, NOW)
            .unwrap();
        assert!(!head.expects_body());
        assert_eq!(head.param("info"), Some("x"));
        assert_eq!(
            head.clone().check_body(b"x"),
            Err(HttpAuthError::MissingParam("body_md5"))
        );
        assert_eq!(head.check_body(b"").unwrap().param("info"), Some("x"));
    }

    #[test]
    fn duplicates_and_bad_escapes_are_malformed() {
        let q = sign_request(
            "GET",
            "/apps/3/channels",
            &[("info", "a")],
            b"",
            KEY,
            SECRET,
            NOW,
        );
        for bad in [
            format!("{q}&info=a"),
            format!("{q}&INFO=a"),
            format!("{q}&auth_key={KEY}"),
            format!("{q}&x=%"),
            format!("{q}&x=%zz"),
            format!("{q}&x=%ff"),
        ] {
            let err = verify("GET", "/apps/3/channels", &bad, b"").unwrap_err();
            assert_eq!(err, HttpAuthError::MalformedQuery, "{bad}");
            assert_eq!(err.status_code(), 400);
        }
        assert_eq!(HttpAuthError::BadSignature.status_code(), 401);
    }

    #[test]
    fn sign_request_dedups_and_ignores_reserved() {
        let q = sign_request(
            "GET",
            "/apps/3/channels",
            &[
                ("Info", "first"),
                ("info", "second"),
                ("auth_key", "evil"),
                ("BODY_MD5", "x"),
            ],
            b"",
            KEY,
            SECRET,
            NOW,
        );
        assert!(
            q.starts_with(&format!(
                "auth_key={KEY}&auth_timestamp={NOW}&auth_version=1.0&info=first&auth_signature="
            )),
            "{q}"
        );
        let v = verify("GET", "/apps/3/channels", &q, b"").unwrap();
        assert_eq!(v.params, vec![("info".to_owned(), "first".to_owned())]);
    }

    #[test]
    fn special_characters_in_values() {
        let value = "a b+c&d=e%f/é";
        let q = sign_request(
            "GET",
            "/apps/3/channels",
            &[("filter_by_prefix", value)],
            b"",
            KEY,
            SECRET,
            NOW,
        );
        let v = verify("GET", "/apps/3/channels", &q, b"").unwrap();
        assert_eq!(v.param("filter_by_prefix"), Some(value));
        assert_eq!(query_param(&q, "filter_by_prefix").as_deref(), Some(value));
    }

    #[test]
    fn query_param_lookup() {
        assert_eq!(query_param("a=1&A=2", "a").as_deref(), Some("1"));
        assert_eq!(query_param("A=2&a=1", "a").as_deref(), Some("2"));
        assert_eq!(query_param("%zz=1&a=%&a=3", "a").as_deref(), Some("3"));
        assert_eq!(query_param("a", "a").as_deref(), Some(""));
        assert_eq!(query_param("", "a"), None);
        assert_eq!(
            query_param("auth%5Fkey=x+y", "auth_key").as_deref(),
            Some("x y")
        );
    }
}
