//! `SqliteWorkflowStore`: workflow instances, history, idempotency records and
//! delegations in SQLite, with each change's customer audit event.

use async_trait::async_trait;
use portal_core::context::{IdempotencyKey, Principal};
use portal_core::ids::{OrgId, RequestId, UserId, WorkflowId};
use portal_core::store::{Conflict, StoreError};
use portal_core::time::from_unix_micros;
use portal_core::workflow::{
    Applied, CreateRecord, Delegation, EntryKind, HistoryEntry, IdempotencyRecord, Instance, ListFilter,
    TransitionRecord, WorkflowStore,
};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::BACKEND;
use super::audit::{encode_event, event_insert_error, insert_event};
use super::codec::{begin_write, blob, db, get, micros, time_at, uuid_at};
use crate::sql::unique_violation;

/// A [`WorkflowStore`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// Every write is one `BEGIN IMMEDIATE` transaction, so it commits entirely or not at
/// all, and writers take turns on SQLite's write lock. [`apply`](WorkflowStore::apply)
/// sends its writes as one batch of statements (one call to the connection's worker
/// thread instead of one per statement): the update of the instance at the expected
/// version (`… WHERE version = ?`), then the history entry, the
/// idempotency record and the customer audit event, each inserted only if the statement
/// before it wrote its row (`WHERE changes() = 1`), and last the event's webhook fan-out
/// (only if the event is there). The idempotency record's primary key refuses a
/// committed key; a failing event insert fails the batch, and the rollback takes the
/// change back. Only when nothing was written does it read, under the same write lock, why: the
/// key's record first (a replay, or [`Conflict::IdempotencyKeyReused`]), then the
/// version, as the port requires; the transaction then rolls back. A keyed
/// [`create`](WorkflowStore::create) inserts the idempotency record first
/// (`ON CONFLICT DO NOTHING`), replaying or refusing a used key before it writes anything.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use portal_adapters::sqlite::{self, SqliteTenancyStore, SqliteWorkflowStore};
/// use portal_core::Portal;
/// use portal_core::workflow::catalog;
///
/// let pool = sqlite::connect("sqlite://portal.db").await?;
/// sqlite::migrate(&pool).await?;
/// let portal = Portal::builder()
///     .tenancy_store(Arc::new(SqliteTenancyStore::new(pool.clone())))
///     .workflow_store(Arc::new(SqliteWorkflowStore::new(pool)))
///     .workflow_definitions(catalog::all()?)
///     .build()?;
/// # let _ = portal;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteWorkflowStore {
    pool: SqlitePool,
}

impl SqliteWorkflowStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &SqlitePool {
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

fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(unwritable)
}

fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(unwritable)
}

// Decoding. Every stored value goes back through its domain type; a value that does not
// decode is `StoreError::Corrupt`, naming the column and the row.

fn json_at<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
    key: &dyn std::fmt::Display,
) -> Result<T, StoreError> {
    let text: String = get(row, column)?;
    BACKEND.decode(|| format!("`{column}` of {key}"), serde_json::from_str(&text))
}

fn principal_at(row: &SqliteRow, column: &str, key: &dyn std::fmt::Display) -> Result<Principal, StoreError> {
    let text: String = get(row, column)?;
    BACKEND.decode(|| format!("`{column}` of {key}"), text.parse::<Principal>())
}

fn u64_at(row: &SqliteRow, column: &str, key: &dyn std::fmt::Display) -> Result<u64, StoreError> {
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

fn instance_from_row(row: &SqliteRow) -> Result<Instance, StoreError> {
    let id = WorkflowId::from_uuid(uuid_at(row, "id")?);
    let definition_version = u64_at(row, "definition_version", &id)?;
    let assignee: Option<Vec<u8>> = get(row, "assignee")?;
    let due_at: Option<i64> = get(row, "due_at")?;
    Ok(Instance {
        id,
        org: OrgId::from_uuid(uuid_at(row, "org_id")?),
        definition: get(row, "definition")?,
        definition_version: BACKEND.decode(
            || format!("`definition_version` of {id}"),
            u32::try_from(definition_version),
        )?,
        state: get(row, "state")?,
        version: u64_at(row, "version", &id)?,
        assignee: assignee
            .map(|bytes| BACKEND.decode(|| format!("`assignee` of {id}"), Uuid::from_slice(&bytes)))
            .transpose()?
            .map(UserId::from_uuid),
        payload: json_at(row, "payload", &id)?,
        created_by: principal_at(row, "created_by", &id)?,
        created_at: time_at(row, "created_at", &id)?,
        updated_at: time_at(row, "updated_at", &id)?,
        state_entered_at: time_at(row, "state_entered_at", &id)?,
        due_at: due_at
            .map(|value| from_unix_micros(value).ok_or_else(|| BACKEND.corrupt(format!("time in `due_at` of {id}"))))
            .transpose()?,
        votes: json_at(row, "votes", &id)?,
    })
}

fn history_from_row(row: &SqliteRow) -> Result<HistoryEntry, StoreError> {
    let id = WorkflowId::from_uuid(uuid_at(row, "instance_id")?);
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
        at: time_at(row, "at", &key)?,
        input: json_at(row, "input", &key)?,
        request_id: RequestId::from_uuid(uuid_at(row, "request_id")?),
        idempotency_key: idempotency_key
            .map(|text| BACKEND.decode(|| format!("`idempotency_key` of {key}"), IdempotencyKey::new(&text)))
            .transpose()?,
    })
}

