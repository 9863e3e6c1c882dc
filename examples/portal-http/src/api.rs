//! [`Api`]: every operation of the `/v1` API as a framework-free async method. An adapter
//! extracts (path parameters, headers, body bytes), calls one method, and renders the
//! result (`200`/`201`/`204` with the DTO) or the [`ApiError`] (problem+json).

use std::sync::Arc;

use portal_auth::identity::{IdentityService, NewApiKey, SignIn};
use portal_core::context::{IdempotencyKey, ServiceName, TraceContext};
use portal_core::diagnostics::{Scope as TriageScope, Timeline};
use portal_core::identity::{Credential, Scope};
use portal_core::ids::{ApiKeyId, InvitationId, OrgId, RequestId, SessionId, UserId, WorkflowId};
use portal_core::store::{Cursor, PageRequest};
use portal_core::tenancy::{InvitationToken, NewOrg, RoleName, RoleSet, TenancyStore};
use portal_core::workflow::{NewInstance, WorkflowFilter, WorkflowService};
use portal_core::{ErrorCode, Portal, PortalError, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::dto::*;
use crate::error::ApiError;
use crate::limiter::{SignInLimit, SignInLimiter};
use crate::proxy::TrustedProxies;
use crate::request::{AuthInput, Caller, RequestMeta, bearer_token, csrf_matches, csrf_token_for, parse_if_match};

/// Settings of the HTTP layer that every adapter honours the same way.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Whether cookies carry `Secure` (on behind HTTPS; off for `http://localhost`).
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

/// Paging parameters of a listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    fn page(&self) -> PageRequest {
        PageRequest {
            after: self.cursor.clone().map(Cursor::new),
            limit: self.limit,
        }
    }
}

/// Filters and paging of the workflow listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorkflowQuery {
    /// Only instances of this definition.
    pub definition: Option<String>,
    /// Only instances in this state.
    pub state: Option<String>,
    /// Only instances assigned to this user id.
    pub assignee: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

/// The window and paging of an org's diagnostic timeline.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// From this time (RFC 3339, inclusive); default 24 hours before `until`.
    pub from: Option<String>,
    /// Until this time (RFC 3339, exclusive); default now.
    pub until: Option<String>,
    /// Only this user's events.
    pub user: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

/// `text` as an RFC 3339 time, or `validation.invalid_field` naming `param`.
pub(crate) fn parse_time(param: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid_field(param, format!("`{param}` must be an RFC 3339 time")))
}

