//! Support bundles (`GET …/diagnostics/support-bundle`) and journal exports
//! (`GET …/diagnostics/export`, JSON lines): the org's admins see their org redacted,
//! vendor staff with a grant see everything, members and other orgs see nothing.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::common::{TestApp, app};

/// The viewer linus tries to invite someone: refused (`access.denied`). Answers the
/// request id, with the journal flushed.
async fn refused_invitation(app: &TestApp) -> String {
    let viewer = app.token("linus").await;
    let refused = app
        .post(
            &viewer,
            &format!("/v1/orgs/{}/invitations", app.acme()),
            json!({ "email": "eve@acme.example", "roles": ["owner"] }),
        )
        .await;
    assert_eq!(refused.code(), "access.denied");
    app.background.flush().await;
    refused.body["request_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_admin_gets_the_orgs_bundle_and_support_the_full_one() {
    let app = app().await;
    let request_id = refused_invitation(&app).await;
    let uri = format!("/v1/orgs/{}/diagnostics/support-bundle", app.acme());

    let admin = app.token("alan").await;
    let bundle = app.get(&admin, &uri).await;
    assert_eq!(bundle.status, StatusCode::OK, "{bundle:?}");
    assert_eq!(bundle.body["org"], app.acme());
    assert_eq!(bundle.body["viewer"], "customer");
    assert!(bundle.body["user"].is_null());
    let failures = bundle.body["failures"].as_array().unwrap();
    let denied = failures
        .iter()
        .find(|f| f["last_request"] == request_id.as_str())
        .unwrap_or_else(|| panic!("{request_id} in {failures:?}"));
    assert_eq!(denied["code"], "access.denied");
    assert!(denied["count"].as_u64().unwrap() >= 1);
    let members: Vec<&str> = bundle.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    for local in ["ada", "alan", "grace", "linus"] {
        assert!(members.contains(&app.user_id(local).as_str()), "{local} in {members:?}");
    }
    assert!(
        !members.contains(&app.user_id("hedy").as_str()),
        "never another org's people"
    );
    let session_users: Vec<&str> = bundle.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user"].as_str().unwrap())
        .collect();
    assert!(
        session_users.contains(&app.user_id("alan").as_str()),
        "{session_users:?}"
    );
    assert!(session_users.contains(&app.user_id("linus").as_str()));

    let staff = app.token("sam").await;
    let support = app.get(&staff, &uri).await;
    assert_eq!(support.status, StatusCode::OK, "{support:?}");
    assert_eq!(support.body["viewer"], "support");
}

#[tokio::test]
async fn a_users_bundle_holds_only_that_user() {
    let app = app().await;
    refused_invitation(&app).await;
    let admin = app.token("alan").await;
    let linus = app.user_id("linus");
    let bundle = app
        .get(
            &admin,
            &format!("/v1/orgs/{}/diagnostics/support-bundle?user={linus}", app.acme()),
        )
        .await;
    assert_eq!(bundle.status, StatusCode::OK, "{bundle:?}");
    assert_eq!(bundle.body["user"], linus.as_str());
    let memberships = bundle.body["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 1, "{memberships:?}");
    assert_eq!(memberships[0]["roles"], json!(["viewer"]));
    let sessions = bundle.body["sessions"].as_array().unwrap();
    assert!(!sessions.is_empty(), "linus signed in: {bundle:?}");
    assert!(sessions.iter().all(|s| s["user"] == linus.as_str()), "{sessions:?}");
    assert!(
        bundle.body["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "access.denied")
    );
    // Grace failed nothing.
    let grace = app
        .get(
            &admin,
            &format!(
                "/v1/orgs/{}/diagnostics/support-bundle?user={}",
                app.acme(),
                app.user_id("grace")
            ),
        )
        .await;
    assert_eq!(grace.body["failures"], json!([]), "{grace:?}");
}

#[tokio::test]
async fn bundle_refusals() {
    let app = app().await;
    let uri = format!("/v1/orgs/{}/diagnostics/support-bundle", app.acme());
    let member = app.token("grace").await;
    let denied = app.get(&member, &uri).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");
    let outsider = app.token("hedy").await;
    let hidden = app.get(&outsider, &uri).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.code(), "org.not_found");
    let admin = app.token("alan").await;
    let bad_user = app.get(&admin, &format!("{uri}?user=linus")).await;
    assert_eq!(bad_user.code(), "validation.invalid_field");
    assert_eq!(bad_user.body["param"], "user");
    let unknown = app.get(&admin, &format!("{uri}?since=yesterday")).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{unknown:?}");
    let bad_org = app.get(&admin, "/v1/orgs/acme/diagnostics/support-bundle").await;
    assert_eq!(bad_org.body["param"], "org_id");
}

/// A raw GET: the export's body is JSON lines, not one JSON document.
async fn export(app: &TestApp, token: &str, query: &str) -> (StatusCode, String, String) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/orgs/{}/diagnostics/export{query}", app.acme()))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The permission decision of `request_id` that denied it.
fn denial<'a>(events: &'a [Value], request_id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["request_id"] == request_id && e["kind"] == "permission_decision")
        .unwrap_or_else(|| panic!("no decision of {request_id} in {events:?}"))
}

