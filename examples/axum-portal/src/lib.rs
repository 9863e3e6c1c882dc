//! The portal's reference server on axum: the `/v1` API of [`portal_http`] as an
//! [`axum::Router`], and `GET /openapi.json`.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-axum-portal
//! ```
//!
//! Every handler extracts, calls one [`Api`] method and renders; the contract (bodies,
//! errors, OpenAPI) lives in `portal-http`, shared with the actix-web server. What this
//! crate adds is axum's plumbing:
//!
//! - [`router`] builds the routes, a fallback answering `route.not_found`, and the
//!   layers: tracing (`tower-http`), the request body limit (`413 request.too_large`),
//!   and the edge middleware that gives every request its [`RequestMeta`] and every
//!   response its `X-Request-Id`, and renders every error as `application/problem+json`.
//! - the [`Authenticated`] extractor (bearer token or session cookie, CSRF for cookie
//!   requests that change state) and the [`JsonBody`] extractor (415 unless JSON; the
//!   failing field named).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use portal_core::ErrorCode;
use portal_core::ids::{ApiKeyId, InvitationId, OrgId, SessionId, UserId, WorkflowId};
use portal_http::dto::*;
use portal_http::proxy::FORWARDED_FOR_HEADER;
use portal_http::request::{
    self, AuthInput, CSRF_COOKIE, CSRF_HEADER, IDEMPOTENCY_KEY_HEADER, REQUEST_ID_HEADER, SESSION_COOKIE, path_id,
};
use portal_http::{
    Api, ApiError, Caller, ExportQuery, PageQuery, RequestMeta, SupportBundleQuery, TimelineQuery, WorkflowQuery,
};
use serde::de::DeserializeOwned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
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

impl From<portal_core::PortalError> for HttpError {
    fn from(err: portal_core::PortalError) -> Self {
        Self(ApiError::from(err))
    }
}

impl From<portal_core::ids::ParseIdError> for HttpError {
    fn from(err: portal_core::ids::ParseIdError) -> Self {
        Self(ApiError::from(err))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        response.extensions_mut().insert(Arc::new(self.0));
        response
    }
}

/// The result of a handler.
pub type HttpResult<T> = Result<T, HttpError>;

/// Renders `err` as the problem+json response of the request `meta`.
fn problem_response(err: &ApiError, meta: &RequestMeta, path: &str) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, err.to_problem_json(meta.request_id(), Some(path))).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(portal_http::openapi::PROBLEM_JSON),
    );
    if let Some(secs) = err.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status.is_server_error() {
        tracing::error!(code = %err.code(), error = ?err.portal_error(), "request failed");
    }
    response
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
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
    let source = api.config().trusted_proxies.client_address(
        peer,
        headers
            .get_all(FORWARDED_FOR_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let meta = api.request_meta(
        header_str(headers, REQUEST_ID_HEADER),
        header_str(headers, "traceparent"),
        header_str(headers, "tracestate"),
        source,
    );
    let path = req.uri().path().to_owned();
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
    let mut response = next.run(req).instrument(span).await;
    let error = response.extensions_mut().remove::<Arc<ApiError>>();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == portal_http::openapi::PROBLEM_JSON.as_bytes());
    if let Some(err) = error {
        response = problem_response(&err, &meta, &path);
    } else if !is_problem && (response.status().is_client_error() || response.status().is_server_error()) {
        // A status from axum or a layer (an unknown route, a wrong method, a body over
        // the limit): the same problem+json as everything else.
        let err = match response.status() {
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
        };
        let allow = response.headers().get(header::ALLOW).cloned();
        response = problem_response(&err, &meta, &path);
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&meta.request_id().to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The org a `/v1/orgs/{org_id}/…` path names, if it is a valid org id.
fn org_in_path(path: &str) -> Option<OrgId> {
    path.strip_prefix("/v1/orgs/")?.split('/').next()?.parse().ok()
}

/// The request's [`RequestMeta`], made by the edge middleware.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<RequestMeta>().cloned().map(Meta).ok_or_else(|| {
            HttpError(ApiError::new(
                ErrorCode::Internal,
                "the edge middleware is not installed",
            ))
        })
    }
}

