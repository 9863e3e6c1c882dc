//! The workflow rules at the service level: every refusal answers its stable code,
//! approvals, delegation, due dates and idempotency behave as documented, and a storage
//! fault mid-transition leaves nothing half-applied and is safe to retry.
//!
//! The rules run against the in-memory reference stores; faults are injected with
//! `MockWorkflowStore` (feature `mock` of `portal-core`) wrapped around the memory store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod workflow_world;

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use portal_adapters::memory::InMemoryWorkflowStore;
use portal_core::diagnostics::EventKind;
use portal_core::ids::WorkflowId;
use portal_core::store::{PageRequest, StoreError};
use portal_core::support::SupportAccess;
use portal_core::tenancy::User;
use portal_core::workflow::catalog::{Quote, ReturnRequest, SupportCase};
use portal_core::workflow::{
    EntryKind, Instance, MockWorkflowStore, NewInstance, VoteDecision, VoteRequest, WorkflowFilter, WorkflowStore,
};
use portal_core::{Clock, ErrorCode, PortalError};
use serde_json::json;
use time::Duration;
use workflow_world::World;

#[track_caller]
fn err<T: Debug>(result: Result<T, PortalError>) -> PortalError {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

#[track_caller]
fn assert_code<T: Debug>(result: Result<T, PortalError>, code: ErrorCode) -> PortalError {
    let err = err(result);
    assert_eq!(err.code(), code, "{err:?}");
    err
}

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

fn quote(amount_cents: u64) -> NewInstance {
    NewInstance::new(
        "quote_approval",
        &Quote {
            customer: "Initech".into(),
            amount_cents,
        },
    )
    .unwrap()
}

async fn create(world: &World, by: &User, new: NewInstance) -> Instance {
    world
        .workflows()
        .create(&world.as_user(by), world.acme.id, new)
        .await
        .unwrap()
}

async fn fire(world: &World, by: &User, instance: &Instance, name: &str, input: serde_json::Value) -> Instance {
    world
        .workflows()
        .transition(
            &world.as_user(by),
            world.acme.id,
            instance.id,
            name,
            instance.version,
            input,
        )
        .await
        .unwrap()
}

fn vote(instance: &Instance, decision: VoteDecision) -> VoteRequest {
    VoteRequest {
        transition: "approve".into(),
        decision,
        expected_version: instance.version,
        input: json!({ "comment": "ok" }),
        on_behalf_of: None,
    }
}

/// A quote submitted by a member, pending approval.
async fn pending_quote(world: &World) -> Instance {
    let q = create(world, &world.members[0], quote(120_000)).await;
    fire(world, &world.members[0], &q, "submit", json!({})).await
}

// ---------------------------------------------------------------------------------------
// The happy path
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_support_case_runs_from_open_to_closed_with_a_history_that_matches() {
    let w = World::new().await;
    let member = &w.members[0];
    let mut c = create(&w, member, case().assigned_to(member.id)).await;
    assert_eq!((c.state.as_str(), c.version), ("open", 1));
    for (name, input) in [
        ("triage", json!({ "priority": "high" })),
        ("start", json!({})),
        ("ask_customer", json!({ "question": "which model?" })),
        ("customer_replied", json!(null)),
        ("resolve", json!({ "resolution": "replaced the fuser" })),
        ("reopen", json!({})),
        ("resolve", json!({ "resolution": "replaced it again" })),
        ("close", json!({})),
    ] {
        c = fire(&w, member, &c, name, input).await;
    }
    assert_eq!((c.state.as_str(), c.version), ("closed", 9));
    let history = w
        .workflows()
        .history(&w.as_user(member), w.acme.id, c.id, &PageRequest::first(200))
        .await
        .unwrap()
        .items;
    assert_eq!(history.len(), 9);
    assert_eq!(history[0].kind, EntryKind::Created);
    for pair in history.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "each entry starts where the previous ended");
        assert_eq!(pair[0].version + 1, pair[1].version);
    }
    assert_eq!(history.last().unwrap().to, c.state);
    let got = w.workflows().get(&w.as_user(&w.viewer), w.acme.id, c.id).await.unwrap();
    assert_eq!(got, c, "a viewer reads it");
}

#[tokio::test]
async fn the_typed_payload_round_trips() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let payload: SupportCase = c.payload_as().unwrap();
    assert_eq!(payload.subject, "the printer is on fire");
    let bad = NewInstance {
        definition: "support_case".into(),
        payload: json!({ "nope": 1 }),
        assignee: None,
    };
    let e = assert_code(
        w.workflows().create(&w.as_user(&w.members[0]), w.acme.id, bad).await,
        ErrorCode::InvalidField,
    );
    assert_eq!(e.param(), Some("payload"));
    let unknown = NewInstance {
        definition: "nope".into(),
        ..case()
    };
    let e = assert_code(
        w.workflows()
            .create(&w.as_user(&w.members[0]), w.acme.id, unknown)
            .await,
        ErrorCode::InvalidField,
    );
    assert_eq!(e.param(), Some("definition"));
}

