//! `SqliteAuditLog`: the customer audit log on SQLite, and the outbox insert every
//! SQLite store runs in the transaction of an audited change.

use async_trait::async_trait;
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery};
use portal_core::identity::UserAuditEvent;
use portal_core::ids::{AuditEventId, OrgId};
use portal_core::store::{Conflict, StoreError};
use sqlx::SqlitePool;

use super::BACKEND;
use super::codec::{WriteTx, begin_write, blob, db, micros, uuid_at};
use crate::sql::unique_violation;
use time::OffsetDateTime;

/// The columns SQLite names when an event's id is already in its org's log (the unique
/// `audit_events_by_org` index, migration 0027).
const EVENT_KEY: &str = "audit_events.org_id, audit_events.id";

/// Writes `event` in the caller's transaction `tx`: if it fails, the caller's `?` drops
/// the transaction and the change rolls back with it. If the fan-out queued deliveries,
/// the transaction wakes the delivery worker when it commits.
///
/// # Errors
///
/// [`Conflict::AlreadyExists`] (`audit event`) for an id already in the log; what the
/// driver reports otherwise.
pub(super) async fn insert_event(tx: &mut WriteTx, event: &AuditEvent) -> Result<(), StoreError> {
    let (text, targets) = encode_event(event)?;
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(blob(event.id.as_uuid()))
    .bind(blob(event.org.as_uuid()))
    .bind(event.action.as_str())
    .bind(event.actor.id.as_str())
    .bind(micros(event.occurred_at))
    .bind(targets)
    .bind(text)
    .execute(&mut **tx)
    .await
    .map_err(|err| {
        if unique_violation(&err).is_some_and(|c| c == EVENT_KEY) {
            Conflict::AlreadyExists { entity: "audit event" }.into()
        } else {
            db(err)
        }
    })?;
    // The outbox's fan-out: a pending delivery for every enabled endpoint of the org that
    // takes this action, in the same transaction.
    let fanned = sqlx::query(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, org_id, occurred_at, state, attempts, due_at)
         SELECT id, ?1, org_id, ?3, 'pending', 0, ?3 FROM webhook_endpoints
         WHERE org_id = ?2 AND enabled = 1
           AND (event_types = '[]'
                OR EXISTS (SELECT 1 FROM json_each(webhook_endpoints.event_types) WHERE value = ?4))",
    )
    .bind(blob(event.id.as_uuid()))
    .bind(blob(event.org.as_uuid()))
    .bind(micros(event.occurred_at))
    .bind(event.action.as_str())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if fanned.rows_affected() > 0 {
        tx.fanned_out();
    }
    Ok(())
}

/// Writes `event` in the caller's transaction `tx`, once per org its user is a
/// member of as the transaction reads the memberships (in org id order): each row through
/// [`insert_event`], so each is fanned out to its org's endpoints. A SQLite write
/// transaction (`BEGIN IMMEDIATE`) holds the database's write lock, so the memberships read
/// are those at commit.
///
/// # Errors
///
/// As [`insert_event`]; a user with no membership writes nothing.
pub(super) async fn insert_user_event(tx: &mut WriteTx, event: &UserAuditEvent) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT org_id FROM memberships WHERE user_id = ?1 ORDER BY org_id")
        .bind(blob(event.user().as_uuid()))
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
    let orgs = rows
        .iter()
        .map(|row| uuid_at(row, "org_id").map(OrgId::from_uuid))
        .collect::<Result<Vec<_>, _>>()?;
    for row in event.events(&orgs) {
        insert_event(tx, &row).await?;
    }
    Ok(())
}

/// The columns `event` (the whole event as JSON) and `targets` (its target ids as a JSON
/// array) of `event`'s row, for a store that writes the row in a statement of its own.
///
/// # Errors
///
/// [`StoreError::Corrupt`] if the event does not serialize.
pub(super) fn encode_event(event: &AuditEvent) -> Result<(String, String), StoreError> {
    let text =
        serde_json::to_string(event).map_err(|err| BACKEND.corrupt(format!("audit event {}: {err}", event.id)))?;
    let targets = serde_json::to_string(&event.target_ids().collect::<Vec<_>>())
        .map_err(|err| BACKEND.corrupt(format!("targets of audit event {}: {err}", event.id)))?;
    Ok((text, targets))
}

