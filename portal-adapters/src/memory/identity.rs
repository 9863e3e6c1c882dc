//! `InMemoryIdentityStore`: the reference credential, session, API key and login attempt
//! stores, one mutex-guarded set of maps.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::identity::{
    ApiKeyRecord, ApiKeyStore, CredentialStore, LoginAttemptStore, MfaPolicyStore, OneTimeTokenRecord,
    OneTimeTokenStore, PasswordRecord, SessionRecord, SessionStore, ThrottleKey, TokenPurpose, TokenUse,
    TotpFactorRecord, TotpFactorStore, UserAuditEvent,
};
use portal_core::identity::{
    EmailChangeRecord, EmailChangeStore, EmailChangeUse, EmailTokenRecord, EmailTokenUse, EmailVerificationStore,
    VerifiedEmail,
};

use super::tenancy::EmailSwitch;
use portal_core::identity::{
    CeremonyPurpose, CeremonyUse, PasskeyCeremonyRecord, PasskeyName, PasskeyRecord, PasskeyStore, PasskeyUse,
};
use portal_core::ids::{ApiKeyId, OrgId, PasskeyId, SessionId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{Email, TokenHash};
use time::OffsetDateTime;

use super::{InMemoryAuditLog, InMemoryTenancyStore};

/// A [`CredentialStore`], [`SessionStore`], [`ApiKeyStore`], [`LoginAttemptStore`],
/// [`OneTimeTokenStore`], [`EmailVerificationStore`], [`EmailChangeStore`], [`TotpFactorStore`],
/// [`MfaPolicyStore`] and [`PasskeyStore`] in memory.
///
/// Every method takes the one lock for its whole call, so each is atomic (a rotation
/// revokes and creates under one lock). Nothing is persisted.
///
/// Audit events of API keys go to its [`InMemoryAuditLog`], appended under the store's
/// lock after every rule passed. Identity changes a member's orgs audit (sign-in,
/// sign-out, password and second factor changes) are written once per org the user
/// belongs to in the tenancy store given to [`with_tenancy`](Self::with_tenancy), into that
/// store's audit log, while this store's lock is held and after every rule passed; the MFA
/// policy's event goes to the same log. A store made with [`new`](Self::new) has a tenancy
/// store of its own, with no members, and writes to that store's log.
pub struct InMemoryIdentityStore {
    state: Mutex<State>,
    tenancy: Arc<InMemoryTenancyStore>,
    audit: InMemoryAuditLog,
}

impl Default for InMemoryIdentityStore {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Default)]
struct State {
    passwords: BTreeMap<UserId, PasswordRecord>,
    sessions: BTreeMap<SessionId, SessionRecord>,
    session_by_hash: HashMap<TokenHash, SessionId>,
    keys: BTreeMap<ApiKeyId, ApiKeyRecord>,
    key_by_hash: HashMap<TokenHash, ApiKeyId>,
    failures: HashMap<ThrottleKey, Vec<OffsetDateTime>>,
    tokens: HashMap<TokenHash, OneTimeTokenRecord>,
    totp: HashMap<UserId, TotpFactorRecord>,
    /// Each user's recovery codes: hash and when it was used.
    recovery: HashMap<UserId, Vec<(TokenHash, Option<OffsetDateTime>)>>,
    email_tokens: HashMap<TokenHash, EmailTokenRecord>,
    email_changes: HashMap<TokenHash, EmailChangeRecord>,
    verified_emails: HashMap<UserId, VerifiedEmail>,
    /// The orgs that require a second factor of their members.
    mfa_required: HashMap<OrgId, bool>,
    /// Every user's passkeys, by id.
    passkeys: BTreeMap<PasskeyId, PasskeyRecord>,
    /// Passkey ceremonies begun, by token hash.
    ceremonies: HashMap<TokenHash, PasskeyCeremonyRecord>,
}

impl InMemoryIdentityStore {
    /// An empty store with a tenancy store and audit log of its own.
    pub fn new() -> Self {
        Self::with_tenancy(Arc::default())
    }

