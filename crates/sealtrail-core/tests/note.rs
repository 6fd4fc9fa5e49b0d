//! Signed notes and checkpoints: interoperability vectors from public C2SP implementations,
//! round trips, verification rules, precise rejection of malformed input, and fuzzing.

use proptest::prelude::*;
use rand_core::OsRng;
use sealtrail_core::Timestamp;
use sealtrail_core::checkpoint::{Checkpoint, CheckpointError, TIMESTAMP_EXTENSION_PREFIX};
use sealtrail_core::hash::{Hash, leaf_hash};
use sealtrail_core::note::{
    self, MAX_SIGNATURES, NameError, NoteError, NoteSignature, SignerKey, VerifiedSignature,
    VerifierKey,
};

// ---------------------------------------------------------------------------------------------
// Public test vectors, used as data only.
//
// From Go's golang.org/x/mod, sumdb/note/note_test.go (TestNewSigner, TestSign, TestOpen).

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// From transparency-dev/formats, log/note_test.go: key pairs made by Go's note.GenerateKey,
// and a real sum.golang.org signed tree head (a checkpoint whose origin is
// "go.sum database tree") with cosignatures by three test witness keys.

const TD_KEY_PAIRS: [(&str, &str); 4] = [
    (
        "PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ",
        "Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs",
    ),
    (
        "PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci",
        "Known+451c786d+AXAQ0T7lbwuY4ABJ9/MYY9bWV3hmSyOGVt2x42NkmdUH",
    ),
    (
        "PRIVATE+KEY+KnownAgain+4893b26c+ARhZda/l25zjGZswYLDZsLNRzNpmv5wYTN9IoTr1OJ2+",
        "KnownAgain+4893b26c+AQ+LR7BFF/F/dkpIBjBpSvT0crkteizuUkavAoGeaYMj",
    ),
    (
        "PRIVATE+KEY+Unknown+fdbb2e08+Aav2knTC6orbhXX8pMWuNiWgO+Wwk2DB+h1eU2Q1W1nU",
        "Unknown+fdbb2e08+AWgRIYZ+8x1Vl+1Q+sR8zciNHiYI1SdlBjNw+RV0rots",
    ),
];
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_TEXT: &str =
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n";
const SUMDB_SIG: &str = "\u{2014} sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";
const WITNESSES: [(&str, &str); 3] = [
    (
        "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT",
        "\u{2014} monkeys 202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuIjRaU2NbvAnaepM6Y+8ww=\n",
    ),
    (
        "bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M",
        "\u{2014} bananas z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0E+x/MggS1mDR6t3/9rQw=\n",
    ),
    (
        "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN",
        "\u{2014} witness 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+UpDbGgCdcpR8SVSoqAU=\n",
    ),
];

fn vkey(text: &str) -> VerifierKey {
    VerifierKey::parse(text).unwrap()
}

fn generated(name: &str) -> SignerKey {
    SignerKey::generate(name, &mut OsRng).unwrap()
}

