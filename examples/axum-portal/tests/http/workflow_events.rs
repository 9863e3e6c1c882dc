//! Workflow changes in the customer audit log and in webhooks, through the real router on
//! SQLite (a file) and Postgres: creating a case, triaging it (twice under one key),
//! assigning it and voting on a quote each write their event with the actor and targets;
//! another org sees none of them; an endpoint subscribed to `workflow.transitioned` gets
//! the transition delivered to a receiver that verifies it with the `standardwebhooks`
//! crate, and no other workflow event.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{TestApp, app_with};
use crate::webhooks::receiver;

/// Every event of `org` with `action`, as `token` reads the log.
async fn events(app: &TestApp, token: &str, org: &str, action: &str) -> Vec<Value> {
    let answer = app
        .get(token, &format!("/v1/orgs/{org}/audit-events?limit=100&action={action}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"].as_array().unwrap().clone()
}

/// The one event of acme with `action` about the workflow `id`.
async fn the_event(app: &TestApp, token: &str, action: &str, id: &str) -> Value {
    let found: Vec<Value> = events(app, token, &app.acme(), action)
        .await
        .into_iter()
        .filter(|e| e["targets"].as_array().unwrap().iter().any(|t| t["id"] == id))
        .collect();
    assert_eq!(found.len(), 1, "{action} about {id}: {found:?}");
    found[0].clone()
}

async fn workflow_changes_reach_the_log_and_webhooks(database_url: String) {
    let app = app_with(|config| {
        config.database_url = database_url;
        config.webhooks.allowed_hosts = vec!["127.0.0.1".to_owned()];
        config.webhooks.deliver = true;
        config.webhooks.delivery.poll_interval = Duration::from_millis(50);
    })
    .await;
    let (addr, receiver) = receiver().await;
    let (ada, alan, grace, hedy) = (
        app.token("ada").await,
        app.token("alan").await,
        app.token("grace").await,
        app.token("hedy").await,
    );
    let (acme, grace_id) = (app.acme(), app.user_id("grace"));
    let made = app
        .post(
            &ada,
            &format!("/v1/orgs/{acme}/webhook-endpoints"),
            json!({ "url": format!("http://{addr}/hook"), "event_types": ["workflow.transitioned"] }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    *receiver.verifier.lock().unwrap() =
        Some(standardwebhooks::Webhook::new(made.body["secret"].as_str().unwrap()).unwrap());

    // Created by grace.
    let created = app
        .post(
            &grace,
            &format!("/v1/orgs/{acme}/workflows"),
            json!({ "definition": "support_case", "payload": { "subject": "Secret printer trouble" } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let event = the_event(&app, &ada, "workflow.created", &id).await;
    assert_eq!(event["actor"]["id"], grace_id.as_str());
    assert_eq!(event["actor"]["type"], "user");
    assert_eq!(event["actor"]["name"], "Grace Hopper");
    assert_eq!(event["metadata"]["definition"], "support_case");
    assert_eq!(event["metadata"]["state"], "open");
    assert!(
        !event.to_string().contains("Secret printer trouble"),
        "the payload is not in the event: {event}"
    );

    // Triaged by grace under a key; the retry replays and writes no second event.
    let uri = format!("/v1/orgs/{acme}/workflows/{id}/transitions/triage");
    let body = json!({ "input": { "priority": "p2" } });
    for _ in 0..2 {
        let triaged = app
            .send_conditional(Method::POST, &uri, &grace, Some("\"1\""), Some("triage-once"), &body)
            .await;
        assert_eq!(triaged.status, StatusCode::OK, "{triaged:?}");
    }
    let event = the_event(&app, &ada, "workflow.transitioned", &id).await;
    assert_eq!(event["actor"]["id"], grace_id.as_str());
    assert_eq!(event["version"], 1);
    assert_eq!(
        event["metadata"],
        json!({ "definition": "support_case", "transition": "triage", "from": "open", "to": "triaged", "version": 2 })
    );
    // A refused transition (stale version) writes nothing.
    let stale = app
        .send_conditional(Method::POST, &uri, &grace, Some("\"1\""), None, &body)
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{stale:?}");
    the_event(&app, &ada, "workflow.transitioned", &id).await;

    // Assigned by the owner.
    let assigned = app
        .send_conditional(
            Method::PUT,
            &format!("/v1/orgs/{acme}/workflows/{id}/assignee"),
            &ada,
            Some("\"2\""),
            None,
            &json!({ "assignee": grace_id }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");
    let event = the_event(&app, &ada, "workflow.assigned", &id).await;
    assert_eq!(event["actor"]["name"], "Ada Lovelace");
    assert!(
        event["targets"]
            .as_array()
            .unwrap()
            .contains(&json!({ "type": "user", "id": grace_id })),
        "{event}"
    );
    assert_eq!(event["metadata"]["assignee"], grace_id.as_str());
    assert_eq!(event["metadata"]["previous"], Value::Null);

    // A vote on the demo quote, submitted by grace, cast by alan.
    let quotes = app
        .get(
            &grace,
            &format!("/v1/orgs/{acme}/workflows?definition=quote_approval&state=draft"),
        )
        .await;
    let quote = quotes.body["items"][0].clone();
    let quote_id = quote["id"].as_str().unwrap().to_owned();
    let submitted = app
        .send_conditional(
            Method::POST,
            &format!("/v1/orgs/{acme}/workflows/{quote_id}/transitions/submit"),
            &grace,
            Some(&format!("\"{}\"", quote["version"])),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(submitted.status, StatusCode::OK, "{submitted:?}");
    let voted = app
        .send_conditional(
            Method::POST,
            &format!("/v1/orgs/{acme}/workflows/{quote_id}/votes"),
            &alan,
            Some(&format!("\"{}\"", submitted.body["version"])),
            None,
            &json!({ "transition": "approve", "decision": "approve" }),
        )
        .await;
    assert_eq!(voted.status, StatusCode::OK, "{voted:?}");
    let event = the_event(&app, &ada, "workflow.voted", &quote_id).await;
    assert_eq!(event["actor"]["id"], app.user_id("alan").as_str());
    assert_eq!(event["metadata"]["decision"], "approve");
    assert_eq!(event["metadata"]["transition"], "approve");
    assert_eq!(
        event["metadata"]["fired"],
        Value::Null,
        "one of two votes fires nothing"
    );

    // Another org sees none of it, and cannot read acme's log.
    let globex = app.globex();
    for action in [
        "workflow.created",
        "workflow.transitioned",
        "workflow.assigned",
        "workflow.voted",
    ] {
        let theirs = events(&app, &hedy, &globex, action).await;
        assert!(
            !theirs
                .iter()
                .any(|e| e.to_string().contains(&id) || e.to_string().contains(&quote_id)),
            "{theirs:?}"
        );
    }
    app.get(&hedy, &format!("/v1/orgs/{acme}/audit-events"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "org.not_found");

    // The subscribed endpoint gets the two transitions (triage, submit), verified, and
    // nothing else.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received.lock().unwrap().verified.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A moment more, in case anything else was (wrongly) queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received.lock().unwrap();
    let mut got: Vec<(String, String)> = received
        .verified
        .iter()
        .map(|(_, body)| {
            assert_eq!(body["type"], "workflow.transitioned", "{body}");
            (
                body["data"]["targets"][0]["id"].as_str().unwrap().to_owned(),
                body["data"]["metadata"]["transition"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    got.dedup();
    let mut want = vec![
        (id.clone(), "triage".to_owned()),
        (quote_id.clone(), "submit".to_owned()),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn workflow_changes_reach_the_audit_log_and_webhooks_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("portal-workflow-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.db");
    let _ = std::fs::remove_file(&file);
    workflow_changes_reach_the_log_and_webhooks(format!("sqlite://{}", file.display())).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn workflow_changes_reach_the_audit_log_and_webhooks_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    workflow_changes_reach_the_log_and_webhooks(schema.url().to_owned()).await;
    schema.drop().await.expect("drop the schema");
}
