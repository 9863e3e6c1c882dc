//! Test harness shared by the adapter tests: fresh, migrated databases, one per test.
//!
//! - SQLite, in memory ([`fresh_sqlite_pool`]): a unique shared-cache name, so every
//!   connection of one pool sees the same database and no two tests share one. Fast, and
//!   leaves nothing behind.
//! - SQLite, on a file ([`fresh_sqlite_file_pool`]): opened with the production
//!   [`sqlite::connect`] (write-ahead log, busy timeout), so the locking the stores rely
//!   on is the one hosts get. Files go to `<temp>/portal-adapters-tests` and are removed
//!   by a later run once they are an hour old.
//! - Postgres ([`fresh_pg_pool`]): a schema of its own on the server named by
//!   `PORTAL_TEST_POSTGRES_URL`, skipped (saying so) when the variable is unset. Schemas
//!   are removed by a later run once they are an hour old.
//!
//! Include it with `#[path = "../common/mod.rs"] mod common;` (or `mod common;` from a
//! file directly under `tests/`). Not every test binary uses every helper.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]
#![allow(
    clippy::expect_used,
    reason = "a harness that cannot set up a database fails the test"
)]

use std::time::Duration;

#[cfg(feature = "postgres")]
use portal_adapters::postgres::{self, NotifyChannel, PgPolicyStore, PgTenancyStore, PgWorkflowStore};
#[cfg(feature = "sqlite")]
use portal_adapters::sqlite::{self, SqlitePolicyStore, SqliteTenancyStore, SqliteWorkflowStore};
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
#[cfg(feature = "postgres")]
use sqlx::{Connection, PgConnection, PgPool};

/// The variable that names the Postgres server for tests.
pub(crate) const POSTGRES_URL_VAR: &str = "PORTAL_TEST_POSTGRES_URL";

/// Connections per Postgres test pool: many tests run in parallel against one server.
pub(crate) const PG_MAX_CONNECTIONS: u32 = 4;

/// How old a database left by an earlier run must be before a run removes it; older
/// than any test run, so a run never removes a database another run still uses.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A name no other test, process or run uses: a UUIDv7 (time first) in hex.
fn unique_suffix() -> String {
    format!("{:032x}", uuid::Uuid::now_v7().as_u128())
}

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

/// Options for a new, empty in-memory SQLite database that every connection opened with
/// them shares, with the settings the stores expect.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_options() -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(format!("file:portal_test_{}", unique_suffix()))
        .in_memory(true)
        .shared_cache(true)
        .foreign_keys(true)
        .busy_timeout(sqlite::BUSY_TIMEOUT)
}

/// Pool options for an in-memory test database. It lives only while a connection is
/// open, so connections are never closed for being idle or old.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
}

/// A new, migrated, empty in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_pool() -> SqlitePool {
    fresh_sqlite_pool_with(sqlite_pool_options()).await
}

/// A new, migrated, empty in-memory SQLite database on a pool built from `options`
/// (which should keep a connection open, as [`sqlite_pool_options`] does).
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_pool_with(options: SqlitePoolOptions) -> SqlitePool {
    let pool = options
        .connect_with(sqlite_options())
        .await
        .expect("open an in-memory SQLite database");
    sqlite::migrate(&pool).await.expect("migrate the SQLite database");
    pool
}

/// A store on a fresh in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_store() -> SqliteTenancyStore {
    SqliteTenancyStore::new(fresh_sqlite_pool().await)
}

/// A policy store on a fresh in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_policy_store() -> SqlitePolicyStore {
    SqlitePolicyStore::new(fresh_sqlite_pool().await)
}

/// A workflow store on a fresh in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_workflow_store() -> SqliteWorkflowStore {
    SqliteWorkflowStore::new(fresh_sqlite_pool().await)
}

/// A support grant store on a fresh in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_support_store() -> sqlite::SqliteSupportGrantStore {
    sqlite::SqliteSupportGrantStore::new(fresh_sqlite_pool().await)
}

/// An external identity store on a fresh in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_external_identity_store() -> sqlite::SqliteExternalIdentityStore {
    sqlite::SqliteExternalIdentityStore::new(fresh_sqlite_pool().await)
}

/// A diagnostics journal on a fresh in-memory SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_journal() -> sqlite::SqliteJournal {
    sqlite::SqliteJournal::new(fresh_sqlite_pool().await)
}

/// A diagnostics journal on a fresh SQLite file of its own, migrated with
/// [`sqlite::migrate_journal`] (as the reference server keeps it, beside its database);
/// the in-memory one ([`fresh_sqlite_journal`]) runs on the stores' full migrations.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_journal() -> sqlite::SqliteJournal {
    remove_stale_sqlite_files();
    let dir = sqlite_file_dir();
    std::fs::create_dir_all(&dir).expect("create the test database directory");
    let path = dir.join(format!("portal_test_{}.journal.db", unique_suffix()));
    let pool = sqlite::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open a SQLite database file");
    sqlite::migrate_journal(&pool)
        .await
        .expect("migrate the journal's database");
    sqlite::SqliteJournal::new(pool)
}