fn idempotency_from_row(row: &SqliteRow) -> Result<IdempotencyRecord, StoreError> {
    let key_text: String = get(row, "idempotency_key")?;
    let what = format!("idempotency record `{key_text}`");
    let fingerprint: Vec<u8> = get(row, "fingerprint")?;
    Ok(IdempotencyRecord {
        principal: principal_at(row, "principal", &what)?,
        key: BACKEND.decode(|| format!("key of {what}"), IdempotencyKey::new(&key_text))?,
        fingerprint: BACKEND.decode(|| format!("fingerprint of {what}"), <[u8; 32]>::try_from(fingerprint))?,
        response: json_at(row, "response", &what)?,
        created_at: time_at(row, "created_at", &what)?,
    })
}

fn delegation_from_row(row: &SqliteRow) -> Result<Delegation, StoreError> {
    let org = OrgId::from_uuid(uuid_at(row, "org_id")?);
    let from = UserId::from_uuid(uuid_at(row, "from_user")?);
    let to = UserId::from_uuid(uuid_at(row, "to_user")?);
    let key = format!("delegation from {from} to {to} in {org}");
    Ok(Delegation {
        org,
        from,
        to,
        starts_at: time_at(row, "starts_at", &key)?,
        ends_at: time_at(row, "ends_at", &key)?,
        created_at: time_at(row, "created_at", &key)?,
    })
}

async fn insert_history(
    conn: &mut SqliteConnection,
    org: OrgId,
    id: WorkflowId,
    entry: &HistoryEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor, \
         at, input, request_id, idempotency_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .bind(blob(id.as_uuid()))
    .bind(int(entry.version)?)
    .bind(blob(org.as_uuid()))
    .bind(json(&entry.kind)?)
    .bind(entry.transition.as_str())
    .bind(entry.from.as_str())
    .bind(entry.to.as_str())
    .bind(entry.actor.to_string())
    .bind(micros(entry.at))
    .bind(json(&entry.input)?)
    .bind(blob(entry.request_id.as_uuid()))
    .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn find_idempotency_on(
    conn: &mut SqliteConnection,
    org: OrgId,
    principal: &Principal,
    key: &IdempotencyKey,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT principal, idempotency_key, fingerprint, response, created_at FROM workflow_idempotency
         WHERE org_id = ?1 AND principal = ?2 AND idempotency_key = ?3",
    )
    .bind(blob(org.as_uuid()))
    .bind(principal.to_string())
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(idempotency_from_row).transpose()
}

