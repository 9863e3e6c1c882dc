//! `SqliteJournal`: the diagnostics journal in SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use portal_core::context::Principal;
use portal_core::diagnostics::{DiagnosticEvent, Journal, RequestQuery, TimelineQuery};
use portal_core::ids::{EventId, OrgId, RequestId};
use portal_core::store::StoreError;
use portal_core::time::to_unix_micros;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::BACKEND;
use super::codec::{WriteTx, begin_write, blob, db, get};

/// A [`Journal`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// Events are kept a row per request and org: the events of one request that share an org
/// and arrive in one append (a read's authentication, access decision and view, say),
/// their times at most a minute apart and with at most two actors and one real actor
/// among them, are one row of `diagnostic_event_rows` holding their JSON array. A read's
/// three events are written to five B-trees (the table, the request, org and actor
/// indexes, and the second actor's), where a row per event wrote each to four: what a
/// request costs the journal's writer is one row, not one per event.
///
/// The indexes are `(request_id, at, id)` (unique: the duplicate check of appends),
/// `(org_id, at, id)`, `(actor, at, id)`, and, where the row has them,
/// `(other_actor, at, id)` and `(real_actor, at, id)`, on each row's first event (`at`,
/// `id`); a row also keeps its last event's time and its kinds, so reads
/// choose rows by the indexes and then take the events that match from each row, in
/// journal order, page by page, until the answer is settled. An append is one transaction of
/// multi-row `INSERT` statements of a few fixed sizes, each prepared once per connection,
/// after one statement that finds which of the batch's requests have rows already (only
/// then can an event be stored already, and is left out).
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

/// The most time between a row's first and last event, in microseconds as the rows keep
/// times (a minute): an event later than that after the row's first starts a new row, so
/// a timeline from `from` finds every row with an event in its window among the rows
/// whose first event is at or after `from` less this (the indexes seek on a row's first
/// event). [`timeline_sql`] writes it as a literal; a test holds the two equal.
const ROW_SPAN_MICROS: i64 = 60_000_000;

/// The row counts of the journal's `INSERT` statements, largest first. The rows of an
/// append are cut into statements of these sizes, largest first: up to 8 rows is one
/// statement, more one statement per power of two they hold (plus one for what is left
/// under 8), so 170 rows are 128 + 32 + 8 + 2. Each statement's text is made once
/// ([`INSERTS`]), so each connection prepares it once and finds it in its statement cache
/// after.
const INSERT_ROWS: [usize; 13] = [256, 128, 64, 32, 16, 8, 7, 6, 5, 4, 3, 2, 1];

