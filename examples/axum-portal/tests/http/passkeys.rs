//! Passkeys through the router, on SQLite and on Postgres, answered by an independent
//! software authenticator (1Password's `passkey` crate: its own WebAuthn client and CTAP2
//! authenticator): a member registers a passkey, lists and renames it, and signs in with
//! it and nothing else (session in the body and the cookies, no MFA challenge); an answer
//! made on another origin, a ceremony answered twice, a credential whose user handle
//! claims another account, another user's passkey id and a cloned authenticator are
//! refused with their codes; an anonymous caller and an API key cannot register; removal
//! asks the password.

use axum::http::{Method, StatusCode, header};
use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey as SoftPasskey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use portal_http::seed::DEMO_PASSWORD;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{Answer, TestApp};
use crate::mfa::mfa_app_with;

/// The origin the test portal serves its pages on; its host is the relying party id.
const ORIGIN: &str = "https://portal.example.com";

/// A user who is present and verified (a PIN or a fingerprint) every time.
struct AlwaysVerified;

#[async_trait::async_trait]
impl UserValidationMethod for AlwaysVerified {
    type PasskeyItem = SoftPasskey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, SoftPasskey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// A software authenticator holding one discoverable credential, with a signature counter.
struct SoftKey {
    client: Client<Option<SoftPasskey>, AlwaysVerified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>,
}

impl SoftKey {
    fn new() -> Self {
        Self::holding(None)
    }

