//! `InMemoryTenancyStore`: the reference `TenancyStore`, kept in one mutex-guarded map set.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::identity::UserAuditEvent;
use portal_core::ids::{InvitationId, OrgId, UserId};

use super::InMemoryAuditLog;
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{
    ApiVersionName, ApiVersionStore, Email, Invitation, InvitationState, Membership, Organization, RoleSet, Slug,
    TenancyStore, TokenHash, User,
};
use time::OffsetDateTime;

/// The backend name this store reports in errors.
const BACKEND: &str = "memory";

/// A [`TenancyStore`] that keeps everything in memory.
///
/// Every method takes one lock, checks every rule before it changes anything, and
/// releases the lock before it returns, so each call is atomic and isolated: of two
/// concurrent calls that race for the same invitation or the same last owner, exactly
/// one wins. Nothing is persisted; the data lives as long as the store.
///
/// It is the reference implementation: the SQL stores must answer exactly as it does.
///
/// ```
/// use portal_adapters::memory::InMemoryTenancyStore;
/// use portal_core::Portal;
/// use std::sync::Arc;
///
/// let portal = Portal::builder()
///     .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
///     .build()?;
/// # let _ = portal;
/// # Ok::<(), portal_core::PortalError>(())
/// ```
#[derive(Default)]
pub struct InMemoryTenancyStore {
    state: Mutex<State>,
    audit: InMemoryAuditLog,
}

impl InMemoryTenancyStore {
    /// Stores a new org, its owner's membership and (when given) its API version pin, all
    /// under one lock: all or nothing.
    fn insert_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: Option<&ApiVersionName>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.orgs.contains_key(&org.id) {
            return Err(already_exists("organization"));
        }
        if state.orgs.values().any(|existing| existing.slug == org.slug) {
            return Err(Conflict::SlugTaken.into());
        }
        if !state.users.contains_key(&owner.user) {
            return Err(not_found("user"));
        }
        // The membership belongs to the org being created, whatever `owner.org` says: a
        // store keys it by the new org so the two rows can never disagree.
        let membership = Membership {
            org: org.id,
            ..owner.clone()
        };
        state.orgs.insert(org.id, org.clone());
        state.memberships.insert((org.id, owner.user), membership);
        if let Some(version) = version {
            state.api_versions.insert(org.id, version.clone());
        }
        Ok(())
    }

    /// An empty store with its own audit log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that writes its audit events to `audit` (shared with other stores).
    pub fn with_audit_log(audit: InMemoryAuditLog) -> Self {
        Self {
            state: Mutex::default(),
            audit,
        }
    }

    /// The audit log this store writes to.
    pub fn audit_log(&self) -> InMemoryAuditLog {
        self.audit.clone()
    }

    /// Writes `event` once per org its user is a member of now (each row filed under its
    /// org and fanned out), holding this store's lock so no membership changes meanwhile;
    /// refuses every row, writing none, if one's id is already in the log. For the
    /// in-memory identity store, which calls it under its own lock after its rules passed.
    pub(crate) fn write_user_event(&self, event: &UserAuditEvent) -> Result<(), StoreError> {
        let state = self.lock();
        let orgs: Vec<OrgId> = state
            .memberships
            .keys()
            .filter(|(_, user)| *user == event.user())
            .map(|(org, _)| *org)
            .collect();
        let rows = event.events(&orgs);
        let mut log = self.audit.lock();
        if rows.iter().any(|row| log.events.iter().any(|e| e.id == row.id)) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        for row in &rows {
            log.write(row)?;
        }
        Ok(())
    }

    /// Locks the state. A panic in another thread while it held the lock cannot leave
    /// the state half-changed, because every method validates before it mutates, so a
    /// poisoned lock is safe to take over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`InMemoryTenancyStore::switch_email`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmailSwitch {
    /// The user's address is the new one now.
    Switched,
    /// The user is gone, or their address is not the expected one; nothing changed.
    OtherAddress,
    /// Another user has the new address; nothing changed.
    Taken,
}

impl InMemoryTenancyStore {
    /// Sets `user`'s address from `from` to `to` under the store's lock, when their address
    /// is still `from` and no other user has `to`, and writes `event` once per org `user`
    /// belongs to into the store's audit log under the same lock; otherwise changes
    /// nothing and says why.
    ///
    /// # Errors
    ///
    /// [`Conflict::AlreadyExists`] if one of the event's rows is in the log already
    /// (nothing changed).
    pub(crate) fn switch_email(
        &self,
        user: UserId,
        from: &Email,
        to: &Email,
        event: &UserAuditEvent,
    ) -> Result<EmailSwitch, StoreError> {
        let mut state = self.lock();
        if state.users.values().any(|u| u.email == *to && u.id != user) {
            return Ok(EmailSwitch::Taken);
        }
        if state.users.get(&user).is_none_or(|found| found.email != *from) {
            return Ok(EmailSwitch::OtherAddress);
        }
        let orgs: Vec<OrgId> = state
            .memberships
            .keys()
            .filter(|(_, member)| *member == user)
            .map(|(org, _)| *org)
            .collect();
        let rows = event.events(&orgs);
        let mut log = self.audit.lock();
        if rows.iter().any(|row| log.events.iter().any(|e| e.id == row.id)) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        for row in &rows {
            log.write(row)?;
        }
        if let Some(found) = state.users.get_mut(&user) {
            found.email = to.clone();
        }
        Ok(EmailSwitch::Switched)
    }
}

