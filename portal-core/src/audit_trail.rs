//! `AuditTrailService`: an org's customers read their own audit log, authorized through
//! the gate (`audit read`, owner and admin by default) before any input is validated.
//!
//! What they read is the [`AuditEvent`] as written: action, actor, targets, request
//! context, time, version and metadata. No role or policy internals are in it; the
//! diagnostics journal keeps those for support.

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;

use crate::access::permissions::{AUDIT_MANAGE, AUDIT_READ};
use crate::audit::{
    AuditAction, AuditActor, AuditEvent, AuditLog, AuditQuery, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, actions,
};
use crate::context::RequestContext;
use crate::diagnostics::EventKind;
use crate::error::{ErrorCode, PortalError};
use crate::gate::Gate;
use crate::ids::{AuditEventId, IdGenerator, OrgId, RandomIds};
use crate::principal::Principal;
use crate::store::{Page, PageRequest};
use crate::tenancy::TenancyStore;

/// The most events one page of the audit log holds.
pub const MAX_AUDIT_PAGE: usize = 100;

/// The longest actor or target id a filter may name: ids are 1 to this many visible
/// ASCII characters (`!` to `~`).
pub const MAX_FILTER_ID: usize = 128;

/// A filter as a client sends it, validated by [`AuditTrailService::list`] once the
/// caller was allowed to read the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this action (a dotted name such as `member.removed`).
    pub action: Option<String>,
    /// Only events by the actor with this id.
    pub actor: Option<String>,
    /// Only events with a target of this id.
    pub target: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
}

impl AuditFilter {
    /// The validated query.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` naming `action`, `actor`, `target` or `until` (not after
    /// `since`).
    pub fn query(&self) -> Result<AuditQuery, PortalError> {
        let id = |param: &'static str, value: &Option<String>| -> Result<Option<String>, PortalError> {
            match value {
                Some(v) if v.is_empty() || v.len() > MAX_FILTER_ID || !v.bytes().all(|b| b.is_ascii_graphic()) => {
                    Err(PortalError::invalid_field(
                        param,
                        format!("`{param}` is 1 to {MAX_FILTER_ID} visible ASCII characters"),
                    ))
                }
                other => Ok(other.clone()),
            }
        };
        if let (Some(since), Some(until)) = (self.since, self.until)
            && until <= since
        {
            return Err(PortalError::invalid_field("until", "`until` must be after `since`"));
        }
        Ok(AuditQuery {
            action: self.action.as_deref().map(AuditAction::new).transpose()?,
            actor: id("actor", &self.actor)?,
            target: id("target", &self.target)?,
            since: self.since,
            until: self.until,
        })
    }
}

/// Reads an org's audit log for its customers.
#[derive(Clone)]
pub struct AuditTrailService {
    log: Arc<dyn AuditLog>,
    gate: Gate,
    /// Where actors' display names are read, for the events of the service's own changes.
    tenancy: Option<Arc<dyn TenancyStore>>,
    ids: Arc<dyn IdGenerator>,
}

impl std::fmt::Debug for AuditTrailService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrailService").finish_non_exhaustive()
    }
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

impl AuditTrailService {
    /// A service reading `log`, deciding through `gate`.
    pub fn new(log: Arc<dyn AuditLog>, gate: Gate) -> Self {
        Self {
            log,
            gate,
            tenancy: None,
            ids: Arc::new(RandomIds::default()),
        }
    }

    /// The same service naming user actors from `tenancy` and making event ids with `ids`
    /// in the events of its own changes (the retention's).
    #[must_use]
    pub fn with_actors(mut self, tenancy: Arc<dyn TenancyStore>, ids: Arc<dyn IdGenerator>) -> Self {
        self.tenancy = Some(tenancy);
        self.ids = ids;
        self
    }

    /// How many days `org` keeps its audit events (`None`: for ever). Asks `audit read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn retention(&self, ctx: &RequestContext, org: OrgId) -> Result<Option<u32>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "audit.retention");
        let result = async {
            self.gate.authorize(ctx, org, AUDIT_READ, org_not_found).await?;
            Ok(self.log.retention(org).await?)
        }
        .await;
        op.in_org(org).finish(&result, |days| json!({ "days": days }));
        result
    }

    /// Sets how many days `org` keeps its audit events, [`MIN_RETENTION_DAYS`] to
    /// [`MAX_RETENTION_DAYS`], or `None` for ever; writes `audit.retention_changed` in the
    /// same transaction. Events older than that are deleted by the next
    /// [`AuditLog::purge_expired`] (the reference server runs it every few minutes). Asks
    /// `audit manage` (owners by default).
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`days`); `storage.*`.
    pub async fn set_retention(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        days: Option<u32>,
    ) -> Result<Option<u32>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::TenancyChange, "audit.set_retention");
        let result = async {
            self.gate.authorize(ctx, org, AUDIT_MANAGE, org_not_found).await?;
            if let Some(days) = days
                && !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&days)
            {
                return Err(PortalError::invalid_field(
                    "days",
                    format!("an org keeps its audit events {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} days, or for ever (null)"),
                ));
            }
            let before = self.log.retention(org).await?;
            let name = match (ctx.principal(), &self.tenancy) {
                (Principal::User(user), Some(tenancy)) => {
                    tenancy.get_user(*user).await?.map(|u| u.display_name.to_string())
                }
                _ => None,
            };
            let event = AuditEvent::new(
                ctx,
                &*self.ids,
                org,
                actions::AUDIT_RETENTION_CHANGED,
                AuditActor::new(ctx.principal(), name),
            )
            .metadata(json!({ "before": before, "after": days }));
            self.log.set_retention(org, days, &event).await?;
            Ok(days)
        }
        .await;
        op.in_org(org).finish(&result, |days| json!({ "days": days }));
        result
    }

    /// A page of `org`'s events that pass `filter`, oldest first, at most
    /// [`MAX_AUDIT_PAGE`] per page. Asks `audit read`.
    ///
    /// # Errors
    ///
    /// `org.not_found` (also for an org the caller cannot reach); `access.denied`;
    /// `validation.invalid_field` (`limit` outside 1 to 100, `cursor`, and the filter's
    /// fields); `storage.*`.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>, PortalError> {
        let op = self.gate.begin(ctx, EventKind::Query, "audit.list");
        let result = async {
            self.gate.authorize(ctx, org, AUDIT_READ, org_not_found).await?;
            let size = page.size()?;
            if size > MAX_AUDIT_PAGE {
                return Err(PortalError::invalid_field(
                    "limit",
                    format!("page size `{size}` is outside 1 to {MAX_AUDIT_PAGE}"),
                ));
            }
            let after = page
                .after
                .as_ref()
                .map(|cursor| {
                    cursor.as_str().parse::<AuditEventId>().map_err(|_| {
                        PortalError::invalid_field("cursor", "the cursor is not one this listing returned")
                    })
                })
                .transpose()?;
            let query = filter.query()?;
            let events = self.log.list(org, &query, after, size + 1).await?;
            Ok(Page::from_overfetch(events, size, |e: &AuditEvent| e.id.to_string()))
        }
        .await;
        op.in_org(org)
            .finish(&result, |p: &Page<AuditEvent>| json!({ "count": p.items.len() }));
        result
    }
}
