//! The `PolicyReplica` port: an authorizer whose in-memory policy follows the
//! [`PolicyStore`](super::PolicyStore)'s revisions, and what roles grant through inheritance.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::RoleName;
use super::{Authorizer, Domain, PolicyChange, PolicyLine, PolicyRule, Revision};
use crate::error::PortalError;

/// One rule that applies to a holder of some roles, and how it reaches them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EffectivePermission {
    /// The rule (an allow, or a deny that wins over any allow).
    pub rule: PolicyRule,
    /// The role chain from a role the holder has to the rule's subject, the held role
    /// first (one element when the holder has the rule's role itself).
    pub via: Vec<String>,
}

/// An [`Authorizer`] that holds its policy in memory as a copy of a
/// [`PolicyStore`](super::PolicyStore), kept at the store's revisions: the writer applies
/// its own change right after the store commits, and a feed follower applies everyone
/// else's.
///
/// `CasbinAuthorizer` in `portal-auth` implements it.
///
/// # Errors
///
/// [`validate`](Self::validate), [`apply_change`](Self::apply_change) and
/// [`replace_all`](Self::replace_all) return `validation.invalid_field` (param `policy`)
/// for lines the authorizer cannot hold (a malformed line, an inheritance cycle, a chain
/// too deep), and then change nothing; `access.policy_failure` if the policy cannot be
/// evaluated at all.
pub trait PolicyReplica: Authorizer {
    /// The revision of the policy checks see now.
    fn revision(&self) -> Revision;

    /// Whether applying `removed` then `added` would leave a policy the authorizer
    /// accepts, without changing anything. A service calls it before writing to the store,
    /// so a line every replica would refuse never reaches the store.
    ///
    /// # Errors
    ///
    /// As the trait documents.
    fn validate(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<(), PortalError>;

    /// Applies a committed change and takes its revision. A change at or below the
    /// current revision was applied already and is skipped.
    ///
    /// # Errors
    ///
    /// As the trait documents.
    fn apply_change(&self, change: &PolicyChange) -> Result<Revision, PortalError>;

    /// Replaces the whole policy with `lines` at `revision` (which may go backwards).
    ///
    /// # Errors
    ///
    /// As the trait documents.
    fn replace_all(&self, revision: Revision, lines: &[PolicyLine]) -> Result<Revision, PortalError>;

    /// The rules that apply in `domain` to a holder of `roles`, through inheritance: the
    /// domain's own rules and, in an org, the template's ([`Domain::AllOrgs`]). See
    /// [`effective_permissions`] for the computation on lines.
    fn permissions(&self, domain: Domain, roles: &[RoleName]) -> Vec<EffectivePermission>;
}

/// The rules that apply to a holder of `roles` in `domain`, computed from that domain's
/// lines (`own`) and the template's (`template`; empty for the platform domain).
///
/// Inheritance (`g` lines of `own` only, as in the model) is followed breadth first, so
/// each rule's `via` is a shortest chain. Rules come sorted by object, action and
/// subject; a rule reached through several roles is listed once.
///
/// ```
/// use portal_core::access::{effective_permissions, Domain, Effect, PolicyLine, PolicyRule};
/// use portal_core::tenancy::RoleName;
///
/// # fn main() -> Result<(), portal_core::PortalError> {
/// let rule = |subject: &str, domain, object: &str| PolicyRule {
///     subject: subject.into(), domain, object: object.into(), action: "read".into(), effect: Effect::Allow,
/// };
/// let org = Domain::Platform; // any domain works the same way
/// let own = [
///     PolicyLine::Inherit { role: "lead".into(), parent: "viewer".into(), domain: org },
///     PolicyLine::Permission(rule("lead", org, "reports")),
/// ];
/// let template = [PolicyLine::Permission(rule("viewer", Domain::AllOrgs, "members"))];
/// let got = effective_permissions(own.iter(), template.iter(), &[RoleName::new("lead")?]);
/// assert_eq!(got.len(), 2);
/// assert_eq!(got[0].rule.object, "members");
/// assert_eq!(got[0].via, ["lead", "viewer"]);
/// # Ok(())
/// # }
/// ```
pub fn effective_permissions<'l>(
    own: impl IntoIterator<Item = &'l PolicyLine>,
    template: impl IntoIterator<Item = &'l PolicyLine>,
    roles: &[RoleName],
) -> Vec<EffectivePermission> {
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut rules: Vec<&PolicyRule> = Vec::new();
    for line in own {
        match line {
            PolicyLine::Permission(rule) => rules.push(rule),
            PolicyLine::Inherit { role, parent, .. } => parents.entry(role).or_default().push(parent),
        }
    }
    rules.extend(template.into_iter().filter_map(|line| match line {
        PolicyLine::Permission(rule) => Some(rule),
        PolicyLine::Inherit { .. } => None,
    }));
    // Breadth first from the held roles: the first chain found to a role is a shortest one.
    let mut chains: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut queue: VecDeque<&str> = VecDeque::new();
    for role in roles {
        if !chains.contains_key(role.as_str()) {
            chains.insert(role.as_str(), vec![role.as_str().to_owned()]);
            queue.push_back(role.as_str());
        }
    }
    while let Some(role) = queue.pop_front() {
        let chain = chains.get(role).cloned().unwrap_or_default();
        for parent in parents.get(role).into_iter().flatten() {
            if !chains.contains_key(parent) {
                let mut longer = chain.clone();
                longer.push((*parent).to_owned());
                chains.insert(parent, longer);
                queue.push_back(parent);
            }
        }
    }
    let mut out: Vec<EffectivePermission> = rules
        .into_iter()
        .filter_map(|rule| {
            chains.get(rule.subject.as_str()).map(|via| EffectivePermission {
                rule: rule.clone(),
                via: via.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.rule.object, &a.rule.action, &a.rule.subject, a.rule.domain).cmp(&(
            &b.rule.object,
            &b.rule.action,
            &b.rule.subject,
            b.rule.domain,
        ))
    });
    out.dedup_by(|a, b| a.rule == b.rule);
    out
}