impl fmt::Debug for InMemoryTenancyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryTenancyStore")
            .field("orgs", &state.orgs.len())
            .field("users", &state.users.len())
            .field("memberships", &state.memberships.len())
            .field("invitations", &state.invitations.len())
            .finish()
    }
}

/// Everything the store holds. Memberships are keyed by `(org, user)`, so one org's
/// members are a contiguous range in user id order.
#[derive(Default)]
struct State {
    orgs: BTreeMap<OrgId, Organization>,
    users: BTreeMap<UserId, User>,
    memberships: BTreeMap<(OrgId, UserId), Membership>,
    invitations: BTreeMap<InvitationId, Invitation>,
    /// Each pinned org's API version.
    api_versions: BTreeMap<OrgId, ApiVersionName>,
}

impl State {
    /// The memberships of `org`, in ascending user id order.
    fn members_of(&self, org: OrgId) -> impl Iterator<Item = &Membership> {
        self.memberships
            .range((org, UserId::from_uuid(uuid::Uuid::nil()))..)
            .take_while(move |((o, _), _)| *o == org)
            .map(|(_, membership)| membership)
    }

    /// How many members of `org` hold the owner role.
    fn owner_count(&self, org: OrgId) -> usize {
        self.members_of(org).filter(|m| m.roles.has_owner()).count()
    }

    /// Fails with [`Conflict::LastOwner`] if `current` is `org`'s only owner.
    fn check_not_last_owner(&self, current: &Membership) -> Result<(), StoreError> {
        if current.roles.has_owner() && self.owner_count(current.org) <= 1 {
            return Err(Conflict::LastOwner.into());
        }
        Ok(())
    }
}

fn not_found(entity: &'static str) -> StoreError {
    StoreError::NotFound { entity }
}

fn already_exists(entity: &'static str) -> StoreError {
    Conflict::AlreadyExists { entity }.into()
}

#[async_trait]
impl TenancyStore for InMemoryTenancyStore {
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError> {
        self.insert_org(org, owner, None)
    }

