//! The narrow ports the [`Gate`](super::Gate) reads who reaches an org through:
//! memberships and support grants, and (optionally) whether a member meets the org's MFA
//! policy.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::access::{RoleName, SupportAccess};
use crate::audit::AuditEvent;
use crate::ids::{GrantId, OrgId, UserId};
use crate::store::StoreError;

/// Where the gate reads memberships. Every [`TenancyStore`](crate::TenancyStore) is one
/// (held in an `Arc`), so a host passes its tenancy store.
///
/// # Errors
///
/// [`StoreError`] when the store fails; a non-member is `Ok(None)`, never an error.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MembershipSource: Send + Sync + 'static {
    /// The roles `user` holds in `org`, or `None` if they are not a member.
    async fn member_roles(&self, org: OrgId, user: UserId) -> Result<Option<Vec<RoleName>>, StoreError>;

    /// Whether `org` exists (a service principal reaches any org that does).
    async fn org_exists(&self, org: OrgId) -> Result<bool, StoreError>;

    /// How `user` is shown now (their display name), or `None` for an unknown user: the
    /// name a support grant's `support_grant.used` event shows its staff member by.
    async fn display_name(&self, user: UserId) -> Result<Option<String>, StoreError>;
}

/// A support grant as the gate sees it: which grant let the staff member in, at what
/// level, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveGrant {
    /// The grant.
    pub id: GrantId,
    /// Its level, which gives the built-in role the staff member holds for the request.
    pub access: SupportAccess,
    /// When it ends.
    pub expires_at: OffsetDateTime,
    /// When it was first used, read with the grant: `None` until the gate records the
    /// first use ([`GrantSource::record_first_use`]), so every later request writes
    /// nothing.
    pub first_used_at: Option<OffsetDateTime>,
}

/// Where the gate finds support grants. Every
/// [`SupportGrantStore`](crate::support::SupportGrantStore) is one (held in an `Arc`).
///
/// # Errors
///
/// [`StoreError`] when the store fails; no active grant is `Ok(None)`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait GrantSource: Send + Sync + 'static {
    /// The grant that lets `staff` into `org` at `at`, if one is active then.
    async fn active_grant(
        &self,
        staff: UserId,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<ActiveGrant>, StoreError>;

    /// Sets the first use of the grant `grant` of `org` to `at` and writes `event`
    /// (`support_grant.used`), in one transaction, only if it was unset; returns whether
    /// this call set it (of concurrent first uses, exactly one does).
    async fn record_first_use(
        &self,
        org: OrgId,
        grant: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// Where the gate asks whether a member falls short of their org's MFA policy ("members
/// must use a second factor"). Every
/// [`MfaPolicyStore`](crate::identity::MfaPolicyStore) is one (held in an `Arc`).
///
/// # Errors
///
/// [`StoreError`] when the store fails.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MfaPolicySource: Send + Sync + 'static {
    /// Whether `org` requires a second factor and `user` has none (a confirmed TOTP factor
    /// or a passkey).
    async fn mfa_unmet(&self, org: OrgId, user: UserId) -> Result<bool, StoreError>;
}
