//! How the SQLite stores encode values and read rows: one copy for every store.
//!
//! Ids are 16-byte BLOBs, times INTEGER Unix microseconds; a value that does not decode is
//! `StoreError::Corrupt`, a driver error goes through `sql.rs`.

use portal_core::store::StoreError;
use portal_core::time::{from_unix_micros, to_unix_micros, truncate_to_micros};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

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
    let asked = Instant::now();
    let turn = tokio::time::timeout(super::BUSY_TIMEOUT, queue.turn.clone().lock_owned())
        .await
        .ok()
        .map(|guard| {
            let since = Instant::now();
            queue.stats.wait.add(since - asked);
            Turn {
                _guard: guard,
                since,
                queue: queue.clone(),
            }
        });
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
    turn: Option<Turn>,
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
        let started = Instant::now();
        let committed = tx.commit().await;
        queue.stats.commit.add(started.elapsed());
        committed?;
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

/// A writer's turn, held from the moment it is given until the transaction ends; its
/// drop passes the turn on and counts how long it was held.
struct Turn {
    _guard: OwnedMutexGuard<()>,
    since: Instant,
    queue: Arc<Writers>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.queue.stats.hold.add(self.since.elapsed());
    }
}

/// One pool's writers: their turn, their commits, whether a checkpoint is running, how
/// long turns were waited for and held, and the wake-up of the pool's delivery worker.
#[derive(Default)]
pub(super) struct Writers {
    turn: Arc<AsyncMutex<()>>,
    commits: AtomicU64,
    checkpointing: AtomicBool,
    deliveries: Arc<Notify>,
    stats: TurnStats,
}

/// The upper bounds (exclusive, in milliseconds) of a [`Durations`] histogram's buckets;
/// the last bucket holds everything from 32 ms up.
pub const TURN_BUCKETS_MS: [u64; 7] = [1, 2, 4, 8, 16, 32, u64::MAX];

/// A histogram of durations, by [`TURN_BUCKETS_MS`], with the longest one seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    /// How many durations fell in each bucket of [`TURN_BUCKETS_MS`].
    pub buckets: [u64; 7],
    /// The longest duration seen.
    pub max: Duration,
}

impl Durations {
    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The durations counted since `earlier` (a snapshot of the same histogram); the
    /// longest is this snapshot's, which may be older than `earlier`.
    #[must_use]
    pub fn since(&self, earlier: &Durations) -> Durations {
        let mut buckets = [0; 7];
        for (i, bucket) in buckets.iter_mut().enumerate() {
            *bucket = self.buckets[i].saturating_sub(earlier.buckets[i]);
        }
        Durations { buckets, max: self.max }
    }
}

/// [`Durations`] counted with atomics, by every writer of a pool.
#[derive(Default)]
struct AtomicDurations {
    buckets: [AtomicU64; 7],
    max_micros: AtomicU64,
}

impl AtomicDurations {
    fn add(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let millis = micros / 1000;
        let bucket = TURN_BUCKETS_MS
            .iter()
            .position(|&bound| millis < bound)
            .unwrap_or(TURN_BUCKETS_MS.len() - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Durations {
        let mut buckets = [0; 7];
        for (i, bucket) in buckets.iter_mut().enumerate() {
            *bucket = self.buckets[i].load(Ordering::Relaxed);
        }
        Durations {
            buckets,
            max: Duration::from_micros(self.max_micros.load(Ordering::Relaxed)),
        }
    }
}

#[derive(Default)]
struct TurnStats {
    wait: AtomicDurations,
    hold: AtomicDurations,
    commit: AtomicDurations,
}

/// How one pool's write transactions (begun with the crate's `begin_write`) took their
/// turns so far: how long each waited for its turn, held it (from being given the turn to
/// its commit or
/// rollback, `BEGIN IMMEDIATE` and the commit included), and spent in its `COMMIT`.
/// Counted always (three clock reads per write transaction), read with
/// [`write_turns`]; the HTTP benchmark prints them to find what makes a write's tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteTurns {
    /// Waits for the turn.
    pub wait: Durations,
    /// Turns held.
    pub hold: Durations,
    /// `COMMIT`s (a commit that runs SQLite's automatic checkpoint is among the long ones).
    pub commit: Durations,
}

impl WriteTurns {
    /// What was counted since `earlier`, a snapshot of the same pool.
    #[must_use]
    pub fn since(&self, earlier: &WriteTurns) -> WriteTurns {
        WriteTurns {
            wait: self.wait.since(&earlier.wait),
            hold: self.hold.since(&earlier.hold),
            commit: self.commit.since(&earlier.commit),
        }
    }
}

/// How the write transactions of `pool` (and its clones) took their turns so far.
pub fn write_turns(pool: &SqlitePool) -> WriteTurns {
    let stats = &writers(pool).stats;
    WriteTurns {
        wait: stats.wait.snapshot(),
        hold: stats.hold.snapshot(),
        commit: stats.commit.snapshot(),
    }
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
