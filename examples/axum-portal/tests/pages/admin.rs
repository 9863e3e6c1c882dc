//! The administration screens over plain HTTP through the router: invitations, roles, API
//! keys, sessions, support access, the audit log and the workflow definitions. Each test
//! names what it proves: the headers and CSRF fields, a forged or missing token changing
//! nothing, a viewer without write controls, another org's ids answering not found, a
//! refused form keeping what was typed with the problem next to its field, a secret shown
//! once, and a staff view recorded where the org's owner sees it.

use axum::http::{Method, StatusCode};
use example_axum_portal::pages::CONTENT_SECURITY_POLICY;
use serde_json::json;

use crate::common::{Client, TestPortal, call, portal, token};

/// The administration screens, by path.
const SCREENS: &[&str] = &[
    "/organization",
    "/invitations",
    "/roles",
    "/api-keys",
    "/sessions",
    "/support-access",
    "/audit",
    "/definitions",
    "/webhooks",
];

/// The posting forms of the page header (org switcher, sign-out), on every page.
fn header_form(action: &str) -> bool {
    action == "/switch-org" || action == "/sign-out"
}

/// An API key of globex (another org than ada's acme), made by its owner through the API.
async fn globex_key(portal: &TestPortal) -> String {
    let hedy = token(portal, "hedy").await;
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let made = call(
        portal,
        &hedy,
        Method::POST,
        &format!("/v1/orgs/{}/api-keys", portal.demo.globex),
        Some(json!({ "name": "globex ci", "scopes": ["cases/* read"], "expires_at": later })),
    )
    .await;
    made["api_key"]["id"].as_str().expect("globex's key id").to_owned()
}

