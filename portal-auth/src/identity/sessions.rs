//! Sign-in and sessions: sign-in with its throttling, session authentication, sign-out,
//! rotation, switching the active org, listing and revoking sessions.

use std::time::Instant;

use portal_core::audit::actions;
use portal_core::diagnostics::{DiagnosticEvent, EventKind};
use portal_core::identity::{AuthError, AuthFailure, Authenticated, PasswordRecord, SessionRecord, ThrottleKey};
use portal_core::ids::{OrgId, SessionId, UserId};
use portal_core::store::{Page, PageRequest};
use portal_core::tenancy::{Email, Membership};
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::authenticate::refused;
use super::token::SessionToken;
use super::{IdentityService, NewSession, SignIn, SignInStep, principal_user};

impl IdentityService {
    /// Signs a user in with email and password and starts a session (in their only org,
    /// if they have exactly one). Refused while the source is locked, for the account or
    /// for every account (see [`IdentityConfig`](super::IdentityConfig) for the model).
    ///
    /// `ctx` is the request's context before authentication (the host's service
    /// principal). Every refusal is `auth.invalid_credentials`; the
    /// `auth.sign_in` event says why (`unknown_account`, `wrong_secret`, `locked`).
    /// A user with a second factor (a confirmed TOTP factor or a passkey) is not signed in
    /// by a password: use [`begin_sign_in`](Self::begin_sign_in), which answers their MFA
    /// challenge.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials`; `auth.second_factor_required` for a user with a
    /// second factor; `validation.invalid_field` (`source`); `service.busy`
    /// when no password-hashing slot frees up in time ([`HashLimit`](super::HashLimit));
    /// `storage.*`.
    pub async fn sign_in(&self, ctx: &RequestContext, request: SignIn) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut user_seen = None;
        let result = self.sign_in_inner(ctx, request, &mut user_seen).await;
        self.record_auth(
            ctx,
            "auth.sign_in",
            started,
            None,
            result.as_ref(),
            |s| json!({ "user": s.session.user, "session": s.session.id, "active_org": s.session.active_org }),
            json!({ "user": user_seen }),
        );
        result
    }

    async fn sign_in_inner(
        &self,
        ctx: &RequestContext,
        request: SignIn,
        user_seen: &mut Option<UserId>,
    ) -> Result<NewSession, PortalError> {
        match self.sign_in_step(ctx, request, user_seen).await? {
            SignInStep::Session(session) => Ok(session),
            SignInStep::MfaChallenge(_) => Err(PortalError::new(
                ErrorCode::SecondFactorRequired,
                "this account needs a second factor: sign in with begin_sign_in and complete its challenge",
            )),
        }
    }

    /// Starts a session for `user` (in their only org, if they have exactly one), in
    /// place of the client's `previous` session if it holds a live one (rotated, so a
    /// session fixed before sign-in never becomes a signed-in one).
    pub(super) async fn start_session(
        &self,
        ctx: &RequestContext,
        user: UserId,
        previous: Option<&SecretString>,
        reason: &str,
    ) -> Result<NewSession, PortalError> {
        // Two at most: enough to tell whether the user has exactly one org.
        let orgs = self.inner.tenancy.list_user_orgs(user, None, 2).await?;
        let active_org = match orgs.as_slice() {
            [(org, _)] => Some(org.id),
            _ => None,
        };
        let (token, session) = self.new_session(ctx, user, active_org)?;
        let method = match reason {
            "mfa" => "mfa",
            "passkey" => "passkey",
            "sign_up" => "sign_up",
            _ => "password",
        };
        let event = self
            .user_event(
                ctx,
                &Principal::User(user),
                user,
                actions::USER_SIGNED_IN,
                json!({ "method": method, "session": session.id }),
            )
            .await?;
        let previous = previous.and_then(SessionToken::parse).map(|t| t.hash());
        let previous = match previous {
            Some(hash) => self
                .inner
                .stores
                .sessions
                .find_by_token(&hash)
                .await?
                .filter(|s| s.revoked_at.is_none()),
            None => None,
        };
        match previous {
            Some(old) => {
                self.inner
                    .stores
                    .sessions
                    .rotate(old.id, &session, ctx.now(), Some(&event))
                    .await?;
                self.record_session_event(ctx, "auth.session.rotate", &session, Some(old.id), reason);
            }
            None => {
                self.inner.stores.sessions.create(&session, Some(&event)).await?;
                self.record_session_event(ctx, "auth.session.create", &session, None, reason);
            }
        }
        Ok(NewSession { token, session })
    }

    /// Checks throttling and the password; returns the user and their record, or the
    /// refusal (and the user, when one was found). The throttling model is described on
    /// [`IdentityConfig`](super::IdentityConfig): before any hashing, the attempt is
    /// refused when its source failed too often (on any account), when this source failed
    /// too often for this account, or when the account is under attack (too many failures
    /// from all sources) and this source is one of those that failed for it. A source that
    /// has not failed for the account is never refused because of others' failures. A
    /// failure counts against the account, the account from this source, and the source;
    /// a success forgets this source's failures for the account.
    pub(super) async fn check_password(
        &self,
        ctx: &RequestContext,
        account: Option<&ThrottleKey>,
        source: &ThrottleKey,
        email: Option<&Email>,
        password: SecretString,
    ) -> Result<(PasswordRecord, SecretString), (PortalError, Option<UserId>)> {
        let attempts = &self.inner.stores.attempts;
        let config = &self.inner.config;
        let since = ctx.now() - config.throttle_window;
        let plain = |err: PortalError| (err, None);
        let pair = email.and_then(|email| source.with_account(email));
        let mut counts = [0_u64; 3];
        for (slot, key) in counts.iter_mut().zip([Some(source), pair.as_ref(), account]) {
            if let Some(key) = key {
                *slot = attempts.failures_since(key, since).await.map_err(|e| plain(e.into()))?;
            }
        }
        let [source_failures, pair_failures, account_failures] = counts;
        let under_attack = account_failures >= config.max_account_failures;
        if source_failures >= config.max_source_failures
            || pair_failures >= config.max_account_source_failures
            || (under_attack && pair_failures > 0)
        {
            return Err(plain(PortalError::from(refused(AuthFailure::Locked))));
        }
        let record = match email {
            Some(email) => self
                .inner
                .stores
                .credentials
                .find_password(email)
                .await
                .map_err(|e| plain(e.into()))?,
            None => None,
        };
        let user = record.as_ref().map(|r| r.user);
        let matched = self
            .verify_blocking(record.as_ref().map(|r| r.hash.clone()), password.clone())
            .await
            .map_err(|e| (e, user))?;
        match record {
            Some(record) if matched => {
                if let Some(pair) = &pair {
                    attempts.clear(pair).await.map_err(|e| (e.into(), user))?;
                }
                Ok((record, password))
            }
            found => {
                let failure = if found.is_some() {
                    AuthFailure::WrongSecret
                } else {
                    AuthFailure::UnknownAccount
                };
                for key in [Some(source), pair.as_ref(), account].into_iter().flatten() {
                    attempts
                        .record_failure(key, ctx.now())
                        .await
                        .map_err(|e| (e.into(), user))?;
                }
                Err((PortalError::from(refused(failure)), user))
            }
        }
    }

    /// Forgets the failed sign-ins too old to count any more (from before the throttle
    /// window that ends at `ctx`'s time) and returns how many it forgot. Nothing else
    /// removes them: a host calls this now and then (the reference servers every five
    /// minutes), or the store grows by every failed sign-in ever made.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn prune_login_failures(&self, ctx: &RequestContext) -> Result<u64, PortalError> {
        let before = ctx.now() - self.inner.config.throttle_window;
        Ok(self.inner.stores.attempts.prune(before).await?)
    }

    pub(super) fn new_session(
        &self,
        ctx: &RequestContext,
        user: UserId,
        active_org: Option<OrgId>,
    ) -> Result<(SecretString, SessionRecord), PortalError> {
        let token = SessionToken::generate()?;
        let session = SessionRecord {
            id: SessionId::generate(&*self.inner.ids, ctx.now()),
            user,
            token_hash: token.hash(),
            active_org,
            created_at: ctx.now(),
            last_seen_at: ctx.now(),
            absolute_expires_at: ctx.now() + self.inner.config.session_absolute,
            revoked_at: None,
        };
        Ok((token.into_secret(), session))
    }

    /// `org` if `user` is a member of it.
    pub(super) async fn member_org(&self, user: UserId, org: Option<OrgId>) -> Result<Option<OrgId>, PortalError> {
        Ok(self.membership_in(user, org).await?.map(|m| m.org))
    }

    /// The user's membership of `org`, if `org` is given and the user is a member.
    async fn membership_in(&self, user: UserId, org: Option<OrgId>) -> Result<Option<Membership>, PortalError> {
        match org {
            Some(org) => Ok(self.inner.tenancy.get_membership(org, user).await?),
            None => Ok(None),
        }
    }

    /// The live session of `token`, or why there is none.
    async fn live_session(&self, ctx: &RequestContext, token: &SecretString) -> Result<SessionRecord, AuthError> {
        self.live_session_seen(ctx, token, &mut Value::Null).await
    }

    /// [`live_session`](Self::live_session), noting the ids of a session it refuses in
    /// `seen` (for the refusal's diagnostic event).
    async fn live_session_seen(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        seen: &mut Value,
    ) -> Result<SessionRecord, AuthError> {
        let token = SessionToken::parse(token).ok_or(refused(AuthFailure::Malformed))?;
        let hash = token.hash();
        let session = self
            .inner
            .stores
            .sessions
            .find_by_token(&hash)
            .await?
            .filter(|s| s.token_hash.ct_eq(&hash))
            .ok_or(refused(AuthFailure::WrongSecret))?;
        self.live(ctx, session, seen)
    }

    /// `session` if it is live now, or why it is not, noting its ids in `seen` when it is
    /// not (a live session's event is made from what authentication answers, so nothing
    /// is built for it here).
    fn live(&self, ctx: &RequestContext, session: SessionRecord, seen: &mut Value) -> Result<SessionRecord, AuthError> {
        let failure = if session.revoked_at.is_some() {
            AuthFailure::Revoked
        } else if !session.is_live_at(ctx.now(), self.inner.config.session_idle) {
            AuthFailure::Expired
        } else {
            return Ok(session);
        };
        *seen = json!({ "user": session.user, "session": session.id });
        Err(refused(failure))
    }

    pub(super) async fn authenticate_session(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        seen: &mut Value,
    ) -> Result<Authenticated, AuthError> {
        // The active org is checked against membership on every request: a member
        // removed since keeps their session but loses the org.
        // The roles read here travel with the request, so its services need not read the
        // membership again.
        // With the joined read, the org's MFA standing of the user comes in the same call
        // and travels with the request too, so the gate need not read the policy.
        let (session, membership, mfa_unmet) = match &self.inner.session_memberships {
            Some(store) => {
                let hash = SessionToken::parse(token)
                    .ok_or(refused(AuthFailure::Malformed))?
                    .hash();
                let found = store.find_session_with_membership(&hash).await?;
                let found = found
                    .filter(|found| found.session.token_hash.ct_eq(&hash))
                    .ok_or(refused(AuthFailure::WrongSecret))?;
                let session = self.live(ctx, found.session, seen)?;
                let membership = found
                    .membership
                    .filter(|m| Some(m.org) == session.active_org && m.user == session.user);
                (session, membership, Some(found.mfa_unmet))
            }
            None => {
                let session = self.live_session_seen(ctx, token, seen).await?;
                let membership = self
                    .membership_in(session.user, session.active_org)
                    .await
                    .map_err(AuthError::from)?;
                (session, membership, None)
            }
        };
        let org = membership.as_ref().map(|m| m.org);
        let stale = ctx.now() - session.last_seen_at >= self.inner.config.touch_interval;
        if stale || org != session.active_org {
            self.inner.stores.sessions.touch(session.id, ctx.now(), org).await?;
        }
        let authenticated = Authenticated::user(session.user).with_session(session.id).with_org(org);
        Ok(match (membership, mfa_unmet) {
            (Some(m), Some(unmet)) => authenticated.with_org_roles(m.roles.to_vec()).with_org_mfa_unmet(unmet),
            (Some(m), None) => authenticated.with_org_roles(m.roles.to_vec()),
            (None, _) => authenticated,
        })
    }

    /// Signs the session of `token` out (revokes it). A token that names no live session
    /// changes nothing and is not an error.
    ///
    /// # Errors
    ///
    /// `storage.*`.
    pub async fn sign_out(&self, ctx: &RequestContext, token: &SecretString) -> Result<(), PortalError> {
        let started = Instant::now();
        let result: Result<Option<SessionRecord>, PortalError> = async {
            let Ok(session) = self.live_session(ctx, token).await else {
                return Ok(None);
            };
            let event = self
                .user_event(
                    ctx,
                    &Principal::User(session.user),
                    session.user,
                    actions::USER_SIGNED_OUT,
                    json!({ "session": session.id, "reason": "sign_out" }),
                )
                .await?;
            Ok(Some(
                self.inner
                    .stores
                    .sessions
                    .revoke(session.user, session.id, ctx.now(), Some(&event))
                    .await?,
            ))
        }
        .await;
        self.record(
            ctx,
            "auth.session.revoke",
            None,
            started,
            result.as_ref(),
            |s| match s {
                Some(s) => json!({ "user": s.user, "session": s.id, "reason": "sign_out" }),
                None => json!({ "session": null, "reason": "sign_out" }),
            },
        );
        result.map(|_| ())
    }

    /// Replaces the session of `token` with a new one (same user and org): call it when
    /// the user's privileges change, so a token captured before serves no longer. The new
    /// session keeps the old one's absolute expiry.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` if the token names no live session; `storage.*`.
    pub async fn rotate_session(&self, ctx: &RequestContext, token: &SecretString) -> Result<NewSession, PortalError> {
        self.rotate(ctx, token, None, "privilege_change").await
    }

    /// Makes `org` the active org of the session of `token`, without signing in again:
    /// the user must be a member, and the session is rotated (the new token works in the
    /// new org) with the old one's absolute expiry, so switching never extends a session.
    /// Requests made later are checked against the membership again.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` if the token names no live session; `org.not_found` if
    /// the user is not a member of `org`; `storage.*`.
    pub async fn switch_org(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        org: OrgId,
    ) -> Result<NewSession, PortalError> {
        self.rotate(ctx, token, Some(org), "switch_org").await
    }

    async fn rotate(
        &self,
        ctx: &RequestContext,
        token: &SecretString,
        org: Option<OrgId>,
        reason: &'static str,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let mut seen = json!({ "reason": reason });
        // The org the event is filed under: the session's own org until the rotation is
        // done, then its new one. Never the org asked for: a user who is not its member
        // is none of its business (its owner would read the stranger's user id), and the
        // user's own org then explains the request as the failure it was.
        let mut filed = None;
        let result = async {
            let old = self.live_session(ctx, token).await?;
            seen = json!({ "user": old.user, "session": old.id, "reason": reason });
            filed = old.active_org;
            let active_org = match org {
                Some(org) => Some(
                    self.member_org(old.user, Some(org))
                        .await?
                        .ok_or_else(|| PortalError::new(ErrorCode::OrgNotFound, "organization not found"))?,
                ),
                None => self.member_org(old.user, old.active_org).await?,
            };
            let (token, mut session) = self.new_session(ctx, old.user, active_org)?;
            // A rotation replaces the token, not the sign-in: the new session ends when
            // the old one would have, so rotating (or switching org, even to the same
            // one) again and again never keeps a session alive past its absolute end.
            session.absolute_expires_at = session.absolute_expires_at.min(old.absolute_expires_at);
            self.inner
                .stores
                .sessions
                .rotate(old.id, &session, ctx.now(), None)
                .await?;
            filed = session.active_org;
            Ok((NewSession { token, session }, old.id))
        }
        .await;
        self.record_auth(ctx, "auth.session.rotate", started, filed, result.as_ref(), |(s, old)| {
            json!({ "user": s.session.user, "session": s.session.id, "previous": old, "active_org": s.session.active_org, "reason": reason })
        }, seen);
        result.map(|(s, _)| s)
    }

    /// A page of the signed-in user's live sessions, newest first: many sessions are read
    /// page by page with the `next` cursor (the id of the last session read). A session
    /// idle past the idle timeout is left out of its page, so a page may hold fewer than
    /// its size and still have a `next`.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_sessions(
        &self,
        ctx: &RequestContext,
        page: &PageRequest,
    ) -> Result<Page<SessionRecord>, PortalError> {
        let started = Instant::now();
        let result = async {
            let user = principal_user(ctx)?;
            let size = page.size()?;
            let before = page
                .after
                .as_ref()
                .map(|cursor| {
                    cursor.as_str().parse::<SessionId>().map_err(|_| {
                        PortalError::invalid_field("cursor", "the cursor is not one this listing returned")
                    })
                })
                .transpose()?;
            let rows = self
                .inner
                .stores
                .sessions
                .list(user, ctx.now(), before, size + 1)
                .await?;
            let mut sessions = Page::from_overfetch(rows, size, |s| s.id.to_string());
            let idle = self.inner.config.session_idle;
            sessions.items.retain(|s| s.is_live_at(ctx.now(), idle));
            Ok(sessions)
        }
        .await;
        self.record(
            ctx,
            "auth.session.list",
            None,
            started,
            result.as_ref(),
            |s| json!({ "count": s.items.len() }),
        );
        result
    }

    /// Revokes one of the signed-in user's sessions.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `session.not_found` if it is not one of theirs;
    /// `storage.*`.
    pub async fn revoke_session(&self, ctx: &RequestContext, id: SessionId) -> Result<SessionRecord, PortalError> {
        let started = Instant::now();
        let result = async {
            let user = principal_user(ctx)?;
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_SIGNED_OUT,
                    json!({ "session": id, "reason": "revoked" }),
                )
                .await?;
            Ok(self
                .inner
                .stores
                .sessions
                .revoke(user, id, ctx.now(), Some(&event))
                .await?)
        }
        .await;
        self.record(
            ctx,
            "auth.session.revoke",
            None,
            started,
            result.as_ref(),
            |s| json!({ "user": s.user, "session": s.id, "reason": "revoked" }),
        );
        result
    }

    /// Revokes every session of the signed-in user (sign out everywhere); returns how many.
    /// When at least one was live, `user.sessions_revoked` (with the count) is written
    /// once per org of the user, in the revocation's transaction.
    ///
    /// # Errors
    ///
    /// `access.denied` for a non-user; `storage.*`.
    pub async fn revoke_all_sessions(&self, ctx: &RequestContext) -> Result<u64, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx);
        let result = async {
            let user = principal_user(ctx)?;
            // The store sets `sessions_revoked`, the count its transaction revoked.
            let event = self
                .user_event(ctx, ctx.principal(), user, actions::USER_SESSIONS_REVOKED, json!({}))
                .await?;
            Ok(self
                .inner
                .stores
                .sessions
                .revoke_all(user, ctx.now(), Some(&event))
                .await?)
        }
        .await;
        self.record(
            ctx,
            "auth.session.revoke_all",
            None,
            started,
            result.as_ref(),
            |n| json!({ "user": user.as_ref().ok(), "count": n }),
        );
        result
    }

    fn record_session_event(
        &self,
        ctx: &RequestContext,
        name: &'static str,
        session: &SessionRecord,
        previous: Option<SessionId>,
        reason: &str,
    ) {
        let event = DiagnosticEvent::new(ctx, EventKind::Authentication, name).with_detail(
            format!("{name}.v1"),
            json!({ "user": session.user, "session": session.id, "previous": previous, "active_org": session.active_org, "reason": reason }),
        );
        self.inner.gate.record(event);
    }
}
