//! The OpenAPI 3.1 document of the `/v1` API, generated with utoipa from the DTOs and
//! the path declarations below, so every server serves the same contract.
//!
//! Success responses are declared on each path; error responses are added by
//! [`openapi`] from one table, [`error_codes`], so that every error response lists its
//! codes: in its description, in an `x-error-codes` extension, and as an `enum` of the
//! problem body's `code`. Every response documents `X-Request-Id` (minted by the server)
//! and `X-Client-Request-Id` (the client's own id, echoed).

use std::collections::BTreeMap;

use portal_core::ErrorCode;
use utoipa::openapi::Required;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, ArrayItems, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::{
    AuditEventsQuery, AuditExportQuery, ExportQuery, PageQuery, SupportBundleQuery, TimelineQuery, WorkflowQuery,
};
use crate::dto::*;
use crate::idempotency::Idempotency;

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The media type of a journal export: one JSON object per line.
pub const JSON_LINES: &str = "application/x-ndjson";

/// The media type of a CSV export of the audit log.
pub const CSV: &str = "text/csv; charset=utf-8";

/// An RFC 9457 problem details body, as every error response carries it.
#[derive(ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code, reason = "a schema only: the body is portal_core::Problem")]
struct ProblemSchema {
    /// `urn:portal-core:error:<code>`.
    #[schema(rename = "type")]
    problem_type: String,
    /// The code's one-line meaning.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// The request path.
    instance: Option<String>,
    /// The stable error code.
    code: String,
    /// The request id: give it to support.
    request_id: String,
    /// Whether the same request may succeed later.
    retryable: bool,
    /// The offending field, for validation errors (a JSON path, a query parameter, or a
    /// header such as `If-Match`).
    param: Option<String>,
}

/// Declarations of every path; the functions are never called.
#[allow(dead_code, reason = "utoipa path declarations")]
mod paths {
    use super::*;

    #[utoipa::path(post, path = "/v1/auth/sign-in", tag = "identity", operation_id = "sign_in",
        summary = "Sign in with email and password",
        description = "Starts a session: the token is in the body (for `Authorization: Bearer`) and in the `HttpOnly` `portal_session` cookie; the CSRF token for cookie clients is in the body and the `portal_csrf` cookie. Limited per client source: past the limit, `429` with `Retry-After`.",
        request_body = SignInRequest, security(()),
        responses((status = 200, description = "Signed in", body = SignInResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf`"))),
            (status = 202, description = "The password is right and the account has a second factor (a confirmed TOTP factor or a passkey): no session yet; complete the challenge within 5 minutes with a code at `POST /v1/auth/mfa/challenge` or a passkey at `POST /v1/auth/mfa/challenge/passkey` (`factors` says which the account has)", body = MfaChallengeView)))]
    fn sign_in() {}

    #[utoipa::path(post, path = "/v1/auth/password-reset", tag = "identity", operation_id = "request_password_reset",
        summary = "Ask for a password-reset link by mail",
        description = "Answers `202` for every valid address, whether or not it has an account, after the same work: an account's address is mailed a single-use link valid 30 minutes, any other address a note that it has no account. Limited per client source and per address: past either, `429` with `Retry-After`.",
        request_body = PasswordResetRequest, security(()),
        responses((status = 202, description = "Accepted; a message is on its way")))]
    fn request_password_reset() {}

    #[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "identity", operation_id = "reset_password",
        summary = "Set a new password with a reset link's token",
        description = "Uses the token once (and retires the user's older reset tokens), sets the new password, ends every session of the user and mails them that the password changed. A malformed, tampered or unknown token is `400 auth.token_invalid`, a used one `409 auth.token_used`, an expired one `410 auth.token_expired`; a refused password does not use the token. Limited per client source.",
        request_body = PasswordResetConfirm, security(()),
        responses((status = 204, description = "The password is set; every session ended")))]
    fn reset_password() {}

    #[utoipa::path(post, path = "/v1/auth/sign-up", tag = "identity", operation_id = "request_sign_up",
        summary = "Ask for an account by mail",
        description = "Answers `202` for every valid address after the same work, whatever the host's sign-up policy and whether or not the address has an account: an address with no account that the policy admits (open, or a domain an org claimed) is mailed a single-use link valid 24 hours; an address with an account a note to sign in; any other address a note that accounts are made by invitation. Limited per client source and per address (quotas shared with password-reset requests): past either, `429` with `Retry-After`.",
        request_body = SignUpRequest, security(()),
        responses((status = 202, description = "Accepted; a message is on its way")))]
    fn request_sign_up() {}

    #[utoipa::path(post, path = "/v1/auth/sign-up/confirm", tag = "identity", operation_id = "complete_sign_up",
        summary = "Create the account of a sign-up link",
        description = "Uses the link's token once, creates the user (address verified) with the display name and password, joins the org that claimed the address's domain (under the domain policy) and signs the user in. A malformed, tampered or unknown token is `400 auth.token_invalid`, a used one (or one whose address got an account since) `409 auth.token_used`, an expired one `410 auth.token_expired`; `403 access.denied` when the policy no longer admits the address. A refused password does not use the token. Limited per client source.",
        request_body = SignUpConfirm, security(()),
        responses((status = 200, description = "Signed up and signed in", body = SignInResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf`")))))]
    fn complete_sign_up() {}

    #[utoipa::path(post, path = "/v1/auth/sign-up/invitation", tag = "identity", operation_id = "sign_up_by_invitation",
        summary = "Create the account of an invited address and accept the invitation",
        description = "For an invited address with no account, under every sign-up policy: creates the user (address verified, since the invitation was mailed to it) with the display name and password, accepts the invitation as that user and signs them in. An address with an account is `409 user.email_taken`: sign in and accept at `POST /v1/invitations/accept`. Limited per client source.",
        request_body = InvitationSignUp, security(()),
        responses((status = 200, description = "Signed up, joined and signed in", body = SignInResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf`")))))]
    fn sign_up_by_invitation() {}

    #[utoipa::path(post, path = "/v1/auth/password", tag = "identity", operation_id = "change_password",
        summary = "Change the signed-in user's password",
        description = "Needs the current password, checked under the sign-in throttle (a wrong one counts as a failed sign-in from this source; a source locked out of signing in is locked out here too, as `401 auth.invalid_credentials`). Every session of the user ends; the caller gets a new one, as at an org switch: the token in the `portal_session` cookie, and in the body only for a bearer caller.",
        request_body = ChangePasswordRequest,
        responses((status = 200, description = "Changed; the new session", body = SwitchOrgResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf` of the new session")))))]
    fn change_password() {}

    #[utoipa::path(post, path = "/v1/auth/email-verification", tag = "identity", operation_id = "request_email_verification",
        summary = "Mail the signed-in user a link that verifies their address",
        description = "Mails a single-use link valid 24 hours to the user's address (a new one each time; using one retires the others). Limited per client source and per user: past either, `429` with `Retry-After`. A mail server that refuses the message is `503 mail.unavailable`.",
        responses((status = 202, description = "Accepted; the message was handed to the mail server")))]
    fn request_email_verification() {}

    #[utoipa::path(post, path = "/v1/auth/email-verification/confirm", tag = "identity", operation_id = "verify_email",
        summary = "Verify the signed-in user's address with a mailed link's token",
        description = "Needs the signed-in user the link was mailed to. Uses the token once (and retires the user's older ones) and marks the address verified. A malformed, tampered or unknown token, or one mailed to an address the user no longer has, is `400 auth.token_invalid`; a used one `409 auth.token_used`; an expired one `410 auth.token_expired`; another user's `403 auth.token_wrong_user` (and it stays usable by its user). Limited per client source.",
        request_body = VerifyEmailRequest,
        responses((status = 200, description = "Verified", body = EmailStatusView)))]
    fn verify_email() {}

