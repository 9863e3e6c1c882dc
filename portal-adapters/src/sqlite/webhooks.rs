//! `SqliteWebhookStore`: webhook endpoints, deliveries and the attempt log in SQLite.
//!
//! Deliveries are fanned out by the outbox insert (`audit::insert_event`) in the event's
//! transaction. SQLite serializes writers, so one worker claims at a time; a claim is one
//! `BEGIN IMMEDIATE` transaction that reads the due rows and pushes their due time to the
//! lease's end. A commit that queued deliveries wakes this process's worker
//! ([`webhook_wakeups`]).

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::ids::{AuditEventId, OrgId, WebhookAttemptId, WebhookEndpointId, WebhookMessageId};
use portal_core::store::{Conflict, StoreError};
use portal_core::webhooks::{
    AttemptStatus, Delivery, DeliveryAttempt, DisableRule, EndpointSecrets, EndpointUrl, EventTypes, FinishedAttempt,
    NextStep, Replay, WebhookEndpoint, WebhookSecret, WebhookStore,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::Notify;

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{WriteTx, begin_write, blob, db, delivery_wakeups, get, micros, time_at, uuid_at};
use crate::sql::unique_violation;

/// A [`Notify`] woken after every commit in this process, on `pool` or a clone of it, that
/// queued webhook deliveries (an audited change fanned out to an enabled endpoint, or a
/// replay), for [`DeliveryWorker::with_wakeups`](crate::webhooks::DeliveryWorker::with_wakeups):
/// the worker then claims at once instead of at its next poll. Writers in other processes
/// do not reach it; the worker's poll interval finds their deliveries.
pub fn webhook_wakeups(pool: &SqlitePool) -> Arc<Notify> {
    delivery_wakeups(pool)
}

/// A [`WebhookStore`] on a SQLite database migrated with [`migrate`](super::migrate), the
/// same database the other SQLite stores write their audit events to.
#[derive(Debug, Clone)]
pub struct SqliteWebhookStore {
    pool: SqlitePool,
}

impl SqliteWebhookStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// The endpoint columns every read selects.
macro_rules! endpoint_columns {
    () => {
        "id, org_id, url, description, event_types, enabled, secret, previous_secret, previous_until,
         created_at, updated_at, failing_since"
    };
}

fn not_found() -> StoreError {
    StoreError::NotFound {
        entity: "webhook_endpoint",
    }
}

fn secret(text: String, id: WebhookEndpointId) -> Result<WebhookSecret, StoreError> {
    BACKEND.decode(
        || format!("secret of {id}"),
        WebhookSecret::from_text(&SecretString::from(text)),
    )
}

fn endpoint_from_row(row: &SqliteRow) -> Result<WebhookEndpoint, StoreError> {
    let id = WebhookEndpointId::from_uuid(uuid_at(row, "id")?);
    let url: String = get(row, "url")?;
    let types: String = get(row, "event_types")?;
    let types: Vec<String> = BACKEND.decode(|| format!("event types of {id}"), serde_json::from_str(&types))?;
    let previous: Option<String> = get(row, "previous_secret")?;
    let previous_until: Option<i64> = get(row, "previous_until")?;
    let previous = match (previous, previous_until) {
        (Some(text), Some(until)) => Some((
            secret(text, id)?,
            portal_core::time::from_unix_micros(until)
                .ok_or_else(|| BACKEND.corrupt(format!("previous_until of {id}")))?,
        )),
        _ => None,
    };
    let failing: Option<i64> = get(row, "failing_since")?;
    Ok(WebhookEndpoint {
        id,
        org: OrgId::from_uuid(uuid_at(row, "org_id")?),
        url: BACKEND.decode(|| format!("url of {id}"), EndpointUrl::from_stored(&url))?,
        description: get(row, "description")?,
        event_types: BACKEND.decode(|| format!("event types of {id}"), EventTypes::from_stored(&types))?,
        enabled: get::<bool>(row, "enabled")?,
        secrets: EndpointSecrets {
            current: secret(get(row, "secret")?, id)?,
            previous,
        },
        created_at: time_at(row, "created_at", &id)?,
        updated_at: time_at(row, "updated_at", &id)?,
        failing_since: failing
            .map(|v| {
                portal_core::time::from_unix_micros(v).ok_or_else(|| BACKEND.corrupt(format!("failing_since of {id}")))
            })
            .transpose()?,
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<DeliveryAttempt, StoreError> {
    let id = WebhookAttemptId::from_uuid(uuid_at(row, "id")?);
    let status: String = get(row, "status")?;
    let http_status: Option<i64> = get(row, "http_status")?;
    let attempt: i64 = get(row, "attempt")?;
    let latency: i64 = get(row, "latency_ms")?;
    Ok(DeliveryAttempt {
        id,
        org: OrgId::from_uuid(uuid_at(row, "org_id")?),
        endpoint: WebhookEndpointId::from_uuid(uuid_at(row, "endpoint_id")?),
        message: WebhookMessageId::from_uuid(uuid_at(row, "event_id")?),
        attempt: BACKEND.decode(|| format!("attempt of {id}"), u32::try_from(attempt))?,
        attempted_at: time_at(row, "attempted_at", &id)?,
        status: AttemptStatus::parse(&status).ok_or_else(|| BACKEND.corrupt(format!("status of {id}")))?,
        http_status: http_status
            .map(|s| BACKEND.decode(|| format!("http status of {id}"), u16::try_from(s)))
            .transpose()?,
        latency_ms: BACKEND.decode(|| format!("latency of {id}"), u32::try_from(latency))?,
        excerpt: get(row, "excerpt")?,
    })
}

fn types_text(endpoint: &WebhookEndpoint) -> Result<String, StoreError> {
    serde_json::to_string(&endpoint.event_types.names())
        .map_err(|err| BACKEND.corrupt(format!("event types of {}: {err}", endpoint.id)))
}

async fn write_endpoint(
    conn: &mut SqliteConnection,
    endpoint: &WebhookEndpoint,
    create: bool,
) -> Result<u64, StoreError> {
    let statement = if create {
        "INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, enabled, secret,
             previous_secret, previous_until, created_at, updated_at, failing_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    } else {
        "UPDATE webhook_endpoints SET url = ?3, description = ?4, event_types = ?5, enabled = ?6, secret = ?7,
             previous_secret = ?8, previous_until = ?9, updated_at = ?11, failing_since = ?12
         WHERE id = ?1 AND org_id = ?2"
    };
    let (previous, until) = match &endpoint.secrets.previous {
        Some((secret, until)) => (Some(secret.to_text()), Some(micros(*until))),
        None => (None, None),
    };
    let done = sqlx::query(statement)
        .bind(blob(endpoint.id.as_uuid()))
        .bind(blob(endpoint.org.as_uuid()))
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_str())
        .bind(types_text(endpoint)?)
        .bind(endpoint.enabled)
        .bind(endpoint.secrets.current.to_text().expose_secret().to_owned())
        .bind(previous.as_ref().map(|s| s.expose_secret().to_owned()))
        .bind(until)
        .bind(micros(endpoint.created_at))
        .bind(micros(endpoint.updated_at))
        .bind(endpoint.failing_since.map(micros))
        .execute(&mut *conn)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some_and(|c| c == "webhook_endpoints.id") {
                Conflict::AlreadyExists {
                    entity: "webhook endpoint",
                }
                .into()
            } else {
                db(err)
            }
        })?;
    Ok(done.rows_affected())
}

#[async_trait]
impl WebhookStore for SqliteWebhookStore {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        write_endpoint(&mut tx, endpoint, true).await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE id = ?1 AND org_id = ?2"
        ))
        .bind(blob(id.as_uuid()))
        .bind(blob(org.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<WebhookEndpointId>,
        limit: usize,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE org_id = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
        ))
        .bind(blob(org.as_uuid()))
        .bind(after.map(|a| blob(a.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        if write_endpoint(&mut tx, endpoint, false).await? == 0 {
            return Err(not_found());
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn delete_endpoint(&self, org: OrgId, id: WebhookEndpointId, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = ?1 AND org_id = ?2")
            .bind(blob(id.as_uuid()))
            .bind(blob(org.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(not_found());
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        // A read first, which takes no write lock: an idle worker's look (every poll, every
        // wake-up) then leaves the writers alone. A delivery committed after this read is
        // found by the next look, which its commit's wake-up (or the poll) brings.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.state = 'pending' AND d.due_at <= ?1 AND e.enabled = 1 LIMIT 1",
        )
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = begin_write(&self.pool).await?;
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, due_at = ?2
             WHERE (endpoint_id, event_id) IN (
                 SELECT d.endpoint_id, d.event_id FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 WHERE d.state = 'pending' AND d.due_at <= ?1 AND e.enabled = 1
                 ORDER BY d.due_at LIMIT ?3)
             RETURNING endpoint_id, event_id, attempts",
        )
        .bind(micros(now))
        .bind(micros(lease_until))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let endpoint_id = WebhookEndpointId::from_uuid(uuid_at(row, "endpoint_id")?);
            let event_id: Vec<u8> = get(row, "event_id")?;
            let attempts: i64 = get(row, "attempts")?;
            // The endpoint and the event in one read.
            let row = sqlx::query(concat!(
                "SELECT ",
                endpoint_columns!(),
                ", (SELECT event FROM audit_events a WHERE a.org_id = webhook_endpoints.org_id AND a.id = ?2) AS event",
                " FROM webhook_endpoints WHERE id = ?1"
            ))
            .bind(blob(endpoint_id.as_uuid()))
            .bind(&event_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let endpoint = endpoint_from_row(&row)?;
            let text: Option<String> = row
                .try_get("event")
                .map_err(|_| BACKEND.corrupt("event in `audit_events`"))?;
            let text = text.ok_or_else(|| BACKEND.corrupt("a delivery's event is not in `audit_events`"))?;
            let event: AuditEvent =
                BACKEND.decode(|| "event in `audit_events`".to_owned(), serde_json::from_str(&text))?;
            out.push(Delivery {
                org: endpoint.org,
                endpoint: endpoint_id,
                event,
                attempt: BACKEND.decode(|| "delivery attempts".to_owned(), u32::try_from(attempts))?,
                url: endpoint.url,
                secrets: endpoint.secrets,
            });
        }
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn finish_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: NextStep,
        disable: Option<DisableRule>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let disabled = finish_on(&mut tx, attempt, next, disable.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        Ok(disabled)
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = begin_write(&self.pool).await?;
        let mut disabled = Vec::with_capacity(finished.len());
        for one in finished {
            match finish_on(&mut tx, &one.attempt, one.next, one.disable.as_ref()).await {
                Ok(one_disabled) => disabled.push(one_disabled),
                Err(err) => {
                    // Rolled back before the error is returned, so the rows the batch's
                    // earlier attempts locked are free when the caller claims again
                    // (a dropped transaction rolls back only when its connection is
                    // next used). A failed rollback ends the connection, which frees them too.
                    let _ = tx.rollback().await;
                    return Err(err);
                }
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(disabled)
    }

    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        after: Option<WebhookAttemptId>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, endpoint_id, event_id, attempt, attempted_at, status, http_status, latency_ms, excerpt
             FROM webhook_attempts WHERE endpoint_id = ?1 AND org_id = ?2 AND (?3 IS NULL OR id > ?3)
             ORDER BY id LIMIT ?4",
        )
        .bind(blob(endpoint.as_uuid()))
        .bind(blob(org.as_uuid()))
        .bind(after.map(|a| blob(a.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn replay(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        replay: Replay,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let exists = sqlx::query("SELECT 1 FROM webhook_endpoints WHERE id = ?1 AND org_id = ?2")
            .bind(blob(endpoint.as_uuid()))
            .bind(blob(org.as_uuid()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(not_found());
        }
        let done = match replay {
            Replay::Message(message) => sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, due_at = ?4
                 WHERE endpoint_id = ?1 AND org_id = ?2 AND event_id = ?3",
            )
            .bind(blob(endpoint.as_uuid()))
            .bind(blob(org.as_uuid()))
            .bind(blob(message.as_uuid()))
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?,
            Replay::Range { since, until } => sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, due_at = ?5
                 WHERE endpoint_id = ?1 AND org_id = ?2 AND state <> 'pending'
                   AND occurred_at >= ?3 AND occurred_at < ?4",
            )
            .bind(blob(endpoint.as_uuid()))
            .bind(blob(org.as_uuid()))
            .bind(micros(since))
            .bind(micros(until))
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?,
        };
        if done.rows_affected() == 0 && matches!(replay, Replay::Message(_)) {
            return Err(StoreError::NotFound {
                entity: "webhook_message",
            });
        }
        if done.rows_affected() > 0 {
            tx.fanned_out();
        }
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected())
    }
}

/// [`WebhookStore::finish_attempt`]'s statements on `tx`, inside the caller's transaction.
async fn finish_on(
    tx: &mut WriteTx,
    attempt: &DeliveryAttempt,
    next: NextStep,
    disable: Option<&DisableRule>,
) -> Result<bool, StoreError> {
    let endpoint = blob(attempt.endpoint.as_uuid());
    let org = blob(attempt.org.as_uuid());
    let event = blob(AuditEventId::from_uuid(attempt.message.as_uuid()).as_uuid());
    sqlx::query(
        "INSERT INTO webhook_attempts (id, org_id, endpoint_id, event_id, attempt, attempted_at, status,
                 http_status, latency_ms, excerpt)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
             WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = ?3 AND org_id = ?2)",
    )
    .bind(blob(attempt.id.as_uuid()))
    .bind(&org)
    .bind(&endpoint)
    .bind(&event)
    .bind(i64::from(attempt.attempt))
    .bind(micros(attempt.attempted_at))
    .bind(attempt.status.as_str())
    .bind(attempt.http_status.map(i64::from))
    .bind(i64::from(attempt.latency_ms))
    .bind(attempt.excerpt.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|err| {
        if unique_violation(&err).is_some_and(|c| c == "webhook_attempts.id") {
            Conflict::AlreadyExists {
                entity: "webhook attempt",
            }
            .into()
        } else {
            db(err)
        }
    })?;
    let (state, due) = match next {
        NextStep::Done => ("delivered", None),
        NextStep::RetryAt(at) => ("pending", Some(micros(at))),
        NextStep::GiveUp => ("failed", None),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET state = ?4, due_at = COALESCE(?5, due_at)
             WHERE endpoint_id = ?1 AND event_id = ?2 AND org_id = ?3 AND state = 'pending' AND attempts = ?6",
    )
    .bind(&endpoint)
    .bind(&event)
    .bind(&org)
    .bind(state)
    .bind(due)
    .bind(i64::from(attempt.attempt))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    let mut disabled = false;
    if next == NextStep::Done {
        sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?1 AND org_id = ?2")
            .bind(&endpoint)
            .bind(&org)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    } else {
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?3) WHERE id = ?1 AND org_id = ?2",
        )
        .bind(&endpoint)
        .bind(&org)
        .bind(micros(attempt.attempted_at))
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        if let Some(rule) = &disable {
            let done = sqlx::query(
                "UPDATE webhook_endpoints SET enabled = 0
                     WHERE id = ?1 AND org_id = ?2 AND enabled = 1 AND failing_since <= ?3",
            )
            .bind(&endpoint)
            .bind(&org)
            .bind(micros(rule.before))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            if done.rows_affected() > 0 {
                insert_event(tx, &rule.event).await?;
                disabled = true;
            }
        }
    }
    Ok(disabled)
}
