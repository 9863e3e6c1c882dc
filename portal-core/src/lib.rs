//! The domain, ports and services of an embeddable B2B customer portal.
//!
//! `portal-core` holds no I/O: storage, identity providers and diagnostics sinks are
//! ports (traits) that `portal-adapters` and `portal-auth` implement, and a host service
//! wires them into a [`Portal`] once at start-up.
//!
//! Modules, in reading order:
//!
//! - [`ids`]: typed, time-sortable ids (`org_…`, `usr_…`, `wf_…`, `req_…`).
//! - [`context`]: the [`RequestContext`] every operation takes first.
//! - [`error`]: stable [`ErrorCode`]s, [`PortalError`] and the RFC 9457 [`Problem`].
//! - [`store`]: [`StoreError`] and cursor pagination, shared by every store port.
//! - [`tenancy`]: organizations, users, memberships, invitations; [`TenancyService`].
//! - [`access`]: access requests, decisions with reasons, the [`Authorizer`] and
//!   [`PolicyStore`](access::PolicyStore) ports.
//! - [`identity`]: credentials, the [`Authenticator`](identity::Authenticator) port, and
//!   the password, session and API key stores.
//! - [`workflow`]: workflow instances and the [`WorkflowStore`](workflow::WorkflowStore) port.
//! - [`diagnostics`]: [`DiagnosticEvent`], the [`DiagnosticSink`] and [`Journal`] ports.
//! - [`time`]: the [`Clock`] port.
//! - [`portal`]: the [`Portal`] facade and its builder.
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `testing` | `portal_core::testing`: the conformance suites every adapter must pass |
//! | `mock` | `mockall` mocks of every port (`MockTenancyStore`, ...) for fault injection |

pub mod access;
pub mod context;
pub mod diagnostics;
pub mod error;
pub mod identity;
pub mod ids;
pub mod portal;
pub mod store;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod workflow;

pub use access::{AccessRequest, Authorizer, Decision};
pub use context::{Principal, RequestContext};
pub use diagnostics::{DiagnosticEvent, DiagnosticSink, Journal};
pub use error::{ErrorCode, PortalError, Problem};
pub use ids::{IdGenerator, OrgId, RequestId, UserId};
pub use portal::{Portal, PortalBuilder};
pub use store::{Page, PageRequest, StoreError};
pub use tenancy::{TenancyService, TenancyStore};
pub use time::Clock;