// ---------------------------------------------------------------------------------------
// One test per refusal code
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_transition_is_workflow_unknown_transition() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let r = w
        .workflows()
        .transition(&w.as_user(&w.members[0]), w.acme.id, c.id, "teleport", 1, json!({}))
        .await;
    assert_code(r, ErrorCode::UnknownTransition);
}

#[tokio::test]
async fn a_transition_from_the_wrong_state_is_transition_not_allowed() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let r = w
        .workflows()
        .transition(&w.as_user(&w.members[0]), w.acme.id, c.id, "close", 1, json!({}))
        .await;
    let e = assert_code(r, ErrorCode::TransitionNotAllowed);
    assert_eq!(e.details()["state"], "open");
}

#[tokio::test]
async fn a_viewer_firing_a_transition_is_access_denied_and_the_decision_is_recorded() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let ctx = w.as_user(&w.viewer);
    let r = w
        .workflows()
        .transition(&ctx, w.acme.id, c.id, "triage", 1, json!({ "priority": "low" }))
        .await;
    assert_code(r, ErrorCode::AccessDenied);
    let events = w.sink.of(&ctx);
    let decision = events
        .iter()
        .find(|e| e.kind == EventKind::PermissionDecision && e.code.is_some());
    let decision = decision.expect("the denial is recorded with its explanation");
    assert_eq!(decision.detail["object"], format!("cases/{}", c.id));
    // `support` is the role a read-write support grant gives; it writes cases too.
    assert_eq!(
        decision.detail["decision"]["would_grant"],
        json!(["admin", "member", "owner", "support"])
    );
}

#[tokio::test]
async fn a_refusing_guard_is_guard_failed_and_names_the_guard() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let c = fire(&w, &w.members[0], &c, "triage", json!({ "priority": "low" })).await;
    let r = w
        .workflows()
        .transition(
            &w.as_user(&w.members[0]),
            w.acme.id,
            c.id,
            "start",
            c.version,
            json!({}),
        )
        .await;
    let e = assert_code(r, ErrorCode::GuardFailed);
    assert_eq!(e.details()["guard"], "assigned");
}

#[tokio::test]
async fn a_missing_input_field_is_input_missing_and_names_the_field() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    for input in [json!({}), json!(null), json!({ "priority": null })] {
        let r = w
            .workflows()
            .transition(&w.as_user(&w.members[0]), w.acme.id, c.id, "triage", 1, input)
            .await;
        let e = assert_code(r, ErrorCode::InputMissing);
        assert_eq!(e.param(), Some("priority"));
    }
    let r = w
        .workflows()
        .transition(&w.as_user(&w.members[0]), w.acme.id, c.id, "triage", 1, json!([1]))
        .await;
    assert_eq!(err(r).param(), Some("input"));
}

#[tokio::test]
async fn a_stale_version_is_version_conflict_with_the_current_version() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    fire(&w, &w.members[0], &c, "triage", json!({ "priority": "low" })).await;
    let r = w
        .workflows()
        .transition(
            &w.as_user(&w.members[1]),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "high" }),
        )
        .await;
    let e = assert_code(r, ErrorCode::VersionConflict);
    assert!(e.is_retryable());
    assert_eq!(e.details()["current_version"], 2);
}

#[tokio::test]
async fn another_orgs_instance_or_a_non_member_is_workflow_not_found() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let outsider = w.as_user(&w.outsider);
    assert_code(
        w.workflows().get(&outsider, w.acme.id, c.id).await,
        ErrorCode::WorkflowNotFound,
    );
    assert_code(
        w.workflows().get(&outsider, w.globex.id, c.id).await,
        ErrorCode::WorkflowNotFound,
    );
    let r = w
        .workflows()
        .transition(&outsider, w.globex.id, c.id, "triage", 1, json!({ "priority": "x" }))
        .await;
    assert_code(r, ErrorCode::WorkflowNotFound);
    let unknown = WorkflowId::from_uuid(uuid::Uuid::nil());
    let member = w.as_user(&w.members[0]);
    assert_code(
        w.workflows().get(&member, w.acme.id, unknown).await,
        ErrorCode::WorkflowNotFound,
    );
}

