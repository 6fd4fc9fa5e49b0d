//! The S3 target against a real S3 server that enforces Object Lock: SeaweedFS, started per
//! test on free ports (see `sealtrail_s3::testing`). Skipped, and said so, when there is no
//! `weed` binary, except under `CI`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use sealtrail_archive::{Put, Target, TargetError};
use sealtrail_s3::testing::Seaweed;
use sealtrail_s3::{S3Options, S3Target};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A target on a new bucket with Object Lock, under `prefix`.
fn locked_target(server: &Seaweed, bucket: &str, prefix: &str, options: S3Options) -> S3Target {
    server.create_bucket(bucket, true);
    S3Target::from_url(&format!("s3://{bucket}/{prefix}"), &options).unwrap()
}

/// Every version the bucket keeps of `key`, newest first: (version id, is latest).
fn versions(server: &Seaweed, bucket: &str, key: &str) -> Vec<(String, bool)> {
    let listed = server
        .block_on(
            server
                .client()
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .send(),
        )
        .unwrap();
    listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| {
            (
                v.version_id().unwrap_or("null").to_string(),
                v.is_latest() == Some(true),
            )
        })
        .collect()
}

fn get_version(server: &Seaweed, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let output = server
        .block_on(
            server
                .client()
                .get_object()
                .bucket(bucket)
                .key(key)
                .version_id(version)
                .send(),
        )
        .unwrap_or_else(|e| panic!("get {key} version {version}: {e:?}"));
    server
        .block_on(output.body.collect())
        .unwrap()
        .into_bytes()
        .to_vec()
}

#[test]
fn put_new_writes_each_object_locked_in_compliance_mode_until_now_plus_the_retention() {
    let Some(server) = Seaweed::start_or_skip(
        "put_new_writes_each_object_locked_in_compliance_mode_until_now_plus_the_retention",
    ) else {
        return;
    };
    let retention = Duration::from_secs(3 * 86_400);
    let options = S3Options {
        retention,
        ..server.options()
    };
    let target = locked_target(&server, "locked", "archive/prod", options);
    assert_eq!(target.describe(), "s3://locked/archive/prod");
    let status = target.check_writable().unwrap();
    assert!(status.immutable, "{status:?}");
    assert!(status.detail.contains("Object Lock enabled"), "{status:?}");
    assert!(target.lock_status().unwrap().immutable);

    let before = now_secs();
    let bytes = b"entry bundle 0".to_vec();
    assert_eq!(
        target.put_new("t/tile/entries/000", &bytes).unwrap(),
        Put::Written
    );
    let after = now_secs();

    let head = server
        .block_on(
            server
                .client()
                .head_object()
                .bucket("locked")
                .key("archive/prod/t/tile/entries/000")
                .send(),
        )
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let r = retention.as_secs() as i64;
    assert!(
        (before + r..=after + r + 1).contains(&until),
        "retained until {until}, expected between {} and {}",
        before + r,
        after + r + 1
    );
    assert_eq!(target.get("t/tile/entries/000").unwrap(), Some(bytes));
}

