//! SCIM provisioning: an identity provider's first sync (10,000 users, then 100 groups of
//! 100 members) through `/scim/v2` of the axum reference server over loopback TCP, on
//! SQLite and on Postgres, beside the anchor of the same run: `GET
//! /scim/v2/ServiceProviderConfig` on the same server and connections (HTTP, the edge
//! and JSON, no authentication, no store).
//!
//! Run with `cargo bench -p portal-benches --bench scim -- --noplot`; Postgres is measured
//! when `PORTAL_TEST_POSTGRES_URL` is set (in a schema of its own, dropped at the end).
//! `SCIM_BENCH_USERS` (10,000 by default) and `SCIM_BENCH_GROUPS` (100) size the sync.
//!
//! Each backend: `CONNECTIONS` keep-alive HTTP/1.1 connections (hyper's client) send one
//! request after another, as an identity provider's sync does, with an API key holding
//! `scim provision`:
//!
//! - **create user**: `POST /Users` (Okta's body: name, a work email, an `externalId`):
//!   a new portal user, its SCIM record and its membership of the org;
//! - **create group**: `POST /Groups` with 100 members each: the group and, for each
//!   member, its roles recomputed;
//! - **lookup**: `GET /Users?filter=userName eq "…"`, the identity provider's check
//!   before each create, which reads the unique index, and `emails.value eq "…"` (in
//!   upper case), which reads the index of the users' addresses.
//!
//! The program prints its own measurements (wall time and requests per second of each
//! phase, p50 and p99 as the client saw them), then runs criterion on the lookup and the
//! anchor with small samples.

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

use criterion::Criterion;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portal_http::seed::{DEMO_PASSWORD, seed_demo};
use portal_http::test_schema::TestSchema;
use portal_http::{PortalConfig, connect};
use serde_json::{Value, json};

const CONNECTIONS: usize = 4;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{var} is a number")))
        .unwrap_or(default)
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let response = client.request(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Option<&Value>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/scim+json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap(),
        None => builder.body(Full::default()).unwrap(),
    }
}

/// Latencies of one phase and its wall time.
struct Tally {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Tally {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Sends `count` requests made by `make(i)` over `CONNECTIONS` concurrent lanes; every
/// answer must have `expected` status. Answers the answers' bodies in order of `i`.
async fn drive(
    client: &HttpClient,
    count: usize,
    expected: StatusCode,
    make: impl Fn(usize) -> Request<Full<Bytes>> + Send + Sync + 'static,
) -> (Tally, Vec<Bytes>) {
    let make = Arc::new(make);
    let started = Instant::now();
    let mut lanes = Vec::new();
    for lane in 0..CONNECTIONS {
        let (client, make) = (client.clone(), make.clone());
        lanes.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = lane;
            while i < count {
                let at = Instant::now();
                let (status, body) = send(&client, make(i)).await;
                assert_eq!(status, expected, "request {i}: {}", String::from_utf8_lossy(&body));
                out.push((i, at.elapsed(), body));
                i += CONNECTIONS;
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(count);
    for lane in lanes {
        all.extend(lane.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort_by_key(|(i, _, _)| *i);
    let latencies = all.iter().map(|(_, l, _)| *l).collect();
    (Tally { latencies, wall }, all.into_iter().map(|(_, _, b)| b).collect())
}

/// A server on `database_url`, seeded; its address and a SCIM key of `acme`.
async fn serve(database_url: String, client: &HttpClient) -> (SocketAddr, String) {
    let mut config = PortalConfig::new(database_url);
    config.http.cookie_secure = false;
    let (api, background) = connect(&config).await.unwrap();
    let demo = seed_demo(&api).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = example_axum_portal::router(api);
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    // The background tasks (journal writer) live as long as the program.
    std::mem::forget(background);
    let email = &demo.user("ada").unwrap().email;
    let sign_in = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}/v1/auth/sign-in"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({ "email": email, "password": DEMO_PASSWORD }).to_string(),
        )))
        .unwrap();
    let (status, body) = send(client, sign_in).await;
    assert_eq!(status, StatusCode::OK);
    let token = serde_json::from_slice::<Value>(&body).unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let make_key = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}/v1/orgs/{}/api-keys", demo.acme))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({ "name": "bench directory", "scopes": ["scim provision"], "expires_at": expires }).to_string(),
        )))
        .unwrap();
    let (status, body) = send(client, make_key).await;
    assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    let key = serde_json::from_slice::<Value>(&body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    (addr, key)
}

