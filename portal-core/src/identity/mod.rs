//! Identity: the credentials a caller presents, the `Authenticator` port that turns them
//! into a [`Principal`], API key scopes, and the stores behind passwords, sessions, API
//! keys and sign-in throttling.
//!
//! `portal-core` only names these shapes; hashing (argon2), token formats and the
//! identity service live in `portal-auth`, which implements the [`Authenticator`].
//! Every secret here is a `secrecy` type: `Debug` prints `[REDACTED]` and nothing in
//! this module implements `Serialize` for a secret.

mod store;

use std::sync::Arc;
mod email;
mod events;
mod external;
mod passkey;

pub use email::{
    EmailChangeRecord, EmailChangeStore, EmailChangeUse, EmailTokenRecord, EmailTokenUse, EmailVerificationStore,
    VerifiedEmail,
};
#[cfg(feature = "mock")]
pub use email::{MockEmailChangeStore, MockEmailVerificationStore};
pub use events::UserAuditEvent;
pub use external::{ExternalIdentity, ExternalIdentityStore};
#[cfg(feature = "mock")]
pub use passkey::MockPasskeyStore;
pub use passkey::{
    CeremonyPurpose, CeremonyUse, MAX_CREDENTIAL_ID_LEN, PasskeyCeremonyRecord, PasskeyName, PasskeyRecord,
    PasskeyStore, PasskeyUse,
};

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::context::{Principal, RequestContext};
use crate::ids::{ApiKeyId, OrgId, SessionId, UserId};
use crate::store::StoreError;
use crate::tenancy::{Email, RoleName, TokenHash};

pub use crate::access::{ParseScopeError, Scope};
pub use store::{
    ApiKeyStore, CredentialStore, LoginAttemptStore, MfaPolicyStore, OneTimeTokenRecord, OneTimeTokenStore,
    SessionMembershipStore, SessionStore, SessionWithMembership, ThrottleKey, TokenPurpose, TokenUse, TotpFactorRecord,
    TotpFactorStore,
};
#[cfg(feature = "mock")]
pub use store::{
    MockApiKeyStore, MockCredentialStore, MockLoginAttemptStore, MockMfaPolicyStore, MockOneTimeTokenStore,
    MockSessionMembershipStore, MockSessionStore, MockTotpFactorStore,
};

/// What a caller presents to prove who they are.
#[derive(Debug)]
pub enum Credential {
    /// An email address and a password.
    Password {
        /// The address, as typed.
        email: String,
        /// The password.
        password: SecretString,
    },
    /// An opaque session token, usually from a cookie.
    Session(SecretString),
    /// An API key.
    ApiKey(SecretString),
    /// An OIDC/JWT bearer token.
    Bearer(SecretString),
}

/// A successful authentication: who the caller is, and what the request may use.
///
/// Build one with [`Authenticated::user`] or [`Authenticated::api_key`] and the `with_*`
/// methods; turn it into a request context with
/// [`Portal::context_for`](crate::Portal::context_for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who the caller is.
    pub principal: Principal,
    /// The session the caller used or just started, if any.
    pub session: Option<SessionId>,
    /// The org the request works in: a session's active org (checked against the
    /// user's membership when the session was read), or an API key's own org.
    pub org: Option<OrgId>,
    /// What an API key may do in its org; empty for every other principal.
    pub scopes: Arc<[Scope]>,
    /// The user's roles in [`org`](Self::org), when the authenticator read the membership
    /// to check it (a session's active org); the request's services use them instead of
    /// reading the membership again. `None` when they were not read.
    pub org_roles: Option<Arc<[RoleName]>>,
    /// Whether [`org`](Self::org) requires a second factor the user does not have, when
    /// the authenticator read it with the membership (in the same store call); the
    /// [`Gate`](crate::gate::Gate) then enforces the org's MFA policy from it instead of
    /// reading the policy again. `None` when it was not read.
    pub org_mfa_unmet: Option<bool>,
}

impl Authenticated {
    /// A user, with no session, org or scopes.
    pub fn user(user: UserId) -> Self {
        Self {
            principal: Principal::User(user),
            session: None,
            org: None,
            scopes: Arc::from(Vec::new()),
            org_roles: None,
            org_mfa_unmet: None,
        }
    }

    /// An API key of `org`, with its scopes; the org is the request's org.
    pub fn api_key(key: ApiKeyId, org: OrgId, scopes: impl Into<Arc<[Scope]>>) -> Self {
        Self {
            principal: Principal::ApiKey { key, org },
            session: None,
            org: Some(org),
            scopes: scopes.into(),
            org_roles: None,
            org_mfa_unmet: None,
        }
    }

    /// The same, through `session`.
    pub fn with_session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// The same, working in `org`. Roles read for another org are dropped.
    pub fn with_org(mut self, org: Option<OrgId>) -> Self {
        if org != self.org {
            self.org_roles = None;
            self.org_mfa_unmet = None;
        }
        self.org = org;
        self
    }

    /// The same, with the user's roles in its [`org`](Self::org) as just read from the
    /// membership (see [`org_roles`](Self::org_roles)).
    pub fn with_org_roles(mut self, roles: impl Into<Arc<[RoleName]>>) -> Self {
        self.org_roles = Some(roles.into());
        self
    }

    /// The same, with whether its [`org`](Self::org) requires a second factor the user
    /// does not have, as just read with the membership (see
    /// [`org_mfa_unmet`](Self::org_mfa_unmet)).
    pub fn with_org_mfa_unmet(mut self, unmet: bool) -> Self {
        self.org_mfa_unmet = Some(unmet);
        self
    }
}

