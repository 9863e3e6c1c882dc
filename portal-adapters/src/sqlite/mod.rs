//! The SQLite stores: the embedded default, on a file or in memory.
//!
//! Ids are kept as 16-byte BLOBs and times as INTEGER Unix microseconds, so values read
//! back equal to the values written. Every write runs in a transaction opened with
//! `BEGIN IMMEDIATE`: SQLite serializes writers, and taking the write lock up front
//! means a transaction that reads before it writes never fails half-way with
//! `SQLITE_BUSY_SNAPSHOT`. Within one process the transactions of a pool take turns at
//! the write lock in arrival order, each woken as the one before it ends, instead of
//! polling for it in SQLite's busy handler (whose sleeps of 1, 2, 5, 10 ms made the
//! tail of every contended write); a writer from elsewhere that finds the lock taken
//! waits up to the connection's busy timeout.
//!
//! ```no_run
//! # async fn run() -> Result<(), portal_core::store::StoreError> {
//! use portal_adapters::sqlite::{self, SqliteTenancyStore};
//!
//! let pool = sqlite::connect("sqlite://portal.db").await?;
//! sqlite::migrate(&pool).await?;
//! let store = SqliteTenancyStore::new(pool);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```

mod audit;
mod codec;
mod external_identity;
mod idempotency;
mod identity;
mod journal;
mod passkey;
mod policy;
mod scim;
mod support;
mod tenancy;
mod webhooks;
mod workflow;

use std::str::FromStr;
use std::time::Duration;

use portal_core::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::sql::Backend;

pub use audit::SqliteAuditLog;
pub use codec::{Durations, TURN_BUCKETS_MS, WriteTurns, write_turns};
pub use external_identity::SqliteExternalIdentityStore;
pub use idempotency::SqliteIdempotencyStore;
pub use identity::SqliteIdentityStore;
pub use journal::SqliteJournal;
pub use policy::SqlitePolicyStore;
pub use scim::SqliteScimStore;
pub use sqlx::SqlitePool;
pub use support::SqliteSupportGrantStore;
pub use tenancy::SqliteTenancyStore;
pub use webhooks::{SqliteWebhookStore, webhook_wakeups};
pub use workflow::SqliteWorkflowStore;

const BACKEND: Backend = Backend::Sqlite;

/// How long a connection waits for another connection's write lock before it gives up
/// with `SQLITE_BUSY`, which the stores report as `StoreError::Unavailable`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies the embedded migrations (`migrations/sqlite`) that have not run yet.
///
/// The host calls this once at start-up, before building stores on `pool`.
///
/// # Errors
///
/// [`StoreError::Unavailable`] if the database is locked or unreachable, and
/// [`StoreError::Backend`] if a migration fails or the database holds migrations this
/// build does not know.
pub async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/sqlite")
        .run(pool)
        .await
        .map_err(|err| BACKEND.migrate_error(err))
}

/// Applies the embedded migrations of a journal-only database (`migrations/sqlite-journal`:
/// the `diagnostic_event_rows` table alone, the same as [`migrate`] makes) that have not run
/// yet: for a [`SqliteJournal`] in a SQLite file of its own, whose writes then take no
/// turns with the stores' writes and whose commits leave the stores' connections' page
/// caches alone.
///
/// # Errors
///
/// As [`migrate`].
pub async fn migrate_journal(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/sqlite-journal")
        .run(pool)
        .await
        .map_err(|err| BACKEND.migrate_error(err))
}

/// Opens a pool on the SQLite database at `url` (such as `sqlite://portal.db`), creating
/// the file if it is missing, with the settings the stores expect: write-ahead logging,
/// foreign keys enforced, a [`BUSY_TIMEOUT`] wait for locks, and no ping before each
/// acquire (a connection is a file handle in this process; the ping cost a round trip
/// to the connection's thread on every store call).
///
/// An in-memory database (`sqlite::memory:`, or `mode=memory` in the URL) lives only
/// while a connection to it is open, so for those the pool keeps one connection open
/// for its whole life.
///
/// The pool is not migrated; call [`migrate`].
///
/// # Errors
///
/// [`StoreError::Backend`] if `url` is not a SQLite URL or the file cannot be opened.
pub async fn connect(url: &str) -> Result<SqlitePool, StoreError> {
    open(url, options(url)?).await
}

/// Opens a pool on a database of the journal's own at `url` ([`migrate_journal`]), as
/// [`connect`] does, with two more settings for a database written in large appends:
///
/// - 16 KiB pages (for a database made by this call; an existing file keeps its own): a
///   read's journal row is about 1.6 KB, so a 4 KiB page held two and the table's B-tree
///   split a page every two rows;
/// - temporary files in memory (`temp_store = MEMORY`): a multi-row `INSERT` keeps a
///   statement journal, which SQLite otherwise writes to a temporary file it opens,
///   writes and deletes for each statement.
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_journal(url: &str) -> Result<SqlitePool, StoreError> {
    let options = options(url)?
        .page_size(JOURNAL_PAGE_SIZE)
        .pragma("temp_store", "MEMORY");
    open(url, options).await
}

/// The page size of a journal database made by [`connect_journal`].
const JOURNAL_PAGE_SIZE: u32 = 16_384;

/// The connection settings every pool of [`connect`] has.
fn options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|err| BACKEND.error(err))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT))
}

/// A pool of `options` for the database at `url`.
async fn open(url: &str, options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    // A connection is a file handle in this process, not a socket that a peer can close:
    // sqlx's default ping before every acquire only doubles each store call's round trip
    // to the connection's worker thread (and an acquire cancelled mid-ping drops the
    // connection, fatal to an in-memory database).
    let pool = SqlitePoolOptions::new().test_before_acquire(false);
    let pool = if in_memory {
        pool.min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        pool
    };
    pool.connect_with(options).await.map_err(|err| BACKEND.error(err))
}
