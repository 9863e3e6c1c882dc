//! API versions through the router: `Portal-Version` picks the version, an org without
//! the header answers in its pin, the members listing keeps its 2026-06-01 shape for old
//! clients and has the 2026-12-01 shape for new ones, only owners move the pin (forward
//! only, audited), and each version's OpenAPI document is served.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portal_core::Principal;
use portal_core::tenancy::NewOrg;
use portal_http::version::{self, ApiVersion, BASELINE, CURRENT};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, app};

async fn members(app: &TestApp, token: &str, org: &str, version: Option<&str>) -> Answer {
    let mut request =
        Request::get(format!("/v1/orgs/{org}/members")).header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(version) = version {
        request = request.header("Portal-Version", version);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

fn keys(item: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The 2026-06-01 item that a 2026-12-01 item stands for.
fn old_item(new: &Value) -> Value {
    json!({
        "org": new["org"], "user": new["user"]["id"], "display_name": new["user"]["display_name"],
        "email": new["user"]["email"], "roles": new["roles"], "created_at": new["joined_at"],
        "updated_at": new["updated_at"],
    })
}

#[tokio::test]
async fn the_members_listing_has_each_versions_shape() {
    let app = app().await;
    let ada = app.token("ada").await;
    // acme was made now: pinned to the current version.
    let new = members(&app, &ada, &app.acme(), None).await;
    assert_eq!(new.status, StatusCode::OK, "{new:?}");
    assert_eq!(new.header("portal-version"), Some(CURRENT));
    let new_items = new.body["items"].as_array().unwrap();
    assert_eq!(new_items.len(), 4);
    for item in new_items {
        assert_eq!(
            keys(item),
            ["joined_at", "org", "roles", "updated_at", "user"],
            "{item}"
        );
        assert_eq!(keys(&item["user"]), ["display_name", "email", "id"], "{item}");
    }
    // The same listing asked in the old version: the old shape, field for field.
    let old = members(&app, &ada, &app.acme(), Some(BASELINE)).await;
    assert_eq!(old.status, StatusCode::OK, "{old:?}");
    assert_eq!(old.header("portal-version"), Some(BASELINE));
    let old_items = old.body["items"].as_array().unwrap();
    assert_eq!(old_items.len(), new_items.len());
    for (old, new) in old_items.iter().zip(new_items) {
        assert_eq!(
            keys(old),
            [
                "created_at",
                "display_name",
                "email",
                "org",
                "roles",
                "updated_at",
                "user"
            ]
        );
        assert!(old["user"].is_string(), "{old}");
        assert_eq!(*old, old_item(new));
    }
    assert_eq!(old.body["next"], new.body["next"]);
    // Asked in the current version: the handlers' own shape.
    let org = members(&app, &ada, &app.acme(), Some(CURRENT)).await;
    assert_eq!(org.body, new.body);
}

#[tokio::test]
async fn an_unknown_version_is_refused_with_a_stable_code() {
    let app = app().await;
    let ada = app.token("ada").await;
    for value in ["2026-06-02", "latest", "2026-12-01 extra"] {
        let answer = members(&app, &ada, &app.acme(), Some(value)).await;
        answer.assert_problem(StatusCode::BAD_REQUEST, "request.unknown_version");
        assert!(answer.body["detail"].as_str().unwrap().contains(CURRENT), "{answer:?}");
    }
    let me = app
        .send(
            Request::get("/v1/auth/me")
                .header(header::AUTHORIZATION, format!("Bearer {ada}"))
                .header("Portal-Version", "1999-01-01")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    me.assert_problem(StatusCode::BAD_REQUEST, "request.unknown_version");
}

#[tokio::test]
async fn an_org_answers_in_its_pin_which_only_its_owners_move_forward() {
    let app = app().await;
    let ada = app.token("ada").await;
    // An org made before pins existed (no pin): the oldest version.
    let ctx = app
        .api
        .portal()
        .context(Principal::User(app.demo.user("ada").unwrap().id))
        .build();
    let legacy = app
        .api
        .portal()
        .tenancy()
        .create_org(
            &ctx,
            NewOrg {
                slug: "legacy".to_owned(),
                name: "Legacy".to_owned(),
                ..NewOrg::default()
            },
        )
        .await
        .unwrap()
        .id
        .to_string();
    let before = members(&app, &ada, &legacy, None).await;
    assert_eq!(before.header("portal-version"), Some(BASELINE), "{before:?}");
    assert!(before.body["items"][0]["user"].is_string(), "{before:?}");
    let uri = format!("/v1/orgs/{legacy}/api-version");
    let pinned = app.get(&ada, &uri).await;
    assert_eq!(pinned.body, json!({ "version": BASELINE }), "{pinned:?}");

    // Only owners pin: an admin of acme may not.
    let alan = app.token("alan").await;
    let acme_uri = format!("/v1/orgs/{}/api-version", app.acme());
    app.call(&alan, Method::PUT, &acme_uri, Some(json!({ "version": CURRENT })))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    app.call(&ada, Method::PUT, &uri, Some(json!({ "version": "2026-01-01" })))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");

    let upgraded = app
        .call(&ada, Method::PUT, &uri, Some(json!({ "version": CURRENT })))
        .await;
    assert_eq!(
        (upgraded.status, &upgraded.body),
        (StatusCode::OK, &json!({ "version": CURRENT })),
        "{upgraded:?}"
    );
    let after = members(&app, &ada, &legacy, None).await;
    assert_eq!(after.header("portal-version"), Some(CURRENT));
    assert!(after.body["items"][0]["user"].is_object(), "{after:?}");
    // Old clients still get the old shape by asking for it.
    let asked = members(&app, &ada, &legacy, Some(BASELINE)).await;
    assert!(asked.body["items"][0]["user"].is_string(), "{asked:?}");
    // Forward only.
    let back = app
        .call(&ada, Method::PUT, &uri, Some(json!({ "version": BASELINE })))
        .await;
    back.assert_problem(StatusCode::CONFLICT, "org.api_version_downgrade");
    // The change is in the org's audit log.
    let audit = app.get(&ada, &format!("/v1/orgs/{legacy}/audit-events")).await;
    let event = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "org.api_version_changed")
        .unwrap_or_else(|| panic!("{audit:?}"));
    assert_eq!(event["metadata"], json!({ "before": BASELINE, "after": CURRENT }));
}

#[tokio::test]
async fn each_version_has_its_openapi_document() {
    let app = app().await;
    for version in ApiVersion::all() {
        let answer = app
            .send(
                Request::get(format!("/openapi/{}", version.name()))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, version::document(version));
        assert_eq!(answer.body["info"]["version"], version.name());
    }
    let unknown = app
        .send(Request::get("/openapi/1999-01-01").body(Body::empty()).unwrap())
        .await;
    unknown.assert_problem(StatusCode::BAD_REQUEST, "request.unknown_version");
}
