//! Access: the shared vocabulary of the question "may this actor do this, here?" and of
//! its answer, and the ports that answer it.
//!
//! This module is the bottom of the crate with [`principal`](crate::principal): it names
//! roles ([`RoleName`], [`Name`]), API key [`Scope`]s, [`Permission`]s (every one a
//! built-in service asks is in [`permissions`]), the built-in role table
//! ([`BUILTIN_ROLES`]), requests and [`Decision`]s with their reasons, and the
//! [`Authorizer`], [`PolicyStore`], [`PolicyFeed`] and [`PolicyReplica`] ports. It imports
//! no service: the services decide through the [`Gate`](crate::gate::Gate), which is built
//! on these.
//!
//! Roles are *assigned* in memberships (the [`TenancyStore`](crate::TenancyStore) is the
//! one source of truth for who holds which role in which org, so removing a member takes
//! effect at once on every replica). What a role *grants* is policy: the [`Authorizer`]
//! holds it in memory and answers without I/O. The gate reads the actor's membership,
//! then asks the authorizer with the actor's roles in the [`AccessRequest`]. An API key
//! is the exception: it holds no roles, and the gate allows it exactly the scopes its
//! request context carries, in its own org.
//!
//! The [`PolicyStore`] persists the policy with an ordered log of changes, and a
//! [`PolicyFeed`] delivers the changes other replicas commit, so every replica's
//! authorizer follows the same sequence of revisions.

mod builtin;
mod name;
pub mod permissions;
mod policy_feed;
mod policy_store;
mod replica;
mod role;
mod role_table;
mod scope;
mod support_access;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{BoxError, ErrorCode, PortalError};
use crate::ids::{OrgId, ParseIdError};
use crate::principal::Principal;

pub use builtin::{BUILTIN_ROLES, BuiltinRole, PLATFORM_USER_GRANTS, builtin_role, is_builtin_role};
pub use name::Name;
#[cfg(feature = "mock")]
pub use policy_feed::MockPolicyFeed;
pub use policy_feed::{PolicyEvent, PolicyFeed};
#[cfg(feature = "mock")]
pub use policy_store::MockPolicyStore;
pub use policy_store::{PolicyChange, PolicyLine, PolicyStore, Revision};
pub use replica::{EffectivePermission, PolicyReplica, effective_permissions};
pub use role::RoleName;
pub use role_table::RoleTableAuthorizer;
pub(crate) use role_table::matches as pattern_matches;
pub use scope::{ParseScopeError, Scope};
pub use support_access::{SUPPORT_READONLY_ROLE, SUPPORT_ROLE, SupportAccess};

/// Where a permission applies: one organization, or the vendor's own platform (sign-up,
/// creating orgs, support staff).
///
/// The string form (casbin's `dom`) is `org_…`, `platform`, or `*` for
/// [`AllOrgs`](Domain::AllOrgs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "org")]
pub enum Domain {
    /// The vendor's platform, outside any customer org.
    Platform,
    /// One customer organization.
    Org(OrgId),
    /// The policy template: a rule written here applies in every organization (the
    /// built-in roles). It is a place to write policy, not to act: a request made here
    /// is denied.
    AllOrgs,
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Platform => f.write_str("platform"),
            Domain::Org(org) => write!(f, "{org}"),
            Domain::AllOrgs => f.write_str("*"),
        }
    }
}

/// Parses the string form: `platform`, `*` or an org id.
impl FromStr for Domain {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "platform" => Ok(Domain::Platform),
            "*" => Ok(Domain::AllOrgs),
            _ => s.parse().map(Domain::Org),
        }
    }
}

/// A permission: an action on an object, in casbin's terms (`obj`, `act`).
///
/// Objects are paths such as `members` or `cases/wf_…`; policies may use patterns such
/// as `cases/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Permission {
    /// The object, such as `members`.
    pub object: &'static str,
    /// The action, such as `write`.
    pub action: &'static str,
}

impl Permission {
    /// A permission on `object` for `action`.
    pub const fn new(object: &'static str, action: &'static str) -> Self {
        Self { object, action }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.object, self.action)
    }
}

/// One question for the [`Authorizer`].
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// Where.
    pub domain: Domain,
    /// The roles `principal` holds in `domain`, read from their membership.
    pub roles: &'a [RoleName],
    /// The object, such as `members` or `roles/owner`.
    pub object: &'a str,
    /// The action, such as `write`.
    pub action: &'a str,
}

/// Allow or deny an action: the effect of a policy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The rule grants the action.
    Allow,
    /// The rule forbids the action, whatever else grants it.
    Deny,
}

