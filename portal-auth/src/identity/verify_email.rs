//! Email verification by mail: a signed-in user asks for a link to their address, and the
//! link's token, presented by the same signed-in user, marks the address verified.
//! Configured with [`EmailVerification`].
//!
//! - **A token works once, for 24 hours**, for its user and the address it was mailed to,
//!   and is stored only as its SHA-256 ([`VerifyToken`], [`EmailVerificationStore`]);
//!   using one retires the user's other unused verification tokens.
//! - Refusals, one code each (param `token`): malformed, tampered or unknown
//!   `auth.token_invalid` (also for a token mailed to an address the user no longer has);
//!   used or retired `auth.token_used`; expired `auth.token_expired`; another user's
//!   `auth.token_wrong_user`, which leaves the token usable by its own user.
//! - Confirming needs the signed-in user the link was sent to: a leaked link verifies
//!   nothing for whoever holds it. The address verified is the one the token was mailed
//!   to, and only while it is still the user's.

use std::sync::Arc;
use std::time::Instant;

use portal_core::identity::{EmailTokenRecord, EmailTokenUse, EmailVerificationStore, VerifiedEmail};
use portal_core::mail::{MailTemplates, Mailer};
use portal_core::tenancy::Email;
use portal_core::{ErrorCode, PortalError, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::token::VerifyToken;
use super::{IdentityService, principal_user};

/// How email verification works: where tokens are kept, how mail is sent, and the link.
#[derive(Clone)]
pub struct EmailVerification {
    /// Where verification tokens and verified addresses are kept (every identity store of
    /// `portal-adapters` is one).
    pub store: Arc<dyn EmailVerificationStore>,
    /// How the link is sent.
    pub mailer: Arc<dyn Mailer>,
    /// The message's text.
    pub templates: MailTemplates,
    /// The page that takes a verification token, such as
    /// `https://portal.example/verify-email`: the link is this URL with `token=<token>`
    /// added to its query.
    pub link: String,
    /// How long a token works. Default 24 hours.
    pub lifetime: Duration,
}

impl EmailVerification {
    /// Verification through `store` and `mailer`, links to `link`, the default templates
    /// and a 24-hour lifetime.
    pub fn new(store: Arc<dyn EmailVerificationStore>, mailer: Arc<dyn Mailer>, link: impl Into<String>) -> Self {
        Self {
            store,
            mailer,
            templates: MailTemplates::default(),
            link: link.into(),
            lifetime: Duration::hours(24),
        }
    }

    /// The same, with `templates`.
    pub fn with_templates(mut self, templates: MailTemplates) -> Self {
        self.templates = templates;
        self
    }

    /// The link carrying `token`.
    fn link_for(&self, token: &SecretString) -> SecretString {
        let separator = if self.link.contains('?') { '&' } else { '?' };
        SecretString::from(format!("{}{separator}token={}", self.link, token.expose_secret()))
    }
}

impl std::fmt::Debug for EmailVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailVerification")
            .field("link", &self.link)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A user's address and whether it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailStatus {
    /// The user's address now.
    pub email: Email,
    /// When that address was verified, if it is.
    pub verified_at: Option<OffsetDateTime>,
}

fn token_error(code: ErrorCode, message: &str) -> PortalError {
    PortalError::new(code, message.to_owned()).with_param("token")
}

