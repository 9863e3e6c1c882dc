//! The same API on Postgres (`DATABASE_URL=postgres://…`), in a schema of its own; runs
//! only when `PORTAL_TEST_POSTGRES_URL` is set.

use axum::http::StatusCode;
use portal_http::test_schema::TestSchema;
use serde_json::json;

use crate::common::app_with;

#[tokio::test]
async fn the_api_runs_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();

    let app = app_with(|config| config.database_url = schema_url).await;
    let member = app.token("grace").await;
    let acme = app.acme();
    let open = app.get(&member, &format!("/v1/orgs/{acme}/workflows?state=open")).await;
    assert_eq!(open.status, StatusCode::OK, "{open:?}");
    let case = &open.body["items"][0];
    let id = case["id"].as_str().unwrap();
    let tag = format!("\"{}\"", case["version"]);
    let moved = app
        .send(
            axum::http::Request::post(format!("/v1/orgs/{acme}/workflows/{id}/transitions/triage"))
                .header("authorization", format!("Bearer {member}"))
                .header("content-type", "application/json")
                .header("if-match", tag.as_str())
                .body(axum::body::Body::from(
                    json!({ "input": { "priority": "high" } }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    let stale = app
        .send(
            axum::http::Request::post(format!("/v1/orgs/{acme}/workflows/{id}/transitions/start"))
                .header("authorization", format!("Bearer {member}"))
                .header("content-type", "application/json")
                .header("if-match", tag.as_str())
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(stale.code(), "workflow.version_conflict");
    app.background.flush().await;
    let admin_token = app.token("alan").await;
    let request_id = stale.body["request_id"].as_str().unwrap();
    let explained = app
        .get(
            &admin_token,
            &format!("/v1/orgs/{acme}/diagnostics/requests/{request_id}/explain"),
        )
        .await;
    assert_eq!(
        explained.body["root_cause"], "workflow.version_conflict",
        "{explained:?}"
    );
    let outsider = app.token("hedy").await;
    let hidden = app.get(&outsider, &format!("/v1/orgs/{acme}/workflows/{id}")).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);

    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}

/// The SCIM suite (`portal_http::routes::scim_suite`) on Postgres.
#[tokio::test]
async fn a_directory_provisions_through_scim_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();
    let app = app_with(|config| config.database_url = schema_url).await;
    portal_http::routes::scim_suite::run(&app.demo, async |probe| crate::scim::send(&app, probe).await)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}

/// Okta's and Entra's documented request sequences, groups mapped to roles by the owner,
/// the last-owner rule, attribute selection and bad input, on Postgres
/// (`scim_suite::run_identity_providers`).
#[tokio::test]
async fn okta_and_entra_sequences_keep_members_and_roles_in_step_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();
    let app = app_with(|config| config.database_url = schema_url).await;
    portal_http::routes::scim_suite::run_identity_providers(&app.demo, async |probe| {
        crate::scim::send(&app, probe).await
    })
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}
