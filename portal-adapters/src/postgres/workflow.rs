//! `PgWorkflowStore`: workflow instances, history, idempotency records and
//! delegations in Postgres, with each change's customer audit event.

use async_trait::async_trait;
use portal_core::context::{IdempotencyKey, Principal};
use portal_core::ids::{OrgId, RequestId, UserId, WorkflowId};
use portal_core::store::{Conflict, StoreError};
use portal_core::workflow::{
    Applied, CreateRecord, Delegation, EntryKind, HistoryEntry, IdempotencyRecord, Instance, ListFilter,
    TransitionRecord, WorkflowStore,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{db, get, stored_time};
use crate::sql::unique_violation;

/// A [`WorkflowStore`] on a Postgres database migrated with [`migrate`](super::migrate).
///
/// Every write is atomic at READ COMMITTED. [`apply`](WorkflowStore::apply) is one
/// statement, so one round trip and one commit: data-modifying CTEs update the instance
/// only at the expected version (`… WHERE version = $3 RETURNING id`) and insert the
/// history entry, the customer audit event with its webhook fan-out and
/// the idempotency record from that update's row, so they are written exactly when it is. Of two statements updating one row, the second
/// waits for the first, re-reads the row and updates nothing. The idempotency record's
/// primary key claims the key: an insert that collides with another transaction's
/// uncommitted key waits for it, and a collision with a committed one fails the whole
/// statement, which writes nothing. Only when nothing was written does a second
/// statement (at READ COMMITTED it sees what the first waited for) tell why, in the
/// port's order: the key's record (a replay, or [`Conflict::IdempotencyKeyReused`]),
/// then the version ([`Conflict::Version`], or not found). A keyed
/// [`create`](WorkflowStore::create) is one transaction that inserts the idempotency
/// record first (`ON CONFLICT DO NOTHING`), replaying or refusing a used key before it
/// writes anything.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use portal_adapters::postgres::{self, PgTenancyStore, PgWorkflowStore};
/// use portal_core::Portal;
/// use portal_core::workflow::catalog;
///
/// let pool = postgres::connect("postgres://portal@localhost/portal").await?;
/// postgres::migrate(&pool).await?;
/// let portal = Portal::builder()
///     .tenancy_store(Arc::new(PgTenancyStore::new(pool.clone())))
///     .workflow_store(Arc::new(PgWorkflowStore::new(pool)))
///     .workflow_definitions(catalog::all()?)
///     .build()?;
/// # let _ = portal;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgWorkflowStore {
    pool: PgPool,
}

impl PgWorkflowStore {
    /// A store on `pool`, whose connections must see the migrated tables on their
    /// `search_path`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A value that cannot be written: it does not serialize, or a number is out of range.
fn unwritable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend {
        backend: BACKEND.name(),
        source: Box::new(err),
    }
}

/// A value as a `JSONB` parameter. Serializing first turns a value that cannot be
/// serialized into an error here rather than inside the driver.
fn json<T: Serialize + ?Sized>(value: &T) -> Result<Json<serde_json::Value>, StoreError> {
    serde_json::to_value(value).map(Json).map_err(unwritable)
}

fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(unwritable)
}

// Decoding. Every stored value goes back through its domain type; a value that does not
// decode is `StoreError::Corrupt`, naming the column and the row.

fn json_at<T: DeserializeOwned>(row: &PgRow, column: &str, key: &dyn std::fmt::Display) -> Result<T, StoreError> {
    let Json(value): Json<serde_json::Value> = get(row, column)?;
    BACKEND.decode(|| format!("`{column}` of {key}"), serde_json::from_value(value))
}

fn principal_at(row: &PgRow, column: &str, key: &dyn std::fmt::Display) -> Result<Principal, StoreError> {
    let text: String = get(row, column)?;
    BACKEND.decode(|| format!("`{column}` of {key}"), text.parse::<Principal>())
}

