//! The portal in a browser: server-rendered pages at `/` over the same [`Api`] the JSON
//! routes call, so every page is authorized, validated and recorded exactly as the API.
//!
//! - Templates are [askama]'s, compiled into the binary and HTML-escaped by default
//!   (`templates/`); the stylesheet and the one small script are embedded
//!   (`assets/`, served at `/assets/…`). There is no build step besides `cargo`.
//! - Every page answers with a strict Content-Security-Policy (`default-src 'self'`, no
//!   inline script or style, `frame-ancestors 'none'`), `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
//!   `Cache-Control: no-store`, and carries `X-Request-Id` as the API does.
//! - Every form posts a `csrf` field. Signed in, it is the session's CSRF token (the
//!   API's: derived from the session token, checked in constant time by
//!   [`Api::authenticate`]); the sign-in form, before any session, uses a random token
//!   also set in a `SameSite=Strict`, `HttpOnly` cookie (double submit).
//! - The session cookies are the API's own ([`routes::set_cookie`]): `__Host-` prefixed
//!   and `Secure` unless the server is bound to loopback.
//! - An error is the API's problem (its code, message, `param` and request id) shown on
//!   the page, with a "copy for support" control; a form refused for its input is shown
//!   again with what was typed and the field named by `param` marked.
//!
//! The screens are in [`screens`] (sign-in, workflows, members, the support console),
//! [`account`] (sign-up, the email-verification link's page), [`passkeys`] (the user's
//! passkeys), [`authenticator`] (the user's authenticator app and recovery codes) and
//! [`admin`] (invitations, roles, API keys, sessions, support access, audit log, workflow
//! definitions); `docs/pages.md` describes them.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use portal_core::ErrorCode;
use portal_http::request::{REQUEST_ID_HEADER, csrf_token_for};
use portal_http::routes::{self, Jar};
use portal_http::{Api, ApiError, AuthInput, Caller, RequestMeta, edge as shared};
use secrecy::SecretString;
use subtle::ConstantTimeEq as _;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument as _;

pub mod account;
pub mod admin;
pub mod authenticator;
pub mod passkeys;
pub mod screens;
pub mod webhooks;

/// The stylesheet, embedded.
const APP_CSS: &str = include_str!("../../assets/app.css");
/// The pages' only script (the "copy for support" control, and the passkey forms of
/// sign-in: WebAuthn is the browser's to scripts only), embedded.
const APP_JS: &str = include_str!("../../assets/app.js");

/// The Content-Security-Policy of every page: only this origin's script, style, images
/// and forms; no plugin, no `<base>`, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// The sign-in form's own CSRF cookie (double submit, before there is a session), when
/// cookies are not `Secure`.
pub const SIGN_IN_CSRF_COOKIE: &str = "portal_sign_in";
/// [`SIGN_IN_CSRF_COOKIE`]'s name when cookies are `Secure`.
pub const SECURE_SIGN_IN_CSRF_COOKIE: &str = "__Host-portal_sign_in";

