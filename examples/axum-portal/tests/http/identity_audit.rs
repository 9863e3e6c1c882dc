//! A member's identity events in their orgs' audit logs, through the router on SQLite and
//! Postgres: a member of two orgs signs in, changes their password (a wrong current
//! password first), enrolls a second factor and signs out; both orgs' logs show each
//! change once, by the member, and a third org sees none. The org's MFA policy change is
//! in that org's log with its before and after.

use axum::http::{Method, StatusCode};
use portal_http::seed::DEMO_PASSWORD;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::mfa::{enroll, enroll_with, mfa_app};

const NEW_PASSWORD: &str = "a brand new passphrase for grace";

/// The `user.*` events of `org` about `user`, read by `reader`, oldest first.
async fn user_events(app: &TestApp, reader: &str, org: &str, user: &str) -> Vec<Value> {
    let page = app
        .get(reader, &format!("/v1/orgs/{org}/audit-events?target={user}&limit=100"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("user."))
        .cloned()
        .collect()
}

async fn identity_changes_reach_every_org_of_the_member(app: &TestApp) {
    let (acme, globex) = (app.acme(), app.globex());
    let (ada, hedy, barbara) = (
        app.token("ada").await,
        app.token("hedy").await,
        app.token("barbara").await,
    );
    let grace_id = app.user_id("grace");

    // A third org, of which grace is no member.
    let initech = app
        .post(
            &barbara,
            "/v1/orgs",
            json!({ "slug": "initech-audit", "name": "Initech" }),
        )
        .await;
    assert_eq!(initech.status, StatusCode::CREATED, "{initech:?}");
    let initech = initech.body["id"].as_str().unwrap().to_owned();

    // Grace signs in as acme's member only, then joins globex.
    let first = app.token("grace").await;
    let invited = app
        .post(
            &hedy,
            &format!("/v1/orgs/{globex}/invitations"),
            json!({ "email": "grace@acme.example", "roles": ["viewer"] }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let accepted = app
        .post(
            &first,
            "/v1/invitations/accept",
            json!({ "token": invited.body["token"].as_str().unwrap() }),
        )
        .await;
    assert!(accepted.status.is_success(), "{accepted:?}");

    // Now a member of both: a sign-in, a refused and a real password change, a factor.
    let grace = app.token("grace").await;
    app.call(
        &grace,
        Method::POST,
        "/v1/auth/password",
        Some(json!({ "current_password": "not my password", "new_password": NEW_PASSWORD })),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    let changed = app
        .call(
            &grace,
            Method::POST,
            "/v1/auth/password",
            Some(json!({ "current_password": DEMO_PASSWORD, "new_password": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let grace = changed.body["session_token"].as_str().unwrap().to_owned();
    enroll_with(app, &grace, NEW_PASSWORD).await;
    let out = app.call(&grace, Method::POST, "/v1/auth/sign-out", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");

    let actions = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    let in_acme = user_events(app, &ada, &acme, &grace_id).await;
    assert_eq!(
        actions(&in_acme),
        [
            "user.signed_in",
            "user.signed_in",
            "user.password_changed",
            "user.mfa_enrolled",
            "user.signed_out"
        ],
        "acme sees both sign-ins: {in_acme:#?}"
    );
    let in_globex = user_events(app, &hedy, &globex, &grace_id).await;
    assert_eq!(
        actions(&in_globex),
        [
            "user.signed_in",
            "user.password_changed",
            "user.mfa_enrolled",
            "user.signed_out"
        ],
        "globex sees what grace did once she was a member: {in_globex:#?}"
    );
    for event in in_acme.iter().chain(&in_globex) {
        assert_eq!(
            event["actor"],
            json!({ "id": grace_id, "type": "user", "name": "Grace Hopper" }),
            "{event:#?}"
        );
        assert_eq!(event["targets"], json!([{ "type": "user", "id": grace_id }]));
        assert!(event["context"]["request_id"].as_str().unwrap().starts_with("req_"));
    }
    assert_eq!(in_globex[0]["metadata"]["method"], "password");
    assert_eq!(in_globex[1]["metadata"], json!({ "method": "change" }));
    assert_eq!(in_globex[2]["metadata"], json!({ "factor": "totp" }));
    assert_eq!(in_globex[3]["metadata"]["reason"], "sign_out");
    // One change, two rows: the same request and time, each org its own event id.
    assert_eq!(in_acme[2]["context"], in_globex[1]["context"]);
    assert_eq!(in_acme[2]["occurred_at"], in_globex[1]["occurred_at"]);
    assert_ne!(in_acme[2]["id"], in_globex[1]["id"]);
    // Nothing names the other org, and no secret is in any event.
    for (events, other) in [(&in_acme, &globex), (&in_globex, &acme)] {
        let text = serde_json::to_string(events).unwrap();
        assert!(!text.contains(other.as_str()), "{text}");
        assert!(!text.contains(NEW_PASSWORD) && !text.contains(DEMO_PASSWORD), "{text}");
    }
    assert!(
        user_events(app, &barbara, &initech, &grace_id).await.is_empty(),
        "an org grace does not belong to sees none of it"
    );

    // The org's MFA policy: an org change by its owner.
    enroll(app, &ada).await;
    let set = app
        .call(
            &ada,
            Method::PUT,
            &format!("/v1/orgs/{acme}/mfa-policy"),
            Some(json!({ "required": true })),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let page = app
        .get(
            &ada,
            &format!("/v1/orgs/{acme}/audit-events?action=org.mfa_policy_changed"),
        )
        .await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page:?}");
    assert_eq!(
        items[0]["actor"],
        json!({ "id": app.user_id("ada"), "type": "user", "name": "Ada Lovelace" })
    );
    assert_eq!(items[0]["targets"], json!([{ "type": "organization", "id": acme }]));
    assert_eq!(items[0]["metadata"], json!({ "before": false, "after": true }));
    let globex_policy = app
        .get(
            &hedy,
            &format!("/v1/orgs/{globex}/audit-events?action=org.mfa_policy_changed"),
        )
        .await;
    assert_eq!(globex_policy.body["items"], json!([]), "{globex_policy:?}");
}

/// On SQLite.
#[tokio::test]
async fn a_members_identity_changes_are_in_each_of_their_orgs_logs_on_sqlite() {
    identity_changes_reach_every_org_of_the_member(&mfa_app(None).await).await;
}

/// The same on Postgres.
#[tokio::test]
async fn a_members_identity_changes_are_in_each_of_their_orgs_logs_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    identity_changes_reach_every_org_of_the_member(&mfa_app(Some(schema.url().to_owned())).await).await;
}
