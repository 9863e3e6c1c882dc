//! Role bodies: an org's custom roles with their permissions, and giving a member a role.

use portal_core::access::Effect;
use portal_core::policy::{CustomRole, RolePermission};
use portal_core::tenancy::RoleName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A permission of a custom role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissionView {
    /// The object or pattern, such as `reports` or `cases/*`.
    #[schema(example = "reports")]
    pub object: String,
    /// The action or `*`.
    #[schema(example = "read")]
    pub action: String,
    /// `allow` (the default) or `deny`, which wins over any allow.
    #[serde(default)]
    pub effect: EffectView,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EffectView {
    /// Grants the action.
    #[default]
    Allow,
    /// Forbids it.
    Deny,
}

/// A custom role of an org.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleView {
    /// Its name; never a built-in role's.
    #[schema(example = "reports-reader")]
    pub name: String,
    /// The role it inherits from.
    #[serde(default)]
    #[schema(example = "viewer")]
    pub parent: Option<String>,
    /// Its own grants and denials.
    pub permissions: Vec<RolePermissionView>,
}

impl From<&CustomRole> for RoleView {
    fn from(role: &CustomRole) -> Self {
        Self {
            name: role.name.as_str().to_owned(),
            parent: role.parent.as_ref().map(|p| p.as_str().to_owned()),
            permissions: role
                .permissions
                .iter()
                .map(|p| RolePermissionView {
                    object: p.object.clone(),
                    action: p.action.clone(),
                    effect: match p.effect {
                        Effect::Allow => EffectView::Allow,
                        Effect::Deny => EffectView::Deny,
                    },
                })
                .collect(),
        }
    }
}

impl RoleView {
    /// The core's role.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`name`, `parent`) for names that are not role names.
    pub fn to_custom_role(&self) -> Result<CustomRole, portal_core::PortalError> {
        Ok(CustomRole {
            name: RoleName::new(&self.name).map_err(|e| e.with_param("name"))?,
            parent: self
                .parent
                .as_deref()
                .map(RoleName::new)
                .transpose()
                .map_err(|e| e.with_param("parent"))?,
            permissions: self
                .permissions
                .iter()
                .map(|p| RolePermission {
                    object: p.object.clone(),
                    action: p.action.clone(),
                    effect: match p.effect {
                        EffectView::Allow => Effect::Allow,
                        EffectView::Deny => Effect::Deny,
                    },
                })
                .collect(),
        })
    }
}

/// An org's custom roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// The roles, by name.
    pub items: Vec<RoleView>,
    /// The cursor of the next page, if there are more roles.
    pub next: Option<String>,
}

/// `POST /v1/orgs/{org_id}/members/{user_id}/roles`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRoleRequest {
    /// A built-in or custom role of the org.
    #[schema(example = "member")]
    pub role: String,
}

/// `PUT /v1/orgs/{org_id}/scim-groups/{group_id}/roles`: the roles a directory group maps
/// to (replacing its mapping); an empty list unmaps it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRolesRequest {
    /// Built-in or custom roles of the org, at most 16; every active member of the group
    /// holds them at once.
    #[schema(example = json!(["admin"]))]
    pub roles: Vec<String>,
}

/// A SCIM group of the org with the roles it maps to.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRolesView {
    /// The group's SCIM id (`grp_…`).
    #[schema(example = "grp_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: String,
    /// Its `displayName`, as the directory sent it.
    pub display_name: String,
    /// The roles its members hold, by name.
    pub roles: Vec<String>,
    /// How many members it has.
    pub members: usize,
    /// Its version (SCIM's `meta.version` without the tag).
    pub version: u64,
}

impl From<&portal_core::scim::ScimGroup> for GroupRolesView {
    fn from(group: &portal_core::scim::ScimGroup) -> Self {
        Self {
            id: group.id.to_string(),
            display_name: group.display_name.clone(),
            roles: group.roles.iter().map(ToString::to_string).collect(),
            members: group.members.len(),
            version: group.version,
        }
    }
}