    /// An empty store that writes its audit events to `audit` (shared with other stores);
    /// its tenancy store, for the orgs of a user's events, has no members.
    pub fn with_audit_log(audit: InMemoryAuditLog) -> Self {
        Self {
            state: Mutex::default(),
            tenancy: Arc::default(),
            audit,
        }
    }

    /// The audit log this store writes API key events to.
    pub fn audit_log(&self) -> InMemoryAuditLog {
        self.audit.clone()
    }

    /// An empty store whose identity events go to the orgs of `tenancy`'s memberships, in
    /// `tenancy`'s audit log (the log its own changes write to), as do its API key events;
    /// its [`EmailChangeStore`] switches the addresses of `tenancy`'s users (holding this
    /// store's lock, then `tenancy`'s, so the switch is one step).
    pub fn with_tenancy(tenancy: Arc<InMemoryTenancyStore>) -> Self {
        Self {
            state: Mutex::default(),
            audit: tenancy.audit_log(),
            tenancy,
        }
    }

    /// Writes `event` once per org its user belongs to, or nothing when `event` is `None`.
    fn write_user_event(&self, event: Option<&UserAuditEvent>) -> Result<(), StoreError> {
        match event {
            Some(event) => self.tenancy.write_user_event(event),
            None => Ok(()),
        }
    }

    /// Locks the state. No method panics while holding the lock with half-changed maps,
    /// so a lock poisoned elsewhere is safe to take over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryIdentityStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryIdentityStore")
            .field("passwords", &state.passwords.len())
            .field("sessions", &state.sessions.len())
            .field("api_keys", &state.keys.len())
            .finish()
    }
}

const SESSION_NOT_FOUND: StoreError = StoreError::NotFound { entity: "session" };
const KEY_NOT_FOUND: StoreError = StoreError::NotFound { entity: "api_key" };

impl State {
    /// Refuses a session whose id or token hash is taken.
    fn check_new_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        if self.sessions.contains_key(&session.id) || self.session_by_hash.contains_key(&session.token_hash) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "session" }));
        }
        Ok(())
    }

    fn insert_session(&mut self, session: &SessionRecord) -> Result<(), StoreError> {
        self.check_new_session(session)?;
        self.sessions.insert(session.id, session.clone());
        self.session_by_hash.insert(session.token_hash, session.id);
        Ok(())
    }
}

#[async_trait]
impl CredentialStore for InMemoryIdentityStore {
    async fn find_password(&self, email: &Email) -> Result<Option<PasswordRecord>, StoreError> {
        Ok(self.lock().passwords.values().find(|p| &p.email == email).cloned())
    }

    async fn set_password<'a>(
        &self,
        record: &PasswordRecord,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state
            .passwords
            .values()
            .any(|p| p.email == record.email && p.user != record.user)
        {
            return Err(StoreError::Conflict(Conflict::EmailTaken));
        }
        self.write_user_event(event)?;
        state.passwords.insert(record.user, record.clone());
        Ok(())
    }
}

