//! The built-in roles and what they grant, written once: [`RoleTableAuthorizer`](super::RoleTableAuthorizer)
//! decides from this table, and `portal_auth::casbin_authz::builtin_policy` writes it as
//! the casbin template's lines.

use super::Permission;

/// A built-in role: its name and what it grants in every org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinRole {
    /// The role's name, such as `admin`.
    pub name: &'static str,
    /// What it grants, patterns included (`*`, `cases/*`), in the order a decision looks
    /// for the granting rule.
    pub grants: &'static [Permission],
}

const fn p(object: &'static str, action: &'static str) -> Permission {
    Permission::new(object, action)
}

/// The built-in roles, in the order of their names' first use (owner first). Every org
/// has them (they are written once, in the policy's template domain) and none may define,
/// redefine or delete a role of these names.
///
/// The shipped workflows' resources (`cases/*`, `returns/*`, `quotes/*`, see
/// [`catalog`](crate::workflow::catalog)) are granted here too. The support roles are
/// given for one request by an active support grant (see [`crate::support`]); they hold no
/// `roles/*`, `roles manage`, `members write` or `support_grants` grant, so staff never
/// assign roles or extend their own access.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        name: "owner",
        grants: &[p("*", "*")],
    },
    BuiltinRole {
        name: "admin",
        grants: &[
            p("org", "read"),
            p("org", "write"),
            p("members", "*"),
            p("invitations", "*"),
            p("roles/admin", "assign"),
            p("roles/member", "assign"),
            p("roles/viewer", "assign"),
            p("roles/billing", "assign"),
            p("roles", "read"),
            p("roles", "manage"),
            p("support_grants", "*"),
            p("api_keys", "*"),
            p("diagnostics", "read"),
            p("audit", "read"),
            p("webhooks", "manage"),
            p("cases/*", "*"),
            p("returns/*", "*"),
            p("quotes/*", "*"),
        ],
    },
    BuiltinRole {
        name: "member",
        grants: &[
            p("org", "read"),
            p("members", "read"),
            p("cases/*", "read"),
            p("cases/*", "create"),
            p("cases/*", "write"),
            p("returns/*", "read"),
            p("returns/*", "create"),
            p("returns/*", "write"),
            p("quotes/*", "read"),
            p("quotes/*", "create"),
            p("quotes/*", "write"),
        ],
    },
    BuiltinRole {
        name: "viewer",
        grants: &[
            p("org", "read"),
            p("members", "read"),
            p("cases/*", "read"),
            p("returns/*", "read"),
            p("quotes/*", "read"),
        ],
    },
    BuiltinRole {
        name: "billing",
        grants: &[p("org", "read"), p("members", "read"), p("billing", "*")],
    },
    BuiltinRole {
        name: "support_readonly",
        grants: &[
            p("org", "read"),
            p("members", "read"),
            p("invitations", "read"),
            p("diagnostics", "read"),
            p("cases/*", "read"),
            p("returns/*", "read"),
            p("quotes/*", "read"),
        ],
    },
    BuiltinRole {
        name: "support",
        grants: &[
            p("org", "read"),
            p("members", "read"),
            p("invitations", "read"),
            p("diagnostics", "read"),
            p("org", "write"),
            p("invitations", "delete"),
            p("cases/*", "read"),
            p("cases/*", "create"),
            p("cases/*", "write"),
            p("returns/*", "read"),
            p("returns/*", "create"),
            p("returns/*", "write"),
            p("quotes/*", "read"),
            p("quotes/*", "create"),
            p("quotes/*", "write"),
        ],
    },
];

/// What every signed-in user may do in the platform domain: create an org, accept an
/// invitation, and list their own orgs.
pub const PLATFORM_USER_GRANTS: &[Permission] =
    &[p("orgs", "create"), p("invitations", "accept"), p("self/orgs", "read")];

/// The built-in role named `name`, if there is one.
pub fn builtin_role(name: &str) -> Option<&'static BuiltinRole> {
    BUILTIN_ROLES.iter().find(|role| role.name == name)
}

/// Whether `name` is a built-in role (see [`BUILTIN_ROLES`]).
pub fn is_builtin_role(name: &str) -> bool {
    builtin_role(name).is_some()
}
