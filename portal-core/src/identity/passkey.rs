//! Passkeys (WebAuthn credentials) as a store keeps them, and the state of their
//! ceremonies.
//!
//! `portal-core` does no WebAuthn itself: `portal-auth` runs the ceremonies (with
//! `webauthn-rs`) and hands the store the relying party's serialized credential as opaque
//! text, with the two things a store must reason about on its own: the credential id
//! (unique across every user) and the signature counter (which only moves forward, in one
//! atomic step, so a cloned authenticator is caught even by two replicas racing).
//!
//! A ceremony (registration, a passwordless sign-in, or the answer to a password sign-in's
//! MFA challenge) begins with options for the browser and ends with its answer; between
//! the two the relying party's state lives in the store, found by the SHA-256 of a random
//! ceremony token the client holds, so a ceremony begun on one replica finishes on
//! another, once, before it expires.
//!
//! A registered passkey is a second factor: [`MfaPolicyStore::mfa_unmet`](super::MfaPolicyStore::mfa_unmet)
//! counts it as a confirmed TOTP factor is counted, from the moment it is added until it
//! is removed.
//!
//! Every implementation must pass `portal_core::testing::passkey`
//! ([`passkey_store_conformance!`](crate::passkey_store_conformance)).

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::UserAuditEvent;
use crate::error::PortalError;
use crate::ids::{PasskeyId, UserId};
use crate::store::StoreError;
use crate::tenancy::TokenHash;

/// The longest credential id a store keeps, in bytes (WebAuthn allows 1023).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// The name a user gives a passkey ("Work laptop"): trimmed, 1 to 64 characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasskeyName(String);

impl PasskeyName {
    /// Validates a name.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `name`) if longer than 64 characters (as sent,
    /// before trimming: the limit the API document states), empty after trimming, or
    /// holding control characters.
    pub fn new(name: &str) -> Result<Self, PortalError> {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err(PortalError::invalid_field("name", "`name` must not be empty"));
        }
        if name.chars().count() > 64 {
            return Err(PortalError::invalid_field(
                "name",
                "`name` is longer than 64 characters",
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(PortalError::invalid_field("name", "`name` holds control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PasskeyName {
    type Error = PortalError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<PasskeyName> for String {
    fn from(value: PasskeyName) -> Self {
        value.0
    }
}

impl fmt::Display for PasskeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One registered passkey of a user.
///
/// Nothing in it is secret (the private key never leaves the authenticator), but the
/// credential is the user's identity at the relying party, so `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The passkey's id (`pky_…`), what the user names it by in the API.
    pub id: PasskeyId,
    /// Whose passkey.
    pub user: UserId,
    /// The WebAuthn credential id the authenticator chose (1 to
    /// [`MAX_CREDENTIAL_ID_LEN`] bytes), unique across every user.
    pub credential_id: Vec<u8>,
    /// The user's name for it.
    pub name: PasskeyName,
    /// The relying party's serialized credential (public key, algorithm, flags, counter),
    /// opaque to stores.
    pub credential: String,
    /// The last signature counter the authenticator reported (0 for an authenticator that
    /// keeps none).
    pub sign_count: u32,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed its user in.
    pub last_used_at: Option<OffsetDateTime>,
}

impl fmt::Debug for PasskeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyRecord")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("name", &self.name)
            .field("sign_count", &self.sign_count)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .finish_non_exhaustive()
    }
}

/// What [`PasskeyStore::record_passkey_use`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyUse {
    /// The counter moved forward (or both it and the stored one are 0): the new counter,
    /// credential and `last_used_at` are stored.
    Recorded,
    /// The counter is not past the stored one (a cloned authenticator, or a concurrent
    /// use that recorded first): nothing changed.
    CounterRegressed,
    /// No passkey has this id: nothing changed.
    Unknown,
}

/// What a ceremony's state is for; a ceremony is taken only for its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CeremonyPurpose {
    /// Registering a passkey for a signed-in user.
    Registration,
    /// Signing in with a passkey, no account named first.
    SignIn,
    /// Answering a password sign-in's MFA challenge with one of its user's passkeys.
    MfaChallenge,
    /// A signed-in user proving again, with one of their passkeys, that they hold it: the
    /// fresh second factor that adding or removing a sign-in method, new recovery codes or
    /// a change of email asks for.
    Reauthentication,
}

impl CeremonyPurpose {
    /// The name stores keep, such as `registration`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Registration => "registration",
            CeremonyPurpose::SignIn => "sign_in",
            CeremonyPurpose::MfaChallenge => "mfa_challenge",
            CeremonyPurpose::Reauthentication => "reauthentication",
        }
    }

    /// The purpose named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "registration" => Some(CeremonyPurpose::Registration),
            "sign_in" => Some(CeremonyPurpose::SignIn),
            "mfa_challenge" => Some(CeremonyPurpose::MfaChallenge),
            "reauthentication" => Some(CeremonyPurpose::Reauthentication),
            _ => None,
        }
    }
}

