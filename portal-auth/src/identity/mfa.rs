//! The TOTP second factor as a service: enrollment (with an otpauth URI and a QR code),
//! recovery codes, removal, the MFA challenge of sign-in, and each org's policy "members
//! must use a second factor". Configured with [`Mfa`].
//!
//! - **Enrollment** ([`begin_totp_enrollment`](IdentityService::begin_totp_enrollment)):
//!   a new secret, its `otpauth://` URI and that URI as a QR code (SVG), shown once; the
//!   factor is pending until [`confirm_totp`](IdentityService::confirm_totp) gets a first
//!   code, which answers ten recovery codes, shown once and kept only as SHA-256.
//! - **A fresh second factor** (a code of a step after the last one accepted, or an unused
//!   recovery code, each used up by the atomic store step that accepts it) is needed to
//!   [`regenerate_recovery_codes`](IdentityService::regenerate_recovery_codes), and, with
//!   the password, to [`remove_totp`](IdentityService::remove_totp).
//! - **Second factors** ([`SecondFactors`]): a confirmed TOTP factor, and every passkey
//!   the user registered (with [`Passkeys`](super::Passkeys)); a pending TOTP enrollment is
//!   none. Sign-in and the org policy count both alike.
//! - **Sign-in**: [`begin_sign_in`](IdentityService::begin_sign_in) answers, for a user
//!   with a second factor, an [`MfaChallenge`] instead of a session: a `pmc_` token
//!   (256 random bits) bound to the user, valid 5 minutes, stored only as its SHA-256 in
//!   the [`OneTimeTokenStore`] (purpose `mfa_challenge`), naming the factors that may
//!   answer it. [`complete_mfa_challenge`](IdentityService::complete_mfa_challenge) with a
//!   TOTP code or a recovery code, or
//!   [`complete_mfa_challenge_with_passkey`](IdentityService::complete_mfa_challenge_with_passkey)
//!   with one of the user's passkeys, uses it once and starts the session. A wrong code leaves the
//!   challenge as it is (the user may correct a typo) but counts as a failed sign-in under
//!   the sign-in throttle (source, account, account from source), which refuses codes as
//!   it refuses passwords. [`sign_in`](IdentityService::sign_in) refuses such a user with
//!   `auth.second_factor_required`, and a password alone (`Credential::Password`)
//!   authenticates them nowhere.
//! - **Refusals**: a malformed, tampered or unknown challenge is `auth.token_invalid`, a
//!   used one `auth.token_used`, an expired one `auth.token_expired` (param
//!   `challenge_token`); a wrong, replayed or throttled code `auth.mfa_code_invalid`
//!   (param `code` or `recovery_code`; the event says which it was).
//! - **Org policy** ([`set_mfa_policy`](IdentityService::set_mfa_policy), permission
//!   `mfa_policy manage`, the owner's by default): the gate (`Gate::with_mfa_policy`)
//!   then refuses every operation in the org to a member with neither a confirmed TOTP
//!   factor nor a passkey with `auth.mfa_required`; signing in, enrolling, registering a
//!   passkey and everything outside orgs still work.
//! - **Events** (journal, kind `authentication`): `auth.mfa.enroll_begin`,
//!   `auth.mfa.enroll`, `auth.mfa.remove`, `auth.mfa.recovery_codes.regenerate`,
//!   `auth.mfa.recovery_code.use`, `auth.mfa.challenge` (its failures, with `failure`),
//!   `auth.mfa.policy.set` (filed under the org). No secret, code or token is in any.

use std::sync::Arc;
use std::time::Instant;

use portal_core::audit::{AuditActor, AuditEvent, AuditTarget, actions};
use portal_core::diagnostics::{DiagnosticEvent, EventKind};
use portal_core::identity::{
    AuthFailure, MfaPolicyStore, OneTimeTokenRecord, OneTimeTokenStore, ThrottleKey, TokenPurpose, TokenUse,
    TotpFactorRecord, TotpFactorStore,
};
use portal_core::ids::{OrgId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{Email, TokenHash};
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::authenticate::refused;
use super::permissions::MFA_POLICY_MANAGE;
use super::token::ChallengeToken;
use super::totp::{self, CodeRefusal, RecoveryCodes, TotpSecret};
use super::{IdentityService, NewSession, SignIn, principal_user};

/// How the second factor works: where factors, challenges and policies are kept, and the
/// name authenticator apps show.
#[derive(Clone)]
pub struct Mfa {
    /// Where TOTP factors and recovery codes are kept.
    pub factors: Arc<dyn TotpFactorStore>,
    /// Where MFA challenges are kept (as single-use tokens of purpose `mfa_challenge`).
    pub challenges: Arc<dyn OneTimeTokenStore>,
    /// Where each org's MFA policy is kept (give the gate the same store with
    /// `Gate::with_mfa_policy`, or the policy is stored but not enforced).
    pub policies: Arc<dyn MfaPolicyStore>,
    /// The issuer authenticator apps show beside the account (the portal's name); no `:`.
    pub issuer: String,
    /// How long a challenge works. Default 5 minutes.
    pub challenge_lifetime: Duration,
}

impl Mfa {
    /// MFA on one store that keeps factors, challenges and policies (every identity store
    /// of `portal-adapters` does), with `issuer` and 5-minute challenges.
    pub fn from_one<S>(store: Arc<S>, issuer: impl Into<String>) -> Self
    where
        S: TotpFactorStore + OneTimeTokenStore + MfaPolicyStore,
    {
        Self {
            factors: store.clone(),
            challenges: store.clone(),
            policies: store,
            issuer: issuer.into(),
            challenge_lifetime: Duration::minutes(5),
        }
    }
}

impl std::fmt::Debug for Mfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfa")
            .field("issuer", &self.issuer)
            .field("challenge_lifetime", &self.challenge_lifetime)
            .finish_non_exhaustive()
    }
}

