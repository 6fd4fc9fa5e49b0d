//! [`S3Target`]: the archive [`Target`] on an S3 bucket with Object Lock.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ObjectLockEnabled, ObjectLockMode, ObjectLockRetentionMode,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use sealtrail_archive::target::{Result, check_key, same_or_conflict};
use sealtrail_archive::{LockStatus, Put, Target, TargetError};
use sha2::{Digest as _, Sha256};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::options::{Location, Resolved, S3Options};

/// An archive in an S3 bucket, under a prefix. Every object is written once, only if its key
/// is free, locked in COMPLIANCE mode until the moment it is written plus the retention, and
/// its lock is read back from the server before the write counts.
///
/// The [`Target`] trait is synchronous: the target owns a small current-thread tokio runtime
/// and blocks on it. Call it from a plain thread (or from `tokio::task::spawn_blocking`),
/// never from inside an async task of another tokio runtime, where blocking is not allowed and
/// tokio panics. Dropping it anywhere is fine: its runtime is shut down without waiting.
pub struct S3Target {
    inner: Arc<Inner>,
    runtime: Option<Runtime>,
    allow_unlocked: bool,
    concurrency: usize,
    list_page_size: Option<i32>,
    /// Whether objects are written with a lock, decided by the first check of the bucket.
    write_locked: Mutex<Option<bool>>,
}

/// What the upload tasks share.
struct Inner {
    client: Client,
    location: Location,
    retention: Duration,
}

/// The bucket's Object Lock configuration as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BucketLock {
    enabled: bool,
    /// The bucket's default retention in words, e.g. "COMPLIANCE for 2557 days".
    default_retention: Option<String>,
}

impl S3Target {
    /// The target at `s3://bucket/prefix`. What `options` leaves unset comes from the standard
    /// AWS variables (see [`S3Options`]). Nothing is sent to the server yet: the bucket's lock
    /// is checked by [`S3Target::check_writable`], or before the first write.
    pub fn from_url(url: &str, options: &S3Options) -> Result<S3Target> {
        let location = Location::parse(url)?;
        let resolved = Resolved::new(&location.url(), options, |name| std::env::var(name).ok())?;
        S3Target::new(location, &resolved, options)
    }

    fn new(location: Location, resolved: &Resolved, options: &S3Options) -> Result<S3Target> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                TargetError::Config(format!(
                    "{}: cannot start the S3 client's runtime: {e}",
                    location.url()
                ))
            })?;
        // rustls on ring with the system's roots; the connector also speaks plain http:// for
        // a local endpoint.
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new(
            resolved.access_key_id.clone(),
            resolved.secret_access_key.clone(),
            resolved.session_token.clone(),
            None,
            "sealtrail",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(resolved.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(resolved.path_style)
            .http_client(http_client);
        if let Some(endpoint) = &resolved.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = Client::from_conf(config.build());
        Ok(S3Target {
            inner: Arc::new(Inner {
                client,
                location,
                retention: options.retention,
            }),
            runtime: Some(runtime),
            allow_unlocked: options.allow_unlocked,
            concurrency: options.concurrency.max(1),
            list_page_size: options.list_page_size,
            write_locked: Mutex::new(None),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.inner.location.bucket
    }

    /// The prefix under which the target's keys live, without leading or trailing `/` (empty
    /// for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.inner.location.prefix
    }

    /// Reads the bucket's Object Lock configuration and refuses, with
    /// [`TargetError::NotLocked`] and the commands that fix it, a bucket on which Object Lock
    /// is not enabled, unless unlocked buckets are allowed. The writes do this themselves
    /// before the first object; call it to fail early (on opening for writing).
    pub fn check_writable(&self) -> Result<LockStatus> {
        let lock = self.block_on(self.inner.bucket_lock())?;
        if !lock.enabled && !self.allow_unlocked {
            return Err(TargetError::NotLocked(not_locked_message(
                &self.inner.location,
            )));
        }
        *self.write_locked.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock.enabled);
        Ok(self.inner.status(&lock))
    }

    /// Whether the objects are written with a lock; the bucket is checked the first time.
    fn write_locked(&self) -> Result<bool> {
        if let Some(locked) = *self.write_locked.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(locked);
        }
        self.check_writable().map(|status| status.immutable)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the target")
            .block_on(future)
    }
}

