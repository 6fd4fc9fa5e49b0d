//! The admin API's own audit trail: refused attempts at admin routes are recorded in the
//! `_system` log, with who and what but never the secret presented, and no faster than the
//! limits allow. (The admin API's actions are tested in `ops.rs`.)

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::spawn_app;

/// A secret no token has, in the tokens' own format.
const UNKNOWN_SECRET: &str = "st_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test]
async fn refused_admin_attempts_are_recorded_in_the_system_log_without_the_secret() {
    let app = spawn_app().await;
    let writer = app
        .ledger
        .create_token("acme", vec!["events:write".into()], "test")
        .await
        .unwrap();
    let tenant_admin = app
        .ledger
        .create_token("acme", vec!["admin".into()], "test")
        .await
        .unwrap();
    let former_admin = app
        .ledger
        .create_token("_system", vec!["admin".into()], "test")
        .await
        .unwrap();
    assert!(
        app.ledger
            .revoke_token(&former_admin.id, "test")
            .await
            .unwrap()
    );
    let before = app.refusal_records().len();
    assert_eq!(before, 0, "nothing refused yet");

    // (method, path, secret presented, status, reason, token id the record names)
    let attempts = [
        (
            "GET",
            "/v1/admin/tokens",
            Some(writer.token.as_str()),
            403,
            "scope",
            Some(writer.id.as_str()),
        ),
        (
            "DELETE",
            "/v1/admin/tokens/tok_0123456789abcdef",
            Some(UNKNOWN_SECRET),
            401,
            "unknown_token",
            None,
        ),
        ("POST", "/v1/admin/tokens", None, 401, "required", None),
        (
            "GET",
            "/v1/admin/tenants",
            Some(former_admin.token.as_str()),
            401,
            "revoked",
            Some(former_admin.id.as_str()),
        ),
        (
            "GET",
            "/v1/admin/tenants",
            Some(tenant_admin.token.as_str()),
            403,
            "tenant",
            Some(tenant_admin.id.as_str()),
        ),
    ];
    for (method, path, secret, status, reason, _) in attempts {
        let mut request = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .json(&json!({"tenant": "acme", "scopes": ["admin"]}));
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["rule"], reason, "{method} {path}: {error}");
        assert_eq!(error["field"], "Authorization", "{method} {path}: {error}");
    }

    // Each refusal is in the log before it is answered.
    let records = app.refusal_records();
    assert_eq!(records.len(), attempts.len(), "{records:#?}");
    for (record, (method, path, _, status, reason, token_id)) in records.iter().zip(attempts) {
        let route = path.replace("tok_0123456789abcdef", "{id}");
        assert_eq!(record["outcome"], "failure", "{record}");
        assert_eq!(record["activity"], "admin", "{record}");
        assert_eq!(record["outcome_reason"], reason, "{record}");
        assert_eq!(record["context"]["ip"], "127.0.0.1", "{record}");
        assert_eq!(
            record["targets"],
            json!([{"type": "route", "id": format!("{method} {route}")}]),
            "{record}"
        );
        let details = &record["details"];
        assert_eq!(details["method"], method, "{record}");
        assert_eq!(details["route"], route, "{record}");
        assert_eq!(details["path"], path, "{record}");
        assert_eq!(details["status"], status, "{record}");
        assert_eq!(details["reason"], reason, "{record}");
        assert_eq!(details["suppressed"], 0, "{record}");
        match token_id {
            Some(id) => assert_eq!(
                record["actor"],
                json!({"id": id, "type": "api_key"}),
                "{record}"
            ),
            None => assert_eq!(
                record["actor"],
                json!({"id": "unauthenticated", "type": "anonymous"}),
                "{record}"
            ),
        }
    }

    // No secret presented, and no hash of one, is anywhere in the log.
    let log = app.entries("_system").concat();
    let log = String::from_utf8(log).unwrap();
    for secret in [
        UNKNOWN_SECRET,
        &writer.token,
        &former_admin.token,
        &tenant_admin.token,
    ] {
        let hash = hex(&Sha256::digest(secret.as_bytes()));
        assert!(!log.contains(secret), "a secret is in the _system log");
        assert!(
            !log.contains(&hash),
            "a secret's hash is in the _system log"
        );
        // Not even the part after the prefix.
        assert!(
            !log.contains(&secret[3..]),
            "a secret is in the _system log"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_refused_admin_attempts_is_recorded_only_up_to_the_limit() {
    let app = spawn_app().await;
    let limit = sealtrail_server::refusals::PER_SOURCE as usize;
    for n in 0..limit + 5 {
        let response = app
            .client
            .get(app.url("/v1/admin/tokens"))
            .bearer_auth(format!("st_guess{n}"))
            .send()
            .await
            .unwrap();
        // Every attempt is refused alike, recorded or not.
        assert_eq!(response.status(), 401);
    }
    let records = app.refusal_records();
    assert_eq!(records.len(), limit, "one address, one window");
    assert!(records.iter().all(|r| r["details"]["suppressed"] == 0));
    // The rest are counted where an operator looks for a flood (a process-wide counter,
    // shared with the other tests of this binary: a lower bound).
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let suppressed: f64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("sealtrail_admin_refusals_total{outcome=\"suppressed\"} ")
        })
        .expect("the suppressed counter is exported")
        .parse()
        .unwrap();
    assert!(suppressed >= 5.0, "{suppressed}");
    // A valid admin request is not held back by the flood.
    let listed = app
        .client
        .get(app.url("/v1/admin/tokens"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    app.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