/// The portal's API, framework-free. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    portal: Portal,
    identity: IdentityService,
    tenancy_store: Arc<dyn TenancyStore>,
    limiter: SignInLimiter,
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
    /// The API over `portal` (built with workflows, policy and a journal, as
    /// [`wiring::connect`](crate::wiring::connect) builds it), `identity` (the portal's
    /// authenticator), and the tenancy store both share.
    ///
    /// # Errors
    ///
    /// `internal.error` if the portal lacks workflows, policy or triage.
    pub fn new(
        portal: Portal,
        identity: IdentityService,
        tenancy_store: Arc<dyn TenancyStore>,
        config: HttpConfig,
    ) -> Result<Self, PortalError> {
        let missing =
            |what: &str| PortalError::new(ErrorCode::Internal, format!("the portal was built without {what}"));
        portal.workflows().ok_or_else(|| missing("a workflow store"))?;
        portal.policy().ok_or_else(|| missing("a policy store"))?;
        portal.triage().ok_or_else(|| missing("a journal"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: SignInLimiter::new(config.sign_in_limit),
                portal,
                identity,
                tenancy_store,
                config,
                edge: Principal::Service(ServiceName::new("http-edge")?),
            }),
        })
    }

    /// The portal.
    pub fn portal(&self) -> &Portal {
        &self.inner.portal
    }

    /// The identity service.
    pub fn identity(&self) -> &IdentityService {
        &self.inner.identity
    }

    /// The HTTP settings.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    pub(crate) fn tenancy_store(&self) -> &Arc<dyn TenancyStore> {
        &self.inner.tenancy_store
    }

    /// The request's metadata: the caller's `X-Request-Id` when it is a valid `req_…`
    /// id (otherwise a new id, so clients cannot inject text into logs), its
    /// `traceparent`/`tracestate` when valid (ignored otherwise, as W3C asks), and its
    /// `source` (the client address).
    pub fn request_meta(
        &self,
        request_id_header: Option<&str>,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        source: impl Into<String>,
    ) -> RequestMeta {
        let portal = &self.inner.portal;
        let request_id = request_id_header
            .and_then(|h| h.trim().parse::<RequestId>().ok())
            .unwrap_or_else(|| RequestId::generate(portal.ids(), portal.clock().now()));
        RequestMeta {
            request_id,
            trace: traceparent.and_then(|t| TraceContext::parse(t, tracestate).ok()),
            source: source.into(),
        }
    }

    /// The context of a request before authentication: the edge's service principal.
    fn edge_context(&self, meta: &RequestMeta) -> RequestContext {
        self.inner
            .portal
            .context(self.inner.edge.clone())
            .with(|b| {
                let b = b.request_id(meta.request_id);
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
    /// (`idempotency_key`); `storage.*`.
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
        let key = input.idempotency_key.map(IdempotencyKey::new).transpose()?;
        let edge = self.edge_context(meta);
        let authenticated = self.inner.portal.authenticate(&edge, &credential).await?;
        let ctx = self
            .inner
            .portal
            .context_for(&authenticated)
            .with(|b| {
                let mut b = b.request_id(meta.request_id);
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

    // -----------------------------------------------------------------------------------
    // Identity
    // -----------------------------------------------------------------------------------

    /// Signs in with email and password. Limited per source ([`HttpConfig::sign_in_limit`])
    /// before any password is checked; `previous_session` (the session cookie the client
    /// still holds) is revoked, so a fixed session never becomes a signed-in one.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (with `Retry-After`); `auth.invalid_credentials`;
    /// `storage.*`.
    pub async fn sign_in(
        &self,
        meta: &RequestMeta,
        body: SignInRequest,
        previous_session: Option<&str>,
    ) -> Result<SignInResponse, ApiError> {
        self.inner.limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        let source = if meta.source.is_empty() {
            "unknown"
        } else {
            meta.source.as_str()
        };
        let new = self
            .inner
            .identity
            .sign_in(
                &ctx,
                SignIn {
                    email: body.email,
                    password: body.password,
                    source: source.to_owned(),
                    previous_session: previous_session.map(|s| SecretString::from(s.to_owned())),
                },
            )
            .await?;
        Ok(SignInResponse {
            csrf_token: csrf_token_for(&new.token),
            session_token: ShownOnce(new.token.expose_secret().to_owned()),
            session: SessionView::new(&new.session, Some(new.session.id)),
        })
    }

    /// Signs the caller's session out. A caller without a session (an API key) has
    /// nothing to sign out: that is not an error.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), ApiError> {
        if let Some(token) = &caller.session_token {
            self.inner.identity.sign_out(&caller.ctx, token).await?;
        }
        Ok(())
    }

    /// Who the caller is, and their orgs.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn me(&self, caller: &Caller) -> Result<MeResponse, ApiError> {
        let principal = caller.ctx.principal();
        let (user, orgs) = match principal.user() {
            Some(id) => {
                let user = self.inner.tenancy_store.get_user(id).await.map_err(PortalError::from)?;
                let orgs = self.inner.portal.tenancy().list_user_orgs(&caller.ctx, id).await?;
                (
                    user.as_ref().map(UserView::from),
                    orgs.iter().map(MyOrgView::from).collect(),
                )
            }
            None => (None, Vec::new()),
        };
        Ok(MeResponse {
            principal: principal.to_string(),
            user,
            org: caller.ctx.org(),
            session: caller.session(),
            via: caller.via,
            orgs,
        })
    }

    /// The caller's live sessions.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `storage.*`.
    pub async fn list_sessions(&self, caller: &Caller) -> Result<SessionList, ApiError> {
        let sessions = self.inner.identity.list_sessions(&caller.ctx).await?;
        Ok(SessionList {
            items: sessions.iter().map(|s| SessionView::new(s, caller.session())).collect(),
        })
    }

    /// Revokes one of the caller's sessions.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `session.not_found`; `storage.*`.
    pub async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<(), ApiError> {
        self.inner.identity.revoke_session(&caller.ctx, id).await?;
        Ok(())
    }

    /// Creates an API key in `org`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`name`, `scopes`,
    /// `expires_at`); `storage.*`.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        org: OrgId,
        body: CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, ApiError> {
        let scopes = body
            .scopes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<Scope>().map_err(|err| {
                    ApiError::invalid_field(format!("scopes[{i}]"), format!("{err}; a scope is `object action`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let created = self
            .inner
            .identity
            .create_api_key(
                &caller.ctx,
                org,
                NewApiKey {
                    name: body.name,
                    scopes,
                    expires_at: Some(body.expires_at),
                },
            )
            .await?;
        Ok(CreatedApiKey {
            key: ShownOnce(created.key.expose_secret().to_owned()),
            api_key: ApiKeyView::from(&created.record),
        })
    }

    /// The org's API keys.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_api_keys(&self, caller: &Caller, org: OrgId) -> Result<ApiKeyList, ApiError> {
        let keys = self.inner.identity.list_api_keys(&caller.ctx, org).await?;
        Ok(ApiKeyList {
            items: keys.iter().map(ApiKeyView::from).collect(),
        })
    }

    /// Revokes an API key of the org.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `api_key.not_found`; `storage.*`.
    pub async fn revoke_api_key(&self, caller: &Caller, org: OrgId, id: ApiKeyId) -> Result<ApiKeyView, ApiError> {
        let key = self.inner.identity.revoke_api_key(&caller.ctx, org, id).await?;
        Ok(ApiKeyView::from(&key))
    }

    // -----------------------------------------------------------------------------------
    // Tenancy
    // -----------------------------------------------------------------------------------

    fn user_of(caller: &Caller) -> Result<UserId, ApiError> {
        caller
            .ctx
            .principal()
            .user()
            .ok_or_else(|| ApiError::new(ErrorCode::AccessDenied, "only a signed-in user may do this"))
    }

    /// The caller's orgs with their roles.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `storage.*`.
    pub async fn list_my_orgs(&self, caller: &Caller) -> Result<MyOrgList, ApiError> {
        let user = Self::user_of(caller)?;
        let orgs = self.inner.portal.tenancy().list_user_orgs(&caller.ctx, user).await?;
        Ok(MyOrgList {
            items: orgs.iter().map(MyOrgView::from).collect(),
        })
    }

    /// Creates an org; the caller becomes its owner.
    ///
    /// # Errors
    ///
    /// `access.denied`; `validation.invalid_field` (`slug`, `name`, `metadata`);
    /// `org.slug_taken`; `storage.*`.
    pub async fn create_org(&self, caller: &Caller, body: CreateOrgRequest) -> Result<OrgView, ApiError> {
        let org = self
            .inner
            .portal
            .tenancy()
            .create_org(
                &caller.ctx,
                NewOrg {
                    slug: body.slug,
                    name: body.name,
                    metadata: body.metadata,
                    owner: None,
                },
            )
            .await?;
        Ok(OrgView::from(&org))
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

    /// A page of the org's members.
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
            .list_members(&caller.ctx, org, &query.page())
            .await?;
        Ok(MemberList {
            items: page.items.iter().map(MemberView::from).collect(),
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
            .list_invitations(&caller.ctx, org, &query.page())
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

    // -----------------------------------------------------------------------------------
    // Roles
    // -----------------------------------------------------------------------------------

    fn policy(&self) -> Result<&portal_core::access::PolicyService, ApiError> {
        self.inner
            .portal
            .policy()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the portal has no policy store"))
    }

    /// The org's custom roles.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `storage.*`.
    pub async fn list_roles(&self, caller: &Caller, org: OrgId) -> Result<RoleList, ApiError> {
        let roles = self.policy()?.list_roles(&caller.ctx, org).await?;
        Ok(RoleList {
            items: roles.iter().map(RoleView::from).collect(),
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
        let (created, _) = self.policy()?.create_role(&caller.ctx, org, role).await?;
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
        self.policy()?.delete_role(&caller.ctx, org, &name).await?;
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
        let membership = self.policy()?.assign_role(&caller.ctx, org, user, &name).await?;
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
        let membership = self.policy()?.unassign_role(&caller.ctx, org, user, &name).await?;
        Ok(MemberView::from(&membership))
    }

    // -----------------------------------------------------------------------------------
    // Workflows
    // -----------------------------------------------------------------------------------

    pub(crate) fn workflows(&self) -> Result<&WorkflowService, ApiError> {
        self.inner
            .portal
            .workflows()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the portal has no workflow store"))
    }

    /// The instance as the caller sees it: with the transitions it may fire now, decided
    /// on the instance as given (no second read).
    pub(crate) async fn view(
        &self,
        caller: &Caller,
        instance: portal_core::workflow::Instance,
    ) -> Result<WorkflowView, ApiError> {
        let mut views = self.views(caller, instance.org, vec![instance]).await?;
        views
            .pop()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "no view of the instance"))
    }

    /// [`view`](Self::view) for instances of `org`, the caller's roles resolved once.
    async fn views(
        &self,
        caller: &Caller,
        org: OrgId,
        instances: Vec<portal_core::workflow::Instance>,
    ) -> Result<Vec<WorkflowView>, ApiError> {
        let available = self.workflows()?.available_for(&caller.ctx, org, &instances).await?;
        Ok(instances
            .into_iter()
            .zip(available)
            .map(|(instance, available)| WorkflowView::new(instance, available))
            .collect())
    }

    /// A page of the org's workflow instances the caller may read, each with the
    /// transitions the caller may fire now.
    ///
    /// # Errors
    ///
    /// `org.not_found`/`workflow.not_found` (an org the caller cannot reach);
    /// `access.denied`; `validation.invalid_field`; `storage.*`.
    pub async fn list_workflows(
        &self,
        caller: &Caller,
        org: OrgId,
        query: &WorkflowQuery,
    ) -> Result<WorkflowList, ApiError> {
        let filter = WorkflowFilter {
            definition: query.definition.clone(),
            state: query.state.clone(),
            assignee: query.assignee.as_deref().map(str::parse::<UserId>).transpose()?,
        };
        let page = PageRequest {
            after: query.cursor.clone().map(Cursor::new),
            limit: query.limit,
        };
        let page = self.workflows()?.list(&caller.ctx, org, &filter, &page).await?;
        let items = self.views(caller, org, page.items).await?;
        Ok(WorkflowList {
            items,
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }

    /// Creates a workflow instance (idempotent under the caller's `Idempotency-Key`).
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (an org the caller cannot reach); `access.denied`;
    /// `validation.invalid_field` (`definition`, `payload`, `assignee`);
    /// `idempotency.key_reused`; `idempotency.in_flight`; `storage.*`.
    pub async fn create_workflow(
        &self,
        caller: &Caller,
        org: OrgId,
        body: CreateWorkflowRequest,
    ) -> Result<WorkflowView, ApiError> {
        let assignee = body
            .assignee
            .as_deref()
            .map(|a| {
                a.parse::<UserId>()
                    .map_err(|e| PortalError::from(e).with_param("assignee"))
            })
            .transpose()?;
        let instance = self
            .workflows()?
            .create(
                &caller.ctx,
                org,
                NewInstance {
                    definition: body.definition,
                    payload: body.payload,
                    assignee,
                },
            )
            .await?;
        self.view(caller, instance).await
    }

    /// One workflow instance with the transitions the caller may fire now.
    ///
    /// # Errors
    ///
    /// `workflow.not_found` (also another org's id); `access.denied`; `storage.*`.
    pub async fn get_workflow(&self, caller: &Caller, org: OrgId, id: WorkflowId) -> Result<WorkflowView, ApiError> {
        let instance = self.workflows()?.get(&caller.ctx, org, id).await?;
        self.view(caller, instance).await
    }

    /// Fires `transition` on the instance at the version `if_match` names (the `If-Match`
    /// header, `"<version>"`), idempotent under the caller's `Idempotency-Key`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`If-Match`, `input`); `workflow.not_found`;
    /// `access.denied`; `workflow.unknown_transition`; `workflow.transition_not_allowed`;
    /// `workflow.guard_failed`; `workflow.input_missing`; `workflow.approval_required`;
    /// `workflow.version_conflict` (409, with `current_version`);
    /// `idempotency.key_reused`; `idempotency.in_flight`; `storage.*`.
    pub async fn transition_workflow(
        &self,
        caller: &Caller,
        org: OrgId,
        id: WorkflowId,
        transition: &str,
        if_match: Option<&str>,
        body: TransitionRequest,
    ) -> Result<WorkflowView, ApiError> {
        let expected = parse_if_match(if_match)?;
        let instance = self
            .workflows()?
            .transition(&caller.ctx, org, id, transition, expected, body.input)
            .await?;
        self.view(caller, instance).await
    }

    // -----------------------------------------------------------------------------------
    // Support triage
    // -----------------------------------------------------------------------------------

    fn triage(&self) -> Result<&portal_core::diagnostics::TriageService, ApiError> {
        self.inner
            .portal
            .triage()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the portal has no journal"))
    }

    /// Every event of one request in the org, as the caller may see them.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`request_id`);
    /// `storage.*`.
    pub async fn request_events(&self, caller: &Caller, org: OrgId, request_id: &str) -> Result<EventList, ApiError> {
        let request_id = request_id.parse::<RequestId>()?;
        let events = self
            .triage()?
            .by_request(&caller.ctx, TriageScope::Org(org), request_id)
            .await?;
        Ok(EventList {
            items: events.iter().map(EventView::from).collect(),
            next: None,
        })
    }

    /// Why one request of the org failed.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`request_id`);
    /// `storage.*`.
    pub async fn explain_request(
        &self,
        caller: &Caller,
        org: OrgId,
        request_id: &str,
    ) -> Result<ExplanationView, ApiError> {
        let request_id = request_id.parse::<RequestId>()?;
        let explanation = self
            .triage()?
            .explain(&caller.ctx, TriageScope::Org(org), request_id)
            .await?;
        Ok(ExplanationView::from(&explanation))
    }

    /// A page of the org's events in a window.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`from`, `until`,
    /// `user`, `limit`, `cursor`); `storage.*`.
    pub async fn timeline(&self, caller: &Caller, org: OrgId, query: &TimelineQuery) -> Result<EventList, ApiError> {
        let until = match &query.until {
            Some(text) => parse_time("until", text)?,
            None => caller.ctx.now() + time::Duration::seconds(1),
        };
        let from = match &query.from {
            Some(text) => parse_time("from", text)?,
            None => until - time::Duration::hours(24),
        };
        let user = query.user.as_deref().map(str::parse::<UserId>).transpose()?;
        let filter = Timeline {
            user,
            from,
            until,
            kinds: Vec::new(),
        };
        let page = PageRequest {
            after: query.cursor.clone().map(Cursor::new),
            limit: query.limit,
        };
        let page = self
            .triage()?
            .timeline(&caller.ctx, TriageScope::Org(org), &filter, &page)
            .await?;
        Ok(EventList {
            items: page.items.iter().map(EventView::from).collect(),
            next: page.next.map(|c| c.as_str().to_owned()),
        })
    }
}
