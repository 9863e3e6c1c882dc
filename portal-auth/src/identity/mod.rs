//! Identity: passwords, sessions, API keys, sign-in throttling and active orgs, as one
//! [`IdentityService`] that is also the portal's [`Authenticator`].
//!
//! - Passwords are argon2id ([`PasswordParams`]: 19 MiB, 2 passes, 1 lane by default),
//!   hashed and verified on tokio's blocking threads, at most [`HashLimit`] at once (one
//!   per core by default): past it, after a short wait, `service.busy`. An unknown account costs the same
//!   verification (of a dummy hash), so timing does not tell who has an account. A hash
//!   with older parameters is replaced at the next successful sign-in.
//! - Sessions are opaque 256-bit tokens ([`token`]), shown once and stored as their
//!   SHA-256. A session ends when idle too long or at its absolute expiry, whichever
//!   comes first; signing in, switching org and [`rotate_session`](IdentityService::rotate_session)
//!   (call it when a user's privileges change) replace it with a new token. A rotated
//!   session keeps the absolute expiry of the one it replaces; only signing in (with the
//!   password) starts a new lifetime. Changing a password revokes every session of the user.
//! - Password reset by mail ([`PasswordReset`]): single-use 30-minute tokens stored as
//!   SHA-256, the same answer for every address; see `reset.rs`.
//! - Email verification by mail ([`EmailVerification`]): single-use 24-hour tokens stored
//!   as SHA-256, bound to the user and the address they were mailed to; see
//!   `verify_email.rs`.
//! - Change of email by mail ([`EmailChange`]): the password (and a fresh second factor)
//!   under the sign-in throttle, a single-use 24-hour link to the new address, a notice
//!   to the old one, and one store step that switches the address; see `change_email.rs`.
//! - Sign-up by mail under the host's [`SignUpPolicy`] ([`SignUp`]): the same answer for
//!   every address, a single-use 24-hour link that creates the account; an invitation
//!   creates the account of its address; see `sign_up.rs`.
//! - The TOTP second factor ([`Mfa`]; its mechanics in [`totp`]): enrollment with an
//!   otpauth URI and a QR code, recovery codes kept as SHA-256, removal with a fresh
//!   factor and the password, the MFA challenge of sign-in
//!   ([`begin_sign_in`](IdentityService::begin_sign_in)), and orgs' MFA policies; see
//!   `mfa.rs`.
//! - Passkeys (WebAuthn, [`Passkeys`]): registration by a signed-in user, passwordless
//!   sign-in with a discoverable credential (user verification required, so it stands for
//!   both factors), ceremony state kept in the store, counters that only move forward;
//!   a passkey is a second factor ([`SecondFactors`]): it meets an org's MFA policy and
//!   answers a password sign-in's MFA challenge; see `passkeys.rs`.
//! - The host's reset of a user's second factors, for a user who lost them all
//!   ([`reset_second_factors`](IdentityService::reset_second_factors)): every factor
//!   removed and every session ended, audited in each of the user's orgs, the user told
//!   by mail; see `factor_reset.rs`.
//! - API keys belong to an org and carry [`Scope`]s; a request made with a key may do
//!   exactly its scopes, in its own org, nothing else (see `portal_core::gate`).
//!   Creating one asks `api_keys manage`, and the creator must hold every scope they give
//!   the key.
//! - Failed sign-ins are counted per account, per account from one source, and per source
//!   in a [`LoginAttemptStore`] (shared by replicas); a source past its limits is refused
//!   until the window slides past its failures, but never an account for everyone: a
//!   source that has not failed for an account still signs in (see [`IdentityConfig`] for
//!   the model and its limits).
//! - Every refusal is `auth.invalid_credentials`; the reason goes only to diagnostics, as
//!   `detail.failure` of an `EventKind::Authentication` event.

mod hash_limit;
mod password;
pub mod token;
pub mod totp;

// The service's methods, by concern, one file each. Declared one by one (rustfmt would
// sort a block) so that the docs of `IdentityService` list them in this order.
mod passwords;

mod reset;

mod mfa;
mod passkeys;

mod factor_reset;
mod verify_email;

mod change_email;

mod sign_up;

mod sessions;

mod api_keys;

mod authenticate;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use portal_core::audit::{AuditActor, CatalogEntry};
use portal_core::diagnostics::{Detail, DiagnosticEvent, EventKind};
use portal_core::gate::Gate;
use portal_core::identity::{
    ApiKeyRecord, ApiKeyStore, AuthError, Authenticator, CredentialStore, LoginAttemptStore, Scope,
    SessionMembershipStore, SessionRecord, SessionStore, UserAuditEvent,
};
use portal_core::ids::{IdGenerator, OrgId, UserId};
use portal_core::tenancy::TenancyStore;
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

