//! The edge: `X-Request-Id` in and out, unknown routes and methods, the body limit.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::common::{app, app_with};

#[tokio::test]
async fn a_valid_request_id_is_echoed_and_anything_else_replaced() {
    let app = app().await;
    let first = app.send(Request::get("/v1/auth/me").body(Body::empty()).unwrap()).await;
    let generated = first.header("x-request-id").unwrap().to_owned();
    assert!(generated.starts_with("req_"));
    assert_eq!(first.body["request_id"], generated);

    let echoed = app
        .send(
            Request::get("/v1/auth/me")
                .header("x-request-id", &generated)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(echoed.header("x-request-id").unwrap(), generated);
    assert_eq!(echoed.body["request_id"], generated);

    let token = app.token("ada").await;
    let ok = app
        .send(
            Request::get("/v1/auth/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header("x-request-id", &generated)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-request-id").unwrap(), generated, "successes carry it too");

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
