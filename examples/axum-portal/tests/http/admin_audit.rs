//! Custom roles, API keys and support grants in the customer audit log, through the
//! router: each change is listed under its action with its actor and targets, the
//! metadata shows what the customer sees (never a secret or a policy line), a refused
//! change (a built-in role, another org's key or grant) writes nothing, and another org's
//! owner sees none of it.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, app};

/// The events of `org` with `action` (and `target`, if given), as `token` reads them.
async fn events(app: &TestApp, token: &str, org: &str, action: &str, target: Option<&str>) -> Vec<Value> {
    let mut uri = format!("/v1/orgs/{org}/audit-events?limit=100&action={action}");
    if let Some(target) = target {
        uri.push_str(&format!("&target={target}"));
    }
    let page = app.get(token, &uri).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    page.body["items"].as_array().unwrap().clone()
}

/// The one event of `org` with `action` about `target`, read by `token`.
async fn the_event(app: &TestApp, token: &str, org: &str, action: &str, target: &str) -> Value {
    let found = events(app, token, org, action, Some(target)).await;
    assert_eq!(found.len(), 1, "{action} about {target}: {found:?}");
    found[0].clone()
}

#[tokio::test]
async fn role_key_and_grant_changes_are_logged_with_their_actor_and_targets() {
    let app = app().await;
    let (ada, hedy) = (app.token("ada").await, app.token("hedy").await);
    let (acme, globex) = (app.acme(), app.globex());
    let ada_actor = json!({ "id": app.user_id("ada"), "type": "user", "name": "Ada Lovelace" });
    let roles = format!("/v1/orgs/{acme}/roles");

    // A custom role: created, replaced, deleted.
    let read_cases = json!({ "object": "cases/*", "action": "read", "effect": "allow" });
    let write_cases = json!({ "object": "cases/*", "action": "write", "effect": "allow" });
    let made = app
        .post(&ada, &roles, json!({ "name": "auditor", "permissions": [read_cases] }))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let replaced = app
        .call(
            &ada,
            Method::PUT,
            &format!("{roles}/auditor"),
            Some(json!({ "parent": "viewer", "permissions": [read_cases, write_cases] })),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{replaced:?}");
    let gone = app.delete(&ada, &format!("{roles}/auditor")).await;
    assert!(gone.status.is_success(), "{gone:?}");

    let created = the_event(&app, &ada, &acme, "role.created", "auditor").await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["actor"], ada_actor);
    assert_eq!(created["targets"], json!([{ "type": "role", "id": "auditor" }]));
    assert_eq!(
        created["metadata"],
        json!({ "parent": null, "permissions": [read_cases] })
    );
    let updated = the_event(&app, &ada, &acme, "role.updated", "auditor").await;
    assert_eq!(updated["actor"], ada_actor);
    assert_eq!(
        updated["metadata"],
        json!({
            "before": { "parent": null, "permissions": [read_cases] },
            "after": { "parent": "viewer", "permissions": [read_cases, write_cases] },
        })
    );
    let deleted = the_event(&app, &ada, &acme, "role.deleted", "auditor").await;
    assert_eq!(
        deleted["metadata"],
        json!({ "parent": "viewer", "permissions": [read_cases, write_cases] })
    );
    // No policy lines, no internal names anywhere in the role events.
    for event in [&created, &updated, &deleted] {
        let text = event.to_string();
        assert!(!text.contains("ptype") && !text.contains("org_"), "{text}");
    }

    // Refused: a built-in role is neither defined nor deleted, and writes no event.
    let builtin = app
        .call(
            &ada,
            Method::PUT,
            &format!("{roles}/admin"),
            Some(json!({ "permissions": [read_cases] })),
        )
        .await;
    assert!(builtin.status.is_client_error(), "{builtin:?}");
    app.delete(&ada, &format!("{roles}/viewer")).await;
    for action in ["role.created", "role.updated", "role.deleted"] {
        assert!(events(&app, &ada, &acme, action, Some("admin")).await.is_empty());
        assert!(events(&app, &ada, &acme, action, Some("viewer")).await.is_empty());
    }

    // An API key: created (never the secret), revoked once.
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let key = app
        .post(
            &ada,
            &format!("/v1/orgs/{acme}/api-keys"),
            json!({ "name": "exporter", "scopes": ["cases/* read"], "expires_at": expires }),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{key:?}");
    let secret = key.body["key"].as_str().unwrap().to_owned();
    let key_id = key.body["api_key"]["id"].as_str().unwrap().to_owned();
    let prefix = key.body["api_key"]["prefix"].as_str().unwrap().to_owned();
    // Another org's owner cannot revoke it: not found, and no event in either org.
    app.delete(&hedy, &format!("/v1/orgs/{globex}/api-keys/{key_id}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "api_key.not_found");
    let revoked = app.delete(&ada, &format!("/v1/orgs/{acme}/api-keys/{key_id}")).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    let again = app.delete(&ada, &format!("/v1/orgs/{acme}/api-keys/{key_id}")).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");

    let key_created = the_event(&app, &ada, &acme, "api_key.created", &key_id).await;
    assert_eq!(key_created["actor"], ada_actor);
    assert_eq!(key_created["targets"], json!([{ "type": "api_key", "id": key_id }]));
    assert_eq!(
        key_created["metadata"],
        json!({ "name": "exporter", "prefix": prefix, "scopes": ["cases/* read"], "expires_at": expires })
    );
    let key_revoked = the_event(&app, &ada, &acme, "api_key.revoked", &key_id).await;
    assert_eq!(key_revoked["actor"], ada_actor);
    assert_eq!(key_revoked["metadata"], json!({ "name": "exporter", "prefix": prefix }));
    for event in [&key_created, &key_revoked] {
        assert!(!event.to_string().contains(&secret), "never the secret: {event}");
    }

    // A support grant: given to the vendor's staff member, revoked.
    let sam = app.user_id("sam");
    let grant = app
        .post(
            &ada,
            &format!("/v1/orgs/{acme}/support-grants"),
            json!({ "staff": sam, "reason": "case 4711: the export fails", "access": "read_write", "hours": 24 }),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{grant:?}");
    let grant_id = grant.body["id"].as_str().unwrap().to_owned();
    app.delete(&hedy, &format!("/v1/orgs/{globex}/support-grants/{grant_id}"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "support.grant_not_found");
    let ended = app
        .delete(&ada, &format!("/v1/orgs/{acme}/support-grants/{grant_id}"))
        .await;
    assert!(ended.status.is_success(), "{ended:?}");

    let given = the_event(&app, &ada, &acme, "support_grant.created", &grant_id).await;
    assert_eq!(given["actor"], ada_actor);
    assert_eq!(
        given["targets"],
        json!([{ "type": "support_grant", "id": grant_id }, { "type": "user", "id": sam }])
    );
    assert_eq!(given["metadata"]["access"], "read_write");
    assert_eq!(given["metadata"]["reason"], "case 4711: the export fails");
    assert!(given["metadata"]["expires_at"].is_string(), "{given}");
    let taken_back = the_event(&app, &ada, &acme, "support_grant.revoked", &grant_id).await;
    assert_eq!(taken_back["actor"], ada_actor);
    assert_eq!(taken_back["targets"], given["targets"]);

    // Another org's owner sees none of it: her own log has none of these events, and
    // acme's log is not found.
    for action in [
        "role.created",
        "role.updated",
        "role.deleted",
        "api_key.created",
        "api_key.revoked",
        "support_grant.created",
        "support_grant.revoked",
    ] {
        let theirs = events(&app, &hedy, &globex, action, None).await;
        assert!(theirs.is_empty(), "{action}: {theirs:?}");
        app.get(&hedy, &format!("/v1/orgs/{acme}/audit-events?action={action}"))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    }
}
