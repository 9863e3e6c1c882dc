//! Passwords: setting and changing them, the checks of a new one, hashing and
//! verification on blocking threads (the dummy hash of an unknown account), and the
//! rehash at sign-in. The hashing itself is in `password.rs`.

use std::sync::OnceLock;
use std::time::Instant;

use portal_core::audit::actions;
use portal_core::identity::{AuthFailure, PasswordRecord, ThrottleKey};
use portal_core::ids::{OrgId, UserId};
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::SecretString;
use serde_json::json;

use super::authenticate::refused;
use super::{IdentityService, NewSession, PasswordHasher, principal_user};

impl IdentityService {
    /// Sets `user`'s password (the first one, or a reset by the host): checked against the
    /// policy and the breach check, hashed, stored under the user's email. Existing
    /// sessions of the user are revoked first. Allowed to a service principal, and to the
    /// user themselves only while they have no password: replacing a password takes the
    /// current one ([`change_password`](Self::change_password), throttled like a sign-in)
    /// or a mailed link ([`reset_password`](Self::reset_password)), so a stolen session
    /// cannot take the account over.
    ///
    /// # Errors
    ///
    /// `access.denied` for anyone else, and for the user when they have a password;
    /// `user.not_found`; `validation.invalid_field` (`password`); `service.busy` (no
    /// hashing slot in time); `storage.*`.
    pub async fn set_password(
        &self,
        ctx: &RequestContext,
        user: UserId,
        password: SecretString,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let result = async {
            match ctx.principal() {
                Principal::User(me) if *me == user => {}
                Principal::Service(_) => {}
                Principal::User(_) | Principal::ApiKey { .. } => {
                    return Err(PortalError::new(
                        ErrorCode::AccessDenied,
                        "you are not allowed to do this",
                    ));
                }
            }
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            if ctx.principal().user().is_some() {
                let existing = self.inner.stores.credentials.find_password(&account.email).await?;
                if existing.is_some_and(|record| record.user == user) {
                    return Err(PortalError::new(
                        ErrorCode::AccessDenied,
                        "a password is replaced with the current one or a reset link",
                    ));
                }
            }
            self.check_new_password(&password).await?;
            let hash = self.hash_blocking(password).await?;
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_PASSWORD_CHANGED,
                    json!({ "method": "set" }),
                )
                .await?;
            self.inner.stores.sessions.revoke_all(user, ctx.now(), None).await?;
            self.inner
                .stores
                .credentials
                .set_password(
                    &PasswordRecord {
                        user,
                        email: account.email,
                        hash,
                        updated_at: ctx.now(),
                    },
                    Some(&event),
                )
                .await?;
            Ok(())
        }
        .await;
        self.record(
            ctx,
            "auth.password.set",
            None,
            started,
            result.as_ref(),
            |()| json!({ "user": user }),
        );
        result
    }

    /// Changes the signed-in user's password after checking the current one, revokes every
    /// session of theirs, and returns a new session for the caller (in `active_org`).
    ///
    /// The current password is checked exactly as a sign-in checks it, under the same
    /// throttle and the same counts ([`IdentityConfig`](super::IdentityConfig)): `source`
    /// is where the request comes from (the client's IP address), a wrong password counts
    /// as a failed sign-in of the account from that source, and a source locked out of
    /// signing in to the account is locked out of changing its password too (so a stolen
    /// session cannot guess the password faster than a sign-in could).
    ///
    /// Sessions are revoked before the new hash is stored: if storing fails, the user signs
    /// in again with the old password, and no session outlives a change.
    ///
    /// # Errors
    ///
    /// `auth.invalid_credentials` if `current` is wrong or the source is locked out
    /// (`failure` `wrong_secret` or `locked` in the `auth.password.change` event);
    /// `access.denied` for a non-user; `validation.invalid_field` (`password`, `source`);
    /// `service.busy` (no hashing slot in time); `storage.*`.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        current: SecretString,
        new: SecretString,
        source: &str,
        active_org: Option<OrgId>,
    ) -> Result<NewSession, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx);
        let result = async {
            let user = principal_user(ctx)?;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            let source = ThrottleKey::source(source)?;
            let key = ThrottleKey::Account(account.email.clone());
            let (record, _) = self
                .check_password(ctx, Some(&key), &source, Some(&account.email), current)
                .await
                .map_err(|(err, _)| err)?;
            if record.user != user {
                return Err(PortalError::from(refused(AuthFailure::UnknownAccount)));
            }
            self.check_new_password(&new).await?;
            let hash = self.hash_blocking(new).await?;
            let event = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_PASSWORD_CHANGED,
                    json!({ "method": "change" }),
                )
                .await?;
            self.inner.stores.sessions.revoke_all(user, ctx.now(), None).await?;
            self.inner
                .stores
                .credentials
                .set_password(
                    &PasswordRecord {
                        user,
                        email: account.email.clone(),
                        hash,
                        updated_at: ctx.now(),
                    },
                    Some(&event),
                )
                .await?;
            let active_org = self.member_org(user, active_org).await?;
            let (token, session) = self.new_session(ctx, user, active_org)?;
            // The caller's new session continues the change; it is no sign-in of its own.
            self.inner.stores.sessions.create(&session, None).await?;
            self.notify_password_changed(ctx, account.email);
            Ok(NewSession { token, session })
        }
        .await;
        self.record_auth(
            ctx,
            "auth.password.change",
            started,
            None,
            result.as_ref(),
            |s| json!({ "user": s.session.user, "session": s.session.id }),
            json!({ "user": user.ok() }),
        );
        result
    }

    pub(super) async fn check_new_password(&self, password: &SecretString) -> Result<(), PortalError> {
        self.inner.config.password_policy.check_length(password)?;
        if self.inner.breach.is_breached(password).await? {
            return Err(PortalError::invalid_field(
                "password",
                "this password appears in a known data breach; choose another",
            ));
        }
        Ok(())
    }

    /// Hashes `password` on a blocking thread, holding a slot of the hash limit for as
    /// long as the hash runs.
    pub(super) async fn hash_blocking(&self, password: SecretString) -> Result<SecretString, PortalError> {
        let hasher = self.inner.hasher.clone();
        let permit = self.inner.hash_limit.acquire().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hasher.hash(&password)
        })
        .await
        .map_err(|err| PortalError::new(ErrorCode::Internal, "the hashing task failed").with_source(err.to_string()))?
    }

    /// Verifies `password` against `hash`, or against a dummy hash of the current
    /// parameters when there is none (an unknown account), on a blocking thread; the
    /// dummy is made once, on first use. A slot of the hash limit is held for as long as
    /// the work runs (moved into the blocking task, so a cancelled request keeps it until
    /// its hash ends).
    ///
    /// # Errors
    ///
    /// `service.busy` when no slot frees up within the limit's wait.
    pub(super) async fn verify_blocking(
        &self,
        hash: Option<SecretString>,
        password: SecretString,
    ) -> Result<bool, PortalError> {
        let hasher = self.inner.hasher.clone();
        let dummy = self.inner.dummy_hash.clone();
        let permit = self.inner.hash_limit.acquire().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_or_dummy(&hasher, &dummy, hash, &password)
        })
        .await
        .map_err(|err| PortalError::new(ErrorCode::Internal, "the hashing task failed").with_source(err.to_string()))?
    }

    /// After a successful sign-in, replaces a hash made with other parameters than the
    /// current ones by a hash of the verified `password`. A failure is recorded and
    /// otherwise ignored: the old hash still works.
    pub(super) async fn rehash_if_needed(&self, ctx: &RequestContext, stored: PasswordRecord, password: SecretString) {
        if !self.inner.hasher.needs_rehash(&stored.hash) {
            return;
        }
        let user = stored.user;
        let started = Instant::now();
        let result: Result<(), PortalError> = async {
            let hash = self.hash_blocking(password).await?;
            self.inner
                .stores
                .credentials
                .set_password(
                    &PasswordRecord {
                        hash,
                        updated_at: ctx.now(),
                        ..stored
                    },
                    None,
                )
                .await?;
            Ok(())
        }
        .await;
        let params = self.inner.hasher.params();
        self.record(ctx, "auth.password.rehash", None, started, result.as_ref(), |()| {
            json!({ "user": user, "memory_kib": params.memory_kib, "iterations": params.iterations, "parallelism": params.parallelism })
        });
    }
}

/// Verifies `password` against `hash`, or against the dummy hash (made on first use) when
/// there is none, so an unknown account costs what a known one does; `false` then.
fn verify_or_dummy(
    hasher: &PasswordHasher,
    dummy: &OnceLock<SecretString>,
    hash: Option<SecretString>,
    password: &SecretString,
) -> Result<bool, PortalError> {
    match hash {
        Some(hash) => Ok(hasher.verify(&hash, password)),
        None => {
            if dummy.get().is_none() {
                let made = hasher.hash(&SecretString::from("portal-core dummy password".to_owned()))?;
                let _ = dummy.set(made);
            }
            if let Some(dummy) = dummy.get() {
                let _ = hasher.verify(dummy, password);
            }
            Ok(false)
        }
    }
}
