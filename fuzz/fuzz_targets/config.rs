//! The config file parser over any text: an error is one line naming where, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(msg) = uswitch::config::file::parse(std::path::Path::new("fuzz.toml"), text) {
        assert!(msg.starts_with("config fuzz.toml"), "{msg}");
    }
});
