//! Unit tests of triage's pure parts: the customer's redaction and explanations.

use serde_json::json;
use time::macros::datetime;

use super::{Evidence, Viewer, explain_events, redact};
use crate::context::{Principal, RequestContext, ServiceName};
use crate::diagnostics::{DiagnosticEvent, EventKind};
use crate::error::ErrorCode;
use crate::ids::SequentialIds;
use crate::time::ManualClock;

fn ctx() -> RequestContext {
    let clock = ManualClock::new(datetime!(2030-01-01 00:00:00.000_001 UTC));
    RequestContext::builder(Principal::Service(ServiceName::new("t").unwrap())).build(&clock, &SequentialIds::default())
}

#[test]
fn the_customer_view_hides_failure_reasons_rules_and_error_chains() {
    let ctx = ctx();
    let auth = redact(
        DiagnosticEvent::new(&ctx, EventKind::Authentication, "auth.sign_in")
            .with_detail("auth.v1", json!({ "method": "password", "failure": "locked" })),
    );
    assert_eq!(auth.detail, json!({ "method": "password", "failure": "redacted" }));
    let decision = redact(DiagnosticEvent::new(&ctx, EventKind::PermissionDecision, "access.check").with_detail(
        "access.decision.v1",
        json!({ "object": "members", "decision": { "decision": "denied", "reason": { "kind": "no_grant" }, "roles": ["viewer"], "would_grant": ["admin"] } }),
    ));
    assert_eq!(decision.detail["decision"], json!({ "decision": "denied" }));
    let fault = redact(DiagnosticEvent::new(&ctx, EventKind::StorageFault, "x").with_detail(
        "storage.fault.v1",
        json!({ "operation": "x", "error": "postgres: password authentication failed" }),
    ));
    assert_eq!(fault.detail, json!({ "operation": "x", "error": "redacted" }));
}

#[test]
fn a_request_that_succeeded_has_no_root_cause() {
    let ctx = ctx();
    let events = vec![DiagnosticEvent::new(&ctx, EventKind::Query, "tenancy.org.get")];
    let x = explain_events(ctx.request_id(), Viewer::Support, &events);
    assert_eq!(x.root_cause, None);
    assert!(x.evidence.is_empty());
    assert!(x.summary.contains("succeeded"), "{}", x.summary);
    let none = explain_events(ctx.request_id(), Viewer::Support, &[]);
    assert_eq!(none.events, 0);
    assert_eq!(none.root_cause, None);
}

#[test]
fn any_other_failure_is_explained_by_its_code_and_message() {
    let ctx = ctx();
    let failed = DiagnosticEvent::new(&ctx, EventKind::TenancyChange, "tenancy.member.remove")
        .with_error(ErrorCode::LastOwner)
        .with_detail(
            "error.v1",
            json!({ "message": "the organization would lose its last owner" }),
        );
    let x = explain_events(ctx.request_id(), Viewer::Customer, &[failed]);
    assert_eq!(x.root_cause, Some(ErrorCode::LastOwner));
    assert_eq!(x.failed_step.as_deref(), Some("tenancy.member.remove"));
    assert!(matches!(&x.evidence[..], [Evidence::Error { message: Some(m), .. }] if m.contains("last owner")));
    assert!(x.next_step.is_some());
}
