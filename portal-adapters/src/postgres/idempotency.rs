//! `PgIdempotencyStore`: `Idempotency-Key` records in Postgres, shared by every server on
//! the database.

use async_trait::async_trait;
use portal_core::context::IdempotencyKey;
use portal_core::idempotency::{Claim, Hold, IdempotencyScope, IdempotencyStore, StoredAnswer};
use portal_core::store::StoreError;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::BACKEND;
use super::codec::{db, get};
use crate::idempotency_rows::{RecordRow, headers_text};

/// An [`IdempotencyStore`] on a Postgres database migrated with [`migrate`](super::migrate).
///
/// A claim is one transaction: an upsert (`INSERT … ON CONFLICT DO UPDATE … WHERE` the row
/// expired) that inserts the hold or takes over an expired row and returns it; else a read
/// of the row it found. The upsert locks the conflicting row whether or not it updates it,
/// so the read sees the row as it is until the transaction ends, and of two concurrent
/// claims of a free key the second waits for the first's insert and then finds it held.
#[derive(Debug, Clone)]
pub struct PgIdempotencyStore {
    pool: PgPool,
}

impl PgIdempotencyStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let taken = sqlx::query(
            "INSERT INTO idempotency_records \
             (org_id, principal, operation, idempotency_key, fingerprint, hold, status, headers, body, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, $7) \
             ON CONFLICT ON CONSTRAINT idempotency_records_pkey DO UPDATE SET \
             fingerprint = EXCLUDED.fingerprint, hold = EXCLUDED.hold, status = NULL, headers = NULL, \
             body = NULL, expires_at = EXCLUDED.expires_at \
             WHERE idempotency_records.expires_at <= $8 \
             RETURNING hold",
        )
        .bind(&org)
        .bind(&principal)
        .bind(&scope.operation)
        .bind(key.as_str())
        .bind(fingerprint.as_slice())
        .bind(hold.0.as_slice())
        .bind(hold_until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if taken.is_some() {
            tx.commit().await.map_err(db)?;
            return Ok(Claim::Held);
        }
        let row = sqlx::query(
            "SELECT fingerprint, hold, status, headers, body FROM idempotency_records \
             WHERE org_id = $1 AND principal = $2 AND operation = $3 AND idempotency_key = $4",
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
                status: get::<Option<i32>>(&row, "status")?.map(i64::from),
                headers: get(&row, "headers")?,
                body: get(&row, "body")?,
            }
            .into_claim(BACKEND),
            // The upsert locked the row it did not take: it is there until the commit.
            None => Err(BACKEND.corrupt("an idempotency record that vanished under its row lock")),
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
                Some(i32::from(answer.status)),
                Some(headers_text(BACKEND, &answer.headers)?),
                Some(answer.body.as_slice()),
            ),
            None => (None, None, None),
        };
        let done = sqlx::query(
            "UPDATE idempotency_records SET hold = NULL, status = $1, headers = $2, body = $3, expires_at = $4 \
             WHERE org_id = $5 AND principal = $6 AND operation = $7 AND idempotency_key = $8 AND hold = $9",
        )
        .bind(status)
        .bind(headers)
        .bind(body)
        .bind(expires_at)
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
             WHERE org_id = $1 AND principal = $2 AND operation = $3 AND idempotency_key = $4 AND hold = $5",
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
        let done = sqlx::query("DELETE FROM idempotency_records WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
