//! Conformance suites every adapter must pass, and the tenancy model for property tests.
//!
//! Compiled with the `testing` feature. Each store port has a suite with one
//! `pub async fn` per clause of the port's `# Errors` contract and documented behaviour,
//! in the manner of `object_store`'s integration suite: the function's doc comment
//! states the clause, and its body proves it with assertions on the exact
//! [`StoreError`](crate::StoreError) and [`Conflict`](crate::store::Conflict) variants.
//!
//! - [`audit`]: the outbox suite (a tenancy store writes each audited change's event in
//!   its transaction; an [`AuditLog`](crate::audit::AuditLog) reads them back), and
//!   [`audit_log_conformance!`](crate::audit_log_conformance).
//! - [`tenancy`]: the [`TenancyStore`](crate::TenancyStore) suite, and
//!   [`tenancy_store_conformance!`](crate::tenancy_store_conformance), which expands to
//!   one `#[tokio::test]` per clause.
//! - [`workflow`]: the [`WorkflowStore`](crate::workflow::WorkflowStore) suite, and
//!   [`workflow_store_conformance!`](crate::workflow_store_conformance).
//! - [`workflow_outbox`]: a workflow store writes each change's customer audit event in
//!   its transaction (none for a refusal or a replay), and
//!   [`workflow_outbox_conformance!`](crate::workflow_outbox_conformance).
//! - [`support`]: the [`SupportGrantStore`](crate::support::SupportGrantStore) suite, and
//!   [`support_grant_store_conformance!`](crate::support_grant_store_conformance).
//! - [`identity`]: the credential, session, API key and login attempt store suite, and
//!   [`identity_store_conformance!`](crate::identity_store_conformance).
//! - [`email_change`]: the [`EmailChangeStore`](crate::identity::EmailChangeStore) suite (with
//!   the tenancy store over the same users), and
//!   [`email_change_store_conformance!`](crate::email_change_store_conformance).
//! - [`external_identity`]: the [`ExternalIdentityStore`](crate::identity::ExternalIdentityStore)
//!   suite, and [`external_identity_store_conformance!`](crate::external_identity_store_conformance).
//! - [`passkey`]: the [`PasskeyStore`](crate::identity::PasskeyStore) suite (with the tenancy
//!   store and audit log over the same users), and
//!   [`passkey_store_conformance!`](crate::passkey_store_conformance).
//! - [`scim`]: the [`ScimStore`](crate::scim::ScimStore) suite, and
//!   [`scim_store_conformance!`](crate::scim_store_conformance).
//! - [`webhooks`]: the [`WebhookStore`](crate::webhooks::WebhookStore) suite, and
//!   [`webhook_store_conformance!`](crate::webhook_store_conformance).
//! - [`idempotency`]: the [`IdempotencyStore`](crate::idempotency::IdempotencyStore) suite, and
//!   [`idempotency_store_conformance!`](crate::idempotency_store_conformance).
//! - [`journal`]: the [`Journal`](crate::diagnostics::Journal) suite, and
//!   [`journal_store_conformance!`](crate::journal_store_conformance).
//! - [`model`]: a generator of random tenancy operation sequences, a runner that applies
//!   them through the real [`TenancyService`](crate::TenancyService) with a
//!   deterministic clock and ids, and the invariants every run must keep. Two stores fed
//!   the same sequence must produce equal transcripts.
//! - [`tracing_capture`]: a test's own `tracing` subscriber that hears every callsite,
//!   even one another test's thread reached first.
//!
//! # Running the suite against your own store
//!
//! Add `portal-core` with the `testing` feature and `tokio` (with `macros` and `rt`) as
//! dev-dependencies, then call the macro in an integration test with an expression that
//! makes a fresh store. The expression is a future whose output is `Option<S>`: return
//! `None` (after printing why) to skip the suite, for example when the database URL is
//! not set. It is evaluated once per clause, so every test gets a fresh store.
//!
//! ```ignore
//! // tests/conformance.rs of your crate
//! mod my_store {
//!     async fn fresh() -> Option<MyTenancyStore> {
//!         let Ok(url) = std::env::var("MY_DATABASE_URL") else {
//!             eprintln!("skipped: MY_DATABASE_URL is not set");
//!             return None;
//!         };
//!         Some(MyTenancyStore::connect(&url).await.expect("the test database is reachable"))
//!     }
//!
//!     portal_core::tenancy_store_conformance!(fresh());
//! }
//! ```
//!
//! The clauses never assume an empty store: each makes its own users, organizations and
//! invitations with fresh ids, slugs and email addresses, so they may share one database.
//! You can also call a single clause directly, such as
//! `portal_core::testing::tenancy::remove_member_keeps_the_last_owner(&store).await`.
//!
//! Everything here panics on failure by design: it is test code shipped as a library.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "conformance suites assert"
)]

pub mod admin_audit;
pub mod audit;
pub mod email_change;
pub mod external_identity;
pub mod idempotency;
pub mod identity;
pub mod identity_audit;
pub mod journal;
pub mod model;
pub mod passkey;
pub mod policy;
pub mod scim;
pub mod support;
pub mod tenancy;
pub mod tracing_capture;
pub mod webhooks;
pub mod workflow;
pub mod workflow_outbox;
