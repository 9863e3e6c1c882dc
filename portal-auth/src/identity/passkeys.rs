//! Passkeys (WebAuthn) as a service: registration by a signed-in user, listing, renaming,
//! removal, and passwordless sign-in with a discoverable credential. Configured with
//! [`Passkeys`]; the relying party's checks are `webauthn-rs`'.
//!
//! - **Ceremonies**: every ceremony has two steps. `begin_*` answers the options for
//!   `navigator.credentials.create()` / `.get()` and a `ppc_` ceremony token (256 random
//!   bits); the relying party's state (the challenge and what the answer must match) is
//!   kept in the [`PasskeyStore`] under the token's SHA-256, so any replica finishes it.
//!   `finish_*` takes the ceremony once (a second answer to one ceremony is
//!   `auth.token_used`, a late one `auth.token_expired`, an unknown or malformed token
//!   `auth.token_invalid`, param `ceremony_token`) and then checks the answer.
//! - **Registration** ([`begin_passkey_registration`](IdentityService::begin_passkey_registration),
//!   [`finish_passkey_registration`](IdentityService::finish_passkey_registration)): a
//!   signed-in user (not an API key, not anonymous); user verification is required; the
//!   user's passkeys are excluded so one authenticator registers once; a registration
//!   ceremony is bound to the user who began it (`auth.token_wrong_user` for another). A
//!   credential id some account has already is `passkey.already_registered`. Stored with
//!   `user.passkey_added` once per org of the user, in the store's transaction.
//! - **Sign-in** ([`begin_passkey_sign_in`](IdentityService::begin_passkey_sign_in),
//!   [`finish_passkey_sign_in`](IdentityService::finish_passkey_sign_in)): no email
//!   first; the authenticator offers a discoverable credential, whose user handle (the
//!   user's id) must name the account that registered it. User verification is required,
//!   so the passkey is both factors: the session starts at once, with no MFA challenge, as
//!   an MFA challenge answered would (`user.signed_in` with `method: passkey`). The
//!   signature counter must move forward (`auth.passkey_counter_regressed` otherwise: a
//!   cloned authenticator, or an assertion replayed), checked by `webauthn-rs` and again
//!   by the store's atomic step, so two replicas racing cannot both accept one counter.
//!   Throttled as password sign-in is (source, account, account from source): a refused
//!   answer counts as a failed sign-in, and a throttled source is refused before any
//!   check.
//! - **Second factor**: a registered passkey is a second factor. It meets an org's MFA
//!   policy (the store's `mfa_unmet` counts it, until it is removed), a password sign-in of
//!   its user answers an MFA challenge, and
//!   [`begin_mfa_passkey`](IdentityService::begin_mfa_passkey) and
//!   [`complete_mfa_challenge_with_passkey`](IdentityService::complete_mfa_challenge_with_passkey)
//!   answer that challenge with an assertion: the options allow only the challenge user's
//!   passkeys, user verification is required, the ceremony (purpose `mfa_challenge`) is
//!   bound to the challenge and its user and taken once, the passkey must still be that
//!   user's when the answer comes, and its counter moves forward as in sign-in. Throttled
//!   as the code of a challenge is; the challenge is used once, then the session starts.
//! - **Removal** ([`remove_passkey`](IdentityService::remove_passkey)) asks what removing
//!   the TOTP factor asks: the password, and a fresh TOTP or recovery code when the user
//!   has a confirmed TOTP factor, throttled as sign-in is; `user.passkey_removed` once per
//!   org. **Renaming** needs only the session.
//! - **Refusals** of an answer are `auth.passkey_refused` (param `credential`): malformed,
//!   another origin or relying party id, another challenge, no user verification, a bad
//!   signature, an unknown credential, a user handle that names another account. The
//!   reason goes only to diagnostics (`failure`).
//! - **Events** (journal, kind `authentication`): `auth.passkey.register_begin`,
//!   `auth.passkey.register`, `auth.passkey.rename`, `auth.passkey.remove`,
//!   `auth.passkey.sign_in_begin`, `auth.passkey.sign_in` (with `failure` when refused),
//!   `auth.mfa.passkey_begin`, and `auth.mfa.challenge` (with `factor: passkey`).
//!   No token, challenge, credential or public key is in any.

use std::sync::Arc;
use std::time::Instant;

