//! Any bytes decode to a server frame or an error (the client side's parser).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pusher_proto::ServerFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ServerFrame::decode(data) {
        let _ = frame.encode();
    }
});