/// The parameters of one row: `at`, `id`, `last_at`, `request_id`, `org_id`, `actor`,
/// `other_actor`, `real_actor`, `kinds`, `events`, `body`. The largest statement has
/// 2,816, well under SQLite's 32,766.
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The `INSERT` of each of [`INSERT_ROWS`], in its order.
static INSERTS: LazyLock<Vec<(usize, String)>> = LazyLock::new(|| {
    INSERT_ROWS
        .iter()
        .map(|&rows| {
            let mut sql = String::from(
                "INSERT INTO diagnostic_event_rows \
                 (at, id, last_at, request_id, org_id, actor, other_actor, real_actor, kinds, events, body) VALUES ",
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

/// An event's place in the journal as the rows keep it: Unix microseconds, then the id.
type Key = (i64, EventId);

fn key(event: &DiagnosticEvent) -> Key {
    (to_unix_micros(event.at), event.id)
}

/// The events of an append as rows: grouped by request and org, each group in journal
/// order, cut where an event is more than [`ROW_SPAN_MICROS`] after its row's first or
/// would give the row a third actor or a second real actor (a row has an index entry for
/// each of its two actors and its real actor); an event given twice is kept once.
///
/// A read's events have two actors: its authentication is the edge's, its access decision
/// and view the user's; they are one row.
fn group(batch: &[DiagnosticEvent]) -> Vec<Vec<&DiagnosticEvent>> {
    let mut order: Vec<&DiagnosticEvent> = batch.iter().collect();
    order.sort_by_key(|event| (event.request_id, event.org, key(event)));
    order.dedup_by_key(|event| event.id);
    let mut groups: Vec<Vec<&DiagnosticEvent>> = Vec::new();
    for event in order {
        match groups.last_mut() {
            Some(row) if fits(row, event) => row.push(event),
            _ => groups.push(vec![event]),
        }
    }
    groups
}

/// Whether `event` may join `row`: the same request and org, within [`ROW_SPAN_MICROS`]
/// of its first event, and the row still has at most two actors and one real actor.
fn fits(row: &[&DiagnosticEvent], event: &DiagnosticEvent) -> bool {
    let Some(first) = row.first() else {
        return false;
    };
    if first.request_id != event.request_id
        || first.org != event.org
        || to_unix_micros(event.at) - to_unix_micros(first.at) > ROW_SPAN_MICROS
    {
        return false;
    }
    let (actors, real_actor) = principals(row);
    let actor_fits = match &event.actor {
        None => true,
        Some(actor) => actors.contains(&actor) || actors.len() < 2,
    };
    let real_fits = match (&event.real_actor, real_actor) {
        (Some(real), Some(held)) => real == held,
        _ => true,
    };
    actor_fits && real_fits
}

/// The distinct actors of `row` (at most two, in order of appearance) and its real actor.
fn principals<'a>(row: &[&'a DiagnosticEvent]) -> (Vec<&'a Principal>, Option<&'a Principal>) {
    let mut actors: Vec<&Principal> = Vec::with_capacity(2);
    let mut real_actor = None;
    for event in row {
        if let Some(actor) = &event.actor
            && !actors.contains(&actor)
        {
            actors.push(actor);
        }
        if real_actor.is_none() {
            real_actor = event.real_actor.as_ref();
        }
    }
    (actors, real_actor)
}

/// One row's values, as its `INSERT` binds them (owned: the driver keeps what it binds).
struct Row {
    at: i64,
    id: Vec<u8>,
    last_at: i64,
    request_id: Vec<u8>,
    org_id: Option<Vec<u8>>,
    actor: Option<String>,
    other_actor: Option<String>,
    real_actor: Option<String>,
    kinds: String,
    events: i64,
    body: String,
}

impl Row {
    /// The row of `events`: one group of [`group`], in journal order, not empty.
    fn new(events: &[&DiagnosticEvent]) -> Result<Self, StoreError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Err(BACKEND.corrupt("a journal row of no event"));
        };
        let mut kinds = String::from(" ");
        let mut body = Vec::with_capacity(events.len() * 640 + 2);
        body.push(b'[');
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            event.write_json(&mut body).map_err(|err| BACKEND.failure(err))?;
            let kind = event.kind.as_str();
            if !kinds.split(' ').any(|k| k == kind) {
                kinds.push_str(kind);
                kinds.push(' ');
            }
        }
        body.push(b']');
        let (actors, real_actor) = principals(events);
        Ok(Self {
            at: to_unix_micros(first.at),
            id: blob(first.id.as_uuid()),
            last_at: to_unix_micros(last.at),
            request_id: blob(first.request_id.as_uuid()),
            org_id: first.org.map(|org| blob(org.as_uuid())),
            actor: actors.first().map(ToString::to_string),
            other_actor: actors.get(1).map(ToString::to_string),
            real_actor: real_actor.map(ToString::to_string),
            kinds,
            events: i64::try_from(events.len()).unwrap_or(i64::MAX),
            // `serde_json` and RFC 3339 write UTF-8 only: this never fails.
            body: String::from_utf8(body).map_err(|err| BACKEND.failure(err))?,
        })
    }
}

/// The events of a row's `body`.
fn events_of(row: &SqliteRow) -> Result<Vec<DiagnosticEvent>, StoreError> {
    let text: String = get(row, "body")?;
    BACKEND.decode(|| "diagnostic event row".to_owned(), serde_json::from_str(&text))
}

