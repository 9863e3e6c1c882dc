//! Unit tests of the diagnostics types: cursors, kinds, redaction and explanations.

use serde_json::json;
use time::macros::datetime;

use super::triage::{explain_events, redact};
use super::*;
use crate::context::ServiceName;
use crate::ids::SequentialIds;
use crate::time::ManualClock;

fn ctx() -> RequestContext {
    let clock = ManualClock::new(datetime!(2030-01-01 00:00:00.000_001 UTC));
    RequestContext::builder(Principal::Service(ServiceName::new("t").unwrap())).build(&clock, &SequentialIds::default())
}

#[test]
fn a_cursor_round_trips_and_garbage_is_refused() {
    let event = DiagnosticEvent::new(&ctx(), EventKind::Query, "x");
    let position = EventPosition::of(&event);
    assert_eq!(EventPosition::from_cursor(&position.to_cursor()), Some(position));
    for bad in ["", "12", "12.", "x.evt_01", "12.org_00000000000000000000000000"] {
        assert_eq!(EventPosition::from_cursor(bad), None, "{bad}");
    }
}

#[test]
fn every_kind_parses_back_from_its_name() {
    for kind in EventKind::ALL {
        assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
    }
    assert_eq!(EventKind::parse("nope"), None);
    for outcome in [Outcome::Succeeded, Outcome::Denied, Outcome::Rejected, Outcome::Failed] {
        assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
    }
}

#[test]
fn events_of_one_request_get_distinct_increasing_ids() {
    let ctx = ctx();
    let a = DiagnosticEvent::new(&ctx, EventKind::Query, "a");
    let b = DiagnosticEvent::new(&ctx, EventKind::Query, "b");
    assert!(b.id > a.id);
    assert_ne!(a.clone().with_new_id().id, a.id);
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
    assert_eq!(
        decision.detail["decision"],
        json!({ "decision": "denied", "roles": ["viewer"], "would_grant": ["admin"] })
    );
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

#[test]
fn a_constant_names_schema_is_made_once_per_exact_constant() {
    let first = constant_schema("tenancy.org.read");
    assert_eq!(first, "tenancy.org.read.v1");
    // The same kept string, not a new one.
    assert!(std::ptr::eq(first, constant_schema("tenancy.org.read")));
    // A constant that starts at the same address but is shorter is another name.
    let whole: &'static str = "tenancy.org.read";
    assert_eq!(constant_schema(&whole[..11]), "tenancy.org.v1");
    assert_eq!(constant_schema(whole), "tenancy.org.read.v1");
}

/// Keeps what it is given.
#[derive(Default)]
struct Collected(std::sync::Mutex<Vec<DiagnosticEvent>>);

impl DiagnosticSink for Collected {
    fn record(&self, event: DiagnosticEvent) {
        self.0.lock().unwrap().push(event);
    }
}

#[test]
fn record_outcome_names_the_schema_after_the_event() {
    let sink = Collected::default();
    let event = DiagnosticEvent::new(&ctx(), EventKind::Query, "tenancy.org.read");
    record_outcome(&sink, event, &Ok::<_, PortalError>(()), |()| json!({}));
    // A name made at run time gets its schema formatted.
    let event = DiagnosticEvent::new(&ctx(), EventKind::Query, format!("job.{}", 7));
    record_outcome(&sink, event, &Ok::<_, PortalError>(()), |()| json!({}));
    let events = sink.0.lock().unwrap();
    assert_eq!(events[0].schema, "tenancy.org.read.v1");
    assert_eq!(events[1].schema, "job.7.v1");
}
