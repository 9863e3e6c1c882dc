//! HTTP tests of the actix-web server through actix's test service (`init_service` +
//! `call_service`): every route of the table mounted, each route's success and its main
//! errors (the axum suite's key assertions, so both servers are shown to answer the same),
//! on a fresh in-memory SQLite portal with the demo data per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::num::NonZeroU32;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use portal_auth::identity::PasswordParams;
use portal_http::limiter::SignInLimit;
use portal_http::seed::{DEMO_PASSWORD, DemoData, seed_demo};
use portal_http::test_schema::TestSchema;
use portal_http::{Background, PortalConfig, connect};
use serde_json::{Value, json};

/// What a call answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Value,
}

impl Answer {
    /// The problem's `code`, asserting the body is problem+json whose request id is the
    /// `X-Request-Id` header.
    fn code(&self) -> &str {
        assert_eq!(
            self.header("content-type").unwrap(),
            "application/problem+json",
            "{self:?}"
        );
        assert_eq!(
            self.body["request_id"].as_str().unwrap(),
            self.header("x-request-id").unwrap()
        );
        assert_eq!(self.body["status"], self.status.as_u16());
        self.body["code"].as_str().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

async fn answer(response: ServiceResponse<BoxBody>) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Answer { status, headers, body }
}

struct TestApp<S> {
    service: S,
    background: Background,
    demo: DemoData,
}

async fn app()
-> TestApp<impl Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>> {
    app_with(|_| {}).await
}

async fn app_with(
    change: impl FnOnce(&mut PortalConfig),
) -> TestApp<impl Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>> {
    let mut config = PortalConfig::new("sqlite::memory:");
    config.password_params = Some(PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    });
    config.http.cookie_secure = false;
    config.http.body_limit = 4 * 1024;
    config.http.sign_in_limit = SignInLimit {
        per_minute: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(20).unwrap(),
    };
    change(&mut config);
    let (api, background) = connect(&config).await.expect("connect");
    let demo = seed_demo(&api).await.expect("seed");
    let service = init_service(example_actix_portal::app(api)).await;
    TestApp {
        service,
        background,
        demo,
    }
}

impl<S> TestApp<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    async fn send(&self, request: TestRequest) -> Answer {
        answer(call_service(&self.service, request.to_request()).await).await
    }

    async fn call(&self, token: &str, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let mut request = TestRequest::default()
            .method(method)
            .uri(uri)
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        if let Some(body) = body {
            request = request
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body.to_string());
        }
        self.send(request).await
    }

    async fn get(&self, token: &str, uri: &str) -> Answer {
        self.call(token, Method::GET, uri, None).await
    }

    async fn post(&self, token: &str, uri: &str, body: Value) -> Answer {
        self.call(token, Method::POST, uri, Some(body)).await
    }

    async fn delete(&self, token: &str, uri: &str) -> Answer {
        self.call(token, Method::DELETE, uri, None).await
    }

    /// A JSON write with the bearer `token` and, when given, `If-Match` and
    /// `Idempotency-Key`: how the workflow writes are called.
    async fn conditional(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        if_match: Option<&str>,
        key: Option<&str>,
        body: &Value,
    ) -> Answer {
        let mut request = TestRequest::default()
            .method(method)
            .uri(uri)
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.to_string());
        if let Some(tag) = if_match {
            request = request.insert_header((header::IF_MATCH, tag.to_owned()));
        }
        if let Some(key) = key {
            request = request.insert_header(("idempotency-key", key.to_owned()));
        }
        self.send(request).await
    }

    fn user_id(&self, local: &str) -> String {
        self.demo.user(local).unwrap().id.to_string()
    }

    /// The first acme instance of `definition` in `state`, as `token` reads it.
    async fn instance_in(&self, token: &str, definition: &str, state: &str) -> Value {
        self.cases(token, &format!("?definition={definition}&state={state}"))
            .await
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("no {definition} in {state}"))
    }

    async fn sign_in_answer(&self, local: &str) -> Answer {
        let email = &self.demo.user(local).unwrap().email;
        self.send(
            TestRequest::post()
                .uri("/v1/auth/sign-in")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(json!({ "email": email, "password": DEMO_PASSWORD }).to_string()),
        )
        .await
    }

    async fn token(&self, local: &str) -> String {
        let answer = self.sign_in_answer(local).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["session_token"].as_str().unwrap().to_owned()
    }

    fn acme(&self) -> String {
        self.demo.acme.to_string()
    }

    fn globex(&self) -> String {
        self.demo.globex.to_string()
    }

    async fn cases(&self, token: &str, query: &str) -> Vec<Value> {
        let answer = self
            .get(token, &format!("/v1/orgs/{}/workflows{query}", self.acme()))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["items"].as_array().unwrap().clone()
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a test helper naming every part of a transition"
    )]
    async fn transition(
        &self,
        token: &str,
        id: &str,
        name: &str,
        if_match: Option<&str>,
        key: Option<&str>,
        input: Value,
    ) -> Answer {
        let mut request = TestRequest::post()
            .uri(&format!("/v1/orgs/{}/workflows/{id}/transitions/{name}", self.acme()))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(json!({ "input": input }).to_string());
        if let Some(tag) = if_match {
            request = request.insert_header((header::IF_MATCH, tag));
        }
        if let Some(key) = key {
            request = request.insert_header(("idempotency-key", key));
        }
        self.send(request).await
    }
}

#[actix_web::test]
async fn sign_in_sets_the_cookies_and_me_needs_credentials() {
    let app = app().await;
    let signed_in = app.sign_in_answer("ada").await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    assert!(signed_in.header("x-request-id").unwrap().starts_with("req_"));
    let cookies = signed_in.set_cookies();
    let session = cookies.iter().find(|c| c.starts_with("portal_session=")).unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    let csrf = cookies.iter().find(|c| c.starts_with("portal_csrf=")).unwrap();
    assert!(!csrf.contains("HttpOnly"));
    assert!(csrf.contains(signed_in.body["csrf_token"].as_str().unwrap()));

    let token = signed_in.body["session_token"].as_str().unwrap();
    let me = app.get(token, "/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["user"]["email"], "ada@acme.example", "{me:?}");

    let anonymous = app.send(TestRequest::get().uri("/v1/auth/me")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "auth.unauthenticated");
    let wrong = app
        .send(
            TestRequest::post()
                .uri("/v1/auth/sign-in")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(json!({ "email": "ada@acme.example", "password": "nope" }).to_string()),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.code(), "auth.invalid_credentials");
    let forged = app.get("pss_not-a-session", "/v1/auth/me").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    let sessions = app.get(token, "/v1/sessions").await;
    assert_eq!(sessions.status, StatusCode::OK, "{sessions:?}");
    assert!(!sessions.body["items"].as_array().unwrap().is_empty());

    // Sign-out ends the session and clears both cookies.
    let out = app.call(token, Method::POST, "/v1/auth/sign-out", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    let cleared = out.set_cookies();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("portal_session=;") || c.starts_with("portal_session="))
    );
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    let after = app.get(token, "/v1/auth/me").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn cookie_sessions_need_the_csrf_token_to_change_state() {
    let app = app().await;
    let signed_in = app.sign_in_answer("grace").await;
    let session = signed_in.body["session_token"].as_str().unwrap().to_owned();
    let csrf = signed_in.body["csrf_token"].as_str().unwrap().to_owned();
    let uri = format!("/v1/orgs/{}/workflows", app.acme());
    let body = json!({ "definition": "support_case", "payload": { "subject": "By cookie" } }).to_string();
    let with_cookie = |csrf: Option<&str>| {
        let mut request = TestRequest::post()
            .uri(&uri)
            .insert_header((header::COOKIE, format!("portal_session={session}")))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.clone());
        if let Some(csrf) = csrf {
            request = request.insert_header(("x-csrf-token", csrf));
        }
        request
    };
    // A cookie read needs no token.
    let read = app
        .send(
            TestRequest::get()
                .uri(&uri)
                .insert_header((header::COOKIE, format!("portal_session={session}"))),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    for refused in [with_cookie(None), with_cookie(Some("forged"))] {
        let refused = app.send(refused).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.code(), "auth.csrf_rejected");
    }
    let created = app.send(with_cookie(Some(&csrf))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
}

#[actix_web::test]
async fn sign_in_past_the_limit_is_429_with_retry_after() {
    let app = app().await;
    let mut last = None;
    for _ in 0..25 {
        let answer = app.sign_in_answer("ada").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            last = Some(answer);
            break;
        }
    }
    let limited = last.expect("the limit is reached");
    assert_eq!(limited.code(), "rate_limit.exceeded");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1);
    assert_eq!(limited.body["retry_after"], wait);
}

