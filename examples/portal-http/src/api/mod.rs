//! [`Api`]: every operation of the `/v1` API as a framework-free async method. An adapter
//! extracts (path parameters, headers, body bytes), calls one method, and renders the
//! result (`200`/`201`/`204` with the DTO) or the [`ApiError`] (problem+json).
//!
//! This file holds the [`Api`] itself (construction, accessors, [`request_meta`](Api::request_meta),
//! [`authenticate`](Api::authenticate)), its [`HttpConfig`], the [`PageQuery`] of every
//! listing, and the helpers the operations share. The operations are one `impl Api` block
//! a resource, each in its own file:
//!
//! | file | operations |
//! |---|---|
//! | `api/identity.rs` | sign-in and out, password reset and change, `me`, sessions, API keys, switching the session's org |
//! | `api/orgs.rs` | the caller's orgs, orgs, members, invitations |
//! | `api/roles.rs` | custom roles, giving and taking a member's role |
//! | `api/workflows.rs` | workflow instances and transitions, history, assignment, votes, delegations ([`WorkflowQuery`]) |
//! | `api/support.rs` | the org's support access grants: give, list, revoke |
//! | `api/definitions.rs` | the workflow definitions a screen draws (states, transitions, Mermaid) |
//! | `api/audit.rs` | the customer audit log and its export ([`AuditEventsQuery`], [`AuditExportQuery`]) |
//! | `api/webhooks.rs` | the org's webhook endpoints, secret rotation, the attempt log, replays, event types |
//! | `api/diagnostics.rs` | a request's events and explanation, the timeline, support bundles, journal export ([`TimelineQuery`], [`SupportBundleQuery`], [`ExportQuery`]) |
//!
//! Each operation checks nothing the service does not: permissions, org reachability and
//! redaction are the services' own.

use std::sync::Arc;

use portal_auth::identity::IdentityService;
use portal_core::access::{Domain, Permission};
use portal_core::audit_trail::AuditTrailService;
use portal_core::context::{ClientRequestId, IdempotencyKey, ServiceName, TraceContext};
use portal_core::idempotency::IdempotencyStore;
use portal_core::identity::Credential;
use portal_core::ids::{OrgId, RequestId, UserId};
use portal_core::policy::PolicyService;
use portal_core::scim::ScimService;
use portal_core::store::{Cursor, PageRequest};
use portal_core::support::SupportService;
use portal_core::tenancy::{ApiVersionStore, TenancyStore};
use portal_core::triage::TriageService;
use portal_core::webhooks::WebhookService;
use portal_core::workflow::WorkflowService;
use portal_core::{ErrorCode, Portal, PortalError, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::dto::AuthVia;
use crate::error::ApiError;
use crate::limiter::{SignInLimit, SignInLimiter};
use crate::proxy::TrustedProxies;
use crate::request::{AuthInput, Caller, RequestMeta, bearer_token, csrf_matches};

mod audit;
mod definitions;
mod diagnostics;
mod identity;
mod orgs;
mod roles;
mod support;
mod webhooks;
mod workflows;

pub use audit::{AuditEventsQuery, AuditExportFormat, AuditExportQuery};
pub use diagnostics::{ExportQuery, MAX_EXPORT_WINDOW, SupportBundleQuery, TimelineQuery};
pub use identity::SignInAnswer;
pub use workflows::WorkflowQuery;

/// Settings of the HTTP layer that every adapter honours the same way.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Whether cookies carry `Secure` and the `__Host-` prefix (on behind HTTPS; off for
    /// `http://localhost`: the reference servers turn it on unless bound to loopback).
    pub cookie_secure: bool,
    /// The largest request body accepted, in bytes; larger ones answer `413`.
    pub body_limit: usize,
    /// Sign-in attempts allowed per source.
    pub sign_in_limit: SignInLimit,
    /// The host's reverse proxies: behind one of them, a request's source (for the
    /// sign-in limit and the identity service's throttling) is taken from
    /// `X-Forwarded-For`. Empty by default: the source is the TCP peer.
    pub trusted_proxies: TrustedProxies,
}

impl HttpConfig {
    /// The session cookie's name: [`SECURE_SESSION_COOKIE`](crate::request::SECURE_SESSION_COOKIE)
    /// (`__Host-` prefixed) when cookies are `Secure`, else
    /// [`SESSION_COOKIE`](crate::request::SESSION_COOKIE). Only this name is read.
    pub fn session_cookie(&self) -> &'static str {
        if self.cookie_secure {
            crate::request::SECURE_SESSION_COOKIE
        } else {
            crate::request::SESSION_COOKIE
        }
    }

    /// The CSRF cookie's name, prefixed as [`session_cookie`](Self::session_cookie)'s.
    pub fn csrf_cookie(&self) -> &'static str {
        if self.cookie_secure {
            crate::request::SECURE_CSRF_COOKIE
        } else {
            crate::request::CSRF_COOKIE
        }
    }
}