#[test]
fn the_same_bytes_again_are_already_there_and_other_bytes_a_conflict() {
    let Some(server) =
        Seaweed::start_or_skip("the_same_bytes_again_are_already_there_and_other_bytes_a_conflict")
    else {
        return;
    };
    let target = locked_target(&server, "again", "p", server.options());
    assert_eq!(
        target.put_new("t/checkpoint", b"one").unwrap(),
        Put::Written
    );
    assert_eq!(
        target.put_new("t/checkpoint", b"one").unwrap(),
        Put::AlreadyThere
    );
    let err = target.put_new("t/checkpoint", b"two").unwrap_err();
    match &err {
        TargetError::Conflict { target, key, .. } => {
            assert_eq!(target, "s3://again/p");
            assert_eq!(key, "p/t/checkpoint");
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(target.get("t/checkpoint").unwrap().unwrap(), b"one");
    // Neither the repeat nor the conflict sent a PUT: the versioned bucket holds one version.
    assert_eq!(versions(&server, "again", "p/t/checkpoint").len(), 1);

    // Two uploads of one new key at once (a batch runs them concurrently): one writes, the
    // other finds its bytes, and there is still one version.
    let racing = vec![
        ("t/race".to_string(), b"same".to_vec()),
        ("t/race".to_string(), b"same".to_vec()),
    ];
    let mut outcomes = target.put_new_all(&racing).unwrap();
    outcomes.sort_by_key(|p| *p == Put::AlreadyThere);
    assert_eq!(outcomes, vec![Put::Written, Put::AlreadyThere]);
    assert_eq!(versions(&server, "again", "p/t/race").len(), 1);
}

#[test]
fn the_server_refuses_to_delete_a_locked_version_or_to_shorten_its_lock() {
    let Some(server) = Seaweed::start_or_skip(
        "the_server_refuses_to_delete_a_locked_version_or_to_shorten_its_lock",
    ) else {
        return;
    };
    let target = locked_target(&server, "immutable", "", server.options());
    assert_eq!(target.put_new("t/seal", b"day 1").unwrap(), Put::Written);
    let all = versions(&server, "immutable", "t/seal");
    assert_eq!(all.len(), 1, "{all:?}");
    let version = all[0].0.clone();
    let client = server.client();

    // Deleting the version itself, even asking to bypass governance retention.
    for bypass in [false, true] {
        let denied = server.block_on(
            client
                .delete_object()
                .bucket("immutable")
                .key("t/seal")
                .version_id(&version)
                .bypass_governance_retention(bypass)
                .send(),
        );
        let err = denied.expect_err("a locked version was deleted");
        eprintln!(
            "DeleteObject of the locked version (bypass governance {bypass}): {:?}: {:?}",
            err.code(),
            err.message()
        );
        assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    }
    // The same through DeleteObjects.
    let batch = server
        .block_on(
            client
                .delete_objects()
                .bucket("immutable")
                .delete(
                    aws_sdk_s3::types::Delete::builder()
                        .objects(
                            aws_sdk_s3::types::ObjectIdentifier::builder()
                                .key("t/seal")
                                .version_id(&version)
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .send(),
        )
        .map(|out| (out.deleted().len(), out.errors().len()));
    eprintln!("DeleteObjects of the locked version: {batch:?}");
    assert!(
        matches!(batch, Err(_) | Ok((0, 1))),
        "DeleteObjects removed a locked version: {batch:?}"
    );

    // The refusal is the lock's: in the same bucket, a version written without a lock is
    // deleted by the same credentials.
    let unlocked = server
        .block_on(
            client
                .put_object()
                .bucket("immutable")
                .key("t/unlocked")
                .body(ByteStream::from_static(b"no lock"))
                .send(),
        )
        .unwrap();
    let unlocked_version = unlocked
        .version_id()
        .expect("a versioned bucket")
        .to_string();
    server
        .block_on(
            client
                .delete_object()
                .bucket("immutable")
                .key("t/unlocked")
                .version_id(&unlocked_version)
                .send(),
        )
        .expect("an unlocked version can be deleted");
    assert!(versions(&server, "immutable", "t/unlocked").is_empty());

    // Shortening the lock, or weakening it to GOVERNANCE.
    for (mode, until) in [
        (ObjectLockRetentionMode::Compliance, now_secs() + 60),
        (
            ObjectLockRetentionMode::Governance,
            now_secs() + 10 * 365 * 86_400,
        ),
    ] {
        let shortened = server.block_on(
            client
                .put_object_retention()
                .bucket("immutable")
                .key("t/seal")
                .version_id(&version)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(mode.clone())
                        .retain_until_date(DateTime::from_secs(until))
                        .build(),
                )
                .send(),
        );
        let err = shortened.expect_err("a COMPLIANCE lock was shortened or weakened");
        eprintln!(
            "PutObjectRetention {mode:?} until {until}: {:?}: {:?}",
            err.code(),
            err.message()
        );
    }

    // Overwriting through a delete: a plain DELETE only adds a delete marker, a PUT then adds
    // a version, and the locked version is still there with its bytes and its lock.
    server
        .block_on(
            client
                .delete_object()
                .bucket("immutable")
                .key("t/seal")
                .send(),
        )
        .unwrap();
    assert_eq!(
        target.get("t/seal").unwrap(),
        None,
        "hidden by the delete marker"
    );
    server
        .block_on(
            client
                .put_object()
                .bucket("immutable")
                .key("t/seal")
                .body(ByteStream::from_static(b"forged day 1"))
                .send(),
        )
        .unwrap();
    assert_eq!(
        get_version(&server, "immutable", "t/seal", &version),
        b"day 1"
    );
    let head = server
        .block_on(
            client
                .head_object()
                .bucket("immutable")
                .key("t/seal")
                .version_id(&version)
                .send(),
        )
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let until = head.object_lock_retain_until_date().unwrap().secs();
    assert!(
        until > now_secs() + 7 * 365 * 86_400,
        "the lock was shortened to {until}"
    );
    // The archiver sees the rewrite as a conflict and never writes over it.
    let err = target.put_new("t/seal", b"day 1").unwrap_err();
    assert!(matches!(err, TargetError::Conflict { .. }), "{err}");
}

#[test]
fn a_bucket_without_object_lock_is_refused_unless_unlocked_is_allowed() {
    let Some(server) = Seaweed::start_or_skip(
        "a_bucket_without_object_lock_is_refused_unless_unlocked_is_allowed",
    ) else {
        return;
    };
    server.create_bucket("plain", false);
    let target = S3Target::from_url("s3://plain/archive", &server.options()).unwrap();
    let status = target.lock_status().unwrap();
    assert!(!status.immutable, "{status:?}");
    for err in [
        target.check_writable().unwrap_err(),
        target.put_new("t/x", b"x").unwrap_err(),
        target
            .put_new_all(&[("t/y".to_string(), b"y".to_vec())])
            .unwrap_err(),
    ] {
        let TargetError::NotLocked(message) = &err else {
            panic!("expected NotLocked, got {err}");
        };
        for needle in [
            "s3://plain/archive",
            "Object Lock is not enabled on bucket plain",
            "aws s3api put-object-lock-configuration --bucket plain",
            "aws s3api create-bucket --bucket NEW-BUCKET --object-lock-enabled-for-bucket",
        ] {
            assert!(message.contains(needle), "{needle:?} not in: {message}");
        }
    }
    assert_eq!(
        target.list("").unwrap(),
        Vec::<String>::new(),
        "nothing was written"
    );

    let unlocked = S3Target::from_url(
        "s3://plain/archive",
        &S3Options {
            allow_unlocked: true,
            ..server.options()
        },
    )
    .unwrap();
    assert!(!unlocked.check_writable().unwrap().immutable);
    assert_eq!(unlocked.put_new("t/x", b"x").unwrap(), Put::Written);
    assert_eq!(unlocked.put_new("t/x", b"x").unwrap(), Put::AlreadyThere);
    let head = server
        .block_on(
            server
                .client()
                .head_object()
                .bucket("plain")
                .key("archive/t/x")
                .send(),
        )
        .unwrap();
    assert_eq!(head.object_lock_mode(), None);
}

#[test]
fn list_pages_through_every_key_under_a_prefix() {
    let Some(server) = Seaweed::start_or_skip("list_pages_through_every_key_under_a_prefix") else {
        return;
    };
    let options = S3Options {
        list_page_size: Some(7),
        concurrency: 16,
        ..server.options()
    };
    let target = locked_target(&server, "listing", "arch", options);
    // Beside the prefix, an object the target must not list.
    server
        .block_on(
            server
                .client()
                .put_object()
                .bucket("listing")
                .key("archived-elsewhere/t1/x")
                .body(ByteStream::from_static(b"x"))
                .send(),
        )
        .unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("t1/tile/0/{i:03}"),
                format!("tile {i}").into_bytes(),
            )
        })
        .collect();
    objects.extend((0..5).map(|i| (format!("t2/entries/{i}"), vec![i as u8; 100])));
    let written = target.put_new_all(&objects).unwrap();
    assert_eq!(written, vec![Put::Written; objects.len()]);
    assert_eq!(
        target.put_new_all(&objects).unwrap(),
        vec![Put::AlreadyThere; objects.len()]
    );

    let mut t1 = target.list("t1/").unwrap();
    t1.sort();
    let expected: Vec<String> = objects[..40].iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(t1, expected);
    let mut all = target.list("").unwrap();
    all.sort();
    let mut every: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    every.sort();
    assert_eq!(all, every);
    assert_eq!(
        target.list("t2").unwrap().len(),
        5,
        "a folder without its '/'"
    );
    assert!(target.list("t3/").unwrap().is_empty());
    assert!(target.list("../").is_err());

    // In a batch, one object with other bytes fails the batch; the others are written.
    let batch = vec![
        ("t1/tile/0/000".to_string(), b"not tile 0".to_vec()),
        ("t3/new".to_string(), b"new".to_vec()),
    ];
    let err = target.put_new_all(&batch).unwrap_err();
    assert!(matches!(err, TargetError::Conflict { .. }), "{err}");
    assert_eq!(target.get("t3/new").unwrap().unwrap(), b"new");
}