#[actix_web::test]
async fn orgs_and_members_and_another_orgs_ids_are_404() {
    let app = app().await;
    let ada = app.token("ada").await;
    let orgs = app.get(&ada, "/v1/orgs").await;
    assert_eq!(orgs.status, StatusCode::OK, "{orgs:?}");
    assert!(
        orgs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.to_string().contains(&app.acme()))
    );
    let acme = app.get(&ada, &format!("/v1/orgs/{}", app.acme())).await;
    assert_eq!(acme.status, StatusCode::OK, "{acme:?}");
    assert_eq!(acme.body["id"], app.acme());
    let members = app.get(&ada, &format!("/v1/orgs/{}/members?limit=2", app.acme())).await;
    assert_eq!(members.status, StatusCode::OK, "{members:?}");
    assert_eq!(members.body["items"].as_array().unwrap().len(), 2);
    assert!(members.body["next"].is_string(), "{members:?}");
    let bad_limit = app
        .get(&ada, &format!("/v1/orgs/{}/members?limit=1000", app.acme()))
        .await;
    assert_eq!(bad_limit.code(), "validation.invalid_field");

    let globex = app.get(&ada, &format!("/v1/orgs/{}", app.globex())).await;
    assert_eq!(globex.status, StatusCode::NOT_FOUND);
    assert_eq!(globex.code(), "org.not_found");
    let their_members = app.get(&ada, &format!("/v1/orgs/{}/members", app.globex())).await;
    assert_eq!(their_members.status, StatusCode::NOT_FOUND);
    let malformed = app.get(&ada, "/v1/orgs/acme").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.body["param"], "org_id");

    let created = app
        .post(&ada, "/v1/orgs", json!({ "slug": "initech", "name": "Initech" }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
}

#[actix_web::test]
async fn workflows_list_get_with_etag_and_another_orgs_case_is_404() {
    let app = app().await;
    let grace = app.token("grace").await;
    let open = app.cases(&grace, "?definition=support_case&state=open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["available_transitions"][0]["name"], "triage");
    let id = open[0]["id"].as_str().unwrap();
    let got = app
        .get(&grace, &format!("/v1/orgs/{}/workflows/{id}", app.acme()))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("etag").unwrap(), format!("\"{}\"", got.body["version"]));

    let hedy = app.token("hedy").await;
    let through_globex = app
        .get(&hedy, &format!("/v1/orgs/{}/workflows/{id}", app.globex()))
        .await;
    assert_eq!(through_globex.status, StatusCode::NOT_FOUND);
    assert_eq!(through_globex.code(), "workflow.not_found");
    let through_acme = app.get(&hedy, &format!("/v1/orgs/{}/workflows/{id}", app.acme())).await;
    assert_eq!(through_acme.status, StatusCode::NOT_FOUND);
    let bad_filter = app
        .get(&grace, &format!("/v1/orgs/{}/workflows?assignee=nobody", app.acme()))
        .await;
    assert_eq!(bad_filter.code(), "validation.invalid_field");
    let malformed_id = app
        .get(&grace, &format!("/v1/orgs/{}/workflows/case-1", app.acme()))
        .await;
    assert_eq!(malformed_id.body["param"], "workflow_id");
}

#[actix_web::test]
async fn create_is_idempotent_and_malformed_bodies_name_the_field() {
    let app = app().await;
    let grace = app.token("grace").await;
    let uri = format!("/v1/orgs/{}/workflows", app.acme());
    let create = |body: &Value, key: &str| {
        TestRequest::post()
            .uri(&uri)
            .insert_header((header::AUTHORIZATION, format!("Bearer {grace}")))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header(("idempotency-key", key.to_owned()))
            .set_payload(body.to_string())
    };
    let body = json!({ "definition": "support_case", "payload": { "subject": "Printer on fire" } });
    let first = app.send(create(&body, "create-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.header("etag").unwrap(), "\"1\"");
    let retry = app.send(create(&body, "create-1")).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body["id"], first.body["id"]);
    let other = json!({ "definition": "support_case", "payload": { "subject": "Other" } });
    let reused = app.send(create(&other, "create-1")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "idempotency.key_reused");

    let wrong_type = app.post(&grace, &uri, json!({ "definition": 5, "payload": {} })).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.code(), "validation.invalid_field");
    assert_eq!(wrong_type.body["param"], "definition");
    let missing = app.post(&grace, &uri, json!({ "payload": {} })).await;
    assert_eq!(missing.body["param"], "definition");
    let not_json = app
        .send(
            TestRequest::post()
                .uri(&uri)
                .insert_header((header::AUTHORIZATION, format!("Bearer {grace}")))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload("{\"definition\": "),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.code(), "request.malformed");
    let text = app
        .send(
            TestRequest::post()
                .uri(&uri)
                .insert_header((header::AUTHORIZATION, format!("Bearer {grace}")))
                .insert_header((header::CONTENT_TYPE, "text/plain"))
                .set_payload("{}"),
        )
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.code(), "request.unsupported_media_type");
    let huge = json!({ "definition": "support_case", "payload": { "subject": "x".repeat(8 * 1024) } });
    let too_large = app.post(&grace, &uri, huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE, "{too_large:?}");
    assert_eq!(too_large.code(), "request.too_large");
    let viewer = app.token("linus").await;
    let denied = app.post(&viewer, &uri, body).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "access.denied");
}

