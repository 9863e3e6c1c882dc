//! HTTP on SQLite: the axum reference server over real TCP on loopback, beside a bare
//! axum handler running the same sqlx read on the same pool (the limit), in one run.
//!
//! Run with `cargo bench -p portal-benches --bench http -- --noplot`.
//!
//! Three paths, each driven by `CONNECTIONS` keep-alive HTTP/1.1 connections (hyper's
//! client) sending one request after another:
//!
//! - **authorized read**: `GET /v1/orgs/{org}/workflows/{id}` through
//!   `example_axum_portal::router` with a bearer session token: the edge (request id,
//!   span), authentication (session lookup), tenancy and permission checks, the instance
//!   read, the caller's available transitions, JSON and an `ETag`.
//! - **bare read**: `GET /bare/{org}/{id}` on a router with one handler and no layers,
//!   with the same bearer token: parse the two ids, hash the token, run the joined
//!   session + membership read and the instance read as the SQLite stores do, on the
//!   portal's own pool, and answer the instance's columns as JSON. No checks.
//! - **transition**: `POST …/workflows/{id}/transitions/triage` with `If-Match: "1"` and a
//!   fresh `Idempotency-Key`, on cases created (untimed) before each round.
//!
//! With `HTTP_JOURNAL=shared` the diagnostics journal is kept in the portal's own SQLite
//! file, with `HTTP_JOURNAL=memory` in memory (`JournalPlacement::Memory`: no encoding,
//! no SQLite; the ceiling the journal leaves the authorized read); by default it is in
//! its own file beside the portal's, as the reference server keeps it
//! (`JournalPlacement::Beside`).
//!
//! With `HTTP_JOURNAL_LINGER_MS=N` the journal's writer looks for events every N ms
//! while they come in (`BufferConfig::linger`, 10 ms by default): longer, bigger batches.
//!
//! After the table the program prints how the SQLite write transactions took their
//! turns during the transitions (`sqlite::write_turns`, per pool): how long each waited
//! for its turn, held it, and spent in `COMMIT`, to tell a slow writer from a queue.
//!
//! With `HTTP_BARE_READS=N` the bare handler runs its `SELECT` N times per request (the
//! answer comes from the last), to show what each further store call costs on this pool.
//!
//! With `HTTP_PROFILE=bare`, `authorized` or `transition` (and `HTTP_PROFILE_REQUESTS=N`,
//! 2,000 by default) the program only sends N requests of that path on one connection,
//! after the set-up and a warm-up of 50, and exits. With `HTTP_PROFILE_PAUSE_MS` it prints
//! `HTTP_PROFILE ready` after the warm-up and waits that long: under `valgrind
//! --tool=callgrind --instr-atstart=no`, `callgrind_control --instr=on <pid>` then counts
//! the N requests alone, in the whole process (client, server, SQLite and the journal
//! writer). `docs/benchmarks.md` has the commands.
//!
//! With `HTTP_LOAD=bare` or `authorized` (and `HTTP_LOAD_REQUESTS=N`, 100,000 by default)
//! it drives N reads of that path over the `CONNECTIONS` connections, prints the requests
//! per second and exits: a steady load for `perf record -g`.
//!
//! The program prints its own measurements first (requests per second over interleaved
//! rounds, p50 and p99 of each request's latency as the client saw it, and the ratio
//! authorized ÷ bare), then runs criterion on single requests with small samples.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use criterion::Criterion;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portal_adapters::sqlite::{self, WriteTurns};
use portal_core::ids::{OrgId, WorkflowId};
use portal_core::tenancy::TokenHash;
use portal_http::seed::{DEMO_PASSWORD, seed_demo};
use portal_http::wiring::Database;
use portal_http::{JournalPlacement, PortalConfig, connect};
use serde_json::{Value, json};
use sqlx::{Row as _, SqlitePool};

