//! The contract: `/openapi.json` serves the document `portal-http` generates,
//! `docs/openapi.json` is that document, the route table is its operations, and the
//! router serves every route of the table.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;

use portal_http::routes;

use crate::common::app;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[tokio::test]
async fn openapi_json_serves_the_document() {
    let app = app().await;
    let answer = app
        .send(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type").unwrap(), "application/json");
    let expected: Value = serde_json::from_str(&portal_http::openapi::openapi_json()).unwrap();
    assert_eq!(answer.body, expected);
    assert_eq!(answer.body["openapi"], "3.1.0");
}

#[test]
fn docs_openapi_json_is_fresh() {
    let generated = portal_http::openapi::openapi_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let same = serde_json::from_str::<Value>(&committed).ok() == serde_json::from_str::<Value>(&generated).ok();
    assert!(
        same,
        "docs/openapi.json is stale; regenerate it with\n\n    UPDATE_OPENAPI=1 cargo test -p example-axum-portal --test http openapi\n"
    );
}

/// `docs/openapi/<version>.json`, each supported version's document.
fn versioned_path(version: portal_http::version::ApiVersion) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../docs/openapi/{}.json", version.name()))
}

#[test]
fn each_versions_document_is_fresh_in_docs_and_is_the_route_table() {
    for version in portal_http::version::ApiVersion::all() {
        let generated = portal_http::version::document_json(version);
        let path = versioned_path(version);
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let committed: Value = serde_json::from_str(&committed).unwrap_or_else(|_| {
            panic!(
                "{} is missing or stale; regenerate it with\n\n    UPDATE_OPENAPI=1 cargo test -p example-axum-portal --test http openapi\n",
                path.display()
            )
        });
        assert_eq!(
            committed,
            serde_json::from_str::<Value>(&generated).unwrap(),
            "{} is stale; regenerate it with UPDATE_OPENAPI=1 cargo test -p example-axum-portal --test http openapi",
            path.display()
        );
        routes::check_against_document(&committed)
            .unwrap_or_else(|diff| panic!("the route table and {} differ:\n{diff}", path.display()));
    }
}

#[tokio::test]
async fn every_documented_operation_has_a_route() {
    let app = app().await;
    let token = app.token("ada").await;
    let doc: Value = serde_json::from_str(&portal_http::openapi::openapi_json()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let uri = path
                .replace("{org_id}", &app.acme())
                .replace("{user_id}", &app.user_id("grace"))
                .replace("{session_id}", "ses_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{invitation_id}", "inv_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{key_id}", "key_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{workflow_id}", "wf_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{request_id}", "req_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{group_id}", "grp_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{transition}", "triage")
                .replace("{grant_id}", "sag_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{endpoint_id}", "whk_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{message_id}", "msg_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{passkey_id}", "pky_01jd5x8y6kf3w9q2m7c4t0vbnr")
                .replace("{definition}", "support_case")
                .replace("{role}", "nope");
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let answer = app.send(request).await;
            assert!(
                answer.body["code"] != "route.not_found" && answer.body["code"] != "request.method_not_allowed",
                "{method} {path}: {answer:?}"
            );
            assert!(answer.status.as_u16() < 500, "{method} {path}: {answer:?}");
            let documented = &item[method.as_str().to_lowercase()]["responses"][answer.status.as_str()];
            assert!(
                documented.is_object(),
                "{method} {path} answered an undocumented {}",
                answer.status
            );
            if let Some(code) = answer.body["code"].as_str() {
                let codes = documented["x-error-codes"].as_array().unwrap();
                assert!(
                    codes.iter().any(|c| c == code),
                    "{method} {path}: `{code}` is not documented"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 91);
}

#[tokio::test]
async fn the_router_serves_every_route_of_the_table_and_the_table_is_the_document() {
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(committed_path()).unwrap()).unwrap();
    let documented = routes::check_against_document(&committed)
        .unwrap_or_else(|diff| panic!("the route table and docs/openapi.json differ:\n{diff}"));
    let app = app().await;
    let (served, unauthorized) = routes::check_served(async |route, uri| {
        let request = Request::builder()
            .method(route.method.clone())
            .uri(uri)
            .body(Body::empty());
        let answer = app.send(request.unwrap()).await;
        (answer.status.as_u16(), answer.body["code"].as_str().map(str::to_owned))
    })
    .await
    .unwrap_or_else(|unserved| panic!("routes the router does not serve:\n{unserved}"));
    // The SCIM routes are served and, by design, not documented (`Route::is_documented`).
    let scim = routes::routes().iter().filter(|r| r.is_scim()).count();
    assert_eq!(
        served,
        documented + 2 + scim,
        "the document's operations, GET /openapi.json, GET /openapi/{{version}} and the SCIM routes"
    );
    println!(
        "axum serves {served} routes: the {documented} operations of docs/openapi.json and GET /openapi.json \
         ({unauthorized} answered 401 unauthenticated)"
    );
}

/// Every `pattern` of the document that names an id kind (`^org_…`), by where it is.
fn id_patterns(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    // Secrets (`format: password`, such as a reset token) have patterns of their own, not an id's.
    let mut visit = |at: String, schema: &Value| {
        if schema["format"] == "password" {
            return;
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            found.push((at, pattern.to_owned()));
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                visit(format!("{method} {path} {name}"), &parameter["schema"]);
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            visit(format!("{name}.{field}"), property);
        }
    }
    found
        .into_iter()
        .filter(|(_, pattern)| {
            pattern
                .strip_prefix('^')
                .and_then(|rest| rest.split_once('_'))
                .is_some_and(|(prefix, _)| !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_lowercase()))
        })
        .collect()
}

