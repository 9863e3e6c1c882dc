//! Sign-up and email verification through the pages, following the links of the messages
//! the development mailer wrote: the sign-up form answers "check your mail", the mailed
//! link opens the name-and-password form (a refused password is marked on its field), the
//! account is created and signed in once; the verification link opens a page whose button
//! verifies the signed-in user's address once, and sends a signed-out visitor through
//! sign-in back to it;
//! the change-of-email form takes the current password, and the link mailed to the new
//! address opens a page whose button moves the account once; the change-of-password form
//! takes the current password and the new one twice, and ends every other session.

use std::path::Path;

use axum::http::{Method, StatusCode};
use portal_auth::identity::SignUpPolicy;
use portal_http::MailSettings;
use portal_http::connect;
use portal_http::seed::seed_demo;

use crate::common::{Client, TestPortal, call, config, token};
use crate::password::{fresh_folder, messages};

const PASSWORD: &str = "a brand new passphrase for me";

/// A portal with open sign-up whose mail is written to `folder`.
async fn portal_mailing_to(folder: &Path) -> TestPortal {
    let mut config = config("sqlite::memory:", false);
    config.mail = MailSettings::Folder(folder.to_path_buf());
    config.sign_up_policy = SignUpPolicy::Open;
    config.sign_up_link = "http://127.0.0.1:3000/sign-up".to_owned();
    config.verify_link = "http://127.0.0.1:3000/verify-email".to_owned();
    config.email_change_link = "http://127.0.0.1:3000/confirm-email-change".to_owned();
    let (api, background) = connect(&config).await.expect("connect");
    let demo = seed_demo(&api).await.expect("seed");
    TestPortal {
        app: example_axum_portal::app(api),
        background,
        demo,
    }
}

/// The path and query of the first link to `page` in `texts`.
fn link_to(texts: &[String], page: &str) -> Option<String> {
    texts
        .iter()
        .flat_map(|t| t.split_whitespace())
        .find(|w| w.contains(&format!("{page}?token=")))
        .map(|w| w.trim_start_matches("http://127.0.0.1:3000").to_owned())
}

