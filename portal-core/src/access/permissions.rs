//! Every permission the built-in services ask, as `(object, action)` constants, in one
//! place: the vocabulary the services, the built-in role table and the docs share.
//!
//! A service asks these in the org it acts in (or in the platform domain where a constant
//! says so). Workflow permissions are not here: a workflow definition declares its own
//! (`<resource>/* create`, `<resource>/<id> read`, a transition's own permission).

use super::Permission;

/// Create a user (platform domain).
pub const USERS_CREATE: Permission = Permission::new("users", "create");
/// Create an organization (platform domain).
pub const ORGS_CREATE: Permission = Permission::new("orgs", "create");
/// Accept an invitation (platform domain).
pub const INVITATIONS_ACCEPT: Permission = Permission::new("invitations", "accept");
/// List one's own organizations (platform domain).
pub const SELF_READ: Permission = Permission::new("self/orgs", "read");
/// List another user's organizations (platform domain).
pub const USERS_READ: Permission = Permission::new("users/orgs", "read");
/// Read the organization.
pub const ORG_READ: Permission = Permission::new("org", "read");
/// Change the organization's name or metadata.
pub const ORG_WRITE: Permission = Permission::new("org", "write");
/// List and read members.
pub const MEMBERS_READ: Permission = Permission::new("members", "read");
/// Change members' roles.
pub const MEMBERS_WRITE: Permission = Permission::new("members", "write");
/// Remove members.
pub const MEMBERS_DELETE: Permission = Permission::new("members", "delete");
/// Send invitations.
pub const INVITATIONS_CREATE: Permission = Permission::new("invitations", "create");
/// List invitations.
pub const INVITATIONS_READ: Permission = Permission::new("invitations", "read");
/// Revoke invitations.
pub const INVITATIONS_DELETE: Permission = Permission::new("invitations", "delete");
/// The action asked on `roles/<name>` to grant or take away a role.
pub const ROLE_ASSIGN_ACTION: &str = "assign";
/// Read the org's custom roles, any member's permissions, and who holds a permission.
pub const ROLES_READ: Permission = Permission::new("roles", "read");
/// Create, change and delete the org's custom roles.
pub const ROLES_MANAGE: Permission = Permission::new("roles", "manage");
/// Read one's own permissions (asked instead of [`ROLES_READ`] for oneself).
pub const SELF_PERMISSIONS_READ: Permission = Permission::new("org", "read");
/// Give a staff member a support grant.
pub const SUPPORT_GRANTS_CREATE: Permission = Permission::new("support_grants", "create");
/// List the org's support grants.
pub const SUPPORT_GRANTS_READ: Permission = Permission::new("support_grants", "read");
/// Revoke a support grant.
pub const SUPPORT_GRANTS_DELETE: Permission = Permission::new("support_grants", "delete");
/// Read the diagnostics journal (in an org, or on the platform for support staff).
pub const DIAGNOSTICS_READ: Permission = Permission::new("diagnostics", "read");
/// Purge old events (retention).
pub const DIAGNOSTICS_PURGE: Permission = Permission::new("diagnostics", "purge");
/// Read the org's customer audit log (owner and admin by default).
pub const AUDIT_READ: Permission = Permission::new("audit", "read");
/// Set how long the org keeps its audit events (owner by default).
pub const AUDIT_MANAGE: Permission = Permission::new("audit", "manage");
/// Create, read, change, delete and replay the org's webhook endpoints (owner and admin
/// by default).
pub const WEBHOOKS_MANAGE: Permission = Permission::new("webhooks", "manage");
/// List the org's API keys.
pub const API_KEYS_READ: Permission = Permission::new("api_keys", "read");
/// Create and revoke the org's API keys.
pub const API_KEYS_MANAGE: Permission = Permission::new("api_keys", "manage");

/// Provision users and groups through SCIM (every `ScimService` read and write), held by
/// an org's owner and given to a directory's API key as the scope `scim provision`.
pub const SCIM_PROVISION: Permission = Permission::new("scim", "provision");
/// Map SCIM groups to roles (`ScimService::set_group_roles`), held by an org's owner.
pub const SCIM_CONFIGURE: Permission = Permission::new("scim", "configure");
