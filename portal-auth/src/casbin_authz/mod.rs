//! `CasbinAuthorizer`: casbin's model and policy format, decided by a compiled index in
//! well under a microsecond, with the same decisions as casbin's own `Enforcer`.
//!
//! # The model
//!
//! [`MODEL`] is RBAC with domains. The domain is an org (`org_…`) or `platform`; a
//! policy line is `p, role, dom, obj, act, allow|deny` or `g, role, parent, dom`; deny
//! wins over allow; inheritance is transitive inside its domain; objects are exact, `*`,
//! or `keyMatch3` patterns (`cases/*`, `cases/{id}`); actions are exact or `*`.
//!
//! **Built-in roles live in a template domain, `*`** ([`Domain::AllOrgs`]). A `p` line
//! there applies in every org, so the built-in roles ([`builtin_policy`]) are written
//! once, not once per org. An org adds its own lines on top: custom roles, `g` lines that
//! make a custom role inherit a built-in one, extra grants, and deny lines (which also win
//! over the template's allows). The template holds `p` lines only: a `g` line in `*` is
//! rejected, so that a change to the template never touches an org's inheritance
//! closure, and so that casbin needs no domain-matching function to agree. The template
//! does not apply in `platform`, whose lines are its own.
//!
//! **Role assignments are not policy.** Who holds which role comes from memberships
//! ([`AccessRequest::roles`]); the policy says what roles grant. Where casbin's Enforcer
//! must see assignments, [`request_links`] gives the `g, <principal>, <role>, <dom>`
//! lines of one request. Every signed-in user also holds the role [`SIGNED_IN_ROLE`]
//! (`user`) in `platform`, which is how `orgs create` is granted to everyone.
//!
//! **Principals.** A [`Principal::Service`] is the host's own trusted code and is allowed
//! everything, as with `RoleTableAuthorizer`; its grant names the pseudo-rule
//! `p, service, <dom>, *, *, allow`. A [`Principal::ApiKey`] holds the request's roles
//! in its own org only and nothing anywhere else; the services never ask the authorizer
//! about keys: `portal_core::access::decide` decides a key by its scopes alone, in its
//! own org. A request in
//! [`Domain::AllOrgs`] is denied: the template is for writing policy, not for acting.
//!
//! # The index
//!
//! Each domain compiles into one immutable `DomainIndex` of two allocations: its names
//! (role names sorted, a role's id being its position; exact objects sorted; pattern
//! objects; actions) and one table of words (each role's inheritance closure as a bitset
//! and its parents, each exact object's range of rules, one word per rule in a canonical
//! order). Strings and compiled patterns are interned across domains. All domains together form a snapshot held
//! in an [`ArcSwap`], which a check loads without a lock; a check touches the request's
//! domain and the template only, so its cost does not grow with the number of orgs.
//!
//! [`apply`](CasbinAuthorizer::apply) recompiles only the domains a change touches and
//! swaps in a new snapshot that shares every other domain (orgs sit in a fixed 16 × 16 ×
//! 16 trie, so a change copies three arrays of 16 pointers and one small leaf per org it
//! touches, each array once however many of its orgs change). Changes are all or nothing:
//! a bad line leaves the policy as it was.
//!
//! # What the index does not compile
//!
//! [`CasbinAuthorizer::with_model`] takes any casbin model text. When it is [`MODEL`]
//! (the same sections and values, up to whitespace outside string literals) checks run
//! on the index; any other model runs on casbin's `Enforcer`, including models that use
//! other matcher functions (`keyMatch2`, `regexMatch`, `globMatch`, ...), ABAC
//! expressions, other effects (priority, deny-only), several `p`/`g` types, or domain and
//! role matching. The fallback needs the portal's line shape (`r` of 4 values, `p` of 5,
//! `g` of 3), checks one request at a time, and explains coarsely: an allow names the
//! request rather than the granting rule, and a denial is always `NoGrant` with no
//! suggested roles.
//!
//! The index itself refuses what would make it disagree with casbin: object characters
//! that casbin's `keyMatch3` would read as regex syntax (see the `pattern` module), role
//! names that look like principals (`usr_…`, `key_…`), inheritance cycles, and chains
//! longer than [`MAX_INHERITANCE_DEPTH`], where casbin's role manager stops searching.
//!
//! # Explanations
//!
//! [`check`](Authorizer::check) explains in the same call: an allow names the granting
//! rule and the role chain from the actor's role to the rule's subject; a denial says
//! whether a deny rule decided it (and which) or nothing granted it, the actor's roles,
//! and which roles of the org would grant it to someone holding that role alone. That is
//! the full form, for support and diagnostics; [`Decision::redacted`] is what a customer
//! may see. [`CasbinAuthorizer::is_allowed`] decides without explaining.
//!
//! The names in an explanation (the rule's subject, object and action, the chain, the
//! suggested roles) are the index's own interned text, handed out as [`Name`] clones that
//! count a reference: explaining an allow allocates only the `via` vector, and a denial
//! its `roles` and `would_grant` vectors.

