//! The transactional outbox: what writing a workflow transition's customer audit event
//! (and its webhook fan-out) costs the transition, and how fast the real
//! `DeliveryWorker` delivers to a receiver on loopback, on SQLite (a file) and Postgres.
//!
//! Run with `cargo bench -p portal-benches --bench outbox`. Postgres runs when
//! `PORTAL_BENCH_POSTGRES_URL` (or `PORTAL_TEST_POSTGRES_URL`) is set, in a fresh schema
//! dropped at the end; otherwise it is skipped, saying so.
//!
//! **Transition with its outbox row against the same transition without it**, one client,
//! interleaved rounds on one database:
//!
//! - *anchor, no outbox*: the store's own `apply` transaction as it was before the outbox
//!   (the same statements, same binds, same transaction handling: on SQLite one batch in
//!   `BEGIN IMMEDIATE` … `COMMIT` and the stores' `PASSIVE` checkpoint every 32 commits,
//!   on Postgres one statement of data-modifying CTEs), executed here with sqlx against
//!   the same schema (the per-instance `workflow_audit` table it wrote, which migration
//!   0026 dropped, made again for it), without the `audit_events` insert and the
//!   `webhook_deliveries` fan-out;
//! - *store `apply` with its event*: `WorkflowStore::apply` with the event, in an org
//!   without webhook endpoints (the fan-out statement runs and inserts nothing);
//! - *…and one subscribed endpoint*: the same in an org with one enabled endpoint
//!   subscribed to `workflow.transitioned`, so every transition also inserts one pending
//!   delivery.
//!
//! `-- breakdown` prices each part of the SQLite outbox: the anchor's batch plus the
//! `audit_events` row, plus the fan-out statement, or the row with the fan-out done by a
//! trigger, against the store's `apply`.
//!
//! `OUTBOX_PROFILE=<sqlite|postgres>:<path>:<calls>` runs one path alone, `calls`
//! transitions and nothing else, for `valgrind --tool=callgrind`: two runs with different
//! counts give the instructions of one transition. Paths: `anchor`, `outbox` (the store's
//! `apply`), `endpoint` (the same with one subscribed endpoint), and on SQLite the
//! breakdown's `event`, `fan-out` and `trigger`.
//!
//! **Delivery throughput and lag**: a real axum server on 127.0.0.1 answering `204`, the
//! real `DeliveryWorker` (its defaults: claims of 64, sent concurrently; loopback
//! allowed), on a multi-threaded runtime of two threads:
//!
//! - *drain*: N deliveries pending (made by N transitions), then the worker's `run_once`
//!   in a loop until all N are claimed, sent, answered and recorded: deliveries/s;
//! - *under load*: transitions committed at a fixed rate while the worker runs (woken by
//!   `LISTEN` on Postgres; on SQLite twice: polling every 10 ms alone, then also woken by
//!   the process's commits, `sqlite::webhook_wakeups`); the lag of each event is the
//!   time from its transaction's commit returning to the receiver answering its
//!   delivery: p50, p99, max, and the deliveries/s the receiver saw.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::too_many_lines,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use portal_adapters::postgres::{self, PgWebhookStore, PgWorkflowStore};
use portal_adapters::sqlite::{self, SqliteWebhookStore, SqliteWorkflowStore};
use portal_adapters::webhooks::{DeliveryConfig, DeliveryWorker};
use portal_core::audit::{AuditActor, AuditEvent, AuditTarget, actions};
use portal_core::context::{IdempotencyKey, Principal, RequestContext};
use portal_core::diagnostics::{DiagnosticEvent, EventKind};
use portal_core::ids::{OrgId, RandomIds, UserId, WebhookEndpointId, WorkflowId};
use portal_core::time::SystemClock;
use portal_core::webhooks::{
    EndpointSecrets, EndpointUrl, EventTypes, UrlPolicy, WebhookEndpoint, WebhookSecret, WebhookStore,
};
use portal_core::workflow::{
    Applied, CreateRecord, EntryKind, HistoryEntry, IdempotencyRecord, Instance, TransitionRecord, WorkflowStore,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use tokio::sync::Notify;

/// Rounds of the transition comparison; the paths alternate within each round.
const ROUNDS: usize = 5;

/// Deliveries pending before the drain starts.
const DRAIN: usize = 3000;

/// The rate of the load test, transitions (so events and deliveries) per second.
const RATE: u64 = 1000;

/// How long the load test produces.
const LOAD_FOR: Duration = Duration::from_secs(5);

static KEYS: AtomicU64 = AtomicU64::new(0);

fn next_key() -> IdempotencyKey {
    let n = KEYS.fetch_add(1, Ordering::Relaxed);
    IdempotencyKey::new(&format!("outbox-bench-{n}")).unwrap()
}

static IDS: std::sync::LazyLock<RandomIds> = std::sync::LazyLock::new(RandomIds::default);

/// The request context of a transition by `user`, at the system clock's now.
fn ctx(user: UserId) -> RequestContext {
    RequestContext::builder(Principal::User(user)).build(&SystemClock, &*IDS)
}

#[derive(Clone)]
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One backend: its stores and the pool the anchor runs on.
struct Backend {
    name: &'static str,
    store: Arc<dyn WorkflowStore>,
    webhooks: Arc<dyn WebhookStore>,
    raw: Raw,
    wake: Option<Arc<Notify>>,
    calls_per_round: usize,
}

/// A support case bouncing between `in_progress` and `waiting_on_customer`.
struct Case {
    instance: Instance,
    user: UserId,
}

impl Case {
    async fn new(store: &dyn WorkflowStore, org: OrgId) -> Self {
        let user = UserId::generate(&*IDS, time::OffsetDateTime::now_utc());
        let ctx = ctx(user);
        let now = portal_core::time::truncate_to_micros(ctx.now());
        let instance = Instance {
            id: WorkflowId::generate(&*IDS, now),
            org,
            definition: "support_case".to_owned(),
            definition_version: 1,
            state: "in_progress".to_owned(),
            version: 1,
            assignee: Some(user),
            payload: json!({ "subject": "printer on fire" }),
            created_by: Principal::User(user),
            created_at: now,
            updated_at: now,
            state_entered_at: now,
            due_at: None,
            votes: Vec::new(),
        };
        let history = HistoryEntry {
            version: 1,
            kind: EntryKind::Created,
            transition: String::new(),
            from: String::new(),
            to: instance.state.clone(),
            actor: Principal::User(user),
            at: now,
            input: serde_json::Value::Null,
            request_id: ctx.request_id(),
            idempotency_key: None,
        };
        let record = CreateRecord {
            event: event(&ctx, &instance, &history, actions::WORKFLOW_CREATED),
            instance: instance.clone(),
            history,
            idempotency: None,
        };
        assert!(matches!(store.create(&record).await.unwrap(), Applied::Committed(_)));
        Self { instance, user }
    }

    /// The record the service would hand the store for the next move, with a fresh key
    /// and its event, and the per-instance audit record the anchor's transaction also
    /// wrote.
    fn record(&self) -> (TransitionRecord, DiagnosticEvent) {
        let (name, to, input) = if self.instance.state == "in_progress" {
            (
                "ask_customer",
                "waiting_on_customer",
                json!({ "question": "which printer?" }),
            )
        } else {
            ("customer_replied", "in_progress", json!({}))
        };
        let key = next_key();
        let ctx = ctx(self.user);
        let now = portal_core::time::truncate_to_micros(ctx.now());
        let current = &self.instance;
        let next = Instance {
            state: to.to_owned(),
            version: current.version + 1,
            updated_at: now,
            state_entered_at: now,
            ..current.clone()
        };
        let history = HistoryEntry {
            version: next.version,
            kind: EntryKind::transition(),
            transition: name.to_owned(),
            from: current.state.clone(),
            to: to.to_owned(),
            actor: Principal::User(self.user),
            at: now,
            input,
            request_id: ctx.request_id(),
            idempotency_key: Some(key.clone()),
        };
        let audit = diagnostic(&ctx, &next, &history);
        let change = TransitionRecord {
            expected_version: current.version,
            event: event(&ctx, &next, &history, actions::WORKFLOW_TRANSITIONED),
            idempotency: Some(IdempotencyRecord {
                principal: Principal::User(self.user),
                key,
                fingerprint: [7; 32],
                response: next.clone(),
                created_at: now,
            }),
            next,
            history,
        };
        (change, audit)
    }
}

/// The per-instance audit record the store wrote before the outbox (migration 0026
/// dropped its table; [`ANCHOR_TABLES`] makes it again for the anchor).
fn diagnostic(ctx: &RequestContext, instance: &Instance, history: &HistoryEntry) -> DiagnosticEvent {
    DiagnosticEvent::new(ctx, EventKind::WorkflowTransition, "workflow.audit")
        .with_org(instance.org)
        .with_detail(
            "workflow.audit.v1",
            json!({
                "id": instance.id, "definition": instance.definition, "version": history.version,
                "kind": history.kind, "transition": history.transition, "from": history.from, "to": history.to,
            }),
        )
}

/// The customer audit event the service writes for this step.
fn event(
    ctx: &RequestContext,
    instance: &Instance,
    history: &HistoryEntry,
    entry: portal_core::audit::CatalogEntry,
) -> AuditEvent {
    AuditEvent::new(
        ctx,
        &*IDS,
        instance.org,
        entry,
        AuditActor::new(ctx.principal(), Some("Bench".to_owned())),
    )
    .target(AuditTarget::new("workflow", instance.id))
    .metadata(json!({
        "definition": instance.definition, "transition": history.transition,
        "from": history.from, "to": history.to, "version": instance.version,
    }))
}

/// An enabled endpoint of `org` at `url`, subscribed to `workflow.transitioned`.
async fn subscribe(webhooks: &dyn WebhookStore, org: OrgId, url: &str) {
    let now = portal_core::time::truncate_to_micros(time::OffsetDateTime::now_utc());
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(&*IDS, now),
        org,
        url: EndpointUrl::parse(url, &loopback()).unwrap(),
        description: String::new(),
        event_types: EventTypes::parse(&["workflow.transitioned".to_owned()], &[]).unwrap(),
        enabled: true,
        secrets: EndpointSecrets {
            current: WebhookSecret::generate().unwrap(),
            previous: None,
        },
        created_at: now,
        updated_at: now,
        failing_since: None,
    };
    let ctx = ctx(UserId::generate(&*IDS, now));
    let created = AuditEvent::new(
        &ctx,
        &*IDS,
        org,
        actions::WEBHOOK_ENDPOINT_CREATED,
        AuditActor::new(ctx.principal(), None),
    );
    webhooks.create_endpoint(&endpoint, &created).await.unwrap();
}