fn verified(name: &str, key_id: u32) -> VerifiedSignature {
    VerifiedSignature {
        name: name.to_owned(),
        key_id,
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

#[test]
fn generated_keys_round_trip_through_their_text_forms() {
    let signer = generated("example.com/audit");
    let private = signer.to_private_string();
    assert!(private.starts_with("PRIVATE+KEY+example.com/audit+"));

    let reparsed = SignerKey::parse(&private).unwrap();
    assert_eq!(reparsed.name(), "example.com/audit");
    assert_eq!(reparsed.key_id(), signer.key_id());
    assert_eq!(reparsed.to_private_string(), private);
    // A key file usually ends in a newline.
    assert_eq!(
        SignerKey::parse(&format!("{private}\n")).unwrap().key_id(),
        signer.key_id()
    );

    let verifier = signer.verifier();
    let public = verifier.to_string();
    assert!(public.starts_with(&format!("example.com/audit+{:08x}+A", signer.key_id())));
    let reparsed_verifier = VerifierKey::parse(&public).unwrap();
    assert_eq!(reparsed_verifier, verifier);
    assert_eq!(reparsed_verifier.key_id(), signer.key_id());
    assert_eq!(
        note::key_id("example.com/audit", verifier.public_key()),
        signer.key_id()
    );

    let sig = reparsed.sign_bytes(b"message");
    assert!(verifier.verify_bytes(b"message", &sig));
    assert!(!verifier.verify_bytes(b"messagf", &sig));

    // Two generated keys differ.
    assert_ne!(generated("example.com/audit").to_private_string(), private);
}

#[test]
fn go_peter_neumann_keys_parse_with_matching_ids() {
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    let verifier = VerifierKey::parse(PETER_VKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(verifier.key_id(), 0xc74f20a3);
    assert_eq!(signer.verifier(), verifier);
    assert_eq!(signer.verifier().to_string(), PETER_VKEY);
    assert_eq!(signer.to_private_string(), PETER_SKEY);
    assert_eq!(
        note::key_id("PeterNeumann", verifier.public_key()),
        0xc74f20a3
    );
    assert_eq!(vkey(ENOCH_VKEY).key_id(), 0xaf0cfe78);
}

#[test]
fn go_peter_neumann_signature_is_byte_identical() {
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    let signed = note::sign(GO_TEXT, &[&signer]).unwrap();
    assert_eq!(signed, format!("{GO_TEXT}\n{PETER_SIG}"));

    let opened = note::open(signed.as_bytes(), &[vkey(PETER_VKEY)]).unwrap();
    assert_eq!(opened.text, GO_TEXT);
    assert_eq!(opened.verified, [verified("PeterNeumann", 0xc74f20a3)]);
    assert!(opened.unknown.is_empty());
}

#[test]
fn go_open_verifies_known_keys_and_reports_unknown_ones() {
    let msg = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let peter = vkey(PETER_VKEY);
    let enoch = vkey(ENOCH_VKEY);

    let opened = note::open(msg.as_bytes(), std::slice::from_ref(&peter)).unwrap();
    assert_eq!(opened.text, GO_TEXT);
    assert_eq!(opened.verified, [verified("PeterNeumann", 0xc74f20a3)]);
    assert_eq!(opened.unknown.len(), 1);
    assert_eq!(opened.unknown[0].name, "EnochRoot");
    assert_eq!(opened.unknown[0].key_id, 0xaf0cfe78);
    assert_eq!(opened.unknown[0].signature.len(), 64);

    let opened = note::open(msg.as_bytes(), &[peter.clone(), enoch.clone()]).unwrap();
    assert_eq!(
        opened.verified,
        [
            verified("PeterNeumann", 0xc74f20a3),
            verified("EnochRoot", 0xaf0cfe78)
        ]
    );
    assert!(opened.unknown.is_empty());

    assert_eq!(
        note::open(msg.as_bytes(), &[]),
        Err(NoteError::NoVerifiedSignature)
    );

    // Go's invalid-signature case: four extra base64 characters inside Peter's signature.
    let bad_peter = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let msg = format!("{GO_TEXT}\n{bad_peter}");
    assert_eq!(
        note::open(msg.as_bytes(), std::slice::from_ref(&peter)),
        Err(NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );

    // Repeated signatures are reported once; a bad one by an unknown key is not checked.
    let bad_enoch = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
    let msg = format!("{GO_TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{bad_enoch}");
    let opened = note::open(msg.as_bytes(), std::slice::from_ref(&peter)).unwrap();
    assert_eq!(opened.verified, [verified("PeterNeumann", 0xc74f20a3)]);
    assert_eq!(opened.unknown.len(), 2, "{:?}", opened.unknown);
}

#[test]
fn go_bad_verifier_keys_are_rejected() {
    // Both from Go's TestNewVerifier, with the key hash adjusted so only the named flaw remains.
    // The first is refused by Go for its length; its last base64 quantum ("EY==") also carries
    // non-zero padding bits, which Go's lenient decoder ignores and sealtrail's canonical one
    // refuses first. With canonical padding the length check names the flaw.
    assert_eq!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(NoteError::KeyBase64)
    );
    assert_eq!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEA=="
        ),
        Err(NoteError::KeyLength { found: 37 })
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::KeyAlgorithm { found: 0x65 })
    );
}

#[test]
fn every_mangling_of_a_key_is_rejected() {
    // Every proper substring and every single-byte increment, as Go's tests do.
    for (key, is_private) in [(PETER_VKEY, false), (PETER_SKEY, true)] {
        let parses = |text: &str| {
            if is_private {
                SignerKey::parse(text).is_ok()
            } else {
                VerifierKey::parse(text).is_ok()
            }
        };
        assert!(parses(key));
        let bytes = key.as_bytes();
        for i in 0..=bytes.len() {
            for j in i + 1..=bytes.len() {
                if (i, j) != (0, bytes.len()) {
                    assert!(!parses(&key[i..j]), "{:?} parsed", &key[i..j]);
                }
            }
        }
        for i in 0..bytes.len() {
            let mut mangled = bytes.to_vec();
            mangled[i] += 1;
            let mangled = String::from_utf8(mangled).unwrap();
            assert!(!parses(&mangled), "{mangled:?} parsed");
        }
    }
}

#[test]
fn transparency_dev_key_pairs_agree() {
    for (private, public) in TD_KEY_PAIRS {
        let signer = SignerKey::parse(private).unwrap();
        assert_eq!(signer.verifier().to_string(), public);
        assert_eq!(signer.verifier(), vkey(public));
        assert_eq!(signer.to_private_string(), private);
    }
}

