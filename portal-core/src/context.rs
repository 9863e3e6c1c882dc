//! `RequestContext`: who is asking, in which org, under which request id, and when.
//!
//! Every public operation takes `&RequestContext` first. The host builds one per request
//! at its edge, after authenticating the caller, usually through
//! [`Portal::context`](crate::Portal::context) so that the time comes from the portal's
//! [`Clock`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::access::{RoleName, Scope};
use crate::error::PortalError;
use crate::ids::{IdGenerator, OrgId, RequestId};
use crate::time::Clock;

pub use crate::principal::{ParsePrincipalError, Principal, ServiceName};

/// A W3C Trace Context (`traceparent`, and `tracestate` when present).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
    state: Option<String>,
}

/// The `traceparent` header is not in the W3C format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`traceparent` is malformed: {0}")]
pub struct ParseTraceContextError(&'static str);

impl TraceContext {
    /// Parses a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`) and an optional
    /// `tracestate`. Future versions (not `ff`) are read by their first four fields, as
    /// the specification asks.
    ///
    /// # Errors
    ///
    /// [`ParseTraceContextError`] if the header is malformed or an id is all zeros.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, ParseTraceContextError> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        if parts.len() < 4 {
            return Err(ParseTraceContextError("expected four `-` separated fields"));
        }
        let version = hex_bytes::<1>(parts[0]).ok_or(ParseTraceContextError("bad version"))?;
        if version[0] == 0xff || (version[0] == 0 && parts.len() != 4) {
            return Err(ParseTraceContextError("unsupported version"));
        }
        let trace_id = hex_bytes::<16>(parts[1]).ok_or(ParseTraceContextError("bad trace id"))?;
        let parent_id = hex_bytes::<8>(parts[2]).ok_or(ParseTraceContextError("bad parent id"))?;
        let flags = hex_bytes::<1>(parts[3]).ok_or(ParseTraceContextError("bad flags"))?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(ParseTraceContextError("an id is all zeros"));
        }
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 512 && s.is_ascii())
            .map(str::to_owned);
        Ok(Self {
            trace_id,
            parent_id,
            flags,
            state,
        })
    }

    /// The trace id as 32 lowercase hex characters.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The caller's span id as 16 lowercase hex characters.
    pub fn parent_id(&self) -> String {
        hex(&self.parent_id)
    }

    /// Whether the caller sampled this trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `tracestate` header, if one came with the request.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The `traceparent` header value.
    pub fn to_traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id(), self.parent_id(), self.flags)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client-chosen key that makes a retried request safe: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `idempotency_key`) if it is empty, longer than
    /// 255 bytes, or holds characters outside visible ASCII.
    pub fn new(key: &str) -> Result<Self, PortalError> {
        if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(key.to_owned()))
        } else {
            Err(PortalError::invalid_field(
                "idempotency_key",
                "an idempotency key is 1 to 255 visible ASCII characters",
            ))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = PortalError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

/// The id a client gave its request (its `X-Request-Id`): 1 to 64 characters of ASCII
/// letters, digits, `-`, `_`, `.` and `:` (a UUID, a `req_…` id, a ULID fit).
///
/// The server always mints the request's own [`RequestId`] (Stripe's model); the
/// client's id is kept beside it, recorded on the request's events and echoed back, but
/// is never a key of the journal: two principals sending the same client id get two
/// requests that nothing joins.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientRequestId(Arc<str>);

impl ClientRequestId {
    /// The longest client request id kept.
    pub const MAX_LEN: usize = 64;

    /// Validates a client's request id; `None` if it is empty, longer than
    /// [`MAX_LEN`](Self::MAX_LEN), or holds any other character (so no client text
    /// reaches a log or a header unchecked).
    pub fn new(id: &str) -> Option<Self> {
        let id = id.trim();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':');
        ((1..=Self::MAX_LEN).contains(&id.len()) && id.bytes().all(allowed)).then(|| Self(Arc::from(id)))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ClientRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ClientRequestId {
    type Error = PortalError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value).ok_or_else(|| {
            PortalError::invalid_field(
                "client_request_id",
                "a client request id is 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `:`",
            )
        })
    }
}