fn loopback() -> UrlPolicy {
    UrlPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned()],
    }
}

fn new_org() -> OrgId {
    OrgId::generate(&*IDS, time::OffsetDateTime::now_utc())
}

// ---------------------------------------------------------------------------------------
// The anchor: the store's apply as it was before the outbox
// ---------------------------------------------------------------------------------------

/// `SqliteWorkflowStore::apply`'s keyed batch before the outbox (its `APPLY_WITH_KEY`).
const SQLITE_ANCHOR: &str = "UPDATE workflow_instances SET definition = ?, definition_version = ?, state = ?, \
     version = ?, assignee = ?, payload = ?, created_by = ?, created_at = ?, updated_at = ?, state_entered_at = ?, \
     due_at = ?, votes = ? WHERE id = ? AND org_id = ? AND version = ?;
     INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor, \
     at, input, request_id, idempotency_key) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1;
     INSERT INTO workflow_audit (instance_id, org_id, at, event) SELECT ?, ?, ?, ? WHERE changes() = 1;
     INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at) \
     SELECT ?, ?, ?, ?, ?, ? WHERE changes() = 1;";

/// `PgWorkflowStore::apply`'s keyed statement before the outbox (its `APPLY_WITH_KEY`).
const POSTGRES_ANCHOR: &str = "WITH updated AS (
         UPDATE workflow_instances SET definition = $4, definition_version = $5, state = $6, version = $7,
         assignee = $8, payload = $9, created_by = $10, created_at = $11, updated_at = $12,
         state_entered_at = $13, due_at = $14, votes = $15
         WHERE id = $1 AND org_id = $2 AND version = $3
         RETURNING id
     ), history AS (
         INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor,
         at, input, request_id, idempotency_key)
         SELECT $1, $16, $2, $17, $18, $19, $20, $21, $22, $23, $24, $25 FROM updated
     ), audit AS (
         INSERT INTO workflow_audit (instance_id, org_id, at, event) SELECT $1, $2, $26, $27 FROM updated
     )
     INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at)
     SELECT $2, $28, $29, $30, $31, $32 FROM updated";

