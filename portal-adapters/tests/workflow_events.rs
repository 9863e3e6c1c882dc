//! `WorkflowService` writes the customer audit events of workflows (`workflow.created`,
//! `workflow.transitioned`, `workflow.voted`, `workflow.assigned`) through its store, in
//! the change's transaction: with the actor's name, the instance as target and the
//! customer-visible facts as metadata; a refused step (forbidden, wrong state, stale
//! version) and an idempotent replay write none.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

#[path = "workflow_world/mod.rs"]
mod workflow_world;

use std::sync::Arc;

use portal_adapters::memory::{InMemoryAuditLog, InMemoryWorkflowStore};
use portal_core::ErrorCode;
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery};
use portal_core::workflow::catalog::{Quote, SupportCase};
use portal_core::workflow::{NewInstance, VoteDecision, VoteRequest};
use serde_json::json;
use workflow_world::World;

async fn events(log: &InMemoryAuditLog, world: &World) -> Vec<AuditEvent> {
    log.list(world.acme.id, &AuditQuery::default(), None, 1000)
        .await
        .unwrap()
}

fn actions(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.action.as_str()).collect()
}

#[tokio::test]
async fn each_step_writes_its_event_and_refusals_and_replays_write_none() {
    let log = InMemoryAuditLog::new();
    let world = World::over(Arc::new(InMemoryWorkflowStore::with_audit_log(log.clone()))).await;
    let workflows = world.workflows();
    let acme = world.acme.id;
    let member = &world.members[0];
    let new = NewInstance::new(
        "support_case",
        &SupportCase {
            subject: "the printer is on fire".into(),
            customer_reference: None,
        },
    )
    .unwrap();
    let case = workflows.create(&world.as_user(member), acme, new).await.unwrap();
    let created = events(&log, &world).await;
    assert_eq!(actions(&created), ["workflow.created"]);
    let event = &created[0];
    assert_eq!(event.actor.id, member.id.to_string());
    assert_eq!(event.actor.name.as_deref(), Some("member1"));
    assert_eq!(event.targets[0].kind, "workflow");
    assert_eq!(event.targets[0].id, case.id.to_string());
    assert_eq!(
        event.metadata,
        json!({ "definition": "support_case", "definition_version": 1, "state": "open", "assignee": null, "version": 1 })
    );
    assert!(!event.metadata.to_string().contains("printer"), "no payload");

    // Refused: a viewer may not write, `start` is not allowed from `open`, a stale version.
    let input = json!({ "priority": "p2" });
    let refused = workflows
        .transition(&world.as_user(&world.viewer), acme, case.id, "triage", 1, input.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::AccessDenied, "{refused:?}");
    let refused = workflows
        .transition(&world.as_user(member), acme, case.id, "start", 1, json!({}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::TransitionNotAllowed, "{refused:?}");
    let refused = workflows
        .transition(&world.as_user(member), acme, case.id, "triage", 7, input.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::VersionConflict, "{refused:?}");
    assert_eq!(events(&log, &world).await.len(), 1, "no refusal wrote an event");

    // Under a key twice: one transition, one event.
    for _ in 0..2 {
        workflows
            .transition(
                &world.with_key(member, "triage-1"),
                acme,
                case.id,
                "triage",
                1,
                input.clone(),
            )
            .await
            .unwrap();
    }
    let after = events(&log, &world).await;
    assert_eq!(actions(&after), ["workflow.created", "workflow.transitioned"]);
    assert_eq!(
        after[1].metadata,
        json!({ "definition": "support_case", "transition": "triage", "from": "open", "to": "triaged", "version": 2 })
    );

    // Assigned by the owner.
    workflows
        .assign(&world.as_user(&world.owner), acme, case.id, 2, Some(member.id))
        .await
        .unwrap();
    let after = events(&log, &world).await;
    let assigned = after.last().unwrap();
    assert_eq!(assigned.action.as_str(), "workflow.assigned");
    assert_eq!(assigned.actor.name.as_deref(), Some("owner"));
    assert_eq!(assigned.targets[1].id, member.id.to_string());
    assert_eq!(assigned.metadata["previous"], json!(null));
    assert_eq!(assigned.metadata["assignee"], json!(member.id));

    // A quote, submitted by its creator, then two approving votes: the second fires.
    let new = NewInstance::new(
        "quote_approval",
        &Quote {
            customer: "Initech".into(),
            amount_cents: 120_000,
        },
    )
    .unwrap();
    let quote = workflows.create(&world.as_user(member), acme, new).await.unwrap();
    let submitted = workflows
        .transition(&world.as_user(member), acme, quote.id, "submit", 1, json!({}))
        .await
        .unwrap();
    let mut version = submitted.version;
    for admin in &world.admins[..2] {
        let vote = VoteRequest {
            transition: "approve".to_owned(),
            decision: VoteDecision::Approve,
            expected_version: version,
            input: json!({}),
            on_behalf_of: None,
        };
        version = workflows
            .vote(&world.as_user(admin), acme, quote.id, vote)
            .await
            .unwrap()
            .version;
    }
    let after = events(&log, &world).await;
    let votes: Vec<&AuditEvent> = after.iter().filter(|e| e.action.as_str() == "workflow.voted").collect();
    assert_eq!(votes.len(), 2, "{:?}", actions(&after));
    assert_eq!(votes[0].metadata["fired"], json!(null));
    assert_eq!(votes[1].metadata["fired"], json!("approve"));
    assert_eq!(votes[1].metadata["to"], json!("approved"));
    assert_eq!(votes[1].metadata["decision"], json!("approve"));

    // Another org's log holds none of it.
    let theirs = log
        .list(world.globex.id, &AuditQuery::default(), None, 1000)
        .await
        .unwrap();
    assert!(theirs.is_empty(), "{theirs:?}");
}
