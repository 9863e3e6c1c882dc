//! The error contract: stable codes, the one error every service returns, and its RFC 9457 body.
//!
//! Three layers, as in the rest of the crate: parse errors per value (`ParseIdError`,
//! `InvalidField`), port errors per port family ([`StoreError`](crate::StoreError),
//! [`AccessError`](crate::access::AccessError)), and [`PortalError`], which carries one
//! [`ErrorCode`] a caller can act on. The codes and their meanings are a public contract:
//! `docs/errors.md` is generated from [`ErrorCode::ALL`] and a test fails when it is stale.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::RequestId;

/// A boxed error kept as the `source` of another error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Cuts user input for an error message, so a huge value never floods a log.
pub(crate) fn shown(input: &str) -> String {
    let mut out: String = input.chars().take(40).collect();
    if input.chars().count() > 40 {
        out.push('…');
    }
    out
}

macro_rules! error_codes {
    ($(
        $(#[$meta:meta])*
        $variant:ident => ($code:literal, $status:literal, $retry:literal, $meaning:literal, $raised:literal),
    )*) => {
        /// A stable, dotted error code: the part of an error that programs match on.
        ///
        /// The string form never changes once published; new codes are added, old ones
        /// are never reused for another meaning.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[$meta])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in catalog order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The dotted string form, such as `access.denied`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code maps to.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Whether the same request may succeed if retried later.
            pub const fn is_retryable(self) -> bool {
                match self { $(ErrorCode::$variant => $retry,)* }
            }

            /// A one-line meaning, used as the problem's `title`.
            pub const fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)* }
            }

            /// Which operations raise it, for the catalog.
            pub const fn raised_by(self) -> &'static str {
                match self { $(ErrorCode::$variant => $raised,)* }
            }
        }
    };
}

