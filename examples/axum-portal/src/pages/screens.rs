//! The screens: sign-in (and its second-factor step), a forgotten password (the request and the mailed link's form), the org switcher, the lists of cases, returns and quotes, a
//! workflow instance's page, members and the support console. Each handler reads what it
//! needs through [`Api`] (the same operations as the JSON routes) with a fixed number of
//! calls whatever the number of rows, and renders one template.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portal_core::ErrorCode;
use portal_core::access::Domain;
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_http::dto::{
    AssignWorkflowRequest, CreateWorkflowRequest, MfaChallengeRequest, MfaPasskeyChallengeRequest,
    PasskeySignInRequest, PasswordResetConfirm, PasswordResetRequest, SignInRequest, SignInResponse, SwitchOrgRequest,
    TransitionRequest, VoteChoice, VoteRequestBody, WorkflowView,
};
use portal_http::request::{etag, parse_query};
use portal_http::{Api, ApiError, PageQuery, RequestMeta, SignInAnswer, WorkflowQuery};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::passkeys::json_field;
use super::{
    Nav, PageError, ProblemView, Session, cleared_cookies, cookie, form, html, problem, random_token, return_cookie,
    return_target, see_other, session, session_cookies, sign_in_cookie, sign_in_csrf_matches,
};

/// Rows per page of every list.
pub(super) const PAGE_ROWS: u32 = 20;

/// The sections listing workflow instances: path, definition, heading, nouns, and the
/// payload fields of the "new" form.
struct Section {
    path: &'static str,
    definition: &'static str,
    heading: &'static str,
    noun: &'static str,
    noun_one: &'static str,
    fields: &'static [(&'static str, &'static str)],
}

const SECTIONS: [Section; 3] = [
    Section {
        path: "cases",
        definition: "support_case",
        heading: "Support cases",
        noun: "cases",
        noun_one: "case",
        fields: &[
            ("subject", "Subject"),
            ("customer_reference", "Your reference (optional)"),
        ],
    },
    Section {
        path: "returns",
        definition: "return_request",
        heading: "Return requests",
        noun: "returns",
        noun_one: "return",
        fields: &[
            ("order_id", "Order id"),
            ("amount_cents", "Amount (cents)"),
            ("reason", "Reason"),
        ],
    },
    Section {
        path: "quotes",
        definition: "quote_approval",
        heading: "Quotes",
        noun: "quotes",
        noun_one: "quote",
        fields: &[("customer", "Customer"), ("amount_cents", "Amount (cents)")],
    },
];

fn section_of(definition: &str) -> &'static Section {
    SECTIONS
        .iter()
        .find(|s| s.definition == definition)
        .unwrap_or(&SECTIONS[0])
}

/// One field of a form built from declared names (a transition's inputs, a definition's
/// payload): what was typed is kept, and the field the problem names is marked.
struct Field {
    name: String,
    label: String,
    value: String,
    invalid: bool,
}

/// The values a refused form posted, and the param its problem named, to show it again.
#[derive(Default)]
struct Kept {
    /// Which form (`new`, a transition's name) was refused.
    form: String,
    values: BTreeMap<String, String>,
    param: Option<String>,
}

impl Kept {
    fn field(&self, form: &str, prefix: &str, name: &str, label: &str) -> Field {
        let key = format!("{prefix}.{name}");
        let mine = self.form == form;
        Field {
            name: name.to_owned(),
            label: label.to_owned(),
            value: if mine {
                self.values.get(&key).cloned().unwrap_or_default()
            } else {
                String::new()
            },
            // The field the problem names, or every field of the object it names whole
            // (`payload` when the body's shape was refused).
            invalid: mine
                && self
                    .param
                    .as_deref()
                    .is_some_and(|p| p == key || p == name || p == prefix),
        }
    }
}

/// The request's metadata, which the pages' edge always inserts.
pub(super) type Meta = Extension<RequestMeta>;

#[derive(Template)]
#[template(path = "choose.html")]
struct ChoosePage {
    nav: Option<Nav>,
    csrf: String,
    orgs: Vec<super::NavOrg>,
}

