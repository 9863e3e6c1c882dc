//! A workflow instance's history (`GET …/history`) and its assignment
//! (`PUT …/assignee` with `If-Match` and `Idempotency-Key`), with their documented errors.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app};

/// The first acme case in `state`, as the member grace reads it.
async fn case_in(app: &TestApp, token: &str, state: &str) -> Value {
    let answer = app
        .get(
            token,
            &format!(
                "/v1/orgs/{}/workflows?definition=support_case&state={state}",
                app.acme()
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"][0].clone()
}

async fn history(app: &TestApp, token: &str, id: &str) -> Answer {
    app.get(token, &format!("/v1/orgs/{}/workflows/{id}/history", app.acme()))
        .await
}

async fn assign(
    app: &TestApp,
    token: &str,
    id: &str,
    if_match: Option<&str>,
    key: Option<&str>,
    body: Value,
) -> Answer {
    let uri = format!("/v1/orgs/{}/workflows/{id}/assignee", app.acme());
    app.send_conditional(Method::PUT, &uri, token, if_match, key, &body)
        .await
}

fn etag(case: &Value) -> String {
    format!("\"{}\"", case["version"])
}

#[tokio::test]
async fn history_lists_every_version_oldest_first() {
    let app = app().await;
    let viewer = app.token("linus").await;
    let case = case_in(&app, &viewer, "in_progress").await;
    let id = case["id"].as_str().unwrap();
    let answer = history(&app, &viewer, id).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let items = answer.body["items"].as_array().unwrap();
    let versions: Vec<u64> = items.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(
        versions,
        (1..=case["version"].as_u64().unwrap()).collect::<Vec<_>>(),
        "one entry per version"
    );
    assert_eq!(items[0]["kind"], "created");
    assert_eq!(items[0]["to"], "open");
    assert_eq!(
        items[0]["input"],
        json!({}),
        "creation has no input: an empty object, as documented"
    );
    let last = items.last().unwrap();
    assert_eq!(last["kind"], "transition");
    assert_eq!(last["transition"], "start");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("triaged"), Some("in_progress"))
    );
    assert!(last["actor"].as_str().unwrap().starts_with("usr_"), "{last}");
    assert!(last["request_id"].as_str().unwrap().starts_with("req_"), "{last}");
    let triage = items.iter().find(|e| e["transition"] == "triage").unwrap();
    assert!(triage["input"]["priority"].is_string(), "the input is kept: {triage}");
}

#[tokio::test]
async fn history_refusals() {
    let app = app().await;
    let member = app.token("grace").await;
    let case = case_in(&app, &member, "open").await;
    let id = case["id"].as_str().unwrap();
    // Another org's owner: the instance does not exist for them, in either org's path.
    let outsider = app.token("hedy").await;
    let hidden = history(&app, &outsider, id).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.code(), "workflow.not_found");
    let via_globex = app
        .get(&outsider, &format!("/v1/orgs/{}/workflows/{id}/history", app.globex()))
        .await;
    assert_eq!(via_globex.code(), "workflow.not_found");
    // A key that reads quotes only may not read a case's history.
    let owner = app.token("ada").await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let key = app
        .post(
            &owner,
            &format!("/v1/orgs/{}/api-keys", app.acme()),
            json!({ "name": "quotes", "scopes": ["quotes/* read"], "expires_at": expires }),
        )
        .await;
    let key = key.body["key"].as_str().unwrap();
    let denied = history(&app, key, id).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{denied:?}");
    assert_eq!(denied.code(), "access.denied");
    let malformed = history(&app, &member, "case-1").await;
    assert_eq!(malformed.body["param"], "workflow_id");
    let anonymous = app
        .send(
            Request::get(format!("/v1/orgs/{}/workflows/{id}/history", app.acme()))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.code(), "auth.unauthenticated");
}