/// One permission rule, casbin's `p, sub, dom, obj, act, eft` line.
///
/// Its names are [`Name`]s, shared text, so that the rule a [`Grant`] or a [`Denial`]
/// names can be the authorizer's own copy; build one with `.into()` from `&str` or
/// `String`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRule {
    /// The role (or, for built-in actors, the principal kind) the rule is for.
    pub subject: Name,
    /// Where it applies.
    pub domain: Domain,
    /// The object or object pattern.
    pub object: Name,
    /// The action or `*`.
    pub action: Name,
    /// Allow or deny.
    pub effect: Effect,
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        };
        write!(
            f,
            "p, {}, {}, {}, {}, {effect}",
            self.subject, self.domain, self.object, self.action
        )
    }
}

/// The answer to an [`AccessRequest`], with its reasons.
///
/// Exhaustive on purpose: a caller must handle both outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Allowed.
    Allowed(Grant),
    /// Denied.
    Denied(Denial),
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }

    /// The form a customer may see: the outcome and, for a denial, the stable code.
    ///
    /// The full decision (rules, roles, suggested roles) is for support and diagnostics;
    /// it names policy the customer should not learn from an error.
    ///
    /// ```
    /// use portal_core::access::{Decision, Denial, DenialReason};
    /// use portal_core::ErrorCode;
    ///
    /// let denied = Decision::Denied(Denial {
    ///     reason: DenialReason::NoGrant,
    ///     roles: Vec::new(),
    ///     would_grant: vec!["admin".into()],
    /// });
    /// let shown = denied.redacted();
    /// assert!(!shown.allowed);
    /// assert_eq!(shown.code, Some(ErrorCode::AccessDenied));
    /// ```
    pub fn redacted(&self) -> RedactedDecision {
        match self {
            Decision::Allowed(_) => RedactedDecision {
                allowed: true,
                code: None,
            },
            Decision::Denied(_) => RedactedDecision {
                allowed: false,
                code: Some(ErrorCode::AccessDenied),
            },
        }
    }
}

/// A [`Decision`] with its reasons removed, for customers: see [`Decision::redacted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RedactedDecision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// `access.denied` for a denial; `None` for an allow.
    pub code: Option<ErrorCode>,
}

/// Why a request was allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The rule that granted it.
    pub rule: PolicyRule,
    /// The role chain from one of the actor's roles to the rule's subject, first the
    /// role the actor holds (one element when the actor holds the rule's role itself).
    pub via: Vec<Name>,
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// What decided it.
    pub reason: DenialReason,
    /// The actor's roles in the domain.
    pub roles: Vec<RoleName>,
    /// Roles that would grant the request, for a suggested fix.
    pub would_grant: Vec<Name>,
}

/// What decided a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DenialReason {
    /// An explicit deny rule matched; it wins over any allow.
    ExplicitDeny {
        /// The rule.
        rule: PolicyRule,
    },
    /// No rule granted the request (default deny).
    NoGrant,
}

/// The authorizer could not evaluate its policy.
#[derive(Debug, thiserror::Error)]
#[error("the permission policy could not be evaluated: {message}")]
pub struct AccessError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl AccessError {
    /// An evaluation failure with a message and an optional cause.
    pub fn new(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            message: message.into(),
            source,
        }
    }
}

impl From<AccessError> for PortalError {
    fn from(err: AccessError) -> Self {
        PortalError::new(ErrorCode::PolicyFailure, "the permission policy could not be evaluated").with_source(err)
    }
}

/// Decides access requests. In-process and synchronous: policies are loaded ahead of
/// time, and a check never does I/O.
///
/// # Errors
///
/// [`check`](Self::check) returns [`AccessError`] only when the policy itself cannot be
/// evaluated (a corrupt rule, a failing fallback engine); a denial is an `Ok`
/// [`Decision::Denied`], never an error.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Authorizer: Send + Sync + 'static {
    /// Decides one request.
    fn check<'a>(&self, request: &AccessRequest<'a>) -> Result<Decision, AccessError>;

    /// The deny rules that apply to a holder of `roles` in `domain` (the domain's own and
    /// the template's, through inheritance). The [`Gate`](crate::gate::Gate) weighs a
    /// request for a pattern (an API key's scope `cases/* *`, a custom role's grant `*`)
    /// against every one of them, not only against those matching the pattern's text.
    /// None by default, for authorizers without deny rules (such as
    /// [`RoleTableAuthorizer`]).
    ///
    /// # Errors
    ///
    /// [`AccessError`] when the policy cannot be evaluated.
    fn deny_rules(&self, domain: Domain, roles: &[RoleName]) -> Result<Vec<PolicyRule>, AccessError> {
        let _ = (domain, roles);
        Ok(Vec::new())
    }
}
