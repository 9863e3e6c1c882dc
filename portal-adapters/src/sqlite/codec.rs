//! How the SQLite stores encode values and read rows: one copy for every store.
//!
//! Ids are 16-byte BLOBs, times INTEGER Unix microseconds; a value that does not decode is
//! `StoreError::Corrupt`, a driver error goes through `sql.rs`.

use portal_core::store::StoreError;
use portal_core::time::{from_unix_micros, to_unix_micros, truncate_to_micros};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;
use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedMutexGuard};
use uuid::Uuid;

use super::BACKEND;

/// Maps a driver error with no more specific meaning.
pub(super) fn db(err: sqlx::Error) -> StoreError {
    BACKEND.error(err)
}

/// Opens a write transaction holding SQLite's write lock from its first statement, after
/// this process's earlier writers on `pool` are done.
///
/// SQLite has one write lock per database and no queue for it: a connection that finds
/// it taken sleeps in its busy handler, 1, 2, 5, 10, 15 ms… between tries, and a writer
/// that lost the race twice has waited 3 ms for a lock held a fraction of that, 18 ms after
/// four (the tail of the HTTP transition in `docs/benchmarks.md`). So the writers of one
/// pool take turns in this process first, in arrival order, on an async lock held until
/// the transaction ends: a writer is woken the moment the one before it is done, and its
/// `BEGIN IMMEDIATE` finds the lock free (other processes, and single-statement writes
/// outside [`begin_write`], still meet the busy handler). A writer waits for its turn
/// at most the busy timeout; past it, it tries SQLite's lock as it is.
///
/// The turn is taken before a connection, so writers waiting for theirs hold none.
///
/// A commit also ran SQLite's automatic checkpoint when the WAL had grown past 1,000
/// pages: copying them into the database and syncing it, several milliseconds during which
/// the committing writer, still holding its turn, held up every writer behind it. So every
/// [`CHECKPOINT_EVERY`] commits, once its turn is given up, a writer starts a `PASSIVE`
/// checkpoint on another task (one at a time per pool), which writers do not wait for; the
/// WAL then rarely reaches SQLite's own threshold, which stays as the backstop.
pub(super) async fn begin_write(pool: &SqlitePool) -> Result<WriteTx, StoreError> {
    let queue = writers(pool);
    let turn = tokio::time::timeout(super::BUSY_TIMEOUT, queue.turn.clone().lock_owned())
        .await
        .ok();
    let tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    Ok(WriteTx {
        tx,
        turn,
        queue,
        pool: pool.clone(),
        fanned_out: false,
    })
}

/// Commits of [`begin_write`] between two checkpoints started off the writers' path.
pub(super) const CHECKPOINT_EVERY: u64 = 32;

/// A write transaction of [`begin_write`], holding its writer's turn: statements run on
/// `&mut *tx` (the connection), [`commit`](Self::commit) ends it, and dropping it rolls
/// back. The turn passes to the next writer when the transaction ends either way.
pub(super) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    // Declared after `tx`, so dropped after it: the rollback comes before the next turn.
    turn: Option<OwnedMutexGuard<()>>,
    queue: Arc<Writers>,
    pool: SqlitePool,
    /// Whether a statement of the transaction queued webhook deliveries.
    fanned_out: bool,
}

impl WriteTx {
    /// Notes that the transaction queued webhook deliveries: once it commits, the pool's
    /// [`deliveries`](delivery_wakeups) wake-up is notified.
    pub(super) fn fanned_out(&mut self) {
        self.fanned_out = true;
    }

    /// Commits the transaction, then gives the turn to the next writer, wakes the delivery
    /// worker if the transaction queued deliveries (see [`fanned_out`](Self::fanned_out)),
    /// and, every [`CHECKPOINT_EVERY`] commits, starts a checkpoint that nobody waits for.
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        let Self {
            tx,
            turn,
            queue,
            pool,
            fanned_out,
        } = self;
        tx.commit().await?;
        drop(turn);
        if fanned_out {
            // One stored permit: a worker busy with a claim looks again as soon as it is
            // done, and wake-ups that pile up meanwhile are one.
            queue.deliveries.notify_one();
        }
        let commits = queue.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if commits.is_multiple_of(CHECKPOINT_EVERY) && !queue.checkpointing.swap(true, Ordering::AcqRel) {
            tokio::spawn(async move {
                // A failed checkpoint changes nothing: the next one, or SQLite's own at
                // commit, copies the same pages.
                let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await;
                queue.checkpointing.store(false, Ordering::Release);
            });
        }
        Ok(())
    }

    /// Rolls the transaction back, then gives the turn to the next writer.
    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// One pool's writers: their turn, their commits, whether a checkpoint is running, and
/// the wake-up of the pool's delivery worker.
#[derive(Default)]
pub(super) struct Writers {
    turn: Arc<AsyncMutex<()>>,
    commits: AtomicU64,
    checkpointing: AtomicBool,
    deliveries: Arc<Notify>,
}

/// The [`Notify`] woken after each commit on `pool` (or a clone of it) in this process that
/// queued webhook deliveries; see `sqlite::webhook_wakeups`.
pub(super) fn delivery_wakeups(pool: &SqlitePool) -> Arc<Notify> {
    writers(pool).deliveries.clone()
}

/// The writers of each open pool, found by the pool's connect options (one `Arc` per pool,
/// shared by its clones); the entries of pools since dropped are swept out when a new
/// pool's entry is made.
type Queues = Vec<(Weak<SqliteConnectOptions>, Arc<Writers>)>;

static WRITERS: LazyLock<Mutex<Queues>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// The writers of `pool`.
fn writers(pool: &SqlitePool) -> Arc<Writers> {
    let options = pool.connect_options();
    let mut queues = WRITERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, queue)) = queues
        .iter()
        .find(|(known, _)| std::ptr::eq(known.as_ptr(), Arc::as_ptr(&options)))
    {
        return queue.clone();
    }
    queues.retain(|(known, _)| known.strong_count() > 0);
    let queue = Arc::new(Writers::default());
    queues.push((Arc::downgrade(&options), queue.clone()));
    queue
}

/// An id as stored.
pub(super) fn blob(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// A time as stored.
pub(super) fn micros(at: OffsetDateTime) -> i64 {
    to_unix_micros(at)
}

/// A time as it reads back from the store.
pub(super) fn stored_time(at: OffsetDateTime) -> OffsetDateTime {
    truncate_to_micros(at)
}

/// Reads a column, a decoding failure being `StoreError::Corrupt`.
pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    BACKEND.column(row, column)
}

/// Reads an id column.
pub(super) fn uuid_at(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let bytes: Vec<u8> = get(row, column)?;
    BACKEND.decode(|| format!("id in `{column}`"), Uuid::from_slice(&bytes))
}

/// Reads a time column of the row named by `key`.
pub(super) fn time_at(
    row: &SqliteRow,
    column: &str,
    key: &dyn std::fmt::Display,
) -> Result<OffsetDateTime, StoreError> {
    let value: i64 = get(row, column)?;
    from_unix_micros(value).ok_or_else(|| BACKEND.corrupt(format!("time in `{column}` of {key}")))
}