const CONNECTIONS: usize = 4;
const READS_PER_ROUND: usize = 2_000;
const TRANSITIONS_PER_ROUND: usize = 400;
const ROUNDS: usize = 3;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The bare handler: the store reads an authorized read needs, as SQL on the same pool,
/// with no layers and no checks beyond finding the rows: the bearer token's SHA-256, the
/// joined session + membership + roles + MFA standing read of `SqliteIdentityStore::
/// find_session_with_membership`, then the instance read of `SqliteWorkflowStore::get`
/// (`reads` times, `HTTP_BARE_READS`, 1 by default), answered as JSON of the instance's
/// columns.
async fn bare_read(
    State((pool, reads)): State<(SqlitePool, usize)>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, StatusCode> {
    let org: OrgId = org.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let id: WorkflowId = id.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let hash = TokenHash::of(token);
    let session = sqlx::query(
        "SELECT s.id, s.user_id, s.token_hash, s.active_org, s.created_at, s.last_seen_at, \
         s.absolute_expires_at, s.revoked_at, m.created_at AS member_created_at, \
         m.updated_at AS member_updated_at, r.role, \
         (EXISTS (SELECT 1 FROM org_mfa_policies p WHERE p.org_id = s.active_org AND p.required = 1) \
          AND NOT EXISTS (SELECT 1 FROM totp_factors f WHERE f.user_id = s.user_id AND f.confirmed_at IS NOT NULL) \
          AND NOT EXISTS (SELECT 1 FROM passkeys k WHERE k.user_id = s.user_id)) \
          AS mfa_unmet \
         FROM sessions s \
         LEFT JOIN memberships m ON m.org_id = s.active_org AND m.user_id = s.user_id \
         LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id \
         WHERE s.token_hash = ?1 ORDER BY r.role",
    )
    .bind(hash.0.to_vec())
    .fetch_all(&pool)
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if session.is_empty() {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut found = None;
    for _ in 0..reads.max(1) {
        found = sqlx::query(
            "SELECT id, org_id, definition, definition_version, state, version, assignee, payload, created_by, \
             created_at, updated_at, state_entered_at, due_at, votes FROM workflow_instances WHERE id = ?1 AND org_id = ?2",
        )
        .bind(id.as_uuid().as_bytes().to_vec())
        .bind(org.as_uuid().as_bytes().to_vec())
        .fetch_optional(&pool)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    }
    let row = found.ok_or(StatusCode::NOT_FOUND)?;
    let payload: String = row.try_get("payload").map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let int = |name: &str| {
        row.try_get::<i64, _>(name)
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    };
    Ok(Json(json!({
        "id": id.to_string(),
        "org": org.to_string(),
        "definition": row.try_get::<String, _>("definition").map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?,
        "definition_version": int("definition_version")?,
        "state": row.try_get::<String, _>("state").map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?,
        "version": int("version")?,
        "payload": serde_json::from_str::<Value>(&payload).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?,
        "created_at": int("created_at")?,
        "updated_at": int("updated_at")?,
        "state_entered_at": int("state_entered_at")?,
        "available_transitions": [],
    })))
}

/// `HTTP_BARE_READS`: how many times the bare handler runs its `SELECT` (1 by default).
fn bare_reads() -> usize {
    std::env::var("HTTP_BARE_READS")
        .ok()
        .map(|v| v.parse().expect("HTTP_BARE_READS is a number"))
        .unwrap_or(1)
}

/// `HTTP_JOURNAL`: where the journal is kept (`beside`, the default; `shared`; `memory`).
fn journal_placement() -> JournalPlacement {
    match std::env::var("HTTP_JOURNAL").as_deref() {
        Err(_) | Ok("beside") => JournalPlacement::Beside,
        Ok("shared") => JournalPlacement::Shared,
        Ok("memory") => JournalPlacement::Memory,
        Ok(other) => panic!("HTTP_JOURNAL is beside, shared or memory, not {other}"),
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    addr
}

struct Setup {
    client: HttpClient,
    portal: SocketAddr,
    bare: SocketAddr,
    token: String,
    org: String,
    case: String,
    /// The portal's pool, and the journal's when it has its own.
    pool: SqlitePool,
    journal_pool: Option<SqlitePool>,
}

impl Setup {
    /// The write turns of the portal's pool and of the journal's own pool, so far.
    fn turns(&self) -> (WriteTurns, Option<WriteTurns>) {
        (
            sqlite::write_turns(&self.pool),
            self.journal_pool.as_ref().map(sqlite::write_turns),
        )
    }
}

/// Write turns counted over several stretches of a run, per pool.
#[derive(Default)]
struct TurnTally {
    portal: WriteTurns,
    journal: Option<WriteTurns>,
}

impl TurnTally {
    /// Adds what was counted between `before` and `after` ([`Setup::turns`]).
    fn add(&mut self, before: (WriteTurns, Option<WriteTurns>), after: (WriteTurns, Option<WriteTurns>)) {
        add_turns(&mut self.portal, &after.0.since(&before.0));
        if let (Some(b), Some(a)) = (before.1, after.1) {
            add_turns(self.journal.get_or_insert_with(WriteTurns::default), &a.since(&b));
        }
    }

    fn print(&self, stretch: &str) {
        println!(
            "\nwrite turns during the {stretch} (count per bucket, ms: <1, 1-2, 2-4, 4-8, 8-16, 16-32, ≥32; longest over the run):\n"
        );
        println!("| pool | what | count | buckets | longest |");
        println!("|---|---|---:|---|---:|");
        for (pool, turns) in [("portal", Some(&self.portal)), ("journal", self.journal.as_ref())] {
            let Some(turns) = turns else { continue };
            for (what, d) in [
                ("wait for the turn", &turns.wait),
                ("turn held", &turns.hold),
                ("COMMIT", &turns.commit),
            ] {
                println!(
                    "| {pool} | {what} | {} | {:?} | {:.1} ms |",
                    d.count(),
                    d.buckets,
                    d.max.as_secs_f64() * 1e3
                );
            }
        }
    }
}

fn add_turns(total: &mut WriteTurns, more: &WriteTurns) {
    for (t, m) in [
        (&mut total.wait, &more.wait),
        (&mut total.hold, &more.hold),
        (&mut total.commit, &more.commit),
    ] {
        for (a, b) in t.buckets.iter_mut().zip(m.buckets) {
            *a += b;
        }
        t.max = t.max.max(m.max);
    }
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let response = client.request(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

fn get_request(uri: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(Method::GET).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Full::default()).unwrap()
}

fn post_request(uri: &str, token: &str, body: &Value, extra: &[(&str, String)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    builder.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

async fn setup(db_path: &std::path::Path) -> Setup {
    let mut config = PortalConfig::new(format!("sqlite://{}", db_path.display()));
    config.http.cookie_secure = false;
    config.journal = journal_placement();
    if let Ok(ms) = std::env::var("HTTP_JOURNAL_LINGER_MS") {
        config.journal_buffer.linger = Duration::from_millis(ms.parse().expect("HTTP_JOURNAL_LINGER_MS is a number"));
    }
    let (api, background) = connect(&config).await.unwrap();
    let demo = seed_demo(&api).await.unwrap();
    let Database::Sqlite(pool) = background.database().clone() else {
        panic!("a SQLite URL gives a SQLite pool")
    };
    let journal_pool = match background.journal_database() {
        Some(Database::Sqlite(pool)) => Some(pool.clone()),
        _ => None,
    };
    let bare_router = Router::new()
        .route("/bare/{org}/{id}", get(bare_read))
        .with_state((pool.clone(), bare_reads()));
    let portal = serve(example_axum_portal::router(api)).await;
    let bare = serve(bare_router).await;
    // The background tasks (journal writer) live as long as the program.
    std::mem::forget(background);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS * 2)
        .build_http();
    let email = &demo.user("grace").unwrap().email;
    let (status, body) = send(
        &client,
        Request::builder()
            .method(Method::POST)
            .uri(format!("http://{portal}/v1/auth/sign-in"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({ "email": email, "password": DEMO_PASSWORD }).to_string(),
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = serde_json::from_slice::<Value>(&body).unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let org = demo.acme.to_string();
    let (status, body) = send(
        &client,
        get_request(
            &format!("http://{portal}/v1/orgs/{org}/workflows?state=triaged"),
            Some(&token),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let case = serde_json::from_slice::<Value>(&body).unwrap()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup {
        client,
        portal,
        bare,
        token,
        org,
        case,
        pool,
        journal_pool,
    }
}

/// Sends `requests` (made by `make(i)`) over `CONNECTIONS` concurrent callers; returns
/// the wall time and every request's latency.
async fn drive<F>(client: &HttpClient, count: usize, make: F) -> (Duration, Vec<Duration>)
where
    F: Fn(usize) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS {
        let client = client.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while i < count {
                let request = make(i);
                let sent = Instant::now();
                let (status, _) = send(&client, request).await;
                latencies.push(sent.elapsed());
                assert!(status.is_success(), "request {i}: {status}");
                i += CONNECTIONS;
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    (start.elapsed(), all)
}

#[derive(Default)]
struct Tally {
    requests: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, (wall, latencies): (Duration, Vec<Duration>)) {
        self.requests += latencies.len();
        self.wall += wall;
        self.latencies.extend(latencies);
    }

    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }
}

async fn create_cases(s: &Setup, count: usize) -> Vec<String> {
    let uri = format!("http://{}/v1/orgs/{}/workflows", s.portal, s.org);
    let token = s.token.clone();
    let body = json!({ "definition": "support_case", "payload": { "subject": "Bench" } });
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let (status, answer) = send(&s.client, post_request(&uri, &token, &body, &[])).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(
            serde_json::from_slice::<Value>(&answer).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

/// `HTTP_PROFILE`: sends `HTTP_PROFILE_REQUESTS` requests of one path, one after another,
/// after a warm-up of 50, and waits for the journal writer to go idle.
fn profile(runtime: &tokio::runtime::Runtime, s: &Setup, path: &str, read_uri: &str, bare_uri: &str) {
    let count: usize = std::env::var("HTTP_PROFILE_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("HTTP_PROFILE_REQUESTS is a number"))
        .unwrap_or(2_000);
    runtime.block_on(async {
        // As many cases whatever the count, so that runs with different counts differ
        // only by the requests measured.
        assert!(count <= 2_000, "HTTP_PROFILE_REQUESTS is at most 2000");
        let cases = if path == "transition" {
            create_cases(s, 2_050).await
        } else {
            Vec::new()
        };
        let make = |i: usize| match path {
            "bare" => get_request(bare_uri, Some(&s.token)),
            "authorized" => get_request(read_uri, Some(&s.token)),
            "transition" => post_request(
                &format!(
                    "http://{}/v1/orgs/{}/workflows/{}/transitions/triage",
                    s.portal, s.org, cases[i]
                ),
                &s.token,
                &json!({ "input": { "priority": "high" } }),
                &[
                    ("if-match", "\"1\"".to_owned()),
                    ("idempotency-key", format!("profile-{i}")),
                ],
            ),
            other => panic!("HTTP_PROFILE is bare, authorized or transition, not {other}"),
        };
        for i in 0..50 {
            let (status, _) = send(&s.client, make(2_000 + i)).await;
            assert!(status.is_success());
        }
        // The warm-up's events are written before the measured requests start; with
        // `HTTP_PROFILE_PAUSE_MS` the program says so and waits that long (for
        // `callgrind_control --instr=on`, with valgrind's `--instr-atstart=no`).
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(pause) = std::env::var("HTTP_PROFILE_PAUSE_MS").ok().and_then(|v| v.parse().ok()) {
            println!("HTTP_PROFILE ready");
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        for i in 0..count {
            let (status, _) = send(&s.client, make(i)).await;
            assert!(status.is_success(), "request {i}: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
}

/// `HTTP_LOAD`: drives `HTTP_LOAD_REQUESTS` (100,000 by default) reads of one path
/// (`bare` or `authorized`) over `CONNECTIONS` connections, as the measured rounds do,
/// after a warm-up of 2,000, prints the requests per second and exits: a steady load for
/// a sampling profiler (`perf record -g`), which sees the journal writer's batches at
/// their real size where callgrind's pace shrinks them.
fn load(runtime: &tokio::runtime::Runtime, s: &Setup, path: &str, read_uri: &str, bare_uri: &str) {
    let count: usize = std::env::var("HTTP_LOAD_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("HTTP_LOAD_REQUESTS is a number"))
        .unwrap_or(100_000);
    let uri = match path {
        "bare" => bare_uri.to_owned(),
        "authorized" => read_uri.to_owned(),
        other => panic!("HTTP_LOAD is bare or authorized, not {other}"),
    };
    runtime.block_on(async {
        let token = s.token.clone();
        let warm = uri.clone();
        let warm_token = token.clone();
        drive(&s.client, 2_000, move |_| get_request(&warm, Some(&warm_token))).await;
        let mut tally = Tally::default();
        tally.add(drive(&s.client, count, move |_| get_request(&uri, Some(&token))).await);
        println!(
            "HTTP_LOAD {path}: {count} requests, {:.0} requests/s",
            tally.per_second()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let db_path = std::env::temp_dir().join(format!("portal-bench-http-{}.db", std::process::id()));
    let s = runtime.block_on(setup(&db_path));
    let read_uri = format!("http://{}/v1/orgs/{}/workflows/{}", s.portal, s.org, s.case);
    let bare_uri = format!("http://{}/bare/{}/{}", s.bare, s.org, s.case);

    if let Ok(path) = std::env::var("HTTP_PROFILE") {
        profile(&runtime, &s, &path, &read_uri, &bare_uri);
        remove_databases(&db_path);
        return;
    }
    if let Ok(path) = std::env::var("HTTP_LOAD") {
        load(&runtime, &s, &path, &read_uri, &bare_uri);
        remove_databases(&db_path);
        return;
    }
    let (mut authorized, mut bare, mut transition) = (Tally::default(), Tally::default(), Tally::default());
    let (mut read_turns, mut transition_turns) = (TurnTally::default(), TurnTally::default());
    runtime.block_on(async {
        // Both reads find their rows (the bare one finds the session by the token's hash).
        for uri in [&read_uri, &bare_uri] {
            let (status, body) = send(&s.client, get_request(uri, Some(&s.token))).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body:?}");
        }
        // Warm-up: connections open, caches filled.
        for uri in [&read_uri, &bare_uri] {
            let (uri, token) = (uri.clone(), s.token.clone());
            drive(&s.client, 200, move |_| get_request(&uri, Some(&token))).await;
        }
        for round in 0..ROUNDS {
            let (uri, token) = (bare_uri.clone(), s.token.clone());
            bare.add(drive(&s.client, READS_PER_ROUND, move |_| get_request(&uri, Some(&token))).await);
            let (uri, token) = (read_uri.clone(), s.token.clone());
            let before = s.turns();
            authorized.add(drive(&s.client, READS_PER_ROUND, move |_| get_request(&uri, Some(&token))).await);
            read_turns.add(before, s.turns());
            let cases = Arc::new(create_cases(&s, TRANSITIONS_PER_ROUND).await);
            let (portal, org, token) = (s.portal, s.org.clone(), s.token.clone());
            let before = s.turns();
            transition.add(
                drive(&s.client, TRANSITIONS_PER_ROUND, move |i| {
                    post_request(
                        &format!(
                            "http://{portal}/v1/orgs/{org}/workflows/{}/transitions/triage",
                            cases[i]
                        ),
                        &token,
                        &json!({ "input": { "priority": "high" } }),
                        &[
                            ("if-match", "\"1\"".to_owned()),
                            ("idempotency-key", format!("bench-{round}-{i}")),
                        ],
                    )
                })
                .await,
            );
            transition_turns.add(before, s.turns());
        }
    });
    println!("\n## HTTP on SQLite ({CONNECTIONS} keep-alive connections, {ROUNDS} interleaved rounds)\n");
    if bare_reads() != 1 {
        println!(
            "(HTTP_BARE_READS={}: the bare handler runs its SELECT that many times)\n",
            bare_reads()
        );
    }
    println!("| path | requests/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (name, tally) in [
        ("bare axum handler, same SQL (the limit)", &mut bare),
        ("authorized read (GET workflow, bearer session)", &mut authorized),
        ("transition (If-Match + Idempotency-Key)", &mut transition),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.0} µs |",
            tally.per_second(),
            tally.percentile(0.50).as_secs_f64() * 1e6,
            tally.percentile(0.99).as_secs_f64() * 1e6
        );
    }
    // Where the transitions' latencies fall: a writer that met SQLite's busy handler
    // waited in its sleeps of 1, 2, 5, 10, 15 ms.
    let bounds = [1, 2, 4, 8, 16, 32, u64::MAX];
    let mut counts = [0usize; 7];
    for latency in &transition.latencies {
        let ms = latency.as_secs_f64() * 1e3;
        let bucket = bounds.iter().position(|&b| ms < b as f64).unwrap_or(bounds.len() - 1);
        counts[bucket] += 1;
    }
    println!(
        "\ntransition latencies (ms): <1: {}, 1-2: {}, 2-4: {}, 4-8: {}, 8-16: {}, 16-32: {}, ≥32: {}",
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]
    );
    println!("\njournal: {:?} (HTTP_JOURNAL)", journal_placement());
    read_turns.print("authorized reads");
    transition_turns.print("transitions");
    let ratio = authorized.per_second() / bare.per_second();
    println!(
        "\nauthorized read ÷ bare handler: {:.0}% (target ≥ 80%: {})\ntransition p99: {:.1} ms (target ≤ 10 ms)\n",
        ratio * 100.0,
        if ratio >= 0.80 { "met" } else { "not met" },
        transition.percentile(0.99).as_secs_f64() * 1e3
    );

    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = criterion.benchmark_group("http_sqlite");
    let (client, token) = (s.client.clone(), s.token.clone());
    group.bench_function("bare_read", |b| {
        b.to_async(&runtime)
            .iter(|| async { send(&client, get_request(&bare_uri, Some(&token))).await })
    });
    group.bench_function("authorized_read", |b| {
        b.to_async(&runtime)
            .iter(|| async { send(&client, get_request(&read_uri, Some(&token))).await })
    });
    group.finish();
    criterion.final_summary();
    remove_databases(&db_path);
}

/// Removes the run's SQLite files (the portal's at `db_path`, the journal's beside it, and
/// their WAL and shared-memory files): a run at full load leaves a journal of a hundred
/// megabytes or more in the temporary directory.
fn remove_databases(db_path: &std::path::Path) {
    let journal_path = db_path.with_extension("journal.db");
    for file in [db_path, journal_path.as_path()] {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}
