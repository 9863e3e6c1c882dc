//! The edge: `X-Request-Id` in and out, unknown routes and methods, the body limit.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::common::{app, app_with};

/// Stripe's model (issue 18): the server always mints the request id. A client's
/// well-formed `X-Request-Id` is kept as its client request id: echoed in
/// `X-Client-Request-Id` and recorded on the request's events, never the request's id, so
/// no client can file its events under another principal's request. Anything else is
/// dropped.
#[tokio::test]
async fn the_server_mints_every_request_id_and_keeps_the_clients_aside() {
    let app = app().await;
    let first = app.send(Request::get("/v1/auth/me").body(Body::empty()).unwrap()).await;
    let generated = first.header("x-request-id").unwrap().to_owned();
    assert!(generated.starts_with("req_"));
    assert_eq!(first.body["request_id"], generated);
    assert_eq!(first.header("x-client-request-id"), None, "the client sent none");

    // Even an id the server itself minted is not reused.
    let replayed = app
        .send(
            Request::get("/v1/auth/me")
                .header("x-request-id", &generated)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let minted = replayed.header("x-request-id").unwrap().to_owned();
    assert!(minted.starts_with("req_") && minted != generated, "{replayed:?}");
    assert_eq!(replayed.body["request_id"], minted.as_str());
    assert_eq!(replayed.header("x-client-request-id"), Some(generated.as_str()));

    // A client's own id (a UUID here), on a success: kept aside and on the events.
    let token = app.token("ada").await;
    let mine = "3f1c2b9e-6a4d-4c1b-9f0e-7d2a5b8c9e01";
    let mut ids = Vec::new();
    for _ in 0..2 {
        let ok = app
            .send(
                Request::get(format!("/v1/orgs/{}/members", app.acme()))
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header("x-request-id", mine)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.header("x-client-request-id"), Some(mine), "successes echo it too");
        let id = ok.header("x-request-id").unwrap().to_owned();
        assert_ne!(id, mine);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "one client id, two requests, two request ids");
    app.background.flush().await;
    let events = app
        .get(
            &token,
            &format!("/v1/orgs/{}/diagnostics/requests/{}", app.acme(), ids[0]),
        )
        .await;
    let items = events.body["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{events:?}");
    assert!(
        items.iter().all(|e| e["client_request_id"] == mine),
        "the client's id is on every event: {items:?}"
    );
    let by_client_id = app
        .get(&token, &format!("/v1/orgs/{}/diagnostics/requests/{mine}", app.acme()))
        .await;
    assert_eq!(
        by_client_id.code(),
        "validation.invalid_field",
        "not a key of the journal"
    );

    let injected = app
        .send(
            Request::get("/v1/auth/me")
                .header("x-request-id", "'; drop table users; --")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let replaced = injected.header("x-request-id").unwrap();
    assert!(replaced.starts_with("req_") && replaced != generated);
    assert_eq!(
        injected.header("x-client-request-id"),
        None,
        "a malformed id is dropped"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = app().await;
    let missing = app
        .send(Request::get("/v1/nothing-here").body(Body::empty()).unwrap())
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "route.not_found");
    let method = app
        .send(Request::put("/v1/auth/sign-in").body(Body::empty()).unwrap())
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.code(), "request.method_not_allowed");
    assert!(method.header("allow").unwrap().contains("POST"));
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = app_with(|c| c.http.body_limit = 1024).await;
    let token = app.token("ada").await;
    let big = json!({ "slug": "big", "name": "x".repeat(4096) }).to_string();
    // Announced by Content-Length: refused before the body is read.
    let announced = app
        .send(
            Request::post("/v1/orgs")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, big.len())
                .body(Body::from(big.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(announced.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(announced.code(), "request.too_large");
    // Streamed without a length: refused while reading.
    let streamed = app
        .send(
            Request::post("/v1/orgs")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(big)])))
                .unwrap(),
        )
        .await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(streamed.code(), "request.too_large");
    let small = app
        .post(&token, "/v1/orgs", json!({ "slug": "small", "name": "Small" }))
        .await;
    assert_eq!(small.status, StatusCode::CREATED);
}

#[tokio::test]
async fn seeding_twice_finds_the_demo_data_made_the_first_time() {
    let app = app().await;
    assert!(app.demo.created);
    let again = portal_http::seed::seed_demo(&app.api).await.expect("a second seed");
    assert!(!again.created);
    assert_eq!((again.acme, again.globex), (app.demo.acme, app.demo.globex));
    let ids = |demo: &portal_http::seed::DemoData| demo.users.iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&app.demo));
    // Nothing was made twice: acme still has its four members and six workflows.
    let token = app.token("ada").await;
    let members = app.get(&token, &format!("/v1/orgs/{}/members", app.acme())).await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 4);
    let cases = app.get(&token, &format!("/v1/orgs/{}/workflows", app.acme())).await;
    assert_eq!(cases.body["items"].as_array().unwrap().len(), 6);
}
