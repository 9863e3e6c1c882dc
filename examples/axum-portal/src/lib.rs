//! The portal's reference server on axum: the route table of [`portal_http::routes`]
//! (the `/v1` API and `GET /openapi.json`) as an [`axum::Router`].
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-axum-portal
//! ```
//!
//! The contract (operations, bodies, errors, cookies, OpenAPI) and the handlers live in
//! `portal-http`, shared with the actix-web server. What this crate adds is axum's
//! plumbing:
//!
//! - [`router`] mounts every [`Route`] of the table with one generic handler (the axum
//!   request read into a neutral [`portal_http::routes::Request`], the route's handler
//!   called, its [`portal_http::routes::Response`] written back, a streamed body with
//!   [`Body::from_stream`]), a fallback answering `route.not_found`, and the layers:
//!   sensitive headers, tracing (`tower-http`), the request body limit
//!   (`413 request.too_large`), and the edge middleware that gives every request its
//!   [`RequestMeta`] and every response its `X-Request-Id`, and renders every error as
//!   `application/problem+json`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest as _, FromRequestParts as _, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use portal_core::ErrorCode;
use portal_http::proxy::FORWARDED_FOR_HEADER;
use portal_http::request::{CLIENT_REQUEST_ID_HEADER, CSRF_HEADER, REQUEST_ID_HEADER};
use portal_http::routes::{self, Route};
use portal_http::{Api, ApiError, RequestMeta, edge as shared};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument as _;

pub use portal_http;

pub mod pages;

/// An error on its way out: a bare status carrying the [`ApiError`], which the edge
/// middleware renders as problem+json with the request's id and path.
fn error_response(err: ApiError) -> Response {
    let status =
        axum::http::StatusCode::from_u16(err.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = status.into_response();
    response.extensions_mut().insert(Arc::new(err));
    response
}

/// A neutral response as axum's.
fn into_axum(response: routes::Response) -> Response {
    let body = match response.body {
        routes::Body::Empty => Body::empty(),
        routes::Body::Bytes(bytes) => Body::from(bytes),
        routes::Body::Stream(stream) => Body::from_stream(stream),
    };
    let mut out = Response::new(body);
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out
}

/// The edge: makes the request's [`RequestMeta`], runs the request in a span carrying its
/// id, renders errors (a handler's, or a status from the router or a layer) as
/// problem+json, and writes `X-Request-Id` on every response.
async fn edge(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let meta = shared::request_meta(
        &api,
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        headers
            .get_all(FORWARDED_FOR_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        peer,
    );
    let path = req.uri().path().to_owned();
    let span = shared::request_span(&meta, req.method().as_str(), &path);
    req.extensions_mut().insert(meta.clone());
    let mut response = next.run(req).instrument(span).await;
    let error = response.extensions_mut().remove::<Arc<ApiError>>();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    let status_error = shared::error_for_status(&api, response.status().as_u16(), content_type, &path);
    if let Some(err) = error.as_deref().or(status_error.as_ref()) {
        // A status from axum or a layer (an unknown route, a wrong method, a body over
        // the limit) keeps its `Allow`.
        let allow = response.headers().get(header::ALLOW).cloned();
        response = into_axum(routes::Response::problem(err, &meta, &path));
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    if shared::closes_connection(response.status().as_u16()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(value) = HeaderValue::from_str(&meta.request_id().to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some(value) = meta
        .client_request_id()
        .and_then(|id| HeaderValue::from_str(id.as_str()).ok())
    {
        response.headers_mut().insert(CLIENT_REQUEST_ID_HEADER, value);
    }
    response
}

/// The one handler of every route: reads the axum request into the neutral one (the
/// [`RequestMeta`] the edge made, the path parameters by name, the body within the
/// limit), calls `route`'s handler and writes its response back.
async fn serve(route: &'static Route, api: Api, req: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let meta = parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the edge middleware is not installed"))?;
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(&mut parts, &api)
        .await
        .map_err(|rejection| {
            ApiError::new(
                ErrorCode::MalformedRequest,
                format!("the path could not be read: {rejection}"),
            )
        })?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let query = parts.uri.query().map(str::to_owned);
    let method = parts.method.clone();
    let headers = std::mem::take(&mut parts.headers);
    let body = Bytes::from_request(Request::from_parts(parts, body), &api)
        .await
        .map_err(|rejection| shared::unreadable_body(rejection.status().as_u16()))?;
    let request = routes::Request {
        method,
        params,
        query,
        headers,
        body,
        meta,
        peer,
    };
    Ok(into_axum(route.call(api, request).await?))
}

/// The axum handler of the routes of one path: one method each.
fn method_router(routes: &[&'static Route]) -> MethodRouter<Api> {
    let mut router = MethodRouter::new();
    for &route in routes {
        let Ok(filter) = MethodFilter::try_from(route.method.clone()) else {
            continue;
        };
        router = router.merge(on(filter, move |State(api): State<Api>, req: Request| async move {
            serve(route, api, req).await.unwrap_or_else(error_response)
        }));
    }
    router
}

/// Every route of [`portal_http::routes`], the fallback answering `404 route.not_found`,
/// and the layers (credentials marked sensitive so no log shows them, tracing, the body
/// limit of [`HttpConfig::body_limit`](portal_http::HttpConfig::body_limit), the edge).
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so sign-in
/// throttling sees client addresses (the peer's or, behind one of
/// [`HttpConfig::trusted_proxies`](portal_http::HttpConfig::trusted_proxies), the
/// client's from `X-Forwarded-For`); without it (as in tests) every request's source is
/// `local`.
pub fn router(api: Api) -> Router {
    let mut router = Router::new();
    for resource in routes::resources() {
        router = router.route(resource.path, method_router(&resource.routes));
    }
    let body_limit = api.config().body_limit;
    router
        .fallback(|| async { error_response(shared::not_found()) })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(middleware::from_fn_with_state(api.clone(), edge))
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::HeaderName::from_static(CSRF_HEADER),
        ]))
        .with_state(api)
}

/// The reference server's whole app: the API of [`router`] and the pages of
/// [`pages::router`] (the portal in a browser, at `/`).
pub fn app(api: Api) -> Router {
    router(api.clone()).merge(pages::router(api))
}
