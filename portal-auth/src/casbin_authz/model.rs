//! The portal's casbin model, and the translation of policy lines and requests into casbin's terms.

use std::collections::BTreeMap;

use casbin::{Adapter, CoreApi, DefaultModel, Enforcer, MemoryAdapter, Model};
use portal_core::Principal;
use portal_core::access::{AccessRequest, Domain, Effect, PolicyLine};

use super::PolicyError;

/// The portal's casbin model: RBAC with domains, deny over allow, a template domain.
///
/// - A request is `sub, dom, obj, act`: the principal's string form (`usr_…`), the
///   domain (`org_…` or `platform`), the object (`members`, `cases/wf_…`) and the action.
/// - A policy line is `p, role, dom, obj, act, eft` with `eft` `allow` or `deny`; the
///   domain `*` is the template, whose lines apply in every org (not in `platform`).
/// - `g, role, parent, dom` makes `role` inherit everything `parent` is granted inside
///   `dom`, transitively. Who holds which role comes from memberships, not policy: the
///   authorizer sees `g, <principal>, <role>, <dom>` for each role of the request (see
///   [`request_links`](super::request_links)).
/// - `obj` is an exact object, `*`, or a `keyMatch3` pattern (`cases/*`, `cases/{id}`);
///   `act` is exact or `*`.
/// - Deny wins: a request is allowed when some allow line matches and no deny line does.
pub const MODEL: &str = r#"[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == r.dom || (p.dom == "*" && r.dom != "platform")) && (p.obj == "*" || keyMatch3(r.obj, p.obj)) && (p.act == "*" || p.act == r.act)
"#;

/// The role every signed-in user holds in the platform domain, without a membership.
pub const SIGNED_IN_ROLE: &str = "user";

/// Whether `model` is [`MODEL`]: the same sections with the same values, up to
/// whitespace outside string literals.
pub(crate) async fn is_portal_model(model: &DefaultModel) -> Result<bool, PolicyError> {
    let portal = DefaultModel::from_str(MODEL).await.map_err(PolicyError::model)?;
    Ok(canonical(&portal) == canonical(model))
}

/// Every assertion of a model as `(section, key) -> value`, whitespace outside quotes removed.
fn canonical(model: &DefaultModel) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (section, assertions) in model.get_model() {
        for (key, assertion) in assertions {
            let mut value = String::with_capacity(assertion.value.len());
            let mut quoted = false;
            for c in assertion.value.chars() {
                if c == '"' {
                    quoted = !quoted;
                }
                if quoted || !c.is_whitespace() {
                    value.push(c);
                }
            }
            out.insert((section.clone(), key.clone()), value);
        }
    }
    out
}

/// A policy line in casbin's terms: its ptype (`p` or `g`) and its values.
///
/// ```
/// use portal_auth::casbin_authz::casbin_rule;
/// use portal_core::access::{Domain, Effect, PolicyLine, PolicyRule};
///
/// let line = PolicyLine::Permission(PolicyRule {
///     subject: "admin".into(),
///     domain: Domain::AllOrgs,
///     object: "members".into(),
///     action: "*".into(),
///     effect: Effect::Allow,
/// });
/// assert_eq!(casbin_rule(&line), ("p", vec!["admin".into(), "*".into(), "members".into(), "*".into(), "allow".into()]));
/// ```
pub fn casbin_rule(line: &PolicyLine) -> (&'static str, Vec<String>) {
    match line {
        PolicyLine::Permission(rule) => (
            "p",
            vec![
                rule.subject.to_string(),
                rule.domain.to_string(),
                rule.object.to_string(),
                rule.action.to_string(),
                effect_str(rule.effect).to_owned(),
            ],
        ),
        PolicyLine::Inherit { role, parent, domain } => ("g", vec![role.clone(), parent.clone(), domain.to_string()]),
    }
}

