//! Webhook delivery end to end: audited changes become signed deliveries that a real HTTP
//! receiver on loopback verifies with the independent `standardwebhooks` crate, under
//! faults (answers 500, too slow for the timeout, receiver down, a worker that stops
//! between sending and marking, Postgres connections killed mid-run), on SQLite and
//! Postgres. Nothing is lost: N changes give N audit events and N acknowledged
//! deliveries, and duplicates carry the same `webhook-id`. Two workers on one Postgres
//! database share the work and send each message exactly once.
//!
//! The Postgres cases need `PORTAL_TEST_POSTGRES_URL`; without it they return early after
//! saying so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use portal_adapters::webhooks::{DeliveryConfig, DeliveryWorker};
use portal_core::audit::{AuditLog, AuditQuery, actions};
use portal_core::ids::{OrgId, RandomIds, WebhookAttemptId, WebhookEndpointId};
use portal_core::store::StoreError;
use portal_core::tenancy::TenancyStore;
use portal_core::testing::audit::audit_event;
use portal_core::testing::tenancy::fixtures::{new_org, new_user};
use portal_core::testing::tenancy::{invitation_value, roles_of};
use portal_core::webhooks::{
    AttemptStatus, Delivery, DeliveryAttempt, DisableRule, EndpointSecrets, EndpointUrl, EventTypes, FinishedAttempt,
    NextStep, Replay, UrlPolicy, WebhookEndpoint, WebhookSecret, WebhookStore,
};
use secrecy::ExposeSecret;

/// What the receiver does with the next requests.
#[derive(Default)]
struct Faults {
    /// Answer 500 to this many requests.
    fail: AtomicUsize,
    /// Answer this many requests only after the worker's timeout.
    slow: AtomicUsize,
}

#[derive(Default)]
struct Received {
    /// Every verified request's `webhook-id`, in arrival order.
    ids: Vec<String>,
    /// The ids answered 2xx.
    acknowledged: BTreeSet<String>,
    /// Requests whose signature did not verify.
    unverified: usize,
}

struct Receiver {
    addr: SocketAddr,
    faults: Arc<Faults>,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    verifier: Arc<standardwebhooks::Webhook>,
    faults: Arc<Faults>,
    received: Arc<Mutex<Received>>,
}

fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn hook(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if state.verifier.verify(&body, &headers).is_err() {
        state.received.lock().unwrap().unverified += 1;
        return StatusCode::BAD_REQUEST;
    }
    state.received.lock().unwrap().ids.push(id.clone());
    if take(&state.faults.fail) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if take(&state.faults.slow) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    state.received.lock().unwrap().acknowledged.insert(id);
    StatusCode::NO_CONTENT
}

/// A receiver on a loopback port verifying with `secret` (at `addr` when given, to come
/// back on the same port after being stopped).
async fn receiver(
    secret: &WebhookSecret,
    addr: Option<SocketAddr>,
    received: Option<Arc<Mutex<Received>>>,
    faults: Option<Arc<Faults>>,
) -> Receiver {
    let listener = tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let faults = faults.unwrap_or_default();
    let received = received.unwrap_or_default();
    let state = ReceiverState {
        verifier: Arc::new(standardwebhooks::Webhook::new(secret.to_text().expose_secret()).unwrap()),
        faults: faults.clone(),
        received: received.clone(),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Receiver {
        addr,
        faults,
        received,
        server,
    }
}

fn loopback() -> UrlPolicy {
    UrlPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned()],
    }
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_millis(400),
        lease: Duration::from_millis(700),
        batch: 16,
        poll_interval: Duration::from_millis(20),
        url_policy: loopback(),
        schedule: vec![time::Duration::milliseconds(50); 12],
        ..DeliveryConfig::default()
    }
}

/// A store whose `finish_attempt` fails for the first `fail` acknowledged attempts: the
/// worker stopped after the receiver answered 2xx and before it marked the delivery.
struct ForgetfulStore {
    inner: Arc<dyn WebhookStore>,
    fail: AtomicUsize,
    /// How many deliveries `claim_due` handed out through this store.
    claimed: AtomicUsize,
}

