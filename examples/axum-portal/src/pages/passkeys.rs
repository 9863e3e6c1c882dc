//! The signed-in user's passkeys (`/account/passkeys`): the list, adding, renaming and
//! removing one. Both changes ask the password and, once the user has a second factor, a fresh one
//! (the API's rule: a session alone changes no way of signing in): a code from the
//! authenticator app, or an answer from one of the user's passkeys. The page's script runs
//! the WebAuthn ceremonies (the browser gives them to scripts only): it proves the user
//! with a passkey when no code was typed, asks the API for the registration's options, lets
//! the authenticator make the passkey, and posts the answer here. Removing with a code
//! needs no script.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use portal_core::ids::PasskeyId;
use portal_http::dto::{FinishPasskeyRegistrationRequest, PasskeyProof, RemovePasskeyRequest, RenamePasskeyRequest};
use portal_http::request::path_id;
use portal_http::{Api, ApiError, RequestMeta};
use secrecy::SecretString;
use serde_json::Value;

use super::admin::{FormState, Refused, posted, shown, status_of};
use super::screens::{Meta, shown_time};
use super::{Nav, PageError, ProblemView, Session, html, problem, see_other, session};

/// One passkey of the list.
struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    rows: Vec<PasskeyRow>,
    /// Whether the user has a confirmed TOTP factor: the forms ask for a code.
    totp: bool,
    /// Whether the user has a passkey: the script proves them with one when no code is typed.
    passkeys: bool,
    /// A refused form's input and the field its problem names.
    form: FormState,
}

/// The page, with `refused`'s problem and input when a change was refused.
async fn passkeys_page(api: &Api, meta: &RequestMeta, s: Session, refused: Refused) -> Result<Response, PageError> {
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let list = api.list_passkeys(&s.caller).await.map_err(fail)?;
    let factors = api.mfa_status(&s.caller).await.map_err(fail)?;
    let status = status_of(&refused);
    let (problem, form) = shown(refused, meta, s.org());
    let page = PasskeysPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        rows: list
            .items
            .iter()
            .map(|p| PasskeyRow {
                id: p.id.to_string(),
                name: p.name.clone(),
                created: shown_time(p.created_at),
                last_used: p.last_used_at.map_or_else(|| "never".to_owned(), shown_time),
            })
            .collect(),
        totp: factors.totp == "confirmed",
        passkeys: factors.passkeys > 0,
        form,
    };
    Ok(html(status, &page))
}

/// `GET /account/passkeys`.
pub(crate) async fn passkeys(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "sessions").await?;
    passkeys_page(&api, &meta, s, None).await
}

/// A JSON form field (what the script put there: a passkey's answer), or
/// `validation.invalid_field` naming `param`.
pub(super) fn json_field(
    fields: &std::collections::BTreeMap<String, String>,
    name: &str,
    param: &str,
) -> Result<Value, ApiError> {
    let text = fields.get(name).map(String::as_str).unwrap_or_default();
    serde_json::from_str(text).map_err(|_| {
        ApiError::invalid_field(
            param,
            "the passkey's answer is missing or not JSON: this step needs the page's script",
        )
    })
}

/// The passkey proof a form's script filled in (`passkey_ceremony_token`,
/// `passkey_credential`), if any.
pub(super) fn passkey_proof(
    fields: &std::collections::BTreeMap<String, String>,
) -> Result<Option<PasskeyProof>, ApiError> {
    let token = fields
        .get("passkey_ceremony_token")
        .map(|t| t.trim())
        .unwrap_or_default();
    if token.is_empty() {
        return Ok(None);
    }
    Ok(Some(PasskeyProof {
        ceremony_token: SecretString::from(token.to_owned()),
        credential: json_field(fields, "passkey_credential", "passkey")?,
    }))
}

/// The `password` field.
pub(super) fn password(fields: &std::collections::BTreeMap<String, String>) -> SecretString {
    SecretString::from(fields.get("password").cloned().unwrap_or_default())
}

/// The field `name` as a secret (a code, a recovery code), if anything was typed in it.
pub(super) fn typed(fields: &std::collections::BTreeMap<String, String>, name: &str) -> Option<SecretString> {
    fields
        .get(name)
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(|c| SecretString::from(c.to_owned()))
}

/// `POST /account/passkeys`: stores the passkey the script registered (`name`,
/// `ceremony_token`, `credential`), then the list again.
pub(crate) async fn add(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let result = match json_field(&fields, "credential", "credential") {
        Ok(credential) => {
            let request = FinishPasskeyRegistrationRequest {
                ceremony_token: SecretString::from(fields.get("ceremony_token").cloned().unwrap_or_default()),
                name: fields.get("name").cloned().unwrap_or_default(),
                credential,
            };
            api.finish_passkey_registration(&s.caller, request).await.map(|_| ())
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/account/passkeys")),
        Err(err) => passkeys_page(&api, &meta, s, Some((err, fields))).await,
    }
}

/// `POST /account/passkeys/{id}/remove`: removes one of the user's passkeys with the
/// password and a code or the script's passkey proof, then the list again.
pub(crate) async fn remove(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let result = async {
        let id = path_id::<PasskeyId>("passkey_id", &id)?;
        let request = RemovePasskeyRequest {
            password: password(&fields),
            code: typed(&fields, "code"),
            recovery_code: None,
            passkey: passkey_proof(&fields)?,
        };
        api.remove_passkey(&s.caller, &meta, id, request).await
    }
    .await;
    match result {
        Ok(()) => Ok(see_other("/account/passkeys")),
        Err(err) => passkeys_page(&api, &meta, s, Some((err, fields))).await,
    }
}

/// `POST /account/passkeys/{id}/rename`: gives one of the user's passkeys a new `name`
/// (no step-up: a name changes no way of signing in), then the list again.
pub(crate) async fn rename(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let result = async {
        let id = path_id::<PasskeyId>("passkey_id", &id)?;
        let request = RenamePasskeyRequest {
            name: fields.get("name").cloned().unwrap_or_default(),
        };
        api.rename_passkey(&s.caller, id, request).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/account/passkeys")),
        Err(err) => passkeys_page(&api, &meta, s, Some((err, fields))).await,
    }
}
