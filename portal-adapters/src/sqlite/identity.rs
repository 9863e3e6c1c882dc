//! `SqliteIdentityStore`: password hashes, sessions, API keys and failed sign-ins in SQLite.

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::identity::{
    ApiKeyRecord, ApiKeyStore, CredentialStore, LoginAttemptStore, MfaPolicyStore, OneTimeTokenRecord,
    OneTimeTokenStore, PasswordRecord, Scope, SessionMembershipStore, SessionRecord, SessionStore,
    SessionWithMembership, ThrottleKey, TokenPurpose, TokenUse, TotpFactorRecord, TotpFactorStore, UserAuditEvent,
};
use portal_core::identity::{
    EmailChangeRecord, EmailChangeStore, EmailChangeUse, EmailTokenRecord, EmailTokenUse, EmailVerificationStore,
    VerifiedEmail,
};
use portal_core::ids::{ApiKeyId, OrgId, SessionId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{Email, TokenHash};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::BACKEND;
use super::audit::{insert_event, insert_user_event};
use super::codec::{begin_write, blob, db, get, micros, time_at, uuid_at};
use crate::sql::unique_violation;

/// A [`CredentialStore`], [`SessionStore`], [`ApiKeyStore`] and [`LoginAttemptStore`] on a
/// SQLite database migrated with [`migrate`](super::migrate).
///
/// Every method is one statement, except [`SessionStore::rotate`], which revokes and
/// inserts in one `BEGIN IMMEDIATE` transaction, and the changes a member's orgs audit
/// (sign-in, sign-out, password and second factor changes, the MFA policy), which write
/// their audit events in the change's `BEGIN IMMEDIATE` transaction, once per org of the
/// user's memberships (`identity::UserAuditEvent`); the tenancy store must be on the same
/// database.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::sqlite::{self, SqliteIdentityStore};
///
/// let pool = sqlite::connect("sqlite://portal.db").await?;
/// sqlite::migrate(&pool).await?;
/// let store = SqliteIdentityStore::new(pool);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteIdentityStore {
    pool: SqlitePool,
}

impl SqliteIdentityStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

macro_rules! session_columns {
    () => {
        "id, user_id, token_hash, active_org, created_at, last_seen_at, absolute_expires_at, revoked_at"
    };
}

macro_rules! key_columns {
    () => {
        "id, org_id, name, prefix, token_hash, scopes, created_by, created_at, last_used_at, expires_at, revoked_at"
    };
}

fn hash_at(row: &SqliteRow, what: &dyn std::fmt::Display) -> Result<TokenHash, StoreError> {
    let bytes: Vec<u8> = get(row, "token_hash")?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(TokenHash)
        .map_err(|_| BACKEND.corrupt(format!("`token_hash` of {what}")))
}

