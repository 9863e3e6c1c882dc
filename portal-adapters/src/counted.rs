//! [`Counted`]: a decorator over every store port that counts the calls made through it,
//! by port and method ([`StoreCalls`]), and forwards each call unchanged to the store it
//! wraps.
//!
//! It answers "how many store calls does this operation make?" about the real stores:
//! the portal's pages are held to a fixed number of calls per page whatever the number of
//! rows (`examples/axum-portal/tests/pages/store_calls.rs`), which a store read per row
//! would break. `portal_http::PortalConfig::store_calls` wraps every store of the
//! reference server in it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use portal_core::access::{Domain, PolicyChange, PolicyLine, PolicyStore, Revision};
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery};
use portal_core::context::{IdempotencyKey, Principal};
use portal_core::diagnostics::{DiagnosticEvent, Journal, RequestQuery, TimelineQuery};
use portal_core::idempotency::{Claim, Hold, IdempotencyScope, IdempotencyStore, StoredAnswer};
use portal_core::identity::{
    ApiKeyRecord, ApiKeyStore, CredentialStore, EmailChangeRecord, EmailChangeStore, EmailChangeUse, EmailTokenRecord,
    EmailTokenUse, EmailVerificationStore, ExternalIdentity, ExternalIdentityStore, LoginAttemptStore, MfaPolicyStore,
    OneTimeTokenRecord, OneTimeTokenStore, PasswordRecord, SessionMembershipStore, SessionRecord, SessionStore,
    SessionWithMembership, ThrottleKey, TokenPurpose, TokenUse, TotpFactorRecord, TotpFactorStore, UserAuditEvent,
    VerifiedEmail,
};
use portal_core::identity::{
    CeremonyPurpose, CeremonyUse, PasskeyCeremonyRecord, PasskeyName, PasskeyRecord, PasskeyStore, PasskeyUse,
};
use portal_core::ids::{
    ApiKeyId, AuditEventId, GrantId, GroupId, InvitationId, OrgId, PasskeyId, SessionId, UserId, WebhookAttemptId,
    WebhookEndpointId, WorkflowId,
};
use portal_core::policy::AuditedPolicyStore;
use portal_core::scim::{Lookup, ScimGroup, ScimStore, ScimUser};
use portal_core::store::StoreError;
use portal_core::support::{SupportGrant, SupportGrantStore};
use portal_core::tenancy::{
    ApiVersionName, ApiVersionStore, Email, Invitation, Membership, Organization, RoleSet, Slug, TenancyStore,
    TokenHash, User,
};
use portal_core::webhooks::{
    Delivery, DeliveryAttempt, DisableRule, FinishedAttempt, NextStep, Replay, WebhookEndpoint, WebhookStore,
};
use portal_core::workflow::{
    Applied, CreateRecord, Delegation, HistoryEntry, IdempotencyRecord, Instance, ListFilter, TransitionRecord,
    WorkflowStore,
};
use time::OffsetDateTime;

