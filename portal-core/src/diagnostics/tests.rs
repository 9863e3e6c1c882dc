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

/// Generated events for the property that [`DiagnosticEvent::write_json`] writes what
/// `serde_json` makes of the event.
mod json {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::access::{
        AccessRequest, Decision, Denial, DenialReason, Domain, Effect, Grant, Name, PolicyRule, Scope,
    };
    use crate::ids::{ApiKeyId, UserId};

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    /// Any instant RFC 3339 can write (years 0 to 9,999), at any whole-minute offset.
    fn at() -> impl Strategy<Value = OffsetDateTime> {
        let min = datetime!(0000-01-02 00:00 UTC).unix_timestamp_nanos();
        let max = datetime!(9999-12-30 00:00 UTC).unix_timestamp_nanos();
        (min..max, -23 * 60..=23 * 60_i32).prop_map(|(nanos, minutes)| {
            let offset = time::UtcOffset::from_whole_seconds(minutes * 60).unwrap();
            OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .unwrap()
                .to_offset(offset)
        })
    }

    fn principal() -> impl Strategy<Value = Principal> {
        prop_oneof![
            uuid().prop_map(|u| Principal::User(UserId::from_uuid(u))),
            (uuid(), uuid()).prop_map(|(k, o)| Principal::ApiKey {
                key: ApiKeyId::from_uuid(k),
                org: OrgId::from_uuid(o),
            }),
            "[a-z0-9._-]{1,64}".prop_map(|name| Principal::Service(ServiceName::new(&name).unwrap())),
        ]
    }

    /// Any JSON, numbers as the integers and binary fractions a text holds exactly.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// A typed detail, as the library defers them: nested, with optional fields.
    #[derive(Debug, Clone, serde::Serialize)]
    struct Typed {
        label: String,
        rows: Vec<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        extra: Option<Value>,
        principal: Principal,
    }

    fn typed() -> impl Strategy<Value = Typed> {
        (
            any::<String>(),
            prop::collection::vec(any::<u32>(), 0..4),
            any::<Option<String>>(),
            prop::option::of(value()),
            principal(),
        )
            .prop_map(|(label, rows, note, extra, principal)| Typed {
                label,
                rows,
                note,
                extra,
                principal,
            })
    }

    /// An access decision's detail, allowed or denied, for a user or for an API key.
    fn decision() -> impl Strategy<Value = DeferredDetail> {
        (
            principal(),
            uuid(),
            "(cases|members|org)(/[a-zé0-9_]{0,60})?",
            "read|write|approve|\\*",
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(principal, org, object, action, allowed, exact, key)| {
                let domain = Domain::Org(OrgId::from_uuid(org));
                let rule = PolicyRule {
                    subject: Name::from("member"),
                    domain,
                    object: if exact {
                        Name::from(object.as_str())
                    } else {
                        Name::from("cases/*")
                    },
                    action: Name::from(action.as_str()),
                    effect: if allowed { Effect::Allow } else { Effect::Deny },
                };
                let decision = if allowed {
                    Decision::Allowed(Grant {
                        rule,
                        via: vec![Name::from("member")],
                    })
                } else {
                    Decision::Denied(Denial {
                        reason: if exact {
                            DenialReason::ExplicitDeny { rule }
                        } else {
                            DenialReason::NoGrant
                        },
                        roles: vec![crate::access::RoleName::member()],
                        would_grant: vec![Name::from("owner")],
                    })
                };
                let scopes = key.then(|| Arc::from(vec![Scope::new("cases/*", "read").unwrap()]));
                let request = AccessRequest {
                    principal: &principal,
                    domain,
                    roles: &[],
                    object: &object,
                    action: &action,
                };
                DeferredDetail::decision(DecisionDetail::new(&request, decision, scopes))
            })
    }

    /// How the generated event's detail is made.
    #[derive(Debug, Clone)]
    enum Made {
        Null,
        Plain(Value),
        /// Deferred, and read once before writing (its JSON built) when `read` is set.
        Deferred {
            typed: Typed,
            read: bool,
        },
        DeferredValue(Value),
        Decision,
    }