/// The rows of `groups`, in their order.
fn rows_of(groups: &[Vec<&DiagnosticEvent>]) -> Result<Vec<Option<Row>>, StoreError> {
    groups.iter().map(|events| Row::new(events).map(Some)).collect()
}

/// Writes `rows`, the rows of `groups` ([`rows_of`]), in `tx`, leaving out every event
/// already stored.
///
/// An event can only be stored already in a row of its request whose time span meets its
/// group's. One statement asks for the spans of the rows of the batch's requests (an index
/// probe each, no body read): in the common case a request is new, or its stored rows end
/// before the group starts (a request's events arrive in time order), and nothing more is
/// read. Otherwise (an append retried, or overlapping) the rows that meet the group are
/// read and the group is written again without the events they hold, or not at all.
async fn insert(
    tx: &mut WriteTx,
    groups: &[Vec<&DiagnosticEvent>],
    mut rows: Vec<Option<Row>>,
) -> Result<(), StoreError> {
    let mut requests: Vec<RequestId> = groups.iter().filter_map(|g| g.first().map(|e| e.request_id)).collect();
    requests.sort_unstable();
    requests.dedup();
    let requests_json = serde_json::Value::from(
        requests
            .iter()
            .map(|r| r.as_uuid().simple().to_string())
            .collect::<Vec<_>>(),
    )
    .to_string();
    let spans: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT request_id, at, last_at FROM diagnostic_event_rows \
         WHERE request_id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(requests_json)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    if !spans.is_empty() {
        let mut stored: HashMap<Vec<u8>, Vec<(i64, i64)>> = HashMap::new();
        for (request, at, last_at) in spans {
            stored.entry(request).or_default().push((at, last_at));
        }
        for (events, row) in groups.iter().zip(rows.iter_mut()) {
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                continue;
            };
            let request = blob(first.request_id.as_uuid());
            let (from, until) = (to_unix_micros(first.at), to_unix_micros(last.at));
            let meets = stored
                .get(&request)
                .is_some_and(|spans| spans.iter().any(|(at, last_at)| *at <= until && *last_at >= from));
            if !meets {
                continue;
            }
            let met = sqlx::query(
                "SELECT body FROM diagnostic_event_rows WHERE request_id = ?1 AND at <= ?2 AND last_at >= ?3",
            )
            .bind(request)
            .bind(until)
            .bind(from)
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            let mut ids = HashSet::new();
            for stored_row in &met {
                ids.extend(events_of(stored_row)?.iter().map(|event| event.id));
            }
            let missing: Vec<&DiagnosticEvent> = events
                .iter()
                .copied()
                .filter(|event| !ids.contains(&event.id))
                .collect();
            *row = if missing.is_empty() {
                None
            } else {
                Some(Row::new(&missing)?)
            };
        }
    }
    let mut rows = rows.into_iter().flatten().collect::<Vec<_>>().into_iter();
    while let Some((count, sql)) = insert_for(rows.len()) {
        let mut insert = sqlx::query(sql);
        for row in rows.by_ref().take(count) {
            insert = insert
                .bind(row.at)
                .bind(row.id)
                .bind(row.last_at)
                .bind(row.request_id)
                .bind(row.org_id)
                .bind(row.actor)
                .bind(row.other_actor)
                .bind(row.real_actor)
                .bind(row.kinds)
                .bind(row.events)
                .bind(row.body);
        }
        insert.execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}

