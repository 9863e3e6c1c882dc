//! Webhooks: an org's audit events delivered to its own systems, signed as the
//! [Standard Webhooks] specification says.
//!
//! An org registers [`WebhookEndpoint`]s (a URL, an event-type filter, a description,
//! enabled or not) through the [`WebhookService`] (`webhooks manage`, owner and admin by
//! default). Every audit event written through the outbox
//! whose action an enabled endpoint of its org subscribes to becomes a delivery **in the
//! event's own transaction** (the stores fan it out), so a change, its audit event and its
//! webhook deliveries commit together. A delivery worker (in `portal-adapters`) claims due
//! deliveries, signs them ([`signing`]) and POSTs them; the attempt log, replay and the
//! retry schedule ([`RETRY_SCHEDULE`]) are in [`WebhookStore`].
//!
//! `docs/audit-and-webhooks.md` documents the guarantees, the schedule and how a receiver
//! verifies a signature.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

mod service;
pub mod signing;
mod store;

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditAction, AuditEvent, CATALOG};
use crate::error::{ErrorCode, PortalError};
use crate::ids::{AuditEventId, OrgId, WebhookAttemptId, WebhookEndpointId, WebhookMessageId};

pub use service::{EndpointChanges, MAX_WEBHOOK_PAGE, NewEndpoint, WebhookConfig, WebhookService};
pub use store::WebhookStore;

/// The longest endpoint URL, in bytes.
pub const MAX_URL: usize = 2048;
/// The longest endpoint description, in characters.
pub const MAX_DESCRIPTION: usize = 256;
/// The most event types one endpoint's filter names.
pub const MAX_EVENT_TYPES: usize = 64;
/// The bytes of a signing secret (Standard Webhooks: 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// The prefix of a signing secret's text.
pub const SECRET_PREFIX: &str = "whsec_";
/// The longest response excerpt an attempt keeps, in bytes.
pub const MAX_EXCERPT: usize = 1024;

/// How long after an attempt the next one is due, by the number of attempts made: the
/// first attempt is made at once, then one after each delay here, with ±20% jitter (see
/// [`retry_delay`]). Nine retries over about 72 hours (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 14 h, 20 h, 20 h); after the last one fails the delivery is given up.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::seconds(5),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
    Duration::hours(5),
    Duration::hours(10),
    Duration::hours(14),
    Duration::hours(20),
    Duration::hours(20),
];

/// The delay before the attempt after `attempts` failed ones, jittered by `jitter` (a
/// value in `[0, 1)`: 0 is 20% early, 1 is 20% late), or `None` when the schedule is
/// spent and the delivery is given up.
pub fn retry_delay(attempts: u32, jitter: f64) -> Option<Duration> {
    retry_delay_in(&RETRY_SCHEDULE, attempts, jitter)
}

/// [`retry_delay`] on another schedule (a host's, or a test's in milliseconds).
pub fn retry_delay_in(schedule: &[Duration], attempts: u32, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    let base = *schedule.get(index)?;
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some(base * factor)
}

/// Which hosts an endpoint URL may name beyond the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Hosts (names or IP literals, compared case-insensitively) that may be reached over
    /// plain `http` and at private, loopback or link-local addresses. Empty by default;
    /// tests allow `127.0.0.1` explicitly.
    pub allowed_hosts: Vec<String>,
}