error_codes! {
    /// A field of the request failed validation; `param` names it.
    InvalidField => ("validation.invalid_field", 400, false, "a field of the request is invalid", "every operation, for input that fails validation: slug, name, display_name, email, roles, metadata, owner, limit, cursor, idempotency_key, a malformed id; workflow `definition`, `payload`, `input`, `ends_at`, `to`; support grant `reason`, `duration`, `staff`"),
    /// The request body or a header could not be read at all.
    MalformedRequest => ("request.malformed", 400, false, "the request could not be parsed", "the HTTP edge, for a body or header that cannot be parsed"),
    /// The request's `Portal-Version` header names no version the server supports.
    UnknownApiVersion => ("request.unknown_version", 400, false, "the requested API version is not supported", "the HTTP edge, for a `Portal-Version` header that names no supported version (the answer lists them)"),
    /// The request body is larger than the server accepts.
    PayloadTooLarge => ("request.too_large", 413, false, "the request body is too large", "the HTTP edge, for a body over the server's limit"),
    /// The request body is not of a media type the operation reads.
    UnsupportedMediaType => ("request.unsupported_media_type", 415, false, "the request body's media type is not supported", "the HTTP edge, for a body sent without `Content-Type: application/json`"),
    /// No route matches the request's path.
    RouteNotFound => ("route.not_found", 404, false, "no such route", "the HTTP edge, for a path the API does not have"),
    /// The route exists but not with the request's method.
    MethodNotAllowed => ("request.method_not_allowed", 405, false, "the method is not allowed on this route", "the HTTP edge, for a method the route does not have"),
    /// Too many requests from this source; `Retry-After` says when to try again.
    RateLimited => ("rate_limit.exceeded", 429, true, "too many requests; retry later", "the HTTP edge's limiters: sign-in per client source, password-reset requests per source and per address; the response carries `Retry-After`"),
    /// No credentials were presented, or they did not identify anyone.
    Unauthenticated => ("auth.unauthenticated", 401, false, "the request is not authenticated", "the HTTP edge, when no credentials come with a request that needs them"),
    /// The credentials presented were wrong, expired, revoked or locked.
    InvalidCredentials => ("auth.invalid_credentials", 401, false, "the credentials are not valid", "authenticators, for any refused credential, whatever the reason"),
    /// A cookie-authenticated request that changes state came without the matching CSRF token.
    CsrfRejected => ("auth.csrf_rejected", 403, false, "the request's CSRF token is missing or does not match", "the HTTP edge, for a cookie-authenticated `POST`, `PUT`, `PATCH` or `DELETE` whose `X-CSRF-Token` header does not match its CSRF cookie"),
    /// The actor may not perform this action here.
    AccessDenied => ("access.denied", 403, false, "the actor is not allowed to do this", "every operation the authorizer refuses; `accept_invitation` by a non-user"),
    /// The organization does not exist, or the actor cannot see it.
    OrgNotFound => ("org.not_found", 404, false, "no such organization", "org-scoped operations, for an unknown org or one the actor is not a member of"),
    /// The organization is pinned to a newer API version than the one asked for: pins only
    /// move forward.
    ApiVersionDowngrade => ("org.api_version_downgrade", 409, false, "the organization is pinned to a newer API version", "`set_api_version`, for a version older than the org's pin"),
    /// The organization's slug is already used by another organization.
    OrgSlugTaken => ("org.slug_taken", 409, false, "the slug is already taken", "`create_org`"),
    /// The user does not exist, or is not visible to the actor.
    UserNotFound => ("user.not_found", 404, false, "no such user", "`create_org` (unknown owner), `accept_invitation` (the actor's user is gone)"),
    /// A user with this email address already exists.
    UserEmailTaken => ("user.email_taken", 409, false, "the email address is already registered", "`create_user`; `IdentityService::confirm_email_change` (param `email`) when another account took the new address since the request (nothing changed)"),
    /// The user is not a member of this organization.
    MemberNotFound => ("member.not_found", 404, false, "no such member in this organization", "`get_member`, `set_member_roles`, `remove_member`; a support bundle's `user` who is not a member of the org (unknown or not)"),
    /// The user is already a member of this organization.
    AlreadyMember => ("member.already_member", 409, false, "the user is already a member", "`invite`, when the address belongs to a member"),
    /// The change would leave the organization without an owner.
    LastOwner => ("member.last_owner", 409, false, "an organization must keep at least one owner", "`set_member_roles`, `remove_member`"),
    /// The member holds only this role, and a membership keeps at least one.
    LastRole => ("member.last_role", 409, false, "a member must keep at least one role; remove the member instead", "`unassign_role`, for the member's only role"),
    /// The invitation does not exist in this organization, or the token is unknown.
    InvitationNotFound => ("invitation.not_found", 404, false, "no such invitation", "`accept_invitation` (unknown or malformed token), `revoke_invitation` (unknown id or another org's)"),
    /// The invitation's expiry time has passed.
    InvitationExpired => ("invitation.expired", 410, false, "the invitation has expired", "`accept_invitation`"),
    /// The invitation was already accepted.
    InvitationUsed => ("invitation.already_used", 409, false, "the invitation was already accepted", "`accept_invitation`, `revoke_invitation`"),
    /// The invitation was revoked.
    InvitationRevoked => ("invitation.revoked", 410, false, "the invitation was revoked", "`accept_invitation`, `revoke_invitation`"),
    /// The invitation was sent to another email address than the accepting user's.
    InvitationEmailMismatch => ("invitation.email_mismatch", 403, false, "the invitation is for another email address", "`accept_invitation`"),
    /// The workflow instance does not exist in this organization, or the actor cannot see it.
    WorkflowNotFound => ("workflow.not_found", 404, false, "no such workflow instance", "`WorkflowService` operations on an unknown instance, one of another org, or in an org the actor cannot reach (not a member, no active support grant)"),
    /// The SCIM user does not exist in this organization.
    ScimUserNotFound => ("scim.user_not_found", 404, false, "no such SCIM user", "`ScimService` operations on a user the org's directory did not provision (or another org's), and a group member that is no SCIM user of the org"),
    /// The SCIM group does not exist in this organization.
    ScimGroupNotFound => ("scim.group_not_found", 404, false, "no such SCIM group", "`ScimService` operations on a group the org's directory did not provision (or another org's)"),
    /// A SCIM attribute that must be unique in the organization is taken.
    ScimUniqueness => ("scim.uniqueness", 409, false, "a unique SCIM attribute is already taken", "`ScimService` creates and replaces, for a taken `userName`, group `displayName` or `externalId`, or a portal user already provisioned in the org"),
    /// The definition of the instance has no transition of that name.
    UnknownTransition => ("workflow.unknown_transition", 422, false, "the workflow has no such transition", "`transition`, `vote`, `explain_transitions`"),
    /// The transition cannot leave the instance's current state.
    TransitionNotAllowed => ("workflow.transition_not_allowed", 409, false, "the transition is not allowed from the current state", "`transition`, `vote`; `assign` on an instance in a terminal state"),
    /// A guard of the transition refused it; `guard` names it.
    GuardFailed => ("workflow.guard_failed", 422, false, "a guard of the transition refused it", "`transition`, `vote` (an approve vote)"),
    /// A required input field of the transition is missing; `param` names it.
    InputMissing => ("workflow.input_missing", 422, false, "a required input field is missing", "`transition`, `vote` (an approve vote)"),
    /// The transition needs approvals: it happens when enough approve votes are cast.
    ApprovalRequired => ("workflow.approval_required", 409, false, "the transition needs approval votes", "`transition` on a transition with an approval rule"),
    /// The workflow instance changed since the caller read it.
    VersionConflict => ("workflow.version_conflict", 409, true, "the resource changed since it was read", "`transition`, `vote` and `assign` with a stale expected version; `current_version` holds the current one"),
    /// A vote was cast on a transition that needs no approvals.
    ApprovalNotRequired => ("approval.not_required", 422, false, "the transition needs no approvals", "`vote`"),
    /// The instance's creator tried to approve their own request.
    SelfApproval => ("approval.self_approval", 403, false, "the requester cannot approve their own request", "`vote` by the instance's creator, or on their behalf"),
    /// The voter already voted on this transition in this state.
    AlreadyVoted => ("approval.already_voted", 409, false, "this voter already voted", "`vote`"),
    /// The delegation the vote relies on is not in force now.
    DelegationExpired => ("approval.delegation_expired", 403, false, "the delegation is not in force", "`vote` on behalf of a member whose delegation has ended or not begun"),
    /// The organization defines no role of this name (or the member does not hold it).
    RoleNotFound => ("role.not_found", 404, false, "no such role in this organization", "`PolicyService::update_role`, `delete_role`, `create_role` (unknown parent, param `parent`), `assign_role` (a role the org does not define), `unassign_role` (a role the member does not hold)"),
    /// A custom role of this name already exists in the organization.
    RoleExists => ("role.already_exists", 409, false, "a role of this name already exists", "`PolicyService::create_role`"),
    /// Built-in roles come from the template and cannot be defined, changed or deleted by an org.
    RoleBuiltin => ("role.builtin", 409, false, "built-in roles cannot be defined, changed or deleted", "`PolicyService::create_role`, `update_role`, `delete_role` with a built-in role's name"),
    /// The role is still held by a member or inherited by another role.
    RoleInUse => ("role.in_use", 409, false, "the role is still held by a member or inherited by another role", "`PolicyService::delete_role`"),
    /// The organization has no webhook endpoint of this id.
    WebhookEndpointNotFound => ("webhook.endpoint_not_found", 404, false, "no such webhook endpoint in this organization", "`WebhookService` operations on an endpoint id the org does not hold (another org's ids included)"),
    /// A webhook message the endpoint never had.
    WebhookMessageNotFound => ("webhook.message_not_found", 404, false, "no such webhook message for this endpoint", "`WebhookService::replay` of a message id the endpoint was never sent"),
    /// The organization has no support access grant of this id.
    SupportGrantNotFound => ("support.grant_not_found", 404, false, "no such support access grant in this organization", "`SupportService::revoke` with an id the org does not hold"),
    /// The user has no such live session.
    SessionNotFound => ("session.not_found", 404, false, "no such session", "`IdentityService::revoke_session` with an id that is not one of the user's sessions"),
    /// The organization has no API key of this id.
    ApiKeyNotFound => ("api_key.not_found", 404, false, "no such API key in this organization", "`IdentityService::revoke_api_key` with an id the org does not hold"),
    /// A single-use token (a password-reset link) is malformed, tampered with or unknown.
    TokenInvalid => ("auth.token_invalid", 400, false, "the token is not valid", "`IdentityService::reset_password`, `verify_email` and `confirm_email_change` (param `token`), `complete_mfa_challenge`, `begin_mfa_passkey` and `complete_mfa_challenge_with_passkey` (param `challenge_token`), `finish_passkey_registration`, `finish_passkey_sign_in` and `complete_mfa_challenge_with_passkey` (param `ceremony_token`), for a token that is malformed, fails its check characters, or matches no token issued for that purpose (for `verify_email` also: mailed to an address the user no longer has; for `confirm_email_change`: asked for from an address the user no longer has; for `complete_mfa_challenge_with_passkey`: a ceremony begun for another challenge)"),
    /// A single-use token's validity has ended.
    TokenExpired => ("auth.token_expired", 410, false, "the token has expired", "`IdentityService::reset_password`, `verify_email` and `confirm_email_change`, for a token past its expiry (30 minutes for a password reset, 24 hours for an email verification or change, 5 minutes for an MFA challenge or a passkey ceremony)"),
    /// A single-use token was already used, or retired when a newer one of its user was used.
    TokenUsed => ("auth.token_used", 409, false, "the token was already used", "`IdentityService::reset_password`, `verify_email` and `confirm_email_change`, for a token used before, or retired by the use of another one of its user (for `confirm_email_change` also: by a later request); `complete_mfa_challenge`, `begin_mfa_passkey` and `complete_mfa_challenge_with_passkey`, for a challenge that already signed its user in; `finish_passkey_registration`, `finish_passkey_sign_in` and `complete_mfa_challenge_with_passkey`, for a ceremony answered before"),
    /// A single-use token was issued to another user than the one presenting it.
    TokenWrongUser => ("auth.token_wrong_user", 403, false, "the token was issued to another user", "`IdentityService::verify_email` and `confirm_email_change`, for a token mailed to another user than the signed-in one (the token is not used); `finish_passkey_registration`, for a ceremony another user began (it is used up)"),
    /// The account has a second factor: the password alone signs nobody in.
    SecondFactorRequired => ("auth.second_factor_required", 401, false, "the account needs a second factor to sign in", "`IdentityService::sign_in` for an account with a second factor (a confirmed TOTP factor or a passkey; call `begin_sign_in`, which answers an MFA challenge, and `complete_mfa_challenge` or `complete_mfa_challenge_with_passkey`)"),
    /// The second-factor code (a TOTP code or a recovery code) was refused.
    MfaCodeInvalid => ("auth.mfa_code_invalid", 400, false, "the second-factor code is not valid", "`IdentityService::complete_mfa_challenge`, `confirm_totp`, `regenerate_recovery_codes`, `remove_totp` (param `code` or `recovery_code`), for a wrong code, a code already used (a TOTP code of a step accepted before, a used recovery code), a code for an account without a TOTP factor (its second factor is a passkey), or while the sign-in throttle refuses the source"),
    /// The user already has a confirmed second factor.
    MfaAlreadyEnrolled => ("auth.mfa_already_enrolled", 409, false, "a second factor is already enrolled", "`IdentityService::begin_totp_enrollment` for a user with a confirmed factor (remove it first)"),
    /// The user has no second factor in the state the operation needs.
    MfaNotEnrolled => ("auth.mfa_not_enrolled", 409, false, "no second factor is enrolled", "`IdentityService::confirm_totp` without a pending enrollment; `regenerate_recovery_codes` and `remove_totp` without a confirmed factor; `begin_mfa_passkey` for an account without a passkey"),
    /// The organization requires its members to use a second factor, and the actor has none.
    MfaRequired => ("auth.mfa_required", 403, false, "this organization requires a second factor; enroll one", "every operation in an org whose MFA policy is on, for a member with neither a confirmed TOTP factor nor a passkey (the gate refuses before deciding; enroll at `POST /v1/auth/mfa/totp` or register a passkey at `POST /v1/auth/passkeys/registration`); `set_mfa_policy` turning it on by a user without a second factor"),
    /// The user has no passkey of this id.
    PasskeyNotFound => ("passkey.not_found", 404, false, "no such passkey", "`IdentityService::rename_passkey` and `remove_passkey` with an id that is not one of the signed-in user's passkeys (another user's included)"),
    /// The credential is registered already.
    PasskeyExists => ("passkey.already_registered", 409, false, "this passkey is registered already", "`IdentityService::finish_passkey_registration` for a credential id some account (the caller's included) has registered"),
    /// The authenticator's answer to a passkey ceremony did not verify.
    PasskeyRefused => ("auth.passkey_refused", 400, false, "the passkey's answer was refused", "`IdentityService::finish_passkey_registration`, `finish_passkey_sign_in` and `complete_mfa_challenge_with_passkey` (param `credential`), for an answer that is malformed or does not verify: another origin or relying party id, another challenge, no user verification, a bad signature, an unknown or removed credential, one whose user handle names another account, or (answering an MFA challenge) a passkey of another account than the challenge's; also while the sign-in throttle refuses the source"),
    /// The passkey's signature counter did not move forward.
    PasskeyCounterRegressed => ("auth.passkey_counter_regressed", 401, false, "the passkey's signature counter went backwards; it may be cloned", "`IdentityService::finish_passkey_sign_in` and `complete_mfa_challenge_with_passkey` when the authenticator reports a signature counter not past the stored one (a cloned authenticator, or a replayed assertion); the passkey signs nobody in until it reports a higher one"),
    /// The message could not be handed to the mail server.
    MailUnavailable => ("mail.unavailable", 503, true, "mail could not be delivered; retry later", "a `Mailer` adapter (`SmtpMailer`, `FolderMailer` of portal-adapters) whose message was not delivered, as a `MailError` converted to a `PortalError`"),
    /// The idempotency key was already used with a different request.
    IdempotencyKeyReused => ("idempotency.key_reused", 422, false, "the idempotency key was used for another request", "workflow `create`, `transition`, `transition_with`, `vote` and `assign`, and the HTTP creating `POST`s (orgs, invitations, custom roles, API keys, delegations), when the actor reuses a key for another request"),
    /// A request with the same idempotency key is still being processed.
    IdempotencyInFlight => ("idempotency.in_flight", 409, true, "a request with this idempotency key is in progress", "workflow `create`, `transition`, `transition_with`, `vote` and `assign`, and the HTTP creating `POST`s (orgs, invitations, custom roles, API keys, delegations), when a request under the same key is still being worked on by the same service (HTTP: the same server process) (retry after a short wait; the key is free again as soon as that request ends, however it ends)"),
    /// A retried creation whose first answer showed a secret once (an API key, an
    /// invitation token): the secret is not kept, so the answer is not replayed.
    IdempotencySecretNotReplayed => ("idempotency.secret_not_replayed", 409, false, "the request under this idempotency key succeeded, but its answer held a secret shown only once", "HTTP `POST /v1/orgs/{org_id}/api-keys` and `POST /v1/orgs/{org_id}/invitations` retried with the same `Idempotency-Key` and body: the key or invitation was created once and its secret is not stored for a replay (list the org's keys or invitations to find it; revoke and create another if the secret was lost)"),
    /// The operation does not take an `Idempotency-Key` (and says why), rather than
    /// ignore one.
    IdempotencyUnsupported => ("idempotency.unsupported", 400, false, "this operation does not take an idempotency key", "HTTP operations that refuse an `Idempotency-Key` instead of ignoring it: sign-in, sign-out, password reset and its confirmation, password change and switching org (their answer is a new session, or they need no key), as listed per route in docs/http.md"),
    /// Every slot for expensive work (password hashing) stayed taken past a short wait;
    /// `Retry-After` says when to try again.
    ServiceBusy => ("service.busy", 503, true, "the server is busy; retry later", "sign-in, password checks and changes, when every password-hashing slot of the identity service stays taken past its short wait (the bound on concurrent argon2 work); the HTTP response carries `Retry-After`"),
    /// The store could not be reached, timed out, or lost its connection.
    StorageUnavailable => ("storage.unavailable", 503, true, "storage is temporarily unavailable", "every operation, when a store is unreachable, times out, has no free connection or loses it mid-call"),
    /// The store failed in a way a retry will not fix, or returned data it should not hold.
    StorageFailure => ("storage.failure", 500, false, "storage failed", "every operation, for any other store failure or corrupt stored data"),
    /// The permission policy could not be evaluated.
    PolicyFailure => ("access.policy_failure", 500, false, "the permission policy could not be evaluated", "every operation, when the authorizer cannot evaluate its policy"),
    /// A bug: an invariant of the library did not hold.
    Internal => ("internal.error", 500, false, "an internal error occurred", "`PortalBuilder::build` without a tenancy store or with two workflow definitions of one name and version; a workflow instance whose definition version is not registered; the system random generator failing"),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The string is not a known [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known error code")]
pub struct ParseErrorCodeError(pub String);

impl std::str::FromStr for ErrorCode {
    type Err = ParseErrorCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| ParseErrorCodeError(s.chars().take(64).collect()))
    }
}

