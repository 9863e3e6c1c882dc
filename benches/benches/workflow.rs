//! Workflows: transitions per second and latency through `WorkflowService::transition`,
//! beside a hand-written sqlx transaction that writes the same rows (the limit).
//!
//! Run with `cargo bench -p portal-benches --bench workflow -- --noplot`. Postgres runs
//! when `PORTAL_BENCH_POSTGRES_URL` (or `PORTAL_TEST_POSTGRES_URL`) is set, in a fresh
//! schema dropped at the end; otherwise it is skipped, saying so.
//! `PORTAL_BENCH_PG_SYNCHRONOUS_COMMIT=off` sets `synchronous_commit` on the bench's
//! connections (every path alike), for a machine whose disk flush hides the round trips.
//!
//! Three paths per backend, one client, one transition after another:
//!
//! - **service**: `WorkflowService::transition` with an idempotency key, on a portal whose
//!   tenancy and workflow stores are the same backend, as a host wires them. A call reads
//!   the actor's membership, takes the instance from the service's cache (the driver sends
//!   the version the previous call returned, as a client would), checks permission,
//!   state, inputs and guards, then makes the one `apply` call, which claims the key. The
//!   key is looked up, and the instance read, only when a check fails or the cached
//!   version is stale, which never happens here.
//! - **store apply**: `WorkflowStore::apply` alone, with the record the service would
//!   build (next instance, history entry, customer audit event, idempotency record).
//! - **hand-written**: one sqlx transaction writing the same rows from the same values:
//!   `UPDATE` with the version check, `INSERT` history, the customer audit event and the
//!   idempotency record, serializing the same JSON. No key lookup, no reads, no
//!   decoding, and no webhook fan-out statement (the store runs one).
//! - **hand-written, fewest calls**: the same rows and values, written the way the stores
//!   write them: on Postgres one statement (data-modifying CTEs, no `BEGIN`/`COMMIT`
//!   round trips), on SQLite one batch of the four statements inside `BEGIN IMMEDIATE` …
//!   `COMMIT` (three calls to the connection's worker thread instead of six). The store
//!   beats the plain hand-written transaction by the same technique, so this is the
//!   stricter limit.
//!
//! The program prints its own measurements first (Markdown: transitions per second over
//! interleaved rounds, p50 and p99 from `Instant` around each call), then runs criterion
//! with small samples; the whole run takes about two minutes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use portal_adapters::memory::{InMemoryTenancyStore, InMemoryWorkflowStore};
use portal_adapters::postgres::{self, PgTenancyStore, PgWorkflowStore};
use portal_adapters::sqlite::{self, SqliteTenancyStore, SqliteWorkflowStore};
use portal_core::audit::{AuditActor, AuditEvent, AuditTarget, actions};
use portal_core::context::{IdempotencyKey, Principal, ServiceName};
use portal_core::ids::{OrgId, RandomIds, UserId};
use portal_core::tenancy::{NewOrg, NewUser, TenancyStore};
use portal_core::workflow::catalog::{self, SupportCase};
use portal_core::workflow::{
    Applied, EntryKind, HistoryEntry, IdempotencyRecord, Instance, NewInstance, TransitionRecord, WorkflowStore,
    fingerprint,
};
use portal_core::{Portal, RequestContext};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};

/// Calls per path per round of the custom report; rounds alternate the paths so drift
/// in the machine's load hits all of them alike.
const ROUNDS: usize = 5;

/// Keys are unique within the process: a counter behind a per-run prefix.
static KEYS: AtomicU64 = AtomicU64::new(0);

