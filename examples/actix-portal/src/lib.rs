//! The portal's second reference server, on actix-web: the `/v1` API of [`portal_http`]
//! behind [`actix_web::App`], with the same bodies, headers and errors as the axum one.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-actix-portal
//! ```
//!
//! It exists to show that `portal-core` and the HTTP contract in `portal-http` are free of
//! any web framework: every handler extracts, calls one [`Api`] method and renders, and
//! what this crate adds is actix-web's plumbing:
//!
//! - [`app`] builds the [`App`]: the routes of [`routes`], a default service answering
//!   `route.not_found`, the request body limit (`413 request.too_large`) and the edge
//!   middleware that gives every request its [`RequestMeta`] and every response its
//!   `X-Request-Id`, and renders every error as `application/problem+json` (with
//!   `Retry-After` when the error has one).
//! - the [`Authenticated`] extractor (bearer token or session cookie, CSRF for cookie
//!   requests that change state), the [`Meta`] extractor and the [`JsonBody`] extractor
//!   (415 unless JSON; the failing field named).
//!
//! It serves a representative part of the API (sign-in and out, switching the session's
//! org, `me`, sessions, orgs, members, workflows with `Idempotency-Key` and
//! `If-Match`/`ETag` and their history, support triage, the OpenAPI document); the other routes of the contract answer `404 route.not_found`.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::OnceLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError, web};
use portal_core::ErrorCode;
use portal_core::ids::{OrgId, SessionId, WorkflowId};
use portal_http::dto::{
    CreateOrgRequest, CreateWorkflowRequest, SignInRequest, SignInResponse, SwitchOrgRequest, TransitionRequest,
    WorkflowView,
};
use portal_http::proxy::FORWARDED_FOR_HEADER;
use portal_http::request::{
    self, AuthInput, CSRF_COOKIE, CSRF_HEADER, IDEMPOTENCY_KEY_HEADER, REQUEST_ID_HEADER, SESSION_COOKIE, path_id,
};
use portal_http::{Api, ApiError, Caller, PageQuery, RequestMeta, TimelineQuery, WorkflowQuery};
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

pub use portal_http;

/// An error on its way out: the edge middleware renders it as problem+json with the
/// request's id and path.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

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

/// The result of a handler.
pub type HttpResult = Result<HttpResponse, HttpError>;

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Renders `err` as the problem+json response of the request `meta`.
fn problem_response(err: &ApiError, meta: &RequestMeta, path: &str) -> HttpResponse {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, portal_http::openapi::PROBLEM_JSON));
    if let Some(secs) = err.retry_after() {
        response.insert_header((header::RETRY_AFTER, secs));
    }
    if status.is_server_error() {
        tracing::error!(code = %err.code(), error = ?err.portal_error(), "request failed");
    }
    response.body(err.to_problem_json(meta.request_id(), Some(path)))
}

/// The [`ApiError`] a status from actix-web stands for (an unknown method, a body over
/// the limit, a body that could not be read), unless the response is a success or
/// already problem+json.
fn error_of_status<B>(api: &Api, path: &str, response: &HttpResponse<B>) -> Option<ApiError> {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == portal_http::openapi::PROBLEM_JSON.as_bytes());
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    Some(match status {
        StatusCode::NOT_FOUND => ApiError::new(ErrorCode::RouteNotFound, format!("no route `{path}`")),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(ErrorCode::MethodNotAllowed, "the method is not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {} bytes", api.config().body_limit),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "the request body must be JSON")
        }
        status if status.is_client_error() => {
            ApiError::new(ErrorCode::MalformedRequest, "the request could not be read")
        }
        _ => ApiError::new(ErrorCode::Internal, "the server failed"),
    })
}

/// The problem response for `response`, if it is an error: the handler's [`HttpError`],
/// or one made from the status.
fn render_error<B>(api: &Api, meta: &RequestMeta, path: &str, response: &HttpResponse<B>) -> Option<HttpResponse> {
    if let Some(HttpError(err)) = response.error().and_then(|e| e.as_error::<HttpError>()) {
        return Some(problem_response(err, meta, path));
    }
    error_of_status(api, path, response).map(|err| problem_response(&err, meta, path))
}

/// A problem already rendered, for errors that reach the edge as an `Err` rather than as
/// a response.
#[derive(Debug)]
struct Rendered {
    request_id: String,
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<u64>,
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request {} failed with {}", self.request_id, self.status)
    }
}