#[test]
fn malformed_keys_are_rejected_with_specific_errors() {
    let cases: &[(&str, NoteError)] = &[
        (
            "PRIVATE+KEX+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::PrivateKeyPrefix,
        ),
        (
            "private+key+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::PrivateKeyPrefix,
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::KeyHashMismatch {
                found: 0xc74f20a4,
                expected: 0xc74f20a3,
            },
        ),
        (
            // Same seed under another name: the key id no longer matches.
            "PRIVATE+KEY+PeterNeumanm+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::KeyHashMismatch {
                found: 0xc74f20a3,
                expected: note::key_id(
                    "PeterNeumanm",
                    SignerKey::parse(PETER_SKEY)
                        .unwrap()
                        .verifier()
                        .public_key(),
                ),
            },
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::KeyAlgorithm { found: 0x02 },
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXH",
            NoteError::KeyLength { found: 30 },
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz!",
            NoteError::KeyBase64,
        ),
        (
            "PRIVATE+KEY+Peter Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::KeyName(NameError::Whitespace(' ')),
        ),
        (
            "PRIVATE+KEY++c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::KeyName(NameError::Empty),
        ),
        (
            "PRIVATE+KEY+PeterNeumann+C74F20A3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            NoteError::KeyIdSyntax,
        ),
        ("PRIVATE+KEY+PeterNeumann", NoteError::KeyFields),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n\n",
            NoteError::KeyBase64,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(SignerKey::parse(text).err().as_ref(), Some(want), "{text}");
    }

    let cases: &[(&str, NoteError)] = &[
        (PETER_SKEY, NoteError::PrivateKeyAsVerifier),
        (
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyHashMismatch {
                found: 0xc74f20a4,
                expected: 0xc74f20a3,
            },
        ),
        (
            "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyAlgorithm { found: 0x02 },
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy",
            NoteError::KeyLength { found: 30 },
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW==",
            NoteError::KeyBase64,
        ),
        (
            "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyIdSyntax,
        ),
        (
            "Peter\u{2003}Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyName(NameError::Whitespace('\u{2003}')),
        ),
        (
            "Peter\tNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyName(NameError::Whitespace('\t')),
        ),
        ("PeterNeumann+c74f20a3", NoteError::KeyFields),
        ("", NoteError::KeyFields),
        ("PeterNeumann+c74f20a3+", NoteError::KeyLength { found: 0 }),
    ];
    for (text, want) in cases {
        assert_eq!(
            VerifierKey::parse(text).err().as_ref(),
            Some(want),
            "{text}"
        );
    }

    // Names with '+' or whitespace cannot be generated either.
    assert_eq!(
        SignerKey::generate("a+b", &mut OsRng).err(),
        Some(NoteError::KeyName(NameError::Plus))
    );
    assert_eq!(
        SignerKey::generate("a b", &mut OsRng).err(),
        Some(NoteError::KeyName(NameError::Whitespace(' ')))
    );
    assert_eq!(
        VerifierKey::from_public_key("a+b", &[0; 32]).err(),
        Some(NoteError::KeyName(NameError::Plus))
    );
}