mod fallback;
mod index;
mod model;
mod pattern;
mod replica;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use casbin::DefaultModel;
use portal_core::access::{
    AccessError, AccessRequest, Authorizer, BUILTIN_ROLES, Decision, Denial, DenialReason, Domain, Effect, Grant, Name,
    PLATFORM_USER_GRANTS, Permission, PolicyChange, PolicyLine, PolicyRule, PolicyStore, Revision,
};
use portal_core::{ErrorCode, PortalError, Principal, StoreError};

pub use model::{MODEL, SIGNED_IN_ROLE, casbin_request, casbin_rule, enforcer, request_links};
pub use validate::MAX_INHERITANCE_DEPTH;

use fallback::Fallback;
use index::{DomainIndex, Interner, Pending, Snapshot, Source, Verdict};
use model::actor_roles;

/// The policy could not be changed or loaded; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A line holds a name, object or action the model does not accept.
    #[error("policy line `{line}` is invalid: {reason}")]
    InvalidLine {
        /// The line, in casbin's form.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Role inheritance in a domain would go round in a circle.
    #[error("role inheritance in `{domain}` forms a cycle through `{role}`")]
    InheritanceCycle {
        /// The domain.
        domain: Domain,
        /// A role on the cycle.
        role: String,
    },
    /// A role inheritance chain is longer than [`MAX_INHERITANCE_DEPTH`].
    #[error("role inheritance in `{domain}` is more than {max} levels deep below `{role}`")]
    InheritanceTooDeep {
        /// The domain.
        domain: Domain,
        /// The role at the start of the chain.
        role: String,
        /// The limit.
        max: usize,
    },
    /// The model's request, policy or role definition does not have the portal's shape.
    #[error("the casbin model is not usable: {reason}")]
    UnsupportedModel {
        /// What is missing.
        reason: &'static str,
    },
    /// casbin refused the model or the policy.
    #[error("casbin refused the model or the policy")]
    Casbin {
        /// casbin's error.
        #[source]
        source: casbin::Error,
    },
    /// The policy store failed.
    #[error("the policy store failed")]
    Store(#[from] StoreError),
}

impl PolicyError {
    fn invalid(line: &PolicyLine, reason: &str) -> Self {
        Self::InvalidLine {
            line: show(line),
            reason: reason.to_owned(),
        }
    }

    fn invalid_text(text: &str, reason: &str) -> Self {
        Self::InvalidLine {
            line: text.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn model(source: casbin::Error) -> Self {
        Self::Casbin { source }
    }
}

/// A line in casbin's CSV form, for messages.
fn show(line: &PolicyLine) -> String {
    let (ptype, values) = casbin_rule(line);
    format!("{ptype}, {}", values.join(", "))
}

/// Bad lines are the caller's input (`validation.invalid_field`, param `policy`); a
/// failing store keeps its own code; anything else is `access.policy_failure`.
impl From<PolicyError> for PortalError {
    fn from(err: PolicyError) -> Self {
        match err {
            PolicyError::InvalidLine { .. }
            | PolicyError::InheritanceCycle { .. }
            | PolicyError::InheritanceTooDeep { .. } => PortalError::invalid_field("policy", err.to_string()),
            PolicyError::Store(store) => PortalError::from(store),
            other => PortalError::new(ErrorCode::PolicyFailure, "the permission policy could not be evaluated")
                .with_source(other),
        }
    }
}

/// The built-in roles as template lines (domain `*`), and what every signed-in user may
/// do on the platform (`p, user, platform, …`): written from the one table
/// [`BUILTIN_ROLES`] (and [`PLATFORM_USER_GRANTS`]) that `RoleTableAuthorizer` decides
/// from, so the two authorizers grant the built-in roles alike.
pub fn builtin_policy() -> Vec<PolicyLine> {
    let allow = |subject: &'static str, domain, grant: &Permission| {
        PolicyLine::Permission(PolicyRule {
            subject: Name::from_static(subject),
            domain,
            object: Name::from_static(grant.object),
            action: Name::from_static(grant.action),
            effect: Effect::Allow,
        })
    };
    let template = BUILTIN_ROLES
        .iter()
        .flat_map(|role| role.grants.iter().map(|grant| allow(role.name, Domain::AllOrgs, grant)));
    let platform = PLATFORM_USER_GRANTS
        .iter()
        .map(|grant| allow(SIGNED_IN_ROLE, Domain::Platform, grant));
    template.chain(platform).collect()
}

/// An [`Authorizer`] on casbin's model and policy format, answering from a compiled
/// index (or, for models the index does not compile, from casbin's `Enforcer`).
///
/// ```
/// use portal_auth::casbin_authz::{builtin_policy, CasbinAuthorizer};
/// use portal_core::access::{AccessRequest, Authorizer, Decision, Domain, Effect, PolicyLine, PolicyRule};
/// use portal_core::ids::{OrgId, SequentialIds, UserId};
/// use portal_core::tenancy::RoleName;
/// use portal_core::Principal;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ids = SequentialIds::default();
/// let now = time::OffsetDateTime::UNIX_EPOCH;
/// let (org, user) = (OrgId::generate(&ids, now), Principal::User(UserId::generate(&ids, now)));
/// let authorizer = CasbinAuthorizer::new(&builtin_policy())?;
///
/// // The org adds a custom role that inherits `member` and may read its cases.
/// let support_lead = RoleName::new("support-lead")?;
/// authorizer.apply(
///     &[
///         PolicyLine::Inherit { role: "support-lead".into(), parent: "member".into(), domain: Domain::Org(org) },
///         PolicyLine::Permission(PolicyRule {
///             subject: "support-lead".into(),
///             domain: Domain::Org(org),
///             object: "cases/*".into(),
///             action: "read".into(),
///             effect: Effect::Allow,
///         }),
///     ],
///     &[],
/// )?;
/// let roles = [support_lead];
/// let ask = |object, action| AccessRequest { principal: &user, domain: Domain::Org(org), roles: &roles, object, action };
///
/// let Decision::Allowed(grant) = authorizer.check(&ask("members", "read"))? else { panic!("denied") };
/// assert_eq!(grant.via, ["support-lead", "member"]);
/// assert!(authorizer.check(&ask("cases/wf_1", "read"))?.is_allowed());
/// let Decision::Denied(denial) = authorizer.check(&ask("members", "delete"))? else { panic!("allowed") };
/// assert_eq!(denial.would_grant, ["admin", "owner"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CasbinAuthorizer {
    engine: Engine,
}

#[derive(Debug)]
enum Engine {
    Index(IndexEngine),
    Enforcer(Box<Fallback>),
}

#[derive(Debug)]
struct IndexEngine {
    snapshot: ArcSwap<Snapshot>,
    /// Serializes changes; checks never take it.
    writer: Mutex<Interner>,
}

impl CasbinAuthorizer {
    /// An authorizer on [`MODEL`] holding `lines`, at revision 0.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InvalidLine`], [`PolicyError::InheritanceCycle`] or
    /// [`PolicyError::InheritanceTooDeep`] for lines the index does not accept.
    pub fn new<'l>(lines: impl IntoIterator<Item = &'l PolicyLine>) -> Result<Self, PolicyError> {
        Self::compiled(lines, Revision(0))
    }

    fn compiled<'l>(lines: impl IntoIterator<Item = &'l PolicyLine>, revision: Revision) -> Result<Self, PolicyError> {
        let engine = IndexEngine {
            snapshot: ArcSwap::from_pointee(Snapshot::empty(revision)),
            writer: Mutex::new(Interner::default()),
        };
        let lines: Vec<&PolicyLine> = lines.into_iter().collect();
        engine.change(lines.iter().copied(), std::iter::empty(), Some(revision), true)?;
        Ok(Self {
            engine: Engine::Index(engine),
        })
    }

    /// An authorizer on [`MODEL`] holding everything `store` holds, at the store's revision.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Store`] if the store fails; as [`new`](Self::new) for bad lines.
    pub async fn from_store(store: &dyn PolicyStore) -> Result<Self, PolicyError> {
        let (revision, lines) = store.load().await?;
        Self::compiled(&lines, revision)
    }

    /// An authorizer on any casbin model: the index when `model_text` is [`MODEL`],
    /// casbin's `Enforcer` otherwise (see the module docs for what falls back).
    ///
    /// # Errors
    ///
    /// [`PolicyError::Casbin`] if the model does not parse;
    /// [`PolicyError::UnsupportedModel`] if its request, policy or role definition does
    /// not take the portal's lines; as [`new`](Self::new) for bad lines.
    pub async fn with_model(model_text: &str, lines: &[PolicyLine]) -> Result<Self, PolicyError> {
        let parsed = DefaultModel::from_str(model_text).await.map_err(PolicyError::model)?;
        if model::is_portal_model(&parsed).await? {
            return Self::new(lines);
        }
        for line in lines {
            validate::fallback_line(line)?;
        }
        let enforcer = model::enforcer(model_text, lines).await?;
        if !model::has_portal_shape(&enforcer) {
            return Err(PolicyError::UnsupportedModel {
                reason: "the model needs `r = sub, dom, obj, act`, `p` of five values ending with `eft`, and `g = _, _, _`",
            });
        }
        Ok(Self {
            engine: Engine::Enforcer(Box::new(Fallback::new(enforcer, Revision(0)))),
        })
    }

    /// Whether checks run on the compiled index (rather than casbin's Enforcer).
    pub fn is_compiled(&self) -> bool {
        matches!(self.engine, Engine::Index(_))
    }

    /// The revision of the policy checks see now.
    pub fn revision(&self) -> Revision {
        match &self.engine {
            Engine::Index(engine) => engine.snapshot.load().revision,
            Engine::Enforcer(fallback) => fallback.revision(),
        }
    }

    /// Removes `removed`, then adds `added`, in one step, and returns the next revision.
    /// Only the domains the lines belong to are recompiled; checks running meanwhile see
    /// the policy before or after, never between. Removing a line that is not there, or
    /// adding one that is, is not an error.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new) for bad added lines; the policy is then unchanged.
    pub fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, PolicyError> {
        match &self.engine {
            Engine::Index(engine) => engine.change(added.iter(), removed.iter(), None, false),
            Engine::Enforcer(fallback) => fallback.apply(added, removed, None),
        }
    }

    /// Applies a change read from a [`PolicyStore`] and takes its revision. A change at or
    /// below the current revision was applied already and is skipped.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub fn apply_change(&self, change: &PolicyChange) -> Result<Revision, PolicyError> {
        match &self.engine {
            Engine::Index(engine) => {
                engine.change(change.added.iter(), change.removed.iter(), Some(change.revision), false)
            }
            Engine::Enforcer(fallback) => fallback.apply(&change.added, &change.removed, Some(change.revision)),
        }
    }

    /// Replaces the whole policy with `lines` at `revision`, as after a resync with a
    /// [`PolicyStore`] whose change feed was interrupted. The revision may go backwards.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); the policy is then unchanged.
    pub fn replace_all(&self, revision: Revision, lines: &[PolicyLine]) -> Result<Revision, PolicyError> {
        match &self.engine {
            Engine::Index(engine) => engine.change(lines.iter(), std::iter::empty(), Some(revision), true),
            Engine::Enforcer(fallback) => {
                let current = fallback.lines();
                fallback.apply(lines, &current, None)?;
                fallback.set_revision(revision);
                Ok(revision)
            }
        }
    }

    /// Every line of the current policy (in no particular order).
    pub fn lines(&self) -> Vec<PolicyLine> {
        match &self.engine {
            Engine::Index(engine) => engine.snapshot.load().lines(),
            Engine::Enforcer(fallback) => fallback.lines(),
        }
    }

    /// How many lines the current policy holds, and in how many orgs.
    pub fn size(&self) -> (usize, usize) {
        match &self.engine {
            Engine::Index(engine) => {
                let snapshot = engine.snapshot.load();
                (snapshot.len(), snapshot.orgs.len())
            }
            Engine::Enforcer(fallback) => (fallback.lines().len(), 0),
        }
    }

    /// Decides `request` without building an explanation.
    ///
    /// # Errors
    ///
    /// [`AccessError`] only when casbin's Enforcer (the fallback) fails.
    pub fn is_allowed(&self, request: &AccessRequest<'_>) -> Result<bool, AccessError> {
        match &self.engine {
            Engine::Index(engine) => Ok(engine.verdict(request, |_, _, verdict, _| {
                matches!(verdict, Evaluated::Service | Evaluated::Rules(Verdict::Allow(..)))
            })),
            Engine::Enforcer(fallback) => fallback.allows(request),
        }
    }
}

