//! Changing an instance's payload and assignee: as part of a transition
//! (`WorkflowService::transition_with`, the payload validated by the definition, a new
//! assignee a member) and through the dedicated `assign` operation (permission-checked,
//! versioned, recorded in the history), each refusal with its code and nothing written.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod workflow_world;

use portal_core::ErrorCode;
use portal_core::tenancy::User;
use portal_core::workflow::catalog::SupportCase;
use portal_core::workflow::{AssigneeChange, Edits, EntryKind, Instance, NewInstance, PayloadEdit};
use serde_json::json;
use workflow_world::World;

fn case() -> NewInstance {
    NewInstance::new(
        "support_case",
        &SupportCase {
            subject: "the printer is on fire".into(),
            customer_reference: None,
        },
    )
    .unwrap()
}

async fn create(w: &World, by: &User) -> Instance {
    w.workflows().create(&w.as_user(by), w.acme.id, case()).await.unwrap()
}

async fn unchanged(w: &World, before: &Instance) {
    assert_eq!(
        w.store.get(w.acme.id, before.id).await.unwrap().as_ref(),
        Some(before),
        "nothing written"
    );
}

#[tokio::test]
async fn a_transition_merges_a_payload_patch_and_assigns_in_one_step_recorded_in_history() {
    let w = World::new().await;
    let (member, other) = (&w.members[0], &w.members[1]);
    let c = create(&w, member).await;
    let edits = Edits::none()
        .merge_payload(json!({ "customer_reference": "RMA-7" }))
        .assign(Some(other.id));
    let triaged = w
        .workflows()
        .transition_with(
            &w.as_user(member),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "high" }),
            edits,
        )
        .await
        .unwrap();
    assert_eq!((triaged.state.as_str(), triaged.version), ("triaged", 2));
    assert_eq!(triaged.assignee, Some(other.id));
    let payload: SupportCase = triaged.payload_as().unwrap();
    assert_eq!(
        payload.subject, "the printer is on fire",
        "the patch keeps other fields"
    );
    assert_eq!(payload.customer_reference.as_deref(), Some("RMA-7"));
    assert_eq!(w.store.get(w.acme.id, c.id).await.unwrap(), Some(triaged.clone()));
    let history = w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap();
    assert_eq!(
        history[1].kind,
        EntryKind::Transition {
            payload: Some(PayloadEdit::Merge(json!({ "customer_reference": "RMA-7" }))),
            assignee: Some(AssigneeChange::Assign(other.id)),
        }
    );
    // The assignee set by the edit satisfies `start`'s guard.
    let started = w
        .workflows()
        .transition(&w.as_user(other), w.acme.id, c.id, "start", 2, json!({}))
        .await
        .unwrap();
    assert_eq!(started.state, "in_progress");
    // A replace, and an unassign.
    let replaced = w
        .workflows()
        .transition_with(
            &w.as_user(other),
            w.acme.id,
            c.id,
            "ask_customer",
            3,
            json!({ "question": "which printer?" }),
            Edits::none()
                .replace_payload(json!({ "subject": "which printer is on fire" }))
                .assign(None),
        )
        .await
        .unwrap();
    assert_eq!(replaced.payload, json!({ "subject": "which printer is on fire" }));
    assert_eq!(replaced.assignee, None);
}

#[tokio::test]
async fn an_edit_the_definition_refuses_is_invalid_and_writes_nothing() {
    let w = World::new().await;
    let member = &w.members[0];
    let c = create(&w, member).await;
    for (edits, param) in [
        (Edits::none().merge_payload(json!({ "subject": 42 })), "payload"),
        (Edits::none().replace_payload(json!("just text")), "payload"),
        (Edits::none().merge_payload(json!({ "subject": null })), "payload"),
        (Edits::none().assign(Some(w.outsider.id)), "assignee"),
    ] {
        let err = w
            .workflows()
            .transition_with(
                &w.as_user(member),
                w.acme.id,
                c.id,
                "triage",
                1,
                json!({ "priority": "low" }),
                edits.clone(),
            )
            .await
            .expect_err("refused");
        assert_eq!(err.code(), ErrorCode::InvalidField, "{edits:?}: {err:?}");
        assert_eq!(err.param(), Some(param), "{edits:?}");
        unchanged(&w, &c).await;
    }
    // The transition's own checks come first.
    let err = w
        .workflows()
        .transition_with(
            &w.as_user(&w.viewer),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "low" }),
            Edits::none().merge_payload(json!({ "customer_reference": "x" })),
        )
        .await
        .expect_err("a viewer may not");
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    unchanged(&w, &c).await;
}