fn u64_at(row: &PgRow, column: &str, key: &dyn std::fmt::Display) -> Result<u64, StoreError> {
    let value: i64 = get(row, column)?;
    BACKEND.decode(|| format!("`{column}` of {key}"), u64::try_from(value))
}

/// The columns of `workflow_instances` that [`instance_from_row`] reads, as a literal,
/// so statements that select them stay `&'static str` built with `concat!`.
macro_rules! instance_columns {
    () => {
        "id, org_id, definition, definition_version, state, version, assignee, payload, created_by, created_at, \
         updated_at, state_entered_at, due_at, votes"
    };
}

fn instance_from_row(row: &PgRow) -> Result<Instance, StoreError> {
    let id = WorkflowId::from_uuid(get(row, "id")?);
    let definition_version = u64_at(row, "definition_version", &id)?;
    let assignee: Option<Uuid> = get(row, "assignee")?;
    Ok(Instance {
        id,
        org: OrgId::from_uuid(get(row, "org_id")?),
        definition: get(row, "definition")?,
        definition_version: BACKEND.decode(
            || format!("`definition_version` of {id}"),
            u32::try_from(definition_version),
        )?,
        state: get(row, "state")?,
        version: u64_at(row, "version", &id)?,
        assignee: assignee.map(UserId::from_uuid),
        payload: json_at(row, "payload", &id)?,
        created_by: principal_at(row, "created_by", &id)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        state_entered_at: get(row, "state_entered_at")?,
        due_at: get(row, "due_at")?,
        votes: json_at(row, "votes", &id)?,
    })
}

fn history_from_row(row: &PgRow) -> Result<HistoryEntry, StoreError> {
    let id = WorkflowId::from_uuid(get(row, "instance_id")?);
    let version = u64_at(row, "version", &id)?;
    let key = format!("history entry {version} of {id}");
    let idempotency_key: Option<String> = get(row, "idempotency_key")?;
    Ok(HistoryEntry {
        version,
        kind: json_at::<EntryKind>(row, "kind", &key)?,
        transition: get(row, "transition")?,
        from: get(row, "from_state")?,
        to: get(row, "to_state")?,
        actor: principal_at(row, "actor", &key)?,
        at: get(row, "at")?,
        input: json_at(row, "input", &key)?,
        request_id: RequestId::from_uuid(get(row, "request_id")?),
        idempotency_key: idempotency_key
            .map(|text| BACKEND.decode(|| format!("`idempotency_key` of {key}"), IdempotencyKey::new(&text)))
            .transpose()?,
    })
}

fn idempotency_from_row(row: &PgRow) -> Result<IdempotencyRecord, StoreError> {
    let key_text: String = get(row, "idempotency_key")?;
    let what = format!("idempotency record `{key_text}`");
    let fingerprint: Vec<u8> = get(row, "fingerprint")?;
    Ok(IdempotencyRecord {
        principal: principal_at(row, "principal", &what)?,
        key: BACKEND.decode(|| format!("key of {what}"), IdempotencyKey::new(&key_text))?,
        fingerprint: BACKEND.decode(|| format!("fingerprint of {what}"), <[u8; 32]>::try_from(fingerprint))?,
        response: json_at(row, "response", &what)?,
        created_at: get(row, "created_at")?,
    })
}

fn delegation_from_row(row: &PgRow) -> Result<Delegation, StoreError> {
    Ok(Delegation {
        org: OrgId::from_uuid(get(row, "org_id")?),
        from: UserId::from_uuid(get(row, "from_user")?),
        to: UserId::from_uuid(get(row, "to_user")?),
        starts_at: get(row, "starts_at")?,
        ends_at: get(row, "ends_at")?,
        created_at: get(row, "created_at")?,
    })
}

