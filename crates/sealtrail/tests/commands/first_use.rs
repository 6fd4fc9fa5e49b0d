//! What a new user meets first: the help says what every default is, errors say each thing
//! once, and a host name is a valid listen address.

use crate::support::{sealtrail_here, stderr, stdout};

/// `serve --help` gives the default of every setting that has one, so that a user does not
/// have to read the source to learn where the data goes or which port is used.
#[test]
fn serve_help_shows_the_defaults() {
    let out = sealtrail_here(&["serve", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // clap wraps long lines; compare with the whitespace collapsed.
    let help = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for default in [
        "default ./sealtrail-data",
        "default 127.0.0.1:7433",
        "while a log grows; default 1000",
        "default sealtrail.local",
        "without a token; default false",
        "default 60",
        "default spool",
        "default 268435456",
        "default 86400",
        "default 1000, at most 60000",
    ] {
        assert!(
            help.contains(default),
            "serve --help lacks {default:?}:\n{help}"
        );
    }
}

/// A data directory that cannot be created is named once, with the reason once.
#[test]
fn an_unusable_data_directory_is_named_once() {
    let out = sealtrail_here(&["serve", "--data", "/proc/nope", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    let message = text
        .lines()
        .find(|line| line.starts_with("sealtrail: "))
        .unwrap_or_else(|| panic!("no error line: {text}"));
    assert_eq!(message.matches("/proc/nope").count(), 1, "{message}");
    let reason = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(message.matches(&reason).count(), 1, "{message}");
}

/// `keys show` where there are no keys says why once.
#[test]
fn a_missing_key_directory_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let out = sealtrail_here(&["keys", "show", "--data", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    // ENOENT, as the OS words it.
    let reason = std::io::Error::from_raw_os_error(2).to_string();
    assert!(text.contains("absent/keys"), "{text}");
    assert_eq!(text.matches(&reason).count(), 1, "{text}");
}
