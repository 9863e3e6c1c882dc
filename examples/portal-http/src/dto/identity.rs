//! Identity bodies: sign-in and switching the session's org, `me`, sessions, users, and
//! API keys.

use portal_core::identity::{ApiKeyRecord, PasskeyRecord, SessionRecord};
use portal_core::ids::{ApiKeyId, OrgId, PasskeyId, SessionId, UserId};
use portal_core::tenancy::User;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::common::ShownOnce;
use super::orgs::MyOrgView;

/// `POST /v1/auth/sign-in`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The login email.
    #[schema(example = "ada@acme.example")]
    pub email: String,
    /// The password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub password: SecretString,
}

/// `POST /v1/auth/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    /// The address to send the reset link to.
    #[schema(example = "ada@acme.example")]
    pub email: String,
}

/// `POST /v1/auth/sign-up`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// The address to create the account for; the link goes there.
    #[schema(example = "grace@acme.example")]
    pub email: String,
}

/// `POST /v1/auth/sign-up/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpConfirm {
    /// The token of the mailed sign-up link (its `token` query parameter).
    #[schema(value_type = String, format = Password, example = "psu_…")]
    pub token: SecretString,
    /// How the new user is shown, 1 to 100 characters.
    #[schema(example = "Grace Hopper")]
    pub display_name: String,
    /// The password.
    #[schema(value_type = String, format = Password, example = "a brand new passphrase")]
    pub password: SecretString,
}

/// `POST /v1/auth/sign-up/invitation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationSignUp {
    /// The invitation's token, as mailed to the invited address.
    #[schema(value_type = String, format = Password)]
    pub token: SecretString,
    /// How the new user is shown, 1 to 100 characters.
    #[schema(example = "Grace Hopper")]
    pub display_name: String,
    /// The password.
    #[schema(value_type = String, format = Password, example = "a brand new passphrase")]
    pub password: SecretString,
}

/// `POST /v1/auth/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token of the mailed link (its `token` query parameter).
    #[schema(value_type = String, format = Password, example = "prt_…")]
    pub token: SecretString,
    /// The new password.
    #[schema(value_type = String, format = Password, example = "a brand new passphrase")]
    pub password: SecretString,
}

/// `POST /v1/auth/email-verification/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token of the mailed link (its `token` query parameter).
    #[schema(value_type = String, format = Password, example = "pev_…")]
    pub token: SecretString,
}

/// `POST /v1/auth/email-change`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequestBody {
    /// The new address.
    #[schema(example = "ada.lovelace@acme.example")]
    pub email: String,
    /// The current password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub current_password: SecretString,
    /// The six digits the authenticator app shows now (a user with a second factor sends
    /// one of `code`, `recovery_code` and `passkey`).
    #[schema(value_type = Option<String>, format = Password, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// One of the recovery codes, used up by this request (instead of `code`).
    #[schema(value_type = Option<String>, format = Password, example = "abcd-efgh-ijkl-mnop")]
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
    /// A passkey's answer to a re-authentication ceremony
    /// (`POST /v1/auth/passkeys/reauthentication`), instead of a code.
    #[serde(default)]
    pub passkey: Option<PasskeyProof>,
}

/// `POST /v1/auth/email-change/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEmailChangeRequest {
    /// The token of the link mailed to the new address (its `token` query parameter).
    #[schema(value_type = String, format = Password, example = "pec_…")]
    pub token: SecretString,
}

/// The signed-in user's address and whether it is verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailStatusView {
    /// The address.
    #[schema(example = "ada@acme.example")]
    pub email: String,
    /// Whether this address is verified.
    pub verified: bool,
    /// When it was verified.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub verified_at: Option<OffsetDateTime>,
}

impl From<portal_auth::identity::EmailStatus> for EmailStatusView {
    fn from(status: portal_auth::identity::EmailStatus) -> Self {
        Self {
            email: status.email.as_str().to_owned(),
            verified: status.verified_at.is_some(),
            verified_at: status.verified_at,
        }
    }
}