pub use change_email::{EmailChange, EmailChangeRequest};
pub use factor_reset::FactorReset;
pub use hash_limit::{DEFAULT_HASH_WAIT, HashLimit, HashPermit};
pub use mfa::{Mfa, MfaChallenge, MfaStatus, SecondFactor, SecondFactors, SignInStep, TotpEnrollment, TotpState};
pub use passkeys::{PasskeyCeremony, Passkeys};
pub use password::{
    BreachedPasswordCheck, KnownBreachedPasswords, NoBreachCheck, PasswordHasher, PasswordParams, PasswordPolicy,
};
pub use reset::PasswordReset;
pub use sign_up::{SignUp, SignUpPolicy, SignedUp};
pub use verify_email::{EmailStatus, EmailVerification};

/// The permissions API key administration asks for in the org.
pub mod permissions {
    use portal_core::access::Permission;

    /// List the org's API keys.
    pub const API_KEYS_READ: Permission = Permission::new("api_keys", "read");
    /// Create and revoke the org's API keys.
    pub const API_KEYS_MANAGE: Permission = Permission::new("api_keys", "manage");
    /// Turn the org's MFA policy ("members must use a second factor") on or off; only
    /// owners hold it among the built-in roles.
    pub const MFA_POLICY_MANAGE: Permission = Permission::new("mfa_policy", "manage");
}

/// Session lifetimes and sign-in limits.
///
/// # The sign-in throttle
///
/// A soft lockout after OWASP ASVS v4 §2.2.1, built so that it cannot be turned against
/// a user. Every failed sign-in (wrong password or unknown account, alike) is counted in
/// a sliding [`throttle_window`](Self::throttle_window) against three keys: the account
/// (the email, whether or not an account has it), the account *from this source*, and
/// the source (the client address, an IPv6 client by its /64). Before any password is
/// hashed, an attempt is refused (`auth.invalid_credentials`, `failure: locked` in
/// diagnostics) when
///
/// - its source failed [`max_source_failures`](Self::max_source_failures) times on any
///   accounts (one address guessing across many accounts), or
/// - its source failed [`max_account_source_failures`](Self::max_account_source_failures)
///   times for this account (one address guessing one password), or
/// - the account failed [`max_account_failures`](Self::max_account_failures) times from
///   all sources (it is under a distributed attack) and this source has failed for it at
///   least once: every attacking source gets one guess per window, no more.
///
/// What it promises: nobody can lock an account for its owner. A source that has not
/// failed for an account is never refused for it because of others' failures, so the
/// owner signing in from their own address gets in at once, however hard the account is
/// attacked from elsewhere. A success forgets that source's failures for the account (not
/// the account's total, so an attack in progress stays visible).
///
/// Its limits: an attacker with many addresses (a botnet, or many IPv6 /64s) still gets
/// about one guess per address per account per window, and up to
/// `max_account_source_failures` from each before the account counts as attacked; a
/// password in the breach list refused at setting time and a second factor are the
/// defence there. An owner who mistypes from an address while their account is under
/// attack waits out the window on that address (another address works). Users behind one
/// NAT share a source, so one of them failing on many accounts refuses the others for
/// the window. The counts live in the shared [`LoginAttemptStore`], so the limits hold
/// across replicas, up to the races of concurrent attempts (a few extra guesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A session unused this long ends. Default 30 minutes.
    pub session_idle: Duration,
    /// A session ends this long after it started, used or not. Default 12 hours.
    pub session_absolute: Duration,
    /// Use of a session or key is written back at most this often (a request within it
    /// of the last recorded use does not write). Default 1 minute.
    pub touch_interval: Duration,
    /// The window failed sign-ins are counted in. Default 15 minutes.
    pub throttle_window: Duration,
    /// Failures of one account from all sources in the window past which it is under
    /// attack: a source that has failed for it is refused for it, a source that has not
    /// still signs in. Default 20.
    pub max_account_failures: u64,
    /// Failures of one account from one source in the window that refuse that source for
    /// that account (and no other source). Default 5.
    pub max_account_source_failures: u64,
    /// Failures from one source on any accounts in the window that refuse that source.
    /// Default 50.
    pub max_source_failures: u64,
    /// The longest an API key may live; `None` allows keys that never expire. Default
    /// 365 days.
    pub max_api_key_lifetime: Option<Duration>,
    /// The length bounds of new passwords.
    pub password_policy: PasswordPolicy,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            session_idle: Duration::minutes(30),
            session_absolute: Duration::hours(12),
            touch_interval: Duration::minutes(1),
            throttle_window: Duration::minutes(15),
            max_account_failures: 20,
            max_account_source_failures: 5,
            max_source_failures: 50,
            max_api_key_lifetime: Some(Duration::days(365)),
            password_policy: PasswordPolicy::default(),
        }
    }
}

