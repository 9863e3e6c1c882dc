//! A support grant's first use in the customer audit log, through the router on SQLite
//! and Postgres: the vendor's staff member (the demo's sam, let into acme by a read-only
//! grant) reads acme several times, and acme's log holds exactly one
//! `support_grant.used`, by sam as `support_staff` with his display name, about the grant
//! and the org; the grant shows its first use; sam's refused read of globex writes
//! nothing, and globex's log never shows acme's event.

use axum::http::StatusCode;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{TestApp, app, app_with};

/// The events of `org` with `action`, as `token` reads them.
async fn events(app: &TestApp, token: &str, org: &str, action: &str) -> Vec<Value> {
    let page = app
        .get(token, &format!("/v1/orgs/{org}/audit-events?limit=100&action={action}"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    page.body["items"].as_array().unwrap().clone()
}

/// Sam's grant in acme, as acme's owner lists it.
async fn sams_grant(app: &TestApp, owner: &str) -> Value {
    let (acme, sam) = (app.acme(), app.user_id("sam"));
    let grants = app.get(owner, &format!("/v1/orgs/{acme}/support-grants")).await;
    assert_eq!(grants.status, StatusCode::OK, "{grants:?}");
    let found: Vec<Value> = grants.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["staff"] == sam.as_str())
        .cloned()
        .collect();
    assert_eq!(found.len(), 1, "{grants:?}");
    found[0].clone()
}

async fn the_first_use_is_logged_once_in_its_org_only(app: &TestApp) {
    let (acme, globex) = (app.acme(), app.globex());
    let (ada, hedy, staff) = (app.token("ada").await, app.token("hedy").await, app.token("sam").await);
    let grant = sams_grant(app, &ada).await;
    assert_eq!(grant["first_used_at"], Value::Null, "not used yet: {grant}");
    assert!(events(app, &ada, &acme, "support_grant.used").await.is_empty());

    // Sam reads acme through the grant, three times and two resources; globex is
    // not found to him (no grant there).
    for uri in [
        format!("/v1/orgs/{acme}"),
        format!("/v1/orgs/{acme}/workflows"),
        format!("/v1/orgs/{acme}"),
    ] {
        let read = app.get(&staff, &uri).await;
        assert_eq!(read.status, StatusCode::OK, "{read:?}");
    }
    app.get(&staff, &format!("/v1/orgs/{globex}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "org.not_found");

    let used = events(app, &ada, &acme, "support_grant.used").await;
    assert_eq!(used.len(), 1, "one event for the grant's first use: {used:#?}");
    let event = &used[0];
    assert_eq!(event["version"], 1);
    assert_eq!(
        event["actor"],
        json!({ "id": app.user_id("sam"), "type": "support_staff", "name": "Sam Support" })
    );
    assert_eq!(
        event["targets"],
        json!([{ "type": "support_grant", "id": grant["id"] }, { "type": "organization", "id": acme }])
    );
    assert_eq!(
        event["metadata"],
        json!({ "access": "read_only", "expires_at": grant["expires_at"] })
    );
    assert!(event["context"]["request_id"].as_str().unwrap().starts_with("req_"));
    let used_at = sams_grant(app, &ada).await["first_used_at"].clone();
    assert!(used_at.is_string(), "the grant shows its first use: {used_at}");

    // The same event is found by its actor and by its target (the grant).
    let by_actor = app
        .get(
            &ada,
            &format!("/v1/orgs/{acme}/audit-events?actor={}", app.user_id("sam")),
        )
        .await;
    assert_eq!(by_actor.body["items"], json!([event]), "{by_actor:?}");

    // Another org never sees it: its own log has no such event, and acme's is not found.
    assert!(events(app, &hedy, &globex, "support_grant.used").await.is_empty());
    let theirs = app
        .get(&hedy, &format!("/v1/orgs/{globex}/audit-events?limit=100"))
        .await;
    let text = theirs.body.to_string();
    assert!(
        !text.contains(grant["id"].as_str().unwrap()) && !text.contains(&app.user_id("sam")),
        "{text}"
    );
    app.get(
        &hedy,
        &format!("/v1/orgs/{acme}/audit-events?action=support_grant.used"),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
}

/// On SQLite.
#[tokio::test]
async fn a_support_grants_first_use_is_logged_once_in_its_org_on_sqlite() {
    the_first_use_is_logged_once_in_its_org_only(&app().await).await;
}

/// The same on Postgres.
#[tokio::test]
async fn a_support_grants_first_use_is_logged_once_in_its_org_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let url = schema.url().to_owned();
    the_first_use_is_logged_once_in_its_org_only(&app_with(move |config| config.database_url = url).await).await;
    schema.drop().await.expect("drop the schema");
}
