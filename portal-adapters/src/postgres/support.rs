//! `PgSupportGrantStore`: support access grants in Postgres.

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::ids::{GrantId, OrgId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::support::{SupportAccess, SupportGrant, SupportGrantStore, SupportReason};
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{db, get};
use crate::sql::unique_violation;

/// A [`SupportGrantStore`] on a Postgres database migrated with [`migrate`](super::migrate).
///
/// Reads are one statement each. `create`, `revoke` and `record_first_use` are one
/// transaction with their audit event (the outbox); a revocation updates only a grant not
/// revoked yet (an earlier `revoked_at` is kept, and no event written), else reads the
/// row back; a first use updates only a grant whose `first_used_at` is unset (of two
/// concurrent first uses the second waits for the first's row lock, then finds it set and
/// writes nothing). A duplicate id is recognized by the primary key's unique violation.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::postgres::{self, PgSupportGrantStore};
///
/// let pool = postgres::connect("postgres://localhost/portal").await?;
/// postgres::migrate(&pool).await?;
/// let store = PgSupportGrantStore::new(pool);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgSupportGrantStore {
    pool: PgPool,
}

impl PgSupportGrantStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The columns every read selects, as a literal so each statement stays a constant
/// string (`concat!`), never SQL built at run time.
macro_rules! columns {
    () => {
        "id, org_id, staff_id, reason, access, granted_by, created_at, expires_at, revoked_at, first_used_at"
    };
}

fn grant_from_row(row: &PgRow) -> Result<SupportGrant, StoreError> {
    let id = GrantId::from_uuid(get(row, "id")?);
    let reason: String = get(row, "reason")?;
    let access: String = get(row, "access")?;
    let granted_by: String = get(row, "granted_by")?;
    Ok(SupportGrant {
        id,
        org: OrgId::from_uuid(get(row, "org_id")?),
        staff: UserId::from_uuid(get(row, "staff_id")?),
        reason: BACKEND.decode(|| format!("`reason` of {id}"), SupportReason::new(&reason))?,
        access: SupportAccess::parse(&access).ok_or_else(|| BACKEND.corrupt(format!("`access` of {id}")))?,
        granted_by: BACKEND.decode(|| format!("`granted_by` of {id}"), granted_by.parse())?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        first_used_at: get(row, "first_used_at")?,
    })
}

#[async_trait]
impl SupportGrantStore for PgSupportGrantStore {
    async fn create(&self, grant: &SupportGrant, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO support_grants (id, org_id, staff_id, reason, access, granted_by, created_at, expires_at, \
             revoked_at, first_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(grant.id.as_uuid())
        .bind(grant.org.as_uuid())
        .bind(grant.staff.as_uuid())
        .bind(grant.reason.as_str())
        .bind(grant.access.as_str())
        .bind(grant.granted_by.to_string())
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .bind(grant.revoked_at)
        .bind(grant.first_used_at)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some() {
                StoreError::Conflict(Conflict::AlreadyExists {
                    entity: "support_grant",
                })
            } else {
                db(err)
            }
        })?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn get(&self, org: OrgId, id: GrantId) -> Result<Option<SupportGrant>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM support_grants WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn find_active(
        &self,
        staff: UserId,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM support_grants WHERE staff_id = $1 AND org_id = $2 AND created_at <= $3 AND expires_at > $3 \
             AND (revoked_at IS NULL OR revoked_at > $3) ORDER BY id DESC LIMIT 1"
        ))
        .bind(staff.as_uuid())
        .bind(org.as_uuid())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn list(&self, org: OrgId, after: Option<GrantId>, limit: usize) -> Result<Vec<SupportGrant>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM support_grants WHERE org_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(org.as_uuid())
        .bind(after.map(|id| id.as_uuid()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn revoke(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<SupportGrant, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Only a grant not revoked yet changes (a concurrent revocation that committed
        // first makes this one match nothing), and only then is the event written.
        let revoked = sqlx::query(concat!(
            "UPDATE support_grants SET revoked_at = $3 WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL RETURNING ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(row) = revoked {
            let grant = grant_from_row(&row)?;
            insert_event(&mut tx, event).await?;
            tx.commit().await.map_err(db)?;
            return Ok(grant);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM support_grants WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.rollback().await.map_err(db)?;
        match row {
            Some(row) => grant_from_row(&row),
            None => Err(StoreError::NotFound {
                entity: "support_grant",
            }),
        }
    }

    async fn record_first_use(
        &self,
        org: OrgId,
        id: GrantId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Under READ COMMITTED a second update of the row waits for the first's commit,
        // then re-checks `first_used_at IS NULL` on the new row version and matches none.
        let set = sqlx::query(
            "UPDATE support_grants SET first_used_at = $3 WHERE id = $1 AND org_id = $2 AND first_used_at IS NULL",
        )
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if set.rows_affected() == 1 {
            if let Err(err) = insert_event(&mut tx, event).await {
                // Rolled back now, so the grant's row is not held for a concurrent first
                // use until the connection is next used.
                let _ = tx.rollback().await;
                return Err(err);
            }
            tx.commit().await.map_err(db)?;
            return Ok(true);
        }
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM support_grants WHERE id = $1 AND org_id = $2")
            .bind(id.as_uuid())
            .bind(org.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.rollback().await.map_err(db)?;
        match exists {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound {
                entity: "support_grant",
            }),
        }
    }
}
