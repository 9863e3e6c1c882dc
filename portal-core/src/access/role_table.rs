//! `RoleTableAuthorizer`: a fixed table of what each built-in role grants.

use super::builtin::{BUILTIN_ROLES, PLATFORM_USER_GRANTS, builtin_role};
use super::{
    AccessError, AccessRequest, Authorizer, Decision, Denial, DenialReason, Domain, Effect, Grant, Name, PolicyRule,
};
use crate::principal::Principal;

/// An authorizer from the built-in role table ([`BUILTIN_ROLES`](super::BUILTIN_ROLES)),
/// with `*` patterns.
///
/// It is the default when a [`Portal`](crate::Portal) is built without another
/// authorizer, and the reference the tests compare richer authorizers with. It knows the
/// built-in roles only (custom roles, deny rules and role inheritance come with the
/// casbin-backed authorizer in `portal-auth`, whose template lines are written from the
/// same table). A role grants in its org what its row of the table lists; the first
/// matching grant of the first role of the request that has one decides.
///
/// In the platform domain every signed-in user may do what
/// [`PLATFORM_USER_GRANTS`](super::PLATFORM_USER_GRANTS) lists (create an org, accept an
/// invitation, list their own orgs). A [`Principal::Service`] is the host's own trusted
/// code and is allowed everything. An API key never reaches this table: the
/// [`Gate`](crate::gate::Gate) decides it by its scopes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleTableAuthorizer {
    _table: (),
}

/// Whether `pattern` matches `value`: equal, `*`, or `prefix/*` for anything under `prefix/`.
pub(crate) fn matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" || pattern == value {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(prefix) => value.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')),
        None => false,
    }
}

impl RoleTableAuthorizer {
    /// The table's rules are constants: a decision names them without allocating.
    fn rule(subject: &'static str, domain: Domain, object: &'static str, action: &'static str) -> PolicyRule {
        PolicyRule {
            subject: Name::from_static(subject),
            domain,
            object: Name::from_static(object),
            action: Name::from_static(action),
            effect: Effect::Allow,
        }
    }

    /// The built-in roles that grant `action` on `object`, by name.
    fn roles_granting(object: &str, action: &str) -> Vec<Name> {
        let mut names: Vec<&'static str> = BUILTIN_ROLES
            .iter()
            .filter(|role| {
                role.grants
                    .iter()
                    .any(|g| matches(g.object, object) && matches(g.action, action))
            })
            .map(|role| role.name)
            .collect();
        names.sort_unstable();
        names.into_iter().map(Name::from_static).collect()
    }
}

