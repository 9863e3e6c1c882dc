//! `RoleTableAuthorizer`: a fixed table of what each built-in role grants.

use std::collections::BTreeMap;

use super::{
    AccessError, AccessRequest, Authorizer, Decision, Denial, DenialReason, Domain, Effect, Grant, Name, PolicyRule,
};
use crate::context::Principal;

/// An authorizer from a static table of role grants, with `*` patterns.
///
/// It is the default when a [`Portal`](crate::Portal) is built without another
/// authorizer, and the reference the tests compare richer authorizers with. It knows
/// the built-in roles only (custom roles, deny rules and role inheritance come with the
/// casbin-backed authorizer in `portal-auth`):
///
/// | role | grants in its org |
/// |---|---|
/// | `owner` | everything (`* *`) |
/// | `admin` | `org read/write`, `members *`, `invitations *`, `roles/admin`, `roles/member`, `roles/viewer`, `roles/billing` `assign`, `roles read/manage` (custom roles), `support_grants *`, `api_keys *`, `diagnostics read`; `cases/*`, `returns/*`, `quotes/*` `*` (so `approve` and `refund` too) |
/// | `member` | `org read`, `members read`; `cases/*`, `returns/*`, `quotes/*` `read`, `create`, `write` |
/// | `viewer` | `org read`, `members read`; `cases/*`, `returns/*`, `quotes/*` `read` |
/// | `billing` | `org read`, `members read`, `billing *` |
/// | `support_readonly` | `org read`, `members read`, `invitations read`, `diagnostics read`; `cases/*`, `returns/*`, `quotes/*` `read` |
/// | `support` | as `support_readonly`, plus `org write`, `invitations delete`; `cases/*`, `returns/*`, `quotes/*` `create`, `write` |
///
/// The support roles are given for one request by an active support grant (see
/// [`crate::support`]); they hold no `roles/*`, `roles manage`, `members write` or
/// `support_grants` grant, so staff never assign roles or extend their own access.
///
/// In the platform domain every signed-in user may `orgs create`,
/// `invitations accept` and `self/orgs read` (list their own organizations). A [`Principal::Service`] is the host's own trusted code and is
/// allowed everything. An API key never reaches this table: [`access::decide`](crate::access::decide) decides it
/// by its scopes alone.
#[derive(Debug, Clone)]
pub struct RoleTableAuthorizer {
    org_rules: BTreeMap<&'static str, Vec<(&'static str, &'static str)>>,
    platform_user_rules: Vec<(&'static str, &'static str)>,
}

impl Default for RoleTableAuthorizer {
    fn default() -> Self {
        let reader = vec![("org", "read"), ("members", "read")];
        let mut org_rules = BTreeMap::new();
        org_rules.insert("owner", vec![("*", "*")]);
        org_rules.insert(
            "admin",
            vec![
                ("org", "read"),
                ("org", "write"),
                ("members", "*"),
                ("invitations", "*"),
                ("roles/admin", "assign"),
                ("roles/member", "assign"),
                ("roles/viewer", "assign"),
                ("roles/billing", "assign"),
                ("roles", "read"),
                ("roles", "manage"),
                ("support_grants", "*"),
                ("api_keys", "*"),
                ("diagnostics", "read"),
                ("cases/*", "*"),
                ("returns/*", "*"),
                ("quotes/*", "*"),
            ],
        );
        let mut member = reader.clone();
        let mut viewer = reader.clone();
        // Support staff reach an org only through a grant (see `crate::support`): reads, and
        // for `support` writes on customer-facing resources, never role assignment.
        let mut support_readonly = reader.clone();
        support_readonly.extend([("invitations", "read"), ("diagnostics", "read")]);
        let mut support = support_readonly.clone();
        support.extend([("org", "write"), ("invitations", "delete")]);
        for resource in ["cases/*", "returns/*", "quotes/*"] {
            member.extend([(resource, "read"), (resource, "create"), (resource, "write")]);
            viewer.push((resource, "read"));
            support_readonly.push((resource, "read"));
            support.extend([(resource, "read"), (resource, "create"), (resource, "write")]);
        }
        org_rules.insert("support_readonly", support_readonly);
        org_rules.insert("support", support);
        org_rules.insert("member", member);
        org_rules.insert("viewer", viewer);
        let mut billing = reader;
        billing.push(("billing", "*"));
        org_rules.insert("billing", billing);
        Self {
            org_rules,
            platform_user_rules: vec![("orgs", "create"), ("invitations", "accept"), ("self/orgs", "read")],
        }
    }
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

    fn roles_granting(&self, object: &str, action: &str) -> Vec<Name> {
        self.org_rules
            .iter()
            .filter(|(_, grants)| grants.iter().any(|(o, a)| matches(o, object) && matches(a, action)))
            .map(|(role, _)| Name::from_static(role))
            .collect()
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
                if let Some((o, a)) = self
                    .platform_user_rules
                    .iter()
                    .find(|(o, a)| matches(o, object) && matches(a, action))
                {
                    return Ok(Decision::Allowed(Grant {
                        rule: Self::rule("user", Domain::Platform, o, a),
                        via: vec![Name::from_static("user")],
                    }));
                }
            }
            (Principal::User(_), Domain::Org(_)) => {
                for role in request.roles {
                    let Some((role, grants)) = self.org_rules.get_key_value(role.as_str()) else {
                        continue;
                    };
                    if let Some((o, a)) = grants.iter().find(|(o, a)| matches(o, object) && matches(a, action)) {
                        return Ok(Decision::Allowed(Grant {
                            rule: Self::rule(role, request.domain, o, a),
                            via: vec![Name::from_static(role)],
                        }));
                    }
                }
            }
            (Principal::User(_), Domain::AllOrgs) | (Principal::ApiKey { .. }, _) => {}
        }
        let would_grant = match request.domain {
            Domain::Org(_) => self.roles_granting(object, action),
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
    use crate::context::ServiceName;
    use crate::ids::{OrgId, SequentialIds, UserId};
    use crate::tenancy::RoleName;
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
