//! Request and response bodies of the `/v1` API, shared by every server: serde for the
//! wire, `utoipa::ToSchema` for the OpenAPI document. Conversions from the core's types
//! live here too, so a framework adapter never builds a body by hand.
//!
//! The bodies are grouped by resource, one file each, and every one is re-exported here,
//! so `use portal_http::dto::*;` reaches them all:
//!
//! | file | what it holds |
//! |---|---|
//! | `dto/audit.rs` | the customer audit log's events, pages and CSV lines |
//! | `dto/common.rs` | [`ShownOnce`], the secret shown once in a response |
//! | `dto/identity.rs` | sign-in, switching orgs, `me`, sessions, users, API keys |
//! | `dto/orgs.rs` | orgs, members, invitations |
//! | `dto/roles.rs` | custom roles, their permissions, role assignment |
//! | `dto/workflows.rs` | workflow instances, transitions, history, assignment, votes, delegations |
//! | `dto/support.rs` | support access grants (reason, expiry, read-only or not) |
//! | `dto/definitions.rs` | workflow definitions: states, transitions, Mermaid |
//! | `dto/diagnostics.rs` | diagnostic events, explanations, support bundles, JSON-lines exports |
//! | `dto/webhooks.rs` | webhook endpoints, the secret shown once, the attempt log, replays, event types |

mod audit;
mod common;
mod definitions;
mod diagnostics;
mod identity;
mod orgs;
mod roles;
mod support;
mod webhooks;
mod workflows;

pub use audit::*;
pub use common::*;
pub use definitions::*;
pub use diagnostics::*;
pub use identity::*;
pub use orgs::*;
pub use roles::*;
pub use support::*;
pub use webhooks::*;
pub use workflows::*;