/// The catalog of codes as Markdown: the content of `docs/errors.md`.
pub fn error_catalog_markdown() -> String {
    let mut out = String::from(
        "# Error codes\n\n\
         <!-- Generated from `ErrorCode::ALL` by `portal_core::error::error_catalog_markdown`.\n     \
         Regenerate with `PORTAL_BLESS=1 cargo test -p portal-core --test errors_doc`. -->\n\n\
         Every error a `portal-core` service returns carries one of these codes. The code is\n\
         the stable part of the contract: match on it, never on the message. Over HTTP it\n\
         appears as the `code` member of an RFC 9457 `application/problem+json` body, next to\n\
         the `request_id` that finds the request's diagnostic events.\n\n\
         | code | HTTP | retry can help | meaning | raised by |\n\
         |---|---:|---|---|---|\n",
    );
    for code in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            code.as_str(),
            code.http_status(),
            if code.is_retryable() { "yes" } else { "no" },
            code.meaning(),
            code.raised_by()
        ));
    }
    out
}

/// The error every service operation returns.
///
/// Its [`code`](Self::code) is the contract; the message is for people and may change.
/// Messages are lowercase without a trailing period, and put user input in backticks.
/// Server-side causes are kept as the [`source`](std::error::Error::source) for logs and
/// never appear in the [`Problem`] a customer sees.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortalError {
    code: ErrorCode,
    message: String,
    param: Option<String>,
    details: BTreeMap<String, serde_json::Value>,
    #[source]
    source: Option<BoxError>,
}

