//! The configuration's tests: flags, variables and the file resolved into one setting each.
use super::*;

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\norigin_prefix = \"audit.example\"\npublic_log = true\n",
    )
    .unwrap();
    let settings = Settings {
        listen: Some("127.0.0.1:9100".into()),
        config: Some(file),
        ..Settings::default()
    };
    let resolved = settings.resolve().unwrap();
    assert_eq!(resolved.http.listen, "127.0.0.1:9100".parse().unwrap());
    assert_eq!(resolved.log.origin_prefix, "audit.example");
    assert!(resolved.http.public_log);
    assert_eq!(resolved.log.checkpoint_interval, Duration::from_secs(1));
    assert_eq!(resolved.storage.data, PathBuf::from("./sealtrail-data"));
    assert_eq!(resolved.ingest.max_future_skew, DEFAULT_MAX_FUTURE_SKEW);
}

#[test]
fn the_future_skew_comes_from_the_flag_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(&file, "max_future_skew_secs = 300\n").unwrap();
    let from_file = Settings {
        config: Some(file.clone()),
        ..Settings::default()
    };
    let resolved = from_file.clone().resolve().unwrap();
    assert_eq!(resolved.ingest.max_future_skew, Duration::from_secs(300));
    assert_eq!(resolved.audit_record()["max_future_skew_secs"], 300);
    let flag = Settings {
        max_future_skew_secs: Some(0),
        ..from_file
    };
    assert_eq!(
        flag.resolve().unwrap().ingest.max_future_skew,
        Duration::ZERO
    );
}

