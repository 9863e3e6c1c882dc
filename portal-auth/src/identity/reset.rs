//! Password reset by mail: a request mails a single-use link, the link's token sets a new
//! password and ends every session. Configured with [`PasswordReset`].
//!
//! - **Nothing tells whether an address has an account.** A request answers the same for
//!   any valid address and does the same work on the request path (one lookup, one token
//!   made); the message goes out off the request path: the reset link to an account's
//!   address, a "there is no account with this address" note to any other.
//! - **A token works once, for 30 minutes**, and is stored only as its SHA-256
//!   ([`ResetToken`], [`OneTimeTokenStore`]); using one retires the user's other unused
//!   reset tokens. A malformed, tampered or unknown token is `auth.token_invalid`, a used
//!   or retired one `auth.token_used`, an expired one `auth.token_expired`.
//! - **A reset ends every session** of the user, and the user is told by mail that the
//!   password changed (as after [`change_password`](IdentityService::change_password)).
//! - The new password is checked (length, breach list) before the token is used, so a
//!   refused password does not burn the link. Hashing runs after the token is used: when
//!   every hashing slot stays taken (`service.busy`), the user asks for another link.

use std::sync::Arc;
use std::time::Instant;

use portal_core::audit::actions;
use portal_core::identity::{OneTimeTokenRecord, OneTimeTokenStore, PasswordRecord, TokenPurpose, TokenUse};
use portal_core::ids::UserId;
use portal_core::mail::{MailTemplate, MailTemplates, Mailer};
use portal_core::tenancy::Email;
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;

use super::IdentityService;
use super::token::ResetToken;

/// How password reset works: where tokens are kept, how mail is sent, and the link.
#[derive(Clone)]
pub struct PasswordReset {
    /// Where reset tokens are kept (every identity store of `portal-adapters` is one).
    pub tokens: Arc<dyn OneTimeTokenStore>,
    /// How the link and the notices are sent.
    pub mailer: Arc<dyn Mailer>,
    /// The messages' texts.
    pub templates: MailTemplates,
    /// The page that takes a reset token, such as `https://portal.example/reset-password`:
    /// the link is this URL with `token=<token>` added to its query.
    pub link: String,
    /// How long a token works. Default 30 minutes.
    pub lifetime: Duration,
}

impl PasswordReset {
    /// Reset through `tokens` and `mailer`, links to `link`, the default templates and a
    /// 30-minute lifetime.
    pub fn new(tokens: Arc<dyn OneTimeTokenStore>, mailer: Arc<dyn Mailer>, link: impl Into<String>) -> Self {
        Self {
            tokens,
            mailer,
            templates: MailTemplates::default(),
            link: link.into(),
            lifetime: Duration::minutes(30),
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

impl std::fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordReset")
            .field("link", &self.link)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn token_error(code: ErrorCode, message: &str) -> PortalError {
    PortalError::new(code, message.to_owned()).with_param("token")
}

impl IdentityService {
    fn reset_config(&self) -> Result<Arc<PasswordReset>, PortalError> {
        self.inner.reset.clone().ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "password reset is not configured (IdentityService::with_password_reset)",
            )
        })
    }

    /// Asks for a password-reset link for `email`. Answers `Ok` for every valid address,
    /// whether or not it has an account, after the same work; the message is sent off the
    /// request path (the `auth.password_reset.deliver` event records how that went). Limit
    /// requests per address and per source at the edge: this method does not.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`email`) for text that is no address; `internal.error`
    /// when password reset is not configured or the random generator fails; `storage.*`.
    pub async fn request_password_reset(&self, ctx: &RequestContext, email: &str) -> Result<(), PortalError> {
        let started = Instant::now();
        let result = async {
            let reset = self.reset_config()?;
            let email = Email::new(email)?;
            let user = self
                .inner
                .stores
                .credentials
                .find_password(&email)
                .await?
                .map(|record| record.user);
            let token = ResetToken::generate()?;
            let this = self.clone();
            let task_ctx = ctx.clone();
            tokio::spawn(async move { this.deliver_reset(&task_ctx, &reset, email, user, token).await });
            Ok(user)
        }
        .await;
        self.record(
            ctx,
            "auth.password_reset.request",
            None,
            started,
            result.as_ref(),
            |user| json!({ "user": user }),
        );
        result.map(|_| ())
    }

