//! Sign-in and out (and the session and CSRF cookies they set and clear), the MFA
//! challenge, enrollment and org policy, passkeys (registration, passwordless sign-in), sign-up, password reset and change, `me`, sessions, API
//! keys, switching the session's org.

use cookie::{Cookie, SameSite};
use http::StatusCode;
use http::header::{HeaderValue, SET_COOKIE};
use portal_core::ErrorCode;
use portal_core::ids::{ApiKeyId, PasskeyId, SessionId};

use portal_auth::identity::permissions::{API_KEYS_MANAGE, API_KEYS_READ, MFA_POLICY_MANAGE};
use portal_core::access::permissions::ORG_READ;

use super::{Request, Response, authorized_org};
use crate::api::{Api, PageQuery, SignInAnswer};
use crate::dto::{
    BeginPasskeyRegistrationRequest, BeginTotpEnrollmentRequest, ChangePasswordRequest, ConfirmEmailChangeRequest,
    ConfirmTotpRequest, CreateApiKeyRequest, EmailChangeRequestBody, FinishPasskeyRegistrationRequest,
    InvitationSignUp, MfaChallengeRequest, MfaPasskeyChallengeRequest, MfaPasskeyOptionsRequest, MfaPolicyView,
    PasskeySignInRequest, PasswordResetConfirm, PasswordResetRequest, RemovePasskeyRequest, RemoveTotpRequest,
    RenamePasskeyRequest, SecondFactorRequest, SignInRequest, SignInResponse, SignUpConfirm, SignUpRequest,
    SwitchOrgRequest, SwitchOrgResponse, VerifyEmailRequest,
};
use crate::error::ApiError;

/// Which of the two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jar {
    /// The session cookie (the session token, `HttpOnly`).
    Session,
    /// The CSRF cookie (the session's CSRF token, readable by the page's scripts).
    Csrf,
}

/// The `Set-Cookie` value of the session or CSRF cookie: `SameSite=Lax`, `Path=/`, no
/// `Domain`, `Secure` and `__Host-` named per
/// [`HttpConfig::cookie_secure`](crate::HttpConfig::cookie_secure), `HttpOnly` for the
/// session cookie (the CSRF cookie is for the page's scripts); `value` `None` clears it.
pub fn set_cookie(api: &Api, jar: Jar, value: Option<&str>) -> Result<HeaderValue, ApiError> {
    let name = match jar {
        Jar::Session => api.config().session_cookie(),
        Jar::Csrf => api.config().csrf_cookie(),
    };
    let mut cookie = Cookie::build((name, value.unwrap_or_default().to_owned()))
        .http_only(jar == Jar::Session)
        .secure(api.config().cookie_secure)
        .same_site(SameSite::Lax)
        .path("/")
        .build();
    if value.is_none() {
        cookie.make_removal();
    }
    HeaderValue::try_from(cookie.encoded().to_string()).map_err(|_| {
        ApiError::new(
            ErrorCode::Internal,
            format!("the `{name}` cookie is not a header value"),
        )
    })
}

/// `200` with a new session in the body and in the session and CSRF cookies (sign-in).
fn with_session_cookies(api: &Api, session: &SignInResponse) -> Result<Response, ApiError> {
    Ok(Response::ok(session)?
        .with_header(
            SET_COOKIE,
            set_cookie(api, Jar::Session, Some(&session.session_token.0))?,
        )
        .with_header(SET_COOKIE, set_cookie(api, Jar::Csrf, Some(&session.csrf_token))?))
}

pub(super) async fn sign_in(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: SignInRequest = req.json()?;
    let previous = req.cookie(api.config().session_cookie());
    match api.sign_in(&req.meta, body, previous.as_deref()).await? {
        SignInAnswer::Session(signed_in) => with_session_cookies(&api, &signed_in),
        // No session yet: no cookie either, until the challenge is completed.
        SignInAnswer::Challenge(challenge) => Response::json(StatusCode::ACCEPTED, &challenge),
    }
}

pub(super) async fn complete_mfa_challenge(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: MfaChallengeRequest = req.json()?;
    let previous = req.cookie(api.config().session_cookie());
    let signed_in = api.complete_mfa_challenge(&req.meta, body, previous.as_deref()).await?;
    with_session_cookies(&api, &signed_in)
}

