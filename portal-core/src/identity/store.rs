//! The identity store ports: password hashes, sessions, API keys, failed sign-ins,
//! single-use tokens, TOTP factors and orgs' MFA policies.
//!
//! Every implementation must pass `portal_core::testing::identity`
//! ([`identity_store_conformance!`](crate::identity_store_conformance)).

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretBox};
use time::OffsetDateTime;

use super::{ApiKeyRecord, PasswordRecord, SessionRecord, UserAuditEvent};
use crate::audit::AuditEvent;
use crate::error::PortalError;
use crate::ids::{ApiKeyId, OrgId, SessionId, UserId};
use crate::store::StoreError;
use crate::tenancy::{Email, Membership, TokenHash};

/// Persists password hashes, one per user, found by login email.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`set_password`](Self::set_password) returns
/// [`Conflict::EmailTaken`](crate::store::Conflict::EmailTaken) when another user's
/// record has the same email, and changes nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The password record for this login email, if any.
    async fn find_password(&self, email: &Email) -> Result<Option<PasswordRecord>, StoreError>;

    /// Sets (or replaces) a user's password hash and login email, and writes `event` (a
    /// change the user's orgs audit, such as `user.password_changed`) once per org the
    /// user is a member of, in the same transaction. `None` for a change nobody audits
    /// (the rehash at sign-in, a new account's first password).
    async fn set_password<'a>(
        &self,
        record: &PasswordRecord,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError>;
}

/// Persists sessions.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`create`](Self::create) and [`rotate`](Self::rotate) return
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`session`) for a
/// taken id or token hash; [`touch`](Self::touch), [`revoke`](Self::revoke) and
/// [`rotate`](Self::rotate) return [`StoreError::NotFound`] (`session`) for a session
/// that is unknown, another user's (`revoke`), or already revoked (`touch`, `rotate`),
/// and change nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session, and writes `event` (`user.signed_in`) once per org the
    /// session's user is a member of, in the same transaction.
    async fn create<'a>(&self, session: &SessionRecord, event: Option<&'a UserAuditEvent>) -> Result<(), StoreError>;

    /// The session whose token hashes to `hash`, if any, revoked or not.
    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError>;

    /// Records use at `at` (the later of `at` and the stored time is kept) and sets the
    /// active org, on a session that is not revoked.
    async fn touch(&self, id: SessionId, at: OffsetDateTime, active_org: Option<OrgId>) -> Result<(), StoreError>;

    /// Revokes `user`'s session `id` (keeping an earlier revocation time) and returns it.
    /// When the session was live, writes `event` (`user.signed_out`) once per org the
    /// user is a member of, in the same transaction; revoking it again writes nothing.
    async fn revoke<'a>(
        &self,
        user: UserId,
        id: SessionId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<SessionRecord, StoreError>;

    /// Revokes every unrevoked session of `user`; returns how many it revoked. When it
    /// revoked at least one and `event` (`user.sessions_revoked`) is given, writes it once
    /// per org the user is a member of, in the same transaction, with the count set as
    /// its metadata's `sessions_revoked` ([`UserAuditEvent::with_metadata_field`]);
    /// revoking none writes nothing.
    async fn revoke_all<'a>(
        &self,
        user: UserId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<u64, StoreError>;

    /// Atomically revokes the unrevoked session `old` at `at` and stores `new`: both or
    /// neither. Of two rotations of one session, one succeeds and the other is
    /// `NotFound`. `event` (`user.signed_in`, when a sign-in replaces the session the
    /// client held) is written once per org of `new`'s user, in the same transaction.
    async fn rotate<'a>(
        &self,
        old: SessionId,
        new: &SessionRecord,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError>;

    /// Up to `limit` sessions of `user` that are not revoked and not past their absolute
    /// expiry at `at`, newest first (by id), those older than (with an id before) `before`
    /// if given. A user with many sessions is read page by page.
    async fn list(
        &self,
        user: UserId,
        at: OffsetDateTime,
        before: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError>;
}