/// casbin's name of an effect.
pub(crate) fn effect_str(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// The roles a request's principal holds in its domain, as the authorizer counts them:
/// the request's roles, plus [`SIGNED_IN_ROLE`] for a user in the platform domain. An
/// API key holds its roles only in its own org; nobody holds roles in
/// [`Domain::AllOrgs`]. A service principal is not decided by roles at all.
pub(crate) fn actor_roles<'r>(request: &AccessRequest<'r>) -> ActorRoles<'r> {
    let (roles, signed_in): (&'r [portal_core::tenancy::RoleName], bool) = match (request.principal, request.domain) {
        (_, Domain::AllOrgs) | (Principal::Service(_), _) => (&[], false),
        (Principal::User(_), Domain::Platform) => (request.roles, true),
        (Principal::User(_), Domain::Org(_)) => (request.roles, false),
        (Principal::ApiKey { org, .. }, Domain::Org(domain_org)) if org == &domain_org => (request.roles, false),
        (Principal::ApiKey { .. }, _) => (&[], false),
    };
    ActorRoles { roles, signed_in }
}

/// The role names an actor holds in one domain; see [`actor_roles`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActorRoles<'r> {
    roles: &'r [portal_core::tenancy::RoleName],
    signed_in: bool,
}

impl<'r> ActorRoles<'r> {
    /// The names, the request's roles first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'r str> + Clone + use<'r> {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .chain(self.signed_in.then_some(SIGNED_IN_ROLE))
    }
}

/// The `g` lines casbin must hold to decide `request` as the authorizer does: one
/// `g, <principal>, <role>, <domain>` per role the actor holds (see [`MODEL`]).
///
/// Role assignments live in memberships, so casbin's Enforcer is given them per
/// request; the differential tests and the benchmark add these lines for each request.
pub fn request_links(request: &AccessRequest<'_>) -> Vec<Vec<String>> {
    let principal = request.principal.to_string();
    let domain = request.domain.to_string();
    let mut links: Vec<Vec<String>> = Vec::new();
    for role in actor_roles(request).iter() {
        let link = vec![principal.clone(), role.to_owned(), domain.clone()];
        if !links.contains(&link) {
            links.push(link);
        }
    }
    links
}

/// casbin's request values for `request`: `(sub, dom, obj, act)`.
pub fn casbin_request(request: &AccessRequest<'_>) -> (String, String, String, String) {
    (
        request.principal.to_string(),
        request.domain.to_string(),
        request.object.to_owned(),
        request.action.to_owned(),
    )
}

/// A casbin `Enforcer` on `model_text` holding `lines`, in memory.
///
/// This is the reference the compiled index is tested against, and the engine of the
/// fallback for models other than [`MODEL`].
///
/// # Errors
///
/// [`PolicyError::Casbin`] if the model does not parse or casbin refuses the lines.
pub async fn enforcer(model_text: &str, lines: &[PolicyLine]) -> Result<Enforcer, PolicyError> {
    let model = DefaultModel::from_str(model_text).await.map_err(PolicyError::model)?;
    let mut adapter = MemoryAdapter::default();
    let (mut p, mut g) = (Vec::new(), Vec::new());
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        if !seen.insert(line) {
            continue;
        }
        match casbin_rule(line) {
            ("p", values) => p.push(values),
            (_, values) => g.push(values),
        }
    }
    if !p.is_empty() {
        adapter.add_policies("p", "p", p).await.map_err(PolicyError::model)?;
    }
    if !g.is_empty() {
        adapter.add_policies("g", "g", g).await.map_err(PolicyError::model)?;
    }
    Enforcer::new(model, adapter).await.map_err(PolicyError::model)
}

/// Whether the Enforcer model's request, policy and role definitions have the shape the
/// portal's lines and requests fill: `r` of 4 values, `p` of 5, and a `g` of 3.
pub(crate) fn has_portal_shape(enforcer: &Enforcer) -> bool {
    let model = enforcer.get_model().get_model();
    let tokens = |sec: &str| {
        model
            .get(sec)
            .and_then(|assertions| assertions.get(sec))
            .map(|a| a.tokens.len())
    };
    let g_arity = model
        .get("g")
        .and_then(|assertions| assertions.get("g"))
        .map(|a| a.value.matches('_').count());
    tokens("r") == Some(4) && tokens("p") == Some(5) && g_arity == Some(3)
}
