//! SCIM 2.0 under `/scim/v2` through the axum router: the shared suite
//! (`portal_http::routes::scim_suite`) on SQLite here, on Postgres in `postgres.rs`.

use axum::body::Body;
use axum::http::Request;
use portal_http::routes::scim_suite::{self, ScimAnswer};
use portal_http::routes::tenancy_probe::ProbeRequest;

use crate::common::{TestApp, app};

/// Sends one request of the suite through `app`'s router.
pub(crate) async fn send(app: &TestApp, probe: ProbeRequest) -> ScimAnswer {
    let mut builder = Request::builder().method(probe.method).uri(probe.uri);
    for (name, value) in probe.headers {
        builder = builder.header(name, value);
    }
    let body = probe.body.map_or_else(Body::empty, Body::from);
    let answer = app.send(builder.body(body).unwrap()).await;
    ScimAnswer {
        status: answer.status.as_u16(),
        content_type: answer.header("content-type").map(str::to_owned),
        etag: answer.header("etag").map(str::to_owned),
        body: answer.body,
    }
}

#[tokio::test]
async fn a_directory_provisions_and_deprovisions_through_scim_on_sqlite() {
    let app = app().await;
    scim_suite::run(&app.demo, async |probe| send(&app, probe).await)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
}

/// Okta's and Entra's documented request sequences, groups mapped to roles by the owner,
/// the last-owner rule, attribute selection and bad input, on SQLite
/// (`scim_suite::run_identity_providers`).
#[tokio::test]
async fn okta_and_entra_sequences_keep_members_and_roles_in_step_on_sqlite() {
    let app = app().await;
    scim_suite::run_identity_providers(&app.demo, async |probe| send(&app, probe).await)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
}

/// Generated malformed input never reaches a 5xx and changes nothing: filters built from
/// SCIM's tokens and arbitrary text (`GET /Users?filter=…`), and PATCH bodies built from
/// ops, paths and values in any combination, are each answered `2xx` or a `4xx` in SCIM's
/// error schema with a `scimType` where one applies; after every refused PATCH the user
/// reads back exactly as before (a property test, deterministic seed).
#[tokio::test]
async fn malformed_filters_and_patches_are_scim_errors_that_change_nothing() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::TestRunner;
    use serde_json::{Value, json};

    let app = app().await;
    let owner = app.token("ada").await;
    let acme = app.acme();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let made = app
        .post(
            &owner,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "directory", "scopes": ["scim provision"], "expires_at": expires }),
        )
        .await;
    let key = made.body["key"].as_str().unwrap().to_owned();
    let scim = async |method: &str, uri: &str, body: Option<&Value>| {
        let mut headers = vec![("authorization".to_owned(), format!("Bearer {key}"))];
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/scim+json".to_owned()));
        }
        send(
            &app,
            ProbeRequest {
                method: method.parse().unwrap(),
                uri: uri.to_owned(),
                headers,
                body: body.map(Value::to_string),
            },
        )
        .await
    };
    let created = scim(
        "POST",
        "/scim/v2/Users",
        Some(&json!({ "userName": "prop.user@acme.example", "externalId": "prop-1",
            "emails": [{ "value": "prop.user@acme.example", "type": "work", "primary": true }] })),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let at = format!("/scim/v2/Users/{}", created.body["id"].as_str().unwrap());

    let token = prop_oneof![
        Just("userName".to_owned()),
        Just("emails.value".to_owned()),
        Just("members[value eq \"x\"]".to_owned()),
        Just(" eq ".to_owned()),
        Just(" co ".to_owned()),
        Just(" pr".to_owned()),
        Just(" and ".to_owned()),
        Just(" or ".to_owned()),
        Just(" not ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("\"".to_owned()),
        Just("\"a\\\"b\"".to_owned()),
        Just("[".to_owned()),
        Just("urn:ietf:params:scim:schemas:core:2.0:User:".to_owned()),
        "\\PC{0,6}",
    ];
    let filters = proptest::collection::vec(token, 0..12).prop_map(|t| t.concat());
    let json_value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!({ "active": "maybe" })),
        Just(json!({ "emails": 3 })),
        Just(json!([{ "value": 7 }])),
        Just(json!({ "name": { "givenName": [] } })),
        Just(json!("x".repeat(600))),
    ];
    let op = (
        prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("move"), Just("")],
        proptest::option::of(prop_oneof![
            Just("active"),
            Just("userName"),
            Just("emails[type eq \"work\"].value"),
            Just("emails[type eq work].value"),
            Just("name.givenName"),
            Just("members[value eq \"usr_x\"]"),
            Just("meta.version"),
            Just("shoeSize"),
            Just(""),
        ]),
        proptest::option::of(json_value),
    )
        .prop_map(|(op, path, value)| {
            let mut o = json!({ "op": op });
            if let Some(path) = path {
                o["path"] = Value::from(path);
            }
            if let Some(value) = value {
                o["value"] = value;
            }
            o
        });
    let patches = (
        prop_oneof![
            Just(json!(["urn:ietf:params:scim:api:messages:2.0:PatchOp"])),
            Just(json!(["urn:ietf:params:scim:schemas:core:2.0:User"])),
            Just(Value::Null),
        ],
        proptest::collection::vec(op, 0..4),
    )
        .prop_map(|(schemas, ops)| json!({ "schemas": schemas, "Operations": ops }));

    let check = |what: &str, answer: &ScimAnswer| {
        assert!(answer.status < 500, "{what}: {answer:?}");
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/scim+json"),
            "{what}: {answer:?}"
        );
        if answer.status >= 400 {
            assert_eq!(
                answer.body["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
                "{what}: {answer:?}"
            );
            assert_eq!(
                answer.body["status"],
                answer.status.to_string().as_str(),
                "{what}: {answer:?}"
            );
            if answer.status == 400 {
                assert!(
                    answer.body["scimType"].is_string(),
                    "{what}: a 400 names its scimType: {answer:?}"
                );
            }
        }
    };
    let mut runner = TestRunner::deterministic();
    let mut refused = 0;
    for _ in 0..150 {
        let filter = filters.new_tree(&mut runner).unwrap().current();
        let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let answer = scim("GET", &format!("/scim/v2/Users?filter={encoded}"), None).await;
        check(&format!("filter {filter:?}"), &answer);
        refused += usize::from(answer.status == 400);
    }
    assert!(
        refused > 50,
        "most generated filters are malformed ({refused} of 150 refused)"
    );
    let mut current = scim("GET", &at, None).await;
    let mut changed = 0;
    for _ in 0..150 {
        let patch = patches.new_tree(&mut runner).unwrap().current();
        let answer = scim("PATCH", &at, Some(&patch)).await;
        check(&format!("PATCH {patch}"), &answer);
        let after = scim("GET", &at, None).await;
        if answer.status == 200 {
            changed += 1;
            current = after;
        } else {
            assert_eq!(after.body, current.body, "a refused PATCH {patch} changed the user");
            assert_eq!(after.etag, current.etag, "a refused PATCH {patch} moved the version");
        }
    }
    assert!(changed < 150, "some generated patches are refused");
}
