//! Idempotency keys at the service level, as Stripe has them: a duplicate still in flight
//! is refused with the retryable `idempotency.in_flight`, a duplicate after the commit
//! receives the stored result, a refused request holds nothing, a request dropped
//! half-way frees its key at once, and creation is idempotent the same way. Concurrent
//! identical requests have one effect on memory, SQLite (in memory and on a file) and
//! Postgres, on one replica and on two.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;
mod workflow_world;

use std::sync::Arc;

use async_trait::async_trait;
use portal_adapters::memory::InMemoryWorkflowStore;
use portal_adapters::postgres::PgWorkflowStore;
use portal_adapters::sqlite::SqliteWorkflowStore;
use portal_core::context::{IdempotencyKey, Principal};
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_core::store::{PageRequest, StoreError};
use portal_core::workflow::catalog::SupportCase;
use portal_core::workflow::{
    Applied, CreateRecord, Delegation, HistoryEntry, IdempotencyRecord, Instance, ListFilter, NewInstance,
    TransitionRecord, WorkflowFilter, WorkflowService, WorkflowStore,
};
use portal_core::{ErrorCode, PortalError};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
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

#[track_caller]
fn code<T: std::fmt::Debug>(result: Result<T, PortalError>) -> ErrorCode {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(err) => err.code(),
    }
}

/// The memory store, except that `apply` and `create` wait at a gate the test opens.
struct Gated {
    inner: InMemoryWorkflowStore,
    /// Notified when a write reaches the gate.
    arrived: Notify,
    /// One permit per write let through.
    gate: Semaphore,
}

impl Gated {
    fn new() -> Self {
        Self {
            inner: InMemoryWorkflowStore::new(),
            arrived: Notify::new(),
            gate: Semaphore::new(0),
        }
    }

    /// Lets every write through from now on.
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    async fn pass(&self) {
        self.arrived.notify_one();
        self.gate.acquire().await.expect("the gate is never closed").forget();
    }
}

#[async_trait]
impl WorkflowStore for Gated {
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError> {
        self.pass().await;
        self.inner.create(record).await
    }

    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError> {
        self.inner.get(org, id).await
    }

    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError> {
        self.pass().await;
        self.inner.apply(change).await
    }

    async fn find_idempotency(
        &self,
        org: OrgId,
        principal: &Principal,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.find_idempotency(org, principal, key).await
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &ListFilter,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<Instance>, StoreError> {
        self.inner.list(org, filter, after, limit).await
    }

    async fn history(
        &self,
        org: OrgId,
        id: WorkflowId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner.history(org, id, after, limit).await
    }

    async fn put_delegation(&self, delegation: &Delegation) -> Result<(), StoreError> {
        self.inner.put_delegation(delegation).await
    }

    async fn find_delegation(&self, org: OrgId, from: UserId, to: UserId) -> Result<Option<Delegation>, StoreError> {
        self.inner.find_delegation(org, from, to).await
    }
}

async fn gated_world() -> (Arc<World>, Arc<Gated>) {
    let store = Arc::new(Gated::new());
    let world = Arc::new(World::over(store.clone()).await);
    (world, store)
}

#[tokio::test]
async fn a_duplicate_in_flight_is_refused_retryably_and_after_the_commit_replays() {
    let (w, store) = gated_world().await;
    let member = w.members[0].clone();
    store.gate.add_permits(1);
    let c = w
        .workflows()
        .create(&w.as_user(&member), w.acme.id, case())
        .await
        .unwrap();
    store.arrived.notified().await; // consumes the create's arrival

    let first = tokio::spawn({
        let (w, member) = (w.clone(), member.clone());
        async move {
            w.workflows()
                .transition(
                    &w.with_key(&member, "t-1"),
                    w.acme.id,
                    c.id,
                    "triage",
                    1,
                    json!({ "priority": "low" }),
                )
                .await
        }
    });
    store.arrived.notified().await;

    // The first holds the key and waits in `apply`.
    let duplicate = w
        .workflows()
        .transition(
            &w.with_key(&member, "t-1"),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await;
    let err = duplicate.expect_err("a duplicate in flight is refused");
    assert_eq!(err.code(), ErrorCode::IdempotencyInFlight);
    assert!(err.is_retryable(), "in_flight is retryable");
    let other = w
        .workflows()
        .transition(
            &w.with_key(&member, "t-1"),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "high" }),
        )
        .await;
    assert_eq!(
        code(other),
        ErrorCode::IdempotencyInFlight,
        "while the key is held any request under it waits"
    );
    assert_eq!(
        w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(),
        1,
        "no effect yet"
    );

