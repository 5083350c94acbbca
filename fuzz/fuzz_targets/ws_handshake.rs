//! The WebSocket handshake check on any request parts: never panics, and
//! accepts only what RFC 6455 allows (GET, Upgrade and Connection tokens,
//! version 13, a key of 16 bytes in base64).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pusher_proto::{UpgradeRequest, check_upgrade};

fuzz_target!(|data: &[u8]| {
    // Fields separated by newlines: method, path, query, then the raw
    // values of Connection, Upgrade, Sec-WebSocket-Version and
    // Sec-WebSocket-Key (a field left out is an absent header).
    let mut fields = data.split(|b| *b == b'\n');
    let mut text = || std::str::from_utf8(fields.next().unwrap_or(b"")).unwrap_or("");
    let (method, path, query) = (text(), text(), text());
    let rest: Vec<&[u8]> = data.split(|b| *b == b'\n').skip(3).collect();
    let header = |i: usize| rest.get(i).copied();
    let req = UpgradeRequest {
        method,
        path,
        query,
        connection: header(0),
        upgrade: header(1),
        version: header(2),
        key: header(3),
    };
    if let Ok(up) = check_upgrade(&req) {
        assert_eq!(method, "GET");
        assert_eq!(req.version.map(<[u8]>::trim_ascii), Some(&b"13"[..]));
        assert_eq!(up.ws_key.len(), 24);
        if let Ok(key) = up.app_key {
            assert!(!key.is_empty() && !key.contains('/'));
            assert_eq!(path, format!("/app/{key}"));
        }
    }
});
