//! Support access bodies: the grants an org gives vendor staff (reason, expiry, read-only
//! or not), over `portal_core::support`.

use portal_core::ids::{GrantId, OrgId, UserId};
use portal_core::support::{SupportAccess, SupportGrant};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// How much a grant lets the staff member do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupportAccessView {
    /// Read only (the built-in role `support_readonly`).
    ReadOnly,
    /// Reads and support work (the built-in role `support`).
    ReadWrite,
}

impl From<SupportAccess> for SupportAccessView {
    fn from(access: SupportAccess) -> Self {
        match access {
            SupportAccess::ReadOnly => Self::ReadOnly,
            SupportAccess::ReadWrite => Self::ReadWrite,
        }
    }
}

impl From<SupportAccessView> for SupportAccess {
    fn from(access: SupportAccessView) -> Self {
        match access {
            SupportAccessView::ReadOnly => Self::ReadOnly,
            SupportAccessView::ReadWrite => Self::ReadWrite,
        }
    }
}

/// `POST /v1/orgs/{org_id}/support-grants`: let a vendor staff member into the org.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSupportGrantRequest {
    /// The staff member's user id (`usr_…`); they give it to you. Not a member of the org.
    #[schema(example = "usr_01m967gzrsemz8e2325g9mgb0z")]
    pub staff: String,
    /// Why (1 to 500 characters).
    #[schema(example = "case 4711: the export fails")]
    pub reason: String,
    /// Read only, or read and write.
    pub access: SupportAccessView,
    /// How long from now, in hours: 1 to 72.
    #[schema(example = 24, minimum = 1, maximum = 72)]
    pub hours: u32,
}

/// A support access grant of the org.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportGrantView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: GrantId,
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The staff member it lets in.
    #[schema(value_type = String)]
    pub staff: UserId,
    /// Why.
    pub reason: String,
    /// Read only, or read and write.
    pub access: SupportAccessView,
    /// Who gave it (`user:usr_…`, `service:…`).
    pub granted_by: String,
    /// When it was given.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// When the staff member first entered the org through it (the time of its
    /// `support_grant.used` audit event), if they have.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_used_at: Option<OffsetDateTime>,
    /// Whether it lets the staff member in now.
    pub active: bool,
}

impl SupportGrantView {
    /// The view of `grant` at `now`.
    pub fn new(grant: &SupportGrant, now: OffsetDateTime) -> Self {
        Self {
            id: grant.id,
            org: grant.org,
            staff: grant.staff,
            reason: grant.reason.as_str().to_owned(),
            access: grant.access.into(),
            granted_by: grant.granted_by.to_string(),
            created_at: grant.created_at,
            expires_at: grant.expires_at,
            revoked_at: grant.revoked_at,
            first_used_at: grant.first_used_at,
            active: grant.is_active_at(now),
        }
    }
}

/// A page of the org's support grants, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportGrantList {
    /// The grants.
    pub items: Vec<SupportGrantView>,
    /// The cursor of the next page, if any.
    pub next: Option<String>,
}