    #[utoipa::path(post, path = "/v1/auth/email-change", tag = "identity", operation_id = "request_email_change",
        summary = "Ask to move the signed-in user's account to another address",
        description = "Needs the current password, checked under the sign-in throttle (a wrong one counts as a failed sign-in from this source, `401 auth.invalid_credentials`), and for a user with a second factor a fresh `code`, `recovery_code` or a `passkey` (the answer to `POST /v1/auth/passkeys/reauthentication`: `400 auth.passkey_refused` when it does not verify, the ceremony's `auth.token_*` when used, expired or another user's) (`400 auth.mfa_code_invalid` when none). The new address is validated and normalized as at sign-up; the user's own is `400 validation.invalid_field`. Answers `202` whether or not the new address has an account: off the request path the new address gets a single-use link valid 24 hours (or, when it has an account, a note that nothing changed) and the current address a notice without a link. Only the latest request of a user works. Limited per client source and per user: past either, `429` with `Retry-After`.",
        request_body = EmailChangeRequestBody,
        responses((status = 202, description = "Accepted; the messages are being sent")))]
    fn request_email_change() {}

    #[utoipa::path(post, path = "/v1/auth/email-change/confirm", tag = "identity", operation_id = "confirm_email_change",
        summary = "Move the signed-in user's account to the address a change link was mailed to",
        description = "Needs the signed-in user who asked. Uses the token once and, in one step, switches the user's address and login email and marks the new address verified; sessions are kept. A malformed, tampered or unknown token, or one asked for from an address the user no longer has, is `400 auth.token_invalid`; a used one (or one a later request replaced) `409 auth.token_used`; an expired one `410 auth.token_expired`; another user's `403 auth.token_wrong_user` (it stays usable by its user); an address another account took since `409 user.email_taken` (nothing changed). Limited per client source.",
        request_body = ConfirmEmailChangeRequest,
        responses((status = 200, description = "Changed; the new address, verified", body = EmailStatusView)))]
    fn confirm_email_change() {}

    #[utoipa::path(get, path = "/v1/auth/email", tag = "identity", operation_id = "email_status",
        summary = "The signed-in user's address and whether it is verified",
        responses((status = 200, description = "The address", body = EmailStatusView)))]
    fn email_status() {}

    #[utoipa::path(post, path = "/v1/auth/sign-out", tag = "identity", operation_id = "sign_out",
        summary = "Sign the current session out",
        responses((status = 204, description = "Signed out; the cookies are cleared")))]
    fn sign_out() {}

    #[utoipa::path(get, path = "/v1/auth/me", tag = "identity", operation_id = "me",
        summary = "Who the caller is, and their orgs",
        responses((status = 200, description = "The caller", body = MeResponse)))]
    fn me() {}

    #[utoipa::path(get, path = "/v1/sessions", tag = "identity", operation_id = "list_sessions",
        summary = "The caller's live sessions, a page at a time",
        params(PageQuery),
        responses((status = 200, description = "A page of the sessions, newest first", body = SessionList)))]
    fn list_sessions() {}

    #[utoipa::path(delete, path = "/v1/sessions/{session_id}", tag = "identity", operation_id = "revoke_session",
        summary = "Revoke one of the caller's sessions",
        params(("session_id" = String, Path, description = "A session id (`ses_…`)")),
        responses((status = 204, description = "Revoked")))]
    fn revoke_session() {}

    #[utoipa::path(get, path = "/v1/orgs", tag = "orgs", operation_id = "list_my_orgs",
        summary = "The caller's orgs, a page at a time",
        params(PageQuery),
        responses((status = 200, description = "A page of the orgs with the caller's roles, by id", body = MyOrgList)))]
    fn list_my_orgs() {}

    #[utoipa::path(post, path = "/v1/orgs", tag = "orgs", operation_id = "create_org",
        summary = "Create an org (the caller becomes its owner)",
        request_body = CreateOrgRequest,
        responses((status = 201, description = "Created", body = OrgView)))]
    fn create_org() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}", tag = "orgs", operation_id = "get_org",
        summary = "One org", params(("org_id" = String, Path, description = "An org id (`org_…`)")),
        responses((status = 200, description = "The org", body = OrgView)))]
    fn get_org() {}

    #[utoipa::path(patch, path = "/v1/orgs/{org_id}", tag = "orgs", operation_id = "update_org",
        summary = "Rename the org or replace its metadata",
        description = "Needs `org write` (owners and admins). A field left out stays as it is; `metadata` replaces all of it. A change is in the audit log as `org.updated` (the name before and after, the metadata keys that changed, never their values); an update that changes nothing writes nothing.",
        params(("org_id" = String, Path, description = "An org id (`org_…`)")),
        request_body = UpdateOrgRequest,
        responses((status = 200, description = "The org as it now is", body = OrgView)))]
    fn update_org() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/members", tag = "orgs", operation_id = "list_members",
        summary = "The org's members", params(("org_id" = String, Path, description = "An org id"), PageQuery),
        responses((status = 200, description = "A page of members", body = MemberList)))]
    fn list_members() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/members/{user_id}", tag = "orgs", operation_id = "remove_member",
        summary = "Remove a member",
        params(("org_id" = String, Path, description = "An org id"), ("user_id" = String, Path, description = "A user id (`usr_…`)")),
        responses((status = 204, description = "Removed")))]
    fn remove_member() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/members/{user_id}/roles", tag = "roles", operation_id = "assign_role",
        summary = "Give a member a role", request_body = AssignRoleRequest,
        params(("org_id" = String, Path, description = "An org id"), ("user_id" = String, Path, description = "A user id")),
        responses((status = 200, description = "The membership after the change", body = MemberView)))]
    fn assign_role() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/members/{user_id}/roles/{role}", tag = "roles", operation_id = "unassign_role",
        summary = "Take a role from a member",
        params(("org_id" = String, Path, description = "An org id"), ("user_id" = String, Path, description = "A user id"),
            ("role" = String, Path, description = "A role name")),
        responses((status = 200, description = "The membership after the change", body = MemberView)))]
    fn unassign_role() {}

    #[utoipa::path(put, path = "/v1/orgs/{org_id}/scim-groups/{group_id}/roles", tag = "roles", operation_id = "set_group_roles",
        summary = "Map a directory (SCIM) group to roles: its active members hold them at once (`scim configure`, the owner's)",
        request_body = GroupRolesRequest,
        params(("org_id" = String, Path, description = "An org id"), ("group_id" = String, Path, description = "A SCIM group id (`grp_…`)")),
        responses((status = 200, description = "The group with its roles after the change", body = GroupRolesView)))]
    fn set_group_roles() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/invitations", tag = "orgs", operation_id = "list_invitations",
        summary = "The org's invitations", params(("org_id" = String, Path, description = "An org id"), PageQuery),
        responses((status = 200, description = "A page of invitations", body = InvitationList)))]
    fn list_invitations() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/invitations", tag = "orgs", operation_id = "invite",
        summary = "Invite someone", request_body = InviteRequest,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "Invited; the token is shown once", body = CreatedInvitation)))]
    fn invite() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/invitations/{invitation_id}", tag = "orgs", operation_id = "revoke_invitation",
        summary = "Revoke an invitation",
        params(("org_id" = String, Path, description = "An org id"), ("invitation_id" = String, Path, description = "An invitation id (`inv_…`)")),
        responses((status = 200, description = "The revoked invitation", body = InvitationView)))]
    fn revoke_invitation() {}

    #[utoipa::path(post, path = "/v1/invitations/accept", tag = "orgs", operation_id = "accept_invitation",
        summary = "Accept an invitation as the signed-in user", request_body = AcceptInvitationRequest,
        responses((status = 200, description = "The new membership", body = MemberView)))]
    fn accept_invitation() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/roles", tag = "roles", operation_id = "list_roles",
        summary = "The org's custom roles, a page at a time", params(("org_id" = String, Path, description = "An org id"), PageQuery),
        responses((status = 200, description = "A page of the custom roles, by name", body = RoleList)))]
    fn list_roles() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/roles", tag = "roles", operation_id = "create_role",
        summary = "Define a custom role", request_body = RoleView,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "Defined", body = RoleView)))]
    fn create_role() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/roles/{role}", tag = "roles", operation_id = "delete_role",
        summary = "Delete a custom role",
        params(("org_id" = String, Path, description = "An org id"), ("role" = String, Path, description = "A custom role name")),
        responses((status = 204, description = "Deleted")))]
    fn delete_role() {}

    #[utoipa::path(put, path = "/v1/orgs/{org_id}/roles/{role}", tag = "roles", operation_id = "update_role",
        summary = "Replace a custom role's parent and permissions (`roles manage`; built-in roles are refused with `role.builtin`)",
        request_body = RoleUpdate,
        params(("org_id" = String, Path, description = "An org id"), ("role" = String, Path, description = "A custom role name")),
        responses((status = 200, description = "The role as it now is", body = RoleView)))]
    fn update_role() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/members/{user_id}/permissions", tag = "roles", operation_id = "member_permissions",
        summary = "What a member may do: every rule their roles reach, with the role chain (`roles read`, or `org read` for oneself)",
        params(("org_id" = String, Path, description = "An org id"), ("user_id" = String, Path, description = "A member's user id (`usr_…`)")),
        responses((status = 200, description = "The member's rules, deny rules included", body = MemberPermissions)))]
    fn member_permissions() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/who-can", tag = "roles", operation_id = "who_can",
        summary = "The members who may do an action on an object, each with the granting rule (`roles read`)",
        params(("org_id" = String, Path, description = "An org id"), WhoCanQuery),
        responses((status = 200, description = "The members allowed, by user id", body = WhoCanList)))]
    fn who_can() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/api-keys", tag = "identity", operation_id = "list_api_keys",
        summary = "The org's API keys, a page at a time", params(("org_id" = String, Path, description = "An org id"), PageQuery),
        responses((status = 200, description = "A page of the API keys, by id (never their secrets)", body = ApiKeyList)))]
    fn list_api_keys() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/api-keys", tag = "identity", operation_id = "create_api_key",
        summary = "Create an API key", request_body = CreateApiKeyRequest,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "Created; the key is shown once", body = CreatedApiKey)))]
    fn create_api_key() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/api-keys/{key_id}", tag = "identity", operation_id = "revoke_api_key",
        summary = "Revoke an API key",
        params(("org_id" = String, Path, description = "An org id"), ("key_id" = String, Path, description = "An API key id (`key_…`)")),
        responses((status = 200, description = "The revoked key", body = ApiKeyView)))]
    fn revoke_api_key() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/workflows", tag = "workflows", operation_id = "list_workflows",
        summary = "The org's workflow instances, each with the caller's available transitions",
        params(("org_id" = String, Path, description = "An org id"), WorkflowQuery),
        responses((status = 200, description = "A page of instances", body = WorkflowList)))]
    fn list_workflows() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/workflows", tag = "workflows", operation_id = "create_workflow",
        summary = "Create a workflow instance", request_body = CreateWorkflowRequest,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "Created", body = WorkflowView,
            headers(("ETag" = String, description = "The instance version, `\"<version>\"`")))))]
    fn create_workflow() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/workflows/{workflow_id}", tag = "workflows", operation_id = "get_workflow",
        summary = "One workflow instance, with the transitions the caller may fire now",
        params(("org_id" = String, Path, description = "An org id"), ("workflow_id" = String, Path, description = "A workflow id (`wf_…`)")),
        responses((status = 200, description = "The instance", body = WorkflowView,
            headers(("ETag" = String, description = "The instance version, `\"<version>\"`")))))]
    fn get_workflow() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/workflows/{workflow_id}/transitions/{transition}", tag = "workflows",
        operation_id = "transition_workflow",
        summary = "Fire a transition at the version the caller read",
        description = "`If-Match` must carry the `ETag` of the version read; a stale one answers `409 workflow.version_conflict` with `current_version`.",
        request_body = TransitionRequest,
        params(("org_id" = String, Path, description = "An org id"), ("workflow_id" = String, Path, description = "A workflow id"),
            ("transition" = String, Path, description = "A transition name, such as `triage`"),
            ("If-Match" = String, Header, description = "The `ETag` of the version read, such as `\"3\"`")),
        responses((status = 200, description = "The instance after the transition", body = WorkflowView,
            headers(("ETag" = String, description = "The new version")))))]
    fn transition_workflow() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/diagnostics/requests/{request_id}", tag = "support",
        operation_id = "request_events", summary = "The events of one request, a page at a time",
        params(("org_id" = String, Path, description = "An org id"), ("request_id" = String, Path, description = "A request id (`req_…`) from a problem body or `X-Request-Id`"), PageQuery),
        responses((status = 200, description = "The events", body = EventList)))]
    fn request_events() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/diagnostics/requests/{request_id}/explain", tag = "support",
        operation_id = "explain_request", summary = "Why one request failed",
        params(("org_id" = String, Path, description = "An org id"), ("request_id" = String, Path, description = "A request id")),
        responses((status = 200, description = "The root cause and its evidence", body = ExplanationView)))]
    fn explain_request() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/diagnostics/timeline", tag = "support", operation_id = "timeline",
        summary = "The org's events in a window",
        params(("org_id" = String, Path, description = "An org id"), TimelineQuery),
        responses((status = 200, description = "A page of events", body = EventList)))]
    fn timeline() {}

    #[utoipa::path(post, path = "/v1/auth/switch-org", tag = "identity", operation_id = "switch_org",
        summary = "Make another of the caller's orgs the session's active org",
        description = "The session is rotated, as at sign-in, but keeps its absolute expiry (switching never extends a session): the new token is in the `portal_session` cookie, and in the body only when the caller authenticated with `Authorization: Bearer` (a cookie caller never sees it where scripts can read it); its CSRF token is in the body and the `portal_csrf` cookie; the old token stops working. Only a session can switch (an API key or an access token answers `403 access.denied`); an org the user is not a member of answers `404 org.not_found`.",
        request_body = SwitchOrgRequest,
        responses((status = 200, description = "Switched; the new session", body = SwitchOrgResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf` of the new session")))))]
    fn switch_org() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/workflows/{workflow_id}/history", tag = "workflows",
        operation_id = "workflow_history", summary = "A workflow instance's history, oldest first",
        params(("org_id" = String, Path, description = "An org id"), ("workflow_id" = String, Path, description = "A workflow id (`wf_…`)"), PageQuery),
        responses((status = 200, description = "A page of the entries: creation, transitions, assignments, votes", body = HistoryList)))]
    fn workflow_history() {}

    #[utoipa::path(put, path = "/v1/orgs/{org_id}/workflows/{workflow_id}/assignee", tag = "workflows",
        operation_id = "assign_workflow",
        summary = "Assign a workflow instance to a member, or unassign it",
        description = "Needs write access to the instance. The state stays and the version goes up by one; `If-Match` must carry the `ETag` of the version read. An instance in a terminal state answers `409 workflow.transition_not_allowed`; an assignee who is not a member `400 validation.invalid_field` (param `assignee`).",
        request_body = AssignWorkflowRequest,
        params(("org_id" = String, Path, description = "An org id"), ("workflow_id" = String, Path, description = "A workflow id"),
            ("If-Match" = String, Header, description = "The `ETag` of the version read, such as `\"3\"`")),
        responses((status = 200, description = "The instance after the change", body = WorkflowView,
            headers(("ETag" = String, description = "The new version")))))]
    fn assign_workflow() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/workflows/{workflow_id}/votes", tag = "workflows",
        operation_id = "vote_workflow",
        summary = "Vote on a transition that needs approvals",
        description = "Needs the approval rule's permission (for the shipped definitions, `<resource>/* approve`: admins and owners). The transition fires once it has enough approving votes from distinct voters other than the instance's creator; one rejecting vote fires the rule's rejection transition. Every vote raises the version; `If-Match` must carry the `ETag` of the version read. With `on_behalf_of`, the caller casts the vote of a member who delegated theirs to the caller. A transition without an approval rule answers `422 approval.not_required`; the creator's own vote `403 approval.self_approval`; a second vote of one voter `409 approval.already_voted`.",
        request_body = VoteRequestBody,
        params(("org_id" = String, Path, description = "An org id"), ("workflow_id" = String, Path, description = "A workflow id"),
            ("If-Match" = String, Header, description = "The `ETag` of the version read, such as `\"3\"`")),
        responses((status = 200, description = "The instance after the vote (in its new state if the vote decided it)", body = WorkflowView,
            headers(("ETag" = String, description = "The new version")))))]
    fn vote_workflow() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/delegations", tag = "workflows",
        operation_id = "delegate_votes",
        summary = "Delegate the caller's approval votes to another member for a window",
        description = "Any member may delegate their own votes; the delegate casts them with `on_behalf_of` on `POST …/votes` while the window is in force (otherwise `403 approval.delegation_expired`). A second delegation to the same member replaces the first. A delegate who is not another member, or an `ends_at` not after `starts_at`, answers `400 validation.invalid_field`.",
        request_body = DelegationRequest,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "The delegation", body = DelegationView)))]
    fn delegate_votes() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/diagnostics/support-bundle", tag = "support",
        operation_id = "support_bundle", summary = "What support needs to start: recent failures by cause, memberships, sessions",
        description = "Of the org, or with `user` of one member, over the last 7 days. The org's admins see the customer view; vendor staff with a support grant see everything.",
        params(("org_id" = String, Path, description = "An org id"), SupportBundleQuery),
        responses((status = 200, description = "The bundle", body = SupportBundleView)))]
    fn support_bundle() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/diagnostics/export", tag = "support",
        operation_id = "export_events", summary = "The org's events in a window, as JSON lines",
        description = "One diagnostic event per line (`application/x-ndjson`), in journal order, redacted for the org's admins. A window covers at most 31 days.",
        params(("org_id" = String, Path, description = "An org id"), ExportQuery),
        responses((status = 200, description = "The events, one JSON object per line", body = String,
            content_type = "application/x-ndjson")))]
    fn export_events() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/audit-events", tag = "audit",
        operation_id = "list_audit_events", summary = "The org's audit log, oldest first, a page at a time",
        description = "Who did what in the org: each event's action (with its schema version), actor as they were at the time, targets, request context (the server's request id, the client's `X-Request-Id`, IP address, user agent), time and metadata. Needs `audit read` (owners and admins by default). Every filter given applies; `until` must be after `from`.",
        params(("org_id" = String, Path, description = "An org id"), AuditEventsQuery),
        responses((status = 200, description = "A page of events", body = AuditEventList)))]
    fn list_audit_events() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/support-grants", tag = "support", operation_id = "list_support_grants",
        summary = "The org's support access grants, active or not, a page at a time",
        description = "Every grant the org gave vendor staff, oldest first, with `active` telling whether it lets its staff member in now. Needs `support_grants read` (owner, admin).",
        params(("org_id" = String, Path, description = "An org id"), PageQuery),
        responses((status = 200, description = "A page of grants", body = SupportGrantList)))]
    fn list_support_grants() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/support-grants", tag = "support", operation_id = "create_support_grant",
        summary = "Let a vendor staff member into the org",
        description = "Gives the user `staff` (not a member of the org) read-only or read-write access for `hours` from now (1 to the longest grant the server allows, 72 by default), for a reason. Every request the staff member makes under it records a `support.access` event in the org's journal, which the org's owners read in its timeline. Needs `support_grants create` (owner, admin).",
        request_body = CreateSupportGrantRequest,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "The grant", body = SupportGrantView)))]
    fn create_support_grant() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/support-grants/{grant_id}", tag = "support", operation_id = "revoke_support_grant",
        summary = "Revoke a support access grant now",
        description = "Ends the grant now; a grant already revoked is answered unchanged. Needs `support_grants delete` (owner, admin).",
        params(("org_id" = String, Path, description = "An org id"), ("grant_id" = String, Path, description = "A support grant id (`sag_…`)")),
        responses((status = 200, description = "The revoked grant", body = SupportGrantView)))]
    fn revoke_support_grant() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/workflow-definitions", tag = "workflows", operation_id = "list_workflow_definitions",
        summary = "The workflow definitions the deployment runs: states, transitions, Mermaid",
        description = "The latest version of every definition, by name: its states (terminal or not, how long before overdue), its transitions (from, to, the permission asked, required inputs, guards, approvals) and the state machine as Mermaid `stateDiagram-v2` text. The same in every org; read through one the caller belongs to (`org read`).",
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 200, description = "The definitions", body = WorkflowDefinitionList)))]
    fn list_workflow_definitions() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/workflow-definitions/{definition}", tag = "workflows", operation_id = "get_workflow_definition",
        summary = "One workflow definition: states, transitions, Mermaid",
        params(("org_id" = String, Path, description = "An org id"), ("definition" = String, Path, description = "A definition's name, such as `support_case`")),
        responses((status = 200, description = "The definition's latest version", body = WorkflowDefinitionView)))]
    fn get_workflow_definition() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/audit-events/export", tag = "audit",
        operation_id = "export_audit_events", summary = "The org's audit log as JSON lines or CSV",
        description = "Every event that passes the filters, oldest first, streamed as it is read: `format=jsonl` (default) gives one event per line as the listing shows it; `format=csv` gives RFC 4180 CSV with a header line, targets as `type:id` joined by `;`, metadata as JSON, and any cell a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`) prefixed with `'`. Needs `audit read`.",
        params(("org_id" = String, Path, description = "An org id"), AuditExportQuery),
        responses((status = 200, description = "The events",
            content((String = "application/x-ndjson"), (String = "text/csv; charset=utf-8")),
            headers(("Content-Disposition" = String, description = "`attachment` with a file name")))))]
    fn export_audit_events() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/challenge", tag = "identity", operation_id = "complete_mfa_challenge",
        summary = "Complete a sign-in with the second factor",
        description = "Takes the `challenge_token` of a `202` sign-in and exactly one of `code` (the six digits the authenticator app shows) and `recovery_code` (used up). Starts the session as sign-in does. A malformed, tampered or unknown challenge is `400 auth.token_invalid`, a used one `409 auth.token_used`, an expired one (5 minutes) `410 auth.token_expired`; a wrong or already used code is `400 auth.mfa_code_invalid`, counts as a failed sign-in under the sign-in throttle, and leaves the challenge usable. Limited per client source as sign-in is.",
        request_body = MfaChallengeRequest, security(()),
        responses((status = 200, description = "Signed in", body = SignInResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf`")))))]
    fn complete_mfa_challenge() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/challenge/passkey/options", tag = "identity", operation_id = "begin_mfa_passkey",
        summary = "Begin answering a sign-in's second-factor challenge with a passkey",
        description = "Takes the `challenge_token` of a `202` sign-in whose `factors` include `passkey`, and answers the options for `navigator.credentials.get()` (only the account's passkeys allowed, user verification required) and a `ceremony_token`, shown once, that `POST /v1/auth/mfa/challenge/passkey` takes with the same challenge within 5 minutes. The challenge stays open. A malformed, tampered or unknown challenge is `400 auth.token_invalid`, a used one `409 auth.token_used`, an expired one `410 auth.token_expired`; an account without a passkey is `409 auth.mfa_not_enrolled`. Limited per client source as sign-in is.",
        request_body = MfaPasskeyOptionsRequest, security(()),
        responses((status = 200, description = "The ceremony begun", body = PasskeyCeremonyView)))]
    fn begin_mfa_passkey() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/challenge/passkey", tag = "identity", operation_id = "complete_mfa_challenge_with_passkey",
        summary = "Complete a sign-in with a passkey as the second factor",
        description = "Takes the `challenge_token`, the `ceremony_token` begun for that challenge and the authenticator's answer (`credential`). The ceremony is used once (`409 auth.token_used`, `410 auth.token_expired`) and only for the challenge it was begun for (another is `400 auth.token_invalid`, param `ceremony_token`); an answer that does not verify, is not user-verified, or comes from a passkey that is not (or no longer) the account's, or from a throttled source, is `400 auth.passkey_refused` and counts as a failed sign-in; a signature counter not past the stored one is `401 auth.passkey_counter_regressed`. A verified answer uses the challenge once and starts the session as sign-in does (body and cookies). Limited per client source as sign-in is.",
        request_body = MfaPasskeyChallengeRequest, security(()),
        responses((status = 200, description = "Signed in", body = SignInResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf`")))))]
    fn complete_mfa_challenge_with_passkey() {}

    #[utoipa::path(get, path = "/v1/auth/mfa", tag = "identity", operation_id = "mfa_status",
        summary = "The caller's second factors",
        responses((status = 200, description = "Whether a TOTP factor is enrolled, the recovery codes left, and how many passkeys are registered", body = MfaStatusView)))]
    fn mfa_status() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/totp", tag = "identity", operation_id = "begin_totp_enrollment",
        summary = "Begin TOTP enrollment",
        description = "Needs the caller's current `password` and, when they have a passkey, its answer (`passkey`: see `POST /v1/auth/passkeys/reauthentication`), checked under the sign-in throttle (`401 auth.invalid_credentials`; `400 auth.mfa_code_invalid` without the passkey's answer; `400 auth.passkey_refused`): a session alone puts no factor on the account. A new secret (replacing a pending one), as base32, as an `otpauth://` URI and as its QR code (SVG), shown once. The factor is pending, and signs nobody in, until confirmed with a first code. Over a confirmed factor: `409 auth.mfa_already_enrolled` (before the password is checked).",
        request_body = BeginTotpEnrollmentRequest,
        responses((status = 201, description = "Enrollment begun", body = TotpEnrollmentView)))]
    fn begin_totp_enrollment() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/totp/confirm", tag = "identity", operation_id = "confirm_totp",
        summary = "Confirm TOTP enrollment with a first code",
        description = "Confirms the pending factor and answers ten recovery codes, shown once (only their SHA-256 is kept). From now on sign-in asks for the factor. Without a pending enrollment: `409 auth.mfa_not_enrolled`; a wrong code: `400 auth.mfa_code_invalid`.",
        request_body = ConfirmTotpRequest,
        responses((status = 200, description = "Confirmed; the recovery codes", body = RecoveryCodesView)))]
    fn confirm_totp() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/totp/remove", tag = "identity", operation_id = "remove_totp",
        summary = "Remove the TOTP factor",
        description = "Needs the current password and a fresh second factor (exactly one of `code`, `recovery_code` and `passkey`; a pending enrollment needs the password only), both checked under the sign-in throttle. Removes the factor and its recovery codes.",
        request_body = RemoveTotpRequest,
        responses((status = 204, description = "Removed")))]
    fn remove_totp() {}

    #[utoipa::path(get, path = "/v1/auth/passkeys", tag = "identity", operation_id = "list_passkeys",
        summary = "The caller's passkeys",
        description = "The signed-in user's passkeys, oldest first: id, name, when registered and last used. Nothing of the credential is shown.",
        responses((status = 200, description = "The passkeys", body = PasskeyList)))]
    fn list_passkeys() {}

    #[utoipa::path(post, path = "/v1/auth/passkeys/registration", tag = "identity", operation_id = "begin_passkey_registration",
        summary = "Begin registering a passkey",
        description = "A passkey signs its user in with no password, so a session alone does not add one: the caller's current `password` and, when they have a second factor (a TOTP factor or a passkey), a fresh one (exactly one of `code`, `recovery_code` and `passkey`: the answer to `POST /v1/auth/passkeys/reauthentication`), checked under the sign-in throttle (`401 auth.invalid_credentials`; `400 auth.mfa_code_invalid` for a missing or refused code; `400 auth.passkey_refused`). Answers the options for `navigator.credentials.create()` (`{\"publicKey\": …}`, binary fields base64url; user verification required; the caller's passkeys excluded) and a `ceremony_token`, shown once, that `POST /v1/auth/passkeys` takes within 5 minutes. A signed-in user only.",
        request_body = BeginPasskeyRegistrationRequest,
        responses((status = 201, description = "The ceremony begun", body = PasskeyCeremonyView)))]
    fn begin_passkey_registration() {}

    #[utoipa::path(post, path = "/v1/auth/passkeys/reauthentication", tag = "identity", operation_id = "begin_passkey_reauthentication",
        summary = "Begin proving the caller again with one of their passkeys",
        description = "The options for `navigator.credentials.get()` (only the caller's passkeys, user verification required) and a `ceremony_token`, shown once. Send both (the token, and the authenticator's answer as `credential`) as the `passkey` field of the caller's next change that asks for a fresh second factor: adding or removing a passkey, removing the TOTP factor, new recovery codes, a change of email. The ceremony is taken once, within 5 minutes, and only for the caller. A caller without a passkey is `409 auth.mfa_not_enrolled`. A signed-in user only.",
        responses((status = 201, description = "The ceremony begun", body = PasskeyCeremonyView)))]
    fn begin_passkey_reauthentication() {}

    #[utoipa::path(post, path = "/v1/auth/passkeys", tag = "identity", operation_id = "finish_passkey_registration",
        summary = "Finish registering a passkey",
        description = "The `ceremony_token`, a `name` and the authenticator's answer (`credential`, the `PublicKeyCredential` as JSON). The ceremony is used once and only by the user who began it (`403 auth.token_wrong_user`); an answer that does not verify (another origin or relying party id, another challenge, no user verification) is `400 auth.passkey_refused`; a credential some account has registered is `409 passkey.already_registered`.",
        request_body = FinishPasskeyRegistrationRequest,
        responses((status = 201, description = "Registered", body = PasskeyView)))]
    fn finish_passkey_registration() {}

    #[utoipa::path(post, path = "/v1/auth/passkeys/sign-in/options", tag = "identity", operation_id = "begin_passkey_sign_in",
        summary = "Begin a passwordless sign-in with a passkey",
        description = "No account is named: the options for `navigator.credentials.get()` (user verification required, any discoverable credential of this site) and a `ceremony_token`, shown once, that `POST /v1/auth/passkeys/sign-in` takes within 5 minutes. Limited per client source as sign-in is.",
        security(()),
        responses((status = 200, description = "The ceremony begun", body = PasskeyCeremonyView)))]
    fn begin_passkey_sign_in() {}

    #[utoipa::path(post, path = "/v1/auth/passkeys/sign-in", tag = "identity", operation_id = "finish_passkey_sign_in",
        summary = "Finish a passwordless sign-in with a passkey",
        description = "The `ceremony_token` and the authenticator's answer (`credential`). A verified answer starts the session of the passkey's user as sign-in does (body and cookies); user verification makes it both factors, so there is no MFA challenge. The ceremony is used once (`409 auth.token_used`, `410 auth.token_expired`, `400 auth.token_invalid`); an answer that does not verify, names an unknown credential or another account, or comes from a throttled source is `400 auth.passkey_refused` and counts as a failed sign-in; a signature counter not past the stored one (a cloned authenticator) is `401 auth.passkey_counter_regressed`.",
        request_body = PasskeySignInRequest, security(()),
        responses((status = 200, description = "Signed in", body = SignInResponse,
            headers(("Set-Cookie" = String, description = "`portal_session` (HttpOnly) and `portal_csrf`")))))]
    fn finish_passkey_sign_in() {}

    #[utoipa::path(patch, path = "/v1/auth/passkeys/{passkey_id}", tag = "identity", operation_id = "rename_passkey",
        summary = "Rename one of the caller's passkeys",
        params(("passkey_id" = String, Path, description = "A passkey id (`pky_…`)")),
        request_body = RenamePasskeyRequest,
        responses((status = 200, description = "Renamed", body = PasskeyView)))]
    fn rename_passkey() {}

    #[utoipa::path(post, path = "/v1/auth/passkeys/{passkey_id}/remove", tag = "identity", operation_id = "remove_passkey",
        summary = "Remove one of the caller's passkeys",
        description = "Needs the current password and, when the caller has a second factor (a TOTP factor or a passkey: with a passkey to remove, always), a fresh one (exactly one of `code`, `recovery_code` and `passkey`: the answer to `POST /v1/auth/passkeys/reauthentication`, by this or another of the caller's passkeys), checked under the sign-in throttle; none is `400 auth.mfa_code_invalid`. Another user's passkey is `404 passkey.not_found`. Removing the last passkey of an account without a TOTP factor leaves it without a second factor: orgs requiring one refuse it (`403 auth.mfa_required`).",
        params(("passkey_id" = String, Path, description = "A passkey id (`pky_…`)")),
        request_body = RemovePasskeyRequest,
        responses((status = 204, description = "Removed")))]
    fn remove_passkey() {}

    #[utoipa::path(post, path = "/v1/auth/mfa/recovery-codes", tag = "identity", operation_id = "regenerate_recovery_codes",
        summary = "Replace the recovery codes",
        description = "After a fresh second factor (exactly one of `code`, `recovery_code` and `passkey`), replaces every recovery code, used or not, with ten new ones, shown once.",
        request_body = SecondFactorRequest,
        responses((status = 200, description = "The new recovery codes", body = RecoveryCodesView)))]
    fn regenerate_recovery_codes() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/mfa-policy", tag = "orgs", operation_id = "get_mfa_policy",
        summary = "Whether the org requires a second factor of its members",
        params(("org_id" = String, Path, description = "An org id (`org_…`)")),
        responses((status = 200, description = "The policy", body = MfaPolicyView)))]
    fn get_mfa_policy() {}

    #[utoipa::path(put, path = "/v1/orgs/{org_id}/mfa-policy", tag = "orgs", operation_id = "set_mfa_policy",
        summary = "Require (or stop requiring) a second factor of the org's members",
        description = "Needs `mfa_policy manage` (owners). While on, a member with neither a confirmed TOTP factor nor a passkey is refused every operation in the org with `403 auth.mfa_required` (signing in, enrolling and registering a passkey still work). Turning it on needs a second factor of one's own (`403 auth.mfa_required` otherwise).",
        params(("org_id" = String, Path, description = "An org id (`org_…`)")),
        request_body = MfaPolicyView,
        responses((status = 200, description = "The policy as set", body = MfaPolicyView)))]
    fn set_mfa_policy() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/api-version", tag = "orgs", operation_id = "get_api_version",
        summary = "The API version the org is pinned to",
        description = "Requests to the org without a `Portal-Version` header answer in this version. Needs `org read`.",
        params(("org_id" = String, Path, description = "An org id (`org_…`)")),
        responses((status = 200, description = "The pinned version", body = ApiVersionView)))]
    fn get_api_version() {}

    #[utoipa::path(put, path = "/v1/orgs/{org_id}/api-version", tag = "orgs", operation_id = "set_api_version",
        summary = "Pin the org to a newer API version",
        description = "Needs `api_version manage` (owners). The version is one of the supported dates, not older than the org's pin (`409 org.api_version_downgrade` otherwise). A change is written to the org's audit log as `org.api_version_changed`.",
        params(("org_id" = String, Path, description = "An org id (`org_…`)")),
        request_body = ApiVersionView,
        responses((status = 200, description = "The version as pinned", body = ApiVersionView)))]
    fn set_api_version() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/audit-retention", tag = "audit", operation_id = "get_audit_retention",
        summary = "How long the org keeps its audit events",
        description = "`days`, or `null` for ever (the default). Needs `audit read` (owners and admins by default).",
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 200, description = "The retention", body = AuditRetentionView)))]
    fn get_audit_retention() {}

    #[utoipa::path(put, path = "/v1/orgs/{org_id}/audit-retention", tag = "audit", operation_id = "set_audit_retention",
        summary = "Set how long the org keeps its audit events",
        description = "`days` 7 to 3650, or `null` to keep them for ever; otherwise `400 validation.invalid_field` naming `days`. Events older than that are deleted within minutes (the server purges every 5 minutes), with their webhook deliveries and attempts. Writes `audit.retention_changed`. Needs `audit manage` (owners by default).",
        request_body = AuditRetentionView,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 200, description = "The retention as set", body = AuditRetentionView)))]
    fn set_audit_retention() {}

    #[utoipa::path(get, path = "/v1/webhook-event-types", tag = "webhooks", operation_id = "list_webhook_event_types",
        summary = "The event types a webhook endpoint may subscribe to",
        description = "Every action of the audit catalog (with the version of its schema), then the deployment's own. Deliveries carry the action as `type` and the audit event as `data`. Any signed-in caller.",
        responses((status = 200, description = "The event types", body = WebhookEventTypeList)))]
    fn list_webhook_event_types() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/webhook-endpoints", tag = "webhooks", operation_id = "list_webhook_endpoints",
        summary = "The org's webhook endpoints, a page at a time",
        description = "In id order, never with their secrets. Needs `webhooks manage` (owners and admins by default).",
        params(("org_id" = String, Path, description = "An org id"), PageQuery),
        responses((status = 200, description = "A page of endpoints", body = WebhookEndpointList)))]
    fn list_webhook_endpoints() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/webhook-endpoints", tag = "webhooks", operation_id = "create_webhook_endpoint",
        summary = "Create a webhook endpoint; its signing secret is shown once",
        description = "The endpoint receives, signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), every audit event of the org committed from now on whose action its `event_types` take (all when empty). `url` must be `https` (plain `http` only for a host the server allows), at most 2048 bytes, without credentials or fragment, and not a loopback, private or link-local address: otherwise `400 validation.invalid_field` naming `url`. An unknown event type names `event_types/<i>`, more than 64 names `event_types`. Needs `webhooks manage`.",
        request_body = CreateWebhookEndpointRequest,
        params(("org_id" = String, Path, description = "An org id")),
        responses((status = 201, description = "Created; the secret is shown once", body = WebhookEndpointWithSecret)))]
    fn create_webhook_endpoint() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}", tag = "webhooks", operation_id = "get_webhook_endpoint",
        summary = "One webhook endpoint",
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)")),
        responses((status = 200, description = "The endpoint", body = WebhookEndpointView)))]
    fn get_webhook_endpoint() {}

    #[utoipa::path(patch, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}", tag = "webhooks", operation_id = "update_webhook_endpoint",
        summary = "Change a webhook endpoint",
        description = "Each field given replaces the endpoint's (the rules of creation); an absent one stays. Enabling a failing or disabled endpoint clears its failing state, and its pending deliveries resume. Needs `webhooks manage`.",
        request_body = UpdateWebhookEndpointRequest,
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)")),
        responses((status = 200, description = "The endpoint as changed", body = WebhookEndpointView)))]
    fn update_webhook_endpoint() {}

    #[utoipa::path(delete, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}", tag = "webhooks", operation_id = "delete_webhook_endpoint",
        summary = "Delete a webhook endpoint",
        description = "With its pending deliveries and its attempt log. Needs `webhooks manage`.",
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)")),
        responses((status = 204, description = "Deleted")))]
    fn delete_webhook_endpoint() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/rotate-secret", tag = "webhooks", operation_id = "rotate_webhook_secret",
        summary = "Rotate a webhook endpoint's signing secret; the new one is shown once",
        description = "The new secret signs from now on; the previous one keeps signing beside it for 24 hours (`previous_secret_valid_until`), so `webhook-signature` then holds two signatures and a receiver holding either verifies. Needs `webhooks manage`.",
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)")),
        responses((status = 200, description = "The endpoint and its new secret, shown once", body = WebhookEndpointWithSecret)))]
    fn rotate_webhook_secret() {}

    #[utoipa::path(get, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/attempts", tag = "webhooks", operation_id = "list_webhook_attempts",
        summary = "The endpoint's delivery attempts, oldest first, a page at a time",
        description = "Each attempt's message id (`webhook-id`), number, time, status (`delivered`, `rejected`, `unreachable`), HTTP status, latency and the start of the answer. Needs `webhooks manage`.",
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)"), PageQuery),
        responses((status = 200, description = "A page of attempts", body = DeliveryAttemptList)))]
    fn list_webhook_attempts() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/messages/{message_id}/replay", tag = "webhooks", operation_id = "replay_webhook_message",
        summary = "Send one message to the endpoint again",
        description = "Queues the message again, due now with a fresh retry schedule and the same `webhook-id`. A message the endpoint never had is `404 webhook.message_not_found`. Needs `webhooks manage`.",
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)"), ("message_id" = String, Path, description = "A message id (`msg_…`, a delivery's `webhook-id`)")),
        responses((status = 200, description = "How many messages were queued", body = ReplayView)))]
    fn replay_webhook_message() {}

    #[utoipa::path(post, path = "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/replay", tag = "webhooks", operation_id = "replay_webhook_range",
        summary = "Send the endpoint's messages of a time range again",
        description = "Queues again every settled (delivered or given-up) message of the endpoint whose event occurred in `[since, until)`. Needs `webhooks manage`.",
        request_body = ReplayRangeRequest,
        params(("org_id" = String, Path, description = "An org id"), ("endpoint_id" = String, Path, description = "A webhook endpoint id (`whk_…`)")),
        responses((status = 200, description = "How many messages were queued", body = ReplayView)))]
    fn replay_webhook_range() {}
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::request::SESSION_COOKIE,
                "The session cookie (`__Host-portal_session` when the server marks cookies `Secure`, as it does unless bound to loopback); unsafe methods also need `X-CSRF-Token`",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "portal-core reference API",
        version = "1",
        description = "The portal over HTTP: identity, orgs, roles, workflows and support triage. Errors are `application/problem+json` (RFC 9457) with a stable `code` and the `request_id` support finds the request by.",
    ),
    paths(
        paths::sign_in, paths::sign_out, paths::request_password_reset, paths::reset_password,
        paths::request_sign_up, paths::complete_sign_up, paths::sign_up_by_invitation,
        paths::change_password, paths::request_email_verification, paths::verify_email,
        paths::request_email_change, paths::confirm_email_change, paths::email_status,
        paths::me, paths::list_sessions, paths::revoke_session,
        paths::list_my_orgs, paths::create_org, paths::get_org, paths::update_org, paths::list_members, paths::remove_member,
        paths::assign_role, paths::unassign_role, paths::list_invitations, paths::invite, paths::revoke_invitation,
        paths::accept_invitation, paths::list_roles, paths::create_role, paths::delete_role,
        paths::update_role, paths::member_permissions, paths::who_can,
        paths::list_api_keys, paths::create_api_key, paths::revoke_api_key,
        paths::list_workflows, paths::create_workflow, paths::get_workflow, paths::transition_workflow,
        paths::request_events, paths::explain_request, paths::timeline,
        paths::switch_org, paths::workflow_history, paths::assign_workflow, paths::vote_workflow,
        paths::delegate_votes,
        paths::support_bundle, paths::export_events,
        paths::list_audit_events, paths::export_audit_events,
        paths::set_group_roles,
        paths::list_support_grants, paths::create_support_grant, paths::revoke_support_grant,
        paths::list_workflow_definitions, paths::get_workflow_definition,
        paths::complete_mfa_challenge, paths::begin_mfa_passkey, paths::complete_mfa_challenge_with_passkey,
        paths::mfa_status, paths::begin_totp_enrollment, paths::confirm_totp,
        paths::remove_totp, paths::regenerate_recovery_codes, paths::get_mfa_policy, paths::set_mfa_policy,
        paths::list_passkeys, paths::begin_passkey_registration, paths::begin_passkey_reauthentication,
        paths::finish_passkey_registration,
        paths::begin_passkey_sign_in, paths::finish_passkey_sign_in, paths::rename_passkey, paths::remove_passkey,
        paths::get_api_version, paths::set_api_version,
        paths::get_audit_retention, paths::set_audit_retention,
        paths::list_webhook_event_types, paths::list_webhook_endpoints, paths::create_webhook_endpoint,
        paths::get_webhook_endpoint, paths::update_webhook_endpoint, paths::delete_webhook_endpoint,
        paths::rotate_webhook_secret, paths::list_webhook_attempts, paths::replay_webhook_message,
        paths::replay_webhook_range,
    ),
    components(schemas(ProblemSchema)),
    modifiers(&Security),
    security(("bearer" = []), ("session_cookie" = [])),
    tags(
        (name = "identity", description = "Sign-in, sessions and API keys"),
        (name = "orgs", description = "Organizations, members and invitations"),
        (name = "roles", description = "Custom roles and role assignment"),
        (name = "workflows", description = "Support cases, returns and quotes"),
        (name = "support", description = "Support triage over the diagnostics journal, and the org's support access grants"),
        (name = "audit", description = "The org's own audit log"),
        (name = "webhooks", description = "The org's webhook endpoints (Standard Webhooks), their attempt log and replays"),
    )
)]
struct ApiDoc;