/// The directory of file-backed test databases.
#[cfg(feature = "sqlite")]
fn sqlite_file_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("portal-adapters-tests")
}

/// Removes database files an earlier run left behind, once per process.
#[cfg(feature = "sqlite")]
fn remove_stale_sqlite_files() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(sqlite_file_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
            if stale {
                // Another run may be removing it too; either way it is gone.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
}

/// A new, migrated, empty SQLite database in a file, opened with the production
/// [`sqlite::connect`] (write-ahead log, foreign keys, busy timeout).
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_pool() -> SqlitePool {
    remove_stale_sqlite_files();
    let dir = sqlite_file_dir();
    std::fs::create_dir_all(&dir).expect("create the test database directory");
    let path = dir.join(format!("portal_test_{}.db", unique_suffix()));
    let pool = sqlite::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open a SQLite database file");
    sqlite::migrate(&pool).await.expect("migrate the SQLite database");
    pool
}

/// A store on a fresh file-backed SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_store() -> SqliteTenancyStore {
    SqliteTenancyStore::new(fresh_sqlite_file_pool().await)
}

/// A policy store on a fresh file-backed SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_policy_store() -> SqlitePolicyStore {
    SqlitePolicyStore::new(fresh_sqlite_file_pool().await)
}

/// A workflow store on a fresh file-backed SQLite database.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_workflow_store() -> SqliteWorkflowStore {
    SqliteWorkflowStore::new(fresh_sqlite_file_pool().await)
}

/// A support grant store on a fresh SQLite file.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_support_store() -> sqlite::SqliteSupportGrantStore {
    sqlite::SqliteSupportGrantStore::new(fresh_sqlite_file_pool().await)
}

/// An external identity store on a fresh SQLite file.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite_file_external_identity_store() -> sqlite::SqliteExternalIdentityStore {
    sqlite::SqliteExternalIdentityStore::new(fresh_sqlite_file_pool().await)
}

// ---------------------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------------------

/// The Postgres server URL, or `None` (after saying that Postgres tests are skipped)
/// when [`POSTGRES_URL_VAR`] is unset.
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let message = format!("skipped: {POSTGRES_URL_VAR} is not set, Postgres tests did not run");
            // The test harness captures `eprintln!` of passing tests, so the first skip
            // in a process is also written to the real stderr, where a run shows it.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{message}");
            }
            eprintln!("{message}");
            None
        }
    }
}

/// A fresh Postgres schema: its name, and connect options whose connections use it.
#[cfg(feature = "postgres")]
pub(crate) struct PgSchema {
    /// The schema's name, `portal_test_<32 hex digits>`.
    pub(crate) name: String,
    /// Options that put the schema first on the `search_path` and set
    /// `application_name` to the schema's name, so a test can find its own backends in
    /// `pg_stat_activity`.
    pub(crate) options: PgConnectOptions,
}

const SCHEMA_PREFIX: &str = "portal_test_";

/// Creates an empty schema with a unique name, or returns `None` (saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_schema() -> Option<PgSchema> {
    use std::str::FromStr;

    let url = postgres_url()?;
    let admin = PgConnectOptions::from_str(&url).expect("a valid Postgres URL");
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .expect("connect to the Postgres test server");
    drop_stale_schemas(&mut conn).await;
    let name = format!("{SCHEMA_PREFIX}{}", unique_suffix());
    // The name is made of a fixed prefix and hex digits, never of input, so splicing it
    // into the statement is safe (an identifier cannot be a bound parameter).
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test schema");
    conn.close().await.ok();
    let options = admin.options([("search_path", name.as_str())]).application_name(&name);
    Some(PgSchema { name, options })
}

/// Drops the test schemas earlier runs left behind, once per process. A schema's age is
/// the time in the UUIDv7 its name holds.
#[cfg(feature = "postgres")]
async fn drop_stale_schemas(conn: &mut PgConnection) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(SCHEMA_PREFIX)
            .fetch_all(&mut *conn)
            .await
            .expect("list test schemas");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for name in names {
        let Some(value) = name
            .strip_prefix(SCHEMA_PREFIX)
            .filter(|hex| hex.len() == 32)
            .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        else {
            continue;
        };
        let Some((secs, _)) = uuid::Uuid::from_u128(value).get_timestamp().map(|ts| ts.to_unix()) else {
            continue;
        };
        if now.saturating_sub(Duration::from_secs(secs)) > STALE_AFTER {
            // Rebuilt from the parsed number, so only hex digits reach the statement.
            let statement = format!("DROP SCHEMA IF EXISTS {SCHEMA_PREFIX}{value:032x} CASCADE");
            // Another run may be dropping it too; either way it is gone.
            let _ = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await;
        }
    }
}

