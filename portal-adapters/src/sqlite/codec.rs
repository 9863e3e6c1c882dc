//! How the SQLite stores encode values and read rows: one copy for every store.
//!
//! Ids are 16-byte BLOBs, times INTEGER Unix microseconds; a value that does not decode is
//! `StoreError::Corrupt`, a driver error goes through `sql.rs`.

use portal_core::store::StoreError;
use portal_core::time::{from_unix_micros, to_unix_micros, truncate_to_micros};
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::BACKEND;

/// Maps a driver error with no more specific meaning.
pub(super) fn db(err: sqlx::Error) -> StoreError {
    BACKEND.error(err)
}

/// Opens a write transaction holding SQLite's write lock from its first statement.
pub(super) async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
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
