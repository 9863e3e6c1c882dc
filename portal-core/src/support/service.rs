//! `SupportService`: give, revoke and list support access grants, each authorized and audited.

use std::sync::Arc;

use serde_json::json;
use time::Duration;

use super::{SupportAccess, SupportGrant, SupportGrantStore, SupportReason};
use crate::access::Permission;
use crate::audit::{AuditActor, AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::EventKind;
use crate::error::{ErrorCode, PortalError};
use crate::gate::Gate;
use crate::ids::{GrantId, IdGenerator, OrgId, UserId};
use crate::store::{Page, PageRequest};
use crate::tenancy::TenancyStore;

/// The permissions support grant administration asks for in the customer org.
///
/// The built-in `owner` (everything) and `admin` (`support_grants *`) hold them; the
/// support roles do not, so staff cannot extend their own access.
pub use crate::access::permissions;

use permissions as perm;

/// Settings of support access.
#[derive(Debug, Clone)]
pub struct SupportConfig {
    /// The longest a grant may last. 72 hours by default.
    pub max_duration: Duration,
}

impl Default for SupportConfig {
    fn default() -> Self {
        Self {
            max_duration: Duration::hours(72),
        }
    }
}

/// A grant to give. Fields are raw input; the service validates them.
#[derive(Debug, Clone)]
pub struct NewSupportGrant {
    /// The vendor staff member to let in; an existing user who is not a member of the org.
    pub staff: UserId,
    /// Why (required, see [`SupportReason`]).
    pub reason: String,
    /// Read only, or read and write.
    pub access: SupportAccess,
    /// How long from now it lasts: more than zero and at most
    /// [`SupportConfig::max_duration`].
    pub duration: Duration,
}

/// Support access grants: the customer org lets a vendor staff member in, for a reason and
/// for a bounded time.
///
/// Who may grant: whoever the org's policy allows `support_grants create` (the built-in
/// `owner` and `admin`, or a service principal of the host); revoking asks
/// `support_grants delete` and listing `support_grants read`. Every call follows the
/// service path (the actor's roles, the [`Authorizer`](crate::access::Authorizer),
/// validation, one store call) and records a `permission_decision` event for the check
/// and a `support_change` or `query` event for the outcome, naming the grant, the staff
/// member and the org.
#[derive(Clone)]
pub struct SupportService {
    grants: Arc<dyn SupportGrantStore>,
    tenancy: Arc<dyn TenancyStore>,
    gate: Gate,
    ids: Arc<dyn IdGenerator>,
    config: SupportConfig,
}

impl std::fmt::Debug for SupportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupportService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

impl SupportService {
    /// Assembles the service from its stores and the portal's [`Gate`] (which must let
    /// staff in through `grants`, so that a grant this service gives takes effect).
    pub fn new(
        grants: Arc<dyn SupportGrantStore>,
        tenancy: Arc<dyn TenancyStore>,
        gate: Gate,
        ids: Arc<dyn IdGenerator>,
        config: SupportConfig,
    ) -> Self {
        Self {
            grants,
            tenancy,
            gate,
            ids,
            config,
        }
    }

    /// Gives `new.staff` access to `org` from now for `new.duration`. Asks
    /// `support_grants create`.
    ///
    /// # Errors
    ///
    /// `org.not_found` (also when the actor cannot reach the org); `access.denied`;
    /// `validation.invalid_field` (`reason`; `duration` if not positive or longer than the
    /// maximum; `staff` if they are a member of the org); `user.not_found` (the staff
    /// member); `storage.*`.
    pub async fn grant(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: NewSupportGrant,
    ) -> Result<SupportGrant, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "support.grant.create");
        let result = async {
            self.authorize(ctx, org, perm::SUPPORT_GRANTS_CREATE).await?;
            let reason = SupportReason::new(&new.reason)?;
            if new.duration <= Duration::ZERO || new.duration > self.config.max_duration {
                return Err(PortalError::invalid_field(
                    "duration",
                    format!(
                        "a support grant lasts more than zero and at most {} hours",
                        self.config.max_duration.whole_hours()
                    ),
                ));
            }
            if self.tenancy.get_user(new.staff).await?.is_none() {
                return Err(PortalError::new(ErrorCode::UserNotFound, "user not found"));
            }
            if self.tenancy.get_membership(org, new.staff).await?.is_some() {
                return Err(PortalError::invalid_field(
                    "staff",
                    "a member of the organization needs no support grant",
                ));
            }
            let grant = SupportGrant {
                id: GrantId::generate(&*self.ids, ctx.now()),
                staff: new.staff,
                org,
                reason,
                access: new.access,
                granted_by: ctx.principal().clone(),
                created_at: ctx.now(),
                expires_at: ctx.now() + new.duration,
                revoked_at: None,
                first_used_at: None,
            };
            let event = self
                .audit_event(ctx, actions::SUPPORT_GRANT_CREATED, &grant)
                .await?
                .metadata(json!({
                    "access": grant.access,
                    "reason": grant.reason,
                    "expires_at": rfc3339(grant.expires_at),
                }));
            self.grants.create(&grant, &event).await?;
            Ok(grant)
        }
        .await;
        op.in_org(org).finish(&result, grant_detail);
        result
    }

    /// Revokes the grant `id` of `org` now; revoking a revoked grant returns it unchanged.
    /// Asks `support_grants delete`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `support.grant_not_found` (also for another org's
    /// grant); `storage.*`.
    pub async fn revoke(&self, ctx: &RequestContext, org: OrgId, id: GrantId) -> Result<SupportGrant, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "support.grant.revoke");
        let result = async {
            self.authorize(ctx, org, perm::SUPPORT_GRANTS_DELETE).await?;
            // The event names the grant's staff member, so the grant is read first (in the
            // org: another org's id is not found); the store writes the event only if this
            // call revokes it.
            let grant = self.grants.get(org, id).await?.ok_or_else(grant_not_found)?;
            let event = self
                .audit_event(ctx, actions::SUPPORT_GRANT_REVOKED, &grant)
                .await?
                .metadata(json!({ "access": grant.access, "expires_at": rfc3339(grant.expires_at) }));
            // The store's `NotFound { entity: "support_grant" }` is `support.grant_not_found`.
            Ok(self.grants.revoke(org, id, ctx.now(), &event).await?)
        }
        .await;
        op.in_org(org).finish(&result, grant_detail);
        result
    }

    /// A page of the grants of `org`, active or not, oldest first (by id): many grants are
    /// read page by page with the `next` cursor (the last grant id read). Asks
    /// `support_grants read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<SupportGrant>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "support.grant.list");
        let result = async {
            self.authorize(ctx, org, perm::SUPPORT_GRANTS_READ).await?;
            let size = page.size()?;
            let after = page
                .after
                .as_ref()
                .map(|cursor| {
                    cursor.as_str().parse::<GrantId>().map_err(|_| {
                        PortalError::invalid_field("cursor", "the cursor is not one this listing returned")
                    })
                })
                .transpose()?;
            let grants = self.grants.list(org, after, size + 1).await?;
            Ok(Page::from_overfetch(grants, size, |g| g.id.to_string()))
        }
        .await;
        op.in_org(org).finish(
            &result,
            |grants: &Page<SupportGrant>| json!({ "org": org, "count": grants.items.len() }),
        );
        result
    }

    /// The audit event `entry` about `grant` for this request: targets the grant and its
    /// staff member; the actor shown with their display name now (users only).
    async fn audit_event(
        &self,
        ctx: &RequestContext,
        entry: CatalogEntry,
        grant: &SupportGrant,
    ) -> Result<AuditEvent, PortalError> {
        let name = match ctx.principal() {
            Principal::User(user) => self.tenancy.get_user(*user).await?.map(|u| u.display_name.to_string()),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        };
        Ok(AuditEvent::new(
            ctx,
            &*self.ids,
            grant.org,
            entry,
            AuditActor::new(ctx.principal(), name),
        )
        .target(AuditTarget::new("support_grant", grant.id))
        .target(AuditTarget::new("user", grant.staff)))
    }

    /// Finds the actor's roles in `org` (membership or grant) and decides `permission`
    /// through the gate; an actor who cannot reach the org gets `org.not_found`.
    async fn authorize(&self, ctx: &RequestContext, org: OrgId, permission: Permission) -> Result<(), PortalError> {
        self.gate.authorize(ctx, org, permission, org_not_found).await.map(drop)
    }
}

fn grant_not_found() -> PortalError {
    PortalError::new(ErrorCode::SupportGrantNotFound, "support grant not found")
}

/// `at` in RFC 3339, as the audit log's metadata writes times.
fn rfc3339(at: time::OffsetDateTime) -> Option<String> {
    at.format(&time::format_description::well_known::Rfc3339).ok()
}

/// What an audit event says of a grant: never more than the grant itself holds.
fn grant_detail(grant: &SupportGrant) -> serde_json::Value {
    json!({
        "grant": grant.id,
        "staff": grant.staff,
        "org": grant.org,
        "access": grant.access,
        "reason": grant.reason,
        "granted_by": grant.granted_by,
        "expires_at": grant.expires_at.unix_timestamp(),
        "revoked_at": grant.revoked_at.map(time::OffsetDateTime::unix_timestamp),
    })
}