/// Claims `record`'s key inside a write transaction: stores the record, or answers the
/// replay of the same request committed before (the caller then writes nothing), or
/// fails with `IdempotencyKeyReused`.
async fn complete_key(
    conn: &mut SqliteConnection,
    org: OrgId,
    record: &IdempotencyRecord,
) -> Result<Option<Applied>, StoreError> {
    // The insert is the lookup: it adds nothing when the key is taken, and the write
    // lock keeps anyone else from taking it meanwhile.
    let inserted = sqlx::query(
        "INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )
    .bind(blob(org.as_uuid()))
    .bind(record.principal.to_string())
    .bind(record.key.as_str())
    .bind(record.fingerprint.as_slice())
    .bind(json(&record.response)?)
    .bind(micros(record.created_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if inserted.rows_affected() == 0 {
        let stored = find_idempotency_on(conn, org, &record.principal, &record.key)
            .await?
            .ok_or_else(|| BACKEND.corrupt(format!("idempotency record `{}`", record.key.as_str())))?;
        return stored.replay_for(record).map(Some);
    }
    Ok(None)
}

/// The statements of [`apply`](WorkflowStore::apply) without an idempotency key, sent as
/// one batch: each insert writes only if the statement before it wrote one row, so the
/// batch writes all or nothing of its rows and its row count is 0 exactly when it wrote
/// nothing.
macro_rules! apply_statements {
    () => {
        "UPDATE workflow_instances SET definition = ?, definition_version = ?, state = ?, version = ?, assignee = ?,          payload = ?, created_by = ?, created_at = ?, updated_at = ?, state_entered_at = ?, due_at = ?, votes = ?          WHERE id = ? AND org_id = ? AND version = ?;
         INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor,          at, input, request_id, idempotency_key) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1;"
    };
}

/// The outbox statements that end both batches: the customer audit event, inserted only
/// if the statement before it wrote its row, then the webhook fan-out (a pending delivery
/// per enabled endpoint of the org that takes the action, as `audit::insert_event`
/// writes), only if the event was inserted.
macro_rules! outbox_statements {
    () => {
        "
         INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event)          SELECT ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1;
         INSERT INTO webhook_deliveries (endpoint_id, event_id, org_id, occurred_at, state, attempts, due_at)          SELECT id, ?, org_id, ?, 'pending', 0, ? FROM webhook_endpoints          WHERE org_id = ? AND enabled = 1          AND (event_types = '[]' OR EXISTS (SELECT 1 FROM json_each(webhook_endpoints.event_types) WHERE value = ?))          AND EXISTS (SELECT 1 FROM audit_events WHERE org_id = ? AND id = ?);"
    };
}

/// [`apply_statements!`] and [`outbox_statements!`] as a string.
const APPLY: &str = concat!(apply_statements!(), outbox_statements!());

/// [`apply_statements!`], the idempotency record, whose primary key stops the batch with
/// an error if the key is committed, and [`outbox_statements!`].
const APPLY_WITH_KEY: &str = concat!(
    apply_statements!(),
    "
     INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at)      SELECT ?, ?, ?, ?, ?, ? WHERE changes() = 1;",
    outbox_statements!()
);