/// A ceremony begun: the relying party's state, found by the SHA-256 of its token.
/// `Debug` leaves the state out.
#[derive(Clone)]
pub struct PasskeyCeremonyRecord {
    /// The SHA-256 of the ceremony token the client holds.
    pub token_hash: TokenHash,
    /// What it is for.
    pub purpose: CeremonyPurpose,
    /// Whose registration or MFA challenge; `None` for a sign-in (the passkey names its
    /// user).
    pub user: Option<UserId>,
    /// The relying party's serialized state (the challenge and what the answer must
    /// match), opaque to stores.
    pub state: SecretString,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was taken.
    pub used_at: Option<OffsetDateTime>,
}

impl fmt::Debug for PasskeyCeremonyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyCeremonyRecord")
            .field("purpose", &self.purpose)
            .field("user", &self.user)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

/// What [`PasskeyStore::take_ceremony`] found.
#[derive(Debug, Clone)]
pub enum CeremonyUse {
    /// The ceremony was live and is now used (the record as stored, `used_at` set).
    Taken(PasskeyCeremonyRecord),
    /// The ceremony was taken before; nothing changed.
    AlreadyUsed,
    /// The ceremony is past its expiry; nothing changed.
    Expired,
    /// No ceremony of that purpose has this hash.
    Unknown,
}

/// Persists users' passkeys and the state of passkey ceremonies.
///
/// Every change is one atomic step whose answer says whether it happened.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`];
/// [`add_passkey`](Self::add_passkey) returns
/// [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`passkey`) when
/// any user's passkey has the same id or credential id, and
/// [`begin_ceremony`](Self::begin_ceremony) (`passkey_ceremony`) for a taken hash; both
/// then change nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    /// Stores a new passkey and writes `event` (`user.passkey_added`) once per org its
    /// user is a member of, in the same transaction.
    async fn add_passkey(&self, passkey: &PasskeyRecord, event: &UserAuditEvent) -> Result<(), StoreError>;

    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError>;

    /// The passkey with this credential id, whoever's it is.
    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError>;

    /// Renames the user's passkey `id`: `false`, changing nothing, when the user has no
    /// passkey of that id (another user's included).
    async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: &PasskeyName) -> Result<bool, StoreError>;

    /// Removes the user's passkey `id` and writes `event` (`user.passkey_removed`) once
    /// per org the user is a member of, in the same transaction: `false`, changing and
    /// writing nothing, when the user has no passkey of that id (another user's included).
    async fn remove_passkey(&self, user: UserId, id: PasskeyId, event: &UserAuditEvent) -> Result<bool, StoreError>;

    /// Records a use of passkey `id` at `at` that reported `sign_count`, with the relying
    /// party's `credential` as it stands after it, when the counter moved forward: past
    /// the stored one, or 0 over a stored 0 (an authenticator that keeps no counter).
    /// Otherwise changes nothing and says why. Of two concurrent uses reporting one
    /// counter, one is recorded and the other regressed.
    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        sign_count: u32,
        credential: &str,
        at: OffsetDateTime,
    ) -> Result<PasskeyUse, StoreError>;

    /// Stores a ceremony begun.
    async fn begin_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError>;

    /// Atomically takes the ceremony of `purpose` whose hash is `hash` at `at`: when it is
    /// unused and `at` is before its expiry, marks it used and answers
    /// [`CeremonyUse::Taken`]; otherwise changes nothing and says why. Of two concurrent
    /// takes of one ceremony, one is `Taken` and the other `AlreadyUsed`.
    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<CeremonyUse, StoreError>;

    /// Deletes the ceremonies that expired before `before` (used or not): how many.
    async fn prune_ceremonies(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_and_bounded() {
        assert_eq!(PasskeyName::new("  Work laptop ").unwrap().as_str(), "Work laptop");
        assert_eq!(PasskeyName::new(&"é".repeat(64)).unwrap().as_str().chars().count(), 64);
        for bad in ["", "   ", "a\u{7}b"] {
            let err = PasskeyName::new(bad).unwrap_err();
            assert_eq!(err.param(), Some("name"), "{bad:?}");
        }
        assert!(PasskeyName::new(&"a".repeat(65)).is_err());
    }

    #[test]
    fn purposes_round_trip_their_names() {
        for purpose in [
            CeremonyPurpose::Registration,
            CeremonyPurpose::SignIn,
            CeremonyPurpose::MfaChallenge,
            CeremonyPurpose::Reauthentication,
        ] {
            assert_eq!(CeremonyPurpose::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(CeremonyPurpose::parse("password_reset"), None);
    }

    #[test]
    fn debug_leaves_the_credential_and_the_state_out() {
        let record = PasskeyCeremonyRecord {
            token_hash: TokenHash([1; 32]),
            purpose: CeremonyPurpose::SignIn,
            user: None,
            state: SecretString::from("STATE-CHALLENGE"),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            used_at: None,
        };
        assert!(!format!("{record:?}").contains("STATE-CHALLENGE"));
    }
}
