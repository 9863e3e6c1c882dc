//! Sign-in throttling through the router: failures count against the account from one
//! source and against the source, so an attacker cannot lock a victim out from elsewhere.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, header};
use portal_http::limiter::SignInLimit;
use portal_http::seed::DEMO_PASSWORD;
use serde_json::json;

use crate::common::{Answer, TestApp, app_with};

/// A sign-in as `email` with `password` from the TCP peer `peer`.
pub(crate) async fn sign_in_from(app: &TestApp, peer: &str, email: &str, password: &str) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/sign-in")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "email": email, "password": password }).to_string()))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app.send(request).await
}

/// A server whose per-source rate limit is out of the way, so the identity service's
/// throttling is what answers.
pub(crate) async fn unlimited() -> TestApp {
    app_with(|c| {
        c.http.sign_in_limit = SignInLimit {
            per_minute: NonZeroU32::new(10_000).unwrap(),
            burst: NonZeroU32::new(10_000).unwrap(),
        };
    })
    .await
}

#[tokio::test]
async fn an_attacker_failing_for_a_victim_does_not_lock_the_victim_out() {
    let app = unlimited().await;
    let victim = app.demo.user("grace").unwrap().email.clone();
    for _ in 0..12 {
        let failed = sign_in_from(&app, "203.0.113.66:5000", &victim, "a guess").await;
        assert_eq!(failed.status, 401, "{failed:?}");
        assert_eq!(failed.code(), "auth.invalid_credentials");
    }
    let attacker = sign_in_from(&app, "203.0.113.66:5001", &victim, DEMO_PASSWORD).await;
    assert_eq!(
        attacker.code(),
        "auth.invalid_credentials",
        "the failing source is refused for that account, even with the right password"
    );
    let signed_in = sign_in_from(&app, "198.51.100.20:6000", &victim, DEMO_PASSWORD).await;
    assert_eq!(
        signed_in.status, 200,
        "the victim, from a source that has not failed, signs in: {signed_in:?}"
    );
}

#[tokio::test]
async fn with_every_hashing_slot_taken_a_sign_in_answers_503_service_busy_with_retry_after() {
    let app = app_with(|c| c.hash_concurrency = Some(1)).await;
    assert_eq!(app.api.identity().hash_limit().permits(), 1);
    let held = app.api.identity().hash_limit().acquire().await.unwrap();
    let busy = app.sign_in_answer("grace").await;
    busy.assert_problem(axum::http::StatusCode::SERVICE_UNAVAILABLE, "service.busy");
    assert_eq!(busy.header("retry-after"), Some("1"), "{busy:?}");
    assert_eq!(busy.body["retryable"], true);
    drop(held);
    let signed_in = app.sign_in_answer("grace").await;
    assert_eq!(signed_in.status, 200, "a slot free again: {signed_in:?}");
}
