//! HTTP tests of the axum server through the real router (tower's `oneshot`): every
//! route's success and its documented errors, on a fresh in-memory SQLite portal with the
//! demo data per test. Postgres runs only with `PORTAL_TEST_POSTGRES_URL` set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;
#[path = "../../../../portal-adapters/tests/smtp_sink/mod.rs"]
mod smtp_sink;
#[path = "../soft_key/mod.rs"]
mod soft_key;

mod admin_audit;
mod audit;
mod authorize_first;
mod bearer;
mod cross_tenant;
mod edge;
mod email_change;
mod email_verification;
mod hot_path;
mod idempotency;
mod identity;
mod identity_audit;
mod input;
mod journal;
mod mfa;
mod openapi;
mod org_switch;
mod passkeys;
mod password_reset;
mod postgres;
mod proxy;
mod scim;
mod sign_in_throttle;
mod sign_up;
mod strings;
mod support_bundle;
mod support_grant_use;
mod tenancy;
mod triage;
mod versions;
mod votes;
mod webhooks;
mod wire;
mod workflow_events;
mod workflow_history;
mod workflows;