/// A TOTP enrollment begun: everything an authenticator app needs, shown once. `Debug`
/// shows none of it.
pub struct TotpEnrollment {
    /// The secret in base32 (RFC 4648, no padding), for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://totp/...` URI.
    pub otpauth_uri: SecretString,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: SecretString,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(..)")
    }
}

/// A second factor presented: a TOTP code, a recovery code, or (where the signed-in user
/// proves themselves again) a passkey's answer.
pub enum SecondFactor {
    /// Six digits from the authenticator app.
    Totp(SecretString),
    /// One of the recovery codes.
    RecoveryCode(SecretString),
    /// A passkey's answer to a re-authentication ceremony the signed-in user began
    /// ([`IdentityService::begin_passkey_reauthentication`]). It stands for the fresh second
    /// factor of the signed-in user's own changes (recovery codes, adding or removing a factor,
    /// a change of email), not for a sign-in's challenge, which
    /// [`IdentityService::complete_mfa_challenge_with_passkey`] completes.
    Passkey {
        /// The ceremony's `ppc_` token.
        ceremony: SecretString,
        /// The JSON of the `PublicKeyCredential` that `navigator.credentials.get()` gave.
        credential: serde_json::Value,
    },
}

impl SecondFactor {
    /// The request field it came in.
    fn param(&self) -> &'static str {
        match self {
            SecondFactor::Totp(_) => "code",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::Passkey { .. } => "passkey",
        }
    }
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecondFactor::Totp(_) => f.write_str("SecondFactor::Totp(..)"),
            SecondFactor::RecoveryCode(_) => f.write_str("SecondFactor::RecoveryCode(..)"),
            SecondFactor::Passkey { .. } => f.write_str("SecondFactor::Passkey { .. }"),
        }
    }
}

/// An MFA challenge: the token that completes a sign-in with a second factor, shown once.
pub struct MfaChallenge {
    /// The `pmc_` token; only its hash is stored.
    pub token: SecretString,
    /// Whose sign-in it completes.
    pub user: UserId,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// The second factors that may answer it.
    pub factors: SecondFactors,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("factors", &self.factors)
            .finish_non_exhaustive()
    }
}

/// The second factors a user has: what an org's MFA policy counts, and what may answer
/// their sign-in's MFA challenge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondFactors {
    /// A confirmed TOTP factor (a pending one is none).
    pub totp: bool,
    /// At least one registered passkey.
    pub passkey: bool,
}

impl SecondFactors {
    /// Whether the user has any second factor.
    pub fn any(self) -> bool {
        self.totp || self.passkey
    }
}

/// What a password sign-in answered: a session, or a challenge for the second factor.
#[derive(Debug)]
pub enum SignInStep {
    /// The user has no second factor: signed in.
    Session(NewSession),
    /// The user has a second factor: complete the challenge with it.
    MfaChallenge(MfaChallenge),
}

/// Where a user's TOTP factor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    /// No factor.
    None,
    /// Enrollment begun, not confirmed yet: it signs nobody in.
    Pending,
    /// Confirmed: sign-in asks for it.
    Confirmed,
}

/// A user's second factors, as they may see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaStatus {
    /// The TOTP factor's state.
    pub totp: TotpState,
    /// When it was confirmed.
    pub confirmed_at: Option<OffsetDateTime>,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// How many passkeys the user has registered (0 without [`Passkeys`](super::Passkeys)):
    /// each is a second factor too.
    pub passkeys: usize,
}

/// An MFA refusal of a code, recorded with its reason.
fn code_refused(param: &'static str) -> PortalError {
    PortalError::new(ErrorCode::MfaCodeInvalid, "the second-factor code is not valid").with_param(param)
}

fn already_enrolled() -> PortalError {
    PortalError::new(
        ErrorCode::MfaAlreadyEnrolled,
        "a second factor is already enrolled; remove it first",
    )
}

fn challenge_error(code: ErrorCode, message: &str) -> PortalError {
    PortalError::new(code, message.to_owned()).with_param("challenge_token")
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

/// Why a presented factor was refused (for the event only).
#[derive(Debug, Clone, Copy)]
enum FactorRefusal {
    Wrong,
    Replayed,
    Locked,
    /// A code for an account whose second factor is a passkey.
    NoTotp,
}

impl FactorRefusal {
    fn as_str(self) -> &'static str {
        match self {
            FactorRefusal::Wrong => "wrong_code",
            FactorRefusal::Replayed => "replayed",
            FactorRefusal::Locked => "locked",
            FactorRefusal::NoTotp => "no_totp",
        }
    }
}

/// The SHA-256 a store keeps of a recovery code.
fn recovery_token_hash(code: &str) -> TokenHash {
    TokenHash(totp::recovery_hash(code))
}

/// The QR code of `uri` as an SVG document.
fn qr_svg(uri: &SecretString) -> Result<SecretString, PortalError> {
    let code = qrcode::QrCode::new(uri.expose_secret().as_bytes()).map_err(|err| {
        PortalError::new(ErrorCode::Internal, "the otpauth URI could not be drawn as a QR code")
            .with_source(err.to_string())
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(SecretString::from(svg))
}

/// The secret as base32 without padding (RFC 4648), as apps take it typed.
fn base32(bytes: &[u8]) -> SecretString {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 0x1f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize]));
    }
    SecretString::from(out)
}