#[test]
fn search_limits_come_from_flags_or_the_file_and_are_checked() {
    let defaults = Settings::default().resolve().unwrap().queries;
    assert_eq!(
        defaults,
        QuerySettings {
            time_limit: DEFAULT_QUERY_TIMEOUT,
            max_searches: DEFAULT_MAX_SEARCHES,
            max_searches_per_tenant: DEFAULT_MAX_SEARCHES_PER_TENANT,
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(&file, "query_timeout_ms = 250\nmax_searches = 2\n").unwrap();
    let from_file = Settings {
        config: Some(file),
        ..Settings::default()
    };
    let resolved = from_file.clone().resolve().unwrap();
    // The share defaults to the cap when the cap is below the default share.
    assert_eq!(
        resolved.queries,
        QuerySettings {
            time_limit: Duration::from_millis(250),
            max_searches: 2,
            max_searches_per_tenant: 2,
        }
    );
    assert_eq!(resolved.audit_record()["query_timeout_ms"], 250);
    assert_eq!(resolved.audit_record()["max_searches_per_tenant"], 2);
    let flags = Settings {
        query_timeout_ms: Some(300_000),
        max_searches_per_tenant: Some(1),
        ..from_file
    };
    let resolved = flags.resolve().unwrap();
    assert_eq!(resolved.queries.time_limit, MAX_QUERY_TIMEOUT);
    assert_eq!(resolved.queries.max_searches_per_tenant, 1);

    for (settings, named) in [
        (
            Settings {
                query_timeout_ms: Some(0),
                ..Settings::default()
            },
            "query_timeout_ms must be from 1 to 300000 (5 minutes), not 0",
        ),
        (
            Settings {
                query_timeout_ms: Some(300_001),
                ..Settings::default()
            },
            "query_timeout_ms must be from 1 to 300000 (5 minutes), not 300001",
        ),
        (
            Settings {
                max_searches: Some(0),
                ..Settings::default()
            },
            "max_searches must be from 1 to 64, not 0",
        ),
        (
            Settings {
                max_searches: Some(MAX_MAX_SEARCHES + 1),
                ..Settings::default()
            },
            "max_searches must be from 1",
        ),
        (
            Settings {
                max_searches_per_tenant: Some(9),
                ..Settings::default()
            },
            "max_searches_per_tenant must be from 1 to max_searches (8), not 9",
        ),
        (
            Settings {
                max_searches_per_tenant: Some(0),
                ..Settings::default()
            },
            "max_searches_per_tenant must be from 1",
        ),
    ] {
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains(named), "{error}");
    }
}

#[test]
fn the_token_recheck_interval_comes_from_the_flag_or_the_file_and_is_bounded() {
    assert_eq!(
        Settings::default().resolve().unwrap().auth.token_recheck,
        DEFAULT_TOKEN_RECHECK
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(&file, "token_recheck_ms = 250\n").unwrap();
    let from_file = Settings {
        config: Some(file),
        ..Settings::default()
    };
    let resolved = from_file.clone().resolve().unwrap();
    assert_eq!(resolved.auth.token_recheck, Duration::from_millis(250));
    assert_eq!(resolved.audit_record()["token_recheck_ms"], 250);
    let every_request = Settings {
        token_recheck_ms: Some(0),
        ..from_file
    };
    assert_eq!(
        every_request.resolve().unwrap().auth.token_recheck,
        Duration::ZERO
    );
    let error = Settings {
        token_recheck_ms: Some(60_001),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(error.contains("token_recheck_ms 60001"), "{error}");
}

#[test]
fn gap_rules_come_per_tenant_from_the_file_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(
        &file,
        "[tenants.billing]\ngap_threshold_secs = 900\nrate_drop_ratio = 0.25\n[tenants.ehr]\non_store_failure = \"reject\"\n",
    )
    .unwrap();
    let resolved = Settings {
        config: Some(file.clone()),
        ..Settings::default()
    }
    .resolve()
    .unwrap();
    let billing = resolved.gaps.rules("billing");
    assert_eq!(billing.threshold_secs, 900);
    assert_eq!(billing.rate_drop_ratio, 0.25);
    assert_eq!(billing.silent_factor, 10);
    assert_eq!(resolved.gaps.rules("ehr"), crate::gaps::GapRules::default());
    for (text, named) in [
        (
            "[tenants.billing]\ngap_threshold_secs = 30\n",
            "gap_threshold_secs",
        ),
        (
            "[tenants.billing]\nrate_drop_ratio = 1.5\n",
            "rate_drop_ratio",
        ),
        ("[tenants.billing]\nsilent_factor = 0\n", "silent_factor"),
    ] {
        std::fs::write(&file, text).unwrap();
        let error = Settings {
            config: Some(file.clone()),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("[tenants.billing]") && error.contains(named),
            "{error}"
        );
    }
}

#[test]
fn store_failure_policies_come_from_flags_and_per_tenant_tables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(
        &file,
        "spool_max_bytes = 2097152\n[tenants.billing]\non_store_failure = \"reject\"\n[tenants.ehr]\n",
    )
    .unwrap();
    let resolved = Settings {
        config: Some(file.clone()),
        ..Settings::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(resolved.outage.on_store_failure, StoreFailurePolicy::Spool);
    assert_eq!(resolved.outage.spool_max_bytes, 2_097_152);
    assert_eq!(
        resolved.outage.tenant_policies,
        HashMap::from([("billing".to_string(), StoreFailurePolicy::Reject)])
    );
    let resolved = Settings {
        config: Some(file),
        on_store_failure: Some(StoreFailurePolicy::Reject),
        ..Settings::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(resolved.outage.on_store_failure, StoreFailurePolicy::Reject);

    for (text, named) in [
        ("[tenants.billing]\non_store_failure = \"drop\"\n", "drop"),
        ("[tenants.billing]\nretention = 3\n", "retention"),
        ("[tenants.Bad]\non_store_failure = \"reject\"\n", "Bad"),
        ("spool_max_bytes = 10\n", "spool_max_bytes"),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let error = Settings {
            config: Some(bad),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains(named), "{text}: {error}");
    }
}

#[test]
fn the_frozen_policy_comes_from_the_flag_or_the_file_and_per_tenant_from_the_file() {
    let default = Settings::default().resolve().unwrap();
    assert_eq!(default.ingest.on_frozen, FrozenPolicies::default());
    assert_eq!(default.ingest.on_frozen.of("acme"), FrozenPolicy::Refuse);
    // The default records nothing, so that a start without holding records what it did
    // before holding existed.
    assert!(default.audit_record().get("on_frozen").is_none());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(
        &file,
        "on_frozen = \"refuse\"\n[tenants.billing]\non_frozen = \"spool\"\n[tenants.ehr]\non_frozen = \"refuse\"\n",
    )
    .unwrap();
    let from_file = Settings {
        config: Some(file.clone()),
        ..Settings::default()
    };
    let resolved = from_file.clone().resolve().unwrap();
    let policies = &resolved.ingest.on_frozen;
    assert_eq!(policies.default, FrozenPolicy::Refuse);
    assert_eq!(policies.of("billing"), FrozenPolicy::Spool);
    assert_eq!(policies.of("ehr"), FrozenPolicy::Refuse);
    assert_eq!(policies.of("other"), FrozenPolicy::Refuse);
    let record = resolved.audit_record();
    assert_eq!(record["on_frozen"], "refuse");
    assert_eq!(
        record["on_frozen_tenants"],
        serde_json::json!({"billing": "spool", "ehr": "refuse"})
    );
    // The flag wins over the file's default; a tenant's own policy still wins over both.
    let flag = Settings {
        on_frozen: Some(FrozenPolicy::Spool),
        ..from_file
    };
    let policies = flag.resolve().unwrap().ingest.on_frozen;
    assert_eq!(policies.of("other"), FrozenPolicy::Spool);
    assert_eq!(policies.of("ehr"), FrozenPolicy::Refuse);
    for (text, named) in [
        ("on_frozen = \"drop\"\n", "drop"),
        ("[tenants.billing]\non_frozen = \"hold\"\n", "hold"),
        ("[tenants.Bad]\non_frozen = \"spool\"\n", "Bad"),
    ] {
        std::fs::write(&file, text).unwrap();
        let error = Settings {
            config: Some(file.clone()),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains(named), "{text}: {error}");
    }
}

#[test]
fn the_frozen_policy_flag_parses_as_serve_reads_it() {
    use clap::{Args as _, FromArgMatches as _};
    let command = Settings::augment_args(clap::Command::new("serve"));
    let parse = |args: &[&str]| {
        let matches = command.clone().try_get_matches_from(args)?;
        Settings::from_arg_matches(&matches)
    };
    let refuse = parse(&["serve", "--on-frozen", "refuse"]).unwrap();
    assert_eq!(refuse.on_frozen, Some(FrozenPolicy::Refuse));
    let spool = parse(&["serve", "--on-frozen", "spool"]).unwrap();
    assert_eq!(spool.on_frozen, Some(FrozenPolicy::Spool));
    assert_eq!(
        spool.resolve().unwrap().ingest.on_frozen.default,
        FrozenPolicy::Spool
    );
    let error = parse(&["serve", "--on-frozen", "drop"])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("refuse") && error.contains("spool"),
        "{error}"
    );
    // The variable is the one the flag names.
    let flag = command
        .get_arguments()
        .find(|arg| arg.get_id() == "on_frozen")
        .unwrap();
    assert_eq!(
        flag.get_env().and_then(|v| v.to_str()),
        Some("SEALTRAIL_ON_FROZEN")
    );
}

#[test]
fn connection_limits_have_defaults_and_come_from_flags_or_the_file() {
    let defaults = Settings::default().resolve().unwrap().http;
    assert_eq!(defaults.header_timeout, DEFAULT_HEADER_TIMEOUT);
    assert_eq!(defaults.body_timeout, DEFAULT_BODY_TIMEOUT);
    assert_eq!(defaults.body_min_rate, DEFAULT_BODY_MIN_RATE);
    assert_eq!(defaults.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(defaults.max_connections, None);
    assert_eq!(defaults.max_body_memory as u64, DEFAULT_MAX_BODY_MEMORY);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(
        &file,
        "header_timeout_secs = 5\nidle_timeout_secs = 30\nmax_connections = 100\nmax_body_memory_bytes = 33554432\n",
    )
    .unwrap();
    let resolved = Settings {
        config: Some(file),
        header_timeout_secs: Some(2),
        body_min_rate: Some(4096),
        ..Settings::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(resolved.http.header_timeout, Duration::from_secs(2));
    assert_eq!(resolved.http.idle_timeout, Duration::from_secs(30));
    assert_eq!(resolved.http.body_min_rate, 4096);
    assert_eq!(resolved.http.max_connections, Some(100));
    assert_eq!(resolved.http.max_body_memory, 32 << 20);
    assert_eq!(resolved.audit_record()["max_connections"], 100);
    assert_eq!(resolved.audit_record()["header_timeout_secs"], 2);

    for (settings, named) in [
        (
            Settings {
                header_timeout_secs: Some(0),
                ..Settings::default()
            },
            "header_timeout_secs 0 is out of range: from 1 to 300",
        ),
        (
            Settings {
                header_timeout_secs: Some(301),
                ..Settings::default()
            },
            "header_timeout_secs 301",
        ),
        (
            Settings {
                body_timeout_secs: Some(3601),
                ..Settings::default()
            },
            "body_timeout_secs 3601",
        ),
        (
            Settings {
                body_min_rate: Some(0),
                ..Settings::default()
            },
            "body_min_rate 0",
        ),
        (
            Settings {
                idle_timeout_secs: Some(0),
                ..Settings::default()
            },
            "idle_timeout_secs 0",
        ),
        (
            Settings {
                max_connections: Some(0),
                ..Settings::default()
            },
            "max_connections 0",
        ),
        (
            Settings {
                max_connections: Some((1 << 20) + 1),
                ..Settings::default()
            },
            "max_connections 1048577",
        ),
        (
            Settings {
                max_body_memory_bytes: Some(LARGEST_BODY - 1),
                ..Settings::default()
            },
            "max_body_memory_bytes 16777215 is out of range: from 16777216",
        ),
    ] {
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains(named), "{named}: {error}");
    }
}

#[test]
fn the_archive_is_configured_by_flags_or_the_file_with_retention_per_tenant() {
    assert_eq!(Settings::default().resolve().unwrap().archive, None);
    assert!(
        Settings::default()
            .resolve()
            .unwrap()
            .audit_record()
            .get("archive_to")
            .is_none(),
        "a start without an archive records what it recorded before archiving existed"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealtrail.toml");
    std::fs::write(
        &file,
        "archive_to = \"s3://audit-archive/sealtrail\"\narchive_interval = \"5m\"\narchive_retention_days = 3650\n[tenants.billing]\narchive_retention_days = 400\n",
    )
    .unwrap();
    let from_file = Settings {
        config: Some(file.clone()),
        ..Settings::default()
    };
    let resolved = from_file.clone().resolve().unwrap();
    let archive = resolved.archive.clone().unwrap();
    assert_eq!(archive.target, "s3://audit-archive/sealtrail");
    assert_eq!(archive.interval, Duration::from_secs(300));
    assert_eq!(archive.every, Some(DEFAULT_ARCHIVE_EVERY));
    assert!(!archive.allow_unlocked);
    assert_eq!(archive.retention_days_of("billing"), 400);
    assert_eq!(archive.retention_days_of("ehr"), 3650);
    let record = resolved.audit_record();
    assert_eq!(record["archive_to"], "s3://audit-archive/sealtrail");
    assert_eq!(record["archive_interval_ms"], 300_000);
    assert_eq!(record["archive_tenant_retention_days"]["billing"], 400);
    // Flags win; 0 entries turns the size trigger off.
    let flags = Settings {
        archive_to: Some("/srv/archive".into()),
        archive_interval: Some("1s".into()),
        archive_every: Some(0),
        archive_allow_unlocked: Some(true),
        ..from_file
    };
    let archive = flags.resolve().unwrap().archive.unwrap();
    assert_eq!(
        (archive.target.as_str(), archive.interval, archive.every),
        ("/srv/archive", Duration::from_secs(1), None)
    );
    assert!(archive.allow_unlocked);
    let defaults = Settings {
        archive_to: Some("archive".into()),
        ..Settings::default()
    }
    .resolve()
    .unwrap()
    .archive
    .unwrap();
    assert_eq!(defaults.interval, DEFAULT_ARCHIVE_INTERVAL);
    assert_eq!(defaults.retention_days, 2557);

    let target = |to: &str| Settings {
        archive_to: Some(to.into()),
        ..Settings::default()
    };
    for (settings, named) in [
        (target(""), "archive_to \"\" is neither"),
        (target("s3://"), "s3://bucket/prefix"),
        (target("gs://bucket/x"), "gs://bucket/x"),
        (
            Settings {
                archive_interval: Some("0s".into()),
                ..target("/a")
            },
            "archive_interval \"0s\"",
        ),
        (
            Settings {
                archive_interval: Some("2d".into()),
                ..target("/a")
            },
            "from 1s to 1d",
        ),
        (
            Settings {
                archive_interval: Some("soon".into()),
                ..target("/a")
            },
            "soon",
        ),
        (
            Settings {
                archive_retention_days: Some(0),
                ..target("/a")
            },
            "archive_retention_days 0",
        ),
        (
            Settings {
                archive_every: Some(10),
                ..Settings::default()
            },
            "archive_every is set but archive_to is not",
        ),
        (
            Settings {
                archive_allow_unlocked: Some(true),
                ..Settings::default()
            },
            "archive_allow_unlocked is set",
        ),
    ] {
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains(named), "{named}: {error}");
    }
    std::fs::write(&file, "[tenants.billing]\narchive_retention_days = 400\n").unwrap();
    let error = Settings {
        config: Some(file.clone()),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(error.contains("archive_retention_days is set"), "{error}");
    std::fs::write(
        &file,
        "archive_to = \"/a\"\n[tenants.billing]\narchive_retention_days = 0\n",
    )
    .unwrap();
    let error = Settings {
        config: Some(file),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("[tenants.billing] archive_retention_days"),
        "{error}"
    );
}

#[test]
fn durations_are_written_with_their_unit() {
    for (text, want) in [
        ("60s", Some(Duration::from_secs(60))),
        ("90", Some(Duration::from_secs(90))),
        ("5m", Some(Duration::from_secs(300))),
        ("1h", Some(Duration::from_secs(3600))),
        ("1d", Some(Duration::from_secs(86_400))),
        (" 250ms ", Some(Duration::from_millis(250))),
        ("", None),
        ("s", None),
        ("1.5s", None),
        ("-1s", None),
        ("1w", None),
        ("99999999999999999999d", None),
    ] {
        assert_eq!(parse_duration(text), want, "{text:?}");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "lissen = \"x\"\n").unwrap();
    let error = Settings {
        config: Some(file),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(error.contains("lissen"), "{error}");
    let error = Settings {
        listen: Some("nowhere".into()),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(error.contains("HOST:PORT"), "{error}");
}

#[test]
fn a_listen_host_name_is_resolved_and_a_bad_one_named() {
    let resolved = Settings {
        listen: Some("localhost:7444".into()),
        ..Settings::default()
    }
    .resolve()
    .unwrap();
    assert!(
        resolved.http.listen.ip().is_loopback(),
        "{:?}",
        resolved.http.listen
    );
    assert_eq!(resolved.http.listen.port(), 7444);
    assert_eq!(
        resolve_listen("[::1]:7433").unwrap(),
        "[::1]:7433".parse().unwrap()
    );
    for bad in ["localhost", "localhost:", ":7433", "localhost:99999"] {
        let error = resolve_listen(bad).unwrap_err().to_string();
        assert!(error.contains("HOST:PORT"), "{bad}: {error}");
    }
    let error = resolve_listen("no-such-host.invalid:7433")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot resolve") && error.contains("no-such-host.invalid"),
        "{error}"
    );
}