impl PortalError {
    /// An error with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
            details: BTreeMap::new(),
            source: None,
        }
    }

    /// A `validation.invalid_field` error naming the offending `param`.
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidField, message).with_param(param)
    }

    /// Names the request field the error is about.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Adds a machine-readable detail, such as the current version after a conflict.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Keeps the underlying cause for logs.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The request field the error is about, for validation errors.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// Machine-readable details.
    pub fn details(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.details
    }

    /// Whether the same request may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// The RFC 9457 body for this error, for the request `request_id`.
    ///
    /// For server errors (5xx) the message is replaced by the code's meaning, so
    /// internal details never reach a customer.
    pub fn to_problem(&self, request_id: RequestId) -> Problem {
        let status = self.code.http_status();
        let detail = if status >= 500 {
            self.code.meaning().to_owned()
        } else {
            self.message.clone()
        };
        Problem {
            problem_type: format!("urn:portal-core:error:{}", self.code.as_str()),
            title: self.code.meaning().to_owned(),
            status,
            detail,
            instance: None,
            code: self.code,
            request_id,
            retryable: self.code.is_retryable(),
            param: self.param.clone(),
            extensions: if status >= 500 {
                BTreeMap::new()
            } else {
                self.details.clone()
            },
        }
    }
}

impl From<crate::ids::ParseIdError> for PortalError {
    fn from(err: crate::ids::ParseIdError) -> Self {
        PortalError::invalid_field(format!("{}_id", err.expected), err.to_string())
    }
}