impl ResponseError for Rendered {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, portal_http::openapi::PROBLEM_JSON));
        response.insert_header((HeaderName::from_static(REQUEST_ID_HEADER), self.request_id.clone()));
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs));
        }
        response.body(self.body.clone())
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
    let source = api.config().trusted_proxies.client_address(
        req.peer_addr().map(|addr| addr.ip()),
        headers.get_all(FORWARDED_FOR_HEADER).filter_map(|v| v.to_str().ok()),
    );
    let meta = api.request_meta(
        header_str(headers, REQUEST_ID_HEADER),
        header_str(headers, "traceparent"),
        header_str(headers, "tracestate"),
        source,
    );
    let path = req.path().to_owned();
    let span = tracing::info_span!(
        "http.request",
        request_id = %meta.request_id(),
        trace_id = meta.trace().map(|t| t.trace_id()),
        org = tracing::field::Empty,
        method = %req.method(),
        path = %path,
    );
    if let Some(org) = org_in_path(&path) {
        span.record("org", tracing::field::display(org));
    }
    req.extensions_mut().insert(meta.clone());
    let mut response = match next.call(req).instrument(span).await {
        Ok(response) => match render_error(&api, &meta, &path, response.response()) {
            Some(rendered) => response.into_response(rendered),
            None => response.map_into_boxed_body(),
        },
        Err(err) => {
            // An error from a service (not a handler): no request to answer with here,
            // so the error itself carries the rendered problem.
            let failed = HttpResponse::from_error(err);
            let fallback;
            let api_error = match failed.error().and_then(|e| e.as_error::<HttpError>()) {
                Some(HttpError(original)) => original,
                None => {
                    fallback = error_of_status(&api, &path, &failed)
                        .unwrap_or_else(|| ApiError::new(ErrorCode::Internal, "the server failed"));
                    &fallback
                }
            };
            return Err(Rendered {
                request_id: meta.request_id().to_string(),
                status: failed.status(),
                body: api_error.to_problem_json(meta.request_id(), Some(&path)),
                retry_after: api_error.retry_after(),
            }
            .into());
        }
    };
    if let Ok(value) = HeaderValue::from_str(&meta.request_id().to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

/// The org a `/v1/orgs/{org_id}/…` path names, if it is a valid org id.
fn org_in_path(path: &str) -> Option<OrgId> {
    path.strip_prefix("/v1/orgs/")?.split('/').next()?.parse().ok()
}

/// The request's [`RequestMeta`], made by the edge middleware.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl FromRequest for Meta {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<RequestMeta>().cloned().map(Meta).ok_or_else(|| {
            HttpError(ApiError::new(
                ErrorCode::Internal,
                "the edge middleware is not installed",
            ))
        }))
    }
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = Result<T, HttpError>>>>;

/// The portal's [`Api`] from the app data.
fn api_of(req: &HttpRequest) -> Result<Api, HttpError> {
    req.app_data::<web::Data<Api>>()
        .map(|data| data.get_ref().clone())
        .ok_or_else(|| HttpError(ApiError::new(ErrorCode::Internal, "the portal is not installed")))
}

/// An authenticated caller: `Authorization: Bearer` or the session cookie (with
/// `X-CSRF-Token` when the method changes state).
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = HttpError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let api = api_of(req);
        let meta = Meta::from_request(req, payload).into_inner();
        let headers = req.headers();
        let owned = |name: &str| header_str(headers, name).map(str::to_owned);
        let authorization = owned(header::AUTHORIZATION.as_str());
        let csrf_header = owned(CSRF_HEADER);
        let idempotency_key = owned(IDEMPOTENCY_KEY_HEADER);
        let session_cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let unsafe_method = request::is_unsafe_method(req.method().as_str());
        Box::pin(async move {
            let (api, Meta(meta)) = (api?, meta?);
            let input = AuthInput {
                authorization: authorization.as_deref(),
                session_cookie: session_cookie.as_deref(),
                csrf_header: csrf_header.as_deref(),
                unsafe_method,
                idempotency_key: idempotency_key.as_deref(),
            };
            Ok(Self(api.authenticate(&meta, input).await?))
        })
    }
}