/// `PUT /v1/orgs/{org_id}/roles/{role}`: a custom role's new parent and permissions,
/// replacing the old ones (the name is the path's).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    /// The role it inherits from; absent, it inherits from none.
    #[serde(default)]
    #[schema(example = "viewer")]
    pub parent: Option<String>,
    /// Its grants and denials, replacing the old ones.
    pub permissions: Vec<RolePermissionView>,
}

impl RoleUpdate {
    /// The role named `name` with this parent and these permissions, validated as a
    /// created role's body is.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`role`, `parent`) for names that are not role names.
    pub fn to_custom_role(&self, name: &str) -> Result<CustomRole, portal_core::PortalError> {
        let role = RoleView {
            name: name.to_owned(),
            parent: self.parent.clone(),
            permissions: self.permissions.clone(),
        };
        role.to_custom_role().map_err(|e| {
            if e.param() == Some("name") {
                e.with_param("role")
            } else {
                e
            }
        })
    }
}

/// One rule that reaches a member, and through which roles.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    /// The role (or, for built-in actors, the principal kind) the rule belongs to.
    #[schema(example = "admin")]
    pub role: String,
    /// The object or pattern.
    #[schema(example = "cases/*")]
    pub object: String,
    /// The action or `*`.
    #[schema(example = "approve")]
    pub action: String,
    /// Allow, or deny (which wins over any allow).
    pub effect: EffectView,
    /// The role chain from a role the member holds to the rule's role, the held role
    /// first (one element when the member holds the rule's role itself).
    pub via: Vec<String>,
}

impl RuleView {
    fn new(rule: &portal_core::access::PolicyRule, via: Vec<String>) -> Self {
        Self {
            role: rule.subject.as_str().to_owned(),
            object: rule.object.as_str().to_owned(),
            action: rule.action.as_str().to_owned(),
            effect: match rule.effect {
                Effect::Allow => EffectView::Allow,
                Effect::Deny => EffectView::Deny,
            },
            via,
        }
    }
}

impl From<&portal_core::access::EffectivePermission> for RuleView {
    fn from(p: &portal_core::access::EffectivePermission) -> Self {
        Self::new(&p.rule, p.via.clone())
    }
}

impl From<&portal_core::access::Grant> for RuleView {
    fn from(g: &portal_core::access::Grant) -> Self {
        Self::new(&g.rule, g.via.iter().map(|n| n.as_str().to_owned()).collect())
    }
}

/// `GET /v1/orgs/{org_id}/members/{user_id}/permissions`: what a member may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPermissions {
    /// The member.
    #[schema(value_type = String)]
    pub user: portal_core::ids::UserId,
    /// Every rule their roles reach through inheritance, built-in grants included; deny
    /// rules too, which win over any allow.
    pub items: Vec<RuleView>,
}

/// `GET /v1/orgs/{org_id}/who-can`: the query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WhoCanQuery {
    /// The object, such as `reports` or `quotes/wf_…`, as the authorizer matches it
    /// (required; 1 to 200 characters, no control character).
    #[param(
        required = true,
        example = "quotes/*",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub object: Option<String>,
    /// The action, such as `read` or `approve` (required; likewise).
    #[param(
        required = true,
        example = "approve",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub action: Option<String>,
}

/// One member who may do what was asked, and the rule that lets them.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderView {
    /// The member.
    #[schema(value_type = String)]
    pub user: portal_core::ids::UserId,
    /// Their roles in the org.
    pub roles: Vec<String>,
    /// The rule that grants it, with the role chain to it.
    pub grant: RuleView,
}

/// `GET /v1/orgs/{org_id}/who-can`: the members who may do an action on an object.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoCanList {
    /// The object asked about.
    pub object: String,
    /// The action asked about.
    pub action: String,
    /// The members allowed, by user id.
    pub items: Vec<HolderView>,
}