impl Default for HttpConfig {
    /// Secure cookies, 64 KiB bodies, 10 sign-ins a minute per source in bursts of 5, no
    /// trusted proxy.
    fn default() -> Self {
        Self {
            cookie_secure: true,
            body_limit: 64 * 1024,
            sign_in_limit: SignInLimit::default(),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Password-reset requests allowed per address: 3 at once, then 1 a minute, so a flood
/// of requests cannot fill someone's mailbox.
pub const RESET_PER_EMAIL: SignInLimit = SignInLimit {
    per_minute: std::num::NonZeroU32::MIN,
    burst: std::num::NonZeroU32::MIN.saturating_add(2),
};

/// Password-reset requests and confirmations allowed per source: 10 at once, then 10 a
/// minute.
pub const RESET_PER_SOURCE: SignInLimit = SignInLimit {
    per_minute: std::num::NonZeroU32::MIN.saturating_add(9),
    burst: std::num::NonZeroU32::MIN.saturating_add(9),
};

/// What pinning an org to another API version needs: `api_version manage`, which only
/// owners hold (their `* *`), as no other built-in role grants it.
pub const API_VERSION_MANAGE: Permission = Permission::new("api_version", "manage");

/// The most items a page of a listing holds (`?limit=`), as the document says.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// The items a page of a listing holds when `?limit=` is absent.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

/// Paging parameters of a listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    fn page(&self) -> Result<PageRequest, ApiError> {
        page_request(self.limit, self.cursor.as_deref())
    }
}

/// The page a listing's `?limit=` and `?cursor=` ask for: `limit` 1 to
/// [`MAX_PAGE_LIMIT`] (the document's bounds; the stores would take more), default
/// [`DEFAULT_PAGE_LIMIT`].
///
/// # Errors
///
/// `validation.invalid_field` (param `limit`) outside the bounds.
pub(crate) fn page_request(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("`limit` is 1 to {MAX_PAGE_LIMIT}, not {limit}"),
        ));
    }
    Ok(PageRequest {
        after: cursor.map(Cursor::new),
        limit: Some(limit),
    })
}

/// `text` as an RFC 3339 time, or `validation.invalid_field` naming `param`.
pub(crate) fn parse_time(param: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid_field(param, format!("`{param}` must be an RFC 3339 time")))
}

/// `text`, when given, as a user id, or `validation.invalid_field` naming `param`.
fn user_param(param: &str, text: Option<&str>) -> Result<Option<UserId>, ApiError> {
    text.map(|t| {
        t.parse::<UserId>()
            .map_err(|e| ApiError::from(PortalError::from(e).with_param(param)))
    })
    .transpose()
}

