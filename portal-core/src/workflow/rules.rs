//! The pure rules of a workflow step: functions of values alone (an instance, its
//! definition, the request), no ports, so each is tested on its own below.

use time::OffsetDateTime;

use super::definition::{Transition, WorkflowDefinition};
use super::{GuardContext, Instance};
use crate::access::RoleName;
use crate::context::{Principal, RequestContext};
use crate::error::{ErrorCode, PortalError};

/// `workflow.not_found`: an unknown instance, or an org the actor cannot reach.
pub(super) fn not_found() -> PortalError {
    PortalError::new(ErrorCode::WorkflowNotFound, "workflow instance not found")
}

/// `workflow.version_conflict`, naming the `current_version`.
pub(super) fn version_conflict(current: u64) -> PortalError {
    PortalError::new(
        ErrorCode::VersionConflict,
        "the workflow instance changed since it was read",
    )
    .with_detail("current_version", current)
}

/// `workflow.unknown_transition` (param `transition`), quoting at most 64 characters of `name`.
pub(super) fn unknown_transition(name: &str) -> PortalError {
    PortalError::new(
        ErrorCode::UnknownTransition,
        format!(
            "the workflow has no transition `{}`",
            name.chars().take(64).collect::<String>()
        ),
    )
    .with_param("transition")
}

/// Refuses a vote on `transition` by `voter`, cast by `cast_by` (the voter, or their
/// delegate), when either made the instance (`approval.self_approval`) or the voter has
/// voted on it already (`approval.already_voted`).
pub(super) fn check_voter(
    instance: &Instance,
    transition: &str,
    voter: &Principal,
    cast_by: &Principal,
) -> Result<(), PortalError> {
    if *voter == instance.created_by || *cast_by == instance.created_by {
        return Err(PortalError::new(
            ErrorCode::SelfApproval,
            "the requester cannot vote on their own request",
        ));
    }
    if instance
        .votes
        .iter()
        .any(|v| v.transition == transition && v.voter == *voter)
    {
        return Err(PortalError::new(
            ErrorCode::AlreadyVoted,
            "this voter already voted on this transition",
        ));
    }
    Ok(())
}

/// Refuses a transition that cannot leave the instance's state. The error names the state
/// and the transitions that could leave it at that moment, so the diagnostic event of the
/// refusal holds what triage needs to explain it.
pub(super) fn check_state(
    instance: &Instance,
    definition: &WorkflowDefinition,
    transition: &Transition,
) -> Result<(), PortalError> {
    if transition.leaves(&instance.state) {
        Ok(())
    } else {
        let available: Vec<&str> = definition
            .transitions()
            .iter()
            .filter(|t| t.leaves(&instance.state))
            .map(Transition::name)
            .collect();
        Err(PortalError::new(
            ErrorCode::TransitionNotAllowed,
            format!(
                "transition `{}` cannot leave state `{}`",
                transition.name(),
                instance.state
            ),
        )
        .with_detail("state", instance.state.clone())
        .with_detail("instance", instance.id.to_string())
        .with_detail("available", available))
    }
}

/// Refuses an input that is not a JSON object or `null` (`validation.invalid_field`, param
/// `input`), or that lacks one of the transition's required fields or holds `null` there
/// (`workflow.input_missing`, param the field).
pub(super) fn check_input(transition: &Transition, input: &serde_json::Value) -> Result<(), PortalError> {
    let fields = match input {
        serde_json::Value::Object(fields) => Some(fields),
        serde_json::Value::Null => None,
        _ => return Err(PortalError::invalid_field("input", "the input must be a JSON object")),
    };
    for field in transition.inputs() {
        let present = fields.and_then(|f| f.get(field)).is_some_and(|value| !value.is_null());
        if !present {
            return Err(PortalError::new(
                ErrorCode::InputMissing,
                format!("transition `{}` needs the input `{field}`", transition.name()),
            )
            .with_param(field.clone()));
        }
    }
    Ok(())
}

/// Runs the transition's guards in order; the first refusal is `workflow.guard_failed` with
/// the guard's name in `details.guard`.
pub(super) fn check_guards(
    ctx: &RequestContext,
    roles: &[RoleName],
    instance: &Instance,
    transition: &Transition,
    input: &serde_json::Value,
) -> Result<(), PortalError> {
    let guard_ctx = GuardContext {
        actor: ctx.principal(),
        roles,
        org: instance.org,
        state: &instance.state,
        assignee: instance.assignee,
        created_by: &instance.created_by,
        input,
        now: ctx.now(),
    };
    for guard in transition.guards() {
        if let Err(failure) = guard.check(&instance.payload, &guard_ctx) {
            return Err(PortalError::new(
                ErrorCode::GuardFailed,
                format!("guard `{}` refused: {failure}", guard.name()),
            )
            .with_detail("guard", guard.name().to_owned()));
        }
    }
    Ok(())
}