impl Authorizer for CasbinAuthorizer {
    fn check<'a>(&self, request: &AccessRequest<'a>) -> Result<Decision, AccessError> {
        match &self.engine {
            Engine::Index(engine) => Ok(engine.verdict(request, |own, template, verdict, held| {
                explain(request, own, template, verdict, held)
            })),
            Engine::Enforcer(fallback) => fallback.check(request),
        }
    }

    fn deny_rules(
        &self,
        domain: Domain,
        roles: &[portal_core::access::RoleName],
    ) -> Result<Vec<PolicyRule>, AccessError> {
        Ok(portal_core::access::PolicyReplica::permissions(self, domain, roles)
            .into_iter()
            .map(|p| p.rule)
            .filter(|rule| rule.effect == Effect::Deny)
            .collect())
    }
}

/// The domains one change touches, each with its pending lines, in the order first seen.
/// Lines usually come grouped by domain, so the last domain is tried first; a change of a
/// few domains (a grant, a revoke) is searched in order and allocates no map, one of
/// many (a load) through a hash map made when the list grows past [`Touched::SCAN`].
#[derive(Debug, Default)]
struct Touched<'l> {
    list: Vec<(Domain, Pending<'l>)>,
    at: HashMap<Domain, usize, index::FastHash>,
}