/// The four identity stores; every backend of `portal-adapters` has one type that is all
/// of them (`InMemoryIdentityStore`, `SqliteIdentityStore`, `PgIdentityStore`).
#[derive(Clone)]
pub struct IdentityStores {
    /// Password hashes.
    pub credentials: Arc<dyn CredentialStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Failed sign-ins.
    pub attempts: Arc<dyn LoginAttemptStore>,
}

impl IdentityStores {
    /// All four from one store.
    pub fn from_one<S>(store: Arc<S>) -> Self
    where
        S: CredentialStore + SessionStore + ApiKeyStore + LoginAttemptStore,
    {
        Self {
            credentials: store.clone(),
            sessions: store.clone(),
            api_keys: store.clone(),
            attempts: store,
        }
    }
}

/// A sign-in request.
#[derive(Debug)]
pub struct SignIn {
    /// The login email, as typed.
    pub email: String,
    /// The password.
    pub password: SecretString,
    /// Where the attempt comes from, as the host names it (the client's IP address).
    pub source: String,
    /// The session token the client still holds, if any: it is revoked, so a session
    /// fixed before sign-in never becomes a signed-in one.
    pub previous_session: Option<SecretString>,
}

/// A new session: its token, shown once, and its record.
#[derive(Debug)]
pub struct NewSession {
    /// The token for the client; only its hash is stored.
    pub token: SecretString,
    /// The session.
    pub session: SessionRecord,
}

/// A request for a new API key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// A human name, 1 to 100 characters.
    pub name: String,
    /// What the key may do, at least one.
    pub scopes: Vec<Scope>,
    /// When it stops working; required when the config bounds key lifetimes.
    pub expires_at: Option<OffsetDateTime>,
}

/// A new API key: the key, shown once, and its record.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The key for its creator; only its hash and prefix are stored.
    pub key: SecretString,
    /// The key's record.
    pub record: ApiKeyRecord,
}

/// Passwords, sessions, API keys, throttling and active orgs; also the portal's
/// [`Authenticator`] (hand it to `PortalBuilder::authenticator`).
///
/// Cheap to clone. See the [module docs](self) for the rules it keeps.
#[derive(Clone)]
pub struct IdentityService {
    inner: Arc<Inner>,
}

struct Inner {
    stores: IdentityStores,
    tenancy: Arc<dyn TenancyStore>,
    gate: Gate,
    ids: Arc<dyn IdGenerator>,
    hasher: Arc<PasswordHasher>,
    hash_limit: Arc<HashLimit>,
    dummy_hash: Arc<OnceLock<SecretString>>,
    breach: Arc<dyn BreachedPasswordCheck>,
    bearer: Option<Arc<dyn Authenticator>>,
    session_memberships: Option<Arc<dyn SessionMembershipStore>>,
    reset: Option<Arc<PasswordReset>>,
    verification: Option<Arc<EmailVerification>>,
    email_change: Option<Arc<EmailChange>>,
    sign_up: Option<Arc<SignUp>>,
    mfa: Option<Arc<Mfa>>,
    passkeys: Option<Arc<Passkeys>>,
    config: IdentityConfig,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("hasher", &self.inner.hasher)
            .field("hash_limit", &self.inner.hash_limit)
            .field("config", &self.inner.config)
            .field("bearer", &self.inner.bearer.is_some())
            .field("reset", &self.inner.reset)
            .field("verification", &self.inner.verification)
            .field("email_change", &self.inner.email_change)
            .field("sign_up", &self.inner.sign_up)
            .field("mfa", &self.inner.mfa)
            .field("passkeys", &self.inner.passkeys)
            .finish_non_exhaustive()
    }
}