#[async_trait]
impl WebhookStore for ForgetfulStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        event: &portal_core::audit::AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.create_endpoint(endpoint, event).await
    }
    async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.inner.get_endpoint(org, id).await
    }
    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<WebhookEndpointId>,
        limit: usize,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.inner.list_endpoints(org, after, limit).await
    }
    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        event: &portal_core::audit::AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.update_endpoint(endpoint, event).await
    }
    async fn delete_endpoint(
        &self,
        org: OrgId,
        id: WebhookEndpointId,
        event: &portal_core::audit::AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.delete_endpoint(org, id, event).await
    }
    async fn claim_due(
        &self,
        now: time::OffsetDateTime,
        lease_until: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let claimed = self.inner.claim_due(now, lease_until, limit).await?;
        self.claimed.fetch_add(claimed.len(), Ordering::SeqCst);
        Ok(claimed)
    }
    async fn finish_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: NextStep,
        disable: Option<DisableRule>,
    ) -> Result<bool, StoreError> {
        if attempt.status == AttemptStatus::Delivered && take(&self.fail) {
            return Err(StoreError::NotFound {
                entity: "stopped worker",
            });
        }
        self.inner.finish_attempt(attempt, next, disable).await
    }
    /// A worker stopped between sending and marking: the deliveries it forgets (the
    /// first `fail` delivered ones) are not recorded and come back when their lease ends;
    /// the rest of the claim is recorded as the worker sent it.
    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError> {
        let forgotten: Vec<bool> = finished
            .iter()
            .map(|one| one.attempt.status == AttemptStatus::Delivered && take(&self.fail))
            .collect();
        let kept: Vec<FinishedAttempt> = finished
            .iter()
            .zip(&forgotten)
            .filter(|(_, forgot)| !**forgot)
            .map(|(one, _)| one.clone())
            .collect();
        let mut recorded = self.inner.finish_attempts(&kept).await?.into_iter();
        Ok(forgotten
            .iter()
            .map(|forgot| !forgot && recorded.next().unwrap_or(false))
            .collect())
    }
    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        after: Option<WebhookAttemptId>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.inner.list_attempts(org, endpoint, after, limit).await
    }
    async fn replay(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        replay: Replay,
        now: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.inner.replay(org, endpoint, replay, now).await
    }
}

