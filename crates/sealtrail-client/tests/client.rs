//! The client against a real sealtrail server on a random port.

use std::time::Duration;

use sealtrail_client::{Client, Query};
use sealtrail_server::app::Application;
use sealtrail_server::config::Settings;

struct Server {
    base: String,
    ledger: sealtrail_server::ledger::Ledger,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data: Some(dir.path().join("data")),
        listen: Some("127.0.0.1:0".into()),
        checkpoint_interval_ms: Some(50),
        ..Settings::default()
    };
    let app = Application::build(settings.resolve().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let ledger = app.ledger();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Server {
        base,
        ledger,
        _dir: dir,
    }
}

impl Server {
    async fn client(&self, tenant: &str, scopes: &[&str]) -> Client {
        let token = self
            .ledger
            .create_token(
                tenant,
                scopes.iter().map(|s| s.to_string()).collect(),
                "test",
            )
            .await
            .unwrap()
            .token;
        Client::new(&self.base, token)
    }
}

fn event(n: u64) -> serde_json::Value {
    serde_json::json!({
        "action": "patient.record.read",
        "outcome": "success",
        "actor": {"id": format!("u-{n}")},
        "source": {"app": "client-test", "seq": n},
    })
}

#[tokio::test]
async fn a_resent_event_or_batch_commits_nothing_twice() {
    let server = start().await;
    let client = server.client("acme", &["events:write"]).await;
    let mut keyed = event(1);
    keyed["idempotency_key"] = "order-1".into();
    let first = client.send(&keyed).await.unwrap();
    assert!(!first.duplicate);
    let again = client.send(&keyed).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt, first.receipt);

    // A batch whose events the client keyed: sending the same keyed events again (what a
    // retry after a lost response does) returns the original receipts.
    let events: Vec<_> = (2..6)
        .map(|n| {
            let mut e = event(n);
            e["idempotency_key"] = format!("batch-{n}").into();
            e
        })
        .collect();
    let items = client.send_batch(&events).await.unwrap();
    assert!(items.iter().all(|i| i.status == 201), "{items:?}");
    let retried = client.send_batch(&events).await.unwrap();
    assert!(retried.iter().all(|i| i.status == 200), "{retried:?}");
    let seqs: Vec<u64> = retried
        .iter()
        .map(|i| i.receipt.as_ref().unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

#[tokio::test]
async fn refusals_carry_the_servers_error() {
    let server = start().await;
    let client = server.client("acme", &["events:read"]).await;
    let error = client.send(&event(1)).await.unwrap_err();
    match error {
        sealtrail_client::Error::Refused { status, body } => {
            assert_eq!(status, 403);
            assert!(body.contains("events:write"), "{body}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    let unreachable = Client::new("http://127.0.0.1:9", "st_x").with_retries(1);
    assert!(matches!(
        unreachable.send(&event(1)).await,
        Err(sealtrail_client::Error::Transport(_))
    ));
}

#[tokio::test]
async fn a_receipt_is_proven_against_a_signed_checkpoint() {
    let server = start().await;
    let client = server
        .client("acme", &["events:write", "events:read", "log:read"])
        .await;
    let mut receipts = Vec::new();
    for n in 0..5 {
        receipts.push(client.send(&event(n)).await.unwrap().receipt);
    }
    let key = client.log_key().await.unwrap();
    let mut note = client.checkpoint().await.unwrap();
    for _ in 0..100 {
        let cp = sealtrail_core::checkpoint::Checkpoint::open(note.as_bytes(), &key).unwrap();
        if cp.size >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        note = client.checkpoint().await.unwrap();
    }
    for receipt in &receipts {
        let checkpoint = client.verify_receipt(receipt, &note, &key).await.unwrap();
        assert!(checkpoint.size > receipt.seq);
    }
    // A receipt whose hash was altered does not verify.
    let mut forged = receipts[2].clone();
    forged.event_hash = receipts[3].event_hash.clone();
    assert!(matches!(
        client.verify_receipt(&forged, &note, &key).await,
        Err(sealtrail_client::Error::Verification(_))
    ));

    let page = client
        .query(&Query {
            actor: Some("u-3".into()),
            wait_for_seq: Some(4),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0]["seq"], 3);
}