/// An authenticated caller: `Authorization: Bearer` or the session cookie (with
/// `X-CSRF-Token` when the method changes state).
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<Api> for Authenticated {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let Meta(meta) = Meta::from_request_parts(parts, api).await?;
        let jar = CookieJar::from_headers(&parts.headers);
        let input = AuthInput {
            authorization: header_str(&parts.headers, header::AUTHORIZATION.as_str()),
            session_cookie: jar.get(SESSION_COOKIE).map(Cookie::value),
            csrf_header: header_str(&parts.headers, CSRF_HEADER),
            unsafe_method: request::is_unsafe_method(parts.method.as_str()),
            idempotency_key: header_str(&parts.headers, IDEMPOTENCY_KEY_HEADER),
        };
        Ok(Self(api.authenticate(&meta, input).await?))
    }
}

/// A JSON request body read with [`portal_http::parse_json`]: `415` unless the
/// `Content-Type` is JSON, `400` naming the failing field, `413` past the body limit.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = header_str(req.headers(), header::CONTENT_TYPE.as_str()).map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            } else {
                ApiError::new(ErrorCode::MalformedRequest, "the request body could not be read")
            }
        })?;
        Ok(Self(portal_http::parse_json(content_type.as_deref(), &bytes)?))
    }
}

/// A query string read with [`portal_http::request::parse_query`].
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RawQuery(query) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        Ok(Self(request::parse_query(query.as_deref())?))
    }
}

fn etag_header(view: &WorkflowView) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, view.etag())]
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

fn session_cookie(api: &Api, name: &'static str, value: String, http_only: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(http_only)
        .secure(api.config().cookie_secure)
        .same_site(SameSite::Lax)
        .path("/")
        .build()
}

async fn sign_in(
    State(api): State<Api>,
    Meta(meta): Meta,
    jar: CookieJar,
    JsonBody(body): JsonBody<SignInRequest>,
) -> HttpResult<(CookieJar, Json<SignInResponse>)> {
    let previous = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let signed_in = api.sign_in(&meta, body, previous.as_deref()).await?;
    Ok((new_session_cookies(&api, jar, &signed_in), Json(signed_in)))
}

async fn sign_out(
    State(api): State<Api>,
    jar: CookieJar,
    Authenticated(caller): Authenticated,
) -> HttpResult<(StatusCode, CookieJar)> {
    api.sign_out(&caller).await?;
    let expired = |name: &'static str| {
        let mut cookie = session_cookie(&api, name, String::new(), name == SESSION_COOKIE);
        cookie.make_removal();
        cookie
    };
    let jar = jar.add(expired(SESSION_COOKIE)).add(expired(CSRF_COOKIE));
    Ok((StatusCode::NO_CONTENT, jar))
}

async fn me(State(api): State<Api>, Authenticated(caller): Authenticated) -> HttpResult<Json<MeResponse>> {
    Ok(Json(api.me(&caller).await?))
}

async fn list_sessions(State(api): State<Api>, Authenticated(caller): Authenticated) -> HttpResult<Json<SessionList>> {
    Ok(Json(api.list_sessions(&caller).await?))
}

