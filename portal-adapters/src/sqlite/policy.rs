//! `SqlitePolicyStore`: policy lines, their change log and the revision counter in SQLite.

use std::collections::HashSet;

use async_trait::async_trait;
use portal_core::access::{Domain, PolicyChange, PolicyLine, PolicyStore, Revision};
use portal_core::audit::AuditEvent;
use portal_core::policy::AuditedPolicyStore;
use portal_core::store::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{begin_write, db, get};
use crate::policy_lines::{
    LineColumns, candidates, line_from_columns, lines_from_json, lines_json, plan, revision_from, revision_value,
};

/// A [`PolicyStore`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// Every `apply` and `trim_changes` is one `BEGIN IMMEDIATE` transaction: SQLite lets one
/// writer in at a time, so the lines, the log entry and the revision counter change
/// together, and concurrent calls take turns and get consecutive revisions. Reads are
/// one statement each, so each sees one committed state.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::sqlite::{self, SqlitePolicyStore};
/// use portal_core::access::PolicyStore;
///
/// let pool = sqlite::connect("sqlite://portal.db").await?;
/// sqlite::migrate(&pool).await?;
/// let store = SqlitePolicyStore::new(pool);
/// let (revision, lines) = store.load().await?;
/// # let _ = (revision, lines);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqlitePolicyStore {
    pool: SqlitePool,
}

impl SqlitePolicyStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Reads the line in columns `domain`, `ptype`, `subject`, `object`, `action` and
/// `effect`, or `None` if they are NULL (the row of an outer join that matched no line).
fn line_from_row(row: &SqliteRow) -> Result<Option<PolicyLine>, StoreError> {
    let Some(ptype) = get::<Option<String>>(row, "ptype")? else {
        return Ok(None);
    };
    let domain: String = get(row, "domain")?;
    let effect: String = get(row, "effect")?;
    line_from_columns(
        BACKEND,
        &ptype,
        get(row, "subject")?,
        &domain,
        get(row, "object")?,
        get(row, "action")?,
        &effect,
    )
    .map(Some)
}

async fn current_revision(conn: &mut SqliteConnection) -> Result<Revision, StoreError> {
    let value: i64 = sqlx::query_scalar("SELECT value FROM policy_revision WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    revision_from(BACKEND, value)
}

async fn line_exists(conn: &mut SqliteConnection, line: &PolicyLine) -> Result<bool, StoreError> {
    let c = LineColumns::of(line);
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM policy_lines
         WHERE domain = ?1 AND ptype = ?2 AND subject = ?3 AND object = ?4 AND action = ?5 AND effect = ?6",
    )
    .bind(c.domain)
    .bind(c.ptype)
    .bind(c.subject)
    .bind(c.object)
    .bind(c.action)
    .bind(c.effect)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    Ok(found.is_some())
}

