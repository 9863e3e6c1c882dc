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
//! | `COOKIE_SECURE` | `false` | mark cookies `Secure` (set `true` behind HTTPS) |
//! | `PORTAL_SEED` | `true` | make the demo data (idempotent) |
//! | `RUST_LOG` | `info,portal=info` | what to log (`tracing-subscriber` filter) |
//!
//! `Ctrl-C` (or `SIGTERM`) stops accepting connections, lets requests in flight finish,
//! flushes the diagnostics journal and closes the database.

use std::net::{IpAddr, SocketAddr};

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        format!(
            "sqlite://{}",
            std::env::temp_dir().join("portal-axum-demo.db").display()
        )
    });
    let bind: IpAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1".to_owned())
        .parse()
        .context("BIND must be an IP address")?;
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "3000".to_owned())
        .parse()
        .context("PORT must be a port number")?;
    let mut config = PortalConfig::new(database_url);
    config.http.cookie_secure = env_flag("COOKIE_SECURE", false)?;
    config.trace_events = true;

    let shown_url = config.redacted_url();
    let (api, background) = connect(&config).await.with_context(|| format!("opening {shown_url}"))?;
    // Logs go to stdout; the server's request spans (and its own log lines) also go to
    // the diagnostics journal, filed under each request's id beside the library's events.
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
        println!("the contract: {addr}/openapi.json");
    }

    let app = example_axum_portal::router(api);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .with_context(|| format!("binding {bind}:{port}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    background.shutdown().await;
    Ok(())
}
