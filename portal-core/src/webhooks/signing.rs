//! Standard Webhooks signatures: `v1,` and the base64 HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}` under each signing secret, space-separated.
//!
//! The tests verify what this writes with the `standardwebhooks` crate, an implementation
//! the project did not write.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::WebhookSecret;

/// The header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the Unix time of the attempt, in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// One `v1,<base64>` signature of `body` sent as message `id` at `timestamp`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.key()) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut out = String::from("v1,");
    base64::engine::general_purpose::STANDARD.encode_string(mac.finalize().into_bytes(), &mut out);
    out
}

/// The `webhook-signature` header value: one signature per secret, space-separated, in
/// the order given (the current secret first).
pub fn signature_header(secrets: &[&WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}