/// The per-instance audit table the anchor writes, as migration 0003 made it on SQLite
/// and on Postgres (0026 dropped it).
const ANCHOR_TABLES: (&str, &str) = (
    "CREATE TABLE workflow_audit (
         seq         INTEGER NOT NULL PRIMARY KEY,
         instance_id BLOB    NOT NULL,
         org_id      BLOB    NOT NULL,
         at          INTEGER NOT NULL,
         event       TEXT    NOT NULL CHECK (json_valid(event))
     ) STRICT;
     CREATE INDEX workflow_audit_instance_idx ON workflow_audit (instance_id, seq);",
    "CREATE TABLE workflow_audit (
         seq         BIGINT      GENERATED ALWAYS AS IDENTITY,
         instance_id UUID        NOT NULL,
         org_id      UUID        NOT NULL,
         at          TIMESTAMPTZ NOT NULL,
         event       JSONB       NOT NULL,
         CONSTRAINT workflow_audit_pkey PRIMARY KEY (seq)
     );
     CREATE INDEX workflow_audit_instance_idx ON workflow_audit (instance_id, seq);",
);

/// A value as the SQLite store writes it: JSON text.
macro_rules! json_text {
    ($value:expr) => {
        serde_json::to_string($value).unwrap()
    };
}

fn micros(at: time::OffsetDateTime) -> i64 {
    portal_core::time::to_unix_micros(at)
}

fn blob(uuid: uuid::Uuid) -> Vec<u8> {
    uuid.as_bytes().to_vec()
}

async fn anchor_sqlite(pool: &SqlitePool, change: &TransitionRecord, audit: &DiagnosticEvent) {
    anchor_sqlite_and(pool, change, audit, Extra::None).await;
}

/// What the breakdown adds to the SQLite anchor's batch, to price each part of the outbox.
#[derive(Clone, Copy, PartialEq)]
enum Extra {
    /// The anchor alone.
    None,
    /// The `audit_events` row, as the store's batch writes it.
    Event,
    /// The row and the fan-out statement: the store's batch, run by the bench.
    EventAndFanOut,
    /// The row in a copy of `audit_events` (same columns and indexes) whose `AFTER INSERT`
    /// trigger does the fan-out: one statement instead of two.
    EventWithTrigger,
}