fn next_key() -> IdempotencyKey {
    let n = KEYS.fetch_add(1, Ordering::Relaxed);
    IdempotencyKey::new(&format!("bench-{n}")).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Where the hand-written transaction writes.
#[derive(Clone)]
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One backend under test: a portal over it, its workflow store, the actor, and the
/// pool the hand-written transaction uses.
struct Target {
    name: &'static str,
    portal: Portal,
    store: Arc<dyn WorkflowStore>,
    org: OrgId,
    user: UserId,
    raw: Option<Raw>,
    calls_per_round: usize,
}

/// A support case bouncing between `in_progress` and `waiting_on_customer`, as its
/// driver last saw it.
struct Case {
    instance: Instance,
}

impl Case {
    fn next_move(&self) -> (&'static str, &'static str, serde_json::Value) {
        if self.instance.state == "in_progress" {
            (
                "ask_customer",
                "waiting_on_customer",
                json!({ "question": "which printer?" }),
            )
        } else {
            ("customer_replied", "in_progress", json!({}))
        }
    }
}

async fn build_target(
    name: &'static str,
    tenancy: Arc<dyn TenancyStore>,
    store: Arc<dyn WorkflowStore>,
    raw: Option<Raw>,
    calls_per_round: usize,
) -> Target {
    let portal = Portal::builder()
        .tenancy_store(tenancy)
        .workflow_store(store.clone())
        .workflow_definitions(catalog::all().unwrap())
        .build()
        .unwrap();
    let signup = Principal::Service(ServiceName::new("signup").unwrap());
    let suffix = KEYS.fetch_add(1, Ordering::Relaxed);
    let user = portal
        .tenancy()
        .create_user(
            &portal.context(signup).build(),
            NewUser {
                email: format!("bench-{suffix}@example.com"),
                display_name: "Bench".to_owned(),
            },
        )
        .await
        .unwrap();
    let org = portal
        .tenancy()
        .create_org(
            &portal.context(Principal::User(user.id)).build(),
            NewOrg {
                slug: format!("bench-{suffix}"),
                name: "Bench".to_owned(),
                ..NewOrg::default()
            },
        )
        .await
        .unwrap();
    Target {
        name,
        portal,
        store,
        org: org.id,
        user: user.id,
        raw,
        calls_per_round,
    }
}

impl Target {
    fn ctx(&self, key: Option<IdempotencyKey>) -> RequestContext {
        let builder = self.portal.context(Principal::User(self.user));
        match key {
            Some(key) => builder.with(|b| b.idempotency_key(key)).build(),
            None => builder.build(),
        }
    }

    /// A case created, triaged and started through the service, so it sits in
    /// `in_progress`.
    async fn new_case(&self) -> Case {
        let workflows = self.portal.workflows().unwrap();
        let new = NewInstance::new(
            "support_case",
            &SupportCase {
                subject: "printer on fire".into(),
                customer_reference: None,
            },
        )
        .unwrap()
        .assigned_to(self.user);
        let created = workflows.create(&self.ctx(None), self.org, new).await.unwrap();
        let triaged = workflows
            .transition(
                &self.ctx(None),
                self.org,
                created.id,
                "triage",
                1,
                json!({ "priority": "p2" }),
            )
            .await
            .unwrap();
        let started = workflows
            .transition(
                &self.ctx(None),
                self.org,
                created.id,
                "start",
                triaged.version,
                json!({}),
            )
            .await
            .unwrap();
        Case { instance: started }
    }

    /// One transition through the service.
    async fn service_step(&self, case: &mut Case) {
        let (name, _, input) = case.next_move();
        let ctx = self.ctx(Some(next_key()));
        let next = self
            .portal
            .workflows()
            .unwrap()
            .transition(&ctx, self.org, case.instance.id, name, case.instance.version, input)
            .await
            .unwrap();
        case.instance = next;
    }

    /// The record the service would hand to the store for the case's next move.
    fn record(&self, case: &Case) -> TransitionRecord {
        let (name, to, input) = case.next_move();
        let ctx = self.ctx(Some(next_key()));
        let current = &case.instance;
        let request = json!({
            "op": "transition", "org": self.org, "instance": current.id, "transition": name,
            "expected_version": current.version, "input": input,
        });
        let next = Instance {
            state: to.to_owned(),
            version: current.version + 1,
            updated_at: ctx.now(),
            state_entered_at: ctx.now(),
            due_at: None,
            votes: Vec::new(),
            ..current.clone()
        };
        let history = HistoryEntry {
            version: next.version,
            kind: EntryKind::transition(),
            transition: name.to_owned(),
            from: current.state.clone(),
            to: to.to_owned(),
            actor: ctx.principal().clone(),
            at: ctx.now(),
            input,
            request_id: ctx.request_id(),
            idempotency_key: ctx.idempotency_key().cloned(),
        };
        let idempotency = ctx.idempotency_key().map(|key| IdempotencyRecord {
            principal: ctx.principal().clone(),
            key: key.clone(),
            fingerprint: fingerprint(&request),
            response: next.clone(),
            created_at: ctx.now(),
        });
        let event = AuditEvent::new(
            &ctx,
            &RandomIds::default(),
            self.org,
            actions::WORKFLOW_TRANSITIONED,
            AuditActor::new(ctx.principal(), Some("Bench".to_owned())),
        )
        .target(AuditTarget::new("workflow", next.id))
        .metadata(json!({
            "definition": next.definition, "transition": history.transition,
            "from": history.from, "to": history.to, "version": next.version,
        }));
        TransitionRecord {
            expected_version: current.version,
            next,
            history,
            event,
            idempotency,
        }
    }

    /// One transition through `WorkflowStore::apply` alone.
    async fn store_step(&self, case: &mut Case) {
        let record = self.record(case);
        match self.store.apply(&record).await.unwrap() {
            Applied::Committed(instance) => case.instance = instance,
            Applied::Replayed(_) => panic!("a fresh key replayed"),
        }
    }

    /// One transition written by a hand-written transaction.
    async fn raw_step(&self, case: &mut Case) {
        let record = self.record(case);
        match self.raw.as_ref().unwrap() {
            Raw::Sqlite(pool) => raw_sqlite(pool, &record).await,
            Raw::Postgres(pool) => raw_postgres(pool, &record).await,
        }
        case.instance = record.next;
    }

    /// One transition written by hand in the fewest calls.
    async fn batched_step(&self, case: &mut Case) {
        let record = self.record(case);
        match self.raw.as_ref().unwrap() {
            Raw::Sqlite(pool) => batched_sqlite(pool, &record).await,
            Raw::Postgres(pool) => one_statement_postgres(pool, &record).await,
        }
        case.instance = record.next;
    }
}

async fn batched_sqlite(pool: &SqlitePool, record: &TransitionRecord) {
    let next = &record.next;
    let key = record.idempotency.as_ref().unwrap();
    let entry = &record.history;
    let id = next.id.as_uuid().as_bytes().to_vec();
    let org = next.org.as_uuid().as_bytes().to_vec();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let written = sqlx::query(
        "UPDATE workflow_instances SET state = ?, version = ?, updated_at = ?, state_entered_at = ?, \
         due_at = NULL, votes = '[]' WHERE id = ? AND org_id = ? AND version = ?;
         INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor, \
         at, input, request_id, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
         INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event) \
         VALUES (?, ?, ?, ?, ?, ?, ?);
         INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at) \
         VALUES (?, ?, ?, ?, ?, ?);",
    )
    .bind(next.state.as_str())
    .bind(i64::try_from(next.version).unwrap())
    .bind(portal_core::time::to_unix_micros(next.updated_at))
    .bind(portal_core::time::to_unix_micros(next.updated_at))
    .bind(&id)
    .bind(&org)
    .bind(i64::try_from(record.expected_version).unwrap())
    .bind(&id)
    .bind(i64::try_from(entry.version).unwrap())
    .bind(&org)
    .bind(serde_json::to_string(&entry.kind).unwrap())
    .bind(entry.transition.as_str())
    .bind(entry.from.as_str())
    .bind(entry.to.as_str())
    .bind(entry.actor.to_string())
    .bind(portal_core::time::to_unix_micros(entry.at))
    .bind(serde_json::to_string(&entry.input).unwrap())
    .bind(entry.request_id.as_uuid().as_bytes().to_vec())
    .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
    .bind(record.event.id.as_uuid().as_bytes().to_vec())
    .bind(&org)
    .bind(record.event.action.as_str())
    .bind(record.event.actor.id.as_str())
    .bind(portal_core::time::to_unix_micros(record.event.occurred_at))
    .bind(serde_json::to_string(&record.event.target_ids().collect::<Vec<_>>()).unwrap())
    .bind(serde_json::to_string(&record.event).unwrap())
    .bind(&org)
    .bind(key.principal.to_string())
    .bind(key.key.as_str())
    .bind(key.fingerprint.as_slice())
    .bind(serde_json::to_string(&key.response).unwrap())
    .bind(portal_core::time::to_unix_micros(key.created_at))
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        written.rows_affected(),
        4,
        "the version check passes and every row is written"
    );
    tx.commit().await.unwrap();
}

