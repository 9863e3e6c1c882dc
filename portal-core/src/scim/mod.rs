//! SCIM 2.0 provisioning (RFC 7643/7644): an org's directory keeps members and roles in step.
//!
//! An identity provider (Okta, Microsoft Entra ID, …) provisions users and groups into one
//! org. A [`ScimUser`] is the directory's view of one portal [`User`](crate::tenancy::User)
//! in that org (keyed by `(org, user)`, so the SCIM resource id is the portal user id); a
//! [`ScimGroup`] holds members and the roles the org maps the group to. The
//! [`ScimStore`] port persists both; the [`ScimService`] applies them to tenancy:
//! provisioning makes (or links, by email) the portal user and its membership, `active:
//! false` removes the membership and revokes the user's sessions, and group membership
//! moves the roles the org maps its groups to at once.

pub mod filter;
pub mod patch;
mod service;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::access::RoleName;
use crate::error::PortalError;
use crate::ids::{GroupId, OrgId, UserId};
use crate::store::StoreError;

pub use filter::Lookup;
pub use service::{NewScimGroup, NewScimUser, ScimService};

/// The longest `userName`, `externalId`, `displayName` or name part accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 512;
/// The most email addresses one SCIM user may carry.
pub const MAX_EMAILS: usize = 10;
/// The most members one group may hold.
pub const MAX_GROUP_MEMBERS: usize = 100_000;

/// Checks one text attribute: 1 to [`MAX_TEXT_LEN`] bytes, no control characters.
///
/// # Errors
///
/// `validation.invalid_field` naming `param`.
pub fn check_text(param: &'static str, value: &str) -> Result<(), PortalError> {
    if value.trim().is_empty() {
        return Err(PortalError::invalid_field(param, format!("`{param}` is empty")));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(PortalError::invalid_field(
            param,
            format!("`{param}` is longer than {MAX_TEXT_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(PortalError::invalid_field(
            param,
            format!("`{param}` holds control characters"),
        ));
    }
    Ok(())
}

/// The key a `userName` is unique under: SCIM compares `userName` case-insensitively
/// (RFC 7643 §4.1.1, `caseExact: false`).
pub fn user_name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

/// A user's name, as SCIM's `name` complex attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimName {
    /// `name.formatted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// `name.givenName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// `name.familyName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

/// One of a user's email addresses (SCIM's `emails` multi-valued attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimEmail {
    /// The address as the directory sent it.
    pub value: String,
    /// `type`, such as `work`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether it is the primary address.
    #[serde(default)]
    pub primary: bool,
}

/// What the directory says about a user besides the keys: name, display name, emails.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimProfile {
    /// `name`.
    #[serde(default)]
    pub name: ScimName,
    /// `displayName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `emails`.
    #[serde(default)]
    pub emails: Vec<ScimEmail>,
}

impl ScimProfile {
    /// The primary email address, else the first one.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }

    /// Validates every text in the profile.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` naming the attribute.
    pub fn check(&self) -> Result<(), PortalError> {
        for (param, value) in [
            ("name.formatted", &self.name.formatted),
            ("name.givenName", &self.name.given_name),
            ("name.familyName", &self.name.family_name),
            ("displayName", &self.display_name),
        ] {
            if let Some(value) = value {
                check_text(param, value)?;
            }
        }
        if self.emails.len() > MAX_EMAILS {
            return Err(PortalError::invalid_field(
                "emails",
                format!("more than {MAX_EMAILS} email addresses"),
            ));
        }
        for email in &self.emails {
            check_text("emails.value", &email.value)?;
            if let Some(kind) = &email.kind {
                check_text("emails.type", kind)?;
            }
        }
        if self.emails.iter().filter(|e| e.primary).count() > 1 {
            return Err(PortalError::invalid_field(
                "emails.primary",
                "more than one primary email address",
            ));
        }
        Ok(())
    }
}

/// One user as an org's directory provisioned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUser {
    /// The org whose directory provisioned it.
    pub org: OrgId,
    /// The portal user it is; also its SCIM `id`.
    pub user: UserId,
    /// `userName`, unique in the org ignoring case.
    pub user_name: String,
    /// `externalId`, the directory's own id; unique in the org when set.
    pub external_id: Option<String>,
    /// `active`: an inactive user keeps its record but is no member of the org.
    pub active: bool,
    /// Name, display name and emails.
    pub profile: ScimProfile,
    /// Starts at 1 and grows by one with every replace; `meta.version` and the `ETag`.
    pub version: u64,
    /// When it was provisioned.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// One group as an org's directory provisioned it, with the roles the org maps it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroup {
    /// The org whose directory provisioned it.
    pub org: OrgId,
    /// Its SCIM `id`.
    pub id: GroupId,
    /// `displayName`, unique in the org ignoring case.
    pub display_name: String,
    /// `externalId`, the directory's own id; unique in the org when set.
    pub external_id: Option<String>,
    /// The members, each a [`ScimUser`] of the same org; the store reads them back in
    /// ascending order, without duplicates.
    pub members: Vec<UserId>,
    /// The roles an active member of this group holds in the org (the org's mapping);
    /// sorted, without duplicates, possibly empty.
    pub roles: Vec<RoleName>,
    /// Starts at 1 and grows by one with every replace.
    pub version: u64,
    /// When it was provisioned.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// Persists an org's SCIM users and groups.
