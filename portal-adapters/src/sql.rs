//! What the SQL backends share: `sqlx` errors mapped to [`StoreError`] once, and the
//! decoding of stored values into domain types.
//!
//! The mapping decides one thing the services rely on: whether a failure is
//! [`StoreError::Unavailable`] (the backend is unreachable, busy or went away, nothing
//! was written, a retry may succeed) or [`StoreError::Backend`] (a retry is not expected
//! to help). Unique violations are not mapped here: only a store knows which constraint
//! means which [`Conflict`](portal_core::store::Conflict), so it asks
//! [`unique_violation`] first.

use std::borrow::Cow;

use portal_core::store::StoreError;
use sqlx::migrate::MigrateError;

/// The SQL backend a store runs on: its name in errors, and how to read its error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite, whose error codes are numeric result codes.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code, reason = "only the sqlite store uses it"))]
    Sqlite,
    /// PostgreSQL, whose error codes are five-character SQLSTATEs.
    #[cfg_attr(
        not(feature = "postgres"),
        allow(dead_code, reason = "only the postgres store uses it")
    )]
    Postgres,
}

impl Backend {
    /// The name `StoreError` carries.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Maps a driver error: transient failures become [`StoreError::Unavailable`],
    /// everything else [`StoreError::Backend`]. The driver error is kept as the source.
    pub(crate) fn error(self, err: sqlx::Error) -> StoreError {
        if self.is_transient(&err) {
            StoreError::Unavailable {
                backend: self.name(),
                source: Box::new(err),
            }
        } else {
            StoreError::Backend {
                backend: self.name(),
                source: Box::new(err),
            }
        }
    }

    /// Maps a migration failure as [`error`](Self::error) maps the driver error inside it.
    pub(crate) fn migrate_error(self, err: MigrateError) -> StoreError {
        let transient = match &err {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => self.is_transient(inner),
            _ => false,
        };
        if transient {
            StoreError::Unavailable {
                backend: self.name(),
                source: Box::new(err),
            }
        } else {
            StoreError::Backend {
                backend: self.name(),
                source: Box::new(err),
            }
        }
    }

    /// Whether the same call may succeed later: the pool had no connection in time or
    /// was closed, the connection broke, or the database reported a condition that
    /// passes (the server is shutting down or full, a lock or serialization conflict).
    pub(crate) fn is_transient(self, err: &sqlx::Error) -> bool {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| self.is_transient_code(&code)),
            _ => false,
        }
    }

    fn is_transient_code(self, code: &str) -> bool {
        match self {
            // Class 08 is "connection exception"; 57P01 to 57P03 are an administrator's
            // or a crash's shutdown and "cannot connect now"; 53300 is "too many
            // connections"; 40001 and 40P01 are a serialization failure and a deadlock,
            // which the database resolved by aborting this transaction.
            Backend::Postgres => {
                code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01")
            }
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code (the
            // primary code is the low byte), mean another connection holds a lock.
            Backend::Sqlite => code
                .parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
        }
    }

    /// A failure of the store's own work that is not the driver's (encoding a value to
    /// store, say): [`StoreError::Backend`], `err` kept as the source.
    pub(crate) fn failure(self, err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend {
            backend: self.name(),
            source: Box::new(err),
        }
    }

    /// A stored value that does not decode into its domain type.
    pub(crate) fn corrupt(self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            backend: self.name(),
            what: what.into(),
        }
    }

    /// Checks a decoded value: a failure (a domain constructor refused the stored text,
    /// say) becomes [`StoreError::Corrupt`] naming `what`, never a panic.
    ///
    /// The failure's text is left out on purpose: it may quote the stored value, and
    /// `what` (a column and the row's key) is enough to find it.
    pub(crate) fn decode<T, E>(self, what: impl FnOnce() -> String, value: Result<T, E>) -> Result<T, StoreError> {
        value.map_err(|_| self.corrupt(what()))
    }

    /// Reads column `name` of `row` as `T`; a missing column or a value of the wrong
    /// type (or an unexpected NULL) is [`StoreError::Corrupt`].
    pub(crate) fn column<'r, R, T>(self, row: &'r R, name: &str) -> Result<T, StoreError>
    where
        R: sqlx::Row,
        T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'n> &'n str: sqlx::ColumnIndex<R>,
    {
        row.try_get::<T, _>(name)
            .map_err(|_| self.corrupt(format!("value in column `{name}`")))
    }
}

/// SQLite's primary result code for "the database file is locked".
const SQLITE_BUSY: i32 = 5;
/// SQLite's primary result code for "a table in the database is locked".
const SQLITE_LOCKED: i32 = 6;

/// What a unique violation names, if `err` is one: the constraint's name on Postgres
/// (`organizations_slug_key`), the columns on SQLite, which reports no name
/// (`organizations.slug`).
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<Cow<'_, str>> {
    let db = err.as_database_error().filter(|db| db.is_unique_violation())?;
    if let Some(name) = db.constraint() {
        return Some(Cow::Borrowed(name));
    }
    // SQLite's message is "UNIQUE constraint failed: table.column[, table.column]".
    db.message()
        .split_once("constraint failed: ")
        .map(|(_, columns)| Cow::Borrowed(columns.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_connection_failures_are_transient() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            assert!(backend.is_transient(&sqlx::Error::PoolTimedOut));
            assert!(backend.is_transient(&sqlx::Error::PoolClosed));
            assert!(backend.is_transient(&sqlx::Error::WorkerCrashed));
            assert!(backend.is_transient(&sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset
            ))));
            assert!(!backend.is_transient(&sqlx::Error::RowNotFound));
            assert!(!backend.is_transient(&sqlx::Error::ColumnNotFound("x".into())));
        }
    }

    #[test]
    fn postgres_codes_for_lost_connections_and_aborted_transactions_are_transient() {
        for code in [
            "08000", "08003", "08006", "57P01", "57P02", "57P03", "53300", "40001", "40P01",
        ] {
            assert!(Backend::Postgres.is_transient_code(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22P02", "57014", "53100"] {
            assert!(!Backend::Postgres.is_transient_code(code), "{code}");
        }
    }

    #[test]
    fn sqlite_busy_and_locked_are_transient_with_extended_codes() {
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED_SHAREDCACHE (262).
        for code in ["5", "6", "517", "262", "261"] {
            assert!(Backend::Sqlite.is_transient_code(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_ERROR (1), SQLITE_CORRUPT (11), garbage.
        for code in ["2067", "1", "11", "busy"] {
            assert!(!Backend::Sqlite.is_transient_code(code), "{code}");
        }
    }

    #[test]
    fn the_driver_error_is_kept_as_the_source() {
        let err = Backend::Postgres.error(sqlx::Error::PoolTimedOut);
        assert!(err.is_retryable());
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some(sqlx::Error::PoolTimedOut.to_string().as_str()));
        assert!(matches!(
            Backend::Sqlite.error(sqlx::Error::RowNotFound),
            StoreError::Backend { backend: "sqlite", .. }
        ));
    }
}
