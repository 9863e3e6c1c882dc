//! One test server: the router over a fresh in-memory SQLite portal with the demo data,
//! light password hashing, and a sign-in limit of 5 per source.

use std::num::NonZeroU32;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portal_auth::identity::PasswordParams;
use portal_http::limiter::SignInLimit;
use portal_http::routes::tenancy_probe::{ProbeAnswer, ProbeRequest};
use portal_http::seed::{DEMO_PASSWORD, DemoData, seed_demo};
use portal_http::{Api, Background, PortalConfig, connect};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) api: Api,
    pub(crate) background: Background,
    pub(crate) demo: DemoData,
}

/// What a call answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// The problem's `code`, asserting the body is problem+json with a request id that
    /// matches `X-Request-Id`.
    pub(crate) fn code(&self) -> &str {
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json",
            "{self:?}"
        );
        assert_eq!(
            self.body["request_id"].as_str().unwrap(),
            self.headers.get("x-request-id").unwrap().to_str().unwrap()
        );
        assert_eq!(self.body["status"], self.status.as_u16());
        self.body["code"].as_str().unwrap()
    }

    /// Asserts the answer is the problem `code` with `status`.
    pub(crate) fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{self:?}");
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub(crate) async fn app() -> TestApp {
    app_with(|_| {}).await
}

pub(crate) async fn app_with(change: impl FnOnce(&mut PortalConfig)) -> TestApp {
    let mut config = PortalConfig::new("sqlite::memory:");
    config.password_params = Some(PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    });
    config.http.cookie_secure = false;
    config.http.sign_in_limit = SignInLimit {
        per_minute: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(5).unwrap(),
    };
    change(&mut config);
    let (api, background) = connect(&config).await.expect("connect");
    let demo = seed_demo(&api).await.expect("seed");
    TestApp {
        router: example_axum_portal::router(api.clone()),
        api,

        background,
        demo,
    }
}

impl TestApp {
    /// Sends one request of a generated probe (`portal_http::routes::tenancy_probe`,
    /// `authz_probe`) through the router.
    pub(crate) async fn probe(&self, probe: ProbeRequest) -> ProbeAnswer {
        let mut builder = Request::builder().method(probe.method).uri(probe.uri);
        for (name, value) in probe.headers {
            builder = builder.header(name, value);
        }
        let body = probe.body.map_or_else(Body::empty, Body::from);
        let answer = self.send(builder.body(body).unwrap()).await;
        ProbeAnswer {
            status: answer.status.as_u16(),
            request_id: answer.header("x-request-id").map(str::to_owned),
            body: answer.body,
        }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer { status, headers, body }
    }

    /// A bearer call; `body` `None` sends no body.
    pub(crate) async fn call(&self, token: &str, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// A JSON write with the bearer `token` and, when given, `If-Match` and
    /// `Idempotency-Key`: how the workflow writes are called.
    pub(crate) async fn send_conditional(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        if_match: Option<&str>,
        key: Option<&str>,
        body: &Value,
    ) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(tag) = if_match {
            builder = builder.header(header::IF_MATCH, tag);
        }
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        self.send(builder.body(Body::from(body.to_string())).unwrap()).await
    }

    pub(crate) async fn get(&self, token: &str, uri: &str) -> Answer {
        self.call(token, Method::GET, uri, None).await
    }

    pub(crate) async fn post(&self, token: &str, uri: &str, body: Value) -> Answer {
        self.call(token, Method::POST, uri, Some(body)).await
    }

    pub(crate) async fn delete(&self, token: &str, uri: &str) -> Answer {
        self.call(token, Method::DELETE, uri, None).await
    }

    /// Signs in as the demo user `local@…` and returns the whole answer.
    pub(crate) async fn sign_in_answer(&self, local: &str) -> Answer {
        let email = &self.demo.user(local).unwrap().email;
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/sign-in")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({ "email": email, "password": DEMO_PASSWORD }).to_string(),
            ))
            .unwrap();
        self.send(request).await
    }

    /// Signs in as the demo user `local@…` and returns the session token.
    pub(crate) async fn token(&self, local: &str) -> String {
        let answer = self.sign_in_answer(local).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["session_token"].as_str().unwrap().to_owned()
    }

    pub(crate) fn acme(&self) -> String {
        self.demo.acme.to_string()
    }

    pub(crate) fn globex(&self) -> String {
        self.demo.globex.to_string()
    }

    pub(crate) fn user_id(&self, local: &str) -> String {
        self.demo.user(local).unwrap().id.to_string()
    }
}