/// Every attempt of `endpoint`, read page by page.
async fn attempts(store: &dyn WebhookStore, org: OrgId, endpoint: WebhookEndpointId) -> Vec<DeliveryAttempt> {
    let mut out: Vec<DeliveryAttempt> = Vec::new();
    loop {
        let page = store
            .list_attempts(org, endpoint, out.last().map(|a| a.id), 50)
            .await
            .unwrap();
        let done = page.len() < 50;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// A killer of the backends of one Postgres schema, for the connection fault.
type Killer = Box<dyn Fn() -> futures_like::BoxFuture + Send + Sync>;

mod futures_like {
    /// A boxed unit future.
    pub(crate) type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// N invitations under faults: the first deliveries answered 500, then some too slow, the
/// receiver stopped for a while, the worker stopping between sending and marking, and
/// (Postgres) every connection of the pool killed mid-run. At the end: N audit events, N
/// distinct `webhook-id`s acknowledged, every request verified, every repeat carrying an
/// id of the N, and the attempt log holding one delivered attempt per message.
async fn n_changes_under_faults_lose_nothing(
    tenancy: Arc<dyn TenancyStore>,
    log: Arc<dyn AuditLog>,
    webhooks: Arc<dyn WebhookStore>,
    killer: Option<Killer>,
    wake: Option<Arc<tokio::sync::Notify>>,
) {
    const N: usize = 30;
    let ids = RandomIds::default();
    let secret = WebhookSecret::generate().unwrap();
    let mut receiver = receiver(&secret, None, None, None).await;
    receiver.faults.fail.store(4, Ordering::SeqCst);
    receiver.faults.slow.store(2, Ordering::SeqCst);

    let owner = new_user(&*tenancy).await;
    let org = new_org(&*tenancy, &owner).await;
    let now = time::OffsetDateTime::now_utc();
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(&ids, now),
        org: org.id,
        url: EndpointUrl::parse(&format!("http://{}/hook", receiver.addr), &loopback()).unwrap(),
        description: String::new(),
        event_types: EventTypes::parse(&["invitation.created".to_owned()], &[]).unwrap(),
        enabled: true,
        secrets: EndpointSecrets {
            current: secret.clone(),
            previous: None,
        },
        created_at: now,
        updated_at: now,
        failing_since: None,
    };
    let mut created = audit_event(org.id);
    created.action = actions::WEBHOOK_ENDPOINT_CREATED.action();
    webhooks.create_endpoint(&endpoint, &created).await.unwrap();

    let forgetful: Arc<dyn WebhookStore> = Arc::new(ForgetfulStore {
        inner: webhooks.clone(),
        fail: AtomicUsize::new(3),
        claimed: AtomicUsize::new(0),
    });
    let mut worker = DeliveryWorker::new(forgetful, config()).unwrap();
    if let Some(wake) = wake {
        worker = worker.with_wakeups(wake);
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let running = tokio::spawn({
        let stop = stop.clone();
        worker.clone().run(async move { stop.notified().await })
    });

    let mut expected = BTreeSet::new();
    for i in 0..N {
        let user = new_user(&*tenancy).await;
        let mut event = audit_event(org.id);
        event.action = actions::INVITATION_CREATED.action();
        event.occurred_at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        expected.insert(portal_core::webhooks::message_id(event.id).to_string());
        let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), now + time::Duration::hours(1));
        // A killed connection fails the change (retryable); the change is made again.
        loop {
            match tenancy.create_invitation(&invitation, &event).await {
                Ok(()) => break,
                Err(err) if err.is_retryable() => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(err) => panic!("{err:?}"),
            }
        }
        if i == N / 3 {
            // The receiver goes down for a while, and comes back on the same port.
            receiver.server.abort();
            let _ = (&mut receiver.server).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (received, faults) = (receiver.received.clone(), receiver.faults.clone());
            receiver = self::receiver(&secret, Some(receiver.addr), Some(received), Some(faults)).await;
        }
        if i == N / 2
            && let Some(kill) = &killer
        {
            kill().await;
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = receiver.received.lock().unwrap().acknowledged.len() == N;
        let logged = attempts(&*webhooks, org.id, endpoint.id)
            .await
            .iter()
            .filter(|a| a.status == AttemptStatus::Delivered)
            .map(|a| a.message.to_string())
            .collect::<BTreeSet<_>>();
        if done && logged == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every delivery was acknowledged and logged in time: {} acknowledged, {} logged",
            receiver.received.lock().unwrap().acknowledged.len(),
            logged.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.notify_one();
    running.await.unwrap();

    let events = log
        .list(
            org.id,
            &AuditQuery {
                action: Some(actions::INVITATION_CREATED.action()),
                ..AuditQuery::default()
            },
            None,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), N, "N changes, N audit events");
    let received = std::mem::take(&mut *receiver.received.lock().unwrap());
    assert_eq!(received.unverified, 0, "every request verified with standardwebhooks");
    assert_eq!(received.acknowledged, expected, "N acknowledged deliveries, none lost");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &received.ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert!(
        counts.keys().all(|id| expected.contains(*id)),
        "duplicates only with the same webhook-id"
    );
    assert!(
        counts.values().any(|n| *n > 1),
        "the faults caused redeliveries (with the same webhook-id)"
    );
    let log = attempts(&*webhooks, org.id, endpoint.id).await;
    assert!(
        log.iter()
            .any(|a| a.status == AttemptStatus::Rejected && a.http_status == Some(500))
    );
    assert!(log.iter().any(|a| a.status == AttemptStatus::Unreachable));
    assert!(
        log.iter()
            .all(|a| a.excerpt.len() <= portal_core::webhooks::MAX_EXCERPT)
    );
}

/// An endpoint URL whose host is not allowed is never contacted, even if stored: a
/// delivery to a loopback address the policy does not allow is given up unsent.
async fn forbidden_addresses_are_not_contacted(tenancy: Arc<dyn TenancyStore>, webhooks: Arc<dyn WebhookStore>) {
    let ids = RandomIds::default();
    let secret = WebhookSecret::generate().unwrap();
    let receiver = receiver(&secret, None, None, None).await;
    let owner = new_user(&*tenancy).await;
    let org = new_org(&*tenancy, &owner).await;
    let now = time::OffsetDateTime::now_utc();
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(&ids, now),
        org: org.id,
        url: EndpointUrl::parse(&format!("http://{}/hook", receiver.addr), &loopback()).unwrap(),
        description: String::new(),
        event_types: EventTypes::default(),
        enabled: true,
        secrets: EndpointSecrets {
            current: secret,
            previous: None,
        },
        created_at: now,
        updated_at: now,
        failing_since: None,
    };
    let mut created = audit_event(org.id);
    created.action = actions::WEBHOOK_ENDPOINT_CREATED.action();
    created.occurred_at = now.replace_nanosecond(0).unwrap();
    webhooks.create_endpoint(&endpoint, &created).await.unwrap();
    let strict = DeliveryConfig {
        url_policy: UrlPolicy::default(),
        ..config()
    };
    let worker = DeliveryWorker::new(webhooks.clone(), strict).unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let log = attempts(&*webhooks, org.id, endpoint.id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, AttemptStatus::Unreachable);
    assert!(receiver.received.lock().unwrap().ids.is_empty(), "nothing was sent");
    assert_eq!(worker.run_once().await.unwrap(), 0, "given up, not retried");
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use portal_adapters::sqlite::{SqliteAuditLog, SqliteTenancyStore, SqliteWebhookStore};

    /// N changes under faults on a SQLite file: nothing lost, duplicates with the same id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn n_changes_under_faults_lose_nothing_on_sqlite() {
        let pool = common::fresh_sqlite_file_pool().await;
        n_changes_under_faults_lose_nothing(
            Arc::new(SqliteTenancyStore::new(pool.clone())),
            Arc::new(SqliteAuditLog::new(pool.clone())),
            Arc::new(SqliteWebhookStore::new(pool)),
            None,
            None,
        )
        .await;
    }

    /// A commit that queued deliveries wakes the worker of the same process at once: with
    /// a poll interval of an hour, an invitation's event (written by `insert_event`) and a
    /// workflow transition's (written by the workflow store's own batch) are still
    /// delivered within seconds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_that_queues_deliveries_wakes_the_worker_on_sqlite() {
        use portal_adapters::sqlite::{SqliteWorkflowStore, webhook_wakeups};
        use portal_core::testing::workflow::{change, creation, instance_value};
        use portal_core::workflow::WorkflowStore;

        let pool = common::fresh_sqlite_file_pool().await;
        let tenancy = SqliteTenancyStore::new(pool.clone());
        let webhooks: Arc<dyn WebhookStore> = Arc::new(SqliteWebhookStore::new(pool.clone()));
        let workflows = SqliteWorkflowStore::new(pool.clone());
        let secret = WebhookSecret::generate().unwrap();
        let receiver = receiver(&secret, None, None, None).await;
        let owner = new_user(&tenancy).await;
        let org = new_org(&tenancy, &owner).await;
        let now = time::OffsetDateTime::now_utc();
        let ids = RandomIds::default();
        let endpoint = WebhookEndpoint {
            id: WebhookEndpointId::generate(&ids, now),
            org: org.id,
            url: EndpointUrl::parse(&format!("http://{}/hook", receiver.addr), &loopback()).unwrap(),
            description: String::new(),
            event_types: EventTypes::parse(&[], &[]).unwrap(),
            enabled: true,
            secrets: EndpointSecrets {
                current: secret.clone(),
                previous: None,
            },
            created_at: now,
            updated_at: now,
            failing_since: None,
        };
        // Events due now (the fixtures' times are fixed ones).
        let due_now = || time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let mut created = audit_event(org.id);
        created.action = actions::WEBHOOK_ENDPOINT_CREATED.action();
        created.occurred_at = due_now();
        webhooks.create_endpoint(&endpoint, &created).await.unwrap();

        let config = DeliveryConfig {
            poll_interval: Duration::from_secs(3600),
            ..config()
        };
        let worker = DeliveryWorker::new(webhooks.clone(), config)
            .unwrap()
            .with_wakeups(webhook_wakeups(&pool));
        let stop = Arc::new(tokio::sync::Notify::new());
        let running = tokio::spawn({
            let stop = stop.clone();
            worker.run(async move { stop.notified().await })
        });
        // The worker's first look delivers the endpoint's own creation event; then it
        // waits for a wake-up, its poll an hour away.
        let acknowledged = |n: usize| {
            let received = receiver.received.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                while received.lock().unwrap().acknowledged.len() < n {
                    assert!(
                        Instant::now() < deadline,
                        "only {} of {n} deliveries made: the commit did not wake the worker",
                        received.lock().unwrap().acknowledged.len()
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        acknowledged(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let user = new_user(&tenancy).await;
        let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), now + time::Duration::hours(1));
        let mut event = audit_event(org.id);
        event.action = actions::INVITATION_CREATED.action();
        event.occurred_at = due_now();
        tenancy.create_invitation(&invitation, &event).await.unwrap();
        acknowledged(2).await;

        let instance = instance_value(org.id, "support_case", "open");
        let mut record = creation(&instance);
        record.event.occurred_at = due_now();
        workflows.create(&record).await.unwrap();
        acknowledged(3).await;
        let actor = portal_core::context::Principal::User(owner.id);
        let mut record = change(&instance, "triaged", &actor, Some(("wake-key", 1)));
        record.event.occurred_at = due_now();
        workflows.apply(&record).await.unwrap();
        acknowledged(4).await;

        stop.notify_one();
        running.await.unwrap();
        assert_eq!(
            receiver.received.lock().unwrap().unverified,
            0,
            "every request verified"
        );
    }

    /// A forbidden address is not contacted (SQLite).
    #[tokio::test]
    async fn forbidden_addresses_are_not_contacted_on_sqlite() {
        let pool = common::fresh_sqlite_pool().await;
        forbidden_addresses_are_not_contacted(
            Arc::new(SqliteTenancyStore::new(pool.clone())),
            Arc::new(SqliteWebhookStore::new(pool)),
        )
        .await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use portal_adapters::postgres::{PgAuditLog, PgTenancyStore, PgWebhookStore, webhook_wakeups};

    /// N changes under faults on Postgres, every connection of the pool killed with
    /// `pg_terminate_backend` mid-run, the worker woken by `LISTEN/NOTIFY`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn n_changes_under_faults_lose_nothing_on_postgres() {
        let Some(schema) = common::fresh_pg_schema().await else {
            return;
        };
        let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
        let admin = pool.clone();
        let name = schema.name.clone();
        let killer: Killer = Box::new(move || {
            let admin = admin.clone();
            let name = name.clone();
            Box::pin(async move {
                let killed: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()) AS k",
                )
                .bind(&name)
                .fetch_one(&admin)
                .await
                .unwrap();
                assert!(killed >= 1, "the pool's other connections were killed");
            })
        });
        let webhooks = Arc::new(PgWebhookStore::new(pool.clone()));
        let wake = webhook_wakeups(pool.clone());
        n_changes_under_faults_lose_nothing(
            Arc::new(PgTenancyStore::new(pool.clone())),
            Arc::new(PgAuditLog::new(pool.clone())),
            webhooks,
            Some(killer),
            Some(wake),
        )
        .await;
    }

    /// Two delivery workers, each with its own pool (two replicas), on one database: N
    /// changes are delivered, every `webhook-id` acknowledged exactly once by the
    /// receiver (verified with `standardwebhooks`), none lost, and both workers claimed
    /// some of them (`FOR UPDATE SKIP LOCKED` shares the work without handing a delivery
    /// to both).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_workers_deliver_each_message_exactly_once_on_postgres() {
        const N: usize = 200;
        let Some(schema) = common::fresh_pg_schema().await else {
            return;
        };
        let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
        let tenancy = PgTenancyStore::new(pool.clone());
        let webhooks: Arc<dyn WebhookStore> = Arc::new(PgWebhookStore::new(pool.clone()));
        let ids = RandomIds::default();
        let secret = WebhookSecret::generate().unwrap();
        let receiver = receiver(&secret, None, None, None).await;
        let owner = new_user(&tenancy).await;
        let org = new_org(&tenancy, &owner).await;
        let now = time::OffsetDateTime::now_utc();
        let endpoint = WebhookEndpoint {
            id: WebhookEndpointId::generate(&ids, now),
            org: org.id,
            url: EndpointUrl::parse(&format!("http://{}/hook", receiver.addr), &loopback()).unwrap(),
            description: String::new(),
            event_types: EventTypes::parse(&["invitation.created".to_owned()], &[]).unwrap(),
            enabled: true,
            secrets: EndpointSecrets {
                current: secret.clone(),
                previous: None,
            },
            created_at: now,
            updated_at: now,
            failing_since: None,
        };
        let mut created = audit_event(org.id);
        created.action = actions::WEBHOOK_ENDPOINT_CREATED.action();
        webhooks.create_endpoint(&endpoint, &created).await.unwrap();

        // The changes are made first, so both workers find a full queue.
        let mut expected = BTreeSet::new();
        for _ in 0..N {
            let user = new_user(&tenancy).await;
            let mut event = audit_event(org.id);
            event.action = actions::INVITATION_CREATED.action();
            event.occurred_at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
            expected.insert(portal_core::webhooks::message_id(event.id).to_string());
            let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), now + time::Duration::hours(1));
            tenancy.create_invitation(&invitation, &event).await.unwrap();
        }

        let stop = Arc::new(tokio::sync::Notify::new());
        let mut workers = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..2 {
            let own_pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
            let store = Arc::new(ForgetfulStore {
                inner: Arc::new(PgWebhookStore::new(own_pool.clone())),
                fail: AtomicUsize::new(0),
                claimed: AtomicUsize::new(0),
            });
            stores.push(store.clone());
            let config = DeliveryConfig {
                lease: Duration::from_secs(30),
                ..config()
            };
            let worker = DeliveryWorker::new(store, config)
                .unwrap()
                .with_wakeups(webhook_wakeups(own_pool));
            let stop = stop.clone();
            workers.push(tokio::spawn(async move {
                worker
                    .run(async move {
                        stop.notified().await;
                    })
                    .await;
            }));
        }

        let deadline = Instant::now() + Duration::from_secs(60);
        while receiver.received.lock().unwrap().acknowledged.len() < N {
            assert!(
                Instant::now() < deadline,
                "only {} of {N} deliveries acknowledged in time",
                receiver.received.lock().unwrap().acknowledged.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A late duplicate would arrive now, if any.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.notify_waiters();
        for worker in workers {
            worker.await.unwrap();
        }

        let received = std::mem::take(&mut *receiver.received.lock().unwrap());
        assert_eq!(received.unverified, 0, "every request verified with standardwebhooks");
        assert_eq!(received.acknowledged, expected, "N acknowledged deliveries, none lost");
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &received.ids {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "each webhook-id sent exactly once: {repeated:?}");
        assert_eq!(received.ids.len(), N);
        let claimed: Vec<usize> = stores.iter().map(|s| s.claimed.load(Ordering::SeqCst)).collect();
        assert_eq!(
            claimed.iter().sum::<usize>(),
            N,
            "every delivery claimed once: {claimed:?}"
        );
        assert!(claimed.iter().all(|c| *c > 0), "both workers delivered: {claimed:?}");
    }

    /// A forbidden address is not contacted (Postgres).
    #[tokio::test]
    async fn forbidden_addresses_are_not_contacted_on_postgres() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        forbidden_addresses_are_not_contacted(
            Arc::new(PgTenancyStore::new(pool.clone())),
            Arc::new(PgWebhookStore::new(pool)),
        )
        .await;
    }
}
