//! A PostgreSQL server of a test's own (`initdb` and `pg_ctl` on a temporary directory and a
//! free port), so that a test can stop the database a store lives in — really stopped, not a
//! wrong port — and start it again.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL cluster, stopped and deleted when dropped.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// Runs the server's tools as the `postgres` user (they refuse to run as root).
    as_postgres: bool,
    port: u16,
    running: bool,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Creates and starts a cluster; `None`, after saying why, where PostgreSQL's server
    /// programs are not installed — except under `CI=true`, where it fails the test.
    pub fn start(test: &str) -> Option<Cluster> {
        let Some(bin) = server_bin() else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "CI=true but {test} finds no initdb (PostgreSQL's server programs)"
            );
            eprintln!(
                "skipped {test}: it runs a PostgreSQL server of its own, and initdb is not installed"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_postgres = run_capture("id", &["-u"]).trim() == "0";
        if as_postgres {
            let uid = run_capture("id", &["-u", "postgres"]);
            let gid = run_capture("id", &["-g", "postgres"]);
            std::os::unix::fs::chown(
                dir.path(),
                Some(uid.trim().parse().expect("postgres's uid")),
                Some(gid.trim().parse().expect("postgres's gid")),
            )
            .expect("give the cluster's directory to postgres");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cluster = Cluster {
            bin,
            data: dir.path().join("pgdata"),
            as_postgres,
            port,
            running: false,
            _dir: dir,
        };
        let data = cluster.data.to_str().unwrap().to_string();
        cluster.tool(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start_again();
        Some(cluster)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, nothing is lost).
    pub fn stop(&mut self) {
        let data = self.data.to_str().unwrap().to_string();
        self.tool("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        self.running = false;
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&mut self) {
        let data = self.data.to_str().unwrap().to_string();
        let log = self.data.with_file_name("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.parent().unwrap().display()
        );
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        self.running = true;
    }

    fn tool(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command
            .args(args)
            .current_dir(self.data.parent().unwrap())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data.to_str().unwrap().to_string();
            let program = self.bin.join("pg_ctl");
            let mut command = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            } else {
                Command::new(&program)
            };
            let _ = command
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: on the `PATH`, or Debian's versioned directory.
fn server_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|bin| Path::new(bin).join("initdb").is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

fn run_capture(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