impl<'l> Touched<'l> {
    /// Up to this many domains are searched in order.
    const SCAN: usize = 16;

    fn of(&mut self, domain: Domain) -> &mut Pending<'l> {
        let at = match self.list.last() {
            Some((last, _)) if *last == domain => self.list.len() - 1,
            _ if self.list.len() <= Self::SCAN => match self.list.iter().position(|(d, _)| *d == domain) {
                Some(at) => at,
                None => {
                    self.list.push((domain, Pending::default()));
                    if self.list.len() > Self::SCAN {
                        self.at = self.list.iter().enumerate().map(|(i, (d, _))| (*d, i)).collect();
                    }
                    self.list.len() - 1
                }
            },
            _ => *self.at.entry(domain).or_insert_with(|| {
                self.list.push((domain, Pending::default()));
                self.list.len() - 1
            }),
        };
        &mut self.list[at].1
    }
}

/// What the index found, before explaining.
#[derive(Debug, Clone, Copy)]
enum Evaluated {
    /// A service principal: allowed without rules.
    Service,
    /// Not a place the actor can hold roles (the template, or an API key outside its org).
    Nowhere,
    /// The rules' verdict.
    Rules(Verdict),
}

impl IndexEngine {
    /// Evaluates `request` on the current snapshot and hands the result to `finish`,
    /// with the request's domain index, the template when it applies, and the ids in the
    /// domain index of the roles the actor holds ([`index::Reach::held`]).
    #[inline]
    fn verdict<T>(
        &self,
        request: &AccessRequest<'_>,
        finish: impl FnOnce(&DomainIndex, Option<&DomainIndex>, Evaluated, &[u32]) -> T,
    ) -> T {
        let snapshot = self.snapshot.load();
        let (own, template): (&DomainIndex, Option<&DomainIndex>) = match request.domain {
            Domain::Org(org) => (
                snapshot.orgs.get(org).unwrap_or(&snapshot.empty),
                Some(&snapshot.template),
            ),
            Domain::Platform => (&snapshot.platform, None),
            Domain::AllOrgs => (&snapshot.empty, None),
        };
        match (request.principal, request.domain) {
            (Principal::Service(_), _) => finish(own, template, Evaluated::Service, &[]),
            (_, Domain::AllOrgs) => finish(own, template, Evaluated::Nowhere, &[]),
            (Principal::ApiKey { org, .. }, domain) if domain != Domain::Org(*org) => {
                finish(own, template, Evaluated::Nowhere, &[])
            }
            _ => {
                let reach = own.reach(actor_roles(request).iter());
                let verdict = index::decide(&reach, template, request.object, request.action);
                finish(own, template, Evaluated::Rules(verdict), reach.held())
            }
        }
    }

