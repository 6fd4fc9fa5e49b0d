//! The archive manifest parser on arbitrary text: it must never panic, and whatever it accepts
//! must print back to the same text (one spelling per manifest).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealtrail_core::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = Manifest::parse(text) {
        assert_eq!(manifest.to_text(), text);
        assert!(manifest.previous <= manifest.size);
    }
});
