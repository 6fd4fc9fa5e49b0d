//! Arbitrary bytes through the verifier's entry scanner and a one-entry verification: the
//! verifier reads tampered data by design, so no input may make it panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealtrail_core::verify::{Verifier, VerifyOptions, scan_entry_links};

fuzz_target!(|data: &[u8]| {
    let _ = scan_entry_links(data);
    let mut verifier = Verifier::new(None, &[], &[], VerifyOptions::default()).expect("no stored hashes needed from seq 0");
    verifier.push(0, data);
    verifier.push(1, data);
    let report = verifier.finish();
    assert_eq!(report.rows_checked, 2);
});
