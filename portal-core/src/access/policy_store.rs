//! The `PolicyStore` port: persistence of what roles grant, per domain.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revision(pub u64);

/// One committed change, as replicas receive it.
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
/// # Errors
///
/// Every method may return [`StoreError::Unavailable`] or [`StoreError::Backend`].
/// [`apply`](Self::apply) commits all of a change or none of it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// Every line and the revision they form.
    async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError>;

    /// The lines of one domain.
    async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError>;

    /// Adds and removes lines in one atomic step and returns the new revision. Adding a
    /// line that exists or removing one that does not is not an error.
    async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError>;

    /// The changes committed after `revision`, in order.
    async fn changes_since(&self, revision: Revision) -> Result<Vec<PolicyChange>, StoreError>;
}
