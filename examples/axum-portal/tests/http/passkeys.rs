//! Passkeys through the router, on SQLite and on Postgres, answered by an independent
//! software authenticator (1Password's `passkey` crate: its own WebAuthn client and CTAP2
//! authenticator): a member registers a passkey, lists and renames it, and signs in with
//! it and nothing else (session in the body and the cookies, no MFA challenge); an answer
//! made on another origin, a ceremony answered twice, a credential whose user handle
//! claims another account, another user's passkey id and a cloned authenticator are
//! refused with their codes; an anonymous caller and an API key cannot register; adding
//! a passkey asks the password and, once the caller has a second factor, a fresh one
//! (a passkey's answer to a re-authentication ceremony, bound to its user and one use);
//! removal asks the password and the passkey. A passkey is a second factor: it meets an org's MFA policy (someone
//! else's does not, and removing the last one makes the member fall short again) and
//! answers a password sign-in's MFA challenge (another user's passkey, a replayed
//! ceremony and a ceremony of another sign-in refused).

use axum::http::{Method, StatusCode, header};
use portal_http::seed::DEMO_PASSWORD;
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{Answer, TestApp};
use crate::mfa::mfa_app_with;
use crate::soft_key::{ORIGIN, SoftKey};

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

/// Registers `key` for the holder of `token` (a demo user without a second factor yet)
/// as `name`: the passkey's view.
async fn register(app: &TestApp, token: &str, key: &mut SoftKey, name: &str) -> Value {
    register_with(app, token, key, name, json!({ "password": DEMO_PASSWORD })).await
}