impl Authorizer for RoleTableAuthorizer {
    fn check<'a>(&self, request: &AccessRequest<'a>) -> Result<Decision, AccessError> {
        let (object, action) = (request.object, request.action);
        match (request.principal, request.domain) {
            (Principal::Service(_), domain) => {
                return Ok(Decision::Allowed(Grant {
                    rule: Self::rule("service", domain, "*", "*"),
                    via: vec![Name::from_static("service")],
                }));
            }
            (Principal::User(_), Domain::Platform) => {
                if let Some(grant) = PLATFORM_USER_GRANTS
                    .iter()
                    .find(|g| matches(g.object, object) && matches(g.action, action))
                {
                    return Ok(Decision::Allowed(Grant {
                        rule: Self::rule("user", Domain::Platform, grant.object, grant.action),
                        via: vec![Name::from_static("user")],
                    }));
                }
            }
            (Principal::User(_), Domain::Org(_)) => {
                for role in request.roles {
                    let Some(role) = builtin_role(role.as_str()) else {
                        continue;
                    };
                    if let Some(grant) = role
                        .grants
                        .iter()
                        .find(|g| matches(g.object, object) && matches(g.action, action))
                    {
                        return Ok(Decision::Allowed(Grant {
                            rule: Self::rule(role.name, request.domain, grant.object, grant.action),
                            via: vec![Name::from_static(role.name)],
                        }));
                    }
                }
            }
            (Principal::User(_), Domain::AllOrgs) | (Principal::ApiKey { .. }, _) => {}
        }
        let would_grant = match request.domain {
            Domain::Org(_) => Self::roles_granting(object, action),
            Domain::Platform | Domain::AllOrgs => Vec::new(),
        };
        Ok(Decision::Denied(Denial {
            reason: DenialReason::NoGrant,
            roles: request.roles.to_vec(),
            would_grant,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::RoleName;
    use crate::ids::{OrgId, SequentialIds, UserId};
    use crate::principal::ServiceName;
    use time::OffsetDateTime;

    fn check(principal: &Principal, domain: Domain, roles: &[RoleName], object: &str, action: &str) -> Decision {
        RoleTableAuthorizer::default()
            .check(&AccessRequest {
                principal,
                domain,
                roles,
                object,
                action,
            })
            .unwrap()
    }

    fn fixtures() -> (Principal, Domain) {
        let ids = SequentialIds::default();
        let user = Principal::User(UserId::generate(&ids, OffsetDateTime::UNIX_EPOCH));
        (user, Domain::Org(OrgId::generate(&ids, OffsetDateTime::UNIX_EPOCH)))
    }

    #[test]
    fn patterns_match_exactly_wildcards_and_subpaths() {
        assert!(matches("*", "members"));
        assert!(matches("members", "members"));
        assert!(matches("cases/*", "cases/wf_1"));
        assert!(!matches("cases/*", "cases"));
        assert!(!matches("cases/*", "casesx/1"));
        assert!(!matches("members", "members/x"));
    }

    #[test]
    fn a_viewer_may_read_members_but_not_change_them() {
        let (user, org) = fixtures();
        let viewer = [RoleName::viewer()];
        assert!(check(&user, org, &viewer, "members", "read").is_allowed());
        let Decision::Denied(denial) = check(&user, org, &viewer, "members", "write") else {
            panic!("a viewer changed members");
        };
        assert_eq!(denial.reason, DenialReason::NoGrant);
        assert_eq!(denial.roles, viewer.to_vec());
        assert_eq!(denial.would_grant, vec!["admin".to_owned(), "owner".to_owned()]);
    }

    #[test]
    fn admins_cannot_assign_the_owner_role() {
        let (user, org) = fixtures();
        let admin = [RoleName::admin()];
        assert!(check(&user, org, &admin, "roles/viewer", "assign").is_allowed());
        assert!(!check(&user, org, &admin, "roles/owner", "assign").is_allowed());
        assert!(check(&user, org, &[RoleName::owner()], "roles/owner", "assign").is_allowed());
    }

    #[test]
    fn an_allow_names_its_rule_and_role() {
        let (user, org) = fixtures();
        let Decision::Allowed(grant) = check(&user, org, &[RoleName::admin()], "invitations", "create") else {
            panic!("an admin could not invite");
        };
        assert_eq!(grant.rule.subject, "admin");
        assert_eq!(grant.rule.object, "invitations");
        assert_eq!(grant.rule.action, "*");
        assert_eq!(grant.via, vec!["admin".to_owned()]);
    }

    #[test]
    fn workflow_grants_let_members_work_and_only_admins_approve() {
        let (user, org) = fixtures();
        let member = [RoleName::new("member").unwrap()];
        assert!(check(&user, org, &member, "cases/wf_1", "write").is_allowed());
        assert!(check(&user, org, &[RoleName::viewer()], "quotes/wf_1", "read").is_allowed());
        assert!(!check(&user, org, &[RoleName::viewer()], "quotes/wf_1", "write").is_allowed());
        let Decision::Denied(denial) = check(&user, org, &member, "quotes/wf_1", "approve") else {
            panic!("a member approved a quote");
        };
        assert_eq!(denial.would_grant, vec!["admin".to_owned(), "owner".to_owned()]);
    }

    #[test]
    fn no_roles_means_no_access() {
        let (user, org) = fixtures();
        assert!(!check(&user, org, &[], "org", "read").is_allowed());
        assert!(!check(&user, org, &[RoleName::new("custom").unwrap()], "org", "read").is_allowed());
    }

    #[test]
    fn platform_grants_cover_signed_in_users_and_services_only() {
        let (user, _) = fixtures();
        assert!(check(&user, Domain::Platform, &[], "orgs", "create").is_allowed());
        assert!(!check(&user, Domain::Platform, &[], "users", "create").is_allowed());
        let service = Principal::Service(ServiceName::new("signup").unwrap());
        assert!(check(&service, Domain::Platform, &[], "users", "create").is_allowed());
    }
}