/// The copy of `audit_events` for [`Extra::EventWithTrigger`].
const TRIGGER_TABLE: &str = "CREATE TABLE bench_events (
         id BLOB NOT NULL, org_id BLOB NOT NULL, action TEXT NOT NULL, actor_id TEXT NOT NULL,
         occurred_at INTEGER NOT NULL, targets TEXT NOT NULL, event TEXT NOT NULL);
     CREATE UNIQUE INDEX bench_events_by_org ON bench_events (org_id, id);
     CREATE INDEX bench_events_by_org_time ON bench_events (org_id, occurred_at);
     CREATE TRIGGER bench_events_fan_out AFTER INSERT ON bench_events BEGIN
         INSERT INTO webhook_deliveries (endpoint_id, event_id, org_id, occurred_at, state, attempts, due_at)
         SELECT id, NEW.id, org_id, NEW.occurred_at, 'pending', 0, NEW.occurred_at FROM webhook_endpoints
         WHERE org_id = NEW.org_id AND enabled = 1
           AND (event_types = '[]' OR EXISTS (SELECT 1 FROM json_each(webhook_endpoints.event_types)
                                              WHERE value = NEW.action));
     END;";

const EVENT_ROW: &str = "
     INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event)
     SELECT ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1;";

const FAN_OUT: &str = "
     INSERT INTO webhook_deliveries (endpoint_id, event_id, org_id, occurred_at, state, attempts, due_at)
     SELECT id, ?, org_id, ?, 'pending', 0, ? FROM webhook_endpoints
     WHERE org_id = ? AND enabled = 1
     AND (event_types = '[]' OR EXISTS (SELECT 1 FROM json_each(webhook_endpoints.event_types) WHERE value = ?))
     AND EXISTS (SELECT 1 FROM audit_events WHERE org_id = ? AND id = ?);";

const TRIGGER_ROW: &str = "
     INSERT INTO bench_events (id, org_id, action, actor_id, occurred_at, targets, event)
     SELECT ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1;";

static BREAKDOWN_SQL: std::sync::LazyLock<[String; 4]> = std::sync::LazyLock::new(|| {
    [
        SQLITE_ANCHOR.to_owned(),
        format!("{SQLITE_ANCHOR}{EVENT_ROW}"),
        format!("{SQLITE_ANCHOR}{EVENT_ROW}{FAN_OUT}"),
        format!("{SQLITE_ANCHOR}{TRIGGER_ROW}"),
    ]
});

