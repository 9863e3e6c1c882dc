//! `SqliteIdempotencyStore`: `Idempotency-Key` records in SQLite, shared by every process
//! on the database file.

use async_trait::async_trait;
use portal_core::context::IdempotencyKey;
use portal_core::idempotency::{Claim, Hold, IdempotencyScope, IdempotencyStore, StoredAnswer};
use portal_core::store::StoreError;
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::BACKEND;
use super::codec::{begin_write, db, get, micros};
use crate::idempotency_rows::{RecordRow, headers_text};

/// An [`IdempotencyStore`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// A claim is one `BEGIN IMMEDIATE` transaction: an upsert that inserts the hold, or
/// takes over a row past its expiry, and returns it; else a read of the row it found.
/// Holding SQLite's write lock for both, no other claim runs between them.
#[derive(Debug, Clone)]
pub struct SqliteIdempotencyStore {
    pool: SqlitePool,
}

impl SqliteIdempotencyStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        fingerprint: [u8; 32],
        hold: Hold,
        now: OffsetDateTime,
        hold_until: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let org = scope.org_text();
        let principal = scope.principal.to_string();
        let mut tx = begin_write(&self.pool).await?;
        let taken = sqlx::query(
            "INSERT INTO idempotency_records \
             (org_id, principal, operation, idempotency_key, fingerprint, hold, status, headers, body, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?) \
             ON CONFLICT (org_id, principal, operation, idempotency_key) DO UPDATE SET \
             fingerprint = excluded.fingerprint, hold = excluded.hold, status = NULL, headers = NULL, \
             body = NULL, expires_at = excluded.expires_at \
             WHERE idempotency_records.expires_at <= ? \
             RETURNING hold",
        )
        .bind(&org)
        .bind(&principal)
        .bind(&scope.operation)
        .bind(key.as_str())
        .bind(fingerprint.as_slice())
        .bind(hold.0.as_slice())
        .bind(micros(hold_until))
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if taken.is_some() {
            tx.commit().await.map_err(db)?;
            return Ok(Claim::Held);
        }
        let row = sqlx::query(
            "SELECT fingerprint, hold, status, headers, body FROM idempotency_records \
             WHERE org_id = ? AND principal = ? AND operation = ? AND idempotency_key = ?",
        )
        .bind(&org)
        .bind(&principal)
        .bind(&scope.operation)
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        match row {
            Some(row) => RecordRow {
                fingerprint: get(&row, "fingerprint")?,
                hold: get(&row, "hold")?,
                status: get(&row, "status")?,
                headers: get(&row, "headers")?,
                body: get(&row, "body")?,
            }
            .into_claim(BACKEND),
            // The upsert found a row it did not take, under the write lock: it is there.
            None => Err(BACKEND.corrupt("an idempotency record that vanished under the write lock")),
        }
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        hold: Hold,
        answer: Option<StoredAnswer>,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (status, headers, body) = match &answer {
            Some(answer) => (
                Some(i64::from(answer.status)),
                Some(headers_text(BACKEND, &answer.headers)?),
                Some(answer.body.as_slice()),
            ),
            None => (None, None, None),
        };
        let done = sqlx::query(
            "UPDATE idempotency_records SET hold = NULL, status = ?, headers = ?, body = ?, expires_at = ? \
             WHERE org_id = ? AND principal = ? AND operation = ? AND idempotency_key = ? AND hold = ?",
        )
        .bind(status)
        .bind(headers)
        .bind(body)
        .bind(micros(expires_at))
        .bind(scope.org_text())
        .bind(scope.principal.to_string())
        .bind(&scope.operation)
        .bind(key.as_str())
        .bind(hold.0.as_slice())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "idempotency_hold",
            });
        }
        Ok(())
    }

    async fn release(&self, scope: &IdempotencyScope, key: &IdempotencyKey, hold: Hold) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_records \
             WHERE org_id = ? AND principal = ? AND operation = ? AND idempotency_key = ? AND hold = ?",
        )
        .bind(scope.org_text())
        .bind(scope.principal.to_string())
        .bind(&scope.operation)
        .bind(key.as_str())
        .bind(hold.0.as_slice())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_records WHERE expires_at <= ?")
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