#[tokio::test]
async fn assigning_bumps_the_version_enables_start_and_is_in_the_history() {
    let app = app().await;
    let member = app.token("grace").await;
    let case = case_in(&app, &member, "triaged").await;
    let id = case["id"].as_str().unwrap();
    let alan = app.user_id("alan");
    let offered = |case: &Value| -> Vec<String> {
        case["available_transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(case["assignee"].is_null(), "{case}");
    assert!(!offered(&case).contains(&"start".to_owned()), "unassigned: no start");

    let assigned = assign(&app, &member, id, Some(&etag(&case)), None, json!({ "assignee": alan })).await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");
    assert_eq!(assigned.body["assignee"], alan.as_str());
    assert_eq!(assigned.body["state"], "triaged", "the state stays");
    assert_eq!(assigned.body["version"], case["version"].as_u64().unwrap() + 1);
    assert_eq!(assigned.header("etag").unwrap(), etag(&assigned.body));
    assert!(
        offered(&assigned.body).contains(&"start".to_owned()),
        "start's guard wants an assignee: {assigned:?}"
    );

    let entries = history(&app, &member, id).await;
    let last = entries.body["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "assigned");
    assert_eq!(last["changes"]["assignee"], alan.as_str());
    assert_eq!(last["version"], assigned.body["version"]);

    // Unassigning with `null`.
    let unassigned = assign(
        &app,
        &member,
        id,
        Some(&etag(&assigned.body)),
        None,
        json!({ "assignee": null }),
    )
    .await;
    assert_eq!(unassigned.status, StatusCode::OK, "{unassigned:?}");
    assert!(unassigned.body["assignee"].is_null());
    let entries = history(&app, &member, id).await;
    let last = entries.body["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["changes"]["previous"], alan.as_str());
    assert!(last["changes"]["assignee"].is_null());
}

#[tokio::test]
async fn assignment_is_idempotent_under_a_key() {
    let app = app().await;
    let member = app.token("grace").await;
    let case = case_in(&app, &member, "open").await;
    let id = case["id"].as_str().unwrap();
    let tag = etag(&case);
    let body = json!({ "assignee": app.user_id("grace") });
    let first = assign(&app, &member, id, Some(&tag), Some("assign-1"), body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let retry = assign(&app, &member, id, Some(&tag), Some("assign-1"), body).await;
    assert_eq!(
        retry.status,
        StatusCode::OK,
        "a retry answers the stored result: {retry:?}"
    );
    assert_eq!(retry.body["version"], first.body["version"]);
    let other = assign(
        &app,
        &member,
        id,
        Some(&tag),
        Some("assign-1"),
        json!({ "assignee": app.user_id("alan") }),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), "idempotency.key_reused");
}

#[tokio::test]
async fn assignment_refusals() {
    let app = app().await;
    let member = app.token("grace").await;
    let case = case_in(&app, &member, "open").await;
    let id = case["id"].as_str().unwrap();
    let tag = etag(&case);
    let grace = json!({ "assignee": app.user_id("grace") });

    let no_tag = assign(&app, &member, id, None, None, grace.clone()).await;
    assert_eq!(no_tag.code(), "validation.invalid_field");
    assert_eq!(no_tag.body["param"], "If-Match");
    let stale = assign(&app, &member, id, Some("\"99\""), None, grace.clone()).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "workflow.version_conflict");
    assert_eq!(stale.body["current_version"], case["version"]);

    let outsider = assign(
        &app,
        &member,
        id,
        Some(&tag),
        None,
        json!({ "assignee": app.user_id("hedy") }),
    )
    .await;
    assert_eq!(outsider.code(), "validation.invalid_field", "{outsider:?}");
    assert_eq!(outsider.body["param"], "assignee");
    let malformed = assign(&app, &member, id, Some(&tag), None, json!({ "assignee": "grace" })).await;
    assert_eq!(malformed.body["param"], "assignee");
    let missing = assign(&app, &member, id, Some(&tag), None, json!({})).await;
    assert_eq!(missing.code(), "validation.invalid_field");
    assert_eq!(
        missing.body["param"], "assignee",
        "the field is required; `null` unassigns"
    );

    let viewer = app.token("linus").await;
    let denied = assign(&app, &viewer, id, Some(&tag), None, grace.clone()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");
    let hedy = app.token("hedy").await;
    let hidden = assign(&app, &hedy, id, Some(&tag), None, grace.clone()).await;
    assert_eq!(hidden.code(), "workflow.not_found");

    // A closed case keeps its assignee.
    let owner = app.token("ada").await;
    let resolved = case_in(&app, &owner, "resolved").await;
    let resolved_id = resolved["id"].as_str().unwrap();
    let closed = app
        .send(
            Request::post(format!(
                "/v1/orgs/{}/workflows/{resolved_id}/transitions/close",
                app.acme()
            ))
            .header(header::AUTHORIZATION, format!("Bearer {owner}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, etag(&resolved))
            .body(Body::from("{}"))
            .unwrap(),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{closed:?}");
    let terminal = assign(&app, &owner, resolved_id, Some(&etag(&closed.body)), None, grace).await;
    assert_eq!(terminal.status, StatusCode::CONFLICT, "{terminal:?}");
    assert_eq!(terminal.code(), "workflow.transition_not_allowed");
}

/// Issue 18, bounded reads: a history is read a page at a time (`limit`, and the `next`
/// cursor), never all at once; the pages hold every version once, oldest first.
#[tokio::test]
async fn history_pages_with_a_cursor() {
    let app = app().await;
    let viewer = app.token("linus").await;
    let case = case_in(&app, &viewer, "in_progress").await;
    let id = case["id"].as_str().unwrap();
    let latest = case["version"].as_u64().unwrap();
    assert!(latest >= 2, "{case}");
    let uri = format!("/v1/orgs/{}/workflows/{id}/history", app.acme());
    let mut versions = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page_uri = match &next {
            Some(cursor) => format!("{uri}?limit=1&cursor={cursor}"),
            None => format!("{uri}?limit=1"),
        };
        let page = app.get(&viewer, &page_uri).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 1, "a page holds at most `limit`: {page:?}");
        versions.extend(items.iter().map(|e| e["version"].as_u64().unwrap()));
        match page.body["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
        assert!(versions.len() as u64 <= latest, "the pages end");
    }
    assert_eq!(versions, (1..=latest).collect::<Vec<_>>());
    let bad = app.get(&viewer, &format!("{uri}?cursor=v2")).await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(bad.body["param"], "cursor");
}

/// A cursor the document allows (`^[0-9]{1,19}$`) past what any store keeps (versions are
/// SQL integers, at most `i64::MAX`) is a page after the last entry: empty, not a `500`
/// (schemathesis found `cursor=9278362739446099097` answered `500 storage.failure` on SQLite).
#[tokio::test]
async fn a_history_cursor_past_every_version_is_an_empty_page() {
    let app = app().await;
    let viewer = app.token("linus").await;
    let case = case_in(&app, &viewer, "in_progress").await;
    let id = case["id"].as_str().unwrap();
    let uri = format!("/v1/orgs/{}/workflows/{id}/history", app.acme());
    for cursor in [
        "9223372036854775807",
        "9223372036854775808",
        "9278362739446099097",
        "9999999999999999999",
    ] {
        let page = app.get(&viewer, &format!("{uri}?cursor={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{cursor}: {page:?}");
        assert_eq!(page.body["items"], json!([]), "{cursor}");
        assert_eq!(page.body["next"], Value::Null, "{cursor}");
    }
}