    fn made() -> impl Strategy<Value = Made> {
        prop_oneof![
            Just(Made::Null),
            value().prop_map(Made::Plain),
            (typed(), any::<bool>()).prop_map(|(typed, read)| Made::Deferred { typed, read }),
            value().prop_map(Made::DeferredValue),
            Just(Made::Decision),
        ]
    }

    fn event() -> impl Strategy<Value = DiagnosticEvent> {
        let ids = (uuid(), at(), uuid(), "[A-Za-z0-9._:-]{0,64}", any::<Option<String>>());
        let who = (
            prop::option::of(uuid()),
            prop::option::of(principal()),
            prop::option::of(principal()),
        );
        let what = (
            prop::sample::select(EventKind::ALL),
            prop_oneof![
                Just(Cow::Borrowed("workflow.view")),
                any::<String>().prop_map(Cow::Owned)
            ],
            prop::sample::select(vec![
                Outcome::Succeeded,
                Outcome::Denied,
                Outcome::Rejected,
                Outcome::Failed,
            ]),
            prop::option::of(prop::sample::select(ErrorCode::ALL)),
            prop::option::of((any::<u64>(), 0..1_000_000_000_u32).prop_map(|(s, n)| Duration::new(s, n))),
            prop_oneof![
                Just(Cow::Borrowed("workflow.view.v1")),
                any::<String>().prop_map(Cow::Owned)
            ],
        );
        (ids, who, what, made(), decision()).prop_map(
            |(
                (id, at, request, client, trace_id),
                (org, actor, real_actor),
                (kind, name, outcome, code, duration, schema),
                made,
                decision,
            )| {
                let event = DiagnosticEvent {
                    id: EventId::from_uuid(id),
                    at,
                    request_id: RequestId::from_uuid(request),
                    client_request_id: ClientRequestId::new(&client),
                    trace_id,
                    org: org.map(OrgId::from_uuid),
                    actor,
                    real_actor,
                    kind,
                    name,
                    outcome,
                    code,
                    duration,
                    schema,
                    detail: Detail::null(),
                };
                match made {
                    Made::Null => event,
                    Made::Plain(value) => DiagnosticEvent {
                        detail: Detail::from(value),
                        ..event
                    },
                    Made::Deferred { typed, read } => {
                        let detail = Detail::deferred(typed);
                        if read {
                            let _ = detail.value();
                        }
                        DiagnosticEvent { detail, ..event }
                    }
                    Made::DeferredValue(value) => DiagnosticEvent {
                        detail: Detail::deferred(value),
                        ..event
                    },
                    Made::Decision => decision.apply(event),
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The journals' encoding is the event's `Serialize` to the byte, so it reads back
        /// as the same JSON and the same event.
        #[test]
        fn write_json_writes_what_serde_json_makes_of_the_event(event in event()) {
            let deferred = event.detail.is_deferred();
            let written = event.to_json().unwrap();
            prop_assert_eq!(event.detail.is_deferred(), deferred, "writing builds no JSON value");
            prop_assert_eq!(&written, &serde_json::to_string(&event).unwrap());
            let read: Value = serde_json::from_str(&written).unwrap();
            prop_assert_eq!(read, serde_json::to_value(&event).unwrap());
            prop_assert_eq!(serde_json::from_str::<DiagnosticEvent>(&written).unwrap(), event);
        }
    }

    #[test]
    fn write_json_fails_where_serialize_fails() {
        let mut event = DiagnosticEvent::new(&ctx(), EventKind::Query, "x");
        event.at = OffsetDateTime::UNIX_EPOCH.replace_year(-1).unwrap();
        assert!(serde_json::to_string(&event).is_err());
        assert!(event.to_json().is_err(), "a year RFC 3339 cannot write");
        let event = DiagnosticEvent::new(&ctx(), EventKind::Query, "x")
            .with_detail("x.v1", Detail::deferred(std::collections::HashMap::from([((1, 2), 3)])));
        assert!(serde_json::to_string(&event).is_err());
        assert!(event.to_json().is_err(), "a map whose keys are not strings");
    }
}
