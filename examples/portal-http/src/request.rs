//! What a framework adapter reads from a request before calling an operation: the
//! request's metadata ([`RequestMeta`]: request id, trace, source), its credentials
//! ([`AuthInput`]), and the helpers for the headers the contract defines (`ETag` and
//! `If-Match`, the CSRF token, query strings).

use base64::Engine as _;
use portal_core::context::{ClientRequestId, RequestContextBuilder, TraceContext};
use portal_core::identity::Authenticated;
use portal_core::ids::{RequestId, SessionId};
use portal_core::{ErrorCode, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::dto::AuthVia;
use crate::error::ApiError;

/// The session cookie: the session token, `HttpOnly`, `SameSite=Lax`, `Path=/`. Its name
/// when cookies are not `Secure` (plain `http://localhost`); see [`SECURE_SESSION_COOKIE`].
pub const SESSION_COOKIE: &str = "portal_session";
/// The CSRF cookie: the session's CSRF token, readable by the page's scripts, which send
/// it back as [`CSRF_HEADER`]. Its name when cookies are not `Secure`; see
/// [`SECURE_CSRF_COOKIE`].
pub const CSRF_COOKIE: &str = "portal_csrf";
/// The session cookie's name when cookies are `Secure`: the `__Host-` prefix makes a
/// browser keep it only when set over HTTPS, with `Path=/` and no `Domain`, so neither a
/// plain-HTTP page nor a sibling subdomain can plant or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-portal_session";
/// The CSRF cookie's name when cookies are `Secure` (see [`SECURE_SESSION_COOKIE`]).
pub const SECURE_CSRF_COOKIE: &str = "__Host-portal_csrf";
/// The header a cookie-authenticated unsafe request carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The request id header. On a response: the request's id, which the server always
/// mints. On a request: the client's own id for it, kept as its
/// [`ClientRequestId`] (never the request's id).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The response header that echoes the client's valid `X-Request-Id`.
pub const CLIENT_REQUEST_ID_HEADER: &str = "x-client-request-id";
/// The idempotency key header of workflow creations and transitions.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The `param` of a refused [`IDEMPOTENCY_KEY_HEADER`], as the client wrote the header.
pub const IDEMPOTENCY_KEY_PARAM: &str = "Idempotency-Key";

/// `validation.invalid_field` (param [`IDEMPOTENCY_KEY_PARAM`]) for an `Idempotency-Key`
/// that is not 1 to 255 visible ASCII characters: refused, never ignored, on every
/// authenticated route.
pub fn idempotency_key_refused() -> ApiError {
    ApiError::invalid_field(
        IDEMPOTENCY_KEY_PARAM,
        "an `Idempotency-Key` is 1 to 255 visible ASCII characters",
    )
}

/// What is known of a request before it is authenticated: its id (always minted by the
/// server), the client's own id for it (its valid `X-Request-Id`), its W3C trace context,
/// and where it comes from.
///
/// Build it with [`Api::request_meta`](crate::Api::request_meta) as the first step of
/// every request, so that even a refused request has an id to answer with.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub(crate) request_id: RequestId,
    pub(crate) client_request_id: Option<ClientRequestId>,
    pub(crate) trace: Option<TraceContext>,
    pub(crate) source: String,
    pub(crate) user_agent: Option<String>,
}

impl RequestMeta {
    /// `builder` with the client's address (when the source is one) and `User-Agent`,
    /// which the customer audit log records in each event's context.
    pub(crate) fn client(&self, builder: RequestContextBuilder) -> RequestContextBuilder {
        let builder = match self.source.parse::<std::net::IpAddr>() {
            Ok(ip) => builder.client_ip(ip),
            Err(_) => builder,
        };
        match &self.user_agent {
            Some(agent) => builder.user_agent(agent),
            None => builder,
        }
    }

    /// The request id every response carries in `X-Request-Id` and every problem body in
    /// `request_id`.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The client's own id for the request (its valid `X-Request-Id`), which responses
    /// echo in [`CLIENT_REQUEST_ID_HEADER`] and events record; never the request's id.
    pub fn client_request_id(&self) -> Option<&ClientRequestId> {
        self.client_request_id.as_ref()
    }

    /// The caller's trace context, when it sent a valid `traceparent`.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// Where the request comes from (the client address as the adapter knows it), for
    /// sign-in throttling.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The credentials of a request, as raw header and cookie values.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthInput<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The [`SESSION_COOKIE`] value.
    pub session_cookie: Option<&'a str>,
    /// The [`CSRF_HEADER`] value.
    pub csrf_header: Option<&'a str>,
    /// Whether the method changes state (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`):
    /// a cookie-authenticated unsafe request needs the CSRF token.
    pub unsafe_method: bool,
    /// The [`IDEMPOTENCY_KEY_HEADER`] value.
    pub idempotency_key: Option<&'a str>,
}

