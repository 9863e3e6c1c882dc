//! The generated cross-tenant suite (`portal_http::routes::tenancy_probe`) on the axum
//! router: every operation of `docs/openapi.json` with an id in its path or query, called
//! by three attackers from outside the victim org with its real ids, on SQLite and, with
//! `PORTAL_TEST_POSTGRES_URL` set, on Postgres.

use std::path::PathBuf;

use portal_http::routes::tenancy_probe::{Tenants, count_operations_with_ids, probe_tenancy};
use portal_http::test_schema::TestSchema;
use serde_json::Value;

use crate::common::{TestApp, app, app_with};

fn document() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Sets up the victim and attackers on `app`, probes, and checks and prints the coverage.
async fn probe(app: &TestApp, backend: &str) {
    let doc = document();
    let tenants = Tenants::set_up(&app.demo, async |probe| app.probe(probe).await)
        .await
        .unwrap();
    app.background.flush().await;
    let coverage = probe_tenancy(&doc, &tenants, async |probe| app.probe(probe).await)
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    eprintln!(
        "cross-tenant suite (axum, {backend}): {} operations, {} probes ({} known leaks)",
        coverage.operations, coverage.probes, coverage.known_leaks
    );
    assert!(coverage.operations > 0);
    assert_eq!(coverage.operations, count_operations_with_ids(&doc));
    assert!(coverage.probes >= coverage.operations * tenants.attackers.len());
}

#[tokio::test]
async fn no_operation_answers_another_orgs_ids_on_sqlite() {
    let app = app().await;
    probe(&app, "SQLite").await;
    app.background.shutdown().await;
}

#[tokio::test]
async fn no_operation_answers_another_orgs_ids_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();

    let app = app_with(|config| config.database_url = schema_url).await;
    probe(&app, "Postgres").await;
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}
