//! The log API from a client's side: proofs checked with the core's verifiers against signed
//! checkpoints opened with the published key, the C2SP tiles against the receipts, access rules,
//! verification, and a restart that continues the same log.

use std::time::Duration;

use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle::{TreeBuilder, verify_consistency, verify_inclusion};
use sealtrail_core::note::VerifierKey;
use sealtrail_core::tiles::decode_entry_bundle;
use sealtrail_core::{Hash, leaf_hash};
use sealtrail_server::config::Settings;
use serde_json::Value;

use crate::helpers::{TestApp, event, spawn_app, spawn_app_in};

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let response = get(app, Some(token), path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// The log's verifier key, as a client fetches it.
async fn log_key(app: &TestApp, token: &str) -> VerifierKey {
    let text = get(app, Some(token), "/v1/log/key")
        .await
        .text()
        .await
        .unwrap();
    VerifierKey::parse(text.trim()).expect("a verifier key")
}

/// Polls until the latest checkpoint covers `size` entries; returns it opened and as the note.
async fn checkpoint_at(app: &TestApp, token: &str, size: u64) -> (Checkpoint, String) {
    let key = log_key(app, token).await;
    for _ in 0..250 {
        let response = get(app, Some(token), "/v1/log/checkpoint").await;
        if response.status() == 200 {
            let note = response.text().await.unwrap();
            let checkpoint = Checkpoint::open(note.as_bytes(), &key).expect("a valid checkpoint");
            if checkpoint.size == size {
                return (checkpoint, note);
            }
            assert!(checkpoint.size < size, "checkpoint went past {size}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint of size {size} within 5 s");
}

/// Posts events `range`, returning their receipts' event hashes.
async fn post_events(app: &TestApp, token: &str, range: std::ops::Range<u64>) -> Vec<Hash> {
    let mut hashes = Vec::new();
    for n in range {
        let response = app.post_event(token, &event(n)).await;
        assert_eq!(response.status(), 201);
        let receipt: Value = response.json().await.unwrap();
        hashes.push(Hash::from_hex(receipt["event_hash"].as_str().unwrap()).unwrap());
    }
    hashes
}

fn proof(body: &Value) -> Vec<Hash> {
    body["proof"]
        .as_array()
        .expect("a proof array")
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).expect("lowercase hex"))
        .collect()
}

#[tokio::test]
async fn inclusion_and_consistency_proofs_verify_against_signed_checkpoints() {
    let app = spawn_app().await;
    let token = app
        .token("acme", &["events:write", "log:read", "verify"])
        .await;
    let mut hashes = post_events(&app, &token, 0..5).await;
    let (old, _) = checkpoint_at(&app, &token, 5).await;

    for seq in 0..5u64 {
        let body = get_json(&app, &token, &format!("/v1/log/proof/inclusion?seq={seq}")).await;
        assert_eq!(body["leaf_index"], seq);
        assert_eq!(body["tree_size"], 5);
        verify_inclusion(seq, 5, &hashes[seq as usize], &proof(&body), &old.root)
            .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
    }

    hashes.extend(post_events(&app, &token, 5..12).await);
    let (new, _) = checkpoint_at(&app, &token, 12).await;
    for seq in [0, 4, 5, 11] {
        let body = get_json(&app, &token, &format!("/v1/log/proof/inclusion?seq={seq}")).await;
        assert_eq!(body["tree_size"], 12);
        verify_inclusion(seq, 12, &hashes[seq as usize], &proof(&body), &new.root).unwrap();
    }
    // An older tree size is still provable against its own checkpoint.
    let body = get_json(&app, &token, "/v1/log/proof/inclusion?seq=3&size=5").await;
    verify_inclusion(3, 5, &hashes[3], &proof(&body), &old.root).unwrap();

    let body = get_json(&app, &token, "/v1/log/proof/consistency?from=5&to=12").await;
    assert_eq!(
        (body["from"].as_u64(), body["to"].as_u64()),
        (Some(5), Some(12))
    );
    verify_consistency(5, 12, &old.root, &new.root, &proof(&body)).unwrap();
    // `to` defaults to the latest checkpoint; equal sizes need no proof.
    let body = get_json(&app, &token, "/v1/log/proof/consistency?from=5").await;
    assert_eq!(body["to"], 12);
    verify_consistency(5, 12, &old.root, &new.root, &proof(&body)).unwrap();
    let body = get_json(&app, &token, "/v1/log/proof/consistency?from=12&to=12").await;
    assert_eq!(body["proof"], serde_json::json!([]));

    // Out-of-range requests are refused with the parameter and the rule named.
    for (path, field, rule) in [
        ("/v1/log/proof/inclusion", "seq", "required"),
        ("/v1/log/proof/inclusion?seq=12", "seq", "range"),
        ("/v1/log/proof/inclusion?seq=5&size=5", "seq", "range"),
        ("/v1/log/proof/inclusion?seq=0&size=0", "size", "range"),
        ("/v1/log/proof/inclusion?seq=0&size=13", "size", "range"),
        ("/v1/log/proof/inclusion?seq=-1", "seq", "type"),
        ("/v1/log/proof/inclusion?seq=", "seq", "type"),
        // No log holds a seq beyond 2^53 - 1 or a tree beyond 2^53 entries.
        (
            "/v1/log/proof/inclusion?seq=9007199254740992",
            "seq",
            "range",
        ),
        (
            "/v1/log/proof/inclusion?seq=0&size=9007199254740993",
            "size",
            "range",
        ),
        (
            "/v1/log/proof/inclusion?seq=18446744073709551616",
            "seq",
            "range",
        ),
        ("/v1/log/proof/consistency?to=5", "from", "required"),
        ("/v1/log/proof/consistency?from=0&to=5", "from", "range"),
        ("/v1/log/proof/consistency?from=6&to=5", "from", "range"),
        ("/v1/log/proof/consistency?from=5&to=1000", "to", "range"),
        ("/v1/verify?from_seq=13", "from_seq", "range"),
        ("/v1/verify?from_seq=5&to_seq=4", "from_seq", "range"),
        ("/v1/verify?to_seq=9007199254740992", "to_seq", "range"),
        ("/v1/verify?to_seq=9223372036854775808", "to_seq", "range"),
        ("/v1/verify?to_seq=false", "to_seq", "type"),
        // A parameter given twice is refused as JSON like any other mistake.
        (
            "/v1/log/proof/consistency?from=5&to=6&to=6",
            "query",
            "syntax",
        ),
        ("/v1/log/proof/inclusion?seq=1&seq=2", "query", "syntax"),
        ("/v1/verify?from_seq=1&from_seq=1", "query", "syntax"),
    ] {
        let response = get(&app, Some(&token), path).await;
        assert_eq!(response.status(), 400, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["field"], field, "{path}: {error}");
        assert_eq!(error["rule"], rule, "{path}: {error}");
    }

    // Verification of the caller's log: whole, and a range inside it.
    let report = get_json(&app, &token, "/v1/verify").await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["rows_checked"], 12);
    assert_eq!(report["violations"], serde_json::json!([]));
    assert_eq!(report["first_broken_seq"], Value::Null);
    assert_eq!(report["checkpoint"]["size"], 12);
    let report = get_json(&app, &token, "/v1/verify?from_seq=3&to_seq=9").await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["rows_checked"], 7);
    let status = app.board.status("acme");
    assert_eq!(status.state, sealtrail_server::verify::ChainState::Valid);

    // Proofs need log:read and verification needs verify.
    let writer = app.token("acme", &["events:write"]).await;
    for path in ["/v1/log/proof/inclusion?seq=0", "/v1/verify"] {
        assert_eq!(get(&app, Some(&writer), path).await.status(), 403, "{path}");
        assert_eq!(get(&app, None, path).await.status(), 401, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tiles_publish_the_signed_tree_and_its_entries_to_the_tenant() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write", "log:read"]).await;
    let batch: Vec<Value> = (0..300).map(event).collect();
    let response = app.post_batch(&token, &batch).await;
    assert_eq!(response.status(), 200);
    let hashes = post_events(&app, &token, 300..302).await;
    let (_, note) = checkpoint_at(&app, &token, 302).await;

    // The checkpoint is the same note as the v1 API's.
    let response = get(&app, Some(&token), "/logs/acme/checkpoint").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.text().await.unwrap(), note);

    // The first full entry bundle and level-0 tile: the entries hash to the tile's hashes.
    let response = get(&app, Some(&token), "/logs/acme/tile/entries/000").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );
    let bundle = response.bytes().await.unwrap();
    let entries = decode_entry_bundle(&bundle).unwrap();
    assert_eq!(entries.len(), 256);
    let response = get(&app, Some(&token), "/logs/acme/tile/0/000").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let tile = response.bytes().await.unwrap();
    assert_eq!(tile.len(), 256 * 32);
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(&tile[i * 32..(i + 1) * 32], leaf.as_bytes(), "leaf {i}");
    }

    // The partial tile and bundle at the end carry the entries behind the last receipts.
    let response = get(&app, Some(&token), "/logs/acme/tile/0/001.p/46").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "private, max-age=60");
    let tile = response.bytes().await.unwrap();
    assert_eq!(tile.len(), 46 * 32);
    assert_eq!(&tile[44 * 32..45 * 32], hashes[0].as_bytes());
    assert_eq!(&tile[45 * 32..], hashes[1].as_bytes());
    let bundle = get(&app, Some(&token), "/logs/acme/tile/entries/001.p/46")
        .await
        .bytes()
        .await
        .unwrap();
    let tail = decode_entry_bundle(&bundle).unwrap();
    assert_eq!(tail.len(), 46);
    assert_eq!(leaf_hash(tail[45]), hashes[1]);

    // The level-1 tile holds the root of the full level-0 tile.
    let mut tree = TreeBuilder::new();
    for leaf in leaves {
        tree.push(leaf, &mut Vec::new());
    }
    let tile = get(&app, Some(&token), "/logs/acme/tile/1/000.p/1")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&tile[..], tree.root().as_bytes());

    // Tiles the signed tree does not determine, and malformed paths: each a JSON error
    // naming the path parameter at fault and the rule.
    for (path, status, field, rule) in [
        ("/logs/acme/tile/0/001", 404, None, None),
        ("/logs/acme/tile/0/001.p/47", 404, None, None),
        ("/logs/acme/tile/2/000.p/1", 404, None, None),
        (
            "/logs/acme/tile/0/1",
            400,
            Some("tile_path"),
            Some("format"),
        ),
        (
            "/logs/acme/tile/0/x000/001",
            400,
            Some("tile_path"),
            Some("format"),
        ),
        (
            "/logs/acme/tile/64/000",
            400,
            Some("tile_path"),
            Some("format"),
        ),
        (
            "/logs/acme/tile/0/000.p/256",
            400,
            Some("tile_path"),
            Some("format"),
        ),
        (
            "/logs/acme/tile/entries/0",
            400,
            Some("bundle_path"),
            Some("format"),
        ),
        (
            "/logs/acme/tile/entries/000.p/0",
            400,
            Some("bundle_path"),
            Some("format"),
        ),
        ("/logs/acme/nothing", 400, Some("path"), Some("format")),
        ("/logs/Acme/checkpoint", 400, Some("tenant"), Some("format")),
        (
            "/logs/-acme/tile/0/000",
            400,
            Some("tenant"),
            Some("format"),
        ),
        (
            "/logs/nobody/checkpoint",
            404,
            Some("tenant"),
            Some("unknown_tenant"),
        ),
    ] {
        let response = get(&app, Some(&token), path).await;
        assert_eq!(response.status(), status, "{path}");
        let error: Value = response.json().await.unwrap();
        if let (Some(field), Some(rule)) = (field, rule) {
            assert_eq!(error["field"], field, "{path}: {error}");
            assert_eq!(error["rule"], rule, "{path}: {error}");
        }
    }

    // Not public by default: no token, 401; another tenant's token, 404 as if absent.
    let other = app.token("other", &["log:read"]).await;
    for path in [
        "/logs/acme/checkpoint",
        "/logs/acme/tile/0/000",
        "/logs/acme/tile/entries/000",
    ] {
        assert_eq!(get(&app, None, path).await.status(), 401, "{path}");
        let response = get(&app, Some(&other), path).await;
        assert_eq!(response.status(), 404, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["field"], "tenant", "{path}: {error}");
        assert_eq!(error["rule"], "unknown_tenant", "{path}: {error}");
    }
    let writer = app.token("acme", &["events:write"]).await;
    assert_eq!(
        get(&app, Some(&writer), "/logs/acme/tile/entries/000")
            .await
            .status(),
        403
    );
    app.stop().await;
}

