//! The idempotency keys a service is working on right now, so that a duplicate arriving
//! meanwhile is told `idempotency.in_flight` without a store call.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::context::{IdempotencyKey, Principal};
use crate::ids::OrgId;

/// A key as it is scoped: the org, the principal who sent it, the key.
type Scoped = (OrgId, Principal, IdempotencyKey);

/// The keys held by requests in progress in this process (a service and its clones).
///
/// A key is held from before a request's first check until its answer is known, and
/// given back when the [`Hold`] drops: on success, on any error, and when the request's
/// future is dropped half-way (a client that went away), so nothing outlives the request.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    keys: Mutex<HashSet<Scoped>>,
}

impl InFlight {
    /// Holds `key` until the returned [`Hold`] drops, or answers `None` if a request in
    /// this process already holds it.
    pub(super) fn hold(&self, org: OrgId, principal: &Principal, key: &IdempotencyKey) -> Option<Hold<'_>> {
        let scoped = (org, principal.clone(), key.clone());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.contains(&scoped) {
            return None;
        }
        keys.insert(scoped.clone());
        Some(Hold {
            owner: self,
            key: Some(scoped),
        })
    }
}

/// One request's hold on its key; dropping it gives the key back.
#[derive(Debug)]
pub(super) struct Hold<'a> {
    owner: &'a InFlight,
    key: Option<Scoped>,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.owner
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_held_once_and_given_back_on_drop() {
        let in_flight = InFlight::default();
        let org = OrgId::from_uuid(uuid::Uuid::from_u128(1));
        let ada = Principal::User(crate::ids::UserId::from_uuid(uuid::Uuid::from_u128(2)));
        let bob = Principal::User(crate::ids::UserId::from_uuid(uuid::Uuid::from_u128(3)));
        let key = IdempotencyKey::new("k").unwrap();
        let hold = in_flight.hold(org, &ada, &key).expect("a free key is held");
        assert!(in_flight.hold(org, &ada, &key).is_none(), "a held key is refused");
        assert!(
            in_flight.hold(org, &bob, &key).is_some(),
            "another principal's key is another key"
        );
        let other_org = OrgId::from_uuid(uuid::Uuid::from_u128(4));
        assert!(in_flight.hold(other_org, &ada, &key).is_some(), "so is another org's");
        drop(hold);
        assert!(
            in_flight.hold(org, &ada, &key).is_some(),
            "a dropped hold gives the key back"
        );
    }
}
