//! The server's request spans reach the diagnostics journal through `JournalLayer`, as
//! `main` installs it: support sees the HTTP request beside the library's events.

use axum::body::Body;
use axum::http::Request;
use portal_adapters::observability::JournalLayer;
use tracing_subscriber::prelude::*;

use crate::common::app;

#[tokio::test]
async fn request_spans_are_journaled_under_their_request_id() {
    let app = app().await;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(JournalLayer::new(app.background.journal_sink()));
    let _default = tracing::subscriber::set_default(subscriber);
    let token = app.token("alan").await;
    let org = app.acme();
    let answer = app
        .send(
            Request::get(format!("/v1/orgs/{org}/members"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let request_id = answer.header("x-request-id").unwrap().to_owned();
    app.background.flush().await;
    let events = app
        .get(&token, &format!("/v1/orgs/{org}/diagnostics/requests/{request_id}"))
        .await;
    let items = events.body["items"].as_array().unwrap();
    let request = items
        .iter()
        .find(|e| e["kind"] == "request")
        .unwrap_or_else(|| panic!("no request event in {items:?}"));
    assert_eq!(request["name"], "http.request");
    assert_eq!(request["org"], org);
}
