//! Email verification through the router, on SQLite and on Postgres, with the mail
//! exchanged with a real SMTP server (`aiosmtpd`, started by the test; skipped without
//! `PORTAL_TEST_AIOSMTPD_PYTHON`): the link read from the received message verifies the
//! signed-in user's address once; a tampered or malformed token, another user's token and
//! a used one answer their own codes (another user's token stays usable by its user); an
//! API key may not ask; requests are limited per user.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use portal_adapters::mail::{SmtpConfig, SmtpSecurity};
use portal_http::MailSettings;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app_with};
use crate::smtp_sink::{SmtpSink, link_in};

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
        config.verify_link = "https://portal.example/verify-email".to_owned();
        if let Some(url) = database_url {
            config.database_url = url;
        }
    })
    .await
}

async fn confirm(app: &TestApp, session: &str, token: &str) -> Answer {
    app.call(
        session,
        Method::POST,
        "/v1/auth/email-verification/confirm",
        Some(json!({ "token": token })),
    )
    .await
}

async fn ask(app: &TestApp, session: &str) -> Answer {
    app.call(session, Method::POST, "/v1/auth/email-verification", None)
        .await
}

/// The verification flow end to end on `app`, whose mail goes to `sink`.
async fn verify_by_mail(app: &TestApp, sink: &SmtpSink) {
    let email = "grace@acme.example";
    let grace = app.token("grace").await;
    let linus = app.token("linus").await;
    let before = app.get(&grace, "/v1/auth/email").await;
    assert_eq!(before.status, StatusCode::OK, "{before:?}");
    assert_eq!(
        before.body,
        json!({ "email": email, "verified": false, "verified_at": Value::Null })
    );

    let asked = ask(app, &grace).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    let received = sink.wait_for(1).await;
    let message = received.iter().find(|m| m.to == email).expect("a message to grace");
    let link = link_in(&message.text, "token=").expect("a verification link");
    assert!(
        link.starts_with("https://portal.example/verify-email?token=pev_"),
        "{link}"
    );
    assert!(message.html.contains(&link), "the HTML body carries the same link");
    let token = link.split_once("token=").unwrap().1.to_owned();

    let mut tampered = token.clone();
    let last = if tampered.ends_with('0') { "1" } else { "0" };
    tampered.replace_range(tampered.len() - 1.., last);
    confirm(app, &grace, &tampered)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
    confirm(app, &grace, "pev_nope")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
    let stolen = confirm(app, &linus, &token).await;
    stolen.assert_problem(StatusCode::FORBIDDEN, "auth.token_wrong_user");
    assert_eq!(stolen.body["param"], "token", "{stolen:?}");
    assert_eq!(
        app.get(&linus, "/v1/auth/email").await.body["verified"],
        false,
        "linus verified nothing"
    );

    let done = confirm(app, &grace, &token).await;
    assert_eq!(done.status, StatusCode::OK, "grace's token still works: {done:?}");
    assert_eq!(
        (&done.body["email"], &done.body["verified"]),
        (&json!(email), &json!(true))
    );
    let after = app.get(&grace, "/v1/auth/email").await;
    assert_eq!(after.body["verified"], true, "{after:?}");
    assert_eq!(after.body["verified_at"], done.body["verified_at"]);
    confirm(app, &grace, &token)
        .await
        .assert_problem(StatusCode::CONFLICT, "auth.token_used");
}

#[tokio::test]
async fn a_mailed_link_verifies_the_signed_in_users_address_once_on_sqlite() {
    let Some(sink) = SmtpSink::start() else { return };
    let app = app_mailing_to(&sink, None).await;
    verify_by_mail(&app, &sink).await;
}

#[tokio::test]
async fn a_mailed_link_verifies_the_signed_in_users_address_once_on_postgres() {
    let Some(sink) = SmtpSink::start() else { return };
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let app = app_mailing_to(&sink, Some(schema.url().to_owned())).await;
    verify_by_mail(&app, &sink).await;
}

/// Verification requests are limited per user (3 at once, then 1 a minute), and an API
/// key, which is no user, may not ask (refused before any limit counts).
#[tokio::test]
async fn verification_requests_are_limited_per_user_and_refused_to_api_keys() {
    let mail = std::env::temp_dir().join(format!("portal-verify-limit-{}", std::process::id()));
    let app = app_with(|config| config.mail = MailSettings::Folder(mail.clone())).await;
    let grace = app.token("grace").await;
    for _ in 0..3 {
        let asked = ask(&app, &grace).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    }
    let limited = ask(&app, &grace).await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limit.exceeded");
    assert!(limited.header("retry-after").is_some());
    let linus = app.token("linus").await;
    assert_eq!(
        ask(&app, &linus).await.status,
        StatusCode::ACCEPTED,
        "another user has their own limit"
    );

    let ada = app.token("ada").await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .post(
            &ada,
            &format!("/v1/orgs/{}/api-keys", app.acme()),
            json!({ "name": "ci", "scopes": ["cases/* read"], "expires_at": expires }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let key = created.body["key"].as_str().unwrap();
    ask(&app, key)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    app.get(key, "/v1/auth/email")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let _ = std::fs::remove_dir_all(&mail);
}
