//! Fault injection against `PgWorkflowStore`: a connection killed in the middle of
//! `apply`, after some of its rows are written, gives `StoreError::Unavailable`
//! (`storage.unavailable`, retryable), leaves nothing half-applied (no state, history,
//! customer audit event or idempotency record), and the retry succeeds.
//!
//! The tests need `PORTAL_TEST_POSTGRES_URL` and are skipped, saying so, without it.

#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;
mod workflow_world;

use portal_core::audit::actions;
use portal_core::testing::workflow::outbox_event;
use std::sync::Arc;

use portal_adapters::postgres::PgWorkflowStore;
use portal_core::context::{IdempotencyKey, Principal};
use portal_core::ids::{OrgId, RequestId, UserId, WorkflowId};
use portal_core::store::StoreError;
use portal_core::time::truncate_to_micros;
use portal_core::workflow::catalog::SupportCase;
use portal_core::workflow::{
    Applied, CreateRecord, EntryKind, HistoryEntry, IdempotencyRecord, Instance, NewInstance, TransitionRecord,
    WorkflowStore,
};
use portal_core::{ErrorCode, PortalError};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;
use workflow_world::World;

fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

fn instance(org: OrgId, by: &Principal) -> Instance {
    Instance {
        id: WorkflowId::from_uuid(Uuid::now_v7()),
        org,
        definition: "support_case".to_owned(),
        definition_version: 1,
        state: "open".to_owned(),
        version: 1,
        assignee: None,
        payload: json!({ "subject": "printer on fire" }),
        created_by: by.clone(),
        created_at: now(),
        updated_at: now(),
        state_entered_at: now(),
        due_at: None,
        votes: Vec::new(),
    }
}

fn entry(instance: &Instance, kind: EntryKind, from: &str, key: Option<&IdempotencyKey>) -> HistoryEntry {
    HistoryEntry {
        version: instance.version,
        kind,
        transition: if from.is_empty() {
            String::new()
        } else {
            "triage".to_owned()
        },
        from: from.to_owned(),
        to: instance.state.clone(),
        actor: instance.created_by.clone(),
        at: instance.updated_at,
        input: json!({ "priority": "high" }),
        request_id: RequestId::from_uuid(Uuid::now_v7()),
        idempotency_key: key.cloned(),
    }
}

fn assert_unavailable(err: StoreError) {
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "expected Unavailable, got {err:?}"
    );
    assert!(err.is_retryable());
    assert_portal_unavailable(&PortalError::from(err));
}

fn assert_portal_unavailable(err: &PortalError) {
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_connection_killed_mid_apply_is_unavailable_and_nothing_is_half_applied() {
    let Some(schema) = common::fresh_pg_schema().await else {
        return;
    };
    let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
    let store = PgWorkflowStore::new(pool.clone());
    let events = |org: OrgId| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events WHERE org_id = $1")
                .bind(org.as_uuid())
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let org = OrgId::from_uuid(Uuid::now_v7());
    let actor = Principal::User(UserId::from_uuid(Uuid::now_v7()));
    let created = instance(org, &actor);
    store
        .create(&CreateRecord {
            instance: created.clone(),
            history: entry(&created, EntryKind::Created, "", None),
            event: outbox_event(&created, actions::WORKFLOW_CREATED),
            idempotency: None,
        })
        .await
        .unwrap();

    let key = IdempotencyKey::new("triage-once").unwrap();
    let next = Instance {
        state: "triaged".to_owned(),
        version: 2,
        updated_at: now(),
        ..created.clone()
    };
    let change = TransitionRecord {
        expected_version: 1,
        history: entry(&next, EntryKind::transition(), "open", Some(&key)),
        event: outbox_event(&next, actions::WORKFLOW_TRANSITIONED),
        idempotency: Some(IdempotencyRecord {
            principal: actor.clone(),
            key: key.clone(),
            fingerprint: [7; 32],
            response: next.clone(),
            created_at: next.updated_at,
        }),
        next: next.clone(),
    };

    let result = common::kill_while_blocked(&schema, common::LockedTable::AuditEvents, {
        let (store, change) = (store.clone(), change.clone());
        async move { store.apply(&change).await }
    })
    .await;
    assert_unavailable(result.unwrap_err());

    // The statement was killed waiting for the audit events' table: nothing of it stays.
    assert_eq!(store.get(org, created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.history(org, created.id, None, 10_000).await.unwrap().len(), 1);
    assert_eq!(events(org).await, 1, "only the creation's event");
    assert_eq!(store.find_idempotency(org, &actor, &key).await.unwrap(), None);

    // The pool replaces the dead connection; the retry commits once, and a second retry
    // replays it.
    match store.apply(&change).await.unwrap() {
        Applied::Committed(instance) => assert_eq!(instance, next),
        Applied::Replayed(record) => panic!("the retry replayed a record that should not exist: {record:?}"),
    }
    assert!(matches!(store.apply(&change).await.unwrap(), Applied::Replayed(_)));
    assert_eq!(store.get(org, created.id).await.unwrap(), Some(next));
    assert_eq!(store.history(org, created.id, None, 10_000).await.unwrap().len(), 2);
    assert_eq!(events(org).await, 2, "the transition's event, once");
}

#[tokio::test]
async fn a_transition_whose_connection_is_killed_answers_storage_unavailable_and_its_retry_succeeds() {
    let Some(schema) = common::fresh_pg_schema().await else {
        return;
    };
    let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
    let store = PgWorkflowStore::new(pool);
    let w = Arc::new(World::over(Arc::new(store.clone())).await);
    let new = NewInstance::new(
        "support_case",
        &SupportCase {
            subject: "printer on fire".into(),
            customer_reference: None,
        },
    )
    .unwrap();
    let member = w.members[0].clone();
    let admin = w.admins[0].clone();
    let case = w.workflows().create(&w.as_user(&member), w.acme.id, new).await.unwrap();
    let ctx = w.with_key(&admin, "triage-1");

    let result = common::kill_while_blocked(&schema, common::LockedTable::AuditEvents, {
        let (w, ctx, id) = (w.clone(), ctx.clone(), case.id);
        async move {
            w.workflows()
                .transition(&ctx, w.acme.id, id, "triage", 1, json!({ "priority": "high" }))
                .await
        }
    })
    .await;
    assert_portal_unavailable(&result.unwrap_err());
    assert_eq!(store.get(w.acme.id, case.id).await.unwrap(), Some(case.clone()));
    assert_eq!(store.history(w.acme.id, case.id, None, 10_000).await.unwrap().len(), 1);

    let triaged = w
        .workflows()
        .transition(&ctx, w.acme.id, case.id, "triage", 1, json!({ "priority": "high" }))
        .await
        .unwrap();
    assert_eq!(triaged.state, "triaged");
    assert_eq!(triaged.version, 2);
    let again = w
        .workflows()
        .transition(&ctx, w.acme.id, case.id, "triage", 1, json!({ "priority": "high" }))
        .await
        .unwrap();
    assert_eq!(again, triaged, "a retry under the same key receives the stored result");
    assert_eq!(store.history(w.acme.id, case.id, None, 10_000).await.unwrap().len(), 2);
}
