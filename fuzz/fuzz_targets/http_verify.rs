//! HTTP API request verification never panics on any query, path or body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pusher_auth::{HttpVerifier, RequestParts, query_param};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let (path, query, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let _ = query_param(query, "auth_key");
    let req = RequestParts { method: "POST", path, query, body: body.as_bytes() };
    let _ = HttpVerifier::default().verify(&req, "key", "secret", 1_353_088_179);
});
