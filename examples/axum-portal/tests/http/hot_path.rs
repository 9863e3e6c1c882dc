//! The store calls of the hot path, through the real router with every store counted
//! (`portal_adapters::counted`): an authorized read of a workflow instance is the joined
//! session + membership + MFA standing read and the instance read, nothing else, and a
//! transition adds its one write. Revocation and the org's MFA policy are still read on
//! every request (in the joined read); `mfa.rs` holds the policy enforced through it. A
//! support staff member's read through a grant writes only on the grant's first use.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use portal_adapters::counted::StoreCalls;
use serde_json::json;

use crate::common::{TestApp, app_with};

/// Calls made by the server's background tasks, not by a request.
const BACKGROUND: [&str; 3] = ["journal.append", "login_attempts.prune", "idempotency.purge_expired"];

fn request_calls(calls: &StoreCalls) -> BTreeMap<&'static str, u64> {
    let mut tally = calls.snapshot();
    for method in BACKGROUND {
        tally.remove(method);
    }
    tally
}

async fn counted_app(database_url: Option<String>) -> (TestApp, StoreCalls) {
    let calls = StoreCalls::new();
    let counted = calls.clone();
    let app = app_with(move |config| {
        config.store_calls = Some(counted);
        if let Some(url) = database_url {
            config.database_url = url;
        }
    })
    .await;
    (app, calls)
}

async fn reads_and_transitions(app: &TestApp, calls: &StoreCalls) {
    let grace = app.token("grace").await;
    let acme = app.acme();
    let created = app
        .post(
            &grace,
            &format!("/v1/orgs/{acme}/workflows"),
            json!({ "definition": "support_case", "payload": { "subject": "Hot path" } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let case = format!("/v1/orgs/{acme}/workflows/{}", created.body["id"].as_str().unwrap());

    calls.reset();
    let read = app.get(&grace, &case).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert!(
        !read.body["available_transitions"].as_array().unwrap().is_empty(),
        "the caller's transitions are listed: {read:?}"
    );
    assert_eq!(
        request_calls(calls),
        BTreeMap::from([
            ("session_memberships.find_session_with_membership", 1),
            ("workflows.get", 1),
        ]),
        "an authorized read: the joined session read and the instance read"
    );

    calls.reset();
    let moved = app
        .send_conditional(
            Method::POST,
            &format!("{case}/transitions/triage"),
            &grace,
            Some("\"1\""),
            Some("hot-path-1"),
            &json!({ "input": { "priority": "high" } }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    let made = request_calls(calls);
    assert_eq!(
        made.get("session_memberships.find_session_with_membership"),
        Some(&1),
        "{made:?}"
    );
    assert_eq!(made.get("workflows.apply"), Some(&1), "one write: {made:?}");
    assert_eq!(
        made.get("mfa_policy.mfa_unmet"),
        None,
        "the MFA standing came with the session: {made:?}"
    );
}

/// On SQLite.
#[tokio::test]
async fn an_authorized_read_makes_two_store_calls_on_sqlite() {
    let (app, calls) = counted_app(None).await;
    reads_and_transitions(&app, &calls).await;
}

/// On Postgres (skipped when `PORTAL_TEST_POSTGRES_URL` is unset).
#[tokio::test]
async fn an_authorized_read_makes_two_store_calls_on_postgres() {
    let Some(schema) = portal_http::test_schema::TestSchema::from_env()
        .await
        .expect("a schema of its own on Postgres")
    else {
        return;
    };
    let (app, calls) = counted_app(Some(schema.url().to_owned())).await;
    reads_and_transitions(&app, &calls).await;
    schema.drop().await.expect("drop the schema");
}

/// A support staff member's reads through a grant (the demo's sam in acme): the first
/// records the grant's first use (`support_grants.record_first_use`, its one write);
/// every later one reads the grant, which carries its first use, and writes nothing.
#[tokio::test]
async fn a_staff_read_writes_only_on_the_grants_first_use() {
    let (app, calls) = counted_app(None).await;
    let staff = app.token("sam").await;
    let org = format!("/v1/orgs/{}", app.acme());
    for (read, first_use) in [(1, Some(&1)), (2, None), (3, None)] {
        calls.reset();
        let answer = app.get(&staff, &org).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let made = request_calls(&calls);
        assert_eq!(
            made.get("support_grants.find_active"),
            Some(&1),
            "read {read}: {made:?}"
        );
        assert_eq!(
            made.get("support_grants.record_first_use"),
            first_use,
            "read {read}: {made:?}"
        );
    }
}
