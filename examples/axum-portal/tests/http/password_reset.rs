//! Password reset and change through the router, on SQLite and on Postgres, with the mail
//! exchanged with a real SMTP server (`aiosmtpd`, started by the test; skipped without
//! `PORTAL_TEST_AIOSMTPD_PYTHON`): the link read from the received message resets the
//! password once and ends every session; an unknown address gets the same `202`; used,
//! tampered and malformed tokens answer their own codes; requests are limited per address;
//! a password change needs the current password and rotates the caller's session.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portal_adapters::mail::{SmtpConfig, SmtpSecurity};
use portal_http::MailSettings;
use portal_http::seed::DEMO_PASSWORD;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app_with};
use crate::smtp_sink::{SmtpSink, link_in};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn app_mailing_to(sink: &SmtpSink, database_url: Option<String>) -> TestApp {
    let port = sink.port;
    app_with(|config| {
        config.mail = MailSettings::Smtp(SmtpConfig {
            host: "127.0.0.1".to_owned(),
            port,
            security: SmtpSecurity::None,
            credentials: None,
            from: "Portal <no-reply@portal.example>".to_owned(),
            timeout: Duration::from_secs(10),
        });
        config.reset_link = "https://portal.example/reset-password".to_owned();
        if let Some(url) = database_url {
            config.database_url = url;
        }
    })
    .await
}

async fn post_public(app: &TestApp, uri: &str, body: Value) -> Answer {
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Answer {
    post_public(app, "/v1/auth/sign-in", json!({ "email": email, "password": password })).await
}

/// The reset flow end to end on `app`, whose mail goes to `sink`.
async fn reset_by_mail(app: &TestApp, sink: &SmtpSink) {
    let email = "grace@acme.example";
    let old_session = app.token("grace").await;

    let asked = post_public(app, "/v1/auth/password-reset", json!({ "email": email })).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    let unknown = post_public(
        app,
        "/v1/auth/password-reset",
        json!({ "email": "nobody@acme.example" }),
    )
    .await;
    assert_eq!(
        (unknown.status, &unknown.body),
        (asked.status, &asked.body),
        "an address without an account gets the same answer"
    );

    let received = sink.wait_for(2).await;
    let link_mail = received.iter().find(|m| m.to == email).expect("a message to grace");
    let note = received
        .iter()
        .find(|m| m.to == "nobody@acme.example")
        .expect("a note to nobody");
    assert!(link_in(&note.text, "token=").is_none(), "no link to an unknown address");
    let link = link_in(&link_mail.text, "token=").expect("a reset link");
    assert!(
        link.starts_with("https://portal.example/reset-password?token="),
        "{link}"
    );
    let token = link.split_once("token=").unwrap().1.to_owned();

    let weak = post_public(
        app,
        "/v1/auth/password-reset/confirm",
        json!({ "token": token, "password": "short" }),
    )
    .await;
    weak.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let malformed = post_public(
        app,
        "/v1/auth/password-reset/confirm",
        json!({ "token": "prt_nope", "password": NEW_PASSWORD }),
    )
    .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");

    let done = post_public(
        app,
        "/v1/auth/password-reset/confirm",
        json!({ "token": token, "password": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{done:?}");
    let again = post_public(
        app,
        "/v1/auth/password-reset/confirm",
        json!({ "token": token, "password": "yet another passphrase" }),
    )
    .await;
    again.assert_problem(StatusCode::CONFLICT, "auth.token_used");

    let me = app.get(&old_session, "/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "the old session ended: {me:?}");
    assert_eq!(
        sign_in(app, email, DEMO_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sign_in(app, email, NEW_PASSWORD).await.status, StatusCode::OK);
    let notice = sink.wait_for(3).await;
    assert!(
        notice
            .iter()
            .any(|m| m.to == email && m.subject.contains("was changed")),
        "grace is told her password changed: {notice:?}"
    );
}

#[tokio::test]
async fn a_mailed_reset_link_resets_the_password_once_on_sqlite() {
    let Some(sink) = SmtpSink::start() else { return };
    let app = app_mailing_to(&sink, None).await;
    reset_by_mail(&app, &sink).await;
}

#[tokio::test]
async fn a_mailed_reset_link_resets_the_password_once_on_postgres() {
    let Some(sink) = SmtpSink::start() else { return };
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let app = app_mailing_to(&sink, Some(schema.url().to_owned())).await;
    reset_by_mail(&app, &sink).await;
}

#[tokio::test]
async fn reset_requests_are_limited_per_address() {
    let app = app_with(|_| {}).await;
    for _ in 0..3 {
        let asked = post_public(
            &app,
            "/v1/auth/password-reset",
            json!({ "email": "linus@acme.example" }),
        )
        .await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    }
    let limited = post_public(
        &app,
        "/v1/auth/password-reset",
        json!({ "email": "LINUS@acme.example" }),
    )
    .await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limit.exceeded");
    assert!(limited.header("retry-after").is_some());
    let bad = post_public(&app, "/v1/auth/password-reset", json!({ "email": "not an address" })).await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_rotates_the_session() {
    let app = app_with(|_| {}).await;
    let token = app.token("grace").await;
    let wrong = app
        .call(
            &token,
            Method::POST,
            "/v1/auth/password",
            Some(json!({ "current_password": "not my password", "new_password": NEW_PASSWORD })),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    let changed = app
        .call(
            &token,
            Method::POST,
            "/v1/auth/password",
            Some(json!({ "current_password": DEMO_PASSWORD, "new_password": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let new_token = changed.body["session_token"]
        .as_str()
        .expect("a bearer caller gets the new token");
    assert_eq!(app.get(&token, "/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(new_token, "/v1/auth/me").await.status, StatusCode::OK);
    assert_eq!(
        sign_in(&app, "grace@acme.example", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}