#[tokio::test]
async fn the_export_is_json_lines_redacted_for_the_orgs_admins() {
    let app = app().await;
    let request_id = refused_invitation(&app).await;

    let admin = app.token("alan").await;
    let (status, content_type, text) = export(&app, &admin, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "application/x-ndjson");
    assert!(text.ends_with('\n'));
    let events = lines(&text);
    assert!(events.iter().all(|e| e["org"] == app.acme()), "only acme's events");
    let decision = &denial(&events, &request_id)["detail"]["decision"];
    assert_eq!(decision["decision"], "denied");
    assert!(
        decision.get("reason").is_none(),
        "the customer view drops the reason: {decision}"
    );

    let staff = app.token("sam").await;
    let (status, _, text) = export(&app, &staff, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let events = lines(&text);
    assert!(
        denial(&events, &request_id)["detail"]["decision"]
            .get("reason")
            .is_some(),
        "support sees why"
    );

    // A window before anything happened is empty.
    let (status, _, text) = export(&app, &admin, "?from=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "");
}

#[tokio::test]
async fn export_refusals() {
    let app = app().await;
    let admin = app.token("alan").await;
    let problem = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    for (query, param) in [
        ("?from=yesterday", "from"),
        ("?until=soon", "until"),
        ("?from=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("?from=2026-01-01T00:00:00Z&until=2026-03-01T00:00:00Z", "until"),
    ] {
        let (status, content_type, text) = export(&app, &admin, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {text}");
        assert_eq!(content_type, "application/problem+json");
        let body = problem(&text);
        assert_eq!(body["code"], "validation.invalid_field");
        assert_eq!(body["param"], param, "{query}");
    }
    let member = app.token("grace").await;
    let (status, _, text) = export(&app, &member, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem(&text)["code"], "access.denied");
    let outsider = app.token("hedy").await;
    let (status, _, text) = export(&app, &outsider, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem(&text)["code"], "org.not_found");
}

/// The leak of issue 18: an owner of one org asked its bundle for a user of another org and
/// got that user's sessions. A user who is not a member of the org answers exactly what an
/// unknown user answers (`member.not_found`), so the bundle is no existence oracle either.
#[tokio::test]
async fn another_orgs_user_is_not_found_in_a_bundle() {
    let app = app().await;
    // Linus (acme) has a live session; hedy owns globex, and anyone may make an org.
    app.token("linus").await;
    let hedy = app.token("hedy").await;
    let grace = app.token("grace").await;
    let own = app
        .post(
            &grace,
            "/v1/orgs",
            json!({ "slug": "graces-own", "name": "Grace's own" }),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{own:?}");
    let own = own.body["id"].as_str().unwrap().to_owned();
    let unknown = "usr_00000000000000000000000000";
    for (token, org, user) in [
        (&hedy, app.globex(), app.user_id("linus")),
        (&grace, own.clone(), app.user_id("hedy")),
        (&grace, own.clone(), app.user_id("linus")),
        (&hedy, app.globex(), unknown.to_owned()),
    ] {
        let bundle = app
            .get(token, &format!("/v1/orgs/{org}/diagnostics/support-bundle?user={user}"))
            .await;
        bundle.assert_problem(StatusCode::NOT_FOUND, "member.not_found");
        assert_eq!(bundle.body["param"], "user", "{bundle:?}");
        let text = bundle.body.to_string();
        assert!(!text.contains("ses_"), "no session of {user}: {text}");
    }
    // The org's own member is still found.
    let barbara = app
        .get(
            &hedy,
            &format!(
                "/v1/orgs/{}/diagnostics/support-bundle?user={}",
                app.globex(),
                app.user_id("barbara")
            ),
        )
        .await;
    assert_eq!(barbara.status, StatusCode::OK, "{barbara:?}");
}

/// Staff under a grant calling an operation that authorizes at the edge before it parses
/// (the request view): the grant's use is read and recorded once for the request, not once
/// by the edge and again by the service.
#[tokio::test]
async fn a_grants_use_is_recorded_once_per_request() {
    let app = app().await;
    let acme = app.acme();
    let staff = app.token("sam").await;
    let looked = app
        .get(
            &staff,
            &format!("/v1/orgs/{acme}/diagnostics/requests/req_01jz0000000000000000000000"),
        )
        .await;
    assert_eq!(looked.status, StatusCode::OK, "{looked:?}");
    let request = looked.header("x-request-id").unwrap().to_owned();
    app.background.flush().await;

    let owner = app.token("ada").await;
    let events = app
        .get(&owner, &format!("/v1/orgs/{acme}/diagnostics/requests/{request}"))
        .await;
    assert_eq!(events.status, StatusCode::OK, "{events:?}");
    let uses = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "support.access")
        .count();
    assert_eq!(uses, 1, "{events:?}");
}