///
/// Everything is keyed by org: an id of another org is simply not found. `userName` and a
/// group's `displayName` are unique per org ignoring case (compared by
/// [`user_name_key`]); `externalId` is unique per org, byte for byte. A group's members
/// must be SCIM users of the same org, and deleting a user removes it from every group,
/// in the same step. Every method is one atomic step.
///
/// Every implementation must pass `portal_core::testing::scim` (run it with
/// `portal_core::scim_store_conformance!`, feature `testing`).
///
/// # Errors
///
/// - [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) with entity
///   `scim_user` (the user is already provisioned in the org), `scim_user_name` (another
///   user of the org has the `userName`), `scim_group_name` (another group has the
///   `displayName`) or `scim_external_id` (another user of the org, for a user, or another
///   group of the org, for a group, has the `externalId`), from the create and replace methods; nothing changes.
/// - [`StoreError::NotFound`] with entity `scim_user` or `scim_group` when the resource
///   (or, for a group's members, a member) is not in the org.
/// - [`Conflict::Version`](crate::store::Conflict::Version) from the replace methods when
///   the stored version is not the expected one; nothing changes.
/// - [`StoreError::Unavailable`], [`StoreError::Backend`] and [`StoreError::Corrupt`] as
///   for every store.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ScimStore: Send + Sync + 'static {
    /// Stores a newly provisioned user (its `version` as given, normally 1).
    async fn create_user(&self, user: &ScimUser) -> Result<(), StoreError>;

    /// The SCIM user `user` of `org`, if provisioned.
    async fn get_user(&self, org: OrgId, user: UserId) -> Result<Option<ScimUser>, StoreError>;

    /// The SCIM user of `org` whose `userName` equals `user_name` ignoring case.
    async fn find_user_by_user_name(&self, org: OrgId, user_name: &str) -> Result<Option<ScimUser>, StoreError>;

    /// Up to `limit` SCIM users of `org` in ascending user id order, after `after`.
    async fn list_users(&self, org: OrgId, after: Option<UserId>, limit: usize) -> Result<Vec<ScimUser>, StoreError>;

    /// Up to `limit` SCIM users of `org` that `lookup` finds ([`Lookup::matches_user`]),
    /// in ascending user id order, after `after`. SQL stores read an index on the
    /// attribute (its key per org), never every user of the org.
    async fn find_users(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ScimUser>, StoreError>;

    /// Replaces the user (found by `user.org` and `user.user`) if its stored version is
    /// `expected`; stores `user` with version `expected + 1` and its `created_at` kept,
    /// and returns what it stored.
    async fn replace_user(&self, user: &ScimUser, expected: u64) -> Result<ScimUser, StoreError>;

    /// Deletes the user, removes it from every group of the org, and returns it.
    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<ScimUser, StoreError>;

    /// Stores a new group (its `version` as given, normally 1).
    async fn create_group(&self, group: &ScimGroup) -> Result<(), StoreError>;

    /// The group `id` of `org`, if there is one.
    async fn get_group(&self, org: OrgId, id: GroupId) -> Result<Option<ScimGroup>, StoreError>;

    /// Up to `limit` groups of `org` in ascending id order, after `after`.
    async fn list_groups(&self, org: OrgId, after: Option<GroupId>, limit: usize)
    -> Result<Vec<ScimGroup>, StoreError>;

    /// Up to `limit` groups of `org` that `lookup` finds ([`Lookup::matches_group`]), in
    /// ascending id order, after `after`; through an index, as
    /// [`find_users`](Self::find_users).
    async fn find_groups(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError>;

    /// Every role some group of `org` maps to (the roles SCIM manages in the org), read
    /// without the groups' members: what every membership change recomputes against.
    async fn mapped_roles(&self, org: OrgId) -> Result<std::collections::BTreeSet<RoleName>, StoreError>;

    /// Every group of `org` that has `user` as a member, in ascending id order.
    async fn groups_of(&self, org: OrgId, user: UserId) -> Result<Vec<ScimGroup>, StoreError>;

    /// Replaces the group (found by `group.org` and `group.id`) if its stored version is
    /// `expected`, as [`replace_user`](Self::replace_user) does.
    async fn replace_group(&self, group: &ScimGroup, expected: u64) -> Result<ScimGroup, StoreError>;

    /// Deletes the group and returns it.
    async fn delete_group(&self, org: OrgId, id: GroupId) -> Result<ScimGroup, StoreError>;
}
