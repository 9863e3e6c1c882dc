//! `POST /v1/auth/switch-org`: the session moves to another of the user's orgs and is
//! rotated (new token and CSRF token in the cookies, the token in the body only for a
//! bearer caller; the old token dead; the absolute expiry kept); refused for an org the
//! user is not in, for an API key, and without the CSRF token.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::common::{Answer, TestApp, app};

fn set_cookie<'a>(answer: &'a Answer, name: &str) -> &'a str {
    let line = answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {answer:?}"));
    line[name.len() + 1..].split(';').next().unwrap()
}

/// Ada (an owner of acme) makes a second org, `initech`, and answers its id.
async fn second_org(app: &TestApp, token: &str) -> String {
    let created = app
        .post(token, "/v1/orgs", json!({ "slug": "initech", "name": "Initech" }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    created.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn switching_rotates_the_session_into_the_other_org() {
    let app = app().await;
    let old = app.token("ada").await;
    let initech = second_org(&app, &old).await;
    let before = app.get(&old, "/v1/auth/me").await;
    assert_eq!(before.body["org"], app.acme());

    let switched = app
        .post(&old, "/v1/auth/switch-org", json!({ "org_id": initech }))
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{switched:?}");
    let new = switched.body["session_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(switched.body["session"]["active_org"], initech.as_str());
    assert_eq!(switched.body["session"]["current"], true);
    assert_eq!(set_cookie(&switched, "portal_session"), new, "the new session's cookie");
    assert_eq!(
        set_cookie(&switched, "portal_csrf"),
        switched.body["csrf_token"].as_str().unwrap()
    );

    let me = app.get(new, "/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["org"], initech.as_str());
    assert_eq!(me.body["session"], switched.body["session"]["id"]);
    let dead = app.get(&old, "/v1/auth/me").await;
    assert_eq!(dead.status, StatusCode::UNAUTHORIZED, "the old token stops working");
    assert_eq!(dead.code(), "auth.invalid_credentials");

    // And back: acme's cases are readable again with the newest token.
    let back = app
        .post(new, "/v1/auth/switch-org", json!({ "org_id": app.acme() }))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{back:?}");
    assert_eq!(back.body["session"]["active_org"], app.acme());
}

#[tokio::test]
async fn a_cookie_session_switches_with_its_csrf_token_and_gets_new_cookies() {
    let app = app().await;
    let signed_in = app.sign_in_answer("ada").await;
    let session = signed_in.body["session_token"].as_str().unwrap().to_owned();
    let csrf = signed_in.body["csrf_token"].as_str().unwrap().to_owned();
    let initech = second_org(&app, &session).await;
    let request = |csrf: Option<&str>| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/switch-org")
            .header(header::COOKIE, format!("portal_session={session}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(csrf) = csrf {
            builder = builder.header("x-csrf-token", csrf);
        }
        builder
            .body(Body::from(json!({ "org_id": initech }).to_string()))
            .unwrap()
    };
    let refused = app.send(request(None)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "auth.csrf_rejected");

    let switched = app.send(request(Some(&csrf))).await;
    assert_eq!(switched.status, StatusCode::OK, "{switched:?}");
    let new = set_cookie(&switched, "portal_session");
    assert!(new.starts_with("pss_"), "{switched:?}");
    assert!(
        switched.body.get("session_token").is_none(),
        "a cookie caller gets the new token only in the HttpOnly cookie, never where scripts read it: {:?}",
        switched.body
    );
    assert_eq!(
        set_cookie(&switched, "portal_csrf"),
        switched.body["csrf_token"].as_str().unwrap()
    );
    assert_ne!(
        set_cookie(&switched, "portal_csrf"),
        csrf,
        "a new session, a new CSRF token"
    );
    let me = app
        .send(
            Request::get("/v1/auth/me")
                .header(header::COOKIE, format!("portal_session={new}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.body["org"], initech.as_str(), "{me:?}");
}

#[tokio::test]
async fn switching_keeps_the_sessions_absolute_expiry() {
    let app = app().await;
    let signed_in = app.sign_in_answer("ada").await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    let expiry = signed_in.body["session"]["absolute_expires_at"].clone();
    let mut token = signed_in.body["session_token"].as_str().unwrap().to_owned();
    let initech = second_org(&app, &token).await;

    // Switching again and again, even to the org the session is already in, never
    // extends the session past the end it had at sign-in.
    for org in [initech.clone(), initech.clone(), app.acme()] {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let switched = app.post(&token, "/v1/auth/switch-org", json!({ "org_id": org })).await;
        assert_eq!(switched.status, StatusCode::OK, "{switched:?}");
        assert_eq!(
            switched.body["session"]["absolute_expires_at"], expiry,
            "the rotated session keeps the original absolute expiry"
        );
        token = switched.body["session_token"].as_str().unwrap().to_owned();
    }
    let sessions = app.get(&token, "/v1/sessions").await;
    let current = sessions.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap_or_else(|| panic!("{sessions:?}"));
    assert_eq!(current["absolute_expires_at"], expiry, "as stored");
}

#[tokio::test]
async fn switch_refusals() {
    let app = app().await;
    let ada = app.token("ada").await;

    // Not a member of globex: 404, as any org the caller cannot reach; the session lives on.
    let outside = app
        .post(&ada, "/v1/auth/switch-org", json!({ "org_id": app.globex() }))
        .await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    assert_eq!(outside.code(), "org.not_found");
    assert_eq!(app.get(&ada, "/v1/auth/me").await.status, StatusCode::OK);

    let malformed = app.post(&ada, "/v1/auth/switch-org", json!({ "org_id": "acme" })).await;
    assert_eq!(malformed.code(), "validation.invalid_field");
    assert_eq!(malformed.body["param"], "org_id");
    let missing = app.post(&ada, "/v1/auth/switch-org", json!({})).await;
    assert_eq!(missing.body["param"], "org_id", "{missing:?}");

    // An API key has no session to switch.
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let key = app
        .post(
            &ada,
            &format!("/v1/orgs/{}/api-keys", app.acme()),
            json!({ "name": "k", "scopes": ["cases/* read"], "expires_at": expires }),
        )
        .await;
    let key = key.body["key"].as_str().unwrap();
    let by_key = app
        .post(key, "/v1/auth/switch-org", json!({ "org_id": app.acme() }))
        .await;
    assert_eq!(by_key.status, StatusCode::FORBIDDEN);
    assert_eq!(by_key.code(), "access.denied");

    let anonymous = app
        .send(
            Request::post("/v1/auth/switch-org")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({ "org_id": app.acme() }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.code(), "auth.unauthenticated");
    let forged = app
        .post(
            "pss_not-a-real-session-token",
            "/v1/auth/switch-org",
            json!({ "org_id": app.acme() }),
        )
        .await;
    assert_eq!(forged.code(), "auth.invalid_credentials");
}

/// Issue 18: a failed switch to an org the user is not a member of was filed under the
/// *target* org (its owner saw the outsider's user id) while the user's own org explained
/// the request as a success. It is filed under the user's own org, which explains the
/// failure; the target org sees nothing of it.
#[tokio::test]
async fn a_refused_switch_is_the_users_orgs_business_not_the_targets() {
    let app = app().await;
    let ada = app.token("ada").await;
    let outside = app
        .post(&ada, "/v1/auth/switch-org", json!({ "org_id": app.globex() }))
        .await;
    outside.assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    let request_id = outside.header("x-request-id").unwrap().to_owned();
    app.background.flush().await;

    let hedy = app.token("hedy").await;
    let globex = app.globex();
    let seen = app
        .get(&hedy, &format!("/v1/orgs/{globex}/diagnostics/requests/{request_id}"))
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
    assert_eq!(seen.body["items"], json!([]), "globex sees nothing of it: {seen:?}");
    let timeline = app
        .get(&hedy, &format!("/v1/orgs/{globex}/diagnostics/timeline?limit=100"))
        .await;
    assert_eq!(timeline.status, StatusCode::OK, "{timeline:?}");
    assert!(
        !timeline.body.to_string().contains(&app.user_id("ada")),
        "no trace of ada in globex: {timeline:?}"
    );

    let owner = app.token("ada").await;
    let explained = app
        .get(
            &owner,
            &format!("/v1/orgs/{}/diagnostics/requests/{request_id}/explain", app.acme()),
        )
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{explained:?}");
    assert_eq!(explained.body["root_cause"], "org.not_found", "{explained:?}");
    assert_eq!(explained.body["failed_step"], "auth.session.rotate", "{explained:?}");
}
