//! Change of email by mail: a signed-in user asks, with their password (and a fresh
//! second factor when they have one), to move their account to a new address; a link is
//! mailed to the new address and a notice to the old one; the link's token, presented by
//! the same signed-in user, switches the address. Configured with [`EmailChange`].
//!
//! - **The request is checked as a sign-in is**: the current password under the sign-in
//!   throttle (same counts, same limits; a wrong password is a failed sign-in), then, for
//!   a user with a confirmed TOTP factor, a fresh code or recovery code (also throttled).
//!   The new address is validated and normalized as at sign-up.
//! - **Nothing tells whether the new address has an account.** The caller gets the same
//!   answer after the same work on the request path (one lookup, one token made and
//!   stored); the messages go out off the request path: the link to a free address, a
//!   note that nothing changed to an address that has an account, and in both cases a
//!   notice (without a link) to the current address.
//! - **A token works once, for 24 hours**, only the latest request of a user works, and it
//!   is stored only as its SHA-256 ([`EmailChangeToken`], [`EmailChangeStore`]).
//! - **The switch is one store step**: the user's address, their password record's login
//!   email and their verified address (the new one, verified by the link), or nothing.
//!   Refusals, one code each (param `token`): malformed, tampered or unknown, or issued
//!   from an address the user no longer has, `auth.token_invalid`; used or retired
//!   `auth.token_used`; expired `auth.token_expired`; another user's
//!   `auth.token_wrong_user` (the token stays usable by its user); an address another
//!   account took since `user.email_taken` (param `email`; nothing changed).
//! - **Sessions are kept.** The change needed the password and the second factor, and a
//!   user signed in elsewhere is the same person; the old address is told. (A host that
//!   wants every session ended calls `revoke_all_sessions` after it.)

use std::sync::Arc;
use std::time::Instant;

