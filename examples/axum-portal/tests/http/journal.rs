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
    // Other tests in this binary reach the `http.request` span with no subscriber, at
    // the same time: `capture` makes sure this one still hears it.
    let _capture = portal_core::testing::tracing_capture::capture(subscriber);
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

/// On a SQLite file the journal is a database of its own beside it
/// (`JournalPlacement::Beside`): a read's events are in the journal's file, none in the
/// portal's, and triage reads them back over HTTP. The read of one instance records
/// `auth.session`, `access.check` and one `workflow.view` (the read and the caller's
/// transitions in one event).
#[tokio::test]
async fn on_a_sqlite_file_the_journal_is_a_file_of_its_own() {
    use portal_adapters::sqlite::SqliteJournal;
    use portal_core::diagnostics::{Journal as _, RequestQuery};
    use portal_http::wiring::Database;

    let dir = std::env::temp_dir().join(format!("portal-journal-beside-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("portal.db");
    let url = format!("sqlite://{}", data.display());
    let app = crate::common::app_with(|config| config.database_url = url.clone()).await;
    assert!(
        dir.join("portal.journal.db").exists(),
        "the journal's file is beside the portal's"
    );

    let token = app.token("alan").await;
    let org = app.acme();
    let list = app.get(&token, &format!("/v1/orgs/{org}/workflows")).await;
    let case = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let read = app.get(&token, &format!("/v1/orgs/{org}/workflows/{case}")).await;
    assert_eq!(read.status, axum::http::StatusCode::OK, "{read:?}");
    let request_id = read.header("x-request-id").unwrap().to_owned();
    app.background.flush().await;

    let (Database::Sqlite(portal), Some(Database::Sqlite(journal))) =
        (app.background.database(), app.background.journal_database())
    else {
        panic!("a SQLite file gives the journal a SQLite database of its own")
    };
    let query = RequestQuery::first(request_id.parse().unwrap(), 100);
    let in_portal = SqliteJournal::new(portal.clone()).by_request(&query).await.unwrap();
    assert!(in_portal.is_empty(), "no event in the portal's file: {in_portal:?}");
    let in_journal = SqliteJournal::new(journal.clone()).by_request(&query).await.unwrap();
    let mut names: Vec<_> = in_journal.iter().map(|e| e.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["access.check", "auth.session", "workflow.view"]);
    let view = in_journal.iter().find(|e| e.name == "workflow.view").unwrap();
    assert_eq!(view.detail["id"], case);

    let events = app
        .get(&token, &format!("/v1/orgs/{org}/diagnostics/requests/{request_id}"))
        .await;
    let items = events.body["items"].as_array().unwrap();
    assert!(
        items.iter().any(|e| e["name"] == "workflow.view"),
        "triage reads the journal's file: {items:?}"
    );
    app.background.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
