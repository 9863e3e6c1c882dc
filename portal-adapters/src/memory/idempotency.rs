//! `InMemoryIdempotencyStore`: the reference `IdempotencyStore`, one mutex-guarded map.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::context::IdempotencyKey;
use portal_core::idempotency::{Claim, Hold, IdempotencyScope, IdempotencyStore, StoredAnswer};
use portal_core::store::StoreError;
use time::OffsetDateTime;

/// One key's record.
#[derive(Debug, Clone)]
struct Record {
    fingerprint: [u8; 32],
    /// `Some` while a request holds the key; `None` once it completed.
    hold: Option<Hold>,
    answer: Option<StoredAnswer>,
    /// The hold's deadline while held, else the record's expiry.
    expires_at: OffsetDateTime,
}

type Scoped = (IdempotencyScope, IdempotencyKey);

/// An [`IdempotencyStore`] in one process's memory.
///
/// Every method takes the one lock for its whole call, so each is atomic; records live as
/// long as the store, so replicas of a service do not share them (use the SQLite or
/// Postgres store for that).
#[derive(Default)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<HashMap<Scoped, Record>>,
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the records. No method panics while holding the lock with a half-changed
    /// map, so a lock poisoned elsewhere is safe to take over.
    fn lock(&self) -> MutexGuard<'_, HashMap<Scoped, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryIdempotencyStore")
            .field("records", &self.lock().len())
            .finish()
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        fingerprint: [u8; 32],
        hold: Hold,
        now: OffsetDateTime,
        hold_until: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let mut records = self.lock();
        let scoped = (scope.clone(), key.clone());
        match records.get(&scoped) {
            Some(record) if record.expires_at > now => {
                return Ok(match record.hold {
                    Some(_) => Claim::InFlight {
                        fingerprint: record.fingerprint,
                    },
                    None => Claim::Done {
                        fingerprint: record.fingerprint,
                        answer: record.answer.clone(),
                    },
                });
            }
            _ => {}
        }
        records.insert(
            scoped,
            Record {
                fingerprint,
                hold: Some(hold),
                answer: None,
                expires_at: hold_until,
            },
        );
        Ok(Claim::Held)
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        hold: Hold,
        answer: Option<StoredAnswer>,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut records = self.lock();
        match records.get_mut(&(scope.clone(), key.clone())) {
            Some(record) if record.hold == Some(hold) => {
                record.hold = None;
                record.answer = answer;
                record.expires_at = expires_at;
                Ok(())
            }
            _ => Err(StoreError::NotFound {
                entity: "idempotency_hold",
            }),
        }
    }

    async fn release(&self, scope: &IdempotencyScope, key: &IdempotencyKey, hold: Hold) -> Result<(), StoreError> {
        let mut records = self.lock();
        let scoped = (scope.clone(), key.clone());
        if records.get(&scoped).is_some_and(|record| record.hold == Some(hold)) {
            records.remove(&scoped);
        }
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut records = self.lock();
        let before = records.len();
        records.retain(|_, record| record.expires_at > now);
        Ok((before - records.len()) as u64)
    }
}
