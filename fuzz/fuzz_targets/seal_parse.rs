//! The daily seal parser on arbitrary text: it must never panic, and whatever it accepts must
//! print back to the same text (one spelling per seal).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealtrail_core::seal::{Seal, is_day};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(seal) = Seal::parse(text) {
        assert_eq!(seal.to_text(), text);
        assert!(is_day(&seal.day));
    }
});