async fn insert_history(
    conn: &mut PgConnection,
    org: OrgId,
    id: WorkflowId,
    entry: &HistoryEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor, \
         at, input, request_id, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id.as_uuid())
    .bind(int(entry.version)?)
    .bind(org.as_uuid())
    .bind(json(&entry.kind)?)
    .bind(entry.transition.as_str())
    .bind(entry.from.as_str())
    .bind(entry.to.as_str())
    .bind(entry.actor.to_string())
    .bind(stored_time(entry.at))
    .bind(json(&entry.input)?)
    .bind(entry.request_id.as_uuid())
    .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn find_idempotency_on(
    conn: &mut PgConnection,
    org: OrgId,
    principal: &Principal,
    key: &IdempotencyKey,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT principal, idempotency_key, fingerprint, response, created_at FROM workflow_idempotency
         WHERE org_id = $1 AND principal = $2 AND idempotency_key = $3",
    )
    .bind(org.as_uuid())
    .bind(principal.to_string())
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(idempotency_from_row).transpose()
}

/// Claims `record`'s key inside a transaction: stores the record, or answers the replay
/// of the same request committed before (the caller then writes nothing and rolls
/// back), or fails with `IdempotencyKeyReused`.
async fn complete_key(
    conn: &mut PgConnection,
    org: OrgId,
    record: &IdempotencyRecord,
) -> Result<Option<Applied>, StoreError> {
    // The insert is the lookup: it adds nothing when the key is taken, and waits while
    // another transaction holds the same key uncommitted.
    let inserted = sqlx::query(
        "INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(org.as_uuid())
    .bind(record.principal.to_string())
    .bind(record.key.as_str())
    .bind(record.fingerprint.as_slice())
    .bind(json(&record.response)?)
    .bind(stored_time(record.created_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if inserted.rows_affected() == 0 {
        // At READ COMMITTED this statement sees the record that made the insert do
        // nothing, committed before the insert returned.
        let stored = find_idempotency_on(conn, org, &record.principal, &record.key)
            .await?
            .ok_or_else(|| BACKEND.corrupt(format!("idempotency record `{}`", record.key.as_str())))?;
        return stored.replay_for(record).map(Some);
    }
    Ok(None)
}

/// The update of [`apply`](WorkflowStore::apply), and the customer audit event and its
/// webhook fan-out (as `audit::insert_event` writes it) written from its row, as CTEs;
/// [`APPLY`] and [`APPLY_WITH_KEY`] complete it with the history entry (and the
/// idempotency record).
macro_rules! apply_ctes {
    () => {
        "WITH updated AS (
             UPDATE workflow_instances SET definition = $4, definition_version = $5, state = $6, version = $7,
             assignee = $8, payload = $9, created_by = $10, created_at = $11, updated_at = $12,
             state_entered_at = $13, due_at = $14, votes = $15
             WHERE id = $1 AND org_id = $2 AND version = $3
             RETURNING id
         ), event AS (
             INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event)
             SELECT $26, $2, $27, $28, $29, $30, $31 FROM updated
             RETURNING id, org_id, action, occurred_at
         ), deliveries AS (
             INSERT INTO webhook_deliveries (endpoint_id, event_id, org_id, occurred_at, state, attempts, due_at)
             SELECT e.id, event.id, event.org_id, event.occurred_at, 'pending', 0, event.occurred_at
             FROM event JOIN webhook_endpoints e
               ON e.org_id = event.org_id AND e.enabled
              AND (cardinality(e.event_types) = 0 OR event.action = ANY (e.event_types))
             FOR KEY SHARE OF e
         )"
    };
}

/// The history entry's insert from the update's row, the statement that ends
/// [`APPLY`]'s and [`APPLY_WITH_KEY`]'s CTEs.
macro_rules! history_insert {
    () => {
        "INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor,
         at, input, request_id, idempotency_key)
         SELECT $1, $16, $2, $17, $18, $19, $20, $21, $22, $23, $24, $25 FROM updated"
    };
}

/// [`apply`](WorkflowStore::apply) without an idempotency key: one statement whose row
/// count (the history entry's) is 1 exactly when it wrote.
const APPLY: &str = concat!(apply_ctes!(), " ", history_insert!());

