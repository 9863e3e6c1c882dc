//! Approval votes (`POST …/votes` with `If-Match` and `Idempotency-Key`) and their
//! delegation (`POST …/delegations`) on the demo's quote, which needs two approving votes from holders of `quotes/* approve` other than
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

/// The transitions the caller may vote on, as the instance view offers them.
fn votable(instance: &Value) -> Vec<String> {
    instance["available_transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["by_vote"] == true)
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
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
    // The creator may not vote on their own quote: `approve` is not offered to them; an
    // approver sees it as a vote to cast.
    assert_eq!(votable(&quote), Vec::<String>::new(), "grace made it: {quote}");
    let as_alan = quote_in(&app, &alan, "pending_approval").await;
    assert_eq!(votable(&as_alan), ["approve"], "{as_alan}");

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
    assert_eq!(
        votable(&first.body),
        Vec::<String>::new(),
        "alan voted: nothing left to vote on"
    );

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
    own.assert_problem(StatusCode::FORBIDDEN, "approval.self_approval");

    let viewer = vote(&app, &linus, &quote, None, approve.clone()).await;
    viewer.assert_problem(StatusCode::FORBIDDEN, "access.denied");

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
    again.assert_problem(StatusCode::CONFLICT, "approval.already_voted");

    // The version read before the first vote is stale now.
    let stale = vote(&app, &alan, &quote, None, approve.clone()).await;
    stale.assert_problem(StatusCode::CONFLICT, "workflow.version_conflict");

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
    outsider.assert_problem(StatusCode::NOT_FOUND, "workflow.not_found");
}

#[tokio::test]
async fn a_delegated_vote_counts_as_the_delegators_and_delegation_refusals() {
    let app = app().await;
    let (grace, alan, ada) = (
        app.token("grace").await,
        app.token("alan").await,
        app.token("ada").await,
    );
    let quote = submitted_quote(&app, &grace).await;
    let delegations = format!("/v1/orgs/{}/delegations", app.acme());
    let ends_at = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();

    // Ada hands her vote to alan, who casts his own and hers: two approvals.
    let delegated = app
        .post(
            &ada,
            &delegations,
            json!({ "to": app.user_id("alan"), "ends_at": ends_at }),
        )
        .await;
    assert_eq!(delegated.status, StatusCode::CREATED, "{delegated:?}");
    assert_eq!(delegated.body["from"], app.user_id("ada").as_str());
    assert_eq!(delegated.body["to"], app.user_id("alan").as_str());
    let own = vote(
        &app,
        &alan,
        &quote,
        None,
        json!({ "transition": "approve", "decision": "approve" }),
    )
    .await;
    assert_eq!(own.body["state"], "pending_approval", "{own:?}");
    let for_ada = vote(
        &app,
        &alan,
        &own.body,
        None,
        json!({ "transition": "approve", "decision": "approve", "on_behalf_of": app.user_id("ada") }),
    )
    .await;
    assert_eq!(for_ada.status, StatusCode::OK, "{for_ada:?}");
    assert_eq!(for_ada.body["state"], "approved", "alan's vote and ada's, cast by alan");

    // A vote on behalf of someone who delegated nothing to the caller is refused.
    let quote = quote_in(&app, &grace, "approved").await;
    let not_delegated = vote(
        &app,
        &ada,
        &quote,
        None,
        json!({ "transition": "approve", "decision": "approve", "on_behalf_of": app.user_id("alan") }),
    )
    .await;
    assert!(not_delegated.status.is_client_error(), "{not_delegated:?}");

    let to_self = app
        .post(
            &ada,
            &delegations,
            json!({ "to": app.user_id("ada"), "ends_at": ends_at }),
        )
        .await;
    assert_eq!(
        (to_self.status, to_self.body["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("to"))
    );
    let backwards = app
        .post(
            &ada,
            &delegations,
            json!({ "to": app.user_id("alan"), "starts_at": ends_at, "ends_at": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(backwards.body["param"], "ends_at", "{backwards:?}");
    let not_a_time = app
        .post(
            &ada,
            &delegations,
            json!({ "to": app.user_id("alan"), "ends_at": "tomorrow" }),
        )
        .await;
    assert_eq!(not_a_time.body["param"], "ends_at", "{not_a_time:?}");
    let outsider = app
        .post(
            &app.token("hedy").await,
            &delegations,
            json!({ "to": app.user_id("alan"), "ends_at": ends_at }),
        )
        .await;
    outsider.assert_problem(StatusCode::NOT_FOUND, "workflow.not_found");
}

#[tokio::test]
async fn staff_under_a_read_only_grant_cannot_create_a_delegation() {
    let app = app().await;
    let staff = app.token("sam").await;
    let acme = app.acme();
    // The grant lets sam read acme.
    let org = app.get(&staff, &format!("/v1/orgs/{acme}")).await;
    assert_eq!(org.status, StatusCode::OK, "{org:?}");
    let ends_at = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let delegated = app
        .post(
            &staff,
            &format!("/v1/orgs/{acme}/delegations"),
            json!({ "to": app.user_id("alan"), "ends_at": ends_at }),
        )
        .await;
    delegated.assert_problem(StatusCode::FORBIDDEN, "access.denied");
}