fn principal_user(ctx: &RequestContext) -> Result<UserId, PortalError> {
    ctx.principal()
        .user()
        .ok_or_else(|| PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this"))
}

impl IdentityService {
    /// Assembles the service. `gate` must be the portal's (give the portal the same one
    /// with `PortalBuilder::gate`), so that API key administration is decided and recorded
    /// as everything else is.
    pub fn new(stores: IdentityStores, tenancy: Arc<dyn TenancyStore>, gate: Gate, ids: Arc<dyn IdGenerator>) -> Self {
        Self {
            inner: Arc::new(Inner {
                stores,
                tenancy,
                gate,
                ids,
                hasher: Arc::new(PasswordHasher::default()),
                hash_limit: Arc::new(HashLimit::for_this_machine()),
                dummy_hash: Arc::new(OnceLock::new()),
                breach: Arc::new(NoBreachCheck),
                bearer: None,
                session_memberships: None,
                reset: None,
                verification: None,
                email_change: None,
                sign_up: None,
                mfa: None,
                passkeys: None,
                config: IdentityConfig::default(),
            }),
        }
    }

    fn with_inner(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                stores: shared.stores.clone(),
                tenancy: shared.tenancy.clone(),
                gate: shared.gate.clone(),
                ids: shared.ids.clone(),
                hasher: shared.hasher.clone(),
                hash_limit: shared.hash_limit.clone(),
                dummy_hash: shared.dummy_hash.clone(),
                breach: shared.breach.clone(),
                bearer: shared.bearer.clone(),
                session_memberships: shared.session_memberships.clone(),
                reset: shared.reset.clone(),
                verification: shared.verification.clone(),
                email_change: shared.email_change.clone(),
                sign_up: shared.sign_up.clone(),
                mfa: shared.mfa.clone(),
                passkeys: shared.passkeys.clone(),
                config: shared.config,
            },
        };
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// The same service with other argon2 parameters (new hashes get them; older ones
    /// are rehashed at the next sign-in).
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `password_params`) for parameters argon2 refuses.
    pub fn with_password_params(self, params: PasswordParams) -> Result<Self, PortalError> {
        let hasher = PasswordHasher::new(params)?;
        Ok(self.with_inner(|inner| {
            inner.hasher = Arc::new(hasher);
            inner.dummy_hash = Arc::new(OnceLock::new());
        }))
    }

    /// The same service bounding concurrent password hashing by `limit` instead of
    /// [`HashLimit::for_this_machine`].
    pub fn with_hash_limit(self, limit: HashLimit) -> Self {
        self.with_inner(|inner| inner.hash_limit = Arc::new(limit))
    }

    /// The bound on concurrent password hashing (its permits, and how many are held).
    pub fn hash_limit(&self) -> &Arc<HashLimit> {
        &self.inner.hash_limit
    }

    /// The password hasher (its parameters, and how many computations run).
    pub fn password_hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The same service with other lifetimes and limits.
    pub fn with_config(self, config: IdentityConfig) -> Self {
        self.with_inner(|inner| inner.config = config)
    }

    /// The same service checking new passwords with `check`.
    pub fn with_breach_check(self, check: Arc<dyn BreachedPasswordCheck>) -> Self {
        self.with_inner(|inner| inner.breach = check)
    }

    /// The same service handing [`Credential::Bearer`](portal_core::identity::Credential::Bearer) to
    /// `bearer` (such as the JWT authenticator); without one, bearer tokens are refused as
    /// malformed.
    pub fn with_bearer(self, bearer: Arc<dyn Authenticator>) -> Self {
        self.with_inner(|inner| inner.bearer = Some(bearer))
    }

    /// The same service reading a session and its user's membership in the active org
    /// with one call to `store` on every session-authenticated request, instead of a
    /// session read and then a membership read.
    ///
    /// `store` must read the sessions of this service's session store and the memberships
    /// of its tenancy store (the SQLite and Postgres adapters' identity stores do, on the
    /// pool the tenancy store uses); give it only then, or a member would be seen as a
    /// stranger to their org.
    pub fn with_session_memberships(self, store: Arc<dyn SessionMembershipStore>) -> Self {
        self.with_inner(|inner| inner.session_memberships = Some(store))
    }

    /// The same service offering password reset by mail as `reset` says
    /// ([`request_password_reset`](Self::request_password_reset),
    /// [`reset_password`](Self::reset_password)), and mailing users when their password
    /// changes.
    pub fn with_password_reset(self, reset: PasswordReset) -> Self {
        self.with_inner(|inner| inner.reset = Some(Arc::new(reset)))
    }

    /// The same service offering email verification by mail as `verification` says
    /// ([`request_email_verification`](Self::request_email_verification),
    /// [`verify_email`](Self::verify_email), [`email_status`](Self::email_status)).
    pub fn with_email_verification(self, verification: EmailVerification) -> Self {
        self.with_inner(|inner| inner.verification = Some(Arc::new(verification)))
    }

    /// The same service letting a signed-in user move their account to another address
    /// as `change` says ([`request_email_change`](Self::request_email_change),
    /// [`confirm_email_change`](Self::confirm_email_change)).
    pub fn with_email_change(self, change: EmailChange) -> Self {
        self.with_inner(|inner| inner.email_change = Some(Arc::new(change)))
    }

    /// The same service letting people sign up as `sign_up` says
    /// ([`request_sign_up`](Self::request_sign_up),
    /// [`complete_sign_up`](Self::complete_sign_up),
    /// [`sign_up_by_invitation`](Self::sign_up_by_invitation)).
    pub fn with_sign_up(self, sign_up: SignUp) -> Self {
        self.with_inner(|inner| inner.sign_up = Some(Arc::new(sign_up)))
    }

    /// The same service with the TOTP second factor as `mfa` says: enrollment, recovery
    /// codes, the MFA challenge at sign-in ([`begin_sign_in`](Self::begin_sign_in)) and
    /// orgs' MFA policies (enforced by a gate built `with_mfa_policy` on the same store).
    pub fn with_mfa(self, mfa: Mfa) -> Self {
        self.with_inner(|inner| inner.mfa = Some(Arc::new(mfa)))
    }

    /// The same service with passkeys as `passkeys` says: registration, renaming and
    /// removal by the signed-in user, and passwordless sign-in
    /// ([`begin_passkey_sign_in`](Self::begin_passkey_sign_in)).
    pub fn with_passkeys(self, passkeys: Passkeys) -> Self {
        self.with_inner(|inner| inner.passkeys = Some(Arc::new(passkeys)))
    }

    /// The current configuration.
    pub fn config(&self) -> &IdentityConfig {
        &self.inner.config
    }

    // -----------------------------------------------------------------------------------
    // The customer audit log
    // -----------------------------------------------------------------------------------

    /// The audit event `entry` about `user`, done by `actor` (shown by their display name
    /// now, if a user), for the store to write once per org `user` belongs to.
    pub(super) async fn user_event(
        &self,
        ctx: &RequestContext,
        actor: &Principal,
        user: UserId,
        entry: CatalogEntry,
        metadata: Value,
    ) -> Result<UserAuditEvent, PortalError> {
        let name = match actor {
            Principal::User(id) => self
                .inner
                .tenancy
                .get_user(*id)
                .await?
                .map(|u| u.display_name.to_string()),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        };
        Ok(
            UserAuditEvent::new(ctx, self.inner.ids.clone(), user, entry, AuditActor::new(actor, name))
                .metadata(metadata),
        )
    }

    // -----------------------------------------------------------------------------------
    // Diagnostics
    // -----------------------------------------------------------------------------------

    fn event(ctx: &RequestContext, name: &'static str, org: Option<OrgId>, started: Instant) -> DiagnosticEvent {
        let mut event = DiagnosticEvent::new(ctx, EventKind::Authentication, name).with_duration(started.elapsed());
        if let Some(org) = org {
            event = event.with_org(org);
        }
        event
    }

    /// Records an operation's outcome the way every service does.
    fn record<T, D: Into<Detail>>(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        org: Option<OrgId>,
        started: Instant,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> D,
    ) {
        self.inner
            .gate
            .record_outcome(Self::event(ctx, name, org, started), result, detail);
    }

    /// Records an authentication outcome: a refusal gets `auth.invalid_credentials` and a
    /// `<name>.v1` detail with `failure` and the ids known (`seen`); anything else is
    /// recorded as [`record`](Self::record) does.
    #[allow(
        clippy::too_many_arguments,
        reason = "one recording helper for every authentication path"
    )]
    fn record_auth<T, D: Into<Detail>>(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        started: Instant,
        org: Option<OrgId>,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> D,
        seen: Value,
    ) {
        let failure = result.err().and_then(|err| {
            std::error::Error::source(err)
                .and_then(|source| source.downcast_ref::<AuthError>())
                .and_then(AuthError::failure)
        });
        match failure {
            Some(failure) => {
                let mut detail = match seen {
                    Value::Object(map) => Value::Object(map),
                    _ => json!({}),
                };
                detail["failure"] = json!(failure.as_str());
                let event = Self::event(ctx, name, org, started)
                    .with_error(ErrorCode::InvalidCredentials)
                    .with_detail(format!("{name}.v1"), detail);
                self.inner.gate.record(event);
            }
            None => self.record(ctx, name, org, started, result, detail),
        }
    }
}
