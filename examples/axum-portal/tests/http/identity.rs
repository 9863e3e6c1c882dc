//! Sign-in, cookies and CSRF, sign-out, sessions, API keys, and the sign-in rate limit.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::common::{Answer, TestApp, app, app_with};

fn cookies(answer: &Answer) -> Vec<String> {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value<'a>(set_cookies: &'a [String], name: &str) -> &'a str {
    let line = set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"));
    line[name.len() + 1..].split(';').next().unwrap()
}

#[tokio::test]
async fn sign_in_answers_a_token_and_sets_an_http_only_lax_cookie() {
    let app = app().await;
    let answer = app.sign_in_answer("ada").await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let token = answer.body["session_token"].as_str().unwrap();
    assert!(token.starts_with("pss_"));
    assert_eq!(answer.body["session"]["current"], true);
    let set = cookies(&answer);
    let session = set.iter().find(|c| c.starts_with("portal_session=")).unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    assert!(!session.contains("Secure"), "cookie_secure is off in tests");
    assert_eq!(cookie_value(&set, "portal_session"), token);
    let csrf = set.iter().find(|c| c.starts_with("portal_csrf=")).unwrap();
    assert!(!csrf.contains("HttpOnly"), "scripts read the CSRF cookie");
    assert_eq!(
        cookie_value(&set, "portal_csrf"),
        answer.body["csrf_token"].as_str().unwrap()
    );
    assert!(answer.header("x-request-id").unwrap().starts_with("req_"));
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let app = app_with(|c| c.http.cookie_secure = true).await;
    let answer = app.sign_in_answer("ada").await;
    let set = cookies(&answer);
    assert!(set.iter().all(|c| c.contains("Secure")), "{set:?}");
    // Secure cookies take the `__Host-` prefix: the browser then keeps them only from
    // HTTPS, for this host alone (no `Domain`), on `Path=/`, so a sibling subdomain or a
    // plain-HTTP page cannot plant or shadow them.
    let session = cookie_value(&set, "__Host-portal_session");
    assert_eq!(session, answer.body["session_token"].as_str().unwrap());
    assert_eq!(
        cookie_value(&set, "__Host-portal_csrf"),
        answer.body["csrf_token"].as_str().unwrap()
    );
    assert!(
        set.iter().all(|c| c.contains("Path=/") && !c.contains("Domain")),
        "{set:?}"
    );
    assert!(!set.iter().any(|c| c.starts_with("portal_")), "{set:?}");

    // The server reads the prefixed cookie, and only that one.
    let me = |cookie: String| {
        Request::get("/v1/auth/me")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap()
    };
    let answer = app.send(me(format!("__Host-portal_session={session}"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["via"], "cookie");
    let answer = app.send(me(format!("portal_session={session}"))).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "the unprefixed name is not read when cookies are secure"
    );
}

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials() {
    let app = app().await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/sign-in")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({ "email": "ada@acme.example", "password": "wrong password!" }).to_string(),
        ))
        .unwrap();
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "auth.invalid_credentials");
}

#[tokio::test]
async fn sign_in_past_the_limit_is_429_with_retry_after() {
    let app = app().await;
    for _ in 0..5 {
        assert_eq!(app.sign_in_answer("grace").await.status, StatusCode::OK);
    }
    let answer = app.sign_in_answer("grace").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.code(), "rate_limit.exceeded");
    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(answer.body["retryable"], true);
}

#[tokio::test]
async fn requests_without_or_with_bad_credentials_are_401() {
    let app = app().await;
    let none = app.send(Request::get("/v1/auth/me").body(Body::empty()).unwrap()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "auth.unauthenticated");
    let basic = app
        .send(
            Request::get("/v1/auth/me")
                .header(header::AUTHORIZATION, "Basic YWRhOnB3")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(basic.code(), "auth.unauthenticated");
    let forged = app.get("pss_not-a-real-session-token", "/v1/auth/me").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.code(), "auth.invalid_credentials");
    let key = app.get("pk_live_abc_def", "/v1/auth/me").await;
    assert_eq!(key.code(), "auth.invalid_credentials");
}

