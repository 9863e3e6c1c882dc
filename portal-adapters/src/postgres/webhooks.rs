//! `PgWebhookStore`: webhook endpoints, deliveries and the attempt log in Postgres, and
//! [`webhook_wakeups`], which wakes delivery workers on `LISTEN portal_webhooks`.
//!
//! Deliveries are fanned out by the outbox insert (`audit::insert_event`) in the event's
//! transaction; a statement trigger notifies `portal_webhooks` when it inserted any.
//! Several workers (replicas) claim together: a claim is one statement that locks due rows
//! with `FOR UPDATE SKIP LOCKED`, so two claims never take the same delivery.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::ids::{OrgId, WebhookAttemptId, WebhookEndpointId, WebhookMessageId};
use portal_core::store::{Conflict, StoreError};
use portal_core::webhooks::{
    AttemptStatus, Delivery, DeliveryAttempt, DisableRule, EndpointSecrets, EndpointUrl, EventTypes, FinishedAttempt,
    NextStep, Replay, WebhookEndpoint, WebhookSecret, WebhookStore,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{db, get, stored_time};
use crate::sql::unique_violation;

/// The channel the delivery trigger notifies.
pub const WEBHOOK_CHANNEL: &str = "portal_webhooks";

/// A [`WebhookStore`] on a Postgres database migrated with [`migrate`](super::migrate).
#[derive(Debug, Clone)]
pub struct PgWebhookStore {
    pool: PgPool,
}

impl PgWebhookStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A [`Notify`] woken whenever a transaction that fanned out deliveries commits (or a
/// replay queued some), fed by a task that listens on [`WEBHOOK_CHANNEL`] and listens again
/// after a lost connection (waking the worker once then, since a notification may have
/// been missed). The task ends when the returned `Notify` is dropped by every holder.
pub fn webhook_wakeups(pool: PgPool) -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let weak = Arc::downgrade(&notify);
    tokio::spawn(async move {
        loop {
            let Some(strong) = weak.upgrade() else { return };
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if listener.listen(WEBHOOK_CHANNEL).await.is_ok() {
                        strong.notify_one();
                        drop(strong);
                        while let Ok(Some(_)) = listener.try_recv().await.map(Some) {
                            let Some(strong) = weak.upgrade() else { return };
                            strong.notify_one();
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "webhook wake-up listener could not connect"),
            }
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        }
    });
    notify
}

/// The endpoint columns every read selects (prefixed `e.`).
macro_rules! endpoint_columns {
    () => {
        "e.id, e.org_id, e.url, e.description, e.event_types, e.enabled, e.secret, e.previous_secret,
         e.previous_until, e.created_at, e.updated_at, e.failing_since"
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

fn endpoint_from_row(row: &PgRow) -> Result<WebhookEndpoint, StoreError> {
    let id = WebhookEndpointId::from_uuid(get(row, "id")?);
    let url: String = get(row, "url")?;
    let types: Vec<String> = get(row, "event_types")?;
    let previous: Option<String> = get(row, "previous_secret")?;
    let previous_until: Option<OffsetDateTime> = get(row, "previous_until")?;
    let previous = match (previous, previous_until) {
        (Some(text), Some(until)) => Some((secret(text, id)?, until)),
        _ => None,
    };
    Ok(WebhookEndpoint {
        id,
        org: OrgId::from_uuid(get(row, "org_id")?),
        url: BACKEND.decode(|| format!("url of {id}"), EndpointUrl::from_stored(&url))?,
        description: get(row, "description")?,
        event_types: BACKEND.decode(|| format!("event types of {id}"), EventTypes::from_stored(&types))?,
        enabled: get(row, "enabled")?,
        secrets: EndpointSecrets {
            current: secret(get(row, "secret")?, id)?,
            previous,
        },
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        failing_since: get(row, "failing_since")?,
    })
}

fn attempt_from_row(row: &PgRow) -> Result<DeliveryAttempt, StoreError> {
    let id = WebhookAttemptId::from_uuid(get(row, "id")?);
    let status: String = get(row, "status")?;
    let http_status: Option<i32> = get(row, "http_status")?;
    let attempt: i32 = get(row, "attempt")?;
    let latency: i32 = get(row, "latency_ms")?;
    Ok(DeliveryAttempt {
        id,
        org: OrgId::from_uuid(get(row, "org_id")?),
        endpoint: WebhookEndpointId::from_uuid(get(row, "endpoint_id")?),
        message: WebhookMessageId::from_uuid(get(row, "event_id")?),
        attempt: BACKEND.decode(|| format!("attempt of {id}"), u32::try_from(attempt))?,
        attempted_at: get(row, "attempted_at")?,
        status: AttemptStatus::parse(&status).ok_or_else(|| BACKEND.corrupt(format!("status of {id}")))?,
        http_status: http_status
            .map(|s| BACKEND.decode(|| format!("http status of {id}"), u16::try_from(s)))
            .transpose()?,
        latency_ms: BACKEND.decode(|| format!("latency of {id}"), u32::try_from(latency))?,
        excerpt: get(row, "excerpt")?,
    })
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

async fn write_endpoint(conn: &mut PgConnection, endpoint: &WebhookEndpoint, create: bool) -> Result<u64, StoreError> {
    let statement = if create {
        "INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, enabled, secret,
             previous_secret, previous_until, created_at, updated_at, failing_since)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    } else {
        "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, enabled = $6, secret = $7,
             previous_secret = $8, previous_until = $9, updated_at = $11, failing_since = $12
         WHERE id = $1 AND org_id = $2 AND $10::timestamptz IS NOT NULL"
    };
    let (previous, until) = match &endpoint.secrets.previous {
        Some((secret, until)) => (Some(secret.to_text()), Some(stored_time(*until))),
        None => (None, None),
    };
    let done = sqlx::query(statement)
        .bind(endpoint.id.as_uuid())
        .bind(endpoint.org.as_uuid())
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_str())
        .bind(endpoint.event_types.names())
        .bind(endpoint.enabled)
        .bind(endpoint.secrets.current.to_text().expose_secret().to_owned())
        .bind(previous.as_ref().map(|s| s.expose_secret().to_owned()))
        .bind(until)
        .bind(stored_time(endpoint.created_at))
        .bind(stored_time(endpoint.updated_at))
        .bind(endpoint.failing_since.map(stored_time))
        .execute(&mut *conn)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some_and(|c| c == "webhook_endpoints_pkey") {
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
impl WebhookStore for PgWebhookStore {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        write_endpoint(&mut tx, endpoint, true).await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints e WHERE e.id = $1 AND e.org_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(org.as_uuid())
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
            " FROM webhook_endpoints e WHERE e.org_id = $1 AND ($2::uuid IS NULL OR e.id > $2) ORDER BY e.id LIMIT $3"
        ))
        .bind(org.as_uuid())
        .bind(after.map(|a| a.as_uuid()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if write_endpoint(&mut tx, endpoint, false).await? == 0 {
            return Err(not_found());
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn delete_endpoint(&self, org: OrgId, id: WebhookEndpointId, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND org_id = $2")
            .bind(id.as_uuid())
            .bind(org.as_uuid())
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
        let rows = sqlx::query(concat!(
            "WITH due AS (
                 SELECT d.endpoint_id, d.event_id FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 WHERE d.state = 'pending' AND d.due_at <= $1 AND e.enabled
                 ORDER BY d.due_at LIMIT $3
                 FOR UPDATE OF d SKIP LOCKED
             )
             UPDATE webhook_deliveries d SET attempts = d.attempts + 1, due_at = $2
             FROM due, webhook_endpoints e, audit_events a
             WHERE d.endpoint_id = due.endpoint_id AND d.event_id = due.event_id
               AND e.id = d.endpoint_id AND a.org_id = d.org_id AND a.id = d.event_id
             RETURNING d.attempts, a.event, ",
            endpoint_columns!()
        ))
        .bind(stored_time(now))
        .bind(stored_time(lease_until))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let endpoint = endpoint_from_row(row)?;
                let text: String = get(row, "event")?;
                let event: AuditEvent =
                    BACKEND.decode(|| "event in `audit_events`".to_owned(), serde_json::from_str(&text))?;
                let attempts: i32 = get(row, "attempts")?;
                Ok(Delivery {
                    org: endpoint.org,
                    endpoint: endpoint.id,
                    event,
                    attempt: BACKEND.decode(|| "delivery attempts".to_owned(), u32::try_from(attempts))?,
                    url: endpoint.url,
                    secrets: endpoint.secrets,
                })
            })
            .collect()
    }

    async fn finish_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: NextStep,
        disable: Option<DisableRule>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let disabled = finish_on(&mut tx, attempt, next, disable.as_ref()).await?;
        tx.commit().await.map_err(db)?;
        Ok(disabled)
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
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
             FROM webhook_attempts WHERE endpoint_id = $1 AND org_id = $2 AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .bind(endpoint.as_uuid())
        .bind(org.as_uuid())
        .bind(after.map(|a| a.as_uuid()))
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let exists = sqlx::query("SELECT 1 FROM webhook_endpoints WHERE id = $1 AND org_id = $2 FOR SHARE")
            .bind(endpoint.as_uuid())
            .bind(org.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(not_found());
        }
        let done = match replay {
            Replay::Message(message) => sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, due_at = $4
                 WHERE endpoint_id = $1 AND org_id = $2 AND event_id = $3",
            )
            .bind(endpoint.as_uuid())
            .bind(org.as_uuid())
            .bind(message.as_uuid())
            .bind(stored_time(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?,
            Replay::Range { since, until } => sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, due_at = $5
                 WHERE endpoint_id = $1 AND org_id = $2 AND state <> 'pending'
                   AND occurred_at >= $3 AND occurred_at < $4",
            )
            .bind(endpoint.as_uuid())
            .bind(org.as_uuid())
            .bind(stored_time(since))
            .bind(stored_time(until))
            .bind(stored_time(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?,
        };
        if done.rows_affected() == 0 && matches!(replay, Replay::Message(_)) {
            return Err(StoreError::NotFound {
                entity: "webhook_message",
            });
        }
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WEBHOOK_CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected())
    }
}

/// [`WebhookStore::finish_attempt`]'s statements on `tx`, inside the caller's transaction.
async fn finish_on(
    tx: &mut PgConnection,
    attempt: &DeliveryAttempt,
    next: NextStep,
    disable: Option<&DisableRule>,
) -> Result<bool, StoreError> {
    let (state, due) = match next {
        NextStep::Done => ("delivered", None),
        NextStep::RetryAt(at) => ("pending", Some(stored_time(at))),
        NextStep::GiveUp => ("failed", None),
    };
    // The attempt, the delivery's next step and the endpoint's failing state in one
    // statement.
    sqlx::query(
        "WITH logged AS (
                 INSERT INTO webhook_attempts (id, org_id, endpoint_id, event_id, attempt, attempted_at, status,
                     http_status, latency_ms, excerpt)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
                 WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $3 AND org_id = $2)
             ), moved AS (
                 UPDATE webhook_deliveries SET state = $11, due_at = COALESCE($12, due_at)
                 WHERE endpoint_id = $3 AND event_id = $4 AND org_id = $2 AND state = 'pending' AND attempts = $5
             )
             UPDATE webhook_endpoints
             SET failing_since = CASE WHEN $11 = 'delivered' THEN NULL ELSE COALESCE(failing_since, $6) END
             WHERE id = $3 AND org_id = $2",
    )
    .bind(attempt.id.as_uuid())
    .bind(attempt.org.as_uuid())
    .bind(attempt.endpoint.as_uuid())
    .bind(attempt.message.as_uuid())
    .bind(to_i32(attempt.attempt))
    .bind(stored_time(attempt.attempted_at))
    .bind(attempt.status.as_str())
    .bind(attempt.http_status.map(i32::from))
    .bind(to_i32(attempt.latency_ms))
    .bind(attempt.excerpt.as_str())
    .bind(state)
    .bind(due)
    .execute(&mut *tx)
    .await
    .map_err(|err| {
        if unique_violation(&err).is_some_and(|c| c == "webhook_attempts_pkey") {
            Conflict::AlreadyExists {
                entity: "webhook attempt",
            }
            .into()
        } else {
            db(err)
        }
    })?;
    let mut disabled = false;
    if next != NextStep::Done
        && let Some(rule) = &disable
    {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = FALSE
                 WHERE id = $1 AND org_id = $2 AND enabled AND failing_since <= $3",
        )
        .bind(attempt.endpoint.as_uuid())
        .bind(attempt.org.as_uuid())
        .bind(stored_time(rule.before))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() > 0 {
            insert_event(tx, &rule.event).await?;
            disabled = true;
        }
    }
    Ok(disabled)
}