use portal_core::audit::actions;
use portal_core::diagnostics::DiagnosticEvent;
use portal_core::identity::{
    CeremonyPurpose, CeremonyUse, PasskeyCeremonyRecord, PasskeyName, PasskeyRecord, PasskeyStore, PasskeyUse,
    ThrottleKey,
};
use portal_core::ids::{PasskeyId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::Email;
use portal_core::{ErrorCode, PortalError, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use webauthn_rs::prelude::{
    AuthenticationResult, Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::mfa::SecondFactor;
use super::token::CeremonyToken;
use super::{IdentityService, NewSession, principal_user};

/// How passkeys work: where they and their ceremonies are kept, and the relying party
/// (the site) they are bound to.
#[derive(Clone)]
pub struct Passkeys {
    /// Where passkeys and ceremony state are kept.
    pub store: Arc<dyn PasskeyStore>,
    webauthn: Arc<Webauthn>,
    rp_id: String,
    /// How long a ceremony may take between its two steps. Default 5 minutes.
    pub ceremony_lifetime: Duration,
}

impl Passkeys {
    /// Passkeys kept in `store`, for the relying party `rp_id` (the site's domain, such as
    /// `portal.example.com`) answering on `origin` (such as `https://portal.example.com`,
    /// whose host must be `rp_id` or under it), named `rp_name` to users, with 5-minute
    /// ceremonies.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `passkey_origin`) for an origin that is not a
    /// URL, or that `webauthn-rs` refuses with `rp_id` (another site, not `https` outside
    /// `localhost`).
    pub fn new(store: Arc<dyn PasskeyStore>, rp_id: &str, origin: &str, rp_name: &str) -> Result<Self, PortalError> {
        let refused = |message: String| PortalError::invalid_field("passkey_origin", message);
        let origin = Url::parse(origin).map_err(|err| refused(format!("the passkey origin is not a URL: {err}")))?;
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .map(|builder| builder.rp_name(rp_name))
            .and_then(WebauthnBuilder::build)
            .map_err(|err| refused(format!("the passkey relying party is refused: {err}")))?;
        Ok(Self {
            store,
            webauthn: Arc::new(webauthn),
            rp_id: rp_id.to_owned(),
            ceremony_lifetime: Duration::minutes(5),
        })
    }

    /// The same, with ceremonies valid for `lifetime`.
    #[must_use]
    pub fn with_ceremony_lifetime(mut self, lifetime: Duration) -> Self {
        self.ceremony_lifetime = lifetime;
        self
    }

    /// The relying party id passkeys are bound to.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("rp_id", &self.rp_id)
            .field("ceremony_lifetime", &self.ceremony_lifetime)
            .finish_non_exhaustive()
    }
}

/// A ceremony begun: the options to hand to `navigator.credentials.create()` (a
/// registration) or `.get()` (a sign-in), and the token that finishes it, shown once.
pub struct PasskeyCeremony {
    /// The `ppc_` token; only its hash is stored.
    pub token: SecretString,
    /// The WebAuthn options as JSON (`{"publicKey": {...}}`, binary fields base64url).
    pub options: Value,
    /// When the ceremony stops working.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for PasskeyCeremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyCeremony")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why an answer was refused (for the event only).
#[derive(Debug, Clone, Copy)]
enum PasskeyFailure {
    Malformed,
    Unverified,
    UnknownCredential,
    OtherUser,
    CounterRegressed,
    Locked,
}

impl PasskeyFailure {
    fn as_str(self) -> &'static str {
        match self {
            PasskeyFailure::Malformed => "malformed",
            PasskeyFailure::Unverified => "unverified",
            PasskeyFailure::UnknownCredential => "unknown_credential",
            PasskeyFailure::OtherUser => "other_user",
            PasskeyFailure::CounterRegressed => "counter_regressed",
            PasskeyFailure::Locked => "locked",
        }
    }

    fn error(self) -> PortalError {
        match self {
            PasskeyFailure::CounterRegressed => PortalError::new(
                ErrorCode::PasskeyCounterRegressed,
                "the passkey's signature counter went backwards; it may be cloned",
            ),
            _ => {
                PortalError::new(ErrorCode::PasskeyRefused, "the passkey's answer was refused").with_param("credential")
            }
        }
    }
}

/// What an MFA challenge's passkey ceremony keeps: the challenge it answers (the SHA-256
/// of its token) and the relying party's state, which allows only the passkeys the
/// challenge's user had when it began.
#[derive(Serialize, Deserialize)]
struct MfaCeremonyState {
    challenge: [u8; 32],
    authentication: PasskeyAuthentication,
}

fn ceremony_error(code: ErrorCode, message: &str) -> PortalError {
    PortalError::new(code, message.to_owned()).with_param("ceremony_token")
}

fn passkey_not_found() -> PortalError {
    PortalError::new(ErrorCode::PasskeyNotFound, "no such passkey")
}

fn internal(message: &str, err: impl std::fmt::Display) -> PortalError {
    PortalError::new(ErrorCode::Internal, message.to_owned()).with_source(err.to_string())
}

/// Reads the client's answer as `T`, or says it is malformed.
fn answer<T: serde::de::DeserializeOwned>(credential: &Value) -> Result<T, PasskeyFailure> {
    serde_json::from_value(credential.clone()).map_err(|_| PasskeyFailure::Malformed)
}

/// What a refusal of `webauthn-rs` means here.
fn webauthn_failure(err: &WebauthnError) -> PasskeyFailure {
    match err {
        WebauthnError::CredentialPossibleCompromise => PasskeyFailure::CounterRegressed,
        _ => PasskeyFailure::Unverified,
    }
}

impl IdentityService {
    pub(super) fn passkeys_config(&self) -> Result<Arc<Passkeys>, PortalError> {
        self.inner.passkeys.clone().ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "passkeys are not configured (IdentityService::with_passkeys)",
            )
        })
    }

    /// Stores a new ceremony of `purpose` (for `user`) holding `state`, and answers it
    /// with `options`.
    async fn begin_ceremony(
        &self,
        ctx: &RequestContext,
        passkeys: &Passkeys,
        purpose: CeremonyPurpose,
        user: Option<UserId>,
        state: String,
        options: Value,
    ) -> Result<PasskeyCeremony, PortalError> {
        let token = CeremonyToken::generate()?;
        let record = PasskeyCeremonyRecord {
            token_hash: token.hash(),
            purpose,
            user,
            state: SecretString::from(state),
            created_at: ctx.now(),
            expires_at: ctx.now() + passkeys.ceremony_lifetime,
            used_at: None,
        };
        passkeys.store.begin_ceremony(&record).await?;
        Ok(PasskeyCeremony {
            token: token.into_secret(),
            options,
            expires_at: record.expires_at,
        })
    }

    /// Takes the ceremony of `purpose` named by `token`, once.
    async fn take_ceremony(
        &self,
        ctx: &RequestContext,
        passkeys: &Passkeys,
        purpose: CeremonyPurpose,
        token: &SecretString,
    ) -> Result<PasskeyCeremonyRecord, PortalError> {
        let invalid = || ceremony_error(ErrorCode::TokenInvalid, "the ceremony token is not valid");
        let hash = CeremonyToken::parse(token).ok_or_else(invalid)?.hash();
        match passkeys.store.take_ceremony(purpose, &hash, ctx.now()).await? {
            CeremonyUse::Taken(record) => Ok(record),
            CeremonyUse::AlreadyUsed => Err(ceremony_error(
                ErrorCode::TokenUsed,
                "the ceremony was already finished",
            )),
            CeremonyUse::Expired => Err(ceremony_error(
                ErrorCode::TokenExpired,
                "the ceremony has expired; begin again",
            )),
            CeremonyUse::Unknown => Err(invalid()),
        }
    }

    /// Takes the ceremony of `purpose` named by `token`, once ([`take_ceremony`](Self::take_ceremony)),
    /// and answers its state; a ceremony `user` did not begin is `auth.token_wrong_user`
    /// (param `ceremony_token`), and is used up all the same.
    async fn take_users_ceremony<T: serde::de::DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        passkeys: &Passkeys,
        purpose: CeremonyPurpose,
        token: &SecretString,
        user: UserId,
    ) -> Result<T, PortalError> {
        let ceremony = self.take_ceremony(ctx, passkeys, purpose, token).await?;
        if ceremony.user != Some(user) {
            return Err(ceremony_error(
                ErrorCode::TokenWrongUser,
                "the ceremony was begun by another user",
            ));
        }
        serde_json::from_str(ceremony.state.expose_secret())
            .map_err(|err| internal("the state of a passkey ceremony could not be read", err))
    }

    fn record_passkey<T>(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        started: Instant,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> Value,
        failure: Option<(PasskeyFailure, Value)>,
    ) {
        match (result, failure) {
            (Err(err), Some((failure, mut seen))) => {
                if !seen.is_object() {
                    seen = json!({});
                }
                seen["failure"] = json!(failure.as_str());
                let event: DiagnosticEvent = Self::event(ctx, name, None, started)
                    .with_error(err.code())
                    .with_detail(format!("{name}.v1"), seen);
                self.inner.gate.record(event);
            }
            _ => self.record(ctx, name, None, started, result, detail),
        }
    }

    /// Begins registering a passkey for the signed-in user, after they prove themselves
    /// again: their `password` and, when they have a second factor (a confirmed TOTP
    /// factor or a passkey, with [`Mfa`](super::Mfa)), a fresh one (`factor`: a code, a
    /// recovery code, or one of their passkeys), both from `source` and throttled as
    /// sign-in is. A passkey signs its user in with no password, so a session alone (one
    /// stolen, or left open) must not be enough to add one. Answers the options for
    /// `navigator.credentials.create()` (user verification required, the user's passkeys
    /// excluded) and the ceremony token that
    /// [`finish_passkey_registration`](Self::finish_passkey_registration) takes.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.invalid_credentials` for a wrong password;
    /// `auth.mfa_code_invalid` (`code`, `recovery_code`) for a missing or refused factor;
    /// `auth.passkey_refused` (`credential`) and the ceremony's `auth.token_*` for a
    /// refused passkey; `auth.mfa_not_enrolled` for a code without a TOTP factor;
    /// `validation.invalid_field` (`source`); `service.busy`; `internal.error` without
    /// [`Passkeys`]; `storage.*`.
    pub async fn begin_passkey_registration(
        &self,
        ctx: &RequestContext,
        password: SecretString,
        factor: Option<SecondFactor>,
        source: &str,
    ) -> Result<PasskeyCeremony, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let passkeys = self.passkeys_config()?;
            let source = ThrottleKey::source(source)?;
            self.reauthenticate(ctx, user, password, factor.as_ref(), &source, "add_passkey")
                .await?;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "no such user"))?;
            let exclude: Vec<Vec<u8>> = passkeys
                .store
                .passkeys(user)
                .await?
                .into_iter()
                .map(|p| p.credential_id)
                .collect();
            let (options, state) = passkeys
                .webauthn
                .start_passkey_registration(
                    user.as_uuid(),
                    account.email.as_str(),
                    account.display_name.as_str(),
                    Some(exclude),
                )
                .map_err(|err| internal("the passkey registration could not begin", err))?;
            let state = serde_json::to_string(&state).map_err(|err| internal("the ceremony state", err))?;
            let mut options = serde_json::to_value(&options).map_err(|err| internal("the ceremony options", err))?;
            require_discoverable(&mut options);
            self.begin_ceremony(
                ctx,
                &passkeys,
                CeremonyPurpose::Registration,
                Some(user),
                state,
                options,
            )
            .await
        }
        .await;
        self.record(
            ctx,
            "auth.passkey.register_begin",
            None,
            started,
            result.as_ref(),
            |c| json!({ "user": user, "expires_at": c.expires_at }),
        );
        result
    }

    /// Finishes the signed-in user's registration begun with `token`: checks the
    /// authenticator's answer `credential` (the JSON of the `PublicKeyCredential`
    /// `navigator.credentials.create()` gave) and stores the passkey as `name`, writing
    /// `user.passkey_added` once per org of the user.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `validation.invalid_field` (`name`);
    /// `auth.token_invalid`, `auth.token_used`, `auth.token_expired`,
    /// `auth.token_wrong_user` (`ceremony_token`); `auth.passkey_refused` (`credential`);
    /// `passkey.already_registered`; `internal.error` without [`Passkeys`]; `storage.*`.
    pub async fn finish_passkey_registration(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        name: &str,
        credential: &Value,
    ) -> Result<PasskeyRecord, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let mut failure = None;
        let result = async {
            let user = principal_user(ctx)?;
            let passkeys = self.passkeys_config()?;
            let name = PasskeyName::new(name)?;
            let state: PasskeyRegistration = self
                .take_users_ceremony(ctx, &passkeys, CeremonyPurpose::Registration, token, user)
                .await?;
            let registered = answer::<RegisterPublicKeyCredential>(credential)
                .and_then(|reg| {
                    passkeys
                        .webauthn
                        .finish_passkey_registration(&reg, &state)
                        .map_err(|err| webauthn_failure(&err))
                })
                .map_err(|f| {
                    failure = Some(f);
                    f.error()
                })?;
            let stored = serde_json::to_string(&registered).map_err(|err| internal("the passkey", err))?;
            let sign_count = Credential::from(registered.clone()).counter;
            let record = PasskeyRecord {
                id: PasskeyId::generate(&*self.inner.ids, ctx.now()),
                user,
                credential_id: registered.cred_id().to_vec(),
                name,
                credential: stored,
                sign_count,
                created_at: ctx.now(),
                last_used_at: None,
            };
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_PASSKEY_ADDED,
                    json!({ "passkey": record.id, "name": record.name.as_str() }),
                )
                .await?;
            passkeys
                .store
                .add_passkey(&record, &event)
                .await
                .map_err(|err| match err {
                    StoreError::Conflict(Conflict::AlreadyExists { .. }) => {
                        PortalError::new(ErrorCode::PasskeyExists, "this passkey is registered already")
                    }
                    other => other.into(),
                })?;
            Ok(record)
        }
        .await;
        self.record_passkey(
            ctx,
            "auth.passkey.register",
            started,
            result.as_ref(),
            |p| json!({ "user": p.user, "passkey": p.id }),
            failure.map(|f| (f, json!({ "user": user }))),
        );
        result
    }

    /// Deletes the passkey ceremonies (registration and sign-in state) that expired before
    /// `ctx`'s time, used or not, and returns how many it deleted; without [`Passkeys`]
    /// there are none. Nothing else removes them, and a sign-in ceremony is begun by anyone:
    /// a host calls this now and then (the reference servers every five minutes, with the
    /// failed sign-ins).
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn prune_passkey_ceremonies(&self, ctx: &RequestContext) -> Result<u64, PortalError> {
        match &self.inner.passkeys {
            Some(passkeys) => Ok(passkeys.store.prune_ceremonies(ctx.now()).await?),
            None => Ok(0),
        }
    }

    /// The signed-in user's passkeys, oldest first.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `internal.error` without [`Passkeys`]; `storage.*`.
    pub async fn passkeys(&self, ctx: &RequestContext) -> Result<Vec<PasskeyRecord>, PortalError> {
        let user = principal_user(ctx)?;
        let passkeys = self.passkeys_config()?;
        Ok(passkeys.store.passkeys(user).await?)
    }

    /// Renames the signed-in user's passkey `id` to `name` and answers it as stored.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `validation.invalid_field` (`name`);
    /// `passkey.not_found` for an id that is not one of the user's passkeys;
    /// `internal.error` without [`Passkeys`]; `storage.*`.
    pub async fn rename_passkey(
        &self,
        ctx: &RequestContext,
        id: PasskeyId,
        name: &str,
    ) -> Result<PasskeyRecord, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let passkeys = self.passkeys_config()?;
            let name = PasskeyName::new(name)?;
            if !passkeys.store.rename_passkey(user, id, &name).await? {
                return Err(passkey_not_found());
            }
            passkeys
                .store
                .passkeys(user)
                .await?
                .into_iter()
                .find(|p| p.id == id)
                .ok_or_else(passkey_not_found)
        }
        .await;
        self.record(
            ctx,
            "auth.passkey.rename",
            None,
            started,
            result.as_ref(),
            |_| json!({ "user": user, "passkey": id }),
        );
        result
    }

    /// Removes the signed-in user's passkey `id` after their password and, when they have
    /// a second factor (with [`Mfa`](super::Mfa): a confirmed TOTP factor, or this or
    /// another passkey), a fresh one `factor` (a code, a recovery code, or a passkey's
    /// answer to [`begin_passkey_reauthentication`](Self::begin_passkey_reauthentication);
    /// both from `source`, throttled as sign-in is), as removing the TOTP factor asks; writes
    /// `user.passkey_removed` once per org of the user. Removing the last passkey of a user
    /// without a TOTP factor leaves them without a second factor: orgs requiring one refuse
    /// them (`auth.mfa_required`) until they enroll one again.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.invalid_credentials` for a wrong password;
    /// `auth.mfa_code_invalid` (`code` or `recovery_code`) for a missing or refused
    /// factor; `auth.passkey_refused` (`credential`) and the ceremony's `auth.token_*`
    /// for a refused passkey; `auth.mfa_not_enrolled` for a code without a TOTP factor;
    /// `passkey.not_found` for an id that is not one of the user's passkeys;
    /// `validation.invalid_field` (`source`); `service.busy`; `internal.error` without
    /// [`Passkeys`]; `storage.*`.
    pub async fn remove_passkey(
        &self,
        ctx: &RequestContext,
        id: PasskeyId,
        password: SecretString,
        factor: Option<SecondFactor>,
        source: &str,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let passkeys = self.passkeys_config()?;
            let source = ThrottleKey::source(source)?;
            self.confirm_own_password(ctx, user, password, &source).await?;
            let name = passkeys
                .store
                .passkeys(user)
                .await?
                .into_iter()
                .find(|p| p.id == id)
                .map(|p| p.name.to_string())
                .ok_or_else(passkey_not_found)?;
            self.fresh_factor_if_any(ctx, user, factor.as_ref(), &source, "remove_passkey")
                .await?;
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_PASSKEY_REMOVED,
                    json!({ "passkey": id, "name": name }),
                )
                .await?;
            if !passkeys.store.remove_passkey(user, id, &event).await? {
                return Err(passkey_not_found());
            }
            Ok(())
        }
        .await;
        self.record(
            ctx,
            "auth.passkey.remove",
            None,
            started,
            result.as_ref(),
            |_| json!({ "user": user, "passkey": id }),
        );
        result
    }

    /// Begins a re-authentication of the signed-in user with one of their passkeys: the
    /// options for `navigator.credentials.get()` (only the user's passkeys allowed, user
    /// verification required) and the ceremony token. The answer, with the token, is the
    /// fresh second factor ([`SecondFactor::Passkey`]) that new recovery codes, adding or removing a
    /// factor (a passkey, the TOTP factor) and a change of email ask for; the ceremony is taken by
    /// the first of them it is sent to, once, and only for this user.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.mfa_not_enrolled` when the user has no
    /// passkey; `internal.error` without [`Passkeys`]; `storage.*`.
    pub async fn begin_passkey_reauthentication(&self, ctx: &RequestContext) -> Result<PasskeyCeremony, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let passkeys = self.passkeys_config()?;
            let (options, authentication) = user_passkey_options(&passkeys, user, "confirm with a code").await?;
            let state = serde_json::to_string(&authentication).map_err(|err| internal("the ceremony state", err))?;
            self.begin_ceremony(
                ctx,
                &passkeys,
                CeremonyPurpose::Reauthentication,
                Some(user),
                state,
                options,
            )
            .await
        }
        .await;
        self.record(
            ctx,
            "auth.passkey.reauthenticate_begin",
            None,
            started,
            result.as_ref(),
            |c| json!({ "user": user, "expires_at": c.expires_at }),
        );
        result
    }

    /// Checks a passkey's answer `credential` to the re-authentication ceremony
    /// `ceremony` as a fresh second factor of the signed-in `user`, from `source`: a
    /// throttled source is refused before the ceremony is taken; the ceremony is taken
    /// once and must be `user`'s; the answer must verify with user verification, by a
    /// passkey still `user`'s, its counter moving forward; a refused answer counts as a
    /// failed sign-in. Records `auth.passkey.reauthenticate`.
    pub(super) async fn fresh_passkey_of_caller(
        &self,
        ctx: &RequestContext,
        user: UserId,
        ceremony: &SecretString,
        credential: &Value,
        source: &ThrottleKey,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let mut failure = None;
        let result = async {
            let passkeys = self.passkeys_config()?;
            let email = self.inner.tenancy.get_user(user).await?.map(|u| u.email);
            if self.factor_throttled(ctx, source, email.as_ref()).await? {
                failure = Some(PasskeyFailure::Locked);
                return Err(PasskeyFailure::Locked.error());
            }
            let state: PasskeyAuthentication = self
                .take_users_ceremony(ctx, &passkeys, CeremonyPurpose::Reauthentication, ceremony, user)
                .await?;
            let outcome = self
                .check_challenge_assertion(ctx, &passkeys, user, &state, credential)
                .await?;
            self.record_factor_outcome(ctx, source, email.as_ref(), outcome.is_ok())
                .await?;
            outcome.map_err(|refusal| {
                failure = Some(refusal);
                refusal.error()
            })
        }
        .await;
        self.record_passkey(
            ctx,
            "auth.passkey.reauthenticate",
            started,
            result.as_ref(),
            |()| json!({ "user": user }),
            failure.map(|f| (f, json!({ "user": user }))),
        );
        result
    }

    /// Begins a passwordless sign-in: the options for `navigator.credentials.get()`
    /// (no account named, user verification required) and the ceremony token that
    /// [`finish_passkey_sign_in`](Self::finish_passkey_sign_in) takes. Anyone may begin
    /// one.
    ///
    /// # Errors
    ///
    /// `internal.error` without [`Passkeys`]; `storage.*`.
    pub async fn begin_passkey_sign_in(&self, ctx: &RequestContext) -> Result<PasskeyCeremony, PortalError> {
        let started = Instant::now();
        let result = async {
            let passkeys = self.passkeys_config()?;
            let (options, state) = passkeys
                .webauthn
                .start_discoverable_authentication()
                .map_err(|err| internal("the passkey sign-in could not begin", err))?;
            let state = serde_json::to_string(&state).map_err(|err| internal("the ceremony state", err))?;
            let mut options = serde_json::to_value(&options).map_err(|err| internal("the ceremony options", err))?;
            // `webauthn-rs` asks for conditional mediation (autofill); the portal offers a
            // button, so the browser's own prompt is what it wants.
            if let Some(map) = options.as_object_mut() {
                map.remove("mediation");
            }
            self.begin_ceremony(ctx, &passkeys, CeremonyPurpose::SignIn, None, state, options)
                .await
        }
        .await;
        self.record(
            ctx,
            "auth.passkey.sign_in_begin",
            None,
            started,
            result.as_ref(),
            |c| json!({ "expires_at": c.expires_at }),
        );
        result
    }

    /// Finishes a passwordless sign-in begun with `token`: checks the authenticator's
    /// answer `credential` (the JSON of the `PublicKeyCredential`
    /// `navigator.credentials.get()` gave) from `source`, and starts a session for the
    /// passkey's user (revoking `previous_session`, as sign-in does). Throttled as
    /// password sign-in is.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid`, `auth.token_used`, `auth.token_expired` (`ceremony_token`);
    /// `auth.passkey_refused` (`credential`), also while the throttle refuses the source;
    /// `auth.passkey_counter_regressed`; `validation.invalid_field` (`source`);
    /// `internal.error` without [`Passkeys`]; `storage.*`.
    pub async fn finish_passkey_sign_in(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        credential: &Value,
        source: &str,
        previous_session: Option<&SecretString>,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut failure = None;
        let mut user_seen = None;
        let result = async {
            let passkeys = self.passkeys_config()?;
            let source = ThrottleKey::source(source)?;
            let attempts = &self.inner.stores.attempts;
            let config = &self.inner.config;
            let since = ctx.now() - config.throttle_window;
            if attempts.failures_since(&source, since).await? >= config.max_source_failures {
                failure = Some(PasskeyFailure::Locked);
                return Err(PasskeyFailure::Locked.error());
            }
            let ceremony = self
                .take_ceremony(ctx, &passkeys, CeremonyPurpose::SignIn, token)
                .await?;
            let state: DiscoverableAuthentication = serde_json::from_str(ceremony.state.expose_secret())
                .map_err(|err| internal("the state of a passkey ceremony could not be read", err))?;
            let (outcome, email) = self
                .check_assertion(ctx, &passkeys, state, credential, &source, &mut user_seen)
                .await?;
            let pair = email.as_ref().and_then(|email| source.with_account(email));
            match outcome {
                Ok(user) => {
                    if let Some(pair) = &pair {
                        attempts.clear(pair).await?;
                    }
                    let session = self.start_session(ctx, user, previous_session, "passkey").await?;
                    Ok(session)
                }
                Err(refusal) => {
                    failure = Some(refusal);
                    if !matches!(refusal, PasskeyFailure::Locked) {
                        let account = email.clone().map(ThrottleKey::Account);
                        for key in [Some(&source), pair.as_ref(), account.as_ref()].into_iter().flatten() {
                            attempts.record_failure(key, ctx.now()).await?;
                        }
                    }
                    Err(refusal.error())
                }
            }
        }
        .await;
        self.record_passkey(
            ctx,
            "auth.passkey.sign_in",
            started,
            result.as_ref(),
            |s| json!({ "user": s.session.user, "session": s.session.id }),
            failure.map(|f| (f, json!({ "user": user_seen }))),
        );
        result
    }

    /// Begins answering the MFA challenge `challenge` (of a password sign-in,
    /// [`begin_sign_in`](Self::begin_sign_in)) with a passkey: the options for
    /// `navigator.credentials.get()` (only the challenge user's passkeys allowed, user
    /// verification required) and the ceremony token that
    /// [`complete_mfa_challenge_with_passkey`](Self::complete_mfa_challenge_with_passkey)
    /// takes with the same challenge. Uses nothing: the challenge stays open.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid`, `auth.token_used`, `auth.token_expired` (`challenge_token`);
    /// `auth.mfa_not_enrolled` when the user has no passkey; `internal.error` without
    /// [`Mfa`](super::Mfa) or [`Passkeys`]; `storage.*`.
    pub async fn begin_mfa_passkey(
        &self,
        ctx: &RequestContext,
        challenge: &SecretString,
    ) -> Result<PasskeyCeremony, PortalError> {
        let started = Instant::now();
        let mut user_seen = None;
        let result = async {
            let mfa = self.mfa_config()?;
            let passkeys = self.passkeys_config()?;
            let (hash, record) = self.open_challenge(ctx, &mfa, challenge).await?;
            let user = record.user;
            user_seen = Some(user);
            let (options, authentication) =
                user_passkey_options(&passkeys, user, "answer the challenge with a code").await?;
            let state = MfaCeremonyState {
                challenge: hash.0,
                authentication,
            };
            let state = serde_json::to_string(&state).map_err(|err| internal("the ceremony state", err))?;
            self.begin_ceremony(
                ctx,
                &passkeys,
                CeremonyPurpose::MfaChallenge,
                Some(user),
                state,
                options,
            )
            .await
        }
        .await;
        self.record(
            ctx,
            "auth.mfa.passkey_begin",
            None,
            started,
            result.as_ref(),
            |c| json!({ "user": user_seen, "expires_at": c.expires_at }),
        );
        result
    }

    /// Completes a password sign-in with a passkey: the MFA challenge `challenge`, the
    /// ceremony `ceremony` that [`begin_mfa_passkey`](Self::begin_mfa_passkey) began for
    /// it, and the authenticator's answer `credential` (the JSON of the
    /// `PublicKeyCredential` `navigator.credentials.get()` gave), from `source`. The
    /// ceremony is taken once; it must have been begun for this challenge (and so for its
    /// user); the answer must verify with user verification, by a passkey that is still
    /// the challenge user's, with its counter moving forward. Then the challenge is used
    /// once and the session starts (revoking `previous_session`), as
    /// [`complete_mfa_challenge`](Self::complete_mfa_challenge) starts it. Throttled as a
    /// challenge's code is: a throttled source is refused before the ceremony is taken,
    /// and a refused answer counts as a failed sign-in.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid`, `auth.token_used`, `auth.token_expired` (`challenge_token`,
    /// or `ceremony_token`: also a ceremony begun for another challenge);
    /// `auth.passkey_refused` (`credential`), also while the throttle refuses the source;
    /// `auth.passkey_counter_regressed`; `validation.invalid_field` (`source`);
    /// `internal.error` without [`Mfa`](super::Mfa) or [`Passkeys`]; `storage.*`.
    pub async fn complete_mfa_challenge_with_passkey(
        &self,
        ctx: &RequestContext,
        challenge: &SecretString,
        ceremony: &SecretString,
        credential: &Value,
        source: &str,
        previous_session: Option<&SecretString>,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut failure = None;
        let mut user_seen = None;
        let result = async {
            let mfa = self.mfa_config()?;
            let passkeys = self.passkeys_config()?;
            let source = ThrottleKey::source(source)?;
            let (hash, record) = self.open_challenge(ctx, &mfa, challenge).await?;
            let user = record.user;
            user_seen = Some(user);
            let email = self.inner.tenancy.get_user(user).await?.map(|u| u.email);
            if self.factor_throttled(ctx, &source, email.as_ref()).await? {
                failure = Some(PasskeyFailure::Locked);
                return Err(PasskeyFailure::Locked.error());
            }
            let taken = self
                .take_ceremony(ctx, &passkeys, CeremonyPurpose::MfaChallenge, ceremony)
                .await?;
            let state: MfaCeremonyState = serde_json::from_str(taken.state.expose_secret())
                .map_err(|err| internal("the state of a passkey ceremony could not be read", err))?;
            if taken.user != Some(user) || state.challenge != hash.0 {
                return Err(ceremony_error(
                    ErrorCode::TokenInvalid,
                    "the ceremony was begun for another sign-in",
                ));
            }
            let outcome = self
                .check_challenge_assertion(ctx, &passkeys, user, &state.authentication, credential)
                .await?;
            self.record_factor_outcome(ctx, &source, email.as_ref(), outcome.is_ok())
                .await?;
            if let Err(refusal) = outcome {
                failure = Some(refusal);
                return Err(refusal.error());
            }
            self.use_challenge(ctx, &mfa, &hash).await?;
            self.start_session(ctx, user, previous_session, "mfa").await
        }
        .await;
        self.record_passkey(
            ctx,
            "auth.mfa.challenge",
            started,
            result.as_ref(),
            |s| json!({ "user": s.session.user, "session": s.session.id, "factor": "passkey" }),
            failure.map(|f| (f, json!({ "user": user_seen, "factor": "passkey" }))),
        );
        result
    }

    /// Checks an answer to an MFA challenge's ceremony: it verifies against `state` (which
    /// allows only the passkeys `user` had when it began) with user verification, the
    /// passkey it names is still `user`'s, and its counter moves forward (recorded
    /// atomically). Answers why not, if not.
    async fn check_challenge_assertion(
        &self,
        ctx: &RequestContext,
        passkeys: &Passkeys,
        user: UserId,
        state: &PasskeyAuthentication,
        credential: &Value,
    ) -> Result<Result<(), PasskeyFailure>, PortalError> {
        let assertion = match answer::<PublicKeyCredential>(credential) {
            Ok(assertion) => assertion,
            Err(failure) => return Ok(Err(failure)),
        };
        // The state names the user's passkeys as they were when the ceremony began: the
        // store says whether the one answering is (still) theirs. Another user's, or one
        // removed since, does not count.
        let Some(record) = passkeys.store.find_passkey(assertion.get_credential_id()).await? else {
            return Ok(Err(PasskeyFailure::UnknownCredential));
        };
        if record.user != user {
            return Ok(Err(PasskeyFailure::OtherUser));
        }
        let verified = match passkeys.webauthn.finish_passkey_authentication(&assertion, state) {
            Ok(verified) => verified,
            Err(err) => return Ok(Err(webauthn_failure(&err))),
        };
        if verified.cred_id().as_slice() != record.credential_id.as_slice() {
            return Ok(Err(PasskeyFailure::UnknownCredential));
        }
        if !verified.user_verified() {
            return Ok(Err(PasskeyFailure::Unverified));
        }
        let passkey: Passkey = serde_json::from_str(&record.credential)
            .map_err(|err| internal("a stored passkey could not be read", err))?;
        record_use(ctx, passkeys, record.id, passkey, &verified).await
    }

    /// Checks a sign-in answer against the ceremony's `state`: the credential it names
    /// must be registered, to the account its user handle names, verify, and move its
    /// counter forward (recorded atomically). Answers the user, or why not, and the
    /// address of the account the credential names (for the throttle).
    async fn check_assertion(
        &self,
        ctx: &RequestContext,
        passkeys: &Passkeys,
        state: DiscoverableAuthentication,
        credential: &Value,
        source: &ThrottleKey,
        user_seen: &mut Option<UserId>,
    ) -> Result<(Result<UserId, PasskeyFailure>, Option<Email>), PortalError> {
        let assertion = match answer::<PublicKeyCredential>(credential) {
            Ok(assertion) => assertion,
            Err(failure) => return Ok((Err(failure), None)),
        };
        let Ok((handle, credential_id)) = passkeys.webauthn.identify_discoverable_authentication(&assertion) else {
            return Ok((Err(PasskeyFailure::Malformed), None));
        };
        let Some(record) = passkeys.store.find_passkey(credential_id).await? else {
            return Ok((Err(PasskeyFailure::UnknownCredential), None));
        };
        *user_seen = Some(record.user);
        let email = self.inner.tenancy.get_user(record.user).await?.map(|u| u.email);
        if handle != record.user.as_uuid() {
            return Ok((Err(PasskeyFailure::OtherUser), email));
        }
        // The throttle of this account from this source, as password sign-in keeps it.
        if let Some(email) = &email {
            let config = &self.inner.config;
            let since = ctx.now() - config.throttle_window;
            let attempts = &self.inner.stores.attempts;
            let pair_failures = match source.with_account(email) {
                Some(pair) => attempts.failures_since(&pair, since).await?,
                None => 0,
            };
            let account_failures = attempts
                .failures_since(&ThrottleKey::Account(email.clone()), since)
                .await?;
            if pair_failures >= config.max_account_source_failures
                || (account_failures >= config.max_account_failures && pair_failures > 0)
            {
                return Ok((Err(PasskeyFailure::Locked), Some(email.clone())));
            }
        }
        let passkey: Passkey = serde_json::from_str(&record.credential)
            .map_err(|err| internal("a stored passkey could not be read", err))?;
        let verified = match passkeys
            .webauthn
            .finish_discoverable_authentication_v2(&assertion, state, &passkey)
        {
            Ok(verified) => verified,
            Err(err) => return Ok((Err(webauthn_failure(&err)), email)),
        };
        if !verified.user_verified() {
            return Ok((Err(PasskeyFailure::Unverified), email));
        }
        let used = record_use(ctx, passkeys, record.id, passkey, &verified).await?;
        Ok((used.map(|()| record.user), email))
    }
}

