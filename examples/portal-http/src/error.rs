//! [`ApiError`]: a [`PortalError`] plus what only the HTTP edge knows (a `Retry-After`),
//! rendered as an RFC 9457 `application/problem+json` body through
//! [`PortalError::to_problem`], so the HTTP status and retryability come from the one
//! catalog in `portal_core::error`.

use std::time::Duration;

use portal_core::error::Problem;
use portal_core::ids::{ParseIdError, RequestId};
use portal_core::{ErrorCode, PortalError};
use serde::de::DeserializeOwned;

/// The error every operation of [`Api`](crate::Api) returns.
///
/// Its [`code`](Self::code) decides the HTTP status ([`ErrorCode::http_status`]); render
/// it with [`to_problem`](Self::to_problem) and send [`retry_after`](Self::retry_after)
/// as a `Retry-After` header when there is one.
#[derive(Debug)]
pub struct ApiError {
    error: PortalError,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from(PortalError::new(code, message))
    }

    /// `validation.invalid_field` naming the offending `param`.
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::from(PortalError::invalid_field(param, message))
    }

    /// `auth.unauthenticated`: the request needs credentials and came without any.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "this operation needs a session cookie or an `Authorization: Bearer` token",
        )
    }

    /// `rate_limit.exceeded`, to be retried after `wait`.
    pub fn rate_limited(wait: Duration) -> Self {
        Self {
            error: PortalError::new(
                ErrorCode::RateLimited,
                "too many requests of this kind from this source or for this address; retry after `Retry-After` seconds",
            ),
            retry_after: Some(wait),
        }
    }

    /// The same error with a `Retry-After` of `wait`.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.error.code()
    }

    /// The HTTP status of the code.
    pub fn status(&self) -> u16 {
        self.error.code().http_status()
    }

    /// The underlying error.
    pub fn portal_error(&self) -> &PortalError {
        &self.error
    }

    /// Whole seconds to wait before retrying (rounded up, at least 1), for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after.map(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            secs.max(1)
        })
    }

    /// The problem body for request `request_id`, with `instance` (the request path) when
    /// known.
    pub fn to_problem(&self, request_id: RequestId, instance: Option<&str>) -> Problem {
        let mut problem = self.error.to_problem(request_id);
        problem.instance = instance.map(str::to_owned);
        if let Some(secs) = self.retry_after() {
            problem
                .extensions
                .insert("retry_after".to_owned(), serde_json::Value::from(secs));
        }
        problem
    }

    /// The problem body serialized (never fails: a [`Problem`] is plain data).
    pub fn to_problem_json(&self, request_id: RequestId, instance: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&self.to_problem(request_id, instance)).unwrap_or_default()
    }
}

/// The `Retry-After` of a `service.busy` answer: the hashing slots free up within about
/// one hash, so one second is plenty.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<portal_core::store::StoreError> for ApiError {
    /// The store's error as the portal reports it (`storage.*`, or the conflict's code).
    fn from(error: portal_core::store::StoreError) -> Self {
        PortalError::from(error).into()
    }
}

impl From<PortalError> for ApiError {
    /// The error as it is; `service.busy` gets a `Retry-After` of one second.
    fn from(error: PortalError) -> Self {
        let retry_after = (error.code() == ErrorCode::ServiceBusy).then_some(BUSY_RETRY_AFTER);
        Self { error, retry_after }
    }
}

impl From<ParseIdError> for ApiError {
    fn from(err: ParseIdError) -> Self {
        Self::from(PortalError::from(err))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error.code(), self.error.message())
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Whether `content_type` is JSON (`application/json` or any `application/*+json`),
/// parameters such as `charset` aside.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a JSON request body into `T`.
///
/// # Errors
///
/// - `request.unsupported_media_type` (415) unless `content_type` is JSON;
/// - `request.malformed` (400) for a body that is not JSON at all (with the line and
///   column in the message), or not a JSON object (every body of the API is one:
///   [`input`](crate::input) says why this is checked first);
/// - `validation.invalid_field` (400) naming the JSON path of a string holding a NUL,
///   which no field accepts ([`input`](crate::input));
/// - `validation.invalid_field` (400) for JSON of the wrong shape, with `param` naming
///   the failing field as a path such as `payload.subject` or `roles[1]` (a missing field
///   is named by its own path).
pub fn parse_json<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, ApiError> {
    match content_type {
        Some(ct) if is_json(ct) => {}
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON (`Content-Type: application/json`)",
            ));
        }
    }
    crate::input::check_json_body(body)?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer.end().map_err(|err| json_error(".", &err))?;
    Ok(value)
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = err.to_string();
    match err.classify() {
        Category::Data => {
            let mut param = if path == "." { String::new() } else { path.to_owned() };
            if let Some(field) = missing_field(&message) {
                if !param.is_empty() {
                    param.push('.');
                }
                param.push_str(field);
            }
            if param.is_empty() {
                ApiError::new(
                    ErrorCode::MalformedRequest,
                    format!("the request body is malformed: {message}"),
                )
            } else {
                ApiError::invalid_field(param.clone(), format!("`{param}`: {message}"))
            }
        }
        Category::Syntax | Category::Eof | Category::Io => {
            let mut error = PortalError::new(
                ErrorCode::MalformedRequest,
                format!("the request body is not valid JSON: {message}"),
            );
            if path != "." && !path.is_empty() {
                error = error.with_param(path);
            }
            ApiError::from(error)
        }
    }
}

/// The field named by serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only parsed")]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only parsed")]
    struct Inner {
        count: u32,
    }

    fn param(err: &ApiError) -> Option<&str> {
        err.portal_error().param()
    }

    #[test]
    fn a_wrong_type_names_its_path() {
        let err = parse_json::<Outer>(Some("application/json"), br#"{"name":"a","inner":{"count":"x"}}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidField);
        assert_eq!(param(&err), Some("inner.count"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Outer>(Some("application/json"), br#"{"inner":{"count":1}}"#).unwrap_err();
        assert_eq!(param(&err), Some("name"));
        let err = parse_json::<Outer>(Some("application/json"), br#"{"name":"a","inner":{}}"#).unwrap_err();
        assert_eq!(param(&err), Some("inner.count"));
    }

    #[test]
    fn not_json_is_malformed_and_other_media_types_are_refused() {
        let err = parse_json::<Outer>(Some("application/json; charset=utf-8"), b"{oops").unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedRequest);
        let err = parse_json::<Outer>(Some("text/plain"), b"{}").unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedMediaType);
        assert_eq!(err.status(), 415);
        let err = parse_json::<Outer>(None, b"{}").unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedMediaType);
    }

    #[test]
    fn retry_after_rounds_up() {
        let err = ApiError::rate_limited(Duration::from_millis(1_200));
        assert_eq!(err.retry_after(), Some(2));
        assert_eq!(err.status(), 429);
    }
}
