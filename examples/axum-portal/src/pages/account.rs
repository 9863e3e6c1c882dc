//! Account pages before and around sign-in: sign-up (ask for a link, then the mailed
//! link's name-and-password form), the page a mailed email-verification link opens, and
//! the change of email: the signed-in user's form (`/account/email`) and the page the link
//! mailed to the new address opens (`/confirm-email-change`), which works as the
//! verification page does; and the signed-in user's change of password
//! (`/account/password`).
//!
//! Like the password-reset pages, the sign-up forms exist before any session: their CSRF
//! token is the sign-in form's double-submit cookie. The verification page needs the
//! signed-in user the link was mailed to (the API's rule): it shows a button that posts
//! the token with the session's CSRF token, so opening the link (as a mail scanner may)
//! changes nothing.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portal_core::ErrorCode;
use portal_http::dto::{
    ChangePasswordRequest, ConfirmEmailChangeRequest, EmailChangeRequestBody, SignUpConfirm, SignUpRequest,
    VerifyEmailRequest,
};
use portal_http::request::parse_query;
use portal_http::{Api, ApiError, RequestMeta};
use secrecy::SecretString;
use serde::Deserialize;

use super::admin::posted;
use super::screens::{signed_in_response, stale_form};
use super::{
    Nav, PageError, ProblemView, form, html, problem, random_token, session, session_cookies, sign_in_cookie,
    sign_in_csrf_matches,
};

type Meta = Extension<RequestMeta>;

#[derive(Template)]
#[template(path = "sign_up.html")]
struct SignUpPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    email: String,
    display_name: String,
    /// The mailed link's token: empty on the request form.
    token: String,
    /// The request was taken (the same answer for every address).
    sent: bool,
    error_param: String,
}

/// What a sign-up page shows.
#[derive(Default)]
struct SignUpView {
    email: String,
    display_name: String,
    token: String,
    sent: bool,
}

/// A sign-up page with a fresh form token in the sign-in form's cookie.
fn sign_up_page(api: &Api, status: StatusCode, view: SignUpView, problem: Option<ProblemView>) -> Response {
    let csrf = match random_token() {
        Ok(token) => token,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    let error_param = problem.as_ref().and_then(|p| p.param.clone()).unwrap_or_default();
    let page = SignUpPage {
        nav: None,
        problem,
        csrf: csrf.clone(),
        email: view.email,
        display_name: view.display_name,
        token: view.token,
        sent: view.sent,
        error_param,
    };
    let mut response = html(status, &page);
    if let Some(cookie) = sign_in_cookie(api, Some(&csrf)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn status_of(err: &ApiError) -> StatusCode {
    StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The field a refused account form marks: the one the problem names, or `password_field`
/// for a wrong password (`auth.invalid_credentials` names none).
fn marked_field(err: &ApiError, view: &ProblemView, password_field: &str) -> String {
    match view.param.clone() {
        Some(param) => param,
        None if err.code() == ErrorCode::InvalidCredentials => password_field.to_owned(),
        None => String::new(),
    }
}

/// The `token` query parameter of a mailed link.
#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn token_of(query: Option<&str>) -> String {
    parse_query::<TokenQuery>(query).map(|q| q.token).unwrap_or_default()
}

/// `GET /sign-up[?token=…]`: the request form, or the mailed link's form.
pub(crate) async fn sign_up_form(State(api): State<Api>, RawQuery(query): RawQuery) -> Response {
    let token = token_of(query.as_deref());
    sign_up_page(
        &api,
        StatusCode::OK,
        SignUpView {
            token,
            ..SignUpView::default()
        },
        None,
    )
}

/// `POST /sign-up`: the API's sign-up request; the same "check your mail" answer for
/// every address.
pub(crate) async fn sign_up(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&body) {
        Ok(fields) => fields,
        Err(err) => {
            let problem = ProblemView::new(&err, &meta, None);
            return sign_up_page(&api, status_of(&err), SignUpView::default(), Some(problem));
        }
    };
    let email = fields.get("email").cloned().unwrap_or_default();
    if !sign_in_csrf_matches(&headers, &api, fields.get("csrf").map(String::as_str)) {
        let view = SignUpView {
            email,
            ..SignUpView::default()
        };
        return sign_up_page(&api, StatusCode::FORBIDDEN, view, Some(stale_form(&meta)));
    }
    match api.request_sign_up(&meta, SignUpRequest { email: email.clone() }).await {
        Ok(()) => sign_up_page(
            &api,
            StatusCode::OK,
            SignUpView {
                sent: true,
                ..SignUpView::default()
            },
            None,
        ),
        Err(err) => {
            let problem = ProblemView::new(&err, &meta, None);
            let view = SignUpView {
                email,
                ..SignUpView::default()
            };
            sign_up_page(&api, status_of(&err), view, Some(problem))
        }
    }
}

/// `POST /sign-up/complete`: the API's confirmation with the link's token; signed in,
/// then home.
pub(crate) async fn complete_sign_up(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&body) {
        Ok(fields) => fields,
        Err(err) => {
            let problem = ProblemView::new(&err, &meta, None);
            return sign_up_page(&api, status_of(&err), SignUpView::default(), Some(problem));
        }
    };
    let token = fields.get("token").cloned().unwrap_or_default();
    let display_name = fields.get("display_name").cloned().unwrap_or_default();
    if !sign_in_csrf_matches(&headers, &api, fields.get("csrf").map(String::as_str)) {
        let view = SignUpView {
            token,
            display_name,
            ..SignUpView::default()
        };
        return sign_up_page(&api, StatusCode::FORBIDDEN, view, Some(stale_form(&meta)));
    }
    let request = SignUpConfirm {
        token: SecretString::from(token.clone()),
        display_name: display_name.clone(),
        password: SecretString::from(fields.get("password").cloned().unwrap_or_default()),
    };
    match api.complete_sign_up(&meta, request, None).await {
        Ok(signed_in) => signed_in_response(&api, &meta, &headers, &signed_in),
        Err(err) => {
            let problem = ProblemView::new(&err, &meta, None);
            // A refused token needs a new link; a refused name or password keeps the form.
            let token = if problem.param.as_deref() == Some("token") {
                String::new()
            } else {
                token
            };
            let view = SignUpView {
                token,
                display_name,
                ..SignUpView::default()
            };
            sign_up_page(&api, status_of(&err), view, Some(problem))
        }
    }
}

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyEmailPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    token: String,
    /// The address just verified.
    verified: Option<String>,
}

