//! Presence channel_data and sign-in user_data parsing never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pusher_proto::{ChannelData, UserData};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ChannelData::parse(text);
        let _ = UserData::parse(text);
    }
});