#[test]
fn every_id_has_a_pattern_that_real_ids_match_and_malformed_ones_do_not() {
    use portal_core::ids::{
        ApiKeyId, AuditEventId, GrantId, GroupId, InvitationId, OrgId, PasskeyId, RandomIds, RequestId, SessionId,
        UserId, WebhookAttemptId, WebhookEndpointId, WebhookMessageId, WorkflowId,
    };
    let doc: Value = serde_json::from_str(&portal_http::openapi::openapi_json()).unwrap();
    let generator = RandomIds::default();
    let now = time::OffsetDateTime::now_utc();
    let real: Vec<String> = vec![
        OrgId::generate(&generator, now).to_string(),
        UserId::generate(&generator, now).to_string(),
        InvitationId::generate(&generator, now).to_string(),
        WorkflowId::generate(&generator, now).to_string(),
        RequestId::generate(&generator, now).to_string(),
        ApiKeyId::generate(&generator, now).to_string(),
        SessionId::generate(&generator, now).to_string(),
        AuditEventId::generate(&generator, now).to_string(),
        GroupId::generate(&generator, now).to_string(),
        GrantId::generate(&generator, now).to_string(),
        WebhookEndpointId::generate(&generator, now).to_string(),
        WebhookMessageId::generate(&generator, now).to_string(),
        WebhookAttemptId::generate(&generator, now).to_string(),
        PasskeyId::generate(&generator, now).to_string(),
    ];
    let patterns = id_patterns(&doc);
    // Every id in a path, and the ids of the bodies, carry a pattern.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                if parameter["in"] == "path" && name.ends_with("_id") {
                    let at = format!("{method} {path} {name}");
                    assert!(patterns.iter().any(|(p, _)| *p == at), "{at} has no id pattern");
                }
            }
        }
    }
    for at in [
        "OrgView.id",
        "UserView.id",
        "WorkflowView.id",
        "InvitationView.id",
        "ApiKeyView.id",
        "SessionView.id",
        "PasskeyView.id",
        "SwitchOrgRequest.org_id",
        "Problem.request_id",
    ] {
        assert!(patterns.iter().any(|(p, _)| p == at), "{at} has no id pattern");
    }
    for (at, pattern) in &patterns {
        let regex = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{at}: {e}"));
        let prefix = &pattern[1..pattern.find('_').unwrap()];
        let own: Vec<&String> = real.iter().filter(|id| id.split('_').next() == Some(prefix)).collect();
        assert_eq!(own.len(), 1, "{at}: `{pattern}` names no known id kind");
        let id = own[0];
        assert!(regex.is_match(id), "{at}: `{id}` does not match `{pattern}`");
        // Every parseable id of that kind matches: one at the top of the range.
        let highest = format!("{prefix}_7{}", "z".repeat(25));
        assert!(regex.is_match(&highest), "{at}: `{highest}`");
        let suffix = &id[prefix.len() + 1..];
        let malformed = [
            id.to_uppercase(),
            format!("{prefix}_{}", &suffix[1..]),
            format!("{id}0"),
            format!("{prefix}_8{}", &suffix[1..]),
            format!("{prefix}_{}u", &suffix[..25]),
            format!("{prefix}-{suffix}"),
            format!(" {id}"),
            format!("{id}\n"),
            format!("x{id}"),
        ];
        for bad in malformed.iter().chain(real.iter().filter(|other| *other != id)) {
            assert!(!regex.is_match(bad), "{at}: `{bad:?}` matches `{pattern}`");
        }
    }
}

#[test]
fn role_names_user_filters_and_idempotency_keys_carry_the_enforced_patterns() {
    let doc: Value = serde_json::from_str(&portal_http::openapi::openapi_json()).unwrap();
    let mut checked = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let (good, bad): (&[&str], &[&str]) = match parameter["name"].as_str().unwrap() {
                    "role" => (
                        &["admin", "support-lead", "a_1"],
                        &["", "Support Lead", "0", "-x", &"a".repeat(65)],
                    ),
                    "Idempotency-Key" => (
                        &["k", "order-1!~", &"x".repeat(255)],
                        &["", "é", "a b", &"x".repeat(256)],
                    ),
                    "If-Match" => (&["\"3\"", "\"0\""], &["*", "W/\"3\"", "\"a\"", "3", "\"3\", \"4\""]),
                    "user" if parameter["in"] == "query" => (
                        &["usr_01jd5x8y6kf3w9q2m7c4t0vbnr"],
                        &["", "{\\f", "org_01jd5x8y6kf3w9q2m7c4t0vbnr"],
                    ),
                    _ => continue,
                };
                let pattern = parameter["schema"]["pattern"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{} has no pattern", parameter["name"]));
                let regex = regex::Regex::new(pattern).unwrap();
                for text in good {
                    assert!(regex.is_match(text), "`{text}` does not match `{pattern}`");
                }
                for text in bad {
                    assert!(!regex.is_match(text), "`{text}` matches `{pattern}`");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "{checked}");
}