/// The answer to a mailed link opened without its token: `400 auth.token_invalid`
/// (`token`) shown on the page; `200` and nothing to show when it has one.
fn link_without_token(
    token: &str,
    meta: &RequestMeta,
    org: Option<portal_core::ids::OrgId>,
) -> (StatusCode, Option<ProblemView>) {
    if !token.is_empty() {
        return (StatusCode::OK, None);
    }
    let err = ApiError::from(
        portal_core::PortalError::new(ErrorCode::TokenInvalid, "the link has no token: ask for a new one")
            .with_param("token"),
    );
    (StatusCode::BAD_REQUEST, Some(ProblemView::new(&err, meta, org)))
}

/// `GET /verify-email?token=…`: for the signed-in user, a button that confirms the
/// address with the link's token (signed out: the sign-in page).
pub(crate) async fn verify_email_form(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "").await?;
    let token = token_of(query.as_deref());
    let (status, problem) = link_without_token(&token, &meta, s.nav.org);
    let page = VerifyEmailPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        token,
        verified: None,
    };
    Ok(html(status, &page))
}

/// `POST /verify-email`: the API's verification with the link's token, by the signed-in
/// user; the address verified, or the API's problem.
pub(crate) async fn verify_email(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = form(&body).map_err(|err| problem(err, &meta, None))?;
    let s = session(&api, &meta, &headers, fields.get("csrf").map(String::as_str), true, "").await?;
    let token = fields.get("token").cloned().unwrap_or_default();
    let request = VerifyEmailRequest {
        token: SecretString::from(token),
    };
    let (status, verified, shown) = match api.verify_email(&s.caller, &meta, request).await {
        Ok(view) => (StatusCode::OK, Some(view.email), None),
        Err(err) => (status_of(&err), None, Some(ProblemView::new(&err, &meta, s.nav.org))),
    };
    let page = VerifyEmailPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem: shown,
        token: String::new(),
        verified,
    };
    Ok(html(status, &page))
}

#[derive(Template)]
#[template(path = "email_change.html")]
struct EmailChangePage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    /// The user's address now.
    current: String,
    /// Whether it is verified.
    verified: bool,
    /// The new address as typed (kept when the form is refused).
    email: String,
    /// The address a link was mailed to, once the request is taken.
    sent: Option<String>,
    /// Whether the user has a passkey: the script proves them with one when no code is typed.
    passkeys: bool,
    error_param: String,
}

