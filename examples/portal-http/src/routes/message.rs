//! The neutral request and response a [`Route`](super::Route)'s handler takes and gives:
//! what an adapter reads from its framework's request, and what it writes back.
//!
//! They use the `http` crate's [`Method`], [`StatusCode`] and [`HeaderMap`] (plain types,
//! no web framework), [`Bytes`] for bodies, and a boxed [`Stream`] for a body sent in
//! chunks.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use portal_core::ErrorCode;
use portal_core::ids::ParseIdError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::Api;
use crate::error::ApiError;
use crate::request::{self, AuthInput, CSRF_HEADER, Caller, IDEMPOTENCY_KEY_HEADER, RequestMeta};

/// `application/json`, the content type of every JSON body.
pub const JSON: &str = "application/json";

/// A request as a handler sees it: what the adapter read from its framework's request,
/// after the route matched.
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path parameters the route matched, by name (`org_id`, `workflow_id`, …), their
    /// values percent-decoded.
    pub params: Vec<(String, String)>,
    /// The raw query string, without the `?`.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read whole (within [`HttpConfig::body_limit`](crate::HttpConfig::body_limit)).
    pub body: Bytes,
    /// What the adapter's edge made of the request first: its id, trace context and source
    /// (the client address, for sign-in throttling).
    pub meta: RequestMeta,
    /// The TCP peer, when the adapter knows it (the source in [`meta`](Self::meta) was
    /// derived from it and `X-Forwarded-For`).
    pub peer: Option<IpAddr>,
}

impl Request {
    /// A request with no parameters, query, headers, body or peer.
    pub fn new(method: Method, meta: RequestMeta) -> Self {
        Self {
            method,
            params: Vec::new(),
            query: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            meta,
            peer: None,
        }
    }

    /// The header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of the cookie `name` in the `Cookie` headers (percent-decoded; the last
    /// one when it comes twice).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse_encoded)
            .filter_map(Result::ok)
            .filter(|c| c.name() == name)
            .last()
            .map(|c| c.value().to_owned())
    }

    /// The path parameter `name`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` naming the parameter when it holds a NUL (`%00`, which
    /// no field accepts: [`input`](crate::input)); `internal.error` when the route has no
    /// such parameter (a bug of the route table).
    pub fn param(&self, name: &str) -> Result<&str, ApiError> {
        let value = self
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, format!("the route has no path parameter `{name}`")))?;
        crate::input::check_text(name, value)?;
        Ok(value)
    }

    /// The path parameter `name` as the id type `T` ([`request::path_id`]).
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` naming the parameter; `internal.error` as [`param`](Self::param).
    pub fn id<T>(&self, name: &str) -> Result<T, ApiError>
    where
        T: std::str::FromStr<Err = ParseIdError>,
    {
        request::path_id(name, self.param(name)?)
    }

    /// The query string as `T` ([`request::parse_query`]).
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` naming the failing parameter.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        request::parse_query(self.query.as_deref())
    }

    /// The body as JSON `T` ([`parse_json`](crate::parse_json)).
    ///
    /// # Errors
    ///
    /// `415` unless the `Content-Type` is JSON; `400` naming the failing field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        crate::parse_json(self.header(header::CONTENT_TYPE.as_str()), &self.body)
    }

    /// The `If-Match` header.
    pub fn if_match(&self) -> Option<&str> {
        self.header(header::IF_MATCH.as_str())
    }

    /// Authenticates the request ([`Api::authenticate`]) from its `Authorization` header
    /// or session cookie, its CSRF header (checked for a cookie request that changes
    /// state) and its `Idempotency-Key`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `Idempotency-Key`) for a key that is not visible
    /// ASCII text; else as [`Api::authenticate`].
    pub async fn authenticate(&self, api: &Api) -> Result<Caller, ApiError> {
        let session_cookie = self.cookie(api.config().session_cookie());
        // A key that is not text at all (obs-text bytes) is refused, not read as absent.
        let idempotency_key = match self.headers.get(IDEMPOTENCY_KEY_HEADER) {
            Some(value) => Some(value.to_str().map_err(|_| request::idempotency_key_refused())?),
            None => None,
        };
        let input = AuthInput {
            authorization: self.header(header::AUTHORIZATION.as_str()),
            session_cookie: session_cookie.as_deref(),
            csrf_header: self.header(CSRF_HEADER),
            unsafe_method: request::is_unsafe_method(self.method.as_str()),
            idempotency_key,
        };
        api.authenticate(&self.meta, input).await
    }
}

