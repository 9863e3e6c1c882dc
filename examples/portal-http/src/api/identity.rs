//! Identity operations of [`Api`]: sign-in and sign-out, password reset and change, `me`,
//! the caller's sessions, an org's API keys, and switching the session's org.

use portal_auth::identity::{
    EmailChangeRequest, NewApiKey, NewSession, PasskeyCeremony, SecondFactor, SignIn, SignInStep, TotpState,
};
use portal_core::identity::Scope;
use portal_core::ids::{ApiKeyId, OrgId, PasskeyId, SessionId};
use portal_core::tenancy::InvitationToken;
use portal_core::{ErrorCode, PortalError, Principal};
use secrecy::{ExposeSecret, SecretString};

use super::{Api, MAX_PAGE_LIMIT, PageQuery, page_request};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::{Caller, RequestMeta, csrf_token_for, path_id};

/// What a password sign-in answered.
#[derive(Debug)]
pub enum SignInAnswer {
    /// Signed in.
    Session(SignInResponse),
    /// The account has a second factor: complete this challenge.
    Challenge(MfaChallengeView),
}

/// The request's source for the sign-in throttle (`unknown` when the edge has none).
fn source_of(meta: &RequestMeta) -> &str {
    if meta.source.is_empty() {
        "unknown"
    } else {
        meta.source.as_str()
    }
}

/// The body of a new session.
fn signed_in(new: &NewSession) -> SignInResponse {
    SignInResponse {
        csrf_token: csrf_token_for(&new.token),
        session_token: ShownOnce(new.token.expose_secret().to_owned()),
        session: SessionView::new(&new.session, Some(new.session.id)),
    }
}

/// Exactly one of a TOTP code and a recovery code.
fn second_factor(code: Option<SecretString>, recovery: Option<SecretString>) -> Result<SecondFactor, ApiError> {
    match (code, recovery) {
        (Some(code), None) => Ok(SecondFactor::Totp(code)),
        (None, Some(recovery)) => Ok(SecondFactor::RecoveryCode(recovery)),
        _ => Err(PortalError::invalid_field("code", "send exactly one of `code` and `recovery_code`").into()),
    }
}

/// The fresh second factor of the caller's own change: none, or exactly one of a TOTP
/// code, a recovery code and a passkey's answer to a re-authentication ceremony.
fn fresh_factor(
    code: Option<SecretString>,
    recovery: Option<SecretString>,
    passkey: Option<PasskeyProof>,
) -> Result<Option<SecondFactor>, ApiError> {
    match (code, recovery, passkey) {
        (None, None, None) => Ok(None),
        (None, None, Some(proof)) => Ok(Some(SecondFactor::Passkey {
            ceremony: proof.ceremony_token,
            credential: proof.credential,
        })),
        (code, recovery, None) => second_factor(code, recovery).map(Some),
        _ => {
            Err(PortalError::invalid_field("code", "send exactly one of `code`, `recovery_code` and `passkey`").into())
        }
    }
}

/// Exactly one of a TOTP code, a recovery code and a passkey's answer.
fn one_fresh_factor(
    code: Option<SecretString>,
    recovery: Option<SecretString>,
    passkey: Option<PasskeyProof>,
) -> Result<SecondFactor, ApiError> {
    fresh_factor(code, recovery, passkey)?.ok_or_else(|| {
        PortalError::invalid_field("code", "send exactly one of `code`, `recovery_code` and `passkey`").into()
    })
}

