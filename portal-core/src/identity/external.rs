//! External identities: which portal user an identity provider's `(issuer, subject)` is.
//!
//! A bearer token from an OIDC provider names its caller by the provider's issuer URL
//! (`iss`) and a subject (`sub`) unique within that issuer. An [`ExternalIdentity`] links
//! that pair to one [`UserId`], so a user keeps their account when their email address
//! changes at the provider, and one user may sign in through several providers. The
//! [`ExternalIdentityStore`] port persists the links; `portal-auth`'s `JwtAuthenticator`
//! reads it on every bearer sign-in and writes it when it links or provisions a user.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::PortalError;
use crate::ids::UserId;
use crate::store::StoreError;

/// One identity provider account linked to a portal user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The provider's issuer identifier, exactly as in the token's `iss` claim.
    pub issuer: String,
    /// The subject, exactly as in the token's `sub` claim; unique within the issuer.
    pub subject: String,
    /// The portal user it signs in as.
    pub user: UserId,
    /// When the link was made.
    pub created_at: OffsetDateTime,
}

impl ExternalIdentity {
    /// The longest issuer accepted, in bytes.
    pub const MAX_ISSUER_LEN: usize = 2048;
    /// The longest subject accepted, in bytes (OpenID Connect Core 1.0 allows 255 ASCII
    /// characters).
    pub const MAX_SUBJECT_LEN: usize = 255;

    /// A link of `(issuer, subject)` to `user`, made at `created_at`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `issuer` or `subject`) if either is empty, longer
    /// than [`MAX_ISSUER_LEN`](Self::MAX_ISSUER_LEN) / [`MAX_SUBJECT_LEN`](Self::MAX_SUBJECT_LEN)
    /// bytes, or holds control characters.
    pub fn new(issuer: &str, subject: &str, user: UserId, created_at: OffsetDateTime) -> Result<Self, PortalError> {
        check_part("issuer", issuer, Self::MAX_ISSUER_LEN)?;
        check_part("subject", subject, Self::MAX_SUBJECT_LEN)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            user,
            created_at,
        })
    }
}

fn check_part(param: &'static str, value: &str, max: usize) -> Result<(), PortalError> {
    if value.is_empty() {
        return Err(PortalError::invalid_field(param, format!("the {param} is empty")));
    }
    if value.len() > max {
        return Err(PortalError::invalid_field(
            param,
            format!("the {param} is longer than {max} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(PortalError::invalid_field(
            param,
            format!("the {param} holds control characters"),
        ));
    }
    Ok(())
}

/// Persists the links of identity provider accounts to portal users.
///
/// A link is keyed by `(issuer, subject)`, compared byte for byte (issuers are URLs whose
/// case matters, subjects are opaque). A user may hold any number of links. Links are
/// global, like users: tenant isolation comes from memberships, which the tenancy store
/// keeps. The store keeps no foreign key to users, so it stands alone.
///
/// Every implementation must pass `portal_core::testing::external_identity` (run it with
/// `portal_core::external_identity_store_conformance!`, feature `testing`).
///
/// # Errors
///
/// - [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) with entity
///   `external_identity` from [`link`](Self::link) if `(issuer, subject)` is already
///   linked (to any user); the existing link is unchanged.
/// - [`StoreError::NotFound`] with entity `external_identity` from
///   [`unlink`](Self::unlink) if `(issuer, subject)` is not linked.
/// - [`StoreError::Unavailable`] if the backend cannot be reached or loses the
///   connection; [`StoreError::Backend`] for any other failure; [`StoreError::Corrupt`]
///   for a stored row that does not read back into an [`ExternalIdentity`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ExternalIdentityStore: Send + Sync + 'static {
    /// Stores a new link.
    async fn link(&self, identity: &ExternalIdentity) -> Result<(), StoreError>;

    /// The link of `(issuer, subject)`, if there is one.
    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<ExternalIdentity>, StoreError>;

    /// Up to `limit` links of `user`, ordered by issuer, then subject (byte order), those
    /// after the `(issuer, subject)` pair `after` if given. A user with many links is read
    /// page by page.
    async fn list_for_user(
        &self,
        user: UserId,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<ExternalIdentity>, StoreError>;

    /// Removes the link of `(issuer, subject)` and returns it.
    async fn unlink(&self, issuer: &str, subject: &str) -> Result<ExternalIdentity, StoreError>;
}