    async fn create_pinned_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: &ApiVersionName,
    ) -> Result<(), StoreError> {
        self.insert_org(org, owner, Some(version))
    }

    async fn get_org(&self, id: OrgId) -> Result<Option<Organization>, StoreError> {
        Ok(self.lock().orgs.get(&id).cloned())
    }

    async fn get_org_by_slug(&self, slug: &Slug) -> Result<Option<Organization>, StoreError> {
        Ok(self.lock().orgs.values().find(|org| org.slug == *slug).cloned())
    }

    async fn update_org(&self, org: &Organization, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state.orgs.get_mut(&org.id).ok_or_else(|| not_found("organization"))?;
        self.audit.check(event)?;
        stored.name = org.name.clone();
        stored.metadata = org.metadata.clone();
        self.audit.append(event);
        Ok(())
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.users.contains_key(&user.id) {
            return Err(already_exists("user"));
        }
        if state.users.values().any(|existing| existing.email == user.email) {
            return Err(Conflict::EmailTaken.into());
        }
        state.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.values().find(|user| user.email == *email).cloned())
    }

    async fn get_membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError> {
        Ok(self.lock().memberships.get(&(org, user)).cloned())
    }

    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError> {
        let state = self.lock();
        Ok(state
            .members_of(org)
            .filter(|m| after.is_none_or(|after| m.user > after))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn list_member_users(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(Membership, User)>, StoreError> {
        let state = self.lock();
        state
            .members_of(org)
            .filter(|m| after.is_none_or(|after| m.user > after))
            .take(limit)
            .map(|membership| {
                let user = state.users.get(&membership.user).ok_or_else(|| StoreError::Corrupt {
                    backend: BACKEND,
                    what: format!("membership of the missing user {} in {org}", membership.user),
                })?;
                Ok((membership.clone(), user.clone()))
            })
            .collect()
    }

    async fn list_user_orgs(
        &self,
        user: UserId,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<(Organization, Membership)>, StoreError> {
        let state = self.lock();
        // The map is ordered by `(org, user)`, so this walk is in ascending org id order.
        let mut out = Vec::new();
        let mine = state
            .memberships
            .values()
            .filter(|m| m.user == user && after.is_none_or(|a| m.org > a))
            .take(limit);
        for membership in mine {
            let org = state.orgs.get(&membership.org).ok_or_else(|| StoreError::Corrupt {
                backend: BACKEND,
                what: format!("membership of {user} in the missing organization {}", membership.org),
            })?;
            out.push((org.clone(), membership.clone()));
        }
        Ok(out)
    }

    async fn set_member_roles(
        &self,
        org: OrgId,
        user: UserId,
        roles: &RoleSet,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError> {
        let mut state = self.lock();
        let current = state
            .memberships
            .get(&(org, user))
            .ok_or_else(|| not_found("membership"))?;
        if !roles.has_owner() {
            state.check_not_last_owner(current)?;
        }
        self.audit.check(event)?;
        let membership = state
            .memberships
            .get_mut(&(org, user))
            .ok_or_else(|| not_found("membership"))?;
        membership.roles = roles.clone();
        membership.updated_at = at;
        let membership = membership.clone();
        self.audit.append(event);
        Ok(membership)
    }

    async fn remove_member(&self, org: OrgId, user: UserId, event: &AuditEvent) -> Result<Membership, StoreError> {
        let mut state = self.lock();
        let current = state
            .memberships
            .get(&(org, user))
            .ok_or_else(|| not_found("membership"))?;
        state.check_not_last_owner(current)?;
        self.audit.check(event)?;
        let removed = state
            .memberships
            .remove(&(org, user))
            .ok_or_else(|| not_found("membership"))?;
        self.audit.append(event);
        Ok(removed)
    }

    async fn add_member(&self, membership: &Membership, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.orgs.contains_key(&membership.org) {
            return Err(not_found("organization"));
        }
        if !state.users.contains_key(&membership.user) {
            return Err(not_found("user"));
        }
        if state.memberships.contains_key(&(membership.org, membership.user)) {
            return Err(already_exists("membership"));
        }
        self.audit.check(event)?;
        state
            .memberships
            .insert((membership.org, membership.user), membership.clone());
        self.audit.append(event);
        Ok(())
    }

    async fn create_invitation(&self, invitation: &Invitation, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.orgs.contains_key(&invitation.org) {
            return Err(not_found("organization"));
        }
        let duplicate = state.invitations.contains_key(&invitation.id)
            || state
                .invitations
                .values()
                .any(|existing| existing.token_hash.ct_eq(&invitation.token_hash));
        if duplicate {
            return Err(already_exists("invitation"));
        }
        self.audit.check(event)?;
        state.invitations.insert(invitation.id, invitation.clone());
        self.audit.append(event);
        Ok(())
    }

    async fn get_invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        Ok(self.lock().invitations.get(&id).filter(|i| i.org == org).cloned())
    }

    async fn find_invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError> {
        let state = self.lock();
        // Every hash is compared, in constant time, so the time taken says nothing about
        // how close a guess came to a stored hash.
        let mut found = None;
        for invitation in state.invitations.values() {
            if invitation.token_hash.ct_eq(hash) {
                found = Some(invitation);
            }
        }
        Ok(found.cloned())
    }

    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let state = self.lock();
        Ok(state
            .invitations
            .values()
            .filter(|i| i.org == org && after.is_none_or(|after| i.id > after))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        user: UserId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError> {
        let mut state = self.lock();
        let invitation = state.invitations.get(&id).ok_or_else(|| not_found("invitation"))?;
        if !matches!(invitation.state, InvitationState::Pending) {
            return Err(Conflict::InvitationNotPending.into());
        }
        if at >= invitation.expires_at {
            return Err(Conflict::InvitationExpired.into());
        }
        if !state.users.contains_key(&user) {
            return Err(not_found("user"));
        }
        let org = invitation.org;
        let membership = match state.memberships.get(&(org, user)) {
            Some(existing) => {
                let roles = existing
                    .roles
                    .union(&invitation.roles)
                    .map_err(|_| StoreError::from(Conflict::TooManyRoles))?;
                Membership {
                    roles,
                    updated_at: at,
                    ..existing.clone()
                }
            }
            None => Membership {
                org,
                user,
                roles: invitation.roles.clone(),
                created_at: at,
                updated_at: at,
            },
        };
        self.audit.check(event)?;
        // Everything is checked; from here on nothing can fail, so every write happens.
        self.audit.append(event);
        if let Some(invitation) = state.invitations.get_mut(&id) {
            invitation.state = InvitationState::Accepted { by: user, at };
        }
        state.memberships.insert((org, user), membership.clone());
        Ok(membership)
    }

    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Invitation, StoreError> {
        let mut state = self.lock();
        let invitation = state
            .invitations
            .get_mut(&id)
            .filter(|i| i.org == org)
            .ok_or_else(|| not_found("invitation"))?;
        if !matches!(invitation.state, InvitationState::Pending) {
            return Err(Conflict::InvitationNotPending.into());
        }
        self.audit.check(event)?;
        invitation.state = InvitationState::Revoked { at };
        let revoked = invitation.clone();
        self.audit.append(event);
        Ok(revoked)
    }
}

#[async_trait]
impl ApiVersionStore for InMemoryTenancyStore {
    async fn api_version(&self, org: OrgId) -> Result<Option<ApiVersionName>, StoreError> {
        Ok(self.lock().api_versions.get(&org).cloned())
    }

    async fn pin_api_version(
        &self,
        org: OrgId,
        version: &ApiVersionName,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.orgs.contains_key(&org) {
            return Err(not_found("organization"));
        }
        if let Some(event) = event {
            self.audit.check(event)?;
        }
        state.api_versions.insert(org, version.clone());
        if let Some(event) = event {
            self.audit.append(event);
        }
        Ok(())
    }
}
