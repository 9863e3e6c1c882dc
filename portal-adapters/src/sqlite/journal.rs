//! `SqliteJournal`: the diagnostics journal in SQLite.

use std::sync::LazyLock;

use async_trait::async_trait;
use portal_core::diagnostics::{DiagnosticEvent, Journal, RequestQuery, TimelineQuery};
use portal_core::ids::OrgId;
use portal_core::store::StoreError;
use portal_core::time::to_unix_micros;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::BACKEND;
use super::codec::{begin_write, blob, db, get};

/// A [`Journal`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// An append is one transaction of multi-row `INSERT OR IGNORE` statements of a few fixed
/// sizes, each prepared once per connection (an event already stored is skipped: the
/// request index is unique on `(request_id, at, id)`);
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

/// The row counts of the journal's `INSERT` statements, largest first. A batch is cut
/// into statements of these sizes, largest first: up to 8 rows is one statement, a larger
/// batch one statement per power of two it holds (plus one for what is left under 8), so
/// a batch of 170 is 128 + 32 + 8 + 2. Each statement's text is made once
/// ([`INSERTS`]), so each connection prepares it once and finds it in its statement cache
/// after (one statement built per batch, of the batch's own size, was a text to build
/// and, at up to 500 distinct sizes, often a new statement to prepare).
const INSERT_ROWS: [usize; 13] = [256, 128, 64, 32, 16, 8, 7, 6, 5, 4, 3, 2, 1];

/// The parameters of one row: `id`, `at`, `request_id`, `org_id`, `actor`, `real_actor`,
/// `kind`, `event`. The largest statement has 2,048, well under SQLite's 32,766.
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";

/// The `INSERT` of each of [`INSERT_ROWS`], in its order.
static INSERTS: LazyLock<Vec<(usize, String)>> = LazyLock::new(|| {
    INSERT_ROWS
        .iter()
        .map(|&rows| {
            let mut sql = String::from(
                "INSERT OR IGNORE INTO diagnostic_events (id, at, request_id, org_id, actor, real_actor, kind, event) VALUES ",
            );
            for row in 0..rows {
                if row > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(ROW);
            }
            (rows, sql)
        })
        .collect()
});

/// The largest of [`INSERTS`] that `left` rows fill, if any row is left.
fn insert_for(left: usize) -> Option<(usize, &'static str)> {
    INSERTS
        .iter()
        .find(|(rows, _)| *rows <= left)
        .map(|(rows, sql)| (*rows, sql.as_str()))
}

/// One event's values, as its row binds them (owned: the driver keeps what it binds).
struct Row {
    id: Vec<u8>,
    at: i64,
    request_id: Vec<u8>,
    org_id: Option<Vec<u8>>,
    actor: Option<String>,
    real_actor: Option<String>,
    kind: &'static str,
    event: String,
}

impl Row {
    fn new(event: &DiagnosticEvent) -> Result<Self, StoreError> {
        Ok(Self {
            id: blob(event.id.as_uuid()),
            at: to_unix_micros(event.at),
            request_id: blob(event.request_id.as_uuid()),
            org_id: event.org.map(|org| blob(org.as_uuid())),
            actor: event.actor.as_ref().map(ToString::to_string),
            real_actor: event.real_actor.as_ref().map(ToString::to_string),
            kind: event.kind.as_str(),
            event: encode(event)?,
        })
    }
}

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
        // Encoded before the write turn is taken: the turn is held for the statements alone.
        let mut rows = batch.iter().map(Row::new).collect::<Result<Vec<_>, _>>()?.into_iter();
        let mut tx = begin_write(&self.pool).await?;
        while let Some((count, sql)) = insert_for(rows.len()) {
            let mut insert = sqlx::query(sql);
            for row in rows.by_ref().take(count) {
                insert = insert
                    .bind(row.id)
                    .bind(row.at)
                    .bind(row.request_id)
                    .bind(row.org_id)
                    .bind(row.actor)
                    .bind(row.real_actor)
                    .bind(row.kind)
                    .bind(row.event);
            }
            insert.execute(&mut *tx).await.map_err(db)?;
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
