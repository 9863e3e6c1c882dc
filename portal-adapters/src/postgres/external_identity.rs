//! `PgExternalIdentityStore`: identity provider accounts linked to users, in Postgres.

use async_trait::async_trait;
use portal_core::identity::{ExternalIdentity, ExternalIdentityStore};
use portal_core::ids::UserId;
use portal_core::store::{Conflict, StoreError};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::codec::{db, get};
use crate::sql::unique_violation;

/// An [`ExternalIdentityStore`] on a Postgres database migrated with [`migrate`](super::migrate).
///
/// Every method is one statement, so each is atomic; `(issuer, subject)` is the primary
/// key, in the "C" collation so it compares and sorts byte for byte. A duplicate link is
/// recognized by the primary key's unique violation.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::postgres::{self, PgExternalIdentityStore};
///
/// let pool = postgres::connect("postgres://localhost/portal").await?;
/// postgres::migrate(&pool).await?;
/// let store = PgExternalIdentityStore::new(pool);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgExternalIdentityStore {
    pool: PgPool,
}

impl PgExternalIdentityStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn identity_from_row(row: &PgRow) -> Result<ExternalIdentity, StoreError> {
    Ok(ExternalIdentity {
        issuer: get(row, "issuer")?,
        subject: get(row, "subject")?,
        user: UserId::from_uuid(get(row, "user_id")?),
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl ExternalIdentityStore for PgExternalIdentityStore {
    async fn link(&self, identity: &ExternalIdentity) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO external_identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&identity.issuer)
            .bind(&identity.subject)
            .bind(identity.user.as_uuid())
            .bind(identity.created_at)
            .execute(&self.pool)
            .await
            .map_err(|err| {
                if unique_violation(&err).is_some() {
                    StoreError::Conflict(Conflict::AlreadyExists {
                        entity: "external_identity",
                    })
                } else {
                    db(err)
                }
            })?;
        Ok(())
    }

    async fn find(&self, issuer: &str, subject: &str) -> Result<Option<ExternalIdentity>, StoreError> {
        let row = sqlx::query(
            "SELECT issuer, subject, user_id, created_at FROM external_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(identity_from_row).transpose()
    }

    async fn list_for_user(
        &self,
        user: UserId,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<ExternalIdentity>, StoreError> {
        let (issuer, subject) = after.unzip();
        let rows = sqlx::query(
            "SELECT issuer, subject, user_id, created_at FROM external_identities WHERE user_id = $1 \
             AND ($2 IS NULL OR issuer > $2 OR (issuer = $2 AND subject > $3)) \
             ORDER BY issuer, subject LIMIT $4",
        )
        .bind(user.as_uuid())
        .bind(issuer)
        .bind(subject)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(identity_from_row).collect()
    }

    async fn unlink(&self, issuer: &str, subject: &str) -> Result<ExternalIdentity, StoreError> {
        let row = sqlx::query(
            "DELETE FROM external_identities WHERE issuer = $1 AND subject = $2 \
             RETURNING issuer, subject, user_id, created_at",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match row {
            Some(row) => identity_from_row(&row),
            None => Err(StoreError::NotFound {
                entity: "external_identity",
            }),
        }
    }
}