use ErrorCode as E;

/// The operation-specific error codes of each operation (by `operation_id`).
const SPECIFIC: &[(&str, &[ErrorCode])] = &[
    ("sign_in", &[E::InvalidCredentials, E::RateLimited, E::ServiceBusy]),
    ("sign_out", &[]),
    ("request_password_reset", &[E::RateLimited]),
    (
        "reset_password",
        &[
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::ServiceBusy,
        ],
    ),
    ("request_sign_up", &[E::RateLimited]),
    (
        "complete_sign_up",
        &[
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::AccessDenied,
            E::ServiceBusy,
        ],
    ),
    (
        "sign_up_by_invitation",
        &[
            E::RateLimited,
            E::InvitationNotFound,
            E::InvitationUsed,
            E::InvitationRevoked,
            E::InvitationExpired,
            E::UserEmailTaken,
            E::ServiceBusy,
        ],
    ),
    ("change_password", &[E::AccessDenied, E::ServiceBusy]),
    (
        "request_email_verification",
        &[E::AccessDenied, E::RateLimited, E::MailUnavailable],
    ),
    (
        "verify_email",
        &[
            E::AccessDenied,
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
        ],
    ),
    (
        "request_email_change",
        &[
            E::AccessDenied,
            E::RateLimited,
            E::InvalidCredentials,
            E::MfaCodeInvalid,
            E::ServiceBusy,
            E::MfaNotEnrolled,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
        ],
    ),
    (
        "confirm_email_change",
        &[
            E::AccessDenied,
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
            E::UserEmailTaken,
        ],
    ),
    ("email_status", &[E::AccessDenied]),
    ("me", &[]),
    ("list_sessions", &[E::AccessDenied]),
    ("revoke_session", &[E::AccessDenied, E::SessionNotFound]),
    ("list_my_orgs", &[E::AccessDenied]),
    ("create_org", &[E::AccessDenied, E::OrgSlugTaken, E::UserNotFound]),
    ("get_org", &[E::OrgNotFound, E::AccessDenied]),
    ("update_org", &[E::OrgNotFound, E::AccessDenied]),
    ("list_members", &[E::OrgNotFound, E::AccessDenied]),
    (
        "remove_member",
        &[E::OrgNotFound, E::AccessDenied, E::MemberNotFound, E::LastOwner],
    ),
    (
        "assign_role",
        &[E::OrgNotFound, E::AccessDenied, E::MemberNotFound, E::RoleNotFound],
    ),
    (
        "set_group_roles",
        &[
            E::OrgNotFound,
            E::AccessDenied,
            E::RoleNotFound,
            E::ScimGroupNotFound,
            E::VersionConflict,
            E::LastOwner,
        ],
    ),
    (
        "unassign_role",
        &[
            E::OrgNotFound,
            E::AccessDenied,
            E::MemberNotFound,
            E::RoleNotFound,
            E::LastOwner,
            E::LastRole,
        ],
    ),
    ("list_invitations", &[E::OrgNotFound, E::AccessDenied]),
    ("invite", &[E::OrgNotFound, E::AccessDenied, E::AlreadyMember]),
    (
        "revoke_invitation",
        &[
            E::OrgNotFound,
            E::AccessDenied,
            E::InvitationNotFound,
            E::InvitationUsed,
            E::InvitationRevoked,
        ],
    ),
    (
        "accept_invitation",
        &[
            E::AccessDenied,
            E::UserNotFound,
            E::InvitationNotFound,
            E::InvitationExpired,
            E::InvitationUsed,
            E::InvitationRevoked,
            E::InvitationEmailMismatch,
        ],
    ),
    ("list_roles", &[E::OrgNotFound, E::AccessDenied]),
    (
        "create_role",
        &[
            E::OrgNotFound,
            E::AccessDenied,
            E::RoleExists,
            E::RoleBuiltin,
            E::RoleNotFound,
        ],
    ),
    (
        "delete_role",
        &[
            E::OrgNotFound,
            E::AccessDenied,
            E::RoleBuiltin,
            E::RoleNotFound,
            E::RoleInUse,
        ],
    ),
    (
        "update_role",
        &[E::OrgNotFound, E::AccessDenied, E::RoleBuiltin, E::RoleNotFound],
    ),
    (
        "member_permissions",
        &[E::OrgNotFound, E::AccessDenied, E::MemberNotFound],
    ),
    ("who_can", &[E::OrgNotFound, E::AccessDenied]),
    ("list_api_keys", &[E::OrgNotFound, E::AccessDenied]),
    ("create_api_key", &[E::OrgNotFound, E::AccessDenied]),
    ("revoke_api_key", &[E::OrgNotFound, E::AccessDenied, E::ApiKeyNotFound]),
    (
        "list_workflows",
        &[E::OrgNotFound, E::WorkflowNotFound, E::AccessDenied],
    ),
    ("create_workflow", &[E::WorkflowNotFound, E::AccessDenied]),
    ("get_workflow", &[E::WorkflowNotFound, E::AccessDenied]),
    (
        "transition_workflow",
        &[
            E::WorkflowNotFound,
            E::AccessDenied,
            E::UnknownTransition,
            E::TransitionNotAllowed,
            E::GuardFailed,
            E::InputMissing,
            E::ApprovalRequired,
            E::VersionConflict,
        ],
    ),
    ("request_events", &[E::OrgNotFound, E::AccessDenied]),
    ("explain_request", &[E::OrgNotFound, E::AccessDenied]),
    ("timeline", &[E::OrgNotFound, E::AccessDenied]),
    ("switch_org", &[E::AccessDenied, E::OrgNotFound]),
    ("workflow_history", &[E::WorkflowNotFound, E::AccessDenied]),
    (
        "assign_workflow",
        &[
            E::WorkflowNotFound,
            E::AccessDenied,
            E::TransitionNotAllowed,
            E::VersionConflict,
        ],
    ),
    (
        "vote_workflow",
        &[
            E::WorkflowNotFound,
            E::AccessDenied,
            E::UnknownTransition,
            E::ApprovalNotRequired,
            E::TransitionNotAllowed,
            E::DelegationExpired,
            E::SelfApproval,
            E::AlreadyVoted,
            E::InputMissing,
            E::GuardFailed,
            E::VersionConflict,
        ],
    ),
    ("delegate_votes", &[E::WorkflowNotFound, E::AccessDenied]),
    ("support_bundle", &[E::OrgNotFound, E::MemberNotFound, E::AccessDenied]),
    ("export_events", &[E::OrgNotFound, E::AccessDenied]),
    ("list_audit_events", &[E::OrgNotFound, E::AccessDenied]),
    ("export_audit_events", &[E::OrgNotFound, E::AccessDenied]),
    ("list_support_grants", &[E::OrgNotFound, E::AccessDenied]),
    (
        "create_support_grant",
        &[E::OrgNotFound, E::AccessDenied, E::UserNotFound],
    ),
    (
        "revoke_support_grant",
        &[E::OrgNotFound, E::AccessDenied, E::SupportGrantNotFound],
    ),
    ("list_workflow_definitions", &[E::WorkflowNotFound, E::AccessDenied]),
    ("get_workflow_definition", &[E::WorkflowNotFound, E::AccessDenied]),
    (
        "complete_mfa_challenge",
        &[
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::MfaCodeInvalid,
        ],
    ),
    (
        "begin_mfa_passkey",
        &[
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::MfaNotEnrolled,
        ],
    ),
    (
        "complete_mfa_challenge_with_passkey",
        &[
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
        ],
    ),
    ("mfa_status", &[E::AccessDenied]),
    (
        "begin_totp_enrollment",
        &[
            E::AccessDenied,
            E::MfaAlreadyEnrolled,
            E::InvalidCredentials,
            E::MfaCodeInvalid,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
            E::ServiceBusy,
            E::UserNotFound,
        ],
    ),
    ("confirm_totp", &[E::AccessDenied, E::MfaNotEnrolled, E::MfaCodeInvalid]),
    (
        "remove_totp",
        &[
            E::AccessDenied,
            E::MfaNotEnrolled,
            E::MfaCodeInvalid,
            E::ServiceBusy,
            E::UserNotFound,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
        ],
    ),
    (
        "regenerate_recovery_codes",
        &[
            E::AccessDenied,
            E::MfaNotEnrolled,
            E::MfaCodeInvalid,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
        ],
    ),
    ("list_passkeys", &[E::AccessDenied]),
    (
        "begin_passkey_registration",
        &[
            E::AccessDenied,
            E::InvalidCredentials,
            E::MfaCodeInvalid,
            E::MfaNotEnrolled,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
            E::ServiceBusy,
            E::UserNotFound,
        ],
    ),
    ("begin_passkey_reauthentication", &[E::AccessDenied, E::MfaNotEnrolled]),
    (
        "finish_passkey_registration",
        &[
            E::AccessDenied,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
            E::PasskeyRefused,
            E::PasskeyExists,
        ],
    ),
    ("begin_passkey_sign_in", &[E::RateLimited]),
    (
        "finish_passkey_sign_in",
        &[
            E::RateLimited,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
        ],
    ),
    ("rename_passkey", &[E::AccessDenied, E::PasskeyNotFound]),
    (
        "remove_passkey",
        &[
            E::AccessDenied,
            E::MfaCodeInvalid,
            E::PasskeyNotFound,
            E::ServiceBusy,
            E::UserNotFound,
            E::MfaNotEnrolled,
            E::PasskeyRefused,
            E::PasskeyCounterRegressed,
            E::TokenInvalid,
            E::TokenUsed,
            E::TokenExpired,
            E::TokenWrongUser,
        ],
    ),
    ("get_mfa_policy", &[E::OrgNotFound, E::AccessDenied]),
    ("set_mfa_policy", &[E::OrgNotFound, E::AccessDenied]),
    ("get_api_version", &[E::OrgNotFound, E::AccessDenied]),
    (
        "set_api_version",
        &[E::OrgNotFound, E::AccessDenied, E::ApiVersionDowngrade],
    ),
    ("get_audit_retention", &[E::OrgNotFound, E::AccessDenied]),
    ("set_audit_retention", &[E::OrgNotFound, E::AccessDenied]),
    ("list_webhook_event_types", &[]),
    ("list_webhook_endpoints", &[E::OrgNotFound, E::AccessDenied]),
    ("create_webhook_endpoint", &[E::OrgNotFound, E::AccessDenied]),
    (
        "get_webhook_endpoint",
        &[E::OrgNotFound, E::AccessDenied, E::WebhookEndpointNotFound],
    ),
    (
        "update_webhook_endpoint",
        &[E::OrgNotFound, E::AccessDenied, E::WebhookEndpointNotFound],
    ),
    (
        "delete_webhook_endpoint",
        &[E::OrgNotFound, E::AccessDenied, E::WebhookEndpointNotFound],
    ),
    (
        "rotate_webhook_secret",
        &[E::OrgNotFound, E::AccessDenied, E::WebhookEndpointNotFound],
    ),
    (
        "list_webhook_attempts",
        &[E::OrgNotFound, E::AccessDenied, E::WebhookEndpointNotFound],
    ),
    (
        "replay_webhook_message",
        &[
            E::OrgNotFound,
            E::AccessDenied,
            E::WebhookEndpointNotFound,
            E::WebhookMessageNotFound,
        ],
    ),
    (
        "replay_webhook_range",
        &[E::OrgNotFound, E::AccessDenied, E::WebhookEndpointNotFound],
    ),
];

