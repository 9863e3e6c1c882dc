//! The host's reset of a user's second factors: support's way back in for a user who lost
//! every factor (the authenticator app and its recovery codes, every passkey), whom no
//! step-up can let remove one. See [`IdentityService::reset_second_factors`].

use std::time::Instant;

use portal_core::audit::actions;
use portal_core::ids::UserId;
use portal_core::support::SupportReason;
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use serde::Serialize;
use serde_json::json;

use super::IdentityService;

/// What [`IdentityService::reset_second_factors`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FactorReset {
    /// Sessions of the user it revoked.
    pub sessions_revoked: u64,
    /// Whether it removed a TOTP factor (confirmed with its recovery codes, or pending).
    pub totp_removed: bool,
    /// Passkeys it removed.
    pub passkeys_removed: usize,
}

impl IdentityService {
    /// Removes every second factor of `user` (the TOTP factor, confirmed or pending, with
    /// its recovery codes, and every passkey) and ends every session of theirs, for
    /// `reason`: the way back for a user who lost them all.
    ///
    /// **Only the host may call it** (a [`Principal::Service`]), after it has made sure,
    /// out of band, that whoever asks owns the account: the reset leaves the password as
    /// the only thing between anyone and the account. No user, API key or org
    /// administrator may, since a user may belong to orgs the administrator does not
    /// manage, and a session alone changes no way of signing in.
    ///
    /// - Sessions are revoked first, so that none survives a reset that fails half-way;
    ///   each removal then commits with its audit events. Calling it again finishes a
    ///   reset that failed, and answers zeros when there is nothing left.
    /// - Audit, in every org the user is a member of, with the service as actor:
    ///   `user.sessions_revoked` (the count, `"reset": true` and the `reason`, when any was
    ///   live), `user.mfa_removed` (`{"factor": "totp", "reset": true, "reason"}`, for a
    ///   confirmed factor), and `user.passkey_removed` per passkey (with `"reset": true`
    ///   and the `reason`).
    /// - The user is mailed a notice (template `second_factors_reset`), off the request
    ///   path, when mail is configured ([`PasswordReset`](super::PasswordReset)); the
    ///   `auth.mfa.reset.notify` event records how that went.
    /// - The `auth.mfa.reset` event names the user and the counts, never the reason's
    ///   text (the audit log keeps it).
    ///
    /// Afterwards the user signs in with their password (or resets it by mail), and an
    /// org requiring a second factor refuses them (`auth.mfa_required`) until they enroll
    /// one again; enrolling then asks only the password.
    ///
    /// # Errors
    ///
    /// `access.denied` for anyone but the host; `validation.invalid_field` (`reason`:
    /// empty, longer than [`SupportReason::MAX_CHARS`] or holding control characters);
    /// `user.not_found`; `storage.*`.
    pub async fn reset_second_factors(
        &self,
        ctx: &RequestContext,
        user: UserId,
        reason: &str,
    ) -> Result<FactorReset, PortalError> {
        let started = Instant::now();
        let result = async {
            if !matches!(ctx.principal(), Principal::Service(_)) {
                return Err(PortalError::new(
                    ErrorCode::AccessDenied,
                    "only the host resets a user's second factors",
                ));
            }
            let reason = SupportReason::new(reason)?;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            let mut reset = FactorReset::default();
            let revoked = self
                .user_event(
                    ctx,
                    ctx.principal(),
                    user,
                    actions::USER_SESSIONS_REVOKED,
                    json!({ "reset": true, "reason": reason.as_str() }),
                )
                .await?;
            reset.sessions_revoked = self
                .inner
                .stores
                .sessions
                .revoke_all(user, ctx.now(), Some(&revoked))
                .await?;
            if let Some(mfa) = &self.inner.mfa
                && mfa.factors.find_totp(user).await?.is_some()
            {
                let event = self
                    .user_event(
                        ctx,
                        ctx.principal(),
                        user,
                        actions::USER_MFA_REMOVED,
                        json!({ "factor": "totp", "reset": true, "reason": reason.as_str() }),
                    )
                    .await?;
                reset.totp_removed = mfa.factors.remove_totp(user, &event).await?;
            }
            if let Some(passkeys) = &self.inner.passkeys {
                for passkey in passkeys.store.passkeys(user).await? {
                    let event = self
                        .user_event(
                            ctx,
                            ctx.principal(),
                            user,
                            actions::USER_PASSKEY_REMOVED,
                            json!({
                                "passkey": passkey.id,
                                "name": passkey.name.to_string(),
                                "reset": true,
                                "reason": reason.as_str(),
                            }),
                        )
                        .await?;
                    if passkeys.store.remove_passkey(user, passkey.id, &event).await? {
                        reset.passkeys_removed += 1;
                    }
                }
            }
            if reset.totp_removed || reset.passkeys_removed > 0 {
                self.notify_by_mail(ctx, account.email, "auth.mfa.reset.notify", |t| &t.second_factors_reset);
            }
            Ok(reset)
        }
        .await;
        self.record(ctx, "auth.mfa.reset", None, started, result.as_ref(), |reset| {
            json!({
                "user": user,
                "sessions_revoked": reset.sessions_revoked,
                "totp_removed": reset.totp_removed,
                "passkeys_removed": reset.passkeys_removed,
            })
        });
        result
    }
}
