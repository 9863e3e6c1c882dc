//! Test harness shared by the adapter tests: fresh, migrated databases, one per test.
//!
//! SQLite databases live in memory under a unique shared-cache name, so every
//! connection of one pool sees the same database and no two tests share one. Postgres
//! tests get a schema of their own on the server named by `PORTAL_TEST_POSTGRES_URL`,
//! and are skipped, saying so, when it is unset.
//!
//! Include it with `#[path = "../common/mod.rs"] mod common;` (or `mod common;` from a
//! file directly under `tests/`). Not every test binary uses every helper.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "postgres")]
use portal_adapters::postgres::{self, PgTenancyStore};
#[cfg(feature = "sqlite")]
use portal_adapters::sqlite::{self, SqliteTenancyStore};
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
#[cfg(feature = "postgres")]
use sqlx::{Connection, PgConnection, PgPool};
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

/// The variable that names the Postgres server for tests.
pub const POSTGRES_URL_VAR: &str = "PORTAL_TEST_POSTGRES_URL";

/// Connections per Postgres test pool: many tests run in parallel against one server.
pub const PG_MAX_CONNECTIONS: u32 = 4;

#[cfg(feature = "sqlite")]
static SQLITE_DATABASES: AtomicU64 = AtomicU64::new(0);

#[cfg(feature = "sqlite")]
/// Options for a new, empty in-memory SQLite database that every connection opened with
/// them shares, with the settings the stores expect.
pub fn sqlite_options() -> SqliteConnectOptions {
    let n = SQLITE_DATABASES.fetch_add(1, Ordering::Relaxed);
    let url = format!("sqlite:file:portal_test_{}_{n}?mode=memory&cache=shared", std::process::id());
    SqliteConnectOptions::from_str(&url)
        .expect("a valid SQLite URL")
        .foreign_keys(true)
        .busy_timeout(sqlite::BUSY_TIMEOUT)
}

#[cfg(feature = "sqlite")]
/// Pool options for a test database. An in-memory database lives only while a
/// connection is open, so connections are never closed for being idle or old.
pub fn sqlite_pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
}

#[cfg(feature = "sqlite")]
/// A new, migrated, empty in-memory SQLite database.
pub async fn fresh_sqlite_pool() -> SqlitePool {
    fresh_sqlite_pool_with(sqlite_pool_options()).await
}

#[cfg(feature = "sqlite")]
/// A new, migrated, empty in-memory SQLite database on a pool built from `options`
/// (which should keep at least one connection open, see [`sqlite_pool_options`]).
pub async fn fresh_sqlite_pool_with(options: SqlitePoolOptions) -> SqlitePool {
    let pool = options
        .connect_with(sqlite_options())
        .await
        .expect("open an in-memory SQLite database");
    sqlite::migrate(&pool).await.expect("migrate the SQLite database");
    pool
}

#[cfg(feature = "sqlite")]
/// A store on a fresh SQLite database.
pub async fn fresh_sqlite_store() -> SqliteTenancyStore {
    SqliteTenancyStore::new(fresh_sqlite_pool().await)
}

/// The Postgres server URL, or `None` (after saying that Postgres tests are skipped)
/// when [`POSTGRES_URL_VAR`] is unset.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {POSTGRES_URL_VAR} is not set, Postgres tests did not run");
            None
        }
    }
}

#[cfg(feature = "postgres")]
/// A fresh Postgres schema: its name, and connect options whose connections use it.
pub struct PgSchema {
    /// The schema's name, `portal_test_<random hex>`.
    pub name: String,
    /// Options that put the schema first on the `search_path` and name the connections
    /// `application_name = <schema>`, so a test can find its own backends.
    pub options: PgConnectOptions,
}

#[cfg(feature = "postgres")]
/// Creates an empty schema with a unique name, or returns `None` (saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
pub async fn fresh_pg_schema() -> Option<PgSchema> {
    let url = postgres_url()?;
    let name = format!("portal_test_{:032x}", uuid::Uuid::now_v7().as_u128());
    let admin = PgConnectOptions::from_str(&url).expect("a valid Postgres URL");
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .expect("connect to the Postgres test server");
    // The name is generated above from hex digits, never from input, so it is safe
    // to splice into the statement (an identifier cannot be a bound parameter).
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test schema");
    conn.close().await.ok();
    let options = admin
        .options([("search_path", name.as_str())])
        .application_name(&name);
    Some(PgSchema { name, options })
}

#[cfg(feature = "postgres")]
/// Pool options for a test schema: few connections, and a bounded wait for one.
pub fn pg_pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(PG_MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(30))
}

#[cfg(feature = "postgres")]
/// A pool on a fresh, migrated Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
pub async fn fresh_pg_pool() -> Option<PgPool> {
    let schema = fresh_pg_schema().await?;
    Some(fresh_pg_pool_with(&schema, pg_pool_options()).await)
}

#[cfg(feature = "postgres")]
/// A migrated pool on `schema`, built from `options`.
pub async fn fresh_pg_pool_with(schema: &PgSchema, options: PgPoolOptions) -> PgPool {
    let pool = options
        .connect_with(schema.options.clone())
        .await
        .expect("connect to the Postgres test schema");
    postgres::migrate(&pool).await.expect("migrate the Postgres test schema");
    pool
}

#[cfg(feature = "postgres")]
/// A store on a fresh Postgres schema, or `None` (after saying so) when
/// [`POSTGRES_URL_VAR`] is unset.
pub async fn fresh_pg_store() -> Option<PgTenancyStore> {
    fresh_pg_pool().await.map(PgTenancyStore::new)
}
