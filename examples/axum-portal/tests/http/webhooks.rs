//! Webhooks over HTTP through the real router, on SQLite and Postgres: an endpoint's
//! life (create with the secret shown once, list, get, change, rotate, attempts, replays,
//! delete) with its audit events; every bad field named; viewers, members and API keys
//! without `webhooks manage` refused before their input is read; another org's ids not
//! found. End to end: a real receiver on loopback, verifying with the independent
//! `standardwebhooks` crate, gets the invitation an owner makes through the API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{TestApp, app, app_with};

/// RFC 3339 of `days` from now.
fn in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A valid endpoint body with `url`.
fn endpoint(url: &str) -> Value {
    json!({ "url": url, "description": "billing sync", "event_types": ["member.roles_changed"] })
}

async fn endpoints_work_on(app: &TestApp) {
    let owner = app.token("ada").await;
    let acme = app.acme();
    let base = format!("/v1/orgs/{acme}/webhook-endpoints");

    let types = app.get(&owner, "/v1/webhook-event-types").await;
    assert_eq!(types.status, StatusCode::OK, "{types:?}");
    let names: Vec<&str> = types.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"member.roles_changed") && names.contains(&"invitation.created"),
        "{names:?}"
    );

    // Created: the secret is shown once, never again.
    let created = app
        .post(&owner, &base, endpoint("https://hooks.example.com/portal"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created:?}");
    let id = created.body["endpoint"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("whk_"));
    assert_eq!(created.body["endpoint"]["enabled"], true);
    assert_eq!(created.body["endpoint"]["event_types"], json!(["member.roles_changed"]));
    let one = format!("{base}/{id}");
    let got = app.get(&owner, &one).await;
    assert_eq!(got.status, StatusCode::OK, "{got:?}");
    assert_eq!(got.body["url"], "https://hooks.example.com/portal");
    assert!(!got.body.to_string().contains(&secret), "the secret is shown only once");
    let listed = app.get(&owner, &base).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id.as_str()),
        "{listed:?}"
    );
    assert!(!listed.body.to_string().contains(&secret));

    // Changed: what is given replaces, the rest stays.
    let changed = app
        .call(
            &owner,
            Method::PATCH,
            &one,
            Some(json!({ "description": "renamed", "event_types": [], "enabled": false })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["description"], "renamed");
    assert_eq!(changed.body["event_types"], json!([]));
    assert_eq!(changed.body["enabled"], false);
    assert_eq!(changed.body["url"], "https://hooks.example.com/portal");

    // Rotated: a new secret, the previous one signing for a window.
    let rotated = app.post(&owner, &format!("{one}/rotate-secret"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret, "{rotated:?}");
    assert!(
        rotated.body["endpoint"]["previous_secret_valid_until"].is_string(),
        "{rotated:?}"
    );

    // Attempts (none delivered: no worker runs here) and replays.
    let attempts = app.get(&owner, &format!("{one}/attempts?limit=10")).await;
    assert_eq!(attempts.status, StatusCode::OK, "{attempts:?}");
    assert_eq!(attempts.body["items"], json!([]));
    let ghost_message = "msg_01jd5x8y6kf3w9q2m7c4t0vbnr";
    let replayed = app
        .post(&owner, &format!("{one}/messages/{ghost_message}/replay"), json!({}))
        .await;
    replayed.assert_problem(StatusCode::NOT_FOUND, "webhook.message_not_found");
    let range = app
        .post(
            &owner,
            &format!("{one}/replay"),
            json!({ "since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(range.status, StatusCode::OK, "{range:?}");
    assert!(range.body["queued"].is_u64(), "{range:?}");
    let backwards = app
        .post(
            &owner,
            &format!("{one}/replay"),
            json!({ "since": "2100-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z" }),
        )
        .await;
    backwards.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(backwards.body["param"], "until");

    // Every change is in the org's audit log.
    let log = app
        .get(&owner, &format!("/v1/orgs/{acme}/audit-events?target={id}&limit=100"))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{log:?}");
    let actions: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.endpoint_created",
            "webhook.endpoint_updated",
            "webhook.secret_rotated"
        ]
    );
    assert!(!log.body.to_string().contains(new_secret), "no secret in the audit log");

    // Deleted: gone.
    let deleted = app.delete(&owner, &one).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    app.get(&owner, &one)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
    app.delete(&owner, &one)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
}

#[tokio::test]
async fn an_endpoints_life_over_http_on_sqlite() {
    endpoints_work_on(&app().await).await;
}

#[tokio::test]
async fn an_endpoints_life_over_http_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();
    let app = app_with(|config| config.database_url = schema_url).await;
    endpoints_work_on(&app).await;
    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}

#[tokio::test]
async fn every_bad_field_is_named() {
    let app = app().await;
    let owner = app.token("ada").await;
    let base = format!("/v1/orgs/{}/webhook-endpoints", app.acme());
    let long = format!("https://hooks.example.com/{}", "a".repeat(2100));
    let many: Vec<&str> = std::iter::repeat_n("member.roles_changed", 65).collect();
    let cases = [
        (json!({ "url": "http://hooks.example.com/x" }), "url"),
        (json!({ "url": "ftp://hooks.example.com/x" }), "url"),
        (json!({ "url": "not a url" }), "url"),
        (json!({ "url": long }), "url"),
        (json!({ "url": "https://user:pw@hooks.example.com/x" }), "url"),
        (json!({ "url": "https://127.0.0.1/x" }), "url"),
        (json!({ "url": "https://localhost/x" }), "url"),
        (json!({ "url": "https://10.1.2.3/x" }), "url"),
        (json!({ "url": "https://192.168.1.1/x" }), "url"),
        (json!({ "url": "https://169.254.169.254/latest" }), "url"),
        (json!({ "url": "https://[::1]/x" }), "url"),
        (json!({ "url": "https://[fe80::1]/x" }), "url"),
        (
            json!({ "url": "https://hooks.example.com/x", "event_types": ["no.such_event"] }),
            "event_types/0",
        ),
        (
            json!({ "url": "https://hooks.example.com/x", "event_types": ["member.roles_changed", "!!"] }),
            "event_types/1",
        ),
        (
            json!({ "url": "https://hooks.example.com/x", "event_types": many }),
            "event_types",
        ),
        (
            json!({ "url": "https://hooks.example.com/x", "description": "x".repeat(300) }),
            "description",
        ),
    ];
    for (body, param) in cases {
        let answer = app.post(&owner, &base, body.clone()).await;
        answer.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
        assert_eq!(answer.body["param"], param, "{body}: {answer:?}");
    }
    // Nothing was made.
    let listed = app.get(&owner, &base).await;
    assert_eq!(listed.body["items"], json!([]), "{listed:?}");
    // The same rules on a change.
    let made = app.post(&owner, &base, endpoint("https://hooks.example.com/ok")).await;
    let one = format!("{base}/{}", made.body["endpoint"]["id"].as_str().unwrap());
    let answer = app
        .call(
            &owner,
            Method::PATCH,
            &one,
            Some(json!({ "url": "https://172.16.0.1/x" })),
        )
        .await;
    answer.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(answer.body["param"], "url");
    // A malformed endpoint or message id names its parameter.
    let answer = app.get(&owner, &format!("{base}/not-an-id")).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
}

#[tokio::test]
async fn only_callers_with_webhooks_manage_reach_endpoints_and_other_orgs_ids_are_not_found() {
    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    let base = format!("/v1/orgs/{acme}/webhook-endpoints");
    let made = app
        .post(&owner, &base, endpoint("https://hooks.example.com/acme"))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["endpoint"]["id"].as_str().unwrap().to_owned();
    let one = format!("{base}/{id}");

    // An admin holds it.
    let admin = app.token("alan").await;
    assert_eq!(app.get(&admin, &one).await.status, StatusCode::OK);

    // A viewer and a member: refused, before their (malformed) input is read.
    for local in ["linus", "grace"] {
        let token = app.token(local).await;
        app.get(&token, &base)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "access.denied");
        app.post(&token, &base, json!({ "url": "ftp://nope", "bogus": 1 }))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "access.denied");
        app.call(&token, Method::PATCH, &format!("{base}/not-an-id"), Some(json!([])))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "access.denied");
        app.delete(&token, &one)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    }

    // An API key of the org without the scope: refused; with it: allowed.
    let key = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "reader", "scopes": ["cases/* read"], "expires_at": in_days(30) }),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{key:?}");
    let key = key.body["key"].as_str().unwrap();
    app.get(key, &base)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let manager = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "hooks", "scopes": ["webhooks manage"], "expires_at": in_days(30) }),
        )
        .await;
    assert_eq!(manager.status, StatusCode::CREATED, "{manager:?}");
    let manager = manager.body["key"].as_str().unwrap();
    assert_eq!(app.get(manager, &one).await.status, StatusCode::OK);

    // Another org's owner: the org is not found in acme's path, the endpoint not found
    // in her own.
    let hedy = app.token("hedy").await;
    let globex = app.globex();
    app.get(&hedy, &one)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    let theirs = format!("/v1/orgs/{globex}/webhook-endpoints/{id}");
    app.get(&hedy, &theirs)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
    app.call(&hedy, Method::PATCH, &theirs, Some(json!({ "enabled": false })))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
    app.delete(&hedy, &theirs)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
    app.post(&hedy, &format!("{theirs}/rotate-secret"), json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
    app.get(&hedy, &format!("{theirs}/attempts"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "webhook.endpoint_not_found");
    let hers = app.get(&hedy, &format!("/v1/orgs/{globex}/webhook-endpoints")).await;
    assert_eq!(hers.status, StatusCode::OK, "{hers:?}");
    assert!(!hers.body.to_string().contains(&id), "{hers:?}");
    // Still there, unchanged.
    let still = app.get(&owner, &one).await;
    assert_eq!(still.body["enabled"], true, "{still:?}");
}

/// What the receiver got: each verified request's `webhook-id` and body, and how many
/// did not verify.
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) verified: Vec<(String, Value)>,
    unverified: usize,
}

