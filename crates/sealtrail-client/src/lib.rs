//! # sealtrail-client
//!
//! A small async client for a sealtrail server.
//!
//! - [`Client::send`] and [`Client::send_batch`] deliver events. Every event carries an
//!   idempotency key (the event's own `idempotency_key`, or one the client generates once), and
//!   retries after a network error or a 5xx resend exactly the same request, so a retry can
//!   never create a second entry: the server answers a repeated key with the original receipt.
//! - [`Client::query`] pages through events; [`Client::checkpoint`] fetches the signed
//!   checkpoint; [`Client::verify_receipt`] proves, with `sealtrail_core` and no trust in the
//!   server, that a receipt's entry is in the log the checkpoint commits to.

#![forbid(unsafe_code)]

use std::time::Duration;

use sealtrail_core::Hash;
use sealtrail_core::checkpoint::Checkpoint;
use sealtrail_core::merkle;
use sealtrail_core::note::VerifierKey;
use serde::{Deserialize, Serialize};

/// The server's receipt for a durable entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: String,
    pub seq: u64,
    pub event_hash: String,
    pub received_at: String,
}

/// The result of [`Client::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub receipt: Receipt,
    /// True when the server had already committed this idempotency key (a retry).
    pub duplicate: bool,
}

/// One event's result in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchItem {
    pub index: usize,
    pub status: u16,
    #[serde(flatten)]
    pub receipt: Option<Receipt>,
    pub error: Option<serde_json::Value>,
}

/// A page of events from [`Client::query`].
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub events: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
}

/// Filters for [`Client::query`], as the `GET /v1/events` parameters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Query {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// Wait until this seq is indexed (read your own writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_for_seq: Option<u64>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the server refused the request ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("the server answered something unexpected: {0}")]
    Protocol(String),
    #[error("verification failed: {0}")]
    Verification(String),
}

/// A sealtrail client bound to one token (and, for operator tokens, one tenant).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    tenant: Option<String>,
    http: reqwest::Client,
    retries: u32,
}

