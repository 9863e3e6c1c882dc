//! Access: the question "may this actor do this, here?", its answer with reasons, and
//! the ports that answer it.
//!
//! Roles are *assigned* in memberships (the [`TenancyStore`](crate::TenancyStore) is the
//! one source of truth for who holds which role in which org, so removing a member takes
//! effect at once on every replica). What a role *grants* is policy: the [`Authorizer`]
//! holds it in memory and answers without I/O. A service reads the actor's membership,
//! then asks the authorizer with the actor's roles in the [`AccessRequest`].
//!
//! An API key is the exception: it holds no roles, and [`decide`] allows it exactly the
//! scopes its request context carries, in its own org (see
//! [`Scope`](crate::identity::Scope)).
//!
//! The [`PolicyStore`] persists the policy with an ordered log of changes, and a
//! [`PolicyFeed`] delivers the changes other replicas commit, so every replica's
//! authorizer follows the same sequence of revisions.

mod name;
mod policy_feed;
mod policy_store;
mod replica;
mod role_table;
mod service;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::context::Principal;
use crate::error::{BoxError, ErrorCode, PortalError};
use crate::ids::{OrgId, ParseIdError};
use crate::tenancy::RoleName;

pub use name::Name;
#[cfg(feature = "mock")]
pub use policy_feed::MockPolicyFeed;
pub use policy_feed::{PolicyEvent, PolicyFeed};
#[cfg(feature = "mock")]
pub use policy_store::MockPolicyStore;
pub use policy_store::{PolicyChange, PolicyLine, PolicyStore, Revision};
pub use replica::{BUILTIN_ROLES, EffectivePermission, PolicyReplica, effective_permissions, is_builtin_role};
pub use role_table::RoleTableAuthorizer;
pub(crate) use role_table::matches as pattern_matches;
pub use service::{CustomRole, PolicyService, RolePermission, permissions};

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
}

/// Asks `authorizer` and returns the `access.check` event that records the decision
/// (with its explanation, for support) and whether the request was allowed. Callers that
/// record at once use [`decide`]; the workflow service records later, once it knows
/// whether an idempotent replay makes the decision moot.
pub(crate) fn evaluate(
    authorizer: &dyn Authorizer,
    ctx: &crate::context::RequestContext,
    request: &AccessRequest<'_>,
) -> Result<(crate::diagnostics::DiagnosticEvent, bool), PortalError> {
    let (event, detail, allowed) = evaluate_deferred(authorizer, ctx, request)?;
    Ok((detail.apply(event), allowed))
}

/// [`evaluate`], with the decision's detail (the costliest of any event: the rule or the
/// denial with its roles, as JSON) left for the sink to build, off the request path when
/// the sink writes there.
fn evaluate_deferred(
    authorizer: &dyn Authorizer,
    ctx: &crate::context::RequestContext,
    request: &AccessRequest<'_>,
) -> Result<
    (
        crate::diagnostics::DiagnosticEvent,
        crate::diagnostics::DeferredDetail,
        bool,
    ),
    PortalError,
> {
    use crate::diagnostics::{DeferredDetail, DiagnosticEvent, EventKind};
    let decision = match request.principal {
        Principal::ApiKey { org, .. } => api_key_decision(*org, ctx.scopes(), request),
        Principal::User(_) | Principal::Service(_) => authorizer.check(request)?,
    };
    let mut event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "access.check");
    if let Domain::Org(org) = request.domain {
        event = event.with_org(org);
    }
    let allowed = decision.is_allowed();
    if !allowed {
        event = event.with_error(ErrorCode::AccessDenied);
    }
    let granted = match &decision {
        Decision::Allowed(grant) => Some(&grant.rule),
        Decision::Denied(_) => None,
    };
    let (object, action) = (
        RequestText::new(request.object, granted.map(|r| &r.object)),
        RequestText::new(request.action, granted.map(|r| &r.action)),
    );
    let detail = DeferredDetail::decision(DecisionDetail {
        action,
        decision,
        domain: request.domain,
        object,
        principal: request.principal.clone(),
    });
    Ok((event, detail, allowed))
}

/// The detail of an `access.check` event (`access.decision.v1`), kept typed until read.
/// Its fields are in the order of the JSON object's keys when read back.
#[derive(Serialize)]
pub(crate) struct DecisionDetail {
    action: RequestText,
    decision: Decision,
    domain: Domain,
    object: RequestText,
    principal: Principal,
}