#[actix_web::test]
async fn transitions_check_if_match_and_keys() {
    let app = app().await;
    let grace = app.token("grace").await;
    let case = &app.cases(&grace, "?state=open").await[0];
    let id = case["id"].as_str().unwrap().to_owned();
    let tag = format!("\"{}\"", case["version"]);
    let high = || json!({ "priority": "high" });

    let missing = app.transition(&grace, &id, "triage", None, None, high()).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["param"], "If-Match");
    let not_now = app.transition(&grace, &id, "close", Some(&tag), None, json!({})).await;
    assert_eq!(not_now.status, StatusCode::CONFLICT);
    assert_eq!(not_now.code(), "workflow.transition_not_allowed");

    let moved = app
        .transition(&grace, &id, "triage", Some(&tag), Some("t-1"), high())
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
    assert_eq!(moved.body["state"], "triaged");
    let new_tag = moved.header("etag").unwrap().to_owned();
    assert_ne!(new_tag, tag);
    let replay = app
        .transition(&grace, &id, "triage", Some(&tag), Some("t-1"), high())
        .await;
    assert_eq!(replay.status, StatusCode::OK, "{replay:?}");
    assert_eq!(replay.body["version"], moved.body["version"]);
    let reused = app
        .transition(
            &grace,
            &id,
            "triage",
            Some(&tag),
            Some("t-1"),
            json!({ "priority": "low" }),
        )
        .await;
    assert_eq!(reused.code(), "idempotency.key_reused");
    let stale = app.transition(&grace, &id, "start", Some(&tag), None, json!({})).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "workflow.version_conflict");
    assert_eq!(stale.body["current_version"], moved.body["version"]);
    let other_org = app.token("hedy").await;
    let hidden = app
        .transition(&other_org, &id, "start", Some(&new_tag), None, json!({}))
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_refused_request_is_explained_by_its_id() {
    let app = app().await;
    let acme = app.acme();
    let viewer = app.token("linus").await;
    let refused = app
        .post(
            &viewer,
            &format!("/v1/orgs/{acme}/workflows"),
            json!({ "definition": "support_case", "payload": { "subject": "x" } }),
        )
        .await;
    assert_eq!(refused.code(), "access.denied");
    let request_id = refused.body["request_id"].as_str().unwrap().to_owned();
    app.background.flush().await;

    let admin = app.token("alan").await;
    let events = app
        .get(&admin, &format!("/v1/orgs/{acme}/diagnostics/requests/{request_id}"))
        .await;
    assert_eq!(events.status, StatusCode::OK, "{events:?}");
    assert!(!events.body["items"].as_array().unwrap().is_empty());
    let explained = app
        .get(
            &admin,
            &format!("/v1/orgs/{acme}/diagnostics/requests/{request_id}/explain"),
        )
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{explained:?}");
    assert_eq!(explained.body["root_cause"], "access.denied");
    let timeline = app
        .get(&admin, &format!("/v1/orgs/{acme}/diagnostics/timeline?limit=100"))
        .await;
    assert_eq!(timeline.status, StatusCode::OK, "{timeline:?}");
    let member = app.token("grace").await;
    let denied = app
        .get(&member, &format!("/v1/orgs/{acme}/diagnostics/requests/{request_id}"))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let outsider = app.token("hedy").await;
    let hidden = app
        .get(
            &outsider,
            &format!("/v1/orgs/{acme}/diagnostics/requests/{request_id}/explain"),
        )
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.code(), "org.not_found");
}

#[actix_web::test]
async fn the_edge_mints_request_ids_and_answers_problems_for_unknown_routes() {
    let app = app().await;
    // The server mints every request id; the client's valid one is echoed aside.
    let mine = "req_01jd5x8y6kf3w9q2m7c4t0vbnr";
    let kept = app
        .send(
            TestRequest::get()
                .uri("/v1/auth/me")
                .insert_header(("x-request-id", mine)),
        )
        .await;
    assert_ne!(kept.header("x-request-id"), Some(mine));
    assert!(kept.header("x-request-id").unwrap().starts_with("req_"));
    assert_eq!(kept.header("x-client-request-id"), Some(mine));
    assert_eq!(kept.code(), "auth.unauthenticated");
    let replaced = app
        .send(
            TestRequest::get()
                .uri("/v1/auth/me")
                .insert_header(("x-request-id", "<script>")),
        )
        .await;
    assert_ne!(replaced.header("x-request-id"), Some("<script>"));
    assert!(replaced.header("x-request-id").unwrap().starts_with("req_"));
    assert_eq!(replaced.header("x-client-request-id"), None);

    let unknown = app.send(TestRequest::get().uri("/v1/nowhere")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "route.not_found");
    let wrong_method = app.send(TestRequest::put().uri("/v1/auth/me")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.code(), "request.method_not_allowed");
    let contract = app.send(TestRequest::get().uri("/openapi.json")).await;
    assert_eq!(contract.status, StatusCode::OK);
    assert_eq!(contract.body["openapi"], "3.1.0");
}

/// RFC 9110: a 405 lists the methods the path serves in `Allow` (schemathesis' ST204).
#[actix_web::test]
async fn a_wrong_method_answers_405_with_the_allowed_methods() {
    let app = app().await;
    let me = app.send(TestRequest::put().uri("/v1/auth/me")).await;
    assert_eq!(me.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(me.code(), "request.method_not_allowed");
    assert_eq!(me.header("allow"), Some("GET"));
    let orgs = app
        .send(
            TestRequest::default()
                .method(Method::from_bytes(b"TRACE").unwrap())
                .uri("/v1/orgs"),
        )
        .await;
    assert_eq!(orgs.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(orgs.code(), "request.method_not_allowed");
    let mut allowed: Vec<&str> = orgs.header("allow").unwrap().split(", ").collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["GET", "POST"]);
}

#[actix_web::test]
async fn switching_org_rotates_the_session_and_sets_the_new_cookies() {
    let app = app().await;
    let old = app.token("ada").await;
    let created = app
        .post(&old, "/v1/orgs", json!({ "slug": "initech", "name": "Initech" }))
        .await;
    let initech = created.body["id"].as_str().unwrap().to_owned();
    let switched = app
        .post(&old, "/v1/auth/switch-org", json!({ "org_id": initech }))
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{switched:?}");
    let new = switched.body["session_token"].as_str().unwrap();
    assert_eq!(switched.body["session"]["active_org"], initech.as_str());
    let cookies = switched.set_cookies();
    assert!(
        cookies.iter().any(|c| c.starts_with(&format!("portal_session={new};"))),
        "{cookies:?}"
    );
    let csrf = switched.body["csrf_token"].as_str().unwrap();
    assert!(cookies.iter().any(|c| c.starts_with(&format!("portal_csrf={csrf};"))));
    assert_eq!(app.get(new, "/v1/auth/me").await.body["org"], initech.as_str());
    assert_eq!(app.get(&old, "/v1/auth/me").await.code(), "auth.invalid_credentials");
    let outside = app
        .post(new, "/v1/auth/switch-org", json!({ "org_id": app.globex() }))
        .await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    assert_eq!(outside.code(), "org.not_found");
}

#[actix_web::test]
async fn a_workflows_history_lists_every_version() {
    let app = app().await;
    let viewer = app.token("linus").await;
    let case = app.cases(&viewer, "?state=in_progress").await[0].clone();
    let id = case["id"].as_str().unwrap();
    let history = app
        .get(&viewer, &format!("/v1/orgs/{}/workflows/{id}/history", app.acme()))
        .await;
    assert_eq!(history.status, StatusCode::OK, "{history:?}");
    let kinds: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "transition", "transition"]);
    let outsider = app.token("hedy").await;
    let hidden = app
        .get(&outsider, &format!("/v1/orgs/{}/workflows/{id}/history", app.acme()))
        .await;
    assert_eq!(hidden.code(), "workflow.not_found");
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_sign_in_source() {
    let app = app_with(|c| {
        c.http.trusted_proxies = "10.0.0.0/8".parse().unwrap();
        c.http.sign_in_limit = SignInLimit {
            per_minute: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        };
    })
    .await;
    let sign_in = |peer: &str, forwarded_for: &str| {
        TestRequest::post()
            .uri("/v1/auth/sign-in")
            .peer_addr(peer.parse().unwrap())
            .insert_header(("x-forwarded-for", forwarded_for.to_owned()))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(json!({ "email": "grace@acme.example", "password": DEMO_PASSWORD }).to_string())
    };
    for _ in 0..2 {
        assert_eq!(
            app.send(sign_in("10.0.0.2:1", "9.9.9.9, 198.51.100.1")).await.status,
            StatusCode::OK
        );
    }
    let limited = app.send(sign_in("10.0.0.2:1", "198.51.100.1")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.send(sign_in("10.0.0.2:1", "198.51.100.2")).await.status,
        StatusCode::OK
    );
    // A peer that is not a trusted proxy is the source whatever it forwards.
    for i in 0..2 {
        let spoofed = format!("198.51.100.{}", 10 + i);
        assert_eq!(
            app.send(sign_in("203.0.113.9:1", &spoofed)).await.status,
            StatusCode::OK
        );
    }
    let spoofing = app.send(sign_in("203.0.113.9:1", "198.51.100.50")).await;
    assert_eq!(spoofing.status, StatusCode::TOO_MANY_REQUESTS);
}