/// Every error code an operation may answer with, by its `operation_id` and method:
/// its own codes, plus those of the edge (authentication, CSRF, body, validation,
/// storage). Empty for an unknown operation.
pub fn error_codes(operation_id: &str, method: &str, has_body: bool) -> Vec<ErrorCode> {
    let Some((_, specific)) = SPECIFIC.iter().find(|(id, _)| *id == operation_id) else {
        return Vec::new();
    };
    let mut codes = vec![E::InvalidField, E::UnknownApiVersion];
    if has_body {
        codes.extend([E::MalformedRequest, E::UnsupportedMediaType, E::PayloadTooLarge]);
    }
    // The gate refuses every operation in an org whose MFA policy is on to a member
    // without a second factor.
    if specific.contains(&E::OrgNotFound) || specific.contains(&E::WorkflowNotFound) {
        codes.push(E::MfaRequired);
    }
    if !matches!(
        operation_id,
        "sign_in"
            | "request_password_reset"
            | "reset_password"
            | "complete_mfa_challenge"
            | "begin_mfa_passkey"
            | "complete_mfa_challenge_with_passkey"
            | "begin_passkey_sign_in"
            | "finish_passkey_sign_in"
            | "request_sign_up"
            | "complete_sign_up"
            | "sign_up_by_invitation"
    ) {
        codes.extend([E::Unauthenticated, E::InvalidCredentials]);
        if crate::request::is_unsafe_method(method) {
            codes.push(E::CsrfRejected);
        }
    }
    codes.extend(specific.iter().copied());
    if let Some(idempotency) = route_idempotency(operation_id) {
        codes.extend(idempotency_codes(idempotency));
    }
    codes.extend([E::StorageUnavailable, E::StorageFailure, E::PolicyFailure, E::Internal]);
    codes.sort();
    codes.dedup();
    codes
}