#[tokio::test]
async fn a_restart_continues_the_log_and_a_public_log_serves_its_tree_without_a_token() {
    let app = spawn_app().await;
    let token = app
        .token("acme", &["events:write", "log:read", "verify"])
        .await;
    let mut hashes = post_events(&app, &token, 0..4).await;
    let (before, _) = checkpoint_at(&app, &token, 4).await;
    let dir = app.dir.clone();
    app.stop().await;

    let public = |settings: &mut Settings| settings.public_log = Some(true);
    let app = spawn_app_in(dir, public).await;
    hashes.extend(post_events(&app, &token, 4..7).await);
    let (after, note) = checkpoint_at(&app, &token, 7).await;
    let body = get_json(&app, &token, "/v1/log/proof/consistency?from=4&to=7").await;
    verify_consistency(4, 7, &before.root, &after.root, &proof(&body)).unwrap();
    let body = get_json(&app, &token, "/v1/log/proof/inclusion?seq=6").await;
    verify_inclusion(6, 7, &hashes[6], &proof(&body), &after.root).unwrap();

    // The checkpoint and hash tiles are public now; the entries still are not.
    let response = get(&app, None, "/logs/acme/checkpoint").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), note);
    let response = get(&app, None, "/logs/acme/tile/0/000.p/7").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    let tile = response.bytes().await.unwrap();
    let served: Vec<&[u8]> = tile.chunks(32).collect();
    let expected: Vec<&[u8]> = hashes.iter().map(|h| &h.as_bytes()[..]).collect();
    assert_eq!(served, expected);
    assert_eq!(
        get(&app, None, "/logs/acme/tile/entries/000.p/7")
            .await
            .status(),
        401
    );

    let report = get_json(&app, &token, "/v1/verify").await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["rows_checked"], 7);
    assert_eq!(report["checkpoint"]["size"], 7);
    app.stop().await;
}