#[test]
fn get_of_a_missing_key_is_none_and_a_missing_bucket_is_an_error_naming_it() {
    let Some(server) = Seaweed::start_or_skip(
        "get_of_a_missing_key_is_none_and_a_missing_bucket_is_an_error_naming_it",
    ) else {
        return;
    };
    let target = locked_target(&server, "reads", "x", server.options());
    assert_eq!(target.get("t/nothing/here").unwrap(), None);
    assert_eq!(target.put_new("t/here", b"h").unwrap(), Put::Written);
    assert_eq!(target.get("t/here").unwrap().unwrap(), b"h");
    assert!(target.get("t/../here").is_err());

    let missing = S3Target::from_url("s3://no-such-bucket/x", &server.options()).unwrap();
    let err = missing.get("t/here").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("s3://no-such-bucket/x") && text.contains("x/t/here"),
        "{text}"
    );
    assert!(text.contains("NoSuchBucket"), "{text}");
    let err = missing.check_writable().unwrap_err();
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
}

#[test]
fn errors_name_the_bucket_the_key_and_the_server_message_never_the_credentials() {
    let Some(server) = Seaweed::start_or_skip(
        "errors_name_the_bucket_the_key_and_the_server_message_never_the_credentials",
    ) else {
        return;
    };
    server.create_bucket("secrets", true);
    let wrong = S3Options {
        secret_access_key: Some("not-the-right-secret-4f1d".into()),
        ..server.options()
    };
    let target = S3Target::from_url("s3://secrets/pre", &wrong).unwrap();
    for err in [
        target.get("t/k").unwrap_err(),
        target.put_new("t/k", b"k").unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains("s3://secrets/pre"), "{text}");
        assert!(text.contains("SignatureDoesNotMatch"), "{text}");
        assert!(!text.contains("not-the-right-secret-4f1d"), "{text}");
        assert!(!text.contains(server.secret_access_key()), "{text}");
    }
    let text = target.get("t/k").unwrap_err().to_string();
    assert!(text.contains("pre/t/k"), "{text}");
}

#[test]
fn the_target_works_from_spawn_blocking_and_from_several_threads_at_once() {
    let Some(server) = Seaweed::start_or_skip(
        "the_target_works_from_spawn_blocking_and_from_several_threads_at_once",
    ) else {
        return;
    };
    let target = locked_target(&server, "blocking", "", server.options());
    let outer = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let put = outer.block_on(async move {
        let (target, put) = tokio::task::spawn_blocking(move || {
            let put = target.put_new("t/from-blocking", b"b");
            (target, put)
        })
        .await
        .unwrap();
        // Dropped inside an async task: its runtime is shut down without blocking.
        drop(target);
        put
    });
    assert_eq!(put.unwrap(), Put::Written);
    let again = S3Target::from_url("s3://blocking", &server.options()).unwrap();
    assert_eq!(again.get("t/from-blocking").unwrap().unwrap(), b"b");

    // One target shared by plain threads that block on its runtime at the same time.
    let shared = &again;
    let puts: Vec<Put> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|i| scope.spawn(move || shared.put_new(&format!("t/thread/{i}"), b"t").unwrap()))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(puts, vec![Put::Written; 4]);
    assert_eq!(again.list("t/thread/").unwrap().len(), 4);
}