/// What the route table says `operation_id` does with an `Idempotency-Key`: the single
/// source of the key's parameter and of its answers in the document, so that a new route
/// cannot be documented without them. `None` for an operation the table does not serve.
fn route_idempotency(operation_id: &str) -> Option<Idempotency> {
    crate::routes::routes()
        .iter()
        .find(|route| route.is_documented() && route.operation_id == operation_id)
        .map(|route| route.idempotency)
}

/// The error codes an operation answers because of its [`Idempotency`] (see
/// [`idempotency`](crate::idempotency)): a kept or service-keyed key is reused for another
/// request (`422`) or its first request still runs (`409`); a shown secret is not replayed
/// (`409`); a refused key is `400 idempotency.unsupported`.
pub fn idempotency_codes(idempotency: Idempotency) -> &'static [ErrorCode] {
    match idempotency {
        Idempotency::Safe => &[],
        Idempotency::Replay | Idempotency::Service => &[E::IdempotencyKeyReused, E::IdempotencyInFlight],
        Idempotency::ShowsSecret => &[
            E::IdempotencyKeyReused,
            E::IdempotencyInFlight,
            E::IdempotencySecretNotReplayed,
        ],
        Idempotency::Refused => &[E::IdempotencyUnsupported],
    }
}

/// The pattern of an `Idempotency-Key` as `portal_core::context::IdempotencyKey` takes it:
/// 1 to 255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// The description of the `Idempotency-Key` parameter of an operation that takes one
/// (`None` for [`Idempotency::Safe`] and [`Idempotency::Refused`], which do not list it).
fn idempotency_key_description(idempotency: Idempotency) -> Option<&'static str> {
    match idempotency {
        Idempotency::Safe | Idempotency::Refused => None,
        Idempotency::Replay => Some(
            "Makes a retry safe (Stripe's semantics), for 24 h, per org, principal and operation: \
             the same key and request replay the first `2xx` answer (`Idempotent-Replayed: true`); \
             the same key while its first request runs is `409 idempotency.in_flight` (retry); \
             another request under the key is `422 idempotency.key_reused`. A refused request \
             keeps nothing: its retry runs again",
        ),
        Idempotency::ShowsSecret => Some(
            "Makes a retry safe, for 24 h, per org, principal and operation: the same key and \
             request create once, and the retry answers `409 idempotency.secret_not_replayed` \
             (the secret is shown once, never replayed: list to find what was created); the same \
             key while its first request runs is `409 idempotency.in_flight` (retry); another \
             request under the key is `422 idempotency.key_reused`",
        ),
        Idempotency::Service => Some(
            "Makes a retry safe, kept by the workflow service with the instance: the same key and \
             request return the first result; the same key while its first request runs is \
             `409 idempotency.in_flight` (retry); another request under the key is \
             `422 idempotency.key_reused`",
        ),
    }
}

