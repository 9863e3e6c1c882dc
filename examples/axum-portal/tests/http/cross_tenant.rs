//! The generated cross-tenant suite (`portal_http::routes::tenancy_probe`) on the axum
//! router: every operation of `docs/openapi.json` with an id in its path or query, called
//! by three attackers from outside the victim org with its real ids, on SQLite and, with
//! `PORTAL_TEST_POSTGRES_URL` set, on Postgres.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::Request;
use portal_http::routes::tenancy_probe::{
    ProbeAnswer, ProbeRequest, Tenants, count_operations_with_ids, probe_tenancy,
};
use serde_json::Value;

use crate::common::{TestApp, app, app_with};
use portal_http::test_schema::TestSchema;

fn document() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn send(app: &TestApp, probe: ProbeRequest) -> ProbeAnswer {
    let mut builder = Request::builder().method(probe.method).uri(probe.uri);
    for (name, value) in probe.headers {
        builder = builder.header(name, value);
    }
    let body = probe.body.map_or_else(Body::empty, Body::from);
    let answer = app.send(builder.body(body).unwrap()).await;
    ProbeAnswer {
        status: answer.status.as_u16(),
        request_id: answer.header("x-request-id").map(str::to_owned),
        body: answer.body,
    }
}

/// Sets up the victim and attackers on `app`, probes, and checks and prints the coverage.
async fn probe(app: &TestApp, backend: &str) {
    let doc = document();
    let tenants = Tenants::set_up(&app.demo, async |probe| send(app, probe).await)
        .await
        .unwrap();
    app.background.flush().await;
    let coverage = probe_tenancy(&doc, &tenants, async |probe| send(app, probe).await)
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