/// The options for `navigator.credentials.get()` that allow only `user`'s passkeys, as they
/// are now, with user verification required (the browser's own prompt: no conditional
/// mediation), and the relying party's state to check the answer against. A user without a
/// passkey is `auth.mfa_not_enrolled`, its message ending in `otherwise` (what to do instead).
async fn user_passkey_options(
    passkeys: &Passkeys,
    user: UserId,
    otherwise: &str,
) -> Result<(Value, PasskeyAuthentication), PortalError> {
    let stored = passkeys.store.passkeys(user).await?;
    if stored.is_empty() {
        return Err(PortalError::new(
            ErrorCode::MfaNotEnrolled,
            format!("the account has no passkey: {otherwise}"),
        ));
    }
    let allowed = stored
        .iter()
        .map(|p| serde_json::from_str::<Passkey>(&p.credential))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| internal("a stored passkey could not be read", err))?;
    let (options, authentication) = passkeys
        .webauthn
        .start_passkey_authentication(&allowed)
        .map_err(|err| internal("the passkey ceremony could not begin", err))?;
    let mut options = serde_json::to_value(&options).map_err(|err| internal("the ceremony options", err))?;
    if let Some(map) = options.as_object_mut() {
        map.remove("mediation");
    }
    Ok((options, authentication))
}