/// A JSON request body read with [`portal_http::parse_json`]: `415` unless the
/// `Content-Type` is JSON, `400` naming the failing field, `413` past the body limit.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = HttpError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = header_str(req.headers(), header::CONTENT_TYPE.as_str()).map(str::to_owned);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|err| {
                if err.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
                } else {
                    ApiError::new(ErrorCode::MalformedRequest, "the request body could not be read")
                }
            })?;
            Ok(Self(portal_http::parse_json(content_type.as_deref(), &bytes)?))
        })
    }
}

/// A query string read with [`portal_http::request::parse_query`].
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequest for QueryParams<T> {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            request::parse_query(Some(req.query_string()))
                .map(Self)
                .map_err(HttpError),
        )
    }
}

fn with_etag(mut response: actix_web::HttpResponseBuilder, view: &WorkflowView) -> HttpResponse {
    response.insert_header((header::ETAG, view.etag())).json(view)
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

fn session_cookie(api: &Api, name: &'static str, value: String, http_only: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .http_only(http_only)
        .secure(api.config().cookie_secure)
        .same_site(SameSite::Lax)
        .path("/")
        .finish()
}

async fn sign_in(
    api: web::Data<Api>,
    Meta(meta): Meta,
    req: HttpRequest,
    JsonBody(body): JsonBody<SignInRequest>,
) -> HttpResult {
    let previous = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let signed_in = api.sign_in(&meta, body, previous.as_deref()).await?;
    Ok(with_session_cookies(&api, signed_in))
}

/// `200` with a new session in the body and in the session and CSRF cookies.
fn with_session_cookies(api: &Api, session: SignInResponse) -> HttpResponse {
    HttpResponse::Ok()
        .cookie(session_cookie(
            api,
            SESSION_COOKIE,
            session.session_token.0.clone(),
            true,
        ))
        .cookie(session_cookie(api, CSRF_COOKIE, session.csrf_token.clone(), false))
        .json(session)
}

async fn switch_org(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<SwitchOrgRequest>,
) -> HttpResult {
    let switched = api.switch_org(&caller, body).await?;
    Ok(with_session_cookies(&api, switched))
}

async fn sign_out(api: web::Data<Api>, Authenticated(caller): Authenticated) -> HttpResult {
    api.sign_out(&caller).await?;
    let expired = |name: &'static str| {
        let mut cookie = session_cookie(&api, name, String::new(), name == SESSION_COOKIE);
        cookie.make_removal();
        cookie
    };
    Ok(HttpResponse::NoContent()
        .cookie(expired(SESSION_COOKIE))
        .cookie(expired(CSRF_COOKIE))
        .finish())
}

async fn me(api: web::Data<Api>, Authenticated(caller): Authenticated) -> HttpResult {
    Ok(HttpResponse::Ok().json(api.me(&caller).await?))
}

async fn list_sessions(api: web::Data<Api>, Authenticated(caller): Authenticated) -> HttpResult {
    Ok(HttpResponse::Ok().json(api.list_sessions(&caller).await?))
}

