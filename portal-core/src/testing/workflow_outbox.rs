//! The workflow outbox suite: a [`WorkflowStore`] writes the customer audit event of each
//! change ([`CreateRecord::event`](crate::workflow::CreateRecord::event),
//! [`TransitionRecord::event`](crate::workflow::TransitionRecord::event)) in the change's
//! transaction, into the [`AuditLog`] of the same database; a refused change or a replay
//! writes none, and a change whose event cannot be written is not stored.
//!
//! Every clause takes a store and the audit log its events go to. Run them all with
//! [`workflow_outbox_conformance!`](crate::workflow_outbox_conformance), whose factory
//! returns `Option<(store, log)>`.

use crate::audit::{AuditEvent, AuditLog, AuditQuery, actions};
use crate::ids::OrgId;
use crate::store::{Conflict, StoreError};
use crate::testing::workflow::{
    change, committed, creation, expect_err, instance_value, new_org, new_user, outbox_event,
};
use crate::workflow::{Applied, WorkflowStore};

/// Every event of `org`, in id order.
async fn events(log: &dyn AuditLog, org: OrgId) -> Vec<AuditEvent> {
    log.list(org, &AuditQuery::default(), None, 1000)
        .await
        .expect("the audit log reads")
}

/// `create` and each committed `apply` (a transition, a keyed one) write exactly the event
/// they were given, which reads back equal, in the org's log and no other.
pub async fn each_workflow_change_writes_its_event(store: &dyn WorkflowStore, log: &dyn AuditLog) {
    let org = new_org();
    let other = new_org();
    let actor = new_user();
    let instance = instance_value(org, "support_case", "open");
    let created = creation(&instance);
    committed(store.create(&created).await.expect("create succeeds"), "create");
    let triage = change(&instance, "triaged", &actor, None);
    let triaged = committed(store.apply(&triage).await.expect("apply succeeds"), "apply");
    let mut assign = change(&triaged, "triaged", &actor, Some(("assign-1", 1)));
    assign.event = outbox_event(&assign.next, actions::WORKFLOW_ASSIGNED);
    committed(store.apply(&assign).await.expect("keyed apply succeeds"), "keyed apply");

    let mut expected = vec![created.event, triage.event, assign.event];
    expected.sort_by_key(|e| e.id);
    assert_eq!(
        events(log, org).await,
        expected,
        "each change's event reads back as given"
    );
    assert!(events(log, other).await.is_empty(), "another org's log holds none");
}

/// A change the store refuses writes no event: a stale version, an unknown instance, a
/// duplicate instance id, a key reused with another fingerprint; and a replay of a
/// committed key (create or apply) writes no second event.
pub async fn a_refused_workflow_change_writes_no_event(store: &dyn WorkflowStore, log: &dyn AuditLog) {
    let org = new_org();
    let actor = new_user();
    let instance = instance_value(org, "support_case", "open");
    committed(store.create(&creation(&instance)).await.unwrap(), "create");
    let keyed = change(&instance, "triaged", &actor, Some(("k-1", 1)));
    committed(store.apply(&keyed).await.unwrap(), "keyed apply");
    let before = events(log, org).await;
    assert_eq!(before.len(), 2, "create and apply wrote one event each");

    let stale = change(&instance, "closed", &actor, None);
    let err = expect_err(store.apply(&stale).await, "a stale version");
    assert!(matches!(err, StoreError::Conflict(Conflict::Version { .. })), "{err:?}");

    let unknown = change(&instance_value(org, "support_case", "open"), "triaged", &actor, None);
    let err = expect_err(store.apply(&unknown).await, "an unknown instance");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    let duplicate = creation(&instance);
    let err = expect_err(store.create(&duplicate).await, "a duplicate instance id");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "workflow" })
        ),
        "{err:?}"
    );

    let mut replay = keyed.clone();
    replay.event = outbox_event(&keyed.next, actions::WORKFLOW_TRANSITIONED);
    assert!(
        matches!(store.apply(&replay).await.unwrap(), Applied::Replayed(_)),
        "the same request under the key replays"
    );
    let mut reused = change(&keyed.next, "closed", &actor, Some(("k-1", 2)));
    reused.event = outbox_event(&reused.next, actions::WORKFLOW_TRANSITIONED);
    let err = expect_err(store.apply(&reused).await, "a key reused with another fingerprint");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::IdempotencyKeyReused)),
        "{err:?}"
    );

    assert_eq!(events(log, org).await, before, "no refusal or replay wrote an event");
}

/// A change whose event cannot be written (its id is already in the log) is not stored:
/// `apply` and `create` fail with [`Conflict::AlreadyExists`] (`audit event`) and leave
/// the instance, its history and the key as they were.
pub async fn a_workflow_change_whose_event_fails_is_not_stored(store: &dyn WorkflowStore, log: &dyn AuditLog) {
    let org = new_org();
    let actor = new_user();
    let instance = instance_value(org, "support_case", "open");
    let created = creation(&instance);
    committed(store.create(&created).await.unwrap(), "create");

    let mut clash = change(&instance, "triaged", &actor, Some(("k-clash", 1)));
    clash.event.id = created.event.id;
    let err = expect_err(store.apply(&clash).await, "an event id already in the log");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "audit event" })
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(instance.clone()),
        "the transition was not stored"
    );
    assert_eq!(
        store.history(org, instance.id, None, 100).await.unwrap().len(),
        1,
        "no history entry"
    );
    assert_eq!(
        store
            .find_idempotency(org, &actor, &crate::context::IdempotencyKey::new("k-clash").unwrap())
            .await
            .unwrap(),
        None,
        "the key was not claimed"
    );

    let second = instance_value(org, "support_case", "open");
    let mut clashing = creation(&second);
    clashing.event.id = created.event.id;
    let err = expect_err(store.create(&clashing).await, "a creation whose event id is taken");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "audit event" })
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get(org, second.id).await.unwrap(),
        None,
        "the instance was not stored"
    );
    assert_eq!(
        events(log, org).await,
        vec![created.event],
        "only the first event is there"
    );

    // With a fresh event id the same transition commits, with its event.
    let retry = change(&instance, "triaged", &actor, Some(("k-clash", 1)));
    committed(store.apply(&retry).await.unwrap(), "the retry");
    assert_eq!(events(log, org).await.len(), 2, "the retry wrote its event");
}

/// Runs every clause of the workflow outbox suite as its own `#[tokio::test]`.
///
/// The argument is an expression evaluating to a future of `Option<(S, L)>` where `S:
/// WorkflowStore` and `L: AuditLog` read the same database; `None` skips the test.
///
/// ```ignore
/// mod memory {
///     portal_core::workflow_outbox_conformance!(async {
///         let log = portal_adapters::memory::InMemoryAuditLog::new();
///         Some((portal_adapters::memory::InMemoryWorkflowStore::with_audit_log(log.clone()), log))
///     });
/// }
/// ```
#[macro_export]
macro_rules! workflow_outbox_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some((store, log)) = $factory.await else {
                return;
            };
            $crate::testing::workflow_outbox::$clause(&store, &log).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::workflow_outbox_conformance! { @tests ($factory)
            each_workflow_change_writes_its_event,
            a_refused_workflow_change_writes_no_event,
            a_workflow_change_whose_event_fails_is_not_stored,
        }
    };
}
