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
//! Modules, in layers from the bottom up: a module imports only modules of the layers
//! below its own (a test of the crate, `tests/architecture.rs`, fails on an import that
//! goes up or round in a circle).
//!
//! 1. The shared vocabulary, which imports no service:
//!    - [`ids`]: typed, time-sortable ids (`org_…`, `usr_…`, `wf_…`, `req_…`);
//!      [`time`]: the [`Clock`] port.
//!    - [`error`]: stable [`ErrorCode`]s, [`PortalError`] and the RFC 9457 [`Problem`];
//!      [`store`]: [`StoreError`] and cursor pagination, shared by every store port.
//!    - [`principal`]: who acts ([`Principal`]).
//!    - [`access`]: role names, API key scopes, permissions, the built-in role table,
//!      access requests and decisions with reasons; the [`Authorizer`] and
//!      [`PolicyStore`](access::PolicyStore) ports.
//!    - [`context`]: the [`RequestContext`] every operation takes first.
//!    - [`audit`]: the customer audit log's [`AuditEvent`](audit::AuditEvent), written by
//!      the stores in the transaction of the change it describes (the outbox), and the
//!      [`AuditLog`](audit::AuditLog) port that reads it back.
//!    - [`idempotency`]: the [`IdempotencyStore`](idempotency::IdempotencyStore) port,
//!      durable `Idempotency-Key` records with an atomic claim, shared by every replica.
//! 2. [`diagnostics`]: [`DiagnosticEvent`], the [`DiagnosticSink`] and [`Journal`] ports.
//! 3. [`gate`]: the [`Gate`], the one path every operation decides access through and
//!    records its outcome through.
//! 4. The concepts, each with its values, ports and service:
//!    - [`tenancy`]: organizations, users, memberships, invitations; [`TenancyService`].
//!    - [`identity`]: credentials, the [`Authenticator`](identity::Authenticator) port, and
//!      the password, session, API key and login attempt stores.
//!    - [`support`]: support access grants; [`SupportService`](support::SupportService).
//!    - [`policy`]: custom roles, assignment, "what can this member do", "who can do this";
//!      [`PolicyService`](policy::PolicyService).
//!    - [`workflow`]: typed workflow definitions, instances, the
//!      [`WorkflowStore`](workflow::WorkflowStore) port and
//!      [`WorkflowService`](workflow::WorkflowService): transitions, approvals, due dates.
//!    - [`audit_trail`]: [`AuditTrailService`](audit_trail::AuditTrailService), an org's
//!      customers reading their own audit log (`audit read`).
//!    - [`webhooks`]: an org's audit events delivered to its systems, signed as Standard
//!      Webhooks; [`WebhookService`](webhooks::WebhookService), the
//!      [`WebhookStore`](webhooks::WebhookStore) port.
//!    - [`triage`]: [`TriageService`](triage::TriageService), support's reading of the
//!      journal: one request, timelines, `explain`, support bundles.
//! 5. [`portal`]: the [`Portal`] facade and its builder.
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `testing` | `portal_core::testing`: the conformance suites every adapter must pass, and `testing::model`, the tenancy model for property tests |
//! | `mock` | `mockall` mocks of every port (`MockTenancyStore`, ...) for fault injection |

pub mod access;
pub mod audit;
pub mod audit_trail;
pub mod context;
pub mod diagnostics;
pub mod error;
pub mod gate;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod mail;
pub mod policy;
pub mod portal;
pub mod principal;
pub mod scim;
pub mod store;
pub mod support;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod triage;
pub mod webhooks;
pub mod workflow;

pub use access::{AccessRequest, Authorizer, Decision};
pub use context::RequestContext;
pub use diagnostics::{DiagnosticEvent, DiagnosticSink, Journal};
pub use error::{ErrorCode, PortalError, Problem};
pub use gate::Gate;
pub use ids::{IdGenerator, OrgId, RequestId, UserId};
pub use portal::{Portal, PortalBuilder};
pub use principal::Principal;
pub use store::{Page, PageRequest, StoreError};
pub use tenancy::{TenancyService, TenancyStore};
pub use time::Clock;