async fn revoke_session(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    session: web::Path<String>,
) -> HttpResult {
    api.revoke_session(&caller, path_id::<SessionId>("session_id", &session)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------
// Orgs and members
// ---------------------------------------------------------------------------------------

async fn list_my_orgs(api: web::Data<Api>, Authenticated(caller): Authenticated) -> HttpResult {
    Ok(HttpResponse::Ok().json(api.list_my_orgs(&caller).await?))
}

async fn create_org(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<CreateOrgRequest>,
) -> HttpResult {
    Ok(HttpResponse::Created().json(api.create_org(&caller, body).await?))
}

async fn get_org(api: web::Data<Api>, Authenticated(caller): Authenticated, org: web::Path<String>) -> HttpResult {
    Ok(HttpResponse::Ok().json(api.get_org(&caller, path_id::<OrgId>("org_id", &org)?).await?))
}

async fn list_members(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    org: web::Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> HttpResult {
    let org = path_id::<OrgId>("org_id", &org)?;
    Ok(HttpResponse::Ok().json(api.list_members(&caller, org, &query).await?))
}

// ---------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------

async fn list_workflows(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    org: web::Path<String>,
    QueryParams(query): QueryParams<WorkflowQuery>,
) -> HttpResult {
    let org = path_id::<OrgId>("org_id", &org)?;
    Ok(HttpResponse::Ok().json(api.list_workflows(&caller, org, &query).await?))
}

async fn create_workflow(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    org: web::Path<String>,
    JsonBody(body): JsonBody<CreateWorkflowRequest>,
) -> HttpResult {
    let view = api
        .create_workflow(&caller, path_id::<OrgId>("org_id", &org)?, body)
        .await?;
    Ok(with_etag(HttpResponse::Created(), &view))
}

async fn get_workflow(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> HttpResult {
    let (org, workflow) = path.into_inner();
    let view = api
        .get_workflow(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
        )
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &view))
}

async fn workflow_history(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> HttpResult {
    let (org, workflow) = path.into_inner();
    let history = api
        .workflow_history(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
        )
        .await?;
    Ok(HttpResponse::Ok().json(history))
}

async fn transition_workflow(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
    JsonBody(body): JsonBody<TransitionRequest>,
) -> HttpResult {
    let (org, workflow, transition) = path.into_inner();
    let view = api
        .transition_workflow(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
            &transition,
            header_str(req.headers(), header::IF_MATCH.as_str()),
            body,
        )
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &view))
}

// ---------------------------------------------------------------------------------------
// Support triage
// ---------------------------------------------------------------------------------------

async fn request_events(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> HttpResult {
    let (org, request_id) = path.into_inner();
    let org = path_id::<OrgId>("org_id", &org)?;
    Ok(HttpResponse::Ok().json(api.request_events(&caller, org, &request_id).await?))
}

async fn explain_request(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> HttpResult {
    let (org, request_id) = path.into_inner();
    let org = path_id::<OrgId>("org_id", &org)?;
    Ok(HttpResponse::Ok().json(api.explain_request(&caller, org, &request_id).await?))
}

async fn timeline(
    api: web::Data<Api>,
    Authenticated(caller): Authenticated,
    org: web::Path<String>,
    QueryParams(query): QueryParams<TimelineQuery>,
) -> HttpResult {
    let org = path_id::<OrgId>("org_id", &org)?;
    Ok(HttpResponse::Ok().json(api.timeline(&caller, org, &query).await?))
}

// ---------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------

async fn openapi_json() -> HttpResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(portal_http::openapi::openapi_json).clone();
    HttpResponse::Ok().content_type("application/json").body(body)
}

async fn not_found() -> HttpResult {
    Err(HttpError(ApiError::new(ErrorCode::RouteNotFound, "no such route")))
}

/// The routes: the representative part of `/v1` this server serves, and
/// `GET /openapi.json`. A path it knows answers `405 request.method_not_allowed` to
/// another method.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, post, resource};
    cfg.service(
        web::scope("/v1")
            .service(resource("/auth/sign-in").route(post().to(sign_in)))
            .service(resource("/auth/sign-out").route(post().to(sign_out)))
            .service(resource("/auth/me").route(get().to(me)))
            .service(resource("/auth/switch-org").route(post().to(switch_org)))
            .service(resource("/sessions").route(get().to(list_sessions)))
            .service(resource("/sessions/{session_id}").route(delete().to(revoke_session)))
            .service(
                resource("/orgs")
                    .route(get().to(list_my_orgs))
                    .route(post().to(create_org)),
            )
            .service(resource("/orgs/{org_id}").route(get().to(get_org)))
            .service(resource("/orgs/{org_id}/members").route(get().to(list_members)))
            .service(
                resource("/orgs/{org_id}/workflows")
                    .route(get().to(list_workflows))
                    .route(post().to(create_workflow)),
            )
            .service(resource("/orgs/{org_id}/workflows/{workflow_id}").route(get().to(get_workflow)))
            .service(resource("/orgs/{org_id}/workflows/{workflow_id}/history").route(get().to(workflow_history)))
            .service(
                resource("/orgs/{org_id}/workflows/{workflow_id}/transitions/{transition}")
                    .route(post().to(transition_workflow)),
            )
            .service(resource("/orgs/{org_id}/diagnostics/requests/{request_id}").route(get().to(request_events)))
            .service(
                resource("/orgs/{org_id}/diagnostics/requests/{request_id}/explain").route(get().to(explain_request)),
            )
            .service(resource("/orgs/{org_id}/diagnostics/timeline").route(get().to(timeline))),
    )
    .service(resource("/openapi.json").route(get().to(openapi_json)));
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
        .default_service(web::to(not_found))
        .wrap(from_fn(edge))
}