async fn one_statement_postgres(pool: &PgPool, record: &TransitionRecord) {
    use sqlx::types::Json;

    let next = &record.next;
    let key = record.idempotency.as_ref().unwrap();
    let entry = &record.history;
    let written = sqlx::query(
        "WITH updated AS (
             UPDATE workflow_instances SET state = $1, version = $2, updated_at = $3, state_entered_at = $3, \
             due_at = NULL, votes = '[]'::jsonb WHERE id = $4 AND org_id = $5 AND version = $6 RETURNING id
         ), history AS (
             INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, \
             actor, at, input, request_id, idempotency_key)
             SELECT $4, $7, $5, $8, $9, $10, $11, $12, $13, $14, $15, $16 FROM updated
         ), event AS (
             INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event)
             SELECT $17, $5, $18, $19, $20, $21, $22 FROM updated
         )
         INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at)
         SELECT $5, $23, $24, $25, $26, $27 FROM updated",
    )
    .bind(next.state.as_str())
    .bind(i64::try_from(next.version).unwrap())
    .bind(next.updated_at)
    .bind(next.id.as_uuid())
    .bind(next.org.as_uuid())
    .bind(i64::try_from(record.expected_version).unwrap())
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
    .bind(record.event.id.as_uuid())
    .bind(record.event.action.as_str())
    .bind(record.event.actor.id.as_str())
    .bind(record.event.occurred_at)
    .bind(record.event.target_ids().collect::<Vec<_>>())
    .bind(serde_json::to_string(&record.event).unwrap())
    .bind(key.principal.to_string())
    .bind(key.key.as_str())
    .bind(key.fingerprint.as_slice())
    .bind(Json(&key.response))
    .bind(key.created_at)
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(
        written.rows_affected(),
        1,
        "the version check passes and every row is written"
    );
}