pub(super) async fn begin_mfa_passkey(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: MfaPasskeyOptionsRequest = req.json()?;
    Response::ok(&api.begin_mfa_passkey(&req.meta, body).await?)
}

pub(super) async fn complete_mfa_challenge_with_passkey(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: MfaPasskeyChallengeRequest = req.json()?;
    let previous = req.cookie(api.config().session_cookie());
    let signed_in = api
        .complete_mfa_challenge_with_passkey(&req.meta, body, previous.as_deref())
        .await?;
    with_session_cookies(&api, &signed_in)
}

pub(super) async fn mfa_status(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    Response::ok(&api.mfa_status(&caller).await?)
}

pub(super) async fn begin_totp_enrollment(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: BeginTotpEnrollmentRequest = req.json()?;
    Response::json(
        StatusCode::CREATED,
        &api.begin_totp_enrollment(&caller, &req.meta, body).await?,
    )
}

pub(super) async fn confirm_totp(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: ConfirmTotpRequest = req.json()?;
    Response::ok(&api.confirm_totp(&caller, body).await?)
}

pub(super) async fn regenerate_recovery_codes(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: SecondFactorRequest = req.json()?;
    Response::ok(&api.regenerate_recovery_codes(&caller, &req.meta, body).await?)
}

pub(super) async fn remove_totp(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: RemoveTotpRequest = req.json()?;
    api.remove_totp(&caller, &req.meta, body).await?;
    Ok(Response::no_content())
}

pub(super) async fn list_passkeys(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    Response::ok(&api.list_passkeys(&caller).await?)
}

pub(super) async fn begin_passkey_registration(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: BeginPasskeyRegistrationRequest = req.json()?;
    Response::json(
        StatusCode::CREATED,
        &api.begin_passkey_registration(&caller, &req.meta, body).await?,
    )
}

pub(super) async fn begin_passkey_reauthentication(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    Response::json(StatusCode::CREATED, &api.begin_passkey_reauthentication(&caller).await?)
}

pub(super) async fn finish_passkey_registration(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: FinishPasskeyRegistrationRequest = req.json()?;
    Response::json(
        StatusCode::CREATED,
        &api.finish_passkey_registration(&caller, body).await?,
    )
}

pub(super) async fn rename_passkey(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: RenamePasskeyRequest = req.json()?;
    let id = req.id::<PasskeyId>("passkey_id")?;
    Response::ok(&api.rename_passkey(&caller, id, body).await?)
}

pub(super) async fn remove_passkey(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    if caller.context().principal().user().is_none() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "only a signed-in user may do this",
        ));
    }
    let body: RemovePasskeyRequest = req.json()?;
    let id = req.id::<PasskeyId>("passkey_id")?;
    api.remove_passkey(&caller, &req.meta, id, body).await?;
    Ok(Response::no_content())
}

pub(super) async fn begin_passkey_sign_in(api: Api, req: Request) -> Result<Response, ApiError> {
    Response::ok(&api.begin_passkey_sign_in(&req.meta).await?)
}

pub(super) async fn finish_passkey_sign_in(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: PasskeySignInRequest = req.json()?;
    let previous = req.cookie(api.config().session_cookie());
    let signed_in = api.finish_passkey_sign_in(&req.meta, body, previous.as_deref()).await?;
    with_session_cookies(&api, &signed_in)
}

pub(super) async fn get_mfa_policy(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, ORG_READ).await?;
    Response::ok(&api.mfa_policy(&caller, org).await?)
}

pub(super) async fn set_mfa_policy(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, MFA_POLICY_MANAGE).await?;
    let body: MfaPolicyView = req.json()?;
    Response::ok(&api.set_mfa_policy(&caller, org, body).await?)
}

pub(super) async fn sign_out(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    api.sign_out(&caller).await?;
    Ok(Response::no_content()
        .with_header(SET_COOKIE, set_cookie(&api, Jar::Session, None)?)
        .with_header(SET_COOKIE, set_cookie(&api, Jar::Csrf, None)?))
}

pub(super) async fn request_password_reset(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: PasswordResetRequest = req.json()?;
    api.request_password_reset(&req.meta, body).await?;
    Ok(Response::new(StatusCode::ACCEPTED))
}