/// `GET /account/email`: the signed-in user's address and the form that asks to change it.
pub(crate) async fn email_change_form(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "sessions").await?;
    let status = api
        .email_status(&s.caller)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let factors = api
        .mfa_status(&s.caller)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let page = EmailChangePage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem: None,
        current: status.email,
        verified: status.verified,
        email: String::new(),
        sent: None,
        passkeys: factors.passkeys > 0,
        error_param: String::new(),
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /account/email`: the API's change request (the current password, and a code for
/// a user with a second factor); "check your mail" whether or not the address has an
/// account, or the API's problem with the refused field marked.
pub(crate) async fn email_change(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let email = field("email");
    let code = field("code");
    let status = api
        .email_status(&s.caller)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let factors = api
        .mfa_status(&s.caller)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let requested = match super::passkeys::passkey_proof(&fields) {
        Ok(passkey) => {
            let request = EmailChangeRequestBody {
                email: email.clone(),
                current_password: SecretString::from(field("current_password")),
                code: (!code.trim().is_empty()).then(|| SecretString::from(code.trim().to_owned())),
                recovery_code: None,
                // The page's script fills it in: a passkey's answer when no code was typed.
                passkey,
            };
            api.request_email_change(&s.caller, &meta, request).await
        }
        Err(err) => Err(err),
    };
    let (code, sent, shown, error_param) = match requested {
        Ok(()) => (StatusCode::OK, Some(email.trim().to_lowercase()), None, String::new()),
        Err(err) => {
            let view = ProblemView::new(&err, &meta, s.nav.org);
            let param = marked_field(&err, &view, "password");
            (status_of(&err), None, Some(view), param)
        }
    };
    let page = EmailChangePage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem: shown,
        current: status.email,
        verified: status.verified,
        email,
        sent,
        passkeys: factors.passkeys > 0,
        error_param,
    };
    Ok(html(code, &page))
}

#[derive(Template)]
#[template(path = "confirm_email_change.html")]
struct ConfirmEmailChangePage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    token: String,
    /// The address the account moved to.
    changed: Option<String>,
}

/// `GET /confirm-email-change?token=…`: for the signed-in user, a button that moves the
/// account to the address the link was mailed to (signed out: the sign-in page). Opening
/// the link changes nothing.
pub(crate) async fn confirm_email_change_form(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "").await?;
    let token = token_of(query.as_deref());
    let (status, problem) = link_without_token(&token, &meta, s.nav.org);
    let page = ConfirmEmailChangePage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        token,
        changed: None,
    };
    Ok(html(status, &page))
}

/// `POST /confirm-email-change`: the API's confirmation with the link's token, by the
/// signed-in user; the new address, or the API's problem.
pub(crate) async fn confirm_email_change(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = form(&body).map_err(|err| problem(err, &meta, None))?;
    let s = session(&api, &meta, &headers, fields.get("csrf").map(String::as_str), true, "").await?;
    let token = fields.get("token").cloned().unwrap_or_default();
    let request = ConfirmEmailChangeRequest {
        token: SecretString::from(token),
    };
    let (status, changed, shown) = match api.confirm_email_change(&s.caller, &meta, request).await {
        Ok(view) => (StatusCode::OK, Some(view.email), None),
        Err(err) => (status_of(&err), None, Some(ProblemView::new(&err, &meta, s.nav.org))),
    };
    let page = ConfirmEmailChangePage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem: shown,
        token: String::new(),
        changed,
    };
    Ok(html(status, &page))
}

#[derive(Template)]
#[template(path = "password_change.html")]
struct PasswordChangePage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    /// Whether the password was just changed.
    changed: bool,
    error_param: String,
}

/// `GET /account/password`: the form that changes the signed-in user's password.
pub(crate) async fn password_change_form(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "sessions").await?;
    let page = PasswordChangePage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem: None,
        changed: false,
        error_param: String::new(),
    };
    Ok(html(StatusCode::OK, &page))
}

/// `POST /account/password`: the API's change of password (the current one, and the new
/// one typed twice, which the page compares). Every other session of the user ends and
/// this one is rotated: the answer sets the new session's cookies. A refusal shows the
/// form again with the field marked (`current_password` for a wrong current password).
pub(crate) async fn password_change(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let new_password = field("password");
    let changed = if new_password == field("confirm_password") {
        let request = ChangePasswordRequest {
            current_password: SecretString::from(field("current_password")),
            new_password: SecretString::from(new_password),
        };
        api.change_password(&s.caller, &meta, request).await
    } else {
        Err(ApiError::invalid_field(
            "confirm_password",
            "the new password and its repetition differ",
        ))
    };
    let mut nav = s.nav;
    match changed {
        Ok(signed_in) => {
            let cookies = session_cookies(&api, &signed_in.session_token.0, &signed_in.csrf_token)
                .map_err(|err| problem(err, &meta, None))?;
            nav.csrf.clone_from(&signed_in.csrf_token);
            let page = PasswordChangePage {
                csrf: nav.csrf.clone(),
                nav: Some(nav),
                problem: None,
                changed: true,
                error_param: String::new(),
            };
            let mut response = html(StatusCode::OK, &page);
            for cookie in cookies {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Err(err) => {
            let view = ProblemView::new(&err, &meta, nav.org);
            let error_param = marked_field(&err, &view, "current_password");
            let page = PasswordChangePage {
                csrf: nav.csrf.clone(),
                nav: Some(nav),
                problem: Some(view),
                changed: false,
                error_param,
            };
            Ok(html(status_of(&err), &page))
        }
    }
}