#[async_trait]
impl WorkflowStore for SqliteWorkflowStore {
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError> {
        let instance = &record.instance;
        let mut tx = begin_write(&self.pool).await?;
        if let Some(idempotency) = &record.idempotency
            && let Some(replayed) = complete_key(&mut tx, instance.org, idempotency).await?
        {
            return Ok(replayed);
        }
        sqlx::query(
            "INSERT INTO workflow_instances (id, org_id, definition, definition_version, state, version, assignee, \
             payload, created_by, created_at, updated_at, state_entered_at, due_at, votes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .bind(blob(instance.id.as_uuid()))
        .bind(blob(instance.org.as_uuid()))
        .bind(instance.definition.as_str())
        .bind(i64::from(instance.definition_version))
        .bind(instance.state.as_str())
        .bind(int(instance.version)?)
        .bind(instance.assignee.map(|user| blob(user.as_uuid())))
        .bind(json(&instance.payload)?)
        .bind(instance.created_by.to_string())
        .bind(micros(instance.created_at))
        .bind(micros(instance.updated_at))
        .bind(micros(instance.state_entered_at))
        .bind(instance.due_at.map(micros))
        .bind(json(&instance.votes)?)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if unique_violation(&err).is_some_and(|columns| columns == "workflow_instances.id") {
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
            " FROM workflow_instances WHERE id = ?1 AND org_id = ?2"
        ))
        .bind(blob(id.as_uuid()))
        .bind(blob(org.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(instance_from_row).transpose()
    }

    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError> {
        let next = &change.next;
        let entry = &change.history;
        let id = blob(next.id.as_uuid());
        let org = blob(next.org.as_uuid());
        let statements = if change.idempotency.is_some() {
            APPLY_WITH_KEY
        } else {
            APPLY
        };
        // The parameters are anonymous (`?`), bound in the order they appear across the
        // statements of the batch.
        let mut query = sqlx::query(statements)
            .bind(next.definition.as_str())
            .bind(i64::from(next.definition_version))
            .bind(next.state.as_str())
            .bind(int(next.version)?)
            .bind(next.assignee.map(|user| blob(user.as_uuid())))
            .bind(json(&next.payload)?)
            .bind(next.created_by.to_string())
            .bind(micros(next.created_at))
            .bind(micros(next.updated_at))
            .bind(micros(next.state_entered_at))
            .bind(next.due_at.map(micros))
            .bind(json(&next.votes)?)
            .bind(id.clone())
            .bind(org.clone())
            .bind(int(change.expected_version)?)
            .bind(id)
            .bind(int(entry.version)?)
            .bind(org.clone())
            .bind(json(&entry.kind)?)
            .bind(entry.transition.as_str())
            .bind(entry.from.as_str())
            .bind(entry.to.as_str())
            .bind(entry.actor.to_string())
            .bind(micros(entry.at))
            .bind(json(&entry.input)?)
            .bind(blob(entry.request_id.as_uuid()))
            .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str));
        if let Some(record) = &change.idempotency {
            query = query
                .bind(org)
                .bind(record.principal.to_string())
                .bind(record.key.as_str())
                .bind(record.fingerprint.as_slice())
                .bind(json(&record.response)?)
                .bind(micros(record.created_at));
        }
        let event = &change.event;
        let (event_text, targets) = encode_event(event)?;
        let event_id = blob(event.id.as_uuid());
        let event_org = blob(event.org.as_uuid());
        query = query
            .bind(event_id.clone())
            .bind(event_org.clone())
            .bind(event.action.as_str())
            .bind(event.actor.id.as_str())
            .bind(micros(event.occurred_at))
            .bind(targets)
            .bind(event_text)
            .bind(event_id.clone())
            .bind(micros(event.occurred_at))
            .bind(micros(event.occurred_at))
            .bind(event_org.clone())
            .bind(event.action.as_str())
            .bind(event_org)
            .bind(event_id);
        let mut tx = begin_write(&self.pool).await?;
        match query.execute(&mut *tx).await {
            Ok(done) if done.rows_affected() > 0 => {
                // Each statement before the fan-out wrote one row (the instance, its history
                // entry, the idempotency record if keyed, the event); the rest are deliveries.
                let rows = if change.idempotency.is_some() { 4 } else { 3 };
                if done.rows_affected() > rows {
                    tx.fanned_out();
                }
                tx.commit().await.map_err(db)?;
                return Ok(Applied::Committed(next.clone()));
            }
            // Nothing updated: a stale version, an unknown instance, or a committed key.
            Ok(_) => {}
            // The key is committed: the batch stopped there, and the rollback below takes
            // back what it wrote.
            Err(err) if unique_violation(&err).is_some_and(|columns| columns.starts_with("workflow_idempotency.")) => {}
            // The event's insert failed (a duplicate id, a refusing trigger): the rollback
            // takes the change back with it.
            Err(err) => return Err(event_insert_error(err)),
        }
        if let Some(record) = &change.idempotency
            && let Some(stored) = find_idempotency_on(&mut tx, next.org, &record.principal, &record.key).await?
        {
            return stored.replay_for(record);
        }
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM workflow_instances WHERE id = ?1 AND org_id = ?2")
                .bind(blob(next.id.as_uuid()))
                .bind(blob(next.org.as_uuid()))
                .fetch_optional(&mut *tx)
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
        let definitions = if filter.definitions.is_empty() {
            None
        } else {
            Some(json(&filter.definitions)?)
        };
        let rows = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM workflow_instances
             WHERE org_id = ?1
               AND (?2 IS NULL OR id > ?2)
               AND (?3 IS NULL OR definition IN (SELECT value FROM json_each(?3)))
               AND (?4 IS NULL OR state = ?4)
               AND (?5 IS NULL OR assignee = ?5)
               AND (?6 IS NULL OR due_at <= ?6)
             ORDER BY id
             LIMIT ?7"
        ))
        .bind(blob(org.as_uuid()))
        .bind(after.map(|id| blob(id.as_uuid())))
        .bind(definitions)
        .bind(filter.state.as_deref())
        .bind(filter.assignee.map(|user| blob(user.as_uuid())))
        .bind(filter.due_at_or_before.map(micros))
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
             idempotency_key FROM workflow_history WHERE instance_id = ?1 AND org_id = ?2 AND version > ?3 \
             ORDER BY version LIMIT ?4",
        )
        .bind(blob(id.as_uuid()))
        .bind(blob(org.as_uuid()))
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org_id, from_user, to_user) DO UPDATE
             SET starts_at = excluded.starts_at, ends_at = excluded.ends_at, created_at = excluded.created_at",
        )
        .bind(blob(delegation.org.as_uuid()))
        .bind(blob(delegation.from.as_uuid()))
        .bind(blob(delegation.to.as_uuid()))
        .bind(micros(delegation.starts_at))
        .bind(micros(delegation.ends_at))
        .bind(micros(delegation.created_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_delegation(&self, org: OrgId, from: UserId, to: UserId) -> Result<Option<Delegation>, StoreError> {
        let row = sqlx::query(
            "SELECT org_id, from_user, to_user, starts_at, ends_at, created_at FROM workflow_delegations
             WHERE org_id = ?1 AND from_user = ?2 AND to_user = ?3",
        )
        .bind(blob(org.as_uuid()))
        .bind(blob(from.as_uuid()))
        .bind(blob(to.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(delegation_from_row).transpose()
    }
}