#[async_trait]
impl SessionStore for InMemoryIdentityStore {
    async fn create<'a>(&self, session: &SessionRecord, event: Option<&'a UserAuditEvent>) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.check_new_session(session)?;
        self.write_user_event(event)?;
        state.insert_session(session)
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let state = self.lock();
        Ok(state
            .session_by_hash
            .get(hash)
            .and_then(|id| state.sessions.get(id))
            .cloned())
    }

    async fn touch(&self, id: SessionId, at: OffsetDateTime, active_org: Option<OrgId>) -> Result<(), StoreError> {
        let mut state = self.lock();
        let session = state
            .sessions
            .get_mut(&id)
            .filter(|s| s.revoked_at.is_none())
            .ok_or(SESSION_NOT_FOUND)?;
        session.last_seen_at = session.last_seen_at.max(at);
        session.active_org = active_org;
        Ok(())
    }

    async fn revoke<'a>(
        &self,
        user: UserId,
        id: SessionId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<SessionRecord, StoreError> {
        let mut state = self.lock();
        let session = state
            .sessions
            .get_mut(&id)
            .filter(|s| s.user == user)
            .ok_or(SESSION_NOT_FOUND)?;
        if session.revoked_at.is_none() {
            self.write_user_event(event)?;
        }
        session.revoked_at = session.revoked_at.or(Some(at));
        Ok(session.clone())
    }

    async fn revoke_all<'a>(
        &self,
        user: UserId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let live = state
            .sessions
            .values()
            .filter(|s| s.user == user && s.revoked_at.is_none())
            .count();
        let count = u64::try_from(live).unwrap_or(u64::MAX);
        if count > 0 {
            // Written before anything changes: an event that fails leaves every session live.
            let event = event.map(|e| e.with_metadata_field("sessions_revoked", count.into()));
            self.write_user_event(event.as_ref())?;
        }
        for session in state
            .sessions
            .values_mut()
            .filter(|s| s.user == user && s.revoked_at.is_none())
        {
            session.revoked_at = Some(at);
        }
        Ok(count)
    }

    async fn rotate<'a>(
        &self,
        old: SessionId,
        new: &SessionRecord,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.sessions.get(&old).is_none_or(|s| s.revoked_at.is_some()) {
            return Err(SESSION_NOT_FOUND);
        }
        state.check_new_session(new)?;
        self.write_user_event(event)?;
        state.insert_session(new)?;
        if let Some(session) = state.sessions.get_mut(&old) {
            session.revoked_at = Some(at);
        }
        Ok(())
    }

    async fn list(
        &self,
        user: UserId,
        at: OffsetDateTime,
        before: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self
            .lock()
            .sessions
            .values()
            .rev()
            .filter(|s| before.is_none_or(|b| s.id < b))
            .filter(|s| s.user == user && s.revoked_at.is_none() && at < s.absolute_expires_at)
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ApiKeyStore for InMemoryIdentityStore {
    async fn create(&self, key: &ApiKeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.keys.contains_key(&key.id) || state.key_by_hash.contains_key(&key.token_hash) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "api_key" }));
        }
        self.audit.check(event)?;
        state.keys.insert(key.id, key.clone());
        state.key_by_hash.insert(key.token_hash, key.id);
        self.audit.append(event);
        Ok(())
    }

    async fn get(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.lock().keys.get(&id).filter(|k| k.org == org).cloned())
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let state = self.lock();
        Ok(state.key_by_hash.get(hash).and_then(|id| state.keys.get(id)).cloned())
    }

    async fn touch(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = state.keys.get_mut(&id).ok_or(KEY_NOT_FOUND)?;
        key.last_used_at = Some(key.last_used_at.map_or(at, |last| last.max(at)));
        Ok(())
    }

    async fn revoke(
        &self,
        org: OrgId,
        id: ApiKeyId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut state = self.lock();
        let key = state.keys.get_mut(&id).filter(|k| k.org == org).ok_or(KEY_NOT_FOUND)?;
        if key.revoked_at.is_none() {
            self.audit.check(event)?;
            key.revoked_at = Some(at);
            self.audit.append(event);
        }
        Ok(key.clone())
    }

    async fn list(&self, org: OrgId, after: Option<ApiKeyId>, limit: usize) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self
            .lock()
            .keys
            .values()
            .filter(|k| k.org == org && after.is_none_or(|a| k.id > a))
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl LoginAttemptStore for InMemoryIdentityStore {
    async fn record_failure(&self, key: &ThrottleKey, at: OffsetDateTime) -> Result<(), StoreError> {
        self.lock().failures.entry(key.clone()).or_default().push(at);
        Ok(())
    }

    async fn failures_since(&self, key: &ThrottleKey, since: OffsetDateTime) -> Result<u64, StoreError> {
        let state = self.lock();
        let count = state
            .failures
            .get(key)
            .map_or(0, |times| times.iter().filter(|t| **t >= since).count());
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    async fn clear(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.lock().failures.remove(key);
        Ok(())
    }

    async fn prune(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let mut pruned = 0usize;
        state.failures.retain(|_, times| {
            let len = times.len();
            times.retain(|t| *t >= before);
            pruned += len - times.len();
            !times.is_empty()
        });
        Ok(u64::try_from(pruned).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl OneTimeTokenStore for InMemoryIdentityStore {
    async fn issue(&self, token: &OneTimeTokenRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.tokens.contains_key(&token.token_hash) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists {
                entity: "one_time_token",
            }));
        }
        state.tokens.insert(token.token_hash, token.clone());
        Ok(())
    }

    async fn consume(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<TokenUse, StoreError> {
        let mut state = self.lock();
        let Some(found) = state.tokens.get(hash).filter(|t| t.purpose == purpose).cloned() else {
            return Ok(TokenUse::Unknown);
        };
        if found.used_at.is_some() {
            return Ok(TokenUse::AlreadyUsed(found));
        }
        if at >= found.expires_at {
            return Ok(TokenUse::Expired(found));
        }
        for token in state.tokens.values_mut() {
            if token.user == found.user && token.purpose == purpose && token.used_at.is_none() {
                token.used_at = Some(at);
            }
        }
        Ok(TokenUse::Consumed(OneTimeTokenRecord {
            used_at: Some(at),
            ..found
        }))
    }

    async fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        Ok(self.lock().tokens.get(hash).filter(|t| t.purpose == purpose).cloned())
    }
}

#[async_trait]
impl EmailVerificationStore for InMemoryIdentityStore {
    async fn issue_email_token(&self, token: &EmailTokenRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.email_tokens.contains_key(&token.token_hash) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "email_token" }));
        }
        state.email_tokens.insert(token.token_hash, token.clone());
        Ok(())
    }

    async fn use_email_token(
        &self,
        hash: &TokenHash,
        user: UserId,
        email: &Email,
        at: OffsetDateTime,
    ) -> Result<EmailTokenUse, StoreError> {
        let mut state = self.lock();
        let Some(found) = state.email_tokens.get(hash).cloned() else {
            return Ok(EmailTokenUse::Unknown);
        };
        if found.user != user {
            return Ok(EmailTokenUse::OtherUser);
        }
        if found.email != *email {
            return Ok(EmailTokenUse::OtherAddress(found));
        }
        if found.used_at.is_some() {
            return Ok(EmailTokenUse::AlreadyUsed(found));
        }
        if at >= found.expires_at {
            return Ok(EmailTokenUse::Expired(found));
        }
        for token in state.email_tokens.values_mut() {
            if token.user == user && token.used_at.is_none() {
                token.used_at = Some(at);
            }
        }
        state.verified_emails.insert(
            user,
            VerifiedEmail {
                user,
                email: found.email.clone(),
                verified_at: at,
            },
        );
        Ok(EmailTokenUse::Verified(EmailTokenRecord {
            used_at: Some(at),
            ..found
        }))
    }

    async fn find_email_token(&self, hash: &TokenHash) -> Result<Option<EmailTokenRecord>, StoreError> {
        Ok(self.lock().email_tokens.get(hash).cloned())
    }

    async fn verified_email(&self, user: UserId) -> Result<Option<VerifiedEmail>, StoreError> {
        Ok(self.lock().verified_emails.get(&user).cloned())
    }
}