/// Whether an HTTP method changes state (and so needs CSRF protection with cookies).
pub fn is_unsafe_method(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// An authenticated request: its context (principal, org, request id, trace, idempotency
/// key), how it authenticated, and its session token when it used one.
#[derive(Debug)]
pub struct Caller {
    pub(crate) ctx: RequestContext,
    pub(crate) authenticated: Authenticated,
    pub(crate) via: AuthVia,
    pub(crate) session_token: Option<SecretString>,
}

impl Caller {
    /// The request's context, for calling `portal-core` services directly.
    pub fn context(&self) -> &RequestContext {
        &self.ctx
    }

    /// Who authenticated, with what session, org and scopes.
    pub fn authenticated(&self) -> &Authenticated {
        &self.authenticated
    }

    /// How the request authenticated.
    pub fn via(&self) -> AuthVia {
        self.via
    }

    /// The session the request used, if any.
    pub fn session(&self) -> Option<SessionId> {
        self.authenticated.session
    }
}

/// What a bearer token is: a session token (`pss_…`), an API key (`pk_live_…`), or
/// anything else (handed to the bearer authenticator as a JWT).
pub(crate) fn bearer_token(authorization: &str) -> Result<SecretString, ApiError> {
    let (scheme, token) = authorization.trim().split_once(' ').unwrap_or((authorization, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "the `Authorization` header must be `Bearer <token>`",
        ));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// The CSRF token of a session: `base64url(SHA-256("portal-csrf:" + session token))`.
///
/// Derived from the session token, it needs no storage, changes with every new session,
/// and cannot be forged by someone who plants a cookie without knowing the session.
pub fn csrf_token_for(session_token: &SecretString) -> String {
    let mut hash = Sha256::new();
    hash.update(b"portal-csrf:");
    hash.update(session_token.expose_secret().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// Whether `header` is the CSRF token of `session_token`, compared in constant time.
pub fn csrf_matches(session_token: &SecretString, header: Option<&str>) -> bool {
    let Some(header) = header else {
        return false;
    };
    let expected = csrf_token_for(session_token);
    expected.as_bytes().ct_eq(header.trim().as_bytes()).into()
}

/// The `ETag` of a workflow instance version: `"<version>"` (a strong tag).
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The version an `If-Match` header names: one strong entity tag `"<version>"` as
/// [`etag`] writes it.
///
/// # Errors
///
/// `validation.invalid_field` (param `If-Match`) when the header is missing (a
/// transition must say which version it read), `*`, weak, a list, or not a version.
pub fn parse_if_match(header: Option<&str>) -> Result<u64, ApiError> {
    let refuse = |message: &str| ApiError::invalid_field("If-Match", message.to_owned());
    let header = header.ok_or_else(|| {
        refuse("a transition needs `If-Match` with the `ETag` of the version it read, such as `\"3\"`")
    })?;
    let tag = header.trim();
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| refuse("`If-Match` must be one strong entity tag, such as `\"3\"`"))?;
    inner
        .parse::<u64>()
        .map_err(|_| refuse("`If-Match` must carry an instance version, such as `\"3\"`"))
}

/// Parses the path parameter `param` as the id type `T`.
///
/// # Errors
///
/// `validation.invalid_field` with `param` naming the path parameter (such as `org_id`).
pub fn path_id<T>(param: &str, text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = portal_core::ids::ParseIdError>,
{
    text.parse::<T>()
        .map_err(|err| ApiError::from(portal_core::PortalError::from(err).with_param(param)))
}

/// Reads a query string (without the `?`) into `T`.
///
/// # Errors
///
/// `validation.invalid_field` with `param` naming the failing parameter (a NUL in a name
/// or value is refused: [`input`](crate::input)).
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    for (name, value) in form_urlencoded_parse(query.unwrap_or("")) {
        crate::input::check_text("query", &name)?;
        crate::input::check_text(&name, &value)?;
    }
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query.unwrap_or("")));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let param = if path == "." {
            message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("query")
                .to_owned()
        } else {
            path
        };
        ApiError::invalid_field(param.clone(), format!("query parameter `{param}`: {message}"))
    })
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn if_match_takes_one_strong_version() {
        assert_eq!(parse_if_match(Some("\"3\"")).unwrap(), 3);
        assert_eq!(parse_if_match(Some(&etag(42))).unwrap(), 42);
        for bad in [
            None,
            Some("3"),
            Some("W/\"3\""),
            Some("*"),
            Some("\"x\""),
            Some("\"1\", \"2\""),
        ] {
            let err = parse_if_match(bad).unwrap_err();
            assert_eq!(err.portal_error().param(), Some("If-Match"), "{bad:?}");
        }
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let a = SecretString::from("pss_a".to_owned());
        let b = SecretString::from("pss_b".to_owned());
        assert!(csrf_matches(&a, Some(&csrf_token_for(&a))));
        assert!(!csrf_matches(&a, Some(&csrf_token_for(&b))));
        assert!(!csrf_matches(&a, None));
        assert!(!csrf_matches(&a, Some("")));
    }

    #[test]
    fn bearer_needs_its_scheme() {
        assert_eq!(bearer_token("Bearer abc").unwrap().expose_secret(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap().expose_secret(), "abc");
        assert!(bearer_token("Basic abc").is_err());
        assert!(bearer_token("Bearer").is_err());
    }

    #[test]
    fn unsafe_methods() {
        assert!(is_unsafe_method("POST") && is_unsafe_method("DELETE") && is_unsafe_method("PUT"));
        assert!(!is_unsafe_method("GET") && !is_unsafe_method("HEAD"));
    }
}
