//! `PgJournal`: the diagnostics journal in Postgres.

use async_trait::async_trait;
use portal_core::diagnostics::{DiagnosticEvent, Journal, RequestQuery, TimelineQuery};
use portal_core::ids::OrgId;
use portal_core::store::StoreError;
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::BACKEND;
use super::codec::{db, get};

/// A [`Journal`] on a Postgres database migrated with [`migrate`](super::migrate).
///
/// An append is one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT (id) DO NOTHING` per
/// 5,000 events, in one transaction (an event already stored is skipped); reads decode the
/// event's JSON and filter and order on the indexed columns beside it:
/// `(request_id, at, id)`, `(org_id, at, id)`, `(actor, at, id)`, `(real_actor, at, id)`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::postgres::{self, PgJournal};
///
/// let pool = postgres::connect("postgres://localhost/portal").await?;
/// postgres::migrate(&pool).await?;
/// let journal = PgJournal::new(pool);
/// # let _ = journal;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgJournal {
    pool: PgPool,
}

impl PgJournal {
    /// A journal on `pool`, which must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool the journal runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Events per `INSERT`.
const ROWS_PER_INSERT: usize = 5000;

/// The filters of a timeline, by which of org and actor are given. Kinds are `$5`
/// (empty for every kind); the position after which to read is `($6, $7)`.
macro_rules! timeline_sql {
    ($filter:literal) => {
        concat!(
            "SELECT event FROM diagnostic_events WHERE ",
            $filter,
            " AND at >= $3 AND at < $4",
            " AND (cardinality($5::text[]) = 0 OR kind = ANY($5))",
            " AND (at, id) > ($6, $7) ORDER BY at, id LIMIT $8"
        )
    };
}

fn event_from_row(row: &PgRow) -> Result<DiagnosticEvent, StoreError> {
    let text: String = get(row, "event")?;
    BACKEND.decode(|| "diagnostic event".to_owned(), serde_json::from_str(&text))
}

#[async_trait]
impl Journal for PgJournal {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        for chunk in batch.chunks(ROWS_PER_INSERT) {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut ats = Vec::with_capacity(chunk.len());
            let mut requests = Vec::with_capacity(chunk.len());
            let mut orgs: Vec<Option<Uuid>> = Vec::with_capacity(chunk.len());
            let mut actors: Vec<Option<String>> = Vec::with_capacity(chunk.len());
            let mut real_actors: Vec<Option<String>> = Vec::with_capacity(chunk.len());
            let mut kinds = Vec::with_capacity(chunk.len());
            let mut texts = Vec::with_capacity(chunk.len());
            for event in chunk {
                ids.push(event.id.as_uuid());
                ats.push(event.at);
                requests.push(event.request_id.as_uuid());
                orgs.push(event.org.map(|org| org.as_uuid()));
                actors.push(event.actor.as_ref().map(ToString::to_string));
                real_actors.push(event.real_actor.as_ref().map(ToString::to_string));
                kinds.push(event.kind.as_str());
                texts.push(event.to_json().map_err(|err| BACKEND.failure(err))?);
            }
            sqlx::query(
                "INSERT INTO diagnostic_events (id, at, request_id, org_id, actor, real_actor, kind, event) \
                 SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], \
                 $6::text[], $7::text[], $8::text[]) ON CONFLICT (id) DO NOTHING",
            )
            .bind(ids)
            .bind(ats)
            .bind(requests)
            .bind(orgs)
            .bind(actors)
            .bind(real_actors)
            .bind(kinds)
            .bind(texts)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        batch.clear();
        Ok(())
    }

    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT event FROM diagnostic_events WHERE request_id = $1",
            " AND ($2::uuid IS NULL OR org_id = $2)",
            " AND ($3::timestamptz IS NULL OR (at, id) > ($3, $4::uuid))",
            " ORDER BY at, id LIMIT $5"
        ))
        .bind(query.request_id.as_uuid())
        .bind(query.org.map(|org| org.as_uuid()))
        .bind(query.after.map(|after| after.at))
        .bind(query.after.map(|after| after.id.as_uuid()))
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let statement = match (query.org.is_some(), query.actor.is_some()) {
            (true, true) => timeline_sql!("org_id = $1 AND (actor = $2 OR real_actor = $2)"),
            (true, false) => timeline_sql!("org_id = $1 AND $2::text IS NULL"),
            (false, true) => timeline_sql!("$1::uuid IS NULL AND (actor = $2 OR real_actor = $2)"),
            (false, false) => timeline_sql!("$1::uuid IS NULL AND $2::text IS NULL"),
        };
        let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
        let (after_at, after_id) = match query.after {
            Some(after) => (after.at, after.id.as_uuid()),
            // Every event in the window is after this position.
            None => (query.from - time::Duration::microseconds(1), Uuid::nil()),
        };
        let rows = sqlx::query(statement)
            .bind(query.org.map(|org| org.as_uuid()))
            .bind(query.actor.as_ref().map(ToString::to_string))
            .bind(query.from)
            .bind(query.until)
            .bind(kinds)
            .bind(after_at)
            .bind(after_id)
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn purge(&self, org: OrgId, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM diagnostic_events WHERE org_id = $1 AND at < $2")
            .bind(org.as_uuid())
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
