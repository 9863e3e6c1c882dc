//! In-memory stores: the reference implementations of `portal-core`'s store ports.
//!
//! They keep everything in one process behind a mutex, so they suit tests, demos and
//! single-process tools, and lose everything when dropped. Each is the executable
//! specification its SQL counterparts are compared with: the conformance suites in
//! `portal_core::testing` and the tenancy model's differential property tests run the
//! memory store and a SQL store side by side and demand the same answers.

mod audit;
mod external_identity;
mod idempotency;
mod identity;
mod policy;
mod scim;
mod support;
mod tenancy;
mod webhooks;
mod workflow;

pub use audit::InMemoryAuditLog;
pub use external_identity::InMemoryExternalIdentityStore;
pub use idempotency::InMemoryIdempotencyStore;
pub use identity::InMemoryIdentityStore;
pub use policy::{InMemoryPolicyFeed, InMemoryPolicyStore};
pub use scim::InMemoryScimStore;
pub use support::InMemorySupportGrantStore;
pub use tenancy::InMemoryTenancyStore;
pub use webhooks::InMemoryWebhookStore;
pub use workflow::InMemoryWorkflowStore;