async fn anchor_sqlite_and(pool: &SqlitePool, change: &TransitionRecord, audit: &DiagnosticEvent, extra: Extra) {
    let sql: &'static str = &BREAKDOWN_SQL[extra as usize];
    let next = &change.next;
    let entry = &change.history;
    let record = change.idempotency.as_ref().unwrap();
    let id = blob(next.id.as_uuid());
    let org = blob(next.org.as_uuid());
    let mut query = sqlx::query(sql)
        .bind(next.definition.as_str())
        .bind(i64::from(next.definition_version))
        .bind(next.state.as_str())
        .bind(i64::try_from(next.version).unwrap())
        .bind(next.assignee.map(|user| blob(user.as_uuid())))
        .bind(json_text!(&next.payload))
        .bind(next.created_by.to_string())
        .bind(micros(next.created_at))
        .bind(micros(next.updated_at))
        .bind(micros(next.state_entered_at))
        .bind(next.due_at.map(micros))
        .bind(json_text!(&next.votes))
        .bind(id.clone())
        .bind(org.clone())
        .bind(i64::try_from(change.expected_version).unwrap())
        .bind(id.clone())
        .bind(i64::try_from(entry.version).unwrap())
        .bind(org.clone())
        .bind(json_text!(&entry.kind))
        .bind(entry.transition.as_str())
        .bind(entry.from.as_str())
        .bind(entry.to.as_str())
        .bind(entry.actor.to_string())
        .bind(micros(entry.at))
        .bind(json_text!(&entry.input))
        .bind(blob(entry.request_id.as_uuid()))
        .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
        .bind(id)
        .bind(org.clone())
        .bind(micros(audit.at))
        .bind(json_text!(audit))
        .bind(org)
        .bind(record.principal.to_string())
        .bind(record.key.as_str())
        .bind(record.fingerprint.as_slice())
        .bind(json_text!(&record.response))
        .bind(micros(record.created_at));
    if extra != Extra::None {
        // As the store encodes the event.
        let event = &change.event;
        let text = serde_json::to_string(event).unwrap();
        let targets = serde_json::to_string(&event.target_ids().collect::<Vec<_>>()).unwrap();
        let event_id = blob(event.id.as_uuid());
        let event_org = blob(event.org.as_uuid());
        query = query
            .bind(event_id.clone())
            .bind(event_org.clone())
            .bind(event.action.as_str())
            .bind(event.actor.id.as_str())
            .bind(micros(event.occurred_at))
            .bind(targets)
            .bind(text);
        if extra == Extra::EventAndFanOut {
            query = query
                .bind(event_id.clone())
                .bind(micros(event.occurred_at))
                .bind(micros(event.occurred_at))
                .bind(event_org.clone())
                .bind(event.action.as_str())
                .bind(event_org)
                .bind(event_id);
        }
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let done = query.execute(&mut *tx).await.unwrap();
    assert!(done.rows_affected() > 0, "the anchor wrote its rows");
    tx.commit().await.unwrap();
    checkpoint_as_the_stores_do(pool);
}

/// Commits of the anchor since the start, and whether its checkpoint is running.
static ANCHOR_COMMITS: AtomicU64 = AtomicU64::new(0);
static ANCHOR_CHECKPOINTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What every SQLite store's commit does after its writer's turn (`sqlite::codec`'s
/// `WriteTx::commit`): every 32 commits, a `PASSIVE` checkpoint on another task, one at a
/// time, that nobody waits for. The anchor commits the same way, so the comparison prices
/// the outbox, not a different checkpoint cadence (SQLite's own at 1,000 WAL pages).
fn checkpoint_as_the_stores_do(pool: &SqlitePool) {
    let commits = ANCHOR_COMMITS.fetch_add(1, Ordering::Relaxed) + 1;
    if commits.is_multiple_of(32) && !ANCHOR_CHECKPOINTING.swap(true, Ordering::AcqRel) {
        let pool = pool.clone();
        tokio::spawn(async move {
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await;
            ANCHOR_CHECKPOINTING.store(false, Ordering::Release);
        });
    }
}

async fn anchor_postgres(pool: &PgPool, change: &TransitionRecord, audit: &DiagnosticEvent) {
    use sqlx::types::Json;

    let next = &change.next;
    let entry = &change.history;
    let record = change.idempotency.as_ref().unwrap();
    let done = sqlx::query(POSTGRES_ANCHOR)
        .bind(next.id.as_uuid())
        .bind(next.org.as_uuid())
        .bind(i64::try_from(change.expected_version).unwrap())
        .bind(next.definition.as_str())
        .bind(i64::from(next.definition_version))
        .bind(next.state.as_str())
        .bind(i64::try_from(next.version).unwrap())
        .bind(next.assignee.map(|user| user.as_uuid()))
        .bind(Json(&next.payload))
        .bind(next.created_by.to_string())
        .bind(next.created_at)
        .bind(next.updated_at)
        .bind(next.state_entered_at)
        .bind(next.due_at)
        .bind(Json(&next.votes))
        .bind(i64::try_from(entry.version).unwrap())
        .bind(Json(&entry.kind))
        .bind(entry.transition.as_str())
        .bind(entry.from.as_str())
        .bind(entry.to.as_str())
        .bind(entry.actor.to_string())
        .bind(entry.at)
        .bind(Json(&entry.input))
        .bind(entry.request_id.as_uuid())
        .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
        .bind(audit.at)
        .bind(Json(audit))
        .bind(record.principal.to_string())
        .bind(record.key.as_str())
        .bind(record.fingerprint.as_slice())
        .bind(Json(&record.response))
        .bind(record.created_at)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "the anchor wrote its rows");
}

// ---------------------------------------------------------------------------------------
// Part 1: the transition with and without its outbox row
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Anchor,
    Outbox,
    OutboxEndpoint,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Anchor => "anchor: the same transaction without the outbox",
            Path::Outbox => "store `apply` with its event",
            Path::OutboxEndpoint => "store `apply` with its event and one subscribed endpoint",
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn transitions(backend: &Backend) {
    let paths = [Path::Anchor, Path::Outbox, Path::OutboxEndpoint];
    let plain = new_org();
    let subscribed = new_org();
    // The subscribed org's endpoint is never delivered to here: its deliveries pile up
    // pending, as they would behind a slow receiver.
    subscribe(&*backend.webhooks, subscribed, "http://127.0.0.1:9/never").await;
    let mut cases = Vec::new();
    for path in paths {
        let org = if path == Path::OutboxEndpoint {
            subscribed
        } else {
            plain
        };
        cases.push(Case::new(&*backend.store, org).await);
    }
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut busy = vec![Duration::ZERO; paths.len()];
    for round in 0..=ROUNDS {
        // The order rotates each round, so no path always runs first (or after another).
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let path = &paths[i];
            let started = Instant::now();
            for _ in 0..backend.calls_per_round {
                let (record, audit) = cases[i].record();
                let start = Instant::now();
                match path {
                    Path::Anchor => match &backend.raw {
                        Raw::Sqlite(pool) => anchor_sqlite(pool, &record, &audit).await,
                        Raw::Postgres(pool) => anchor_postgres(pool, &record, &audit).await,
                    },
                    Path::Outbox | Path::OutboxEndpoint => {
                        assert!(matches!(
                            backend.store.apply(&record).await.unwrap(),
                            Applied::Committed(_)
                        ));
                    }
                }
                if round > 0 {
                    latencies[i].push(start.elapsed());
                }
                cases[i].instance = record.next;
            }
            // Round 0 warms up.
            if round > 0 {
                busy[i] += started.elapsed();
            }
        }
    }
    println!("\n### {}: a transition with and without its outbox row\n", backend.name);
    println!(
        "{} transitions per path ({} rounds of {}, paths interleaved, order rotating), one client; \
         record building outside the timed call\n",
        ROUNDS * backend.calls_per_round,
        ROUNDS,
        backend.calls_per_round
    );
    println!("| path | transitions/s | p50 | p99 | time per transition vs anchor |");
    println!("|---|---:|---:|---:|---:|");
    let anchor = latencies[0].len() as f64 / busy[0].as_secs_f64();
    for ((path, mut lat), busy) in paths.iter().zip(latencies).zip(busy) {
        lat.sort();
        let rate = lat.len() as f64 / busy.as_secs_f64();
        println!(
            "| {} | {:.0} | {:.1} µs | {:.1} µs | {:+.1}% |",
            path.label(),
            rate,
            percentile(&lat, 0.5).as_secs_f64() * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6,
            100.0 * (anchor / rate - 1.0)
        );
    }
}

