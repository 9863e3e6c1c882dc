//! Change of email through the router, on SQLite and on Postgres, with the mail exchanged
//! with a real SMTP server (`aiosmtpd`, started by the test; skipped without
//! `PORTAL_TEST_AIOSMTPD_PYTHON`): the user's own address is refused; an address that has
//! an account gets the same answer (and a note, no link); the link read from the
//! message sent to the new address switches the account once (sign-in moves to the new
//! address, the old one gets a notice without a link); tampered, malformed, another user's
//! and used tokens answer their own codes. Without SMTP: the password check is the
//! sign-in throttle's, and API keys may not ask.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portal_adapters::mail::{SmtpConfig, SmtpSecurity};
use portal_http::MailSettings;
use portal_http::seed::DEMO_PASSWORD;
use portal_http::test_schema::TestSchema;
use serde_json::json;

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
        config.email_change_link = "https://portal.example/confirm-email-change".to_owned();
        // Every sign-in of these tests comes from one source: room for the owners who
        // read the audit log at the end (the account throttle is what is tested here).
        config.http.sign_in_limit = portal_http::limiter::SignInLimit {
            per_minute: std::num::NonZeroU32::new(60).unwrap(),
            burst: std::num::NonZeroU32::new(20).unwrap(),
        };
        if let Some(url) = database_url {
            config.database_url = url;
        }
    })
    .await
}

async fn ask(app: &TestApp, session: &str, email: &str, password: &str) -> Answer {
    app.post(
        session,
        "/v1/auth/email-change",
        json!({ "email": email, "current_password": password }),
    )
    .await
}

async fn confirm(app: &TestApp, session: &str, token: &str) -> Answer {
    app.post(session, "/v1/auth/email-change/confirm", json!({ "token": token }))
        .await
}

async fn sign_in_with(app: &TestApp, email: &str, password: &str) -> Answer {
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/sign-in")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "email": email, "password": password }).to_string()))
            .unwrap(),
    )
    .await
}

async fn sign_in(app: &TestApp, email: &str) -> Answer {
    sign_in_with(app, email, DEMO_PASSWORD).await
}