/// The pages and their assets as a router to merge with the API's
/// ([`crate::router`]); [`crate::app`] does.
pub fn router(api: Api) -> Router {
    let body_limit = api.config().body_limit;
    Router::new()
        .route("/", get(screens::home))
        .route("/sign-in", get(screens::sign_in_form).post(screens::sign_in))
        .route("/sign-in/mfa", post(screens::sign_in_mfa))
        .route("/sign-in/passkey", post(screens::sign_in_passkey))
        .route("/sign-in/mfa/passkey", post(screens::sign_in_mfa_passkey))
        .route("/sign-out", post(screens::sign_out))
        .route(
            "/forgot-password",
            get(screens::forgot_password_form).post(screens::forgot_password),
        )
        .route(
            "/reset-password",
            get(screens::reset_password_form).post(screens::reset_password),
        )
        .route("/sign-up", get(account::sign_up_form).post(account::sign_up))
        .route("/sign-up/complete", post(account::complete_sign_up))
        .route(
            "/verify-email",
            get(account::verify_email_form).post(account::verify_email),
        )
        .route(
            "/account/email",
            get(account::email_change_form).post(account::email_change),
        )
        .route(
            "/account/password",
            get(account::password_change_form).post(account::password_change),
        )
        .route(
            "/confirm-email-change",
            get(account::confirm_email_change_form).post(account::confirm_email_change),
        )
        .route("/account/passkeys", get(passkeys::passkeys).post(passkeys::add))
        .route("/account/passkeys/{id}/rename", post(passkeys::rename))
        .route("/account/passkeys/{id}/remove", post(passkeys::remove))
        .route("/account/authenticator", get(authenticator::authenticator))
        .route("/account/authenticator/setup", post(authenticator::setup))
        .route("/account/authenticator/confirm", post(authenticator::confirm))
        .route(
            "/account/authenticator/recovery-codes",
            post(authenticator::recovery_codes),
        )
        .route("/account/authenticator/remove", post(authenticator::remove))
        .route("/switch-org", post(screens::switch_org))
        .route("/cases", get(screens::cases))
        .route("/returns", get(screens::returns))
        .route("/quotes", get(screens::quotes))
        .route("/workflows/new", post(screens::create_workflow))
        .route("/workflows/{id}", get(screens::workflow_page))
        .route("/workflows/{id}/transitions/{name}", post(screens::transition))
        .route("/workflows/{id}/votes", post(screens::vote))
        .route("/workflows/{id}/assignee", post(screens::assign))
        .route("/members", get(screens::members))
        .route("/support", get(screens::support))
        .route("/organization", get(admin::organization).post(admin::rename_org))
        .route("/invitations", get(admin::invitations).post(admin::invite))
        .route("/invitations/{id}/revoke", post(admin::revoke_invitation))
        .route("/roles", get(admin::roles).post(admin::create_role))
        .route("/roles/{name}/edit", post(admin::update_role))
        .route("/roles/{name}/delete", post(admin::delete_role))
        .route("/api-keys", get(admin::api_keys).post(admin::create_api_key))
        .route("/api-keys/{id}/revoke", post(admin::revoke_api_key))
        .route("/sessions", get(admin::sessions))
        .route("/sessions/{id}/revoke", post(admin::revoke_session))
        .route("/support-access", get(admin::support_access).post(admin::grant_support))
        .route("/support-access/{id}/revoke", post(admin::revoke_support))
        .route("/audit", get(admin::audit))
        .route("/definitions", get(admin::definitions))
        .route("/webhooks", get(webhooks::webhooks).post(webhooks::create))
        .route("/webhooks/{id}/enabled", post(webhooks::set_enabled))
        .route("/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/webhooks/{id}/delete", post(webhooks::delete))
        .route("/webhooks/{id}/messages/{message}/replay", post(webhooks::replay))
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(middleware::from_fn_with_state(api.clone(), page_edge))
        .with_state(api)
}

