//! `PgAuditLog`: the customer audit log on Postgres, and the outbox insert every
//! Postgres store runs in the transaction of an audited change.

use async_trait::async_trait;
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery};
use portal_core::identity::UserAuditEvent;
use portal_core::ids::{AuditEventId, OrgId};
use portal_core::store::{Conflict, StoreError};
use sqlx::{PgConnection, PgPool};

use super::BACKEND;
use super::codec::{db, stored_time};
use crate::sql::unique_violation;
use time::OffsetDateTime;

/// Writes `event` on `conn`, inside the caller's transaction: if it fails, the caller's
/// `?` drops the transaction and the change rolls back with it.
///
/// # Errors
///
/// [`Conflict::AlreadyExists`] (`audit event`) for an id already in the log; what the
/// driver reports otherwise.
pub(super) async fn insert_event(conn: &mut PgConnection, event: &AuditEvent) -> Result<(), StoreError> {
    let text =
        serde_json::to_string(event).map_err(|err| BACKEND.corrupt(format!("audit event {}: {err}", event.id)))?;
    let targets: Vec<&str> = event.target_ids().collect();
    // The event and the outbox's fan-out in one statement: a pending delivery for every
    // enabled endpoint of the org that takes this action. The endpoints are read `FOR KEY
    // SHARE`: an endpoint deleted by a concurrent transaction is waited for and then
    // skipped, instead of failing the delivery's foreign key (a 500 for the change).
    sqlx::query(
        "WITH event AS (
             INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, org_id, action, occurred_at
         )
         INSERT INTO webhook_deliveries (endpoint_id, event_id, org_id, occurred_at, state, attempts, due_at)
         SELECT e.id, event.id, event.org_id, event.occurred_at, 'pending', 0, event.occurred_at
         FROM event JOIN webhook_endpoints e
           ON e.org_id = event.org_id AND e.enabled
          AND (cardinality(e.event_types) = 0 OR event.action = ANY (e.event_types))
         FOR KEY SHARE OF e",
    )
    .bind(event.id.as_uuid())
    .bind(event.org.as_uuid())
    .bind(event.action.as_str())
    .bind(event.actor.id.as_str())
    .bind(stored_time(event.occurred_at))
    .bind(targets)
    .bind(text)
    .execute(conn)
    .await
    .map_err(|err| {
        if unique_violation(&err).is_some_and(|c| c == "audit_events_pkey") {
            Conflict::AlreadyExists { entity: "audit event" }.into()
        } else {
            db(err)
        }
    })?;
    Ok(())
}

/// Writes `event` on `conn`, inside the caller's transaction, once per org its user is a
/// member of as the transaction reads the memberships (in org id order, the rows locked
/// `FOR SHARE`, so a membership removed concurrently waits for this commit): each row
/// through [`insert_event`], so each is fanned out to its org's endpoints. A membership
/// added concurrently and committed after the read gets no row.
///
/// # Errors
///
/// As [`insert_event`]; a user with no membership writes nothing.
pub(super) async fn insert_user_event(conn: &mut PgConnection, event: &UserAuditEvent) -> Result<(), StoreError> {
    let orgs: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY org_id FOR SHARE")
            .bind(event.user().as_uuid())
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    let orgs: Vec<OrgId> = orgs.into_iter().map(OrgId::from_uuid).collect();
    for row in event.events(&orgs) {
        insert_event(conn, &row).await?;
    }
    Ok(())
}

/// An org's audit log, read from the `audit_events` table the Postgres stores write.
#[derive(Debug, Clone)]
pub struct PgAuditLog {
    pool: PgPool,
}

impl PgAuditLog {
    /// A log on `pool` (migrated with [`migrate`](super::migrate)).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuditLog for PgAuditLog {
    async fn list(
        &self,
        org: OrgId,
        query: &AuditQuery,
        after: Option<AuditEventId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT event FROM audit_events
             WHERE org_id = $1
               AND ($2::uuid IS NULL OR id > $2)
               AND ($3::text IS NULL OR action = $3)
               AND ($4::text IS NULL OR actor_id = $4)
               AND ($5::text IS NULL OR $5 = ANY (targets))
               AND ($6::timestamptz IS NULL OR occurred_at >= $6)
               AND ($7::timestamptz IS NULL OR occurred_at < $7)
             ORDER BY id
             LIMIT $8",
        )
        .bind(org.as_uuid())
        .bind(after.map(|a| a.as_uuid()))
        .bind(query.action.as_ref().map(|a| a.as_str()))
        .bind(query.actor.as_deref())
        .bind(query.target.as_deref())
        .bind(query.since.map(stored_time))
        .bind(query.until.map(stored_time))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(text,)| {
                let event: AuditEvent =
                    BACKEND.decode(|| "event in `audit_events`".to_owned(), serde_json::from_str(&text))?;
                if event.org == org {
                    Ok(event)
                } else {
                    Err(BACKEND.corrupt(format!("audit event {} filed under another org", event.id)))
                }
            })
            .collect()
    }

    async fn retention(&self, org: OrgId) -> Result<Option<u32>, StoreError> {
        let row: Option<(i32,)> = sqlx::query_as("SELECT days FROM audit_retention WHERE org_id = $1")
            .bind(org.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|(days,)| u32::try_from(days).map_err(|_| BACKEND.corrupt(format!("retention of {org}: {days} days"))))
            .transpose()
    }

    async fn set_retention(&self, org: OrgId, days: Option<u32>, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        match days {
            Some(days) => sqlx::query(
                "INSERT INTO audit_retention (org_id, days) VALUES ($1, $2)
                 ON CONFLICT (org_id) DO UPDATE SET days = excluded.days",
            )
            .bind(org.as_uuid())
            .bind(i32::try_from(days).unwrap_or(i32::MAX)),
            None => sqlx::query("DELETE FROM audit_retention WHERE org_id = $1").bind(org.as_uuid()),
        }
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        // One statement: the expired events (by their org's retention), then their
        // deliveries and attempts, then the events.
        let (count,): (i64,) = sqlx::query_as(
            "WITH expired AS (
                 SELECT e.org_id, e.id FROM audit_events e JOIN audit_retention r ON r.org_id = e.org_id
                 WHERE e.occurred_at < $1 - make_interval(days => r.days)
             ), deliveries AS (
                 DELETE FROM webhook_deliveries WHERE (org_id, event_id) IN (SELECT org_id, id FROM expired)
             ), attempts AS (
                 DELETE FROM webhook_attempts WHERE (org_id, event_id) IN (SELECT org_id, id FROM expired)
             ), events AS (
                 DELETE FROM audit_events WHERE (org_id, id) IN (SELECT org_id, id FROM expired) RETURNING 1
             )
             SELECT count(*) FROM events",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}
