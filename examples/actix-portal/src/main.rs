//! The portal's second reference server: the `/v1` API on actix-web, over SQLite with demo
//! data (the same contract as `example-axum-portal`).
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-actix-portal
//! ```
//!
//! Settings (environment):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://<temp dir>/portal-actix-demo.db` | `sqlite://…` or `postgres://…`; migrated at start |
//! | `BIND` | `127.0.0.1` | the address to listen on |
//! | `PORT` | `3001` | the port to listen on (the axum server's default is 3000) |
//! | `COOKIE_SECURE` | `false` | mark cookies `Secure` (set `true` behind HTTPS) |
//! | `PORTAL_SEED` | `true` | make the demo data (idempotent) |
//! | `RUST_LOG` | `info,portal=info` | what to log (`tracing-subscriber` filter) |
//!
//! `Ctrl-C` (or `SIGTERM`) stops accepting connections and lets requests in flight finish
//! (actix-web's graceful shutdown); then the diagnostics journal is flushed and the
//! database closed.

use std::net::IpAddr;

use anyhow::Context as _;
use portal_adapters::observability::JournalLayer;
use portal_http::seed::{DEMO_PASSWORD, seed_demo};
use portal_http::{PortalConfig, connect};
use tracing_subscriber::prelude::*;

fn env_flag(name: &str, default: bool) -> anyhow::Result<bool> {
    match std::env::var(name) {
        Ok(value) => match value.as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            other => anyhow::bail!("{name} must be true or false, not `{other}`"),
        },
        Err(_) => Ok(default),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let database_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        format!(
            "sqlite://{}",
            std::env::temp_dir().join("portal-actix-demo.db").display()
        )
    });
    let bind: IpAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1".to_owned())
        .parse()
        .context("BIND must be an IP address")?;
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "3001".to_owned())
        .parse()
        .context("PORT must be a port number")?;
    let mut config = PortalConfig::new(database_url);
    config.http.cookie_secure = env_flag("COOKIE_SECURE", false)?;
    config.trace_events = true;

    let shown_url = config.redacted_url();
    let (api, background) = connect(&config).await.with_context(|| format!("opening {shown_url}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,portal=info")),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(JournalLayer::new(background.journal_sink()))
        .init();
    println!("database: {shown_url} (migrated)");
    if env_flag("PORTAL_SEED", true)? {
        let demo = seed_demo(&api).await.context("seeding the demo data")?;
        println!("{} demo data:\n{demo}", if demo.created { "made" } else { "found" });
        let addr = format!("http://{bind}:{port}");
        println!("sign in (the token is in `session_token`):");
        println!(
            "  curl -s {addr}/v1/auth/sign-in -H 'content-type: application/json' \\\n    -d '{{\"email\":\"ada@acme.example\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        );
        println!("then, with TOKEN set to it:");
        println!(
            "  curl -s {addr}/v1/orgs/{}/workflows -H \"authorization: Bearer $TOKEN\"",
            demo.acme
        );
    }

    let server_api = api.clone();
    let server = actix_web::HttpServer::new(move || example_actix_portal::app(server_api.clone()))
        .bind((bind, port))
        .with_context(|| format!("binding {bind}:{port}"))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await.context("serving")?;
    drop(api);
    background.shutdown().await;
    Ok(())
}