/// Where the SQLite outbox's time goes: the anchor's batch with each part of the outbox
/// added in turn (run by the bench, as the store would), the fan-out as a trigger, and the
/// store's `apply`, interleaved as in [`transitions`], in an org without endpoints.
async fn breakdown(backend: &Backend) {
    let Raw::Sqlite(pool) = &backend.raw else { return };
    sqlx::raw_sql(TRIGGER_TABLE).execute(pool).await.unwrap();
    let paths: [(&str, Option<Extra>); 5] = [
        ("anchor: the transaction without the outbox", Some(Extra::None)),
        ("anchor + the `audit_events` row", Some(Extra::Event)),
        (
            "anchor + the row + the fan-out statement (the store's batch)",
            Some(Extra::EventAndFanOut),
        ),
        (
            "anchor + the row, fanned out by an `AFTER INSERT` trigger",
            Some(Extra::EventWithTrigger),
        ),
        ("store `apply` with its event", None),
    ];
    let org = new_org();
    let mut cases = Vec::new();
    for _ in paths {
        cases.push(Case::new(&*backend.store, org).await);
    }
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut busy = vec![Duration::ZERO; paths.len()];
    for round in 0..=ROUNDS {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let started = Instant::now();
            for _ in 0..backend.calls_per_round {
                let (record, audit) = cases[i].record();
                let start = Instant::now();
                match paths[i].1 {
                    Some(extra) => anchor_sqlite_and(pool, &record, &audit, extra).await,
                    None => assert!(matches!(
                        backend.store.apply(&record).await.unwrap(),
                        Applied::Committed(_)
                    )),
                }
                if round > 0 {
                    latencies[i].push(start.elapsed());
                }
                cases[i].instance = record.next;
            }
            if round > 0 {
                busy[i] += started.elapsed();
            }
        }
    }
    println!("\n### {}: where the outbox's time goes\n", backend.name);
    println!("| path | transitions/s | p50 | p99 | time per transition vs anchor |");
    println!("|---|---:|---:|---:|---:|");
    let anchor = latencies[0].len() as f64 / busy[0].as_secs_f64();
    for ((path, mut lat), busy) in paths.iter().zip(latencies).zip(busy) {
        lat.sort();
        let rate = lat.len() as f64 / busy.as_secs_f64();
        println!(
            "| {} | {:.0} | {:.1} µs | {:.1} µs | {:+.1}% |",
            path.0,
            rate,
            percentile(&lat, 0.5).as_secs_f64() * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6,
            100.0 * (anchor / rate - 1.0)
        );
    }
}

/// One path alone, `calls` transitions in a row with no timing: what callgrind counts.
/// Two runs with different `calls` give the instructions of one transition (their
/// difference over the difference in calls), start-up and set-up cancelled out.
async fn profile(backend: &Backend, path: &str, calls: usize) {
    let extra = match path {
        "anchor" => Some(Extra::None),
        "event" => Some(Extra::Event),
        "fan-out" => Some(Extra::EventAndFanOut),
        "trigger" => Some(Extra::EventWithTrigger),
        "outbox" | "endpoint" => None,
        other => panic!("unknown path {other}"),
    };
    let org = new_org();
    if path == "endpoint" {
        subscribe(&*backend.webhooks, org, "http://127.0.0.1:9/never").await;
    }
    if extra == Some(Extra::EventWithTrigger)
        && let Raw::Sqlite(pool) = &backend.raw
    {
        sqlx::raw_sql(TRIGGER_TABLE).execute(pool).await.unwrap();
    }
    let mut case = Case::new(&*backend.store, org).await;
    for _ in 0..calls {
        let (record, audit) = case.record();
        match (extra, &backend.raw) {
            (Some(extra), Raw::Sqlite(pool)) => anchor_sqlite_and(pool, &record, &audit, extra).await,
            (Some(Extra::None), Raw::Postgres(pool)) => anchor_postgres(pool, &record, &audit).await,
            (Some(_), Raw::Postgres(_)) => panic!("the breakdown's paths are SQLite's"),
            (None, _) => assert!(matches!(
                backend.store.apply(&record).await.unwrap(),
                Applied::Committed(_)
            )),
        }
        case.instance = record.next;
    }
    println!("profiled: {path} on {}, {calls} transitions", backend.name);
}

