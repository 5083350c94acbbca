//! Any bytes a client sends decode to a frame or an error; a decoded frame
//! encodes and decodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pusher_proto::ClientFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ClientFrame::decode(data) {
        let again = ClientFrame::decode(&frame.encode()).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
