//! Unit tests of the diagnostics types: cursors, kinds, schemas and outcomes.

use serde_json::json;
use time::macros::datetime;

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
    record_outcome(&sink, event, Ok::<_, &PortalError>(&()), |()| json!({}));
    // A name made at run time gets its schema formatted.
    let event = DiagnosticEvent::new(&ctx(), EventKind::Query, format!("job.{}", 7));
    record_outcome(&sink, event, Ok::<_, &PortalError>(&()), |()| json!({}));
    let events = sink.0.lock().unwrap();
    assert_eq!(events[0].schema, "tenancy.org.read.v1");
    assert_eq!(events[1].schema, "job.7.v1");
}