/// Adds the `Idempotency-Key` header parameter the route table gives `operation` (see
/// [`idempotency_key_description`]), and on a [`Idempotency::Replay`] operation the
/// `Idempotent-Replayed` header of its success answers.
fn add_idempotency_key(operation: &mut Operation) {
    let Some(idempotency) = operation.operation_id.as_deref().and_then(route_idempotency) else {
        return;
    };
    if let Some(description) = idempotency_key_description(idempotency) {
        let parameter = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some(IDEMPOTENCY_KEY_PATTERN)),
            ))
            .build();
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        parameters.retain(|p| p.name != "Idempotency-Key");
        parameters.push(parameter);
    }
    if idempotency == Idempotency::Replay {
        let replayed = HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["true"])),
            )
            .description(Some(
                "`true` on an answer replayed for a retry under the same `Idempotency-Key`; absent otherwise",
            ))
            .build();
        for (status, response) in operation.responses.responses.iter_mut() {
            if status.starts_with('2')
                && let RefOr::T(response) = response
            {
                response
                    .headers
                    .insert("Idempotent-Replayed".to_owned(), replayed.clone());
            }
        }
    }
}

/// The `Portal-Version` request header of every operation, and its echo on successful
/// answers: the document describes one version ([`crate::version::CURRENT`] here;
/// [`crate::version::document`] rewrites it for the others).
fn add_version_header(operation: &mut Operation) {
    let parameter = ParameterBuilder::new()
        .name("Portal-Version")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The API version to answer in (a date; this document describes one). Without it, the \
             version the path's org is pinned to (`GET /v1/orgs/{org_id}/api-version`), or the newest \
             one outside an org. Another value is `400 request.unknown_version`",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([crate::version::CURRENT])),
        ))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(parameter);
    let echo = HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$")),
        )
        .description(Some("The API version the answer is in"))
        .build();
    for (status, response) in operation.responses.responses.iter_mut() {
        if status.starts_with('2')
            && let RefOr::T(response) = response
        {
            response.headers.insert("Portal-Version".to_owned(), echo.clone());
        }
    }
}