/// The change flow end to end on `app`, whose mail goes to `sink`.
async fn change_by_mail(app: &TestApp, sink: &SmtpSink) {
    let old = "grace@acme.example";
    let new = "grace.hopper@navy.example";
    let grace = app.token("grace").await;
    let linus = app.token("linus").await;
    let linus_email = app.get(&linus, "/v1/auth/email").await.body["email"]
        .as_str()
        .unwrap()
        .to_owned();

    // The user's own address (in any case) is no new one. (A user may ask 3 times at once.)
    let own = ask(app, &grace, " Grace@ACME.example ", DEMO_PASSWORD).await;
    own.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(own.body["param"], "email", "{own:?}");

    // An address that has an account: the same answer, a note to it, a notice to grace.
    let taken = ask(app, &grace, &linus_email.to_uppercase(), DEMO_PASSWORD).await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{taken:?}");
    let received = sink.wait_for(2).await;
    let note = received.iter().find(|m| m.to == linus_email).expect("a note to linus");
    assert!(
        link_in(&note.text, "token=").is_none(),
        "no link to an address that has an account"
    );
    assert!(note.text.contains("already has an account"), "{}", note.text);

    // A free address gets the link (and retires the earlier request).
    let asked = ask(app, &grace, &new.to_uppercase(), DEMO_PASSWORD).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    assert_eq!(asked.body, taken.body, "the same answer for a taken address");
    let received = sink.wait_for(4).await;
    let notices: Vec<_> = received.iter().filter(|m| m.to == old).collect();
    assert_eq!(notices.len(), 2, "grace's address is told of each request");
    for notice in &notices {
        assert!(link_in(&notice.text, "token=").is_none(), "a notice carries no link");
        assert!(!notice.html.contains("pec_"), "nor a token");
    }
    assert!(
        notices.iter().any(|n| n.text.contains(new)),
        "the notice names the new address"
    );
    let message = received
        .iter()
        .find(|m| m.to == new)
        .expect("a message to the new address");
    let link = link_in(&message.text, "token=").expect("a change link");
    assert!(
        link.starts_with("https://portal.example/confirm-email-change?token=pec_"),
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
    confirm(app, &grace, "pec_nope")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
    let stolen = confirm(app, &linus, &token).await;
    stolen.assert_problem(StatusCode::FORBIDDEN, "auth.token_wrong_user");
    assert_eq!(stolen.body["param"], "token", "{stolen:?}");
    assert_eq!(
        app.get(&linus, "/v1/auth/email").await.body["email"],
        json!(linus_email),
        "linus changed nothing"
    );

    let done = confirm(app, &grace, &token).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(
        (&done.body["email"], &done.body["verified"]),
        (&json!(new), &json!(true))
    );
    let after = app.get(&grace, "/v1/auth/email").await;
    assert_eq!(after.status, StatusCode::OK, "the session is kept: {after:?}");
    assert_eq!(after.body["email"], new);
    assert_eq!(after.body["verified"], true);
    confirm(app, &grace, &token)
        .await
        .assert_problem(StatusCode::CONFLICT, "auth.token_used");

    sign_in(app, old)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    let signed_in = sign_in(app, new).await;
    assert_eq!(
        signed_in.status,
        StatusCode::OK,
        "the new address signs in: {signed_in:?}"
    );

    // Grace's org audits the change once (the refused confirmations wrote nothing), by
    // her, with both addresses; an org she does not belong to sees nothing.
    let (acme, globex) = (app.acme(), app.globex());
    let ada = app.token("ada").await;
    let audited = app
        .get(&ada, &format!("/v1/orgs/{acme}/audit-events?action=user.email_changed"))
        .await;
    let items = audited.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{audited:?}");
    assert_eq!(items[0]["actor"]["id"], json!(app.user_id("grace")));
    assert_eq!(
        items[0]["targets"],
        json!([{ "type": "user", "id": app.user_id("grace") }])
    );
    assert_eq!(items[0]["metadata"], json!({ "before": old, "after": new }));
    let hedy = app.token("hedy").await;
    let elsewhere = app
        .get(
            &hedy,
            &format!("/v1/orgs/{globex}/audit-events?action=user.email_changed"),
        )
        .await;
    assert_eq!(elsewhere.body["items"], json!([]), "{elsewhere:?}");
}

#[tokio::test]
async fn a_link_mailed_to_the_new_address_changes_it_once_on_sqlite() {
    let Some(sink) = SmtpSink::start() else { return };
    let app = app_mailing_to(&sink, None).await;
    change_by_mail(&app, &sink).await;
}

#[tokio::test]
async fn a_link_mailed_to_the_new_address_changes_it_once_on_postgres() {
    let Some(sink) = SmtpSink::start() else { return };
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let app = app_mailing_to(&sink, Some(schema.url().to_owned())).await;
    change_by_mail(&app, &sink).await;
}

/// A wrong password in a change request is a failed sign-in: after failures of sign-in and of change requests from one source
/// reach the throttle's limit, even the right password is refused there. An API key,
/// which is no user, may not ask or confirm.
#[tokio::test]
async fn a_change_request_is_throttled_like_a_sign_in_and_refused_to_api_keys() {
    let mail = std::env::temp_dir().join(format!("portal-email-change-{}", std::process::id()));
    let app = app_with(|config| config.mail = MailSettings::Folder(mail.clone())).await;
    let grace = app.token("grace").await;
    let ada = app.token("ada").await;
    // The sign-in throttle refuses a source after 5 failures for an account: 3 sign-ins
    // and 2 change requests here (a user may ask 3 times at once).
    for _ in 0..3 {
        let wrong = sign_in_with(&app, "grace@acme.example", "not my password").await;
        wrong.assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    }
    for _ in 0..2 {
        ask(&app, &grace, "grace.new@acme.example", "not my password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    }
    ask(&app, &grace, "grace.new@acme.example", DEMO_PASSWORD)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    assert_eq!(
        app.get(&grace, "/v1/auth/email").await.body["email"],
        "grace@acme.example",
        "nothing changed"
    );

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
    ask(&app, key, "ci@acme.example", DEMO_PASSWORD)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    confirm(&app, key, "pec_nope")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let _ = std::fs::remove_dir_all(&mail);
}
