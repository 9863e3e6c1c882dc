//! The TOTP second factor through the router, on SQLite and on Postgres: enrollment (URI,
//! QR code, confirmation, recovery codes), the sign-in challenge (a `202` without a
//! session, completed once with a code or a recovery code; wrong, replayed and reused codes
//! and challenges refused with their codes), regeneration and removal with a fresh factor,
//! and an org's MFA policy enforced by the gate.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portal_auth::identity::totp::{SECRET_BYTES, TotpSecret, code_at};
use portal_http::seed::DEMO_PASSWORD;
use portal_http::test_schema::TestSchema;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::{Answer, TestApp, app, app_with};

/// An app whose sign-in limit at the edge does not stand in the way of the many sign-ins
/// of one test (the limit has its own tests), on `database_url` when given.
pub(crate) async fn mfa_app(database_url: Option<String>) -> TestApp {
    mfa_app_with(database_url, |_| {}).await
}

/// [`mfa_app`], with `change` made to its configuration too.
pub(crate) async fn mfa_app_with(
    database_url: Option<String>,
    change: impl FnOnce(&mut portal_http::PortalConfig),
) -> TestApp {
    app_with(|config| {
        let many = std::num::NonZeroU32::new(1000).unwrap();
        config.http.sign_in_limit = portal_http::limiter::SignInLimit {
            per_minute: many,
            burst: many,
        };
        if let Some(url) = database_url {
            config.database_url = url;
        }
        change(config);
    })
    .await
}

