//! Support access operations of [`Api`]: an org gives, lists and revokes the grants that
//! let vendor staff in (`portal_core::support::SupportService`, which authorizes and
//! records each call).

use portal_core::ids::{GrantId, OrgId};
use portal_core::support::{NewSupportGrant, SupportService};

use super::{Api, PageQuery, user_param};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::Caller;

impl Api {
    /// The support service.
    pub(crate) fn support(&self) -> &SupportService {
        &self.inner.support
    }

    /// A page of the org's support grants, active or not, oldest first.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_support_grants(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &PageQuery,
    ) -> Result<SupportGrantList, ApiError> {
        let page = self.support().list(&caller.ctx, org, &query.page()?).await?;
        let now = caller.ctx.now();
        Ok(SupportGrantList {
            items: page.items.iter().map(|g| SupportGrantView::new(g, now)).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Lets a vendor staff member into the org for `hours` from now.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`staff` not a user id
    /// or a member of the org, `reason`, `hours` outside 1 to the longest grant);
    /// `user.not_found` (the staff member); `storage.*`.
    pub async fn create_support_grant(
        &self,
        caller: &Caller,
        org: OrgId,
        body: CreateSupportGrantRequest,
    ) -> Result<SupportGrantView, ApiError> {
        let staff = user_param("staff", Some(&body.staff))?
            .ok_or_else(|| ApiError::invalid_field("staff", "a support grant names its staff member"))?;
        let new = NewSupportGrant {
            staff,
            reason: body.reason,
            access: body.access.into(),
            duration: time::Duration::hours(i64::from(body.hours)),
        };
        let grant = self.support().grant(&caller.ctx, org, new).await.map_err(|err| {
            // The service names the duration; the body names it in hours.
            if err.param() == Some("duration") {
                err.with_param("hours")
            } else {
                err
            }
        })?;
        Ok(SupportGrantView::new(&grant, caller.ctx.now()))
    }

    /// Revokes a support grant of the org now; a revoked grant is answered unchanged.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `support.grant_not_found` (also another org's);
    /// `storage.*`.
    pub async fn revoke_support_grant(
        &self,
        caller: &Caller,
        org: OrgId,
        id: GrantId,
    ) -> Result<SupportGrantView, ApiError> {
        let grant = self.support().revoke(&caller.ctx, org, id).await?;
        Ok(SupportGrantView::new(&grant, caller.ctx.now()))
    }
}