/// One backend's first sync, printed as a table; answers the server and key for criterion.
async fn measure(name: &str, database_url: String, client: &HttpClient) -> (SocketAddr, String) {
    let users = size("SCIM_BENCH_USERS", 10_000);
    let groups = size("SCIM_BENCH_GROUPS", 100);
    let (addr, key) = serve(database_url, client).await;
    let base = format!("http://{addr}/scim/v2");

    let (uri, k) = (format!("{base}/ServiceProviderConfig"), key.clone());
    let (mut anchor, _) = drive(client, 2_000, StatusCode::OK, move |_| {
        request(Method::GET, &uri, Some(&k), None)
    })
    .await;

    let (uri, k) = (format!("{base}/Users"), key.clone());
    let (mut created, bodies) = drive(client, users, StatusCode::CREATED, move |i| {
        let email = format!("user{i:05}@bench.example");
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "externalId": format!("00u{i:07}"),
            "name": { "givenName": "User", "familyName": format!("{i:05}") },
            "emails": [{ "primary": true, "value": email, "type": "work" }],
            "active": true,
        });
        request(Method::POST, &uri, Some(&k), Some(&body))
    })
    .await;
    let ids: Arc<Vec<String>> = Arc::new(
        bodies
            .iter()
            .map(|b| {
                serde_json::from_slice::<Value>(b).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect(),
    );

    let per_group = users / groups.max(1);
    let (uri, k, members) = (format!("{base}/Groups"), key.clone(), ids.clone());
    let (mut grouped, _) = drive(client, groups, StatusCode::CREATED, move |g| {
        let members: Vec<Value> = members[g * per_group..(g + 1) * per_group]
            .iter()
            .map(|id| json!({ "value": id }))
            .collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("Group {g:03}"),
            "members": members,
        });
        request(Method::POST, &uri, Some(&k), Some(&body))
    })
    .await;

    let (uri, k) = (format!("{base}/Users"), key.clone());
    let (mut lookups, _) = drive(client, 2_000, StatusCode::OK, move |i| {
        let filter = format!("userName eq \"user{:05}@bench.example\"", (i * 7919) % users.max(1));
        let query: String = form_urlencoded_encode(&filter);
        request(Method::GET, &format!("{uri}?filter={query}"), Some(&k), None)
    })
    .await;

    let (uri, k) = (format!("{base}/Users"), key.clone());
    let (mut email_lookups, _) = drive(client, 2_000, StatusCode::OK, move |i| {
        let filter = format!("emails.value eq \"USER{:05}@bench.example\"", (i * 7919) % users.max(1));
        let query: String = form_urlencoded_encode(&filter);
        request(Method::GET, &format!("{uri}?filter={query}"), Some(&k), None)
    })
    .await;

    println!(
        "\n## SCIM first sync on {name} ({users} users, {groups} groups of {per_group}, {CONNECTIONS} connections)\n"
    );
    println!("| phase | requests | wall time | requests/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (phase, tally) in [
        ("anchor: GET /ServiceProviderConfig (no store)", &mut anchor),
        ("POST /Users", &mut created),
        ("POST /Groups (members each)", &mut grouped),
        ("GET /Users?filter=userName eq", &mut lookups),
        ("GET /Users?filter=emails.value eq", &mut email_lookups),
    ] {
        println!(
            "| {phase} | {} | {:.2} s | {:.0} | {:.0} µs | {:.0} µs |",
            tally.latencies.len(),
            tally.wall.as_secs_f64(),
            tally.per_second(),
            tally.percentile(0.50).as_secs_f64() * 1e6,
            tally.percentile(0.99).as_secs_f64() * 1e6
        );
    }
    let total = created.wall + grouped.wall;
    println!(
        "\nthe whole sync ({} requests): {:.1} s, {:.0} requests/s\n",
        users + groups,
        total.as_secs_f64(),
        (users + groups) as f64 / total.as_secs_f64()
    );
    (addr, key)
}

/// `text` percent-encoded for a query string.
fn form_urlencoded_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS * 2)
        .build_http();
    let db_path = std::env::temp_dir().join(format!("portal-bench-scim-{}.db", std::process::id()));
    let (addr, key) = runtime.block_on(measure("SQLite", format!("sqlite://{}", db_path.display()), &client));
    runtime.block_on(async {
        if let Some(schema) = TestSchema::from_env().await.unwrap() {
            measure("Postgres", schema.url().to_owned(), &client).await;
            schema.drop().await.unwrap();
        }
    });

    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = criterion.benchmark_group("scim_sqlite");
    let anchor = format!("http://{addr}/scim/v2/ServiceProviderConfig");
    let lookup = format!(
        "http://{addr}/scim/v2/Users?filter={}",
        form_urlencoded_encode("userName eq \"user00042@bench.example\"")
    );
    group.bench_function("service_provider_config", |b| {
        b.to_async(&runtime)
            .iter(|| async { send(&client, request(Method::GET, &anchor, None, None)).await })
    });
    group.bench_function("user_name_lookup", |b| {
        b.to_async(&runtime)
            .iter(|| async { send(&client, request(Method::GET, &lookup, Some(&key), None)).await })
    });
    group.finish();
    criterion.final_summary();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_path.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}