#[tokio::test]
async fn me_answers_the_user_and_their_orgs() {
    let app = app().await;
    let token = app.token("ada").await;
    let me = app.get(&token, "/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["user"]["email"], "ada@acme.example");
    assert_eq!(me.body["via"], "bearer");
    assert_eq!(me.body["org"], app.acme());
    assert_eq!(me.body["orgs"][0]["roles"], json!(["owner"]));
}

/// A cookie request: the session cookie, and `csrf` as `X-CSRF-Token` when given.
fn cookie_request(method: Method, uri: &str, session: &str, csrf: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri).header(
        header::COOKIE,
        format!("portal_session={session}; portal_csrf=whatever"),
    );
    if let Some(csrf) = csrf {
        builder = builder.header("x-csrf-token", csrf);
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_change_state_and_bearer_calls_do_not() {
    let app = app().await;
    let signed_in = app.sign_in_answer("ada").await;
    let session = signed_in.body["session_token"].as_str().unwrap();
    let csrf = signed_in.body["csrf_token"].as_str().unwrap();
    let body = r#"{"slug":"initech","name":"Initech"}"#;

    // Reads need no token.
    let me = app
        .send(cookie_request(Method::GET, "/v1/auth/me", session, None, None))
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["via"], "cookie");

    for wrong in [None, Some("forged"), Some("")] {
        let refused = app
            .send(cookie_request(Method::POST, "/v1/orgs", session, wrong, Some(body)))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{wrong:?}");
        assert_eq!(refused.code(), "auth.csrf_rejected");
    }
    // Another session's CSRF token does not fit this one.
    let other = app.sign_in_answer("grace").await;
    let refused = app
        .send(cookie_request(
            Method::POST,
            "/v1/orgs",
            session,
            other.body["csrf_token"].as_str(),
            Some(body),
        ))
        .await;
    assert_eq!(refused.code(), "auth.csrf_rejected");

    let created = app
        .send(cookie_request(
            Method::POST,
            "/v1/orgs",
            session,
            Some(csrf),
            Some(body),
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");

    // A bearer call needs no CSRF token.
    let bearer = app
        .post(session, "/v1/orgs", json!({ "slug": "initrode", "name": "Initrode" }))
        .await;
    assert_eq!(bearer.status, StatusCode::CREATED, "{bearer:?}");
}

#[tokio::test]
async fn sign_out_ends_the_session_and_clears_the_cookies() {
    let app = app().await;
    let token = app.token("grace").await;
    let out = app.call(&token, Method::POST, "/v1/auth/sign-out", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    assert!(
        cookies(&out)
            .iter()
            .any(|c| c.starts_with("portal_session=;") || c.contains("Max-Age=0"))
    );
    let after = app.get(&token, "/v1/auth/me").await;
    assert_eq!(after.code(), "auth.invalid_credentials");
}

#[tokio::test]
async fn sessions_are_listed_and_revoked() {
    let app = app().await;
    let first = app.token("grace").await;
    let second = app.token("grace").await;
    let list = app.get(&second, "/v1/sessions").await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list:?}");
    let other = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = app.delete(&second, &format!("/v1/sessions/{other}")).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&first, "/v1/auth/me").await.code(), "auth.invalid_credentials");
    let unknown = app.delete(&second, "/v1/sessions/ses_01jd5x8y6kf3w9q2m7c4t0vbnr").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "session.not_found");
    // Another user's session is not found either.
    let ada = app.token("ada").await;
    let theirs = app.delete(&ada, &format!("/v1/sessions/{other}")).await;
    assert_eq!(theirs.code(), "session.not_found");
    let malformed = app.delete(&second, "/v1/sessions/not-an-id").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "validation.invalid_field");
    assert_eq!(malformed.body["param"], "session_id");
}

#[tokio::test]
async fn api_keys_are_created_used_listed_and_revoked() {
    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "export", "scopes": ["cases/* read"], "expires_at": expires }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["api_key"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pk_live_"));

    // The key reads cases in its org, and nothing its scopes do not name.
    let cases = app.get(&key, &format!("/v1/orgs/{acme}/workflows")).await;
    assert_eq!(cases.status, StatusCode::OK, "{cases:?}");
    let members = app.get(&key, &format!("/v1/orgs/{acme}/members")).await;
    assert_eq!(members.status, StatusCode::FORBIDDEN);
    assert_eq!(members.code(), "access.denied");
    let elsewhere = app.get(&key, &format!("/v1/orgs/{}/workflows", app.globex())).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{elsewhere:?}");

    let list = app.get(&owner, &format!("/v1/orgs/{acme}/api-keys")).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.body.to_string().contains(&key), "a listing never shows the key");

    let revoked = app.delete(&owner, &format!("/v1/orgs/{acme}/api-keys/{key_id}")).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(
        app.get(&key, &format!("/v1/orgs/{acme}/workflows")).await.code(),
        "auth.invalid_credentials"
    );
    let gone = app
        .delete(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys/key_01jd5x8y6kf3w9q2m7c4t0vbnr"),
        )
        .await;
    assert_eq!(gone.code(), "api_key.not_found");
}

#[tokio::test]
async fn api_key_refusals() {
    let app = app().await;
    let acme = app.acme();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let viewer = app.token("linus").await;
    let denied = app
        .post(
            &viewer,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "x", "scopes": ["cases/* read"], "expires_at": expires }),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");
    let owner = app.token("ada").await;
    let bad_scope = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "x", "scopes": ["cases/* read", "nospace"], "expires_at": expires }),
        )
        .await;
    assert_eq!(bad_scope.code(), "validation.invalid_field");
    assert_eq!(bad_scope.body["param"], "scopes[1]");
}