impl Drop for S3Target {
    fn drop(&mut self) {
        // Without waiting for anything, so that dropping the target inside an async context
        // does not panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("url", &self.inner.location.url())
            .field("retention", &self.inner.retention)
            .field("allow_unlocked", &self.allow_unlocked)
            .finish_non_exhaustive()
    }
}

impl Target for S3Target {
    fn describe(&self) -> String {
        self.inner.location.url()
    }

    fn lock_status(&self) -> Result<LockStatus> {
        let lock = self.block_on(self.inner.bucket_lock())?;
        Ok(self.inner.status(&lock))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let folder = prefix.trim_end_matches('/');
        if !folder.is_empty() {
            check_key(folder)?;
        }
        let listed = if folder.is_empty() {
            self.inner.location.object_key("")
        } else {
            self.inner.location.object_key(&format!("{folder}/"))
        };
        let base = self.inner.location.object_key("");
        self.block_on(async {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .inner
                    .client
                    .list_objects_v2()
                    .bucket(&self.inner.location.bucket)
                    .prefix(&listed)
                    .set_max_keys(self.list_page_size)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| self.inner.io("list", &listed, &e))?;
                for object in page.contents() {
                    if let Some(key) = object.key().and_then(|k| k.strip_prefix(&base)) {
                        keys.push(key.to_string());
                    }
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                match page.next_continuation_token() {
                    Some(next) => token = Some(next.to_string()),
                    None => {
                        return Err(self.inner.io_message(
                            "list",
                            &listed,
                            "the server said the listing goes on but gave no continuation token"
                                .into(),
                        ));
                    }
                }
            }
            Ok(keys)
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        self.block_on(self.inner.get(key))
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Put> {
        check_key(key)?;
        let locked = self.write_locked()?;
        self.block_on(self.inner.put_new(key, bytes, locked))
    }

    fn put_new_all(&self, objects: &[(String, Vec<u8>)]) -> Result<Vec<Put>> {
        for (key, _) in objects {
            check_key(key)?;
        }
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let locked = self.write_locked()?;
        self.block_on(async {
            let mut results: Vec<Option<Result<Put>>> = (0..objects.len()).map(|_| None).collect();
            let mut tasks = JoinSet::new();
            let mut next = 0;
            loop {
                while next < objects.len() && tasks.len() < self.concurrency {
                    let inner = Arc::clone(&self.inner);
                    let (key, bytes) = objects[next].clone();
                    let index = next;
                    tasks.spawn(async move { (index, inner.put_new(&key, &bytes, locked).await) });
                    next += 1;
                }
                let Some(joined) = tasks.join_next().await else {
                    break;
                };
                match joined {
                    Ok((index, result)) => results[index] = Some(result),
                    Err(e) => {
                        return Err(self.inner.io_message(
                            "write",
                            "",
                            format!("upload task: {e}"),
                        ));
                    }
                }
            }
            // All uploads are awaited before the first failure (in the order given) is told.
            results
                .into_iter()
                .map(|r| r.expect("every upload is joined"))
                .collect()
        })
    }
}

impl Inner {
    fn url(&self) -> String {
        self.location.url()
    }

    fn io<E, R>(
        &self,
        action: &'static str,
        object_key: &str,
        error: &SdkError<E, R>,
    ) -> TargetError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        self.io_message(action, object_key, server_message(error))
    }

    fn io_message(&self, action: &'static str, object_key: &str, message: String) -> TargetError {
        TargetError::Io {
            target: self.url(),
            action,
            key: object_key.to_string(),
            message,
        }
    }

    async fn bucket_lock(&self) -> Result<BucketLock> {
        let bucket = &self.location.bucket;
        let answer = self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => {
                return Ok(BucketLock {
                    enabled: false,
                    default_retention: None,
                });
            }
            Err(e) => {
                return Err(TargetError::Io {
                    target: self.url(),
                    action: "read the Object Lock configuration of bucket",
                    key: bucket.clone(),
                    message: server_message(&e),
                });
            }
        };
        let config = output.object_lock_configuration();
        let enabled =
            config.and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled);
        let default_retention = config
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .map(|d| {
                let mode = d.mode().map_or("no mode", ObjectLockRetentionMode::as_str);
                match (d.days(), d.years()) {
                    (Some(days), _) => format!("{mode} for {days} days"),
                    (None, Some(years)) => format!("{mode} for {years} years"),
                    (None, None) => mode.to_string(),
                }
            });
        Ok(BucketLock {
            enabled,
            default_retention,
        })
    }

    fn status(&self, lock: &BucketLock) -> LockStatus {
        let bucket = &self.location.bucket;
        let days = self.retention.as_secs() / 86_400;
        let detail = if lock.enabled {
            let default = match &lock.default_retention {
                Some(d) => format!("default retention {d}"),
                None => "no default retention".to_string(),
            };
            format!(
                "Object Lock enabled on bucket {bucket} ({default}); each archived object is \
                 written in COMPLIANCE mode for {days} days and its lock read back"
            )
        } else {
            format!(
                "Object Lock is not enabled on bucket {bucket}: archived objects can be deleted \
                 or overwritten by anyone allowed to"
            )
        };
        LockStatus {
            immutable: lock.enabled,
            detail,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let object_key = self.location.object_key(key);
        let answer = self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(e) if is_missing_key(&e) => return Ok(None),
            Err(e) => return Err(self.io("read", &object_key, &e)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| self.io_message("read", &object_key, e.to_string()))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn put_new(&self, key: &str, bytes: &[u8], locked: bool) -> Result<Put> {
        let object_key = self.location.object_key(key);
        // Never a second PUT on a key that holds something: on a versioned bucket it would
        // quietly add a version instead of failing.
        if let Some(existing) = self.get(key).await? {
            return same_or_conflict(&self.url(), &object_key, &existing, bytes);
        }
        let retain_until = retain_until(SystemTime::now(), self.retention);
        let mut put = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .body(ByteStream::from(bytes.to_vec()))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            // A writer racing this one between the read above and here loses on servers that
            // honour conditional writes.
            .if_none_match("*");
        if locked {
            put = put
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(retain_until);
        }
        let written = match put.send().await {
            Ok(written) => written,
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                let existing = self.get(key).await?.unwrap_or_default();
                return same_or_conflict(&self.url(), &object_key, &existing, bytes);
            }
            Err(e) => return Err(self.io("write", &object_key, &e)),
        };
        // What the server reports about the object, never what was asked, decides.
        let head = self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .set_version_id(written.version_id().map(str::to_string))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| self.io("check the lock of", &object_key, &e))?;
        if head.content_length() != Some(bytes.len() as i64) {
            return Err(self.io_message(
                "check",
                &object_key,
                format!(
                    "the server reports {:?} bytes where {} were written",
                    head.content_length(),
                    bytes.len()
                ),
            ));
        }
        if let Some(stored) = head.checksum_sha256() {
            let ours = sha256_base64(bytes);
            if stored != ours {
                return Err(self.io_message(
                    "check",
                    &object_key,
                    format!("the server's SHA-256 {stored} is not the written bytes' {ours}"),
                ));
            }
        }
        if locked
            && let Some(problem) = lock_problem(
                head.object_lock_mode(),
                head.object_lock_retain_until_date(),
                &retain_until,
            )
        {
            return Err(TargetError::LockNotApplied {
                target: self.url(),
                key: object_key,
                problem,
            });
        }
        Ok(Put::Written)
    }
}