#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) verifier: Arc<Mutex<Option<standardwebhooks::Webhook>>>,
    pub(crate) received: Arc<Mutex<Received>>,
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verified = receiver
        .verifier
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|wh| wh.verify(&body, &headers).is_ok());
    let mut received = receiver.received.lock().unwrap();
    if verified {
        let id = headers["webhook-id"].to_str().unwrap().to_owned();
        received.verified.push((id, serde_json::from_slice(&body).unwrap()));
        StatusCode::NO_CONTENT
    } else {
        received.unverified += 1;
        StatusCode::UNAUTHORIZED
    }
}

/// A receiver on loopback; it verifies once given the secret.
pub(crate) async fn receiver() -> (SocketAddr, Receiver) {
    let receiver = Receiver {
        verifier: Arc::default(),
        received: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, receiver)
}

async fn an_invitation_reaches_the_receiver(database_url: Option<String>) {
    let app = app_with(|config| {
        if let Some(url) = database_url {
            config.database_url = url;
        }
        config.webhooks.allowed_hosts = vec!["127.0.0.1".to_owned()];
        config.webhooks.deliver = true;
        config.webhooks.delivery.poll_interval = Duration::from_millis(50);
    })
    .await;
    let (addr, receiver) = receiver().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    let base = format!("/v1/orgs/{acme}/webhook-endpoints");
    let made = app
        .post(
            &owner,
            &base,
            json!({ "url": format!("http://{addr}/hook"), "event_types": ["invitation.created"] }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let secret = made.body["secret"].as_str().unwrap();
    *receiver.verifier.lock().unwrap() = Some(standardwebhooks::Webhook::new(secret).unwrap());
    let endpoint = made.body["endpoint"]["id"].as_str().unwrap().to_owned();

    let invited = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/invitations"),
            json!({ "email": "hooked@acme.example", "roles": ["member"] }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let invitation = invited.body["invitation"]["id"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if !receiver.received.lock().unwrap().verified.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (message, body) = {
        let received = receiver.received.lock().unwrap();
        assert_eq!(received.unverified, 0, "every request verifies");
        assert_eq!(
            received.verified.len(),
            1,
            "one delivery: the filter takes only invitations"
        );
        received.verified[0].clone()
    };
    assert_eq!(body["type"], "invitation.created", "{body}");
    assert_eq!(body["data"]["org"], acme.as_str(), "{body}");
    assert!(
        body["data"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == invitation.as_str()),
        "{body}"
    );
    // The message id is the audit event's.
    let event = body["data"]["id"].as_str().unwrap();
    assert_eq!(message, event.replacen("aud_", "msg_", 1));

    // The attempt log shows it delivered, and a replay sends it again with the same id.
    let attempts_uri = format!("{base}/{endpoint}/attempts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let attempts = loop {
        let attempts = app.get(&owner, &attempts_uri).await;
        if attempts.body["items"].as_array().is_some_and(|a| !a.is_empty()) || Instant::now() > deadline {
            break attempts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attempt = &attempts.body["items"][0];
    assert_eq!(attempt["status"], "delivered", "{attempts:?}");
    assert_eq!(attempt["http_status"], 204);
    assert_eq!(attempt["message_id"], message.as_str());
    let replayed = app
        .post(
            &owner,
            &format!("{base}/{endpoint}/messages/{message}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK, "{replayed:?}");
    assert_eq!(replayed.body["queued"], 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received.lock().unwrap().verified.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<String> = receiver
        .received
        .lock()
        .unwrap()
        .verified
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(ids, [message.clone(), message], "a replay keeps the webhook-id");
    app.background.shutdown().await;
}

#[tokio::test]
async fn an_invitation_made_over_http_reaches_a_verifying_receiver_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("portal-webhooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hooks.db");
    let _ = std::fs::remove_file(&file);
    an_invitation_reaches_the_receiver(Some(format!("sqlite://{}", file.display()))).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_invitation_made_over_http_reaches_a_verifying_receiver_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    an_invitation_reaches_the_receiver(Some(schema.url().to_owned())).await;
    schema.drop().await.expect("drop the schema");
}