/// The events a read gathers from rows fetched in journal order (of their first events),
/// a page of rows at a time.
///
/// A row's events sort at or after its first event, so once a page of rows is read every
/// matching event before the last row's first event is known: when there are `limit` of
/// those, no later row can change the answer. Otherwise the next page is read after the
/// last row, twice as many rows as the page before. An event is stored once ([`insert`]);
/// one found twice would count once.
///
/// The first page is a quarter of `limit` rows (and two): a request's row holds a few
/// events (a read's three), so a page of 50 events of an org's timeline is read from
/// some 14 rows, not 51 rows decoded to keep 50 of their ~150 events; where rows hold one
/// event each, the pages after it double until they settle.
struct Pages {
    limit: usize,
    rows: usize,
    found: Vec<DiagnosticEvent>,
    seen: HashSet<EventId>,
}

impl Pages {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            rows: limit / 4 + 2,
            found: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Rows to read in the next page.
    fn page(&self) -> i64 {
        i64::try_from(self.rows).unwrap_or(i64::MAX)
    }

    /// Takes the events of `rows` (a page, in the order of their first events) that
    /// `keep` matches. `Some(after)`: read the next page after the row `after`; `None`:
    /// the answer is settled.
    fn take(
        &mut self,
        rows: &[SqliteRow],
        keep: impl Fn(&DiagnosticEvent) -> bool,
    ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        for row in rows {
            for event in events_of(row)? {
                if keep(&event) && self.seen.insert(event.id) {
                    self.found.push(event);
                }
            }
        }
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= self.page();
        let Some(last) = rows.last().filter(|_| full) else {
            return Ok(None);
        };
        let at: i64 = get(last, "at")?;
        let id: Vec<u8> = get(last, "id")?;
        let boundary = (at, event_id(&id)?);
        let settled = self.found.iter().filter(|event| key(event) < boundary).count();
        self.rows = self.rows.saturating_mul(2);
        Ok((settled < self.limit).then_some((at, id)))
    }

    /// The first `limit` events found, in journal order.
    fn finish(mut self) -> Vec<DiagnosticEvent> {
        self.found.sort_by_key(key);
        self.found.truncate(self.limit);
        self.found
    }
}

fn event_id(bytes: &[u8]) -> Result<EventId, StoreError> {
    Uuid::from_slice(bytes)
        .map(EventId::from_uuid)
        .map_err(|_| BACKEND.corrupt("a journal row's id is not 16 bytes"))
}

/// The filters of a timeline, by which of org and actor are given. The window is
/// `[?3, ?4)`; `?6` is the later of its start and the time of the position after which to
/// read: the rows read are those whose first event is before the window's end and at most
/// [`ROW_SPAN_MICROS`] before `?6` (the index seeks there, so a page from a cursor in the
/// middle of a window does not scan the rows before it), and whose last is at or after
/// `?6`. Kinds are a JSON array (`?5`), empty for every kind, matched against the row's
/// kinds; `(?7, ?8)` is the row after which the page starts.
macro_rules! timeline_sql {
    ($filter:literal) => {
        concat!(
            "SELECT at, id, body FROM diagnostic_event_rows WHERE ",
            $filter,
            " AND at >= ?6 - 60000000 AND at < ?4 AND last_at >= ?3",
            " AND (json_array_length(?5) = 0 OR EXISTS",
            " (SELECT 1 FROM json_each(?5) WHERE instr(kinds, ' ' || value || ' ') > 0))",
            " AND last_at >= ?6",
            " AND (?7 IS NULL OR (at, id) > (?7, ?8)) ORDER BY at, id LIMIT ?9"
        )
    };
}

#[async_trait]
impl Journal for SqliteJournal {
    async fn append(&self, batch: &mut Vec<DiagnosticEvent>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let groups = group(batch);
        // Encoded before the write turn is taken: the turn is held for the statements alone.
        let rows = rows_of(&groups)?;
        let mut tx = begin_write(&self.pool).await?;
        insert(&mut tx, &groups, rows).await?;
        tx.commit().await.map_err(db)?;
        drop(groups);
        batch.clear();
        Ok(())
    }

