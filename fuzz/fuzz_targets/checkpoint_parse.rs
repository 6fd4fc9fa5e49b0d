//! Arbitrary text as a checkpoint body: never a panic, and whatever parses formats back to
//! exactly the same text (one spelling per checkpoint).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealtrail_core::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.to_text(), text);
    }
});