#[async_trait]
impl EmailChangeStore for InMemoryIdentityStore {
    async fn issue_email_change(&self, token: &EmailChangeRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.email_changes.contains_key(&token.token_hash) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "email_change" }));
        }
        for earlier in state.email_changes.values_mut() {
            if earlier.user == token.user && earlier.used_at.is_none() {
                earlier.used_at = Some(token.created_at);
            }
        }
        state.email_changes.insert(token.token_hash, token.clone());
        Ok(())
    }

    async fn change_email(
        &self,
        hash: &TokenHash,
        user: UserId,
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<EmailChangeUse, StoreError> {
        let tenancy = &self.tenancy;
        let mut state = self.lock();
        let Some(found) = state.email_changes.get(hash).cloned() else {
            return Ok(EmailChangeUse::Unknown);
        };
        if found.user != user {
            return Ok(EmailChangeUse::OtherUser);
        }
        if found.used_at.is_some() {
            return Ok(EmailChangeUse::AlreadyUsed(found));
        }
        if at >= found.expires_at {
            return Ok(EmailChangeUse::Expired(found));
        }
        if state
            .passwords
            .values()
            .any(|p| p.email == found.new_email && p.user != user)
        {
            return Ok(EmailChangeUse::AddressTaken(found));
        }
        match tenancy.switch_email(user, &found.old_email, &found.new_email, event)? {
            EmailSwitch::Switched => {}
            EmailSwitch::OtherAddress => return Ok(EmailChangeUse::OtherAddress(found)),
            EmailSwitch::Taken => return Ok(EmailChangeUse::AddressTaken(found)),
        }
        if let Some(password) = state.passwords.get_mut(&user) {
            password.email = found.new_email.clone();
        }
        state.verified_emails.insert(
            user,
            VerifiedEmail {
                user,
                email: found.new_email.clone(),
                verified_at: at,
            },
        );
        for token in state.email_changes.values_mut() {
            if token.user == user && token.used_at.is_none() {
                token.used_at = Some(at);
            }
        }
        Ok(EmailChangeUse::Changed(EmailChangeRecord {
            used_at: Some(at),
            ..found
        }))
    }

    async fn find_email_change(&self, hash: &TokenHash) -> Result<Option<EmailChangeRecord>, StoreError> {
        Ok(self.lock().email_changes.get(hash).cloned())
    }
}

