//! Diagnostics: `explain` and a timeline page at 1,000,000 stored events on SQLite and
//! Postgres.
//!
//! Run with `cargo bench -p portal-benches --bench journal -- --noplot`. Postgres runs
//! when `PORTAL_BENCH_POSTGRES_URL` (or `PORTAL_TEST_POSTGRES_URL`) is set; otherwise it
//! is skipped, saying so.
//!
//! The journals are loaded once with 1,000,000 events (200,000 requests of five events
//! each, in 100 orgs, over about 28 hours; one request in ten fails: a denial, a wrong
//! state, a storage fault) through `Journal::append` in batches of 5,000 (multi-row
//! inserts), and kept for the next run: the SQLite file in the temp directory
//! (`portal-bench-journal.db`) and the Postgres schema `portal_bench_journal`. A run
//! reuses them when they hold the full million.
//!
//! Measured through `TriageService`, as the console (a service principal) or with the
//! authorization and recording it does on every read:
//!
//! - **explain**: `explain` of a failing request in the middle of the data (`by_request`
//!   on the request index, then the analysis);
//! - **timeline page**: a page of 50 events of one org (10,000 events in the window), read
//!   after a cursor in the middle of the window (`(org_id, at, id)` index);
//!
//! What recording costs a request is measured by the `recording` benchmark.
//!
//! The program prints its own percentiles (Markdown) first, then runs criterion.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use portal_adapters::memory::InMemoryTenancyStore;
use portal_adapters::postgres::{self, PgJournal};
use portal_adapters::sqlite::{self, SqliteJournal};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::{Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind, Journal, Outcome};
use portal_core::gate::Gate;
use portal_core::ids::{EventId, OrgId, RequestId, UserId};
use portal_core::store::Cursor;
use portal_core::tenancy::{
    DisplayName, Email, Membership, Metadata, OrgName, Organization, RoleSet, Slug, TenancyStore, User,
};
use portal_core::triage::{Scope, Timeline, TriageConfig, TriageService};
use portal_core::{ErrorCode, PageRequest, RequestContext};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const EVENTS: u64 = 1_000_000;
const PER_REQUEST: u64 = 5;
const ORGS: u64 = 100;
const USERS: u64 = 2_000;
const BATCH: usize = 5_000;
/// Calls per measured operation in the custom report.
const CALLS: usize = 400;
const SCHEMA: &str = "portal_bench_journal";

fn base() -> OffsetDateTime {
    datetime!(2030-01-01 00:00 UTC)
}

/// Deterministic ids, so a reused database and a new run agree on them.
fn org(i: u64) -> OrgId {
    OrgId::from_uuid(Uuid::from_u128((0x0b << 120) | u128::from(i)))
}

fn user(i: u64) -> UserId {
    UserId::from_uuid(Uuid::from_u128((0x0c << 120) | u128::from(i)))
}

fn request(r: u64) -> RequestId {
    RequestId::from_uuid(Uuid::from_u128((0x0d << 120) | u128::from(r)))
}

fn at_of(n: u64) -> OffsetDateTime {
    base() + time::Duration::milliseconds(i64::try_from(n).unwrap() * 100)
}

