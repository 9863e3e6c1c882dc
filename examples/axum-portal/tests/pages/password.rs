//! A forgotten password through the pages: the request form answers the same for known and
//! unknown addresses, the development mailer's message carries a link to the page that sets
//! a new password, the link works once, and the old password stops working.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use portal_http::MailSettings;
use portal_http::connect;
use portal_http::seed::{DEMO_PASSWORD, seed_demo};

use crate::common::{Client, TestPortal, config};

const NEW_PASSWORD: &str = "a brand new passphrase for ada";

/// A portal whose mail is written to its own folder.
async fn portal_mailing_to(folder: &Path) -> TestPortal {
    let mut config = config("sqlite::memory:", false);
    config.mail = MailSettings::Folder(folder.to_path_buf());
    config.reset_link = "http://127.0.0.1:3000/reset-password".to_owned();
    let (api, background) = connect(&config).await.expect("connect");
    let demo = seed_demo(&api).await.expect("seed");
    TestPortal {
        app: example_axum_portal::app(api),
        background,
        demo,
    }
}

pub(crate) fn fresh_folder() -> PathBuf {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let folder = std::env::temp_dir().join(format!("portal-pages-mail-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// The text bodies of the messages in `folder`, waiting (delivery is off the request path)
/// until there are `count`.
pub(crate) async fn messages(folder: &Path, count: usize) -> Vec<String> {
    for _ in 0..200 {
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(folder).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let mail = mailparse::parse_mail(&bytes).expect("a written message parses");
            for part in mail.parts() {
                if part.ctype.mimetype == "text/plain" {
                    texts.push(part.get_body().unwrap());
                }
            }
        }
        if texts.len() >= count {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {count} messages in {}", folder.display());
}

/// The path and query of the reset link in `text`.
fn reset_link(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.contains("/reset-password?token="))
        .map(|w| w.trim_start_matches("http://127.0.0.1:3000").to_owned())
}

#[tokio::test]
async fn a_forgotten_password_is_reset_from_the_mailed_link_once() {
    let folder = fresh_folder();
    let portal = portal_mailing_to(&folder).await;
    let mut client = Client::new(&portal);

    let sign_in = client.get("/sign-in").await;
    assert!(
        sign_in.body.contains(r#"href="/forgot-password""#),
        "sign-in links to the request"
    );

    // The same answer for an address with an account and one without.
    let mut answers = Vec::new();
    for email in ["ada@acme.example", "nobody@acme.example"] {
        let form = client.get("/forgot-password").await;
        assert_eq!(form.status, StatusCode::OK);
        let page = client
            .post("/forgot-password", &[("csrf", &form.csrf()), ("email", email)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert!(page.body.contains("Check your mail"), "{email}");
        answers.push(page.body.replace(&page.header("x-request-id").unwrap().to_owned(), ""));
    }
    // The bodies differ only in their fresh form tokens, which the page no longer shows.
    assert_eq!(answers[0], answers[1], "known and unknown addresses get the same page");

    let texts = messages(&folder, 2).await;
    let links: Vec<String> = texts.iter().filter_map(|t| reset_link(t)).collect();
    assert_eq!(
        links.len(),
        1,
        "only the address with an account gets a link: {texts:?}"
    );
    let link = &links[0];

    let form = client.get(link).await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    assert!(form.body.contains("Choose a new password"));
    let token = link.split_once("token=").unwrap().1;
    let done = client
        .post(
            "/reset-password",
            &[("csrf", &form.csrf()), ("token", token), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.header("location"), Some("/sign-in"));

    // The link works once.
    let again = client.get(link).await;
    let refused = client
        .post(
            "/reset-password",
            &[
                ("csrf", &again.csrf()),
                ("token", token),
                ("password", "yet another passphrase"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert!(
        refused.body.contains("Forgot your password"),
        "a used link leads to asking for a new one"
    );
    assert!(refused.body.contains("auth.token_used"), "{}", refused.body);

    // The old password is refused, the new one signs in.
    for (password, status) in [
        (DEMO_PASSWORD, StatusCode::UNAUTHORIZED),
        (NEW_PASSWORD, StatusCode::SEE_OTHER),
    ] {
        let form = client.get("/sign-in").await;
        let page = client
            .post(
                "/sign-in",
                &[
                    ("csrf", &form.csrf()),
                    ("email", "ada@acme.example"),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(page.status, status, "{page:?}");
    }
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn the_password_forms_refuse_a_missing_form_token_and_a_link_without_token() {
    let folder = fresh_folder();
    let portal = portal_mailing_to(&folder).await;
    let mut client = Client::new(&portal);
    let page = client
        .post("/forgot-password", &[("csrf", "forged"), ("email", "ada@acme.example")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("auth.csrf_rejected"), "{}", page.body);
    assert!(
        page.body.contains(r#"value="ada@acme.example""#),
        "what was typed is kept"
    );
    let no_token = client.get("/reset-password").await;
    assert_eq!(no_token.status, StatusCode::BAD_REQUEST);
    assert!(no_token.body.contains("auth.token_invalid"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        std::fs::read_dir(&folder).unwrap().count(),
        0,
        "a refused request mails nothing"
    );
    let _ = std::fs::remove_dir_all(&folder);
}
