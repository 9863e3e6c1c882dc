//! A portal over in-memory SQLite with the demo data, and a small form-posting client
//! that keeps cookies as a browser does.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portal_auth::identity::PasswordParams;
use portal_http::seed::{DEMO_PASSWORD, DemoData, seed_demo};
use portal_http::{Background, PortalConfig, connect};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The app (API and pages) over a fresh demo portal.
pub(crate) struct TestPortal {
    pub(crate) app: Router,
    #[allow(dead_code, reason = "kept alive for the test's length")]
    pub(crate) background: Background,
    pub(crate) demo: DemoData,
}

/// The test portal's configuration: in-memory SQLite, light hashing, plain-HTTP cookies
/// unless `secure`.
pub(crate) fn config(url: &str, secure: bool) -> PortalConfig {
    let mut config = PortalConfig::new(url);
    config.password_params = Some(PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    });
    config.http.cookie_secure = secure;
    config
}

pub(crate) async fn portal_with(secure: bool) -> TestPortal {
    let (api, background) = connect(&config("sqlite::memory:", secure)).await.expect("connect");
    let demo = seed_demo(&api).await.expect("seed");
    TestPortal {
        app: example_axum_portal::app(api),
        background,
        demo,
    }
}

pub(crate) async fn portal() -> TestPortal {
    portal_with(false).await
}

/// One answer.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The value of the first hidden `csrf` field.
    pub(crate) fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf" value="([^"]*)""#).unwrap();
        re.captures(&self.body).expect("a csrf field")[1].to_owned()
    }

    /// The version the workflow page shows (what its forms post as `version`).
    pub(crate) fn version(&self) -> String {
        let re = regex::Regex::new(r#"<dd id="version">([0-9]+)</dd>"#).unwrap();
        re.captures(&self.body).expect("a version field")[1].to_owned()
    }

    /// The actions of every form that posts.
    pub(crate) fn post_forms(&self) -> Vec<String> {
        let re = regex::Regex::new(r#"<form method="post" action="([^"]*)""#).unwrap();
        re.captures_iter(&self.body).map(|c| c[1].to_owned()).collect()
    }
}

/// A client that posts forms and keeps cookies, as a browser.
pub(crate) struct Client {
    app: Router,
    pub(crate) jar: BTreeMap<String, String>,
}

impl Client {
    pub(crate) fn new(portal: &TestPortal) -> Self {
        Self {
            app: portal.app.clone(),
            jar: BTreeMap::new(),
        }
    }

    async fn send(&mut self, request: Request<Body>) -> Page {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(header::SET_COOKIE) {
            let cookie = cookie::Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
            if cookie.value().is_empty() {
                self.jar.remove(cookie.name());
            } else {
                self.jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(&mut self, uri: &str) -> Page {
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// Signs in through the sign-in form as the demo user `local@…`.
    pub(crate) async fn sign_in(&mut self, portal: &TestPortal, local: &str) {
        let form = self.get("/sign-in").await;
        let email = portal.demo.user(local).unwrap().email.clone();
        let answer = self
            .post(
                "/sign-in",
                &[("csrf", &form.csrf()), ("email", &email), ("password", DEMO_PASSWORD)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");
    }
}

/// A bearer token of the demo user `local@…`, through the JSON API.
pub(crate) async fn token(portal: &TestPortal, local: &str) -> String {
    let email = &portal.demo.user(local).unwrap().email;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/sign-in")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({ "email": email, "password": DEMO_PASSWORD }).to_string(),
        ))
        .unwrap();
    let response = portal.app.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    body["session_token"].as_str().unwrap().to_owned()
}

/// A JSON call with a bearer token.
pub(crate) async fn call(portal: &TestPortal, token: &str, method: Method, uri: &str, body: Option<Value>) -> Value {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    let response = portal.app.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Makes ada (acme's owner) a member of globex too, so she has two orgs to switch
/// between.
pub(crate) async fn ada_joins_globex(portal: &TestPortal) {
    let hedy = token(portal, "hedy").await;
    let invited = call(
        portal,
        &hedy,
        Method::POST,
        &format!("/v1/orgs/{}/invitations", portal.demo.globex),
        Some(json!({ "email": "ada@acme.example", "roles": ["member"] })),
    )
    .await;
    let invitation = invited["token"].as_str().expect("an invitation token").to_owned();
    let ada = token(portal, "ada").await;
    let accepted = call(
        portal,
        &ada,
        Method::POST,
        "/v1/invitations/accept",
        Some(json!({ "token": invitation })),
    )
    .await;
    assert_eq!(accepted["org"], portal.demo.globex.to_string(), "{accepted}");
}