#[tokio::test]
async fn a_wildcard_scope_or_grant_cannot_escape_a_deny_its_creator_is_subject_to() {
    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    // Alan, an admin, may do anything on cases except approve them.
    let role = json!({
        "name": "no-approvals",
        "permissions": [{ "object": "cases/*", "action": "approve", "effect": "deny" }]
    });
    let created = app.post(&owner, &format!("/v1/orgs/{acme}/roles"), role).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let alan_id = app.user_id("alan");
    let assigned = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/members/{alan_id}/roles"),
            json!({ "role": "no-approvals" }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");

    let alan = app.token("alan").await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let keys = format!("/v1/orgs/{acme}/api-keys");
    let wildcard = app
        .post(
            &alan,
            &keys,
            json!({ "name": "all cases", "scopes": ["cases/* *"], "expires_at": expires }),
        )
        .await;
    wildcard.assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let reads = app
        .post(
            &alan,
            &keys,
            json!({ "name": "case reads", "scopes": ["cases/* read"], "expires_at": expires }),
        )
        .await;
    assert_eq!(reads.status, StatusCode::CREATED, "{reads:?}");

    // Nor through a custom role Alan writes and hands to someone else.
    let escalating = app
        .post(
            &alan,
            &format!("/v1/orgs/{acme}/roles"),
            json!({ "name": "all-cases", "permissions": [{ "object": "cases/*", "action": "*" }] }),
        )
        .await;
    escalating.assert_problem(StatusCode::FORBIDDEN, "access.denied");
}

/// Issue 18, bounded reads: a user's sessions are listed a page at a time (`limit`, and
/// the `next` cursor), never all at once; the pages hold every live session once, newest
/// first, and a cursor the listing did not return is refused.
#[tokio::test]
async fn sessions_page_with_a_cursor() {
    let app = app().await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.token("grace").await);
    }
    let token = &tokens[2];
    let all = app.get(token, "/v1/sessions?limit=100").await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    let every: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(every.len(), 3, "{all:?}");
    assert!(all.body["next"].is_null(), "{all:?}");
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let uri = match &next {
            Some(cursor) => format!("/v1/sessions?limit=1&cursor={cursor}"),
            None => "/v1/sessions?limit=1".to_owned(),
        };
        let page = app.get(token, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 1, "a page holds at most `limit`: {page:?}");
        paged.extend(items.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        match page.body["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
        assert!(paged.len() <= every.len(), "the pages end");
    }
    assert_eq!(paged, every, "the pages hold every session once, in order");
    let over = app.get(token, "/v1/sessions?limit=101").await;
    over.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let bad = app.get(token, "/v1/sessions?cursor=nope").await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(bad.body["param"], "cursor");
}

/// Reads the listing `uri` page by page with `?limit=1` and the `next` cursors; answers
/// the ids (at the JSON pointer `id`) of every page's items in order, checking each page
/// holds at most one.
async fn ids_page_by_page(app: &TestApp, token: &str, uri: &str, id: &str) -> Vec<String> {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page_uri = match &next {
            Some(cursor) => format!("{uri}{sep}limit=1&cursor={cursor}"),
            None => format!("{uri}{sep}limit=1"),
        };
        let page = app.get(token, &page_uri).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 1, "a page holds at most `limit`: {page:?}");
        ids.extend(
            items
                .iter()
                .map(|i| i.pointer(id).unwrap().as_str().unwrap().to_owned()),
        );
        match page.body["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => return ids,
        }
        assert!(ids.len() <= 100, "the pages end");
    }
}

/// Issue 18, bounded reads: an org's API keys are listed a page at a time (`limit`, and
/// the `next` cursor); the pages hold every key once, by id, and a cursor the listing did
/// not return is refused.
#[tokio::test]
async fn api_keys_page_with_a_cursor() {
    let app = app().await;
    let owner = app.token("ada").await;
    let keys = format!("/v1/orgs/{}/api-keys", app.acme());
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for name in ["one", "two", "three"] {
        let body = json!({ "name": name, "scopes": ["cases/* read"], "expires_at": expires });
        let created = app.post(&owner, &keys, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    }
    let all = app.get(&owner, &format!("{keys}?limit=100")).await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    let every: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(every.len(), 3, "{all:?}");
    assert!(all.body["next"].is_null(), "{all:?}");
    assert_eq!(ids_page_by_page(&app, &owner, &keys, "/id").await, every);
    let over = app.get(&owner, &format!("{keys}?limit=0")).await;
    over.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let bad = app.get(&owner, &format!("{keys}?cursor=nope")).await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(bad.body["param"], "cursor");
}

/// Issue 18, bounded reads: the caller's orgs are listed a page at a time (`limit`, and
/// the `next` cursor); the pages hold every org once, by id, and a cursor the listing did
/// not return is refused.
#[tokio::test]
async fn my_orgs_page_with_a_cursor() {
    let app = app().await;
    let token = app.token("grace").await;
    for slug in ["paged-one", "paged-two"] {
        let created = app
            .post(&token, "/v1/orgs", json!({ "slug": slug, "name": slug }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    }
    let all = app.get(&token, "/v1/orgs?limit=100").await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    let every: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(every.len() >= 3, "{all:?}");
    assert!(all.body["next"].is_null(), "{all:?}");
    assert_eq!(ids_page_by_page(&app, &token, "/v1/orgs", "/org/id").await, every);
    let over = app.get(&token, "/v1/orgs?limit=101").await;
    over.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    let bad = app.get(&token, "/v1/orgs?cursor=nope").await;
    bad.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(bad.body["param"], "cursor");
}