/// The `ETag` of an instance as its body shows it.
fn etag(instance: &Value) -> String {
    format!("\"{}\"", instance["version"])
}

/// An RFC 3339 time `days` from now.
fn in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[actix_web::test]
async fn the_app_serves_every_route_of_the_table_and_the_table_is_the_document() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let documented = portal_http::routes::check_against_document(&committed)
        .unwrap_or_else(|diff| panic!("the route table and docs/openapi.json differ:\n{diff}"));
    let app = app().await;
    let (served, unauthorized) = portal_http::routes::check_served(async |route, uri| {
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let answer = app.send(TestRequest::default().method(method).uri(&uri)).await;
        (answer.status.as_u16(), answer.body["code"].as_str().map(str::to_owned))
    })
    .await
    .unwrap_or_else(|unserved| panic!("routes the app does not serve:\n{unserved}"));
    // The SCIM routes are served and, by design, not documented (`Route::is_documented`).
    let scim = portal_http::routes::routes().iter().filter(|r| r.is_scim()).count();
    assert_eq!(
        served,
        documented + 2 + scim,
        "the document's operations, GET /openapi.json, GET /openapi/{{version}} and the SCIM routes"
    );
    println!(
        "actix-web serves {served} routes: the {documented} operations of docs/openapi.json and GET /openapi.json \
         ({unauthorized} answered 401 unauthenticated)"
    );
}

