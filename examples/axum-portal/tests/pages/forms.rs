//! The pages over plain HTTP: security headers, CSRF on every form, the API's cookies,
//! errors with their request id, only the controls the caller may use, escaping, and the
//! tenancy boundary.

use axum::http::{Method, StatusCode};
use example_axum_portal::pages::CONTENT_SECURITY_POLICY;
use portal_http::seed::DEMO_PASSWORD;
use serde_json::{Value, json};

use crate::common::{Client, ada_joins_globex, call, portal, portal_with, token};

/// The id of the first case of `org` whose subject is `subject`, through the API.
async fn case_id(portal: &crate::common::TestPortal, local: &str, org: &str, subject: &str) -> String {
    let token = token(portal, local).await;
    let list = call(
        portal,
        &token,
        Method::GET,
        &format!("/v1/orgs/{org}/workflows?definition=support_case&limit=100"),
        None,
    )
    .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["payload"]["subject"] == subject)
        .unwrap_or_else(|| panic!("no case {subject:?} in {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_inline_script() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    for uri in [
        "/sign-in",
        "/cases",
        "/returns",
        "/quotes",
        "/members",
        "/support",
        "/account/passkeys",
        "/account/authenticator",
        "/account/password",
    ] {
        let page = client.get(uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {page:?}");
        assert_eq!(
            page.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY),
            "{uri}"
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{uri}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"), "{uri}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{uri}");
        assert!(page.header("x-request-id").unwrap().starts_with("req_"), "{uri}");
        assert!(page.header("content-type").unwrap().starts_with("text/html"), "{uri}");
        // Every script is the embedded file; no inline handler or style attribute.
        assert_eq!(page.body.matches("<script").count(), 1, "{uri}");
        assert!(
            page.body.contains(r#"<script src="/assets/app.js" defer></script>"#),
            "{uri}"
        );
        for inline in [" onclick=", " onerror=", " onload=", " style=", "<style"] {
            assert!(!page.body.contains(inline), "{uri} has {inline}");
        }
        // Every form that changes state posts the token.
        let forms = page.body.matches(r#"<form method="post""#).count();
        let tokens = page.body.matches(r#"name="csrf""#).count();
        assert_eq!(forms, tokens, "{uri}: every posting form carries a csrf field");
    }
    let script = client.get("/assets/app.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(script.body.contains("data-copy") || script.body.contains("dataset.copy"));
}

#[tokio::test]
async fn signing_in_without_the_forms_own_token_is_refused_and_keeps_the_email() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    let page = client
        .post(
            "/sign-in",
            &[
                ("csrf", "forged"),
                ("email", "ada@acme.example"),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    assert!(page.body.contains("auth.csrf_rejected"));
    assert!(
        page.body.contains(r#"value="ada@acme.example""#),
        "the email typed is kept"
    );
    assert!(
        !client.jar.contains_key("portal_session"),
        "no session without the form's token"
    );
}

#[tokio::test]
async fn a_refused_sign_in_shows_the_code_and_the_request_id_to_copy() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    let form = client.get("/sign-in").await;
    let page = client
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "ada@acme.example"),
                ("password", "wrong"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("auth.invalid_credentials"));
    let request_id = page.header("x-request-id").unwrap();
    assert!(
        page.body
            .contains(&format!(r#"<code class="request-id">{request_id}</code>"#)),
        "the page shows its own request id"
    );
    assert!(page.body.contains(&format!(
        r#"data-copy="request {request_id} code auth.invalid_credentials""#
    )));
    assert!(page.body.contains(r#"value="ada@acme.example""#));
}

#[tokio::test]
async fn the_session_cookies_are_the_apis_and_secure_ones_are_host_prefixed() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    let form = client.get("/sign-in").await;
    let signed_in = client
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "ada@acme.example"),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    let cookies: Vec<&str> = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies.iter().find(|c| c.starts_with("portal_session=")).unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    assert!(cookies.iter().any(|c| c.starts_with("portal_csrf=")));
    assert_eq!(signed_in.header("location"), Some("/"));

    let secure = portal_with(true).await;
    let mut client = Client::new(&secure);
    let form = client.get("/sign-in").await;
    let set = form.header("set-cookie").unwrap();
    assert!(set.starts_with("__Host-portal_sign_in=") && set.contains("Secure") && set.contains("SameSite=Strict"));
    let signed_in = client
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "ada@acme.example"),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    let cookies: Vec<&str> = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-portal_session=") && c.contains("Secure"))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-portal_csrf=") && c.contains("Secure"))
    );
    let mut client = Client::new(&secure);
    let away = client.get("/members").await;
    let set = away.header("set-cookie").unwrap();
    assert!(
        set.starts_with("__Host-portal_return=%2Fmembers") && set.contains("Secure"),
        "{set}"
    );
}

#[tokio::test]
async fn a_form_without_the_sessions_token_changes_nothing() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
    let list = client.get("/cases").await;
    let created = client
        .post(
            "/workflows/new",
            &[
                ("csrf", "not-the-token"),
                ("definition", "support_case"),
                ("payload.subject", "Forged"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{created:?}");
    assert!(created.body.contains("auth.csrf_rejected"));
    let missing = client
        .post(
            "/workflows/new",
            &[("definition", "support_case"), ("payload.subject", "Forged")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(
        !client.get("/cases").await.body.contains("Forged"),
        "nothing was created"
    );
    // With the page's token, the same form works.
    let made = client
        .post(
            "/workflows/new",
            &[
                ("csrf", &list.csrf()),
                ("definition", "support_case"),
                ("payload.subject", "Real"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{made:?}");
}

#[tokio::test]
async fn a_member_walks_a_case_to_closed_with_the_forms_the_pages_show() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
    let list = client.get("/cases").await;
    let made = client
        .post(
            "/workflows/new",
            &[
                ("csrf", &list.csrf()),
                ("definition", "support_case"),
                ("payload.subject", "Printer on fire"),
            ],
        )
        .await;
    let case = made.header("location").unwrap().to_owned();
    let id = case.trim_start_matches("/workflows/").to_owned();
    let grace = portal.demo.user("grace").unwrap().id.to_string();
    // Each step: the page shows the form, the form is posted as shown.
    let steps: [(&str, Vec<(&str, &str)>); 5] = [
        ("/transitions/triage", vec![("input.priority", "high")]),
        ("/assignee", vec![("assignee", &grace)]),
        ("/transitions/start", vec![]),
        ("/transitions/resolve", vec![("input.resolution", "unplugged it")]),
        ("/transitions/close", vec![]),
    ];
    for (step, fields) in steps {
        let page = client.get(&case).await;
        assert_eq!(page.status, StatusCode::OK);
        let action = format!("/workflows/{id}{step}");
        assert!(
            page.post_forms().contains(&action),
            "{action} is offered: {:?}",
            page.post_forms()
        );
        let (csrf, version) = (page.csrf(), page.version());
        let mut form = vec![("csrf", csrf.as_str()), ("version", version.as_str())];
        form.extend(fields);
        let answer = client.post(&action, &form).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{action}: {answer:?}");
    }
    let closed = client.get(&case).await;
    assert!(closed.body.contains(r#"<span class="state" id="state">closed</span>"#));
    let forms = closed.post_forms();
    assert!(
        forms.iter().all(|f| f == "/switch-org" || f == "/sign-out"),
        "a closed case offers nothing: {forms:?}"
    );
    for step in ["triage", "resolve", "close"] {
        assert!(
            closed.body.contains(&format!("transition {step}")),
            "history shows {step}"
        );
    }
}

#[tokio::test]
async fn a_viewer_sees_no_write_control() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "linus").await;
    for uri in ["/cases", "/returns", "/quotes"] {
        let page = client.get(uri).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<table>"), "{uri}: the viewer reads the list");
        assert!(
            !page.body.contains(r#"action="/workflows/new""#),
            "{uri}: no create form"
        );
        assert!(!page.body.contains(r#"class="action""#), "{uri}: no row action");
    }
    let id = case_id(
        &portal,
        "ada",
        &portal.demo.acme.to_string(),
        "Two invoices for one order",
    )
    .await;
    let page = client.get(&format!("/workflows/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let forms = page.post_forms();
    assert!(
        forms.iter().all(|f| f == "/switch-org" || f == "/sign-out"),
        "the viewer's case page has no write form: {forms:?}"
    );
    // And posting the form anyway is refused by the API's own check.
    let refused = client
        .post(
            &format!("/workflows/{id}/transitions/start"),
            &[("csrf", &page.csrf()), ("version", &page.version())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{refused:?}");
    assert!(refused.body.contains("access.denied"));
}

#[tokio::test]
async fn typed_text_is_escaped() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
    let list = client.get("/cases").await;
    let evil = r#"<img src=x onerror="alert(1)">"#;
    let made = client
        .post(
            "/workflows/new",
            &[
                ("csrf", &list.csrf()),
                ("definition", "support_case"),
                ("payload.subject", evil),
            ],
        )
        .await;
    let case = client.get(made.header("location").unwrap()).await;
    assert_eq!(case.status, StatusCode::OK);
    assert!(!case.body.contains("<img"), "no markup of the user's");
    assert!(
        case.body.contains("&#60;img src=x onerror=&#34;alert(1)&#34;&#62;"),
        "the text shown escaped: {}",
        case.body
    );
    assert!(!client.get("/cases").await.body.contains("<img"));
}

#[tokio::test]
async fn a_refused_form_names_its_field_and_keeps_what_was_typed() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
    let list = client.get("/returns").await;
    let page = client
        .post(
            "/workflows/new",
            &[
                ("csrf", &list.csrf()),
                ("definition", "return_request"),
                ("payload.order_id", "SO-77"),
                ("payload.amount_cents", "lots"),
                ("payload.reason", "wrong size"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{page:?}");
    assert!(page.body.contains("validation.invalid_field"), "the API's code");
    assert!(page.body.contains(r#"value="SO-77""#) && page.body.contains(r#"value="wrong size""#));
    assert!(page.body.contains("<code>payload</code>"), "the param the API names");
    assert!(
        page.body.contains(r#"value="lots" aria-invalid="true""#),
        "the named field is marked: {}",
        page.body
    );
}

#[tokio::test]
async fn another_orgs_case_answers_as_a_missing_one() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let theirs = case_id(
        &portal,
        "hedy",
        &portal.demo.globex.to_string(),
        "Invoices show the wrong VAT number",
    )
    .await;
    let other = client.get(&format!("/workflows/{theirs}")).await;
    let missing = client.get("/workflows/wf_00000000000000000000000000").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{other:?}");
    assert_eq!(missing.status, other.status);
    assert!(other.body.contains("workflow.not_found") && missing.body.contains("workflow.not_found"));
    assert!(!other.body.contains("VAT"), "nothing of the other org's case shows");
    let page = client.get("/cases").await;
    let posted = client
        .post(
            &format!("/workflows/{theirs}/transitions/triage"),
            &[("csrf", &page.csrf()), ("version", "1"), ("input.priority", "low")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND);
    assert!(posted.body.contains("workflow.not_found"));
}

#[tokio::test]
async fn members_show_their_names_and_emails() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "linus").await;
    let page = client.get("/members").await;
    assert_eq!(page.status, StatusCode::OK);
    for (name, email) in [
        ("Ada Lovelace", "ada@acme.example"),
        ("Grace Hopper", "grace@acme.example"),
        ("Linus Torvalds", "linus@acme.example"),
    ] {
        assert!(page.body.contains(name) && page.body.contains(email), "{name}");
    }
    assert!(!page.body.contains("Hedy Lamarr"), "only acme's members");
    let api = token(&portal, "linus").await;
    let members = call(
        &portal,
        &api,
        Method::GET,
        &format!("/v1/orgs/{}/members", portal.demo.acme),
        None,
    )
    .await;
    let grace = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["email"] == "grace@acme.example")
        .expect("the API lists emails");
    assert_eq!(grace["user"]["display_name"], "Grace Hopper");
}

#[tokio::test]
async fn switching_org_shows_the_other_orgs_cases() {
    let portal = portal().await;
    ada_joins_globex(&portal).await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let first = client.get("/cases").await;
    let to_acme = client
        .post(
            "/switch-org",
            &[("csrf", &first.csrf()), ("org_id", &portal.demo.acme.to_string())],
        )
        .await;
    assert_eq!(to_acme.status, StatusCode::SEE_OTHER, "{to_acme:?}");
    let acme = client.get("/cases").await;
    assert!(acme.body.contains("Two invoices for one order") && !acme.body.contains("VAT"));
    let switched = client
        .post(
            "/switch-org",
            &[("csrf", &acme.csrf()), ("org_id", &portal.demo.globex.to_string())],
        )
        .await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{switched:?}");
    let globex = client.get("/cases").await;
    assert!(globex.body.contains("Invoices show the wrong VAT number"));
    assert!(!globex.body.contains("Two invoices for one order"));
    assert_ne!(globex.csrf(), acme.csrf(), "a new session, a new token");
    // The old session's token no longer posts.
    let stale = client
        .post(
            "/workflows/new",
            &[("csrf", &acme.csrf()), ("definition", "support_case")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn support_finds_why_a_request_was_refused_from_its_id() {
    let portal = portal().await;
    // Linus (a viewer) posts a step his page did not offer; the page shows the request id.
    let mut linus = Client::new(&portal);
    linus.sign_in(&portal, "linus").await;
    let id = case_id(
        &portal,
        "ada",
        &portal.demo.acme.to_string(),
        "Two invoices for one order",
    )
    .await;
    let page = linus.get(&format!("/workflows/{id}")).await;
    let refused = linus
        .post(
            &format!("/workflows/{id}/transitions/start"),
            &[("csrf", &page.csrf()), ("version", &page.version())],
        )
        .await;
    let request_id = refused.header("x-request-id").unwrap().to_owned();
    assert!(refused.body.contains(&request_id));
    // Sam (vendor support, a read-only grant to acme) looks it up.
    let mut sam = Client::new(&portal);
    sam.sign_in(&portal, "sam").await;
    let home = sam.get("/").await;
    assert_eq!(
        home.header("location"),
        Some("/support"),
        "a user in no org lands on support"
    );
    let found = sam
        .get(&format!("/support?org={}&request={request_id}", portal.demo.acme))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{found:?}");
    assert!(found.body.contains(r#"id="root-cause""#));
    assert!(found.body.contains("access.denied"), "the root cause: {}", found.body);
    assert!(
        found.body.contains("workflow.transition"),
        "the timeline shows the step"
    );
    // A request id of another org is not found there.
    let globex = sam
        .get(&format!("/support?org={}&request={request_id}", portal.demo.globex))
        .await;
    assert_eq!(globex.status, StatusCode::NOT_FOUND, "{globex:?}");
}

#[tokio::test]
async fn signed_out_pages_go_to_sign_in_and_signing_out_ends_the_session() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    for uri in [
        "/",
        "/cases",
        "/members",
        "/support",
        "/workflows/wf_00000000000000000000000000",
    ] {
        let page = client.get(uri).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(page.header("location"), Some("/sign-in"), "{uri}");
    }
    client.sign_in(&portal, "ada").await;
    let page = client.get("/cases").await;
    let session = client.jar.get("portal_session").cloned().unwrap();
    let out = client.post("/sign-out", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!client.jar.contains_key("portal_session"), "the cookie is cleared");
    // The old token is revoked, not just forgotten.
    let me = call(&portal, &session, Method::GET, "/v1/auth/me", None).await;
    assert_eq!(me["code"], json!("auth.invalid_credentials"), "{me}");
}

/// The password form's answer for `local`, posted by `client` with the form's own token.
async fn post_sign_in(client: &mut Client, local: &str) -> crate::common::Page {
    let form = client.get("/sign-in").await;
    let email = format!("{local}@acme.example");
    client
        .post(
            "/sign-in",
            &[("csrf", &form.csrf()), ("email", &email), ("password", DEMO_PASSWORD)],
        )
        .await
}

/// A signed-out visitor who opens a page (the link of a mail, say) is sent to sign in and
/// then brought back to it, query and all, and the cookie that remembered it is cleared.
/// The cookie is the visitor's to forge: another site, a protocol-relative or backslashed
/// path, a control character, the sign-in page itself, all go home. A form posted without
/// a session is not remembered (a sign-in returns with a `GET`).
#[tokio::test]
async fn a_signed_out_visitor_is_brought_back_to_the_page_they_opened() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    let opened = "/verify-email?token=a%3Bb%2Cc&then=%22x%22";
    let away = client.get(opened).await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.header("location"), Some("/sign-in"));
    let set = away.header("set-cookie").unwrap();
    for attribute in ["portal_return=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    let back = post_sign_in(&mut client, "grace").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{back:?}");
    assert_eq!(back.header("location"), Some(opened));
    assert!(!client.jar.contains_key("portal_return"), "the sign-in clears it");
    let page = client.get(opened).await;
    assert_eq!(page.status, StatusCode::OK, "the page itself: {}", page.body);
    let out = client.post("/sign-out", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let again = post_sign_in(&mut client, "grace").await;
    assert_eq!(again.header("location"), Some("/"), "remembered once");

    let mut client = Client::new(&portal);
    let posted = client
        .post("/workflows/new", &[("csrf", "x"), ("definition", "support_case")])
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.header("location"), Some("/sign-in"));
    assert!(!client.jar.contains_key("portal_return"), "a post is not remembered");

    // A portal of their own: sign-ins from one source are limited. (The rest of what
    // `return_path` refuses is its unit test's.)
    let portal = crate::common::portal().await;
    for forged in [
        "https://evil.example/cases",
        "//evil.example/cases",
        "/\\evil.example/cases",
    ] {
        let mut client = Client::new(&portal);
        let encoded = cookie::Cookie::new("portal_return", forged).encoded().to_string();
        let (name, value) = encoded.split_once('=').unwrap();
        client.jar.insert(name.to_owned(), value.to_owned());
        let home = post_sign_in(&mut client, "grace").await;
        assert_eq!(home.status, StatusCode::SEE_OTHER, "{forged:?}");
        assert_eq!(home.header("location"), Some("/"), "{forged:?}");
    }
    let mut client = Client::new(&portal);
    client.jar.insert("portal_return".to_owned(), "/members".to_owned());
    let kept = post_sign_in(&mut client, "grace").await;
    assert_eq!(
        kept.header("location"),
        Some("/members"),
        "a page of the portal is kept"
    );
}

/// The codes of the authenticator app set up with the base32 key `base32`: `code(n)` is
/// the code `n` steps of 30 s from now.
fn totp_codes(base32: &str) -> impl Fn(i64) -> String {
    use portal_auth::identity::totp::{SECRET_BYTES, TotpSecret, code_at};
    use secrecy::ExposeSecret;

    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in base32.bytes() {
        let value = if c.is_ascii_uppercase() {
            c - b'A'
        } else {
            c - b'2' + 26
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    let secret = TotpSecret::from_bytes(<[u8; SECRET_BYTES]>::try_from(bytes).unwrap());
    move |steps| {
        let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(30 * steps);
        code_at(&secret, at).unwrap().expose_secret().to_owned()
    }
}

/// A user with a second factor signs in in two steps: the password form answers the code
/// form (no session yet); a wrong code shows it again with its error; the right code signs
/// in.
#[tokio::test]
async fn sign_in_asks_for_the_second_factor() {
    let portal = portal().await;
    let api_token = token(&portal, "grace").await;
    let begun = call(
        &portal,
        &api_token,
        Method::POST,
        "/v1/auth/mfa/totp",
        Some(json!({ "password": DEMO_PASSWORD })),
    )
    .await;
    let base32 = begun["secret"].as_str().unwrap();
    let code = totp_codes(base32);
    let confirmed = call(
        &portal,
        &api_token,
        Method::POST,
        "/v1/auth/mfa/totp/confirm",
        Some(json!({ "code": code(0) })),
    )
    .await;
    assert_eq!(
        confirmed["recovery_codes"].as_array().map(Vec::len),
        Some(10),
        "{confirmed}"
    );

    let mut client = Client::new(&portal);
    // She had opened the members page signed out: the second step brings her back to it.
    assert_eq!(client.get("/members").await.status, StatusCode::SEE_OTHER);
    let form = client.get("/sign-in").await;
    let step = client
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@acme.example"),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    assert_eq!(step.status, StatusCode::OK);
    assert_eq!(step.post_forms(), ["/sign-in/mfa"], "{}", step.body);
    assert!(
        !client.jar.keys().any(|name| name.contains("portal_session")),
        "no session before the second factor"
    );
    let challenge = regex::Regex::new(r#"name="challenge" value="([^"]*)""#)
        .unwrap()
        .captures(&step.body)
        .unwrap()[1]
        .to_owned();
    let wrong = format!("{:06}", (code(1).parse::<u32>().unwrap() + 500_000) % 1_000_000);
    let refused = client
        .post(
            "/sign-in/mfa",
            &[("csrf", &step.csrf()), ("challenge", &challenge), ("code", &wrong)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("auth.mfa_code_invalid"), "{}", refused.body);
    assert_eq!(refused.post_forms(), ["/sign-in/mfa"], "the code form again");
    let done = client
        .post(
            "/sign-in/mfa",
            &[("csrf", &refused.csrf()), ("challenge", &challenge), ("code", &code(1))],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), Some("/members"));
    assert!(
        client.jar.keys().any(|name| name.contains("portal_session")),
        "signed in"
    );
    let home = client.get("/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.header("location"), Some("/cases"));
}

/// A JSON call with no credential (the passkey ceremonies' options), as the pages' script
/// makes it.
async fn anonymous_post(portal: &crate::common::TestPortal, uri: &str, body: Option<Value>) -> Value {
    use tower::ServiceExt as _;

    let builder = axum::http::Request::builder().method(Method::POST).uri(uri);
    let request = match body {
        Some(body) => builder
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string())),
        None => builder.body(axum::body::Body::empty()),
    }
    .unwrap();
    let response = portal.app.clone().oneshot(request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// A portal whose passkeys are bound to the software authenticator's origin, with room in
/// the sign-in limit for the many steps of one (unknown) source.
async fn passkey_portal() -> crate::common::TestPortal {
    let mut config = crate::common::config("sqlite::memory:", false);
    crate::soft_key::ORIGIN.clone_into(&mut config.passkey_origin);
    config.http.sign_in_limit = portal_http::limiter::SignInLimit {
        per_minute: std::num::NonZeroU32::new(600).unwrap(),
        burst: std::num::NonZeroU32::new(100).unwrap(),
    };
    let (api, background) = portal_http::connect(&config).await.expect("connect");
    let demo = portal_http::seed::seed_demo(&api).await.expect("seed");
    crate::common::TestPortal {
        app: example_axum_portal::app(api),
        background,
        demo,
    }
}

/// Registers `key` through the API for the bearer of `token`, beginning with `begin`'s
/// body (the password, and a fresh factor once there is one): the passkey's id.
async fn register_passkey(
    portal: &crate::common::TestPortal,
    token: &str,
    key: &mut crate::soft_key::SoftKey,
    begin: Value,
) -> String {
    let begun = call(
        portal,
        token,
        Method::POST,
        "/v1/auth/passkeys/registration",
        Some(begin),
    )
    .await;
    let credential = key.create(crate::soft_key::ORIGIN, &begun["options"]).await;
    let registered = call(
        portal,
        token,
        Method::POST,
        "/v1/auth/passkeys",
        Some(json!({ "ceremony_token": begun["ceremony_token"], "name": "Laptop", "credential": credential })),
    )
    .await;
    registered["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{registered}"))
        .to_owned()
}

/// A proof of the bearer of `token` by `key`: a re-authentication ceremony answered, as
/// the pages' script posts it (`passkey_ceremony_token`, `passkey_credential`).
async fn passkey_proof(
    portal: &crate::common::TestPortal,
    token: &str,
    key: &mut crate::soft_key::SoftKey,
) -> (String, String) {
    let ceremony = call(portal, token, Method::POST, "/v1/auth/passkeys/reauthentication", None).await;
    let answer = key.get(crate::soft_key::ORIGIN, &ceremony["options"]).await;
    (
        ceremony["ceremony_token"].as_str().unwrap().to_owned(),
        answer.to_string(),
    )
}

/// The passkeys screen, over HTTP: it lists the user's passkeys, and its forms refuse what
/// the API refuses, changing nothing. Adding needs the session's CSRF token and the
/// script's answer (`credential`); renaming a name of spaces is refused, ada's passkey is
/// not found, and her own is renamed; removing needs the password and, for grace whose only
/// factor is her passkey, that passkey's fresh answer (a missing one is
/// `auth.mfa_code_invalid`); another user's passkey id is `404 passkey.not_found` as an
/// unknown one; with her proof the passkey goes. The change-of-email form takes the same
/// proof.
#[tokio::test]
async fn the_passkeys_screen_refuses_what_the_api_refuses_and_removes_with_a_proof() {
    use crate::soft_key::SoftKey;

    let portal = passkey_portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
    let grace = token(&portal, "grace").await;
    let ada = token(&portal, "ada").await;
    let mut key = SoftKey::new();
    let id = register_passkey(&portal, &grace, &mut key, json!({ "password": DEMO_PASSWORD })).await;
    let mut adas_key = SoftKey::new();
    let adas = register_passkey(&portal, &ada, &mut adas_key, json!({ "password": DEMO_PASSWORD })).await;

    let anonymous = Client::new(&portal).get("/account/passkeys").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER, "signed out, to sign-in");
    let page = client.get("/account/passkeys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Laptop") && !page.body.contains(&adas),
        "hers only: {}",
        page.body
    );
    assert!(page.body.contains("data-passkey-proof"), "her passkey can prove her");

    let forged = client
        .post(
            "/account/passkeys",
            &[
                ("csrf", "forged"),
                ("name", "Evil"),
                ("ceremony_token", "x"),
                ("credential", "{}"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let scriptless = client
        .post("/account/passkeys", &[("csrf", &page.csrf()), ("name", "Evil")])
        .await;
    assert_eq!(scriptless.status, StatusCode::BAD_REQUEST);
    assert!(
        scriptless.body.contains("validation.invalid_field"),
        "{}",
        scriptless.body
    );

    let blank = client
        .post(
            &format!("/account/passkeys/{id}/rename"),
            &[("csrf", &page.csrf()), ("name", "  ")],
        )
        .await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST, "{}", blank.body);
    assert!(blank.body.contains("validation.invalid_field"), "{}", blank.body);
    let not_hers = client
        .post(
            &format!("/account/passkeys/{adas}/rename"),
            &[("csrf", &page.csrf()), ("name", "Mine")],
        )
        .await;
    assert_eq!(not_hers.status, StatusCode::NOT_FOUND, "{}", not_hers.body);
    let renamed = client
        .post(
            &format!("/account/passkeys/{id}/rename"),
            &[("csrf", &page.csrf()), ("name", "Work laptop")],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.body);
    assert!(client.get("/account/passkeys").await.body.contains("Work laptop"));

    let unproven = client
        .post(
            &format!("/account/passkeys/{id}/remove"),
            &[("csrf", &page.csrf()), ("password", DEMO_PASSWORD)],
        )
        .await;
    assert_eq!(unproven.status, StatusCode::BAD_REQUEST, "{}", unproven.body);
    assert!(unproven.body.contains("auth.mfa_code_invalid"), "{}", unproven.body);
    let (ceremony, credential) = passkey_proof(&portal, &grace, &mut key).await;
    let others = client
        .post(
            &format!("/account/passkeys/{adas}/remove"),
            &[
                ("csrf", &page.csrf()),
                ("password", DEMO_PASSWORD),
                ("passkey_ceremony_token", &ceremony),
                ("passkey_credential", &credential),
            ],
        )
        .await;
    assert_eq!(others.status, StatusCode::NOT_FOUND, "{}", others.body);
    assert!(others.body.contains("passkey.not_found"), "{}", others.body);
    let ada_has = call(&portal, &ada, Method::GET, "/v1/auth/passkeys", None).await;
    assert_eq!(
        ada_has["items"].as_array().map(Vec::len),
        Some(1),
        "ada's passkey stays: {ada_has}"
    );

    let (ceremony, credential) = passkey_proof(&portal, &grace, &mut key).await;
    let removed = client
        .post(
            &format!("/account/passkeys/{id}/remove"),
            &[
                ("csrf", &page.csrf()),
                ("password", DEMO_PASSWORD),
                ("passkey_ceremony_token", &ceremony),
                ("passkey_credential", &credential),
            ],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = client.get("/account/passkeys").await;
    assert!(page.body.contains("No passkeys yet"), "{}", page.body);

    register_passkey(&portal, &grace, &mut key, json!({ "password": DEMO_PASSWORD })).await;
    let form = client.get("/account/email").await;
    assert!(form.body.contains("data-passkey-proof"), "{}", form.body);
    let unproven = client
        .post(
            "/account/email",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@new.example"),
                ("current_password", DEMO_PASSWORD),
            ],
        )
        .await;
    assert!(unproven.body.contains("auth.mfa_code_invalid"), "{}", unproven.body);
    let (ceremony, credential) = passkey_proof(&portal, &grace, &mut key).await;
    let sent = client
        .post(
            "/account/email",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@new.example"),
                ("current_password", DEMO_PASSWORD),
                ("passkey_ceremony_token", &ceremony),
                ("passkey_credential", &credential),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(
        sent.body.contains("grace@new.example"),
        "the link went out: {}",
        sent.body
    );
}

/// A user whose only second factor is a passkey: the sign-in form challenges them too
/// (the password alone signs nobody with a factor in), and the second step offers the
/// passkey form (which the script shows) and no code form that could never succeed. The
/// form takes the answer to a ceremony begun for the challenge (what the script gets from
/// the authenticator): without one it shows the step again naming `credential`, with a
/// CSRF token its browser's cookie does not hold the sign-in form; with the passkey's answer it signs her in. The
/// sign-in page's own passkey form signs her in with no password at all.
#[tokio::test]
async fn a_passkey_user_signs_in_with_it_through_the_pages_forms() {
    use crate::soft_key::{ORIGIN, SoftKey};

    let portal = passkey_portal().await;
    let api_token = token(&portal, "grace").await;
    let mut key = SoftKey::new();
    register_passkey(&portal, &api_token, &mut key, json!({ "password": DEMO_PASSWORD })).await;
    let signed_in = |client: &Client| client.jar.keys().any(|name| name.contains("portal_session"));

    let mut client = Client::new(&portal);
    let form = client.get("/sign-in").await;
    assert_eq!(form.post_forms(), ["/sign-in", "/sign-in/passkey"], "{}", form.body);
    let step = client
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@acme.example"),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert_eq!(
        step.post_forms(),
        ["/sign-in/mfa/passkey"],
        "no code form: {}",
        step.body
    );
    assert!(
        step.body.contains("data-passkey-fallback"),
        "a note for browsers without passkeys"
    );
    assert!(!signed_in(&client), "no session: the password alone is not enough");
    let challenge = regex::Regex::new(r#"name="challenge" value="([^"]*)""#)
        .unwrap()
        .captures(&step.body)
        .unwrap()[1]
        .to_owned();

    let missing = client
        .post(
            "/sign-in/mfa/passkey",
            &[
                ("csrf", &step.csrf()),
                ("challenge", &challenge),
                ("factors", "passkey"),
            ],
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.body.contains("validation.invalid_field"), "{}", missing.body);
    assert_eq!(missing.post_forms(), ["/sign-in/mfa/passkey"], "the passkey step again");
    let stale = Client::new(&portal)
        .post(
            "/sign-in/mfa/passkey",
            &[
                ("csrf", &missing.csrf()),
                ("challenge", &challenge),
                ("credential", "{}"),
            ],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert!(stale.body.contains("csrf"), "{}", stale.body);

    let ceremony = anonymous_post(
        &portal,
        "/v1/auth/mfa/challenge/passkey/options",
        Some(json!({ "challenge_token": challenge })),
    )
    .await;
    let answer = key.get(ORIGIN, &ceremony["options"]).await;
    let done = client
        .post(
            "/sign-in/mfa/passkey",
            &[
                ("csrf", &missing.csrf()),
                ("challenge", &challenge),
                ("factors", "passkey"),
                ("ceremony_token", ceremony["ceremony_token"].as_str().unwrap()),
                ("credential", &answer.to_string()),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(signed_in(&client), "signed in by the passkey");

    let mut passwordless = Client::new(&portal);
    let form = passwordless.get("/sign-in").await;
    let ceremony = anonymous_post(&portal, "/v1/auth/passkeys/sign-in/options", None).await;
    let answer = key.get(ORIGIN, &ceremony["options"]).await;
    let replayed = answer.to_string();
    let done = passwordless
        .post(
            "/sign-in/passkey",
            &[
                ("csrf", &form.csrf()),
                ("ceremony_token", ceremony["ceremony_token"].as_str().unwrap()),
                ("credential", &replayed),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(signed_in(&passwordless), "signed in with no password");

    let mut again = Client::new(&portal);
    let form = again.get("/sign-in").await;
    let refused = again
        .post(
            "/sign-in/passkey",
            &[
                ("csrf", &form.csrf()),
                ("ceremony_token", ceremony["ceremony_token"].as_str().unwrap()),
                ("credential", &replayed),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body.contains("auth.token_used"),
        "a ceremony answers once: {}",
        refused.body
    );
    assert!(!signed_in(&again));
}

/// The authenticator app screen, over HTTP: grace sets one up with her password (a wrong
/// one is refused and marked), is shown the QR code and the key once, confirms with a
/// code from it (a wrong code shows the confirmation again), and is shown ten recovery
/// codes once; a password sign-in then asks for a code. New recovery codes ask a fresh
/// factor (a recovery code here) and retire the old ones; removing the app asks the
/// password and one, after which a password sign-in asks for no code again.
#[tokio::test]
async fn the_authenticator_screen_sets_up_confirms_renews_and_removes_the_app() {
    let portal = passkey_portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "grace").await;
    let page = client.get("/account/authenticator").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.post_forms()
            .into_iter()
            .filter(|f| f.starts_with("/account"))
            .collect::<Vec<_>>(),
        ["/account/authenticator/setup"]
    );
    let refused = client
        .post(
            "/account/authenticator/setup",
            &[("csrf", &page.csrf()), ("password", "not her password")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(refused.body.contains("auth.invalid_credentials"), "{}", refused.body);
    let setup = client
        .post(
            "/account/authenticator/setup",
            &[("csrf", &page.csrf()), ("password", DEMO_PASSWORD)],
        )
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert!(
        setup.body.contains("<svg") && !setup.body.contains("<?xml"),
        "the QR code, inline"
    );
    let base32 = regex::Regex::new(r#"Key: <code class="token">([A-Z2-7]+)</code>"#)
        .unwrap()
        .captures(&setup.body)
        .expect("the key")[1]
        .to_owned();
    let code = totp_codes(&base32);
    let wrong = format!("{:06}", (code(0).parse::<u32>().unwrap() + 500_000) % 1_000_000);
    let again = client
        .post(
            "/account/authenticator/confirm",
            &[("csrf", &setup.csrf()), ("code", &wrong)],
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(
        again
            .post_forms()
            .contains(&"/account/authenticator/confirm".to_owned()),
        "{}",
        again.body
    );
    assert!(!again.body.contains(&base32), "the key is shown once");
    let confirmed = client
        .post(
            "/account/authenticator/confirm",
            &[("csrf", &setup.csrf()), ("code", &code(0))],
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let recovery = |page: &str| -> Vec<String> {
        regex::Regex::new(r#"<li><code class="token">([^<]+)</code></li>"#)
            .unwrap()
            .captures_iter(page)
            .map(|c| c[1].to_owned())
            .collect()
    };
    let first = recovery(&confirmed.body);
    assert_eq!(first.len(), 10, "{}", confirmed.body);
    let page = client.get("/account/authenticator").await;
    assert!(page.body.contains("10 recovery codes are left"), "{}", page.body);
    assert!(recovery(&page.body).is_empty(), "the codes are shown once");

    let renewed = client
        .post(
            "/account/authenticator/recovery-codes",
            &[("csrf", &page.csrf()), ("recovery_code", &first[0])],
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let second = recovery(&renewed.body);
    assert_eq!(second.len(), 10);
    let stale = client
        .post(
            "/account/authenticator/remove",
            &[
                ("csrf", &page.csrf()),
                ("password", DEMO_PASSWORD),
                ("recovery_code", &first[1]),
            ],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::BAD_REQUEST,
        "an old code is retired: {}",
        stale.body
    );
    assert!(stale.body.contains("auth.mfa_code_invalid"), "{}", stale.body);

    let mut other = Client::new(&portal);
    let form = other.get("/sign-in").await;
    let step = other
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", "grace@acme.example"),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        step.post_forms(),
        ["/sign-in/mfa"],
        "a password sign-in asks for a code now"
    );

    let removed = client
        .post(
            "/account/authenticator/remove",
            &[
                ("csrf", &page.csrf()),
                ("password", DEMO_PASSWORD),
                ("recovery_code", &second[0]),
            ],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = client.get("/account/authenticator").await;
    assert!(page.post_forms().contains(&"/account/authenticator/setup".to_owned()));
    let mut after = Client::new(&portal);
    after.sign_in(&portal, "grace").await;
}