/// When an object written at `now` stops being locked, in whole seconds (so that the date read
/// back compares exactly whatever precision the server keeps).
fn retain_until(now: SystemTime, retention: Duration) -> DateTime {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(retention)
        .as_secs();
    DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// What is wrong with the lock the server reports on an object that was to be locked in
/// COMPLIANCE mode until `asked`, or `None` when it holds.
fn lock_problem(
    mode: Option<&ObjectLockMode>,
    until: Option<&DateTime>,
    asked: &DateTime,
) -> Option<String> {
    let asked_text = rfc3339(asked);
    match mode {
        Some(ObjectLockMode::Compliance) => {}
        None => {
            return Some(format!(
                "the server reports no Object Lock on it (COMPLIANCE until {asked_text} was asked)"
            ));
        }
        Some(other) => {
            return Some(format!(
                "its Object Lock mode is {}, not the COMPLIANCE asked",
                other.as_str()
            ));
        }
    }
    match until {
        None => Some(format!(
            "the server reports no retain-until date on it ({asked_text} was asked)"
        )),
        Some(until) if until.secs() < asked.secs() => Some(format!(
            "it is retained only until {}, before the {asked_text} asked",
            rfc3339(until)
        )),
        Some(_) => None,
    }
}

fn rfc3339(date: &DateTime) -> String {
    date.fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| format!("{} seconds after 1970", date.secs()))
}