/// `GET /`: the caller's cases; for a session in no org, a choice of the caller's orgs,
/// or the support console for a caller in none; sign-in when signed out.
pub(crate) async fn home(State(api): State<Api>, Extension(meta): Meta, headers: HeaderMap) -> Response {
    match session(&api, &meta, &headers, None, false, "").await {
        Ok(s) if s.org().is_some() => see_other("/cases"),
        Ok(s) if !s.nav.orgs.is_empty() => {
            let page = ChoosePage {
                csrf: s.nav.csrf.clone(),
                orgs: s.nav.orgs.clone(),
                nav: Some(s.nav),
            };
            html(StatusCode::OK, &page)
        }
        Ok(_) => see_other("/support"),
        Err(err) => err.into_response(),
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    email: String,
    error_param: String,
}

/// The sign-in form with a fresh CSRF token (also set in its cookie).
fn sign_in_page(api: &Api, status: StatusCode, email: String, problem: Option<ProblemView>) -> Response {
    let csrf = match random_token() {
        Ok(token) => token,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    let error_param = problem.as_ref().and_then(|p| p.param.clone()).unwrap_or_default();
    let page = SignInPage {
        nav: None,
        problem,
        csrf: csrf.clone(),
        email,
        error_param,
    };
    let mut response = html(status, &page);
    if let Some(cookie) = sign_in_cookie(api, Some(&csrf)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /sign-in`.
pub(crate) async fn sign_in_form(State(api): State<Api>) -> Response {
    sign_in_page(&api, StatusCode::OK, String::new(), None)
}

/// `POST /sign-in`: the API's sign-in; the session's cookies, then the caller's cases. A
/// refused sign-in shows the form again with the email typed.
pub(crate) async fn sign_in(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&body) {
        Ok(fields) => fields,
        Err(err) => {
            let problem = ProblemView::new(&err, &meta, None);
            return sign_in_page(&api, StatusCode::BAD_REQUEST, String::new(), Some(problem));
        }
    };
    let email = fields.get("email").cloned().unwrap_or_default();
    if !sign_in_csrf_matches(&headers, &api, fields.get("csrf").map(String::as_str)) {
        let err = ApiError::new(
            ErrorCode::CsrfRejected,
            "the sign-in form is stale or was not sent by this portal: sign in again",
        );
        let problem = ProblemView::new(&err, &meta, None);
        return sign_in_page(&api, StatusCode::FORBIDDEN, email, Some(problem));
    }
    let request = SignInRequest {
        email: email.clone(),
        password: SecretString::from(fields.get("password").cloned().unwrap_or_default()),
    };
    let previous = cookie(&headers, api.config().session_cookie());
    match api.sign_in(&meta, request, previous.as_deref()).await {
        Ok(SignInAnswer::Session(signed_in)) => signed_in_response(&api, &meta, &headers, &signed_in),
        Ok(SignInAnswer::Challenge(challenge)) => {
            // The form keeps the sign-in form's CSRF token (and its cookie) for the next step.
            let csrf = fields.get("csrf").cloned().unwrap_or_default();
            let factors = Factors::of(&challenge.factors);
            mfa_page(StatusCode::OK, csrf, challenge.challenge_token.0, factors, None)
        }
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let problem = ProblemView::new(&err, &meta, None);
            sign_in_page(&api, status, email, Some(problem))
        }
    }
}

/// A new session's cookies (the sign-in form's own cookie cleared), then the page the
/// visitor had opened when they were sent to sign in ([`return_target`]), or home.
pub(crate) fn signed_in_response(
    api: &Api,
    meta: &RequestMeta,
    headers: &HeaderMap,
    signed_in: &SignInResponse,
) -> Response {
    let mut response = see_other(&return_target(api, headers));
    match session_cookies(api, &signed_in.session_token.0, &signed_in.csrf_token) {
        Ok(cookies) => {
            for cookie in cookies {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        Err(err) => return problem(err, meta, None).into_response(),
    }
    for clear in [sign_in_cookie(api, None), return_cookie(api, None)]
        .into_iter()
        .flatten()
    {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    /// The challenge of the password step, carried by the form to the next.
    challenge: String,
    /// The factors that may answer the challenge.
    factors: Factors,
    error_param: String,
}

/// The second factors that may answer a sign-in's challenge, as the step's forms carry
/// them (`factors`: `totp`, `passkey`, space-separated) so that a refusal shows the same
/// step again. Only which forms are shown depends on it: the API decides what answers.
#[derive(Debug, Clone, Copy)]
struct Factors {
    /// A TOTP code or a recovery code: the code form.
    codes: bool,
    /// One of the account's passkeys: the passkey form (shown by the script).
    passkeys: bool,
}

impl Factors {
    fn of(names: &[&str]) -> Self {
        Self {
            codes: names.contains(&"totp"),
            passkeys: names.contains(&"passkey"),
        }
    }

    /// The factors a step's form carried back, or `posted` (the factor of the form that
    /// posted) when the field names none.
    fn from_field(field: Option<&String>, posted: Self) -> Self {
        let names: Vec<&str> = field.map(|f| f.split(' ').collect()).unwrap_or_default();
        let factors = Self::of(&names);
        if factors.codes || factors.passkeys {
            factors
        } else {
            posted
        }
    }

    const CODES: Self = Self {
        codes: true,
        passkeys: false,
    };
    const PASSKEYS: Self = Self {
        codes: false,
        passkeys: true,
    };

    /// The `factors` field of the step's forms.
    fn field(&self) -> String {
        let mut names = Vec::new();
        if self.codes {
            names.push("totp");
        }
        if self.passkeys {
            names.push("passkey");
        }
        names.join(" ")
    }
}

/// The second step of sign-in for `challenge`: a TOTP code (or a recovery code) when the
/// account has a TOTP factor, a passkey when it has one.
fn mfa_page(
    status: StatusCode,
    csrf: String,
    challenge: String,
    factors: Factors,
    problem: Option<ProblemView>,
) -> Response {
    let error_param = problem.as_ref().and_then(|p| p.param.clone()).unwrap_or_default();
    let page = MfaPage {
        nav: None,
        problem,
        csrf,
        challenge,
        factors,
        error_param,
    };
    html(status, &page)
}

/// A sign-in step's form, checked against the sign-in form's CSRF cookie: its fields, or
/// the sign-in form again with the problem.
fn sign_in_step_fields(
    api: &Api,
    meta: &RequestMeta,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, Box<Response>> {
    let fields = form(body).map_err(|err| {
        let problem = ProblemView::new(&err, meta, None);
        Box::new(sign_in_page(api, StatusCode::BAD_REQUEST, String::new(), Some(problem)))
    })?;
    if !sign_in_csrf_matches(headers, api, fields.get("csrf").map(String::as_str)) {
        let err = ApiError::new(
            ErrorCode::CsrfRejected,
            "the sign-in form is stale or was not sent by this portal: sign in again",
        );
        let problem = ProblemView::new(&err, meta, None);
        return Err(Box::new(sign_in_page(
            api,
            StatusCode::FORBIDDEN,
            String::new(),
            Some(problem),
        )));
    }
    Ok(fields)
}

/// `POST /sign-in/passkey`: a passwordless sign-in with the answer the page's script got
/// from the authenticator (`ceremony_token`, `credential`); the session's cookies, then
/// home. A refusal shows the sign-in form with the problem.
pub(crate) async fn sign_in_passkey(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match sign_in_step_fields(&api, &meta, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return *page,
    };
    let previous = cookie(&headers, api.config().session_cookie());
    let result = match json_field(&fields, "credential", "credential") {
        Ok(credential) => {
            let request = PasskeySignInRequest {
                ceremony_token: SecretString::from(fields.get("ceremony_token").cloned().unwrap_or_default()),
                credential,
            };
            api.finish_passkey_sign_in(&meta, request, previous.as_deref()).await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(signed_in) => signed_in_response(&api, &meta, &headers, &signed_in),
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let problem = ProblemView::new(&err, &meta, None);
            sign_in_page(&api, status, String::new(), Some(problem))
        }
    }
}

/// `POST /sign-in/mfa/passkey`: completes the sign-in's challenge with a passkey's answer
/// (`challenge`, `ceremony_token`, `credential`). A refused answer shows the step again
/// with the same challenge; a refused challenge goes back to the sign-in form.
pub(crate) async fn sign_in_mfa_passkey(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match sign_in_step_fields(&api, &meta, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return *page,
    };
    let csrf = fields.get("csrf").cloned().unwrap_or_default();
    let challenge = fields.get("challenge").cloned().unwrap_or_default();
    let previous = cookie(&headers, api.config().session_cookie());
    let result = match json_field(&fields, "credential", "credential") {
        Ok(credential) => {
            let request = MfaPasskeyChallengeRequest {
                challenge_token: SecretString::from(challenge.clone()),
                ceremony_token: SecretString::from(fields.get("ceremony_token").cloned().unwrap_or_default()),
                credential,
            };
            api.complete_mfa_challenge_with_passkey(&meta, request, previous.as_deref())
                .await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(signed_in) => signed_in_response(&api, &meta, &headers, &signed_in),
        Err(err) => {
            let factors = Factors::from_field(fields.get("factors"), Factors::PASSKEYS);
            mfa_refused(&api, &meta, err, csrf, challenge, factors)
        }
    }
}

/// A refused answer to the challenge: the step again with the problem, or the sign-in
/// form when the challenge itself was refused (used, expired, unknown).
fn mfa_refused(
    api: &Api,
    meta: &RequestMeta,
    err: ApiError,
    csrf: String,
    challenge: String,
    factors: Factors,
) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let problem = ProblemView::new(&err, meta, None);
    let challenge_refused = matches!(
        err.code(),
        ErrorCode::TokenInvalid | ErrorCode::TokenUsed | ErrorCode::TokenExpired
    ) && err.portal_error().param() != Some("ceremony_token");
    if challenge_refused {
        sign_in_page(api, status, String::new(), Some(problem))
    } else {
        mfa_page(status, csrf, challenge, factors, Some(problem))
    }
}

/// `POST /sign-in/mfa`: completes the sign-in with a TOTP code or a recovery code. A
/// refused code shows the step again with the same challenge (it stays usable until it
/// expires); a refused challenge (used, expired, unknown) goes back to the sign-in form.
pub(crate) async fn sign_in_mfa(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match sign_in_step_fields(&api, &meta, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return *page,
    };
    let csrf = fields.get("csrf").cloned().unwrap_or_default();
    let challenge = fields.get("challenge").cloned().unwrap_or_default();
    let nonempty = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    };
    let request = MfaChallengeRequest {
        challenge_token: SecretString::from(challenge.clone()),
        code: nonempty("code"),
        recovery_code: nonempty("recovery_code"),
    };
    let previous = cookie(&headers, api.config().session_cookie());
    match api.complete_mfa_challenge(&meta, request, previous.as_deref()).await {
        Ok(signed_in) => signed_in_response(&api, &meta, &headers, &signed_in),
        Err(err) => {
            let factors = Factors::from_field(fields.get("factors"), Factors::CODES);
            mfa_refused(&api, &meta, err, csrf, challenge, factors)
        }
    }
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    email: String,
    /// The mailed link's token: empty on the request form.
    token: String,
    /// The request was taken (the same answer whether or not the address has an account).
    sent: bool,
    error_param: String,
}

/// The forgotten-password request form, the "check your mail" answer or the new-password
/// form (when `token` is set), with a fresh form token in the sign-in form's cookie (no
/// session exists yet).
fn password_page(
    api: &Api,
    status: StatusCode,
    email: String,
    token: String,
    sent: bool,
    problem: Option<ProblemView>,
) -> Response {
    let csrf = match random_token() {
        Ok(token) => token,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    let error_param = problem.as_ref().and_then(|p| p.param.clone()).unwrap_or_default();
    let page = PasswordPage {
        nav: None,
        problem,
        csrf: csrf.clone(),
        email,
        token,
        sent,
        error_param,
    };
    let mut response = html(status, &page);
    if let Some(cookie) = sign_in_cookie(api, Some(&csrf)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The refusal of a form whose token is not its cookie's.
pub(crate) fn stale_form(meta: &RequestMeta) -> ProblemView {
    let err = ApiError::new(
        ErrorCode::CsrfRejected,
        "the form is stale or was not sent by this portal: try again",
    );
    ProblemView::new(&err, meta, None)
}

/// The request form again, showing `err` (a form that could not be read, a link without
/// its token).
fn password_request_refused(api: &Api, meta: &RequestMeta, err: &ApiError) -> Response {
    let problem = ProblemView::new(err, meta, None);
    password_page(
        api,
        StatusCode::BAD_REQUEST,
        String::new(),
        String::new(),
        false,
        Some(problem),
    )
}

/// `GET /forgot-password`.
pub(crate) async fn forgot_password_form(State(api): State<Api>) -> Response {
    password_page(&api, StatusCode::OK, String::new(), String::new(), false, None)
}

/// `POST /forgot-password`: the API's reset request; the same "check your mail" answer
/// whether or not the address has an account.
pub(crate) async fn forgot_password(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&body) {
        Ok(fields) => fields,
        Err(err) => {
            return password_request_refused(&api, &meta, &err);
        }
    };
    let email = fields.get("email").cloned().unwrap_or_default();
    if !sign_in_csrf_matches(&headers, &api, fields.get("csrf").map(String::as_str)) {
        let problem = stale_form(&meta);
        return password_page(&api, StatusCode::FORBIDDEN, email, String::new(), false, Some(problem));
    }
    match api
        .request_password_reset(&meta, PasswordResetRequest { email: email.clone() })
        .await
    {
        Ok(()) => password_page(&api, StatusCode::OK, String::new(), String::new(), true, None),
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let problem = ProblemView::new(&err, &meta, None);
            password_page(&api, status, email, String::new(), false, Some(problem))
        }
    }
}

/// The `token` query parameter of a mailed link.
#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /reset-password?token=…`: the mailed link's new-password form.
pub(crate) async fn reset_password_form(
    State(api): State<Api>,
    Extension(meta): Meta,
    RawQuery(query): RawQuery,
) -> Response {
    let token = parse_query::<TokenQuery>(query.as_deref())
        .map(|q| q.token)
        .unwrap_or_default();
    if token.is_empty() {
        let err = ApiError::from(
            portal_core::PortalError::new(ErrorCode::TokenInvalid, "the link has no token: ask for a new one")
                .with_param("token"),
        );
        return password_request_refused(&api, &meta, &err);
    }
    password_page(&api, StatusCode::OK, String::new(), token, false, None)
}

/// `POST /reset-password`: the API's reset with the link's token; then sign-in.
pub(crate) async fn reset_password(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&body) {
        Ok(fields) => fields,
        Err(err) => {
            return password_request_refused(&api, &meta, &err);
        }
    };
    let token = fields.get("token").cloned().unwrap_or_default();
    if !sign_in_csrf_matches(&headers, &api, fields.get("csrf").map(String::as_str)) {
        let problem = stale_form(&meta);
        return password_page(&api, StatusCode::FORBIDDEN, String::new(), token, false, Some(problem));
    }
    let request = PasswordResetConfirm {
        token: SecretString::from(token.clone()),
        password: SecretString::from(fields.get("password").cloned().unwrap_or_default()),
    };
    match api.reset_password(&meta, request).await {
        Ok(()) => {
            let mut response = see_other("/sign-in");
            if let Some(clear) = sign_in_cookie(&api, None) {
                response.headers_mut().append(header::SET_COOKIE, clear);
            }
            response
        }
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let problem = ProblemView::new(&err, &meta, None);
            // A refused token needs a new link; a refused password keeps the form.
            let keep = if problem.param.as_deref() == Some("token") {
                String::new()
            } else {
                token
            };
            password_page(&api, status, String::new(), keep, false, Some(problem))
        }
    }
}

/// `POST /sign-out`: ends the session, clears its cookies.
pub(crate) async fn sign_out(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = form(&body).map_err(|err| problem(err, &meta, None))?;
    let s = session(&api, &meta, &headers, fields.get("csrf").map(String::as_str), true, "").await?;
    api.sign_out(&s.caller)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let mut response = see_other("/sign-in");
    for cookie in cleared_cookies(&api).map_err(|err| problem(err, &meta, None))? {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST /switch-org`: the API's org switch (a new session, so new cookies), then the
/// new org's cases.
pub(crate) async fn switch_org(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = form(&body).map_err(|err| problem(err, &meta, None))?;
    let s = session(&api, &meta, &headers, fields.get("csrf").map(String::as_str), true, "").await?;
    let request = SwitchOrgRequest {
        org_id: fields.get("org_id").cloned().unwrap_or_default(),
    };
    let switched = api
        .switch_org(&s.caller, request)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let mut response = see_other("/cases");
    let cookies = session_cookies(&api, &switched.session_token.0, &switched.csrf_token)
        .map_err(|err| problem(err, &meta, None))?;
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The session's org, or `org.not_found` for a caller in none (a support engineer).
pub(super) fn active_org(s: &Session, meta: &RequestMeta) -> Result<OrgId, PageError> {
    s.org().ok_or_else(|| {
        problem(
            ApiError::new(
                ErrorCode::OrgNotFound,
                "this session works in no organization: use the support console",
            ),
            meta,
            Some(s.nav.clone()),
        )
    })
}

/// A row of a list.
struct Row {
    id: String,
    title: String,
    state: String,
    assignee: String,
    updated: String,
    actions: Vec<String>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    heading: &'static str,
    section: &'static str,
    noun: &'static str,
    noun_one: &'static str,
    definition: &'static str,
    states: Vec<String>,
    filter_state: String,
    rows: Vec<Row>,
    paged: bool,
    first_query: String,
    next_query: Option<String>,
    create_fields: Vec<Field>,
}

/// The query of a list page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    cursor: Option<String>,
}

/// A workflow's title: its payload's `subject`, `customer` or `order_id`.
fn title_of(view: &WorkflowView) -> String {
    for key in ["subject", "customer", "order_id"] {
        if let Some(text) = view.payload.get(key).and_then(Value::as_str) {
            return text.to_owned();
        }
    }
    view.id.to_string()
}

/// A time as the pages show it (RFC 3339, to the second).
pub(super) fn shown_time(at: time::OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Member names by id, read in one call (the first page of 100 members: the assignee
/// column and the assign form show the rest by id).
pub(crate) async fn member_names(api: &Api, s: &Session, org: OrgId) -> BTreeMap<UserId, String> {
    let query = PageQuery {
        limit: Some(100),
        cursor: None,
    };
    match api.list_members(&s.caller, org, &query).await {
        Ok(list) => list
            .items
            .into_iter()
            .map(|m| (m.user.id, format!("{} <{}>", m.user.display_name, m.user.email)))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Whether the caller may `action` on `object` in `org`, as the gate decides (not
/// recorded: it only chooses which controls to show; the operation decides again).
pub(super) async fn may(api: &Api, s: &Session, org: OrgId, object: &str, action: &str) -> bool {
    let gate = api.portal().gate();
    let ctx = s.caller.context();
    match gate.roles(ctx, org).await {
        Ok(Some(roles)) => gate
            .allows(ctx, Domain::Org(org), &roles, object, action)
            .unwrap_or(false),
        _ => false,
    }
}

/// The list page of `section`, with `problem` and the refused "new" form's values when
/// a creation failed.
async fn list_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    section: &'static Section,
    query: ListQuery,
    refused: Option<(ApiError, Kept)>,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let nav = s.nav.clone();
    let fail = |err: ApiError| problem(err, meta, Some(nav.clone()));
    let state = query.state.filter(|s| !s.is_empty());
    let workflow_query = WorkflowQuery {
        definition: Some(section.definition.to_owned()),
        state: state.clone(),
        assignee: None,
        limit: Some(PAGE_ROWS),
        cursor: query.cursor.clone(),
    };
    let list = api
        .list_workflows(&s.caller, org, &workflow_query)
        .await
        .map_err(fail)?;
    let names = member_names(api, &s, org).await;
    let rows = list
        .items
        .iter()
        .map(|view| Row {
            id: view.id.to_string(),
            title: title_of(view),
            state: view.state.clone(),
            assignee: view
                .assignee
                .map(|a| names.get(&a).cloned().unwrap_or_else(|| a.to_string()))
                .unwrap_or_else(|| "—".to_owned()),
            updated: shown_time(view.updated_at),
            actions: view.available_transitions.iter().map(|t| t.name.clone()).collect(),
        })
        .collect();
    let definitions = api
        .portal()
        .workflows()
        .map_err(|e| fail(portal_core::PortalError::from(e).into()))?;
    let definition = definitions
        .definitions()
        .into_iter()
        .find(|d| d.name() == section.definition);
    let states = definition
        .as_ref()
        .map(|d| d.states().map(|st| st.name().to_owned()).collect())
        .unwrap_or_default();
    let may_create = match &definition {
        Some(d) => may(api, &s, org, &format!("{}/*", d.resource()), "create").await,
        None => false,
    };
    let (problem, kept) = match refused {
        Some((err, kept)) => (Some(ProblemView::new(&err, meta, Some(org))), kept),
        None => (None, Kept::default()),
    };
    let create_fields = if may_create {
        section
            .fields
            .iter()
            .map(|(name, label)| kept.field("new", "payload", name, label))
            .collect()
    } else {
        Vec::new()
    };
    let state_query = |cursor: Option<&str>| {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        if let Some(state) = &state {
            pairs.append_pair("state", state);
        }
        if let Some(cursor) = cursor {
            pairs.append_pair("cursor", cursor);
        }
        let text = pairs.finish();
        if text.is_empty() { text } else { format!("?{text}") }
    };
    let page = ListPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        heading: section.heading,
        section: section.path,
        noun: section.noun,
        noun_one: section.noun_one,
        definition: section.definition,
        states,
        filter_state: state.clone().unwrap_or_default(),
        rows,
        paged: query.cursor.is_some(),
        first_query: state_query(None),
        next_query: list.next.as_deref().map(|next| state_query(Some(next))),
        create_fields,
    };
    let status = page
        .problem
        .as_ref()
        .map_or(StatusCode::OK, |_| StatusCode::UNPROCESSABLE_ENTITY);
    Ok(html(status, &page))
}

async fn list_section(
    api: Api,
    meta: RequestMeta,
    headers: HeaderMap,
    query: Option<String>,
    section: &'static Section,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, section.path).await?;
    let query: ListQuery = parse_query(query.as_deref()).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    list_page(&api, &meta, s, section, query, None).await
}

/// `GET /cases`.
pub(crate) async fn cases(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    list_section(api, meta, headers, query, &SECTIONS[0]).await
}

/// `GET /returns`.
pub(crate) async fn returns(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    list_section(api, meta, headers, query, &SECTIONS[1]).await
}

/// `GET /quotes`.
pub(crate) async fn quotes(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    list_section(api, meta, headers, query, &SECTIONS[2]).await
}

/// The fields of `prefix` (`payload`, `input`) of a posted form as a JSON object: empty
/// fields are left out; a whole number is a number.
fn json_fields(fields: &BTreeMap<String, String>, prefix: &str) -> Value {
    let mut object = Map::new();
    for (key, value) in fields {
        let Some(name) = key.strip_prefix(prefix).and_then(|k| k.strip_prefix('.')) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let value = match value.trim().parse::<u64>() {
            Ok(number) => Value::from(number),
            Err(_) => Value::from(value.clone()),
        };
        object.insert(name.to_owned(), value);
    }
    Value::Object(object)
}

/// `POST /workflows/new`: creates an instance of the posted `definition` from the
/// `payload.*` fields; on success its page, else the list again with the problem.
pub(crate) async fn create_workflow(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = form(&body).map_err(|err| problem(err, &meta, None))?;
    let s = session(&api, &meta, &headers, fields.get("csrf").map(String::as_str), true, "").await?;
    let org = active_org(&s, &meta)?;
    let definition = fields.get("definition").cloned().unwrap_or_default();
    let request = CreateWorkflowRequest {
        definition: definition.clone(),
        payload: json_fields(&fields, "payload"),
        assignee: None,
    };
    match api.create_workflow(&s.caller, org, request).await {
        Ok(view) => Ok(see_other(&format!("/workflows/{}", view.id))),
        Err(err) => {
            let section = section_of(&definition);
            let mut s = s;
            s.nav.current = section.path;
            let kept = Kept {
                form: "new".to_owned(),
                param: err.portal_error().param().map(str::to_owned),
                values: fields,
            };
            list_page(&api, &meta, s, section, ListQuery::default(), Some((err, kept))).await
        }
    }
}

/// A control of the workflow page: a transition to fire, or one to vote on.
struct Action {
    name: String,
    label: String,
    to: String,
    target: String,
    by_vote: bool,
    destructive: bool,
    fields: Vec<Field>,
}

/// A history row.
struct HistoryRow {
    version: u64,
    what: String,
    from: String,
    to: String,
    actor: String,
    at: String,
    input: String,
    request_id: String,
}

#[derive(Template)]
#[template(path = "workflow.html")]
struct WorkflowPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    id: String,
    title: String,
    section: &'static str,
    noun_one: &'static str,
    state: String,
    definition: String,
    assignee: String,
    due: String,
    version: u64,
    payload: Vec<(String, String)>,
    actions: Vec<Action>,
    can_assign: bool,
    members: Vec<(String, String, bool)>,
    history: Vec<HistoryRow>,
    history_next: Option<String>,
}

/// The query of a workflow page: which page of the history.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowPageQuery {
    history: Option<String>,
}

/// The page of one instance, with `refused` (the problem and the form's values) when a
/// step failed.
async fn workflow_view(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    id: WorkflowId,
    history_cursor: Option<String>,
    refused: Option<(ApiError, Kept)>,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let nav = s.nav.clone();
    let fail = |err: ApiError| problem(err, meta, Some(nav.clone()));
    let view = api.get_workflow(&s.caller, org, id).await.map_err(fail)?;
    let history_query = PageQuery {
        limit: Some(100),
        cursor: history_cursor,
    };
    let history = api
        .workflow_history(&s.caller, org, id, &history_query)
        .await
        .map_err(fail)?;
    let names = member_names(api, &s, org).await;
    let workflows = api
        .portal()
        .workflows()
        .map_err(|e| fail(portal_core::PortalError::from(e).into()))?;
    let definition = workflows
        .definitions()
        .into_iter()
        .find(|d| d.name() == view.definition);
    let terminal = |state: &str| {
        definition
            .as_ref()
            .and_then(|d| d.state(state))
            .is_some_and(|st| st.is_terminal())
    };
    let can_assign = match &definition {
        Some(d) if !terminal(&view.state) => may(api, &s, org, &format!("{}/{}", d.resource(), view.id), "write").await,
        _ => false,
    };
    let (problem, kept) = match refused {
        Some((err, kept)) => (Some(ProblemView::new(&err, meta, Some(org))), kept),
        None => (None, Kept::default()),
    };
    let actions = view
        .available_transitions
        .iter()
        .map(|t| Action {
            name: t.name.clone(),
            label: t.name.replace('_', " "),
            to: t.to.clone(),
            target: if t.by_vote {
                format!("/workflows/{}/votes", view.id)
            } else {
                format!("/workflows/{}/transitions/{}", view.id, t.name)
            },
            by_vote: t.by_vote,
            destructive: terminal(&t.to),
            fields: t
                .inputs
                .iter()
                .map(|input| kept.field(&t.name, "input", input, &input.replace('_', " ")))
                .collect(),
        })
        .collect();
    let show_user = |user: UserId| names.get(&user).cloned().unwrap_or_else(|| user.to_string());
    let section = section_of(&view.definition);
    let payload = match &view.payload {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.replace('_', " "), text)
            })
            .collect(),
        other => vec![("payload".to_owned(), other.to_string())],
    };
    let page = WorkflowPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav.clone()),
        problem,
        id: view.id.to_string(),
        title: title_of(&view),
        section: section.path,
        noun_one: section.noun_one,
        state: view.state.clone(),
        definition: format!("{} v{}", view.definition, view.definition_version),
        assignee: view.assignee.map_or_else(|| "nobody".to_owned(), show_user),
        due: view.due_at.map_or_else(|| "—".to_owned(), shown_time),
        version: view.version,
        payload,
        actions,
        can_assign,
        members: names
            .iter()
            .map(|(id, name)| (id.to_string(), name.clone(), view.assignee == Some(*id)))
            .collect(),
        history: history
            .items
            .iter()
            .map(|h| HistoryRow {
                version: h.version,
                what: if h.transition.is_empty() {
                    h.kind.clone()
                } else {
                    format!("{} {}", h.kind, h.transition)
                },
                from: h.from.clone(),
                to: h.to.clone(),
                // The actor is a user id (`usr_…`, or `user:usr_…`), else a key or a service.
                actor: h
                    .actor
                    .strip_prefix("user:")
                    .unwrap_or(&h.actor)
                    .parse::<UserId>()
                    .ok()
                    .map_or_else(|| h.actor.clone(), show_user),
                at: shown_time(h.at),
                input: match &h.input {
                    Value::Null => String::new(),
                    Value::Object(map) if map.is_empty() => String::new(),
                    other => other.to_string(),
                },
                request_id: h.request_id.to_string(),
            })
            .collect(),
        history_next: history.next,
    };
    let status = page.problem.as_ref().map_or(StatusCode::OK, |p| {
        if p.code == "workflow.version_conflict" {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    });
    Ok(html(status, &page))
}

fn workflow_id(text: &str, meta: &RequestMeta, nav: &Nav) -> Result<WorkflowId, PageError> {
    portal_http::request::path_id::<WorkflowId>("workflow_id", text)
        .map_err(|err| problem(err, meta, Some(nav.clone())))
}

/// `GET /workflows/{id}`.
pub(crate) async fn workflow_page(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "").await?;
    let id = workflow_id(&id, &meta, &s.nav)?;
    let query: WorkflowPageQuery =
        parse_query(query.as_deref()).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    workflow_view(&api, &meta, s, id, query.history, None).await
}

/// What every step on the workflow page posts: the session's CSRF token and the version
/// the page showed (the step's `If-Match`).
async fn step_session(
    api: &Api,
    meta: &RequestMeta,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
) -> Result<(Session, OrgId, WorkflowId, BTreeMap<String, String>, String), PageError> {
    let fields = form(body).map_err(|err| problem(err, meta, None))?;
    let s = session(api, meta, headers, fields.get("csrf").map(String::as_str), true, "").await?;
    let org = active_org(&s, meta)?;
    let id = workflow_id(id, meta, &s.nav)?;
    let if_match = fields
        .get("version")
        .and_then(|v| v.parse::<u64>().ok())
        .map(etag)
        .unwrap_or_default();
    Ok((s, org, id, fields, if_match))
}

/// The answer to a step: the instance's page (`303`) on success, else the page again
/// with the problem and what the form held.
async fn after_step(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    id: WorkflowId,
    form_name: &str,
    fields: BTreeMap<String, String>,
    result: Result<WorkflowView, ApiError>,
) -> Result<Response, PageError> {
    match result {
        Ok(view) => Ok(see_other(&format!("/workflows/{}", view.id))),
        Err(err) if matches!(err.code(), ErrorCode::WorkflowNotFound | ErrorCode::OrgNotFound) => {
            Err(problem(err, meta, Some(s.nav.clone())))
        }
        Err(err) => {
            let kept = Kept {
                form: form_name.to_owned(),
                param: err.portal_error().param().map(str::to_owned),
                values: fields,
            };
            workflow_view(api, meta, s, id, None, Some((err, kept))).await
        }
    }
}

/// `POST /workflows/{id}/transitions/{name}`: fires the transition with the `input.*`
/// fields.
pub(crate) async fn transition(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, org, id, fields, if_match) = step_session(&api, &meta, &headers, &id, &body).await?;
    let request = TransitionRequest {
        input: json_fields(&fields, "input"),
    };
    let result = api
        .transition_workflow(&s.caller, org, id, &name, Some(&if_match), request)
        .await;
    after_step(&api, &meta, s, id, &name, fields, result).await
}

/// `POST /workflows/{id}/votes`: casts the caller's vote (`decision` `approve` or
/// `reject`) on `transition`.
pub(crate) async fn vote(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, org, id, fields, if_match) = step_session(&api, &meta, &headers, &id, &body).await?;
    let transition = fields.get("transition").cloned().unwrap_or_default();
    let decision = match fields.get("decision").map(String::as_str) {
        Some("reject") => VoteChoice::Reject,
        _ => VoteChoice::Approve,
    };
    let request = VoteRequestBody {
        transition: transition.clone(),
        decision,
        input: json_fields(&fields, "input"),
        on_behalf_of: None,
    };
    let result = api.vote_workflow(&s.caller, org, id, Some(&if_match), request).await;
    after_step(&api, &meta, s, id, &transition, fields, result).await
}

/// `POST /workflows/{id}/assignee`: assigns the instance to the chosen member, or to
/// nobody.
pub(crate) async fn assign(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, org, id, fields, if_match) = step_session(&api, &meta, &headers, &id, &body).await?;
    let request = AssignWorkflowRequest {
        assignee: fields.get("assignee").filter(|a| !a.is_empty()).cloned(),
    };
    let result = api.assign_workflow(&s.caller, org, id, Some(&if_match), request).await;
    after_step(&api, &meta, s, id, "assign", fields, result).await
}

/// A member row.
struct MemberRow {
    name: String,
    email: String,
    roles: String,
    joined: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    nav: Option<Nav>,
    org_name: String,
    rows: Vec<MemberRow>,
    paged: bool,
    next: Option<String>,
}

/// `GET /members`: the org's members with names and emails, one API call a page.
pub(crate) async fn members(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "members").await?;
    let org = active_org(&s, &meta)?;
    let fail = |err: ApiError| problem(err, &meta, Some(s.nav.clone()));
    let mut query: PageQuery = parse_query(query.as_deref()).map_err(fail)?;
    query.limit = Some(query.limit.unwrap_or(PAGE_ROWS));
    let list = api.list_members(&s.caller, org, &query).await.map_err(fail)?;
    let org_name = s
        .nav
        .orgs
        .iter()
        .find(|o| o.active)
        .map(|o| o.name.clone())
        .unwrap_or_else(|| org.to_string());
    let page = MembersPage {
        org_name,
        rows: list
            .items
            .iter()
            .map(|m| MemberRow {
                name: m.user.display_name.clone(),
                email: m.user.email.clone(),
                roles: m.roles.join(", "),
                joined: shown_time(m.joined_at),
            })
            .collect(),
        paged: query.cursor.is_some(),
        next: list
            .next
            .map(|n| form_urlencoded::byte_serialize(n.as_bytes()).collect()),
        nav: Some(s.nav),
    };
    Ok(html(StatusCode::OK, &page))
}

/// The explanation of a request, as shown.
struct ExplanationRow {
    summary: String,
    root_cause: String,
    failed_step: String,
    next_step: String,
    evidence: Vec<String>,
}

#[derive(Template)]
#[template(path = "support.html")]
struct SupportPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    org: String,
    request: String,
    explanation: Option<ExplanationRow>,
    events: Vec<(String, String, String, String, String)>,
}

/// The query of the support console.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupportQuery {
    org: Option<String>,
    request: Option<String>,
}

/// `GET /support`: look up a request id in an org (the caller's own, or one a support
/// grant reaches): the API's explanation and the request's events, as the caller may
/// see them.
pub(crate) async fn support(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "support").await?;
    let query: SupportQuery = parse_query(query.as_deref()).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let org_text = query
        .org
        .clone()
        .filter(|o| !o.trim().is_empty())
        .or_else(|| s.org().map(|o| o.to_string()))
        .unwrap_or_default();
    let request = query.request.clone().unwrap_or_default().trim().to_owned();
    let mut page = SupportPage {
        nav: Some(s.nav.clone()),
        problem: None,
        org: org_text.clone(),
        request: request.clone(),
        explanation: None,
        events: Vec::new(),
    };
    if request.is_empty() {
        return Ok(html(StatusCode::OK, &page));
    }
    let looked_up = async {
        let org = portal_http::request::path_id::<OrgId>("org", org_text.trim())?;
        let explanation = api.explain_request(&s.caller, org, &request).await?;
        let events = api
            .request_events(
                &s.caller,
                org,
                &request,
                &PageQuery {
                    limit: Some(100),
                    cursor: None,
                },
            )
            .await?;
        Ok::<_, ApiError>((org, explanation, events))
    }
    .await;
    match looked_up {
        Ok((_, explanation, events)) => {
            page.explanation = Some(ExplanationRow {
                summary: explanation.summary,
                root_cause: explanation.root_cause.unwrap_or_else(|| "—".to_owned()),
                failed_step: explanation.failed_step.unwrap_or_else(|| "—".to_owned()),
                next_step: explanation.next_step.unwrap_or_else(|| "—".to_owned()),
                evidence: explanation.evidence.iter().map(Value::to_string).collect(),
            });
            page.events = events
                .items
                .iter()
                .map(|e| {
                    (
                        shown_time(e.at),
                        format!("{} {}", e.kind, e.name),
                        e.outcome.clone(),
                        e.code.clone().unwrap_or_default(),
                        e.actor.clone().unwrap_or_default(),
                    )
                })
                .collect();
            Ok(html(StatusCode::OK, &page))
        }
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            page.problem = Some(ProblemView::new(&err, &meta, s.org()));
            Ok(html(status, &page))
        }
    }
}
