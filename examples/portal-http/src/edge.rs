//! What a server's edge middleware does the same in every framework: make the request's
//! [`RequestMeta`] (the first step, so that even a refused request answers with its id),
//! open its `http.request` span, and turn a bare error status from the framework (an
//! unknown route, a wrong method, a body over the limit) into the [`ApiError`] that its
//! problem+json body ([`Response::problem`](crate::routes::Response::problem)) renders.

use std::net::IpAddr;

use portal_core::ErrorCode;
use portal_core::ids::OrgId;

use crate::api::Api;
use crate::error::ApiError;
use crate::request::{REQUEST_ID_HEADER, RequestMeta};

/// The request's metadata from its headers (`header` reads one by its lower-case name:
/// `x-request-id`, `traceparent`, `tracestate`, `user-agent`), its `X-Forwarded-For` values in order, and
/// its TCP peer: the source is the peer, or the client behind one of
/// [`HttpConfig::trusted_proxies`](crate::HttpConfig::trusted_proxies) (`local` without a
/// peer, as in tests).
pub fn request_meta<'h>(
    api: &Api,
    header: impl Fn(&str) -> Option<&'h str>,
    forwarded_for: impl IntoIterator<Item = &'h str>,
    peer: Option<IpAddr>,
) -> RequestMeta {
    let source = api.config().trusted_proxies.client_address(peer, forwarded_for);
    let mut meta = api.request_meta(
        header(REQUEST_ID_HEADER),
        header("traceparent"),
        header("tracestate"),
        source,
    );
    meta.user_agent = header("user-agent").map(str::to_owned);
    meta
}

/// The span a request runs in: `http.request` with its id, the client's id for it, trace
/// id, method, path and, for a `/v1/orgs/{org_id}/…` path, the org.
pub fn request_span(meta: &RequestMeta, method: &str, path: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        request_id = %meta.request_id(),
        client_request_id = meta.client_request_id().map(|id| id.as_str()),
        trace_id = meta.trace().map(|t| t.trace_id()),
        org = tracing::field::Empty,
        method = %method,
        path = %path,
    );
    if let Some(org) = org_in_path(path) {
        span.record("org", tracing::field::display(org));
    }
    span
}

/// The org a `/v1/orgs/{org_id}/…` path names, if it is a valid org id.
fn org_in_path(path: &str) -> Option<OrgId> {
    path.strip_prefix("/v1/orgs/")?.split('/').next()?.parse().ok()
}

/// `route.not_found`, the answer of a path no route has.
pub fn not_found() -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, "no such route")
}

/// The [`ApiError`] a response of the framework or a layer stands for: `None` for a
/// success or a response already problem+json or a SCIM error (`application/scim+json`,
/// what the `/scim/v2` routes answer: [`routes::scim`](crate::routes::scim)), otherwise by `status`
/// (`404 route.not_found`, `405 request.method_not_allowed`, `413 request.too_large`,
/// `415 request.unsupported_media_type`, another 4xx `request.malformed`, a 5xx
/// `internal.error`).
pub fn error_for_status(api: &Api, status: u16, content_type: Option<&[u8]>, path: &str) -> Option<ApiError> {
    let is_problem = content_type == Some(crate::openapi::PROBLEM_JSON.as_bytes())
        || content_type == Some(crate::routes::scim::SCIM_JSON.as_bytes());
    if is_problem || status < 400 {
        return None;
    }
    Some(match status {
        404 => ApiError::new(ErrorCode::RouteNotFound, format!("no route `{path}`")),
        405 => ApiError::new(ErrorCode::MethodNotAllowed, "the method is not allowed on this route"),
        413 => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {} bytes", api.config().body_limit),
        ),
        415 => ApiError::new(ErrorCode::UnsupportedMediaType, "the request body must be JSON"),
        400..=499 => ApiError::new(ErrorCode::MalformedRequest, "the request could not be read"),
        _ => ApiError::new(ErrorCode::Internal, "the server failed"),
    })
}

/// Whether the answer with `status` ends the connection, and so must say
/// `Connection: close`: a `413` is given before the body is read, and neither server reads
/// the rest of a body it refused, so the connection cannot carry another request (without
/// the header a keep-alive client would send its next request into a closed connection).
pub fn closes_connection(status: u16) -> bool {
    status == 413
}

/// The error of a request body that could not be read: `413 request.too_large` when the
/// framework's `status` says so, `400 request.malformed` otherwise.
pub fn unreadable_body(status: u16) -> ApiError {
    if status == 413 {
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else {
        ApiError::new(ErrorCode::MalformedRequest, "the request body could not be read")
    }
}