    store.open();
    let done = first.await.unwrap().expect("the first commits");
    assert_eq!((done.state.as_str(), done.version), ("triaged", 2));
    let replay = w
        .workflows()
        .transition(
            &w.with_key(&member, "t-1"),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await
        .expect("after the commit the duplicate replays");
    assert_eq!(replay, done);
    let reused = w
        .workflows()
        .transition(
            &w.with_key(&member, "t-1"),
            w.acme.id,
            c.id,
            "triage",
            1,
            json!({ "priority": "high" }),
        )
        .await;
    assert_eq!(code(reused), ErrorCode::IdempotencyKeyReused);
    assert_eq!(
        w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(),
        2,
        "one effect"
    );
}

#[tokio::test]
async fn a_refused_request_holds_no_key_so_the_corrected_retry_goes_ahead() {
    let (w, store) = gated_world().await;
    store.open();
    let member = &w.members[0];
    let c = w
        .workflows()
        .create(&w.as_user(member), w.acme.id, case())
        .await
        .unwrap();
    let missing = w
        .workflows()
        .transition(&w.with_key(member, "t-2"), w.acme.id, c.id, "triage", 1, json!({}))
        .await;
    assert_eq!(code(missing), ErrorCode::InputMissing);
    let retry = w
        .workflows()
        .transition(&w.with_key(member, "t-2"), w.acme.id, c.id, "triage", 1, json!({}))
        .await;
    assert_eq!(
        code(retry),
        ErrorCode::InputMissing,
        "a refusal is not stored: the same request is checked again, not in flight"
    );
    let fixed = w
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
        .expect("the key is free");
    assert_eq!(fixed.version, 2);
}

#[tokio::test]
async fn a_request_dropped_half_way_frees_its_key_at_once() {
    let (w, store) = gated_world().await;
    let member = w.members[0].clone();
    store.gate.add_permits(1);
    let c = w
        .workflows()
        .create(&w.as_user(&member), w.acme.id, case())
        .await
        .unwrap();
    store.arrived.notified().await; // consumes the create's arrival
    let send = {
        let (w, member) = (w.clone(), member.clone());
        move || {
            let (w, member) = (w.clone(), member.clone());
            async move {
                w.workflows()
                    .transition(
                        &w.with_key(&member, "t-3"),
                        w.acme.id,
                        c.id,
                        "triage",
                        1,
                        json!({ "priority": "low" }),
                    )
                    .await
            }
        }
    };
    // The first waits in `apply`, holding its key; then its client goes away and the
    // host drops the request's future, as a web server does.
    let first = tokio::spawn(send());
    store.arrived.notified().await;
    assert_eq!(code(send().await), ErrorCode::IdempotencyInFlight, "held while it runs");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(
        w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(),
        1,
        "the dropped request wrote nothing"
    );
    store.open();
    let retry = send()
        .await
        .expect("the key is free at once, with no timeout to wait out");
    assert_eq!((retry.state.as_str(), retry.version), ("triaged", 2));
}

#[tokio::test]
async fn create_under_a_key_is_idempotent() {
    let (w, store) = gated_world().await;
    let member = w.members[0].clone();
    let first = tokio::spawn({
        let (w, member) = (w.clone(), member.clone());
        async move {
            w.workflows()
                .create(&w.with_key(&member, "c-1"), w.acme.id, case())
                .await
        }
    });
    store.arrived.notified().await;
    let in_flight = w
        .workflows()
        .create(&w.with_key(&member, "c-1"), w.acme.id, case())
        .await;
    assert_eq!(code(in_flight), ErrorCode::IdempotencyInFlight);
    store.open();
    let created = first.await.unwrap().expect("the first creates");
    let replay = w
        .workflows()
        .create(&w.with_key(&member, "c-1"), w.acme.id, case())
        .await
        .expect("the retry replays");
    assert_eq!(replay, created);
    let other = NewInstance::new(
        "support_case",
        &SupportCase {
            subject: "another printer".into(),
            customer_reference: None,
        },
    )
    .unwrap();
    assert_eq!(
        code(
            w.workflows()
                .create(&w.with_key(&member, "c-1"), w.acme.id, other)
                .await
        ),
        ErrorCode::IdempotencyKeyReused
    );
    let listed = w
        .workflows()
        .list(
            &w.as_user(&member),
            w.acme.id,
            &WorkflowFilter::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![created], "one instance");
    // Another member's key of the same name is another key.
    let theirs = w
        .workflows()
        .create(&w.with_key(&w.members[1], "c-1"), w.acme.id, case())
        .await
        .unwrap();
    assert_ne!(theirs.id, replay.id);
}

/// Where the two duplicates of [`concurrent_duplicates_have_one_effect`] are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    /// Both to one service: the second may be told `idempotency.in_flight`.
    ToOneService,
    /// One to each of two replicas (services with their own caches and in-flight keys):
    /// the key is claimed in the store, so both get the one committed result (the
    /// second waits for the first's commit, or finds its record).
    ToTwoReplicas,
}

