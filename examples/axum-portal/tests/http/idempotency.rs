//! `Idempotency-Key` on the creating POSTs outside workflows (orgs, custom roles,
//! invitations, API keys, delegations): a retry replays the first answer and creates once,
//! another request under the key is refused, a key is scoped to its principal, and an
//! answer that showed a secret is never replayed.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app};

async fn keyed(app: &TestApp, token: &str, uri: &str, key: &str, body: &Value) -> Answer {
    app.send_conditional(Method::POST, uri, token, None, Some(key), body)
        .await
}

async fn count(app: &TestApp, token: &str, uri: &str) -> usize {
    let list = app.get(token, &format!("{uri}?limit=100")).await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    list.body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_org_creation_replays_its_answer_and_creates_once() {
    let app = app().await;
    let ada = app.token("ada").await;
    let before = count(&app, &ada, "/v1/orgs").await;
    let body = json!({ "slug": "initech", "name": "Initech" });
    let first = keyed(&app, &ada, "/v1/orgs", "org-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let retry = keyed(&app, &ada, "/v1/orgs", "org-1", &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(count(&app, &ada, "/v1/orgs").await, before + 1);

    let other = json!({ "slug": "initrode", "name": "Initrode" });
    let reused = keyed(&app, &ada, "/v1/orgs", "org-1", &other).await;
    reused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency.key_reused");
    assert_eq!(count(&app, &ada, "/v1/orgs").await, before + 1);
}

#[tokio::test]
async fn a_retried_role_creation_replays_and_another_body_is_refused() {
    let app = app().await;
    let ada = app.token("ada").await;
    let roles = format!("/v1/orgs/{}/roles", app.acme());
    let before = count(&app, &ada, &roles).await;
    let role = json!({
        "name": "auditor",
        "permissions": [{ "object": "cases/*", "action": "read", "effect": "allow" }]
    });
    let first = keyed(&app, &ada, &roles, "role-1", &role).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let retry = keyed(&app, &ada, &roles, "role-1", &role).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert_eq!(retry.body, first.body);
    assert_eq!(count(&app, &ada, &roles).await, before + 1);
    let mut other = role.clone();
    other["name"] = json!("auditor-2");
    keyed(&app, &ada, &roles, "role-1", &other)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency.key_reused");
    // The same key on another path is another request too.
    let globex_roles = format!("/v1/orgs/{}/roles", app.globex());
    let elsewhere = keyed(&app, &ada, &globex_roles, "role-1", &role).await;
    assert_ne!(elsewhere.status, StatusCode::CREATED, "{elsewhere:?}");
}

#[tokio::test]
async fn another_principals_same_key_is_independent() {
    let app = app().await;
    let ada = app.token("ada").await;
    let alan = app.token("alan").await;
    let hedy = app.token("hedy").await;
    let body = json!({ "slug": "initech", "name": "Initech" });
    let first = keyed(&app, &ada, "/v1/orgs", "shared", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    // Another org's owner, same key and body: never Ada's answer (the slug is taken).
    let hedys = keyed(&app, &hedy, "/v1/orgs", "shared", &body).await;
    assert_ne!(hedys.status, StatusCode::CREATED, "{hedys:?}");
    assert_ne!(hedys.body["id"], first.body["id"]);
    assert_eq!(hedys.header("idempotent-replayed"), None);
    // Another principal's same key with another body is no reuse: it creates.
    let roles = format!("/v1/orgs/{}/roles", app.acme());
    let role = |name: &str| json!({ "name": name, "permissions": [{ "object": "cases/*", "action": "read", "effect": "allow" }] });
    let by_ada = keyed(&app, &ada, &roles, "shared-role", &role("by-ada")).await;
    assert_eq!(by_ada.status, StatusCode::CREATED, "{by_ada:?}");
    let by_alan = keyed(&app, &alan, &roles, "shared-role", &role("by-alan")).await;
    assert_eq!(by_alan.status, StatusCode::CREATED, "{by_alan:?}");
    assert_ne!(by_alan.body, by_ada.body);
}

#[tokio::test]
async fn a_retried_api_key_or_invitation_creation_never_shows_its_secret_again() {
    let app = app().await;
    let ada = app.token("ada").await;
    let keys = format!("/v1/orgs/{}/api-keys", app.acme());
    let before = count(&app, &ada, &keys).await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = json!({ "name": "export", "scopes": ["cases/* read"], "expires_at": expires });
    let first = keyed(&app, &ada, &keys, "key-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let secret = first.body["key"].as_str().unwrap().to_owned();
    let retry = keyed(&app, &ada, &keys, "key-1", &body).await;
    retry.assert_problem(StatusCode::CONFLICT, "idempotency.secret_not_replayed");
    assert!(!retry.body.to_string().contains(&secret), "{retry:?}");
    assert_eq!(count(&app, &ada, &keys).await, before + 1);

    let invitations = format!("/v1/orgs/{}/invitations", app.acme());
    let before = count(&app, &ada, &invitations).await;
    let invite = json!({ "email": "barbara@globex.example", "roles": ["viewer"] });
    let first = keyed(&app, &ada, &invitations, "invite-1", &invite).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let token = first.body["token"].as_str().unwrap().to_owned();
    let retry = keyed(&app, &ada, &invitations, "invite-1", &invite).await;
    retry.assert_problem(StatusCode::CONFLICT, "idempotency.secret_not_replayed");
    assert!(!retry.body.to_string().contains(&token), "{retry:?}");
    assert_eq!(count(&app, &ada, &invitations).await, before + 1);
}

#[tokio::test]
async fn two_concurrent_identical_creations_create_once() {
    let app = app().await;
    let ada = app.token("ada").await;
    let before = count(&app, &ada, "/v1/orgs").await;
    let body = json!({ "slug": "initech", "name": "Initech" });
    let (a, b) = tokio::join!(
        keyed(&app, &ada, "/v1/orgs", "race", &body),
        keyed(&app, &ada, "/v1/orgs", "race", &body)
    );
    for answer in [&a, &b] {
        assert!(
            answer.status == StatusCode::CREATED || answer.code() == "idempotency.in_flight",
            "{answer:?}"
        );
    }
    assert_eq!(count(&app, &ada, "/v1/orgs").await, before + 1);
}

#[tokio::test]
async fn a_retried_delegation_replays_its_answer() {
    let app = app().await;
    let ada = app.token("ada").await;
    let delegations = format!("/v1/orgs/{}/delegations", app.acme());
    let ends_at = |days| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let body = json!({ "to": app.user_id("alan"), "ends_at": ends_at(1) });
    let first = keyed(&app, &ada, &delegations, "delegate-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let retry = keyed(&app, &ada, &delegations, "delegate-1", &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let longer = json!({ "to": app.user_id("alan"), "ends_at": ends_at(2) });
    keyed(&app, &ada, &delegations, "delegate-1", &longer)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency.key_reused");
}

/// The value the route walk puts in the path parameter `name`: the demo org for `org_id`,
/// a placeholder otherwise (the records answer before any handler reads it).
fn walk_value(app: &TestApp, name: &str) -> String {
    match name {
        "org_id" => app.acme(),
        other => format!("{other}-1"),
    }
}

/// Walks the route table: every route that keeps answers consults the shared records
/// before it runs (a record of the same request under the key is replayed as stored, or
/// refused as `secret_not_replayed` for an answer that showed a secret; a record of another
/// request is `key_reused`), and every route that refuses keys answers
/// `idempotency.unsupported`. None ignores a key; the workflow routes hand it to their
/// service (tested in `workflows.rs`).
#[tokio::test]
async fn every_changing_route_replays_or_refuses_a_key_never_ignores_it() {
    use portal_core::idempotency::{Claim, Hold, IdempotencyScope, StoredAnswer};
    use portal_http::idempotency::{Idempotency, fingerprint};
    use portal_http::routes::routes;

    let app = app().await;
    let ada = app.token("ada").await;
    let principal = portal_core::Principal::User(app.user_id("ada").parse().unwrap());
    let store = app.api.idempotency_store().clone();
    let now = app.api.portal().clock().now();
    let body = json!({ "walk": true });
    let mut walked = 0;
    for (n, route) in routes().iter().enumerate() {
        if matches!(route.idempotency, Idempotency::Safe | Idempotency::Service) {
            continue;
        }
        walked += 1;
        let uri = route.uri(|name| walk_value(&app, name));
        let send = |key: &'static str| app.send_conditional(route.method.clone(), &uri, &ada, None, Some(key), &body);
        if route.idempotency == Idempotency::Refused {
            let answer = send("walk").await;
            answer.assert_problem(StatusCode::BAD_REQUEST, "idempotency.unsupported");
            assert_eq!(answer.body["param"], "Idempotency-Key", "{route:?}");
            continue;
        }
        let mut request =
            portal_http::routes::Request::new(route.method.clone(), app.api.request_meta(None, None, None, ""));
        request.params = route.params().map(|p| (p.to_owned(), walk_value(&app, p))).collect();
        request.body = body.to_string().into();
        let scope = IdempotencyScope {
            org: route.params().any(|p| p == "org_id").then_some(app.demo.acme),
            principal: principal.clone(),
            operation: route.operation_id.to_owned(),
        };
        let stored = StoredAnswer {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: format!("{{\"walked\":{n}}}").into_bytes(),
        };
        let answer = (route.idempotency == Idempotency::Replay).then(|| stored.clone());
        for (key, print) in [("same", fingerprint(route.operation_id, &request)), ("other", [0; 32])] {
            let key = portal_core::context::IdempotencyKey::new(key).unwrap();
            let hold = Hold([n as u8; 16]);
            let held = store
                .claim(&scope, &key, print, hold, now, now + time::Duration::minutes(1))
                .await
                .unwrap();
            assert_eq!(held, Claim::Held, "{route:?}");
            store
                .complete(&scope, &key, hold, answer.clone(), now + time::Duration::hours(1))
                .await
                .unwrap();
        }
        let same = send("same").await;
        match route.idempotency {
            Idempotency::Replay => {
                assert_eq!(same.status, StatusCode::OK, "{route:?}: {same:?}");
                assert_eq!(same.body, json!({ "walked": n }), "{route:?}");
                assert_eq!(same.header("idempotent-replayed"), Some("true"), "{route:?}");
            }
            _ => same.assert_problem(StatusCode::CONFLICT, "idempotency.secret_not_replayed"),
        }
        let other = send("other").await;
        if route.is_scim() {
            assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{route:?}: {other:?}");
            assert_eq!(other.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
        } else {
            other.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency.key_reused");
        }
    }
    assert!(walked >= 20, "the walk covered {walked} routes");
}

/// A retried role assignment and member removal replay their first answer: the second
/// removal does not answer `404` for the member already gone.
#[tokio::test]
async fn a_retried_assignment_or_removal_replays_its_first_answer() {
    let app = app().await;
    let ada = app.token("ada").await;
    let acme = app.acme();
    let grace = app.user_id("grace");
    let roles = format!("/v1/orgs/{acme}/members/{grace}/roles");
    let assign = json!({ "role": "admin" });
    let first = keyed(&app, &ada, &roles, "assign-1", &assign).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let retry = keyed(&app, &ada, &roles, "assign-1", &assign).await;
    assert_eq!((retry.status, &retry.body), (first.status, &first.body));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));

    let member = format!("/v1/orgs/{acme}/members/{grace}");
    let remove = |key: &'static str| {
        app.send(
            axum::http::Request::delete(member.as_str())
                .header("authorization", format!("Bearer {ada}"))
                .header("idempotency-key", key)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
    };
    let first = remove("remove-1").await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{first:?}");
    let retry = remove("remove-1").await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT, "{retry:?}");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let unkeyed = app.delete(&ada, &member).await;
    assert_eq!(
        unkeyed.status,
        StatusCode::NOT_FOUND,
        "without the key it runs again: {unkeyed:?}"
    );
}

/// Sign-in refuses a key before it checks anything (it is anonymous, and its answer is a
/// new session): `400 idempotency.unsupported` naming the header.
#[tokio::test]
async fn sign_in_refuses_a_key() {
    let app = app().await;
    let email = &app.demo.user("ada").unwrap().email;
    let answer = app
        .send(
            axum::http::Request::post("/v1/auth/sign-in")
                .header("content-type", "application/json")
                .header("idempotency-key", "k")
                .body(axum::body::Body::from(
                    json!({ "email": email, "password": portal_http::seed::DEMO_PASSWORD }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    answer.assert_problem(StatusCode::BAD_REQUEST, "idempotency.unsupported");
}