/// Event `n` of the data set: request `n / 5`, step `n % 5`.
fn event(n: u64) -> DiagnosticEvent {
    let r = n / PER_REQUEST;
    let step = n % PER_REQUEST;
    let at = at_of(n);
    let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap();
    let id = EventId::from_uuid(
        uuid::Builder::from_unix_timestamp_millis(millis, &u128::from(n).to_be_bytes()[6..16].try_into().unwrap())
            .into_uuid(),
    );
    let o = org(r % ORGS);
    let actor = Principal::User(user(r % USERS));
    let failing = r % 10 == 3;
    let (kind, name, outcome, code, schema, detail) = match (step, failing, r % 30) {
        (0, _, _) => (
            EventKind::Request,
            "http.request",
            Outcome::Succeeded,
            None,
            "host.span.v1",
            json!({ "span": "http.request", "route": "/cases/{id}" }),
        ),
        (1, true, 3) => (
            EventKind::PermissionDecision,
            "access.check",
            Outcome::Denied,
            Some(ErrorCode::AccessDenied),
            "access.decision.v1",
            json!({ "domain": { "kind": "org", "org": o }, "object": "cases/wf_x", "action": "write",
                    "decision": { "decision": "denied", "reason": { "kind": "no_grant" }, "roles": ["viewer"], "would_grant": ["admin", "member", "owner"] } }),
        ),
        (1, _, _) => (
            EventKind::PermissionDecision,
            "access.check",
            Outcome::Succeeded,
            None,
            "access.decision.v1",
            json!({ "domain": { "kind": "org", "org": o }, "object": "cases/wf_x", "action": "write",
                    "decision": { "decision": "allowed", "rule": { "subject": "member" }, "via": ["member"] } }),
        ),
        (2, true, 13) => (
            EventKind::StorageFault,
            "workflow.transition",
            Outcome::Failed,
            Some(ErrorCode::StorageUnavailable),
            "storage.fault.v1",
            json!({ "operation": "workflow.transition", "error": "storage is temporarily unavailable: postgres is unavailable: pool timed out" }),
        ),
        (3, true, code) => {
            let code = match code {
                3 => ErrorCode::AccessDenied,
                13 => ErrorCode::StorageUnavailable,
                _ => ErrorCode::TransitionNotAllowed,
            };
            (
                EventKind::WorkflowTransition,
                "workflow.transition",
                Outcome::of_code(code),
                Some(code),
                "error.v1",
                json!({ "message": "refused", "details": { "state": "open", "instance": "wf_x", "available": ["triage"] } }),
            )
        }
        (3, false, _) => (
            EventKind::WorkflowTransition,
            "workflow.transition",
            Outcome::Succeeded,
            None,
            "workflow.transition.v1",
            json!({ "id": "wf_x", "transition": "triage", "state": "triaged", "version": 2 }),
        ),
        _ => (
            EventKind::Host,
            "app.cases",
            Outcome::Succeeded,
            None,
            "host.event.v1",
            json!({ "level": "INFO", "target": "app.cases", "message": "case updated", "rows": 1 }),
        ),
    };
    DiagnosticEvent {
        id,
        at,
        request_id: request(r),
        client_request_id: None,
        trace_id: None,
        org: Some(o),
        actor: Some(actor),
        real_actor: None,
        kind,
        name: name.to_owned().into(),
        outcome,
        code,
        duration: Some(Duration::from_micros(150 + n % 1000)),
        schema: schema.to_owned().into(),
        detail: detail.into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Loads the million events unless the journal already holds them.
async fn load(name: &str, journal: &dyn Journal, count: impl std::future::Future<Output = i64>) {
    let held = count.await;
    if held == i64::try_from(EVENTS).unwrap() {
        println!("{name}: reusing {held} stored events");
        return;
    }
    assert_eq!(held, 0, "{name} holds {held} events: remove it to reload");
    let started = Instant::now();
    let mut n = 0;
    while n < EVENTS {
        let mut batch: Vec<DiagnosticEvent> = (n..(n + BATCH as u64).min(EVENTS)).map(event).collect();
        journal.append(&mut batch).await.unwrap();
        n += BATCH as u64;
    }
    println!(
        "{name}: loaded {EVENTS} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A sink that keeps nothing: the triage service's own recording is not measured here.
struct Discard;

impl DiagnosticSink for Discard {
    fn record(&self, _event: DiagnosticEvent) {}
}

/// The triage service over `journal`, with the target org known to the tenancy store.
async fn triage(journal: Arc<dyn Journal>) -> TriageService {
    let tenancy = Arc::new(InMemoryTenancyStore::new());
    let target = org(7);
    let organization = Organization {
        id: target,
        slug: Slug::new("bench").unwrap(),
        name: OrgName::new("Bench").unwrap(),
        metadata: Metadata::default(),
        created_at: base(),
    };
    let owner = Membership {
        org: target,
        user: user(7),
        roles: RoleSet::parse(["owner"]).unwrap(),
        created_at: base(),
        updated_at: base(),
    };
    let member = User {
        id: user(7),
        email: Email::new("bench@example.com").unwrap(),
        display_name: DisplayName::new("Bench").unwrap(),
        created_at: base(),
    };
    tenancy.create_user(&member).await.unwrap();
    tenancy.create_org(&organization, &owner).await.unwrap();
    let gate = Gate::new(
        Arc::new(RoleTableAuthorizer::default()),
        Arc::new(Discard),
        tenancy.clone(),
    );
    TriageService::new(journal, tenancy, gate, TriageConfig::default())
}

fn console_ctx() -> RequestContext {
    let clock = portal_core::time::SystemClock;
    RequestContext::builder(Principal::Service(ServiceName::new("vendor-console").unwrap()))
        .build(&clock, &portal_core::ids::RandomIds::default())
}

/// A failing request (≡ 3 mod 10: a denial) in the middle of the data.
fn target_request() -> RequestId {
    request(100_003)
}

/// The org-7 timeline query and a cursor in the middle of its window.
fn timeline_page(triage_org: OrgId) -> (Timeline, PageRequest) {
    let filter = Timeline {
        user: None,
        from: base(),
        until: at_of(EVENTS),
        kinds: Vec::new(),
    };
    // Event 500_035 is org 7's (request 100_007 ≡ 7 mod 100).
    let middle = event(500_035);
    assert_eq!(middle.org, Some(triage_org));
    let cursor = Cursor::new(portal_core::diagnostics::EventPosition::of(&middle).to_cursor());
    (filter, PageRequest::after(cursor, 50))
}

struct Backend {
    name: &'static str,
    triage: TriageService,
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3;
    (at(0.5), at(0.95), at(0.99))
}

async fn measure_backend(b: &Backend) {
    let ctx = console_ctx();
    let target = target_request();
    let x = b.triage.explain(&ctx, Scope::Platform, target).await.unwrap();
    assert_eq!(x.events, 5, "{x:?}");
    assert!(x.root_cause.is_some(), "{x:?}");
    let (filter, page) = timeline_page(org(7));
    let got = b
        .triage
        .timeline(&ctx, Scope::Org(org(7)), &filter, &page)
        .await
        .unwrap();
    assert_eq!(got.items.len(), 50);
    let mut explain = Vec::with_capacity(CALLS);
    let mut pages = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        // Different failing requests, so no one row is cached hotter than the rest.
        let r = request(100_003 + 10 * i as u64);
        let started = Instant::now();
        black_box(b.triage.explain(&ctx, Scope::Platform, r).await.unwrap());
        explain.push(started.elapsed());
        let started = Instant::now();
        black_box(
            b.triage
                .timeline(&ctx, Scope::Org(org(7)), &filter, &page)
                .await
                .unwrap(),
        );
        pages.push(started.elapsed());
    }
    for (what, samples) in [("explain", explain), ("timeline page (50 of one org)", pages)] {
        let (p50, p95, p99) = percentiles(samples);
        println!("| {} | {what} | {p50:.2} | {p95:.2} | {p99:.2} |", b.name);
    }
}

async fn sqlite_backend() -> Backend {
    let path = std::env::temp_dir().join("portal-bench-journal.db");
    let pool = sqlite::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlite::migrate(&pool).await.unwrap();
    let journal = Arc::new(SqliteJournal::new(pool.clone()));
    let count = async {
        sqlx::query_scalar::<_, i64>("SELECT coalesce(sum(events), 0) FROM diagnostic_event_rows")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    load("sqlite", &*journal, count).await;
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    Backend {
        name: "sqlite (file, WAL)",
        triage: triage(journal).await,
    }
}

async fn postgres_backend() -> Option<Backend> {
    let url = std::env::var("PORTAL_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("PORTAL_TEST_POSTGRES_URL"))
        .ok()?;
    let admin = PgConnectOptions::from_str(&url).unwrap();
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(admin.options([("search_path", SCHEMA)]))
        .await
        .unwrap();
    postgres::migrate(&pool).await.unwrap();
    let journal = Arc::new(PgJournal::new(pool.clone()));
    let count = async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM diagnostic_events")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    load("postgres", &*journal, count).await;
    sqlx::query("ANALYZE diagnostic_events").execute(&pool).await.unwrap();
    Some(Backend {
        name: "postgres",
        triage: triage(journal).await,
    })
}

fn main() {
    let rt = runtime();
    let mut backends = vec![rt.block_on(sqlite_backend())];
    match rt.block_on(postgres_backend()) {
        Some(pg) => backends.push(pg),
        None => println!("postgres: skipped, PORTAL_BENCH_POSTGRES_URL and PORTAL_TEST_POSTGRES_URL are unset"),
    }
    println!("\n| backend | operation | p50 ms | p95 ms | p99 ms |\n|---|---|---:|---:|---:|");
    for b in &backends {
        rt.block_on(measure_backend(b));
    }

    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for b in &backends {
        let ctx = console_ctx();
        let (filter, page) = timeline_page(org(7));
        c.bench_function(&format!("journal/{}/explain", b.name), |bench| {
            bench
                .to_async(&rt)
                .iter(|| b.triage.explain(&ctx, Scope::Platform, target_request()))
        });
        c.bench_function(&format!("journal/{}/timeline_page", b.name), |bench| {
            bench
                .to_async(&rt)
                .iter(|| b.triage.timeline(&ctx, Scope::Org(org(7)), &filter, &page))
        });
    }
    c.final_summary();
}
