//! The `sealtrail` binary's key and note commands, run as a user runs them.

use crate::support::{sealtrail, stderr, stdout};
use sealtrail_store::DataDir;

#[test]
fn keys_generate_writes_a_private_key_only_its_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = sealtrail(
        &[
            "keys",
            "generate",
            "--name",
            "audit.example/acme",
            "--out",
            "keys",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let vkey = stdout(&out);
    assert!(vkey.starts_with("audit.example/acme+"), "{vkey}");
    assert_eq!(vkey.lines().count(), 1);

    let key_path = dir.path().join("keys/audit.example_acme.key");
    let vkey_path = dir.path().join("keys/audit.example_acme.vkey");
    let private = std::fs::read_to_string(&key_path).unwrap();
    assert!(private.starts_with("PRIVATE+KEY+audit.example/acme+"));
    assert_eq!(std::fs::read_to_string(&vkey_path).unwrap(), vkey);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode is {mode:o}");
    }
    // The secret never reaches the terminal.
    // PRIVATE+KEY+<name>+<key hash>+<base64 key>; the base64 may itself contain '+'.
    let (_, secret) = private
        .trim()
        .strip_prefix("PRIVATE+KEY+audit.example/acme+")
        .unwrap()
        .split_once('+')
        .unwrap();
    assert!(secret.len() >= 40, "{secret}");
    assert!(!vkey.contains(secret) && !stderr(&out).contains(secret));

    // A second generate must not destroy the existing key.
    let again = sealtrail(
        &[
            "keys",
            "generate",
            "--name",
            "audit.example/acme",
            "--out",
            "keys",
        ],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), private);

    // keys show lists the verifier keys of a data directory.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::rename(
        dir.path().join("keys"),
        DataDir::new(dir.path().join("data")).keys(),
    )
    .unwrap();
    let show = sealtrail(&["keys", "show", "--data", "data"], dir.path());
    assert!(show.status.success(), "{}", stderr(&show));
    assert_eq!(stdout(&show), vkey);
}

#[test]
fn keys_generate_rejects_names_the_note_format_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["has space", "has+plus", ""] {
        let out = sealtrail(
            &["keys", "generate", "--name", bad, "--out", "k"],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(stderr(&out).contains("name"), "{bad:?}: {}", stderr(&out));
    }
    assert!(
        !dir.path().join("k").exists()
            || std::fs::read_dir(dir.path().join("k"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn note_sign_then_verify_round_trips_and_tampering_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = sealtrail(
        &["keys", "generate", "--name", "notary", "--out", "."],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let vkey = stdout(&out).trim().to_string();
    let text = "sealtrail.test/acme\n42\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
    std::fs::write(dir.path().join("body.txt"), text).unwrap();

    let signed = sealtrail(
        &["note", "sign", "--key", "notary.key", "body.txt"],
        dir.path(),
    );
    assert!(signed.status.success(), "{}", stderr(&signed));
    let note = stdout(&signed);
    assert!(note.starts_with(text));
    assert!(note.contains("\n\u{2014} notary "), "{note}");
    std::fs::write(dir.path().join("signed.note"), &note).unwrap();

    // The key may be given as a file or as the key text itself.
    for key in ["notary.vkey", vkey.as_str()] {
        let verified = sealtrail(&["note", "verify", "--key", key, "signed.note"], dir.path());
        assert!(verified.status.success(), "{}", stderr(&verified));
        assert_eq!(stdout(&verified), text);
    }

    let tampered = note.replacen("42", "43", 1);
    std::fs::write(dir.path().join("tampered.note"), tampered).unwrap();
    let rejected = sealtrail(
        &["note", "verify", "--key", "notary.vkey", "tampered.note"],
        dir.path(),
    );
    assert_eq!(rejected.status.code(), Some(1));
    assert!(
        stdout(&rejected).is_empty(),
        "nothing printed for a bad note"
    );
    assert!(
        stderr(&rejected).contains("tampered.note does not verify"),
        "{}",
        stderr(&rejected)
    );

    // Signed by someone else: the key does not vouch for it.
    let other = sealtrail(
        &["keys", "generate", "--name", "notary", "--out", "other"],
        dir.path(),
    );
    assert!(other.status.success());
    let wrong = sealtrail(
        &[
            "note",
            "verify",
            "--key",
            "other/notary.vkey",
            "signed.note",
        ],
        dir.path(),
    );
    assert_eq!(wrong.status.code(), Some(1));

    // A text without a final newline cannot be signed.
    std::fs::write(dir.path().join("bad.txt"), "no newline").unwrap();
    let bad = sealtrail(
        &["note", "sign", "--key", "notary.key", "bad.txt"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).is_empty());
}

#[test]
fn missing_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = sealtrail(
        &["note", "sign", "--key", "nope.key", "body.txt"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.key"), "{}", stderr(&out));
}

/// Go's `sumdb/note` test key and its signed note (public test data from golang.org/x/mod):
/// `sealtrail note sign` must produce the very same bytes, since Ed25519 is deterministic.
#[test]
fn note_sign_is_byte_identical_to_go_sumdb_note() {
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const GO_NOTE_SIGNATURE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("peter.key"), format!("{SKEY}\n")).unwrap();
    std::fs::write(dir.path().join("text"), TEXT).unwrap();
    let signed = sealtrail(&["note", "sign", "--key", "peter.key", "text"], dir.path());
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert_eq!(stdout(&signed), format!("{TEXT}\n{GO_NOTE_SIGNATURE}"));

    std::fs::write(dir.path().join("note"), stdout(&signed)).unwrap();
    let verified = sealtrail(&["note", "verify", "--key", VKEY, "note"], dir.path());
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert_eq!(stdout(&verified), TEXT);
}
