//! Support access: time-bound grants that let the vendor's staff into a customer org.
//!
//! A vendor's staff member is not a member of the customer orgs they help. They reach one
//! only through a [`SupportGrant`] the org gave them: a reason, an expiry at most
//! [`SupportConfig::max_duration`] away, and an [`SupportAccess`] level that maps to the
//! built-in role `support_readonly` or `support` for the time the grant is active. Every
//! service resolves the actor's roles in one place (membership first, then an active
//! grant), so a grant works the same for every operation and every action taken under it
//! is recorded with the staff member, the org and the grant id.

mod service;
mod store;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::context::Principal;
use crate::error::PortalError;
use crate::ids::{GrantId, OrgId, UserId};

pub use crate::access::{SUPPORT_READONLY_ROLE, SUPPORT_ROLE, SupportAccess};
pub use service::{NewSupportGrant, SupportConfig, SupportService, permissions};
#[cfg(feature = "mock")]
pub use store::MockSupportGrantStore;
pub use store::SupportGrantStore;

/// Why a grant was given: 1 to [`SupportReason::MAX_CHARS`] characters, not only
/// whitespace, with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SupportReason(String);

impl SupportReason {
    /// The longest reason, in characters.
    pub const MAX_CHARS: usize = 500;

    /// Validates a reason; surrounding whitespace is trimmed.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `reason`) if it is empty after trimming, longer
    /// than [`MAX_CHARS`](Self::MAX_CHARS) characters, or holds control characters.
    pub fn new(text: &str) -> Result<Self, PortalError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PortalError::invalid_field("reason", "a reason is needed"));
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(PortalError::invalid_field(
                "reason",
                format!("a reason holds at most {} characters", Self::MAX_CHARS),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(PortalError::invalid_field(
                "reason",
                "a reason holds no control characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SupportReason {
    type Error = PortalError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(&text)
    }
}

impl From<SupportReason> for String {
    fn from(reason: SupportReason) -> Self {
        reason.0
    }
}

/// Time-bound access of one vendor staff member to one customer org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportGrant {
    /// Its id.
    pub id: GrantId,
    /// The staff member it lets in.
    pub staff: UserId,
    /// The customer org.
    pub org: OrgId,
    /// Why.
    pub reason: SupportReason,
    /// Read only, or read and write.
    pub access: SupportAccess,
    /// Who gave it.
    pub granted_by: Principal,
    /// When it was given; it is active from then.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it ends (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was; it is not active from then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When the staff member first entered the org through it (written once, with
    /// `support_grant.used`, by [`SupportGrantStore::record_first_use`]), if they have.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_used_at: Option<OffsetDateTime>,
}

impl SupportGrant {
    /// Whether the grant lets its staff member in at `at`: at or after `created_at`,
    /// before `expires_at`, and before `revoked_at` if it was revoked.
    pub fn is_active_at(&self, at: OffsetDateTime) -> bool {
        self.created_at <= at && at < self.expires_at && self.revoked_at.is_none_or(|revoked| at < revoked)
    }

    /// How long the grant was given for.
    pub fn duration(&self) -> Duration {
        self.expires_at - self.created_at
    }
}