/// The error of an `audit_events` insert: an id already in the org's log is [`Conflict::AlreadyExists`]
/// (`audit event`), anything else what the driver said.
pub(super) fn event_insert_error(err: sqlx::Error) -> StoreError {
    if unique_violation(&err).is_some_and(|c| c == EVENT_KEY) {
        Conflict::AlreadyExists { entity: "audit event" }.into()
    } else {
        db(err)
    }
}

/// An org's audit log, read from the `audit_events` table the SQLite stores write.
#[derive(Debug, Clone)]
pub struct SqliteAuditLog {
    pool: SqlitePool,
}

impl SqliteAuditLog {
    /// A log on `pool` (migrated with [`migrate`](super::migrate)).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuditLog for SqliteAuditLog {
    async fn list(
        &self,
        org: OrgId,
        query: &AuditQuery,
        after: Option<AuditEventId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT event FROM audit_events
             WHERE org_id = ?1
               AND (?2 IS NULL OR id > ?2)
               AND (?3 IS NULL OR action = ?3)
               AND (?4 IS NULL OR actor_id = ?4)
               AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(audit_events.targets) WHERE value = ?5))
               AND (?6 IS NULL OR occurred_at >= ?6)
               AND (?7 IS NULL OR occurred_at < ?7)
             ORDER BY id
             LIMIT ?8",
        )
        .bind(blob(org.as_uuid()))
        .bind(after.map(|a| blob(a.as_uuid())))
        .bind(query.action.as_ref().map(|a| a.as_str()))
        .bind(query.actor.as_deref())
        .bind(query.target.as_deref())
        .bind(query.since.map(micros))
        .bind(query.until.map(micros))
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
        let row: Option<(i64,)> = sqlx::query_as("SELECT days FROM audit_retention WHERE org_id = ?1")
            .bind(blob(org.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|(days,)| u32::try_from(days).map_err(|_| BACKEND.corrupt(format!("retention of {org}: {days} days"))))
            .transpose()
    }

    async fn set_retention(&self, org: OrgId, days: Option<u32>, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        match days {
            Some(days) => sqlx::query(
                "INSERT INTO audit_retention (org_id, days) VALUES (?1, ?2)
                 ON CONFLICT (org_id) DO UPDATE SET days = excluded.days",
            )
            .bind(blob(org.as_uuid()))
            .bind(i64::from(days)),
            None => sqlx::query("DELETE FROM audit_retention WHERE org_id = ?1").bind(blob(org.as_uuid())),
        }
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        const DAY_MICROS: i64 = 86_400_000_000;
        let mut tx = begin_write(&self.pool).await?;
        // The expired events, by the retention of their org (`occurred_at` is in Unix
        // microseconds): their deliveries and attempts, then the events.
        let statements = [
            "DELETE FROM webhook_deliveries WHERE (org_id, event_id) IN (
                 SELECT e.org_id, e.id FROM audit_events e JOIN audit_retention r ON r.org_id = e.org_id
                 WHERE e.occurred_at < ?1 - r.days * ?2)",
            "DELETE FROM webhook_attempts WHERE (org_id, event_id) IN (
                 SELECT e.org_id, e.id FROM audit_events e JOIN audit_retention r ON r.org_id = e.org_id
                 WHERE e.occurred_at < ?1 - r.days * ?2)",
            "DELETE FROM audit_events WHERE (org_id, id) IN (
                 SELECT e.org_id, e.id FROM audit_events e JOIN audit_retention r ON r.org_id = e.org_id
                 WHERE e.occurred_at < ?1 - r.days * ?2)",
        ];
        let mut events = 0;
        for statement in statements {
            events = sqlx::query(statement)
                .bind(micros(now))
                .bind(DAY_MICROS)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        }
        tx.commit().await.map_err(db)?;
        // The last statement's count: the events.
        Ok(events)
    }
}