#[async_trait]
impl TotpFactorStore for InMemoryIdentityStore {
    async fn begin_enrollment(&self, factor: &TotpFactorRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.totp.get(&factor.user).is_some_and(|f| f.confirmed_at.is_some()) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "totp_factor" }));
        }
        state.totp.insert(
            factor.user,
            TotpFactorRecord {
                confirmed_at: None,
                last_step: None,
                ..factor.clone()
            },
        );
        state.recovery.remove(&factor.user);
        Ok(())
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError> {
        Ok(self.lock().totp.get(&user).cloned())
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(factor) = state.totp.get_mut(&user).filter(|f| f.confirmed_at.is_none()) else {
            return Ok(false);
        };
        self.write_user_event(Some(event))?;
        factor.confirmed_at = Some(at);
        factor.last_step = Some(step);
        let mut codes: Vec<(TokenHash, Option<OffsetDateTime>)> = Vec::with_capacity(recovery.len());
        for hash in recovery {
            if !codes.iter().any(|(h, _)| h == hash) {
                codes.push((*hash, None));
            }
        }
        state.recovery.insert(user, codes);
        Ok(true)
    }

    async fn accept_step(&self, user: UserId, step: u64) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(factor) = state.totp.get_mut(&user).filter(|f| f.confirmed_at.is_some()) else {
            return Ok(false);
        };
        if factor.last_step.is_some_and(|last| step <= last) {
            return Ok(false);
        }
        factor.last_step = Some(step);
        Ok(true)
    }

    async fn use_recovery_code(&self, user: UserId, hash: &TokenHash, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let unused = state
            .recovery
            .get_mut(&user)
            .and_then(|codes| codes.iter_mut().find(|(h, used)| h == hash && used.is_none()));
        Ok(match unused {
            Some(code) => {
                code.1 = Some(at);
                true
            }
            None => false,
        })
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .recovery
            .get(&user)
            .map_or(0, |codes| codes.iter().filter(|(_, used)| used.is_none()).count()))
    }

    async fn remove_totp(&self, user: UserId, event: &UserAuditEvent) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.totp.get(&user).is_some_and(|f| f.confirmed_at.is_some()) {
            self.write_user_event(Some(event))?;
        }
        state.recovery.remove(&user);
        Ok(state.totp.remove(&user).is_some())
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery: &[TokenHash],
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.totp.get(&user).is_none_or(|f| f.confirmed_at.is_none()) {
            return Ok(false);
        }
        self.write_user_event(Some(event))?;
        let mut codes: Vec<(TokenHash, Option<OffsetDateTime>)> = Vec::with_capacity(recovery.len());
        for hash in recovery {
            if !codes.iter().any(|(h, _)| h == hash) {
                codes.push((*hash, None));
            }
        }
        state.recovery.insert(user, codes);
        Ok(true)
    }
}

