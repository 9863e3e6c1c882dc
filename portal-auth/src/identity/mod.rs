//! Identity: passwords, sessions, API keys, sign-in throttling and active orgs, as one
//! [`IdentityService`] that is also the portal's [`Authenticator`].
//!
//! - Passwords are argon2id ([`PasswordParams`]: 19 MiB, 2 passes, 1 lane by default),
//!   hashed and verified on tokio's blocking threads. An unknown account costs the same
//!   verification (of a dummy hash), so timing does not tell who has an account. A hash
//!   with older parameters is replaced at the next successful sign-in.
//! - Sessions are opaque 256-bit tokens ([`token`]), shown once and stored as their
//!   SHA-256. A session ends when idle too long or at its absolute expiry, whichever
//!   comes first; signing in, switching org and [`rotate_session`](IdentityService::rotate_session)
//!   (call it when a user's privileges change) replace it with a new token. Changing a
//!   password revokes every session of the user.
//! - API keys belong to an org and carry [`Scope`]s; a request made with a key may do
//!   exactly its scopes, in its own org, nothing else (see `portal_core::gate`).
//!   Creating one asks `api_keys manage`, and the creator must hold every scope they give
//!   the key.
//! - Failed sign-ins are counted per account and per source in a [`LoginAttemptStore`]
//!   (shared by replicas); past the limits in the window, sign-ins are refused until the
//!   window slides past the failures.
//! - Every refusal is `auth.invalid_credentials`; the reason goes only to diagnostics, as
//!   `detail.failure` of an `EventKind::Authentication` event.

mod password;
pub mod token;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use portal_core::access::Domain;
use portal_core::diagnostics::{DiagnosticEvent, EventKind};
use portal_core::gate::Gate;
use portal_core::identity::{
    ApiKeyRecord, ApiKeyStore, AuthError, AuthFailure, Authenticated, Authenticator, Credential, CredentialStore,
    LoginAttemptStore, PasswordRecord, Scope, SessionMembershipStore, SessionRecord, SessionStore, ThrottleKey,
};
use portal_core::ids::{ApiKeyId, IdGenerator, OrgId, SessionId, UserId};
use portal_core::tenancy::{Email, Membership, RoleName, TenancyStore};
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

pub use password::{
    BreachedPasswordCheck, KnownBreachedPasswords, NoBreachCheck, PasswordHasher, PasswordParams, PasswordPolicy,
};
use token::{ApiKeyToken, SessionToken};

/// The permissions API key administration asks for in the org.
pub mod permissions {
    use portal_core::access::Permission;

    /// List the org's API keys.
    pub const API_KEYS_READ: Permission = Permission::new("api_keys", "read");
    /// Create and revoke the org's API keys.
    pub const API_KEYS_MANAGE: Permission = Permission::new("api_keys", "manage");
}

/// Session lifetimes and sign-in limits.
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
    /// Failures of one account in the window that lock it. Default 5.
    pub max_account_failures: u64,
    /// Failures from one source in the window that lock it. Default 50.
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
            max_account_failures: 5,
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
    dummy_hash: Arc<OnceLock<SecretString>>,
    breach: Arc<dyn BreachedPasswordCheck>,
    bearer: Option<Arc<dyn Authenticator>>,
    session_memberships: Option<Arc<dyn SessionMembershipStore>>,
    config: IdentityConfig,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("hasher", &self.inner.hasher)
            .field("config", &self.inner.config)
            .field("bearer", &self.inner.bearer.is_some())
            .finish_non_exhaustive()
    }
}