async fn revoke_session(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(session): Path<String>,
) -> HttpResult<StatusCode> {
    api.revoke_session(&caller, path_id::<SessionId>("session_id", &session)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_api_keys(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> HttpResult<Json<ApiKeyList>> {
    Ok(Json(
        api.list_api_keys(&caller, path_id::<OrgId>("org_id", &org)?).await?,
    ))
}

async fn create_api_key(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<CreateApiKeyRequest>,
) -> HttpResult<(StatusCode, Json<CreatedApiKey>)> {
    let created = api
        .create_api_key(&caller, path_id::<OrgId>("org_id", &org)?, body)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn revoke_api_key(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, key)): Path<(String, String)>,
) -> HttpResult<Json<ApiKeyView>> {
    Ok(Json(
        api.revoke_api_key(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<ApiKeyId>("key_id", &key)?,
        )
        .await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Orgs, members, invitations, roles
// ---------------------------------------------------------------------------------------

async fn list_my_orgs(State(api): State<Api>, Authenticated(caller): Authenticated) -> HttpResult<Json<MyOrgList>> {
    Ok(Json(api.list_my_orgs(&caller).await?))
}

async fn create_org(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<CreateOrgRequest>,
) -> HttpResult<(StatusCode, Json<OrgView>)> {
    Ok((StatusCode::CREATED, Json(api.create_org(&caller, body).await?)))
}

async fn get_org(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> HttpResult<Json<OrgView>> {
    Ok(Json(api.get_org(&caller, path_id::<OrgId>("org_id", &org)?).await?))
}

async fn list_members(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> HttpResult<Json<MemberList>> {
    Ok(Json(
        api.list_members(&caller, path_id::<OrgId>("org_id", &org)?, &query)
            .await?,
    ))
}

async fn remove_member(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, user)): Path<(String, String)>,
) -> HttpResult<StatusCode> {
    api.remove_member(
        &caller,
        path_id::<OrgId>("org_id", &org)?,
        path_id::<UserId>("user_id", &user)?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn assign_role(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, user)): Path<(String, String)>,
    JsonBody(body): JsonBody<AssignRoleRequest>,
) -> HttpResult<Json<MemberView>> {
    Ok(Json(
        api.assign_role(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<UserId>("user_id", &user)?,
            body,
        )
        .await?,
    ))
}

async fn unassign_role(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, user, role)): Path<(String, String, String)>,
) -> HttpResult<Json<MemberView>> {
    Ok(Json(
        api.unassign_role(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<UserId>("user_id", &user)?,
            &role,
        )
        .await?,
    ))
}

async fn list_invitations(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> HttpResult<Json<InvitationList>> {
    Ok(Json(
        api.list_invitations(&caller, path_id::<OrgId>("org_id", &org)?, &query)
            .await?,
    ))
}

async fn invite(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<InviteRequest>,
) -> HttpResult<(StatusCode, Json<CreatedInvitation>)> {
    Ok((
        StatusCode::CREATED,
        Json(api.invite(&caller, path_id::<OrgId>("org_id", &org)?, body).await?),
    ))
}

async fn revoke_invitation(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, invitation)): Path<(String, String)>,
) -> HttpResult<Json<InvitationView>> {
    let view = api
        .revoke_invitation(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<InvitationId>("invitation_id", &invitation)?,
        )
        .await?;
    Ok(Json(view))
}

async fn accept_invitation(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<AcceptInvitationRequest>,
) -> HttpResult<Json<MemberView>> {
    Ok(Json(api.accept_invitation(&caller, body).await?))
}

async fn list_roles(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> HttpResult<Json<RoleList>> {
    Ok(Json(api.list_roles(&caller, path_id::<OrgId>("org_id", &org)?).await?))
}

async fn create_role(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<RoleView>,
) -> HttpResult<(StatusCode, Json<RoleView>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            api.create_role(&caller, path_id::<OrgId>("org_id", &org)?, body)
                .await?,
        ),
    ))
}

async fn delete_role(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, role)): Path<(String, String)>,
) -> HttpResult<StatusCode> {
    api.delete_role(&caller, path_id::<OrgId>("org_id", &org)?, &role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------

async fn list_workflows(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    QueryParams(query): QueryParams<WorkflowQuery>,
) -> HttpResult<Json<WorkflowList>> {
    Ok(Json(
        api.list_workflows(&caller, path_id::<OrgId>("org_id", &org)?, &query)
            .await?,
    ))
}

async fn create_workflow(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<CreateWorkflowRequest>,
) -> HttpResult<Response> {
    let view = api
        .create_workflow(&caller, path_id::<OrgId>("org_id", &org)?, body)
        .await?;
    Ok((StatusCode::CREATED, etag_header(&view), Json(view)).into_response())
}

async fn get_workflow(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, workflow)): Path<(String, String)>,
) -> HttpResult<Response> {
    let view = api
        .get_workflow(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
        )
        .await?;
    Ok((etag_header(&view), Json(view)).into_response())
}

