//! Migration 0028 keeps the SQLite journal a row per request and org
//! (`diagnostic_event_rows`) instead of a row per event. A journal written before it reads
//! back the same after it, an event appended again is still skipped, the events a
//! request records together (a read's: the edge's and the user's) are one row, and the
//! journal-only database (`sqlite::migrate_journal`) has the same table and indexes as the
//! migrated portal's. A journal database opened with `sqlite::connect_journal` has 16 KiB
//! pages when it is new (an older file keeps its own) and keeps temporary files in memory.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::borrow::Cow;
use std::path::Path;

use portal_adapters::sqlite::{self, SqliteJournal, SqlitePool};
use portal_core::context::{Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, EventKind, Journal as _, RequestQuery};
use portal_core::ids::{OrgId, RandomIds, RequestId, UserId};
use sqlx::migrate::Migrator;
use time::OffsetDateTime;

/// The table's columns and its indexes (name, unique, columns, partial), as SQLite
/// describes them.
async fn shape(pool: &SqlitePool, table: &str) -> (Vec<String>, Vec<(String, bool, Vec<String>, bool)>) {
    let columns = sqlx::query_scalar::<_, String>("SELECT name FROM pragma_table_info(?1) ORDER BY name")
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
    let indexes: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, \"unique\", partial FROM pragma_index_list(?1) ORDER BY name")
            .bind(table)
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
    let edge = Principal::Service(ServiceName::new("portal-edge").unwrap());
    let user = Principal::User(UserId::generate(&RandomIds::default(), now));
    ["auth.session", "access.check", "workflow.view"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let at = now + time::Duration::microseconds(i64::try_from(i).unwrap());
            let mut event = DiagnosticEvent::detached(at, request, EventKind::Query, Cow::Borrowed(name));
            event.org = Some(org);
            // As a read's: the edge authenticates, the user reads.
            event.actor = Some(if i == 0 { edge.clone() } else { user.clone() });
            event
        })
        .collect()
}

async fn rows(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM diagnostic_event_rows")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_journal_reads_back_the_same_across_migration_0028() {
    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    let migrator = Migrator::new(Path::new("migrations/sqlite")).await.unwrap();
    migrator.run_to(27, &pool).await.unwrap();

    // Stored as the journal stored events before 0028: a row each.
    let ids = RandomIds::default();
    let now = OffsetDateTime::now_utc();
    let (request, org) = (RequestId::generate(&ids, now), OrgId::generate(&ids, now));
    let written = events(request, org);
    for event in &written {
        sqlx::query(
            "INSERT INTO diagnostic_events (at, request_id, id, org_id, actor, real_actor, kind, event) \
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7)",
        )
        .bind(portal_core::time::to_unix_micros(event.at))
        .bind(event.request_id.as_uuid().as_bytes().to_vec())
        .bind(event.id.as_uuid().as_bytes().to_vec())
        .bind(org.as_uuid().as_bytes().to_vec())
        .bind(event.actor.as_ref().map(ToString::to_string))
        .bind(event.kind.as_str())
        .bind(event.to_json().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    }

    sqlite::migrate(&pool).await.unwrap();
    assert_eq!(rows(&pool).await, 3, "each stored event is a row of its own");
    let journal = SqliteJournal::new(pool.clone());
    let query = RequestQuery::first(request, 100);
    assert_eq!(
        journal.by_request(&query).await.unwrap(),
        written,
        "the events written before 0028 read back the same"
    );
    journal.append(&mut written.clone()).await.unwrap();
    assert_eq!(
        journal.by_request(&query).await.unwrap(),
        written,
        "an event appended again is skipped"
    );
    assert_eq!(rows(&pool).await, 3, "and nothing was written for it");

    // A new request's events, appended together, are one row.
    let next = RequestId::generate(&ids, now);
    let mut batch = events(next, org);
    let expected = batch.clone();
    journal.append(&mut batch).await.unwrap();
    assert_eq!(
        rows(&pool).await,
        4,
        "a request's events in one append are one row, its two actors' too"
    );
    assert_eq!(
        journal.by_request(&RequestQuery::first(next, 100)).await.unwrap(),
        expected
    );

    let (columns, indexes) = shape(&pool, "diagnostic_event_rows").await;
    let request_index = indexes
        .iter()
        .find(|(name, ..)| name == "diagnostic_event_rows_request_idx")
        .unwrap();
    assert!(request_index.1, "the request index is unique");
    assert_eq!(request_index.2, ["request_id", "at", "id"]);
    assert_eq!(
        shape(&pool, "diagnostic_events").await.0,
        Vec::<String>::new(),
        "the table of a row per event is gone"
    );

    let own = sqlite::connect("sqlite::memory:").await.unwrap();
    sqlite::migrate_journal(&own).await.unwrap();
    assert_eq!(
        shape(&own, "diagnostic_event_rows").await,
        (columns, indexes),
        "the journal-only database has the same table"
    );
}

/// The value of `pragma` (a `PRAGMA` statement) on one of `pool`'s connections.
async fn pragma(pool: &SqlitePool, pragma: &'static str) -> i64 {
    sqlx::query_scalar(pragma).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_journal_database_of_its_own_has_large_pages_and_no_temporary_files() {
    let dir = std::env::temp_dir().join(format!("portal-journal-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ids = RandomIds::default();
    let now = OffsetDateTime::now_utc();
    let org = OrgId::generate(&ids, now);

    // A new file: 16 KiB pages; every connection keeps temporary files in memory.
    let fresh = dir.join("fresh.journal.db");
    let _ = std::fs::remove_file(&fresh);
    let pool = sqlite::connect_journal(&format!("sqlite://{}", fresh.display()))
        .await
        .unwrap();
    sqlite::migrate_journal(&pool).await.unwrap();
    assert_eq!(pragma(&pool, "PRAGMA page_size").await, 16_384);
    assert_eq!(pragma(&pool, "PRAGMA temp_store").await, 2, "MEMORY");
    let journal = SqliteJournal::new(pool.clone());
    // More requests than the largest `INSERT` holds rows: statements of several sizes.
    let mut batch: Vec<DiagnosticEvent> = (0..300)
        .flat_map(|_| events(RequestId::generate(&ids, now), org))
        .collect();
    let written = batch.clone();
    journal.append(&mut batch).await.unwrap();
    assert_eq!(rows(&pool).await, 300);
    let first = written.first().unwrap().request_id;
    assert_eq!(
        journal.by_request(&RequestQuery::first(first, 100)).await.unwrap(),
        written[..3].to_vec()
    );

    // A file made before keeps its page size (SQLite changes it only on `VACUUM`) and
    // works as before.
    let older = dir.join("older.journal.db");
    let _ = std::fs::remove_file(&older);
    let url = format!("sqlite://{}", older.display());
    let made = sqlite::connect(&url).await.unwrap();
    sqlite::migrate_journal(&made).await.unwrap();
    made.close().await;
    let pool = sqlite::connect_journal(&url).await.unwrap();
    assert_eq!(pragma(&pool, "PRAGMA page_size").await, 4_096);
    let journal = SqliteJournal::new(pool.clone());
    let request = RequestId::generate(&ids, now);
    let mut batch = events(request, org);
    let expected = batch.clone();
    journal.append(&mut batch).await.unwrap();
    assert_eq!(
        journal.by_request(&RequestQuery::first(request, 100)).await.unwrap(),
        expected
    );
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
