//! The sign-in limit's client address: the TCP peer by default (`X-Forwarded-For`
//! ignored); behind a configured trusted proxy, the right-most `X-Forwarded-For` entry
//! that is not a trusted proxy. The limit here is 5 attempts per source.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use portal_http::seed::DEMO_PASSWORD;
use serde_json::json;

use crate::common::{TestApp, app, app_with};

/// A sign-in as grace from the TCP peer `peer`, with `forwarded_for` as
/// `X-Forwarded-For` when given.
async fn sign_in_from(app: &TestApp, peer: &str, forwarded_for: Option<&str>) -> StatusCode {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/sign-in")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = forwarded_for {
        builder = builder.header("x-forwarded-for", value);
    }
    let mut request = builder
        .body(Body::from(
            json!({ "email": "grace@acme.example", "password": DEMO_PASSWORD }).to_string(),
        ))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app.send(request).await.status
}

#[tokio::test]
async fn by_default_the_peer_is_the_source_and_x_forwarded_for_is_ignored() {
    let app = app().await;
    for i in 0..5 {
        let spoofed = format!("198.51.100.{i}");
        assert_eq!(
            sign_in_from(&app, "10.0.0.2:4000", Some(&spoofed)).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        sign_in_from(&app, "10.0.0.2:4001", Some("198.51.100.99")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "a new X-Forwarded-For does not make a new source"
    );
    assert_eq!(
        sign_in_from(&app, "10.0.0.3:4000", None).await,
        StatusCode::OK,
        "another peer is another source"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = app_with(|c| c.http.trusted_proxies = "10.0.0.0/8".parse().unwrap()).await;
    // Five clients behind the proxy 10.0.0.2; the first one also names a fake address
    // of its own, left of what the proxy appended.
    for _ in 0..5 {
        assert_eq!(
            sign_in_from(&app, "10.0.0.2:4000", Some("1.2.3.4, 198.51.100.1")).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        sign_in_from(&app, "10.0.0.2:4000", Some("9.9.9.9, 198.51.100.1")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the client's own entries are not used"
    );
    assert_eq!(
        sign_in_from(&app, "10.0.0.7:4000", Some("198.51.100.1, 10.0.0.2")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same client through two trusted hops is the same source"
    );
    assert_eq!(
        sign_in_from(&app, "10.0.0.2:4000", Some("198.51.100.2")).await,
        StatusCode::OK,
        "another client behind the same proxy"
    );
}

#[tokio::test]
async fn a_peer_outside_the_trusted_proxies_cannot_pick_its_source() {
    let app = app_with(|c| c.http.trusted_proxies = "10.0.0.0/8".parse().unwrap()).await;
    for i in 0..5 {
        let spoofed = format!("198.51.100.{i}");
        assert_eq!(
            sign_in_from(&app, "203.0.113.9:4000", Some(&spoofed)).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        sign_in_from(&app, "203.0.113.9:4000", Some("198.51.100.200")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn an_ipv6_client_is_limited_by_its_64() {
    let app = app().await;
    for i in 1..=5 {
        assert_eq!(
            sign_in_from(&app, &format!("[2001:db8:7:7::{i:x}]:4000"), None).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        sign_in_from(&app, "[2001:db8:7:7:abcd::1]:4000", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "another address of the same /64 is the same source"
    );
    assert_eq!(
        sign_in_from(&app, "[2001:db8:7:8::1]:4000", None).await,
        StatusCode::OK,
        "another /64 is another source"
    );
}