#[tokio::test]
async fn a_mailed_sign_up_link_creates_the_account_and_signs_it_in_once() {
    let folder = fresh_folder();
    let portal = portal_mailing_to(&folder).await;
    let mut client = Client::new(&portal);

    let form = client.get("/sign-up").await;
    assert_eq!(form.status, StatusCode::OK);
    let stale = client
        .post(
            "/sign-up",
            &[("csrf", "not the form's"), ("email", "mary@jackson.example")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{stale:?}");
    assert!(stale.body.contains("auth.csrf_rejected"));
    let form = client.get("/sign-up").await;
    let sent = client
        .post("/sign-up", &[("csrf", &form.csrf()), ("email", "mary@jackson.example")])
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{sent:?}");
    assert!(sent.body.contains("Check your mail"));

    let texts = messages(&folder, 1).await;
    let link = link_to(&texts, "/sign-up").expect("a sign-up link");
    let finish = client.get(&link).await;
    assert_eq!(finish.status, StatusCode::OK, "{finish:?}");
    assert!(finish.body.contains("Finish signing up"));
    let token = link.split_once("token=").unwrap().1;

    let weak = client
        .post(
            "/sign-up/complete",
            &[
                ("csrf", &finish.csrf()),
                ("token", token),
                ("display_name", "Mary <b>J</b>"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST, "{weak:?}");
    assert!(weak.body.contains("validation.invalid_field"));
    assert!(
        weak.body
            .contains(r#"autocomplete="new-password" required aria-invalid="true""#),
        "the password field is marked: {}",
        weak.body
    );
    assert!(
        weak.body.contains("Mary &#60;b&#62;J&#60;/b&#62;") || weak.body.contains("Mary &lt;b&gt;J&lt;/b&gt;"),
        "the name is kept, escaped: {}",
        weak.body
    );

    let done = client
        .post(
            "/sign-up/complete",
            &[
                ("csrf", &weak.csrf()),
                ("token", token),
                ("display_name", "Mary Jackson"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.header("location"), Some("/"));
    // A user of no org is sent on from home; the page there is signed in as the new user.
    let home = client.get("/").await;
    let next = home.header("location").map(str::to_owned);
    let landing = match next {
        Some(next) => client.get(&next).await,
        None => home,
    };
    assert_eq!(landing.status, StatusCode::OK, "{landing:?}");
    assert!(
        landing.body.contains("Mary Jackson"),
        "signed in as the new user: {}",
        landing.body
    );

    let mut other = Client::new(&portal);
    let again_form = other.get(&link).await;
    let again = other
        .post(
            "/sign-up/complete",
            &[
                ("csrf", &again_form.csrf()),
                ("token", token),
                ("display_name", "Someone"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert!(again.body.contains("auth.token_used"));
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn the_mailed_verification_link_opens_a_page_that_verifies_the_address_once() {
    let folder = fresh_folder();
    let portal = portal_mailing_to(&folder).await;
    let bearer = token(&portal, "grace").await;
    call(&portal, &bearer, Method::POST, "/v1/auth/email-verification", None).await;
    let texts = messages(&folder, 1).await;
    let link = link_to(&texts, "/verify-email").expect("a verification link");

    // Opened signed out, the link goes through sign-in and back to its page.
    let mut client = Client::new(&portal);
    let signed_out = client.get(&link).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER, "{signed_out:?}");
    assert_eq!(signed_out.header("location"), Some("/sign-in"));
    let form = client.get("/sign-in").await;
    let back = client
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@acme.example"),
                ("password", portal_http::seed::DEMO_PASSWORD),
            ],
        )
        .await;
    assert_eq!(back.header("location"), Some(link.as_str()), "{back:?}");
    let page = client.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.body.contains("Confirm my address"));
    let status = call(&portal, &bearer, Method::GET, "/v1/auth/email", None).await;
    assert_eq!(status["verified"], false, "opening the link verifies nothing");
    let token = link.split_once("token=").unwrap().1;
    let stale = client
        .post("/verify-email", &[("csrf", "forged"), ("token", token)])
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{stale:?}");

    let done = client
        .post("/verify-email", &[("csrf", &page.csrf()), ("token", token)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert!(
        done.body.contains("grace@acme.example</strong> is verified"),
        "{}",
        done.body
    );
    let status = call(&portal, &bearer, Method::GET, "/v1/auth/email", None).await;
    assert_eq!(status["verified"], true);

    let again = client
        .post("/verify-email", &[("csrf", &page.csrf()), ("token", token)])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert!(again.body.contains("auth.token_used"));
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn the_email_change_form_mails_a_link_whose_page_moves_the_account_once() {
    let folder = fresh_folder();
    let portal = portal_mailing_to(&folder).await;
    let bearer = token(&portal, "grace").await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;

    let form = client.get("/account/email").await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    assert!(form.body.contains("grace@acme.example"), "the current address is shown");
    let wrong = client
        .post(
            "/account/email",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace.hopper@navy.example"),
                ("current_password", "not my password"),
                ("code", ""),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    assert!(wrong.body.contains("auth.invalid_credentials"));
    assert!(
        wrong.body.contains(r#"id="current_password" name="current_password" type="password" autocomplete="current-password" required aria-invalid="true""#),
        "the password field is marked"
    );
    let sent = client
        .post(
            "/account/email",
            &[
                ("csrf", &wrong.csrf()),
                ("email", "Grace.Hopper@navy.example"),
                ("current_password", portal_http::seed::DEMO_PASSWORD),
                ("code", ""),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{sent:?}");
    assert!(sent.body.contains("grace.hopper@navy.example"), "{}", sent.body);

    let texts = messages(&folder, 2).await;
    let link = link_to(&texts, "/confirm-email-change").expect("a change link");
    let page = client.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.body.contains("Change my address"));
    let status = call(&portal, &bearer, Method::GET, "/v1/auth/email", None).await;
    assert_eq!(
        status["email"], "grace@acme.example",
        "opening the link changes nothing"
    );
    let token = link.split_once("token=").unwrap().1;
    let done = client
        .post("/confirm-email-change", &[("csrf", &page.csrf()), ("token", token)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert!(
        done.body.contains("grace.hopper@navy.example</strong>"),
        "{}",
        done.body
    );
    let status = call(&portal, &bearer, Method::GET, "/v1/auth/email", None).await;
    assert_eq!(
        (&status["email"], &status["verified"]),
        (
            &serde_json::json!("grace.hopper@navy.example"),
            &serde_json::json!(true)
        )
    );
    let again = client
        .post("/confirm-email-change", &[("csrf", &page.csrf()), ("token", token)])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert!(again.body.contains("auth.token_used"));
    let _ = std::fs::remove_dir_all(&folder);
}

/// grace changes her password on `/account/password`: a forged CSRF token, a wrong current
/// password (marked on `current_password`), a repetition that differs (marked on
/// `confirm_password`) and a too-short new password (marked on `password`) change nothing;
/// then the change rotates her page session (new cookies, the page goes on with them),
/// ends her other session, and only the new password signs her in.
#[tokio::test]
async fn the_password_form_changes_it_and_ends_every_other_session() {
    let folder = fresh_folder();
    let portal = portal_mailing_to(&folder).await;
    let other = token(&portal, "grace").await;
    let mut client = Client::new(&portal);
    let away = client.get("/account/password").await;
    assert_eq!(away.header("location"), Some("/sign-in"), "signed out");
    client.sign_in(&portal, "grace").await;
    let sessions = client.get("/sessions").await;
    assert!(
        sessions.body.contains(r#"href="/account/password""#),
        "linked from the sessions"
    );
    let page = client.get("/account/password").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.post_forms(), ["/switch-org", "/sign-out", "/account/password"]);
    let demo = portal_http::seed::DEMO_PASSWORD;

    let forged = client
        .post(
            "/account/password",
            &[
                ("csrf", "forged"),
                ("current_password", demo),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    for (current, new, again, status, marked) in [
        (
            "not my password",
            PASSWORD,
            PASSWORD,
            StatusCode::UNAUTHORIZED,
            "current_password",
        ),
        (
            demo,
            PASSWORD,
            "a brand new passphrase for you",
            StatusCode::BAD_REQUEST,
            "confirm_password",
        ),
        (demo, "short", "short", StatusCode::BAD_REQUEST, "password"),
    ] {
        let refused = client
            .post(
                "/account/password",
                &[
                    ("csrf", &page.csrf()),
                    ("current_password", current),
                    ("password", new),
                    ("confirm_password", again),
                ],
            )
            .await;
        assert_eq!(refused.status, status, "{marked}: {}", refused.body);
        assert!(
            refused.body.contains(&format!(r#"id="{marked}" name="{marked}""#))
                && refused.body.contains(r#"aria-invalid="true""#),
            "{marked} is marked: {}",
            refused.body
        );
        assert_eq!(
            refused.body.matches(r#"aria-invalid="true""#).count(),
            1,
            "only {marked}"
        );
    }
    let me = call(&portal, &other, Method::GET, "/v1/auth/me", None).await;
    assert_eq!(
        me["user"]["email"], "grace@acme.example",
        "the refusals changed nothing: {me}"
    );

    let before = client.jar.get("portal_session").cloned().unwrap();
    let changed = client
        .post(
            "/account/password",
            &[
                ("csrf", &page.csrf()),
                ("current_password", demo),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body.contains("Your password is changed"), "{}", changed.body);
    let after = client.jar.get("portal_session").cloned().unwrap();
    assert_ne!(before, after, "the page's session is rotated");
    assert_ne!(
        changed.csrf(),
        page.csrf(),
        "and its forms carry the new session's token"
    );
    let me = call(&portal, &other, Method::GET, "/v1/auth/me", None).await;
    assert_eq!(me["code"], "auth.invalid_credentials", "her other session ended: {me}");
    let me = call(&portal, &before, Method::GET, "/v1/auth/me", None).await;
    assert_eq!(me["code"], "auth.invalid_credentials", "and the page's old one: {me}");
    assert_eq!(client.get("/sessions").await.status, StatusCode::OK, "the page goes on");

    let mut fresh = Client::new(&portal);
    let form = fresh.get("/sign-in").await;
    let old = fresh
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@acme.example"),
                ("password", demo),
            ],
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "the old password is gone");
    let form = fresh.get("/sign-in").await;
    let new = fresh
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@acme.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(new.status, StatusCode::SEE_OTHER, "{new:?}");
    let _ = std::fs::remove_dir_all(&folder);
}
