//! The Postgres stores: for many replicas of the host service sharing one database.
//!
//! Ids are kept as `UUID` and times as `TIMESTAMPTZ` (microseconds, the precision of
//! portal-core's clock), so values read back equal to the values written. Transactions
//! run at READ COMMITTED; a rule that spans rows (an org keeps an owner) is made safe by
//! locking the organization's row first (`SELECT … FOR UPDATE`), so two replicas
//! changing one org's owners take turns.
//!
//! ```no_run
//! # async fn run() -> Result<(), portal_core::store::StoreError> {
//! use portal_adapters::postgres::{self, PgTenancyStore};
//!
//! let pool = postgres::connect("postgres://portal@localhost/portal").await?;
//! postgres::migrate(&pool).await?;
//! let store = PgTenancyStore::new(pool);
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
mod listener;
mod passkey;
mod policy;
mod scim;
mod support;
mod tenancy;
mod webhooks;
mod workflow;

use portal_core::store::StoreError;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgPoolOptions;

use crate::sql::Backend;

pub use audit::PgAuditLog;
pub use external_identity::PgExternalIdentityStore;
pub use idempotency::PgIdempotencyStore;
pub use identity::PgIdentityStore;
pub use journal::PgJournal;
pub use listener::PgPolicyListener;
pub use policy::{InvalidChannelError, NOTIFY_PAYLOAD_LIMIT, NotifyChannel, PgPolicyStore};
pub use scim::PgScimStore;
pub use sqlx::PgPool;
pub use support::PgSupportGrantStore;
pub use tenancy::PgTenancyStore;
pub use webhooks::{PgWebhookStore, WEBHOOK_CHANNEL, webhook_wakeups};
pub use workflow::PgWorkflowStore;

const BACKEND: Backend = Backend::Postgres;

/// Applies the embedded migrations (`migrations/postgres`) that have not run yet, in the
/// first schema of the connections' `search_path`.
///
/// The host calls this once at start-up, before building stores on `pool`; replicas
/// starting together take turns on an advisory lock.
///
/// # Errors
///
/// [`StoreError::Unavailable`] if the server cannot be reached, and
/// [`StoreError::Backend`] if a migration fails or the database holds migrations this
/// build does not know.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/postgres")
        .run(pool)
        .await
        .map_err(|err| BACKEND.migrate_error(err))
}

/// How long a pooled connection may sit idle before [`pool_options`] pings it when it is
/// handed out again: 10 seconds.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// sqlx's default pool settings, except the health check: a connection that was idle for
/// at least `ping_if_idle_for` is pinged before the pool hands it out (a dead one is closed
/// and another taken), and one used more recently is handed out as is.
///
/// sqlx pings before every acquire by default, which doubles the round trips of a store
/// call (ping, then the statement). A socket that the server or the network closed is
/// found by the ping when the connection has rested; one that dies within
/// `ping_if_idle_for` of its last use fails its statement with
/// [`StoreError::Unavailable`], as a connection that dies mid-statement always does, and
/// the pool replaces it. [`connect`] uses [`PING_IF_IDLE_FOR`].
pub fn pool_options(ping_if_idle_for: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_if_idle_for {
                    // An error closes the connection and the pool takes another.
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Opens a pool on the Postgres database at `url` with [`pool_options`] and
/// [`PING_IF_IDLE_FOR`].
///
/// The pool is not migrated; call [`migrate`]. Hosts that need other pool settings build
/// their own `PgPool` (starting from [`pool_options`], or not) and hand it to the stores.
///
/// # Errors
///
/// [`StoreError::Unavailable`] if the server cannot be reached, and
/// [`StoreError::Backend`] if `url` is malformed or the server refuses the login.
pub async fn connect(url: &str) -> Result<PgPool, StoreError> {
    pool_options(PING_IF_IDLE_FOR)
        .connect(url)
        .await
        .map_err(|err| BACKEND.error(err))
}