pub(super) async fn reset_password(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: PasswordResetConfirm = req.json()?;
    api.reset_password(&req.meta, body).await?;
    Ok(Response::no_content())
}

pub(super) async fn request_sign_up(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: SignUpRequest = req.json()?;
    api.request_sign_up(&req.meta, body).await?;
    Ok(Response::new(StatusCode::ACCEPTED))
}

pub(super) async fn complete_sign_up(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: SignUpConfirm = req.json()?;
    let previous = req.cookie(api.config().session_cookie());
    let signed_up = api.complete_sign_up(&req.meta, body, previous.as_deref()).await?;
    with_session_cookies(&api, &signed_up)
}

pub(super) async fn sign_up_by_invitation(api: Api, req: Request) -> Result<Response, ApiError> {
    let body: InvitationSignUp = req.json()?;
    let previous = req.cookie(api.config().session_cookie());
    let signed_up = api.sign_up_by_invitation(&req.meta, body, previous.as_deref()).await?;
    with_session_cookies(&api, &signed_up)
}

pub(super) async fn request_email_verification(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    api.request_email_verification(&caller, &req.meta).await?;
    Ok(Response::new(StatusCode::ACCEPTED))
}

pub(super) async fn verify_email(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: VerifyEmailRequest = req.json()?;
    Response::ok(&api.verify_email(&caller, &req.meta, body).await?)
}

pub(super) async fn request_email_change(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: EmailChangeRequestBody = req.json()?;
    api.request_email_change(&caller, &req.meta, body).await?;
    Ok(Response::new(StatusCode::ACCEPTED))
}

pub(super) async fn confirm_email_change(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: ConfirmEmailChangeRequest = req.json()?;
    Response::ok(&api.confirm_email_change(&caller, &req.meta, body).await?)
}

pub(super) async fn email_status(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    Response::ok(&api.email_status(&caller).await?)
}

pub(super) async fn change_password(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: ChangePasswordRequest = req.json()?;
    let changed = api.change_password(&caller, &req.meta, body).await?;
    let cookies = [
        set_cookie(&api, Jar::Session, Some(&changed.session_token.0))?,
        set_cookie(&api, Jar::Csrf, Some(&changed.csrf_token))?,
    ];
    let body = SwitchOrgResponse::for_caller(changed, caller.via());
    let [session, csrf] = cookies;
    Ok(Response::ok(&body)?
        .with_header(SET_COOKIE, session)
        .with_header(SET_COOKIE, csrf))
}

pub(super) async fn switch_org(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let body: SwitchOrgRequest = req.json()?;
    let switched = api.switch_org(&caller, body).await?;
    let cookies = [
        set_cookie(&api, Jar::Session, Some(&switched.session_token.0))?,
        set_cookie(&api, Jar::Csrf, Some(&switched.csrf_token))?,
    ];
    let body = SwitchOrgResponse::for_caller(switched, caller.via());
    let [session, csrf] = cookies;
    Ok(Response::ok(&body)?
        .with_header(SET_COOKIE, session)
        .with_header(SET_COOKIE, csrf))
}

pub(super) async fn me(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    Response::ok(&api.me(&caller).await?)
}

pub(super) async fn list_sessions(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_sessions(&caller, &query).await?)
}

pub(super) async fn revoke_session(api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    api.revoke_session(&caller, req.id::<SessionId>("session_id")?).await?;
    Ok(Response::no_content())
}

pub(super) async fn list_api_keys(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, API_KEYS_READ).await?;
    let query: PageQuery = req.query()?;
    Response::ok(&api.list_api_keys(&caller, org, &query).await?)
}

pub(super) async fn create_api_key(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, API_KEYS_MANAGE).await?;
    let body: CreateApiKeyRequest = req.json()?;
    let created = api.create_api_key(&caller, org, body).await?;
    Response::json(StatusCode::CREATED, &created)
}

pub(super) async fn revoke_api_key(api: Api, req: Request) -> Result<Response, ApiError> {
    let mut caller = req.authenticate(&api).await?;
    let org = authorized_org(&api, &req, &mut caller, API_KEYS_MANAGE).await?;
    let key = req.id::<ApiKeyId>("key_id")?;
    Response::ok(&api.revoke_api_key(&caller, org, key).await?)
}