impl UrlPolicy {
    /// Whether `host` is one the host allowed.
    pub fn allows(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// Whether `ip` is an address webhooks never reach unless its host is allowed: loopback,
/// private, link-local, unspecified, shared (CGNAT), multicast, broadcast, documentation,
/// unique-local IPv6, and IPv4 mapped into IPv6 of any of those.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// An endpoint's URL: `https` (or `http` for an allowed host), at most [`MAX_URL`] bytes,
/// without credentials or fragment, whose host is not a forbidden address or a
/// `localhost` name unless the [`UrlPolicy`] allows it. The delivery worker checks the
/// resolved addresses again before it connects.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

fn bad_url(message: &str) -> PortalError {
    PortalError::invalid_field("url", format!("the endpoint URL {message}"))
}

impl EndpointUrl {
    /// Validates `text` under `policy`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `url`) for a URL that breaks a rule above.
    pub fn parse(text: &str, policy: &UrlPolicy) -> Result<Self, PortalError> {
        if text.len() > MAX_URL {
            return Err(bad_url("is longer than 2048 bytes"));
        }
        let url = url::Url::parse(text).map_err(|_| bad_url("is not an absolute URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad_url("must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(bad_url("must not carry a fragment"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad_url("has no host")),
        };
        let allowed = policy.allows(&host) || url.host_str().is_some_and(|h| policy.allows(h));
        match url.scheme() {
            "https" => {}
            "http" if allowed => {}
            _ => return Err(bad_url("must use https")),
        }
        if !allowed {
            let forbidden = match url.host() {
                Some(url::Host::Ipv4(ip)) => is_forbidden_ip(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => is_forbidden_ip(IpAddr::V6(ip)),
                _ => host == "localhost" || host.ends_with(".localhost") || !host.contains('.'),
            };
            if forbidden {
                return Err(bad_url("names a private, loopback or link-local host"));
            }
        }
        Ok(Self(url))
    }

    /// A URL read back from storage (validated when it was written).
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` if it is not an http(s) URL at all.
    pub fn from_stored(text: &str) -> Result<Self, PortalError> {
        let url = url::Url::parse(text).map_err(|_| bad_url("is not an absolute URL"))?;
        if matches!(url.scheme(), "http" | "https") && url.host().is_some() {
            Ok(Self(url))
        } else {
            Err(bad_url("is not an http(s) URL"))
        }
    }

    /// The URL's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as the URL names it (an IP literal without brackets).
    pub fn host(&self) -> Option<String> {
        match self.0.host()? {
            url::Host::Domain(name) => Some(name.to_ascii_lowercase()),
            url::Host::Ipv4(ip) => Some(ip.to_string()),
            url::Host::Ipv6(ip) => Some(ip.to_string()),
        }
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL may carry a token in its query; Debug shows the origin and path only.
        write!(
            f,
            "EndpointUrl({}{})",
            self.0.origin().ascii_serialization(),
            self.0.path()
        )
    }
}

/// The event types an endpoint receives: empty for every event of its org, else at most
/// [`MAX_EVENT_TYPES`] distinct actions of the catalog (or the host's own, see
/// [`WebhookConfig::extra_event_types`]), kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTypes(Vec<AuditAction>);

impl EventTypes {
    /// Validates `names` against the catalog and `extra`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field`: `event_types` for more than [`MAX_EVENT_TYPES`] names,
    /// `event_types/<i>` for a name that is not an action or not a known one.
    pub fn parse(names: &[String], extra: &[AuditAction]) -> Result<Self, PortalError> {
        if names.len() > MAX_EVENT_TYPES {
            return Err(PortalError::invalid_field(
                "event_types",
                format!("an endpoint names at most {MAX_EVENT_TYPES} event types"),
            ));
        }
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let param = format!("event_types/{i}");
            let action = AuditAction::new(name).map_err(|_| {
                PortalError::invalid_field(param.clone(), "an event type is a dotted lowercase action name")
            })?;
            let known = CATALOG.iter().any(|e| e.name == action.as_str()) || extra.contains(&action);
            if !known {
                return Err(PortalError::invalid_field(
                    param,
                    format!("`{}` is not a known event type", crate::error::shown(name)),
                ));
            }
            out.push(action);
        }
        out.sort();
        out.dedup();
        Ok(Self(out))
    }

    /// Event types read back from storage (checked as action names only: the catalog of
    /// the build that wrote them may differ).
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` for a name that is not an action.
    pub fn from_stored(names: &[String]) -> Result<Self, PortalError> {
        let mut out = names
            .iter()
            .map(|n| AuditAction::new(n))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort();
        out.dedup();
        Ok(Self(out))
    }

    /// The actions, sorted; empty means every event.
    pub fn actions(&self) -> &[AuditAction] {
        &self.0
    }

    /// The names, for storage and display.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|a| a.as_str().to_owned()).collect()
    }

    /// Whether an event of `action` goes to the endpoint.
    pub fn matches(&self, action: &AuditAction) -> bool {
        self.0.is_empty() || self.0.contains(action)
    }
}

/// A signing secret: [`SECRET_BYTES`] random bytes, shown once as `whsec_` and their
/// base64. It has to be kept (not hashed) so the server can sign; it lives in `secrecy`
/// types, never in `Debug`, logs or events.
pub struct WebhookSecret(SecretBox<[u8]>);

impl WebhookSecret {
    /// A fresh secret from the system's randomness.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|_| PortalError::new(ErrorCode::Internal, "the system random generator failed"))?;
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// Reads `whsec_<base64>` (24 to 64 bytes), as shown or as stored.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `secret`) for any other text.
    pub fn from_text(text: &SecretString) -> Result<Self, PortalError> {
        let bad = || PortalError::invalid_field("secret", "a webhook secret is `whsec_` and 24 to 64 bytes in base64");
        let body = text.expose_secret().strip_prefix(SECRET_PREFIX).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(bad());
        }
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// The `whsec_…` text: shown once to the endpoint's owner, and what stores keep.
    pub fn to_text(&self) -> SecretString {
        let mut text = String::from(SECRET_PREFIX);
        base64::engine::general_purpose::STANDARD.encode_string(self.0.expose_secret(), &mut text);
        SecretString::from(text)
    }

    /// The key bytes, for signing.
    pub(crate) fn key(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self(SecretBox::new(self.0.expose_secret().to_vec().into_boxed_slice()))
    }
}

impl PartialEq for WebhookSecret {
    /// Constant-time comparison of the key bytes.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.key().ct_eq(other.key()).into()
    }
}

impl Eq for WebhookSecret {}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// An endpoint's signing secrets: the current one, and while a rotation window is open
/// the previous one too; a delivery is signed with both, so a receiver that still holds
/// the previous secret keeps verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSecrets {
    /// The secret every delivery is signed with.
    pub current: WebhookSecret,
    /// The secret before the last rotation and until when it still signs.
    pub previous: Option<(WebhookSecret, OffsetDateTime)>,
}

impl EndpointSecrets {
    /// The secrets that sign a delivery made at `at`: the current one first.
    pub fn signing_at(&self, at: OffsetDateTime) -> Vec<&WebhookSecret> {
        let mut out = vec![&self.current];
        if let Some((previous, until)) = &self.previous
            && *until > at
        {
            out.push(previous);
        }
        out
    }
}

/// An org's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: WebhookEndpointId,
    /// The org whose events it receives.
    pub org: OrgId,
    /// Where deliveries are POSTed.
    pub url: EndpointUrl,
    /// The owner's note, at most [`MAX_DESCRIPTION`] characters.
    pub description: String,
    /// Which events it receives.
    pub event_types: EventTypes,
    /// Whether new events become deliveries (a disabled endpoint gets none, and its
    /// pending deliveries wait).
    pub enabled: bool,
    /// Its signing secrets.
    pub secrets: EndpointSecrets,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
    /// Since when every attempt failed (`None` after a success); the worker disables the
    /// endpoint when this is older than its `disable_after`.
    pub failing_since: Option<OffsetDateTime>,
}

/// The Standard Webhooks body of a message: `type`, `timestamp` and the event as `data`.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    data: &'a AuditEvent,
}

/// The message id of `event`: the same UUID, shown as `msg_…`, so every delivery and
/// retry of the event carries the same `webhook-id`.
pub fn message_id(event: AuditEventId) -> WebhookMessageId {
    WebhookMessageId::from_uuid(event.as_uuid())
}

/// The JSON body every delivery of `event` carries:
/// `{"type": action, "timestamp": occurred_at, "data": event}`.
///
/// # Errors
///
/// `internal.error` if the event does not serialize (it always does).
pub fn message_body(event: &AuditEvent) -> Result<Vec<u8>, PortalError> {
    serde_json::to_vec(&Payload {
        kind: event.action.as_str(),
        timestamp: event.occurred_at,
        data: event,
    })
    .map_err(|err| PortalError::new(ErrorCode::Internal, "a webhook body did not serialize").with_source(err))
}

/// A delivery the worker claimed: one message for one endpoint, with what it needs to
/// sign and send it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The org.
    pub org: OrgId,
    /// The endpoint.
    pub endpoint: WebhookEndpointId,
    /// The event the message carries.
    pub event: AuditEvent,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// The endpoint's URL now.
    pub url: EndpointUrl,
    /// The endpoint's secrets now.
    pub secrets: EndpointSecrets,
}

impl Delivery {
    /// The message id (`webhook-id`).
    pub fn message(&self) -> WebhookMessageId {
        message_id(self.event.id)
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered another status.
    Rejected,
    /// No answer: refused connection, timeout, forbidden address, oversized payload.
    Unreachable,
}

impl AttemptStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Rejected => "rejected",
            Self::Unreachable => "unreachable",
        }
    }

    /// The status of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "delivered" => Some(Self::Delivered),
            "rejected" => Some(Self::Rejected),
            "unreachable" => Some(Self::Unreachable),
            _ => None,
        }
    }
}

/// One attempt of the attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// Its id (the log reads in id order).
    pub id: WebhookAttemptId,
    /// The org.
    pub org: OrgId,
    /// The endpoint.
    pub endpoint: WebhookEndpointId,
    /// The message.
    pub message: WebhookMessageId,
    /// Its number for this message and endpoint.
    pub attempt: u32,
    /// When it was made.
    pub attempted_at: OffsetDateTime,
    /// How it ended.
    pub status: AttemptStatus,
    /// The HTTP status, if the receiver answered.
    pub http_status: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u32,
    /// The start of the answer's body, or the reason there was none, at most
    /// [`MAX_EXCERPT`] bytes.
    pub excerpt: String,
}

/// Cuts `text` to at most [`MAX_EXCERPT`] bytes on a character boundary.
pub fn excerpt(text: &str) -> String {
    let mut end = text.len().min(MAX_EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// It was delivered; nothing more.
    Done,
    /// It failed; try again at this time.
    RetryAt(OffsetDateTime),
    /// It failed and the schedule is spent; it waits for a replay.
    GiveUp,
}

/// Disable the endpoint with `event` if it has been failing since before `before`.
#[derive(Debug, Clone)]
pub struct DisableRule {
    /// Failing since before this time disables it.
    pub before: OffsetDateTime,
    /// The event that records it (`webhook.endpoint_disabled`), written in the same
    /// transaction when the endpoint is disabled.
    pub event: AuditEvent,
}

/// One finished attempt for [`WebhookStore::finish_attempts`]: what
/// [`WebhookStore::finish_attempt`] takes.
#[derive(Debug, Clone)]
pub struct FinishedAttempt {
    /// The attempt to record.
    pub attempt: DeliveryAttempt,
    /// Where its delivery goes next.
    pub next: NextStep,
    /// Disable its endpoint if it has been failing long enough (failures only).
    pub disable: Option<DisableRule>,
}

/// Which deliveries of an endpoint a replay queues again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// One message the endpoint was sent (or was to be sent).
    Message(WebhookMessageId),
    /// Every message of the endpoint whose event occurred in `[since, until)` and is not
    /// waiting already.
    Range {
        /// Inclusive start.
        since: OffsetDateTime,
        /// Exclusive end.
        until: OffsetDateTime,
    },
}

#[cfg(test)]
mod tests;
