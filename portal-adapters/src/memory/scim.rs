//! `InMemoryScimStore`: the reference `ScimStore`, kept in one mutex-guarded map set.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::access::RoleName;
use portal_core::ids::{GroupId, OrgId, UserId};
use portal_core::scim::{Lookup, ScimGroup, ScimStore, ScimUser, user_name_key};
use portal_core::store::{Conflict, StoreError};

/// A [`ScimStore`] that keeps everything in memory.
///
/// Every method takes one lock and checks every rule before it changes anything, so each
/// call is atomic. It is the reference implementation the SQL stores are compared with.
#[derive(Default)]
pub struct InMemoryScimStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: BTreeMap<(OrgId, UserId), ScimUser>,
    groups: BTreeMap<(OrgId, GroupId), ScimGroup>,
}

impl InMemoryScimStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the state; every method validates before it mutates, so a poisoned lock is
    /// safe to take over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryScimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryScimStore")
            .field("users", &state.users.len())
            .field("groups", &state.groups.len())
            .finish()
    }
}

fn exists(entity: &'static str) -> StoreError {
    StoreError::Conflict(Conflict::AlreadyExists { entity })
}

impl State {
    fn org_users(&self, org: OrgId) -> impl Iterator<Item = &ScimUser> {
        self.users
            .range((org, UserId::from_uuid(uuid::Uuid::nil()))..)
            .take_while(move |((o, _), _)| *o == org)
            .map(|(_, u)| u)
    }

    fn org_groups(&self, org: OrgId) -> impl Iterator<Item = &ScimGroup> {
        self.groups
            .range((org, GroupId::from_uuid(uuid::Uuid::nil()))..)
            .take_while(move |((o, _), _)| *o == org)
            .map(|(_, g)| g)
    }

    /// The uniqueness rules for `user` against every other user of its org.
    fn check_user(&self, user: &ScimUser) -> Result<(), StoreError> {
        let key = user_name_key(&user.user_name);
        for other in self.org_users(user.org).filter(|o| o.user != user.user) {
            if user_name_key(&other.user_name) == key {
                return Err(exists("scim_user_name"));
            }
            if user.external_id.is_some() && other.external_id == user.external_id {
                return Err(exists("scim_external_id"));
            }
        }
        Ok(())
    }

    /// The uniqueness and membership rules for `group` against its org.
    fn check_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let key = user_name_key(&group.display_name);
        for other in self.org_groups(group.org).filter(|o| o.id != group.id) {
            if user_name_key(&other.display_name) == key {
                return Err(exists("scim_group_name"));
            }
            if group.external_id.is_some() && other.external_id == group.external_id {
                return Err(exists("scim_external_id"));
            }
        }
        if group.members.iter().any(|m| !self.users.contains_key(&(group.org, *m))) {
            return Err(StoreError::NotFound { entity: "scim_user" });
        }
        Ok(())
    }
}

/// `group` as stored: members ascending, without duplicates.
fn normalized(group: &ScimGroup) -> ScimGroup {
    let mut group = group.clone();
    group.members.sort();
    group.members.dedup();
    group.roles.sort();
    group.roles.dedup();
    group
}

#[async_trait]
impl ScimStore for InMemoryScimStore {
    async fn create_user(&self, user: &ScimUser) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.users.contains_key(&(user.org, user.user)) {
            return Err(exists("scim_user"));
        }
        state.check_user(user)?;
        state.users.insert((user.org, user.user), user.clone());
        Ok(())
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> Result<Option<ScimUser>, StoreError> {
        Ok(self.lock().users.get(&(org, user)).cloned())
    }

    async fn find_user_by_user_name(&self, org: OrgId, user_name: &str) -> Result<Option<ScimUser>, StoreError> {
        let key = user_name_key(user_name);
        Ok(self
            .lock()
            .org_users(org)
            .find(|u| user_name_key(&u.user_name) == key)
            .cloned())
    }

    async fn list_users(&self, org: OrgId, after: Option<UserId>, limit: usize) -> Result<Vec<ScimUser>, StoreError> {
        Ok(self
            .lock()
            .org_users(org)
            .filter(|u| after.is_none_or(|a| u.user > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn find_users(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ScimUser>, StoreError> {
        Ok(self
            .lock()
            .org_users(org)
            .filter(|u| after.is_none_or(|a| u.user > a) && lookup.matches_user(u))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn replace_user(&self, user: &ScimUser, expected: u64) -> Result<ScimUser, StoreError> {
        let mut state = self.lock();
        let current = state
            .users
            .get(&(user.org, user.user))
            .ok_or(StoreError::NotFound { entity: "scim_user" })?;
        if current.version != expected {
            return Err(StoreError::Conflict(Conflict::Version {
                expected,
                current: current.version,
            }));
        }
        let mut stored = user.clone();
        stored.version = expected.saturating_add(1);
        stored.created_at = current.created_at;
        state.check_user(&stored)?;
        state.users.insert((user.org, user.user), stored.clone());
        Ok(stored)
    }

    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<ScimUser, StoreError> {
        let mut state = self.lock();
        let removed = state
            .users
            .remove(&(org, user))
            .ok_or(StoreError::NotFound { entity: "scim_user" })?;
        for ((o, _), group) in state.groups.iter_mut() {
            if *o == org {
                group.members.retain(|m| *m != user);
            }
        }
        Ok(removed)
    }

    async fn create_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.groups.contains_key(&(group.org, group.id)) {
            return Err(exists("scim_group"));
        }
        state.check_group(group)?;
        state.groups.insert((group.org, group.id), normalized(group));
        Ok(())
    }

    async fn get_group(&self, org: OrgId, id: GroupId) -> Result<Option<ScimGroup>, StoreError> {
        Ok(self.lock().groups.get(&(org, id)).cloned())
    }

    async fn list_groups(
        &self,
        org: OrgId,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        Ok(self
            .lock()
            .org_groups(org)
            .filter(|g| after.is_none_or(|a| g.id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn find_groups(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        Ok(self
            .lock()
            .org_groups(org)
            .filter(|g| after.is_none_or(|a| g.id > a) && lookup.matches_group(g))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mapped_roles(&self, org: OrgId) -> Result<std::collections::BTreeSet<RoleName>, StoreError> {
        Ok(self
            .lock()
            .org_groups(org)
            .flat_map(|g| g.roles.iter().cloned())
            .collect())
    }

    async fn groups_of(&self, org: OrgId, user: UserId) -> Result<Vec<ScimGroup>, StoreError> {
        Ok(self
            .lock()
            .org_groups(org)
            .filter(|g| g.members.binary_search(&user).is_ok())
            .cloned()
            .collect())
    }

    async fn replace_group(&self, group: &ScimGroup, expected: u64) -> Result<ScimGroup, StoreError> {
        let mut state = self.lock();
        let current = state
            .groups
            .get(&(group.org, group.id))
            .ok_or(StoreError::NotFound { entity: "scim_group" })?;
        if current.version != expected {
            return Err(StoreError::Conflict(Conflict::Version {
                expected,
                current: current.version,
            }));
        }
        let mut stored = normalized(group);
        stored.version = expected.saturating_add(1);
        stored.created_at = current.created_at;
        state.check_group(&stored)?;
        state.groups.insert((group.org, group.id), stored.clone());
        Ok(stored)
    }

    async fn delete_group(&self, org: OrgId, id: GroupId) -> Result<ScimGroup, StoreError> {
        self.lock()
            .groups
            .remove(&(org, id))
            .ok_or(StoreError::NotFound { entity: "scim_group" })
    }
}
