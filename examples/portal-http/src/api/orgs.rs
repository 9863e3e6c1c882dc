//! Tenancy operations of [`Api`]: the caller's orgs, creating and reading orgs, members,
//! and invitations.

use portal_core::ErrorCode;
use portal_core::audit::{AuditActor, AuditEvent, AuditTarget, actions};
use portal_core::ids::{InvitationId, OrgId, UserId};
use portal_core::tenancy::{InvitationToken, NewOrg, OrgUpdate, RoleSet};
use secrecy::ExposeSecret;

use super::{Api, PageQuery};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

impl Api {
    fn user_of(caller: &Caller) -> Result<UserId, ApiError> {
        caller
            .ctx
            .principal()
            .user()
            .ok_or_else(|| ApiError::new(ErrorCode::AccessDenied, "only a signed-in user may do this"))
    }

    /// A page of the caller's orgs with their roles, by org id.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_my_orgs(&self, caller: &Caller, query: &PageQuery) -> Result<MyOrgList, ApiError> {
        let user = Self::user_of(caller)?;
        let orgs = self
            .inner
            .portal
            .tenancy()
            .list_user_orgs(&caller.ctx, user, &query.page()?)
            .await?;
        Ok(MyOrgList {
            items: orgs.items.iter().map(MyOrgView::from).collect(),
            next: orgs.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Creates an org; the caller becomes its owner.
    ///
    /// # Errors
    ///
    /// `access.denied`; `validation.invalid_field` (`slug`, `name`, `metadata`);
    /// `org.slug_taken`; `storage.*`.
    pub async fn create_org(&self, caller: &Caller, body: CreateOrgRequest) -> Result<OrgView, ApiError> {
        let new = NewOrg {
            slug: body.slug,
            name: body.name,
            metadata: body.metadata,
            owner: None,
        };
        let tenancy = self.inner.portal.tenancy();
        // A new org is pinned to the current API version in the transaction that creates
        // it, when pins are kept: it never exists unpinned.
        let org = match self.pins() {
            Some(pins) => {
                let current = crate::version::ApiVersion::current();
                let org = tenancy.create_pinned_org(&caller.ctx, new, &current.pin()?).await?;
                pins.remember(org.id, current);
                org
            }
            None => tenancy.create_org(&caller.ctx, new).await?,
        };
        Ok(OrgView::from(&org))
    }

    /// The API version the org is pinned to ([`version`](crate::version)); the caller was
    /// allowed `org read` there first ([`Api::authorize_first`]).
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn get_api_version(&self, _caller: &Caller, org: OrgId) -> Result<ApiVersionView, ApiError> {
        let version = match self.pins() {
            Some(pins) => pins.of(org).await?,
            None => crate::version::ApiVersion::current(),
        };
        Ok(ApiVersionView {
            version: version.name().to_owned(),
        })
    }

    /// Pins the org to `body.version`, a supported version not older than its pin, with
    /// `org.api_version_changed` in its audit log; the caller was allowed
    /// [`API_VERSION_MANAGE`](super::API_VERSION_MANAGE) (owners) there first.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`version`: not a supported version);
    /// `org.api_version_downgrade` (older than the pin); `storage.*`.
    pub async fn set_api_version(
        &self,
        caller: &Caller,
        org: OrgId,
        body: ApiVersionView,
    ) -> Result<ApiVersionView, ApiError> {
        let Some(version) = crate::version::ApiVersion::named(&body.version) else {
            return Err(ApiError::invalid_field(
                "version",
                format!(
                    "not a supported API version; use one of {}",
                    crate::version::VERSIONS.join(", ")
                ),
            ));
        };
        let Some(pins) = self.pins() else {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "this server keeps no API version pins",
            ));
        };
        let before = pins.store().api_version(org).await?;
        let before = before
            .as_ref()
            .and_then(|name| crate::version::ApiVersion::named(name.as_str()))
            .unwrap_or(crate::version::ApiVersion::baseline());
        if version < before {
            return Err(ApiError::new(
                ErrorCode::ApiVersionDowngrade,
                format!("the org is on {}; its version only moves forward", before.name()),
            ));
        }
        if version != before {
            let name = match caller.ctx.principal() {
                portal_core::Principal::User(user) => self
                    .inner
                    .tenancy_store
                    .get_user(*user)
                    .await?
                    .map(|u| u.display_name.to_string()),
                _ => None,
            };
            let event = AuditEvent::new(
                &caller.ctx,
                self.inner.portal.ids(),
                org,
                actions::ORG_API_VERSION_CHANGED,
                AuditActor::new(caller.ctx.principal(), name),
            )
            .target(AuditTarget::new("organization", org))
            .metadata(serde_json::json!({ "before": before.name(), "after": version.name() }));
            pins.store().pin_api_version(org, &version.pin()?, Some(&event)).await?;
        }
        pins.remember(org, version);
        Ok(ApiVersionView {
            version: version.name().to_owned(),
        })
    }

