//! Two `WorkflowService`s over one store, as two replicas of a host run: each keeps its
//! own cache of instances, and the store's version check keeps them honest. Also counts
//! the store calls of a transition, so the cache and the deferred key lookup stay in
//! place.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use portal_adapters::memory::{InMemoryTenancyStore, InMemoryWorkflowStore};
use portal_core::context::{IdempotencyKey, Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind};
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_core::store::StoreError;
use portal_core::tenancy::{NewOrg, NewUser};
use portal_core::workflow::catalog::{self, SupportCase};
use portal_core::workflow::{
    Applied, CreateRecord, Delegation, HistoryEntry, IdempotencyRecord, Instance, ListFilter, NewInstance,
    TransitionRecord, WorkflowService, WorkflowStore,
};
use portal_core::{ErrorCode, Portal, RequestContext};
use serde_json::json;

/// The memory store, counting the reads a transition might make.
#[derive(Default)]
struct Counting {
    inner: InMemoryWorkflowStore,
    gets: AtomicUsize,
    key_lookups: AtomicUsize,
    applies: AtomicUsize,
}

impl Counting {
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.key_lookups.load(Ordering::SeqCst),
            self.applies.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl WorkflowStore for Counting {
    async fn create(&self, record: &CreateRecord) -> Result<Applied, StoreError> {
        self.inner.create(record).await
    }

    async fn get(&self, org: OrgId, id: WorkflowId) -> Result<Option<Instance>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(org, id).await
    }

