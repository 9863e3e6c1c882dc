//! How the Postgres stores read rows and times: one copy for every store.

use portal_core::store::StoreError;
use portal_core::time::truncate_to_micros;
use sqlx::Postgres;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::BACKEND;

/// Maps a driver error with no more specific meaning.
pub(super) fn db(err: sqlx::Error) -> StoreError {
    BACKEND.error(err)
}

/// A time as it reads back from the store (`TIMESTAMPTZ` keeps microseconds).
pub(super) fn stored_time(at: OffsetDateTime) -> OffsetDateTime {
    truncate_to_micros(at)
}

/// Reads a column, a decoding failure being `StoreError::Corrupt`.
pub(super) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    BACKEND.column(row, column)
}