/// Registers `key` for the holder of `token` as `name`, proving them again with `proof`
/// (the body of `POST /v1/auth/passkeys/registration`): the passkey's view.
async fn register_with(app: &TestApp, token: &str, key: &mut SoftKey, name: &str, proof: Value) -> Value {
    let begun = app.post(token, "/v1/auth/passkeys/registration", proof).await;
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

/// The holder of `token` proving themselves with `key`: the `passkey` field of a change
/// that asks for a fresh second factor.
async fn reauthentication(app: &TestApp, token: &str, key: &mut SoftKey) -> Value {
    let begun = app.post(token, "/v1/auth/passkeys/reauthentication", json!({})).await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
    let credential = key.get(ORIGIN, &begun.body["options"]).await;
    json!({ "ceremony_token": begun.body["ceremony_token"], "credential": credential })
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
    let proof = reauthentication(app, &grace, &mut key).await;
    let begun = app
        .post(
            &grace,
            "/v1/auth/passkeys/registration",
            json!({ "password": DEMO_PASSWORD, "passkey": proof }),
        )
        .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
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

    // Grace renames it, and removes it with her password and the passkey itself.
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
    app.post(
        &grace,
        &format!("/v1/auth/passkeys/{id}/remove"),
        json!({ "password": DEMO_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let proof = reauthentication(app, &grace, &mut key).await;
    let removed = app
        .post(
            &grace,
            &format!("/v1/auth/passkeys/{id}/remove"),
            json!({ "password": DEMO_PASSWORD, "passkey": proof }),
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

/// A password sign-in of `local`: its answer.
async fn password_sign_in(app: &TestApp, local: &str) -> Answer {
    post_public(
        app,
        "/v1/auth/sign-in",
        json!({ "email": format!("{local}@acme.example"), "password": DEMO_PASSWORD }),
    )
    .await
}

/// The challenge of a password sign-in of `local`, who has a passkey.
async fn challenge_of(app: &TestApp, local: &str) -> String {
    let challenged = password_sign_in(app, local).await;
    assert_eq!(challenged.status, StatusCode::ACCEPTED, "{challenged:?}");
    assert_eq!(challenged.body["factors"], json!(["passkey"]), "{challenged:?}");
    assert!(challenged.body.get("session_token").is_none());
    challenged.body["challenge_token"].as_str().unwrap().to_owned()
}

/// A passkey ceremony begun for `challenge`: its token and options.
async fn begin_challenge_ceremony(app: &TestApp, challenge: &str) -> (Value, Value) {
    let begun = post_public(
        app,
        "/v1/auth/mfa/challenge/passkey/options",
        json!({ "challenge_token": challenge }),
    )
    .await;
    assert_eq!(begun.status, StatusCode::OK, "{begun:?}");
    (begun.body["ceremony_token"].clone(), begun.body["options"].clone())
}

/// Answers `challenge` with `key` (through a ceremony begun for it): the answer.
async fn answer_challenge(app: &TestApp, challenge: &str, key: &mut SoftKey) -> Answer {
    let (ceremony, options) = begin_challenge_ceremony(app, challenge).await;
    let credential = key.get(ORIGIN, &options).await;
    post_public(
        app,
        "/v1/auth/mfa/challenge/passkey",
        json!({ "challenge_token": challenge, "ceremony_token": ceremony, "credential": credential }),
    )
    .await
}

/// A passkey as a second factor on `app`: it meets acme's MFA policy for its own user
/// only, answers a password sign-in's challenge (and nothing else does: another user's
/// passkey, a replayed ceremony, a ceremony of another sign-in), and once the last one is
/// removed its user falls short of the policy again.
async fn a_passkey_as_a_second_factor(app: &TestApp) {
    let acme = app.acme();
    let policy = format!("/v1/orgs/{acme}/mfa-policy");
    let in_acme = format!("/v1/orgs/{acme}");
    let (ada, grace, linus) = (
        app.token("ada").await,
        app.token("grace").await,
        app.token("linus").await,
    );

    // Ada's only second factor is a passkey: enough to require one of every member.
    app.call(&ada, Method::PUT, &policy, Some(json!({ "required": true })))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "auth.mfa_required");
    register(app, &ada, &mut SoftKey::new(), "Ada's key").await;
    let set = app
        .call(&ada, Method::PUT, &policy, Some(json!({ "required": true })))
        .await;
    assert_eq!(
        (set.status, &set.body),
        (StatusCode::OK, &json!({ "required": true })),
        "{set:?}"
    );

    // Linus's passkey does not count for Grace: she is refused, he is in.
    let mut linus_key = SoftKey::new();
    register(app, &linus, &mut linus_key, "Linus's key").await;
    assert_eq!(app.get(&linus, &in_acme).await.status, StatusCode::OK);
    app.get(&grace, &in_acme)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "auth.mfa_required");

    // Grace registers one (outside the org, so the policy lets her): she is in at once.
    let mut key = SoftKey::new();
    let registered = register(app, &grace, &mut key, "Grace's key").await;
    let id = registered["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&grace, &in_acme).await.status, StatusCode::OK);
    let status = app.get(&grace, "/v1/auth/mfa").await;
    assert_eq!(
        (&status.body["totp"], &status.body["passkeys"]),
        (&json!("none"), &json!(1)),
        "{status:?}"
    );

    // Her password alone no longer signs her in: the challenge is answered with her passkey.
    let challenge = challenge_of(app, "grace").await;
    // She has no TOTP factor: a code answers nothing.
    let by_code = post_public(
        app,
        "/v1/auth/mfa/challenge",
        json!({ "challenge_token": challenge, "code": "123456" }),
    )
    .await;
    by_code.assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    assert_eq!(by_code.body["param"], "code");
    let signed_in = answer_challenge(app, &challenge, &mut key).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    assert!(signed_in.header("set-cookie").is_some());
    let session = signed_in.body["session_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&session, &in_acme).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&session, "/v1/auth/me").await.body["principal"],
        app.user_id("grace")
    );
    // The challenge is used: another answer with a fresh ceremony is refused.
    post_public(
        app,
        "/v1/auth/mfa/challenge/passkey/options",
        json!({ "challenge_token": challenge }),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "auth.token_used");

    // Linus's passkey answering Grace's challenge (the options emptied of her credentials,
    // so his authenticator offers his own): refused, and her challenge stays open.
    let challenge = challenge_of(app, "grace").await;
    let (ceremony, mut options) = begin_challenge_ceremony(app, &challenge).await;
    options["publicKey"]["allowCredentials"] = json!([]);
    let credential = linus_key.get(ORIGIN, &options).await;
    post_public(
        app,
        "/v1/auth/mfa/challenge/passkey",
        json!({ "challenge_token": challenge, "ceremony_token": ceremony, "credential": credential }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "auth.passkey_refused");
    // That ceremony is spent: replayed with Grace's own answer, refused.
    let (_, options) = begin_challenge_ceremony(app, &challenge).await;
    let credential = key.get(ORIGIN, &options).await;
    let replayed = post_public(
        app,
        "/v1/auth/mfa/challenge/passkey",
        json!({ "challenge_token": challenge, "ceremony_token": ceremony, "credential": credential }),
    )
    .await;
    replayed.assert_problem(StatusCode::CONFLICT, "auth.token_used");
    assert_eq!(replayed.body["param"], "ceremony_token");
    // A ceremony begun for another of her sign-ins does not answer this one.
    let other = challenge_of(app, "grace").await;
    let (foreign, options) = begin_challenge_ceremony(app, &other).await;
    let credential = key.get(ORIGIN, &options).await;
    let crossed = post_public(
        app,
        "/v1/auth/mfa/challenge/passkey",
        json!({ "challenge_token": challenge, "ceremony_token": foreign, "credential": credential }),
    )
    .await;
    crossed.assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
    assert_eq!(crossed.body["param"], "ceremony_token");
    assert_eq!(
        answer_challenge(app, &challenge, &mut key).await.status,
        StatusCode::OK,
        "the challenge was left open by every refusal"
    );

    // Removing her last passkey (the password and the passkey itself: the password alone
    // is not enough) leaves her without a second factor: refused in acme again, and
    // signed in by a password.
    app.post(
        &session,
        &format!("/v1/auth/passkeys/{id}/remove"),
        json!({ "password": DEMO_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let proof = reauthentication(app, &session, &mut key).await;
    let removed = app
        .post(
            &session,
            &format!("/v1/auth/passkeys/{id}/remove"),
            json!({ "password": DEMO_PASSWORD, "passkey": proof }),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    app.get(&session, &in_acme)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "auth.mfa_required");
    assert_eq!(password_sign_in(app, "grace").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_passkey_is_a_second_factor_for_the_org_policy_and_the_sign_in_challenge_on_sqlite() {
    a_passkey_as_a_second_factor(&passkey_app(None).await).await;
}

#[tokio::test]
async fn a_passkey_is_a_second_factor_for_the_org_policy_and_the_sign_in_challenge_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    a_passkey_as_a_second_factor(&passkey_app(Some(schema.url().to_owned())).await).await;
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
    app.post(&key, "/v1/auth/passkeys/reauthentication", json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    post_public(&app, "/v1/auth/passkeys/reauthentication", json!({}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.unauthenticated");
    app.get(&key, "/v1/auth/passkeys")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
}

/// A session alone adds no passkey (which would sign its holder in with no password), nor
/// an authenticator app: the body names the password, and once the caller has a second
/// factor a fresh one, exactly one; a passkey's proof is its user's and answers once.
async fn adding_a_passkey_asks_the_caller_again(app: &TestApp) {
    let (grace, linus) = (app.token("grace").await, app.token("linus").await);
    let registration = "/v1/auth/passkeys/registration";
    app.post(&grace, registration, json!({}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    app.post(&grace, registration, json!({ "password": "not hers" }))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    app.post(&grace, "/v1/auth/passkeys/reauthentication", json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "auth.mfa_not_enrolled");
    let mut laptop = SoftKey::new();
    register(app, &grace, &mut laptop, "Laptop").await;

    app.post(&grace, registration, json!({ "password": DEMO_PASSWORD }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let proof = reauthentication(app, &grace, &mut laptop).await;
    let both = app
        .post(
            &grace,
            registration,
            json!({ "password": DEMO_PASSWORD, "code": "123456", "passkey": proof }),
        )
        .await;
    both.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(both.body["param"], "code");
    let body = json!({ "password": DEMO_PASSWORD, "passkey": proof });
    register_with(app, &grace, &mut SoftKey::new(), "Phone", body.clone()).await;
    let replayed = app.post(&grace, registration, body).await;
    replayed.assert_problem(StatusCode::CONFLICT, "auth.token_used");
    assert_eq!(replayed.body["param"], "ceremony_token");

    // Linus's proof, made with his own passkey, proves nothing for Grace.
    let mut linus_key = SoftKey::new();
    register(app, &linus, &mut linus_key, "Linus's").await;
    let his = reauthentication(app, &linus, &mut linus_key).await;
    app.post(
        &grace,
        registration,
        json!({ "password": DEMO_PASSWORD, "passkey": his }),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "auth.token_wrong_user");
    assert_eq!(
        app.get(&grace, "/v1/auth/passkeys").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the laptop and the phone, nothing else"
    );

    // Nor does her password alone put an authenticator app on her account: her passkey does.
    app.post(&grace, "/v1/auth/mfa/totp", json!({ "password": DEMO_PASSWORD }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let proof = reauthentication(app, &grace, &mut laptop).await;
    let begun = app
        .post(
            &grace,
            "/v1/auth/mfa/totp",
            json!({ "password": DEMO_PASSWORD, "passkey": proof }),
        )
        .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
    assert_eq!(app.get(&grace, "/v1/auth/mfa").await.body["totp"], "pending");
}

#[tokio::test]
async fn adding_a_passkey_asks_the_password_and_a_fresh_factor_on_sqlite() {
    adding_a_passkey_asks_the_caller_again(&passkey_app(None).await).await;
}

#[tokio::test]
async fn adding_a_passkey_asks_the_password_and_a_fresh_factor_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    adding_a_passkey_asks_the_caller_again(&passkey_app(Some(schema.url().to_owned())).await).await;
}
