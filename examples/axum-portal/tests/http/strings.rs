//! Strings stored identically or refused identically on every backend (issue 23): a
//! property test sends generated strings (NUL, an unpaired surrogate escaped in the JSON
//! text, bidi and other controls, 100k characters, emoji, arbitrary Unicode) through the
//! string fields of the API on a SQLite and a Postgres server, and compares the outcomes:
//! status, problem code, and the value read back. Runs only with
//! `PORTAL_TEST_POSTGRES_URL` set.

use axum::body::Body;
use axum::http::{Method, Request, header};
use portal_http::test_schema::TestSchema;
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::common::{TestApp, app, app_with};

/// Stands for an unpaired surrogate in a body: replaced by the JSON escape `\ud800` in the
/// text sent, which no Rust string can hold.
const SURROGATE: &str = "\u{E000}surrogate\u{E000}";

/// The generated cases: the fixed hostile strings, then `generated` drawn by proptest.
fn strings(generated: usize) -> Vec<String> {
    let mut cases: Vec<String> = [
        "plain",
        "\u{0}",
        "a\u{0}b",
        SURROGATE,
        "x\u{202E}gnp.exe",
        "\u{7}\u{1b}[31m\u{8}\u{7f}",
        "\r\n\t",
        "\u{FEFF}bom",
        "e\u{301}",
        "\u{1F600}\u{1F469}\u{200D}\u{1F4BB}",
        "\u{FFFF}\u{10FFFF}",
        " padded ",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    cases.push("x".repeat(100_000));
    // Long, multi-byte, and under the 64 KiB body limit: it reaches the stores.
    cases.push("\u{e9}\u{1F600}".repeat(5_000));
    let strategy = prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        proptest::collection::vec(any::<char>(), 0..20).prop_map(|c| c.into_iter().collect::<String>()),
    ];
    let mut runner = TestRunner::deterministic();
    for _ in 0..generated {
        cases.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    cases
}

/// `body` as JSON text, each [`SURROGATE`] an escaped unpaired surrogate.
fn text(body: &Value) -> String {
    body.to_string().replace(SURROGATE, "\\ud800")
}

async fn send(app: &TestApp, token: &str, method: Method, uri: &str, body: Option<&Value>) -> (u16, Value) {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(text(body))),
        None => builder.body(Body::empty()),
    };
    let answer = app.send(request.unwrap()).await;
    (answer.status.as_u16(), answer.body)
}

/// What one field did with one string: status, code, and the value read back (or
/// `null`).
type Outcome = (u16, Value, Value);