/// Appends an idempotency key to `event` if it has none, so every retry names the same event.
fn with_idempotency_key(event: &serde_json::Value) -> Result<(serde_json::Value, String), Error> {
    let mut event = event.clone();
    let object = event
        .as_object_mut()
        .ok_or_else(|| Error::Protocol("an event must be a JSON object".into()))?;
    let key = match object.get("idempotency_key").and_then(|k| k.as_str()) {
        Some(key) => key.to_string(),
        None => {
            let key = uuid::Uuid::new_v4().to_string();
            object.insert("idempotency_key".into(), key.clone().into());
            key
        }
    };
    Ok((event, key))
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:7433`) using `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            tenant: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a default HTTP client"),
            retries: 5,
        }
    }

    /// Names the tenant for an operator (`*`) token.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Client {
        self.tenant = Some(tenant.into());
        self
    }

    /// How many times a request is retried after a network error or a 5xx (default 5).
    pub fn with_retries(mut self, retries: u32) -> Client {
        self.retries = retries;
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Tenant-ID", tenant);
        }
        request
    }

    /// Sends the request built by `build`, retrying transient failures with backoff. Each try
    /// sends the same bytes, which is what makes retries safe.
    async fn send_with_retries(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            let outcome = build().send().await;
            let retryable = match &outcome {
                Ok(response) => response.status().is_server_error(),
                Err(error) => error.is_connect() || error.is_timeout() || error.is_request(),
            };
            if !retryable || attempt >= self.retries {
                let response = outcome?;
                if response.status().is_client_error() || response.status().is_server_error() {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    return Err(Error::Refused { status, body });
                }
                return Ok(response);
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Sends one event and returns its receipt once it is durable.
    pub async fn send(&self, event: &serde_json::Value) -> Result<Sent, Error> {
        let (event, key) = with_idempotency_key(event)?;
        let response = self
            .send_with_retries(|| {
                self.request(reqwest::Method::POST, "/v1/events")
                    .header("Idempotency-Key", &key)
                    .json(&event)
            })
            .await?;
        let duplicate = response.status() == reqwest::StatusCode::OK;
        Ok(Sent {
            receipt: response.json().await?,
            duplicate,
        })
    }

    /// Sends up to 10,000 events in one request; every event gets an idempotency key first, so
    /// a retried batch commits nothing twice.
    pub async fn send_batch(&self, events: &[serde_json::Value]) -> Result<Vec<BatchItem>, Error> {
        let keyed: Vec<serde_json::Value> = events
            .iter()
            .map(|e| with_idempotency_key(e).map(|(e, _)| e))
            .collect::<Result<_, _>>()?;
        let response = self
            .send_with_retries(|| {
                self.request(reqwest::Method::POST, "/v1/events/batch")
                    .json(&keyed)
            })
            .await?;
        Ok(response.json().await?)
    }

    /// One page of events matching `query`.
    pub async fn query(&self, query: &Query) -> Result<Page, Error> {
        let response = self
            .send_with_retries(|| {
                self.request(reqwest::Method::GET, "/v1/events")
                    .query(query)
            })
            .await?;
        Ok(response.json().await?)
    }

    /// The latest signed checkpoint, as the note text.
    pub async fn checkpoint(&self) -> Result<String, Error> {
        let response = self
            .send_with_retries(|| self.request(reqwest::Method::GET, "/v1/log/checkpoint"))
            .await?;
        Ok(response.text().await?)
    }

    /// The log's verifier key as the server states it. An auditor should pin the key they
    /// were given out of band rather than trust this.
    pub async fn log_key(&self) -> Result<VerifierKey, Error> {
        let response = self
            .send_with_retries(|| self.request(reqwest::Method::GET, "/v1/log/key"))
            .await?;
        let text = response.text().await?;
        VerifierKey::parse(text.trim()).map_err(|e| Error::Protocol(format!("log key: {e}")))
    }

    /// Proves that `receipt`'s entry is in the log committed to by `signed_checkpoint`, which
    /// must verify with `key`: opens the checkpoint, fetches the inclusion proof for its size
    /// and checks it with the core. Returns the checkpoint it was proven against.
    pub async fn verify_receipt(
        &self,
        receipt: &Receipt,
        signed_checkpoint: &str,
        key: &VerifierKey,
    ) -> Result<Checkpoint, Error> {
        let checkpoint = Checkpoint::open(signed_checkpoint.as_bytes(), key)
            .map_err(|e| Error::Verification(format!("checkpoint does not verify: {e}")))?;
        if receipt.seq >= checkpoint.size {
            return Err(Error::Verification(format!(
                "the checkpoint covers {}, not yet seq {}; fetch a newer one",
                sealtrail_core::text::entries(checkpoint.size),
                receipt.seq
            )));
        }
        let path = format!(
            "/v1/log/proof/inclusion?seq={}&size={}",
            receipt.seq, checkpoint.size
        );
        let response = self
            .send_with_retries(|| self.request(reqwest::Method::GET, &path))
            .await?;
        let body: serde_json::Value = response.json().await?;
        let proof = body["proof"]
            .as_array()
            .ok_or_else(|| Error::Protocol("inclusion proof without a proof array".into()))?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|h| Hash::from_hex(h).ok())
                    .ok_or_else(|| Error::Protocol(format!("bad proof hash {h}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = Hash::from_hex(&receipt.event_hash)
            .map_err(|e| Error::Protocol(format!("receipt event_hash: {e}")))?;
        merkle::verify_inclusion(
            receipt.seq,
            checkpoint.size,
            &leaf,
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| Error::Verification(format!("inclusion proof fails: {e}")))?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_added_once_and_kept() {
        let event = serde_json::json!({"action": "a"});
        let (keyed, key) = with_idempotency_key(&event).unwrap();
        assert_eq!(keyed["idempotency_key"], key.as_str());
        let (again, same) = with_idempotency_key(&keyed).unwrap();
        assert_eq!((again, same), (keyed.clone(), key));
        assert!(with_idempotency_key(&serde_json::json!([1])).is_err());
    }
}
