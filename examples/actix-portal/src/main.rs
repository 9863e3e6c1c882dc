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
//! | `COOKIE_SECURE` | `true` unless `BIND` is a loopback address | mark cookies `Secure` and name them `__Host-portal_session`, `__Host-portal_csrf` |
//! | `PORTAL_SEED` | `true` on SQLite, `false` on Postgres | make the demo data (idempotent); set `1` to seed a Postgres database |
//! | `HASH_CONCURRENCY` | the number of cores | password hashes run at once; past it, after a short wait, sign-in answers `503 service.busy` |
//! | `TRUSTED_PROXIES` | none | the host's reverse proxies (`10.0.0.0/8, 192.168.1.7`): behind one, the client address (for the sign-in limit) is the right-most `X-Forwarded-For` entry that is not a trusted proxy |
//! | `RUST_LOG` | `info,portal=info` | what to log (`tracing-subscriber` filter) |
//!
//! `Ctrl-C` (or `SIGTERM`) stops accepting connections and lets requests in flight finish
//! (actix-web's graceful shutdown); then the diagnostics journal is flushed and the
//! database closed.
//!
//! The operator's command, on the same database (the same settings), serves nothing:
//!
//! ```sh
//! cargo run -p example-actix-portal -- reset-second-factors <email> <reason>
//! ```
//!
//! removes every second factor of the user with that address and ends their sessions
//! ([`portal_http::operator::Command`]), for a user who lost them all, once the operator has
//! made sure, out of band, that whoever asks owns the address.

use anyhow::Context as _;
use portal_adapters::observability::JournalLayer;
use portal_http::operator::Command;
use portal_http::seed::seed_demo;
use portal_http::{ServerSettings, connect};
use tracing_subscriber::prelude::*;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = ServerSettings::from_env("portal-actix-demo.db", 3001)?;
    let client_address_help = settings.client_address_help();
    let ServerSettings {
        config,
        bind,
        port,
        seed,
    } = settings;
    let shown_url = config.redacted_url();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = Command::parse(&args)?;
    let (api, background) = connect(&config).await.with_context(|| format!("opening {shown_url}"))?;
    if let Some(command) = command {
        let result = command.run(&api).await;
        background.shutdown().await;
        println!("{}", result?);
        return Ok(());
    }
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,portal=info")),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(JournalLayer::new(background.journal_sink()))
        .init();
    println!("database: {shown_url} (migrated)");
    println!("{client_address_help}");
    if seed {
        let demo = seed_demo(&api).await.context("seeding the demo data")?;
        println!("{} demo data:\n{demo}", if demo.created { "made" } else { "found" });
        println!(
            "{}",
            ServerSettings::sign_in_help(&format!("http://{bind}:{port}"), &demo)
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
