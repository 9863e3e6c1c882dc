//! `InMemoryExternalIdentityStore`: the reference `ExternalIdentityStore`, one mutex-guarded map.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::identity::{ExternalIdentity, ExternalIdentityStore};
use portal_core::ids::UserId;
use portal_core::store::{Conflict, StoreError};

/// The map's key: `(issuer, subject)`.
type Key = (String, String);

/// An [`ExternalIdentityStore`] that keeps links in memory, keyed by `(issuer, subject)`.
///
/// Every method takes the one lock for its whole call, so each is atomic. Nothing is
/// persisted; the links live as long as the store.
#[derive(Default)]
pub struct InMemoryExternalIdentityStore {
    links: Mutex<BTreeMap<Key, ExternalIdentity>>,
}

impl InMemoryExternalIdentityStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the links. No method panics while holding the lock with a half-changed map,
    /// so a lock poisoned elsewhere is safe to take over.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, ExternalIdentity>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryExternalIdentityStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryExternalIdentityStore")
            .field("links", &self.lock().len())
            .finish()
    }
}

fn key(issuer: &str, subject: &str) -> Key {
    (issuer.to_owned(), subject.to_owned())
}

#[async_trait]
impl ExternalIdentityStore for InMemoryExternalIdentityStore {
    async fn link(&self, identity: &ExternalIdentity) -> Result<(), StoreError> {
        let mut links = self.lock();
        let key = key(&identity.issuer, &identity.subject);
        if links.contains_key(&key) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists {
                entity: "external_identity",
            }));
        }
        links.insert(key, identity.clone());
        Ok(())
    }

    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<ExternalIdentity>, StoreError> {
        Ok(self.lock().get(&key(issuer, subject)).cloned())
    }

    async fn list_for_user(
        &self,
        user: UserId,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<ExternalIdentity>, StoreError> {
        // The map is ordered by (issuer, subject), byte for byte: the order the port asks for.
        Ok(self
            .lock()
            .iter()
            .filter(|(k, link)| link.user == user && after.as_ref().is_none_or(|a| *k > a))
            .take(limit)
            .map(|(_, link)| link.clone())
            .collect())
    }

    async fn unlink(&self, issuer: &str, subject: &str) -> Result<ExternalIdentity, StoreError> {
        self.lock().remove(&key(issuer, subject)).ok_or(StoreError::NotFound {
            entity: "external_identity",
        })
    }
}