/// What [`SessionMembershipStore::find_session_with_membership`] reads in one call: a
/// session, its user's membership in its active org, and whether that org's MFA policy
/// asks the user for a second factor they do not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWithMembership {
    /// The session, revoked or not.
    pub session: SessionRecord,
    /// The user's membership in the session's active org: `None` when the session has no
    /// active org or the user is not (or no longer) a member of it.
    pub membership: Option<Membership>,
    /// [`MfaPolicyStore::mfa_unmet`] for the session's active org and user, read in the
    /// same call (`false` when the session has no active org).
    pub mfa_unmet: bool,
}

/// Reads a session together with its user's membership in the session's active org and
/// the org's MFA standing of the user, in one call to the backend: the read that every
/// session-authenticated request makes.
///
/// Optional. A backend implements it where sessions, memberships and factors live in one
/// database (the SQLite and Postgres adapters, with one statement); the identity service
/// uses it when it is given one (`IdentityService::with_session_memberships` in
/// `portal-auth`) and otherwise reads the session and then the membership, two calls,
/// leaving the MFA policy to the [`Gate`](crate::gate::Gate)'s own read. Whatever it
/// answers must equal the separate reads: [`SessionStore::find_by_token`], then
/// [`TenancyStore::get_membership`](crate::tenancy::TenancyStore::get_membership) for the
/// session's user in its active org, and [`MfaPolicyStore::mfa_unmet`] for the same. The
/// conformance suite
/// (`portal_core::testing::identity::session_membership_reads_equal_the_two_reads`) checks it.
///
/// # Errors
///
/// [`StoreError::Unavailable`] or [`StoreError::Backend`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SessionMembershipStore: Send + Sync + 'static {
    /// The session whose token hashes to `hash`, if any, revoked or not, with its user's
    /// membership in its active org and MFA standing there ([`SessionWithMembership`]).
    async fn find_session_with_membership(&self, hash: &TokenHash)
    -> Result<Option<SessionWithMembership>, StoreError>;
}

/// Persists API keys.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`create`](Self::create) returns
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`api_key`) for a
/// taken id or token hash; [`touch`](Self::touch) returns [`StoreError::NotFound`]
/// (`api_key`) for an unknown key and [`revoke`](Self::revoke) for a key unknown in that
/// org, changing nothing.
///
/// [`create`](Self::create) and [`revoke`](Self::revoke) write their audit event
/// (`api_key.created`, `api_key.revoked`) in the change's transaction (the outbox, see
/// [`crate::audit`]): an event whose insert fails
/// ([`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) `audit event` for a
/// taken id) leaves no change, and a refused change writes no event.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key and writes `event` (`api_key.created`), in one transaction.
    async fn create(&self, key: &ApiKeyRecord, event: &AuditEvent) -> Result<(), StoreError>;

    /// The key whose secret hashes to `hash`, if any, revoked or not.
    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// The key `id` of `org`, revoked or not, or `None` (also for another org's key).
    async fn get(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Records use at `at` (the later of `at` and the stored time is kept).
    async fn touch(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Revokes key `id` of `org` (keeping an earlier revocation time) and returns it;
    /// writes `event` (`api_key.revoked`) in the same transaction when this call revoked
    /// it, and no event for a key revoked already (a retry is harmless).
    async fn revoke(
        &self,
        org: OrgId,
        id: ApiKeyId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<ApiKeyRecord, StoreError>;

    /// Up to `limit` keys of `org`, revoked and expired ones included, by id, those after
    /// `after` if given. An org with many keys is read page by page.
    async fn list(&self, org: OrgId, after: Option<ApiKeyId>, limit: usize) -> Result<Vec<ApiKeyRecord>, StoreError>;
}

/// What a single-use token is for; a token is consumed only for its own purpose.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Choosing a new password without the current one (a reset link sent by mail).
    PasswordReset,
    /// Completing a sign-in with a second factor (the MFA challenge a password sign-in
    /// answers for a user with a second factor: a confirmed TOTP factor or a passkey).
    MfaChallenge,
}

impl TokenPurpose {
    /// The name stores keep, such as `password_reset`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::PasswordReset => "password_reset",
            TokenPurpose::MfaChallenge => "mfa_challenge",
        }
    }

    /// The purpose named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "password_reset" => Some(TokenPurpose::PasswordReset),
            "mfa_challenge" => Some(TokenPurpose::MfaChallenge),
            _ => None,
        }
    }
}

