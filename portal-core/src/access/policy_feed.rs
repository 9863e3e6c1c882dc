//! The `PolicyFeed` port: how a replica learns of policy changes other replicas commit.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{PolicyChange, PolicyLine, Revision};
use crate::store::StoreError;

/// What a [`PolicyFeed`] delivers: one change to apply, or the whole policy to replace
/// the replica's copy with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PolicyEvent {
    /// The next committed change: apply it on top of the previous revision.
    Change(PolicyChange),
    /// The feed may have missed changes (its connection dropped, or the change log was
    /// trimmed past them), so here is every line at `revision`: replace the policy.
    Resync {
        /// The revision the lines form.
        revision: Revision,
        /// Every line of the policy.
        lines: Vec<PolicyLine>,
    },
}

impl PolicyEvent {
    /// The revision the policy is at once the event is applied.
    pub fn revision(&self) -> Revision {
        match self {
            PolicyEvent::Change(change) => change.revision,
            PolicyEvent::Resync { revision, .. } => *revision,
        }
    }
}

/// An ordered stream of policy changes committed to a [`PolicyStore`](super::PolicyStore),
/// from any replica, for keeping an in-memory copy (an [`Authorizer`](super::Authorizer)'s
/// index) in step.
///
/// A feed starts after a revision its consumer already holds (usually the one
/// [`PolicyStore::load`](super::PolicyStore::load) returned) and guarantees:
///
/// - events come in revision order, each [`PolicyEvent::Change`] exactly one revision
///   after the event before it (the first one after the starting revision);
/// - when it cannot guarantee that (it lost its connection and may have missed
///   notifications, or the store's log no longer holds the missing changes) it delivers a
///   [`PolicyEvent::Resync`] with the whole policy, and continues after its revision;
/// - no event is at or below a revision already delivered, except that a `Resync` may be
///   at the revision the consumer holds (applying it then changes nothing).
///
/// Implementations: `PgPolicyListener` (Postgres `LISTEN`/`NOTIFY`, for replicas
/// sharing one database) and `InMemoryPolicyFeed` in `portal-adapters`.
///
/// # Errors
///
/// [`next`](Self::next) returns [`StoreError::Unavailable`] while the backend cannot be
/// reached; the feed stays usable, and the next call tries again (a connection that was
/// lost is followed by a `Resync`). Other [`StoreError`]s are as the store's.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PolicyFeed: Send + 'static {
    /// Waits for the next event.
    ///
    /// Cancel-safe: dropping the returned future (to time out, say) loses no event.
    ///
    /// # Errors
    ///
    /// As the trait documents.
    async fn next(&mut self) -> Result<PolicyEvent, StoreError>;

    /// The revision of the last event delivered, or the starting revision before the
    /// first.
    fn revision(&self) -> Revision;
}