async fn post_public(app: &TestApp, uri: &str, body: Value) -> Answer {
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn sign_in(app: &TestApp, local: &str) -> Answer {
    post_public(
        app,
        "/v1/auth/sign-in",
        json!({ "email": format!("{local}@acme.example"), "password": DEMO_PASSWORD }),
    )
    .await
}

/// The secret of an enrollment answer (RFC 4648 base32).
pub(crate) fn secret_of(enrollment: &Value) -> TotpSecret {
    let text = enrollment["secret"].as_str().unwrap();
    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            other => panic!("not base32: {other}"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    let array: [u8; SECRET_BYTES] = bytes.try_into().unwrap();
    TotpSecret::from_bytes(array)
}

/// The code of `secret` `offset` steps from now.
pub(crate) fn code(secret: &TotpSecret, offset: i64) -> String {
    let at = OffsetDateTime::now_utc() + time::Duration::seconds(30 * offset);
    code_at(secret, at).unwrap().expose_secret().to_owned()
}

/// Enrolls `local` and confirms with the current code: the secret and the recovery codes.
pub(crate) async fn enroll(app: &TestApp, token: &str) -> (TotpSecret, Vec<String>) {
    enroll_with(app, token, DEMO_PASSWORD).await
}

/// [`enroll`] for a caller whose password is `password`.
pub(crate) async fn enroll_with(app: &TestApp, token: &str, password: &str) -> (TotpSecret, Vec<String>) {
    let begun = app
        .post(token, "/v1/auth/mfa/totp", json!({ "password": password }))
        .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
    let secret = secret_of(&begun.body);
    let confirmed = app
        .post(token, "/v1/auth/mfa/totp/confirm", json!({ "code": code(&secret, 0) }))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{confirmed:?}");
    let codes = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// The whole life of a factor on `app`.
async fn enroll_challenge_and_remove(app: &TestApp) {
    let token = app.token("grace").await;
    let status = app.get(&token, "/v1/auth/mfa").await;
    assert_eq!(status.body["totp"], "none", "{status:?}");

    // Enrollment asks the password (a session alone puts no factor on the account), then
    // answers a secret, its URI and QR code; pending until confirmed.
    app.post(&token, "/v1/auth/mfa/totp", json!({}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    app.post(&token, "/v1/auth/mfa/totp", json!({ "password": "not hers" }))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    assert_eq!(app.get(&token, "/v1/auth/mfa").await.body["totp"], "none");
    let begun = app
        .post(&token, "/v1/auth/mfa/totp", json!({ "password": DEMO_PASSWORD }))
        .await;
    assert_eq!(begun.status, StatusCode::CREATED, "{begun:?}");
    let uri = begun.body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/portal-core:grace%40acme.example?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={}", begun.body["secret"].as_str().unwrap())));
    assert!(begun.body["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = secret_of(&begun.body);
    assert_eq!(app.get(&token, "/v1/auth/mfa").await.body["totp"], "pending");
    assert_eq!(
        sign_in(app, "grace").await.status,
        StatusCode::OK,
        "a pending factor signs nobody in, nor stands in the way"
    );

    let wrong = format!(
        "{:06}",
        (code(&secret, 0).parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    app.post(&token, "/v1/auth/mfa/totp/confirm", json!({ "code": wrong }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let confirmed = app
        .post(&token, "/v1/auth/mfa/totp/confirm", json!({ "code": code(&secret, 0) }))
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{confirmed:?}");
    let recovery: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    app.post(&token, "/v1/auth/mfa/totp", json!({ "password": DEMO_PASSWORD }))
        .await
        .assert_problem(StatusCode::CONFLICT, "auth.mfa_already_enrolled");

    // Sign-in now answers a challenge, without a session or a cookie.
    let challenged = sign_in(app, "grace").await;
    assert_eq!(challenged.status, StatusCode::ACCEPTED, "{challenged:?}");
    assert_eq!(challenged.body["mfa_required"], true);
    assert!(challenged.body.get("session_token").is_none());
    assert!(
        challenged.header("set-cookie").is_none(),
        "no cookie before the second factor"
    );
    let challenge = challenged.body["challenge_token"].as_str().unwrap().to_owned();
    assert!(challenge.starts_with("pmc_"), "{challenge}");

    let complete = |body: Value| post_public(app, "/v1/auth/mfa/challenge", body);
    let refused = complete(json!({ "challenge_token": challenge, "code": wrong })).await;
    refused.assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    assert_eq!(refused.body["param"], "code");
    let mut tampered = challenge.clone().into_bytes();
    tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
    let tampered =
        complete(json!({ "challenge_token": String::from_utf8(tampered).unwrap(), "code": code(&secret, 1) })).await;
    tampered.assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
    assert_eq!(tampered.body["param"], "challenge_token");
    complete(json!({ "challenge_token": challenge, "code": "123456", "recovery_code": recovery[0] }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");

    // The next step's code completes it (a wrong code left it usable), once.
    let next = code(&secret, 1);
    let signed_in = complete(json!({ "challenge_token": challenge, "code": next })).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    assert!(signed_in.header("set-cookie").is_some());
    let session = signed_in.body["session_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&session, "/v1/auth/me").await.status, StatusCode::OK);
    complete(json!({ "challenge_token": challenge, "code": next }))
        .await
        .assert_problem(StatusCode::CONFLICT, "auth.token_used");

    // A code is accepted once: the same code on a new challenge is refused.
    let second = sign_in(app, "grace").await.body["challenge_token"]
        .as_str()
        .unwrap()
        .to_owned();
    complete(json!({ "challenge_token": second, "code": next }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    // A recovery code signs in once, typed in capitals too.
    let by_recovery = complete(json!({ "challenge_token": second, "recovery_code": recovery[0].to_uppercase() })).await;
    assert_eq!(by_recovery.status, StatusCode::OK, "{by_recovery:?}");
    let third = sign_in(app, "grace").await.body["challenge_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reused = complete(json!({ "challenge_token": third, "recovery_code": recovery[0] })).await;
    reused.assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    assert_eq!(reused.body["param"], "recovery_code");
    let status = app.get(&session, "/v1/auth/mfa").await;
    assert_eq!(
        (
            status.body["totp"].as_str(),
            status.body["recovery_codes_left"].as_u64()
        ),
        (Some("confirmed"), Some(9))
    );

    // New recovery codes need a fresh factor; the old ones stop working.
    app.post(&session, "/v1/auth/mfa/recovery-codes", json!({ "code": next }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let regenerated = app
        .post(
            &session,
            "/v1/auth/mfa/recovery-codes",
            json!({ "recovery_code": recovery[1] }),
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK, "{regenerated:?}");
    let fresh: Vec<String> = regenerated.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !recovery.contains(c)));
    complete(json!({ "challenge_token": third, "recovery_code": recovery[2] }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");

    // Removal needs the password and a fresh factor.
    app.post(
        &session,
        "/v1/auth/mfa/totp/remove",
        json!({ "password": "not the password", "recovery_code": fresh[0] }),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "auth.invalid_credentials");
    app.post(
        &session,
        "/v1/auth/mfa/totp/remove",
        json!({ "password": DEMO_PASSWORD }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "auth.mfa_code_invalid");
    let removed = app
        .post(
            &session,
            "/v1/auth/mfa/totp/remove",
            json!({ "password": DEMO_PASSWORD, "recovery_code": fresh[1] }),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    assert_eq!(app.get(&session, "/v1/auth/mfa").await.body["totp"], "none");
    assert_eq!(
        sign_in(app, "grace").await.status,
        StatusCode::OK,
        "a password signs in again"
    );
    complete(json!({ "challenge_token": third, "recovery_code": fresh[2] }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "auth.token_invalid");
}

/// Enrollment, the sign-in challenge, regeneration and removal, on SQLite.
#[tokio::test]
async fn a_totp_factor_is_enrolled_challenged_and_removed_on_sqlite() {
    enroll_challenge_and_remove(&mfa_app(None).await).await;
}

/// The same on Postgres.
#[tokio::test]
async fn a_totp_factor_is_enrolled_challenged_and_removed_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    enroll_challenge_and_remove(&mfa_app(Some(schema.url().to_owned())).await).await;
}

/// An org's MFA policy on `app`: only an owner with a factor turns it on; then a member
/// without one is refused in the org (and told to enroll) but still signs in and enrolls.
async fn org_policy(app: &TestApp) {
    let acme = app.acme();
    let policy = format!("/v1/orgs/{acme}/mfa-policy");
    let (ada, grace, linus) = (
        app.token("ada").await,
        app.token("grace").await,
        app.token("linus").await,
    );
    assert_eq!(app.get(&linus, &policy).await.body, json!({ "required": false }));
    app.call(&linus, Method::PUT, &policy, Some(json!({ "required": true })))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    app.call(&ada, Method::PUT, &policy, Some(json!({ "required": true })))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "auth.mfa_required");

    enroll(app, &ada).await;
    let set = app
        .call(&ada, Method::PUT, &policy, Some(json!({ "required": true })))
        .await;
    assert_eq!(
        (set.status, &set.body),
        (StatusCode::OK, &json!({ "required": true })),
        "{set:?}"
    );

    // Grace has no factor: refused in acme with the code that says what to do.
    let refused = app.get(&grace, &format!("/v1/orgs/{acme}")).await;
    refused.assert_problem(StatusCode::FORBIDDEN, "auth.mfa_required");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("enroll"),
        "{refused:?}"
    );
    app.get(&grace, &format!("/v1/orgs/{acme}/workflows"))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "auth.mfa_required");
    // Another org's owner still gets not-found, never the policy's answer.
    let hedy = post_public(
        app,
        "/v1/auth/sign-in",
        json!({ "email": "hedy@globex.example", "password": DEMO_PASSWORD }),
    )
    .await;
    let hedy = hedy.body["session_token"].as_str().unwrap().to_owned();
    app.get(&hedy, &format!("/v1/orgs/{acme}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    // She still signs in, reads herself and enrolls; then acme is hers again.
    let again = sign_in(app, "grace").await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(app.get(&grace, "/v1/auth/me").await.status, StatusCode::OK);
    enroll(app, &grace).await;
    assert_eq!(
        app.get(&grace, &format!("/v1/orgs/{acme}")).await.status,
        StatusCode::OK
    );

    // Off again: a member without a factor is back in.
    let off = app
        .call(&ada, Method::PUT, &policy, Some(json!({ "required": false })))
        .await;
    assert_eq!(off.body, json!({ "required": false }), "{off:?}");
    assert_eq!(
        app.get(&linus, &format!("/v1/orgs/{acme}")).await.status,
        StatusCode::OK
    );
}

/// The org policy on SQLite.
#[tokio::test]
async fn an_org_requiring_mfa_refuses_members_without_a_factor_on_sqlite() {
    org_policy(&mfa_app(None).await).await;
}

/// The org policy on Postgres.
#[tokio::test]
async fn an_org_requiring_mfa_refuses_members_without_a_factor_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    org_policy(&mfa_app(Some(schema.url().to_owned())).await).await;
}

/// An API key may not enroll a factor (it is no user), and nothing is read of its body.
#[tokio::test]
async fn an_api_key_cannot_enroll() {
    let app = app().await;
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
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let key = created.body["key"].as_str().unwrap().to_owned();
    app.post(&key, "/v1/auth/mfa/totp", json!({}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    app.post(&key, "/v1/auth/mfa/totp/confirm", json!({ "nonsense": 1 }))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
}

/// The operator's reset of a user's second factors on `app`, as `reset-second-factors`
/// runs it: an address no user has is `user.not_found`, text that is no address and a
/// blank reason are refused; grace's factor goes and her session ends, the change is in
/// acme's audit log with the `operator` service as actor and the reason, and her password
/// then signs her in with no challenge.
async fn operator_reset(app: &TestApp) {
    use portal_http::operator::reset_second_factors;

    let token = sign_in(app, "grace").await.body["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    enroll(app, &token).await;
    let refusals = [
        (
            "nobody@acme.example",
            "lost her phone",
            portal_core::ErrorCode::UserNotFound,
            None,
        ),
        (
            "not an address",
            "lost her phone",
            portal_core::ErrorCode::InvalidField,
            Some("email"),
        ),
        (
            "grace@acme.example",
            "  ",
            portal_core::ErrorCode::InvalidField,
            Some("reason"),
        ),
    ];
    for (email, reason, code, param) in refusals {
        let err = reset_second_factors(&app.api, email, reason).await.unwrap_err();
        assert_eq!((err.code(), err.param()), (code, param), "{email} {reason:?}");
    }
    let status = app.get(&token, "/v1/auth/mfa").await;
    assert_eq!(status.body["totp"], "confirmed", "the refusals changed nothing");

    let reason = "lost her phone; identity checked by a call back, ticket 9";
    let reset = reset_second_factors(&app.api, "Grace@Acme.example", reason)
        .await
        .unwrap();
    assert!(reset.totp_removed, "{reset:?}");
    assert_eq!(reset.passkeys_removed, 0);
    assert!(reset.sessions_revoked >= 1, "{reset:?}");
    assert_eq!(
        app.get(&token, "/v1/auth/me").await.status,
        StatusCode::UNAUTHORIZED,
        "her session ended"
    );
    let again = sign_in(app, "grace").await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "signed in by the password alone: {again:?}"
    );

    let owner = sign_in(app, "ada").await.body["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme = app.acme();
    let events = app
        .get(&owner, &format!("/v1/orgs/{acme}/audit-events?action=user.mfa_removed"))
        .await;
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events:?}");
    assert_eq!(items[0]["actor"]["id"], "operator", "{events:?}");
    assert_eq!(items[0]["metadata"]["reason"], reason);
    assert_eq!(items[0]["metadata"]["reset"], true);
}

#[tokio::test]
async fn the_operator_resets_a_users_second_factors_on_sqlite() {
    operator_reset(&mfa_app(None).await).await;
}

/// The same on Postgres.
#[tokio::test]
async fn the_operator_resets_a_users_second_factors_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    operator_reset(&mfa_app(Some(schema.url().to_owned())).await).await;
}