/// Sends `s` through every string field on `app` (case `n`), one request a field.
/// `tokens` are the owner's and a member's.
async fn outcomes(app: &TestApp, tokens: &(String, String), n: usize, s: &str) -> Vec<(&'static str, Outcome)> {
    let (owner, member) = tokens;
    let acme = app.acme();
    let code = |body: &Value| body.get("code").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();

    // An org's name, a metadata key, a metadata value: read back from `GET /v1/orgs/{id}`.
    for (field, body) in [
        ("org name", json!({ "slug": format!("s{n}-name"), "name": s })),
        (
            "metadata key",
            json!({ "slug": format!("s{n}-key"), "name": "n", "metadata": { s: "v" } }),
        ),
        (
            "metadata value",
            json!({ "slug": format!("s{n}-value"), "name": "n", "metadata": { "k": s } }),
        ),
    ] {
        let (status, created) = send(app, owner, Method::POST, "/v1/orgs", Some(&body)).await;
        let read = match created["id"].as_str() {
            Some(id) => {
                let (_, org) = send(app, owner, Method::GET, &format!("/v1/orgs/{id}"), None).await;
                json!({ "name": org["name"], "metadata": org["metadata"] })
            }
            None => Value::Null,
        };
        out.push((field, (status, code(&created), read)));
    }

    // A workflow's payload, and a transition's input: read back from the instance.
    let body = json!({ "definition": "support_case", "payload": { "subject": s, s: "x" } });
    let uri = format!("/v1/orgs/{acme}/workflows");
    let (status, created) = send(app, member, Method::POST, &uri, Some(&body)).await;
    let read = match created["id"].as_str() {
        Some(id) => {
            let (_, wf) = send(app, member, Method::GET, &format!("{uri}/{id}"), None).await;
            wf["payload"].clone()
        }
        None => Value::Null,
    };
    out.push(("workflow payload", (status, code(&created), read)));

    // A transition's input (on a fresh case), read back from the instance's history.
    let (_, case) = send(
        app,
        member,
        Method::POST,
        &uri,
        Some(&json!({ "definition": "support_case", "payload": { "subject": "strings" } })),
    )
    .await;
    let case = case["id"].as_str().unwrap_or_default().to_owned();
    let body = json!({ "input": { "priority": s, s: s } });
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{uri}/{case}/transitions/triage"))
        .header(header::AUTHORIZATION, format!("Bearer {member}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_MATCH, "\"1\"")
        .body(Body::from(text(&body)))
        .unwrap();
    let moved = app.send(request).await;
    let read = if moved.status.is_success() {
        let (_, history) = send(app, member, Method::GET, &format!("{uri}/{case}/history"), None).await;
        history["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["input"].clone())
            .collect()
    } else {
        Value::Null
    };
    out.push(("transition input", (moved.status.as_u16(), code(&moved.body), read)));

    // The `state` filter of the workflow list: how many match.
    let encoded: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
    // (A string too long for a URI is not sent.)
    if encoded.len() <= 8 * 1024 {
        let (status, list) = send(app, member, Method::GET, &format!("{uri}?state={encoded}"), None).await;
        let read = list["items"].as_array().map_or(Value::Null, |items| json!(items.len()));
        out.push(("state query", (status, code(&list), read)));
    }

    // An API key's name, read back from the answer.
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = json!({ "name": s, "scopes": ["cases/* read"], "expires_at": expires });
    let (status, created) = send(
        app,
        owner,
        Method::POST,
        &format!("/v1/orgs/{acme}/api-keys"),
        Some(&body),
    )
    .await;
    out.push((
        "API key name",
        (status, code(&created), created["api_key"]["name"].clone()),
    ));

    // A custom role's name, read back from the org's roles.
    let body = json!({ "name": s, "permissions": [{ "object": "reports", "action": "read" }] });
    let roles = format!("/v1/orgs/{acme}/roles");
    let (status, created) = send(app, owner, Method::POST, &roles, Some(&body)).await;
    let read = if (200..300).contains(&status) {
        let (_, list) = send(app, owner, Method::GET, &roles, None).await;
        list["items"].clone()
    } else {
        Value::Null
    };
    out.push(("role name", (status, code(&created), read)));

    // An invitation's email, read back from the answer.
    let body = json!({ "email": format!("{s}@example.com"), "roles": ["member"] });
    let (status, created) = send(
        app,
        owner,
        Method::POST,
        &format!("/v1/orgs/{acme}/invitations"),
        Some(&body),
    )
    .await;
    out.push((
        "invitation email",
        (status, code(&created), created["invitation"]["email"].clone()),
    ));
    out
}

#[tokio::test]
async fn strings_are_stored_or_refused_alike_on_sqlite_and_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let sqlite = app().await;
    let schema_url = schema.url().to_owned();
    let postgres = app_with(|config| config.database_url = schema_url).await;
    let cases = strings(24);
    let sqlite_tokens = (sqlite.token("ada").await, sqlite.token("grace").await);
    let postgres_tokens = (postgres.token("ada").await, postgres.token("grace").await);
    let mut differences = Vec::new();
    let mut compared = 0;
    let mut stored = 0;
    for (n, s) in cases.iter().enumerate() {
        let on_sqlite = outcomes(&sqlite, &sqlite_tokens, n, s).await;
        let on_postgres = outcomes(&postgres, &postgres_tokens, n, s).await;
        for ((field, a), (_, b)) in on_sqlite.iter().zip(&on_postgres) {
            compared += 1;
            if std::env::var_os("STRINGS_DEBUG").is_some() {
                eprintln!("{n} {field}: {} {} | {} {}", a.0, a.1, b.0, b.1);
            }
            stored += usize::from((200..300).contains(&a.0));
            if a != b {
                let shown: String = s.chars().take(40).collect();
                differences.push(format!(
                    "{field} = {shown:?} ({} chars): SQLite {} {} {}, Postgres {} {} {}",
                    s.chars().count(),
                    a.0,
                    a.1,
                    a.2.to_string().chars().take(120).collect::<String>(),
                    b.0,
                    b.1,
                    b.2.to_string().chars().take(120).collect::<String>()
                ));
            }
        }
    }
    sqlite.background.shutdown().await;
    postgres.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
    eprintln!(
        "strings on both backends: {} strings, {compared} outcomes compared, {stored} stored",
        cases.len()
    );
    // Not vacuous: most fields store most strings, and those are read back and compared.
    assert!(stored * 4 > compared, "{stored} of {compared} stored");
    assert!(
        differences.is_empty(),
        "{} of {compared} outcomes differ between SQLite and Postgres:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
