//! The portal's second reference server, on actix-web: the route table of
//! [`portal_http::routes`] (the whole `/v1` API and `GET /openapi.json`) behind
//! [`actix_web::App`], with the same bodies, headers and errors as the axum one.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-actix-portal
//! ```
//!
//! It exists to show that `portal-core` and the HTTP contract in `portal-http` are free of
//! any web framework: the handlers are `portal-http`'s, and what this crate adds is
//! actix-web's plumbing:
//!
//! - [`routes`] mounts every [`Route`] of the table as a `web::resource` with one generic
//!   handler (the actix request read into a neutral [`portal_http::routes::Request`],
//!   path parameters by name from `match_info`, the route's handler called, its
//!   [`portal_http::routes::Response`] written back, a streamed body with
//!   [`HttpResponseBuilder::streaming`](actix_web::HttpResponseBuilder::streaming)).
//! - [`app`] builds the [`App`]: those routes, a default service answering
//!   `route.not_found`, the request body limit (`413 request.too_large`) and the edge
//!   middleware that gives every request its [`RequestMeta`] and every response its
//!   `X-Request-Id`, and renders every error as `application/problem+json` (with
//!   `Retry-After` when the error has one).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, FromRequest as _, HttpMessage as _, HttpRequest, HttpResponse, ResponseError, web};
use portal_core::ErrorCode;
use portal_http::proxy::FORWARDED_FOR_HEADER;
use portal_http::request::{CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER};
use portal_http::routes::{self as table, Route};
use portal_http::{Api, ApiError, RequestMeta, edge as shared, http};
use tracing::Instrument as _;

pub use portal_http;

/// An error on its way out: the edge middleware renders it as problem+json with the
/// request's id and path.
#[derive(Debug)]
struct HttpError(ApiError);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A bare status: the edge middleware, which knows the request's id and path, writes
    /// the problem body.
    fn error_response(&self) -> HttpResponse<BoxBody> {
        HttpResponse::new(self.status_code())
    }
}

/// A neutral response as actix-web's (whose `http` types are another version's: headers
/// are copied by name and bytes).
fn into_actix(response: table::Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((name, value));
        }
    }
    match response.body {
        table::Body::Empty => builder.finish(),
        table::Body::Bytes(bytes) => builder.body(bytes),
        table::Body::Stream(stream) => builder.streaming(stream),
    }
}

/// The problem answer for `response`, if it is an error: the handler's [`HttpError`], or
/// one made from a status of actix-web (an unknown method, a body over the limit, a body
/// that could not be read) unless the response is a success or already problem+json.
fn problem_for<B>(api: &Api, meta: &RequestMeta, path: &str, response: &HttpResponse<B>) -> Option<table::Response> {
    if let Some(HttpError(err)) = response.error().and_then(|e| e.as_error::<HttpError>()) {
        return Some(table::Response::problem(err, meta, path));
    }
    let content_type = response.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    shared::error_for_status(api, response.status().as_u16(), content_type, path)
        .map(|err| table::Response::problem(&err, meta, path))
}

/// A problem already rendered (its status, headers with the `X-Request-Id`, and body), for
/// errors that reach the edge as an `Err` rather than as a response.
#[derive(Debug)]
struct Rendered {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: web::Bytes,
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request failed with {}", self.status)
    }
}

impl ResponseError for Rendered {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        into_actix(table::Response {
            status: self.status,
            headers: self.headers.clone(),
            body: table::Body::Bytes(self.body.clone()),
        })
    }
}

