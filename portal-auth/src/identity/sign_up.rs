//! Sign-up: a person without an account asks for one by email, under the host's
//! [`SignUpPolicy`], and the mailed link creates it; an invitation creates the account of
//! an invited address that has none. Configured with [`SignUp`].
//!
//! - **Nothing tells whether an address has an account.** A request answers the same for
//!   any valid address and does the same work on the request path (the address checked,
//!   one token made); the lookup and the message happen off the request path: a sign-up
//!   link to an address with no account that the policy admits, a "you already have an
//!   account" note to an address with one, a "by invitation" note to any other.
//! - **The link works once, for 24 hours**, and is stored only as its SHA-256 in the
//!   [`EmailVerificationStore`], bound to the address it was mailed to and to the id the
//!   account will have. Confirming it (with a display name and a password) uses it in one
//!   atomic store step, which also records the address as verified (the link proved it),
//!   then creates the user with that id and address, stores the password hash and signs
//!   the user in. A second use is `auth.token_used`, as is a link for an address that got
//!   an account another way since; expired `auth.token_expired`; malformed, tampered or
//!   unknown `auth.token_invalid` (param `token`).
//! - **The policy is checked twice**: when the link is mailed and when it is used, so a
//!   link mailed under an open policy creates nothing once the host closed it
//!   (`access.denied`). Under [`SignUpPolicy::Domains`], the new user joins the org that
//!   claimed the address's domain, as `member`.
//! - The password is checked (length, breach list) and hashed before the token is used,
//!   so a refused password or a busy hasher does not burn the link.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use portal_core::access::RoleName;
use portal_core::audit::{AuditActor, AuditEvent, AuditTarget, actions};
use portal_core::identity::{EmailTokenRecord, EmailTokenUse, EmailVerificationStore, PasswordRecord};
use portal_core::ids::{OrgId, UserId};
use portal_core::mail::{MailTemplates, Mailer};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{DisplayName, Email, Membership, RoleSet, User};
use portal_core::{ErrorCode, PortalError, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::Duration;

use super::token::{SignUpToken, VerifyToken};
use super::{IdentityService, NewSession};

/// Who may create an account by asking for one. An invitation creates the account of its
/// address under every policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUpPolicy {
    /// Accounts are made by invitation (or by the host) only: a sign-up request is
    /// answered with a note saying so. The default.
    InvitationOnly,
    /// Anyone with an address may sign up.
    Open,
    /// Addresses at these domains may sign up, each domain claimed by one org, which the
    /// new user joins as `member`. The claims are the host's assertion (its settings),
    /// not a proof of ownership made here: see `docs/identity.md`.
    Domains(BTreeMap<String, OrgId>),
}

impl SignUpPolicy {
    /// Whether `email` may sign up, and the org it joins (for a claimed domain).
    pub fn admits(&self, email: &Email) -> Option<Option<OrgId>> {
        match self {
            SignUpPolicy::InvitationOnly => None,
            SignUpPolicy::Open => Some(None),
            SignUpPolicy::Domains(claims) => {
                let domain = email.as_str().rsplit_once('@').map(|(_, d)| d)?;
                claims.get(domain).map(|org| Some(*org))
            }
        }
    }

    /// The policy's name, as the settings and the events spell it: `invitation`, `open`
    /// or `domains`.
    pub fn name(&self) -> &'static str {
        match self {
            SignUpPolicy::InvitationOnly => "invitation",
            SignUpPolicy::Open => "open",
            SignUpPolicy::Domains(_) => "domains",
        }
    }
}

/// How sign-up works: the policy, where tokens are kept, how mail is sent, and the link.
#[derive(Clone)]
pub struct SignUp {
    /// Who may sign up.
    pub policy: SignUpPolicy,
    /// Where sign-up tokens and verified addresses are kept (every identity store of
    /// `portal-adapters` is one).
    pub store: Arc<dyn EmailVerificationStore>,
    /// How the link and the notes are sent.
    pub mailer: Arc<dyn Mailer>,
    /// The messages' texts.
    pub templates: MailTemplates,
    /// The page that takes a sign-up token, such as `https://portal.example/sign-up`: the
    /// link is this URL with `token=<token>` added to its query.
    pub link: String,
    /// How long a token works. Default 24 hours.
    pub lifetime: Duration,
}

