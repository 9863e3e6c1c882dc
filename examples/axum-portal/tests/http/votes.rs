//! Approval votes (`POST …/votes` with `If-Match` and `Idempotency-Key`) on the demo's
//! quote, which needs two approving votes from holders of `quotes/* approve` other than
//! its creator: the member grace makes the quote, the owner ada and the admin alan approve.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app};

/// The demo's acme quote in `state`, as `token` reads it.
async fn quote_in(app: &TestApp, token: &str, state: &str) -> Value {
    let answer = app
        .get(
            token,
            &format!(
                "/v1/orgs/{}/workflows?definition=quote_approval&state={state}",
                app.acme()
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"][0].clone()
}

fn etag(instance: &Value) -> String {
    format!("\"{}\"", instance["version"])
}

async fn vote(app: &TestApp, token: &str, instance: &Value, key: Option<&str>, body: Value) -> Answer {
    let uri = format!(
        "/v1/orgs/{}/workflows/{}/votes",
        app.acme(),
        instance["id"].as_str().unwrap()
    );
    app.send_conditional(Method::POST, &uri, token, Some(&etag(instance)), key, &body)
        .await
}

/// The demo quote, submitted by its creator grace: pending approval.
async fn submitted_quote(app: &TestApp, grace: &str) -> Value {
    let draft = quote_in(app, grace, "draft").await;
    let uri = format!(
        "/v1/orgs/{}/workflows/{}/transitions/submit",
        app.acme(),
        draft["id"].as_str().unwrap()
    );
    let submitted = app
        .send_conditional(Method::POST, &uri, grace, Some(&etag(&draft)), None, &json!({}))
        .await;
    assert_eq!(submitted.status, StatusCode::OK, "{submitted:?}");
    assert_eq!(submitted.body["state"], "pending_approval");
    submitted.body
}

#[tokio::test]
async fn two_approving_votes_approve_the_quote_and_each_is_in_the_history() {
    let app = app().await;
    let (grace, alan, ada) = (
        app.token("grace").await,
        app.token("alan").await,
        app.token("ada").await,
    );
    let quote = submitted_quote(&app, &grace).await;

    let first = vote(
        &app,
        &alan,
        &quote,
        Some("vote-alan"),
        json!({ "transition": "approve", "decision": "approve" }),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(
        first.body["state"], "pending_approval",
        "one of two votes: still pending"
    );
    assert_eq!(
        first.body["version"],
        quote["version"].as_u64().unwrap() + 1,
        "a vote raises the version"
    );
    assert_eq!(first.header("etag"), Some(etag(&first.body).as_str()));

    // The same request again under the same key replays the answer, no second vote.
    let replay = vote(
        &app,
        &alan,
        &quote,
        Some("vote-alan"),
        json!({ "transition": "approve", "decision": "approve" }),
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK, "{replay:?}");
    assert_eq!(replay.body["version"], first.body["version"]);

    let second = vote(
        &app,
        &ada,
        &first.body,
        None,
        json!({ "transition": "approve", "decision": "approve", "input": { "comment": "fine" } }),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    assert_eq!(second.body["state"], "approved", "two approving votes fire `approve`");

    let history = app
        .get(
            &grace,
            &format!(
                "/v1/orgs/{}/workflows/{}/history",
                app.acme(),
                quote["id"].as_str().unwrap()
            ),
        )
        .await;
    let kinds: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "vote").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn a_rejecting_vote_sends_the_quote_back() {
    let app = app().await;
    let (grace, alan) = (app.token("grace").await, app.token("alan").await);
    let quote = submitted_quote(&app, &grace).await;
    let rejected = vote(
        &app,
        &alan,
        &quote,
        None,
        json!({ "transition": "approve", "decision": "reject" }),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::OK, "{rejected:?}");
    assert_eq!(rejected.body["state"], "rejected");
}

#[tokio::test]
async fn vote_refusals() {
    let app = app().await;
    let (grace, alan, linus) = (
        app.token("grace").await,
        app.token("alan").await,
        app.token("linus").await,
    );
    let quote = submitted_quote(&app, &grace).await;
    let approve = json!({ "transition": "approve", "decision": "approve" });

    let own = vote(&app, &grace, &quote, None, approve.clone()).await;
    assert_eq!(
        (own.status, own.code()),
        (StatusCode::FORBIDDEN, "approval.self_approval"),
        "{own:?}"
    );

    let viewer = vote(&app, &linus, &quote, None, approve.clone()).await;
    assert_eq!(
        (viewer.status, viewer.code()),
        (StatusCode::FORBIDDEN, "access.denied"),
        "{viewer:?}"
    );

    let no_rule = vote(
        &app,
        &alan,
        &quote,
        None,
        json!({ "transition": "send", "decision": "approve" }),
    )
    .await;
    assert_eq!(no_rule.code(), "approval.not_required", "{no_rule:?}");
    assert_eq!(no_rule.status, StatusCode::UNPROCESSABLE_ENTITY);

    let unknown = vote(
        &app,
        &alan,
        &quote,
        None,
        json!({ "transition": "teleport", "decision": "approve" }),
    )
    .await;
    assert_eq!(unknown.code(), "workflow.unknown_transition", "{unknown:?}");

    let first = vote(&app, &alan, &quote, None, approve.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let again = vote(&app, &alan, &first.body, None, approve.clone()).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "approval.already_voted"),
        "{again:?}"
    );

    // The version read before the first vote is stale now.
    let stale = vote(&app, &alan, &quote, None, approve.clone()).await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::CONFLICT, "workflow.version_conflict"),
        "{stale:?}"
    );

    let bad_decision = vote(
        &app,
        &alan,
        &first.body,
        None,
        json!({ "transition": "approve", "decision": "maybe" }),
    )
    .await;
    assert_eq!(bad_decision.status, StatusCode::BAD_REQUEST, "{bad_decision:?}");
    let bad_delegator = vote(
        &app,
        &alan,
        &first.body,
        None,
        json!({ "transition": "approve", "decision": "approve", "on_behalf_of": "nobody" }),
    )
    .await;
    assert_eq!(bad_delegator.body["param"], "on_behalf_of", "{bad_delegator:?}");

    // Another org's owner: the quote does not exist for them.
    let outsider = vote(&app, &app.token("hedy").await, &first.body, None, approve).await;
    assert_eq!(
        (outsider.status, outsider.code()),
        (StatusCode::NOT_FOUND, "workflow.not_found")
    );
}
