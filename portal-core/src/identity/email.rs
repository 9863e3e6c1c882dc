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

/// A mailed change-of-email token as a store keeps it: only its SHA-256, bound to one
/// user, the address they had when they asked, and the address they asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChangeRecord {
    /// The SHA-256 of the token.
    pub token_hash: TokenHash,
    /// Whose token.
    pub user: UserId,
    /// The user's address when they asked; the change happens only while it is still theirs.
    pub old_email: Email,
    /// The address asked for, which the token was mailed to.
    pub new_email: Email,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, or retired by a later request or use of its user.
    pub used_at: Option<OffsetDateTime>,
}

/// What [`EmailChangeStore::change_email`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeUse {
    /// The token was live and the caller's: it is used now and the address switched (the
    /// record as stored, `used_at` set).
    Changed(EmailChangeRecord),
    /// The token was used, or retired by a later request or change; nothing changed.
    AlreadyUsed(EmailChangeRecord),
    /// The token is past its expiry; nothing changed.
    Expired(EmailChangeRecord),
    /// The token was issued to another user; nothing changed (it still works for them).
    OtherUser,
    /// The user's address is no longer the one they had when they asked (or the user is
    /// gone); nothing changed.
    OtherAddress(EmailChangeRecord),
    /// Another user (or another user's password record) has the new address now; nothing
    /// changed and the token stays unused.
    AddressTaken(EmailChangeRecord),
    /// No change token has this hash.
    Unknown,
}

/// Persists change-of-email tokens and switches a user's address in one step.
///
/// The switch spans the user's row (the tenancy store's `users`), their password record
/// (found by login email) and their verified address, so a backend implements this port
/// where those live together: the SQLite and Postgres identity stores on the tenancy
/// store's database, the in-memory identity store given the in-memory tenancy store.
///
/// Every implementation must pass `portal_core::testing::email_change`
/// ([`email_change_store_conformance!`](crate::email_change_store_conformance)).
///
/// A customer audit event (`user.email_changed`) would be written in
/// [`change_email`](Self::change_email)'s transaction (the outbox); it is not yet.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`issue_email_change`](Self::issue_email_change) returns
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`email_change`) for
/// a taken hash, and changes nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EmailChangeStore: Send + Sync + 'static {
    /// Stores a new token and retires its user's earlier unused ones, in one step: only
    /// the latest request of a user works.
    async fn issue_email_change(&self, token: &EmailChangeRecord) -> Result<(), StoreError>;

    /// Atomically uses the change token whose hash is `hash`, for `user`, at `at`: when it
    /// is `user`'s, unused, before its expiry, `user`'s address is still its `old_email`
    /// and no other user (nor another user's password record) has its `new_email`, sets
    /// the user's address and their password record's login email to `new_email`,
    /// records `new_email` as their verified address, marks the token used, retires the
    /// user's other unused change tokens, and answers [`EmailChangeUse::Changed`];
    /// otherwise changes nothing and says why. Of two concurrent uses one is `Changed`
    /// and the other `AlreadyUsed`; of a use and a concurrent creation of a user with the
    /// new address, exactly one wins (the other is `AddressTaken` or `email_taken`).
    ///
    /// On `Changed` (only then) `event` (`user.email_changed`) is written in the same
    /// transaction, once per org `user` belongs to, as every identity event is
    /// ([`UserAuditEvent`](super::UserAuditEvent)); an event that cannot be written fails
    /// the call and changes nothing.
    async fn change_email(
        &self,
        hash: &TokenHash,
        user: UserId,
        at: OffsetDateTime,
        event: &super::UserAuditEvent,
    ) -> Result<EmailChangeUse, StoreError>;

    /// The change token whose hash is `hash`, used or not, without using it.
    async fn find_email_change(&self, hash: &TokenHash) -> Result<Option<EmailChangeRecord>, StoreError>;
}