    async fn apply(&self, change: &TransitionRecord) -> Result<Applied, StoreError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(change).await
    }

    async fn find_idempotency(
        &self,
        org: OrgId,
        principal: &Principal,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.key_lookups.fetch_add(1, Ordering::SeqCst);
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

/// A sink that keeps every event.
#[derive(Default)]
struct Events(Mutex<Vec<DiagnosticEvent>>);

impl DiagnosticSink for Events {
    fn record(&self, event: DiagnosticEvent) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

impl Events {
    fn decisions_of(&self, ctx: &RequestContext) -> usize {
        let events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .iter()
            .filter(|e| e.request_id == ctx.request_id() && e.kind == EventKind::PermissionDecision)
            .count()
    }
}

/// Two portals (replicas) over one tenancy store and one workflow store, an org and its
/// owner.
struct Replicas {
    a: Portal,
    b: Portal,
    store: Arc<Counting>,
    events: Arc<Events>,
    org: OrgId,
    owner: UserId,
}

impl Replicas {
    async fn new() -> Self {
        let tenancy = Arc::new(InMemoryTenancyStore::new());
        let store = Arc::new(Counting::default());
        let events = Arc::new(Events::default());
        let portal = || {
            Portal::builder()
                .tenancy_store(tenancy.clone())
                .workflow_store(store.clone())
                .workflow_definitions(catalog::all().unwrap())
                .diagnostics(events.clone())
                .build()
                .unwrap()
        };
        let (a, b) = (portal(), portal());
        let signup = a
            .context(Principal::Service(ServiceName::new("signup").unwrap()))
            .build();
        let owner = a
            .tenancy()
            .create_user(
                &signup,
                NewUser {
                    email: "owner@example.com".to_owned(),
                    display_name: "Owner".to_owned(),
                },
            )
            .await
            .unwrap();
        let org = a
            .tenancy()
            .create_org(
                &a.context(Principal::User(owner.id)).build(),
                NewOrg {
                    slug: "acme".to_owned(),
                    name: "Acme".to_owned(),
                    ..NewOrg::default()
                },
            )
            .await
            .unwrap();
        Self {
            a,
            b,
            store,
            events,
            org: org.id,
            owner: owner.id,
        }
    }

    fn ctx(&self, portal: &Portal, key: Option<&str>) -> RequestContext {
        let builder = portal.context(Principal::User(self.owner));
        match key {
            Some(key) => {
                let key = IdempotencyKey::new(key).unwrap();
                builder.with(|b| b.idempotency_key(key)).build()
            }
            None => builder.build(),
        }
    }

    /// A support case created through replica `a`, which therefore caches version 1.
    async fn case(&self) -> Instance {
        let new = NewInstance::new(
            "support_case",
            &SupportCase {
                subject: "printer on fire".into(),
                customer_reference: None,
            },
        )
        .unwrap()
        .assigned_to(self.owner);
        workflows(&self.a)
            .create(&self.ctx(&self.a, None), self.org, new)
            .await
            .unwrap()
    }
}

fn workflows(portal: &Portal) -> &WorkflowService {
    portal.workflows().expect("the portal has a workflow store")
}

#[tokio::test]
async fn a_transition_from_the_version_last_returned_makes_one_store_call() {
    let r = Replicas::new().await;
    let case = r.case().await;
    let before = r.store.counts();
    let triaged = workflows(&r.a)
        .transition(
            &r.ctx(&r.a, Some("k-1")),
            r.org,
            case.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await
        .unwrap();
    let started = workflows(&r.a)
        .transition(
            &r.ctx(&r.a, Some("k-2")),
            r.org,
            case.id,
            "start",
            triaged.version,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(started.version, 3);
    let after = r.store.counts();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (0, 0, 2),
        "per transition one apply and no read: the instance came from the cache, and `apply` claimed the key"
    );
    assert_eq!(
        r.store.get(r.org, case.id).await.unwrap(),
        Some(started),
        "what the service returned (and cached) is what the store holds"
    );
}

#[tokio::test]
async fn an_instance_another_replica_moved_on_is_a_version_conflict_not_a_stale_commit() {
    let r = Replicas::new().await;
    let case = r.case().await;
    let moved = workflows(&r.b)
        .transition(
            &r.ctx(&r.b, None),
            r.org,
            case.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await
        .unwrap();
    assert_eq!(moved.version, 2);

    // Replica `a` still caches version 1, on which "triage" passes every check; the
    // store's version check refuses it.
    let err = workflows(&r.a)
        .transition(
            &r.ctx(&r.a, None),
            r.org,
            case.id,
            "triage",
            1,
            json!({ "priority": "high" }),
        )
        .await
        .expect_err("a stale version never commits");
    assert_eq!(err.code(), ErrorCode::VersionConflict);
    assert_eq!(err.details()["current_version"], 2);
    assert_eq!(
        r.store.history(r.org, case.id, None, 10_000).await.unwrap().len(),
        2,
        "one transition"
    );

    // A refusal found on the stale copy is not trusted either: the answer is the
    // conflict, as without a cache, and no access decision made on the copy is recorded.
    let ctx = r.ctx(&r.a, None);
    let err = workflows(&r.a)
        .transition(&ctx, r.org, case.id, "triage", 1, json!({}))
        .await
        .expect_err("a stale version never commits");
    assert_eq!(err.code(), ErrorCode::VersionConflict, "not input_missing: {err:?}");
    assert_eq!(r.events.decisions_of(&ctx), 0);

    // From the version it now knows, `a` goes on.
    let started = workflows(&r.a)
        .transition(&r.ctx(&r.a, None), r.org, case.id, "start", 2, json!({}))
        .await
        .unwrap();
    assert_eq!((started.state.as_str(), started.version), ("in_progress", 3));
}

#[tokio::test]
async fn a_retry_on_another_replica_replays_and_a_reused_key_is_refused_before_any_check() {
    let r = Replicas::new().await;
    let case = r.case().await;
    let input = json!({ "priority": "low" });
    let first = workflows(&r.b)
        .transition(&r.ctx(&r.b, Some("k-1")), r.org, case.id, "triage", 1, input.clone())
        .await
        .unwrap();

    // `a` caches version 1: the retry passes its checks there, and `apply` replays.
    let retry_ctx = r.ctx(&r.a, Some("k-1"));
    let retry = workflows(&r.a)
        .transition(&retry_ctx, r.org, case.id, "triage", 1, input.clone())
        .await
        .expect("the retry replays");
    assert_eq!(retry, first);
    assert_eq!(r.events.decisions_of(&retry_ctx), 0, "a replay decides nothing");

    // Again, now that `a` knows version 2: "triage" fails its checks there (wrong state,
    // stale version), and the key lookup made then still replays.
    workflows(&r.a).get(&r.ctx(&r.a, None), r.org, case.id).await.unwrap();
    let retry = workflows(&r.a)
        .transition(&r.ctx(&r.a, Some("k-1")), r.org, case.id, "triage", 1, input)
        .await
        .expect("the retry replays");
    assert_eq!(retry, first);

    // The key with another request that would pass every check: refused by `apply`.
    let reuse_ctx = r.ctx(&r.a, Some("k-1"));
    let err = workflows(&r.a)
        .transition(&reuse_ctx, r.org, case.id, "start", 2, json!({}))
        .await
        .expect_err("a reused key is refused");
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    assert_eq!(
        r.events.decisions_of(&reuse_ctx),
        0,
        "refused before any check, as before"
    );
    // The key with another request that fails a check: refused by the key lookup.
    let err = workflows(&r.a)
        .transition(&r.ctx(&r.a, Some("k-1")), r.org, case.id, "close", 2, json!({}))
        .await
        .expect_err("a reused key is refused");
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    assert_eq!(
        r.store.history(r.org, case.id, None, 10_000).await.unwrap().len(),
        2,
        "one effect"
    );
}