/// The portal's API, framework-free. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    portal: Portal,
    /// The portal's services this API needs, taken once at [`Api::new`] (which fails if
    /// the portal lacks one), so no operation handles their absence.
    workflows: WorkflowService,
    policy: PolicyService,
    /// Support access grants.
    support: SupportService,
    triage: TriageService,
    audit_trail: AuditTrailService,
    /// Webhook endpoints, their attempt log and replays.
    webhooks: WebhookService,
    identity: IdentityService,
    tenancy_store: Arc<dyn TenancyStore>,
    /// SCIM provisioning (`/scim/v2/…`).
    scim: ScimService,
    limiter: SignInLimiter,
    /// Password-reset requests and confirmations per source ([`RESET_PER_SOURCE`]).
    reset_limiter: SignInLimiter,
    /// Password-reset requests per address ([`RESET_PER_EMAIL`]).
    reset_email_limiter: SignInLimiter,
    /// The `Idempotency-Key` records of the routes that keep answers
    /// ([`idempotency`](crate::idempotency)).
    idempotency: Arc<dyn IdempotencyStore>,
    /// Orgs' API version pins ([`version`](crate::version)); `None`: every org answers in
    /// the current version.
    pins: Option<crate::version::Pins>,
    config: HttpConfig,
    edge: Principal,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API over `portal` (built with workflows, policy, support grants, a journal, an
    /// audit log and a webhook store, as
    /// [`wiring::connect`](crate::wiring::connect) builds it), `identity` (the portal's
    /// authenticator), the tenancy store both share, and the SCIM service of `/scim/v2`.
    ///
    /// # Errors
    ///
    /// `internal.error` (a [`ConfigError`](portal_core::error::ConfigError) as its source)
    /// if the portal lacks workflows, policy, support grants, triage, an audit log or a
    /// webhook store.
    pub fn new(
        portal: Portal,
        identity: IdentityService,
        tenancy_store: Arc<dyn TenancyStore>,
        scim: ScimService,
        config: HttpConfig,
    ) -> Result<Self, PortalError> {
        Ok(Self {
            inner: Arc::new(Inner {
                workflows: portal.workflows()?.clone(),
                policy: portal.policy()?.clone(),
                support: portal.support()?.clone(),
                triage: portal.triage()?.clone(),
                audit_trail: portal.audit_trail()?.clone(),
                webhooks: portal.webhooks()?.clone(),
                limiter: SignInLimiter::new(config.sign_in_limit),
                reset_limiter: SignInLimiter::new(RESET_PER_SOURCE),
                reset_email_limiter: SignInLimiter::new(RESET_PER_EMAIL),
                idempotency: Arc::new(portal_adapters::memory::InMemoryIdempotencyStore::new()),
                pins: None,
                portal,
                identity,
                tenancy_store,
                scim,
                config,
                edge: Principal::Service(ServiceName::new("http-edge")?),
            }),
        })
    }

    /// The portal.
    pub fn portal(&self) -> &Portal {
        &self.inner.portal
    }

    /// The `Idempotency-Key` records ([`idempotency`](crate::idempotency)).
    pub fn idempotency_store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.inner.idempotency
    }

    /// The same API keeping `Idempotency-Key` records in `store` (by default they are in
    /// this process's memory; the reference servers keep them in their database, so that
    /// replicas share them).
    ///
    /// # Errors
    ///
    /// `internal.error` if this API was cloned already (call it right after [`Api::new`]).
    pub fn with_idempotency_store(mut self, store: Arc<dyn IdempotencyStore>) -> Result<Self, PortalError> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "the idempotency store is set before the API is shared",
            )
        })?;
        inner.idempotency = store;
        Ok(self)
    }

    /// Keeps orgs' API version pins in `store` ([`version`](crate::version)): a new org is
    /// pinned to the current version, and an org's requests without `Portal-Version` answer
    /// in its pin. Without it every request answers in the current version.
    ///
    /// `store` must keep its pins where the portal's [`TenancyStore`] does (the same store:
    /// the reference stores implement both traits): a new org and its pin are written
    /// together by [`TenancyStore::create_pinned_org`] and read back from `store`.
    ///
    /// # Errors
    ///
    /// `internal.error` if the API was already cloned.
    pub fn with_api_version_store(mut self, store: Arc<dyn ApiVersionStore>) -> Result<Self, PortalError> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "the API version store is set before the API is shared",
            )
        })?;
        inner.pins = Some(crate::version::Pins::new(store));
        Ok(self)
    }

    /// Orgs' API version pins, if kept ([`with_api_version_store`](Self::with_api_version_store)).
    pub fn pins(&self) -> Option<&crate::version::Pins> {
        self.inner.pins.as_ref()
    }

    /// The identity service.
    pub fn identity(&self) -> &IdentityService {
        &self.inner.identity
    }

    /// The HTTP settings.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// The SCIM service the `/scim/v2` routes call.
    pub fn scim(&self) -> &ScimService {
        &self.inner.scim
    }

    pub(crate) fn tenancy_store(&self) -> &Arc<dyn TenancyStore> {
        &self.inner.tenancy_store
    }

    /// The request's metadata: a new request id (always the server's: Stripe's model),
    /// the caller's `X-Request-Id` as its client request id when it is valid (dropped
    /// otherwise, so clients cannot inject text into logs), its `traceparent`/`tracestate`
    /// when valid (ignored otherwise, as W3C asks), and its `source` (the client address).
    pub fn request_meta(
        &self,
        request_id_header: Option<&str>,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        source: impl Into<String>,
    ) -> RequestMeta {
        let portal = &self.inner.portal;
        RequestMeta {
            request_id: RequestId::generate(portal.ids(), portal.clock().now()),
            client_request_id: request_id_header.and_then(ClientRequestId::new),
            trace: traceparent.and_then(|t| TraceContext::parse(t, tracestate).ok()),
            source: source.into(),
            user_agent: None,
        }
    }

    /// The context of a request before authentication: the edge's service principal.
    fn edge_context(&self, meta: &RequestMeta) -> RequestContext {
        self.context_as(self.inner.edge.clone(), meta)
    }

    /// A context of `principal` for the request `meta` describes (ids, client, trace).
    fn context_as(&self, principal: Principal, meta: &RequestMeta) -> RequestContext {
        self.inner
            .portal
            .context(principal)
            .with(|b| {
                let mut b = meta.client(b.request_id(meta.request_id));
                if let Some(id) = &meta.client_request_id {
                    b = b.client_request_id(id.clone());
                }
                match &meta.trace {
                    Some(trace) => b.trace(trace.clone()),
                    None => b,
                }
            })
            .build()
    }

    /// Authenticates a request: `Authorization: Bearer` (a session token `pss_…`, an API
    /// key `pk_live_…`, or a JWT when the identity service has a bearer authenticator)
    /// wins over the session cookie. A cookie-authenticated unsafe request must carry the
    /// session's CSRF token in `X-CSRF-Token`.
    ///
    /// # Errors
    ///
    /// `auth.unauthenticated` (no credentials, or a malformed `Authorization`);
    /// `auth.invalid_credentials`; `auth.csrf_rejected`; `validation.invalid_field`
    /// (`Idempotency-Key`, for a key that is not 1 to 255 visible ASCII characters); `storage.*`.
    pub async fn authenticate(&self, meta: &RequestMeta, input: AuthInput<'_>) -> Result<Caller, ApiError> {
        let (credential, via, session_token) = match (input.authorization, input.session_cookie) {
            (Some(header), _) => {
                let token = bearer_token(header)?;
                let text = token.expose_secret();
                let credential = if text.starts_with(portal_auth::identity::token::SESSION_PREFIX) {
                    Credential::Session(token.clone())
                } else if text.starts_with(portal_auth::identity::token::API_KEY_PREFIX) {
                    Credential::ApiKey(token.clone())
                } else {
                    Credential::Bearer(token.clone())
                };
                let session = matches!(credential, Credential::Session(_)).then_some(token);
                (credential, AuthVia::Bearer, session)
            }
            (None, Some(cookie)) if !cookie.is_empty() => {
                let token = SecretString::from(cookie.to_owned());
                if input.unsafe_method && !csrf_matches(&token, input.csrf_header) {
                    return Err(ApiError::new(
                        ErrorCode::CsrfRejected,
                        "a cookie-authenticated request that changes state needs the session's `X-CSRF-Token`",
                    ));
                }
                (Credential::Session(token.clone()), AuthVia::Cookie, Some(token))
            }
            _ => return Err(ApiError::unauthenticated()),
        };
        let key = input
            .idempotency_key
            .map(|key| IdempotencyKey::new(key).map_err(|_| crate::request::idempotency_key_refused()))
            .transpose()?;
        let edge = self.edge_context(meta);
        let authenticated = self.inner.portal.authenticate(&edge, &credential).await?;
        let ctx = self
            .inner
            .portal
            .context_for(&authenticated)
            .with(|b| {
                let mut b = meta.client(b.request_id(meta.request_id));
                if let Some(id) = &meta.client_request_id {
                    b = b.client_request_id(id.clone());
                }
                if let Some(trace) = &meta.trace {
                    b = b.trace(trace.clone());
                }
                if let Some(key) = key {
                    b = b.idempotency_key(key);
                }
                b
            })
            .build();
        Ok(Caller {
            ctx,
            authenticated,
            via,
            session_token,
        })
    }

    /// Authorizes before anything of the request is parsed: the caller must reach `org`
    /// and be allowed `permission` there, the permission the operation's service asks for
    /// first. A caller without it gets `access.denied` (recorded as the service would
    /// record it), whatever the rest of the input; a caller with it goes on to the
    /// operation, which parses, validates and authorizes again (this allowed check is not
    /// recorded, so an allowed request records its decision once). The roles read here stay
    /// in the caller's context, so the operation reads them (and records a support grant's
    /// use) once.
    ///
    /// # Errors
    ///
    /// `org.not_found` (an org the caller cannot reach); `access.denied`;
    /// `access.policy_failure`; `storage.*`.
    pub async fn authorize_first(
        &self,
        caller: &mut Caller,
        org: OrgId,
        permission: Permission,
    ) -> Result<(), ApiError> {
        let gate = self.inner.portal.gate();
        let roles = gate
            .roles_or(&caller.ctx, org, || {
                PortalError::new(ErrorCode::OrgNotFound, "organization not found")
            })
            .await?;
        let domain = Domain::Org(org);
        if !gate.allows(&caller.ctx, domain, &roles, permission.object, permission.action)? {
            // Records the denial and answers it.
            gate.decide(&caller.ctx, domain, &roles, permission.object, permission.action)?;
        }
        caller.ctx.keep_org_roles(org, roles.into());
        Ok(())
    }
}