// ---------------------------------------------------------------------------------------
// Part 2: delivery throughput and lag
// ---------------------------------------------------------------------------------------

/// What the receiver saw: the commit instant of each event (filled by the producer),
/// and each delivery's lag.
#[derive(Default)]
struct Seen {
    committed: Mutex<HashMap<String, Instant>>,
    lags: Mutex<Vec<Duration>>,
    received: AtomicUsize,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

async fn hook(State(seen): State<Arc<Seen>>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = message["data"]["id"].as_str().unwrap_or_default().to_owned();
    if let Some(at) = seen.committed.lock().unwrap().get(&id) {
        seen.lags.lock().unwrap().push(now.saturating_duration_since(*at));
    }
    seen.received.fetch_add(1, Ordering::Relaxed);
    seen.first.lock().unwrap().get_or_insert(now);
    *seen.last.lock().unwrap() = Some(now);
    StatusCode::NO_CONTENT
}

async fn receiver(seen: Arc<Seen>) -> String {
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/hook")
}

/// The backend's worker polling every 10 ms, and woken by its wake-ups when `woken`.
fn worker(backend: &Backend, woken: bool) -> DeliveryWorker {
    let config = DeliveryConfig {
        url_policy: loopback(),
        poll_interval: Duration::from_millis(10),
        ..DeliveryConfig::default()
    };
    let mut worker = DeliveryWorker::new(backend.webhooks.clone(), config).unwrap();
    if woken && let Some(wake) = &backend.wake {
        worker = worker.with_wakeups(wake.clone());
    }
    worker
}

async fn deliveries(backend: &Backend) {
    // The transition comparison left its subscribed org's deliveries pending, for an
    // endpoint that is never reached: they would only be retried in the way.
    match &backend.raw {
        Raw::Sqlite(pool) => {
            sqlx::query("DELETE FROM webhook_deliveries")
                .execute(pool)
                .await
                .unwrap();
        }
        Raw::Postgres(pool) => {
            sqlx::query("DELETE FROM webhook_deliveries")
                .execute(pool)
                .await
                .unwrap();
        }
    }
    // Drain: DRAIN pending deliveries, then the worker until all are recorded.
    let seen = Arc::new(Seen::default());
    let url = receiver(seen.clone()).await;
    let org = new_org();
    subscribe(&*backend.webhooks, org, &url).await;
    let mut case = Case::new(&*backend.store, org).await;
    for _ in 0..DRAIN {
        let (record, _) = case.record();
        backend.store.apply(&record).await.unwrap();
        case.instance = record.next;
    }
    let drainer = worker(backend, true);
    let started = Instant::now();
    let mut claimed = 0;
    let mut claims = 0;
    while claimed < DRAIN {
        claimed += drainer.run_once().await.unwrap();
        claims += 1;
    }
    let drained = started.elapsed();
    let drain_received = seen.received.load(Ordering::Relaxed);

    println!("\n### {}: webhook delivery to a receiver on loopback\n", backend.name);
    println!("| measure | figure |");
    println!("|---|---:|");
    println!(
        "| drain: {DRAIN} pending deliveries, `run_once` in a loop ({claims} claims; {drain_received} answered 2xx) | {:.0} deliveries/s ({:.2} s) |",
        DRAIN as f64 / drained.as_secs_f64(),
        drained.as_secs_f64()
    );
    // SQLite's worker polling alone (as without wake-ups), then woken by the commits; on
    // Postgres woken by `LISTEN`.
    let modes: &[bool] = if matches!(backend.raw, Raw::Sqlite(_)) {
        &[false, true]
    } else {
        &[true]
    };
    for &woken in modes {
        load(backend, woken).await;
    }
}

/// Under load: RATE transitions a second for LOAD_FOR while the worker runs (woken by
/// the backend's wake-ups when `woken`, else polling every 10 ms): the receiver's rate and
/// each event's lag.
async fn load(backend: &Backend, woken: bool) {
    let worker = worker(backend, woken);
    let seen = Arc::new(Seen::default());
    let url = receiver(seen.clone()).await;
    let org = new_org();
    subscribe(&*backend.webhooks, org, &url).await;
    let mut case = Case::new(&*backend.store, org).await;
    let stop = Arc::new(Notify::new());
    let running = tokio::spawn({
        let stop = stop.clone();
        worker.clone().run(async move { stop.notified().await })
    });
    let total = (RATE * LOAD_FOR.as_secs()) as usize;
    let start = Instant::now();
    let mut behind = Duration::ZERO;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / RATE as f64);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due.into()).await;
        } else {
            behind = behind.max(now - due);
        }
        let (record, _) = case.record();
        let id = record.event.id.to_string();
        backend.store.apply(&record).await.unwrap();
        seen.committed.lock().unwrap().insert(id, Instant::now());
        case.instance = record.next;
    }
    let produced_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.notify_one();
    running.await.unwrap();
    let received = seen.received.load(Ordering::Relaxed);
    let mut lags = seen.lags.lock().unwrap().clone();
    lags.sort();
    let span = seen
        .last
        .lock()
        .unwrap()
        .unwrap()
        .duration_since(seen.first.lock().unwrap().unwrap());

    let how = match (woken, &backend.raw) {
        (false, _) => "polling every 10 ms",
        (true, Raw::Sqlite(_)) => "woken by the process's commits",
        (true, Raw::Postgres(_)) => "woken by `LISTEN`",
    };
    println!(
        "| load, worker {how}: {total} transitions at {RATE}/s (produced in {:.2} s, at most {:.0} ms behind schedule) | {received} delivered, {:.0} deliveries/s at the receiver |",
        produced_in.as_secs_f64(),
        behind.as_secs_f64() * 1e3,
        received as f64 / span.as_secs_f64()
    );
    println!(
        "| load, worker {how}: lag, commit → receiver answered | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        percentile(&lags, 0.5).as_secs_f64() * 1e3,
        percentile(&lags, 0.99).as_secs_f64() * 1e3,
        lags.last().unwrap().as_secs_f64() * 1e3
    );
}

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