impl From<ClientRequestId> for String {
    fn from(id: ClientRequestId) -> Self {
        id.0.as_ref().to_owned()
    }
}

/// Everything an operation needs to know about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    request_id: RequestId,
    client_request_id: Option<ClientRequestId>,
    trace: Option<TraceContext>,
    principal: Principal,
    real_actor: Option<Principal>,
    org: Option<OrgId>,
    idempotency_key: Option<IdempotencyKey>,
    scopes: Arc<[Scope]>,
    org_roles: Option<(OrgId, Arc<[RoleName]>)>,
    org_mfa_unmet: Option<(OrgId, bool)>,
    client_ip: Option<IpAddr>,
    user_agent: Option<Arc<str>>,
    now: OffsetDateTime,
}

impl RequestContext {
    /// Starts a context for `principal`. See [`Portal::context`](crate::Portal::context)
    /// for the usual way in.
    pub fn builder(principal: Principal) -> RequestContextBuilder {
        RequestContextBuilder {
            request_id: None,
            client_request_id: None,
            trace: None,
            principal,
            real_actor: None,
            org: None,
            idempotency_key: None,
            scopes: Arc::from(Vec::new()),
            org_roles: None,
            org_mfa_unmet: None,
            client_ip: None,
            user_agent: None,
        }
    }

    /// The request id: the one the host gave the builder (an HTTP edge mints it for every
    /// request), otherwise a new one.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The id the client gave its request, if it sent a valid one: recorded on the
    /// request's events beside [`request_id`](Self::request_id), never in its place.
    pub fn client_request_id(&self) -> Option<&ClientRequestId> {
        self.client_request_id.as_ref()
    }

    /// The caller's W3C trace context, if it sent one.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// Whose authority this request uses.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Who actually acts, when it differs from [`principal`](Self::principal): the support
    /// staff member acting for a customer. Diagnostics record both.
    pub fn real_actor(&self) -> Option<&Principal> {
        self.real_actor.as_ref()
    }

    /// The org the caller is working in, if it chose one.
    pub fn org(&self) -> Option<OrgId> {
        self.org
    }

    /// The client's address as the host's edge resolved it, if it gave one: recorded in
    /// the customer audit log's context.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// The client's `User-Agent`, if it sent a printable one (at most
    /// [`MAX_USER_AGENT`] bytes): recorded in the customer audit log's context.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The caller's idempotency key, if it sent one.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }

    /// What an API key principal may do in its org (from
    /// [`Authenticated::scopes`](crate::identity::Authenticated)); empty for every other
    /// principal. An API key's access is decided by these alone: see
    /// the [`Gate`](crate::gate::Gate).
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// [`scopes`](Self::scopes), shared: what a recorded decision about an API key keeps.
    pub fn scopes_shared(&self) -> Arc<[Scope]> {
        self.scopes.clone()
    }

    /// The time of the request, read once from the [`Clock`] when the context was built,
    /// so that every step of one operation sees the same time.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Keeps `roles` as the user principal's roles in `org` for the rest of this request
    /// (what [`roles_in`](Self::roles_in) answers), when a step before the service read
    /// them: an edge that authorizes before it parses reads them through the
    /// [`Gate`](crate::gate::Gate), and the service then neither reads the membership or the
    /// support grant again nor records the grant's use a second time. Set them only from
    /// what the gate answered for this request; they grant what they name.
    ///
    /// The gate answers roles only after the org's MFA policy let the actor in (or does
    /// not apply to them, as to support staff), so the roles kept also mark the policy as
    /// met in `org` for the rest of the request ([`mfa_unmet_in`](Self::mfa_unmet_in)).
    pub fn keep_org_roles(&mut self, org: OrgId, roles: Arc<[RoleName]>) {
        self.org_roles = Some((org, roles));
        self.org_mfa_unmet = Some((org, false));
    }