#[test]
fn key_errors_never_reveal_the_secret() {
    let seed_b64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let attempts = [
        // Fields shifted by a missing name: the seed lands where the key id is expected.
        format!("PRIVATE+KEY+c74f20a3+{seed_b64}"),
        format!("PRIVATE+KEY+PeterNeumann+c74f20a4+{seed_b64}"),
        format!("PRIVATE+KEY+PeterNeumann+c74f20a3+{seed_b64}xx"),
        format!("PRIVATE+KEY+PeterNeumann+{seed_b64}"),
        PETER_SKEY.replace("PRIVATE+KEY+", "PRIVATE+KEY"),
    ];
    let secret_parts = ["AYEKFALV", "FGyNhPJE", "MzD1QIDr", "Y7hfZx09", "iUvxdXHK"];
    for attempt in attempts {
        let message = SignerKey::parse(&attempt).unwrap_err().to_string();
        for part in secret_parts {
            assert!(!message.contains(part), "{message}");
        }
    }
    let as_verifier = VerifierKey::parse(PETER_SKEY).unwrap_err().to_string();
    assert!(!as_verifier.contains("AYEK"), "{as_verifier}");
    let debug = format!("{:?}", SignerKey::parse(PETER_SKEY).unwrap());
    assert!(!debug.contains("AYEK"), "{debug}");
    assert!(
        debug.contains("PeterNeumann") && debug.contains("c74f20a3"),
        "{debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// Notes

#[test]
fn sign_open_round_trip() {
    let signer = generated("example.com/audit");
    let text = "first line\n\nsecond paragraph \u{1F512}\n";
    let signed = note::sign(text, &[&signer]).unwrap();
    assert!(signed.starts_with(&format!("{text}\n\u{2014} example.com/audit ")));
    assert!(signed.ends_with('\n'));

    let opened = note::open(signed.as_bytes(), &[signer.verifier()]).unwrap();
    assert_eq!(opened.text, text);
    assert_eq!(
        opened.verified,
        [verified("example.com/audit", signer.key_id())]
    );

    let parsed = note::parse(signed.as_bytes()).unwrap();
    assert_eq!(parsed.text, text);
    assert_eq!(parsed.signatures.len(), 1);
    assert_eq!(parsed.signatures[0].name, "example.com/audit");
    assert_eq!(parsed.signatures[0].key_id, signer.key_id());
    assert!(
        signer
            .verifier()
            .verify_bytes(text.as_bytes(), &parsed.signatures[0].signature)
    );
}

#[test]
fn unknown_keys_are_ignored_but_bad_known_signatures_fail() {
    let log = generated("example.com/log");
    let stranger = generated("example.com/stranger");
    let text = "hello\n";
    let signed = note::sign(text, &[&stranger, &log]).unwrap();

    let opened = note::open(signed.as_bytes(), &[log.verifier()]).unwrap();
    assert_eq!(opened.verified, [verified("example.com/log", log.key_id())]);
    assert_eq!(opened.unknown.len(), 1);
    assert_eq!(
        opened.unknown[0],
        NoteSignature {
            name: "example.com/stranger".into(),
            key_id: stranger.key_id(),
            signature: stranger.sign_bytes(text.as_bytes()).to_vec(),
        }
    );

    // Only an unknown signature: nothing verifies.
    let only_stranger = note::sign(text, &[&stranger]).unwrap();
    assert_eq!(
        note::open(only_stranger.as_bytes(), &[log.verifier()]),
        Err(NoteError::NoVerifiedSignature)
    );

    // Same name as a known key but another key id: unknown, not invalid.
    let impostor = generated("example.com/log");
    let signed = note::sign(text, &[&impostor, &log]).unwrap();
    let opened = note::open(signed.as_bytes(), &[log.verifier()]).unwrap();
    assert_eq!(opened.unknown.len(), 1);
    assert_eq!(opened.unknown[0].key_id, impostor.key_id());

    // Same key id under another name: unknown too.
    let renamed = signed.replace("\u{2014} example.com/log ", "\u{2014} example.com/other ");
    assert_eq!(
        note::open(renamed.as_bytes(), &[log.verifier()]),
        Err(NoteError::NoVerifiedSignature)
    );

    // A known key's signature over other text fails the whole note, even with a good one.
    let good = note::sign(text, &[&log]).unwrap();
    let forged = note::sign("hellp\n", &[&log]).unwrap();
    let forged_line = forged.split_once("\n\n").unwrap().1;
    let both = format!("{good}{forged_line}");
    assert_eq!(
        note::open(both.as_bytes(), &[log.verifier()]),
        Err(NoteError::InvalidSignature {
            name: "example.com/log".into(),
            key_id: log.key_id(),
        })
    );

    // Tampered text.
    let tampered = good.replacen("hello", "hellp", 1);
    assert_eq!(
        note::open(tampered.as_bytes(), &[log.verifier()]),
        Err(NoteError::InvalidSignature {
            name: "example.com/log".into(),
            key_id: log.key_id(),
        })
    );
}

#[test]
fn multiple_signers() {
    let a = generated("a.example/log");
    let b = generated("b.example/witness");
    let c = generated("c.example/witness");
    let text = "body\n";
    let signed = note::sign(text, &[&a, &b, &c]).unwrap();
    let lines: Vec<&str> = signed.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[2].starts_with("\u{2014} a.example/log "));
    assert!(lines[3].starts_with("\u{2014} b.example/witness "));
    assert!(lines[4].starts_with("\u{2014} c.example/witness "));

    let opened = note::open(signed.as_bytes(), &[c.verifier(), a.verifier()]).unwrap();
    // Reported in the note's order, not the verifier list's.
    assert_eq!(
        opened.verified,
        [
            verified("a.example/log", a.key_id()),
            verified("c.example/witness", c.key_id())
        ]
    );
    assert_eq!(opened.unknown.len(), 1);
    assert_eq!(opened.unknown[0].name, "b.example/witness");

    // Signing each signature separately and concatenating gives the same note.
    let separately: String = [&a, &b, &c]
        .iter()
        .map(|s| {
            note::sign(text, &[*s])
                .unwrap()
                .split_once("\n\n")
                .unwrap()
                .1
                .to_owned()
        })
        .collect();
    assert_eq!(signed, format!("{text}\n{separately}"));
}

/// A signer for `example.com/collide` from a seed whose first eight bytes are `counter`
/// (big-endian). Counters 38737 and 100698 give different keys with the same key id,
/// a90252db: a collision found offline by birthday search, so the ambiguity rule can be tested.
fn colliding_signer(counter: u64) -> SignerKey {
    use base64::Engine as _;
    let mut material = [0u8; 33];
    material[0] = note::ALG_ED25519;
    material[1..9].copy_from_slice(&counter.to_be_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(material);
    SignerKey::parse(&format!(
        "PRIVATE+KEY+example.com/collide+a90252db+{encoded}"
    ))
    .unwrap()
}

#[test]
fn conflicting_verifiers_for_one_name_and_id_are_ambiguous() {
    let first = colliding_signer(38737);
    let second = colliding_signer(100698);
    assert_eq!(first.key_id(), 0xa90252db);
    assert_eq!(second.key_id(), 0xa90252db);
    assert_ne!(first.verifier(), second.verifier());

    let signed = note::sign("x\n", &[&first]).unwrap();
    assert!(note::open(signed.as_bytes(), &[first.verifier()]).is_ok());
    // The same key listed twice is harmless.
    assert!(note::open(signed.as_bytes(), &[first.verifier(), first.verifier()]).is_ok());
    assert_eq!(
        note::open(signed.as_bytes(), &[first.verifier(), second.verifier()]),
        Err(NoteError::AmbiguousKey {
            name: "example.com/collide".into(),
            key_id: 0xa90252db
        })
    );
    // Ambiguity matters only for keys that actually signed.
    let other = generated("example.com/other");
    let signed = note::sign("x\n", &[&other]).unwrap();
    assert!(
        note::open(
            signed.as_bytes(),
            &[first.verifier(), second.verifier(), other.verifier()]
        )
        .is_ok()
    );
}

#[test]
fn go_sumdb_checkpoint_with_witness_cosignatures() {
    let sumdb = vkey(SUMDB_VKEY);
    let msg = format!("{SUMDB_TEXT}\n{SUMDB_SIG}");

    let opened = note::open(msg.as_bytes(), std::slice::from_ref(&sumdb)).unwrap();
    assert_eq!(opened.text, SUMDB_TEXT);
    assert_eq!(opened.verified, [verified("sum.golang.org", 0x033de0ae)]);

    let checkpoint = Checkpoint::parse(&opened.text).unwrap();
    assert_eq!(checkpoint.origin, "go.sum database tree");
    assert_eq!(checkpoint.size, 6476701);
    assert_eq!(
        checkpoint.root.to_base64(),
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="
    );
    assert_eq!(checkpoint.to_text(), SUMDB_TEXT);

    // sealtrail binds the key name to the origin; Go's sumdb predates that convention.
    assert_eq!(
        Checkpoint::open(msg.as_bytes(), &sumdb),
        Err(CheckpointError::OriginMismatch {
            origin: "go.sum database tree".into(),
            key_name: "sum.golang.org".into(),
        })
    );

    // With the witnesses' cosignatures and two signatures by keys nobody configured.
    let mut cosigned = msg.clone();
    for (_, line) in WITNESSES {
        cosigned.push_str(line);
    }
    let witness_sig_b64 = WITNESSES[2].1.rsplit_once(' ').unwrap().1;
    cosigned.push_str(&format!("\u{2014} random1 {witness_sig_b64}"));
    cosigned.push_str(&format!("\u{2014} random2 {witness_sig_b64}"));

    let mut verifiers = vec![sumdb.clone()];
    verifiers.extend(WITNESSES.iter().map(|(key, _)| vkey(key)));
    let opened = note::open(cosigned.as_bytes(), &verifiers).unwrap();
    assert_eq!(opened.text, SUMDB_TEXT);
    let names: Vec<&str> = opened.verified.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["sum.golang.org", "monkeys", "bananas", "witness"]);
    let unknown: Vec<&str> = opened.unknown.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(unknown, ["random1", "random2"]);

    // A witness alone is enough for note::open, which does not care who the log is.
    assert!(note::open(cosigned.as_bytes(), &[vkey(WITNESSES[0].0)]).is_ok());
}

#[test]
fn malformed_notes_are_rejected_with_specific_errors() {
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    let good = note::sign(GO_TEXT, &[&signer]).unwrap();
    let sig_b64 = PETER_SIG.trim_end().rsplit_once(' ').unwrap().1;
    let cases: Vec<(String, NoteError)> = vec![
        (GO_TEXT.to_owned(), NoteError::MissingBlankLine),
        (format!("{GO_TEXT}\n"), NoteError::NoSignatures),
        (
            good.trim_end_matches('\n').to_owned(),
            NoteError::MissingFinalNewline,
        ),
        (
            format!("no newline at all\n\u{2014} a {sig_b64}"),
            NoteError::MissingFinalNewline,
        ),
        (String::new(), NoteError::EmptyText),
        (
            format!("\x01{good}"),
            NoteError::ControlCharacter {
                offset: 0,
                byte: 0x01,
            },
        ),
        (
            good.replacen("problem,\n", "problem,\r\n", 1),
            NoteError::ControlCharacter {
                offset: 56,
                byte: b'\r',
            },
        ),
        (
            good.replacen("If you", "If\tyou", 1),
            NoteError::ControlCharacter {
                offset: 2,
                byte: b'\t',
            },
        ),
        (
            format!("{GO_TEXT}\n- PeterNeumann {sig_b64}\n"),
            NoteError::MissingEmDash { line: 1 },
        ),
        (
            format!("{GO_TEXT}\n\u{2013} PeterNeumann {sig_b64}\n"),
            NoteError::MissingEmDash { line: 1 },
        ),
        (
            format!("{GO_TEXT}\n\u{2014}PeterNeumann {sig_b64}\n"),
            NoteError::MissingEmDash { line: 1 },
        ),
        (
            format!("{good}Unexpected line.\n"),
            NoteError::MissingEmDash { line: 2 },
        ),
        (
            format!("{good}\u{2014} PeterNeumann\n"),
            NoteError::MissingSignature { line: 2 },
        ),
        (
            format!("{good}\u{2014} PeterNeumann \n"),
            NoteError::MissingSignature { line: 2 },
        ),
        (
            format!("{GO_TEXT}\n\u{2014}  {sig_b64}\n"),
            NoteError::SignatureKeyName {
                line: 1,
                source: NameError::Empty,
            },
        ),
        (
            format!("{GO_TEXT}\n\u{2014} Peter+Neumann {sig_b64}\n"),
            NoteError::SignatureKeyName {
                line: 1,
                source: NameError::Plus,
            },
        ),
        (
            format!("{GO_TEXT}\n\u{2014} Peter\u{a0}Neumann {sig_b64}\n"),
            NoteError::SignatureKeyName {
                line: 1,
                source: NameError::Whitespace('\u{a0}'),
            },
        ),
        (
            // Go's "Bad Name" case: the name ends at the first space, the rest is not base64.
            format!("{GO_TEXT}\n\u{2014} Bad Name {sig_b64}\n"),
            NoteError::SignatureBase64 { line: 1 },
        ),
        (
            format!("{GO_TEXT}\n\u{2014} PeterNeumann {}\n", &sig_b64[1..]),
            NoteError::SignatureBase64 { line: 1 },
        ),
        (
            format!(
                "{GO_TEXT}\n\u{2014} PeterNeumann {}\n",
                sig_b64.trim_end_matches('=')
            ),
            NoteError::SignatureBase64 { line: 1 },
        ),
        (
            format!("{GO_TEXT}\n\u{2014} PeterNeumann x08g\n"),
            NoteError::SignatureTooShort { line: 1, found: 3 },
        ),
        (
            format!("{GO_TEXT}\n\u{2014} PeterNeumann x08gow==\n"),
            NoteError::SignatureTooShort { line: 1, found: 4 },
        ),
    ];
    for (msg, want) in &cases {
        assert_eq!(
            note::parse(msg.as_bytes()).as_ref().err(),
            Some(want),
            "{msg:?}"
        );
        assert_eq!(
            note::open(msg.as_bytes(), &[signer.verifier()])
                .as_ref()
                .err(),
            Some(want),
            "{msg:?}"
        );
    }

    // Exactly 5 bytes, the minimum: it parses, and fails only as a signature by a known key.
    let minimal = format!("{GO_TEXT}\n\u{2014} PeterNeumann x08gox8=\n");
    assert_eq!(
        note::parse(minimal.as_bytes()).unwrap().signatures[0]
            .signature
            .len(),
        1
    );
    assert_eq!(
        note::open(minimal.as_bytes(), &[signer.verifier()]),
        Err(NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );

    // Bytes that are not UTF-8.
    let mut bad = good.clone().into_bytes();
    bad.insert(3, 0xff);
    assert_eq!(note::parse(&bad), Err(NoteError::InvalidUtf8 { offset: 3 }));
}

#[test]
fn signature_count_is_capped() {
    let signer = SignerKey::parse(PETER_SKEY).unwrap();
    let at_cap = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES));
    assert_eq!(
        note::parse(at_cap.as_bytes()).unwrap().signatures.len(),
        MAX_SIGNATURES
    );
    assert_eq!(
        note::open(at_cap.as_bytes(), &[signer.verifier()])
            .unwrap()
            .verified
            .len(),
        1
    );
    let over = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
    let want = NoteError::TooManySignatures {
        max: MAX_SIGNATURES,
    };
    assert_eq!(note::parse(over.as_bytes()), Err(want.clone()));
    assert_eq!(
        note::open(over.as_bytes(), &[signer.verifier()]),
        Err(want.clone())
    );
    let many = vec![&signer; MAX_SIGNATURES + 1];
    assert_eq!(note::sign(GO_TEXT, &many), Err(want));
    assert!(note::sign(GO_TEXT, &many[..MAX_SIGNATURES]).is_ok());
}