    /// Stores the token and mails the link (an account), or mails the no-account note.
    async fn deliver_reset(
        &self,
        ctx: &RequestContext,
        reset: &PasswordReset,
        email: Email,
        user: Option<UserId>,
        token: ResetToken,
    ) {
        let started = Instant::now();
        let product = reset.templates.product.clone();
        let result: Result<(), PortalError> = async {
            let message = match user {
                Some(user) => {
                    reset
                        .tokens
                        .issue(&OneTimeTokenRecord {
                            token_hash: token.hash(),
                            user,
                            purpose: TokenPurpose::PasswordReset,
                            created_at: ctx.now(),
                            expires_at: ctx.now() + reset.lifetime,
                            used_at: None,
                        })
                        .await?;
                    let link = reset.link_for(&token.into_secret());
                    let minutes = reset.lifetime.whole_minutes().to_string();
                    reset.templates.password_reset.render(
                        &email,
                        &[
                            ("link", link.expose_secret()),
                            ("minutes", &minutes),
                            ("product", &product),
                        ],
                    )
                }
                None => reset
                    .templates
                    .password_reset_unknown
                    .render(&email, &[("product", &product)]),
            };
            reset.mailer.send(&message).await?;
            Ok(())
        }
        .await;
        self.record(
            ctx,
            "auth.password_reset.deliver",
            None,
            started,
            result.as_ref(),
            |()| json!({ "user": user }),
        );
    }

    /// Sets a new password with a reset `token` from a mailed link: checks the password,
    /// uses the token, revokes every session of its user, stores the new hash and mails
    /// the user that the password changed. Whoever holds the token may call it; it needs
    /// no session.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid` (malformed, tampered, unknown, or its user is gone),
    /// `auth.token_used`, `auth.token_expired` (param `token`); `validation.invalid_field`
    /// (`password`); `service.busy`; `internal.error` when password reset is not
    /// configured; `storage.*`.
    pub async fn reset_password(
        &self,
        ctx: &RequestContext,
        token: SecretString,
        password: SecretString,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let result = async {
            let reset = self.reset_config()?;
            let token = ResetToken::parse(&token)
                .ok_or_else(|| token_error(ErrorCode::TokenInvalid, "the reset token is not valid"))?;
            self.check_new_password(&password).await?;
            let record = match reset
                .tokens
                .consume(TokenPurpose::PasswordReset, &token.hash(), ctx.now())
                .await?
            {
                TokenUse::Consumed(record) => record,
                TokenUse::AlreadyUsed(_) => {
                    return Err(token_error(ErrorCode::TokenUsed, "the reset token was already used"));
                }
                TokenUse::Expired(_) => {
                    return Err(token_error(ErrorCode::TokenExpired, "the reset token has expired"));
                }
                TokenUse::Unknown => return Err(token_error(ErrorCode::TokenInvalid, "the reset token is not valid")),
            };
            let user = record.user;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| token_error(ErrorCode::TokenInvalid, "the reset token is not valid"))?;
            let hash = self.hash_blocking(password).await?;
            let event = self
                .user_event(
                    ctx,
                    &Principal::User(user),
                    user,
                    actions::USER_PASSWORD_RESET,
                    json!({}),
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
            self.notify_password_changed(ctx, account.email);
            Ok(user)
        }
        .await;
        self.record(
            ctx,
            "auth.password.reset",
            None,
            started,
            result.as_ref(),
            |user| json!({ "user": user }),
        );
        result.map(|_| ())
    }

    /// Mails `email` that its password changed, off the request path, when password reset
    /// (and so mail) is configured; the `auth.password.notify` event records the outcome.
    pub(super) fn notify_password_changed(&self, ctx: &RequestContext, email: Email) {
        self.notify_by_mail(ctx, email, "auth.password.notify", |t| &t.password_changed);
    }

    /// Mails `email` the notice `template` picks (with `{{product}}` filled in), off the
    /// request path, when password reset (and so mail) is configured; the `name` event
    /// records the outcome.
    pub(super) fn notify_by_mail(
        &self,
        ctx: &RequestContext,
        email: Email,
        name: &'static str,
        template: fn(&MailTemplates) -> &MailTemplate,
    ) {
        let Some(reset) = self.inner.reset.clone() else {
            return;
        };
        let this = self.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let message = template(&reset.templates).render(&email, &[("product", &reset.templates.product)]);
            let result = reset.mailer.send(&message).await.map_err(PortalError::from);
            this.record(&ctx, name, None, started, result.as_ref(), |()| json!({}));
        });
    }
}