/// The most bytes of a request's object or action a [`RequestText`] holds inline: enough
/// for `cases/wf_…` and every built-in permission.
const INLINE_TEXT: usize = 46;

/// A request's object or action as a decision's detail keeps it: the granting rule's own
/// name when the text is the same (an exact rule), else the text copied inline when short
/// (nearly always), so that recording a decision makes no allocation of its own for them:
/// the detail is handed to another thread, and every block freed there costs the request
/// thread a fresh one (see `docs/benchmarks.md`, "Constant names").
pub(crate) enum RequestText {
    Shared(Name),
    Inline { len: u8, bytes: [u8; INLINE_TEXT] },
}

impl RequestText {
    fn new(text: &str, rule: Option<&Name>) -> Self {
        if let Some(name) = rule.filter(|name| name.as_str() == text) {
            return Self::Shared(name.clone());
        }
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE_TEXT => {
                let mut bytes = [0; INLINE_TEXT];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Shared(Name::from(text)),
        }
    }
}

/// As the plain string.
impl Serialize for RequestText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Shared(name) => serializer.serialize_str(name),
            // A whole `str` was copied in, so this borrows: it never replaces anything.
            Self::Inline { len, bytes } => {
                serializer.serialize_str(&String::from_utf8_lossy(&bytes[..usize::from(*len)]))
            }
        }
    }
}

/// The decision for an API key: allowed exactly when the request is in the key's own
/// org and one of the key's scopes (from the request context) covers the object and
/// action. The authorizer's roles play no part: a key holds no roles, only its scopes,
/// and every scope was within its creator's permissions when the key was made.
fn api_key_decision(key_org: OrgId, scopes: &[crate::identity::Scope], request: &AccessRequest<'_>) -> Decision {
    let grant = match request.domain {
        Domain::Org(org) if org == key_org => scopes.iter().find(|s| s.allows(request.object, request.action)),
        Domain::Org(_) | Domain::Platform | Domain::AllOrgs => None,
    };
    match grant {
        Some(scope) => Decision::Allowed(Grant {
            rule: PolicyRule {
                subject: Name::from_static("api_key"),
                domain: request.domain,
                object: scope.object().into(),
                action: scope.action().into(),
                effect: Effect::Allow,
            },
            via: vec![Name::from_static("scope")],
        }),
        None => Decision::Denied(Denial {
            reason: DenialReason::NoGrant,
            roles: Vec::new(),
            would_grant: Vec::new(),
        }),
    }
}

