//! The edge's rules for what a client sends (`portal_http::input`), through the router:
//! a NUL anywhere is refused before any backend sees it (on SQLite and on Postgres alike),
//! every body is one JSON object, and `?limit=` keeps the document's bounds.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portal_http::test_schema::TestSchema;
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app, app_with};

/// The answer to `body` (sent as raw text, so that `\u0000` escapes arrive as written).
async fn raw(app: &TestApp, token: &str, method: Method, uri: &str, if_match: Option<&str>, body: &str) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(tag) = if_match {
        builder = builder.header(header::IF_MATCH, tag);
    }
    app.send(builder.body(Body::from(body.to_owned())).unwrap()).await
}

fn assert_refused(answer: &Answer, param: &str) {
    answer.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
    assert_eq!(answer.body["param"], param, "{answer:?}");
}

/// The first instance of `definition` in `state`, as `token` reads it.
async fn instance(app: &TestApp, token: &str, definition: &str, state: &str) -> Value {
    let uri = format!(
        "/v1/orgs/{}/workflows?definition={definition}&state={state}",
        app.acme()
    );
    let answer = app.get(token, &uri).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"][0].clone()
}

/// Sends a NUL in every place a client can put text (a body string at any depth, a query
/// parameter, a path parameter) and expects each refused with the JSON path or parameter
/// as `param`; then checks that nothing was written.
async fn a_nul_is_refused_everywhere(app: &TestApp) {
    let acme = app.acme();
    let member = app.token("grace").await;
    let owner = app.token("ada").await;

    let org = raw(
        app,
        &owner,
        Method::POST,
        "/v1/orgs",
        None,
        r#"{"slug":"nul-org","name":"a\u0000b"}"#,
    )
    .await;
    assert_refused(&org, "name");
    let metadata = r#"{"slug":"nul-meta","name":"Nul","metadata":{"plan":"gold\u0000"}}"#;
    assert_refused(
        &raw(app, &owner, Method::POST, "/v1/orgs", None, metadata).await,
        "metadata.plan",
    );
    let key = r#"{"slug":"nul-key","name":"Nul","metadata":{"pl\u0000an":"gold"}}"#;
    let named = raw(app, &owner, Method::POST, "/v1/orgs", None, key).await;
    assert_refused(&named, r"metadata.pl\u0000an");

    let workflows = format!("/v1/orgs/{acme}/workflows");
    let payload = r#"{"definition":"support_case","payload":{"subject":"Printer\u0000on fire"}}"#;
    assert_refused(
        &raw(app, &member, Method::POST, &workflows, None, payload).await,
        "payload.subject",
    );

    let open = instance(app, &member, "support_case", "open").await;
    let tag = format!("\"{}\"", open["version"]);
    let triage = format!("{workflows}/{}/transitions/triage", open["id"].as_str().unwrap());
    let input = r#"{"input":{"priority":"high","note":["ok","\u0000"]}}"#;
    assert_refused(
        &raw(app, &member, Method::POST, &triage, Some(&tag), input).await,
        "input.note[1]",
    );

    let listed = app.get(&member, &format!("{workflows}?state=open%00")).await;
    assert_refused(&listed, "state");
    let path = format!("{workflows}/{}/transitions/tri%00age", open["id"].as_str().unwrap());
    assert_refused(
        &raw(app, &member, Method::POST, &path, Some(&tag), "{}").await,
        "transition",
    );

    let quote = instance(app, &member, "quote_approval", "draft").await;
    let submit = format!("{workflows}/{}/transitions/submit", quote["id"].as_str().unwrap());
    let submitted = raw(
        app,
        &member,
        Method::POST,
        &submit,
        Some(&format!("\"{}\"", quote["version"])),
        "{}",
    )
    .await;
    assert_eq!(submitted.status, StatusCode::OK, "{submitted:?}");
    let votes = format!("{workflows}/{}/votes", quote["id"].as_str().unwrap());
    let vote = r#"{"transition":"approve","decision":"approve","input":{"comment":"fine\u0000"}}"#;
    let tag = format!("\"{}\"", submitted.body["version"]);
    assert_refused(
        &raw(app, &owner, Method::POST, &votes, Some(&tag), vote).await,
        "input.comment",
    );

    // Nothing of it was written: no org, the instances at their versions.
    let mine = app.get(&owner, "/v1/orgs").await;
    assert!(!mine.body.to_string().contains("nul-"), "{mine:?}");
    let again = app
        .get(&member, &format!("{workflows}/{}", open["id"].as_str().unwrap()))
        .await;
    assert_eq!(again.body["version"], open["version"]);
}

#[tokio::test]
async fn a_nul_is_refused_at_the_edge_on_sqlite() {
    a_nul_is_refused_everywhere(&app().await).await;
}

#[tokio::test]
async fn a_nul_is_refused_at_the_edge_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    let schema_url = schema.url().to_owned();
    let app = app_with(|config| config.database_url = schema_url).await;

    a_nul_is_refused_everywhere(&app).await;

    app.background.shutdown().await;
    schema.drop().await.expect("drop the schema");
}