impl IdentityService {
    fn verification_config(&self) -> Result<Arc<EmailVerification>, PortalError> {
        self.inner.verification.clone().ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "email verification is not configured (IdentityService::with_email_verification)",
            )
        })
    }

    /// The signed-in user's address now, found by their id.
    async fn current_email(&self, ctx: &RequestContext) -> Result<(portal_core::ids::UserId, Email), PortalError> {
        let user = principal_user(ctx)?;
        let account = self
            .inner
            .tenancy
            .get_user(user)
            .await?
            .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
        Ok((user, account.email))
    }

    /// Mails the signed-in user a link that verifies their address (a new token each
    /// time; using one retires the others). The message is sent before this answers, so
    /// a mail server that refuses it is reported. Limit requests per user and per source
    /// at the edge: this method does not.
    ///
    /// # Errors
    ///
    /// `access.denied` for a caller that is not a user; `user.not_found`;
    /// `mail.unavailable`; `internal.error` when email verification is not configured or
    /// the random generator fails; `storage.*`.
    pub async fn request_email_verification(&self, ctx: &RequestContext) -> Result<(), PortalError> {
        let started = Instant::now();
        let mut user = None;
        let result = async {
            let config = self.verification_config()?;
            let (id, email) = self.current_email(ctx).await?;
            user = Some(id);
            let token = VerifyToken::generate()?;
            config
                .store
                .issue_email_token(&EmailTokenRecord {
                    token_hash: token.hash(),
                    user: id,
                    email: email.clone(),
                    created_at: ctx.now(),
                    expires_at: ctx.now() + config.lifetime,
                    used_at: None,
                })
                .await?;
            let link = config.link_for(&token.into_secret());
            let hours = config.lifetime.whole_hours().to_string();
            let message = config.templates.email_verification.render(
                &email,
                &[
                    ("link", link.expose_secret()),
                    ("hours", &hours),
                    ("product", &config.templates.product),
                ],
            );
            config.mailer.send(&message).await?;
            Ok(())
        }
        .await;
        self.record(
            ctx,
            "auth.email_verification.request",
            None,
            started,
            result.as_ref(),
            |()| json!({ "user": user }),
        );
        result
    }

    /// Verifies the signed-in user's address with the `token` of a mailed link.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid` (malformed, tampered, unknown, or mailed to an address the
    /// user no longer has), `auth.token_used`, `auth.token_expired`,
    /// `auth.token_wrong_user` (param `token`); `access.denied` for a caller that is not a
    /// user; `user.not_found`; `internal.error` when email verification is not configured;
    /// `storage.*`.
    pub async fn verify_email(&self, ctx: &RequestContext, token: SecretString) -> Result<VerifiedEmail, PortalError> {
        let started = Instant::now();
        let result = async {
            let config = self.verification_config()?;
            let (user, email) = self.current_email(ctx).await?;
            let token = VerifyToken::parse(&token)
                .ok_or_else(|| token_error(ErrorCode::TokenInvalid, "the verification token is not valid"))?;
            match config
                .store
                .use_email_token(&token.hash(), user, &email, ctx.now())
                .await?
            {
                EmailTokenUse::Verified(record) => Ok(VerifiedEmail {
                    user,
                    email: record.email,
                    verified_at: record.used_at.unwrap_or_else(|| ctx.now()),
                }),
                EmailTokenUse::AlreadyUsed(_) => Err(token_error(
                    ErrorCode::TokenUsed,
                    "the verification token was already used",
                )),
                EmailTokenUse::Expired(_) => Err(token_error(
                    ErrorCode::TokenExpired,
                    "the verification token has expired",
                )),
                EmailTokenUse::OtherUser => Err(token_error(
                    ErrorCode::TokenWrongUser,
                    "the verification token was sent to another user",
                )),
                EmailTokenUse::OtherAddress(_) | EmailTokenUse::Unknown => Err(token_error(
                    ErrorCode::TokenInvalid,
                    "the verification token is not valid",
                )),
            }
        }
        .await;
        self.record(
            ctx,
            "auth.email.verify",
            None,
            started,
            result.as_ref(),
            |verified| json!({ "user": verified.user }),
        );
        result
    }

    /// The signed-in user's address and whether it is verified (a verification of an
    /// earlier address does not count).
    ///
    /// # Errors
    ///
    /// `access.denied` for a caller that is not a user; `user.not_found`; `internal.error`
    /// when email verification is not configured; `storage.*`.
    pub async fn email_status(&self, ctx: &RequestContext) -> Result<EmailStatus, PortalError> {
        let config = self.verification_config()?;
        let (user, email) = self.current_email(ctx).await?;
        let verified = config.store.verified_email(user).await?;
        let verified_at = verified.filter(|v| v.email == email).map(|v| v.verified_at);
        Ok(EmailStatus { email, verified_at })
    }
}
