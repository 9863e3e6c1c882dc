//! `SqliteJournal`: the diagnostics journal in SQLite.

use async_trait::async_trait;
use portal_core::diagnostics::{DiagnosticEvent, Journal, RequestQuery, TimelineQuery};
use portal_core::ids::OrgId;
use portal_core::store::StoreError;
use portal_core::time::to_unix_micros;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use super::BACKEND;
use super::codec::{begin_write, blob, db, get};

/// A [`Journal`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// An append is one transaction of multi-row `INSERT OR IGNORE` statements (an event
/// already stored is skipped: the request index is unique on `(request_id, at, id)`);
/// reads decode the event's JSON and filter and order on the indexed columns beside it:
/// `(request_id, at, id)`, `(org_id, at, id)`, `(actor, at, id)`, `(real_actor, at, id)`.
///
/// The pool may be the stores' own (migrated with [`migrate`](super::migrate)) or a
/// database of the journal's own (migrated with
/// [`migrate_journal`](super::migrate_journal)), which keeps the journal's commits off
/// the stores' write turns and page caches.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::sqlite::{self, SqliteJournal};
///
/// let pool = sqlite::connect("sqlite://portal.db").await?;
/// sqlite::migrate(&pool).await?;
/// let journal = SqliteJournal::new(pool);
/// # let _ = journal;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteJournal {
    pool: SqlitePool,
}

impl SqliteJournal {
    /// A journal on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the journal runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Rows per `INSERT`: 8 parameters each, well under SQLite's 32,766 variables.
const ROWS_PER_INSERT: usize = 1000;

/// The columns every read selects.
macro_rules! columns {
    () => {
        "event"
    };
}

/// The filters of a timeline, by which of org and actor are given. Kinds are a JSON
/// array (`?5`), empty for every kind; the position after which to read is `(?6, ?7)`.
macro_rules! timeline_sql {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM diagnostic_events WHERE ",
            $filter,
            " AND at >= ?3 AND at < ?4",
            " AND (json_array_length(?5) = 0 OR kind IN (SELECT value FROM json_each(?5)))",
            " AND (at, id) > (?6, ?7) ORDER BY at, id LIMIT ?8"
        )
    };
}

fn event_from_row(row: &SqliteRow) -> Result<DiagnosticEvent, StoreError> {
    let text: String = get(row, "event")?;
    BACKEND.decode(|| "diagnostic event".to_owned(), serde_json::from_str(&text))
}

fn encode(event: &DiagnosticEvent) -> Result<String, StoreError> {
    event.to_json().map_err(|err| StoreError::Backend {
        backend: BACKEND.name(),
        source: Box::new(err),
    })
}

#[async_trait]
impl Journal for SqliteJournal {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let events = &batch[..];
        let encoded: Vec<String> = events.iter().map(encode).collect::<Result<_, _>>()?;
        let mut tx = begin_write(&self.pool).await?;
        for (chunk, texts) in events.chunks(ROWS_PER_INSERT).zip(encoded.chunks(ROWS_PER_INSERT)) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO diagnostic_events (id, at, request_id, org_id, actor, real_actor, kind, event) ",
            );
            insert.push_values(chunk.iter().zip(texts), |mut row, (event, text)| {
                row.push_bind(blob(event.id.as_uuid()))
                    .push_bind(to_unix_micros(event.at))
                    .push_bind(blob(event.request_id.as_uuid()))
                    .push_bind(event.org.map(|org| blob(org.as_uuid())))
                    .push_bind(event.actor.as_ref().map(ToString::to_string))
                    .push_bind(event.real_actor.as_ref().map(ToString::to_string))
                    .push_bind(event.kind.as_str())
                    .push_bind(text.as_str());
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        batch.clear();
        Ok(())
    }

    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM diagnostic_events WHERE request_id = ?1",
            " AND (?2 IS NULL OR org_id = ?2)",
            " AND (?3 IS NULL OR (at, id) > (?3, ?4))",
            " ORDER BY at, id LIMIT ?5"
        ))
        .bind(blob(query.request_id.as_uuid()))
        .bind(query.org.map(|org| blob(org.as_uuid())))
        .bind(query.after.map(|after| to_unix_micros(after.at)))
        .bind(query.after.map(|after| blob(after.id.as_uuid())))
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let statement = match (query.org.is_some(), query.actor.is_some()) {
            (true, true) => timeline_sql!("org_id = ?1 AND (actor = ?2 OR real_actor = ?2)"),
            (true, false) => timeline_sql!("org_id = ?1 AND ?2 IS NULL"),
            (false, true) => timeline_sql!("?1 IS NULL AND (actor = ?2 OR real_actor = ?2)"),
            (false, false) => timeline_sql!("?1 IS NULL AND ?2 IS NULL"),
        };
        let kinds = serde_json::Value::from(query.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()).to_string();
        let (after_at, after_id) = match query.after {
            Some(after) => (to_unix_micros(after.at), blob(after.id.as_uuid())),
            // Every event in the window is after this position.
            None => (to_unix_micros(query.from) - 1, blob(Uuid::nil())),
        };
        let rows = sqlx::query(statement)
            .bind(query.org.map(|org| blob(org.as_uuid())))
            .bind(query.actor.as_ref().map(ToString::to_string))
            .bind(to_unix_micros(query.from))
            .bind(to_unix_micros(query.until))
            .bind(kinds)
            .bind(after_at)
            .bind(after_id)
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn purge(&self, org: OrgId, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM diagnostic_events WHERE org_id = ?1 AND at < ?2")
            .bind(blob(org.as_uuid()))
            .bind(to_unix_micros(before))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