/// The background verifier notices damage done behind the server's back, directly in the
/// database, and keeps the log marked violated.
#[tokio::test]
async fn the_background_verifier_flags_a_log_altered_in_the_database() {
    let every_second = |settings: &mut Settings| settings.verify_interval_secs = Some(1);
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, every_second).await;
    let token = app.token("acme", &["events:write", "log:read"]).await;
    post_events(&app, &token, 0..3).await;
    checkpoint_at(&app, &token, 3).await;

    let db =
        rusqlite::Connection::open(sealtrail_store::DataDir::new(&app.data).database()).unwrap();
    db.execute_batch("DROP TRIGGER entries_append_only_update")
        .unwrap();
    db.execute(
        "UPDATE entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'success', 'failure') AS BLOB) WHERE key = (SELECT number << 44 FROM tenants WHERE name = 'acme') | 1",
        [],
    )
    .unwrap();
    drop(db);

    let status = violated_status(&app, "acme", 60).await;
    assert_eq!(status.first_broken_seq, Some(1));
    assert_eq!(
        app.board.chain_state(),
        sealtrail_server::verify::ChainState::Violated
    );
    app.stop().await;
}

/// A row whose entry was turned from bytes into TEXT behind the server's back (the triggers
/// dropped, then `CAST(entry AS TEXT)`) is a violation at its seq: the background verifier
/// marks the log violated and `/health` says so, while the indexer passes over the row and
/// goes on indexing what follows it. The store used to fail the whole read at that row, so
/// verification never ran to a report and the indexer retried the same batch every second.
#[tokio::test]
async fn a_row_turned_to_text_is_flagged_and_indexing_goes_on_past_it() {
    let every_second = |settings: &mut Settings| settings.verify_interval_secs = Some(1);
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir.clone(), every_second).await;
    let token = app
        .token(
            "acme",
            &["events:write", "events:read", "log:read", "verify"],
        )
        .await;
    post_events(&app, &token, 0..3).await;
    checkpoint_at(&app, &token, 3).await;
    app.stop().await;

    // The index is rebuilt from the log on the next start, so it meets the damaged row.
    let data = sealtrail_store::DataDir::new(dir.path().join("data"));
    std::fs::remove_file(data.index()).unwrap();
    let db = rusqlite::Connection::open(data.database()).unwrap();
    db.execute_batch(
        "DROP TRIGGER entries_append_only_update;
         UPDATE entries SET entry = CAST(entry AS TEXT) WHERE key = (SELECT number << 44 FROM tenants WHERE name = 'acme') | 1;",
    )
    .unwrap();
    drop(db);

    let app = spawn_app_in(dir, every_second).await;
    post_events(&app, &token, 3..5).await;
    let page = get_json(&app, &token, "/v1/events?wait_for_seq=4&order=asc").await;
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 2, 3, 4], "{page}");

    let status = violated_status(&app, "acme", 100).await;
    assert_eq!(status.first_broken_seq, Some(1));
    assert_eq!(status.violation_count, 1, "{status:?}");
    let health: Value = get(&app, None, "/health").await.json().await.unwrap();
    assert_eq!(health["checks"]["chain"], "violated", "{health}");

    let report = get_json(&app, &token, "/v1/verify").await;
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(report["violations"][0]["seq"], 1, "{report}");
    assert_eq!(
        report["violations"][0]["kind"], "malformed_entry",
        "{report}"
    );
    app.stop().await;
}

