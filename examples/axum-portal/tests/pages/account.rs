//! Sign-up and email verification through the pages, following the links of the messages
//! the development mailer wrote: the sign-up form answers "check your mail", the mailed
//! link opens the name-and-password form (a refused password is marked on its field), the
//! account is created and signed in once; the verification link opens a page whose button
//! verifies the signed-in user's address once, and sends a signed-out visitor to sign in;
//! the change-of-email form takes the current password, and the link mailed to the new
//! address opens a page whose button moves the account once.

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

    let mut visitor = Client::new(&portal);
    let signed_out = visitor.get(&link).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER, "{signed_out:?}");
    assert_eq!(signed_out.header("location"), Some("/sign-in"));

    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
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