/// Asks `authorizer` (or, for an API key, the key's scopes in `ctx`), records the
/// decision in `sink` as an `access.check` event, and turns a denial into
/// `access.denied`: the authorization step every service runs.
///
/// Public so that services outside this crate (the identity service in `portal-auth`)
/// authorize exactly as the built-in ones do; `request.roles` must be the actor's roles
/// in `request.domain`, read from their membership.
///
/// # Errors
///
/// `access.denied` for a denial; `access.policy_failure` if the authorizer fails.
pub fn decide(
    authorizer: &dyn Authorizer,
    sink: &dyn crate::diagnostics::DiagnosticSink,
    ctx: &crate::context::RequestContext,
    request: &AccessRequest<'_>,
) -> Result<(), PortalError> {
    let (event, detail, allowed) = evaluate_deferred(authorizer, ctx, request)?;
    sink.record_deferred(event, detail);
    if allowed {
        Ok(())
    } else {
        Err(PortalError::new(
            ErrorCode::AccessDenied,
            "you are not allowed to do this",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Scope;
    use crate::ids::{ApiKeyId, SequentialIds, UserId};
    use time::OffsetDateTime;

    /// Text and back: the text, after checking that it reads back equal.
    fn json(decision: &Decision) -> String {
        let text = serde_json::to_string(decision).unwrap();
        assert_eq!(&serde_json::from_str::<Decision>(&text).unwrap(), decision, "{text}");
        text
    }

    /// The JSON of decisions, which the journal stores and triage reads, pinned: a change
    /// to the decision types must not change it.
    #[test]
    fn decisions_serialize_to_the_pinned_json() {
        let ids = SequentialIds::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        let (org, user) = (OrgId::generate(&ids, at), Principal::User(UserId::generate(&ids, at)));
        let key = Principal::ApiKey {
            key: ApiKeyId::generate(&ids, at),
            org,
        };
        let ask = |principal, object, action| AccessRequest {
            principal,
            domain: Domain::Org(org),
            roles: &[],
            object,
            action,
        };
        let scopes = [Scope::new("cases/*", "read").unwrap()];
        assert_eq!(
            json(&api_key_decision(org, &scopes, &ask(&key, "cases/wf_1", "read"))),
            format!(
                r#"{{"decision":"allowed","rule":{{"subject":"api_key","domain":{{"kind":"org","org":"{org}"}},"object":"cases/*","action":"read","effect":"allow"}},"via":["scope"]}}"#
            )
        );
        assert_eq!(
            json(&api_key_decision(org, &scopes, &ask(&key, "cases/wf_1", "write"))),
            r#"{"decision":"denied","reason":{"kind":"no_grant"},"roles":[],"would_grant":[]}"#
        );

        let viewer = [RoleName::viewer()];
        let request = AccessRequest {
            roles: &viewer,
            ..ask(&user, "members", "write")
        };
        assert_eq!(
            json(&RoleTableAuthorizer::default().check(&request).unwrap()),
            r#"{"decision":"denied","reason":{"kind":"no_grant"},"roles":["viewer"],"would_grant":["admin","owner"]}"#
        );
        let request = AccessRequest {
            roles: &viewer,
            ..ask(&user, "members", "read")
        };
        assert_eq!(
            json(&RoleTableAuthorizer::default().check(&request).unwrap()),
            format!(
                r#"{{"decision":"allowed","rule":{{"subject":"viewer","domain":{{"kind":"org","org":"{org}"}},"object":"members","action":"read","effect":"allow"}},"via":["viewer"]}}"#
            )
        );

        let denied = Decision::Denied(Denial {
            reason: DenialReason::ExplicitDeny {
                rule: PolicyRule {
                    subject: "admin".into(),
                    domain: Domain::AllOrgs,
                    object: "invitations".into(),
                    action: "*".into(),
                    effect: Effect::Deny,
                },
            },
            roles: vec![RoleName::admin(), RoleName::member()],
            would_grant: vec!["owner".into()],
        });
        assert_eq!(
            json(&denied),
            r#"{"decision":"denied","reason":{"kind":"explicit_deny","rule":{"subject":"admin","domain":{"kind":"all_orgs"},"object":"invitations","action":"*","effect":"deny"}},"roles":["admin","member"],"would_grant":["owner"]}"#
        );
    }

    /// The `access.check` detail names the request's own object and action, however it
    /// keeps them: the rule's name (exact rule), inline (a wildcard rule, short text), or
    /// shared (long text); read as JSON and serialized straight from the typed value alike.
    #[test]
    fn a_decision_detail_names_the_requests_object_and_action() {
        let ids = SequentialIds::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        let (org, user) = (OrgId::generate(&ids, at), Principal::User(UserId::generate(&ids, at)));
        let ctx = crate::context::RequestContext::builder(user.clone()).build(&crate::time::ManualClock::new(at), &ids);
        let long = format!("cases/{}", "w".repeat(INLINE_TEXT));
        let at_limit = format!("cases/{}", "é".repeat((INLINE_TEXT - 6) / 2));
        assert_eq!(at_limit.len(), INLINE_TEXT);
        for (roles, object, action, allowed) in [
            (vec![RoleName::viewer()], "members", "read", true),
            (vec![RoleName::owner()], "org", "read", true),
            (vec![RoleName::owner()], long.as_str(), "approve", true),
            (vec![RoleName::owner()], at_limit.as_str(), "approve", true),
            (vec![RoleName::viewer()], long.as_str(), "write", false),
            (vec![RoleName::viewer()], "org", "delete", false),
        ] {
            let request = AccessRequest {
                principal: &user,
                domain: Domain::Org(org),
                roles: &roles,
                object,
                action,
            };
            let (event, ok) = evaluate(&RoleTableAuthorizer::default(), &ctx, &request).unwrap();
            assert_eq!(ok, allowed, "{object} {action}");
            let serialized = serde_json::to_value(&event).unwrap();
            for detail in [&serialized["detail"], event.detail.value()] {
                assert_eq!(detail["object"], object, "{detail}");
                assert_eq!(detail["action"], action, "{detail}");
                assert_eq!(
                    detail["decision"]["decision"],
                    if allowed { "allowed" } else { "denied" }
                );
            }
        }
    }
}
