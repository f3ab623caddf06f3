//! The control protocol's request parser over any line: it refuses with a message or
//! accepts, and what it accepts survives being written and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uswitch::control::protocol::Envelope;

fuzz_target!(|line: &[u8]| {
    match Envelope::parse(line) {
        Ok(req) => {
            let again = serde_json::to_vec(&Envelope::new(req.clone())).expect("encodes");
            assert_eq!(Envelope::parse(&again), Ok(req));
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
});