/// The instance after entering `state` at `now`: next version, votes cleared, due time
/// from the state's bound.
pub(super) fn enter(
    instance: &Instance,
    definition: &WorkflowDefinition,
    state: &str,
    now: OffsetDateTime,
) -> Instance {
    Instance {
        state: state.to_owned(),
        version: instance.version + 1,
        updated_at: now,
        state_entered_at: now,
        due_at: due_at(definition, state, now),
        votes: Vec::new(),
        ..instance.clone()
    }
}

/// When an instance entering `state` at `now` is due to leave it: `None` for a state
/// without a bound.
pub(super) fn due_at(definition: &WorkflowDefinition, state: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    definition
        .state(state)
        .and_then(|s| s.due_within())
        .map(|within| now + within)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Duration;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::ids::{OrgId, SequentialIds, UserId, WorkflowId};
    use crate::time::ManualClock;
    use crate::workflow::{GuardFailure, Vote, VoteDecision, catalog};

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

    fn user(n: u128) -> Principal {
        Principal::User(UserId::from_uuid(Uuid::from_u128(n)))
    }

    /// Who created the instances of these tests.
    fn requester() -> Principal {
        user(1)
    }

    fn ctx(actor: Principal) -> RequestContext {
        RequestContext::builder(actor).build(&ManualClock::new(NOW), &SequentialIds::default())
    }

    /// An instance of `definition` in `state` at version 3, created by the requester a day
    /// ago, due an hour after that, unassigned, without votes.
    fn instance(definition: &WorkflowDefinition, state: &str, payload: serde_json::Value) -> Instance {
        let created = NOW - Duration::days(1);
        Instance {
            id: WorkflowId::from_uuid(Uuid::from_u128(7)),
            org: OrgId::from_uuid(Uuid::from_u128(9)),
            definition: definition.name().to_owned(),
            definition_version: definition.version(),
            state: state.to_owned(),
            version: 3,
            assignee: None,
            payload,
            created_by: requester(),
            created_at: created,
            updated_at: created,
            state_entered_at: created,
            due_at: Some(created + Duration::hours(1)),
            votes: Vec::new(),
        }
    }

    fn support_case() -> WorkflowDefinition {
        catalog::support_case().unwrap()
    }

    fn case_in(state: &str) -> Instance {
        instance(&support_case(), state, json!({ "subject": "printer on fire" }))
    }

    /// The code and param of a refusal, `None` for a pass.
    fn refusal(result: Result<(), PortalError>) -> Option<(ErrorCode, Option<String>)> {
        result.err().map(|err| (err.code(), err.param().map(str::to_owned)))
    }

    #[test]
    fn a_transition_may_leave_each_of_its_source_states() {
        let def = support_case();
        for transition in def.transitions() {
            for state in transition.from() {
                assert_eq!(
                    refusal(check_state(&case_in(state), &def, transition)),
                    None,
                    "`{}` from `{state}`",
                    transition.name()
                );
            }
        }
    }

    #[test]
    fn a_transition_leaving_another_state_is_refused_with_the_state_the_instance_and_what_could_leave() {
        let def = support_case();
        for (state, transition, available) in [
            ("open", "start", json!(["triage"])),
            ("resolved", "triage", json!(["close", "reopen"])),
            ("in_progress", "close", json!(["ask_customer", "resolve"])),
            ("closed", "reopen", json!([])),
        ] {
            let instance = case_in(state);
            let err = check_state(&instance, &def, def.transition(transition).unwrap()).unwrap_err();
            assert_eq!(
                err.code(),
                ErrorCode::TransitionNotAllowed,
                "`{transition}` from `{state}`"
            );
            assert_eq!(err.details()["state"], json!(state));
            assert_eq!(err.details()["instance"], json!(instance.id.to_string()));
            assert_eq!(err.details()["available"], available, "`{transition}` from `{state}`");
            assert!(
                err.message()
                    .contains(&format!("`{transition}` cannot leave state `{state}`"))
            );
        }
    }

    #[test]
    fn input_must_be_an_object_or_null_with_every_required_field_present_and_not_null() {
        let def = WorkflowDefinition::builder::<serde_json::Value>("mail", 1)
            .initial("draft")
            .terminal("sent")
            .terminal("dropped")
            .transition("send", |t| t.from("draft").to("sent").input("to").input("subject"))
            .transition("drop", |t| t.from("draft").to("dropped"))
            .build()
            .unwrap();
        let send = def.transition("send").unwrap();
        let drop = def.transition("drop").unwrap();
        let invalid_input = Some((ErrorCode::InvalidField, Some("input".to_owned())));
        let missing = |field: &str| Some((ErrorCode::InputMissing, Some(field.to_owned())));
        for (transition, input, expected) in [
            (drop, json!(null), None),
            (drop, json!({}), None),
            (drop, json!({ "extra": 1 }), None),
            (drop, json!("text"), invalid_input.clone()),
            (drop, json!([]), invalid_input.clone()),
            (send, json!(42), invalid_input.clone()),
            (send, json!(null), missing("to")),
            (send, json!({}), missing("to")),
            (send, json!({ "to": null, "subject": "hi" }), missing("to")),
            (send, json!({ "to": "a@b.example" }), missing("subject")),
            (
                send,
                json!({ "to": "a@b.example", "subject": null }),
                missing("subject"),
            ),
            (send, json!({ "to": "a@b.example", "subject": "" }), None),
            (send, json!({ "to": 0, "subject": false }), None),
        ] {
            assert_eq!(
                refusal(check_input(transition, &input)),
                expected,
                "`{}` with {input}",
                transition.name()
            );
        }
    }

    #[test]
    fn a_guard_refusal_names_the_guard_in_details() {
        let def = support_case();
        let start = def.transition("start").unwrap();
        let actor = user(2);
        let unassigned = case_in("triaged");
        let err = check_guards(&ctx(actor.clone()), &[], &unassigned, start, &json!(null)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::GuardFailed);
        assert_eq!(err.details()["guard"], json!("assigned"));
        assert_eq!(err.message(), "guard `assigned` refused: the case has no assignee");
        let assigned = Instance {
            assignee: Some(UserId::from_uuid(Uuid::from_u128(3))),
            ..unassigned
        };
        assert_eq!(
            refusal(check_guards(&ctx(actor), &[], &assigned, start, &json!(null))),
            None
        );
    }

    #[test]
    fn guards_run_in_order_on_the_payload_input_and_actor_and_the_first_refusal_counts() {
        let def = WorkflowDefinition::builder::<catalog::Quote>("offer", 1)
            .initial("draft")
            .terminal("sent")
            .transition("send", |t| {
                t.from("draft")
                    .to("sent")
                    .guard("has_amount", |q: &catalog::Quote, _| {
                        if q.amount_cents > 0 {
                            Ok(())
                        } else {
                            Err(GuardFailure::new("zero"))
                        }
                    })
                    .guard("has_note", |_, ctx| match ctx.input.get("note") {
                        Some(_) => Ok(()),
                        None => Err(GuardFailure::new("no note")),
                    })
                    .guard("not_the_requester", |_, ctx| {
                        if ctx.actor == ctx.created_by {
                            Err(GuardFailure::new("own quote"))
                        } else {
                            Ok(())
                        }
                    })
            })
            .build()
            .unwrap();
        let send = def.transition("send").unwrap();
        let quote = |cents: u64| instance(&def, "draft", json!({ "customer": "acme", "amount_cents": cents }));
        let note = json!({ "note": "as agreed" });
        let guard = |actor: Principal, instance: &Instance, input: &serde_json::Value| {
            check_guards(&ctx(actor), &[], instance, send, input)
                .err()
                .map(|err| (err.code(), err.details()["guard"].clone()))
        };
        let refused_by = |name: &str| Some((ErrorCode::GuardFailed, json!(name)));
        assert_eq!(guard(user(2), &quote(0), &json!(null)), refused_by("has_amount"));
        assert_eq!(guard(user(2), &quote(5), &json!(null)), refused_by("has_note"));
        assert_eq!(guard(requester(), &quote(5), &note), refused_by("not_the_requester"));
        assert_eq!(guard(user(2), &quote(5), &note), None);
        let undecodable = instance(&def, "draft", json!({ "customer": "acme" }));
        assert_eq!(
            guard(user(2), &undecodable, &note),
            refused_by("has_amount"),
            "a payload that no longer decodes fails the first guard"
        );
    }

    #[test]
    fn a_requester_cannot_vote_on_their_own_request_even_through_a_delegate() {
        let def = catalog::quote_approval().unwrap();
        let pending = instance(
            &def,
            "pending_approval",
            json!({ "customer": "acme", "amount_cents": 5 }),
        );
        let (approver, delegate) = (user(2), user(3));
        for (voter, cast_by, expected) in [
            (requester(), requester(), Some(ErrorCode::SelfApproval)),
            (requester(), delegate.clone(), Some(ErrorCode::SelfApproval)),
            (approver.clone(), requester(), Some(ErrorCode::SelfApproval)),
            (approver.clone(), approver.clone(), None),
            (approver.clone(), delegate.clone(), None),
        ] {
            assert_eq!(
                check_voter(&pending, "approve", &voter, &cast_by)
                    .err()
                    .map(|e| e.code()),
                expected,
                "{voter:?} cast by {cast_by:?}"
            );
        }
    }

    #[test]
    fn a_voter_votes_once_per_transition_whoever_casts_it() {
        let def = catalog::quote_approval().unwrap();
        let (approver, other, delegate) = (user(2), user(3), user(4));
        let voted = Instance {
            votes: vec![Vote {
                transition: "approve".to_owned(),
                voter: approver.clone(),
                cast_by: approver.clone(),
                decision: VoteDecision::Reject,
                at: NOW,
            }],
            ..instance(
                &def,
                "pending_approval",
                json!({ "customer": "acme", "amount_cents": 5 }),
            )
        };
        for (transition, voter, cast_by, expected) in [
            ("approve", &approver, &approver, Some(ErrorCode::AlreadyVoted)),
            ("approve", &approver, &delegate, Some(ErrorCode::AlreadyVoted)),
            ("approve", &other, &other, None),
            ("approve", &other, &approver, None),
            ("reject", &approver, &approver, None),
        ] {
            assert_eq!(
                check_voter(&voted, transition, voter, cast_by).err().map(|e| e.code()),
                expected,
                "{voter:?} cast by {cast_by:?} on `{transition}`"
            );
        }
    }

    #[test]
    fn entering_a_state_bumps_the_version_clears_votes_and_restarts_the_clocks() {
        let def = support_case();
        let before = Instance {
            votes: vec![Vote {
                transition: "triage".to_owned(),
                voter: user(2),
                cast_by: user(2),
                decision: VoteDecision::Approve,
                at: NOW - Duration::hours(2),
            }],
            assignee: Some(UserId::from_uuid(Uuid::from_u128(3))),
            ..case_in("open")
        };
        let later = NOW + Duration::minutes(5);
        assert_eq!(
            enter(&before, &def, "triaged", later),
            Instance {
                state: "triaged".to_owned(),
                version: 4,
                updated_at: later,
                state_entered_at: later,
                due_at: Some(later + Duration::days(3)),
                votes: Vec::new(),
                ..before.clone()
            },
            "the rest (id, org, payload, assignee, creator, created_at) is kept"
        );
        let unbounded = enter(&before, &def, "in_progress", later);
        assert_eq!(unbounded.due_at, None, "a state without a bound drops the old due time");
        assert_eq!(unbounded.version, 4);
    }

    #[test]
    fn the_due_time_follows_the_state_bound_and_is_none_without_one() {
        let case = support_case();
        let returns = catalog::return_request().unwrap();
        for (def, state, expected) in [
            (&case, "open", Some(NOW + Duration::days(1))),
            (&case, "triaged", Some(NOW + Duration::days(3))),
            (&case, "in_progress", None),
            (&case, "closed", None),
            (&case, "no_such_state", None),
            (&returns, "requested", Some(NOW + Duration::days(2))),
            (&returns, "approved", None),
        ] {
            assert_eq!(due_at(def, state, NOW), expected, "{}: `{state}`", def.name());
        }
    }

    #[test]
    fn step_errors_carry_their_codes_and_details() {
        assert_eq!(not_found().code(), ErrorCode::WorkflowNotFound);
        let conflict = version_conflict(12);
        assert_eq!(conflict.code(), ErrorCode::VersionConflict);
        assert_eq!(conflict.details()["current_version"], json!(12));
        let unknown = unknown_transition(&"x".repeat(100));
        assert_eq!(unknown.code(), ErrorCode::UnknownTransition);
        assert_eq!(unknown.param(), Some("transition"));
        assert_eq!(
            unknown.message(),
            format!("the workflow has no transition `{}`", "x".repeat(64)),
            "a long name is cut to 64 characters"
        );
    }
}