#[tokio::test]
async fn assign_is_versioned_permission_checked_and_recorded() {
    let w = World::new().await;
    let (member, other) = (&w.members[0], &w.members[1]);
    let c = create(&w, member).await;
    let assigned = w
        .workflows()
        .assign(&w.as_user(member), w.acme.id, c.id, 1, Some(other.id))
        .await
        .unwrap();
    assert_eq!(
        (assigned.state.as_str(), assigned.version, assigned.assignee),
        ("open", 2, Some(other.id))
    );
    assert_eq!(
        assigned.state_entered_at, c.state_entered_at,
        "the state did not change"
    );
    let history = w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1].kind,
        EntryKind::Assigned {
            previous: None,
            assignee: Some(other.id),
        }
    );
    assert_eq!((history[1].from.as_str(), history[1].to.as_str()), ("open", "open"));
    assert_eq!(history[1].version, 2);

    let stale = w
        .workflows()
        .assign(&w.as_user(member), w.acme.id, c.id, 1, None)
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), ErrorCode::VersionConflict);
    let denied = w
        .workflows()
        .assign(&w.as_user(&w.viewer), w.acme.id, c.id, 2, None)
        .await
        .expect_err("a viewer may not assign");
    assert_eq!(denied.code(), ErrorCode::AccessDenied);
    let outsider = w
        .workflows()
        .assign(&w.as_user(member), w.acme.id, c.id, 2, Some(w.outsider.id))
        .await
        .expect_err("not a member");
    assert_eq!(
        (outsider.code(), outsider.param()),
        (ErrorCode::InvalidField, Some("assignee"))
    );
    let not_member = w
        .workflows()
        .assign(&w.as_user(&w.outsider), w.acme.id, c.id, 2, None)
        .await
        .expect_err("an outsider cannot see it");
    assert_eq!(not_member.code(), ErrorCode::WorkflowNotFound);
    unchanged(&w, &assigned).await;

    let unassigned = w
        .workflows()
        .assign(&w.as_user(other), w.acme.id, c.id, 2, None)
        .await
        .unwrap();
    assert_eq!((unassigned.version, unassigned.assignee), (3, None));
}

#[tokio::test]
async fn a_closed_case_cannot_be_reassigned() {
    let w = World::new().await;
    let member = &w.members[0];
    let mut c = create(&w, member).await;
    c = w
        .workflows()
        .assign(&w.as_user(member), w.acme.id, c.id, 1, Some(member.id))
        .await
        .unwrap();
    for (name, input) in [
        ("triage", json!({ "priority": "low" })),
        ("start", json!({})),
        ("resolve", json!({ "resolution": "unplugged it" })),
        ("close", json!({})),
    ] {
        c = w
            .workflows()
            .transition(&w.as_user(member), w.acme.id, c.id, name, c.version, input)
            .await
            .unwrap();
    }
    assert_eq!(c.state, "closed");
    let err = w
        .workflows()
        .assign(&w.as_user(member), w.acme.id, c.id, c.version, None)
        .await
        .expect_err("terminal");
    assert_eq!(err.code(), ErrorCode::TransitionNotAllowed);
    unchanged(&w, &c).await;
}

#[tokio::test]
async fn assign_under_an_idempotency_key_replays() {
    let w = World::new().await;
    let (member, other) = (&w.members[0], &w.members[1]);
    let c = create(&w, member).await;
    let first = w
        .workflows()
        .assign(&w.with_key(member, "a-1"), w.acme.id, c.id, 1, Some(other.id))
        .await
        .unwrap();
    let again = w
        .workflows()
        .assign(&w.with_key(member, "a-1"), w.acme.id, c.id, 1, Some(other.id))
        .await
        .unwrap();
    assert_eq!(again, first);
    let reused = w
        .workflows()
        .assign(&w.with_key(member, "a-1"), w.acme.id, c.id, 1, None)
        .await
        .expect_err("another request");
    assert_eq!(reused.code(), ErrorCode::IdempotencyKeyReused);
    assert_eq!(w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(), 2);
}