use portal_core::audit::actions;
use portal_core::identity::{AuthFailure, EmailChangeRecord, EmailChangeStore, EmailChangeUse, ThrottleKey};
use portal_core::mail::{MailTemplates, Mailer};
use portal_core::principal::Principal;
use portal_core::tenancy::Email;
use portal_core::{ErrorCode, PortalError, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;

use super::authenticate::refused;
use super::token::EmailChangeToken;
use super::{EmailStatus, IdentityService, SecondFactor, principal_user};

/// How a change of email works: where tokens are kept, how mail is sent, and the link.
#[derive(Clone)]
pub struct EmailChange {
    /// Where change tokens are kept and the switch is made (the SQLite and Postgres
    /// identity stores of `portal-adapters` on the tenancy store's database, or the
    /// in-memory one made `with_tenancy`).
    pub store: Arc<dyn EmailChangeStore>,
    /// How the link and the notices are sent.
    pub mailer: Arc<dyn Mailer>,
    /// The messages' texts.
    pub templates: MailTemplates,
    /// The page that takes a change token, such as
    /// `https://portal.example/confirm-email-change`: the link is this URL with
    /// `token=<token>` added to its query.
    pub link: String,
    /// How long a token works. Default 24 hours.
    pub lifetime: Duration,
}

impl EmailChange {
    /// Changes through `store` and `mailer`, links to `link`, the default templates and a
    /// 24-hour lifetime.
    pub fn new(store: Arc<dyn EmailChangeStore>, mailer: Arc<dyn Mailer>, link: impl Into<String>) -> Self {
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

impl std::fmt::Debug for EmailChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChange")
            .field("link", &self.link)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A request to move the signed-in user's account to another address.
pub struct EmailChangeRequest {
    /// The new address, as typed (validated and normalized as at sign-up).
    pub new_email: String,
    /// The user's current password.
    pub password: SecretString,
    /// A fresh second factor; needed when the user has one (a confirmed TOTP factor or a
    /// passkey).
    pub factor: Option<SecondFactor>,
    /// Where the request comes from (the client's IP address), for the sign-in throttle.
    pub source: String,
}

impl std::fmt::Debug for EmailChangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChangeRequest")
            .field("new_email", &self.new_email)
            .field("factor", &self.factor)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn token_error(code: ErrorCode, message: &str) -> PortalError {
    PortalError::new(code, message.to_owned()).with_param("token")
}

impl IdentityService {
    fn email_change_config(&self) -> Result<Arc<EmailChange>, PortalError> {
        self.inner.email_change.clone().ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "change of email is not configured (IdentityService::with_email_change)",
            )
        })
    }

    /// Asks to move the signed-in user's account to `request.new_email`: checks the
    /// current password under the sign-in throttle and, for a user with a second factor
    /// (a confirmed TOTP factor or a passkey), a fresh one (a code, a recovery code, or a
    /// passkey's answer to a re-authentication ceremony); then stores a new change token (retiring the user's
    /// earlier ones) and, off the request path, mails the new address the link (or, when
    /// the address has an account, a note that nothing changed) and the current address
    /// a notice. The answer is the same whether the new address has an account or not.
    /// Limit requests per user and per source at the edge too: this method throttles only
    /// the password and factor checks.
    ///
    /// # Errors
    ///
    /// `access.denied` for a caller that is not a user; `user.not_found`;
    /// `validation.invalid_field` (`email` for a malformed address or the user's own,
    /// `source`); `auth.invalid_credentials` for a wrong password or a locked-out source;
    /// `auth.mfa_code_invalid` (`code` or `recovery_code`) for a missing or refused second
    /// factor; `auth.passkey_refused` (`credential`) and the ceremony's `auth.token_*`
    /// for a refused passkey; `service.busy`; `internal.error` when change of email is not configured;
    /// `storage.*`.
    pub async fn request_email_change(
        &self,
        ctx: &RequestContext,
        request: EmailChangeRequest,
    ) -> Result<(), PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let config = self.email_change_config()?;
            let user = principal_user(ctx)?;
            let account = self
                .inner
                .tenancy
                .get_user(user)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "user not found"))?;
            let source = ThrottleKey::source(&request.source)?;
            let new_email = Email::new(&request.new_email)?;
            if new_email == account.email {
                return Err(PortalError::invalid_field("email", "this is already your address"));
            }
            let key = ThrottleKey::Account(account.email.clone());
            let (stored, _) = self
                .check_password(ctx, Some(&key), &source, Some(&account.email), request.password)
                .await
                .map_err(|(err, _)| err)?;
            if stored.user != user {
                return Err(PortalError::from(refused(AuthFailure::WrongSecret)));
            }
            self.fresh_factor_if_any(ctx, user, request.factor.as_ref(), &source, "email_change")
                .await?;
            let taken = self
                .inner
                .tenancy
                .find_user_by_email(&new_email)
                .await?
                .is_some_and(|holder| holder.id != user);
            let token = EmailChangeToken::generate()?;
            config
                .store
                .issue_email_change(&EmailChangeRecord {
                    token_hash: token.hash(),
                    user,
                    old_email: account.email.clone(),
                    new_email: new_email.clone(),
                    created_at: ctx.now(),
                    expires_at: ctx.now() + config.lifetime,
                    used_at: None,
                })
                .await?;
            self.deliver_email_change(ctx, &config, token, account.email, new_email, taken);
            Ok(())
        }
        .await;
        self.record_auth(
            ctx,
            "auth.email_change.request",
            started,
            None,
            result.as_ref(),
            |()| json!({ "user": user }),
            json!({ "user": user }),
        );
        result
    }

    /// Mails, off the request path, the new address the link (or the "taken" note) and
    /// the old address the notice, and records `auth.email_change.deliver` (which message
    /// went to the new address: `link` or `taken`; platform support only, no org).
    fn deliver_email_change(
        &self,
        ctx: &RequestContext,
        config: &Arc<EmailChange>,
        token: EmailChangeToken,
        old_email: Email,
        new_email: Email,
        taken: bool,
    ) {
        let this = self.clone();
        let ctx = ctx.clone();
        let config = config.clone();
        let link = config.link_for(&token.into_secret());
        tokio::spawn(async move {
            let started = Instant::now();
            let templates = &config.templates;
            let to_new = if taken {
                templates
                    .email_change_taken
                    .render(&new_email, &[("product", &templates.product)])
            } else {
                let hours = config.lifetime.whole_hours().to_string();
                templates.email_change.render(
                    &new_email,
                    &[
                        ("link", link.expose_secret()),
                        ("hours", &hours),
                        ("product", &templates.product),
                    ],
                )
            };
            let notice = templates.email_change_notice.render(
                &old_email,
                &[("new_email", new_email.as_str()), ("product", &templates.product)],
            );
            let first = config.mailer.send(&to_new).await.map_err(PortalError::from);
            let second = config.mailer.send(&notice).await.map_err(PortalError::from);
            let result = first.and(second);
            let sent = if taken { "taken" } else { "link" };
            this.record(
                &ctx,
                "auth.email_change.deliver",
                None,
                started,
                result.as_ref(),
                |()| json!({ "sent": sent }),
            );
        });
    }

    /// Moves the signed-in user's account to the address the `token` of a mailed
    /// change link was sent to, in one store step (their address, their password's login
    /// email, and that address as verified). Sessions are kept.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid` (malformed, tampered, unknown, or issued from an address the
    /// user no longer has), `auth.token_used`, `auth.token_expired`,
    /// `auth.token_wrong_user` (param `token`); `user.email_taken` (param `email`) when
    /// another account has the address now (nothing changed); `access.denied` for a caller
    /// that is not a user; `internal.error` when change of email is not configured;
    /// `storage.*`.
    pub async fn confirm_email_change(
        &self,
        ctx: &RequestContext,
        token: SecretString,
    ) -> Result<EmailStatus, PortalError> {
        let started = Instant::now();
        let user = principal_user(ctx).ok();
        let result = async {
            let config = self.email_change_config()?;
            let user = principal_user(ctx)?;
            let token = EmailChangeToken::parse(&token)
                .ok_or_else(|| token_error(ErrorCode::TokenInvalid, "the change token is not valid"))?;
            let hash = token.hash();
            // The event names both addresses: read them from the token first (a token that
            // is not the caller's, or not usable, writes no event, whatever it carries).
            let metadata = match config.store.find_email_change(&hash).await? {
                Some(found) if found.user == user => {
                    json!({ "before": found.old_email.as_str(), "after": found.new_email.as_str() })
                }
                _ => json!({}),
            };
            let event = self
                .user_event(ctx, &Principal::User(user), user, actions::USER_EMAIL_CHANGED, metadata)
                .await?;
            match config.store.change_email(&hash, user, ctx.now(), &event).await? {
                EmailChangeUse::Changed(record) => Ok(EmailStatus {
                    email: record.new_email,
                    verified_at: Some(record.used_at.unwrap_or_else(|| ctx.now())),
                }),
                EmailChangeUse::AlreadyUsed(_) => Err(token_error(
                    ErrorCode::TokenUsed,
                    "the change token was already used, or a later request replaced it",
                )),
                EmailChangeUse::Expired(_) => Err(token_error(ErrorCode::TokenExpired, "the change token has expired")),
                EmailChangeUse::OtherUser => Err(token_error(
                    ErrorCode::TokenWrongUser,
                    "the change token was sent for another user",
                )),
                EmailChangeUse::AddressTaken(_) => Err(PortalError::new(
                    ErrorCode::UserEmailTaken,
                    "another account has this address now; nothing changed",
                )
                .with_param("email")),
                EmailChangeUse::OtherAddress(_) | EmailChangeUse::Unknown => {
                    Err(token_error(ErrorCode::TokenInvalid, "the change token is not valid"))
                }
            }
        }
        .await;
        self.record(
            ctx,
            "auth.email_change.confirm",
            None,
            started,
            result.as_ref(),
            |_| json!({ "user": user }),
        );
        result
    }
}
