//! OIDC/JWT bearer tokens: [`JwtAuthenticator`] implements the [`Authenticator`] port for
//! [`Credential::Bearer`].
//!
//! A token is accepted only when all of these hold, checked in this order (the first that
//! fails names the [`AuthFailure`] kept for logs and support; the caller always sees
//! `auth.invalid_credentials`):
//!
//! 1. It is a compact JWS of at most [`JwtConfig::MAX_TOKEN_LEN`] bytes whose header is
//!    base64url JSON with a `kid` and no `crit`: else `Malformed`.
//! 2. Its `alg` is on the host's allow-list, which can only hold the asymmetric algorithms
//!    of [`SigningAlgorithm`] (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA): `none`,
//!    `HS256`/`HS384`/`HS512` and unknown names are `AlgorithmNotAllowed`.
//! 3. The host's JWKS (a [`JwksSource`]) holds a signature key with that `kid`. An unknown
//!    `kid` refreshes the set once, and no more often than the configured refresh interval
//!    (so a flood of made-up `kid`s costs the provider one request per interval); still
//!    unknown: `WrongSecret`. A set older than its maximum age (fifteen minutes by default)
//!    is fetched again at the next token, so a key the provider removed stops verifying
//!    within that time. Keys come only from the JWKS: `jku`, `x5u` and `jwk` headers
//!    are ignored, and symmetric (`oct`) keys, encryption keys and RSA keys under 2048
//!    bits are never loaded.
//! 4. The key fits the algorithm: an RSA key for RS*/PS*, a P-256 key for ES256, a P-384
//!    key for ES384, an Ed25519 key for EdDSA, and the JWK's own `alg`, when it declares
//!    one, equals the header's: else `AlgorithmNotAllowed`. So a token signed with HMAC
//!    under the RSA public key, or an RS256 header on an EC key, never reaches a verifier.
//! 5. The signature verifies: else `WrongSecret` (a tampered header or payload ends here).
//! 6. The claims decode and `iss`, `sub`, `aud` and `exp` are present: else `Malformed`;
//!    `iss` equals the configured issuer exactly: else `WrongIssuer`; `aud` names a
//!    configured audience: else `WrongAudience`; `now < exp + leeway`: else `Expired`;
//!    `nbf` and `iat`, when present, are at most `now + leeway`: else `NotYetValid`. The
//!    leeway is configurable up to [`JwtConfig::MAX_LEEWAY`] (five minutes).
//! 7. `(iss, sub)` maps to a user: its [`ExternalIdentity`] link; else, if the host turned
//!    it on, the user with the token's `email` when `email_verified` is true (and the
//!    identity is linked); else, if the host configured [`Provisioning`], a new user
//!    (once: the link makes the next sign-in find it); else `UnknownAccount`.
//!
//! Every outcome records one [`EventKind::Authentication`] event `auth.bearer` (schema
//! `auth.bearer.v1`) with the `issuer` and `kid` and, on failure, the `failure` in
//! snake_case; on success the `user` and how it was found. The token itself is never
//! logged, and the authenticator's `Debug` shows no key material.