/// Pool options for a test schema: few connections, and a bounded wait for one.
#[cfg(feature = "postgres")]
pub(crate) fn pg_pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(PG_MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(30))
}

/// A pool on a fresh, migrated Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_pool() -> Option<PgPool> {
    let schema = fresh_pg_schema().await?;
    Some(fresh_pg_pool_with(&schema, pg_pool_options()).await)
}

/// A migrated pool on `schema`, built from `options`.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_pool_with(schema: &PgSchema, options: PgPoolOptions) -> PgPool {
    let pool = options
        .connect_with(schema.options.clone())
        .await
        .expect("connect to the Postgres test schema");
    postgres::migrate(&pool)
        .await
        .expect("migrate the Postgres test schema");
    pool
}

/// A store on a fresh Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_store() -> Option<PgTenancyStore> {
    fresh_pg_pool().await.map(PgTenancyStore::new)
}

/// A workflow store on a fresh Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_workflow_store() -> Option<PgWorkflowStore> {
    fresh_pg_pool().await.map(PgWorkflowStore::new)
}

/// A support grant store on a fresh Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_support_store() -> Option<postgres::PgSupportGrantStore> {
    fresh_pg_pool().await.map(postgres::PgSupportGrantStore::new)
}

/// An external identity store on a fresh Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_external_identity_store() -> Option<postgres::PgExternalIdentityStore> {
    fresh_pg_pool().await.map(postgres::PgExternalIdentityStore::new)
}

/// A diagnostics journal on a fresh Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_journal() -> Option<postgres::PgJournal> {
    fresh_pg_pool().await.map(postgres::PgJournal::new)
}

/// A policy store on a fresh Postgres schema, announcing its changes on a channel named
/// after the schema (tests share one database, and channels are per database), or
/// `None` (after saying so) when [`POSTGRES_URL_VAR`] is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_pg_policy_store() -> Option<PgPolicyStore> {
    let schema = fresh_pg_schema().await?;
    let pool = fresh_pg_pool_with(&schema, pg_pool_options()).await;
    Some(PgPolicyStore::new(pool).with_channel(schema_channel(&schema)))
}

/// The notification channel of a test schema: its name, which no other test uses.
#[cfg(feature = "postgres")]
pub(crate) fn schema_channel(schema: &PgSchema) -> NotifyChannel {
    NotifyChannel::new(&schema.name).expect("a schema name is a valid channel name")
}

/// A table a fault test locks to stop a store call half-way through its transaction.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockedTable {
    /// Tenancy writes block here after writing the organization row.
    Memberships,
    /// The customer audit events: every audited change waits here for its event's
    /// insert (a multi-statement transaction after its earlier rows).
    AuditEvents,
}

#[cfg(feature = "postgres")]
impl LockedTable {
    fn lock_statement(self) -> &'static str {
        match self {
            LockedTable::Memberships => "LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE",
            LockedTable::AuditEvents => "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE",
        }
    }
}

/// Runs `op` while an admin transaction holds `table` locked, waits until the store's
/// backend is blocked on that lock (so `op` is inside its transaction, with rows already
/// written), terminates that backend with `pg_terminate_backend`, releases the lock, and
/// returns what `op` returned.
#[cfg(feature = "postgres")]
pub(crate) async fn kill_while_blocked<T: Send + 'static>(
    schema: &PgSchema,
    table: LockedTable,
    op: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let admin = schema
        .options
        .clone()
        .application_name(&format!("{}_admin", schema.name));
    let mut locker = PgConnection::connect_with(&admin).await.expect("admin connection");
    let mut monitor = PgConnection::connect_with(&admin).await.expect("monitor connection");
    let mut lock = locker.begin().await.expect("admin transaction");
    sqlx::query(table.lock_statement())
        .execute(&mut *lock)
        .await
        .expect("lock the table");

    let task = tokio::spawn(op);

    // The store's connections carry the schema's name as their application name. The
    // monitor polls outside a transaction: inside one, `pg_stat_activity` is a snapshot
    // taken at its first read.
    let mut waiting = None;
    for _ in 0..200 {
        waiting = sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event_type = 'Lock' AND state = 'active'",
        )
        .bind(&schema.name)
        .fetch_optional(&mut monitor)
        .await
        .expect("read pg_stat_activity");
        if waiting.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pid = waiting.expect("the store's backend blocks on the locked table");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut monitor)
        .await
        .expect("terminate the backend");
    assert!(terminated);
    lock.rollback().await.expect("release the lock");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the store call returns after its connection is killed")
        .expect("the store call does not panic")
}