/// `POST /v1/auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub current_password: SecretString,
    /// The new password.
    #[schema(value_type = String, format = Password, example = "a brand new passphrase")]
    pub new_password: SecretString,
}

/// A signed-in session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInResponse {
    /// The session token, shown once: send it as `Authorization: Bearer <token>`, or rely
    /// on the `portal_session` cookie set with this response.
    pub session_token: ShownOnce,
    /// The CSRF token a cookie-authenticated client sends as `X-CSRF-Token` on unsafe
    /// requests (also set as the readable `portal_csrf` cookie).
    pub csrf_token: String,
    /// The session.
    pub session: SessionView,
}

/// The session an org switch (or a password change) rotated to.
///
/// A caller that authenticated with the `portal_session` cookie gets the new token only in
/// that `HttpOnly` cookie, never in the body, where a page's scripts (and so an injected
/// one) could read it. A bearer caller has no cookie jar to rely on and needs the new token
/// to go on, so it gets it in the body as well, as at sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchOrgResponse {
    /// The new session token, shown once; only when the caller authenticated with
    /// `Authorization: Bearer` (a cookie caller has it in the `portal_session` cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<ShownOnce>,
    /// The new session's CSRF token (also set as the readable `portal_csrf` cookie).
    pub csrf_token: String,
    /// The new session.
    pub session: SessionView,
}

impl SwitchOrgResponse {
    /// The body for a caller who authenticated `via`: `switched` without its token for a
    /// cookie caller.
    pub fn for_caller(switched: SignInResponse, via: AuthVia) -> Self {
        Self {
            session_token: match via {
                AuthVia::Bearer => Some(switched.session_token),
                AuthVia::Cookie => None,
            },
            csrf_token: switched.csrf_token,
            session: switched.session,
        }
    }
}

/// A session of the signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Its id.
    #[schema(value_type = String, example = "ses_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: SessionId,
    /// Its user.
    #[schema(value_type = String)]
    pub user: UserId,
    /// The org requests made with it work in, if any.
    #[schema(value_type = Option<String>)]
    pub active_org: Option<OrgId>,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was last used.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    /// When it ends whatever happens.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub absolute_expires_at: OffsetDateTime,
    /// Whether this request was made with it.
    pub current: bool,
}

impl SessionView {
    /// The view of `record`; `current` when it is the caller's session.
    pub fn new(record: &SessionRecord, current: Option<SessionId>) -> Self {
        Self {
            id: record.id,
            user: record.user,
            active_org: record.active_org,
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            absolute_expires_at: record.absolute_expires_at,
            current: current == Some(record.id),
        }
    }
}

/// The signed-in user's live sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions, newest first.
    pub items: Vec<SessionView>,
    /// The cursor of the next page, if there are more sessions.
    pub next: Option<String>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The principal, such as `user:usr_…` or `api_key:key_…`.
    pub principal: String,
    /// The user, for a user principal.
    pub user: Option<UserView>,
    /// The org the request works in, if any.
    #[schema(value_type = Option<String>)]
    pub org: Option<OrgId>,
    /// The session used, if any.
    #[schema(value_type = Option<String>)]
    pub session: Option<SessionId>,
    /// How the caller authenticated.
    pub via: AuthVia,
    /// The orgs the user belongs to, with their roles: the first page (at most 100, by
    /// id); `GET /v1/orgs` pages through all of them.
    pub orgs: Vec<MyOrgView>,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthVia {
    /// `Authorization: Bearer` (a session token, an API key or an OIDC/JWT token): no CSRF
    /// token needed.
    Bearer,
    /// The `portal_session` cookie: unsafe methods need `X-CSRF-Token`.
    Cookie,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// The normalized email.
    pub email: String,
    /// The display name.
    pub display_name: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.as_str().to_owned(),
        }
    }
}