mod claims;
mod config;
mod jwks;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use jsonwebtoken::Validation;
use portal_core::audit::{AuditActor, AuditContext, AuditEvent, AuditTarget, CatalogEntry, actions};
use portal_core::context::{Principal, RequestContext};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind, Outcome};
use portal_core::error::ErrorCode;
use portal_core::identity::{
    AuthError, AuthFailure, Authenticated, Authenticator, Credential, ExternalIdentity, ExternalIdentityStore,
};
use portal_core::ids::{AuditEventId, IdGenerator, InvitationId, RequestId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{
    DisplayName, Email, Invitation, InvitationState, Organization, RoleName, RoleSet, Slug, TenancyStore, TokenHash,
    User,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Mutex;

pub use config::{JwtConfig, JwtConfigError, MembershipClaim, Provisioning, SigningAlgorithm};
pub use jwks::{FetchedJwks, JwksError, JwksSource, StaticJwks};

use claims::{Checked, Claims, UnverifiedHeader};
use jwks::{KeySet, VerifyingKey};

/// The event every bearer sign-in records.
pub const EVENT_NAME: &str = "auth.bearer";

/// Verifies OIDC/JWT bearer tokens against a host-supplied JWKS and maps them to portal
/// users. See the [module documentation](self) for exactly what is checked.
///
/// ```no_run
/// use std::sync::Arc;
/// use portal_auth::jwt::{JwtAuthenticator, JwtConfig, StaticJwks};
/// use portal_core::diagnostics::DiagnosticSink;
/// use portal_core::identity::{Authenticator, Credential, ExternalIdentityStore};
/// use portal_core::{IdGenerator, RequestContext, TenancyStore};
///
/// async fn sign_in(
///     ctx: &RequestContext,
///     identities: Arc<dyn ExternalIdentityStore>,
///     tenancy: Arc<dyn TenancyStore>,
///     sink: Arc<dyn DiagnosticSink>,
///     ids: Arc<dyn IdGenerator>,
/// ) -> Result<(), Box<dyn std::error::Error>> {
///     let jwks = StaticJwks::from_json(r#"{"keys": []}"#)?;
///     let config = JwtConfig::new("https://login.example.com/", "portal-api");
///     let authenticator = JwtAuthenticator::new(config, Arc::new(jwks), identities, tenancy, sink, ids)?;
///     let token = Credential::Bearer("eyJ...".to_owned().into());
///     // `ctx` is the request's context before sign-in: its id and time are the check's.
///     let signed_in = authenticator.authenticate(ctx, &token).await?;
///     println!("{:?}", signed_in.principal);
///     Ok(())
/// }
/// ```
pub struct JwtAuthenticator {
    config: JwtConfig,
    source: Arc<dyn JwksSource>,
    keys: ArcSwap<KeySet>,
    refresh: Mutex<RefreshState>,
    identities: Arc<dyn ExternalIdentityStore>,
    tenancy: Arc<dyn TenancyStore>,
    sink: Arc<dyn DiagnosticSink>,
    ids: Arc<dyn IdGenerator>,
}

/// When the key set was last asked for.
#[derive(Debug, Default)]
struct RefreshState {
    last: Option<OffsetDateTime>,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &self.config.issuer)
            .field("algorithms", &self.config.algorithms)
            .field("keys", &*self.keys.load())
            .finish_non_exhaustive()
    }
}

/// How the user of a verified token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Through the linked external identity.
    Linked,
    /// Through the verified email address; the identity was linked now.
    Email,
    /// A new user was provisioned now.
    Provisioned,
}

impl Found {
    fn as_str(self) -> &'static str {
        match self {
            Found::Linked => "linked",
            Found::Email => "email",
            Found::Provisioned => "provisioned",
        }
    }
}

/// Why a bearer sign-in failed, with what is known for diagnostics.
struct Failed {
    error: AuthError,
    issuer: Option<String>,
}

impl Failed {
    fn refused(failure: AuthFailure, issuer: Option<String>) -> Self {
        Self {
            error: AuthError::InvalidCredentials { failure },
            issuer,
        }
    }

    fn store(err: StoreError, issuer: &str) -> Self {
        Self {
            error: AuthError::Store(err),
            issuer: Some(issuer.to_owned()),
        }
    }
}

/// A user to provision, checked before anything is written.
struct Plan {
    email: Email,
    display_name: DisplayName,
    membership: Option<(Organization, RoleName)>,
    provisioner: Principal,
}

/// What the diagnostics of one attempt carry.
#[derive(Default)]
struct Trace {
    kid: Option<String>,
}