    /// One org the caller can reach.
    ///
    /// # Errors
    ///
    /// `org.not_found` (also another org's id); `access.denied`; `storage.*`.
    pub async fn get_org(&self, caller: &Caller, org: OrgId) -> Result<OrgView, ApiError> {
        Ok(OrgView::from(
            &self.inner.portal.tenancy().get_org(&caller.ctx, org).await?,
        ))
    }

    /// Changes the org's name or metadata (`org write`: owners and admins), audited as
    /// `org.updated`; an update that changes nothing writes nothing.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`name`, `metadata`);
    /// `storage.*`.
    pub async fn update_org(&self, caller: &Caller, org: OrgId, body: UpdateOrgRequest) -> Result<OrgView, ApiError> {
        let update = OrgUpdate {
            name: body.name,
            metadata: body.metadata,
        };
        Ok(OrgView::from(
            &self.inner.portal.tenancy().update_org(&caller.ctx, org, update).await?,
        ))
    }

    /// A page of the org's members, each with their name and email (one store read a
    /// page).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_members(&self, caller: &Caller, org: OrgId, query: &PageQuery) -> Result<MemberList, ApiError> {
        let page = self
            .inner
            .portal
            .tenancy()
            .list_member_users(&caller.ctx, org, &query.page()?)
            .await?;
        Ok(MemberList {
            items: page.items.iter().map(MemberEntry::from).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Removes a member.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `member.not_found`; `member.last_owner`;
    /// `storage.*`.
    pub async fn remove_member(&self, caller: &Caller, org: OrgId, user: UserId) -> Result<(), ApiError> {
        self.inner
            .portal
            .tenancy()
            .remove_member(&caller.ctx, org, user)
            .await?;
        Ok(())
    }

    /// Invites someone into the org.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`email`, `roles`);
    /// `member.already_member`; `storage.*`.
    pub async fn invite(
        &self,
        caller: &Caller,
        org: OrgId,
        body: InviteRequest,
    ) -> Result<CreatedInvitation, ApiError> {
        let roles = RoleSet::parse(&body.roles).map_err(|e| ApiError::from(e.with_param("roles")))?;
        let (invitation, token) = self
            .inner
            .portal
            .tenancy()
            .invite(&caller.ctx, org, &body.email, roles)
            .await?;
        Ok(CreatedInvitation {
            invitation: InvitationView::from(&invitation),
            token: ShownOnce(token.expose_secret().to_owned()),
        })
    }

    /// A page of the org's invitations.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field`; `storage.*`.
    pub async fn list_invitations(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &PageQuery,
    ) -> Result<InvitationList, ApiError> {
        let page = self
            .inner
            .portal
            .tenancy()
            .list_invitations(&caller.ctx, org, &query.page()?)
            .await?;
        Ok(InvitationList {
            items: page.items.iter().map(InvitationView::from).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Revokes an invitation of the org.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `invitation.not_found`;
    /// `invitation.already_used`; `invitation.revoked`; `storage.*`.
    pub async fn revoke_invitation(
        &self,
        caller: &Caller,
        org: OrgId,
        id: InvitationId,
    ) -> Result<InvitationView, ApiError> {
        let invitation = self
            .inner
            .portal
            .tenancy()
            .revoke_invitation(&caller.ctx, org, id)
            .await?;
        Ok(InvitationView::from(&invitation))
    }

    /// Accepts an invitation as the signed-in user.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `invitation.not_found`; `invitation.expired`;
    /// `invitation.already_used`; `invitation.revoked`; `invitation.email_mismatch`;
    /// `storage.*`.
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        body: AcceptInvitationRequest,
    ) -> Result<MemberView, ApiError> {
        let token = InvitationToken::parse(body.token).map_err(|e| ApiError::from(e.with_param("token")))?;
        let membership = self
            .inner
            .portal
            .tenancy()
            .accept_invitation(&caller.ctx, &token)
            .await?;
        Ok(MemberView::from(&membership))
    }
}
