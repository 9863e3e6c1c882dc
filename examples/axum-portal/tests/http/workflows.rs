//! Workflows: list and get with the caller's available transitions and an `ETag`;
//! creation and transitions with `Idempotency-Key` and `If-Match`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app};

async fn cases(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let answer = app
        .get(token, &format!("/v1/orgs/{}/workflows{query}", app.acme()))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"].as_array().unwrap().clone()
}

fn names(transitions: &Value) -> Vec<&str> {
    transitions
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

async fn transition(
    app: &TestApp,
    token: &str,
    id: &str,
    name: &str,
    if_match: Option<&str>,
    key: Option<&str>,
    input: Value,
) -> Answer {
    let uri = format!("/v1/orgs/{}/workflows/{id}/transitions/{name}", app.acme());
    app.send_conditional(Method::POST, &uri, token, if_match, key, &json!({ "input": input }))
        .await
}

#[tokio::test]
async fn listings_carry_what_each_caller_may_do_now() {
    let app = app().await;
    let member = app.token("grace").await;
    let open = cases(&app, &member, "?definition=support_case&state=open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(names(&open[0]["available_transitions"]), ["triage"]);
    assert_eq!(open[0]["available_transitions"][0]["inputs"], json!(["priority"]));
    let all = cases(&app, &member, "").await;
    assert!(all.len() >= 6, "{}", all.len());
    let states: Vec<&str> = all.iter().map(|c| c["state"].as_str().unwrap()).collect();
    for state in ["open", "triaged", "in_progress", "resolved", "requested", "draft"] {
        assert!(states.contains(&state), "{state} in {states:?}");
    }
    // A viewer reads the same cases and may fire nothing.
    let viewer = app.token("linus").await;
    let seen = cases(&app, &viewer, "?state=open").await;
    assert!(
        seen.iter()
            .all(|c| c["available_transitions"].as_array().unwrap().is_empty())
    );
    let bad = app
        .get(&member, &format!("/v1/orgs/{}/workflows?assignee=nobody", app.acme()))
        .await;
    assert_eq!(bad.code(), "validation.invalid_field");
    let unknown = app
        .get(&member, &format!("/v1/orgs/{}/workflows?colour=red", app.acme()))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{unknown:?}");
}

#[tokio::test]
async fn get_answers_an_etag_and_another_orgs_case_is_404() {
    let app = app().await;
    let member = app.token("grace").await;
    let case = &cases(&app, &member, "?state=triaged").await[0];
    let id = case["id"].as_str().unwrap();
    let answer = app
        .get(&member, &format!("/v1/orgs/{}/workflows/{id}", app.acme()))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("etag").unwrap(),
        format!("\"{}\"", answer.body["version"])
    );

    let outsider = app.token("hedy").await;
    let through_acme = app
        .get(&outsider, &format!("/v1/orgs/{}/workflows/{id}", app.acme()))
        .await;
    assert_eq!(through_acme.status, StatusCode::NOT_FOUND);
    let through_globex = app
        .get(&outsider, &format!("/v1/orgs/{}/workflows/{id}", app.globex()))
        .await;
    assert_eq!(through_globex.status, StatusCode::NOT_FOUND);
    assert_eq!(through_globex.code(), "workflow.not_found");
    let malformed = app
        .get(&member, &format!("/v1/orgs/{}/workflows/case-1", app.acme()))
        .await;
    assert_eq!(malformed.body["param"], "workflow_id");
}

#[tokio::test]
async fn create_is_idempotent_under_a_key_and_refuses_its_reuse() {
    let app = app().await;
    let member = app.token("grace").await;
    let uri = format!("/v1/orgs/{}/workflows", app.acme());
    let create = |body: Value, key: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {member}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let body = json!({ "definition": "support_case", "payload": { "subject": "Printer on fire" } });
    let first = app.send(create(body.clone(), "create-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.header("etag").unwrap(), "\"1\"");
    assert_eq!(names(&first.body["available_transitions"]), ["triage"]);
    let retry = app.send(create(body, "create-1")).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body["id"], first.body["id"]);
    let other = json!({ "definition": "support_case", "payload": { "subject": "Something else" } });
    let reused = app.send(create(other, "create-1")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "idempotency.key_reused");

    let wrong_payload = app
        .post(
            &member,
            &uri,
            json!({ "definition": "support_case", "payload": { "subjekt": 1 } }),
        )
        .await;
    assert_eq!(wrong_payload.code(), "validation.invalid_field");
    assert_eq!(wrong_payload.body["param"], "payload");
    let viewer = app.token("linus").await;
    let denied = app
        .post(
            &viewer,
            &uri,
            json!({ "definition": "support_case", "payload": { "subject": "x" } }),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");
}

#[tokio::test]
async fn transitions_check_if_match_and_answer_the_new_etag() {
    let app = app().await;
    let member = app.token("grace").await;
    let case = &cases(&app, &member, "?state=open").await[0];
    let id = case["id"].as_str().unwrap().to_owned();
    let tag = format!("\"{}\"", case["version"]);

    let missing = transition(&app, &member, &id, "triage", None, None, json!({ "priority": "high" })).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["param"], "If-Match");
    let no_input = transition(&app, &member, &id, "triage", Some(&tag), None, json!({})).await;
    assert_eq!(no_input.code(), "workflow.input_missing");
    let unknown = transition(&app, &member, &id, "teleport", Some(&tag), None, json!({})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.code(), "workflow.unknown_transition");
    let not_now = transition(&app, &member, &id, "close", Some(&tag), None, json!({})).await;
    assert_eq!(not_now.status, StatusCode::CONFLICT);
    assert_eq!(not_now.code(), "workflow.transition_not_allowed");
    let viewer = app.token("linus").await;
    let denied = transition(
        &app,
        &viewer,
        &id,
        "triage",
        Some(&tag),
        None,
        json!({ "priority": "high" }),
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");

    let moved = transition(
        &app,
        &member,
        &id,
        "triage",
        Some(&tag),
        Some("t-1"),
        json!({ "priority": "high" }),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    assert_eq!(moved.body["state"], "triaged");
    let new_tag = moved.header("etag").unwrap().to_owned();
    assert_ne!(new_tag, tag);
    // The same key and request: the stored result, not a conflict.
    let replay = transition(
        &app,
        &member,
        &id,
        "triage",
        Some(&tag),
        Some("t-1"),
        json!({ "priority": "high" }),
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK, "{replay:?}");
    assert_eq!(replay.body["version"], moved.body["version"]);
    let reused = transition(
        &app,
        &member,
        &id,
        "triage",
        Some(&tag),
        Some("t-1"),
        json!({ "priority": "low" }),
    )
    .await;
    assert_eq!(reused.code(), "idempotency.key_reused");

    // A stale If-Match is a version conflict (409) naming the current version.
    let stale = transition(&app, &member, &id, "start", Some(&tag), None, json!({})).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "workflow.version_conflict");
    assert_eq!(stale.body["current_version"], moved.body["version"]);
    // A guard refuses `start` on an unassigned case.
    let guarded = transition(&app, &member, &id, "start", Some(&new_tag), None, json!({})).await;
    assert_eq!(guarded.code(), "workflow.guard_failed");
}

#[tokio::test]
async fn malformed_bodies_name_the_failing_field_and_other_media_types_are_415() {
    let app = app().await;
    let member = app.token("grace").await;
    let uri = format!("/v1/orgs/{}/workflows", app.acme());
    let wrong_type = app.post(&member, &uri, json!({ "definition": 5, "payload": {} })).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.code(), "validation.invalid_field");
    assert_eq!(wrong_type.body["param"], "definition");
    let missing = app.post(&member, &uri, json!({ "payload": {} })).await;
    assert_eq!(missing.body["param"], "definition");
    // Roles are the owner's to manage: a member is refused before the body is read.
    let owner = app.token("ada").await;
    let nested = app
        .post(
            &owner,
            &format!("/v1/orgs/{}/roles", app.acme()),
            json!({ "name": "x", "permissions": [{ "object": "a", "action": 7 }] }),
        )
        .await;
    assert_eq!(nested.body["param"], "permissions[0].action");
    let not_json = app
        .send(
            Request::post(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {member}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"definition\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.code(), "request.malformed");
    let text = app
        .send(
            Request::post(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {member}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.code(), "request.unsupported_media_type");
}