async fn sqlite_backend(path: &std::path::Path) -> Backend {
    let pool = sqlite::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlite::migrate(&pool).await.unwrap();
    sqlx::raw_sql(ANCHOR_TABLES.0).execute(&pool).await.unwrap();
    Backend {
        name: "SQLite (file, WAL)",
        store: Arc::new(SqliteWorkflowStore::new(pool.clone())),
        webhooks: Arc::new(SqliteWebhookStore::new(pool.clone())),
        wake: Some(sqlite::webhook_wakeups(&pool)),
        raw: Raw::Sqlite(pool),
        calls_per_round: 600,
    }
}

fn postgres_url() -> Option<String> {
    ["PORTAL_BENCH_POSTGRES_URL", "PORTAL_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.is_empty()))
}

async fn postgres_backend(url: &str) -> (Backend, String) {
    let admin = PgConnectOptions::from_str(url).unwrap();
    let schema = format!("portal_test_{:032x}", uuid::Uuid::now_v7().as_u128());
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    // The name is a fixed prefix and hex digits, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let options = admin.options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .unwrap();
    postgres::migrate(&pool).await.unwrap();
    sqlx::raw_sql(ANCHOR_TABLES.1).execute(&pool).await.unwrap();
    let wake = postgres::webhook_wakeups(pool.clone());
    let backend = Backend {
        name: "Postgres",
        store: Arc::new(PgWorkflowStore::new(pool.clone())),
        webhooks: Arc::new(PgWebhookStore::new(pool.clone())),
        raw: Raw::Postgres(pool),
        wake: Some(wake),
        calls_per_round: 300,
    };
    (backend, schema)
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = PgConnection::connect_with(&PgConnectOptions::from_str(url).unwrap())
        .await
        .unwrap();
    let statement = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = std::env::temp_dir().join(format!("portal-bench-outbox-{:032x}", uuid::Uuid::now_v7().as_u128()));
    std::fs::create_dir_all(&dir).unwrap();
    rt.block_on(async {
        println!("## The outbox: custom measurements");
        let mut backends = vec![sqlite_backend(&dir.join("bench.db")).await];
        let url = postgres_url();
        let mut schema = None;
        match &url {
            Some(url) => {
                let (backend, name) = postgres_backend(url).await;
                backends.push(backend);
                schema = Some(name);
            }
            None => {
                println!("skipped: PORTAL_BENCH_POSTGRES_URL / PORTAL_TEST_POSTGRES_URL not set, Postgres not measured")
            }
        }
        if let Ok(spec) = std::env::var("OUTBOX_PROFILE") {
            // `OUTBOX_PROFILE=<sqlite|postgres>:<path>:<calls>`
            let parts: Vec<&str> = spec.split(':').collect();
            let [backend, path, calls] = parts[..] else {
                panic!("OUTBOX_PROFILE is <sqlite|postgres>:<path>:<calls>")
            };
            let index = usize::from(backend == "postgres");
            profile(&backends[index], path, calls.parse().unwrap()).await;
        }
        for backend in backends.iter().filter(|_| std::env::var("OUTBOX_PROFILE").is_err()) {
            if only.as_deref().is_none_or(|o| o == "transitions") {
                transitions(backend).await;
            }
            if only.as_deref() == Some("breakdown") {
                breakdown(backend).await;
            }
            if only.as_deref().is_none_or(|o| o == "deliveries") {
                deliveries(backend).await;
            }
        }
        if let (Some(url), Some(schema)) = (&url, &schema) {
            drop_schema(url, schema).await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