/// An authentication failure, recorded and returned.
fn refused(failure: AuthFailure) -> AuthError {
    AuthError::InvalidCredentials { failure }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
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
                dummy_hash: Arc::new(OnceLock::new()),
                breach: Arc::new(NoBreachCheck),
                bearer: None,
                session_memberships: None,
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
                dummy_hash: shared.dummy_hash.clone(),
                breach: shared.breach.clone(),
                bearer: shared.bearer.clone(),
                session_memberships: shared.session_memberships.clone(),
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

    /// The same service with other lifetimes and limits.
    pub fn with_config(self, config: IdentityConfig) -> Self {
        self.with_inner(|inner| inner.config = config)
    }

    /// The same service checking new passwords with `check`.
    pub fn with_breach_check(self, check: Arc<dyn BreachedPasswordCheck>) -> Self {
        self.with_inner(|inner| inner.breach = check)
    }

    /// The same service handing [`Credential::Bearer`] to `bearer` (such as the JWT
    /// authenticator); without one, bearer tokens are refused as malformed.
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

    /// Forgets the failed sign-ins too old to count any more (from before the throttle
    /// window that ends at `ctx`'s time) and returns how many it forgot. Nothing else
    /// removes them: a host calls this now and then (the reference servers every five
    /// minutes), or the store grows by every failed sign-in ever made.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn prune_login_failures(&self, ctx: &RequestContext) -> Result<u64, PortalError> {
        let before = ctx.now() - self.inner.config.throttle_window;
        Ok(self.inner.stores.attempts.prune(before).await?)
    }

    /// The current configuration.
    pub fn config(&self) -> &IdentityConfig {
        &self.inner.config
    }

    // -----------------------------------------------------------------------------------
    // Passwords
    // -----------------------------------------------------------------------------------

    /// Sets `user`'s password (the first one, or a reset by the host): checked against the
    /// policy and the breach check, hashed, stored under the user's email. Existing
    /// sessions of the user are revoked first. Allowed to the user themselves and to a
    /// service principal.
    ///
    /// # Errors
    ///
    /// `access.denied` for anyone else; `user.not_found`; `validation.invalid_field`
    /// (`password`); `storage.*`.
    pub async fn set_password(
        &self,
        ctx: &RequestContext,
        user: UserId,
        password: SecretString,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let result = async {
            match ctx.principal() {
                Principal::User(me) if *me == user => {}
                Principal::Service(_) => {}
                Principal::User(_) | Principal::ApiKey { .. } => {
                    return Err(PortalError::new(
                        ErrorCode::AccessDenied,
                        "you are not allowed to do this",
                    ));
                }
            }
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            self.check_new_password(&password).await?;
            let hash = self.hash_blocking(password).await?;
            self.inner.stores.sessions.revoke_all(user, ctx.now()).await?;
            self.inner
                .stores
                .credentials
                .set_password(&PasswordRecord {
                    user,
                    email: account.email,
                    hash,
                    updated_at: ctx.now(),
                })
                .await?;
            Ok(())
        }
        .await;
        self.record(
            ctx,
            "auth.password.set",
            None,
            started,
            result.as_ref(),
            |()| json!({ "user": user }),
        );
        result
    }

    /// Changes the signed-in user's password after checking the current one, revokes every
    /// session of theirs, and returns a new session for the caller (in `active_org`).
    ///
    /// Sessions are revoked before the new hash is stored: if storing fails, the user signs
    /// in again with the old password, and no session outlives a change.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` if `current` is wrong (it counts as a failed sign-in);
    /// `access.denied` for a non-user; `validation.invalid_field` (`password`);
    /// `storage.*`.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        current: SecretString,
        new: SecretString,
        active_org: Option<OrgId>,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx);
        let result = async {
            let user = principal_user(ctx)?;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            let record = self.inner.stores.credentials.find_password(&account.email).await?;
            let Some(record) = record.filter(|r| r.user == user) else {
                return Err(PortalError::from(refused(AuthFailure::UnknownAccount)));
            };
            if !self.verify_blocking(Some(record.hash.clone()), current).await? {
                let key = ThrottleKey::Account(account.email.clone());
                self.inner.stores.attempts.record_failure(&key, ctx.now()).await?;
                return Err(PortalError::from(refused(AuthFailure::WrongSecret)));
            }
            self.check_new_password(&new).await?;
            let hash = self.hash_blocking(new).await?;
            self.inner.stores.sessions.revoke_all(user, ctx.now()).await?;
            self.inner
                .stores
                .credentials
                .set_password(&PasswordRecord {
                    user,
                    email: account.email,
                    hash,
                    updated_at: ctx.now(),
                })
                .await?;
            let active_org = self.member_org(user, active_org).await?;
            let (token, session) = self.new_session(ctx, user, active_org)?;
            self.inner.stores.sessions.create(&session).await?;
            Ok(NewSession { token, session })
        }
        .await;
        self.record_auth(
            ctx,
            "auth.password.change",
            started,
            None,
            result.as_ref(),
            |s| json!({ "user": s.session.user, "session": s.session.id }),
            json!({ "user": user.ok() }),
        );
        result
    }

    async fn check_new_password(&self, password: &SecretString) -> Result<(), PortalError> {
        self.inner.config.password_policy.check_length(password)?;
        if self.inner.breach.is_breached(password).await? {
            return Err(PortalError::invalid_field(
                "password",
                "this password appears in a known data breach; choose another",
            ));
        }
        Ok(())
    }

    async fn hash_blocking(&self, password: SecretString) -> Result<SecretString, PortalError> {
        let hasher = self.inner.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(|err| {
                PortalError::new(ErrorCode::Internal, "the hashing task failed").with_source(err.to_string())
            })?
    }

    /// Verifies `password` against `hash`, or against a dummy hash of the current
    /// parameters when there is none (an unknown account), on a blocking thread; the
    /// dummy is made once, on first use.
    async fn verify_blocking(&self, hash: Option<SecretString>, password: SecretString) -> Result<bool, PortalError> {
        let hasher = self.inner.hasher.clone();
        let dummy = self.inner.dummy_hash.clone();
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => Ok(hasher.verify(&hash, &password)),
            None => {
                if dummy.get().is_none() {
                    let made = hasher.hash(&SecretString::from("portal-core dummy password".to_owned()))?;
                    let _ = dummy.set(made);
                }
                if let Some(dummy) = dummy.get() {
                    let _ = hasher.verify(dummy, &password);
                }
                Ok(false)
            }
        })
        .await
        .map_err(|err| PortalError::new(ErrorCode::Internal, "the hashing task failed").with_source(err.to_string()))?
    }

    // -----------------------------------------------------------------------------------
    // Sign-in and sessions
    // -----------------------------------------------------------------------------------

    /// Signs a user in with email and password and starts a session (in their only org,
    /// if they have exactly one). Refused while the account or the source is locked.
    ///
    /// `ctx` is the request's context before authentication (the host's service
    /// principal). Every refusal is `auth.invalid_credentials`; the
    /// `auth.sign_in` event says why (`unknown_account`, `wrong_secret`, `locked`).
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials`; `validation.invalid_field` (`source`); `storage.*`.
    pub async fn sign_in(&self, ctx: &RequestContext, request: SignIn) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut user_seen = None;
        let result = self.sign_in_inner(ctx, request, &mut user_seen).await;
        self.record_auth(
            ctx,
            "auth.sign_in",
            started,
            None,
            result.as_ref(),
            |s| json!({ "user": s.session.user, "session": s.session.id, "active_org": s.session.active_org }),
            json!({ "user": user_seen }),
        );
        result
    }

    async fn sign_in_inner(
        &self,
        ctx: &RequestContext,
        request: SignIn,
        user_seen: &mut Option<UserId>,
    ) -> Result<NewSession, PortalError> {
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
        if let Some(account) = &account {
            self.inner.stores.attempts.clear(account).await?;
        }
        self.rehash_if_needed(ctx, stored, password).await;
        let orgs = self.inner.tenancy.list_user_orgs(user).await?;
        let active_org = match orgs.as_slice() {
            [(org, _)] => Some(org.id),
            _ => None,
        };
        let (token, session) = self.new_session(ctx, user, active_org)?;
        let previous = request
            .previous_session
            .as_ref()
            .and_then(SessionToken::parse)
            .map(|t| t.hash());
        let previous = match previous {
            Some(hash) => self
                .inner
                .stores
                .sessions
                .find_by_token(&hash)
                .await?
                .filter(|s| s.revoked_at.is_none()),
            None => None,
        };
        match previous {
            Some(old) => {
                self.inner.stores.sessions.rotate(old.id, &session, ctx.now()).await?;
                self.record_session_event(ctx, "auth.session.rotate", &session, Some(old.id), "sign_in");
            }
            None => {
                self.inner.stores.sessions.create(&session).await?;
                self.record_session_event(ctx, "auth.session.create", &session, None, "sign_in");
            }
        }
        Ok(NewSession { token, session })
    }

    /// Checks throttling and the password; returns the user and their record, or the
    /// refusal (and the user, when one was found).
    async fn check_password(
        &self,
        ctx: &RequestContext,
        account: Option<&ThrottleKey>,
        source: &ThrottleKey,
        email: Option<&Email>,
        password: SecretString,
    ) -> Result<(PasswordRecord, SecretString), (PortalError, Option<UserId>)> {
        let attempts = &self.inner.stores.attempts;
        let since = ctx.now() - self.inner.config.throttle_window;
        let plain = |err: PortalError| (err, None);
        let source_failures = attempts
            .failures_since(source, since)
            .await
            .map_err(|e| plain(e.into()))?;
        let account_failures = match account {
            Some(key) => attempts.failures_since(key, since).await.map_err(|e| plain(e.into()))?,
            None => 0,
        };
        if source_failures >= self.inner.config.max_source_failures
            || account_failures >= self.inner.config.max_account_failures
        {
            return Err(plain(PortalError::from(refused(AuthFailure::Locked))));
        }
        let record = match email {
            Some(email) => self
                .inner
                .stores
                .credentials
                .find_password(email)
                .await
                .map_err(|e| plain(e.into()))?,
            None => None,
        };
        let user = record.as_ref().map(|r| r.user);
        let matched = self
            .verify_blocking(record.as_ref().map(|r| r.hash.clone()), password.clone())
            .await
            .map_err(|e| (e, user))?;
        match record {
            Some(record) if matched => Ok((record, password)),
            found => {
                let failure = if found.is_some() {
                    AuthFailure::WrongSecret
                } else {
                    AuthFailure::UnknownAccount
                };
                attempts
                    .record_failure(source, ctx.now())
                    .await
                    .map_err(|e| (e.into(), user))?;
                if let Some(key) = account {
                    attempts
                        .record_failure(key, ctx.now())
                        .await
                        .map_err(|e| (e.into(), user))?;
                }
                Err((PortalError::from(refused(failure)), user))
            }
        }
    }

    /// After a successful sign-in, replaces a hash made with other parameters than the
    /// current ones by a hash of the verified `password`. A failure is recorded and
    /// otherwise ignored: the old hash still works.
    async fn rehash_if_needed(&self, ctx: &RequestContext, stored: PasswordRecord, password: SecretString) {
        if !self.inner.hasher.needs_rehash(&stored.hash) {
            return;
        }
        let user = stored.user;
        let started = Instant::now();
        let result: Result<(), PortalError> = async {
            let hash = self.hash_blocking(password).await?;
            self.inner
                .stores
                .credentials
                .set_password(&PasswordRecord {
                    hash,
                    updated_at: ctx.now(),
                    ..stored
                })
                .await?;
            Ok(())
        }
        .await;
        let params = self.inner.hasher.params();
        self.record(ctx, "auth.password.rehash", None, started, result.as_ref(), |()| {
            json!({ "user": user, "memory_kib": params.memory_kib, "iterations": params.iterations, "parallelism": params.parallelism })
        });
    }

    fn new_session(
        &self,
        ctx: &RequestContext,
        user: UserId,
        active_org: Option<OrgId>,
    ) -> Result<(SecretString, SessionRecord), PortalError> {
        let token = SessionToken::generate()?;
        let session = SessionRecord {
            id: SessionId::generate(&*self.inner.ids, ctx.now()),
            user,
            token_hash: token.hash(),
            active_org,
            created_at: ctx.now(),
            last_seen_at: ctx.now(),
            absolute_expires_at: ctx.now() + self.inner.config.session_absolute,
            revoked_at: None,
        };
        Ok((token.into_secret(), session))
    }

    /// `org` if `user` is a member of it.
    async fn member_org(&self, user: UserId, org: Option<OrgId>) -> Result<Option<OrgId>, PortalError> {
        Ok(self.membership_in(user, org).await?.map(|m| m.org))
    }

    /// The user's membership of `org`, if `org` is given and the user is a member.
    async fn membership_in(&self, user: UserId, org: Option<OrgId>) -> Result<Option<Membership>, PortalError> {
        match org {
            Some(org) => Ok(self.inner.tenancy.get_membership(org, user).await?),
            None => Ok(None),
        }
    }

    /// The live session of `token`, or why there is none.
    async fn live_session(&self, ctx: &RequestContext, token: &SecretString) -> Result<SessionRecord, AuthError> {
        self.live_session_seen(ctx, token, &mut Value::Null).await
    }

    /// [`live_session`](Self::live_session), noting the ids it found in `seen` (for the
    /// diagnostic event, also of a refusal).
    async fn live_session_seen(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        seen: &mut Value,
    ) -> Result<SessionRecord, AuthError> {
        let token = SessionToken::parse(token).ok_or(refused(AuthFailure::Malformed))?;
        let hash = token.hash();
        let session = self
            .inner
            .stores
            .sessions
            .find_by_token(&hash)
            .await?
            .filter(|s| s.token_hash.ct_eq(&hash))
            .ok_or(refused(AuthFailure::WrongSecret))?;
        self.live(ctx, session, seen)
    }

    /// `session` if it is live now, or why it is not, noting its ids in `seen`.
    fn live(&self, ctx: &RequestContext, session: SessionRecord, seen: &mut Value) -> Result<SessionRecord, AuthError> {
        *seen = json!({ "user": session.user, "session": session.id });
        if session.revoked_at.is_some() {
            return Err(refused(AuthFailure::Revoked));
        }
        if !session.is_live_at(ctx.now(), self.inner.config.session_idle) {
            return Err(refused(AuthFailure::Expired));
        }
        Ok(session)
    }

    async fn authenticate_session(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        seen: &mut Value,
    ) -> Result<Authenticated, AuthError> {
        // The active org is checked against membership on every request: a member
        // removed since keeps their session but loses the org.
        // The roles read here travel with the request, so its services need not read the
        // membership again.
        let (session, membership) = match &self.inner.session_memberships {
            Some(store) => {
                let hash = SessionToken::parse(token)
                    .ok_or(refused(AuthFailure::Malformed))?
                    .hash();
                let found = store.find_session_with_membership(&hash).await?;
                let (session, membership) = found
                    .filter(|(s, _)| s.token_hash.ct_eq(&hash))
                    .ok_or(refused(AuthFailure::WrongSecret))?;
                let session = self.live(ctx, session, seen)?;
                let membership = membership.filter(|m| Some(m.org) == session.active_org && m.user == session.user);
                (session, membership)
            }
            None => {
                let session = self.live_session_seen(ctx, token, seen).await?;
                let membership = self
                    .membership_in(session.user, session.active_org)
                    .await
                    .map_err(AuthError::from)?;
                (session, membership)
            }
        };
        let org = membership.as_ref().map(|m| m.org);
        let stale = ctx.now() - session.last_seen_at >= self.inner.config.touch_interval;
        if stale || org != session.active_org {
            self.inner.stores.sessions.touch(session.id, ctx.now(), org).await?;
        }
        let authenticated = Authenticated::user(session.user).with_session(session.id).with_org(org);
        Ok(match membership {
            Some(m) => authenticated.with_org_roles(m.roles.to_vec()),
            None => authenticated,
        })
    }

    /// Signs the session of `token` out (revokes it). A token that names no live session
    /// changes nothing and is not an error.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn sign_out(&self, ctx: &RequestContext, token: &SecretString) -> Result<(), PortalError> {
        let started = Instant::now();
        let result: Result<Option<SessionRecord>, PortalError> = async {
            let Ok(session) = self.live_session(ctx, token).await else {
                return Ok(None);
            };
            Ok(Some(
                self.inner
                    .stores
                    .sessions
                    .revoke(session.user, session.id, ctx.now())
                    .await?,
            ))
        }
        .await;
        self.record(
            ctx,
            "auth.session.revoke",
            None,
            started,
            result.as_ref(),
            |s| match s {
                Some(s) => json!({ "user": s.user, "session": s.id, "reason": "sign_out" }),
                None => json!({ "session": null, "reason": "sign_out" }),
            },
        );
        result.map(|_| ())
    }

    /// Replaces the session of `token` with a new one (same user and org): call it when
    /// the user's privileges change, so a token captured before serves no longer.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` if the token names no live session; `storage.*`.
    pub async fn rotate_session(&self, ctx: &RequestContext, token: &SecretString) -> Result<NewSession, PortalError> {
        self.rotate(ctx, token, None, "privilege_change").await
    }

    /// Makes `org` the active org of the session of `token`, without signing in again:
    /// the user must be a member, and the session is rotated (the new token works in the
    /// new org). Requests made later are checked against the membership again.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` if the token names no live session; `org.not_found` if
    /// the user is not a member of `org`; `storage.*`.
    pub async fn switch_org(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        org: OrgId,
    ) -> Result<NewSession, PortalError> {
        self.rotate(ctx, token, Some(org), "switch_org").await
    }

    async fn rotate(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        org: Option<OrgId>,
        reason: &'static str,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut seen = json!({ "reason": reason });
        let result = async {
            let old = self.live_session(ctx, token).await?;
            seen = json!({ "user": old.user, "session": old.id, "reason": reason });
            let active_org = match org {
                Some(org) => Some(
                    self.member_org(old.user, Some(org))
                        .await?
                        .ok_or_else(|| PortalError::new(ErrorCode::OrgNotFound, "organization not found"))?,
                ),
                None => self.member_org(old.user, old.active_org).await?,
            };
            let (token, session) = self.new_session(ctx, old.user, active_org)?;
            self.inner.stores.sessions.rotate(old.id, &session, ctx.now()).await?;
            Ok((NewSession { token, session }, old.id))
        }
        .await;
        self.record_auth(ctx, "auth.session.rotate", started, org, result.as_ref(), |(s, old)| {
            json!({ "user": s.session.user, "session": s.session.id, "previous": old, "active_org": s.session.active_org, "reason": reason })
        }, seen);
        result.map(|(s, _)| s)
    }

    /// The signed-in user's live sessions, newest first.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `storage.*`.
    pub async fn list_sessions(&self, ctx: &RequestContext) -> Result<Vec<SessionRecord>, PortalError> {
        let started = Instant::now();
        let result = async {
            let user = principal_user(ctx)?;
            let sessions = self.inner.stores.sessions.list(user, ctx.now()).await?;
            let idle = self.inner.config.session_idle;
            Ok(sessions
                .into_iter()
                .filter(|s| s.is_live_at(ctx.now(), idle))
                .collect::<Vec<_>>())
        }
        .await;
        self.record(
            ctx,
            "auth.session.list",
            None,
            started,
            result.as_ref(),
            |s| json!({ "count": s.len() }),
        );
        result
    }

    /// Revokes one of the signed-in user's sessions.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `session.not_found` if it is not one of theirs;
    /// `storage.*`.
    pub async fn revoke_session(&self, ctx: &RequestContext, id: SessionId) -> Result<SessionRecord, PortalError> {
        let started = Instant::now();
        let result = async {
            let user = principal_user(ctx)?;
            Ok(self.inner.stores.sessions.revoke(user, id, ctx.now()).await?)
        }
        .await;
        self.record(
            ctx,
            "auth.session.revoke",
            None,
            started,
            result.as_ref(),
            |s| json!({ "user": s.user, "session": s.id, "reason": "revoked" }),
        );
        result
    }

    /// Revokes every session of the signed-in user (sign out everywhere); returns how many.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `storage.*`.
    pub async fn revoke_all_sessions(&self, ctx: &RequestContext) -> Result<u64, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx);
        let result = async {
            Ok(self
                .inner
                .stores
                .sessions
                .revoke_all(principal_user(ctx)?, ctx.now())
                .await?)
        }
        .await;
        self.record(
            ctx,
            "auth.session.revoke_all",
            None,
            started,
            result.as_ref(),
            |n| json!({ "user": user.as_ref().ok(), "count": n }),
        );
        result
    }

    // -----------------------------------------------------------------------------------
    // API keys
    // -----------------------------------------------------------------------------------

    /// Creates an API key for `org`. Asks `api_keys manage`; and, so that nobody makes a
    /// key more powerful than themselves, the actor must be allowed every scope (its
    /// object and action, as written).
    ///
    /// # Errors
    ///
    /// `org.not_found` (also when the actor cannot reach the org); `access.denied`;
    /// `validation.invalid_field` (`name`, `scopes`, `expires_at`); `storage.*`.
    pub async fn create_api_key(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, PortalError> {
        let started = Instant::now();
        let result = async {
            let roles = self.authorize(ctx, org, permissions::API_KEYS_MANAGE).await?;
            let name = new.name.trim();
            if !(1..=100).contains(&name.chars().count()) || name.chars().any(char::is_control) {
                return Err(PortalError::invalid_field(
                    "name",
                    "a key's name has 1 to 100 characters",
                ));
            }
            if new.scopes.is_empty() || new.scopes.len() > 64 {
                return Err(PortalError::invalid_field("scopes", "a key has 1 to 64 scopes"));
            }
            match (new.expires_at, self.inner.config.max_api_key_lifetime) {
                (Some(end), _) if end <= ctx.now() => {
                    return Err(PortalError::invalid_field(
                        "expires_at",
                        "a key must expire in the future",
                    ));
                }
                (Some(end), Some(max)) if end > ctx.now() + max => {
                    return Err(PortalError::invalid_field("expires_at", "a key may not live that long"));
                }
                (None, Some(_)) => {
                    return Err(PortalError::invalid_field("expires_at", "a key needs an expiry"));
                }
                _ => {}
            }
            for scope in &new.scopes {
                self.decide(ctx, org, &roles, scope.object(), scope.action())?;
            }
            let mut scopes = new.scopes.clone();
            scopes.sort();
            scopes.dedup();
            let key = ApiKeyToken::generate()?;
            let record = ApiKeyRecord {
                id: ApiKeyId::generate(&*self.inner.ids, ctx.now()),
                org,
                name: name.to_owned(),
                prefix: key.prefix().to_owned(),
                token_hash: key.hash(),
                scopes,
                created_by: ctx.principal().clone(),
                created_at: ctx.now(),
                last_used_at: None,
                expires_at: new.expires_at,
                revoked_at: None,
            };
            self.inner.stores.api_keys.create(&record).await?;
            Ok(CreatedApiKey {
                key: key.into_secret(),
                record,
            })
        }
        .await;
        self.record(ctx, "auth.api_key.create", Some(org), started, result.as_ref(), |k| {
            json!({ "key": k.record.id, "prefix": k.record.prefix, "scopes": k.record.scopes, "expires_at": k.record.expires_at.map(OffsetDateTime::unix_timestamp) })
        });
        result
    }

    /// The org's API keys (revoked and expired ones too), by id. Asks `api_keys read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_api_keys(&self, ctx: &RequestContext, org: OrgId) -> Result<Vec<ApiKeyRecord>, PortalError> {
        let started = Instant::now();
        let result = async {
            self.authorize(ctx, org, permissions::API_KEYS_READ).await?;
            Ok(self.inner.stores.api_keys.list(org).await?)
        }
        .await;
        self.record(
            ctx,
            "auth.api_key.list",
            Some(org),
            started,
            result.as_ref(),
            |k| json!({ "count": k.len() }),
        );
        result
    }

    /// Revokes API key `id` of `org`; it stops working at once. Asks `api_keys manage`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `api_key.not_found`; `storage.*`.
    pub async fn revoke_api_key(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: ApiKeyId,
    ) -> Result<ApiKeyRecord, PortalError> {
        let started = Instant::now();
        let result = async {
            self.authorize(ctx, org, permissions::API_KEYS_MANAGE).await?;
            Ok(self.inner.stores.api_keys.revoke(org, id, ctx.now()).await?)
        }
        .await;
        self.record(
            ctx,
            "auth.api_key.revoke",
            Some(org),
            started,
            result.as_ref(),
            |k| json!({ "key": k.id, "prefix": k.prefix }),
        );
        result
    }

    async fn authenticate_api_key(
        &self,
        ctx: &RequestContext,
        text: &SecretString,
        seen: &mut Value,
    ) -> Result<Authenticated, AuthError> {
        let key = ApiKeyToken::parse(text).ok_or(refused(AuthFailure::Malformed))?;
        *seen = json!({ "prefix": key.prefix() });
        let hash = key.hash();
        let record = self
            .inner
            .stores
            .api_keys
            .find_by_token(&hash)
            .await?
            .filter(|k| k.token_hash.ct_eq(&hash))
            .ok_or(refused(AuthFailure::WrongSecret))?;
        *seen = json!({ "key": record.id, "prefix": record.prefix, "org": record.org });
        if record.revoked_at.is_some() {
            return Err(refused(AuthFailure::Revoked));
        }
        if !record.is_live_at(ctx.now()) {
            return Err(refused(AuthFailure::Expired));
        }
        let stale = record
            .last_used_at
            .is_none_or(|last| ctx.now() - last >= self.inner.config.touch_interval);
        if stale {
            self.inner.stores.api_keys.touch(record.id, ctx.now()).await?;
        }
        Ok(Authenticated::api_key(record.id, record.org, record.scopes))
    }

    /// The actor's roles in `org` after `permission` was allowed there.
    async fn authorize(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        permission: portal_core::access::Permission,
    ) -> Result<Vec<RoleName>, PortalError> {
        self.inner.gate.authorize(ctx, org, permission, org_not_found).await
    }

    fn decide(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        roles: &[RoleName],
        object: &str,
        action: &str,
    ) -> Result<(), PortalError> {
        self.inner.gate.decide(ctx, Domain::Org(org), roles, object, action)
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
    fn record<T>(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        org: Option<OrgId>,
        started: Instant,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> Value,
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
    fn record_auth<T>(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        started: Instant,
        org: Option<OrgId>,
        result: Result<&T, &PortalError>,
        detail: impl FnOnce(&T) -> Value,
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

    fn record_session_event(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        session: &SessionRecord,
        previous: Option<SessionId>,
        reason: &str,
    ) {
        let event = DiagnosticEvent::new(ctx, EventKind::Authentication, name).with_detail(
            format!("{name}.v1"),
            json!({ "user": session.user, "session": session.id, "previous": previous, "active_org": session.active_org, "reason": reason }),
        );
        self.inner.gate.record(event);
    }
}

#[async_trait]
impl Authenticator for IdentityService {
    /// Checks a password (without starting a session: use
    /// [`sign_in`](IdentityService::sign_in) for that), a session token, an API key, or
    /// hands a bearer token to the bearer authenticator. Records `auth.password`,
    /// `auth.session` or `auth.api_key.use`, with `detail.failure` on a refusal.
    async fn authenticate(&self, ctx: &RequestContext, credential: &Credential) -> Result<Authenticated, AuthError> {
        let started = Instant::now();
        let mut seen = json!({});
        let (name, result) = match credential {
            Credential::Password { email, password } => {
                let email_key = Email::new(email).ok();
                let account = email_key.clone().map(ThrottleKey::Account);
                // A password check without a source is throttled per account only.
                let source = ThrottleKey::Source("unknown".to_owned());
                let checked = self
                    .check_password(ctx, account.as_ref(), &source, email_key.as_ref(), password.clone())
                    .await;
                let result = match checked {
                    Ok((stored, _)) => {
                        let user = stored.user;
                        seen = json!({ "user": user });
                        if let Some(account) = &account {
                            self.inner
                                .stores
                                .attempts
                                .clear(account)
                                .await
                                .map_err(AuthError::from)?;
                        }
                        Ok(Authenticated::user(user))
                    }
                    Err((err, user)) => {
                        seen = json!({ "user": user });
                        Err(into_auth_error(err))
                    }
                };
                ("auth.password", result)
            }
            Credential::Session(token) => ("auth.session", self.authenticate_session(ctx, token, &mut seen).await),
            Credential::ApiKey(key) => ("auth.api_key.use", self.authenticate_api_key(ctx, key, &mut seen).await),
            Credential::Bearer(_) => match &self.inner.bearer {
                // The bearer authenticator records its own events.
                Some(bearer) => return bearer.authenticate(ctx, credential).await,
                None => ("auth.bearer", Err(refused(AuthFailure::Malformed))),
            },
        };
        let org = result.as_ref().ok().and_then(|a| a.org);
        // Recorded as the very error the caller gets, its sources included; a store's
        // failure comes back as that `PortalError` (`AuthError::Other`), a refusal as itself.
        let outcome = result.map_err(PortalError::from);
        self.record_auth(
            ctx,
            name,
            started,
            org,
            outcome.as_ref(),
            |a| {
                let mut detail = seen.clone();
                detail["session"] = json!(a.session);
                detail["org"] = json!(a.org);
                detail
            },
            seen.clone(),
        );
        outcome.map_err(into_auth_error)
    }
}

/// A `PortalError` from the password check back as an `AuthError`.
fn into_auth_error(err: PortalError) -> AuthError {
    let failure = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<AuthError>())
        .and_then(AuthError::failure);
    match failure {
        Some(failure) => refused(failure),
        None => AuthError::Other(Box::new(err)),
    }
}