/// `POST /v1/orgs/{org_id}/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A name for people, 1 to 100 characters.
    #[schema(example = "nightly export")]
    pub name: String,
    /// What the key may do, as `object action`, such as `cases/* read`.
    #[schema(example = json!(["cases/* read"]))]
    pub scopes: Vec<String>,
    /// When it stops working (RFC 3339); at most a year away.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// An API key (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    /// Its org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// Its name.
    pub name: String,
    /// The public prefix of the key, to recognize it.
    pub prefix: String,
    /// What it may do, as `object action`.
    pub scopes: Vec<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was last used (to the minute).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(key: &ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            org: key.org,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            scopes: key.scopes.iter().map(ToString::to_string).collect(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new API key: the key, shown once, and its record.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key: send it as `Authorization: Bearer <key>`. Only its hash is stored.
    pub key: ShownOnce,
    /// The key's record.
    pub api_key: ApiKeyView,
}

/// An org's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, revoked and expired ones included, by id.
    pub items: Vec<ApiKeyView>,
    /// The cursor of the next page, if there are more keys.
    pub next: Option<String>,
}

/// `POST /v1/auth/switch-org`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrgRequest {
    /// The org to work in (`org_…`); the caller must be a member.
    #[schema(example = "org_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub org_id: String,
}

/// `202` of `POST /v1/auth/sign-in` for an account with a second factor: no session yet,
/// a challenge to complete at `POST /v1/auth/mfa/challenge` (a code) or
/// `POST /v1/auth/mfa/challenge/passkey` (a passkey).
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallengeView {
    /// Always `true`: the password was right, and a second factor is needed.
    pub mfa_required: bool,
    /// The challenge token (`pmc_…`), shown once: send it with a code or a passkey's answer
    /// to complete sign-in.
    pub challenge_token: ShownOnce,
    /// When the challenge stops working (5 minutes after sign-in).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The second factors that may answer it: `totp` (a code from the authenticator app, or
    /// a recovery code) and `passkey` (one of the account's passkeys).
    #[schema(example = json!(["totp", "passkey"]))]
    pub factors: Vec<&'static str>,
}

/// `POST /v1/auth/mfa/challenge`: the challenge and exactly one of `code` and
/// `recovery_code`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaChallengeRequest {
    /// The `challenge_token` of the sign-in answer.
    #[schema(value_type = String, format = Password, example = "pmc_…")]
    pub challenge_token: SecretString,
    /// The six digits the authenticator app shows now.
    #[schema(value_type = Option<String>, format = Password, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// One of the recovery codes (`xxxx-xxxx-xxxx-xxxx`), used up by this sign-in.
    #[schema(value_type = Option<String>, format = Password, example = "abcd-efgh-ijkl-mnop")]
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
}

/// `POST /v1/auth/mfa/challenge/passkey/options`: the challenge a passkey is to answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaPasskeyOptionsRequest {
    /// The `challenge_token` of the sign-in answer.
    #[schema(value_type = String, format = Password, example = "pmc_…")]
    pub challenge_token: SecretString,
}

/// `POST /v1/auth/mfa/challenge/passkey`: the challenge, and the authenticator's answer to
/// the ceremony begun for it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaPasskeyChallengeRequest {
    /// The `challenge_token` of the sign-in answer.
    #[schema(value_type = String, format = Password, example = "pmc_…")]
    pub challenge_token: SecretString,
    /// The `ceremony_token` of `POST /v1/auth/mfa/challenge/passkey/options` for this
    /// challenge.
    #[schema(value_type = String, format = Password, example = "ppc_…")]
    pub ceremony_token: SecretString,
    /// The `PublicKeyCredential` `navigator.credentials.get()` gave, as JSON (its
    /// `toJSON()`: `id`, `rawId`, `type`, `response.clientDataJSON`,
    /// `response.authenticatorData`, `response.signature`, `response.userHandle`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `POST /v1/auth/mfa/recovery-codes`: a fresh second factor, exactly one of `code`,
/// `recovery_code` and `passkey`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorRequest {
    /// The six digits the authenticator app shows now.
    #[schema(value_type = Option<String>, format = Password, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// One of the recovery codes, used up by this request.
    #[schema(value_type = Option<String>, format = Password, example = "abcd-efgh-ijkl-mnop")]
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
    /// A passkey's answer to a re-authentication ceremony
    /// (`POST /v1/auth/passkeys/reauthentication`), instead of a code.
    #[serde(default)]
    pub passkey: Option<PasskeyProof>,
}