impl IdentityService {
    pub(super) fn mfa_config(&self) -> Result<Arc<Mfa>, PortalError> {
        self.inner.mfa.clone().ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "the second factor is not configured (IdentityService::with_mfa)",
            )
        })
    }

    /// The user's confirmed factor, if MFA is configured and they have one.
    pub(super) async fn confirmed_factor(&self, user: UserId) -> Result<Option<TotpFactorRecord>, PortalError> {
        let Some(mfa) = &self.inner.mfa else {
            return Ok(None);
        };
        Ok(mfa.factors.find_totp(user).await?.filter(|f| f.confirmed_at.is_some()))
    }

    /// The user's second factors: a confirmed TOTP factor, and passkeys (with
    /// [`Passkeys`](super::Passkeys)). Without [`Mfa`] there are none: nothing would
    /// challenge a sign-in for them.
    pub(super) async fn second_factors(&self, user: UserId) -> Result<SecondFactors, PortalError> {
        if self.inner.mfa.is_none() {
            return Ok(SecondFactors::default());
        }
        let totp = self.confirmed_factor(user).await?.is_some();
        let passkey = match &self.inner.passkeys {
            Some(passkeys) => !passkeys.store.passkeys(user).await?.is_empty(),
            None => false,
        };
        Ok(SecondFactors { totp, passkey })
    }

    /// Whether the sign-in throttle refuses a second factor of the account `email` from
    /// `source` now: the source failed too often (on any account), or this source failed
    /// too often for the account, or the account is under attack and this source is one
    /// of those that failed for it (as [`check_password`](Self::check_password) decides).
    pub(super) async fn factor_throttled(
        &self,
        ctx: &RequestContext,
        source: &ThrottleKey,
        email: Option<&Email>,
    ) -> Result<bool, PortalError> {
        let attempts = &self.inner.stores.attempts;
        let config = &self.inner.config;
        let since = ctx.now() - config.throttle_window;
        let account = email.cloned().map(ThrottleKey::Account);
        let pair = email.and_then(|email| source.with_account(email));
        let mut counts = [0_u64; 3];
        for (slot, key) in counts.iter_mut().zip([Some(source), pair.as_ref(), account.as_ref()]) {
            if let Some(key) = key {
                *slot = attempts.failures_since(key, since).await?;
            }
        }
        let [source_failures, pair_failures, account_failures] = counts;
        Ok(source_failures >= config.max_source_failures
            || pair_failures >= config.max_account_source_failures
            || (account_failures >= config.max_account_failures && pair_failures > 0))
    }

    /// Counts a second factor of the account `email` from `source` under the sign-in
    /// throttle: a refusal is a failed sign-in of the source, the account and the account
    /// from the source; an acceptance forgets the account-from-source failures.
    pub(super) async fn record_factor_outcome(
        &self,
        ctx: &RequestContext,
        source: &ThrottleKey,
        email: Option<&Email>,
        accepted: bool,
    ) -> Result<(), PortalError> {
        let attempts = &self.inner.stores.attempts;
        let pair = email.and_then(|email| source.with_account(email));
        if accepted {
            if let Some(pair) = &pair {
                attempts.clear(pair).await?;
            }
        } else {
            let account = email.cloned().map(ThrottleKey::Account);
            for key in [Some(source), pair.as_ref(), account.as_ref()].into_iter().flatten() {
                attempts.record_failure(key, ctx.now()).await?;
            }
        }
        Ok(())
    }

    /// The live MFA challenge `token` names, and its hash; nothing is used.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid` (malformed, tampered or unknown), `auth.token_used`,
    /// `auth.token_expired`, all with param `challenge_token`; `storage.*`.
    pub(super) async fn open_challenge(
        &self,
        ctx: &RequestContext,
        mfa: &Mfa,
        token: &SecretString,
    ) -> Result<(TokenHash, OneTimeTokenRecord), PortalError> {
        let hash = ChallengeToken::parse(token)
            .ok_or_else(|| challenge_error(ErrorCode::TokenInvalid, "the challenge token is not valid"))?
            .hash();
        let record = mfa
            .challenges
            .find_token(TokenPurpose::MfaChallenge, &hash)
            .await?
            .ok_or_else(|| challenge_error(ErrorCode::TokenInvalid, "the challenge token is not valid"))?;
        if record.used_at.is_some() {
            return Err(challenge_error(ErrorCode::TokenUsed, "the challenge was already used"));
        }
        if ctx.now() >= record.expires_at {
            return Err(challenge_error(
                ErrorCode::TokenExpired,
                "the challenge has expired; sign in again",
            ));
        }
        Ok((hash, record))
    }

    /// Uses the MFA challenge whose hash is `hash`, once, in one atomic step (which also
    /// retires its user's other open challenges).
    ///
    /// # Errors
    ///
    /// As [`open_challenge`](Self::open_challenge), for a challenge used or expired since.
    pub(super) async fn use_challenge(
        &self,
        ctx: &RequestContext,
        mfa: &Mfa,
        hash: &TokenHash,
    ) -> Result<(), PortalError> {
        match mfa
            .challenges
            .consume(TokenPurpose::MfaChallenge, hash, ctx.now())
            .await?
        {
            TokenUse::Consumed(_) => Ok(()),
            TokenUse::Expired(_) => Err(challenge_error(
                ErrorCode::TokenExpired,
                "the challenge has expired; sign in again",
            )),
            TokenUse::AlreadyUsed(_) => Err(challenge_error(ErrorCode::TokenUsed, "the challenge was already used")),
            TokenUse::Unknown => Err(challenge_error(
                ErrorCode::TokenInvalid,
                "the challenge token is not valid",
            )),
        }
    }

    fn record_mfa<T>(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        org: Option<OrgId>,
        started: Instant,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> Value,
    ) {
        self.record(ctx, name, org, started, result, detail);
    }

    /// The signed-in user's second factors: whether a TOTP factor is enrolled, how many
    /// recovery codes are left, and how many passkeys they have.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `internal.error` without [`Mfa`]; `storage.*`.
    pub async fn mfa_status(&self, ctx: &RequestContext) -> Result<MfaStatus, PortalError> {
        let user = principal_user(ctx)?;
        let mfa = self.mfa_config()?;
        let factor = mfa.factors.find_totp(user).await?;
        let (totp, confirmed_at) = match &factor {
            None => (TotpState::None, None),
            Some(f) if f.confirmed_at.is_some() => (TotpState::Confirmed, f.confirmed_at),
            Some(_) => (TotpState::Pending, None),
        };
        let recovery_codes_left = match totp {
            TotpState::Confirmed => mfa.factors.recovery_codes_left(user).await?,
            _ => 0,
        };
        let passkeys = match &self.inner.passkeys {
            Some(passkeys) => passkeys.store.passkeys(user).await?.len(),
            None => 0,
        };
        Ok(MfaStatus {
            totp,
            confirmed_at,
            recovery_codes_left,
            passkeys,
        })
    }

    /// Begins TOTP enrollment for the signed-in user, after they prove themselves again:
    /// their `password` and, when they have a passkey (their second factor), a fresh one
    /// (`factor`), both from `source` and throttled as sign-in is; a session alone (one
    /// stolen, or left open) would otherwise put a factor of its holder's choosing on the
    /// account, which every later sign-in would ask for. Answers a new secret (replacing
    /// a pending one), shown once as base32, as an `otpauth://` URI and as its QR code.
    /// The factor signs nobody in until [`confirm_totp`](Self::confirm_totp).
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.mfa_already_enrolled` over a confirmed
    /// factor (before the password is checked); `auth.invalid_credentials` for a wrong
    /// password; `auth.mfa_code_invalid` (`code`) for a missing factor;
    /// `auth.passkey_refused` (`credential`) and the ceremony's `auth.token_*` for a
    /// refused passkey; `validation.invalid_field` (`source`); `service.busy`;
    /// `internal.error` without [`Mfa`] or when the random generator fails; `storage.*`.
    pub async fn begin_totp_enrollment(
        &self,
        ctx: &RequestContext,
        password: SecretString,
        factor: Option<SecondFactor>,
        source: &str,
    ) -> Result<TotpEnrollment, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let mfa = self.mfa_config()?;
            let source = ThrottleKey::source(source)?;
            if self.confirmed_factor(user).await?.is_some() {
                return Err(already_enrolled());
            }
            self.reauthenticate(ctx, user, password, factor.as_ref(), &source, "enroll_totp")
                .await?;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "no such user"))?;
            let secret = TotpSecret::generate()?;
            let uri = totp::otpauth_uri(&secret, &mfa.issuer, account.email.as_str())?;
            let record = TotpFactorRecord {
                user,
                secret: SecretBox::new(Box::new(*secret.expose_bytes())),
                created_at: ctx.now(),
                confirmed_at: None,
                last_step: None,
            };
            mfa.factors.begin_enrollment(&record).await.map_err(|err| match err {
                StoreError::Conflict(Conflict::AlreadyExists { .. }) => already_enrolled(),
                other => other.into(),
            })?;
            Ok(TotpEnrollment {
                secret: base32(secret.expose_bytes()),
                qr_svg: qr_svg(&uri)?,
                otpauth_uri: uri,
            })
        }
        .await;
        self.record_mfa(
            ctx,
            "auth.mfa.enroll_begin",
            None,
            started,
            result.as_ref(),
            |_| json!({ "user": user, "factor": "totp" }),
        );
        result
    }

    /// Confirms the signed-in user's pending TOTP factor with a first `code` and answers
    /// their recovery codes, shown once (only their hashes are kept). From now on sign-in
    /// asks for the factor.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.mfa_not_enrolled` without a pending factor;
    /// `auth.mfa_code_invalid` (`code`) for a wrong code; `internal.error` without [`Mfa`];
    /// `storage.*`.
    pub async fn confirm_totp(
        &self,
        ctx: &RequestContext,
        code: &SecretString,
    ) -> Result<Vec<SecretString>, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let mut failure = None;
        let result = async {
            let user = principal_user(ctx)?;
            let mfa = self.mfa_config()?;
            let pending = mfa
                .factors
                .find_totp(user)
                .await?
                .filter(|f| f.confirmed_at.is_none())
                .ok_or_else(|| {
                    PortalError::new(ErrorCode::MfaNotEnrolled, "no enrollment is pending; begin one first")
                })?;
            let secret = TotpSecret::from_bytes(*pending.secret.expose_secret());
            let step = totp::check_code(&secret, code.expose_secret(), ctx.now(), None).map_err(|_| {
                failure = Some(FactorRefusal::Wrong);
                code_refused("code")
            })?;
            let codes = RecoveryCodes::generate()?;
            let hashes: Vec<TokenHash> = codes.hashes().iter().map(|h| TokenHash(*h)).collect();
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_MFA_ENROLLED,
                    json!({ "factor": "totp" }),
                )
                .await?;
            if !mfa.factors.confirm_totp(user, step, &hashes, ctx.now(), &event).await? {
                // Removed or replaced by a concurrent request since it was read.
                return Err(PortalError::new(
                    ErrorCode::MfaNotEnrolled,
                    "no enrollment is pending; begin one first",
                ));
            }
            Ok(codes.into_codes())
        }
        .await;
        self.record_mfa(
            ctx,
            "auth.mfa.enroll",
            None,
            started,
            result.as_ref(),
            |codes| json!({ "user": user, "factor": "totp", "recovery_codes": codes.len() }),
        );
        if let (Some(failure), Some(user)) = (failure, user) {
            self.record_mfa_failure(ctx, "auth.mfa.enroll", user, failure);
        }
        result
    }

    /// Checks `factor` against the user's confirmed factor and uses it up: a TOTP code of
    /// a step after the last accepted one (the step is stored), or an unused recovery
    /// code (marked used). Throttled as sign-in is, with `source`, the user's address,
    /// and the two together; a refusal counts as a failed sign-in.
    async fn use_fresh_factor(
        &self,
        ctx: &RequestContext,
        mfa: &Mfa,
        factor_record: &TotpFactorRecord,
        factor: &SecondFactor,
        email: Option<&Email>,
        source: &ThrottleKey,
    ) -> Result<Result<bool, FactorRefusal>, PortalError> {
        let user = factor_record.user;
        if self.factor_throttled(ctx, source, email).await? {
            return Ok(Err(FactorRefusal::Locked));
        }
        let outcome = match factor {
            SecondFactor::Totp(code) => {
                let secret = TotpSecret::from_bytes(*factor_record.secret.expose_secret());
                match totp::check_code(&secret, code.expose_secret(), ctx.now(), factor_record.last_step) {
                    Ok(step) => {
                        if mfa.factors.accept_step(user, step).await? {
                            Ok(false)
                        } else {
                            // A concurrent request accepted this step (or a later one) first.
                            Err(FactorRefusal::Replayed)
                        }
                    }
                    Err(CodeRefusal::Replayed) => Err(FactorRefusal::Replayed),
                    Err(CodeRefusal::Wrong) => Err(FactorRefusal::Wrong),
                }
            }
            // A passkey is checked by its own ceremony (`fresh_factor_of_caller`), and a
            // sign-in's challenge refuses one before it comes here: nothing to accept.
            SecondFactor::Passkey { .. } => Err(FactorRefusal::Wrong),
            SecondFactor::RecoveryCode(code) => {
                let typed = code.expose_secret();
                if typed.is_empty() || typed.len() > 64 {
                    Err(FactorRefusal::Wrong)
                } else if mfa
                    .factors
                    .use_recovery_code(user, &recovery_token_hash(typed), ctx.now())
                    .await?
                {
                    Ok(true)
                } else {
                    Err(FactorRefusal::Wrong)
                }
            }
        };
        self.record_factor_outcome(ctx, source, email, outcome.is_ok()).await?;
        Ok(outcome)
    }

    /// Records a refused second factor as `<name>` with `failure` (its reason).
    fn record_mfa_failure(&self, ctx: &RequestContext, name: &'static str, user: UserId, failure: FactorRefusal) {
        let event = DiagnosticEvent::new(ctx, EventKind::Authentication, name)
            .with_error(ErrorCode::MfaCodeInvalid)
            .with_detail(
                format!("{name}.v1"),
                json!({ "user": user, "failure": failure.as_str() }),
            );
        self.inner.gate.record(event);
    }

    /// Records that a recovery code was used, and how many are left.
    async fn record_recovery_use(&self, ctx: &RequestContext, mfa: &Mfa, user: UserId, during: &str) {
        let left = mfa.factors.recovery_codes_left(user).await.ok();
        let event = DiagnosticEvent::new(ctx, EventKind::Authentication, "auth.mfa.recovery_code.use").with_detail(
            "auth.mfa.recovery_code.use.v1",
            json!({ "user": user, "during": during, "recovery_codes_left": left }),
        );
        self.inner.gate.record(event);
    }

    /// Checks `factor` as a fresh second factor of the signed-in `user` (for their own
    /// changes: new recovery codes, adding or removing a factor, a change of
    /// email), throttled as sign-in is: a code against their confirmed TOTP factor (or a
    /// recovery code), or a passkey's answer to a re-authentication ceremony they began.
    pub(super) async fn fresh_factor_of_caller(
        &self,
        ctx: &RequestContext,
        mfa: &Mfa,
        user: UserId,
        factor: &SecondFactor,
        source: &ThrottleKey,
        during: &str,
    ) -> Result<(), PortalError> {
        if let SecondFactor::Passkey { ceremony, credential } = factor {
            return self
                .fresh_passkey_of_caller(ctx, user, ceremony, credential, source)
                .await;
        }
        let Some(record) = self.confirmed_factor(user).await? else {
            let message = if self.second_factors(user).await?.passkey {
                "no authenticator app is enrolled: confirm with a passkey"
            } else {
                "no second factor is enrolled"
            };
            return Err(PortalError::new(ErrorCode::MfaNotEnrolled, message));
        };
        let email = self.inner.tenancy.get_user(user).await?.map(|u| u.email);
        match self
            .use_fresh_factor(ctx, mfa, &record, factor, email.as_ref(), source)
            .await?
        {
            Ok(recovery) => {
                if recovery {
                    self.record_recovery_use(ctx, mfa, user, during).await;
                }
                Ok(())
            }
            Err(failure) => {
                self.record_mfa_failure(ctx, "auth.mfa.factor_check", user, failure);
                Err(code_refused(factor.param()))
            }
        }
    }

    /// Replaces the signed-in user's recovery codes (used or not) with ten new ones,
    /// shown once, after a fresh second factor (`factor`: a code, a recovery code or a
    /// passkey's answer to [`begin_passkey_reauthentication`](Self::begin_passkey_reauthentication);
    /// from `source`, throttled as sign-in is).
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.mfa_not_enrolled` without a confirmed factor;
    /// `auth.mfa_code_invalid` (`code` or `recovery_code`); `auth.passkey_refused`
    /// (`credential`) and the ceremony's `auth.token_*` for a refused passkey;
    /// `validation.invalid_field` (`source`); `internal.error` without [`Mfa`]; `storage.*`.
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &RequestContext,
        factor: SecondFactor,
        source: &str,
    ) -> Result<Vec<SecretString>, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let mfa = self.mfa_config()?;
            let source = ThrottleKey::source(source)?;
            self.fresh_factor_of_caller(ctx, &mfa, user, &factor, &source, "regenerate")
                .await?;
            let codes = RecoveryCodes::generate()?;
            let hashes: Vec<TokenHash> = codes.hashes().iter().map(|h| TokenHash(*h)).collect();
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_RECOVERY_CODES_REGENERATED,
                    json!({}),
                )
                .await?;
            if !mfa.factors.replace_recovery_codes(user, &hashes, &event).await? {
                return Err(PortalError::new(
                    ErrorCode::MfaNotEnrolled,
                    "no second factor is enrolled",
                ));
            }
            Ok(codes.into_codes())
        }
        .await;
        self.record_mfa(
            ctx,
            "auth.mfa.recovery_codes.regenerate",
            None,
            started,
            result.as_ref(),
            |codes| json!({ "user": user, "recovery_codes": codes.len() }),
        );
        result
    }

    /// Checks `password` as the signed-in `user`'s own, throttled under their address and
    /// `source` as sign-in is: the re-authentication that adding or removing a factor (TOTP, a
    /// passkey) asks first.
    ///
    /// # Errors
    ///
    /// `user.not_found`; `auth.invalid_credentials` for a wrong password, or one whose
    /// address names another account; `service.busy`; `storage.*`.
    pub(super) async fn confirm_own_password(
        &self,
        ctx: &RequestContext,
        user: UserId,
        password: SecretString,
        source: &ThrottleKey,
    ) -> Result<(), PortalError> {
        let account = self
            .inner
            .tenancy
            .get_user(user)
            .await?
            .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "no such user"))?;
        let email = account.email;
        let key = ThrottleKey::Account(email.clone());
        let (stored, _) = self
            .check_password(ctx, Some(&key), source, Some(&email), password)
            .await
            .map_err(|(err, _)| err)?;
        if stored.user != user {
            // The address names another account than the caller's: never theirs to change.
            return Err(PortalError::from(refused(AuthFailure::WrongSecret)));
        }
        Ok(())
    }

    /// When the signed-in `user` has a second factor ([`second_factors`](Self::second_factors)),
    /// checks `factor` as a fresh one ([`fresh_factor_of_caller`](Self::fresh_factor_of_caller));
    /// a missing one is `auth.mfa_code_invalid` (`code`). A user without one needs none.
    pub(super) async fn fresh_factor_if_any(
        &self,
        ctx: &RequestContext,
        user: UserId,
        factor: Option<&SecondFactor>,
        source: &ThrottleKey,
        during: &str,
    ) -> Result<(), PortalError> {
        if !self.second_factors(user).await?.any() {
            return Ok(());
        }
        let factor = factor.ok_or_else(|| {
            PortalError::new(
                ErrorCode::MfaCodeInvalid,
                "a fresh second factor is needed: a code from the authenticator app, a recovery code or a passkey",
            )
            .with_param("code")
        })?;
        let mfa = self.mfa_config()?;
        self.fresh_factor_of_caller(ctx, &mfa, user, factor, source, during)
            .await
    }

    /// The signed-in `user` proving themselves again before a change of their sign-in
    /// methods: their `password` ([`confirm_own_password`](Self::confirm_own_password)),
    /// then a fresh second factor when they have one
    /// ([`fresh_factor_if_any`](Self::fresh_factor_if_any)).
    pub(super) async fn reauthenticate(
        &self,
        ctx: &RequestContext,
        user: UserId,
        password: SecretString,
        factor: Option<&SecondFactor>,
        source: &ThrottleKey,
        during: &str,
    ) -> Result<(), PortalError> {
        self.confirm_own_password(ctx, user, password, source).await?;
        self.fresh_factor_if_any(ctx, user, factor, source, during).await
    }

    /// Removes the signed-in user's TOTP factor and recovery codes, after their password
    /// and a fresh second factor (both from `source`, throttled as sign-in is). A pending
    /// enrollment is removed with the password alone.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `auth.invalid_credentials` for a wrong password;
    /// `auth.mfa_not_enrolled` without a factor; `auth.mfa_code_invalid` (`code` or
    /// `recovery_code`); `auth.passkey_refused` (`credential`) and the ceremony's
    /// `auth.token_*` for a refused passkey; `validation.invalid_field` (`source`); `service.busy`;
    /// `internal.error` without [`Mfa`]; `storage.*`.
    pub async fn remove_totp(
        &self,
        ctx: &RequestContext,
        password: SecretString,
        factor: SecondFactor,
        source: &str,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let user = principal_user(ctx)?;
            let mfa = self.mfa_config()?;
            let source = ThrottleKey::source(source)?;
            self.confirm_own_password(ctx, user, password, &source).await?;
            let factor_record = mfa
                .factors
                .find_totp(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::MfaNotEnrolled, "no second factor is enrolled"))?;
            if factor_record.confirmed_at.is_some() {
                self.fresh_factor_of_caller(ctx, &mfa, user, &factor, &source, "remove")
                    .await?;
            }
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_MFA_REMOVED,
                    json!({ "factor": "totp" }),
                )
                .await?;
            if !mfa.factors.remove_totp(user, &event).await? {
                return Err(PortalError::new(
                    ErrorCode::MfaNotEnrolled,
                    "no second factor is enrolled",
                ));
            }
            Ok(())
        }
        .await;
        self.record_mfa(
            ctx,
            "auth.mfa.remove",
            None,
            started,
            result.as_ref(),
            |_| json!({ "user": user, "factor": "totp" }),
        );
        result
    }

    /// Signs a user in with email and password (throttled, as [`sign_in`](Self::sign_in)):
    /// a session for a user without a second factor, an [`MfaChallenge`] for a user with
    /// one (a confirmed TOTP factor or a passkey; then
    /// [`complete_mfa_challenge`](Self::complete_mfa_challenge) or
    /// [`complete_mfa_challenge_with_passkey`](Self::complete_mfa_challenge_with_passkey)).
    ///
    /// # Errors
    ///
    /// As [`sign_in`](Self::sign_in), without `auth.second_factor_required`.
    pub async fn begin_sign_in(&self, ctx: &RequestContext, request: SignIn) -> Result<SignInStep, PortalError> {
        let started = Instant::now();
        let mut user_seen = None;
        let result = self.sign_in_step(ctx, request, &mut user_seen).await;
        self.record_auth(
            ctx,
            "auth.sign_in",
            started,
            None,
            result.as_ref(),
            |step| match step {
                SignInStep::Session(s) => {
                    json!({ "user": s.session.user, "session": s.session.id, "active_org": s.session.active_org })
                }
                SignInStep::MfaChallenge(c) => {
                    json!({ "user": c.user, "session": null, "mfa": "challenge", "expires_at": c.expires_at })
                }
            },
            json!({ "user": user_seen }),
        );
        result
    }

    /// The password step of sign-in, then a session or a challenge.
    pub(super) async fn sign_in_step(
        &self,
        ctx: &RequestContext,
        request: SignIn,
        user_seen: &mut Option<UserId>,
    ) -> Result<SignInStep, PortalError> {
        let source = ThrottleKey::source(&request.source)?;
        let email = Email::new(&request.email).ok();
        let account = email.clone().map(ThrottleKey::Account);
        let (stored, password) = match self
            .check_password(ctx, account.as_ref(), &source, email.as_ref(), request.password)
            .await
        {
            Ok(found) => found,
            Err(err) => {
                *user_seen = err.1;
                return Err(err.0);
            }
        };
        let user = stored.user;
        *user_seen = Some(user);
        self.rehash_if_needed(ctx, stored, password).await;
        let factors = self.second_factors(user).await?;
        if factors.any() {
            let mfa = self.mfa_config()?;
            let token = ChallengeToken::generate()?;
            let record = OneTimeTokenRecord {
                token_hash: token.hash(),
                user,
                purpose: TokenPurpose::MfaChallenge,
                created_at: ctx.now(),
                expires_at: ctx.now() + mfa.challenge_lifetime,
                used_at: None,
            };
            mfa.challenges.issue(&record).await?;
            return Ok(SignInStep::MfaChallenge(MfaChallenge {
                token: token.into_secret(),
                user,
                expires_at: record.expires_at,
                factors,
            }));
        }
        let session = self
            .start_session(ctx, user, request.previous_session.as_ref(), "sign_in")
            .await?;
        Ok(SignInStep::Session(session))
    }

    /// Completes a sign-in with the second factor: the challenge `token` of
    /// [`begin_sign_in`](Self::begin_sign_in) and a TOTP code or a recovery code of its
    /// user, from `source`. Uses the challenge once and starts the session (revoking
    /// `previous_session`, as sign-in does). A wrong code leaves the challenge usable
    /// until it expires, and counts as a failed sign-in under the throttle.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid`, `auth.token_used`, `auth.token_expired` (`challenge_token`);
    /// `auth.mfa_code_invalid` (`code` or `recovery_code`) for a wrong, replayed or
    /// throttled code, or for a user whose second factor is a passkey only;
    /// `validation.invalid_field` (`source`; `passkey` for a [`SecondFactor::Passkey`]);
    /// `internal.error` without [`Mfa`];
    /// `storage.*`.
    pub async fn complete_mfa_challenge(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        factor: SecondFactor,
        source: &str,
        previous_session: Option<&SecretString>,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut user_seen = None;
        let mut failure = None;
        let result = async {
            if matches!(factor, SecondFactor::Passkey { .. }) {
                return Err(PortalError::invalid_field(
                    "passkey",
                    "a sign-in's challenge takes a passkey through its own ceremony \
                     (complete_mfa_challenge_with_passkey)",
                ));
            }
            let mfa = self.mfa_config()?;
            let source = ThrottleKey::source(source)?;
            let (hash, record) = self.open_challenge(ctx, &mfa, token).await?;
            let user = record.user;
            user_seen = Some(user);
            let Some(factor_record) = self.confirmed_factor(user).await? else {
                if self.second_factors(user).await?.passkey {
                    // The account's second factor is a passkey: no code answers for it.
                    failure = Some(FactorRefusal::NoTotp);
                    return Err(code_refused(factor.param()));
                }
                // Every factor was removed since the challenge: it means nothing.
                return Err(challenge_error(
                    ErrorCode::TokenInvalid,
                    "the challenge token is not valid",
                ));
            };
            let email = self.inner.tenancy.get_user(user).await?.map(|u| u.email);
            let recovery = match self
                .use_fresh_factor(ctx, &mfa, &factor_record, &factor, email.as_ref(), &source)
                .await?
            {
                Ok(recovery) => recovery,
                Err(refusal) => {
                    failure = Some(refusal);
                    return Err(code_refused(factor.param()));
                }
            };
            self.use_challenge(ctx, &mfa, &hash).await?;
            if recovery {
                self.record_recovery_use(ctx, &mfa, user, "sign_in").await;
            }
            let session = self.start_session(ctx, user, previous_session, "mfa").await?;
            Ok((session, if recovery { "recovery_code" } else { "totp" }))
        }
        .await;
        match (&result, failure) {
            (Err(_), Some(failure)) => {
                let event = Self::event(ctx, "auth.mfa.challenge", None, started)
                    .with_error(ErrorCode::MfaCodeInvalid)
                    .with_detail(
                        "auth.mfa.challenge.v1",
                        json!({ "user": user_seen, "failure": failure.as_str() }),
                    );
                self.inner.gate.record(event);
            }
            _ => self.record_mfa(
                ctx,
                "auth.mfa.challenge",
                None,
                started,
                result.as_ref(),
                |(s, with)| json!({ "user": s.session.user, "session": s.session.id, "factor": with }),
            ),
        }
        result.map(|(s, _)| s)
    }

    /// Whether `org` requires its members to have a second factor; any member may read it.
    ///
    /// # Errors
    ///
    /// `org.not_found` for an org the actor cannot reach; `access.denied`;
    /// `internal.error` without [`Mfa`]; `storage.*`.
    pub async fn mfa_policy(&self, ctx: &RequestContext, org: OrgId) -> Result<bool, PortalError> {
        let started = Instant::now();
        let result = async {
            self.inner
                .gate
                .authorize(ctx, org, portal_core::access::permissions::ORG_READ, org_not_found)
                .await?;
            let mfa = self.mfa_config()?;
            Ok(mfa.policies.mfa_required(org).await?)
        }
        .await;
        self.record(
            ctx,
            "auth.mfa.policy.read",
            Some(org),
            started,
            result.as_ref(),
            |r| json!({ "org": org, "required": r }),
        );
        result
    }

    /// Sets whether `org` requires its members to have a second factor (a confirmed TOTP
    /// factor or a passkey; permission `mfa_policy manage`, the owner's by default).
    /// Turning it on needs the caller to have one themselves, so nobody locks themselves
    /// out.
    ///
    /// # Errors
    ///
    /// `org.not_found` for an org the actor cannot reach; `access.denied`;
    /// `auth.mfa_required` turning it on without a factor; `internal.error` without
    /// [`Mfa`]; `storage.*`.
    pub async fn set_mfa_policy(&self, ctx: &RequestContext, org: OrgId, required: bool) -> Result<bool, PortalError> {
        let started = Instant::now();
        let result = async {
            self.inner
                .gate
                .authorize(ctx, org, MFA_POLICY_MANAGE, org_not_found)
                .await?;
            let mfa = self.mfa_config()?;
            if required {
                let has_factor = match ctx.principal().user() {
                    Some(user) => self.second_factors(user).await?.any(),
                    None => true,
                };
                if !has_factor {
                    return Err(PortalError::new(
                        ErrorCode::MfaRequired,
                        "enroll a second factor before requiring one of every member",
                    ));
                }
            }
            let before = mfa.policies.mfa_required(org).await?;
            let actor_name = match ctx.principal() {
                Principal::User(user) => self
                    .inner
                    .tenancy
                    .get_user(*user)
                    .await?
                    .map(|u| u.display_name.to_string()),
                Principal::ApiKey { .. } | Principal::Service(_) => None,
            };
            let event = AuditEvent::new(
                ctx,
                &*self.inner.ids,
                org,
                actions::ORG_MFA_POLICY_CHANGED,
                AuditActor::new(ctx.principal(), actor_name),
            )
            .target(AuditTarget::new("organization", org))
            .metadata(json!({ "before": before, "after": required }));
            mfa.policies.set_mfa_required(org, required, ctx.now(), &event).await?;
            Ok(required)
        }
        .await;
        self.record(
            ctx,
            "auth.mfa.policy.set",
            Some(org),
            started,
            result.as_ref(),
            |r| json!({ "org": org, "required": r }),
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(bytes).expose_secret(), text);
        }
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let svg = qr_svg(&SecretString::from(
            "otpauth://totp/Acme:ana%40example.com?secret=GEZDGNBV",
        ))
        .expect("drawn");
        let svg = svg.expose_secret();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
        assert!(svg.contains("<svg"));
        assert!(svg.contains("<path"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!(
            "{:?} {:?} {:?}",
            TotpEnrollment {
                secret: SecretString::from("SECRETBASE32"),
                otpauth_uri: SecretString::from("otpauth://x"),
                qr_svg: SecretString::from("<svg>"),
            },
            SecondFactor::Totp(SecretString::from("123456")),
            SecondFactor::RecoveryCode(SecretString::from("abcd-efgh")),
        );
        for secret in ["SECRETBASE32", "otpauth", "<svg>", "123456", "abcd"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