async fn transition_workflow(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, workflow, transition)): Path<(String, String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<TransitionRequest>,
) -> HttpResult<Response> {
    let view = api
        .transition_workflow(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
            &transition,
            header_str(&headers, header::IF_MATCH.as_str()),
            body,
        )
        .await?;
    Ok((etag_header(&view), Json(view)).into_response())
}

// ---------------------------------------------------------------------------------------
// Support triage
// ---------------------------------------------------------------------------------------

async fn request_events(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, request_id)): Path<(String, String)>,
) -> HttpResult<Json<EventList>> {
    Ok(Json(
        api.request_events(&caller, path_id::<OrgId>("org_id", &org)?, &request_id)
            .await?,
    ))
}

async fn explain_request(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, request_id)): Path<(String, String)>,
) -> HttpResult<Json<ExplanationView>> {
    Ok(Json(
        api.explain_request(&caller, path_id::<OrgId>("org_id", &org)?, &request_id)
            .await?,
    ))
}

async fn timeline(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    QueryParams(query): QueryParams<TimelineQuery>,
) -> HttpResult<Json<EventList>> {
    Ok(Json(
        api.timeline(&caller, path_id::<OrgId>("org_id", &org)?, &query).await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Org switch, workflow history and assignment, support bundle and export
// ---------------------------------------------------------------------------------------

/// The session cookie and the CSRF cookie of a new session, as sign-in sets them.
fn new_session_cookies(api: &Api, jar: CookieJar, session: &SignInResponse) -> CookieJar {
    jar.add(session_cookie(
        api,
        SESSION_COOKIE,
        session.session_token.0.clone(),
        true,
    ))
    .add(session_cookie(api, CSRF_COOKIE, session.csrf_token.clone(), false))
}

async fn switch_org(
    State(api): State<Api>,
    jar: CookieJar,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<SwitchOrgRequest>,
) -> HttpResult<(CookieJar, Json<SignInResponse>)> {
    let switched = api.switch_org(&caller, body).await?;
    Ok((new_session_cookies(&api, jar, &switched), Json(switched)))
}

async fn workflow_history(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, workflow)): Path<(String, String)>,
) -> HttpResult<Json<HistoryList>> {
    Ok(Json(
        api.workflow_history(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
        )
        .await?,
    ))
}

async fn assign_workflow(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, workflow)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AssignWorkflowRequest>,
) -> HttpResult<Response> {
    let view = api
        .assign_workflow(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
            header_str(&headers, header::IF_MATCH.as_str()),
            body,
        )
        .await?;
    Ok((etag_header(&view), Json(view)).into_response())
}