/// `POST /v1/auth/mfa/totp`: the caller proving themselves again before an authenticator
/// app is put on the account: the password and, when the caller has a passkey, its
/// `passkey` answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginTotpEnrollmentRequest {
    /// The current password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub password: SecretString,
    /// A passkey's answer to a re-authentication ceremony
    /// (`POST /v1/auth/passkeys/reauthentication`), for a caller with a passkey.
    #[serde(default)]
    pub passkey: Option<PasskeyProof>,
}

/// `POST /v1/auth/mfa/totp/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotpRequest {
    /// The six digits the authenticator app shows now, for the secret just enrolled.
    #[schema(value_type = String, format = Password, example = "123456")]
    pub code: SecretString,
}

/// `POST /v1/auth/mfa/totp/remove`: the password and a fresh second factor (exactly one
/// of `code`, `recovery_code` and `passkey`; none is needed for a pending enrollment).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveTotpRequest {
    /// The current password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub password: SecretString,
    /// The six digits the authenticator app shows now.
    #[schema(value_type = Option<String>, format = Password, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// One of the recovery codes, used up by this request.
    #[schema(value_type = Option<String>, format = Password, example = "abcd-efgh-ijkl-mnop")]
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
    /// A passkey's answer to a re-authentication ceremony
    /// (`POST /v1/auth/passkeys/reauthentication`), instead of a code.
    #[serde(default)]
    pub passkey: Option<PasskeyProof>,
}

/// `201` of `POST /v1/auth/mfa/totp`: everything an authenticator app needs, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollmentView {
    /// The secret in base32, for typing into an app.
    pub secret: ShownOnce,
    /// The `otpauth://totp/…` URI.
    pub otpauth_uri: ShownOnce,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: ShownOnce,
}

/// Recovery codes, shown once: each signs in once in place of a TOTP code.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Ten codes, `xxxx-xxxx-xxxx-xxxx`.
    pub recovery_codes: Vec<ShownOnce>,
}

/// `GET /v1/auth/mfa`: the caller's second factors. A confirmed TOTP factor or any
/// passkey meets an org's MFA policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatusView {
    /// `none`, `pending` (enrollment begun, not confirmed) or `confirmed`.
    #[schema(example = "confirmed")]
    pub totp: &'static str,
    /// When the factor was confirmed.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub confirmed_at: Option<OffsetDateTime>,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Registered passkeys, each a second factor too.
    pub passkeys: usize,
}

/// An org's MFA policy; `PUT /v1/orgs/{org_id}/mfa-policy` takes the same body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicyView {
    /// Whether every member must have a second factor (a confirmed TOTP factor or a
    /// passkey) to act in the org.
    pub required: bool,
}

/// A passkey ceremony begun: `201` of `POST /v1/auth/passkeys/registration`, `200` of
/// `POST /v1/auth/passkeys/sign-in/options` and of
/// `POST /v1/auth/mfa/challenge/passkey/options`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyCeremonyView {
    /// The ceremony token (`ppc_…`), shown once: send it back with the authenticator's
    /// answer.
    pub ceremony_token: ShownOnce,
    /// The options for `navigator.credentials.create()` (a registration) or `.get()` (a
    /// sign-in): `{"publicKey": {…}}`, binary fields in base64url (decode them before
    /// calling the browser).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// When the ceremony stops working (5 minutes after it began).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// A passkey's answer to a re-authentication ceremony: the fresh second factor of the
/// signed-in user's own changes, in place of a code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyProof {
    /// The `ceremony_token` of `POST /v1/auth/passkeys/reauthentication`.
    #[schema(value_type = String, format = Password, example = "ppc_…")]
    pub ceremony_token: SecretString,
    /// The `PublicKeyCredential` `navigator.credentials.get()` gave, as JSON (its
    /// `toJSON()`: `id`, `rawId`, `type`, `response.clientDataJSON`,
    /// `response.authenticatorData`, `response.signature`, `response.userHandle`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `POST /v1/auth/passkeys/registration`: the caller proving themselves again before a
