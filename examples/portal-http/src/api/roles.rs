//! Role operations of [`Api`]: an org's custom roles, and giving or taking a member's role.

use portal_core::ids::{OrgId, UserId};
use portal_core::tenancy::RoleName;

use super::{Api, PageQuery};
use portal_core::policy::PolicyService;

use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

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
