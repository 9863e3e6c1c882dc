//! Sign-up through the router, on SQLite and on Postgres, with the mail exchanged with a
//! real SMTP server (`aiosmtpd`, started by the test; skipped without
//! `PORTAL_TEST_AIOSMTPD_PYTHON`): under the open policy the link read from the received
//! message creates the account once (address verified, signed in); an address with an
//! account gets the same `202` and a note without a link; under the default policy
//! (invitation only) a request gets a note, and an invitation creates the account of its
//! address and joins it; under the domain policy a new user of a claimed domain joins
//! its org and another domain gets the note.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portal_adapters::mail::{SmtpConfig, SmtpSecurity};
use portal_auth::identity::SignUpPolicy;
use portal_http::MailSettings;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app_with};
use crate::smtp_sink::{SmtpSink, link_in};

const PASSWORD: &str = "a brand new passphrase";

async fn app_mailing_to(sink: &SmtpSink, database_url: Option<String>, policy: SignUpPolicy) -> TestApp {
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
        config.sign_up_link = "https://portal.example/sign-up".to_owned();
        config.sign_up_policy = policy;
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

/// The token of the sign-up link in the message to `to`.
fn token_mailed_to(received: &[crate::smtp_sink::Received], to: &str) -> String {
    let message = received.iter().find(|m| m.to == to).expect("a message to the address");
    let link = link_in(&message.text, "token=").expect("a sign-up link");
    assert!(link.starts_with("https://portal.example/sign-up?token=psu_"), "{link}");
    link.split_once("token=").unwrap().1.to_owned()
}

/// Open sign-up end to end on `app`, whose mail goes to `sink`.
async fn open_sign_up_by_mail(app: &TestApp, sink: &SmtpSink) {
    let email = "margaret@hamilton.example";
    let asked = post_public(app, "/v1/auth/sign-up", json!({ "email": email })).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    let existing = post_public(app, "/v1/auth/sign-up", json!({ "email": "grace@acme.example" })).await;
    assert_eq!(
        (existing.status, &existing.body),
        (asked.status, &asked.body),
        "an address with an account gets the same answer"
    );
    let received = sink.wait_for(2).await;
    let note = received
        .iter()
        .find(|m| m.to == "grace@acme.example")
        .expect("a note to grace");
    assert!(
        link_in(&note.text, "token=").is_none(),
        "no link for an existing account"
    );
    assert!(note.text.contains("already has one"), "{}", note.text);
    let token = token_mailed_to(&received, email);

    let weak = post_public(
        app,
        "/v1/auth/sign-up/confirm",
        json!({ "token": token, "display_name": "Margaret", "password": "short" }),
    )
    .await;
    weak.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let malformed = post_public(
        app,
        "/v1/auth/sign-up/confirm",
        json!({ "token": "psu_nope", "display_name": "Margaret", "password": PASSWORD }),
    )
    .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
    let mut tampered = token.clone();
    tampered.replace_range(10..11, if &token[10..11] == "a" { "b" } else { "a" });
    let tampered = post_public(
        app,
        "/v1/auth/sign-up/confirm",
        json!({ "token": tampered, "display_name": "Margaret", "password": PASSWORD }),
    )
    .await;
    tampered.assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");

    let done = post_public(
        app,
        "/v1/auth/sign-up/confirm",
        json!({ "token": token, "display_name": "Margaret Hamilton", "password": PASSWORD }),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert!(done.header("set-cookie").is_some(), "the session cookie is set");
    let session = done.body["session_token"].as_str().expect("a session").to_owned();
    let me = app.get(&session, "/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["user"]["email"], email);
    assert_eq!(me.body["user"]["display_name"], "Margaret Hamilton");
    let status = app.get(&session, "/v1/auth/email").await;
    assert_eq!(status.body["verified"], true, "the link proved the address: {status:?}");

    let again = post_public(
        app,
        "/v1/auth/sign-up/confirm",
        json!({ "token": token, "display_name": "Someone Else", "password": "another passphrase here" }),
    )
    .await;
    again.assert_problem(StatusCode::CONFLICT, "auth.token_used");
    let signed_in = post_public(app, "/v1/auth/sign-in", json!({ "email": email, "password": PASSWORD })).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");

    // Now the address has an account: asking again mails the note, not a link.
    let asked = post_public(app, "/v1/auth/sign-up", json!({ "email": email })).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let received = sink.wait_for(3).await;
    let last = received
        .iter()
        .filter(|m| m.to == email)
        .nth(1)
        .expect("a second message");
    assert!(link_in(&last.text, "token=").is_none(), "{}", last.text);
}

#[tokio::test]
async fn an_open_sign_up_link_creates_the_account_once_on_sqlite() {
    let Some(sink) = SmtpSink::start() else { return };
    let app = app_mailing_to(&sink, None, SignUpPolicy::Open).await;
    open_sign_up_by_mail(&app, &sink).await;
}

#[tokio::test]
async fn an_open_sign_up_link_creates_the_account_once_on_postgres() {
    let Some(sink) = SmtpSink::start() else { return };
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let app = app_mailing_to(&sink, Some(schema.url().to_owned()), SignUpPolicy::Open).await;
    open_sign_up_by_mail(&app, &sink).await;
}

/// Invitation only: a request is answered with the note; an invitation creates the
/// account of its address, joins it and signs it in, once.
async fn invitation_only(app: &TestApp, sink: &SmtpSink) {
    let asked = post_public(app, "/v1/auth/sign-up", json!({ "email": "walk.in@acme.example" })).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    let received = sink.wait_for(1).await;
    assert_eq!(received[0].to, "walk.in@acme.example");
    assert!(
        link_in(&received[0].text, "token=").is_none(),
        "no link without an invitation"
    );
    assert!(received[0].text.contains("invitation"), "{}", received[0].text);

    let acme = app.acme();
    let ada = app.token("ada").await;
    let invited = app
        .post(
            &ada,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "katherine@acme.example", "roles": ["admin"] }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let token = invited.body["token"].as_str().unwrap().to_owned();

    let unknown = post_public(
        app,
        "/v1/auth/sign-up/invitation",
        json!({ "token": "inv_nope", "display_name": "K", "password": PASSWORD }),
    )
    .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "invitation.not_found");
    let weak = post_public(
        app,
        "/v1/auth/sign-up/invitation",
        json!({ "token": token, "display_name": "Katherine Johnson", "password": "short" }),
    )
    .await;
    weak.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let done = post_public(
        app,
        "/v1/auth/sign-up/invitation",
        json!({ "token": token, "display_name": "Katherine Johnson", "password": PASSWORD }),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    let session = done.body["session_token"].as_str().unwrap().to_owned();
    let me = app.get(&session, "/v1/auth/me").await;
    assert_eq!(me.body["user"]["email"], "katherine@acme.example");
    assert_eq!(me.body["org"], acme, "the one org is the session's: {me:?}");
    let roles = &me.body["orgs"][0]["roles"];
    assert_eq!(roles, &json!(["admin"]), "the invitation's roles: {me:?}");
    let status = app.get(&session, "/v1/auth/email").await;
    assert_eq!(status.body["verified"], true, "{status:?}");

    let again = post_public(
        app,
        "/v1/auth/sign-up/invitation",
        json!({ "token": token, "display_name": "Katherine Johnson", "password": PASSWORD }),
    )
    .await;
    again.assert_problem(StatusCode::CONFLICT, "invitation.already_used");

    // An invited address that has an account signs in and accepts instead.
    let hedy = app.token("hedy").await;
    let second = app
        .post(
            &hedy,
            &format!("/v1/orgs/{}/invitations", app.globex()),
            json!({ "email": "katherine@acme.example", "roles": ["viewer"] }),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{second:?}");
    let token = second.body["token"].as_str().unwrap();
    let taken = post_public(
        app,
        "/v1/auth/sign-up/invitation",
        json!({ "token": token, "display_name": "Impostor", "password": PASSWORD }),
    )
    .await;
    taken.assert_problem(StatusCode::CONFLICT, "user.email_taken");
}

#[tokio::test]
async fn invitation_only_sign_up_mails_a_note_and_an_invitation_creates_the_account_on_sqlite() {
    let Some(sink) = SmtpSink::start() else { return };
    let app = app_mailing_to(&sink, None, SignUpPolicy::InvitationOnly).await;
    invitation_only(&app, &sink).await;
}

#[tokio::test]
async fn invitation_only_sign_up_mails_a_note_and_an_invitation_creates_the_account_on_postgres() {
    let Some(sink) = SmtpSink::start() else { return };
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let app = app_mailing_to(&sink, Some(schema.url().to_owned()), SignUpPolicy::InvitationOnly).await;
    invitation_only(&app, &sink).await;
}

#[tokio::test]
async fn a_claimed_domain_signs_up_into_its_org_and_another_domain_gets_the_note() {
    let Some(sink) = SmtpSink::start() else { return };
    let file = std::env::temp_dir().join(format!(
        "portal-sign-up-{}-{}.db",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    let url = format!("sqlite://{}", file.display());
    // The first server seeds the demo orgs; the second claims acme's domain for acme.
    let seeded = app_mailing_to(&sink, Some(url.clone()), SignUpPolicy::InvitationOnly).await;
    let acme = seeded.demo.acme;
    drop(seeded);
    let claims = [("acme.example".to_owned(), acme)].into_iter().collect();
    let app = app_mailing_to(&sink, Some(url), SignUpPolicy::Domains(claims)).await;

    for email in ["dorothy@acme.example", "eve@elsewhere.example"] {
        let asked = post_public(&app, "/v1/auth/sign-up", json!({ "email": email })).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
    }
    let received = sink.wait_for(2).await;
    let other = received
        .iter()
        .find(|m| m.to == "eve@elsewhere.example")
        .expect("a note to eve");
    assert!(
        link_in(&other.text, "token=").is_none(),
        "no link for an unclaimed domain"
    );
    let token = token_mailed_to(&received, "dorothy@acme.example");
    let done = post_public(
        &app,
        "/v1/auth/sign-up/confirm",
        json!({ "token": token, "display_name": "Dorothy Vaughan", "password": PASSWORD }),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    let session = done.body["session_token"].as_str().unwrap().to_owned();
    let me = app.get(&session, "/v1/auth/me").await;
    assert_eq!(me.body["org"], acme.to_string(), "joined the claiming org: {me:?}");
    assert_eq!(me.body["orgs"][0]["roles"], json!(["member"]), "{me:?}");
    drop(app);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