    /// Validates and compiles the domains the change touches, then swaps in the next
    /// snapshot. With `replace` the lines replace the whole policy, whatever the revision.
    fn change<'l>(
        &self,
        added: impl Iterator<Item = &'l PolicyLine>,
        removed: impl Iterator<Item = &'l PolicyLine>,
        revision: Option<Revision>,
        replace: bool,
    ) -> Result<Revision, PolicyError> {
        let mut interner = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot.load_full();
        let next_revision = match revision {
            Some(r) if r <= current.revision && !replace => return Ok(current.revision),
            Some(r) => r,
            None => Revision(current.revision.0 + 1),
        };
        // For each touched domain: the lines removed and the lines added, as text.
        let mut touched = Touched::default();
        for line in removed {
            let pending = touched.of(line.domain());
            match index::raw(line) {
                Ok(rule) => pending.removed_rules.push(rule),
                Err(edge) => pending.removed_edges.push(edge),
            }
        }
        for line in added {
            validate::compiled_line(line)?;
            let pending = touched.of(line.domain());
            match index::raw(line) {
                Ok(rule) => pending.added_rules.push(rule),
                Err(edge) => pending.added_edges.push(edge),
            }
        }
        let mut next = if replace {
            Snapshot::empty(next_revision)
        } else {
            (*current).clone()
        };
        let mut compiled = Vec::with_capacity(touched.list.len());
        // In the domains' order, so that of several bad domains the same one is reported.
        touched.list.sort_unstable_by_key(|(domain, _)| *domain);
        for (domain, pending) in &touched.list {
            // Current lines less removed ones, then added ones: a line in both stays.
            let base: &DomainIndex = if replace { &next.empty } else { current.domain(*domain) };
            compiled.push((*domain, DomainIndex::compile(*domain, base, pending, &mut interner)?));
        }
        next.set(compiled);
        next.revision = next_revision;
        self.snapshot.store(Arc::new(next));
        interner.prune();
        Ok(next_revision)
    }
}