/// An embedded asset, cacheable for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The pages' edge: the request's [`RequestMeta`] (as the API's edge makes it), its span,
/// and on every answer `X-Request-Id` and the security headers.
async fn page_edge(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let meta = shared::request_meta(
        &api,
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        headers
            .get_all(portal_http::proxy::FORWARDED_FOR_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        peer,
    );
    let span = shared::request_span(&meta, req.method().as_str(), req.uri().path());
    // A page opened (GET) without a session is remembered for the sign-in to return to.
    let opened = (req.method() == Method::GET)
        .then(|| req.uri().path_and_query().map(|p| p.as_str().to_owned()))
        .flatten();
    req.extensions_mut().insert(meta.clone());
    let mut response = next.run(req).instrument(span).await;
    if response.extensions().get::<SignInRequired>().is_some()
        && let Some(cookie) = opened.as_deref().and_then(|to| return_cookie(&api, Some(to)))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !out.contains_key(header::CACHE_CONTROL) {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(value) = HeaderValue::from_str(&meta.request_id().to_string()) {
        out.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A problem as a page shows it: the API's problem+json fields, and the text the
/// "copy for support" control copies (request id, org, code).
#[derive(Debug, Clone)]
pub struct ProblemView {
    /// The problem's title.
    pub title: String,
    /// Its stable code, such as `access.denied`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The field, query parameter or header it names.
    pub param: Option<String>,
    /// The request's id, for support.
    pub request_id: String,
    /// What "copy for support" copies.
    pub support_text: String,
}

impl ProblemView {
    /// `err` of the request `meta` (in `org`, when the page works in one).
    pub fn new(err: &ApiError, meta: &RequestMeta, org: Option<portal_core::ids::OrgId>) -> Self {
        let problem = err.to_problem(meta.request_id(), None);
        let request_id = problem.request_id.to_string();
        let mut support_text = format!("request {request_id}");
        if let Some(org) = org {
            support_text.push_str(&format!(" org {org}"));
        }
        support_text.push_str(&format!(" code {}", problem.code));
        Self {
            title: problem.title,
            code: problem.code.to_string(),
            message: problem.detail,
            param: problem.param,
            request_id,
            support_text,
        }
    }
}

/// One org in the switcher.
#[derive(Debug, Clone)]
pub struct NavOrg {
    /// The org's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The caller's roles there, comma-separated.
    pub roles: String,
    /// Whether it is the session's active org.
    pub active: bool,
}

/// The header of a signed-in page: who, the org switcher, the CSRF token of the session.
#[derive(Debug, Clone)]
pub struct Nav {
    /// The signed-in user's name and email.
    pub user: String,
    /// The session's active org.
    pub org: Option<portal_core::ids::OrgId>,
    /// The caller's orgs.
    pub orgs: Vec<NavOrg>,
    /// The section shown (`cases`, `members`, …), marked in the menu.
    pub current: &'static str,
    /// The session's CSRF token, which every form posts.
    pub csrf: String,
    /// Whether the caller may manage the active org's webhooks (the menu shows the
    /// screen then), decided by the gate on the roles `me` returned: no store call.
    pub webhooks: bool,
}

/// A signed-in request: the API's [`Caller`] and the page header.
pub struct Session {
    /// The caller, as the API authenticated it.
    pub caller: Caller,
    /// The header.
    pub nav: Nav,
}

impl Session {
    /// The session's active org.
    pub fn org(&self) -> Option<portal_core::ids::OrgId> {
        self.nav.org
    }
}

/// Why a page could not be shown.
pub enum PageError {
    /// Not signed in (or the session ended): go to the sign-in page.
    SignIn,
    /// The API's error, shown as a page.
    Problem(Box<PageProblem>),
}

/// The API's error as a page shows it.
pub struct PageProblem {
    /// The error.
    pub err: ApiError,
    /// The request's metadata (for its id).
    pub meta: RequestMeta,
    /// The page header, when the caller was authenticated.
    pub nav: Option<Nav>,
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    nav: Option<Nav>,
    problem: Option<ProblemView>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => {
                let mut response = see_other("/sign-in");
                response.extensions_mut().insert(SignInRequired);
                response
            }
            Self::Problem(problem) => {
                let PageProblem { err, meta, nav } = *problem;
                let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let org = nav.as_ref().and_then(|n| n.org);
                let page = ErrorPage {
                    status: status.as_u16(),
                    problem: Some(ProblemView::new(&err, &meta, org)),
                    nav,
                };
                html(status, &page)
            }
        }
    }
}

/// `303 See Other` to `to`: where a form's success goes (post, redirect, get).
pub fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `template` rendered as an HTML answer with `status`.
pub fn html<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Marks a response that sends a signed-out visitor to sign in ([`PageError::SignIn`]):
/// the pages' edge then remembers the page they opened ([`return_cookie`]).
#[derive(Debug, Clone, Copy)]
pub struct SignInRequired;

/// The cookie that holds the page a signed-out visitor opened, for the sign-in to return
/// to, when cookies are not `Secure`.
pub const RETURN_COOKIE: &str = "portal_return";
/// [`RETURN_COOKIE`]'s name when cookies are `Secure`.
pub const SECURE_RETURN_COOKIE: &str = "__Host-portal_return";
/// How long the page opened is remembered: a sign-in later than that goes home.
const RETURN_COOKIE_SECONDS: i64 = 15 * 60;

/// `to` when a sign-in may return to it: a path and query of this portal (one `/`, never
/// `//` or a backslash, which a browser would read as another host), printable ASCII, at
/// most 2,048 bytes, and not the sign-in or sign-out itself. Anything else goes home: the
/// cookie is the visitor's to forge, and must never send them to another site.
pub fn return_path(to: &str) -> Option<&str> {
    let local = to.starts_with('/') && !to.starts_with("//") && !to.contains('\\');
    let printable = to.len() <= 2048 && to.bytes().all(|b| b.is_ascii_graphic());
    let own = ["/sign-in", "/sign-out"].iter().any(|page| {
        to.strip_prefix(page)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    });
    (local && printable && !own).then_some(to)
}

/// The `Set-Cookie` that remembers the page `to` (when [`return_path`] takes it; `None`
/// clears the cookie): `HttpOnly`, `SameSite=Lax` (it must come along when the visitor
/// follows a mailed link to the page), `Path=/`, `Secure` as the session cookie, for 15
/// minutes.
pub fn return_cookie(api: &Api, to: Option<&str>) -> Option<HeaderValue> {
    let name = return_cookie_name(api);
    let value = match to {
        Some(to) => return_path(to)?.to_owned(),
        None => String::new(),
    };
    let mut cookie = cookie::Cookie::build((name, value))
        .http_only(true)
        .secure(api.config().cookie_secure)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(RETURN_COOKIE_SECONDS))
        .build();
    if to.is_none() {
        cookie.make_removal();
    }
    HeaderValue::try_from(cookie.encoded().to_string()).ok()
}

/// Where a sign-in goes: the page the request's return cookie remembers, when
/// [`return_path`] takes it, else home.
pub fn return_target(api: &Api, headers: &HeaderMap) -> String {
    cookie_of(headers, return_cookie_name(api), true)
        .and_then(|to| return_path(&to).map(str::to_owned))
        .unwrap_or_else(|| "/".to_owned())
}

/// [`RETURN_COOKIE`], or [`SECURE_RETURN_COOKIE`] when cookies are `Secure`.
fn return_cookie_name(api: &Api) -> &'static str {
    if api.config().cookie_secure {
        SECURE_RETURN_COOKIE
    } else {
        RETURN_COOKIE
    }
}