/// The edge: makes the request's [`RequestMeta`], runs the request in a span carrying its
/// id, renders errors (a handler's, or a status from actix-web) as problem+json, and
/// writes `X-Request-Id` on every response.
async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(api) = req.app_data::<web::Data<Api>>().map(|data| data.get_ref().clone()) else {
        return Err(actix_web::error::ErrorInternalServerError(
            "the portal is not installed",
        ));
    };
    let headers = req.headers();
    let meta = shared::request_meta(
        &api,
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        headers.get_all(FORWARDED_FOR_HEADER).filter_map(|v| v.to_str().ok()),
        req.peer_addr().map(|addr| addr.ip()),
    );
    let path = req.path().to_owned();
    let span = shared::request_span(&meta, req.method().as_str(), &path);
    req.extensions_mut().insert(meta.clone());
    let request_id = HeaderValue::from_str(&meta.request_id().to_string()).ok();
    let client_request_id = meta
        .client_request_id()
        .and_then(|id| HeaderValue::from_str(id.as_str()).ok());
    match next.call(req).instrument(span).await {
        Ok(response) => {
            // A 405 keeps its `Allow` under the problem body.
            let allow = response.headers().get(header::ALLOW).cloned();
            let mut response = match problem_for(&api, &meta, &path, response.response()) {
                Some(problem) => response.into_response(into_actix(problem)),
                None => response.map_into_boxed_body(),
            };
            if let Some(allow) = allow {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            if let Some(value) = request_id {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            if let Some(value) = client_request_id {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(CLIENT_REQUEST_ID_HEADER), value);
            }
            Ok(response)
        }
        Err(err) => {
            // An error from a service (not a handler): no request to answer with here,
            // so the error itself carries the rendered problem.
            let failed = HttpResponse::from_error(err);
            let mut problem = problem_for(&api, &meta, &path, &failed).unwrap_or_else(|| {
                table::Response::problem(&ApiError::new(ErrorCode::Internal, "the server failed"), &meta, &path)
            });
            if let Some(value) = request_id.and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok()) {
                problem.headers.insert(REQUEST_ID_HEADER, value);
            }
            if let Some(value) = client_request_id.and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok()) {
                problem.headers.insert(CLIENT_REQUEST_ID_HEADER, value);
            }
            let body = match problem.body {
                table::Body::Bytes(bytes) => bytes,
                table::Body::Empty | table::Body::Stream(_) => web::Bytes::new(),
            };
            Err(Rendered {
                status: problem.status,
                headers: problem.headers,
                body,
            }
            .into())
        }
    }
}

/// The portal's [`Api`] from the app data.
fn api_of(req: &HttpRequest) -> Result<Api, ApiError> {
    req.app_data::<web::Data<Api>>()
        .map(|data| data.get_ref().clone())
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the portal is not installed"))
}

/// The one handler of every route: reads the actix request into the neutral one (the
/// [`RequestMeta`] the edge made, the path parameters by name, percent-decoded, the body
/// within the limit), calls `route`'s handler and writes its response back.
async fn serve(route: &'static Route, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let api = api_of(&req)?;
    let meta = req
        .extensions()
        .get::<RequestMeta>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the edge middleware is not installed"))?;
    // The values fully percent-decoded (`match_info` leaves `%2F`, `%2B` and `%25`), in
    // the order of their names.
    let values = web::Path::<Vec<String>>::extract(&req)
        .await
        .map_err(|err| {
            ApiError::new(
                ErrorCode::MalformedRequest,
                format!("the path could not be read: {err}"),
            )
        })?
        .into_inner();
    let params = req
        .match_info()
        .iter()
        .map(|(name, _)| name.to_owned())
        .zip(values)
        .collect();
    let mut headers = http::HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let body = web::Bytes::from_request(&req, &mut payload.into_inner())
        .await
        .map_err(|err| shared::unreadable_body(err.as_response_error().status_code().as_u16()))?;
    let request = table::Request {
        method: http::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|_| ApiError::new(ErrorCode::MethodNotAllowed, "an unknown method"))?,
        params,
        query: Some(req.query_string().to_owned()).filter(|q| !q.is_empty()),
        headers,
        body,
        meta,
        peer: req.peer_addr().map(|addr| addr.ip()),
    };
    Ok(into_actix(route.call(api, request).await?))
}

/// The routes: every [`Route`] of [`portal_http::routes`], one `web::resource` a path
/// with one route a method; a path it knows answers `405 request.method_not_allowed` to
/// another method.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for resource in table::resources() {
        // RFC 9110: a 405 names the methods the path serves.
        let allow = resource
            .routes
            .iter()
            .map(|route| route.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut service = web::resource(resource.path).default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, allow))
                    .finish()
            }
        }));
        for &route in &resource.routes {
            let Ok(method) = actix_web::http::Method::from_bytes(route.method.as_str().as_bytes()) else {
                continue;
            };
            service = service.route(web::method(method).to(
                move |req: HttpRequest, payload: web::Payload| async move {
                    serve(route, req, payload).await.map_err(HttpError)
                },
            ));
        }
        cfg.service(service);
    }
}

/// The app: [`routes`] over `api`, a default service answering `404 route.not_found`,
/// the body limit of [`HttpConfig::body_limit`](portal_http::HttpConfig::body_limit),
/// and the edge middleware (request ids, problem+json for every error).
///
/// Serve it with `HttpServer::new(move || app(api.clone()))`; test it with
/// `actix_web::test::init_service(app(api))`. Sign-in throttling sees the peer's address
/// (or, behind one of [`HttpConfig::trusted_proxies`](portal_http::HttpConfig::trusted_proxies),
/// the client's from `X-Forwarded-For`); in tests (no peer) every request's source is
/// `local`.
pub fn app(
    api: Api,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = api.config().body_limit;
    App::new()
        .app_data(web::Data::new(api))
        .app_data(web::PayloadConfig::new(body_limit))
        .configure(routes)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(HttpError(shared::not_found()))
        }))
        .wrap(from_fn(edge))
}