/// `service`, the pseudo-role of a service principal's grant: a constant name.
const SERVICE: Name = Name::from_static("service");

/// Builds the full decision from the index's verdict; `held` are the ids in `own` of the
/// roles the actor holds.
fn explain(
    request: &AccessRequest<'_>,
    own: &DomainIndex,
    template: Option<&DomainIndex>,
    evaluated: Evaluated,
    held: &[u32],
) -> Decision {
    let rule_of = |source: Source, id: u32| -> PolicyRule {
        match (source, template) {
            (Source::Template, Some(template)) => template.policy_rule(id, Domain::AllOrgs),
            _ => own.policy_rule(id, request.domain),
        }
    };
    let denied = |reason: DenialReason, would_grant: Vec<Name>| {
        Decision::Denied(Denial {
            reason,
            roles: request.roles.to_vec(),
            would_grant,
        })
    };
    match evaluated {
        Evaluated::Service => Decision::Allowed(Grant {
            rule: PolicyRule {
                subject: SERVICE,
                domain: request.domain,
                object: index::ANY,
                action: index::ANY,
                effect: Effect::Allow,
            },
            via: vec![SERVICE],
        }),
        Evaluated::Nowhere => denied(DenialReason::NoGrant, Vec::new()),
        Evaluated::Rules(Verdict::Allow(source, id)) => {
            let rule = rule_of(source, id);
            // An own rule's subject is a role of `own` by id; a template rule's is found by name.
            let target = match (source, template) {
                (Source::Template, Some(_)) => own.role_id(&rule.subject),
                _ => Some(own.rule(id).subject),
            };
            let via = own.chain(held, &rule.subject, target);
            Decision::Allowed(Grant { rule, via })
        }
        Evaluated::Rules(Verdict::Deny(source, id)) => {
            let rule = rule_of(source, id);
            let would_grant = index::would_grant(own, template, request.object, request.action);
            denied(DenialReason::ExplicitDeny { rule }, would_grant)
        }
        Evaluated::Rules(Verdict::NoGrant) => {
            let would_grant = index::would_grant(own, template, request.object, request.action);
            denied(DenialReason::NoGrant, would_grant)
        }
    }
}

#[cfg(test)]
mod tests;
