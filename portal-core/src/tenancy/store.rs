//! The `TenancyStore` port: persistence of organizations, users, memberships and invitations.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{ApiVersionName, Email, Invitation, Membership, Organization, RoleName, RoleSet, Slug, TokenHash, User};
use crate::audit::AuditEvent;
use crate::gate::MembershipSource;
use crate::ids::{InvitationId, OrgId, UserId};
use crate::store::StoreError;

/// Persists tenancy data.
///
/// Every implementation must pass `portal_core::testing::tenancy` (run it with
/// `portal_core::tenancy_store_conformance!`, feature `testing`). Each method is one
/// atomic step: it commits entirely or not at all. Rules that depend on more than one
/// row (an org keeps an owner; an invitation is used once) are enforced inside the store,
/// in the same transaction as the write, because a check in the service could race with
/// another replica.
///
/// Everything scoped to an organization is looked up by `(org, id)`: an id from another
/// org is simply not found.
///
/// The methods that change what an org's customers audit take the [`AuditEvent`] that
/// describes the change and write it in the same transaction (the outbox): when the
/// change commits its event is in the org's [`AuditLog`](crate::audit::AuditLog), and
/// when the change is refused or fails, including when the event cannot be written,
/// neither is stored. The conformance suite `portal_core::testing::audit` holds them to it.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] when the backend cannot be reached,
/// times out, has no free connection or loses the connection mid-call (nothing was
/// written), and [`StoreError::Backend`] or [`StoreError::Corrupt`] for other failures.
/// Method-specific errors are listed on each method.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TenancyStore: Send + Sync + 'static {
    /// Creates `org` and its first membership, `owner`, together. The membership is
    /// stored in `org.id` whatever `owner.org` holds.
    ///
    /// # Errors
    ///
    /// - [`Conflict::SlugTaken`](crate::store::Conflict::SlugTaken) if another org has the slug.
    /// - [`StoreError::NotFound`] (`user`) if the owner's user does not exist.
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError>;

    /// Creates `org` and its first membership as [`create_org`](Self::create_org) does, and
    /// pins the org to the API `version` in the same transaction: the org, its owner and its
    /// pin are stored together or not at all, so an org never exists unpinned because a
    /// second write failed. The pin is the one [`ApiVersionStore::api_version`](super::ApiVersionStore::api_version) reads back
    /// (a store keeping pins implements both traits on the same storage).
    ///
    /// # Errors
    ///
    /// As [`create_org`](Self::create_org); nothing is written when any part fails.
    async fn create_pinned_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: &ApiVersionName,
    ) -> Result<(), StoreError>;

    /// The organization `id`, if it exists.
    async fn get_org(&self, id: OrgId) -> Result<Option<Organization>, StoreError>;

    /// The organization with this slug, if one exists.
    async fn get_org_by_slug(&self, slug: &Slug) -> Result<Option<Organization>, StoreError>;

    /// Replaces the org's name and metadata, and appends `event` (`org.updated`) in the
    /// same transaction; the id, slug and creation time stay.
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`organization`) if it does not exist (nothing is
    ///   written, no event).
    /// - [`StoreError::Conflict`] ([`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists)
    ///   `audit event`) if the event's id is already in the log: the change is not stored.
    async fn update_org(&self, org: &Organization, event: &AuditEvent) -> Result<(), StoreError>;

    /// Creates a user.
    ///
    /// # Errors
    ///
    /// - [`Conflict::EmailTaken`](crate::store::Conflict::EmailTaken) if another user has the email.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// The user `id`, if they exist.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The user with this (normalized) email, if one exists.
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The membership of `user` in `org`, if there is one.
    async fn get_membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError>;

    /// Up to `limit` memberships of `org` in ascending user id order, starting after
    /// `after` when it is given.
    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError>;

    /// [`list_members`](Self::list_members), each membership with its user (name and
    /// email), read in one step: a page of members with their names costs one read
    /// whatever its size.
    async fn list_member_users(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(Membership, User)>, StoreError>;

    /// Up to `limit` memberships of `user`, each with its organization, in ascending org id
    /// order, starting after org `after` when it is given. A user in many orgs is read
    /// page by page.
    async fn list_user_orgs(
        &self,
        user: UserId,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<(Organization, Membership)>, StoreError>;

    /// Replaces the roles of `user` in `org` and sets `updated_at` to `at`.
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`membership`) if `user` is not a member of `org`.
    /// - [`Conflict::LastOwner`](crate::store::Conflict::LastOwner) if the member is the
    ///   org's only owner and `roles` lacks `owner`; nothing changes.
    async fn set_member_roles(
        &self,
        org: OrgId,
        user: UserId,
        roles: &RoleSet,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError>;

    /// Removes `user` from `org`, roles and all, and returns the removed membership.
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`membership`) if `user` is not a member of `org`.
    /// - [`Conflict::LastOwner`](crate::store::Conflict::LastOwner) if the member is the
    ///   org's only owner; nothing changes.
    async fn remove_member(&self, org: OrgId, user: UserId, event: &AuditEvent) -> Result<Membership, StoreError>;

    /// Adds `membership`: the user joins the org with its roles (as a directory
    /// provisioning the user through SCIM does).
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`organization`) if the org does not exist.
    /// - [`StoreError::NotFound`] (`user`) if the user does not exist.
    /// - [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`membership`)
    ///   if the user is already a member; nothing changes.
    ///
    /// The checks run in this order.
    async fn add_member(&self, membership: &Membership, event: &AuditEvent) -> Result<(), StoreError>;

    /// Stores a new invitation.
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`organization`) if the org does not exist.
    async fn create_invitation(&self, invitation: &Invitation, event: &AuditEvent) -> Result<(), StoreError>;

    /// The invitation `id` of `org`, if it exists.
    async fn get_invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError>;

    /// The invitation whose token hashes to `hash`, if one exists.
    async fn find_invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError>;

    /// Up to `limit` invitations of `org` in ascending id order, after `after`.
    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError>;

    /// Accepts invitation `id` for `user` at `at`: marks it accepted and adds the
    /// invitation's roles to the user's membership (creating it if needed), together.
    /// Of two concurrent calls for one invitation, exactly one succeeds.
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`invitation`) if it does not exist.
    /// - [`Conflict::InvitationNotPending`](crate::store::Conflict::InvitationNotPending)
    ///   if it was already accepted or revoked.
    /// - [`Conflict::InvitationExpired`](crate::store::Conflict::InvitationExpired) if
    ///   `at` is not before its expiry.
    /// - [`StoreError::NotFound`] (`user`) if `user` does not exist.
    /// - [`Conflict::TooManyRoles`](crate::store::Conflict::TooManyRoles) if the member
    ///   would hold more than [`RoleSet::MAX`] roles; the invitation stays pending.
    ///
    /// The checks run in this order, so every store reports the same error for the same
    /// state.
    async fn accept_invitation(
        &self,
        id: InvitationId,
        user: UserId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError>;

    /// Revokes invitation `id` of `org` at `at` and returns it.
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`invitation`) if `org` has no such invitation.
    /// - [`Conflict::InvitationNotPending`](crate::store::Conflict::InvitationNotPending)
    ///   if it was already accepted or revoked.
    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Invitation, StoreError>;
}

/// A tenancy store is where the [`Gate`](crate::gate::Gate) reads memberships.
#[async_trait]
impl<S: TenancyStore + ?Sized> MembershipSource for Arc<S> {
    async fn member_roles(&self, org: OrgId, user: UserId) -> Result<Option<Vec<RoleName>>, StoreError> {
        Ok(self.get_membership(org, user).await?.map(|m| m.roles.to_vec()))
    }

    async fn org_exists(&self, org: OrgId) -> Result<bool, StoreError> {
        Ok(self.get_org(org).await?.is_some())
    }

    async fn display_name(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(self.get_user(user).await?.map(|u| u.display_name.to_string()))
    }
}