impl JwtAuthenticator {
    /// An authenticator for `config`, verifying with the keys of `source`, finding users
    /// through `identities` and `tenancy` (which it also writes when it links or
    /// provisions), recording to `sink`, making ids with `ids`. The key set is fetched at
    /// the first token.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError`] if `config` cannot work (empty issuer or audience, no algorithm,
    /// a leeway over [`JwtConfig::MAX_LEEWAY`]).
    pub fn new(
        config: JwtConfig,
        source: Arc<dyn JwksSource>,
        identities: Arc<dyn ExternalIdentityStore>,
        tenancy: Arc<dyn TenancyStore>,
        sink: Arc<dyn DiagnosticSink>,
        ids: Arc<dyn IdGenerator>,
    ) -> Result<Self, JwtConfigError> {
        config.check()?;
        Ok(Self {
            config,
            source,
            keys: ArcSwap::from_pointee(KeySet::default()),
            refresh: Mutex::new(RefreshState::default()),
            identities,
            tenancy,
            sink,
            ids,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Fetches the key set now, whatever the refresh interval, and returns how many usable
    /// keys it holds. Hosts may call it at start-up so the first request does not wait.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] (backend `jwks`) if the source fails; the keys held are
    /// kept.
    pub async fn refresh_keys(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut state = self.refresh.lock().await;
        self.fetch_keys(&mut state, now).await
    }

    /// Checks a bearer token at `now` and records the outcome under `request_id`.
    ///
    /// This is [`Authenticator::authenticate`] for a host that has a request id at hand;
    /// the port's method makes a fresh id.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidCredentials`] with the [`AuthFailure`] described in the
    /// [module documentation](self); [`AuthError::Store`] when a store, or the
    /// [`JwksSource`] (as [`StoreError::Unavailable`] with backend `jwks`), fails.
    pub async fn authenticate_bearer(
        &self,
        token: &SecretString,
        now: OffsetDateTime,
        request_id: RequestId,
    ) -> Result<Authenticated, AuthError> {
        let started = Instant::now();
        let mut trace = Trace::default();
        let result = self.verify(token.expose_secret(), now, request_id, &mut trace).await;
        self.record(request_id, now, started, &trace, &result);
        result
            .map(|(user, _, _)| authenticated(user))
            .map_err(|failed| failed.error)
    }

    async fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
        request_id: RequestId,
        trace: &mut Trace,
    ) -> Result<(UserId, Found, String), Failed> {
        let header = claims::read_header(token, &self.config).map_err(|(failure, kid)| {
            trace.kid = kid;
            Failed::refused(failure, None)
        })?;
        trace.kid = Some(header.kid.clone());
        self.refresh_if_stale(now).await;
        let key = self.key_for(&header, now).await?;
        let claims = verify_signature(token, &header, &key)?;
        let checked = claims
            .check(&self.config, now)
            .map_err(|(failure, issuer)| Failed::refused(failure, issuer))?;
        let (user, found) = self.find_user(&checked, now, request_id).await?;
        Ok((user, found, checked.issuer))
    }

    /// The key named by the header, refreshing the set once (rate-limited) when the `kid`
    /// is unknown.
    async fn key_for(&self, header: &UnverifiedHeader, now: OffsetDateTime) -> Result<Arc<VerifyingKey>, Failed> {
        let key = match self.keys.load().get(&header.kid) {
            Some(key) => key.clone(),
            None => self.refresh_for(&header.kid, now).await?,
        };
        if !key.kind.verifies(header.alg) || key.alg.is_some_and(|declared| declared != header.alg) {
            return Err(Failed::refused(AuthFailure::AlgorithmNotAllowed, None));
        }
        Ok(key)
    }

    /// Fetches the key set again when it is older than the configured maximum age. A
    /// request that finds another one refreshing goes on with the keys held, and a failed
    /// fetch keeps them, so a provider outage does not stop sign-ins with known keys.
    async fn refresh_if_stale(&self, now: OffsetDateTime) {
        let max_age = self.config.key_max_age;
        let stale = || self.keys.load().fetched_at.is_some_and(|at| now - at >= max_age);
        if !stale() {
            return;
        }
        let Ok(mut state) = self.refresh.try_lock() else {
            return;
        };
        let recently_asked = state
            .last
            .is_some_and(|last| now >= last && now - last < self.config.refresh_interval);
        if stale() && !recently_asked {
            // On failure the keys held stay; the next stale token asks again after the interval.
            let _ = self.fetch_keys(&mut state, now).await;
        }
    }

    async fn refresh_for(&self, kid: &str, now: OffsetDateTime) -> Result<Arc<VerifyingKey>, Failed> {
        let unknown = || Failed::refused(AuthFailure::WrongSecret, None);
        let mut state = self.refresh.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if let Some(key) = self.keys.load().get(kid) {
            return Ok(key.clone());
        }
        let due = state
            .last
            .is_none_or(|last| now - last >= self.config.refresh_interval || now < last);
        if !due {
            return Err(unknown());
        }
        self.fetch_keys(&mut state, now).await.map_err(|err| Failed {
            error: AuthError::Store(err),
            issuer: None,
        })?;
        self.keys.load().get(kid).cloned().ok_or_else(unknown)
    }

    async fn fetch_keys(&self, state: &mut RefreshState, now: OffsetDateTime) -> Result<usize, StoreError> {
        state.last = Some(now);
        let set = self.source.fetch().await.map_err(|source| StoreError::Unavailable {
            backend: "jwks",
            source,
        })?;
        let keys = KeySet::compile(&set, now);
        let count = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(count)
    }

    /// Finds, links or provisions the user of verified claims.
    async fn find_user(
        &self,
        claims: &Checked,
        now: OffsetDateTime,
        request_id: RequestId,
    ) -> Result<(UserId, Found), Failed> {
        let store_err = |err| Failed::store(err, &claims.issuer);
        if let Some(link) = self
            .identities
            .find(&claims.issuer, &claims.subject)
            .await
            .map_err(store_err)?
        {
            if self.config.provisioning.is_some() {
                // A provisioning interrupted after the link was made finishes here.
                if self.tenancy.get_user(link.user).await.map_err(store_err)?.is_none() {
                    let plan = self.plan(claims).await?;
                    self.provision(claims, plan, link.user, now, request_id).await?;
                    return Ok((link.user, Found::Provisioned));
                }
            }
            return Ok((link.user, Found::Linked));
        }
        if self.config.email_fallback
            && claims.email_verified
            && let Some(email) = claims.email.as_deref().and_then(|email| Email::new(email).ok())
            && let Some(user) = self.tenancy.find_user_by_email(&email).await.map_err(store_err)?
        {
            let user = self.link(claims, user.id, now).await?;
            return Ok((user, Found::Email));
        }
        if self.config.provisioning.is_some() {
            // Everything that can refuse is checked before the first write.
            let plan = self.plan(claims).await?;
            let wanted = UserId::generate(&*self.ids, now);
            let user = self.link(claims, wanted, now).await?;
            if user != wanted {
                // Another sign-in of the same identity linked first; it provisions.
                return Ok((user, Found::Linked));
            }
            self.provision(claims, plan, user, now, request_id).await?;
            return Ok((user, Found::Provisioned));
        }
        Err(Failed::refused(
            AuthFailure::UnknownAccount,
            Some(claims.issuer.clone()),
        ))
    }

    /// Links the claims' identity to `user` and returns the user it is linked to: `user`,
    /// or the one a concurrent sign-in linked first.
    async fn link(&self, claims: &Checked, user: UserId, now: OffsetDateTime) -> Result<UserId, Failed> {
        let store_err = |err| Failed::store(err, &claims.issuer);
        let identity = ExternalIdentity::new(&claims.issuer, &claims.subject, user, now)
            .map_err(|_| Failed::refused(AuthFailure::Malformed, Some(claims.issuer.clone())))?;
        match self.identities.link(&identity).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(Conflict::AlreadyExists { .. })) => self
                .identities
                .find(&claims.issuer, &claims.subject)
                .await
                .map_err(store_err)?
                .map(|link| link.user)
                .ok_or_else(|| Failed::refused(AuthFailure::UnknownAccount, Some(claims.issuer.clone()))),
            Err(err) => Err(store_err(err)),
        }
    }

