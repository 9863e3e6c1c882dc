//! The signed-in user's authenticator app, the TOTP second factor (`/account/authenticator`):
//! setting one up (the password, and a passkey's answer when the user has one, then the QR
//! code and the key shown once, then a code from the app, which answers the recovery codes,
//! shown once), new recovery codes, and removing it. Each change asks what the API asks: a
//! session alone changes no way of signing in.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use portal_http::dto::{
    BeginTotpEnrollmentRequest, ConfirmTotpRequest, RecoveryCodesView, RemoveTotpRequest, SecondFactorRequest,
};
use portal_http::{Api, ApiError, RequestMeta};
use secrecy::SecretString;

use super::admin::{FormState, Refused, posted, shown, status_of};
use super::passkeys::{passkey_proof, password, typed};
use super::screens::Meta;
use super::{Nav, PageError, ProblemView, Session, html, problem, see_other, session};

/// A setup begun: what the app is given, shown once.
struct Setup {
    /// The key, base32, for typing.
    secret: String,
    /// The QR code of the `otpauth://` URI, as an SVG element (the server drew it).
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "authenticator.html")]
struct AuthenticatorPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    /// `none`, `pending` (set up, not yet confirmed with a code) or `confirmed`.
    state: &'static str,
    recovery_codes_left: usize,
    /// Whether the user has a passkey: the script proves them with one when no code is typed.
    passkeys: bool,
    /// The setup just begun, shown once.
    setup: Option<Setup>,
    /// New recovery codes, shown once.
    codes: Vec<String>,
    form: FormState,
}

/// The page, with what a step answered (`setup`, `codes`) or the problem it was refused with.
async fn page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    setup: Option<Setup>,
    codes: Vec<String>,
    refused: Refused,
) -> Result<Response, PageError> {
    let status = api
        .mfa_status(&s.caller)
        .await
        .map_err(|err| problem(err, meta, Some(s.nav.clone())))?;
    let code = status_of(&refused);
    let (problem, form) = shown(refused, meta, s.org());
    let page = AuthenticatorPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        state: status.totp,
        recovery_codes_left: status.recovery_codes_left,
        passkeys: status.passkeys > 0,
        setup,
        codes,
        form,
    };
    Ok(html(code, &page))
}

/// `GET /account/authenticator`.
pub(crate) async fn authenticator(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "sessions").await?;
    page(&api, &meta, s, None, Vec::new(), None).await
}

/// `POST /account/authenticator/setup`: begins a setup with the password (and a passkey's
/// answer); the QR code and the key, shown once, and the form for the app's first code.
pub(crate) async fn setup(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let begun = async {
        let request = BeginTotpEnrollmentRequest {
            password: password(&fields),
            passkey: passkey_proof(&fields)?,
        };
        api.begin_totp_enrollment(&s.caller, &meta, request).await
    }
    .await;
    match begun {
        Ok(view) => {
            let setup = Setup {
                secret: view.secret.0,
                qr_svg: svg_element(&view.qr_svg.0),
            };
            page(&api, &meta, s, Some(setup), Vec::new(), None).await
        }
        Err(err) => page(&api, &meta, s, None, Vec::new(), Some((err, fields))).await,
    }
}

/// The `<svg>` element of an SVG document (without its XML declaration), to draw inline.
fn svg_element(document: &str) -> String {
    document
        .find("<svg")
        .map_or_else(String::new, |start| document[start..].to_owned())
}

/// `POST /account/authenticator/confirm`: the app's first code confirms the setup; the
/// recovery codes, shown once.
pub(crate) async fn confirm(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let request = ConfirmTotpRequest {
        code: typed(&fields, "code").unwrap_or_else(|| SecretString::from(String::new())),
    };
    let confirmed = api.confirm_totp(&s.caller, request).await;
    codes_page(&api, &meta, s, confirmed, fields).await
}

/// The page after a step that answers recovery codes: them, shown once, or the problem
/// with what `fields` posted.
async fn codes_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    answered: Result<RecoveryCodesView, ApiError>,
    fields: std::collections::BTreeMap<String, String>,
) -> Result<Response, PageError> {
    match answered {
        Ok(view) => {
            let codes = view.recovery_codes.into_iter().map(|c| c.0).collect();
            page(api, meta, s, None, codes, None).await
        }
        Err(err) => page(api, meta, s, None, Vec::new(), Some((err, fields))).await,
    }
}

/// A fresh second factor from a form: a code, a recovery code, or the script's passkey proof.
fn fresh_factor(fields: &std::collections::BTreeMap<String, String>) -> Result<SecondFactorRequest, ApiError> {
    Ok(SecondFactorRequest {
        code: typed(fields, "code"),
        recovery_code: typed(fields, "recovery_code"),
        passkey: passkey_proof(fields)?,
    })
}

/// `POST /account/authenticator/recovery-codes`: new recovery codes (the old ones stop
/// working) after a fresh second factor; shown once.
pub(crate) async fn recovery_codes(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let result = match fresh_factor(&fields) {
        Ok(factor) => api.regenerate_recovery_codes(&s.caller, &meta, factor).await,
        Err(err) => Err(err),
    };
    codes_page(&api, &meta, s, result, fields).await
}

/// `POST /account/authenticator/remove`: removes the app (and its recovery codes) with the
/// password and a fresh second factor; a setup not yet confirmed with the password alone.
pub(crate) async fn remove(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let result = match fresh_factor(&fields) {
        Ok(factor) => {
            let request = RemoveTotpRequest {
                password: password(&fields),
                code: factor.code,
                recovery_code: factor.recovery_code,
                passkey: factor.passkey,
            };
            api.remove_totp(&s.caller, &meta, request).await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/account/authenticator")),
        Err(err) => page(&api, &meta, s, None, Vec::new(), Some((err, fields))).await,
    }
}