    /// The user principal's roles in `org`, if they were read for this request already
    /// (see [`RequestContextBuilder::org_roles`]); `None` for any other org or principal.
    /// Services use them instead of reading the membership again.
    pub fn roles_in(&self, org: OrgId) -> Option<&[RoleName]> {
        match (&self.principal, &self.org_roles) {
            (Principal::User(_), Some((known, roles))) if *known == org => Some(roles),
            _ => None,
        }
    }

    /// Whether `org` requires a second factor the user principal does not have, if that
    /// was read for this request already (see [`RequestContextBuilder::org_mfa_unmet`]);
    /// `None` for any other org or principal. The [`Gate`](crate::gate::Gate) enforces the
    /// org's MFA policy from it instead of reading the policy again.
    pub fn mfa_unmet_in(&self, org: OrgId) -> Option<bool> {
        match (&self.principal, self.org_mfa_unmet) {
            (Principal::User(_), Some((known, unmet))) if known == org => Some(unmet),
            _ => None,
        }
    }
}

/// Builds a [`RequestContext`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RequestContextBuilder {
    request_id: Option<RequestId>,
    client_request_id: Option<ClientRequestId>,
    trace: Option<TraceContext>,
    principal: Principal,
    real_actor: Option<Principal>,
    org: Option<OrgId>,
    idempotency_key: Option<IdempotencyKey>,
    scopes: Arc<[Scope]>,
    org_roles: Option<(OrgId, Arc<[RoleName]>)>,
    org_mfa_unmet: Option<(OrgId, bool)>,
    client_ip: Option<IpAddr>,
    user_agent: Option<Arc<str>>,
}

/// The longest `User-Agent` a [`RequestContext`] keeps; a longer one is cut at a
/// character boundary.
pub const MAX_USER_AGENT: usize = 512;

impl RequestContextBuilder {
    /// The client's address, as the host's edge resolved it (the peer, or the address a
    /// trusted proxy forwarded).
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// The client's `User-Agent` header. Control characters are dropped and the text is
    /// cut to [`MAX_USER_AGENT`] bytes; an empty result keeps none.
    pub fn user_agent(mut self, header: &str) -> Self {
        let mut text = String::with_capacity(header.len().min(MAX_USER_AGENT));
        for c in header.chars().filter(|c| !c.is_control()) {
            if text.len() + c.len_utf8() > MAX_USER_AGENT {
                break;
            }
            text.push(c);
        }
        let text = text.trim();
        self.user_agent = (!text.is_empty()).then(|| Arc::from(text));
        self
    }

    /// The scopes of the API key the request authenticated with.
    pub fn scopes(mut self, scopes: Arc<[Scope]>) -> Self {
        self.scopes = scopes;
        self
    }

    /// Uses the caller's request id instead of making one.
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Keeps the caller's `X-Request-Id` as its [`ClientRequestId`] when it is a valid
    /// one (dropped otherwise, so a client can never inject an arbitrary string into the
    /// logs); the request id itself is always the server's: a client that could choose
    /// it could file its events under another principal's request.
    pub fn request_id_header(mut self, header: Option<&str>) -> Self {
        self.client_request_id = header.and_then(ClientRequestId::new);
        self
    }

    /// The id the client gave its request, kept beside the request id.
    pub fn client_request_id(mut self, id: ClientRequestId) -> Self {
        self.client_request_id = Some(id);
        self
    }

    /// The caller's W3C trace context.
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Records that `real` acts on `principal`'s behalf.
    pub fn real_actor(mut self, real: Principal) -> Self {
        self.real_actor = Some(real);
        self
    }

    /// The org the caller works in.
    pub fn org(mut self, org: OrgId) -> Self {
        self.org = Some(org);
        self
    }

    /// The caller's idempotency key.
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// The user principal's roles in `org`, as read from the membership for this request
    /// (the session authenticator reads them when it checks the session's active org;
    /// [`Portal::context_for`](crate::Portal::context_for) passes them on). Every service
    /// this context reaches trusts them for `org` instead of reading the membership
    /// again, for the whole request: build a new context per request. Set them only from
    /// a membership read for this request; they grant what they name.
    pub fn org_roles(mut self, org: OrgId, roles: Arc<[RoleName]>) -> Self {
        self.org_roles = Some((org, roles));
        self
    }