/// Why authentication failed, for logs and support; callers all see the same
/// `auth.invalid_credentials`, whatever the reason.
///
/// Diagnostic events name it in `detail.failure` by [`as_str`](Self::as_str).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// No account has this identifier.
    UnknownAccount,
    /// The secret did not match.
    WrongSecret,
    /// The token or key has expired.
    Expired,
    /// The token or key was revoked.
    Revoked,
    /// The account (or the source) is locked after too many failures.
    Locked,
    /// The token is malformed or was tampered with.
    Malformed,
    /// The token is not valid yet (its `nbf` is ahead, beyond the allowed skew).
    NotYetValid,
    /// The token was issued by an issuer this authenticator does not trust.
    WrongIssuer,
    /// The token was issued for another audience.
    WrongAudience,
    /// The token names a signing algorithm that is not allowed (`none`, a symmetric
    /// algorithm, or one that does not match the key's type or declared algorithm).
    AlgorithmNotAllowed,
    /// The password was right, but the account has a second factor, which a password
    /// alone never stands in for.
    SecondFactorRequired,
}

impl AuthFailure {
    /// The snake_case name diagnostics record, such as `wrong_secret`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownAccount => "unknown_account",
            AuthFailure::WrongSecret => "wrong_secret",
            AuthFailure::Expired => "expired",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Locked => "locked",
            AuthFailure::Malformed => "malformed",
            AuthFailure::NotYetValid => "not_yet_valid",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthFailure::SecondFactorRequired => "second_factor_required",
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Authentication failed.
///
/// `Display` is deliberately coarse ("invalid credentials"): the reason is kept in
/// [`AuthError::failure`] for logs and support, never for the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credentials were not accepted.
    #[error("invalid credentials")]
    InvalidCredentials {
        /// Why, for logs only.
        failure: AuthFailure,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else that stopped the check (the system random generator, a hashing
    /// task that did not finish), as a `PortalError` with its own code.
    #[error(transparent)]
    Other(Box<crate::PortalError>),
}

impl AuthError {
    /// Why the credentials were refused, if they were.
    pub fn failure(&self) -> Option<AuthFailure> {
        match self {
            AuthError::InvalidCredentials { failure } => Some(*failure),
            AuthError::Store(_) | AuthError::Other(_) => None,
        }
    }
}

impl From<crate::PortalError> for AuthError {
    fn from(err: crate::PortalError) -> Self {
        AuthError::Other(Box::new(err))
    }
}

impl From<AuthError> for crate::PortalError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials { .. } => {
                crate::PortalError::new(crate::ErrorCode::InvalidCredentials, "invalid credentials").with_source(err)
            }
            AuthError::Store(store) => store.into(),
            AuthError::Other(other) => *other,
        }
    }
}

/// Turns credentials into a principal.
///
/// An implementation records its outcome (an `EventKind::Authentication` event) in the
/// diagnostics under `ctx`'s request id. `ctx` is the request's context before
/// authentication: its principal is the host's own service principal, and its time is
/// the time the credential is checked at.
///
/// # Errors
///
/// - [`AuthError::InvalidCredentials`] for any credential that is not accepted.
/// - [`AuthError::Store`] when a store fails.
/// - [`AuthError::Other`] when anything else stops the check.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `credential` for the request `ctx`.
    async fn authenticate(&self, ctx: &RequestContext, credential: &Credential) -> Result<Authenticated, AuthError>;
}

/// A user's password hash, in PHC string format (`$argon2id$v=19$...`).
#[derive(Debug, Clone)]
pub struct PasswordRecord {
    /// Whose password.
    pub user: UserId,
    /// The login identifier.
    pub email: Email,
    /// The PHC hash string. Not secret in the cryptographic sense, but kept out of logs.
    pub hash: SecretString,
    /// When it was set.
    pub updated_at: OffsetDateTime,
}

/// A signed-in session. The token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session.
    pub id: SessionId,
    /// Whose session.
    pub user: UserId,
    /// The SHA-256 of its token.
    pub token_hash: TokenHash,
    /// The org the user is working in.
    pub active_org: Option<OrgId>,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When it was last used.
    pub last_seen_at: OffsetDateTime,
    /// When it ends regardless of use.
    pub absolute_expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

impl SessionRecord {
    /// Whether the session is usable at `now` with an idle timeout of `idle`: not
    /// revoked, used within `idle`, and before its absolute expiry.
    pub fn is_live_at(&self, now: OffsetDateTime, idle: time::Duration) -> bool {
        self.revoked_at.is_none() && now < self.absolute_expires_at && now < self.last_seen_at + idle
    }
}

/// An API key owned by an organization. The key itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key.
    pub id: ApiKeyId,
    /// The organization it acts in.
    pub org: OrgId,
    /// A human name.
    pub name: String,
    /// The readable start of the key, shown in listings (`pk_live_` and a short id).
    pub prefix: String,
    /// The SHA-256 of the key.
    pub token_hash: TokenHash,
    /// The permissions it may use in its org; nothing else.
    pub scopes: Vec<Scope>,
    /// Who created it.
    pub created_by: Principal,
    /// When.
    pub created_at: OffsetDateTime,
    /// When it was last used.
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    /// Whether the key is usable at `now`: not revoked and not expired.
    pub fn is_live_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }
}
