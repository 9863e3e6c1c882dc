//! The `SupportGrantStore` port: where support access grants live.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SupportGrant;
use crate::audit::AuditEvent;
use crate::gate::{ActiveGrant, GrantSource};
use crate::ids::{GrantId, OrgId, UserId};
use crate::store::StoreError;

/// Persists support access grants.
///
/// Grants are scoped to their org: [`get`](Self::get) and [`revoke`](Self::revoke) take
/// the org and find nothing for another org's grant id. The store keeps no foreign keys
/// to tenancy, so it stands alone; the service checks the org and the staff member.
///
/// Every implementation must pass `portal_core::testing::support`.
///
/// # Errors
///
/// - [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) with entity
///   `support_grant` from [`create`](Self::create) if a grant of that id exists (in any
///   org); nothing is written.
/// - [`StoreError::NotFound`] with entity `support_grant` from [`revoke`](Self::revoke)
///   if the org holds no grant of that id.
/// - [`StoreError::Unavailable`] if the backend cannot be reached or loses the
///   connection; [`StoreError::Backend`] for any other failure; [`StoreError::Corrupt`]
///   for a stored row that does not read back into a [`SupportGrant`].
///
/// [`create`](Self::create), [`revoke`](Self::revoke) and
/// [`record_first_use`](Self::record_first_use) write their audit event
/// (`support_grant.created`, `support_grant.revoked`, `support_grant.used`) in the
/// change's transaction (the outbox, see [`crate::audit`]): an event whose insert fails
/// leaves no change, and a refused change (a taken id, another org's grant, a grant used
/// before) writes no event.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SupportGrantStore: Send + Sync + 'static {
    /// Stores a new grant and writes `event` (`support_grant.created`), in one transaction.
    async fn create(&self, grant: &SupportGrant, event: &AuditEvent) -> Result<(), StoreError>;

    /// The grant `id` of `org`, or `None` (also for another org's grant).
    async fn get(&self, org: OrgId, id: GrantId) -> Result<Option<SupportGrant>, StoreError>;

    /// The grant that lets `staff` into `org` at `at` (see
    /// [`SupportGrant::is_active_at`]); of several, the one created last (highest id).
    async fn find_active(
        &self,
        staff: UserId,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError>;

    /// Up to `limit` grants of `org`, active or not, ordered by id (oldest first), those
    /// after `after` if given. An org with many grants is read page by page.
    async fn list(&self, org: OrgId, after: Option<GrantId>, limit: usize) -> Result<Vec<SupportGrant>, StoreError>;

    /// Revokes the grant `id` of `org` at `at` and returns it as stored. A grant already
    /// revoked keeps its first `revoked_at` and is returned unchanged, so a retry is
    /// harmless. `event` (`support_grant.revoked`) is written in the same transaction
    /// when this call revoked the grant, and not for a grant revoked already.
    async fn revoke(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<SupportGrant, StoreError>;

    /// Records the first use of the grant `id` of `org`: sets its `first_used_at` to `at`
    /// and writes `event` (`support_grant.used`), in one transaction, only if it was
    /// unset; returns whether this call set it. A grant used before keeps its first time
    /// and writes nothing, so of concurrent first uses exactly one writes the event.
    /// [`StoreError::NotFound`] (`support_grant`) if `org` holds no grant `id`.
    async fn record_first_use(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// A support grant store is where the [`Gate`](crate::gate::Gate) finds active grants.
#[async_trait]
impl<S: SupportGrantStore + ?Sized> GrantSource for Arc<S> {
    async fn active_grant(
        &self,
        staff: UserId,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<ActiveGrant>, StoreError> {
        Ok(self.find_active(staff, org, at).await?.map(|grant| ActiveGrant {
            id: grant.id,
            access: grant.access,
            expires_at: grant.expires_at,
            first_used_at: grant.first_used_at,
        }))
    }

    async fn record_first_use(
        &self,
        org: OrgId,
        grant: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        SupportGrantStore::record_first_use(&**self, org, grant, at, event).await
    }
}