/// passkey (which signs in with no password) is added: the password and, when the caller
/// has a second factor, a fresh one (exactly one of `code`, `recovery_code` and
/// `passkey`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginPasskeyRegistrationRequest {
    /// The current password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub password: SecretString,
    /// The six digits the authenticator app shows now.
    #[schema(value_type = Option<String>, format = Password, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// One of the recovery codes, used up by this request.
    #[schema(value_type = Option<String>, format = Password, example = "abcd-efgh-ijkl-mnop")]
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
    /// A passkey's answer to a re-authentication ceremony
    /// (`POST /v1/auth/passkeys/reauthentication`), instead of a code.
    #[serde(default)]
    pub passkey: Option<PasskeyProof>,
}

/// `POST /v1/auth/passkeys`: the authenticator's answer to a registration ceremony.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishPasskeyRegistrationRequest {
    /// The `ceremony_token` of `POST /v1/auth/passkeys/registration`.
    #[schema(value_type = String, format = Password, example = "ppc_…")]
    pub ceremony_token: SecretString,
    /// What to call the passkey: at most 64 characters, not only spaces (trimmed), no
    /// control character.
    #[schema(
        example = "Work laptop",
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x1f\\x7f-\\x9f\\s][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// The `PublicKeyCredential` `navigator.credentials.create()` gave, as JSON (its
    /// `toJSON()`: `id`, `rawId`, `type`, `response.clientDataJSON`,
    /// `response.attestationObject`, binary fields in base64url).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `POST /v1/auth/passkeys/sign-in`: the authenticator's answer to a sign-in ceremony.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInRequest {
    /// The `ceremony_token` of `POST /v1/auth/passkeys/sign-in/options`.
    #[schema(value_type = String, format = Password, example = "ppc_…")]
    pub ceremony_token: SecretString,
    /// The `PublicKeyCredential` `navigator.credentials.get()` gave, as JSON (its
    /// `toJSON()`: `id`, `rawId`, `type`, `response.clientDataJSON`,
    /// `response.authenticatorData`, `response.signature`, `response.userHandle`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `PATCH /v1/auth/passkeys/{passkey_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenamePasskeyRequest {
    /// The new name: at most 64 characters, not only spaces (trimmed), no control
    /// character.
    #[schema(
        example = "Old laptop",
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x1f\\x7f-\\x9f\\s][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
}

/// `POST /v1/auth/passkeys/{passkey_id}/remove`: the password, and a fresh second factor
/// (exactly one of `code`, `recovery_code` and `passkey`) when the caller has one (a
/// confirmed TOTP factor or a passkey: with a passkey, always).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovePasskeyRequest {
    /// The current password.
    #[schema(value_type = String, format = Password, example = "correct horse battery staple")]
    pub password: SecretString,
    /// The six digits the authenticator app shows now.
    #[schema(value_type = Option<String>, format = Password, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// One of the recovery codes, used up by this request.
    #[schema(value_type = Option<String>, format = Password, example = "abcd-efgh-ijkl-mnop")]
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
    /// A passkey's answer to a re-authentication ceremony
    /// (`POST /v1/auth/passkeys/reauthentication`), instead of a code.
    #[serde(default)]
    pub passkey: Option<PasskeyProof>,
}

/// One of the signed-in user's passkeys. Nothing of the credential itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// Its id.
    #[schema(value_type = String, example = "pky_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: PasskeyId,
    /// The user's name for it.
    #[schema(example = "Work laptop")]
    pub name: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last signed the user in.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl PasskeyView {
    /// The view of a stored passkey.
    pub fn new(passkey: &PasskeyRecord) -> Self {
        Self {
            id: passkey.id,
            name: passkey.name.to_string(),
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
        }
    }
}

/// `GET /v1/auth/passkeys`: the signed-in user's passkeys, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// The passkeys, oldest first.
    pub items: Vec<PasskeyView>,
}