#[tokio::test]
async fn a_reused_idempotency_key_is_key_reused_and_a_retry_replays() {
    let w = World::new().await;
    let member = &w.members[0];
    let c = create(&w, member, case()).await;
    let ctx = w.with_key(member, "triage-1");
    let first = w
        .workflows()
        .transition(&ctx, w.acme.id, c.id, "triage", 1, json!({ "priority": "low" }))
        .await
        .unwrap();
    // The instance moves on (the member assigns nobody, so `ask` a question instead).
    w.workflows()
        .transition(
            &w.as_user(member),
            w.acme.id,
            c.id,
            "triage",
            2,
            json!({ "priority": "x" }),
        )
        .await
        .unwrap_err();
    // The same request again, under a new request id: the stored result, no second effect.
    let retry = w.with_key(member, "triage-1");
    let replay = w
        .workflows()
        .transition(&retry, w.acme.id, c.id, "triage", 1, json!({ "priority": "low" }))
        .await
        .unwrap();
    assert_eq!(replay, first);
    assert_eq!(w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(), 2);
    // The same key for another request.
    let other = w.with_key(member, "triage-1");
    let r = w
        .workflows()
        .transition(&other, w.acme.id, c.id, "triage", 1, json!({ "priority": "high" }))
        .await;
    assert_code(r, ErrorCode::IdempotencyKeyReused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_under_one_key_have_one_effect() {
    let w = Arc::new(World::new().await);
    let member = w.members[0].clone();
    let c = create(&w, &member, case()).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (w, member) = (w.clone(), member.clone());
        tasks.push(tokio::spawn(async move {
            let ctx = w.with_key(&member, "dup");
            w.workflows()
                .transition(&ctx, w.acme.id, c.id, "triage", 1, json!({ "priority": "low" }))
                .await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(instance) => results.push(instance),
            Err(err) => assert_eq!(
                err.code(),
                ErrorCode::IdempotencyInFlight,
                "a duplicate either gets the result or is told the first is in flight: {err:?}"
            ),
        }
    }
    assert!(!results.is_empty(), "one commits");
    assert!(
        results.windows(2).all(|p| p[0] == p[1]),
        "all that succeed receive the same instance"
    );
    assert_eq!(
        w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(),
        2,
        "one effect"
    );
}

// ---------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------

/// What `user` is offered on `instance`, asserting both paths offer the same.
async fn offered(w: &World, user: &User, instance: &Instance) -> Vec<portal_core::workflow::AvailableTransition> {
    let ctx = w.as_user(user);
    let batch = w
        .workflows()
        .available_for(&ctx, w.acme.id, std::slice::from_ref(instance))
        .await
        .unwrap();
    let one = w
        .workflows()
        .available_transitions(&ctx, w.acme.id, instance.id)
        .await
        .unwrap();
    assert_eq!(batch[0], one, "both paths offer the same");
    one
}

/// A transition that waits for votes is offered as `by_vote` to whoever may vote on it now,
/// by `available_for` and `available_transitions` alike: not to the creator, not to a
/// member without the approval permission, not to an approver who already voted.
#[tokio::test]
async fn a_transition_waiting_for_votes_is_offered_as_a_vote_to_those_who_may_cast_one() {
    let w = World::new().await;
    let q = pending_quote(&w).await;
    let votes_of = |available: &[portal_core::workflow::AvailableTransition]| {
        available
            .iter()
            .filter(|t| t.by_vote)
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    let approver = offered(&w, &w.admins[0], &q).await;
    assert_eq!(votes_of(&approver), ["approve"]);
    assert!(
        approver.iter().any(|t| t.name == "reject" && !t.by_vote),
        "reject is fired directly: {approver:?}"
    );
    let creator = offered(&w, &w.members[0], &q).await;
    assert!(votes_of(&creator).is_empty(), "the creator may not vote: {creator:?}");
    let member = offered(&w, &w.members[1], &q).await;
    assert!(votes_of(&member).is_empty(), "no approval permission: {member:?}");

    let voted = w
        .workflows()
        .vote(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            q.id,
            vote(&q, VoteDecision::Approve),
        )
        .await
        .unwrap();
    let again = offered(&w, &w.admins[0], &voted).await;
    assert!(votes_of(&again).is_empty(), "already voted: {again:?}");
    let other = offered(&w, &w.admins[2], &voted).await;
    assert_eq!(votes_of(&other), ["approve"], "another approver still may");
}

#[tokio::test]
async fn a_quote_needs_two_of_three_approvers_and_records_every_vote() {
    let w = World::new().await;
    let q = pending_quote(&w).await;
    assert_eq!(q.state, "pending_approval");
    let a1 = w
        .workflows()
        .vote(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            q.id,
            vote(&q, VoteDecision::Approve),
        )
        .await
        .unwrap();
    assert_eq!((a1.state.as_str(), a1.votes.len()), ("pending_approval", 1));
    let a2 = w
        .workflows()
        .vote(
            &w.as_user(&w.admins[2]),
            w.acme.id,
            q.id,
            vote(&a1, VoteDecision::Approve),
        )
        .await
        .unwrap();
    assert_eq!(a2.state, "approved");
    assert!(a2.votes.is_empty(), "votes belong to the state they were cast in");
    let history = w.store.history(w.acme.id, q.id, None, 10_000).await.unwrap();
    let votes: Vec<_> = history
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Vote { .. }))
        .collect();
    assert_eq!(votes.len(), 2);
    assert_eq!(
        (votes[0].from.as_str(), votes[0].to.as_str()),
        ("pending_approval", "pending_approval")
    );
    assert_eq!(
        (votes[1].from.as_str(), votes[1].to.as_str()),
        ("pending_approval", "approved")
    );
}

#[tokio::test]
async fn the_requester_voting_is_self_approval() {
    let w = World::new().await;
    // An admin creates the quote: they hold `quotes/* approve`, yet may not approve it.
    let q = create(&w, &w.admins[0], quote(5)).await;
    let q = fire(&w, &w.admins[0], &q, "submit", json!({})).await;
    let r = w
        .workflows()
        .vote(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            q.id,
            vote(&q, VoteDecision::Approve),
        )
        .await;
    assert_code(r, ErrorCode::SelfApproval);
}

#[tokio::test]
async fn a_second_vote_by_one_voter_is_already_voted() {
    let w = World::new().await;
    let q = pending_quote(&w).await;
    let ctx = w.as_user(&w.admins[1]);
    let q = w
        .workflows()
        .vote(&ctx, w.acme.id, q.id, vote(&q, VoteDecision::Approve))
        .await
        .unwrap();
    let r = w
        .workflows()
        .vote(&ctx, w.acme.id, q.id, vote(&q, VoteDecision::Approve))
        .await;
    assert_code(r, ErrorCode::AlreadyVoted);
}

#[tokio::test]
async fn a_member_without_the_approval_permission_is_access_denied() {
    let w = World::new().await;
    let q = pending_quote(&w).await;
    let r = w
        .workflows()
        .vote(
            &w.as_user(&w.members[1]),
            w.acme.id,
            q.id,
            vote(&q, VoteDecision::Approve),
        )
        .await;
    assert_code(r, ErrorCode::AccessDenied);
}

#[tokio::test]
async fn firing_an_approval_transition_directly_is_approval_required_and_voting_on_another_is_not_required() {
    let w = World::new().await;
    let q = pending_quote(&w).await;
    let r = w
        .workflows()
        .transition(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            q.id,
            "approve",
            q.version,
            json!({}),
        )
        .await;
    assert_code(r, ErrorCode::ApprovalRequired);
    let mut ballot = vote(&q, VoteDecision::Approve);
    ballot.transition = "send".into();
    let r = w
        .workflows()
        .vote(&w.as_user(&w.admins[0]), w.acme.id, q.id, ballot)
        .await;
    assert_code(r, ErrorCode::ApprovalNotRequired);
}

#[tokio::test]
async fn a_reject_vote_fires_the_rejection_transition() {
    let w = World::new().await;
    let new = NewInstance::new(
        "return_request",
        &ReturnRequest {
            order_id: "o-1".into(),
            amount_cents: 4_200,
            reason: "broken".into(),
        },
    )
    .unwrap();
    let r = create(&w, &w.members[0], new).await;
    let r = w
        .workflows()
        .vote(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            r.id,
            vote(&r, VoteDecision::Reject),
        )
        .await
        .unwrap();
    assert_eq!(r.state, "rejected");
    let last = w
        .store
        .history(w.acme.id, r.id, None, 10_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.transition, "reject");
    assert_eq!(
        last.kind,
        EntryKind::Vote {
            decision: VoteDecision::Reject,
            on_behalf_of: None
        }
    );
}

#[tokio::test]
async fn a_delegate_votes_for_the_delegator_until_the_delegation_expires() {
    let w = World::new().await;
    let q = pending_quote(&w).await;
    let delegate = &w.members[1];
    let now = w.clock.now();
    w.workflows()
        .delegate(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            delegate.id,
            now,
            now + Duration::days(1),
        )
        .await
        .unwrap();
    // Without a delegation from admin 2, the member cannot vote for them.
    let mut ballot = vote(&q, VoteDecision::Approve);
    ballot.on_behalf_of = Some(w.admins[1].id);
    let r = w.workflows().vote(&w.as_user(delegate), w.acme.id, q.id, ballot).await;
    assert_code(r, ErrorCode::AccessDenied);
    // With admin 1's delegation the member casts admin 1's vote, with admin 1's roles.
    let mut ballot = vote(&q, VoteDecision::Approve);
    ballot.on_behalf_of = Some(w.admins[0].id);
    let q = w
        .workflows()
        .vote(&w.as_user(delegate), w.acme.id, q.id, ballot)
        .await
        .unwrap();
    assert_eq!(q.votes[0].voter, portal_core::Principal::User(w.admins[0].id));
    assert_eq!(q.votes[0].cast_by, portal_core::Principal::User(delegate.id));
    // Admin 1 has now voted, through the delegate.
    let r = w
        .workflows()
        .vote(
            &w.as_user(&w.admins[0]),
            w.acme.id,
            q.id,
            vote(&q, VoteDecision::Approve),
        )
        .await;
    assert_code(r, ErrorCode::AlreadyVoted);
    // After the window, the delegation no longer holds.
    w.workflows()
        .delegate(
            &w.as_user(&w.admins[2]),
            w.acme.id,
            delegate.id,
            now,
            now + Duration::hours(1),
        )
        .await
        .unwrap();
    w.clock.advance(Duration::hours(2));
    let mut ballot = vote(&q, VoteDecision::Approve);
    ballot.on_behalf_of = Some(w.admins[2].id);
    let r = w.workflows().vote(&w.as_user(delegate), w.acme.id, q.id, ballot).await;
    assert_code(r, ErrorCode::DelegationExpired);
}

#[tokio::test]
async fn staff_under_a_support_grant_cannot_delegate() {
    let w = World::new().await;
    let now = w.clock.now();
    for access in [SupportAccess::ReadOnly, SupportAccess::ReadWrite] {
        w.grant(&w.outsider, access).await;
        let ctx = w.as_user(&w.outsider);
        // The grant reaches acme: staff read its cases.
        let c = create(&w, &w.members[0], case()).await;
        w.workflows().get(&ctx, w.acme.id, c.id).await.unwrap();
        // But staff hold no vote of their own there to hand to anyone.
        let r = w
            .workflows()
            .delegate(&ctx, w.acme.id, w.admins[0].id, now, now + Duration::days(1))
            .await;
        assert_code(r, ErrorCode::AccessDenied);
    }
}

// ---------------------------------------------------------------------------------------
// Due dates, listing, available transitions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn overdue_lists_instances_past_their_states_due_time() {
    let w = World::new().await;
    let member = &w.members[0];
    let late = create(&w, member, case()).await;
    let on_time = create(&w, member, case()).await;
    let draft = create(&w, member, quote(1)).await;
    let ctx = w.as_user(member);
    assert!(
        w.workflows()
            .overdue(&ctx, w.acme.id, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    w.clock.advance(Duration::hours(20));
    fire(&w, member, &on_time, "triage", json!({ "priority": "low" })).await;
    w.clock.advance(Duration::hours(5));
    let ctx = w.as_user(member);
    let overdue = w
        .workflows()
        .overdue(&ctx, w.acme.id, &PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<_> = overdue.items.iter().map(|i| i.id).collect();
    assert_eq!(
        ids,
        vec![late.id],
        "open is due in a day, triaged in three, drafts never"
    );
    let _ = draft;
}

#[tokio::test]
async fn list_filters_and_pages_in_id_order() {
    let w = World::new().await;
    let member = &w.members[0];
    let mut cases = Vec::new();
    for _ in 0..5 {
        cases.push(create(&w, member, case()).await);
    }
    create(&w, member, quote(3)).await;
    let ctx = w.as_user(member);
    let filter = WorkflowFilter {
        definition: Some("support_case".into()),
        ..WorkflowFilter::default()
    };
    let first = w
        .workflows()
        .list(&ctx, w.acme.id, &filter, &PageRequest::first(3))
        .await
        .unwrap();
    let next = first.next.clone().expect("a second page");
    let second = w
        .workflows()
        .list(&ctx, w.acme.id, &filter, &PageRequest::after(next, 3))
        .await
        .unwrap();
    let got: Vec<_> = first.items.iter().chain(&second.items).map(|i| i.id).collect();
    assert_eq!(got, cases.iter().map(|c| c.id).collect::<Vec<_>>());
    assert!(second.next.is_none());
    let all = w
        .workflows()
        .list(&ctx, w.acme.id, &WorkflowFilter::default(), &PageRequest::first(50))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    let open = WorkflowFilter {
        state: Some("draft".into()),
        ..WorkflowFilter::default()
    };
    let drafts = w
        .workflows()
        .list(&ctx, w.acme.id, &open, &PageRequest::first(50))
        .await
        .unwrap();
    assert_eq!(drafts.items.len(), 1);
}

#[tokio::test]
async fn available_transitions_offer_only_what_will_succeed_and_explain_the_rest() {
    let w = World::new().await;
    let c = create(&w, &w.members[0], case()).await;
    let member = w.as_user(&w.members[0]);
    let offered = w
        .workflows()
        .available_transitions(&member, w.acme.id, c.id)
        .await
        .unwrap();
    assert_eq!(offered.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["triage"]);
    assert_eq!(offered[0].inputs, ["priority"]);
    let viewer = w.as_user(&w.viewer);
    assert!(
        w.workflows()
            .available_transitions(&viewer, w.acme.id, c.id)
            .await
            .unwrap()
            .is_empty()
    );
    let explained = w
        .workflows()
        .explain_transitions(&viewer, w.acme.id, c.id)
        .await
        .unwrap();
    let triage = explained.iter().find(|t| t.name == "triage").unwrap();
    assert_eq!(triage.refusal.as_ref().unwrap().code, ErrorCode::AccessDenied);
    let close = explained.iter().find(|t| t.name == "close").unwrap();
    assert_eq!(close.refusal.as_ref().unwrap().code, ErrorCode::TransitionNotAllowed);
    let c = fire(&w, &w.members[0], &c, "triage", json!({ "priority": "p1" })).await;
    let explained = w
        .workflows()
        .explain_transitions(&member, w.acme.id, c.id)
        .await
        .unwrap();
    let start = explained
        .iter()
        .find(|t| t.name == "start")
        .unwrap()
        .refusal
        .clone()
        .unwrap();
    assert_eq!(
        (start.code, start.guard.as_deref()),
        (ErrorCode::GuardFailed, Some("assigned"))
    );
}

/// What a read offers to fire is exactly what `explain_transitions` finds no refusal for:
/// the list is decided by a check that builds no refusal texts, the explanation by the
/// transition's own checks, and the two must agree for every user, in every state a
/// support case and a quote pass through (assigned or not, guards passing or refusing).
#[tokio::test]
async fn the_transitions_offered_to_fire_are_those_the_explanation_does_not_refuse() {
    let w = World::new().await;
    let member = &w.members[0];
    let users: Vec<&User> = std::iter::once(&w.owner)
        .chain(&w.admins)
        .chain(&w.members)
        .chain([&w.viewer])
        .collect();
    let agree = |instance: Instance| {
        let w = &w;
        let users = &users;
        async move {
            for user in users {
                let ctx = w.as_user(user);
                let fired: Vec<String> = w
                    .workflows()
                    .available_transitions(&ctx, w.acme.id, instance.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|t| !t.by_vote)
                    .map(|t| t.name)
                    .collect();
                let unrefused: Vec<String> = w
                    .workflows()
                    .explain_transitions(&ctx, w.acme.id, instance.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|t| t.refusal.is_none())
                    .map(|t| t.name)
                    .collect();
                assert_eq!(
                    fired, unrefused,
                    "{} in `{}` for {}",
                    instance.definition, instance.state, user.email
                );
            }
        }
    };
    let mut c = create(&w, member, case()).await;
    agree(c.clone()).await;
    c = fire(&w, member, &c, "triage", json!({ "priority": "high" })).await;
    agree(c.clone()).await; // `start` refused by its guard: unassigned
    let mut assigned = create(&w, member, case().assigned_to(member.id)).await;
    for (name, input) in [
        ("triage", json!({ "priority": "high" })),
        ("start", json!({})),
        ("ask_customer", json!({ "question": "which model?" })),
        ("customer_replied", json!(null)),
        ("resolve", json!({ "resolution": "replaced the fuser" })),
        ("close", json!({})),
    ] {
        agree(assigned.clone()).await;
        assigned = fire(&w, member, &assigned, name, input).await;
    }
    agree(assigned).await;
    let q = create(&w, member, quote(120_000)).await;
    agree(q.clone()).await;
    agree(pending_quote(&w).await).await;
}

#[tokio::test]
async fn available_for_decides_as_available_transitions_on_instances_already_read() {
    let w = World::new().await;
    let first = create(&w, &w.members[0], case()).await;
    let second = create(&w, &w.members[0], case()).await;
    let triaged = fire(&w, &w.members[0], &second, "triage", json!({ "priority": "p2" })).await;
    let q = w
        .workflows()
        .create(&w.as_user(&w.owner), w.acme.id, quote(50_000))
        .await
        .unwrap();
    let page = w
        .workflows()
        .list(
            &w.as_user(&w.members[0]),
            w.acme.id,
            &WorkflowFilter::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    for user in [&w.owner, &w.admins[0], &w.members[0], &w.members[1], &w.viewer] {
        let ctx = w.as_user(user);
        let all = w.workflows().available_for(&ctx, w.acme.id, &page.items).await.unwrap();
        for (instance, available) in page.items.iter().zip(&all) {
            let one_by_one = w
                .workflows()
                .available_transitions(&ctx, w.acme.id, instance.id)
                .await
                .unwrap();
            assert_eq!(available, &one_by_one, "{} on {}", user.display_name, instance.id);
        }
    }
    let member = w.as_user(&w.members[0]);
    let names = |all: &[Vec<portal_core::workflow::AvailableTransition>]| {
        all.iter()
            .map(|a| a.iter().map(|t| t.name.clone()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let one = w
        .workflows()
        .available_for(&member, w.acme.id, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(names(&one), [["triage"]]);
    let event = w.sink.of(&member).into_iter().last().unwrap();
    assert_eq!(event.name, "workflow.available");
    assert_eq!(event.detail["instances"][0]["allowed"], json!(["triage"]));
    let _ = (triaged, q);

    // Another org's instance, or an org the actor cannot reach: not found, as `get`.
    let outsider = w.as_user(&w.outsider);
    assert_code(
        w.workflows().available_for(&outsider, w.acme.id, &page.items).await,
        ErrorCode::WorkflowNotFound,
    );
    assert_code(
        w.workflows().available_for(&member, w.globex.id, &page.items).await,
        ErrorCode::WorkflowNotFound,
    );
    assert!(
        w.workflows()
            .available_for(&member, w.acme.id, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// `get_with_available` answers what `get` and then `available_for` answer, for every
/// role, and records the two operations as one `workflow.view` event (beside the read's
/// `access.check`); an org the actor cannot reach, or an instance of another org, is not
/// found as with `get`.
#[tokio::test]
async fn get_with_available_answers_get_then_available_for_in_one_event() {
    let w = World::new().await;
    let first = create(&w, &w.members[0], case()).await;
    let second = create(&w, &w.members[0], case()).await;
    let triaged = fire(&w, &w.members[0], &second, "triage", json!({ "priority": "p2" })).await;
    for user in [&w.owner, &w.admins[0], &w.members[0], &w.members[1], &w.viewer] {
        let ctx = w.as_user(user);
        for id in [first.id, triaged.id] {
            let got = w.workflows().get(&ctx, w.acme.id, id).await.unwrap();
            let available = w
                .workflows()
                .available_for(&ctx, w.acme.id, std::slice::from_ref(&got))
                .await
                .unwrap();
            let recorded = w.sink.of(&ctx).len();
            let (instance, with) = w.workflows().get_with_available(&ctx, w.acme.id, id).await.unwrap();
            assert_eq!(instance, got, "{}", user.display_name);
            assert_eq!(with, available[0], "{} on {id}", user.display_name);
            let events = w.sink.of(&ctx);
            let names: Vec<_> = events[recorded..].iter().map(|e| e.name.to_string()).collect();
            assert_eq!(names, ["access.check", "workflow.view"], "{}", user.display_name);
            let view = events.last().unwrap();
            assert_eq!(view.schema, "workflow.view.v1");
            assert_eq!(view.detail["id"], json!(id));
            assert_eq!(view.detail["version"], json!(instance.version));
            assert_eq!(
                view.detail["allowed"],
                json!(with.iter().map(|t| &t.name).collect::<Vec<_>>())
            );
        }
    }
    let member = w.as_user(&w.members[0]);
    let (_, available) = w
        .workflows()
        .get_with_available(&member, w.acme.id, first.id)
        .await
        .unwrap();
    assert_eq!(
        available.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["triage"]
    );
    assert_code(
        w.workflows()
            .get_with_available(&w.as_user(&w.outsider), w.acme.id, first.id)
            .await,
        ErrorCode::WorkflowNotFound,
    );
    assert_code(
        w.workflows().get_with_available(&member, w.globex.id, first.id).await,
        ErrorCode::WorkflowNotFound,
    );
}

#[tokio::test]
async fn available_for_reads_nothing_again_and_uses_the_roles_the_request_carries() {
    let inner = Arc::new(InMemoryWorkflowStore::new());
    let mut mock = MockWorkflowStore::new();
    let i = inner.clone();
    mock.expect_create().returning(move |record| ready(i.create(record)));
    let i = inner.clone();
    mock.expect_find_idempotency()
        .returning(move |org, p, k| ready(i.find_idempotency(org, p, k)));
    mock.expect_get().never();
    let w = World::over(Arc::new(mock)).await;
    let c = create(&w, &w.members[0], case()).await;
    let viewer = w.as_user(&w.viewer);
    let as_stored = w
        .workflows()
        .available_for(&viewer, w.acme.id, std::slice::from_ref(&c))
        .await
        .unwrap();
    assert!(as_stored[0].is_empty(), "a viewer may fire nothing");
    // The roles a request carries for its org (read by the authenticator) are used as
    // they are; roles carried for another org are not.
    let admin = portal_core::tenancy::RoleName::new("admin").unwrap();
    let carried = w
        .portal
        .context(portal_core::Principal::User(w.viewer.id))
        .with(|b| b.org(w.acme.id).org_roles(w.acme.id, vec![admin.clone()].into()))
        .build();
    let with_roles = w
        .workflows()
        .available_for(&carried, w.acme.id, std::slice::from_ref(&c))
        .await
        .unwrap();
    assert_eq!(
        with_roles[0].iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["triage"]
    );
    let elsewhere = w
        .portal
        .context(portal_core::Principal::User(w.viewer.id))
        .with(|b| b.org(w.acme.id).org_roles(w.globex.id, vec![admin].into()))
        .build();
    let from_store = w
        .workflows()
        .available_for(&elsewhere, w.acme.id, std::slice::from_ref(&c))
        .await
        .unwrap();
    assert!(from_store[0].is_empty(), "roles for another org are ignored");
}

// ---------------------------------------------------------------------------------------
// Storage faults
// ---------------------------------------------------------------------------------------

/// Runs a future the in-memory store returns to completion: it never waits.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the in-memory store never waits"),
    }
}

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        backend: "mock",
        source: "connection reset mid-transaction".into(),
    }
}

/// A mock that reads through to `inner` and applies through it, except that the first
/// `apply` fails: before writing (`after_commit == false`) or after the write committed
/// and its acknowledgement was lost (`after_commit == true`).
fn faulty(inner: Arc<InMemoryWorkflowStore>, after_commit: bool) -> MockWorkflowStore {
    let mut mock = MockWorkflowStore::new();
    let i = inner.clone();
    mock.expect_create().returning(move |record| ready(i.create(record)));
    let i = inner.clone();
    mock.expect_get().returning(move |org, id| ready(i.get(org, id)));
    let i = inner.clone();
    mock.expect_find_idempotency()
        .returning(move |org, p, k| ready(i.find_idempotency(org, p, k)));
    let i = inner.clone();
    mock.expect_history()
        .returning(move |org, id, after, limit| ready(i.history(org, id, after, limit)));
    let calls = Arc::new(AtomicUsize::new(0));
    mock.expect_apply().returning(move |change| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            if after_commit {
                let _ = ready(inner.apply(change));
            }
            return Err(unavailable());
        }
        ready(inner.apply(change))
    });
    mock
}

#[tokio::test]
async fn a_store_failing_mid_transition_applies_nothing_and_the_retry_succeeds() {
    let inner = Arc::new(InMemoryWorkflowStore::new());
    let w = World::over(Arc::new(faulty(inner.clone(), false))).await;
    let member = &w.members[0];
    let c = create(&w, member, case()).await;
    let ctx = w.with_key(member, "t-1");
    let r = w
        .workflows()
        .transition(&ctx, w.acme.id, c.id, "triage", 1, json!({ "priority": "low" }))
        .await;
    let e = assert_code(r, ErrorCode::StorageUnavailable);
    assert!(e.is_retryable());
    assert_eq!(
        inner.get(w.acme.id, c.id).await.unwrap(),
        Some(c.clone()),
        "nothing half-applied"
    );
    assert_eq!(inner.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(), 1);
    assert!(w.sink.of(&ctx).iter().any(|e| e.kind == EventKind::StorageFault));
    let retry = w.with_key(member, "t-1");
    let done = w
        .workflows()
        .transition(&retry, w.acme.id, c.id, "triage", 1, json!({ "priority": "low" }))
        .await
        .expect("the retry succeeds");
    assert_eq!(done.state, "triaged");
    assert_eq!(inner.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_lost_commit_acknowledgement_is_retried_safely_under_the_same_key() {
    let inner = Arc::new(InMemoryWorkflowStore::new());
    let w = World::over(Arc::new(faulty(inner.clone(), true))).await;
    let member = &w.members[0];
    let c = create(&w, member, case()).await;
    let r = w
        .workflows()
        .transition(
            &w.with_key(member, "t-2"),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await;
    assert_code(r, ErrorCode::StorageUnavailable);
    let done = w
        .workflows()
        .transition(
            &w.with_key(member, "t-2"),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await
        .expect("the retry replays the committed result");
    assert_eq!((done.state.as_str(), done.version), ("triaged", 2));
    assert_eq!(
        inner.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(),
        2,
        "one effect"
    );
}
