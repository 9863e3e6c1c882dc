//! Migration 0025 rebuilds the SQLite journal's table with one B-tree fewer per row (no
//! index on `id` alone; the request index, unique on `(request_id, at, id)`, is the
//! duplicate check of appends). A journal written before it reads back the same after
//! it, an event appended again is still skipped, and the journal-only database
//! (`sqlite::migrate_journal`) has the same table and indexes as the migrated portal's.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::borrow::Cow;
use std::path::Path;

use portal_adapters::sqlite::{self, SqliteJournal, SqlitePool};
use portal_core::diagnostics::{DiagnosticEvent, EventKind, Journal as _, RequestQuery};
use portal_core::ids::{OrgId, RandomIds, RequestId};
use sqlx::migrate::Migrator;
use time::OffsetDateTime;

/// The table's columns and its indexes (name, unique, columns, partial), as SQLite
/// describes them.
async fn shape(pool: &SqlitePool) -> (Vec<String>, Vec<(String, bool, Vec<String>, bool)>) {
    let columns =
        sqlx::query_scalar::<_, String>("SELECT name FROM pragma_table_info('diagnostic_events') ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap();
    let indexes: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, \"unique\", partial FROM pragma_index_list('diagnostic_events') ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for (name, unique, partial) in indexes {
        let columns = sqlx::query_scalar::<_, String>("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap();
        out.push((name, unique == 1, columns, partial == 1));
    }
    (columns, out)
}

fn events(request: RequestId, org: OrgId) -> Vec<DiagnosticEvent> {
    let now = OffsetDateTime::now_utc();
    ["access.check", "workflow.view"]
        .into_iter()
        .map(|name| {
            let mut event = DiagnosticEvent::detached(now, request, EventKind::Query, Cow::Borrowed(name));
            event.org = Some(org);
            event
        })
        .collect()
}

#[tokio::test]
async fn the_journal_reads_back_the_same_across_migration_0025() {
    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    let migrator = Migrator::new(Path::new("migrations/sqlite")).await.unwrap();
    migrator.run_to(24, &pool).await.unwrap();
    let (old_columns, old_indexes) = shape(&pool).await;
    assert!(
        old_indexes
            .iter()
            .any(|(name, ..)| name.starts_with("sqlite_autoindex")),
        "before 0025 the id key has its own index: {old_indexes:?}"
    );

    let ids = RandomIds::default();
    let now = OffsetDateTime::now_utc();
    let (request, org) = (RequestId::generate(&ids, now), OrgId::generate(&ids, now));
    let journal = SqliteJournal::new(pool.clone());
    let written = events(request, org);
    journal.append(&mut written.clone()).await.unwrap();

    sqlite::migrate(&pool).await.unwrap();
    let (columns, indexes) = shape(&pool).await;
    assert_eq!(columns, old_columns, "the same columns");
    assert!(
        !indexes.iter().any(|(name, ..)| name.starts_with("sqlite_autoindex")),
        "no index on the id alone: {indexes:?}"
    );
    let request_index = indexes
        .iter()
        .find(|(name, ..)| name == "diagnostic_events_request_idx")
        .unwrap();
    assert!(request_index.1, "the request index is unique");
    assert_eq!(request_index.2, ["request_id", "at", "id"]);

    let query = RequestQuery::first(request, 100);
    let mut read = journal.by_request(&query).await.unwrap();
    read.sort_by_key(|e| e.id);
    let mut expected = written.clone();
    expected.sort_by_key(|e| e.id);
    assert_eq!(read, expected, "the events written before 0025 read back the same");
    journal.append(&mut written.clone()).await.unwrap();
    assert_eq!(
        journal.by_request(&query).await.unwrap().len(),
        2,
        "an event appended again is skipped"
    );

    let own = sqlite::connect("sqlite::memory:").await.unwrap();
    sqlite::migrate_journal(&own).await.unwrap();
    assert_eq!(
        shape(&own).await,
        (columns, indexes),
        "the journal-only database has the same table"
    );
}