    /// Checks that the claims can provision a user, without writing anything: provisioning
    /// is configured, the email is present (and verified, unless the host waived it), a
    /// display name can be made, and the org the membership claim names, if any, exists and
    /// may be joined.
    async fn plan(&self, claims: &Checked) -> Result<Plan, Failed> {
        let refused = || Failed::refused(AuthFailure::UnknownAccount, Some(claims.issuer.clone()));
        let Some(provisioning) = &self.config.provisioning else {
            return Err(refused());
        };
        if provisioning.require_verified_email && !claims.email_verified {
            return Err(refused());
        }
        let email = claims
            .email
            .as_deref()
            .and_then(|email| Email::new(email).ok())
            .ok_or_else(refused)?;
        let display_name = claims
            .name
            .as_deref()
            .and_then(|name| DisplayName::new(name).ok())
            .or_else(|| DisplayName::new(email.as_str()).ok())
            .ok_or_else(refused)?;
        let membership = match &provisioning.membership {
            None => None,
            Some(membership) => match claims.text(&membership.claim) {
                None => None,
                Some(slug) => {
                    let org = self.org_to_join(slug, membership).await?.ok_or_else(refused)?;
                    Some((org, membership.role.clone()))
                }
            },
        };
        Ok(Plan {
            email,
            display_name,
            membership,
            provisioner: Principal::Service(provisioning.provisioner.clone()),
        })
    }