/// The value of the cookie `name` of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_of(headers, name, false)
}

/// The value of the cookie `name` of the request, percent-decoded when `encoded` (as
/// [`cookie::Cookie::encoded`] wrote it).
fn cookie_of(headers: &HeaderMap, name: &str, encoded: bool) -> Option<String> {
    let parse = if encoded {
        cookie::Cookie::split_parse_encoded
    } else {
        cookie::Cookie::split_parse
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Authenticates a page request by the session cookie, the API's way. A request that
/// changes state (`unsafe_method`) must post the session's CSRF token as `csrf`.
///
/// # Errors
///
/// [`PageError::SignIn`] without a live session; the API's errors otherwise
/// (`auth.csrf_rejected`, `storage.*`).
pub async fn session(
    api: &Api,
    meta: &RequestMeta,
    headers: &HeaderMap,
    csrf: Option<&str>,
    unsafe_method: bool,
    current: &'static str,
) -> Result<Session, PageError> {
    let Some(token) = cookie(headers, api.config().session_cookie()).filter(|t| !t.is_empty()) else {
        return Err(PageError::SignIn);
    };
    let input = AuthInput {
        authorization: None,
        session_cookie: Some(&token),
        csrf_header: csrf,
        unsafe_method,
        idempotency_key: None,
    };
    let caller = match api.authenticate(meta, input).await {
        Ok(caller) => caller,
        Err(err) if matches!(err.code(), ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials) => {
            return Err(PageError::SignIn);
        }
        Err(err) => return Err(problem(err, meta, None)),
    };
    let csrf = csrf_token_for(&SecretString::from(token));
    let me = api.me(&caller).await.map_err(|err| problem(err, meta, None))?;
    let org = caller.context().org();
    let user = match &me.user {
        Some(user) => format!("{} <{}>", user.display_name, user.email),
        None => me.principal.clone(),
    };
    let webhooks = org
        .and_then(|org| me.orgs.iter().find(|o| o.org.id == org))
        .is_some_and(|o| {
            let roles: Vec<portal_core::access::RoleName> = o
                .roles
                .iter()
                .filter_map(|r| portal_core::access::RoleName::new(r).ok())
                .collect();
            let manage = portal_core::access::permissions::WEBHOOKS_MANAGE;
            api.portal()
                .gate()
                .allows(
                    caller.context(),
                    portal_core::access::Domain::Org(o.org.id),
                    &roles,
                    manage.object,
                    manage.action,
                )
                .unwrap_or(false)
        });
    let orgs = me
        .orgs
        .iter()
        .map(|o| NavOrg {
            id: o.org.id.to_string(),
            name: o.org.name.clone(),
            roles: o.roles.join(", "),
            active: Some(o.org.id) == org,
        })
        .collect();
    Ok(Session {
        caller,
        nav: Nav {
            user,
            org,
            orgs,
            current,
            csrf,
            webhooks,
        },
    })
}

/// `err` as a page error.
pub fn problem(err: ApiError, meta: &RequestMeta, nav: Option<Nav>) -> PageError {
    PageError::Problem(Box::new(PageProblem {
        err,
        meta: meta.clone(),
        nav,
    }))
}

/// A form body (`application/x-www-form-urlencoded`) as its fields; a repeated field
/// keeps its last value.
///
/// # Errors
///
/// `validation.invalid_field` for a NUL anywhere (as every API input).
pub fn form(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::new(ErrorCode::MalformedRequest, "the form is not UTF-8"))?;
    portal_http::request::parse_query(Some(text))
}

/// A fresh random token for the sign-in form (32 bytes, base64url).
///
/// # Errors
///
/// `internal.error` when the system has no randomness to give.
pub fn random_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "no randomness for the sign-in form"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The sign-in CSRF cookie's name under the API's cookie settings.
pub fn sign_in_cookie_name(api: &Api) -> &'static str {
    if api.config().cookie_secure {
        SECURE_SIGN_IN_CSRF_COOKIE
    } else {
        SIGN_IN_CSRF_COOKIE
    }
}