/// Refuses an API key (or a service) before its body is read.
fn principal_is_user(caller: &Caller) -> Result<(), ApiError> {
    match caller.ctx.principal().user() {
        Some(_) => Ok(()),
        None => Err(PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this").into()),
    }
}

fn ceremony_view(ceremony: PasskeyCeremony) -> PasskeyCeremonyView {
    PasskeyCeremonyView {
        ceremony_token: ShownOnce(ceremony.token.expose_secret().to_owned()),
        options: ceremony.options,
        expires_at: ceremony.expires_at,
    }
}

fn recovery_view(codes: Vec<SecretString>) -> RecoveryCodesView {
    RecoveryCodesView {
        recovery_codes: codes.iter().map(|c| ShownOnce(c.expose_secret().to_owned())).collect(),
    }
}

impl Api {
    /// Signs in with email and password. Limited per source
    /// ([`HttpConfig::sign_in_limit`](super::HttpConfig::sign_in_limit)) before any
    /// password is checked; `previous_session` (the session cookie the client still holds)
    /// is revoked, so a fixed session never becomes a signed-in one.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (with `Retry-After`); `auth.invalid_credentials`;
    /// `service.busy` (with `Retry-After`) when every password-hashing slot stays taken;
    /// `storage.*`.
    pub async fn sign_in(
        &self,
        meta: &RequestMeta,
        body: SignInRequest,
        previous_session: Option<&str>,
    ) -> Result<SignInAnswer, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let step = self
            .inner
            .identity
            .begin_sign_in(
                &ctx,
                SignIn {
                    email: body.email,
                    password: body.password,
                    source: source_of(meta).to_owned(),
                    previous_session: previous_session.map(|s| SecretString::from(s.to_owned())),
                },
            )
            .await?;
        Ok(match step {
            SignInStep::Session(new) => SignInAnswer::Session(signed_in(&new)),
            SignInStep::MfaChallenge(challenge) => SignInAnswer::Challenge(MfaChallengeView {
                mfa_required: true,
                challenge_token: ShownOnce(challenge.token.expose_secret().to_owned()),
                expires_at: challenge.expires_at,
                factors: [(challenge.factors.totp, "totp"), (challenge.factors.passkey, "passkey")]
                    .into_iter()
                    .filter_map(|(has, name)| has.then_some(name))
                    .collect(),
            }),
        })
    }

    /// Completes a sign-in with the second factor (the challenge of [`sign_in`](Self::sign_in)
    /// and a TOTP code or a recovery code). Limited per source as sign-in is, before
    /// anything else; wrong codes also count under the sign-in throttle.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `validation.invalid_field` (`code`: not exactly one of
    /// `code` and `recovery_code`); `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (`challenge_token`); `auth.mfa_code_invalid`; `storage.*`.
    pub async fn complete_mfa_challenge(
        &self,
        meta: &RequestMeta,
        body: MfaChallengeRequest,
        previous_session: Option<&str>,
    ) -> Result<SignInResponse, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let factor = second_factor(body.code, body.recovery_code)?;
        let ctx = self.edge_context(meta);
        let previous = previous_session.map(|s| SecretString::from(s.to_owned()));
        let new = self
            .inner
            .identity
            .complete_mfa_challenge(&ctx, &body.challenge_token, factor, source_of(meta), previous.as_ref())
            .await?;
        Ok(signed_in(&new))
    }

    /// Begins answering a sign-in's MFA challenge with a passkey: the options for
    /// `navigator.credentials.get()` (the challenge user's passkeys only) and a ceremony
    /// token. Limited per source as sign-in is, before anything else.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (`challenge_token`); `auth.mfa_not_enrolled` (no passkey);
    /// `storage.*`.
    pub async fn begin_mfa_passkey(
        &self,
        meta: &RequestMeta,
        body: MfaPasskeyOptionsRequest,
    ) -> Result<PasskeyCeremonyView, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let ceremony = self
            .inner
            .identity
            .begin_mfa_passkey(&ctx, &body.challenge_token)
            .await?;
        Ok(ceremony_view(ceremony))
    }

    /// Completes a sign-in's MFA challenge with a passkey's answer to the ceremony begun
    /// for it, and starts the session (revoking `previous_session`, as sign-in does).
    /// Limited per source as sign-in is, before anything else; refused answers also count
    /// under the sign-in throttle.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (`challenge_token`, `ceremony_token`); `auth.passkey_refused`;
    /// `auth.passkey_counter_regressed`; `storage.*`.
    pub async fn complete_mfa_challenge_with_passkey(
        &self,
        meta: &RequestMeta,
        body: MfaPasskeyChallengeRequest,
        previous_session: Option<&str>,
    ) -> Result<SignInResponse, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let previous = previous_session.map(|s| SecretString::from(s.to_owned()));
        let new = self
            .inner
            .identity
            .complete_mfa_challenge_with_passkey(
                &ctx,
                &body.challenge_token,
                &body.ceremony_token,
                &body.credential,
                source_of(meta),
                previous.as_ref(),
            )
            .await?;
        Ok(signed_in(&new))
    }

    /// The caller's second factors.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `storage.*`.
    pub async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatusView, ApiError> {
        let status = self.inner.identity.mfa_status(&caller.ctx).await?;
        Ok(MfaStatusView {
            totp: match status.totp {
                TotpState::None => "none",
                TotpState::Pending => "pending",
                TotpState::Confirmed => "confirmed",
            },
            confirmed_at: status.confirmed_at,
            recovery_codes_left: status.recovery_codes_left,
            passkeys: status.passkeys,
        })
    }

    /// Begins TOTP enrollment for the caller, after their password and (with a passkey)
    /// its answer: secret, otpauth URI and QR code, shown once.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `auth.mfa_already_enrolled`;
    /// `auth.invalid_credentials`; `auth.mfa_code_invalid` (no passkey answer from a
    /// caller with a passkey); `auth.passkey_refused`; `auth.token_*` (the proof's
    /// `ceremony_token`); `service.busy`; `storage.*`.
    pub async fn begin_totp_enrollment(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: BeginTotpEnrollmentRequest,
    ) -> Result<TotpEnrollmentView, ApiError> {
        principal_is_user(caller)?;
        let factor = fresh_factor(None, None, body.passkey)?;
        let enrollment = self
            .inner
            .identity
            .begin_totp_enrollment(&caller.ctx, body.password, factor, source_of(meta))
            .await?;
        Ok(TotpEnrollmentView {
            secret: ShownOnce(enrollment.secret.expose_secret().to_owned()),
            otpauth_uri: ShownOnce(enrollment.otpauth_uri.expose_secret().to_owned()),
            qr_svg: ShownOnce(enrollment.qr_svg.expose_secret().to_owned()),
        })
    }

    /// Confirms the caller's pending TOTP factor; answers the recovery codes, shown once.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `auth.mfa_not_enrolled`; `auth.mfa_code_invalid`;
    /// `storage.*`.
    pub async fn confirm_totp(&self, caller: &Caller, body: ConfirmTotpRequest) -> Result<RecoveryCodesView, ApiError> {
        let codes = self.inner.identity.confirm_totp(&caller.ctx, &body.code).await?;
        Ok(recovery_view(codes))
    }

    /// New recovery codes for the caller, after a fresh second factor.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`code`);
    /// `auth.mfa_not_enrolled`; `auth.mfa_code_invalid`; `storage.*`.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: SecondFactorRequest,
    ) -> Result<RecoveryCodesView, ApiError> {
        principal_is_user(caller)?;
        let factor = one_fresh_factor(body.code, body.recovery_code, body.passkey)?;
        let codes = self
            .inner
            .identity
            .regenerate_recovery_codes(&caller.ctx, factor, source_of(meta))
            .await?;
        Ok(recovery_view(codes))
    }

    /// Removes the caller's TOTP factor, after their password and a fresh second factor.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`code`);
    /// `auth.invalid_credentials`; `auth.mfa_not_enrolled`; `auth.mfa_code_invalid`;
    /// `service.busy`; `storage.*`.
    pub async fn remove_totp(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: RemoveTotpRequest,
    ) -> Result<(), ApiError> {
        principal_is_user(caller)?;
        // A pending enrollment is removed with the password alone.
        let factor = fresh_factor(body.code, body.recovery_code, body.passkey)?
            .unwrap_or_else(|| SecondFactor::Totp(SecretString::from(String::new())));
        self.inner
            .identity
            .remove_totp(&caller.ctx, body.password, factor, source_of(meta))
            .await?;
        Ok(())
    }

    /// Begins registering a passkey for the caller, after their password and (when they
    /// have a second factor) a fresh one: the options for
    /// `navigator.credentials.create()` and the ceremony token, shown once.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`code`: more than one
    /// factor sent); `auth.invalid_credentials`; `auth.mfa_code_invalid`;
    /// `auth.mfa_not_enrolled`; `auth.passkey_refused`; `auth.token_*` (the proof's
    /// `ceremony_token`); `service.busy`; `storage.*`.
    pub async fn begin_passkey_registration(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: BeginPasskeyRegistrationRequest,
    ) -> Result<PasskeyCeremonyView, ApiError> {
        principal_is_user(caller)?;
        let factor = fresh_factor(body.code, body.recovery_code, body.passkey)?;
        let ceremony = self
            .inner
            .identity
            .begin_passkey_registration(&caller.ctx, body.password, factor, source_of(meta))
            .await?;
        Ok(ceremony_view(ceremony))
    }

    /// Begins a re-authentication of the caller with one of their passkeys: the options
    /// for `navigator.credentials.get()` and the ceremony token, shown once. The answer
    /// is the `passkey` factor of the caller's next own change.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `auth.mfa_not_enrolled` (no passkey); `storage.*`.
    pub async fn begin_passkey_reauthentication(&self, caller: &Caller) -> Result<PasskeyCeremonyView, ApiError> {
        principal_is_user(caller)?;
        let ceremony = self.inner.identity.begin_passkey_reauthentication(&caller.ctx).await?;
        Ok(ceremony_view(ceremony))
    }

    /// Finishes the caller's passkey registration with the authenticator's answer.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`name`);
    /// `auth.token_invalid`, `auth.token_used`, `auth.token_expired`,
    /// `auth.token_wrong_user` (`ceremony_token`); `auth.passkey_refused`;
    /// `passkey.already_registered`; `storage.*`.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        body: FinishPasskeyRegistrationRequest,
    ) -> Result<PasskeyView, ApiError> {
        principal_is_user(caller)?;
        let passkey = self
            .inner
            .identity
            .finish_passkey_registration(&caller.ctx, &body.ceremony_token, &body.name, &body.credential)
            .await?;
        Ok(PasskeyView::new(&passkey))
    }

    /// The caller's passkeys, oldest first.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `storage.*`.
    pub async fn list_passkeys(&self, caller: &Caller) -> Result<PasskeyList, ApiError> {
        principal_is_user(caller)?;
        let passkeys = self.inner.identity.passkeys(&caller.ctx).await?;
        Ok(PasskeyList {
            items: passkeys.iter().map(PasskeyView::new).collect(),
        })
    }

    /// Renames one of the caller's passkeys.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`name`);
    /// `passkey.not_found`; `storage.*`.
    pub async fn rename_passkey(
        &self,
        caller: &Caller,
        id: PasskeyId,
        body: RenamePasskeyRequest,
    ) -> Result<PasskeyView, ApiError> {
        principal_is_user(caller)?;
        let passkey = self.inner.identity.rename_passkey(&caller.ctx, id, &body.name).await?;
        Ok(PasskeyView::new(&passkey))
    }

    /// Removes one of the caller's passkeys, after their password and (when they have a
    /// second factor: with a passkey, always) a fresh one.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`code`: both codes
    /// sent); `auth.invalid_credentials`; `auth.mfa_code_invalid`; `passkey.not_found`;
    /// `service.busy`; `storage.*`.
    pub async fn remove_passkey(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        id: PasskeyId,
        body: RemovePasskeyRequest,
    ) -> Result<(), ApiError> {
        principal_is_user(caller)?;
        let factor = fresh_factor(body.code, body.recovery_code, body.passkey)?;
        self.inner
            .identity
            .remove_passkey(&caller.ctx, id, body.password, factor, source_of(meta))
            .await?;
        Ok(())
    }

    /// Begins a passwordless sign-in: the options for `navigator.credentials.get()` and
    /// the ceremony token, shown once. Limited per source as sign-in is.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `storage.*`.
    pub async fn begin_passkey_sign_in(&self, meta: &RequestMeta) -> Result<PasskeyCeremonyView, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let ceremony = self.inner.identity.begin_passkey_sign_in(&ctx).await?;
        Ok(ceremony_view(ceremony))
    }

    /// Finishes a passwordless sign-in with the authenticator's answer and starts the
    /// session (revoking `previous_session`, as sign-in does). Limited per source as
    /// sign-in is, before anything else; refused answers also count under the sign-in
    /// throttle.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (`ceremony_token`); `auth.passkey_refused`;
    /// `auth.passkey_counter_regressed`; `storage.*`.
    pub async fn finish_passkey_sign_in(
        &self,
        meta: &RequestMeta,
        body: PasskeySignInRequest,
        previous_session: Option<&str>,
    ) -> Result<SignInResponse, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let previous = previous_session.map(|s| SecretString::from(s.to_owned()));
        let new = self
            .inner
            .identity
            .finish_passkey_sign_in(
                &ctx,
                &body.ceremony_token,
                &body.credential,
                source_of(meta),
                previous.as_ref(),
            )
            .await?;
        Ok(signed_in(&new))
    }

    /// Whether `org` requires a second factor of its members.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `auth.mfa_required`; `storage.*`.
    pub async fn mfa_policy(&self, caller: &Caller, org: OrgId) -> Result<MfaPolicyView, ApiError> {
        let required = self.inner.identity.mfa_policy(&caller.ctx, org).await?;
        Ok(MfaPolicyView { required })
    }

    /// Sets whether `org` requires a second factor of its members.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `auth.mfa_required` (turning it on without a
    /// factor of one's own); `storage.*`.
    pub async fn set_mfa_policy(
        &self,
        caller: &Caller,
        org: OrgId,
        body: MfaPolicyView,
    ) -> Result<MfaPolicyView, ApiError> {
        let required = self
            .inner
            .identity
            .set_mfa_policy(&caller.ctx, org, body.required)
            .await?;
        Ok(MfaPolicyView { required })
    }

    /// Asks for a password-reset link for `body.email`: the same answer (`202`) for every
    /// valid address, account or not. Limited per source
    /// ([`RESET_PER_SOURCE`](super::RESET_PER_SOURCE)) and per address
    /// ([`RESET_PER_EMAIL`](super::RESET_PER_EMAIL)) before anything else.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (with `Retry-After`); `validation.invalid_field` (`email`);
    /// `storage.*`.
    pub async fn request_password_reset(&self, meta: &RequestMeta, body: PasswordResetRequest) -> Result<(), ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let email = portal_core::tenancy::Email::new(&body.email)?;
        self.inner.reset_email_limiter.check(email.as_str())?;
        let ctx = self.edge_context(meta);
        self.inner.identity.request_password_reset(&ctx, email.as_str()).await?;
        Ok(())
    }

    /// Sets a new password with the token of a mailed reset link; every session of the
    /// user ends. Limited per source as a reset request is.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (param `token`); `validation.invalid_field` (`password`);
    /// `service.busy`; `storage.*`.
    pub async fn reset_password(&self, meta: &RequestMeta, body: PasswordResetConfirm) -> Result<(), ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        self.inner
            .identity
            .reset_password(&ctx, body.token, body.password)
            .await?;
        Ok(())
    }

    /// Asks for an account for `body.email`: the same answer (`202`) for every valid
    /// address, whatever the policy and whether or not it has an account. Limited per
    /// source ([`RESET_PER_SOURCE`](super::RESET_PER_SOURCE), shared with password-reset
    /// requests) and per address ([`RESET_PER_EMAIL`](super::RESET_PER_EMAIL)'s quota,
    /// likewise shared) before anything else.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (with `Retry-After`); `validation.invalid_field` (`email`);
    /// `internal.error` when sign-up is not configured.
    pub async fn request_sign_up(&self, meta: &RequestMeta, body: SignUpRequest) -> Result<(), ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let email = portal_core::tenancy::Email::new(&body.email)?;
        self.inner.reset_email_limiter.check(email.as_str())?;
        let ctx = self.edge_context(meta);
        self.inner.identity.request_sign_up(&ctx, email.as_str()).await?;
        Ok(())
    }

    /// Creates the account of a mailed sign-up link and signs it in. Limited per source
    /// as a password-reset confirmation is.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (param `token`); `access.denied` (the policy no longer admits
    /// the address); `validation.invalid_field` (`display_name`, `password`);
    /// `service.busy`; `storage.*`.
    pub async fn complete_sign_up(
        &self,
        meta: &RequestMeta,
        body: SignUpConfirm,
        previous_session: Option<&str>,
    ) -> Result<SignInResponse, ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let previous = previous_session.map(|s| SecretString::from(s.to_owned()));
        let signed_up = self
            .inner
            .identity
            .complete_sign_up(&ctx, body.token, &body.display_name, body.password, previous.as_ref())
            .await?;
        Ok(signed_in(&signed_up.session))
    }

    /// Creates the account of an invitation's address, which has none, accepts the
    /// invitation as it, and signs it in. Limited per source as a password-reset
    /// confirmation is.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `invitation.not_found` (param `token`),
    /// `invitation.already_used`, `invitation.revoked`, `invitation.expired`;
    /// `user.email_taken` (the address has an account: sign in and accept);
    /// `validation.invalid_field` (`display_name`, `password`); `service.busy`;
    /// `storage.*`.
    pub async fn sign_up_by_invitation(
        &self,
        meta: &RequestMeta,
        body: InvitationSignUp,
        previous_session: Option<&str>,
    ) -> Result<SignInResponse, ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let token = InvitationToken::parse(body.token).map_err(|e| ApiError::from(e.with_param("token")))?;
        let tenancy = self.inner.portal.tenancy();
        let invitation = tenancy.pending_invitation(&ctx, &token).await?;
        let previous = previous_session.map(|s| SecretString::from(s.to_owned()));
        let this = self.clone();
        let signed_up = self
            .inner
            .identity
            .sign_up_by_invitation(
                &ctx,
                &invitation.email,
                &body.display_name,
                body.password,
                previous.as_ref(),
                |user| async move {
                    let as_user = this.context_as(Principal::User(user), meta);
                    let membership = this.inner.portal.tenancy().accept_invitation(&as_user, &token).await?;
                    Ok(membership.org)
                },
            )
            .await?;
        Ok(signed_in(&signed_up.session))
    }

    /// Mails the signed-in user a link that verifies their address. Limited per source
    /// ([`RESET_PER_SOURCE`](super::RESET_PER_SOURCE), shared with password-reset requests)
    /// and per user ([`RESET_PER_EMAIL`](super::RESET_PER_EMAIL)'s quota), after the caller
    /// is known to be a user.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `rate_limit.exceeded` (with `Retry-After`);
    /// `mail.unavailable`; `storage.*`.
    pub async fn request_email_verification(&self, caller: &Caller, meta: &RequestMeta) -> Result<(), ApiError> {
        let user = caller
            .ctx
            .principal()
            .user()
            .ok_or_else(|| PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this"))?;
        self.inner.reset_limiter.check(&meta.source)?;
        self.inner.reset_email_limiter.check(&user.to_string())?;
        self.inner.identity.request_email_verification(&caller.ctx).await?;
        Ok(())
    }

    /// Verifies the signed-in user's address with the token of a mailed link. Limited per
    /// source as a password-reset confirmation is.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `rate_limit.exceeded`; `auth.token_invalid`,
    /// `auth.token_used`, `auth.token_expired`, `auth.token_wrong_user` (param `token`);
    /// `storage.*`.
    pub async fn verify_email(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: VerifyEmailRequest,
    ) -> Result<EmailStatusView, ApiError> {
        if caller.ctx.principal().user().is_none() {
            return Err(PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this").into());
        }
        self.inner.reset_limiter.check(&meta.source)?;
        let verified = self.inner.identity.verify_email(&caller.ctx, body.token).await?;
        Ok(EmailStatusView {
            email: verified.email.as_str().to_owned(),
            verified: true,
            verified_at: Some(verified.verified_at),
        })
    }

    /// Asks to move the signed-in user's account to another address: the current password
    /// (and a fresh second factor for a user with one) checked under the sign-in throttle,
    /// then a link mailed to the new address and a notice to the current one. The same
    /// answer whether the new address has an account or not. Limited per source and per
    /// user as verification requests are.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `rate_limit.exceeded` (with `Retry-After`);
    /// `validation.invalid_field` (`email`, `code`); `auth.invalid_credentials`;
    /// `auth.mfa_code_invalid` (`code` or `recovery_code`); `service.busy`; `storage.*`.
    pub async fn request_email_change(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: EmailChangeRequestBody,
    ) -> Result<(), ApiError> {
        let user = caller
            .ctx
            .principal()
            .user()
            .ok_or_else(|| PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this"))?;
        self.inner.reset_limiter.check(&meta.source)?;
        self.inner.reset_email_limiter.check(&user.to_string())?;
        let factor = fresh_factor(body.code, body.recovery_code, body.passkey)?;
        self.inner
            .identity
            .request_email_change(
                &caller.ctx,
                EmailChangeRequest {
                    new_email: body.email,
                    password: body.current_password,
                    factor,
                    source: source_of(meta).to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Moves the signed-in user's account to the address a change link was mailed to.
    /// Limited per source as a password-reset confirmation is.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `rate_limit.exceeded`; `auth.token_invalid`,
    /// `auth.token_used`, `auth.token_expired`, `auth.token_wrong_user` (param `token`);
    /// `user.email_taken` (param `email`); `storage.*`.
    pub async fn confirm_email_change(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: ConfirmEmailChangeRequest,
    ) -> Result<EmailStatusView, ApiError> {
        if caller.ctx.principal().user().is_none() {
            return Err(PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this").into());
        }
        self.inner.reset_limiter.check(&meta.source)?;
        Ok(self
            .inner
            .identity
            .confirm_email_change(&caller.ctx, body.token)
            .await?
            .into())
    }

    /// The signed-in user's address and whether it is verified.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `storage.*`.
    pub async fn email_status(&self, caller: &Caller) -> Result<EmailStatusView, ApiError> {
        Ok(self.inner.identity.email_status(&caller.ctx).await?.into())
    }

    /// Changes the signed-in user's password (the current one checked under the sign-in
    /// throttle, from the request's source); every session of theirs ends and the caller
    /// gets a new one, in the same org.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` (a wrong current password, or the source locked out);
    /// `access.denied` for an API key; `validation.invalid_field` (`password`);
    /// `service.busy`; `storage.*`.
    pub async fn change_password(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: ChangePasswordRequest,
    ) -> Result<SignInResponse, ApiError> {
        let new = self
            .inner
            .identity
            .change_password(
                &caller.ctx,
                body.current_password,
                body.new_password,
                source_of(meta),
                caller.ctx.org(),
            )
            .await?;
        Ok(signed_in(&new))
    }

    /// Signs the caller's session out. A caller without a session (an API key) has
    /// nothing to sign out: that is not an error.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), ApiError> {
        if let Some(token) = &caller.session_token {
            self.inner.identity.sign_out(&caller.ctx, token).await?;
        }
        Ok(())
    }

    /// Who the caller is, and their orgs.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn me(&self, caller: &Caller) -> Result<MeResponse, ApiError> {
        let principal = caller.ctx.principal();
        let (user, orgs) = match principal.user() {
            Some(id) => {
                let user = self.inner.tenancy_store.get_user(id).await.map_err(PortalError::from)?;
                let first = page_request(Some(MAX_PAGE_LIMIT), None)?;
                let orgs = self
                    .inner
                    .portal
                    .tenancy()
                    .list_user_orgs(&caller.ctx, id, &first)
                    .await?;
                (
                    user.as_ref().map(UserView::from),
                    orgs.items.iter().map(MyOrgView::from).collect(),
                )
            }
            None => (None, Vec::new()),
        };
        Ok(MeResponse {
            principal: principal.to_string(),
            user,
            org: caller.ctx.org(),
            session: caller.session(),
            via: caller.via,
            orgs,
        })
    }

    /// A page of the caller's live sessions, newest first.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_sessions(&self, caller: &Caller, query: &PageQuery) -> Result<SessionList, ApiError> {
        let sessions = self.inner.identity.list_sessions(&caller.ctx, &query.page()?).await?;
        Ok(SessionList {
            items: sessions
                .items
                .iter()
                .map(|s| SessionView::new(s, caller.session()))
                .collect(),
            next: sessions.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Revokes one of the caller's sessions.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `session.not_found`; `storage.*`.
    pub async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<(), ApiError> {
        self.inner.identity.revoke_session(&caller.ctx, id).await?;
        Ok(())
    }

    /// Creates an API key in `org`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`name`, `scopes`,
    /// `expires_at`); `storage.*`.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        org: OrgId,
        body: CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, ApiError> {
        let scopes = body
            .scopes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<Scope>().map_err(|err| {
                    ApiError::invalid_field(format!("scopes[{i}]"), format!("{err}; a scope is `object action`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let created = self
            .inner
            .identity
            .create_api_key(
                &caller.ctx,
                org,
                NewApiKey {
                    name: body.name,
                    scopes,
                    expires_at: Some(body.expires_at),
                },
            )
            .await?;
        Ok(CreatedApiKey {
            key: ShownOnce(created.key.expose_secret().to_owned()),
            api_key: ApiKeyView::from(&created.record),
        })
    }

    /// The org's API keys.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_api_keys(&self, caller: &Caller, org: OrgId, query: &PageQuery) -> Result<ApiKeyList, ApiError> {
        let keys = self
            .inner
            .identity
            .list_api_keys(&caller.ctx, org, &query.page()?)
            .await?;
        Ok(ApiKeyList {
            items: keys.items.iter().map(ApiKeyView::from).collect(),
            next: keys.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Revokes an API key of the org.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `api_key.not_found`; `storage.*`.
    pub async fn revoke_api_key(&self, caller: &Caller, org: OrgId, id: ApiKeyId) -> Result<ApiKeyView, ApiError> {
        let key = self.inner.identity.revoke_api_key(&caller.ctx, org, id).await?;
        Ok(ApiKeyView::from(&key))
    }

    /// Makes `body.org_id` the active org of the caller's session. The session is rotated
    /// (keeping its absolute expiry): the answer carries the new session's token and CSRF
    /// token for the adapter to set as cookies, and the old token stops working. What goes
    /// in the body is [`SwitchOrgResponse::for_caller`]: the token only for a bearer caller.
    ///
    /// # Errors
    ///
    /// `access.denied` when the caller did not authenticate with a session (an API key
    /// or a JWT has no session to switch); `validation.invalid_field` (`org_id`);
    /// `org.not_found` when the user is not a member of the org; `storage.*`.
    pub async fn switch_org(&self, caller: &Caller, body: SwitchOrgRequest) -> Result<SignInResponse, ApiError> {
        let org = path_id::<OrgId>("org_id", &body.org_id)?;
        let Some(token) = &caller.session_token else {
            return Err(ApiError::new(
                ErrorCode::AccessDenied,
                "only a session can switch orgs; an API key or an access token works in its own org",
            ));
        };
        let new = self.identity().switch_org(&caller.ctx, token, org).await?;
        Ok(SignInResponse {
            csrf_token: csrf_token_for(&new.token),
            session_token: ShownOnce(new.token.expose_secret().to_owned()),
            session: SessionView::new(&new.session, Some(new.session.id)),
        })
    }
}