fn optional_time(
    row: &SqliteRow,
    column: &str,
    what: &dyn std::fmt::Display,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let value: Option<i64> = get(row, column)?;
    value
        .map(|v| {
            portal_core::time::from_unix_micros(v)
                .ok_or_else(|| BACKEND.corrupt(format!("time in `{column}` of {what}")))
        })
        .transpose()
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let id = SessionId::from_uuid(uuid_at(row, "id")?);
    let active_org: Option<Vec<u8>> = get(row, "active_org")?;
    Ok(SessionRecord {
        id,
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        token_hash: hash_at(row, &id)?,
        active_org: active_org
            .map(|bytes| BACKEND.decode(|| format!("`active_org` of {id}"), uuid::Uuid::from_slice(&bytes)))
            .transpose()?
            .map(OrgId::from_uuid),
        created_at: time_at(row, "created_at", &id)?,
        last_seen_at: time_at(row, "last_seen_at", &id)?,
        absolute_expires_at: time_at(row, "absolute_expires_at", &id)?,
        revoked_at: optional_time(row, "revoked_at", &id)?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord, StoreError> {
    let id = ApiKeyId::from_uuid(uuid_at(row, "id")?);
    let scopes: String = get(row, "scopes")?;
    let scopes: Vec<Scope> = BACKEND.decode(|| format!("`scopes` of {id}"), serde_json::from_str(&scopes))?;
    let created_by: String = get(row, "created_by")?;
    Ok(ApiKeyRecord {
        id,
        org: OrgId::from_uuid(uuid_at(row, "org_id")?),
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        token_hash: hash_at(row, &id)?,
        scopes,
        created_by: BACKEND.decode(|| format!("`created_by` of {id}"), created_by.parse())?,
        created_at: time_at(row, "created_at", &id)?,
        last_used_at: optional_time(row, "last_used_at", &id)?,
        expires_at: optional_time(row, "expires_at", &id)?,
        revoked_at: optional_time(row, "revoked_at", &id)?,
    })
}

fn already_exists(entity: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| {
        if unique_violation(&err).is_some() {
            StoreError::Conflict(Conflict::AlreadyExists { entity })
        } else {
            db(err)
        }
    }
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait]
impl CredentialStore for SqliteIdentityStore {
    async fn find_password(&self, email: &Email) -> Result<Option<PasswordRecord>, StoreError> {
        let row = sqlx::query("SELECT user_id, email, hash, updated_at FROM passwords WHERE email = ?1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = UserId::from_uuid(uuid_at(&row, "user_id")?);
        let stored_email: String = get(&row, "email")?;
        let hash: String = get(&row, "hash")?;
        Ok(Some(PasswordRecord {
            user,
            email: BACKEND.decode(|| format!("`email` of {user}"), Email::new(&stored_email))?,
            hash: SecretString::from(hash),
            updated_at: time_at(&row, "updated_at", &user)?,
        }))
    }

    async fn set_password<'a>(
        &self,
        record: &PasswordRecord,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO passwords (user_id, email, hash, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, hash = excluded.hash, \
             updated_at = excluded.updated_at",
        )
        .bind(blob(record.user.as_uuid()))
        .bind(record.email.as_str())
        .bind(record.hash.expose_secret())
        .bind(micros(record.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some() {
                StoreError::Conflict(Conflict::EmailTaken)
            } else {
                db(err)
            }
        })?;
        if let Some(event) = event {
            insert_user_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(db)
    }
}

fn insert_session(session: &SessionRecord) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))
    .bind(blob(session.id.as_uuid()))
    .bind(blob(session.user.as_uuid()))
    .bind(session.token_hash.0.to_vec())
    .bind(session.active_org.map(|org| blob(org.as_uuid())))
    .bind(micros(session.created_at))
    .bind(micros(session.last_seen_at))
    .bind(micros(session.absolute_expires_at))
    .bind(session.revoked_at.map(micros))
}

#[async_trait]
impl SessionStore for SqliteIdentityStore {
    async fn create<'a>(&self, session: &SessionRecord, event: Option<&'a UserAuditEvent>) -> Result<(), StoreError> {
        let Some(event) = event else {
            insert_session(session)
                .execute(&self.pool)
                .await
                .map_err(already_exists("session"))?;
            return Ok(());
        };
        let mut tx = begin_write(&self.pool).await?;
        insert_session(session)
            .execute(&mut *tx)
            .await
            .map_err(already_exists("session"))?;
        insert_user_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE token_hash = ?1"
        ))
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch(&self, id: SessionId, at: OffsetDateTime, active_org: Option<OrgId>) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?2), active_org = ?3 \
             WHERE id = ?1 AND revoked_at IS NULL",
        )
        .bind(blob(id.as_uuid()))
        .bind(micros(at))
        .bind(active_org.map(|org| blob(org.as_uuid())))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "session" });
        }
        Ok(())
    }

    async fn revoke<'a>(
        &self,
        user: UserId,
        id: SessionId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<SessionRecord, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let live: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL")
                .bind(blob(id.as_uuid()))
                .bind(blob(user.as_uuid()))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let row = sqlx::query(concat!(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND user_id = ?2 RETURNING ",
            session_columns!()
        ))
        .bind(blob(id.as_uuid()))
        .bind(blob(user.as_uuid()))
        .bind(micros(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let session = match row {
            Some(row) => session_from_row(&row)?,
            None => return Err(StoreError::NotFound { entity: "session" }),
        };
        if let (Some(_), Some(event)) = (live, event) {
            insert_user_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(session)
    }

    async fn revoke_all<'a>(
        &self,
        user: UserId,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<u64, StoreError> {
        let revoke = sqlx::query("UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")
            .bind(blob(user.as_uuid()))
            .bind(micros(at));
        let Some(event) = event else {
            let done = revoke.execute(&self.pool).await.map_err(db)?;
            return Ok(done.rows_affected());
        };
        let mut tx = begin_write(&self.pool).await?;
        let revoked = revoke.execute(&mut *tx).await.map_err(db)?.rows_affected();
        if revoked > 0 {
            insert_user_event(&mut tx, &event.with_metadata_field("sessions_revoked", revoked.into())).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(revoked)
    }

    async fn rotate<'a>(
        &self,
        old: SessionId,
        new: &SessionRecord,
        at: OffsetDateTime,
        event: Option<&'a UserAuditEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let done = sqlx::query("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
            .bind(blob(old.as_uuid()))
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            // Dropping the transaction rolls it back.
            return Err(StoreError::NotFound { entity: "session" });
        }
        insert_session(new)
            .execute(&mut *tx)
            .await
            .map_err(already_exists("session"))?;
        if let Some(event) = event {
            insert_user_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn list(
        &self,
        user: UserId,
        at: OffsetDateTime,
        before: Option<SessionId>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND absolute_expires_at > ?2 \
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        ))
        .bind(blob(user.as_uuid()))
        .bind(micros(at))
        .bind(before.map(|id| blob(id.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(session_from_row).collect()
    }
}

/// One statement: the session, left-joined with its user's membership in its active org
/// and that membership's roles (one row per role).
#[async_trait]
impl SessionMembershipStore for SqliteIdentityStore {
    async fn find_session_with_membership(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<SessionWithMembership>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.user_id, s.token_hash, s.active_org, s.created_at, s.last_seen_at, \
             s.absolute_expires_at, s.revoked_at, m.created_at AS member_created_at, \
             m.updated_at AS member_updated_at, r.role, \
             (EXISTS (SELECT 1 FROM org_mfa_policies p WHERE p.org_id = s.active_org AND p.required = 1) \
              AND NOT EXISTS (SELECT 1 FROM totp_factors f WHERE f.user_id = s.user_id AND f.confirmed_at IS NOT NULL) \
              AND NOT EXISTS (SELECT 1 FROM passkeys k WHERE k.user_id = s.user_id)) \
              AS mfa_unmet \
             FROM sessions s \
             LEFT JOIN memberships m ON m.org_id = s.active_org AND m.user_id = s.user_id \
             LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id \
             WHERE s.token_hash = ?1 ORDER BY r.role",
        )
        .bind(hash.0.to_vec())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        session_with_membership(&rows)
    }
}

/// The session and membership of [`SessionMembershipStore::find_session_with_membership`]'s
/// rows: the session's columns repeat on every row, each row carries one role.
fn session_with_membership(rows: &[SqliteRow]) -> Result<Option<SessionWithMembership>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let session = session_from_row(first)?;
    let joined: Option<i64> = get(first, "member_created_at")?;
    let membership = match (session.active_org, joined) {
        (Some(org), Some(_)) => {
            let mut roles = Vec::with_capacity(rows.len());
            for row in rows {
                if let Some(role) = get::<Option<String>>(row, "role")? {
                    roles.push(role);
                }
            }
            let partial = (
                (),
                org,
                session.user,
                // The key is written only for a corrupt time, not on every authentication.
                time_at(
                    first,
                    "member_created_at",
                    &format_args!("membership of {} in {org}", session.user),
                )?,
                time_at(
                    first,
                    "member_updated_at",
                    &format_args!("membership of {} in {org}", session.user),
                )?,
                roles,
            );
            Some(super::tenancy::finish_membership(partial)?.1)
        }
        _ => None,
    };
    let mfa_unmet = get::<Option<i64>>(first, "mfa_unmet")? == Some(1);
    Ok(Some(SessionWithMembership {
        session,
        membership,
        mfa_unmet,
    }))
}

#[async_trait]
impl ApiKeyStore for SqliteIdentityStore {
    async fn create(&self, key: &ApiKeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        let scopes = serde_json::to_string(&key.scopes).map_err(|err| BACKEND.corrupt(format!("scopes: {err}")))?;
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(concat!(
            "INSERT INTO api_keys (",
            key_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))
        .bind(blob(key.id.as_uuid()))
        .bind(blob(key.org.as_uuid()))
        .bind(key.name.as_str())
        .bind(key.prefix.as_str())
        .bind(key.token_hash.0.to_vec())
        .bind(scopes)
        .bind(key.created_by.to_string())
        .bind(micros(key.created_at))
        .bind(key.last_used_at.map(micros))
        .bind(key.expires_at.map(micros))
        .bind(key.revoked_at.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(already_exists("api_key"))?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn get(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = ?1 AND org_id = ?2"
        ))
        .bind(blob(id.as_uuid()))
        .bind(blob(org.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE token_hash = ?1"
        ))
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn touch(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, ?2), ?2) WHERE id = ?1")
            .bind(blob(id.as_uuid()))
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "api_key" });
        }
        Ok(())
    }

    async fn revoke(
        &self,
        org: OrgId,
        id: ApiKeyId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        // Only a key not revoked yet changes, and only then is the event written; a key
        // revoked already keeps its time and is read back.
        let revoked = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND org_id = ?2 AND revoked_at IS NULL RETURNING ",
            key_columns!()
        ))
        .bind(blob(id.as_uuid()))
        .bind(blob(org.as_uuid()))
        .bind(micros(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(row) = revoked {
            let key = key_from_row(&row)?;
            insert_event(&mut tx, event).await?;
            tx.commit().await.map_err(db)?;
            return Ok(key);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = ?1 AND org_id = ?2"
        ))
        .bind(blob(id.as_uuid()))
        .bind(blob(org.as_uuid()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.rollback().await.map_err(db)?;
        match row {
            Some(row) => key_from_row(&row),
            None => Err(StoreError::NotFound { entity: "api_key" }),
        }
    }

    async fn list(&self, org: OrgId, after: Option<ApiKeyId>, limit: usize) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE org_id = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
        ))
        .bind(blob(org.as_uuid()))
        .bind(after.map(|id| blob(id.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(key_from_row).collect()
    }
}

#[async_trait]
impl LoginAttemptStore for SqliteIdentityStore {
    async fn record_failure(&self, key: &ThrottleKey, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO login_failures (throttle_key, at) VALUES (?1, ?2)")
            .bind(key.as_key())
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn failures_since(&self, key: &ThrottleKey, since: OffsetDateTime) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE throttle_key = ?1 AND at >= ?2")
            .bind(key.as_key())
            .bind(micros(since))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(count(n))
    }

    async fn clear(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE throttle_key = ?1")
            .bind(key.as_key())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn prune(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM login_failures WHERE at < ?1")
            .bind(micros(before))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

fn token_from_row(row: &SqliteRow) -> Result<OneTimeTokenRecord, StoreError> {
    let what = "a one-time token";
    let purpose: String = get(row, "purpose")?;
    Ok(OneTimeTokenRecord {
        token_hash: hash_at(row, &what)?,
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| BACKEND.corrupt(format!("`purpose` `{purpose}` of {what}")))?,
        created_at: time_at(row, "created_at", &what)?,
        expires_at: time_at(row, "expires_at", &what)?,
        used_at: optional_time(row, "used_at", &what)?,
    })
}

#[async_trait]
impl OneTimeTokenStore for SqliteIdentityStore {
    async fn issue(&self, token: &OneTimeTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO one_time_tokens (token_hash, user_id, purpose, created_at, expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(token.token_hash.0.to_vec())
        .bind(blob(token.user.as_uuid()))
        .bind(token.purpose.as_str())
        .bind(micros(token.created_at))
        .bind(micros(token.expires_at))
        .bind(token.used_at.map(micros))
        .execute(&self.pool)
        .await
        .map_err(already_exists("one_time_token"))?;
        Ok(())
    }

    async fn consume(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<TokenUse, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(
            "SELECT token_hash, user_id, purpose, created_at, expires_at, used_at FROM one_time_tokens \
             WHERE token_hash = ?1 AND purpose = ?2",
        )
        .bind(hash.0.to_vec())
        .bind(purpose.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(found) = row.as_ref().map(token_from_row).transpose()? else {
            return Ok(TokenUse::Unknown);
        };
        if found.used_at.is_some() {
            return Ok(TokenUse::AlreadyUsed(found));
        }
        if at >= found.expires_at {
            return Ok(TokenUse::Expired(found));
        }
        sqlx::query("UPDATE one_time_tokens SET used_at = ?3 WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL")
            .bind(blob(found.user.as_uuid()))
            .bind(purpose.as_str())
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(TokenUse::Consumed(OneTimeTokenRecord {
            used_at: Some(super::codec::stored_time(at)),
            ..found
        }))
    }

    async fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &TokenHash,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, purpose, created_at, expires_at, used_at FROM one_time_tokens \
             WHERE token_hash = ?1 AND purpose = ?2",
        )
        .bind(hash.0.to_vec())
        .bind(purpose.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(token_from_row).transpose()
    }
}

fn email_token_from_row(row: &SqliteRow) -> Result<EmailTokenRecord, StoreError> {
    let what = "an email token";
    let email: String = get(row, "email")?;
    Ok(EmailTokenRecord {
        token_hash: hash_at(row, &what)?,
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        email: BACKEND.decode(|| format!("`email` of {what}"), Email::new(&email))?,
        created_at: time_at(row, "created_at", &what)?,
        expires_at: time_at(row, "expires_at", &what)?,
        used_at: optional_time(row, "used_at", &what)?,
    })
}

#[async_trait]
impl EmailVerificationStore for SqliteIdentityStore {
    async fn issue_email_token(&self, token: &EmailTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, email, created_at, expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(token.token_hash.0.to_vec())
        .bind(blob(token.user.as_uuid()))
        .bind(token.email.as_str())
        .bind(micros(token.created_at))
        .bind(micros(token.expires_at))
        .bind(token.used_at.map(micros))
        .execute(&self.pool)
        .await
        .map_err(already_exists("email_token"))?;
        Ok(())
    }

    async fn use_email_token(
        &self,
        hash: &TokenHash,
        user: UserId,
        email: &Email,
        at: OffsetDateTime,
    ) -> Result<EmailTokenUse, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(
            "SELECT token_hash, user_id, email, created_at, expires_at, used_at FROM email_tokens \
             WHERE token_hash = ?1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(found) = row.as_ref().map(email_token_from_row).transpose()? else {
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
        sqlx::query("UPDATE email_tokens SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL")
            .bind(blob(user.as_uuid()))
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO verified_emails (user_id, email, verified_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, verified_at = excluded.verified_at",
        )
        .bind(blob(user.as_uuid()))
        .bind(found.email.as_str())
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(EmailTokenUse::Verified(EmailTokenRecord {
            used_at: Some(super::codec::stored_time(at)),
            ..found
        }))
    }

    async fn find_email_token(&self, hash: &TokenHash) -> Result<Option<EmailTokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, email, created_at, expires_at, used_at FROM email_tokens \
             WHERE token_hash = ?1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(email_token_from_row).transpose()
    }

    async fn verified_email(&self, user: UserId) -> Result<Option<VerifiedEmail>, StoreError> {
        let row = sqlx::query("SELECT email, verified_at FROM verified_emails WHERE user_id = ?1")
            .bind(blob(user.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let what = "a verified email";
        let email: String = get(&row, "email")?;
        Ok(Some(VerifiedEmail {
            user,
            email: BACKEND.decode(|| format!("`email` of {what}"), Email::new(&email))?,
            verified_at: time_at(&row, "verified_at", &what)?,
        }))
    }
}

fn email_change_from_row(row: &SqliteRow) -> Result<EmailChangeRecord, StoreError> {
    let what = "an email change";
    let old_email: String = get(row, "old_email")?;
    let new_email: String = get(row, "new_email")?;
    Ok(EmailChangeRecord {
        token_hash: hash_at(row, &what)?,
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        old_email: BACKEND.decode(|| format!("`old_email` of {what}"), Email::new(&old_email))?,
        new_email: BACKEND.decode(|| format!("`new_email` of {what}"), Email::new(&new_email))?,
        created_at: time_at(row, "created_at", &what)?,
        expires_at: time_at(row, "expires_at", &what)?,
        used_at: optional_time(row, "used_at", &what)?,
    })
}

/// Switches the address on the users' and the passwords' tables; the address is taken when
/// another row already has it (a unique violation).
#[async_trait]
impl EmailChangeStore for SqliteIdentityStore {
    async fn issue_email_change(&self, token: &EmailChangeRecord) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO email_changes (token_hash, user_id, old_email, new_email, created_at, expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(token.token_hash.0.to_vec())
        .bind(blob(token.user.as_uuid()))
        .bind(token.old_email.as_str())
        .bind(token.new_email.as_str())
        .bind(micros(token.created_at))
        .bind(micros(token.expires_at))
        .bind(token.used_at.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(already_exists("email_change"))?;
        sqlx::query(
            "UPDATE email_changes SET used_at = ?3 WHERE user_id = ?1 AND used_at IS NULL AND token_hash <> ?2",
        )
        .bind(blob(token.user.as_uuid()))
        .bind(token.token_hash.0.to_vec())
        .bind(micros(token.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn change_email(
        &self,
        hash: &TokenHash,
        user: UserId,
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<EmailChangeUse, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(
            "SELECT token_hash, user_id, old_email, new_email, created_at, expires_at, used_at \
             FROM email_changes WHERE token_hash = ?1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(found) = row.as_ref().map(email_change_from_row).transpose()? else {
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
        let moved = sqlx::query("UPDATE users SET email = ?3 WHERE id = ?1 AND email = ?2")
            .bind(blob(user.as_uuid()))
            .bind(found.old_email.as_str())
            .bind(found.new_email.as_str())
            .execute(&mut *tx)
            .await;
        match moved {
            Ok(done) if done.rows_affected() == 0 => return Ok(EmailChangeUse::OtherAddress(found)),
            Ok(_) => {}
            Err(err) if unique_violation(&err).is_some() => return Ok(EmailChangeUse::AddressTaken(found)),
            Err(err) => return Err(db(err)),
        }
        let password = sqlx::query("UPDATE passwords SET email = ?2 WHERE user_id = ?1")
            .bind(blob(user.as_uuid()))
            .bind(found.new_email.as_str())
            .execute(&mut *tx)
            .await;
        match password {
            Ok(_) => {}
            Err(err) if unique_violation(&err).is_some() => return Ok(EmailChangeUse::AddressTaken(found)),
            Err(err) => return Err(db(err)),
        }
        sqlx::query(
            "INSERT INTO verified_emails (user_id, email, verified_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, verified_at = excluded.verified_at",
        )
        .bind(blob(user.as_uuid()))
        .bind(found.new_email.as_str())
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE email_changes SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL")
            .bind(blob(user.as_uuid()))
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_user_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(EmailChangeUse::Changed(EmailChangeRecord {
            used_at: Some(super::codec::stored_time(at)),
            ..found
        }))
    }

    async fn find_email_change(&self, hash: &TokenHash) -> Result<Option<EmailChangeRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, old_email, new_email, created_at, expires_at, used_at \
             FROM email_changes WHERE token_hash = ?1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(email_change_from_row).transpose()
    }
}

fn totp_from_row(row: &SqliteRow) -> Result<TotpFactorRecord, StoreError> {
    let what = "a TOTP factor";
    let secret: Vec<u8> = get(row, "secret")?;
    let secret = <[u8; 20]>::try_from(secret.as_slice()).map_err(|_| BACKEND.corrupt(format!("`secret` of {what}")))?;
    let last_step: Option<i64> = get(row, "last_step")?;
    Ok(TotpFactorRecord {
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        secret: SecretBox::new(Box::new(secret)),
        created_at: time_at(row, "created_at", &what)?,
        confirmed_at: optional_time(row, "confirmed_at", &what)?,
        last_step: last_step
            .map(u64::try_from)
            .transpose()
            .map_err(|_| BACKEND.corrupt(format!("`last_step` of {what}")))?,
    })
}

/// A step as SQLite's INTEGER keeps it; steps of real times are far below `i64::MAX`.
fn step_value(step: u64) -> Result<i64, StoreError> {
    i64::try_from(step).map_err(|_| BACKEND.corrupt("a TOTP step past i64::MAX"))
}

#[async_trait]
impl TotpFactorStore for SqliteIdentityStore {
    async fn begin_enrollment(&self, factor: &TotpFactorRecord) -> Result<(), StoreError> {
        let user = blob(factor.user.as_uuid());
        let mut tx = begin_write(&self.pool).await?;
        let confirmed: Option<Option<i64>> =
            sqlx::query_scalar("SELECT confirmed_at FROM totp_factors WHERE user_id = ?1")
                .bind(user.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if matches!(confirmed, Some(Some(_))) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists { entity: "totp_factor" }));
        }
        sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = ?1")
            .bind(user.clone())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO totp_factors (user_id, secret, created_at, confirmed_at, last_step) VALUES (?1, ?2, ?3, NULL, NULL) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, \
             confirmed_at = NULL, last_step = NULL",
        )
        .bind(user)
        .bind(factor.secret.expose_secret().to_vec())
        .bind(micros(factor.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, secret, created_at, confirmed_at, last_step FROM totp_factors WHERE user_id = ?1",
        )
        .bind(blob(user.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(totp_from_row).transpose()
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        at: OffsetDateTime,
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError> {
        let id = blob(user.as_uuid());
        let mut tx = begin_write(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE totp_factors SET confirmed_at = ?2, last_step = ?3 WHERE user_id = ?1 AND confirmed_at IS NULL",
        )
        .bind(id.clone())
        .bind(micros(at))
        .bind(step_value(step)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = ?1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for hash in recovery {
            sqlx::query("INSERT INTO totp_recovery_codes (user_id, code_hash, used_at) VALUES (?1, ?2, NULL) ON CONFLICT DO NOTHING")
                .bind(id.clone())
                .bind(hash.0.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        insert_user_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn accept_step(&self, user: UserId, step: u64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = ?2 WHERE user_id = ?1 AND confirmed_at IS NOT NULL \
             AND (last_step IS NULL OR last_step < ?2)",
        )
        .bind(blob(user.as_uuid()))
        .bind(step_value(step)?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(&self, user: UserId, hash: &TokenHash, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE totp_recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
        )
        .bind(blob(user.as_uuid()))
        .bind(hash.0.to_vec())
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<usize, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM totp_recovery_codes WHERE user_id = ?1 AND used_at IS NULL")
                .bind(blob(user.as_uuid()))
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        usize::try_from(count).map_err(|_| BACKEND.corrupt("a negative count"))
    }

    async fn remove_totp(&self, user: UserId, event: &UserAuditEvent) -> Result<bool, StoreError> {
        let id = blob(user.as_uuid());
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = ?1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let removed: Option<Option<i64>> =
            sqlx::query_scalar("DELETE FROM totp_factors WHERE user_id = ?1 RETURNING confirmed_at")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if matches!(removed, Some(Some(_))) {
            insert_user_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(removed.is_some())
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery: &[TokenHash],
        event: &UserAuditEvent,
    ) -> Result<bool, StoreError> {
        let id = blob(user.as_uuid());
        let mut tx = begin_write(&self.pool).await?;
        let confirmed: Option<Option<i64>> =
            sqlx::query_scalar("SELECT confirmed_at FROM totp_factors WHERE user_id = ?1")
                .bind(id.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if !matches!(confirmed, Some(Some(_))) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = ?1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for hash in recovery {
            sqlx::query("INSERT INTO totp_recovery_codes (user_id, code_hash, used_at) VALUES (?1, ?2, NULL) ON CONFLICT DO NOTHING")
                .bind(id.clone())
                .bind(hash.0.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        insert_user_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }
}

#[async_trait]
impl MfaPolicyStore for SqliteIdentityStore {
    async fn set_mfa_required(
        &self,
        org: OrgId,
        required: bool,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO org_mfa_policies (org_id, required, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (org_id) DO UPDATE SET required = excluded.required, updated_at = excluded.updated_at",
        )
        .bind(blob(org.as_uuid()))
        .bind(i64::from(required))
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn mfa_required(&self, org: OrgId) -> Result<bool, StoreError> {
        let required: Option<i64> = sqlx::query_scalar("SELECT required FROM org_mfa_policies WHERE org_id = ?1")
            .bind(blob(org.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(required == Some(1))
    }

    async fn mfa_unmet(&self, org: OrgId, user: UserId) -> Result<bool, StoreError> {
        let unmet: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM org_mfa_policies WHERE org_id = ?1 AND required = 1) \
             AND NOT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = ?2 AND confirmed_at IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?2)",
        )
        .bind(blob(org.as_uuid()))
        .bind(blob(user.as_uuid()))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(unmet == 1)
    }
}
