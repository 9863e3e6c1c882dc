//! Identity operations of [`Api`]: sign-in and sign-out, password reset and change, `me`,
//! the caller's sessions, an org's API keys, and switching the session's org.

use portal_auth::identity::{NewApiKey, SignIn};
use portal_core::identity::Scope;
use portal_core::ids::{ApiKeyId, OrgId, SessionId};
use portal_core::{ErrorCode, PortalError};
use secrecy::{ExposeSecret, SecretString};

use super::{Api, MAX_PAGE_LIMIT, PageQuery, page_request};
use crate::dto::*;
use crate::error::ApiError;
use crate::request::{Caller, RequestMeta, csrf_token_for, path_id};

impl Api {
    /// Signs in with email and password. Limited per source
    /// ([`HttpConfig::sign_in_limit`](super::HttpConfig::sign_in_limit)) before any
    /// password is checked; `previous_session` (the session cookie the client still holds)
    /// is revoked, so a fixed session never becomes a signed-in one.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (with `Retry-After`); `auth.invalid_credentials`;
    /// `service.busy` (with `Retry-After`) when every password-hashing slot stays taken;
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

    /// Asks for a password-reset link for `body.email`: the same answer (`202`) for every
    /// valid address, account or not. Limited per source
    /// ([`RESET_PER_SOURCE`](super::RESET_PER_SOURCE)) and per address
    /// ([`RESET_PER_EMAIL`](super::RESET_PER_EMAIL)) before anything else.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded` (with `Retry-After`); `validation.invalid_field` (`email`);
    /// `storage.*`.
    pub async fn request_password_reset(&self, meta: &RequestMeta, body: PasswordResetRequest) -> Result<(), ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let email = portal_core::tenancy::Email::new(&body.email)?;
        self.inner.reset_email_limiter.check(email.as_str())?;
        let ctx = self.edge_context(meta);
        self.inner.identity.request_password_reset(&ctx, email.as_str()).await?;
        Ok(())
    }

    /// Sets a new password with the token of a mailed reset link; every session of the
    /// user ends. Limited per source as a reset request is.
    ///
    /// # Errors
    ///
    /// `rate_limit.exceeded`; `auth.token_invalid`, `auth.token_used`,
    /// `auth.token_expired` (param `token`); `validation.invalid_field` (`password`);
    /// `service.busy`; `storage.*`.
    pub async fn reset_password(&self, meta: &RequestMeta, body: PasswordResetConfirm) -> Result<(), ApiError> {
        self.inner.reset_limiter.check(&meta.source)?;
        let ctx = self.edge_context(meta);
        self.inner
            .identity
            .reset_password(&ctx, body.token, body.password)
            .await?;
        Ok(())
    }

    /// Mails the signed-in user a link that verifies their address. Limited per source
    /// ([`RESET_PER_SOURCE`](super::RESET_PER_SOURCE), shared with password-reset requests)
    /// and per user ([`RESET_PER_EMAIL`](super::RESET_PER_EMAIL)'s quota), after the caller
    /// is known to be a user.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `rate_limit.exceeded` (with `Retry-After`);
    /// `mail.unavailable`; `storage.*`.
    pub async fn request_email_verification(&self, caller: &Caller, meta: &RequestMeta) -> Result<(), ApiError> {
        let user = caller
            .ctx
            .principal()
            .user()
            .ok_or_else(|| PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this"))?;
        self.inner.reset_limiter.check(&meta.source)?;
        self.inner.reset_email_limiter.check(&user.to_string())?;
        self.inner.identity.request_email_verification(&caller.ctx).await?;
        Ok(())
    }

    /// Verifies the signed-in user's address with the token of a mailed link. Limited per
    /// source as a password-reset confirmation is.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `rate_limit.exceeded`; `auth.token_invalid`,
    /// `auth.token_used`, `auth.token_expired`, `auth.token_wrong_user` (param `token`);
    /// `storage.*`.
    pub async fn verify_email(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: VerifyEmailRequest,
    ) -> Result<EmailStatusView, ApiError> {
        if caller.ctx.principal().user().is_none() {
            return Err(PortalError::new(ErrorCode::AccessDenied, "only a signed-in user may do this").into());
        }
        self.inner.reset_limiter.check(&meta.source)?;
        let verified = self.inner.identity.verify_email(&caller.ctx, body.token).await?;
        Ok(EmailStatusView {
            email: verified.email.as_str().to_owned(),
            verified: true,
            verified_at: Some(verified.verified_at),
        })
    }

    /// The signed-in user's address and whether it is verified.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `storage.*`.
    pub async fn email_status(&self, caller: &Caller) -> Result<EmailStatusView, ApiError> {
        Ok(self.inner.identity.email_status(&caller.ctx).await?.into())
    }

    /// Changes the signed-in user's password (the current one checked under the sign-in
    /// throttle, from the request's source); every session of theirs ends and the caller
    /// gets a new one, in the same org.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` (a wrong current password, or the source locked out);
    /// `access.denied` for an API key; `validation.invalid_field` (`password`);
    /// `service.busy`; `storage.*`.
    pub async fn change_password(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        body: ChangePasswordRequest,
    ) -> Result<SignInResponse, ApiError> {
        let source = if meta.source.is_empty() {
            "unknown"
        } else {
            meta.source.as_str()
        };
        let new = self
            .inner
            .identity
            .change_password(
                &caller.ctx,
                body.current_password,
                body.new_password,
                source,
                caller.ctx.org(),
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
                let first = page_request(Some(MAX_PAGE_LIMIT), None)?;
                let orgs = self
                    .inner
                    .portal
                    .tenancy()
                    .list_user_orgs(&caller.ctx, id, &first)
                    .await?;
                (
                    user.as_ref().map(UserView::from),
                    orgs.items.iter().map(MyOrgView::from).collect(),
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

    /// A page of the caller's live sessions, newest first.
    ///
    /// # Errors
    ///
    /// `access.denied` for an API key; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_sessions(&self, caller: &Caller, query: &PageQuery) -> Result<SessionList, ApiError> {
        let sessions = self.inner.identity.list_sessions(&caller.ctx, &query.page()?).await?;
        Ok(SessionList {
            items: sessions
                .items
                .iter()
                .map(|s| SessionView::new(s, caller.session()))
                .collect(),
            next: sessions.next.map(|c| c.as_str().to_owned()),
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
    pub async fn list_api_keys(&self, caller: &Caller, org: OrgId, query: &PageQuery) -> Result<ApiKeyList, ApiError> {
        let keys = self
            .inner
            .identity
            .list_api_keys(&caller.ctx, org, &query.page()?)
            .await?;
        Ok(ApiKeyList {
            items: keys.items.iter().map(ApiKeyView::from).collect(),
            next: keys.next.map(|c| c.as_str().to_owned()),
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

    /// Makes `body.org_id` the active org of the caller's session. The session is rotated
    /// (keeping its absolute expiry): the answer carries the new session's token and CSRF
    /// token for the adapter to set as cookies, and the old token stops working. What goes
    /// in the body is [`SwitchOrgResponse::for_caller`]: the token only for a bearer caller.
    ///
    /// # Errors
    ///
    /// `access.denied` when the caller did not authenticate with a session (an API key
    /// or a JWT has no session to switch); `validation.invalid_field` (`org_id`);
    /// `org.not_found` when the user is not a member of the org; `storage.*`.
    pub async fn switch_org(&self, caller: &Caller, body: SwitchOrgRequest) -> Result<SignInResponse, ApiError> {
        let org = path_id::<OrgId>("org_id", &body.org_id)?;
        let Some(token) = &caller.session_token else {
            return Err(ApiError::new(
                ErrorCode::AccessDenied,
                "only a session can switch orgs; an API key or an access token works in its own org",
            ));
        };
        let new = self.identity().switch_org(&caller.ctx, token, org).await?;
        Ok(SignInResponse {
            csrf_token: csrf_token_for(&new.token),
            session_token: ShownOnce(new.token.expose_secret().to_owned()),
            session: SessionView::new(&new.session, Some(new.session.id)),
        })
    }
}