/// Records a verified use of the stored passkey `id`: its credential as `verified` moves
/// it (counter, backup state) and the new counter, atomically; refused if the counter did
/// not move forward (a cloned authenticator) or the passkey is gone.
async fn record_use(
    ctx: &RequestContext,
    passkeys: &Passkeys,
    id: PasskeyId,
    mut passkey: Passkey,
    verified: &AuthenticationResult,
) -> Result<Result<(), PasskeyFailure>, PortalError> {
    passkey.update_credential(verified);
    let stored = serde_json::to_string(&passkey).map_err(|err| internal("the passkey", err))?;
    Ok(
        match passkeys
            .store
            .record_passkey_use(id, verified.counter(), &stored, ctx.now())
            .await?
        {
            PasskeyUse::Recorded => Ok(()),
            PasskeyUse::CounterRegressed => Err(PasskeyFailure::CounterRegressed),
            PasskeyUse::Unknown => Err(PasskeyFailure::UnknownCredential),
        },
    )
}

/// Asks the authenticator for a discoverable credential (`residentKey: "required"`) in
/// registration `options`, where webauthn-rs's passkey registration asks for none
/// (`"discouraged"`, to spare security keys' few slots): a passkey here also signs its
/// user in with no name typed ([`IdentityService::begin_passkey_sign_in`]), which only a
/// discoverable credential can, and an authenticator honouring `"discouraged"` (a security
/// key; Chromium's) would otherwise make one that never could.
fn require_discoverable(options: &mut Value) {
    if let Some(selection) = options
        .get_mut("publicKey")
        .and_then(|key| key.get_mut("authenticatorSelection"))
        .and_then(Value::as_object_mut)
    {
        selection.insert("residentKey".to_owned(), json!("required"));
        selection.insert("requireResidentKey".to_owned(), json!(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relying_party_on_another_site_is_refused() {
        let store: Arc<dyn PasskeyStore> = Arc::new(portal_adapters::memory::InMemoryIdentityStore::new());
        assert!(
            Passkeys::new(
                store.clone(),
                "portal.example.com",
                "https://portal.example.com",
                "Portal"
            )
            .is_ok()
        );
        let err = Passkeys::new(
            store.clone(),
            "portal.example.com",
            "https://evil.example.net",
            "Portal",
        )
        .unwrap_err();
        assert_eq!(err.param(), Some("passkey_origin"));
        let err = Passkeys::new(store, "portal.example.com", "not a url", "Portal").unwrap_err();
        assert_eq!(err.param(), Some("passkey_origin"));
    }

    #[test]
    fn debug_shows_no_token_or_options() {
        let ceremony = PasskeyCeremony {
            token: SecretString::from("ppc_SECRET"),
            options: json!({ "publicKey": { "challenge": "CHALLENGE" } }),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        let shown = format!("{ceremony:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("CHALLENGE"), "{shown}");
    }
}
