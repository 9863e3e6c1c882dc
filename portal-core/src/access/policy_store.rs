//! The `PolicyStore` port: persistence of what roles grant, per domain, with an ordered
//! log of changes that replicas replay.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Domain, PolicyRule};
use crate::store::StoreError;

/// One line of policy, in casbin's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "ptype", rename_all = "snake_case")]
pub enum PolicyLine {
    /// A `p` line: a role's permission (or explicit denial).
    Permission(PolicyRule),
    /// A `g` line between roles: `role` inherits everything `parent` grants, inside `domain`.
    Inherit {
        /// The inheriting role.
        role: String,
        /// The role inherited from.
        parent: String,
        /// Where the inheritance holds.
        domain: Domain,
    },
}

impl PolicyLine {
    /// The domain the line belongs to.
    pub fn domain(&self) -> Domain {
        match self {
            PolicyLine::Permission(rule) => rule.domain,
            PolicyLine::Inherit { domain, .. } => *domain,
        }
    }
}

/// A monotonically increasing number identifying a state of the whole policy.
///
/// A store that was never changed is at [`Revision::ZERO`] (the default); every [`PolicyStore::apply`]
/// that changes a line moves it to the next revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of a store no change was ever applied to.
    pub const ZERO: Revision = Revision(0);

    /// The revision after this one (saturating at `u64::MAX`, which no store reaches).
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }
}

/// One committed change, as replicas receive it.
///
/// It holds only the lines that changed: a line that was added already, or removed while
/// absent, is not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    /// The revision this change produced.
    pub revision: Revision,
    /// Lines added.
    pub added: Vec<PolicyLine>,
    /// Lines removed.
    pub removed: Vec<PolicyLine>,
}

/// Persists policy lines and the ordered log of changes to them.
///
/// Every implementation must pass the conformance suite `portal_core::testing::policy`
/// (feature `testing`; `portal_core::policy_store_conformance!` makes one test per clause).
///
/// The contract:
///
/// - [`apply`](Self::apply) is one atomic step: a reader sees the policy before it or
///   after it, never between. It removes `removed`, then adds `added`, so a line in both
///   lists is present afterwards. It is idempotent per line: adding a line that exists or
///   removing one that does not is not an error and does not count as a change.
/// - An `apply` that changes at least one line produces the next [`Revision`], strictly
///   greater than every revision before it, and records a [`PolicyChange`] holding only
///   the lines that changed. Concurrent calls, from one process or from several replicas
///   sharing one database, are serialized: each gets its own revision, and the change log
///   is in revision order with no gaps.
/// - An `apply` that changes nothing records nothing and returns the current revision.
///   So a retry of a call whose outcome was unknown (a connection lost during `COMMIT`)
///   is harmless, and a revision always names one state of the policy.
/// - [`load`](Self::load) returns every line and the revision of exactly that state,
///   read as one snapshot.
/// - The change log may be trimmed with [`trim_changes`](Self::trim_changes) so it does
///   not grow forever; [`changes_since`](Self::changes_since) of a revision whose later
///   changes are no longer all kept answers `None`, and the caller reloads with `load`.
///
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] (retry later; the transaction was
/// rolled back, except after a connection lost during `COMMIT`, where the outcome is
/// unknown and a retry of `apply` is safe because it is idempotent) or
/// [`StoreError::Backend`]. A stored line or change that cannot be decoded is
/// [`StoreError::Corrupt`]. [`apply`](Self::apply) commits all of a change or none of it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// Every line and the revision they form, read as one snapshot. Lines come in no
    /// particular order.
    ///
    /// Unbounded on purpose (issue 18): an authorizer must see every line to decide, so
    /// this internal read takes no page; it is never answered to a client.
    ///
    /// # Errors
    ///
    /// As the trait documents.
    async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError>;

    /// The lines of one domain, in no particular order. A line written in
    /// [`Domain::AllOrgs`] belongs to that domain only, not to every org's.
    ///
    /// Unbounded on purpose, as [`load`](Self::load): the policy of one domain is read
    /// whole to check or derive it; what a client is answered from it is paged.
    ///
    /// # Errors
    ///
    /// As the trait documents.
    async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError>;

    /// Removes `removed`, then adds `added`, in one atomic step, and returns the revision
    /// of the resulting policy: a new one if any line changed, else the current one.
    /// Adding a line that exists or removing one that does not is not an error; a line
    /// given twice counts once.
    ///
    /// # Errors
    ///
    /// As the trait documents; on an error nothing was written (but see
    /// [`StoreError::Unavailable`] for a lost `COMMIT`).
    async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError>;

    /// The changes committed after `revision`, in revision order (empty if `revision` is
    /// the current one or later), or `None` if the log was trimmed past `revision` and
    /// no longer holds all of them: the caller then reloads everything with
    /// [`load`](Self::load).
    ///
    /// # Errors
    ///
    /// As the trait documents.
    async fn changes_since(&self, revision: Revision) -> Result<Option<Vec<PolicyChange>>, StoreError>;

    /// Forgets the changes up to and including `through` (or up to the current revision,
    /// if `through` is later), keeping the lines themselves. Afterwards
    /// [`changes_since`](Self::changes_since) answers `None` for any revision before
    /// `through`. Trimming to a revision already trimmed is not an error and changes
    /// nothing.
    ///
    /// Hosts call it from time to time with a revision every replica has passed (or
    /// accept that a replica that lags further behind reloads everything).
    ///
    /// # Errors
    ///
    /// As the trait documents.
    async fn trim_changes(&self, through: Revision) -> Result<(), StoreError>;
}