/// A body sent in chunks, as it is produced (an export read from the journal page by
/// page). An error ends the response early: its status and headers are already sent.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>;

/// A response body. Its content type is the response's `Content-Type` header.
pub enum Body {
    /// No body (`204`, or a bare status).
    Empty,
    /// A body in one piece: JSON, problem+json, JSON lines.
    Bytes(Bytes),
    /// A body in chunks.
    Stream(BodyStream),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Bytes(bytes) => f.debug_tuple("Bytes").field(bytes).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A response as a handler gives it: the adapter copies the status and headers and sends
/// the body (its edge adds `X-Request-Id`).
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers: `Content-Type`, `ETag`, `Set-Cookie` (one value per cookie),
    /// `Retry-After`, `Location`…
    pub headers: HeaderMap,
    /// The body.
    pub body: Body,
}

impl Response {
    /// A bare `status` with no body.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Body::Empty,
        }
    }

    /// `204 No Content`.
    pub fn no_content() -> Self {
        Self::new(StatusCode::NO_CONTENT)
    }

    /// `body` in one piece, as `content_type`.
    pub fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self::new(status)
            .with_header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
            .with_body(Body::Bytes(body.into()))
    }

    /// `body` in chunks, as `content_type`.
    pub fn stream(status: StatusCode, content_type: &'static str, body: BodyStream) -> Self {
        Self::new(status)
            .with_header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
            .with_body(Body::Stream(body))
    }

    /// `body` as `application/json`.
    ///
    /// # Errors
    ///
    /// `internal.error` if `body` does not serialize (a DTO never fails).
    pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Self, ApiError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|err| ApiError::new(ErrorCode::Internal, format!("the response did not serialize: {err}")))?;
        Ok(Self::bytes(status, JSON, bytes))
    }

    /// `200 OK` with `body` as `application/json`.
    ///
    /// # Errors
    ///
    /// As [`json`](Self::json).
    pub fn ok<T: Serialize>(body: &T) -> Result<Self, ApiError> {
        Self::json(StatusCode::OK, body)
    }

    /// `201 Created` with `body` as `application/json`.
    ///
    /// # Errors
    ///
    /// As [`json`](Self::json).
    pub fn created<T: Serialize>(body: &T) -> Result<Self, ApiError> {
        Self::json(StatusCode::CREATED, body)
    }

    /// The same response with the header `name: value` added (after any value it has).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The same response with `body`.
    #[must_use]
    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// `err` as the problem+json answer of the request `meta` to `path`, with
    /// `Retry-After` when `err` has one. A server error is logged with its cause (which
    /// the body never shows).
    /// Under `/scim/v2/` the answer is SCIM's error schema instead (RFC 7644 §3.12), so a
    /// SCIM client reads the edge's refusals (`413`, `415`, `405`, …) as it reads the
    /// handlers' errors.
    pub fn problem(err: &ApiError, meta: &RequestMeta, path: &str) -> Self {
        if path.starts_with(super::scim::SCIM_PREFIX) && path[super::scim::SCIM_PREFIX.len()..].starts_with('/') {
            let mut response = super::scim::error_response(err, meta.request_id());
            if let Some(secs) = err.retry_after() {
                response = response.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return response;
        }
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = %err.code(), error = ?err.portal_error(), "request failed");
        }
        let mut response = Self::bytes(
            status,
            crate::openapi::PROBLEM_JSON,
            err.to_problem_json(meta.request_id(), Some(path)),
        );
        if let Some(secs) = err.retry_after() {
            response = response.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