async fn delete_line(conn: &mut SqliteConnection, line: &PolicyLine) -> Result<(), StoreError> {
    let c = LineColumns::of(line);
    sqlx::query(
        "DELETE FROM policy_lines
         WHERE domain = ?1 AND ptype = ?2 AND subject = ?3 AND object = ?4 AND action = ?5 AND effect = ?6",
    )
    .bind(c.domain)
    .bind(c.ptype)
    .bind(c.subject)
    .bind(c.object)
    .bind(c.action)
    .bind(c.effect)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_line(conn: &mut SqliteConnection, line: &PolicyLine) -> Result<(), StoreError> {
    let c = LineColumns::of(line);
    sqlx::query(
        "INSERT INTO policy_lines (domain, ptype, subject, object, action, effect) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(c.domain)
    .bind(c.ptype)
    .bind(c.subject)
    .bind(c.object)
    .bind(c.action)
    .bind(c.effect)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

impl SqlitePolicyStore {
    /// `apply`, and `event` (if given) written with the change in its transaction when a
    /// line changed (the outbox), with its webhook deliveries.
    async fn apply_with(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: Option<&AuditEvent>,
    ) -> Result<Revision, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let current = current_revision(&mut tx).await?;
        let mut present = HashSet::new();
        for line in candidates(added, removed) {
            if line_exists(&mut tx, line).await? {
                present.insert(line);
            }
        }
        let plan = plan(added, removed, |line| present.contains(line));
        if plan.is_empty() {
            tx.rollback().await.map_err(db)?;
            return Ok(current);
        }
        for line in &plan.removed {
            delete_line(&mut tx, line).await?;
        }
        for line in &plan.added {
            insert_line(&mut tx, line).await?;
        }
        let value: i64 =
            sqlx::query_scalar("UPDATE policy_revision SET value = value + 1 WHERE id = 1 RETURNING value")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let revision = revision_from(BACKEND, value)?;
        sqlx::query("INSERT INTO policy_changes (revision, added, removed) VALUES (?1, ?2, ?3)")
            .bind(value)
            .bind(lines_json(BACKEND, &plan.added)?)
            .bind(lines_json(BACKEND, &plan.removed)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(event) = event {
            insert_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(revision)
    }
}

#[async_trait]
impl AuditedPolicyStore for SqlitePolicyStore {
    async fn apply_audited(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        event: &AuditEvent,
    ) -> Result<Revision, StoreError> {
        self.apply_with(added, removed, Some(event)).await
    }
}

#[async_trait]
impl PolicyStore for SqlitePolicyStore {
    async fn load(&self) -> Result<(Revision, Vec<PolicyLine>), StoreError> {
        // One statement reads the counter and the lines from one snapshot; the outer join
        // keeps the counter's row when there are no lines.
        let rows = sqlx::query(
            "SELECT r.value AS revision, l.domain, l.ptype, l.subject, l.object, l.action, l.effect
             FROM policy_revision r LEFT JOIN policy_lines l ON 1 = 1
             WHERE r.id = 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let Some(first) = rows.first() else {
            return Err(BACKEND.corrupt("policy revision counter (its row is missing)"));
        };
        let revision = revision_from(BACKEND, get(first, "revision")?)?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            lines.extend(line_from_row(row)?);
        }
        Ok((revision, lines))
    }

    async fn load_domain(&self, domain: Domain) -> Result<Vec<PolicyLine>, StoreError> {
        let rows =
            sqlx::query("SELECT domain, ptype, subject, object, action, effect FROM policy_lines WHERE domain = ?1")
                .bind(domain.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            lines.extend(line_from_row(row)?);
        }
        Ok(lines)
    }

    async fn apply(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<Revision, StoreError> {
        self.apply_with(added, removed, None).await
    }

    async fn changes_since(&self, revision: Revision) -> Result<Option<Vec<PolicyChange>>, StoreError> {
        // One statement, so the trim mark and the log are read from one snapshot.
        let rows = sqlx::query(
            "SELECT r.trimmed_through, c.revision, c.added, c.removed
             FROM policy_revision r LEFT JOIN policy_changes c ON c.revision > ?1
             WHERE r.id = 1
             ORDER BY c.revision",
        )
        .bind(revision_value(revision))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let Some(first) = rows.first() else {
            return Err(BACKEND.corrupt("policy revision counter (its row is missing)"));
        };
        if revision_from(BACKEND, get(first, "trimmed_through")?)? > revision {
            return Ok(None);
        }
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(value) = get::<Option<i64>>(row, "revision")? else {
                continue;
            };
            let revision = revision_from(BACKEND, value)?;
            let added: String = get(row, "added")?;
            let removed: String = get(row, "removed")?;
            changes.push(PolicyChange {
                revision,
                added: lines_from_json(BACKEND, &added, "added", revision)?,
                removed: lines_from_json(BACKEND, &removed, "removed", revision)?,
            });
        }
        Ok(Some(changes))
    }

    async fn trim_changes(&self, through: Revision) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "UPDATE policy_revision SET trimmed_through = min(value, ?1)
             WHERE id = 1 AND trimmed_through < min(value, ?1)",
        )
        .bind(revision_value(through))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "DELETE FROM policy_changes WHERE revision <= (SELECT trimmed_through FROM policy_revision WHERE id = 1)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}