#[test]
fn sign_refuses_invalid_texts() {
    let signer = generated("example.com/log");
    let cases = [
        ("", NoteError::EmptyText),
        ("no newline", NoteError::TextMissingNewline),
        ("two\nlines", NoteError::TextMissingNewline),
        (
            "carriage\r\n",
            NoteError::ControlCharacter {
                offset: 8,
                byte: b'\r',
            },
        ),
        (
            "nul\0\n",
            NoteError::ControlCharacter { offset: 3, byte: 0 },
        ),
        (
            "esc\x1b[0m\n",
            NoteError::ControlCharacter {
                offset: 3,
                byte: 0x1b,
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(note::sign(text, &[&signer]), Err(want), "{text:?}");
    }
    assert_eq!(note::sign("ok\n", &[]), Err(NoteError::NoSigners));
}

#[test]
fn error_messages_are_lowercase_and_specific() {
    let messages = [
        NoteError::TextMissingNewline.to_string(),
        NoteError::MissingEmDash { line: 2 }.to_string(),
        NoteError::KeyHashMismatch {
            found: 0x1234abcd,
            expected: 0xc74f20a3,
        }
        .to_string(),
        NoteError::SignatureKeyName {
            line: 1,
            source: NameError::Plus,
        }
        .to_string(),
        CheckpointError::SizeLeadingZero {
            found: "007".into(),
        }
        .to_string(),
        CheckpointError::OriginMismatch {
            origin: "a".into(),
            key_name: "b".into(),
        }
        .to_string(),
    ];
    assert_eq!(messages[0], "note text must end with a newline");
    assert_eq!(
        messages[1],
        "signature line 2 does not start with an em dash (U+2014) and a space"
    );
    assert_eq!(
        messages[2],
        "key hash 1234abcd does not match the key (expected c74f20a3)"
    );
    assert_eq!(
        messages[3],
        "signature line 1 has an invalid key name: key name must not contain '+'"
    );
    for message in messages {
        assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

fn sample_checkpoint(origin: &str) -> Checkpoint {
    Checkpoint {
        origin: origin.to_owned(),
        size: 20852163,
        root: leaf_hash(b"some root"),
        timestamp: Some(Timestamp::parse("2026-11-23T10:00:00.123456Z").unwrap()),
        extensions: vec!["example.org/ext 1".to_owned()],
    }
}

#[test]
fn checkpoint_sign_open_round_trip() {
    let log = generated("example.com/audit");
    let checkpoint = sample_checkpoint("example.com/audit");
    let signed = checkpoint.sign(&log).unwrap();
    assert!(signed.starts_with("example.com/audit\n20852163\n"));
    assert!(signed.contains("\nsealtrail-timestamp 2026-11-23T10:00:00.123456Z\nexample.org/ext 1\n\n\u{2014} example.com/audit "));
    assert_eq!(
        Checkpoint::open(signed.as_bytes(), &log.verifier()).unwrap(),
        checkpoint
    );

    // Witness cosignatures appended later are ignored by the checkpoint opener.
    let witness = generated("witness.example");
    let cosig = note::sign(&checkpoint.to_text(), &[&witness]).unwrap();
    let cosigned = format!("{signed}{}", cosig.split_once("\n\n").unwrap().1);
    assert_eq!(
        Checkpoint::open(cosigned.as_bytes(), &log.verifier()).unwrap(),
        checkpoint
    );

    // Without timestamp or extensions.
    let bare = Checkpoint {
        timestamp: None,
        extensions: Vec::new(),
        size: 0,
        root: Hash::empty_root(),
        ..checkpoint.clone()
    };
    let signed_bare = bare.sign(&log).unwrap();
    assert_eq!(
        signed_bare.split_once("\n\n").unwrap().0,
        format!("example.com/audit\n0\n{}", Hash::empty_root().to_base64())
    );
    assert_eq!(
        Checkpoint::open(signed_bare.as_bytes(), &log.verifier()).unwrap(),
        bare
    );
}

#[test]
fn checkpoint_open_requires_the_log_key_and_origin() {
    let log = generated("example.com/audit");
    let checkpoint = sample_checkpoint("example.com/audit");
    let signed = checkpoint.sign(&log).unwrap();

    // Signed only by someone else.
    let other = generated("example.com/audit");
    assert_eq!(
        Checkpoint::open(signed.as_bytes(), &other.verifier()),
        Err(CheckpointError::Note(NoteError::NoVerifiedSignature))
    );

    // Tampered size.
    let tampered = signed.replacen("20852163", "20852164", 1);
    assert_eq!(
        Checkpoint::open(tampered.as_bytes(), &log.verifier()),
        Err(CheckpointError::Note(NoteError::InvalidSignature {
            name: "example.com/audit".into(),
            key_id: log.key_id()
        }))
    );

    // A key for another log cannot sign this one, nor vouch for it.
    let elsewhere = generated("example.com/elsewhere");
    assert_eq!(
        checkpoint.sign(&elsewhere),
        Err(CheckpointError::OriginMismatch {
            origin: "example.com/audit".into(),
            key_name: "example.com/elsewhere".into()
        })
    );
    let mismatched = note::sign(&checkpoint.to_text(), &[&elsewhere]).unwrap();
    assert_eq!(
        Checkpoint::open(mismatched.as_bytes(), &elsewhere.verifier()),
        Err(CheckpointError::OriginMismatch {
            origin: "example.com/audit".into(),
            key_name: "example.com/elsewhere".into()
        })
    );

    // A validly signed note that is not a checkpoint.
    let not_checkpoint = note::sign("example.com/audit\n01\nAAAA\n", &[&log]).unwrap();
    assert_eq!(
        Checkpoint::open(not_checkpoint.as_bytes(), &log.verifier()),
        Err(CheckpointError::SizeLeadingZero { found: "01".into() })
    );
}

#[test]
fn checkpoint_sign_refuses_extensions_that_would_not_round_trip() {
    let log = generated("example.com/audit");
    let with = |extensions: &[&str], timestamp: bool| Checkpoint {
        timestamp: if timestamp {
            Some(Timestamp::from_unix_micros(1_795_000_000_123_456).unwrap())
        } else {
            None
        },
        extensions: extensions.iter().map(|e| e.to_string()).collect(),
        ..sample_checkpoint("example.com/audit")
    };
    assert_eq!(
        with(&["ok", ""], true).sign(&log),
        Err(CheckpointError::EmptyExtension { line: 6 })
    );
    assert_eq!(
        with(&["two\nlines"], false).sign(&log),
        Err(CheckpointError::ControlCharacter {
            line: 4,
            byte: b'\n'
        })
    );
    assert_eq!(
        with(&["tab\there"], true).sign(&log),
        Err(CheckpointError::ControlCharacter {
            line: 5,
            byte: b'\t'
        })
    );
    let smuggled = format!("{TIMESTAMP_EXTENSION_PREFIX}2020-01-01T00:00:00.000000Z");
    assert_eq!(
        with(&[&smuggled], false).sign(&log),
        Err(CheckpointError::ReservedExtension { line: 4 })
    );
    // The signed form of a valid checkpoint always opens to itself.
    let ok = with(&["a", "sealtrail-timestamp"], true);
    assert_eq!(
        Checkpoint::open(ok.sign(&log).unwrap().as_bytes(), &log.verifier()).unwrap(),
        ok
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: hostile input must produce errors, never panics.

const FUZZ_CASES: u32 = 2000;

fn fuzz_config() -> ProptestConfig {
    ProptestConfig {
        cases: FUZZ_CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Line-shaped input built from the characters notes and checkpoints are made of, so that
/// the fuzzer reaches past the first checks far more often than uniform bytes would.
fn note_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_owned()),
        Just("\n\n".to_owned()),
        Just("\u{2014} ".to_owned()),
        Just("sealtrail-timestamp ".to_owned()),
        Just("2026-11-23T10:00:00.123456Z".to_owned()),
        Just("PeterNeumann ".to_owned()),
        Just(PETER_SIG.to_owned()),
        Just(GO_TEXT.to_owned()),
        Just("example.com/log\n".to_owned()),
        Just("0\n".to_owned()),
        Just("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n".to_owned()),
        "[0-9]{1,22}",
        "[A-Za-z0-9+/=]{0,48}",
        "[ -~]{0,8}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// Checkpoint texts line by line, each line usually valid and sometimes subtly not, so that
/// about half parse and the rest fail at every possible line.
fn checkpoint_like() -> impl Strategy<Value = String> {
    let origin = prop_oneof![
        4 => Just("example.com/log".to_owned()),
        1 => "[ -~\u{a0}-\u{2030}]{0,12}",
    ];
    let size = prop_oneof![
        4 => any::<u64>().prop_map(|n| n.to_string()),
        1 => "[-+0-9a ]{0,22}",
    ];
    let root = prop_oneof![
        4 => any::<[u8; 32]>().prop_map(|bytes| Hash(bytes).to_base64()),
        1 => "[A-Za-z0-9+/=]{40,46}",
    ];
    let extension = prop_oneof![
        3 => any::<i64>().prop_map(|micros| {
            let micros = micros.rem_euclid(253_402_300_800_000_000);
            format!(
                "{TIMESTAMP_EXTENSION_PREFIX}{}",
                Timestamp::from_unix_micros(micros).unwrap().to_rfc3339()
            )
        }),
        1 => "sealtrail-timestamp [-0-9T:.Z+ ]{0,32}",
        3 => "[ -~\u{2014}]{1,16}",
        1 => Just(String::new()),
    ];
    (
        origin,
        size,
        root,
        prop::collection::vec(extension, 0..4),
        prop::bool::weighted(0.95),
    )
        .prop_map(|(origin, size, root, extensions, newline)| {
            let mut text = [origin, size, root].join("\n");
            for extension in extensions {
                text.push('\n');
                text.push_str(&extension);
            }
            if newline {
                text.push('\n');
            }
            text
        })
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn checkpoint_shaped_text_round_trips_or_fails_cleanly(text in checkpoint_like()) {
        if let Ok(checkpoint) = Checkpoint::parse(&text) {
            // Whatever parses has one spelling.
            prop_assert_eq!(checkpoint.to_text(), text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let verifiers = [vkey(PETER_VKEY)];
        let _ = note::parse(&bytes);
        let _ = note::open(&bytes, &verifiers);
        let _ = Checkpoint::parse(&String::from_utf8_lossy(&bytes));
        let _ = Checkpoint::open(&bytes, &verifiers[0]);
    }

    #[test]
    fn note_shaped_input_never_panics(text in note_like()) {
        let verifiers = [vkey(PETER_VKEY)];
        let _ = note::parse(text.as_bytes());
        let _ = note::open(text.as_bytes(), &verifiers);
        if let Ok(checkpoint) = Checkpoint::parse(&text) {
            // Whatever parses has one spelling.
            prop_assert_eq!(checkpoint.to_text(), text.clone());
        }
        let _ = Checkpoint::open(text.as_bytes(), &verifiers[0]);
    }

    #[test]
    fn mutated_signed_checkpoints_never_open_to_anything_else(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
    ) {
        // Signed once: unoptimised Ed25519 is slow in test builds.
        static SIGNED: std::sync::OnceLock<(VerifierKey, Checkpoint, String)> =
            std::sync::OnceLock::new();
        let (verifier, checkpoint, signed) = SIGNED.get_or_init(|| {
            let log = SignerKey::parse(TD_KEY_PAIRS[0].0).unwrap();
            let checkpoint = sample_checkpoint("Log");
            let signed = checkpoint.sign(&log).unwrap();
            (log.verifier(), checkpoint, signed)
        });
        let mut mutated = signed.clone().into_bytes();
        for (at, byte) in edits {
            let i = at.index(mutated.len());
            mutated[i] = byte;
        }
        if let Ok(opened) = Checkpoint::open(&mutated, verifier) {
            prop_assert_eq!(&opened, checkpoint);
        }
    }
}

/// Signing and verifying cost milliseconds each in unoptimised test builds, so the
/// sign-and-reopen property runs fewer cases than the parse-only ones.
const SIGN_CASES: u32 = 200;

proptest! {
    #![proptest_config(ProptestConfig { cases: SIGN_CASES, ..fuzz_config() })]

    #[test]
    fn parsed_checkpoints_sign_and_reopen_as_themselves(text in checkpoint_like()) {
        static LOG: std::sync::OnceLock<SignerKey> = std::sync::OnceLock::new();
        if let Ok(checkpoint) = Checkpoint::parse(&text)
            && checkpoint.origin == "example.com/log"
        {
            let log = LOG.get_or_init(|| generated("example.com/log"));
            let signed = checkpoint.sign(log).unwrap();
            prop_assert_eq!(signed.split_once("\n\n").unwrap().0.len() + 1, text.len());
            prop_assert_eq!(
                Checkpoint::open(signed.as_bytes(), &log.verifier()).unwrap(),
                checkpoint
            );
        }
    }
}
