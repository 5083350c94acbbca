//! Channel-name parsing never panics, and an accepted name keeps its text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pusher_proto::ChannelName;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = ChannelName::new(text) {
            assert_eq!(name.as_str(), text);
            let _ = (name.kind(), name.is_cache(), name.user_id());
        }
    }
});
