//! The domain, ports and services of an embeddable B2B customer portal.
//!
//! `portal-core` holds no I/O: storage, identity providers and diagnostics sinks are
//! ports (traits) that `portal-adapters` and `portal-auth` implement, and a host service
//! wires them into a [`Portal`] once at start-up.
//!
//! ```
//! use portal_core::access::{AccessRequest, Authorizer, Decision, Domain, RoleTableAuthorizer};
//! use portal_core::ids::{OrgId, RandomIds, RequestId, UserId};
//! use portal_core::tenancy::RoleName;
//! use portal_core::{ErrorCode, PortalError, Principal};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ids = RandomIds::default();
//! let now = time::OffsetDateTime::now_utc();
//! let (org, viewer) = (OrgId::generate(&ids, now), Principal::User(UserId::generate(&ids, now)));
//!
//! // Ask the default authorizer whether a viewer may remove members.
//! let decision = RoleTableAuthorizer::default().check(&AccessRequest {
//!     principal: &viewer,
//!     domain: Domain::Org(org),
//!     roles: &[RoleName::viewer()],
//!     object: "members",
//!     action: "delete",
//! })?;
//! let Decision::Denied(denial) = decision else { panic!("a viewer may not remove members") };
//! assert_eq!(denial.would_grant, ["admin", "owner"]);
//!
//! // The customer sees a stable code and a request id, never the explanation.
//! let error = PortalError::new(ErrorCode::AccessDenied, "you are not allowed to do this");
//! let problem = error.to_problem(RequestId::generate(&ids, now));
//! assert_eq!(problem.status, 403);
//! assert_eq!(problem.code.as_str(), "access.denied");
//! # Ok(())
//! # }
//! ```
//!
//! The README's quick start runs the same flow end to end on SQLite.
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
//! - [`identity`]: credentials, the [`Authenticator`](identity::Authenticator) port, API
//!   key [`Scope`](identity::Scope)s, and the password, session, API key and login
//!   attempt stores.
//! - [`workflow`]: typed workflow definitions, instances, the [`WorkflowStore`](workflow::WorkflowStore)
//!   port and [`WorkflowService`](workflow::WorkflowService): transitions, approvals, due dates.
//! - [`diagnostics`]: [`DiagnosticEvent`], the [`DiagnosticSink`] and [`Journal`] ports, and
//!   [`TriageService`](diagnostics::TriageService): one request, timelines, `explain`, support bundles.
//! - [`time`]: the [`Clock`] port.
//! - [`portal`]: the [`Portal`] facade and its builder.
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `testing` | `portal_core::testing`: the conformance suites every adapter must pass, and `testing::model`, the tenancy model for property tests |
//! | `mock` | `mockall` mocks of every port (`MockTenancyStore`, ...) for fault injection |

pub mod access;
pub mod context;
pub mod diagnostics;
pub mod error;
pub mod identity;
pub mod ids;
pub mod portal;
pub mod store;
pub mod support;
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