/// A single-use token issued to a user (a password-reset link): only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeTokenRecord {
    /// The SHA-256 of the token.
    pub token_hash: TokenHash,
    /// Whose token.
    pub user: UserId,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, or retired by the use of another token of its user and purpose.
    pub used_at: Option<OffsetDateTime>,
}

/// What [`OneTimeTokenStore::consume`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUse {
    /// The token was live and is now used (the record as stored, `used_at` set).
    Consumed(OneTimeTokenRecord),
    /// The token was used (or retired) before; nothing changed.
    AlreadyUsed(OneTimeTokenRecord),
    /// The token is past its expiry; nothing changed.
    Expired(OneTimeTokenRecord),
    /// No token of that purpose has this hash.
    Unknown,
}

/// Persists single-use tokens.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`issue`](Self::issue) returns
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`one_time_token`)
/// for a taken hash, and changes nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync + 'static {
    /// Stores a new token.
    async fn issue(&self, token: &OneTimeTokenRecord) -> Result<(), StoreError>;

    /// Atomically uses the token of `purpose` whose hash is `hash` at `at`: when it is
    /// unused and `at` is before its expiry, marks it used, retires every other unused
    /// token of the same user and purpose (so only the newest link a user followed ever
    /// worked, and older ones stop), and answers [`TokenUse::Consumed`]; otherwise
    /// changes nothing and says why. Of two concurrent uses of one token, one is
    /// `Consumed` and the other `AlreadyUsed`.
    async fn consume(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<TokenUse, StoreError>;

    /// The token of `purpose` whose hash is `hash`, as stored (used, expired or not),
    /// without changing it: for a token whose use depends on a check that needs its user
    /// first (the code of an MFA challenge), made before [`consume`](Self::consume).
    async fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError>;
}

/// A user's TOTP second factor as a store keeps it. The secret's bytes are a secret:
/// `Debug` shows nothing of them.
pub struct TotpFactorRecord {
    /// Whose factor (one per user).
    pub user: UserId,
    /// The shared secret (160 bits, RFC 4226).
    pub secret: SecretBox<[u8; 20]>,
    /// When enrollment began.
    pub created_at: OffsetDateTime,
    /// When the user confirmed enrollment with a first code; until then the factor is
    /// pending and signs nobody in.
    pub confirmed_at: Option<OffsetDateTime>,
    /// The last time step whose code was accepted; a code of this step or an earlier
    /// one is a replay.
    pub last_step: Option<u64>,
}

impl Clone for TotpFactorRecord {
    fn clone(&self) -> Self {
        Self {
            user: self.user,
            secret: SecretBox::new(Box::new(*self.secret.expose_secret())),
            created_at: self.created_at,
            confirmed_at: self.confirmed_at,
            last_step: self.last_step,
        }
    }
}