    fn holding(credential: Option<SoftPasskey>) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), credential, AlwaysVerified, RustCryptoBackend);
        authenticator.set_make_credentials_with_signature_counter(true);
        Self {
            client: Client::new(authenticator),
        }
    }

    /// The credential it holds, as it is now.
    fn credential(&self) -> Option<SoftPasskey> {
        self.client.authenticator().store().clone()
    }

    /// `navigator.credentials.create(options)` on `origin`, as the JSON a page posts.
    async fn create(&mut self, origin: &str, options: &Value) -> Value {
        let request: CredentialCreationOptions = serde_json::from_value(options.clone()).expect("creation options");
        let origin = url::Url::parse(origin).unwrap();
        let created = self
            .client
            .register(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator registers");
        serde_json::to_value(created).unwrap()
    }

    /// `navigator.credentials.get(options)` on `origin`, as the JSON a page posts.
    async fn get(&mut self, origin: &str, options: &Value) -> Value {
        let request: CredentialRequestOptions = serde_json::from_value(options.clone()).expect("request options");
        let origin = url::Url::parse(origin).unwrap();
        let asserted = self
            .client
            .authenticate(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator answers");
        serde_json::to_value(asserted).unwrap()
    }
}

/// A portal serving passkeys for [`ORIGIN`], on `database_url` when given.
async fn passkey_app(database_url: Option<String>) -> TestApp {
    mfa_app_with(database_url, |config| ORIGIN.clone_into(&mut config.passkey_origin)).await
}

async fn post_public(app: &TestApp, uri: &str, body: Value) -> Answer {
    app.send(
        axum::http::Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// Registers `key` for the holder of `token` as `name`: the passkey's view.
async fn register(app: &TestApp, token: &str, key: &mut SoftKey, name: &str) -> Value {
    let begun = app.post(token, "/v1/auth/passkeys/registration", json!({})).await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
    let answer = key.create(ORIGIN, &begun.body["options"]).await;
    let finished = app
        .post(
            token,
            "/v1/auth/passkeys",
            json!({ "ceremony_token": begun.body["ceremony_token"], "name": name, "credential": answer }),
        )
        .await;
    assert_eq!(finished.status, StatusCode::CREATED, "{finished:?}");
    finished.body
}

/// A sign-in ceremony begun: its token and options.
async fn begin_sign_in(app: &TestApp) -> (Value, Value) {
    let begun = post_public(app, "/v1/auth/passkeys/sign-in/options", json!({})).await;
    assert_eq!(begun.status, StatusCode::OK, "{begun:?}");
    (begun.body["ceremony_token"].clone(), begun.body["options"].clone())
}

/// Signs in with `key`: the answer of `POST /v1/auth/passkeys/sign-in`.
async fn sign_in(app: &TestApp, key: &mut SoftKey) -> Answer {
    let (token, options) = begin_sign_in(app).await;
    let answer = key.get(ORIGIN, &options).await;
    post_public(
        app,
        "/v1/auth/passkeys/sign-in",
        json!({ "ceremony_token": token, "credential": answer }),
    )
    .await
}

/// The whole life of a passkey on `app`, and every refusal.
async fn register_sign_in_and_refuse(app: &TestApp) {
    let grace = app.token("grace").await;
    let mut key = SoftKey::new();
    let registered = register(app, &grace, &mut key, "Work laptop").await;
    assert_eq!(registered["name"], "Work laptop");
    let id = registered["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("pky_"), "{registered}");
    let listed = app.get(&grace, "/v1/auth/passkeys").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "{listed:?}");
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert!(
        listed.body["items"][0].get("credential").is_none(),
        "nothing of the credential"
    );

    // Passwordless sign-in: a session in the body and the cookies, as Grace.
    let signed_in = sign_in(app, &mut key).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    let cookies: Vec<&str> = signed_in
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("portal_session=")), "{cookies:?}");
    let session = signed_in.body["session_token"].as_str().unwrap().to_owned();
    let me = app.get(&session, "/v1/auth/me").await;
    assert_eq!(me.body["principal"], app.user_id("grace"), "{me:?}");
    let listed = app.get(&session, "/v1/auth/passkeys").await;
    assert!(listed.body["items"][0]["last_used_at"].is_string(), "{listed:?}");

    // A ceremony answers once.
    let (token, options) = begin_sign_in(app).await;
    let answer = key.get(ORIGIN, &options).await;
    let body = json!({ "ceremony_token": token, "credential": answer });
    let first = post_public(app, "/v1/auth/passkeys/sign-in", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    post_public(app, "/v1/auth/passkeys/sign-in", body)
        .await
        .assert_problem(StatusCode::CONFLICT, "auth.token_used");

    // A phishing site relays the options under its own name: refused, nothing stored.
    let begun = app.post(&grace, "/v1/auth/passkeys/registration", json!({})).await;
    let mut phished = begun.body["options"].clone();
    phished["publicKey"]["rp"]["id"] = Value::from("evil.example.net");
    let answer = SoftKey::new().create("https://evil.example.net", &phished).await;
    app.post(
        &grace,
        "/v1/auth/passkeys",
        json!({ "ceremony_token": begun.body["ceremony_token"], "name": "Phished", "credential": answer }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "auth.passkey_refused");
    // A sign-in answered on the phishing site's origin with Grace's credential.
    let (token, options) = begin_sign_in(app).await;
    let mut phished = options.clone();
    phished["publicKey"]["rpId"] = Value::from("evil.example.net");
    let mut relayed = SoftKey::holding(key.credential().map(|mut p| {
        p.rp_id = "evil.example.net".to_owned();
        p
    }));
    let answer = relayed.get("https://evil.example.net", &phished).await;
    post_public(
        app,
        "/v1/auth/passkeys/sign-in",
        json!({ "ceremony_token": token, "credential": answer }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "auth.passkey_refused");

    // Grace's credential claiming to be Ada's: refused.
    let ada_id = app.user_id("ada");
    let ada_uuid: portal_core::ids::UserId = ada_id.parse().unwrap();
    let mut claims_ada = SoftKey::holding(key.credential().map(|mut p| {
        p.user_handle = Some(ada_uuid.as_uuid().as_bytes().to_vec().into());
        p
    }));
    sign_in(app, &mut claims_ada)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.passkey_refused");

    // Ada cannot rename or remove Grace's passkey: not found, as an id that exists nowhere.
    let ada = app.token("ada").await;
    app.call(
        &ada,
        Method::PATCH,
        &format!("/v1/auth/passkeys/{id}"),
        Some(json!({ "name": "pwned" })),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "passkey.not_found");
    app.post(
        &ada,
        &format!("/v1/auth/passkeys/{id}/remove"),
        json!({ "password": DEMO_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "passkey.not_found");
    assert!(
        app.get(&ada, "/v1/auth/passkeys").await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A clone of Grace's authenticator, made now, falls behind once the original signs in.
    let mut clone = SoftKey::holding(key.credential());
    assert_eq!(sign_in(app, &mut key).await.status, StatusCode::OK);
    sign_in(app, &mut clone)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.passkey_counter_regressed");

    // Grace renames it, and removes it with her password.
    let renamed = app
        .call(
            &grace,
            Method::PATCH,
            &format!("/v1/auth/passkeys/{id}"),
            Some(json!({ "name": "Old laptop" })),
        )
        .await;
    assert_eq!(
        (renamed.status, &renamed.body["name"]),
        (StatusCode::OK, &json!("Old laptop"))
    );
    app.post(
        &grace,
        &format!("/v1/auth/passkeys/{id}/remove"),
        json!({ "password": "not her password" }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    let removed = app
        .post(
            &grace,
            &format!("/v1/auth/passkeys/{id}/remove"),
            json!({ "password": DEMO_PASSWORD }),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    sign_in(app, &mut key)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.passkey_refused");

    // Added and removed are in the org's audit log, naming the passkey and nothing secret.
    let audit = app
        .get(
            &ada,
            &format!("/v1/orgs/{}/audit-events?action=user.passkey_added", app.acme()),
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{audit:?}");
    let added = audit.body["items"].as_array().unwrap();
    assert_eq!(added.len(), 1, "{audit:?}");
    assert_eq!(added[0]["metadata"]["passkey"], id.as_str());
}

#[tokio::test]
async fn a_passkey_is_registered_signs_in_and_is_refused_where_it_must_be_on_sqlite() {
    register_sign_in_and_refuse(&passkey_app(None).await).await;
}

#[tokio::test]
async fn a_passkey_is_registered_signs_in_and_is_refused_where_it_must_be_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    register_sign_in_and_refuse(&passkey_app(Some(schema.url().to_owned())).await).await;
}

#[tokio::test]
async fn only_a_signed_in_user_registers_a_passkey() {
    let app = passkey_app(None).await;
    post_public(&app, "/v1/auth/passkeys/registration", json!({}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.unauthenticated");
    post_public(
        &app,
        "/v1/auth/passkeys",
        json!({ "ceremony_token": "ppc_x", "name": "x", "credential": {} }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "auth.unauthenticated");
    let ada = app.token("ada").await;
    let created = app
        .post(
            &ada,
            &format!("/v1/orgs/{}/api-keys", app.acme()),
            json!({
                "name": "ci",
                "scopes": ["cases/* read"],
                "expires_at": (OffsetDateTime::now_utc() + time::Duration::days(30))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
            }),
        )
        .await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    app.post(&key, "/v1/auth/passkeys/registration", json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    app.get(&key, "/v1/auth/passkeys")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
}
