//! Arbitrary bytes as a signed note: parsing and opening never panic, and a note that opens
//! with the key parses to the same text.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealtrail_core::note::{self, VerifierKey};

fn key() -> &'static VerifierKey {
    static KEY: OnceLock<VerifierKey> = OnceLock::new();
    KEY.get_or_init(|| {
        // Go's public sumdb/note test key: the fuzzer needs a stable verifier, not a secret.
        VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .unwrap_or_else(|e| panic!("fuzz key: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = note::parse(data);
    if let Ok(opened) = note::open(data, std::slice::from_ref(key())) {
        assert_eq!(parsed.expect("an opened note parses").text, opened.text);
    }
});
