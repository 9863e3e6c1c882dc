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
