//! Alert webhooks against a local receiver that fails its first attempts: every attempt is
//! signed as the Standard Webhooks specification says (checked here with the spec's algorithm,
//! independently of sealtrail's code), the failing alert is retried with backoff across a
//! restart of the server, and once the receiver recovers every alert is accepted exactly once
//! under its webhook-id, in the order raised.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use sealtrail_server::config::MonitorFile;
use sealtrail_server::monitor::webhook::WebhookDef;

use crate::helpers::{TestApp, spawn_app_in};

const SECRET: &str = "whsec_c2VhbHRyYWlsLXdlYmhvb2stdGVzdC1zZWNyZXQ=";

#[derive(Debug, Clone)]
struct Attempt {
    id: String,
    accepted: bool,
    body: Value,
}

#[derive(Default)]
struct Receiver {
    /// Attempts to refuse before accepting any.
    refuse: usize,
    attempts: Vec<Attempt>,
    bad_signatures: Vec<String>,
}

/// The spec's check: the key is the base64 after `whsec_`; the signed content is
/// `id.timestamp.body`; the header holds space-separated `v1,<base64 HMAC-SHA256>`; the
/// timestamp must be within five minutes.
fn signature_holds(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| format!("no {name}"))
    };
    let (id, timestamp, signatures) = (
        header("webhook-id")?,
        header("webhook-timestamp")?,
        header("webhook-signature")?,
    );
    let sent: i64 = timestamp.parse().map_err(|_| "timestamp".to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - sent).abs() > 300 {
        return Err(format!("timestamp {sent} is not within 5 minutes of {now}"));
    }
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    if signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    {
        Ok(id)
    } else {
        Err(format!("{signatures} is not v1,{expected}"))
    }
}

async fn receive(
    State(receiver): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut receiver = receiver.lock().unwrap();
    let id = match signature_holds(&headers, &body) {
        Ok(id) => id,
        Err(why) => {
            receiver.bad_signatures.push(why);
            return StatusCode::UNAUTHORIZED;
        }
    };
    let accepted = receiver.attempts.len() >= receiver.refuse;
    receiver.attempts.push(Attempt {
        id,
        accepted,
        body: serde_json::from_slice(&body).unwrap(),
    });
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn start_receiver(refuse: usize) -> (String, Arc<Mutex<Receiver>>) {
    let receiver = Arc::new(Mutex::new(Receiver {
        refuse,
        ..Receiver::default()
    }));
    let app = axum::Router::new()
        .route("/hooks/sealtrail", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/sealtrail", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

fn failures(actor: &str) -> Vec<Value> {
    (0..10)
        .map(|_| {
            json!({
                "action": "auth.login",
                "activity": "login",
                "outcome": "failure",
                "actor": {"id": actor, "type": "user"},
            })
        })
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn with_webhook(dir: &Arc<tempfile::TempDir>, url: &str) -> TestApp {
    let url = url.to_string();
    spawn_app_in(dir.clone(), move |settings| {
        settings.monitor = Some(MonitorFile {
            rules: Vec::new(),
            webhooks: vec![WebhookDef {
                name: "siem".into(),
                url,
                secret: Some(SECRET.into()),
                secret_file: None,
                tenants: vec!["hooked".into()],
                min_severity: None,
            }],
        });
    })
    .await
}

#[tokio::test]
async fn alerts_reach_a_failing_receiver_signed_once_each_across_a_restart() {
    let (url, receiver) = start_receiver(3).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = with_webhook(&dir, &url).await;
    let token = app.token("hooked", &["events:write", "reports"]).await;
    // Another tenant's alert is not this webhook's.
    let other = app.token("not-hooked", &["events:write"]).await;
    assert_eq!(app.post_batch(&other, &failures("eve")).await.status(), 200);
    assert_eq!(
        app.post_batch(&token, &failures("dr-kim")).await.status(),
        200
    );
    // Two attempts refused; then the server restarts.
    until("two refused attempts", || {
        receiver.lock().unwrap().attempts.len() >= 2
    })
    .await;
    app.stop().await;

    let app = with_webhook(&dir, &url).await;
    assert_eq!(
        app.post_batch(&token, &failures("dr-lee")).await.status(),
        200
    );
    until("both alerts accepted", || {
        let r = receiver.lock().unwrap();
        r.attempts.iter().filter(|a| a.accepted).count() >= 2
    })
    .await;
    // A little longer: nothing more may come.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = app
        .client
        .get(app.url("/v1/alerts?order=asc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let receiver = std::mem::take(&mut *receiver.lock().unwrap());
    assert!(
        receiver.bad_signatures.is_empty(),
        "{:?}",
        receiver.bad_signatures
    );
    let accepted: Vec<&Attempt> = receiver.attempts.iter().filter(|a| a.accepted).collect();
    let ids: Vec<&str> = accepted.iter().map(|a| a.id.as_str()).collect();
    let raised: Vec<&str> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(raised.len(), 2, "{listed}");
    assert_eq!(ids, raised, "each alert accepted once, in order");
    // Every refused attempt was the first alert, under the same id (retried, not re-raised).
    let refused: Vec<&Attempt> = receiver.attempts.iter().filter(|a| !a.accepted).collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|a| a.id == raised[0]), "{refused:?}");
    for (attempt, alert) in accepted.iter().zip(listed["alerts"].as_array().unwrap()) {
        assert_eq!(attempt.body["type"], "sealtrail.alert.raised");
        assert_eq!(attempt.body["data"]["tenant"], "hooked");
        assert_eq!(&attempt.body["data"]["alert"], alert);
    }
    assert_eq!(
        accepted[0].body["data"]["alert"]["key"], "actor=dr-kim",
        "{:?}",
        accepted[0].body
    );
    // The configuration record in `_system` names the webhook, never its secret.
    let records: Vec<String> = app
        .entries("_system")
        .iter()
        .map(|e| String::from_utf8(e.clone()).unwrap())
        .filter(|e| e.contains("sealtrail.config.changed"))
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r.contains("\"webhooks\"") && r.contains("siem")),
        "{records:?}"
    );
    let key = SECRET.strip_prefix("whsec_").unwrap();
    assert!(records.iter().all(|r| !r.contains(key)), "{records:?}");
    app.stop().await;
}

#[test]
fn a_webhook_that_cannot_be_used_is_refused_naming_the_setting_and_never_the_secret() {
    let def = |url: &str, secret: &str, severity: Option<&str>| WebhookDef {
        name: "siem".into(),
        url: url.into(),
        secret: Some(secret.into()),
        secret_file: None,
        tenants: Vec::new(),
        min_severity: severity.map(str::to_string),
    };
    for (webhook, setting) in [
        (def("ftp://example.test/x", SECRET, None), "url"),
        (def("not a url", SECRET, None), "url"),
        (
            def("https://example.test/x", "hunter2-not-whsec", None),
            "secret",
        ),
        (
            def("https://example.test/x", SECRET, Some("loud")),
            "min_severity",
        ),
    ] {
        let error = webhook.compile().unwrap_err();
        assert_eq!(error.setting, setting, "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
    let good = def("https://siem.example.test/hooks", SECRET, Some("critical"))
        .compile()
        .unwrap();
    assert!(!format!("{good:?}").contains("c2VhbHRy"), "{good:?}");
}