#[async_trait]
impl MfaPolicyStore for InMemoryIdentityStore {
    async fn set_mfa_required(
        &self,
        org: OrgId,
        required: bool,
        _at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.tenancy.audit_log().lock().write(event)?;
        state.mfa_required.insert(org, required);
        Ok(())
    }

    async fn mfa_required(&self, org: OrgId) -> Result<bool, StoreError> {
        Ok(self.lock().mfa_required.get(&org).copied().unwrap_or(false))
    }

    async fn mfa_unmet(&self, org: OrgId, user: UserId) -> Result<bool, StoreError> {
        let state = self.lock();
        let required = state.mfa_required.get(&org).copied().unwrap_or(false);
        // A second factor is a confirmed TOTP factor or any passkey of the user's own.
        let totp = state.totp.get(&user).is_some_and(|f| f.confirmed_at.is_some());
        let passkey = state.passkeys.values().any(|p| p.user == user);
        Ok(required && !totp && !passkey)
    }
}

#[async_trait]
impl PasskeyStore for InMemoryIdentityStore {
    async fn add_passkey(&self, passkey: &PasskeyRecord, event: &UserAuditEvent) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.passkeys.contains_key(&passkey.id)
            || state
                .passkeys
                .values()
                .any(|p| p.credential_id == passkey.credential_id)
        {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "passkey" }));
        }
        self.write_user_event(Some(event))?;
        state.passkeys.insert(passkey.id, passkey.clone());
        Ok(())
    }

    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let state = self.lock();
        let mut found: Vec<PasskeyRecord> = state.passkeys.values().filter(|p| p.user == user).cloned().collect();
        found.sort_by_key(|p| (p.created_at, p.id));
        Ok(found)
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError> {
        let state = self.lock();
        Ok(state
            .passkeys
            .values()
            .find(|p| p.credential_id == credential_id)
            .cloned())
    }

    async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: &PasskeyName) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.passkeys.get_mut(&id) {
            Some(passkey) if passkey.user == user => {
                passkey.name = name.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove_passkey(&self, user: UserId, id: PasskeyId, event: &UserAuditEvent) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.passkeys.get(&id).is_none_or(|p| p.user != user) {
            return Ok(false);
        }
        self.write_user_event(Some(event))?;
        state.passkeys.remove(&id);
        Ok(true)
    }

    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        sign_count: u32,
        credential: &str,
        at: OffsetDateTime,
    ) -> Result<PasskeyUse, StoreError> {
        let mut state = self.lock();
        let Some(passkey) = state.passkeys.get_mut(&id) else {
            return Ok(PasskeyUse::Unknown);
        };
        if sign_count > passkey.sign_count || (sign_count == 0 && passkey.sign_count == 0) {
            passkey.sign_count = sign_count;
            credential.clone_into(&mut passkey.credential);
            passkey.last_used_at = Some(at);
            Ok(PasskeyUse::Recorded)
        } else {
            Ok(PasskeyUse::CounterRegressed)
        }
    }

    async fn begin_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.ceremonies.contains_key(&ceremony.token_hash) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists {
                entity: "passkey_ceremony",
            }));
        }
        state.ceremonies.insert(ceremony.token_hash, ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<CeremonyUse, StoreError> {
        let mut state = self.lock();
        let Some(found) = state.ceremonies.get_mut(hash).filter(|c| c.purpose == purpose) else {
            return Ok(CeremonyUse::Unknown);
        };
        if found.used_at.is_some() {
            return Ok(CeremonyUse::AlreadyUsed);
        }
        if at >= found.expires_at {
            return Ok(CeremonyUse::Expired);
        }
        found.used_at = Some(at);
        Ok(CeremonyUse::Taken(found.clone()))
    }

    async fn prune_ceremonies(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let was = state.ceremonies.len();
        state.ceremonies.retain(|_, c| c.expires_at >= before);
        Ok((was - state.ceremonies.len()) as u64)
    }
}