/// Two identical keyed transitions at once, `rounds` times on fresh instances: at least
/// one commits, every other answer is its replay (or, on one service,
/// `idempotency.in_flight`), and the history has exactly one entry for it.
async fn concurrent_duplicates_have_one_effect(store: Arc<dyn WorkflowStore>, rounds: usize, sent: Sent) {
    let w = Arc::new(World::over(store).await);
    let member = w.members[0].clone();
    for round in 0..rounds {
        let c = w
            .workflows()
            .create(&w.as_user(&member), w.acme.id, case())
            .await
            .unwrap();
        let key = format!("dup-{round}");
        let send = |on_replica: bool| {
            let (w, member, key) = (w.clone(), member.clone(), key.clone());
            tokio::spawn(async move {
                let workflows: &WorkflowService = if on_replica {
                    w.replica.workflows().unwrap()
                } else {
                    w.workflows()
                };
                workflows
                    .transition(
                        &w.with_key(&member, &key),
                        w.acme.id,
                        c.id,
                        "triage",
                        1,
                        json!({ "priority": "low" }),
                    )
                    .await
            })
        };
        let (a, b) = (send(false), send(sent == Sent::ToTwoReplicas));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let done: Vec<&Instance> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(!done.is_empty(), "one of them commits: {results:?}");
        assert!(
            done.iter().all(|i| **i == *done[0]),
            "the other replays it: {results:?}"
        );
        assert_eq!((done[0].state.as_str(), done[0].version), ("triaged", 2));
        for result in &results {
            if let Err(err) = result {
                assert_eq!(sent, Sent::ToOneService, "two replicas both get the result: {err:?}");
                assert_eq!(err.code(), ErrorCode::IdempotencyInFlight, "{err:?}");
            }
        }
        assert_eq!(
            w.store.history(w.acme.id, c.id, None, 10_000).await.unwrap().len(),
            2,
            "one effect in round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_on_two_replicas_have_one_effect_on_memory() {
    concurrent_duplicates_have_one_effect(Arc::new(InMemoryWorkflowStore::new()), 20, Sent::ToTwoReplicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_on_two_replicas_have_one_effect_on_a_sqlite_file() {
    let store = SqliteWorkflowStore::new(common::fresh_sqlite_file_pool().await);
    concurrent_duplicates_have_one_effect(Arc::new(store), 10, Sent::ToTwoReplicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_on_two_replicas_have_one_effect_on_postgres() {
    let Some(pool) = common::fresh_pg_pool().await else {
        return;
    };
    concurrent_duplicates_have_one_effect(Arc::new(PgWorkflowStore::new(pool)), 10, Sent::ToTwoReplicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_have_one_effect_on_memory() {
    concurrent_duplicates_have_one_effect(Arc::new(InMemoryWorkflowStore::new()), 20, Sent::ToOneService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_have_one_effect_on_sqlite() {
    let store = SqliteWorkflowStore::new(common::fresh_sqlite_pool().await);
    concurrent_duplicates_have_one_effect(Arc::new(store), 10, Sent::ToOneService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_have_one_effect_on_a_sqlite_file() {
    let store = SqliteWorkflowStore::new(common::fresh_sqlite_file_pool().await);
    concurrent_duplicates_have_one_effect(Arc::new(store), 10, Sent::ToOneService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_have_one_effect_on_postgres() {
    let Some(pool) = common::fresh_pg_pool().await else {
        return;
    };
    concurrent_duplicates_have_one_effect(Arc::new(PgWorkflowStore::new(pool)), 10, Sent::ToOneService).await;
}