    async fn by_request(&self, query: &RequestQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let mut pages = Pages::new(query.limit);
        let mut after_row: Option<(i64, Vec<u8>)> = None;
        loop {
            let (row_at, row_id) = after_row.clone().unzip();
            let rows = sqlx::query(concat!(
                "SELECT at, id, body FROM diagnostic_event_rows WHERE request_id = ?1",
                " AND (?2 IS NULL OR org_id = ?2)",
                " AND (?3 IS NULL OR (last_at >= ?3 AND at >= ?3 - 60000000))",
                " AND (?4 IS NULL OR (at, id) > (?4, ?5))",
                " ORDER BY at, id LIMIT ?6"
            ))
            .bind(blob(query.request_id.as_uuid()))
            .bind(query.org.map(|org| blob(org.as_uuid())))
            .bind(query.after.map(|after| to_unix_micros(after.at)))
            .bind(row_at)
            .bind(row_id)
            .bind(pages.page())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            match pages.take(&rows, |event| query.matches(event))? {
                Some(next) => after_row = Some(next),
                None => break,
            }
        }
        Ok(pages.finish())
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<DiagnosticEvent>, StoreError> {
        let statement = match (query.org.is_some(), query.actor.is_some()) {
            (true, true) => timeline_sql!("org_id = ?1 AND (actor = ?2 OR other_actor = ?2 OR real_actor = ?2)"),
            (true, false) => timeline_sql!("org_id = ?1 AND ?2 IS NULL"),
            (false, true) => timeline_sql!("?1 IS NULL AND (actor = ?2 OR other_actor = ?2 OR real_actor = ?2)"),
            (false, false) => timeline_sql!("?1 IS NULL AND ?2 IS NULL"),
        };
        let kinds = serde_json::Value::from(query.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()).to_string();
        let from = to_unix_micros(query.from);
        let after_at = query.after.map_or(from, |after| to_unix_micros(after.at).max(from));
        let mut pages = Pages::new(query.limit);
        let mut after_row: Option<(i64, Vec<u8>)> = None;
        loop {
            let (row_at, row_id) = after_row.clone().unzip();
            let rows = sqlx::query(statement)
                .bind(query.org.map(|org| blob(org.as_uuid())))
                .bind(query.actor.as_ref().map(ToString::to_string))
                .bind(from)
                .bind(to_unix_micros(query.until))
                .bind(&kinds)
                .bind(after_at)
                .bind(row_at)
                .bind(row_id)
                .bind(pages.page())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            match pages.take(&rows, |event| query.matches(event))? {
                Some(next) => after_row = Some(next),
                None => break,
            }
        }
        Ok(pages.finish())
    }

    /// Deletes the org's rows that end before `before`, and writes those that straddle it
    /// again with their later events only.
    async fn purge(&self, org: OrgId, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        let org_id = blob(org.as_uuid());
        let before = to_unix_micros(before);
        let mut tx = begin_write(&self.pool).await?;
        let straddling = sqlx::query(
            "DELETE FROM diagnostic_event_rows WHERE org_id = ?1 AND at < ?2 AND last_at >= ?2 RETURNING body",
        )
        .bind(&org_id)
        .bind(before)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let removed: Vec<i64> =
            sqlx::query_scalar("DELETE FROM diagnostic_event_rows WHERE org_id = ?1 AND last_at < ?2 RETURNING events")
                .bind(&org_id)
                .bind(before)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let mut count: u64 = removed.iter().map(|n| u64::try_from(*n).unwrap_or(0)).sum();
        let mut kept = Vec::new();
        for row in &straddling {
            for event in events_of(row)? {
                if to_unix_micros(event.at) < before {
                    count += 1;
                } else {
                    kept.push(event);
                }
            }
        }
        let groups = group(&kept);
        insert(&mut tx, &groups, rows_of(&groups)?).await?;
        tx.commit().await.map_err(db)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_seek_back_one_row_span() {
        let sql = timeline_sql!("?1 IS NULL AND ?2 IS NULL");
        assert!(sql.contains(&format!("at >= ?6 - {ROW_SPAN_MICROS} ")), "{sql}");
    }
}