impl SignUp {
    /// Sign-up under `policy` through `store` and `mailer`, links to `link`, the default
    /// templates and a 24-hour lifetime.
    pub fn new(
        policy: SignUpPolicy,
        store: Arc<dyn EmailVerificationStore>,
        mailer: Arc<dyn Mailer>,
        link: impl Into<String>,
    ) -> Self {
        Self {
            policy,
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

impl std::fmt::Debug for SignUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUp")
            .field("policy", &self.policy)
            .field("link", &self.link)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A new account, signed in.
#[derive(Debug)]
pub struct SignedUp {
    /// The user created.
    pub user: User,
    /// The org the user joined by their address's domain, if any.
    pub joined: Option<OrgId>,
    /// The user's first session.
    pub session: NewSession,
}

fn token_error(code: ErrorCode, message: &str) -> PortalError {
    PortalError::new(code, message.to_owned()).with_param("token")
}

/// What a sign-up request mailed (for the delivery event).
#[derive(Debug, Clone, Copy)]
enum Sent {
    Link,
    Existing,
    Refused,
}

impl IdentityService {
    fn sign_up_config(&self) -> Result<Arc<SignUp>, PortalError> {
        self.inner.sign_up.clone().ok_or_else(|| {
            PortalError::new(
                ErrorCode::Internal,
                "sign-up is not configured (IdentityService::with_sign_up)",
            )
        })
    }

    /// The sign-up policy in force, if sign-up is configured.
    pub fn sign_up_policy(&self) -> Option<&SignUpPolicy> {
        self.inner.sign_up.as_deref().map(|config| &config.policy)
    }

    /// Asks for an account for `email`. Answers `Ok` for every valid address, whether or
    /// not it has an account and whether or not the policy admits it, after the same work;
    /// the message is sent off the request path (the `auth.sign_up.deliver` event records
    /// what went and how). Limit requests per address and per source at the edge: this
    /// method does not.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (`email`); `internal.error` when sign-up is not
    /// configured or the random generator fails.
    pub async fn request_sign_up(&self, ctx: &RequestContext, email: &str) -> Result<(), PortalError> {
        let started = Instant::now();
        let result = async {
            let config = self.sign_up_config()?;
            let email = Email::new(email)?;
            let token = SignUpToken::generate()?;
            let this = self.clone();
            let task_ctx = ctx.clone();
            tokio::spawn(async move { this.deliver_sign_up(&task_ctx, &config, email, token).await });
            Ok(())
        }
        .await;
        self.record(ctx, "auth.sign_up.request", None, started, result.as_ref(), |()| {
            json!({})
        });
        result
    }

    /// Looks the address up, then mails the link, the existing-account note or the
    /// refusal note.
    async fn deliver_sign_up(&self, ctx: &RequestContext, config: &SignUp, email: Email, token: SignUpToken) {
        let started = Instant::now();
        let product = config.templates.product.clone();
        let result: Result<Sent, PortalError> = async {
            let (sent, message) = if self.inner.tenancy.find_user_by_email(&email).await?.is_some() {
                let message = config
                    .templates
                    .sign_up_existing
                    .render(&email, &[("product", &product)]);
                (Sent::Existing, message)
            } else if config.policy.admits(&email).is_none() {
                let message = config
                    .templates
                    .sign_up_refused
                    .render(&email, &[("product", &product)]);
                (Sent::Refused, message)
            } else {
                config
                    .store
                    .issue_email_token(&EmailTokenRecord {
                        token_hash: token.hash(),
                        // The id the account will have: no user has it yet.
                        user: UserId::generate(&*self.inner.ids, ctx.now()),
                        email: email.clone(),
                        created_at: ctx.now(),
                        expires_at: ctx.now() + config.lifetime,
                        used_at: None,
                    })
                    .await?;
                let link = config.link_for(&token.into_secret());
                let hours = config.lifetime.whole_hours().to_string();
                let message = config.templates.sign_up.render(
                    &email,
                    &[("link", link.expose_secret()), ("hours", &hours), ("product", &product)],
                );
                (Sent::Link, message)
            };
            config.mailer.send(&message).await?;
            Ok(sent)
        }
        .await;
        self.record(
            ctx,
            "auth.sign_up.deliver",
            None,
            started,
            result.as_ref(),
            |sent| json!({ "sent": format!("{sent:?}").to_lowercase() }),
        );
    }

    /// Creates the account of a mailed sign-up link's `token`, named `display_name`, with
    /// `password`, and signs it in (the session replaces `previous`, if the client held
    /// one). The address counts as verified. Whoever holds the token may call it.
    ///
    /// # Errors
    ///
    /// `auth.token_invalid`, `auth.token_used` (also when the address got an account
    /// since), `auth.token_expired` (param `token`); `access.denied` when the policy no
    /// longer admits the address; `validation.invalid_field` (`display_name`,
    /// `password`); `service.busy`; `internal.error` when sign-up is not configured;
    /// `storage.*`.
    pub async fn complete_sign_up(
        &self,
        ctx: &RequestContext,
        token: SecretString,
        display_name: &str,
        password: SecretString,
        previous: Option<&SecretString>,
    ) -> Result<SignedUp, PortalError> {
        let started = Instant::now();
        let result = async {
            let config = self.sign_up_config()?;
            let token = SignUpToken::parse(&token)
                .ok_or_else(|| token_error(ErrorCode::TokenInvalid, "the sign-up token is not valid"))?;
            let display_name = DisplayName::new(display_name)?;
            self.check_new_password(&password).await?;
            let record = config
                .store
                .find_email_token(&token.hash())
                .await?
                .ok_or_else(|| token_error(ErrorCode::TokenInvalid, "the sign-up token is not valid"))?;
            if record.used_at.is_some() {
                return Err(token_error(ErrorCode::TokenUsed, "the sign-up link was already used"));
            }
            if ctx.now() >= record.expires_at {
                return Err(token_error(ErrorCode::TokenExpired, "the sign-up link has expired"));
            }
            let joined = config
                .policy
                .admits(&record.email)
                .ok_or_else(|| PortalError::new(ErrorCode::AccessDenied, "sign-up is not open to this address"))?;
            if self.inner.tenancy.find_user_by_email(&record.email).await?.is_some() {
                return Err(token_error(
                    ErrorCode::TokenUsed,
                    "this address has an account: sign in",
                ));
            }
            let hash = self.hash_blocking(password).await?;
            match config
                .store
                .use_email_token(&token.hash(), record.user, &record.email, ctx.now())
                .await?
            {
                EmailTokenUse::Verified(_) => {}
                EmailTokenUse::AlreadyUsed(_) => {
                    return Err(token_error(ErrorCode::TokenUsed, "the sign-up link was already used"));
                }
                EmailTokenUse::Expired(_) => {
                    return Err(token_error(ErrorCode::TokenExpired, "the sign-up link has expired"));
                }
                EmailTokenUse::OtherUser | EmailTokenUse::OtherAddress(_) | EmailTokenUse::Unknown => {
                    return Err(token_error(ErrorCode::TokenInvalid, "the sign-up token is not valid"));
                }
            }
            let user = self
                .create_account(ctx, record.user, record.email, display_name, hash)
                .await?;
            if let Some(org) = joined {
                self.join_by_domain(ctx, org, &user).await?;
            }
            let session = self.start_session(ctx, user.id, previous, "sign_up").await?;
            Ok(SignedUp { user, joined, session })
        }
        .await;
        self.record(
            ctx,
            "auth.sign_up.complete",
            result.as_ref().ok().and_then(|s| s.joined),
            started,
            result.as_ref(),
            |s| json!({ "user": s.user.id, "joined": s.joined }),
        );
        result
    }

    /// Creates the account of an invitation's address, which has none, named
    /// `display_name` with `password`, its address verified (the invitation's token was
    /// mailed to it); then `accept` (the caller accepting the invitation as the new user)
    /// runs, and the user is signed in. The caller has checked that the invitation is
    /// pending and was sent to `email`; this method trusts it for that.
    ///
    /// # Errors
    ///
    /// `user.email_taken` when `email` has an account (sign in and accept it instead);
    /// `validation.invalid_field` (`display_name`, `password`); `service.busy`;
    /// `internal.error` when sign-up is not configured; whatever `accept` answers;
    /// `storage.*`.
    pub async fn sign_up_by_invitation<F, Fut>(
        &self,
        ctx: &RequestContext,
        email: &Email,
        display_name: &str,
        password: SecretString,
        previous: Option<&SecretString>,
        accept: F,
    ) -> Result<SignedUp, PortalError>
    where
        F: FnOnce(UserId) -> Fut + Send,
        Fut: std::future::Future<Output = Result<OrgId, PortalError>> + Send,
    {
        let started = Instant::now();
        let result = async {
            let config = self.sign_up_config()?;
            let display_name = DisplayName::new(display_name)?;
            self.check_new_password(&password).await?;
            if self.inner.tenancy.find_user_by_email(email).await?.is_some() {
                return Err(PortalError::new(
                    ErrorCode::UserEmailTaken,
                    "this address has an account: sign in, then accept the invitation",
                ));
            }
            let hash = self.hash_blocking(password).await?;
            let id = UserId::generate(&*self.inner.ids, ctx.now());
            // The invitation's token was mailed to the address: record it as verified
            // through the store's one way of doing so, a token made and used at once.
            let proof = VerifyToken::generate()?;
            config
                .store
                .issue_email_token(&EmailTokenRecord {
                    token_hash: proof.hash(),
                    user: id,
                    email: email.clone(),
                    created_at: ctx.now(),
                    expires_at: ctx.now() + Duration::minutes(1),
                    used_at: None,
                })
                .await?;
            config
                .store
                .use_email_token(&proof.hash(), id, email, ctx.now())
                .await?;
            let user = self.create_account(ctx, id, email.clone(), display_name, hash).await?;
            let org = accept(user.id).await?;
            let session = self.start_session(ctx, user.id, previous, "sign_up").await?;
            Ok(SignedUp {
                user,
                joined: Some(org),
                session,
            })
        }
        .await;
        self.record(
            ctx,
            "auth.sign_up.invitation",
            result.as_ref().ok().and_then(|s| s.joined),
            started,
            result.as_ref(),
            |s| json!({ "user": s.user.id }),
        );
        result
    }

    /// Creates the user `id` with `email` and stores the password `hash` under it.
    async fn create_account(
        &self,
        ctx: &RequestContext,
        id: UserId,
        email: Email,
        display_name: DisplayName,
        hash: SecretString,
    ) -> Result<User, PortalError> {
        let user = User {
            id,
            email,
            display_name,
            created_at: ctx.now(),
        };
        match self.inner.tenancy.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::EmailTaken)) => {
                return Err(token_error(
                    ErrorCode::TokenUsed,
                    "this address has an account: sign in",
                ));
            }
            Err(other) => return Err(other.into()),
        }
        self.inner
            .stores
            .credentials
            // A new account's first password: no member's change (the sign-in that follows is).
            .set_password(
                &PasswordRecord {
                    user: user.id,
                    email: user.email.clone(),
                    hash,
                    updated_at: ctx.now(),
                },
                None,
            )
            .await?;
        Ok(user)
    }

    /// Adds `user` to `org` as `member` (the org claimed the address's domain).
    async fn join_by_domain(&self, ctx: &RequestContext, org: OrgId, user: &User) -> Result<(), PortalError> {
        let membership = Membership {
            org,
            user: user.id,
            roles: RoleSet::one(RoleName::member()),
            created_at: ctx.now(),
            updated_at: ctx.now(),
        };
        let event = AuditEvent::new(
            ctx,
            &*self.inner.ids,
            org,
            actions::MEMBER_ADDED,
            AuditActor::new(&Principal::User(user.id), Some(user.display_name.to_string())),
        )
        .target(AuditTarget::new("user", user.id))
        .metadata(json!({ "roles": membership.roles, "via": "sign_up_domain" }));
        self.inner.tenancy.add_member(&membership, &event).await?;
        Ok(())
    }
}