    /// Whether `org` requires a second factor the user principal does not have, as read
    /// for this request with the membership (the session authenticator reads it in the
    /// same store call; [`Portal::context_for`](crate::Portal::context_for) passes it on).
    /// The gate trusts it for `org` for the whole request instead of reading the policy
    /// again: set it only from a read made for this request.
    pub fn org_mfa_unmet(mut self, org: OrgId, unmet: bool) -> Self {
        self.org_mfa_unmet = Some((org, unmet));
        self
    }

    /// Reads the time from `clock` and makes a request id from `ids` if none was given.
    pub fn build(self, clock: &dyn Clock, ids: &dyn IdGenerator) -> RequestContext {
        let now = clock.now();
        RequestContext {
            request_id: self.request_id.unwrap_or_else(|| RequestId::generate(ids, now)),
            client_request_id: self.client_request_id,
            trace: self.trace,
            principal: self.principal,
            real_actor: self.real_actor,
            org: self.org,
            idempotency_key: self.idempotency_key,
            scopes: self.scopes,
            client_ip: self.client_ip,
            user_agent: self.user_agent,
            org_roles: self.org_roles,
            org_mfa_unmet: self.org_mfa_unmet,
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SequentialIds;
    use crate::time::ManualClock;

    #[test]
    fn the_user_agent_is_kept_printable_and_bounded() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        let build = |agent: &str| {
            RequestContext::builder(Principal::Service(ServiceName::new("edge").unwrap()))
                .user_agent(agent)
                .build(&clock, &SequentialIds::default())
        };
        assert_eq!(build("curl/8.5\r\nX-Evil: 1").user_agent(), Some("curl/8.5X-Evil: 1"));
        let long = format!("{}é", "a".repeat(MAX_USER_AGENT - 1));
        assert_eq!(
            build(&long).user_agent(),
            Some("a".repeat(MAX_USER_AGENT - 1).as_str()),
            "cut at a character boundary within the limit"
        );
        assert_eq!(build(" \u{7} ").user_agent(), None, "nothing printable keeps none");
    }

    #[test]
    fn traceparent_round_trips() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = TraceContext::parse(header, Some("vendor=1")).unwrap();
        assert_eq!(trace.to_traceparent(), header);
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(trace.sampled());
        assert_eq!(trace.state(), Some("vendor=1"));
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_id_header_is_the_clients_id_never_the_request_id() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        let ids = SequentialIds::default();
        let svc = Principal::Service(ServiceName::new("t").unwrap());
        let ctx = RequestContext::builder(svc.clone())
            .request_id_header(Some("<script>"))
            .build(&clock, &ids);
        assert!(ctx.request_id().to_string().starts_with("req_"));
        assert_eq!(ctx.client_request_id(), None, "a malformed id is dropped");
        let theirs = ctx.request_id().to_string();
        let kept = RequestContext::builder(svc)
            .request_id_header(Some(&theirs))
            .build(&clock, &ids);
        assert_ne!(kept.request_id(), ctx.request_id(), "the server mints its own");
        assert_eq!(
            kept.client_request_id().map(ClientRequestId::as_str),
            Some(theirs.as_str())
        );
    }

    #[test]
    fn client_request_ids_are_bounded() {
        for good in [
            "3f1c2b9e-6a4d-4c1b-9f0e-7d2a5b8c9e01",
            "req_01jd5x8y6kf3w9q2m7c4t0vbnr",
            "a:b.c_d",
        ] {
            assert_eq!(ClientRequestId::new(good).map(|c| c.to_string()).as_deref(), Some(good));
        }
        for bad in ["", "has space", "<script>", "a\nb", &"k".repeat(65)] {
            assert!(ClientRequestId::new(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(IdempotencyKey::new("order-42").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new(&"k".repeat(256)).is_err());
    }
}
