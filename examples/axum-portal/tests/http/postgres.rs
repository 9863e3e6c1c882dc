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

/// Two servers on one Postgres database share `Idempotency-Key` records: an org created
/// through one with a key is replayed, not created again, by the other; and while one
/// holds a key, the other answers `idempotency.in_flight`.
#[tokio::test]
async fn two_servers_on_one_postgres_share_idempotency_records() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();
    let first = app_with(|config| config.database_url = schema_url.clone()).await;
    let mut config = portal_http::PortalConfig::new(schema_url.as_str());
    config.http.cookie_secure = false;
    let (api, background) = portal_http::connect(&config).await.expect("a second server");
    let second = example_axum_portal::router(api.clone());

    let ada = first.token("ada").await;
    let create = |router: axum::Router, key: &'static str| {
        let ada = ada.clone();
        async move {
            let response = tower::ServiceExt::oneshot(
                router,
                axum::http::Request::post("/v1/orgs")
                    .header("authorization", format!("Bearer {ada}"))
                    .header("content-type", "application/json")
                    .header("idempotency-key", key)
                    .body(axum::body::Body::from(
                        json!({ "slug": "initech", "name": "Initech" }).to_string(),
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
            let status = response.status();
            let replayed = response.headers().get("idempotent-replayed").is_some();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                replayed,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (status, replayed, created) = create(first.router.clone(), "shared-1").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{created}");
    let (status, replayed, again) = create(second.clone(), "shared-1").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, created, "the second server replays the first one's answer");

    // A key held by a request on one server (its claim, made here directly on the shared
    // store) is in flight for the other.
    let principal = portal_core::Principal::User(first.user_id("ada").parse().unwrap());
    let scope = portal_core::idempotency::IdempotencyScope {
        org: None,
        principal,
        operation: "create_org".to_owned(),
    };
    let key = portal_core::context::IdempotencyKey::new("shared-2").unwrap();
    let mut request =
        portal_http::routes::Request::new(axum::http::Method::POST, api.request_meta(None, None, None, ""));
    request.body = json!({ "slug": "initech", "name": "Initech" }).to_string().into();
    let print = portal_http::idempotency::fingerprint("create_org", &request);
    let now = time::OffsetDateTime::now_utc();
    let held = first
        .api
        .idempotency_store()
        .claim(
            &scope,
            &key,
            print,
            portal_core::idempotency::Hold([1; 16]),
            now,
            now + time::Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(held, portal_core::idempotency::Claim::Held);
    let (status, _, body) = create(second.clone(), "shared-2").await;
    assert_eq!(status, StatusCode::CONFLICT, "the same request is in flight: {body}");
    assert_eq!(body["code"], "idempotency.in_flight");

    background.shutdown().await;
    first.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}
