//! The SQLite stores' writers take turns in the process: concurrent write transactions on
//! one pool never meet SQLite's busy handler. Proven on a pool whose busy timeout is
//! zero, where a `BEGIN IMMEDIATE` that found the write lock taken would fail at once
//! with `database is locked`: 64 transactions from 16 tasks all succeed.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use portal_adapters::sqlite::{self, SqliteTenancyStore};
use portal_core::tenancy::TenancyStore;
use portal_core::testing::tenancy::fixtures::{new_org, new_user};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_write_transactions_on_one_pool_never_find_the_lock_taken() {
    let path = std::env::temp_dir().join(format!("portal_writers_{}.db", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}", path.display());
    let setup = sqlite::connect(&url).await.unwrap();
    sqlite::migrate(&setup).await.unwrap();
    setup.close().await;

    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::ZERO);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .unwrap();
    // The connections open one after another (opening reads the WAL index, which a
    // zero busy timeout would not wait for either).
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);

    let store = Arc::new(SqliteTenancyStore::new(pool.clone()));
    let owner = new_user(&*store).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, owner) = (store.clone(), owner.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                new_org(&*store, &owner).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("every write transaction got the lock");
    }
    let orgs = store.list_user_orgs(owner.id, None, 100).await.unwrap();
    assert_eq!(orgs.len(), 64, "every org was written");
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
