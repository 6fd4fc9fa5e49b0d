//! A small file system of a test's own, to fill up: a tmpfs mounted on a directory (root only).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted when dropped, even when the test fails.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; `None`, after saying why, where that is not allowed
    /// (not root) — except under `CI=true`, where it fails the test.
    pub fn mount(test: &str, dir: &Path, size: &str) -> Option<Tmpfs> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match mounted {
            Ok(out) if out.status.success() => return Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(error) => error.to_string(),
        };
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true but {test} cannot mount a {size} tmpfs on {}: {why}",
            dir.display()
        );
        eprintln!(
            "skipped {test}: it mounts a {size} tmpfs as the data directory, which needs root: {why}"
        );
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still has a file open there: detach it now, freed when closed.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes `path` until the disk is full; returns the bytes written.
pub fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(28), "ENOSPC, not {error}");
                return written;
            }
        }
    }
}