fn add_errors(operation: &mut Operation, method: &str) {
    let Some(id) = operation.operation_id.clone() else {
        return;
    };
    let has_body = operation.request_body.is_some();
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in error_codes(&id, method, has_body) {
        by_status.entry(code.http_status()).or_default().push(code);
    }
    for (status, codes) in by_status {
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        let description = codes
            .iter()
            .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
            .collect::<Vec<_>>()
            .join("; ");
        let schema = AllOfBuilder::new().item(Ref::from_schema_name("Problem")).item(
            ObjectBuilder::new()
                .property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(names.clone())),
                )
                .required("code"),
        );
        let mut response = ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build())
            .extensions(Some(ExtensionsBuilder::new().add("x-error-codes", names).build()));
        if codes.contains(&E::RateLimited) || codes.contains(&E::ServiceBusy) {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before retrying"))
                    .build(),
            );
        }
        operation
            .responses
            .responses
            .insert(status.to_string(), response.build().into());
    }
    let request_id = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "The request id (`req_…`), always minted by the server: look the request up with it. \
             A client's own `X-Request-Id` never becomes it (see `X-Client-Request-Id`)",
        ))
        .build();
    let client_request_id = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "The `X-Request-Id` the client sent, echoed when valid (1 to 64 ASCII letters, digits, \
             `-`, `_`, `.`, `:`; dropped otherwise). Recorded on the request's events as \
             `client_request_id`, never used as the request's id or to look requests up",
        ))
        .build();
    for response in operation.responses.responses.values_mut() {
        if let utoipa::openapi::RefOr::T(response) = response {
            response.headers.insert("X-Request-Id".to_owned(), request_id.clone());
            response
                .headers
                .insert("X-Client-Request-Id".to_owned(), client_request_id.clone());
        }
    }
}

