//! Webhooks as the configuration defines them (`[[monitor.webhooks]]`) and the Standard
//! Webhooks signature; delivery itself is `crate::alerting::webhooks`.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// A webhook as the configuration writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDef {
    /// Names its cursor file: lowercase letters, digits and `-`.
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// `whsec_` and base64: the key the receiver checks signatures with.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret instead (its first line).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Only these tenants' alerts; default every tenant's.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// `warning` (default: every alert) or `critical`.
    #[serde(default)]
    pub min_severity: Option<String>,
}

/// A webhook ready to deliver to. Its `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    key: Vec<u8>,
    pub tenants: Vec<String>,
    pub critical_only: bool,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("tenants", &self.tenants)
            .field("critical_only", &self.critical_only)
            .finish_non_exhaustive()
    }
}

/// Why a webhook cannot be used: names it and the setting (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook {name:?}: {setting} {problem}")]
pub struct WebhookError {
    pub name: String,
    pub setting: &'static str,
    pub problem: String,
}

/// The key of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD
        .decode(secret.trim().strip_prefix("whsec_")?)
        .ok()?;
    (!key.is_empty()).then_some(key)
}

impl WebhookDef {
    /// Checks the definition and reads its secret.
    pub fn compile(&self) -> Result<Webhook, WebhookError> {
        let fail = |setting: &'static str, problem: String| WebhookError {
            name: self.name.clone(),
            setting,
            problem,
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(fail(
                "name",
                "must be 1 to 64 lowercase letters, digits and '-'".into(),
            ));
        }
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| fail("url", format!("does not read as a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(fail("url", "must be an http:// or https:// URL".into()));
        }
        let secret = match (&self.secret, &self.secret_file) {
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| fail("secret_file", format!("cannot be read: {e}")))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            _ => {
                return Err(fail(
                    "secret",
                    "or secret_file must be given, not both".into(),
                ));
            }
        };
        let key = secret_key(&secret).ok_or_else(|| {
            fail(
                "secret",
                "must be whsec_ followed by base64 (the secret itself is not shown)".into(),
            )
        })?;
        let critical_only = match self.min_severity.as_deref() {
            None | Some("warning") => false,
            Some("critical") => true,
            Some(other) => {
                return Err(fail(
                    "min_severity",
                    format!("{other:?} is not warning or critical"),
                ));
            }
        };
        Ok(Webhook {
            name: self.name.clone(),
            url: self.url.clone(),
            key,
            tenants: self.tenants.clone(),
            critical_only,
        })
    }
}

impl Webhook {
    /// The URL without what may be a secret in it (user and password, the query): what the
    /// audit record and messages about the webhook show.
    pub fn redacted_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                let had_query = url.query().is_some();
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.set_fragment(None);
                let mut text = url.to_string();
                if had_query {
                    text.push_str("?…");
                }
                text
            }
            Err(_) => "(unreadable)".to_string(),
        }
    }

    /// The key its messages are signed with.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// The `webhook-signature` value of a message: `v1,` and the base64 HMAC-SHA256, keyed with
/// the secret's key, of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_url_keeps_no_credentials() {
        let webhook = WebhookDef {
            name: "siem".into(),
            url: "https://bot:hunter2@hooks.example.test/in/T0?token=xoxb-secret#frag".into(),
            secret: Some("whsec_c2VjcmV0".into()),
            secret_file: None,
            tenants: Vec::new(),
            min_severity: None,
        }
        .compile()
        .unwrap();
        assert_eq!(webhook.redacted_url(), "https://hooks.example.test/in/T0?…");
    }

    /// The Standard Webhooks specification's example: secret, id, timestamp and payload, and
    /// the signature it gives for them.
    #[test]
    fn the_signature_is_the_specifications() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
