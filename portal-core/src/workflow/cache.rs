//! The service's cache of instances it has read or committed, so a transition from the
//! version a client last received does not read the instance again.
//!
//! Why a cached instance can be trusted: an instance's content at a given version never
//! changes. Version 1 is written once by [`WorkflowStore::create`], and every later
//! version is written once by [`WorkflowStore::apply`], which commits only at the
//! expected version, so no two different contents ever carry the same `(org, id,
//! version)`. The cache answers only a request naming the exact version it holds, and
//! what it answers is what a read would have returned while that version was current.
//! Whether that version is *still* current is not the cache's to say: `apply`'s version
//! check decides it, in the store, on every call. That holds across replicas too: each
//! service keeps its own cache, and an instance another replica moved on makes this
//! replica's `apply` fail its version check, after which the service reads the store as
//! it would have without a cache.
//!
//! The one assumption is that instances change only through the store's `apply`. A host
//! that edits `workflow_instances` rows by hand without bumping `version`, or restores a
//! database backup under a running process, must build new services.
//!
//! [`WorkflowStore::create`]: super::WorkflowStore::create
//! [`WorkflowStore::apply`]: super::WorkflowStore::apply

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Instance;
use crate::ids::{OrgId, WorkflowId};

/// How many instances one service keeps, at most.
pub(crate) const CAPACITY: usize = 1024;

type Key = (OrgId, WorkflowId);

/// A bounded map from `(org, id)` to the highest version of the instance seen, evicting
/// the entry written longest ago when full.
#[derive(Debug)]
pub(crate) struct InstanceCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The cached instances, each with the sequence number of its latest write.
    entries: HashMap<Key, (u64, Instance)>,
    /// Writes in order, oldest first. An entry whose sequence number no longer matches
    /// the map's was overwritten or removed since, and is skipped when evicting.
    order: VecDeque<(u64, Key)>,
    /// The next write's sequence number.
    next: u64,
}

impl InstanceCache {
    /// An empty cache holding at most `capacity` instances.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Locks the cache. Every method leaves it consistent before anything can panic, so a
    /// poisoned lock is safe to take over.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance `id` of `org` at `version`, if that is the version cached.
    pub(crate) fn get(&self, org: OrgId, id: WorkflowId, version: u64) -> Option<Instance> {
        let inner = self.lock();
        match inner.entries.get(&(org, id)) {
            Some((_, instance)) if instance.version == version => Some(instance.clone()),
            _ => None,
        }
    }

    /// Remembers `instance`, unless a later version of it is already cached (a slow read
    /// finishing after a newer commit must not bring an older version back).
    pub(crate) fn put(&self, instance: &Instance) {
        if self.capacity == 0 {
            return;
        }
        let key = (instance.org, instance.id);
        let mut inner = self.lock();
        if inner
            .entries
            .get(&key)
            .is_some_and(|(_, cached)| cached.version >= instance.version)
        {
            return;
        }
        let seq = inner.next;
        inner.next += 1;
        inner.entries.insert(key, (seq, instance.clone()));
        inner.order.push_back((seq, key));
        while inner.order.len() > self.capacity {
            if let Some((old, old_key)) = inner.order.pop_front()
                && inner.entries.get(&old_key).is_some_and(|(s, _)| *s == old)
            {
                inner.entries.remove(&old_key);
            }
        }
    }

    /// Forgets the instance `id` of `org` if the version cached is `version`, which is
    /// known to be stale. A later version put meanwhile (by a concurrent call that
    /// committed) stays.
    pub(crate) fn forget(&self, org: OrgId, id: WorkflowId, version: u64) {
        let mut inner = self.lock();
        if inner
            .entries
            .get(&(org, id))
            .is_some_and(|(_, cached)| cached.version == version)
        {
            inner.entries.remove(&(org, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::context::{Principal, ServiceName};

    fn instance(n: u128, version: u64) -> Instance {
        let now = OffsetDateTime::UNIX_EPOCH;
        Instance {
            id: WorkflowId::from_uuid(uuid::Uuid::from_u128(n)),
            org: OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            definition: "support_case".to_owned(),
            definition_version: 1,
            state: "open".to_owned(),
            version,
            assignee: None,
            payload: serde_json::Value::Null,
            created_by: Principal::Service(ServiceName::new("test").unwrap()),
            created_at: now,
            updated_at: now,
            state_entered_at: now,
            due_at: None,
            votes: Vec::new(),
        }
    }

    #[test]
    fn answers_only_the_version_it_holds() {
        let cache = InstanceCache::new(4);
        let a = instance(10, 3);
        cache.put(&a);
        assert_eq!(cache.get(a.org, a.id, 3), Some(a.clone()));
        assert_eq!(cache.get(a.org, a.id, 2), None);
        assert_eq!(cache.get(a.org, a.id, 4), None);
        let elsewhere = OrgId::from_uuid(uuid::Uuid::from_u128(2));
        assert_eq!(cache.get(elsewhere, a.id, 3), None, "another org's key misses");
    }

    #[test]
    fn never_goes_back_to_an_older_version() {
        let cache = InstanceCache::new(4);
        cache.put(&instance(10, 5));
        cache.put(&instance(10, 4));
        let a = instance(10, 5);
        assert_eq!(cache.get(a.org, a.id, 5), Some(a.clone()));
        assert_eq!(cache.get(a.org, a.id, 4), None);
        cache.forget(a.org, a.id, 4);
        assert_eq!(
            cache.get(a.org, a.id, 5),
            Some(a.clone()),
            "only the stale version is forgotten"
        );
        cache.forget(a.org, a.id, 5);
        assert_eq!(cache.get(a.org, a.id, 5), None);
    }

    #[test]
    fn stays_within_its_capacity_evicting_the_oldest_write() {
        let cache = InstanceCache::new(2);
        cache.put(&instance(1, 1));
        cache.put(&instance(2, 1));
        cache.put(&instance(1, 2));
        cache.put(&instance(3, 1));
        let org = instance(1, 1).org;
        let id = |n: u128| WorkflowId::from_uuid(uuid::Uuid::from_u128(n));
        assert!(cache.get(org, id(2), 1).is_none(), "the oldest write went first");
        assert!(cache.get(org, id(1), 2).is_some());
        assert!(cache.get(org, id(3), 1).is_some());
        for n in 4..100 {
            cache.put(&instance(n, 1));
        }
        let inner = cache.lock();
        assert!(inner.entries.len() <= 2 && inner.order.len() <= 2);
    }
}