/// Waits, up to `tries` times 100 ms, for the background verifier to put `tenant` on the board
/// as violated; fails the test if it does not, and returns the tenant's status.
async fn violated_status(
    app: &TestApp,
    tenant: &str,
    tries: usize,
) -> sealtrail_server::verify::TenantStatus {
    let mut status = app.board.status(tenant);
    for _ in 0..tries {
        if status.state == sealtrail_server::verify::ChainState::Violated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = app.board.status(tenant);
    }
    assert_eq!(
        status.state,
        sealtrail_server::verify::ChainState::Violated,
        "{status:?}"
    );
    status
}

/// The stored-hash array of a log, rebuilt from its entries as the store holds them.
fn stored_array(entries: &[Vec<u8>]) -> Vec<Hash> {
    let mut tree = TreeBuilder::new();
    let mut out = Vec::new();
    for entry in entries {
        tree.push(leaf_hash(entry), &mut out);
    }
    out
}

fn hex(hashes: Vec<Hash>) -> Value {
    Value::from(hashes.iter().map(Hash::to_hex).collect::<Vec<_>>())
}

/// Proofs of trees this instance has already seen committed skip the size read and the
/// snapshot (and, when every hash is in memory, the store): they must still be the proofs the
/// stored tree gives, asked for once or many times, and what one tenant's log is known to hold
/// must never let another tenant's request past its own log's end.
#[tokio::test]
async fn repeated_proofs_are_the_stored_trees_and_known_sizes_stay_per_tenant() {
    let app = spawn_app().await;
    let acme = app.token("acme", &["events:write", "log:read"]).await;
    let beta = app.token("beta", &["events:write", "log:read"]).await;
    for batch in 0..5u64 {
        let events: Vec<Value> = (batch * 500..(batch + 1) * 500).map(event).collect();
        let response = app.post_batch(&acme, &events).await;
        assert!(response.status().is_success(), "{}", response.status());
    }
    post_events(&app, &beta, 0..3).await;
    let size = app.log_size("acme");
    assert_eq!(size, 2_500);
    let array = stored_array(&app.entries("acme"));
    let beta_array = stored_array(&app.entries("beta"));

    let inclusions = [
        (0u64, 2_500u64),
        (1_023, 2_048),
        (2_499, 2_500),
        (777, 1_500),
        (5, 6),
    ];
    let consistencies = [
        (1_024u64, 2_048u64),
        (1, 2_500),
        (1_500, 2_500),
        (2_048, 2_048),
        (3, 1_024),
    ];
    for round in 0..3 {
        for (seq, size) in inclusions {
            let body = get_json(
                &app,
                &acme,
                &format!("/v1/log/proof/inclusion?seq={seq}&size={size}"),
            )
            .await;
            let want = sealtrail_core::merkle::inclusion_proof(seq, size, &array).unwrap();
            assert_eq!(
                body["proof"],
                hex(want),
                "round {round}: seq {seq} in {size}"
            );
            assert_eq!(
                (body["leaf_index"].as_u64(), body["tree_size"].as_u64()),
                (Some(seq), Some(size))
            );
        }
        for (from, to) in consistencies {
            let body = get_json(
                &app,
                &acme,
                &format!("/v1/log/proof/consistency?from={from}&to={to}"),
            )
            .await;
            let want = sealtrail_core::merkle::consistency_proof(from, to, &array).unwrap();
            assert_eq!(body["proof"], hex(want), "round {round}: {from} to {to}");
            assert_eq!(
                (body["from"].as_u64(), body["to"].as_u64()),
                (Some(from), Some(to))
            );
        }
    }

    // acme's log is known to hold 2,500 entries; beta's holds 3, and is refused past them.
    for (path, field) in [
        ("/v1/log/proof/inclusion?seq=0&size=4", "size"),
        ("/v1/log/proof/inclusion?seq=1&size=2500", "size"),
        ("/v1/log/proof/consistency?from=1&to=2048", "to"),
        ("/v1/log/proof/consistency?from=2&to=4", "to"),
    ] {
        let response = get(&app, Some(&beta), path).await;
        assert_eq!(response.status(), 400, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            (error["field"].as_str(), error["rule"].as_str()),
            (Some(field), Some("range")),
            "{path}: {error}"
        );
    }
    let body = get_json(&app, &beta, "/v1/log/proof/inclusion?seq=1&size=3").await;
    assert_eq!(
        body["proof"],
        hex(sealtrail_core::merkle::inclusion_proof(1, 3, &beta_array).unwrap())
    );
    let body = get_json(&app, &beta, "/v1/log/proof/consistency?from=1&to=3").await;
    assert_eq!(
        body["proof"],
        hex(sealtrail_core::merkle::consistency_proof(1, 3, &beta_array).unwrap())
    );
    // And acme's own requests past its end are still refused, as are the other range rules.
    for (path, field) in [
        ("/v1/log/proof/inclusion?seq=0&size=2501", "size"),
        ("/v1/log/proof/inclusion?seq=2500&size=2500", "seq"),
        ("/v1/log/proof/consistency?from=2049&to=2048", "from"),
        ("/v1/log/proof/consistency?from=1&to=2501", "to"),
    ] {
        let response = get(&app, Some(&acme), path).await;
        assert_eq!(response.status(), 400, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            (error["field"].as_str(), error["rule"].as_str()),
            (Some(field), Some("range")),
            "{path}: {error}"
        );
    }
    app.stop().await;
}