/// Every administration screen answers its owner with the security headers, no inline
/// script, and a `csrf` field in every form that posts.
#[tokio::test]
async fn every_admin_screen_has_the_headers_and_a_token_in_every_form() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    for uri in SCREENS {
        let page = client.get(uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {page:?}");
        assert_eq!(page.header("content-security-policy"), Some(CONTENT_SECURITY_POLICY));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.body.matches("<script").count(), 1, "{uri}");
        for inline in [" onclick=", " style=", "<style"] {
            assert!(!page.body.contains(inline), "{uri} has {inline}");
        }
        let forms = page.body.matches(r#"<form method="post""#).count();
        let tokens = page.body.matches(r#"name="csrf""#).count();
        assert_eq!(forms, tokens, "{uri}: every posting form carries a csrf field");
        assert!(
            page.body.contains(&format!(r#"href="{uri}" aria-current="page""#)),
            "{uri} is marked in the menu"
        );
    }
}

/// Each creating or revoking form posted without the session's token (or with another)
/// is refused with `auth.csrf_rejected` and changes nothing.
#[tokio::test]
async fn admin_forms_without_the_sessions_token_change_nothing() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let sam = portal.demo.user("sam").unwrap().id.to_string();
    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/organization", vec![("name", "forged name")]),
        (
            "/invitations",
            vec![("email", "forged@acme.example"), ("roles", "member")],
        ),
        ("/roles", vec![("name", "forged-role"), ("permissions", "reports read")]),
        (
            "/api-keys",
            vec![("name", "forged key"), ("scopes", "cases/* read"), ("days", "3")],
        ),
        (
            "/support-access",
            vec![
                ("staff", &sam),
                ("reason", "forged grant"),
                ("access", "read_write"),
                ("hours", "2"),
            ],
        ),
    ];
    for (uri, fields) in &posts {
        for csrf in [None, Some("not-the-token")] {
            let mut sent = fields.clone();
            if let Some(csrf) = csrf {
                sent.push(("csrf", csrf));
            }
            let answer = client.post(uri, &sent).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}: {answer:?}");
            assert!(answer.body.contains("auth.csrf_rejected"), "{uri}");
        }
        let page = client.get(uri).await;
        assert!(!page.body.contains("forged"), "{uri}: nothing was made");
    }
    let sessions = client.get("/sessions").await;
    let revoke = sessions
        .post_forms()
        .into_iter()
        .find(|f| f.starts_with("/sessions/"))
        .unwrap();
    let refused = client.post(&revoke, &[("csrf", "not-the-token")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(client.get("/sessions").await.status, StatusCode::OK, "still signed in");
}

/// A viewer and a member see no write control on any administration screen (the ones
/// they may not read answer `403 access.denied`); only their own sessions can be ended.
#[tokio::test]
async fn a_viewer_and_a_member_see_no_admin_write_control() {
    let portal = portal().await;
    for local in ["linus", "grace"] {
        let mut client = Client::new(&portal);
        client.sign_in(&portal, local).await;
        for uri in SCREENS {
            let page = client.get(uri).await;
            assert!(
                page.status == StatusCode::OK || page.status == StatusCode::FORBIDDEN,
                "{local} {uri}: {page:?}"
            );
            if page.status == StatusCode::FORBIDDEN {
                assert!(page.body.contains("access.denied"), "{local} {uri}");
            }
            let forms: Vec<String> = page
                .post_forms()
                .into_iter()
                .filter(|f| !(header_form(f) || (*uri == "/sessions" && f.starts_with("/sessions/"))))
                .collect();
            assert!(forms.is_empty(), "{local} {uri} shows {forms:?}");
        }
        // The definitions are readable by every member.
        let definitions = client.get("/definitions").await;
        assert_eq!(definitions.status, StatusCode::OK, "{local}");
    }
    // Posting the owner's form anyway is refused by the API's own check.
    let mut linus = Client::new(&portal);
    linus.sign_in(&portal, "linus").await;
    let csrf = linus.get("/definitions").await.csrf();
    let refused = linus
        .post(
            "/api-keys",
            &[("csrf", &csrf), ("name", "sneaky"), ("scopes", "* *"), ("days", "3")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body.contains("access.denied"));
}

/// Another org's API key, invitation and support grant ids answer not found (`404`), as
/// missing ones do, and the other org's key keeps working.
#[tokio::test]
async fn another_orgs_ids_answer_not_found_on_admin_forms() {
    let portal = portal().await;
    let key = globex_key(&portal).await;
    let hedy = token(&portal, "hedy").await;
    let globex = portal.demo.globex;
    let invited = call(
        &portal,
        &hedy,
        Method::POST,
        &format!("/v1/orgs/{globex}/invitations"),
        Some(json!({ "email": "someone@globex.example", "roles": ["member"] })),
    )
    .await;
    let invitation = invited["invitation"]["id"].as_str().unwrap().to_owned();
    let sam = portal.demo.user("sam").unwrap().id.to_string();
    let granted = call(
        &portal,
        &hedy,
        Method::POST,
        &format!("/v1/orgs/{globex}/support-grants"),
        Some(json!({ "staff": sam, "reason": "globex case", "access": "read_only", "hours": 2 })),
    )
    .await;
    let grant = granted["id"].as_str().unwrap_or_else(|| panic!("{granted}")).to_owned();

    let mut ada = Client::new(&portal);
    ada.sign_in(&portal, "ada").await;
    let csrf = ada.get("/api-keys").await.csrf();
    for (uri, code) in [
        (format!("/api-keys/{key}/revoke"), "api_key.not_found"),
        (format!("/invitations/{invitation}/revoke"), "invitation.not_found"),
        (format!("/support-access/{grant}/revoke"), "support.grant_not_found"),
    ] {
        let answer = ada.post(&uri, &[("csrf", &csrf)]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: {answer:?}");
        assert!(answer.body.contains(code), "{uri}: {code}");
    }
    let keys = call(
        &portal,
        &hedy,
        Method::GET,
        &format!("/v1/orgs/{globex}/api-keys"),
        None,
    )
    .await;
    let still = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key.as_str())
        .unwrap();
    assert!(still["revoked_at"].is_null(), "globex's key is untouched: {still}");
    let grants = call(
        &portal,
        &hedy,
        Method::GET,
        &format!("/v1/orgs/{globex}/support-grants"),
        None,
    )
    .await;
    assert!(
        grants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == grant.as_str() && g["active"] == true),
        "globex's grant is untouched: {grants}"
    );
}

/// A refused form comes back with the stable code, the problem next to the field its
/// `param` names, and everything typed kept.
#[tokio::test]
async fn a_refused_admin_form_marks_its_field_and_keeps_what_was_typed() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let csrf = client.get("/api-keys").await.csrf();

    let key = client
        .post(
            "/api-keys",
            &[
                ("csrf", &csrf),
                ("name", "nightly export"),
                ("scopes", "cases/* read\nnonsense"),
                ("days", "9"),
            ],
        )
        .await;
    assert_eq!(key.status, StatusCode::BAD_REQUEST, "{key:?}");
    assert!(key.body.contains("validation.invalid_field"));
    assert!(
        key.body
            .contains(r#"aria-invalid="true" aria-describedby="key-scopes-error""#)
    );
    assert!(key.body.contains(r#"class="field-error" id="key-scopes-error""#));
    assert!(key.body.contains(r#"value="nightly export""#), "the name is kept");
    assert!(key.body.contains("nonsense</textarea>"), "the scopes are kept");
    assert!(key.body.contains(r#"value="9""#), "the days are kept");

    let invite = client
        .post(
            "/invitations",
            &[("csrf", &csrf), ("email", "not an address"), ("roles", "viewer")],
        )
        .await;
    assert_eq!(invite.status, StatusCode::BAD_REQUEST, "{invite:?}");
    assert!(invite.body.contains(r#"id="invite-email-error""#));
    assert!(invite.body.contains(r#"value="not an address""#));
    assert!(
        invite.body.contains(r#"<option value="viewer" selected>"#),
        "the role is kept"
    );

    let grant = client
        .post(
            "/support-access",
            &[
                ("csrf", &csrf),
                ("staff", "usr_nobody"),
                ("reason", "case 12"),
                ("hours", "5"),
            ],
        )
        .await;
    assert_eq!(grant.status, StatusCode::BAD_REQUEST, "{grant:?}");
    assert!(grant.body.contains(r#"id="grant-staff-error""#));
    assert!(grant.body.contains(r#"value="case 12""#));

    let too_long = client
        .post(
            "/support-access",
            &[
                ("csrf", &csrf),
                ("staff", &portal.demo.user("sam").unwrap().id.to_string()),
                ("reason", "case 12"),
                ("hours", "500"),
            ],
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST, "{too_long:?}");
    assert!(
        too_long.body.contains(r#"id="grant-hours-error""#),
        "hours named: {}",
        too_long.body
    );

    let role = client
        .post(
            "/roles",
            &[("csrf", &csrf), ("name", "Bad Name"), ("permissions", "reports read")],
        )
        .await;
    assert_eq!(role.status, StatusCode::BAD_REQUEST, "{role:?}");
    assert!(role.body.contains(r#"id="role-name-error""#));
    assert!(role.body.contains("reports read</textarea>"));

    let audit = client.get("/audit?from=yesterday&action=member.added").await;
    assert_eq!(audit.status, StatusCode::BAD_REQUEST, "{audit:?}");
    assert!(audit.body.contains(r#"id="audit-from-error""#));
    assert!(audit.body.contains(r#"value="member.added""#));
}

/// A new API key's secret is on the answer to its form once, never on the list; revoking
/// is behind a confirmation, and the revoked key no longer authenticates.
#[tokio::test]
async fn an_api_key_secret_is_shown_once_and_revoking_it_is_confirmed() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let list = client.get("/api-keys").await;
    let made = client
        .post(
            "/api-keys",
            &[
                ("csrf", &list.csrf()),
                ("name", "ci"),
                ("scopes", "cases/* read"),
                ("days", "30"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{made:?}");
    let re = regex::Regex::new(r#"<code class="token">(pk_live_[^<]+)</code>"#).unwrap();
    let secret = re.captures(&made.body).expect("the secret shown")[1].to_owned();
    let org = portal.demo.acme;
    let works = call(
        &portal,
        &secret,
        Method::GET,
        &format!("/v1/orgs/{org}/workflows"),
        None,
    )
    .await;
    assert!(works["items"].is_array(), "the key works: {works}");

    let again = client.get("/api-keys").await;
    assert!(!again.body.contains(&secret), "the secret is shown once");
    let revoke = again
        .post_forms()
        .into_iter()
        .find(|f| f.starts_with("/api-keys/") && f.ends_with("/revoke"))
        .unwrap();
    assert!(
        again.body.contains("<summary>Revoke…</summary>") && again.body.contains("Confirm: revoke"),
        "revoking is behind a disclosure"
    );
    let revoked = client.post(&revoke, &[("csrf", &again.csrf())]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{revoked:?}");
    let refused = call(
        &portal,
        &secret,
        Method::GET,
        &format!("/v1/orgs/{org}/workflows"),
        None,
    )
    .await;
    assert_eq!(refused["status"], 401, "a revoked key no longer works: {refused}");
    assert!(client.get("/api-keys").await.body.contains("revoked"));
}

/// An owner invites with the form (the token shown once), sees the invitation listed and
/// revokes it behind a confirmation.
#[tokio::test]
async fn an_owner_invites_and_revokes_with_the_forms() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let list = client.get("/invitations").await;
    let made = client
        .post(
            "/invitations",
            &[
                ("csrf", &list.csrf()),
                ("email", "new.hire@acme.example"),
                ("roles", "viewer"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{made:?}");
    assert!(made.body.contains(r#"<code class="token">"#), "the token is shown once");
    let page = client.get("/invitations").await;
    assert!(page.body.contains("new.hire@acme.example"));
    assert!(!page.body.contains(r#"<code class="token">"#));
    let revoke = page
        .post_forms()
        .into_iter()
        .find(|f| f.starts_with("/invitations/"))
        .unwrap();
    let revoked = client.post(&revoke, &[("csrf", &page.csrf())]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{revoked:?}");
    assert!(client.get("/invitations").await.body.contains("revoked"));
}

/// The roles screen says what every built-in role can do; an owner makes a custom role
/// that inherits from one and deletes it.
#[tokio::test]
async fn roles_say_what_each_can_do_and_an_owner_makes_and_deletes_one() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let page = client.get("/roles").await;
    assert!(
        page.body.contains("<code>support_grants *</code>"),
        "admin's grants are listed"
    );
    assert!(page.body.contains("No custom roles yet"));
    let made = client
        .post(
            "/roles",
            &[
                ("csrf", &page.csrf()),
                ("name", "report-readers"),
                ("parent", "viewer"),
                ("permissions", "reports read\ndeny reports/secret read"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{made:?}");
    let page = client.get("/roles").await;
    assert!(page.body.contains("report-readers"));
    assert!(page.body.contains("<code>deny reports/secret read</code>"));
    let deleted = client
        .post("/roles/report-readers/delete", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{deleted:?}");
    assert!(!client.get("/roles").await.body.contains("report-readers"));
}

/// An owner edits a custom role (its permissions replaced; a refused edit shows again with
/// what was typed and the field marked), asks who may approve quotes and what a member can
/// do; the role's own edit form and the CSRF rule hold as for creating one.
#[tokio::test]
async fn an_owner_edits_a_role_and_asks_who_can_and_what_a_member_can_do() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let page = client.get("/roles").await;
    let made = client
        .post(
            "/roles",
            &[
                ("csrf", &page.csrf()),
                ("name", "report-readers"),
                ("permissions", "reports read"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{made:?}");
    let page = client.get("/roles").await;
    assert!(page.body.contains(r#"action="/roles/report-readers/edit""#));
    assert!(
        page.body.contains(">reports read</textarea>"),
        "the edit form holds the role's grants"
    );

    let forged = client
        .post(
            "/roles/report-readers/edit",
            &[("csrf", "not-the-token"), ("permissions", "reports forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");

    let refused = client
        .post(
            "/roles/report-readers/edit",
            &[
                ("csrf", &page.csrf()),
                ("parent", "viewer"),
                ("permissions", "reports export\nreports read all"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
    assert!(
        refused.body.contains(r#"id="edit-report-readers-permissions-error""#),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"<details id="edit-report-readers" open>"#));
    assert!(
        refused.body.contains("reports export\nreports read all</textarea>"),
        "what was typed is kept"
    );

    let saved = client
        .post(
            "/roles/report-readers/edit",
            &[
                ("csrf", &page.csrf()),
                ("parent", "viewer"),
                ("permissions", "reports export\ndeny reports delete"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{saved:?}");
    let page = client.get("/roles").await;
    assert!(page.body.contains("<code>reports export</code>"));
    assert!(page.body.contains("<code>deny reports delete</code>"));
    assert!(
        !page.body.contains("<code>reports read</code>"),
        "the old grant is gone"
    );
    let builtin = client
        .post(
            "/roles/admin/edit",
            &[("csrf", &page.csrf()), ("permissions", "reports read")],
        )
        .await;
    assert_eq!(builtin.status, StatusCode::CONFLICT, "{builtin:?}");
    assert!(builtin.body.contains("role.builtin"));

    let who = client.get("/roles?object=quotes%2Fwf_1&action=approve").await;
    assert_eq!(who.status, StatusCode::OK, "{who:?}");
    let table = who
        .body
        .split(r#"<table id="who-can-table">"#)
        .nth(1)
        .expect("a who-can table");
    let table = table.split("</table>").next().unwrap();
    assert!(
        table.contains("Ada Lovelace") && table.contains("Alan Turing"),
        "{table}"
    );
    assert!(
        !table.contains("Linus Torvalds") && !table.contains("Grace Hopper"),
        "{table}"
    );
    let missing = client.get("/roles?object=reports&action=").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{missing:?}");
    assert!(missing.body.contains(r#"id="who-action-error""#));
    assert!(missing.body.contains(r#"value="reports""#), "what was typed is kept");

    let linus = portal.demo.user("linus").unwrap().id;
    let rules = client.get(&format!("/roles?member={linus}")).await;
    assert_eq!(rules.status, StatusCode::OK, "{rules:?}");
    assert!(rules.body.contains("What Linus Torvalds"), "{}", rules.body);
    assert!(rules.body.contains("viewer: "));
    let bad = client.get("/roles?member=nobody").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
    assert!(bad.body.contains(r#"id="member-error""#));
}

/// An owner grants support access, sees it listed and revokes it; the support engineer's
/// views of the org under the demo's grant are listed to the owner.
#[tokio::test]
async fn an_owner_grants_and_revokes_support_access_and_sees_staff_views() {
    let portal = portal().await;
    let acme = portal.demo.acme;
    // Sam (vendor support, the demo's read-only grant to acme) looks at acme.
    let mut sam = Client::new(&portal);
    sam.sign_in(&portal, "sam").await;
    let mut ada = Client::new(&portal);
    ada.sign_in(&portal, "ada").await;
    let cases = ada.get("/cases").await;
    let request_id = cases.header("x-request-id").unwrap().to_owned();
    let looked = sam.get(&format!("/support?org={acme}&request={request_id}")).await;
    assert_eq!(looked.status, StatusCode::OK, "{looked:?}");
    // The staff view is a journal event, written by the buffered sink in the background.
    portal.background.flush().await;

    let page = ada.get("/support-access").await;
    let sam_id = portal.demo.user("sam").unwrap().id.to_string();
    let views = page
        .body
        .split(r#"id="staff-views""#)
        .nth(1)
        .unwrap_or_else(|| panic!("a table of staff views: {page:?}"));
    assert!(views.contains(&sam_id), "sam's views of acme are listed: {views}");

    let granted = ada
        .post(
            "/support-access",
            &[
                ("csrf", &page.csrf()),
                ("staff", &sam_id),
                ("reason", "export bug 4711"),
                ("access", "read_write"),
                ("hours", "4"),
            ],
        )
        .await;
    assert_eq!(granted.status, StatusCode::SEE_OTHER, "{granted:?}");
    let page = ada.get("/support-access").await;
    assert!(page.body.contains("export bug 4711"));
    assert!(page.body.contains("read and write"));
    let revokes: Vec<String> = page
        .post_forms()
        .into_iter()
        .filter(|f| f.starts_with("/support-access/"))
        .collect();
    assert_eq!(revokes.len(), 2, "both active grants can be revoked: {revokes:?}");
    for revoke in &revokes {
        let answer = ada.post(revoke, &[("csrf", &page.csrf())]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");
    }
    let after = sam.get(&format!("/support?org={acme}&request={request_id}")).await;
    assert_eq!(
        after.status,
        StatusCode::NOT_FOUND,
        "revoked: sam no longer reaches acme"
    );
}

/// The audit log screen filters by action, pages with the cursor and links the export of
/// what it filters.
#[tokio::test]
async fn the_audit_log_filters_pages_and_links_its_export() {
    let portal = portal().await;
    let ada_token = token(&portal, "ada").await;
    let acme = portal.demo.acme;
    let seeded = call(
        &portal,
        &ada_token,
        Method::GET,
        &format!("/v1/orgs/{acme}/audit-events?action=invitation.created&limit=100"),
        None,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .len();
    let total = seeded + 22;
    for n in 0..22 {
        let answer = call(
            &portal,
            &ada_token,
            Method::POST,
            &format!("/v1/orgs/{acme}/invitations"),
            Some(json!({ "email": format!("hire{n}@acme.example"), "roles": ["viewer"] })),
        )
        .await;
        assert!(answer["invitation"].is_object(), "{answer}");
    }
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let page = client.get("/audit?action=invitation.created").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.body.matches("<code>invitation.created</code>").count(), 20);
    let re = regex::Regex::new(r#"<a href="/audit\?([^"]+)" rel="next">"#).unwrap();
    let next = re.captures(&page.body).expect("a next page")[1].replace("&#38;", "&");
    assert!(next.contains("action=invitation.created"), "the filter is kept: {next}");
    let mut shown = 20;
    let mut next = Some(next);
    while let Some(query) = next.take() {
        let more = client.get(&format!("/audit?{query}")).await;
        assert_eq!(more.status, StatusCode::OK, "{more:?}");
        assert!(more.body.contains(">First page</a>"), "a later page links the first");
        shown += more.body.matches("<code>invitation.created</code>").count();
        next = re.captures(&more.body).map(|c| c[1].replace("&#38;", "&"));
    }
    assert_eq!(shown, total, "the pages show every event once");
    assert!(page.body.contains(&format!(
        "/v1/orgs/{acme}/audit-events/export?action=invitation.created&#38;format=csv"
    )));
    let export = client
        .get(&format!(
            "/v1/orgs/{acme}/audit-events/export?action=invitation.created&format=csv"
        ))
        .await;
    assert_eq!(
        export.status,
        StatusCode::OK,
        "the export link works with the page's cookie"
    );
    assert_eq!(export.body.lines().count(), total + 1, "a header and every event");
}

/// The workflow definitions screen shows each shipped definition's states, transitions
/// (with what they ask) and Mermaid text, escaped.
#[tokio::test]
async fn definitions_show_states_transitions_and_mermaid() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "linus").await;
    let page = client.get("/definitions").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    for name in ["support_case", "return_request", "quote_approval"] {
        assert!(page.body.contains(&format!(r#"<section id="d-{name}""#)), "{name}");
    }
    assert!(page.body.contains("stateDiagram-v2"));
    assert!(page.body.contains("approval(s) by"), "the quote's vote is described");
    assert!(page.body.contains("[*] --&#62;"), "the Mermaid text is shown, escaped");
}

/// A user ends another of their sessions from the list; ending the current one signs out.
#[tokio::test]
async fn a_user_ends_their_other_session_and_then_this_one() {
    let portal = portal().await;
    let mut laptop = Client::new(&portal);
    laptop.sign_in(&portal, "grace").await;
    let mut phone = Client::new(&portal);
    phone.sign_in(&portal, "grace").await;
    let page = laptop.get("/sessions").await;
    assert!(page.body.contains("(this one)"));
    let re = regex::Regex::new(r#"<code>(ses_[0-9a-z]+)</code>( <strong>\(this one\)</strong>)?"#).unwrap();
    let mut other = None;
    let mut mine = None;
    for c in re.captures_iter(&page.body) {
        if c.get(2).is_some() {
            mine = Some(c[1].to_owned());
        } else {
            other = Some(c[1].to_owned());
        }
    }
    let (other, mine) = (other.expect("the phone's session"), mine.expect("this session"));
    let ended = laptop
        .post(&format!("/sessions/{other}/revoke"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{ended:?}");
    assert_eq!(
        phone.get("/cases").await.header("location"),
        Some("/sign-in"),
        "the phone is signed out"
    );
    let out = laptop
        .post(&format!("/sessions/{mine}/revoke"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(out.header("location"), Some("/sign-in"));
    assert_eq!(laptop.get("/cases").await.header("location"), Some("/sign-in"));
}

/// The owner renames acme on its screen: the rename lands on the screen again, which says
/// so, and the header's org switcher shows the new name; a blank name is marked on its
/// field with what was typed kept; a viewer who posts the form anyway is refused by the
/// API (`403 access.denied`) and the name stays.
#[tokio::test]
async fn the_owner_renames_the_org_on_its_screen_and_a_viewer_cannot() {
    let portal = portal().await;
    let mut ada = Client::new(&portal);
    ada.sign_in(&portal, "ada").await;
    let page = ada.get("/organization").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(r#"<dd id="org-name">Acme Corporation</dd>"#),
        "{}",
        page.body
    );
    assert!(page.post_forms().contains(&"/organization".to_owned()));

    let blank = ada
        .post("/organization", &[("csrf", &page.csrf()), ("name", "   ")])
        .await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST, "{}", blank.body);
    assert!(
        blank.body.contains(r#"aria-describedby="org-new-name-error""#),
        "{}",
        blank.body
    );
    assert!(blank.body.contains("validation.invalid_field"));

    let renamed = ada
        .post(
            "/organization",
            &[("csrf", &page.csrf()), ("name", "Acme Europe <GmbH>")],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.body);
    assert_eq!(renamed.header("location"), Some("/organization?renamed=1"));
    let shown = ada.get("/organization?renamed=1").await;
    assert!(shown.body.contains(r#"id="renamed""#), "{}", shown.body);
    assert!(
        shown.body.contains("Acme Europe &#60;GmbH&#62;") && !shown.body.contains("<GmbH>"),
        "escaped: {}",
        shown.body
    );
    assert!(
        !shown.body.contains("Acme Corporation"),
        "the switcher too: {}",
        shown.body
    );

    let mut linus = Client::new(&portal);
    linus.sign_in(&portal, "linus").await;
    let csrf = linus.get("/organization").await.csrf();
    let refused = linus
        .post("/organization", &[("csrf", &csrf), ("name", "Linus Inc.")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body.contains("access.denied"));
    let after = ada.get("/organization").await;
    assert!(after.body.contains("Acme Europe &#60;GmbH&#62;"), "the name stays");
}