    /// Creates the user `id` (the identity is already linked to it) and its membership.
    async fn provision(
        &self,
        claims: &Checked,
        plan: Plan,
        id: UserId,
        now: OffsetDateTime,
        request_id: RequestId,
    ) -> Result<(), Failed> {
        let store_err = |err| Failed::store(err, &claims.issuer);
        let user = User {
            id,
            email: plan.email,
            display_name: plan.display_name,
            created_at: now,
        };
        match self.tenancy.create_user(&user).await {
            Ok(()) => {}
            // A concurrent sign-in of the same identity created it first.
            Err(StoreError::Conflict(_)) if self.tenancy.get_user(id).await.map_err(store_err)?.is_some() => {
                return Ok(());
            }
            // The address belongs to another account, which this identity may not take
            // over. The link made for the new user is taken back, so the next sign-in is
            // refused the same way instead of finding a link to nobody.
            Err(StoreError::Conflict(Conflict::EmailTaken)) => {
                self.identities
                    .unlink(&claims.issuer, &claims.subject)
                    .await
                    .map_err(store_err)?;
                return Err(Failed::refused(
                    AuthFailure::UnknownAccount,
                    Some(claims.issuer.clone()),
                ));
            }
            Err(err) => return Err(store_err(err)),
        }
        if let Some((org, role)) = plan.membership {
            self.join(&org, &user, role, &plan.provisioner, (now, request_id))
                .await
                .map_err(store_err)?;
        }
        Ok(())
    }

    /// The org named by `slug`, if it exists and may be joined.
    async fn org_to_join(&self, slug: &str, membership: &MembershipClaim) -> Result<Option<Organization>, Failed> {
        let Ok(slug) = Slug::new(slug) else {
            return Ok(None);
        };
        if membership
            .allowed_orgs
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&slug))
        {
            return Ok(None);
        }
        self.tenancy.get_org_by_slug(&slug).await.map_err(|err| Failed {
            error: AuthError::Store(err),
            issuer: None,
        })
    }

    /// Adds `user` to `org` with the configured role, through the tenancy store's one way
    /// of adding a member: an invitation from the provisioner, accepted at once. The
    /// invitation stays in the org's list as the record of who added the member and why.
    async fn join(
        &self,
        org: &Organization,
        user: &User,
        role: RoleName,
        provisioner: &Principal,
        (now, request_id): (OffsetDateTime, RequestId),
    ) -> Result<(), StoreError> {
        // The invitation is accepted at once and its token is given to nobody, but it is
        // still a random 256-bit value, so nobody could have accepted it in between.
        let mut token = [0u8; 32];
        getrandom::fill(&mut token).map_err(|err| StoreError::Backend {
            backend: "getrandom",
            source: err.to_string().into(),
        })?;
        let token: String = token.iter().map(|byte| format!("{byte:02x}")).collect();
        let invitation = Invitation {
            id: InvitationId::generate(&*self.ids, now),
            org: org.id,
            email: user.email.clone(),
            roles: RoleSet::one(role),
            invited_by: provisioner.clone(),
            created_at: now,
            expires_at: now + time::Duration::minutes(1),
            state: InvitationState::Pending,
            token_hash: TokenHash::of(&token),
        };
        // Both steps go to the org's audit log, by the provisioner, under the sign-in's
        // request id.
        let event = |entry: CatalogEntry, metadata: serde_json::Value| AuditEvent {
            id: AuditEventId::generate(&*self.ids, now),
            org: org.id,
            action: entry.action(),
            version: entry.version,
            actor: AuditActor::new(provisioner, None),
            targets: vec![
                AuditTarget::new("invitation", invitation.id),
                AuditTarget::new("user", user.id),
            ],
            context: AuditContext {
                request_id,
                client_request_id: None,
                ip: None,
                user_agent: None,
            },
            occurred_at: portal_core::time::truncate_to_micros(now),
            metadata,
        };
        let expires_at = invitation
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        self.tenancy
            .create_invitation(
                &invitation,
                &event(
                    actions::INVITATION_CREATED,
                    json!({ "email": invitation.email, "roles": invitation.roles, "expires_at": expires_at }),
                ),
            )
            .await?;
        self.tenancy
            .accept_invitation(
                invitation.id,
                user.id,
                now,
                &event(actions::INVITATION_ACCEPTED, json!({ "roles": invitation.roles })),
            )
            .await?;
        Ok(())
    }

    fn record(
        &self,
        request_id: RequestId,
        now: OffsetDateTime,
        started: Instant,
        trace: &Trace,
        result: &Result<(UserId, Found, String), Failed>,
    ) {
        let (actor, outcome, code, detail) = match result {
            Ok((user, found, issuer)) => (
                Some(Principal::User(*user)),
                Outcome::Succeeded,
                None,
                json!({ "user": user, "issuer": issuer, "kid": trace.kid, "found": found.as_str() }),
            ),
            Err(failed) => {
                let code = match &failed.error {
                    AuthError::InvalidCredentials { .. } => ErrorCode::InvalidCredentials,
                    AuthError::Store(err) => store_code(err),
                    AuthError::Other(err) => err.code(),
                };
                let failure = failed.error.failure().map(AuthFailure::as_str);
                (
                    None,
                    Outcome::of_code(code),
                    Some(code),
                    json!({ "failure": failure, "issuer": failed.issuer, "kid": trace.kid }),
                )
            }
        };
        self.sink.record(DiagnosticEvent {
            actor,
            outcome,
            code,
            duration: Some(started.elapsed()),
            schema: format!("{EVENT_NAME}.v1").into(),
            detail: detail.into(),
            ..DiagnosticEvent::detached(now, request_id, EventKind::Authentication, EVENT_NAME)
        });
    }
}

