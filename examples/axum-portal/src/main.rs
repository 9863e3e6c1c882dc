//! The portal's reference server: the `/v1` API on axum, over SQLite with demo data.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-axum-portal
//! ```
//!
//! Settings (environment):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://<temp dir>/portal-axum-demo.db` | `sqlite://…` or `postgres://…`; migrated at start |
//! | `BIND` | `127.0.0.1` | the address to listen on |
//! | `PORT` | `3000` | the port to listen on |
//! | `COOKIE_SECURE` | `true` unless `BIND` is a loopback address | mark cookies `Secure` and name them `__Host-portal_session`, `__Host-portal_csrf` |
//! | `PORTAL_SEED` | `true` on SQLite, `false` on Postgres | make the demo data (idempotent); set `1` to seed a Postgres database |
//! | `HASH_CONCURRENCY` | the number of cores | password hashes run at once; past it, after a short wait, sign-in answers `503 service.busy` |
//! | `TRUSTED_PROXIES` | none | the host's reverse proxies (`10.0.0.0/8, 192.168.1.7`): behind one, the client address (for the sign-in limit) is the right-most `X-Forwarded-For` entry that is not a trusted proxy |
//! | `WEBHOOK_DELIVERY` | `true` | run the webhook delivery worker beside the API, on the same database |
//! | `WEBHOOK_ALLOWED_HOSTS` | none | hosts webhook endpoints may name beyond the public internet (`127.0.0.1` for a local receiver) |
//! | `RUST_LOG` | `info,portal=warn` | what to log (`tracing-subscriber` filter); `info,portal=info` shows every diagnostic event |
//!
//! `Ctrl-C` (or `SIGTERM`) stops accepting connections, lets requests in flight finish,
//! stops the webhook delivery worker (its attempts in flight finish), flushes the
//! diagnostics journal and closes the database.
//!
//! The operator's command, on the same database (the same settings), serves nothing:
//!
//! ```sh
//! cargo run -p example-axum-portal -- reset-second-factors <email> <reason>
//! ```
//!
//! removes every second factor of the user with that address and ends their sessions
//! ([`portal_http::operator::reset_second_factors`]), for a user who lost them all, once
//! the operator has made sure, out of band, that whoever asks owns the address.

use std::net::SocketAddr;

use anyhow::Context as _;
use portal_adapters::observability::JournalLayer;
use portal_http::operator::Command;
use portal_http::seed::seed_demo;
use portal_http::{ServerSettings, connect};
use tracing_subscriber::prelude::*;

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// What the console shows last: where the pages are and how to sign in. On loopback the
/// address is `localhost`, the name passkeys are bound to there (browsers bind a passkey to
/// a domain name, never to an IP address).
fn pages_banner(local: SocketAddr, seeded: bool) -> String {
    let mut out = if local.ip().is_loopback() {
        format!("the portal in a browser: http://localhost:{}/\n", local.port())
    } else {
        format!("the portal in a browser: http://{local}/\n")
    };
    if seeded {
        out.push_str(&format!(
            "  sign in as ada@acme.example (owner), grace@acme.example (member), linus@acme.example (viewer)\n  \
             or sam@vendor.example (support); every demo password is `{}`",
            portal_http::seed::DEMO_PASSWORD
        ));
    } else {
        out.push_str("  sign in with a user of this database");
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ServerSettings::from_env("portal-axum-demo.db", 3000)?;
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
    // Logs go to stdout; the server's request spans (and its own log lines) also go to
    // the diagnostics journal, filed under each request's id beside the library's events.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Quiet by default: the demo seed's events would bury the banner below.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,portal=warn")),
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

    let app = example_axum_portal::app(api);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .with_context(|| format!("binding {bind}:{port}"))?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    // Last, so nothing printed during start-up scrolls it away.
    println!("\n{}", pages_banner(local, seed));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    background.shutdown().await;
    Ok(())
}