/// [`apply`](WorkflowStore::apply) with an idempotency key: [`APPLY`] and the record,
/// whose primary key fails the whole statement if the key is committed.
const APPLY_WITH_KEY: &str = concat!(
    apply_ctes!(),
    ", history AS (",
    history_insert!(),
    ")
     INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at)
     SELECT $2, $32, $33, $34, $35, $36 FROM updated"
);

#[async_trait]
impl WorkflowStore for PgWorkflowStore {
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError> {
        let instance = &record.instance;
        let mut tx = self.pool.begin().await.map_err(db)?;
        if let Some(idempotency) = &record.idempotency
            && let Some(replayed) = complete_key(&mut tx, instance.org, idempotency).await?
        {
            return Ok(replayed);
        }
        sqlx::query(
            "INSERT INTO workflow_instances (id, org_id, definition, definition_version, state, version, assignee, \
             payload, created_by, created_at, updated_at, state_entered_at, due_at, votes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(instance.id.as_uuid())
        .bind(instance.org.as_uuid())
        .bind(instance.definition.as_str())
        .bind(i64::from(instance.definition_version))
        .bind(instance.state.as_str())
        .bind(int(instance.version)?)
        .bind(instance.assignee.map(|user| user.as_uuid()))
        .bind(json(&instance.payload)?)
        .bind(instance.created_by.to_string())
        .bind(stored_time(instance.created_at))
        .bind(stored_time(instance.updated_at))
        .bind(stored_time(instance.state_entered_at))
        .bind(instance.due_at.map(stored_time))
        .bind(json(&instance.votes)?)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some_and(|name| name == "workflow_instances_pkey") {
                Conflict::AlreadyExists { entity: "workflow" }.into()
            } else {
                db(err)
            }
        })?;
        insert_history(&mut tx, instance.org, instance.id, &record.history).await?;
        insert_event(&mut tx, &record.event).await?;
        tx.commit().await.map_err(db)?;
        Ok(Applied::Committed(instance.clone()))
    }

    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM workflow_instances WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(instance_from_row).transpose()
    }

    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError> {
        let next = &change.next;
        let entry = &change.history;
        let statement = if change.idempotency.is_some() {
            APPLY_WITH_KEY
        } else {
            APPLY
        };
        let mut query = sqlx::query(statement)
            .bind(next.id.as_uuid())
            .bind(next.org.as_uuid())
            .bind(int(change.expected_version)?)
            .bind(next.definition.as_str())
            .bind(i64::from(next.definition_version))
            .bind(next.state.as_str())
            .bind(int(next.version)?)
            .bind(next.assignee.map(|user| user.as_uuid()))
            .bind(Json(&next.payload))
            .bind(next.created_by.to_string())
            .bind(stored_time(next.created_at))
            .bind(stored_time(next.updated_at))
            .bind(stored_time(next.state_entered_at))
            .bind(next.due_at.map(stored_time))
            .bind(Json(&next.votes))
            .bind(int(entry.version)?)
            .bind(Json(&entry.kind))
            .bind(entry.transition.as_str())
            .bind(entry.from.as_str())
            .bind(entry.to.as_str())
            .bind(entry.actor.to_string())
            .bind(stored_time(entry.at))
            .bind(Json(&entry.input))
            .bind(entry.request_id.as_uuid())
            .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str));
        let event = &change.event;
        let event_text =
            serde_json::to_string(event).map_err(|err| BACKEND.corrupt(format!("audit event {}: {err}", event.id)))?;
        query = query
            .bind(event.id.as_uuid())
            .bind(event.action.as_str())
            .bind(event.actor.id.as_str())
            .bind(stored_time(event.occurred_at))
            .bind(event.target_ids().collect::<Vec<_>>())
            .bind(event_text);
        if let Some(record) = &change.idempotency {
            query = query
                .bind(record.principal.to_string())
                .bind(record.key.as_str())
                .bind(record.fingerprint.as_slice())
                .bind(Json(&record.response))
                .bind(stored_time(record.created_at));
        }
        match query.execute(&self.pool).await {
            Ok(done) if done.rows_affected() > 0 => return Ok(Applied::Committed(next.clone())),
            // Nothing updated: a stale version, an unknown instance, or a committed key.
            Ok(_) => {}
            // The key is committed (by another request, or this one's twin on another
            // replica that got here first); the statement wrote nothing.
            Err(err) if unique_violation(&err).is_some_and(|name| name == "workflow_idempotency_pkey") => {}
            // The event's insert failed (a duplicate id, a refusing trigger): the statement
            // wrote nothing.
            Err(err) if unique_violation(&err).is_some_and(|name| name == "audit_events_pkey") => {
                return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
            }
            Err(err) => return Err(db(err)),
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        if let Some(record) = &change.idempotency
            && let Some(stored) = find_idempotency_on(&mut conn, next.org, &record.principal, &record.key).await?
        {
            return stored.replay_for(record);
        }
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM workflow_instances WHERE id = $1 AND org_id = $2")
                .bind(next.id.as_uuid())
                .bind(next.org.as_uuid())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        Err(match current {
            None => StoreError::NotFound { entity: "workflow" },
            Some(current) => Conflict::Version {
                expected: change.expected_version,
                current: BACKEND.decode(|| format!("`version` of {}", next.id), u64::try_from(current))?,
            }
            .into(),
        })
    }

    async fn find_idempotency(
        &self,
        org: OrgId,
        principal: &Principal,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        find_idempotency_on(&mut conn, org, principal, key).await
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &ListFilter,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<Instance>, StoreError> {
        // An empty definition list means every definition; it is bound as NULL.
        let definitions = (!filter.definitions.is_empty()).then_some(filter.definitions.as_slice());
        let rows = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM workflow_instances
             WHERE org_id = $1
               AND ($2::uuid IS NULL OR id > $2)
               AND ($3::text[] IS NULL OR definition = ANY($3))
               AND ($4::text IS NULL OR state = $4)
               AND ($5::uuid IS NULL OR assignee = $5)
               AND ($6::timestamptz IS NULL OR due_at <= $6)
             ORDER BY id
             LIMIT $7"
        ))
        .bind(org.as_uuid())
        .bind(after.map(|id| id.as_uuid()))
        .bind(definitions)
        .bind(filter.state.as_deref())
        .bind(filter.assignee.map(|user| user.as_uuid()))
        .bind(filter.due_at_or_before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(instance_from_row).collect()
    }

    async fn history(
        &self,
        org: OrgId,
        id: WorkflowId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance_id, version, kind, transition, from_state, to_state, actor, at, input, request_id, \
             idempotency_key FROM workflow_history WHERE instance_id = $1 AND org_id = $2 AND version > $3 \
             ORDER BY version LIMIT $4",
        )
        .bind(id.as_uuid())
        .bind(org.as_uuid())
        .bind(int(after.unwrap_or(0))?)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(history_from_row).collect()
    }

    async fn put_delegation(&self, delegation: &Delegation) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workflow_delegations (org_id, from_user, to_user, starts_at, ends_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (org_id, from_user, to_user) DO UPDATE
             SET starts_at = excluded.starts_at, ends_at = excluded.ends_at, created_at = excluded.created_at",
        )
        .bind(delegation.org.as_uuid())
        .bind(delegation.from.as_uuid())
        .bind(delegation.to.as_uuid())
        .bind(stored_time(delegation.starts_at))
        .bind(stored_time(delegation.ends_at))
        .bind(stored_time(delegation.created_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_delegation(&self, org: OrgId, from: UserId, to: UserId) -> Result<Option<Delegation>, StoreError> {
        let row = sqlx::query(
            "SELECT org_id, from_user, to_user, starts_at, ends_at, created_at FROM workflow_delegations
             WHERE org_id = $1 AND from_user = $2 AND to_user = $3",
        )
        .bind(org.as_uuid())
        .bind(from.as_uuid())
        .bind(to.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(delegation_from_row).transpose()
    }
}
