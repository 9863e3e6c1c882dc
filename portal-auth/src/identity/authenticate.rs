//! The [`Authenticator`] impl of [`IdentityService`], and the conversions between a
//! refusal ([`AuthError`]) and a [`PortalError`].

use std::time::Instant;

use async_trait::async_trait;
use portal_core::diagnostics::Detail;
use portal_core::identity::{AuthError, AuthFailure, Authenticated, Authenticator, Credential, ThrottleKey};
use portal_core::ids::{OrgId, SessionId, UserId};
use portal_core::tenancy::Email;
use portal_core::{PortalError, RequestContext};
use serde::Serialize;
use serde_json::json;

use super::IdentityService;

/// An authentication failure, recorded and returned.
pub(super) fn refused(failure: AuthFailure) -> AuthError {
    AuthError::InvalidCredentials { failure }
}

#[async_trait]
impl Authenticator for IdentityService {
    /// Checks a password (without starting a session: use
    /// [`sign_in`](IdentityService::sign_in) for that), a session token, an API key, or
    /// hands a bearer token to the bearer authenticator. Records `auth.password`,
    /// `auth.session` or `auth.api_key.use`, with `detail.failure` on a refusal.
    async fn authenticate(&self, ctx: &RequestContext, credential: &Credential) -> Result<Authenticated, AuthError> {
        let started = Instant::now();
        let mut seen = json!({});
        let (name, result) = match credential {
            Credential::Password { email, password } => {
                let email_key = Email::new(email).ok();
                let account = email_key.clone().map(ThrottleKey::Account);
                // A password check without a source is throttled as one source, `unknown`.
                let source = ThrottleKey::Source("unknown".to_owned());
                let checked = self
                    .check_password(ctx, account.as_ref(), &source, email_key.as_ref(), password.clone())
                    .await;
                let result = match checked {
                    Ok((stored, _)) => {
                        let user = stored.user;
                        seen = json!({ "user": user });
                        // A password alone never authenticates a user with a second factor
                        // (a confirmed TOTP factor or a passkey).
                        match self.second_factors(user).await {
                            Ok(factors) if !factors.any() => Ok(Authenticated::user(user)),
                            Ok(_) => Err(refused(AuthFailure::SecondFactorRequired)),
                            Err(err) => Err(AuthError::Other(Box::new(err))),
                        }
                    }
                    Err((err, user)) => {
                        seen = json!({ "user": user });
                        Err(into_auth_error(err))
                    }
                };
                ("auth.password", result)
            }
            Credential::Session(token) => ("auth.session", self.authenticate_session(ctx, token, &mut seen).await),
            Credential::ApiKey(key) => ("auth.api_key.use", self.authenticate_api_key(ctx, key, &mut seen).await),
            Credential::Bearer(_) => match &self.inner.bearer {
                // The bearer authenticator records its own events.
                Some(bearer) => return bearer.authenticate(ctx, credential).await,
                None => ("auth.bearer", Err(refused(AuthFailure::Malformed))),
            },
        };
        let org = result.as_ref().ok().and_then(|a| a.org);
        // Recorded as the very error the caller gets, its sources included; a store's
        // failure comes back as that `PortalError` (`AuthError::Other`), a refusal as itself.
        let outcome = result.map_err(PortalError::from);
        match credential {
            // A key's detail names the key (`seen`: id, prefix, org) with the session and org.
            Credential::ApiKey(_) => self.record_auth(
                ctx,
                name,
                started,
                org,
                outcome.as_ref(),
                |a| {
                    let mut detail = seen.clone();
                    detail["session"] = json!(a.session);
                    detail["org"] = json!(a.org);
                    detail
                },
                seen.clone(),
            ),
            // A user's is made from what was authenticated, typed: nothing built for it here.
            _ => self.record_auth(
                ctx,
                name,
                started,
                org,
                outcome.as_ref(),
                |a| Detail::deferred(SignedIn::of(a)),
                seen,
            ),
        }
        outcome.map_err(into_auth_error)
    }
}

/// The detail of a user's authentication (`auth.session.v1`, `auth.password.v1`): the user,
/// the session, the org.
#[derive(Serialize)]
struct SignedIn {
    user: Option<UserId>,
    session: Option<SessionId>,
    org: Option<OrgId>,
}

impl SignedIn {
    fn of(authenticated: &Authenticated) -> Self {
        Self {
            user: authenticated.principal.user(),
            session: authenticated.session,
            org: authenticated.org,
        }
    }
}

/// A `PortalError` from the password check back as an `AuthError`.
fn into_auth_error(err: PortalError) -> AuthError {
    let failure = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<AuthError>())
        .and_then(AuthError::failure);
    match failure {
        Some(failure) => refused(failure),
        None => AuthError::Other(Box::new(err)),
    }
}