#[actix_web::test]
async fn two_approving_votes_approve_the_quote_and_a_delegated_vote_counts() {
    let app = app().await;
    let (grace, alan, ada) = (
        app.token("grace").await,
        app.token("alan").await,
        app.token("ada").await,
    );
    let acme = app.acme();
    let draft = app.instance_in(&grace, "quote_approval", "draft").await;
    let id = draft["id"].as_str().unwrap().to_owned();
    let submitted = app
        .conditional(
            Method::POST,
            &format!("/v1/orgs/{acme}/workflows/{id}/transitions/submit"),
            &grace,
            Some(&etag(&draft)),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(submitted.body["state"], "pending_approval", "{submitted:?}");
    let votes = format!("/v1/orgs/{acme}/workflows/{id}/votes");
    let approve = json!({ "transition": "approve", "decision": "approve" });

    let first = app
        .conditional(
            Method::POST,
            &votes,
            &alan,
            Some(&etag(&submitted.body)),
            Some("vote-alan"),
            &approve,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(
        first.body["state"], "pending_approval",
        "one of two votes: still pending"
    );
    assert_eq!(first.body["version"], submitted.body["version"].as_u64().unwrap() + 1);
    assert_eq!(first.header("etag"), Some(etag(&first.body).as_str()));
    let replay = app
        .conditional(
            Method::POST,
            &votes,
            &alan,
            Some(&etag(&submitted.body)),
            Some("vote-alan"),
            &approve,
        )
        .await;
    assert_eq!(replay.body["version"], first.body["version"], "{replay:?}");
    let missing = app.conditional(Method::POST, &votes, &ada, None, None, &approve).await;
    assert_eq!(missing.body["param"], "If-Match", "{missing:?}");

    // Ada hands her vote to alan, who casts hers: the second approval.
    let delegations = format!("/v1/orgs/{acme}/delegations");
    let delegated = app
        .post(
            &ada,
            &delegations,
            json!({ "to": app.user_id("alan"), "ends_at": in_days(1) }),
        )
        .await;
    assert_eq!(delegated.status, StatusCode::CREATED, "{delegated:?}");
    assert_eq!(delegated.body["from"], app.user_id("ada").as_str());
    assert_eq!(delegated.body["to"], app.user_id("alan").as_str());
    let for_ada = app
        .conditional(
            Method::POST,
            &votes,
            &alan,
            Some(&etag(&first.body)),
            None,
            &json!({ "transition": "approve", "decision": "approve", "on_behalf_of": app.user_id("ada") }),
        )
        .await;
    assert_eq!(for_ada.status, StatusCode::OK, "{for_ada:?}");
    assert_eq!(for_ada.body["state"], "approved", "alan's vote and ada's, cast by alan");
    let to_self = app
        .post(
            &ada,
            &delegations,
            json!({ "to": app.user_id("ada"), "ends_at": in_days(1) }),
        )
        .await;
    assert_eq!(to_self.status, StatusCode::BAD_REQUEST, "{to_self:?}");
}

#[actix_web::test]
async fn assigning_bumps_the_version_and_is_in_the_history() {
    let app = app().await;
    let grace = app.token("grace").await;
    let case = app.instance_in(&grace, "support_case", "triaged").await;
    let id = case["id"].as_str().unwrap();
    let uri = format!("/v1/orgs/{}/workflows/{id}/assignee", app.acme());
    let alan = app.user_id("alan");
    let body = json!({ "assignee": alan });
    let assigned = app
        .conditional(Method::PUT, &uri, &grace, Some(&etag(&case)), Some("assign-1"), &body)
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");
    assert_eq!(assigned.body["assignee"], alan.as_str());
    assert_eq!(assigned.body["version"], case["version"].as_u64().unwrap() + 1);
    assert_eq!(assigned.header("etag").unwrap(), etag(&assigned.body));
    let retry = app
        .conditional(Method::PUT, &uri, &grace, Some(&etag(&case)), Some("assign-1"), &body)
        .await;
    assert_eq!(retry.body["version"], assigned.body["version"], "{retry:?}");
    let stale = app
        .conditional(
            Method::PUT,
            &uri,
            &grace,
            Some(&etag(&case)),
            None,
            &json!({ "assignee": null }),
        )
        .await;
    assert_eq!(stale.code(), "workflow.version_conflict");
    let missing = app.conditional(Method::PUT, &uri, &grace, None, None, &body).await;
    assert_eq!(missing.body["param"], "If-Match");
    let history = app
        .get(&grace, &format!("/v1/orgs/{}/workflows/{id}/history", app.acme()))
        .await;
    let last = history.body["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "assigned");
    assert_eq!(last["changes"]["assignee"], alan.as_str());
}

#[actix_web::test]
async fn invitations_are_made_accepted_listed_and_revoked() {
    let app = app().await;
    let acme = app.acme();
    let admin = app.token("alan").await;
    let invited = app
        .post(
            &admin,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "barbara@globex.example", "roles": ["viewer"] }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let token = invited.body["token"].as_str().unwrap().to_owned();
    let barbara = app.token("barbara").await;
    let accepted = app
        .post(&barbara, "/v1/invitations/accept", json!({ "token": token }))
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");
    assert_eq!(accepted.body["org"], acme);
    assert_eq!(accepted.body["roles"], json!(["viewer"]));
    let again = app
        .post(&barbara, "/v1/invitations/accept", json!({ "token": token }))
        .await;
    assert_eq!(again.code(), "invitation.already_used");

    let list = app.get(&admin, &format!("/v1/orgs/{acme}/invitations")).await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    let pending = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["state"] == "pending")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/v1/orgs/{acme}/invitations/{pending}");
    let revoked = app.delete(&admin, &uri).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_eq!(revoked.body["state"], "revoked");
    let twice = app.delete(&admin, &uri).await;
    assert_eq!(twice.status, StatusCode::GONE);
    assert_eq!(twice.code(), "invitation.revoked");
    let elsewhere = app.delete(&app.token("hedy").await, &uri).await;
    assert_eq!(elsewhere.code(), "org.not_found");

    // Members: a viewer may not remove anyone; the owner may remove a member, once.
    let grace = app.user_id("grace");
    let viewer = app.token("linus").await;
    let denied = app.delete(&viewer, &format!("/v1/orgs/{acme}/members/{grace}")).await;
    assert_eq!(denied.code(), "access.denied");
    let owner = app.token("ada").await;
    let removed = app.delete(&owner, &format!("/v1/orgs/{acme}/members/{grace}")).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    assert_eq!(removed.body, Value::Null);
    let gone = app.delete(&owner, &format!("/v1/orgs/{acme}/members/{grace}")).await;
    assert_eq!(gone.code(), "member.not_found");
}

#[actix_web::test]
async fn custom_roles_are_defined_assigned_unassigned_and_deleted() {
    let app = app().await;
    let acme = app.acme();
    let owner = app.token("ada").await;
    let role = json!({
        "name": "reports-reader",
        "parent": "viewer",
        "permissions": [{ "object": "reports", "action": "read" }]
    });
    let created = app.post(&owner, &format!("/v1/orgs/{acme}/roles"), role.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["permissions"][0]["effect"], "allow");
    let exists = app.post(&owner, &format!("/v1/orgs/{acme}/roles"), role).await;
    assert_eq!(exists.code(), "role.already_exists");
    let list = app.get(&owner, &format!("/v1/orgs/{acme}/roles")).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

    let linus = app.user_id("linus");
    let assigned = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/members/{linus}/roles"),
            json!({ "role": "reports-reader" }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");
    assert!(
        assigned.body["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("reports-reader"))
    );
    let in_use = app
        .delete(&owner, &format!("/v1/orgs/{acme}/roles/reports-reader"))
        .await;
    assert_eq!(in_use.code(), "role.in_use");
    let unassigned = app
        .delete(&owner, &format!("/v1/orgs/{acme}/members/{linus}/roles/reports-reader"))
        .await;
    assert_eq!(unassigned.status, StatusCode::OK, "{unassigned:?}");
    assert_eq!(unassigned.body["roles"], json!(["viewer"]));
    let deleted = app
        .delete(&owner, &format!("/v1/orgs/{acme}/roles/reports-reader"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
}

#[actix_web::test]
async fn api_keys_are_created_shown_once_scoped_and_revoked() {
    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    let created = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "export", "scopes": ["cases/* read"], "expires_at": in_days(30) }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["api_key"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pk_live_"));
    let cases = app.get(&key, &format!("/v1/orgs/{acme}/workflows")).await;
    assert_eq!(cases.status, StatusCode::OK, "{cases:?}");
    let members = app.get(&key, &format!("/v1/orgs/{acme}/members")).await;
    assert_eq!(members.code(), "access.denied");
    let list = app.get(&owner, &format!("/v1/orgs/{acme}/api-keys")).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.body.to_string().contains(&key), "a listing never shows the key");
    let revoked = app.delete(&owner, &format!("/v1/orgs/{acme}/api-keys/{key_id}")).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
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

#[actix_web::test]
async fn the_support_bundle_and_the_streamed_json_lines_export() {
    let app = app().await;
    let acme = app.acme();
    let viewer = app.token("linus").await;
    let refused = app
        .post(
            &viewer,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "eve@acme.example", "roles": ["owner"] }),
        )
        .await;
    assert_eq!(refused.code(), "access.denied");
    let request_id = refused.body["request_id"].as_str().unwrap().to_owned();
    app.background.flush().await;

    let admin = app.token("alan").await;
    let bundle = app
        .get(&admin, &format!("/v1/orgs/{acme}/diagnostics/support-bundle"))
        .await;
    assert_eq!(bundle.status, StatusCode::OK, "{bundle:?}");
    assert_eq!(bundle.body["viewer"], "customer");
    let failures = bundle.body["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["last_request"] == request_id.as_str() && f["code"] == "access.denied"),
        "{failures:?}"
    );

    let export = |token: &str, query: &str| {
        TestRequest::get()
            .uri(&format!("/v1/orgs/{acme}/diagnostics/export{query}"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
    };
    let response = call_service(&app.service, export(&admin, "").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/x-ndjson"
    );
    assert!(response.headers().get("x-request-id").is_some());
    let text = String::from_utf8(read_body(response).await.to_vec()).unwrap();
    assert!(text.ends_with('\n'));
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().all(|e| e["org"] == acme.as_str()), "only acme's events");
    let decision = events
        .iter()
        .find(|e| e["request_id"] == request_id.as_str() && e["kind"] == "permission_decision")
        .unwrap();
    assert!(
        decision["detail"]["decision"].get("reason").is_none(),
        "redacted: {decision}"
    );
    let empty = app
        .send(export(&admin, "?from=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z"))
        .await;
    assert_eq!((empty.status, &empty.body), (StatusCode::OK, &Value::Null));
    let too_long = app
        .send(export(&admin, "?from=2026-01-01T00:00:00Z&until=2026-03-01T00:00:00Z"))
        .await;
    assert_eq!(too_long.code(), "validation.invalid_field");
    assert_eq!(too_long.body["param"], "until");
    assert_eq!(
        app.send(export(&app.token("grace").await, "")).await.code(),
        "access.denied"
    );
}

/// The generated cross-tenant suite (`portal_http::routes::tenancy_probe`) on this app:
/// every operation of `docs/openapi.json` with an id in its path or query, called by three
/// attackers from outside the victim org with its real ids; prints what it covered.
async fn probe_tenancy<S>(app: &TestApp<S>, backend: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    use portal_http::routes::tenancy_probe::{
        ProbeAnswer, ProbeRequest, Tenants, count_operations_with_ids, probe_tenancy,
    };
    let send = async |probe: ProbeRequest| {
        let method = Method::from_bytes(probe.method.as_str().as_bytes()).unwrap();
        let mut request = TestRequest::default().method(method).uri(&probe.uri);
        for (name, value) in probe.headers {
            request = request.insert_header((name, value));
        }
        if let Some(body) = probe.body {
            request = request.set_payload(body);
        }
        let answer = app.send(request).await;
        ProbeAnswer {
            status: answer.status.as_u16(),
            request_id: answer.header("x-request-id").map(str::to_owned),
            body: answer.body,
        }
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tenants = Tenants::set_up(&app.demo, &send).await.unwrap();
    app.background.flush().await;
    let coverage = probe_tenancy(&doc, &tenants, &send)
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    eprintln!(
        "cross-tenant suite (actix-web, {backend}): {} operations, {} probes ({} known leaks)",
        coverage.operations, coverage.probes, coverage.known_leaks
    );
    assert!(coverage.operations > 0);
    assert_eq!(coverage.operations, count_operations_with_ids(&doc));
    assert!(coverage.probes >= coverage.operations * tenants.attackers.len());
}

#[actix_web::test]
async fn no_operation_answers_another_orgs_ids_on_sqlite() {
    let app = app().await;
    probe_tenancy(&app, "SQLite").await;
}

#[actix_web::test]
async fn no_operation_answers_another_orgs_ids_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();
    let app = app_with(|config| config.database_url = schema_url).await;
    probe_tenancy(&app, "Postgres").await;
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}

/// The edge's input rules on actix-web as on axum: a NUL in a body string, in `?state=`
/// or in a path parameter is `400 validation.invalid_field` naming it; a body that is not
/// a JSON object is `400 request.malformed`; a bad `Idempotency-Key` and `?limit=101` are
/// refused with their `param`.
#[actix_web::test]
async fn the_edge_refuses_nul_non_objects_bad_keys_and_limits_as_on_axum() {
    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    let raw = |method: Method, uri: &str, body: &'static str| {
        TestRequest::default()
            .method(method)
            .uri(uri)
            .insert_header((header::AUTHORIZATION, format!("Bearer {owner}")))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body)
    };
    let refused = |answer: &Answer, param: &str| {
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, "validation.invalid_field"),
            "{answer:?}"
        );
        assert_eq!(answer.body["param"], param, "{answer:?}");
    };
    let org = app
        .send(raw(
            Method::POST,
            "/v1/orgs",
            r#"{"slug":"nul","name":"N","metadata":{"plan":"a\u0000"}}"#,
        ))
        .await;
    refused(&org, "metadata.plan");
    let workflows = format!("/v1/orgs/{acme}/workflows");
    let payload = r#"{"definition":"support_case","payload":{"subject":"\u0000"}}"#;
    refused(
        &app.send(raw(Method::POST, &workflows, payload)).await,
        "payload.subject",
    );
    refused(&app.get(&owner, &format!("{workflows}?state=open%00")).await, "state");
    let path = format!("{workflows}/wf_01jd5x8y6kf3w9q2m7c4t0vbnr/transitions/tri%00age");
    refused(&app.send(raw(Method::POST, &path, "{}")).await, "transition");
    let array = app.send(raw(Method::POST, "/v1/orgs", r#"["slug","name",{}]"#)).await;
    assert_eq!(
        (array.status, array.code()),
        (StatusCode::BAD_REQUEST, "request.malformed"),
        "{array:?}"
    );
    let keyed = app
        .send(
            raw(
                Method::POST,
                &workflows,
                r#"{"definition":"support_case","payload":{"subject":"x"}}"#,
            )
            .insert_header((
                "idempotency-key",
                header::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
            )),
        )
        .await;
    refused(&keyed, "Idempotency-Key");
    refused(&app.get(&owner, &format!("{workflows}?limit=101")).await, "limit");
    let mine = app.get(&owner, "/v1/orgs").await;
    assert!(!mine.body.to_string().contains("\"nul\""), "{mine:?}");
}

/// The real server on a loopback port: keep-alive connections survive refused requests
/// (or the answer says `Connection: close`, as a 413 does), and every refusal is
/// problem+json ([`portal_http::routes::wire::check_keep_alive`]).
#[actix_web::test]
async fn keep_alive_survives_refusals_on_a_real_listener() {
    let mut config = PortalConfig::new("sqlite::memory:");
    config.password_params = Some(PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    });
    config.http.body_limit = 1024;
    let (api, _background) = connect(&config).await.expect("connect");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_web::HttpServer::new(move || example_actix_portal::app(api.clone()))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let checked = portal_http::routes::wire::check_keep_alive(addr, 1024).await;
    handle.stop(false).await;
    assert_eq!(checked, Ok(6));
}

/// The generated authorization-before-validation suite (`portal_http::routes::authz_probe`)
/// on this app: every operation on `acme` its viewer may not do, called by the viewer with
/// malformed input, answers `403 access.denied`, never a `400`.
#[actix_web::test]
async fn a_viewer_is_refused_before_any_input_is_parsed_on_every_route() {
    use portal_http::routes::authz_probe::{probe_viewer, probed_routes};
    use portal_http::routes::tenancy_probe::{ProbeAnswer, ProbeRequest};
    let app = app().await;
    let send = async |probe: ProbeRequest| {
        let method = Method::from_bytes(probe.method.as_str().as_bytes()).unwrap();
        let mut request = TestRequest::default().method(method).uri(&probe.uri);
        for (name, value) in probe.headers {
            request = request.insert_header((name, value));
        }
        if let Some(body) = probe.body {
            request = request.set_payload(body);
        }
        let answer = app.send(request).await;
        ProbeAnswer {
            status: answer.status.as_u16(),
            request_id: answer.header("x-request-id").map(str::to_owned),
            body: answer.body,
        }
    };
    let coverage = probe_viewer(&app.demo, send)
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    eprintln!(
        "authorize-first suite (actix-web): {} operations ({} known to validate first)",
        coverage.operations, coverage.known
    );
    assert_eq!(coverage.operations, probed_routes().count());
    assert!(coverage.operations >= 20, "{coverage:?}");
}

/// The customer audit log through the actix app on `app`'s database: a role change is
/// logged with its actor, target and request (the server's request id, the client's,
/// the peer address, the user agent); viewers are refused, another org's owner is told
/// the org does not exist, and the CSV export guards a formula and quotes its comma and
/// quotes.
async fn audit_log_round_trip<S>(app: &TestApp<S>)
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let (acme, grace, ada) = (app.acme(), app.user_id("grace"), app.user_id("ada"));
    let owner = app.token("ada").await;
    let agent = "=cmd|' /C calc'!A0, \"x\"";
    let changed = app
        .send(
            TestRequest::post()
                .uri(&format!("/v1/orgs/{acme}/members/{grace}/roles"))
                .peer_addr("198.51.100.7:5000".parse().unwrap())
                .insert_header((header::AUTHORIZATION, format!("Bearer {owner}")))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((header::USER_AGENT, agent))
                .insert_header(("x-request-id", "actix-audit-1"))
                .set_payload(json!({ "role": "viewer" }).to_string()),
        )
        .await;
    assert!(changed.status.is_success(), "{changed:?}");
    let server_id = changed.header("x-request-id").unwrap().to_owned();

    let admin = app.token("alan").await;
    let page = app
        .get(
            &admin,
            &format!("/v1/orgs/{acme}/audit-events?action=member.roles_changed&actor={ada}&limit=1"),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let event = &page.body["items"][0];
    assert_eq!(event["actor"]["id"], ada.as_str());
    assert_eq!(event["targets"], json!([{ "type": "user", "id": grace }]));
    assert_eq!(
        event["context"],
        json!({
            "request_id": server_id,
            "client_request_id": "actix-audit-1",
            "ip": "198.51.100.7",
            "user_agent": agent,
        })
    );
    assert!(page.body["next"].is_null(), "one change: {page:?}");

    let viewer = app.token("linus").await;
    let denied = app.get(&viewer, &format!("/v1/orgs/{acme}/audit-events")).await;
    assert_eq!((denied.status, denied.code()), (StatusCode::FORBIDDEN, "access.denied"));
    let outsider = app.token("hedy").await;
    let hidden = app
        .get(&outsider, &format!("/v1/orgs/{acme}/audit-events/export?format=csv"))
        .await;
    assert_eq!((hidden.status, hidden.code()), (StatusCode::NOT_FOUND, "org.not_found"));

    let csv = app
        .get(
            &admin,
            &format!("/v1/orgs/{acme}/audit-events/export?format=csv&action=member.roles_changed"),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.body.as_str().unwrap();
    assert!(text.starts_with("id,occurred_at,action,"), "{text}");
    assert!(
        text.contains("\"'=cmd|' /C calc'!A0, \"\"x\"\"\""),
        "the formula is defused and its comma and quotes quoted: {text}"
    );
    let jsonl = app.get(&admin, &format!("/v1/orgs/{acme}/audit-events/export")).await;
    assert_eq!(jsonl.header("content-type"), Some("application/x-ndjson"));
}

#[actix_web::test]
async fn the_audit_log_is_served_and_exported() {
    let app = app().await;
    audit_log_round_trip(&app).await;
}

#[actix_web::test]
async fn the_audit_log_is_served_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let url = schema.url().to_owned();
    let app = app_with(|config| config.database_url = url).await;
    audit_log_round_trip(&app).await;
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}

/// SCIM 2.0 under `/scim/v2` through the actix-web service on SQLite: the suite both
/// servers run (`portal_http::routes::scim_suite`).
#[actix_web::test]
async fn a_directory_provisions_and_deprovisions_through_scim() {
    use portal_http::routes::scim_suite::{self, ScimAnswer};
    use portal_http::routes::tenancy_probe::ProbeRequest;
    let app = app().await;
    let send = async |probe: ProbeRequest| {
        let method = Method::from_bytes(probe.method.as_str().as_bytes()).unwrap();
        let mut request = TestRequest::default().method(method).uri(&probe.uri);
        for (name, value) in probe.headers {
            request = request.insert_header((name, value));
        }
        if let Some(body) = probe.body {
            request = request.set_payload(body);
        }
        let answer = app.send(request).await;
        ScimAnswer {
            status: answer.status.as_u16(),
            content_type: answer.header("content-type").map(str::to_owned),
            etag: answer.header("etag").map(str::to_owned),
            body: answer.body,
        }
    };
    scim_suite::run(&app.demo, &send)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    // Okta's and Entra's sequences, groups mapped to roles, the last owner, bad input: on
    // the same app, whose acme the first suite left with users of other names.
    scim_suite::run_identity_providers(&app.demo, send)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
}

/// The OIDC/JWT bearer path on actix-web, as the axum suite's `bearer` tests it: the key
/// set served over HTTP on loopback (by an actix-web server the test starts), a token
/// signed with its key provisions a new person once and works on the API; an expired
/// token, one for another audience and one signed with another key are refused
/// `401 auth.invalid_credentials`.
mod bearer {
    use std::time::{SystemTime, UNIX_EPOCH};

    use actix_web::http::StatusCode;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use portal_auth::jwt::SigningAlgorithm;
    use portal_http::{BearerSettings, JwksLocation};
    use serde_json::{Value, json};

    use super::app_with;

    const ISSUER: &str = "https://login.test.example/";
    const AUDIENCE: &str = "portal-api";
    /// The key the served set holds (TEST-ONLY, published in `portal-auth/tests/fixtures`).
    const SERVED_KEY: &str = include_str!("../../../portal-auth/tests/fixtures/test-only-rsa-1.pem");
    /// A key the served set does not hold.
    const OTHER_KEY: &str = include_str!("../../../portal-auth/tests/fixtures/test-only-rsa-2.pem");
    const KID: &str = "rsa-1";

    fn key(pem: &str) -> EncodingKey {
        EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
    }

    /// Serves the public half of [`SERVED_KEY`] at `http://127.0.0.1:<port>/jwks` and
    /// answers its URL.
    fn serve_jwks() -> String {
        let mut jwk = Jwk::from_encoding_key(&key(SERVED_KEY), Algorithm::RS256).unwrap();
        jwk.common.key_id = Some(KID.to_owned());
        let set = serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap();
        let server = HttpServer::new(move || {
            let set = set.clone();
            App::new().route(
                "/jwks",
                web::get().to(move || {
                    let set = set.clone();
                    async move { HttpResponse::Ok().content_type("application/json").body(set) }
                }),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        format!("http://127.0.0.1:{port}/jwks")
    }

    fn unix_now() -> i64 {
        i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
    }

    fn claims(subject: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": AUDIENCE,
            "iat": now - 60,
            "exp": now + 3600,
            "email": format!("{subject}@newco.example"),
            "email_verified": true,
            "name": "Jit Person",
        })
    }

    fn sign(pem: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        jsonwebtoken::encode(&header, claims, &key(pem)).unwrap()
    }

    #[actix_web::test]
    async fn a_token_signed_with_the_served_key_provisions_and_others_are_refused() {
        let jwks = serve_jwks();
        let app = app_with(|config| {
            config.bearer = Some(BearerSettings {
                issuer: ISSUER.to_owned(),
                audiences: vec![AUDIENCE.to_owned()],
                jwks: JwksLocation::Url(jwks),
                algorithms: vec![SigningAlgorithm::RS256],
                provision: true,
            });
        })
        .await;
        let token = sign(SERVED_KEY, &claims("jit-1"));
        let me = app.get(&token, "/v1/auth/me").await;
        assert_eq!(me.status, StatusCode::OK, "{me:?}");
        assert_eq!(me.body["user"]["email"], "jit-1@newco.example", "{me:?}");
        assert_eq!(me.body["via"], "bearer", "{me:?}");
        let user = me.body["user"]["id"].clone();
        let again = app.get(&sign(SERVED_KEY, &claims("jit-1")), "/v1/auth/me").await;
        assert_eq!(again.body["user"]["id"], user, "the next token finds the same user");
        let created = app
            .post(&token, "/v1/orgs", json!({ "name": "Newco", "slug": "newco-jit" }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");

        let now = unix_now();
        let mut expired = claims("jit-1");
        expired["iat"] = json!(now - 7200);
        expired["exp"] = json!(now - 3600);
        let mut elsewhere = claims("jit-1");
        elsewhere["aud"] = json!("another-api");
        for token in [
            sign(SERVED_KEY, &expired),
            sign(SERVED_KEY, &elsewhere),
            sign(OTHER_KEY, &claims("jit-1")),
        ] {
            let refused = app.get(&token, "/v1/auth/me").await;
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
            assert_eq!(refused.code(), "auth.invalid_credentials");
        }
    }

    /// Without `JWT_*` settings a JWT-shaped bearer token is refused as any bad credential.
    #[actix_web::test]
    async fn without_bearer_settings_a_jwt_is_refused() {
        let app = app_with(|_| {}).await;
        let refused = app.get(&sign(SERVED_KEY, &claims("jit-1")), "/v1/auth/me").await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(refused.code(), "auth.invalid_credentials");
    }
}

/// An invitation creates the account of its address on actix-web too: signed in, a
/// member with the invitation's roles, once.
#[actix_web::test]
async fn an_invitation_creates_the_account_of_its_address() {
    let app = app().await;
    let ada = app.token("ada").await;
    let acme = app.acme();
    let invited = app
        .post(
            &ada,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "katherine@acme.example", "roles": ["viewer"] }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let token = invited.body["token"].as_str().unwrap().to_owned();
    let body = json!({ "token": token, "display_name": "Katherine Johnson", "password": "a brand new passphrase" });
    let sign_up = |body: Value| {
        TestRequest::post()
            .uri("/v1/auth/sign-up/invitation")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.to_string())
    };
    let done = app.send(sign_up(body.clone())).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert!(
        done.set_cookies().iter().any(|c| c.starts_with("portal_session=")),
        "{done:?}"
    );
    let session = done.body["session_token"].as_str().unwrap();
    let me = app.get(session, "/v1/auth/me").await;
    assert_eq!(me.body["user"]["email"], "katherine@acme.example");
    assert_eq!(me.body["orgs"][0]["roles"], json!(["viewer"]), "{me:?}");
    let again = app.send(sign_up(body)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert_eq!(again.code(), "invitation.already_used");
}

/// API versions on actix-web, as on axum (`tests/http/versions.rs` there): the members
/// listing in 2026-06-01's shape when asked (or pinned), 2026-12-01's otherwise, the
/// version echoed, an unknown one refused, and each version's document served.
#[actix_web::test]
async fn api_versions_keep_old_shapes_for_old_clients() {
    use portal_http::version::{self, ApiVersion, BASELINE, CURRENT};
    let app = app().await;
    let ada = app.token("ada").await;
    let members = async |version: Option<&str>| {
        let mut request = TestRequest::get()
            .uri(&format!("/v1/orgs/{}/members", app.acme()))
            .insert_header((header::AUTHORIZATION, format!("Bearer {ada}")));
        if let Some(version) = version {
            request = request.insert_header(("Portal-Version", version));
        }
        app.send(request).await
    };
    let new = members(None).await;
    assert_eq!(new.status, StatusCode::OK, "{new:?}");
    assert_eq!(new.header("portal-version"), Some(CURRENT));
    let old = members(Some(BASELINE)).await;
    assert_eq!(old.header("portal-version"), Some(BASELINE));
    let new_items = new.body["items"].as_array().unwrap();
    let old_items = old.body["items"].as_array().unwrap();
    assert_eq!(new_items.len(), 4);
    assert_eq!(old_items.len(), 4);
    for (old, new) in old_items.iter().zip(new_items) {
        assert_eq!(
            *old,
            json!({
                "org": new["org"], "user": new["user"]["id"], "display_name": new["user"]["display_name"],
                "email": new["user"]["email"], "roles": new["roles"], "created_at": new["joined_at"],
                "updated_at": new["updated_at"],
            })
        );
        assert!(
            new["user"]["id"].is_string() && new.get("created_at").is_none(),
            "{new}"
        );
    }
    let unknown = members(Some("2026-06-02")).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::BAD_REQUEST, "request.unknown_version")
    );
    let pinned = app.get(&ada, &format!("/v1/orgs/{}/api-version", app.acme())).await;
    assert_eq!(pinned.body, json!({ "version": CURRENT }), "{pinned:?}");
    for version in ApiVersion::all() {
        let doc = app
            .send(TestRequest::get().uri(&format!("/openapi/{}", version.name())))
            .await;
        assert_eq!(doc.body, version::document(version));
    }
}

/// The server's binary, given `reset-second-factors`, runs the operator's command on the
/// database `DATABASE_URL` names and serves nothing: grace's session (made through the
/// server on that database) ends, the line it prints counts it, acme's audit log names the
/// `operator` service with the reason; an unknown address and an unknown command exit
/// with a failure that names the problem, and change nothing.
#[actix_web::test]
async fn the_binary_runs_the_operators_reset_on_its_database_and_serves_nothing() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let file = std::env::temp_dir().join(format!("portal-actix-operator-{}-{nanos}.db", std::process::id()));
    let url = format!("sqlite://{}", file.display());
    let app = app_with(|config| config.database_url = url.clone()).await;
    let grace = app.token("grace").await;
    let ada = app.token("ada").await;
    let operator = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_example-actix-portal"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };

    let unknown = operator(&["reset-second-factors", "nobody@acme.example", "lost phone"]);
    assert!(!unknown.status.success(), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("user.not_found"),
        "{unknown:?}"
    );
    let usage = operator(&["reset-second-factor", "grace@acme.example", "lost phone"]);
    assert!(!usage.status.success(), "{usage:?}");
    assert!(
        String::from_utf8_lossy(&usage.stderr).contains("unknown command: `reset-second-factor`"),
        "{usage:?}"
    );
    assert_eq!(
        app.get(&grace, "/v1/auth/me").await.status,
        StatusCode::OK,
        "nothing changed"
    );

    let reason = "lost her phone; ticket 4711";
    let reset = operator(&["reset-second-factors", "grace@acme.example", reason]);
    assert!(reset.status.success(), "{reset:?}");
    assert_eq!(
        String::from_utf8_lossy(&reset.stdout).trim(),
        "grace@acme.example: 1 sessions ended, authenticator app none, 0 passkeys removed"
    );
    assert_eq!(
        app.get(&grace, "/v1/auth/me").await.status,
        StatusCode::UNAUTHORIZED,
        "her session ended"
    );
    assert_eq!(app.get(&ada, "/v1/auth/me").await.status, StatusCode::OK, "only hers");
    let events = app
        .get(
            &ada,
            &format!("/v1/orgs/{}/audit-events?action=user.sessions_revoked", app.acme()),
        )
        .await;
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events:?}");
    assert_eq!(items[0]["actor"]["id"], "operator", "{events:?}");
    assert_eq!(items[0]["metadata"]["reset"], true, "{events:?}");
    assert_eq!(items[0]["metadata"]["reason"], reason, "{events:?}");

    app.background.shutdown().await;
    for database in [file.clone(), file.with_extension("journal.db")] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
        }
    }
}