/// The `Set-Cookie` of the sign-in form's CSRF token (`None` clears it): `HttpOnly`,
/// `SameSite=Strict`, `Path=/`, `Secure` as the session cookie.
pub fn sign_in_cookie(api: &Api, value: Option<&str>) -> Option<HeaderValue> {
    let mut cookie = cookie::Cookie::build((sign_in_cookie_name(api), value.unwrap_or_default().to_owned()))
        .http_only(true)
        .secure(api.config().cookie_secure)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .build();
    if value.is_none() {
        cookie.make_removal();
    }
    HeaderValue::try_from(cookie.encoded().to_string()).ok()
}

/// Whether the sign-in form's `posted` token is the one its cookie holds (constant time).
pub fn sign_in_csrf_matches(headers: &HeaderMap, api: &Api, posted: Option<&str>) -> bool {
    match (cookie(headers, sign_in_cookie_name(api)), posted) {
        (Some(expected), Some(posted)) if !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(posted.as_bytes()))
        }
        _ => false,
    }
}

/// The session and CSRF cookies of a new session (sign-in, org switch), the API's own.
///
/// # Errors
///
/// `internal.error` when a token is not a header value.
pub fn session_cookies(api: &Api, token: &str, csrf: &str) -> Result<[HeaderValue; 2], ApiError> {
    Ok([
        routes::set_cookie(api, Jar::Session, Some(token))?,
        routes::set_cookie(api, Jar::Csrf, Some(csrf))?,
    ])
}

/// The `Set-Cookie`s that end the session in the browser.
///
/// # Errors
///
/// `internal.error` (never in practice: the cleared cookies are fixed text).
pub fn cleared_cookies(api: &Api) -> Result<[HeaderValue; 2], ApiError> {
    Ok([
        routes::set_cookie(api, Jar::Session, None)?,
        routes::set_cookie(api, Jar::Csrf, None)?,
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_sign_in_returns_only_to_a_page_of_this_portal() {
        for kept in [
            "/",
            "/cases",
            "/verify-email?token=a%3Bb",
            "/workflows/wf_1?tab=history",
            "/sign-ins",
        ] {
            assert_eq!(return_path(kept), Some(kept));
        }
        let long = format!("/{}", "a".repeat(2048));
        for refused in [
            "",
            "cases",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/a\\b",
            "/cases\r\nSet-Cookie: x=1",
            "/cases with space",
            "/caf\u{e9}",
            "/sign-in",
            "/sign-in?next=/",
            "/sign-in/mfa",
            "/sign-out",
            long.as_str(),
        ] {
            assert_eq!(return_path(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        assert!(CONTENT_SECURITY_POLICY.contains("default-src 'self'"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
    }

    #[test]
    fn a_form_keeps_its_fields_and_refuses_nul() {
        let fields = form(b"csrf=abc&input.priority=high+now&payload.subject=%3Cb%3E").unwrap();
        assert_eq!(fields["csrf"], "abc");
        assert_eq!(fields["input.priority"], "high now");
        assert_eq!(fields["payload.subject"], "<b>");
        let err = form(b"email=a%00b").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidField);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; portal_session=pss_x"));
        assert_eq!(cookie(&headers, "portal_session").as_deref(), Some("pss_x"));
        assert_eq!(cookie(&headers, "portal_csrf"), None);
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token().unwrap(), random_token().unwrap());
    }
}