/// An RFC 9457 problem details body (`application/problem+json`).
///
/// Beside the standard members it always carries `code` and `request_id`, and `param`
/// for validation errors. Extension members (such as `current_version`) are flattened
/// into the object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type: `urn:portal-core:error:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The code's one-line meaning.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request path, when the host knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stable error code.
    pub code: ErrorCode,
    /// The request id that finds this request's diagnostic events.
    pub request_id: RequestId,
    /// Whether the same request may succeed if retried later.
    pub retryable: bool,
    /// The offending request field, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Extension members.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

impl Problem {
    /// The media type of the body.
    pub const CONTENT_TYPE: &'static str = "application/problem+json";
}

/// The portal was configured in a way it cannot run: a part the host did not wire was
/// asked for, or the parts given do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`PortalBuilder::build`](crate::PortalBuilder::build) without [`tenancy_store`](crate::PortalBuilder::tenancy_store).
    #[error("a portal needs a tenancy store")]
    MissingTenancyStore,
    /// A service was asked of a portal built without what it needs (its store).
    #[error("the portal was built without {0}")]
    NotConfigured(&'static str),
    /// Two workflow definitions share a name and a version.
    #[error("two workflow definitions share the name `{name}` and the version {version}")]
    DuplicateDefinition {
        /// The definitions' name.
        name: String,
        /// Their version.
        version: u32,
    },
    /// A part given to the builder that the [`gate`](crate::PortalBuilder::gate) given with it
    /// already holds (its authorizer or its diagnostics sink).
    #[error("`{0}` cannot be given together with a gate, which holds its own")]
    ConflictsWithGate(&'static str),
    /// The gate given does not decide with the policy replica given, so the policy service
    /// would change one policy while requests are decided on another.
    #[error("the gate given does not decide with the policy replica given")]
    GateNotOnReplica,
    /// A support grant store was given, but the gate given lets no grant in, so grants
    /// would be given that nothing honours.
    #[error("the gate given does not let staff in through the support grant store given")]
    GateWithoutGrants,
}

impl From<ConfigError> for PortalError {
    fn from(err: ConfigError) -> Self {
        PortalError::new(ErrorCode::Internal, "the portal is not configured for this").with_source(BoxError::from(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SequentialIds;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_dotted_and_lowercase() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.contains('.'), "{s} is not dotted");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'), "{s}");
            assert_eq!(s.parse::<ErrorCode>().unwrap(), *code);
            let meaning = code.meaning();
            assert!(!meaning.ends_with('.') && meaning.chars().next().unwrap().is_lowercase());
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn unknown_codes_do_not_parse() {
        assert!("access.maybe".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn problem_carries_code_request_id_and_param() {
        let request_id = RequestId::generate(&SequentialIds::default(), time::OffsetDateTime::UNIX_EPOCH);
        let err = PortalError::invalid_field("slug", "`Acme Inc` is not a valid slug");
        let problem = err.to_problem(request_id);
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["type"], "urn:portal-core:error:validation.invalid_field");
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "validation.invalid_field");
        assert_eq!(json["param"], "slug");
        assert_eq!(json["request_id"], request_id.to_string());
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back, problem);
    }

    #[test]
    fn server_errors_hide_their_message_and_details() {
        let request_id = RequestId::generate(&SequentialIds::default(), time::OffsetDateTime::UNIX_EPOCH);
        let err = PortalError::new(ErrorCode::StorageFailure, "column `secret_sauce` is missing")
            .with_detail("table", "memberships");
        let problem = err.to_problem(request_id);
        assert_eq!(problem.detail, "storage failed");
        assert!(problem.extensions.is_empty());
        assert!(!serde_json::to_string(&problem).unwrap().contains("secret_sauce"));
    }

    #[test]
    fn details_become_extension_members() {
        let request_id = RequestId::generate(&SequentialIds::default(), time::OffsetDateTime::UNIX_EPOCH);
        let err = PortalError::new(ErrorCode::VersionConflict, "stale").with_detail("current_version", 7);
        let json = serde_json::to_value(err.to_problem(request_id)).unwrap();
        assert_eq!(json["current_version"], 7);
        assert_eq!(json["retryable"], true);
    }
}
