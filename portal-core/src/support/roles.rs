//! The one place every service finds the actor's roles in an org: membership first, then
//! an active support grant.

use std::sync::Arc;

use serde_json::json;

use super::{SupportGrant, SupportGrantStore};
use crate::context::{Principal, RequestContext};
use crate::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind};
use crate::error::PortalError;
use crate::ids::OrgId;
use crate::tenancy::{RoleName, TenancyStore};

/// Finds the actor's roles in an org for the services.
///
/// A user's roles come from their membership, read once per request: roles the
/// authenticator already read for the request's org travel in the context
/// ([`RequestContext::roles_in`]) and are used as they are. A user who is not a member but holds a
/// support grant active at `ctx.now()` gets the grant's role (`support_readonly` or
/// `support`) for this request, and a `support.access` event records the staff member,
/// the org and the grant id. An API key reaches only its own org and a service principal
/// any existing org, both with no roles (the authorizer decides for them by principal).
#[derive(Clone)]
pub(crate) struct RoleResolver {
    tenancy: Arc<dyn TenancyStore>,
    grants: Option<Arc<dyn SupportGrantStore>>,
    sink: Arc<dyn DiagnosticSink>,
}

impl RoleResolver {
    /// A resolver on memberships only; grants are added with [`with_grants`](Self::with_grants).
    pub(crate) fn new(tenancy: Arc<dyn TenancyStore>, sink: Arc<dyn DiagnosticSink>) -> Self {
        Self {
            tenancy,
            grants: None,
            sink,
        }
    }

    /// The same resolver, also letting staff in through grants in `grants`.
    pub(crate) fn with_grants(mut self, grants: Arc<dyn SupportGrantStore>) -> Self {
        self.grants = Some(grants);
        self
    }

    /// The actor's roles in `org`, or `None` if the actor cannot reach it (the caller
    /// answers with its own not-found error).
    ///
    /// # Errors
    ///
    /// `storage.*` if a store fails.
    pub(crate) async fn roles(&self, ctx: &RequestContext, org: OrgId) -> Result<Option<Vec<RoleName>>, PortalError> {
        match ctx.principal() {
            Principal::User(user) => {
                if let Some(roles) = ctx.roles_in(org) {
                    return Ok(Some(roles.to_vec()));
                }
                if let Some(membership) = self.tenancy.get_membership(org, *user).await? {
                    return Ok(Some(membership.roles.to_vec()));
                }
                let Some(grants) = &self.grants else {
                    self.record_outside(ctx, org);
                    return Ok(None);
                };
                match grants.find_active(*user, org, ctx.now()).await? {
                    Some(grant) => {
                        self.record_access(ctx, &grant);
                        Ok(Some(vec![grant.access.role()]))
                    }
                    None => {
                        self.record_outside(ctx, org);
                        Ok(None)
                    }
                }
            }
            Principal::ApiKey { org: key_org, .. } => {
                if *key_org == org {
                    Ok(Some(Vec::new()))
                } else {
                    self.record_outside(ctx, org);
                    Ok(None)
                }
            }
            Principal::Service(_) => Ok(self.tenancy.get_org(org).await?.map(|_| Vec::new())),
        }
    }

    /// Records that the actor could not reach `org`: not a member, no active support grant
    /// (or an API key of another org). The caller answers with its own not-found error, so
    /// the customer learns nothing; this `access.reach` event tells support why.
    fn record_outside(&self, ctx: &RequestContext, org: OrgId) {
        let event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "access.reach")
            .with_org(org)
            .with_error(crate::error::ErrorCode::AccessDenied)
            .with_detail(
                "access.reach.v1",
                json!({
                    "org": org,
                    "principal": ctx.principal(),
                    "member": false,
                    "support_grant": false,
                    "home_org": ctx.org().filter(|home| *home != org),
                }),
            );
        self.sink.record(event);
    }

    /// Records that the actor entered `grant`'s org through it.
    fn record_access(&self, ctx: &RequestContext, grant: &SupportGrant) {
        let event = DiagnosticEvent::new(ctx, EventKind::PermissionDecision, "support.access")
            .with_org(grant.org)
            .with_detail(
                "support.access.v1",
                json!({
                    "grant": grant.id,
                    "staff": grant.staff,
                    "org": grant.org,
                    "access": grant.access,
                    "role": grant.access.role(),
                    "expires_at": grant.expires_at.unix_timestamp(),
                }),
            );
        self.sink.record(event);
    }
}
