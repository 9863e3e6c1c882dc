//! A Postgres schema of its own for one server test, so tests on one database do not see
//! each other's rows: both servers' tests run their Postgres variants in one.
//!
//! The schema is named `portal_test_<hex>` (`.ci/run` drops leftovers of that form) and the
//! server reaches it through the URL's `search_path` option.

use sqlx::PgPool;

/// The variable holding the Postgres URL of the tests (`postgres://…`); a Postgres
/// variant of a test runs only when it is set, and `.ci/run` always sets it.
pub const POSTGRES_URL_VAR: &str = "PORTAL_TEST_POSTGRES_URL";

/// A schema made for one test; [`drop`](Self::drop) it at the end.
#[derive(Debug)]
pub struct TestSchema {
    admin: PgPool,
    name: String,
    url: String,
}

impl TestSchema {
    /// A new schema in the database of [`POSTGRES_URL_VAR`], or `None` (saying so on
    /// stderr) when the variable is not set.
    ///
    /// # Errors
    ///
    /// When Postgres cannot be reached or the schema cannot be made.
    pub async fn from_env() -> Result<Option<Self>, sqlx::Error> {
        let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("skipped: {POSTGRES_URL_VAR} is not set");
            return Ok(None);
        };
        let name = format!("portal_test_{:032x}", uuid::Uuid::now_v7().as_u128());
        let admin = PgPool::connect(&url).await?;
        // The name is a fixed prefix and hex digits, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await?;
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options=-c%20search_path%3D{name}");
        Ok(Some(Self { admin, name, url }))
    }

    /// The URL a server uses to work in this schema (its `DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it.
    ///
    /// # Errors
    ///
    /// When Postgres refuses.
    pub async fn drop(self) -> Result<(), sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&self.admin)
            .await?;
        Ok(())
    }
}
