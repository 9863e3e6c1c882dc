//! The webhooks screen over plain HTTP through the router: an owner creates an endpoint
//! (the secret shown once), disables and enables it, rotates its secret, sees its attempt
//! log and deletes it behind a confirmation; a form without the session's token changes
//! nothing; a viewer sees neither the menu entry nor a control; another org's endpoint answers not found; a refused
//! URL comes back marked with what was typed kept.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::{Client, call, portal, token};

/// The secret shown once on the page, if any.
fn secret_of(body: &str) -> Option<String> {
    let re = regex::Regex::new(r#"<code class="token">(whsec_[^<]+)</code>"#).unwrap();
    re.captures(body).map(|c| c[1].to_owned())
}

/// The create form's fields for `url`, ticking `member.added`.
fn new_endpoint<'a>(csrf: &'a str, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("url", url),
        ("description", "crm sync"),
        ("event.member.added", "on"),
    ]
}

#[tokio::test]
async fn an_owner_creates_rotates_disables_and_deletes_an_endpoint() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let empty = client.get("/webhooks").await;
    assert_eq!(empty.status, StatusCode::OK, "{empty:?}");
    assert!(empty.body.contains("No webhook endpoints yet."));
    assert!(
        empty.body.contains(r#"name="event.member.added""#),
        "the catalog as checkboxes"
    );

    let made = client
        .post("/webhooks", &new_endpoint(&empty.csrf(), "https://hooks.example.com/x"))
        .await;
    assert_eq!(made.status, StatusCode::OK, "{made:?}");
    let secret = secret_of(&made.body).expect("the secret shown");
    assert!(made.body.contains("https://hooks.example.com/x") && made.body.contains("member.added"));

    let list = client.get("/webhooks").await;
    assert!(!list.body.contains(&secret), "the secret is shown once");
    assert!(list.body.contains("<td>enabled</td>"), "{}", list.body);
    let forms = list.post_forms();
    let find = |suffix: &str| {
        forms
            .iter()
            .find(|f| f.starts_with("/webhooks/") && f.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in {forms:?}"))
            .clone()
    };
    let csrf = list.csrf();
    let disabled = client
        .post(&find("/enabled"), &[("csrf", &csrf), ("enabled", "false")])
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{disabled:?}");
    let after = client.get("/webhooks").await;
    assert!(after.body.contains("<td>disabled</td>") && after.body.contains(">Enable</button>"));

    assert!(after.body.contains("<summary>Rotate secret…</summary>"));
    let rotated = client.post(&find("/rotate"), &[("csrf", &csrf)]).await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_secret = secret_of(&rotated.body).expect("the new secret shown");
    assert_ne!(new_secret, secret);

    let id = find("/rotate")
        .trim_start_matches("/webhooks/")
        .trim_end_matches("/rotate")
        .to_owned();
    let attempts = client.get(&format!("/webhooks?endpoint={id}")).await;
    assert_eq!(attempts.status, StatusCode::OK, "{attempts:?}");
    assert!(attempts.body.contains("No delivery attempts yet."));

    assert!(after.body.contains("<summary>Delete…</summary>") && after.body.contains("Confirm: delete"));
    let deleted = client.post(&find("/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{deleted:?}");
    assert!(client.get("/webhooks").await.body.contains("No webhook endpoints yet."));
}

#[tokio::test]
async fn webhook_forms_without_the_token_change_nothing_and_a_viewer_sees_no_control() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    for csrf in [None, Some("not-the-token")] {
        let mut sent = vec![("url", "https://hooks.example.com/forged")];
        if let Some(csrf) = csrf {
            sent.push(("csrf", csrf));
        }
        let answer = client.post("/webhooks", &sent).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
        assert!(answer.body.contains("auth.csrf_rejected"));
    }
    assert!(!client.get("/webhooks").await.body.contains("forged"));

    let mut linus = Client::new(&portal);
    linus.sign_in(&portal, "linus").await;
    let page = linus.get("/webhooks").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    assert!(page.body.contains("access.denied"));
    let definitions = linus.get("/definitions").await;
    assert!(
        !definitions.body.contains(r#"href="/webhooks""#),
        "the menu hides the screen from a viewer"
    );
    assert!(
        client.get("/definitions").await.body.contains(r#"href="/webhooks""#),
        "the menu shows it to the owner"
    );
    let csrf = definitions.csrf();
    let refused = linus
        .post("/webhooks", &new_endpoint(&csrf, "https://hooks.example.com/sneaky"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body.contains("access.denied"));
}

#[tokio::test]
async fn another_orgs_endpoint_answers_not_found_and_a_bad_url_is_marked() {
    let portal = portal().await;
    let hedy = token(&portal, "hedy").await;
    let globex = portal.demo.globex;
    let made = call(
        &portal,
        &hedy,
        Method::POST,
        &format!("/v1/orgs/{globex}/webhook-endpoints"),
        Some(json!({ "url": "https://hooks.example.com/globex", "event_types": ["member.added"] })),
    )
    .await;
    let endpoint = made["endpoint"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{made}"))
        .to_owned();

    let mut ada = Client::new(&portal);
    ada.sign_in(&portal, "ada").await;
    let csrf = ada.get("/webhooks").await.csrf();
    for (uri, fields) in [
        (format!("/webhooks/{endpoint}/delete"), vec![("csrf", csrf.as_str())]),
        (format!("/webhooks/{endpoint}/rotate"), vec![("csrf", csrf.as_str())]),
        (
            format!("/webhooks/{endpoint}/enabled"),
            vec![("csrf", csrf.as_str()), ("enabled", "false")],
        ),
    ] {
        let answer = ada.post(&uri, &fields).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: {answer:?}");
        assert!(answer.body.contains("webhook.endpoint_not_found"), "{uri}");
    }
    let shown = ada.get(&format!("/webhooks?endpoint={endpoint}")).await;
    assert_eq!(shown.status, StatusCode::NOT_FOUND, "{shown:?}");
    let still = call(
        &portal,
        &hedy,
        Method::GET,
        &format!("/v1/orgs/{globex}/webhook-endpoints/{endpoint}"),
        None,
    )
    .await;
    assert_eq!(still["enabled"], true, "globex's endpoint is untouched: {still}");

    let refused = ada
        .post("/webhooks", &new_endpoint(&csrf, "ftp://typed.example/here"))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
    assert!(
        refused.body.contains(r#"aria-describedby="hook-url-error""#),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"value="ftp://typed.example/here""#));
    assert!(refused.body.contains(r#"value="crm sync""#));
    assert!(
        regex::Regex::new(r#"name="event\.member\.added" checked"#)
            .unwrap()
            .is_match(&refused.body),
        "the ticked event type stays ticked"
    );
}