async fn vote_workflow(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path((org, workflow)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<VoteRequestBody>,
) -> HttpResult<Response> {
    let view = api
        .vote_workflow(
            &caller,
            path_id::<OrgId>("org_id", &org)?,
            path_id::<WorkflowId>("workflow_id", &workflow)?,
            header_str(&headers, header::IF_MATCH.as_str()),
            body,
        )
        .await?;
    Ok((etag_header(&view), Json(view)).into_response())
}

async fn delegate_votes(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<DelegationRequest>,
) -> HttpResult<(StatusCode, Json<DelegationView>)> {
    let view = api
        .delegate_votes(&caller, path_id::<OrgId>("org_id", &org)?, body)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn support_bundle(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    QueryParams(query): QueryParams<SupportBundleQuery>,
) -> HttpResult<Json<SupportBundleView>> {
    Ok(Json(
        api.support_bundle(&caller, path_id::<OrgId>("org_id", &org)?, &query)
            .await?,
    ))
}

async fn export_events(
    State(api): State<Api>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    QueryParams(query): QueryParams<ExportQuery>,
) -> HttpResult<Response> {
    let lines = api
        .export_events(&caller, path_id::<OrgId>("org_id", &org)?, &query)
        .await?;
    Ok(([(header::CONTENT_TYPE, portal_http::openapi::JSON_LINES)], lines.body).into_response())
}

// ---------------------------------------------------------------------------------------
// The router
// ---------------------------------------------------------------------------------------

async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(portal_http::openapi::openapi_json).clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn not_found() -> HttpError {
    HttpError(ApiError::new(ErrorCode::RouteNotFound, "no such route"))
}

/// The API's routes under `/v1`, `GET /openapi.json`, and the layers (credentials
/// marked sensitive so no log shows them, tracing, the body limit of
/// [`HttpConfig::body_limit`](portal_http::HttpConfig::body_limit), the edge).
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so sign-in
/// throttling sees client addresses (the peer's or, behind one of
/// [`HttpConfig::trusted_proxies`](portal_http::HttpConfig::trusted_proxies), the
/// client's from `X-Forwarded-For`); without it (as in tests) every request's source is
/// `local`.
pub fn router(api: Api) -> Router {
    let v1 = Router::new()
        .route("/auth/sign-in", post(sign_in))
        .route("/auth/sign-out", post(sign_out))
        .route("/auth/me", get(me))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{session_id}", delete(revoke_session))
        .route("/orgs", get(list_my_orgs).post(create_org))
        .route("/orgs/{org_id}", get(get_org))
        .route("/orgs/{org_id}/members", get(list_members))
        .route("/orgs/{org_id}/members/{user_id}", delete(remove_member))
        .route("/orgs/{org_id}/members/{user_id}/roles", post(assign_role))
        .route("/orgs/{org_id}/members/{user_id}/roles/{role}", delete(unassign_role))
        .route("/orgs/{org_id}/invitations", get(list_invitations).post(invite))
        .route("/orgs/{org_id}/invitations/{invitation_id}", delete(revoke_invitation))
        .route("/invitations/accept", post(accept_invitation))
        .route("/orgs/{org_id}/roles", get(list_roles).post(create_role))
        .route("/orgs/{org_id}/roles/{role}", delete(delete_role))
        .route("/orgs/{org_id}/api-keys", get(list_api_keys).post(create_api_key))
        .route("/orgs/{org_id}/api-keys/{key_id}", delete(revoke_api_key))
        .route("/orgs/{org_id}/workflows", get(list_workflows).post(create_workflow))
        .route("/orgs/{org_id}/workflows/{workflow_id}", get(get_workflow))
        .route(
            "/orgs/{org_id}/workflows/{workflow_id}/transitions/{transition}",
            post(transition_workflow),
        )
        .route("/orgs/{org_id}/diagnostics/requests/{request_id}", get(request_events))
        .route(
            "/orgs/{org_id}/diagnostics/requests/{request_id}/explain",
            get(explain_request),
        )
        .route("/orgs/{org_id}/diagnostics/timeline", get(timeline))
        .route("/auth/switch-org", post(switch_org))
        .route("/orgs/{org_id}/workflows/{workflow_id}/history", get(workflow_history))
        .route("/orgs/{org_id}/workflows/{workflow_id}/assignee", put(assign_workflow))
        .route("/orgs/{org_id}/workflows/{workflow_id}/votes", post(vote_workflow))
        .route("/orgs/{org_id}/delegations", post(delegate_votes))
        .route("/orgs/{org_id}/diagnostics/support-bundle", get(support_bundle))
        .route("/orgs/{org_id}/diagnostics/export", get(export_events));
    let body_limit = api.config().body_limit;
    Router::new()
        .nest("/v1", v1)
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
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