impl fmt::Debug for TotpFactorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactorRecord")
            .field("user", &self.user)
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// Persists TOTP second factors and their recovery codes (only the SHA-256 of each code).
///
/// Every change is one atomic step whose answer says whether it happened, so two
/// concurrent uses of one code (or one step) succeed once.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`begin_enrollment`](Self::begin_enrollment) returns
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`totp_factor`)
/// when the user has a confirmed factor, and changes nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TotpFactorStore: Send + Sync + 'static {
    /// Stores `factor` as the user's pending factor (its `confirmed_at` and `last_step`
    /// are ignored and kept empty), replacing a pending one and its recovery codes.
    async fn begin_enrollment(&self, factor: &TotpFactorRecord) -> Result<(), StoreError>;

    /// The user's factor, pending or confirmed, if any.
    async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError>;

    /// Confirms the user's pending factor at `at`, with `step` as its last accepted step
    /// and `recovery` (the SHA-256 of each recovery code) as its only recovery codes, and
    /// writes `event` (`user.mfa_enrolled`) once per org the user is a member of, in the
    /// same transaction. `false`, changing and writing nothing, when the user has no
    /// pending factor.
    async fn confirm_totp(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError>;

    /// Records `step` as the last accepted step of the user's confirmed factor when it is
    /// after the stored one: `true` when it was, `false` (changing nothing) for a replay,
    /// an older step, or a user without a confirmed factor.
    async fn accept_step(&self, user: UserId, step: u64) -> Result<bool, StoreError>;

    /// Uses the unused recovery code of the user whose hash is `hash` at `at`: `true`
    /// when there was one, `false` (changing nothing) otherwise.
    async fn use_recovery_code(&self, user: UserId, hash: &TokenHash, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&self, user: UserId) -> Result<usize, StoreError>;

    /// Removes the user's factor and recovery codes: `true` when there was a factor. A
    /// confirmed factor's removal writes `event` (`user.mfa_removed`) once per org the user
    /// is a member of, in the same transaction; removing a pending enrollment or nothing
    /// writes no event.
    async fn remove_totp(&self, user: UserId, event: &UserAuditEvent) -> Result<bool, StoreError>;

    /// Replaces every recovery code of the user's confirmed factor (used or not) with
    /// `recovery`: `true` when the user has a confirmed factor, `false` (changing nothing)
    /// otherwise. A replacement writes `event` (`user.recovery_codes_regenerated`) once
    /// per org the user is a member of, in the same transaction.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery: &[TokenHash],
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError>;
}

/// Persists each org's MFA policy ("members must use a second factor") and answers the
/// gate's question whether a member falls short of it.
///
/// A second factor is a confirmed TOTP factor ([`TotpFactorStore`]; a pending one is
/// none) or a registered passkey ([`PasskeyStore`](super::PasskeyStore), any number; a
/// removed one is none). Every identity store of `portal-adapters` is one, on the same
/// database as its factors and passkeys, so [`mfa_unmet`](Self::mfa_unmet) is one read.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MfaPolicyStore: Send + Sync + 'static {
    /// Sets whether `org` requires its members to have a second factor, at
    /// `at`, and writes `event` (`org.mfa_policy_changed`, filed under `org`) in the same
    /// transaction; an org never set requires none.
    async fn set_mfa_required(
        &self,
        org: OrgId,
        required: bool,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Whether `org` requires its members to have a second factor.
    async fn mfa_required(&self, org: OrgId) -> Result<bool, StoreError>;

    /// Whether `org` requires a second factor and `user` has none (neither a confirmed TOTP
    /// factor nor a passkey of their own), in one read.
    async fn mfa_unmet(&self, org: OrgId, user: UserId) -> Result<bool, StoreError>;
}

/// An MFA policy store is where the [`Gate`](crate::gate::Gate) asks whether a member
/// falls short of their org's MFA policy.
#[async_trait]
impl<S: MfaPolicyStore + ?Sized> crate::gate::MfaPolicySource for std::sync::Arc<S> {
    async fn mfa_unmet(&self, org: OrgId, user: UserId) -> Result<bool, StoreError> {
        (**self).mfa_unmet(org, user).await
    }
}

/// What a sign-in throttle counts failures against: one account (from anywhere), one
/// account from one source, or one source (on any account).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThrottleKey {
    /// A login email, whether or not an account has it (so a lockout reveals nothing).
    Account(Email),
    /// A login email tried from one source: what a source's failures on one account lock,
    /// without locking the account for anyone else.
    AccountFromSource(Email, String),
    /// Where the attempts come from, as the host names it (an IP address).
    Source(String),
}