/// Every operation that takes a body, as the document lists them (`requestBody`), answers
/// `request.malformed` to a JSON array, a string, a number and `null`, before anything
/// else reads the request (path ids are samples).
#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_malformed_on_every_body_operation() {
    let app = app().await;
    let owner = app.token("ada").await;
    let doc: Value = serde_json::from_str(&portal_http::openapi::openapi_json()).unwrap();
    let mut checked = 0;
    for route in portal_http::routes::routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        if doc["paths"][route.path][&method]["requestBody"].is_null() {
            continue;
        }
        let uri = route.uri(|name| {
            if name == "org_id" {
                app.acme()
            } else {
                format!("sample-{name}")
            }
        });
        for body in [r#"["slug","name",{}]"#, r#""text""#, "3", "null"] {
            let answer = raw(&app, &owner, route.method.clone(), &uri, Some("\"1\""), body).await;
            assert_eq!(
                (answer.status, answer.code()),
                (StatusCode::BAD_REQUEST, "request.malformed"),
                "{} {uri} with {body}: {answer:?}",
                route.method
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 44, "the body operations of the document");
}

/// `?limit=` is 1 to 100 on every listing, as the document says.
#[tokio::test]
async fn a_limit_outside_1_to_100_is_refused_and_documented() {
    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    for listing in ["members", "invitations", "workflows", "diagnostics/timeline"] {
        for limit in [0, 101, 1000] {
            let answer = app
                .get(&owner, &format!("/v1/orgs/{acme}/{listing}?limit={limit}"))
                .await;
            assert_refused(&answer, "limit");
        }
        let most = app.get(&owner, &format!("/v1/orgs/{acme}/{listing}?limit=100")).await;
        assert_eq!(most.status, StatusCode::OK, "{listing}: {most:?}");
    }
    let doc: Value = serde_json::from_str(&portal_http::openapi::openapi_json()).unwrap();
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for param in operation["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "limit" {
                    let schema = &param["schema"];
                    assert_eq!(
                        (&schema["minimum"], &schema["maximum"]),
                        (&json!(1), &json!(100)),
                        "{method} {path}: {schema}"
                    );
                    documented += 1;
                }
            }
        }
    }
    assert!(documented >= 4, "{documented}");
}

/// A permission of `POST …/roles` that is refused is named by its JSON path: its index in
/// the request as sent and its field.
#[tokio::test]
async fn a_refused_permission_is_named_by_its_json_path() {
    let app = app().await;
    let owner = app.token("ada").await;
    let uri = format!("/v1/orgs/{}/roles", app.acme());
    let cases = [
        (
            json!([{ "object": "zeta", "action": "read" }, { "object": "alpha", "action": "read all" }]),
            "permissions[1].action",
        ),
        (
            json!([{ "object": "cases/(a|b)", "action": "read" }]),
            "permissions[0].object",
        ),
        (
            json!([{ "object": "reports", "action": "read" }, { "object": "", "action": "read" }]),
            "permissions[1].object",
        ),
        (
            json!([{ "object": "reports", "action": "re,ad" }]),
            "permissions[0].action",
        ),
    ];
    for (permissions, param) in cases {
        let answer = app
            .post(&owner, &uri, json!({ "name": "bad-role", "permissions": permissions }))
            .await;
        assert_refused(&answer, param);
    }
    let none = app.get(&owner, &uri).await;
    assert_eq!(none.body["items"], json!([]), "{none:?}");
}

/// An `Idempotency-Key` that is not 1 to 255 visible ASCII characters is refused with
/// its header as `param`, on a workflow route (which honors keys) and any other
/// authenticated one, never ignored; nothing is created.
#[tokio::test]
async fn an_idempotency_key_that_is_not_visible_ascii_is_refused() {
    let app = app().await;
    let member = app.token("grace").await;
    let workflows = format!("/v1/orgs/{}/workflows", app.acme());
    let before = app.get(&member, &format!("{workflows}?limit=100")).await.body["items"].clone();
    let long = "k".repeat(256);
    let keys: [&[u8]; 5] = ["clé-1".as_bytes(), b"two words", b"", b"tab\there", long.as_bytes()];
    let create = json!({ "definition": "support_case", "payload": { "subject": "Printer on fire" } });
    let org = json!({ "slug": "keyed", "name": "Keyed" });
    for key in keys {
        for (uri, body) in [(workflows.as_str(), &create), ("/v1/orgs", &org)] {
            let request = Request::post(uri)
                .header(header::AUTHORIZATION, format!("Bearer {member}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header("idempotency-key", axum::http::HeaderValue::from_bytes(key).unwrap())
                .body(Body::from(body.to_string()))
                .unwrap();
            let answer = app.send(request).await;
            assert_refused(&answer, "Idempotency-Key");
        }
    }
    let after = app.get(&member, &format!("{workflows}?limit=100")).await.body["items"].clone();
    assert_eq!(after, before, "nothing created");
    let mine = app.get(&member, "/v1/orgs").await;
    assert!(!mine.body.to_string().contains("keyed"), "{mine:?}");
}