/// The base64 SHA-256 of `bytes`, as S3 reports `ChecksumSHA256`.
fn sha256_base64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(bytes))
}

/// Whether a GetObject failed because the key holds nothing (and not, say, because the bucket
/// is missing).
fn is_missing_key<R>(
    error: &SdkError<aws_sdk_s3::operation::get_object::GetObjectError, R>,
) -> bool {
    match error {
        SdkError::ServiceError(e) => {
            e.err().is_no_such_key() || matches!(e.err().code(), Some("NoSuchKey" | "NotFound"))
        }
        _ => false,
    }
}

/// The server's code and message (or, when no answer came, why), for error messages. The
/// request's signature and credentials are never part of it.
fn server_message<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => DisplayErrorContext(error).to_string(),
            }
        }
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// Why a bucket without Object Lock is refused, with the commands that fix it.
fn not_locked_message(location: &Location) -> String {
    let bucket = &location.bucket;
    format!(
        "{url}: Object Lock is not enabled on bucket {bucket}, so archived objects could be \
         deleted or overwritten and the archive would prove nothing. Enable it (the bucket needs \
         versioning first):\n  \
         aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled\n  \
         aws s3api put-object-lock-configuration --bucket {bucket} --object-lock-configuration \
         '{{\"ObjectLockEnabled\":\"Enabled\",\"Rule\":{{\"DefaultRetention\":{{\"Mode\":\"COMPLIANCE\",\"Days\":2557}}}}}}'\n\
         Some servers allow Object Lock only when the bucket is created; there, archive to a new \
         bucket made with:\n  \
         aws s3api create-bucket --bucket NEW-BUCKET --object-lock-enabled-for-bucket\n\
         Or, knowingly, allow an unlocked archive target.",
        url = location.url(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_until_is_now_plus_the_retention_in_whole_seconds() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
        let until = retain_until(now, Duration::from_secs(86_400));
        assert_eq!(until.secs(), 1_700_000_000 + 86_400);
        assert_eq!(until.subsec_nanos(), 0);
    }

    #[test]
    fn the_lock_read_back_must_be_compliance_until_at_least_the_date_asked() {
        let asked = DateTime::from_secs(2_000_000_000);
        let later = DateTime::from_secs(2_000_000_001);
        let earlier = DateTime::from_secs(1_999_999_999);
        let compliance = ObjectLockMode::Compliance;
        let governance = ObjectLockMode::Governance;
        assert_eq!(lock_problem(Some(&compliance), Some(&asked), &asked), None);
        assert_eq!(lock_problem(Some(&compliance), Some(&later), &asked), None);
        let too_short = lock_problem(Some(&compliance), Some(&earlier), &asked).unwrap();
        assert!(too_short.contains("2033-05-18T03:33:19Z"), "{too_short}");
        let weak = lock_problem(Some(&governance), Some(&later), &asked).unwrap();
        assert!(weak.contains("GOVERNANCE"), "{weak}");
        assert!(
            lock_problem(None, Some(&later), &asked)
                .unwrap()
                .contains("no Object Lock")
        );
        assert!(
            lock_problem(Some(&compliance), None, &asked)
                .unwrap()
                .contains("no retain-until")
        );
    }

    #[test]
    fn checksums_are_compared_in_s3s_base64() {
        // SHA-256 of "abc", as S3 reports it in ChecksumSHA256.
        assert_eq!(
            sha256_base64(b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn the_refusal_of_an_unlocked_bucket_says_how_to_lock_it() {
        let message = not_locked_message(&Location::parse("s3://audit-bkt/p").unwrap());
        for needle in [
            "s3://audit-bkt/p",
            "Object Lock is not enabled on bucket audit-bkt",
            "aws s3api put-object-lock-configuration --bucket audit-bkt",
            "\"Mode\":\"COMPLIANCE\"",
            "aws s3api create-bucket --bucket NEW-BUCKET --object-lock-enabled-for-bucket",
        ] {
            assert!(
                message.contains(needle),
                "{needle:?} missing from: {message}"
            );
        }
    }
}