/// The calls made through [`Counted`] stores, by `port.method` (`tenancy.list_member_users`,
/// `workflows.list`, `sessions.touch`, …). Clones share one tally.
#[derive(Debug, Clone, Default)]
pub struct StoreCalls {
    tally: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl StoreCalls {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one call of `method`.
    fn add(&self, method: &'static str) {
        // A tally is a plain map: a lock poisoned by a panic elsewhere is safe to reuse.
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        *tally.entry(method).or_default() += 1;
    }

    /// The calls counted so far, by `port.method`.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The number of calls counted so far, all methods together.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    /// Forgets every call counted so far.
    pub fn reset(&self) {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// A store port `P` whose every call is counted in a [`StoreCalls`] before it is passed to
/// the wrapped store. `Counted<dyn TenancyStore>` is a `TenancyStore`, and so on for every
/// store port of `portal-core` (tenancy, workflows, credentials, sessions, the session
/// and membership read, API keys, one-time tokens, sign-in attempts, support grants, the
/// journal, the audit log, policy, SCIM, webhooks).
pub struct Counted<P: ?Sized> {
    inner: Arc<P>,
    calls: StoreCalls,
}

impl<P: ?Sized> Counted<P> {
    /// `inner`, counted in `calls`.
    pub fn new(inner: Arc<P>, calls: StoreCalls) -> Self {
        Self { inner, calls }
    }
}

impl<P: ?Sized> std::fmt::Debug for Counted<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ApiVersionStore for Counted<dyn ApiVersionStore> {
    async fn api_version(&self, org: OrgId) -> Result<Option<ApiVersionName>, StoreError> {
        self.calls.add("api_version.api_version");
        self.inner.api_version(org).await
    }

    async fn pin_api_version(
        &self,
        org: OrgId,
        version: &ApiVersionName,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        self.calls.add("api_version.pin_api_version");
        self.inner.pin_api_version(org, version, event).await
    }
}

#[async_trait]
impl TenancyStore for Counted<dyn TenancyStore> {
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError> {
        self.calls.add("tenancy.create_org");
        self.inner.create_org(org, owner).await
    }

    async fn create_pinned_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: &ApiVersionName,
    ) -> Result<(), StoreError> {
        self.calls.add("tenancy.create_pinned_org");
        self.inner.create_pinned_org(org, owner, version).await
    }

    async fn get_org(&self, id: OrgId) -> Result<Option<Organization>, StoreError> {
        self.calls.add("tenancy.get_org");
        self.inner.get_org(id).await
    }

    async fn get_org_by_slug(&self, slug: &Slug) -> Result<Option<Organization>, StoreError> {
        self.calls.add("tenancy.get_org_by_slug");
        self.inner.get_org_by_slug(slug).await
    }

    async fn update_org(&self, org: &Organization, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("tenancy.update_org");
        self.inner.update_org(org, event).await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.calls.add("tenancy.create_user");
        self.inner.create_user(user).await
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.calls.add("tenancy.get_user");
        self.inner.get_user(id).await
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.calls.add("tenancy.find_user_by_email");
        self.inner.find_user_by_email(email).await
    }

    async fn get_membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError> {
        self.calls.add("tenancy.get_membership");
        self.inner.get_membership(org, user).await
    }

    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError> {
        self.calls.add("tenancy.list_members");
        self.inner.list_members(org, after, limit).await
    }

    async fn list_member_users(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(Membership, User)>, StoreError> {
        self.calls.add("tenancy.list_member_users");
        self.inner.list_member_users(org, after, limit).await
    }

    async fn list_user_orgs(
        &self,
        user: UserId,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<(Organization, Membership)>, StoreError> {
        self.calls.add("tenancy.list_user_orgs");
        self.inner.list_user_orgs(user, after, limit).await
    }

    async fn set_member_roles(
        &self,
        org: OrgId,
        user: UserId,
        roles: &RoleSet,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError> {
        self.calls.add("tenancy.set_member_roles");
        self.inner.set_member_roles(org, user, roles, at, event).await
    }

    async fn remove_member(&self, org: OrgId, user: UserId, event: &AuditEvent) -> Result<Membership, StoreError> {
        self.calls.add("tenancy.remove_member");
        self.inner.remove_member(org, user, event).await
    }

    async fn add_member(&self, membership: &Membership, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("tenancy.add_member");
        self.inner.add_member(membership, event).await
    }

    async fn create_invitation(&self, invitation: &Invitation, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("tenancy.create_invitation");
        self.inner.create_invitation(invitation, event).await
    }

    async fn get_invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        self.calls.add("tenancy.get_invitation");
        self.inner.get_invitation(org, id).await
    }

    async fn find_invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError> {
        self.calls.add("tenancy.find_invitation_by_token");
        self.inner.find_invitation_by_token(hash).await
    }

    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.calls.add("tenancy.list_invitations");
        self.inner.list_invitations(org, after, limit).await
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        user: UserId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError> {
        self.calls.add("tenancy.accept_invitation");
        self.inner.accept_invitation(id, user, at, event).await
    }

    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Invitation, StoreError> {
        self.calls.add("tenancy.revoke_invitation");
        self.inner.revoke_invitation(org, id, at, event).await
    }
}

#[async_trait]
impl WorkflowStore for Counted<dyn WorkflowStore> {
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError> {
        self.calls.add("workflows.create");
        self.inner.create(record).await
    }

    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError> {
        self.calls.add("workflows.get");
        self.inner.get(org, id).await
    }

    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError> {
        self.calls.add("workflows.apply");
        self.inner.apply(change).await
    }

    async fn find_idempotency(
        &self,
        org: OrgId,
        principal: &Principal,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.calls.add("workflows.find_idempotency");
        self.inner.find_idempotency(org, principal, key).await
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &ListFilter,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<Instance>, StoreError> {
        self.calls.add("workflows.list");
        self.inner.list(org, filter, after, limit).await
    }

    async fn history(
        &self,
        org: OrgId,
        id: WorkflowId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.calls.add("workflows.history");
        self.inner.history(org, id, after, limit).await
    }

    async fn put_delegation(&self, delegation: &Delegation) -> Result<(), StoreError> {
        self.calls.add("workflows.put_delegation");
        self.inner.put_delegation(delegation).await
    }

    async fn find_delegation(&self, org: OrgId, from: UserId, to: UserId) -> Result<Option<Delegation>, StoreError> {
        self.calls.add("workflows.find_delegation");
        self.inner.find_delegation(org, from, to).await
    }
}

#[async_trait]
impl CredentialStore for Counted<dyn CredentialStore> {
    async fn find_password(&self, email: &Email) -> Result<Option<PasswordRecord>, StoreError> {
        self.calls.add("credentials.find_password");
        self.inner.find_password(email).await
    }

    async fn set_password<'a>(
        &self,
        record: &PasswordRecord,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError> {
        self.calls.add("credentials.set_password");
        self.inner.set_password(record, event).await
    }
}

#[async_trait]
impl SessionStore for Counted<dyn SessionStore> {
    async fn create<'a>(&self, session: &SessionRecord, event: Option<&'a UserAuditEvent>) -> Result<(), StoreError> {
        self.calls.add("sessions.create");
        self.inner.create(session, event).await
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.calls.add("sessions.find_by_token");
        self.inner.find_by_token(hash).await
    }

    async fn touch(&self, id: SessionId, at: OffsetDateTime, active_org: Option<OrgId>) -> Result<(), StoreError> {
        self.calls.add("sessions.touch");
        self.inner.touch(id, at, active_org).await
    }

    async fn revoke<'a>(
        &self,
        user: UserId,
        id: SessionId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<SessionRecord, StoreError> {
        self.calls.add("sessions.revoke");
        self.inner.revoke(user, id, at, event).await
    }

    async fn revoke_all<'a>(
        &self,
        user: UserId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<u64, StoreError> {
        self.calls.add("sessions.revoke_all");
        self.inner.revoke_all(user, at, event).await
    }

    async fn rotate<'a>(
        &self,
        old: SessionId,
        new: &SessionRecord,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError> {
        self.calls.add("sessions.rotate");
        self.inner.rotate(old, new, at, event).await
    }

    async fn list(
        &self,
        user: UserId,
        at: OffsetDateTime,
        before: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.calls.add("sessions.list");
        self.inner.list(user, at, before, limit).await
    }
}

#[async_trait]
impl SessionMembershipStore for Counted<dyn SessionMembershipStore> {
    async fn find_session_with_membership(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<SessionWithMembership>, StoreError> {
        self.calls.add("session_memberships.find_session_with_membership");
        self.inner.find_session_with_membership(hash).await
    }
}

#[async_trait]
impl ApiKeyStore for Counted<dyn ApiKeyStore> {
    async fn create(&self, key: &ApiKeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("api_keys.create");
        self.inner.create(key, event).await
    }

    async fn get(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.calls.add("api_keys.get");
        self.inner.get(org, id).await
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.calls.add("api_keys.find_by_token");
        self.inner.find_by_token(hash).await
    }

    async fn touch(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.calls.add("api_keys.touch");
        self.inner.touch(id, at).await
    }

    async fn revoke(
        &self,
        org: OrgId,
        id: ApiKeyId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<ApiKeyRecord, StoreError> {
        self.calls.add("api_keys.revoke");
        self.inner.revoke(org, id, at, event).await
    }

    async fn list(&self, org: OrgId, after: Option<ApiKeyId>, limit: usize) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.calls.add("api_keys.list");
        self.inner.list(org, after, limit).await
    }
}

#[async_trait]
impl OneTimeTokenStore for Counted<dyn OneTimeTokenStore> {
    async fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        self.calls.add("one_time_tokens.find_token");
        self.inner.find_token(purpose, hash).await
    }

    async fn issue(&self, token: &OneTimeTokenRecord) -> Result<(), StoreError> {
        self.calls.add("one_time_tokens.issue");
        self.inner.issue(token).await
    }

    async fn consume(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<TokenUse, StoreError> {
        self.calls.add("one_time_tokens.consume");
        self.inner.consume(purpose, hash, at).await
    }
}

#[async_trait]
impl EmailVerificationStore for Counted<dyn EmailVerificationStore> {
    async fn issue_email_token(&self, token: &EmailTokenRecord) -> Result<(), StoreError> {
        self.calls.add("email_verification.issue_email_token");
        self.inner.issue_email_token(token).await
    }

    async fn use_email_token(
        &self,
        hash: &TokenHash,
        user: UserId,
        email: &Email,
        at: OffsetDateTime,
    ) -> Result<EmailTokenUse, StoreError> {
        self.calls.add("email_verification.use_email_token");
        self.inner.use_email_token(hash, user, email, at).await
    }

    async fn find_email_token(&self, hash: &TokenHash) -> Result<Option<EmailTokenRecord>, StoreError> {
        self.calls.add("email_verification.find_email_token");
        self.inner.find_email_token(hash).await
    }

    async fn verified_email(&self, user: UserId) -> Result<Option<VerifiedEmail>, StoreError> {
        self.calls.add("email_verification.verified_email");
        self.inner.verified_email(user).await
    }
}

#[async_trait]
impl EmailChangeStore for Counted<dyn EmailChangeStore> {
    async fn issue_email_change(&self, token: &EmailChangeRecord) -> Result<(), StoreError> {
        self.calls.add("email_change.issue_email_change");
        self.inner.issue_email_change(token).await
    }

    async fn change_email(
        &self,
        hash: &TokenHash,
        user: UserId,
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<EmailChangeUse, StoreError> {
        self.calls.add("email_change.change_email");
        self.inner.change_email(hash, user, at, event).await
    }

    async fn find_email_change(&self, hash: &TokenHash) -> Result<Option<EmailChangeRecord>, StoreError> {
        self.calls.add("email_change.find_email_change");
        self.inner.find_email_change(hash).await
    }
}

#[async_trait]
impl ExternalIdentityStore for Counted<dyn ExternalIdentityStore> {
    async fn link(&self, identity: &ExternalIdentity) -> Result<(), StoreError> {
        self.calls.add("external_identities.link");
        self.inner.link(identity).await
    }

    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<ExternalIdentity>, StoreError> {
        self.calls.add("external_identities.find");
        self.inner.find(issuer, subject).await
    }

    async fn list_for_user(
        &self,
        user: UserId,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<ExternalIdentity>, StoreError> {
        self.calls.add("external_identities.list_for_user");
        self.inner.list_for_user(user, after, limit).await
    }

    async fn unlink(&self, issuer: &str, subject: &str) -> Result<ExternalIdentity, StoreError> {
        self.calls.add("external_identities.unlink");
        self.inner.unlink(issuer, subject).await
    }
}

#[async_trait]
impl TotpFactorStore for Counted<dyn TotpFactorStore> {
    async fn begin_enrollment(&self, factor: &TotpFactorRecord) -> Result<(), StoreError> {
        self.calls.add("totp.begin_enrollment");
        self.inner.begin_enrollment(factor).await
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError> {
        self.calls.add("totp.find_totp");
        self.inner.find_totp(user).await
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError> {
        self.calls.add("totp.confirm_totp");
        self.inner.confirm_totp(user, step, recovery, at, event).await
    }

    async fn accept_step(&self, user: UserId, step: u64) -> Result<bool, StoreError> {
        self.calls.add("totp.accept_step");
        self.inner.accept_step(user, step).await
    }

    async fn use_recovery_code(&self, user: UserId, hash: &TokenHash, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.calls.add("totp.use_recovery_code");
        self.inner.use_recovery_code(user, hash, at).await
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<usize, StoreError> {
        self.calls.add("totp.recovery_codes_left");
        self.inner.recovery_codes_left(user).await
    }

    async fn remove_totp(&self, user: UserId, event: &UserAuditEvent) -> Result<bool, StoreError> {
        self.calls.add("totp.remove_totp");
        self.inner.remove_totp(user, event).await
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery: &[TokenHash],
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError> {
        self.calls.add("totp.replace_recovery_codes");
        self.inner.replace_recovery_codes(user, recovery, event).await
    }
}

#[async_trait]
impl PasskeyStore for Counted<dyn PasskeyStore> {
    async fn add_passkey(&self, passkey: &PasskeyRecord, event: &UserAuditEvent) -> Result<(), StoreError> {
        self.calls.add("passkey.add_passkey");
        self.inner.add_passkey(passkey, event).await
    }

    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        self.calls.add("passkey.passkeys");
        self.inner.passkeys(user).await
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError> {
        self.calls.add("passkey.find_passkey");
        self.inner.find_passkey(credential_id).await
    }

    async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: &PasskeyName) -> Result<bool, StoreError> {
        self.calls.add("passkey.rename_passkey");
        self.inner.rename_passkey(user, id, name).await
    }

    async fn remove_passkey(&self, user: UserId, id: PasskeyId, event: &UserAuditEvent) -> Result<bool, StoreError> {
        self.calls.add("passkey.remove_passkey");
        self.inner.remove_passkey(user, id, event).await
    }

    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        sign_count: u32,
        credential: &str,
        at: OffsetDateTime,
    ) -> Result<PasskeyUse, StoreError> {
        self.calls.add("passkey.record_passkey_use");
        self.inner.record_passkey_use(id, sign_count, credential, at).await
    }

    async fn begin_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError> {
        self.calls.add("passkey.begin_ceremony");
        self.inner.begin_ceremony(ceremony).await
    }

    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<CeremonyUse, StoreError> {
        self.calls.add("passkey.take_ceremony");
        self.inner.take_ceremony(purpose, hash, at).await
    }

    async fn prune_ceremonies(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.calls.add("passkey.prune_ceremonies");
        self.inner.prune_ceremonies(before).await
    }
}

#[async_trait]
impl MfaPolicyStore for Counted<dyn MfaPolicyStore> {
    async fn set_mfa_required(
        &self,
        org: OrgId,
        required: bool,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.calls.add("mfa_policy.set_mfa_required");
        self.inner.set_mfa_required(org, required, at, event).await
    }

    async fn mfa_required(&self, org: OrgId) -> Result<bool, StoreError> {
        self.calls.add("mfa_policy.mfa_required");
        self.inner.mfa_required(org).await
    }

    async fn mfa_unmet(&self, org: OrgId, user: UserId) -> Result<bool, StoreError> {
        self.calls.add("mfa_policy.mfa_unmet");
        self.inner.mfa_unmet(org, user).await
    }
}

#[async_trait]
impl LoginAttemptStore for Counted<dyn LoginAttemptStore> {
    async fn record_failure(&self, key: &ThrottleKey, at: OffsetDateTime) -> Result<(), StoreError> {
        self.calls.add("login_attempts.record_failure");
        self.inner.record_failure(key, at).await
    }

    async fn failures_since(&self, key: &ThrottleKey, since: OffsetDateTime) -> Result<u64, StoreError> {
        self.calls.add("login_attempts.failures_since");
        self.inner.failures_since(key, since).await
    }

    async fn clear(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.calls.add("login_attempts.clear");
        self.inner.clear(key).await
    }

    async fn prune(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.calls.add("login_attempts.prune");
        self.inner.prune(before).await
    }
}

#[async_trait]
impl SupportGrantStore for Counted<dyn SupportGrantStore> {
    async fn create(&self, grant: &SupportGrant, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("support_grants.create");
        self.inner.create(grant, event).await
    }

    async fn get(&self, org: OrgId, id: GrantId) -> Result<Option<SupportGrant>, StoreError> {
        self.calls.add("support_grants.get");
        self.inner.get(org, id).await
    }

    async fn find_active(
        &self,
        staff: UserId,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError> {
        self.calls.add("support_grants.find_active");
        self.inner.find_active(staff, org, at).await
    }

    async fn list(&self, org: OrgId, after: Option<GrantId>, limit: usize) -> Result<Vec<SupportGrant>, StoreError> {
        self.calls.add("support_grants.list");
        self.inner.list(org, after, limit).await
    }

    async fn revoke(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<SupportGrant, StoreError> {
        self.calls.add("support_grants.revoke");
        self.inner.revoke(org, id, at, event).await
    }

    async fn record_first_use(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.calls.add("support_grants.record_first_use");
        self.inner.record_first_use(org, id, at, event).await
    }
}

#[async_trait]
impl Journal for Counted<dyn Journal> {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        self.calls.add("journal.append");
        self.inner.append(batch).await
    }

    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.calls.add("journal.by_request");
        self.inner.by_request(query).await
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        self.calls.add("journal.timeline");
        self.inner.timeline(query).await
    }

    async fn purge(&self, org: OrgId, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.calls.add("journal.purge");
        self.inner.purge(org, before).await
    }
}

#[async_trait]
impl AuditLog for Counted<dyn AuditLog> {
    async fn list(
        &self,
        org: OrgId,
        query: &AuditQuery,
        after: Option<AuditEventId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.calls.add("audit.list");
        self.inner.list(org, query, after, limit).await
    }

    async fn retention(&self, org: OrgId) -> Result<Option<u32>, StoreError> {
        self.calls.add("audit.retention");
        self.inner.retention(org).await
    }

    async fn set_retention(&self, org: OrgId, days: Option<u32>, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("audit.set_retention");
        self.inner.set_retention(org, days, event).await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.calls.add("audit.purge_expired");
        self.inner.purge_expired(now).await
    }
}

#[async_trait]
impl PolicyStore for Counted<dyn AuditedPolicyStore> {
    async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError> {
        self.calls.add("policy.load");
        self.inner.load().await
    }

    async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError> {
        self.calls.add("policy.load_domain");
        self.inner.load_domain(domain).await
    }

    async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError> {
        self.calls.add("policy.apply");
        self.inner.apply(added, removed).await
    }

    async fn changes_since(&self, revision: Revision) -> Result<Option<Vec<PolicyChange>>, StoreError> {
        self.calls.add("policy.changes_since");
        self.inner.changes_since(revision).await
    }

    async fn trim_changes(&self, through: Revision) -> Result<(), StoreError> {
        self.calls.add("policy.trim_changes");
        self.inner.trim_changes(through).await
    }
}

#[async_trait]
impl AuditedPolicyStore for Counted<dyn AuditedPolicyStore> {
    async fn apply_audited(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: &AuditEvent,
    ) -> Result<Revision, StoreError> {
        self.calls.add("policy.apply_audited");
        self.inner.apply_audited(added, removed, event).await
    }
}

#[async_trait]
impl ScimStore for Counted<dyn ScimStore> {
    async fn mapped_roles(
        &self,
        org: OrgId,
    ) -> Result<std::collections::BTreeSet<portal_core::access::RoleName>, StoreError> {
        self.calls.add("scim.mapped_roles");
        self.inner.mapped_roles(org).await
    }

    async fn create_user(&self, user: &ScimUser) -> Result<(), StoreError> {
        self.calls.add("scim.create_user");
        self.inner.create_user(user).await
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> Result<Option<ScimUser>, StoreError> {
        self.calls.add("scim.get_user");
        self.inner.get_user(org, user).await
    }

    async fn find_user_by_user_name(&self, org: OrgId, user_name: &str) -> Result<Option<ScimUser>, StoreError> {
        self.calls.add("scim.find_user_by_user_name");
        self.inner.find_user_by_user_name(org, user_name).await
    }

    async fn list_users(&self, org: OrgId, after: Option<UserId>, limit: usize) -> Result<Vec<ScimUser>, StoreError> {
        self.calls.add("scim.list_users");
        self.inner.list_users(org, after, limit).await
    }

    async fn find_users(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ScimUser>, StoreError> {
        self.calls.add("scim.find_users");
        self.inner.find_users(org, lookup, after, limit).await
    }

    async fn replace_user(&self, user: &ScimUser, expected: u64) -> Result<ScimUser, StoreError> {
        self.calls.add("scim.replace_user");
        self.inner.replace_user(user, expected).await
    }

    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<ScimUser, StoreError> {
        self.calls.add("scim.delete_user");
        self.inner.delete_user(org, user).await
    }

    async fn create_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        self.calls.add("scim.create_group");
        self.inner.create_group(group).await
    }

    async fn get_group(&self, org: OrgId, id: GroupId) -> Result<Option<ScimGroup>, StoreError> {
        self.calls.add("scim.get_group");
        self.inner.get_group(org, id).await
    }

    async fn list_groups(
        &self,
        org: OrgId,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        self.calls.add("scim.list_groups");
        self.inner.list_groups(org, after, limit).await
    }

    async fn find_groups(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        self.calls.add("scim.find_groups");
        self.inner.find_groups(org, lookup, after, limit).await
    }

    async fn groups_of(&self, org: OrgId, user: UserId) -> Result<Vec<ScimGroup>, StoreError> {
        self.calls.add("scim.groups_of");
        self.inner.groups_of(org, user).await
    }

    async fn replace_group(&self, group: &ScimGroup, expected: u64) -> Result<ScimGroup, StoreError> {
        self.calls.add("scim.replace_group");
        self.inner.replace_group(group, expected).await
    }

    async fn delete_group(&self, org: OrgId, id: GroupId) -> Result<ScimGroup, StoreError> {
        self.calls.add("scim.delete_group");
        self.inner.delete_group(org, id).await
    }
}

#[async_trait]
impl IdempotencyStore for Counted<dyn IdempotencyStore> {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        fingerprint: [u8; 32],
        hold: Hold,
        now: OffsetDateTime,
        hold_until: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        self.calls.add("idempotency.claim");
        self.inner.claim(scope, key, fingerprint, hold, now, hold_until).await
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        hold: Hold,
        answer: Option<StoredAnswer>,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.calls.add("idempotency.complete");
        self.inner.complete(scope, key, hold, answer, expires_at).await
    }

    async fn release(&self, scope: &IdempotencyScope, key: &IdempotencyKey, hold: Hold) -> Result<(), StoreError> {
        self.calls.add("idempotency.release");
        self.inner.release(scope, key, hold).await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.calls.add("idempotency.purge_expired");
        self.inner.purge_expired(now).await
    }
}

#[async_trait]
impl WebhookStore for Counted<dyn WebhookStore> {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("webhooks.create_endpoint");
        self.inner.create_endpoint(endpoint, event).await
    }

    async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.calls.add("webhooks.get_endpoint");
        self.inner.get_endpoint(org, id).await
    }

    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<WebhookEndpointId>,
        limit: usize,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.calls.add("webhooks.list_endpoints");
        self.inner.list_endpoints(org, after, limit).await
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("webhooks.update_endpoint");
        self.inner.update_endpoint(endpoint, event).await
    }

    async fn delete_endpoint(&self, org: OrgId, id: WebhookEndpointId, event: &AuditEvent) -> Result<(), StoreError> {
        self.calls.add("webhooks.delete_endpoint");
        self.inner.delete_endpoint(org, id, event).await
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.calls.add("webhooks.claim_due");
        self.inner.claim_due(now, lease_until, limit).await
    }

    async fn finish_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: NextStep,
        disable: Option<DisableRule>,
    ) -> Result<bool, StoreError> {
        self.calls.add("webhooks.finish_attempt");
        self.inner.finish_attempt(attempt, next, disable).await
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError> {
        self.calls.add("webhooks.finish_attempts");
        self.inner.finish_attempts(finished).await
    }

    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        after: Option<WebhookAttemptId>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.calls.add("webhooks.list_attempts");
        self.inner.list_attempts(org, endpoint, after, limit).await
    }

    async fn replay(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        replay: Replay,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.calls.add("webhooks.replay");
        self.inner.replay(org, endpoint, replay, now).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::memory::InMemoryTenancyStore;

    /// Every call through the decorator is counted under its port and method, and reaches
    /// the wrapped store (what the wrapped store holds is what the decorator answers).
    #[tokio::test]
    async fn calls_are_counted_by_method_and_forwarded() {
        let calls = StoreCalls::new();
        let inner: Arc<dyn TenancyStore> = Arc::new(InMemoryTenancyStore::default());
        let counted: Arc<dyn TenancyStore> = Arc::new(Counted::new(inner.clone(), calls.clone()));
        let user = User {
            id: UserId::from_uuid(uuid::Uuid::now_v7()),
            email: Email::new("a@example.com").unwrap(),
            display_name: portal_core::tenancy::DisplayName::new("A").unwrap(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        counted.create_user(&user).await.unwrap();
        assert_eq!(inner.get_user(user.id).await.unwrap().map(|u| u.id), Some(user.id));
        assert_eq!(counted.get_user(user.id).await.unwrap().map(|u| u.id), Some(user.id));
        assert_eq!(
            counted
                .get_user(UserId::from_uuid(uuid::Uuid::now_v7()))
                .await
                .unwrap()
                .map(|u| u.id),
            None
        );
        let tally = calls.snapshot();
        assert_eq!(tally.get("tenancy.create_user"), Some(&1));
        assert_eq!(tally.get("tenancy.get_user"), Some(&2));
        assert_eq!(calls.total(), 3, "the inner store's own read is not counted");
        calls.reset();
        assert_eq!(calls.total(), 0);
    }
}
