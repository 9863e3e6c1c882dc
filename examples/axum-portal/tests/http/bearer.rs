//! OIDC/JWT bearer tokens through the router, on SQLite and on Postgres: the server is
//! configured as `JWT_*` would configure it, with the key set served over HTTP on loopback
//! by the test (as an identity provider serves its `jwks_uri`). A token signed with the
//! served key signs a new person in and provisions them just in time (once: the next token
//! finds the same user); an expired token, one for another audience and one signed with a
//! key the set does not hold are each refused `401 auth.invalid_credentials`, and the
//! journal names each reason (`expired`, `wrong_audience`, `wrong_secret`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::StatusCode;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portal_auth::jwt::SigningAlgorithm;
use portal_core::context::{Principal, ServiceName};
use portal_core::ids::RequestId;
use portal_core::store::PageRequest;
use portal_core::triage::Scope;
use portal_http::test_schema::TestSchema;
use portal_http::{BearerSettings, JwksLocation};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app_with};

const ISSUER: &str = "https://login.test.example/";
const AUDIENCE: &str = "portal-api";
/// The key the served set holds (TEST-ONLY, published in `portal-auth/tests/fixtures`).
const SERVED_KEY: &str = include_str!("../../../../portal-auth/tests/fixtures/test-only-rsa-1.pem");
/// A key the served set does not hold.
const OTHER_KEY: &str = include_str!("../../../../portal-auth/tests/fixtures/test-only-rsa-2.pem");
const KID: &str = "rsa-1";

fn key(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

/// Serves the public half of [`SERVED_KEY`] as a JWKS at `http://127.0.0.1:<port>/jwks`
/// and answers its URL.
async fn serve_jwks() -> String {
    let mut jwk = Jwk::from_encoding_key(&key(SERVED_KEY), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(KID.to_owned());
    let set = JwkSet { keys: vec![jwk] };
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let set = set.clone();
            async move { Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://127.0.0.1:{port}/jwks")
}

async fn app_trusting(jwks_url: String, database_url: Option<String>) -> TestApp {
    app_with(|config| {
        config.bearer = Some(BearerSettings {
            issuer: ISSUER.to_owned(),
            audiences: vec![AUDIENCE.to_owned()],
            jwks: JwksLocation::Url(jwks_url),
            algorithms: vec![SigningAlgorithm::RS256],
            provision: true,
        });
        if let Some(url) = database_url {
            config.database_url = url;
        }
    })
    .await
}

fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Valid claims for a new person, `subject`, with a verified address.
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

/// The `detail.failure` of the `auth.bearer` event the request of `answer` recorded, as
/// platform support reads it.
async fn bearer_failure(app: &TestApp, answer: &Answer) -> Value {
    app.background.flush().await;
    let request_id: RequestId = answer.header("x-request-id").unwrap().parse().unwrap();
    let ctx = app
        .api
        .portal()
        .context(Principal::Service(ServiceName::new("support-console").unwrap()))
        .build();
    let events = app
        .api
        .portal()
        .triage()
        .unwrap()
        .by_request(&ctx, Scope::Platform, request_id, &PageRequest::first(50))
        .await
        .unwrap()
        .items;
    let event = events
        .iter()
        .find(|e| e.name == "auth.bearer")
        .unwrap_or_else(|| panic!("no auth.bearer event in {events:?}"));
    event.detail["failure"].clone()
}

async fn bearer_end_to_end(app: &TestApp) {
    let token = sign(SERVED_KEY, &claims("jit-1"));
    let me = app.get(&token, "/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["user"]["email"], "jit-1@newco.example", "{me:?}");
    assert_eq!(me.body["via"], "bearer", "{me:?}");
    let user = me.body["user"]["id"].clone();
    let again = app.get(&sign(SERVED_KEY, &claims("jit-1")), "/v1/auth/me").await;
    assert_eq!(
        again.body["user"]["id"], user,
        "the next token finds the user provisioned by the first"
    );
    let created = app
        .post(&token, "/v1/orgs", json!({ "name": "Newco", "slug": "newco-jit" }))
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "the API works with it: {created:?}"
    );

    let now = unix_now();
    let mut expired = claims("jit-1");
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let mut elsewhere = claims("jit-1");
    elsewhere["aud"] = json!("another-api");
    for (token, failure) in [
        (sign(SERVED_KEY, &expired), "expired"),
        (sign(SERVED_KEY, &elsewhere), "wrong_audience"),
        (sign(OTHER_KEY, &claims("jit-1")), "wrong_secret"),
    ] {
        let refused = app.get(&token, "/v1/auth/me").await;
        refused.assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
        assert_eq!(bearer_failure(app, &refused).await, failure, "{refused:?}");
    }
}

#[tokio::test]
async fn a_token_signed_with_the_served_key_provisions_and_others_are_refused_on_sqlite() {
    let app = app_trusting(serve_jwks().await, None).await;
    bearer_end_to_end(&app).await;
}

#[tokio::test]
async fn a_token_signed_with_the_served_key_provisions_and_others_are_refused_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let app = app_trusting(serve_jwks().await, Some(schema.url().to_owned())).await;
    bearer_end_to_end(&app).await;
}

/// Without `JWT_*` settings a JWT-shaped bearer token is refused as any bad credential.
#[tokio::test]
async fn without_bearer_settings_a_jwt_is_refused() {
    let app = app_with(|_| {}).await;
    let refused = app.get(&sign(SERVED_KEY, &claims("jit-1")), "/v1/auth/me").await;
    refused.assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
}
