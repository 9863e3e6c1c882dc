//! Role operations of [`Api`]: an org's custom roles, and giving or taking a member's role.

use portal_core::ids::{OrgId, UserId};
use portal_core::tenancy::RoleName;

use super::{Api, PageQuery};
use portal_core::policy::PolicyService;

use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

/// The longest `object` or `action` that `who-can` takes.
pub(crate) const WHO_CAN_MAX_LEN: usize = 200;

impl Api {
    fn policy(&self) -> &PolicyService {
        &self.inner.policy
    }

    /// The org's custom roles.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_roles(&self, caller: &Caller, org: OrgId, query: &PageQuery) -> Result<RoleList, ApiError> {
        let roles = self.policy().list_roles(&caller.ctx, org, &query.page()?).await?;
        Ok(RoleList {
            items: roles.items.iter().map(RoleView::from).collect(),
            next: roles.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Defines a custom role.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field`; `role.already_exists`;
    /// `role.builtin`; `role.not_found` (unknown parent); `storage.*`.
    pub async fn create_role(&self, caller: &Caller, org: OrgId, body: RoleView) -> Result<RoleView, ApiError> {
        let role = body.to_custom_role()?;
        let (created, _) = self.policy().create_role(&caller.ctx, org, role).await?;
        Ok(RoleView::from(&created))
    }

    /// Replaces a custom role's parent and permissions, validated as a created role's
    /// (`param` the field's JSON path, `permissions[2].action`).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field`; `role.builtin`;
    /// `role.not_found` (the role, or param `parent` an unknown parent); `storage.*`.
    pub async fn update_role(
        &self,
        caller: &Caller,
        org: OrgId,
        role: &str,
        body: RoleUpdate,
    ) -> Result<RoleView, ApiError> {
        let role = body.to_custom_role(role)?;
        let (updated, _) = self.policy().update_role(&caller.ctx, org, role).await?;
        Ok(RoleView::from(&updated))
    }

    /// What a member may do: every rule their roles reach, with the role chain.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `storage.*`.
    pub async fn member_permissions(
        &self,
        caller: &Caller,
        org: OrgId,
        user: UserId,
    ) -> Result<MemberPermissions, ApiError> {
        let rules = self.policy().member_permissions(&caller.ctx, org, user).await?;
        Ok(MemberPermissions {
            user,
            items: rules.iter().map(RuleView::from).collect(),
        })
    }

    /// The members who may do `query.action` on `query.object`, each with the rule that
    /// lets them.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`object`, `action`
    /// missing, empty or longer than 200 characters); `access.policy_failure`;
    /// `storage.*`.
    pub async fn who_can(&self, caller: &Caller, org: OrgId, query: &WhoCanQuery) -> Result<WhoCanList, ApiError> {
        let field = |name: &str, value: &Option<String>| -> Result<String, ApiError> {
            let value = value.as_deref().unwrap_or_default();
            if value.is_empty() || value.chars().count() > WHO_CAN_MAX_LEN || value.chars().any(char::is_control) {
                return Err(ApiError::invalid_field(
                    name,
                    format!("`{name}` is 1 to {WHO_CAN_MAX_LEN} characters, without control characters"),
                ));
            }
            Ok(value.to_owned())
        };
        let object = field("object", &query.object)?;
        let action = field("action", &query.action)?;
        let holders = self.policy().who_can(&caller.ctx, org, &object, &action).await?;
        Ok(WhoCanList {
            object,
            action,
            items: holders
                .iter()
                .map(|h| HolderView {
                    user: h.user,
                    roles: h.roles.iter().map(ToString::to_string).collect(),
                    grant: RuleView::from(&h.grant),
                })
                .collect(),
        })
    }

    /// Deletes a custom role.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `role.builtin`; `role.not_found`; `role.in_use`;
    /// `validation.invalid_field`; `storage.*`.
    pub async fn delete_role(&self, caller: &Caller, org: OrgId, role: &str) -> Result<(), ApiError> {
        let name = RoleName::new(role).map_err(|e| ApiError::from(e.with_param("role")))?;
        self.policy().delete_role(&caller.ctx, org, &name).await?;
        Ok(())
    }

    /// Gives a member a role.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `role.not_found`;
    /// `validation.invalid_field`; `storage.*`.
    pub async fn assign_role(
        &self,
        caller: &Caller,
        org: OrgId,
        user: UserId,
        body: AssignRoleRequest,
    ) -> Result<MemberView, ApiError> {
        let name = RoleName::new(&body.role).map_err(|e| ApiError::from(e.with_param("role")))?;
        let membership = self.policy().assign_role(&caller.ctx, org, user, &name).await?;
        Ok(MemberView::from(&membership))
    }

    /// Takes a role from a member.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `role.not_found`;
    /// `member.last_owner`; `validation.invalid_field`; `storage.*`.
    pub async fn unassign_role(
        &self,
        caller: &Caller,
        org: OrgId,
        user: UserId,
        role: &str,
    ) -> Result<MemberView, ApiError> {
        let name = RoleName::new(role).map_err(|e| ApiError::from(e.with_param("role")))?;
        let membership = self.policy().unassign_role(&caller.ctx, org, user, &name).await?;
        Ok(MemberView::from(&membership))
    }
}

impl Api {
    /// Maps one of the org's SCIM groups to `body.roles` (replacing its mapping), through
    /// [`ScimService::set_group_roles`](portal_core::scim::ScimService::set_group_roles):
    /// every active member of the group holds them at once, and the last-owner rule holds.
    /// The caller was allowed `scim configure` at the edge; each role must be built in or
    /// one of the org's custom roles.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`roles`, `roles[i]`);
    /// `role.not_found` for a role the org does not define; `scim.group_not_found`;
    /// `workflow.version_conflict` when the group changed meanwhile; `member.last_owner`;
    /// `storage.*`.
    pub async fn set_group_roles(
        &self,
        caller: &Caller,
        org: OrgId,
        group: portal_core::ids::GroupId,
        body: GroupRolesRequest,
    ) -> Result<GroupRolesView, ApiError> {
        if body.roles.len() > portal_core::tenancy::RoleSet::MAX {
            return Err(ApiError::invalid_field(
                "roles",
                format!("a group maps to at most {} roles", portal_core::tenancy::RoleSet::MAX),
            ));
        }
        let mut roles = Vec::with_capacity(body.roles.len());
        for (i, role) in body.roles.iter().enumerate() {
            roles.push(RoleName::new(role).map_err(|e| ApiError::from(e.with_param(format!("roles[{i}]"))))?);
        }
        let custom: Vec<&RoleName> = roles
            .iter()
            .filter(|r| !portal_core::access::is_builtin_role(r.as_str()))
            .collect();
        if !custom.is_empty() {
            let mut defined = Vec::new();
            let mut page = portal_core::store::PageRequest::first(100);
            loop {
                let listed = self.policy().list_roles(&caller.ctx, org, &page).await?;
                defined.extend(listed.items.into_iter().map(|r| r.name));
                match listed.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            if let Some(unknown) = custom.into_iter().find(|r| !defined.contains(*r)) {
                return Err(portal_core::PortalError::new(
                    portal_core::ErrorCode::RoleNotFound,
                    format!("the org defines no role `{unknown}`"),
                )
                .with_param("roles")
                .into());
            }
        }
        let group = self.scim().set_group_roles(&caller.ctx, org, group, roles).await?;
        Ok(GroupRolesView::from(&group))
    }
}
