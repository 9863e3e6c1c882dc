//! The versioned detail schemas of diagnostic events, per kind.
//!
//! An event's `schema` names the shape of its `detail`, with a version suffix (`.v1`).
//! A schema never changes once published: a new shape gets a new version, and readers
//! (the [`TriageService`](crate::triage::TriageService), exports) match on the name.
//!
//! | kind | schema | detail |
//! |---|---|---|
//! | any | `error.v1` | `message`, `details` (the error's machine-readable details), `param` |
//! | `permission_decision` | `access.decision.v1` | `domain`, `principal`, `object`, `action`, `decision` (the [`Decision`](crate::access::Decision) with its explanation) |
//! | `permission_decision` | `access.reach.v1` | `org`, `principal`, `member: false`, `support_grant: false`, `home_org`: the actor cannot reach the org |
//! | `permission_decision` | `access.mfa_required.v1` | `user`, `org`: a member without a second factor refused in an org whose MFA policy is on |
//! | `permission_decision` | `support.access.v1` | `grant`, `staff`, `org`, `access`, `role`, `expires_at` |
//! | `storage_fault` | `storage.fault.v1` | `operation` (the failing operation's name), `error` (the error chain, support only) |
//! | `authentication` | `auth.v1` | `method`, `failure` (`locked`, `expired`, `bad_password`, ...: support only), `session` |
//! | `workflow_transition` | `workflow.transition.v1`, `workflow.vote.v1`, `workflow.create.v1` | `id`, `transition`, `state`, `version` |
//! | `tenancy_change`, `query` | `<operation name>.v1` | what the operation changed or read (ids and counts, never secrets) |
//! | `host` | `host.event.v1` | `level`, `target`, `message` and the host event's fields (secret-named fields redacted) |
//! | `request` | `host.span.v1` | `span` and the span's fields (secret-named fields redacted) |
//! | `diagnostics` | `diagnostics.dropped.v1` | `dropped` since the last report, `total` |
//!
//! A failed workflow transition's `error.v1` detail holds, in `details`, the `state`, the
//! `instance` and the transitions `available` from that state at that moment; a version
//! conflict holds `current_version`; a reused idempotency key holds `idempotency_key`.

/// The detail of a failed operation.
pub const ERROR_V1: &str = "error.v1";
/// An access decision with its explanation.
pub const ACCESS_DECISION_V1: &str = "access.decision.v1";
/// An actor that cannot reach an org (not a member, no support grant).
pub const ACCESS_REACH_V1: &str = "access.reach.v1";
/// A member without a second factor refused in an org that requires one.
pub const ACCESS_MFA_REQUIRED_V1: &str = "access.mfa_required.v1";
/// A support grant used to enter an org.
pub const SUPPORT_ACCESS_V1: &str = "support.access.v1";
/// A failing store operation.
pub const STORAGE_FAULT_V1: &str = "storage.fault.v1";
/// A sign-in, session or API key check.
pub const AUTH_V1: &str = "auth.v1";
/// An event of the host's own code.
pub const HOST_EVENT_V1: &str = "host.event.v1";
/// A span of the host's own code, when it closes.
pub const HOST_SPAN_V1: &str = "host.span.v1";
/// A report of events a sink dropped.
pub const DROPPED_V1: &str = "diagnostics.dropped.v1";