/// The OpenAPI 3.1 document of the API, error responses included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for item in doc.paths.paths.values_mut() {
        for (method, operation) in [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ] {
            if let Some(operation) = operation {
                add_idempotency_key(operation);
                add_version_header(operation);
                add_errors(operation, method);
                let cursor = operation.operation_id.as_deref().and_then(cursor_pattern);
                for parameter in operation.parameters.iter_mut().flatten() {
                    if parameter.name == "cursor"
                        && let Some(pattern) = &cursor
                        && let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
                    {
                        schema.pattern = Some(pattern.clone());
                    }
                    let ids = match parameter.parameter_in {
                        ParameterIn::Path => PATH_IDS,
                        ParameterIn::Query => QUERY_IDS,
                        _ => &[],
                    };
                    if let Some(prefix) = ids
                        .iter()
                        .find(|(name, _)| *name == parameter.name)
                        .map(|(_, prefix)| *prefix)
                        && let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
                    {
                        schema.pattern = Some(id_pattern(prefix));
                    }
                    let patterns = match parameter.parameter_in {
                        ParameterIn::Path => PATH_PATTERNS,
                        _ => &[],
                    };
                    if let Some(pattern) = PARAMETER_PATTERNS
                        .iter()
                        .chain(patterns)
                        .find(|(name, _)| *name == parameter.name)
                        .map(|(_, pattern)| *pattern)
                        && let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
                    {
                        schema.pattern = Some(pattern.to_owned());
                    }
                }
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for (schema_name, field, prefix) in BODY_IDS {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(*schema_name)
                && let Some(RefOr::T(Schema::Object(property))) = schema.properties.get_mut(*field)
            {
                property.pattern = Some(id_pattern(prefix));
            }
        }
        // The versions a pin may name (`set_api_version`), as `version::VERSIONS` lists them.
        if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut("ApiVersionView")
            && let Some(RefOr::T(Schema::Object(property))) = schema.properties.get_mut("version")
        {
            property.enum_values = Some(crate::version::VERSIONS.iter().map(|v| (*v).into()).collect());
        }
        for (schema_name, field, pattern) in BODY_PATTERNS {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(*schema_name) {
                match schema.properties.get_mut(*field) {
                    Some(RefOr::T(Schema::Object(property))) => property.pattern = Some((*pattern).to_owned()),
                    Some(RefOr::T(Schema::Array(array))) => {
                        if let ArrayItems::RefOrSchema(items) = &mut array.items
                            && let RefOr::T(Schema::Object(item)) = items.as_mut()
                        {
                            item.pattern = Some((*pattern).to_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    doc
}

/// Body fields (or the items of array fields) with the pattern the server enforces:
/// schema, field, pattern.
const BODY_PATTERNS: &[(&str, &str, &str)] = &[
    ("AssignRoleRequest", "role", ROLE_NAME_PATTERN),
    ("GroupRolesRequest", "roles", ROLE_NAME_PATTERN),
    ("GroupRolesView", "roles", ROLE_NAME_PATTERN),
    ("InviteRequest", "roles", ROLE_NAME_PATTERN),
    ("InvitationView", "roles", ROLE_NAME_PATTERN),
    ("MemberRolesView", "roles", ROLE_NAME_PATTERN),
    ("MemberView", "roles", ROLE_NAME_PATTERN),
    ("MemberEntry", "roles", ROLE_NAME_PATTERN),
    ("MyOrgView", "roles", ROLE_NAME_PATTERN),
    ("RoleView", "name", ROLE_NAME_PATTERN),
    ("RoleUpdate", "parent", ROLE_NAME_PATTERN),
];

/// The pattern of an id's text form with the given prefix, as `portal_core::ids` parses
/// it: the prefix, `_`, then 26 lowercase Crockford base32 characters, the first at most
/// `7` (128 bits).
pub fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-7][0-9a-hjkmnp-tv-z]{{25}}$")
}

/// Path parameters that are ids, with their prefix.
const PATH_IDS: &[(&str, &str)] = &[
    ("org_id", "org"),
    ("user_id", "usr"),
    ("invitation_id", "inv"),
    ("workflow_id", "wf"),
    ("request_id", "req"),
    ("key_id", "key"),
    ("session_id", "ses"),
    ("group_id", "grp"),
    ("grant_id", "sag"),
    ("endpoint_id", "whk"),
    ("message_id", "msg"),
    ("passkey_id", "pky"),
];

/// The pattern of a listing's `cursor` where the listing is keyed by something with a
/// text form: an id of the listed kind (any well-formed one pages after it), or a
/// history's version number. `None` for the listings whose cursors are not yet described.
fn cursor_pattern(operation_id: &str) -> Option<String> {
    match operation_id {
        "list_my_orgs" => Some(id_pattern("org")),
        "list_members" => Some(id_pattern("usr")),
        "list_invitations" => Some(id_pattern("inv")),
        "list_workflows" => Some(id_pattern("wf")),
        "workflow_history" => Some("^[0-9]{1,19}$".to_owned()),
        "list_audit_events" => Some(id_pattern("aud")),
        "list_support_grants" => Some(id_pattern("sag")),
        "list_webhook_endpoints" => Some(id_pattern("whk")),
        "list_webhook_attempts" => Some(id_pattern("wha")),
        _ => None,
    }
}

/// Query parameters that are ids, with their prefix.
const QUERY_IDS: &[(&str, &str)] = &[("user", "usr")];

/// The pattern of a role name, as `portal_core::tenancy::RoleName` enforces it: 1 to 64
/// of `a-z 0-9 _ -`, starting with a letter.
pub const ROLE_NAME_PATTERN: &str = "^[a-z][a-z0-9_-]{0,63}$";

/// Path parameters (only) with the pattern the server enforces: a workflow definition's
/// name, as the shipped catalog names them (the `definition` filter of a listing is
/// compared, not checked, so a query parameter of that name keeps no pattern).
const PATH_PATTERNS: &[(&str, &str)] = &[("definition", "^[a-z][a-z0-9_]{0,63}$")];

/// Other parameters with the pattern the server enforces: an `Idempotency-Key` is 1 to
/// 255 visible ASCII characters, `If-Match` one strong entity tag of a version.
const PARAMETER_PATTERNS: &[(&str, &str)] = &[
    ("role", ROLE_NAME_PATTERN),
    ("Idempotency-Key", IDEMPOTENCY_KEY_PATTERN),
    // One strong entity tag holding an instance version, as `request::parse_if_match` reads it.
    ("If-Match", "^\"[0-9]{1,19}\"$"),
];

/// Body fields that are ids: schema, field, prefix.
const BODY_IDS: &[(&str, &str, &str)] = &[
    ("ApiKeyView", "id", "key"),
    ("AssignWorkflowRequest", "assignee", "usr"),
    ("CreateWorkflowRequest", "assignee", "usr"),
    ("DelegationRequest", "to", "usr"),
    ("DelegationView", "to", "usr"),
    ("WorkflowView", "assignee", "usr"),
    ("ApiKeyView", "org", "org"),
    ("DelegationView", "org", "org"),
    ("EventView", "request_id", "req"),
    ("EventView", "org", "org"),
    ("ExplanationView", "request_id", "req"),
    ("HistoryEntryView", "request_id", "req"),
    ("InvitationView", "id", "inv"),
    ("InvitationView", "org", "org"),
    ("MeResponse", "org", "org"),
    ("MemberRolesView", "org", "org"),
    ("MemberRolesView", "user", "usr"),
    ("MemberView", "org", "org"),
    ("MemberView", "user", "usr"),
    ("MemberEntry", "org", "org"),
    ("MemberUser", "id", "usr"),
    ("OrgView", "id", "org"),
    ("Problem", "request_id", "req"),
    ("PasskeyView", "id", "pky"),
    ("SessionSummaryView", "id", "ses"),
    ("SessionSummaryView", "user", "usr"),
    ("SessionView", "id", "ses"),
    ("SessionView", "user", "usr"),
    ("SupportBundleView", "org", "org"),
    ("SupportBundleView", "user", "usr"),
    ("SwitchOrgRequest", "org_id", "org"),
    ("UserView", "id", "usr"),
    ("WorkflowView", "id", "wf"),
    ("WorkflowView", "org", "org"),
    ("CreateSupportGrantRequest", "staff", "usr"),
    ("SupportGrantView", "id", "sag"),
    ("SupportGrantView", "org", "org"),
    ("SupportGrantView", "staff", "usr"),
    ("WebhookEndpointView", "id", "whk"),
    ("WebhookEndpointView", "org", "org"),
    ("DeliveryAttemptView", "id", "wha"),
    ("DeliveryAttemptView", "endpoint", "whk"),
    ("DeliveryAttemptView", "message_id", "msg"),
];

/// The document as pretty JSON with a trailing newline: the content of
/// `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    crate::contract::tighten(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn every_operation_has_its_errors_and_every_error_lists_its_codes() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                operations += 1;
                let id = operation["operationId"].as_str().unwrap();
                assert!(
                    SPECIFIC.iter().any(|(known, _)| *known == id),
                    "{id} has no error table"
                );
                let responses = operation["responses"].as_object().unwrap();
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let codes = response["x-error-codes"]
                            .as_array()
                            .unwrap_or_else(|| panic!("{path} {status}"));
                        assert!(!codes.is_empty());
                        for code in codes {
                            let code: ErrorCode = code.as_str().unwrap().parse().unwrap();
                            assert_eq!(code.http_status().to_string(), *status, "{path} {code}");
                            assert!(response["description"].as_str().unwrap().contains(code.as_str()));
                        }
                    }
                }
                assert!(responses.contains_key("500"), "{path} {method}");
            }
        }
        assert_eq!(operations, SPECIFIC.len());
    }

    /// The document says what each route of the table does with an `Idempotency-Key`: the
    /// header (with the pattern and lengths the server enforces) on every route that keeps
    /// a key or hands it to its service, none elsewhere; their `409 idempotency.in_flight`
    /// and `422 idempotency.key_reused` (and a shown secret's `409`); a refusing route's
    /// `400 idempotency.unsupported`; a read none of these.
    #[test]
    fn every_route_documents_what_it_does_with_an_idempotency_key() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        let all = [
            E::IdempotencyKeyReused,
            E::IdempotencyInFlight,
            E::IdempotencySecretNotReplayed,
            E::IdempotencyUnsupported,
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for route in crate::routes::routes().iter().filter(|r| r.is_documented()) {
            let operation = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
            assert_eq!(operation["operationId"], route.operation_id, "{route:?}");
            let keys: Vec<&serde_json::Value> = operation["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["name"] == "Idempotency-Key").collect())
                .unwrap_or_default();
            let takes_key = matches!(
                route.idempotency,
                Idempotency::Replay | Idempotency::ShowsSecret | Idempotency::Service
            );
            assert_eq!(keys.len(), usize::from(takes_key), "{route:?}");
            if let Some(key) = keys.first() {
                assert_eq!(key["in"], "header", "{route:?}");
                assert_eq!(key["required"], false, "{route:?}");
                assert_eq!(
                    key["schema"],
                    serde_json::json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN}),
                    "{route:?}"
                );
            }
            let listed = |status: &str, code: ErrorCode| {
                operation["responses"][status]["x-error-codes"]
                    .as_array()
                    .is_some_and(|codes| codes.iter().any(|c| c == code.as_str()))
            };
            let expected = idempotency_codes(route.idempotency);
            for code in all {
                assert_eq!(
                    listed(&code.http_status().to_string(), code),
                    expected.contains(&code),
                    "{route:?} ({:?}) and {code}",
                    route.idempotency
                );
            }
            let replayed_header = operation["responses"]
                .as_object()
                .unwrap()
                .iter()
                .any(|(status, r)| status.starts_with('2') && !r["headers"]["Idempotent-Replayed"].is_null());
            assert_eq!(replayed_header, route.idempotency == Idempotency::Replay, "{route:?}");
            kinds.insert(format!("{:?}", route.idempotency));
        }
        assert_eq!(kinds.len(), 5, "every kind of route is checked: {kinds:?}");
    }

    #[test]
    fn the_key_pattern_bounds_are_the_servers() {
        let pattern = regex::Regex::new(IDEMPOTENCY_KEY_PATTERN).unwrap();
        for (key, ok) in [
            ("a".repeat(255), true),
            ("a".repeat(256), false),
            (String::new(), false),
            ("a b".to_owned(), false),
            ("clé".to_owned(), false),
        ] {
            assert_eq!(pattern.is_match(&key), ok, "{key:?}");
            assert_eq!(portal_core::context::IdempotencyKey::new(&key).is_ok(), ok, "{key:?}");
        }
    }

    proptest::proptest! {
        /// The document's `Idempotency-Key` pattern and lengths take exactly the keys the
        /// server takes (`IdempotencyKey::new`).
        #[test]
        fn the_key_pattern_is_the_servers_rule(key in "[ -~\\u{0}-\\u{1f}\\u{7f}é]{0,260}") {
            let pattern = regex::Regex::new(IDEMPOTENCY_KEY_PATTERN).unwrap();
            proptest::prop_assert_eq!(
                pattern.is_match(&key),
                portal_core::context::IdempotencyKey::new(&key).is_ok(),
                "{:?}", key
            );
        }
    }
}
