//! `SqliteIdentityStore` as a [`PasskeyStore`]: passkeys and passkey ceremonies in SQLite.

use async_trait::async_trait;
use portal_core::identity::{
    CeremonyPurpose, CeremonyUse, PasskeyCeremonyRecord, PasskeyName, PasskeyRecord, PasskeyStore, PasskeyUse,
    UserAuditEvent,
};
use portal_core::ids::{PasskeyId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::TokenHash;
use secrecy::{ExposeSecret, SecretString};
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::BACKEND;
use super::SqliteIdentityStore;
use super::audit::insert_user_event;
use super::codec::{begin_write, blob, db, get, micros, stored_time, time_at, uuid_at};
use crate::sql::unique_violation;

macro_rules! passkey_columns {
    () => {
        "id, user_id, credential_id, name, credential, sign_count, created_at, last_used_at"
    };
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

fn passkey_from_row(row: &SqliteRow) -> Result<PasskeyRecord, StoreError> {
    let id = PasskeyId::from_uuid(uuid_at(row, "id")?);
    let name: String = get(row, "name")?;
    let sign_count: i64 = get(row, "sign_count")?;
    Ok(PasskeyRecord {
        id,
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        credential_id: get(row, "credential_id")?,
        name: PasskeyName::new(&name).map_err(|_| BACKEND.corrupt(format!("`name` of {id}")))?,
        credential: get(row, "credential")?,
        sign_count: u32::try_from(sign_count).map_err(|_| BACKEND.corrupt(format!("`sign_count` of {id}")))?,
        created_at: time_at(row, "created_at", &id)?,
        last_used_at: optional_time(row, "last_used_at", &id)?,
    })
}

fn ceremony_from_row(row: &SqliteRow) -> Result<PasskeyCeremonyRecord, StoreError> {
    let what = "a passkey ceremony";
    let hash: Vec<u8> = get(row, "token_hash")?;
    let purpose: String = get(row, "purpose")?;
    let user: Option<Vec<u8>> = get(row, "user_id")?;
    let state: String = get(row, "state")?;
    Ok(PasskeyCeremonyRecord {
        token_hash: <[u8; 32]>::try_from(hash.as_slice())
            .map(TokenHash)
            .map_err(|_| BACKEND.corrupt(format!("`token_hash` of {what}")))?,
        purpose: CeremonyPurpose::parse(&purpose)
            .ok_or_else(|| BACKEND.corrupt(format!("`purpose` `{purpose}` of {what}")))?,
        user: user
            .map(|bytes| BACKEND.decode(|| format!("`user_id` of {what}"), uuid::Uuid::from_slice(&bytes)))
            .transpose()?
            .map(UserId::from_uuid),
        state: SecretString::from(state),
        created_at: time_at(row, "created_at", &what)?,
        expires_at: time_at(row, "expires_at", &what)?,
        used_at: optional_time(row, "used_at", &what)?,
    })
}

#[async_trait]
impl PasskeyStore for SqliteIdentityStore {
    async fn add_passkey(&self, passkey: &PasskeyRecord, event: &UserAuditEvent) -> Result<(), StoreError> {
        let mut tx = begin_write(self.pool()).await?;
        sqlx::query(
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, sign_count, created_at, last_used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(blob(passkey.id.as_uuid()))
        .bind(blob(passkey.user.as_uuid()))
        .bind(passkey.credential_id.clone())
        .bind(passkey.name.as_str().to_owned())
        .bind(passkey.credential.clone())
        .bind(i64::from(passkey.sign_count))
        .bind(micros(passkey.created_at))
        .bind(passkey.last_used_at.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some() {
                StoreError::Conflict(Conflict::AlreadyExists { entity: "passkey" })
            } else {
                db(err)
            }
        })?;
        insert_user_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id"
        ))
        .bind(blob(user.as_uuid()))
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM passkeys WHERE credential_id = ?1"
        ))
        .bind(credential_id.to_vec())
        .fetch_optional(self.pool())
        .await
        .map_err(db)?;
        row.as_ref().map(passkey_from_row).transpose()
    }

    async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: &PasskeyName) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE passkeys SET name = ?3 WHERE id = ?1 AND user_id = ?2")
            .bind(blob(id.as_uuid()))
            .bind(blob(user.as_uuid()))
            .bind(name.as_str().to_owned())
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_passkey(&self, user: UserId, id: PasskeyId, event: &UserAuditEvent) -> Result<bool, StoreError> {
        let mut tx = begin_write(self.pool()).await?;
        let done = sqlx::query("DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2")
            .bind(blob(id.as_uuid()))
            .bind(blob(user.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_user_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        sign_count: u32,
        credential: &str,
        at: OffsetDateTime,
    ) -> Result<PasskeyUse, StoreError> {
        let id = blob(id.as_uuid());
        let mut tx = begin_write(self.pool()).await?;
        let done = sqlx::query(
            "UPDATE passkeys SET sign_count = ?2, credential = ?3, last_used_at = ?4 \
             WHERE id = ?1 AND (sign_count < ?2 OR (sign_count = 0 AND ?2 = 0))",
        )
        .bind(id.clone())
        .bind(i64::from(sign_count))
        .bind(credential.to_owned())
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            tx.commit().await.map_err(db)?;
            return Ok(PasskeyUse::Recorded);
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM passkeys WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        Ok(if exists.is_some() {
            PasskeyUse::CounterRegressed
        } else {
            PasskeyUse::Unknown
        })
    }

    async fn begin_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO passkey_ceremonies (token_hash, purpose, user_id, state, created_at, expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(ceremony.token_hash.0.to_vec())
        .bind(ceremony.purpose.as_str())
        .bind(ceremony.user.map(|u| blob(u.as_uuid())))
        .bind(ceremony.state.expose_secret().to_owned())
        .bind(micros(ceremony.created_at))
        .bind(micros(ceremony.expires_at))
        .bind(ceremony.used_at.map(micros))
        .execute(self.pool())
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some() {
                StoreError::Conflict(Conflict::AlreadyExists {
                    entity: "passkey_ceremony",
                })
            } else {
                db(err)
            }
        })?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) -> Result<CeremonyUse, StoreError> {
        let mut tx = begin_write(self.pool()).await?;
        let row = sqlx::query(
            "SELECT token_hash, purpose, user_id, state, created_at, expires_at, used_at FROM passkey_ceremonies \
             WHERE token_hash = ?1 AND purpose = ?2",
        )
        .bind(hash.0.to_vec())
        .bind(purpose.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(found) = row.as_ref().map(ceremony_from_row).transpose()? else {
            return Ok(CeremonyUse::Unknown);
        };
        if found.used_at.is_some() {
            return Ok(CeremonyUse::AlreadyUsed);
        }
        if at >= found.expires_at {
            return Ok(CeremonyUse::Expired);
        }
        let done = sqlx::query("UPDATE passkey_ceremonies SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL")
            .bind(hash.0.to_vec())
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(CeremonyUse::AlreadyUsed);
        }
        tx.commit().await.map_err(db)?;
        Ok(CeremonyUse::Taken(PasskeyCeremonyRecord {
            used_at: Some(stored_time(at)),
            ..found
        }))
    }

    async fn prune_ceremonies(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at < ?1")
            .bind(micros(before))
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
