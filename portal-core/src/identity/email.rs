//! Email verification: single-use tokens mailed to a user's address, kept as their
//! SHA-256, and the addresses they verified.
//!
//! Every implementation must pass the `email_*` clauses of `portal_core::testing::identity`
//! ([`identity_store_conformance!`](crate::identity_store_conformance)).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::UserId;
use crate::store::StoreError;
use crate::tenancy::{Email, TokenHash};

/// A mailed email-verification token as a store keeps it: only its SHA-256, bound to one
/// user and the one address it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTokenRecord {
    /// The SHA-256 of the token.
    pub token_hash: TokenHash,
    /// Whose token.
    pub user: UserId,
    /// The address it was mailed to, which its use verifies.
    pub email: Email,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, or retired by the use of another token of its user.
    pub used_at: Option<OffsetDateTime>,
}

/// An address a user proved they receive mail at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEmail {
    /// Whose address.
    pub user: UserId,
    /// The address.
    pub email: Email,
    /// When it was verified.
    pub verified_at: OffsetDateTime,
}

/// What [`EmailVerificationStore::use_email_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTokenUse {
    /// The token was live and the caller's: it is used now and its address verified (the
    /// record as stored, `used_at` set).
    Verified(EmailTokenRecord),
    /// The token was used (or retired) before; nothing changed.
    AlreadyUsed(EmailTokenRecord),
    /// The token is past its expiry; nothing changed.
    Expired(EmailTokenRecord),
    /// The token was issued to another user; nothing changed (it still works for them).
    OtherUser,
    /// The token is the user's but was mailed to another address than the one they have
    /// now (their address changed since); nothing changed.
    OtherAddress(EmailTokenRecord),
    /// No token has this hash.
    Unknown,
}

/// Persists email-verification tokens and verified addresses.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`issue_email_token`](Self::issue_email_token) returns
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`email_token`) for a
/// taken hash, and changes nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EmailVerificationStore: Send + Sync + 'static {
    /// Stores a new token.
    async fn issue_email_token(&self, token: &EmailTokenRecord) -> Result<(), StoreError>;

    /// Atomically uses the token whose hash is `hash` for `user`, whose address is now
    /// `email`, at `at`: when it is `user`'s, was mailed to `email`, is unused and `at` is
    /// before its expiry, marks it used, retires `user`'s
    /// other unused tokens, records its address as `user`'s verified address (replacing
    /// an earlier one) and answers [`EmailTokenUse::Verified`]; otherwise changes nothing
    /// and says why. Of two concurrent uses of one token, one is `Verified` and the other
    /// `AlreadyUsed`.
    async fn use_email_token(
        &self,
        hash: &TokenHash,
        user: UserId,
        email: &Email,
        at: OffsetDateTime,
    ) -> Result<EmailTokenUse, StoreError>;

    /// The token whose hash is `hash`, used or not, without using it (a sign-up link's
    /// token names the account it will create: its user and address come from here).
    async fn find_email_token(&self, hash: &TokenHash) -> Result<Option<EmailTokenRecord>, StoreError>;

    /// `user`'s verified address, if any.
    async fn verified_email(&self, user: UserId) -> Result<Option<VerifiedEmail>, StoreError>;
}
