//! Storage adapters and diagnostic sinks for `portal-core`: in-memory, SQLite and Postgres.
//!
//! Every store port of `portal-core` is implemented once per backend, in a module of
//! its own with the same file set in each (`memory`, `sqlite`, `postgres`), and every
//! implementation passes the same conformance suite (`portal_core::testing`). The SQL
//! backends map driver errors to `StoreError` in one place, so a lost connection reads
//! the same (`storage.unavailable`, retryable) whichever database is behind it.
//!
//! | feature    | default | what it adds |
//! |------------|---------|--------------|
//! | `sqlite`   | yes     | [`sqlite`]: the embedded store, on a file or in memory, with its migrations |
//! | `postgres` | yes     | [`postgres`]: the store for many replicas sharing one database, with its migrations |
//!
//! The [`webhooks`] delivery worker signs and POSTs the webhook deliveries any store fans
//! out.
//!
//! The [`mail`] adapters (SMTP, and a folder for development) deliver `portal_core::mail`
//! messages.
//!
//! The [`memory`] stores and the [`observability`] sinks (tracing, the in-memory journal, the
//! buffered journal sink and the opt-in `JournalLayer` for `tracing_subscriber`) are always available.
//!
//! [`counted`] wraps any store port in a decorator that counts the calls made through it.
//!
//! Migrations are embedded in the binary; the host runs them at start-up with
//! `sqlite::migrate` or `postgres::migrate` before it builds a store.

pub mod counted;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod idempotency_rows;
pub mod mail;
pub mod memory;
pub mod observability;
mod policy_lines;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod webhooks;

/// The README's quick start, compiled and run as a doc test.
#[cfg(all(doctest, feature = "sqlite"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeQuickStart;