async fn raw_sqlite(pool: &SqlitePool, record: &TransitionRecord) {
    let next = &record.next;
    let key = record.idempotency.as_ref().unwrap();
    let id = next.id.as_uuid().as_bytes().to_vec();
    let org = next.org.as_uuid().as_bytes().to_vec();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let updated = sqlx::query(
        "UPDATE workflow_instances SET state = ?1, version = ?2, updated_at = ?3, state_entered_at = ?3, \
         due_at = NULL, votes = '[]' WHERE id = ?4 AND org_id = ?5 AND version = ?6",
    )
    .bind(next.state.as_str())
    .bind(i64::try_from(next.version).unwrap())
    .bind(portal_core::time::to_unix_micros(next.updated_at))
    .bind(&id)
    .bind(&org)
    .bind(i64::try_from(record.expected_version).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(updated.rows_affected(), 1, "the version check passes");
    let entry = &record.history;
    sqlx::query(
        "INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor, \
         at, input, request_id, idempotency_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .bind(&id)
    .bind(i64::try_from(entry.version).unwrap())
    .bind(&org)
    .bind(serde_json::to_string(&entry.kind).unwrap())
    .bind(entry.transition.as_str())
    .bind(entry.from.as_str())
    .bind(entry.to.as_str())
    .bind(entry.actor.to_string())
    .bind(portal_core::time::to_unix_micros(entry.at))
    .bind(serde_json::to_string(&entry.input).unwrap())
    .bind(entry.request_id.as_uuid().as_bytes().to_vec())
    .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(record.event.id.as_uuid().as_bytes().to_vec())
    .bind(&org)
    .bind(record.event.action.as_str())
    .bind(record.event.actor.id.as_str())
    .bind(portal_core::time::to_unix_micros(record.event.occurred_at))
    .bind(serde_json::to_string(&record.event.target_ids().collect::<Vec<_>>()).unwrap())
    .bind(serde_json::to_string(&record.event).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&org)
    .bind(key.principal.to_string())
    .bind(key.key.as_str())
    .bind(key.fingerprint.as_slice())
    .bind(serde_json::to_string(&key.response).unwrap())
    .bind(portal_core::time::to_unix_micros(key.created_at))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn raw_postgres(pool: &PgPool, record: &TransitionRecord) {
    use sqlx::types::Json;

    let next = &record.next;
    let key = record.idempotency.as_ref().unwrap();
    let mut tx = pool.begin().await.unwrap();
    let updated = sqlx::query(
        "UPDATE workflow_instances SET state = $1, version = $2, updated_at = $3, state_entered_at = $3, \
         due_at = NULL, votes = '[]'::jsonb WHERE id = $4 AND org_id = $5 AND version = $6",
    )
    .bind(next.state.as_str())
    .bind(i64::try_from(next.version).unwrap())
    .bind(next.updated_at)
    .bind(next.id.as_uuid())
    .bind(next.org.as_uuid())
    .bind(i64::try_from(record.expected_version).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(updated.rows_affected(), 1, "the version check passes");
    let entry = &record.history;
    sqlx::query(
        "INSERT INTO workflow_history (instance_id, version, org_id, kind, transition, from_state, to_state, actor, \
         at, input, request_id, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(next.id.as_uuid())
    .bind(i64::try_from(entry.version).unwrap())
    .bind(next.org.as_uuid())
    .bind(Json(&entry.kind))
    .bind(entry.transition.as_str())
    .bind(entry.from.as_str())
    .bind(entry.to.as_str())
    .bind(entry.actor.to_string())
    .bind(entry.at)
    .bind(Json(&entry.input))
    .bind(entry.request_id.as_uuid())
    .bind(entry.idempotency_key.as_ref().map(IdempotencyKey::as_str))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, action, actor_id, occurred_at, targets, event) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.event.id.as_uuid())
    .bind(next.org.as_uuid())
    .bind(record.event.action.as_str())
    .bind(record.event.actor.id.as_str())
    .bind(record.event.occurred_at)
    .bind(record.event.target_ids().collect::<Vec<_>>())
    .bind(serde_json::to_string(&record.event).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO workflow_idempotency (org_id, principal, idempotency_key, fingerprint, response, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(next.org.as_uuid())
    .bind(key.principal.to_string())
    .bind(key.key.as_str())
    .bind(key.fingerprint.as_slice())
    .bind(Json(&key.response))
    .bind(key.created_at)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

fn memory_target(rt: &tokio::runtime::Runtime) -> Target {
    rt.block_on(build_target(
        "memory",
        Arc::new(InMemoryTenancyStore::new()),
        Arc::new(InMemoryWorkflowStore::new()),
        None,
        4000,
    ))
}

/// A SQLite file opened as hosts open it (`sqlite::connect`: WAL, synchronous NORMAL).
fn sqlite_target(rt: &tokio::runtime::Runtime, path: &std::path::Path) -> Target {
    rt.block_on(async {
        let pool = sqlite::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlite::migrate(&pool).await.unwrap();
        build_target(
            "SQLite (file, WAL)",
            Arc::new(SqliteTenancyStore::new(pool.clone())),
            Arc::new(SqliteWorkflowStore::new(pool.clone())),
            Some(Raw::Sqlite(pool)),
            600,
        )
        .await
    })
}

fn postgres_url() -> Option<String> {
    ["PORTAL_BENCH_POSTGRES_URL", "PORTAL_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.is_empty()))
}

/// A fresh schema on the Postgres server, named like the test harness's schemas (so its
/// clean-up removes one a crashed run left), and a target on it.
fn postgres_target(rt: &tokio::runtime::Runtime, url: &str) -> (Target, String) {
    rt.block_on(async {
        let admin = PgConnectOptions::from_str(url).unwrap();
        let schema = format!("portal_test_{:032x}", uuid::Uuid::now_v7().as_u128());
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        // The name is a fixed prefix and hex digits, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let mut options = admin.options([("search_path", schema.as_str())]);
        if let Ok(setting) = std::env::var("PORTAL_BENCH_PG_SYNCHRONOUS_COMMIT") {
            println!("Postgres: synchronous_commit = {setting} on the bench's connections");
            options = options.options([("synchronous_commit", setting.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        postgres::migrate(&pool).await.unwrap();
        let target = build_target(
            "Postgres",
            Arc::new(PgTenancyStore::new(pool.clone())),
            Arc::new(PgWorkflowStore::new(pool.clone())),
            Some(Raw::Postgres(pool)),
            300,
        )
        .await;
        (target, schema)
    })
}

fn drop_schema(rt: &tokio::runtime::Runtime, url: &str, schema: &str) {
    rt.block_on(async {
        let mut conn = PgConnection::connect_with(&PgConnectOptions::from_str(url).unwrap())
            .await
            .unwrap();
        let statement = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// The custom report
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Service,
    Store,
    Raw,
    Batched,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Service => "service `transition`",
            Path::Store => "store `apply` alone",
            Path::Raw => "hand-written sqlx transaction",
            Path::Batched => "hand-written, fewest calls",
        }
    }

    async fn step(self, target: &Target, case: &mut Case) {
        match self {
            Path::Service => target.service_step(case).await,
            Path::Store => target.store_step(case).await,
            Path::Raw => target.raw_step(case).await,
            Path::Batched => target.batched_step(case).await,
        }
    }
}

struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(rt: &tokio::runtime::Runtime, target: &Target) {
    let paths: Vec<Path> = if target.raw.is_some() {
        vec![Path::Service, Path::Store, Path::Raw, Path::Batched]
    } else {
        vec![Path::Service, Path::Store]
    };
    let results: Vec<(Path, Measured)> = rt.block_on(async {
        let mut cases = Vec::new();
        for _ in &paths {
            cases.push(target.new_case().await);
        }
        let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
        let mut busy = vec![Duration::ZERO; paths.len()];
        // A warm-up round, not recorded.
        for (path, case) in paths.iter().zip(cases.iter_mut()) {
            for _ in 0..target.calls_per_round / 5 {
                path.step(target, case).await;
            }
        }
        for _ in 0..ROUNDS {
            for (i, path) in paths.iter().enumerate() {
                let round = Instant::now();
                for _ in 0..target.calls_per_round {
                    let start = Instant::now();
                    path.step(target, &mut cases[i]).await;
                    latencies[i].push(start.elapsed());
                }
                busy[i] += round.elapsed();
            }
        }
        paths
            .iter()
            .zip(latencies)
            .zip(busy)
            .map(|((path, mut lat), busy)| {
                lat.sort();
                let per_second = lat.len() as f64 / busy.as_secs_f64();
                let measured = Measured {
                    per_second,
                    p50: percentile(&lat, 0.5),
                    p99: percentile(&lat, 0.99),
                };
                (*path, measured)
            })
            .collect()
    });
    let limit = results
        .iter()
        .find(|(path, _)| *path == Path::Raw)
        .map(|(_, m)| m.per_second);
    let strict = results
        .iter()
        .find(|(path, _)| *path == Path::Batched)
        .map(|(_, m)| m.per_second);
    println!("\n### {}\n", target.name);
    println!(
        "{} transitions per path ({} rounds of {}), one client\n",
        ROUNDS * target.calls_per_round,
        ROUNDS,
        target.calls_per_round
    );
    println!("| path | transitions/s | p50 | p99 | share of hand-written | share of fewest calls |");
    println!("|---|---:|---:|---:|---:|---:|");
    let share = |anchor: Option<f64>, m: &Measured| {
        anchor.map_or_else(|| "n/a".to_owned(), |a| format!("{:.0}%", 100.0 * m.per_second / a))
    };
    for (path, m) in &results {
        println!(
            "| {} | {:.0} | {:.1} µs | {:.1} µs | {} | {} |",
            path.label(),
            m.per_second,
            m.p50.as_secs_f64() * 1e6,
            m.p99.as_secs_f64() * 1e6,
            share(limit, m),
            share(strict, m)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Criterion
// ---------------------------------------------------------------------------------------

fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut step: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            step().await;
        }
        start.elapsed()
    })
}

fn criterion_group(c: &mut Criterion, rt: &tokio::runtime::Runtime, target: &Target) {
    let mut group = c.benchmark_group(format!("workflow/{}", target.name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let paths: &[Path] = if target.raw.is_some() {
        &[Path::Service, Path::Store, Path::Raw, Path::Batched]
    } else {
        &[Path::Service, Path::Store]
    };
    for path in paths {
        // The case moves out of its cell for each step, so no borrow is held across an
        // await.
        let case = RefCell::new(Some(rt.block_on(target.new_case())));
        let (case, path) = (&case, *path);
        group.bench_function(path.label(), |b| {
            b.iter_custom(|iters| {
                timed(rt, iters, || async move {
                    let mut current = case.borrow_mut().take().unwrap();
                    path.step(target, &mut current).await;
                    black_box(current.instance.version);
                    *case.borrow_mut() = Some(current);
                })
            });
        });
    }
    group.finish();
}

fn main() {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("portal-bench-workflow-{:032x}", uuid::Uuid::now_v7().as_u128()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut targets = vec![memory_target(&rt), sqlite_target(&rt, &dir.join("bench.db"))];
    let url = postgres_url();
    let mut schema = None;
    match &url {
        Some(url) => {
            let (target, name) = postgres_target(&rt, url);
            targets.push(target);
            schema = Some(name);
        }
        None => {
            println!("skipped: PORTAL_BENCH_POSTGRES_URL / PORTAL_TEST_POSTGRES_URL not set, Postgres not measured")
        }
    }

    println!("## Workflows: custom measurements");
    for target in &targets {
        report(&rt, target);
    }

    let mut criterion = Criterion::default().configure_from_args();
    for target in &targets {
        criterion_group(&mut criterion, &rt, target);
    }
    criterion.final_summary();

    if let (Some(url), Some(schema)) = (&url, &schema) {
        drop_schema(&rt, url, schema);
    }
    drop(targets);
    let _ = std::fs::remove_dir_all(&dir);
}