#[async_trait::async_trait]
impl Authenticator for JwtAuthenticator {
    /// Checks a [`Credential::Bearer`] at the request's time, recording the outcome under
    /// the request's id; any other credential is refused as `Malformed` (this
    /// authenticator knows only bearer tokens).
    async fn authenticate(&self, ctx: &RequestContext, credential: &Credential) -> Result<Authenticated, AuthError> {
        match credential {
            Credential::Bearer(token) => self.authenticate_bearer(token, ctx.now(), ctx.request_id()).await,
            _ => Err(AuthError::InvalidCredentials {
                failure: AuthFailure::Malformed,
            }),
        }
    }
}

/// The one place a successful bearer sign-in becomes an [`Authenticated`]: a user, no
/// session (every request carries its token).
fn authenticated(user: UserId) -> Authenticated {
    Authenticated::user(user)
}

/// Verifies the signature with `key` and the header's algorithm, then decodes the claims.
fn verify_signature(token: &str, header: &UnverifiedHeader, key: &VerifyingKey) -> Result<Claims, Failed> {
    use jsonwebtoken::errors::ErrorKind;

    let mut validation = Validation::new(header.alg.to_jsonwebtoken());
    // Time, issuer and audience are checked by `Claims::check` against the request's time.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(err) => {
            let failure = match err.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey => {
                    AuthFailure::WrongSecret
                }
                ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => AuthFailure::WrongSecret,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    AuthFailure::AlgorithmNotAllowed
                }
                _ => AuthFailure::Malformed,
            };
            Err(Failed::refused(failure, None))
        }
    }
}

/// The code a store error stands for.
fn store_code(err: &StoreError) -> ErrorCode {
    if err.is_retryable() {
        ErrorCode::StorageUnavailable
    } else {
        ErrorCode::StorageFailure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_named_in_snake_case() {
        assert_eq!(AuthFailure::WrongSecret.as_str(), "wrong_secret");
        assert_eq!(AuthFailure::NotYetValid.as_str(), "not_yet_valid");
        assert_eq!(AuthFailure::Malformed.as_str(), "malformed");
        assert_eq!(AuthFailure::AlgorithmNotAllowed.as_str(), "algorithm_not_allowed");
    }

    #[test]
    fn hmac_and_none_are_not_signing_algorithms() {
        for name in ["none", "None", "HS256", "HS384", "HS512", "", "rs256"] {
            assert_eq!(SigningAlgorithm::from_name(name), None, "{name}");
        }
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::from_name(alg.as_str()), Some(alg));
        }
    }
}