impl ThrottleKey {
    /// The key of a source: 1 to 128 visible ASCII characters, as the host names it
    /// (usually the client's IP address), counted by its [`bucket`](Self::bucket): an
    /// IPv6 client by its /64.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `source`) otherwise.
    pub fn source(source: &str) -> Result<Self, PortalError> {
        if (1..=128).contains(&source.len()) && source.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(ThrottleKey::Source(Self::bucket(source)))
        } else {
            Err(PortalError::invalid_field(
                "source",
                "a source is 1 to 128 visible ASCII characters",
            ))
        }
    }

    /// What a throttle counts the source `source` as: an IPv4 address as itself, an
    /// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 address, any other IPv6
    /// address as its /64 network (`2001:db8:1:2::/64`), and text that is no IP address
    /// as it is.
    ///
    /// One IPv6 subscriber is usually given a whole /64 (often more), so counting single
    /// IPv6 addresses would let one client rotate through 2^64 sources; counting by /64
    /// makes it one source, at the price of counting together the hosts of one /64
    /// (as IPv4 counts the hosts behind one NAT together).
    pub fn bucket(source: &str) -> String {
        match source.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
            Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let network = u128::from(v6) & !(u128::from(u64::MAX));
                    format!("{}/64", std::net::Ipv6Addr::from(network))
                }
            },
            Err(_) => source.to_owned(),
        }
    }

    /// The string form stores keep: `account:<email>`, `account_from:<source> <email>`
    /// (a source has no spaces) or `source:<text>`.
    pub fn as_key(&self) -> String {
        self.to_string()
    }

    /// The key of `account` tried from this key's source; `None` unless this is a
    /// [`Source`](ThrottleKey::Source).
    pub fn with_account(&self, account: &Email) -> Option<Self> {
        match self {
            ThrottleKey::Source(source) => Some(ThrottleKey::AccountFromSource(account.clone(), source.clone())),
            ThrottleKey::Account(_) | ThrottleKey::AccountFromSource(..) => None,
        }
    }
}

impl fmt::Display for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleKey::Account(email) => write!(f, "account:{}", email.as_str()),
            ThrottleKey::AccountFromSource(email, source) => write!(f, "account_from:{source} {}", email.as_str()),
            ThrottleKey::Source(source) => write!(f, "source:{source}"),
        }
    }
}

/// The email is a login identifier, not a secret, but a throttle key is logged often:
/// `Debug` shows the kind only.
impl fmt::Debug for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleKey::Account(_) => f.write_str("ThrottleKey::Account(..)"),
            ThrottleKey::AccountFromSource(..) => f.write_str("ThrottleKey::AccountFromSource(..)"),
            ThrottleKey::Source(_) => f.write_str("ThrottleKey::Source(..)"),
        }
    }
}

/// Persists failed sign-ins, so throttling holds across replicas: a sliding window of
/// failure times per [`ThrottleKey`].
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait LoginAttemptStore: Send + Sync + 'static {
    /// Records one failure of `key` at `at`.
    async fn record_failure(&self, key: &ThrottleKey, at: OffsetDateTime) -> Result<(), StoreError>;

    /// How many failures of `key` were recorded at or after `since`.
    async fn failures_since(&self, key: &ThrottleKey, since: OffsetDateTime) -> Result<u64, StoreError>;

    /// Forgets every failure of `key` (after a successful sign-in).
    async fn clear(&self, key: &ThrottleKey) -> Result<(), StoreError>;

    /// Forgets every failure recorded before `before`, of every key; returns how many.
    async fn prune(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::ThrottleKey;

    #[test]
    fn a_source_counts_by_its_ipv4_address_or_its_ipv6_64() {
        assert_eq!(ThrottleKey::bucket("203.0.113.9"), "203.0.113.9");
        assert_eq!(ThrottleKey::bucket("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(ThrottleKey::bucket("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(ThrottleKey::bucket("2001:DB8:1:2::ffff"), "2001:db8:1:2::/64");
        assert_eq!(ThrottleKey::bucket("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(ThrottleKey::bucket("::1"), "::/64");
        assert_eq!(ThrottleKey::bucket("local"), "local");
    }
}
