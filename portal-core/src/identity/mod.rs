//! Identity: the credentials a caller presents, the `Authenticator` port that turns them
//! into a [`Principal`], and the stores behind passwords, sessions and API keys.
//!
//! `portal-core` only names these shapes; hashing (argon2), token checks and JWT
//! validation live in `portal-auth`, which implements the [`Authenticator`].
//! Every secret here is a `secrecy` type: `Debug` prints `[REDACTED]` and nothing in
//! this module implements `Serialize` for a secret.

mod external;

pub use external::{ExternalIdentity, ExternalIdentityStore};

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::context::Principal;
use crate::ids::{ApiKeyId, OrgId, SessionId, UserId};
use crate::store::StoreError;
use crate::tenancy::{Email, TokenHash};

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

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who the caller is.
    pub principal: Principal,
    /// The session the caller used or just started, if any.
    pub session: Option<SessionId>,
}

/// Why authentication failed, for logs and support; callers all see the same
/// `auth.invalid_credentials`, whatever the reason.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No account has this identifier.
    UnknownAccount,
    /// The secret did not match.
    WrongSecret,
    /// The token or key has expired.
    Expired,
    /// The token or key was revoked.
    Revoked,
    /// The account is locked after too many failures.
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
}

impl AuthError {
    /// Why the credentials were refused, if they were.
    pub fn failure(&self) -> Option<AuthFailure> {
        match self {
            AuthError::InvalidCredentials { failure } => Some(*failure),
            AuthError::Store(_) => None,
        }
    }
}

impl From<AuthError> for crate::PortalError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials { .. } => {
                crate::PortalError::new(crate::ErrorCode::InvalidCredentials, "invalid credentials").with_source(err)
            }
            AuthError::Store(store) => store.into(),
        }
    }
}

/// Turns credentials into a principal.
///
/// # Errors
///
/// - [`AuthError::InvalidCredentials`] for any credential that is not accepted.
/// - [`AuthError::Store`] when a store fails.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `credential` at time `now`.
    async fn authenticate(&self, credential: &Credential, now: OffsetDateTime) -> Result<Authenticated, AuthError>;
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

/// An API key owned by an organization. The key itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key.
    pub id: ApiKeyId,
    /// The organization it acts in.
    pub org: OrgId,
    /// A human name.
    pub name: String,
    /// The readable start of the key, shown in listings.
    pub prefix: String,
    /// The SHA-256 of the key.
    pub token_hash: TokenHash,
    /// The permissions it may use, as `object action` pairs.
    pub scopes: Vec<String>,
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

/// Persists password hashes.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The password record for this login email, if any.
    async fn find_password(&self, email: &Email) -> Result<Option<PasswordRecord>, StoreError>;

    /// Sets (or replaces) a user's password hash.
    async fn set_password(&self, record: &PasswordRecord) -> Result<(), StoreError>;
}

/// Persists sessions.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`touch`](Self::touch) and [`revoke`](Self::revoke) return [`StoreError::NotFound`]
/// (`session`) for an unknown session.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session.
    async fn create(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// The session whose token hashes to `hash`, if any.
    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError>;

    /// Records use at `at`, and the active org.
    async fn touch(&self, id: SessionId, at: OffsetDateTime, active_org: Option<OrgId>) -> Result<(), StoreError>;

    /// Revokes one session.
    async fn revoke(&self, id: SessionId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Revokes every session of `user`; returns how many were live.
    async fn revoke_all(&self, user: UserId, at: OffsetDateTime) -> Result<u64, StoreError>;

    /// The live sessions of `user`, newest first.
    async fn list(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError>;
}

/// Persists API keys.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`revoke`](Self::revoke) returns [`StoreError::NotFound`] (`api_key`) for a key
/// unknown in that org.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key.
    async fn create(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The key whose secret hashes to `hash`, if any.
    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Records use at `at`.
    async fn touch(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Revokes key `id` of `org`.
    async fn revoke(&self, org: OrgId, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// The keys of `org`, by id.
    async fn list(&self, org: OrgId) -> Result<Vec<ApiKeyRecord>, StoreError>;
}
