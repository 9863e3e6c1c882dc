//! Server time per page of the portal in a browser, on a SQLite file with the demo data:
//! each screen rendered by `example_axum_portal::app` in process (the router called as a
//! `tower` service, no socket), beside the pages' own stylesheet served through the same
//! stack (edge, security headers, no store call, no template): the anchor, in the same
//! run.
//!
//! Run with `cargo bench -p portal-benches --bench pages -- --noplot`.
//!
//! The program first measures every screen itself: `PAGES_SAMPLES` (default 1,000)
//! requests one after another per screen, interleaved in rounds, each timed from the
//! request to the last byte of the body, and prints p50, p95 and p99 and the page's
//! weight (HTML bytes; with the stylesheet and the script, which every page loads) as
//! Markdown. The target is p95 ≤ 20 ms per page. Then criterion runs each screen with
//! small samples.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use criterion::Criterion;
use http_body_util::BodyExt as _;
use portal_http::seed::{DEMO_PASSWORD, seed_demo};
use portal_http::{PortalConfig, connect};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Rounds the samples of each screen are spread over, interleaving the screens.
const ROUNDS: usize = 5;

/// One screen: its name, its path, and whether it needs the session cookie.
struct Screen {
    name: &'static str,
    path: String,
    signed_in: bool,
}

struct Setup {
    app: Router,
    cookie: String,
    screens: Vec<Screen>,
}

async fn answer(app: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, usize) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.len())
}

async fn json_call(app: &Router, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn setup(db_path: &std::path::Path) -> Setup {
    let mut config = PortalConfig::new(format!("sqlite://{}", db_path.display()));
    config.http.cookie_secure = false;
    let (api, background) = connect(&config).await.unwrap();
    let demo = seed_demo(&api).await.unwrap();
    let cookie_name = api.config().session_cookie().to_owned();
    let app = example_axum_portal::app(api);
    // The background tasks (journal writer) live as long as the program.
    std::mem::forget(background);
    let signed_in = json_call(
        &app,
        Method::POST,
        "/v1/auth/sign-in",
        None,
        Some(json!({ "email": demo.user("ada").unwrap().email, "password": DEMO_PASSWORD })),
    )
    .await;
    let token = signed_in["session_token"].as_str().unwrap().to_owned();
    let acme = demo.acme.to_string();
    let cases = json_call(
        &app,
        Method::GET,
        &format!("/v1/orgs/{acme}/workflows?state=resolved"),
        Some(&token),
        None,
    )
    .await;
    let case = cases["items"][0]["id"].as_str().unwrap().to_owned();
    // A refused request to look up in the support console: a viewer's triage.
    let linus = json_call(
        &app,
        Method::POST,
        "/v1/auth/sign-in",
        None,
        Some(json!({ "email": demo.user("linus").unwrap().email, "password": DEMO_PASSWORD })),
    )
    .await;
    let refused = json_call(
        &app,
        Method::POST,
        &format!("/v1/orgs/{acme}/workflows/{case}/transitions/close"),
        linus["session_token"].as_str(),
        Some(json!({ "input": {} })),
    )
    .await;
    let request = refused["request_id"].as_str().unwrap().to_owned();
    let screen = |name, path: String, signed_in| Screen { name, path, signed_in };
    Setup {
        app,
        cookie: format!("{cookie_name}={token}"),
        screens: vec![
            screen("stylesheet (anchor)", "/assets/app.css".to_owned(), false),
            screen("sign-in", "/sign-in".to_owned(), false),
            screen("cases", "/cases".to_owned(), true),
            screen("returns", "/returns".to_owned(), true),
            screen("quotes", "/quotes".to_owned(), true),
            screen("case page", format!("/workflows/{case}"), true),
            screen("members", "/members".to_owned(), true),
            screen("invitations", "/invitations".to_owned(), true),
            screen("roles", "/roles".to_owned(), true),
            screen(
                "roles: who can approve quotes",
                "/roles?object=quotes%2F%2A&action=approve".to_owned(),
                true,
            ),
            screen("API keys", "/api-keys".to_owned(), true),
            screen("sessions", "/sessions".to_owned(), true),
            screen("support access", "/support-access".to_owned(), true),
            screen("audit log", "/audit".to_owned(), true),
            screen("workflow definitions", "/definitions".to_owned(), true),
            screen(
                "support console",
                format!("/support?org={acme}&request={request}"),
                true,
            ),
        ],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `PAGES_SAMPLES`: requests per screen (1,000 by default).
fn samples() -> usize {
    std::env::var("PAGES_SAMPLES")
        .ok()
        .map(|v| v.parse().expect("PAGES_SAMPLES is a number"))
        .unwrap_or(1_000)
}

async fn own_measurements(setup: &Setup) {
    let per_round = samples().div_ceil(ROUNDS);
    let assets =
        answer(&setup.app, "/assets/app.css", None).await.1 + answer(&setup.app, "/assets/app.js", None).await.1;
    let mut latencies: Vec<Vec<Duration>> = setup.screens.iter().map(|_| Vec::new()).collect();
    let mut weights = vec![0usize; setup.screens.len()];
    for (i, screen) in setup.screens.iter().enumerate() {
        // Warm-up, and the page must be there.
        for _ in 0..20 {
            let (status, bytes) = answer(&setup.app, &screen.path, screen.signed_in.then_some(&*setup.cookie)).await;
            assert_eq!(status, StatusCode::OK, "{}", screen.path);
            weights[i] = bytes;
        }
    }
    for _ in 0..ROUNDS {
        for (i, screen) in setup.screens.iter().enumerate() {
            let cookie = screen.signed_in.then_some(&*setup.cookie);
            for _ in 0..per_round {
                let start = Instant::now();
                let (status, _) = answer(&setup.app, &screen.path, cookie).await;
                latencies[i].push(start.elapsed());
                assert_eq!(status, StatusCode::OK);
            }
        }
    }
    println!(
        "\n{} requests per screen, one after another, in {ROUNDS} interleaved rounds\n",
        per_round * ROUNDS
    );
    println!("| screen | p50 ms | p95 ms | p99 ms | HTML bytes | with CSS and JS |\n|---|---:|---:|---:|---:|---:|");
    for (i, screen) in setup.screens.iter().enumerate() {
        let mut sorted = latencies[i].clone();
        sorted.sort();
        let (p50, p95, p99) = (
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.95),
            percentile(&sorted, 0.99),
        );
        let with_assets = if screen.path.starts_with("/assets/") {
            "—".to_owned()
        } else {
            (weights[i] + assets).to_string()
        };
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {} | {with_assets} |",
            screen.name,
            ms(p50),
            ms(p95),
            ms(p99),
            weights[i]
        );
    }
    println!();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("portal-bench-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let setup = runtime.block_on(setup(&dir.join("pages.db")));
    runtime.block_on(own_measurements(&setup));

    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    let mut group = criterion.benchmark_group("pages");
    for screen in &setup.screens {
        let cookie = screen.signed_in.then_some(&*setup.cookie);
        group.bench_function(screen.name, |b| {
            b.to_async(&runtime).iter(|| answer(&setup.app, &screen.path, cookie));
        });
    }
    group.finish();
    criterion.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
